"""Energy accounting inside the ngspice deck: integrator nodes (docs/design.md "Energy and latency").

The energy a component receives is ``∫ V·I dt`` of the sources that feed it (delivered power
positive). Each component has one integrator: B current sources of ``ENERGY_SCALE x`` its
delivered power into a 1 F capacitor, so ``V(e_<component>) = ENERGY_SCALE x energy`` (J). The
raw file keeps these few nodes only; the engine reads their value at the stream end.

Why a small scale: an integrator is an observer. Its capacitor current (``ENERGY_SCALE x P``)
stays far below ``[sim] abstol``, so its truncation error never limits ngspice's time step, and
its node never holds up Newton convergence (the node is linear in its own value): the deck's
time points and states are those without accounting (measured in tests/test_energy.py). The
integration itself is ngspice's (gear2 / trapezoidal on the deck's own steps): exact on flat
pulse tops, where the power is constant or follows the devices' smooth w.

Components (names as in the result file):

- ``crossbar_J``: into the projection crossbar's rows: the row sources ``Vrow<r>`` ('state'),
  the gated sense stages ``Bx<r>_<k>`` ('trace', read mode 'pulse');
- ``write_J``: into the volatile devices by writes: the drivers' write part ('state':
  ``V_n`` of ``Bdrv<n>``, or of ``Bdrvp``/``Bdrvm`` minus the read pulse), the row write
  sources' write part ('trace': ``V(dw<r>) - V(dref)``);
- ``read_J``: read pulses into the devices: ``V(rd)`` x the sensed device currents ('state',
  read mode 'pulse'), ``V(dref)`` x the row currents and the reference devices' ('trace').

A row of the trace topology carries write and read pulses that never overlap (read slots), so
``V(dw<r>) = write part + V(dref)`` and the split of ``V·I`` into the two parts is exact; the
same holds for the state topology's ``±V_n + V(rd)`` drivers. ``i(B...)`` makes ngspice insert a
0 V measuring source in series with the B-source (it changes no node voltage).
"""

from __future__ import annotations

from ..config import Config
from ..hardware.mapping import CircuitMapping
from ..hardware.state import row_node
from ..text import spice_number
from .netlist import wrap_items

ENERGY_SCALE = 1e-6   # V(e_<component>) per joule
COMPONENTS = ("crossbar_J", "write_J", "read_J")
_NODE = {"crossbar_J": "e_xbar", "write_J": "e_write", "read_J": "e_read"}
_TERMS_PER_SOURCE = 8   # power terms per B-source line (short lines, the same matrix)


def energy_vector(component: str) -> str:
    """Raw-file name of a component's integrator node."""
    return f"v({_NODE[component]})"


def _integrator(component: str, terms: list[str]) -> list[str]:
    """B-sources of ENERGY_SCALE x sum(terms) (delivered power, W) into a 1 F capacitor."""
    node = _NODE[component]
    out = []
    k = spice_number(ENERGY_SCALE)
    for j in range(0, len(terms), _TERMS_PER_SOURCE):
        part = terms[j:j + _TERMS_PER_SOURCE]
        out.append(wrap_items(f"B{node}_{j // _TERMS_PER_SOURCE} 0 {node} I = {k} * (",
                              [t + (" +" if i + 1 < len(part) else ")") for i, t in enumerate(part)],
                              per_line=3))
    out += [f"C{node} {node} 0 1", f".ic v({node})=0"]
    return out


def _header(what: str) -> list[str]:
    return ["* ---- energy accounting: delivered power integrated on 1 F capacitors, "
            f"V(e_*) = {spice_number(ENERGY_SCALE)} x energy in J ----", f"* {what}"]


def state_energy_lines(mapping: CircuitMapping, cfg: Config) -> tuple[list[str], tuple]:
    """Integrator lines of the 'state' deck and ((component, vector), ...) they save."""
    n_in, n_st = mapping.n_inputs, mapping.n_states
    out = _header("crossbar: row sources; write: drivers' V_n part; read: V(rd) part")
    rows = [f"-V({row_node(r, cfg)})*i(Vrow{r})" for r in range(n_in)]
    out += _integrator("crossbar_J", rows)
    comps = ["crossbar_J", "write_J"]
    if cfg.read.mode == "pulse":
        out += _integrator("write_J", [f"(V(drvp{n})-V(rd))*i(Vsp{n}) + (V(drvm{n})-V(rd))*i(Vsm{n})"
                                       for n in range(n_st)])
        out += _integrator("read_J", [f"V(rd)*(i(Vsp{n})+i(Vsm{n}))" for n in range(n_st)])
        comps.append("read_J")
    else:
        out += _integrator("write_J", [f"-V(drv{n})*i(Bdrv{n})" for n in range(n_st)])
    return out, tuple((c, energy_vector(c)) for c in comps)


def trace_energy_lines(mapping: CircuitMapping, cfg: Config, n_groups: int, *, crossbar: bool,
                       reference: bool, sources: list | None = None) -> tuple[list[str], tuple]:
    """Integrator lines of the 'trace' deck (``crossbar``: sense stages and crossbar present,
    read mode 'pulse'; ``reference``: reference devices on Vdref; ``sources``: the distinct
    (source, node) of the device rows, default one ``Vdw<r>`` per row) and what they save."""
    n_in = mapping.n_inputs
    out = _header("crossbar: sense stages; write: V(dw) - V(dref) part; read: V(dref) part")
    comps = []
    if crossbar:
        terms = []
        for r in range(n_in):
            for k in range(n_groups):
                node = f"x{k}r{r}" if cfg.circuit.r_wire == 0 else f"x{k}r{r}_in"
                terms.append(f"-V({node})*i(Bx{r}_{k})")
        out += _integrator("crossbar_J", terms)
        comps.append("crossbar_J")
    rows = list(dict.fromkeys(sources)) if sources else [(f"Vdw{r}", f"dw{r}") for r in range(n_in)]
    out += _integrator("write_J", [f"-(V({node})-V(dref))*i({src})" for src, node in rows])
    reads = [f"-V(dref)*i({src})" for src, _ in rows]
    if reference:
        reads.append("-V(dref)*i(Vdref)")
    out += _integrator("read_J", reads)
    comps += ["write_J", "read_J"]
    return out, tuple((c, energy_vector(c)) for c in comps)
