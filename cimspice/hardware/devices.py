"""The volatile state device in NumPy (the twin of ``device_models/vmem.lib`` / ``vmem.va``), and
the one lookup of the device model files.

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
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Sequence

import numpy as np
from scipy.integrate import solve_ivp

from ..text import comment, spice_number
from ..errors import ConfigError, DeviceParamError

MODES = {"linear": 0, "sinh": 1}
DEVICE_DIR = Path(__file__).resolve().parent.parent / "device_models"
DEVICE_DIR_ENV = "CIMSPICE_DEVICE_DIR"
MODEL_FILES = ("vmem.lib", "cell_1t1r.lib")     # inlined in every ngspice deck, in this order


def param_error(obj: str, name: str, value, need: str) -> DeviceParamError:
    return DeviceParamError(f"{obj}.{name} = {value!r}: {need}")


def check_finite(obj: str, inst) -> None:
    for f in fields(inst):
        v = getattr(inst, f.name)
        if isinstance(v, bool) or isinstance(v, str):
            continue
        if not isinstance(v, numbers.Real) or not math.isfinite(v):
            raise param_error(obj, f.name, v, "must be a finite number; give a real value in SI units")


@dataclass(frozen=True)
class VMemParams:
    """Volatile-memristor parameters (SI units); validated on construction.

    Defaults and why:
    - ``tau = 20 ms``: WOx short-term-memory devices relax in ~1-100 ms (Chang et al. 2011,
      ACS Nano 5:7669; Du et al. 2017, Nat. Commun. 8:2204); 20 ms lies between the default
      decay constants of the SSM, 10 and 40 ms (docs/design.md, "The model").
    - ``w_rest = w0 = 0``: the device rests in its low-conductance state; crossbar decks
      start every device at rest (the natural zero-bias DC solution).
    - ``g_on = 100 uS``, ``g_off = 1 uS``: the 1-100 uS conductance window of the crossbar
      cells, g_min..g_max (docs/design.md, "The circuit").
    - ``mode = 'linear'``, ``k = 1000 1/(V s)``: a 0.1 V drive for 100 us writes
      dw = k*V*t = 0.01, so ~50 such pulses stay below w ~ 0.5 before decay.
    - ``vs = 20 mV``: rectifier / threshold smoothing; f(0.1 V) differs from k*0.1 V by
      5e-5 relative, and the sinh threshold is fully closed (< 1e-12) at a 0.2 V read.
    - ``lam = 2e4 1/s``, ``eta = 3 1/V``, ``vth = 0.5 V`` (sinh mode; the Chang/Du form,
      values chosen, not fitted): a 1 V x 1 us pulse from w = 0 with the window on gives
      dw = 1 - exp(-lam*sinh(3)*1us) = 0.18, a 1.2 V pulse ~0.31 -- a moderate write of
      0.1-0.4 per pulse, the drive of the ``pulses_sinh`` golden case (docs/design.md,
      "Validation"); a 0.2 V read writes at < 1e-8 of 1/tau.
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
    odd: bool = False        # sinh: depressing branch below -vth (subcircuit vmem_odd)

    def __post_init__(self):
        self.validate()

    def validate(self) -> "VMemParams":
        """Raise :class:`DeviceParamError` naming the first out-of-range parameter."""
        o = "VMemParams"
        if self.mode not in MODES:
            raise param_error(o, "mode", self.mode, "unknown write mode; use 'linear' or 'sinh'")
        if not isinstance(self.window, (bool, np.bool_)):
            raise param_error(o, "window", self.window, "must be True or False")
        if not isinstance(self.odd, (bool, np.bool_)):
            raise param_error(o, "odd", self.odd, "must be True or False")
        if self.odd and self.mode != "sinh":
            raise param_error(o, "odd", self.odd, "the odd write branch needs mode='sinh'")
        check_finite(o, self)
        if self.tau <= 0:
            raise param_error(o, "tau", self.tau, "must be > 0 s; use e.g. tau=0.02")
        for name in ("w_rest", "w0"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise param_error(o, name, v, "must lie in [0, 1]")
        if self.g_off <= 0:
            raise param_error(o, "g_off", self.g_off, "must be > 0 S; use e.g. g_off=1e-6")
        if self.g_on < self.g_off:
            raise param_error(o, "g_on", self.g_on, f"must be >= g_off = {self.g_off!r} S")
        for name, unit in (("k", "1/(V s)"), ("lam", "1/s"), ("eta", "1/V"),
                           ("read_nl", "1/V")):
            v = getattr(self, name)
            if v < 0:
                raise param_error(o, name, v, f"must be >= 0 {unit}")
        if self.vs <= 0:
            raise param_error(o, "vs", self.vs, "must be > 0 V (smoothing width); use e.g. vs=0.02")
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
        return " ".join(f"{k}={spice_number(v) if not isinstance(v, int) else v}"
                        for k, v in vals.items())

    @property
    def subckt(self) -> str:
        """ngspice subcircuit name: ``vmem``, or ``vmem_odd`` with the depressing branch."""
        return "vmem_odd" if self.odd else "vmem"

    def va_params(self) -> str:
        """Instance parameters for the VACASK ``vmem`` module (same names as ngspice + odd)."""
        return self.spice_params() + (" odd=1" if self.odd else "")


# --- volatile memristor equations -------------------------------------------------------

def f_write(p: VMemParams, v):
    """Write drive f(V) [1/s] without the window; vectorised over ``v`` [V]."""
    v = np.asarray(v, dtype=float)
    if p.mode == "linear":
        return p.k * v * (1.0 + np.tanh(v / p.vs)) / 2.0
    return p.lam * np.sinh(p.eta * v) * (1.0 + np.tanh((v - p.vth) / p.vs)) / 2.0


def f_depress(p: VMemParams, v):
    """Depressing drive fd(V) <= 0 [1/s] of the odd write branch (0 unless ``p.odd``)."""
    v = np.asarray(v, dtype=float)
    if not p.odd:
        return np.zeros_like(v)
    return p.lam * np.sinh(p.eta * v) * (1.0 + np.tanh((-v - p.vth) / p.vs)) / 2.0


def window(p: VMemParams, w):
    """Saturation window: 1 - w when ``p.window`` else 1."""
    w = np.asarray(w, dtype=float)
    return 1.0 - w if p.window else np.ones_like(w)


def write_rate(p: VMemParams, v, w):
    """Write term f(V)*window(w) (+ fd(V)*(1 - win + win*w) with the odd branch) [1/s]."""
    rate = f_write(p, v) * window(p, w)
    if p.odd:
        w = np.asarray(w, dtype=float)
        rate = rate + f_depress(p, v) * (w if p.window else np.ones_like(w))
    return rate


def dwdt(p: VMemParams, v, w):
    """Right-hand side dw/dt [1/s] at drive ``v`` [V] and state ``w``."""
    return -(np.asarray(w, dtype=float) - p.w_rest) / p.tau + write_rate(p, v, w)


def conductance(p: VMemParams, w):
    """Read conductance G(w) = g_off + (g_on - g_off)*w [S]."""
    return p.g_off + (p.g_on - p.g_off) * np.asarray(w, dtype=float)


def sinh_read(v, rnl: float):
    v = np.asarray(v, dtype=float)
    return v if rnl == 0 else np.sinh(rnl * v) / rnl


def read_current(p: VMemParams, v, w):
    """Device current p->n [A]: G(w)*V, or G(w)*sinh(read_nl*V)/read_nl."""
    return conductance(p, w) * sinh_read(v, p.read_nl)


def constant_drive(p: VMemParams, v: float, t, w0: float | None = None):
    """Closed-form w(t) under a constant drive ``v`` applied from t = 0 (``t`` in s).

    The ODE is linear in w for fixed V: dw/dt = -a*w + b with a = 1/tau + win*(f - fd),
    b = w_rest/tau + f + (1 - win)*fd (fd: odd branch, else 0), so
    w(t) = w_inf + (w0 - w_inf)*exp(-a*t), w_inf = b/a (window off: w_inf = w_rest + tau*f).
    """
    w0 = p.w0 if w0 is None else w0
    f, fd = float(f_write(p, v)), float(f_depress(p, v))
    a = 1.0 / p.tau + ((f - fd) if p.window else 0.0)
    w_inf = (p.w_rest / p.tau + f + (0.0 if p.window else fd)) / a
    at = a * np.asarray(t, dtype=float)
    return w0 * np.exp(-at) - w_inf * np.expm1(-at)     # w_inf (1 - e^-at) without cancellation


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

    if p.odd:
        lam, eta, vth, vs = p.lam, p.eta, p.vth, p.vs

        def fd(v):
            return lam * math.sinh(eta * v) * (1.0 + math.tanh((-v - vth) / vs)) / 2.0
    else:
        def fd(v):
            return 0.0

    def rhs(v, w):
        return -(w - w_rest) / tau + f(v) * (1.0 - win * w) + fd(v) * (1.0 - win + win * w)

    def dfdw(v):
        return -1.0 / tau - win * (f(v) - fd(v))

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


# --- model files (trusted code, inlined into decks as they are) ---------------------------

def device_dir() -> Path:
    """Directory of the device model files: ``$CIMSPICE_DEVICE_DIR`` if set (read at call time,
    so a test or a user can point one run at modified models), else the shipped device_models/.

    The path may be written into a deck (``.include "..."``): one holding a quote or a control
    character is refused, since it would end the string or the line.
    """
    env = os.environ.get(DEVICE_DIR_ENV)
    path = Path(env) if env else DEVICE_DIR
    text = str(path)
    if any(ch in "\"'`" or not (ch == " " or ch.isprintable()) for ch in text):
        raise ConfigError(f"${DEVICE_DIR_ENV}={text!r}: the device model directory contains a quote "
                          f"or control character; fix: move the models to a plain directory path")
    return path


def model_path(name: str) -> Path:
    """Path of one model file in :func:`device_dir` (one-line ConfigError if it is missing)."""
    path = device_dir() / name
    if not path.is_file():
        raise ConfigError(f"{path}: device model file missing; fix: restore it or point "
                          f"${DEVICE_DIR_ENV} at a directory holding {', '.join(MODEL_FILES)} and vmem.va")
    return path


def model_text(name: str) -> str:
    """Text of one model file (one-line ConfigError if it cannot be read)."""
    path = device_dir() / name
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise ConfigError(f"{path}: device model file cannot be read ({why}); fix: restore it or "
                          f"point ${DEVICE_DIR_ENV} at a directory holding "
                          f"{' and '.join(MODEL_FILES)}") from None


def device_lib_text() -> str:
    """The model files inlined in every ngspice deck (volatile device, RRAM, NMOS card)."""
    parts = []
    for name in MODEL_FILES:
        parts.append(f"{comment(f'---- begin {name} (inlined from cimspice device_models/) ----')}\n"
                     f"{model_text(name).rstrip()}\n{comment(f'---- end {name} ----')}")
    return "\n".join(parts)


def lib_path() -> Path:
    """``device_models/vmem.lib`` (ngspice subcircuit ``vmem``)."""
    return model_path("vmem.lib")


def va_path() -> Path:
    """``device_models/vmem.va`` (Verilog-A module ``vmem``)."""
    return model_path("vmem.va")


def cell_lib_path() -> Path:
    """``device_models/cell_1t1r.lib`` (``.model nacc``, subcircuits ``rram``, ``cell1t1r``)."""
    return model_path("cell_1t1r.lib")
