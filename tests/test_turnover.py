"""Tests for bonebayes.physiology.turnover: the closed-form segment map against a numerical ODE solver,
the PyTensor (Toeplitz) chaining against NumPy, and property tests of the exact solution."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy.integrate import quad, solve_ivp

from bonebayes.physiology.backend import NUMPY, get_ops
from bonebayes.physiology.turnover import (
    TurnoverRates,
    TurnoverState,
    chain,
    conv2,
    conv3,
    derivative,
    phi1,
    propagate,
    reference_state,
    step_coefficients,
)

pytestmark = pytest.mark.filterwarnings("ignore:PyTensor could not link to a BLAS")

N_SITES = 2

# --------------------------------------------------------------------------- helpers


def rhs(t: float, y: np.ndarray, S_R: np.ndarray, S_F: np.ndarray, rates: TurnoverRates) -> np.ndarray:
    """Independent right-hand side for N units, y = [C (N), B (N), m (N*S)]."""
    k_C, k_B, k_M, lam = rates
    n = S_R.shape[0]
    C, B, m = y[:n], y[n:2 * n], y[2 * n:].reshape(n, -1)
    dC = k_C * (S_R - C)
    dB = k_B * (S_F * C - B)
    dm = k_M * (B - C)[:, None] - lam * m
    return np.concatenate([dC, dB, dm.ravel()])


def ivp_path(state: TurnoverState, S_R: np.ndarray, S_F: np.ndarray, hs: np.ndarray,
             rates: TurnoverRates) -> TurnoverState:
    """Integrate segment by segment with DOP853; returns states at the segment ends (J, ...)."""
    n = np.shape(state.C)[0]
    y = np.concatenate([state.C, state.B, np.asarray(state.m).ravel()])
    Cs, Bs, ms = [], [], []
    for j, h in enumerate(hs):
        if h > 0:
            sol = solve_ivp(rhs, (0.0, float(h)), y, method="DOP853", rtol=1e-11, atol=1e-12,
                            args=(S_R[j], S_F[j], rates))
            assert sol.success
            y = sol.y[:, -1]
        Cs.append(y[:n].copy())
        Bs.append(y[n:2 * n].copy())
        ms.append(y[2 * n:].reshape(n, -1).copy())
    return TurnoverState(np.array(Cs), np.array(Bs), np.array(ms))


def assert_states_close(a: TurnoverState, b: TurnoverState, atol: float, rtol: float = 0.0) -> None:
    for name, x, y in zip(("C", "B", "m"), a, b):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), atol=atol, rtol=rtol, err_msg=name)


def make_rates(k_C: float, k_B: float, lam: tuple[float, float], k_M: tuple[float, float],
               n_units: int | None = None) -> TurnoverRates:
    kM = np.asarray(k_M, dtype=float)
    if n_units is not None:  # per-unit k_M (N, S) with some spread
        kM = kM[None, :] * np.linspace(0.5, 1.5, n_units)[:, None]
    return TurnoverRates(np.float64(k_C), np.float64(k_B), kM, np.asarray(lam, dtype=float))


RATE_SETS = {
    "generic": (2.0, 0.5, (0.01, 0.003), (0.02, 0.01)),
    "kC_eq_kB": (0.8, 0.8, (0.05, 0.01), (0.03, 0.02)),
    "kB_eq_lam": (3.0, 0.05, (0.05, 0.02), (0.02, 0.04)),
    "kC_eq_lam": (0.07, 0.6, (0.07, 0.001), (0.05, 0.01)),
    "all_within_1e-7": (0.3, 0.3 + 5e-8, (0.3 - 4e-8, 0.3 + 1e-7), (0.02, 0.03)),
    "all_equal": (0.25, 0.25, (0.25, 0.25), (0.01, 0.02)),
    "very_different": (20.0, 0.2, (1e-4, 5e-3), (0.01, 0.002)),
    "slow_resorption": (0.02, 4.0, (0.3, 1e-3), (0.05, 0.01)),
}

# Piecewise-constant stimuli for 4 units over 8 segments: a drug started, stopped and restarted, an anabolic,
# two drugs (different S_R/S_F levels per segment) and a hormone-driven high-turnover unit.
SEG_H = np.array([3.0, 0.5, 6.0, 2.25, 0.0, 4.0, 1.0, 7.5])
SEG_SR = np.array([
    [1.0, 1.0, 1.0, 1.8],
    [0.3, 1.0, 0.3, 1.8],  # start antiresorptive (units 0, 2)
    [0.3, 1.0, 0.4, 1.8],
    [1.0, 1.0, 0.4, 1.8],  # stop (unit 0)
    [1.0, 1.0, 0.4, 1.8],  # zero-length segment
    [0.25, 1.0, 0.2, 2.3],  # restart (unit 0); second drug (unit 2)
    [0.25, 1.2, 0.2, 2.3],
    [1.0, 1.2, 1.0, 1.0],
])
SEG_SF = np.array([
    [1.0, 1.0, 1.0, 0.8],
    [1.0, 2.0, 1.0, 0.8],  # anabolic on (unit 1)
    [1.0, 2.0, 1.6, 0.8],  # anabolic added to the antiresorptive (unit 2)
    [1.0, 1.0, 1.6, 0.8],
    [1.0, 1.0, 1.6, 0.8],
    [1.0, 2.5, 1.3, 0.7],
    [1.0, 2.5, 1.3, 0.7],
    [1.0, 1.0, 1.0, 1.0],
])
N_UNITS = SEG_SR.shape[1]


def start_state(n: int = N_UNITS) -> TurnoverState:
    """A non-reference starting state (exercises the C, B and m terms of the map)."""
    C = np.linspace(0.7, 1.6, n)
    B = np.linspace(1.3, 0.8, n)
    m = np.stack([np.linspace(-0.08, 0.03, n), np.linspace(0.02, -0.05, n)], axis=-1)
    return TurnoverState(C, B, m)


# --------------------------------------------------------------------------- closed form vs solve_ivp


@pytest.mark.parametrize("rate_name", list(RATE_SETS))
@pytest.mark.parametrize("per_unit_kM", [False, True])
def test_chain_per_segment_h_matches_solve_ivp(rate_name: str, per_unit_kM: bool) -> None:
    rates = make_rates(*RATE_SETS[rate_name], n_units=N_UNITS if per_unit_kM else None)
    for init in (reference_state((N_UNITS,), N_SITES), start_state()):
        exact = chain(init, SEG_SR, SEG_SF, SEG_H, rates)
        ref = ivp_path(init, SEG_SR, SEG_SF, SEG_H, rates)
        assert exact.C.shape == (len(SEG_H), N_UNITS)
        assert exact.m.shape == (len(SEG_H), N_UNITS, N_SITES)
        assert_states_close(exact, ref, atol=1e-6)


@pytest.mark.parametrize("rate_name", list(RATE_SETS))
def test_chain_uniform_h_matches_solve_ivp(rate_name: str) -> None:
    rates = make_rates(*RATE_SETS[rate_name], n_units=N_UNITS)
    h = 1.75
    init = start_state()
    exact = chain(init, SEG_SR, SEG_SF, h, rates)
    ref = ivp_path(init, SEG_SR, SEG_SF, np.full(len(SEG_SR), h), rates)
    assert_states_close(exact, ref, atol=1e-6)
    # the array form with all lengths equal is the same computation
    as_array = chain(init, SEG_SR, SEG_SF, np.full(len(SEG_SR), h), rates)
    assert_states_close(exact, as_array, atol=1e-13, rtol=1e-12)
    # precomputed coefficients give the same result
    pre = chain(init, SEG_SR, SEG_SF, h, rates, coefficients=step_coefficients(rates, h))
    assert_states_close(exact, pre, atol=0.0)


@pytest.mark.parametrize("rate_name", list(RATE_SETS))
def test_propagate_one_segment_at_a_time_matches_solve_ivp(rate_name: str) -> None:
    rates = make_rates(*RATE_SETS[rate_name])
    state = start_state()
    ref = ivp_path(state, SEG_SR, SEG_SF, SEG_H, rates)
    for j, h in enumerate(SEG_H):
        state = propagate(state, SEG_SR[j], SEG_SF[j], h, rates)
        assert_states_close(state, TurnoverState(ref.C[j], ref.B[j], ref.m[j]), atol=1e-6)


def test_zero_length_segment_is_identity() -> None:
    rates = make_rates(*RATE_SETS["generic"])
    s0 = start_state()
    s1 = propagate(s0, SEG_SR[1], SEG_SF[1], 0.0, rates)
    assert_states_close(s1, s0, atol=1e-15)


def test_derivative_matches_independent_rhs() -> None:
    rates = make_rates(*RATE_SETS["generic"], n_units=N_UNITS)
    s = start_state()
    d = derivative(s, SEG_SR[2], SEG_SF[2], rates)
    y = np.concatenate([s.C, s.B, s.m.ravel()])
    ref = rhs(0.0, y, SEG_SR[2], SEG_SF[2], rates)
    np.testing.assert_allclose(np.concatenate([d.C, d.B, d.m.ravel()]), ref, rtol=1e-14)


def test_long_horizon_reaches_steady_state() -> None:
    """With constant stimuli the state tends to C = S_R, B = S_F S_R, m = k_M (B - C) / lam."""
    rates = make_rates(0.9, 0.4, (0.05, 0.2), (0.02, 0.03))
    S_R, S_F = np.array([1.7, 0.4]), np.array([0.8, 1.9])
    s = propagate(start_state(2), S_R, S_F, 2000.0, rates)
    np.testing.assert_allclose(s.C, S_R, rtol=1e-12)
    np.testing.assert_allclose(s.B, S_F * S_R, rtol=1e-12)
    np.testing.assert_allclose(s.m, rates.k_M * (S_F * S_R - S_R)[:, None] / rates.lam, rtol=1e-10)


# --------------------------------------------------------------------------- PyTensor (Toeplitz) path

J_PT, N_PT, H_PT = 9, 3, 0.8


@pytest.fixture(scope="module")
def pytensor_chain():
    """Compile the symbolic uniform-h chain once (FAST_COMPILE): outputs, a scalar objective, its k_C grad."""
    pytensor = pytest.importorskip("pytensor")
    import pytensor.tensor as pt

    ops = get_ops("pytensor")
    C0, B0 = pt.dvector("C0"), pt.dvector("B0")
    m0 = pt.dmatrix("m0")
    S_R, S_F = pt.dmatrix("S_R"), pt.dmatrix("S_F")
    k_C, k_B = pt.dscalar("k_C"), pt.dscalar("k_B")
    k_M, lam = pt.dmatrix("k_M"), pt.dvector("lam")
    out = chain(TurnoverState(C0, B0, m0), S_R, S_F, H_PT, TurnoverRates(k_C, k_B, k_M, lam), ops)
    obj = objective(out, pt)
    grad = pytensor.grad(obj, k_C)
    fn = pytensor.function([C0, B0, m0, S_R, S_F, k_C, k_B, k_M, lam], [out.C, out.B, out.m, obj, grad],
                           mode="FAST_COMPILE")
    return fn


def objective(out: TurnoverState, lib) -> object:
    """A scalar function of all outputs (same formula for NumPy and PyTensor)."""
    w = np.array([1.0, -2.0])
    return lib.sum(out.C ** 2) + lib.sum(lib.log(out.B)) + 30.0 * lib.sum(out.m * w)


def pt_inputs(rng: np.random.Generator, rates: TurnoverRates):
    init = TurnoverState(rng.uniform(0.6, 1.6, N_PT), rng.uniform(0.6, 1.6, N_PT),
                         rng.uniform(-0.1, 0.05, (N_PT, N_SITES)))
    S_R = rng.uniform(0.2, 2.5, (J_PT, N_PT))
    S_F = rng.uniform(0.5, 2.5, (J_PT, N_PT))
    return init, S_R, S_F


PT_RATES = ["generic", "kC_eq_kB", "kB_eq_lam", "kC_eq_lam", "all_within_1e-7", "all_equal", "very_different"]

CONV2_TIE_BUG = (
    "turnover.conv2 (lines 53-54): with PyTensor autodiff, d conv2(a, b, h) / d a is twice the true value "
    "when a == b exactly (minimum() sends the full gradient to both tied arguments and abs'(0) = 0); e.g. "
    "a = b = 0.5, h = 2: grad -1.4715 (= -h^2 e^{-ah}), true -0.7358 (= -h^2/2 e^{-ah}). Hits "
    "b_B = k_B conv2(k_C, k_B, h) when k_C == k_B and d_CL = conv2(k_C, lam, h) when k_C == lam"
)


def _grad_case(name: str):
    exact_tie_with_k_C = name in ("kC_eq_kB", "kC_eq_lam", "all_equal")
    marks = []
    return pytest.param(name, marks=marks)


def test_pytensor_chain_uses_toeplitz_not_scan(pytensor_chain) -> None:
    from pytensor.scan.op import Scan

    assert not any(isinstance(node.op, Scan) for node in pytensor_chain.maker.fgraph.apply_nodes)


@pytest.mark.parametrize("rate_name", PT_RATES)
def test_pytensor_chain_equals_numpy(pytensor_chain, rate_name: str) -> None:
    rng = np.random.default_rng(PT_RATES.index(rate_name))
    rates = make_rates(*RATE_SETS[rate_name], n_units=N_PT)
    init, S_R, S_F = pt_inputs(rng, rates)
    ref = chain(init, S_R, S_F, H_PT, rates)
    C, B, m, obj, _ = pytensor_chain(init.C, init.B, init.m, S_R, S_F, rates.k_C, rates.k_B, rates.k_M,
                                     rates.lam)
    assert_states_close(TurnoverState(C, B, m), ref, atol=1e-10)
    np.testing.assert_allclose(obj, objective(ref, np), rtol=1e-10)


@pytest.mark.parametrize("rate_name", [_grad_case(n) for n in PT_RATES])
def test_pytensor_gradient_wrt_k_C_matches_finite_difference(pytensor_chain, rate_name: str) -> None:
    rng = np.random.default_rng(7)
    rates = make_rates(*RATE_SETS[rate_name], n_units=N_PT)
    init, S_R, S_F = pt_inputs(rng, rates)
    *_, grad = pytensor_chain(init.C, init.B, init.m, S_R, S_F, rates.k_C, rates.k_B, rates.k_M, rates.lam)

    def f(k_C: float) -> float:
        return float(objective(chain(init, S_R, S_F, H_PT, rates._replace(k_C=np.float64(k_C))), np))

    eps = 1e-6 * float(rates.k_C)
    fd = (f(rates.k_C + eps) - f(rates.k_C - eps)) / (2 * eps)
    np.testing.assert_allclose(grad, fd, rtol=2e-6, atol=1e-7)


# --------------------------------------------------------------------------- property tests

pos_rate = st.floats(min_value=1e-3, max_value=30.0)
slow_rate = st.floats(min_value=1e-4, max_value=1.0)


@st.composite
def rates_st(draw) -> TurnoverRates:
    """Rates, often with coincident or nearly coincident values (the numerically delicate cases)."""
    k_C = draw(pos_rate)
    k_B = draw(st.one_of(pos_rate, st.just(k_C), st.builds(lambda e: k_C * (1 + e),
                                                           st.floats(-1e-7, 1e-7))))
    lam = []
    for _ in range(N_SITES):
        lam.append(draw(st.one_of(slow_rate, st.just(k_B), st.just(k_C),
                                  st.builds(lambda e: k_B * (1 + e), st.floats(-1e-7, 1e-7)))))
    k_M = draw(st.lists(st.floats(1e-3, 0.2), min_size=N_SITES, max_size=N_SITES))
    return TurnoverRates(np.float64(k_C), np.float64(k_B), np.array(k_M), np.array(lam))


stim = st.floats(min_value=0.05, max_value=5.0)
seg_h = st.floats(min_value=0.0, max_value=60.0)


@settings(max_examples=60, deadline=None)
@given(rates=rates_st(), hs=st.lists(seg_h, min_size=1, max_size=8), h_uniform=st.floats(0.01, 40.0))
def test_reference_is_a_fixed_point(rates: TurnoverRates, hs: list[float], h_uniform: float) -> None:
    n = 3
    ref = reference_state((n,), N_SITES)
    ones = np.ones((len(hs), n))
    for h in (np.array(hs), h_uniform):
        out = chain(ref, ones, ones, h, rates)
        np.testing.assert_allclose(out.C, 1.0, rtol=0, atol=1e-12)
        np.testing.assert_allclose(out.B, 1.0, rtol=0, atol=1e-12)
        np.testing.assert_allclose(out.m, 0.0, rtol=0, atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(rates=rates_st(), h=st.floats(0.01, 60.0), frac=st.floats(0.0, 1.0), S_R=stim, S_F=stim,
       C0=st.floats(0.2, 3.0), B0=st.floats(0.2, 3.0), m0=st.floats(-0.3, 0.3))
def test_splitting_a_segment_gives_the_same_state(rates, h, frac, S_R, S_F, C0, B0, m0) -> None:
    s0 = TurnoverState(np.array([C0]), np.array([B0]), np.array([[m0, -m0 / 2]]))
    a = h * frac
    whole = propagate(s0, S_R, S_F, h, rates)
    split = propagate(propagate(s0, S_R, S_F, a, rates), S_R, S_F, h - a, rates)
    # and through chain with a two-segment array of lengths
    chained = chain(s0, np.full((2, 1), S_R), np.full((2, 1), S_F), np.array([a, h - a]), rates)
    for x, y, z in zip(whole, split, chained):
        scale = max(1.0, float(np.max(np.abs(x))))
        np.testing.assert_allclose(y, x, rtol=0, atol=1e-10 * scale)
        np.testing.assert_allclose(z[-1], x, rtol=0, atol=1e-10 * scale)


@settings(max_examples=60, deadline=None)
@given(rates=rates_st(), h=st.floats(0.05, 60.0), up=st.floats(1.05, 5.0), down=st.floats(0.05, 0.95))
def test_signs_of_the_response(rates: TurnoverRates, h: float, up: float, down: float) -> None:
    ref = reference_state((1,), N_SITES)
    # more resorption: C rises above 1, formation lags, BMD falls
    s = propagate(ref, up, 1.0, h, rates)
    assert s.C[0] > 1.0
    assert s.B[0] >= 1.0
    assert signed(s.m, -1.0)
    # antiresorptive: C below 1, BMD gains
    s = propagate(ref, down, 1.0, h, rates)
    assert s.C[0] < 1.0
    assert signed(s.m, +1.0)
    # more formation: C unchanged, B rises, BMD rises
    s = propagate(ref, 1.0, up, h, rates)
    assert s.C[0] == pytest.approx(1.0, abs=1e-14)
    assert s.B[0] > 1.0
    assert signed(s.m, +1.0)


def signed(m: np.ndarray, sign: float) -> bool:
    """m has the given sign, or is a roundoff-level value (when every rate x h is large the true m is
    ~ e^{-rate h}, below the rounding error of its O(1/lam) terms)."""
    return bool(np.all((sign * m > 0.0) | (np.abs(m) < 1e-15)))


rate_or_zero = st.one_of(st.just(0.0), st.floats(min_value=1e-6, max_value=20.0))


@st.composite
def triple_st(draw) -> tuple[float, float, float]:
    a = draw(rate_or_zero)
    near = st.builds(lambda e: a * (1 + e) + abs(e) * 1e-3, st.floats(-1e-6, 1e-6))
    b = draw(st.one_of(rate_or_zero, st.just(a), near))
    c = draw(st.one_of(rate_or_zero, st.just(a), st.just(b), near))
    return a, b, c


@settings(max_examples=60, deadline=None)
@given(abc=triple_st(), h=st.floats(0.01, 30.0))
def test_conv_symmetric_nonnegative_and_conv3_is_a_convolution(abc, h: float) -> None:
    a, b, c = abc
    assume(max(a, b, c) * h < 200.0)  # keep the result representable far above underflow for quad
    c2 = conv2(a, b, h)
    assert c2 >= 0.0
    assert conv2(b, a, h) == c2
    vals = [conv3(*p, h) for p in [(a, b, c), (a, c, b), (b, a, c), (b, c, a), (c, a, b), (c, b, a)]]
    assert all(v >= 0.0 for v in vals)
    np.testing.assert_allclose(vals, vals[0], rtol=1e-12, atol=0.0)
    # conv2 against its defining formula where it is well conditioned
    if abs(a - b) * h > 1e-2:
        np.testing.assert_allclose(c2, (np.exp(-a * h) - np.exp(-b * h)) / (b - a), rtol=1e-12)
    # conv3 as the convolution of exp(-c t) with conv2(a, b, t)
    ref, err = quad(lambda s: np.exp(-c * (h - s)) * conv2(a, b, s), 0.0, h, epsabs=0.0, epsrel=1e-13,
                    limit=200)
    assert vals[0] == pytest.approx(ref, rel=1e-8)


def test_pytensor_conv2_gradient_near_tie_is_correct() -> None:
    pytensor = pytest.importorskip("pytensor")
    import pytensor.tensor as pt

    a, b = pt.dscalars("a", "b")
    h = 2.0
    g = pytensor.function([a, b], pytensor.grad(conv2(a, b, h, get_ops("pytensor")), a), mode="FAST_COMPILE")
    for A, B in [(0.5, 0.6), (0.5, 0.5 + 1e-9), (0.5, 0.5 - 1e-9), (0.6, 0.5)]:
        fd = (conv2(A + 1e-6, B, h) - conv2(A - 1e-6, B, h)) / 2e-6
        assert g(A, B) == pytest.approx(fd, rel=1e-7)


def test_pytensor_conv2_gradient_at_exact_tie() -> None:
    pytensor = pytest.importorskip("pytensor")
    import pytensor.tensor as pt

    a, b = pt.dscalars("a", "b")
    h = 2.0
    g = pytensor.function([a, b], pytensor.grad(conv2(a, b, h, get_ops("pytensor")), a), mode="FAST_COMPILE")
    # d/da int_0^h e^{-a s} e^{-b (h - s)} ds = -int_0^h s e^{-a s} e^{-b (h-s)} ds = -h^2/2 e^{-a h} at a == b
    assert g(0.5, 0.5) == pytest.approx(-h * h / 2 * np.exp(-0.5 * h), rel=1e-7)


def test_conv_coincident_limits() -> None:
    h = 2.5
    for a in (0.0, 1e-5, 0.3, 4.0):
        assert conv2(a, a, h) == pytest.approx(h * np.exp(-a * h), rel=1e-14)
        assert conv3(a, a, a, h) == pytest.approx(h * h / 2 * np.exp(-a * h), rel=1e-13)


@settings(max_examples=60, deadline=None)
@given(z=st.one_of(st.floats(-50.0, 0.0), st.floats(-1e-5, 0.0)))
def test_phi1(z: float) -> None:
    expected = 1.0 if z == 0.0 else np.expm1(z) / z
    assert phi1(np.float64(z)) == pytest.approx(expected, rel=1e-14)


def test_numpy_backend_is_default() -> None:
    assert get_ops("numpy") is NUMPY
    with pytest.raises(ValueError, match="numpy"):
        get_ops("jax")


@pytest.mark.parametrize("n_steps", [3, 16, 17, 50, 151])
@pytest.mark.parametrize("per_site", [False, True])
def test_blocked_decay_filter_equals_the_recursion(n_steps: int, per_site: bool) -> None:
    """x_{j+1} = exp(-r) x_j + u_j: the blocked Toeplitz form (J >= 16) and the direct one match the loop,
    and the gradient in r matches a finite difference (rates from slow BMD to fast CTX kinetics)."""
    pytensor = pytest.importorskip("pytensor")
    import pytensor.tensor as pt

    from bonebayes.physiology.turnover import decay_filter

    rng = np.random.default_rng(n_steps)
    shape = (n_steps, 3, 4) if per_site else (n_steps, 3)
    u, x0 = rng.normal(size=shape), rng.normal(size=shape[1:])
    r = rng.uniform(0.001, 3.0, size=4) if per_site else np.float64(rng.uniform(0.001, 3.0))

    def loop(rate: np.ndarray) -> np.ndarray:
        x, out = x0.copy(), []
        for j in range(n_steps):
            x = np.exp(-rate) * x + u[j]
            out.append(x)
        return np.array(out)

    rt, ut, xt = pt.tensor(shape=np.shape(r)), pt.tensor(shape=shape), pt.tensor(shape=shape[1:])
    for n in (None, n_steps):
        out = decay_filter(rt, ut, xt, n)
        w = rng.normal(size=shape)
        fn = pytensor.function([rt, ut, xt], [out, pytensor.grad((out * w).sum(), rt)], mode="FAST_COMPILE")
        val, grad = fn(r, u, x0)
        np.testing.assert_allclose(val, loop(r), rtol=1e-12, atol=1e-12)
        eps = 1e-6
        fd = []
        for k in range(np.size(r)):
            e = np.zeros(np.shape(r))
            e.flat[k] = eps
            fd.append(((loop(r + e) * w).sum() - (loop(r - e) * w).sum()) / (2 * eps))
        np.testing.assert_allclose(np.ravel(grad), fd, rtol=1e-6, atol=1e-6)
