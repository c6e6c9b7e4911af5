"""Benchmark the default individual-model fit: compile time, wall time, ESS per second, peak memory.

    python benchmarks/bench_fit.py [--subjects 200] [--draws 1000] [--tune 1000] [--chains 4] [--json out.json]

Prints a table and optionally writes JSON. Figures depend on the machine; the closing notes quote the
2-core, 24 GiB CI machine.
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--subjects", type=int, default=200)
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--tune", type=int, default=1000)
    ap.add_argument("--chains", type=int, default=4)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()

    import nutpie

    from bonebayes import _arviz
    from bonebayes.datasets.synthetic import SyntheticDesign, simulate_cohort
    from bonebayes.inference import NUTPIE_BACKEND, diagnose
    from bonebayes.models.individual import IndividualModel

    cohort = simulate_cohort(SyntheticDesign(n_subjects=a.subjects), seed=a.seed)
    model = IndividualModel(cohort.observations, cohort.exposures)
    t = time.perf_counter()
    compiled = nutpie.compile_pymc_model(model.model, backend=NUTPIE_BACKEND, gradient_backend=NUTPIE_BACKEND)
    compile_s = time.perf_counter() - t
    t = time.perf_counter()
    idata = nutpie.sample(compiled, draws=a.draws, tune=a.tune, chains=a.chains, seed=a.seed,
                          cores=min(a.chains, 2), progress_bar=False)
    sample_s = time.perf_counter() - t
    names = model.population_vars()
    v = diagnose(idata, names, warn=False)
    ess = _arviz.ess(idata, names, "bulk")
    ess_min = float(min(np.min(ess[n].values) for n in names))
    out = {
        "subjects": a.subjects, "observations": int(len(cohort.observations)), "chains": a.chains,
        "draws": a.draws, "tune": a.tune, "backend": NUTPIE_BACKEND, "compile_s": round(compile_s, 2),
        "sample_s": round(sample_s, 2), "wall_s": round(compile_s + sample_s, 2),
        "min_bulk_ess": round(ess_min, 1), "min_ess_per_s": round(ess_min / sample_s, 2),
        "mean_leapfrog_steps": float(idata.sample_stats["n_steps"].mean()),
        "divergences": v.divergences, "rhat_max": round(v.rhat_max, 4),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    width = max(map(len, out))
    for k, val in out.items():
        print(f"{k:<{width}}  {val}")
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(out, fh, indent=2)


if __name__ == "__main__":
    main()
