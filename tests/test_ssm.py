"""Ideal SSM (cimspice.ssm) against independent oracles.

Oracles: a plain loop that steps the ODE exactly between all breakpoints (kept only here), the
literal EventSSM recurrence, a direct (samples x pulses) kernel, and closed-form single-pulse
responses. Schedules are built directly from arrays (the events module is tested elsewhere).

Tolerance of the loop comparisons: |x - x_ref| <= 1e-12 * x_abs elementwise, where x_abs is
the reference run with |B| (amplitudes are positive), i.e. the sum of the magnitudes of all
contributions to that element. Both sides are sums of at most ~100 exactly-rounded terms, each
carrying a few (< 20) roundings, so their errors are < 1e-14 * x_abs; 1e-12 leaves two decades of
margin yet catches any wrong exponent, missing pulse or boundary case (those are O(1e-6) or
larger). A plain rtol would be meaningless where terms of opposite sign cancel.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cimspice.errors import CimspiceError, ConfigError, InputError
from cimspice.schedule import PulseSchedule
from cimspice.ssm import (
    METHODS,
    SSMParams,
    default_sample_times,
    load_ssm,
    output,
    random_ssm,
    save_ssm,
    simulate_ssm,
)

T_P = 100e-6


def make_schedule(row, t_on, width, amplitude, n_rows, duration=None, t_p=T_P):
    """PulseSchedule from arrays, sorted by t_on then row as the contract requires."""
    row = np.asarray(row, dtype=np.int32)
    t_on = np.asarray(t_on, dtype=np.float64)
    width = np.asarray(width, dtype=np.float64)
    amplitude = np.asarray(amplitude, dtype=np.float64)
    order = np.lexsort((row, t_on))
    end = float(np.max(t_on + width)) if t_on.size else 0.0
    return PulseSchedule(row=row[order], t_on=t_on[order], width=width[order],
                         amplitude=amplitude[order], n_rows=n_rows, t_p=t_p, t_rise=0.0,
                         min_gap=0.0, duration=end if duration is None else duration,
                         n_events=int(row.size))


def abs_params(params):
    return SSMParams(B=np.abs(params.B), taus=params.taus, groups=params.groups)


def assert_close_to_ref(x, ref, ref_abs, rel=1e-12):
    err = np.abs(x - ref)
    bound = rel * ref_abs + 1e-300
    worst = np.unravel_index(np.argmax(err / bound), err.shape) if err.size else None
    assert np.all(err <= bound), (
        f"max err/bound {np.max(err / bound):.3g} at {worst}: x={x[worst]!r} ref={ref[worst]!r}")


# ---------------------------------------------------------------------------------------------
# Loop references (tests only)
# ---------------------------------------------------------------------------------------------

def loop_reference(params, sch, sample_times, method):
    """Step dx/dt = -x/tau + u(t) exactly across every breakpoint, one event at a time.

    'pulse': u is piecewise constant (sum of active rectangles, recomputed from the active set
    so it is exactly 0 when nothing is on). 'dirac': jumps of B a w/t_p at t_on, applied before
    a sample at the same instant (right-continuous state).
    """
    tau = params.tau
    s = np.asarray(sample_times, dtype=float)
    changes = []  # (time, order, kind, pulse); order: 0 = input changes, 1 = samples
    for i in range(sch.n_pulses):
        if method == "pulse":
            changes.append((sch.t_on[i], 0, "on", i))
            changes.append((sch.t_on[i] + sch.width[i], 0, "off", i))
        else:
            changes.append((sch.t_on[i], 0, "kick", i))
    changes += [(t, 1, "sample", j) for j, t in enumerate(s)]
    changes.sort(key=lambda c: (c[0], c[1]))
    x = np.zeros(params.n_states)
    out = np.zeros((s.size, params.n_states))
    active = set()
    t_now = None
    for t, _, kind, i in changes:
        if t_now is not None and t > t_now:
            h = t - t_now
            u = np.zeros(params.n_states)
            for j in sorted(active):
                u += params.B[:, sch.row[j]] * sch.amplitude[j] / sch.t_p
            x = np.exp(-h / tau) * x + tau * -np.expm1(-h / tau) * u
        t_now = t
        if kind == "on":
            active.add(i)
        elif kind == "off":
            active.discard(i)
        elif kind == "kick":
            x = x + params.B[:, sch.row[i]] * sch.amplitude[i] * sch.width[i] / sch.t_p
        else:
            out[i] = x
    return out


def eventssm_reference(params, sch):
    """EventSSM's discretize_zoh recurrence, literally, with D_k = t_{k+1} - t_k (their
    np.diff pairing; the last event held until the schedule's duration). Returns x_k per event."""
    tau = params.tau
    t = np.append(sch.t_on, max(sch.duration, sch.t_on[-1]))
    x = np.zeros(params.n_states)
    out = []
    for k in range(sch.n_pulses):
        delta = t[k + 1] - t[k]
        u = sch.amplitude[k] * sch.width[k] / sch.t_p / sch.t_p  # events' worth as a rate
        x = np.exp(-delta / tau) * x + tau * -np.expm1(-delta / tau) * params.B[:, sch.row[k]] * u
        out.append(x)
    return np.array(out)


