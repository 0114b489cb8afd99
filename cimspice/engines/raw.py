"""Reading SPICE raw files (ngspice and VACASK).

A small parser of the binary (and ASCII) raw format: header lines (``Title:``, ``Plotname:``,
``No. Variables``, ``No. Points``, the ``Variables:`` list), then ``Binary:`` and point-major
little-endian float64 values (two per value for complex plots), one header+data block per
analysis. spicelib 1.6.4's reader failed on ngspice 39 raw files and PySpice breaks on new
ngspice releases, hence our own.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import RawFileError

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
    return read_raw_plots(Path(path), None if names is None else [str(n).lower() for n in names],
                     require=True)


def read_raw_plots(path: Path, want, require: bool) -> list[RawPlot]:
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
