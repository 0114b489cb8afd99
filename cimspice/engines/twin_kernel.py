"""The circuit twin's compiled inner loop (numba): one pass over the segments of a chunk of the
global time axis for an array whose rows superpose (``Crossbar.separable``: r_wire = 0, or 1R
cells on wires), the configurations a run is usually made of.

It computes what the NumPy path of :func:`cimspice.engines.twin.run_twin` computes, to
rounding (same equations, same quadrature, same energy formulas of :mod:`.twin_energy`;
tests/test_twin_kernel.py compares the two), but chains the segment maps one by one,
``w <- e^{-A} w + beta``, instead of building (2N, K) arrays of maps and a log-domain prefix
scan: a built-in sample is ~1600 segments of 16 devices, where the NumPy path's cost is its
~130 array calls per chunk, not the arithmetic. Per segment:

* column-pair currents ``I0`` (N,) = sum of the flat entries' ``Hlev[level, row]``; on a ramp
  segment ``In`` (N, SQ) = ``I0`` + every ramp entry's currents at the quadrature nodes (full
  edges from ``Hramp``, edges cut by other corners from ``Hpart``, both made by the
  Crossbar);
* driver ``V = v_clamp tanh((m r_tia I + offset) / v_clamp)`` (twin_device._Devices.drive);
* flat: ``w1 = e^{-a T} w0 + w_inf (1 - e^{-a T})``, ``a = 1/tau + win f``,
  ``w_inf = (w_rest/tau + f) / a`` (twin_device._flat_maps);
* ramp: ``w1 = e^{-A} w0 + h sum_q wS_q b_q e^{-(A - A(s_q))}`` with ``A(s)`` from the Gauss
  collocation matrix when the window is on (twin_device._ramp_maps);
* energy: flat ``u(V) (2 g_off T + dg int (w+ + w-) dt)`` with the exact integral
  ``((w_rest/tau + f) T + w0 - w1) / a``; ramp ``2 g_off M0 + dg ((w0+ + w0-)(M0 - M1) +
  (w1+ + w1-) M1)`` from the node moments of ``u(V) = V s(V)`` (twin_energy.StateEnergy).

Compiled on first use and cached on disk (numba ``cache=True``: ``__pycache__`` beside this
file, or numba's user cache directory when that is not writable).
"""
from __future__ import annotations

import numba
import numpy as np

from .twin_energy import u_of

__all__ = ["chain_pieces", "chain_segments", "device_params", "drive_tables"]

# indices of the packed device parameters (one float array: one compiled signature)
_MODE, _K, _VS, _LAM, _ETA, _VTH, _WIN, _W_REST, _G_OFF, _DG, _RNL, _V_CLAMP = range(12)

# entry kinds of a (segment, pulse) entry
FLAT, RISE, FALL, PART = 0, 1, 2, 3


def device_params(dev) -> np.ndarray:
    """The devices' scalar parameters packed for :func:`chain_segments` (dev:
    twin_device._Devices; g_off, g_on - g_off and the read law as twin_energy.StateEnergy)."""
    p = dev.p
    return np.array([0.0 if p.mode == "linear" else 1.0, p.k, p.vs, p.lam, p.eta, p.vth, dev.win,
                     dev.w_rest, p.g_off, p.g_on - p.g_off, p.read_nl, dev.v_clamp], float)


_DRIVE_CACHE: dict = {}


