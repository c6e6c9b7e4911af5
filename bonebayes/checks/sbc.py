"""Simulation-based calibration (Talts et al. 2018): is the fitted posterior calibrated for this design?

For each replicate r: draw the parameters theta_r from the priors and data y_r from the model given theta_r
(PyMC prior predictive, on the template data's design), refit the model to y_r, and record for every scalar
population-level parameter the rank of its true value among ``rank_draws`` evenly thinned posterior draws
(0 .. rank_draws). With a correct sampler the ranks are uniform; a smile or frown shows too narrow or too wide
posteriors, a slope a bias. Uniformity is tested per parameter with a chi-square test on binned ranks and a
Kolmogorov-Smirnov test on normalised ranks (rank + U) / (L + 1), U ~ Uniform(0, 1).

Templates: a published variant uses the shipped published design (rows, arms, reported SEs) with simulated
values; an individual variant a small synthetic cohort (``n_subjects`` subjects in ``n_cohorts`` cohorts,
default 1; CTX/P1NP censored below their LOQ as in the data). An individual model keeps its observations in
pm.Data, so nutpie compiles it once per process and each replicate swaps in new values
(:class:`SBCWorkspace`). Each replicate is written atomically to
``output/replicates/rep_NNNNN.json``; a rerun with the same request skips finished replicates.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from bonebayes._atomic import write_atomic, write_text_atomic
from bonebayes.variants import get_variant

SKIP_VARS: tuple[str, ...] = ("sigma_level",)
"""Deterministic duplicates of other parameters (sigma_level stacks the sigma_* variables)."""

SCREEN_RHAT = 1.05
"""Replicates whose refit has max R-hat at most this enter the sensitivity columns ``*_screened`` of the
uniformity table: if ranks from poorly mixed refits drove a verdict, the screened p-values differ."""


@dataclass
class SBCResult:
    """Ranks (replicate x parameter), the per-parameter uniformity table, the histogram figure and timing."""

    ranks: xr.DataArray  # (replicate, parameter), integers 0..rank_draws
    table: pd.DataFrame  # per parameter: replicates, chi2, chi2_pvalue, ks_pvalue, mean/sd normalised rank
    rank_draws: int
    wall_time_s: float  # sum of the replicates' wall times (fits included)
    replicate_info: pd.DataFrame  # per replicate: seed, wall time, R-hat, divergences
    figure: Any = None


def template_model(variant_name: str, *, n_subjects: int = 20, n_cohorts: int = 1, seed: int = 0
                   ) -> tuple[Any, dict[str, float]]:
    """The variant's model object on its SBC template design, and the LOQ per censored variable.

    One cohort by default: with two, the cohort SD is all but unidentified and a third of the replicates of a
    trial run fell into its funnel (159 divergences, 1,023 leapfrog steps per draw in one chain).
    """
    v = get_variant(variant_name)
    if v.kind == "published":
        from bonebayes.models.published import PublishedModel

        return PublishedModel(None, v.config()), {}
    from bonebayes.datasets.synthetic import SyntheticDesign, simulate_cohort
    from bonebayes.models.individual import IndividualModel

    if n_subjects < 2:
        raise ValueError(f"n_subjects must be >= 2 (got {n_subjects})")
    design = SyntheticDesign(n_subjects=n_subjects, n_cohorts=n_cohorts)
    coh = simulate_cohort(design, seed=seed)
    return IndividualModel(coh.observations, coh.exposures, v.config()), dict(design.loq)


def _flatten(ds: xr.Dataset, names: list[str]) -> dict[str, np.ndarray]:
    """{label: values over the leading sample axis} for scalar elements of ``names``."""
    out: dict[str, np.ndarray] = {}
    for name in names:
        if name not in ds or name in SKIP_VARS:
            continue
        da = ds[name]
        dims = [d for d in da.dims if d not in ("chain", "draw")]
        flat = da.values.reshape(-1, *da.shape[2:])
        if not dims:
            out[name] = flat
        elif len(dims) == 1:
            for k, lab in enumerate(da[dims[0]].values):
                out[f"{name}[{lab}]"] = flat[:, k]
    return out


SWAP_DATA: dict[str, tuple[str, ...]] = {"obs_markers": ("y_markers", "censored_markers"),
                                         "obs_bmd": ("y_bmd",), "obs_serum": ("y_serum",)}
"""Observed variable -> the model's pm.Data holding its values (and censoring flags) for an individual model."""


