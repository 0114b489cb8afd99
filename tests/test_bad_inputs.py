"""Bad-input corpus through the real CLI (issue 7 item 3, issue 5 "Bad input").

Each case runs ``python -m cimspice.cli ...`` in a subprocess (the real stderr and exit code)
and must: exit != 0, print exactly one line on stderr that names the file and the field, print
no traceback, and leave nothing (no result, no temp file) in the output directory.

The committed files and what each must say are listed in ``tests/bad_inputs/cases.toml``
(files made by ``tests/bad_inputs/make_corpus.py``). The wording of the event-file messages is
pinned in-process by ``tests/test_events.py::test_malformed_file_gives_one_error_line``; here
the subject is the command-line contract. Cases that need the file system at test time
(a directory named like a file, unwritable outputs, modified device models, no ngspice on
PATH) are in ``SPECIAL`` below.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import h5py
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
CORPUS = Path(__file__).resolve().parent / "bad_inputs"
GOOD = "good/audio8.npz"
OUT_CMDS = ("simulate", "build-netlist")


def _manifest() -> list[dict]:
    cases = tomllib.loads((CORPUS / "cases.toml").read_text(encoding="utf-8"))["case"]
    for c in cases:
        c.setdefault("events", GOOD)
        bad = c.get("config") or c.get("weights") or c["events"]
        c.setdefault("names", Path(bad).name)
    return cases


# --------------------------------------------------------------------------- test-time cases
# Each setup(tmp, out) returns (arguments after the command, environment changes or None);
# `out` is the output directory that must stay empty.

def _directory_as_file(tmp, out):
    d = tmp / "x.npz"
    d.mkdir()
    return [str(d)], None


def _missing_file(tmp, out):
    return [str(tmp / "nope.csv")], None


def _output_dir_missing(tmp, out):
    return [GOOD, "-o", str(out / "no_such_dir" / "r.h5")], None


def _output_parent_is_file(tmp, out):
    blocker = tmp / "blocker.txt"
    blocker.write_text("a file, not a directory\n")
    return [GOOD, "-o", str(blocker / "r.h5")], None


def _output_is_directory(tmp, out):
    return [GOOD, "-o", str(out)], None


def _read_only_dir(tmp) -> Path:
    if os.geteuid() == 0:   # root ignores permission bits; /proc refuses new files even to root
        return Path("/proc")
    ro = tmp / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    return ro


def _output_read_only(tmp, out):
    return [GOOD, "-o", str(_read_only_dir(tmp) / "r.h5")], None


def _deck_dir_missing(tmp, out):
    return [GOOD, "-o", str(out / "r.h5"), "--deck", str(out / "no_such_dir" / "d.cir")], None


def _device_dir(tmp, broken: str | None):
    """A copy of device_models/ with vmem.lib replaced by a corpus file (or removed)."""
    d = tmp / "device_models"
    shutil.copytree(ROOT / "device_models", d)
    if broken is None:
        (d / "vmem.lib").unlink()
    else:
        shutil.copyfile(CORPUS / "device" / broken / "vmem.lib", d / "vmem.lib")
    return {"CIMSPICE_DEVICE_DIR": str(d)}


def _device_unclosed_paren(tmp, out):
    return [GOOD, "-o", str(out / "r.h5")], _device_dir(tmp, "unclosed_paren")


def _device_unclosed_brace(tmp, out):
    return [GOOD, "-o", str(out / "r.h5")], _device_dir(tmp, "unclosed_brace")


def _device_file_missing(tmp, out):
    return [GOOD, "-o", str(out / "d.cir")], _device_dir(tmp, None)


def _shd_file(path: Path, n: int, channels: int, n_labels: int | None = None) -> str:
    """A small SHD/SSC-layout dataset file (ragged spikes/times in s, spikes/units, labels)."""
    with h5py.File(path, "w") as f:
        times = f.create_dataset("spikes/times", (n,), h5py.vlen_dtype(np.float32))
        units = f.create_dataset("spikes/units", (n,), h5py.vlen_dtype(np.uint16))
        for i in range(n):
            times[i] = np.linspace(0.001, 0.02, 5, dtype=np.float32)
            units[i] = (np.arange(5) + i) % channels
        f["labels"] = np.arange(n if n_labels is None else n_labels) % 2
        f.attrs["sensor_size"] = np.array([channels, 1, 1])
    return str(path)


def _shd_labels_mismatch(tmp, out):
    return ["--dataset", _shd_file(tmp / "labels.h5", 8, 8, n_labels=7), "--engine", "twin",
            "-o", str(out / "run")], None


def _shd_sensor_mismatch(tmp, out):
    return ["--dataset", _shd_file(tmp / "train.h5", 8, 8), "--test-dataset",
            _shd_file(tmp / "wide.h5", 4, 16), "--engine", "twin", "-o", str(out / "run")], None


def _sweep_case(*args):
    """setup of a `sweep` case: a small twin sweep with ``args`` into ``out/run``."""
    return lambda tmp, out: (["--dataset", "audio-chirps", "--n", "16", "--engine", "twin", *args,
                              "-o", str(out / "run")], None)


def _no_ngspice(tmp, out):
    empty = tmp / "empty_path"
    empty.mkdir()
    return [GOOD, "-o", str(out / "r.h5")], {"PATH": str(empty)}


SPECIAL = [
    # id, command, setup, names, expect
    ("directory-named-like-a-file", "events info", _directory_as_file, "x.npz",
     ["is a directory"]),
    ("missing-file", "events info", _missing_file, "nope.csv", ["no such file"]),
    ("output-dir-missing", "simulate", _output_dir_missing, "r.h5", ["no_such_dir", "does not exist", "-o"]),
    ("output-parent-is-a-file", "simulate", _output_parent_is_file, "r.h5",
     ["blocker.txt", "does not exist", "-o"]),
    ("output-is-a-directory", "simulate", _output_is_directory, "out", ["is a directory", "-o"]),
    ("output-read-only", "simulate", _output_read_only, "r.h5", ["-o"]),
    ("deck-dir-missing", "simulate", _deck_dir_missing, "d.cir", ["no_such_dir", "does not exist"]),
    # ngspice's own rejection of a broken device model: the line names the deck and the element
    ("device-model-unclosed-paren", "simulate", _device_unclosed_paren, "deck.cir",
     ["ngspice rejected the deck", "xs0p.br"]),
    ("device-model-unclosed-brace", "simulate", _device_unclosed_brace, "deck.cir",
     ["ngspice rejected the deck", 'Closing "}" not found']),
    ("device-model-file-missing", "build-netlist", _device_file_missing, "vmem.lib",
     ["device model file", "CIMSPICE_DEVICE_DIR"]),
    ("ngspice-not-on-path", "simulate", _no_ngspice, "ngspice", ["not found on PATH"]),
    # SHD/SSC-layout HDF5 datasets of `evaluate`: refused before the run directory is made
    ("shd-labels-count-mismatch", "evaluate", _shd_labels_mismatch, "labels.h5",
     ["field 'labels'", "7 values", "8 samples"]),
    ("shd-train-test-sensor-mismatch", "evaluate", _shd_sensor_mismatch, "wide.h5",
     ["sensor size (16, 1, 1)", "(8, 1, 1)", "train.h5"]),
    # `sweep` checks its grid, every point's config and the scheduler before the run directory
    *[(f"sweep-{cid}", "sweep", _sweep_case(*args), names, expect) for cid, args, names, expect in (
        ("set-unknown-key", ["--set", "variation.foo=1"], "--set variation.foo=1",
         ["unknown key 'foo'", "known keys: tau_sigma"]),
        ("set-not-a-list", ["--set", "foo"], "--set foo", ["section.key=v1,v2"]),
        ("set-unparsable-value", ["--set", "variation.tau_sigma=0,abc"], "--set variation.tau_sigma",
         ["'abc' is not a number"]),
        ("set-negative-sigma", ["--set", "variation.tau_sigma=-0.1"], "--set variation.tau_sigma=-0.1",
         ["[variation] tau_sigma", ">= 0"]),
        ("set-adc-bits-25", ["--set", "variation.adc_bits=25"], "--set variation.adc_bits=25",
         ["adc_bits", "0..24"]),
        ("unreachable-scheduler", ["--set", "circuit.levels=0,4", "--scheduler", "tcp://127.0.0.1:1"],
         "--scheduler tcp://127.0.0.1:1", ["cannot connect within"]))],
    # `datasets make` refuses a bad request before generating anything
    ("datasets-make-unknown-name", "datasets make",
     lambda t, o: (["no-such-set", "-o", str(o / "d.npz")], None), "no-such-set",
     ["unknown dataset"]),
    ("datasets-make-output-is-a-directory", "datasets make",
     lambda t, o: (["audio-chirps", "-o", _directory_as_file(t, o)[0][0]], None), "x.npz",
     ["is a directory"]),
    ("datasets-make-output-dir-missing", "datasets make",
     lambda t, o: (["audio-chirps", "-o", str(o / "no_such_dir" / "d.npz")], None), "d.npz",
     ["does not exist"]),
    ("datasets-make-output-read-only", "datasets make",
     lambda t, o: (["audio-chirps", "-o", str(_read_only_dir(t) / "d.npz")], None), "d.npz",
     ["cannot create a file"]),
]


CASES = {c["id"]: ("toml", c) for c in _manifest()} | {s[0]: ("special", s) for s in SPECIAL}
TEST_NAME = "test_bad_input_is_refused_in_one_line"


def _prepare(kind, spec, tmp: Path):
    """(argv, env, names, expect, out_dir) of one case; test-time files go under ``tmp``."""
    out = tmp / "out"
    out.mkdir()
    scratch = tmp / "scratch"   # TMPDIR: ngspice work dirs (a failed deck is kept there)
    scratch.mkdir()
    env = {**os.environ, "TMPDIR": str(scratch),
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    env.pop("CIMSPICE_DEVICE_DIR", None)
    if kind == "toml":
        cmd, names, expect = spec["cmd"], spec["names"], spec["expect"]
        argv = [spec["events"], *spec.get("args", [])]
        if "config" in spec:
            argv += ["--config", spec["config"]]
        if "weights" in spec:
            argv += ["--weights", spec["weights"]]
        if cmd in OUT_CMDS:
            argv += ["-o", str(out / ("r.h5" if cmd == "simulate" else "deck.cir"))]
    else:
        _, cmd, setup, names, expect = spec
        argv, extra_env = setup(tmp, out)
        env.update(extra_env or {})
    argv = [sys.executable, "-m", "cimspice.cli", *cmd.split(), *argv]
    return argv, env, names, expect, out


def _run(argv, env):
    return subprocess.run(argv, cwd=CORPUS, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def corpus_runs(request, tmp_path_factory):
    """Start every selected case at once (4 at a time): each run is mostly interpreter and
    NumPy start-up, so running them side by side keeps the file fast on 2 cores."""
    ids = [item.callspec.params["case_id"] for item in request.session.items
           if getattr(item, "originalname", None) == TEST_NAME and hasattr(item, "callspec")]
    runs = {}
    with ThreadPoolExecutor(max_workers=4) as pool:
        for cid in dict.fromkeys(ids):
            kind, spec = CASES[cid]
            argv, env, names, expect, out = _prepare(kind, spec, tmp_path_factory.mktemp(cid))
            runs[cid] = (pool.submit(_run, argv, env), names, expect, out)
        yield runs


def test_manifest_covers_every_corpus_file():
    """Every committed bad file has a case, and every case's files exist."""
    used = set()
    for c in _manifest():
        for key in ("events", "config", "weights"):
            if key in c:
                assert (CORPUS / c[key]).is_file(), c[key]
                used.add(c[key])
    used |= {f"device/{d}/vmem.lib" for d in ("unclosed_paren", "unclosed_brace")}
    files = {p.relative_to(CORPUS).as_posix() for p in CORPUS.rglob("*")
             if p.is_file() and p.parent != CORPUS and "__pycache__" not in p.parts}
    assert files - used == set()
    event_cases = [c for c in _manifest() if c["events"] != GOOD]
    assert len(event_cases) + 2 >= 25                # + a directory and a missing file
    assert len(_manifest()) - len(event_cases) >= 10  # configurations and weights


