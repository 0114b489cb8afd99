"""Built-in event datasets, generated offline from a seed in a few seconds.

Three generators (``DATASETS``):

- ``dvs-bars``: a bright bar sweeps across a small DVS (default 16x16, ON/OFF) in one of four
  directions, crossing in ~100 ms (slow) or ~40 ms (fast), entering 0-40 ms into a 150-ms
  stream (8 classes = direction x speed). States sampled on a fixed grid separate them when the
  decays are ~10-50 ms, not when they are ~1 ms (no memory).
- ``dvs-digits``: scikit-learn's bundled ``load_digits`` images (digits 0, 2, 6, 7), upsampled
  and moved along three N-MNIST-style saccades.
- ``audio-chirps``: class-specific exponential frequency sweeps (up/down x low/high band) in
  white noise, through a log-spaced Butterworth band-pass bank, rectified and low-passed, then
  send-on-delta on the log envelope (rising and falling crossings, all ``p = 1``; SHD-like).

Both DVS datasets use one log-intensity change detector (ESIM/v2e style): per-pixel ON/OFF
contrast thresholds with Gaussian mismatch (fixed per dataset seed: one "sensor"), linear
interpolation of crossing times between rendered frames, a per-pixel refractory period, and
Poisson background events.

Determinism: sample ``i`` is drawn from ``default_rng(SeedSequence(seed, spawn_key=(0, i)))``, so it
is the same whatever ``n`` is. Labels are ``i % n_classes`` (balanced). The split is fixed and
stratified: the ``k``-th sample of a class (``k = i // n_classes``) is a test sample iff
``k % 4 == 1`` (75/25 train/test; ``split`` is int8, 0 = train, 1 = test). ``dvs-digits`` also
keeps train and test images disjoint (sklearn images of each class, every 4th one is test-only).

File layout (:func:`save_dataset`, one ``.npz``, readable with ``np.load(allow_pickle=False)``):
``events`` (all samples concatenated, each sample sorted by ``t`` in µs from its own start),
``offsets`` (S+1 int64), ``labels`` (S int64), ``split`` (S int8), ``sensor_size`` (int64, tonic
style: vision ``(W, H, 2)``, audio ``(C, 1, 1)``), ``classes`` (unicode), ``name`` (0-d unicode),
``seed`` (0-d int64), ``params`` (0-d unicode JSON of the generator parameters; ``duration_us``
in it is the nominal stream length, which is longer than the last event).
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from .errors import InputError
from .events import AUDIO_DTYPE, EventDataset, EventSample, make_sample
from .generators import (BarsParams, ChirpsParams, DigitsParams, bars_classes, bars_sample,
                         chirps_classes, chirps_context, chirps_sample, digits_context,
                         digits_sample, dvs_context)
from .io.files import atomic_path
from .io.files import check_output_path as check_writable

SPLIT_TRAIN = 0
SPLIT_TEST = 1


def split_rule(labels) -> np.ndarray:
    """The one train/test split rule (int8, 0 = train, 1 = test): the ``k``-th sample of each
    class, in file order, is a test sample iff ``k % 4 == 1`` (75/25, stratified; every class
    with >= 2 samples is in both splits). The built-in datasets are made with it, and a dataset
    file without a ``split`` is split with it."""
    labels = np.asarray(labels)
    split = np.zeros(labels.size, dtype=np.int8)
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        split[idx[np.arange(idx.size) % 4 == 1]] = SPLIT_TEST
    return split


def dataset_split(ds: EventDataset) -> np.ndarray:
    """The split of a dataset: its own ``split`` if it has one, else :func:`split_rule`."""
    return np.asarray(ds.split) if ds.split is not None else split_rule(ds.labels)


def audio_stream(n_channels: int, n_events: int, duration_us: int, seed: int, *,
                 burst: int = 0, label: int | None = None, source: str = "synthetic") -> EventSample:
    """The seeded synthetic audio stream of tests, benches and validation cases.

    ``n_events`` events at uniform random times in ``[0, duration_us)`` µs on uniform random
    channels, plus a burst of simultaneous events at ``duration_us // 2`` on channels
    ``0 .. burst-1`` (superposition on many rows at one instant); sorted by (t, channel).
    """
    rng = np.random.default_rng(seed)
    t = rng.integers(0, duration_us, n_events)
    x = rng.integers(0, n_channels, n_events)
    t = np.concatenate([t, np.full(burst, duration_us // 2)])
    x = np.concatenate([x, np.arange(burst) % n_channels])
    order = np.lexsort((x, t))
    ev = np.zeros(t.size, dtype=AUDIO_DTYPE)
    ev["t"], ev["x"], ev["p"] = t[order], x[order], 1
    return make_sample(ev, sensor_size=(n_channels, 1, 1), label=label, source=source)


# --------------------------------------------------------------------------------------------
# Dataset container and registry
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class GeneratedDataset(EventDataset):
    """A generated dataset: :class:`cimspice.events.EventDataset` (so ``sample(i)`` gives a
    validated :class:`~cimspice.events.EventSample`) plus the generator's ``name`` and ``seed``.
    ``params`` holds the generator parameters (``duration_us``: nominal stream length)."""

    name: str = ""
    seed: int = 0

    def sample_events(self, i: int) -> np.ndarray:
        """Events of sample ``i`` (a view), t in µs from the sample's start."""
        return self.events[self.offsets[i]:self.offsets[i + 1]]

    @property
    def duration_us(self) -> int:
        """Nominal stream length of every sample (µs); pass it as ``make_schedule(t_end=...)``."""
        return int(self.params["duration_us"])

    def as_arrays(self) -> dict:
        """The arrays written by :func:`save_dataset` (no object arrays, no pickle)."""
        return {
            "events": self.events,
            "offsets": np.asarray(self.offsets, dtype=np.int64),
            "labels": np.asarray(self.labels, dtype=np.int64),
            "split": np.asarray(self.split, dtype=np.int8),
            "sensor_size": np.asarray(self.sensor_size, dtype=np.int64),
            "classes": np.asarray(self.classes, dtype=str),
            "name": np.asarray(self.name, dtype=str),
            "seed": np.asarray(self.seed, dtype=np.int64),
            "params": np.asarray(json.dumps(self.params, sort_keys=True), dtype=str),
        }


