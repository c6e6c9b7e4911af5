"""Treatment projections (issue 4): scenarios, the batched physics, bands, contrasts, outputs, CLI, plots."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

from _cli import invoke

from bonebayes.models.priors import E_FORM_MEAN, G_OPG_MEAN, G_RANKL_MEAN, GAMMA_MEAN, PRIORS
from bonebayes.physiology.schedule import Unit, build_schedule
from bonebayes.physiology.signalling import DrugEffects
from bonebayes.physiology.simulate import PhysiologyParams, at_times, simulate
from bonebayes.physiology.turnover import TurnoverRates
from bonebayes.projections import (
    ENDPOINTS,
    ProjectionError,
    Scenario,
    ScenarioError,
    load_scenario,
    point_posterior,
    project,
    shipped_scenarios,
)
from bonebayes.projections.output import render, to_frame, write
from bonebayes.regimens import Dose, population_preset


# --------------------------------------------------------------------------- batched physics
def test_batched_simulation_equals_one_draw_at_a_time() -> None:
    """A draw axis on the parameters gives, draw by draw, exactly the states of scalar-parameter runs."""
    pre = population_preset("postmenopausal", years_since_menopause=20)
    units = [
        Unit("placebo", pre.history),
        Unit(
            "dmab",
            pre.history
            + (Dose(drug="denosumab", dose=60, unit="mg", every_months=6, start_month=0, stop_month=18),),
        ),
        Unit(
            "switch",
            pre.history
            + (
                Dose(drug="teriparatide", dose=20, unit="ug/day", start_month=0, stop_month=18),
                Dose(drug="alendronate", dose=10, unit="mg/day", start_month=18),
            ),
            levels={"thyroid": 2.0},
        ),
    ]
    sched = build_schedule(units, 36.5)
    sched = sched.restrict_hormones(sched.active_hormones())
    H, S, D = len(sched.hormones), 3, 5
    rng = np.random.default_rng(0)
    draws = dict(
        k_C=np.exp(rng.normal(0, 0.3, D)),
        k_B=0.35 * np.exp(rng.normal(0, 0.3, D)),
        k_M=0.015 * np.exp(rng.normal(0, 0.3, (D, S))),
        lam=0.01 * np.exp(rng.normal(0, 0.3, (D, S))),
        gamma=rng.normal(0, 0.3, (D, H)),
        e_form=rng.normal(0, 0.1, (D, H)),
        emax_res=rng.uniform(0.5, 0.9, (D, 2)),
        ec50_res=rng.uniform(0.05, 0.3, (D, 2)),
        emax_ana=rng.uniform(0.2, 0.6, (D, 1)),
        ec50_ana=rng.uniform(0.3, 0.9, (D, 1)),
        kappa=rng.uniform(0, 1, (D, 1)),
    )

    def params(i: int | slice) -> PhysiologyParams:
        v = {k: a[i] for k, a in draws.items()}
        return PhysiologyParams(
            v["gamma"],
            v["e_form"],
            DrugEffects(v["emax_res"], v["ec50_res"]),
            DrugEffects(v["emax_ana"], v["ec50_ana"]),
            TurnoverRates(v["k_C"], v["k_B"], v["k_M"], v["lam"]),
            1.0,
            v["kappa"],
        )

    times = np.array([0.0, 3.0, 12.5, 36.5])
    node, tau = sched.locate(times)
    nn, uu = np.tile(node, 3), np.repeat(np.arange(3), len(times))
    traj, co = simulate(sched, params(slice(None)), S, extra_h=np.tile(tau, 3))
    st = at_times(traj, nn, uu, draws["k_M"], co, sched.n_window)
    assert traj.state.m.shape == (sched.n_window + 1, 3, D, S)
    for i in range(D):
        t1, c1 = simulate(sched, params(i), S, extra_h=np.tile(tau, 3))
        s1 = at_times(t1, nn, uu, draws["k_M"][i], c1, sched.n_window)
        for one, batched in zip(t1.state, traj.state):
            np.testing.assert_allclose(one, batched[:, :, i], rtol=1e-12, atol=1e-14)
        for one, batched in zip(s1, st):
            np.testing.assert_allclose(one, batched[:, i], rtol=1e-12, atol=1e-14)


# --------------------------------------------------------------------------- fixtures
ISSUE_EXAMPLE = """
name = "denosumab vs placebo, postmenopausal osteoporosis"
population = "postmenopausal"        # preset; see below
age = 72                             # optional
years_since_menopause = 20           # optional
baseline_tscore = { lumbar_spine = -2.8, total_hip = -1.9 }   # optional
times_months = [0, 12, 24, 36]
sites = ["lumbar_spine", "total_hip", "femoral_neck"]

