"""The main jobs, writing everything to a results directory.

* :func:`run_main_job` (``make demo``): the shipped published evidence -> meta-analytic fit -> diagnostics ->
  posterior predictive table per arm row -> leave-one-study-out refits -> summary.
* :func:`run_synthetic_job` (``bonebayes demo --synthetic``): synthetic cohort -> hierarchical individual fit ->
  diagnostics -> parameter recovery.

Every output is written atomically; an interrupted run is resumed by rerunning it (a finished fit whose
provenance matches the request is reused, and finished leave-one-study-out refits are skipped).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from bonebayes._atomic import write_text_atomic
from bonebayes.checks.recovery import recovery_table
from bonebayes.datasets.io import write_table_atomic
from bonebayes.datasets.synthetic import SyntheticDesign, simulate_cohort
from bonebayes.fit import Fit
from bonebayes.models.individual import IndividualModel


def _json(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.integer | np.floating):
        return obj.item()
    return str(obj)


def _reusable(fit_path: Path, model: Any, request: dict[str, Any]) -> Fit | None:
    if not fit_path.exists():
        return None
    try:
        fit = Fit.load(fit_path)
    except (OSError, ValueError):
        return None
    return fit if fit.reusable_for(model, request) else None


def _fit_or_reuse(model: Any, fit_path: Path, *, force: bool, progress: bool, **request: Any) -> tuple[Fit, bool]:
    """A finished fit at ``fit_path`` with the same data, configuration and settings, else a new one (saved)."""
    fit = None if force else _reusable(fit_path, model, request)
    if fit is not None:
        return fit, True
    fit = model.fit(progress=progress, **request)
    fit.save(fit_path)
    return fit, False


def run_synthetic_job(
    out_dir: str | Path = "results",
    *,
    n_subjects: int = 200,
    draws: int = 1000,
    tune: int = 1000,
    chains: int = 4,
    seed: int = 1,
    sampler: str = "nutpie",
    progress: bool = True,
    force: bool = False,
) -> dict[str, Any]:
    """Run the synthetic recovery job; returns a summary dict (also written to ``out_dir/summary.json``)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    design = SyntheticDesign(n_subjects=n_subjects)
    cohort = simulate_cohort(design, seed=seed)
    cohort.write(str(out / "data"))
    write_text_atomic(json.dumps(cohort.truth, default=_json, indent=2), out / "data" / "truth.json")
    model = IndividualModel(cohort.observations, cohort.exposures)
    fit_path = out / "fit.nc"
    fit, reused = _fit_or_reuse(model, fit_path, force=force, progress=progress, seed=seed, sampler=sampler,
                                draws=draws, tune=tune, chains=chains)
    verdict = fit.verdict or fit.diagnose()
    table = recovery_table(fit.idata, cohort.truth, list(design.sites), prob=0.9)
    write_table_atomic(table.reset_index(), out / "recovery.csv")
    write_text_atomic(str(verdict) + "\n", out / "diagnostics.txt")
    summary = {
        "fit": str(fit_path), "reused_existing_fit": reused,
        "n_subjects": n_subjects, "n_observations": int(len(cohort.observations)),
        "sampler": sampler, "draws": draws, "tune": tune, "chains": chains, "seed": seed,
        "fit_wall_time_s": fit.provenance.get("wall_time_s"),
        "job_wall_time_s": time.perf_counter() - t_start,
        "diagnostics": verdict.as_dict(),
        "recovery": {"n_parameters": int(len(table)), "n_covered_90": int(table["covered"].sum()),
                     "not_covered": table.index[~table["covered"]].tolist()},
    }
    write_text_atomic(json.dumps(summary, default=_json, indent=2), out / "summary.json")
    lines = [
        "# bonebayes synthetic recovery job", "",
        f"Synthetic cohort: {n_subjects} subjects, {len(cohort.observations)} observations (seed {seed}).",
        f"Fit: {sampler}, {chains} chains x {draws} draws after {tune} tuning; "
        f"wall time {fit.provenance.get('wall_time_s') or float('nan'):.1f} s.", "",
        "## Diagnostics", "", "```", str(verdict), "```", "",
        f"## Parameter recovery ({int(table['covered'].sum())}/{len(table)} inside their 90% interval)", "",
        table.to_markdown(floatfmt=".4g") if _has_tabulate() else table.to_string(), "",
    ]
    write_text_atomic("\n".join(lines), out / "summary.md")
    return summary


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401
    except ImportError:
        return False
    return True


def _markdown(df: Any, floatfmt: str = ".3g") -> str:
    return df.to_markdown(floatfmt=floatfmt) if _has_tabulate() else df.to_string()


