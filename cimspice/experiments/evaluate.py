"""Accuracy of the simulated hardware over a dataset: ideal vs circuit states, readout, report.

One call, :func:`evaluate`, runs the whole job into a run directory (layout: :mod:`.rundir`)::

    report = evaluate("dvs-bars", "run/", n=60, circuit_train=True)   # or evaluate(Options(...))

Steps: dataset -> selection (first ``n_train`` training and ``n_test`` test samples, in file
order) -> SSM model and circuit mapping, both made once (programmed on the calibration samples
of :func:`cimspice.pipeline.calibration_schedules`: every sample runs on the same hardware, as
with ``simulate --index``) -> one :class:`~.tasks.SampleTask` per sample. Ideal-only tasks
run in-process, engine tasks on dask.distributed (:mod:`.workers`): ``jobs`` local worker
processes, or the workers of an existing cluster (``scheduler='tcp://host:port'``); the twin
(milliseconds a sample) runs in-process while the run is short (:func:`_in_process`). Workers
return each sample file's bytes and this process writes them atomically, so a killed run (or
worker) leaves only complete files, a rerun resumes by skipping them, and the report is computed
from the sample files alone (:mod:`.report`).
"""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from .. import __version__
from ..config import load_config
from ..engines.registry import DEFAULT_ENGINE, get_engine
from ..errors import CimspiceError, InputError
from ..io.files import file_digest
from ..pipeline import calibration_schedules, make_model, program
from ..readout import make_readout
from ..schedule import n_input_rows
from . import rundir
from .report import compute_report, versions, write_report
from .tasks import (SampleTask, collect, is_done, make_tasks, run_sample, run_to_file, sample_path,
                    write_file_bytes, write_sample)
from .workers import Cluster, default_jobs, progress


# Seconds of engine work per Dask task: twin samples (~25 ms) go in batches, so the per-task
# overhead (~5 ms) stays small; ngspice samples (seconds) one per task.
BATCH_S = 0.5
# An in-process engine (the twin) runs here while the work left looks shorter than this (s);
# local workers take ~3 s to start and then share the rest.
IN_PROCESS_S = 10.0


class Interrupted(Exception):
    """Ctrl-C during a run: workers stopped, finished samples kept (CLI exit code 130)."""


@dataclass(frozen=True)
class Options:
    """Command options of :func:`evaluate` (see the CLI help for each)."""

    dataset: str
    run_dir: Path
    n: int | None = None
    seed: int | None = None
    n_train: int | None = None
    n_test: int | None = None
    jobs: int | None = None        # local worker processes (default: the usable cores)
    scheduler: str | None = None   # 'tcp://host:port' of an existing Dask cluster instead
    config: str | None = None
    weights: str | None = None
    circuit_train: bool = False    # also simulate the training split ('retrained' protocol)
    readout: str = "ridge"
    strict: bool = False
    force: bool = False
    retry_failed: bool = False
    progress: bool | None = None   # None: only on a TTY and not under CI
    plots: bool = True
    engine: str = DEFAULT_ENGINE   # engines.registry name: ngspice (the truth), vacask
    test_dataset: str | None = None  # a test-split file: ``dataset`` is then the training file


def evaluate(dataset: str | os.PathLike | Options, run_dir: str | os.PathLike | None = None,
             **options) -> dict:
    """Run (or resume) an evaluation into a run directory; returns the report dict.

    ``evaluate(opts)`` with an :class:`Options`, or ``evaluate(dataset, run_dir, **options)``
    with ``dataset`` a built-in name or a dataset file and ``options`` the other fields of
    :class:`Options` (e.g. ``n=60, circuit_train=True, jobs=2``, or
    ``scheduler='tcp://host:8786'`` to run the engine on an existing Dask cluster).

    Raises InputError/ConfigError for bad input (an unreachable scheduler included) before the
    run directory is touched, CimspiceError when a sample fails under ``strict``,
    :class:`Interrupted` on Ctrl-C.
    """
    return _evaluate(options_of(Options, "evaluate", dataset, run_dir, options))


def options_of(cls, command: str, dataset, run_dir, options: dict):
    """The options of ``command(opts)`` (an instance of ``cls``, returned as is) or of
    ``command(dataset, run_dir, **options)`` (the other fields of ``cls``)."""
    if isinstance(dataset, cls):
        if run_dir is not None or options:
            raise TypeError(f"{command}(opts): give either an Options or dataset, run_dir and "
                            f"options, not both")
        return dataset
    if run_dir is None:
        raise TypeError(f"{command}(dataset, run_dir, ...): run_dir is required")
    return cls(dataset=os.fspath(dataset), run_dir=Path(run_dir), **options)


