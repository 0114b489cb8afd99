"""Energy and latency per event and per inference, and a digital baseline for the same layer
(docs/design.md "Energy and latency").

The circuit figures come from an engine (``EngineRun.energy``: the energy delivered into the
crossbar, into the volatile devices by writes and by read pulses, J over the whole sample) and
are completed here with what the circuit does not contain: ``adc_J`` (``[energy]
adc_per_read_J`` x conversions, one conversion = one state at one read) and the per-event,
per-pulse and per-inference figures. What is *not* modelled: the behavioural stages (write
drivers, sense stages) are ideal, so only the energy they deliver to their loads counts, not
their own static power; no ADC, clock, control or memory-access energy beyond the ADC figure.

The digital baseline counts the operations of the same event-driven SSM layer on a processor
and multiplies them by the 45 nm energies of M. Horowitz, "Computing's energy problem (and what
we can do about it)", ISSCC 2014, pp. 10-14 (Fig. 1.1.9, 0.9 V): 8-bit integer add 0.03 pJ,
multiply 0.2 pJ; 32-bit float add 0.9 pJ, multiply 3.7 pJ; a 64-bit read of an 8 KB SRAM
(cache) 10 pJ (32 KB: 20 pJ, 1 MB: 100 pJ). Assumptions are in :func:`digital_baseline`.
"""

from __future__ import annotations

import math

# the circuit's components (engines), the completed figures (result file /energy)
CIRCUIT_COMPONENTS = ("crossbar_J", "write_J", "read_J")
NAMES = ("crossbar_J", "write_J", "read_J", "adc_J", "total_J", "per_event_J", "per_pulse_J",
         "per_inference_J", "latency_s", "n_events", "n_pulses", "n_reads", "n_conversions")
NOT_MODELLED = ("behavioural write drivers and sense stages are ideal: the energy they deliver "
                "to their loads is counted, their own static power is not; ADCs are not in the "
                "circuit (adc_J = [energy] adc_per_read_J x conversions); no settling time (the "
                "circuit has no capacitance)")

# Horowitz, ISSCC 2014, 45 nm, 0.9 V (pJ)
HOROWITZ_PJ = {"int8_add": 0.03, "int8_mult": 0.2, "fp32_add": 0.9, "fp32_mult": 3.7,
               "sram64_8kB": 10.0, "sram64_32kB": 20.0, "sram64_1MB": 100.0}
HOROWITZ_SOURCE = ("M. Horowitz, 'Computing's energy problem (and what we can do about it)', "
                   "ISSCC 2014, pp. 10-14, 45 nm at 0.9 V")


def latency_s(cfg, n_reads: int) -> float:
    """Latency of one inference, s: the read pulses (``n_reads`` x ``[read] t_read``, one per
    sample time the readout uses), plus the write pulse ``[events] t_p`` on the 'state' topology
    (the last event's projection and write happen during its pulse; on 'trace' the crossbar
    works during the reads). The circuit has no capacitance: no settling term."""
    lat = n_reads * cfg.read.t_read
    if cfg.circuit.topology == "state":
        lat += cfg.events.t_p
    return float(lat)


def energy_figures(components: dict, *, cfg, n_events: int, n_pulses: int, n_reads: int,
                   n_states: int) -> dict:
    """The result file's ``/energy`` figures from an engine's component energies (J)."""
    comp = {k: float(components.get(k, 0.0)) for k in CIRCUIT_COMPONENTS}
    conversions = int(n_reads) * int(n_states)
    comp["adc_J"] = conversions * float(cfg.energy.adc_per_read_J)
    total = sum(comp.values())
    return {**comp, "total_J": total,
            "per_event_J": total / n_events if n_events else math.nan,
            "per_pulse_J": total / n_pulses if n_pulses else math.nan,
            "per_inference_J": total,
            "latency_s": latency_s(cfg, n_reads),
            "n_events": int(n_events), "n_pulses": int(n_pulses), "n_reads": int(n_reads),
            "n_conversions": conversions}


