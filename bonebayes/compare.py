"""Model comparison: PSIS-LOO with Pareto-k diagnostics, a grouped K-fold fallback, and stacking weights.

For each variant (``bonebayes.variants``) the model is fitted, the pointwise log-likelihood of every
observation is computed with PyMC (``pymc.compute_log_likelihood``; nutpie does not store it) and PSIS-LOO
estimates the expected log predictive density (elpd). Where any observation has Pareto k > ``k_threshold``
(0.7) the importance-sampling estimate is unreliable, and every variant is then scored by grouped K-fold
cross-validation instead (the same folds for all): groups are subjects (individual data) or studies
(published arms); each fold's groups are left out of the likelihood (``holdout_subjects`` /
``holdout_studies``), the model refitted, and the held-out groups' joint log predictive density computed,
elpd_g = log mean_s prod_{i in g} p(y_i | theta_s). Stacking weights (Yao et al. 2018) maximise
sum_i log sum_k w_k exp(elpd_ik) over the pointwise values of whichever estimate ranks the variants.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from bonebayes import _arviz
from bonebayes._atomic import write_text_atomic
from bonebayes.variants import Variant, get_variant

K_THRESHOLD = 0.7
"""Pareto k above which PSIS-LOO is unreliable for an observation (Vehtari et al. 2024)."""


# --------------------------------------------------------------------------- data for a comparison
@dataclass
class ComparisonData:
    """What the variants are fitted to: published evidence, or a synthetic cohort with a known truth."""

    kind: str  # "published" or "individual"
    evidence: Any = None
    observations: pd.DataFrame | None = None
    exposures: pd.DataFrame | None = None
    truth_variant: str | None = None  # the generating variant of a synthetic cohort
    label: str = ""

    def model(self, variant: Variant, **extra: Any) -> Any:
        """The variant's model object for these data (``extra``: config overrides such as holdouts)."""
        from bonebayes.variants import build_variant_model

        if variant.kind != self.kind:
            raise ValueError(f"variant {variant.name!r} is a {variant.kind} model; the data are {self.kind} "
                             f"({self.label}): choose {self.kind}* variants")
        return build_variant_model(variant, evidence=self.evidence, observations=self.observations,
                                   exposures=self.exposures, **extra)


def published_data() -> ComparisonData:
    from bonebayes.datasets.published import load_published

    return ComparisonData("published", evidence=load_published(), label="shipped published evidence")


REBOUND_TRUTH: dict[str, float] = {"k_Q": 0.12, "eta_pool": 1.0}
"""Precursor-pool truth of the synthetic comparison cohort (pool half-life about 6 months, strong rebound)."""


def synthetic_design(n_subjects: int = 60, n_cohorts: int = 2) -> Any:
    """A small cohort in which stopping denosumab is observed: placebo, alendronate, denosumab 0-12 months
    then off for a year (markers at 0, 3, 6, 12, 15, 18, 24 months; BMD at 0, 12, 24)."""
    from bonebayes.datasets.synthetic import DEFAULT_ARMS, SyntheticDesign

    arms = {"placebo": [], "alendronate_10": DEFAULT_ARMS["alendronate_10"],
            "denosumab_12_stop": [dict(drug="denosumab", dose=60, unit="mg", every_months=6, start_month=0,
                                       stop_month=12)]}
    cohort_arms = (("placebo", "alendronate_10", "denosumab_12_stop"), ("placebo", "denosumab_12_stop"))
    return SyntheticDesign(n_subjects=n_subjects, n_cohorts=n_cohorts, visits=(0, 3, 6, 12, 15, 18, 24),
                           bmd_visits=(0, 12, 24), serum_visits=(0, 12, 24), sites=("lumbar_spine",),
                           arms=arms, cohort_arms=cohort_arms)


def synthetic_data(truth_variant: str = "individual_rebound", n_subjects: int = 60, seed: int = 1) -> ComparisonData:
    """A synthetic cohort simulated from ``truth_variant`` (``individual`` or ``individual_rebound``)."""
    from bonebayes.datasets.synthetic import default_truth, simulate_cohort

    v = get_variant(truth_variant)
    if v.kind != "individual" or set(v.overrides) - {"precursor_pool"}:
        raise ValueError(f"truth_variant must be 'individual' or 'individual_rebound' (got {truth_variant!r}): "
                         "the synthetic generator simulates the latent-driver model with or without the pool")
    design = synthetic_design(n_subjects)
    truth = default_truth(design)
    if v.overrides.get("precursor_pool"):
        truth = {**truth, **REBOUND_TRUTH}
    coh = simulate_cohort(design, truth, seed=seed)
    return ComparisonData("individual", observations=coh.observations, exposures=coh.exposures,
                          truth_variant=truth_variant,
                          label=f"synthetic cohort ({n_subjects} subjects, truth {truth_variant}, seed {seed})")


