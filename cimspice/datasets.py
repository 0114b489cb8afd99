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
from scipy.ndimage import gaussian_filter, map_coordinates, zoom
from scipy.signal import butter, sosfilt
from scipy.special import erf

from .errors import InputError
from .events import AUDIO_DTYPE, VISION_DTYPE, EventDataset, EventSample, make_sample
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
# Parameters (frozen dataclasses; every field can be overridden through make_dataset(**params))
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class DvsParams:
    """Change-detector settings shared by the DVS generators (log-intensity units, µs, Hz)."""

    threshold: float = 0.4          # nominal ON and OFF contrast threshold (log intensity)
    threshold_sigma: float = 0.05   # relative per-pixel mismatch (std / nominal)
    refractory_us: float = 1000.0   # per-pixel dead time after an emitted event
    noise_hz: float = 0.5           # background events per pixel per second (both polarities)
    frame_us: float = 500.0         # rendering step; crossings are interpolated inside it


@dataclass(frozen=True)
class BarsParams(DvsParams):
    """``dvs-bars``: a bright bar on a dark background sweeping across the sensor."""

    size: int = 16                      # sensor width = height, pixels
    duration_us: int = 150_000          # stream length
    crossing_ms: tuple = (100.0, 40.0)  # sweep time across the sensor, one entry per speed class
    speed_jitter: float = 0.08          # relative std of the sweep time
    start_ms: tuple = (0.0, 40.0)       # uniform range of the time the bar enters the sensor
    angle_jitter_deg: float = 8.0       # std of the direction around 0/90/180/270 degrees
    bar_width: float = 3.0              # pixels (jittered +-20 %)
    edge_sigma: float = 0.6             # optical blur of the bar edges, pixels
    background: float = 0.25            # intensities (arbitrary units, > 0)
    foreground: float = 0.8


@dataclass(frozen=True)
class DigitsParams(DvsParams):
    """``dvs-digits``: sklearn digits moved along three saccades (N-MNIST style)."""

    size: int = 16                      # sensor width = height, pixels
    threshold: float = 0.3              # lower than bars: strokes have graded contrast
    digits: tuple = (0, 2, 6, 7)        # sklearn classes used, in label order (chosen as the
                                        # 4-set with the least pairwise confusion at 4x4 pooling)
    digit_size: int = 14                # the 8x8 image is upsampled to this many pixels
    duration_us: int = 150_000
    saccade_ms: float = 45.0            # duration of each of the three saccades
    saccade_px: float = 1.5             # saccade amplitude, pixels (jittered +-20 %)
    start_ms: tuple = (0.0, 10.0)       # uniform range of the first saccade's start
    position_jitter_px: float = 1.0     # uniform +- initial offset of the digit
    rotation_jitter_deg: float = 15.0   # std of the saccade triangle's orientation
    background: float = 0.1
    foreground: float = 1.0


@dataclass(frozen=True)
class ChirpsParams:
    """``audio-chirps``: frequency sweeps -> filterbank -> log envelope -> send-on-delta spikes."""

    n_channels: int = 16
    f_min_hz: float = 200.0             # filterbank centre frequencies, log spaced
    f_max_hz: float = 5000.0
    sample_rate_hz: float = 16000.0
    duration_us: int = 150_000
    sweeps_hz: tuple = ((250.0, 1000.0), (1000.0, 250.0), (1000.0, 4000.0), (4000.0, 1000.0))
    freq_jitter: float = 0.1            # relative std of the sweep end points
    sweep_ms: tuple = (60.0, 100.0)     # uniform range of the sweep duration
    start_ms: tuple = (5.0, 40.0)       # uniform range of the sweep onset
    taper: float = 0.5                  # fraction of the sweep in raised-cosine on/off ramps
    snr_db: tuple = (10.0, 20.0)        # uniform range of the tone-to-white-noise power ratio
    envelope_hz: float = 100.0          # low-pass cut-off of the rectified band signals
    envelope_floor: float = 0.03        # added before the log (sets the noise sensitivity)
    delta: float = 0.2                  # send-on-delta step of the log envelope
    delta_sigma: float = 0.05           # per-channel relative mismatch of delta
    both_edges: bool = True             # falling crossings too (as p = 1); False = onsets only
    refractory_us: float = 1000.0
    frame_us: float = 250.0             # envelope resampling step for the delta encoder


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


