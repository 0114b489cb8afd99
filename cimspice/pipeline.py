"""The pipeline of one event sample: events -> pulse schedule -> ideal SSM and deck -> ngspice -> states.

Python API in three calls::

    sample = cimspice.load_events("bars.npz", index=0)
    prep = cimspice.build(sample)                 # schedule, SSM, mapping, ideal states, deck
    res = cimspice.simulate(prep)                 # runs ngspice; res.spice, res.ideal, res.nrmse
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import __version__
from .config import Config, load_config
from .errors import EventFileError, InputError
from .events import EventSample, PulseSchedule
from .mapping import CircuitMapping, map_ssm, states_from_w
from .netlist import DeckInfo, build_deck


def schedule_sample(sample: EventSample, cfg: Config) -> PulseSchedule:
    """Event sample -> input channels -> pulse schedule (the [events] section)."""
    from . import events as ev

    e = cfg.events
    s = sample
    if len(s.sensor_size) >= 2 and s.sensor_size[1] > 1 and e.pool > 1:
        s = ev.Downsample(e.pool)(s)
    if e.refractory_us > 0:
        s = ev.Refractory(e.refractory_us)(s)
    t_us, c, n_rows = ev.to_channels(s, split_polarity=e.split_polarity)
    if len(t_us) == 0:
        raise InputError(f"{sample.source}: field 't': no events left after filtering; "
                         "lower [events] refractory_us or pick another sample")
    return ev.make_schedule(t_us, c, n_rows, t_p=e.t_p, t_rise=e.t_rise, min_gap=e.min_gap,
                           merge=e.merge, time_scale=e.time_scale,
                           t_end=e.t_end_us if e.t_end_us > 0 else None)


def n_input_rows(sensor_size: tuple, cfg: Config) -> int:
    """Input rows a sensor occupies after pooling and polarity handling."""
    size = tuple(int(v) for v in sensor_size)
    if len(size) >= 2 and size[1] > 1:  # vision (W, H, P)
        p = cfg.events.pool
        w, h = -(-size[0] // p), -(-size[1] // p)
        pol = size[2] if len(size) > 2 and cfg.events.split_polarity else 1
        return w * h * max(pol, 1)
    pol = size[2] if len(size) > 2 and cfg.events.split_polarity else 1
    return size[0] * max(pol, 1)


def make_model(cfg: Config, n_inputs: int, weights: str | Path | None = None):
    """The SSM layer: loaded from ``weights`` (.npz) or random from the [ssm] section."""
    from . import ssm as ssm_mod

    if weights is not None:
        model = ssm_mod.load_ssm(weights)
        if model.n_inputs != n_inputs:
            raise InputError(f"{weights}: field 'B': has {model.n_inputs} input columns but the events give "
                             f"{n_inputs} input rows; export B with shape (N, {n_inputs}) or change [events] pool")
        return model
    s = cfg.ssm
    return ssm_mod.random_ssm(n_inputs, s.n_states, s.taus, seed=s.seed, init=s.init)


@dataclass(frozen=True)
class Prepared:
    """Everything decided before SPICE runs for one sample."""

    cfg: Config
    schedule: PulseSchedule
    model: object                     # ssm.SSMParams
    mapping: CircuitMapping
    sample_times: np.ndarray          # (M,) s
    ideal: np.ndarray                 # (M, N)
    deck: str
    deck_info: DeckInfo
    source: str = ""
    label: int | None = None


def build(sample: EventSample, cfg: Config | None = None, *, weights=None, model=None,
          mapping: CircuitMapping | None = None, calibration: list | None = None) -> Prepared:
    """Schedule, SSM, mapping (calibrated on ``calibration`` schedules or this sample), ideal states, deck."""
    from . import ssm as ssm_mod

    cfg = cfg or load_config(None)
    schedule = schedule_sample(sample, cfg)
    if model is None:
        model = make_model(cfg, schedule.n_rows, weights)
    if mapping is None:
        mapping = map_ssm(model, cfg, calibration if calibration else [schedule])
        mapping = calibrate(model, mapping, cfg, calibration if calibration else [schedule])
    times = ssm_mod.default_sample_times(schedule.duration, cfg.ssm.n_samples)
    ideal = ssm_mod.simulate_ssm(model, schedule, times, method=cfg.ssm.method)
    deck, info = build_deck(mapping, schedule, cfg, sample_times=times, source=str(sample.source),
                            weights="" if weights is None else str(weights), seed=cfg.ssm.seed, title=f"cimspice SSM layer: {Path(str(sample.source)).name}")
    return Prepared(cfg=cfg, schedule=schedule, model=model, mapping=mapping, sample_times=times,
                    ideal=ideal, deck=deck, deck_info=info, source=str(sample.source), label=sample.label)


@dataclass(frozen=True)
class SimResult:
    """States of one sample, ideal and from SPICE, with the run's figures."""

    prepared: Prepared
    spice: np.ndarray          # (M, N) x_hat from SPICE
    w_plus: np.ndarray         # (M, N)
    w_minus: np.ndarray        # (M, N)
    nrmse: float
    spice_time_s: float
    wall_time_s: float
    ngspice_version: str
    log: str
    waveforms: dict = field(default_factory=dict)

    @property
    def ideal(self) -> np.ndarray:
        return self.prepared.ideal