[arms.denosumab]
regimen = [ { drug = "denosumab", dose = 60, unit = "mg", every_months = 6, start_month = 0, stop_month = 36 } ]

[arms.placebo]
regimen = []

[[contrasts]]
name = "denosumab_vs_placebo"
arms = ["denosumab", "placebo"]      # first minus second
"""
SITES = ["lumbar_spine", "total_hip", "femoral_neck"]
HORMONES5 = [
    "estradiol",
    "testosterone",
    "pth",
    "glucocorticoid",
    "thyroid",
]  # as the published fit (no igf1)
RES = ["alendronate", "zoledronate", "denosumab"]
COORDS = {
    "site": SITES,
    "hormone": HORMONES5,
    "antiresorptive": RES,
    "anabolic": ["teriparatide"],
    "study": ["S1"],
}
# a fixed parameter point: posterior medians of the published fit (results/fit.nc, 4 x 500 draws, seed 1),
# rounded; constants here so the tests need no fit file and no sampling
FIXED = {
    "k_C": 0.75,
    "k_B": 0.27,
    "k_M": [0.0117, 0.0059, 0.0055],
    "lam": [0.022, 0.012, 0.0068],
    "gamma": [-0.20, -0.38, 0.47, -0.016, 0.40],
    "e_form": [0.075, -0.004, -0.0085, -0.096, -0.049],
    "g_rankl": [0.072, 0.009, 0.30, 0.20, -0.004],
    "g_opg": [-0.16, -0.011, -0.10, -0.15, 0.57],
    "emax_res": [0.68, 0.64, 0.74],
    "ec50_res": [0.075, 0.046, 0.013],
    "emax_ana": [0.83],
    "ec50_ana": [0.48],
    "kappa_ana": [0.78],
    "tau_kM_study": 0.16,
    "tau_drift": 0.17,
    "z_kM_study": [0.0],
    "z_drift_study": [0.0],
}


def prior_posterior(draws: int = 40, seed: int = 0) -> xr.Dataset:
    """Random draws of every physiology parameter from its prior (NumPy, no PyMC), as a 2-chain posterior."""
    rng = np.random.default_rng(seed)
    n = (2, draws // 2)

    def pr(name: str, k: int | None = None, mu: list[float] | None = None) -> np.ndarray:
        if mu is not None:
            return np.stack(
                [PRIORS[name].__class__(PRIORS[name].dist, m, PRIORS[name].b).sample(rng, n) for m in mu],
                axis=-1,
            )
        return PRIORS[name].sample(rng, n if k is None else (*n, k))

    data = {
        "k_C": pr("k_C"),
        "k_B": pr("k_B"),
        "k_M": pr("k_M", 3),
        "lam": pr("lam", 3),
        "gamma": pr("gamma", mu=[GAMMA_MEAN[h] for h in HORMONES5]),
        "e_form": pr("e_form", mu=[E_FORM_MEAN[h] for h in HORMONES5]),
        "g_rankl": pr("g_rankl", mu=[G_RANKL_MEAN[h] for h in HORMONES5]),
        "g_opg": pr("g_opg", mu=[G_OPG_MEAN[h] for h in HORMONES5]),
        "emax_res": pr("emax_res", 3),
        "ec50_res": pr("ec50_res", 3),
        "ec50_ana": pr("ec50_ana", 1),
        "eref_ana": pr("eref_ana", 1),
        "kappa_ana": pr("kappa_ana", 1),
        "tau_kM_study": pr("tau_kM_study"),
        "tau_drift": pr("tau_drift"),
    }
    data["emax_ana"] = data["eref_ana"] * (1 + data["ec50_ana"])
    from bonebayes.projections.engine import PARAMETER_DIMS as dims

    return xr.Dataset(
        {k: (("chain", "draw") + ((dims[k],) if k in dims else ()), v) for k, v in data.items()},
        coords={
            "chain": [0, 1],
            "draw": np.arange(n[1]),
            **{c: COORDS[c] for c in ("site", "hormone", "antiresorptive", "anabolic")},
        },
    )


@pytest.fixture(scope="module")
def posterior() -> xr.Dataset:
    return prior_posterior(40, seed=1)


@pytest.fixture(scope="module")
def fixed() -> xr.Dataset:
    return point_posterior(FIXED, COORDS)


@pytest.fixture(scope="module")
def fit_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved fit (prior draws, labelled as the mock sampler) for the CLI tests."""
    from bonebayes import _arviz
    from bonebayes.fit import Fit

    post = prior_posterior(40, seed=2)
    idata = _arviz.from_dict(
        posterior={k: v.values for k, v in post.data_vars.items()},
        coords={c: list(post[c].values) for c in ("site", "hormone", "antiresorptive", "anabolic")},
        dims={k: [d for d in v.dims if d not in ("chain", "draw")] for k, v in post.data_vars.items()},
    )
    prov = {
        "config": {
            "step_months": 1.0,
            "history_step_months": 1.0,
            "ratio_driver": "latent",
            "anabolic_coupling": True,
        },
        "seed": 0,
        "sampler": "mock",
        "model": "published",
        "draws": 20,
        "chains": 2,
        "created": "test",
    }
    path = tmp_path_factory.mktemp("proj_fit") / "fit.nc"
    Fit(idata=idata, provenance=prov).save(path)
    return path