# --------------------------------------------------------------------------- pointwise log-likelihood
def pointwise_log_likelihood(model_obj: Any, idata: Any) -> tuple[xr.DataArray, np.ndarray]:
    """(log-likelihood (chain, draw, obs) of every observation with a likelihood, group label per obs).

    Groups: the subject of each individual observation, the study of each published row.
    """
    import pymc as pm

    model = model_obj.model
    names = [v.name for v in model.observed_RVs]
    ll = pm.compute_log_likelihood(idata, var_names=names, model=model, extend_inferencedata=False,
                                   progressbar=False)
    parts, groups = [], []
    data = model_obj.data
    for name in names:
        da = ll[name]
        obs_dims = [d for d in da.dims if d not in ("chain", "draw")]
        parts.append(da.stack(obs=obs_dims) if len(obs_dims) > 1 else da.rename({obs_dims[0]: "obs"}))
        groups.append(_groups_of(name, data))
    out = xr.concat([p.drop_vars([c for c in p.coords if c not in ("chain", "draw")]) for p in parts], dim="obs")
    return out.transpose("chain", "draw", "obs"), np.concatenate(groups)


def _groups_of(name: str, data: Any) -> np.ndarray:
    if name == "obs_published":
        return data.rows["study"].to_numpy(str)[data.fit]
    block = {"obs_markers": "markers", "obs_bmd": "bmd", "obs_serum": "serum"}[name]
    return np.asarray(data.subjects)[getattr(data, block).unit]


def loo_result(log_lik: xr.DataArray, idata: Any) -> dict[str, Any]:
    """PSIS-LOO (elpd, se, p_loo, pointwise elpd and Pareto k) from a (chain, draw, obs) log-likelihood."""
    return _arviz.loo(_arviz.with_log_likelihood(idata, log_lik))


# --------------------------------------------------------------------------- grouped K-fold
def assign_folds(groups: Sequence[str], k: int, seed: int = 0) -> list[list[str]]:
    """Split the unique ``groups`` into ``k`` folds of near-equal size (seeded shuffle)."""
    uniq = sorted(set(map(str, groups)))
    if k < 2 or k > len(uniq):
        raise ValueError(f"kfold must be between 2 and the number of groups ({len(uniq)}); got {k}")
    order = np.random.default_rng(seed).permutation(len(uniq))
    return [sorted(uniq[i] for i in part) for part in np.array_split(order, k)]


def heldout_log_likelihood(model_obj: Any, idata: Any) -> tuple[np.ndarray, np.ndarray]:
    """Per-draw log density of the held-out observations (samples, n_held) and their group labels."""
    post = idata.posterior
    data = model_obj.data
    if hasattr(data, "rows"):  # published: rows without likelihood, Student-t / Normal as in the model
        from scipy import stats

        held = ~data.fit
        pred = post["pub_pred"].values.reshape(-1, data.n_rows)[:, held]
        sd = post["pub_sd"].values.reshape(-1, data.n_rows)[:, held]
        y = data.y[held][None, :]
        ll = (stats.norm.logpdf(y, pred, sd) if data.nu is None else stats.t.logpdf(y, data.nu, pred, sd))
        return ll, data.rows["study"].to_numpy(str)[held]
    held = np.isin(np.asarray(data.subjects), list(model_obj.config.holdout_subjects))
    ll = post["holdout_loglik"].values.reshape(-1, post["holdout_loglik"].shape[-1])
    subj = np.concatenate([np.asarray(data.subjects)[b.unit[held[b.unit]]]
                           for b in (data.markers, data.bmd, data.serum) if len(b)])
    return ll, subj


def group_elpd(log_lik: np.ndarray, groups: np.ndarray) -> pd.Series:
    """elpd_g = log mean_s exp(sum_{i in g} log p(y_i | theta_s)) for each group g."""
    from scipy.special import logsumexp

    out = {}
    for g in sorted(set(groups)):
        tot = log_lik[:, groups == g].sum(axis=1)
        out[g] = float(logsumexp(tot) - np.log(len(tot)))
    return pd.Series(out)


