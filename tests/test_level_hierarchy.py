"""The individual model's cohort-level hierarchy is sampled as (mean of cohort means, zero-sum deviations,
non-centred mu | mean) but is the same distribution as mu ~ N(m0, s0), c_k ~ N(mu, tau)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from bonebayes.datasets.synthetic import SyntheticDesign, simulate_cohort
from bonebayes.models.individual import IndividualModel, level_layout
from bonebayes.models.priors import PRIORS


@pytest.fixture(scope="module")
def model():
    c = simulate_cohort(SyntheticDesign(n_subjects=12, n_cohorts=3), seed=3)
    return IndividualModel(c.observations, c.exposures)


def _prior(lv: str):
    return PRIORS[f"mu_{'bmd' if lv.startswith('bmd_') else lv}"]


def test_density_equals_the_centred_hierarchy_up_to_the_jacobian(model) -> None:
    """At random points, log p_new(z, c_bar, dev) - log p_old(mu, c) - sum log(d mu / d z) is one constant."""
    m = model.model
    data = model.data
    centred = [lv for lv, (cohort, _) in level_layout(data, model.config).items() if cohort == "direct"]
    assert centred and len(centred) < len(data.levels)  # both kinds of level are exercised
    terms = ["z_mu_level"] + [f"cohort_{p}_{lv}" for lv in centred for p in ("mean", "dev")]
    new_fn = m.compile_fn([m.logp(vars=[m[t] for t in terms], sum=True)], inputs=m.value_vars,
                          on_unused_input="ignore", point_fn=True)
    names = ["mu_level", "tau_cohort", *[f"cohort_{lv}" for lv in centred]]
    det = m.compile_fn(m.replace_rvs_by_values([m[n] for n in names]), inputs=m.value_vars,
                       on_unused_input="ignore", point_fn=True)
    rng = np.random.default_rng(0)
    ip = m.initial_point()
    K = len(data.cohorts)
    diffs = []
    for _ in range(5):
        point = {k: np.asarray(v) + rng.normal(0, 0.5, np.shape(v)) for k, v in ip.items()}
        vals = dict(zip(names, det(point)))
        old, log_jac = 0.0, 0.0
        for k, lv in enumerate(data.levels):
            p = _prior(lv)
            mu, tau = vals["mu_level"][k], vals["tau_cohort"][k]
            old += stats.norm.logpdf(mu, p.a, p.b)
            if lv in centred:
                old += stats.norm.logpdf(vals[f"cohort_{lv}"], mu, tau).sum()
                v = tau**2 / K
                log_jac += np.log(p.b * np.sqrt(v / (p.b**2 + v)))
            else:
                log_jac += np.log(p.b)  # mu = m0 + s0 z
        diffs.append(float(new_fn(point)[0]) - old - log_jac)
    assert np.ptp(diffs) < 1e-8, diffs


def test_forward_draws_match_the_generative_hierarchy(model) -> None:
    import pymc as pm

    lv = "ctx"
    with model.model:
        pr = pm.sample_prior_predictive(draws=4000, var_names=["mu_level", f"cohort_{lv}", "tau_cohort"],
                                        random_seed=1)
    k = list(model.data.levels).index(lv)
    mu = pr.prior["mu_level"].values[0, :, k]
    z = (pr.prior[f"cohort_{lv}"].values[0] - mu[:, None]) / pr.prior["tau_cohort"].values[0, :, [k]].T
    p = _prior(lv)
    assert abs(mu.mean() - p.a) < 0.05 and abs(mu.std() - p.b) < 0.05
    assert abs(z.mean()) < 0.05 and abs(z.std() - 1) < 0.05
    assert abs(np.corrcoef(z[:, 0], z[:, 1])[0, 1]) < 0.05


def test_layout_forms_and_free_variables(model) -> None:
    """Whatever the layout decides is what the model samples: centred subject intercepts are free ``a_*``,
    non-centred ones ``z_*``; one observation per subject: no intercept; the pooled variant has no cohort
    hierarchy. (Where the layout puts each subject intercept is tested in tests/test_layout.py.)"""
    from bonebayes.models.individual import ModelConfig

    layout = level_layout(model.data, model.config)
    assert layout["ctx"][0] == "direct" and layout["rankl"][0] == "offset"  # 7 vs 3 visits per subject
    free = {v.name for v in model.model.free_RVs}
    for lv, (cohort, subject) in layout.items():
        assert (f"a_{lv}" in free) == (subject == "direct") and (f"z_{lv}" in free) == (subject == "offset")
        assert (f"cohort_mean_{lv}" in free) == (cohort == "direct")
        assert (f"z_cohort_{lv}" in free) == (cohort == "offset")
    assert not {"cohort_ctx", "mu_level"} & free
    pooled = level_layout(model.data, ModelConfig(cohort_effects="pooled"))
    assert {c for c, _ in pooled.values()} == {"pooled"}
    c = simulate_cohort(SyntheticDesign(n_subjects=6, n_cohorts=2, serum_visits=(0,)), seed=1)
    one = IndividualModel(c.observations, c.exposures)
    assert level_layout(one.data, one.config)["rankl"][1] == "none"
