"""Osteoclast-precursor pool: the off-treatment rebound after stopping denosumab (a model variant).

Denosumab blocks RANKL and with it osteoclast differentiation, so precursors accumulate while it acts; when it
wanes they differentiate at once: CTX overshoots baseline for about 6-18 months after the last dose and BMD
gained on treatment is lost within about a year (FREEDOM extension, Cummings 2018; Bone 2011). The pool is a
first-order lag (rate ``k_Q``, 1/month) of the inhibition I_P(t) by the pool drugs (``POOL_DRUGS``):

    dQ/dt = k_Q (I_P - Q),      Q = 0 at the young-adult reference (no drug)
    S_R  <- S_R * (1 + eta * max(Q - I_P, 0))          eta >= 0: extra resorption per unit of stored pool

On drug Q rises towards I_P and the factor is 1 (Q <= I_P while the drug acts); after the last dose I_P falls
with the drug's kinetic-PD half-life (weeks) while Q decays with 1/k_Q (months), so the factor exceeds 1: a
transient rebound of resorption. Bisphosphonates are not pool drugs (they act on mature osteoclasts and leave
bone slowly), so they never trigger it.

The stimulus stays constant on each segment, which keeps the turnover layer's exact closed form: the factor
uses the exact segment average of Q given the segment-constant I_P,
Q_avg = I_P + (Q_start - I_P) phi1(-k_Q h), and Q_end = I_P + (Q_start - I_P) exp(-k_Q h). Written once against
:class:`~bonebayes.physiology.backend.Ops`: the PyTensor graph uses ``turnover.decay_filter`` (no scan), NumPy a
loop over segments (batched over posterior draws).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from bonebayes.physiology.backend import NUMPY, Ops
from bonebayes.physiology.signalling import DrugEffects, emax_effect
from bonebayes.physiology.turnover import phi1

POOL_DRUGS: tuple[str, ...] = ("denosumab",)
"""Antiresorptives whose inhibition feeds the precursor pool (RANKL blockade)."""


class PrecursorPool(NamedTuple):
    """Parameters of the precursor pool; ``drugs`` is a 0/1 mask over the schedule's antiresorptives."""

    k_Q: Any  # 1/month: pool filling and emptying rate (scalar, or a batch of draws)
    eta: Any  # >= 0: fractional extra resorption per unit of stored pool above the current inhibition
    drugs: Any  # (n_antiresorptives,) 1.0 for pool drugs, 0.0 otherwise


def pool_mask(antiresorptives: Sequence[str], drugs: Sequence[str] = POOL_DRUGS) -> np.ndarray:
    """0/1 mask of ``antiresorptives`` that feed the pool."""
    return np.array([1.0 if d in drugs else 0.0 for d in antiresorptives])


def pool_inhibition(A_res: Any, effects: DrugEffects, mask: Any, ops: Ops = NUMPY) -> Any:
    """Inhibition by the pool drugs only, I_P = 1 - prod_d (1 - mask_d I_d), in [0, 1)."""
    return -ops.expm1(ops.sum(ops.log1p(-mask * emax_effect(A_res, effects)), axis=-1))


def lag_step(Q: Any, I: Any, k_Q: Any, h: Any, ops: Ops = NUMPY) -> tuple[Any, Any]:
    """One segment of length ``h`` (months) with constant ``I``: (Q at its end, Q averaged over it)."""
    gap = Q - I
    return I + gap * ops.exp(-k_Q * h), I + gap * phi1(-k_Q * h, ops)


def lag_path(I: Any, k_Q: Any, h: float, Q0: Any, ops: Ops = NUMPY) -> tuple[Any, Any]:
    """Chain :func:`lag_step` over segments of equal length ``h`` along the leading axis of ``I`` (J, ...).

    Returns (Q at the J segment ends, Q averaged over each segment), both shaped like ``I``.
    """
    if ops.is_symbolic():
        import pytensor.tensor as pt

        from bonebayes.physiology.turnover import decay_filter

        a = pt.exp(-k_Q * h)
        J = I.type.shape[0]
        flat = I.reshape((I.shape[0], -1)) if I.ndim != 2 else I
        q0 = Q0.reshape((-1,)) if I.ndim != 2 else Q0
        ends = decay_filter(k_Q * h, (1.0 - a) * flat, q0, J).reshape(I.shape)
        starts = pt.concatenate([pt.as_tensor_variable(Q0)[None] * pt.ones_like(I[:1]), ends[:-1]], axis=0)
    else:
        Q = np.asarray(Q0, dtype=float)
        a = np.exp(-np.asarray(k_Q) * h)
        out = []
        for j in range(np.shape(I)[0]):
            Q = I[j] + (Q - I[j]) * a
            out.append(Q)
        ends = np.stack(out) if out else np.zeros_like(I)
        starts = np.concatenate([np.broadcast_to(Q0, np.shape(I)[1:])[None], ends[:-1]], axis=0)
    return ends, I + (starts - I) * phi1(-k_Q * h, ops)


def rebound_factor(Q_avg: Any, I: Any, eta: Any, ops: Ops = NUMPY) -> Any:
    """Multiplier of the resorption stimulus: 1 + eta max(Q_avg - I, 0) (1 while the drug holds the pool)."""
    return 1.0 + eta * ops.maximum(Q_avg - I, 0.0)
