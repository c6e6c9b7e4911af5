"""Prior and posterior predictive checks for both model kinds, as pandas tables and matplotlib figures.

* :func:`prior_predictive_check`: draws from the priors, simulates every observation, and counts implausible
  draws (BMD changing by more than ``BMD_LIMIT_PCT_PER_YEAR`` % in a year; markers outside
  ``MARKER_LIMITS_PCT`` of their baseline), with trajectory plots;
* :func:`posterior_predictive_check`: replicates of every observation under the posterior, coverage of the
  central 50/80/90/95% predictive intervals, LOO-PIT values (PSIS weights) with a uniformity test, a visual
  predictive check for individual data (binned by time, stratified by cohort or arm, censoring-aware), and an
  observed-vs-predicted plot for published arms.

Censoring (CTX/P1NP below the limit of quantification, LOQ): a replicate below the LOQ is recorded at the LOQ,
like the data, so predicted quantiles compare with observed ones wherever they lie above the LOQ; the VPC also
compares the observed and predicted fractions below the LOQ. Censored observations are left out of coverage
and LOO-PIT (their value is only known to be below the LOQ) and counted in ``n_censored``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from bonebayes import _arviz

LEVELS: tuple[float, ...] = (0.5, 0.8, 0.9, 0.95)
BMD_LIMIT_PCT_PER_YEAR = 50.0
"""A prior draw is implausible where BMD changes by more than this many percent per year."""
MARKER_LIMITS_PCT: tuple[float, float] = (-95.0, 400.0)
"""... or where a turnover marker changes from baseline by less than -95% or more than +400%."""
INDIVIDUAL_OBS: tuple[str, ...] = ("obs_markers", "obs_bmd", "obs_serum")


# --------------------------------------------------------------------------- observation tables
def observation_table(model_obj: Any) -> pd.DataFrame:
    """One row per modelled observation, in the order of the model's likelihood terms.

    Columns: ``obs`` (likelihood name), ``group`` (subject or study), ``stratum`` (arm if known, else cohort;
    the arm for published rows), ``variable``, ``time_months``, ``observed`` (reported scale), ``censored``,
    ``loq`` (NaN where not censored), ``row_class``.
    """
    data = model_obj.data
    if hasattr(data, "rows"):
        rows = data.rows
        return pd.DataFrame({
            "obs": "obs_published", "group": rows["study"].astype(str).to_numpy(),
            "stratum": rows["arm_key"].astype(str).to_numpy(),
            "variable": (rows["endpoint"].astype(str) + ":" + rows["measure"].astype(str)).to_numpy(),
            "time_months": rows["time_months"].to_numpy(float), "observed": rows["value"].to_numpy(float),
            "censored": False, "loq": np.nan, "row_class": rows["row_class"].to_numpy(str),
            "fit": rows["fit"].to_numpy(bool),
        })
    obs = model_obj.observations
    parts = []
    for name, block in (("obs_markers", data.markers), ("obs_bmd", data.bmd), ("obs_serum", data.serum)):
        if not len(block):
            continue
        sub = obs.set_index("row").loc[block.row] if "row" in obs else obs.iloc[block.row]
        strat = sub["arm"].astype(str).to_numpy() if "arm" in sub else sub["cohort"].astype(str).to_numpy()
        value = np.exp(block.log_value)
        parts.append(pd.DataFrame({
            "obs": name, "group": np.asarray(data.subjects)[block.unit], "stratum": strat,
            "cohort": sub["cohort"].astype(str).to_numpy(), "variable": block.variable,
            "time_months": sub["time_months"].to_numpy(float), "observed": value, "censored": block.censored,
            "loq": np.where(block.censored, value, np.nan),
            "row_class": np.where(name == "obs_bmd", "bmd", np.where(name == "obs_markers", "marker", "serum")),
            "fit": True,
        }))
    return pd.concat(parts, ignore_index=True)


def _loq_per_obs(table: pd.DataFrame, loq: dict[str, float] | None) -> np.ndarray:
    """The LOQ of every observation: known for censored rows, else from ``loq`` by variable (NaN: none)."""
    out = table["loq"].to_numpy(float).copy()
    if loq:
        fill = table["variable"].map(loq).to_numpy(float)
        out = np.where(np.isnan(out), fill, out)
    if "obs" in table:  # a censored variable without a given LOQ: its smallest censored value
        for v, lo in table.loc[table["censored"]].groupby("variable")["loq"].min().items():
            m = (table["variable"] == v).to_numpy() & np.isnan(out)
            out[m] = lo
    return out


# --------------------------------------------------------------------------- replicates
def replicates(model_obj: Any, idata: Any, *, seed: int = 0, group: str = "posterior") -> np.ndarray:
    """Replicated observations (samples, n_obs) on the reported scale, in :func:`observation_table` order.

    Published rows use the stored ``pub_pred`` / ``pub_sd``; individual observations are drawn by PyMC from
    the posterior (or ``group="prior"``) values. Censoring is not applied here (see :func:`censor`).
    """
    data = model_obj.data
    if hasattr(data, "rows"):
        from bonebayes.checks.published import replicate_rows

        class _Holder:  # replicate_rows reads .posterior
            posterior = getattr(idata, group)

        return replicate_rows(_Holder(), data, seed)
    import pymc as pm

    model = model_obj.model
    names = [n for n in INDIVIDUAL_OBS if n in model.named_vars]
    src = idata if group == "posterior" else _prior_as_posterior(idata)
    with model:
        pp = pm.sample_posterior_predictive(src, var_names=names, random_seed=seed, progressbar=False,
                                            extend_inferencedata=False)
    parts = [pp.posterior_predictive[n].values.reshape(-1, pp.posterior_predictive[n].shape[-1]) for n in names]
    return np.exp(np.concatenate(parts, axis=1))


def _prior_as_posterior(idata: Any) -> Any:
    return _arviz.from_dict(posterior={k: v.values for k, v in idata.prior.data_vars.items()},
                            coords={k: v.values for k, v in idata.prior.coords.items()
                                    if k not in ("chain", "draw")},
                            dims={k: [d for d in v.dims if d not in ("chain", "draw")]
                                  for k, v in idata.prior.data_vars.items()})


def censor(values: np.ndarray, loq: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Record replicates below their LOQ at the LOQ, as the data are: (censored values, below-LOQ mask)."""
    below = values < np.where(np.isnan(loq), -np.inf, loq)
    return np.where(below, loq, values), below


