"""The report's sections, each computed into plain data (formatted tables, embedded figures, text) for the
template: data summary, model and priors, diagnostics, predictive checks, model comparison, projections and
provenance. Nothing here writes files; :mod:`bonebayes.report.render` orchestrates and writes.
"""

from __future__ import annotations

import hashlib
import inspect
import math
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bonebayes.report.config import ReportConfig, scenario_source
from bonebayes.report.figures import Figure, deterministic_style, embed

Log = Callable[[str], None]


# --------------------------------------------------------------------------- tables
@dataclass
class Table:
    """A formatted table for the template: header, string cells, which columns are numeric."""

    columns: list[str]
    rows: list[list[str]]
    numeric: list[bool]
    caption: str = ""
    row_classes: list[str] = field(default_factory=list)


def fmt(x: Any, digits: int = 4) -> str:
    """A cell: integers as they are, floats to ``digits`` significant digits, NaN as 'n/a', bools yes/no."""
    if x is None:
        return ""
    if isinstance(x, bool | np.bool_):
        return "yes" if x else "no"
    if isinstance(x, int | np.integer):
        return str(int(x))
    if isinstance(x, float | np.floating):
        v = float(x)
        if math.isnan(v):
            return "n/a"
        if v == int(v) and abs(v) < 1e6:
            return str(int(v))
        return f"{v:.{digits}g}"
    return str(x)


def table(
    df: pd.DataFrame,
    caption: str = "",
    index: str | None = None,
    digits: int = 4,
    formats: dict[str, Callable[[Any], str]] | None = None,
    row_classes: Sequence[str] = (),
) -> Table:
    """A DataFrame as a :class:`Table` (``index``: include the index as the first column with this name)."""
    d = df.reset_index(names=index) if index is not None else df
    formats = formats or {}
    cols = [str(c) for c in d.columns]
    numeric = [
        pd.api.types.is_numeric_dtype(d[c]) and not pd.api.types.is_bool_dtype(d[c]) for c in d.columns
    ]
    rows = [
        [formats[c](v) if c in formats else fmt(v, digits) for c, v in zip(cols, r, strict=True)]
        for r in d.itertuples(index=False, name=None)
    ]
    return Table(cols, rows, numeric, caption, list(row_classes))


def pct(x: Any) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * float(x):.1f}%"


# --------------------------------------------------------------------------- inputs: data, model, fit
@dataclass
class Inputs:
    """The data and model object of the report (``model`` is a PublishedModel or an IndividualModel)."""

    kind: str
    variant: str
    model: Any
    label: str
    evidence: Any = None
    observations: pd.DataFrame | None = None
    exposures: pd.DataFrame | None = None
    data_files: dict[str, str] = field(default_factory=dict)

    @property
    def data_hash(self) -> str:
        return str(self.model.data_hash())


def load_inputs(cfg: ReportConfig) -> Inputs:
    """Load and validate the configured data (raises DataValidationError / FileNotFoundError)."""
    from bonebayes.variants import build_variant_model, get_variant

    d = cfg.data
    variant = get_variant(str(cfg.model.variant))
    if d.kind == "published":
        from bonebayes.datasets.published import data_path, load_published

        arms = cfg.resolve(d.arms) if d.arms else None
        design = cfg.resolve(d.design) if d.design else None
        for p in (arms, design):
            if p is not None and not p.is_file():
                raise FileNotFoundError(f"{cfg.source}: data file not found: {p}")
        ev = load_published(arms, design)
        files = {
            "arms": str(arms or data_path("published_arms.csv")),
            "design": str(design or data_path("published_design.toml")),
        }
        label = (
            "shipped published evidence"
            if arms is None and design is None
            else f"published evidence ({arms})"
        )
        return Inputs(
            "published",
            variant.name,
            build_variant_model(variant, evidence=ev),
            label,
            evidence=ev,
            data_files=files,
        )
    if d.synthetic is not None:
        from bonebayes.datasets.synthetic import SyntheticDesign, simulate_cohort

        s = d.synthetic
        coh = simulate_cohort(SyntheticDesign(n_subjects=s.n_subjects, n_cohorts=s.n_cohorts), seed=s.seed)
        obs, exp = coh.observations, coh.exposures
        label = f"synthetic cohort ({s.n_subjects} subjects, {s.n_cohorts} cohorts, seed {s.seed})"
        files = {}
    else:
        from bonebayes.datasets.io import load_cohort

        o, e = cfg.resolve(str(d.observations)), cfg.resolve(str(d.exposures))
        for p in (o, e):
            if not p.is_file():
                raise FileNotFoundError(f"{cfg.source}: data file not found: {p}")
        obs, exp = load_cohort(o, e)
        label = f"cohort {o.name} / {e.name}"
        files = {"observations": str(o), "exposures": str(e)}
    model = build_variant_model(variant, observations=obs, exposures=exp)
    return Inputs("individual", variant.name, model, label, observations=obs, exposures=exp, data_files=files)


