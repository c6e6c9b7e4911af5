"""Write the tutorial notebooks (``notebooks/*.ipynb``) from the cell sources below, without outputs.

This file is the source of the notebooks: edit a cell here, then run

    .venv/bin/python notebooks/build_notebooks.py          # rewrite the four .ipynb files
    .venv/bin/python notebooks/build_notebooks.py --check  # exit 1 if a committed notebook differs

``tests/test_notebooks.py`` checks that the committed notebooks equal what this script writes (so they carry
no outputs and no execution counts) and executes each of them with small sampling settings.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent

KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
LANGUAGE_INFO = {"name": "python", "version": "3.11"}


def md(text: str) -> nbformat.NotebookNode:
    return new_markdown_cell(text.strip("\n"))


def code(text: str) -> nbformat.NotebookNode:
    return new_code_cell(text.strip("\n"))


SETTINGS_TABLE = """
| environment variable | Python name | default | meaning |
|---|---|---|---|
| `BONEBAYES_NB_DRAWS` | `DRAWS` | {draws} | posterior draws per chain |
| `BONEBAYES_NB_TUNE` | `TUNE` | {tune} | tuning (warm-up) iterations per chain |
| `BONEBAYES_NB_CHAINS` | `CHAINS` | {chains} | chains (run in parallel, one per core) |
| `BONEBAYES_NB_SAMPLER` | `SAMPLER` | nutpie | NUTS implementation (`nutpie`, `pymc`, `numpyro`); `mock` draws from the prior and is not inference (the test suite uses it) |
"""

SETUP = """
%matplotlib inline
import json
import os
import warnings
from pathlib import Path

import arviz as az
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import display

# PyTensor installed from pip warns that it found no BLAS; it does not affect the results
warnings.filterwarnings("ignore", message="PyTensor could not link to a BLAS")
warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm without ipywidgets
pd.set_option("display.width", 160)
pd.set_option("display.max_columns", 30)
pd.set_option("display.max_colwidth", 80)
pd.set_option("display.max_rows", 100)

OUT = Path("outputs")  # everything this notebook writes goes here (relative to the working directory)
OUT.mkdir(exist_ok=True)
"""

# The published fit: reuse a saved one (same data, configuration and, unless a path was given, settings)
PUBLISHED_FIT = """
from bonebayes.fit import Fit
from bonebayes.models.published import PublishedModel

pub = PublishedModel()  # the shipped evidence (load_published()) and the default PublishedConfig
saved = Path(FIT_PATH) if FIT_PATH else OUT / "published_fit.nc"
fit = None
if saved.exists():
    candidate = Fit.load(saved)
    p = candidate.provenance
    same_data = (p.get("model") == "published" and p.get("data_hash") == pub.data_hash()
                 and p.get("config") == pub.config.model_dump(mode="json"))
    wanted = {"draws": DRAWS, "tune": TUNE, "chains": CHAINS, "seed": SEED, "sampler": SAMPLER}
    same_settings = FIT_PATH is not None or all(p.get(k) == v for k, v in wanted.items())
    if same_data and same_settings:
        fit = candidate
        print(f"reusing {saved}: {p['chains']} chains x {p['draws']} draws after {p['tune']} tuning, "
              f"sampler {p['sampler']}, created {p['created']}")
    else:
        print(f"{saved} is a fit of other data, configuration or settings: fitting again")
if fit is None:
    fit = pub.fit(draws=DRAWS, tune=TUNE, chains=CHAINS, seed=SEED, sampler=SAMPLER, progress=False)
    fit.save(OUT / "published_fit.nc")
    print(f"fitted in {fit.provenance['wall_time_s']:.0f} s and saved to {OUT / 'published_fit.nc'}")
verdict = fit.diagnose(warn=False)
print(verdict)
"""


# ===================================================================================== 01 quickstart
def quickstart() -> list[nbformat.NotebookNode]:
    return [
        md("""
# 01 Quickstart: from a synthetic cohort to a treatment projection

This notebook runs the whole individual-data workflow of bonebayes on a cohort **simulated from known
parameters**, so that every estimate can be checked against the truth:

1. simulate a cohort (CTX, P1NP, BMD at two sites, serum RANKL and OPG) with the model's own physiology;
2. fit the hierarchical individual model (population -> cohort -> subject) with NUTS (nutpie);
3. check convergence: R-hat, bulk and tail ESS, divergences, E-BFMI;
4. check the fit: posterior predictive coverage, a visual predictive check (VPC), LOO-PIT, and parameter
   recovery against the truth;
5. project a treatment scenario under the posterior, with 50% and 90% bands.

Time is in months throughout; month 0 is each subject's trial start. Everything uses the public API
(`bonebayes.datasets`, `bonebayes.models`, `bonebayes.checks`, `bonebayes.projections`); the same steps are
available from the command line (`bonebayes simulate`, `fit`, `diagnose`, `ppc`, `project`).
"""),
        md("""
## Parameters

The sampling size is read from environment variables, so that the test suite can run this notebook quickly;
edit the cell to change it by hand.
""" + SETTINGS_TABLE.format(draws=1000, tune=1000, chains=4) + """| `BONEBAYES_NB_SUBJECTS` | `N_SUBJECTS` | 200 | subjects in the synthetic cohort (3 cohorts) |

The defaults are those of the synthetic recovery job (`bonebayes demo --synthetic`), which passes the
diagnostics gate; the fit takes about 10 minutes on a 2-core machine. The test suite
(`tests/test_notebooks.py`) runs this notebook with 12 subjects and `SAMPLER = "mock"` (50 prior draws per
chain dressed as a posterior): enough to execute every cell, and no inference at all. **At those settings the
diagnostics fail and the numbers below mean nothing**; rerun with the defaults to read them.
"""),
        code("""
import os

DRAWS = int(os.environ.get("BONEBAYES_NB_DRAWS", 1000))
TUNE = int(os.environ.get("BONEBAYES_NB_TUNE", 1000))
CHAINS = int(os.environ.get("BONEBAYES_NB_CHAINS", 4))
SAMPLER = os.environ.get("BONEBAYES_NB_SAMPLER", "nutpie")  # "mock" = prior draws, for plumbing tests only
N_SUBJECTS = int(os.environ.get("BONEBAYES_NB_SUBJECTS", 200))
SEED = 1  # integer seeds only: they make the simulation and the fit reproducible
print(f"{N_SUBJECTS} subjects; {SAMPLER}: {CHAINS} chains x {DRAWS} draws after {TUNE} tuning iterations")
"""),
        code(SETUP),
        md("""
## 1. A synthetic cohort

`simulate_cohort` draws subjects from a `SyntheticDesign`: postmenopausal women (menopause 2-25 years before
month 0) assigned round-robin to the arms of their cohort: placebo, alendronate 10 or 5 mg/day for two years,
denosumab 60 mg at months 0 and 6 and then stopped, teriparatide 20 ug/day for 18 months, and oral
estradiol 1 mg/day. CTX and P1NP are measured at months 0, 1, 3, 6, 12, 18 and 24, BMD at the lumbar spine
and total hip at 0, 6, 12 and 24, serum RANKL and OPG at 0, 12 and 24. CTX below 0.06 ng/mL and P1NP below
5 ng/mL are reported as below the limit of quantification (LOQ), as a laboratory would.
"""),
        code("""