@pytest.mark.parametrize("case_id", list(CASES))
def test_bad_input_is_refused_in_one_line(case_id, corpus_runs):
    future, names, expect, out = corpus_runs[case_id]
    res = future.result()

    both = res.stdout + res.stderr
    assert "Traceback" not in both, both
    assert res.returncode != 0, both
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    line = lines[0]
    assert line.startswith("error: ") and len(line) > len("error: "), line
    assert names in line, line
    for needle in expect:
        assert needle in line, (needle, line)
    assert res.stdout.strip() == "", res.stdout
    assert sorted(p.name for p in out.iterdir()) == [], "output left behind"


def test_stream_emptied_by_filtering_is_one_line():
    """No CLI input reaches this check (a file with no events is refused when read, and the
    refractory filter keeps each channel's first event), so it is tested through the API."""
    import numpy as np

    from cimspice.config import load_config
    from cimspice.errors import CimspiceError
    from cimspice.events import AUDIO_DTYPE, EventSample
    from cimspice.schedule import schedule_sample

    empty = EventSample(np.zeros(0, AUDIO_DTYPE), (8, 1, 1), source="filtered.npz")
    with pytest.raises(CimspiceError) as info:
        schedule_sample(empty, load_config(None))
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith("filtered.npz: field 't'") and "no events" in msg
