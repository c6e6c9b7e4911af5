"""Posterior draws -> batched physiology parameters (a leading draw axis), with an explicit prior fallback.

A projection evaluates the same NumPy physics as the fitted model (:func:`bonebayes.physiology.simulate`)
once, with every parameter carrying a leading axis of D posterior draws. A scenario may use a hormone, drug
or site the fit has no posterior for (e.g. a GH secretagogue acts through IGF-1, which the published
evidence does not inform): that is an error naming what is missing, unless ``allow_prior`` is set, in which
case the missing parameters are drawn from their priors (:mod:`bonebayes.models.priors`) and listed.

Between-study heterogeneity of the published model (a k_M multiplier exp(tau_kM_study z) and an extra BMD
drift tau_drift u, %/year) is handled by ``study_effects``:

* ``"new"`` (default): z, u ~ N(0, 1) drawn once per posterior draw, shared by all arms (a new trial
  population: honest bands for one population; contrasts are paired, and the drift cancels in them);
* ``"none"``: z = u = 0, the population-average response;
* a study name from the fit (e.g. ``"FREEDOM"``): that study's fitted effects.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import xarray as xr

from bonebayes.models.priors import HORMONE_MEANS, HORMONE_SDS, PRIORS, SITE_KM_MEANS
from bonebayes.physiology.precursor import PrecursorPool, pool_mask
from bonebayes.physiology.signalling import DrugEffects
from bonebayes.physiology.simulate import PhysiologyParams
from bonebayes.physiology.turnover import TurnoverRates


class ProjectionError(ValueError):
    """A projection that cannot be made as asked (missing posterior, unknown study, bad option)."""


@dataclass
class DrawParameters:
    """Parameters for D draws, aligned with one schedule's hormone / drug axes and the scenario's sites."""

    physiology: PhysiologyParams  # k_C (D,), k_M (D, S), gamma (D, H), ...
    serum_ratio: np.ndarray  # (D, H) g_rankl - g_opg: elasticity of the serum log RANKL/OPG ratio
    drift: np.ndarray  # (D,) extra BMD drift (%/year) of the (new or named) study
    kM_multiplier: np.ndarray  # (D,) study multiplier already applied to physiology.rates.k_M
    from_prior: list[str] = field(default_factory=list)  # parameters drawn from their priors
    study_effects: str = "new"
    study_effects_note: str = ""
    rebound: bool = False  # the fit has the osteoclast-precursor pool (denosumab rebound variant)


def stack_draws(posterior: xr.Dataset) -> xr.Dataset:
    """Posterior with (chain, draw) stacked into one ``sample`` axis (chain-major order)."""
    if "chain" in posterior.dims and "draw" in posterior.dims:
        return posterior.stack(sample=("chain", "draw"))
    if "sample" in posterior.dims:
        return posterior
    raise ProjectionError("the posterior has no chain/draw dimensions")


def draw_indices(total: int, draws: int | None) -> np.ndarray:
    """Evenly spaced indices of ``draws`` out of ``total`` stacked draws (all when None or larger)."""
    if draws is None or draws >= total:
        return np.arange(total)
    if draws < 1:
        raise ProjectionError(f"draws must be >= 1 (got {draws})")
    return np.unique(np.linspace(0, total - 1, draws).round().astype(int))


def _vec(post: xr.Dataset, name: str, dim: str, labels: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """Values (D, len(labels)) of a labelled vector; NaN columns and their labels where the fit lacks them."""
    D = post.sizes["sample"]
    out = np.full((D, len(labels)), np.nan)
    if name not in post:
        return out, list(labels)
    da = post[name]
    have = [str(v) for v in da[dim].values] if dim in da.dims else []
    missing = []
    for j, lab in enumerate(labels):
        if lab in have:
            out[:, j] = da.sel({dim: lab}).transpose("sample").values
        else:
            missing.append(lab)
    return out, missing


def _scalar(post: xr.Dataset, name: str) -> np.ndarray | None:
    return post[name].transpose("sample").values.astype(float) if name in post else None


def _prior(
    name: str, rng: np.random.Generator, size: tuple[int, ...], mu: Any = None, sd: Any = None
) -> np.ndarray:
    p = PRIORS[name]
    if mu is not None or sd is not None:
        p = replace(p, a=p.a if mu is None else mu, b=p.b if sd is None else sd)
    return np.asarray(p.sample(rng, size), dtype=float)


def physiology_draws(
    post: xr.Dataset,
    *,
    hormones: Sequence[str],
    antiresorptives: Sequence[str],
    anabolics: Sequence[str],
    sites: Sequence[str],
    config: dict[str, Any] | None = None,
    allow_prior: bool = False,
    study_effects: str = "new",
    rng: np.random.Generator | None = None,
    explain_missing: Any = None,
) -> DrawParameters:
    """Batched parameters from stacked posterior draws ``post`` (dimension ``sample``).

    ``explain_missing(kind, label) -> str`` says which scenario item needs a missing parameter (for errors).
    """
    rng = rng or np.random.default_rng(0)
    cfg = config or {}
    D = post.sizes["sample"]
    missing: list[tuple[str, str, str]] = []  # (parameter, axis label, kind)
    from_prior: list[str] = []

    def fill(
        name: str, values: np.ndarray, labels: Sequence[str], miss: list[str], kind: str, draw: Any
    ) -> np.ndarray:
        for lab in miss:
            j = list(labels).index(lab)
            missing.append((name, lab, kind))
            values[:, j] = draw(lab)
            from_prior.append(f"{name}[{lab}]")
        return values

    for name in ("k_C", "k_B"):
        if name not in post:
            raise ProjectionError(f"the fit has no posterior for {name}: not a bonebayes physiology fit")
    k_C, k_B = _scalar(post, "k_C"), _scalar(post, "k_B")
    k_M, miss = _vec(post, "k_M", "site", sites)
    k_M = fill("k_M", k_M, sites, miss, "site", lambda s: _prior("k_M", rng, (D,), mu=SITE_KM_MEANS.get(s)))
    lam, miss = _vec(post, "lam", "site", sites)
    lam = fill("lam", lam, sites, miss, "site", lambda s: _prior("lam", rng, (D,)))

    coefs = {}
    for name in ("gamma", "e_form", "g_rankl", "g_opg"):
        v, miss = _vec(post, name, "hormone", hormones)
        coefs[name] = fill(
            name,
            v,
            hormones,
            miss,
            "hormone",
            lambda h, n=name: _prior(n, rng, (D,), mu=HORMONE_MEANS[n][h], sd=HORMONE_SDS.get(n, {}).get(h)),
        )
    alpha: Any = 1.0
    gamma = coefs["gamma"]
    if cfg.get("ratio_driver") == "serum" or "alpha" in post:
        alpha = _scalar(post, "alpha")
        if alpha is None:
            raise ProjectionError("the fit uses the serum ratio driver but has no posterior for alpha")
        gamma = coefs["g_rankl"] - coefs["g_opg"]

    emax_r, miss_e = _vec(post, "emax_res", "antiresorptive", antiresorptives)
    ec50_r, miss_c = _vec(post, "ec50_res", "antiresorptive", antiresorptives)
    emax_r = fill(
        "emax_res", emax_r, antiresorptives, miss_e, "drug", lambda d: _prior("emax_res", rng, (D,))
    )
    ec50_r = fill(
        "ec50_res", ec50_r, antiresorptives, miss_c, "drug", lambda d: _prior("ec50_res", rng, (D,))
    )

    ec50_a, miss_c = _vec(post, "ec50_ana", "anabolic", anabolics)
    if "emax_ana" in post:
        emax_a, miss_e = _vec(post, "emax_ana", "anabolic", anabolics)
    else:  # emax = eref (1 + EC50), the model's parameterisation
        eref, miss_e = _vec(post, "eref_ana", "anabolic", anabolics)
        emax_a = eref * (1.0 + ec50_a)
    for lab in sorted(set(miss_e) | set(miss_c)):
        j = list(anabolics).index(lab)
        eref = _prior("eref_ana", rng, (D,))
        ec50 = _prior("ec50_ana", rng, (D,))
        emax_a[:, j], ec50_a[:, j] = eref * (1.0 + ec50), ec50
        missing.append(("eref_ana/ec50_ana", lab, "drug"))
        from_prior += [f"eref_ana[{lab}]", f"ec50_ana[{lab}]"]
    kappa = None
    coupling = cfg.get("anabolic_coupling", "kappa_ana" in post)
    if anabolics and coupling:
        kappa, miss = _vec(post, "kappa_ana", "anabolic", anabolics)
        kappa = fill("kappa_ana", kappa, anabolics, miss, "drug", lambda d: _prior("kappa_ana", rng, (D,)))

    if missing and not allow_prior:
        raise ProjectionError(_missing_message(post, missing, explain_missing))

    pool = None
    rebound = "k_Q" in post and "eta_pool" in post  # precursor-pool variant (physiology.precursor)
    if rebound and antiresorptives:
        pool = PrecursorPool(_scalar(post, "k_Q"), _scalar(post, "eta_pool"), pool_mask(antiresorptives))

    mult, drift, note = _study_effects(post, study_effects, rng, D)
    k_M_eff = k_M * mult[:, None]
    params = PhysiologyParams(
        gamma,
        coefs["e_form"],
        DrugEffects(emax_r, ec50_r),
        DrugEffects(emax_a, ec50_a),
        TurnoverRates(k_C, k_B, k_M_eff, lam),
        alpha,
        kappa,
        pool,
    )
    return DrawParameters(
        params, coefs["g_rankl"] - coefs["g_opg"], drift, mult, from_prior, study_effects, note, rebound
    )


def _labels(post: xr.Dataset, dim: str) -> list[str]:
    return [str(v) for v in post[dim].values] if dim in post.coords else []


def _missing_message(post: xr.Dataset, missing: list[tuple[str, str, str]], explain: Any) -> str:
    by_label: dict[tuple[str, str], list[str]] = {}
    for name, lab, kind in missing:
        by_label.setdefault((kind, lab), []).append(name)
    parts = []
    for (kind, lab), names in by_label.items():
        why = explain(kind, lab) if explain else ""
        what = {"hormone": f"hormone {lab}", "drug": f"drug {lab}", "site": f"site {lab}"}[kind]
        parts.append(f"{what}{f' ({why})' if why else ''}: no posterior for {', '.join(names)}")
    from bonebayes.regimens import DRUGS

    hormones = _labels(post, "hormone")
    drugs = (
        _labels(post, "antiresorptive")
        + _labels(post, "anabolic")
        + sorted(n for n, d in DRUGS.items() if d.kind == "hormone" and d.hormone in hormones)
    )
    return (
        "the fit cannot project this scenario: "
        + "; ".join(parts)
        + f". The fit covers drugs: {', '.join(drugs) or 'none'}; hormones: {', '.join(hormones) or 'none'}; "
        f"sites: {', '.join(_labels(post, 'site')) or 'none'}. Pass allow_prior=True (CLI: --allow-prior) "
        "to draw the missing parameters from their priors (bonebayes.models.priors); the output then "
        "lists them."
    )


def _study_effects(
    post: xr.Dataset, mode: str, rng: np.random.Generator, D: int
) -> tuple[np.ndarray, np.ndarray, str]:
    """(k_M multiplier (D,), drift %/year (D,), note) for ``mode`` (see the module docstring)."""
    has = "tau_kM_study" in post and "tau_drift" in post
    ones, zeros = np.ones(D), np.zeros(D)
    if mode == "none":
        return ones, zeros, "population-average response (no between-study effects)"
    if mode == "new":
        if not has and "tau_kM" in post:  # individual-data fit: a new subject's responsiveness
            z = rng.standard_normal(D)
            return (
                np.exp(_scalar(post, "tau_kM") * z),
                zeros,
                "a new subject: k_M multiplier exp(tau_kM z), z ~ N(0, 1) per draw, shared by all arms",
            )
        if not has:
            return ones, zeros, "the fit has no between-study effects; population-average response"
        z, u = rng.standard_normal(D), rng.standard_normal(D)
        return (
            np.exp(_scalar(post, "tau_kM_study") * z),
            _scalar(post, "tau_drift") * u,
            "a new study population: k_M multiplier exp(tau_kM_study z) and BMD drift tau_drift u (%/year), "
            "z, u ~ N(0, 1) per draw, shared by all arms",
        )
    studies = _labels(post, "study")
    if mode not in studies:
        raise ProjectionError(
            f"study_effects {mode!r} is not 'new', 'none' or a study of the fit; "
            f"studies: {', '.join(studies) or 'none'}"
        )
    z = post["z_kM_study"].sel(study=mode).transpose("sample").values
    u = post["z_drift_study"].sel(study=mode).transpose("sample").values
    return (
        np.exp(_scalar(post, "tau_kM_study") * z),
        _scalar(post, "tau_drift") * u,
        f"the fitted effects of study {mode}",
    )
