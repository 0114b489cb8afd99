"""The crossbar of the circuit twin: column-pair currents as an algebraic function of the row
voltages (the array has no capacitance). Exact per-cell solves of the 1R / 1T1R cells (level-1
NMOS, sinh RRAM read), cached level tables, the exact transfer matrix of a wired 1R array and
a batched fixed point for wired non-linear cells. Used by :mod:`cimspice.engines.twin`."""

from __future__ import annotations

import numpy as np

from ..config import Config
from ..errors import ConfigError
from ..hardware.cells import NMOSParams
from ..hardware.mapping import CircuitMapping


# =================================================================================================
# crossbar: column-pair current as a function of the row voltages
# =================================================================================================

def _nmos_id(vgs, vds, nm: NMOSParams):
    """Level-1 drain current and d/dvds for vds >= 0 (ngspice MOS1, gamma = 0)."""
    beta, lam = nm.kp * nm.w / nm.l, nm.lambda_
    vov = vgs - nm.vto
    on = vov > 0
    clm = 1.0 + lam * vds
    tri = vds < vov
    i_t = beta * vds * (vov - vds / 2.0) * clm
    d_t = beta * ((vov - vds) * clm + vds * (vov - vds / 2.0) * lam)
    i_s = beta / 2.0 * vov ** 2 * clm
    d_s = beta / 2.0 * vov ** 2 * lam
    i = np.where(on, np.where(tri, i_t, i_s), 0.0)
    d = np.where(on, np.where(tri, d_t, d_s), 0.0)
    return i, d


def _nmos_any(vg, vd, vs, nm: NMOSParams):
    """Level-1 current drain -> source and d/dvd for any sign of vds (ngspice swaps drain and
    source for vds < 0: I = -I_f(vg - vd, vs - vd)); bulk at 0, gamma = 0."""
    beta, lam = nm.kp * nm.w / nm.l, nm.lambda_
    vds = vd - vs
    fwd = vds >= 0
    x = np.abs(vds)                                    # effective vds
    vov = np.where(fwd, vg - vs, vg - vd) - nm.vto     # effective vgs - vto
    on = vov > 0
    clm = 1.0 + lam * x
    tri = x < vov
    i_f = np.where(tri, beta * x * (vov - x / 2.0) * clm, beta / 2.0 * vov ** 2 * clm)
    di_dx = np.where(tri, beta * ((vov - x) * clm + x * (vov - x / 2.0) * lam), beta / 2.0 * vov ** 2 * lam)
    di_dv = np.where(tri, beta * x * clm, beta * vov * clm)
    i_f = np.where(on, i_f, 0.0)
    # forward: dI/dvd = di_dx; reverse: I = -i_f(vg - vd, vs - vd): dI/dvd = di_dv + di_dx
    d = np.where(on, np.where(fwd, di_dx, di_dv + di_dx), 0.0)
    return np.where(fwd, i_f, -i_f), d


def _nmos_triode_sym(vg, vd, vs, nm: NMOSParams):
    """_nmos_any when the transistor is in triode for either sign of vds: with gamma = 0 the
    drain/source swap gives the same polynomial, I = beta (vov_s x - x^2/2)(1 + lambda |x|),
    x = vd - vs, vov_s = vg - vs - vto; returns I and dI/dvd."""
    beta, lam = nm.kp * nm.w / nm.l, nm.lambda_
    x = vd - vs
    vov = vg - vs - nm.vto
    ax = np.abs(x)
    clm = 1.0 + lam * ax
    q = (vov - 0.5 * x) * x
    return beta * q * clm, beta * ((vov - x) * clm + q * lam * np.sign(x))


def _rram(g, x, rnl):
    """RRAM current and d/dx at voltage x."""
    if rnl == 0:
        return g * x, g * np.ones_like(x)
    return g * np.sinh(rnl * x) / rnl, g * np.cosh(rnl * x)