from bonebayes.datasets.synthetic import SyntheticDesign, simulate_cohort

design = SyntheticDesign(n_subjects=N_SUBJECTS, n_cohorts=3)
cohort = simulate_cohort(design, seed=SEED)
print(f"{cohort.observations['subject'].nunique()} subjects, {len(cohort.observations)} observations, "
      f"{int(cohort.observations['below_loq'].sum())} below the LOQ")
pd.crosstab(cohort.observations["arm"], cohort.observations["variable"])
"""),
        md("""
The tables are in the package's long format (one measured value per row; one drug course or event per row)
and are validated on creation. With your own data you would write them as CSV and read them back with
`load_cohort`, which checks every cell and stops with the file, row, line and column of the first problem.
"""),
        code("""
from bonebayes.datasets import load_cohort

obs_path, exp_path = cohort.write(str(OUT / "cohort"))
obs, exp = load_cohort(obs_path, exp_path)
display(obs.head())
exp[exp["subject"].isin(obs["subject"].unique()[:3])]
"""),
        md("""
Median change from baseline by arm: denosumab suppresses CTX within a month and lets it recover after the
dose wears off; teriparatide raises P1NP; the antiresorptives and estradiol raise BMD, placebo loses it.
(CTX values below the LOQ are plotted at the LOQ.)
"""),
        code("""
fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
for ax, var in zip(axes, ["ctx", "p1np", "bmd_lumbar_spine"]):
    d = obs[obs["variable"] == var]
    base = d[d["time_months"] == 0].set_index("subject")["value"]
    pct = 100 * (d["value"].to_numpy() / d["subject"].map(base).to_numpy() - 1)
    med = pd.Series(pct, index=d.index).groupby([d["time_months"], d["arm"]]).median().unstack("arm")
    med.plot(ax=ax, marker="o", ms=3, legend=(var == "ctx"))
    ax.axhline(0, color="0.5", lw=0.8, ls=":")
    ax.set(title=var, xlabel="months", ylabel="median % change from month 0")
axes[0].legend(fontsize=7)
fig.tight_layout()
"""),
        md("""
The truth that generated the data, flattened to one value per population-level parameter (the recovery
check below compares the posterior with it):
"""),
        code("""
from bonebayes.checks.recovery import truth_values

truth = pd.Series(truth_values(cohort.truth, list(design.sites)), name="truth")
truth.head(15)
"""),
        md("""
## 2. The hierarchical individual model

`IndividualModel(observations, exposures, config)` builds the PyMC model. On the log scale, for subject i in
cohort c:

* log CTX = a_ctx,i + log C_i(t) - log C_i(0) + error (sigma_ctx), left-censored below the LOQ;
  log P1NP likewise with the formation state B;
* log BMD at site s = a_bmd,is + m_is(t) - m_is(0) + error (the DXA precision sigma_bmd,s);
* log RANKL and log OPG = intercept + hormone elasticities x the change in hormone covariates (a
  measurement layer);
* intercepts a_v,i ~ N(cohort mean, tau_subject,v), cohort means ~ N(mu_v, tau_cohort,v); subject-level
  responsiveness k_M,is = k_M,s exp(tau_kM z_i).

C, B and m come from the two-layer physiology (hormones and drugs -> resorption and formation stimuli ->
dC/dt = k_C (S_R - C), dB/dt = k_B (S_F C - B), dm/dt = k_M (B - C) - lambda m), solved exactly on a monthly
grid, including each subject's simulated years since menopause. Every prior has a unit and a reason:
"""),
        code("""
from bonebayes.models.individual import IndividualModel
from bonebayes.models.priors import prior_table

model = IndividualModel(obs, exp)  # optional config=ModelConfig(...) or a dict
print(model.config)
print("population-level parameters:", ", ".join(model.population_vars()))
priors = pd.DataFrame(prior_table()).set_index("parameter")
priors.loc[["k_C", "k_B", "k_M", "lam", "tau_kM", "emax_res", "ec50_res", "sigma_bmd"], ["prior", "unit", "meaning"]]
"""),
        md("""
## 3. Fitting and convergence

`model.fit` samples with nutpie (NUTS with a low-rank adapted mass matrix, log density compiled with JAX) and
runs the diagnostics gate: R-hat <= 1.01, bulk and tail ESS >= 100 per chain, no divergent transitions and
E-BFMI >= 0.3 for every population-level parameter. A failed gate is reported loudly (a
`DiagnosticsWarning`) and `fit.verdict.ok` is False: do not use those draws as they are. `fit.save` writes the
posterior, the input tables and the provenance (configuration, data hash, seed, versions, wall time) to one
NetCDF file, atomically; `Fit.load` reads it back without refitting.
"""),
        code("""
fit = model.fit(draws=DRAWS, tune=TUNE, chains=CHAINS, seed=SEED, sampler=SAMPLER, progress=False)
fit.save(OUT / "quickstart_fit.nc")
print(f"sampling took {fit.provenance['wall_time_s']:.0f} s")
print(fit.verdict)
"""),
        md("""
The per-parameter table behind the verdict (worst R-hat first), and the posterior summary of the population
parameters (mean, sd, 90% HDI, MCSE, ESS, R-hat):
"""),
        code("""
display(fit.verdict.table.sort_values("r_hat", ascending=False).head(8))
fit.summary(hdi_prob=0.9).head(20)
"""),
        md("""
Trace plots of the turnover rates and the subject-level spread of k_M: chains should overlap and look like
stationary noise.
"""),
        code("""
az.plot_trace(fit.idata, var_names=["k_C", "k_B", "k_M", "tau_kM"], compact=True, figsize=(11, 6))
plt.tight_layout()
"""),
        md("""
## 4. Checking the fit

### Posterior predictive checks

`posterior_predictive_check` replicates every observation under the posterior and reports the coverage of
the central 50/80/90/95% predictive intervals (overall and per row class), LOO-PIT values (leave-one-out
probability integral transforms from PSIS weights; uniform if the predictive distributions are calibrated) and
a visual predictive check. Censored observations are left out of coverage and LOO-PIT; in the VPC a replicate
below the LOQ is recorded at the LOQ, like the data. In-sample coverage of a hierarchical model is
conservative: the subject effects were fitted to the same observations.
"""),
        code("""
from bonebayes.checks.predictive import posterior_predictive_check, vpc_figure

ppc = posterior_predictive_check(model, fit.idata, by="stratum")  # stratum = arm
plt.close("all")  # the figures are shown one by one below
print({k: round(v, 3) for k, v in ppc.numbers.items()})
ppc.summary[["n", "n_censored", "coverage_50", "coverage_80", "coverage_90", "coverage_95", "median_width_90"]]
"""),
        md("""
