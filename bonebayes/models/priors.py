"""Population-level parameters: meaning, unit, prior and why; shared by the models and the synthetic truth.

Priors are weakly informative and lean towards the literature signs (DESIGN.md): the data can move them.
Every prior is stated on the scale NUTS samples (log for rates, logit-like Beta for inhibition).

Fixed for identifiability:

* ``alpha`` (exponent on the local RANKL/OPG ratio) is fixed at 1: it multiplies an unobserved latent
  log-ratio and only the products alpha * gamma_h are identified. gamma_h is therefore the elasticity of the
  resorption stimulus to hormone h. (The ``serum_driver`` variant estimates alpha instead.)
* Direct hormone effects on resorption (b_h in DESIGN.md) are absorbed into gamma_h for the same reason.
* Kinetic-PD half-lives and reference doses of the drugs are vocabulary constants (``regimens.DRUGS``): the
  marker data identify Emax and EC50 given exposure, not the exposure's own time constant as well.
* The young-adult reference state (C = B = 1, m = 0) anchors the normalised states; subject intercepts carry
  the absolute levels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bonebayes.regimens import HORMONES

SITES: tuple[str, ...] = ("lumbar_spine", "total_hip", "femoral_neck")


@dataclass(frozen=True)
class Prior:
    """A prior on one scalar (or per-element) parameter."""

    dist: str  # "normal", "lognormal", "halfnormal", "beta", "gamma"
    a: float  # mu / mu(log) / sigma / alpha / shape
    b: float = 0.0  # sigma / sigma(log) / - / beta / rate
    unit: str = ""
    meaning: str = ""
    why: str = ""

    def build(self, name: str, dims: str | tuple[str, ...] | None = None, *, mu=None, sigma=None):  # noqa: ANN001
        """Create the PyMC random variable (``mu``/``sigma`` override per-element locations)."""
        import pymc as pm

        a = self.a if mu is None else mu
        b = self.b if sigma is None else sigma
        if self.dist == "normal":
            return pm.Normal(name, a, b, dims=dims)
        if self.dist == "lognormal":
            return pm.LogNormal(name, a, b, dims=dims)
        if self.dist == "halfnormal":
            return pm.HalfNormal(name, a, dims=dims)
        if self.dist == "beta":
            return pm.Beta(name, a, b, dims=dims)
        if self.dist == "gamma":
            return pm.Gamma(name, alpha=a, beta=b, dims=dims)
        raise ValueError(f"unknown prior distribution {self.dist!r}")

    def sample(self, rng: np.random.Generator, size: int | tuple | None = None) -> np.ndarray:
        """Draw from the prior with NumPy (simulation-based checks)."""
        if self.dist == "normal":
            return rng.normal(self.a, self.b, size)
        if self.dist == "lognormal":
            return np.exp(rng.normal(self.a, self.b, size))
        if self.dist == "halfnormal":
            return np.abs(rng.normal(0.0, self.a, size))
        if self.dist == "gamma":
            return rng.gamma(self.a, 1.0 / self.b, size)
        return rng.beta(self.a, self.b, size)


PRIORS: dict[str, Prior] = {
    "k_C": Prior("lognormal", np.log(1.0), 0.5, "1/month", "CTX (resorption) return rate",
                 "CTX half-life days to weeks: median 0.7 months, 90% range 0.3-1.6 months"),
    "k_B": Prior("lognormal", np.log(0.35), 0.4, "1/month", "P1NP (formation) return rate",
                 "osteoblast / P1NP half-life about 1-2 months: median 2 months"),
    "k_M": Prior("lognormal", np.log(0.015), 0.6, "1/month", "BMD change per month per unit imbalance B - C",
                 "sets lumbar-spine response half-life of months and 3-8% BMD gains on antiresorptives"),
    "lam": Prior("lognormal", np.log(0.008), 0.6, "1/month", "slow restoring rate of BMD towards reference",
                 "mechanostat / secondary mineralisation: BMD losses level off over years (half-life ~7 y)"),
    "gamma": Prior("normal", 0.0, 0.3, "1", "elasticity of the resorption stimulus to log hormone level",
                   "signs lean to the literature (per-hormone means in GAMMA_MEAN)"),
    "e_form": Prior("normal", 0.0, 0.1, "1", "elasticity of the formation stimulus to log hormone level",
                    "small: formation mostly follows resorption; per-hormone means in E_FORM_MEAN"),
    "emax_res": Prior("beta", 4.0, 2.0, "fraction", "maximal inhibition of resorption by the drug",
                      "antiresorptives lower CTX by 40-90%: Beta(4, 2), mean 0.67"),
    "ec50_res": Prior("lognormal", np.log(0.05), 1.5, "reference-dose equivalents",
                      "exposure giving half the maximal inhibition",
                      "standard doses are near-maximal: EC50 well below 1 reference dose"),
    "eref_ana": Prior("lognormal", np.log(0.25), 0.8, "fraction",
                      "fractional rise of formation at the reference exposure (steady state of the reference "
                      "dose); Emax = eref * (1 + EC50)",
                      "teriparatide raises P1NP 70-130% and spine BMD ~10% in 18 months. Parameterised at the "
                      "reference dose because with one dose level only this product is identified; EC50 "
                      "then falls back to its prior instead of forming a ridge"),
    "ec50_ana": Prior("lognormal", np.log(0.5), 0.8, "reference-dose equivalents",
                      "exposure giving half the anabolic effect", "standard dose near half to full effect"),
    "kappa_ana": Prior("beta", 2.0, 2.0, "fraction",
                       "share of an anabolic drug's formation rise passed on to resorption (remodelling coupling)",
                       "intermittent PTH raises resorption markers as well as formation markers, later and "
                       "somewhat less (Neer 2001 marker substudies); Beta(2, 2) only says 'somewhere in 0-1'"),
    "g_rankl": Prior("normal", 0.0, 0.3, "1", "elasticity of serum RANKL to log hormone level",
                     "serum measurement layer only; per-hormone means in G_RANKL_MEAN"),
    "g_opg": Prior("normal", 0.0, 0.3, "1", "elasticity of serum OPG to log hormone level",
                   "serum OPG is higher after menopause (compensatory): estradiol mean negative"),
    "mu_ctx": Prior("normal", np.log(0.4), 0.7, "log ng/mL", "population mean baseline (month 0) serum CTX",
                    "CTX about 0.1-0.6 ng/mL premenopausal, up to ~1 ng/mL postmenopausal"),
    "mu_p1np": Prior("normal", np.log(50.0), 0.7, "log ng/mL", "population mean baseline serum P1NP",
                     "P1NP about 20-100 ng/mL"),
    "mu_rankl": Prior("normal", np.log(0.4), 1.0, "log pmol/L", "serum RANKL at the reference",
                      "assay-dependent; Jabbar 2011 0.37 pmol/L, Liu 2004 5.8 pg/mL"),
    "mu_opg": Prior("normal", np.log(5.0), 1.0, "log pmol/L", "serum OPG at the reference",
                    "assay-dependent; 2-20 pmol/L reported"),
    "mu_bmd": Prior("normal", np.log(0.9), 0.3, "log g/cm2", "population mean baseline areal BMD at a site",
                    "NHANES young-adult means 0.86-1.06 g/cm2 by site; lower in older adults"),
    "sigma_ctx": Prior("halfnormal", 0.4, unit="log", meaning="CTX residual (assay + within-subject) SD",
                       why="within-subject CV of CTX about 10-25%"),
    "sigma_p1np": Prior("halfnormal", 0.4, unit="log", meaning="P1NP residual SD", why="CV about 10-20%"),
    "sigma_rankl": Prior("halfnormal", 0.6, unit="log", meaning="serum RANKL residual SD",
                         why="serum RANKL is noisy (CV 30-100%)"),
    "sigma_opg": Prior("halfnormal", 0.5, unit="log", meaning="serum OPG residual SD", why="CV 20-50%"),
    "sigma_bmd": Prior("lognormal", np.log(0.012), 0.5, "log", "DXA precision (residual SD)",
                       "DXA precision error about 1-2% at spine and hip"),
    "tau_subject": Prior("halfnormal", 0.5, unit="log", meaning="between-subject SD of a log baseline level",
                         why="subject levels of markers vary 20-50%"),
    "tau_bmd_subject": Prior("halfnormal", 0.2, unit="log", meaning="between-subject SD of log reference BMD",
                             why="BMD SD about 10-12% of the mean (NHANES)"),
    "tau_cohort": Prior("gamma", 2.0, 1 / 0.075, unit="log", meaning="between-cohort SD of a log baseline level",
                        why="cohorts differ by assay and selection, modestly (mode 0.075, mean 0.15); "
                            "boundary-avoiding Gamma(2) (Chung et al. 2013): with 2-3 cohorts a half-normal "
                            "left mass near 0 and NUTS diverged in the funnel neck of the centred cohort means"),
    "tau_kM": Prior("halfnormal", 0.3, unit="log", meaning="between-subject SD of log k_M",
                    why="individual BMD responsiveness differs by tens of percent"),
    # --- precursor-pool variant (physiology.precursor): off-treatment rebound after denosumab ---------------
    "k_Q": Prior("lognormal", np.log(0.12), 0.5, "1/month", "osteoclast-precursor pool filling/emptying rate",
                 "CTX stays above baseline about 6-18 months after the last denosumab dose (FREEDOM extension, "
                 "Cummings 2018): pool half-life median 6 months, 90% range 2.5-13 months"),
    "eta_pool": Prior("halfnormal", 1.0, unit="1",
                      meaning="extra resorption per unit of stored precursor pool above the current inhibition",
                      why="CTX overshoots baseline by tens of percent to about two-fold after stopping denosumab "
                          "(pool near 0.9 after years on drug); 0 = no rebound (the default model)"),
    "g_ratio": Prior("normal", 0.0, 0.42, "1", "elasticity of the serum log RANKL/OPG ratio (ratio-only layer)",
                     "ratio-only signalling variant: log RANKL and log OPG move by +g/2 and -g/2; the sd is "
                     "that of g_rankl - g_opg under the separate priors (0.3 sqrt 2)"),
    # --- published arm-level block (models.published) ---------------------------------------------------
    # Between-study and residual scales are few-group variance parameters: boundary-avoiding Gamma(2, rate)
    # priors (Chung et al. 2013, Psychometrika 78:685) keep them off zero, where a half-normal lets log-scale
    # NUTS wander (slow mixing) and the estimate collapse; mode 1/rate, mean 2/rate.
    "tau_kM_study": Prior("gamma", 2.0, 1 / 0.15, unit="log", meaning="between-study SD of log k_M",
                          why="trials of the same drug report BMD gains differing by tens of percent"),
    "tau_drift": Prior("gamma", 2.0, 1 / 0.25, unit="%/year", meaning="between-study SD of an extra BMD drift",
                       why="placebo arms lose 0-2 %/year depending on age, calcium/vitamin D and selection; "
                           "the drift is shared by a study's arms and cancels in between-arm differences"),
    "omega_bmd": Prior("gamma", 2.0, 1 / 0.5, unit="% points", meaning="residual heterogeneity of a BMD row",
                       why="model misfit beyond sampling error and study effects: about 1 point"),
    "omega_marker": Prior("gamma", 2.0, 1 / 5.0, unit="% points",
                          meaning="residual heterogeneity of a marker row",
                          why="marker changes differ by assay, fasting and timing: about 10 points"),
    "omega_level": Prior("gamma", 2.0, 1 / 0.1, unit="log", meaning="residual heterogeneity of a level row",
                         why="group levels differ beyond their SE by selection and assay drift: about 0.2"),
    "s_bmd": Prior("lognormal", np.log(4.0), 0.5, "% points",
                   "between-subject SD of a BMD % change (rows without dispersion: SE = s / sqrt(n))",
                   "trials report SDs of 3-5 % for 1-3 year BMD changes"),
    "s_marker": Prior("lognormal", np.log(35.0), 0.5, "% points",
                      "between-subject SD of a marker % change (rows without dispersion)",
                      "marker changes vary 20-60 points between subjects"),
    "beta_assay": Prior("lognormal", 0.0, 0.4, "1",
                        "exponent of a non-anchor assay on its latent (urinary NTX/CrossLaps on C; BSAP, "
                        "osteocalcin on B)", "assays move less or more than serum CTX/P1NP: within a factor 2"),
    "a_level": Prior("normal", 0.0, 1.0, "log (centred)",
                     "study-assay intercept of a level group, on the group's log values minus their mean",
                     "a nuisance intercept: level rows inform only within-study contrasts"),
}

SITE_KM_MEANS: dict[str, float] = {"lumbar_spine_trabecular": float(np.log(0.03))}
"""Per-site prior locations of log k_M where they differ from PRIORS['k_M']: QCT trabecular vBMD responds about
twice as much as DXA areal BMD (TTrials: +7.5 % vs about +3 % in a year)."""

GAMMA_MEAN = {"estradiol": -0.25, "testosterone": -0.1, "pth": 0.2, "glucocorticoid": 0.3, "thyroid": 0.4,
              "igf1": 0.0}
E_FORM_SD = {"pth": 0.05}
"""Tighter e_form priors: continuous PTH excess raises formation together with resorption (high turnover in
primary hyperparathyroidism), so a strongly negative formation elasticity is implausible; with one PTH study
(parathyroidectomy) a wide prior left a second, 'suppressed formation' mode."""
E_FORM_MEAN = {"estradiol": 0.03, "testosterone": 0.05, "pth": 0.0, "glucocorticoid": -0.2, "thyroid": -0.05,
               "igf1": 0.2}
G_RANKL_MEAN = {"estradiol": -0.1, "testosterone": 0.0, "pth": 0.3, "glucocorticoid": 0.2, "thyroid": 0.0,
                "igf1": 0.0}
G_OPG_MEAN = {"estradiol": -0.15, "testosterone": 0.0, "pth": -0.1, "glucocorticoid": -0.2, "thyroid": 0.2,
              "igf1": 0.0}
G_RATIO_MEAN = {h: G_RANKL_MEAN[h] - G_OPG_MEAN[h] for h in G_RANKL_MEAN}
HORMONE_MEANS = {"gamma": GAMMA_MEAN, "e_form": E_FORM_MEAN, "g_rankl": G_RANKL_MEAN, "g_opg": G_OPG_MEAN,
                 "g_ratio": G_RATIO_MEAN}
HORMONE_SDS = {"e_form": E_FORM_SD}
assert all(set(m) == set(HORMONES) for m in HORMONE_MEANS.values())


def prior_table() -> list[dict[str, str]]:
    """Rows for documentation and reports: parameter, prior, unit, meaning, why."""
    rows = []
    for name, p in PRIORS.items():
        spec = {"normal": f"Normal({p.a:.3g}, {p.b:.3g})", "lognormal": f"LogNormal({p.a:.3g}, {p.b:.3g})",
                "halfnormal": f"HalfNormal({p.a:.3g})", "beta": f"Beta({p.a:.3g}, {p.b:.3g})",
                "gamma": f"Gamma({p.a:.3g}, rate {p.b:.3g})"}[p.dist]
        rows.append({"parameter": name, "prior": spec, "unit": p.unit, "meaning": p.meaning, "why": p.why})
    return rows
