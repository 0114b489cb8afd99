"""Golden files and the two norms: the Xyce regression norm (ngspice vs golden) and the
normalised RMS on a uniform grid (VACASK vs ngspice)."""

from __future__ import annotations

import json
import os
import shutil
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import __version__
from ..errors import InputError
from ..io.files import atomic_path
from .cases import Case

GOLDEN_ENV = "CIMSPICE_VALIDATION_DIR"
DEFAULT_GOLDEN_DIR = Path(__file__).resolve().parent.parent.parent / "netlists" / "validation"
GRID_POINTS = 20_000         # uniform grid for the VACASK-vs-ngspice RMS


@dataclass(frozen=True)
class Traces:
    """Time (s) and the case's signals (by signal name) from one simulator run."""

    time: np.ndarray
    signals: dict
    version: str
    elapsed_s: float


def xyce_norm(ref_t, ref_y, test_t, test_y, reltol: float, abstol: float) -> float:
    """Xyce regression norm of a test trace against a reference (pass if <= 1).

    The reference ``(ref_t, ref_y)`` is linearly interpolated onto the test's time points
    ``test_t`` (s); ``norm = sqrt(mean(((ref - test) / (reltol*|ref| + abstol))**2))``.
    """
    ref_t, ref_y = np.asarray(ref_t, float), np.asarray(ref_y, float)
    test_t, test_y = np.asarray(test_t, float), np.asarray(test_y, float)
    if test_t.shape != test_y.shape or ref_t.shape != ref_y.shape or test_t.size == 0:
        raise ValueError("xyce_norm: time and value arrays must be non-empty and of equal length")
    if reltol < 0 or abstol < 0 or reltol + abstol == 0:
        raise ValueError("xyce_norm: need reltol, abstol >= 0, not both 0")
    ref = np.interp(test_t, ref_t, ref_y)
    den = reltol * np.abs(ref) + abstol
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(den > 0, (ref - test_y) / np.where(den > 0, den, 1.0),
                     np.where(ref == test_y, 0.0, np.inf))
    return float(np.sqrt(np.mean(r ** 2)))


def nrms(ref_t, ref_y, test_t, test_y, *, scale: float | None = None,
         t_stop: float | None = None, points: int = GRID_POINTS) -> float:
    """RMS(test - ref) / scale on a uniform grid over [0, t_stop] (both traces interpolated).

    ``scale`` defaults to the RMS of the reference on that grid (0 -> the absolute RMS).
    """
    t_stop = float(min(ref_t[-1], test_t[-1])) if t_stop is None else float(t_stop)
    grid = np.linspace(0.0, t_stop, points)
    a = np.interp(grid, ref_t, ref_y)
    b = np.interp(grid, test_t, test_y)
    if scale is None:
        scale = float(np.sqrt(np.mean(a ** 2)))
    err = float(np.sqrt(np.mean((a - b) ** 2)))
    return err / scale if scale > 0 else err


def golden_dir(path=None) -> Path:
    """Golden directory: ``path``, else ``$CIMSPICE_VALIDATION_DIR``, else netlists/validation/."""
    if path is not None:
        return Path(path)
    env = os.environ.get(GOLDEN_ENV)
    return Path(env) if env else DEFAULT_GOLDEN_DIR


# --------------------------------------------------------------------------- goldens

@dataclass(frozen=True)
class Golden:
    time: np.ndarray
    signals: dict
    meta: dict


def golden_paths(case_name: str, directory) -> dict:
    d = Path(directory)
    return {"npz": d / f"{case_name}.npz", "cir": d / f"{case_name}.cir", "sim": d / f"{case_name}.sim"}


def load_golden(path) -> Golden | None:
    """Read a golden ``.npz`` (None if absent)."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            names = [str(n) for n in z["names"]]
            return Golden(time=z["time"], signals=dict(zip(names, z["signals"].astype(float))),
                          meta=json.loads(str(z["meta"])))
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise InputError(f"{path}: not a readable golden file ({exc}); regenerate it with "
                         "`cimspice validate --update`") from None


def _golden_meta(case: Case, tr: Traces) -> dict:
    return {
        "case": case.name, "description": case.description, "seed": case.seed,
        "ngspice_version": tr.version, "ngspice": shutil.which("ngspice") or "ngspice",
        "options": case.options,
        "command": f"ngspice -b -r out.raw {case.name}.cir  (cimspice validate --update --case {case.name})",
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cimspice_version": __version__, "deck_sha256": case.deck_sha256,
        "tolerances": {s.name: [s.tol.reltol, s.tol.abstol] for s in case.signals},
        "simulators": "ngspice, twin" if case.no_vacask else "ngspice, vacask, twin",
        "no_vacask": case.no_vacask,
        "compared_at_reads": [s.name for s in case.signals if s.at_reads],
        "read_times": list(case.read_times),
        "differences": {s.name: f"{s.ngspice} - {s.minus}" for s in case.signals if s.minus},
    }


def write_golden(case: Case, tr: Traces, directory) -> None:
    """Write ``<case>.npz``, ``.cir`` and ``.sim`` atomically (temp file + rename, each); a case
    that VACASK does not run has no ``.sim`` (a stale one is removed).

    Signals are stored as float32: 6e-8 relative precision, 1e-4 of the tightest tolerance
    (reltol 1e-3), at half the size; time stays float64 (breakpoints 1 us apart over 0.1 s).
    """
    paths = golden_paths(case.name, directory)
    names = np.array([s.name for s in case.signals])
    sig = np.stack([tr.signals[s.name] for s in case.signals]).astype(np.float32)
    meta = np.array(json.dumps(_golden_meta(case, tr), sort_keys=True))
    with atomic_path(paths["npz"]) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, time=tr.time, signals=sig, names=names, meta=meta)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; these files are shared in the repository
    for key, text in (("cir", case.ngspice_deck), ("sim", case.vacask_deck)):
        if not text:
            paths[key].unlink(missing_ok=True)
            continue
        with atomic_path(paths[key]) as tmp:
            tmp.write_text(text, encoding="utf-8")
            os.chmod(tmp, 0o644)


