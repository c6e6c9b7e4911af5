"""How the individual model samples each level's cohort means and subject intercepts (centred or not).

The choice changes the parameterisation only, never the distribution: a centred intercept a_i ~ N(c, tau)
suits data that pin each a_i (a non-centred z_i would correlate with tau), a non-centred a_i = c + tau z_i
suits data that do not (the centred form has a funnel at small tau). Which regime holds depends on the
between-subject SD of the data at hand, so subject intercepts are placed by a method-of-moments pilot
estimate (:func:`pilot_spread`) of that SD and of the measurement noise, with the priors' typical values as
the fallback where the design cannot estimate them (Papaspiliopoulos, Roberts & Skold 2007, Stat Sci 22:59;
Betancourt & Girolami 2015).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from bonebayes.models.priors import PRIORS

if TYPE_CHECKING:
    from bonebayes.models.data import IndividualData

CENTRED_MIN_OBS = 4
"""Cohort means of a variable are sampled directly when subjects have at least this many observations of it
on average (data-rich: a non-centred offset would correlate with tau), as non-centred offsets otherwise."""

SUBJECT_MIN_OBS = 3
"""Subject intercepts can be sampled directly (centred) only when subjects have at least this many
observations of the level on average, and the observations pin them (:func:`level_layout`)."""

PINNED_RATIO = 0.5
"""A subject intercept is centred when the noise of a subject's mean is below this fraction of the
between-subject SD (reliability tau^2 / (tau^2 + noise^2) above 0.8). The two failures are not symmetric: a
centred intercept whose posterior reaches tau near 0 diverges (an SBC replicate at noise 0.070 against a
pilot SD 0.074 had 14 divergences and R-hat 1.39 for tau_subject[ctx]); a non-centred one where the data are
informative only mixes more slowly. Borderline levels therefore get the non-centred form."""

COHORT_PINNED_RATIO = 1 / 3
"""Cohort means of a sparsely measured level are sampled directly when the SD of a cohort's mean is below this
fraction of the typical between-cohort SD (reliability above 0.9), stricter than :data:`PINNED_RATIO`
because with 2-3 cohorts a centred level whose means are not pinned diverges at small tau_cohort (89
divergences at 100 subjects before ``_hierarchical_levels``). The main job's 200-subject cohort with serum
at three visits (0.40) keeps offsets; the 500-subject reference with serum once (0.32) does not."""

PILOT_MIN_SUBJECTS = 4
"""The pilot estimate needs at least this many subjects with two or more observations in shared cells."""


@dataclass(frozen=True)
class Spread:
    """Between-subject SD of a level and the SD of one subject's mean of its observations (log units)."""

    between: float
    noise_of_mean: float
    source: str  # "data" (method of moments) or "prior" (the priors' typical values)


def _prior_mean(p) -> float:  # noqa: ANN001 - a models.priors.Prior of a scale
    if p.dist == "halfnormal":
        return float(p.a * np.sqrt(2 / np.pi))
    if p.dist == "gamma":  # shape a, rate b
        return float(p.a / p.b)
    return float(np.exp(p.a + p.b**2 / 2))  # lognormal


def prior_spread(level: str, obs_per_subject: float) -> Spread:
    """The priors' typical between-subject SD against the typical noise of a subject's mean."""
    key = "bmd" if level.startswith("bmd_") else level
    noise = _prior_mean(PRIORS[f"sigma_{key}"]) / np.sqrt(max(obs_per_subject, 1.0))
    between = _prior_mean(PRIORS["tau_bmd_subject" if key == "bmd" else "tau_subject"])
    return Spread(between, float(noise), "prior")


def _arms(data: IndividualData) -> np.ndarray:
    """(N,) integer label of each subject's on-study regimen (its doses starting at or after month 0)."""
    sigs = [tuple(sorted(repr(d) for d in data.regimens[s] if d.start_month >= 0)) for s in data.subjects]
    index = {sig: i for i, sig in enumerate(dict.fromkeys(sigs))}
    return np.array([index[sig] for sig in sigs], dtype=int)


def pilot_spread(data: IndividualData, level: str) -> Spread | None:
    """One-way random-effects ANOVA of a level's log values around their (cohort, arm, time) cell means.

    Subjects of a cohort on the same on-study regimen (arm: the doses from month 0 on) measured at the same
    time share their treatment and schedule, so what is left after removing the cell mean is the subject's intercept plus noise (plus, for BMD, the subject's k_M over time,
    which counts as noise here). Between-subject variance (MSB - MSW) / n0 (clipped at 0), noise of a
    subject's mean sqrt(MSW / mean obs per subject). ``None`` when fewer than :data:`PILOT_MIN_SUBJECTS`
    subjects have two or more observations in cells shared with another subject.
    """
    k = data.levels.index(level)
    parts = [(b.unit[b.level == k], b.node[b.level == k], b.tau[b.level == k], b.log_value[b.level == k])
             for b in (data.markers, data.bmd, data.serum)]
    unit, node, tau, y = (np.concatenate(x) for x in zip(*parts))
    if len(y) == 0:
        return None
    arm = _arms(data)
    cell = np.stack([data.cohort_of[unit], arm[unit], node, np.round(tau, 6)], axis=1)
    _, cell_id, cell_n = np.unique(cell, axis=0, return_inverse=True, return_counts=True)
    cell_id = cell_id.reshape(-1)
    shared = cell_n[cell_id] >= 2
    unit, y, cell_id = unit[shared], y[shared], cell_id[shared]
    r = y - (np.bincount(cell_id, y) / np.bincount(cell_id))[cell_id]
    n_i = np.bincount(unit, minlength=data.n_subjects)
    keep = n_i[unit] >= 2
    unit, r = unit[keep], r[keep]
    n_i = np.bincount(unit, minlength=data.n_subjects)
    groups = np.flatnonzero(n_i)
    if len(groups) < PILOT_MIN_SUBJECTS:
        return None
    n = n_i[groups].astype(float)
    means = np.bincount(unit, r, minlength=data.n_subjects)[groups] / n
    grand = r.mean()
    msw = float(((r - (np.bincount(unit, r, minlength=data.n_subjects) / np.maximum(n_i, 1))[unit]) ** 2).sum()
                / (len(r) - len(groups)))
    msb = float((n * (means - grand) ** 2).sum() / (len(groups) - 1))
    n0 = (n.sum() - (n**2).sum() / n.sum()) / (len(groups) - 1)
    between = float(np.sqrt(max(msb - msw, 0.0) / n0))
    per = data.obs_per_subject(level)
    return Spread(between, float(np.sqrt(msw / max(per.mean(), 1.0))), "data")


