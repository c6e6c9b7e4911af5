"""Command-line interface: ``bonebayes simulate | fit | diagnose | summary | project | demo | sweep | report``.

Exit codes (every command):

* 0 - success;
* 1 - bad input: a data file that fails validation (the message names the file, row, line and column),
  a missing file, an output that already exists without ``--force``, or a bad option value;
* 3 - the fit finished and was saved, but the convergence diagnostics gate failed (``fit``, ``diagnose``,
  ``demo``): the draws are written but must not be used for inference as they are.

Heavy modules (PyMC, ArviZ, the models) are imported inside the commands, so ``--help`` is instant.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from typer.core import TyperGroup

from bonebayes._atomic import write_text_atomic

EXIT_OK = 0
EXIT_BAD_INPUT = 1
EXIT_DIAGNOSTICS_FAILED = 3

SAMPLER_NAMES: tuple[str, ...] = ("nutpie", "pymc", "numpyro", "mock")
"""Mirror of ``bonebayes.inference.SAMPLERS`` (kept here so ``--help`` needs no heavy import; a test checks
that the two agree)."""

# Click's UsageError (bad option value, unknown option, missing option). Found through typer's public
# BadParameter so this works whether typer uses the click package or its vendored copy.
_UsageError: type[Exception] = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")


class _Group(TyperGroup):
    """Typer group whose usage errors exit with code 1 (bad input) instead of click's 2."""

    @staticmethod
    def _as_bad_input(e: Exception) -> None:
        if type(e).__name__ != "NoArgsIsHelpError":  # bare `bonebayes`: help, click's default code
            e.exit_code = EXIT_BAD_INPUT  # type: ignore[attr-defined]

    def make_context(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().make_context(*args, **kwargs)
        except _UsageError as e:
            self._as_bad_input(e)
            raise

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except _UsageError as e:
            self._as_bad_input(e)
            raise


app = typer.Typer(
    cls=_Group,
    name="bonebayes",
    help=(
        "Bayesian models of bone turnover: hormone -> RANKL/OPG -> turnover (CTX, P1NP) -> BMD.\n\n"
        "Typical session: `bonebayes simulate --out data/synth`, then `bonebayes fit --observations "
        "data/synth/observations.csv --exposures data/synth/exposures.csv --out fit.nc`, then "
        "`bonebayes summary fit.nc`. Times are in months; see README.md for the table formats.\n\n"
        "Exit codes: 0 success; 1 bad input (invalid data file, missing file, bad option value, output "
        "exists without --force); 3 the fit was saved but failed the convergence diagnostics gate."
    ),
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="markdown",
    pretty_exceptions_show_locals=False,
)

out = Console(highlight=False)  # results (stdout)
err = Console(stderr=True, highlight=False)  # progress, warnings and errors (stderr)


SamplerName = Enum("SamplerName", {n: n for n in SAMPLER_NAMES}, type=str)  # type: ignore[misc]


class SummaryFormat(str, Enum):
    table = "table"
    csv = "csv"
    json = "json"


class VerdictFormat(str, Enum):
    text = "text"
    json = "json"


# --------------------------------------------------------------------------- helpers
def _fail(message: str, details: list[str] | None = None, code: int = EXIT_BAD_INPUT) -> NoReturn:
    """Print ``message`` (and ``details``) in red on stderr, without a traceback, and exit."""
    err.print(f"[bold red]error:[/] [red]{escape(message)}[/]", soft_wrap=True)
    for line in details or []:
        err.print(f"  [red]{escape(line)}[/]", soft_wrap=True)
    raise typer.Exit(code)


def _fail_validation(e: Exception, limit: int = 20) -> NoReturn:
    problems = [str(p) for p in getattr(e, "problems", [])]
    if len(problems) <= 1:
        _fail(f"invalid input data: {e}")
    shown = problems[:limit]
    more = [f"... and {len(problems) - limit} more"] if len(problems) > limit else []
    _fail(f"invalid input data ({len(problems)} problems):", shown + more)


def _need_file(path: Path, what: str) -> None:
    if not path.exists():
        _fail(f"{what} not found: {path}")
    if not path.is_file():
        _fail(f"{what} is not a file: {path}")


def _check_output(path: Path, force: bool, what: str = "output file") -> None:
    """Refuse an existing output without --force (checked first, before any work)."""
    if path.is_dir():
        _fail(f"{what} {path} is a directory; give a file name such as {path / 'fit.nc'}")
    if path.exists() and not force:
        _fail(f"{what} {path} already exists; refusing to overwrite it. "
              "Pass --force to replace it, or choose another --out.")


def _check_writable(path: Path, what: str = "output file") -> None:
    """Create the output's folder and check it is writable, so a long fit is not lost at the end."""
    import os

    parent = path.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        _fail(f"cannot create the folder for {what} {path}: {e}")
    if not os.access(parent, os.W_OK | os.X_OK):
        _fail(f"cannot write {what} {path}: folder {parent} is not writable")


@contextmanager
def _status(message: str, enabled: bool = True) -> Iterator[None]:
    """A spinner on stderr while long work runs (plain line when stderr is not a terminal)."""
    if enabled and err.is_terminal:
        with err.status(message, spinner="dots"):
            yield
    else:
        err.print(escape(message), soft_wrap=True)
        yield


@contextmanager
def _quiet_diagnostics_warning() -> Iterator[None]:
    """The CLI prints the verdict itself; silence the duplicate Python warning from the gate."""
    from bonebayes.inference import DiagnosticsWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DiagnosticsWarning)
        yield