# --------------------------------------------------------------------------- scenarios
def test_issue_example_parses_exactly() -> None:
    scn = Scenario.from_toml(ISSUE_EXAMPLE, "issue.toml")
    assert scn.name == "denosumab vs placebo, postmenopausal osteoporosis"
    assert (scn.population, scn.age, scn.years_since_menopause) == ("postmenopausal", 72, 20)
    assert scn.baseline_tscore == {"lumbar_spine": -2.8, "total_hip": -1.9}
    assert scn.times_months == (0, 12, 24, 36) and scn.sites == tuple(SITES)
    assert list(scn.arms) == ["denosumab", "placebo"] and scn.arms["placebo"].regimen == ()
    dose = scn.arms["denosumab"].regimen[0].to_dose()
    assert (dose.drug, dose.dose, dose.unit, dose.every_months, dose.start_month, dose.stop_month) == (
        "denosumab",
        60,
        "mg",
        6,
        0,
        36,
    )
    assert [(c.label, c.arms) for c in scn.contrasts] == [("denosumab_vs_placebo", ("denosumab", "placebo"))]
    setups = {s.name: s for s in scn.setup()}
    assert setups["placebo"].unit.regimen[0].drug == "natural_menopause"
    assert setups["placebo"].unit.regimen[0].start_month == -240  # 20 years before the start
    assert load_scenario("denosumab_vs_placebo") == scn  # the shipped copy is the same scenario


def test_regimen_forms_and_overrides() -> None:
    scn = Scenario.from_dict(
        {
            "name": "forms",
            "population": "premenopausal",
            "sex": "female",
            "times_months": [0, 12],
            "levels": {"thyroid": 2.0},
            "arms": {
                "aln": {
                    "regimen": [
                        {
                            "drug": "alendronate",
                            "dose": 10,
                            "unit": "mg/day",
                            "start_month": 0,
                            "stop_month": 36,
                        }
                    ]
                },
                "zol_once": {
                    "regimen": [
                        {"drug": "zoledronate", "dose": 5, "unit": "mg", "start_month": 3, "stop_month": 3}
                    ]
                },
                "e2": {
                    "regimen": [
                        {"drug": "estradiol", "route": "oral", "dose": 1, "unit": "mg/day"},
                        {"drug": "gh_secretagogue", "dose": 25, "unit": "mg/day"},
                    ]
                },
                "meno": {"regimen": [{"drug": "natural_menopause", "start_month": 60}]},
                "man": {"population": "eugonadal_male", "regimen": []},
            },
        }
    )
    s = {a.name: a for a in scn.setup()}
    assert s["zol_once"].unit.regimen[0].injection_times(100) == [3.0]
    assert s["e2"].unit.regimen[0].effective_route == "oral"
    assert (
        s["meno"].unit.regimen == (s["meno"].unit.regimen[0],) and s["meno"].unit.regimen[0].start_month == 60
    )
    assert s["man"].sex == "male" and s["aln"].unit.levels == {"thyroid": 2.0}
    peri = Scenario.from_dict(
        {
            "name": "p",
            "population": "perimenopausal",
            "times_months": [0],
            "arms": {"a": {"regimen": [{"drug": "natural_menopause", "start_month": 30}]}},
        }
    )
    (a,) = peri.setup()  # the arm's own menopause replaces the preset's (month 12)
    assert [d.start_month for d in a.unit.regimen if d.drug == "natural_menopause"] == [30]


def _base() -> dict:
    return {
        "name": "x",
        "population": "postmenopausal",
        "times_months": [0, 12],
        "arms": {
            "a": {"regimen": [{"drug": "alendronate", "dose": 10, "unit": "mg/day"}]},
            "b": {"regimen": []},
        },
    }