# --------------------------------------------------------------------------- coverage and LOO-PIT
def coverage_table(table: pd.DataFrame, reps: np.ndarray, levels: Sequence[float] = LEVELS,
                   by: str | None = "row_class") -> pd.DataFrame:
    """Fraction of observations inside their central predictive intervals at each level (overall and by
    ``by``), plus median interval widths; censored observations are excluded and counted."""
    obs = table["observed"].to_numpy(float)
    keep = ~table["censored"].to_numpy(bool)
    inside = {}
    width = {}
    for lev in levels:
        lo, hi = np.quantile(reps, [(1 - lev) / 2, (1 + lev) / 2], axis=0)
        inside[lev] = (obs >= lo) & (obs <= hi)
        width[lev] = hi - lo

    def summ(mask: np.ndarray) -> dict[str, float]:
        m = mask & keep
        out: dict[str, float] = {"n": int(m.sum()), "n_censored": int((mask & ~keep).sum())}
        for lev in levels:
            out[f"coverage_{int(round(lev * 100))}"] = float(inside[lev][m].mean()) if m.any() else np.nan
        for lev in levels:
            out[f"median_width_{int(round(lev * 100))}"] = float(np.median(width[lev][m])) if m.any() else np.nan
        return out

    rows = {"all": summ(np.ones(len(obs), bool))}
    if by is not None:
        for k in pd.unique(table[by]):
            rows[str(k)] = summ((table[by] == k).to_numpy())
    return pd.DataFrame(rows).T