def _print_verdict(verdict: Any, per_parameter: bool = False) -> None:
    style = "green" if verdict.ok else "bold red"
    text = str(verdict).splitlines()
    out.print(f"[{style}]{escape(text[0])}[/]", soft_wrap=True)
    for line in text[1:]:
        out.print(escape(line), soft_wrap=True)
    table = getattr(verdict, "table", None)
    if per_parameter and table is not None and len(table):
        t = Table(title="per-parameter convergence", show_lines=False)
        for c in ("parameter", "r_hat", "ess_bulk", "ess_tail"):
            t.add_column(c, justify="left" if c == "parameter" else "right")
        for name, row in table.iterrows():
            t.add_row(escape(str(name)), f"{row['r_hat']:.4f}", f"{row['ess_bulk']:.0f}",
                      f"{row['ess_tail']:.0f}")
        out.print(t)


def _gate_failed_warning(saved: str | None, sampler: str | None = None) -> None:
    where = f"The results were saved to {saved}, but do NOT" if saved else "Do NOT"
    msg = (f"WARNING: CONVERGENCE DIAGNOSTICS FAILED. {where} use these draws for inference "
           "as they are: run longer (more --tune/--draws), check the model, or inspect "
           "`bonebayes diagnose FIT.nc --per-parameter`.")
    if sampler == "mock":
        msg += (" (Expected here: the mock sampler draws from the prior, for testing plumbing; "
                "it is not inference.)")
    err.rule("[bold red]diagnostics gate failed[/]", style="red")
    err.print(f"[bold red]{escape(msg)}[/]", soft_wrap=True)
    err.rule(style="red")


def _load_fit(path: Path) -> Any:
    _need_file(path, "fit file")
    from bonebayes.fit import Fit

    try:
        return Fit.load(path)
    except (FileNotFoundError, ValueError, OSError) as e:
        msg = str(e)
        _fail(msg if str(path) in msg else f"cannot read fit {path}: {msg}")


def _json_default(o: Any) -> Any:
    import numpy as np

    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.bool_):
        return bool(o)
    if isinstance(o, tuple | set):
        return list(o)
    return str(o)


def _fmt(x: Any) -> str:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return str(x)
    if math.isnan(v):
        return "nan"
    return f"{v:.4g}"


# --------------------------------------------------------------------------- simulate
@app.command()
def simulate(
    out_dir: Annotated[Path, typer.Option(
        "--out", help="Directory to write into (created if missing; existing files of the same names "
                      "are replaced).", file_okay=False, show_default=False)],
    n_subjects: Annotated[int, typer.Option(
        help="Number of simulated subjects (postmenopausal women), assigned round-robin to cohorts "
             "and treatment arms.", min=1)] = 200,
    n_cohorts: Annotated[int, typer.Option(
        help="Number of cohorts (studies); each has its own arms and a random cohort effect.", min=1)] = 3,
    seed: Annotated[int, typer.Option(help="Random seed (integer); the same seed gives the same cohort.")] = 1,
) -> None:
    """Simulate a synthetic cohort with known true parameters (for recovery checks, teaching, tests).

    Subjects are postmenopausal women (menopause 2-25 years before month 0) on placebo, alendronate,
    denosumab (then stopped), teriparatide or estradiol, observed over 24 months: CTX and P1NP (ng/mL) at
    months 0, 1, 3, 6, 12, 18, 24; lumbar-spine and total-hip BMD (g/cm2) at 0, 6, 12, 24; serum RANKL and
    OPG (pmol/L) at 0, 12, 24. CTX/P1NP below the assay LOQ are flagged below_loq.

    Files written to --out:

    * observations.csv - long observation table (one measured value per row);

    * exposures.csv - dosing table (one drug course or event per row);

    * truth.json - the true population parameters and cohort effects that generated the data;

    * subject_effects.csv - each subject's true log baseline levels, k_M multiplier, cohort and arm.
    """
    from bonebayes.datasets.io import write_table_atomic
    from bonebayes.datasets.synthetic import SyntheticDesign, simulate_cohort

    try:
        design = SyntheticDesign(n_subjects=n_subjects, n_cohorts=n_cohorts)
    except ValueError as e:
        _fail(str(e))
    if out_dir.exists() and not out_dir.is_dir():
        _fail(f"--out {out_dir} exists and is not a directory")
    with _status(f"Simulating {n_subjects} subjects in {n_cohorts} cohort(s) (seed {seed})..."):
        cohort = simulate_cohort(design, seed=seed)
        obs_path, exp_path = cohort.write(str(out_dir))
        truth_path = out_dir / "truth.json"
        write_text_atomic(json.dumps(cohort.truth, indent=2, default=_json_default) + "\n", truth_path)
        effects = cohort.subject_effects.rename_axis("subject").reset_index()
        effects_path = write_table_atomic(effects, out_dir / "subject_effects.csv")
    n_obs, n_exp = len(cohort.observations), len(cohort.exposures)
    out.print(f"[green]Simulated[/] {n_subjects} subjects, {n_cohorts} cohort(s), seed {seed}:")
    for p, what in ((obs_path, f"{n_obs} observations"), (exp_path, f"{n_exp} exposure rows"),
                    (truth_path, "true parameters"), (effects_path, "true subject effects")):
        out.print(f"  {escape(str(p))}  ({what})", soft_wrap=True)