def _set(d: dict, path: tuple, value: object) -> dict:
    node = d
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = value
    return d


BAD_CASES = [
    (("population",), "postmenopausl", "population", "premenopausal"),
    (("sex",), "other", "sex", "'female' or 'male'"),
    (("times_months",), [0, -3], "times_months", "between 0"),
    (("sites",), ["spine"], "sites[0]", "lumbar_spine"),
    (("baseline_tscore",), {"spine": -2.0}, "baseline_tscore.spine", "total_hip"),
    (("levels",), {"cortisol": 3.0}, "levels.cortisol", "glucocorticoid"),
    (("arms", "a", "regimen", 0, "drug"), "alendronat", "arms.a.regimen[0].drug", "alendronate"),
    (("arms", "a", "regimen", 0, "unit"), "mg", "arms.a.regimen[0].unit", "mg/day, mg/week"),
    (("arms", "a", "regimen", 0, "every_months"), 6, "arms.a.regimen[0].every_months", "omit every_months"),
    (("arms", "a", "regimen", 0, "route"), "oral", "arms.a.regimen[0].route", "takes no route"),
    (("arms", "a", "regimen", 0, "dose"), -1, "arms.a.regimen[0].dose", ">= 0"),
    (("arms", "a", "regimen", 0, "stop_month"), -5, "arms.a.regimen[0].stop_month", "before start_month"),
    (("arms", "a", "regimen", 0, "frequency"), 1, "arms.a.regimen[0].frequency", "allowed keys: drug"),
    (("arms", "a", "colour"), "red", "arms.a.colour", "allowed keys"),
    (("contrasts",), [{"arms": ["a", "c"]}], "contrasts[0].arms[1]", "allowed: a, b"),
    (("contrasts",), [{"arms": ["a", "a"]}], "contrasts[0].arms", "must differ"),
    (("years_since_onset",), -2, "years_since_onset", "between 0 and 70"),
    (("extra",), 1, "extra", "allowed keys: population"),
]


@pytest.mark.parametrize(("path", "value", "where", "allowed"), BAD_CASES)
def test_bad_scenarios_name_the_key_path(path: tuple, value: object, where: str, allowed: str) -> None:
    with pytest.raises(ScenarioError) as e:
        Scenario.from_dict(_set(_base(), path, value), "bad.toml")
    paths = [p for p, _ in e.value.problems]
    assert where in paths, e.value.problems
    assert allowed in str(e.value) and "bad.toml" in str(e.value)


def test_route_and_event_rules_name_the_key_path() -> None:
    d = _base()
    d["arms"]["a"]["regimen"] = [{"drug": "estradiol", "route": "nasal", "dose": 1, "unit": "mg/day"}]
    with pytest.raises(ScenarioError, match=r"arms\.a\.regimen\[0\]\.route: .*allowed: oral, transdermal"):
        Scenario.from_dict(d)
    d = _base()
    d.update(population="eugonadal_male")
    d["arms"]["a"]["regimen"] = [{"drug": "natural_menopause", "start_month": 3}]
    with pytest.raises(ScenarioError, match=r"arms\.a\.regimen\[0\]\.drug: natural_menopause needs sex"):
        Scenario.from_dict(d)
    d = _base()
    del d["name"]
    with pytest.raises(ScenarioError, match="name: required key is missing"):
        Scenario.from_dict(d)


def test_bad_toml_and_missing_file(tmp_path: Path) -> None:
    p = tmp_path / "broken.toml"
    p.write_text("name = \n")
    with pytest.raises(ScenarioError, match="broken.toml: .*invalid TOML"):
        load_scenario(p)
    with pytest.raises(ScenarioError, match="file not found; shipped examples: .*denosumab_vs_placebo"):
        load_scenario(tmp_path / "nope.toml")


def test_every_shipped_scenario_validates() -> None:
    shipped = shipped_scenarios()
    assert {
        "denosumab_vs_placebo",
        "five_regimens_vs_placebo",
        "stopping_denosumab",
        "testosterone_hypogonadal_men",
    } <= set(shipped)
    for path in shipped.values():
        load_scenario(path).setup()
    five = load_scenario("five_regimens_vs_placebo")
    assert len(five.contrasts) == 5 and all(c.arms[1] == "placebo" for c in five.contrasts)
    import tomllib

    pkg = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    assert "data/scenarios/*.toml" in pkg["tool"]["setuptools"]["package-data"]["bonebayes"]


