"""The `trace` topology: fixed write pulses on one volatile device per (input row, decay group),
read through a gated sense stage into one crossbar block per group (docs/design.md "The trace
topology").

The SSM decomposes exactly (diagonal A, K shared decays)::

    x_n(t) = sum_r B[n, r] s_{r, g(n)}(t)         s_{r,k}: the trace of row r under tau_k

One deck per event sample::

    Vdw<r>    dw<r>          PWL: write pulses (v_write) of row r and every read pulse (v_read)
    xd<r>_<k> dw<r> sd<r>_<k>  vmem tau=tau_k        (the trace device; Vsd<r>_<k> senses it)
    Vdref     dref           PWL: read pulses only; xref<k> dref sref<k> vmem tau=tau_k
    Vgate     gate           PWL: 1 during read pulses (the sense stage's enable)
    Bx<r>_<k> x<k>r<r> 0 V = R_k (i(Vsd<r>_<k>) - i(Vsref<k>)) V(gate)         (sense stage)
    crossbar block k: rows x<k>r<r>, the 2 N_k columns of the group-k states (1T1R, as `state`)

During a read, ``V(x<k>r<r>) = R_k (g_on - g_off) rd(v_read) (w_{r,k} - w_ref,k)`` and the
column pair carries ``I_n = sum_r (G+ - G-)[r, n] V(x<k>r<r>)``. With the window off a write
pulse adds ``a_k`` per unit of pulse-SSM input (:func:`write_gain`), so ``I_n = g_n x_n`` with

    g_n = (g_max - g_min) / b_max * R_k (g_on - g_off) rd(v_read) a_k        [A per unit state]

The sense gain ``R_k`` puts the largest calibration trace at the crossbar's full-scale row
voltage ``[circuit] v_in``. With the window on (WOx) writes are compressive: the gain is fitted
on calibration runs, as for the `state` topology's sinh mode.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..config import Config
from ..ssm import SSMParams, simulate_ssm
from .devices import VMemParams, f_write, sinh_read
from .mapping import CircuitMapping, compensate_access, target_conductances, vmem_params


def group_taus(ssm) -> np.ndarray:
    """(K,) decay constant of each group, s."""
    return np.asarray(ssm.taus, dtype=float)


def write_gain(dev: VMemParams, v_write: float, t_p: float, t_rise: float) -> float:
    """dw per unit of pulse-SSM input (one nominal t_p pulse) for a small w, window off:
    ``int f(V(t)) dt`` over the drawn trapezoid (edges by 64-node Gauss-Legendre)."""
    x, wq = np.polynomial.legendre.leggauss(64)
    theta = (x + 1) / 2
    ramp = float(np.sum(wq / 2 * f_write(dev, v_write * theta)))   # mean f over one edge
    return float(f_write(dev, v_write)) * (t_p - t_rise) + 2 * t_rise * ramp


def read_scale(cfg: Config) -> float:
    """Device current per unit w at the read voltage: (g_on - g_off) rd(v_read), A."""
    d = cfg.device
    return (d.g_on - d.g_off) * float(sinh_read(cfg.read.v_read, d.read_nl))


def peak_traces(n_rows: int, taus: np.ndarray, schedules) -> np.ndarray:
    """(K,) largest pulse-SSM trace (B = identity) of any row under each tau on ``schedules``,
    evaluated at every pulse end (where a trace peaks)."""
    K = taus.size
    ident = SSMParams(B=np.tile(np.eye(n_rows), (K, 1)), taus=taus,
                      groups=np.repeat(np.arange(K), n_rows))
    peak = np.zeros(K)
    for sch in schedules:
        if sch.n_pulses == 0:
            continue
        ends = np.unique(sch.t_on + sch.width)
        s = simulate_ssm(ident, sch, ends, method="pulse").reshape(ends.size, K, n_rows)
        peak = np.maximum(peak, s.max(axis=(0, 2)))
    return peak


def map_trace(ssm, cfg: Config, schedules) -> CircuitMapping:
    """Map an SSM onto the trace topology; ``schedules`` calibrate the sense gains."""
    c, d, e, rd = cfg.circuit, cfg.device, cfg.events, cfg.read
    gp, gm, b_max, b_eff = target_conductances(ssm.B, c.g_min, c.g_max, c.levels)
    taus = group_taus(ssm)
    devs = [vmem_params(cfg, float(t)) for t in taus]
    a = np.array([write_gain(p, d.v_write, e.t_p, e.t_rise) for p in devs])
    s_peak = peak_traces(ssm.n_inputs, taus, schedules)
    s_peak = np.where(s_peak > 0, s_peak, 1.0)
    lin = a * s_peak
    w_peak = d.w_rest + (-np.expm1(-lin) if devs[0].window else lin)
    scale = read_scale(cfg)
    if rd.sense_gain > 0:
        r_k = np.full(taus.size, rd.sense_gain)
    else:
        r_k = c.v_in / (scale * (w_peak - d.w_rest))
    span = c.g_max - c.g_min
    groups = np.asarray(ssm.groups)
    windowed = devs[0].window
    if rd.mode == "node":       # diagnostic: w probed, B applied in NumPy -> w units
        gains = a[groups].copy()
    else:
        gains = span / b_max * r_k[groups] * scale * a[groups]
    method = "lstsq-calibration" if windowed else "analytic"
    if windowed:
        gains = np.full(ssm.n_states, np.nan)
    return CircuitMapping(
        g_plus=gp, g_minus=gm,
        g_rram_plus=compensate_access(gp, c.v_in, cfg),
        g_rram_minus=compensate_access(gm, c.v_in, cfg),
        r_tia=r_k[groups], tau=np.asarray(ssm.tau, dtype=float), groups=groups,
        gains=gains, v_in=c.v_in, b_max=b_max, b_effective=b_eff, gain_method=method,
        headroom=float(c.w_max / np.max(w_peak)), w_peak=w_peak[groups],
        info={"topology": "trace", "trace_peak": s_peak, "write_gain": a, "sense_r": r_k,
              "group_taus": taus},
    )


def trace_sensed_from_w(w_dev: np.ndarray, w_ref: np.ndarray, mapping: CircuitMapping) -> np.ndarray:
    """Read mode 'node' (diagnostic): ``sum_r B_eff[n, r] (w_{r,g(n)} - w_ref,g(n))`` (M, N) from
    the trace devices' w (M, C, K) and the baseline w (M, K) (B applied in NumPy)."""
    g = mapping.groups
    dw = w_dev[:, :, g] - w_ref[:, None, g]                   # (M, C, N)
    return np.einsum("mcn,nc->mn", dw, mapping.b_effective)


def with_gains(mapping: CircuitMapping, gains: np.ndarray, w_peak=None) -> CircuitMapping:
    """The mapping with calibrated gains (trace topology)."""
    return replace(mapping, gains=np.asarray(gains, float), gain_method="lstsq-calibration",
                   w_peak=mapping.w_peak if w_peak is None else w_peak)