def grouped_kfold(
    data: ComparisonData, variant: Variant, folds: Sequence[Sequence[str]], fit_kwargs: dict[str, Any],
    out_dir: Path | None = None, log: Callable[[str], None] | None = None,
) -> pd.Series:
    """K-fold elpd per group for one variant (each fold refitted without its groups); resumable on disk."""
    key = "holdout_studies" if data.kind == "published" else "holdout_subjects"
    parts = []
    for f, held in enumerate(folds):
        path = out_dir / f"{variant.name}_fold{f}.json" if out_dir else None
        request = {"variant": variant.name, "held": list(held), **{k: v for k, v in fit_kwargs.items()
                                                                  if k != "progress"}}
        if path is not None and path.exists():
            saved = json.loads(path.read_text())
            if saved.get("request") == request:
                parts.append(pd.Series(saved["elpd"]))
                continue
        if log:
            log(f"{variant.name}: K-fold {f + 1}/{len(folds)} (refit without {len(held)} groups)")
        model_obj = data.model(variant, **{key: tuple(held)})
        fit = model_obj.fit(**fit_kwargs)
        ll, groups = heldout_log_likelihood(model_obj, fit.idata)
        elpd = group_elpd(ll, groups)
        if path is not None:
            write_text_atomic(json.dumps({"request": request, "elpd": elpd.to_dict(),
                                          "rhat_max": fit.verdict.rhat_max,
                                          "divergences": fit.verdict.divergences}, indent=1), path)
        parts.append(elpd)
    return pd.concat(parts).sort_index()


# --------------------------------------------------------------------------- stacking
def stacking_weights(lpd: np.ndarray) -> np.ndarray:
    """Stacking weights from pointwise log predictive densities ``lpd`` (n points, K models)."""
    from scipy.optimize import minimize
    from scipy.special import logsumexp, softmax

    lpd = np.asarray(lpd, dtype=float)
    n, K = lpd.shape
    if K == 1:
        return np.ones(1)

    def objective(z: np.ndarray) -> float:
        w = softmax(np.append(z, 0.0))
        return -float(np.sum(logsumexp(lpd, axis=1, b=w[None, :])))

    res = minimize(objective, np.zeros(K - 1), method="BFGS")
    return softmax(np.append(res.x, 0.0))


# --------------------------------------------------------------------------- the comparison
@dataclass
class VariantResult:
    variant: Variant
    loo: dict[str, Any]
    groups: np.ndarray
    verdict: Any
    wall_time_s: float
    kfold: pd.Series | None = None
    fit_path: str | None = None


@dataclass
class Comparison:
    """The comparison table plus the per-variant LOO / K-fold details."""

    table: pd.DataFrame
    results: dict[str, VariantResult] = field(default_factory=dict)
    method: str = "loo"
    folds: list[list[str]] | None = None
    data_label: str = ""


def fit_variant(data: ComparisonData, variant: Variant, fit_kwargs: dict[str, Any],
                out_dir: Path | None = None, log: Callable[[str], None] | None = None) -> VariantResult:
    """Fit one variant (or reuse its saved fit with the same data, config and settings) and run PSIS-LOO."""
    from bonebayes.fit import Fit

    model_obj = data.model(variant)
    path = out_dir / f"{variant.name}.nc" if out_dir else None
    fit = None
    if path is not None and path.exists():
        old = Fit.load(path)
        if old.reusable_for(model_obj, {k: fit_kwargs[k] for k in ("draws", "tune", "chains", "seed", "sampler")}):
            fit = old
            fit.diagnose(warn=False)
    t = time.perf_counter()
    if fit is None:
        if log:
            log(f"fitting {variant.name}")
        fit = model_obj.fit(**fit_kwargs)
        if path is not None:
            fit.save(path)
    ll, groups = pointwise_log_likelihood(model_obj, fit.idata)
    res = loo_result(ll, fit.idata)
    wall = float(fit.provenance.get("wall_time_s") or (time.perf_counter() - t))
    return VariantResult(variant, res, groups, fit.verdict, wall, fit_path=str(path) if path else None)


