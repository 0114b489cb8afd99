"""Accuracy of the simulated hardware over a dataset: ideal vs SPICE states, readout, report.

One call, :func:`evaluate`, runs the whole job into a run directory::

    RUN_DIR/manifest.json          what the samples were made from (config, dataset, weights digests)
    RUN_DIR/dataset.npz            the generated dataset (only when a built-in NAME was given)
    RUN_DIR/samples/<split>_<index>.h5   one result file per sample (results.write_result layout)
    RUN_DIR/report.json, report.md, trajectories.png, accuracy.png, confusion.png, nrmse_hist.png

Steps: dataset -> selection (first ``n_train`` training and ``n_test`` test samples, in file
order) -> SSM model and circuit mapping, both made once (the mapping is calibrated on the first
``[circuit] n_calibration`` training samples of the dataset: every sample runs on the same
programmed hardware) -> one :class:`SampleTask` per sample. :func:`run_sample` is a pure,
top-level function of the task (events, config TOML, model and mapping arrays), so a
distributed scheduler can run it as is; here ideal-only tasks run in-process and SPICE tasks
across ``jobs`` worker processes. Each finished sample is written atomically, so a killed run
resumes by skipping finished files, and the report is computed from the sample files alone
(:func:`collect` + :func:`compute_report`), which makes a resumed run's report equal to an
uninterrupted one (apart from the ``timing`` block, which describes the invocation).

Accuracy protocols (DESIGN §2): ``ideal`` (readout trained and tested on ideal states),
``transfer`` (the same readout applied to the SPICE test states), ``retrained`` (readout
trained on SPICE training states, needs ``spice_train``; otherwise reported as n/a).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import multiprocessing
import os
import platform
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import __version__
from .config import Config, config_from_dict
from .errors import CimspiceError, ConfigError, InputError

MANIFEST_FORMAT = 1
PROTOCOLS = ("ideal", "transfer", "retrained")
SPLIT_NAMES = {0: "train", 1: "test"}
_BLAS_ENV = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


class Interrupted(Exception):
    """Ctrl-C during a run: workers stopped, finished samples kept (CLI exit code 130)."""


# ------------------------------------------------------------------------------------------
# The per-sample task (pure)
# ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SampleTask:
    """Everything one sample needs, as plain picklable values (no open files, no objects
    with behaviour): a scheduler on another machine can run :func:`run_sample` on it."""

    key: str                  # '<split>_<index>', also the file stem
    split: str                # 'train' | 'test'
    index: int                # sample index in the dataset
    label: int
    events: np.ndarray        # structured event array of the sample (µs timestamps)
    sensor_size: tuple
    source: str
    config_toml: str
    model: dict               # SSMParams fields: B (N, C_in), taus (K,), groups (N,), C, D
    mapping: dict             # CircuitMapping fields (arrays and scalars)
    spice: bool               # run ngspice (else ideal states only)
    keep_waveforms: bool = False  # store the dense w traces (one sample per run, for plots)


def run_sample(task: SampleTask) -> dict:
    """Ideal (and SPICE) states of one sample; never raises for a failing sample.

    Returns a dict: key, split, index, label, sample_times (M,) s, ideal (M, N) or None,
    spice / w_plus / w_minus (M, N) or None, nrmse, spice_time_s, wall_time_s,
    ngspice_version, schedule (row, t_on s, width s, amplitude and counts), waveforms
    (dict, when kept) and error ('' or a one-line '<Type>: message').
    """
    from .events import EventSample
    from .mapping import CircuitMapping
    from .pipeline import build, simulate
    from .ssm import SSMParams

    t0 = time.perf_counter()
    out = failed_output(task, "")
    try:
        cfg = config_from_toml(task.config_toml)
        model = SSMParams(**task.model)
        mapping = CircuitMapping(**task.mapping)
        sample = EventSample(task.events, tuple(task.sensor_size), task.label, task.source)
        prep = build(sample, cfg, model=model, mapping=mapping)
        sch = prep.schedule
        out["sample_times"] = prep.sample_times
        out["ideal"] = prep.ideal
        out["schedule"] = {"row": sch.row, "t_on": sch.t_on, "width": sch.width,
                           "amplitude": sch.amplitude, "n_events": sch.n_events,
                           "n_pulses": sch.n_pulses, "n_merged": sch.n_merged,
                           "n_dropped": sch.n_dropped}
        if task.spice:
            res = simulate(prep, keep_waveforms=task.keep_waveforms)
            out.update(spice=res.spice, w_plus=res.w_plus, w_minus=res.w_minus,
                       nrmse=float(res.nrmse), spice_time_s=float(res.spice_time_s),
                       ngspice_version=res.ngspice_version, waveforms=res.waveforms)
            if not np.all(np.isfinite(res.spice)):
                out["error"] = "NonFiniteStates: SPICE states contain NaN/inf (check [device] mode and gains)"
    except Exception as exc:  # a failing sample is data for the report, not a crash
        out["error"] = _one_line(exc)
    out["wall_time_s"] = time.perf_counter() - t0
    return out


def failed_output(task: SampleTask, error: str) -> dict:
    """A :func:`run_sample` result with no states (the starting point of every result)."""
    return {"key": task.key, "split": task.split, "index": task.index, "label": task.label,
            "sample_times": None, "ideal": None, "spice": None, "w_plus": None, "w_minus": None,
            "nrmse": float("nan"), "spice_time_s": 0.0, "wall_time_s": 0.0,
            "ngspice_version": "", "schedule": None, "waveforms": {}, "error": error}


def config_from_toml(text: str) -> Config:
    """Config from TOML text (the inverse of ``Config.to_toml``)."""
    import tomllib

    return config_from_dict(tomllib.loads(text), "config")


def _one_line(exc: BaseException) -> str:
    msg = " ".join(str(exc).split()) or "no message"
    return f"{type(exc).__name__}: {msg}"


# ------------------------------------------------------------------------------------------
# Sample files
# ------------------------------------------------------------------------------------------

def sample_path(run_dir: Path, key: str) -> Path:
    return Path(run_dir) / "samples" / f"{key}.h5"


def write_sample(path: Path, out: dict, task: SampleTask, config_digest: str) -> None:
    """Write one :func:`run_sample` output atomically (results.write_result layout)."""
    from .results import Result, write_result

    m = task.mapping
    sch = out["schedule"] or {}
    events = None
    if out["schedule"] is not None:
        events = {"t": sch["t_on"], "c": sch["row"], "u": sch["amplitude"], "width": sch["width"]}
    have = out["ideal"] is not None
    res = Result(
        sample_times=out["sample_times"] if have else np.zeros(0),
        ideal=out["ideal"][None] if have else np.zeros((1, 0, 0)),
        spice=None if out["spice"] is None else out["spice"][None],
        events=events,
        model={"B": task.model["B"], "taus": task.model["taus"], "groups": task.model["groups"],
               "G_plus": m["g_plus"], "G_minus": m["g_minus"], "gains": m["gains"],
               "r_tia": m["r_tia"], "gain_method": m["gain_method"]},
        labels=np.array([task.label]),
        metrics={"state_nrmse": out["nrmse"], "spice_time_s": out["spice_time_s"],
                 "wall_time_s": out["wall_time_s"],
                 **{k: sch[k] for k in ("n_events", "n_pulses", "n_merged", "n_dropped") if k in sch}},
        attrs={"key": task.key, "split": task.split, "index": task.index,
               "config": task.config_toml, "config_digest": config_digest,
               "seed": config_from_toml(task.config_toml).ssm.seed, "source": task.source,
               "ngspice_version": out["ngspice_version"], "error": out["error"],
               "simulated": bool(task.spice)},
        waveforms=_waveforms(out),
    )
    if out["w_plus"] is not None:
        res.waveforms = {**res.waveforms, "w_plus_at_samples": out["w_plus"],
                         "w_minus_at_samples": out["w_minus"]}
    write_result(path, res)


def _waveforms(out: dict) -> dict:
    w = out.get("waveforms") or {}
    return {k: w[k] for k in ("time", "w_plus", "w_minus") if k in w}


@dataclass
class SampleRecord:
    """What the report needs from one sample file."""

    key: str
    split: str
    index: int
    label: int
    ideal: np.ndarray | None     # (M, N)
    spice: np.ndarray | None     # (M, N)
    nrmse: float
    spice_time_s: float
    error: str
    simulated: bool
    config_digest: str
    ngspice_version: str


def read_sample(path: Path) -> SampleRecord:
    """One sample file -> :class:`SampleRecord` (raises InputError if unreadable)."""
    from .results import read_result

    r = read_result(path)
    a = r.attrs
    ideal = r.ideal[0] if r.ideal.size else None
    spice = r.spice[0] if r.spice is not None else None
    return SampleRecord(
        key=str(a.get("key", Path(path).stem)), split=str(a.get("split", "")),
        index=int(a.get("index", -1)),
        label=int(r.labels[0]) if r.labels is not None else -1, ideal=ideal, spice=spice,
        nrmse=float(r.metrics.get("state_nrmse", float("nan"))),
        spice_time_s=float(r.metrics.get("spice_time_s", 0.0)), error=str(a.get("error", "")),
        simulated=bool(a.get("simulated", False)), config_digest=str(a.get("config_digest", "")),
        ngspice_version=str(a.get("ngspice_version", "")))


def _is_done(path: Path, task: SampleTask, config_digest: str, retry_failed: bool) -> bool:
    """A readable file made with this config that has what the task asks for."""
    if not path.is_file():
        return False
    try:
        rec = read_sample(path)
    except (CimspiceError, OSError, KeyError, ValueError):
        return False  # unreadable (e.g. written by an older version): recompute it
    if rec.config_digest != config_digest:
        return False
    if rec.error:
        return not retry_failed and (rec.simulated or not task.spice)
    return rec.ideal is not None and (rec.spice is not None or not task.spice)


# ------------------------------------------------------------------------------------------
# Dataset, selection, run directory
# ------------------------------------------------------------------------------------------

def dataset_digest(ds) -> str:
    """Content hash of an events.EventDataset (events, offsets, labels, split, sensor)."""
    h = hashlib.sha256()
    for arr in (ds.events, ds.offsets, ds.labels, ds.split if ds.split is not None else np.zeros(0),
                np.asarray(ds.sensor_size)):
        a = np.ascontiguousarray(arr)
        h.update(str(a.dtype).encode() + str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


def hardware_digest(model, mapping) -> str:
    """Hash of the SSM and of the programmed circuit: a resumed run must not mix samples
    simulated on different hardware, even when the config text is the same."""
    h = hashlib.sha256()
    for name in ("B", "taus", "groups"):
        h.update(np.ascontiguousarray(getattr(model, name), dtype=float).tobytes())
    for name in ("g_plus", "g_minus", "g_rram_plus", "g_rram_minus", "r_tia", "tau", "gains"):
        h.update(np.ascontiguousarray(getattr(mapping, name), dtype=float).tobytes())
    return h.hexdigest()[:16]


def file_digest(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def resolve_dataset(spec: str, run_dir: Path, *, n: int | None = None, seed: int | None = None):
    """(EventDataset, identity dict): an existing file, or a built-in NAME generated into
    ``run_dir/dataset.npz`` with ``n`` samples and ``seed``."""
    from . import datasets as dsets
    from . import events as ev

    p = Path(spec)
    if p.exists():
        if n is not None or seed is not None:
            raise InputError(f"--dataset {spec}: --n and --seed generate a built-in dataset; they "
                             f"do not apply to a file (drop them or give a dataset name)")
        ds = ev.load_dataset(p)
        ident = {"kind": "file", "path": str(p.resolve()), "name": str(ds.params.get("name", p.stem)),
                 "seed": ds.params.get("seed"), "n": len(ds)}
    else:
        known = sorted(i.name for i in dsets.list_datasets())
        if spec not in known:
            hint = "no such file, and not " if (p.suffix or os.sep in spec) else ""
            raise InputError(f"--dataset {spec}: {hint}unknown dataset name; known datasets: "
                             f"{', '.join(known)} (or give a dataset .npz file)")
        seed = 0 if seed is None else seed
        target = run_dir / "dataset.npz"
        old = _read_manifest(run_dir)
        want = {"kind": "builtin", "name": spec, "seed": seed, "n": n}
        reuse = (old is not None and target.is_file()
                 and {k: old["dataset"].get(k) for k in want} == want)
        if not reuse:
            made = dsets.make_dataset(spec, n, seed)
            run_dir.mkdir(parents=True, exist_ok=True)
            dsets.save_dataset(target, made)
        ds = ev.load_dataset(target)
        ident = {**want, "path": str(target.resolve()), "n_samples": len(ds)}
    ident["digest"] = dataset_digest(ds)
    return ds, ident


def derived_split(labels: np.ndarray) -> np.ndarray:
    """Split for a dataset file without one: the built-in rule (the k-th sample of each class
    is a test sample iff k % 4 == 1), so every class is in both splits when it has >= 2."""
    labels = np.asarray(labels)
    split = np.zeros(labels.size, dtype=np.int8)
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        split[idx[np.arange(idx.size) % 4 == 1]] = 1
    return split


def select(ds, n_train: int | None, n_test: int | None) -> dict:
    """{'train': indices, 'test': indices}: the first n of each split, in dataset order."""
    split = np.asarray(ds.split) if ds.split is not None else derived_split(ds.labels)
    chosen = {}
    for code, name, want in ((0, "train", n_train), (1, "test", n_test)):
        idx = np.flatnonzero(split == code)
        if want is None:
            want = idx.size
        if want < 1:
            raise InputError(f"--n-{name} {want}: need at least 1 {name} sample")
        if want > idx.size:
            raise InputError(f"--n-{name} {want}: the {name} split of {ds.source} has only "
                             f"{idx.size} samples; use --n-{name} <= {idx.size}")
        chosen[name] = [int(i) for i in idx[:want]]
    labels = np.asarray(ds.labels)[chosen["train"]]
    if np.unique(labels).size < 2:
        raise InputError(f"--n-train {len(chosen['train'])}: the selected training samples of "
                         f"{ds.source} hold {np.unique(labels).size} class; raise --n-train so "
                         f"that >= 2 classes are present")
    return chosen


def _read_manifest(run_dir: Path) -> dict | None:
    p = Path(run_dir) / "manifest.json"
    if not p.is_file():
        return None
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError):
        return None


def check_run_dir(run_dir: Path, identity: dict, force: bool) -> None:
    """Refuse to mix samples made from another config / dataset / weights (unless force,
    which deletes the old sample files)."""
    old = _read_manifest(run_dir)
    samples = Path(run_dir) / "samples"
    if old is None:
        if samples.is_dir() and any(samples.glob("*.h5")) and not force:
            raise InputError(f"{run_dir}: has sample files but no manifest.json; use another -o "
                             f"directory or --force to discard them")
    else:
        for what, key in (("config", "config_digest"), ("weights", "weights_digest"),
                          ("SSM or circuit mapping (weights or code changed)", "hardware_digest")):
            if old.get(key) != identity[key] and not force:
                raise InputError(f"{run_dir}: made with another {what} ({key} {old.get(key)} != "
                                 f"{identity[key]}); use another -o directory or --force to "
                                 f"discard its samples")
        if old.get("dataset", {}).get("digest") != identity["dataset"]["digest"] and not force:
            raise InputError(f"{run_dir}: made with another dataset ({old.get('dataset', {}).get('path')}); "
                             f"use another -o directory or --force to discard its samples")
    if force and samples.is_dir():
        for f in samples.iterdir():
            if f.suffix in (".h5", ".tmp"):
                f.unlink()


# ------------------------------------------------------------------------------------------
# Orchestration
# ------------------------------------------------------------------------------------------

def default_jobs() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _model_arrays(model) -> dict:
    return {f.name: getattr(model, f.name) for f in dataclasses.fields(model)}


def _mapping_arrays(mapping) -> dict:
    return {f.name: getattr(mapping, f.name) for f in dataclasses.fields(mapping)}


def _kill_children(pid: int | None = None) -> None:
    """SIGKILL the child processes of ``pid`` (default: this process). ngspice runs in its
    own session, so a signal to its worker does not reach it. Linux /proc; no-op elsewhere."""
    parent = os.getpid() if pid is None else pid
    for d in Path("/proc").glob("[0-9]*"):
        try:
            stat = (d / "stat").read_text()
            if int(stat.rsplit(")", 1)[1].split()[1]) == parent:
                os.kill(int(d.name), signal.SIGKILL)
        except (OSError, ValueError, IndexError):
            continue


def _on_term(signum, frame):
    _kill_children()
    raise SystemExit(128 + signum)  # unwinds atomic writes: no temp file left behind


def _worker_init() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's business
    signal.signal(signal.SIGTERM, _on_term)
    with contextlib.suppress(ImportError):
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)


def _worker_loop(conn) -> None:
    """Worker process: run the jobs received on ``conn`` until None or the main process is gone."""
    _worker_init()
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return  # the main process is gone (e.g. SIGKILLed): stop quietly
        if job is None:
            return
        summary = _work(job)
        try:
            conn.send(summary)
        except OSError:
            return


@dataclass(eq=False)
class _Worker:
    proc: multiprocessing.process.BaseProcess
    conn: object


class _WorkerSet:
    """Worker processes with one private pipe each and one job in flight per worker.

    No lock is shared between processes, so any worker can be killed at any moment without
    blocking the others; multiprocessing.Pool can hang in terminate() when a worker dies while
    holding its task-queue lock (seen here with --strict).
    """

    def __init__(self, n: int):
        self.ctx = multiprocessing.get_context("spawn")  # fresh interpreters: no inherited locks
        self.workers = [self._start() for _ in range(n)]

    def _start(self) -> _Worker:
        parent, child = self.ctx.Pipe()
        with _single_thread_blas():
            proc = self.ctx.Process(target=_worker_loop, args=(child,), daemon=True)
            proc.start()
        child.close()
        return _Worker(proc, parent)

    def _replace(self, w: _Worker) -> _Worker:
        self._kill([w])
        new = self._start()
        self.workers[self.workers.index(w)] = new
        return new

    def map_unordered(self, jobs: list):
        """Yield one summary per job as they finish; a worker that dies yields
        ``{'key', 'error', 'died': True, 'job'}`` and is replaced."""
        from multiprocessing.connection import wait

        pending = list(reversed(jobs))
        idle, busy = list(self.workers), {}
        while pending or busy:
            while idle and pending:
                w, job = idle.pop(), pending.pop()
                try:
                    w.conn.send(job)
                    busy[w] = job
                except OSError:  # died while idle: retry the job on a fresh worker
                    pending.append(job)
                    idle.append(self._replace(w))
            handles = {}
            for w in busy:
                handles[w.conn] = w
                handles[w.proc.sentinel] = w
            for h in wait(list(handles)):
                w = handles[h]
                if w not in busy:
                    continue  # both its pipe and its sentinel were ready
                job = busy.pop(w)
                summary = None
                try:
                    if w.conn.poll():
                        summary = w.conn.recv()
                except (EOFError, OSError):  # pipe closed: the worker died
                    pass
                if summary is not None:
                    idle.append(w)
                    yield summary
                    continue
                w.proc.join(timeout=5)
                code = w.proc.exitcode
                idle.append(self._replace(w))
                yield {"key": job[0].key, "died": True, "job": job,
                       "error": f"WorkerDied: worker process exited with code {code}",
                       "nrmse": float("nan"), "spice_time_s": 0.0}

    def close(self) -> None:
        """Normal end: ask every worker to stop."""
        for w in self.workers:
            try:
                w.conn.send(None)
            except OSError:
                pass
        for w in self.workers:
            w.proc.join(timeout=10)
        self._kill([w for w in self.workers if w.proc.is_alive()])

    def terminate(self, grace: float = 3.0) -> None:
        """Abnormal end: SIGTERM (a worker kills its ngspice and unwinds its atomic writes),
        then SIGKILL whatever is still alive after ``grace`` seconds."""
        for w in self.workers:
            if w.proc.is_alive():
                w.proc.terminate()
        deadline = time.monotonic() + grace
        for w in self.workers:
            w.proc.join(timeout=max(0.0, deadline - time.monotonic()))
        self._kill(self.workers)

    @staticmethod
    def _kill(workers) -> None:
        for w in workers:
            if w.proc.is_alive():
                _kill_children(w.proc.pid)
                w.proc.kill()
            w.proc.join(timeout=10)
            w.conn.close()


def _work(job: tuple) -> dict:
    """Worker entry: run one task, write its file, return a small summary."""
    task, path, digest = job
    out = run_sample(task)
    write_sample(Path(path), out, task, digest)
    return {"key": task.key, "error": out["error"], "nrmse": out["nrmse"],
            "spice_time_s": out["spice_time_s"]}


@contextlib.contextmanager
def _single_thread_blas():
    """Spawned workers read these at import: one BLAS thread each, or J workers x T threads
    oversubscribe the cores and the --jobs speed-up suffers."""
    saved = {k: os.environ.get(k) for k in _BLAS_ENV}
    os.environ.update({k: "1" for k in _BLAS_ENV})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _progress(total: int, desc: str, enabled: bool | None):
    from tqdm import tqdm

    if enabled is None:
        enabled = sys.stderr.isatty() and not os.environ.get("CI")
    return tqdm(total=total, desc=desc, unit="sample", file=sys.stderr, disable=not enabled,
                dynamic_ncols=True, smoothing=0.1)


@dataclass(frozen=True)
class Options:
    """Command options of :func:`evaluate` (see the CLI help for each)."""

    dataset: str
    run_dir: Path
    n: int | None = None
    seed: int | None = None
    n_train: int | None = None
    n_test: int | None = None
    jobs: int | None = None
    config: str | None = None
    weights: str | None = None
    spice_train: bool = False
    readout: str = "ridge"
    strict: bool = False
    force: bool = False
    retry_failed: bool = False
    progress: bool | None = None   # None: only on a TTY and not under CI
    plots: bool = True


def evaluate(opts: Options) -> dict:
    """Run (or resume) an evaluation into ``opts.run_dir``; returns the report dict.

    Raises InputError/ConfigError for bad input before any simulation, CimspiceError when a
    sample fails under ``strict``, :class:`Interrupted` on Ctrl-C.
    """
    from .config import load_config
    from .mapping import map_ssm
    from .readout import make_readout
    from .pipeline import calibrate, make_model, n_input_rows, schedule_sample

    t_start = time.perf_counter()
    run_dir = Path(opts.run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise InputError(f"-o {run_dir}: exists and is not a directory; give a run directory")
    if not run_dir.parent.is_dir():
        raise InputError(f"-o {run_dir}: parent directory {run_dir.parent} does not exist; create it first")
    if opts.jobs is not None and opts.jobs < 1:
        raise InputError(f"--jobs {opts.jobs}: need at least 1 worker process")
    make_readout(opts.readout)  # unknown kind -> error now, not after the simulations
    cfg = load_config(opts.config)
    ds, ds_ident = resolve_dataset(opts.dataset, run_dir, n=opts.n, seed=opts.seed)
    chosen = select(ds, opts.n_train, opts.n_test)

    n_rows = n_input_rows(ds.sensor_size, cfg)
    model = make_model(cfg, n_rows, opts.weights)
    train_all = np.flatnonzero((np.asarray(ds.split) if ds.split is not None
                                else derived_split(ds.labels)) == 0)
    calib = []
    for i in train_all[: cfg.circuit.n_calibration]:
        with contextlib.suppress(InputError):  # an empty-after-filtering sample calibrates nothing
            calib.append(schedule_sample(ds.sample(int(i)), cfg))
    if not calib:
        raise InputError(f"{ds.source}: no training sample gives input pulses to calibrate the "
                         f"mapping; check [events] refractory_us / pool")
    # Same hardware as `simulate --index`: mapped, and in non-linear write modes gain-fitted
    # on SPICE runs of, the first n_calibration training samples.
    mapping = calibrate(model, map_ssm(model, cfg, calib), cfg, calib)
    if not np.all(np.isfinite(mapping.gains)):
        raise ConfigError(f"config: [device] mode={cfg.device.mode!r}: the state gains could not be "
                          f"calibrated (non-finite); check the [device] write parameters")

    digest = cfg.digest()
    identity = {"config_digest": digest, "dataset": ds_ident,
                "weights_digest": file_digest(opts.weights) if opts.weights else None,
                "hardware_digest": hardware_digest(model, mapping)}
    run_dir.mkdir(exist_ok=True)
    check_run_dir(run_dir, identity, opts.force)
    (run_dir / "samples").mkdir(exist_ok=True)
    for stale in (run_dir / "samples").glob(".*.tmp"):  # left by a SIGKILLed writer
        with contextlib.suppress(OSError):
            stale.unlink()
    manifest = {"format": MANIFEST_FORMAT, **identity, "config": cfg.to_toml(),
                "weights": str(Path(opts.weights).resolve()) if opts.weights else None,
                "selected": chosen, "spice_train": opts.spice_train, "readout": opts.readout,
                "cimspice_version": __version__}
    from .results import write_text_atomic

    # A report.json always describes a finished run of the current manifest: drop the old one
    # (its timing block is kept for a rerun that has nothing left to simulate).
    old_report = _read_json(run_dir / "report.json")
    for name in ("report.json", "report.md"):
        with contextlib.suppress(FileNotFoundError):
            (run_dir / name).unlink()
    write_text_atomic(run_dir / "manifest.json", json.dumps(manifest, indent=1) + "\n")

    toml = cfg.to_toml()
    m_arr, map_arr = _model_arrays(model), _mapping_arrays(mapping)
    tasks = []
    for split in ("test", "train"):
        for i in chosen[split]:
            s = ds.sample(i)
            tasks.append(SampleTask(
                key=f"{split}_{i:05d}", split=split, index=i, label=int(ds.labels[i]),
                events=s.events, sensor_size=tuple(s.sensor_size), source=str(ds.source),
                config_toml=toml, model=m_arr, mapping=map_arr,
                spice=split == "test" or opts.spice_train,
                keep_waveforms=split == "test" and i == chosen["test"][0]))
    todo = [t for t in tasks if not _is_done(sample_path(run_dir, t.key), t, digest, opts.retry_failed)]
    ideal_todo = [t for t in todo if not t.spice]
    spice_todo = [t for t in todo if t.spice]
    n_spice_total = sum(t.spice for t in tasks)
    n_done_before = n_spice_total - len(spice_todo)

    try:
        with _progress(len(ideal_todo), "ideal", opts.progress if ideal_todo else False) as bar:
            for t in ideal_todo:  # ideal states take milliseconds: no pool needed
                out = run_sample(t)
                write_sample(sample_path(run_dir, t.key), out, t, digest)
                bar.update(1)
                if out["error"] and opts.strict:
                    raise CimspiceError(f"sample {t.key} failed: {out['error']}; stopped by "
                                        f"--strict (rerun without it to record failures and continue)")
        timing = _run_spice(spice_todo, run_dir, digest, opts, n_done_before, n_spice_total)
    except KeyboardInterrupt:
        done = sum(_is_done(sample_path(run_dir, t.key), t, digest, opts.retry_failed) for t in tasks if t.spice)
        raise Interrupted(f"interrupted: {done} of {n_spice_total} SPICE samples kept in "
                          f"{run_dir / 'samples'}; rerun the same command to resume") from None

    records = collect(run_dir, chosen)
    report = compute_report(records, readout=opts.readout, spice_train=opts.spice_train,
                            n_classes=max(len(ds.classes), int(np.max(ds.labels)) + 1),
                            class_names=list(ds.classes))
    old = old_report if old_report and old_report.get("config_digest") == digest else None
    if timing["n_simulated"] == 0 and old and old.get("timing", {}).get("n_simulated"):
        timing = {**old["timing"], "note": "from the invocation that simulated the samples"}
    timing["wall_time_s_invocation"] = time.perf_counter() - t_start
    report["timing"] = timing
    report["dataset"] = ds_ident
    report["selected"] = {k: len(v) for k, v in chosen.items()}
    report["config"] = toml
    report["config_digest"] = digest
    report["weights"] = manifest["weights"]
    report["versions"] = _versions(records)
    report["mapping"] = {"gain_method": mapping.gain_method, "headroom": float(mapping.headroom),
                         "n_inputs": mapping.n_inputs, "n_states": mapping.n_states}
    write_report(run_dir, report, plots=opts.plots)
    return report


def _run_spice(tasks: list, run_dir: Path, digest: str, opts: Options, n_before: int,
               n_total: int) -> dict:
    """SPICE tasks across worker processes, longest first; returns the timing block."""
    jobs = opts.jobs or default_jobs()
    t0 = time.perf_counter()
    n_failed = 0
    if tasks:
        # Longest first (event count ~ ngspice time): no long sample left alone at the end.
        tasks = sorted(tasks, key=lambda t: -t.events.size)
        work = [(t, str(sample_path(run_dir, t.key)), digest) for t in tasks]
        bar = _progress(n_total, "ngspice", opts.progress)
        bar.update(n_before)
        workers = _WorkerSet(min(jobs, len(tasks)))
        try:
            with bar:
                for summary in workers.map_unordered(work):
                    if summary.get("died"):  # no file from the dead worker: record the failure
                        task, path, _ = summary["job"]
                        out = run_sample(dataclasses.replace(task, spice=False, keep_waveforms=False))
                        out["error"] = summary["error"]  # ideal states stay usable, as for ngspice errors
                        write_sample(Path(path), out, task, digest)
                    bar.update(1)
                    if summary["error"]:
                        n_failed += 1
                        bar.set_postfix(failed=n_failed)
                        if opts.strict:
                            raise CimspiceError(f"sample {summary['key']} failed: {summary['error']}; "
                                                f"stopped by --strict (rerun without it to record "
                                                f"failures and continue)")
        except BaseException:
            workers.terminate()
            raise
        workers.close()
    wall = time.perf_counter() - t0
    n = len(tasks)
    return {"jobs": min(jobs, n) if n else jobs, "jobs_requested": jobs, "n_simulated": n,
            "wall_time_s": wall if n else 0.0, "samples_per_s": n / wall if n and wall > 0 else None}


def collect(run_dir: Path, chosen: dict) -> list[SampleRecord]:
    """Records of the selected samples, test first then train (each in dataset order)."""
    recs = []
    for split in ("test", "train"):
        for i in chosen[split]:
            path = sample_path(run_dir, f"{split}_{i:05d}")
            if not path.is_file():
                raise InputError(f"{path}: sample file missing; rerun the evaluate command to finish the run")
            recs.append(read_sample(path))
    return recs


# ------------------------------------------------------------------------------------------
# Report (pure: records -> figures)
# ------------------------------------------------------------------------------------------

def _stack(recs, attr):
    # A sample whose SPICE run failed still has valid ideal states (they come first).
    ok = [r for r in recs if getattr(r, attr) is not None and (attr == "ideal" or not r.error)]
    if not ok:
        return None, None
    return np.stack([getattr(r, attr) for r in ok]), np.array([r.label for r in ok])


def _protocol(clf, X_test, y_test, labels, n_train) -> dict:
    pred = clf.predict(X_test)
    from .readout import accuracy, confusion_matrix

    return {"accuracy": accuracy(y_test, pred), "n_train": int(n_train), "n_test": int(len(y_test)),
            "confusion": confusion_matrix(y_test, pred, labels=labels).tolist()}


def _na(reason: str) -> dict:
    return {"accuracy": None, "n_train": 0, "n_test": 0, "confusion": None, "note": reason}


def _readout(kind: str, n_train: int):
    from .readout import make_readout

    # Ridge picks alpha by stratified k-fold CV: k cannot exceed the training set.
    return make_readout(kind, cv=min(5, n_train)) if kind == "ridge" else make_readout(kind)


def compute_report(records: list[SampleRecord], *, readout: str = "ridge", spice_train: bool = False,
                   n_classes: int | None = None, class_names: list | None = None) -> dict:
    """Accuracies of the three protocols, NRMSE statistics, failures (pure function of records)."""
    train = [r for r in records if r.split == "train"]
    test = [r for r in records if r.split == "test"]
    labels = np.arange(n_classes if n_classes else 1 + max(r.label for r in records))
    acc = {}
    X_tr, y_tr = _stack(train, "ideal")
    X_te, y_te = _stack(test, "ideal")
    X_ts, y_ts = _stack(test, "spice")
    clf_info = {}
    if X_tr is None or np.unique(y_tr).size < 2 or X_te is None:
        acc["ideal"] = _na("not enough training/test samples with ideal states")
        acc["transfer"] = _na("no ideal readout")
    else:
        clf = _readout(readout, len(y_tr)).fit(X_tr, y_tr)
        clf_info["ideal"] = _clf_info(clf)
        acc["ideal"] = _protocol(clf, X_te, y_te, labels, len(y_tr))
        acc["transfer"] = (_protocol(clf, X_ts, y_ts, labels, len(y_tr)) if X_ts is not None
                           else _na("no test sample with SPICE states"))
    if not spice_train:
        acc["retrained"] = _na("needs SPICE states of the training split: rerun with --spice-train")
    else:
        X_sr, y_sr = _stack(train, "spice")
        if X_sr is None or np.unique(y_sr).size < 2 or X_ts is None:
            acc["retrained"] = _na("not enough training/test samples with SPICE states")
        else:
            clf = _readout(readout, len(y_sr)).fit(X_sr, y_sr)
            clf_info["retrained"] = _clf_info(clf)
            acc["retrained"] = _protocol(clf, X_ts, y_ts, labels, len(y_sr))

    sim_ok = [r for r in records if r.spice is not None and not r.error]
    nr = np.array([r.nrmse for r in sim_ok])
    failures = [{"key": r.key, "split": r.split, "index": r.index, "error": r.error}
                for r in records if r.error]
    return {
        "cimspice_report": 1,
        "readout": {"kind": readout, **clf_info},
        "classes": class_names or [str(c) for c in labels],
        "chance": 1.0 / len(labels),
        "accuracy": acc,
        "nrmse": {"mean": float(nr.mean()) if nr.size else None,
                  "max": float(nr.max()) if nr.size else None,
                  "median": float(np.median(nr)) if nr.size else None,
                  "n": int(nr.size),
                  "per_sample": {r.key: r.nrmse for r in sim_ok}},
        "spice_time_s_total": float(sum(r.spice_time_s for r in records)),
        "n_samples": {"train": len(train), "test": len(test),
                      "simulated": int(sum(r.simulated for r in records)),
                      "failed": len(failures)},
        "failures": failures,
        "trace_sample": next((r.key for r in test if r.spice is not None and not r.error), None),
    }


def _clf_info(clf) -> dict:
    info = {"params": _clean(clf.get_params())}
    if hasattr(clf, "alpha_"):
        info["alpha"] = float(clf.alpha_)
    return info


def _versions(records) -> dict:
    import scipy

    ng = next((r.ngspice_version for r in records if r.ngspice_version), "")
    if not ng:
        with contextlib.suppress(Exception):
            from .spice import ngspice_version

            ng = ngspice_version()
    return {"cimspice": __version__, "ngspice": ng, "numpy": np.__version__,
            "scipy": scipy.__version__, "python": platform.python_version()}


def _read_json(path: Path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def _pct(a) -> str:
    return "n/a" if a is None else f"{100 * a:.1f} %"


def summary_rows(report: dict) -> list[tuple[str, str]]:
    """(figure, value) rows of the summary table."""
    acc = report["accuracy"]
    rows = []
    for p, name in (("ideal", "ideal accuracy"), ("transfer", "SPICE transfer accuracy"),
                    ("retrained", "SPICE retrained accuracy")):
        a = acc[p]
        detail = f" ({a['n_test']} test, {a['n_train']} train)" if a["accuracy"] is not None else \
            f" ({a.get('note', '')})"
        rows.append((name, _pct(a["accuracy"]) + detail))
    rows.append(("chance level", _pct(report["chance"])))
    nr = report["nrmse"]
    rows.append(("state NRMSE mean / max",
                 "n/a" if nr["mean"] is None else f"{100 * nr['mean']:.3g} % / {100 * nr['max']:.3g} % "
                                                   f"({nr['n']} samples)"))
    rows.append(("ngspice time (total)", f"{report['spice_time_s_total']:.1f} s"))
    t = report.get("timing", {})
    sps = t.get("samples_per_s")
    rows.append(("throughput", "n/a (nothing simulated)" if not sps else
                 f"{sps:.3g} samples/s ({t['n_simulated']} samples, {t['jobs']} jobs, "
                 f"{t['wall_time_s']:.1f} s wall)"))
    n = report["n_samples"]
    rows.append(("samples", f"{n['train']} train + {n['test']} test, {n['simulated']} simulated, "
                            f"{n['failed']} failed"))
    return rows


def summary_table(report: dict) -> str:
    """Plain-text table printed at the end of a run."""
    rows = summary_rows(report)
    w = max(len(k) for k, _ in rows)
    lines = [f"{k:<{w}}  {v}" for k, v in rows]
    for f in report["failures"][:5]:
        lines.append(f"failed: {f['key']}: {f['error']}")
    if len(report["failures"]) > 5:
        lines.append(f"... and {len(report['failures']) - 5} more failures (report.json)")
    return "\n".join(lines)


def report_markdown(report: dict) -> str:
    ds = report.get("dataset", {})
    v = report.get("versions", {})
    lines = [f"# cimspice evaluation: {ds.get('name', '')}", "",
             f"Dataset `{ds.get('path', '')}` (digest {ds.get('digest', '')}), config digest "
             f"`{report.get('config_digest', '')}`, readout `{report['readout']['kind']}`; "
             f"cimspice {v.get('cimspice', '')}, ngspice {v.get('ngspice', '')}, numpy {v.get('numpy', '')}.",
             "", "| figure | value |", "|---|---|"]
    lines += [f"| {k} | {val} |" for k, val in summary_rows(report)]
    if report["failures"]:
        lines += ["", "## Failed samples", "", "| sample | error |", "|---|---|"]
        lines += [f"| {f['key']} | {f['error'].replace('|', '/')} |" for f in report["failures"]]
    lines += ["", "![trajectories](trajectories.png)", "![accuracy](accuracy.png)",
              "![confusion](confusion.png)", "![NRMSE](nrmse_hist.png)", ""]
    return "\n".join(lines)


def write_report(run_dir: Path, report: dict, *, plots: bool = True) -> None:
    """report.json, report.md and the PNG plots, each written atomically."""
    from .results import write_text_atomic

    if plots:
        from . import plots as pl

        pl.report_plots(run_dir, report)
    write_text_atomic(run_dir / "report.md", report_markdown(report))
    # JSON last: its presence means the whole report is there.
    write_text_atomic(run_dir / "report.json", json.dumps(_clean(report), indent=1, allow_nan=False) + "\n")


def _clean(obj):
    """JSON-ready copy: NumPy scalars/arrays to Python, NaN/inf to null."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, np.ndarray)):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj
