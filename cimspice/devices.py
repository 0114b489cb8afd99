"""Device equations in NumPy: the twin of ``device_models/vmem.lib`` / ``vmem.va`` and of the
1T1R cell card ``device_models/cell_1t1r.lib``.

Volatile memristor (state ``w`` in [0, 1], SI units throughout)::

    dw/dt = -(w - w_rest)/tau + f(V) * window(w)
    f(V)  = k*V*(1 + tanh(V/vs))/2                        mode 'linear'
    f(V)  = lam*sinh(eta*V)*(1 + tanh((V - vth)/vs))/2    mode 'sinh'
    window(w) = 1 - w  (window=True)  or  1
    I     = G(w)*V,  G(w) = g_off + (g_on - g_off)*w      (read_nl = 0)
    I     = G(w)*sinh(read_nl*V)/read_nl                  (read_nl > 0)

The linear write satisfies f(V) - f(-V) = k*V exactly and f(0) = 0, so a device pair driven
by +V and -V integrates V exactly (window off); one device alone sees k*max(V, 0) smoothed
over ``vs``.  Times in seconds, voltages in volts, conductances in siemens.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Sequence

import numpy as np
from scipy.optimize import brentq

from .errors import ConfigError, DeviceParamError

MODES = {"linear": 0, "sinh": 1}
DEFAULT_VG = 1.8  # word-line (gate) voltage of the 1T1R cells [V], see cell_1t1r.lib

_MODEL_DIR = Path(__file__).resolve().parent.parent / "device_models"


def _num(x: float) -> str:
    """Shortest round-trip decimal for a netlist (``0.02``, ``1e-06``, ``20000``)."""
    s = repr(float(x))
    return s[:-2] if s.endswith(".0") else s


def _bad(obj: str, name: str, value, need: str) -> DeviceParamError:
    return DeviceParamError(f"{obj}.{name} = {value!r}: {need}")


def _check_finite(obj: str, inst) -> None:
    for f in fields(inst):
        v = getattr(inst, f.name)
        if isinstance(v, bool) or isinstance(v, str):
            continue
        if not isinstance(v, numbers.Real) or not math.isfinite(v):
            raise _bad(obj, f.name, v, "must be a finite number; give a real value in SI units")


@dataclass(frozen=True)
class VMemParams:
    """Volatile-memristor parameters (SI units); validated on construction.

    Defaults and why:
    - ``tau = 20 ms``: WOx short-term-memory devices relax in ~1-100 ms (Chang et al. 2011,
      ACS Nano 5:7669; Du et al. 2017, Nat. Commun. 8:2204); 20 ms sits inside the 5-200 ms
      decay-group range of the SSM (DESIGN section 3).
    - ``w_rest = w0 = 0``: the device rests in its low-conductance state; crossbar decks
      start every device at rest (the natural zero-bias DC solution).
    - ``g_on = 100 uS``, ``g_off = 1 uS``: the 1-100 uS conductance window of DESIGN 3.
    - ``mode = 'linear'``, ``k = 1000 1/(V s)``: a 0.1 V drive for 100 us writes
      dw = k*V*t = 0.01, so ~50 such pulses stay below w ~ 0.5 before decay.
    - ``vs = 20 mV``: rectifier / threshold smoothing; f(0.1 V) differs from k*0.1 V by
      5e-5 relative, and the sinh threshold is fully closed (< 1e-12) at a 0.2 V read.
    - ``lam = 2e4 1/s``, ``eta = 3 1/V``, ``vth = 0.5 V`` (sinh mode; the Chang/Du form,
      values chosen, not fitted): a 1 V x 1 us pulse from w = 0 with the window on gives
      dw = 1 - exp(-lam*sinh(3)*1us) = 0.18, a 1.2 V pulse ~0.31 -- the 0.1-0.4 range of
      the DESIGN section 4 prototype; a 0.2 V read writes at < 1e-8 of 1/tau.
    - ``window = False``: the linear mode is then an exact leaky integrator (the SSM);
      turn it on to keep w <= 1 under strong drive (sinh mode).
    - ``read_nl = 0``: ohmic read.
    """

    tau: float = 20e-3
    w_rest: float = 0.0
    w0: float = 0.0
    g_on: float = 100e-6
    g_off: float = 1e-6
    mode: str = "linear"
    k: float = 1000.0
    vs: float = 0.02
    lam: float = 2e4
    eta: float = 3.0
    vth: float = 0.5
    window: bool = False
    read_nl: float = 0.0

    def __post_init__(self):
        self.validate()

    def validate(self) -> "VMemParams":
        """Raise :class:`DeviceParamError` naming the first out-of-range parameter."""
        o = "VMemParams"
        if self.mode not in MODES:
            raise _bad(o, "mode", self.mode, "unknown write mode; use 'linear' or 'sinh'")
        if not isinstance(self.window, (bool, np.bool_)):
            raise _bad(o, "window", self.window, "must be True or False")
        _check_finite(o, self)
        if self.tau <= 0:
            raise _bad(o, "tau", self.tau, "must be > 0 s; use e.g. tau=0.02")
        for name in ("w_rest", "w0"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise _bad(o, name, v, "must lie in [0, 1]")
        if self.g_off <= 0:
            raise _bad(o, "g_off", self.g_off, "must be > 0 S; use e.g. g_off=1e-6")
        if self.g_on < self.g_off:
            raise _bad(o, "g_on", self.g_on, f"must be >= g_off = {self.g_off!r} S")
        for name, unit in (("k", "1/(V s)"), ("lam", "1/s"), ("eta", "1/V"),
                           ("read_nl", "1/V")):
            v = getattr(self, name)
            if v < 0:
                raise _bad(o, name, v, f"must be >= 0 {unit}")
        if self.vs <= 0:
            raise _bad(o, "vs", self.vs, "must be > 0 V (smoothing width); use e.g. vs=0.02")
        return self

    @property
    def mode_id(self) -> int:
        """0 for 'linear', 1 for 'sinh' (the numeric ``mode`` of the subcircuit)."""
        return MODES[self.mode]

    def spice_params(self) -> str:
        """Instance parameters for ``X.. p n vmem <this>`` (ngspice names, SI numbers)."""
        vals = dict(tau=self.tau, w_rest=self.w_rest, w0=self.w0, gon=self.g_on,
                    goff=self.g_off, mode=self.mode_id, k=self.k, vs=self.vs, lam=self.lam,
                    eta=self.eta, vth=self.vth, win=int(bool(self.window)), rnl=self.read_nl)
        return " ".join(f"{k}={_num(v) if not isinstance(v, int) else v}"
                        for k, v in vals.items())

    def va_params(self) -> str:
        """Instance parameters for the VACASK ``vmem`` module (same names as ngspice)."""
        return self.spice_params()


# --- volatile memristor equations -------------------------------------------------------

def f_write(p: VMemParams, v):
    """Write drive f(V) [1/s] without the window; vectorised over ``v`` [V]."""
    v = np.asarray(v, dtype=float)
    if p.mode == "linear":
        return p.k * v * (1.0 + np.tanh(v / p.vs)) / 2.0
    return p.lam * np.sinh(p.eta * v) * (1.0 + np.tanh((v - p.vth) / p.vs)) / 2.0


def window(p: VMemParams, w):
    """Saturation window: 1 - w when ``p.window`` else 1."""
    w = np.asarray(w, dtype=float)
    return 1.0 - w if p.window else np.ones_like(w)


def write_rate(p: VMemParams, v, w):
    """Write term f(V)*window(w) of dw/dt [1/s]."""
    return f_write(p, v) * window(p, w)


def dwdt(p: VMemParams, v, w):
    """Right-hand side dw/dt [1/s] at drive ``v`` [V] and state ``w``."""
    return -(np.asarray(w, dtype=float) - p.w_rest) / p.tau + write_rate(p, v, w)


def conductance(p: VMemParams, w):
    """Read conductance G(w) = g_off + (g_on - g_off)*w [S]."""
    return p.g_off + (p.g_on - p.g_off) * np.asarray(w, dtype=float)


def _sinh_read(v, rnl: float):
    v = np.asarray(v, dtype=float)
    return v if rnl == 0 else np.sinh(rnl * v) / rnl


def read_current(p: VMemParams, v, w):
    """Device current p->n [A]: G(w)*V, or G(w)*sinh(read_nl*V)/read_nl."""
    return conductance(p, w) * _sinh_read(v, p.read_nl)


def constant_drive(p: VMemParams, v: float, t, w0: float | None = None):
    """Closed-form w(t) under a constant drive ``v`` applied from t = 0 (``t`` in s).

    The ODE is linear in w for fixed V: dw/dt = -a*w + b with a = 1/tau + win*f(V),
    b = w_rest/tau + f(V), so w(t) = w_inf + (w0 - w_inf)*exp(-a*t), w_inf = b/a
    (window off: w_inf = w_rest + tau*f(V)).
    """
    w0 = p.w0 if w0 is None else w0
    f = float(f_write(p, v))
    a = 1.0 / p.tau + (f if p.window else 0.0)
    w_inf = (p.w_rest / p.tau + f) / a
    return w_inf + (w0 - w_inf) * np.exp(-a * np.asarray(t, dtype=float))


def _scalar_rhs(p: VMemParams):
    """dw/dt(v, w) and its w-derivative on Python floats (the ODE solver calls these
    thousands of times; NumPy scalar overhead would dominate)."""
    tau, w_rest, win = p.tau, p.w_rest, 1.0 if p.window else 0.0
    if p.mode == "linear":
        k, vs = p.k, p.vs

        def f(v):
            return k * v * (1.0 + math.tanh(v / vs)) / 2.0
    else:
        lam, eta, vth, vs = p.lam, p.eta, p.vth, p.vs

        def f(v):
            return lam * math.sinh(eta * v) * (1.0 + math.tanh((v - vth) / vs)) / 2.0

    def rhs(v, w):
        return -(w - w_rest) / tau + f(v) * (1.0 - win * w)

    def dfdw(v):
        return -1.0 / tau - win * f(v)

    return rhs, dfdw


def _pwl_limits(tp, vp, a: float, b: float) -> tuple[float, float]:
    """Drive just after ``a`` and just before ``b`` for a PWL with possibly repeated corner
    times (ideal steps): inside a segment between corners the drive is exactly linear."""
    ia = np.searchsorted(tp, a, side="right") - 1      # last corner at or before a
    va = vp[0] if ia < 0 else (vp[ia] if ia == len(tp) - 1 else
                               np.interp(a, tp[ia:ia + 2], vp[ia:ia + 2]))
    ib = np.searchsorted(tp, b, side="left")           # first corner at or after b
    vb = vp[-1] if ib >= len(tp) else (vp[ib] if ib == 0 else
                                       np.interp(b, tp[ib - 1:ib + 1], vp[ib - 1:ib + 1]))
    return float(va), float(vb)


def integrate(p: VMemParams, t_eval, drive, w0: float | None = None, *,
              breaks: Sequence[float] | None = None, rtol: float = 1e-11,
              atol: float = 1e-14, max_step: float = np.inf) -> np.ndarray:
    """Reference solution w(t_eval) of the device ODE (scipy LSODA, tight tolerances).

    ``drive`` is either a piecewise-linear waveform ``(t_pts, v_pts)`` [s], [V] (held
    constant outside its range, as a SPICE PWL source; a repeated corner time is an ideal
    step) or a callable ``v(t)``.  The integration restarts at every PWL corner (plus
    ``breaks``), so the drive is smooth -- for a PWL exactly linear -- inside each solver
    call; a callable with pulses must list their edges in ``breaks`` (or bound
    ``max_step``).  The state starts at ``w0`` (default ``p.w0``) at ``t_eval[0]``.
    Accuracy (checked against the closed form): |error| < 1e-9 over tens of ms.
    """
    from scipy.integrate import solve_ivp  # lazy: importing it costs ~1 s per process

    t_eval = np.asarray(t_eval, dtype=float)
    if t_eval.ndim != 1 or t_eval.size == 0 or np.any(np.diff(t_eval) < 0):
        raise ValueError("t_eval must be a non-empty, non-decreasing 1-D array of seconds")
    if callable(drive):
        tp = vp = None
        corners = np.asarray([] if breaks is None else breaks, dtype=float)
    else:
        tp, vp = (np.asarray(a, dtype=float) for a in drive)
        if tp.shape != vp.shape or tp.ndim != 1 or tp.size == 0 or np.any(np.diff(tp) < 0):
            raise ValueError("drive must be (t_pts, v_pts) with non-decreasing t_pts")
        corners = np.r_[tp, [] if breaks is None else np.asarray(breaks, dtype=float)]
    t0, t1 = t_eval[0], t_eval[-1]
    edges = np.unique(np.r_[t0, corners[(corners > t0) & (corners < t1)], t1])
    rhs_vw, dfdw = _scalar_rhs(p)

    out = np.empty_like(t_eval)
    w = p.w0 if w0 is None else float(w0)
    out[t_eval == t0] = w
    for a, b in zip(edges[:-1], edges[1:]):
        if tp is None:
            vfun = lambda t: float(drive(t))  # noqa: E731
        else:
            va, vb = _pwl_limits(tp, vp, a, b)
            slope = (vb - va) / (b - a)
            vfun = lambda t, va=va, a=a, slope=slope: va + slope * (t - a)  # noqa: E731
        sel = (t_eval > a) & (t_eval <= b)
        ts = np.unique(np.r_[t_eval[sel], b])  # simulators repeat time points
        sol = solve_ivp(lambda t, y: [rhs_vw(vfun(t), y[0])], (a, b), [w], method="LSODA",
                        t_eval=ts, jac=lambda t, y: [[dfdw(vfun(t))]], rtol=rtol, atol=atol,
                        max_step=max_step)
        if not sol.success:  # pragma: no cover - scalar ODE, linear in w
            raise RuntimeError(f"reference integrator failed on [{a}, {b}]: {sol.message}")
        out[sel] = sol.y[0, np.searchsorted(ts, t_eval[sel])]
        w = float(sol.y[0, -1])
    return out


# --- model files ------------------------------------------------------------------------

def _model_file(name: str) -> Path:
    path = _MODEL_DIR / name
    if not path.is_file():
        raise ConfigError(f"{path}: device model file missing; reinstall cimspice from its "
                          "source tree (pip install -e .) so device_models/ is present")
    return path


def lib_path() -> Path:
    """``device_models/vmem.lib`` (ngspice subcircuit ``vmem``)."""
    return _model_file("vmem.lib")


def va_path() -> Path:
    """``device_models/vmem.va`` (Verilog-A module ``vmem``)."""
    return _model_file("vmem.va")


def cell_lib_path() -> Path:
    """``device_models/cell_1t1r.lib`` (``.model nacc``, subcircuits ``rram``, ``cell1t1r``)."""
    return _model_file("cell_1t1r.lib")


# --- 1T1R cell ----------------------------------------------------------------------------

@dataclass(frozen=True)
class RRAMParams:
    """Non-volatile RRAM element of a 1T1R cell: conductance ``g`` [S], read
    nonlinearity ``rnl`` [1/V] (I = g*V, or g*sinh(rnl*V)/rnl).  Defaults = cell_1t1r.lib."""

    g: float = 5e-5
    rnl: float = 0.0

    def __post_init__(self):
        _check_finite("RRAMParams", self)
        if self.g <= 0:
            raise _bad("RRAMParams", "g", self.g, "must be > 0 S")
        if self.rnl < 0:
            raise _bad("RRAMParams", "rnl", self.rnl, "must be >= 0 1/V")

    def spice_params(self) -> str:
        """Instance parameters for ``X.. p n rram`` / ``X.. row col wl cell1t1r``."""
        return f"g={_num(self.g)} rnl={_num(self.rnl)}"


@dataclass(frozen=True)
class NMOSParams:
    """Level-1 access transistor of cell_1t1r.lib (``.model nacc``; W/L on the instance).

    ``w``, ``l`` [m], ``kp`` [A/V^2], ``vto`` [V], ``lambda_`` [1/V]; gamma = 0, ld = 0.
    """

    w: float = 2e-6
    l: float = 0.18e-6  # noqa: E741 - the SPICE name
    kp: float = 200e-6
    vto: float = 0.45
    lambda_: float = 0.02

    def __post_init__(self):
        _check_finite("NMOSParams", self)
        for name in ("w", "l", "kp"):
            if getattr(self, name) <= 0:
                raise _bad("NMOSParams", name, getattr(self, name), "must be > 0")
        if self.lambda_ < 0:
            raise _bad("NMOSParams", "lambda_", self.lambda_, "must be >= 0 1/V")

    @property
    def beta(self) -> float:
        """KP*W/L [A/V^2]."""
        return self.kp * self.w / self.l

    def instance_params(self) -> str:
        """Geometry for an ``M.. d g s b nacc <this>`` line (the card has no W/L; without
        them ngspice uses W = L = 100 um, i.e. a different transistor)."""
        return f"w={_num(self.w)} l={_num(self.l)}"

    def r_on(self, vg: float = DEFAULT_VG) -> float:
        """Small-signal channel resistance at vds -> 0 [ohm] (inf when off)."""
        ov = vg - self.vto
        return math.inf if ov <= 0 else 1.0 / (self.beta * ov)


def rram_current(g, v, rnl: float = 0.0):
    """RRAM current [A] at voltage ``v`` [V]: g*V or g*sinh(rnl*V)/rnl."""
    return np.asarray(g, dtype=float) * _sinh_read(v, rnl)


def nmos_level1_current(vgs, vds, p: NMOSParams = NMOSParams()):
    """Drain current [A] of the SPICE level-1 NMOS (body effect off), vectorised.

    For vds < 0 drain and source swap roles, as in ngspice: I = -I(vgs - vds, -vds).
    """
    vgs, vds = np.broadcast_arrays(np.asarray(vgs, dtype=float), np.asarray(vds, dtype=float))
    sign = np.where(vds < 0, -1.0, 1.0)
    vgs_e = np.where(vds < 0, vgs - vds, vgs)
    vds_e = np.abs(vds)
    vov = vgs_e - p.vto
    clm = 1.0 + p.lambda_ * vds_e
    triode = p.beta * vds_e * (vov - vds_e / 2.0) * clm
    sat = p.beta / 2.0 * vov**2 * clm
    i = np.where(vov <= 0, 0.0, np.where(vds_e < vov, triode, sat))
    return sign * i


def cell_current(v, g_rram, vg: float = DEFAULT_VG, nmos: NMOSParams = NMOSParams(),
                 rnl: float = 0.0):
    """Current [A] of a 1T1R cell (row at ``v``, RRAM ``g_rram``, NMOS source at 0 V).

    Solves I_rram(v - vd) = I_nmos(vg, vd) for the internal node vd with brentq
    (unique root: the left side falls and the right side rises with vd).
    Vectorised over ``v`` and ``g_rram`` by broadcasting.
    """
    vb, gb = np.broadcast_arrays(np.asarray(v, dtype=float), np.asarray(g_rram, dtype=float))
    out = np.zeros(vb.shape)
    for idx in np.ndindex(vb.shape):
        vi, gi = float(vb[idx]), float(gb[idx])
        if vi == 0.0:
            continue

        def h(vd):
            return float(rram_current(gi, vi - vd, rnl) - nmos_level1_current(vg, vd, nmos))

        lo, hi = min(0.0, vi), max(0.0, vi)
        vd = brentq(h, lo, hi, xtol=1e-300, rtol=4 * np.finfo(float).eps, maxiter=200)
        out[idx] = float(nmos_level1_current(vg, vd, nmos))
    return out if out.ndim else float(out)


def rram_for_cell_current(v: float, i_target: float, vg: float = DEFAULT_VG,
                          nmos: NMOSParams = NMOSParams(), rnl: float = 0.0) -> float:
    """RRAM conductance [S] that makes a 1T1R cell draw ``i_target`` [A] at row voltage
    ``v`` [V] (write-verify programming with the access transistor in place).

    The transistor fixes the internal node: I_nmos(vg, vd) = i_target, then
    g = i_target / (read law at v - vd).  Raises DeviceParamError when the transistor
    cannot carry ``i_target`` at this gate voltage.
    """
    v, i_target = float(v), float(i_target)
    if v == 0.0 or i_target == 0.0:
        raise DeviceParamError(f"rram_for_cell_current: v = {v!r} V, i_target = {i_target!r} A:"
                               " both must be non-zero")
    if (v > 0) != (i_target > 0):
        raise DeviceParamError(f"rram_for_cell_current: i_target = {i_target!r} A must have the"
                               f" sign of v = {v!r} V")
    i_max = float(nmos_level1_current(vg, v, nmos))
    if abs(i_target) >= abs(i_max):
        raise DeviceParamError(
            f"rram_for_cell_current: i_target = {i_target!r} A needs more than the access "
            f"transistor carries at v = {v!r} V, vg = {vg!r} V ({i_max!r} A); raise the gate "
            "voltage or lower g_max")
    lo, hi = min(0.0, v), max(0.0, v)
    vd = brentq(lambda x: float(nmos_level1_current(vg, x, nmos)) - i_target, lo, hi,
                xtol=1e-300, rtol=4 * np.finfo(float).eps, maxiter=200)
    return i_target / float(_sinh_read(v - vd, rnl))