def _sensor_rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1,)))


# --------------------------------------------------------------------------------------------
# DVS change detector
# --------------------------------------------------------------------------------------------

def _thresholds(rng: np.random.Generator, shape: tuple, nominal: float, sigma: float):
    """Per-pixel ON and OFF thresholds with Gaussian mismatch, floored at 20 % of nominal."""
    th = nominal * (1.0 + sigma * rng.standard_normal((2,) + shape))
    return np.maximum(th, 0.2 * nominal)


def _change_events(logi: np.ndarray, frame_us: float, th_on: np.ndarray, th_off: np.ndarray,
                   refractory_us: float) -> tuple:
    """Log-intensity change detector on frames ``logi`` (T+1, P) taken every ``frame_us``.

    Each pixel remembers a reference level (reset to frame 0). When the signal at a frame is one
    ON (OFF) threshold above (below) it, the reference moves by that threshold and an event is
    stamped at the linearly interpolated crossing time inside the frame interval (several per
    interval if the step is large). A crossing within ``refractory_us`` of the pixel's last
    emitted event is not emitted (the reference still moves: the change is lost, as in a pixel
    held in reset). Returns (t_us float, pixel index, polarity) unsorted.
    """
    n_frames, n_pix = logi.shape
    ref = logi[0].copy()
    last = np.full(n_pix, -np.inf)
    kpos = np.ones(n_pix, dtype=np.int64)       # first frame a pixel's next crossing can be at
    frames = np.arange(n_frames)[:, None]
    out_t, out_i, out_p = [], [], []
    active = np.arange(n_pix)
    # Event-driven: each pass finds, for every still-active pixel, its next crossing frame with
    # one vectorised search over all frames, so the loop runs (max crossings per pixel) times.
    while active.size:
        sig = logi[:, active]
        d = sig - ref[active]
        later = frames >= kpos[active]
        up = (d >= th_on[active]) & later
        down = (-d >= th_off[active]) & later
        hit = up | down
        k = hit.argmax(axis=0)
        cols = np.arange(active.size)
        found = hit[k, cols]
        active, k, cols = active[found], k[found], cols[found]
        if not active.size:
            break
        is_on = up[k, cols]
        level = ref[active] + np.where(is_on, th_on[active], -th_off[active])
        prev, cur = sig[k - 1, cols], sig[k, cols]
        step = cur - prev
        frac = np.clip((level - prev) / np.where(step == 0.0, 1.0, step), 0.0, 1.0)
        te = (k - 1 + np.where(step == 0.0, 1.0, frac)) * frame_us
        ok = te - last[active] >= refractory_us
        out_t.append(te[ok])
        out_i.append(active[ok])
        out_p.append(is_on[ok].astype(np.int8))
        last[active[ok]] = te[ok]
        ref[active] = level
        kpos[active] = k
    if not out_t:
        return np.zeros(0), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int8)
    return np.concatenate(out_t), np.concatenate(out_i), np.concatenate(out_p)


