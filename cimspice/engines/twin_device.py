"""The circuit twin's state devices: the per-device law and write drivers (:class:`_Devices`)
and the exact affine map ``w -> e^{-A} w + beta`` of every segment of the global time axis,
flat (:func:`_flat_maps`, closed form) or ramp (:func:`_ramp_maps`, composite Gauss-Legendre
quadrature). Used by :func:`cimspice.engines.twin.run_twin`, which chains the maps."""
from __future__ import annotations

import numpy as np

from ..config import Config
from ..hardware.mapping import CircuitMapping, vmem_params
from ..hardware.variation import driver_offsets

_FEW_DT = 8              # ramp maps: distinct segment lengths summed by matmul (cost ~ count)


def sorted_unique(x, inverse: bool = False):
    """np.unique(x) (with ``inverse``: and np.searchsorted's inverse indices) for 1-D float x,
    without np.unique's overhead, dominant on the twin's small arrays: a stable sort (it merges
    already sorted runs, such as the four corner-time arrays) and a mask of the changes."""
    u = np.sort(x, kind="stable")
    new = np.empty(u.size, bool)
    new[:1] = True
    np.not_equal(u[1:], u[:-1], out=new[1:])
    u = u[new]
    return (u, np.searchsorted(u, x)) if inverse else u


_RULES: dict = {}


def _gl_rule(S, Q):
    """Composite Gauss-Legendre nodes x (S*Q,) in (0, 1), weights, and the per-sub-interval
    collocation integration matrix Cm[q, m] = int_0^{c_q} l_m (in sub-interval units)."""
    hit = _RULES.get((S, Q))
    if hit is not None:
        return hit
    c, wq = np.polynomial.legendre.leggauss(Q)
    c, wq = (c + 1) / 2, wq / 2
    # Lagrange basis integrals: solve Vandermonde for monomial coefficients
    V = np.vander(c, Q, increasing=True)            # V[q, p] = c_q^p
    Vinv = np.linalg.inv(V)                          # l_m(x) = sum_p Vinv[p, m] x^p
    p = np.arange(Q)
    Cm = (c[:, None] ** (p[None] + 1) / (p[None] + 1)) @ Vinv   # (q, m)
    x = ((np.arange(S)[:, None] + c[None]) / S).ravel()
    _RULES[(S, Q)] = (x, c, wq, Cm, S, Q, np.tile(wq, S))
    return _RULES[(S, Q)]


_VMEM_CACHE: dict = {}


def vmem(cfg: Config, tau: float):
    """vmem_params(cfg, tau), cached by what it reads: the (frozen, hashable) [device] section,
    [events] t_p (the presets' write laws scale with it) and tau."""
    key = (cfg.device, cfg.events.t_p, tau)
    try:
        hit = _VMEM_CACHE.get(key)
    except TypeError:                            # unhashable section: no cache
        return vmem_params(cfg, tau)
    if hit is None:
        if len(_VMEM_CACHE) > 64:
            _VMEM_CACHE.clear()
        hit = _VMEM_CACHE[key] = vmem_params(cfg, tau)
    return hit


class _Devices:
    """The 2N state devices (+ devices first, then -) and the N write drivers, with the chip
    instance's per-device tau and write rate and the drivers' offsets (hardware.variation).

    Arrays are laid out device-first: (2N, ...) so that the long segment axis is innermost."""

    def __init__(self, mapping: CircuitMapping, cfg: Config):
        tau = np.asarray(mapping.tau, float)
        self.p = vmem(cfg, float(tau[0]))     # the law; each device's own tau is inv_tau below
        chip = mapping.chip
        tau2 = np.concatenate([tau, tau])
        self.inv_tau = 1.0 / (tau2 if chip is None else tau2 * np.asarray(chip.tau, float))   # (2N,)
        self.rate = None if chip is None or np.all(chip.rate == 1.0) else np.asarray(chip.rate, float)
        N = tau.size
        # the two devices of every pair share tau and write rate (the lean ramp maps need it)
        self.paired = self.rate is None and np.array_equal(self.inv_tau[:N], self.inv_tau[N:])
        self.w_rest = float(cfg.device.w_rest)
        self.win = 1.0 if self.p.window else 0.0
        self.r_tia = np.asarray(mapping.r_tia, float)
        self.offset = driver_offsets(mapping)
        self.v_clamp = float(cfg.circuit.v_clamp)

    def drive(self, I, m=None):
        """Driver voltage V_n (N, ...) from the column-pair current I_n (N, ...); ``m``: the
        write-noise factor (N, ...) broadcast against I."""
        x = I * self.r_tia.reshape((-1,) + (1,) * (I.ndim - 1))
        if m is not None:
            x = x * m
        if self.offset.any():
            x = x + self.offset.reshape((-1,) + (1,) * (I.ndim - 1))
        if self.v_clamp > 0:
            x = self.v_clamp * np.tanh(x / self.v_clamp)
        return x

    def f_pm(self, V):
        """Write drive f(V) of the + devices and f(-V) of the - devices -> (2N, ...), times each
        device's write-rate factor.

        Same formula as cimspice.devices.f_write (a test checks it), sharing sinh/tanh between
        the two devices of a pair."""
        p, N = self.p, V.shape[0]
        f = np.empty((2 * N,) + V.shape[1:])
        if p.mode == "linear":
            kv = (0.5 * p.k) * V
            t = np.tanh(V * (1.0 / p.vs))
            np.multiply(kv, 1.0 + t, out=f[:N])
            np.multiply(kv, t - 1.0, out=f[N:])
        else:
            s = (0.5 * p.lam) * np.sinh(p.eta * V)
            np.multiply(s, 1.0 + np.tanh((V - p.vth) / p.vs), out=f[:N])
            np.multiply(-s, 1.0 + np.tanh((-V - p.vth) / p.vs), out=f[N:])
        if self.rate is not None:
            f *= self.rate.reshape((-1,) + (1,) * (V.ndim - 1))
        return f


