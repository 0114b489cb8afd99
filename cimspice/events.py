"""Event streams: containers, validation (the one boundary) and tonic-style transforms.

Events are NumPy structured arrays (tonic-compatible): vision ``t`` (int64, µs), ``x``, ``y``
(int16), ``p`` (int8, 0/1); audio ``t``, ``x`` (channel), ``p``. ``sensor_size`` is
``(W, H, P)`` for vision and ``(C, 1, P)`` for audio, like tonic; ``P = 1`` means polarity is
not a channel dimension (SHD audio has ``p = 1`` everywhere and ``sensor_size = (700, 1, 1)``).

Every stream is validated once, when it enters (:func:`make_sample`, the readers of
:mod:`cimspice.io.event_files`); transforms and the scheduler (:mod:`cimspice.schedule`) trust
an :class:`EventSample`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Callable, Sequence

import numpy as np

from .errors import EventFileError, InputError

VISION_DTYPE = np.dtype([("t", "<i8"), ("x", "<i2"), ("y", "<i2"), ("p", "i1")])
AUDIO_DTYPE = np.dtype([("t", "<i8"), ("x", "<i2"), ("p", "i1")])

VISION_FIELDS = ("t", "x", "y", "p")
AUDIO_FIELDS = ("t", "x", "p")

INT16_MAX = int(np.iinfo(np.int16).max)
T_LIMIT = 2.0 ** 63        # float timestamps (µs) at or above this do not fit int64

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
        i = pick_index(self.source, index, len(self))
        ev = self.events[int(self.offsets[i]):int(self.offsets[i + 1])]
        label = int(self.labels[i])
        name = f"{self.source} (sample {i})"
        events, sensor = validate_columns(columns_of(ev, name), self.sensor_size, name, sort)
        cls = self.classes[label] if 0 <= label < len(self.classes) else None
        return EventSample(events, sensor, label, self.source, cls)



# --------------------------------------------------------------------------- validation

def fail_field(name: str, fld: str, what: str, fix: str):
    raise EventFileError(f"{name}: field '{fld}': {what}; fix: {fix}")


def first_true(mask: np.ndarray) -> int:
    return int(np.argmax(mask))


def fmt_value(v) -> str:
    v = v.item() if hasattr(v, "item") else v
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e15:
        return str(int(v))
    return repr(v) if isinstance(v, str) else f"{v:g}" if isinstance(v, float) else str(v)


def _as_int(a: np.ndarray, name: str, fld: str, fix_unit: str) -> np.ndarray:
    """Convert a column to int64 without silent loss: NaN, overflow, fractions are errors."""
    a = np.asarray(a)
    if a.ndim != 1:
        fail_field(name, fld, f"has shape {a.shape}, expected one value per event",
              "store each field as a 1-D column")
    if a.dtype.kind == "b":
        return a.astype(np.int64)
    if a.dtype.kind == "u":
        big = a > np.iinfo(np.int64).max
        if big.any():
            i = first_true(big)
            fail_field(name, fld, f"{fmt_value(a[i])} at index {i} does not fit int64",
                  f"store {fld} as integers below 2^63")
        return a.astype(np.int64)
    if a.dtype.kind == "i":
        return a.astype(np.int64)
    if a.dtype.kind != "f":
        fail_field(name, fld, f"not numeric (dtype {a.dtype})", f"store {fld} as integers")
    bad = np.isnan(a)
    if bad.any():
        i = first_true(bad)
        fail_field(name, fld, f"NaN at index {i}", f"remove or repair the event at index {i}")
    bad = np.abs(a) >= T_LIMIT
    if bad.any():
        i = first_true(bad)
        fail_field(name, fld, f"{fmt_value(a[i])} at index {i} overflows int64{fix_unit}",
              f"check the unit; {fld} must stay below 2^63")
    bad = a != np.floor(a)
    if bad.any():
        i = first_true(bad)
        fail_field(name, fld, f"not an integer at index {i} ({fld}={fmt_value(a[i])})",
              f"{fld} must be whole numbers{' of' + fix_unit if fix_unit else ''}; round them")
    return a.astype(np.int64)


def check_sensor(sensor, name: str, audio: bool) -> tuple:
    try:
        vals = np.asarray(sensor).ravel()
        ok = vals.size == 3 and vals.dtype.kind in "iuf" and np.all(vals == np.floor(vals))
    except (TypeError, ValueError):
        ok = False
    if not ok:
        fail_field(name, "sensor_size", f"{sensor!r} is not three integers",
              "give sensor_size as (W, H, P) for vision or (C, 1, P) for audio")
    w, h, p = (int(v) for v in vals)
    if min(w, h, p) < 1 or max(w, h) > INT16_MAX + 1 or p > 2:
        fail_field(name, "sensor_size", f"{(w, h, p)} out of range",
              f"W, H in 1..{INT16_MAX + 1} and P in {{1, 2}}")
    if audio and h != 1:
        fail_field(name, "sensor_size", f"{(w, h, p)} has H={h} for audio events (no 'y' field)",
              "give audio sensor_size as (C, 1, P)")
    return (w, h, p)


def validate_columns(cols: dict, sensor, name: str, sort: bool) -> tuple[np.ndarray, tuple]:
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
            fail_field(name, f, f"{len(cols[f])} values but 't' has {n}",
                  "give every field one value per event")
    if n == 0:
        fail_field(name, "t", "no events (empty stream)", "give a file with at least one event")

    t = np.asarray(cols["t"])
    if t.dtype.kind in "if" and (t < 0).any():
        i = first_true(t < 0)
        fail_field(name, "t", f"negative at index {i} (t={fmt_value(t[i])})",
              "shift the timestamps so they start at 0 or later")
    t = _as_int(t, name, "t", " µs")
    sensor = None if sensor is None else check_sensor(sensor, name, audio)
    out = np.empty(n, AUDIO_DTYPE if audio else VISION_DTYPE)
    out["t"] = t
    for f, dim in (("x", 0), ("y", 1)):
        if f not in names:
            continue
        v = _as_int(cols[f], name, f, "")
        hi = sensor[dim] if sensor is not None else INT16_MAX
        bad = (v < 0) | (v >= hi)
        if bad.any():
            i = first_true(bad)
            rng = ("is negative" if v[i] < 0 else f"is outside the sensor (0 <= {f} < {hi})"
                   if sensor is not None else f"exceeds {hi - 1} (int16)")
            fail_field(name, f, f"{fmt_value(v[i])} at index {i} {rng}",
                  "give the right sensor_size or crop/remap the events")
        out[f] = v
    p = _as_int(cols["p"], name, "p", "")
    bad = (p != 0) & (p != 1)
    if bad.any():
        i = first_true(bad)
        fail_field(name, "p", f"value {fmt_value(p[i])} at index {i} is not 0 or 1",
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
            i = first_true(dt < 0) + 1
            fail_field(name, "t", f"not sorted at index {i} (t={out['t'][i]} < {out['t'][i - 1]})",
                  "pass --sort (sort=True) or sort the events by t")
    return out, sensor


def columns_of(arr: np.ndarray, name: str) -> dict:
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
    cols = dict(events) if isinstance(events, dict) else columns_of(np.asarray(events), source)
    ev, sensor = validate_columns(cols, sensor_size, source, sort)
    return EventSample(ev, sensor, as_label(label, source), source, class_name)


def as_label(label, name: str) -> int | None:
    if label is None:
        return None
    a = np.asarray(label)
    if a.size != 1 or a.dtype.kind not in "iub":
        raise EventFileError(f"{name}: field 'label': {label!r} is not one integer; "
                             f"fix: store the class index as an integer")
    return int(a.ravel()[0])



def pick_index(name: str, index, n: int) -> int:
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
        if t.size and t.max() >= T_LIMIT:
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