# ---------------------------------------------------------------------------------------------
# Hypothesis strategies
# ---------------------------------------------------------------------------------------------

GRID = 1e-4  # onsets, widths and sample times often fall on this grid so they coincide exactly


@st.composite
def models(draw):
    n_inputs = draw(st.integers(1, 6))
    n_groups = draw(st.integers(1, 3))
    n_states = draw(st.integers(n_groups, 8))
    taus = draw(st.lists(st.floats(1e-3, 0.1), min_size=n_groups, max_size=n_groups))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    groups = np.concatenate([np.arange(n_groups),
                             rng.integers(0, n_groups, n_states - n_groups)])
    rng.shuffle(groups)  # groups interleaved, not only contiguous blocks
    return SSMParams(B=rng.normal(size=(n_states, n_inputs)), taus=taus, groups=groups)


time_value = st.one_of(st.integers(0, 400).map(lambda k: k * GRID), st.floats(0.0, 0.04))
width_value = st.one_of(st.just(T_P), st.integers(0, 30).map(lambda k: k * GRID),
                        st.floats(1e-7, 5e-3))


@st.composite
def streams(draw, n_inputs):
    pulses = draw(st.lists(st.tuples(st.integers(0, n_inputs - 1), time_value, width_value,
                                     st.floats(0.1, 4.0)), max_size=25))
    row, t_on, width, amp = (np.array(v) for v in zip(*pulses)) if pulses else ([],) * 4
    sch = make_schedule(row, t_on, width, amp, n_inputs)
    ends = list(np.asarray(sch.t_on) + np.asarray(sch.width))
    sample = st.one_of(time_value, st.floats(-1e-3, 0.1),
                       st.sampled_from(ends + list(sch.t_on)) if ends else time_value)
    samples = draw(st.lists(sample, min_size=1, max_size=12))  # unsorted, may repeat
    return sch, np.array(samples)


@st.composite
def model_and_stream(draw):
    params = draw(models())
    sch, s = draw(streams(params.n_inputs))
    return params, sch, s


FAST = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.mark.parametrize("method", ["pulse", "dirac"])
@FAST
@given(case=model_and_stream())
def test_vectorised_matches_loop_reference(method, case):
    params, sch, s = case
    x = simulate_ssm(params, sch, s, method=method)
    ref = loop_reference(params, sch, s, method)
    ref_abs = loop_reference(abs_params(params), sch, s, method)
    assert x.shape == (s.size, params.n_states) and x.dtype == np.float64
    assert_close_to_ref(x, ref, ref_abs)


@FAST
@given(case=model_and_stream())
def test_zoh_matches_eventssm_recurrence(case):
    params, sch, _ = case
    if sch.n_pulses == 0:
        return
    x = simulate_ssm(params, sch, "events", method="zoh")
    ref = eventssm_reference(params, sch)
    ref_abs = eventssm_reference(abs_params(params), sch)
    assert_close_to_ref(x, ref, ref_abs)


