"""One sample of an evaluation: a pure, picklable task, and its sample file.

:func:`run_sample` is a top-level function of a :class:`SampleTask` (events, config TOML, model
and mapping arrays) that writes nothing, so a distributed scheduler can run it as is. Its
:class:`SampleOutcome` becomes a result file (``RUN_DIR/samples/<split>_<index>.h5``, the
:mod:`cimspice.io.results` layout assembled by :func:`cimspice.pipeline.assemble_result`),
written atomically; :func:`read_sample` reads back what the report needs and :func:`is_done`
tells a resumed run which samples to skip.
"""

from __future__ import annotations

import dataclasses
import functools
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import config_from_toml
from ..errors import CimspiceError, InputError, one_line
from ..events import EventSample
from ..hardware.mapping import CircuitMapping
from ..io.files import atomic_path
from ..io.results import Result, read_result, write_result
from ..pipeline import Prepared, SimResult, assemble_result, build, simulate
from ..ssm import SSMParams

SPLITS = ("test", "train")   # the order in which samples are listed, run and reported


# ------------------------------------------------------------------------------------------
# The task (pure)
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
    simulate: bool            # run the engine (else ideal states only)
    keep_waveforms: bool = False  # store the dense w traces (one sample per run, for plots)
    engine: str = "ngspice"   # engines.registry name


@dataclass(frozen=True)
class SampleOutcome:
    """What :func:`run_sample` returns: the prepared sample and its engine run (each None when
    the sample failed before it), the hardware it ran on, and ``error`` ('' or a one-line
    ``'<Type>: message'``)."""

    key: str
    model: SSMParams | None
    mapping: CircuitMapping | None
    prep: Prepared | None = None
    sim: SimResult | None = None
    error: str = ""
    wall_time_s: float = 0.0

    @property
    def nrmse(self) -> float:
        return float(self.sim.nrmse) if self.sim is not None else float("nan")

    @property
    def engine_time_s(self) -> float:
        return float(self.sim.engine_time_s) if self.sim is not None else 0.0


def task_key(split: str, index: int) -> str:
    """Key (and sample file stem) of dataset sample ``index`` in ``split``."""
    return f"{split}_{index:05d}"


def make_tasks(ds, chosen: dict, cfg, model: SSMParams, mapping: CircuitMapping, *,
               circuit_train: bool, engine: str = "ngspice") -> list[SampleTask]:
    """One task per selected sample, test split first (each in dataset order). Test samples
    are simulated on ``engine`` (training samples too with ``circuit_train``); the first test
    sample keeps its dense waveforms for the trajectory plot."""
    toml = cfg.to_toml()
    m_arr = {f.name: getattr(model, f.name) for f in dataclasses.fields(model)}
    map_arr = {f.name: getattr(mapping, f.name) for f in dataclasses.fields(mapping)}
    tasks = []
    for split in SPLITS:
        for i in chosen[split]:
            s = ds.sample(i)
            tasks.append(SampleTask(
                key=task_key(split, i), split=split, index=i, label=int(ds.labels[i]),
                events=s.events, sensor_size=tuple(s.sensor_size), source=str(ds.source),
                config_toml=toml, model=m_arr, mapping=map_arr,
                simulate=split == "test" or circuit_train,
                keep_waveforms=split == "test" and i == chosen["test"][0], engine=engine))
    return tasks


@functools.lru_cache(maxsize=16)
def _config(text: str):
    """The task's Config (a run's tasks share one text: parsed once per worker process)."""
    return config_from_toml(text)


def run_sample(task: SampleTask) -> SampleOutcome:
    """Ideal (and circuit) states of one sample; writes nothing and never raises for a failing
    sample (its error is part of the outcome)."""
    t0 = time.perf_counter()
    model = mapping = prep = sim = None
    error = ""
    try:
        cfg = _config(task.config_toml)
        model = SSMParams(**task.model)
        mapping = CircuitMapping(**task.mapping)
        sample = EventSample(task.events, tuple(task.sensor_size), task.label, task.source)
        prep = build(sample, cfg, model=model, mapping=mapping, key=task.index)
        if task.simulate:
            sim = simulate(prep, engine=task.engine, keep_waveforms=task.keep_waveforms)
            if not np.all(np.isfinite(sim.circuit)):
                error = (f"NonFiniteStates: {task.engine} states contain NaN/inf (check [device] mode "
                         f"and gains)")
    except Exception as exc:  # a failing sample is data for the report, not a crash
        error = one_line(exc)
    return SampleOutcome(key=task.key, model=model, mapping=mapping, prep=prep, sim=sim,
                         error=error, wall_time_s=time.perf_counter() - t0)


# ------------------------------------------------------------------------------------------
# Sample files
# ------------------------------------------------------------------------------------------

def sample_path(run_dir: Path, key: str) -> Path:
    return Path(run_dir) / "samples" / f"{key}.h5"


