"""Run ngspice / VACASK as subprocesses and read their raw files.

``run_ngspice`` runs ``ngspice -b -r out.raw deck.cir`` with a timeout, turns failures found in
the log into typed :class:`SpiceError` subclasses and parses the raw file with :func:`read_raw`.
``read_raw`` is a small parser of the binary (and ASCII) SPICE raw format written by ngspice and
VACASK: header lines, then ``Binary:`` and point-major little-endian float64 values (two per
value for complex plots), one header+data block per analysis.

Strings matched in the ngspice 39 log (found by provoking each failure):

- ``breakpoint in the past`` ("Panic: breakpoint in the past - HELP!") -> BreakpointError
- ``Timestep too small`` ("doAnalyses: TRAN:  Timestep too small; ...",
  "Error: Transient op failed, timestep too small"), ``singular matrix``
  ("Warning: singular matrix:  check node b"; raised even when ngspice recovers with gmin
  stepping: the named node has no DC path, its values are not meaningful),
  ``Transient op failed``, ``Transient solution failed``, ``DC solution failed``
  -> ConvergenceError
- ``Error...`` lines ("Error on line 4 or its substitute:", "Error: Could not find include
  file x", "Error: unknown subckt: ...", "Error: circuit not parsed.", "Undefined parameter
  [p]", "ERROR: fatal error in ngspice, exit(1)") -> NetlistError
"""

from __future__ import annotations


from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from ..errors import (BreakpointError, ConvergenceError, NetlistError, NgspiceNotFound, NoRawFile,
                      RawFileError, SpiceError)
from ..config import Config
from .base import EngineRun, sample_plot
from .process import INSTALL_HINT, SpiceRun, classify, keep_log, run_process, log_tail
from .raw import read_raw

# (error class, pattern, hint) in priority order; the first pattern found in the log wins.
_NGSPICE_RULES = [
    (BreakpointError, re.compile(r"breakpoint in the past", re.I),
     "source time points must be strictly increasing: merge or drop overlapping pulses "
     "(make_schedule min_gap / merge)"),
    (ConvergenceError, re.compile(r"singular matrix", re.I),
     "the named node has no DC path: add a large resistor to ground, an .ic, or use "
     ".tran ... uic"),
    (ConvergenceError, re.compile(r"timestep too small", re.I),
     "smooth discontinuities (longer t_rise), set .options method=gear, loosen reltol or "
     "lower maxstep"),
    (ConvergenceError, re.compile(r"transient op failed|transient solution failed|"
                                  r"dc solution failed|non-convergence", re.I),
     "the operating point did not converge: give initial conditions (.ic / uic) or "
     "smooth the nonlinear elements"),
    (NetlistError, re.compile(r"could not find include file", re.I),
     ".include paths resolve relative to the deck's directory: use an absolute path or put "
     "the file next to the deck"),
    (NetlistError, re.compile(r"unknown subckt", re.I),
     "define the .subckt (or .include its file) before it is used"),
    # 'Closing "}" not found.' precedes the bare 'fatal error, exit(1)' that says nothing.
    (NetlistError, re.compile(r"closing \S{1,3} not found", re.I),
     "balance the braces/parentheses of the parameter expressions in the deck (or in the "
     "device model files it inlines)"),
    (NetlistError, re.compile(r"^\s*error|undefined parameter|fatal error|circuit not parsed",
                              re.I | re.M),
     "fix the deck line named above"),
]


def find_ngspice(binary: str = "ngspice") -> str:
    """Absolute path of the ngspice binary; raises :class:`NgspiceNotFound` if absent."""
    path = shutil.which(binary)
    if path is None:
        raise NgspiceNotFound(f"{binary} not found on PATH; {INSTALL_HINT}")
    return path


@functools.lru_cache(maxsize=8)
def version_of(path: str, mtime_ns: int) -> str:
    try:
        out = subprocess.run([path, "-v"], capture_output=True, text=True, timeout=30,
                             stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    # ngspice 39 prints '** ngspice-39 : Circuit level simulation program' (no minor number;
    # the Debian package 39.3 reports just '39').
    m = re.search(r"ngspice-([0-9][0-9A-Za-z.+~_-]*)", out.stdout + out.stderr)
    version = m.group(1).rstrip(".") if m else "unknown"
    return _package_version(path, version)


def _package_version(path: str, version: str) -> str:
    """Refine '39' to '39.3' from the Debian package that owns the binary, when there is one."""
    dpkg = shutil.which("dpkg-query")
    if not dpkg or not path.startswith("/usr/"):
        return version
    try:
        out = subprocess.run([dpkg, "-W", "-f", "${Version}", "ngspice"], capture_output=True,
                             text=True, timeout=10, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return version
    m = re.match(r"(?:\d+:)?([0-9][0-9.]*)", out.stdout.strip())
    if out.returncode == 0 and m and m.group(1).split(".")[0] == version.split(".")[0]:
        return m.group(1).rstrip(".")
    return version


def ngspice_version(binary: str = "ngspice") -> str:
    """Version printed by ``ngspice -v`` (e.g. '39'); raises NgspiceNotFound if absent."""
    path = find_ngspice(binary)
    return version_of(path, os.stat(path).st_mtime_ns)


def run_ngspice(deck, *, timeout: float = 600, names=None, workdir=None,
                binary: str = "ngspice") -> SpiceRun:
    """Run ngspice in batch mode on ``deck`` and parse its raw file.

    ``deck``: netlist text (a ``str`` containing a newline) or a path; a path deck runs in its
    own directory so relative ``.include`` lines resolve. ``timeout`` in seconds. ``workdir``:
    directory for ``deck.cir``/``out.raw`` (kept); default a fresh temporary directory that
    is removed on success and kept (deck + ngspice.log) on failure for debugging.
    ``names``: vectors to load (see :func:`read_raw`). Raises a :class:`SpiceError` subclass.
    """
    exe = find_ngspice(binary)
    is_path = isinstance(deck, os.PathLike) or (isinstance(deck, str) and "\n" not in deck)
    if is_path and not Path(deck).is_file():
        raise NetlistError(f"deck file {deck} does not exist; pass netlist text or an "
                           "existing path", deck=str(deck))
    own_dir = workdir is None
    wdir = Path(tempfile.mkdtemp(prefix="cimspice-ngspice-")) if own_dir else Path(workdir)
    wdir.mkdir(parents=True, exist_ok=True)
    raw = (wdir / "out.raw").resolve()
    keep = False
    log = ""
    try:
        if raw.exists():
            raw.unlink()  # a stale raw file must not pass for this run's output
        if is_path:
            deck_path = Path(deck).resolve()
        else:
            deck_path = (wdir / "deck.cir").resolve()
            deck_path.write_text(deck if deck.endswith("\n") else deck + "\n")
        dstr = str(deck_path)
        rc, log, elapsed = run_process([exe, "-b", "-r", str(raw), deck_path.name],
                                        cwd=deck_path.parent, timeout=timeout, deck=dstr,
                                        tool="ngspice")
        tail = log_tail(log)
        found = classify(log, _NGSPICE_RULES)
        if found:
            cls, line, hint = found
            what = {BreakpointError: "ngspice: breakpoint in the past",
                    ConvergenceError: "ngspice did not converge",
                    NetlistError: "ngspice rejected the deck"}[cls]
            raise cls(f"{what} ({dstr}): {line}; fix: {hint}", log_tail=tail, deck=dstr)
        if rc != 0:
            last = tail.splitlines()[-1] if tail else "no output"
            raise SpiceError(f"ngspice exited with code {rc} on {dstr}: {last}; fix: see the "
                             "log tail (SpiceError.log_tail)", log_tail=tail, deck=dstr)
        if not raw.exists() or raw.stat().st_size == 0:
            raise NoRawFile(f"ngspice wrote no raw file for {dstr}; fix: the deck needs an "
                            "analysis line (.tran/.ac/.op) outside any .control block",
                            log_tail=tail, deck=dstr)
        try:
            plots = read_raw(raw, names=names)
        except RawFileError as exc:
            raise RawFileError(f"{exc} (deck {dstr})", log_tail=tail, deck=dstr) from None
        empty = [p.plotname for p in plots if p.n_points == 0]
        if not plots or empty:
            raise NoRawFile(f"ngspice wrote no data points for {empty or 'any plot'} of {dstr}; "
                            "fix: see the log tail (SpiceError.log_tail)", log_tail=tail,
                            deck=dstr)
        version = version_of(exe, os.stat(exe).st_mtime_ns)
        return SpiceRun(plots=plots, log=log, version=version, elapsed_s=elapsed,
                        deck_path=dstr)
    except SpiceError:
        # Keep a failed text deck and its log (not the raw file) for debugging.
        keep = own_dir and not is_path
        if keep:
            keep_log(wdir, log, "ngspice.log")
            raw.unlink(missing_ok=True)
        raise
    finally:
        if own_dir and not keep:
            shutil.rmtree(wdir, ignore_errors=True)


def ngspice_has_osdi(exe: str) -> str:
    """'yes'/'no': does this ngspice know the ``osdi`` command (built with --enable-osdi)?"""
    with tempfile.TemporaryDirectory(prefix="cimspice-osdi-") as d:
        deck = Path(d) / "osdi.cir"
        deck.write_text("osdi probe\n.control\nosdi\n.endc\n.end\n")
        try:
            out = subprocess.run([exe, "-b", deck.name], cwd=d, capture_output=True,
                                 text=True, timeout=30, stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired):
            return "unknown"
    text = out.stdout + out.stderr
    return "no" if re.search(r"osdi: no such command", text) else "yes"



def saved_names(info) -> list[str]:
    """Vectors to load from a deck's raw file: time, the w nodes, the saved sense currents."""
    return ["time", *info.w_plus, *info.w_minus, *info.sense, *info.i_plus, *info.i_minus,
            *info.w_dev, *info.w_ref, *(v for _, v in info.energy)]


class NgspiceEngine:
    """ngspice on the prepared deck (the default engine and the truth)."""

    name = "ngspice"
    in_process = False
    dense_waveforms = True

    def check(self, cfg: Config) -> None:
        """ngspice simulates every option of the deck."""

    def run(self, prep, *, keep_waveforms: bool = False, workdir=None) -> EngineRun:
        info = prep.deck_info
        run = run_ngspice(prep.deck, timeout=prep.cfg.sim.timeout, names=saved_names(info),
                          workdir=workdir)
        got = sample_plot(run.plot("tran"), info, prep.sample_times, prep.mapping, keep_waveforms)
        return EngineRun(engine=self.name, version=run.version, elapsed_s=run.elapsed_s,
                         log=run.log, **got)