def _cell_currents_1t1r(v, g, vg: float, rnl: float, nm: NMOSParams = NMOSParams()):
    """Exact 1T1R cell current for row voltage ``v >= 0`` (column at 0 V), vectorised.

    Solves g*rho(v - vd) = I_nmos(vg, vd) for the internal node vd in [0, v]: Newton from the
    linear-channel estimate (quadratic convergence, ~4 steps), then any element whose residual
    is not at rounding level is re-solved by bracketed Newton/bisection.
    """
    v, g = np.broadcast_arrays(np.asarray(v, float), np.asarray(g, float))
    v, g = np.array(v, float), np.array(g, float)
    if np.any(v < 0):
        raise ValueError("row voltages must be >= 0")
    beta = nm.kp * nm.w / nm.l
    vov = vg - nm.vto
    if vov <= 0:
        return np.zeros_like(v)                      # transistor off: no current
    vd = v * g / (g + beta * vov)                    # channel as the resistor 1/(beta*vov)
    lam = nm.lambda_
    triode = np.max(v, initial=0.0) < vov            # vds <= v < vov: never saturated

    def nmos(vd):
        if not triode:
            return _nmos_id(vg, vd, nm)
        clm = 1.0 + lam * vd
        q = vov - 0.5 * vd
        return beta * vd * q * clm, beta * ((vov - vd) * clm + vd * q * lam)

    for _ in range(8):
        ir, dr = _rram(g, v - vd, rnl)
        im, dm = nmos(vd)
        step = (ir - im) / (dr + dm)
        vd = np.clip(vd + step, 0.0, v)
        if np.max(np.abs(step)) <= 1e-17 + 1e-15 * np.max(v):
            break
    ir, _ = _rram(g, v - vd, rnl)
    im, _ = nmos(vd)
    bad = np.abs(ir - im) > 1e-13 * (np.abs(ir) + np.abs(im)) + 1e-300
    if bad.any():
        ir[bad] = im[bad] = _cell_bracketed(v[bad], g[bad], vg, rnl, nm)
    return 0.5 * (im + ir)


def _cell_bracketed(v, g, vg, rnl, nm):
    """Robust fallback of _cell_currents_1t1r: bracketed Newton with bisection."""
    lo, hi = np.zeros_like(v), v.copy()
    vd = 0.5 * v
    for _ in range(200):
        ir, dr = _rram(g, v - vd, rnl)
        im, dm = _nmos_id(vg, vd, nm)
        F = ir - im                      # decreasing in vd
        dF = -dr - dm
        lo = np.where(F > 0, vd, lo)
        hi = np.where(F <= 0, vd, hi)
        nxt = vd - F / np.where(dF != 0, dF, -1.0)
        bad = ~((nxt > lo) & (nxt < hi)) | (dF == 0)
        nxt = np.where(bad, 0.5 * (lo + hi), nxt)
        if np.all(np.abs(nxt - vd) <= 4e-16 * np.maximum(np.abs(vd), 1e-300)):
            vd = nxt
            break
        vd = nxt
    return 0.5 * (_rram(g, v - vd, rnl)[0] + _nmos_id(vg, vd, nm)[0])


class Crossbar:
    """H_r(v): (N,) column-pair current contributed by row r at voltage v (rows superpose).

    kinds: 'lin' (H = v*G[r]; with wires G is the exact transfer matrix of the 1R network),
    'sinh' (H = G[r] sinh(rnl v)/rnl), 'cell' (exact per-cell 1T1R solves, the full-level and
    full-edge values cached per mapping), 'wired' (non-linear cells on resistive wires: not
    separable, see _WiredNet).
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
            self.net = _WiredNet(gp, gm, float(c.r_wire), c.access, float(c.v_gate), self.rnl)
        elif c.access == "none":
            if c.r_wire > 0:
                self.kind = "lin"
                self.G, self.Y_row = _wire_solve(gp, gm, float(c.r_wire))
            else:
                self.kind = "lin" if self.rnl == 0 else "sinh"
                self.G = gp - gm                          # (R, N)
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
        of a full rising (0) / falling (1) edge to that level. Cached for 1T1R cells."""
        key = None
        if self.kind == "cell":
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
        if key is not None:
            if len(_TABLE_CACHE) > 64:
                _TABLE_CACHE.clear()
            _TABLE_CACHE[key] = (Hlev, Hramp)
        return Hlev, Hramp


