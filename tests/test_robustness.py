"""Determinism and robustness of `cimspice simulate` (issue 7 item 4), through the real CLI.

- the same input and seed give bit-identical HDF5 datasets;
- an ngspice run killed by the timeout gives one clean error line and no result file;
- an ngspice crash in the middle of a run (a FAKE ngspice wrapper: the real ngspice runs, then
  its raw file is cut in half and the process dies) leaves no result file;
- two `simulate` processes writing different outputs into one directory at the same time give
  exactly what sequential runs give.

Tests of the error paths use the corpus' valid sample ``tests/bad_inputs/good/audio8.npz``
(8 audio channels, 24 events, default configuration: ~0.5 s of ngspice).
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
GOOD = ROOT / "tests" / "bad_inputs" / "good" / "audio8.npz"
# Attributes that legitimately differ between two runs: the creation time stamp and timings.
VOLATILE_ATTRS = {"created", "wall_time_s", "engine_time_s"}


def _env(tmp: Path, **extra) -> dict:
    scratch = tmp / "scratch"        # TMPDIR: ngspice work dirs (failed decks are kept there)
    scratch.mkdir(exist_ok=True)
    env = {**os.environ, "TMPDIR": str(scratch),
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    env.pop("CIMSPICE_DEVICE_DIR", None)
    env.update(extra)
    return env


def _argv(events, out, *more) -> list[str]:
    return [sys.executable, "-m", "cimspice.cli", "simulate", str(events), "-o", str(out), *more]


def _simulate(tmp: Path, events, out, *more, **env) -> subprocess.CompletedProcess:
    return subprocess.run(_argv(events, out, *more), env=_env(tmp, **env), capture_output=True,
                          text=True, timeout=600)


def _h5_items(path: Path) -> dict:
    """{name: ('dataset', dtype, shape, raw bytes) | ('group',)} plus {name@attr: value}."""
    items = {}
    with h5py.File(path, "r") as f:
        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                data = obj[()]
                raw = data.tobytes() if isinstance(data, np.ndarray) else repr(data).encode()
                items[name] = ("dataset", str(obj.dtype), obj.shape, raw)
            else:
                items[name] = ("group",)
            for k, v in obj.attrs.items():
                if k not in VOLATILE_ATTRS:
                    items[f"{name}@{k}"] = repr(v.tolist() if isinstance(v, np.ndarray) else v)

        visit("/", f)
        f.visititems(visit)
    return items


def _differences(a: Path, b: Path) -> list[str]:
    ia, ib = _h5_items(a), _h5_items(b)
    diff = sorted(set(ia) ^ set(ib))
    diff += [k for k in sorted(set(ia) & set(ib)) if ia[k] != ib[k]]
    return diff


def _assert_clean_failure(res: subprocess.CompletedProcess, *needles: str) -> str:
    both = res.stdout + res.stderr
    assert "Traceback" not in both, both
    assert res.returncode != 0, both
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def _second_sample(path: Path) -> Path:
    """A valid sample different from GOOD (other seed): 8 channels, 30 events in 25 ms."""
    from cimspice import events as E
    from cimspice.io import event_files as F

    rng = np.random.default_rng(1)
    ev = np.zeros(30, E.AUDIO_DTYPE)
    ev["t"] = np.sort(rng.integers(0, 25_000, ev.size))
    ev["x"] = rng.integers(0, 8, ev.size)
    ev["p"] = 1
    F.save_events(path, E.EventSample(ev, (8, 1, 1)))
    return path


@pytest.fixture(scope="module")
def sequential(tmp_path_factory):
    """Sequential runs: GOOD twice (a1, a2) and a second sample once (b)."""
    tmp = tmp_path_factory.mktemp("sequential")
    b_events = _second_sample(tmp / "b.npz")
    out = {}
    for key, events in (("a1", GOOD), ("a2", GOOD), ("b", b_events)):
        res = _simulate(tmp, events, tmp / f"{key}.h5")
        assert res.returncode == 0, res.stderr
        out[key] = tmp / f"{key}.h5"
    out["b_events"] = b_events
    return out


def test_same_seed_gives_identical_datasets(sequential):
    a1, a2 = sequential["a1"], sequential["a2"]
    items = _h5_items(a1)
    # the comparison must cover the substance of the file, not an empty shell
    for name in ("states/ideal", "states/circuit", "sample_times", "model/B", "events/t"):
        assert items[name][0] == "dataset", name
    assert _differences(a1, a2) == []
    # and it can fail: the other sample's file differs in its states
    assert "states/circuit" in _differences(a1, sequential["b"])


def test_concurrent_runs_in_one_directory_do_not_interfere(sequential, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    jobs = {key: subprocess.Popen(_argv(events, shared / f"{key}.h5"), env=_env(tmp_path),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for key, events in (("a", GOOD), ("b", sequential["b_events"]))}
    for key, proc in jobs.items():
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err
    assert sorted(p.name for p in shared.iterdir()) == ["a.h5", "b.h5"]   # no temp files left
    assert _differences(shared / "a.h5", sequential["a1"]) == []
    assert _differences(shared / "b.h5", sequential["b"]) == []


def _processes_mentioning(text: str) -> list[str]:
    """Command lines of live processes that contain ``text`` (Linux /proc)."""
    found = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmd:
            found.append(cmd)
    return found


def test_timeout_kills_ngspice_cleanly(tmp_path):
    cfg = tmp_path / "slow.toml"
    # A 20 s stream (maxstep 1 ms: >= 20 000 steps, seconds of ngspice) against a 10 ms limit.
    cfg.write_text("[events]\nt_end_us = 20000000\n[sim]\ntimeout = 0.01\n")
    out = tmp_path / "out"
    out.mkdir()
    res = _simulate(tmp_path, GOOD, out / "r.h5", "--config", str(cfg))
    line = _assert_clean_failure(res, "ngspice timed out after 0.01 s", "deck.cir", "timeout")
    assert str(tmp_path / "scratch") in line           # the kept deck, for debugging
    assert list(out.iterdir()) == []
    if Path("/proc/self").exists():
        assert _processes_mentioning(str(tmp_path / "scratch")) == []   # ngspice was killed


FAKE_NGSPICE = """#!/bin/sh
# FAKE ngspice for an error-path test only: it runs the real ngspice ({real}), then cuts the
# raw file it wrote in half and {ending} -- the state a crash in the middle of a run leaves.
case "$1" in -v|--version) exec {real} "$@";; esac
raw=""
prev=""
for a in "$@"; do
  if [ "$prev" = "-r" ]; then raw="$a"; fi
  prev="$a"