class SBCWorkspace:
    """A variant's template design with its prior simulator and (for nutpie) its log density compiled once.

    Each replicate then costs one forward draw and one fit: no model rebuild, no PyTensor or JAX recompile.
    Build one per process (:func:`workspace` caches them), since compiled functions are not picklable.
    """

    def __init__(self, template: Any, loq: dict[str, float]) -> None:
        from pymc.sampling.forward import compile_forward_sampling_function

        self.template, self.loq = template, loq
        model = template.model
        self.model = model
        self.truth_vars = template.population_vars()
        self.obs_names = [v.name for v in model.observed_RVs]
        self._names = list(dict.fromkeys(self.truth_vars + self.obs_names))
        self._draw, _ = compile_forward_sampling_function([model[n] for n in self._names], vars_in_trace=[],
                                                          basic_rvs=model.basic_RVs, givens_dict=None,
                                                          random_seed=0, allow_input_downcast=True,
                                                          accept_inplace=True)
        self.swappable = all(d in {v.name for v in model.data_vars}
                             for o in self.obs_names for d in SWAP_DATA.get(o, ("?",)))
        self._compiled: dict[Any, tuple[Any, Any, Any]] = {}  # layout key -> (model object, compiled, starts)

    def simulate(self, seed: int) -> tuple[Any, dict[str, float], dict[str, np.ndarray]]:
        """(template data with simulated values, flattened true population parameters, pm.Data values)."""
        from pymc.pytensorf import reseed_rngs
        from pytensor.tensor.random.var import RandomGeneratorSharedVariable

        reseed_rngs([v for v in self._draw.get_shared() if isinstance(v, RandomGeneratorSharedVariable)], seed)
        values = dict(zip(self._names, self._draw()))
        model = self.model
        ds = xr.Dataset({n: (("chain", "draw", *model.named_vars_to_dims.get(n, ())),
                             np.asarray(values[n])[None, None]) for n in self.truth_vars},
                        coords={k: list(v) for k, v in model.coords.items() if v is not None})
        truth = {k: float(v[0]) for k, v in _flatten(ds, self.truth_vars).items()}
        data, swap = simulated_data(self.template.data, {o: values[o] for o in self.obs_names}, self.loq)
        return data, truth, swap

    def _compiled_for(self, data: Any, swap_names: list[str]) -> tuple[Any, Any, Any]:
        """(model object, compiled nutpie model, chain starts) for ``data``'s sampling layout.

        The individual model centres each subject intercept or not from the data
        (``models.layout.level_layout``): the same distribution, so a replicate whose data call for another
        layout is fitted by a model built on its data, compiled once per layout and then reused like the
        template's (``with_data``).
        """
        from bonebayes.inference import compile_nutpie
        from bonebayes.initial_points import ChainStarts

        key = _layout_key(self.template, data)
        if key not in self._compiled:
            model_obj = self.template if key == _layout_key(self.template, self.template.data) else \
                _with_data(self.template, data)
            self._compiled[key] = (model_obj, compile_nutpie(model_obj.model, swap_data=swap_names),
                                   ChainStarts(model_obj.model))  # same names as the clone's (order differs)
        return self._compiled[key]

    def fit(self, data: Any, swap: dict[str, np.ndarray], *, seed: int, draws: int, tune: int, chains: int,
            sampler: str) -> tuple[Any, Any]:
        """Posterior (InferenceData) and diagnostics verdict of the model refitted to one simulated dataset."""
        from bonebayes.inference import diagnose, sample_compiled, with_chain_starts

        target_accept = getattr(self.template, "TARGET_ACCEPT", 0.9)  # the model's own default
        if sampler == "nutpie" and self.swappable:
            model_obj, compiled, starts = self._compiled_for(data, list(swap))
            if hasattr(model_obj, "initial_values"):  # data-informed level starts for this replicate
                init = model_obj.initial_values(data)
                compiled = with_chain_starts(compiled, starts.with_overrides(init, model_obj.no_jitter(init)))
            idata = sample_compiled(compiled, swap, draws=draws, tune=tune, chains=chains, seed=seed,
                                    target_accept=target_accept, progress=False)
            return idata, diagnose(idata, self.truth_vars, warn=False)
        fit = _with_data(self.template, data).fit(draws=draws, tune=tune, chains=chains, seed=seed, sampler=sampler,
                                                  progress=False)
        return fit.idata, fit.verdict


