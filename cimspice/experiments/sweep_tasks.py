"""The work of a sweep on the workers, and its result files.

A *unit* is one grid point on one chip instance (``p003_s001``: point 3, variation seed 1). Its
hardware is programmed once (:func:`program_unit`, a worker task: in non-linear write modes
calibration runs the engine), then its selected samples run in *chunks* (:func:`run_chunk`:
the evaluate task :func:`~.tasks.run_sample` on each sample). Both are top-level functions of
plain picklable values that write nothing: a worker returns a chunk's ``.npz`` bytes and the
main process writes them atomically to ``RUN_DIR/results/<unit>_c<chunk>.npz``.

Chunk file (NumPy ``.npz``, S samples in run order, M sample times, N states)::

    format, config_digest (the unit's config), engine, died (a WorkerDied chunk: redone by a rerun)
    index, label (S,) int; split, error, version (S,: ngspice's) str; simulated (S,) bool
    ideal, software, circuit (S, M, N) float (NaN where has_* is False); has_ideal,
    has_software, has_circuit (S,) bool; nrmse, engine_time_s (S,) float
"""

from __future__ import annotations

import dataclasses
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import config_from_toml
from ..errors import one_line
from ..pipeline import program
from ..schedule import PulseSchedule
from ..ssm import SSMParams
from .tasks import SampleOutcome, SampleRecord, SampleTask, run_sample, task_key

CHUNK_FORMAT = 1
_STATES = ("ideal", "software", "circuit")


def unit_name(point: int, seed: int) -> str:
    return f"p{point:03d}_s{seed:03d}"


def chunk_stem(unit: str, chunk: int) -> str:
    """Name of chunk ``chunk`` of ``unit``: its file stem and its Dask task key."""
    return f"{unit}_c{chunk:03d}"


def chunk_path(run_dir: Path, unit: str, chunk: int) -> Path:
    return Path(run_dir) / "results" / f"{chunk_stem(unit, chunk)}.npz"


# ------------------------------------------------------------------------------------------
# Worker tasks (pure)
# ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ProgramJob:
    """What :func:`program_unit` needs: the SSM, the unit's config, the calibration schedules
    (and which samples they are), the engine of non-linear calibrations."""

    unit: str
    model: SSMParams
    config_toml: str
    schedules: list[PulseSchedule]
    record: dict
    engine: str


def program_unit(job: ProgramJob) -> tuple[str, object]:
    """``('', CircuitMapping)`` of the unit's chip instance, or ``(error line, None)`` (a unit
    whose hardware cannot be programmed is a result of the sweep, not a crash)."""
    try:
        cfg = config_from_toml(job.config_toml)
        return "", program(job.model, cfg, job.schedules, engine=job.engine, record=job.record)
    except Exception as exc:
        return one_line(exc), None


@dataclass(frozen=True)
class ChunkJob:
    """What :func:`run_chunk` needs: the evaluate sample tasks of one chunk of one unit."""

    unit: str
    chunk: int
    tasks: list[SampleTask]
    config_digest: str        # of the unit's config

    @property
    def key(self) -> str:
        return chunk_stem(self.unit, self.chunk)


def run_chunk(job: ChunkJob) -> tuple[bytes, dict]:
    """Worker entry: run each sample task of the chunk; returns the chunk file's bytes and a
    summary (n, n_failed)."""
    outcomes = [run_sample(t) for t in job.tasks]
    data = chunk_bytes(samples_of(job.tasks), outcomes, job.config_digest, _engine(job.tasks))
    return data, {"n": len(outcomes), "n_failed": sum(bool(o.error) for o in outcomes)}


def samples_of(tasks: list[SampleTask]) -> list[tuple[str, int, int]]:
    """(split, index, label) of each task: what a chunk file records of a sample's identity."""
    return [(t.split, t.index, t.label) for t in tasks]


def _engine(tasks: list[SampleTask]) -> str:
    return tasks[0].engine if tasks else ""


# ------------------------------------------------------------------------------------------
# Chunk files
# ------------------------------------------------------------------------------------------

