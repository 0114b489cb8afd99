"""Event files: readers and writers for the four formats, chosen by extension.

- ``.npz``: key ``events`` (structured array), optional ``sensor_size``, ``label``,
  ``class_name``. A *dataset* ``.npz`` (key ``offsets``) holds many samples, see
  :func:`load_dataset`; pick one with ``index``.
- ``.npy``: the structured array alone (sensor size inferred, no label).
- ``.csv``: optional ``# sensor_size=W,H,P`` / ``# label=L`` lines, then a header
  ``t,x,y,p`` or ``t,x,p``, then one event per line.
- ``.h5``/``.hdf5``: spiking-audio layout of SHD/SSC: ``spikes/times`` (seconds, one
  variable-length array per sample), ``spikes/units``, ``labels``. Read one sample with
  ``index``, or the whole file as a dataset with :func:`load_dataset`;
  :func:`load_train_test` joins a training and a test file (split 0 / 1).

Every reader hands the columns to :func:`cimspice.events.validate_columns`, the one place
where events are checked; any low-level read failure becomes one :class:`EventFileError` line.
"""

from __future__ import annotations

import io
import json
import zipfile
import zlib
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

import h5py
import numpy as np

from ..errors import CimspiceError, EventFileError, one_line
from ..events import (AUDIO_DTYPE, EventDataset, EventSample, as_label, check_sensor, columns_of, fail_field,
                      first_true, pick_index, validate_columns)
from .files import atomic_path

