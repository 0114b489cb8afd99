"""The circuit twin's energy breakdown: the components the ngspice deck integrates
(engines.energy_netlist: ``crossbar_J``, ``write_J``, ``read_J``), from the twin's own pieces.

Device energy. A device at drive ``V`` draws ``G(w) s(V)`` (``G(w) = g_off + (g_on - g_off) w``,
``s`` the read law, ``s(V) = V`` when linear), so it receives ``u(V) G(w)`` with
``u(V) = V s(V)``. Over a piece of constant drive its state is the exact exponential
``w(t) = w_inf + (w0 - w_inf) e^{-a t}`` (``dw/dt = -a w + b``, ``w_inf = b/a``), hence in closed form

    int_0^T w dt = w_inf T + (w0 - w_inf) T phi(a T),     phi(x) = (1 - e^{-x}) / x,

and the piece's energy is ``u(V) (g_off T + (g_on - g_off) int w dt)``. On an edge (drive linear
in time over ``t_rise``) ``u`` is integrated by Gauss-Legendre quadrature with ``w`` taken linear
between its exact values at the edge's ends: ``w`` moves by at most ``f t_rise`` within an edge
(2e-4 for the presets' 1 us edges), so the error is below that fraction of the conductance range
on the edges' share of a pulse (~1 %): < 1e-5 of the write energy (ngspice agrees to 0.03 %).

Crossbar energy. ``state`` topology, ideal wires: each row sees only its own trapezoids, so a
pulse of level ``v`` and width ``W`` delivers ``(W - t_rise) v I_r(v) + 2 t_rise int_0^1
P_r(theta v) d theta`` (``P_r(v) = v I_r(v)``, ``I_r`` the row's cell currents: ``v sum G`` for 1R,
exact 1T1R solves otherwise; edges by 8-node Gauss-Legendre). With wires the rows couple:
the time axis is cut at every corner and ``sum_r U_r I_r(U)`` is integrated per segment (exact
constant on flat segments, Gauss-Legendre on ramps). ``trace`` topology: the sense stages drive
the block rows with ``R_k (I_dev - I_base) V(gate)`` during the reads; the power is integrated
over each read's edges and flat top by quadrature, with the exact device states.
"""

from __future__ import annotations

import numpy as np

from ..config import Config
from ..hardware.devices import VMemParams, sinh_read
from ..schedule import PulseSchedule
from .netlist import pwl_points
from .twin_crossbar import Crossbar
from .twin_device import sorted_unique


def gl01(n: int):
    """n-node Gauss-Legendre nodes and weights on [0, 1]."""
    x, w = np.polynomial.legendre.leggauss(n)
    return (x + 1) / 2, w / 2


GL_NODES = 8
_X, _WQ = gl01(GL_NODES)
# the trace sense stage: on a read edge the power is a polynomial of degree <= 5 in time for 1R
# cells and an ohmic read (drive x gate, squared, x w linear), exact with 4 nodes; 1T1R cells,
# wires and sinh read laws bend it (measured, 4 vs 16 nodes: 4e-13, 4e-13 and 1e-7 of the
# crossbar energy); the flat top is smoother still
XBAR_NODES = 4
_XB, _WB = gl01(XBAR_NODES)


def phi(x):
    """(1 - e^{-x}) / x, 1 at x = 0 (series below 1e-8)."""
    x = np.asarray(x, float)
    small = np.abs(x) < 1e-8
    return np.where(small, 1.0 - x / 2, -np.expm1(-x) / np.where(small, 1.0, x))


def integral_w(a, b, w0, T):
    """Exact int_0^T w dt of dw/dt = -a w + b from w0 (a > 0, arrays broadcast)."""
    w_inf = b / a
    return w_inf * T + (w0 - w_inf) * T * phi(a * T)


def u_of(v, read_nl: float):
    """Power per unit conductance at drive v: v s(v)."""
    return v * sinh_read(v, read_nl)


def ramp_moments(u_nodes, weights, x, h):
    """(M0, M1) = (int u, int u x) over a ramp from u at its quadrature nodes (axis -2 or the
    node axis given by ``weights``' length): ``M0 = h sum wq u``, ``M1 = h sum wq u x``."""
    return (np.tensordot(weights, u_nodes, axes=(0, -2)) * h,
            np.tensordot(weights * x, u_nodes, axes=(0, -2)) * h)


def edge_energy(g_off, dg, M0, M1, w0, w1):
    """Energy of an edge from the moments of u, w linear from w0 to w1."""
    return g_off * M0 + dg * (w0 * (M0 - M1) + w1 * M1)


# ---------------------------------------------------------------------------------- state