done
{real} "$@" || exit $?
if [ -n "$raw" ] && [ -f "$raw" ]; then
  size=$(wc -c < "$raw")
  head -c $((size / 2)) "$raw" > "$raw.half" && mv "$raw.half" "$raw"
fi
{exit_line}
"""

CRASHES = {
    # dies of SIGSEGV, as a crashing ngspice does
    "segfault": ("dies of SIGSEGV", "kill -SEGV $$", ["ngspice exited with code", "deck.cir"]),
    # says it succeeded: only the truncated raw file tells
    "silent-truncation": ("exits 0", "exit 0", ["file is truncated", "deck.cir"]),
}


@pytest.mark.parametrize("crash", sorted(CRASHES))
def test_ngspice_crash_mid_run_leaves_no_result(tmp_path, crash):
    real = shutil.which("ngspice")
    assert real, "the real ngspice is needed (make install)"
    ending, exit_line, needles = CRASHES[crash]
    bindir = tmp_path / "bin"
    bindir.mkdir()
    fake = bindir / "ngspice"
    fake.write_text(FAKE_NGSPICE.format(real=real, ending=ending, exit_line=exit_line))
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    out = tmp_path / "out"
    out.mkdir()
    res = _simulate(tmp_path, GOOD, out / "r.h5", PATH=f"{bindir}{os.pathsep}{os.environ['PATH']}")
    _assert_clean_failure(res, *needles)
    assert list(out.iterdir()) == []