The VPC for CTX, P1NP and spine BMD: per arm and time bin, the observed 10%, 50% and 90% quantiles (lines)
against the 90% intervals of the same quantiles over replicates (bands); grey dots are observations, open
red circles observations below the LOQ.
"""),
        code("""
vpc = ppc.extra["vpc"]
keep = ["ctx", "p1np", "bmd_lumbar_spine"]
vpc_figure(vpc[vpc["variable"].isin(keep)], ppc.table[ppc.table["variable"].isin(keep)], by="stratum");
"""),
        code("""
ppc.figures["loo_pit"]
"""),
        md("""
### Parameter recovery

`recovery_table` puts each true value beside its posterior mean, sd and central 90% interval, and the z-score
(mean - truth) / sd. With a calibrated posterior about 90% of the truths fall inside their intervals (so with
~40 parameters about 4 misses are expected) and the z-scores look like draws from N(0, 1).
"""),
        code("""
from bonebayes.checks.recovery import recovery_table

rec = recovery_table(fit.idata, cohort.truth, list(design.sites), prob=0.9)
print(f"{int(rec['covered'].sum())} of {len(rec)} true values inside their central 90% intervals "
      f"(about {0.1 * len(rec):.0f} misses expected)")
rec.round(4)
"""),
        code("""
fig, ax = plt.subplots(figsize=(5, 0.2 * len(rec) + 1))
y = np.arange(len(rec))[::-1]
ax.scatter(rec["z"], y, c=np.where(rec["covered"], "C0", "C3"), s=14)
ax.axvspan(-1.645, 1.645, color="0.9", zorder=0)
ax.axvline(0, color="0.5", lw=0.8)
ax.set_yticks(y, rec.index, fontsize=7)
ax.set_xlabel("z = (posterior mean - truth) / posterior sd   (band: +-1.645)")
ax.set_title("parameter recovery (red: truth outside the 90% interval)", fontsize=9)
fig.tight_layout()
"""),
        md("""
## 5. A treatment projection

`project(fit, scenario)` simulates every arm of a scenario once per posterior draw, with the physiology the
model was fitted with, and summarises BMD change per site, T-scores, the probability of osteoporosis
(T <= -2.5), CTX and P1NP change and the serum RANKL/OPG ratio, for every arm and every contrast between arms.
A scenario is a TOML file or, as here, a dict with the same keys (see notebook 03 and `data/scenarios/`).
All arms share the same draws, so a contrast is a paired difference, draw by draw.

For an individual-data fit, `study_effects="new"` (the default) draws a new subject's responsiveness
exp(tau_kM z) once per posterior draw: the bands are for one new woman with this profile, averaged over the
cohort's measurement error (no assay or DXA noise).
"""),
        code("""
from bonebayes.projections import load_scenario, project
from bonebayes.projections.output import to_frame
from bonebayes.projections.plots import fan_chart, regimen_comparison, tscore_chart

scenario = load_scenario({
    "name": "alendronate or denosumab for two years, 10 years after menopause",
    "population": "postmenopausal",
    "years_since_menopause": 10,
    "baseline_tscore": {"lumbar_spine": -2.3, "total_hip": -1.8},
    "times_months": [0, 6, 12, 24],
    "sites": ["lumbar_spine", "total_hip"],
    "arms": {
        "placebo": {"regimen": []},
        "alendronate": {"regimen": [{"drug": "alendronate", "dose": 10, "unit": "mg/day",
                                     "start_month": 0, "stop_month": 24}]},
        "denosumab": {"regimen": [{"drug": "denosumab", "dose": 60, "unit": "mg", "every_months": 6,
                                   "start_month": 0, "stop_month": 24}]},
    },
    "contrasts": [{"arms": ["denosumab", "alendronate"]}, {"arms": ["alendronate", "placebo"]}],
})
ds = project(fit, scenario, draws=1000, seed=0, monthly=True)
table = to_frame(ds, ["bmd", "p_osteoporosis"])
table[table["time_months"] == 24].round(3)
"""),
        code("""
fan_chart(ds, "bmd");
"""),
        code("""
fan_chart(ds, "ctx");
"""),
        code("""
tscore_chart(ds, site="lumbar_spine");
"""),
        code("""
regimen_comparison(ds, "bmd", time=24, site="lumbar_spine");
"""),
        md("""
Every projection carries its provenance and the model's limits in `ds.attrs`:
"""),
        code("""
for note in json.loads(ds.attrs["notes"]):
    print("-", note)
print("study effects:", ds.attrs["study_effects_note"])
"""),
        md("""
## Where next

* `02_published_evidence.ipynb`: the meta-analytic model of the shipped published trials.
* `03_treatment_projections.ipynb`: scenario files, regimen comparisons, T-score thresholds, stopping
  denosumab.
* `04_model_comparison_and_sbc.ipynb`: model variants, PSIS-LOO / K-fold comparison and simulation-based
  calibration.
"""),
    ]


# ============================================================================ 02 published evidence
def published() -> list[nbformat.NotebookNode]:
    return [
        md("""
# 02 The published evidence: data, meta-analytic fit and row-level checks

bonebayes ships arm-level results of published trials and cohort studies (`data/published_arms.csv`, with
their sources in `data/SOURCES.md`) and a meta-analytic model that simulates every arm with the same
physiology as a subject: the arm's population history (e.g. years since menopause), then its regimen. This
notebook

1. loads the evidence and shows which rows are used, and which are excluded and why;
2. fits the published model (or reuses a saved fit);
3. checks convergence;
4. compares every row's observed value with its posterior predictive distribution: a per-row table, coverage
   by row class and by study, LOO-PIT and an observed-vs-predicted plot.

It is what `make demo` (`bonebayes demo`) does, step by step.
"""),
        md("""
## Parameters
""" + SETTINGS_TABLE.format(draws=1000, tune=1000, chains=4) + """| `BONEBAYES_NB_FIT` | `FIT_PATH` | none | an existing published fit to reuse instead of fitting, e.g. `../results/fit.nc` written by `make demo` |

The defaults are the main job's: 4 chains x 1000 draws after 1000 tuning iterations, about 25 minutes on a
2-core machine, and the fit passes the diagnostics gate (see the README). Without `FIT_PATH` the notebook
reuses `outputs/published_fit.nc` when it was fitted with the same data, configuration and settings, and
otherwise fits and saves it there (notebook 03 reuses it too). The test suite runs this notebook with
`SAMPLER = "mock"` (2 x 50 prior draws dressed as a posterior): the cells run, but **the diagnostics fail at
those settings and the numbers are not meaningful**.
"""),
        code("""
import os

DRAWS = int(os.environ.get("BONEBAYES_NB_DRAWS", 1000))
TUNE = int(os.environ.get("BONEBAYES_NB_TUNE", 1000))
CHAINS = int(os.environ.get("BONEBAYES_NB_CHAINS", 4))
SAMPLER = os.environ.get("BONEBAYES_NB_SAMPLER", "nutpie")  # "mock" = prior draws, for plumbing tests only
FIT_PATH = os.environ.get("BONEBAYES_NB_FIT") or None  # e.g. "../results/fit.nc"
SEED = 1
print(f"{SAMPLER}: {CHAINS} chains x {DRAWS} draws after {TUNE} tuning iterations; existing fit: {FIT_PATH}")
"""),
        code(SETUP),
        md("""
