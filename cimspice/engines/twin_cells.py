"""Exact solves of one crossbar cell for the circuit twin: the RRAM element (linear or sinh
read), the level-1 access transistor (ngspice MOS1, gamma = 0) and their series 1T1R solve,
vectorised over cells. Used by :mod:`.twin_crossbar` and :mod:`.twin_wired`.

The 1T1R Newton loop is compiled (numba, cached on disk like :mod:`.twin_kernel`);
``_cell_currents_1t1r_numpy`` keeps the NumPy implementation it is tested against
(tests/test_twin_cells_compiled.py)."""

from __future__ import annotations

import numba
import numpy as np

from ..hardware.cells import NMOSParams


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


def _rram(g, x, rnl):
    """RRAM current and d/dx at voltage x."""
    if rnl == 0:
        return g * x, g * np.ones_like(x)
    return g * np.sinh(rnl * x) / rnl, g * np.cosh(rnl * x)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _rram_nb(g, x, rnl):
    """RRAM current [A] and d/dx [S] at voltage x [V] (scalar :func:`_rram`). sinh and cosh
    come from one expm1, ``sinh = em (em + 2) / (2 (em + 1))`` (no cancellation at small x):
    libm's sinh and cosh (~19 + ~9 ns a call, not vectorised) are the loop's largest cost,
    expm1 is ~13 ns; the result differs from np.sinh at rounding level."""
    if rnl == 0.0:
        return g * x, g
    em = np.expm1(rnl * x)
    e = em + 1.0
    return g * (em * (em + 2.0) / (2.0 * e)) / rnl, g * (0.5 * (e + 1.0 / e))


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _nmos_nb(vd, vov, beta, lam, triode):
    """Level-1 drain current [A] and d/dvd [S] for vd >= 0, vov > 0 (scalar :func:`_nmos_id`;
    with ``triode`` the closed form of :func:`_cell_currents_1t1r_numpy`'s inner ``nmos``)."""
    clm = 1.0 + lam * vd
    if triode:
        q = vov - 0.5 * vd
        return beta * vd * q * clm, beta * ((vov - vd) * clm + vd * q * lam)
    if vd < vov:
        return (beta * vd * (vov - vd / 2.0) * clm,
                beta * ((vov - vd) * clm + vd * (vov - vd / 2.0) * lam))
    return beta / 2.0 * vov ** 2 * clm, beta / 2.0 * vov ** 2 * lam


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _step_1t1r(v, g, vd, rnl, vov, beta, lam, triode):
    """One Newton step of a cell's internal node vd [V] (row at v [V], RRAM g [S]): the new vd
    clipped to [0, v], and the step [V]."""
    ir, dr = _rram_nb(g, v - vd, rnl)
    im, dm = _nmos_nb(vd, vov, beta, lam, triode)
    step = (ir - im) / (dr + dm)
    x = vd + step
    # np.clip(x, 0, v) by comparisons: a NaN passes through, as in the NumPy path
    if x < 0.0:
        x = 0.0
    if x > v:
        x = v
    return x, step


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _newton_1t1r(v, g, vg, rnl, beta, vto, lam, vmax):
    """Newton of :func:`_cell_currents_1t1r` on flat (n,) ``v`` >= 0 [V] and ``g`` [S]: the
    currents (n,) [A] and the (n,) mask of cells whose residual is not at rounding level (to
    re-solve by :func:`_cell_bracketed`). ``vg - vto > 0`` [V], ``beta = kp w / l`` [A/V^2],
    ``lam`` [1/V]; ``vmax`` [V] = max of v over the call, which sets the step tolerance and the
    triode shortcut as in the NumPy path. Each cell stops at its own first step <= tol (the
    NumPy path stops all cells together: a converged cell's extra or missing step moves its
    current at rounding level only)."""
    n = v.size
    vov = vg - vto
    triode = vmax < vov                      # vds <= v < vov: never saturated
    tol = 1e-17 + 1e-15 * vmax
    vd = v * g / (g + beta * vov)            # channel as the resistor 1/(beta*vov)
    live = np.ones(n, np.bool_)
    for _ in range(8):
        more = 0
        if rnl == 0.0:
            # all cells, the converged ones masked: branch-free, so the loop vectorises
            for k in range(n):
                x, step = _step_1t1r(v[k], g[k], vd[k], rnl, vov, beta, lam, triode)
                a = live[k]
                vd[k] = x if a else vd[k]
                a = a and not abs(step) <= tol
                live[k] = a
                more += a
        else:
            # expm1 is a scalar libm call: skip the converged cells instead
            for k in range(n):
                if live[k]:
                    vd[k], step = _step_1t1r(v[k], g[k], vd[k], rnl, vov, beta, lam, triode)
                    live[k] = not abs(step) <= tol
                    more += live[k]
        if more == 0:
            break
    out = np.empty(n)
    bad = np.empty(n, np.bool_)
    for k in range(n):
        ir = _rram_nb(g[k], v[k] - vd[k], rnl)[0]
        im = _nmos_nb(vd[k], vov, beta, lam, triode)[0]
        bad[k] = abs(ir - im) > 1e-13 * (abs(ir) + abs(im)) + 1e-300
        out[k] = 0.5 * (im + ir)
    return out, bad


def _cell_currents_1t1r(v, g, vg: float, rnl: float, nm: NMOSParams = NMOSParams()):
    """Exact 1T1R cell current [A] for row voltage ``v >= 0`` [V] (column at 0 V) and RRAM
    conductance ``g`` [S], broadcast against each other; gate at ``vg`` [V].

    Solves g*rho(v - vd) = I_nmos(vg, vd) for the internal node vd in [0, v]: compiled
    per-cell Newton from the linear-channel estimate (quadratic convergence, ~4 steps), then
    any cell whose residual is not at rounding level is re-solved by bracketed
    Newton/bisection. Equal to :func:`_cell_currents_1t1r_numpy` to rounding.
    """
    v, g = np.broadcast_arrays(np.asarray(v, float), np.asarray(g, float))
    vf, gf = v.ravel(), g.ravel()                    # flat, contiguous (broadcast views copied)
    if np.any(vf < 0):
        raise ValueError("row voltages must be >= 0")
    if vg - nm.vto <= 0:
        return np.zeros(v.shape)                     # transistor off: no current
    # floats only: one compiled signature
    cur, bad = _newton_1t1r(vf, gf, float(vg), float(rnl), float(nm.kp * nm.w / nm.l),
                            float(nm.vto), float(nm.lambda_), float(vf.max(initial=0.0)))
    if bad.any():
        cur[bad] = _cell_bracketed(vf[bad], gf[bad], vg, rnl, nm)
    cur = cur.reshape(v.shape)
    return cur if cur.ndim else cur[()]              # a scalar for scalar inputs, as before


def _cell_currents_1t1r_numpy(v, g, vg: float, rnl: float, nm: NMOSParams = NMOSParams()):
    """NumPy implementation of :func:`_cell_currents_1t1r` (vectorised Newton with one global
    stopping test), kept as the reference of the compiled loop.

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
