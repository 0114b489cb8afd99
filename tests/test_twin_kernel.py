"""The twin's compiled inner loop (engines/twin_kernel.py) against its NumPy path.

Both compute the same segment maps from the same equations (read segments: the same
StateReadMaps); they differ in how the maps are chained: the compiled loop applies them one by one, the NumPy path by a blocked log-domain
prefix scan, whose rounding grows with the accumulated decay inside a block (up to e^600).
Measured on dvs-bars samples 0-2 over 11 configurations: |w| differences <= 1e-14 (linear
write), <= 3.5e-12 (sinh write, steeper maps); write energies within 8e-14 relative. Bounds
below: 1e-10 on w (states are in [0, 1]) and 1e-11 relative on the energies. The compiled loop
also runs in every twin-vs-ngspice test of tests/test_twin.py (it is the default path).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import cimspice
from cli_helpers import first_events
from cimspice.config import Config, check_config
from cimspice.datasets import make_dataset, save_dataset
from cimspice.engines import twin, twin_kernel
from cimspice.engines.twin import run_twin
from cimspice.schedule import PulseSchedule

W_TOL = 1e-10
E_RTOL = 1e-11


@pytest.fixture(scope="module")
def bars(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("kernel") / "bars.npz"
    save_dataset(path, make_dataset("dvs-bars", 2, 0))
    return path


def _both(prep, **kw):
    args = (prep.mapping, prep.schedule, prep.cfg, prep.sample_times)
    return (run_twin(*args, draws=prep.draws, compiled=True, **kw),
            run_twin(*args, draws=prep.draws, compiled=False, **kw))


def _assert_same(a, b):
    for key in ("w_plus", "w_minus"):
        assert a[key].shape == b[key].shape
        err = float(np.max(np.abs(a[key] - b[key])))
        assert err <= W_TOL, (key, err)
    if b["energy"] is None:
        assert a["energy"] is None
        return
    for key in ("write_J", "read_J", "crossbar_J"):
        x, y = a["energy"][key], b["energy"][key]
        assert abs(x - y) <= E_RTOL * max(abs(y), 1e-30), (key, x, y)


# every option of a superposing crossbar (the compiled loop's domain)
CASES = [
    ("default-1t1r", {}),
    ("access-none", {"circuit": {"access": "none"}}),
    ("window", {"device": {"window": True, "w_rest": 0.05}}),
    ("sinh", {"device": {"mode": "sinh"}}),
    ("sinh-window-clamp", {"device": {"mode": "sinh", "window": True}, "sim": {"reltol": 1e-5},
                           "circuit": {"v_clamp": 2.0}}),
    ("v-clamp", {"circuit": {"v_clamp": 0.2}}),
    ("levels-16-read-nl", {"circuit": {"levels": 16}, "device": {"read_nl": 1.0}}),
    ("none-rram-read-nl", {"circuit": {"access": "none", "rram_read_nl": 2.0}}),
    ("wire-none", {"circuit": {"access": "none", "r_wire": 5.0}}),
    ("chip-and-write-noise", {"variation": {"tau_sigma": 0.1, "write_sigma": 0.1,
                                            "write_noise": 0.05, "g_sigma": 0.05,
                                            "driver_offset": 0.01, "seed": 3}}),
    ("no-energy", {"energy": {"accounting": False}}),
    ("read-pulses", {"read": {"mode": "pulse"}}),
    ("read-pulses-offsets-1r-read-nl", {"read": {"mode": "pulse"}, "circuit": {"access": "none"},
                                        "device": {"read_nl": 1.0},
                                        "variation": {"driver_offset": 0.02, "seed": 1}}),
]


@pytest.mark.parametrize("name,changes", CASES, ids=[c[0] for c in CASES])
def test_compiled_loop_matches_numpy_path(bars, name, changes):
    cfg = check_config(Config().replace(**changes))
    prep = cimspice.build(cimspice.load_events(str(bars), index=1), cfg)
    a, b = _both(prep)
    _assert_same(a, b)
    if name != "no-energy":
        assert a["energy"]["write_J"] > 0
    if name.startswith("read"):
        assert a["energy"]["read_J"] > 0
        np.testing.assert_allclose(a["sensed"], b["sensed"], rtol=0, atol=W_TOL)


def test_wired_cells_take_the_numpy_path(bars, monkeypatch):
    """Outside its domain (non-linear cells on wires: rows do not superpose) the compiled loop
    is not called: the results do not depend on ``compiled``."""
    def refuse(*a):
        raise AssertionError("compiled loop called outside its domain")
    monkeypatch.setattr(twin, "chain_segments", refuse)
    cfg = check_config(Config().replace(circuit={"r_wire": 5.0}))
    prep = cimspice.build(first_events(bars, 0), cfg)
    a, b = _both(prep)
    _assert_same(a, b)


def test_cut_edges_overlaps_and_chunks(monkeypatch):
    """Hand-made stream where every special case of the entry walk occurs: a row's corner
    inside another row's edge (edges cut into parts, PART entries), two edges in one segment,
    a flat top under an edge, sample times inside edges, at 0 and past the end, and chunks of 3
    segments (state carried across chunk ends)."""
    cfg = check_config(Config().replace(circuit={"access": "none"}, device={"w_rest": 0.02}))
    rng = np.random.default_rng(0)
    R, N = 3, 2
    gp, gm = rng.uniform(1e-6, 5e-5, (R, N)), rng.uniform(1e-6, 5e-5, (R, N))

    class Mapping:
        g_rram_plus, g_rram_minus = gp, gm
        r_tia, tau, v_in, gains, chip = np.full(N, 2e4), np.array([0.004, 0.01]), 0.2, np.ones(N), None
        n_states, n_inputs = N, R

    # row 1 starts 0.3 us into row 0's rising edge; row 2 rises with row 0's falling edge
    sch = PulseSchedule(row=np.array([0, 1, 2, 0], np.int32),
                        t_on=np.array([1e-3, 1e-3 + 0.3e-6, 1e-3 + 100e-6, 2e-3]),
                        width=np.array([100e-6, 50e-6, 200e-6, 100e-6]),
                        amplitude=np.array([1.0, 0.7, 1.3, 1.0]), n_rows=R, t_p=100e-6,
                        t_rise=1e-6, min_gap=100e-6, duration=4e-3)
    t = np.r_[0.0, 1e-3 + 0.1e-6, 1e-3 + 0.45e-6, 1e-3 + 100.2e-6, np.linspace(1.2e-3, 4e-3, 6), 9.0]
    kinds = []

    def spy(dt, seg, erow, elv, ekind, *rest):
        kinds.append(ekind.copy())
        return twin_kernel.chain_segments(dt, seg, erow, elv, ekind, *rest)
    monkeypatch.setattr(twin, "chain_segments", spy)
    ref = run_twin(Mapping, sch, cfg, t, compiled=False)
    got = run_twin(Mapping, sch, cfg, t, compiled=True)
    _assert_same(got, ref)
    k = np.concatenate(kinds)
    assert {twin_kernel.FLAT, twin_kernel.RISE, twin_kernel.FALL, twin_kernel.PART} <= set(k.tolist())
    assert np.all(got["w_plus"][0] == 0.02)                         # t = 0: w_rest
    np.testing.assert_array_equal(got["w_plus"][-1], got["w_plus"][-2])   # past the end
    old = twin._KERNEL_CHUNK
    try:
        twin._KERNEL_CHUNK = 3
        small = run_twin(Mapping, sch, cfg, t, compiled=True)
    finally:
        twin._KERNEL_CHUNK = old
    for key in ("w_plus", "w_minus"):
        np.testing.assert_allclose(small[key], got[key], rtol=0, atol=1e-15)
    assert small["energy"]["write_J"] == pytest.approx(got["energy"]["write_J"], rel=1e-13)
    assert len(kinds) > 3                                           # many chunks were run


def test_drive_tables_follow_the_device_law(bars):
    """The per-array drive tables are cached with the device parameters: the same array run
    with another law (window, clamp) does not reuse the first law's tables."""
    sample = cimspice.load_events(str(bars), index=0)
    base = cimspice.build(sample, check_config(Config()))
    for changes in ({}, {"device": {"window": True}}, {"circuit": {"v_clamp": 0.2}},
                    {"device": {"k": 2.0 * Config().device.k}}):
        cfg = check_config(Config().replace(**changes))
        a = run_twin(base.mapping, base.schedule, cfg, base.sample_times, compiled=True)
        b = run_twin(base.mapping, base.schedule, cfg, base.sample_times, compiled=False)
        _assert_same(a, b)
    assert len(twin_kernel._DRIVE_CACHE) >= 2