# --------------------------------------------------------------------------- fit
@app.command()
def fit(
    observations: Annotated[Path, typer.Option(
        help="Observation CSV (long format): subject, cohort, time_months, variable, value, unit, "
             "below_loq.", show_default=False)],
    exposures: Annotated[Path, typer.Option(
        help="Exposure (dosing) CSV: subject, drug, dose, unit, start_month, stop_month, every_months "
             "[, route].", show_default=False)],
    out_file: Annotated[Path, typer.Option(
        "--out", help="Where to save the fit (one NetCDF file, e.g. fit.nc). Refused if it exists, "
                      "unless --force.", show_default=False)],
    draws: Annotated[int, typer.Option(help="Posterior draws kept per chain.", min=1)] = 1000,
    tune: Annotated[int, typer.Option(help="Warm-up (tuning) iterations per chain, discarded.", min=0)] = 1000,
    chains: Annotated[int, typer.Option(
        help="Independent chains (at least 2 are needed to judge convergence with R-hat).", min=1)] = 4,
    seed: Annotated[int, typer.Option(help="Random seed (integer); stored with the fit.")] = 1,
    sampler: Annotated[SamplerName, typer.Option(
        help="NUTS implementation: nutpie (default, fastest), pymc, numpyro (needs the numpyro extra). "
             "mock draws from the PRIOR and is for testing the plumbing only - it is not inference.",
        case_sensitive=False)] = SamplerName.nutpie,
    progress: Annotated[bool, typer.Option(
        "--progress/--no-progress", help="Show the sampler's progress bar.")] = True,
    force: Annotated[bool, typer.Option("--force", help="Replace --out if it already exists.")] = False,
) -> None:
    """Fit the hierarchical individual-data model (population -> cohort -> subject) to a cohort.

    Loads and validates both tables (any problem stops here with the file, row, line and column), builds
    the PyMC model, samples the posterior, saves everything to --out and prints the convergence verdict
    (max R-hat <= 1.01, bulk and tail ESS >= 100 per chain, no divergences, E-BFMI >= 0.3).

    The saved file holds the posterior draws, the validated input tables and a provenance record (model
    configuration, data hash, seed, sampler settings, package versions); it is written atomically, so an
    interrupted run never leaves a partial file. Read it with `bonebayes summary` / `bonebayes diagnose`,
    or in Python with `bonebayes.fit.Fit.load`.

    Exit code 0 when the gate passes; 3 when the fit was saved but the gate failed; 1 for bad input.
    """
    _need_file(observations, "observations file")
    _need_file(exposures, "exposures file")
    _check_output(out_file, force, "--out")

    from bonebayes.datasets.io import load_cohort
    from bonebayes.datasets.schema import DataValidationError

    with _status(f"Loading and validating {observations} and {exposures}..."):
        try:
            obs_df, exp_df = load_cohort(observations, exposures)
        except DataValidationError as e:
            _fail_validation(e)
    n_subj = obs_df["subject"].nunique()
    err.print(f"Loaded {len(obs_df)} observations of {n_subj} subjects "
              f"in {obs_df['cohort'].nunique()} cohort(s); {len(exp_df)} exposure rows.")

    from bonebayes.models.individual import IndividualModel

    with _status("Building the model..."):
        try:
            model = IndividualModel(obs_df, exp_df)
            model.model  # noqa: B018 - build now, so data problems surface before sampling
        except ValueError as e:
            _fail(f"the data cannot be used by the individual model: {e}")

    _check_writable(out_file, "--out")
    name = sampler.value
    if name == "mock":
        err.print("[yellow]sampler 'mock': drawing from the prior (testing only; not inference).[/]")
    label = (f"Sampling with {name}: {chains} chains x ({tune} tune + {draws} draws), seed {seed}"
             + (" (nutpie compiles the model first)" if name == "nutpie" else "") + "...")
    # the samplers draw their own progress bar; a spinner on top would garble it
    with _status(label, enabled=not (progress and name != "mock")), _quiet_diagnostics_warning():
        result = model.fit(draws=draws, tune=tune, chains=chains, seed=seed, sampler=name, progress=progress)

    with _status(f"Saving the fit to {out_file}..."):
        result.save(out_file)
    verdict = result.verdict
    if verdict is None:
        with _quiet_diagnostics_warning():
            verdict = result.diagnose()
    wall = result.provenance.get("wall_time_s")
    took = f" (sampling took {wall:.1f} s)" if isinstance(wall, int | float) else ""
    out.print(f"[green]Saved[/] fit to {escape(str(out_file))}{took}", soft_wrap=True)
    _print_verdict(verdict)
    if not verdict.ok:
        _gate_failed_warning(str(out_file), name)
        raise typer.Exit(EXIT_DIAGNOSTICS_FAILED)


