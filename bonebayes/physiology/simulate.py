"""Evaluate the two-layer physiology over a :class:`Schedule`: the one entry point used by the PyMC
models (``ops = pytensor``) and by projections and synthetic data (``ops = numpy``).

Batches of parameters (posterior draws): when ``k_C`` has shape ``batch`` (e.g. ``(D,)``) instead of being a
scalar, every unit is simulated under each batch element at once. Parameter arrays then carry the batch
axes first (``k_B`` ``batch``; ``k_M``, ``lam`` ``batch + (S,)`` or ``k_M`` ``(N,) + batch + (S,)`` per unit;
``gamma`` ``batch + (H,)``; drug Emax/EC50 ``batch + (n_drugs,)``), the schedule stays as it is, and states
get the batch axes after the unit axis: C ``(J + 1, N) + batch``, m ``(J + 1, N) + batch + (S,)``. With
scalar ``k_C`` (the models) nothing changes.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from bonebayes.physiology.backend import NUMPY, Ops
from bonebayes.physiology.precursor import PrecursorPool, lag_path, lag_step, pool_inhibition, rebound_factor
from bonebayes.physiology.schedule import Inputs, Schedule
from bonebayes.physiology.signalling import DrugEffects, stimuli
from bonebayes.physiology.turnover import (
    StepCoefficients,
    TurnoverRates,
    TurnoverState,
    apply_step,
    chain,
    step_coefficients,
    take_coefficients,
)


class PhysiologyParams(NamedTuple):
    """Parameters of both layers. Hormone axes follow ``Schedule.hormones``; drug axes follow
    ``Schedule.antiresorptives`` / ``Schedule.anabolics``. Arrays may carry a leading unit axis."""

    gamma: Any  # (n_hormones,) elasticity of the resorption stimulus (local RANKL/OPG log-ratio)
    e_form: Any  # (n_hormones,) elasticity of the formation stimulus
    res_effects: DrugEffects  # antiresorptive Emax / EC50
    ana_effects: DrugEffects  # anabolic Emax / EC50
    rates: TurnoverRates
    alpha: Any = 1.0  # exponent on the ratio (fixed at 1 in the default model; see signalling)
    kappa: Any = None  # (n_anabolics,) remodelling coupling of anabolic drugs to resorption; None = off
    pool: PrecursorPool | None = None  # osteoclast-precursor pool (denosumab rebound variant); None = off


class Trajectory(NamedTuple):
    """States at the J + 1 window nodes (leading axis) plus the stimuli of the J window segments."""

    state: TurnoverState  # C (J+1, N, *batch), B (J+1, N, *batch), m (J+1, N, *batch, S)
    S_R: Any  # (J, N, *batch)
    S_F: Any  # (J, N, *batch)


def batch_ndim(rates: TurnoverRates) -> int:
    """Number of batch axes (e.g. 1 for a posterior-draw axis) on the parameters: the dimensions of k_C."""
    return int(getattr(rates.k_C, "ndim", 0))


def _with_batch(a: Any, nb: int) -> Any:
    """Insert ``nb`` broadcast axes before the last (hormone / drug) axis of an input array."""
    return a if nb == 0 else a[(Ellipsis,) + (None,) * nb + (slice(None),)]


def _stimuli(inp: Inputs, p: PhysiologyParams, ops: Ops) -> tuple[Any, Any]:
    nb = batch_ndim(p.rates)
    return stimuli(
        _with_batch(inp.x, nb),
        _with_batch(inp.A_res, nb) if inp.A_res.shape[-1] else None,
        _with_batch(inp.A_ana, nb) if inp.A_ana.shape[-1] else None,
        p.gamma, p.e_form, p.res_effects, p.ana_effects, p.alpha, ops, p.kappa,
    )


def _pool_I(inp: Inputs, p: PhysiologyParams, ops: Ops) -> Any:
    """Inhibition by the pool drugs, I_P (..., *batch), for the precursor-pool variant."""
    nb = batch_ndim(p.rates)
    return pool_inhibition(_with_batch(inp.A_res, nb), p.res_effects, p.pool.drugs, ops)


def _uses_pool(schedule: Schedule, p: PhysiologyParams) -> bool:
    import numpy as np

    return p.pool is not None and schedule.window.A_res.shape[-1] > 0 and bool(np.any(np.asarray(p.pool.drugs)))


def _bank(schedule: Schedule, rates: TurnoverRates, extra_h: Any, ops: Ops) -> tuple[StepCoefficients, int]:
    """Segment coefficients for every segment length the simulation needs, computed in one call.

    Layout: [history step, window step, N pattern remainders, N tails, extra (observation remainders)].
    One vectorised call keeps the differentiated graph small (fast to compile) whatever N is.
    """
    import numpy as np

    N = len(schedule.units)
    hs = np.concatenate([[schedule.history_step, schedule.step], schedule.unit_tau, schedule.tail_h,
                         np.zeros(0) if extra_h is None else np.asarray(extra_h, dtype=float)])
    hs = hs.reshape(hs.shape + (1,) * batch_ndim(rates))  # segment axis first, then the batch axes
    return step_coefficients(rates, ops.as_array(hs), ops), N


def initial_states(
    schedule: Schedule, p: PhysiologyParams, n_sites: int, ops: Ops = NUMPY,
    bank: StepCoefficients | None = None,
) -> TurnoverState:
    """States of every unit at the window start t0: history pattern, then the constant tail.

    Patterns are chained with k_M = 1 (m is linear in k_M and starts at 0), so one pattern serves units
    with different k_M; ``p.rates.k_M`` has a leading unit axis (N, *batch, S) or is shared (*batch, S).
    """
    return _initial(schedule, p, n_sites, ops, bank)[0]


def _initial(
    schedule: Schedule, p: PhysiologyParams, n_sites: int, ops: Ops = NUMPY,
    bank: StepCoefficients | None = None,
) -> tuple[TurnoverState, Any]:
    """:func:`initial_states` plus the precursor pool Q of every unit at t0 (None without the pool)."""
    import numpy as np

    k_C, k_B, k_M, lam = p.rates
    if bank is None:
        bank, _ = _bank(schedule, p.rates, None, ops)
    nb = batch_ndim(p.rates)
    batch = tuple(np.shape(k_C)) if nb else ()
    N = len(schedule.units)
    P = schedule.patterns.x.shape[1]
    S = n_sites
    pool = _uses_pool(schedule, p)
    pS_R, pS_F = _stimuli(schedule.patterns, p, ops)  # (J_p, P, *batch)
    pS_R_base = pS_R
    if pool:
        pI = _pool_I(schedule.patterns, p, ops)
        pQ_end, pQ_avg = lag_path(pI, p.pool.k_Q, float(schedule.history_step), ops.zeros((P,) + batch), ops)
        pS_R = pS_R * rebound_factor(pQ_avg, pI, p.pool.eta, ops)
        pQ = ops.concatenate([ops.zeros((1, P) + batch), pQ_end], axis=0)
    ones_kM = ops.ones((P,) + (1,) * nb + (S,))
    ref = TurnoverState(ops.ones((P,) + batch), ops.ones((P,) + batch), ops.zeros((P,) + batch + (S,)))
    path = chain(ref, pS_R, pS_F, ops.as_array(float(schedule.history_step)),
                 TurnoverRates(k_C, k_B, ones_kM, lam), ops, take_coefficients(bank, 0))
    C = ops.concatenate([ref.C[None], path.C], axis=0)
    B = ops.concatenate([ref.B[None], path.B], axis=0)
    m = ops.concatenate([ref.m[None], path.m], axis=0)
    pi, node = schedule.unit_pattern, schedule.unit_node
    kM_units = k_M if k_M.ndim == 2 + nb else k_M[None]
    state = TurnoverState(C[node, pi], B[node, pi], kM_units * m[node, pi])
    Q = pQ[node, pi] if pool else None

    def per_unit(h: np.ndarray) -> Any:
        return ops.as_array(h.reshape(h.shape + (1,) * nb))

    if np.any(schedule.unit_tau > 0):
        seg = np.minimum(node, schedule.patterns.x.shape[0] - 1)
        rS_R = pS_R[seg, pi]
        if pool:
            rI = pI[seg, pi]
            Q, q_avg = lag_step(Q, rI, p.pool.k_Q, per_unit(schedule.unit_tau), ops)
            rS_R = pS_R_base[seg, pi] * rebound_factor(q_avg, rI, p.pool.eta, ops)
        state = apply_step(state, rS_R, pS_F[seg, pi], k_M,
                           take_coefficients(bank, slice(2, 2 + N)))
    if np.any(schedule.tail_h > 0):
        tS_R, tS_F = _stimuli(schedule.tail, p, ops)
        if pool:
            tI = _pool_I(schedule.tail, p, ops)
            Q, q_avg = lag_step(Q, tI, p.pool.k_Q, per_unit(schedule.tail_h), ops)
            tS_R = tS_R * rebound_factor(q_avg, tI, p.pool.eta, ops)
        state = apply_step(state, tS_R, tS_F, k_M, take_coefficients(bank, slice(2 + N, 2 + 2 * N)))
    return state, Q


def simulate(
    schedule: Schedule, p: PhysiologyParams, n_sites: int, ops: Ops = NUMPY, extra_h: Any = None
) -> tuple[Trajectory, StepCoefficients]:
    """States of every unit at the J + 1 window nodes, starting from the reference before its history.

    Also returns the coefficients for ``extra_h`` (observation remainders, see :func:`at_times`).
    """
    bank, N = _bank(schedule, p.rates, extra_h, ops)
    state, Q0 = _initial(schedule, p, n_sites, ops, bank)
    S_R, S_F = _stimuli(schedule.window, p, ops)
    if Q0 is not None:  # precursor-pool variant: the rebound factor on the window's resorption stimulus
        wI = _pool_I(schedule.window, p, ops)
        _, Q_avg = lag_path(wI, p.pool.k_Q, float(schedule.step), Q0, ops)
        S_R = S_R * rebound_factor(Q_avg, wI, p.pool.eta, ops)
    path = chain(state, S_R, S_F, ops.as_array(float(schedule.step)), p.rates, ops, take_coefficients(bank, 1))
    nodes = TurnoverState(*(ops.concatenate([s0[None], s], axis=0) for s0, s in zip(state, path)))
    return Trajectory(nodes, S_R, S_F), take_coefficients(bank, slice(2 + 2 * N, None))


def at_times(
    traj: Trajectory,
    node: Any,
    unit: Any,
    k_M_per_obs: Any = None,
    tau_coefficients: StepCoefficients | None = None,
    n_window: int | None = None,
) -> TurnoverState:
    """States at observation times: window ``node`` for unit ``unit``, then (if given) the exact map over
    each observation's remainder within the following segment, with coefficients from :func:`simulate`'s
    ``extra_h``. Node and unit are integer arrays (data), so this is a gather.
    """
    import numpy as np

    C, B, m = traj.state
    start = TurnoverState(C[node, unit], B[node, unit], m[node, unit])
    if tau_coefficients is None:
        return start
    J = n_window if n_window is not None else traj.S_R.shape[0]
    seg = np.minimum(node, J - 1)
    return apply_step(start, traj.S_R[seg, unit], traj.S_F[seg, unit], k_M_per_obs, tau_coefficients)
