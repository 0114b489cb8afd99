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
import numpy as np

from ..config import Config
from ..errors import InputError
from ..hardware.devices import VMemParams, f_depress, f_write, sinh_read
from ..hardware.mapping import CircuitMapping
from ..hardware.trace import trace_sensed_from_w
from ..hardware.variation import trace_write_levels
from ..schedule import PulseSchedule
from .twin_crossbar import Crossbar
from .twin_device import sorted_unique, vmem
from .twin_energy import trace_crossbar_energy, trace_device_energy
from .twin_kernel import chain_pieces

GAP, UP, FLAT, DOWN = 0, 1, 2, 3
_EDGE_POINTS = 4001


# ------------------------------------------------------------------------------ piece maps

def coeffs(p: VMemParams, v, inv_tau=None, rate=None):
    """(a, b) of ``dw/dt = -a w + b`` at drive ``v`` (arrays), odd branch included; ``inv_tau``
    and ``rate`` (arrays broadcast with ``v``) override the law's 1/tau and scale its write rate
    (a chip instance's devices, hardware.variation)."""
    v = np.asarray(v, float)
    it = 1.0 / p.tau if inv_tau is None else inv_tau
    f, fd = f_write(p, v), f_depress(p, v)
    if rate is not None:
        f, fd = f * rate, fd * rate
    if p.window:
        return it + f - fd, p.w_rest * it + f
    return np.broadcast_to(it, np.broadcast(v, it).shape) + 0.0, p.w_rest * it + f + fd


def const_map(p: VMemParams, v, T, inv_tau=None, rate=None):
    """(alpha, beta) of a constant drive ``v`` held for ``T`` (arrays broadcast)."""
    v = np.asarray(v, float)
    if inv_tau is None and rate is None and v.ndim == 1 and v.size > 8:
        u, inv = sorted_unique(v, inverse=True)    # a stream's pieces have a few levels
        a, b = (np.broadcast_to(c, u.shape)[inv] for c in coeffs(p, u))
    else:
        a, b = coeffs(p, v, inv_tau, rate)
    alpha = np.exp(-a * np.asarray(T, float))
    return alpha, b / a * (1.0 - alpha)


def _edge_rule(S: int = 8, Q: int = 8):
    """Composite Gauss-Legendre rule on (0, 1): nodes x (S Q,), node weights per sub-interval
    wq (Q,), the collocation integration matrix Cm[q, m] = int_0^{c_q} l_m (sub-interval
    units), all weights wS (S Q,)."""
    c, wq = np.polynomial.legendre.leggauss(Q)
    c, wq = (c + 1) / 2, wq / 2
    Vinv = np.linalg.inv(np.vander(c, Q, increasing=True))
    pw = np.arange(Q)
    Cm = (c[:, None] ** (pw[None] + 1) / (pw[None] + 1)) @ Vinv
    x = ((np.arange(S)[:, None] + c[None]) / S).ravel()
    return x, wq, Cm, S, Q, np.tile(wq, S)


_RULE = _edge_rule(32, 8)     # 32 sub-intervals: a threshold knee (vs = 20 mV) spans few of them


def edge_maps(p: VMemParams, v0, v1, T, inv_tau=None, rate=None):
    """(alpha, beta) of drives rising linearly from ``v0`` to ``v1`` over ``T`` s (arrays
    broadcast): ``w(T) = e^{-A(T)} w0 + int_0^T b(s) e^{-(A(T) - A(s))} ds``, ``A = int a``, by
    composite Gauss-Legendre quadrature (32 x 8 nodes; A at the nodes from the collocation
    matrix). Checked against the LSODA reference (hardware.devices.integrate) in the tests:
    absolute error < 1e-10 in w on threshold (wox) edges."""
    x, wq, Cm, S, Q, wS = _RULE
    v0, v1, T = (np.asarray(a, float) for a in (v0, v1, T))
    it = np.asarray(1.0 / p.tau if inv_tau is None else inv_tau, float)
    rt = np.asarray(1.0 if rate is None else rate, float)
    v0, v1, T, it, rt = np.broadcast_arrays(v0, v1, T, it, rt)
    shape = v0.shape
    V = v0[..., None] + (v1 - v0)[..., None] * x                       # (..., S Q)
    a, b = coeffs(p, V, it[..., None], None if rate is None else rt[..., None])
    h = T / S
    a4 = a.reshape(shape + (S, Q))
    A_sub = (a4 @ wq) * h[..., None]                                   # (..., S)
    A_in = (a4 @ Cm.T) * h[..., None, None]                            # (..., S, Q)
    cumA = np.cumsum(A_sub, axis=-1) - A_sub
    A_tot = A_sub.sum(axis=-1)
    e = np.exp(-(A_tot[..., None, None] - cumA[..., None] - A_in)).reshape(shape + (S * Q,))
    beta = ((b * e) @ wS) * h
    alpha = np.exp(-A_tot)
    zero = T <= 0
    if np.any(zero):
        alpha, beta = np.where(zero, 1.0, alpha), np.where(zero, 0.0, beta)
    return alpha, beta