@dataclass(frozen=True)
class DatasetInfo:
    """Registry entry: what ``cimspice datasets list`` shows and how to generate."""

    name: str
    description: str
    params_type: type
    classes: Callable[[object], tuple]          # params -> class names
    sensor_size: Callable[[object], tuple]      # params -> sensor size
    sample: Callable                            # (params, label, is_test, rng, context) -> events
    context: Callable[[object, int], object]    # (params, seed) -> shared per-dataset state
    default_n: int = 200


def _sample_rng(seed: int, i: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0, i)))



DATASETS: dict[str, DatasetInfo] = {
    "dvs-bars": DatasetInfo(
        name="dvs-bars",
        description="bar sweeping across a DVS in 4 directions x 2 speeds (100 ms vs 40 ms)",
        params_type=BarsParams,
        classes=bars_classes,
        sensor_size=lambda p: (p.size, p.size, 2),
        sample=bars_sample,
        context=dvs_context,
    ),
    "dvs-digits": DatasetInfo(
        name="dvs-digits",
        description="sklearn digits moved along 3 saccades (N-MNIST style), DVS events",
        params_type=DigitsParams,
        classes=lambda p: tuple(str(d) for d in p.digits),
        sensor_size=lambda p: (p.size, p.size, 2),
        sample=digits_sample,
        context=digits_context,
    ),
    "audio-chirps": DatasetInfo(
        name="audio-chirps",
        description="up/down frequency sweeps in noise -> band-pass bank -> send-on-delta spikes",
        params_type=ChirpsParams,
        classes=chirps_classes,
        sensor_size=lambda p: (p.n_channels, 1, 1),
        sample=chirps_sample,
        context=chirps_context,
    ),
}


def list_datasets() -> list[DatasetInfo]:
    """Registry entries in a stable order."""
    return [DATASETS[k] for k in sorted(DATASETS)]


def unknown_dataset(name: str) -> InputError:
    """The one-line error for a dataset name that is not in ``DATASETS``."""
    return InputError(f"unknown dataset {name!r}; known datasets: {', '.join(sorted(DATASETS))}")


def dataset_params(name: str, **params):
    """The parameter dataclass of dataset ``name`` with ``params`` overriding the defaults."""
    if name not in DATASETS:
        raise unknown_dataset(name)
    ptype = DATASETS[name].params_type
    names = {f.name for f in dataclasses.fields(ptype)}
    bad = sorted(set(params) - names)
    if bad:
        raise InputError(f"dataset {name}: unknown parameter {bad[0]!r}; valid parameters: "
                         f"{', '.join(sorted(names))}")
    # JSON round trips turn tuples into lists; keep dataclasses hashable and comparable.
    fixed = {k: _as_tuple(v) for k, v in params.items()}
    return ptype(**fixed)


def _as_tuple(v):
    if isinstance(v, (list, tuple)):
        return tuple(_as_tuple(x) for x in v)
    return v


def _check_params(name: str, p) -> None:
    for f in dataclasses.fields(p):
        v = getattr(p, f.name)
        flat = np.asarray(v, dtype=float).ravel() if not isinstance(v, str) else np.zeros(1)
        if not np.all(np.isfinite(flat)):
            raise InputError(f"dataset {name}: parameter {f.name}={v!r} is not finite; "
                             f"give a finite number")
    positive = ("threshold", "frame_us", "duration_us", "size", "delta", "sample_rate_hz",
                "n_channels", "digit_size", "saccade_ms", "envelope_hz", "bar_width")
    for k in positive:
        if hasattr(p, k) and not getattr(p, k) > 0:
            raise InputError(f"dataset {name}: parameter {k}={getattr(p, k)!r} must be > 0")
    if isinstance(p, BarsParams) and (len(p.crossing_ms) < 1 or min(p.crossing_ms) <= 0):
        raise InputError(f"dataset {name}: crossing_ms={p.crossing_ms!r} must be positive "
                         f"sweep times in ms, e.g. (100, 40)")
    if isinstance(p, DigitsParams):
        if not p.digits or not set(p.digits) <= set(range(10)) or len(set(p.digits)) != len(
                p.digits):
            raise InputError(f"dataset {name}: digits={p.digits!r} must be distinct digits "
                             f"0-9, e.g. (0, 1, 2, 3)")
        if p.digit_size > p.size:
            raise InputError(f"dataset {name}: digit_size={p.digit_size} exceeds size="
                             f"{p.size}; use digit_size <= size")
    if isinstance(p, ChirpsParams):
        if not 0 < p.f_min_hz < p.f_max_hz < 0.5 * p.sample_rate_hz / np.sqrt(
                (p.f_max_hz / p.f_min_hz) ** (1 / max(p.n_channels - 1, 1))):
            raise InputError(f"dataset {name}: need 0 < f_min_hz < f_max_hz with the top band "
                             f"below Nyquist ({0.5 * p.sample_rate_hz:g} Hz); lower f_max_hz")
        if not p.sweeps_hz or any(len(s) != 2 or min(s) <= 0 for s in p.sweeps_hz):
            raise InputError(f"dataset {name}: sweeps_hz must be (f_start, f_end) pairs in Hz")


def make_dataset(name: str, n: int | None = None, seed: int = 0, **params) -> GeneratedDataset:
    """Generate ``n`` samples (default: the dataset's ``default_n``) of dataset ``name``.

    ``params`` override fields of the dataset's parameter dataclass (see ``DATASETS[name]``).
    Same ``(name, n, seed, params)`` -> identical arrays; sample ``i`` does not depend on ``n``.
    """
    p = dataset_params(name, **params)
    _check_params(name, p)
    info = DATASETS[name]
    classes = info.classes(p)
    n = info.default_n if n is None else int(n)
    if n < 1:
        # fewer samples than classes is allowed (a quick look at a few streams); the classes
        # then present are the first n, and a test split needs n >= 2 x classes
        raise InputError(f"dataset {name}: n={n} must be >= 1 (>= {2 * len(classes)} for every "
                         f"class in both the train and the test split)")
    seed = int(seed)
    if seed < 0:
        raise InputError(f"dataset {name}: seed={seed} must be >= 0")
    ctx = info.context(p, seed)
    idx = np.arange(n)
    labels = (idx % len(classes)).astype(np.int64)
    split = split_rule(labels)
    samples = [info.sample(p, int(labels[i]), bool(split[i]), _sample_rng(seed, i), ctx)
               for i in range(n)]
    offsets = np.zeros(n + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([s.size for s in samples])
    return GeneratedDataset(
        events=np.concatenate(samples),
        offsets=offsets,
        labels=labels,
        split=split,
        sensor_size=tuple(int(v) for v in info.sensor_size(p)),
        classes=classes,
        params=json.loads(json.dumps(dataclasses.asdict(p))),
        source=f"<{name} seed={seed} n={n}>",
        name=name,
        seed=seed,
    )


def check_output_path(path: str | os.PathLike) -> Path:
    """Refuse an output that is not ``.npz`` or whose directory does not exist (before any work)."""
    path = Path(path)
    if path.suffix != ".npz":
        raise InputError(f"{path}: dataset files must end in .npz; rename the output")
    check_writable(path)  # a directory, a missing or unwritable parent: one-line InputError
    return path


def save_dataset(path: str | os.PathLike, ds: GeneratedDataset) -> Path:
    """Write ``ds`` to one uncompressed ``.npz`` atomically (temp file + ``os.replace``)."""
    path = check_output_path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **ds.as_arrays())
    return path
