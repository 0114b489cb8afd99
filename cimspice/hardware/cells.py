"""The 1T1R cell of the projection crossbar in NumPy (the twin of ``device_models/cell_1t1r.lib``):
RRAM element, level-1 access transistor, their series solve and write-verify programming.
SI units throughout."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq

from ..text import spice_number
from ..errors import ConfigError, DeviceParamError
from .devices import param_error, check_finite, sinh_read, device_dir, model_text

DEFAULT_VG = 1.8  # word-line (gate) voltage of the 1T1R cells [V], see cell_1t1r.lib


@dataclass(frozen=True)
class RRAMParams:
    """Non-volatile RRAM element of a 1T1R cell: conductance ``g`` [S], read
    nonlinearity ``rnl`` [1/V] (I = g*V, or g*sinh(rnl*V)/rnl).  Defaults = cell_1t1r.lib."""

    g: float = 5e-5
    rnl: float = 0.0

    def __post_init__(self):
        check_finite("RRAMParams", self)
        if self.g <= 0:
            raise param_error("RRAMParams", "g", self.g, "must be > 0 S")
        if self.rnl < 0:
            raise param_error("RRAMParams", "rnl", self.rnl, "must be >= 0 1/V")

    def spice_params(self) -> str:
        """Instance parameters for ``X.. p n rram`` / ``X.. row col wl cell1t1r``."""
        return f"g={spice_number(self.g)} rnl={spice_number(self.rnl)}"


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
        check_finite("NMOSParams", self)
        for name in ("w", "l", "kp"):
            if getattr(self, name) <= 0:
                raise param_error("NMOSParams", name, getattr(self, name), "must be > 0")
        if self.lambda_ < 0:
            raise param_error("NMOSParams", "lambda_", self.lambda_, "must be >= 0 1/V")

    @property
    def beta(self) -> float:
        """KP*W/L [A/V^2]."""
        return self.kp * self.w / self.l

    def instance_params(self) -> str:
        """Geometry for an ``M.. d g s b nacc <this>`` line (the card has no W/L; without
        them ngspice uses W = L = 100 um, i.e. a different transistor)."""
        return f"w={spice_number(self.w)} l={spice_number(self.l)}"



def rram_current(g, v, rnl: float = 0.0):
    """RRAM current [A] at voltage ``v`` [V]: g*V or g*sinh(rnl*V)/rnl."""
    return np.asarray(g, dtype=float) * sinh_read(v, rnl)


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
    return i_target / float(sinh_read(v - vd, rnl))



def nmos_card_params() -> str:
    """The access transistor card of cell_1t1r.lib as sp_mos1 model parameters (type=1: NMOS),
    so that the VACASK netlist reads the same card as the ngspice deck."""
    text = model_text("cell_1t1r.lib")
    m = re.search(r"^\.model\s+nacc\s+nmos\s+(.*)$", text, re.M | re.I)
    if m is None:
        raise ConfigError(f"{device_dir() / 'cell_1t1r.lib'}: no '.model nacc nmos' card; fix: "
                          "restore the shipped cell_1t1r.lib")
    params = [kv for kv in m.group(1).split() if not kv.lower().startswith("level=")]
    return " ".join(["type=1", *params])