@FAST
@given(case=model_and_stream())
def test_zoh_between_events_is_the_held_input_solution(case):
    """Between events zoh is the exact ODE solution with each event's input held until the next
    event: the loop reference run on rectangles spanning those holds."""
    params, sch, s = case
    if sch.n_pulses == 0:
        return
    hold_end = np.append(sch.t_on[1:], max(sch.duration, sch.t_on[-1]))
    held = PulseSchedule(row=sch.row, t_on=sch.t_on, width=hold_end - sch.t_on,
                         amplitude=sch.amplitude * sch.width / sch.t_p, n_rows=sch.n_rows,
                         t_p=sch.t_p, t_rise=0.0, min_gap=0.0, duration=sch.duration)
    x = simulate_ssm(params, sch, s, method="zoh")
    ref = loop_reference(params, held, s, "pulse")
    ref_abs = loop_reference(abs_params(params), held, s, "pulse")
    # The reference's hold end t_on + (hold_end - t_on) may differ from hold_end by 1 ulp of t
    # (< 1e-17 s here): a change of rate * 1e-17 s, far below 1e-12 of any non-zero element.
    assert_close_to_ref(x, ref, ref_abs)


@settings(max_examples=30, deadline=None)
@given(case=model_and_stream())
def test_events_sampling_matches_explicit_times(case):
    params, sch, _ = case
    for method in METHODS:
        x = simulate_ssm(params, sch, "events", method=method)
        if method == "pulse":
            t = sch.t_on + sch.width
        elif method == "dirac":
            t = sch.t_on
        else:
            t = np.append(sch.t_on[1:], max(sch.duration, sch.t_on[-1])) if sch.n_pulses else []
        assert x.shape == (sch.n_pulses, params.n_states)
        np.testing.assert_array_equal(x, simulate_ssm(params, sch, np.asarray(t), method=method))


# ---------------------------------------------------------------------------------------------
# Closed forms
# ---------------------------------------------------------------------------------------------

def two_group_model():
    B = np.array([[0.7, -1.3], [2.0, 0.5], [-0.4, 1.1], [1.5, -0.2]])
    return SSMParams(B=B, taus=[5e-3, 40e-3], groups=[0, 1, 1, 0])


def test_single_pulse_then_decay_matches_closed_form():
    params = two_group_model()
    t_on, w, a, r = 2e-3, 300e-6, 1.7, 1
    sch = make_schedule([r], [t_on], [w], [a], 2, duration=0.1)
    s = np.array([0.0, t_on, t_on + 0.4 * w, t_on + w, 0.01, 0.05, 0.1])
    x = simulate_ssm(params, sch, s)
    tau = params.tau
    expected = np.zeros_like(x)
    during = (s > t_on) & (s < t_on + w)
    after = s >= t_on + w
    expected[during] = params.B[:, r] * a * (tau / T_P) * -np.expm1(-(s[during, None] - t_on) / tau)
    expected[after] = (params.B[:, r] * a * (tau / T_P) * -np.expm1(-w / tau)
                       * np.exp(-(s[after, None] - t_on - w) / tau))
    # closed form and algorithm use the same exp/expm1 calls: agreement to a few ulp
    np.testing.assert_allclose(x, expected, rtol=1e-13, atol=0)
    assert np.all(x[:2] == 0.0)  # nothing before or at the onset


def test_single_dirac_event_matches_b_exp():
    params = two_group_model()
    t0 = 3e-3
    sch = make_schedule([0], [t0], [T_P], [1.0], 2, duration=0.1)  # one event: a = 1, w = t_p
    s = np.array([t0 - 1e-9, t0, t0 + 1e-3, 0.05])
    x = simulate_ssm(params, sch, s, method="dirac")
    expected = params.B[:, 0] * np.exp(-(s[:, None] - t0) / params.tau)
    expected[0] = 0.0
    np.testing.assert_allclose(x, expected, rtol=1e-14, atol=0)  # one exp each: ~1 ulp


def test_shared_decays_are_shared():
    params = random_ssm(12, 30, [4e-3, 15e-3, 60e-3], seed=3)
    rng = np.random.default_rng(7)
    n = 200
    sch = make_schedule(rng.integers(0, 12, n), rng.uniform(0, 0.05, n), np.full(n, T_P),
                        rng.uniform(0.5, 2, n), 12, duration=0.2)
    t1 = float(np.max(sch.t_on + sch.width)) + 1e-3
    t2 = t1 + 7e-3
    x = simulate_ssm(params, sch, [t1, t2])
    ratio = x[1] / x[0]
    for k, tau in enumerate(params.taus):
        g = params.groups == k
        # after the last pulse each state only decays: ratio exact up to a few roundings
        np.testing.assert_allclose(ratio[g], np.exp(-(t2 - t1) / tau), rtol=1e-12)
    assert len({round(float(v), 6) for v in ratio}) == 3  # three distinct decays, one per group


