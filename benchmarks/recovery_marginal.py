"""The slow recovery test's fit (tests/test_recovery_slow.py) with the subject intercepts integrated out.

    python benchmarks/recovery_marginal.py [--intercepts marginal|sampled] [--json PATH]

Same 100-subject cohort (seed 1), nutpie, 4 chains x 2000 draws after 1500 tuning, target 0.95; prints the
diagnostics verdict, sampling wall time, leapfrog steps per draw and the recovery table's coverage, so that
``intercepts="marginal"`` can be judged against the test's thresholds before it becomes the default.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--intercepts", choices=("sampled", "marginal"), default="marginal")
    ap.add_argument("--json", default=str(HERE / "results" / "recovery_marginal.json"))
    a = ap.parse_args()
    from bonebayes._atomic import write_text_atomic
    from bonebayes.checks.recovery import recovery_table
    from bonebayes.datasets.synthetic import SyntheticDesign, simulate_cohort
    from bonebayes.models.individual import IndividualModel

    design = SyntheticDesign(n_subjects=100)
    cohort = simulate_cohort(design, seed=1)
    model = IndividualModel(cohort.observations, cohort.exposures, {"intercepts": a.intercepts})
    t = time.perf_counter()
    fit = model.fit(draws=2000, tune=1500, chains=4, seed=1, progress=False)
    wall = time.perf_counter() - t
    v = fit.verdict
    table = recovery_table(fit.idata, cohort.truth, list(design.sites))
    stats = fit.idata.sample_stats
    out = {"intercepts": a.intercepts, "fit_wall_s": wall, "rhat_max": v.rhat_max, "ess_bulk_min": v.ess_bulk_min,
           "ess_tail_min": v.ess_tail_min, "divergences": v.divergences,
           "mean_leapfrog": float(stats["n_steps"].mean()) if "n_steps" in stats else None,
           "coverage_90": float(table["covered"].mean()), "max_abs_z": float(np.abs(table["z"]).max()),
           "n_parameters": len(table), "passes_recovery_test_thresholds": bool(
               v.divergences <= 8 and v.rhat_max <= 1.01 and v.ess_bulk_min >= 400 and v.ess_tail_min >= 400
               and table["covered"].mean() >= 0.8 and np.all(np.abs(table["z"]) < 3.1))}
    print(v)
    print(json.dumps(out, indent=2))
    write_text_atomic(json.dumps(out, indent=2), a.json)


if __name__ == "__main__":
    main()