# --------------------------------------------------------------------------- diagnose
@app.command()
def diagnose(
    fit_file: Annotated[Path, typer.Argument(
        metavar="FIT.nc", help="A fit saved by `bonebayes fit` (NetCDF).", show_default=False)],
    per_parameter: Annotated[bool, typer.Option(
        help="Also list R-hat and ESS for every population parameter.")] = False,
    fmt: Annotated[VerdictFormat, typer.Option(
        "--format", help="text (readable) or json (machine-readable).", case_sensitive=False)
    ] = VerdictFormat.text,
) -> None:
    """Print the convergence verdict of a saved fit (population-level parameters).

    Gates: max R-hat <= 1.01; bulk and tail ESS >= 100 per chain (400 for 4 chains); no divergent
    transitions; E-BFMI >= 0.3; at least 2 chains. Exit code 0 if every gate passes, 3 if any fails,
    1 if the file is missing or not a bonebayes fit.
    """
    result = _load_fit(fit_file)
    with _quiet_diagnostics_warning():
        verdict = result.diagnose()
    if fmt is VerdictFormat.json:
        d = verdict.as_dict()
        if per_parameter and verdict.table is not None:
            d["per_parameter"] = json.loads(verdict.table.to_json(orient="index"))
        typer.echo(json.dumps(d, indent=2, default=_json_default))
    else:
        _print_verdict(verdict, per_parameter)
    if not verdict.ok:
        _gate_failed_warning(None, result.provenance.get("sampler"))
        raise typer.Exit(EXIT_DIAGNOSTICS_FAILED)


# --------------------------------------------------------------------------- summary
@app.command()
def summary(
    fit_file: Annotated[Path, typer.Argument(
        metavar="FIT.nc", help="A fit saved by `bonebayes fit` (NetCDF).", show_default=False)],
    hdi: Annotated[float, typer.Option(
        help="Probability mass of the highest-density interval, strictly between 0 and 1.")] = 0.9,
    fmt: Annotated[SummaryFormat, typer.Option(
        "--format", help="table (readable), csv or json (for other tools; written to stdout).",
        case_sensitive=False)] = SummaryFormat.table,
    var: Annotated[list[str] | None, typer.Option(
        "--var", metavar="NAME",
        help="Summarise only this variable (repeatable). Default: all population parameters.",
        show_default=False)] = None,
) -> None:
    """Posterior summary of the population parameters of a saved fit.

    One row per parameter element: posterior mean, sd, the HDI bounds, Monte Carlo standard errors, bulk
    and tail ESS and R-hat. Units: rate constants k_C, k_B, k_M, lam in 1/month; gamma, e_form, g_rankl,
    g_opg are elasticities (per unit log hormone level); emax_* are fractions; ec50_* in reference-dose
    equivalents; mu_level is the log of the baseline level in the canonical unit (CTX, P1NP ng/mL; RANKL,
    OPG pmol/L; BMD g/cm2); sigma_* and tau_* are SDs on the log scale.
    """
    if not (0.0 < hdi < 1.0):
        _fail(f"--hdi must be strictly between 0 and 1 (got {hdi})")
    result = _load_fit(fit_file)
    if var:
        unknown = [v for v in var if v not in result.idata.posterior]
        if unknown:
            names = ", ".join(result.population_vars) or ", ".join(result.idata.posterior.data_vars)
            _fail(f"--var: no variable named {', '.join(map(repr, unknown))} in {fit_file}; "
                  f"population parameters: {names}")
    df = result.summary(var_names=list(var) if var else None, hdi_prob=hdi)
    df = df.rename_axis("parameter")
    if fmt is SummaryFormat.csv:
        typer.echo(df.to_csv(), nl=False)
        return
    if fmt is SummaryFormat.json:
        records = json.loads(df.reset_index().to_json(orient="records"))
        typer.echo(json.dumps(records, indent=2))
        return
    prov = result.provenance
    title = (f"{fit_file.name}: {prov.get('sampler', '?')}, {prov.get('chains', '?')} chains x "
             f"{prov.get('draws', '?')} draws, seed {prov.get('seed', '?')}")
    table = Table(title=escape(title), box=box.SIMPLE_HEAD)
    table.add_column("parameter", justify="left", overflow="fold")
    for c in df.columns:
        table.add_column(escape(str(c)), justify="right", no_wrap=True)
    for name, row in df.iterrows():
        table.add_row(escape(str(name)), *(_fmt(v) for v in row.to_numpy()))
    # piped or redirected output has no terminal width to respect: don't squeeze the numbers
    (out if out.is_terminal else Console(width=200, highlight=False)).print(table)
    if prov.get("sampler") == "mock":
        err.print("[yellow]note: this fit used the mock sampler (prior draws); not a posterior.[/]")