def state_crossbar_energy(xbar: Crossbar, schedule: PulseSchedule, v_in: float) -> float:
    """Energy the row sources deliver into the crossbar over the whole schedule, J."""
    amp = np.asarray(schedule.amplitude, float) * float(v_in)
    rows = np.asarray(schedule.row, np.int64)
    tr = float(schedule.t_rise)
    if not amp.size:
        return 0.0
    if xbar.r_wire == 0:
        lv, lv_inv = sorted_unique(amp, inverse=True)
        p_top, p_edge = _row_powers(xbar, lv)                               # (R, L) each
        r, k = rows, lv_inv.ravel()
        return float(np.sum((schedule.width - tr) * p_top[r, k] + 2.0 * tr * p_edge[r, k]))
    return _wired_crossbar_energy(xbar, schedule, v_in)


_POWER_CACHE: dict = {}


def _row_powers(xbar: Crossbar, levels: np.ndarray):
    """(p_top, p_edge), (R, L): the power row r draws at full level l, and its mean over an
    edge to that level (8-node Gauss-Legendre), ideal wires. Cached per programmed array (the
    same for every sample)."""
    key = xbar.key + (levels.tobytes(),)
    hit = _POWER_CACHE.get(key)
    if hit is not None:
        return hit
    R, L = xbar.n_rows, levels.size
    r = np.repeat(np.arange(R), L)
    v = np.tile(levels, R)
    p_top = (v * xbar.row_current(r, v)).reshape(R, L)
    vn = v[:, None] * _X[None]                                              # (R L, Q)
    p_edge = ((vn * xbar.row_current(np.broadcast_to(r[:, None], vn.shape), vn)) @ _WQ).reshape(R, L)
    if len(_POWER_CACHE) > 64:
        _POWER_CACHE.clear()
    _POWER_CACHE[key] = (p_top, p_edge)
    return p_top, p_edge


def _wired_crossbar_energy(xbar: Crossbar, schedule: PulseSchedule, v_in: float,
                           chunk: int = 4096) -> float:
    """Coupled rows (wires): sum_r U_r I_r(U) per segment of the global time axis."""
    R = schedule.n_rows
    pts = [np.asarray(pwl_points(schedule, r, v_in)) for r in range(R)]
    T = np.unique(np.concatenate([[0.0, float(schedule.duration)], *[p[:, 0] for p in pts]]))
    T = T[(T >= 0) & (T <= schedule.duration)]
    total = 0.0
    for s0 in range(0, T.size - 1, chunk):
        t = T[s0:min(T.size, s0 + chunk + 1)]
        U = np.stack([np.interp(t, p[:, 0], p[:, 1], left=0.0, right=0.0) for p in pts], axis=1)
        dt = np.diff(t)
        u0, u1 = U[:-1], U[1:]
        flat = np.all(u0 == u1, axis=1) & (dt > 0)
        active = flat & np.any(u0 != 0, axis=1)
        if active.any():
            total += float(np.sum(xbar.row_power(u0[active]) * dt[active]))
        ramp = ~flat & (dt > 0)
        if ramp.any():
            un = u0[ramp, None, :] + (u1 - u0)[ramp, None, :] * _X[None, :, None]   # (S, Q, R)
            pw = xbar.row_power(un.reshape(-1, R)).reshape(-1, GL_NODES)
            total += float(np.sum((pw @ _WQ) * dt[ramp]))
    return total


