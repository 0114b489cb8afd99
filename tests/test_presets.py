"""Device presets (hardware/presets.py), their refusals in config.py, the read-disturb rule and the
odd (depressing) write branch, from the closed form and against the real ngspice."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from cimspice.config import config_from_toml, load_config
from cimspice.engines.ngspice import run_ngspice
from cimspice.errors import ConfigError, DeviceParamError
from cimspice.hardware import devices as D
from cimspice.hardware.mapping import vmem_params
from cimspice.hardware.presets import READ_DISTURB_MAX, write_law

# Relaxation made negligible: over one <= 200 us pulse it removes ~dw t_p/(2 tau) <= 1e-8 of w.
# Not 1e9 s: with the window off, constant_drive computes w_inf + (w0 - w_inf) exp(-t/tau) with
# w_inf = tau f ~ 1e12, and the cancellation costs ~1e-4 of w (reported; expm1 would not).
TAU_HUGE = 1e3


def _cfg(text: str):
    return config_from_toml(text, "cfg.toml")


def _gate(v, vth, vs):
    return (1.0 + math.tanh((v - vth) / vs)) / 2.0


def _one_pulse_dw(cfg, v, t):
    """dw from w = 0 of a constant drive v for t s on the configured device (tau huge)."""
    p = vmem_params(cfg, TAU_HUGE)
    return float(D.constant_drive(p, v, t, w0=0.0))


# ---------------------------------------------------------------- (a) derived write laws

WOX_CASES = [   # (v_write, t_p, dw_pulse, window line)
    (1.0, 100e-6, 0.02, ""),
    (1.5, 50e-6, 0.3, "window = true"),
    (0.8, 200e-6, 0.005, 'window = "auto"'),
]


@pytest.mark.parametrize("v_write, t_p, dw_pulse, win", WOX_CASES)
def test_wox_lam_gives_dw_pulse_with_window(v_write, t_p, dw_pulse, win):
    cfg = _cfg(f'[events]\nt_p = {t_p!r}\nt_rise = 1e-6\n[circuit]\ntopology = "trace"\n'
               f'[device]\npreset = "wox"\nv_write = {v_write!r}\ndw_pulse = {dw_pulse!r}\n{win}\n')
    p = vmem_params(cfg, TAU_HUGE)
    assert p.mode == "sinh" and p.window is True
    # lam from the closed form, written out here independently of presets.py:
    # window on, w(0) = 0, constant f: w(t_p) = 1 - exp(-f t_p) = dw_pulse
    f_w = -math.log(1.0 - dw_pulse) / t_p
    lam = f_w / (math.sinh(3.0 * v_write) * _gate(v_write, 0.6, 0.02))
    assert p.lam == pytest.approx(lam, rel=1e-12)     # tolerance: rounding only
    assert (p.eta, p.vth) == (3.0, 0.6)
    # tolerance 1e-6 absolute on dw (the brief); relaxation adds ~1e-8 (TAU_HUGE)
    assert abs(_one_pulse_dw(cfg, v_write, t_p) - dw_pulse) < 1e-6


def test_wox_without_window_still_gives_dw_pulse():
    """window = false: one pulse from w = 0 writes f t_p, so f must be dw_pulse / t_p (the
    window's -ln(1 - dw) would overshoot by dw^2/2 = 2e-4 at dw = 0.02)."""
    cfg = _cfg('[circuit]\ntopology = "trace"\n[device]\npreset = "wox"\nwindow = false\n'
               'dw_pulse = 0.02\n')
    p = vmem_params(cfg, TAU_HUGE)
    assert p.window is False
    assert abs(_one_pulse_dw(cfg, 1.0, 100e-6) - 0.02) < 1e-6    # tolerance 1e-6 (brief)


@pytest.mark.parametrize("v_write, t_p, dw_pulse", [(1.0, 100e-6, 0.02), (0.5, 20e-6, 0.1)])
def test_ideal_k_times_write_is_dw_pulse(v_write, t_p, dw_pulse):
    cfg = _cfg(f'[events]\nt_p = {t_p!r}\nt_rise = 1e-6\n[device]\npreset = "ideal"\n'
               f'v_write = {v_write!r}\ndw_pulse = {dw_pulse!r}\n')
    p = vmem_params(cfg, TAU_HUGE)
    assert p.mode == "linear" and p.window is False
    assert p.k * v_write * t_p == pytest.approx(dw_pulse, rel=1e-12)   # rounding only
    # the device's own pulse: the rectifier gate (1 + tanh(V/vs))/2 at V >= 0.5 V, vs = 20 mV
    # is 1 - 2e-22; relaxation removes ~dw t_p/(2 tau) <= 1e-9: dw within 1e-8 of dw_pulse
    assert abs(_one_pulse_dw(cfg, v_write, t_p) - dw_pulse) < 1e-8


def test_custom_preset_uses_keys_as_given():
    cfg = _cfg('[device]\nmode = "sinh"\nlam = 123.0\neta = 2.0\nvth = 0.4\nwindow = true\n')
    law = write_law(cfg.device, cfg.events.t_p)
    assert (law.mode, law.lam, law.eta, law.vth, law.window) == ("sinh", 123.0, 2.0, 0.4, True)
    # window "auto" is off outside the wox preset
    assert write_law(_cfg("").device, 100e-6).window is False


# ---------------------------------------------------------------- (b) refusals

TRACE_WOX = '[circuit]\ntopology = "trace"\n[device]\npreset = "wox"\n'
TRACE_IDEAL = '[circuit]\ntopology = "trace"\n[device]\npreset = "ideal"\n'

REFUSED = [
    # (id, config text, section, key, words in the message)
    ("wox-k", TRACE_WOX + "k = 50.0\n", "device", "k", ["wox"]),
    ("wox-lam", TRACE_WOX + "lam = 100.0\n", "device", "lam", ["wox"]),
    ("ideal-mode", TRACE_IDEAL + 'mode = "sinh"\n', "device", "mode", ["ideal"]),
    ("ideal-k", TRACE_IDEAL + "k = 50.0\n", "device", "k", ["ideal"]),
    ("ideal-lam", TRACE_IDEAL + "lam = 100.0\n", "device", "lam", ["ideal"]),
    ("ideal-eta", TRACE_IDEAL + "eta = 2.0\n", "device", "eta", ["ideal"]),
    ("ideal-vth", TRACE_IDEAL + "vth = 0.3\n", "device", "vth", ["ideal"]),
    ("ideal-odd-write", TRACE_IDEAL + "odd_write = true\n", "device", "odd_write", ["ideal"]),
    ("ideal-window", '[device]\npreset = "ideal"\nwindow = true\n', "device", "window",
     ["ideal"]),
    ("custom-dw-pulse", "[device]\ndw_pulse = 0.05\n", "device", "dw_pulse", ["preset"]),
    ("wox-state-topology", '[device]\npreset = "wox"\n', "device", "preset", ["trace"]),
    ("wox-v-write-at-threshold", TRACE_WOX + "v_write = 0.6\n", "device", "v_write",
     ["vth = 0.6"]),
    ("wox-v-write-below-threshold", TRACE_WOX + "v_write = 0.5\n", "device", "v_write",
     ["vth = 0.6"]),
    ("trace-sinh-v-write-below-threshold",
     '[circuit]\ntopology = "trace"\n[device]\nmode = "sinh"\nvth = 0.8\nv_write = 0.7\n',
     "device", "v_write", ["vth = 0.8"]),
    ("read-disturb", TRACE_IDEAL + '[read]\nmode = "pulse"\nv_read = 0.3\n', "read", "v_read",
     ["1%"]),
    ("odd-write-linear", "[device]\nodd_write = true\n", "device", "odd_write", ["sinh"]),
    ("odd-write-no-window", TRACE_WOX + "odd_write = true\nwindow = false\n", "device",
     "odd_write", ["window"]),
    ("merge-count-trace", '[events]\nmerge = "count"\n[circuit]\ntopology = "trace"\n',
     "events", "merge", ["trace"]),
    ("unknown-topology", '[circuit]\ntopology = "ring"\n', "circuit", "topology", ["'ring'"]),
    ("unknown-preset", '[device]\npreset = "taox"\n', "device", "preset", ["'taox'"]),
    ("unknown-read-mode", '[read]\nmode = "probe"\n', "read", "mode", ["'probe'"]),
    ("window-not-bool", '[device]\nwindow = "on"\n', "device", "window", ["auto"]),
]


@pytest.mark.parametrize("text, section, key, words", [c[1:] for c in REFUSED],
                         ids=[c[0] for c in REFUSED])
def test_preset_rule_refused_in_one_line(text, section, key, words):
    with pytest.raises(ConfigError) as info:
        _cfg(text)
    msg = str(info.value)
    assert "\n" not in msg, msg
    assert msg.startswith("cfg.toml"), msg
    assert f"[{section}]" in msg and key in msg, msg
    for w in words:
        assert w in msg, (w, msg)


def test_allowed_neighbours_of_the_refusals():
    """The values next to each refusal pass: the rules are not over-broad."""
    _cfg(TRACE_WOX + "v_write = 0.61\neta = 2.0\nvth = 0.5\n")       # wox owns neither eta nor vth
    _cfg(TRACE_WOX + "odd_write = true\n")
    _cfg(TRACE_WOX + 'mode = "sinh"\n')                                # agrees with the preset
    _cfg('[read]\nmode = "pulse"\nv_read = 0.3\n')     # state: the pair reads alike (no check)    _cfg(TRACE_IDEAL + "window = false\n")
    _cfg('[device]\npreset = "ideal"\n')                               # ideal drives the state topology
    _cfg('[device]\nmode = "sinh"\nv_write = 0.1\n')                   # v_write unused by 'state'
    _cfg('[events]\nmerge = "count"\n')
    _cfg("[device]\ndw_pulse = 0.02\n")                               # the default is no contradiction


# ---------------------------------------------------------------- (c) read disturb

def test_default_device_read_pulse_passes_and_v_read_0p3_is_refused():
    cfg = _cfg(TRACE_IDEAL + '[read]\nmode = "pulse"\n')
    law = write_law(cfg.device, cfg.events.t_p)
    # linear write, window off: dw = f(V) t; 0.1 V x 10 us vs 1 V x 100 us is 1 % times the
    # rectifier gates (1 + tanh(5))/2 = 0.99995 over (1 + tanh(50))/2 = 1
    ratio = law.dw_from_zero(0.1, 10e-6) / law.dw_from_zero(1.0, 100e-6)
    assert ratio == pytest.approx(0.01 * (1 + math.tanh(5.0)) / 2, rel=1e-12)
    assert ratio <= READ_DISTURB_MAX
    with pytest.raises(ConfigError, match=r"\[read\] v_read"):
        _cfg(TRACE_IDEAL + '[read]\nmode = "pulse"\nv_read = 0.3\n')
    # node reads write nothing: the same v_read is accepted there
    assert _cfg(TRACE_IDEAL + '[read]\nmode = "node"\nv_read = 0.3\n').read.v_read == 0.3


def test_wox_default_read_writes_nothing_measurable():
    cfg = _cfg(TRACE_WOX + '[read]\nmode = "pulse"\n')
    dw_read = _one_pulse_dw(cfg, cfg.read.v_read, cfg.read.t_read)
    dw_write = _one_pulse_dw(cfg, cfg.device.v_write, cfg.events.t_p)
    assert dw_write == pytest.approx(0.02, abs=1e-6)
    assert 0.0 <= dw_read < 1e-12 * dw_write


# ---------------------------------------------------------------- (d) the odd write branch

@pytest.mark.parametrize("window", [True, False])
@pytest.mark.parametrize("v", [-0.7, -0.55])
def test_odd_branch_closed_form_matches_reference_integrator(v, window):
    p = D.VMemParams(mode="sinh", odd=True, window=window, w0=0.6, w_rest=0.1, tau=5e-3,
                     lam=200.0)
    assert float(D.f_depress(p, v)) < 0 and float(D.f_depress(p, -v)) == pytest.approx(0, abs=1e-9)
    t = np.linspace(0.0, 4e-3, 41)
    ref = D.integrate(p, t, lambda _t: v, breaks=[])
    closed = D.constant_drive(p, v, t)
    # tolerance 1e-6: the reference integrator is accurate to ~1e-9 (its docstring)
    assert np.max(np.abs(closed - ref)) < 1e-6
    assert closed[-1] < p.w_rest - 0.02  # below rest: the drive depresses (relaxation cannot)


def test_odd_branch_is_zero_without_odd_and_window_keeps_w_nonnegative():
    p = D.VMemParams(mode="sinh", window=True, lam=2e4)
    assert np.all(D.f_depress(p, np.array([-2.0, -1.0, 0.0])) == 0.0)
    q = D.VMemParams(mode="sinh", odd=True, window=True, w0=0.5, lam=2e4)
    assert float(D.write_rate(q, -1.0, 0.0)) == pytest.approx(0.0, abs=1e-12)
    assert float(D.constant_drive(q, -1.5, 1.0)) >= 0.0


def test_odd_with_linear_mode_is_refused():
    with pytest.raises(DeviceParamError, match=r"VMemParams\.odd") as info:
        D.VMemParams(mode="linear", odd=True)
    assert "\n" not in str(info.value)
    with pytest.raises(ConfigError, match=r"\[device\] odd_write"):
        _cfg('[device]\nmode = "linear"\nodd_write = true\n')


# ---------------------------------------------------------------- (e) vmem_odd in ngspice

def test_vmem_odd_in_ngspice_matches_closed_form():
    p = D.VMemParams(mode="sinh", odd=True, window=True, w0=0.5, tau=1.0)
    assert p.subckt == "vmem_odd"
    t_stop, step = 100e-6, 0.05e-6
    deck = "\n".join([
        "vmem_odd single device, constant -1 V",
        D.device_lib_text(),
        "V1 a 0 DC -1.0",
        f"X1 a 0 {p.subckt} {p.spice_params()}",
        ".save v(x1.w)",
        ".options reltol=1e-6 method=gear trtol=1",
        f".tran {step:g} {t_stop:g} 0 {step:g}",
        ".end",
    ]) + "\n"
    plot = run_ngspice(deck).plots[-1]
    t, w = plot["time"], plot["v(x1.w)"]
    ref = D.constant_drive(p, -1.0, t)
    change = abs(float(ref[-1]) - p.w0)
    assert change > 0.4                           # fd(-1 V) = -2e5 1/s: w falls 0.5 -> ~0
    # tolerance 1e-3 of the change (brief), over the whole transient (time constant 5 us,
    # resolved by the 0.05 us step) and at the end
    assert abs(float(w[0]) - p.w0) < 1e-9
    assert np.max(np.abs(w - ref)) < 1e-3 * change
    assert abs(float(w[-1]) - float(ref[-1])) < 1e-3 * change


@pytest.mark.parametrize("name", ["trace_wox.toml", "trace_ideal.toml"])
def test_shipped_example_configs_load(name):
    """The README's example configs are valid and say what they claim."""
    cfg = load_config(Path(__file__).resolve().parent.parent / "examples" / name)
    assert cfg.circuit.topology == "trace" and cfg.read.mode == "pulse"
    assert cfg.device.preset == name.split("_")[1].split(".")[0]
