"""The twin on the trace topology and on read pulses, against the real ngspice; the read path's
own targets (docs/design.md, "Realistic devices").

Tolerances: twin vs ngspice 5e-4 state NRMSE (the twin issue's 0.5 % target with a 10x margin;
measured 1e-4..3e-4 on these samples); read 'pulse' vs 'node' 1 % (the issue's target; measured
~1e-4); trace + wox without window on the ideal-parts array 0.5 % vs the pulse SSM (the issue's
target; measured 0.33 %).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import cimspice
from cli_helpers import first_events
from cimspice.config import Config
from cimspice.datasets import make_dataset, save_dataset
from cimspice.engines.registry import get_engine
from cimspice.errors import ConfigError
from cimspice.pipeline import nrmse, prepare

TRACE = {"circuit": {"topology": "trace"}, "read": {"mode": "pulse"}}


@pytest.fixture(scope="module")
def bars(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("twin_trace") / "bars.npz"
    save_dataset(path, make_dataset("dvs-bars", 4, 0))
    return path




def _merge(*parts: dict) -> dict:
    out: dict = {}
    for p in parts:
        for sec, keys in p.items():
            out.setdefault(sec, {}).update(keys)
    return out


# (id, config sections, twin-vs-ngspice tolerance: 5e-4; 3e-3 for the sinh write with window on
# the state topology, where ngspice's own step error is that large (tests/test_twin.py))
COMBOS = [
    ("trace-wox", _merge(TRACE, {"device": {"preset": "wox"}}), 5e-4),
    ("trace-wox-1R", _merge(TRACE, {"device": {"preset": "wox"}, "circuit": {"access": "none"}}), 5e-4),
    ("trace-wox-wires", _merge(TRACE, {"device": {"preset": "wox"}, "circuit": {"r_wire": 5.0}}), 5e-4),
    ("trace-wox-odd-baseline-ideal", _merge(TRACE, {"device": {"preset": "wox", "odd_write": True},
                                                     "read": {"baseline": "ideal"}}), 5e-4),
    ("trace-wox-node", _merge(TRACE, {"device": {"preset": "wox"}, "read": {"mode": "node"}}), 5e-4),
    ("trace-ideal-levels-rnl", _merge(TRACE, {"device": {"preset": "ideal", "read_nl": 1.0},
                                               "circuit": {"levels": 16, "rram_read_nl": 1.0}}), 5e-4),
    ("state-read-pulse", {"read": {"mode": "pulse"}}, 5e-4),
    ("state-read-pulse-sinh-window", {"read": {"mode": "pulse"},
                                      "device": {"mode": "sinh", "window": True},
                                      "sim": {"reltol": 1e-5}}, 3e-3),
]


@pytest.mark.parametrize("name,sections,tol", COMBOS, ids=[c[0] for c in COMBOS])
def test_twin_matches_ngspice_on_trace_and_read_pulses(bars, name, sections, tol):
    cfg = Config().replace(**sections)
    prep = cimspice.build(first_events(bars), cfg)
    a = cimspice.simulate(prep, engine="ngspice")
    b = cimspice.simulate(prep, engine="twin")
    err = nrmse(b.circuit, a.circuit)
    print(f"{name}: twin vs ngspice {err:.2e}, ngspice vs ideal {a.nrmse:.2e}")
    assert err <= tol
    assert np.all(np.isfinite(a.circuit)) and np.abs(a.circuit).max() > 0


def test_read_pulse_vs_node_on_the_same_reserved_schedule(bars):
    """The read circuit (pulses, sensed currents, read disturb) against the ideal w probe, on the
    default state layer and the same schedule with read slots: within 1 %."""
    cfg_p = Config().replace(read={"mode": "pulse"})
    prep_p = cimspice.build(cimspice.load_events(str(bars), index=1), cfg_p)
    cfg_n = Config().replace(read={"mode": "node"})
    prep_n = prepare(prep_p.schedule, prep_p.model, prep_p.mapping, cfg_n)
    assert np.array_equal(prep_n.sample_times, prep_p.schedule.reads)
    x_p = cimspice.simulate(prep_p).circuit
    x_n = cimspice.simulate(prep_n).circuit
    err = nrmse(x_p, x_n)
    print(f"read pulse vs node: {err:.2e}")
    assert err <= 0.01


def test_trace_wox_without_window_follows_the_pulse_ssm(bars):
    """trace + wox, window off, ideal-parts array (V_g = 5 V), read pulses: state NRMSE <= 0.5 %
    vs the pulse SSM (a fixed-V device adds f(V_w) per pulse, linear in the count)."""
    cfg = Config().replace(circuit={"topology": "trace", "v_gate": 5.0},
                           device={"preset": "wox", "window": False}, read={"mode": "pulse"})
    res = cimspice.simulate(cimspice.build(cimspice.load_events(str(bars), index=0), cfg))
    print(f"trace wox, no window: {res.nrmse:.2e}")
    assert res.nrmse <= 5e-3


def test_twin_trace_refusals_and_vacask_refuses_trace():
    with pytest.raises(ConfigError, match=r"\[device\] odd_write") as info:
        get_engine("twin").check(Config().replace(device={"mode": "sinh", "window": True,
                                                          "odd_write": True},
                                                  sim={"reltol": 1e-5}))
    assert "\n" not in str(info.value)
    with pytest.raises(ConfigError, match=r"topology") as info:
        get_engine("vacask").check(Config().replace(**_merge(TRACE, {"device": {"preset": "wox"}})))
    assert "\n" not in str(info.value)
