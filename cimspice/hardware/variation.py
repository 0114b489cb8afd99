"""Variation: one chip instance's device-to-device draws and one sample's noise draws
(docs/design.md "Variation"; the ``[variation]`` section of the configuration).

Every draw is made here, in NumPy, from ``SeedSequence([seed, stream, key])``: ``seed`` is the
chip instance (``[variation] seed``), ``stream`` the kind of draw and ``key`` 0 for the chip and
the sample key (its dataset index) for per-sample noise; a device's draw is the entry at its
device index. The draws are stored in the result file (``/variation``) and applied identically
by every engine: the chip through the mapping (:func:`realise`: conductances, per-device laws,
driver offsets), the write noise through the deck's sources (:func:`pulse_levels`,
:func:`interval_factors`), the read noise and the ADC on the sampled states (:func:`sense`).

Definitions (every key 0 = off):

- ``tau_sigma``: ``tau_i = tau * exp(tau_sigma z_i)`` per volatile device (median = nominal);
- ``write_sigma``: ``f_i(V) = f(V) exp(write_sigma z_i)``: the write rate (k, lam) per device;
- ``write_noise``: the dw of each write is scaled by ``max(0, 1 + write_noise z)``. `trace`: per
  write pulse and device, realised as the pulse's amplitude ``m v_write`` with
  ``f(m v_write) = (1 + write_noise z) f(v_write)`` (each device gets its own row source);
  `state`: per write interval (a maximal interval in which some input row pulses: the write the
  driver delivers) and device pair, a factor on the driver's output voltage, equal to the dw
  factor for the linear (integrator) device;
- ``g_sigma``: each crossbar cell's target conductance times ``1 + g_sigma z``, clipped to
  ``[g_min, g_max]`` (write-verify programming error); the access transistor is compensated for
  the drawn target, as the programming loop would;
- ``driver_offset``: a fixed offset ``driver_offset z`` V at each write driver's input (`state`);
- ``read_noise``: ``read_noise * FS_n * z`` added to each sampled state ``x_n``;
- ``adc_bits``: states quantised to ``2^bits`` two's-complement codes over ``[-FS_n, FS_n)``.

``FS_n``, the full scale of state n, is the largest ``|x_n|`` of the ideal states over the
calibration samples (stored in the mapping's info). Device order: `state` the + devices of
states 0..N-1, then the - devices; `trace` device (row r, group k) at ``r K + k``, then the K
reference devices.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..config import Config
from ..errors import ConfigError
from .devices import VMemParams, f_write
from .mapping import CircuitMapping, compensate_access, vmem_params

STREAMS = {"tau": 1, "write": 2, "g_plus": 3, "g_minus": 4, "offset": 5, "pulse": 6, "read": 7}
CHIP_KEYS = ("tau_sigma", "write_sigma", "g_sigma", "driver_offset")
DEVICE_KEYS = ("tau_sigma", "write_sigma", "driver_offset", "write_noise")   # change the device side of a deck
CIRCUIT_KEYS = CHIP_KEYS + ("write_noise",)                                   # in the circuit (the deck)
KEYS = CIRCUIT_KEYS + ("read_noise", "adc_bits")                            # every spread / noise key
CALIBRATION_KEY = 1 << 40      # sample keys of calibration runs: CALIBRATION_KEY + their index


def rng(seed: int, stream: str, key: int = 0) -> np.random.Generator:
    """The generator of one kind of draw (``stream``) of chip ``seed`` and sample ``key``."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), STREAMS[stream], int(key)]))


def active(cfg: Config, keys=CIRCUIT_KEYS) -> list[str]:
    """The ``[variation]`` keys among ``keys`` that are on (non-zero)."""
    return [k for k in keys if getattr(cfg.variation, k)]


def refuse_device_variation(cfg: Config, engine: str) -> None:
    """One-line ConfigError when an engine whose decks have nominal devices only meets a
    device-side variation key (``g_sigma`` reaches every engine through the mapping)."""
    on = active(cfg, DEVICE_KEYS)
    if on:
        raise ConfigError(f"{engine}: [variation] {on[0]} = {getattr(cfg.variation, on[0])!r}: "
                          f"per-device draws are written by the ngspice and twin engines only; "
                          f"fix: use --engine ngspice or twin (or set {on[0]} = 0)")


# ------------------------------------------------------------------------------------- chip

@dataclass(frozen=True)
class Chip:
    """Device-to-device draws of one chip instance (factors: 1 = nominal)."""

    seed: int
    tau: np.ndarray       # (D,) factor on each volatile device's tau
    rate: np.ndarray      # (D,) factor on each volatile device's write rate
    offset: np.ndarray    # (N,) write-driver input offset, V ('state'; zeros on 'trace')
    g_plus: np.ndarray    # (C_in, N) factor on each + cell's target conductance (before clipping)
    g_minus: np.ndarray   # (C_in, N)

    @property
    def device_spread(self) -> bool:
        """Whether any device's tau or write rate differs from nominal."""
        return bool(np.any(self.tau != 1) or np.any(self.rate != 1))

    def arrays(self) -> dict:
        """The draws by name (the result file's /variation/chip)."""
        return {"tau_factor": self.tau, "rate_factor": self.rate, "driver_offset": self.offset,
                "g_plus_factor": self.g_plus, "g_minus_factor": self.g_minus}


