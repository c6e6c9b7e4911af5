"""Synthetic cohorts generated from the same physics as the models, with known true parameters.

``simulate_cohort(SyntheticDesign(...), seed=...)`` returns the observation and exposure tables in the
schema of :mod:`bonebayes.datasets.io` plus the truth (population parameters and subject effects), for
parameter-recovery tests, teaching and benchmarks. Subjects are postmenopausal women (menopause
``years_since_menopause`` before month 0, drawn uniformly from ``ysm_range``) assigned to arms round-robin.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from bonebayes.datasets.io import validate_exposures, validate_observations
from bonebayes.physiology.schedule import Unit, build_schedule
from bonebayes.physiology.simulate import at_times, simulate
from bonebayes.physiology.turnover import TurnoverRates
from bonebayes.regimens import Dose

MARKERS: tuple[str, ...] = ("ctx", "p1np", "rankl", "opg")
UNITS = {"ctx": "ng/mL", "p1np": "ng/mL", "rankl": "pmol/L", "opg": "pmol/L"}

DEFAULT_ARMS: dict[str, list[dict]] = {
    "placebo": [],
    "alendronate_10": [dict(drug="alendronate", dose=10, unit="mg/day", start_month=0, stop_month=24)],
    "alendronate_5": [dict(drug="alendronate", dose=5, unit="mg/day", start_month=0, stop_month=24)],
    "denosumab_stop": [dict(drug="denosumab", dose=60, unit="mg", every_months=6, start_month=0, stop_month=6)],
    "teriparatide": [dict(drug="teriparatide", dose=20, unit="ug/day", start_month=0, stop_month=18)],
    "estradiol": [dict(drug="estradiol", dose=1, unit="mg/day", route="oral", start_month=0, stop_month=24)],
}
DEFAULT_COHORT_ARMS: tuple[tuple[str, ...], ...] = (
    ("placebo", "alendronate_10", "denosumab_stop"),
    ("placebo", "alendronate_5", "teriparatide"),
    ("placebo", "estradiol", "denosumab_stop"),
)


@dataclass
class SyntheticDesign:
    """What to simulate. Times in months."""

    n_subjects: int = 200
    n_cohorts: int = 3
    visits: tuple[float, ...] = (0, 1, 3, 6, 12, 18, 24)
    bmd_visits: tuple[float, ...] = (0, 6, 12, 24)
    serum_visits: tuple[float, ...] = (0, 12, 24)
    sites: tuple[str, ...] = ("lumbar_spine", "total_hip")
    arms: dict[str, list[dict]] = field(default_factory=lambda: dict(DEFAULT_ARMS))
    cohort_arms: tuple[tuple[str, ...], ...] = DEFAULT_COHORT_ARMS
    ysm_range: tuple[float, float] = (2.0, 25.0)
    loq: dict[str, float] = field(default_factory=lambda: {"ctx": 0.06, "p1np": 5.0})

    def __post_init__(self) -> None:
        if self.n_subjects < 1 or self.n_cohorts < 1:
            raise ValueError("n_subjects and n_cohorts must be >= 1")
        unknown = {a for arms in self.cohort_arms for a in arms} - set(self.arms)
        if unknown:
            raise ValueError(f"cohort_arms name unknown arms {sorted(unknown)}; defined: {sorted(self.arms)}")


def default_truth(design: SyntheticDesign) -> dict[str, object]:
    """True population parameters (names and shapes as in the individual model)."""
    site_kM = {"lumbar_spine": 0.015, "total_hip": 0.009, "femoral_neck": 0.008}
    site_bmd = {"lumbar_spine": 0.85, "total_hip": 0.78, "femoral_neck": 0.68}
    emax = {"alendronate": 0.7, "zoledronate": 0.75, "denosumab": 0.93, "calcitonin": 0.3}
    ec50 = {"alendronate": 0.05, "zoledronate": 0.1, "denosumab": 0.01, "calcitonin": 0.5}
    levels = [*MARKERS, *[f"bmd_{s}" for s in design.sites]]
    return {
        "k_C": 1.0, "k_B": 0.35,
        "k_M": np.array([site_kM[s] for s in design.sites]),
        "lam": np.full(len(design.sites), 0.008),
        "gamma": {"estradiol": -0.3}, "e_form": {"estradiol": 0.03},
        "g_rankl": {"estradiol": -0.15}, "g_opg": {"estradiol": -0.2},
        "emax_res": emax, "ec50_res": ec50,  # per drug; arrays follow the drugs actually used
        "emax_ana": {"teriparatide": 0.35}, "ec50_ana": {"teriparatide": 0.5},
        "levels": levels,
        "mu_level": np.array([np.log(0.5), np.log(60.0), np.log(0.4), np.log(5.0),
                              *[np.log(site_bmd[s]) for s in design.sites]]),  # baseline (month 0) levels
        "sigma_level": np.array([0.2, 0.15, 0.4, 0.25, *[0.012] * len(design.sites)]),
        "tau_subject": np.array([0.3, 0.3, 0.4, 0.3, *[0.1] * len(design.sites)]),
        "tau_cohort": np.full(len(levels), 0.1),
        "tau_kM": 0.25,
    }


def _pool(truth: dict[str, object], antiresorptives: tuple[str, ...]):  # noqa: ANN202
    """The precursor pool of the truth (keys ``k_Q`` and ``eta_pool``: the rebound variant), else None."""
    if "eta_pool" not in truth or not antiresorptives:
        return None
    from bonebayes.physiology.precursor import PrecursorPool, pool_mask

    return PrecursorPool(np.float64(truth["k_Q"]), np.float64(truth["eta_pool"]), pool_mask(antiresorptives))


def _hormone_vector(d: dict[str, float], hormones: tuple[str, ...]) -> np.ndarray:
    return np.array([d.get(h, 0.0) for h in hormones])


@dataclass
class SyntheticCohort:
    """Tables in the package schema plus the truth that generated them."""

    observations: pd.DataFrame
    exposures: pd.DataFrame
    truth: dict[str, object]
    subject_effects: pd.DataFrame
    design: SyntheticDesign
    seed: int

    def write(self, directory: str) -> tuple[str, str]:
        """Write observations.csv and exposures.csv atomically; returns their paths."""
        import os

        from bonebayes.datasets.io import write_table_atomic

        os.makedirs(directory, exist_ok=True)
        obs_path = os.path.join(directory, "observations.csv")
        exp_path = os.path.join(directory, "exposures.csv")
        cols_o = ["subject", "cohort", "arm", "time_months", "variable", "value", "unit", "below_loq"]
        write_table_atomic(self.observations[cols_o], obs_path)
        cols_e = ["subject", "drug", "dose", "unit", "start_month", "stop_month", "every_months", "route"]
        write_table_atomic(self.exposures[cols_e], exp_path)
        return obs_path, exp_path


def simulate_cohort(
    design: SyntheticDesign | None = None, truth: dict[str, object] | None = None, seed: int = 0
) -> SyntheticCohort:
    """Simulate a cohort; integer ``seed`` makes it reproducible."""
    from bonebayes.physiology.signalling import DrugEffects
    from bonebayes.physiology.simulate import PhysiologyParams

    design = design or SyntheticDesign()
    truth = truth or default_truth(design)
    rng = np.random.default_rng(seed)
    n, S = design.n_subjects, len(design.sites)
    subjects = [f"S{i + 1:04d}" for i in range(n)]
    cohort_idx = np.arange(n) % design.n_cohorts
    cohorts = [f"C{c + 1}" for c in range(design.n_cohorts)]
    arm_of, units, exp_rows = [], [], []
    counters = np.zeros(design.n_cohorts, dtype=int)
    for i, s in enumerate(subjects):
        c = cohort_idx[i]
        arms = design.cohort_arms[c % len(design.cohort_arms)]
        arm = arms[counters[c] % len(arms)]
        counters[c] += 1
        arm_of.append(arm)
        ysm = rng.uniform(*design.ysm_range)
        menopause = {"drug": "natural_menopause", "start_month": float(round(-12.0 * ysm))}
        items = [menopause, *design.arms[arm]]
        units.append(Unit(s, tuple(Dose(**d) for d in items)))
        for d in items:
            exp_rows.append({"subject": s, **d})
    t_end = max(max(design.visits), max(design.bmd_visits), max(design.serum_visits))
    sched = build_schedule(units, t_end)
    hormones = sched.hormones
    kM_subject = np.exp(rng.normal(0.0, truth["tau_kM"], n))
    k_M = truth["k_M"][None, :] * kM_subject[:, None]
    res, ana = sched.antiresorptives, sched.anabolics
    missing = [d for d in res if d not in truth["emax_res"]] + [d for d in ana if d not in truth["emax_ana"]]
    if missing:
        raise ValueError(f"truth has no Emax/EC50 for drugs used by the design: {missing}")
    e_ana = np.array([truth["emax_ana"][d] for d in ana])
    c_ana = np.array([truth["ec50_ana"][d] for d in ana])
    truth = {**truth, "antiresorptives": list(res), "anabolics": list(ana),
             "emax_res": np.array([truth["emax_res"][d] for d in res]),
             "ec50_res": np.array([truth["ec50_res"][d] for d in res]),
             "emax_ana": e_ana, "ec50_ana": c_ana, "eref_ana": e_ana / (1.0 + c_ana)}
    params = PhysiologyParams(
        gamma=_hormone_vector(truth["gamma"], hormones),
        e_form=_hormone_vector(truth["e_form"], hormones),
        res_effects=DrugEffects(truth["emax_res"], truth["ec50_res"]),
        ana_effects=DrugEffects(e_ana, c_ana),
        rates=TurnoverRates(np.float64(truth["k_C"]), np.float64(truth["k_B"]), k_M, np.asarray(truth["lam"])),
        pool=_pool(truth, res),
    )
    # observation design: (subject, variable, time) for every scheduled measurement
    levels = list(truth["levels"])
    L = len(levels)
    cohort_eff = rng.normal(0.0, truth["tau_cohort"], (design.n_cohorts, L))
    subj_eff = rng.normal(0.0, truth["tau_subject"], (n, L))
    intercept = truth["mu_level"] + cohort_eff[cohort_idx] + subj_eff
    plan = [(i, var, float(t)) for i in range(n)
            for var, times in (("ctx", design.visits), ("p1np", design.visits),
                               *((f"bmd_{s}", design.bmd_visits) for s in design.sites),
                               ("rankl", design.serum_visits), ("opg", design.serum_visits))
            for t in times]
    unit = np.array([p[0] for p in plan])
    var = np.array([p[1] for p in plan])
    time = np.array([p[2] for p in plan])
    node, tau = sched.locate(time)
    traj, tau_co = simulate(sched, params, S, extra_h=tau)
    st = at_times(traj, node, unit, k_M[unit], tau_co, sched.n_window)
    lev = np.array([levels.index(v) for v in var])
    sig = np.asarray(truth["sigma_level"])[lev]
    mean = intercept[unit, lev]
    is_bmd = np.char.startswith(var.astype(str), "bmd_")
    site_idx = np.array([design.sites.index(v[4:]) if v.startswith("bmd_") else 0 for v in var])
    b0 = traj.state  # month-0 states: intercepts are baseline levels
    mean = mean + np.where(var == "ctx", np.log(st.C) - np.log(b0.C[0][unit]), 0.0)
    mean = mean + np.where(var == "p1np", np.log(st.B) - np.log(b0.B[0][unit]), 0.0)
    mean = mean + np.where(is_bmd, st.m[np.arange(len(var)), site_idx] - b0.m[0][unit, site_idx], 0.0)
    from bonebayes.physiology.inputs import hormone_covariates

    x = np.stack([np.subtract(*hormone_covariates(units[i].regimen, np.array([t, 0.0])))
                  for i, t in zip(unit, time)])  # change from month 0: intercepts are baseline levels
    g_r = _hormone_vector(truth["g_rankl"], hormones)
    g_o = _hormone_vector(truth["g_opg"], hormones)
    mean = mean + np.where(var == "rankl", x @ g_r, 0.0) + np.where(var == "opg", x @ g_o, 0.0)
    value = np.exp(mean + rng.normal(0.0, sig))
    loq = np.array([design.loq.get(v, 0.0) for v in var])
    below = value < loq
    unit_of = {**{v: "g/cm2" for v in var if v.startswith("bmd_")}, **UNITS}
    rows = list(zip([subjects[i] for i in unit], var, time, np.where(below, loq, value),
                    [unit_of[v] for v in var], below))
    obs = pd.DataFrame(rows, columns=["subject", "variable", "time_months", "value", "unit", "below_loq"])
    obs["cohort"] = [cohorts[cohort_idx[int(s[1:]) - 1]] for s in obs["subject"]]
    obs["arm"] = [arm_of[int(s[1:]) - 1] for s in obs["subject"]]
    exp = pd.DataFrame(exp_rows).reindex(
        columns=["subject", "drug", "dose", "unit", "start_month", "stop_month", "every_months", "route"]
    )
    exp["unit"] = exp["unit"].fillna("")
    obs_v = validate_observations(obs, source="<synthetic observations>")
    exp_v = validate_exposures(exp, source="<synthetic exposures>")
    effects = pd.DataFrame(intercept, index=subjects, columns=[f"intercept_{lv}" for lv in levels])
    effects["kM_multiplier"] = kM_subject
    effects["cohort"] = [cohorts[c] for c in cohort_idx]
    effects["arm"] = arm_of
    truth = {**truth, "cohort_effects": cohort_eff, "cohorts": cohorts}
    return SyntheticCohort(obs_v, exp_v, truth, effects, design, seed)
