"""The circuit twin of the `trace` topology (hardware.trace, engines.trace_netlist), and the exact
per-device piece maps it shares with the `state` twin's read pulses.

Every trace device sees only its own row's PWL (fixed write pulses and the read pulses), never
the crossbar: each device evolves on its own. A row's waveform is a chain of pieces -- idle gaps,
rising edges, flat tops, falling edges -- and over each piece the device ODE
``dw/dt = -a(V) w + b(V)`` is linear in w, so a piece is an affine map ``w -> alpha w + beta``:

* gap and flat top (constant V): exact, ``alpha = exp(-a T)``, ``beta = b/a (1 - alpha)``;
* edge (V linear in time): ``w(T) = e^{-A(T)} w0 + int_0^T b(s) e^{-(A(T) - A(s))} ds`` with
  ``A(s) = int_0^s a``, on a 4001-point grid (cumulative trapezoid; relative error < 1e-9 for
  a T <= 1e-2), computed once per (device, levels, duration) and cached.

The maps of a row are chained piece by piece, vectorised over the rows. At a sample time the
state of the piece holding it is advanced by the partial map. In read mode 'pulse' the sample
is the read centre: device currents ``G(w) rd(V)``, minus the baseline, times the sense gain
give the crossbar rows' voltages, and the crossbar twin (twin_crossbar.Crossbar, one block per
group) gives the column-pair currents: the sensed states.
"""

from __future__ import annotations

from dataclasses import replace
from functools import lru_cache

import numpy as np

from ..config import Config
from ..errors import InputError
from ..hardware.devices import VMemParams, f_depress, f_write, sinh_read
from ..hardware.mapping import CircuitMapping, vmem_params
from ..hardware.trace import trace_sensed_from_w
from ..schedule import PulseSchedule
from .twin_crossbar import Crossbar
from .twin_energy import trace_crossbar_energy, trace_device_energy

GAP, UP, FLAT, DOWN = 0, 1, 2, 3
_EDGE_POINTS = 4001


# ------------------------------------------------------------------------------ piece maps

def coeffs(p: VMemParams, v):
    """(a, b) of ``dw/dt = -a w + b`` at drive ``v`` (arrays), odd branch included."""
    v = np.asarray(v, float)
    f, fd = f_write(p, v), f_depress(p, v)
    if p.window:
        return 1.0 / p.tau + f - fd, p.w_rest / p.tau + f
    return np.full_like(v, 1.0 / p.tau), p.w_rest / p.tau + f + fd


def const_map(p: VMemParams, v, T):
    """(alpha, beta) of a constant drive ``v`` held for ``T`` (arrays broadcast)."""
    a, b = coeffs(p, v)
    alpha = np.exp(-a * np.asarray(T, float))
    return alpha, b / a * (1.0 - alpha)


@lru_cache(maxsize=4096)
def edge_map(p: VMemParams, v0: float, v1: float, T: float) -> tuple[float, float]:
    """(alpha, beta) of a drive rising linearly from ``v0`` to ``v1`` over ``T`` s."""
    if T <= 0:
        return 1.0, 0.0
    s = np.linspace(0.0, T, _EDGE_POINTS)
    a, b = coeffs(p, v0 + (v1 - v0) * s / T)
    ds = T / (_EDGE_POINTS - 1)
    A = np.concatenate([[0.0], np.cumsum((a[1:] + a[:-1]) * (ds / 2))])
    g = b * np.exp(-(A[-1] - A))
    return float(np.exp(-A[-1])), float(np.sum((g[1:] + g[:-1]) * (ds / 2)))


def piece_map(p: VMemParams, kind: int, level: float, T: float, frac: float = 1.0):
    """(alpha, beta) of the first ``frac`` of a piece (``T`` is the part's duration)."""
    if kind == GAP:
        return const_map(p, 0.0, T)
    if kind == FLAT:
        return const_map(p, level, T)
    if kind == UP:
        return edge_map(p, 0.0, float(level * frac), float(T))
    return edge_map(p, float(level), float(level * (1.0 - frac)), float(T))


# ------------------------------------------------------------------------------ waveforms

def row_pieces(t_on, width, level, t_rise: float, tstop: float):
    """Pieces of one row's trapezoid train (sorted, non-overlapping): (kind, t0, t1, level)."""
    h = t_rise / 2
    n = t_on.size
    a0 = t_on - h
    kinds = np.empty(4 * n + 1, np.int8)
    t0 = np.empty(4 * n + 1)
    lv = np.zeros(4 * n + 1)
    prev_end = np.concatenate([[0.0], t_on[:-1] + width[:-1] + h]) if n else np.zeros(0)
    kinds[0:4 * n:4], t0[0:4 * n:4] = GAP, prev_end
    kinds[1:4 * n:4], t0[1:4 * n:4], lv[1:4 * n:4] = UP, a0, level
    kinds[2:4 * n:4], t0[2:4 * n:4], lv[2:4 * n:4] = FLAT, t_on + h, level
    kinds[3:4 * n:4], t0[3:4 * n:4], lv[3:4 * n:4] = DOWN, t_on + width - h, level
    kinds[-1], t0[-1] = GAP, (t_on[-1] + width[-1] + h) if n else 0.0
    t1 = np.concatenate([t0[1:], [max(tstop, t0[-1])]])
    return kinds, t0, t1, lv


