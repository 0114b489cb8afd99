"""Device presets: the ``[device]`` keys a user gives -> the write law of the volatile device.

A device paper reports a write pulse (``v_write``, width ``t_p``), what one pulse does (``dw``
from ``w = 0``), a threshold and a relaxation time, not the raw rate constants of a model. The
presets take those and derive the rest in closed form (docs/design.md, "Device presets"):

* ``custom``: the keys as given (0.1.0's behaviour).
* ``ideal``: the linear integrator ``f(V) = k V (1 + tanh(V/vs))/2``, window off, with
  ``k = dw_pulse / (v_write t_p)``: one write pulse adds ``dw_pulse`` (the rectifier factor at
  1 V is 1 - 1e-22).
* ``wox``: the WOx-like threshold device ``f(V) = lam sinh(eta V) (1 + tanh((V - vth)/vs))/2``
  with the saturation window on (unless ``window = false``); from ``w = 0`` a pulse of constant
  rate ``f`` for ``t_p`` gives ``dw = 1 - exp(-f t_p)``, so
  ``f_w = -ln(1 - dw_pulse)/t_p`` and ``lam = f_w / (sinh(eta v_write) gate(v_write))``.

A key the preset derives (``lam`` with ``wox``, ``k`` with ``ideal``, ...) is refused when given,
and a read pulse may write at most ``READ_DISTURB_MAX`` of what one write pulse writes.
This module takes the configuration duck-typed (no import of ``config``: config calls it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError

WOX_ETA = 3.0            # 1/V, sinh slope (the Chang/Du form; DESIGN §10 prototype)
WOX_VTH = 0.6            # V, soft threshold: a 0.1 V read writes ~1e-22 of a write
SINH_ETA, SINH_VTH, SINH_LAM = 3.0, 0.5, 2e4    # custom sinh defaults (VMemParams)
READ_DISTURB_MAX = 0.01  # a read pulse may write <= 1 % of one write pulse's dw


@dataclass(frozen=True)
class WriteLaw:
    """The resolved write law every engine uses (same names as hardware.devices.VMemParams)."""

    mode: str        # 'linear' | 'sinh'
    window: bool
    k: float         # 1/(V s)
    lam: float       # 1/s
    eta: float       # 1/V
    vth: float       # V
    vs: float        # V
    odd: bool        # depressing branch below -vth (sinh)

    def f(self, v):
        """Write drive f(V) [1/s] of the potentiating branch (no window), vectorised."""
        v = np.asarray(v, dtype=float)
        if self.mode == "linear":
            return self.k * v * (1.0 + np.tanh(v / self.vs)) / 2.0
        return self.lam * np.sinh(self.eta * v) * (1.0 + np.tanh((v - self.vth) / self.vs)) / 2.0

    def dw_from_zero(self, v: float, t: float) -> float:
        """dw of a rectangular pulse ``v`` x ``t`` from w = 0, relaxation neglected."""
        ft = float(self.f(v)) * t
        return -math.expm1(-ft) if self.window else ft


def _gate(v: float, vth: float, vs: float) -> float:
    return (1.0 + math.tanh((v - vth) / vs)) / 2.0


# keys each preset derives itself: giving them (a non-default value) contradicts the preset
_OWNED = {
    "custom": ("dw_pulse",),
    "ideal": ("mode", "k", "lam", "eta", "vth", "odd_write"),
    "wox": ("mode", "k", "lam"),
}
_DEFAULTS = {"mode": "linear", "k": 1000.0, "lam": 0.0, "eta": 0.0, "vth": 0.0,
             "odd_write": False, "dw_pulse": 0.02}


def write_law(device, t_p: float) -> WriteLaw:
    """The write law of the ``[device]`` section ``device`` for write width ``t_p`` (s)."""
    d = device
    if d.preset == "ideal":
        return WriteLaw("linear", False, d.dw_pulse / (d.v_write * t_p), SINH_LAM, SINH_ETA,
                        SINH_VTH, d.vs, False)
    if d.preset == "wox":
        eta = d.eta or WOX_ETA
        vth = d.vth or WOX_VTH
        f_w = (-math.log1p(-d.dw_pulse) if d.window is not False else d.dw_pulse) / t_p
        lam = f_w / (math.sinh(eta * d.v_write) * _gate(d.v_write, vth, d.vs))
        return WriteLaw("sinh", d.window is not False, 1000.0, lam, eta, vth, d.vs, d.odd_write)
    return WriteLaw(d.mode, d.window is True, d.k, d.lam or SINH_LAM, d.eta or SINH_ETA,
                    d.vth or SINH_VTH, d.vs, d.odd_write)


def check_device_preset(cfg, where: str = "config") -> None:
    """Preset rules across sections (one-line ConfigError): contradicting keys, the topology a
    device can drive, the write threshold and the read disturb."""
    d, c, e, r = cfg.device, cfg.circuit, cfg.events, cfg.read

    def bad(section: str, key: str, msg: str):
        raise ConfigError(f"{where}: [{section}] {key}: {msg}")

    law = write_law(d, e.t_p)
    for key in _OWNED[d.preset]:
        if getattr(d, key) != _DEFAULTS[key] and not (key == "mode" and d.mode == law.mode):
            if d.preset == "custom":
                bad("device", key, "only the 'ideal' and 'wox' presets use it; set preset or "
                                   "remove the key")
            bad("device", key, f"derived by preset '{d.preset}' (docs/design.md \"Device "
                               f"presets\"); remove the key or use preset = 'custom'")
    if d.preset == "ideal" and d.window is True:
        bad("device", "window", "the 'ideal' preset is the linear integrator without window; "
                                "remove the key or use preset = 'custom'")
    if law.odd and law.mode != "sinh":
        bad("device", "odd_write", "the odd (depressing) branch is a sinh-mode option; the "
                                   "linear device pair is already odd; remove the key")
    if law.odd and not law.window:
        bad("device", "odd_write", "the depressing branch needs the window (it keeps w >= 0); "
                                   "set window = true or remove odd_write")
    threshold = law.mode == "sinh"
    if threshold and c.topology == "state" and d.preset == "wox":
        bad("device", "preset", "a threshold device cannot integrate the 'state' topology's "
                                "amplitude-coded writes; use [circuit] topology = 'trace'")
    if threshold and (c.topology == "trace" or d.preset == "wox") and d.v_write <= law.vth:
        bad("device", "v_write", f"{d.v_write:g} V does not exceed the write threshold vth = "
                                 f"{law.vth:g} V; raise v_write")
    # trace: the read pulse reaches the devices that hold the traces. (state: it reaches both
    # devices of a pair alike, so it cancels in w+ - w- for the integrator and is ~0 below a
    # sinh threshold; there is no fixed write pulse to compare it with.)
    if r.mode == "pulse" and c.topology == "trace":
        dw_w = law.dw_from_zero(d.v_write, e.t_p)
        dw_r = law.dw_from_zero(r.v_read, r.t_read)
        if not dw_r <= READ_DISTURB_MAX * dw_w:
            bad("read", "v_read", f"a {r.v_read:g} V x {r.t_read:g} s read writes dw = {dw_r:.3g}, "
                                  f"more than {READ_DISTURB_MAX:.0%} of one write pulse "
                                  f"({dw_w:.3g}); lower v_read or t_read")