def loo_pit(log_lik: np.ndarray, reps: np.ndarray, observed: np.ndarray, seed: int = 0) -> np.ndarray:
    """LOO-PIT of each observation: sum_s w_is [rep_is < y_i] (+ a uniform share of ties), with PSIS
    weights w_is for leaving observation i out. ``log_lik`` and ``reps`` are (samples, n)."""
    lw, _ = _arviz.psis_log_weights(log_lik)
    w = np.exp(lw - lw.max(axis=0, keepdims=True))
    w /= w.sum(axis=0, keepdims=True)
    below = (w * (reps < observed[None, :])).sum(axis=0)
    ties = (w * (reps == observed[None, :])).sum(axis=0)
    u = np.random.default_rng(seed).uniform(size=len(observed))
    return below + u * ties


def uniformity_pvalue(u: np.ndarray) -> float:
    """Kolmogorov-Smirnov p-value of values in [0, 1] against the uniform distribution."""
    from scipy import stats

    u = np.asarray(u, dtype=float)
    u = u[np.isfinite(u)]
    return float(stats.kstest(u, "uniform").pvalue) if len(u) else float("nan")


# --------------------------------------------------------------------------- VPC
def vpc_table(table: pd.DataFrame, reps: np.ndarray, *, by: str = "stratum", n_bins: int = 8,
              quantiles: Sequence[float] = (0.1, 0.5, 0.9), prob: float = 0.9,
              loq: dict[str, float] | None = None) -> pd.DataFrame:
    """Visual predictive check table: per variable, stratum (``by``) and time bin, the observed quantiles
    and the median and central ``prob`` interval of the same quantiles over replicates, and the observed and
    predicted fractions below the LOQ (replicates censored at the LOQ like the data)."""
    loq_all = _loq_per_obs(table, loq)
    rep_c, rep_below = censor(reps, loq_all[None, :])
    obs = table["observed"].to_numpy(float)
    a, b = (1 - prob) / 2, (1 + prob) / 2
    rows = []
    for (var, strat), sub in table.groupby(["variable", by], sort=True):
        times = sub["time_months"].to_numpy(float)
        uniq = np.unique(times)
        if len(uniq) <= n_bins:
            edges = np.append(uniq, np.inf)
        else:
            edges = np.unique(np.quantile(times, np.linspace(0, 1, n_bins + 1)))
            edges[-1] = np.inf
        idx = sub.index.to_numpy()
        bins = np.clip(np.searchsorted(edges, times, side="right") - 1, 0, len(edges) - 2)
        for k in range(len(edges) - 1):
            sel = idx[bins == k]
            if not len(sel):
                continue
            row = {"variable": var, by: strat, "time_months": float(np.median(table.loc[sel, "time_months"])),
                   "n": len(sel), "obs_frac_blq": float(table.loc[sel, "censored"].mean())}
            fb = rep_below[:, sel].mean(axis=1)
            row.update({"pred_frac_blq": float(np.median(fb)), "pred_frac_blq_lo": float(np.quantile(fb, a)),
                        "pred_frac_blq_hi": float(np.quantile(fb, b))})
            for q in quantiles:
                tag = f"q{int(round(q * 100))}"
                rq = np.quantile(rep_c[:, sel], q, axis=1)
                row[f"obs_{tag}"] = float(np.quantile(obs[sel], q))
                row[f"pred_{tag}"] = float(np.median(rq))
                row[f"pred_{tag}_lo"] = float(np.quantile(rq, a))
                row[f"pred_{tag}_hi"] = float(np.quantile(rq, b))
            rows.append(row)
    return pd.DataFrame(rows)


