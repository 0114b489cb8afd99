"""The pulse schedule: per input row, the pulses that both the ideal SSM and the circuit see.

Event-level transforms (pooling, refractory filter, time scaling, merging of events that would
overlap on one row) happen once, here, before both, so that any difference between ideal and
circuit states is caused by the circuit alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from .config import Config
from .errors import InputError
from .events import Downsample, EventSample, Refractory, first_true, fmt_value, to_channels
from .ssm import default_sample_times

MERGE_MODES = ("extend", "count", "drop")


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
    reads: np.ndarray = field(default_factory=lambda: np.zeros(0))   # (M,) read instants, s
    t_read: float = 0.0    # read-pulse width, s (0: no read pulses)
    n_delayed: int = 0     # pulses delayed out of a read slot

    def __post_init__(self):
        """The one check of a schedule (from :func:`make_schedule`, a file or a user): shapes,
        types, finite values, row range, order, and on each row the ``min_gap`` separation."""
        def bad(fld, what, fix="rebuild the schedule with make_schedule"):
            raise InputError(f"PulseSchedule: field '{fld}': {what}; fix: {fix}")

        for fld in ("t_p", "t_rise", "min_gap", "duration", "t_read"):
            v = getattr(self, fld)
            if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) \
                    or not math.isfinite(v) or v < 0:
                bad(fld, f"{v!r} is not a finite number >= 0 (seconds)")
        if not self.t_p > 0:
            bad("t_p", "the nominal pulse width must be > 0 s")
        if not self.t_rise < self.t_p:
            bad("t_rise", f"{self.t_rise} s is not shorter than t_p = {self.t_p} s", "use t_rise < t_p")
        reads = np.asarray(self.reads, dtype=np.float64)
        if reads.ndim != 1 or not np.all(np.isfinite(reads)) or (reads.size and (
                reads.min() <= 0 or np.any(np.diff(reads) <= 0))):
            bad("reads", "read instants must be finite, > 0 s and strictly increasing")
        if reads.size and not self.t_read > self.t_rise:
            bad("t_read", f"{self.t_read} s is not longer than t_rise = {self.t_rise} s",
                "use a read pulse longer than its edges")
        object.__setattr__(self, "reads", reads)
        if isinstance(self.n_rows, bool) or not isinstance(self.n_rows, (int, np.integer)) or self.n_rows < 1:
            bad("n_rows", f"{self.n_rows!r} is not a row count >= 1")
        row = np.asarray(self.row)
        n = row.shape
        for fld in ("row", "t_on", "width", "amplitude"):
            arr = np.asarray(getattr(self, fld))
            if arr.ndim != 1 or arr.shape != n:
                bad(fld, f"has shape {arr.shape}; row, t_on, width and amplitude must be 1-D "
                         f"arrays of equal length")
            if fld != "row" and (arr.dtype.kind not in "iuf" or not np.all(np.isfinite(arr))):
                i = first_true(~np.isfinite(arr)) if arr.dtype.kind in "iuf" else 0
                bad(fld, f"index {i} is not a finite number")
        if row.size and row.dtype.kind not in "iu":
            bad("row", f"has dtype {row.dtype}; it must hold integer row indices")
        if row.size and (row.min() < 0 or row.max() >= self.n_rows):
            i = first_true((row < 0) | (row >= self.n_rows))
            bad("row", f"index {i} is {fmt_value(row[i])}, outside 0..{self.n_rows - 1}")
        object.__setattr__(self, "row", row.astype(np.int32, copy=False))
        for fld in ("t_on", "width", "amplitude"):
            object.__setattr__(self, fld, np.asarray(getattr(self, fld), dtype=np.float64))
        if (self.width < 0).any():
            bad("width", f"index {first_true(self.width < 0)} is negative; widths must be >= 0 s")
        if (self.t_on < 0).any():
            bad("t_on", f"index {first_true(self.t_on < 0)} is negative; pulses start at t >= 0")
        down = np.diff(self.t_on) < 0
        if down.any():
            bad("t_on", f"not sorted at index {first_true(down) + 1}", "sort pulses by t_on, then row")
        if self.min_gap > 0 and row.size:
            # the circuit's contract: on one row, drawn trapezoids are >= min_gap apart (the same
            # expression as make_schedule's merge test, so schedules it makes pass bit for bit)
            order = np.lexsort((self.t_on, self.row))
            start, end = self.occupied()
            same = self.row[order][1:] == self.row[order][:-1]
            gap = start[order][1:] - end[order][:-1]
            close = same & (gap < self.min_gap)
            if close.any():
                k = order[1:][first_true(close)]
                bad("t_on", f"pulse {k} on row {self.row[k]} starts {gap[first_true(close)]:.3g} s after "
                            f"the previous one ends, less than min_gap = {self.min_gap:g} s",
                    "merge or drop the close events (make_schedule merge=...)")

    @property
    def n_pulses(self) -> int:
        return int(self.row.size)

    def occupied(self) -> tuple[np.ndarray, np.ndarray]:
        """(start, end) of each pulse's drawn trapezoid, s: ``t_on ∓ t_rise/2`` edges."""
        half = self.t_rise / 2
        return self.t_on - half, self.t_on + self.width + half

    def read_corners(self) -> tuple[np.ndarray, np.ndarray]:
        """(t_on, width) of the read pulses: centred on the read instants, ``t_read`` wide."""
        return self.reads - self.t_read / 2, np.full(self.reads.size, self.t_read)

    def for_row(self, r: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(t_on, width, amplitude) of row ``r``'s pulses, sorted by time."""
        m = self.row == r
        return self.t_on[m], self.width[m], self.amplitude[m]


# --------------------------------------------------------------------------- schedule

def _check_args(t_us, c, n_rows, t_p, t_rise, min_gap, merge, time_scale, t_end):
    def bad(fld, what, fix):
        raise InputError(f"make_schedule: field '{fld}': {what}; fix: {fix}")

    for fld, v in (("t_p", t_p), ("t_rise", t_rise), ("min_gap", min_gap),
                   ("time_scale", time_scale)):
        if not (isinstance(v, (int, float, np.floating, np.integer)) and math.isfinite(v) and v > 0):
            bad(fld, f"{v!r} is not a finite value > 0", f"give {fld} > 0 (seconds)"
                if fld != "time_scale" else "give a factor > 0")
    if not t_rise < t_p:
        bad("t_rise", f"{t_rise} s is not shorter than t_p = {t_p} s", "use t_rise < t_p")
    if merge not in MERGE_MODES:
        bad("merge", f"{merge!r} unknown", f"use one of {', '.join(MERGE_MODES)}")
    if not (isinstance(n_rows, (int, np.integer)) and n_rows >= 1):
        bad("n_rows", f"{n_rows!r}", "give the number of input rows (>= 1)")
    if t_end is not None and not (math.isfinite(t_end) and t_end >= 0):
        bad("t_end", f"{t_end!r}", "give the stream end in µs (>= 0) or None")
    t_us, c = np.asarray(t_us), np.asarray(c)
    if t_us.ndim != 1 or t_us.shape != c.shape:
        bad("c", f"shape {c.shape} does not match t_us {t_us.shape}", "give 1-D arrays of "
            "equal length")
    if t_us.size:
        if t_us.dtype.kind not in "iuf" or not np.all(np.isfinite(t_us)) or t_us.min() < 0:
            bad("t_us", "not finite, non-negative numbers", "give event times in µs >= 0")
        if c.dtype.kind not in "iu" or c.min() < 0 or c.max() >= n_rows:
            i = first_true((c < 0) | (c >= n_rows)) if c.dtype.kind in "iu" else 0
            bad("c", f"channel {fmt_value(c[i])} at index {i} is not an integer in [0, {n_rows})",
                "map events with to_channels and pass its n_channels as n_rows")
    return t_us, c


def make_schedule(t_us, c, n_rows: int, *, t_p: float = 100e-6, t_rise: float = 1e-6,
                  min_gap: float = 10e-6, merge: str = "extend", time_scale: float = 1.0,
                  t_end: float | None = None) -> PulseSchedule:
    """Events ``(t_us, c)`` -> per-row pulses (times in seconds after scaling).

    An event at ``t_us`` (µs) becomes a pulse with ``t_on = t_us*1e-6*time_scale + t_rise``:
    its drawn trapezoid starts at ``event time + t_rise/2 > 0``, so every PWL breakpoint is
    strictly after 0. On each row, an event whose trapezoid would start less than ``min_gap``
    after the end of the row's current pulse is

    - ``'extend'``: merged, the pulse grows by ``t_p`` (amplitude 1); the longer pulse is then
      checked against the next events, so merging repeats until a gap appears;
    - ``'count'``: merged, amplitude += 1, width stays ``t_p`` (input arrives earlier);
    - ``'drop'``: dropped (refractory rule).

    So each pulse carries ``amplitude * width / t_p`` events and
    ``sum(...) + n_dropped == n_events``. ``t_end`` is the stream end in µs (same base as
    ``t_us``); ``duration = max(t_end scaled, last pulse end + t_p)``.
    """
    t_us, c = _check_args(t_us, c, n_rows, t_p, t_rise, min_gap, merge, time_scale, t_end)
    t_p, t_rise, min_gap = float(t_p), float(t_rise), float(min_gap)
    on = t_us.astype(np.float64) * 1e-6 * float(time_scale) + t_rise
    order = np.lexsort((on, c))
    rows, ons = c[order].tolist(), on[order].tolist()
    half = t_rise / 2
    extend = merge == "extend"
    out_row, out_on, out_m = [], [], []
    n_dropped = 0
    cur, head, m = -1, 0.0, 0
    # One pass over events in (row, time) order. The gap test is written exactly as
    # PulseSchedule.occupied() computes it, so the min_gap guarantee holds bit for bit.
    for r, o in zip(rows, ons):
        if r == cur:
            width = m * t_p if extend else t_p
            if (o - half) - (head + width + half) < min_gap:
                if merge == "drop":
                    n_dropped += 1
                else:
                    m += 1
                continue
        if m:
            out_row.append(cur)
            out_on.append(head)
            out_m.append(m)
        cur, head, m = r, o, 1
    if m:
        out_row.append(cur)
        out_on.append(head)
        out_m.append(m)
    row = np.asarray(out_row, np.int32)
    t_on = np.asarray(out_on, np.float64)
    mm = np.asarray(out_m, np.float64)
    if extend:
        width, amplitude = mm * t_p, np.ones_like(mm)
    else:
        width, amplitude = np.full_like(mm, t_p), mm
    o = np.lexsort((row, t_on))
    row, t_on, width, amplitude = row[o], t_on[o], width[o], amplitude[o]
    last = float(np.max(t_on + width + half)) if t_on.size else 0.0
    t_end_s = 0.0 if t_end is None else float(t_end) * 1e-6 * float(time_scale)
    n_events = int(t_us.size)
    return PulseSchedule(
        row=row, t_on=t_on, width=width, amplitude=amplitude, n_rows=int(n_rows), t_p=t_p,
        t_rise=t_rise, min_gap=min_gap, duration=max(t_end_s, last + t_p),
        n_events=n_events, n_merged=n_events - row.size - n_dropped, n_dropped=n_dropped)



def reserve_reads(schedule: PulseSchedule, reads, t_read: float, guard: float) -> PulseSchedule:
    """The schedule with read slots: a read pulse of width ``t_read`` centred on each instant of
    ``reads`` (s), and every write pulse whose trapezoid would come closer than ``guard`` to a
    read trapezoid delayed to just after that slot (docs/design.md "Read slots").

    A delayed pulse keeps its width and amplitude; later pulses of its row are pushed on as
    needed to keep ``min_gap`` (a write queue, as in hardware), so no pulse is dropped and both
    the ideal SSM and the circuit see the same delayed schedule (a pulse pushed past the last
    read reaches no sample of either: rare, a schedule loss the software reference shows).
    Raises InputError when slots overlap or a pulse is longer than the time between two slots.
    """
    reads = np.asarray(reads, dtype=np.float64)
    h = schedule.t_rise / 2
    z0 = reads - t_read / 2 - h - guard          # forbidden span of a write trapezoid
    z1 = reads + t_read / 2 + h + guard
    where = "[read] t_read / guard"
    if reads.size > 1 and np.any(z0[1:] < z1[:-1]):
        raise InputError(f"{where}: read slots of {t_read:g} s + guard {guard:g} s overlap at "
                         f"{reads.size} reads over {schedule.duration:.3g} s; shorten t_read or "
                         f"guard, or lower [ssm] n_samples")
    free = np.diff(z0) - (z1 - z0)[:-1] if reads.size > 1 else np.array([np.inf])
    longest = float(np.max(schedule.width)) + 2 * h if schedule.n_pulses else 0.0
    if reads.size > 1 and longest > float(free.min()):
        raise InputError(f"{where}: a read slot cannot fit: a {longest:.3g} s write pulse is longer "
                         f"than the {float(free.min()):.3g} s between two read slots; lower [ssm] "
                         f"n_samples or t_read, or [events] min_gap (shorter merged pulses)")
    t_on = schedule.t_on.copy()
    delayed = 0
    order = np.lexsort((schedule.t_on, schedule.row))
    row = schedule.row[order]
    on, wd = schedule.t_on[order], schedule.width[order]
    new = on.copy()
    prev_row, cursor = -1, -np.inf          # cursor: earliest trapezoid start on this row
    for i in range(on.size):
        if row[i] != prev_row:
            prev_row, cursor = row[i], -np.inf
        start = max(on[i] - h, cursor)
        length = wd[i] + 2 * h
        m = int(np.searchsorted(z1, start, side="right"))   # first slot ending after start
        while m < reads.size and start + length > z0[m]:
            start = z1[m]
            m += 1
        new[i] = start + h
        if i and row[i - 1] == row[i] and new[i] != on[i]:
            # the gap exactly as PulseSchedule checks it; rounding must not undercut min_gap
            prev_end = new[i - 1] + wd[i - 1] + h
            while (new[i] - h) - prev_end < schedule.min_gap:
                new[i] = np.nextafter(new[i], np.inf)
        delayed += new[i] != on[i]
        cursor = start + length + schedule.min_gap
    t_on[order] = new
    o = np.lexsort((schedule.row, t_on))
    end = float(np.max(t_on + schedule.width + h)) if t_on.size else 0.0
    duration = max(schedule.duration, end, float(reads[-1] + t_read / 2 + h) if reads.size else 0.0)
    return replace(schedule, row=schedule.row[o], t_on=t_on[o], width=schedule.width[o],
                   amplitude=schedule.amplitude[o], duration=duration, reads=reads,
                   t_read=float(t_read), n_delayed=int(delayed))


def n_input_rows(sensor_size: tuple, cfg: Config) -> int:
    """Input rows a sensor occupies after pooling and polarity handling."""
    size = tuple(int(v) for v in sensor_size)
    if len(size) >= 2 and size[1] > 1:  # vision (W, H, P)
        p = cfg.events.pool
        w, h = -(-size[0] // p), -(-size[1] // p)
        pol = size[2] if len(size) > 2 and cfg.events.split_polarity else 1
        return w * h * max(pol, 1)
    pol = size[2] if len(size) > 2 and cfg.events.split_polarity else 1
    return -(-size[0] // cfg.events.channel_pool) * max(pol, 1)


def input_events(sample: EventSample, cfg: Config) -> tuple[np.ndarray, np.ndarray, int]:
    """Event sample -> input rows: ``(t_us, row, n_rows)`` after pooling (``pool`` for 2-D
    vision sensors, ``channel_pool`` for channel sensors (C, 1, P), as :func:`n_input_rows`
    counts them), the refractory filter and polarity handling (the [events] section); the
    events both schedules start from."""
    e = cfg.events
    s = sample
    if len(s.sensor_size) >= 2 and s.sensor_size[1] > 1:
        if e.pool > 1:
            s = Downsample(e.pool)(s)
    elif e.channel_pool > 1:   # adjacent channels summed: x // channel_pool
        s = Downsample(e.channel_pool)(s)
    if e.refractory_us > 0:
        s = Refractory(e.refractory_us)(s)
    t_us, c, n_rows = to_channels(s, split_polarity=e.split_polarity)
    if len(t_us) == 0:
        raise InputError(f"{sample.source}: field 't': no events left after filtering; "
                         "lower [events] refractory_us or pick another sample")
    return t_us, c, n_rows


def software_schedule(sample: EventSample, cfg: Config) -> PulseSchedule:
    """The software reference's input: every event of the same input rows as its own unit
    impulse at its own time (``t_us * 1e-6 * time_scale``): no merging, no pulse-edge delay.
    Simulated with the ``dirac`` method it is what a model trainer (EventSSM) computes."""
    t_us, c, n_rows = input_events(sample, cfg)
    e = cfg.events
    t = t_us.astype(np.float64) * 1e-6 * float(e.time_scale)
    order = np.lexsort((c, t))
    n = t.size
    return PulseSchedule(row=c[order], t_on=t[order], width=np.full(n, e.t_p), amplitude=np.ones(n),
                         n_rows=n_rows, t_p=e.t_p, t_rise=0.0, min_gap=0.0, duration=float(t.max()),
                         n_events=n)


def schedule_sample(sample: EventSample, cfg: Config) -> PulseSchedule:
    """Event sample -> input channels -> pulse schedule (the [events] section), with read
    slots when ``[read] mode = 'pulse'``."""
    e = cfg.events
    t_us, c, n_rows = input_events(sample, cfg)
    sch = make_schedule(t_us, c, n_rows, t_p=e.t_p, t_rise=e.t_rise, min_gap=e.min_gap,
                        merge=e.merge, time_scale=e.time_scale,
                        t_end=e.t_end_us if e.t_end_us > 0 else None)
    if cfg.read.mode == "pulse":   # sample times become global read slots
        try:
            sch = reserve_reads(sch, default_sample_times(sch.duration, cfg.ssm.n_samples),
                                cfg.read.t_read, cfg.read.guard)
        except InputError as exc:
            raise InputError(f"{sample.source}: {exc}") from None
    return sch
