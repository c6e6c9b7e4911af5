"""Subject intercepts are centred where the data pin them and non-centred where they do not
(``models.layout``): decided from a method-of-moments pilot estimate, which must track the truth."""

from __future__ import annotations

import numpy as np
import pytest

from bonebayes.datasets.synthetic import SyntheticDesign, default_truth, simulate_cohort
from bonebayes.models.data import prepare_individual
from bonebayes.models.individual import ModelConfig
from bonebayes.models.layout import level_layout, pilot_spread, prior_spread

DESIGN = SyntheticDesign(n_subjects=60, n_cohorts=3)


def _data(tau: dict[str, float], sigma: dict[str, float] | None = None, seed: int = 2):
    truth = default_truth(DESIGN)
    levels = list(truth["levels"])
    for lv, v in tau.items():
        truth["tau_subject"][levels.index(lv)] = v
    for lv, v in (sigma or {}).items():
        truth["sigma_level"][levels.index(lv)] = v
    c = simulate_cohort(DESIGN, truth, seed=seed)
    return prepare_individual(c.observations, c.exposures), truth, levels


def test_pilot_estimates_track_the_true_spread_and_noise() -> None:
    data, truth, levels = _data({})
    for lv in ("ctx", "rankl", "opg", "bmd_lumbar_spine"):
        k = levels.index(lv)
        s = pilot_spread(data, lv)
        assert s is not None and s.source == "data"
        assert 0.6 < s.between / truth["tau_subject"][k] < 1.5, (lv, s)
        per = data.obs_per_subject(lv).mean()
        if not lv.startswith("bmd_"):  # BMD residuals also carry each subject's k_M over time
            assert 0.6 < s.noise_of_mean / (truth["sigma_level"][k] / np.sqrt(per)) < 1.5, (lv, s)


def test_layout_follows_the_data_not_only_the_design() -> None:
    """Same design, different truths: a tiny between-subject SD (funnel if centred) gives an offset, a large
    one against little noise (pinned intercepts) a centred intercept."""
    small, _, _ = _data({"p1np": 0.02, "opg": 1.0}, {"opg": 0.15})
    large, _, _ = _data({"p1np": 0.6, "opg": 0.05})
    cfg = ModelConfig(intercepts="sampled")  # every level's intercepts sampled (CTX cohort form: the design's)
    a, b = level_layout(small, cfg), level_layout(large, cfg)
    assert a["p1np"][1] == "offset" and b["p1np"][1] == "direct"
    assert a["opg"][1] == "direct" and b["opg"][1] == "offset"
    assert a["ctx"] == b["ctx"] == ("direct", "direct")  # the cohort form depends on the design only


def test_too_few_subjects_fall_back_to_the_priors() -> None:
    c = simulate_cohort(SyntheticDesign(n_subjects=3, n_cohorts=1), seed=0)
    data = prepare_individual(c.observations, c.exposures)
    assert pilot_spread(data, "ctx") is None
    s = prior_spread("rankl", 3.0)
    assert s.source == "prior" and s.noise_of_mean > 0.5 * s.between  # serum at 3 visits: offset
    assert level_layout(data, ModelConfig())["rankl"][1] == "offset"


@pytest.mark.parametrize("seed", [0, 1])
def test_layout_is_a_pure_function_of_the_data(seed: int) -> None:
    c = simulate_cohort(SyntheticDesign(n_subjects=10, n_cohorts=2), seed=seed)
    d1 = prepare_individual(c.observations, c.exposures)
    d2 = prepare_individual(c.observations.sample(frac=1.0, random_state=seed), c.exposures)
    assert level_layout(d1, ModelConfig()) == level_layout(d2, ModelConfig())


def test_large_cohorts_pin_the_cohort_means_of_a_single_visit_level() -> None:
    """Serum RANKL/OPG at baseline only: non-centred cohort offsets in small cohorts (the funnel at small
    tau_cohort is the risk), sampled directly once cohorts are large enough to pin their means."""
    from bonebayes.models.layout import cohorts_pinned

    forms = {}
    for n in (60, 600):
        c = simulate_cohort(SyntheticDesign(n_subjects=n, n_cohorts=3, serum_visits=(0,)), seed=1)
        data = prepare_individual(c.observations, c.exposures)
        forms[n] = (level_layout(data, ModelConfig())["rankl"][0], cohorts_pinned(data, "rankl"))
    assert forms == {60: ("offset", False), 600: ("direct", True)}


def test_with_intercepts_integrated_out_a_censored_level_needs_pinned_cohorts_for_direct_means() -> None:
    """CTX (values below the LOQ) keeps sampled intercepts when the others are integrated out; its cohort
    means are then direct only where the cohorts pin them (a (tau_cohort, deviation) funnel otherwise)."""
    from bonebayes.models.layout import censored_levels, cohorts_pinned

    forms = {}
    for n in (100, 600):
        c = simulate_cohort(SyntheticDesign(n_subjects=n, n_cohorts=3), seed=1)
        data = prepare_individual(c.observations, c.exposures)
        assert "ctx" in censored_levels(data)
        sampled = level_layout(data, ModelConfig(intercepts="sampled"))
        marginal = level_layout(data, ModelConfig(intercepts="marginal"))
        held = level_layout(data, ModelConfig(intercepts="marginal", holdout_subjects=(data.subjects[0],)))
        assert sampled["ctx"][0] == "direct" and held == sampled  # held-out subjects: nothing integrated
        assert {lv: f for lv, f in marginal.items() if lv != "ctx"} == {
            lv: f for lv, f in sampled.items() if lv != "ctx"}
        forms[n] = (marginal["ctx"][0], cohorts_pinned(data, "ctx"))
    assert forms == {100: ("offset", False), 600: ("direct", True)}