def _level_at(kind, t0, t1, lv, s):
    """Drive at time ``s`` inside a piece."""
    frac = np.where(t1 > t0, (s - t0) / np.where(t1 > t0, t1 - t0, 1.0), 1.0)
    return np.select([kind == UP, kind == FLAT, kind == DOWN], [lv * frac, lv, lv * (1 - frac)], 0.0)


def pad_rows(rows: list):
    """Row piece tuples -> padded (R, J) arrays (kind, t0, t1, level); padding pieces are
    zero-length gaps at +inf (identity maps, never holding a sample)."""
    R, J = len(rows), max(k.size for k, *_ in rows)
    kind = np.full((R, J), GAP, np.int8)
    t0 = np.full((R, J), np.inf)
    t1 = np.full((R, J), np.inf)
    lv = np.zeros((R, J))
    for r, (k, a, b, v) in enumerate(rows):
        n = k.size
        kind[r, :n], t0[r, :n], t1[r, :n], lv[r, :n] = k, a, b, v
    return kind, t0, t1, lv


def chain_rows(p: VMemParams, table, times: np.ndarray, t_rise: float, keep: list | None = None):
    """w at ``times`` (M,) and the drive there for devices of law ``p`` on each row of the
    padded piece ``table`` (pad_rows). Returns (w (M, R), v (M, R)); ``keep`` (a list) receives
    the piece maps and each piece's starting w, ``(alpha, beta, w_start)`` (R, J) each."""
    kind, t0, t1, lv = table
    R, J = kind.shape
    T = np.zeros((R, J))
    np.subtract(t1, t0, out=T, where=np.isfinite(t0))
    const = (kind == GAP) | (kind == FLAT)
    alpha, beta = np.ones((R, J)), np.zeros((R, J))
    alpha[const], beta[const] = const_map(p, np.where(kind[const] == FLAT, lv[const], 0.0), T[const])
    for kd in (UP, DOWN):
        sel = kind == kd
        for level in np.unique(lv[sel]):                    # v_write and v_read: two maps each
            at = sel & (lv == level)
            alpha[at], beta[at] = piece_map(p, kd, float(level), t_rise)
    w_start = np.empty((R, J))
    w = np.full(R, p.w0)
    for j in range(J):
        w_start[:, j] = w
        w = alpha[:, j] * w + beta[:, j]
    if keep is not None:
        keep.append((alpha, beta, w_start))
    M = times.size
    j = np.clip((t0[:, None, :] <= times[None, :, None]).sum(axis=2) - 1, 0, J - 1).T   # (M, R)
    rr = np.broadcast_to(np.arange(R), (M, R))
    kd, a0, a1, lvl = kind[rr, j], t0[rr, j], t1[rr, j], lv[rr, j]
    tt = np.broadcast_to(times[:, None], (M, R))
    dt = np.clip(tt - a0, 0.0, None)
    v = _level_at(kd, a0, a1, lvl, np.minimum(tt, a1))
    flat = (kd == GAP) | (kd == FLAT)
    al, be = np.empty((M, R)), np.empty((M, R))
    al[flat], be[flat] = const_map(p, np.where(kd[flat] == FLAT, lvl[flat], 0.0), dt[flat])
    for m, r in zip(*np.nonzero(~flat)):                     # a sample on an edge (rare)
        frac = min(1.0, dt[m, r] / t_rise)
        al[m, r], be[m, r] = piece_map(p, int(kd[m, r]), float(lvl[m, r]), min(dt[m, r], t_rise), frac)
    return al * w_start[rr, j] + be, v


# ------------------------------------------------------------------------------ the engine

def _block(mapping: CircuitMapping, states: np.ndarray) -> CircuitMapping:
    """The crossbar block of ``states`` as a mapping of its own (twin_crossbar input)."""
    return replace(mapping, g_plus=mapping.g_plus[:, states], g_minus=mapping.g_minus[:, states],
                   g_rram_plus=mapping.g_rram_plus[:, states],
                   g_rram_minus=mapping.g_rram_minus[:, states])


