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
    full = IndividualModel(cohort.observations, cohort.exposures, {"intercepts": "sampled"})
    collapsed = IndividualModel(cohort.observations, cohort.exposures, {"intercepts": "marginal"})
    return full, collapsed


def test_collapsed_model_drops_only_the_integrated_intercepts(models):
    """The model of record (every intercept a parameter) and the sampled model share their layout."""
    full, collapsed = models
    assert full.sampling_model is full.model
    f = {v.name for v in collapsed.model.free_RVs}
    c = {v.name for v in collapsed.sampling_model.free_RVs}
    dropped = f - c
    assert c < f and dropped and all(n.startswith(("a_", "z_")) and n != "z_kM" for n in dropped)


def test_collapsed_logp_is_the_integral_over_the_intercepts(models):
    """log p(y, theta) of the collapsed model = log of the integral of the full model over the intercepts.

    The full log-density is quadratic and separable in the intercepts (Gaussian prior, Gaussian likelihood),
    so the integral is exact from the gradient at two points: h = g(0) - g(1), maximum at b / h.
    """
    _, collapsed = models
    fm, cm = collapsed.model, collapsed.sampling_model
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


def test_intercepts_drawn_back_from_their_conjugate_posterior():
    """complete_intercepts draws a | theta, y: mean and SD against the textbook normal-normal update."""
    import xarray as xr

    from bonebayes.models.marginal import complete_intercepts

    g = _groups()  # subjects 0-3, levels 0-1; subject 2 has no level-0 rows, subject 3 none at level 0 either
    r = np.random.default_rng(4).normal(size=len(g.row_group))  # y - f - c per row
    sig, tau, c = np.array([0.3, 0.05]), np.array([0.7, 0.2]), np.array([[1.0, -2.0], [0.5, 3.0]])
    cohort_of = np.array([0, 1, 1, 0])
    D = 40_000
    rep = lambda x: np.broadcast_to(x, (1, D) + np.shape(x))  # noqa: E731
    post = xr.Dataset({
        "marginal_resid_sum": (("chain", "draw", "marginal_group"), rep(np.bincount(g.row_group, r))),
        "cohort_level_mean": (("chain", "draw", "cohort", "level"), rep(c)),
        "sigma_level": (("chain", "draw", "level"), rep(sig)),
        "tau_subject": (("chain", "draw", "level"), rep(tau)),
    }, coords={"chain": [0], "draw": np.arange(D), "level": ["ctx", "bmd_hip"], "subject": list("abcd")})
    out = complete_intercepts(post, g, {"ctx": "direct", "bmd_hip": "offset"}, cohort_of, seed=1)
    assert "marginal_resid_sum" not in out and "cohort_level_mean" not in out
    a, z = out["a_ctx"].values[0], out["z_bmd_hip"].values[0]
    for k, draws, scale in ((0, a, 1.0), (1, z, None)):
        for i in range(4):
            rows = (g.unit[g.row_group] == i) & (g.level[g.row_group] == k)
            prec = 1 / tau[k] ** 2 + rows.sum() / sig[k] ** 2
            mean, sd = r[rows].sum() / sig[k] ** 2 / prec, np.sqrt(1 / prec)
            if scale:  # a = c + offset
                mean = mean + c[cohort_of[i], k]
            else:  # z = offset / tau
                mean, sd = mean / tau[k], sd / tau[k]
            assert abs(draws[:, i].mean() - mean) < 5 * sd / np.sqrt(D)
            assert abs(draws[:, i].std() / sd - 1) < 0.02
    again = complete_intercepts(post, g, {"ctx": "direct", "bmd_hip": "offset"}, cohort_of, seed=1)
    np.testing.assert_array_equal(again["a_ctx"].values, out["a_ctx"].values)


def test_mock_fit_of_the_collapsed_model_has_the_full_models_parameters(models):
    _, collapsed = models
    fit = collapsed.fit(draws=20, tune=0, chains=2, seed=5, sampler="mock", progress=False)
    post = fit.idata.posterior
    assert {v.name for v in collapsed.model.free_RVs} <= set(post.data_vars)
    assert "marginal_resid_sum" not in post and "cohort_level_mean" not in post
    assert all(np.isfinite(post[v]).all() for v in post.data_vars if v.startswith(("a_", "z_")))
    assert fit.provenance["config"]["intercepts"] == "marginal"


def test_held_out_subjects_keep_sampled_intercepts(models):
    full, _ = models
    subject = full.data.subjects[0]
    cfg = {"intercepts": "marginal", "holdout_subjects": (subject,)}
    m = IndividualModel(full.observations, full.exposures, cfg)
    assert {v.name for v in m.sampling_model.free_RVs} == {v.name for v in m.model.free_RVs}
