"""The twin tier of the validation: every golden case run on the circuit twin and compared with
ngspice at ngspice's time points (normalised RMS, the VACASK tier's norm, limit 0.5 %).

Layer cases run the twin on the case's prepared circuit; the read-pulse cases give the twin's
device w (state devices, or trace and reference devices) at ngspice's time points and its sensed
column-pair difference ``s<n>`` (compared at the reads; the twin has no separate column
currents, so ``i<n>p/m`` are left out). A single-device case is the device
driven by its PWL source: the twin runs it as a one-row, one-state layer of plain resistors whose
write driver has unit transfer (V_device = V_source exactly), started from the case's w0; the read
current is I = G(w)·V from the device equations.
"""

from __future__ import annotations

import time

import numpy as np

from .. import __version__
from ..config import Config
from ..engines.twin import run_twin
from ..engines.twin_trace import run_twin_trace
from ..hardware.devices import VMemParams, read_current
from ..hardware.mapping import CircuitMapping
from ..schedule import PulseSchedule
from .cases import Case
from .goldens import Traces

TWIN_LIMIT = 0.005          # twin vs ngspice normalised RMS per signal (the twin issue's target)


def _device_layer(p: VMemParams, pts, t_stop: float):
    """(mapping, schedule, cfg) of a one-device 'layer' whose device sees the case's PWL drive."""
    corners = np.asarray(pts[1:], float).reshape(-1, 4, 2) if len(pts) > 1 else np.zeros((0, 4, 2))
    t_r = float(corners[0, 1, 0] - corners[0, 0, 0]) if corners.size else 1e-6
    t_on = corners[:, 0, 0] + t_r / 2 if corners.size else np.zeros(0)
    width = corners[:, 3, 0] - corners[:, 0, 0] - t_r if corners.size else np.zeros(0)
    amp = corners[:, 1, 1] if corners.size else np.zeros(0)
    t_p = float(width.max()) if width.size else 2 * t_r
    sch = PulseSchedule(row=np.zeros(t_on.size, np.int32), t_on=t_on, width=width, amplitude=amp,
                        n_rows=1, t_p=t_p, t_rise=t_r, min_gap=0.0, duration=t_stop)
    g, zero = np.array([[2e-5]]), np.array([[1e-5]])
    # V_n = r_tia (g+ - g-) v_row = v_row: the device sees the source voltage itself
    mapping = CircuitMapping(g_plus=g, g_minus=zero, g_rram_plus=g, g_rram_minus=zero,
                             r_tia=np.array([1e5]), tau=np.array([p.tau]), groups=np.zeros(1, int),
                             gains=np.ones(1), v_in=1.0, b_max=1.0, b_effective=np.ones((1, 1)),
                             gain_method="analytic", headroom=1.0, w_peak=np.ones(1))
    cfg = Config().replace(
        circuit={"access": "none", "r_wire": 0.0},
        device={"mode": p.mode, "window": bool(p.window), "w_rest": p.w_rest, "g_on": p.g_on,
                "g_off": p.g_off, "k": p.k, "vs": p.vs, "lam": p.lam, "eta": p.eta, "vth": p.vth,
                "read_nl": p.read_nl},
        ssm={"taus": [p.tau]}, events={"t_p": t_p, "t_rise": t_r}, sim={"reltol": 1e-7})
    return mapping, sch, cfg


def run_twin_case(case: Case, times: np.ndarray) -> Traces:
    """The case's signals from the twin at ``times`` (s; e.g. ngspice's own time points, so that
    the pulse edges are resolved as finely in both traces)."""
    grid = np.asarray(times, float)
    t0 = time.perf_counter()
    signals = {}
    if case.prepared is not None and case.prepared.cfg.circuit.topology == "trace":
        prep = case.prepared
        out = run_twin_trace(prep.mapping, prep.schedule, prep.cfg, grid)
        R, K = out["w_trace"].shape[1:]
        for r in range(R):
            for k in range(K):
                signals[f"d{r}{k}"] = out["w_trace"][:, r, k]
        for k in range(K):
            signals[f"r{k}"] = out["w_ref"][:, k]
        for n in range(prep.mapping.n_states):      # I+ - I- (A); exact at the read instants
            signals[f"s{n}"] = out["sensed"][:, n]
    elif case.prepared is not None:
        prep = case.prepared
        out = run_twin(prep.mapping, prep.schedule, prep.cfg, grid)
        for n in range(prep.mapping.n_states):
            signals[f"w{n}p"], signals[f"w{n}m"] = out["w_plus"][:, n], out["w_minus"][:, n]
        if "sensed" in out:   # read pulses: (w+ - w-) x the read level; I+ - I- at the reads
            for n in range(prep.mapping.n_states):
                signals[f"s{n}"] = out["sensed"][:, n] * prep.deck_info.i_scale
    else:
        p, pts = case.device
        mapping, sch, cfg = _device_layer(p, pts, case.t_stop)
        w = run_twin(mapping, sch, cfg, grid, w0=p.w0)["w_plus"][:, 0]
        signals["w"] = w
        if len(pts) > 1:
            tp, vp = np.asarray(pts, float).T
            signals["i"] = read_current(p, np.interp(grid, tp, vp), w)
    return Traces(grid, signals, f"cimspice {__version__}", time.perf_counter() - t0)
