"""Error types shared by every stage.

Every error a user can cause is a :class:`CimspiceError` whose ``str()`` is ONE line that names
the file (or object), the field, what is wrong and how to fix it. The CLI prints that line and
exits with code 1; it never shows a traceback for these.
"""


class CimspiceError(Exception):
    """Base class: a one-line, user-facing message."""


class InputError(CimspiceError, ValueError):
    """A file, configuration or argument given by the user is invalid."""


class EventFileError(InputError):
    """An event file is malformed (see :mod:`cimspice.events`)."""


class ConfigError(InputError):
    """A configuration, weights or device-parameter file is invalid."""


class DeviceParamError(ConfigError):
    """A device parameter is out of its physical range."""