def digital_baseline(n_states: int, n_groups: int, *, n_events: int = 1,
                     n_reads: int = 1, n_classes: int = 0, precision: str = "int8",
                     sram_pj: float = HOROWITZ_PJ["sram64_8kB"]) -> dict:
    """Energy of the same SSM layer on a digital event-driven processor (J), by operation counts.

    Per input event on row r (the circuit's work per event):
      * decay and update of every state, ``x_n <- a_g(n) x_n + B[n, r]``: N MACs;
      * the decay factors ``a_k = exp(-dt/tau_k)`` from a lookup table: K SRAM reads;
      * the B column r: ceil(N bits / 64) SRAM reads; the N states: as many reads and writes
        (the states live in SRAM, as a layer of thousands of states would).
    Per inference: ``n_reads`` reads of the N states (ceil(N bits / 64) SRAM reads each) and,
    when ``n_classes`` > 0, a linear readout of ``n_classes x n_reads x N`` MACs with its weights
    fetched once (common to the circuit, whose readout is digital as well: reported apart).
    ``precision``: 'int8' (8-bit weights and states, 8-bit MAC of 0.23 pJ) or 'fp32' (4.6 pJ).
    Not counted: instruction fetch, control, clock, leakage and DRAM (Horowitz: a 32-bit DRAM
    read costs 1.3-2.6 nJ), so this is a lower bound of a processor's figure.
    """
    if precision == "int8":
        mac, bits = HOROWITZ_PJ["int8_mult"] + HOROWITZ_PJ["int8_add"], 8
    elif precision == "fp32":
        mac, bits = HOROWITZ_PJ["fp32_mult"] + HOROWITZ_PJ["fp32_add"], 32
    else:
        raise ValueError(f"precision {precision!r}: use 'int8' or 'fp32'")
    words = math.ceil(n_states * bits / 64)
    macs_event = n_states
    sram_event = n_groups + words + 2 * words
    per_event_pj = macs_event * mac + sram_event * sram_pj
    read_pj = n_reads * words * sram_pj
    readout_macs = n_classes * n_reads * n_states
    readout_pj = readout_macs * mac + math.ceil(readout_macs * bits / 64) * sram_pj
    return {"precision": precision, "mac_pJ": mac, "sram64_pJ": sram_pj,
            "macs_per_event": macs_event, "sram_per_event": sram_event,
            "per_event_J": per_event_pj * 1e-12,
            "per_inference_J": (n_events * per_event_pj + read_pj) * 1e-12,
            "readout_J": readout_pj * 1e-12, "source": HOROWITZ_SOURCE}


def fmt_energy(x: float) -> str:
    """Engineering format in J (ASCII prefixes): 1.23 nJ."""
    if x is None or not math.isfinite(x):
        return "n/a"
    if x == 0:
        return "0 J"
    for scale, unit in ((1, "J"), (1e-3, "mJ"), (1e-6, "uJ"), (1e-9, "nJ"), (1e-12, "pJ"),
                        (1e-15, "fJ")):
        if abs(x) >= scale:
            return f"{x / scale:.3g} {unit}"
    return f"{x / 1e-18:.3g} aJ"


def summary_lines(fig: dict, cfg, *, n_states: int, n_groups: int) -> list[str]:
    """Energy lines of ``cimspice simulate``'s summary (label column 14 wide)."""
    f = fmt_energy
    lines = [f"energy        {f(fig['per_inference_J'])} per inference: crossbar {f(fig['crossbar_J'])}, "
             f"write {f(fig['write_J'])}, read {f(fig['read_J'])}, ADC {f(fig['adc_J'])}",
             f"              {f(fig['per_event_J'])} per event ({fig['n_events']} events, before "
             f"merging), {f(fig['per_pulse_J'])} per pulse ({fig['n_pulses']} pulses)"]
    write = f" + write pulse {cfg.events.t_p * 1e6:g} us" if cfg.circuit.topology == "state" else ""
    lines.append(f"latency       {fig['latency_s'] * 1e6:.4g} us per inference ({fig['n_reads']} reads "
                 f"x {cfg.read.t_read * 1e6:g} us{write})")
    d8 = digital_baseline(n_states, n_groups, precision="int8")
    d32 = digital_baseline(n_states, n_groups, precision="fp32")
    lines.append(f"digital       {f(d8['per_event_J'])} (int8) / {f(d32['per_event_J'])} (fp32) per "
                 f"event, same layer (Horowitz ISSCC 2014, 45 nm)")
    return lines
