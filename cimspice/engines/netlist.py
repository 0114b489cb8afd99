"""ngspice deck text: one readable, self-contained deck per event sample (runs with ``ngspice -b``).

The circuit is the `state` topology of :mod:`cimspice.hardware.state`; the device model files
are inlined (trusted code), outside text appears only in ``* `` comment lines
(:mod:`cimspice.text`), and only the state nodes ``v(xs<n>p.w)``/``v(xs<n>m.w)`` are
saved (and the sense currents when asked). The header states the taus and the B that the deck
realises (the mapping's, which may come from a weights file).
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, replace

import numpy as np

from .. import __version__
from ..config import Config
from ..errors import InputError
from ..hardware.cells import NMOSParams
from ..hardware.devices import device_dir, device_lib_text
from ..hardware.mapping import CircuitMapping
from ..hardware.state import crossbar_elements, row_node
from ..hardware.trace import read_scale
from ..hardware.variation import driver_offsets, interval_factors, state_devices
from ..schedule import PulseSchedule
from ..text import comment, spice_number

def trapezoid_points(t_on, width, level, t_rise: float) -> list[tuple[float, float]]:
    """PWL (t, V) corners of trapezoid pulses (sorted by ``t_on``; ``level`` in V): each has the
    area and centre of the ideal rectangle, edges of ``t_rise``."""
    h = t_rise / 2.0
    pts = [(0.0, 0.0)]
    for t0, w, v in zip(t_on, width, level):
        pts += [(t0 - h, 0.0), (t0 + h, v), (t0 + w - h, v), (t0 + w + h, 0.0)]
    if len(pts) > 1 and pts[1][0] <= 0.0:
        pts = pts[1:]  # a pulse starting at t=0 replaces the idle start point
    return pts


def pwl_points(schedule: PulseSchedule, row: int, v_in: float) -> list[tuple[float, float]]:
    """PWL (t, V) corners for one row: trapezoids with the area and centre of the ideal pulses."""
    sel = schedule.row == row
    return trapezoid_points(schedule.t_on[sel], schedule.width[sel],
                            v_in * schedule.amplitude[sel], schedule.t_rise)


def read_points(schedule: PulseSchedule, level: float) -> list[tuple[float, float]]:
    """PWL corners of the read pulses (``level`` V) of a schedule with read slots."""
    t_on, width = schedule.read_corners()
    return trapezoid_points(t_on, width, np.full(t_on.size, level), schedule.t_rise)


def wrap_items(prefix: str, items: list[str], per_line: int = 6) -> str:
    """``prefix`` + items, ``per_line`` per line, continued with ``+`` lines."""
    lines = [prefix + " ".join(items[:per_line])]
    for i in range(per_line, len(items), per_line):
        lines.append("+ " + " ".join(items[i:i + per_line]))
    return "\n".join(lines)


def pwl_source(name: str, node: str, pts) -> str:
    """A PWL voltage source line ``name node 0 PWL(t v ...)`` (``pts``: (t, v) corners)."""
    return wrap_items(f"{name} {node} 0 PWL(", [f"{spice_number(t)} {spice_number(v)}"
                                                for t, v in pts]) + ")"


def tick_lines(times, tstop: float) -> list[str]:
    """A 0 V source whose corners force simulator time points exactly at ``times`` (s) inside
    (0, tstop); no lines when there are none."""
    items = [f"{spice_number(t)} 0" for t in np.unique(np.asarray(times, float)) if 0 < t < tstop]
    if not items:
        return []
    return ["* zero-valued source: its corners put simulator time points on the sample times",
            wrap_items("Vtick tick 0 PWL(0 0 ", items) + ")", "Rtick tick 0 1"]


def state_names(n_states: int) -> tuple[tuple, tuple]:
    """Raw-file names of the state nodes: (w+ names, w- names)."""
    return (tuple(f"v(xs{n}p.w)" for n in range(n_states)),
            tuple(f"v(xs{n}m.w)" for n in range(n_states)))


def sense_names(n_states: int) -> tuple:
    """Raw-file names of the 2N sense currents (p, m per state)."""
    return tuple(f"i(vsense{n}{s})" for n in range(n_states) for s in ("p", "m"))


def device_pair_lines(mapping: CircuitMapping, cfg: Config, w0=None) -> list[str]:
    """The volatile device pair of each state on its driver node ``drv<n>`` (+ device sees
    +V_n, - device -V_n); ``w0`` (w+ (N,), w- (N,)) starts them away from w_rest. Each device
    has its own law (hardware.variation.state_devices: the chip instance's tau and write rate).

    Read mode 'pulse': each device has its own driver node (``drvp<n>`` = +V_n + V(rd),
    ``drvm<n>`` = -V_n + V(rd)) and a 0 V sense source to ground (``Vsp<n>``, ``Vsm<n>``), so
    the read pulse ``rd`` drives both devices with +v_read and their currents are sensed."""
    out = []
    pulse = cfg.read.mode == "pulse"
    laws = state_devices(mapping, cfg)
    N = mapping.n_states
    for n in range(N):
        pp, pm = laws[n], laws[N + n]
        pp = pp if w0 is None else replace(pp, w0=float(w0[0][n]))
        pm = pm if w0 is None else replace(pm, w0=float(w0[1][n]))
        if pulse:
            out.append(f"xs{n}p drvp{n} sp{n} {pp.subckt} {pp.spice_params()}")
            out.append(f"Vsp{n} sp{n} 0 DC 0")
            out.append(f"xs{n}m drvm{n} sm{n} {pm.subckt} {pm.spice_params()}")
            out.append(f"Vsm{n} sm{n} 0 DC 0")
        else:
            out.append(f"xs{n}p drv{n} 0 {pp.subckt} {pp.spice_params()}")
            out.append(f"xs{n}m 0 drv{n} {pm.subckt} {pm.spice_params()}")
    return out


def driver_lines(mapping: CircuitMapping, cfg: Config, noisy: bool = False) -> list[str]:
    """The write driver of each state, ``V_n = m_n(t) R_n (I_n+ - I_n-) + offset_n`` (optionally
    clamped; ``m_n`` = ``V(wn<n>)``, the write-noise source, when ``noisy``; the offset from the
    chip instance); in read mode 'pulse' two outputs, ``+V_n + V(rd)`` and ``-V_n + V(rd)``
    (see device_pair_lines)."""
    out = []
    offsets = driver_offsets(mapping)
    for n in range(mapping.n_states):
        expr = f"{spice_number(mapping.r_tia[n])} * (i(Vsense{n}p) - i(Vsense{n}m))"
        if noisy:
            expr = f"V(wn{n}) * {expr}"
        if offsets[n]:
            expr = f"{expr} + {spice_number(offsets[n])}"
        if cfg.circuit.v_clamp > 0:
            vc = spice_number(cfg.circuit.v_clamp)
            expr = f"{vc} * tanh(({expr}) / {vc})"
        if cfg.read.mode == "pulse":
            out.append(f"Bdrvp{n} drvp{n} 0 V = {expr} + V(rd)")
            out.append(f"Bdrvm{n} drvm{n} 0 V = -({expr}) + V(rd)")
        else:
            out.append(f"Bdrv{n} drv{n} 0 V = {expr}")
    return out


def write_noise_lines(schedule: PulseSchedule, draws, n_states: int) -> list[str]:
    """One PWL source per state, ``Vwn<n>``: the write-noise factor of pair n, constant over each
    write interval (hardware.variation.write_intervals); its corners are the intervals' own
    ends, where every row is at 0 V, so it adds no time point where the drive is not 0."""
    got = interval_factors(schedule, draws)
    if got is None:
        return []
    start, end, fac = got
    out = ["* ---- write noise: dw factor of each write interval and device pair "
           "(multiplies the driver) ----"]
    for n in range(n_states):
        pts = [(t, v) for a, b, m in zip(start, end, fac[:, n]) for t, v in ((a, m), (b, m))]
        out.append(pwl_source(f"Vwn{n}", f"wn{n}", pts or [(0.0, 1.0)]))
    return out


def options_line(cfg: Config) -> str:
    """The deck's ``.options`` line from the [sim] section."""
    s = cfg.sim
    return (f".options reltol={spice_number(s.reltol)} abstol={spice_number(s.abstol)} "
            f"vntol={spice_number(s.vntol)} method={s.method}")


def header_lines(title: str, source: str, weights: str, seed) -> list[str]:
    """The deck's first comment lines: title, generator and date, events, weights, seed."""
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    out = [comment(title),
           comment(f"generated by cimspice {__version__} on {stamp}; run by hand with: ngspice -b <this file>")]
    if source:
        out.append(comment(f"events: {source}"))
    if weights:
        out.append(comment(f"weights: {weights}"))
    if seed is not None:
        out.append(comment(f"seed: {seed}"))
    return out


def model_and_config_lines(mapping: CircuitMapping, cfg: Config, inline_models: bool) -> list[str]:
    """The realised model, the configuration (TOML comments) and the device models (inlined, or
    ``.include`` of the model directory)."""
    out = realised_model_lines(mapping)
    out.append("* configuration (TOML; the lines above, not [ssm] taus, state what this deck realises):")
    out += [comment("  " + line) for line in cfg.to_toml().splitlines() if line]
    out.append("")
    if inline_models:
        out.append(device_lib_text())
    else:
        out.append(f'.include "{device_dir() / "vmem.lib"}"')
        out.append(f'.include "{device_dir() / "cell_1t1r.lib"}"')
    out.append("")
    return out


@dataclass(frozen=True)
class DeckInfo:
    """What a deck saves and how to read it back (engines.base.sample_plot)."""

    w_plus: tuple          # raw-file vector names of the + devices' state nodes ('state')
    w_minus: tuple
    sense: tuple           # sense current names (empty unless saved)
    tstop: float
    maxstep: float
    i_plus: tuple = ()     # read mode 'pulse': currents whose pair difference is sensed
    i_minus: tuple = ()
    i_scale: float = 1.0   # sensed = (I+ - I-) / i_scale
    w_dev: tuple = ()      # trace, read mode 'node': trace-device w nodes, (row, group) order
    w_ref: tuple = ()      # trace, read mode 'node': reference-device w nodes (K)
    energy: tuple = ()     # ((component, integrator vector), ...): energy accounting, see
                           # engines.energy_netlist (empty: [energy] accounting = false)


def transient_settings(schedule: PulseSchedule, mapping: CircuitMapping, cfg: Config) -> tuple[float, float, float]:
    """(tstep, tstop, maxstep), s: step from the pulse width, maxstep from min(tau)."""
    tstop = float(schedule.duration)
    maxstep = min(float(np.min(mapping.tau)) / cfg.sim.maxstep_per_tau, tstop / 10.0)
    tstep = min(cfg.events.t_p / 10.0, (schedule.t_read or np.inf) / 10.0, maxstep)
    return tstep, tstop, maxstep


def build_deck(mapping: CircuitMapping, schedule: PulseSchedule, cfg: Config, *,
               sample_times: np.ndarray | None = None, title: str = "cimspice SSM layer",
               source: str = "", weights: str = "", seed: int | None = None,
               inline_models: bool = True, draws=None) -> tuple[str, DeckInfo]:
    """Netlist text of the whole SSM layer for one pulse schedule, and what it saves
    (``draws``: the sample's hardware.variation.SampleDraws, for the write noise)."""
    if cfg.circuit.topology == "trace":
        from .trace_netlist import build_trace_deck   # noqa: PLC0415 (it imports this module)
        return build_trace_deck(mapping, schedule, cfg, sample_times=sample_times, title=title,
                                source=source, weights=weights, seed=seed,
                                inline_models=inline_models, draws=draws)
    c, sim = cfg.circuit, cfg.sim
    pulse = cfg.read.mode == "pulse"
    n_in, n_st = mapping.n_inputs, mapping.n_states
    if schedule.n_rows != n_in:
        raise InputError(f"schedule: field 'n_rows': {schedule.n_rows} rows but the mapping has {n_in} "
                         f"inputs; fix: build the mapping and the schedule from the same [events] config")
    tstep, tstop, maxstep = transient_settings(schedule, mapping, cfg)
    out = header_lines(title, source, weights, seed)
    out.append(f"* layer: {n_in} input rows x {n_st} states ({2 * n_st} columns, {2 * n_in * n_st} 1T1R cells), "
               f"{schedule.n_pulses} pulses, access={c.access}, r_wire={spice_number(c.r_wire)} ohm")
    out.append("* equations:")
    out.append("*   column pair current  I_n = I(Vsense<n>p) - I(Vsense<n>m)")
    out.append("*   write driver         V_n = R_n * I_n, applied +V_n to xs<n>p and -V_n to xs<n>m")
    if pulse:
        out.append("*   read pulse           +v_read on both devices of a pair during each read slot;")
        out.append("*                        x_n = (I(Vsp<n>) - I(Vsm<n>)) / ((g_on - g_off) v_read g_n)")
    out.append("*   state device         dw/dt = -(w - w_rest)/tau + f_write(V) * window(w)")
    out.append(f"*   SSM state estimate   x_n = (w<n>p - w<n>m) / g_n  (gain method: {mapping.gain_method})")
    out += model_and_config_lines(mapping, cfg, inline_models)

    out.append("* ---- input rows: one PWL source per input channel ----")
    for r in range(n_in):
        out.append(pwl_source(f"Vrow{r}", row_node(r, cfg), pwl_points(schedule, r, mapping.v_in)))
    if sample_times is not None:
        out += tick_lines(sample_times, tstop)
    out.append("")

    if pulse:
        out.append(f"* ---- read pulses (v_read = {spice_number(cfg.read.v_read)} V, centred on the "
                   f"sample times) ----")
        out.append(pwl_source("Vrd", "rd", read_points(schedule, cfg.read.v_read)))
        out.append("")
    out += crossbar_lines(mapping, cfg)
    noise = write_noise_lines(schedule, draws, n_st)
    out += noise
    out.append("* ---- write drivers and volatile state-device pairs ----")
    out += driver_lines(mapping, cfg, noisy=bool(noise))
    out += device_pair_lines(mapping, cfg)
    out.append("")
    energy: tuple = ()
    if cfg.energy.accounting:
        from .energy_netlist import state_energy_lines   # noqa: PLC0415 (it imports this module)
        lines, energy = state_energy_lines(mapping, cfg)
        out += lines + [""]

    w_plus, w_minus = state_names(n_st)
    sense = sense_names(n_st) if sim.save_currents else ()
    i_plus = tuple(f"i(vsp{n})" for n in range(n_st)) if pulse else ()
    i_minus = tuple(f"i(vsm{n})" for n in range(n_st)) if pulse else ()
    out.append("* ---- analysis: save only the state nodes" + (" and the read currents" if pulse else "")
               + " ----")
    out.append(wrap_items(".save ", list(w_plus + w_minus + sense + i_plus + i_minus)
                          + [v for _, v in energy], per_line=8))
    # plain `ngspice -b deck.cir` prints the state table; with `-r file.raw` (how cimspice runs
    # it) ngspice writes the raw file instead and skips the print
    out.append(wrap_items(".print tran ", list(w_plus + w_minus), per_line=8))
    out.append(options_line(cfg))
    out.append(f".tran {spice_number(tstep)} {spice_number(tstop)} 0 {spice_number(maxstep)}")
    out.append(".end")
    info = DeckInfo(w_plus=w_plus, w_minus=w_minus, sense=sense, tstop=tstop, maxstep=maxstep,
                    i_plus=i_plus, i_minus=i_minus, i_scale=read_scale(cfg) if pulse else 1.0,
                    energy=energy)
    return "\n".join(out) + "\n", info


def nmos_size() -> str:
    """W/L of the access transistor instance lines (the card has none)."""
    return NMOSParams().instance_params()


def crossbar_lines(mapping: CircuitMapping, cfg: Config, title: str = "", **block) -> list[str]:
    """ngspice lines of :func:`crossbar_elements` (``block``: its states / row / word_line)."""
    rnl = cfg.circuit.rram_read_nl
    wl = nmos_size()
    out = [f"* ---- {title or 'projection crossbar: differential 1T1R column pairs'} ----"]
    for el in crossbar_elements(mapping, cfg, **block):
        a, b = el.nodes[0], el.nodes[1]
        if el.kind == "rram" and rnl == 0:
            # linear RRAM: a plain resistor is exact and far cheaper than a B-source
            out.append(f"rr{el.name} {a} {b} {spice_number(1.0 / el.value)}")
        elif el.kind == "rram":
            out.append(f"xr{el.name} {a} {b} rram g={spice_number(el.value)} rnl={spice_number(rnl)}")
        elif el.kind == "nmos":
            out.append(f"mn{el.name} {' '.join(el.nodes)} nacc {wl}")
        elif el.kind == "wire":
            out.append(f"rw_{el.name} {a} {b} {spice_number(el.value)}")
        else:
            out.append(f"V{el.name} {a} {b} DC {spice_number(el.value)}")
    return out


def build_dc_deck(mapping: CircuitMapping, cfg: Config, v_rows) -> str:
    """Operating-point deck: every row at a fixed voltage, prints all sense currents.

    Used to check the crossbar against an independent nodal solve (tight tolerances).
    """
    v_rows = np.broadcast_to(np.asarray(v_rows, dtype=float), (mapping.n_inputs,))
    out = ["* cimspice crossbar DC check", device_lib_text()]
    out += [f"Vrow{r} {row_node(r, cfg)} 0 DC {spice_number(v)}" for r, v in enumerate(v_rows)]
    out += crossbar_lines(mapping, cfg)
    out.append(".options reltol=1e-10 abstol=1e-18 vntol=1e-12 gmin=1e-18")
    out.append(".op")
    out.append(".end")
    return "\n".join(out) + "\n"


B_PRINT_LIMIT = 1024   # B entries printed in a deck header (larger layers: the cell lines hold it)


def realised_model_lines(mapping: CircuitMapping) -> list[str]:
    """Header comment lines: the taus per state and the B that the conductances realise."""
    out = [comment("realised model (from the mapping, whatever the source of B and taus):")]
    taus = ", ".join(f"{t:.6g}" for t in mapping.tau)
    out.append(comment(f"  tau per state (s): {taus}"))
    n_st, n_in = mapping.b_effective.shape
    if n_st * n_in <= B_PRINT_LIMIT:
        out.append(comment(f"  B realised = (G+ - G-) * b_max / (g_max - g_min), b_max = {mapping.b_max:.6g}; "
                           f"rows = states, columns = input rows:"))
        for n in range(n_st):
            for c0 in range(0, n_in, 12):   # 12 values per line stay well inside a comment's cap
                vals = " ".join(f"{b:.5g}" for b in mapping.b_effective[n, c0:c0 + 12])
                out.append(comment(f"    state {n} inputs {c0}..{min(c0 + 12, n_in) - 1}: {vals}"))
    else:
        out.append(comment(f"  B realised: {n_st} x {n_in}, b_max = {mapping.b_max:.6g} "
                           f"(too large to print; read it from the cell conductances)"))
    return out