# --------------------------------------------------------------------------- engine
@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 10_000), draws=st.integers(2, 30))
def test_contrasts_are_paired_differences_draw_by_draw(seed: int, draws: int) -> None:
    post = prior_posterior(40, seed=seed % 7)
    scn = load_scenario("five_regimens_vs_placebo")
    scn = scn.model_copy(
        update={
            "contrasts": scn.contrasts
            + (scn.contrasts[0].model_copy(update={"name": "same", "arms": ("placebo", "placebo_again")}),),
            "arms": {**scn.arms, "placebo_again": scn.arms["placebo"]},
        }
    )
    ds = project(post, scn, draws=draws, seed=seed)
    assert ds.sizes["draw"] == min(draws, 40)
    for c, a, b in zip(ds["contrast"].values, ds["contrast_first"].values, ds["contrast_second"].values):
        for v in ("bmd", "tscore", "ctx", "p1np", "rankl_opg_ratio"):
            diff = ds[v].sel(arm=a) - ds[v].sel(arm=b)
            np.testing.assert_array_equal(ds[f"contrast_{v}"].sel(contrast=c).values, diff.values)
        np.testing.assert_allclose(
            ds["contrast_p_osteoporosis"].sel(contrast=c),
            ds["p_osteoporosis"].sel(arm=a) - ds["p_osteoporosis"].sel(arm=b),
        )
    # identical arms under the same draws (and the same new-study effects) differ by exactly zero
    assert float(np.abs(ds["contrast_bmd"].sel(contrast="same")).max()) == 0.0


def test_placebo_bmd_falls_and_denosumab_rises_at_a_fixed_point(fixed: xr.Dataset) -> None:
    scn = Scenario.from_toml(ISSUE_EXAMPLE).model_copy(update={"years_since_menopause": 10.0})
    ds = project(fixed, scn, study_effects="none")
    bmd = ds["bmd"].isel(draw=0)
    for site in SITES:
        pl, dm = bmd.sel(arm="placebo", site=site).values, bmd.sel(arm="denosumab", site=site).values
        assert pl[0] == dm[0] == 0
        assert np.all(np.diff(pl) < 0), (site, pl)  # postmenopausal loss on placebo
        assert np.all(np.diff(dm) > 0) and dm[-1] > 2.0, (site, dm)  # gains on denosumab
    scn = Scenario.from_toml(ISSUE_EXAMPLE)  # the issue's example itself (20 years after menopause)
    ds = project(fixed, scn, study_effects="none")
    bmd = ds["bmd"].isel(draw=0)
    ctx = ds["ctx"].isel(draw=0)
    assert float(ctx.sel(arm="denosumab", time=12)) < -30 and abs(float(ctx.sel(arm="placebo", time=12))) < 5
    # T-scores start at the given baseline and move with BMD: T = T0 + BMD_0 (bmd / 100) / SD
    t = ds["tscore"].isel(draw=0)
    assert float(t.sel(arm="placebo", site="lumbar_spine", time=0)) == pytest.approx(-2.8)
    bmd0 = 1.064 - 2.8 * 0.106
    expect = -2.8 + bmd0 * bmd.sel(arm="denosumab", site="lumbar_spine", time=36) / 100 / 0.106
    assert float(t.sel(arm="denosumab", site="lumbar_spine", time=36)) == pytest.approx(float(expect))
    assert float(ds["p_osteoporosis"].sel(arm="placebo", site="lumbar_spine", time=36)) == 1.0
    assert float(ds["p_osteoporosis"].sel(arm="denosumab", site="lumbar_spine", time=36)) == 0.0
    assert "rebound" in ds.attrs["notes"] and ds.attrs["denosumab_rebound"] == "not modelled"


def test_model_baseline_tscore_and_menopause_event(fixed: xr.Dataset) -> None:
    """Without a baseline T-score the model's own history sets it; the menopause event starts the loss."""
    scn = Scenario.from_dict(
        {
            "name": "meno",
            "population": "premenopausal",
            "times_months": [0, 24, 48, 60, 84],
            "arms": {
                "meno": {"regimen": [{"drug": "natural_menopause", "start_month": 60}]},
                "hrt": {
                    "regimen": [
                        {"drug": "natural_menopause", "start_month": 60},
                        {
                            "drug": "estradiol",
                            "route": "transdermal",
                            "dose": 50,
                            "unit": "ug/day",
                            "start_month": 60,
                        },
                    ]
                },
            },
        }
    )
    ds = project(fixed, scn, study_effects="none")
    t = ds["tscore"].isel(draw=0)
    assert float(abs(t.sel(arm="meno", time=0)).max()) < 1e-9  # young-adult reference state: T = 0
    b = ds["bmd"].isel(draw=0).sel(arm="meno", site="lumbar_spine").values
    assert abs(b[1]) < 0.3 and b[-1] < b[3] - 1.0  # flat before, falling after the final period
    hrt = float(ds["bmd"].isel(draw=0).sel(arm="hrt", site="lumbar_spine", time=84))
    assert hrt > b[-1] + 1.0