# --------------------------------------------------------------------------- project
class ProjectFormat(str, Enum):
    table = "table"
    json = "json"
    csv = "csv"


def _default_fit(log: Any) -> Path:
    """The main job's fit (results/fit.nc); if it does not exist, run the main job's fit first (saying so)."""
    from bonebayes.projections.engine import default_fit_path

    path = default_fit_path()
    if path.is_file():
        err.print(f"No --fit given: using the default fit {escape(str(path))} (written by `make demo` / "
                  "`bonebayes demo`).", soft_wrap=True)
        return path
    err.print(f"[yellow]No --fit given and {escape(str(path))} does not exist: fitting the shipped published "
              "evidence first with the main job (bonebayes.pipeline.run_main_job, leave-one-study-out "
              "skipped). This is real MCMC and takes about half an hour on 2 cores.[/]", soft_wrap=True)
    from bonebayes import pipeline

    with _quiet_diagnostics_warning():
        pipeline.run_main_job(path.parent, loso=0, log=log, progress=False)
    if not path.is_file():
        _fail(f"the main job finished but wrote no fit at {path}")
    return path


@app.command()
def project(
    scenario: Annotated[str, typer.Option(
        "--scenario", help="Scenario TOML file (see README, 'Treatment projections'), or the name of a "
                           "shipped example such as denosumab_vs_placebo or five_regimens_vs_placebo.",
        show_default=False)],
    fit_file: Annotated[Path | None, typer.Option(
        "--fit", help="A saved fit (NetCDF). Default: results/fit.nc from the main job; if missing, the main "
                      "job's fit is run first (real MCMC).", show_default=False)] = None,
    fmt: Annotated[ProjectFormat, typer.Option(
        "--format", help="table (readable), json or csv.", case_sensitive=False)] = ProjectFormat.table,
    output: Annotated[Path | None, typer.Option(
        "--output", help="Write the results to this file (atomically) instead of stdout; a .nc suffix "
                         "saves the full per-draw Dataset as NetCDF.", show_default=False)] = None,
    draws: Annotated[int | None, typer.Option(
        help="Use this many posterior draws, evenly spaced (default: all).", min=1, show_default=False)] = None,
    seed: Annotated[int, typer.Option(help="Seed for new-study effects and prior draws (integer).")] = 0,
    study_effects: Annotated[str, typer.Option(
        help="Between-study effects of the published fit: 'new' (a new trial population, default), 'none' "
             "(population average) or the name of a study in the fit (its fitted effects).")] = "new",
    allow_prior: Annotated[bool, typer.Option(
        "--allow-prior", help="Draw parameters the fit has no posterior for (e.g. IGF-1 effects of a GH "
                              "secretagogue) from their priors instead of failing; they are listed in the "
                              "output.")] = False,
    endpoint: Annotated[list[str] | None, typer.Option(
        "--endpoint", help="Report only this endpoint (repeatable): bmd, ctx, p1np, rankl_opg_ratio, tscore, "
                           "p_osteoporosis.", show_default=False)] = None,
    monthly: Annotated[bool, typer.Option(
        "--monthly", help="Report every month from 0 to the last scenario time, not only the scenario's "
                          "times.")] = False,
    plots: Annotated[Path | None, typer.Option(
        "--plots", help="Also write fan charts, the regimen comparison and T-score charts (PNG, monthly "
                        "resolution) into this folder.", file_okay=False, show_default=False)] = None,
    compare_published: Annotated[bool, typer.Option(
        "--compare-published", help="Also print the sanity table: the published rows related to the "
                                    "scenario's drugs, observed vs projected (each trial's own design) and "
                                    "the scenario arm at the same time.")] = False,
) -> None:
    """Project a treatment scenario under a fitted posterior, with uncertainty bands.

    For every arm and contrast (paired difference, same posterior draws) at the scenario's times: BMD %
    change per site, T-score, P(T <= -2.5), CTX and P1NP % change, serum RANKL/OPG ratio % change - each
    with the mean, median, 50% and 90% highest-density intervals over posterior draws.

    The model has no osteoclast-precursor pool: stopping denosumab only lets its effect wane (no rebound);
    the output says so. Exit code 0 on success, 1 for bad input (the message names the file and the TOML key
    path, or the option).
    """
    from bonebayes.projections import ProjectionError, ScenarioError, load_scenario
    from bonebayes.projections.engine import project as run_projection
    from bonebayes.projections.output import render, write

    if endpoint:
        from bonebayes.projections.engine import ENDPOINTS

        bad = [e for e in endpoint if e not in ENDPOINTS]
        if bad:
            _fail(f"--endpoint: unknown endpoint(s) {', '.join(bad)}; allowed: {', '.join(ENDPOINTS)}")
    try:
        scn = load_scenario(scenario)
    except ScenarioError as e:
        _fail(f"invalid scenario: {e}")
    if output is not None:
        _check_writable(output, "--output")
    path = fit_file if fit_file is not None else _default_fit(lambda m: err.print(escape(m), soft_wrap=True))
    fit = _load_fit(path)
    if fit.provenance.get("sampler") == "mock":
        err.print("[yellow]note: this fit used the mock sampler (prior draws); not a posterior.[/]")
    kw = dict(draws=draws, seed=seed, allow_prior=allow_prior, study_effects=study_effects)
    try:
        with _status(f"Projecting {scn.name!r} ({len(scn.arms)} arms) under {path}..."):
            ds = run_projection(fit, scn, monthly=monthly, **kw)
            if plots is not None:
                import os

                os.environ.setdefault("MPLBACKEND", "Agg")  # files only: no window system needed
                from bonebayes.projections.plots import write_standard_plots

                ds_plot = ds if monthly else run_projection(fit, scn, monthly=True, **kw)
                written = write_standard_plots(ds_plot, plots)
    except ProjectionError as e:
        _fail(str(e))
    ds.attrs["fit_source"] = str(path)
    if output is not None:
        suffix_fmt = "netcdf" if output.suffix.lower() == ".nc" else fmt.value
        write(ds, output, suffix_fmt, endpoint)
        err.print(f"Wrote {escape(str(output))}", soft_wrap=True)
    else:
        typer.echo(render(ds, fmt.value, endpoint), nl=False)
    if plots is not None:
        err.print(f"Wrote {len(written)} plots to {escape(str(plots))}", soft_wrap=True)
    prior = ds.attrs.get("prior_parameters", "[]")
    if prior != "[]":
        err.print(f"[yellow]note: drawn from their priors (not informed by the fit): {escape(prior)}[/]")
    if compare_published:
        from bonebayes.projections.published_check import compare_published as compare

        table = compare(fit, scn, **kw)
        _print_comparison(table)