@dataclass
class FitInfo:
    path: str
    reused: bool
    reason: str
    sha256: str
    seconds: float


def fit_mismatch(fit: Any, inputs: Inputs, request: dict[str, Any]) -> list[str]:
    """Why a saved fit cannot stand for the configured one (empty: it can); see ``Fit.mismatch``."""
    return fit.mismatch(inputs.model, request, data_hash=inputs.data_hash)


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def obtain_fit(cfg: ReportConfig, inputs: Inputs, log: Log, progress: bool = False) -> tuple[Any, FitInfo]:
    """Reuse the configured fit file if it matches the data, model and settings; else fit and save it."""
    from bonebayes.fit import Fit

    path = cfg.resolve(cfg.fit.path)
    request = cfg.fit.request()
    reason = ""
    if cfg.fit.reuse and path.exists():
        try:
            old = Fit.load(path)
        except (OSError, ValueError) as e:
            reason = f"{path} is not a readable fit ({e})"
        else:
            why = fit_mismatch(old, inputs, request)
            if not why:
                log(f"reusing the fit {path} (same data hash, model configuration and settings)")
                old.model = inputs.model
                return old, FitInfo(
                    str(path),
                    True,
                    "same data hash, model configuration and settings",
                    file_sha256(path),
                    0.0,
                )
            reason = f"{path} exists but " + "; ".join(why)
    elif not cfg.fit.reuse:
        reason = "fit.reuse is false"
    else:
        reason = f"no fit at {path}"
    f = cfg.fit
    log(
        f"fitting: {reason}. Running {f.sampler} ({f.chains} chains x ({f.tune} tune + {f.draws} draws), "
        f"seed {f.seed}); real MCMC can take many minutes. The fit is saved to {path}."
    )
    t = time.perf_counter()
    fit = inputs.model.fit(
        draws=f.draws, tune=f.tune, chains=f.chains, seed=f.seed, sampler=f.sampler, progress=progress
    )
    fit.save(path)
    return fit, FitInfo(str(path), False, reason, file_sha256(path), time.perf_counter() - t)


