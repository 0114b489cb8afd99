"""ngspice at scale: the crossbar as row-tile decks, the state devices as one state deck.

Why it is exact. The projection crossbar has no capacitance and no state: at every instant its
2N sense currents are an algebraic function of the row voltages. The monolithic deck
(:mod:`cimspice.engines.netlist`) makes ngspice re-solve the whole ~(rows x 2N)-cell matrix at
every small step that the *state devices* need around every pulse edge of every row, so its cost
grows as (rows) x (edges). Here the same circuit is cut at the ideal driver:

1. **Tile decks.** The input rows are split into tiles of ``[circuit] tile_rows`` rows
   (0 = one tile, the whole array). A tile deck holds the tile's row PWL sources, the tile's
   cells (the very lines of :func:`cimspice.engines.netlist.crossbar_lines`, written for the
   sub-array of the tile's rows), the word line and the 2N 0 V sense sources, saves only the
   2N sense currents and runs with a large maxstep: nothing in it has memory, so ngspice takes
   a DC solve at every PWL corner and a few more along every edge (its own step doubling after
   a breakpoint; extra corners inside the edges were measured to gain no accuracy).
   With ``r_wire = 0`` the columns are virtual grounds: every cell sees its row voltage and 0 V,
   so the rows superpose and the sum over tiles of each sense current *is* the monolithic
   array's, cell for cell, transistors and levels included. With ``r_wire > 0`` a tile with its
   own column wires is a physically tiled array, a different circuit from the monolithic deck:
   the engine refuses ``tile_rows > 0`` with wires, and with ``tile_rows = 0`` simulates the
   whole wired array as one crossbar deck (exact again).
2. **Combination.** The column-pair current of state n is I_n = sum_tiles (I_np - I_nm), each
   tile's trace linearly interpolated (what ngspice's own output means between its time points)
   onto the union of all tiles' time points. Points where the summed trace is a straight
   line to within FLAT_TOL x max|V_n| (flat stretches between edges, the linear edges of 1R
   cells) are dropped (:func:`drop_flat`): every PWL corner is a breakpoint at which the state
   deck restarts small steps, and without them the state deck takes about as many steps as the
   monolithic deck (measured: 64 rows, 233 pulses, 1T1R: 6600 steps, state NRMSE 1.6e-6 to
   the monolithic deck; 49 000 steps without thinning).
3. **State deck.** The write driver is ideal (V_n = R_n I_n, optionally v_clamp tanh(./v_clamp)),
   so it does not load the array: per state a PWL voltage source carrying V_n(t) drives the
   device pair exactly as in the monolithic deck (``xs<n>p drv<n> 0`` / ``xs<n>m 0 drv<n>``,
   the ``vmem`` subcircuit, the same ``.options`` and maxstep, the sample-time tick source), and
   only the ``w`` nodes are saved. ngspice scans a PWL source's corners linearly at every load,
   so a long stream is cut into consecutive time windows of :data:`WINDOW_POINTS` driver corners
   (one deck each, run in sequence), each window's devices starting (``w0=``) from the previous
   window's final w: a restart of the integrator at a driver corner, as at any breakpoint.

Cost: a tile deck is a few DC solves of a T-row sub-array per corner of its own rows' pulses,
so all tiles together cost ~ rows x T (small T is cheaper, down to the ~0.05 s start of an
ngspice process); the state decks are 2N devices over all edges. Measured (bench/scale.py,
100 ms, 4 events/row, 8 states, 1T1R, T = 16): 700 rows, 2684 pulses in 13.5 s on 2 cores;
the monolithic deck, extrapolated, ~310 s. Tiles run in parallel, never more
ngspice processes than cores. Decks are kept in ``workdir`` (``tile<k>/deck.cir``,
``state/deck.cir`` or ``state<k>/deck.cir`` per window) and run by hand with ``ngspice -b``; the state deck's PWL drivers are data
from the tile runs, so it reproduces this run only together with them.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..config import Config
from ..errors import ConfigError
from ..hardware.devices import device_lib_text
from ..hardware.mapping import CircuitMapping
from ..hardware.state import row_node
from ..schedule import PulseSchedule
from ..text import comment, spice_number
from .base import EngineRun
from ..hardware.variation import refuse_device_variation
from .netlist import (crossbar_lines, device_pair_lines, options_line, pwl_points, pwl_source,
                      sense_names, state_names, tick_lines, transient_settings, wrap_items)
from .ngspice import run_ngspice
from .process import process_slots

WINDOW_POINTS = 400  # driver corners per state-deck time window (ngspice scans PWL corners linearly)
FLAT_TOL = 1e-5       # driver points within FLAT_TOL x max|V_n| of a straight stretch are dropped


def tile_ranges(n_rows: int, tile_rows: int) -> list[tuple[int, int]]:
    """[start, stop) input rows of each tile (``tile_rows`` 0 or >= n_rows: one tile)."""
    t = n_rows if tile_rows <= 0 else min(tile_rows, n_rows)
    return [(a, min(a + t, n_rows)) for a in range(0, n_rows, t)]


def sub_mapping(mapping: CircuitMapping, a: int, b: int) -> CircuitMapping:
    """The mapping of input rows a..b-1 only (local row r = input row a + r)."""
    return replace(mapping, g_plus=mapping.g_plus[a:b], g_minus=mapping.g_minus[a:b],
                   g_rram_plus=mapping.g_rram_plus[a:b], g_rram_minus=mapping.g_rram_minus[a:b],
                   b_effective=mapping.b_effective[:, a:b])


def tile_deck(mapping: CircuitMapping, schedule: PulseSchedule, cfg: Config, a: int, b: int,
              k: int, n_tiles: int) -> str:
    """Deck of tile k: input rows a..b-1, their cells, the sense sources; saves the currents."""
    sub = sub_mapping(mapping, a, b)
    tstep, tstop, _ = transient_settings(schedule, mapping, cfg)
    out = [comment(f"cimspice crossbar tile {k} of {n_tiles}: input rows {a}..{b - 1}"),
           comment(f"local row r of this deck (node {row_node(0, cfg).replace('0', '<r>')}) "
                   f"is input row {a} + r; no state here: a DC network between PWL corners"),
           comment("the column currents i(vsense<n>p|m) add over tiles (virtual-ground columns)"),
           comment("run by hand with: ngspice -b <this file>"), "", device_lib_text(), "",
           "* ---- input rows of this tile ----"]
    for r in range(a, b):
        out.append(pwl_source(f"Vrow{r - a}", row_node(r - a, cfg),
                              pwl_points(schedule, r, mapping.v_in)))
    out.append("")
    out += crossbar_lines(sub, cfg)
    out.append("")
    out.append("* ---- analysis: save only the sense currents; no state, so a large maxstep ----")
    out.append(wrap_items(".save ", list(sense_names(mapping.n_states)), per_line=8))
    out.append(options_line(cfg))
    out.append(f".tran {spice_number(tstep)} {spice_number(tstop)} 0 {spice_number(tstop / 2)}")
    out.append(".end")
    return "\n".join(out) + "\n"


def union_times(times: list[np.ndarray], tstop: float) -> np.ndarray:
    """Sorted union of the tiles' time points, points closer than 1e-9 tstop merged (PWL
    corners must stay strictly increasing after printing with 12 digits)."""
    t = np.unique(np.concatenate([np.asarray(x, float) for x in times] + [np.array([0.0, tstop])]))
    t = t[(t >= 0) & (t <= tstop)]
    keep = np.concatenate([[True], np.diff(t) > 1e-9 * tstop])
    t = t[keep]
    t[-1] = tstop
    return t


def drive_voltages(mapping: CircuitMapping, cfg: Config, runs: list) -> tuple[np.ndarray, np.ndarray]:
    """(t (P,), V (P, N)): driver voltages V_n = R_n sum_tiles (I_np - I_nm) on the union of
    the tiles' time points (each tile linearly interpolated), clamp applied."""
    n_st = mapping.n_states
    tstop = max(float(p["time"][-1]) for p in runs)
    t = union_times([p["time"] for p in runs], tstop)
    cur = np.zeros((len(t), n_st))
    for p in runs:
        tt = p["time"]
        for n in range(n_st):
            cur[:, n] += np.interp(t, tt, p[f"i(vsense{n}p)"] - p[f"i(vsense{n}m)"])
    v = cur * np.asarray(mapping.r_tia, float)[None, :]
    vc = cfg.circuit.v_clamp
    if vc > 0:
        v = vc * np.tanh(v / vc)
    keep = drop_flat(v, t)
    return t[keep], v[keep]