def _print_comparison(df: Any) -> None:
    """The sanity table: published rows, their projections and the scenario's matching arm."""
    table = Table(title="Published rows related to the scenario: observed vs projected (mean [90% HDI])",
                  box=box.SIMPLE_HEAD)
    for c in ("record", "study / arm", "endpoint", "site", "month", "observed", "trial design projected",
              "in 90%", "scenario arm at that month"):
        table.add_column(c, justify="left" if c in ("study / arm", "endpoint", "site") else "right")
    for r in df.itertuples():
        arm = f"{r.study} / {r.arm}" + (f" - {r.control}" if r.control else "")
        proj = f"{r.projected_mean:.2f} [{r.projected_hdi90_lo:.2f}, {r.projected_hdi90_hi:.2f}]"
        scen = ""
        if getattr(r, "scenario_arm", "") and not math.isnan(r.scenario_mean):
            scen = (f"{escape(r.scenario_arm)}: {r.scenario_mean:.2f} "
                    f"[{r.scenario_hdi90_lo:.2f}, {r.scenario_hdi90_hi:.2f}]")
        table.add_row(str(r.record_id), escape(arm), r.endpoint, str(r.site), r.months, f"{r.observed:.2f}", proj,
                      "yes" if r.inside_90 else "NO", scen)
    (out if out.is_terminal else Console(width=220, highlight=False)).print(table)
    out.print(f"{int(df['inside_90'].sum())} of {len(df)} observed values inside the 90% interval of their "
              "trial's projected mean (parameter uncertainty and a new-study effect; no reporting error). "
              "Percent changes from month 0; differences in percentage points.", soft_wrap=True)


