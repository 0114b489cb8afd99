"""The three generators of the built-in datasets (see :mod:`cimspice.datasets` for the registry,
the split rule and the file layout): a DVS log-intensity change detector shared by ``dvs-bars``
and ``dvs-digits``, and the ``audio-chirps`` band-pass bank with send-on-delta spikes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter, map_coordinates, zoom
from scipy.signal import butter, sosfilt
from scipy.special import erf

from .events import AUDIO_DTYPE, VISION_DTYPE

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


def _sensor_rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1,)))


# --------------------------------------------------------------------------------------------
# DVS change detector
# --------------------------------------------------------------------------------------------

def _thresholds(rng: np.random.Generator, shape: tuple, nominal: float, sigma: float):
    """Per-pixel ON and OFF thresholds with Gaussian mismatch, floored at 20 % of nominal."""
    th = nominal * (1.0 + sigma * rng.standard_normal((2,) + shape))
    return np.maximum(th, 0.2 * nominal)


def change_events(logi: np.ndarray, frame_us: float, th_on: np.ndarray, th_off: np.ndarray,
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


def vision_events(logi: np.ndarray, p: DvsParams, sensor: dict, duration_us: int,
                   rng: np.random.Generator) -> np.ndarray:
    """Frames (T+1, H, W) of log intensity -> sorted VISION_DTYPE events incl. background noise."""
    n_frames, h, w = logi.shape
    t, pix, pol = change_events(logi.reshape(n_frames, h * w), p.frame_us,
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


def dvs_context(p: DvsParams, seed: int) -> dict:
    th = _thresholds(_sensor_rng(seed), (p.size * p.size,), p.threshold, p.threshold_sigma)
    return {"th_on": th[0], "th_off": th[1]}


# --------------------------------------------------------------------------------------------
# dvs-bars
# --------------------------------------------------------------------------------------------

_DIRECTIONS = ("right", "down", "left", "up")   # angle 0, 90, 180, 270 deg (y grows downwards)


def bars_classes(p: BarsParams) -> tuple:
    speeds = ["slow", "fast"] if len(p.crossing_ms) == 2 else [f"v{j}" for j in
                                                               range(len(p.crossing_ms))]
    return tuple(f"{d}-{s}" for s in speeds for d in _DIRECTIONS)


def bars_sample(p: BarsParams, label: int, is_test: bool, rng: np.random.Generator,
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
    return vision_events(logi.reshape(t.size, p.size, p.size), p, sensor, p.duration_us, rng)


# --------------------------------------------------------------------------------------------
# dvs-digits
# --------------------------------------------------------------------------------------------

def _load_digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled digits (copied into cimspice/data): images (1797, 8, 8) in [0, 1], labels."""
    raw = np.loadtxt(Path(__file__).parent / "data" / "digits.csv.gz", delimiter=",")
    return raw[:, :-1].reshape(-1, 8, 8) / 16.0, raw[:, -1].astype(np.int64)


def digits_context(p: DigitsParams, seed: int) -> dict:
    ctx = dvs_context(p, seed)
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


def digits_sample(p: DigitsParams, label: int, is_test: bool, rng: np.random.Generator,
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
    return vision_events(logi.reshape(t.size, p.size, p.size), p, ctx, p.duration_us, rng)


# --------------------------------------------------------------------------------------------
# audio-chirps
# --------------------------------------------------------------------------------------------

def chirps_classes(p: ChirpsParams) -> tuple:
    def name(f0, f1):
        return f"{'up' if f1 > f0 else 'down'}-{int(round(min(f0, f1)))}-{int(round(max(f0, f1)))}"
    return tuple(name(f0, f1) for f0, f1 in p.sweeps_hz)


def chirps_context(p: ChirpsParams, seed: int) -> dict:
    centres = np.geomspace(p.f_min_hz, p.f_max_hz, p.n_channels)
    ratio = (p.f_max_hz / p.f_min_hz) ** (1.0 / max(p.n_channels - 1, 1))
    edge = np.sqrt(ratio)          # adjacent bands meet at their geometric mid-points
    nyq = 0.5 * p.sample_rate_hz
    sos = [butter(2, [fc / edge, min(fc * edge, 0.95 * nyq)], btype="bandpass",
                  fs=p.sample_rate_hz, output="sos") for fc in centres]
    env = butter(2, p.envelope_hz, btype="lowpass", fs=p.sample_rate_hz, output="sos")
    th = _thresholds(_sensor_rng(seed), (p.n_channels,), p.delta, p.delta_sigma)
    return {"centres": centres, "sos": sos, "env": env, "th_on": th[0], "th_off": th[1]}


def chirps_sample(p: ChirpsParams, label: int, is_test: bool, rng: np.random.Generator,
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
    te, ch, pol = change_events(logi, frame_us, ctx["th_on"], ctx["th_off"], p.refractory_us)
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