def chunk_bytes(samples: list[tuple[str, int, int]], outcomes: list[SampleOutcome | None],
                digest: str, engine: str, *, errors: list[str] | None = None,
                died: bool = False) -> bytes:
    """The ``.npz`` bytes of a chunk of ``samples`` (split, index, label). ``outcomes[i]`` None
    (with ``errors[i]``): a sample without states (its unit could not be programmed)."""
    errors = errors or [""] * len(samples)
    shape = next((o.prep.ideal.shape for o in outcomes if o is not None and o.prep is not None),
                 (0, 0))
    arrays = {k: np.full((len(samples), *shape), np.nan) for k in _STATES}
    has = {k: np.zeros(len(samples), bool) for k in _STATES}
    for i, o in enumerate(outcomes):
        if o is None:
            continue
        states = {"ideal": o.prep.ideal if o.prep is not None else None,
                  "software": o.prep.software if o.prep is not None else None,
                  "circuit": o.sim.circuit if o.sim is not None else None}
        for k, x in states.items():
            if x is not None and np.shape(x) == shape:
                arrays[k][i], has[k][i] = x, True
    buf = io.BytesIO()
    np.savez(buf, format=CHUNK_FORMAT, config_digest=digest, engine=engine, died=died,
             index=np.array([i for _, i, _ in samples], dtype=np.int64),
             label=np.array([lab for _, _, lab in samples], dtype=np.int64),
             split=np.array([sp for sp, _, _ in samples], dtype=str),
             error=np.array([o.error if o is not None else e for o, e in zip(outcomes, errors)],
                            dtype=str),
             version=np.array([o.sim.ngspice_version if o is not None and o.sim is not None else ""
                               for o in outcomes], dtype=str),
             # every sample of a sweep is simulated, unless its unit was not programmed
             simulated=np.array([o is not None for o in outcomes], dtype=bool),
             nrmse=np.array([o.nrmse if o is not None else np.nan for o in outcomes]),
             engine_time_s=np.array([o.engine_time_s if o is not None else 0.0 for o in outcomes]),
             **arrays, **{f"has_{k}": v for k, v in has.items()})
    return buf.getvalue()


def ideal_only(job: ChunkJob, error: str) -> bytes:
    """A chunk whose task killed its workers: ideal states computed here (milliseconds), every
    sample recorded with ``error``, marked ``died`` so that a rerun simulates it again."""
    outs = [run_sample(dataclasses.replace(t, simulate=False)) for t in job.tasks]
    outs = [dataclasses.replace(o, error=error) for o in outs]
    return chunk_bytes(samples_of(job.tasks), outs, job.config_digest, _engine(job.tasks), died=True)


def read_chunk(path: Path) -> dict | None:
    """A chunk file's arrays, or None when it is missing or unreadable."""
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
        if int(data["format"]) != CHUNK_FORMAT:
            return None
        return data
    except (OSError, ValueError, KeyError, EOFError):
        return None


def chunk_done(data: dict | None, digest: str, engine: str, indices: list[int]) -> bool:
    """The chunk file holds these samples, made with this unit config and engine (a chunk that
    killed its workers is done again)."""
    return (data is not None and str(data["config_digest"]) == digest
            and str(data["engine"]) == engine and not bool(data["died"])
            and data["index"].tolist() == list(indices))


def chunk_records(data: dict, digest: str) -> list[SampleRecord]:
    """The report's :class:`~.tasks.SampleRecord` of each sample of a chunk file."""
    recs = []
    for i, index in enumerate(data["index"].tolist()):
        st = {k: data[k][i] if data[f"has_{k}"][i] else None for k in _STATES}
        split = str(data["split"][i])
        recs.append(SampleRecord(
            key=task_key(split, index), split=split, index=index, label=int(data["label"][i]),
            ideal=st["ideal"], circuit=st["circuit"], software=st["software"],
            nrmse=float(data["nrmse"][i]), engine_time_s=float(data["engine_time_s"][i]),
            error=str(data["error"][i]), simulated=bool(data["simulated"][i]),
            config_digest=digest, ngspice_version=str(data["version"][i]),
            engine=str(data["engine"])))
    return recs
