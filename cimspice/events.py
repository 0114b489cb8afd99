"""Event streams: read, validate, write, transform, and turn into a pulse schedule.

Events are NumPy structured arrays (tonic-compatible): vision ``t`` (int64, µs), ``x``, ``y``
(int16), ``p`` (int8, 0/1); audio ``t``, ``x`` (channel), ``p``. ``sensor_size`` is
``(W, H, P)`` for vision and ``(C, 1, P)`` for audio, like tonic; ``P = 1`` means polarity is
not a channel dimension (SHD audio has ``p = 1`` everywhere and ``sensor_size = (700, 1, 1)``).

Every file is validated once, when it is read (:func:`load_events`, :func:`make_sample`);
transforms and the scheduler trust an :class:`EventSample`.

File formats (reader and writer for each, chosen by extension):

- ``.npz``: key ``events`` (structured array), optional ``sensor_size``, ``label``,
  ``class_name``. A *dataset* ``.npz`` (key ``offsets``) holds many samples, see
  :func:`load_dataset`; pick one with ``index``.
- ``.npy``: the structured array alone (sensor size inferred, no label).
- ``.csv``: optional ``# sensor_size=W,H,P`` / ``# label=L`` lines, then a header
  ``t,x,y,p`` or ``t,x,p``, then one event per line.
- ``.h5``/``.hdf5``: spiking-audio layout of SHD/SSC: ``spikes/times`` (seconds, one
  variable-length array per sample), ``spikes/units``, ``labels``.
"""

from __future__ import annotations

import io
import json
import math
import zipfile
import zlib
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .errors import CimspiceError, EventFileError, InputError

VISION_DTYPE = np.dtype([("t", "<i8"), ("x", "<i2"), ("y", "<i2"), ("p", "i1")])
AUDIO_DTYPE = np.dtype([("t", "<i8"), ("x", "<i2"), ("p", "i1")])

VISION_FIELDS = ("t", "x", "y", "p")
AUDIO_FIELDS = ("t", "x", "p")
SHD_CHANNELS = 700          # SHD and SSC both use 700 cochlea channels
MERGE_MODES = ("extend", "count", "drop")
EXTENSIONS = (".npz", ".npy", ".csv", ".h5", ".hdf5")

_INT16_MAX = int(np.iinfo(np.int16).max)
_T_LIMIT = 2.0 ** 63        # float timestamps (µs) at or above this do not fit int64
_DATASET_KEYS = ("events", "offsets", "labels", "split", "sensor_size", "classes", "params")


# --------------------------------------------------------------------------- containers

@dataclass(frozen=True, eq=False)
class EventSample:
    """One event stream: ``events`` (structured array, sorted by ``t``), ``sensor_size``
    ``(W, H, P)`` / ``(C, 1, P)``, ``label`` (int or None), ``source`` (file it came from),
    ``class_name`` (when the file names its classes)."""

    events: np.ndarray
    sensor_size: tuple
    label: int | None = None
    source: str = "<memory>"
    class_name: str | None = None

    @property
    def is_audio(self) -> bool:
        return "y" not in self.events.dtype.names

    def __len__(self) -> int:
        return int(self.events.size)


@dataclass(frozen=True, eq=False)
class EventDataset:
    """Many samples in one file: ``events`` concatenated, sample ``i`` is
    ``events[offsets[i]:offsets[i+1]]``; ``labels`` (S,), ``split`` (S,) or None,
    ``classes`` (names, indexed by label), ``params`` (generator parameters)."""

    events: np.ndarray
    offsets: np.ndarray
    labels: np.ndarray
    split: np.ndarray | None
    sensor_size: tuple
    classes: tuple = ()
    params: dict = field(default_factory=dict)
    source: str = "<memory>"

    def __len__(self) -> int:
        return int(self.offsets.size - 1)

    def sample(self, index: int | None, sort: bool = False) -> EventSample:
        """Sample ``index`` as a validated :class:`EventSample`."""
        i = _pick_index(self.source, index, len(self))
        ev = self.events[int(self.offsets[i]):int(self.offsets[i + 1])]
        label = int(self.labels[i])
        name = f"{self.source} (sample {i})"
        events, sensor = _validate(_columns_of(ev, name), self.sensor_size, name, sort)
        cls = self.classes[label] if 0 <= label < len(self.classes) else None
        return EventSample(events, sensor, label, self.source, cls)


