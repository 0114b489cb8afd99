"""The compiled 1T1R cell solve (twin_cells._cell_currents_1t1r, numba) against its NumPy
implementation (twin_cells._cell_currents_1t1r_numpy).

Same start value, Newton update, clipping and residual test; they differ in the stopping test
(per cell in the compiled loop, over all cells in the NumPy path: a converged cell's extra or
missing step) and, for rnl > 0, in how sinh/cosh are evaluated (one expm1 against NumPy's
sinh and cosh), both at rounding level. Measured max relative difference per cell current over
the cases below: 7.9e-16 (rnl = 0: 6.3e-16). Bound: 1e-14 relative, no absolute slack (zero
currents must be exactly zero). Far outside these ranges (g of mS and more with vg - vto <=
0.15 V, v up to 20 V, rnl up to 5 1/V) the two differ by up to ~2e-13 where v - vd is a tiny
difference of large voltages: a 1-ulp move of vd, within both paths' residual acceptance.
"""
from __future__ import annotations

import numpy as np
import pytest

from cimspice.engines import twin_cells
from cimspice.hardware.cells import NMOSParams

RTOL = 1e-14
NM = NMOSParams()                      # vto = 0.45 V: vov = 0.55, 1.35, 4.55 V below


def _both(v, g, vg, rnl):
    return (twin_cells._cell_currents_1t1r(v, g, vg, rnl),
            twin_cells._cell_currents_1t1r_numpy(v, g, vg, rnl))


@pytest.mark.parametrize("rnl", [0.0, 2.0])
@pytest.mark.parametrize("vg", [1.0, 1.8, 5.0])
def test_random_cells_equal_numpy(vg, rnl):
    rng = np.random.default_rng(7)
    v = rng.uniform(0.0, 1.5, 10_000)
    g = rng.uniform(1e-6, 2e-4, 10_000)
    v[::97] = 0.0                      # cells at 0 V carry exactly no current
    got, ref = _both(v, g, vg, rnl)
    assert got.shape == ref.shape == (10_000,)
    np.testing.assert_allclose(got, ref, rtol=RTOL, atol=0)
    assert np.all(got[::97] == 0.0)
    # vg = 5: v <= 1.5 V < vov, the triode closed form; vg = 1.0, 1.8: the piecewise law (no
    # cell saturates with g <= 2e-4 S: see the next test)
    assert (v.max() < vg - NM.vto) == (vg == 5.0)


@pytest.mark.parametrize("rnl", [0.0, 2.0])
def test_saturated_cells_equal_numpy(rnl):
    rng = np.random.default_rng(9)
    v = rng.uniform(0.0, 1.5, 10_000)
    g = rng.uniform(1e-6, 2e-3, 10_000)
    got, ref = _both(v, g, 1.0, rnl)
    np.testing.assert_allclose(got, ref, rtol=RTOL, atol=0)
    i_sat = NM.beta / 2 * (1.0 - NM.vto) ** 2          # a saturated cell carries at least this
    assert 0.2 < np.mean(ref >= i_sat) < 0.8


@pytest.mark.parametrize("rnl", [0.0, 2.0])
def test_broadcast_and_scalar(rnl):
    g = np.random.default_rng(8).uniform(1e-6, 2e-4, (40, 16))
    got, ref = _both(0.3, g, 1.8, rnl)                    # scalar v, (40, 16) g
    assert got.shape == (40, 16)
    np.testing.assert_allclose(got, ref, rtol=RTOL, atol=0)
    v = np.linspace(0.0, 1.5, 40)[:, None]                 # (40, 1) against (40, 16)
    got, ref = _both(v, g, 1.8, rnl)
    assert got.shape == (40, 16)
    np.testing.assert_allclose(got, ref, rtol=RTOL, atol=0)
    one = twin_cells._cell_currents_1t1r(0.3, 1e-4, 1.8, rnl)   # scalars give a scalar
    assert np.ndim(one) == 0
    np.testing.assert_allclose(one, twin_cells._cell_currents_1t1r_numpy(0.3, 1e-4, 1.8, rnl),
                               rtol=RTOL)


@pytest.mark.parametrize("rnl", [0.0, 2.0])
def test_bracketed_fallback_cells(rnl):
    # vov = 10 mV and g up to 10 mS: cells whose Newton residual is not at rounding level
    v = np.linspace(0.0, 1.5, 16)[:, None]
    g = np.geomspace(1e-6, 1e-2, 9)[None]
    vf, gf = (a.ravel().copy() for a in np.broadcast_arrays(v, g))
    _, bad = twin_cells._newton_1t1r(vf, gf, 0.46, rnl, NM.beta, NM.vto, NM.lambda_, vf.max())
    assert bad.sum() >= 10
    got, ref = _both(v, g, 0.46, rnl)
    np.testing.assert_allclose(got, ref, rtol=RTOL, atol=0)
    np.testing.assert_array_equal(
        got.ravel()[bad], twin_cells._cell_bracketed(vf[bad], gf[bad], 0.46, rnl, NM))


def test_negative_voltage_and_transistor_off():
    with pytest.raises(ValueError, match="row voltages must be >= 0"):
        twin_cells._cell_currents_1t1r(np.array([0.1, -1e-3]), 1e-4, 1.8, 0.0)
    with pytest.raises(ValueError, match="row voltages must be >= 0"):
        twin_cells._cell_currents_1t1r(-0.1, np.full(3, 1e-4), 0.2, 0.0)   # before vg is looked at
    off = twin_cells._cell_currents_1t1r(np.full((2, 1), 0.5), np.full((2, 3), 1e-4), 0.45, 0.0)
    assert off.shape == (2, 3) and np.all(off == 0.0)
