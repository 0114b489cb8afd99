"""The wired crossbar with non-linear cells (1T1R, or sinh reads) for the circuit twin: rows no
longer superpose, so every distinct row-voltage vector is a DC network solve (a batched,
preconditioned fixed point), and the solved vectors are kept per programmed array. Used by
:class:`.twin_crossbar.Crossbar` (kind 'wired')."""

from __future__ import annotations

import threading

import numpy as np

from ..errors import ConfigError
from ..hardware.cells import NMOSParams
from .twin_cells import _nmos_any, _rram

# wired non-linear cells (_WiredNet)
_GRID = 2.0 ** 50        # row voltages solved on a 2^-50 V grid (memo key): 4e-16 V off at most,
                         # and the same ramp node computed from two corners shares one solve
_MEMO_BYTES = 64 << 20   # solved vectors kept per hardware (16 rows x 8 pairs: 2e5 vectors)
_PRECOND_MAX = 1024      # dense preconditioner up to this many cells (8 MB); else plain iteration
_ARRAY_BYTES = 120_000   # (batch, cells) temporaries below glibc's 128 kB mmap threshold


class _WiredNet:
    """Exact DC solve of the wired crossbar with non-linear cells, batched over row vectors.

    Unknowns per row-voltage vector u: the cell currents i (and the 1T1R internal nodes m).
    The wire nodes are linear in i (row node a = u_r - Mr i along the row, column node
    b = Mc i along the column); given (a, b) each cell is a scalar solve (a warm Newton step
    on m). The fixed point i = F(a(i), b(i)) is iterated with the preconditioner
    K = (I - J0)^-1, J0 its Jacobian with the cells at their 0 V conductance: the cells are
    nearly linear, so at r_wire = 5 ohm a step shrinks r = F - i by ~2e-5 (rram_read_nl = 2:
    ~1e-3) where the plain iteration gives ~3e-2 (100 ohm: ~1e-3 instead of ~0.6). Stops when i + K r is within
    ~|r|^2/|r_prev| <= 1e-13 max|i| of the fixed point. Column current: sum_r i (KCL).
    Solved vectors are kept (_MEMO_BYTES, keyed on the _GRID): a dataset's samples on one chip
    repeat most (dvs-bars, 96 samples: 9e5 vectors, 1e5 distinct); see :func:`wired_net`.
    """

    def __init__(self, gp, gm, r_wire, access, vg, rnl):
        R, N = gp.shape
        C = 2 * N
        self.R, self.N, self.C = R, N, C
        g = np.empty((R, C))
        g[:, 0::2], g[:, 1::2] = gp, gm                 # column order 0p, 0m, 1p, 1m, ...
        self.g = g.ravel()
        self.rw, self.access, self.vg, self.rnl = r_wire, access, vg, rnl
        self.nm = nm = NMOSParams()
        self.beta, self.vgt = nm.kp * nm.w / nm.l, vg - nm.vto
        self.gb = self.g / self.beta
        c, r = np.arange(C), np.arange(R)
        # wire drops as small matmuls (4 cumsums cost 10x more): the row wire before cell c
        # carries the currents of cells c' >= c, the column wire below row r those of r' <= r
        self.Mr = r_wire * (np.minimum(c[:, None], c[None]) + 1.0)                 # (C, C)
        self.Mc = r_wire * (R - np.maximum(r[:, None], r[None])).astype(float)     # (R, R)
        gt = self.beta * max(self.vgt, 0.0)
        g0 = self.g if access == "none" else self.g * gt / (self.g + gt)
        self.KT = None                                  # i += r @ KT (None: plain iteration)
        if R * C <= _PRECOND_MAX:
            J = np.kron(np.eye(R), self.Mr) + np.kron(self.Mc, np.eye(C))
            # float32: K is approximate anyway (the residual is float64); sgemm is 1.7x faster
            self.KT = np.linalg.inv(np.eye(R * C) + J * g0[None, :]).astype(np.float32)
        # KCL: column-pair current sum_r (i[r, 2n] - i[r, 2n+1]), row current sum_c i[r, c]
        self.S = np.concatenate([np.kron(np.ones((R, 1)), np.kron(np.eye(N), [[1.0], [-1.0]])),
                                 np.kron(np.eye(R), np.ones((C, 1)))], axis=1)     # (RC, N + R)
        self.batch = max(4, _ARRAY_BYTES // (8 * R * C))
        self._mult = np.random.default_rng(7).integers(1, 2**63, R, dtype=np.uint64) | np.uint64(1)
        self._cap = max(1024, _MEMO_BYTES // (8 * (2 * R + N) + 16))
        self._lock = threading.Lock()      # memo updates (one instance serves every run)
        self.memo_clear()

    def memo_clear(self):
        with self._lock:                   # sorted hashes, their slots, [grid key | result]
            self._memo, self._n = (np.empty(0, np.uint64), np.empty(0, np.int64),
                                   np.empty((0, 2 * self.R + self.N))), 0

    def _memo_add(self, h, rec):
        m = h.size
        with self._lock:
            hs, sl, st = self._memo
            n = self._n
            if n + m > self._cap:                       # full: start again
                hs, sl, st, n = hs[:0], sl[:0], st[:0], 0
            if m > self._cap:
                return
            if n + m > st.shape[0]:   # grow geometrically (a new array: snapshots stay valid)
                size = min(self._cap, max(2 * (n + m), 4096))
                st = np.concatenate([st[:n], np.empty((size - n, st.shape[1]))])
            st[n:n + m] = rec                           # rows >= n: in no snapshot's slots
            order = np.argsort(h)
            pos = np.searchsorted(hs, h[order])
            self._memo = (np.insert(hs, pos, h[order]), np.insert(sl, pos, n + order), st)
            self._n = n + m

    def _lookup(self, hu, ku):
        """[column-pair | row currents] of the distinct grid vectors ku (hashes hu)."""
        with self._lock:
            hs, sl, st = self._memo
        out = np.empty((hu.size, self.N + self.R))
        hit, fresh = np.zeros(hu.size, bool), np.ones(hu.size, bool)
        if hs.size:
            pos = np.minimum(np.searchsorted(hs, hu), hs.size - 1)
            same = np.flatnonzero(hs[pos] == hu)
            rec = st[sl[pos[same]]]
            ok = np.all(rec[:, :self.R] == ku[same], axis=1)    # same hash and same vector
            hit[same[ok]] = True
            out[hit] = rec[ok, self.R:]
            fresh[same] = False                                  # (a hash collision: not kept)
        miss = ~hit
        if miss.any():
            out[miss] = self._solve_all(ku[miss] / _GRID)
            add = miss & fresh
            self._memo_add(hu[add], np.concatenate([ku[add], out[add]], axis=1))
        return out

    def currents(self, U, rows: bool = False):
        """Column-pair currents (P, N) for row-voltage vectors U (P, R); with ``rows`` also the
        current each row draws from its source (P, R) (KCL: the sum of its cells' currents)."""
        U = np.asarray(U, float).reshape(-1, self.R)
        out = None
        if U.shape[0] and np.all(np.abs(U) < 8.0):     # grid keys exact in float64 (< 2^53)
            k = np.rint(U * _GRID)
            h = (k.astype(np.int64).view(np.uint64) * self._mult).sum(axis=1, dtype=np.uint64)
            hu, first, inv = np.unique(h, return_index=True, return_inverse=True)
            if np.array_equal(k[first][inv.ravel()], k):    # (else a hash collision in U)
                out = self._lookup(hu, k[first])[inv.ravel()]
        if out is None:
            Uu, inv = np.unique(U, axis=0, return_inverse=True)
            out = self._solve_all(Uu)[inv.ravel()]
        return (out[:, :self.N], out[:, self.N:]) if rows else out[:, :self.N]

    def _solve_all(self, u):
        """[column-pair currents (N) | row currents (R)] (P, N + R) of distinct vectors u."""
        P, R, RC = u.shape[0], self.R, self.R * self.C
        # every node lies in [min(0, u), max(u)]: |vds| <= max|u| and vgs - vto >= vov - max|u|,
        # so 2 max|u| < vov keeps every transistor in triode (one symmetric formula)
        triode = 2.0 * float(np.max(np.abs(u), initial=0.0)) < self.vgt
        vals, vinv = np.unique(u, return_inverse=True)
        table = vals.size <= max(64, P // 4)            # the no-wire start per distinct voltage
        if table:
            i0t, m0t = self._no_wire(np.repeat(vals[:, None], R, axis=1), triode)
            idx = vinv.reshape(P, R, 1) * RC + np.arange(RC).reshape(R, self.C)
        out = np.empty((P, self.N + R))
        for s in range(0, P, self.batch):
            ub = u[s:s + self.batch]
            if table:
                ix = idx[s:s + self.batch].reshape(ub.shape[0], RC)
                i0, m0 = i0t.ravel()[ix], None if m0t is None else m0t.ravel()[ix]
            else:
                i0, m0 = self._no_wire(ub, triode)
            ue, F = np.repeat(ub, self.C, axis=1), None
            if self.KT is not None:
                with np.errstate(over="ignore", invalid="ignore"):     # (a failed try: quiet)
                    F = self._iterate(ue, i0, m0, triode, self.KT)
            if F is None:     # K far from the Jacobian (e.g. sinh cells at rnl*v >> 1): plain
                F = self._iterate(ue, i0, m0, triode, None)
            out[s:s + self.batch] = F @ self.S          # (sums along strided axes are slow)
        return out

    def _no_wire(self, u, triode):
        """Cell currents and internal nodes (P, R*C) with ideal wires (a = u_r, b = 0)."""
        a = np.repeat(u, self.C, axis=1)
        if self.access == "none":
            return self._rram_i(a), None
        m = a * (self.g / (self.g + self.beta * max(self.vgt, 1e-30)))   # channel: 1/(beta vov)
        b = np.zeros_like(a)
        for _ in range(3):
            i, m = self._cell(a, b, m, triode, clip=True)
        return i, m

    def _cell(self, a, b, m, triode, clip=False):
        """Cell currents (row node a -> column node b) after one Newton step on the internal
        node m (1T1R). The transistor's drain is m, its source b; for m < b the two swap
        roles (ngspice level 1): I = -I_f(vg - m, b - m)."""
        g, rnl = self.g, self.rnl
        if self.access == "none":
            return self._rram_i(a - b), m
        if triode:
            # level 1 in triode for either sign of vds (gamma = 0: the drain/source swap gives
            # the same polynomial), divided by beta: I/beta = h x clm, x = m - b,
            # h = vov - x/2, clm = 1 + lam |x|; d/dm = (vov - x) clm + lam |x| h
            x, vov = m - b, self.vgt - b
            lax = self.nm.lambda_ * np.abs(x)
            h, clm = vov - 0.5 * x, 1.0 + lax
            if rnl == 0:
                ir, dr = self.gb * (a - m), self.gb
            else:
                t = rnl * (a - m)
                ir, dr = self.gb / rnl * np.sinh(t), self.gb * np.cosh(t)
            m = m + (ir - h * x * clm) / ((vov - x) * clm + lax * h + dr)
        else:
            im, dm = _nmos_any(self.vg, m, b, self.nm)
            ir, dr = _rram(g, a - m, rnl)
            m = m + (ir - im) / (dr + dm)
        if clip or not triode:                          # the root lies in [min(a,b), max(a,b)]
            m = np.clip(m, np.minimum(a, b), np.maximum(a, b))
        # the RRAM current at the updated node: equals the transistor's at the fixed point
        return self._rram_i(a - m), m

    def _rram_i(self, x):
        return self.g * x if self.rnl == 0 else self.g / self.rnl * np.sinh(self.rnl * x)

    def _iterate(self, ue, i, m, triode, KT):
        """Cell currents (P, R*C) at the fixed point from the no-wire currents i and internal
        nodes m; None if the preconditioned iteration (KT) does not converge."""
        P, R, C = ue.shape[0], self.R, self.C
        scale = max(float(np.max(np.abs(i))), 1e-30)
        if KT is not None:
            i = (i.astype(np.float32) @ KT).astype(float)   # the step from i = 0: r = F(u, 0)
        prev = np.inf
        for it in range(60 if KT is not None else 200):
            a = ue - (i.reshape(P * R, C) @ self.Mr).reshape(P, R * C)
            b = np.matmul(self.Mc, i.reshape(P, R, C)).reshape(P, R * C)
            F, m = self._cell(a, b, m, triode)
            if it == 0 and m is not None:               # the wires moved m by ~1 %: converge it
                F, m = self._cell(a, b, m, triode)      # (else it limits the next step)
            r = F - i
            d = float(np.max(np.abs(r)))
            if KT is None:                              # plain: F is within ~3e-2 d
                if d <= 1e-13 * scale:
                    return F
                i = F
                continue
            if not d < prev:                            # (or nan) not converging
                return None
            i = i + r.astype(np.float32) @ KT
            if d <= 1e-9 * scale and d * d <= 1e-13 * scale * prev:   # linear convergence
                return i
            prev = d
        if KT is not None:
            return None
        raise ConfigError(f"twin: [circuit] r_wire = {self.rw:g} ohm: the wired-crossbar solve "
                          f"does not converge; fix: lower r_wire or simulate with ngspice")


_WIRED_NETS: dict = {}


def wired_net(gp, gm, r_wire, access, vg, rnl) -> _WiredNet:
    """The :class:`_WiredNet` of this hardware, kept across runs (its K and solved vectors)."""
    key = (gp.tobytes(), gm.tobytes(), gp.shape, r_wire, access, vg, rnl)
    net = _WIRED_NETS.get(key)
    if net is None:
        if len(_WIRED_NETS) >= 2:
            _WIRED_NETS.clear()
        net = _WIRED_NETS[key] = _WiredNet(gp, gm, r_wire, access, vg, rnl)
    return net
