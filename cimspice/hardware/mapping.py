"""SSM parameters -> circuit: conductances, pulse amplitude, driver gains, device tau, state gains.

The `state` topology computes, for state n (docs/design.md, "The circuit")::

    I_n(t)  = sum_r I_cell(V_r(t), G+[r, n]) - I_cell(V_r(t), G-[r, n])     (column pair)
    V_n(t)  = R_n * I_n(t)                                                 (write driver)
    d(w_n+ - w_n-)/dt = -(w_n+ - w_n-)/tau_n + k * V_n(t)                  (linear mode, no window)

and the ideal SSM is ``dx_n/dt = -x_n/tau_n + sum_r B[n, r] a_r(t) / t_p``. With cell currents
``I = G * V_in`` during a pulse of amplitude 1 and ``G+ - G- = (g_max - g_min) * B / B_max``,
the two agree exactly when ``w+ - w- = g_n x`` with the analytic gain

    g_n = k * R_n * V_in * t_p * (g_max - g_min) / B_max.

``R_n`` is chosen per state so that ``w`` peaks at ``w_max`` on the calibration data (the
headroom). In ``sinh`` write mode the device is not an integrator: the gain is fitted on a
calibration batch by least squares (:func:`calibrate_gains`) and the method is recorded.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
from scipy.optimize import brentq

from ..config import Config
from ..errors import ConfigError
from ..ssm import SSMParams, simulate_ssm
from . import cells
from .devices import VMemParams, f_write
from .presets import write_law


@dataclass(frozen=True)
class CircuitMapping:
    """Everything the netlist needs, plus what maps device states back to SSM units.

    Arrays are indexed ``[row, state]`` for conductances and ``[state]`` otherwise.
    """

    g_plus: np.ndarray          # (C_in, N) target cell conductance of the + column, S
    g_minus: np.ndarray         # (C_in, N) target cell conductance of the - column, S
    g_rram_plus: np.ndarray     # (C_in, N) programmed RRAM conductance (access-compensated), S
    g_rram_minus: np.ndarray    # (C_in, N)
    r_tia: np.ndarray           # (N,) driver transresistance, ohm
    tau: np.ndarray             # (N,) device time constant per state, s
    groups: np.ndarray          # (N,) decay group per state
    gains: np.ndarray           # (N,) g_n: x_hat = (w+ - w-) / g_n
    v_in: float                 # row pulse amplitude, V
    b_max: float                # |B| that maps to g_max - g_min
    b_effective: np.ndarray     # (N, C_in) the B the conductances realise (after quantisation)
    gain_method: str            # 'analytic' | 'lstsq-calibration'
    headroom: float             # w_max / predicted peak w over the calibration data (>= 1 ok)
    w_peak: np.ndarray          # (N,) predicted peak w per state on the calibration data
    info: dict = field(default_factory=dict)
    chip: object = None         # hardware.variation.Chip: the instance's draws (None: nominal)

    @property
    def n_inputs(self) -> int:
        return int(self.g_plus.shape[0])

    @property
    def n_states(self) -> int:
        return int(self.g_plus.shape[1])


def vmem_params(cfg: Config, tau: float):
    """VMemParams of a volatile device from the [device] section (its preset's write law,
    hardware.presets) and its group's tau."""
    d = cfg.device
    law = write_law(d, cfg.events.t_p)
    return VMemParams(
        tau=tau, w_rest=d.w_rest, w0=d.w_rest, g_on=d.g_on, g_off=d.g_off, mode=law.mode,
        k=law.k, vs=law.vs, lam=law.lam, eta=law.eta, vth=law.vth, window=law.window,
        read_nl=d.read_nl, odd=law.odd,
    )