## 1. The evidence

`load_published()` reads and validates the shipped files (a malformed cell raises `DataValidationError` with
file, row, line and column) and maps every row to a model endpoint: a BMD site, a turnover marker (CTX, NTX,
P1NP, ...) with its assay, or a serum level. Each row keeps its measure (`pct_change_from_baseline`,
`pct_diff_vs_control`, `annual_rate_pct`, `level`) and its standard error, derived from whatever the source
reported (a CI, an SD with n, an SE, a median with range) and recorded in `se_source`.
"""),
        code("""
from bonebayes.datasets.published import load_published, population_profiles

ev = load_published()
print(ev.summary())
"""),
        code("""
cols = ["record_id", "study", "arm", "endpoint", "site", "measure", "time_months", "value", "unit", "se",
        "se_source", "n_used"]
ev.usable[cols].head(12)
"""),
        code("""
pd.crosstab(ev.usable["study"], ev.usable["model_kind"]).sort_values("bmd", ascending=False).head(12)
"""),
        md("""
**Excluded rows** are never dropped silently: each has a reason (curated in `data/published_design.toml`, or
found by the loader, e.g. a row without a time point).
"""),
        code("""
ev.excluded
"""),
        md("""
**Designs.** Every arm is simulated from a population preset and its history, stated with a reason; the
baseline hormone profile of each arm follows from it (`population_profiles`).
"""),
        code("""
print(ev.designs["FREEDOM/denosumab"])
population_profiles(ev)[["arm", "population", "sex", "years_since_menopause", "estradiol", "testosterone",
                         "pth"]].head(10)
"""),
        md("""
The BMD evidence at a glance: percentage change from baseline with 95% intervals from the reported standard
errors, one panel per site.
"""),
        code("""
bmd = ev.usable[(ev.usable["model_kind"] == "bmd") & (ev.usable["measure"] == "pct_change_from_baseline")]
sites = list(dict.fromkeys(bmd["model_site"]))
fig, axes = plt.subplots(1, len(sites), figsize=(4.6 * len(sites), 3.8), squeeze=False, sharey=True)
for ax, site in zip(axes[0], sites):
    d = bmd[bmd["model_site"] == site]
    for i, (arm, g) in enumerate(d.groupby("arm")):
        ax.errorbar(g["time_months"], g["value"], yerr=1.96 * g["se"].fillna(0), fmt="o", ms=3,
                    color=plt.get_cmap("tab20")(i % 20), label=arm, elinewidth=0.7)
    ax.axhline(0, color="0.5", lw=0.8, ls=":")
    ax.set(title=site.replace("_", " "), xlabel="months")
axes[0, 0].set_ylabel("BMD % change from baseline")
axes[0, -1].legend(fontsize=6, ncol=2, loc="upper left", bbox_to_anchor=(1.0, 1.0))
fig.tight_layout()
"""),
        md("""
## 2. The meta-analytic model

`PublishedModel(evidence, config)` has one likelihood per measure, each on the row's own scale: a % change
from baseline (BMD: 100 (r - 1) plus a study drift; markers: 100 (exp(beta_assay log X(t)/X(0)) - 1)), a
difference against the study's control arm (the drift cancels), an annualised rate, or a log level. Each row's
standard deviation is sqrt(SE^2 + omega_k^2): the reported SE, or a fitted per-subject reporting scale
s_k / sqrt(n) where the source gives none, plus a residual heterogeneity omega_k per row class (BMD, marker,
level); the row error is Student-t with 4 degrees of freedom. Studies have non-centred random effects on k_M
(responsiveness) and on BMD drift; the between-study scales have boundary-avoiding Gamma(2, rate) priors.
"""),
        code("""
from bonebayes.models.published import PublishedModel

pub = PublishedModel(ev)
print(pub.config)
print(f"{pub.data.n_rows} rows ({int(pub.data.fit.sum())} with a likelihood)")
print("population-level parameters:", ", ".join(pub.population_vars()))
"""),
        md("""
## 3. Fit (or reuse) and convergence

The cell below reuses a saved fit only when it was made from the same data (content hash) and configuration,
and, unless you named it in `FIT_PATH`, with the same sampler settings; otherwise it fits and saves.
"""),
        code(PUBLISHED_FIT),
        code("""
display(verdict.table.sort_values("r_hat", ascending=False).head(8))
fit.summary(["k_M", "lam", "emax_res", "ec50_res", "eref_ana", "tau_kM_study", "tau_drift", "omega_bmd",
             "omega_marker", "omega_level"], hdi_prob=0.9).round(4)
"""),
        code("""
az.plot_trace(fit.idata, var_names=["tau_kM_study", "tau_drift", "omega_bmd", "k_M"], compact=True,
              figsize=(11, 6))
plt.tight_layout()
"""),
        md("""
Drug effects, with 90% HDIs: the maximal inhibition of resorption (Emax, a fraction between 0 and 1) of each
antiresorptive, and the anabolic effect of teriparatide at its reference dose (the relative increase of the
formation stimulus). Arm-level evidence identifies them only through the BMD and marker changes they cause,
so overlapping intervals between drugs are expected.
"""),
        code("""
az.plot_forest(fit.idata, var_names=["emax_res", "eref_ana"], combined=True, hdi_prob=0.9, figsize=(6, 3));
"""),
        md("""
## 4. Observed against predicted, row by row

`predictive_table` draws a replicate of every row per posterior draw (the row's predicted mean plus its
Student-t error; levels back on the reported scale) and reports the observed value, the predicted median, the
central 90% interval, whether the observation is inside, the interval width (percentage points; log ratio
for levels) and the PIT position of the observation. These are **in-sample** checks (the study effects were
fitted to the same rows), so they are conservative; the honest check is leave-one-study-out (below).
"""),
        code("""
from bonebayes.checks.published import coverage_summary, predictive_table

table = predictive_table(fit.idata, pub.data, prob=0.9, seed=SEED)
show = ["study", "arm", "endpoint", "site", "measure", "time_months", "observed", "pred_median", "lo", "hi",
        "inside", "width", "pit"]
table[show].round(2)
"""),
        md("""
Coverage of the 90% intervals by row class and by study (rows, rows inside, fraction, median width and
median absolute error), and the rows outside their intervals:
"""),
        code("""
display(coverage_summary(table).round(3))
display(coverage_summary(table, by="study").sort_values("rows", ascending=False).round(3).head(12))
table.loc[~table["inside"], show].round(2)
"""),
        md("""
`posterior_predictive_check` adds coverage at 50/80/90/95%, LOO-PIT values (PSIS-LOO weights, so each row is
judged by a posterior that has not seen it, approximately) and the observed-vs-predicted plot. Intervals
that cover more than their nominal level are too wide; less, too narrow.
"""),
        code("""
from bonebayes.checks.predictive import posterior_predictive_check

