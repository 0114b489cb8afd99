"""Sweeps: accuracy and state error over a grid of config values × chip instances.

One call, :func:`sweep`, runs the whole job into a run directory::

    summary = sweep("audio-chirps", "sw/", sets=["variation.tau_sigma=0,0.3"], seeds=2,
                    n=32, engine="twin")

Steps: ``--set`` axes -> one config per grid point (:mod:`.sweep_grid`) × chip instances
(``[variation] seed`` 0..seeds-1), every config checked before anything is written -> dataset
and selection (:mod:`.rundir`, as ``evaluate``) -> per unit (point, instance): the SSM and the
calibration samples here, the hardware programmed on a worker, then every selected sample (train
and test: the 'retrained' protocol needs circuit states of the training split) simulated in
chunks on dask.distributed (:mod:`.workers`, :mod:`.sweep_tasks`). This process writes each
chunk file atomically as it arrives, so a killed run keeps finished chunks and a rerun skips
them. Last, the four accuracies and the mean NRMSE of each unit (:func:`~.report.compute_report`)
and their mean and 95 % CI per point (:mod:`.sweep_report`), computed from the chunk files alone.

Run directory::

    RUN_DIR/manifest.json                  what the sweep is (base config, grid, seeds, dataset, engine)
    RUN_DIR/dataset.npz                    the generated dataset (built-in NAME only)
    RUN_DIR/results/<unit>_c<chunk>.npz    states of one chunk of samples of one unit
    RUN_DIR/sweep.csv, report.md, accuracy.png, nrmse.png, sweep.json (written last)
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import __version__
from ..config import Config, load_config
from ..engines.registry import DEFAULT_ENGINE, get_engine
from ..errors import ConfigError, InputError
from ..io.files import file_digest
from ..pipeline import calibration_schedules, make_model
from ..schedule import n_input_rows
from . import rundir
from .evaluate import BATCH_S, Interrupted, check_options, options_of
from .report import compute_report, versions
from .sweep_grid import instance_config, parse_axes, point_configs, value_text
from .sweep_report import SWEEP_FORMAT, point_stats, unit_row, write_sweep_report
from .sweep_tasks import (ChunkJob, ProgramJob, chunk_bytes, chunk_done, chunk_path, chunk_records,
                          ideal_only, program_unit, read_chunk, run_chunk, unit_name)
from .tasks import SPLITS, make_tasks, write_file_bytes
from .workers import Cluster, progress

MANIFEST_KIND = "sweep"
_REPORT_FILES = ("sweep.json", "sweep.csv", "report.md")


@dataclass(frozen=True)
class Options:
    """Command options of :func:`sweep` (see the CLI help for each)."""

    dataset: str
    run_dir: Path
    sets: tuple | Mapping = ()     # '--set' texts 'section.key=v1,v2' or {'section.key': [v1, v2]}
    seeds: int = 1                 # chip instances: [variation] seed 0..seeds-1
    n: int | None = None
    seed: int | None = None        # dataset generator seed (built-in NAME)
    n_train: int | None = None
    n_test: int | None = None
    jobs: int | None = None        # local worker processes (default: the usable cores)
    scheduler: str | None = None   # 'tcp://host:port' of an existing Dask cluster instead
    config: str | None = None      # the base config (default: built-in defaults)
    weights: str | None = None
    readout: str = "ridge"
    force: bool = False
    progress: bool | None = None   # None: only on a TTY and not under CI
    plots: bool = True
    engine: str = DEFAULT_ENGINE
    test_dataset: str | None = None  # a test-split file: ``dataset`` is then the training file


@dataclass(frozen=True)
class Unit:
    """One grid point on one chip instance."""

    name: str          # 'p003_s001': point 3, [variation] seed 1
    point: int
    seed: int
    values: tuple      # the point's value of each swept key
    cfg: Config
    digest: str        # cfg.digest(): what its chunk files must have been made with


def sweep(dataset: str | os.PathLike | Options, run_dir: str | os.PathLike | None = None,
          **options) -> dict:
    """Run (or resume) a sweep into a run directory; returns the summary (sweep.json's content).

    ``sweep(opts)`` with an :class:`Options`, or ``sweep(dataset, run_dir, **options)`` with
    ``options`` the other fields of :class:`Options`, e.g. ``sets=['circuit.levels=0,4'],
    seeds=3, engine='twin'``. Raises InputError/ConfigError for bad input (a bad ``--set``, an
    unreachable scheduler) before the run directory is touched, :class:`~.evaluate.Interrupted`
    on Ctrl-C.
    """
    opts = options_of(Options, "sweep", dataset, run_dir, options)
    t_start = time.perf_counter()
    run_dir = check_options(opts)
    if opts.seeds < 1:
        raise InputError(f"--seeds {opts.seeds}: need at least 1 chip instance")
    base = load_config(opts.config)
    axes = parse_axes(opts.sets, base)
    points = point_configs(base, axes)
    units = _units(points, axes, opts)
    # A scheduler is connected now: unreachable -> one line before the run directory is touched.
    cluster = Cluster(jobs=opts.jobs, scheduler=opts.scheduler)
    try:
        return _sweep_on(opts, run_dir, base, axes, points, units, cluster, t_start)
    except BaseException:
        cluster.abort()
        raise


def _units(points: list, axes: list, opts: Options) -> list[Unit]:
    """Every (point, instance), its config checked by the engine (an option it cannot simulate
    is refused now, naming the point)."""
    eng = get_engine(opts.engine)
    units = []
    for p, (values, cfg) in enumerate(points):
        for s in range(opts.seeds):
            inst = instance_config(cfg, s)
            try:
                eng.check(inst)
            except ConfigError as exc:
                where = ", ".join(f"{a.name}={value_text(v)}" for a, v in zip(axes, values))
                raise ConfigError(f"--engine {opts.engine} at {'--set ' + where + ', ' if where else ''}"
                                  f"--seeds instance {s}: {exc}") from None
            units.append(Unit(unit_name(p, s), p, s, values, inst, inst.digest()))
    return units


def _sweep_on(opts: Options, run_dir: Path, base: Config, axes: list, points: list,
              units: list[Unit], cluster: Cluster, t_start: float) -> dict:
    ds, ds_ident = rundir.resolve_dataset(opts.dataset, run_dir, n=opts.n, seed=opts.seed,
                                            test_spec=opts.test_dataset, force=opts.force)
    chosen = rundir.select(ds, opts.n_train, opts.n_test)
    identity = {"kind": MANIFEST_KIND, "config_digest": base.digest(),
                "grid": [[a.name, [value_text(v) for v in a.values]] for a in axes],
                "seeds": opts.seeds, "selected": chosen, "engine": opts.engine,
                "weights_digest": file_digest(opts.weights) if opts.weights else None,
                "dataset": ds_ident}
    _open_run_dir(run_dir, identity, opts.force)
    rundir.write_manifest(run_dir, {**identity, "config": base.to_toml(),
                                    "weights": str(Path(opts.weights).resolve()) if opts.weights else None,
                                    "cimspice_version": __version__})
    for name in _REPORT_FILES:   # a report always describes a finished run of this manifest
        with contextlib.suppress(FileNotFoundError):
            (run_dir / name).unlink()

    order = [(split, i) for split in SPLITS for i in chosen[split]]
    size = chunk_size(opts.engine)
    chunks = [order[k:k + size] for k in range(0, len(order), size)]
    pending = _pending(run_dir, units, chunks, opts.engine)
    n_total = len(units) * len(order)
    n_todo = sum(len(chunks[c]) for cs in pending.values() for c in cs)
    timing = {"jobs": 0, "scheduler": opts.scheduler or "local", "n_simulated": n_todo,
              "wall_time_s": 0.0, "cluster_start_s": None}
    if n_todo:
        t0 = time.perf_counter()
        try:
            with cluster:   # closed at the end, aborted (workers stopped) on an exception
                ready = _run(opts, run_dir, ds, units, points, chunks, pending, cluster,
                             n_total - n_todo, n_total)
                timing.update(jobs=cluster.n_threads, cluster_start_s=ready - t0)
        except KeyboardInterrupt:
            left = sum(len(chunks[c]) for cs in _pending(run_dir, units, chunks, opts.engine).values()
                       for c in cs)
            raise Interrupted(f"interrupted: {n_total - left} of {n_total} {opts.engine} samples kept "
                              f"in {run_dir / 'results'}; rerun the same command to resume") from None
        timing["wall_time_s"] = time.perf_counter() - t0
    timing["wall_time_s_invocation"] = time.perf_counter() - t_start

    summary = _summarise(run_dir, ds, units, len(chunks), opts)
    summary.update(title=ds_ident.get("name", ""), keys=[a.name for a in axes], seeds=opts.seeds,
                   dataset=ds_ident, selected={k: len(v) for k, v in chosen.items()},
                   config_digest=base.digest(), timing=timing)
    write_sweep_report(run_dir, summary, plots=opts.plots)
    return summary


def _summarise(run_dir: Path, ds, units: list[Unit], n_chunks: int, opts: Options) -> dict:
    """The figures of every unit, from its chunk files alone (a resumed sweep reports what an
    uninterrupted one would), and their statistics per point."""
    n_classes = max(len(ds.classes), int(np.max(ds.labels)) + 1)
    rows, first = [], []
    for u in units:
        recs = [r for c in range(n_chunks) for r in _records(run_dir, u, c)]
        rep = compute_report(recs, readout=opts.readout, circuit_train=True, engine=opts.engine,
                             n_classes=n_classes, class_names=list(ds.classes))
        rows.append(unit_row(u.values, u.seed, rep))
        first += recs[:1]
    return {"cimspice_sweep": SWEEP_FORMAT, "engine": opts.engine, "readout": opts.readout,
            "chance": 1.0 / n_classes, "rows": rows, "points": point_stats(rows),
            "versions": versions(first)}


def chunk_size(engine: str) -> int:
    """Samples per chunk file: the twin's (~5 ms each) 64 at a time (~0.3 s of work: few files,
    small Dask overhead per task); a simulator's (seconds each) one at a time, so a killed run
    loses only the samples that were running."""
    return 64 if engine == "twin" else 1


def _pending(run_dir: Path, units: list[Unit], chunks: list, engine: str) -> dict:
    """{unit name: [chunk numbers without a finished result file]}."""
    return {u.name: [c for c, ch in enumerate(chunks)
                     if not chunk_done(read_chunk(chunk_path(run_dir, u.name, c)), u.digest, engine,
                                       [i for _, i in ch])]
            for u in units}


def _records(run_dir: Path, unit: Unit, chunk: int):
    data = read_chunk(chunk_path(run_dir, unit.name, chunk))
    if data is None:
        raise InputError(f"{chunk_path(run_dir, unit.name, chunk)}: result file missing or "
                         f"unreadable; rerun the sweep command to finish the run")
    return chunk_records(data, unit.digest)


def _open_run_dir(run_dir: Path, identity: dict, force: bool) -> None:
    """Create the run directory and ``results/``; refuse to mix results of another sweep (its
    manifest differs) unless ``force``, which deletes them; remove temp files of a killed run."""
    run_dir.mkdir(exist_ok=True)
    results = run_dir / "results"
    old = rundir.read_manifest(run_dir)
    if old is not None and old.get("kind") != MANIFEST_KIND:
        raise InputError(f"{run_dir}: holds an evaluate run (manifest.json), not a sweep; use "
                         f"another -o directory")
    if old is None and results.is_dir() and any(results.glob("*.npz")) and not force:
        raise InputError(f"{run_dir}: has result files but no manifest.json; use another -o "
                         f"directory or --force to discard them")
    if old is not None and not force:
        for key, what in (("config_digest", "base config"), ("grid", "--set grid"),
                          ("seeds", "--seeds"), ("selected", "sample selection"),
                          ("engine", "engine"), ("weights_digest", "weights")):
            if old.get(key) != identity[key]:
                raise InputError(f"{run_dir}: a sweep made with another {what} ({key} "
                                 f"{old.get(key)!r:.60} != {identity[key]!r:.60}); use another -o "
                                 f"directory or --force to discard its results")
        if old.get("dataset", {}).get("digest") != identity["dataset"]["digest"]:
            raise InputError(f"{run_dir}: a sweep made with another dataset "
                             f"({old.get('dataset', {}).get('path')}); use another -o directory or "
                             f"--force to discard its results")
    results.mkdir(exist_ok=True)
    for f in results.iterdir():
        if f.name.endswith(".tmp") or (force and f.suffix == ".npz"):
            with contextlib.suppress(OSError):
                f.unlink()


def _run(opts: Options, run_dir: Path, ds, units: list[Unit], points: list, chunks: list,
         pending: dict, cluster: Cluster, n_before: int, n_total: int) -> float:
    """Program the units that have chunks to run, then run those chunks, both on the cluster;
    returns when the cluster was ready (``time.perf_counter()``)."""
    todo = [u for u in units if pending[u.name]]
    models, calib = {}, {}
    for u in todo:   # the SSM and the calibration samples are the same for every instance
        if u.point not in models:
            cfg = points[u.point][1]
            models[u.point] = make_model(cfg, n_input_rows(ds.sensor_size, cfg), opts.weights)
            calib[u.point] = calibration_schedules(ds, cfg)
    cluster.ensure(max(len(todo), sum(len(pending[u.name]) for u in todo)))
    t_ready = time.perf_counter()
    mappings = _program(opts, cluster, [ProgramJob(u.name, models[u.point], u.cfg.to_toml(),
                                                   *calib[u.point], opts.engine) for u in todo])
    jobs = []
    for u in todo:
        error, mapping, died = mappings[u.name]
        for c in pending[u.name]:
            if mapping is None:   # not programmed: every sample of the unit is recorded failed
                samples = [(sp, i, int(ds.labels[i])) for sp, i in chunks[c]]
                write_file_bytes(chunk_path(run_dir, u.name, c), chunk_bytes(
                    samples, [None] * len(samples), u.digest, opts.engine,
                    errors=[f"program: {error}"] * len(samples), died=died))
                n_before += len(samples)
                continue
            chosen = {s: [i for sp, i in chunks[c] if sp == s] for s in SPLITS}
            tasks = [dataclasses.replace(t, keep_waveforms=False) for t in make_tasks(
                ds, chosen, u.cfg, models[u.point], mapping, circuit_train=True, engine=opts.engine)]
            jobs.append(ChunkJob(u.name, c, tasks, u.digest))
    _run_chunks(opts, run_dir, cluster, jobs, n_before, n_total)
    return t_ready


def _program(opts: Options, cluster: Cluster, jobs: list[ProgramJob]) -> dict:
    """{unit: (error, CircuitMapping or None, died)}: each unit's chip programmed on a worker
    (calibration runs the engine in non-linear write modes)."""
    mappings = {}
    with progress(len(jobs), "program", opts.progress) as bar:
        for job, value, died in cluster.map_unordered(program_unit, jobs, keys=[j.unit for j in jobs],
                                                      batch_s=BATCH_S):
            error, mapping = (died, None) if died else value
            mappings[job.unit] = (error, mapping, bool(died))
            bar.update(1)
    return mappings


def _run_chunks(opts: Options, run_dir: Path, cluster: Cluster, jobs: list[ChunkJob],
                n_before: int, n_total: int) -> None:
    """The chunks on the cluster, longest first (event count ~ engine time: no long chunk left
    alone at the end); each chunk file a worker returns is written here, atomically."""
    jobs = sorted(jobs, key=lambda j: -sum(t.events.size for t in j.tasks))
    n_failed = 0
    with progress(n_total, opts.engine, opts.progress) as bar:
        bar.update(n_before)
        for job, value, died in cluster.map_unordered(run_chunk, jobs, keys=[j.key for j in jobs],
                                                      batch_s=BATCH_S):
            if died:   # the chunk killed its workers: ideal states, the error, redone by a rerun
                data, n_bad = ideal_only(job, died), len(job.tasks)
            else:
                data, n_bad = value[0], value[1]["n_failed"]
            write_file_bytes(chunk_path(run_dir, job.unit, job.chunk), data)
            bar.update(len(job.tasks))
            if n_bad:
                n_failed += n_bad
                bar.set_postfix(failed=n_failed)
