"""Prior and posterior predictive checks: coverage, LOO-PIT, VPC with censoring, implausible prior draws."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bonebayes.checks.predictive import (
    censor,
    coverage_table,
    implausible_draws,
    loo_pit,
    posterior_predictive_check,
    prior_predictive_check,
    uniformity_pvalue,
    vpc_table,
)
from bonebayes.datasets.synthetic import SyntheticDesign, simulate_cohort
from bonebayes.models.individual import IndividualModel


@pytest.fixture(autouse=True, scope="module")
def _fast_compile():
    """Mock fits and predictive draws compile large graphs once each: skip PyTensor's C compilation here."""
    import pytensor

    with pytensor.config.change_flags(mode="FAST_COMPILE"):
        yield


def _table(n: int, **cols) -> pd.DataFrame:
    base = {"obs": "obs_bmd", "group": [f"s{i % 5}" for i in range(n)], "stratum": "a", "variable": "x",
            "time_months": np.arange(n) % 4 * 6.0, "observed": 1.0, "censored": False, "loq": np.nan,
            "row_class": "bmd", "fit": True}
    base.update(cols)
    return pd.DataFrame(base)


def test_coverage_is_nominal_for_calibrated_replicates() -> None:
    rng = np.random.default_rng(0)
    n = 4000
    reps = rng.normal(size=(400, n))
    obs = rng.normal(size=n)
    cov = coverage_table(_table(n, observed=obs), reps)
    for lev in (50, 80, 90, 95):
        assert cov.loc["all", f"coverage_{lev}"] == pytest.approx(lev / 100, abs=0.03)
    # over-dispersed predictions over-cover
    cov = coverage_table(_table(n, observed=obs), 3 * reps)
    assert cov.loc["all", "coverage_50"] > 0.85
    # censored observations are excluded and counted
    cens = np.zeros(n, bool)
    cens[:10] = True
    cov = coverage_table(_table(n, observed=obs, censored=cens), reps)
    assert cov.loc["all", "n"] == n - 10 and cov.loc["all", "n_censored"] == 10


def test_loo_pit_uniform_when_calibrated_and_not_when_biased() -> None:
    rng = np.random.default_rng(1)
    S, n = 500, 300
    reps = rng.normal(size=(S, n))
    ll = -0.5 * reps[::-1] ** 2 * 0.0 + rng.normal(0, 1e-3, (S, n))  # near-equal weights
    pit = loo_pit(ll, reps, rng.normal(size=n))
    assert uniformity_pvalue(pit) > 0.01
    pit_biased = loo_pit(ll, reps, rng.normal(1.0, 1.0, n))
    assert uniformity_pvalue(pit_biased) < 1e-6


def test_vpc_counts_replicates_below_the_loq() -> None:
    n = 40
    loq = 0.5
    obs = np.where(np.arange(n) < 10, loq, 1.0)
    t = _table(n, variable="ctx", observed=obs, censored=np.arange(n) < 10,
               loq=np.where(np.arange(n) < 10, loq, np.nan), time_months=np.zeros(n), obs="obs_markers")
    reps = np.tile(np.r_[np.full(10, 0.1), np.full(30, 1.0)], (50, 1))
    c, below = censor(reps, np.full(n, loq))
    assert below[:, :10].all() and (c[:, :10] == loq).all()
    vpc = vpc_table(t, reps)
    assert len(vpc) == 1
    assert vpc["obs_frac_blq"].iloc[0] == pytest.approx(0.25)
    assert vpc["pred_frac_blq"].iloc[0] == pytest.approx(0.25)
    assert vpc["pred_q10"].iloc[0] == pytest.approx(loq) and vpc["obs_q90"].iloc[0] == pytest.approx(1.0)


def test_implausible_draws_flag_large_bmd_changes() -> None:
    t = _table(2, group=["s1", "s1"], time_months=[0.0, 12.0])
    reps = np.array([[1.0, 1.1], [1.0, 1.8], [1.0, 0.4]])  # +10%, +80%, -60% in a year
    summary, bad = implausible_draws(t, reps)
    assert bad[:, 1].tolist() == [False, True, True] and not bad[:, 0].any()
    assert summary.loc["all", "frac_draws_any_implausible"] == pytest.approx(2 / 3)


@pytest.fixture(scope="module")
def tiny_model():
    coh = simulate_cohort(SyntheticDesign(n_subjects=6, n_cohorts=2), seed=4)
    return IndividualModel(coh.observations, coh.exposures)


def test_prior_and_posterior_checks_end_to_end(tiny_model, tmp_path) -> None:
    prior = prior_predictive_check(tiny_model, draws=40, seed=1)
    assert set(prior.summary.index) >= {"all", "bmd", "marker"}
    assert 0.0 <= prior.numbers["frac_draws_any_implausible"] <= 1.0
    assert len(prior.table) == len(tiny_model.observations)
    fit = tiny_model.fit(draws=20, chains=2, sampler="mock")
    post = posterior_predictive_check(tiny_model, fit.idata, seed=1)
    assert {"coverage_50", "coverage_95"} <= set(post.summary.columns)
    assert post.summary.loc["all", "coverage_50"] <= post.summary.loc["all", "coverage_95"]
    vpc = post.extra["vpc"]
    assert {"obs_q50", "pred_q50_lo", "pred_frac_blq"} <= set(vpc.columns)
    assert set(vpc["stratum"]) == set(tiny_model.observations["arm"])
    assert np.isfinite(post.table["loo_pit"]).sum() > 0
    paths = post.save(str(tmp_path)) + prior.save(str(tmp_path))
    assert all(p.endswith((".csv", ".png", ".json")) for p in paths)
    assert (tmp_path / "posterior_vpc.png").stat().st_size > 1000
