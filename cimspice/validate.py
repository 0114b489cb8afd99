"""Golden transients and the second simulator (DESIGN §8, tiers 3 and 5).

Each validation *case* is a small circuit on a fixed, seeded input, written as an ngspice deck
(``netlists/validation/<case>.cir``, runs by hand with ``ngspice -b``) and as a VACASK netlist
(``<case>.sim``). Its *golden* ``<case>.npz`` holds the ngspice traces that the deck produced
(time, signals, ngspice version, options, command).

``cimspice validate`` regenerates every deck from the code, runs it in ngspice and in VACASK and
checks, per signal:

1. ngspice against the golden with the Xyce regression criterion (:func:`xyce_norm`):
   interpolate the golden onto the test's time points,
   ``norm = sqrt(mean(((ref - test) / (reltol*|ref| + abstol))**2))``, pass if ``norm <= 1``;
2. VACASK against ngspice: normalised RMS difference on a uniform time grid
   (:func:`nrms`), pass if ``<= 1 %`` (DESIGN §4: a prototype pair agreed within 0.6 %).

Python API::

    report = run_validation()                 # all cases, both simulators
    print(format_table(report)); report.passed
    run_validation(update=True)               # rewrite the goldens (atomic, all-or-nothing)
    res = simulate_vacask(cimspice.build(sample, cfg))   # VACASK twin of simulate()

The golden directory is ``netlists/validation/`` of the source tree, or ``$CIMSPICE_VALIDATION_DIR``
or the ``golden_dir`` argument.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from . import __version__
from .errors import InputError

GOLDEN_ENV = "CIMSPICE_VALIDATION_DIR"
DEFAULT_GOLDEN_DIR = Path(__file__).resolve().parent.parent / "netlists" / "validation"
VACASK_LIMIT = 0.01          # VACASK vs ngspice normalised RMS must stay within 1 %
GRID_POINTS = 20_000         # uniform grid for the VACASK-vs-ngspice RMS
# Solver reltol of every validation deck.  A golden must be far more accurate than its own
# tolerance band, or another ngspice build (other time steps) would fail it: measured against
# reruns at reltol=1e-8, reltol=1e-7 traces deviate by Xyce norms <= 0.08, reltol=1e-6 ones by
# up to 0.35 (sinh cases).  Cost: the 8x8 layer takes ~6-12 s in ngspice here.
RELTOL = 1e-7


# --------------------------------------------------------------------------- tolerances

@dataclass(frozen=True)
class Tolerance:
    """Per-signal tolerances of the Xyce criterion: ``reltol`` (relative), ``abstol`` (signal units)."""

    reltol: float
    abstol: float


# State node w (dimensionless, 0..1).  reltol 1e-3 must pass a rerun by another ngspice build
# (other time steps) and fail a real change of the circuit.  Measured on these cases (only
# ngspice 39.3 at hand, so solver perturbations stand in for another build): rerunning with
# reltol x10, with method=trap instead of gear, or with maxstep/2 gives Xyce norms <= 0.21
# (worst: the sinh pulse train at reltol x10); changing by 0.5 % the tau of one driven device,
# one driver gain R_n or the pulse amplitude gives norms >= 1.35 (mostly 2.7 to 167).
# abstol 1e-5 is the floor for devices that stay at rest (w ~ 0 on the idle side of a pair) and
# for the end of the decay: 1e-5 of the w range, far below any w change a pulse writes (>= 1e-3).
TOL_W = Tolerance(reltol=1e-3, abstol=1e-5)
# Device read current i(vs) (A): same relative accuracy as w (I = G(w) V is algebraic in w);
# abstol 1e-10 A is 1e-5 of the ~1e-5 A pulse current and covers the exact 0 between pulses.
TOL_I = Tolerance(reltol=1e-3, abstol=1e-10)


# --------------------------------------------------------------------------- metrics

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


# --------------------------------------------------------------------------- cases

@dataclass(frozen=True)
class Signal:
    """One compared trace: ``name`` in the table/golden, its vector in each simulator's raw file,
    its tolerance, and ``group``: signals normalised together for the VACASK RMS (a state pair)."""

    name: str
    ngspice: str
    vacask: str
    tol: Tolerance
    group: str


@dataclass(frozen=True)
class Case:
    """A validation case, built: both netlists and what to compare."""

    name: str
    description: str
    ngspice_deck: str
    vacask_deck: str
    va_files: tuple
    signals: tuple
    t_stop: float
    seed: int | None = None
    prepared: object = None        # simulate.Prepared for the SSM-layer cases

    @property
    def options(self) -> str:
        """The deck's ``.options`` and ``.tran`` lines (recorded in the golden)."""
        lines = [ln for ln in self.ngspice_deck.splitlines() if re.match(r"\.(options|tran)\b", ln, re.I)]
        return "; ".join(lines)

    @property
    def deck_sha256(self) -> str:
        return hashlib.sha256(self.ngspice_deck.encode()).hexdigest()