def piece_maps(p: VMemParams, kind, level, T, frac=1.0, inv_tau=None, rate=None):
    """(alpha, beta) of the first ``frac`` of pieces of ``kind`` (arrays broadcast; ``T`` is the
    part's duration)."""
    kind, level, T, frac = np.broadcast_arrays(*(np.asarray(a) for a in (kind, level, T, frac)))
    it = None if inv_tau is None else np.broadcast_to(inv_tau, kind.shape)
    rt = None if rate is None else np.broadcast_to(rate, kind.shape)
    alpha, beta = np.ones(kind.shape), np.zeros(kind.shape)
    const = (kind == GAP) | (kind == FLAT)
    if const.any():
        alpha[const], beta[const] = const_map(p, np.where(kind[const] == FLAT, level[const], 0.0),
                                              T[const], _at(it, const), _at(rt, const))
    for kd in (UP, DOWN):
        sel = kind == kd
        if not sel.any():
            continue
        lv, fr = level[sel], frac[sel]
        v0, v1 = (np.zeros_like(lv), lv * fr) if kd == UP else (lv, lv * (1.0 - fr))
        alpha[sel], beta[sel] = unique_edge_maps(p, v0, v1, T[sel], _at(it, sel), _at(rt, sel))
    return alpha, beta


def _at(arr, sel):
    return None if arr is None else arr[sel]


def unique_edge_maps(p, v0, v1, T, it, rt):
    """:func:`edge_maps` computed once per distinct (v0, v1, T, 1/tau, rate) (a train of
    identical pulses has a handful of distinct edges)."""
    cols = [np.asarray(c, float) for c in (v0, v1, T, it, rt) if c is not None]
    if all(np.all(c == c.flat[0]) for c in cols[2:]):     # the usual case: one T, one law
        if not cols[0].any() or not cols[1].any():         # whole rising / falling edges:
            u, inv = sorted_unique(cols[0] + cols[1], inverse=True)    # one level each
            z = np.zeros(u.size)
            keys = np.stack([z, u] if not cols[0].any() else [u, z], axis=1)
        else:
            keys, inv = np.unique(cols[0] + 1j * cols[1], return_inverse=True)
            keys = np.stack([keys.real, keys.imag], axis=1)
        keys = np.concatenate([keys, np.tile([c.flat[0] for c in cols[2:]], (keys.shape[0], 1))],
                              axis=1)
    else:
        keys, inv = np.unique(np.stack(cols, axis=1), axis=0, return_inverse=True)
    inv = inv.ravel()
    ck = (p, keys.tobytes(), it is None, rt is None)
    hit = _EDGE_CACHE.get(ck)              # the distinct edges of a stream: the same few levels
    if hit is None:                        # (write, read) on every sample of a run
        hit = edge_maps(p, keys[:, 0], keys[:, 1], keys[:, 2],
                        keys[:, 3] if it is not None else None,
                        keys[:, 3 + (it is not None)] if rt is not None else None)
        if len(_EDGE_CACHE) > 256:
            _EDGE_CACHE.clear()
        _EDGE_CACHE[ck] = hit
    alpha, beta = hit
    return alpha[inv], beta[inv]


_EDGE_CACHE: dict = {}


