"""The engines cimspice can run, by name, and what the machine has (``cimspice doctor``)."""

from __future__ import annotations

import os

from ..errors import InputError, NgspiceNotFound
from .base import Engine
from .ngspice import NgspiceEngine, find_ngspice, ngspice_has_osdi, version_of
from .tiled import TiledNgspiceEngine
from .twin import TwinEngine
from .vacask import VacaskEngine, vacask_binaries, vacask_version

ENGINES: dict[str, Engine] = {e.name: e for e in (NgspiceEngine(), TiledNgspiceEngine(),
                                                VacaskEngine(), TwinEngine())}
DEFAULT_ENGINE = "ngspice"


def get_engine(name: str) -> Engine:
    """The engine called ``name``; one-line InputError for an unknown name."""
    try:
        return ENGINES[name]
    except KeyError:
        raise InputError(f"--engine {name}: unknown engine; known: {', '.join(ENGINES)}") from None


def doctor_report() -> dict:
    """Simulators available to cimspice: paths (or 'missing'), versions, OSDI support.

    OSDI heuristic: ngspice answers 'osdi: no such command available' when built without it.
    """
    report: dict[str, str] = {}
    try:
        exe = find_ngspice()
    except NgspiceNotFound:
        exe = None
    report["ngspice"] = exe or "missing"
    report["ngspice_version"] = version_of(exe, os.stat(exe).st_mtime_ns) if exe else "-"
    report["ngspice_osdi"] = ngspice_has_osdi(exe) if exe else "-"
    bins = vacask_binaries()
    report["openvaf-r"] = bins["openvaf"] or "missing"
    report["vacask"] = bins["vacask"] or "missing"
    report["vacask_version"] = vacask_version() if bins["vacask"] else "-"
    return report