def target_conductances(B: np.ndarray, g_min: float, g_max: float, levels: int = 0):
    """Differential pair conductances (C_in, N) for B (N, C_in); returns (G+, G-, B_max, B_eff).

    ``G+- = g_min + (g_max - g_min) * max(+-B, 0) / B_max``; with ``levels >= 2`` each
    conductance is rounded to one of ``levels`` equally spaced values in [g_min, g_max].
    """
    B = np.asarray(B, dtype=float)
    b_max = float(np.max(np.abs(B))) if B.size else 0.0
    if b_max == 0.0:
        b_max = 1.0  # all-zero weights: any scale gives G+ = G- = g_min
    span = g_max - g_min
    gp = g_min + span * np.maximum(B, 0.0).T / b_max
    gm = g_min + span * np.maximum(-B, 0.0).T / b_max
    if levels >= 2:
        step = span / (levels - 1)
        gp = g_min + np.round((gp - g_min) / step) * step
        gm = g_min + np.round((gm - g_min) / step) * step
    b_eff = ((gp - gm) * b_max / span).T
    return gp, gm, b_max, b_eff


def compensate_access(g_target: np.ndarray, v_in: float, cfg: Config) -> np.ndarray:
    """RRAM conductance that makes RRAM + access transistor draw ``g_target * v_in`` at ``v_in``.

    This is write-verify programming with the transistor in place: the cell hits its target
    current at the read amplitude; off that amplitude (pulse edges) the transistor's
    nonlinearity remains, as in hardware.
    """
    c = cfg.circuit
    if c.access == "none" or not c.compensate_access:
        return np.array(g_target, dtype=float)
    nmos = cells.NMOSParams()
    uniq, inverse = np.unique(np.asarray(g_target, dtype=float), return_inverse=True)
    if cells.nmos_level1_current(c.v_gate, c.v_in, nmos) <= float(uniq.max()) * v_in:
        raise ConfigError(f"config: [circuit] v_gate={c.v_gate:g} V: the access transistor cannot pass "
                          f"g_max * v_in at v_in={v_in:g} V; raise v_gate or lower g_max/v_in")
    solved = np.array([cells.rram_for_cell_current(v_in, g * v_in, c.v_gate, nmos, rnl=c.rram_read_nl)
                       for g in uniq])
    return solved[inverse].reshape(np.shape(g_target))


def _split_ssm(ssm, b_eff: np.ndarray):
    """Two SSMs driven by the positive and the negative part of B (for peak-w prediction)."""
    pos = SSMParams(B=np.maximum(b_eff, 0.0), taus=ssm.taus, groups=ssm.groups)
    neg = SSMParams(B=np.maximum(-b_eff, 0.0), taus=ssm.taus, groups=ssm.groups)
    return pos, neg


def peak_drive(ssm, b_eff: np.ndarray, schedules) -> np.ndarray:
    """Largest ideal state (N,) reached by the + or - device of each pair on the schedules.

    Each device integrates the rectified drive of its column pair; driving it with max(+-B, 0)
    bounds that from above, so the bound is safe for the headroom. Evaluated at every pulse end
    (where a non-negative drive peaks).
    """
    pos, neg = _split_ssm(ssm, b_eff)
    peak = np.zeros(ssm.n_states)
    for sch in schedules:
        if sch.n_pulses == 0:
            continue
        ends = np.unique(sch.t_on + sch.width)
        for part in (pos, neg):
            x = simulate_ssm(part, sch, ends, method="pulse")
            peak = np.maximum(peak, np.max(x, axis=0))
    return peak