def vpc_figure(vpc: pd.DataFrame, table: pd.DataFrame | None = None, by: str = "stratum",
               quantiles: Sequence[float] = (0.1, 0.5, 0.9)) -> Any:
    """One panel per variable and stratum: predicted quantile bands (shaded), observed quantiles (lines),
    observations (dots, censored as open markers at the LOQ); log y-axis."""
    import matplotlib.pyplot as plt

    variables = list(dict.fromkeys(vpc["variable"]))
    strata = list(dict.fromkeys(vpc[by]))
    fig, axes = plt.subplots(len(variables), len(strata), figsize=(3.2 * len(strata), 2.4 * len(variables)),
                             squeeze=False, sharex=True)
    for i, var in enumerate(variables):
        for j, s in enumerate(strata):
            ax = axes[i][j]
            sub = vpc[(vpc["variable"] == var) & (vpc[by] == s)].sort_values("time_months")
            if table is not None:
                pts = table[(table["variable"] == var) & (table[by] == s)]
                c = pts["censored"].to_numpy(bool)
                ax.scatter(pts["time_months"][~c], pts["observed"][~c], s=4, color="0.6", alpha=0.5)
                ax.scatter(pts["time_months"][c], pts["observed"][c], s=8, facecolors="none", edgecolors="C3")
            for q, col in zip(quantiles, ("C0", "C1", "C0")):
                tag = f"q{int(round(q * 100))}"
                if sub.empty:
                    continue
                ax.fill_between(sub["time_months"], sub[f"pred_{tag}_lo"], sub[f"pred_{tag}_hi"], color=col,
                                alpha=0.25, lw=0)
                ax.plot(sub["time_months"], sub[f"obs_{tag}"], color=col, lw=1.2)
            ax.set_yscale("log")
            if i == 0:
                ax.set_title(str(s), fontsize=8)
            if j == 0:
                ax.set_ylabel(var, fontsize=8)
            ax.tick_params(labelsize=7)
    for ax in axes[-1]:
        ax.set_xlabel("months", fontsize=8)
    fig.suptitle("VPC: observed 10/50/90% quantiles (lines) vs 90% intervals of predicted quantiles (bands)",
                 fontsize=9)
    fig.tight_layout()
    return fig


def observed_vs_predicted_figure(table: pd.DataFrame, reps: np.ndarray, prob: float = 0.9) -> Any:
    """Published arms: observed value against the predicted median with its central ``prob`` interval, one
    panel per row class; held-out rows (``fit`` False) in red."""
    import matplotlib.pyplot as plt

    med = np.median(reps, axis=0)
    lo, hi = np.quantile(reps, [(1 - prob) / 2, (1 + prob) / 2], axis=0)
    classes = list(dict.fromkeys(table["row_class"]))
    fig, axes = plt.subplots(1, len(classes), figsize=(4 * len(classes), 3.8), squeeze=False)
    for ax, cls in zip(axes[0], classes):
        m = (table["row_class"] == cls).to_numpy()
        obs = table["observed"].to_numpy(float)
        fit = table["fit"].to_numpy(bool)
        for sel, col in ((m & fit, "C0"), (m & ~fit, "C3")):
            if sel.any():
                ax.errorbar(obs[sel], med[sel], yerr=[med[sel] - lo[sel], hi[sel] - med[sel]], fmt="o", ms=3,
                            color=col, elinewidth=0.6, alpha=0.8)
        lims = [np.nanmin([obs[m].min(), lo[m].min()]), np.nanmax([obs[m].max(), hi[m].max()])]
        ax.plot(lims, lims, color="0.5", lw=0.8)
        if cls == "level":
            ax.set_xscale("log")
            ax.set_yscale("log")
        ax.set_title(f"{cls} rows (n={int(m.sum())})", fontsize=9)
        ax.set_xlabel("observed")
        ax.set_ylabel(f"predicted median, {int(prob * 100)}% interval")
    fig.tight_layout()
    return fig


def pit_figure(pit: np.ndarray, title: str = "LOO-PIT") -> Any:
    """Histogram of PIT values (10 bins) with the uniform expectation and its 95% binomial band."""
    import matplotlib.pyplot as plt
    from scipy import stats

    pit = pit[np.isfinite(pit)]
    n = len(pit)
    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    ax.hist(pit, bins=np.linspace(0, 1, 11), color="C0", alpha=0.7)
    lo, hi = stats.binom.ppf([0.025, 0.975], n, 0.1)
    ax.axhspan(lo, hi, color="0.85", zorder=0)
    ax.axhline(n / 10, color="0.4", lw=0.8)
    ax.set_xlabel("PIT")
    ax.set_ylabel("observations")
    ax.set_title(f"{title} (n={n}, KS p={uniformity_pvalue(pit):.2f})", fontsize=9)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- the checks