def test_pulse_converges_to_dirac_as_width_shrinks():
    params = two_group_model()
    rng = np.random.default_rng(11)
    n = 40
    rows, t_on, amp = rng.integers(0, 2, n), rng.uniform(0, 0.02, n), rng.uniform(0.5, 2, n)
    s = np.array([0.03, 0.05, 0.08])
    gaps = []
    for w in [1e-3, 1e-4, 1e-5, 1e-6, 1e-7]:
        sch = make_schedule(rows, t_on, np.full(n, w), amp, 2, duration=0.08)
        xp = simulate_ssm(params, sch, s, method="pulse")
        xd = simulate_ssm(params, sch, s, method="dirac")
        # after every pulse has ended, each pulse's response is (tau/w)(e^{w/tau} - 1) times its
        # impulse response, for every pulse alike: the same factor holds for the sum
        factor = params.tau / w * np.expm1(w / params.tau)
        xd_abs = simulate_ssm(abs_params(params), sch, s, method="dirac")
        # the simulated width is fl(t_on + w) - t_on, off from w by <= 1 ulp of t_on: a relative
        # change of eps * t_on / w (3e-11 at w = 1e-7) that the factor does not see
        rel = 1e-12 + 2 * np.finfo(float).eps * t_on.max() / w
        assert_close_to_ref(xp, factor * xd, factor * xd_abs, rel=rel)
        gap = np.max(np.abs(xp - xd) / np.abs(xd))
        assert gap <= w / params.taus.min()  # first order: factor - 1 ~ w / (2 tau)
        gaps.append(gap)
    assert all(b < a / 5 for a, b in zip(gaps, gaps[1:]))  # 10x smaller width, ~10x smaller gap


def test_zoh_simultaneous_events_add_nothing_but_the_last():
    params = two_group_model()
    sch = make_schedule([0, 1, 0], [1e-3, 1e-3, 4e-3], [T_P] * 3, [1.0, 1.0, 1.0], 2,
                        duration=6e-3)
    x = simulate_ssm(params, sch, [4e-3], method="zoh")
    # rows sorted (0, 1) at 1 ms: row 0 is held for 0 s, row 1 for 3 ms (EventSSM's Δ = 0)
    tau = params.tau
    expected = params.B[:, 1] * (tau / T_P) * -np.expm1(-3e-3 / tau)
    np.testing.assert_allclose(x[0], expected, rtol=1e-13)


def test_long_stream_and_sparse_path_match_direct_kernel():
    """100k pulses, N=64, K=4, M=50 (the issue's benchmark case; run time is measured in the
    report, not asserted). Checked against a direct (samples x pulses) kernel at 8 instants."""
    rng = np.random.default_rng(5)
    n, n_in, dur = 100_000, 128, 10.0
    row = rng.integers(0, n_in, n)
    t_on = np.sort(rng.uniform(0, dur - 1e-3, n))
    width = np.where(rng.random(n) < 0.1, 3 * T_P, T_P)
    sch = make_schedule(row, t_on, width, rng.uniform(0.5, 2, n), n_in, duration=dur)
    params = random_ssm(n_in, 64, [5e-3, 20e-3, 50e-3, 200e-3], seed=2)
    s = default_sample_times(dur, 50)
    x = simulate_ssm(params, sch, s)
    assert x.shape == (50, 64) and np.all(np.isfinite(x))
    pick = np.array([0, 7, 19, 23, 31, 40, 48, 49])
    sp_ = s[pick]
    direct = np.zeros((pick.size, 64))
    direct_abs = np.zeros_like(direct)
    end = sch.t_on + sch.width
    for k, tau in enumerate(params.taus):
        lag_on = sp_[:, None] - sch.t_on[None, :]
        lag_end = sp_[:, None] - end[None, :]
        after = (tau / T_P) * -np.expm1(-sch.width / tau) * np.exp(-np.maximum(lag_end, 0) / tau)
        during = (tau / T_P) * -np.expm1(-np.maximum(lag_on, 0) / tau)
        kern = np.where(lag_end >= 0, after, np.where(lag_on > 0, during, 0.0))
        kern *= sch.amplitude
        g = params.groups == k
        direct[:, g] = kern @ params.B[g][:, sch.row].T
        direct_abs[:, g] = kern @ np.abs(params.B[g][:, sch.row]).T
    # both sides sum ~1e5 terms (pairwise in BLAS / bincount): error ~1e-13 of the sum of |terms|
    assert_close_to_ref(x[pick], direct, direct_abs, rel=1e-11)

    # 'events' sampling on a shorter piece exercises the two-level scan (M > 128) and the sparse
    # (sample x row) table (M * C_in > 2^20); compare with the dense path at explicit instants.
    part = make_schedule(row[:9000], t_on[:9000], width[:9000], sch.amplitude[:9000], n_in)
    xe = simulate_ssm(params, part, "events")
    idx = np.array([0, 1, 2, 500, 4000, 8998, 8999])
    xt = simulate_ssm(params, part, (part.t_on + part.width)[idx])
    xt_abs = simulate_ssm(abs_params(params), part, (part.t_on + part.width)[idx])
    assert_close_to_ref(xe[idx], xt, xt_abs)


