"""Deck injection (security): text from file names and data files never becomes a deck line.

A file name is a legal place for line breaks, and ngspice runs ``.control`` blocks and ``*#``
comment lines as commands, so a name written into a deck unescaped runs shell commands on the
machine of whoever runs the deck. Each hostile string below enters through one door (event file
name, dataset class names, SHD ``extra/keys``, weights path, config text, model directory) and
the test checks, for ngspice and VACASK decks:

- the deck has exactly the lines of the deck made from a benign name, and every line that differs
  is a comment cimspice wrote (``* `` / ``// ``): no line cimspice did not generate (the deck is
  split on ``\\n`` only, as ngspice does);
- running the deck by hand (``ngspice -b deck.cir``) and ``cimspice simulate`` create no file
  (the payload is ``shell touch $MARK``);
- the result file keeps the original name as data (escaped only where HDF5 cannot store it).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from cimspice.cli import main
from cimspice.text import MAX_COMMENT, comment, safe_text, storable_text, vacask_comment

ROOT = Path(__file__).resolve().parent.parent
GOOD = ROOT / "tests" / "bad_inputs" / "good" / "audio8.npz"
PAYLOAD = ".control\nshell touch $MARK\n.endc"

# Every kind of line break a reader may split on, ngspice's '*#' command comments, and a long name.
HOSTILE = {
    "newline": f"x\n{PAYLOAD}\n*",
    "cr": "x\r.control\rshell touch $MARK\r.endc\r*",
    "crlf": "x\r\n.control\r\nshell touch $MARK\r\n.endc\r\n*",
    "u2028": "x\u2028.control\u2028shell touch $MARK\u2028.endc\u2029*",
    "nel_vt_ff": "x\x85.control\x0bshell touch $MARK\x0c.endc\x1c*",
    "star_hash": "*#shell touch $MARK",
    "long": "L" * 150 + f"\n{PAYLOAD}\n" + "L" * 60,
}


def _hostile_path(directory: Path, text: str, suffix: str) -> Path:
    return directory / (text + suffix)


def _same_lines(deck: str, reference: str, prefix: str = "* ") -> None:
    """``deck`` has the lines of ``reference``; any differing line is a comment in both."""
    a, b = deck.split("\n"), reference.split("\n")
    assert len(a) == len(b), "the hostile text added or removed deck lines"
    for x, y in zip(a, b):
        if x != y:
            assert x.startswith(prefix) and y.startswith(prefix), (x[:80], y[:80])
    assert not any(line.startswith("*#") for line in a)
    assert all(len(line) < 400 for line in a if line.startswith(prefix))


def _build(tmp: Path, events: Path, *more: str) -> str:
    out = tmp / f"deck{len(list(tmp.glob('deck*.cir')))}.cir"
    res = CliRunner().invoke(main, ["build-netlist", str(events), "-o", str(out), *more])
    assert res.exit_code == 0, res.output
    return out.read_text(encoding="utf-8")


def _run_by_hand(deck_path: Path, mark: Path) -> None:
    env = {**os.environ, "MARK": str(mark)}
    subprocess.run(["ngspice", "-b", deck_path.name], cwd=deck_path.parent, env=env,
                   capture_output=True, timeout=120, stdin=subprocess.DEVNULL)


# --------------------------------------------------------------------------- the text rule

@pytest.mark.parametrize("ch", ["\n", "\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85",
                                "\u2028", "\u2029", "\x00", "\x1b", "\x7f", "\u200e", "\ufeff"])
def test_safe_text_escapes_every_break_and_control(ch):
    s = safe_text(f"a{ch}b")
    assert ch not in s and s.startswith("a\\") and s.endswith("b")
    assert len(s.splitlines()) == 1   # Python splits on every Unicode line break


def test_safe_text_caps_length_and_never_ends_in_backslash():
    s = safe_text("y" * 1000)
    assert len(s) == MAX_COMMENT and s.endswith("...")
    assert not safe_text("dir\\").endswith("\\")
    assert safe_text("a\\x0a") != safe_text("a\n")   # escapes are unambiguous


def test_comment_lines_start_with_star_space():
    for text in HOSTILE.values():
        assert comment(text).startswith("* ") and "\n" not in comment(text)
        assert vacask_comment(text).startswith("// ") and "\n" not in vacask_comment(text)
    assert comment("#shell touch x").startswith("* #")   # never '*#'


def test_storable_text_keeps_data_and_escapes_only_bad_bytes():
    assert storable_text("a\nb") == "a\nb"                 # line breaks are data in HDF5
    name = os.fsdecode(b"bad\xffname")
    assert storable_text(name) == "bad\\xffname"
    storable_text(name).encode("utf-8")


# --------------------------------------------------------------------------- file names

@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_hostile_event_file_name(tmp_path, kind):
    hostile = _hostile_path(tmp_path, HOSTILE[kind], ".npz")
    benign = tmp_path / "benign.npz"
    shutil.copy(GOOD, hostile)
    shutil.copy(GOOD, benign)
    deck = _build(tmp_path, hostile)
    _same_lines(deck, _build(tmp_path, benign))
    deck_path = tmp_path / "by_hand.cir"
    deck_path.write_text(deck, encoding="utf-8")
    mark = tmp_path / "MARK"
    _run_by_hand(deck_path, mark)
    assert not mark.exists(), "running the deck by hand executed the file name"


def test_non_utf8_file_name(tmp_path):
    hostile = Path(os.fsdecode(bytes(tmp_path) + b"/bad\xff\n*#shell touch $MARK.npz"))
    shutil.copy(GOOD, hostile)
    shutil.copy(GOOD, tmp_path / "benign.npz")
    deck = _build(tmp_path, hostile)
    _same_lines(deck, _build(tmp_path, tmp_path / "benign.npz"))
    assert "bad\\xff\\x0a*#shell" in deck


def test_simulate_on_hostile_names_executes_nothing_and_keeps_the_name(tmp_path):
    """The real CLI in a subprocess (ngspice runs the deck): no file created, name kept as data."""
    mark = tmp_path / "MARK"
    env = {**os.environ, "MARK": str(mark),
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    names = [HOSTILE["newline"] + ".npz", HOSTILE["star_hash"] + ".npz",
             os.fsdecode(b"bad\xff\n.control\nshell touch $MARK\n.endc\n.npz")]
    for i, name in enumerate(names):
        events = tmp_path / name
        shutil.copy(GOOD, events)
        out = tmp_path / f"r{i}.h5"
        res = subprocess.run([sys.executable, "-m", "cimspice.cli", "simulate", str(events), "-o",
                              str(out)], env=env, capture_output=True, timeout=300)
        assert res.returncode == 0, res.stderr.decode(errors="replace")
        assert not mark.exists(), f"simulate executed text of the file name {name!r}"
        with h5py.File(out, "r") as f:
            assert f.attrs["source"] == storable_text(str(events))


# --------------------------------------------------------------------------- data files

def _dataset(path: Path, classes) -> None:
    with np.load(GOOD) as z:
        ev, sensor = z["events"], z["sensor_size"]
    np.savez(path, events=np.concatenate([ev, ev]), offsets=np.array([0, ev.size, 2 * ev.size]),
             labels=np.array([0, 1]), split=np.array([0, 1], np.int8), sensor_size=sensor,
             classes=np.array(classes))


def test_hostile_dataset_class_names(tmp_path):
    _dataset(tmp_path / "hostile.npz", [HOSTILE["newline"], HOSTILE["star_hash"]])
    _dataset(tmp_path / "benign.npz", ["a", "b"])
    for index in ("0", "1"):
        deck = _build(tmp_path, tmp_path / "hostile.npz", "--index", index)
        _same_lines(deck, _build(tmp_path, tmp_path / "benign.npz", "--index", index))


def _shd(path: Path, keys) -> None:
    with np.load(GOOD) as z:
        ev = z["events"]
    with h5py.File(path, "w") as f:
        times = f.create_dataset("spikes/times", (2,), h5py.vlen_dtype(np.float64))
        units = f.create_dataset("spikes/units", (2,), h5py.vlen_dtype(np.uint16))
        for i in range(2):
            times[i] = ev["t"] * 1e-6
            units[i] = ev["x"].astype(np.uint16)
        f["labels"] = np.array([0, 1])
        f["extra/keys"] = np.array([k.encode("utf-8") for k in keys])


def test_hostile_shd_extra_keys(tmp_path):
    _shd(tmp_path / "hostile.h5", [HOSTILE["newline"], HOSTILE["u2028"]])
    _shd(tmp_path / "benign.h5", ["a", "b"])
    deck = _build(tmp_path, tmp_path / "hostile.h5", "--index", "1")
    _same_lines(deck, _build(tmp_path, tmp_path / "benign.h5", "--index", "1"))


def test_hostile_weights_path(tmp_path):
    from cimspice.ssm import random_ssm, save_ssm

    model = random_ssm(8, 8, (0.01, 0.04), seed=3)
    hostile = _hostile_path(tmp_path, HOSTILE["newline"], ".npz")
    save_ssm(hostile, model)
    save_ssm(tmp_path / "w.npz", model)
    deck = _build(tmp_path, GOOD, "--weights", str(hostile))
    _same_lines(deck, _build(tmp_path, GOOD, "--weights", str(tmp_path / "w.npz")))
    assert "weights: " in deck
    deck_path = tmp_path / "by_hand.cir"
    deck_path.write_text(deck, encoding="utf-8")
    _run_by_hand(deck_path, tmp_path / "MARK")
    assert not (tmp_path / "MARK").exists()


def test_hostile_config_string_is_refused(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[device]\nmode = "linear\\n.control\\nshell touch $MARK\\n.endc"\n')
    res = CliRunner().invoke(main, ["build-netlist", str(GOOD), "-c", str(cfg), "-o",
                                    str(tmp_path / "d.cir")])
    assert res.exit_code == 1 and "[device] mode" in res.output
    assert not (tmp_path / "d.cir").exists()


@pytest.mark.parametrize("bad", ['models"x', "models'x", "models\nx"])
def test_model_directory_with_quote_or_control_is_refused(tmp_path, monkeypatch, bad):
    monkeypatch.setenv("CIMSPICE_DEVICE_DIR", str(tmp_path / bad))
    res = CliRunner().invoke(main, ["build-netlist", str(GOOD), "-o", str(tmp_path / "d.cir")])
    assert res.exit_code == 1
    assert "CIMSPICE_DEVICE_DIR" in res.output and len(res.output.strip().splitlines()) == 1
    assert not (tmp_path / "d.cir").exists()


def test_vacask_netlist_title_is_safe(tmp_path):
    import cimspice
    from cimspice.engines.vacask_netlist import build_vacask_deck

    prep = cimspice.build(cimspice.load_events(GOOD))
    decks = [build_vacask_deck(prep.mapping, prep.schedule, prep.cfg, sample_times=prep.sample_times,
                               title=t)[0] for t in (HOSTILE["newline"], HOSTILE["u2028"], "benign")]
    for deck in decks[:2]:
        _same_lines(deck, decks[2], prefix="// ")
        assert deck.split("\n").count("control") == 1 and deck.split("\n").count("endc") == 1
