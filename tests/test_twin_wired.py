"""The twin's wired non-linear crossbar solve (engines.twin_wired._WiredNet): the
preconditioned fixed point against the plain one, the memo of solved row-voltage vectors
(equal to a fresh solve, bounded, safe against hash collisions) and one net per hardware.
ngspice agreement of the same solve: test_twin.py::test_crossbar_matches_ngspice_op."""
from __future__ import annotations

import numpy as np
import pytest

from cimspice.engines import twin_wired
from cimspice.engines.twin_wired import _WiredNet, wired_net

CASES = [(5.0, "nmos", 0.0), (5.0, "nmos", 2.0), (5.0, "none", 2.0),
         (100.0, "nmos", 0.0), (100.0, "nmos", 1.5), (100.0, "none", 1.5)]


def _hardware(seed=1, r=6, n=4):
    rng = np.random.default_rng(seed)
    return rng.uniform(1e-6, 1e-4, (r, n)), rng.uniform(1e-6, 1e-4, (r, n))


def _vectors(seed, p, r, vmax=0.3):
    rng = np.random.default_rng(seed)
    return rng.uniform(0, vmax, (p, r)) * (rng.random((p, r)) < 0.5)


def _plain(gp, gm, r_wire, access, rnl):
    net = _WiredNet(gp, gm, r_wire, access, 1.8, rnl)
    net.KT = None                         # the plain fixed point (1e-13), no preconditioner
    return net


@pytest.mark.parametrize("r_wire,access,rnl", CASES)
def test_preconditioned_solve_equals_plain_fixed_point(r_wire, access, rnl):
    gp, gm = _hardware()
    U = _vectors(2, 300, 6, vmax=0.4)
    ref, ref_rows = _plain(gp, gm, r_wire, access, rnl).currents(U, rows=True)
    got, got_rows = _WiredNet(gp, gm, r_wire, access, 1.8, rnl).currents(U, rows=True)
    scale = np.max(np.abs(ref))
    assert np.max(np.abs(got - ref)) <= 1e-12 * scale
    assert np.max(np.abs(got_rows - ref_rows)) <= 1e-12 * np.max(np.abs(ref_rows))


@pytest.mark.parametrize("r_wire,access,rnl", CASES[:3])
def test_memo_equals_fresh_solve(r_wire, access, rnl):
    gp, gm = _hardware()
    net = _WiredNet(gp, gm, r_wire, access, 1.8, rnl)
    A, B = _vectors(3, 200, 6), _vectors(4, 200, 6)
    first = net.currents(A)
    assert net._n == np.unique(A, axis=0).shape[0]
    again = net.currents(A[::-1])                  # all from the memo, bit for bit
    np.testing.assert_array_equal(again, first[::-1])
    mixed, mixed_rows = net.currents(np.concatenate([B, A]), rows=True)   # half hits
    fresh, fresh_rows = _WiredNet(gp, gm, r_wire, access, 1.8, rnl).currents(
        np.concatenate([B, A]), rows=True)
    for got, ref in ((mixed, fresh), (mixed_rows, fresh_rows)):
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-12 * np.max(np.abs(ref)))


def test_memo_is_bounded_and_stays_exact():
    gp, gm = _hardware()
    net = _WiredNet(gp, gm, 5.0, "nmos", 1.8, 0.0)
    net._cap = 50
    ref = _WiredNet(gp, gm, 5.0, "nmos", 1.8, 0.0)
    for k in range(8):
        U = _vectors(10 + k, 30, 6)
        got = net.currents(U)
        assert net._n <= 50 and net._memo[0].size == net._n
        np.testing.assert_allclose(got, ref.currents(U), rtol=0, atol=1e-12 * np.max(np.abs(got)))
    big = _vectors(30, 80, 6)                       # more distinct vectors than the memo holds
    np.testing.assert_allclose(net.currents(big), ref.currents(big), rtol=0, atol=1e-16)
    assert net._n <= 50


def test_hash_collisions_fall_back_to_exact_matching():
    gp, gm = _hardware()
    net = _WiredNet(gp, gm, 5.0, "nmos", 1.8, 0.0)
    ref = _WiredNet(gp, gm, 5.0, "nmos", 1.8, 0.0)
    net._mult[:] = 0                               # every vector hashes to 0
    U = _vectors(5, 40, 6)
    tol = 1e-12 * np.max(np.abs(ref.currents(U)))
    np.testing.assert_allclose(net.currents(U), ref.currents(U), rtol=0, atol=tol)   # in one call
    for u in U[:5]:                                # one at a time: same hash as the stored one
        np.testing.assert_allclose(net.currents(u[None]), ref.currents(u[None]), rtol=0, atol=tol)
    assert net._n == 1


def test_row_voltages_share_a_solve_on_the_grid():
    """Voltages equal up to rounding (one ramp node computed from two corners) are one vector."""
    gp, gm = _hardware()
    net = _WiredNet(gp, gm, 5.0, "nmos", 1.8, 0.0)
    u = _vectors(6, 1, 6)
    out = net.currents(np.concatenate([u, np.nextafter(u, 1.0)]))
    np.testing.assert_array_equal(out[0], out[1])
    assert net._n == 1


def test_one_net_per_hardware():
    twin_wired._WIRED_NETS.clear()
    gp, gm = _hardware()
    a = wired_net(gp, gm, 5.0, "nmos", 1.8, 0.0)
    assert wired_net(gp.copy(), gm.copy(), 5.0, "nmos", 1.8, 0.0) is a
    assert wired_net(gp, gm, 5.0, "nmos", 1.8, 2.0) is not a
    for k in range(5):
        wired_net(*_hardware(seed=10 + k), 5.0, "nmos", 1.8, 0.0)
    assert len(twin_wired._WIRED_NETS) <= 2