def test_two_level_scan_matches_loop_reference():
    params = random_ssm(5, 7, [2e-3, 9e-3], seed=4)
    rng = np.random.default_rng(9)
    n = 400  # 'events' gives 400 samples: blocks of 128 plus a carried scan over block ends
    sch = make_schedule(rng.integers(0, 5, n), rng.uniform(0, 0.1, n),
                        rng.choice([T_P, 2 * T_P, 1e-6], n), rng.uniform(0.2, 3, n), 5)
    s = sch.t_on + sch.width
    x = simulate_ssm(params, sch, "events")
    assert_close_to_ref(x, loop_reference(params, sch, s, "pulse"),
                        loop_reference(abs_params(params), sch, s, "pulse"))


def test_empty_schedule_and_no_samples():
    params = two_group_model()
    empty = make_schedule([], [], [], [], 2, duration=0.01)
    assert np.all(simulate_ssm(params, empty, [0.0, 0.01]) == 0)
    assert simulate_ssm(params, empty, "events").shape == (0, 4)
    sch = make_schedule([0], [1e-3], [T_P], [1.0], 2, duration=0.01)
    assert simulate_ssm(params, sch, np.zeros(0)).shape == (0, 4)
    assert simulate_ssm(params, sch).shape == (10, 4)  # default grid


# ---------------------------------------------------------------------------------------------
# Parameters, files, helpers
# ---------------------------------------------------------------------------------------------

def test_params_properties_and_readonly():
    params = SSMParams(B=np.ones((3, 2)), taus=[1e-2, 2e-2], groups=[1, 0, 1], C=np.ones((1, 3)))
    assert (params.n_states, params.n_inputs, params.n_groups) == (3, 2, 2)
    np.testing.assert_array_equal(params.tau, [2e-2, 1e-2, 2e-2])
    with pytest.raises(ValueError):
        params.B[0, 0] = 5.0
    single = SSMParams(B=np.ones((3, 2)), taus=0.01)  # one group: groups may be omitted
    np.testing.assert_array_equal(single.groups, [0, 0, 0])


def test_output_is_c_times_states():
    rng = np.random.default_rng(0)
    C = rng.normal(size=(2, 4))
    params = SSMParams(B=rng.normal(size=(4, 3)), taus=[1e-2], groups=np.zeros(4, int), C=C)
    x = rng.normal(size=(5, 4))
    np.testing.assert_allclose(output(params, x), np.einsum("on,mn->mo", C, x), rtol=1e-14)
    with pytest.raises(ConfigError, match="'C'"):
        output(two_group_model(), x)


BAD_PARAMS = [
    (dict(B=np.ones(3), taus=[1.0], groups=None), "'B'"),
    (dict(B=np.full((2, 2), np.nan), taus=[1.0], groups=None), "'B'.*non-finite"),
    (dict(B=np.ones((2, 2)), taus=[1.0, -0.5], groups=[0, 1]), "'taus' index 1"),
    (dict(B=np.ones((2, 2)), taus=[1.0, 0.0], groups=[0, 1]), "'taus' index 1"),
    (dict(B=np.ones((2, 2)), taus=[1.0, 2.0], groups=[0, 2]), "'groups' index 1"),
    (dict(B=np.ones((2, 2)), taus=[1.0, 2.0], groups=[0, 0.5]), "'groups' index 1"),
    (dict(B=np.ones((2, 2)), taus=[1.0, 2.0], groups=[0, 1, 1]), "'groups' has 3"),
    (dict(B=np.ones((2, 2)), taus=[1.0, 2.0], groups=None), "'groups' is missing"),
    (dict(B=np.ones((2, 2)), taus=[1.0], groups=None, C=np.ones((1, 3))), "'C'"),
    (dict(B=np.ones((2, 2)), taus=[1.0], groups=None, D=np.ones((1, 3))), "'D'"),
]