def sample_result(outcome: SampleOutcome, task: SampleTask, config_digest: str) -> Result:
    """The result-file image of one outcome, with the run attributes of an evaluation."""
    attrs = {"key": task.key, "split": task.split, "index": task.index,
             "config": task.config_toml, "config_digest": config_digest,
             "seed": _config(task.config_toml).ssm.seed, "source": task.source,
             "error": outcome.error, "simulated": bool(task.simulate),
             "ngspice_version": outcome.sim.ngspice_version if outcome.sim is not None else ""}
    return assemble_result(outcome.prep, outcome.sim, model=outcome.model, mapping=outcome.mapping,
                           label=task.label, attrs=attrs, wall_time_s=outcome.wall_time_s)


def write_sample(path: Path, outcome: SampleOutcome, task: SampleTask, config_digest: str) -> None:
    """Write one :func:`run_sample` outcome atomically (:mod:`cimspice.io.results` layout)."""
    write_result(path, sample_result(outcome, task, config_digest))


def run_to_file(job: tuple) -> tuple[bytes, dict]:
    """Worker entry, ``job = (task, config_digest)``: run one task and return the bytes of its
    sample file and a small summary (key, error, nrmse, engine_time_s). The caller writes the
    bytes (:func:`write_file_bytes`): the worker needs no access to the run directory (it may
    run on another machine) and can be killed at any moment without leaving a partial sample
    file; the HDF5 encoding still runs in parallel, on the workers."""
    task, digest = job
    outcome = run_sample(task)
    with tempfile.TemporaryDirectory(prefix="cimspice-sample-", dir=_scratch_dir()) as tmp:
        path = Path(tmp) / f"{task.key}.h5"
        write_sample(path, outcome, task, digest)
        data = path.read_bytes()
    return data, {"key": task.key, "error": outcome.error, "nrmse": outcome.nrmse,
                  "engine_time_s": outcome.engine_time_s}


def _scratch_dir() -> str | None:
    """The Dask worker's own directory when running in one (Dask removes it with the worker,
    and a SIGKILLed worker's at the next start), else the system's temp directory."""
    try:
        from distributed import get_worker
        return get_worker().local_directory
    except (ImportError, ValueError):
        return None


def write_file_bytes(path: Path, data: bytes) -> None:
    """Write a sample file returned by :func:`run_to_file`, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


@dataclass
class SampleRecord:
    """What the report needs from one sample file."""

    key: str
    split: str
    index: int
    label: int
    ideal: np.ndarray | None     # (M, N)
    circuit: np.ndarray | None   # (M, N) states from the engine
    software: np.ndarray | None  # (M, N) software reference (dirac on the raw events)
    nrmse: float
    engine_time_s: float
    error: str
    simulated: bool
    config_digest: str
    ngspice_version: str
    engine: str = ""
    energy: dict | None = None   # the result file's /energy figures (None: not accounted)


def read_sample(path: Path) -> SampleRecord:
    """One sample file -> :class:`SampleRecord` (raises InputError if unreadable)."""
    r = read_result(path, lean=True)
    a = r.attrs
    ideal = r.ideal[0] if r.ideal.size else None
    circuit = r.circuit[0] if r.circuit is not None else None
    return SampleRecord(
        key=str(a.get("key", Path(path).stem)), split=str(a.get("split", "")),
        index=int(a.get("index", -1)),
        label=int(r.labels[0]) if r.labels is not None else -1, ideal=ideal, circuit=circuit,
        software=r.software[0] if r.software is not None and r.software.size else None,
        nrmse=float(r.metrics.get("state_nrmse", float("nan"))),
        engine_time_s=float(r.metrics.get("engine_time_s", 0.0)), error=str(a.get("error", "")),
        simulated=bool(a.get("simulated", False)), config_digest=str(a.get("config_digest", "")),
        ngspice_version=str(a.get("ngspice_version", "")), engine=str(a.get("engine", "")),
        energy=r.energy or None)


def is_done(path: Path, task: SampleTask, config_digest: str, retry_failed: bool) -> bool:
    """A readable file made with this config that has what the task asks for."""
    if not path.is_file():
        return False
    try:
        rec = read_sample(path)
    except (CimspiceError, OSError, KeyError, ValueError):
        return False  # unreadable (e.g. written by an older version): recompute it
    if rec.config_digest != config_digest:
        return False
    if task.simulate and rec.simulated and rec.engine and rec.engine != task.engine:
        return False   # a run never mixes engines
    if rec.error:
        return not retry_failed and (rec.simulated or not task.simulate)
    return rec.ideal is not None and (rec.circuit is not None or not task.simulate)


def collect(run_dir: Path, chosen: dict) -> list[SampleRecord]:
    """Records of the selected samples, test first then train (each in dataset order)."""
    recs = []
    for split in SPLITS:
        for i in chosen[split]:
            path = sample_path(run_dir, task_key(split, i))
            if not path.is_file():
                raise InputError(f"{path}: sample file missing; rerun the evaluate command to finish the run")
            recs.append(read_sample(path))
    return recs