def test_regimen_logic_switches_holidays_and_stopping(fixed: xr.Dataset) -> None:
    ds = project(fixed, "stopping_denosumab", study_effects="none", monthly=True)
    ctx = ds["ctx"].isel(draw=0)
    assert float(ctx.sel(arm="stop", time=18)) < -30
    assert float(ctx.sel(arm="stop", time=48)) == pytest.approx(0.0, abs=2.0)  # wanes; no rebound modelled
    assert float(ctx.sel(arm="stop").max()) < 1.0
    assert float(ctx.sel(arm="switch_zoledronate", time=36)) < -30
    ds = project(fixed, "five_regimens_vs_placebo", study_effects="none", monthly=True)
    p1np = ds["p1np"].isel(draw=0).sel(arm="teriparatide_to_alendronate")
    assert float(p1np.sel(time=12)) > 20 and float(p1np.sel(time=36)) < -20  # switch to alendronate
    ds = project(fixed, "alendronate_drug_holiday", study_effects="none")
    ctx = ds["ctx"].isel(draw=0).sel(arm="holiday")
    assert float(ctx.sel(time=96)) > float(ctx.sel(time=60)) + 10  # recovering turnover in the holiday
    assert float(ctx.sel(time=120)) < float(ctx.sel(time=96)) - 10  # restarted
    ds = project(fixed, "glucocorticoid_course", study_effects="none")
    b = ds["bmd"].isel(draw=0)
    assert float(b.sel(arm="prednisone", site="lumbar_spine", time=12)) < float(
        b.sel(arm="no_course", site="lumbar_spine", time=12)
    )


def test_fit_without_a_hormone_needs_allow_prior(posterior: xr.Dataset) -> None:
    with pytest.raises(
        ProjectionError,
        match=r"hormone igf1 \(used by gh_secretagogue in arm "
        r"estradiol_gh_secretagogue\).*--allow-prior",
    ):
        project(posterior, "estradiol_gh_secretagogue")
    ds = project(posterior, "estradiol_gh_secretagogue", allow_prior=True)
    assert set(json.loads(ds.attrs["prior_parameters"])) == {
        "gamma[igf1]",
        "e_form[igf1]",
        "g_rankl[igf1]",
        "g_opg[igf1]",
    }
    assert "drawn from their priors" in ds.attrs["notes"]
    assert json.loads(render(ds, "json"))["settings"]["prior_parameters"]
    with pytest.raises(ProjectionError, match="studies: none"):
        project(posterior, "denosumab_vs_placebo", study_effects="FREEDOM")


def test_projection_reproduces_the_models_pub_pred() -> None:
    """One physics: replaying each published arm through the projection engine gives the model's own
    ``pub_pred`` at the same parameter point (study effects included), for every BMD and marker row."""
    from pymc.initial_point import make_initial_point_fn

    from bonebayes.models.published import PublishedModel
    from bonebayes.projections.published_check import predict_rows, projectable_rows

    pm_ = PublishedModel()
    model = pm_.model
    ip = make_initial_point_fn(
        model=model, jitter_rvs=set(), default_strategy="support_point", return_transformed=True
    )(0)
    n_study = len(model.coords["study"])
    ip["z_kM_study"] = np.linspace(-1.5, 1.5, n_study)
    ip["z_drift_study"] = np.linspace(1.0, -1.0, n_study)
    names = [
        "k_C",
        "k_B",
        "k_M",
        "lam",
        "gamma",
        "e_form",
        "g_rankl",
        "g_opg",
        "emax_res",
        "ec50_res",
        "emax_ana",
        "ec50_ana",
        "kappa_ana",
        "tau_kM_study",
        "tau_drift",
        "z_kM_study",
        "z_drift_study",
        "beta_assay",
        "pub_pred",
    ]
    outs = model.replace_rvs_by_values([model[n] for n in names])  # fixed values, not prior draws
    f = model.compile_fn(outs, inputs=model.value_vars, on_unused_input="ignore", mode="FAST_COMPILE")
    values = dict(zip(names, f(ip)))
    pub_pred = pd.Series(values.pop("pub_pred"), index=pm_.data.rows["record_id"].to_numpy())
    coords = {
        k: list(model.coords[k]) for k in ("site", "hormone", "antiresorptive", "anabolic", "study", "assay")
    }
    post = point_posterior(values, coords).stack(sample=("chain", "draw"))
    ev = pm_.evidence
    rows = projectable_rows(ev)
    pred = predict_rows(post, ev, rows, config=pm_.config.model_dump(), study_effects="own")[0]
    assert len(rows) >= 55 and np.all(np.isfinite(pred))
    np.testing.assert_allclose(
        pred, pub_pred.loc[rows["record_id"].to_numpy()].to_numpy(), rtol=1e-7, atol=1e-7
    )