def nrmse(estimate: np.ndarray, reference: np.ndarray) -> float:
    """RMS(estimate - reference) / RMS(reference) over all entries (0 if the reference is 0)."""
    ref = np.asarray(reference, dtype=float)
    den = float(np.sqrt(np.mean(ref ** 2)))
    err = float(np.sqrt(np.mean((np.asarray(estimate, dtype=float) - ref) ** 2)))
    return err / den if den > 0 else err


def sample_w(time: np.ndarray, trace: np.ndarray, times: np.ndarray) -> np.ndarray:
    """State node value at ``times`` (linear interpolation between simulator time points)."""
    return np.interp(times, time, trace)


def saved_names(info) -> list[str]:
    """Vectors to load from a deck's raw file: time, the w nodes, the saved sense currents."""
    return ["time", *info.w_plus, *info.w_minus, *info.sense]


def read_states(plot, info, times: np.ndarray, keep_waveforms: bool = False):
    """(w+ (M, N), w- (M, N) at ``times``, dense waveforms or {}) from a transient plot."""
    t = plot["time"]
    wp = np.stack([sample_w(t, plot[n], times) for n in info.w_plus], axis=-1)
    wm = np.stack([sample_w(t, plot[n], times) for n in info.w_minus], axis=-1)
    waves = {}
    if keep_waveforms:
        waves = {"time": t, "w_plus": np.stack([plot[n] for n in info.w_plus], axis=-1),
                 "w_minus": np.stack([plot[n] for n in info.w_minus], axis=-1)}
        waves.update({n: plot[n] for n in info.sense})
    return wp, wm, waves


def run_deck(deck: str, info: DeckInfo, times: np.ndarray, cfg: Config, workdir=None):
    """ngspice on one deck: (w+ (M, N), w- (M, N) at ``times``, the SpiceRun)."""
    from . import spice

    run = spice.run_ngspice(deck, timeout=cfg.sim.timeout, names=saved_names(info), workdir=workdir)
    wp, wm, _ = read_states(run.plot("tran"), info, times)
    return wp, wm, run