def run_main_job(
    out_dir: str | Path = "results",
    *,
    draws: int = 1000,
    tune: int = 1000,
    chains: int = 4,
    seed: int = 1,
    sampler: str = "nutpie",
    progress: bool = True,
    force: bool = False,
    loso: int | None = 8,
    loso_draws: int = 250,
    log: Any = None,
) -> dict[str, Any]:
    """Fit the shipped published evidence, check it, and write results and a summary to ``out_dir``.

    ``loso``: leave out each of the ``loso`` largest studies with BMD rows in turn (``None`` = all of them,
    0 = skip); each refit uses ``loso_draws`` draws after as many tuning steps per chain.
    """
    from bonebayes.checks.published import (
        coverage_summary,
        leave_one_study_out,
        loso_studies,
        predictive_table,
    )
    from bonebayes.datasets.published import load_published, population_profiles
    from bonebayes.models.published import PublishedModel

    say = log or (lambda msg: None)
    out = Path(out_dir)
    (out / "data").mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    ev = load_published()
    write_table_atomic(ev.usable, out / "data" / "published_rows_used.csv")
    write_table_atomic(ev.excluded, out / "data" / "published_rows_excluded.csv")
    write_table_atomic(population_profiles(ev), out / "data" / "population_profiles.csv")
    model = PublishedModel(ev)
    fit_path = out / "fit.nc"
    say(f"fitting {len(ev.usable)} published rows from {ev.usable['study'].nunique()} studies "
        "(or reusing a finished fit with the same data and settings)")
    fit, reused = _fit_or_reuse(model, fit_path, force=force, progress=progress, seed=seed, sampler=sampler,
                                draws=draws, tune=tune, chains=chains)
    verdict = fit.verdict or fit.diagnose()
    write_text_atomic(str(verdict) + "\n", out / "diagnostics.txt")
    ppc = predictive_table(fit.idata, model.data, prob=0.9, seed=seed)
    write_table_atomic(ppc, out / "ppc_published.csv")
    cov = coverage_summary(ppc)
    write_table_atomic(cov.reset_index(names="rows_of"), out / "ppc_coverage.csv")
    summary: dict[str, Any] = {
        "fit": str(fit_path), "reused_existing_fit": reused, "model": "published",
        "n_rows_used": int(len(ev.usable)), "n_rows_excluded": int(len(ev.excluded)),
        "n_studies": int(ev.usable["study"].nunique()), "n_arms": int(ev.usable["arm_key"].nunique()),
        "sampler": sampler, "draws": draws, "tune": tune, "chains": chains, "seed": seed,
        "fit_wall_time_s": fit.provenance.get("wall_time_s"), "diagnostics": verdict.as_dict(),
        "ppc": {"coverage_90": float(cov.loc["all", "coverage"]), "rows": int(cov.loc["all", "rows"]),
                "median_width": {k: float(v) for k, v in cov["median_width"].items()}},
    }
    loso_rows = loso_summary = None
    studies = [] if loso == 0 else loso_studies(ev, loso)
    if studies:
        say(f"leave-one-study-out: {len(studies)} refits ({', '.join(studies)})")
        loso_rows, loso_summary = leave_one_study_out(
            ev, studies, out / "loso", draws=loso_draws, tune=loso_draws, chains=chains, seed=seed,
            sampler=sampler, progress=say)
        write_table_atomic(loso_rows, out / "loso_rows.csv")
        write_table_atomic(loso_summary, out / "loso_summary.csv")
        bmd = loso_rows[loso_rows["row_class"] == "bmd"]
        summary["loso"] = {
            "studies": studies, "rows": int(len(loso_rows)), "coverage_90": float(loso_rows["inside"].mean()),
            "bmd_rows": int(len(bmd)), "bmd_median_abs_error_pp": float(bmd["abs_error"].median()),
            "bmd_median_width_pp": float(bmd["width"].median()),
            "refits_failing_gate": int((loso_summary["divergences"] > 0).sum() +
                                       (loso_summary["rhat_max"] > 1.01).sum()),
        }
    summary["job_wall_time_s"] = time.perf_counter() - t_start
    write_text_atomic(json.dumps(summary, default=_json, indent=2), out / "summary.json")
    write_text_atomic(_published_markdown(ev, fit, verdict, ppc, cov, loso_rows, loso_summary, summary),
                      out / "summary.md")
    return summary


def _published_markdown(ev: Any, fit: Fit, verdict: Any, ppc: Any, cov: Any, loso_rows: Any, loso_summary: Any,
                        summary: dict[str, Any]) -> str:
    cols = ["record_id", "study", "arm", "endpoint", "site", "measure", "time_months", "observed",
            "pred_median", "lo", "hi", "inside"]
    lines = [
        "# bonebayes main job: published evidence", "",
        ev.summary().replace("\n", "\n\n"), "",
        f"Fit: {summary['sampler']}, {summary['chains']} chains x {summary['draws']} draws after "
        f"{summary['tune']} tuning (seed {summary['seed']}); sampling wall time "
        f"{fit.provenance.get('wall_time_s') or float('nan'):.1f} s.", "",
        "## Diagnostics", "", "```", str(verdict), "```", "",
        "## Posterior predictive check (90% intervals, every used row)", "",
        _markdown(cov), "", _markdown(ppc[cols].set_index("record_id")), "",
        "## Population parameters", "", _markdown(fit.summary()), "",
    ]
    if loso_rows is not None:
        lo = summary["loso"]
        lines += [
            "## Leave-one-study-out (each study refitted without its rows, then predicted)", "",
            f"{lo['rows']} held-out rows: {lo['coverage_90']:.0%} inside their 90% predictive interval; "
            f"BMD rows: median absolute error {lo['bmd_median_abs_error_pp']:.2f} percentage points, "
            f"median 90% width {lo['bmd_median_width_pp']:.2f} points.", "",
            _markdown(loso_summary.set_index("study")), "",
            _markdown(loso_rows[cols].set_index("record_id")), "",
        ]
    return "\n".join(lines)
