"""The validation cases: small circuits on fixed, seeded inputs, as ngspice deck and VACASK
netlist, with the signals to compare and their justified tolerances."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Callable

from ..config import check_config, load_config
from ..datasets import audio_stream
from ..text import comment, spice_number, vacask_comment
from ..engines.vacask_netlist import build_vacask_deck
from ..errors import InputError
from ..hardware.devices import VMemParams, device_dir, device_lib_text
from ..hardware.mapping import map_ssm
from ..pipeline import build, make_model
from ..schedule import schedule_sample

# Solver reltol of every validation deck.  A golden must be far more accurate than its own
# tolerance band, or another ngspice build (other time steps) would fail it: measured against
# reruns at reltol=1e-8, reltol=1e-7 traces deviate by Xyce norms <= 0.08, reltol=1e-6 ones by
# up to 0.35 (sinh cases).  Cost: the 8x8 layer takes ~6-12 s in ngspice here.
RELTOL = 1e-7


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
    prepared: object = None        # pipeline.Prepared for the SSM-layer cases
    device: object = None          # (VMemParams, PWL corners) for the single-device cases

    @property
    def options(self) -> str:
        """The deck's ``.options`` and ``.tran`` lines (recorded in the golden)."""
        lines = [ln for ln in self.ngspice_deck.splitlines() if re.match(r"\.(options|tran)\b", ln, re.I)]
        return "; ".join(lines)

    @property
    def deck_sha256(self) -> str:
        return hashlib.sha256(self.ngspice_deck.encode()).hexdigest()


def pwl_pulses(t_on, width: float, amp: float, t_r: float = 1e-6):
    """Corners of trapezoidal pulses (edges ``t_r``, plateau ``width``), starting at (0, 0)."""
    pts = [(0.0, 0.0)]
    for t0 in t_on:
        pts += [(t0, 0.0), (t0 + t_r, amp), (t0 + t_r + width, amp), (t0 + 2 * t_r + width, 0.0)]
    return pts


def _device_case(name: str, description: str, params, pulses, tstop: float, maxstep: float) -> Case:
    """Single volatile device driven through a 0 V sense source: ``V1 a 0``, ``Vs a b 0``, ``X1 b 0``."""
    pts = pulses
    w_only = len(pts) <= 1
    ng_src = ("V1 a 0 DC 0" if w_only else
              "V1 a 0 PWL(" + " ".join(f"{spice_number(t)} {spice_number(v)}" for t, v in pts) + ")")
    opts = f".options reltol={spice_number(RELTOL)} method=gear trtol=1"
    saves = "v(x1.w)" + ("" if w_only else " i(vs)")
    ng = "\n".join([
        comment(f"cimspice validation case {name}: {description}"),
        comment(f"run by hand: ngspice -b -r out.raw {name}.cir"),
        "",
        device_lib_text(),
        "",
        ng_src,
        "Vs a b DC 0",
        f"X1 b 0 vmem {params.spice_params()}",
        f".save {saves}",
        # trtol=1: no 7x overestimate of the local truncation error (see tests/test_devices.py)
        opts,
        f".tran {spice_number(maxstep)} {spice_number(tstop)} 0 {spice_number(maxstep)}",
        ".end",
    ]) + "\n"
    va_src = ("v1 (a 0) vsource dc=0" if w_only else
              'v1 (a 0) vsource type="pwl" wave=[' + ", ".join(f"{spice_number(t)}, {spice_number(v)}" for t, v in pts) + "]")
    va = "\n".join([
        vacask_comment(f"cimspice validation case {name} (VACASK twin of {name}.cir): {description}"),
        vacask_comment(f"run by hand: openvaf-r vmem.va && vacask {name}.sim"),
        "ground 0",
        'load "vmem.osdi"',
        "model vsource vsource",
        "model vmem vmem",
        va_src,
        "vs (a b) vsource dc=0",
        f"x1 (b 0) vmem {params.va_params()}",
        "control",
        f'  options reltol={spice_number(RELTOL)} tran_method="gear2"',
        '  save v("x1:w")' + ("" if w_only else " i(vs)"),
        f"  analysis tran1 tran step={spice_number(maxstep)} stop={spice_number(tstop)} maxstep={spice_number(maxstep)}",
        "endc",
    ]) + "\n"
    signals = [Signal("w", "v(x1.w)", "x1:w", TOL_W, "w")]
    if not w_only:
        signals.append(Signal("i", "i(vs)", "vs:flow(br)", TOL_I, "i"))
    return Case(name=name, description=description, ngspice_deck=ng, vacask_deck=va, device=(params, pts),
                va_files=(device_dir() / "vmem.va",), signals=tuple(signals), t_stop=tstop)


def _stream(n_ch: int, n_events: int, duration_us: int, seed: int, name: str):
    """Seeded audio-style event stream plus a burst of simultaneous events on every channel."""
    return audio_stream(n_ch, n_events, duration_us, seed, burst=n_ch,
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
    deck = deck.replace("* cimspice SSM layer", comment(f"cimspice validation case {name}: {description}")
                        + "\n* cimspice SSM layer", 1)
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
    p = VMemParams(w0=0.5, tau=20e-3)
    return _device_case("device_decay", "zero-bias decay w0*exp(-t/tau), w0=0.5, tau=20 ms",
                        p, [(0.0, 0.0)], tstop=5 * p.tau, maxstep=p.tau / 200)


def _pulses_linear() -> Case:
    return _device_case("pulses_linear", "five 0.5 V x 100 us pulses, linear write, tau=20 ms",
                        VMemParams(mode="linear"),
                        pwl_pulses([1e-3, 3e-3, 5e-3, 7e-3, 9e-3], 100e-6, 0.5),
                        tstop=40e-3, maxstep=20e-6)


def _pulses_sinh() -> Case:
    return _device_case("pulses_sinh", "five 1.2 V x 1 us pulses, sinh write with window, tau=4 ms",
                        VMemParams(mode="sinh", window=True, tau=4e-3),
                        pwl_pulses([1e-3, 2e-3, 3e-3, 4e-3, 5e-3], 1e-6, 1.2),
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


