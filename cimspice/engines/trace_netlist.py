"""ngspice deck of the `trace` topology (hardware.trace): fixed write pulses on C_in x K volatile
devices, a read pulse at every sample time, gated sense stages, one crossbar block per group.

Read mode 'pulse' saves the column sense currents (the states are the column-pair currents at
the read centres); read mode 'node' (a labelled diagnostic) saves the device w nodes only and
leaves out the sense stages and crossbar (B is applied in NumPy).
"""

from __future__ import annotations

import numpy as np

from ..config import Config
from ..errors import InputError
from ..hardware.mapping import CircuitMapping
from ..hardware.trace import group_taus
from ..hardware.variation import trace_devices, trace_write_levels
from ..schedule import PulseSchedule
from ..text import comment, spice_number
from .energy_netlist import trace_energy_lines
from .netlist import (DeckInfo, crossbar_lines, header_lines, model_and_config_lines, options_line,
                      pwl_source, read_points, tick_lines, transient_settings, trapezoid_points,
                      wrap_items)


def trace_row_points(schedule: PulseSchedule, row: int, v_write, v_read: float):
    """PWL corners of device row ``row``: its write pulses (``v_write`` V, or (P,) levels per
    pulse of the schedule: the write noise) and every read pulse.

    With ``[read] guard = 0`` a write pulse delayed past a read slot starts exactly where the
    read pulse ends (and one may end where a read starts): the two 0 V corners would repeat a
    PWL time (as printed), which ngspice 39 accepts but evaluates wrongly (measured: the states
    after it off by ~10 %); the repeated corner is dropped, the waveform is the same."""
    sel = schedule.row == row
    r_on, r_w = schedule.read_corners()
    t_on = np.r_[schedule.t_on[sel], r_on]
    width = np.r_[schedule.width[sel], r_w]
    w_level = np.broadcast_to(np.asarray(v_write, float), schedule.row.shape)[sel]
    level = np.r_[w_level, np.full(r_on.size, v_read)]
    o = np.argsort(t_on, kind="stable")
    pts = trapezoid_points(t_on[o], width[o], level[o], schedule.t_rise)
    out = pts[:1]
    for t, v in pts[1:]:
        if spice_number(t) == spice_number(out[-1][0]) and v == out[-1][1]:
            continue
        out.append((t, v))
    return out


def row_sources(n_rows: int, n_groups: int, per_device: bool) -> list[tuple[str, str]]:
    """(source, node) driving each trace device (r, k), in r K + k order: the row's ``Vdw<r>``,
    or with write noise the device's own ``Vdw<r>_<k>``."""
    if per_device:
        return [(f"Vdw{r}_{k}", f"dw{r}_{k}") for r in range(n_rows) for k in range(n_groups)]
    return [(f"Vdw{r}", f"dw{r}") for r in range(n_rows) for _ in range(n_groups)]


def block_row(k: int):
    """Row-node namer of crossbar block ``k`` (the sense-stage outputs of group k)."""
    def name(r: int) -> str:
        return f"x{k}r{r}"
    return name


def trace_names(n_rows: int, n_groups: int) -> tuple[tuple, tuple]:
    """Raw-file names of the trace devices' w ((row, group) order) and the reference devices'."""
    dev = tuple(f"v(xd{r}_{k}.w)" for r in range(n_rows) for k in range(n_groups))
    ref = tuple(f"v(xref{k}.w)" for k in range(n_groups))
    return dev, ref


