"""Population-level parameters shared by every data block (individual cohorts, published arms, joint fits).

One call creates the physiology's population parameters inside the current PyMC model, on the union of the
hormones, drugs and sites that any block uses; each block then takes its own subset with
:meth:`PopulationParams.physiology`. This is what makes the joint model joint: the published arms and the
individual cohort see the same k_C, k_B, k_M, lambda, hormone elasticities and drug Emax parameters.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bonebayes.models.priors import HORMONE_MEANS, HORMONE_SDS, PRIORS, SITE_KM_MEANS
from bonebayes.physiology.precursor import PrecursorPool, pool_mask
from bonebayes.physiology.signalling import DrugEffects
from bonebayes.physiology.simulate import PhysiologyParams
from bonebayes.physiology.turnover import TurnoverRates


@dataclass
class PopulationParams:
    """PyTensor variables of the population level, with the axis labels they are defined on."""

    k_C: Any
    k_B: Any
    k_M: Any  # (site,)
    lam: Any  # (site,)
    gamma: Any  # (hormone,) elasticities of the resorption stimulus (after the ratio-driver choice)
    e_form: Any
    g_rankl: Any
    g_opg: Any
    alpha: Any
    res: DrugEffects
    ana: DrugEffects
    kappa: Any  # (anabolic,) remodelling coupling, or None
    sites: tuple[str, ...]
    hormones: tuple[str, ...]
    antiresorptives: tuple[str, ...]
    anabolics: tuple[str, ...]
    pool: tuple[Any, Any] | None = None  # (k_Q, eta) of the precursor-pool variant, or None

    @staticmethod
    def _take(vec: Any, have: Sequence[str], want: Sequence[str]) -> Any:
        if tuple(have) == tuple(want):
            return vec
        if not want:
            import pytensor.tensor as pt

            return pt.zeros((0,))
        return vec[np.array([list(have).index(w) for w in want])]

    def site_rates(self, sites: Sequence[str]) -> tuple[Any, Any]:
        """(k_M, lambda) for ``sites`` (a subset of ``self.sites``)."""
        return self._take(self.k_M, self.sites, sites), self._take(self.lam, self.sites, sites)

    def hormone_coefs(self, hormones: Sequence[str]) -> dict[str, Any]:
        return {k: self._take(getattr(self, k), self.hormones, hormones)
                for k in ("gamma", "e_form", "g_rankl", "g_opg")}

    def physiology(self, hormones: Sequence[str], res: Sequence[str], ana: Sequence[str], k_M: Any,
                   lam: Any) -> PhysiologyParams:
        """Physiology parameters for a block whose schedule has these hormone and drug axes."""
        import pytensor.tensor as pt

        h = self.hormone_coefs(hormones)
        res_fx = (DrugEffects(self._take(self.res.emax, self.antiresorptives, res),
                              self._take(self.res.ec50, self.antiresorptives, res))
                  if res else DrugEffects(pt.zeros((0,)), pt.ones((0,))))
        ana_fx = (DrugEffects(self._take(self.ana.emax, self.anabolics, ana),
                              self._take(self.ana.ec50, self.anabolics, ana))
                  if ana else DrugEffects(pt.zeros((0,)), pt.ones((0,))))
        kappa = None if (self.kappa is None or not ana) else self._take(self.kappa, self.anabolics, ana)
        pool = None
        if self.pool is not None and res:
            pool = PrecursorPool(self.pool[0], self.pool[1], pool_mask(res))
        return PhysiologyParams(h["gamma"], h["e_form"], res_fx, ana_fx,
                                TurnoverRates(self.k_C, self.k_B, k_M, lam), self.alpha, kappa, pool)


def union(*seqs: Sequence[str], order: Sequence[str] | None = None) -> tuple[str, ...]:
    """Union of label sequences, in ``order`` when given, else first-seen order."""
    seen = dict.fromkeys(x for s in seqs for x in s)
    if order is not None:
        return tuple(x for x in order if x in seen) + tuple(x for x in seen if x not in order)
    return tuple(seen)


def build_population(
    sites: Sequence[str],
    hormones: Sequence[str],
    antiresorptives: Sequence[str],
    anabolics: Sequence[str],
    ratio_driver: str = "latent",
    anabolic_coupling: bool = False,
    signalling: str = "separate",
    precursor_pool: bool = False,
) -> PopulationParams:
    """Create the population-level random variables in the current model context.

    The model's coords must already hold ``site``, ``hormone``, ``antiresorptive`` and ``anabolic`` with these
    labels. Variables are created in a fixed order (the order of a saved fit's parameters).

    Variants (defaults reproduce the default model exactly): ``signalling="ratio"`` replaces the separate serum
    elasticities by one ratio elasticity g_ratio (g_rankl = g_ratio / 2, g_opg = -g_ratio / 2, kept as
    deterministics under their usual names); ``precursor_pool=True`` adds k_Q and eta_pool
    (``physiology.precursor``), created last.
    """
    if signalling not in ("separate", "ratio"):
        raise ValueError(f"signalling must be 'separate' or 'ratio' (got {signalling!r})")
    import pymc as pm
    import pytensor.tensor as pt

    k_C = PRIORS["k_C"].build("k_C")
    k_B = PRIORS["k_B"].build("k_B")
    km_mu = np.array([SITE_KM_MEANS.get(s, PRIORS["k_M"].a) for s in sites])
    special = bool(np.any(km_mu != PRIORS["k_M"].a))
    k_M = PRIORS["k_M"].build("k_M", dims="site", mu=km_mu if special else None)
    lam = PRIORS["lam"].build("lam", dims="site")

    def hormone_vec(name: str) -> Any:
        if not hormones:
            return pt.zeros((0,))
        mu = np.array([HORMONE_MEANS[name][h] for h in hormones])
        sd = HORMONE_SDS.get(name, {})
        if any(h in sd for h in hormones):
            return PRIORS[name].build(name, dims="hormone", mu=mu,
                                      sigma=np.array([sd.get(h, PRIORS[name].b) for h in hormones]))
        return PRIORS[name].build(name, dims="hormone", mu=mu)

    gamma, e_form = hormone_vec("gamma"), hormone_vec("e_form")
    if signalling == "ratio":
        g_ratio = hormone_vec("g_ratio")
        g_rankl = pm.Deterministic("g_rankl", 0.5 * g_ratio, dims="hormone") if hormones else pt.zeros((0,))
        g_opg = pm.Deterministic("g_opg", -0.5 * g_ratio, dims="hormone") if hormones else pt.zeros((0,))
    else:
        g_rankl, g_opg = hormone_vec("g_rankl"), hormone_vec("g_opg")
    if ratio_driver == "serum":
        alpha = pm.LogNormal("alpha", 0.0, 0.7)
        gamma_eff = g_rankl - g_opg
    else:
        alpha, gamma_eff = 1.0, gamma
    if antiresorptives:
        res = DrugEffects(PRIORS["emax_res"].build("emax_res", dims="antiresorptive"),
                          PRIORS["ec50_res"].build("ec50_res", dims="antiresorptive"))
    else:
        res = DrugEffects(pt.zeros((0,)), pt.ones((0,)))
    if anabolics:
        eref = PRIORS["eref_ana"].build("eref_ana", dims="anabolic")
        ec50_ana = PRIORS["ec50_ana"].build("ec50_ana", dims="anabolic")
        ana = DrugEffects(pm.Deterministic("emax_ana", eref * (1.0 + ec50_ana), dims="anabolic"), ec50_ana)
    else:
        ana = DrugEffects(pt.zeros((0,)), pt.ones((0,)))
    kappa = PRIORS["kappa_ana"].build("kappa_ana", dims="anabolic") if (anabolics and anabolic_coupling) else None
    pool = (PRIORS["k_Q"].build("k_Q"), PRIORS["eta_pool"].build("eta_pool")) if precursor_pool else None
    return PopulationParams(k_C, k_B, k_M, lam, gamma_eff, e_form, g_rankl, g_opg, alpha, res, ana, kappa,
                            tuple(sites), tuple(hormones), tuple(antiresorptives), tuple(anabolics), pool)
