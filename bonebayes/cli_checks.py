"""Command-line checks and comparison: ``bonebayes compare | sbc | prior-check | ppc`` (registered on the
main ``bonebayes`` app by :mod:`bonebayes.cli`). Heavy modules are imported inside the commands."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from bonebayes.cli import (
    EXIT_BAD_INPUT,
    SamplerName,
    _fail,
    _fmt,
    _load_fit,
    _need_file,
    _quiet_diagnostics_warning,
    _status,
    app,
    err,
    out,
)


class CompareData(str, Enum):
    published = "published"
    synthetic = "synthetic"


def _log(message: str) -> None:
    err.print(escape(message), soft_wrap=True)


def _print_frame(df: Any, title: str, columns: list[str]) -> None:
    t = Table(title=title)
    t.add_column(df.index.name or "", justify="left")
    for c in columns:
        t.add_column(c, justify="right")
    for name, row in df.iterrows():
        t.add_row(escape(str(name)), *[escape(_fmt(row[c]) if not isinstance(row[c], str) else row[c])
                                       for c in columns])
    out.print(t)


def _variant_names(text: str) -> list[str]:
    from bonebayes.variants import VARIANTS

    names = [v.strip() for v in text.split(",") if v.strip()]
    unknown = [v for v in names if v not in VARIANTS]
    if unknown:
        _fail(f"--variants: unknown variant(s) {', '.join(unknown)}; registered: {', '.join(VARIANTS)}")
    if not names:
        _fail("--variants: give at least one variant name, e.g. --variants published,published_rebound")
    return names


@app.command()
def compare(
    variants: Annotated[str, typer.Option(
        help="Comma-separated registered variant names (see --list), e.g. published,published_rebound. "
             "Default: every variant of the data's model kind.", show_default=False)] = "",
    data: Annotated[CompareData, typer.Option(
        help="published: the shipped published evidence (published* variants); synthetic: a synthetic cohort "
             "simulated from --truth (individual* variants).", case_sensitive=False)] = CompareData.published,
    truth: Annotated[str, typer.Option(
        help="Generating variant of the synthetic cohort: individual_rebound (default) or individual.")
    ] = "individual_rebound",
    n_subjects: Annotated[int, typer.Option(help="Subjects in the synthetic cohort.", min=4)] = 60,
    draws: Annotated[int, typer.Option(help="Posterior draws per chain.", min=1)] = 1000,
    tune: Annotated[int, typer.Option(help="Tuning iterations per chain.", min=0)] = 1000,
    chains: Annotated[int, typer.Option(help="Chains.", min=1)] = 4,
    seed: Annotated[int, typer.Option(help="Random seed (fits, folds and the synthetic cohort).")] = 1,
    sampler: Annotated[SamplerName, typer.Option(
        help="NUTS implementation; mock draws from the prior (plumbing tests only).", case_sensitive=False)
    ] = SamplerName.nutpie,
    kfold: Annotated[int, typer.Option(
        help="K for the grouped K-fold fallback used when any Pareto k exceeds --k-threshold "
             "(groups: studies or subjects); 0 never refits.", min=0)] = 5,
    k_threshold: Annotated[float, typer.Option(help="Pareto k threshold for PSIS-LOO reliability.")] = 0.7,
    output: Annotated[Path | None, typer.Option(
        help="Folder for fits (NAME.nc), fold results, comparison.csv and comparison.md; a rerun reuses "
             "them.", show_default=False)] = None,
    list_variants: Annotated[bool, typer.Option("--list", help="List the registered variants and exit.")] = False,
) -> None:
    """Fit model variants and compare them: PSIS-LOO with Pareto-k counts, grouped K-fold where LOO is
    unreliable, elpd differences with paired standard errors, and stacking weights."""
    from bonebayes.variants import VARIANTS, variants_table

    if list_variants:
        t = Table(title="registered model variants")
        for c in ("name", "kind", "overrides", "description"):
            t.add_column(c)
        for row in variants_table():
            t.add_row(*(escape(row[c]) for c in ("name", "kind", "overrides", "description")))
        out.print(t)
        return
    kind = "published" if data == CompareData.published else "individual"
    names = _variant_names(variants) if variants else [n for n, v in VARIANTS.items() if v.kind == kind]
    wrong = [n for n in names if VARIANTS[n].kind != kind]
    if wrong:
        _fail(f"--variants: {', '.join(wrong)} are not {kind} variants (--data {data.value} fits {kind} models)")
    from bonebayes.compare import compare_variants, published_data, synthetic_data, render_comparison

    with _status(f"Preparing the {data.value} data..."):
        try:
            comp_data = published_data() if kind == "published" else synthetic_data(truth, n_subjects, seed)
        except ValueError as e:
            _fail(f"--truth: {e}")
    with _quiet_diagnostics_warning():
        comp = compare_variants(comp_data, names, draws=draws, tune=tune, chains=chains, seed=seed,
                                sampler=sampler.value, kfold=kfold or None, k_threshold=k_threshold,
                                output=output, log=_log)
    _print_frame(comp.table, f"model comparison: {comp.data_label}",
                 ["method", "elpd", "se", "elpd_diff", "se_diff", "weight", "p_loo", "k_bad", "converged"])
    out.print(escape(render_comparison(comp).strip().splitlines()[-1 if not comp.folds else -2]), soft_wrap=True)
    if output:
        out.print(f"[green]Wrote[/] {escape(str(output))}/comparison.csv and comparison.md", soft_wrap=True)


@app.command()
def sbc(
    model: Annotated[str, typer.Option(help="Registered variant to calibrate, e.g. individual.",
                                       show_default=False)],
    replicates: Annotated[int, typer.Option(help="Number of SBC replicates (>= 100 for a real check).",
                                            min=1)] = 100,
    draws: Annotated[int, typer.Option(help="Posterior draws per chain in each refit.", min=1)] = 200,
    tune: Annotated[int, typer.Option(help="Tuning iterations per chain.", min=0)] = 200,
    chains: Annotated[int, typer.Option(help="Chains per refit.", min=1)] = 2,
    seed: Annotated[int, typer.Option(help="Base seed; replicate r uses seed * 1000003 + r.")] = 0,
    sampler: Annotated[SamplerName, typer.Option(
        help="NUTS implementation; mock draws from the prior (plumbing tests only).", case_sensitive=False)
    ] = SamplerName.nutpie,
    rank_draws: Annotated[int, typer.Option(help="Thinned posterior draws per rank (ranks 0..N).", min=1)] = 99,
    n_subjects: Annotated[int, typer.Option(help="Subjects of the individual template cohort.", min=2)] = 20,
    n_cohorts: Annotated[int, typer.Option(help="Cohorts of the individual template cohort.", min=1)] = 1,
    output: Annotated[Path | None, typer.Option(
        help="Folder for replicates/rep_NNNNN.json (resumable), ranks.csv, uniformity.csv, replicates.csv "
             "and rank_histograms.png.", show_default=False)] = None,
    from_sweep: Annotated[list[Path] | None, typer.Option(
        help="Summarise the finished replicates of a sweep results folder (bonebayes.sbc:run_replicate tasks, "
             "e.g. of data/sweeps/sbc_individual.toml) instead of running replicates here. Repeat it to add "
             "a folder of longer refits of some replicates (same seeds): they replace the earlier records.",
        show_default=False)] = None,
    screen_rhat: Annotated[float, typer.Option(
        help="Sensitivity columns *_screened repeat the tests over replicates whose refit reached max "
             "R-hat <= this.", min=1.0)] = 1.05,
) -> None:
    """Simulation-based calibration: draw from the prior, simulate, refit, and test the ranks of the true
    values for uniformity per parameter (chi-square on binned ranks, KS on normalised ranks)."""
    from bonebayes.variants import VARIANTS

    if model not in VARIANTS:
        _fail(f"--model: unknown variant {model!r}; registered: {', '.join(VARIANTS)}")
    if from_sweep:
        from bonebayes.checks.sbc import save_sbc
        from bonebayes.sbc import summarise_sweep

        try:
            res = summarise_sweep(from_sweep, model, screen_rhat)
        except ValueError as e:
            _fail(f"--from-sweep: {e}")
        if output:
            save_sbc(res, output)
    else:
        if rank_draws > draws * chains:
            _fail(f"--rank-draws {rank_draws} exceeds draws x chains = {draws * chains}")
        from bonebayes.checks.sbc import run_sbc

        with _quiet_diagnostics_warning():
            res = run_sbc(model, replicates, draws=draws, tune=tune, chains=chains, seed=seed,
                          sampler=sampler.value, rank_draws=rank_draws, n_subjects=n_subjects, n_cohorts=n_cohorts,
                          output=output, log=_log, screen_rhat=screen_rhat)
    info = res.replicate_info
    if len(info):
        out.print(f"fits: median R-hat max {info['rhat_max'].median():.3f}, {int((info['rhat_max'] <= 1.01).sum())}"
                  f"/{len(info)} with R-hat <= 1.01, median min bulk ESS {info['ess_bulk_min'].median():.0f}, "
                  f"{int((info['divergences'] > 0).sum())} with divergences; median wall "
                  f"{info['wall_time_s'].median():.0f} s", soft_wrap=True)
    _print_frame(res.table, f"SBC {model}: {len(res.replicate_info)} replicates, "
                 f"{res.wall_time_s:.0f} s in all", ["replicates", "chi2_pvalue", "ks_pvalue",
                                                     "mean_normalised_rank", "sd_normalised_rank",
                                                     "chi2_pvalue_screened", "ks_pvalue_screened"])
    low = res.table[res.table["chi2_pvalue"] < 0.01].index.tolist()
    out.print(f"parameters with chi-square p < 0.01: {escape(', '.join(low)) or 'none'} "
              f"(of {len(res.table)}; expect about {0.01 * len(res.table):.1f} by chance)", soft_wrap=True)
    n_screened = int(res.table["replicates_screened"].max()) if len(res.table) else 0
    low_s = res.table[res.table["chi2_pvalue_screened"] < 0.01].index.tolist()
    out.print(f"screened (the {n_screened} replicates with R-hat <= {screen_rhat}): chi-square p < 0.01 for "
              f"{escape(', '.join(low_s)) or 'none'}", soft_wrap=True)
    if output:
        out.print(f"[green]Wrote[/] {escape(str(output))}/uniformity.csv, ranks.csv, rank_histograms.png",
                  soft_wrap=True)


def _model_for_fit(fit: Any) -> Any:
    """Rebuild the model object of a saved fit (individual from its tables; published from data/)."""
    prov = fit.provenance
    if prov.get("model") == "published":
        from bonebayes.models.published import PublishedConfig, PublishedModel

        m = PublishedModel(None, PublishedConfig(**prov["config"]))
        if m.data_hash() != prov.get("data_hash"):
            _fail("the fit was made with other published data than the shipped data/ (data hash differs)")
        return m
    return fit.rebuild_model()


@app.command("prior-check")
def prior_check(
    model: Annotated[str, typer.Option(help="Registered variant, e.g. published or individual.")] = "published",
    observations: Annotated[Path | None, typer.Option(
        help="Observation CSV for an individual variant (default: a synthetic cohort).", show_default=False)] = None,
    exposures: Annotated[Path | None, typer.Option(help="Exposure CSV for an individual variant.",
                                                   show_default=False)] = None,
    draws: Annotated[int, typer.Option(help="Prior draws.", min=10)] = 500,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    output: Annotated[Path | None, typer.Option(help="Folder for prior_*.csv / .png / .json.",
                                                show_default=False)] = None,
) -> None:
    """Prior predictive check: simulate every observation from the priors and count implausible draws
    (BMD changing by more than 50 %/year; markers below -95% or above +400% of baseline)."""
    from bonebayes.variants import VARIANTS, build_variant_model

    if model not in VARIANTS:
        _fail(f"--model: unknown variant {model!r}; registered: {', '.join(VARIANTS)}")
    v = VARIANTS[model]
    kwargs: dict[str, Any] = {}
    if v.kind == "individual":
        if (observations is None) != (exposures is None):
            _fail("--observations and --exposures go together")
        if observations is not None:
            _need_file(observations, "observations file")
            _need_file(exposures, "exposures file")
            from bonebayes.datasets.io import load_cohort

            kwargs["observations"], kwargs["exposures"] = load_cohort(observations, exposures)
        else:
            from bonebayes.compare import synthetic_data

            d = synthetic_data("individual", 60, seed)
            kwargs["observations"], kwargs["exposures"] = d.observations, d.exposures
    from bonebayes.checks.predictive import prior_predictive_check

    with _status(f"Drawing {draws} prior predictive draws of {model}..."):
        chk = prior_predictive_check(build_variant_model(v, **kwargs), draws=draws, seed=seed)
    _print_frame(chk.summary, f"prior predictive implausibility: {model}",
                 ["observations", "frac_obs_draws_implausible", "frac_draws_any_implausible"])
    if output:
        chk.save(str(output))
        out.print(f"[green]Wrote[/] prior predictive tables and figures to {escape(str(output))}", soft_wrap=True)


@app.command()
def ppc(
    fit_file: Annotated[Path, typer.Argument(help="A saved fit (bonebayes fit / demo / compare).",
                                             show_default=False)],
    seed: Annotated[int, typer.Option(help="Random seed of the replicates.")] = 0,
    by: Annotated[str, typer.Option(help="VPC strata for individual data: stratum (arm, else cohort) or "
                                         "cohort.")] = "stratum",
    output: Annotated[Path | None, typer.Option(help="Folder for posterior_*.csv / .png / .json.",
                                                show_default=False)] = None,
) -> None:
    """Posterior predictive check of a saved fit: coverage at 50/80/90/95%, LOO-PIT with a uniformity test,
    a VPC (individual data; censoring-aware) or observed-vs-predicted plot (published arms)."""
    if by not in ("stratum", "cohort"):
        _fail(f"--by must be 'stratum' or 'cohort' (got {by!r})")
    fit = _load_fit(fit_file)
    from bonebayes.checks.predictive import posterior_predictive_check

    with _status("Replicating the observations under the posterior..."):
        try:
            chk = posterior_predictive_check(_model_for_fit(fit), fit.idata, seed=seed, by=by)
        except KeyError as e:
            _fail(f"{fit_file}: the fit lacks {e} (was it saved by bonebayes?)", code=EXIT_BAD_INPUT)
    cols = [c for c in chk.summary.columns if c.startswith("coverage_")]
    _print_frame(chk.summary, "posterior predictive coverage (central intervals)", ["n", *cols])
    out.print(f"LOO-PIT KS p-value {chk.numbers['loo_pit_ks_pvalue']:.3f}", soft_wrap=True)
    if output:
        chk.save(str(output))
        out.print(f"[green]Wrote[/] posterior predictive tables and figures to {escape(str(output))}",
                  soft_wrap=True)