# --------------------------------------------------------------------------- 1. data summary
def data_section(inputs: Inputs) -> dict[str, Any]:
    if inputs.kind == "published":
        ev = inputs.evidence
        u, x = ev.usable, ev.excluded
        counts = pd.DataFrame(
            {
                "": [
                    "rows in the file",
                    "rows used",
                    "rows excluded",
                    "studies (used rows)",
                    "arms (used rows)",
                ],
                "count": [len(ev.arms), len(u), len(x), u["study"].nunique(), u["arm_key"].nunique()],
            }
        )
        by_class = u.groupby(["model_kind", "measure"]).size().rename("rows").reset_index()
        studies = (
            u.groupby("study")
            .agg(arms=("arm_key", "nunique"), rows=("record_id", "size"))
            .sort_values(["rows", "arms"], ascending=False, kind="stable")
        )
        excluded = x[[c for c in ("record_id", "study", "arm", "endpoint", "measure", "reason") if c in x]]
        return {
            "kind": "published",
            "label": inputs.label,
            "summary": ev.summary(),
            "counts": table(counts),
            "by_class": table(by_class, "Used rows by model kind and measure"),
            "studies": table(studies, "Used rows per study", index="study"),
            "excluded": table(excluded.reset_index(drop=True), f"{len(x)} excluded rows and why"),
            "excluded_note": "",
            "drugs": None,
            "files": inputs.data_files,
        }
    obs, exp = inputs.observations, inputs.exposures
    arms = obs["arm"].nunique() if "arm" in obs else None
    counts = pd.DataFrame(
        {
            "": [
                "observations",
                "subjects",
                "cohorts",
                "arms",
                "exposure rows",
                "observations below the LOQ",
            ],
            "count": [
                len(obs),
                obs["subject"].nunique(),
                obs["cohort"].nunique(),
                arms if arms is not None else "n/a",
                len(exp),
                int(obs["below_loq"].sum()) if "below_loq" in obs else 0,
            ],
        }
    )
    by_var = (
        obs.groupby("variable")
        .agg(observations=("value", "size"), subjects=("subject", "nunique"), below_loq=("below_loq", "sum"))
        .reset_index()
    )
    drugs = exp.groupby("drug").agg(rows=("subject", "size"), subjects=("subject", "nunique")).reset_index()
    strata = None
    if "arm" in obs:
        strata = table(
            obs.groupby(["cohort", "arm"])["subject"].nunique().rename("subjects").reset_index(),
            "Subjects per cohort and arm",
        )
    return {
        "kind": "individual",
        "label": inputs.label,
        "summary": (
            f"{len(obs)} observations of {obs['subject'].nunique()} subjects in "
            f"{obs['cohort'].nunique()} cohort(s); {len(exp)} exposure rows."
        ),
        "counts": table(counts),
        "by_class": table(by_var, "Observations per variable"),
        "studies": strata,
        "drugs": table(drugs, "Exposure rows per drug or event"),
        "excluded": None,
        "excluded_note": (
            "No rows were excluded: every cell is validated on load and any problem stops with "
            "the file, row, line and column (rows are never dropped silently). Observations "
            "below the LOQ are kept as left-censored values."
        ),
        "files": inputs.data_files,
    }


# --------------------------------------------------------------------------- 2. model and priors
def _indented_blocks(doc: str) -> list[str]:
    """The indented (equation) blocks of a docstring, each as one text block."""
    blocks, cur = [], []
    for line in (doc or "").splitlines():
        if line.startswith("    ") and line.strip():
            cur.append(line[4:])
        elif cur and not line.strip() and cur[-1] != "":
            cur.append("")
        elif cur:
            blocks.append("\n".join(cur).rstrip())
            cur = []
    if cur:
        blocks.append("\n".join(cur).rstrip())
    return [b for b in blocks if b]


def equations(kind: str) -> list[dict[str, str]]:
    """The model's equations, taken from the docstrings of the code that implements them."""
    from bonebayes.physiology import signalling, turnover

    if kind == "published":
        from bonebayes.models import published as obs_mod

        what = (
            "Arm-level rows (study s, arm a, control c, row times t_a -> t_b; every arm is simulated as a "
            "unit of the same physiology)"
        )
    else:
        from bonebayes.models import individual as obs_mod

        what = "Observation model and hierarchy (subject i in cohort c, variable v, time t; t0 = month 0)"
    return [
        {
            "title": "Signalling layer (hormones and drugs -> resorption and formation stimuli)",
            "text": "\n\n".join(_indented_blocks(inspect.getdoc(signalling) or "")),
        },
        {
            "title": "Turnover layer (months; states relative to the young-adult reference)",
            "text": "\n\n".join(_indented_blocks(inspect.getdoc(turnover) or "")),
        },
        {"title": what, "text": "\n\n".join(_indented_blocks(inspect.getdoc(obs_mod) or ""))},
    ]


