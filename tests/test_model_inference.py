"""Model building, inference plumbing (mock sampling), save/load, and the diagnostics gate."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bonebayes.checks.recovery import recovery_table, truth_values
from bonebayes.datasets.synthetic import SyntheticDesign, simulate_cohort
from bonebayes.fit import Fit
from bonebayes.inference import DiagnosticsWarning, diagnose, load_fit, sample
from bonebayes.models.individual import IndividualModel, ModelConfig
from bonebayes.models.priors import PRIORS
from bonebayes.physiology.backend import NUMPY
from bonebayes.physiology.signalling import DrugEffects
from bonebayes.physiology.simulate import PhysiologyParams, simulate
from bonebayes.physiology.turnover import TurnoverRates


@pytest.fixture(scope="module")
def cohort():
    return simulate_cohort(SyntheticDesign(n_subjects=18, n_cohorts=3), seed=5)


@pytest.fixture(scope="module")
def model(cohort):
    return IndividualModel(cohort.observations, cohort.exposures)


def test_model_has_expected_parameters(model):
    names = model.population_vars()
    for v in ("k_C", "k_B", "k_M", "lam", "gamma", "e_form", "emax_res", "ec50_res", "eref_ana", "ec50_ana",
              "mu_level", "tau_subject", "tau_cohort", "tau_kM"):
        assert v in names
    assert model.model.coords["hormone"] == ("estradiol",)
    assert set(model.model.coords["antiresorptive"]) == {"alendronate", "denosumab"}


def _truth_point(model, cohort) -> dict:
    """The generating values of every free parameter, on the sampler's (unconstrained) scale."""
    t, m = cohort.truth, model.model
    eff = cohort.subject_effects.loc[model.data.subjects]
    levels = list(m.coords["level"])
    point = dict(m.initial_point())
    point.update({
        "k_C_log__": np.log(t["k_C"]), "k_B_log__": np.log(t["k_B"]), "k_M_log__": np.log(t["k_M"]),
        "lam_log__": np.log(t["lam"]), "gamma": np.array([t["gamma"]["estradiol"]]),
        "e_form": np.array([t["e_form"]["estradiol"]]), "g_rankl": np.array([t["g_rankl"]["estradiol"]]),
        "g_opg": np.array([t["g_opg"]["estradiol"]]),
        "emax_res_logodds__": np.log(t["emax_res"] / (1 - t["emax_res"])),
        "ec50_res_log__": np.log(t["ec50_res"]), "eref_ana_log__": np.log(t["eref_ana"]),
        "ec50_ana_log__": np.log(t["ec50_ana"]),
        "tau_subject_log__": np.log(t["tau_subject"]), "tau_cohort_log__": np.log(t["tau_cohort"]),
        "tau_kM_log__": np.log(t["tau_kM"]),
        "z_kM": np.log(eff["kM_multiplier"].to_numpy()) / t["tau_kM"],
    })
    # the cohort hierarchy as sampled (models.individual._hierarchical_levels): mean of the cohort means,
    # zero-sum deviations (transformed by PyMC below) and z_mu_level standardising mu given that mean
    K = len(model.data.cohorts)
    z_mu, devs = np.zeros(len(levels)), {}
    for k, lv in enumerate(levels):
        prior = PRIORS[f"mu_{'bmd' if lv.startswith('bmd_') else lv}"]
        mu, tau, c = t["mu_level"][k], t["tau_cohort"][k], t["mu_level"][k] + t["cohort_effects"][:, k]
        if f"cohort_mean_{lv}" in point:
            point[f"cohort_mean_{lv}"] = c.mean()
            devs[f"cohort_dev_{lv}"] = c - c.mean()
            v = tau**2 / K
            post_mean = (prior.a * v + c.mean() * prior.b**2) / (prior.b**2 + v)
            z_mu[k] = (mu - post_mean) / (prior.b * np.sqrt(v / (prior.b**2 + v)))
        else:
            z_mu[k] = (mu - prior.a) / prior.b
            point[f"z_cohort_{lv}"] = t["cohort_effects"][:, k] / tau
        point[f"sigma_{lv}_log__"] = np.log(t["sigma_level"][k])
        intercept = eff[f"intercept_{lv}"].to_numpy()
        if f"a_{lv}" in point:  # centred subject intercepts (models.individual.level_layout)
            point[f"a_{lv}"] = intercept
        else:  # non-centred: z = (intercept - cohort mean) / tau_subject
            point[f"z_{lv}"] = (intercept - c[model.data.cohort_of]) / t["tau_subject"][k]
    point["z_mu_level"] = z_mu
    from pymc.initial_point import make_initial_point_fn

    transformed = make_initial_point_fn(model=m, overrides=devs, jitter_rvs=set(), return_transformed=True)(0)
    point.update({k: v for k, v in transformed.items() if k.startswith("cohort_dev_")})
    assert set(point) == set(m.initial_point())
    return point


