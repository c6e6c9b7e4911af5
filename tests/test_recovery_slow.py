"""Real MCMC: parameter recovery on a synthetic cohort (slow; run by `make test` through `-m slow`)."""

from __future__ import annotations

import numpy as np
import pytest

from bonebayes.checks.recovery import recovery_table
from bonebayes.datasets.synthetic import SyntheticDesign, simulate_cohort
from bonebayes.models.individual import IndividualModel

pytestmark = pytest.mark.slow


def test_recovers_population_parameters_and_converges(tmp_path):
    """A 100-subject synthetic cohort in 3 cohorts (seed 1), nutpie, 4 chains x 2000 draws after 1500 tuning
    at the model's default target acceptance (0.95): converged, truth inside the posterior.

    The default fit integrates the subject intercepts of every uncensored level out (``intercepts="marginal"``)
    and samples CTX's cohort means as offsets: measured (``benchmarks/recovery_marginal.py``) 0 divergences,
    min bulk ESS 2,533, max R-hat 1.002, 31 leapfrog steps per draw. With every intercept sampled
    (``intercepts="sampled"``, the default before) the measurements were these:
    the slowest parameters are the cohort SDs and means of serum RANKL and OPG (three visits per subject, three
    cohorts: each cohort mean is pinned to about +-0.05 against a cohort SD of about 0.1, between the regimes
    where the centred and the non-centred forms mix well). Measured on this cohort with the data-driven layout
    (``models.layout``: OPG subject intercepts centred, RANKL non-centred), 4 chains x 1500 draws: after 1000
    tuning 7 divergences and min tail ESS 350; after 1500 tuning 3 divergences, min ESS 744 and max R-hat
    1.0102 (tau_cohort[rankl], mu_level[rankl]); with both serum levels non-centred 2 divergences but bulk
    ESS 283 (tau_cohort[opg]). Longer tuning settles the step size and 2000 draws keep R-hat clear of its
    sampling noise. CI machines' floating point differs, so the divergence count varies: the test allows at
    most 1 in 1000 and then requires the explicit DiagnosticsWarning that names them; more is a failure.
    History: 200 subjects under the centred cohort means (4 x 1500 draws, 1,960 s on a cold 2-core machine);
    at 100 subjects that form gave 89 divergences, and nutpie's U(-1, 1) start jitter stranded chains
    (``bonebayes.initial_points``).

    With 41 population parameters and honest 90% intervals about 4 misses are expected, so the test asks
    for at least 80% inside the 90% interval and every truth inside its 99.8% interval (|z| < 3.1).
    """
    import warnings

    from bonebayes.inference import DiagnosticsWarning

    design = SyntheticDesign(n_subjects=100)
    cohort = simulate_cohort(design, seed=1)
    model = IndividualModel(cohort.observations, cohort.exposures)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DiagnosticsWarning)
        fit = model.fit(draws=2000, tune=1500, chains=4, seed=1, progress=False)
    v = fit.verdict
    assert v.divergences <= 0.001 * 4 * 2000, str(v)
    if v.divergences:
        assert any(issubclass(w.category, DiagnosticsWarning) and "divergent" in str(w.message) for w in caught)
    assert v.rhat_max <= 1.01, str(v)
    assert v.ess_bulk_min >= 400 and v.ess_tail_min >= 400, str(v)
    table = recovery_table(fit.idata, cohort.truth, list(design.sites))
    assert len(table) >= 30
    assert table["covered"].mean() >= 0.8, table.to_string()
    assert np.all(np.abs(table["z"]) < 3.1), table.to_string()
    path = fit.save(tmp_path / "fit.nc")
    assert path.stat().st_size > 0