@functools.lru_cache(maxsize=4)
def workspace(variant_name: str, n_subjects: int = 20, n_cohorts: int = 1, template_seed: int = 0) -> SBCWorkspace:
    """The cached :class:`SBCWorkspace` of a variant on its template design (one per process)."""
    template, loq = template_model(variant_name, n_subjects=n_subjects, n_cohorts=n_cohorts, seed=template_seed)
    return SBCWorkspace(template, loq)


def simulated_data(data: Any, draws: dict[str, np.ndarray], loq: dict[str, float]
                   ) -> tuple[Any, dict[str, np.ndarray]]:
    """The template ``data`` with simulated observations (markers below their LOQ censored at it).

    Returns the new data object and the matching values of the model's pm.Data (see :data:`SWAP_DATA`).
    """
    if hasattr(data, "rows"):  # published: only fitted rows have a likelihood
        y = data.y.copy()
        y[data.fit] = np.asarray(draws["obs_published"]).reshape(-1)
        return dataclasses.replace(data, y=y), {}
    blocks, swap = {}, {}
    for name, field_ in (("obs_markers", "markers"), ("obs_bmd", "bmd"), ("obs_serum", "serum")):
        if name not in draws:
            continue
        block = getattr(data, field_)
        logv = np.asarray(draws[name], dtype=float).reshape(-1)
        cens = np.zeros(len(logv), bool)
        if name == "obs_markers":
            lim = np.log(np.array([loq.get(v, 0.0) or np.nan for v in block.variable]))
            cens = np.isfinite(lim) & (logv < lim)
            logv = np.where(cens, lim, logv)
            swap["censored_markers"] = cens.astype("int8")
        swap[SWAP_DATA[name][0]] = logv
        blocks[field_] = dataclasses.replace(block, log_value=logv, censored=cens)
    return dataclasses.replace(data, **blocks), swap


def _with_data(model_obj: Any, data: Any) -> Any:
    """A copy of the model object whose PyMC model is built on ``data``."""
    import copy

    new = copy.copy(model_obj)
    new.data = data
    new._model = None
    return new


def _layout_key(model_obj: Any, data: Any) -> Any:
    """The sampling layout a model object would use on ``data`` (``None`` for models without one)."""
    if not hasattr(data, "levels"):
        return None
    from bonebayes.models.layout import level_layout

    return tuple(sorted(level_layout(data, model_obj.config).items()))


def rank_of(truth: float, draws: np.ndarray, rank_draws: int) -> int:
    """Rank of ``truth`` among ``rank_draws`` evenly thinned draws: the number of draws below it."""
    idx = np.unique(np.linspace(0, len(draws) - 1, min(rank_draws, len(draws))).round().astype(int))
    return int(np.sum(draws[idx] < truth))


