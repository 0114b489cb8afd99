"""Issue 5: the SSM layer as a circuit, against independent answers (real ngspice)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import root

from cimspice import pipeline as sim
from cimspice.config import load_config
from cimspice.datasets import audio_stream
from cimspice.engines import ngspice
from cimspice.engines.netlist import build_dc_deck
from cimspice.hardware.mapping import map_ssm
from cimspice.schedule import make_schedule
from cimspice.ssm import random_ssm


# ---------------------------------------------------------------------------------------------
# DC: the crossbar vs an independent nodal solve (KCL, wire resistance, level-1 transistor)
# ---------------------------------------------------------------------------------------------

def _level1(vgs, vds, beta, vto, lam):
    """Shichman-Hodges drain current for vds >= 0 (written here, independent of cimspice)."""
    vov = vgs - vto
    if vov <= 0:
        return 0.0
    if vds < vov:
        return beta * vds * (vov - vds / 2) * (1 + lam * vds)
    return beta / 2 * vov ** 2 * (1 + lam * vds)


def _nodal_column_currents(g_plus, g_minus, v_rows, r_wire, vg, beta, vto, lam):
    """Column currents (2N,) of the 1T1R array by solving KCL at every internal node."""
    n_in, n_st = g_plus.shape
    cols = [(n, s) for n in range(n_st) for s in "pm"]
    g = {(n, "p"): g_plus[:, n] for n in range(n_st)} | {(n, "m"): g_minus[:, n] for n in range(n_st)}
    names = []
    for r in range(n_in):
        names += [("row", r, k) for k in range(len(cols))]
    for k in range(len(cols)):
        names += [("col", r, k) for r in range(n_in)]
    names += [("mid", r, k) for r in range(n_in) for k in range(len(cols))]
    idx = {nm: i for i, nm in enumerate(names)}
    gw = 1.0 / r_wire

    def col_v(x, r, k):  # column node below cell r; the node after the last cell is the 0 V sense
        return 0.0 if r == n_in else x[idx[("col", r, k)]]

    def kcl(x):
        f = np.zeros(len(names))
        for r in range(n_in):
            for k, key in enumerate(cols):
                vr = x[idx[("row", r, k)]]
                vprev = v_rows[r] if k == 0 else x[idx[("row", r, k - 1)]]
                vnext = None if k == len(cols) - 1 else x[idx[("row", r, k + 1)]]
                vm = x[idx[("mid", r, k)]]
                vc = x[idx[("col", r, k)]]
                i_rram = g[key][r] * (vr - vm)
                i_mos = _level1(vg - vc, vm - vc, beta, vto, lam)
                # row node: in from the previous segment, out to the next segment and the cell
                f[idx[("row", r, k)]] = gw * (vprev - vr) - i_rram - (0 if vnext is None else gw * (vr - vnext))
                f[idx[("mid", r, k)]] = i_rram - i_mos
                f[idx[("col", r, k)]] = i_mos + gw * (col_v(x, r - 1, k) - vc if r > 0 else 0.0) \
                    - gw * (vc - col_v(x, r + 1, k))
        return f

    x0 = np.concatenate([np.repeat(v_rows, len(cols)), np.zeros(n_in * len(cols)),
                         np.repeat(v_rows, len(cols)) * 0.9])
    sol = root(kcl, x0, method="hybr", tol=1e-15)
    assert np.max(np.abs(kcl(sol.x))) < 1e-15  # KCL residual, A: far below the 1e-6 check
    return np.array([gw * (col_v(sol.x, n_in - 1, k) - 0.0) for k in range(len(cols))])


def _small_mapping(cfg, n_in=4, n_st=3, seed=1):
    model = random_ssm(n_in, n_st, (0.01, 0.04), seed=seed)
    sch = make_schedule(np.array([0, 100, 2000, 5000]), np.arange(4) % n_in, n_in)
    return model, map_ssm(model, cfg, [sch])


def test_dc_crossbar_matches_independent_nodal_solve():
    from cimspice.hardware.cells import NMOSParams

    cfg = load_config(None).replace(circuit={"r_wire": 20.0, "access": "nmos"})
    _, mp = _small_mapping(cfg)
    v_rows = np.array([0.2, 0.15, 0.05, 0.2])
    run = ngspice.run_ngspice(build_dc_deck(mp, cfg, v_rows))
    data = run.plots[-1].data
    # ngspice's branch current flows into the source's + node (the column): the column current
    sp = np.array([data[f"i(vsense{n}{s})"][0] for n in range(mp.n_states) for s in "pm"])
    nm = NMOSParams()
    ref = _nodal_column_currents(mp.g_rram_plus, mp.g_rram_minus, v_rows, cfg.circuit.r_wire,
                                 cfg.circuit.v_gate, nm.kp * nm.w / nm.l, nm.vto, nm.lambda_)
    # 1e-6 relative: ngspice runs this deck at reltol=1e-10; junction leakage < 1e-13 A.
    np.testing.assert_allclose(sp, ref, rtol=1e-6)
    # the wires and transistors matter: an ideal crossbar would differ by far more than 1e-6
    ideal = np.array([v_rows @ (mp.g_plus if s == "p" else mp.g_minus)[:, n]
                      for n in range(mp.n_states) for s in "pm"])
    assert np.max(np.abs(sp / ideal - 1)) > 1e-4


# ---------------------------------------------------------------------------------------------
# Transient: states vs the ideal pulse SSM
# ---------------------------------------------------------------------------------------------

def _audio_sample(n_ch=8, n_events=60, seed=3, duration_us=80_000, simultaneous=8):
    """Seeded audio stream with a burst of simultaneous events on ``simultaneous`` rows."""
    return audio_stream(n_ch, n_events - simultaneous, duration_us, seed, burst=simultaneous,
                        label=0, source="synthetic")


IDEAL_PARTS = {
    "circuit": {"r_wire": 0.0, "access": "nmos", "v_gate": 5.0},   # transistor deep in triode
    "device": {"mode": "linear", "window": False},
    "ssm": {"n_states": 8, "taus": [0.01, 0.03]},
    "sim": {"reltol": 1e-6},
}


def test_linear_ideal_parts_match_pulse_ssm():
    sample = _audio_sample()
    cfg = load_config(None).replace(**IDEAL_PARTS)
    prep = sim.build(sample, cfg)
    sch = prep.schedule
    assert sch.n_rows == 8 and sch.n_pulses >= 50
    starts, counts = np.unique(sch.t_on, return_counts=True)
    assert counts.max() >= 8  # simultaneous pulses on different rows are in the stream
    res = sim.simulate(prep)
    # reltol=1e-6 gives NRMSE ~1e-4 (docs/design.md, "Validation", tier 4); the issue asks <= 1e-3.
    assert res.nrmse <= 1e-3, res.nrmse
    assert np.abs(res.ideal).max() > 0.1  # the states were really driven


def test_shared_decays_after_last_event():
    sample = _audio_sample(n_events=30, duration_us=20_000, simultaneous=4)
    cfg = load_config(None).replace(**{**IDEAL_PARTS, "ssm": {"n_states": 6, "taus": [0.004, 0.012, 0.03]},
                                         "events": {"t_end_us": 60_000}})
    prep = sim.build(sample, cfg)
    res = sim.simulate(prep, keep_waveforms=True)
    t = res.waveforms["time"]
    dw = res.waveforms["w_plus"] - res.waveforms["w_minus"]
    last = float(np.max(prep.schedule.t_on + prep.schedule.width)) + prep.schedule.t_rise
    tail = t > last + 1e-4
    groups = np.asarray(prep.model.groups)
    for n in range(dw.shape[1]):
        y = dw[tail, n]
        keep = np.abs(y) > 1e-3 * np.abs(y).max()
        slope = np.polyfit(t[tail][keep], np.log(np.abs(y[keep])), 1)[0]
        tau_fit = -1.0 / slope
        tau_group = prep.model.taus[groups[n]]
        # 1 %: the decay between events is the device's exact exponential; reltol=1e-6
        assert abs(tau_fit / tau_group - 1) < 0.01, (n, tau_fit, tau_group)
    assert len(set(groups.tolist())) == 3


def test_build_netlist_deck_runs_by_hand(tmp_path):
    from click.testing import CliRunner

    from cimspice.cli import main
    from cimspice.engines.raw import read_raw
    from cimspice.io.event_files import save_events

    sample = _audio_sample(n_events=40)
    ev_file = tmp_path / "ev.npz"
    save_events(ev_file, sample)
    cfg_file = tmp_path / "c.toml"
    cfg_file.write_text("[ssm]\nn_states = 4\n[circuit]\naccess = 'none'\n")
    deck = tmp_path / "deck.cir"
    r = CliRunner().invoke(main, ["build-netlist", str(ev_file), "-c", str(cfg_file), "-o", str(deck)])
    assert r.exit_code == 0, r.output
    # run by hand from another directory: the deck must be self-contained
    other = tmp_path / "elsewhere"
    other.mkdir()
    subprocess.run(["ngspice", "-b", "-r", "hand.raw", str(deck)], cwd=other, check=True,
                   capture_output=True, timeout=300)
    hand = read_raw(other / "hand.raw")[-1].data
    cfg = load_config(cfg_file)
    prep = sim.build(sample, cfg)
    res = sim.simulate(prep)
    wp = np.stack([np.interp(prep.sample_times, hand["time"], hand[n]) for n in prep.deck_info.w_plus], -1)
    wm = np.stack([np.interp(prep.sample_times, hand["time"], hand[n]) for n in prep.deck_info.w_minus], -1)
    # same deck text apart from the time stamp, same simulator: identical to rounding
    np.testing.assert_allclose(wp, res.w_plus, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(wm, res.w_minus, rtol=1e-9, atol=1e-12)


def test_default_configuration_on_a_builtin_dataset_sample(tmp_path):
    """The realistic default (1T1R with level-1 access at 1.8 V, linear state devices) on a
    dvs-bars sample, through the CLI exactly as a user runs it."""
    from click.testing import CliRunner

    from cimspice import datasets
    from cimspice.cli import main
    from cimspice.io.results import read_result

    data = tmp_path / "bars.npz"
    datasets.save_dataset(data, datasets.make_dataset("dvs-bars", 8, seed=0))
    out = tmp_path / "r.h5"
    r = CliRunner().invoke(main, ["simulate", str(data), "--index", "0", "-o", str(out)])
    assert r.exit_code == 0, r.output
    res = read_result(out)
    err = np.sqrt(np.mean((res.circuit - res.ideal) ** 2)) / np.sqrt(np.mean(res.ideal ** 2))
    # issue 5 asks <= 2 %; measured ~1e-4 (the transistor's non-linearity shows only on the
    # 1 µs pulse edges, the cells are programmed for their target current at V_in)
    assert err <= 0.02, err
    assert res.metrics["state_nrmse"] == pytest.approx(err, rel=1e-9)
    assert "state NRMSE" in r.output and res.circuit.shape == res.ideal.shape


GOOD_SAMPLE = Path(__file__).resolve().parent / "bad_inputs" / "good" / "audio8.npz"


def test_deck_header_states_the_realised_taus_and_b(tmp_path):
    """A deck built with --weights states the weights' taus and B (what the conductances
    realise), not the [ssm] taus of the config."""
    from click.testing import CliRunner

    from cimspice.cli import main
    from cimspice.ssm import SSMParams, save_ssm

    rng = np.random.default_rng(5)
    B = rng.normal(size=(4, 8))
    save_ssm(tmp_path / "w.npz", SSMParams(B=B, taus=np.array([0.005, 0.02]),
                                           groups=np.array([0, 0, 1, 1])))
    out = tmp_path / "d.cir"
    res = CliRunner().invoke(main, ["build-netlist", str(GOOD_SAMPLE), "--weights",
                                    str(tmp_path / "w.npz"), "-o", str(out)])
    assert res.exit_code == 0, res.output
    deck = out.read_text()
    assert "* weights: " in deck
    assert "*   tau per state (s): 0.005, 0.005, 0.02, 0.02" in deck
    rows = [ln for ln in deck.splitlines() if ln.startswith("*     state 0 inputs 0..7:")]
    assert len(rows) == 1
    realised = np.array([float(v) for v in rows[0].split(":")[1].split()])
    # B rescaled by the conductance mapping only (analog levels): realised == B to 5 digits
    np.testing.assert_allclose(realised, B[0], rtol=1e-4, atol=1e-4 * np.abs(B).max())