# --------------------------------------------------------------------------- outputs
def test_json_schema(posterior: xr.Dataset) -> None:
    ds = project(posterior, "denosumab_vs_placebo", draws=20)
    doc = json.loads(render(ds, "json"))
    res = doc["results"]
    assert {r["endpoint"] for r in res} == set(ENDPOINTS)
    assert {r.get("arm") for r in res if "arm" in r} == {"denosumab", "placebo"}
    assert {r.get("contrast") for r in res if "contrast" in r} == {"denosumab_vs_placebo"}
    for r in res:
        assert ("arm" in r) != ("contrast" in r)
        keys = set(r) - {"arm", "contrast"}
        site_ep = r["endpoint"] in ("bmd", "tscore", "p_osteoporosis")
        assert keys == {"endpoint", "time_months", "mean", "median", "hdi50", "hdi90"} | (
            {"site"} if site_ep else set()
        )
        if r["endpoint"] == "p_osteoporosis":
            assert (
                r["hdi50"] is None
                and r["hdi90"] is None
                and (("contrast" in r and -1 <= r["mean"] <= 1) or 0 <= r["mean"] <= 1)
            )
        else:
            lo50, hi50 = r["hdi50"]
            lo90, hi90 = r["hdi90"]
            assert lo50 <= hi50 and lo90 <= hi90 and hi50 - lo50 <= hi90 - lo90
    assert doc["denosumab_rebound"] == "not modelled" and any("rebound" in n for n in doc["notes"])
    assert doc["fit"]["draws_used"] == 20 and doc["settings"]["tscore_baseline"]["femoral_neck"] == "model"


def test_csv_table_and_netcdf_outputs(posterior: xr.Dataset, tmp_path: Path) -> None:
    ds = project(posterior, "denosumab_vs_placebo", draws=10)
    df = to_frame(ds)
    assert list(df.columns)[:5] == ["arm", "contrast", "endpoint", "site", "time_months"]
    assert len(df) == len(json.loads(render(ds, "json"))["results"])
    write(ds, tmp_path / "p.csv")
    assert pd.read_csv(tmp_path / "p.csv").shape == df.shape
    text = render(ds, "table", ["bmd"])
    assert "denosumab_vs_placebo (diff.)" in text and "rebound" in text
    write(ds, tmp_path / "p.nc")
    back = xr.open_dataset(tmp_path / "p.nc", engine="h5netcdf")
    assert back["bmd"].dims == ("draw", "arm", "time", "site") and back.sizes["draw"] == 10
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave no temporary files
    with pytest.raises(ValueError, match="allowed: bmd"):
        render(ds, "json", ["bone"])


def test_hdi_matches_arviz() -> None:
    import arviz as az

    from bonebayes._arviz import hdi_along

    x = np.random.default_rng(3).gamma(2.0, size=(400, 3, 2))
    for prob in (0.5, 0.9):
        lo, hi = hdi_along(x, prob)
        for i in range(3):
            for j in range(2):
                np.testing.assert_allclose(az.hdi(x[:, i, j], hdi_prob=prob), [lo[i, j], hi[i, j]])


def test_bmd_references_agree_with_the_shipped_table() -> None:
    from bonebayes.datasets.published import load_references
    from bonebayes.projections.references import BMD_REFERENCES

    ref = load_references()
    ref = ref[ref["quantity"] == "bmd_young_adult_reference"]
    for _, r in ref.iterrows():
        site = next(s for s in SITES if r["population"].startswith(s))
        sex = "male" if " male " in f" {r['population']} " else "female"
        entry = BMD_REFERENCES[(sex, site)]
        assert (entry.mean, entry.sd) == (float(r["value"]), float(r["disp_lo"]))
        assert entry.source