@dataclass(frozen=True)
class PulseSchedule:
    """Per-row input pulses: the common input of the ideal SSM and of the circuit.

    A pulse is an ideal rectangle on row ``row[i]`` starting at ``t_on[i]`` (s) lasting
    ``width[i]`` (s) with amplitude ``amplitude[i]`` (dimensionless; 1 = one event). Its input
    rate is ``amplitude / t_p`` so it carries ``amplitude * width / t_p`` events' worth of input.
    The circuit draws it as a trapezoid with the same area and centre: 0 at ``t_on - t_rise/2``,
    full at ``t_on + t_rise/2``, full until ``t_on + width - t_rise/2``, 0 at
    ``t_on + width + t_rise/2``. Occupied intervals on one row never overlap and are separated by
    at least ``min_gap`` (ngspice 39 aborts on touching PWL breakpoints).
    Arrays are sorted by ``t_on`` (ties by row).
    """

    row: np.ndarray        # (P,) int32, input row (channel) index
    t_on: np.ndarray       # (P,) float64, s
    width: np.ndarray      # (P,) float64, s
    amplitude: np.ndarray  # (P,) float64
    n_rows: int
    t_p: float             # nominal pulse width, s
    t_rise: float          # PWL edge time, s
    min_gap: float         # s, between occupied intervals on one row
    duration: float        # s, end of the stream (>= last pulse end)
    n_events: int = 0      # events in
    n_merged: int = 0      # events merged into a previous pulse
    n_dropped: int = 0     # events dropped (refractory rule)

    @property
    def n_pulses(self) -> int:
        return int(self.row.size)

    def occupied(self) -> tuple[np.ndarray, np.ndarray]:
        """(start, end) of each pulse's drawn trapezoid, s: ``t_on ∓ t_rise/2`` edges."""
        half = self.t_rise / 2
        return self.t_on - half, self.t_on + self.width + half

    def for_row(self, r: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(t_on, width, amplitude) of row ``r``'s pulses, sorted by time."""
        m = self.row == r
        return self.t_on[m], self.width[m], self.amplitude[m]


# --------------------------------------------------------------------------- validation

def _fail(name: str, fld: str, what: str, fix: str):
    raise EventFileError(f"{name}: field '{fld}': {what}; fix: {fix}")


def _first(mask: np.ndarray) -> int:
    return int(np.argmax(mask))


def _fmt(v) -> str:
    v = v.item() if hasattr(v, "item") else v
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e15:
        return str(int(v))
    return repr(v) if isinstance(v, str) else f"{v:g}" if isinstance(v, float) else str(v)


def _as_int(a: np.ndarray, name: str, fld: str, fix_unit: str) -> np.ndarray:
    """Convert a column to int64 without silent loss: NaN, overflow, fractions are errors."""
    a = np.asarray(a)
    if a.ndim != 1:
        _fail(name, fld, f"has shape {a.shape}, expected one value per event",
              "store each field as a 1-D column")
    if a.dtype.kind == "b":
        return a.astype(np.int64)
    if a.dtype.kind == "u":
        big = a > np.iinfo(np.int64).max
        if big.any():
            i = _first(big)
            _fail(name, fld, f"{_fmt(a[i])} at index {i} does not fit int64",
                  f"store {fld} as integers below 2^63")
        return a.astype(np.int64)
    if a.dtype.kind == "i":
        return a.astype(np.int64)
    if a.dtype.kind != "f":
        _fail(name, fld, f"not numeric (dtype {a.dtype})", f"store {fld} as integers")
    bad = np.isnan(a)
    if bad.any():
        i = _first(bad)
        _fail(name, fld, f"NaN at index {i}", f"remove or repair the event at index {i}")
    bad = np.abs(a) >= _T_LIMIT
    if bad.any():
        i = _first(bad)
        _fail(name, fld, f"{_fmt(a[i])} at index {i} overflows int64{fix_unit}",
              f"check the unit; {fld} must stay below 2^63")
    bad = a != np.floor(a)
    if bad.any():
        i = _first(bad)
        _fail(name, fld, f"not an integer at index {i} ({fld}={_fmt(a[i])})",
              f"{fld} must be whole numbers{' of' + fix_unit if fix_unit else ''}; round them")
    return a.astype(np.int64)


def _check_sensor(sensor, name: str, audio: bool) -> tuple:
    try:
        vals = np.asarray(sensor).ravel()
        ok = vals.size == 3 and vals.dtype.kind in "iuf" and np.all(vals == np.floor(vals))
    except (TypeError, ValueError):
        ok = False
    if not ok:
        _fail(name, "sensor_size", f"{sensor!r} is not three integers",
              "give sensor_size as (W, H, P) for vision or (C, 1, P) for audio")
    w, h, p = (int(v) for v in vals)
    if min(w, h, p) < 1 or max(w, h) > _INT16_MAX + 1 or p > 2:
        _fail(name, "sensor_size", f"{(w, h, p)} out of range",
              f"W, H in 1..{_INT16_MAX + 1} and P in {{1, 2}}")
    if audio and h != 1:
        _fail(name, "sensor_size", f"{(w, h, p)} has H={h} for audio events (no 'y' field)",
              "give audio sensor_size as (C, 1, P)")
    return (w, h, p)


def _validate(cols: dict, sensor, name: str, sort: bool) -> tuple[np.ndarray, tuple]:
    """The one place where events are checked: columns -> (structured array, sensor_size)."""
    names = tuple(cols)
    audio = "y" not in names
    expected = AUDIO_FIELDS if audio else VISION_FIELDS
    missing = [f for f in expected if f not in names]
    extra = [f for f in names if f not in expected]
    if missing or extra:
        items = [(f, "missing") for f in missing] + [(f, "unknown field") for f in extra]
        rest = ", ".join(f"'{f}' {k}" for f, k in items[1:])
        raise EventFileError(
            f"{name}: field '{items[0][0]}': {items[0][1]}{f' (also {rest})' if rest else ''}"
            f" among fields {','.join(names) or 'none'}; "
            f"fix: events need fields t,x,y,p (vision) or t,x,p (audio)")
    n = len(cols["t"])
    for f in expected:
        if len(cols[f]) != n:
            _fail(name, f, f"{len(cols[f])} values but 't' has {n}",
                  "give every field one value per event")
    if n == 0:
        _fail(name, "t", "no events (empty stream)", "give a file with at least one event")

    t = np.asarray(cols["t"])
    if t.dtype.kind in "if" and (t < 0).any():
        i = _first(t < 0)
        _fail(name, "t", f"negative at index {i} (t={_fmt(t[i])})",
              "shift the timestamps so they start at 0 or later")
    t = _as_int(t, name, "t", " µs")
    sensor = None if sensor is None else _check_sensor(sensor, name, audio)
    out = np.empty(n, AUDIO_DTYPE if audio else VISION_DTYPE)
    out["t"] = t
    for f, dim in (("x", 0), ("y", 1)):
        if f not in names:
            continue
        v = _as_int(cols[f], name, f, "")
        hi = sensor[dim] if sensor is not None else _INT16_MAX
        bad = (v < 0) | (v >= hi)
        if bad.any():
            i = _first(bad)
            rng = ("is negative" if v[i] < 0 else f"is outside the sensor (0 <= {f} < {hi})"
                   if sensor is not None else f"exceeds {hi - 1} (int16)")
            _fail(name, f, f"{_fmt(v[i])} at index {i} {rng}",
                  "give the right sensor_size or crop/remap the events")
        out[f] = v
    p = _as_int(cols["p"], name, "p", "")
    bad = (p != 0) & (p != 1)
    if bad.any():
        i = _first(bad)
        _fail(name, "p", f"value {_fmt(p[i])} at index {i} is not 0 or 1",
              "map polarities to 0 (OFF) and 1 (ON)")
    out["p"] = p
    if sensor is None:
        w = int(out["x"].max()) + 1
        if audio:   # SHD-style audio carries p=1 only: polarity is then not a channel
            sensor = (w, 1, 2 if (out["p"] == 0).any() else 1)
        else:
            sensor = (w, int(out["y"].max()) + 1, 2)
    dt = np.diff(out["t"])
    if (dt < 0).any():
        if sort:
            out = out[np.argsort(out["t"], kind="stable")]
        else:
            i = _first(dt < 0) + 1
            _fail(name, "t", f"not sorted at index {i} (t={out['t'][i]} < {out['t'][i - 1]})",
                  "pass --sort (sort=True) or sort the events by t")
    return out, sensor


def _columns_of(arr: np.ndarray, name: str) -> dict:
    if not isinstance(arr, np.ndarray) or arr.dtype.names is None:
        shape = getattr(arr, "shape", "?")
        dtype = getattr(arr, "dtype", type(arr).__name__)
        raise EventFileError(
            f"{name}: field 'events': not a structured array (dtype {dtype}, shape {shape}); "
            f"fix: store a structured array with fields t,x,y,p (vision) or t,x,p (audio)")
    if arr.ndim != 1:
        raise EventFileError(f"{name}: field 'events': has shape {arr.shape}, expected (N,); "
                             f"fix: store a 1-D structured array")
    return {f: arr[f] for f in arr.dtype.names}


def make_sample(events, sensor_size=None, label=None, *, source: str = "<array>",
                sort: bool = False, class_name: str | None = None) -> EventSample:
    """Validate an in-memory structured array (or dict of columns) into an :class:`EventSample`.

    ``sensor_size`` None infers ``(max x + 1, max y + 1, 2)`` (vision) or
    ``(max x + 1, 1, P)`` (audio; ``P = 1`` when every ``p`` is 1).
    """
    cols = dict(events) if isinstance(events, dict) else _columns_of(np.asarray(events), source)
    ev, sensor = _validate(cols, sensor_size, source, sort)
    return EventSample(ev, sensor, _label(label, source), source, class_name)


def _label(label, name: str) -> int | None:
    if label is None:
        return None
    a = np.asarray(label)
    if a.size != 1 or a.dtype.kind not in "iub":
        raise EventFileError(f"{name}: field 'label': {label!r} is not one integer; "
                             f"fix: store the class index as an integer")
    return int(a.ravel()[0])


# --------------------------------------------------------------------------- reading

def _one_line(exc: BaseException) -> str:
    msg = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {msg[0]}" if msg else type(exc).__name__


@contextmanager
def _reading(name: str, kind: str):
    """Turn any low-level read failure into one EventFileError line naming the file."""
    try:
        yield
    except CimspiceError:
        raise
    except (OSError, ValueError, KeyError, EOFError, TypeError, IndexError, RuntimeError,
            zipfile.BadZipFile, zlib.error, UnicodeDecodeError) as exc:
        raise EventFileError(
            f"{name}: not a readable {kind} file (truncated or corrupt? {_one_line(exc)}); "
            f"fix: re-create the file") from exc


def _check_path(path: Path, name: str) -> str:
    if not path.exists():
        raise EventFileError(f"{name}: no such file; fix: check the path")
    if path.is_dir():
        raise EventFileError(f"{name}: is a directory, not an event file; fix: give a file path")
    ext = path.suffix.lower()
    if ext not in EXTENSIONS:
        raise EventFileError(f"{name}: unknown extension '{path.suffix}'; fix: use one of "
                             f"{', '.join(EXTENSIONS)}")
    if path.stat().st_size == 0:
        raise EventFileError(f"{name}: empty file (0 bytes); fix: re-create the file")
    return ext


def _pick_index(name: str, index, n: int) -> int:
    if n == 0:
        raise EventFileError(f"{name}: holds no samples; fix: re-create the file")
    if index is None:
        if n == 1:
            return 0
        raise EventFileError(f"{name}: holds {n} samples and no sample index was given; "
                             f"fix: pass --index i with 0 <= i <= {n - 1}")
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or not 0 <= index < n:
        raise EventFileError(f"{name}: sample index {index!r} out of range (file holds {n} "
                             f"sample{'s' if n > 1 else ''}); fix: pass --index i with "
                             f"0 <= i <= {n - 1}")
    return int(index)


def load_events(path, index: int | None = None, sort: bool = False) -> EventSample:
    """Read and validate one event sample from ``.npz``/``.npy``/``.csv``/``.h5``/dataset file.

    ``index`` picks a sample in multi-sample files (dataset ``.npz``, SHD ``.h5``); it is
    required when the file holds more than one sample. ``sort=True`` sorts the events by ``t``
    (stable) instead of rejecting an unsorted file. Raises :class:`EventFileError` (one line).
    """
    path = Path(path)
    name = str(path)
    ext = _check_path(path, name)
    if ext == ".npz":
        with _reading(name, ".npz"):
            with np.load(path, allow_pickle=False) as z:
                keys = set(z.files)
        if "offsets" in keys:
            return load_dataset(path).sample(index, sort=sort)
        _pick_index(name, index, 1)
        with _reading(name, ".npz"):
            with np.load(path, allow_pickle=False) as z:
                if "events" not in z.files:
                    raise EventFileError(
                        f"{name}: field 'events': missing (keys: {', '.join(sorted(z.files))}); "
                        f"fix: save the structured array under the key 'events'")
                ev = z["events"]
                sensor = z["sensor_size"] if "sensor_size" in z.files else None
                label = z["label"] if "label" in z.files else None
                cls = str(z["class_name"]) if "class_name" in z.files else None
        events, sensor = _validate(_columns_of(ev, name), sensor, name, sort)
        return EventSample(events, sensor, _label(label, name), name, cls)
    if ext == ".npy":
        _pick_index(name, index, 1)
        with _reading(name, ".npy"):
            ev = np.load(path, allow_pickle=False)
        events, sensor = _validate(_columns_of(ev, name), None, name, sort)
        return EventSample(events, sensor, None, name)
    if ext == ".csv":
        _pick_index(name, index, 1)
        return _load_csv(path, name, sort)
    return _load_h5(path, name, index, sort)


def _load_csv(path: Path, name: str, sort: bool) -> EventSample:
    with _reading(name, ".csv"):
        lines = path.read_text(encoding="utf-8").splitlines()
    meta, i = {}, 0
    while i < len(lines) and (not lines[i].strip() or lines[i].lstrip().startswith("#")):
        key, eq, val = lines[i].lstrip("# \t").partition("=")
        if eq:
            meta[key.strip().lower()] = val.strip()
        i += 1
    if i == len(lines):
        _fail(name, "t", "no header and no events", "start the file with a header line "
              "t,x,y,p (vision) or t,x,p (audio)")
    header = [h.strip().lower() for h in lines[i].split(",")]
    if any(_is_number(h) for h in header):
        raise EventFileError(f"{name}: line {i + 1}: no header line (found {lines[i].strip()!r}); "
                             f"fix: add a first line t,x,y,p (vision) or t,x,p (audio)")
    rows = [r for r in lines[i + 1:] if r.strip()]
    cells = [r.split(",") for r in rows]
    for k, c in enumerate(cells):
        if len(c) != len(header):
            fld = header[len(c)] if len(c) < len(header) else "?"
            _fail(name, fld, f"event {k} has {len(c)} values but the header has "
                  f"{len(header)} columns", f"give every line {len(header)} comma-separated values")
    arr = np.char.strip(np.array(cells, dtype=str).reshape(len(cells), len(header)))
    cols = {h: _parse_column(arr[:, j], name, h) for j, h in enumerate(header)}
    sensor = None
    if "sensor_size" in meta:
        sensor = [s.strip() for s in meta["sensor_size"].strip("()[] ").split(",")]
        try:
            sensor = [int(s) for s in sensor]
        except ValueError:
            sensor = meta["sensor_size"]
    label = meta.get("label")
    if label is not None:
        try:
            label = int(label)
        except ValueError:
            pass
    events, sensor = _validate(cols, sensor, name, sort)
    return EventSample(events, sensor, _label(label, name), name, meta.get("class_name"))


def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def _parse_column(col: np.ndarray, name: str, fld: str) -> np.ndarray:
    try:
        return col.astype(np.int64)     # exact for integers, which is the normal case
    except (ValueError, OverflowError):
        pass
    try:
        return col.astype(np.float64)   # decimals, nan, 1e30: judged by the validator
    except ValueError:
        for k, s in enumerate(col.tolist()):
            if not _is_number(s):
                _fail(name, fld, f"{s!r} at index {k} is not a number",
                      f"write {fld} as a number on every line")
        raise


def _load_h5(path: Path, name: str, index, sort: bool) -> EventSample:
    import h5py

    with _reading(name, "HDF5"):
        with h5py.File(path, "r") as f:
            for key in ("spikes/times", "spikes/units"):
                if key not in f:
                    raise EventFileError(
                        f"{name}: field '{key}': missing dataset; fix: use the SHD/SSC layout "
                        f"(spikes/times in seconds, spikes/units, labels)")
            times, units = f["spikes/times"], f["spikes/units"]
            ragged = h5py.check_vlen_dtype(times.dtype) is not None
            n = len(times) if ragged else 1
            n_units = len(units) if h5py.check_vlen_dtype(units.dtype) is not None else 1
            if n_units != n:
                _fail(name, "spikes/units", f"{n_units} samples but spikes/times has {n}",
                      "write one units array per times array")
            i = _pick_index(name, index, n)
            t_s = np.asarray(times[i] if ragged else times[()], dtype=np.float64)
            x = np.asarray(units[i] if ragged else units[()])
            pol = f["spikes/p"] if "spikes/p" in f else None
            p = np.ones(t_s.size, np.int8) if pol is None else np.asarray(
                pol[i] if ragged else pol[()])
            label, cls = None, None
            if "labels" in f:
                labels = np.asarray(f["labels"][()]).ravel()
                if labels.size != n:
                    _fail(name, "labels", f"{labels.size} labels for {n} samples",
                          "write one label per sample")
                label = labels[i]
                names = None
                if "extra/keys" in f:
                    names = [k.decode() if isinstance(k, bytes) else str(k)
                             for k in f["extra/keys"][()]]
                elif "classes" in f.attrs:
                    names = [str(k) for k in np.atleast_1d(f.attrs["classes"])]
                if names is not None and 0 <= int(label) < len(names):
                    cls = names[int(label)]
            known = "sensor_size" in f.attrs
            if known:
                sensor = f.attrs["sensor_size"]
            elif "extra" in f:      # a real SHD/SSC file: 700 channels, whatever a sample uses
                sensor = (SHD_CHANNELS, 1, 1)
            elif ragged:            # the widest channel of the whole file, same for every sample
                sensor = (max((int(np.max(u)) for u in units[()] if len(u)), default=0) + 1, 1, 1)
            else:
                sensor = None
    # seconds -> µs; rounding is the unit conversion, not a loss the user must fix
    with np.errstate(invalid="ignore", over="ignore"):
        t_us = np.rint(t_s * 1e6)
    if sensor is not None and not known and (np.asarray(p) == 0).any():
        sensor = (sensor[0], 1, 2)
    events, sensor = _validate({"t": t_us, "x": x, "p": p}, sensor, name, sort)
    return EventSample(events, sensor, _label(label, name), name, cls)


def load_dataset(path) -> EventDataset:
    """Read a dataset ``.npz`` (``events`` concatenated, ``offsets`` (S+1), ``labels`` (S,),
    optional ``split``, ``sensor_size``, ``classes``, ``params`` (JSON text); any other key is
    kept in ``params``). Structure is checked here; each sample's events when it is taken."""
    path = Path(path)
    name = str(path)
    if _check_path(path, name) != ".npz":
        raise EventFileError(f"{name}: a dataset must be an .npz file; fix: give the .npz "
                             f"written by `cimspice datasets make`")
    with _reading(name, ".npz"):
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    for key in ("events", "offsets", "labels"):
        if key not in data:
            raise EventFileError(f"{name}: field '{key}': missing from the dataset; fix: a "
                                 f"dataset .npz needs events, offsets, labels")
    events = data["events"]
    _columns_of(events, name)
    off = data["offsets"]
    if off.ndim != 1 or off.size < 1 or off.dtype.kind not in "iu":
        _fail(name, "offsets", f"shape {off.shape} dtype {off.dtype}",
              "store S+1 integer offsets")
    off = off.astype(np.int64)
    down = np.diff(off) < 0
    if off[0] != 0 or off[-1] != events.size or down.any():
        where = f", decreasing at index {_first(down) + 1}" if down.any() else ""
        _fail(name, "offsets", f"must rise from 0 to {events.size} (got {off[0]}..{off[-1]}{where})",
              "store offsets = [0, cumsum(sample sizes)]")
    s = off.size - 1
    labels = np.asarray(data["labels"]).ravel()
    if labels.size != s or labels.dtype.kind not in "iu":
        _fail(name, "labels", f"{labels.size} values of dtype {labels.dtype} for {s} samples",
              "store one integer label per sample")
    split = data.get("split")
    if split is not None and np.asarray(split).size != s:
        _fail(name, "split", f"{np.asarray(split).size} values for {s} samples",
              "store one split entry per sample")
    audio = "y" not in events.dtype.names
    sensor = data.get("sensor_size")
    if sensor is None:
        cols = _columns_of(events, name)
        sensor = (int(np.max(cols["x"], initial=0)) + 1,
                  1 if audio else int(np.max(cols["y"], initial=0)) + 1, 1 if audio else 2)
    sensor = _check_sensor(sensor, name, audio)
    classes = tuple(str(c) for c in np.atleast_1d(data.get("classes", np.array([], str))))
    params = {}
    for k, v in data.items():
        if k in _DATASET_KEYS:
            continue
        params[k] = v.item() if v.ndim == 0 else v
    if "params" in data:
        text = str(data["params"])
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = None
        params.update(parsed if isinstance(parsed, dict) else {"params": text})
    return EventDataset(events, off, labels.astype(np.int64),
                        None if split is None else np.asarray(split), sensor, classes, params,
                        name)


# --------------------------------------------------------------------------- writing

def _atomic_write(path: Path, write: Callable[[str], None]) -> None:
    """Write via ``write(tmp_path)`` to a temp file beside ``path``, then rename over it."""
    from .results import atomic_path

    with atomic_path(path) as tmp:
        write(str(tmp))


def save_events(path, sample: EventSample) -> None:
    """Write ``sample`` by extension (``.npz``, ``.npy``, ``.csv``, ``.h5``/``.hdf5`` SHD
    layout, audio only), atomically. The events are validated first; nothing is written on
    error. ``.npy`` keeps only the events (sensor size is inferred again on reading)."""
    path = Path(path)
    name = str(path)
    ext = path.suffix.lower()
    if ext not in EXTENSIONS:
        raise EventFileError(f"{name}: unknown extension '{path.suffix}'; fix: use one of "
                             f"{', '.join(EXTENSIONS)}")
    if not path.parent.is_dir():
        raise EventFileError(f"{name}: directory {str(path.parent)!r} does not exist; "
                             f"fix: create it first")
    ev, sensor = _validate(_columns_of(sample.events, name), sample.sensor_size, name, False)
    label = _label(sample.label, name)
    audio = "y" not in ev.dtype.names

    if ext == ".npz":
        extra = {} if label is None else {"label": np.int64(label)}
        if sample.class_name is not None:
            extra["class_name"] = np.str_(sample.class_name)

        def write(tmp):
            with open(tmp, "wb") as fh:
                np.savez(fh, events=ev, sensor_size=np.asarray(sensor, np.int64), **extra)
    elif ext == ".npy":
        def write(tmp):
            with open(tmp, "wb") as fh:
                np.save(fh, ev, allow_pickle=False)
    elif ext == ".csv":
        def write(tmp):
            buf = io.StringIO()
            buf.write("# sensor_size=%d,%d,%d\n" % sensor)
            if label is not None:
                buf.write(f"# label={label}\n")
            if sample.class_name is not None:
                buf.write(f"# class_name={sample.class_name}\n")
            names = ev.dtype.names
            buf.write(",".join(names) + "\n")
            np.savetxt(buf, np.column_stack([ev[f].astype(np.int64) for f in names]),
                       fmt="%d", delimiter=",")
            with open(tmp, "w", encoding="utf-8", newline="\n") as fh:
                fh.write(buf.getvalue())
    else:
        if not audio:
            raise EventFileError(f"{name}: field 'y': the HDF5 (SHD) layout holds audio events "
                                 f"(t,x,p) only; fix: save vision events as .npz, .npy or .csv")

        def write(tmp):
            import h5py

            with h5py.File(tmp, "w") as f:
                times = f.create_dataset("spikes/times", (1,), h5py.vlen_dtype(np.float64))
                times[0] = ev["t"] * 1e-6
                units = f.create_dataset("spikes/units", (1,), h5py.vlen_dtype(np.uint16))
                units[0] = ev["x"].astype(np.uint16)
                if (ev["p"] != 1).any():    # SHD has no polarity; keep it only when it matters
                    pol = f.create_dataset("spikes/p", (1,), h5py.vlen_dtype(np.int8))
                    pol[0] = ev["p"]
                if label is not None:
                    f["labels"] = np.array([label], np.int64)
                    if sample.class_name is not None:
                        names = [""] * (label + 1)
                        names[label] = sample.class_name
                        f.attrs["classes"] = np.array(names, dtype=h5py.string_dtype())
                f.attrs["sensor_size"] = np.asarray(sensor, np.int64)
    _atomic_write(path, write)


# --------------------------------------------------------------------------- transforms

@dataclass(frozen=True)
class CropTime:
    """Keep events with ``t_start_us <= t < t_end_us`` (µs); ``rebase`` shifts t_start to 0."""

    t_start_us: int = 0
    t_end_us: int | None = None
    rebase: bool = False

    def __post_init__(self):
        if self.t_start_us < 0 or (self.t_end_us is not None and self.t_end_us <= self.t_start_us):
            raise InputError(f"CropTime: field 't_end_us': window [{self.t_start_us}, "
                             f"{self.t_end_us}) is empty or negative; fix: 0 <= t_start < t_end")

    def __call__(self, s: EventSample) -> EventSample:
        t = s.events["t"]
        keep = t >= self.t_start_us
        if self.t_end_us is not None:
            keep &= t < self.t_end_us
        ev = s.events[keep]
        if self.rebase:
            ev["t"] -= self.t_start_us
        return replace(s, events=ev)


@dataclass(frozen=True)
class Downsample:
    """Pool pixels (channels) into input channels: ``x // fx``, ``y // fy``.

    Give ``factor`` (int or ``(fx, fy)``; the new size is ``ceil(W / fx)``) or ``target``
    ``(W', H')`` (``fx = ceil(W / W')``; the new sensor size is exactly the target). Audio pools
    ``x`` only.
    """

    factor: int | tuple | None = None
    target: tuple | None = None

    def __post_init__(self):
        given = [v for v in (self.factor, self.target) if v is not None]
        vals = [int(v) for g in given for v in np.atleast_1d(g)]
        if len(given) != 1 or not vals or min(vals) < 1:
            raise InputError(f"Downsample: field 'factor': factor={self.factor!r}, "
                             f"target={self.target!r}; fix: give exactly one, positive integers")

    def __call__(self, s: EventSample) -> EventSample:
        w, h, p = s.sensor_size
        if self.factor is not None:
            fx, fy = (np.atleast_1d(self.factor).tolist() * 2)[:2]
            new_w, new_h = -(-w // fx), -(-h // fy)
        else:
            tgt = np.atleast_1d(self.target).tolist()
            tw, th = tgt[0], tgt[1] if len(tgt) > 1 else (1 if s.is_audio else tgt[0])
            if tw > w or th > h:
                raise InputError(f"Downsample: field 'target': {(tw, th)} is larger than the "
                                 f"sensor {(w, h)}; fix: pick a target <= the sensor size")
            fx, fy = -(-w // tw), -(-h // th)
            new_w, new_h = tw, th
        ev = s.events.copy()
        ev["x"] //= fx
        if not s.is_audio:
            ev["y"] //= fy
        else:
            new_h = 1
        return replace(s, events=ev, sensor_size=(int(new_w), int(new_h), p))


@dataclass(frozen=True)
class MergePolarity:
    """ON and OFF events become one channel: ``p = 0``, ``P = 1``."""

    def __call__(self, s: EventSample) -> EventSample:
        ev = s.events.copy()
        ev["p"] = 0
        w, h, _ = s.sensor_size
        return replace(s, events=ev, sensor_size=(w, h, 1))


@dataclass(frozen=True)
class Refractory:
    """Drop an event that comes less than ``dt_us`` after the last *kept* event of its
    channel ``(x, y, p)`` (a DVS pixel's refractory period)."""

    dt_us: int

    def __post_init__(self):
        if not self.dt_us >= 0:
            raise InputError(f"Refractory: field 'dt_us': {self.dt_us!r} is negative; "
                             f"fix: give a period >= 0 µs")

    def __call__(self, s: EventSample) -> EventSample:
        ev = s.events
        if ev.size == 0 or self.dt_us == 0:
            return s
        w, h, _ = s.sensor_size
        key = ev["x"].astype(np.int64)
        if not s.is_audio:
            key = key + w * ev["y"].astype(np.int64)
        key = key + w * h * ev["p"].astype(np.int64)
        order = np.lexsort((ev["t"], key))
        t, k = ev["t"][order], key[order]
        # An event farther than dt_us from its channel's previous event is kept whatever
        # happened before; only the rest needs the sequential last-kept rule.
        first = np.r_[True, k[1:] != k[:-1]]
        close = ~first & (np.r_[0, np.diff(t)] < self.dt_us)
        keep = ~close
        idx = np.flatnonzero(close)
        if idx.size:
            tl, cl, kl = t.tolist(), close.tolist(), keep.tolist()
            last = 0
            for i in idx.tolist():
                if not cl[i - 1]:       # i - 1 opened this burst and was kept
                    last = tl[i - 1]
                if tl[i] - last >= self.dt_us:
                    kl[i] = True
                    last = tl[i]
            keep = np.array(kl, bool)
        kept = np.zeros(ev.size, bool)
        kept[order[keep]] = True
        return replace(s, events=ev[kept])


@dataclass(frozen=True)
class TimeScale:
    """Multiply timestamps by ``factor`` (rounded to int64 µs). Prefer ``make_schedule``'s
    ``time_scale`` when the rounding matters (it scales in float seconds)."""

    factor: float

    def __post_init__(self):
        if not (math.isfinite(self.factor) and self.factor > 0):
            raise InputError(f"TimeScale: field 'factor': {self.factor!r}; fix: give a finite "
                             f"factor > 0")

    def __call__(self, s: EventSample) -> EventSample:
        ev = s.events.copy()
        t = np.rint(ev["t"] * float(self.factor))
        if t.size and t.max() >= _T_LIMIT:
            raise InputError(f"TimeScale: field 'factor': {self.factor} makes timestamps "
                             f"overflow int64 µs; fix: use a smaller factor")
        ev["t"] = t.astype(np.int64)
        return replace(s, events=ev)


@dataclass(frozen=True)
class Compose:
    """Apply transforms in order."""

    transforms: Sequence[Callable[[EventSample], EventSample]] = ()

    def __call__(self, s: EventSample) -> EventSample:
        for tr in self.transforms:
            s = tr(s)
        return s


def to_channels(sample: EventSample, split_polarity: bool = True
                ) -> tuple[np.ndarray, np.ndarray, int]:
    """Map events to input channels: ``(t_us int64, c int64, n_channels)``.

    Vision: ``c = p*H*W + y*W + x``; audio: ``c = p*C + x``. Polarity is a channel dimension
    only when ``split_polarity`` and the sensor has ``P = 2``; otherwise ``c = y*W + x`` / ``x``.
    """
    w, h, p = sample.sensor_size
    ev = sample.events
    c = ev["x"].astype(np.int64)
    if not sample.is_audio:
        c += w * ev["y"].astype(np.int64)
    n = w * h
    if split_polarity and p >= 2:
        c += n * ev["p"].astype(np.int64)
        n *= 2
    return ev["t"].astype(np.int64), c, int(n)


def event_stats(sample: EventSample) -> dict:
    """What a user checks first: counts, time span, channels used, rate, polarity balance."""
    t, c, n_ch = to_channels(sample, split_polarity=True)
    span_us = int(t[-1] - t[0]) if t.size else 0
    n_on = int((sample.events["p"] == 1).sum())
    return {
        "kind": "audio" if sample.is_audio else "vision",
        "events": int(t.size),
        "t_first_us": int(t[0]) if t.size else 0,
        "t_last_us": int(t[-1]) if t.size else 0,
        "duration_ms": span_us / 1e3,
        "sensor_size": tuple(sample.sensor_size),
        "n_channels": n_ch,
        "channels_used": int(np.unique(c).size),
        "rate_hz": t.size / (span_us * 1e-6) if span_us > 0 else float("nan"),
        "n_on": n_on,
        "n_off": int(t.size - n_on),
        "label": sample.label,
        "class_name": sample.class_name,
    }


# --------------------------------------------------------------------------- schedule

def _check_args(t_us, c, n_rows, t_p, t_rise, min_gap, merge, time_scale, t_end):
    def bad(fld, what, fix):
        raise InputError(f"make_schedule: field '{fld}': {what}; fix: {fix}")

    for fld, v in (("t_p", t_p), ("t_rise", t_rise), ("min_gap", min_gap),
                   ("time_scale", time_scale)):
        if not (isinstance(v, (int, float, np.floating, np.integer)) and math.isfinite(v) and v > 0):
            bad(fld, f"{v!r} is not a finite value > 0", f"give {fld} > 0 (seconds)"
                if fld != "time_scale" else "give a factor > 0")
    if not t_rise < t_p:
        bad("t_rise", f"{t_rise} s is not shorter than t_p = {t_p} s", "use t_rise < t_p")
    if merge not in MERGE_MODES:
        bad("merge", f"{merge!r} unknown", f"use one of {', '.join(MERGE_MODES)}")
    if not (isinstance(n_rows, (int, np.integer)) and n_rows >= 1):
        bad("n_rows", f"{n_rows!r}", "give the number of input rows (>= 1)")
    if t_end is not None and not (math.isfinite(t_end) and t_end >= 0):
        bad("t_end", f"{t_end!r}", "give the stream end in µs (>= 0) or None")
    t_us, c = np.asarray(t_us), np.asarray(c)
    if t_us.ndim != 1 or t_us.shape != c.shape:
        bad("c", f"shape {c.shape} does not match t_us {t_us.shape}", "give 1-D arrays of "
            "equal length")
    if t_us.size:
        if t_us.dtype.kind not in "iuf" or not np.all(np.isfinite(t_us)) or t_us.min() < 0:
            bad("t_us", "not finite, non-negative numbers", "give event times in µs >= 0")
        if c.dtype.kind not in "iu" or c.min() < 0 or c.max() >= n_rows:
            i = _first((c < 0) | (c >= n_rows)) if c.dtype.kind in "iu" else 0
            bad("c", f"channel {_fmt(c[i])} at index {i} is not an integer in [0, {n_rows})",
                "map events with to_channels and pass its n_channels as n_rows")
    return t_us, c


def make_schedule(t_us, c, n_rows: int, *, t_p: float = 100e-6, t_rise: float = 1e-6,
                  min_gap: float = 10e-6, merge: str = "extend", time_scale: float = 1.0,
                  t_end: float | None = None) -> PulseSchedule:
    """Events ``(t_us, c)`` -> per-row pulses (times in seconds after scaling).

    An event at ``t_us`` (µs) becomes a pulse with ``t_on = t_us*1e-6*time_scale + t_rise``:
    its drawn trapezoid starts at ``event time + t_rise/2 > 0``, so every PWL breakpoint is
    strictly after 0. On each row, an event whose trapezoid would start less than ``min_gap``
    after the end of the row's current pulse is

    - ``'extend'``: merged, the pulse grows by ``t_p`` (amplitude 1); the longer pulse is then
      checked against the next events, so merging repeats until a gap appears;
    - ``'count'``: merged, amplitude += 1, width stays ``t_p`` (input arrives earlier);
    - ``'drop'``: dropped (refractory rule).

    So each pulse carries ``amplitude * width / t_p`` events and
    ``sum(...) + n_dropped == n_events``. ``t_end`` is the stream end in µs (same base as
    ``t_us``); ``duration = max(t_end scaled, last pulse end + t_p)``.
    """
    t_us, c = _check_args(t_us, c, n_rows, t_p, t_rise, min_gap, merge, time_scale, t_end)
    t_p, t_rise, min_gap = float(t_p), float(t_rise), float(min_gap)
    on = t_us.astype(np.float64) * 1e-6 * float(time_scale) + t_rise
    order = np.lexsort((on, c))
    rows, ons = c[order].tolist(), on[order].tolist()
    half = t_rise / 2
    extend = merge == "extend"
    out_row, out_on, out_m = [], [], []
    n_dropped = 0
    cur, head, m = -1, 0.0, 0
    # One pass over events in (row, time) order. The gap test is written exactly as
    # PulseSchedule.occupied() computes it, so the min_gap guarantee holds bit for bit.
    for r, o in zip(rows, ons):
        if r == cur:
            width = m * t_p if extend else t_p
            if (o - half) - (head + width + half) < min_gap:
                if merge == "drop":
                    n_dropped += 1
                else:
                    m += 1
                continue
        if m:
            out_row.append(cur)
            out_on.append(head)
            out_m.append(m)
        cur, head, m = r, o, 1
    if m:
        out_row.append(cur)
        out_on.append(head)
        out_m.append(m)
    row = np.asarray(out_row, np.int32)
    t_on = np.asarray(out_on, np.float64)
    mm = np.asarray(out_m, np.float64)
    if extend:
        width, amplitude = mm * t_p, np.ones_like(mm)
    else:
        width, amplitude = np.full_like(mm, t_p), mm
    o = np.lexsort((row, t_on))
    row, t_on, width, amplitude = row[o], t_on[o], width[o], amplitude[o]
    last = float(np.max(t_on + width + half)) if t_on.size else 0.0
    t_end_s = 0.0 if t_end is None else float(t_end) * 1e-6 * float(time_scale)
    n_events = int(t_us.size)
    return PulseSchedule(
        row=row, t_on=t_on, width=width, amplitude=amplitude, n_rows=int(n_rows), t_p=t_p,
        t_rise=t_rise, min_gap=min_gap, duration=max(t_end_s, last + t_p),
        n_events=n_events, n_merged=n_events - row.size - n_dropped, n_dropped=n_dropped)