@pytest.mark.parametrize("kwargs,match", BAD_PARAMS)
def test_bad_params_raise_one_line_config_error(kwargs, match):
    with pytest.raises(ConfigError, match=match) as info:
        SSMParams(**kwargs)
    assert "\n" not in str(info.value) and str(info.value).startswith("SSMParams: field")


def test_simulate_rejects_bad_input():
    params = two_group_model()
    sch = make_schedule([0, 1], [1e-3, 2e-3], [T_P, T_P], [1, 1], 2)
    with pytest.raises(InputError, match="method"):
        simulate_ssm(params, sch, [0.01], method="euler")
    with pytest.raises(InputError, match="sample_times"):
        simulate_ssm(params, sch, [0.0, np.nan])
    with pytest.raises(InputError, match="sample_times"):
        simulate_ssm(params, sch, "ends")
    wide = make_schedule([0, 3], [1e-3, 2e-3], [T_P, T_P], [1, 1], 4)
    with pytest.raises(InputError, match=r"'row' index 1 is 3 .* 2 inputs"):
        simulate_ssm(params, wide, [0.01])
    # a malformed schedule is refused where it is made (PulseSchedule validates itself)
    with pytest.raises(InputError, match="'t_on'"):
        PulseSchedule(row=np.array([0, 1]), t_on=np.array([0.0]), width=np.array([T_P]),
                      amplitude=np.array([1.0]), n_rows=2, t_p=T_P, t_rise=0, min_gap=0,
                      duration=1.0)


def test_random_ssm_scale_rule_groups_and_seed():
    a = random_ssm(64, 2000, [1e-3, 1e-2, 1e-1], seed=0)
    b = random_ssm(64, 2000, [1e-3, 1e-2, 1e-1], seed=0)
    np.testing.assert_array_equal(a.B, b.B)
    assert not np.array_equal(a.B, random_ssm(64, 2000, [1e-3, 1e-2, 1e-1], seed=1).B)
    # E|row|^2 = 1; the mean over 2000 rows has std sqrt(2/64)/sqrt(2000) = 0.004 -> 5 sigma
    assert abs(np.mean(np.sum(a.B**2, axis=1)) - 1) < 0.02
    # contiguous blocks, sizes differing by at most one
    assert np.all(np.diff(a.groups) >= 0) and np.ptp(np.bincount(a.groups)) <= 1
    sparse = random_ssm(64, 2000, [1e-2], seed=0, init="sparse", density=0.25)
    # non-zero fraction: binomial over 128000 entries, std 0.0012 -> 0.01 is > 8 sigma
    assert abs(np.mean(sparse.B != 0) - 0.25) < 0.01
    # row norm^2 variance (3 - p)/(p C) = 0.17 per row -> mean over 2000 rows has std 0.009
    assert abs(np.mean(np.sum(sparse.B**2, axis=1)) - 1) < 0.05
    assert np.std(random_ssm(16, 4000, [1e-2], seed=0, scale=0.1).B) == pytest.approx(0.1, rel=0.02)
    with pytest.raises(ConfigError, match="n_states"):
        random_ssm(4, 2, [1e-3, 1e-2, 1e-1], seed=0)
    with pytest.raises(ConfigError, match="init"):
        random_ssm(4, 4, [1e-3], seed=0, init="orthogonal")


def test_save_load_round_trip_and_atomic(tmp_path):
    rng = np.random.default_rng(0)
    params = SSMParams(B=rng.normal(size=(5, 3)), taus=[1e-3, 5e-2], groups=[0, 1, 1, 0, 1],
                       C=rng.normal(size=(2, 5)), D=rng.normal(size=(2, 3)))
    path = tmp_path / "model.npz"
    save_ssm(path, params)
    assert sorted(os.listdir(tmp_path)) == ["model.npz"]  # no temp file left behind
    back = load_ssm(path)
    for key in ("B", "taus", "groups", "C", "D"):
        np.testing.assert_array_equal(getattr(back, key), getattr(params, key))
    plain = random_ssm(3, 4, [1e-2], seed=0)
    save_ssm(path, plain)  # overwrite in place
    again = load_ssm(path)
    assert again.C is None and again.D is None
    np.testing.assert_array_equal(again.B, plain.B)
    with pytest.raises(InputError, match="does not exist"):
        save_ssm(tmp_path / "missing" / "m.npz", plain)