# --------------------------------------------------------------------------- plots
def test_plots_write_nonempty_pngs(posterior: xr.Dataset, tmp_path: Path) -> None:
    from bonebayes.projections.plots import fan_chart, regimen_comparison, save_figure, tscore_chart

    ds = project(posterior, "five_regimens_vs_placebo", draws=20, monthly=True)
    paths = [
        save_figure(fan_chart(ds, "bmd"), tmp_path / "fan.png"),
        save_figure(fan_chart(ds, "ctx", contrasts=True), tmp_path / "fan_c.png"),
        save_figure(regimen_comparison(ds, "bmd", time=24, site="total_hip"), tmp_path / "cmp.png"),
        save_figure(tscore_chart(ds, site="femoral_neck"), tmp_path / "t.png"),
    ]
    for p in paths:
        data = p.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    with pytest.raises(ValueError, match="not a projected time"):
        regimen_comparison(ds, time=7.5)


# --------------------------------------------------------------------------- CLI
def test_cli_project_json_table_and_plots(fit_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "proj.json"
    invoke(
        [
            "project",
            "--fit",
            fit_file,
            "--scenario",
            "denosumab_vs_placebo",
            "--format",
            "json",
            "--output",
            out,
            "--draws",
            "10",
        ],
        0,
    )
    doc = json.loads(out.read_text())
    assert doc["fit"]["source"] == str(fit_file) and doc["results"]
    r = invoke(
        [
            "project",
            "--fit",
            fit_file,
            "--scenario",
            "stopping_denosumab",
            "--endpoint",
            "ctx",
            "--plots",
            tmp_path / "plots",
        ],
        0,
    )
    assert "stop_vs_continue" in r.output and "rebound" in r.output and "mock sampler" in r.output
    assert len(list((tmp_path / "plots").glob("*.png"))) >= 6
    r = invoke(
        [
            "project",
            "--fit",
            fit_file,
            "--scenario",
            "denosumab_vs_placebo",
            "--format",
            "csv",
            "--endpoint",
            "tscore",
        ],
        0,
    )
    assert r.stdout.startswith("arm,contrast,endpoint")


def test_cli_project_bad_input(fit_file: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(ISSUE_EXAMPLE.replace("every_months = 6", "every_months = -6"))
    r = invoke(["project", "--fit", fit_file, "--scenario", bad], 1)
    assert "arms.denosumab.regimen[0].every_months" in r.output and "bad.toml" in r.output
    r = invoke(["project", "--fit", fit_file, "--scenario", "estradiol_gh_secretagogue"], 1)
    assert "igf1" in r.output and "--allow-prior" in r.output
    r = invoke(
        [
            "project",
            "--fit",
            fit_file,
            "--scenario",
            "estradiol_gh_secretagogue",
            "--allow-prior",
            "--format",
            "json",
        ],
        0,
    )
    assert "gamma[igf1]" in r.output
    invoke(["project", "--fit", tmp_path / "missing.nc", "--scenario", "denosumab_vs_placebo"], 1)
    r = invoke(["project", "--fit", fit_file, "--scenario", "denosumab_vs_placebo", "--endpoint", "bone"], 1)
    assert "allowed: bmd" in r.output


def test_cli_project_default_fit(fit_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without --fit: results/fit.nc if it exists; else the main job's fit first (mocked here: no MCMC)."""
    import shutil

    from bonebayes import pipeline

    monkeypatch.chdir(tmp_path)
    calls = []

    def fake_main_job(out_dir, **kw):  # noqa: ANN001, ANN202
        calls.append((Path(out_dir), kw))
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        shutil.copy(fit_file, Path(out_dir) / "fit.nc")
        return {}

    monkeypatch.setattr(pipeline, "run_main_job", fake_main_job)
    r = invoke(["project", "--scenario", "denosumab_vs_placebo", "--draws", "5", "--endpoint", "bmd"], 0)
    assert len(calls) == 1 and calls[0][0] == Path("results") and calls[0][1]["loso"] == 0
    assert "fitting the shipped published evidence first" in r.output
    r = invoke(["project", "--scenario", "denosumab_vs_placebo", "--draws", "5", "--endpoint", "bmd"], 0)
    assert len(calls) == 1 and "using the default fit results/fit.nc" in r.output


def test_compare_published_rows_and_scenario_columns(fixed: xr.Dataset) -> None:
    from bonebayes.projections.published_check import compare_published

    df = compare_published(fixed, "denosumab_vs_placebo", study_effects="none")
    assert {1, 2, 3, 4, 5, 6, 7, 8} <= set(df["record_id"])  # FREEDOM and Bone2011 rows
    assert np.all(np.isfinite(df["projected_mean"]))
    row = df.set_index("record_id").loc[3]
    assert row["scenario_arm"] == "denosumab" and np.isfinite(row["scenario_mean"])
    assert df.set_index("record_id").loc[5, "scenario_arm"] == "denosumab - placebo"