def drop_flat(v: np.ndarray, t: np.ndarray | None = None) -> np.ndarray:
    """Mask of the driver points to keep (greedy, every state at once): a point is dropped when
    the straight line from the last kept point to the next candidate passes within
    FLAT_TOL x max|V_n| of it and of every point dropped since (flat stretches, the linear edges
    of 1R cells). Each point dropped is a breakpoint the state deck no longer has to stop at."""
    t = np.arange(len(v), dtype=float) if t is None else np.asarray(t, float)
    tol = FLAT_TOL * np.maximum(np.max(np.abs(v), axis=0), 1e-30)
    keep = np.ones(len(v), bool)
    a = 0
    for j in range(2, len(v)):
        seg = slice(a + 1, j)
        f = ((t[seg] - t[a]) / (t[j] - t[a]))[:, None]
        line = v[a] + f * (v[j] - v[a])
        if np.all(np.abs(v[seg] - line) <= tol):
            keep[j - 1] = False
        else:
            a = j - 1
    return keep


def state_deck(mapping: CircuitMapping, schedule: PulseSchedule, cfg: Config, t: np.ndarray,
               v: np.ndarray, sample_times, n_tiles: int, *, w0=None, window: tuple = (0, 1)
               ) -> tuple[str, tuple, tuple]:
    """Deck of the state-device pairs driven by PWL driver voltages; saves the w nodes.

    ``t`` starts at the window's start (the deck's time 0 is ``t[0]``); ``w0`` (2, N): w of
    the + and - devices at that time (None: w_rest, the start of the stream)."""
    n_st = mapping.n_states
    tstep, _, maxstep = transient_settings(schedule, mapping, cfg)
    t_start, tstop = float(t[0]), float(t[-1] - t[0])
    k, n_win = window
    out = [comment(f"cimspice state deck: {n_st} device pairs driven by the summed column "
                   f"currents of {n_tiles} crossbar tile deck(s)"),
           comment(f"time window {k + 1} of {n_win}: stream time {t_start:.12g} s + deck time; "
                   f"w0 = the previous window's end state"),
           comment("drv<n> = R_n * sum_tiles (i(vsense<n>p) - i(vsense<n>m)) as PWL data "
                   "(clamp applied); run by hand with: ngspice -b <this file>"), "",
           device_lib_text(), ""]
    out.append("* ---- write drivers: PWL of the tile decks' summed column currents ----")
    for n in range(n_st):
        out.append(pwl_source(f"Vdrv{n}", f"drv{n}", zip(t - t_start, v[:, n])))
    out += tick_lines(np.asarray(sample_times, float) - t_start, tstop)
    out.append("* ---- volatile state-device pairs ----")
    out += device_pair_lines(mapping, cfg, w0)
    w_plus, w_minus = state_names(n_st)
    out.append(wrap_items(".save ", list(w_plus + w_minus), per_line=8))
    out.append(wrap_items(".print tran ", list(w_plus + w_minus), per_line=8))
    out.append(options_line(cfg))
    out.append(f".tran {spice_number(min(tstep, tstop))} {spice_number(tstop)} 0 "
               f"{spice_number(min(maxstep, tstop))}")
    out.append(".end")
    return "\n".join(out) + "\n", w_plus, w_minus