def _vision_events(logi: np.ndarray, p: DvsParams, sensor: dict, duration_us: int,
                   rng: np.random.Generator) -> np.ndarray:
    """Frames (T+1, H, W) of log intensity -> sorted VISION_DTYPE events incl. background noise."""
    n_frames, h, w = logi.shape
    t, pix, pol = _change_events(logi.reshape(n_frames, h * w), p.frame_us,
                                 sensor["th_on"], sensor["th_off"], p.refractory_us)
    n_noise = rng.poisson(p.noise_hz * h * w * duration_us * 1e-6)
    t = np.concatenate([t, rng.uniform(0.0, duration_us, n_noise)])
    pix = np.concatenate([pix, rng.integers(0, h * w, n_noise)])
    pol = np.concatenate([pol, rng.integers(0, 2, n_noise).astype(np.int8)])
    t_us = np.minimum(np.rint(t).astype(np.int64), duration_us - 1)
    order = np.lexsort((pol, pix, t_us))        # canonical order: t, then pixel, then polarity
    ev = np.empty(order.size, dtype=VISION_DTYPE)
    ev["t"] = t_us[order]
    ev["x"] = pix[order] % w
    ev["y"] = pix[order] // w
    ev["p"] = pol[order]
    return ev


def _frame_times(duration_us: int, frame_us: float) -> np.ndarray:
    n = int(np.ceil(duration_us / frame_us))
    return np.arange(n + 1) * frame_us


def _dvs_context(p: DvsParams, seed: int) -> dict:
    th = _thresholds(_sensor_rng(seed), (p.size * p.size,), p.threshold, p.threshold_sigma)
    return {"th_on": th[0], "th_off": th[1]}


# --------------------------------------------------------------------------------------------
# dvs-bars
# --------------------------------------------------------------------------------------------

_DIRECTIONS = ("right", "down", "left", "up")   # angle 0, 90, 180, 270 deg (y grows downwards)


def _bars_classes(p: BarsParams) -> tuple:
    speeds = ["slow", "fast"] if len(p.crossing_ms) == 2 else [f"v{j}" for j in
                                                               range(len(p.crossing_ms))]
    return tuple(f"{d}-{s}" for s in speeds for d in _DIRECTIONS)


def _bars_sample(p: BarsParams, label: int, is_test: bool, rng: np.random.Generator,
                 sensor: dict) -> np.ndarray:

    direction, speed = label % 4, label // 4
    angle = np.deg2rad(90.0 * direction + p.angle_jitter_deg * rng.standard_normal())
    ux, uy = np.cos(angle), np.sin(angle)
    width = p.bar_width * rng.uniform(0.8, 1.2)
    # Path length: from fully outside one side to fully outside the other, along (ux, uy).
    half = 0.5 * (p.size - 1) * (abs(ux) + abs(uy))
    travel = 2 * half + width + 4 * p.edge_sigma
    crossing_us = 1e3 * p.crossing_ms[speed] * max(0.3, 1 + p.speed_jitter * rng.standard_normal())
    t_enter = 1e3 * rng.uniform(*p.start_ms)
    v = travel / crossing_us                               # px / µs
    c = 0.5 * (p.size - 1)
    yy, xx = np.mgrid[0:p.size, 0:p.size]
    u = ((xx - c) * ux + (yy - c) * uy).ravel()            # coordinate along the motion
    t = _frame_times(p.duration_us, p.frame_us)
    centre = -half - 0.5 * width - 2 * p.edge_sigma + v * (t - t_enter)
    d = u[None, :] - centre[:, None]
    s = np.sqrt(2.0) * p.edge_sigma
    profile = 0.5 * (erf((d + 0.5 * width) / s) - erf((d - 0.5 * width) / s))
    logi = np.log(p.background + (p.foreground - p.background) * profile)
    return _vision_events(logi.reshape(t.size, p.size, p.size), p, sensor, p.duration_us, rng)


# --------------------------------------------------------------------------------------------
# dvs-digits
# --------------------------------------------------------------------------------------------

