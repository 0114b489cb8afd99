"""Helpers shared by the CLI tests: run a command in-process or as a process, check a one-line
error, find and wait for the processes of a run (Linux /proc)."""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from pathlib import Path

from click.testing import CliRunner

import cimspice

from cimspice.cli import main


# A small, fast layer (4 states, plain-resistor cells) for end-to-end runs of the CLI tests.
SMALL_LAYER_TOML = """
[ssm]
n_states = 4
taus = [0.01, 0.04]
n_samples = 5
[circuit]
access = "none"
n_calibration = 4
[sim]
reltol = 1e-4
"""


def cli(*args):
    """Run ``cimspice ARGS`` in-process (click's runner); stderr is kept apart."""
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def one_line_error(res) -> str:
    """The command failed with exactly one 'error: ...' line on stderr; returns it."""
    err = res.stderr.strip()
    assert res.exit_code != 0
    assert err.startswith("error: ") and "\n" not in err, err
    return err


def first_events(path, index: int = 0, frac: float = 1 / 3):
    """Sample ``index`` of a dataset file cut to its first ``frac`` of events (>= 10): a short,
    real stream for engine comparisons that stay within the suite's time budget."""
    s = cimspice.load_events(str(path), index=index)
    n = max(10, int(len(s.events) * frac))
    return dataclasses.replace(s, events=s.events[:n])


# A command run as its own process (`python -m cimspice.cli`), importing this checkout.
CLI_ENV = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}


def cli_argv(*args) -> list[str]:
    """argv of ``cimspice ARGS`` as a process (with :data:`CLI_ENV`)."""
    return [sys.executable, "-m", "cimspice.cli", *map(str, args)]


def children_of(pid: int) -> list[int]:
    """PIDs whose parent is ``pid`` (Linux /proc)."""
    out = []
    for d in Path("/proc").glob("[0-9]*"):
        try:
            if int((d / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(d.name))
        except (OSError, ValueError, IndexError):
            continue
    return out


def alive(pid: int) -> bool:
    """Running (not gone, not a zombie waiting for its new parent to reap it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def worker_pids(parent: int) -> list[int]:
    """Dask worker processes under ``parent`` (spawned by its nannies)."""
    return [pid for pid in children_of(parent) if b"spawn_main" in cmdline(pid)]


def wait_for(cond, timeout: float, what: str, proc=None):
    """``cond()``'s first true value, polled every 20 ms; fails after ``timeout`` s (``what``)
    or when ``proc`` exits first."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if proc is not None:
            assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline, what
        time.sleep(0.02)