def windows(n_points: int, per_window: int) -> list[tuple[int, int]]:
    """[first, last] driver-point indices of consecutive state-deck time windows (sharing their
    boundary points)."""
    k = max(1, int(np.ceil((n_points - 1) / per_window)))
    edges = np.linspace(0, n_points - 1, k + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]


def run_state_decks(prep, t, v, n_tiles: int, wdir, keep_waveforms: bool):
    """Run the state deck window by window (each window starts from the previous one's end
    state); returns (w+ (M, N), w- (M, N), waveforms, elapsed s, version, log)."""
    cfg, mapping = prep.cfg, prep.mapping
    times = np.asarray(prep.sample_times, float)
    wins = windows(len(t), WINDOW_POINTS)
    w0, elapsed, parts, log = None, 0.0, [], ""
    for k, (a, b) in enumerate(wins):
        deck, w_plus, w_minus = state_deck(mapping, prep.schedule, cfg, t[a:b + 1], v[a:b + 1],
                                           times, n_tiles, w0=w0, window=(k, len(wins)))
        sub = None if wdir is None else wdir / (f"state{k}" if len(wins) > 1 else "state")
        run = run_ngspice(deck, timeout=cfg.sim.timeout, names=["time", *w_plus, *w_minus],
                          workdir=sub)
        plot = run.plot("tran")
        tt = plot["time"] + t[a]
        wp = np.stack([plot[n] for n in w_plus], axis=-1)
        wm = np.stack([plot[n] for n in w_minus], axis=-1)
        parts.append((tt if k == 0 else tt[1:], wp if k == 0 else wp[1:], wm if k == 0 else wm[1:]))
        w0 = (wp[-1], wm[-1])
        elapsed += run.elapsed_s
        log = run.log
        version = run.version
    tt = np.concatenate([p[0] for p in parts])
    wp = np.concatenate([p[1] for p in parts])
    wm = np.concatenate([p[2] for p in parts])
    def at(w):
        return np.stack([np.interp(times, tt, w[:, n]) for n in range(w.shape[1])], axis=-1)

    waves = {"time": tt, "w_plus": wp, "w_minus": wm} if keep_waveforms else {}
    return at(wp), at(wm), waves, elapsed, version, f"* state decks: {len(wins)} window(s)\n" + log


