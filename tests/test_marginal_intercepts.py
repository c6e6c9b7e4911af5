"""Subject intercepts integrated out (ModelConfig.intercepts="marginal") give exactly the same posterior."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import multivariate_normal

from bonebayes.datasets.synthetic import SyntheticDesign, simulate_cohort
from bonebayes.models.individual import IndividualModel
from bonebayes.models.marginal import Groups, marginal_loglik, marginal_loglik_rows, segment_sums


def _groups():
    unit = np.array([3, 0, 0, 1, 1, 2, 0, 3, 1])
    level = np.array([1, 0, 1, 0, 0, 1, 0, 1, 0])
    return Groups.of(unit, level, 2)


def test_marginal_loglik_is_the_multivariate_normal_density():
    g = _groups()
    r = np.random.default_rng(0).normal(size=len(g.row_group))
    sig, tau = np.array([0.3, 0.05]), np.array([0.7, 0.2])
    got = marginal_loglik(r, g, sig[g.level], tau[g.level]).eval()
    for k in range(len(g.n)):
        rows = g.row_group == k
        n, s, t = rows.sum(), sig[g.level[k]], tau[g.level[k]]
        want = multivariate_normal(np.zeros(n), s**2 * np.eye(n) + t**2).logpdf(r[rows])
        np.testing.assert_allclose(got[k], want, rtol=1e-12)
    per_row = marginal_loglik_rows(r, g, sig[g.level][g.row_group], tau[g.level][g.row_group]).eval()
    np.testing.assert_allclose(per_row.sum(), got.sum(), rtol=1e-12)


def test_segment_sums_match_bincount():
    g = _groups()
    x = np.random.default_rng(1).normal(size=len(g.row_group))
    np.testing.assert_allclose(segment_sums(x, g).eval(), np.bincount(g.row_group, x), atol=1e-14)


@pytest.fixture(scope="module")
def models():
    cohort = simulate_cohort(SyntheticDesign(n_subjects=10, n_cohorts=2), seed=7)
    full = IndividualModel(cohort.observations, cohort.exposures)
    collapsed = IndividualModel(cohort.observations, cohort.exposures, {"intercepts": "marginal"})
    return full, collapsed


def test_collapsed_model_drops_only_the_integrated_intercepts(models):
    full, collapsed = models
    f = {v.name for v in full.sampling_model.free_RVs}
    c = {v.name for v in collapsed.sampling_model.free_RVs}
    dropped = f - c
    assert c < f and dropped and all(n.startswith(("a_", "z_")) and n != "z_kM" for n in dropped)
    assert {v.name for v in collapsed.model.free_RVs} == f  # the full model stays the model of record


def test_collapsed_logp_is_the_integral_over_the_intercepts(models):
    """log p(y, theta) of the collapsed model = log of the integral of the full model over the intercepts.

    The full log-density is quadratic and separable in the intercepts (Gaussian prior, Gaussian likelihood),
    so the integral is exact from the gradient at two points: h = g(0) - g(1), maximum at b / h.
    """
    full, collapsed = models
    fm, cm = full.sampling_model, collapsed.sampling_model
    dropped = sorted({v.name for v in fm.free_RVs} - {v.name for v in cm.free_RVs})
    rng = np.random.default_rng(3)
    point = {k: v + 0.1 * rng.normal(size=np.shape(v)) for k, v in fm.initial_point().items()}
    lp_f, dlp_f = fm.compile_logp(), fm.compile_dlogp(vars=[fm[n] for n in dropped])
    sizes = [np.size(point[n]) for n in dropped]

    def at(x):
        p = dict(point)
        for n, part in zip(dropped, np.split(x, np.cumsum(sizes)[:-1])):
            p[n] = part
        return p

    zero, one = np.zeros(sum(sizes)), np.ones(sum(sizes))
    b = dlp_f(at(zero))
    h = b - dlp_f(at(one))
    assert np.all(h > 0)
    integral = lp_f(at(zero)) + np.sum(b**2 / (2 * h)) + 0.5 * np.sum(np.log(2 * np.pi / h))
    collapsed_point = {k: v for k, v in point.items() if k in {x.name for x in cm.value_vars}}
    np.testing.assert_allclose(cm.compile_logp()(collapsed_point), integral, rtol=1e-10)