def n_devices(mapping: CircuitMapping, topology: str) -> int:
    """Volatile devices of the circuit: 2N (`state`) or C_in K + K (`trace`)."""
    if topology == "trace":
        k = len(mapping.info["group_taus"])
        return mapping.n_inputs * k + k
    return 2 * mapping.n_states


def _lognormal(seed: int, stream: str, sigma: float, n: int) -> np.ndarray:
    if sigma == 0:
        return np.ones(n)
    return np.exp(sigma * rng(seed, stream).standard_normal(n))


def _relative(seed: int, stream: str, sigma: float, shape) -> np.ndarray:
    if sigma == 0:
        return np.ones(shape)
    return 1.0 + sigma * rng(seed, stream).standard_normal(shape)


def draw_chip(mapping: CircuitMapping, cfg: Config) -> Chip | None:
    """The chip instance of ``[variation] seed`` (None when no chip key is on)."""
    if not active(cfg, CHIP_KEYS):
        return None
    v = cfg.variation
    D = n_devices(mapping, cfg.circuit.topology)
    shape = mapping.g_plus.shape
    offset = np.zeros(mapping.n_states)
    if v.driver_offset:
        offset = v.driver_offset * rng(v.seed, "offset").standard_normal(mapping.n_states)
    return Chip(seed=v.seed, tau=_lognormal(v.seed, "tau", v.tau_sigma, D),
                rate=_lognormal(v.seed, "write", v.write_sigma, D), offset=offset,
                g_plus=_relative(v.seed, "g_plus", v.g_sigma, shape),
                g_minus=_relative(v.seed, "g_minus", v.g_sigma, shape))


def realise(mapping: CircuitMapping, cfg: Config) -> CircuitMapping:
    """The mapping programmed on chip instance ``[variation] seed``: drawn cell conductances
    (access-compensated), the chip's draws attached (``mapping.chip``) for the engines."""
    chip = draw_chip(mapping, cfg)
    if chip is None:
        return mapping
    c = cfg.circuit
    out = replace(mapping, chip=chip)
    if cfg.variation.g_sigma:
        gp = np.clip(mapping.g_plus * chip.g_plus, c.g_min, c.g_max)
        gm = np.clip(mapping.g_minus * chip.g_minus, c.g_min, c.g_max)
        out = replace(out, g_plus=gp, g_minus=gm,
                      g_rram_plus=compensate_access(gp, c.v_in, cfg),
                      g_rram_minus=compensate_access(gm, c.v_in, cfg),
                      b_effective=((gp - gm) * mapping.b_max / (c.g_max - c.g_min)).T)
    return out


def scaled(p: VMemParams, tau_factor: float, rate_factor: float) -> VMemParams:
    """A device law with its tau and write rate scaled (the same instance when both are 1)."""
    if tau_factor == 1.0 and rate_factor == 1.0:
        return p
    return replace(p, tau=p.tau * float(tau_factor), k=p.k * float(rate_factor),
                   lam=p.lam * float(rate_factor))


def state_devices(mapping: CircuitMapping, cfg: Config) -> list[VMemParams]:
    """The 2N device laws of the `state` topology (+ devices, then - devices)."""
    N = mapping.n_states
    nominal = [vmem_params(cfg, float(t)) for t in mapping.tau]
    chip = mapping.chip
    if chip is None:
        return nominal + nominal
    return [scaled(nominal[i % N], chip.tau[i], chip.rate[i]) for i in range(2 * N)]


def trace_devices(mapping: CircuitMapping, cfg: Config, taus) -> tuple[list, list]:
    """(devices[r][k], references[k]) laws of the `trace` topology."""
    nominal = [vmem_params(cfg, float(t)) for t in taus]
    K, R = len(nominal), mapping.n_inputs
    chip = mapping.chip
    if chip is None:
        return [list(nominal) for _ in range(R)], list(nominal)
    devs = [[scaled(nominal[k], chip.tau[r * K + k], chip.rate[r * K + k]) for k in range(K)]
            for r in range(R)]
    refs = [scaled(nominal[k], chip.tau[R * K + k], chip.rate[R * K + k]) for k in range(K)]
    return devs, refs


def driver_offsets(mapping: CircuitMapping) -> np.ndarray:
    """(N,) write-driver input offsets, V (zeros without a chip)."""
    return np.zeros(mapping.n_states) if mapping.chip is None else np.asarray(mapping.chip.offset)


# ----------------------------------------------------------------------------------- sample

