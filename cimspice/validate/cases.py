"""The validation cases: small circuits on fixed, seeded or hand-written inputs, as ngspice deck
and (where VACASK can express the circuit) VACASK netlist, with the signals to compare and their
justified tolerances."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..config import check_config, load_config
from ..datasets import audio_stream
from ..events import AUDIO_DTYPE, make_sample
from ..text import comment, spice_number, vacask_comment
from ..engines.trace_netlist import trace_names
from ..engines.vacask_netlist import build_vacask_deck
from ..errors import InputError
from ..hardware.devices import VMemParams, device_dir, device_lib_text
from ..hardware.mapping import map_ssm
from ..hardware.trace import map_trace
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
# Sensed column-pair difference I+ - I- at the read instants (A, read-pulse cases): the same
# reltol; abstol 1e-9 A is 1e-4 of the ~1e-5 A sensed full scale. A difference inherits the
# absolute error of its two column currents however far they cancel: reruns at reltol x10 move
# each current by ~1.5e-4 of itself (~1e-9 A), which a 1e-10 A floor would count as a change of a
# small difference (measured: norm 0.78 with 1e-10 A, <= 0.36 with 1e-9 A; a 0.5 % change of a
# trace device's tau, its write rate, a sense gain or a cell gives norms >= 5).
TOL_S = Tolerance(reltol=1e-3, abstol=1e-9)


@dataclass(frozen=True)
class Signal:
    """One compared trace: ``name`` in the table/golden, its vector in each simulator's raw file,
    its tolerance, and ``group``: signals normalised together for the VACASK RMS (a state pair).

    ``minus``: an ngspice vector subtracted from ``ngspice`` (a column-pair difference, what the
    read path senses). ``at_reads``: the signal is compared at the case's read instants only
    (``Case.read_times``, both traces interpolated there); the golden still stores the trace."""

    name: str
    ngspice: str
    vacask: str
    tol: Tolerance
    group: str
    minus: str = ""
    at_reads: bool = False


@dataclass(frozen=True)
class Case:
    """A validation case, built: its netlists (no VACASK one when ``no_vacask``) and what to
    compare."""

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
    read_times: tuple = ()         # s: read instants ([read] mode 'pulse'), for at_reads signals
    no_vacask: str = ""            # why VACASK does not run the case ('' = it does); then
                                   # vacask_deck is '' and no <case>.sim is written

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
        f"X1 b 0 {params.subckt} {params.spice_params()}",
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


# Every key that shapes a layer deck (its circuit, or the configuration it prints in its header),
# pinned here so that a change of the package defaults does not move the goldens (only a change
# of the circuit code or of these lines does).
_LAYER_BASE = {
    "events": {"pool": 1, "channel_pool": 1, "split_polarity": False, "refractory_us": 0,
               "time_scale": 1.0, "t_p": 100e-6, "t_rise": 1e-6, "min_gap": 10e-6,
               "merge": "extend", "t_end_us": 0},
    "ssm": {"init": "gaussian", "n_samples": 10, "method": "pulse"},
    "device": {"preset": "custom", "mode": "linear", "window": False, "w_rest": 0.0,
               "g_on": 100e-6, "g_off": 1e-6, "k": 1000.0, "vs": 0.02, "lam": 0.0, "eta": 0.0,
               "vth": 0.0, "read_nl": 0.0, "v_write": 1.0, "dw_pulse": 0.02, "odd_write": False},
    "circuit": {"topology": "state", "g_min": 1e-6, "g_max": 100e-6, "levels": 0, "v_in": 0.2,
                "access": "nmos", "v_gate": 1.8, "compensate_access": True, "r_wire": 0.0,
                "rram_read_nl": 0.0, "w_max": 0.8, "v_clamp": 0.0, "n_calibration": 16,
                "tile_rows": 0},
    "read": {"mode": "node", "v_read": 0.1, "t_read": 10e-6, "guard": 2e-6, "sense_gain": 0.0,
             "baseline": "reference"},
    "sim": {"reltol": RELTOL, "abstol": 1e-12, "vntol": 1e-7, "method": "gear",
            "maxstep_per_tau": 50.0, "timeout": 600.0, "save_currents": False},
}


def _layer_config(name: str, changes: dict):
    sections = {k: {**v, **changes.get(k, {})} for k, v in _LAYER_BASE.items()}
    return check_config(load_config(None).replace(**sections), f"validation case {name}")


def _stable_deck(deck: str, name: str, description: str) -> str:
    """The deck with a fixed header: the creation time replaced, the case named."""
    deck = re.sub(r"^(\* generated by cimspice \S+) on \S+;", rf"\1 for validation case {name};",
                  deck, count=1, flags=re.M)
    return deck.replace("* cimspice SSM layer", comment(f"cimspice validation case {name}: {description}")
                        + "\n* cimspice SSM layer", 1)


def _layer_case(name: str, description: str, n_in: int, n_events: int, duration_us: int,
                seed: int, changes: dict) -> Case:
    cfg = _layer_config(name, changes)
    sample = _stream(n_in, n_events, duration_us, seed, name)
    schedule = schedule_sample(sample, cfg)
    model = make_model(cfg, schedule.n_rows)
    # map_ssm directly: the goldens compare device states w, which need no gain calibration
    # (build() would run ngspice once more in sinh mode to fit the gains).
    prep = build(sample, cfg, model=model, mapping=map_ssm(model, cfg, [schedule]))
    # The deck's header carries its creation time; a fixed text keeps the stored deck stable.
    deck = _stable_deck(prep.deck, name, description)
    va, info = build_vacask_deck(prep.mapping, prep.schedule, cfg, sample_times=prep.sample_times,
                                 title=f"cimspice validation case {name} (VACASK twin of {name}.cir)")
    signals = []
    for n in range(prep.mapping.n_states):
        signals.append(Signal(f"w{n}p", prep.deck_info.w_plus[n], info.w_plus[n], TOL_W, f"x{n}"))
        signals.append(Signal(f"w{n}m", prep.deck_info.w_minus[n], info.w_minus[n], TOL_W, f"x{n}"))
    return Case(name=name, description=description, ngspice_deck=deck, vacask_deck=va,
                va_files=info.va_files, signals=tuple(signals), t_stop=info.tstop, seed=seed,
                prepared=prep)


# Hand-written events of the read-pulse cases (µs, per input row): a handful per row over 40 ms,
# chosen to exercise the read slots (the events at 20 000 µs on rows 1-3 and at 30 000 µs on
# row 3 fall into the read slots at 20 and 30 ms and are delayed past them; on row 1 the event
# 100 µs later is merged into the same pulse by 'extend', a 200 µs pulse) and both decay groups
# (events early and late in the stream, pulses 200 µs apart on row 0).
READ_EVENTS_US = {
    0: (1000, 5200, 5400, 21000, 33000),
    1: (3000, 12000, 20000, 20100, 27000),
    2: (7000, 20000, 24000, 36000),
    3: (2000, 9000, 20000, 30000, 30200),
}
READ_DURATION_US = 40_000

# Why VACASK does not run the read-pulse cases (two deck comment lines, and the report's note).
_NO_VACASK = ("VACASK is not run on this case: its writer emits neither read pulses nor the trace "
              "deck (the trace topology's gated sense stage is a behavioural B-source product,",
              "which VACASK has no element for), and the VACASK engine refuses both; ngspice and "
              "the circuit twin run it")
_NO_VACASK_SHORT = ("no VACASK writer for read pulses or the trace deck (its gated sense stage is "
                    "a B-source product)")


def _hand_stream(events: dict, name: str):
    """The EventSample of hand-written ``{row: (t_us, ...)}`` events (one channel per row)."""
    t = np.array([ti for r in sorted(events) for ti in events[r]], np.int64)
    x = np.array([r for r in sorted(events) for _ in events[r]], np.int64)
    order = np.lexsort((x, t))
    ev = np.zeros(t.size, dtype=AUDIO_DTYPE)
    ev["t"], ev["x"], ev["p"] = t[order], x[order], 1
    return make_sample(ev, sensor_size=(len(events), 1, 1),
                       source=f"validation:{name} (hand-written events)")


def _read_case(name: str, description: str, changes: dict) -> Case:
    """An SSM layer with read pulses ([read] mode 'pulse') on the hand-written events; ngspice and
    the twin (no VACASK).

    Signals: the state devices' w ('state') or the trace devices' and reference devices' w
    ('trace': an extra ``.save`` line, the deck's own saves the sense currents only); the sensed
    currents' full traces; and ``s<n>``, the column-pair difference I+ - I- that the read path
    senses, compared at the read instants (the engine's x_hat = s_n / i_scale / g_n there).
    """
    changes = {**changes, "read": {"mode": "pulse", **changes.get("read", {})},
               "events": {"t_end_us": READ_DURATION_US, **changes.get("events", {})}}
    cfg = _layer_config(name, changes)
    sample = _hand_stream(READ_EVENTS_US, name)
    schedule = schedule_sample(sample, cfg)
    model = make_model(cfg, schedule.n_rows)
    trace = cfg.circuit.topology == "trace"
    # the mapping directly: the goldens compare the circuit's traces, which need no gain
    # calibration (program() would run ngspice once more for the windowed trace devices)
    mapper = map_trace if trace else map_ssm
    prep = build(sample, cfg, model=model, mapping=mapper(model, cfg, [schedule]))
    deck = _stable_deck(prep.deck, name, description)
    deck = deck.replace("\n* cimspice SSM layer", "".join(f"\n{comment(t)}" for t in _NO_VACASK)
                        + "\n* cimspice SSM layer", 1)
    info = prep.deck_info
    n_st = prep.mapping.n_states
    signals = []
    if trace:
        K = len(prep.mapping.info["group_taus"])
        w_dev, w_ref = trace_names(prep.mapping.n_inputs, K)
        extra = ".save " + " ".join(w_dev + w_ref)
        deck = deck.replace("\n.print tran ", f"\n* validation: the trace and reference devices' w as well\n"
                            f"{extra}\n.print tran ", 1)
        for j, v in enumerate(w_dev):
            r, k = divmod(j, K)
            signals.append(Signal(f"d{r}{k}", v, "", TOL_W, f"d{r}{k}"))
        for k, v in enumerate(w_ref):
            signals.append(Signal(f"r{k}", v, "", TOL_W, f"r{k}"))
    else:
        for n in range(n_st):
            signals.append(Signal(f"w{n}p", info.w_plus[n], "", TOL_W, f"x{n}"))
            signals.append(Signal(f"w{n}m", info.w_minus[n], "", TOL_W, f"x{n}"))
    # The trace topology's column currents are gated products V(gate) x (I_dev - I_ref): on the
    # read edges both ramp, so the current is quadratic there and a trace compared at another
    # build's time points is off by its interpolation error (measured: norms up to 22 for
    # solver changes). They are compared at the read instants, where the read path samples them.
    for n in range(n_st):
        signals.append(Signal(f"i{n}p", info.i_plus[n], "", TOL_I, f"i{n}", at_reads=trace))
        signals.append(Signal(f"i{n}m", info.i_minus[n], "", TOL_I, f"i{n}", at_reads=trace))
    for n in range(n_st):
        signals.append(Signal(f"s{n}", info.i_plus[n], "", TOL_S, f"s{n}", minus=info.i_minus[n],
                              at_reads=True))
    return Case(name=name, description=f"{description}; no VACASK", ngspice_deck=deck,
                vacask_deck="", va_files=(), signals=tuple(signals), t_stop=info.tstop,
                prepared=prep, read_times=tuple(float(t) for t in prep.sample_times),
                no_vacask=_NO_VACASK_SHORT)


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


# The read-pulse cases share the hand-written events, 4 input rows, 4 states in 2 decay groups
# and 8 reads (every 5 ms, 0.1 V x 10 us); 18 write pulses after merging, 4 of them delayed out
# of a read slot.
_READ_SSM = {"n_states": 4, "taus": [0.01, 0.03], "seed": 3, "n_samples": 8}


def _trace_wox() -> Case:
    return _read_case(
        "trace4x2_wox", "trace topology, 4 rows x 2 decay groups, 4 states; preset wox (0.6 V "
        "threshold, window on, dw_pulse 0.1), read pulses, gated sense, 1T1R blocks at "
        "v_gate=1.8 V",
        {"circuit": {"topology": "trace"}, "ssm": _READ_SSM,
         "device": {"preset": "wox", "window": True, "dw_pulse": 0.1}})


def _trace_ideal() -> Case:
    return _read_case(
        "trace4x2_ideal", "trace topology, 4 rows x 2 decay groups, 4 states; preset ideal "
        "(linear, no window, dw_pulse 0.05), read pulses, gated sense, 1R blocks (access none)",
        {"circuit": {"topology": "trace", "access": "none"}, "ssm": _READ_SSM,
         "device": {"preset": "ideal", "dw_pulse": 0.05}})


def _state_read_pulse() -> Case:
    return _read_case(
        "state4x4_read_pulse", "state topology, 4 inputs x 4 states, linear write, read pulses "
        "on both devices of every pair, transistors in deep triode at v_gate=5 V",
        {"circuit": {"v_gate": 5.0}, "ssm": _READ_SSM})


CASES: dict[str, Callable[[], Case]] = {
    "device_decay": _decay,
    "pulses_linear": _pulses_linear,
    "pulses_sinh": _pulses_sinh,
    "layer4x4_linear": _layer4,
    "layer8x8_wire_sinh": _layer8,
    "trace4x2_wox": _trace_wox,
    "trace4x2_ideal": _trace_ideal,
    "state4x4_read_pulse": _state_read_pulse,
}


def build_case(name: str) -> Case:
    """Build the named validation case (decks from the current code)."""
    if name not in CASES:
        raise InputError(f"validate: --case {name!r} is not a validation case; "
                         f"choose from {', '.join(CASES)}")
    return CASES[name]()


