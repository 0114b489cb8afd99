"""The pipeline of one event sample: events -> pulse schedule -> ideal SSM and circuit -> engine -> states.

Python API in three calls::

    sample = cimspice.load_events("bars.npz", index=0)
    prep = cimspice.build(sample)                 # schedule, SSM, mapping, ideal states, deck
    res = cimspice.simulate(prep)                 # runs ngspice; res.circuit, res.ideal, res.nrmse

The rules every run shares live here once: which samples calibrate the hardware
(:func:`calibration_schedules`), how the SSM is programmed onto it (:func:`program`), and how a
result file is assembled (:func:`assemble_result`), so that ``simulate --index i`` and
``evaluate`` give the same states for sample ``i``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path

import numpy as np

from . import __version__
from .config import Config, load_config
from .datasets import dataset_split
from .energy import energy_figures
from .engines.netlist import DeckInfo, build_deck
from .engines.registry import DEFAULT_ENGINE, get_engine
from .errors import ConfigError, EventFileError, InputError
from .events import EventDataset, EventSample
from .hardware.mapping import CircuitMapping, calibrate_gains, map_ssm
from .hardware.trace import map_trace
from .hardware.variation import CALIBRATION_KEY, draw_sample, full_scale, realise, sense
from .io.event_files import load_dataset
from .io.results import Result
from .schedule import PulseSchedule, schedule_sample, software_schedule
from .ssm import SSMParams, default_sample_times, load_ssm, random_ssm, simulate_ssm


def make_model(cfg: Config, n_inputs: int, weights: str | Path | None = None) -> SSMParams:
    """The SSM layer: loaded from ``weights`` (.npz) or random from the [ssm] section."""
    if weights is not None:
        model = load_ssm(weights)
        if model.n_inputs != n_inputs:
            raise InputError(f"{weights}: field 'B': has {model.n_inputs} input columns but the events give "
                             f"{n_inputs} input rows; export B with shape (N, {n_inputs}) or change [events] pool")
        return model
    s = cfg.ssm
    return random_ssm(n_inputs, s.n_states, s.taus, seed=s.seed, init=s.init)


# ---------------------------------------------------------------------------------------------
# Calibration and programming: the hardware is programmed once per dataset
# ---------------------------------------------------------------------------------------------

def calibration_schedules(ds: EventDataset, cfg: Config) -> tuple[list[PulseSchedule], dict]:
    """Schedules of the first ``[circuit] n_calibration`` training samples of a dataset.

    The one calibration rule: the training split (the file's, else the project's split rule),
    in file order; a sample left without events by filtering is skipped and recorded. Returns
    ``(schedules, record)``, ``record = {'used': [indices], 'skipped': {index: reason}}``.
    """
    train = np.flatnonzero(dataset_split(ds) == 0)
    schedules, used, skipped = [], [], {}
    for i in train[: cfg.circuit.n_calibration]:
        try:
            schedules.append(schedule_sample(ds.sample(int(i)), cfg))
            used.append(int(i))
        except InputError as exc:   # empty after filtering: it calibrates nothing
            skipped[int(i)] = str(exc)
    if not schedules:
        raise InputError(f"{ds.source}: no training sample gives input pulses to calibrate the "
                         f"mapping; check [events] refractory_us / pool")
    return schedules, {"used": used, "skipped": skipped}


def calibration_for_file(path, cfg: Config) -> tuple[list[PulseSchedule], dict] | None:
    """:func:`calibration_schedules` of a dataset file; None for a single-sample file (then the
    sample calibrates itself)."""
    try:
        ds = load_dataset(path)
    except EventFileError:  # not a dataset (single-sample npz/npy/csv, an .h5 without labels)
        return None
    return calibration_schedules(ds, cfg)


def program(model: SSMParams, cfg: Config, schedules: list[PulseSchedule], *,
            engine: str = DEFAULT_ENGINE, record: dict | None = None) -> CircuitMapping:
    """Map ``model`` onto the circuit, scaled on ``schedules``; in non-linear write modes the
    gains are fitted on ``engine`` runs of them. ``record`` (which samples) goes to ``info``.

    The chip is designed and calibrated on nominal devices, then programmed onto the instance
    ``[variation] seed`` (hardware.variation.realise); ``[variation] recalibrate`` fits the gains
    again on the instance (least squares on ``engine`` runs of the calibration samples). With
    read noise or an ADC, ``info['full_scale']`` holds each state's full scale."""
    mapper = map_trace if cfg.circuit.topology == "trace" else map_ssm
    nominal = calibrate(model, mapper(model, cfg, schedules), cfg, schedules, engine=engine)
    mapping = realise(nominal, cfg)
    if cfg.variation.recalibrate:
        mapping = calibrate(model, mapping, cfg, schedules, engine=engine, force=True)
    if not np.all(np.isfinite(mapping.gains)):
        raise ConfigError(f"config: [device] preset={cfg.device.preset!r} mode={cfg.device.mode!r}: "
                          f"the state gains could not be "
                          f"calibrated (non-finite); check the [device] write parameters")
    info = {**mapping.info, "calibration_engine": engine if mapping.gain_method != "analytic" else ""}
    if cfg.variation.read_noise or cfg.variation.adc_bits:
        info["full_scale"] = full_scale([prepare(sch, model, mapping, cfg).ideal for sch in schedules])
    if record is not None:
        info["calibration"] = record
    return replace(mapping, info=info)