# --------------------------------------------------------------------------- demo
@app.command()
def demo(
    out_dir: Annotated[Path, typer.Option(
        "--out", help="Directory for the results (created if missing).", file_okay=False)] = Path("results"),
    synthetic: Annotated[bool, typer.Option(
        "--synthetic", help="Run the synthetic recovery job (simulate a cohort with known truth, fit the "
                            "individual model, check recovery) instead of the published-evidence job.")] = False,
    n_subjects: Annotated[int, typer.Option(help="Subjects in the synthetic cohort (--synthetic).", min=1)] = 200,
    draws: Annotated[int, typer.Option(help="Posterior draws kept per chain.", min=1)] = 1000,
    tune: Annotated[int, typer.Option(help="Warm-up (tuning) iterations per chain.", min=0)] = 1000,
    chains: Annotated[int, typer.Option(help="Independent chains.", min=1)] = 4,
    seed: Annotated[int, typer.Option(help="Random seed (integer) for simulation and sampling.")] = 1,
    sampler: Annotated[SamplerName, typer.Option(
        help="nutpie (default), pymc, numpyro, or mock (prior draws; plumbing tests only).",
        case_sensitive=False)] = SamplerName.nutpie,
    loso: Annotated[int, typer.Option(
        help="Leave-one-study-out: refit without each of the N largest studies with BMD rows (0 = skip, "
             "-1 = every such study).", min=-1)] = 8,
    loso_draws: Annotated[int, typer.Option(
        help="Draws (and tuning steps) per chain in each leave-one-study-out refit.", min=1)] = 250,
    progress: Annotated[bool, typer.Option(
        "--progress/--no-progress", help="Show the sampler's progress bar.")] = True,
    force: Annotated[bool, typer.Option(
        "--force", help="Refit even when --out already holds a finished fit of the same data and "
                        "settings (by default such a fit is reused, so a rerun resumes).")] = False,
) -> None:
    """Run the main job end to end.

    By default: load the shipped published evidence (data/), fit the meta-analytic model, run the convergence
    diagnostics, build the posterior predictive table for every used row (observed, predicted median, 90%
    interval, inside or not), refit leaving out each of the largest studies and predict its rows, and write
    everything to --out (fit.nc, diagnostics.txt, ppc_published.csv, ppc_coverage.csv, loso_*.csv, loso/,
    summary.json, summary.md, data/). With --synthetic: the synthetic recovery job instead. Real MCMC; takes
    minutes. Exit code 3 if the diagnostics gate failed (results are still written). A rerun resumes.
    """
    try:
        from bonebayes import pipeline
    except ModuleNotFoundError as e:
        if e.name == "bonebayes.pipeline":
            _fail("the demo pipeline (bonebayes.pipeline) is not part of this installation yet")
        raise
    what = f"synthetic cohort of {n_subjects} subjects" if synthetic else "the shipped published evidence"
    err.print(f"Running the main job on {what} into {escape(str(out_dir))} ({chains} chains x "
              f"({tune} tune + {draws} draws), sampler {sampler.value}, seed {seed})...", soft_wrap=True)
    common = dict(draws=draws, tune=tune, chains=chains, seed=seed, sampler=sampler.value, progress=progress,
                  force=force)
    try:
        with _quiet_diagnostics_warning():
            if synthetic:
                result = pipeline.run_synthetic_job(out_dir, n_subjects=n_subjects, **common)
            else:
                result = pipeline.run_main_job(out_dir, loso=None if loso < 0 else loso, loso_draws=loso_draws,
                                               log=lambda msg: err.print(escape(msg), soft_wrap=True), **common)
    except FileExistsError as e:
        _fail(f"{e} (pass --force to redo the job)")
    except FileNotFoundError as e:
        _fail(str(e))
    except ValueError as e:
        _fail(str(e))

    out.print(f"[green]Results written to[/] {escape(str(out_dir.resolve()))}", soft_wrap=True)
    if out_dir.is_dir():
        for p in sorted(out_dir.rglob("*")):
            if p.is_file() and not p.name.startswith(".") and p.parent.name != "loso":
                out.print(f"  {escape(str(p))}", soft_wrap=True)
    _print_job_summary(result)
    if _job_ok(result) is False:
        _gate_failed_warning(str(out_dir), sampler.value)
        raise typer.Exit(EXIT_DIAGNOSTICS_FAILED)


def _print_job_summary(result: Any) -> None:
    """A few lines from ``run_main_job``'s summary dict (whatever of it is present)."""
    if not isinstance(result, dict):
        return
    if result.get("reused_existing_fit"):
        out.print("Reused the existing fit (same data and settings); pass --force to refit.")
    diag = result.get("diagnostics")
    if isinstance(diag, dict) and isinstance(diag.get("ok"), bool):
        head = "[green]PASS[/]" if diag["ok"] else "[bold red]FAIL[/]"
        out.print(f"Diagnostics: {head}", soft_wrap=True)
        for problem in diag.get("problems") or []:
            out.print(f"  ! {escape(str(problem))}", soft_wrap=True)
    ppc = result.get("ppc")
    if isinstance(ppc, dict) and "coverage_90" in ppc:
        out.print(f"Posterior predictive check: {ppc['coverage_90']:.0%} of {ppc.get('rows', '?')} published rows "
                  "inside their 90% intervals", soft_wrap=True)
    lo = result.get("loso")
    if isinstance(lo, dict) and "coverage_90" in lo:
        out.print(f"Leave-one-study-out ({len(lo.get('studies', []))} studies): {lo['coverage_90']:.0%} of "
                  f"{lo.get('rows', '?')} held-out rows inside their 90% intervals; BMD median absolute error "
                  f"{lo.get('bmd_median_abs_error_pp', float('nan')):.2f} percentage points", soft_wrap=True)
    rec = result.get("recovery")
    if isinstance(rec, dict) and rec.get("n_parameters"):
        line = (f"Parameter recovery: {rec.get('n_covered_90', '?')}/{rec['n_parameters']} true values "
                "inside their 90% posterior intervals")
        missed = rec.get("not_covered") or []
        out.print(escape(line + (f" (outside: {', '.join(map(str, missed))})" if missed else "")),
                  soft_wrap=True)


