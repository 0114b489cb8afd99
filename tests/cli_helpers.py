"""Helpers shared by the CLI tests: run a command in-process, check a one-line error."""

from __future__ import annotations

from click.testing import CliRunner

from cimspice.cli import main


def cli(*args):
    """Run ``cimspice ARGS`` in-process (click's runner); stderr is kept apart."""
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def one_line_error(res) -> str:
    """The command failed with exactly one 'error: ...' line on stderr; returns it."""
    err = res.stderr.strip()
    assert res.exit_code != 0
    assert err.startswith("error: ") and "\n" not in err, err
    return err