@dataclass
class PredictiveCheck:
    """Results of a prior or posterior predictive check: tables and figures (matplotlib)."""

    kind: str  # "prior" or "posterior"
    table: pd.DataFrame  # observations with replicate summaries
    summary: pd.DataFrame  # implausibility (prior) or coverage (posterior)
    extra: dict[str, pd.DataFrame] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)
    numbers: dict[str, float] = field(default_factory=dict)

    def save(self, directory: str) -> list[str]:
        """Write tables (CSV) and figures (PNG) atomically into ``directory``; returns the paths."""
        import json
        import os

        from bonebayes._atomic import write_atomic, write_text_atomic
        from bonebayes.datasets.io import write_table_atomic

        os.makedirs(directory, exist_ok=True)
        paths = []
        for name, df in {"observations": self.table, "summary": self.summary, **self.extra}.items():
            p = os.path.join(directory, f"{self.kind}_{name}.csv")
            write_table_atomic(df.reset_index() if name == "summary" else df, p)
            paths.append(p)
        for name, fig in self.figures.items():
            p = os.path.join(directory, f"{self.kind}_{name}.png")
            write_atomic(p, lambda tmp, f=fig: f.savefig(tmp, dpi=120, format="png"))
            paths.append(p)
        p = os.path.join(directory, f"{self.kind}_numbers.json")
        write_text_atomic(json.dumps(self.numbers, indent=1), p)
        return paths + [p]


def _summarise(table: pd.DataFrame, reps: np.ndarray, prob: float = 0.9) -> pd.DataFrame:
    out = table.copy()
    out["pred_median"] = np.median(reps, axis=0)
    out["pred_lo"], out["pred_hi"] = np.quantile(reps, [(1 - prob) / 2, (1 + prob) / 2], axis=0)
    return out


def implausible_draws(table: pd.DataFrame, reps: np.ndarray) -> tuple[pd.DataFrame, np.ndarray]:
    """Implausibility of each (draw, observation): BMD changing by more than ``BMD_LIMIT_PCT_PER_YEAR`` %/year
    or a marker outside ``MARKER_LIMITS_PCT`` of baseline. Returns (summary by row class, (S, n) mask).

    Individual data: changes are from the same subject's first observation of the variable; published rows:
    BMD % changes are annualised over the row's duration, marker % changes are used as they are.
    """
    S, n = reps.shape
    bad = np.zeros((S, n), bool)
    cls = table["row_class"].to_numpy(str)
    t = table["time_months"].to_numpy(float)
    if (table["obs"] == "obs_published").all():
        meas = table["variable"].str.split(":").str[1].to_numpy(str)
        years = np.maximum(t, 1.0) / 12.0
        per_year = np.where(meas == "annual_rate_pct", reps, reps / years[None, :])
        bad |= (cls == "bmd")[None, :] & (np.abs(per_year) > BMD_LIMIT_PCT_PER_YEAR)
        mk = (cls == "marker") & (meas != "level")
        bad |= mk[None, :] & ((reps < MARKER_LIMITS_PCT[0]) | (reps > MARKER_LIMITS_PCT[1]))
    else:
        key = table["group"].astype(str) + "|" + table["variable"].astype(str)
        first = table.assign(key=key).reset_index().sort_values("time_months").groupby("key")["index"].first()
        base = first.loc[key].to_numpy()
        dt = t - t[base]
        change = 100.0 * (reps / reps[:, base] - 1.0)
        later = dt > 0
        bmd = (cls == "bmd") & later
        bad |= bmd[None, :] & (np.abs(change) / np.maximum(dt, 1.0)[None, :] * 12.0 > BMD_LIMIT_PCT_PER_YEAR)
        mk = (cls == "marker") & later
        bad |= mk[None, :] & ((change < MARKER_LIMITS_PCT[0]) | (change > MARKER_LIMITS_PCT[1]))
    rows = {}
    for c in ["all", *pd.unique(cls)]:
        m = np.ones(n, bool) if c == "all" else cls == c
        rows[c] = {"observations": int(m.sum()), "frac_obs_draws_implausible": float(bad[:, m].mean()),
                   "frac_draws_any_implausible": float(bad[:, m].any(axis=1).mean())}
    return pd.DataFrame(rows).T, bad


