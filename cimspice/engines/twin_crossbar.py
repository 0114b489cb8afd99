"""The crossbar of the circuit twin: column-pair currents as an algebraic function of the row
voltages (the array has no capacitance). Per-cell solves of the 1R / 1T1R cells
(:mod:`.twin_cells`), cached level tables, the exact transfer matrix of a wired 1R array, and
wired non-linear cells through :mod:`.twin_wired`. Used by :mod:`cimspice.engines.twin`."""

from __future__ import annotations

import numpy as np

from ..config import Config
from ..hardware.mapping import CircuitMapping
from .twin_cells import _cell_currents_1t1r
from .twin_wired import wired_net

# =================================================================================================
# crossbar: column-pair current as a function of the row voltages
# =================================================================================================

class Crossbar:
    """H_r(v): (N,) column-pair current contributed by row r at voltage v (rows superpose).

    kinds: 'lin' (H = v*G[r]; with wires G is the exact transfer matrix of the 1R network),
    'sinh' (H = G[r] sinh(rnl v)/rnl), 'cell' (exact per-cell 1T1R solves, the full-level and
    full-edge values cached per mapping), 'wired' (non-linear cells on resistive wires: not
    separable, see twin_wired._WiredNet).
    """

    def __init__(self, mapping: CircuitMapping, cfg: Config):
        c = cfg.circuit
        gp, gm = np.asarray(mapping.g_rram_plus, float), np.asarray(mapping.g_rram_minus, float)
        self.n_rows, self.n = gp.shape
        self.rnl = float(c.rram_read_nl)
        self.r_wire = float(c.r_wire)
        self.g_sum = (gp + gm).sum(axis=1)               # (R,) a row's conductance (1R, no wires)
        self.separable = True
        if c.r_wire > 0 and (c.access != "none" or self.rnl > 0):
            # non-linear cells on resistive wires: rows no longer superpose
            self.kind = "wired"
            self.separable = False
            self.net = wired_net(gp, gm, float(c.r_wire), c.access, float(c.v_gate), self.rnl)
        elif c.access == "none":
            if c.r_wire > 0:
                self.kind = "lin"
                self.G, self.Y_row = _wire_solve(gp, gm, float(c.r_wire))
            else:
                self.kind = "lin" if self.rnl == 0 else "sinh"
                self.G = gp - gm                          # (R, N)
            # tables of 1R cells are cheap but not free next to a ~1 ms run: cached as well
            self.key = (self.kind, self.G.tobytes(), self.g_sum.tobytes(), gp.shape, self.rnl,
                        self.r_wire)
        else:
            self.kind = "cell"                           # 1T1R: exact per-cell solves
            self.G = None
            self.g_all = np.concatenate([gp, gm], axis=1)     # (R, 2N)
            self.vg = float(c.v_gate)
            self.key = (gp.tobytes(), gm.tobytes(), gp.shape, self.vg, self.rnl)

    def row_current(self, rows, v):
        """Current row ``rows[i]`` draws from its source at voltage ``v[i]`` (>= 0), ideal wires
        (r_wire = 0): the sum of its cells' currents (energy accounting)."""
        rows, v = np.asarray(rows), np.asarray(v, float)
        if self.kind == "lin":
            return v * self.g_sum[rows]
        if self.kind == "sinh":
            return np.sinh(self.rnl * v) / self.rnl * self.g_sum[rows]
        return _cell_currents_1t1r(v[..., None], self.g_all[rows], self.vg, self.rnl).sum(axis=-1)

    def row_power(self, U):
        """Power the row sources deliver, sum_r U_r I_r (W), for row-voltage vectors U (P, R)."""
        U = np.asarray(U, float).reshape(-1, self.n_rows)
        if self.kind == "wired":
            return np.einsum("pr,pr->p", U, self.net.currents(U, rows=True)[1])
        if self.r_wire > 0:                       # 1R on wires: I_row = Y_row u (exact, linear)
            return np.einsum("pr,pr->p", U, U @ self.Y_row.T)
        rows = np.broadcast_to(np.arange(self.n_rows), U.shape)
        return np.einsum("pr,pr->p", U, self.row_current(rows, U))

    def lin_weight(self, v):
        """For 'lin'/'sinh': the scalar s(v) with H_r(v) = G[r] * s(v)."""
        if self.kind == "lin":
            return v
        return np.sinh(self.rnl * v) / self.rnl

    def H(self, rows, v):
        """H_{rows[i]}(v[i]) -> (len, N)."""
        rows = np.asarray(rows)
        v = np.asarray(v, float)
        if self.kind in ("lin", "sinh"):
            return self.G[rows] * self.lin_weight(v)[:, None]
        cur = _cell_currents_1t1r(v[:, None], self.g_all[rows], self.vg, self.rnl)   # (P, 2N)
        return cur[:, :self.n] - cur[:, self.n:]

    def level_tables(self, levels, x_nodes):
        """(Hlev (L, R, N), Hramp (L, R, 2, N, SQ)): H at every full level and at the nodes
        of a full rising (0) / falling (1) edge to that level. Cached per programmed array."""
        key = self.key + (levels.tobytes(), x_nodes.tobytes())
        hit = _TABLE_CACHE.get(key)
        if hit is not None:
            return hit
        R, N, L, SQ = self.n_rows, self.n, levels.size, x_nodes.size
        rr, ll = np.repeat(np.arange(R), L), np.tile(np.arange(L), R)
        Hlev = np.zeros((L, R, N))
        Hramp = np.zeros((L, R, 2, N, SQ))
        if L:
            th = np.concatenate([[1.0], x_nodes, 1.0 - x_nodes])           # (1 + 2 SQ,)
            vv = levels[ll][:, None] * th[None]                            # (L*R, 1 + 2SQ)
            h = self.H(np.repeat(rr, th.size), vv.ravel()).reshape(L * R, th.size, N)
            Hlev[ll, rr] = h[:, 0]
            Hramp[ll, rr] = h[:, 1:].reshape(L * R, 2, SQ, N).transpose(0, 1, 3, 2)
        if len(_TABLE_CACHE) > 64:
            _TABLE_CACHE.clear()
        _TABLE_CACHE[key] = (Hlev, Hramp)
        return Hlev, Hramp