def _posterior_labels(post: Any, name: str) -> list[str]:
    if name not in post:
        return []
    dims = [d for d in post[name].dims if d not in ("chain", "draw")]
    return [str(v) for d in dims for v in post[d].values]


def prior_rows(fit: Any) -> pd.DataFrame:
    """The priors of the parameters this fit has (from ``models.priors``), with per-element locations."""
    from bonebayes.models.priors import HORMONE_MEANS, HORMONE_SDS, PRIORS, SITE_KM_MEANS, prior_table

    post = fit.idata.posterior
    names = [v for v in post.data_vars if "__" not in v]
    level = _posterior_labels(post, "mu_level")
    rows = []
    for row in prior_table():
        p = row["parameter"]
        used = p in names or any(v.startswith(p + "_") for v in names)
        if not used and p.startswith("mu_") and level:
            used = any(lab == p[3:] or lab.startswith(p[3:] + "_") for lab in level)
        if not used:
            continue
        loc = ""
        if p in HORMONE_MEANS:
            hs = _posterior_labels(post, p) or list(HORMONE_MEANS[p])
            sds = HORMONE_SDS.get(p, {})
            loc = ", ".join(
                f"{h} {HORMONE_MEANS[p][h]:+.3g}" + (f" (sd {sds[h]:.3g})" if h in sds else "")
                for h in hs
                if h in HORMONE_MEANS[p]
            )
        elif p == "k_M":
            sites = _posterior_labels(post, "k_M")
            loc = ", ".join(
                f"{s}: LogNormal({v:.3g}, {PRIORS[p].b:.3g})" for s, v in SITE_KM_MEANS.items() if s in sites
            )
        rows.append({**row, "per-element location": loc})
    cols = ["parameter", "prior", "per-element location", "unit", "meaning", "why"]
    return pd.DataFrame(rows, columns=cols)


def model_section(inputs: Inputs, fit: Any) -> dict[str, Any]:
    from bonebayes.variants import get_variant

    cfg = inputs.model.config.model_dump(mode="json")
    config = pd.DataFrame({"setting": list(cfg), "value": [str(v) for v in cfg.values()]})
    return {
        "variant": inputs.variant,
        "description": get_variant(inputs.variant).description,
        "equations": equations(inputs.kind),
        "config": table(config, "Model configuration (stored with the fit)"),
        "priors": table(prior_rows(fit), "Priors of the fitted parameters (bonebayes.models.priors)"),
    }


# --------------------------------------------------------------------------- 3. diagnostics
def diagnostics_section(fit: Any) -> dict[str, Any]:
    from bonebayes import _arviz

    verdict = fit.diagnose(warn=False)
    summ = fit.summary(hdi_prob=0.9)
    th = verdict.thresholds
    gate = []
    for r in summ.itertuples():
        bad = []
        if not r.r_hat <= th["rhat_max"]:
            bad.append("R-hat")
        if not r.ess_bulk >= th["ess_min"]:
            bad.append("bulk ESS")
        if not r.ess_tail >= th["ess_min"]:
            bad.append("tail ESS")
        gate.append(", ".join(bad) or "ok")
    cols = {
        "mean": "mean",
        "sd": "sd",
        "hdi_5%": "hdi 5%",
        "hdi_95%": "hdi 95%",
        "r_hat": "R-hat",
        "ess_bulk": "ESS bulk",
        "ess_tail": "ESS tail",
        "mcse_mean": "MCSE mean",
    }
    df = summ[[c for c in cols if c in summ]].rename(columns=cols)
    df["gate"] = gate
    stats = fit.idata.sample_stats
    chains = pd.DataFrame({"chain": np.arange(verdict.n_chains)})
    chains["divergences"] = (
        stats["diverging"].sum("draw").values.astype(int)
        if "diverging" in stats
        else np.zeros(verdict.n_chains, int)
    )
    try:
        chains["E-BFMI"] = _arviz.bfmi(fit.idata) if "energy" in stats else np.nan
    except Exception:  # noqa: BLE001 - advisory, as in the gate
        chains["E-BFMI"] = np.nan
    if "n_steps" in stats:
        chains["mean leapfrog steps"] = stats["n_steps"].mean("draw").values
    gate_rows = pd.DataFrame(
        {
            "check": ["max R-hat", "min bulk ESS", "min tail ESS", "divergences", "min E-BFMI"],
            "value": [
                verdict.rhat_max,
                verdict.ess_bulk_min,
                verdict.ess_tail_min,
                verdict.divergences,
                verdict.ebfmi_min,
            ],
            "gate": [
                f"<= {th['rhat_max']}",
                f">= {th['ess_min']:.0f}",
                f">= {th['ess_min']:.0f}",
                "= 0",
                f">= {th['ebfmi_min']}",
            ],
        }
    )
    prov = fit.provenance
    return {
        "ok": verdict.ok,
        "problems": list(verdict.problems),
        "text": str(verdict),
        "gate": table(gate_rows, "The diagnostics gate"),
        "chains": table(chains, "Per chain"),
        "parameters": table(
            df,
            "Population parameters: posterior mean, sd, 90% HDI and convergence",
            "parameter",
            row_classes=["bad" if g != "ok" else "" for g in gate],
        ),
        "sampler": (
            f"{prov.get('sampler')}: {verdict.n_chains} chains x {verdict.n_draws} draws after "
            f"{prov.get('tune')} tuning, seed {prov.get('seed')}; sampling wall time "
            f"{fmt(prov.get('wall_time_s') or float('nan'), 4)} s"
        ),
        "mock": prov.get("sampler") == "mock",
    }