def run_twin_trace(mapping: CircuitMapping, schedule: PulseSchedule, cfg: Config, sample_times) -> dict:
    """The trace deck's sensed states at ``sample_times``: ``{"sensed": (M, N), "w_trace":
    (M, C, K), "w_ref": (M, K)}`` (sensed as engines.base.sample_plot reads it from ngspice)."""
    st = np.asarray(sample_times, float).ravel()
    R, N = mapping.n_inputs, mapping.n_states
    if schedule.n_rows != R:
        raise InputError(f"schedule: field 'n_rows': {schedule.n_rows} rows but the mapping has {R} "
                         f"inputs; fix: build the mapping and the schedule from the same [events] config")
    d, rd = cfg.device, cfg.read
    taus = np.asarray(mapping.info["group_taus"], float)
    K = taus.size
    tstop = float(schedule.duration)
    r_on, r_w = schedule.read_corners()
    rows, flags = [], []
    order = np.argsort(schedule.row, kind="stable")            # by row, in time within a row
    bounds = np.searchsorted(schedule.row[order], np.arange(R + 1))
    for r in range(R):
        sel = order[bounds[r]:bounds[r + 1]]
        t = np.concatenate([schedule.t_on[sel], r_on])
        o = np.argsort(t, kind="stable")
        lv = np.concatenate([np.full(sel.size, d.v_write), np.full(r_on.size, rd.v_read)])
        rows.append(row_pieces(t[o], np.concatenate([schedule.width[sel], r_w])[o], lv[o],
                               schedule.t_rise, tstop))
        flags.append(np.r_[np.zeros(sel.size, bool), np.ones(r_on.size, bool)][o])
    rows.append(row_pieces(r_on, r_w, np.full(r_on.size, rd.v_read), schedule.t_rise, tstop))
    flags.append(np.ones(r_on.size, bool))
    w_trace, w_ref = np.empty((st.size, R, K)), np.empty((st.size, K))
    v_rows = None
    table = pad_rows(rows)
    chains: list | None = [] if cfg.energy.accounting else None
    params = [vmem_params(cfg, float(t)) for t in taus]
    for k in range(K):
        w, v = chain_rows(params[k], table, st, schedule.t_rise, keep=chains)
        w_trace[:, :, k], w_ref[:, k] = w[:, :R], w[:, R]
        v_rows = v
    energy = None
    blocks = _blocks(mapping, cfg) if rd.mode == "pulse" else {}
    if chains is not None:
        read_flag = np.zeros(table[0].shape, bool)              # pieces of read pulses
        for r, f in enumerate(flags):
            for j in (1, 2, 3):                                 # up, flat, down of pulse i
                read_flag[r, j:4 * f.size:4] = f
        energy = _trace_energy(mapping, cfg, params, table, read_flag, chains, blocks)
    if rd.mode == "node":
        return {"sensed": trace_sensed_from_w(w_trace, w_ref, mapping), "w_trace": w_trace,
                "w_ref": w_ref, "energy": energy}
    # read centre: device currents -> baseline -> gated sense stage -> crossbar block k
    g = lambda w: d.g_off + (d.g_on - d.g_off) * w          # noqa: E731 (G(w), as vmem.lib)
    rdv = sinh_read(v_rows, d.read_nl)                         # (M, R + 1)
    gate = v_rows[:, R] / rd.v_read                            # the gate PWL is reads / v_read
    i_dev = g(w_trace) * rdv[:, :R, None]                      # (M, R, K)
    if rd.baseline == "reference":
        i_base = g(w_ref)[:, None, :] * rdv[:, R, None, None]
    else:
        i_base = np.broadcast_to(g(d.w_rest) * rdv[:, R, None, None], i_dev.shape)
    r_k = np.asarray(mapping.info["sense_r"], float)
    vx = r_k[None, None, :] * (i_dev - i_base) * gate[:, None, None]   # (M, R, K)
    sensed = np.zeros((st.size, N))
    for k in range(K):
        xbar = blocks.get(k)
        if xbar is None:
            continue
        states = np.flatnonzero(mapping.groups == k)
        if xbar.separable:
            rows_i = np.tile(np.arange(R), st.size)
            sensed[:, states] = xbar.H(rows_i, vx[:, :, k].ravel()).reshape(st.size, R, -1).sum(axis=1)
        else:
            sensed[:, states] = xbar.net.currents(vx[:, :, k])
    return {"sensed": sensed, "w_trace": w_trace, "w_ref": w_ref, "energy": energy}


def _blocks(mapping: CircuitMapping, cfg: Config) -> dict:
    """{group k: the Crossbar of its block} for the groups that have states."""
    out = {}
    for k in range(len(mapping.info["group_taus"])):
        states = np.flatnonzero(mapping.groups == k)
        if states.size:
            out[k] = Crossbar(_block(mapping, states), cfg)
    return out


def _trace_energy(mapping, cfg: Config, params, table, read_flag, chains, blocks) -> dict:
    """crossbar_J, write_J, read_J of the trace deck (engines.twin_energy)."""
    R = mapping.n_inputs
    pulse = cfg.read.mode == "pulse"
    rows_on = np.arange(R + 1) if (cfg.read.baseline == "reference" or not pulse) else np.arange(R)
    write = read = 0.0
    for p, (alpha, beta, w_start) in zip(params, chains):
        w_, r_ = trace_device_energy(p, table, read_flag, alpha, beta, w_start, rows_on)
        write, read = write + w_, read + r_
    xbar = trace_crossbar_energy(mapping, cfg, params, table, read_flag, chains,
                                 blocks) if pulse else 0.0
    return {"crossbar_J": xbar, "write_J": write, "read_J": read}
