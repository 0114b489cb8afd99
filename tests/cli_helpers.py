"""Helpers shared by the CLI tests: run a command in-process, check a one-line error."""

from __future__ import annotations

import dataclasses

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