def compare_variants(
    data: ComparisonData,
    variants: Sequence[str],
    *,
    draws: int = 1000,
    tune: int = 1000,
    chains: int = 4,
    seed: int = 1,
    sampler: str = "nutpie",
    kfold: int | None = 5,
    k_threshold: float = K_THRESHOLD,
    output: str | Path | None = None,
    log: Callable[[str], None] | None = None,
) -> Comparison:
    """Fit each variant, score it by PSIS-LOO (or grouped K-fold where Pareto k is high), rank and stack.

    ``kfold=None`` (or 0) never refits: variants with high Pareto k are then flagged but still ranked by LOO.
    With ``output`` every fit (``NAME.nc``) and fold result is saved there and reused by a rerun.
    """
    if not variants:
        raise ValueError("variants: give at least one variant name")
    vs = [get_variant(v) for v in variants]
    if len({v.name for v in vs}) != len(vs):
        raise ValueError(f"variants: duplicate names in {list(variants)}")
    out_dir = Path(output) if output else None
    if out_dir:
        out_dir.mkdir(parents=True, exist_ok=True)
    fit_kwargs = {"draws": draws, "tune": tune, "chains": chains, "seed": seed, "sampler": sampler,
                  "progress": False}
    results = {v.name: fit_variant(data, v, fit_kwargs, out_dir, log) for v in vs}
    high = {n: int(np.sum(r.loo["pareto_k"] > k_threshold)) for n, r in results.items()}
    method, folds = "loo", None
    if any(high.values()) and kfold:
        groups = next(iter(results.values())).groups
        folds = assign_folds(groups, min(int(kfold), len(set(groups))), seed)
        method = f"kfold{len(folds)}"
        for n, r in results.items():
            r.kfold = grouped_kfold(data, r.variant, folds, fit_kwargs, out_dir, log)
    table = comparison_table(results, method, k_threshold)
    comp = Comparison(table, results, method, folds, data.label)
    if out_dir:
        from bonebayes.datasets.io import write_table_atomic

        write_table_atomic(table.reset_index(), out_dir / "comparison.csv")
        write_text_atomic(render_comparison(comp), out_dir / "comparison.md")
    return comp


def comparison_table(results: dict[str, VariantResult], method: str, k_threshold: float = K_THRESHOLD
                     ) -> pd.DataFrame:
    """One row per variant, best first: elpd (of ``method``), se, difference to the best with its paired se,
    stacking weight, LOO elpd / se / p_loo and Pareto-k counts, convergence and wall time."""
    names = list(results)
    if method == "loo":
        point = np.column_stack([results[n].loo["elpd_i"] for n in names])
    else:
        point = np.column_stack([results[n].kfold.to_numpy() for n in names])
    elpd = point.sum(axis=0)
    n = point.shape[0]
    se = np.sqrt(n * point.var(axis=0, ddof=0)) if n > 1 else np.zeros(len(names))
    best = int(np.argmax(elpd))
    diff = point - point[:, [best]]
    se_diff = np.sqrt(n * diff.var(axis=0, ddof=0)) if n > 1 else np.zeros(len(names))
    weights = stacking_weights(point)
    rows = []
    for j, name in enumerate(names):
        r = results[name]
        k = r.loo["pareto_k"]
        rows.append({
            "variant": name, "method": method, "elpd": elpd[j], "se": se[j], "elpd_diff": elpd[j] - elpd[best],
            "se_diff": se_diff[j], "weight": weights[j], "elpd_loo": r.loo["elpd"], "se_loo": r.loo["se"],
            "p_loo": r.loo["p_loo"], "n_points": len(k), "k_good": int(np.sum(k <= 0.5)),
            "k_ok": int(np.sum((k > 0.5) & (k <= k_threshold))), "k_bad": int(np.sum(k > k_threshold)),
            "k_max": float(np.max(k)), "converged": bool(getattr(r.verdict, "ok", False)),
            "rhat_max": float(getattr(r.verdict, "rhat_max", np.nan)),
            "divergences": int(getattr(r.verdict, "divergences", 0)), "wall_time_s": r.wall_time_s,
            "description": r.variant.description,
        })
    return pd.DataFrame(rows).set_index("variant").sort_values("elpd", ascending=False)


def render_comparison(comp: Comparison) -> str:
    """A Markdown table of the comparison with a one-paragraph legend."""
    t = comp.table
    cols = ["method", "elpd", "se", "elpd_diff", "se_diff", "weight", "elpd_loo", "p_loo", "k_good", "k_ok",
            "k_bad", "converged", "wall_time_s"]
    lines = [f"# Model comparison: {comp.data_label}", "",
             "| variant | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for name, r in t.iterrows():
        vals = [f"{r[c]:.2f}" if isinstance(r[c], float) else str(r[c]) for c in cols]
        lines.append(f"| {name} | " + " | ".join(vals) + " |")
    lines += ["", f"Ranked by {comp.method} elpd (higher is better); elpd_diff and se_diff are paired "
              "differences to the best variant; weight = stacking weight. Pareto k: good <= 0.5 < ok <= 0.7 "
              "< bad (PSIS-LOO unreliable for those points; K-fold is then used for all variants when "
              "enabled)."]
    if comp.folds:
        lines.append(f"K-fold groups per fold: {', '.join(str(len(f)) for f in comp.folds)}.")
    return "\n".join(lines) + "\n"