# --------------------------------------------------------------------------- 4. predictive checks
def pointwise_loglik(inputs: Inputs, fit: Any) -> Any:
    """Log-likelihood (chain, draw, obs) of every observation with a likelihood.

    Published rows: from the stored deterministics ``pub_pred`` / ``pub_sd`` with the model's own row error
    (Student-t or Normal), exactly the model's ``obs_published`` term without recompiling the model;
    individual data: :func:`bonebayes.compare.pointwise_log_likelihood` (PyMC).
    """
    import xarray as xr

    data = inputs.model.data
    if inputs.kind == "published":
        from scipy import stats

        post = fit.idata.posterior
        f = np.asarray(data.fit, bool)
        pred = post["pub_pred"].values[..., f]
        sd = post["pub_sd"].values[..., f]
        y = np.asarray(data.y)[f]
        ll = stats.norm.logpdf(y, pred, sd) if data.nu is None else stats.t.logpdf(y, data.nu, pred, sd)
        return xr.DataArray(ll, dims=("chain", "draw", "obs"))
    from bonebayes.compare import pointwise_log_likelihood

    ll, _ = pointwise_log_likelihood(inputs.model, fit.idata)
    return ll


def checks_section(inputs: Inputs, fit: Any, cfg: ReportConfig, ll: Any) -> dict[str, Any]:
    """Coverage at 50/80/90/95%, LOO-PIT, observed vs predicted (published) or a VPC (individual).

    Built from the functions of :mod:`bonebayes.checks.predictive`, as ``posterior_predictive_check`` is.
    """
    from bonebayes.checks import predictive as pc

    seed = cfg.checks_seed
    prob = cfg.checks.interval
    model = inputs.model
    tab = pc.observation_table(model)
    reps = pc.replicates(model, fit.idata, seed=seed)
    cov = pc.coverage_table(tab, reps)
    llv = np.asarray(ll.values).reshape(-1, ll.shape[-1])
    fitmask = tab["fit"].to_numpy(bool)
    S = min(len(llv), len(reps))
    pit = np.full(len(tab), np.nan)
    pit[fitmask] = pc.loo_pit(llv[:S], reps[:S, fitmask], tab["observed"].to_numpy(float)[fitmask], seed)
    pit[tab["censored"].to_numpy(bool)] = np.nan
    ks = pc.uniformity_pvalue(pit)
    cov = cov.copy()
    cov.index.name = "rows"
    cov_cols = [c for c in cov.columns if c.startswith("coverage_")]
    w_cols = [c for c in cov.columns if c.startswith("median_width_")]
    cov_t = cov[["n", "n_censored", *cov_cols, *w_cols]]
    formats = {c: pct for c in cov_cols}
    figures: list[Figure] = []
    vpc_t = None
    with deterministic_style():
        if inputs.kind == "published":
            figures.append(
                embed(
                    pc.observed_vs_predicted_figure(tab, reps, prob),
                    f"Observed value against the predicted median with its central {prob:.0%} "
                    "interval, by row class (diagonal: perfect prediction)",
                    "observed vs predicted",
                )
            )
        else:
            vpc = pc.vpc_table(tab, reps, by=cfg.checks.vpc_by)
            figures.append(
                embed(
                    pc.vpc_figure(vpc, tab, by=cfg.checks.vpc_by),
                    "Visual predictive check: observed 10/50/90% quantiles (lines) against 90% "
                    "intervals of the predicted quantiles (bands) per time bin; open red markers are "
                    "observations below the LOQ",
                    "visual predictive check",
                )
            )
            vpc_t = table(vpc, "VPC table (observed and predicted quantiles; fractions below the LOQ)")
        figures.append(
            embed(
                pc.pit_figure(pit),
                f"LOO-PIT histogram (uniform if calibrated); KS p-value {ks:.3g}",
                "LOO-PIT",
            )
        )
    outside = None
    if inputs.kind == "published":
        rows = model.data.rows
        lo, hi = np.quantile(reps, [(1 - prob) / 2, (1 + prob) / 2], axis=0)
        obs = tab["observed"].to_numpy(float)
        out = (obs < lo) | (obs > hi)
        df = rows.loc[out, ["record_id", "study", "arm", "endpoint", "site", "measure", "time_months"]].copy()
        df["observed"], df["pred_median"] = obs[out], np.median(reps[:, out], axis=0)
        df["lo"], df["hi"] = lo[out], hi[out]
        outside = table(
            df.reset_index(drop=True),
            f"{int(out.sum())} of {len(obs)} rows outside their central {prob:.0%} interval",
        )
    return {
        "coverage": table(
            cov_t,
            "Fraction of observations inside their central predictive intervals (in-sample) "
            "and median interval widths",
            "rows",
            formats=formats,
        ),
        "coverage_numbers": {c: float(cov.loc["all", c]) for c in cov_cols},
        "ks": ks,
        "figures": figures,
        "outside": outside,
        "vpc": vpc_t,
        "seed": seed,
        "n": int(len(tab)),
        "n_censored": int(tab["censored"].sum()),
    }