SHD_CHANNELS = 700          # SHD and SSC both use 700 cochlea channels
EXTENSIONS = (".npz", ".npy", ".csv", ".h5", ".hdf5")
_DATASET_KEYS = ("events", "offsets", "labels", "split", "sensor_size", "classes", "params")


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
            f"{name}: not a readable {kind} file (truncated or corrupt? {one_line(exc)}); "
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
        pick_index(name, index, 1)
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
        events, sensor = validate_columns(columns_of(ev, name), sensor, name, sort)
        return EventSample(events, sensor, as_label(label, name), name, cls)
    if ext == ".npy":
        pick_index(name, index, 1)
        with _reading(name, ".npy"):
            ev = np.load(path, allow_pickle=False)
        events, sensor = validate_columns(columns_of(ev, name), None, name, sort)
        return EventSample(events, sensor, None, name)
    if ext == ".csv":
        pick_index(name, index, 1)
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
        fail_field(name, "t", "no header and no events", "start the file with a header line "
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
            fail_field(name, fld, f"event {k} has {len(c)} values but the header has "
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
    events, sensor = validate_columns(cols, sensor, name, sort)
    return EventSample(events, sensor, as_label(label, name), name, meta.get("class_name"))


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
                fail_field(name, fld, f"{s!r} at index {k} is not a number",
                      f"write {fld} as a number on every line")
        raise


def _load_h5(path: Path, name: str, index, sort: bool) -> EventSample:
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
                fail_field(name, "spikes/units", f"{n_units} samples but spikes/times has {n}",
                      "write one units array per times array")
            i = pick_index(name, index, n)
            t_s = np.asarray(times[i] if ragged else times[()], dtype=np.float64)
            x = np.asarray(units[i] if ragged else units[()])
            pol = f["spikes/p"] if "spikes/p" in f else None
            p = np.ones(t_s.size, np.int8) if pol is None else np.asarray(
                pol[i] if ragged else pol[()])
            label, cls = None, None
            if "labels" in f:
                labels = np.asarray(f["labels"][()]).ravel()
                if labels.size != n:
                    fail_field(name, "labels", f"{labels.size} labels for {n} samples",
                          "write one label per sample")
                label = labels[i]
                names = _h5_class_names(f)
                if 0 <= int(label) < len(names):
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
    events, sensor = validate_columns({"t": t_us, "x": x, "p": p}, sensor, name, sort)
    return EventSample(events, sensor, as_label(label, name), name, cls)


def load_dataset(path) -> EventDataset:
    """Read a dataset: an SHD/SSC-layout ``.h5``/``.hdf5`` (:func:`_load_h5_dataset`), or a
    dataset ``.npz`` (``events`` concatenated, ``offsets`` (S+1), ``labels`` (S,),
    optional ``split``, ``sensor_size``, ``classes``, ``params`` (JSON text); any other key is
    kept in ``params``). Structure is checked here; each sample's events when it is taken."""
    path = Path(path)
    name = str(path)
    ext = _check_path(path, name)
    if ext in (".h5", ".hdf5"):
        return _load_h5_dataset(path, name)
    if ext != ".npz":
        raise EventFileError(f"{name}: a dataset must be an .npz file or an SHD/SSC-layout .h5; "
                             f"fix: give the .npz written by `cimspice datasets make` or an .h5")
    with _reading(name, ".npz"):
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    for key in ("events", "offsets", "labels"):
        if key not in data:
            raise EventFileError(f"{name}: field '{key}': missing from the dataset; fix: a "
                                 f"dataset .npz needs events, offsets, labels")
    events = data["events"]
    columns_of(events, name)
    off = data["offsets"]
    if off.ndim != 1 or off.size < 1 or off.dtype.kind not in "iu":
        fail_field(name, "offsets", f"shape {off.shape} dtype {off.dtype}",
              "store S+1 integer offsets")
    off = off.astype(np.int64)
    down = np.diff(off) < 0
    if off[0] != 0 or off[-1] != events.size or down.any():
        where = f", decreasing at index {first_true(down) + 1}" if down.any() else ""
        fail_field(name, "offsets", f"must rise from 0 to {events.size} (got {off[0]}..{off[-1]}{where})",
              "store offsets = [0, cumsum(sample sizes)]")
    s = off.size - 1
    labels = np.asarray(data["labels"]).ravel()
    if labels.size != s or labels.dtype.kind not in "iu":
        fail_field(name, "labels", f"{labels.size} values of dtype {labels.dtype} for {s} samples",
              "store one integer label per sample")
    split = data.get("split")
    if split is not None and np.asarray(split).size != s:
        fail_field(name, "split", f"{np.asarray(split).size} values for {s} samples",
              "store one split entry per sample")
    audio = "y" not in events.dtype.names
    sensor = data.get("sensor_size")
    if sensor is None:
        cols = columns_of(events, name)
        sensor = (int(np.max(cols["x"], initial=0)) + 1,
                  1 if audio else int(np.max(cols["y"], initial=0)) + 1, 1 if audio else 2)
    sensor = check_sensor(sensor, name, audio)
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


def _h5_class_names(f) -> tuple:
    """Class names of an SHD/SSC file: ``extra/keys`` (SHD/SSC) or the ``classes`` attribute
    (files written by cimspice), indexed by label; () when it has neither."""
    if "extra/keys" in f:
        return tuple(k.decode() if isinstance(k, bytes) else str(k) for k in f["extra/keys"][()])
    if "classes" in f.attrs:
        return tuple(str(k) for k in np.atleast_1d(f.attrs["classes"]))
    return ()


def _h5_column(ds, name: str, key: str, n: int) -> list:
    """The ``n`` per-sample arrays of a ragged (one per sample) or plain (one sample) column."""
    if h5py.check_vlen_dtype(ds.dtype) is None:
        arrays = [np.asarray(ds[()])]
    else:
        arrays = [np.asarray(a) for a in ds[()]]
    if len(arrays) != n:
        fail_field(name, key, f"{len(arrays)} samples but spikes/times has {n}",
                   "write one array per sample")
    return arrays


def _event_column(parts: list, name: str, key: str, offsets: np.ndarray, dtype) -> np.ndarray:
    """Concatenate per-sample arrays into ``dtype`` without silent loss; a value that does
    not fit is one line naming the sample."""
    a = np.concatenate(parts) if parts else np.zeros(0)
    if a.dtype.kind not in "iufb":
        fail_field(name, key, f"dtype {a.dtype} is not numeric", f"store {key} as numbers")
    lim = np.iinfo(dtype)
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(a.astype(np.float64)) | (a < lim.min) | (a > lim.max) | (a != np.rint(a))
    if bad.any():
        i = first_true(bad)
        k = int(np.searchsorted(offsets, i, side="right") - 1)
        fail_field(name, key, f"sample {k}: value {a[i]!r} is not an integer in "
                   f"[{lim.min}, {lim.max}]", f"store {key} as such integers")
    return a.astype(dtype)


def _load_h5_dataset(path: Path, name: str) -> EventDataset:
    """An SHD/SSC-layout file as a dataset: ``spikes/times`` (s) and ``spikes/units`` (one
    array per sample), optional ``spikes/p``, ``labels`` (required here), class names from
    ``extra/keys`` or the ``classes`` attribute, sensor size as :func:`_load_h5` infers it.
    Events are concatenated with offsets (times in µs); each sample is validated when taken."""
    with _reading(name, "HDF5"):
        with h5py.File(path, "r") as f:
            for key in ("spikes/times", "spikes/units", "labels"):
                if key not in f:
                    raise EventFileError(
                        f"{name}: field '{key}': missing dataset; fix: use the SHD/SSC layout "
                        f"(spikes/times in seconds, spikes/units, labels)")
            times = f["spikes/times"]
            n = len(times) if h5py.check_vlen_dtype(times.dtype) is not None else 1
            t_parts = _h5_column(times, name, "spikes/times", n)
            x_parts = _h5_column(f["spikes/units"], name, "spikes/units", n)
            p_parts = (_h5_column(f["spikes/p"], name, "spikes/p", n) if "spikes/p" in f
                       else [np.ones(t.size, np.int8) for t in t_parts])
            labels = np.asarray(f["labels"][()]).ravel()
            names = _h5_class_names(f)
            known = "sensor_size" in f.attrs
            sensor = f.attrs["sensor_size"] if known else (SHD_CHANNELS, 1, 1) if "extra" in f else None
    if labels.size != n or labels.dtype.kind not in "iu" or (labels < 0).any():
        fail_field(name, "labels", f"{labels.size} values of dtype {labels.dtype} for {n} samples",
                   "write one non-negative integer label per sample")
    for k, (t, x, p) in enumerate(zip(t_parts, x_parts, p_parts)):
        if not t.size == x.size == p.size:
            fail_field(name, "spikes/units", f"sample {k}: {x.size} units and {p.size} polarities "
                       f"for {t.size} times", "write one unit (and polarity) per spike time")
    offsets = np.concatenate([[0], np.cumsum([t.size for t in t_parts])]).astype(np.int64)
    with np.errstate(invalid="ignore", over="ignore"):   # seconds -> µs is the unit conversion
        t_us = [np.rint(np.asarray(t, np.float64) * 1e6) for t in t_parts]
    events = np.empty(int(offsets[-1]), AUDIO_DTYPE)
    for key, parts in (("t", t_us), ("x", x_parts), ("p", p_parts)):
        fld = {"t": "spikes/times", "x": "spikes/units", "p": "spikes/p"}[key]
        events[key] = _event_column(parts, name, fld, offsets, AUDIO_DTYPE[key])
    if sensor is None:      # the widest channel of the whole file, same for every sample
        sensor = (int(np.max(events["x"], initial=0)) + 1, 1, 2 if (events["p"] == 0).any() else 1)
    sensor = check_sensor(sensor, name, True)
    return EventDataset(events, offsets, labels.astype(np.int64), None, sensor, names,
                        {"name": path.stem}, name)


def load_train_test(train, test) -> EventDataset:
    """One dataset from a training file and a test file (``split`` 0 for the first, 1 for the
    second); their sensor sizes must agree."""
    a, b = load_dataset(train), load_dataset(test)
    if tuple(a.sensor_size) != tuple(b.sensor_size):
        raise EventFileError(f"{b.source}: sensor size {tuple(b.sensor_size)} differs from "
                             f"{tuple(a.sensor_size)} of the training file {a.source}; fix: give a "
                             f"train and a test file of the same sensor")
    if a.events.dtype != b.events.dtype:
        raise EventFileError(f"{b.source}: field 'y': vision/audio events differ from those of "
                             f"the training file {a.source}; fix: give files of one sensor")
    return EventDataset(np.concatenate([a.events, b.events]),
                        np.concatenate([a.offsets, b.offsets[1:] + a.offsets[-1]]),
                        np.concatenate([a.labels, b.labels]),
                        np.repeat(np.array([0, 1], np.int8), [len(a), len(b)]), a.sensor_size,
                        a.classes or b.classes, {"name": f"{Path(a.source).stem}+{Path(b.source).stem}"},
                        f"{a.source}+{b.source}")


# --------------------------------------------------------------------------- writing

def _atomic_write(path: Path, write: Callable[[str], None]) -> None:
    """Write via ``write(tmp_path)`` to a temp file beside ``path``, then rename over it."""
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
    ev, sensor = validate_columns(columns_of(sample.events, name), sample.sensor_size, name, False)
    label = as_label(sample.label, name)
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