def drive_tables(dev, Hlev, Hramp, rule, noise: bool, key: tuple):
    """The drive of a segment holding one full level or one full edge and nothing else
    (most segments of a stream), per (level, row): ``(Ftop (L, R, 2N), Utop (L, R, N),
    Fr (L, R, 2, 2N, SQ), Mr (L, R, 2, 2, N))`` = f x rate at the level and at the edge's
    quadrature nodes, u(V) = V s(V) at the level and its node moments (sum wS u,
    sum wS x u), from the same functions as the NumPy path (dev.drive, dev.f_pm,
    twin_energy.u_of). ``noise``: write-noise factors scale the drive per segment, no tables.
    ``key``: the programmed array's and levels' key (Hlev, Hramp are cached under it): the
    tables are cached with it and the devices' parameters."""
    if noise:
        return False, np.zeros((0, 0, 0)), np.zeros((0, 0, 0)), np.zeros((0, 0, 0, 0, 0)), \
            np.zeros((0, 0, 0, 0, 0))
    key = key + (dev.v_clamp, dev.p, dev.r_tia.tobytes(), dev.offset.tobytes(),
                 None if dev.rate is None else dev.rate.tobytes(), rule[0].tobytes())
    hit = _DRIVE_CACHE.get(key)
    if hit is not None:
        return hit
    x, wS, rnl = rule[0], rule[6], dev.p.read_nl
    V = dev.drive(np.moveaxis(Hlev, 2, 0))                      # (N, L, R)
    Ftop = np.ascontiguousarray(np.moveaxis(dev.f_pm(V), 0, 2))
    Utop = np.ascontiguousarray(np.moveaxis(u_of(V, rnl), 0, 2))
    Vr = dev.drive(np.moveaxis(Hramp, 3, 0))                    # (N, L, R, 2, SQ)
    Fr = np.ascontiguousarray(np.moveaxis(dev.f_pm(Vr), 0, 3))
    uw = u_of(Vr, rnl) * wS
    Mr = np.stack([uw.sum(axis=-1), (uw * x).sum(axis=-1)])    # (2, N, L, R, 2)
    Mr = np.ascontiguousarray(Mr.transpose(2, 3, 4, 0, 1))
    out = True, Ftop, Utop, Fr, Mr
    if len(_DRIVE_CACHE) > 64:
        _DRIVE_CACHE.clear()
    _DRIVE_CACHE[key] = out
    return out


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _f_pair(V, par):
    """(f(+V), f(-V)): the write drive of a pair's + and - device (twin_device._Devices.f_pm,
    rate factors apart), sharing the transcendental between the two. Linear law
    ``f(+-V) = k V (tanh(V/vs) +- 1) / 2`` from ``e = exp(-2|V|/vs)``: ``1 + tanh = 2/(1 + e)``
    and ``tanh - 1 = -2e/(1 + e)`` for V >= 0 (swapped for V < 0), free of the cancellation
    in ``tanh - 1`` and a third of libm's tanh's cost, the compiled loop's largest."""
    if V == 0.0:
        return 0.0, 0.0
    if par[_MODE] == 0.0:
        e = np.exp(-2.0 * abs(V) * (1.0 / par[_VS]))
        kv = par[_K] * V / (1.0 + e)                      # k V / 2 x 2 / (1 + e)
        if V > 0.0:
            return kv, -kv * e
        return kv * e, -kv
    # sinh law f(+-V) = +-lam/2 sinh(eta V) (1 + tanh((+-V - vth)/vs)): sinh from expm1
    # (em (em + 2) / (2 (em + 1)), no cancellation at small eta V), 1 + tanh(z) = 2/(1 + e^{-2z})
    em = np.expm1(par[_ETA] * V)
    s = (0.5 * par[_LAM]) * (em * (em + 2.0) / (2.0 * (em + 1.0)))
    c = -2.0 / par[_VS]
    return (2.0 * s / (1.0 + np.exp(c * (V - par[_VTH]))),
            -2.0 * s / (1.0 + np.exp(c * (-V - par[_VTH]))))


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _u(v, rnl):
    """Power per unit conductance v s(v) (twin_energy.u_of)."""
    return v * v if rnl == 0.0 else v * (np.sinh(rnl * v) / rnl)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _drive(I, n, k, r_tia, m, has_m, offset, vc):
    x = I * r_tia[n]
    if has_m:
        x = x * m[n, k]
    x = x + offset[n]
    if vc > 0.0:
        x = vc * np.tanh(x / vc)
    return x