def calibrate(model: SSMParams, mapping: CircuitMapping, cfg: Config, schedules: list,
              max_runs: int = 4, *, engine: str = DEFAULT_ENGINE, force: bool = False) -> CircuitMapping:
    """Fit the state gains on engine runs of calibration schedules (non-linear writes only:
    sinh mode in `state`, the saturation window in `trace`; every mapping with ``force``).

    An analytic gain is returned unchanged (unless ``force``).
    """
    if mapping.gain_method == "analytic" and not force:
        return mapping
    eng = get_engine(engine)
    eng.check(cfg)
    xs, dws, peak = [], [], np.zeros(mapping.n_states)
    for j, sch in enumerate(schedules[:max_runs]):
        prep = prepare(sch, model, mapping, cfg, title="cimspice gain calibration",
                       key=CALIBRATION_KEY + j)
        run = eng.run(prep)
        xs.append(prep.ideal)
        dws.append(run.signal)
        if run.w_plus is not None:
            peak = np.maximum(peak, np.maximum(run.w_plus.max(axis=0), run.w_minus.max(axis=0)))
    if run.w_plus is None:   # trace: the predicted device peak stays
        peak = mapping.w_peak
    return calibrate_gains(mapping, np.stack(xs), np.stack(dws), cfg.circuit.w_max, w_peak=peak)


# ---------------------------------------------------------------------------------------------
# One sample
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Prepared:
    """Everything decided before an engine runs for one sample. The ngspice deck is made on
    first use (``deck``, ``deck_info``)."""

    cfg: Config
    schedule: PulseSchedule
    model: SSMParams
    mapping: CircuitMapping
    sample_times: np.ndarray          # (M,) s
    ideal: np.ndarray                 # (M, N)
    source: str = ""
    label: int | None = None
    weights: str = ""                 # weights file the model came from ('' = seeded random)
    title: str = "cimspice SSM layer"
    software: np.ndarray | None = None  # (M, N) software reference: dirac SSM on the raw events
    draws: object = None              # hardware.variation.SampleDraws (write / read noise) or None

    @cached_property
    def _deck(self) -> tuple[str, DeckInfo]:
        return build_deck(self.mapping, self.schedule, self.cfg, sample_times=self.sample_times,
                          source=self.source, weights=self.weights, seed=self.cfg.ssm.seed,
                          title=self.title, draws=self.draws)

    @property
    def deck(self) -> str:
        """The ngspice deck text (runs by hand with ``ngspice -b``)."""
        return self._deck[0]

    @property
    def deck_info(self) -> DeckInfo:
        return self._deck[1]


def prepare(schedule: PulseSchedule, model: SSMParams, mapping: CircuitMapping, cfg: Config, *,
            source: str = "", label: int | None = None, weights: str = "",
            title: str = "cimspice SSM layer", key: int = 0) -> Prepared:
    """Sample times, ideal states and noise draws (sample key ``key``: its dataset index) of
    one schedule on programmed hardware."""
    # read slots (read mode 'pulse') are the sample times; else the default grid
    times = schedule.reads if schedule.reads.size else default_sample_times(schedule.duration,
                                                                             cfg.ssm.n_samples)
    ideal = simulate_ssm(model, schedule, times, method=cfg.ssm.method)
    draws = draw_sample(cfg, schedule, mapping.n_states, len(model.taus), times.size, key)
    return Prepared(cfg=cfg, schedule=schedule, model=model, mapping=mapping, sample_times=times,
                    ideal=ideal, source=source, label=label, weights=weights, title=title,
                    draws=draws)


