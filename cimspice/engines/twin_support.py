"""What the circuit twin reproduces: :func:`check_supported` refuses, in one line naming the key
and the fix, every option the twin cannot match within 0.5 % state NRMSE of ngspice (the twin is
exact; the limits below are where ngspice's own time-step error exceeds that), and any key of a
newer cimspice it does not know."""
from __future__ import annotations

import dataclasses
import os

from ..config import Config
from ..errors import ConfigError
from ..hardware.devices import DEVICE_DIR_ENV
from ..hardware.presets import write_law

__all__ = ["check_supported"]


# =================================================================================================
# support check
# =================================================================================================

# Every configuration key the twin knows, by section. Keys of the first group change the deck
# only through the mapping / schedule the twin receives (or not at all for w); keys of the second
# group are implemented by the twin. A key not listed here (a newer cimspice) must keep its default.
_KNOWN_KEYS = {
    "events": {"pool", "channel_pool", "split_polarity", "refractory_us", "time_scale", "t_p", "t_rise",
               "min_gap", "merge", "t_end_us"},
    "ssm": {"n_states", "taus", "init", "seed", "n_samples", "method"},
    "device": {"preset", "mode", "window", "w_rest", "g_on", "g_off", "k", "vs", "lam", "eta", "vth",
               "read_nl", "v_write", "dw_pulse", "odd_write"},
    "circuit": {"g_min", "g_max", "levels", "v_in", "access", "v_gate", "compensate_access",
                "r_wire", "rram_read_nl", "w_max", "v_clamp", "n_calibration", "topology",
                "tile_rows"},
    "read": {"mode", "v_read", "t_read", "guard", "sense_gain", "baseline"},
    "sim": {"reltol", "abstol", "vntol", "method", "maxstep_per_tau", "timeout",
            "save_currents"},
    "energy": {"accounting", "adc_per_read_J"},
    "variation": {"tau_sigma", "write_sigma", "write_noise", "g_sigma", "driver_offset",
                  "read_noise", "adc_bits", "seed", "recalibrate"},
}
# Largest [sim] reltol at which ngspice's own time-step error stays below 0.5 % state NRMSE
# (twin as reference; ngspice converges to the twin as reltol -> 0: 8e-5 at reltol 1e-7).
# Measured on dvs-bars samples 0-7, worst sample: linear write 3.4e-4 at reltol 1e-4 and at
# 1e-2; sinh write 3.7e-4 at 1e-4; sinh write + window 5.3e-3 at 1e-4 (sample 7), 2.8e-3 at
# 3e-5, 1.5e-3 at 1e-5 (sample 0: 3.0e-3 at 1e-4, 1.2e-2 at 1e-3, 2.2e-2 at 1e-2).
_RELTOL_MAX = {("linear", False): 1e-2, ("linear", True): 1e-2,
               ("sinh", False): 1e-4, ("sinh", True): 1e-5}
_VNTOL_MAX = 1e-6
_R_WIRE_MAX = 100.0      # ohm; fixed point of the non-linear wired solve converges (16x16 array
                         # all rows at 0.2 V: 5 ohm 2 ms, 100 ohm 8 ms; 200 ohm diverges)
_ABSTOL_MAX = 1e-9


def _default_of(f):
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return f.default_factory()                     # type: ignore[misc]
    return dataclasses.MISSING


_SUPPORTED: set = set()                     # configurations already checked (hashable ones)
_LAST: list = [None]                        # the last one: an identity test is far cheaper than
                                            # hashing the nested (frozen) Config