# --------------------------------------------------------------------------- 5. comparison
def loo_summary(ll: Any, fit: Any) -> dict[str, Any]:
    from bonebayes.compare import K_THRESHOLD, loo_result

    r = loo_result(ll, fit.idata)
    k = r["pareto_k"]
    return {
        "elpd": r["elpd"],
        "se": r["se"],
        "p_loo": r["p_loo"],
        "n": int(len(k)),
        "k_good": int(np.sum(k <= 0.5)),
        "k_ok": int(np.sum((k > 0.5) & (k <= K_THRESHOLD))),
        "k_bad": int(np.sum(k > K_THRESHOLD)),
        "k_max": float(np.max(k)),
        "k_threshold": K_THRESHOLD,
    }


def compare_section(
    cfg: ReportConfig, inputs: Inputs, fit: Any, fit_info: FitInfo, ll: Any, log: Log
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "loo": loo_summary(ll, fit),
        "enabled": cfg.compare.enabled,
        "reason": cfg.compare.reason,
        "table": None,
    }
    if not cfg.compare.enabled:
        return out
    from bonebayes.compare import ComparisonData, compare_variants, render_comparison

    c = cfg.compare
    settings = cfg.compare_settings()
    data = (
        ComparisonData("published", evidence=inputs.evidence, label=inputs.label)
        if inputs.kind == "published"
        else ComparisonData(
            "individual", observations=inputs.observations, exposures=inputs.exposures, label=inputs.label
        )
    )
    output = cfg.resolve(c.output) if c.output else None
    reused = ""
    if output is not None and inputs.variant in c.variants:
        target = output / f"{inputs.variant}.nc"
        same = all(fit.provenance.get(k) == v for k, v in settings.items())
        if same and not target.exists():  # the report's own fit stands for its variant (same settings)
            output.mkdir(parents=True, exist_ok=True)
            from bonebayes._atomic import write_atomic

            write_atomic(target, lambda tmp: shutil.copyfile(fit_info.path, tmp))
            reused = f"the report's fit ({fit_info.path}) is used for {inputs.variant} (same settings)"
            log(reused)
    comp = compare_variants(data, c.variants, kfold=c.kfold or None, output=output, log=log, **settings)
    t = comp.table.copy()
    cols = [
        "method",
        "elpd",
        "se",
        "elpd_diff",
        "se_diff",
        "weight",
        "elpd_loo",
        "p_loo",
        "k_good",
        "k_ok",
        "k_bad",
        "converged",
        "rhat_max",
        "divergences",
        "wall_time_s",
        "description",
    ]
    t = t[[x for x in cols if x in t]]
    out.update(
        {
            "table": table(t, f"Variants ranked by {comp.method} elpd (higher is better)", "variant"),
            "method": comp.method,
            "folds": [len(f) for f in comp.folds] if comp.folds else None,
            "legend": render_comparison(comp).strip().splitlines()[-1 if not comp.folds else -2],
            "settings": settings,
            "reused": reused,
        }
    )
    return out


