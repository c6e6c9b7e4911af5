"""Gaussian subject intercepts integrated out of the likelihood (exactly), and drawn back afterwards.

For a subject i and level v whose n observations are all uncensored Gaussian,
y_j = a + f_j + e_j with a ~ N(c, tau^2) and e_j ~ N(0, sigma^2) gives residuals r_j = y_j - c - f_j that
are jointly N(0, sigma^2 I + tau^2 11'), with log-density (S1 = sum r_j, S2 = sum r_j^2)

    -n/2 log(2 pi) - (n - 1) log sigma - 1/2 log(sigma^2 + n tau^2) - S2 / (2 sigma^2)
        + tau^2 S1^2 / (2 sigma^2 (sigma^2 + n tau^2))

and a | y ~ N(c + tau^2 S1 / (sigma^2 + n tau^2), sigma^2 tau^2 / (sigma^2 + n tau^2)).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xarray as xr


POSTHOC_VARS: tuple[str, ...] = ("marginal_resid_sum", "cohort_level_mean")
"""Deterministics that drawing the intercepts back needs, computed once after sampling (PyMC's
``compute_deterministics``, 12 s for 1,000 draws at 500 subjects) rather than in nutpie's trace, where the
residual sums cost one more pass through the physiology per draw while the sampler waits."""


@dataclass(frozen=True)
class Groups:
    """Observation rows grouped by (subject, level): dense group id per row and the group's subject/level."""

    row_group: np.ndarray  # (n_rows,) group index
    unit: np.ndarray  # (G,) subject index
    level: np.ndarray  # (G,) level index
    n: np.ndarray  # (G,) observations per group

    @classmethod
    def of(cls, unit: np.ndarray, level: np.ndarray, n_levels: int) -> Groups:
        key = np.asarray(unit) * n_levels + np.asarray(level)
        uniq, inv = np.unique(key, return_inverse=True)
        return cls(inv.reshape(-1), uniq // n_levels, uniq % n_levels, np.bincount(inv.reshape(-1)))


def segment_sums(x, groups: Groups):  # noqa: ANN001, ANN201
    """Sum of ``x`` (rows) per group, as differences of a cumulative sum over rows sorted by group.

    Gathers and a cumsum only: a scatter-add into zeros sent PyTensor's canonicalize rewrites into a loop
    that did not finish in minutes at 20 subjects.
    """
    import pytensor.tensor as pt

    order = np.argsort(groups.row_group, kind="stable")
    ends = np.cumsum(groups.n)
    cs = pt.concatenate([pt.zeros((1,)), pt.cumsum(x[order])])
    return cs[ends] - cs[ends - groups.n]


def marginal_loglik(r, groups: Groups, sigma, tau):  # noqa: ANN001, ANN201
    """Per-group log-density of residuals ``r`` (rows) with the intercept integrated out (PyTensor).

    ``sigma`` and ``tau`` are per group (G,).
    """
    import pytensor.tensor as pt

    s1, s2 = segment_sums(r, groups), segment_sums(r**2, groups)
    n = groups.n.astype(float)
    v = sigma**2 + n * tau**2
    return (-0.5 * n * np.log(2 * np.pi) - (n - 1) * pt.log(sigma) - 0.5 * pt.log(v) - s2 / (2 * sigma**2)
            + tau**2 * s1**2 / (2 * sigma**2 * v))


def marginal_loglik_rows(r, groups: Groups, sigma_rows, tau_rows):  # noqa: ANN001, ANN201
    """:func:`marginal_loglik` spread evenly over each group's rows (sums to the same joint log-density).

    ``sigma_rows`` and ``tau_rows`` are per row (constant within a group; each group's first row is used).
    """
    first = np.cumsum(groups.n) - groups.n  # first row of each group in row order sorted by group
    order = np.argsort(groups.row_group, kind="stable")
    lp = marginal_loglik(r, groups, sigma_rows[order[first]], tau_rows[order[first]])
    return (lp / groups.n)[groups.row_group]


def complete_intercepts(posterior: xr.Dataset, groups: Groups, forms: dict[str, str], cohort_of: np.ndarray,
                        seed: int) -> xr.Dataset:
    """Posterior with each integrated-out level's intercepts drawn back from a | theta, y.

    ``posterior`` holds ``marginal_resid_sum`` (S1 per group), ``cohort_level_mean`` (cohort, level),
    ``sigma_level`` and ``tau_subject``; ``forms`` maps each integrated level to its subject form in
    ``models.layout.level_layout`` ("direct": a_<level> is written, "offset": z_<level> = (a - c) / tau).
    Subjects without observations of a level get a draw from its prior N(c, tau). Returns a new dataset
    without the two helper variables.
    """
    rng = np.random.default_rng([int(seed), 0x6D61726731])  # own stream, reproducible from the fit's seed
    post = posterior
    levels = list(post["sigma_level"].coords["level"].values)
    n_subjects = len(cohort_of)
    s1 = post["marginal_resid_sum"].values  # (chain, draw, G)
    out = post.drop_vars(["marginal_resid_sum", "cohort_level_mean"])
    subjects = post.coords["subject"].values if "subject" in post.coords else np.arange(n_subjects)
    for lv, form in forms.items():
        k = levels.index(lv)
        sig = post["sigma_level"].values[..., k, None]
        tau = post["tau_subject"].values[..., k, None]
        sel = np.flatnonzero(groups.level == k)
        n = np.zeros(n_subjects)
        n[groups.unit[sel]] = groups.n[sel]
        s = np.zeros(s1.shape[:2] + (n_subjects,))
        s[..., groups.unit[sel]] = s1[..., sel]
        v = sig**2 + n * tau**2
        offset = tau**2 * s / v + np.sqrt(sig**2 * tau**2 / v) * rng.standard_normal(s.shape)
        if form == "offset":
            values, name = offset / tau, f"z_{lv}"
        else:
            values, name = post["cohort_level_mean"].values[..., cohort_of, k] + offset, f"a_{lv}"
        out[name] = xr.DataArray(values, dims=("chain", "draw", "subject"),
                                 coords={"chain": post.chain, "draw": post.draw, "subject": subjects})
    return out
