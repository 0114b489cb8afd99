"""Command-line interface (click). Side effects live here; computation lives in the stages."""

from __future__ import annotations

import functools
import sys

import click

from . import __version__
from .errors import CimspiceError


def friendly_errors(fn):
    """Turn a CimspiceError into one line on stderr and exit code 1 (no traceback)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except CimspiceError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="cimspice")
def main():
    """cimspice: SPICE co-simulation of compute-in-memory state-space models on event streams."""


@main.command()
def doctor():
    """Report the simulators cimspice can use (ngspice, openvaf-r, vacask)."""
    from . import spice

    report = spice.doctor_report()
    for key, value in report.items():
        click.echo(f"{key:18s} {value}")
    if report.get("ngspice") in (None, "missing"):
        click.echo("error: ngspice not found on PATH; install it with `make install` "
                   "(or `apt-get install ngspice`)", err=True)
        sys.exit(1)


@main.group()
def events():
    """Inspect event files."""


@main.group()
def datasets():
    """Built-in, offline-generated event datasets."""


if __name__ == "__main__":  # pragma: no cover
    main()
