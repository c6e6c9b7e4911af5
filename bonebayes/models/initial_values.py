"""Data-informed starting values for the level parameters of the individual model (log scale).

NUTS chains of the individual model used to start at the prior's support point plus a U(-1, 1) jitter on the
unconstrained scale. For the level parameters that start is far from anything the data allow: BMD levels start
at the prior mean (log 0.9 g/cm2) +- 1 on the log scale against a DXA precision of about 1 %, so the first
log density is about -1e5 and its gradient huge. On the benchmark's 100-subject cohort (seed 1) one of two
chains was thrown within five warm-up draws into a region where every scale is absurd (sigma_ctx 42,
tau_subject 71) and stayed there with step size 0.003: 500 divergences, R-hat 2.24
(``benchmarks/diagnose_divergences.py``). Starting the levels at the data, without jitter, removes that first
kick; every other parameter keeps a jittered start (``bonebayes.initial_points``), so chains still start apart
(R-hat can still see disagreement).
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


JITTERED: tuple[str, ...] = ("z_mu_level",)
"""Starting values that keep their jitter. ``z_mu_level`` starts at 0 for a level with cohort means (its
conditional mean), where its gradient is exactly 0 (no likelihood touches it): nutpie takes that as an
invalid start ("bad initial gradient"), since its first mass matrix is built from the gradient."""


def individual_initial_values(data: IndividualData, free_names: set[str]) -> dict[str, np.ndarray]:
    """Starting values (constrained scale) for the level parameters named in ``free_names`` (free RVs).

    Each subject intercept starts at the subject's earliest observation (its cohort's mean where it has
    none), each cohort's mean of cohort means (``cohort_mean_*``) at the mean of its subjects' cohort means,
    and the population means at the data: a free ``mu_level`` (one cohort, or pooled) at the mean of the
    cohort means, ``z_mu_level`` at 0 for levels with ``cohort_mean_*`` (mu at its conditional mean) and at
    the data's standardised mean for the others. Cohort deviations keep their (small) jittered start.
    """
    from bonebayes.models.priors import PRIORS

    base = baseline_log_levels(data)
    n_c = len(data.cohorts)
    out: dict[str, np.ndarray] = {}
    mu = np.zeros(len(data.levels))
    z_mu = np.zeros(len(data.levels))
    for k, lv in enumerate(data.levels):
        col = base[:, k]
        overall = float(np.nanmean(col))
        cohort = np.array([np.nanmean(col[data.cohort_of == c]) if np.isfinite(col[data.cohort_of == c]).any()
                           else overall for c in range(n_c)])
        mu[k] = float(cohort.mean())
        subject = np.where(np.isfinite(col), col, cohort[data.cohort_of])
        if f"cohort_mean_{lv}" in free_names:
            out[f"cohort_mean_{lv}"] = np.asarray(mu[k])
        else:
            prior = PRIORS[f"mu_{'bmd' if lv.startswith('bmd_') else lv}"]
            z_mu[k] = (mu[k] - prior.a) / prior.b
        if f"a_{lv}" in free_names:
            out[f"a_{lv}"] = subject
    if "mu_level" in free_names:
        out["mu_level"] = mu
    if "z_mu_level" in free_names:
        out["z_mu_level"] = z_mu
    return out
