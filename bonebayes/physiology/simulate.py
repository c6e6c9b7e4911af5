"""Evaluate the two-layer physiology over a :class:`Schedule`: the one entry point used by the PyMC
models (``ops = pytensor``) and by projections and synthetic data (``ops = numpy``)."""

from __future__ import annotations

from typing import Any, NamedTuple

from bonebayes.physiology.backend import NUMPY, Ops
from bonebayes.physiology.schedule import Schedule
from bonebayes.physiology.signalling import DrugEffects, stimuli
from bonebayes.physiology.turnover import TurnoverRates, TurnoverState, chain, propagate


class PhysiologyParams(NamedTuple):
    """Parameters of both layers. Hormone axes follow ``Schedule.hormones``; drug axes follow
    ``Schedule.antiresorptives`` / ``Schedule.anabolics``. Arrays may carry a leading unit axis."""

    gamma: Any  # (n_hormones,) elasticity of the resorption stimulus (local RANKL/OPG log-ratio)
    e_form: Any  # (n_hormones,) elasticity of the formation stimulus
    res_effects: DrugEffects  # antiresorptive Emax / EC50
    ana_effects: DrugEffects  # anabolic Emax / EC50
    rates: TurnoverRates
    alpha: Any = 1.0  # exponent on the ratio (fixed at 1 in the default model; see signalling)


class Trajectory(NamedTuple):
    """States at the J + 1 window nodes (leading axis) plus the stimuli of the J window segments."""

    state: TurnoverState  # C (J+1, N), B (J+1, N), m (J+1, N, S)
    S_R: Any  # (J, N)
    S_F: Any  # (J, N)


def _stimuli(sched_x: Any, A_res: Any, A_ana: Any, p: PhysiologyParams, ops: Ops) -> tuple[Any, Any]:
    return stimuli(
        sched_x,
        A_res if A_res.shape[-1] else None,
        A_ana if A_ana.shape[-1] else None,
        p.gamma, p.e_form, p.res_effects, p.ana_effects, p.alpha, ops,
    )


def simulate(schedule: Schedule, p: PhysiologyParams, initial: TurnoverState, ops: Ops = NUMPY) -> Trajectory:
    """Chain the history and the window; ``initial`` is the reference state for every unit."""
    state = initial
    H = schedule.hist_h.shape[0]
    if H:
        hS_R, hS_F = _stimuli(schedule.hist_x, schedule.hist_A_res, schedule.hist_A_ana, p, ops)
        for j in range(H):  # short and ragged: unrolled
            state = propagate(state, hS_R[j], hS_F[j], schedule.hist_h[j], p.rates, ops)
    S_R, S_F = _stimuli(schedule.win_x, schedule.win_A_res, schedule.win_A_ana, p, ops)
    step = ops.as_array(float(schedule.step))
    path = chain(state, S_R, S_F, step, p.rates, ops)
    nodes = TurnoverState(*(ops.concatenate([s0[None], s], axis=0) for s0, s in zip(state, path)))
    return Trajectory(nodes, S_R, S_F)


def at_times(
    traj: Trajectory, node: Any, tau: Any, unit: Any, rates_per_obs: TurnoverRates, ops: Ops = NUMPY
) -> TurnoverState:
    """States at observation times: window ``node`` and remainder ``tau`` (months) for unit ``unit``.

    With tau = 0 this is a gather; otherwise the exact segment map of the following segment is applied.
    """
    C, B, m = traj.state
    start = TurnoverState(C[node, unit], B[node, unit], m[node, unit])
    J = traj.S_R.shape[0]
    seg = ops.minimum(node, J - 1)
    return propagate(start, traj.S_R[seg, unit], traj.S_F[seg, unit], tau, rates_per_obs, ops)