# --------------------------------------------------------------------------- 6. projections
def _pivot_records(records: list[dict[str, Any]]) -> pd.DataFrame:
    """Projection records as one row per (arm or contrast, endpoint, site) and one column per time."""
    rows: dict[tuple[str, str, str, str], dict[str, str]] = {}
    times: list[float] = []
    for r in records:
        if r["endpoint"] == "p_osteoporosis" or r["median"] is None:
            continue
        who = ("arm", r["arm"]) if "arm" in r else ("contrast", r["contrast"])
        key = (who[0], who[1], r["endpoint"], r.get("site") or "")
        t = r["time_months"]
        if t not in times:
            times.append(t)
        lo, hi = r["hdi90"]
        rows.setdefault(key, {})[fmt(t)] = f"{r['median']:.2f} [{lo:.2f}, {hi:.2f}]"
    zero = f"{0.0:.2f} [{0.0:.2f}, {0.0:.2f}]"
    cols = [fmt(t) for t in times if not all(v.get(fmt(t)) == zero for v in rows.values())]  # drop month 0
    data = [
        {"": k[0], "name": k[1], "endpoint": k[2], "site": k[3], **{f"month {c}": v.get(c, "") for c in cols}}
        for k, v in rows.items()
    ]
    return pd.DataFrame(data)


