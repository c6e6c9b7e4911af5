"""Real MCMC: parameter recovery on a synthetic cohort (slow; run by `make test` through `-m slow`)."""

from __future__ import annotations

import numpy as np
import pytest

from bonebayes.checks.recovery import recovery_table
from bonebayes.datasets.synthetic import SyntheticDesign, simulate_cohort
from bonebayes.models.individual import IndividualModel

pytestmark = pytest.mark.slow


def test_recovers_population_parameters_and_converges(tmp_path):
    """The synthetic job's default cohort (200 subjects in 3 cohorts, seed 1), nutpie, 4 chains x 1500 draws
    after 1000 tuning: converged, truth inside the posterior.

    Divergences: with only 3 cohorts the cohort-level SDs are weakly identified, and fits of this cohort gave
    0 (seed 1 here), 1 (seed 2 here, at target_accept 0.9 and 0.95, both priors) and 6 (seed 1 on the CI
    machine, whose floating point differs, under
    the former half-normal tau_cohort prior) divergent transitions in 4000-6000 draws. The test allows at most
    1 in 1000 and then requires the explicit DiagnosticsWarning that names them; more is a failure.
    1500 draws keep the R-hat gate (<= 1.01) clear of its sampling noise (1.007-1.010 at 1000 draws).

    With 41 population parameters and honest 90% intervals about 4 misses are expected, so the test asks
    for at least 80% inside the 90% interval and every truth inside its 99.8% interval (|z| < 3.1).
    """
    import warnings

    from bonebayes.inference import DiagnosticsWarning

    design = SyntheticDesign(n_subjects=200)
    cohort = simulate_cohort(design, seed=1)
    model = IndividualModel(cohort.observations, cohort.exposures)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DiagnosticsWarning)
        fit = model.fit(draws=1500, tune=1000, chains=4, seed=1, progress=False)
    v = fit.verdict
    assert v.divergences <= 0.001 * 4 * 1500, str(v)
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