ppc = posterior_predictive_check(pub, fit.idata, seed=SEED)
plt.close("all")
print({k: round(v, 3) for k, v in ppc.numbers.items()})
ppc.summary[["n", "coverage_50", "coverage_80", "coverage_90", "coverage_95", "median_width_90"]].round(3)
"""),
        code("""
ppc.figures["observed_vs_predicted"]
"""),
        code("""
ppc.figures["loo_pit"]
"""),
        md("""
## 5. Leave-one-study-out

Each study is held out in turn (its rows get no likelihood), the model refitted, and its rows predicted as
those of a new study (new study effects drawn from the fitted between-study distribution). This is a refit per
study, so it is not run here; the main job runs it for the 8 largest studies with BMD rows and writes
`results/loso_rows.csv` and `results/loso_summary.csv` (measured: 27 of 31 held-out rows inside their 90%
intervals; see the README):

```python
from bonebayes.checks.published import leave_one_study_out, loso_studies

rows, per_study = leave_one_study_out(ev, loso_studies(ev, 8), OUT / "loso", draws=250, tune=250, chains=4)
coverage_summary(rows)          # held-out coverage by row class
```

The same refits run in parallel on a Dask cluster with `bonebayes sweep data/sweeps/published_loso.toml`.
"""),
    ]


# =========================================================================== 03 treatment projections
def projections() -> list[nbformat.NotebookNode]:
    return [
        md("""
# 03 Treatment projections: regimens, contrasts, T-scores and stopping denosumab

A projection simulates a treatment scenario under a fitted posterior: for every arm, and every contrast between
arms, at the scenario's times, the BMD change per site, the T-score and the probability of osteoporosis, the
CTX and P1NP changes and the serum RANKL/OPG ratio, each as a distribution over posterior draws. This notebook
uses the fit of the shipped published evidence (notebook 02) and the example scenario files in
`data/scenarios/`:

1. regimen comparisons and paired contrasts (`five_regimens_vs_placebo`);
2. fan charts of whole trajectories;
3. T-scores against the -1 and -2.5 thresholds and the probability of osteoporosis
   (`denosumab_vs_placebo`);
4. what the between-study effects do to the bands;
5. stopping denosumab (`stopping_denosumab`): what the default model can and cannot say, and the rebound
   variant;
6. a sanity check against the published trials, and scenarios that need parameters the fit lacks.
"""),
        md("""
## Parameters
""" + SETTINGS_TABLE.format(draws=1000, tune=1000, chains=4) + """| `BONEBAYES_NB_FIT` | `FIT_PATH` | none | an existing published fit, e.g. `../results/fit.nc` from `make demo` |
| `BONEBAYES_NB_REBOUND_FIT` | `REBOUND_FIT` | none | a saved fit of the `published_rebound` variant (section 5) |

The sampler settings only matter if there is no fit to reuse: as in notebook 02, `outputs/published_fit.nc`
is reused when it was fitted with the same data, configuration and settings (run notebook 02 first, or point
`FIT_PATH` at the main job's fit). The test suite runs notebook 02 first with `SAMPLER = "mock"` (2 x 50
prior draws) and this notebook reuses that fit: **at those settings the bands below are not meaningful**.
Projections themselves are fast (about a second for 1000 draws).
"""),
        code("""
import os

DRAWS = int(os.environ.get("BONEBAYES_NB_DRAWS", 1000))
TUNE = int(os.environ.get("BONEBAYES_NB_TUNE", 1000))
CHAINS = int(os.environ.get("BONEBAYES_NB_CHAINS", 4))
SAMPLER = os.environ.get("BONEBAYES_NB_SAMPLER", "nutpie")  # "mock" = prior draws, for plumbing tests only
FIT_PATH = os.environ.get("BONEBAYES_NB_FIT") or None  # e.g. "../results/fit.nc"
REBOUND_FIT = os.environ.get("BONEBAYES_NB_REBOUND_FIT") or None
SEED = 1
"""),
        code(SETUP),
        md("""
## The fit
"""),
        code(PUBLISHED_FIT),
        md("""
## 1. Scenarios and regimen comparisons

A scenario file names a population (a preset such as `postmenopausal`, with age or years since menopause,
optionally baseline T-scores), the times and sites to report, the arms (each a list of regimen items in the
drug vocabulary of `bonebayes.regimens`) and the contrasts (first arm minus second). The shipped examples:
"""),
        code("""
from bonebayes.projections import ScenarioError, load_scenario, project, shipped_scenarios

for name, path in shipped_scenarios().items():
    print(f"{name:32s} {load_scenario(path).name}")
print()
print(shipped_scenarios()["five_regimens_vs_placebo"].read_text())
"""),
        md("""
Scenarios are validated when loaded; an error names the file, the TOML key path and the allowed values:
"""),
        code("""
bad = {"name": "bad", "population": "postmenopausal", "times_months": [0, 12],
       "arms": {"denosumab": {"regimen": [{"drug": "denosumab", "dose": 60, "unit": "mg", "every_months": -6,
                                           "start_month": 0, "stop_month": 12}]}}}
try:
    load_scenario(bad)
except ScenarioError as e:
    print(e)
"""),
        md("""
`project` returns an `xarray.Dataset`: per-draw variables (`bmd`, `tscore`: draw x arm x time x site; `ctx`,
`p1np`, `rankl_opg_ratio`: draw x arm x time), their paired contrasts (`contrast_bmd`, ...), summaries with a
`stat` axis (mean, median, 50% and 90% HDI bounds), `p_osteoporosis`, and provenance and notes in `attrs`.
`draws=1000` uses 1000 evenly spaced posterior draws (all of them if the fit has fewer).
"""),
        code("""
five = project(fit, "five_regimens_vs_placebo", draws=1000, seed=0)
print(five)
"""),
        code("""
from bonebayes.projections.output import to_frame

# one row per arm / contrast, endpoint, site and time (the CSV columns); render(five, "json") and
# bonebayes.projections.output.write(five, "five.json") give the JSON of `bonebayes project --format json`
frame = to_frame(five, ["bmd"])
frame[(frame["time_months"] == 36) & (frame["site"] == "lumbar_spine")].round(2)
"""),
        md("""
**Contrasts are paired.** Every arm is simulated with the same posterior draws (and the same new-study
effects), so `contrast_bmd` is the difference draw by draw. Its interval is much narrower than a comparison of
the two arms' marginal intervals would suggest, because the uncertainty the arms share (e.g. the study's
responsiveness and drift) cancels:
"""),
        code("""
t_end, site = 36.0, "lumbar_spine"
arm_s = five["bmd_summary"].sel(time=t_end, site=site).transpose("arm", "stat").to_pandas()
con_s = five["contrast_bmd_summary"].sel(time=t_end, site=site).transpose("contrast", "stat").to_pandas()
con_s["hdi90_width"] = con_s["hdi90_hi"] - con_s["hdi90_lo"]
con_s["naive_width"] = [  # width if the two arms' 90% intervals were combined as if independent
    np.hypot(*(arm_s.loc[a, "hdi90_hi"] - arm_s.loc[a, "hdi90_lo"] for a in c.split("_vs_")))
    for c in con_s.index]