def map_ssm(ssm, cfg: Config, schedules) -> CircuitMapping:
    """Map an SSM onto the circuit; ``schedules`` (PulseSchedule list) calibrate the scale.

    In linear mode the gain is analytic; in sinh mode the returned gains are provisional
    (analytic small-signal estimate) until :func:`calibrate_gains` fits them.
    """
    c, d, e = cfg.circuit, cfg.device, cfg.events
    gp, gm, b_max, b_eff = target_conductances(ssm.B, c.g_min, c.g_max, c.levels)
    peak = peak_drive(ssm, b_eff, schedules)
    span = c.g_max - c.g_min
    unit = d.k * c.v_in * e.t_p * span / b_max        # g_n per ohm of R_n
    budget = c.w_max - d.w_rest
    if budget <= 0:
        raise ConfigError(f"config: [circuit] w_max={c.w_max} must exceed [device] w_rest={d.w_rest}")
    driven = peak > 0
    typical = float(np.median(peak[driven])) if driven.any() else 1.0
    peak_used = np.where(driven, peak, typical)
    gains = budget / peak_used
    r_tia = gains / unit
    if write_law(d, e.t_p).mode == "sinh":
        # Not an integrator: pick each driver so that the strongest single-row event writes
        # what the linear mapping would (budget * b_max / peak), then fit the gain on SPICE
        # calibration runs (simulate.calibrate). Weaker drives write less: that compression
        # is the device's non-linearity, which the calibration can only average.
        i_max = np.max(np.abs(gp - gm), axis=0) * c.v_in
        r_tia = np.empty(ssm.n_states)
        for n in range(ssm.n_states):
            dev = vmem_params(cfg, float(ssm.tau[n]))
            target = min(budget * b_max / peak_used[n], budget) / e.t_p   # 1/s
            r_tia[n] = _voltage_for_rate(dev, target) / (i_max[n] if i_max[n] > 0 else np.max(i_max))
        gains = np.full(ssm.n_states, np.nan)
        method = "lstsq-calibration"
    else:
        method = "analytic"
    w_peak = d.w_rest + gains * peak if method == "analytic" else np.full(ssm.n_states, np.nan)
    headroom = float(c.w_max / np.max(w_peak)) if method == "analytic" and np.max(w_peak) > 0 else float("nan")
    return CircuitMapping(
        g_plus=gp, g_minus=gm,
        g_rram_plus=compensate_access(gp, c.v_in, cfg),
        g_rram_minus=compensate_access(gm, c.v_in, cfg),
        r_tia=r_tia, tau=np.asarray(ssm.tau, dtype=float), groups=np.asarray(ssm.groups),
        gains=gains, v_in=c.v_in, b_max=b_max, b_effective=b_eff, gain_method=method,
        headroom=headroom, w_peak=w_peak,
        info={"peak_ideal": peak, "unit_gain_per_ohm": unit},
    )


def _voltage_for_rate(dev, rate: float) -> float:
    """Write voltage (V) at which the device's write drive f(V) equals ``rate`` (1/s)."""
    hi = dev.vth + 1.0
    while float(f_write(dev, hi)) < rate:
        hi *= 2.0
        if hi > 1e3:
            raise ConfigError(f"config: [device] sinh write cannot reach {rate:.3g} 1/s; raise lam or eta")
    return float(brentq(lambda v: float(f_write(dev, v)) - rate, 0.0, hi, xtol=1e-12))


def calibrate_gains(mapping: CircuitMapping, x_ideal: np.ndarray, dw_spice: np.ndarray,
                    w_max: float, w_peak: np.ndarray | None = None) -> CircuitMapping:
    """Least-squares gains ``g_n = <x, dw> / <x, x>`` from calibration runs (sinh mode).

    ``x_ideal`` and ``dw_spice`` are (S, M, N): ideal states and ``w+ - w-`` at the same times;
    ``w_peak`` (N,) is the largest single-device w seen (for the headroom).
    """
    x = np.asarray(x_ideal, dtype=float).reshape(-1, mapping.n_states)
    dw = np.asarray(dw_spice, dtype=float).reshape(-1, mapping.n_states)
    num = np.sum(x * dw, axis=0)
    den = np.sum(x * x, axis=0)
    gains = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
    fallback = np.nanmedian(gains) if np.isfinite(gains).any() else 1.0
    gains = np.where(np.isfinite(gains) & (gains > 0), gains, fallback)
    if w_peak is None:
        w_peak = np.max(np.abs(dw), axis=0)
    headroom = float(w_max / np.max(w_peak)) if np.max(w_peak) > 0 else float("nan")
    return replace(mapping, gains=gains, gain_method="lstsq-calibration", w_peak=w_peak,
                   headroom=headroom)


def states_from_w(w_plus: np.ndarray, w_minus: np.ndarray, mapping: CircuitMapping) -> np.ndarray:
    """SSM-unit states ``x_hat = (w+ - w-) / g`` from device states (..., N)."""
    return (np.asarray(w_plus) - np.asarray(w_minus)) / mapping.gains
