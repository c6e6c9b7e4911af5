"""Data-informed starting values for the level parameters of the individual model (log scale).

NUTS chains of the individual model used to start at the prior's support point plus a U(-1, 1) jitter on the
unconstrained scale. For the level parameters that start is far from anything the data allow: BMD levels start
at the prior mean (log 0.9 g/cm2) +- 1 on the log scale against a DXA precision of about 1 %, so the first
log density is about -1e5 and its gradient huge. On the benchmark's 100-subject cohort (seed 1) one of two
chains was thrown within five warm-up draws into a region where every scale is absurd (sigma_ctx 42,
tau_subject 71) and stayed there with step size 0.003: 500 divergences, R-hat 2.24
(``benchmarks/diagnose_divergences.py``). Starting each subject intercept at the subject's own earliest
observation, each cohort mean at the mean of its subjects' and the population mean at the mean of the
cohorts', without jitter, removes that first kick; every other parameter keeps its jittered start, so chains
still start apart (R-hat can still see disagreement).
"""

from __future__ import annotations

import numpy as np

from bonebayes.models.data import IndividualData


def baseline_log_levels(data: IndividualData) -> np.ndarray:
    """(subjects, levels) log value of each subject's earliest observation of each level; NaN where none."""
    out = np.full((data.n_subjects, len(data.levels)), np.nan)
    when = np.full(out.shape, np.inf)
    for b in (data.markers, data.bmd, data.serum):
        t = data.schedule.node_times[b.node] + b.tau if len(b) else np.zeros(0)
        for i, k, ti, y in zip(b.unit, b.level, t, b.log_value):
            if ti < when[i, k]:
                when[i, k], out[i, k] = ti, y
    return out


def individual_initial_values(data: IndividualData, free_names: set[str]) -> dict[str, np.ndarray]:
    """Starting values (constrained scale) for the level parameters named in ``free_names`` (free RVs)."""
    base = baseline_log_levels(data)
    n_c = len(data.cohorts)
    out: dict[str, np.ndarray] = {}
    mu = np.zeros(len(data.levels))
    for k, lv in enumerate(data.levels):
        col = base[:, k]
        overall = float(np.nanmean(col))
        cohort = np.array([np.nanmean(col[data.cohort_of == c]) if np.isfinite(col[data.cohort_of == c]).any()
                           else overall for c in range(n_c)])
        mu[k] = float(cohort.mean())
        subject = np.where(np.isfinite(col), col, cohort[data.cohort_of])
        if f"cohort_{lv}" in free_names:
            out[f"cohort_{lv}"] = cohort
        if f"a_{lv}" in free_names:
            out[f"a_{lv}"] = subject
    if "mu_level" in free_names:
        out["mu_level"] = mu
    return out