con_s[["median", "hdi90_lo", "hdi90_hi", "hdi90_width", "naive_width"]].round(2)
"""),
        code("""
from bonebayes.projections.plots import fan_chart, regimen_comparison, tscore_chart

regimen_comparison(five, "bmd", time=36, site="lumbar_spine");
"""),
        code("""
regimen_comparison(five, "bmd", time=36, site="total_hip", contrasts=False);
"""),
        md("""
## 2. Fan charts

`monthly=True` adds every month between the scenario's times, for smooth trajectories. The dark band is the
50% HDI, the light one the 90% HDI, the line the median.
"""),
        code("""
five_m = project(fit, "five_regimens_vs_placebo", draws=1000, seed=0, monthly=True)
fan_chart(five_m, "bmd", sites=["lumbar_spine", "total_hip"]);
"""),
        code("""
fan_chart(five_m, "ctx", arms=["placebo", "denosumab", "alendronate", "teriparatide_to_alendronate"]);
"""),
        code("""
fan_chart(five_m, "bmd", contrasts=True, sites=["lumbar_spine"]);
"""),
        md("""
## 3. T-scores and the probability of osteoporosis

The T-score is (BMD - young-adult mean) / young-adult SD (NHANES references, `bonebayes.projections.references`).
Its baseline is the scenario's `baseline_tscore` where given, otherwise the model's own baseline after the
population's simulated history. `p_osteoporosis` is the fraction of posterior draws with T <= -2.5: the
posterior probability that a woman with this profile and the projected mean response (in a new study
population) has a T-score at or below the osteoporosis threshold. It is not the fraction of patients, and it
does not include DXA measurement error or fractures.
"""),
        code("""
print(shipped_scenarios()["denosumab_vs_placebo"].read_text())
dmab = project(fit, "denosumab_vs_placebo", draws=1000, seed=0, monthly=True)
tscore_chart(dmab, site="lumbar_spine");
"""),
        code("""
p = dmab["p_osteoporosis"].sel(time=[0.0, 12.0, 24.0, 36.0])
p.to_dataframe().unstack("site")["p_osteoporosis"].round(3)
"""),
        md("""
## 4. Between-study effects

The published fit has study effects (a multiplier on k_M and an extra BMD drift). `study_effects="new"` (the
default) draws them for a new trial population once per posterior draw; `"none"` gives the population-average
response; a study name uses that study's fitted effects. The 90% bands of denosumab's 36-month spine gain
under each choice:
"""),
        code("""
rows = {}
for mode in ["new", "none", "FREEDOM"]:
    d = project(fit, "denosumab_vs_placebo", draws=1000, seed=0, study_effects=mode)
    s = d["bmd_summary"].sel(arm="denosumab", time=36.0, site="lumbar_spine").to_pandas()
    rows[mode] = {"median": s["median"], "hdi90_lo": s["hdi90_lo"], "hdi90_hi": s["hdi90_hi"],
                  "width": s["hdi90_hi"] - s["hdi90_lo"]}
pd.DataFrame(rows).T.round(2)
"""),
        md("""
## 5. Stopping denosumab

`stopping_denosumab` compares continuing denosumab for 3.5 years, stopping after four injections (the last
at month 18), switching to one zoledronate infusion at month 24, and placebo.

**What the default model cannot show.** The default model has no osteoclast-precursor pool: when denosumab
wears off, turnover returns to its pre-treatment level and BMD resumes its usual slow loss from a higher
level. The observed rebound (CTX well above baseline for about a year and rapid loss of the BMD gained,
e.g. Bone 2011 and the FREEDOM extension) is not reproduced, and the projection says so in its notes and in
`attrs["denosumab_rebound"]`.
"""),
        code("""
stop = project(fit, "stopping_denosumab", draws=1000, seed=0, monthly=True)
print("denosumab rebound:", stop.attrs["denosumab_rebound"])
for note in json.loads(stop.attrs["notes"]):
    print("-", note)
fan_chart(stop, "ctx");
"""),
        code("""
fan_chart(stop, "bmd");
"""),
        md("""
**The rebound variant.** The `published_rebound` variant (`bonebayes.variants`) adds a precursor pool Q:
dQ/dt = k_Q (I_P - Q), where I_P is denosumab's RANKL blockade, and multiplies the resorption stimulus by
1 + eta_pool max(Q - I_P, 0). On treatment the factor is 1; when denosumab wanes the pool empties slowly, so
CTX overshoots baseline and BMD falls faster for about a year. A fit of that variant projects the rebound:

```python
from bonebayes.variants import get_variant
rebound_fit = PublishedModel(config=get_variant("published_rebound").config()).fit(draws=1000, tune=1000, chains=4, seed=1)
rebound_fit.save("outputs/published_rebound_fit.nc")   # then set BONEBAYES_NB_REBOUND_FIT to this path
```

Such a fit takes about as long as the default one. If `REBOUND_FIT` names one, the cell below uses it.
Otherwise it shows a clearly labelled **what-if**: the default posterior with the two pool parameters drawn
from their priors (k_Q: log-normal around 0.12/month; eta_pool: half-normal(1)). Because the pool factor is 1
while denosumab acts, the on-treatment trajectories are unchanged; only the off-treatment part differs. This
illustrates the mechanism and the size of its prior uncertainty; it is not evidence about the rebound.
"""),
        code("""
from bonebayes.models.priors import PRIORS

if REBOUND_FIT:
    rebound_source = Fit.load(REBOUND_FIT)
    label = f"fit of the rebound variant ({REBOUND_FIT})"
else:
    post = fit.idata.posterior
    rng = np.random.default_rng(SEED)
    shape = (post.sizes["chain"], post.sizes["draw"])
    rebound_source = post.assign(
        k_Q=(("chain", "draw"), PRIORS["k_Q"].sample(rng, shape)),
        eta_pool=(("chain", "draw"), PRIORS["eta_pool"].sample(rng, shape)),
    )
    label = "what-if: default posterior + pool parameters drawn from their priors (not a fit)"
stop_rebound = project(rebound_source, "stopping_denosumab", draws=1000, seed=0, monthly=True)
print(label)
print("denosumab rebound:", stop_rebound.attrs["denosumab_rebound"])
fan_chart(stop_rebound, "ctx", arms=["continue", "stop", "switch_zoledronate"]);
"""),
        code("""
fan_chart(stop_rebound, "bmd", arms=["continue", "stop", "switch_zoledronate"]);
"""),
        md("""
The stop arm under both: median lumbar-spine BMD change and CTX change (% from month 0).
"""),
        code("""
months = [18.0, 24.0, 30.0, 36.0, 48.0]
cmp = pd.DataFrame({
    "bmd, default": stop["bmd_summary"].sel(arm="stop", site="lumbar_spine", stat="median", time=months),
    "bmd, rebound": stop_rebound["bmd_summary"].sel(arm="stop", site="lumbar_spine", stat="median", time=months),
    "ctx, default": stop["ctx_summary"].sel(arm="stop", stat="median", time=months),
    "ctx, rebound": stop_rebound["ctx_summary"].sel(arm="stop", stat="median", time=months),
}, index=pd.Index(months, name="month"))
cmp.round(1)
"""),
        md("""
