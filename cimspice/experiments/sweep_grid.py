"""The grid of a sweep: ``--set section.key=v1,v2,...`` -> typed values -> one config per point.

An :class:`Axis` is one swept config key with its values, typed like the config field
(int, float, bool ``true``/``false``, str). The grid is the cartesian product of the axes, the
first axis varying slowest; point ``p``'s config is the base config with the point's values
(:meth:`cimspice.config.Config.replace`, so every range check applies), and chip instance ``s``
of a point is that config with ``[variation] seed = s``. Every value and every point is checked
here, before anything is written: a bad ``--set`` is one line naming it.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass

from ..config import Config
from ..errors import ConfigError, InputError

_EXAMPLE = "e.g. --set variation.tau_sigma=0,0.1,0.2"


@dataclass(frozen=True)
class Axis:
    """One swept key: ``section`` and ``key`` of the config, ``values`` in the order given."""

    section: str
    key: str
    values: tuple

    @property
    def name(self) -> str:
        return f"{self.section}.{self.key}"


def value_text(v) -> str:
    """The one text form of a swept value (CSV cells, labels): TOML-like, floats by repr."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return repr(v)
    return str(v)


def parse_axes(sets, base: Config) -> list[Axis]:
    """Axes from ``--set`` texts (``'variation.tau_sigma=0,0.3'``) or a mapping
    ``{'variation.tau_sigma': [0, 0.3]}`` (values as Python values or one text). Each value is
    checked alone against ``base``; InputError/ConfigError (one line naming the ``--set``)."""
    if isinstance(sets, str):   # one --set given alone
        sets = [sets]
    items = list(sets.items()) if isinstance(sets, Mapping) else [_split_set(s) for s in sets]
    axes: list[Axis] = []
    for name, values in items:
        text = f"{name}={values if isinstance(values, str) else ','.join(map(str, values))}"
        section, key, default = _field(name, text)
        if isinstance(values, str):
            raw = values.split(",")
            if any(not r.strip() for r in raw):
                raise InputError(f"--set {text}: an empty value in the list; give "
                                 f"{name}=v1,v2,... ({_EXAMPLE})")
            values = [_parse_value(r.strip(), default, key, text) for r in raw]
        if not values:
            raise InputError(f"--set {text}: no value; give {name}=v1,v2,... ({_EXAMPLE})")
        if any(a.name == name for a in axes):
            raise InputError(f"--set {name}: given twice; give all its values in one --set "
                             f"({name}=v1,v2,...)")
        # each value alone against the base config; kept as the config holds it (0 -> 0.0)
        values = tuple(getattr(getattr(_replace(base, {section: {key: v}}, f"--set {text}"),
                                       section), key) for v in values)
        if len(set(map(value_text, values))) < len(values):
            raise InputError(f"--set {text}: a value is repeated; give each value once")
        axes.append(Axis(section, key, values))
    return axes


def point_configs(base: Config, axes: list[Axis]) -> list[tuple[tuple, Config]]:
    """``[(values, config)]`` of every grid point, the first axis varying slowest (one point,
    the base config, without axes)."""
    points = []
    for values in itertools.product(*(a.values for a in axes)):
        changes: dict = {}
        for a, v in zip(axes, values):
            changes.setdefault(a.section, {})[a.key] = v
        label = ", ".join(f"{a.name}={value_text(v)}" for a, v in zip(axes, values))
        points.append((values, _replace(base, changes, f"--set point {label}")))
    return points


def instance_config(cfg: Config, seed: int) -> Config:
    """Chip instance ``seed`` of a point: its config with ``[variation] seed = seed``."""
    return cfg.replace(variation={"seed": seed})


# ------------------------------------------------------------------------------------------

def _split_set(text) -> tuple[str, str]:
    if not isinstance(text, str) or "=" not in text:
        raise InputError(f"--set {text}: expected section.key=v1,v2,... ({_EXAMPLE})")
    name, values = text.split("=", 1)
    return name.strip(), values


def _field(name: str, text: str):
    """(section, key, default value) of a ``section.key`` name; one-line InputError if unknown
    or not sweepable."""
    sections = {f.name: f for f in dataclasses.fields(Config)}
    if name.count(".") != 1:
        raise InputError(f"--set {text}: expected section.key=v1,v2,... ({_EXAMPLE})")
    section, key = name.split(".")
    if section not in sections:
        raise InputError(f"--set {text}: unknown section [{section}]; known: {', '.join(sections)}")
    fields = {f.name: f for f in dataclasses.fields(getattr(Config(), section))}
    if key not in fields:
        raise InputError(f"--set {text}: unknown key '{key}' in [{section}]; known keys: "
                         f"{', '.join(fields)}")
    if (section, key) == ("variation", "seed"):
        raise InputError(f"--set {text}: the chip instances are given by --seeds N (variation "
                         f"seeds 0..N-1); drop this --set")
    default = getattr(getattr(Config(), section), key)
    if isinstance(default, tuple):
        raise InputError(f"--set {text}: [{section}] {key} is a list; a list-valued key cannot be "
                         f"swept, set it in the config file (-c)")
    return section, key, default


def _parse_value(raw: str, default, key: str, text: str):
    """``raw`` as the type of the field whose default is ``default``."""
    def bad(kind: str):
        return InputError(f"--set {text}: value {raw!r} is not {kind} (key '{key}' takes {kind})")

    if key == "window":   # the one tri-state key (config.DeviceConfig)
        if raw.lower() in ("true", "false"):
            return raw.lower() == "true"
        if raw == "auto":
            return raw
        raise bad('true, false or "auto"')
    if isinstance(default, bool):
        if raw.lower() not in ("true", "false"):
            raise bad("true or false")
        return raw.lower() == "true"
    if isinstance(default, int):
        try:
            return int(raw)
        except ValueError:
            raise bad("an integer") from None
    if isinstance(default, float):
        try:
            v = float(raw)
        except ValueError:
            raise bad("a number") from None
        if not math.isfinite(v):
            raise bad("a finite number")
        return v
    return raw


def _replace(base: Config, changes: dict, where: str) -> Config:
    try:
        return base.replace(**changes)
    except ConfigError as exc:
        msg = str(exc)
        raise ConfigError(f"{where}: {msg.removeprefix('config: ')}") from None
