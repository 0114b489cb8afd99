"""Run configuration: frozen dataclasses, loaded from TOML, written back as TOML text.

One file configures the whole data flow (``[events]``, ``[ssm]``, ``[device]``, ``[circuit]``,
``[read]``, ``[sim]``, ``[energy]``, ``[variation]``). Every key has a default, so every command works without a
file. Unknown sections or keys and wrong types are refused with one line naming the file and the
key.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

try:  # Python >= 3.11
    import tomllib
except ModuleNotFoundError:  # pragma: no cover
    import tomli as tomllib

from .errors import ConfigError
from .hardware.presets import check_device_preset


@dataclass(frozen=True)
class EventConfig:
    """Events -> channels -> pulse schedule (times in seconds unless stated)."""

    pool: int = 4                 # spatial pooling factor for vision sensors (pixels per side)
    channel_pool: int = 1         # audio (C, 1, P): sum adjacent channels, x -> x // channel_pool (1 = off)
    split_polarity: bool = False  # ON/OFF as separate input channels (False: merged, half the rows)
    refractory_us: int = 0        # per-channel refractory filter before scheduling (0 = off)
    time_scale: float = 1.0       # circuit time = dataset time x time_scale
    t_p: float = 100e-6           # input pulse width, s
    t_rise: float = 1e-6          # PWL edge, s
    min_gap: float = 1e-3         # minimum idle time between pulses on one row, s (closer events merge)
    merge: str = "extend"         # 'extend' | 'count' | 'drop' for events that would overlap
    t_end_us: int = 0             # fixed stream end in event time, µs (0 = just after the last event)


@dataclass(frozen=True)
class SSMConfig:
    """The ideal SSM layer (taus in circuit seconds)."""

    n_states: int = 8
    taus: tuple = (0.01, 0.04)    # shared decay constants, s (K groups)
    init: str = "gaussian"        # 'gaussian' | 'sparse'
    seed: int = 0
    n_samples: int = 10           # sample times per stream (evenly spaced, last = end)
    method: str = "pulse"         # ideal discretisation compared against the circuit


@dataclass(frozen=True)
class DeviceConfig:
    """Volatile state-device parameters (see hardware.devices.VMemParams); tau comes from [ssm].

    ``preset`` picks how they are given (hardware.presets, docs/design.md "Device presets"):
    'custom' uses the keys as given; 'ideal' is the linear integrator and 'wox' the WOx-like
    threshold device, both described by what a device paper reports (``v_write``, the write
    width ``[events] t_p`` and ``dw_pulse``), their write rate derived in closed form.
    """

    preset: str = "custom"        # 'custom' | 'ideal' | 'wox'
    mode: str = "linear"          # 'linear' | 'sinh' (custom; 'wox' is sinh, 'ideal' linear)
    window: Any = "auto"          # (1 - w) saturation window: true | false | 'auto' (wox: on, else off)
    w_rest: float = 0.0
    g_on: float = 100e-6          # S
    g_off: float = 1e-6           # S
    k: float = 1000.0             # linear write rate, 1/(V s)
    vs: float = 0.02              # rectifier smoothing, V
    lam: float = 0.0              # sinh write rate, 1/s (0 = device default)
    eta: float = 0.0              # sinh write slope, 1/V (0 = device default)
    vth: float = 0.0              # sinh soft threshold, V (0 = device default)
    read_nl: float = 0.0          # sinh read nonlinearity, 1/V (0 = linear read)
    v_write: float = 1.0          # fixed write-pulse amplitude of the trace topology, V
    dw_pulse: float = 0.02        # ideal / wox: dw of one v_write x t_p pulse from w = 0
    odd_write: bool = False       # sinh: negative pulses below -vth depress (odd write branch)


@dataclass(frozen=True)
class CircuitConfig:
    """The 1T1R projection crossbar, write drivers and mapping."""

    topology: str = "state"       # 'state' (crossbar -> write drivers -> device pairs) | 'trace'
    g_min: float = 1e-6           # S, lowest programmable cell conductance
    g_max: float = 100e-6         # S, highest
    levels: int = 0               # conductance quantisation levels (0 = analog)
    v_in: float = 0.2             # row pulse amplitude, V
    access: str = "nmos"          # 'nmos' (1T1R) | 'none' (1R, plain resistors)
    v_gate: float = 1.8           # word-line voltage, V
    compensate_access: bool = True  # program RRAM so the cell (RRAM + transistor) hits the target
    r_wire: float = 0.0           # ohm per wire segment on rows and columns (0 = ideal wires)
    rram_read_nl: float = 0.0     # sinh read nonlinearity of the RRAM cells, 1/V
    w_max: float = 0.8            # largest state-device w allowed on the calibration data
    v_clamp: float = 0.0          # driver output clamp, V (0 = no clamp)
    n_calibration: int = 16       # samples used to calibrate the scale (dataset runs)
    tile_rows: int = 0            # ngspice-tiled: input rows per crossbar tile deck (0 = one tile)


@dataclass(frozen=True)
class ReadConfig:
    """How states are read (docs/design.md "The read path").

    'node' probes the device state nodes (an ideal probe, no read circuit); 'pulse' applies a
    read pulse at every sample time and senses device currents (read disturb included): the
    sample times become global read slots that write pulses are delayed around.
    """

    mode: str = "node"            # 'node' | 'pulse'
    v_read: float = 0.1           # read-pulse amplitude, V
    t_read: float = 10e-6         # read-pulse width, s (sampled at its centre)
    guard: float = 2e-6           # idle time kept between a read pulse and any write pulse, s
    sense_gain: float = 0.0       # trace: sense transresistance, ohm (0 = derived: full scale at v_in)
    baseline: str = "reference"   # trace: 'reference' (a read-only device per group) | 'ideal' (g_off)


@dataclass(frozen=True)
class SimConfig:
    """ngspice transient options."""

    reltol: float = 1e-4
    abstol: float = 1e-12
    vntol: float = 1e-7
    method: str = "gear"
    maxstep_per_tau: float = 10.0   # maxstep = min(tau) / this
    timeout: float = 600.0          # s
    save_currents: bool = False


@dataclass(frozen=True)
class EnergyConfig:
    """Energy accounting (docs/design.md "Energy and latency").

    ``accounting`` adds integrator nodes to the ngspice deck (and the twin computes the same
    breakdown): a B-source of the delivered power into a 1 F capacitor per component. They do
    not move ngspice's time steps (measured: the same time points, states equal to 1e-13;
    bench/energy_cost.py measures the time cost). The circuit's behavioural stages are ideal and
    ADCs are not in the circuit: ``adc_per_read_J`` adds a user figure per conversion (one
    state at one read)."""

    accounting: bool = True       # energy integrators in the ngspice deck / the twin's breakdown
    adc_per_read_J: float = 0.0   # energy of one ADC conversion (one state at one read), J


@dataclass(frozen=True)
class VariationConfig:
    """Device and array variation, noise and ADC (docs/design.md "Variation"); every key 0 = off.

    Draws are made in Python (hardware.variation) from ``seed``, the sample key and the device
    index, stored in result files, and applied identically by every engine. ``read_noise`` and
    ``adc_bits`` act on the sampled states (not in the deck).
    """

    tau_sigma: float = 0.0        # sigma of ln(tau) per volatile device (lognormal, median = nominal)
    write_sigma: float = 0.0      # sigma of ln(write rate) per volatile device (lognormal, median 1)
    write_noise: float = 0.0      # relative sigma of dw per write pulse (per device; per pair in 'state')
    g_sigma: float = 0.0          # relative sigma of each crossbar cell's conductance, clipped to [g_min, g_max]
    driver_offset: float = 0.0    # sigma of a fixed offset per write driver, V ('state')
    read_noise: float = 0.0       # sigma of the noise added to each sampled state, relative to full scale
    adc_bits: int = 0             # states quantised over the full scale (0 = off)
    seed: int = 0                 # chip instance: the seed of every draw
    recalibrate: bool = False     # false: gains calibrated on the nominal chip (as deployed); true: per instance


@dataclass(frozen=True)
class Config:
    events: EventConfig = field(default_factory=EventConfig)
    ssm: SSMConfig = field(default_factory=SSMConfig)
    device: DeviceConfig = field(default_factory=DeviceConfig)
    circuit: CircuitConfig = field(default_factory=CircuitConfig)
    read: ReadConfig = field(default_factory=ReadConfig)
    sim: SimConfig = field(default_factory=SimConfig)
    energy: EnergyConfig = field(default_factory=EnergyConfig)
    variation: VariationConfig = field(default_factory=VariationConfig)

    def replace(self, **sections: dict) -> "Config":
        """Validated copy with some keys changed: ``cfg.replace(circuit={'r_wire': 2.0})``.

        The same checks as a file (types, then ranges): a Config is valid wherever it came from.
        """
        new = {}
        for name, changes in sections.items():
            if name not in _SECTIONS:
                raise ConfigError(f"config: unknown section [{name}]; known: {', '.join(_SECTIONS)}")
            new[name] = _section_from_dict(getattr(self, name), changes, f"[{name}]")
        return check_config(dataclasses.replace(self, **new))

    def to_toml(self) -> str:
        """TOML text that :func:`load_config` reads back to an equal Config."""
        lines = []
        for name in _SECTIONS:
            lines.append(f"[{name}]")
            for f in dataclasses.fields(getattr(self, name)):
                lines.append(f"{f.name} = {_toml_value(getattr(getattr(self, name), f.name))}")
            lines.append("")
        return "\n".join(lines)

    def digest(self) -> str:
        """Short hash identifying this configuration (for resumable runs)."""
        return hashlib.sha256(self.to_toml().encode()).hexdigest()[:16]


_SECTIONS = ("events", "ssm", "device", "circuit", "read", "sim", "energy", "variation")

_CHOICES = {
    ("events", "merge"): ("extend", "count", "drop"),
    ("ssm", "init"): ("gaussian", "sparse"),
    ("ssm", "method"): ("pulse", "dirac", "zoh"),
    ("device", "preset"): ("custom", "ideal", "wox"),
    ("device", "mode"): ("linear", "sinh"),
    ("circuit", "topology"): ("state", "trace"),
    ("circuit", "access"): ("nmos", "none"),
    ("read", "mode"): ("node", "pulse"),
    ("read", "baseline"): ("reference", "ideal"),
    ("sim", "method"): ("gear", "trap"),
}


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, (tuple, list)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {v!r} as TOML")


def _coerce(where: str, key: str, default: Any, value: Any) -> Any:
    if key == "window":   # the one tri-state key: the preset decides unless given
        if isinstance(value, bool) or value == "auto":
            return value
        raise ConfigError(f"{where}: key 'window' must be true or false (or \"auto\": the preset decides), got {value!r}")
    want = type(default)
    if want is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: key '{key}' must be true or false, got {value!r}")
        return value
    if want is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: key '{key}' must be an integer, got {value!r}")
        return value
    if want is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: key '{key}' must be a number, got {value!r}")
        if not math.isfinite(value):
            raise ConfigError(f"{where}: key '{key}' must be finite, got {value!r}")
        return float(value)
    if want is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: key '{key}' must be a string, got {value!r}")
        return value
    if want is tuple:
        if not isinstance(value, (list, tuple)) or not value or not all(
            isinstance(x, (int, float)) and not isinstance(x, bool) for x in value
        ):
            raise ConfigError(f"{where}: key '{key}' must be a non-empty list of numbers, got {value!r}")
        return tuple(float(x) for x in value)
    raise ConfigError(f"{where}: key '{key}' has unsupported type")  # pragma: no cover


def _section_from_dict(base: Any, values: dict, where: str) -> Any:
    if not isinstance(values, dict):
        raise ConfigError(f"{where}: must be a table of keys, got {values!r}")
    fields = {f.name: f for f in dataclasses.fields(base)}
    changes = {}
    for key, value in values.items():
        if key not in fields:
            raise ConfigError(f"{where}: unknown key '{key}'; known keys: {', '.join(fields)}")
        changes[key] = _coerce(where, key, getattr(base, key), value)
    return dataclasses.replace(base, **changes)


def check_config(cfg: Config, where: str = "config") -> Config:
    """Range checks across the whole configuration; one-line ConfigError on the first problem."""
    e, s, d, c, m, rd = cfg.events, cfg.ssm, cfg.device, cfg.circuit, cfg.sim, cfg.read

    def need(cond: bool, section: str, key: str, msg: str) -> None:
        if not cond:
            raise ConfigError(f"{where}: [{section}] {key}: {msg}")

    for (section, key), choices in _CHOICES.items():
        value = getattr(getattr(cfg, section), key)
        need(value in choices, section, key, f"{value!r} is not one of {', '.join(choices)}")
    need(e.pool >= 1, "events", "pool", "must be >= 1")
    need(e.channel_pool >= 1, "events", "channel_pool", "must be >= 1 (1 = no audio channel pooling)")
    need(e.time_scale > 0, "events", "time_scale", "must be > 0")
    need(e.t_p > 0, "events", "t_p", "pulse width must be > 0 s")
    need(e.t_p * 1e-3 * (1 - 1e-12) <= e.t_rise < e.t_p, "events", "t_rise",   # (rounding of t_p/1000)
         "edge time must be >= t_p/1000 and < t_p (shorter edges defeat the solver's time resolution)")
    need(e.min_gap > 0, "events", "min_gap", "must be > 0 s (touching pulses abort ngspice)")
    need(e.t_end_us >= 0, "events", "t_end_us", "must be >= 0 µs (0 = end at the last event)")
    need(e.refractory_us >= 0, "events", "refractory_us", "must be >= 0")
    need(s.n_states >= 1, "ssm", "n_states", "must be >= 1")
    need(all(t > 0 for t in s.taus), "ssm", "taus", "every decay constant must be > 0 s")
    need(len(s.taus) <= s.n_states, "ssm", "taus", "more decay groups than states")
    need(s.n_samples >= 1, "ssm", "n_samples", "must be >= 1")
    need(min(s.taus) > e.t_p, "ssm", "taus", f"every tau must exceed the pulse width t_p={e.t_p:g} s")
    need(d.g_on > d.g_off > 0, "device", "g_on", "need g_on > g_off > 0 S")
    need(0 <= d.w_rest <= 1, "device", "w_rest", "must lie in [0, 1]")
    need(d.k > 0, "device", "k", "write rate must be > 0 1/(V s)")
    need(d.vs > 0, "device", "vs", "rectifier smoothing must be > 0 V")
    for key in ("lam", "eta", "vth", "read_nl"):
        need(getattr(d, key) >= 0, "device", key, "must be >= 0")
    need(0 < c.g_min < c.g_max, "circuit", "g_min", "need 0 < g_min < g_max (S)")
    need(c.levels == 0 or c.levels >= 2, "circuit", "levels", "0 (analog) or >= 2 levels")
    need(c.v_in > 0, "circuit", "v_in", "row pulse amplitude must be > 0 V")
    need(c.v_gate > 0, "circuit", "v_gate", "must be > 0 V")
    need(c.r_wire >= 0, "circuit", "r_wire", "must be >= 0 ohm")
    need(c.rram_read_nl >= 0, "circuit", "rram_read_nl", "must be >= 0")
    need(d.v_write > 0, "device", "v_write", "write-pulse amplitude must be > 0 V")
    need(0 < d.dw_pulse < 1, "device", "dw_pulse", "dw of one write pulse must lie in (0, 1)")
    need(rd.v_read > 0, "read", "v_read", "read-pulse amplitude must be > 0 V")
    need(rd.t_read > e.t_rise, "read", "t_read",
         f"read pulse must be longer than its edges ([events] t_rise = {e.t_rise:g} s)")
    need(rd.guard >= 0, "read", "guard", "must be >= 0 s")
    need(rd.sense_gain >= 0, "read", "sense_gain", "must be >= 0 ohm (0 = derived)")
    need(not (c.topology == "trace" and e.merge == "count"), "events", "merge",
         "'count' (amplitude coding) cannot drive the trace topology's fixed write pulses; "
         "use merge = 'extend' or 'drop'")
    need(0 < c.w_max < 1, "circuit", "w_max", "must lie in (0, 1)")
    need(c.v_clamp >= 0, "circuit", "v_clamp", "must be >= 0 V (0 = no clamp)")
    need(c.n_calibration >= 1, "circuit", "n_calibration", "must be >= 1")
    need(c.tile_rows >= 0, "circuit", "tile_rows", "must be >= 0 rows (0 = one tile, the whole array)")
    # physical tiles with their own column wires would be another circuit than the one every
    # engine simulates (ngspice decks are monolithic): refused for all engines alike
    need(c.tile_rows == 0 or c.r_wire == 0, "circuit", "tile_rows",
         "tiles with their own column wires (r_wire > 0) are not modelled; set tile_rows = 0 "
         "(the whole wired array in one tile) or r_wire = 0")
    need(0 < m.reltol < 0.1, "sim", "reltol", "must lie in (0, 0.1)")
    need(m.abstol > 0 and m.vntol > 0, "sim", "abstol", "abstol and vntol must be > 0")
    need(m.maxstep_per_tau >= 1, "sim", "maxstep_per_tau", "must be >= 1")
    need(m.timeout > 0, "sim", "timeout", "must be > 0 s")
    need(cfg.energy.adc_per_read_J >= 0, "energy", "adc_per_read_J",
         "energy of one ADC conversion must be >= 0 J")
    v = cfg.variation
    for key in ("tau_sigma", "write_sigma", "write_noise", "g_sigma", "driver_offset", "read_noise"):
        need(getattr(v, key) >= 0, "variation", key, "a spread must be >= 0 (0 = off)")
    need(v.tau_sigma <= 2 and v.write_sigma <= 2, "variation",
         "tau_sigma" if v.tau_sigma > 2 else "write_sigma",
         "sigma of a log-normal factor must be <= 2 (a factor of e^2 = 7.4 per sigma)")
    need(0 <= v.adc_bits <= 24, "variation", "adc_bits", "must lie in 0..24 (0 = no ADC)")
    need(v.seed >= 0, "variation", "seed", "must be >= 0")
    need(v.driver_offset == 0 or c.topology == "state", "variation", "driver_offset",
         "the trace topology has no write drivers (fixed write pulses); set it to 0")
    check_device_preset(cfg, where)
    return cfg


def config_from_dict(data: dict, where: str = "config") -> Config:
    """Build and range-check a Config from a nested dict (as parsed from TOML)."""
    cfg = Config()
    changes = {}
    for name, values in data.items():
        if name not in _SECTIONS:
            raise ConfigError(f"{where}: unknown section [{name}]; known: {', '.join(_SECTIONS)}")
        changes[name] = _section_from_dict(getattr(cfg, name), values, f"{where} [{name}]")
    return check_config(dataclasses.replace(cfg, **changes), where)


def config_from_toml(text: str, where: str = "config") -> Config:
    """Config from TOML text (the inverse of :meth:`Config.to_toml`)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        msg = str(exc).splitlines()[0]
        raise ConfigError(f"{where}: not valid TOML ({msg}); fix the syntax") from None
    return config_from_dict(data, where)


def load_config(path: str | Path | None) -> Config:
    """Read a TOML configuration file (None -> built-in defaults)."""
    if path is None:
        return check_config(Config())
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: config file not found (or not a file); pass an existing .toml file")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{p}: not valid TOML ({exc.reason}: not UTF-8 text); fix the file") from None
    return config_from_toml(text, str(p))