class StateReadMaps:
    """The `state` twin's read segments (engines.twin, ``dev``: its _Devices): affine maps
    (A, beta) (2N, S) of read segments: each device sees the read drive r(t)
    (linear from r0 to r1 over dt) on top of its driver's idle output (0, or the chip's driver
    offset), with its own tau and write rate."""

    def __init__(self, dev):
        N = dev.r_tia.size
        self.p = dev.p
        idle = dev.drive(np.zeros(N))                # the driver output between writes
        self.v0 = np.concatenate([idle, -idle])[:, None]
        self.inv_tau = dev.inv_tau[:, None]
        self.rate = None if dev.rate is None else dev.rate[:, None]

    def __call__(self, r0, r1, dt, log: bool = True):
        """(A = -log alpha, beta); ``log`` False: (alpha, beta)."""
        D, S = self.v0.shape[0], dt.size
        alpha, beta = np.empty((D, S)), np.empty((D, S))
        flat = r0 == r1
        it, rt = self.inv_tau, self.rate
        alpha[:, flat], beta[:, flat] = const_map(self.p, self.v0 + r0[flat], dt[flat], it, rt)
        e = ~flat
        if e.any():
            shape = (D, int(e.sum()))
            a_, b_ = unique_edge_maps(
                self.p, np.broadcast_to(self.v0 + r0[e], shape).ravel(),
                np.broadcast_to(self.v0 + r1[e], shape).ravel(),
                np.broadcast_to(dt[e], shape).ravel(), np.broadcast_to(it, shape).ravel(),
                None if rt is None else np.broadcast_to(rt, shape).ravel())
            alpha[:, e], beta[:, e] = a_.reshape(shape), b_.reshape(shape)
        return (-np.log(alpha) if log else alpha), beta


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


def chain_rows(p: VMemParams, table, times: np.ndarray, t_rise: float, keep: list | None = None,
               inv_tau=None, rate=None):
    """w at ``times`` (M,) and the drive there for devices of law ``p`` on each row of the
    padded piece ``table`` (pad_rows); ``inv_tau``, ``rate`` (R,): each row's device's 1/tau
    and write-rate factor (a chip instance; None: the law's). Returns (w (M, R), v (M, R));
    ``keep`` (a list) receives the piece maps and each piece's starting w,
    ``(alpha, beta, w_start)`` (R, J) each."""
    kind, t0, t1, lv = table
    R, J = kind.shape
    T = np.zeros((R, J))
    np.subtract(t1, t0, out=T, where=np.isfinite(t0))
    it = None if inv_tau is None else np.broadcast_to(np.asarray(inv_tau, float)[:, None], (R, J))
    rt = None if rate is None else np.broadcast_to(np.asarray(rate, float)[:, None], (R, J))
    edge = (kind == UP) | (kind == DOWN)
    T = np.where(edge, t_rise, T)                            # an edge lasts t_rise exactly
    alpha, beta = piece_maps(p, kind, lv, T, 1.0, it, rt)
    w_start = np.empty((R, J))
    chain_pieces(alpha, beta, np.full(R, p.w0), w_start)
    if keep is not None:
        keep.append((alpha, beta, w_start))
    M = times.size
    j = np.clip((t0[:, None, :] <= times[None, :, None]).sum(axis=2) - 1, 0, J - 1).T   # (M, R)
    rr = np.broadcast_to(np.arange(R), (M, R))
    kd, a0, a1, lvl = kind[rr, j], t0[rr, j], t1[rr, j], lv[rr, j]
    tt = np.broadcast_to(times[:, None], (M, R))
    dt = np.clip(tt - a0, 0.0, None)
    v = _level_at(kd, a0, a1, lvl, np.minimum(tt, a1))
    on_edge = (kd == UP) | (kd == DOWN)
    frac = np.where(on_edge, np.minimum(1.0, dt / t_rise), 1.0)
    dt = np.where(on_edge, np.minimum(dt, t_rise), dt)
    al, be = piece_maps(p, kd, lvl, dt, frac, None if it is None else it[rr, j],
                        None if rt is None else rt[rr, j])
    return al * w_start[rr, j] + be, v


# ------------------------------------------------------------------------------ the engine

def _block(mapping: CircuitMapping, states: np.ndarray) -> CircuitMapping:
    """The crossbar block of ``states`` as a mapping of its own (twin_crossbar input)."""
    return replace(mapping, g_plus=mapping.g_plus[:, states], g_minus=mapping.g_minus[:, states],
                   g_rram_plus=mapping.g_rram_plus[:, states],
                   g_rram_minus=mapping.g_rram_minus[:, states])