def test_logp_at_truth_beats_perturbed_truth(cohort, model):
    """At the generating values the log-density is higher than with any one rate moved away from them:
    a check that data, physics and likelihood are wired consistently (same physics as the generator)."""
    logp = model.model.compile_logp()
    truth = _truth_point(model, cohort)
    base = float(logp(truth))
    for name, factor in (("k_C_log__", 2.0), ("k_B_log__", 2.0), ("k_M_log__", 1.5), ("lam_log__", 2.0),
                         ("ec50_res_log__", 3.0)):
        worse = dict(truth)
        worse[name] = truth[name] + np.log(factor)
        assert base > float(logp(worse)) + 1.0, name
    worse = dict(truth)
    worse["gamma"] = truth["gamma"] + 0.2
    assert base > float(logp(worse)) + 1.0


def test_model_matches_numpy_simulation(cohort, model):
    """The PyMC graph and the NumPy path share one physics: same states for the same parameters."""
    import pytensor

    d = model.data
    sched = d.schedule.restrict_hormones(("estradiol",))
    truth = cohort.truth
    params = PhysiologyParams(
        np.array([-0.3]), np.array([0.03]),
        DrugEffects(np.asarray(truth["emax_res"]), np.asarray(truth["ec50_res"])),
        DrugEffects(np.asarray(truth["emax_ana"]), np.asarray(truth["ec50_ana"])),
        TurnoverRates(np.float64(1.0), np.float64(0.35), np.tile([0.015, 0.009], (d.n_subjects, 1)),
                      np.array([0.008, 0.008])))
    traj, _ = simulate(sched, params, 2, NUMPY)
    from bonebayes.physiology.backend import get_ops

    ops = get_ops("pytensor")
    import pytensor.tensor as pt

    sym = PhysiologyParams(pt.as_tensor(params.gamma), pt.as_tensor(params.e_form),
                           DrugEffects(*(pt.as_tensor(a) for a in params.res_effects)),
                           DrugEffects(*(pt.as_tensor(a) for a in params.ana_effects)),
                           TurnoverRates(*(pt.as_tensor(a) for a in params.rates)))
    straj, _ = simulate(sched, sym, 2, ops)
    f = pytensor.function([], list(straj.state), mode="FAST_COMPILE")
    C, B, m = f()
    np.testing.assert_allclose(C, traj.state.C, rtol=1e-10)
    np.testing.assert_allclose(B, traj.state.B, rtol=1e-10)
    np.testing.assert_allclose(m, traj.state.m, rtol=1e-9, atol=1e-12)


def test_mock_fit_save_load_roundtrip(tmp_path, model):
    fit = model.fit(draws=30, tune=0, chains=2, seed=11, sampler="mock", progress=False)
    path = fit.save(tmp_path / "fit.nc")
    assert path.exists() and not list(tmp_path.glob(".*.tmp"))
    loaded = Fit.load(path)
    assert loaded.seed == 11
    assert loaded.provenance["config"] == ModelConfig().model_dump(mode="json")
    assert loaded.provenance["versions"]["pymc"]
    np.testing.assert_allclose(loaded.idata.posterior["k_C"].values, fit.idata.posterior["k_C"].values)
    rebuilt = loaded.rebuild_model()
    assert rebuilt.data_hash() == model.data_hash()
    assert set(loaded.summary().index) >= {"k_C", "k_B"}


