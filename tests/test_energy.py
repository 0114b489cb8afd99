"""Energy and latency per event (docs/design.md "Energy and latency"), against the real ngspice.

Targets (the energy issue):
- resistive crossbar (access = "none", r_wire = 0, 'state'): ngspice's ``crossbar_J`` equals the
  hand sum below within 1 % (measured 0.02 %: ngspice's step error on the 1 us edges); the
  twin equals it to rounding;
- twin vs ngspice within 2 % per component (measured: <= 0.03 % on the write and crossbar
  energies of 'state'; up to 1.1 % on the trace crossbar and 0.7 % on read energies, whose
  power is a quadratic-to-quartic function of time on the 1 us read edges where ngspice takes
  one or two steps: with maxstep 0.1 us ngspice moves to within 0.2 % of the twin);
- the integrators do not change what ngspice computes (same time points, states equal).

The hand sum. A row at constant V into cells of conductances G draws V * sum G, so a pulse
delivers int V(t)^2 dt * sum_row G. A trapezoid of level v, width W (area W v) and linear
edges of t_rise: the flat top lasts W - t_rise and each edge gives int_0^t_rise (v t/t_rise)^2
dt = v^2 t_rise / 3, hence int V^2 = v^2 (W - t_rise + 2 t_rise/3) = v^2 (W - t_rise/3), and

    crossbar_J = sum_pulses (u V_in)^2 (W - t_rise/3) sum_row G.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import h5py
import numpy as np
import pytest

import cimspice
from cimspice.config import Config
from cimspice.datasets import make_dataset, save_dataset
from cimspice.energy import NAMES, digital_baseline, energy_figures, latency_s
from cimspice.engines.base import sample_plot
from cimspice.engines.ngspice import run_ngspice, saved_names
from cimspice.errors import ConfigError
from cimspice.experiments.report import energy_report
from cimspice.experiments.tasks import SampleRecord

from cli_helpers import cli, first_events

COMPONENTS = ("crossbar_J", "write_J", "read_J")
TRACE = {"circuit": {"topology": "trace"}, "read": {"mode": "pulse"}}


@pytest.fixture(scope="module")
def bars(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("energy") / "bars.npz"
    save_dataset(path, make_dataset("dvs-bars", 3, 0))
    return path




def hand_sum(prep) -> float:
    sch, m = prep.schedule, prep.mapping
    g_row = (m.g_rram_plus + m.g_rram_minus).sum(axis=1)                  # (C_in,) S
    v = sch.amplitude * m.v_in
    return float(np.sum(v ** 2 * (sch.width - sch.t_rise / 3) * g_row[sch.row]))


@pytest.mark.parametrize("merge", ["extend", "count"])
def test_resistive_crossbar_energy_is_the_hand_sum(bars, merge):
    """'extend' varies the widths, 'count' the amplitudes u."""
    cfg = Config().replace(circuit={"access": "none"}, events={"merge": merge})
    prep = cimspice.build(first_events(bars), cfg)
    if merge == "count":
        assert prep.schedule.amplitude.max() > 1
    want = hand_sum(prep)
    ng = cimspice.simulate(prep)
    assert ng.energy["crossbar_J"] == pytest.approx(want, rel=1e-2)
    tw = cimspice.simulate(prep, engine="twin")
    assert tw.energy["crossbar_J"] == pytest.approx(want, rel=1e-12)


COMBOS = [
    ("state-node", {}),
    ("state-pulse", {"read": {"mode": "pulse"}}),
    ("trace-ideal", {**TRACE, "device": {"preset": "ideal"}}),
    ("trace-wox", {**TRACE, "device": {"preset": "wox"}}),
]


@pytest.mark.parametrize("name, sections", COMBOS, ids=[c[0] for c in COMBOS])
@pytest.mark.parametrize("index", [0, 1])
def test_twin_energy_matches_ngspice(bars, name, sections, index):
    cfg = Config().replace(**sections)
    prep = cimspice.build(first_events(bars, index), cfg)
    ng = cimspice.simulate(prep).energy
    tw = cimspice.simulate(prep, engine="twin").energy
    for k in COMPONENTS:
        if ng[k] == 0:
            assert tw[k] == 0, (name, k)
        else:
            assert tw[k] == pytest.approx(ng[k], rel=2e-2), (name, k, ng[k], tw[k])
    assert ng["crossbar_J"] > 0 and ng["write_J"] > 0
    assert (ng["read_J"] > 0) == (cfg.read.mode == "pulse")


@pytest.mark.parametrize("name, sections", [COMBOS[1], COMBOS[3]], ids=["state-pulse", "trace-wox"])
def test_integrators_do_not_move_ngspice(bars, name, sections):
    """Same time points (to the last bits) and states with and without accounting (the
    integrator's capacitor current stays far below abstol: it never limits a step)."""
    cfg = Config().replace(**sections)
    on = cimspice.build(first_events(bars), cfg)
    off = dataclasses.replace(on, cfg=cfg.replace(energy={"accounting": False}))
    assert "e_xbar" in on.deck and "e_xbar" not in off.deck and not off.deck_info.energy
    runs = []
    for prep in (on, off):
        plot = run_ngspice(prep.deck, names=saved_names(prep.deck_info)).plot("tran")
        got = sample_plot(plot, prep.deck_info, prep.sample_times, prep.mapping)
        runs.append((plot["time"], got["sensed"] if got["sensed"] is not None
                     else got["w_plus"] - got["w_minus"], got["energy"]))
    assert runs[0][0].shape == runs[1][0].shape           # the same steps (to rounding)
    np.testing.assert_allclose(runs[0][0], runs[1][0], rtol=1e-12, atol=0)
    np.testing.assert_allclose(runs[0][1], runs[1][1], rtol=0, atol=1e-12 * np.abs(runs[1][1]).max())
    assert runs[1][2] is None and runs[0][2]["write_J"] > 0


def test_figures_adc_latency_and_per_event():
    cfg = Config().replace(energy={"adc_per_read_J": 2e-12})
    comp = {"crossbar_J": 3e-7, "write_J": 1e-7, "read_J": 0.0}
    f = energy_figures(comp, cfg=cfg, n_events=400, n_pulses=100, n_reads=10, n_states=8)
    assert f["adc_J"] == pytest.approx(10 * 8 * 2e-12)
    assert f["total_J"] == pytest.approx(4e-7 + 1.6e-10)
    assert f["per_event_J"] == pytest.approx(f["total_J"] / 400)
    assert f["per_pulse_J"] == pytest.approx(f["total_J"] / 100)
    assert f["per_inference_J"] == f["total_J"]
    assert set(NAMES) <= set(f)
    # state: the reads plus the write pulse; trace: the reads
    assert latency_s(cfg, 10) == pytest.approx(10 * 10e-6 + 100e-6)
    trace = Config().replace(circuit={"topology": "trace"}, device={"preset": "ideal"})
    assert latency_s(trace, 10) == pytest.approx(100e-6)


def test_digital_baseline_counts():
    """8 states, 2 groups: 8 MACs and 2 + 1 + 2 SRAM words (int8) per event."""
    d = digital_baseline(8, 2, precision="int8", n_events=100, n_reads=10)
    assert d["per_event_J"] == pytest.approx((8 * 0.23 + 5 * 10) * 1e-12)
    assert d["per_inference_J"] == pytest.approx(100 * d["per_event_J"] + 10 * 10e-12)
    d32 = digital_baseline(8, 2, precision="fp32")
    assert d32["per_event_J"] == pytest.approx((8 * 4.6 + (2 + 4 + 8) * 10) * 1e-12)
    with pytest.raises(ValueError):
        digital_baseline(8, 2, precision="int4")


def test_config_refuses_negative_adc_energy():
    with pytest.raises(ConfigError, match=r"\[energy\] adc_per_read_J"):
        Config().replace(energy={"adc_per_read_J": -1e-12})


def test_simulate_prints_energy_and_writes_the_energy_group(bars, tmp_path):
    out = tmp_path / "r.h5"
    res = cli("simulate", bars, "--index", "0", "-o", out)
    assert res.exit_code == 0, res.output
    assert "per event" in res.output and "per inference" in res.output and "latency" in res.output
    with h5py.File(out) as f:
        assert set(NAMES) <= set(f["energy"])
        e = {k: f["energy"][k][()] for k in f["energy"]}
        assert f["energy"].attrs["engine"] == "ngspice"
    assert e["total_J"] == pytest.approx(e["crossbar_J"] + e["write_J"] + e["read_J"] + e["adc_J"])
    assert e["per_event_J"] == pytest.approx(e["total_J"] / e["n_events"])
    # the twin writes the same group; accounting off writes none
    cfg = tmp_path / "off.toml"
    cfg.write_text("[energy]\naccounting = false\n")
    res = cli("simulate", bars, "--index", "0", "--engine", "twin", "-c", cfg, "-o", tmp_path / "t.h5")
    assert res.exit_code == 0 and "energy        n/a" in res.output
    with h5py.File(tmp_path / "t.h5") as f:
        assert "energy" not in f


def test_report_has_per_sample_and_mean_energy():
    def rec(key, e):
        return SampleRecord(key=key, split="test", index=0, label=0, ideal=None, circuit=None,
                            software=None, nrmse=0.0, engine_time_s=0.0, error="", simulated=True,
                            config_digest="", ngspice_version="", energy=e)
    cfg = Config()
    a = energy_figures({"crossbar_J": 1e-6, "write_J": 1e-7}, cfg=cfg, n_events=100, n_pulses=50,
                       n_reads=10, n_states=8)
    b = energy_figures({"crossbar_J": 3e-6, "write_J": 1e-7}, cfg=cfg, n_events=100, n_pulses=50,
                       n_reads=10, n_states=8)
    rep = energy_report([rec("s0", a), rec("s1", b), rec("s2", None)])
    assert rep["n"] == 2 and set(rep["per_sample"]) == {"s0", "s1"}
    assert rep["mean"]["per_inference_J"] == pytest.approx(2.1e-6)
    assert rep["min_per_event_J"] == pytest.approx(1.1e-8) and math.isclose(rep["max_per_event_J"], 3.1e-8)
    assert energy_report([rec("s2", None)]) is None