def build_trace_deck(mapping: CircuitMapping, schedule: PulseSchedule, cfg: Config, *,
                     sample_times=None, title: str = "cimspice SSM layer", source: str = "",
                     weights: str = "", seed: int | None = None,
                     inline_models: bool = True, draws=None) -> tuple[str, DeckInfo]:
    """Netlist text of the trace-topology layer for one pulse schedule, and what it saves.

    Each device has its own law (hardware.variation.trace_devices: the chip instance's tau and
    write rate). With write noise (``draws``) every trace device has its own row source
    ``Vdw<r>_<k>`` (node ``dw<r>_<k>``), its pulses at the drawn levels."""
    c, d, rd = cfg.circuit, cfg.device, cfg.read
    n_in, n_st = mapping.n_inputs, mapping.n_states
    if schedule.n_rows != n_in:
        raise InputError(f"schedule: field 'n_rows': {schedule.n_rows} rows but the mapping has {n_in} "
                         f"inputs; fix: build the mapping and the schedule from the same [events] config")
    if rd.mode == "pulse" and not schedule.reads.size:
        raise InputError("schedule: field 'reads': the trace topology reads its devices with read "
                         "pulses at the sample times; fix: build the schedule with [read] slots "
                         "(schedule_sample) or set [circuit] topology = 'state'")
    taus = np.asarray(mapping.info.get("group_taus", np.unique(mapping.tau)), float)
    K = taus.size
    pulse = rd.mode == "pulse"
    reference = rd.baseline == "reference"
    tstep, tstop, maxstep = transient_settings(schedule, mapping, cfg)
    out = header_lines(title, source, weights, seed)
    out.append(f"* layer (trace topology): {n_in} input rows x {K} decay groups = {n_in * K} volatile "
               f"devices, {n_st} states ({2 * n_st} columns, {2 * n_in * n_st} 1T1R cells), "
               f"{schedule.n_pulses} write pulses, {schedule.reads.size} reads, read mode {rd.mode}")
    out.append("* equations:")
    out.append("*   trace device         dw/dt = -(w - w_rest)/tau_k + f_write(V) * window(w)")
    out.append(f"*   write / read pulse   v_write = {spice_number(d.v_write)} V, "
               f"v_read = {spice_number(rd.v_read)} V for {spice_number(rd.t_read)} s")
    if pulse:
        base = "I(Vsref<k>) (reference device)" if reference else "G(w_rest) * v_read (ideal)"
        out.append(f"*   sense stage          V(x<k>r<r>) = R_k * (I(Vsd<r>_<k>) - {base}) * V(gate)")
        out.append("*   column pair current  I_n = I(Vsense<n>p) - I(Vsense<n>m) at the read centres")
        out.append(f"*   SSM state estimate   x_n = I_n / g_n  (gain method: {mapping.gain_method})")
        r_k = mapping.info.get("sense_r", np.zeros(K))
        out.append(comment("  sense gain R_k per group (ohm): " + ", ".join(f"{v:.6g}" for v in r_k)))
    else:
        out.append("*   read mode 'node' (diagnostic): the device w are probed; the sense stages and the")
        out.append("*   crossbar are left out and B is applied in NumPy")
    out += model_and_config_lines(mapping, cfg, inline_models)

    levels = trace_write_levels(cfg, taus, draws)          # (P, K) write levels, or None
    sources = row_sources(n_in, K, levels is not None)      # [(source, node)] per device (r, k)
    if levels is None:
        out.append("* ---- device rows: one PWL source per input row (write pulses + read pulses) ----")
        for r in range(n_in):
            out.append(pwl_source(f"Vdw{r}", f"dw{r}", trace_row_points(schedule, r, d.v_write, rd.v_read)))
    else:
        out.append("* ---- device rows, write noise: one PWL source per device, its write pulses at the "
                   "drawn levels ----")
        for r in range(n_in):
            for k in range(K):
                name, node = sources[r * K + k]
                out.append(pwl_source(name, node, trace_row_points(schedule, r, levels[:, k], rd.v_read)))
    out.append(pwl_source("Vdref", "dref", read_points(schedule, rd.v_read)))
    if pulse:
        out.append(pwl_source("Vgate", "gate", read_points(schedule, 1.0)))
    if sample_times is not None:
        out += tick_lines(sample_times, tstop)
    out.append("")

    out.append("* ---- trace devices (row r, group k) and reference devices (read pulses only) ----")
    devs, refs = trace_devices(mapping, cfg, taus)
    for r in range(n_in):
        for k in range(K):
            p = devs[r][k]
            out.append(f"xd{r}_{k} {sources[r * K + k][1]} sd{r}_{k} {p.subckt} {p.spice_params()}")
            out.append(f"Vsd{r}_{k} sd{r}_{k} 0 DC 0")
    if reference or not pulse:
        for k in range(K):
            p = refs[k]
            out.append(f"xref{k} dref sref{k} {p.subckt} {p.spice_params()}")
            out.append(f"Vsref{k} sref{k} 0 DC 0")
    out.append("")

    info_extra: dict = {}
    if pulse:
        r_k = mapping.info["sense_r"]
        goff = spice_number(d.g_off + (d.g_on - d.g_off) * d.w_rest)   # G(w_rest): the rest baseline
        rdv = "V(dref)" if d.read_nl == 0 else \
            f"sinh({spice_number(d.read_nl)} * V(dref)) / {spice_number(d.read_nl)}"
        out.append("* ---- gated sense stages: baseline-subtracted device current -> crossbar row ----")
        for r in range(n_in):
            for k in range(K):
                base = f"i(Vsref{k})" if reference else f"{goff} * {rdv}"
                node = block_row(k)(r) if c.r_wire == 0 else f"{block_row(k)(r)}_in"
                out.append(f"Bx{r}_{k} {node} 0 V = {spice_number(r_k[k])} * "
                           f"(i(Vsd{r}_{k}) - {base}) * V(gate)")
        out.append("")
        for k in range(K):
            states = np.flatnonzero(mapping.groups == k)
            if states.size:
                out += crossbar_lines(mapping, cfg, f"crossbar block {k} (tau = {taus[k]:.6g} s): "
                                      f"differential 1T1R column pairs", states=states,
                                      row=block_row(k), word_line=(k == 0))
        if c.access == "nmos" and not np.any(mapping.groups == 0):
            out.append(f"Vwl wl 0 DC {spice_number(c.v_gate)}")
        out.append("")
        i_plus = tuple(f"i(vsense{n}p)" for n in range(n_st))
        i_minus = tuple(f"i(vsense{n}m)" for n in range(n_st))
        saved = list(i_plus + i_minus)
        info_extra.update(i_plus=i_plus, i_minus=i_minus, i_scale=1.0)
    else:
        w_dev, w_ref = trace_names(n_in, K)
        saved = list(w_dev + w_ref)
        info_extra.update(w_dev=w_dev, w_ref=w_ref)
    printed = saved[:2 * n_st] if pulse else saved[:8]
    if cfg.energy.accounting:
        lines, energy = trace_energy_lines(mapping, cfg, K, crossbar=pulse,
                                           reference=reference or not pulse, sources=sources)
        out += lines + [""]
        saved += [v for _, v in energy]
        info_extra["energy"] = energy
    out.append("* ---- analysis ----")
    out.append(wrap_items(".save ", saved, per_line=8))
    out.append(wrap_items(".print tran ", printed, per_line=8))
    out.append(options_line(cfg))
    out.append(f".tran {spice_number(tstep)} {spice_number(tstop)} 0 {spice_number(maxstep)}")
    out.append(".end")
    info = DeckInfo(w_plus=(), w_minus=(), sense=(), tstop=tstop, maxstep=maxstep, **info_extra)
    return "\n".join(out) + "\n", info


__all__ = ["build_trace_deck", "trace_names", "trace_row_points", "group_taus"]