class StateEnergy:
    """Accumulates write_J and read_J of the state devices inside the state twin's chunk loop
    (engines.twin.run_twin): flat write segments (closed form), ramp segments (moments of u
    at the twin's own quadrature nodes, w linear) and read segments (both devices of every
    pair see the read drive)."""

    def __init__(self, dev, read_maps, rule):
        self.dev = dev
        p = dev.p
        self.g_off, self.dg, self.rnl = p.g_off, p.g_on - p.g_off, p.read_nl
        self.read_maps = read_maps     # engines.twin_trace.StateReadMaps: each device's law and idle drive
        x, _, _, _, S, _, wS = rule
        self.S = S
        self.w_moments = np.stack([wS, wS * x])         # (2, SQ): M0 and M1 in one matmul
        self.write = 0.0
        self.read = 0.0
        self._ramps: list = []
        self._reads: list = []

    def ramp(self, kb, Vn, dt):
        """Ramp segments ``kb`` of the chunk, drive ``Vn`` (N, SQ, B) at the quadrature nodes."""
        M = np.matmul(self.w_moments, u_of(Vn, self.rnl))                # (N, 2, B)
        M *= dt / self.S
        self._ramps.append((kb, M[:, 0], M[:, 1]))

    def reads(self, kr, r0, r1, dt):
        """Read segments ``kr`` of the chunk: read drive from r0 to r1 over dt."""
        self._reads.append((kr, r0, r1, dt))

    def chunk(self, w, flat, V_flat, f_flat, dt):
        """Close a chunk: w (2N, nk + 1) at the segment boundaries (segment k from w[:, k] to
        w[:, k + 1]); flat write segments ``flat`` (indices), drive ``V_flat`` (N, F) and its
        dev.f_pm ``f_flat`` (2N, F)."""
        dev, N = self.dev, V_flat.shape[0]
        pair = w[:N] + w[N:]                                             # the pair's w sum
        if V_flat.size:
            u = u_of(V_flat, self.rnl)                                   # (N, F)
            T = dt[flat]
            # int w dt = (b T + w0 - w1) / a: exact, with w1 the segment's exact end; idle
            # segments (u = 0) add exact zeros, cheaper than selecting the live ones
            if not dev.win and dev.paired:    # a = 1/tau for both devices: the pair's sum
                it = dev.inv_tau[:N, None]
                b2 = f_flat[:N] + f_flat[N:]
                b2 += 2.0 * dev.w_rest * it
                iw = (b2 * T + pair[:, flat] - pair[:, flat + 1]) / it
            else:
                it = dev.inv_tau[:, None]
                a = it + dev.win * f_flat
                iw = ((dev.w_rest * it + f_flat) * T + w[:, flat] - w[:, flat + 1]) / a
                iw = iw[:N] + iw[N:]
            self.write += float(np.sum(u * (2 * self.g_off * T + self.dg * iw)))
        if self._ramps:
            kb = np.concatenate([r[0] for r in self._ramps])
            M0, M1 = (np.concatenate([r[i] for r in self._ramps], axis=1) for i in (1, 2))
            self.write += float(np.sum(edge_energy(2 * self.g_off, self.dg, M0, M1,
                                                   pair[:, kb], pair[:, kb + 1])))
        for kr, r0, r1, T in self._reads:
            write, read = self.read_energy(w[:, kr], w[:, kr + 1], r0, r1, T)
            self.write += write
            self.read += read
        self._ramps, self._reads = [], []

    def read_energy(self, w0, w1, r0, r1, T) -> tuple[float, float]:
        """(write part, read part) of the device energy over read segments: device i sees
        ``v_i = idle_i + r`` (idle: its driver's output between writes, 0 unless the chip has
        driver offsets) and draws ``G(w_i) s(v_i)``; the read pulse delivers ``r G s``, the
        driver ``idle_i G s`` (the deck's split)."""
        from .twin_trace import coeffs  # noqa: PLC0415 (twin_trace imports us)
        rm = self.read_maps
        v0 = rm.v0                                                          # (2N, 1)
        write = read = 0.0
        flat = r0 == r1
        if flat.any():
            r = r0[flat][None]
            v = v0 + r                                                      # (2N, F)
            s = sinh_read(v, self.rnl)
            a, b = coeffs(rm.p, v, rm.inv_tau, rm.rate)
            Tf = T[flat][None]
            g_int = self.g_off * Tf + self.dg * integral_w(a, b, w0[:, flat], Tf)   # int G dt
            read += float(np.sum(r * s * g_int))
            write += float(np.sum(v0 * s * g_int))
        e = ~flat
        if e.any():
            rn = r0[e, None] + (r1 - r0)[e, None] * _X[None]                # (E, Q)
            vn = v0[:, :, None] + rn[None]                                  # (2N, E, Q)
            s = sinh_read(vn, self.rnl)
            for part, weight in ((rn[None] * s, "read"), (v0[:, :, None] * s, "write")):
                M0, M1 = ramp_moments(np.moveaxis(part, 2, 1), _WQ, _X, T[e])   # (2N, E)
                got = float(np.sum(edge_energy(self.g_off, self.dg, M0, M1, w0[:, e], w1[:, e])))
                if weight == "read":
                    read += got
                else:
                    write += got
        return write, read


# ---------------------------------------------------------------------------------- trace