def build(sample: EventSample, cfg: Config | None = None, *, weights=None, model=None,
          mapping: CircuitMapping | None = None, calibration: list | None = None,
          calibration_record: dict | None = None, key: int = 0) -> Prepared:
    """Schedule, SSM, mapping (programmed on ``calibration`` schedules, else on this sample),
    ideal states, noise draws (``key``: the sample's index in its file); the deck follows on
    first use."""
    cfg = cfg or load_config(None)
    schedule = schedule_sample(sample, cfg)
    if model is None:
        model = make_model(cfg, schedule.n_rows, weights)
    if mapping is None:
        mapping = program(model, cfg, calibration if calibration else [schedule],
                          record=calibration_record)
    source = str(sample.source)
    prep = prepare(schedule, model, mapping, cfg, source=source, label=sample.label,
                   weights="" if weights is None else str(weights),
                   title=f"cimspice SSM layer: {Path(source).name}", key=key)
    software = simulate_ssm(model, software_schedule(sample, cfg), prep.sample_times, method="dirac")
    return replace(prep, software=software)


@dataclass(frozen=True)
class SimResult:
    """States of one sample, ideal and from an engine, with the run's figures."""

    prepared: Prepared
    engine: str                # engine that produced ``circuit`` (see engines.registry)
    circuit: np.ndarray        # (M, N) x_hat from what the engine's read path senses
    w_plus: np.ndarray | None  # (M, N) state-device w ('state' topology; None for 'trace')
    w_minus: np.ndarray | None  # (M, N)
    nrmse: float
    engine_time_s: float       # time inside the engine (simulator process or twin), s
    wall_time_s: float
    version: str               # simulator version
    log: str
    waveforms: dict = field(default_factory=dict)
    energy: dict | None = None  # energy.energy_figures (None: not accounted by the engine)

    @property
    def ideal(self) -> np.ndarray:
        return self.prepared.ideal

    @property
    def ngspice_version(self) -> str:
        return self.version if self.engine.startswith("ngspice") else ""


def nrmse(estimate: np.ndarray, reference: np.ndarray) -> float:
    """RMS(estimate - reference) / RMS(reference) over all entries (0 if the reference is 0)."""
    ref = np.asarray(reference, dtype=float)
    den = float(np.sqrt(np.mean(ref ** 2)))
    err = float(np.sqrt(np.mean((np.asarray(estimate, dtype=float) - ref) ** 2)))
    return err / den if den > 0 else err


def simulate(prep: Prepared, *, engine: str = DEFAULT_ENGINE, keep_waveforms: bool = False,
             workdir=None) -> SimResult:
    """Run an engine (default ngspice) on the prepared circuit and turn its device states into
    SSM states."""
    t0 = time.perf_counter()
    eng = get_engine(engine)
    eng.check(prep.cfg)
    run = eng.run(prep, keep_waveforms=keep_waveforms, workdir=workdir)
    # read noise and ADC act on the sampled states, identically for every engine
    x_hat = sense(run.signal / prep.mapping.gains, prep.cfg, prep.mapping.info.get("full_scale"),
                  prep.draws)
    return SimResult(prepared=prep, engine=run.engine, circuit=x_hat, w_plus=run.w_plus,
                     w_minus=run.w_minus, nrmse=nrmse(x_hat, prep.ideal), engine_time_s=run.elapsed_s,
                     wall_time_s=time.perf_counter() - t0, version=run.version, log=run.log,
                     waveforms=run.waveforms, energy=sample_energy(prep, run.energy))


def sample_energy(prep: Prepared, components: dict | None) -> dict | None:
    """The /energy figures of one sample from an engine's component energies (J), or None."""
    if components is None:
        return None
    sch = prep.schedule
    return energy_figures(components, cfg=prep.cfg, n_events=sch.n_events, n_pulses=sch.n_pulses,
                          n_reads=int(prep.sample_times.size), n_states=prep.mapping.n_states)