def check_tiled(cfg: Config) -> None:
    """One-line ConfigError for what the tiled decomposition cannot simulate exactly (or at all:
    its tile and state decks implement the 'state' topology with state-node probes only)."""
    refuse_device_variation(cfg, "ngspice-tiled")
    c = cfg.circuit
    if c.topology != "state":
        raise ConfigError(f"ngspice-tiled: [circuit] topology = {c.topology!r}: the tile and state "
                          f"decks implement the 'state' topology only; fix: use --engine ngspice "
                          f"(or set topology = 'state')")
    if cfg.read.mode != "node":
        raise ConfigError(f"ngspice-tiled: [read] mode = {cfg.read.mode!r}: the state decks probe the "
                          f"device w nodes and have no read pulses or read sensing; fix: set [read] "
                          f"mode = 'node' or use --engine ngspice")
    if c.tile_rows > 0 and c.r_wire > 0:
        raise ConfigError(f"ngspice-tiled: [circuit] tile_rows = {c.tile_rows} with r_wire = "
                          f"{c.r_wire:g}: row tiles with their own column wires are a different "
                          f"circuit than the monolithic array; fix: set tile_rows = 0 (one wired "
                          f"tile) or r_wire = 0, or use --engine ngspice")


class TiledNgspiceEngine:
    """ngspice on row-tile crossbar decks (in parallel) and one state deck: see module doc."""

    name = "ngspice-tiled"
    in_process = False
    dense_waveforms = True

    def check(self, cfg: Config) -> None:
        check_tiled(cfg)

    def run(self, prep, *, keep_waveforms: bool = False, workdir=None) -> EngineRun:
        cfg, mapping, sch = prep.cfg, prep.mapping, prep.schedule
        check_tiled(cfg)
        tiles = tile_ranges(mapping.n_inputs, cfg.circuit.tile_rows)
        names = ["time", *sense_names(mapping.n_states)]
        wdir = None if workdir is None else Path(workdir)
        t0 = time.perf_counter()

        def one(k):
            a, b = tiles[k]
            deck = tile_deck(mapping, sch, cfg, a, b, k, len(tiles))
            sub = None if wdir is None else wdir / f"tile{k}"
            return run_ngspice(deck, timeout=cfg.sim.timeout, names=names, workdir=sub)

        workers = max(1, min(len(tiles), process_slots()))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            tile_runs = list(pool.map(one, range(len(tiles))))
        t, v = drive_voltages(mapping, cfg, [r.plot("tran") for r in tile_runs])
        wp, wm, waves, s_elapsed, version, s_log = run_state_decks(prep, t, v, len(tiles), wdir,
                                                                   keep_waveforms)
        cpu = sum(r.elapsed_s for r in tile_runs) + s_elapsed
        log = "\n".join([f"* tile {k} rows {a}..{b - 1}: {r.elapsed_s:.3f} s"
                         for k, ((a, b), r) in enumerate(zip(tiles, tile_runs))]
                        + [f"* state decks: {s_elapsed:.3f} s, {len(t)} driver points; "
                           f"ngspice total {cpu:.3f} s", s_log])
        return EngineRun(engine=self.name, w_plus=wp, w_minus=wm, version=version,
                         elapsed_s=time.perf_counter() - t0, log=log, waveforms=waves)