def cohorts_pinned(data: IndividualData, level: str) -> bool:
    """Whether the data pin a level's cohort means: the typical SD of a cohort's mean of its subjects'
    means, sqrt(between^2 + noise_of_mean^2) / sqrt(n_subjects), is below :data:`COHORT_PINNED_RATIO` times
    the typical between-cohort SD 0.15 (the priors' values). Serum RANKL once per subject in 167-subject
    cohorts: 0.048, pinned; in 33-subject cohorts 0.11, not."""
    per = data.obs_per_subject(level)
    measured = per > 0
    if not measured.any():
        return False
    n_c = np.bincount(data.cohort_of[measured], minlength=len(data.cohorts))
    s = prior_spread(level, float(per[measured].mean()))
    noise = np.sqrt(s.between**2 + s.noise_of_mean**2) / np.sqrt(max(float(n_c.min()), 1.0))
    return bool(noise < COHORT_PINNED_RATIO * _prior_mean(PRIORS["tau_cohort"]))


def integrates_intercepts(data: IndividualData, cfg) -> bool:  # noqa: ANN001 - a ModelConfig
    """Whether the model built from ``cfg`` integrates subject intercepts out (``intercepts="marginal"``;
    not with held-out subjects, whose intercepts stay sampled)."""
    return cfg.intercepts == "marginal" and not np.isin(np.asarray(data.subjects),
                                                        list(cfg.holdout_subjects)).any()


def censored_levels(data: IndividualData) -> set[str]:
    """Levels with a censored observation (a marker below its LOQ): their intercepts are always sampled."""
    m = data.markers
    return {data.levels[k] for k in np.unique(m.level[m.censored.astype(bool)])} if len(m) else set()


def level_layout(data: IndividualData, cfg) -> dict[str, tuple[str, str]]:  # noqa: ANN001 - a ModelConfig
    """How each level's cohort means and subject intercepts are sampled: level -> (cohort form, subject form).

    Cohort form: ``"pooled"`` (no cohort effects, or one cohort), ``"direct"`` (mean of the cohort means and
    zero-sum deviations, ``models.individual._hierarchical_levels``) for levels with at least
    :data:`CENTRED_MIN_OBS` observations per subject on average or cohorts large enough to pin their means
    (:func:`cohorts_pinned`), else ``"offset"`` (non-centred, mu + tau z). At 500 subjects the offset form
    of serum RANKL/OPG (one visit) mixed slowest of all parameters (bulk ESS 97-172 in 600 draws).
    In a model with the subject intercepts integrated out (``ModelConfig.intercepts="marginal"``), a level
    that keeps sampled intercepts (:func:`censored_levels`) gets direct cohort means only where
    :func:`cohorts_pinned`: CTX of the 100-subject recovery cohort (33 subjects per cohort) had 9-17 divergent
    transitions in 4 x 2000 draws with direct cohort means, all in the (tau_cohort, cohort deviation) funnel
    (nutpie's ``store_divergences``), and none as offsets.
    Subject form: ``"none"`` with at most one observation per subject (not separable from the residual),
    ``"direct"`` (centred) when subjects have :data:`SUBJECT_MIN_OBS` observations on average and the noise
    of a subject's mean is below :data:`PINNED_RATIO` times the between-subject SD (the data pin each
    intercept), else ``"offset"``. Both SDs come from :func:`pilot_spread` where the design allows it,
    otherwise from the priors (serum RANKL at three visits: noise 0.48 / sqrt(3) = 0.28 against a typical 0.40
    between subjects is an offset).
    """
    hierarchical = cfg.cohort_effects == "hierarchical" and len(data.cohorts) > 1
    kept = censored_levels(data) if integrates_intercepts(data, cfg) else set()
    out = {}
    for lv in data.levels:
        per = data.obs_per_subject(lv)
        if not hierarchical:
            cohort = "pooled"
        elif cohorts_pinned(data, lv):
            cohort = "direct"
        else:
            cohort = "direct" if per.mean() >= CENTRED_MIN_OBS and lv not in kept else "offset"
        if per.max() <= 1:
            subject = "none"
        elif per.mean() < SUBJECT_MIN_OBS:
            subject = "offset"
        else:
            s = pilot_spread(data, lv) or prior_spread(lv, per.mean())
            subject = "direct" if s.noise_of_mean < PINNED_RATIO * s.between else "offset"
        out[lv] = (cohort, subject)
    return out
