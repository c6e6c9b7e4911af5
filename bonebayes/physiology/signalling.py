"""Layer 1, signalling: hormone covariates and drug exposure -> resorption and formation stimuli.

With x_h(t) the hormone covariates (0 at the young-adult reference) and A_d(t) the drug exposures:

    log rho(t) = sum_h gamma_h x_h(t)              latent local RANKL/OPG log-ratio, relative to reference
    S_R(t) = exp(alpha * log rho(t)) * (1 - I_R(t))                 resorption stimulus
    I_R(t) = 1 - prod_d (1 - Imax_d A_d / (A_d + EC50_d))           antiresorptive drugs (d in resorption)
    S_F(t) = (1 + E_F(t)) * exp(sum_h e_h x_h(t))                   formation stimulus
    E_F(t) = sum_d Emax_d A_d / (A_d + EC50_d)                      anabolic drugs
    S_R(t) *= 1 + sum_d kappa_d E_F,d(t)                             optional remodelling coupling

The coupling kappa_d (0..1) passes part of an anabolic drug's formation rise on to resorption: intermittent
PTH raises resorption markers too (remodelling-based formation). ``kappa=None`` switches it off.

Serum RANKL and OPG are a separate measurement layer (``serum_log_levels``): their own hormone elasticities
g_R,h and g_O,h, never the driver of resorption in the default model. The exponent ``alpha`` multiplies an
unobserved latent log-ratio and is not identified jointly with gamma; the default model fixes alpha = 1 so
gamma_h is the elasticity of the resorption stimulus to hormone h. The ``serum_driver`` variant instead sets
log rho = serum log-ratio and estimates alpha.

All functions accept NumPy arrays or PyTensor tensors through an :class:`Ops`; the hormone axis is last.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from bonebayes.physiology.backend import NUMPY, Ops


class DrugEffects(NamedTuple):
    """Emax parameters for the drugs on one axis (last axis matches the exposure's drug axis)."""

    emax: Any  # maximal fractional effect (antiresorptive: 0..1 inhibition; anabolic: fractional rise)
    ec50: Any  # exposure giving half the maximal effect, in reference-dose equivalents


def linear_predictor(x: Any, coef: Any, ops: Ops = NUMPY) -> Any:
    """sum_h coef_h x_h over the last (hormone) axis."""
    return ops.sum(x * coef, axis=-1)


def emax_effect(A: Any, effects: DrugEffects) -> Any:
    """Per-drug Emax effect of exposures ``A`` (..., n_drugs)."""
    return effects.emax * A / (A + effects.ec50)


def resorption_inhibition(A: Any, effects: DrugEffects, ops: Ops = NUMPY) -> Any:
    """Combined inhibition I_R in [0, 1): independent action, 1 - prod(1 - I_d).

    Written as 1 - exp(sum log(1 - I_d)) so its gradient has no product-without-zeros (unsupported by JAX).
    """
    return -ops.expm1(ops.sum(ops.log1p(-emax_effect(A, effects)), axis=-1))


def formation_enhancement(A: Any, effects: DrugEffects, ops: Ops = NUMPY) -> Any:
    """Combined anabolic effect E_F >= 0: the sum of the drugs' Emax effects."""
    return ops.sum(emax_effect(A, effects), axis=-1)


def stimuli(
    x: Any,
    A_res: Any,
    A_ana: Any,
    gamma: Any,
    e_form: Any,
    res_effects: DrugEffects,
    ana_effects: DrugEffects,
    alpha: Any = 1.0,
    ops: Ops = NUMPY,
    kappa: Any = None,
) -> tuple[Any, Any]:
    """Resorption and formation stimuli (S_R, S_F), both 1 at the reference with no drug."""
    log_rho = linear_predictor(x, gamma, ops)
    S_R = ops.exp(alpha * log_rho)
    if A_res is not None:
        S_R = S_R * (1.0 - resorption_inhibition(A_res, res_effects, ops))
    S_F = ops.exp(linear_predictor(x, e_form, ops))
    if A_ana is not None:
        S_F = S_F * (1.0 + formation_enhancement(A_ana, ana_effects, ops))
        if kappa is not None:
            S_R = S_R * (1.0 + ops.sum(kappa * emax_effect(A_ana, ana_effects), axis=-1))
    return S_R, S_F


def serum_log_levels(x: Any, g_rankl: Any, g_opg: Any, ops: Ops = NUMPY) -> tuple[Any, Any]:
    """Serum log RANKL and log OPG relative to the subject's reference level (measurement layer)."""
    return linear_predictor(x, g_rankl, ops), linear_predictor(x, g_opg, ops)