def test_seed_must_be_integer(model):
    with pytest.raises(TypeError, match="integer"):
        sample(model.model, sampler="mock", draws=5, chains=1, seed=1.5)
    with pytest.raises(ValueError, match="unknown sampler"):
        sample(model.model, sampler="stan", draws=5, chains=1, seed=1)


def test_mock_sampling_is_seeded(model):
    a = sample(model.model, sampler="mock", draws=10, chains=2, seed=3, progress=False)
    b = sample(model.model, sampler="mock", draws=10, chains=2, seed=3, progress=False)
    np.testing.assert_array_equal(a.posterior["k_C"].values, b.posterior["k_C"].values)


def test_diagnose_flags_bad_chains(model):
    """Two chains stuck in different places must fail R-hat and warn loudly."""
    idata = sample(model.model, sampler="mock", draws=200, chains=2, seed=1, progress=False)
    idata.posterior["k_C"].values[1] += 5.0
    with pytest.warns(DiagnosticsWarning, match="R-hat"):
        v = diagnose(idata, ["k_C"])
    assert not v.ok and v.rhat_max > 1.5
    assert "k_C" in v.table.index


def test_diagnose_passes_well_mixed_draws(model):
    import arviz as az

    rng = np.random.default_rng(0)
    idata = az.from_dict(posterior={"x": rng.normal(size=(4, 1000))},
                         sample_stats={"diverging": np.zeros((4, 1000), bool),
                                       "energy": rng.normal(size=(4, 1000))})
    v = diagnose(idata, ["x"], warn=False)
    assert v.ok, str(v)


def test_diagnose_counts_divergences():
    import arviz as az

    rng = np.random.default_rng(0)
    div = np.zeros((4, 500), bool)
    div[0, :3] = True
    idata = az.from_dict(posterior={"x": rng.normal(size=(4, 500))},
                         sample_stats={"diverging": div, "energy": rng.normal(size=(4, 500))})
    with pytest.warns(DiagnosticsWarning):
        v = diagnose(idata, ["x"])
    assert v.divergences == 3 and not v.ok


def test_load_rejects_foreign_file(tmp_path):
    import arviz as az

    p = tmp_path / "other.nc"
    az.from_dict(posterior={"x": np.zeros((1, 3))}).to_netcdf(p)
    with pytest.raises(ValueError, match="provenance"):
        load_fit(p)
    with pytest.raises(FileNotFoundError):
        load_fit(tmp_path / "missing.nc")


def test_recovery_table_labels(cohort, model):
    fit = model.fit(draws=20, tune=0, chains=2, seed=2, sampler="mock", progress=False)
    table = recovery_table(fit.idata, cohort.truth, ["lumbar_spine", "total_hip"])
    expected = set(truth_values(cohort.truth, ["lumbar_spine", "total_hip"]))
    assert set(table.index) == expected  # every truth value found a posterior column
    assert {"truth", "mean", "q5", "q95", "covered"} <= set(table.columns)


def test_unused_variables_are_reported(cohort):
    obs = cohort.observations.copy()
    extra = obs.iloc[:2].copy()
    extra["variable"] = "estradiol"
    extra["unit"] = "pg/mL"
    extra["time_months"] = [100.0, 101.0]
    m = IndividualModel(pd.concat([obs, extra], ignore_index=True), cohort.exposures)
    assert m.data.unused == {"estradiol": 2}


def test_a_saved_fit_is_reused_only_by_the_same_parameterisation(tmp_path, model):
    """A fit whose posterior lacks a free variable of today's model (an older layout) is not reused."""
    fit = model.fit(draws=10, tune=0, chains=1, seed=3, sampler="mock", progress=False)
    request = {"seed": 3, "draws": 10, "tune": 0, "chains": 1, "sampler": "mock"}
    assert fit.mismatch(model, request) == [] and fit.reusable_for(model, request)
    assert "seed 3 (configured 4)" in " ".join(fit.mismatch(model, {**request, "seed": 4}))
    free = sorted(v.name for v in model.model.free_RVs)
    older = Fit(idata=fit.idata.copy(), provenance=fit.provenance)
    del older.idata.posterior[free[0]]
    why = older.mismatch(model, request)
    assert len(why) == 1 and "parameterisation" in why[0] and free[0] in why[0]
