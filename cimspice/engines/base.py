"""The engine interface: a prepared circuit in, device states at the sample times out.

An engine has a ``name``, refuses in one line what it cannot simulate exactly (:meth:`check`),
and runs one prepared sample (:meth:`run`). "Prepared" is :class:`cimspice.pipeline.Prepared`
(mapping, schedule, sample times, config, ngspice deck); engines read it, never change it,
and never import the pipeline, so data flows one way: pipeline -> engines.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from ..config import Config
from ..hardware.trace import trace_sensed_from_w
from .energy_netlist import COMPONENTS, ENERGY_SCALE


@dataclass(frozen=True)
class EngineRun:
    """One finished engine run: device states at the sample times and the run's figures."""

    engine: str                # 'ngspice' | 'vacask' | 'twin'
    w_plus: np.ndarray | None  # (M, N) w of the + device of each pair at the sample times ('state')
    w_minus: np.ndarray | None  # (M, N)
    version: str               # simulator version
    elapsed_s: float           # time inside the simulator, s
    log: str = ""
    waveforms: dict = field(default_factory=dict)   # dense traces when asked
    sensed: np.ndarray | None = None   # (M, N) what the read path senses (None: w+ - w-);
                                       # states = sensed / mapping.gains
    w_trace: np.ndarray | None = None  # (M, C, K) trace devices' w ('trace', when known)
    energy: dict | None = None  # delivered energy per component over the run, J: crossbar_J,
                                # write_J, read_J (None: not accounted by this engine/config)

    @property
    def signal(self) -> np.ndarray:
        """(M, N) the quantity the gains divide: ``sensed``, else ``w+ - w-``."""
        return self.sensed if self.sensed is not None else self.w_plus - self.w_minus


class Engine(Protocol):
    name: str
    dense_waveforms: bool      # can keep dense w traces (keep_waveforms) besides the sample times
    in_process: bool           # cheap and pure Python: evaluate may run it in its own process

    def check(self, cfg: Config) -> None:
        """Raise a one-line ConfigError for an option this engine cannot simulate exactly."""

    def run(self, prep, *, keep_waveforms: bool = False, workdir=None) -> EngineRun:
        """Simulate one prepared sample."""


def sample_at(time: np.ndarray, trace: np.ndarray, times: np.ndarray) -> np.ndarray:
    """A trace's value at ``times`` (linear interpolation between simulator time points)."""
    return np.interp(times, time, trace)


def sample_plot(plot, info, times: np.ndarray, mapping, keep_waveforms: bool = False) -> dict:
    """EngineRun fields (w_plus, w_minus, sensed, w_trace, waveforms) from a transient plot and
    the deck's DeckInfo: the read path's sensed pair currents (read mode 'pulse'), the trace
    devices' w with B applied in NumPy ('trace' + 'node'), or the state-device w ('state')."""
    out = {"w_plus": None, "w_minus": None, "sensed": None, "w_trace": None, "waveforms": {},
           "energy": energy_from_plot(plot, info)}
    t = plot["time"]
    if info.w_plus:
        out["w_plus"], out["w_minus"], out["waveforms"] = states_from_plot(
            plot, info.w_plus, info.w_minus, info.sense, times, keep_waveforms)
    if info.i_plus:
        ip = np.stack([sample_at(t, plot[n], times) for n in info.i_plus], axis=-1)
        im = np.stack([sample_at(t, plot[n], times) for n in info.i_minus], axis=-1)
        out["sensed"] = (ip - im) / info.i_scale
        if keep_waveforms:
            out["waveforms"].update({n: plot[n] for n in info.i_plus + info.i_minus})
            out["waveforms"].setdefault("time", t)
    if info.w_dev:
        K = len(info.w_ref)
        wd = np.stack([sample_at(t, plot[n], times) for n in info.w_dev], axis=-1)
        wd = wd.reshape(times.size, -1, K)
        wr = np.stack([sample_at(t, plot[n], times) for n in info.w_ref], axis=-1)
        out["w_trace"] = wd
        out["sensed"] = trace_sensed_from_w(wd, wr, mapping)
    return out


def energy_from_plot(plot, info) -> dict | None:
    """Component energies (J) from the deck's integrator nodes at the stream end (the last time
    point is tstop); components the deck has no integrator for are 0 (e.g. no read pulses).
    None when the deck has no energy accounting."""
    if not info.energy:
        return None
    out = dict.fromkeys(COMPONENTS, 0.0)
    for comp, vec in info.energy:
        out[comp] = float(plot[vec][-1]) / ENERGY_SCALE
    return out


def states_from_plot(plot, w_plus: tuple, w_minus: tuple, sense: tuple, times: np.ndarray,
                     keep_waveforms: bool = False):
    """(w+ (M, N), w- (M, N) at ``times``, dense waveforms or {}) from a transient plot whose
    vectors are named ``w_plus``/``w_minus``/``sense`` (simulator-specific names)."""
    t = plot["time"]
    wp = np.stack([sample_at(t, plot[n], times) for n in w_plus], axis=-1)
    wm = np.stack([sample_at(t, plot[n], times) for n in w_minus], axis=-1)
    waves = {}
    if keep_waveforms:
        waves = {"time": t, "w_plus": np.stack([plot[n] for n in w_plus], axis=-1),
                 "w_minus": np.stack([plot[n] for n in w_minus], axis=-1)}
        waves.update({n: plot[n] for n in sense})
    return wp, wm, waves