def projection_section(cfg: ReportConfig, index: int, fit: Any) -> dict[str, Any]:
    import json

    from bonebayes.projections import load_scenario, project
    from bonebayes.projections.output import to_records
    from bonebayes.projections.plots import fan_chart

    p = cfg.projections[index]
    scn = load_scenario(scenario_source(cfg, p.scenario))
    ds = project(
        fit,
        scn,
        draws=p.draws,
        seed=p.seed,
        study_effects=p.study_effects,
        allow_prior=p.allow_prior,
        monthly=True,
    )
    at = ds.sel(time=[float(t) for t in sorted(set(scn.times_months))])
    table_df = _pivot_records(to_records(at, p.endpoints))
    figures = []
    with deterministic_style():
        for ep in p.endpoints:
            figures.append(
                embed(
                    fan_chart(ds, ep), f"{scn.name}: {ep} by arm (median, 50% and 90% HDI)", f"fan chart {ep}"
                )
            )
        if "contrast" in ds.dims:
            for ep in p.endpoints[:1]:
                figures.append(
                    embed(
                        fan_chart(ds, ep, contrasts=True),
                        f"{scn.name}: {ep} contrasts (paired differences between arms)",
                        f"fan chart {ep} contrasts",
                    )
                )
    arms = pd.DataFrame(
        [
            {
                "arm": n,
                "label": a.label or "",
                "regimen": "; ".join(
                    f"{r.drug}"
                    + (f" {r.dose:g} {r.unit}" if r.dose is not None else "")
                    + (f" every {r.every_months:g} months" if r.every_months else "")
                    + f" months {r.start_month:g}-{'' if r.stop_month is None else f'{r.stop_month:g}'}"
                    for r in a.regimen
                )
                or "(none)",
            }
            for n, a in scn.arms.items()
        ]
    )
    p_ost = None
    if "p_osteoporosis" in ds:
        po = ds["p_osteoporosis"].sel(time=at["time"].values).to_dataframe().reset_index()
        po = po.pivot_table(index=["arm", "site"], columns="time", values="p_osteoporosis", sort=False)
        po.columns = [f"month {fmt(float(c))}" for c in po.columns]
        p_ost = table(po.reset_index(), "Probability of osteoporosis (T-score <= -2.5) over posterior draws")
    return {
        "index": index,
        "name": scn.name,
        "source": p.scenario,
        "description": scn.description,
        "anchor": f"projection-{index + 1}",
        "settings": (
            f"{int(ds.sizes['draw'])} posterior draws (evenly spaced), seed {p.seed}, study effects "
            f"{p.study_effects!r}" + (", missing parameters from their priors" if p.allow_prior else "")
        ),
        "arms": table(arms, "Arms"),
        "table": table(
            table_df,
            "Median [90% HDI] at the scenario's times (% change from month 0, the baseline; "
            "contrasts in percentage points)",
        ),
        "p_osteoporosis": p_ost,
        "figures": figures,
        "notes": json.loads(ds.attrs.get("notes", "[]")),
    }


# --------------------------------------------------------------------------- 7. provenance
REPORT_PACKAGES = (
    "bonebayes",
    "pymc",
    "pytensor",
    "arviz",
    "nutpie",
    "numpy",
    "xarray",
    "scipy",
    "pandas",
    "matplotlib",
    "jinja2",
)


def versions() -> dict[str, str]:
    from bonebayes.inference import package_versions

    return package_versions(REPORT_PACKAGES)


def provenance_section(
    cfg: ReportConfig, inputs: Inputs, fit: Any, fit_info: FitInfo, command: str, started: str, seconds: float
) -> dict[str, Any]:
    p = fit.provenance
    fit_rows = pd.DataFrame(
        {
            "": [
                "file",
                "sha256",
                "reused",
                "why",
                "model",
                "sampler",
                "chains x draws (tune)",
                "seed",
                "created",
                "command",
                "data hash",
            ],
            "value": [
                fit_info.path,
                fit_info.sha256,
                fit_info.reused,
                fit_info.reason,
                p.get("model", ""),
                p.get("sampler", ""),
                f"{p.get('chains')} x {p.get('draws')} ({p.get('tune')})",
                p.get("seed"),
                p.get("created", ""),
                p.get("command", ""),
                p.get("data_hash", ""),
            ],
        }
    )
    fit_versions = p.get("versions") or {}
    now = versions()
    ver = pd.DataFrame(
        {"package": list(now), "report": list(now.values()), "fit": [fit_versions.get(k, "") for k in now]}
    )
    return {
        "command": command,
        "started": started,
        "seconds": seconds,
        "data_hash": inputs.data_hash,
        "data_label": inputs.label,
        "data_files": inputs.data_files,
        "seed": {
            "fit": cfg.fit.seed,
            "checks": cfg.checks_seed,
            "projections": [p.seed for p in cfg.projections],
        },
        "config_path": cfg.source,
        "config_sha256": cfg.sha256,
        "config_text": cfg.text,
        "fit": table(fit_rows),
        "versions": table(ver, "Package versions (this report; the fit's when it was made)"),
    }