class _WiredNet:
    """Exact DC solve of the wired crossbar with non-linear cells, batched over row vectors.

    Unknowns per row-voltage vector u (R,): cell currents i[r, c] (and the 1T1R internal nodes).
    Given i, the wire node voltages are explicit (each row / column is a chain fed from one
    end): row node a[r, c] = u_r - r_w * cumsum_c(revcumsum_c(i)), column node
    b[r, c] = r_w * revcumsum_r(cumsum_r(i)); given (a, b) each cell is a scalar solve. The
    fixed point is iterated to |di| < 1e-13 * max|i| (it contracts by ~r_w * g * (R + C)^2/2);
    the sense current of column c is sum_r i[r, c] (KCL). No convergence -> ConfigError.
    """

    BATCH = 48           # vectors per block: (BATCH, R, C) temporaries stay small

    def __init__(self, gp, gm, r_wire, access, vg, rnl):
        R, N = gp.shape
        self.R, self.N, self.C = R, N, 2 * N
        g = np.empty((R, 2 * N))
        g[:, 0::2], g[:, 1::2] = gp, gm                 # column order 0p, 0m, 1p, 1m, ...
        self.g = g
        self.rw, self.access, self.vg, self.rnl = r_wire, access, vg, rnl
        self.nm = NMOSParams()

    def _cell(self, a, b, m, steps=3):
        """Cell currents (row node a -> column node b); m: internal node guess (1T1R).

        The transistor's drain is the internal node m, its source the column node b; for
        m < b the two swap roles (ngspice level 1): I = -I_f(vg - m, b - m)."""
        g, rnl = self.g, self.rnl
        if self.access == "none":
            return _rram(g, a - b, rnl)[0], m
        lo, hi = np.minimum(a, b), np.maximum(a, b)
        m = np.clip(m, lo, hi)
        nmos = _nmos_triode_sym if self.triode else _nmos_any
        for _ in range(steps):                           # warm-started Newton on m
            ir, dr = _rram(g, a - m, rnl)
            im, dm = nmos(self.vg, m, b, self.nm)
            dF = -dr - dm
            step = -(ir - im) / np.where(dF != 0, dF, -1.0)
            m = np.clip(m + step, lo, hi)
        # the RRAM current at the updated node; at the fixed point the Newton step is ~0, so
        # it equals the transistor current (the outer loop iterates to |di| <= 1e-13 max|i|)
        return _rram(g, a - m, rnl)[0], m

    def currents(self, U, rows: bool = False):
        """Column-pair currents (P, N) for row-voltage vectors U (P, R); with ``rows`` also the
        current each row draws from its source (P, R) (KCL: the sum of its cells' currents)."""
        U = np.asarray(U, float)
        if U.shape[0] == 0:
            empty = np.empty((0, self.N))
            return (empty, np.empty((0, self.R))) if rows else empty
        Uu, inv = np.unique(U, axis=0, return_inverse=True)
        res = np.empty((Uu.shape[0], self.N))
        res_rows = np.empty((Uu.shape[0], self.R))
        for s in range(0, Uu.shape[0], self.BATCH):
            res[s:s + self.BATCH], res_rows[s:s + self.BATCH] = self._solve(Uu[s:s + self.BATCH])
        inv = inv.ravel()
        return (res[inv], res_rows[inv]) if rows else res[inv]

    def _solve(self, u):
        rw = self.rw
        # every node lies in [min(0, u), max(u)]: |vds| <= max|u| and vgs - vto >= vov - max|u|,
        # so 2 max|u| < vov keeps every transistor in triode (one symmetric formula)
        self.triode = 2.0 * float(np.max(np.abs(u), initial=0.0)) < self.vg - self.nm.vto
        a = np.repeat(u[:, :, None], self.C, axis=2)      # (P, R, C)
        b = np.zeros_like(a)
        m = a * (self.g / (self.g + self.nm.kp * self.nm.w / self.nm.l * max(self.vg - self.nm.vto, 1e-30)))
        i, m = self._cell(a, b, m)
        for it in range(200):
            srow = np.cumsum(i[:, :, ::-1], axis=2)[:, :, ::-1]          # current into row node c
            a = u[:, :, None] - rw * np.cumsum(srow, axis=2)
            scol = np.cumsum(i, axis=1)                                  # current below node r
            b = rw * np.cumsum(scol[:, ::-1], axis=1)[:, ::-1]
            i_new, m = self._cell(a, b, m, steps=1)
            d = np.max(np.abs(i_new - i))
            i = i_new
            if d <= 1e-13 * max(np.max(np.abs(i)), 1e-30):
                break
        else:
            raise ConfigError(f"twin: [circuit] r_wire = {rw:g} ohm: the wired-crossbar solve does "
                              f"not converge (fixed point contracts too slowly); fix: lower r_wire "
                              f"or simulate with ngspice")
        col = i.sum(axis=1)                                              # (P, C)
        return col[:, 0::2] - col[:, 1::2], i.sum(axis=2)


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
