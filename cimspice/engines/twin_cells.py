"""Exact solves of one crossbar cell for the circuit twin: the RRAM element (linear or sinh
read), the level-1 access transistor (ngspice MOS1, gamma = 0) and their series 1T1R solve,
vectorised over cells. Used by :mod:`.twin_crossbar` and :mod:`.twin_wired`."""

from __future__ import annotations

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