# ---------------------------------------------------------------------------------------------
# The result file of one sample
# ---------------------------------------------------------------------------------------------

def assemble_result(prep: Prepared | None, sim: SimResult | None = None, *,
                    model: SSMParams | None = None, mapping: CircuitMapping | None = None,
                    label: int | None = None, attrs: dict | None = None,
                    wall_time_s: float | None = None) -> Result:
    """The one image (results.Result) of a sample's run, for ``simulate`` and ``evaluate``.

    ``prep`` None records a sample that failed before it was prepared (no states; ``model`` and
    ``mapping`` still describe the hardware). ``attrs`` adds run attributes (e.g. evaluate's
    key, split, error).
    """
    model = prep.model if prep is not None else model
    mapping = prep.mapping if prep is not None else mapping
    label = prep.label if prep is not None and label is None else label
    events, times, ideal, metrics, software = None, np.zeros(0), np.zeros((1, 0, 0)), {}, None
    run_attrs = {"cimspice": __version__}
    if prep is not None:
        sch = prep.schedule
        events = {"t": sch.t_on, "c": sch.row, "u": sch.amplitude, "width": sch.width}
        times, ideal = prep.sample_times, prep.ideal[None]
        software = None if prep.software is None else prep.software[None]
        metrics = {"n_events": sch.n_events, "n_pulses": sch.n_pulses, "n_merged": sch.n_merged,
                   "n_dropped": sch.n_dropped, "n_delayed": sch.n_delayed, "headroom": mapping.headroom}
        if prep.software is not None:   # what the schedule (merging, pulse width) costs
            metrics["schedule_nrmse"] = nrmse(prep.ideal, prep.software)
        run_attrs.update(config=prep.cfg.to_toml(), seed=prep.cfg.ssm.seed, source=prep.source)
    waveforms, energy = {}, {}
    metrics.update(state_nrmse=float("nan"), engine_time_s=0.0)
    if sim is not None:
        energy = dict(sim.energy or {})
        metrics.update(state_nrmse=sim.nrmse, engine_time_s=sim.engine_time_s,
                       wall_time_s=sim.wall_time_s)
        run_attrs.update(engine=sim.engine, ngspice_version=sim.ngspice_version,
                         simulator_version=sim.version)
        waveforms = {k: sim.waveforms[k] for k in ("time", "w_plus", "w_minus") if k in sim.waveforms}
        if sim.w_plus is not None:
            waveforms.update(w_plus_at_samples=sim.w_plus, w_minus_at_samples=sim.w_minus)
    else:
        run_attrs.update(engine="", ngspice_version="", simulator_version="")
    if wall_time_s is not None:
        metrics["wall_time_s"] = wall_time_s
    model_group = {}
    if model is not None:
        model_group.update(B=model.B, taus=model.taus, groups=model.groups)
    if mapping is not None:
        model_group.update(G_plus=mapping.g_plus, G_minus=mapping.g_minus,
                           G_rram_plus=mapping.g_rram_plus, G_rram_minus=mapping.g_rram_minus,
                           r_tia=mapping.r_tia, gains=mapping.gains, gain_method=mapping.gain_method)
    return Result(sample_times=times, ideal=ideal, software=software,
                  circuit=None if sim is None else sim.circuit[None],
                  events=events, model=model_group,
                  labels=None if label is None else np.array([label]), metrics=metrics,
                  attrs={**run_attrs, **(attrs or {})}, waveforms=waveforms, energy=energy,
                  variation=variation_record(mapping, prep))


def variation_record(mapping: CircuitMapping | None, prep: Prepared | None) -> dict:
    """The result file's /variation: the chip's and the sample's draws, the full scale."""
    out: dict = {}
    if mapping is not None and mapping.chip is not None:
        out.update(chip=mapping.chip.arrays(), seed=int(mapping.chip.seed))
    if prep is not None and prep.draws is not None:
        out.update(sample=prep.draws.arrays(), key=int(prep.draws.key),
                   seed=int(prep.cfg.variation.seed))
    if mapping is not None and "full_scale" in mapping.info:
        out["full_scale"] = np.asarray(mapping.info["full_scale"], float)
    return out