def _col(x, nd):
    return x.reshape((-1,) + (1,) * (nd - 1))


def _flat_maps(dev: _Devices, V, dt):
    """Exact affine maps (A = -log alpha, beta), each (2N, K), for constant drive V (N, K)
    held for dt (K,): w(dt) = w_inf + (w0 - w_inf) e^{-a dt}, a = 1/tau + win f, w_inf = b/a.
    Also returns the write drive f (2N, K) (energy accounting reuses it)."""
    f = dev.f_pm(V)
    it = _col(dev.inv_tau, 2)
    if not dev.win:                                # a = 1/tau: w_inf = w_rest + tau f
        A = it * dt
        return A, (dev.w_rest + f / it) * -np.expm1(-A), f
    a = it + f
    A = a * dt
    w_inf = (dev.w_rest * it + f) / a
    beta = w_inf * -np.expm1(-A)
    return A, beta, f


def _ramp_maps(dev: _Devices, Vn, dt, rule):
    """Affine maps (A, beta) (2N, K) over ramp segments from the drive Vn (N, S*Q, K) at the
    composite Gauss-Legendre nodes: w(dt) = e^{-A} w0 + beta with A = int a,
    beta = int b(s) e^{-(A(dt) - A(s))} ds; A at the nodes from the Gauss collocation
    integration matrix (exact when a is constant, i.e. window off)."""
    x, c, wq, Cm, S, Q, wS = rule                             # wS: weights of all S*Q nodes
    K = dt.size
    h = dt / S                                                # (K,)
    if dev.win == 0.0 and dev.p.mode == "linear" and dev.paired:
        # a = 1/tau for both devices; f(+-V) = (+-kV + kV tanh(V/vs))/2, so the pair needs
        # two weighted sums per state: P = int kV/2 e, Q = int kV tanh/2 e (+ w_rest part)
        # e^{-(dt - s)/tau} depends on dt only, and the ramps of a stream are nearly all full
        # edges (a few distinct dt): it is evaluated per distinct dt, folded into the
        # quadrature weights (N, U, SQ), and the sums over the nodes are small matmuls
        N = Vn.shape[0]
        dt_u, inv = sorted_unique(dt, inverse=True)
        W = np.exp((-_col(dev.inv_tau[:N], 3) * (1.0 - x)[None, :, None]) * dt_u) * wS[:, None]
        W = W.transpose(0, 2, 1)
        t = Vn * (1.0 / dev.p.vs)
        np.tanh(t, out=t)
        t *= Vn                                               # V tanh(V / vs)
        if dt_u.size <= _FEW_DT:
            ar = np.arange(K)
            P, Qs = np.matmul(W, Vn)[:, inv, ar], np.matmul(W, t)[:, inv, ar]
        else:
            e = W[:, inv].transpose(0, 2, 1)                  # (N, SQ, K)
            P, Qs = np.einsum("nqk,nqk->nk", Vn, e), np.einsum("nqk,nqk->nk", t, e)
        hk = (0.5 * dev.p.k) * h
        P *= hk
        Qs *= hk
        A = np.outer(dev.inv_tau, dt)
        rest = dev.w_rest * -np.expm1(-A[:N])                 # w_rest (1 - e^{-dt/tau})
        beta = np.empty_like(A)
        np.add(Qs, rest, out=beta[:N])
        beta[N:] = beta[:N]
        beta[:N] += P
        beta[N:] -= P
        return A, beta
    f = dev.f_pm(Vn)                                          # (D, SQ, K)
    D = f.shape[0]
    it = _col(dev.inv_tau, 3)
    b = f + dev.w_rest * it
    if dev.win == 0.0:
        A = np.outer(dev.inv_tau, dt)                         # (D, K)
        if dev.paired:
            N = D // 2                                        # e^{-(dt - s)/tau}: same for +/-
            e = np.exp(-(_col(dev.inv_tau[:N], 3) * (1.0 - x)[None, :, None]) * dt)   # (N, SQ, K)
            b[:N] *= e
            b[N:] *= e
        else:
            b *= np.exp(-(it * (1.0 - x)[None, :, None]) * dt)
        beta = np.matmul(wS, b) * h
        return A, beta
    a = (f + it).reshape(D, S, Q, K)
    A_sub = np.matmul(wq, a) * h                              # (D, S, K)
    A_in = np.matmul(Cm, a) * h                               # (D, S, Q, K)
    cumA = np.cumsum(A_sub, axis=1) - A_sub                   # before each sub-interval
    A_tot = A_sub.sum(axis=1)                                 # (D, K)
    e = np.exp(-(A_tot[:, None, None, :] - cumA[:, :, None, :] - A_in)).reshape(D, S * Q, K)
    beta = np.matmul(wS, b * e) * h
    return A_tot, beta