def calibrate(model, mapping: CircuitMapping, cfg: Config, schedules: list, max_runs: int = 4) -> CircuitMapping:
    """Fit the state gains on SPICE runs of calibration schedules (non-linear write modes only).

    Linear mode has an analytic gain and is returned unchanged.
    """
    from . import ssm as ssm_mod
    from .mapping import calibrate_gains

    if mapping.gain_method == "analytic":
        return mapping
    xs, dws, peak = [], [], np.zeros(mapping.n_states)
    for sch in schedules[:max_runs]:
        times = ssm_mod.default_sample_times(sch.duration, cfg.ssm.n_samples)
        xs.append(ssm_mod.simulate_ssm(model, sch, times, method=cfg.ssm.method))
        deck, info = build_deck(mapping, sch, cfg, sample_times=times, title="cimspice gain calibration")
        wp, wm, _ = run_deck(deck, info, times, cfg)
        dws.append(wp - wm)
        peak = np.maximum(peak, np.maximum(wp.max(axis=0), wm.max(axis=0)))
    return calibrate_gains(mapping, np.stack(xs), np.stack(dws), cfg.circuit.w_max, w_peak=peak)


def simulate(prep: Prepared, *, keep_waveforms: bool = False, workdir=None) -> SimResult:
    """Run ngspice on the prepared deck and turn the w traces into SSM states."""
    from . import spice

    t0 = time.perf_counter()
    info = prep.deck_info
    run = spice.run_ngspice(prep.deck, timeout=prep.cfg.sim.timeout, names=saved_names(info), workdir=workdir)
    return sim_result(prep, run, run.plot("tran"), info, t0, keep_waveforms, run.version)


def sim_result(prep: Prepared, run, plot, info, t0: float, keep_waveforms: bool, version: str) -> SimResult:
    """SimResult of one finished run (any simulator): states at the sample times, NRMSE, timings."""
    wp, wm, waves = read_states(plot, info, prep.sample_times, keep_waveforms)
    x_hat = states_from_w(wp, wm, prep.mapping)
    return SimResult(prepared=prep, spice=x_hat, w_plus=wp, w_minus=wm,
                     nrmse=nrmse(x_hat, prep.ideal), spice_time_s=run.elapsed_s,
                     wall_time_s=time.perf_counter() - t0, ngspice_version=version,
                     log=run.log, waveforms=waves)


def to_result(res: SimResult):
    """The HDF5 image (results.Result) of one simulated sample."""
    from .results import Result

    p = res.prepared
    sch = p.schedule
    m = p.mapping
    return Result(
        sample_times=p.sample_times,
        ideal=p.ideal[None],
        spice=res.spice[None],
        events={"t": sch.t_on, "c": sch.row, "u": sch.amplitude, "width": sch.width},
        model={"B": p.model.B, "taus": p.model.taus, "groups": p.model.groups,
               "G_plus": m.g_plus, "G_minus": m.g_minus, "G_rram_plus": m.g_rram_plus,
               "G_rram_minus": m.g_rram_minus, "r_tia": m.r_tia, "gains": m.gains,
               "gain_method": m.gain_method},
        labels=None if p.label is None else np.array([p.label]),
        metrics={"state_nrmse": res.nrmse, "wall_time_s": res.wall_time_s,
                 "spice_time_s": res.spice_time_s, "n_events": sch.n_events,
                 "n_pulses": sch.n_pulses, "n_merged": sch.n_merged, "n_dropped": sch.n_dropped,
                 "headroom": m.headroom},
        attrs={"ngspice_version": res.ngspice_version, "config": p.cfg.to_toml(),
               "seed": p.cfg.ssm.seed, "source": p.source, "cimspice": __version__},
        waveforms=res.waveforms,
    )


def dataset_calibration(path, cfg: Config) -> list[PulseSchedule] | None:
    """Schedules of the first ``n_calibration`` training samples of a dataset file (else None).

    A dataset run maps the SSM once, on training data, and every sample then runs on the same
    programmed hardware; ``simulate --index`` uses the same calibration so its numbers match.
    """
    from . import events as ev

    try:
        ds = ev.load_dataset(path)
    except EventFileError:  # not a dataset file (single sample, SHD, csv...): calibrate on the sample
        return None
    train = np.flatnonzero(np.asarray(ds.split) == 0)
    idx = train[: cfg.circuit.n_calibration] if train.size else np.arange(min(len(ds), cfg.circuit.n_calibration))
    return [schedule_sample(ds.sample(int(i)), cfg) for i in idx]
