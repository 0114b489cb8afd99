"""Event streams: read, validate, write, transform, and turn into a pulse schedule.

Events are NumPy structured arrays (tonic-compatible): vision ``t`` (int64, µs), ``x``, ``y``
(int16), ``p`` (int8, 0/1); audio ``t``, ``x`` (channel), ``p``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

VISION_DTYPE = np.dtype([("t", "<i8"), ("x", "<i2"), ("y", "<i2"), ("p", "i1")])
AUDIO_DTYPE = np.dtype([("t", "<i8"), ("x", "<i2"), ("p", "i1")])


@dataclass(frozen=True)
class PulseSchedule:
    """Per-row input pulses: the common input of the ideal SSM and of the circuit.

    A pulse is an ideal rectangle on row ``row[i]`` starting at ``t_on[i]`` (s) lasting
    ``width[i]`` (s) with amplitude ``amplitude[i]`` (dimensionless; 1 = one event). Its input
    rate is ``amplitude / t_p`` so it carries ``amplitude * width / t_p`` events' worth of input.
    The circuit draws it as a trapezoid with the same area and centre: 0 at ``t_on - t_rise/2``,
    full at ``t_on + t_rise/2``, full until ``t_on + width - t_rise/2``, 0 at
    ``t_on + width + t_rise/2``. Occupied intervals on one row never overlap and are separated by
    at least ``min_gap`` (ngspice 39 aborts on touching PWL breakpoints).
    Arrays are sorted by ``t_on`` (ties by row).
    """

    row: np.ndarray        # (P,) int32, input row (channel) index
    t_on: np.ndarray       # (P,) float64, s
    width: np.ndarray      # (P,) float64, s
    amplitude: np.ndarray  # (P,) float64
    n_rows: int
    t_p: float             # nominal pulse width, s
    t_rise: float          # PWL edge time, s
    min_gap: float         # s, between occupied intervals on one row
    duration: float        # s, end of the stream (>= last pulse end)
    n_events: int = 0      # events in
    n_merged: int = 0      # events merged into a previous pulse
    n_dropped: int = 0     # events dropped (refractory rule)

    @property
    def n_pulses(self) -> int:
        return int(self.row.size)