def rank_uniformity(ranks: np.ndarray, rank_draws: int, bins: int | None = None, seed: int = 0
                    ) -> dict[str, float]:
    """Chi-square (binned ranks) and KS (normalised ranks) uniformity tests for one parameter's ranks."""
    from scipy import stats

    r = np.asarray(ranks, dtype=float)
    r = r[np.isfinite(r)]
    n = len(r)
    L1 = rank_draws + 1
    B = bins or int(min(L1, max(2, min(20, n // 5))))
    counts = np.bincount(np.minimum((r * B // L1).astype(int), B - 1), minlength=B)
    chi = stats.chisquare(counts) if n else None
    u = (r + np.random.default_rng(seed).uniform(size=n)) / L1
    return {"replicates": n, "bins": B, "chi2": float(chi.statistic) if n else np.nan,
            "chi2_pvalue": float(chi.pvalue) if n else np.nan,
            "ks_pvalue": float(stats.kstest(u, "uniform").pvalue) if n else np.nan,
            "mean_normalised_rank": float(u.mean()) if n else np.nan,
            "sd_normalised_rank": float(u.std()) if n else np.nan}


def run_sbc(
    variant_name: str,
    replicates: int,
    *,
    draws: int = 200,
    tune: int = 200,
    chains: int = 2,
    seed: int = 0,
    sampler: str = "nutpie",
    rank_draws: int = 99,
    n_subjects: int = 20,
    n_cohorts: int = 1,
    output: str | Path | None = None,
    log: Callable[[str], None] | None = None,
    screen_rhat: float = SCREEN_RHAT,
) -> SBCResult:
    """Run (or resume) ``replicates`` SBC replicates of a registered variant; see the module docstring."""
    if replicates < 1:
        raise ValueError(f"replicates must be >= 1 (got {replicates})")
    if rank_draws < 1 or rank_draws > draws * chains:
        raise ValueError(f"rank_draws must be between 1 and draws x chains = {draws * chains} (got {rank_draws})")
    ws = workspace(variant_name, n_subjects, n_cohorts, seed)
    rep_dir = Path(output) / "replicates" if output else None
    if rep_dir:
        rep_dir.mkdir(parents=True, exist_ok=True)
    request = {"variant": variant_name, "draws": draws, "tune": tune, "chains": chains, "seed": seed,
               "sampler": sampler, "rank_draws": rank_draws, "n_subjects": n_subjects,
               "n_cohorts": n_cohorts, "data_hash": ws.template.data_hash()}
    records = []
    for r in range(replicates):
        path = rep_dir / f"rep_{r:05d}.json" if rep_dir else None
        if path is not None and path.exists():
            rec = json.loads(path.read_text())
            if rec.get("request") == request:
                records.append(rec)
                continue
        rep_seed = seed * 1_000_003 + r
        rec = replicate_record(ws, r, rep_seed, draws=draws, tune=tune, chains=chains,
                               sampler=sampler, rank_draws=rank_draws)
        rec["request"] = request
        if path is not None:
            write_text_atomic(json.dumps(rec, indent=1, default=float), path)
        if log:
            log(f"SBC replicate {r + 1}/{replicates}: {rec['wall_time_s']:.1f} s, R-hat {rec['rhat_max']:.3f}, "
                f"{rec['divergences']} divergences")
        records.append(rec)
    result = summarise_sbc(records, rank_draws, screen_rhat)
    if output:
        save_sbc(result, output)
    return result


def replicate_record(ws: SBCWorkspace, replicate: int, seed: int, *, draws: int, tune: int, chains: int,
                     sampler: str, rank_draws: int) -> dict[str, Any]:
    """One SBC replicate: simulate from the prior with ``seed``, refit, rank the truths (a JSON-able dict)."""
    t = time.perf_counter()
    data, truth, swap = ws.simulate(seed)
    idata, v = ws.fit(data, swap, seed=seed, draws=draws, tune=tune, chains=chains, sampler=sampler)
    post = _flatten(idata.posterior, list(truth_names(truth)))
    ranks = {k: rank_of(val, post[k], rank_draws) for k, val in truth.items() if k in post}
    return {"replicate": int(replicate), "seed": int(seed), "ranks": ranks, "truth": truth,
            "rank_draws": int(rank_draws), "wall_time_s": time.perf_counter() - t, "rhat_max": float(v.rhat_max),
            "ess_bulk_min": float(v.ess_bulk_min), "divergences": int(v.divergences), "ok": bool(v.ok),
            "rhat_worst": worst_parameters(v.table), "draws": int(draws), "tune": int(tune),
            "chains": int(chains)}


def worst_parameters(table: pd.DataFrame | None, n: int = 3) -> dict[str, float]:
    """The ``n`` parameters with the highest R-hat in a diagnostics table (``inference.Verdict.table``)."""
    if table is None or not len(table) or "r_hat" not in table:
        return {}
    top = table["r_hat"].dropna().sort_values(ascending=False).head(n)
    return {str(k): round(float(r), 4) for k, r in top.items()}


def truth_names(truth: dict[str, float]) -> list[str]:
    """Variable names behind flattened labels like ``k_M[lumbar_spine]``."""
    return list(dict.fromkeys(k.split("[", 1)[0] for k in truth))


def summarise_sbc(records: list[dict[str, Any]], rank_draws: int, screen_rhat: float = SCREEN_RHAT
                  ) -> SBCResult:
    """Ranks as an xarray DataArray, uniformity table per parameter, histograms, timing.

    The table has the tests over all replicates and, as a sensitivity check, over the replicates whose refit
    reached max R-hat <= ``screen_rhat`` (columns ``replicates_screened``, ``chi2_pvalue_screened``,
    ``ks_pvalue_screened``). Screening conditions on the data, so the all-replicate columns are the test;
    the screened ones show whether unconverged refits move it.
    """
    params = list(dict.fromkeys(k for rec in records for k in rec["ranks"]))
    arr = np.full((len(records), len(params)), np.nan)
    for i, rec in enumerate(records):
        for j, p in enumerate(params):
            arr[i, j] = rec["ranks"].get(p, np.nan)
    ranks = xr.DataArray(arr, dims=("replicate", "parameter"),
                         coords={"replicate": [rec["replicate"] for rec in records], "parameter": params},
                         attrs={"rank_draws": rank_draws})
    table = pd.DataFrame({p: rank_uniformity(arr[:, j], rank_draws) for j, p in enumerate(params)}).T
    keep = np.array([float(rec.get("rhat_max", np.nan)) <= screen_rhat for rec in records], dtype=bool)
    screened = pd.DataFrame({p: rank_uniformity(arr[keep, j], rank_draws) for j, p in enumerate(params)}).T
    for col in ("replicates", "chi2_pvalue", "ks_pvalue"):
        table[f"{col}_screened"] = screened[col] if len(screened) else np.nan
    table.index.name = "parameter"
    table.attrs["screen_rhat"] = screen_rhat
    keys = ("replicate", "seed", "wall_time_s", "rhat_max", "ess_bulk_min", "divergences")
    info = pd.DataFrame([{**{k: rec[k] for k in keys}, "draws": rec.get("draws"), "tune": rec.get("tune"),
                          "rhat_worst": ", ".join(rec.get("rhat_worst", {}))} for rec in records])
    wall = float(info["wall_time_s"].sum()) if len(info) else 0.0
    return SBCResult(ranks, table, rank_draws, wall, info, rank_histograms(ranks, rank_draws, table))


def rank_histograms(ranks: xr.DataArray, rank_draws: int, table: pd.DataFrame | None = None) -> Any:
    """One rank histogram per parameter with the uniform expectation and its 99% binomial band."""
    import matplotlib.pyplot as plt
    from scipy import stats

    params = list(ranks["parameter"].values)
    n = ranks.sizes["replicate"]
    B = int(min(rank_draws + 1, max(2, min(20, n // 5))))
    ncol = min(6, max(1, len(params)))
    nrow = -(-len(params) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(2.2 * ncol, 1.7 * nrow), squeeze=False)
    lo, hi = stats.binom.ppf([0.005, 0.995], n, 1.0 / B)
    for ax, p in zip(axes.ravel(), params):
        ax.hist(ranks.sel(parameter=p).values, bins=np.linspace(0, rank_draws + 1, B + 1), color="C0")
        ax.axhspan(lo, hi, color="0.85", zorder=0)
        ax.axhline(n / B, color="0.4", lw=0.6)
        pv = f" p={table.loc[p, 'chi2_pvalue']:.2f}" if table is not None else ""
        ax.set_title(f"{p}{pv}", fontsize=6)
        ax.tick_params(labelsize=5)
    for ax in axes.ravel()[len(params):]:
        ax.axis("off")
    fig.suptitle(f"SBC rank histograms ({n} replicates, ranks 0-{rank_draws}; band: 99% for uniform ranks)",
                 fontsize=8)
    fig.tight_layout()
    return fig


def save_sbc(result: SBCResult, output: str | Path) -> list[Path]:
    """Write ranks.csv, uniformity.csv, replicates.csv and rank_histograms.png atomically to ``output``."""
    from bonebayes.datasets.io import write_table_atomic

    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "ranks.csv", out / "uniformity.csv", out / "replicates.csv", out / "rank_histograms.png"]
    write_table_atomic(result.ranks.to_pandas().reset_index(), paths[0])
    write_table_atomic(result.table.reset_index(), paths[1])
    write_table_atomic(result.replicate_info, paths[2])
    if result.figure is not None:
        write_atomic(paths[3], lambda tmp: result.figure.savefig(tmp, dpi=120, format="png"))
    return paths