def run_twin_trace(mapping: CircuitMapping, schedule: PulseSchedule, cfg: Config, sample_times,
                   draws=None) -> dict:
    """The trace deck's sensed states at ``sample_times``: ``{"sensed": (M, N), "w_trace":
    (M, C, K), "w_ref": (M, K)}`` (sensed as engines.base.sample_plot reads it from ngspice).
    ``draws``: the sample's hardware.variation.SampleDraws (write noise: each device's write
    levels, as the deck's per-device sources)."""
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
    params = [vmem(cfg, float(t)) for t in taus]
    levels = trace_write_levels(cfg, taus, draws)        # (P, K), as the deck's sources
    noisy = levels is not None
    if not noisy:
        levels = np.full((schedule.n_pulses, K), d.v_write)
    order = np.argsort(schedule.row, kind="stable")            # by row, in time within a row
    bounds = np.searchsorted(schedule.row[order], np.arange(R + 1))
    tables, flags = [], []
    for k in range(K if noisy else 1):
        rows, flags = [], []
        for r in range(R):
            sel = order[bounds[r]:bounds[r + 1]]
            t = np.concatenate([schedule.t_on[sel], r_on])
            o = np.argsort(t, kind="stable")
            lv = np.concatenate([levels[sel, k], np.full(r_on.size, rd.v_read)])
            rows.append(row_pieces(t[o], np.concatenate([schedule.width[sel], r_w])[o], lv[o],
                                   schedule.t_rise, tstop))
            flags.append(np.concatenate([np.zeros(sel.size, bool), np.ones(r_on.size, bool)])[o])
        rows.append(row_pieces(r_on, r_w, np.full(r_on.size, rd.v_read), schedule.t_rise, tstop))
        flags.append(np.ones(r_on.size, bool))
        tables.append(pad_rows(rows))
    w_trace, w_ref = np.empty((st.size, R, K)), np.empty((st.size, K))
    v_rows = None
    chip = mapping.chip
    varied = chip is not None and chip.device_spread
    chains: list | None = [] if cfg.energy.accounting else None
    row_laws = [] if varied else None             # per group: each row's device's (1/tau, rate)
    for k in range(K):
        it = rt = None
        if varied:   # device (r, k) at r K + k, the reference of group k at R K + k
            idx = np.r_[np.arange(R) * K + k, R * K + k]
            it, rt = 1.0 / (taus[k] * chip.tau[idx]), chip.rate[idx]
            row_laws.append((it, rt))
        w, v = chain_rows(params[k], tables[k if noisy else 0], st, schedule.t_rise, keep=chains,
                          inv_tau=it, rate=rt)
        w_trace[:, :, k], w_ref[:, k] = w[:, :R], w[:, R]
        v_rows = v if v_rows is None else v_rows
    energy = None
    blocks = _blocks(mapping, cfg) if rd.mode == "pulse" else {}
    if chains is not None:
        table = tables[0]
        read_flag = np.zeros(table[0].shape, bool)              # pieces of read pulses
        for r, f in enumerate(flags):
            for j in (1, 2, 3):                                 # up, flat, down of pulse i
                read_flag[r, j:4 * f.size:4] = f
        energy = _trace_energy(mapping, cfg, params, tables if noisy else [table] * K, read_flag,
                               chains, blocks, row_laws)
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


def _trace_energy(mapping, cfg: Config, params, tables, read_flag, chains, blocks,
                  row_laws=None) -> dict:
    """crossbar_J, write_J, read_J of the trace deck (engines.twin_energy); ``tables[k]``: the
    piece table of group k's devices; ``row_laws[k]``: their (1/tau, rate) (a chip instance)."""
    R = mapping.n_inputs
    pulse = cfg.read.mode == "pulse"
    rows_on = np.arange(R + 1) if (cfg.read.baseline == "reference" or not pulse) else np.arange(R)
    write = read = 0.0
    for k, (p, table, (alpha, beta, w_start)) in enumerate(zip(params, tables, chains)):
        w_, r_ = trace_device_energy(p, table, read_flag, alpha, beta, w_start, rows_on,
                                     None if row_laws is None else row_laws[k])
        write, read = write + w_, read + r_
    xbar = trace_crossbar_energy(mapping, cfg, params, tables[0], read_flag, chains,
                                 blocks, row_laws) if pulse else 0.0
    return {"crossbar_J": xbar, "write_J": write, "read_J": read}