def _pwl_pulses(t_on, width: float, amp: float, t_r: float = 1e-6):
    """Corners of trapezoidal pulses (edges ``t_r``, plateau ``width``), starting at (0, 0)."""
    pts = [(0.0, 0.0)]
    for t0 in t_on:
        pts += [(t0, 0.0), (t0 + t_r, amp), (t0 + t_r + width, amp), (t0 + 2 * t_r + width, 0.0)]
    return pts


def _num(x: float) -> str:
    return f"{x:.15g}"


def _device_case(name: str, description: str, params, pulses, tstop: float, maxstep: float) -> Case:
    """Single volatile device driven through a 0 V sense source: ``V1 a 0``, ``Vs a b 0``, ``X1 b 0``."""
    from .netlist import device_dir, device_lib_text

    pts = pulses
    w_only = len(pts) <= 1
    ng_src = ("V1 a 0 DC 0" if w_only else
              "V1 a 0 PWL(" + " ".join(f"{_num(t)} {_num(v)}" for t, v in pts) + ")")
    opts = f".options reltol={_num(RELTOL)} method=gear trtol=1"
    saves = "v(x1.w)" + ("" if w_only else " i(vs)")
    ng = "\n".join([
        f"* cimspice validation case {name}: {description}",
        "* run by hand: ngspice -b -r out.raw " + f"{name}.cir",
        "",
        device_lib_text(),
        "",
        ng_src,
        "Vs a b DC 0",
        f"X1 b 0 vmem {params.spice_params()}",
        f".save {saves}",
        # trtol=1: no 7x overestimate of the local truncation error (see tests/test_devices.py)
        opts,
        f".tran {_num(maxstep)} {_num(tstop)} 0 {_num(maxstep)}",
        ".end",
    ]) + "\n"
    va_src = ("v1 (a 0) vsource dc=0" if w_only else
              'v1 (a 0) vsource type="pwl" wave=[' + ", ".join(f"{_num(t)}, {_num(v)}" for t, v in pts) + "]")
    va = "\n".join([
        f"// cimspice validation case {name} (VACASK twin of {name}.cir): {description}",
        "// run by hand: openvaf-r vmem.va && vacask " + f"{name}.sim",
        "ground 0",
        'load "vmem.osdi"',
        "model vsource vsource",
        "model vmem vmem",
        va_src,
        "vs (a b) vsource dc=0",
        f"x1 (b 0) vmem {params.va_params()}",
        "control",
        f'  options reltol={_num(RELTOL)} tran_method="gear2"',
        '  save v("x1:w")' + ("" if w_only else " i(vs)"),
        f"  analysis tran1 tran step={_num(maxstep)} stop={_num(tstop)} maxstep={_num(maxstep)}",
        "endc",
    ]) + "\n"
    signals = [Signal("w", "v(x1.w)", "x1:w", TOL_W, "w")]
    if not w_only:
        signals.append(Signal("i", "i(vs)", "vs:flow(br)", TOL_I, "i"))
    return Case(name=name, description=description, ngspice_deck=ng, vacask_deck=va,
                va_files=(device_dir() / "vmem.va",), signals=tuple(signals), t_stop=tstop)


