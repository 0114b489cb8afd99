"""The `state` topology (0.1.0's circuit), described once for every simulator.

One deck per event sample::

    Vrow<r>  row<r>          PWL pulses of the schedule (one source per input channel)
    cell (r, n+/-):  row<r> --[RRAM g]-- m<r>_<n>p --[NMOS, gate wl]-- col<n>p     (1T1R)
    Vsense<n>p col<n>p 0 0   (virtual ground; its current is the column current)
    Bdrv<n>  drv<n> 0 V = R_n * (I(Vsense<n>p) - I(Vsense<n>m))                   (write driver)
    xs<n>p   drv<n> 0  vmem tau=...      (sees +V_n)
    xs<n>m   0 drv<n>  vmem tau=...      (reversed: sees -V_n)

With ``r_wire > 0`` every row and column is a chain of wire segments, one per cell.
:func:`crossbar_elements` lists the array as simulator-neutral elements; the ngspice and VACASK
writers (:mod:`cimspice.engines.netlist`, :mod:`cimspice.engines.vacask`) render them.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config import Config
from .mapping import CircuitMapping


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


def crossbar_elements(mapping: CircuitMapping, cfg: Config, *, states=None, row=None,
                      word_line: bool = True) -> list[Element]:
    """The C_in x 2N 1T1R array, its wire segments, word line and 0 V sense sources.

    Cell (r, n+/-): ``row`` --RRAM-- ``m<r>_<n><s>`` --NMOS (gate wl)-- ``col``; with wire
    resistance every row and column is a chain of one segment per cell, the column chain
    ending at its sense source. ``states`` (default all) and ``row`` (r -> row node name,
    default ``row<r>``) describe one block of the trace topology (its own rows, the columns of
    its states); ``word_line`` adds the shared word-line source.
    """
    c = cfg.circuit
    n_in = mapping.n_inputs
    states = list(range(mapping.n_states)) if states is None else [int(n) for n in states]
    row = row or (lambda r: f"row{r}")
    out = []
    for n in states:
        for side, g_rram in (("p", mapping.g_rram_plus), ("m", mapping.g_rram_minus)):
            col = f"col{n}{side}"
            for r in range(n_in):
                cell = f"{r}_{n}{side}"
                if c.r_wire == 0:
                    rnode, cnode = row(r), col
                else:
                    rnode, cnode = f"{row(r)}_c{n}{side}", f"{col}_r{r}"
                mid = f"m{cell}" if c.access == "nmos" else cnode
                out.append(Element("rram", cell, (rnode, mid), float(g_rram[r, n])))
                if c.access == "nmos":
                    out.append(Element("nmos", cell, (mid, "wl", cnode, "0")))
    if c.r_wire > 0:
        cols = [f"{n}{s}" for n in states for s in ("p", "m")]
        for r in range(n_in):
            prev = f"{row(r)}_in"
            for cn in cols:
                out.append(Element("wire", f"{row(r)}_c{cn}", (prev, f"{row(r)}_c{cn}"), c.r_wire))
                prev = f"{row(r)}_c{cn}"
        for cn in cols:
            for r in range(n_in):
                nxt = f"col{cn}_r{r + 1}" if r + 1 < n_in else f"col{cn}"
                out.append(Element("wire", f"col{cn}_r{r}", (f"col{cn}_r{r}", nxt), c.r_wire))
    if c.access == "nmos" and word_line:
        out.append(Element("vdc", "wl", ("wl", "0"), c.v_gate))
    for n in states:
        for side in ("p", "m"):
            out.append(Element("vdc", f"sense{n}{side}", (f"col{n}{side}", "0"), 0.0))
    return out