def check_options(opts) -> Path:
    """The run directory of ``opts`` (an :class:`Options`, or sweep's), after the checks that
    need no file: its parent exists, ``jobs``/``scheduler``, readout and engine names."""
    run_dir = Path(opts.run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise InputError(f"-o {run_dir}: exists and is not a directory; give a run directory")
    if not run_dir.parent.is_dir():
        raise InputError(f"-o {run_dir}: parent directory {run_dir.parent} does not exist; create it first")
    if opts.jobs is not None and opts.jobs < 1:
        raise InputError(f"--jobs {opts.jobs}: need at least 1 worker process")
    if opts.jobs is not None and opts.scheduler is not None:
        raise InputError(f"--jobs {opts.jobs} with --scheduler {opts.scheduler}: the cluster's "
                         f"workers set the parallelism; give one of them")
    make_readout(opts.readout)  # unknown kind -> error now, not after the simulations
    get_engine(opts.engine)     # unknown engine -> error now
    return run_dir


def _evaluate(opts: Options) -> dict:
    t_start = time.perf_counter()
    run_dir = check_options(opts)
    cfg = load_config(opts.config)
    # A scheduler is connected now: unreachable -> one line before the run directory is touched.
    # Local workers start when there are engine tasks to run.
    cluster = Cluster(jobs=opts.jobs, scheduler=opts.scheduler)
    try:
        return _evaluate_on(opts, run_dir, cfg, cluster, t_start)
    except BaseException:
        cluster.abort()
        raise


def _evaluate_on(opts: Options, run_dir: Path, cfg, cluster: Cluster, t_start: float) -> dict:
    ds, ds_ident = rundir.resolve_dataset(opts.dataset, run_dir, n=opts.n, seed=opts.seed,
                                            test_spec=opts.test_dataset, force=opts.force)
    chosen = rundir.select(ds, opts.n_train, opts.n_test)

    get_engine(opts.engine).check(cfg)   # an option the engine cannot do: refused before any run
    model = make_model(cfg, n_input_rows(ds.sensor_size, cfg), opts.weights)
    schedules, record = calibration_schedules(ds, cfg)
    mapping = program(model, cfg, schedules, record=record)

    digest = cfg.digest()
    identity = {"config_digest": digest, "dataset": ds_ident,
                "weights_digest": file_digest(opts.weights) if opts.weights else None,
                "hardware_digest": rundir.hardware_digest(model, mapping), "engine": opts.engine}
    rundir.open_run_dir(run_dir, identity, opts.force)
    manifest = {"format": rundir.MANIFEST_FORMAT, **identity, "config": cfg.to_toml(),
                "weights": str(Path(opts.weights).resolve()) if opts.weights else None,
                "selected": chosen, "circuit_train": opts.circuit_train, "readout": opts.readout,
                "cimspice_version": __version__}
    # Its timing block is kept for a rerun that has nothing left to simulate.
    old_report = rundir.drop_report(run_dir)
    rundir.write_manifest(run_dir, manifest)

    tasks = make_tasks(ds, chosen, cfg, model, mapping, circuit_train=opts.circuit_train,
                       engine=opts.engine)
    todo = [t for t in tasks if not is_done(sample_path(run_dir, t.key), t, digest, opts.retry_failed)]
    ideal_todo = [t for t in todo if not t.simulate]
    engine_todo = [t for t in todo if t.simulate]
    n_engine_total = sum(t.simulate for t in tasks)
    n_done_before = n_engine_total - len(engine_todo)

    try:
        with progress(len(ideal_todo), "ideal", opts.progress if ideal_todo else False) as bar:
            for t in ideal_todo:  # ideal states take milliseconds: no workers needed
                out = run_sample(t)
                write_sample(sample_path(run_dir, t.key), out, t, digest)
                bar.update(1)
                if out.error and opts.strict:
                    raise _strict_stop(t.key, out.error)
        with cluster:   # closed at the end, aborted (workers stopped) on an exception
            timing = _run_engine(engine_todo, run_dir, digest, opts, cluster, n_done_before,
                                 n_engine_total)
    except KeyboardInterrupt:
        done = sum(is_done(sample_path(run_dir, t.key), t, digest, opts.retry_failed)
                   for t in tasks if t.simulate)
        raise Interrupted(f"interrupted: {done} of {n_engine_total} {opts.engine} samples kept in "
                          f"{run_dir / 'samples'}; rerun the same command to resume") from None

    records = collect(run_dir, chosen)
    report = compute_report(records, readout=opts.readout, circuit_train=opts.circuit_train,
                            engine=opts.engine,
                            n_classes=max(len(ds.classes), int(np.max(ds.labels)) + 1),
                            class_names=list(ds.classes))
    old = old_report if old_report and old_report.get("config_digest") == digest else None
    if timing["n_simulated"] == 0 and old and old.get("timing", {}).get("n_simulated"):
        timing = {**old["timing"], "note": "from the invocation that simulated the samples"}
    timing["wall_time_s_invocation"] = time.perf_counter() - t_start
    report["timing"] = timing
    report["dataset"] = ds_ident
    report["selected"] = {k: len(v) for k, v in chosen.items()}
    report["config"] = manifest["config"]
    report["config_digest"] = digest
    report["weights"] = manifest["weights"]
    report["versions"] = versions(records)
    report["mapping"] = {"gain_method": mapping.gain_method, "headroom": float(mapping.headroom),
                         "n_inputs": mapping.n_inputs, "n_states": mapping.n_states}
    write_report(run_dir, report, plots=opts.plots)
    return report


def _strict_stop(key: str, error: str) -> CimspiceError:
    return CimspiceError(f"sample {key} failed: {error}; stopped by --strict (rerun without it "
                         f"to record failures and continue)")


def _run_engine(tasks: list[SampleTask], run_dir: Path, digest: str, opts: Options,
                cluster: Cluster, n_before: int, n_total: int) -> dict:
    """Engine tasks, longest first, in this process (:func:`_in_process`) and then on the
    cluster; each sample file is written here, atomically, as it arrives. Returns the timing
    block."""
    t0 = time.perf_counter()
    n_failed = 0
    t_start = None
    n_threads = 0
    n_local = 0
    if tasks:
        # Longest first (event count ~ engine time): no long sample left alone at the end.
        tasks = sorted(tasks, key=lambda t: -t.events.size)
        bar = progress(n_total, opts.engine, opts.progress)
        bar.update(n_before)
        with bar:
            def done(summary: dict) -> None:
                nonlocal n_failed
                bar.update(1)
                if summary["error"]:
                    n_failed += 1
                    bar.set_postfix(failed=n_failed)
                    if opts.strict:
                        raise _strict_stop(summary["key"], summary["error"])

            n_local = _in_process(tasks, run_dir, digest, opts, done)
            rest = tasks[n_local:]
            if rest:
                t1 = time.perf_counter()
                cluster.ensure(len(rest))
                t_start = time.perf_counter() - t1
                n_threads = cluster.n_threads
                for (task, _), value, died in cluster.map_unordered(
                        run_to_file, [(t, digest) for t in rest], keys=[t.key for t in rest],
                        batch_s=BATCH_S):
                    path = sample_path(run_dir, task.key)
                    if died:  # the task killed its workers: record the failure with ideal states
                        out = run_sample(dataclasses.replace(task, simulate=False, keep_waveforms=False))
                        write_sample(path, dataclasses.replace(out, error=died), task, digest)
                        summary = {"key": task.key, "error": died}
                    else:
                        data, summary = value
                        write_file_bytes(path, data)
                    done(summary)
    wall = time.perf_counter() - t0
    n = len(tasks)
    jobs = n_threads or (1 if n_local else opts.jobs or default_jobs())
    where = opts.scheduler or ("local" if n_threads or not n_local else "in-process")
    return {"jobs": jobs, "jobs_requested": opts.jobs if opts.scheduler else (opts.jobs or default_jobs()),
            "scheduler": where, "n_simulated": n, "n_in_process": n_local,
            "wall_time_s": wall if n else 0.0, "cluster_start_s": t_start,
            "samples_per_s": n / wall if n and wall > 0 else None}


def _in_process(tasks: list[SampleTask], run_dir: Path, digest: str, opts: Options, done) -> int:
    """Run the first tasks in this process when the engine allows it (the twin: milliseconds a
    sample, against seconds to start local workers) and no cluster was named: all of them with
    ``jobs = 1``; with ``jobs`` unset, until the time left at the pace so far would exceed
    :data:`IN_PROCESS_S` (then workers take the rest); none with ``jobs > 1`` (asked for).
    Returns how many ran here."""
    if not get_engine(opts.engine).in_process or opts.scheduler or (opts.jobs or 1) > 1:
        return 0
    t0 = time.perf_counter()
    with threadpool_limits(1):   # as on a worker (small matrices; no threads competing)
        for n, task in enumerate(tasks):
            left = len(tasks) - n
            if opts.jobs is None and n >= 2 and (time.perf_counter() - t0) / n * left > IN_PROCESS_S:
                return n
            out = run_sample(task)
            write_sample(sample_path(run_dir, task.key), out, task, digest)
            done({"key": task.key, "error": out.error})
    return len(tasks)
