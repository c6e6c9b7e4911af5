"""Exact closed-form solution of the linear coupled turnover system, chained over constant segments.

Time is in months. All states are normalised to the young-adult reference steady state:

    dC/dt = k_C (S_R - C)                       C: resorption (CTX) relative to reference, 1 at reference
    dB/dt = k_B (S_F * C - B)                   B: formation (P1NP) relative to reference; follows resorption
    dm_s/dt = k_M,s (B - C) - lambda_s * m_s    m_s: log(BMD_s / BMD_s,reference) at skeletal site s

(m is a log ratio, so BMD = reference * exp(m) stays positive whatever the parameters; for the changes seen
in practice it equals the relative change BMD / reference - 1 of DESIGN.md to first order.)

With the stimuli ``S_R`` (resorption) and ``S_F`` (formation) held constant over a segment of length h the
solution is a sum of exponentials. Divided differences of ``exp(-x h)`` are evaluated in a form that stays
accurate when two rate constants coincide, so the same code is safe inside NUTS and over posterior draws.

Shapes: ``C``, ``B``, ``S_R``, ``S_F``, ``k_C``, ``k_B`` broadcast together (a "unit" axis: subjects, arms,
draws); ``m``, ``k_M`` and ``lam`` carry one trailing axis of sites.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from bonebayes.physiology.backend import NUMPY, Ops

_PHI_EPS = 1e-6  # below this |z| the first-order phi function uses its Taylor series
_DD2_EPS = 1e-3  # below this spread of three nodes (times h) the 2nd divided difference uses its series


class TurnoverRates(NamedTuple):
    """Rate constants (1/month). ``k_M`` and ``lam`` have a trailing site axis."""

    k_C: Any  # resorption-marker (CTX) return rate; CTX half-life is days to weeks
    k_B: Any  # formation-marker (P1NP) return rate; osteoblast/P1NP half-life about 1-2 months
    k_M: Any  # BMD coupling: fractional BMD change per month per unit of formation-resorption imbalance
    lam: Any  # slow restoring (mechanostat) rate of BMD towards the reference, per month


class TurnoverState(NamedTuple):
    """Normalised state: C and B are 1 and m is 0 at the young-adult reference steady state."""

    C: Any
    B: Any
    m: Any  # trailing site axis


def phi1(z: Any, ops: Ops = NUMPY) -> Any:
    """(exp(z) - 1) / z for z <= 0, accurate and differentiable at z = 0."""
    small = ops.abs(z) < _PHI_EPS
    z_safe = ops.where(small, -1.0, z)
    return ops.where(small, 1.0 + z / 2.0 + z * z / 6.0, ops.expm1(z_safe) / z_safe)


def conv2(a: Any, b: Any, h: Any, ops: Ops = NUMPY) -> Any:
    """Convolution of exp(-a t) and exp(-b t) at time h: (e^{-a h} - e^{-b h}) / (b - a), stable at a == b."""
    gap = ops.abs(a - b)
    lo = 0.5 * (a + b - gap)  # min(a, b), with the symmetric gradient 1/2 at a tie (not 1 to both)
    return h * ops.exp(-lo * h) * phi1(-gap * h, ops)


def conv3(a: Any, b: Any, c: Any, h: Any, ops: Ops = NUMPY) -> Any:
    """Convolution of three exponentials exp(-a t), exp(-b t), exp(-c t) at time h (symmetric, stable).

    Equals the second divided difference of x -> exp(-x h) at (a, b, c). Nodes are shifted by the smallest,
    so only non-positive exponents occur, and a series replaces the formula when all three nearly coincide.
    """
    x1 = ops.minimum(ops.minimum(a, b), c)
    x3 = ops.maximum(ops.maximum(a, b), c)
    x2 = a + b + c - x1 - x3
    beta = (x2 - x1) * h
    gamma = (x3 - x1) * h
    delta = gamma - beta
    small = gamma < _DD2_EPS
    gamma_safe = ops.where(small, 1.0, gamma)
    direct = (phi1(-beta, ops) - ops.exp(-beta) * phi1(-delta, ops)) / gamma_safe
    h1 = beta + gamma
    h2 = beta * beta + beta * gamma + gamma * gamma
    h3 = beta * h2 + gamma * gamma * gamma
    series = 0.5 - h1 / 6.0 + h2 / 24.0 - h3 / 120.0
    return h * h * ops.exp(-x1 * h) * ops.where(small, series, direct)


class StepCoefficients(NamedTuple):
    """Coefficients of the exact affine map over one constant-stimulus segment of length h.

    Over the segment, with C, B and m taken at its start:
        C' = e_C C + (1 - e_C) S_R
        B' = e_B B + S_F (a_B S_R + b_B C)
        m' = e_L m + k_M (q1 S_R S_F + q2 S_R + q3 B + q4 S_F C + q5 C)        (q*, e_L per site)
    """

    e_C: Any
    e_B: Any
    a_B: Any
    b_B: Any
    e_L: Any
    q1: Any
    q2: Any
    q3: Any
    q4: Any
    q5: Any


def step_coefficients(rates: TurnoverRates, h: Any, ops: Ops = NUMPY) -> StepCoefficients:
    """Exact segment coefficients for segment length ``h`` (months); the physics lives here, once."""
    k_C, k_B, _k_M, lam = rates
    e_C = ops.exp(-k_C * h)
    e_B = ops.exp(-k_B * h)
    b_B = k_B * conv2(k_C, k_B, h, ops)
    a_B = 1.0 - e_B - b_B
    hs, kCs, kBs = _site(h), _site(k_C), _site(k_B)
    d_0L = conv2(0.0 * lam, lam, hs, ops)
    d_BL = conv2(kBs, lam, hs, ops)
    d_CL = conv2(kCs, lam, hs, ops)
    kF = kBs * conv3(kCs, kBs, lam, hs, ops)
    return StepCoefficients(
        e_C=e_C,
        e_B=e_B,
        a_B=a_B,
        b_B=b_B,
        e_L=ops.exp(-lam * hs),
        q1=d_0L - d_BL - kF,
        q2=d_CL - d_0L,
        q3=d_BL,
        q4=kF,
        q5=-d_CL,
    )


def take_coefficients(co: StepCoefficients, index: Any) -> StepCoefficients:
    """Select entries of coefficients computed for a vector of segment lengths (site axis kept last)."""
    return StepCoefficients(*(c[index] for c in co))


def _site(x: Any) -> Any:
    """Add a trailing site axis (scalars stay scalars)."""
    return x if getattr(x, "ndim", 0) == 0 else x[..., None]


def apply_step(state: TurnoverState, S_R: Any, S_F: Any, k_M: Any, co: StepCoefficients) -> TurnoverState:
    """Apply the affine segment map with precomputed coefficients."""
    C, B, m = state
    C1 = co.e_C * C + (1.0 - co.e_C) * S_R
    B1 = co.e_B * B + S_F * (co.a_B * S_R + co.b_B * C)
    S_Rs, S_Fs, Cs, Bs = _site(S_R), _site(S_F), _site(C), _site(B)
    forcing = co.q1 * S_Rs * S_Fs + co.q2 * S_Rs + co.q3 * Bs + co.q4 * S_Fs * Cs + co.q5 * Cs
    return TurnoverState(C1, B1, co.e_L * m + k_M * forcing)


def propagate(
    state: TurnoverState, S_R: Any, S_F: Any, h: Any, rates: TurnoverRates, ops: Ops = NUMPY
) -> TurnoverState:
    """Advance the state by ``h`` months with constant stimuli ``S_R`` and ``S_F`` (exact solution)."""
    return apply_step(state, S_R, S_F, rates.k_M, step_coefficients(rates, h, ops))


def chain(
    initial: TurnoverState,
    S_R: Any,
    S_F: Any,
    h: Any,
    rates: TurnoverRates,
    ops: Ops = NUMPY,
    coefficients: StepCoefficients | None = None,
) -> TurnoverState:
    """Chain the exact segment map over segments along the leading axis of ``S_R`` and ``S_F`` (J, ...).

    ``h`` is either one segment length for all segments (a uniform grid; the coefficients are computed
    once, or passed in precomputed) or an array (J, ...) of lengths. Returns the states at the J segment
    ends, each with a leading axis of length J. A segment of length 0 is the identity.
    """
    uniform = getattr(h, "ndim", 0) == 0
    if uniform:
        co = coefficients if coefficients is not None else step_coefficients(rates, h, ops)
        if ops.is_symbolic() and _shared_rates(rates):
            return _chain_toeplitz(initial, S_R, S_F, h, rates, co, ops)

        def step(s_r: Any, s_f: Any, C: Any, B: Any, m: Any) -> TurnoverState:
            return apply_step(TurnoverState(C, B, m), s_r, s_f, rates.k_M, co)

        C, B, m = ops.scan(step, [S_R, S_F], list(initial))
    else:

        def step_h(s_r: Any, s_f: Any, hj: Any, C: Any, B: Any, m: Any) -> TurnoverState:
            return propagate(TurnoverState(C, B, m), s_r, s_f, hj, rates, ops)

        C, B, m = ops.scan(step_h, [S_R, S_F, h], list(initial))
    return TurnoverState(C, B, m)


def _shared_rates(rates: TurnoverRates) -> bool:
    """True when k_C, k_B are scalars and lam is one value per site (shared by all units)."""
    return rates.k_C.ndim == 0 and rates.k_B.ndim == 0 and rates.lam.ndim <= 1


def _chain_toeplitz(
    initial: TurnoverState, S_R: Any, S_F: Any, h: Any, rates: TurnoverRates, co: StepCoefficients, ops: Ops
) -> TurnoverState:
    """Uniform-grid chaining as three linear filters x_{j+1} = a x_j + u_j written as matrix products.

    With rates shared by all units this replaces a sequential scan (slow to differentiate) by products with
    triangular Toeplitz matrices T[r, l] = a^(r-l); see :func:`decay_filter` for the blocked form used when
    the number of segments is known when the graph is built.
    """
    import pytensor.tensor as pt

    J = S_R.type.shape[0]
    k_C, k_B, k_M, lam = rates
    C0, B0, m0 = initial
    C = decay_filter(k_C * h, (1.0 - co.e_C) * S_R, C0, J)
    C_start = pt.concatenate([C0[None, :], C[:-1]], axis=0)
    B = decay_filter(k_B * h, S_F * (co.a_B * S_R + co.b_B * C_start), B0, J)
    B_start = pt.concatenate([B0[None, :], B[:-1]], axis=0)
    S_Rs, S_Fs, Cs, Bs = S_R[..., None], S_F[..., None], C_start[..., None], B_start[..., None]
    forcing = co.q1 * S_Rs * S_Fs + co.q2 * S_Rs + co.q3 * Bs + co.q4 * S_Fs * Cs + co.q5 * Cs  # (J, N, S)
    lam_s = pt.as_tensor_variable(lam) * pt.ones_like(forcing[0, 0])  # (S,)
    m = decay_filter(lam_s * h, k_M * forcing, m0 * pt.ones_like(forcing[0]), J)
    return TurnoverState(C, B, m)


def _toeplitz(rate_h: Any, n: Any) -> Any:
    """Lower-triangular T[..., r, l] = exp(-rate_h (r - l)) for l <= r, n x n (a leading axis per rate)."""
    import pytensor.tensor as pt

    lag = pt.arange(n)[:, None] - pt.arange(n)[None, :]
    lag_f = pt.maximum(lag, 0).astype("float64")
    if rate_h.ndim == 0:
        return pt.switch(lag >= 0, pt.exp(-rate_h * lag_f), 0.0)
    return pt.switch((lag >= 0)[None], pt.exp(-rate_h[:, None, None] * lag_f[None]), 0.0)


def _powers(rate_h: Any, n: Any) -> Any:
    """exp(-rate_h i) for i = 1..n: shape (n,) for a scalar rate, (n, S) for one rate per site."""
    import pytensor.tensor as pt

    i = pt.arange(1, n + 1).astype("float64")
    return pt.exp(-rate_h * i) if rate_h.ndim == 0 else pt.exp(-pt.outer(i, rate_h))


def _filter_direct(rate_h: Any, u: Any, x0: Any, n: Any) -> Any:
    """One Toeplitz product: x_{r+1} = sum_{l<=r} a^(r-l) u_l + a^(r+1) x_0, O(J^2)."""
    import pytensor.tensor as pt

    T = _toeplitz(rate_h, n)
    if rate_h.ndim == 0:
        return pt.tensordot(T, u, axes=[[1], [0]]) + _powers(rate_h, n)[:, None] * x0[None]
    return pt.einsum("srl,lns->rns", T, u) + _powers(rate_h, n)[:, None, :] * x0[None]


def decay_filter(rate_h: Any, u: Any, x0: Any, n_steps: int | None = None) -> Any:
    """Solve x_{j+1} = exp(-rate_h) x_j + u_j for j = 0..J-1 and return x_1..x_J (symbolic, no scan).

    ``u`` is (J, N) with a scalar ``rate_h`` or (J, N, S) with ``rate_h`` of shape (S,); ``x0`` is u[0]'s shape.
    When ``n_steps`` (J) is known the Toeplitz sum is blocked: the J steps are cut into K blocks of L ~ sqrt(J),
    each block is filtered by one L x L matrix from a zero start, and the block-end states are carried by a
    K x K filter of rate L rate_h. That costs O(J^1.5) instead of O(J^2); every exponent is <= 0 (no overflow).
    """
    import numpy as np
    import pytensor.tensor as pt

    rate_h = pt.as_tensor_variable(rate_h)
    if n_steps is None or n_steps < 16:
        return _filter_direct(rate_h, u, x0, u.shape[0] if n_steps is None else n_steps)
    L = int(np.ceil(np.sqrt(n_steps)))
    K = -(-n_steps // L)
    rest = tuple(u.shape[i] for i in range(1, u.ndim))
    ub = pt.concatenate([u, pt.zeros((K * L - n_steps, *rest))], axis=0) if K * L > n_steps else u
    ub = ub.reshape((K, L, *rest))
    T = _toeplitz(rate_h, L)
    if rate_h.ndim == 0:  # (L, K, N) -> (K, L, N)
        local = pt.tensordot(T, ub, axes=[[1], [1]]).dimshuffle(1, 0, 2)
        carry = _powers(rate_h, L)[None, :, None]
    else:
        local = pt.einsum("sil,klns->kins", T, ub)
        carry = _powers(rate_h, L)[None, :, None, :]
    ends = decay_filter(rate_h * L, local[:, L - 1], x0, K)  # state after each block
    starts = pt.concatenate([x0[None], ends[:-1]], axis=0)  # state before each block
    return (local + carry * starts[:, None]).reshape((K * L, *rest))[:n_steps]


def reference_state(shape: tuple[int, ...], n_sites: int) -> TurnoverState:
    """The young-adult reference steady state (C = B = 1, m = 0) for NumPy evaluation."""
    import numpy as np

    return TurnoverState(np.ones(shape), np.ones(shape), np.zeros((*shape, n_sites)))


def derivative(state: TurnoverState, S_R: Any, S_F: Any, rates: TurnoverRates) -> TurnoverState:
    """Right-hand side of the ODE (NumPy); used by the tests to check the closed form against solve_ivp."""
    k_C, k_B, k_M, lam = rates
    C, B, m = state
    return TurnoverState(
        k_C * (S_R - C),
        k_B * (S_F * C - B),
        k_M * (B - C)[..., None] - lam * m,
    )