def _write_npz(path, **arrays):
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize("arrays,match", [
    (dict(taus=[1e-2], groups=[0, 0]), "key 'B' is missing"),
    (dict(B=np.ones((2, 2)), groups=[0, 0]), "key 'taus' is missing"),
    (dict(B=np.ones((2, 2)), taus=[1e-2, 2e-2]), "key 'groups' is missing"),
    (dict(B=np.ones((2, 2)), taus=[1e-2], groups=[0, 0, 0]), "key 'groups' has 3"),
    (dict(B=np.ones((2, 2, 1)), taus=[1e-2], groups=[0, 0]), "key 'B' has shape"),
    (dict(B=np.ones((2, 2)), taus=[-1e-2], groups=[0, 0]), "key 'taus' index 0 is -0.01"),
    (dict(B=np.array([[1.0, np.inf], [0, 0]]), taus=[1e-2], groups=[0, 0]),
     r"key 'B' has a non-finite value .* index \(0, 1\)"),
    (dict(B=np.ones((2, 2)), taus=[1e-2], groups=[0, 0], C=np.ones((1, 5))), "key 'C'"),
])
def test_load_errors_name_file_and_key(tmp_path, arrays, match):
    path = _write_npz(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ConfigError, match=match) as info:
        load_ssm(path)
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith(str(path))


def test_load_unreadable_files(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        load_ssm(tmp_path / "nope.npz")
    good = tmp_path / "good.npz"
    save_ssm(good, random_ssm(4, 6, [1e-2, 1e-1], seed=0))
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ConfigError) as info:
        load_ssm(truncated)
    assert str(info.value).startswith(str(truncated)) and "\n" not in str(info.value)
    npy = tmp_path / "b.npy"
    np.save(npy, np.ones((2, 2)))
    with pytest.raises(ConfigError, match="single array"):
        load_ssm(npy)
    text = tmp_path / "notes.npz"
    text.write_text("not a zip\n")
    with pytest.raises(CimspiceError, match="not a readable"):
        load_ssm(text)


def test_default_sample_times():
    s = default_sample_times(0.37, 10)
    assert s.shape == (10,) and s[-1] == 0.37 and s[0] > 0
    np.testing.assert_allclose(np.diff(s), 0.037, rtol=1e-12)
    assert default_sample_times(2.0, 1).tolist() == [2.0]
    with pytest.raises(InputError, match="duration"):
        default_sample_times(0.0)
    with pytest.raises(InputError, match="m is"):
        default_sample_times(1.0, 0)


def test_software_reference_is_the_dirac_sum_over_raw_events():
    """The software reference: x_n(t) = sum over raw events k with t_k <= t of
    B[n, c_k] exp(-(t - t_k) / tau_n), computed here with a plain loop from the events themselves
    (no schedule, no merging), equals what build() stores; the pulse SSM of the merged schedule
    differs from it (merging and pulse width are what 'schedule' NRMSE reports)."""
    import cimspice
    from cimspice.datasets import audio_stream
    from cimspice.schedule import input_events

    sample = audio_stream(6, 80, 30_000, seed=4, burst=6)
    cfg = cimspice.Config().replace(ssm={"n_states": 4, "taus": [0.005, 0.02]})
    prep = cimspice.build(sample, cfg)
    t_us, c, _ = input_events(sample, cfg)
    t_ev = t_us * 1e-6
    tau = prep.model.tau
    ref = np.zeros_like(prep.software)
    for m, t in enumerate(prep.sample_times):
        for tk, ck in zip(t_ev, c):
            if tk <= t:
                ref[m] += prep.model.B[:, ck] * np.exp(-(t - tk) / tau)
    np.testing.assert_allclose(prep.software, ref, rtol=1e-10, atol=1e-12)
    assert prep.schedule.n_merged > 0   # the burst and close events were merged ...
    assert not np.allclose(prep.ideal, prep.software, rtol=1e-3)   # ... so the two differ