def check_supported(cfg: Config) -> None:
    """Raise ConfigError (one line naming the key and the fix) for any option the twin cannot
    reproduce within 0.5 % state NRMSE of ngspice; return None when the configuration is
    supported. Unknown keys (newer cimspice) are refused unless they keep their default."""
    if os.environ.get(DEVICE_DIR_ENV):
        raise ConfigError(f"twin: ${DEVICE_DIR_ENV} overrides the device model files; the twin "
                          f"implements the shipped vmem.lib / cell_1t1r.lib only; fix: unset "
                          f"{DEVICE_DIR_ENV} or simulate with ngspice")
    if cfg is _LAST[0]:
        return
    try:
        if cfg in _SUPPORTED:
            _LAST[0] = cfg
            return
    except TypeError:                                   # unhashable: check every time
        _check_config_keys(cfg)
        return
    _check_config_keys(cfg)
    if len(_SUPPORTED) > 256:
        _SUPPORTED.clear()
    _SUPPORTED.add(cfg)
    _LAST[0] = cfg


def _check_config_keys(cfg: Config) -> None:
    for section in dataclasses.fields(cfg):
        sec = getattr(cfg, section.name)
        if not dataclasses.is_dataclass(sec):
            continue
        known = _KNOWN_KEYS.get(section.name, set())
        for f in dataclasses.fields(sec):
            if f.name in known:
                continue
            value, default = getattr(sec, f.name), _default_of(f)
            if value != default:
                raise ConfigError(f"twin: [{section.name}] {f.name} = {value!r}: not modelled by "
                                  f"the circuit twin; fix: keep the default {default!r} or "
                                  f"simulate with ngspice")
    c, s = cfg.circuit, cfg.sim
    d = write_law(cfg.device, cfg.events.t_p)     # the resolved law (mode, window) of the preset
    topo = c.topology
    if topo not in ("state", "trace"):
        raise ConfigError(f"twin: [circuit] topology = {topo!r}: unknown topology; fix: use "
                          f"'state' or 'trace'")
    if topo == "state" and d.odd:
        raise ConfigError("twin: [device] odd_write = true: the state twin's device pairs do not "
                          "model the odd write branch; fix: remove odd_write or simulate with ngspice")
    if d.mode not in ("linear", "sinh"):
        raise ConfigError(f"twin: [device] mode = {d.mode!r}: unknown write mode; fix: use "
                          f"'linear' or 'sinh'")
    if c.access not in ("nmos", "none"):
        raise ConfigError(f"twin: [circuit] access = {c.access!r}: unknown access device; fix: "
                          f"use 'nmos' or 'none'")
    # trace: fixed write levels; ngspice's step error measured <= 2.2e-4 state NRMSE at reltol
    # 1e-4 .. 1e-2 (dvs-bars samples 0 and 7, wox with window and ideal presets)
    lim = 1e-2 if topo == "trace" else _RELTOL_MAX[(d.mode, bool(d.window))]
    if s.reltol > lim:
        what = f"{d.mode} write" + (" + window" if d.window else "")
        raise ConfigError(f"twin: [sim] reltol = {s.reltol:g}: with the {what} ngspice's own "
                          f"time-step error exceeds 0.5 % (the twin is exact), so the twin "
                          f"cannot match ngspice; fix: set reltol <= {lim:g}")
    if s.vntol > _VNTOL_MAX:
        raise ConfigError(f"twin: [sim] vntol = {s.vntol:g}: ngspice's state-node tolerance is too "
                          f"loose to be matched within 0.5 %; fix: set vntol <= {_VNTOL_MAX:g}")
    if s.abstol > _ABSTOL_MAX:
        raise ConfigError(f"twin: [sim] abstol = {s.abstol:g}: ngspice's current tolerance is too "
                          f"loose to be matched within 0.5 %; fix: set abstol <= {_ABSTOL_MAX:g}")
    if c.r_wire > _R_WIRE_MAX and (c.access != "none" or c.rram_read_nl > 0):
        raise ConfigError(f"twin: [circuit] r_wire = {c.r_wire:g} ohm: the twin's wired-crossbar "
                          f"solve (non-linear cells) is validated up to {_R_WIRE_MAX:g} ohm; fix: "
                          f"set r_wire <= {_R_WIRE_MAX:g} or access = 'none' with "
                          f"rram_read_nl = 0, or simulate with ngspice")



