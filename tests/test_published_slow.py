"""Real MCMC on the shipped published evidence (slow; run by `make test` through `-m slow`).

A shortened version of the main job's fit (2 chains x 300 draws after 300 tuning instead of 4 x (1000 + 1000);
with 4 chains this test took 760 s on a cold 2-core machine, CI's):
too short for the full convergence gate, which the main job checks, but long enough to catch a broken
likelihood, wrong signs, or predictive intervals that are badly off.
"""

from __future__ import annotations

import numpy as np
import pytest

from bonebayes.checks.published import coverage_summary, predictive_table
from bonebayes.models.published import PublishedModel

pytestmark = pytest.mark.slow


def test_published_fit_has_literature_signs_and_calibrated_rows():
    pm_ = PublishedModel()
    fit = pm_.fit(draws=300, tune=300, chains=2, seed=1, progress=False)
    print(f"\npublished fit: {fit.verdict}")
    post = fit.idata.posterior
    v = fit.verdict
    assert v.divergences <= 4, str(v)
    assert v.rhat_max <= 1.05, str(v)

    def prob(name: str, **sel) -> float:  # noqa: ANN003
        return float((post[name].sel(**sel) > 0).mean()) if sel else float((post[name] > 0).mean())

    assert prob("gamma", hormone="estradiol") < 0.05  # estrogen loss raises resorption
    assert prob("gamma", hormone="pth") > 0.95  # continuous PTH excess raises it
    for drug in post["emax_res"].coords["antiresorptive"].values:
        assert float(post["emax_res"].sel(antiresorptive=drug).median()) > 0.4, drug
    assert float(post["eref_ana"].median()) > 0.1  # teriparatide raises formation
    # trabecular spine responds more than the hips (site k_M ordering)
    km = post["k_M"].median(("chain", "draw"))
    assert float(km.sel(site="lumbar_spine")) > float(km.sel(site="total_hip"))

    table = predictive_table(fit.idata, pm_.data, prob=0.9, seed=1)
    inside = float(table["inside"].mean())
    assert 0.80 <= inside <= 0.99, coverage_summary(table).to_string()
    bmd = table[table["row_class"] == "bmd"]
    assert float(np.median(bmd["abs_error"])) < 1.5, bmd.to_string()