def _stream(n_ch: int, n_events: int, duration_us: int, seed: int, name: str):
    """Seeded audio-style event stream plus a burst of simultaneous events on every channel."""
    from .events import AUDIO_DTYPE, make_sample

    rng = np.random.default_rng(seed)
    t = rng.integers(0, duration_us, n_events)
    x = rng.integers(0, n_ch, n_events)
    t = np.concatenate([t, np.full(n_ch, duration_us // 2)])   # superposition on all rows
    x = np.concatenate([x, np.arange(n_ch)])
    order = np.lexsort((x, t))
    ev = np.zeros(t.size, dtype=AUDIO_DTYPE)
    ev["t"], ev["x"], ev["p"] = t[order], x[order], 1
    return make_sample(ev, sensor_size=(n_ch, 1, 1), label=None,
                       source=f"validation:{name} (seed {seed})")


# Every key that shapes a layer deck, pinned here so that a change of the package defaults does
# not move the goldens (only a change of the circuit code or of these lines does).
_LAYER_BASE = {
    "events": {"pool": 1, "split_polarity": False, "refractory_us": 0, "time_scale": 1.0,
               "t_p": 100e-6, "t_rise": 1e-6, "min_gap": 10e-6, "merge": "extend", "t_end_us": 0},
    "ssm": {"init": "gaussian", "n_samples": 10, "method": "pulse"},
    "device": {"mode": "linear", "window": False, "w_rest": 0.0, "g_on": 100e-6, "g_off": 1e-6,
               "k": 1000.0, "vs": 0.02, "lam": 0.0, "eta": 0.0, "vth": 0.0, "read_nl": 0.0},
    "circuit": {"g_min": 1e-6, "g_max": 100e-6, "levels": 0, "v_in": 0.2, "access": "nmos",
                "v_gate": 1.8, "compensate_access": True, "r_wire": 0.0, "rram_read_nl": 0.0,
                "w_max": 0.8, "v_clamp": 0.0},
    "sim": {"reltol": RELTOL, "abstol": 1e-12, "vntol": 1e-7, "method": "gear",
            "maxstep_per_tau": 50.0, "save_currents": False},
}


def _layer_case(name: str, description: str, n_in: int, n_events: int, duration_us: int,
                seed: int, changes: dict) -> Case:
    from .config import check_config, load_config
    from .mapping import map_ssm
    from .netlist import build_vacask_deck
    from .pipeline import build, make_model, schedule_sample

    sections = {k: {**v, **changes.get(k, {})} for k, v in _LAYER_BASE.items()}
    cfg = check_config(load_config(None).replace(**sections), f"validation case {name}")
    sample = _stream(n_in, n_events, duration_us, seed, name)
    schedule = schedule_sample(sample, cfg)
    model = make_model(cfg, schedule.n_rows)
    # map_ssm directly: the goldens compare device states w, which need no gain calibration
    # (build() would run ngspice once more in sinh mode to fit the gains).
    prep = build(sample, cfg, model=model, mapping=map_ssm(model, cfg, [schedule]))
    # The deck's header carries its creation time; a fixed text keeps the stored deck stable.
    deck = re.sub(r"^(\* generated by cimspice \S+) on \S+;", rf"\1 for validation case {name};",
                  prep.deck, count=1, flags=re.M)
    deck = deck.replace("* cimspice SSM layer", f"* cimspice validation case {name}: {description}\n"
                        "* cimspice SSM layer", 1)
    va, info = build_vacask_deck(prep.mapping, prep.schedule, cfg, sample_times=prep.sample_times,
                                 title=f"cimspice validation case {name} (VACASK twin of {name}.cir)")
    signals = []
    for n in range(prep.mapping.n_states):
        signals.append(Signal(f"w{n}p", prep.deck_info.w_plus[n], info.w_plus[n], TOL_W, f"x{n}"))
        signals.append(Signal(f"w{n}m", prep.deck_info.w_minus[n], info.w_minus[n], TOL_W, f"x{n}"))
    return Case(name=name, description=description, ngspice_deck=deck, vacask_deck=va,
                va_files=info.va_files, signals=tuple(signals), t_stop=info.tstop, seed=seed,
                prepared=prep)


def _decay() -> Case:
    from .devices import VMemParams

    p = VMemParams(w0=0.5, tau=20e-3)
    return _device_case("device_decay", "zero-bias decay w0*exp(-t/tau), w0=0.5, tau=20 ms",
                        p, [(0.0, 0.0)], tstop=5 * p.tau, maxstep=p.tau / 200)


def _pulses_linear() -> Case:
    from .devices import VMemParams

    return _device_case("pulses_linear", "five 0.5 V x 100 us pulses, linear write, tau=20 ms",
                        VMemParams(mode="linear"),
                        _pwl_pulses([1e-3, 3e-3, 5e-3, 7e-3, 9e-3], 100e-6, 0.5),
                        tstop=40e-3, maxstep=20e-6)


def _pulses_sinh() -> Case:
    from .devices import VMemParams

    return _device_case("pulses_sinh", "five 1.2 V x 1 us pulses, sinh write with window, tau=4 ms",
                        VMemParams(mode="sinh", window=True, tau=4e-3),
                        _pwl_pulses([1e-3, 2e-3, 3e-3, 4e-3, 5e-3], 1e-6, 1.2),
                        tstop=10e-3, maxstep=20e-6)


def _layer4() -> Case:
    return _layer_case(
        "layer4x4_linear", "4 inputs x 4 states, linear write, ideal-ish parts "
        "(transistors deep in triode at v_gate=5 V, no wire resistance)", 4, 40, 40_000, 7,
        {"circuit": {"v_gate": 5.0},
         "ssm": {"n_states": 4, "taus": [0.01, 0.03], "seed": 1}})


def _layer8() -> Case:
    return _layer_case(
        "layer8x8_wire_sinh", "8 inputs x 8 states, sinh write with window, 10 ohm wire "
        "segments, level-1 access transistors at v_gate=1.8 V", 8, 80, 50_000, 11,
        # eta=0.8/V: with the default 3/V the bursts (all 8 rows at once) pin most devices at
        # the window's w ~ 1, where traces no longer show circuit changes; 0.8/V keeps every
        # w below 0.8 while the write stays threshold-like (vth=0.5 V) and strongly non-linear.
        {"circuit": {"r_wire": 10.0},
         "device": {"mode": "sinh", "window": True, "eta": 0.8},
         "ssm": {"n_states": 8, "taus": [0.01, 0.03], "seed": 2}})


CASES: dict[str, Callable[[], Case]] = {
    "device_decay": _decay,
    "pulses_linear": _pulses_linear,
    "pulses_sinh": _pulses_sinh,
    "layer4x4_linear": _layer4,
    "layer8x8_wire_sinh": _layer8,
}


def build_case(name: str) -> Case:
    """Build the named validation case (decks from the current code)."""
    if name not in CASES:
        raise InputError(f"validate: --case {name!r} is not a validation case; "
                         f"choose from {', '.join(CASES)}")
    return CASES[name]()


def golden_dir(path=None) -> Path:
    """Golden directory: ``path``, else ``$CIMSPICE_VALIDATION_DIR``, else netlists/validation/."""
    if path is not None:
        return Path(path)
    env = os.environ.get(GOLDEN_ENV)
    return Path(env) if env else DEFAULT_GOLDEN_DIR


# --------------------------------------------------------------------------- runs

@dataclass(frozen=True)
class Traces:
    """Time (s) and the case's signals (by signal name) from one simulator run."""

    time: np.ndarray
    signals: dict
    version: str
    elapsed_s: float


def run_ngspice_case(case: Case, timeout: float = 600) -> Traces:
    from . import spice

    names = ["time", *(s.ngspice for s in case.signals)]
    run = spice.run_ngspice(case.ngspice_deck, timeout=timeout, names=names)
    plot = run.plots[-1]
    return Traces(plot["time"], {s.name: plot[s.ngspice] for s in case.signals}, run.version,
                  run.elapsed_s)


def run_vacask_case(case: Case, timeout: float = 600) -> Traces:
    from . import spice

    names = ["time", *(s.vacask for s in case.signals)]
    run = spice.run_vacask(case.vacask_deck, va_files=case.va_files, timeout=timeout, names=names)
    plot = run.plots[-1]
    return Traces(plot["time"], {s.name: plot[s.vacask] for s in case.signals}, run.version,
                  run.elapsed_s)


def simulate_vacask(prep, *, keep_waveforms: bool = False):
    """VACASK twin of :func:`cimspice.pipeline.simulate`: same circuit, states from VACASK.

    Returns a :class:`cimspice.pipeline.SimResult` whose ``ngspice_version`` field reads
    ``'vacask <version>'``.
    """
    from . import spice
    from .netlist import build_vacask_deck
    from .pipeline import saved_names, sim_result

    t0 = time.perf_counter()
    text, info = build_vacask_deck(prep.mapping, prep.schedule, prep.cfg, sample_times=prep.sample_times)
    run = spice.run_vacask(text, va_files=info.va_files, timeout=prep.cfg.sim.timeout,
                           names=saved_names(info))
    return sim_result(prep, run, run.plots[-1], info, t0, keep_waveforms, f"vacask {run.version}")


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
    import shutil

    return {
        "case": case.name, "description": case.description, "seed": case.seed,
        "ngspice_version": tr.version, "ngspice": shutil.which("ngspice") or "ngspice",
        "options": case.options,
        "command": f"ngspice -b -r out.raw {case.name}.cir  (cimspice validate --update --case {case.name})",
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cimspice_version": __version__, "deck_sha256": case.deck_sha256,
        "tolerances": {s.name: [s.tol.reltol, s.tol.abstol] for s in case.signals},
    }


def write_golden(case: Case, tr: Traces, directory) -> None:
    """Write ``<case>.npz``, ``.cir`` and ``.sim`` atomically (temp file + rename, each).

    Signals are stored as float32: 6e-8 relative precision, 1e-4 of the tightest tolerance
    (reltol 1e-3), at half the size; time stays float64 (breakpoints 1 us apart over 0.1 s).
    """
    from .results import atomic_path

    paths = golden_paths(case.name, directory)
    names = np.array([s.name for s in case.signals])
    sig = np.stack([tr.signals[s.name] for s in case.signals]).astype(np.float32)
    meta = np.array(json.dumps(_golden_meta(case, tr), sort_keys=True))
    with atomic_path(paths["npz"]) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, time=tr.time, signals=sig, names=names, meta=meta)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; these files are shared in the repository
    for key, text in (("cir", case.ngspice_deck), ("sim", case.vacask_deck)):
        with atomic_path(paths[key]) as tmp:
            tmp.write_text(text, encoding="utf-8")
            os.chmod(tmp, 0o644)


# --------------------------------------------------------------------------- validation run

@dataclass(frozen=True)
class Row:
    """One table row: a signal of a case."""

    case: str
    signal: str
    norm: float            # ngspice vs golden (Xyce), nan if no golden / not run
    vacask_nrms: float     # VACASK vs ngspice, fraction; nan if not run
    passed: bool
    note: str = ""


@dataclass
class Report:
    rows: list = field(default_factory=list)
    notes: list = field(default_factory=list)     # per-case remarks (errors, drift, sanity)
    changes: list = field(default_factory=list)   # --update: what changed
    times: dict = field(default_factory=dict)     # {'ngspice': s, 'vacask': s, 'wall': s}
    versions: dict = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return bool(self.rows) and all(r.passed for r in self.rows) and not any(
            n.startswith("FAIL") for n in self.notes)


def _compare_golden(case: Case, tr: Traces, golden: Golden | None) -> dict:
    out = {}
    for s in case.signals:
        if golden is None or s.name not in golden.signals:
            out[s.name] = float("nan")
        else:
            out[s.name] = xyce_norm(golden.time, golden.signals[s.name], tr.time, tr.signals[s.name],
                                    s.tol.reltol, s.tol.abstol)
    return out


def _compare_vacask(case: Case, ng: Traces, va: Traces) -> dict:
    """Normalised RMS per signal; the scale is the RMS of the signal's group (a state pair), so a
    device resting near 0 is judged on the scale of the state it encodes."""
    grid = np.linspace(0.0, case.t_stop, GRID_POINTS)
    scale = {}
    for s in case.signals:
        a = np.interp(grid, ng.time, ng.signals[s.name])
        scale.setdefault(s.group, []).append(np.mean(a ** 2))
    scale = {g: float(np.sqrt(np.mean(v))) for g, v in scale.items()}
    return {s.name: nrms(ng.time, ng.signals[s.name], va.time, va.signals[s.name],
                         scale=scale[s.group], t_stop=case.t_stop) for s in case.signals}


def _sanity(case: Case, tr: Traces, label: str) -> str | None:
    """Independent check of a run where one exists (linear layers: states vs the ideal SSM)."""
    prep = case.prepared
    if prep is None or prep.mapping.gain_method != "analytic":
        return None
    from .mapping import states_from_w
    from .pipeline import nrmse

    n = prep.mapping.n_states
    wp = np.stack([np.interp(prep.sample_times, tr.time, tr.signals[f"w{k}p"]) for k in range(n)], -1)
    wm = np.stack([np.interp(prep.sample_times, tr.time, tr.signals[f"w{k}m"]) for k in range(n)], -1)
    err = nrmse(states_from_w(wp, wm, prep.mapping), prep.ideal)
    return f"{case.name}: {label} states vs ideal pulse SSM NRMSE {err * 100:.3f} %"


def _describe_change(case: Case, old: Golden | None, new: Traces) -> str:
    if old is None:
        return f"{case.name}: new golden ({new.time.size} points, {len(case.signals)} signals)"
    parts = []
    norms = _compare_golden(case, new, old)
    # 0.01: float32 storage alone gives norms ~1e-4; anything above is a real change
    changed = [f"{k} (norm {v:.3g})" for k, v in norms.items() if not (v <= 0.01)]
    if changed:
        parts.append("signals changed: " + ", ".join(changed))
    if old.time.size != new.time.size:
        parts.append(f"points {old.time.size} -> {new.time.size}")
    if old.meta.get("ngspice_version") != new.version:
        parts.append(f"ngspice {old.meta.get('ngspice_version')} -> {new.version}")
    if old.meta.get("options") != case.options:
        parts.append(f"options '{old.meta.get('options')}' -> '{case.options}'")
    if old.meta.get("deck_sha256") != case.deck_sha256:
        parts.append("deck text changed")
    return f"{case.name}: " + ("; ".join(parts) if parts else "unchanged")


def run_validation(cases=None, *, update: bool = False, directory=None, vacask: bool = True,
                   progress: Callable[[str], None] | None = None) -> Report:
    """Run the validation cases (default all) in ngspice and, if ``vacask``, in VACASK.

    ``update``: rewrite the goldens from this run's ngspice traces -- only if every ngspice run
    succeeded (all-or-nothing), each file atomically.
    """
    from .spice import SpiceError

    directory = golden_dir(directory)
    names = list(cases) if cases else list(CASES)
    built = [build_case(n) for n in names]        # unknown names fail before anything runs
    rep = Report()
    t_wall = time.perf_counter()
    t_ng = t_va = 0.0
    results = {}
    for case in built:
        if progress:
            progress(case.name)
        paths = golden_paths(case.name, directory)
        try:
            ng = run_ngspice_case(case)
        except SpiceError as exc:
            rep.notes.append(f"FAIL {case.name}: ngspice: {exc}")
            results[case.name] = None
            continue
        t_ng += ng.elapsed_s
        rep.versions["ngspice"] = ng.version
        results[case.name] = ng
        va, va_err = None, None
        if vacask:
            try:
                va = run_vacask_case(case)
                t_va += va.elapsed_s
                rep.versions["vacask"] = va.version
            except SpiceError as exc:
                va_err = str(exc)
                rep.notes.append(f"FAIL {case.name}: vacask: {exc}")
        golden = None if update else load_golden(paths["npz"])
        if not update:
            if golden is None:
                rep.notes.append(f"FAIL {case.name}: no golden {paths['npz']}; create it with "
                                 "`cimspice validate --update`")
            elif paths["cir"].exists() and paths["cir"].read_text() != case.ngspice_deck:
                rep.notes.append(f"{case.name}: the deck built by this code differs from "
                                 f"{paths['cir'].name} (its waveforms are what the norm checks; "
                                 "refresh the file with --update once reviewed)")
        norms = ({s.name: 0.0 for s in case.signals} if update
                 else _compare_golden(case, ng, golden))
        agree = _compare_vacask(case, ng, va) if va is not None else {}
        for s in case.signals:
            nv = norms[s.name]
            av = agree.get(s.name, float("nan"))
            ok = (nv <= 1.0) and ((av <= VACASK_LIMIT) if vacask else True) and va_err is None
            rep.rows.append(Row(case.name, s.name, nv, av, bool(ok)))
        for tr, label in ((ng, "ngspice"), (va, "VACASK")):
            if tr is not None:
                msg = _sanity(case, tr, label)
                if msg:
                    rep.notes.append(msg)
    if update:
        failed = [n for n, r in results.items() if r is None]
        if failed:
            rep.notes.append("FAIL goldens not updated: ngspice failed on " + ", ".join(failed))
        else:
            directory.mkdir(parents=True, exist_ok=True)
            for case in built:
                old = load_golden(golden_paths(case.name, directory)["npz"])
                rep.changes.append(_describe_change(case, old, results[case.name]))
            for case in built:
                write_golden(case, results[case.name], directory)
    rep.times = {"ngspice": t_ng, "vacask": t_va, "wall": time.perf_counter() - t_wall}
    return rep


def format_table(rep: Report) -> str:
    """The validation table (case, signal, ngspice norm vs golden, VACASK-vs-ngspice %, result)."""
    lines = [f"{'case':20s} {'signal':6s} {'ngspice vs golden':>18s} {'VACASK vs ngspice':>18s}  result",
             f"{'':20s} {'':6s} {'Xyce norm (<=1)':>18s} {'NRMS (<=1 %)':>18s}"]
    for r in rep.rows:
        nv = "no golden" if np.isnan(r.norm) else f"{r.norm:.3g}"
        av = "-" if np.isnan(r.vacask_nrms) else f"{r.vacask_nrms * 100:.3f} %"
        lines.append(f"{r.case:20s} {r.signal:6s} {nv:>18s} {av:>18s}  {'pass' if r.passed else 'FAIL'}")
    lines += rep.notes
    ver = ", ".join(f"{k} {v}" for k, v in rep.versions.items())
    n_fail = sum(not r.passed for r in rep.rows)
    status = "all passed" if rep.passed else f"{n_fail} signal(s) failed" + \
        ("" if n_fail else " (see FAIL lines)")
    lines.append(f"{len(rep.rows)} signals, {status} ({ver}); simulator time ngspice "
                 f"{rep.times.get('ngspice', 0):.1f} s, VACASK {rep.times.get('vacask', 0):.1f} s, "
                 f"wall {rep.times.get('wall', 0):.1f} s")
    return "\n".join(lines)