def trace_device_energy(p: VMemParams, table, read_flag, alpha, beta, w_start, rows_on,
                        row_law=None) -> tuple:
    """(write_J, read_J) of the devices of law ``p`` on the rows of a piece table
    (twin_trace.pad_rows) chained to ``w_start`` (``rows_on``: the rows whose devices are in the
    deck; ``row_law``: each row's device's (1/tau, write-rate factor) arrays, a chip instance)."""
    from .twin_trace import DOWN, FLAT, UP, coeffs  # noqa: PLC0415 (twin_trace imports us)
    kind, t0, t1, lv = table
    it = rt = None
    if row_law is not None:
        it, rt = (np.broadcast_to(np.asarray(x, float)[:, None], kind.shape)[rows_on] for x in row_law)
    kind, t0, t1, lv = kind[rows_on], t0[rows_on], t1[rows_on], lv[rows_on]
    w0, read_flag = w_start[rows_on], read_flag[rows_on]
    w1 = alpha[rows_on] * w0 + beta[rows_on]
    fin = np.isfinite(t0)
    T = np.zeros(kind.shape)
    np.subtract(t1, t0, out=T, where=fin)
    E = np.zeros(kind.shape)
    g_off, dg = p.g_off, p.g_on - p.g_off
    fl = kind == FLAT
    if fl.any():
        a, b = coeffs(p, lv[fl], None if it is None else it[fl], None if rt is None else rt[fl])
        E[fl] = u_of(lv[fl], p.read_nl) * (g_off * T[fl] + dg * integral_w(a, b, w0[fl], T[fl]))
    for kd in (UP, DOWN):
        sel = kind == kd
        if not sel.any():
            continue
        frac = _X if kd == UP else 1.0 - _X
        vn = lv[sel][:, None] * frac[None]                                 # (E, Q)
        M0, M1 = ramp_moments(u_of(vn, p.read_nl).T, _WQ, _X, T[sel])
        E[sel] = edge_energy(g_off, dg, M0, M1, w0[sel], w1[sel])
    return float(E[~read_flag].sum()), float(E[read_flag].sum())


def trace_crossbar_energy(mapping, cfg: Config, params: list[VMemParams], table, read_flag,
                          chains: list, blocks: dict, row_laws: list | None = None) -> float:
    """Energy the gated sense stages deliver into the crossbar blocks over every read, J.

    ``chains[k] = (alpha, beta, w_start)`` of group k's devices on the piece table (rows
    0..R-1: the trace devices, row R: the reference device); ``blocks[k]``: group k's
    Crossbar (absent: no states in the group, nothing driven); ``row_laws[k]``: the (1/tau,
    rate) arrays (R + 1,) of group k's devices (a chip instance; None: the law's)."""
    from .twin_trace import GAP, coeffs  # noqa: PLC0415 (twin_trace imports us)
    d, rd = cfg.device, cfg.read
    kind, t0, t1, _ = table
    R = mapping.n_inputs
    K = len(params)
    # read pieces of every row in time order: (R + 1, M, 3) piece indices (up, flat, down)
    # (every row holds the same reads: 3 M pieces each, in row-major order from nonzero)
    rows, cols = np.nonzero(read_flag[:R + 1] & (kind[:R + 1] != GAP))
    M = int(np.count_nonzero(rows == 0)) // 3
    if M == 0 or not blocks:
        return 0.0
    idx = cols.reshape(R + 1, M, 3)
    rr = np.arange(R + 1)[:, None, None]
    T = t1[rr, idx] - t0[rr, idx]                                           # (R + 1, M, 3)
    T_read = T[0]                                                           # the same on every row
    frac = np.stack([_XB, np.ones_like(_XB), 1.0 - _XB])                       # (3, Q) drive / v_read
    r_v = rd.v_read * frac                                                  # read drive at the nodes
    s_r = sinh_read(r_v, d.read_nl)                                         # (3, Q)
    r_k = np.asarray(mapping.info["sense_r"], float)
    g = lambda w: d.g_off + (d.g_on - d.g_off) * w                          # noqa: E731 (vmem.lib)
    total = 0.0
    for k in range(K):
        if k not in blocks:
            continue
        alpha, beta, w_start = chains[k]
        w0 = w_start[rr, idx]                                               # (R + 1, M, 3)
        w1 = alpha[rr, idx] * w0 + beta[rr, idx]
        # w at the nodes: linear on the edges, exact exponential on the flat top
        w = w0[..., None] + (w1 - w0)[..., None] * _XB                       # (R + 1, M, 3, Q)
        law = row_laws[k] if row_laws is not None else (None, None)
        a, b = coeffs(params[k], rd.v_read, *law)
        a = np.broadcast_to(np.asarray(a, float), (R + 1,))[:, None, None]   # per row's device
        b = np.broadcast_to(np.asarray(b, float), (R + 1,))[:, None, None]
        w_inf = b / a
        w[:, :, 1, :] = w_inf + (w0[:, :, 1, None] - w_inf) * np.exp(-a * T[:, :, 1, None] * _XB)
        i_dev = g(w[:R]) * s_r                                              # (R, M, 3, Q)
        base = g(w[R]) * s_r if rd.baseline == "reference" else g(d.w_rest) * s_r
        vx = r_k[k] * (i_dev - base) * frac                                 # gate = drive / v_read
        U = np.moveaxis(vx, 0, -1).reshape(-1, R)                           # (M*3*Q, R)
        pw = blocks[k].row_power(U).reshape(M, 3, XBAR_NODES)
        total += float(np.sum((pw @ _WB) * T_read))
    return total