## 6. Sanity checks and limits

**Against the trials.** `compare_published` replays the published rows related to a scenario's drugs with
each trial's own design (population history and regimen, a new-study effect) and puts the scenario's
matching arm beside them:
"""),
        code("""
from bonebayes.projections.published_check import compare_published

check = compare_published(fit, "denosumab_vs_placebo", draws=500, seed=0)
check.round(2).head(12)
"""),
        md("""
**Parameters the fit lacks.** The published evidence does not inform IGF-1, so a growth-hormone
secretagogue cannot be projected from this fit: `project` stops with an error naming what is missing.
`allow_prior=True` draws the missing parameters from their priors and lists them in the output, so that such
bands are never mistaken for evidence.
"""),
        code("""
from bonebayes.projections import ProjectionError

try:
    project(fit, "estradiol_gh_secretagogue", draws=200)
except ProjectionError as e:
    print("ProjectionError:", e)
gh = project(fit, "estradiol_gh_secretagogue", draws=200, seed=0, allow_prior=True)
print("drawn from priors:", json.loads(gh.attrs["prior_parameters"]))
"""),
        md("""
Other limits (also in every projection's notes): serum RANKL/OPG follows hormones only (drugs do not move
it here); formation follows resorption, so early anabolic gains are slow and long teriparatide courses keep
gaining without saturation; progestins, calcium and vitamin D, adherence and fractures are not modelled. From
the command line: `bonebayes project --fit results/fit.nc --scenario five_regimens_vs_placebo --plots plots/`.
"""),
    ]


# ================================================================ 04 model comparison and SBC
def comparison() -> list[nbformat.NotebookNode]:
    return [
        md("""
# 04 Model variants, comparison by PSIS-LOO / K-fold, and simulation-based calibration

This notebook shows how to ask two questions of the individual model on synthetic data, where the answer is
known:

1. **Which variant predicts better?** Variants are registered by name (`bonebayes.variants`). We simulate a
   cohort in which denosumab is stopped, from a truth *with* a denosumab rebound, and compare the default
   model with the rebound variant by PSIS-LOO, checking the Pareto k diagnostics, with grouped K-fold
   cross-validation as the fallback, and stacking weights.
2. **Is the posterior calibrated?** Simulation-based calibration (SBC): draw parameters from the prior, data
   from the model, refit, and check that the rank of each true value among the posterior draws is uniform.
"""),
        md("""
## Parameters
""" + SETTINGS_TABLE.format(draws=1000, tune=1000, chains=4) + """| `BONEBAYES_NB_SUBJECTS` | `N_SUBJECTS` | 60 | subjects in the comparison cohort |
| `BONEBAYES_NB_KFOLD` | `KFOLD` | 5 | folds of the grouped K-fold fallback (0: never refit, rank by LOO) |
| `BONEBAYES_NB_SBC_REPLICATES` | `SBC_REPLICATES` | 20 | SBC replicates (each one a full refit) |
| `BONEBAYES_NB_SBC_SUBJECTS` | `SBC_SUBJECTS` | 20 | subjects in the SBC template cohort |

SBC replicates use 2 chains x 200 draws after 200 tuning (the sweep of section 3 tunes 250), capped by
`DRAWS`, `TUNE` and `CHAINS`, and rank each truth among up to 99 thinned draws. With the defaults the
comparison is two fits plus up to 2 x 5 K-fold refits, and the SBC 20 refits: budget an hour or more on a
2-core machine; the full 100-replicate SBC belongs on a cluster (section 3). The test suite runs this
notebook with 10 subjects, `SAMPLER = "mock"` (2 x 30 prior draws dressed as a posterior), no K-fold refits
and 2 SBC replicates of 8 subjects: every cell runs, but **none of the numbers is meaningful at those
settings** (nothing is fitted, and 2 replicates cannot test uniformity).
"""),
        code("""
import os

DRAWS = int(os.environ.get("BONEBAYES_NB_DRAWS", 1000))
TUNE = int(os.environ.get("BONEBAYES_NB_TUNE", 1000))
CHAINS = int(os.environ.get("BONEBAYES_NB_CHAINS", 4))
SAMPLER = os.environ.get("BONEBAYES_NB_SAMPLER", "nutpie")  # "mock" = prior draws, for plumbing tests only
N_SUBJECTS = int(os.environ.get("BONEBAYES_NB_SUBJECTS", 60))
KFOLD = int(os.environ.get("BONEBAYES_NB_KFOLD", 5))
SBC_REPLICATES = int(os.environ.get("BONEBAYES_NB_SBC_REPLICATES", 20))
SBC_SUBJECTS = int(os.environ.get("BONEBAYES_NB_SBC_SUBJECTS", 20))
SBC_DRAWS, SBC_TUNE, SBC_CHAINS = min(DRAWS, 200), min(TUNE, 200), min(CHAINS, 2)
RANK_DRAWS = min(99, SBC_DRAWS * SBC_CHAINS)
SEED = 1
"""),
        code(SETUP),
        md("""
## 1. The variant registry

A variant is a model kind (`individual` or `published`) plus overrides of its configuration; each changes
one modelling choice. `compare`, `sbc`, sweeps and reports all take variants by name.
"""),
        code("""
from bonebayes.variants import Variant, get_variant, register, variants_table

pd.DataFrame(variants_table()).set_index("name")
"""),
        code("""
print(get_variant("individual_rebound").config())
"""),
        md("""
You can register your own: for example the default model without the subject-level random effect on k_M.
The overrides are validated when registered.
"""),
        code("""
from bonebayes.variants import VARIANTS

if "individual_fixed_kM" not in VARIANTS:
    register(Variant("individual_fixed_kM", "individual", {"random_kM": False},
                     "no subject-level random effect on k_M"))
get_variant("individual_fixed_kM")
"""),
        md("""
## 2. Comparing the default model with the rebound variant

`synthetic_data("individual_rebound", n_subjects=...)` simulates a cohort from a truth with a precursor pool
(k_Q = 0.12/month, eta_pool = 1): placebo, alendronate, and denosumab at months 0, 6 and 12 and then stopped, with markers
at 0, 3, 6, 12, 15, 18 and 24 months and spine BMD at 0, 12 and 24. After the stop CTX overshoots its
baseline, which the default model cannot produce.
"""),
        code("""
from bonebayes.compare import compare_variants, render_comparison, synthetic_data

data = synthetic_data("individual_rebound", n_subjects=N_SUBJECTS, seed=SEED)
print(data.label)
ctx = data.observations[data.observations["variable"] == "ctx"]
base = ctx[ctx["time_months"] == 0].set_index("subject")["value"]
pct = 100 * (ctx["value"].to_numpy() / ctx["subject"].map(base).to_numpy() - 1)
med = pd.Series(pct, index=ctx.index).groupby([ctx["time_months"], ctx["arm"]]).median().unstack("arm")
ax = med.plot(marker="o", figsize=(6, 3.5))
ax.axhline(0, color="0.5", lw=0.8, ls=":")
ax.axvline(12, color="C3", lw=0.8, ls="--")
ax.set(xlabel="months", ylabel="median CTX % change", title="CTX after the last denosumab injection (month 12)");
"""),
        md("""