_TABLE_CACHE: dict = {}


_WIRE_CACHE: dict = {}


def _wire_transfer(gp, gm, r_wire):
    """Exact linear map (R, N) row source voltages -> column-pair currents, wired 1R array."""
    return _wire_solve(gp, gm, r_wire)[0]


def _wire_solve(gp, gm, r_wire):
    """Cached :func:`_wire_transfer_solve`: (transfer (R, N), row admittance (R, R))."""
    key = (gp.tobytes(), gm.tobytes(), gp.shape, r_wire)
    hit = _WIRE_CACHE.get(key)
    if hit is None:
        if len(_WIRE_CACHE) > 32:
            _WIRE_CACHE.clear()
        hit = _WIRE_CACHE[key] = _wire_transfer_solve(gp, gm, r_wire)
    return hit


def _wire_transfer_solve(gp, gm, r_wire):
    """Exact linear maps of a wired 1R array: row source voltages -> column-pair currents (R, N),
    and -> the currents the row sources deliver (R, R row admittance, for energy accounting).

    Topology of crossbar_elements: row r is a chain row<r>_in -> cell cols in order
    (0p, 0m, 1p, 1m, ...), one r_wire per segment; column c is a chain from cell row 0 down to
    cell row R-1 and one more segment to the 0 V sense node.
    """
    R, N = gp.shape
    C = 2 * N
    g = np.empty((R, C))
    g[:, 0::2], g[:, 1::2] = gp, gm
    gw = 1.0 / r_wire
    nrow = R * C                                     # row node (r, c) -> r*C + c
    def ri(r, c): return r * C + c
    def ci(r, c): return nrow + c * R + r           # column node (r, c)
    n_nodes = 2 * nrow
    rows_i, cols_i, vals = [], [], []
    Bm = np.zeros((n_nodes, R))                      # injection from the row sources

    def stamp(a, b, y):
        rows_i.append(a); cols_i.append(a); vals.append(y)
        if b is not None:
            rows_i.extend((b, a, b)); cols_i.extend((b, b, a)); vals.extend((y, -y, -y))

    for r in range(R):
        for c in range(C):
            stamp(ri(r, c), ci(r, c), g[r, c])                      # cell
            if c == 0:
                stamp(ri(r, 0), None, gw)
                Bm[ri(r, 0), r] += gw                               # from the source node
            else:
                stamp(ri(r, c - 1), ri(r, c), gw)                   # row segment
            if r + 1 < R:
                stamp(ci(r, c), ci(r + 1, c), gw)                   # column segment
            else:
                stamp(ci(r, c), None, gw)                           # last segment to 0 V sense
    from scipy.sparse import csc_matrix
    from scipy.sparse.linalg import splu

    Y = csc_matrix((vals, (rows_i, cols_i)), shape=(n_nodes, n_nodes))   # duplicates summed
    X = splu(Y).solve(Bm)                                           # node voltages per unit row
    i_sense = gw * X[[ci(R - 1, c) for c in range(C)], :]           # (C, R)
    y_row = gw * (np.eye(R) - X[[ri(r, 0) for r in range(R)], :])   # source -> row node (r, 0)
    return (i_sense[0::2] - i_sense[1::2]).T, y_row                 # (R, N), (R, R)