def _load_digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled digits (copied into cimspice/data): images (1797, 8, 8) in [0, 1], labels."""
    raw = np.loadtxt(Path(__file__).parent / "data" / "digits.csv.gz", delimiter=",")
    return raw[:, :-1].reshape(-1, 8, 8) / 16.0, raw[:, -1].astype(np.int64)


def _digits_context(p: DigitsParams, seed: int) -> dict:

    ctx = _dvs_context(p, seed)
    images, target = _load_digits()
    pools = {}
    for label, digit in enumerate(p.digits):
        idx = np.flatnonzero(target == digit)
        is_test = (np.arange(idx.size) % 4) == 1        # disjoint train/test images
        pools[(label, False)] = idx[~is_test]
        pools[(label, True)] = idx[is_test]
    ctx["images"] = images
    ctx["pools"] = pools
    # Upsampled and slightly blurred per sample (cheap) so the context stays small.
    ctx["upsample"] = lambda img: np.clip(
        gaussian_filter(zoom(img, p.digit_size / 8.0, order=1), 0.5), 0.0, 1.0)
    return ctx


def _digits_sample(p: DigitsParams, label: int, is_test: bool, rng: np.random.Generator,
                   ctx: dict) -> np.ndarray:

    pool = ctx["pools"][(label, is_test)]
    img = ctx["upsample"](ctx["images"][pool[rng.integers(pool.size)]])
    pad = 0.5 * (p.size - img.shape[0])
    # Saccade path: an equilateral triangle (segments at 60, 180, 300 deg) closing on itself.
    rot = np.deg2rad(p.rotation_jitter_deg * rng.standard_normal())
    amp = p.saccade_px * rng.uniform(0.8, 1.2, 3)
    ang = rot + np.deg2rad([60.0, 180.0, 300.0])
    seg = np.stack([amp * np.cos(ang), amp * np.sin(ang)], axis=1)
    seg[2] = -(seg[0] + seg[1])                      # close the triangle exactly
    start = rng.uniform(-p.position_jitter_px, p.position_jitter_px, 2)
    vertices = start + np.vstack([np.zeros(2), np.cumsum(seg, axis=0)])
    seg_us = 1e3 * p.saccade_ms * rng.uniform(0.9, 1.1, 3)
    knots = 1e3 * rng.uniform(*p.start_ms) + np.concatenate([[0.0], np.cumsum(seg_us)])
    t = _frame_times(p.duration_us, p.frame_us)
    ox = np.interp(t, knots, vertices[:, 0])
    oy = np.interp(t, knots, vertices[:, 1])
    yy, xx = np.mgrid[0:p.size, 0:p.size]
    rows = yy.ravel()[None, :] - pad - oy[:, None]
    cols = xx.ravel()[None, :] - pad - ox[:, None]
    val = map_coordinates(img, [rows.ravel(), cols.ravel()], order=1, mode="constant", cval=0.0)
    logi = np.log(p.background + (p.foreground - p.background) * val)
    return _vision_events(logi.reshape(t.size, p.size, p.size), p, ctx, p.duration_us, rng)


# --------------------------------------------------------------------------------------------
# audio-chirps
# --------------------------------------------------------------------------------------------

def _chirps_classes(p: ChirpsParams) -> tuple:
    def name(f0, f1):
        return f"{'up' if f1 > f0 else 'down'}-{int(round(min(f0, f1)))}-{int(round(max(f0, f1)))}"
    return tuple(name(f0, f1) for f0, f1 in p.sweeps_hz)


def _chirps_context(p: ChirpsParams, seed: int) -> dict:

    centres = np.geomspace(p.f_min_hz, p.f_max_hz, p.n_channels)
    ratio = (p.f_max_hz / p.f_min_hz) ** (1.0 / max(p.n_channels - 1, 1))
    edge = np.sqrt(ratio)          # adjacent bands meet at their geometric mid-points
    nyq = 0.5 * p.sample_rate_hz
    sos = [butter(2, [fc / edge, min(fc * edge, 0.95 * nyq)], btype="bandpass",
                  fs=p.sample_rate_hz, output="sos") for fc in centres]
    env = butter(2, p.envelope_hz, btype="lowpass", fs=p.sample_rate_hz, output="sos")
    th = _thresholds(_sensor_rng(seed), (p.n_channels,), p.delta, p.delta_sigma)
    return {"centres": centres, "sos": sos, "env": env, "th_on": th[0], "th_off": th[1]}


def _chirps_sample(p: ChirpsParams, label: int, is_test: bool, rng: np.random.Generator,
                   ctx: dict) -> np.ndarray:

    fs = p.sample_rate_hz
    n = int(round(p.duration_us * 1e-6 * fs))
    t = np.arange(n) / fs
    f0, f1 = np.asarray(p.sweeps_hz[label], float) * np.exp(p.freq_jitter *
                                                            rng.standard_normal(2))
    dur = 1e-3 * rng.uniform(*p.sweep_ms)
    onset = 1e-3 * rng.uniform(*p.start_ms)
    tau = np.clip((t - onset) / dur, 0.0, 1.0)
    freq = f0 * (f1 / f0) ** tau                         # exponential sweep: steady in log-f
    phase = 2 * np.pi * np.cumsum(freq) / fs + rng.uniform(0, 2 * np.pi)
    # Symmetric (Tukey) amplitude gate: up and down sweeps of one band then leave the same
    # per-channel spike counts, so only the temporal order (memory) tells them apart.
    ramp = 0.5 * p.taper * dur
    a = np.clip(np.minimum(t - onset, onset + dur - t) / max(ramp, 1e-9), 0.0, 1.0)
    gate = 0.5 - 0.5 * np.cos(np.pi * a)
    tone = gate * np.sin(phase)
    snr = 10 ** (rng.uniform(*p.snr_db) / 10.0)
    x = tone + np.sqrt(0.5 / snr) * rng.standard_normal(n)   # tone power 0.5 while on
    bands = np.stack([sosfilt(s, x) for s in ctx["sos"]])   # (C, n)
    env = sosfilt(ctx["env"], np.abs(bands), axis=1)
    step = max(1, int(round(p.frame_us * 1e-6 * fs)))
    env = np.maximum(env[:, ::step], 0.0)
    frame_us = step / fs * 1e6
    logi = np.log(env + p.envelope_floor).T                 # (frames, C)
    te, ch, pol = _change_events(logi, frame_us, ctx["th_on"], ctx["th_off"], p.refractory_us)
    # Rising and falling crossings alike (p = 1): per-channel counts are then the same for an
    # up and a down sweep of one band, whereas onset-only spikes differ (filter dispersion).
    keep = (pol == 1) | bool(p.both_edges)
    t_us = np.minimum(np.rint(te[keep]).astype(np.int64), p.duration_us - 1)
    ch = ch[keep]
    order = np.lexsort((ch, t_us))
    ev = np.empty(order.size, dtype=AUDIO_DTYPE)
    ev["t"] = t_us[order]
    ev["x"] = ch[order]
    ev["p"] = 1
    return ev


DATASETS: dict[str, DatasetInfo] = {
    "dvs-bars": DatasetInfo(
        name="dvs-bars",
        description="bar sweeping across a DVS in 4 directions x 2 speeds (100 ms vs 40 ms)",
        params_type=BarsParams,
        classes=_bars_classes,
        sensor_size=lambda p: (p.size, p.size, 2),
        sample=_bars_sample,
        context=_dvs_context,
    ),
    "dvs-digits": DatasetInfo(
        name="dvs-digits",
        description="sklearn digits moved along 3 saccades (N-MNIST style), DVS events",
        params_type=DigitsParams,
        classes=lambda p: tuple(str(d) for d in p.digits),
        sensor_size=lambda p: (p.size, p.size, 2),
        sample=_digits_sample,
        context=_digits_context,
    ),
    "audio-chirps": DatasetInfo(
        name="audio-chirps",
        description="up/down frequency sweeps in noise -> band-pass bank -> send-on-delta spikes",
        params_type=ChirpsParams,
        classes=_chirps_classes,
        sensor_size=lambda p: (p.n_channels, 1, 1),
        sample=_chirps_sample,
        context=_chirps_context,
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