@numba.njit(cache=True, nogil=True, error_model="numpy")
def chain_segments(dt, seg, erow, elv, ekind, epart, Hpart, Hlev, Hramp, tabled, Ftop, Utop,
                   Fr, Mr, r_tia, offset, m, has_m, k_off, par, inv_tau, tg, it_u, rate,
                   x, wq, Cm, wS, S, energy, rmap, ra, rb, wr0, wr1, w, want, got):
    """Chain the maps of segments 0..K-1 (durations ``dt`` (K,) s) from ``w`` (2N,) in place.

    Entries (E,) sorted by segment ``seg``: row ``erow``, level index ``elv``, kind ``ekind``
    (FLAT, RISE, FALL: full edges; PART: currents ``Hpart[epart]`` (N, SQ)); ``Hlev``,
    ``Hramp``: the Crossbar's level tables. ``tabled``: a segment holding a single entry of a
    full level or edge reads its drive from the tables of :func:`drive_tables` (``Ftop``,
    ``Utop``, ``Fr``, ``Mr``) instead of computing it. ``m`` (N, >= k_off + K): write-noise
    factors, column k_off + k for segment k (``has_m``). ``inv_tau`` (2N,) 1/s, ``tg`` (2N,):
    each device's index in the distinct values ``it_u``; ``rate`` (2N,): write-rate factors;
    ``x, wq, Cm, wS, S``: the Gauss rule (twin_device._gl_rule). ``want``: sorted boundary
    indices 1..K; ``got[:, i]`` receives w after segment ``want[i] - 1``. Read segments
    (``rmap[k] = i >= 0``; ``rmap`` empty: none) apply the map ``w <- ra[:, i] w + rb[:, i]``
    (twin_trace.StateReadMaps) and keep w before / after in ``wr0[:, i]`` / ``wr1[:, i]``
    for their energy. Returns the devices' write energy (J) over the write segments when
    ``energy``, else 0."""
    N = r_tia.size
    SQ = x.size
    Q = wq.size
    K = dt.size
    E = seg.size
    U = it_u.size
    win = par[_WIN]
    w_rest = par[_W_REST]
    g_off = par[_G_OFF]
    dg = par[_DG]
    rnl = par[_RNL]
    vc = par[_V_CLAMP]
    I0 = np.empty(N)
    In = np.empty((N, SQ))
    fq = np.empty((2, SQ))                  # f (x rate) of a pair's two devices at the nodes
    Vn = np.empty(SQ)                       # drive at the nodes
    ev = np.empty(SQ)                       # exp(-2|V|/vs) at the nodes (linear law)
    linear = par[_MODE] == 0.0
    c2 = -2.0 / par[_VS]
    a = np.empty(SQ)
    eA = np.empty(SQ)
    dec = np.empty(U)                       # window off: e^{-T/tau}, e^{-T/tau} - 1 per tau
    decm1 = np.empty(U)
    EW = np.empty((U, SQ))                  # window off, ramps: wS_q e^{-(1 - x_q) T/tau}
    # the T the tables hold: consecutive segments often share one (full edges, equal tops),
    # up to a few ulp (corner times are sums); a table is reused while |T - T_table|/tau
    # < 1e-17, below the rounding of its exponentials
    T_flat = -1.0
    T_ramp = -1.0
    it_max = it_u.max() if U else 0.0
    # the maps of segments holding one full edge alone (tabled drive): a function of the edge
    # (level, row, direction) and of its length only, kept while the length is the same
    RA = np.empty((Fr.shape[0], Fr.shape[1], 2, 2 * N))
    RB = np.empty((Fr.shape[0], Fr.shape[1], 2, 2 * N))
    Rok = np.zeros((Fr.shape[0], Fr.shape[1], 2), np.bool_)
    T_one = -1.0
    write = 0.0
    e = 0
    g = 0
    for k in range(K):
        while g < want.size and want[g] == k:     # boundary k: w before segment k
            for d in range(w.size):
                got[d, g] = w[d]
            g += 1
        if rmap.size and rmap[k] >= 0:         # a read segment (no write entry in it)
            i = rmap[k]
            for d in range(w.size):
                wr0[d, i] = w[d]
                w[d] = ra[d, i] * w[d] + rb[d, i]
                wr1[d, i] = w[d]
            continue
        T = dt[k]
        e0 = e
        ramp = False
        while e < E and seg[e] == k:
            ramp = ramp or ekind[e] != FLAT
            e += 1
        lv, r, kd = 0, 0, FLAT
        if e > e0:
            lv, r, kd = elv[e0], erow[e0], ekind[e0]
        one = tabled and e - e0 == 1 and kd != PART     # a single full level / edge: tables
        if not one:                             # the column-pair currents of flat entries
            for n in range(N):
                I0[n] = 0.0
            for j in range(e0, e):
                if ekind[j] == FLAT:
                    for n in range(N):
                        I0[n] += Hlev[elv[j], erow[j], n]
        if win == 0.0 and abs(T - T_flat) * it_max > 1e-17:
            for u in range(U):
                dec[u] = np.exp(-it_u[u] * T)
                decm1[u] = np.expm1(-it_u[u] * T)
            T_flat = T
        if not ramp:
            for n in range(N):
                if one:
                    fp, fm, uV = Ftop[lv, r, n], Ftop[lv, r, n + N], Utop[lv, r, n]
                else:
                    V = _drive(I0[n], n, k_off + k, r_tia, m, has_m, offset, vc)
                    fp, fm = _f_pair(V, par)
                    fp *= rate[n]
                    fm *= rate[n + N]
                    uV = _u(V, rnl)
                iw = 0.0
                for side in range(2):
                    d = n + side * N
                    it = inv_tau[d]
                    f = fp if side == 0 else fm
                    b = w_rest * it + f
                    w0 = w[d]
                    if win == 0.0:
                        w1 = dec[tg[d]] * w0 - (b / it) * decm1[tg[d]]
                        aa = it
                    else:
                        aa = it + f
                        w1 = np.exp(-aa * T) * w0 - (b / aa) * np.expm1(-aa * T)
                    if energy:
                        iw += (b * T + w0 - w1) / aa
                    w[d] = w1
                if energy and uV != 0.0:
                    write += uV * (2.0 * g_off * T + dg * iw)
            continue
        if not one:                         # explicit loops: a numba slice costs ~0.3 us
            for n in range(N):
                for q in range(SQ):
                    In[n, q] = I0[n]
            for j in range(e0, e):
                kj = ekind[j]
                if kj == RISE or kj == FALL:
                    lj, rj, dj = elv[j], erow[j], kj - RISE
                    for n in range(N):
                        for q in range(SQ):
                            In[n, q] += Hramp[lj, rj, dj, n, q]
                elif kj == PART:
                    pj = epart[j]
                    for n in range(N):
                        for q in range(SQ):
                            In[n, q] += Hpart[pj, n, q]
        h = T / S
        if win == 0.0 and abs(T - T_ramp) * it_max > 1e-17:
            for u in range(U):
                for q in range(SQ):
                    EW[u, q] = wS[q] * np.exp(-(it_u[u] * (1.0 - x[q])) * T)
            T_ramp = T
        dd = kd - RISE
        if one and T != T_one:          # a new edge length: forget the kept edge maps
            Rok[:, :, :] = False
            T_one = T
        cached = one and Rok[lv, r, dd]
        for n in range(N):
            M0 = 0.0
            M1 = 0.0
            pair0 = w[n] + w[n + N]
            if cached:                  # the same full edge alone, the same length: its map
                for d in (n, n + N):
                    w[d] = RA[lv, r, dd, d] * w[d] + RB[lv, r, dd, d]
                if energy:
                    M0, M1 = Mr[lv, r, dd, 0, n] * h, Mr[lv, r, dd, 1, n] * h
                    write += 2.0 * g_off * M0 + dg * (pair0 * (M0 - M1) + (w[n] + w[n + N]) * M1)
                continue
            if one:
                for q in range(SQ):
                    fq[0, q] = Fr[lv, r, dd, n, q]
                    fq[1, q] = Fr[lv, r, dd, n + N, q]
                M0, M1 = Mr[lv, r, dd, 0, n], Mr[lv, r, dd, 1, n]
            else:
                # separate simple loops over the nodes: all but exp() vectorise
                gain = r_tia[n]
                mk = m[n, k_off + k] if has_m else 1.0
                off = offset[n]
                for q in range(SQ):            # _drive, its scalars hoisted
                    Vn[q] = In[n, q] * gain * mk + off
                if vc > 0.0:
                    for q in range(SQ):
                        Vn[q] = vc * np.tanh(Vn[q] / vc)
                if linear:
                    for q in range(SQ):
                        ev[q] = np.exp(c2 * abs(Vn[q]))
                    rp, rm = rate[n] * par[_K], rate[n + N] * par[_K]
                    for q in range(SQ):        # _f_pair's linear law, branch-free
                        kv = Vn[q] / (1.0 + ev[q])
                        up = Vn[q] > 0.0
                        fq[0, q] = rp * kv * (1.0 if up else ev[q])
                        fq[1, q] = -rm * kv * (ev[q] if up else 1.0)
                else:
                    for q in range(SQ):
                        fp, fm = _f_pair(Vn[q], par)
                        fq[0, q] = fp * rate[n]
                        fq[1, q] = fm * rate[n + N]
                if energy:
                    for q in range(SQ):
                        uq = wS[q] * _u(Vn[q], rnl)
                        M0 += uq
                        M1 += uq * x[q]
            for side in range(2):
                d = n + side * N
                it = inv_tau[d]
                if win == 0.0:
                    # a = 1/tau: the w_rest part integrates in closed form
                    u = tg[d]
                    beta = 0.0
                    for q in range(SQ):
                        beta += EW[u, q] * fq[side, q]
                    alpha, beta = dec[u], beta * h - w_rest * decm1[u]
                    w[d] = alpha * w[d] + beta
                    if one:
                        RA[lv, r, dd, d], RB[lv, r, dd, d] = alpha, beta
                    continue
                for q in range(SQ):
                    a[q] = fq[side, q] + it
                # A(s) at every node: A before its sub-interval + the collocation integral
                # inside it; then e^{-(A_tot - A(s_q))}
                A = 0.0
                for s in range(S):
                    A_sub = 0.0
                    for q in range(Q):
                        A_sub += wq[q] * a[s * Q + q]
                        A_in = 0.0
                        for mm in range(Q):
                            A_in += Cm[q, mm] * a[s * Q + mm]
                        eA[s * Q + q] = A + A_in * h
                    A += A_sub * h
                beta = 0.0
                for q in range(SQ):
                    beta += wS[q] * (fq[side, q] + w_rest * it) * np.exp(-(A - eA[q]))
                alpha, beta = np.exp(-A), beta * h
                w[d] = alpha * w[d] + beta
                if one:
                    RA[lv, r, dd, d], RB[lv, r, dd, d] = alpha, beta
            if energy:
                M0 *= h
                M1 *= h
                write += 2.0 * g_off * M0 + dg * (pair0 * (M0 - M1) + (w[n] + w[n + N]) * M1)
        if one:
            Rok[lv, r, dd] = True
    while g < want.size:                    # want[g] == K: the chunk's end
        for d in range(w.size):
            got[d, g] = w[d]
        g += 1
    return write


@numba.njit(cache=True, nogil=True, error_model="numpy")
def chain_pieces(alpha, beta, w, w_start):
    """The trace twin's rows: ``w_start[r, j]`` = w before piece j of row r, chaining
    ``w <- alpha[r, j] w + beta[r, j]`` from ``w`` (R,) (modified in place), all (R, J)."""
    R, J = alpha.shape
    for r in range(R):
        x = w[r]
        for j in range(J):
            w_start[r, j] = x
            x = alpha[r, j] * x + beta[r, j]
        w[r] = x