@dataclass(frozen=True)
class SampleDraws:
    """One sample's noise draws (key: its dataset index)."""

    key: int
    write: np.ndarray     # dw factors: 'state' (B, N) per write interval and pair; 'trace' (P, K)
                          # per write pulse and group device; (0, 0) when write_noise = 0
    read: np.ndarray      # (M, N) standard normal draws of the read noise; (0, 0) when off

    def arrays(self) -> dict:
        return {"write_factor": self.write, "read_normal": self.read}


def write_intervals(schedule) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Maximal intervals in which some row pulses (its trapezoid is non-zero): (start (B,),
    end (B,), interval of each pulse (P,)), times in s."""
    h = schedule.t_rise / 2
    a = np.asarray(schedule.t_on, float) - h
    b = np.asarray(schedule.t_on, float) + np.asarray(schedule.width, float) + h
    if a.size == 0:
        return np.zeros(0), np.zeros(0), np.zeros(0, np.int64)
    o = np.argsort(a, kind="stable")
    ends = np.maximum.accumulate(b[o])
    new = np.r_[True, a[o][1:] > ends[:-1]]       # touching supports: one write interval
    idx = np.cumsum(new) - 1
    start = a[o][new]
    end = np.maximum.reduceat(b[o], np.flatnonzero(new))
    of_pulse = np.empty(a.size, np.int64)
    of_pulse[o] = idx
    return start, end, of_pulse


def draw_sample(cfg: Config, schedule, n_states: int, n_groups: int, n_times: int,
                key: int) -> SampleDraws | None:
    """The write-noise factors and read-noise draws of one sample (None when both are off)."""
    v = cfg.variation
    if not (v.write_noise or v.read_noise):
        return None
    write = np.zeros((0, 0))
    if v.write_noise:
        shape = ((write_intervals(schedule)[0].size, n_states) if cfg.circuit.topology == "state"
                 else (schedule.n_pulses, n_groups))
        z = rng(v.seed, "pulse", key).standard_normal(shape)
        write = np.maximum(0.0, 1.0 + v.write_noise * z)
    read = rng(v.seed, "read", key).standard_normal((n_times, n_states)) if v.read_noise else np.zeros((0, 0))
    return SampleDraws(key=int(key), write=write, read=read)


def pulse_levels(p: VMemParams, v_write: float, factors: np.ndarray) -> np.ndarray:
    """Write amplitudes ``m v_write`` (V) with ``f(m v_write) = factor f(v_write)`` (the dw of a
    pulse scaled by ``factor``, edges aside), by bisection; vectorised over ``factors``."""
    factors = np.asarray(factors, float)
    target = factors * float(f_write(p, v_write))
    lo, hi = np.zeros_like(factors), np.full_like(factors, v_write)
    while np.any(f_write(p, hi) < target):
        hi = np.where(f_write(p, hi) < target, 2 * hi, hi)
    for _ in range(64):
        mid = (lo + hi) / 2
        below = f_write(p, mid) < target
        lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
    return (lo + hi) / 2


def trace_write_levels(cfg: Config, taus, draws: SampleDraws | None) -> np.ndarray | None:
    """(P, K) write-pulse level (V) of every pulse on each decay group's devices under write
    noise (:func:`pulse_levels` with the group's nominal law: a device's rate factor scales f
    and leaves the level unchanged), or None when there is none. The deck and the twin both
    take their levels from here."""
    if draws is None or draws.write.size == 0:
        return None
    laws = [vmem_params(cfg, float(t)) for t in taus]
    return np.stack([pulse_levels(p, cfg.device.v_write, draws.write[:, k])
                     for k, p in enumerate(laws)], axis=1)


def interval_factors(schedule, draws: SampleDraws | None):
    """(start (B,), end (B,), factors (B, N)) of the `state` write noise (None when off)."""
    if draws is None or draws.write.size == 0:
        return None
    start, end, _ = write_intervals(schedule)
    return start, end, draws.write


# -------------------------------------------------------------------------- sampled states

def full_scale(ideal_states) -> np.ndarray:
    """(N,) largest |x_n| over a list of (M, N) ideal states (an all-zero state: the largest
    of the others, or 1)."""
    fs = np.max(np.abs(np.concatenate([np.asarray(x) for x in ideal_states])), axis=0)
    top = float(fs.max()) if fs.size else 0.0
    return np.where(fs > 0, fs, top if top > 0 else 1.0)


def sense(x: np.ndarray, cfg: Config, fs: np.ndarray | None, draws: SampleDraws | None) -> np.ndarray:
    """Sampled states (M, N) after the read noise and the ADC (unchanged when both are off)."""
    v = cfg.variation
    if not (v.read_noise or v.adc_bits):
        return x
    x = np.array(x, dtype=float)
    if v.read_noise:
        x = x + v.read_noise * fs * draws.read
    if v.adc_bits:
        step = fs / 2 ** (v.adc_bits - 1)
        half = 2 ** (v.adc_bits - 1)
        x = np.clip(np.round(x / step), -half, half - 1) * step
    return x