`compare_variants` fits each variant (saving the fits in `output`, reused by a rerun with the same data and
settings), computes the pointwise log-likelihood with `pymc.compute_log_likelihood` and runs PSIS-LOO. If any
observation has Pareto k > 0.7, the importance-sampling estimate is unreliable for it and **every** variant is
scored by grouped K-fold instead, on the same folds: subjects are split into K groups, each fold refitted
without its subjects' likelihood, and each subject's held-out observations scored jointly,
elpd_g = log mean_s prod_i p(y_i | theta_s). Stacking weights (Yao et al. 2018) maximise
sum_i log sum_k w_k exp(elpd_ik) over the pointwise values of whichever estimate ranks the variants.
"""),
        code("""
comp = compare_variants(data, ["individual", "individual_rebound"], draws=DRAWS, tune=TUNE, chains=CHAINS,
                        seed=SEED, sampler=SAMPLER, kfold=KFOLD, output=OUT / "compare", log=print)
print("ranked by:", comp.method)
comp.table[["method", "elpd", "se", "elpd_diff", "se_diff", "weight", "elpd_loo", "p_loo", "k_good", "k_ok",
            "k_bad", "k_max", "converged", "rhat_max"]].round(2)
"""),
        md("""
Read `elpd_diff` with its paired `se_diff`: a difference of less than about two standard errors is not a
clear preference. `weight` is the stacking weight. The Pareto k values per observation show where PSIS-LOO
is unreliable (typically subjects whose few observations pin their own random effects):
"""),
        code("""
fig, axes = plt.subplots(1, len(comp.results), figsize=(5.5 * len(comp.results), 3.2), squeeze=False,
                         sharey=True)
for ax, (name, res) in zip(axes[0], comp.results.items()):
    k = np.asarray(res.loo["pareto_k"])
    shown = np.minimum(k, 2.0)  # values above 2 (or infinite) are drawn at 2
    ax.scatter(np.arange(len(k)), shown, s=6, c=np.where(k > 0.7, "C3", np.where(k > 0.5, "C1", "C0")))
    for level in (0.5, 0.7):
        ax.axhline(level, color="0.5", lw=0.8, ls="--")
    ax.set(title=f"{name}: {int(np.sum(k > 0.7))} of {len(k)} with k > 0.7", xlabel="observation",
           ylabel="Pareto k (capped at 2)", ylim=(min(-0.1, shown.min() - 0.1), 2.1))
fig.tight_layout()
"""),
        code("""
if comp.folds:
    print(f"K-fold with {len(comp.folds)} folds of {[len(f) for f in comp.folds]} subjects")
    display(pd.DataFrame({name: res.kfold for name, res in comp.results.items()}).describe().round(2))
elif (comp.table["k_bad"] > 0).any():
    print("Pareto k > 0.7 for some observations, but KFOLD = 0: the variants are ranked by PSIS-LOO anyway, "
          "which is unreliable here. Set BONEBAYES_NB_KFOLD (e.g. 5) to refit on grouped folds.")
else:
    print("all Pareto k <= 0.7: PSIS-LOO is reliable and no refits were needed")
"""),
        md("""
The same comparison is written as Markdown (`outputs/compare/comparison.md`) and CSV, and is available from
the command line: `bonebayes compare --data synthetic --variants individual,individual_rebound
--n-subjects 60 --output checks/cmp`. On the published evidence (`--data published`) the folds are studies.
"""),
        code("""
print(render_comparison(comp))
"""),
        md("""
## 3. Simulation-based calibration

For each replicate, `run_sbc` draws all parameters from the prior, simulates a data set on the template
design (a small synthetic cohort of `SBC_SUBJECTS` subjects in one cohort, with CTX and P1NP censored below
their LOQ as in real data), refits the model (compiled once: each replicate swaps in its simulated values), and records for every scalar population-level parameter the
rank of its true value among `RANK_DRAWS` evenly thinned posterior draws. If the fitting procedure is
calibrated the ranks are uniform on 0..RANK_DRAWS: a U shape means posteriors too narrow, a hump too wide, a
slope a bias. Replicates are written one file each in `output/replicates/`, so an interrupted run resumes.
"""),
        code("""
from bonebayes.checks.sbc import run_sbc

sbc = run_sbc("individual", SBC_REPLICATES, draws=SBC_DRAWS, tune=SBC_TUNE, chains=SBC_CHAINS,
              sampler=SAMPLER, rank_draws=RANK_DRAWS, n_subjects=SBC_SUBJECTS, seed=0, output=OUT / "sbc", log=print)
plt.close("all")
print(f"{len(sbc.replicate_info)} replicates, {sbc.wall_time_s:.0f} s of fitting in all")
sbc.replicate_info.round(3)
"""),
        md("""
Per parameter: a chi-square test of the binned ranks and a Kolmogorov-Smirnov test of the normalised ranks
against the uniform distribution. With about 40 parameters, two or so p-values below 0.05 are expected by
chance alone; look for small p-values together with a clear shape in the histogram, and for replicates that
did not converge (their ranks are not trustworthy).
"""),
        code("""
sbc.table.sort_values("chi2_pvalue").round(3).head(12)
"""),
        code("""
sbc.figure
"""),
        md("""
**The full SBC.** 100 replicates of the default individual model (2 chains x 200 draws after 200 tuning, 99
rank draws, 20 subjects) are one sweep file; each replicate is a task on a Dask cluster, results are
committed atomically and a rerun skips finished replicates:

```bash
bonebayes sweep data/sweeps/sbc_individual.toml --results results/sweeps/sbc_individual
```

```python
from bonebayes.sbc import summarise_sweep

full = summarise_sweep("results/sweeps/sbc_individual")
full.table.sort_values("chi2_pvalue").head(), full.figure
```

`bonebayes sbc --model individual --replicates 100 --output checks/sbc` runs the same in one process.
"""),
    ]


NOTEBOOKS = {
    "01_quickstart.ipynb": quickstart,
    "02_published_evidence.ipynb": published,
    "03_treatment_projections.ipynb": projections,
    "04_model_comparison_and_sbc.ipynb": comparison,
}


def build(name: str) -> nbformat.NotebookNode:
    nb = new_notebook(cells=NOTEBOOKS[name](), metadata={"kernelspec": KERNELSPEC, "language_info": LANGUAGE_INFO})
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"{name[:2]}-{i:02d}"  # stable ids: rebuilding gives identical files
    nbformat.validate(nb)
    return nb


def render(name: str) -> str:
    return nbformat.writes(build(name)) + "\n"


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = []
    for name in NOTEBOOKS:
        path = HERE / name
        text = render(name)
        if check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            path.write_text(text)
            print(f"wrote {path}")
    if stale:
        print(f"out of date (run python notebooks/build_notebooks.py): {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