def _job_ok(result: Any) -> bool | None:
    """The diagnostics outcome in ``run_main_job``'s result, if it reports one (else None)."""
    if not isinstance(result, dict):
        return None
    for key in ("ok", "diagnostics_ok", "converged"):
        if isinstance(result.get(key), bool):
            return result[key]
    for key in ("verdict", "diagnostics"):
        v = result.get(key)
        ok = v.get("ok") if isinstance(v, dict) else getattr(v, "ok", None)
        if isinstance(ok, bool):
            return ok
    return None


# --------------------------------------------------------------------------- sweep
EXIT_TASKS_FAILED = 4


@app.command()
def sweep(
    spec_file: Annotated[Path, typer.Argument(
        metavar="SWEEP.toml", help="Sweep file: [[fit]] (variant x dataset x seed), [[loso]], [[sbc]], [[call]] "
                                   "tables and [sampler] defaults; see README 'Scale-out and benchmarks'.")],
    scheduler: Annotated[str | None, typer.Option(
        "--scheduler", help="Address of a running dask scheduler (tcp://HOST:PORT). Default: start a local "
                            "cluster of worker processes.", show_default=False)] = None,
    results: Annotated[Path, typer.Option(
        "--results", help="Results directory: one KEY.json record (+ KEY.nc / KEY.csv) per task, "
                          "summary.csv, summary.json. Must be shared by all workers.",
        file_okay=False)] = Path("results/sweep"),
    workers: Annotated[int | None, typer.Option(
        "--workers", help="Worker processes of the local cluster (default: the file's `workers`, else one "
                          "per two cores).", min=1, show_default=False)] = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="List the tasks and which are already finished; run nothing.")] = False,
) -> None:
    """Run many fits as tasks on dask.distributed; a rerun skips finished tasks.

    Each task (keyed by a content hash of model, configuration, data, sampler settings and seed) writes its
    result atomically to --results; a task whose worker dies is retried on another worker, and a task that
    raises is retried `retries` times (sweep file). Prints the summary table (status, attempts, diagnostics,
    wall time per task). Exit codes: 0 all tasks finished; 1 bad input (the message names the sweep file and
    key path); 3 all finished but some fits failed the diagnostics gate; 4 some tasks failed (rerun to
    retry them).
    """
    from bonebayes.sweep import SweepSpecError, expand, format_table, load_spec, run_sweep
    from bonebayes.sweep import store

    try:
        spec = load_spec(spec_file)
        with _status(f"Planning {spec_file} (loading and hashing data)..."):
            tasks = expand(spec)
    except SweepSpecError as e:
        problems = getattr(e, "problems", [])
        _fail(f"invalid sweep file: {e}" if len(problems) <= 1 else "invalid sweep file:", problems
              if len(problems) > 1 else None)
    if dry_run:
        for t in tasks:
            state = "finished" if store.read_record(results, t.key) else "to run"
            out.print(escape(f"{t.key[:12]}  {t.kind:<5} {t.label}  [{state}]"), soft_wrap=True)
        return
    _check_writable(results / "summary.csv", "--results")
    try:
        with _quiet_diagnostics_warning():
            report = run_sweep(spec, results, scheduler=scheduler, workers=workers, tasks=tasks,
                               log=lambda m: err.print(escape(m), soft_wrap=True))
    except OSError as e:
        _fail(f"cannot reach the dask scheduler {scheduler}: {e}" if scheduler else str(e))
    (out if out.is_terminal else Console(width=220, highlight=False)).print(escape(format_table(report.table)))
    out.print(f"{report.n_done}/{len(report.table)} tasks finished, {report.n_failed} failed, "
              f"{report.gate_failures} failed the diagnostics gate; {report.wall_time_s:.1f} s. "
              f"Results: {escape(str(results))}", soft_wrap=True)
    if report.temp_files:
        err.print(f"[yellow]ignored {len(report.temp_files)} partial file(s) from interrupted writes[/]")
    if report.n_failed:
        raise typer.Exit(EXIT_TASKS_FAILED)
    if report.gate_failures:
        raise typer.Exit(EXIT_DIAGNOSTICS_FAILED)


# compare, sbc, prior-check, ppc (bonebayes.cli_checks registers them on ``app``); report (bonebayes.cli_report)
from bonebayes import cli_checks as _cli_checks  # noqa: E402,F401
from bonebayes import cli_report as _cli_report  # noqa: E402,F401


def main() -> None:  # pragma: no cover - `python -m bonebayes.cli`
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
