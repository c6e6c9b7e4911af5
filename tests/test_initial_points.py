"""Chain starts: support point plus a jitter no wider than each prior (bonebayes.initial_points)."""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytest

from bonebayes.initial_points import ChainStarts


@pytest.fixture(scope="module")
def small_model():
    with pm.Model() as m:
        pm.Normal("narrow", 0.03, 0.1)  # like e_form: nutpie's U(-1, 1) jitter would be 10 prior SDs
        pm.Normal("wide", 0.0, 5.0, shape=3)
        s = pm.HalfNormal("scale", 0.4)
        pm.Normal("level", 2.0, 1.0)
        pm.Normal("y", 0.0, s, observed=np.array([0.1, -0.2, 0.3]))
    return m


def test_jitter_is_scaled_to_each_prior_and_capped_at_one(small_model):
    cs = ChainStarts(small_model)
    assert 0.07 < float(cs.width["narrow"]) < 0.13  # prior SD 0.1
    assert np.all(cs.width["wide"] == 1.0)  # prior SD 5, capped at nutpie's usual U(-1, 1)
    assert 0.6 < float(cs.width["scale_log__"]) <= 1.0  # SD of log|N(0, 0.4)| is about 1.1, capped
    starts = [cs.unconstrained(seed) for seed in range(50)]
    narrow = np.array([float(p["narrow"]) for p in starts])
    assert np.all(np.abs(narrow - 0.03) <= float(cs.width["narrow"]) + 1e-12)
    assert narrow.std() > 0.02  # chains still start apart
    assert not np.allclose(starts[0]["wide"], starts[1]["wide"])


def test_overrides_and_no_jitter(small_model):
    cs = ChainStarts(small_model, overrides={"level": 7.5}, no_jitter=["level"])
    for seed in range(5):
        assert float(cs.unconstrained(seed)["level"]) == 7.5
    cs2 = cs.with_overrides({"level": -1.0}, no_jitter=["level"])
    assert float(cs2.unconstrained(0)["level"]) == -1.0 and float(cs.unconstrained(0)["level"]) == 7.5
    free = ChainStarts(small_model).with_overrides({"level": -1.0})
    jittered = [float(free.unconstrained(s)["level"]) for s in range(20)]
    assert np.ptp(jittered) > 0.5 and max(abs(np.array(jittered) + 1.0)) <= 1.0  # prior SD 1: U(-1, 1)
    with pytest.raises(ValueError, match="untransformed"):
        cs.with_overrides({"scale": 0.2})  # log-transformed: not supported by with_overrides
    with pytest.raises(ValueError, match="not free variables"):
        ChainStarts(small_model, overrides={"nope": 1.0})


def test_flat_follows_free_variable_order_and_constrained_starts_are_in_support(small_model):
    cs = ChainStarts(small_model, overrides={"level": 7.5}, no_jitter=["level"])
    flat = cs.flat(3)
    sizes = [int(np.prod(cs.support[k].shape)) for k in cs.value_names]
    assert flat.shape == (sum(sizes),)
    assert cs.value_names == ["narrow", "wide", "scale_log__", "level"]
    assert flat[-1] == 7.5
    assert not np.allclose(cs.flat(3), cs.flat(4))
    np.testing.assert_array_equal(cs.flat(3), cs.flat(3))  # reproducible for a seed
    starts = cs.constrained(chains=3, seed=1)
    assert len(starts) == 3 and all(p["scale"] > 0 and p["level"] == 7.5 for p in starts)
    point = cs.unconstrained(1 * 1000 + 0)
    assert np.isclose(starts[0]["scale"], np.exp(point["scale_log__"]))


def test_individual_model_starts_levels_at_the_data(tiny_cohort_dir):
    from bonebayes.datasets import load_cohort
    from bonebayes.inference import compile_nutpie, with_chain_starts
    from bonebayes.models.individual import IndividualModel

    obs, exp = load_cohort(tiny_cohort_dir / "observations.csv", tiny_cohort_dir / "exposures.csv")
    m = IndividualModel(obs, exp, {"intercepts": "sampled"})  # CTX cohort means direct
    init = m.initial_values()
    assert all(np.all(np.isfinite(v)) for v in init.values())
    fixed = m.no_jitter(init)
    assert "z_mu_level" in init and "z_mu_level" not in fixed  # 0 = zero gradient: nutpie rejects the start
    cs = ChainStarts(m.model, init, fixed)
    assert all(np.all(cs.width[k] == 0) for k in fixed) and np.all(cs.width["z_mu_level"] > 0.8)
    compiled = compile_nutpie(m.model, initvals=init, no_jitter=fixed)
    moved = cs.with_overrides({"cohort_mean_ctx": init["cohort_mean_ctx"] + 1.0}, ["cohort_mean_ctx"])
    for c in (compiled, with_chain_starts(compiled, moved)):
        fn = c._make_initial_points  # nutpie's start of a chain (JAX back-end): ours, in nutpie's layout
        assert fn.order != cs.value_names  # the frozen clone orders its variables differently
        flat = fn(5)
        sizes = [cs.support[k].size for k in fn.order]
        start = dict(zip(fn.order, np.split(flat, np.cumsum(sizes)[:-1])))
        shift = 0.0 if c is compiled else 1.0
        np.testing.assert_allclose(start["cohort_mean_ctx"], init["cohort_mean_ctx"] + shift)
        np.testing.assert_allclose(start["a_ctx"], init["a_ctx"])
    with pytest.raises(TypeError, match="compile_nutpie"):
        with_chain_starts(object(), cs)