def prior_predictive_check(model_obj: Any, *, draws: int = 500, seed: int = 0) -> PredictiveCheck:
    """Draw parameters and observations from the priors; count implausible draws; plot trajectories."""
    import pymc as pm

    table = observation_table(model_obj)
    model = model_obj.model
    names = [v.name for v in model.free_RVs] + [v.name for v in model.deterministics]
    with model:
        prior = pm.sample_prior_predictive(draws=draws, var_names=names, random_seed=seed)
    reps = replicates(model_obj, prior, seed=seed, group="prior")
    if table["censored"].any():
        reps, _ = censor(reps, _loq_per_obs(table, None)[None, :])
    summary, bad = implausible_draws(table, reps)
    out = _summarise(table, reps)
    out["frac_implausible"] = bad.mean(axis=0)
    figs = {"trajectories": _prior_figure(table, reps)}
    numbers = {"draws": draws, "frac_draws_any_implausible": float(summary.loc["all",
                                                                                "frac_draws_any_implausible"])}
    return PredictiveCheck("prior", out, summary, figures=figs, numbers=numbers)


def _prior_figure(table: pd.DataFrame, reps: np.ndarray, n_lines: int = 40) -> Any:
    """Prior predictive: per row class, 5-95% and 25-75% bands of each observation against time, the data."""
    import matplotlib.pyplot as plt

    classes = list(dict.fromkeys(table["row_class"]))
    fig, axes = plt.subplots(1, len(classes), figsize=(4 * len(classes), 3.4), squeeze=False)
    t = table["time_months"].to_numpy(float)
    for ax, c in zip(axes[0], classes):
        m = (table["row_class"] == c).to_numpy()
        q = np.quantile(reps[:, m], [0.05, 0.25, 0.75, 0.95], axis=0)
        jitter = np.random.default_rng(0).uniform(-0.3, 0.3, m.sum())
        ax.vlines(t[m] + jitter, q[0], q[3], color="C0", alpha=0.25, lw=1)
        ax.vlines(t[m] + jitter, q[1], q[2], color="C0", alpha=0.6, lw=2)
        ax.scatter(t[m] + jitter, table["observed"].to_numpy(float)[m], s=5, color="k", zorder=3)
        if c != "bmd" or not (table["obs"] == "obs_published").all():
            if np.all(reps[:, m] > 0):
                ax.set_yscale("log")
        ax.set_title(f"prior predictive: {c}", fontsize=9)
        ax.set_xlabel("months")
    fig.tight_layout()
    return fig


def posterior_predictive_check(model_obj: Any, idata: Any, *, seed: int = 0, by: str = "stratum",
                               loq: dict[str, float] | None = None) -> PredictiveCheck:
    """Replicates under the posterior: coverage at 50/80/90/95%, LOO-PIT, VPC (individual) or
    observed-vs-predicted (published), as tables and figures."""
    from bonebayes.compare import pointwise_log_likelihood

    table = observation_table(model_obj)
    reps = replicates(model_obj, idata, seed=seed)
    published = (table["obs"] == "obs_published").all()
    coverage = coverage_table(table, reps)
    ll, _ = pointwise_log_likelihood(model_obj, idata)
    ll = ll.values.reshape(-1, ll.shape[-1])
    fit = table["fit"].to_numpy(bool)
    S = min(len(ll), len(reps))
    pit = np.full(len(table), np.nan)
    pit_fit = loo_pit(ll[:S], reps[:S, fit], table["observed"].to_numpy(float)[fit], seed)
    pit[fit] = pit_fit
    pit[table["censored"].to_numpy(bool)] = np.nan
    out = _summarise(table, reps)
    out["loo_pit"] = pit
    extra: dict[str, pd.DataFrame] = {}
    figs = {"loo_pit": pit_figure(pit)}
    if published:
        figs["observed_vs_predicted"] = observed_vs_predicted_figure(table, reps)
    else:
        vpc = vpc_table(table, reps, by=by, loq=loq)
        extra["vpc"] = vpc
        figs["vpc"] = vpc_figure(vpc, table, by=by)
    numbers = {"observations": len(table), "loo_pit_ks_pvalue": uniformity_pvalue(pit),
               **{f"coverage_{k.split('_')[1]}": float(coverage.loc["all", k]) for k in coverage.columns
                  if k.startswith("coverage_")}}
    return PredictiveCheck("posterior", out, coverage, extra, figs, numbers)
