"""Where do divergent transitions sit? Fit the synthetic job's default cohort and rank the divergent draws.

    python benchmarks/diagnose_divergences.py [--seed 2] [--target-accept 0.9] [--draws 1000] [--tune 1000]

Fits ``IndividualModel`` to the default synthetic cohort (200 subjects in 3 cohorts, cohort seed 1; the
recovery test's data) with the given sampler seed, prints the diagnostics verdict and, if there are divergent
transitions, the parameters whose divergent draws lie furthest from the middle of their marginal posterior
(mean normalised rank of the divergent draws; 0 or 1 = at an extreme). This is how the funnel of the cohort
SDs (tau_cohort) behind the CI failure of the recovery test was located.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seed", type=int, default=2)
    ap.add_argument("--target-accept", type=float, default=0.9)
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--tune", type=int, default=1000)
    ap.add_argument("--top", type=int, default=15)
    a = ap.parse_args()

    from bonebayes.datasets.synthetic import SyntheticDesign, simulate_cohort
    from bonebayes.models.individual import IndividualModel

    cohort = simulate_cohort(SyntheticDesign(n_subjects=200), seed=1)
    model = IndividualModel(cohort.observations, cohort.exposures)
    t = time.perf_counter()
    fit = model.fit(draws=a.draws, tune=a.tune, chains=4, seed=a.seed, progress=False,
                    target_accept=a.target_accept)
    print(f"seed {a.seed}, target_accept {a.target_accept}: {time.perf_counter() - t:.0f} s")
    print(fit.verdict)
    div = fit.idata.sample_stats["diverging"].values.ravel()
    print(f"divergent transitions: {int(div.sum())}")
    if not div.any():
        return
    rows = []
    post = fit.idata.posterior
    for name in post.data_vars:
        values = post[name].values
        values = values.reshape(values.shape[0] * values.shape[1], -1)
        if values.shape[1] > 50:  # subject-level vectors: too many to list
            continue
        for j in range(values.shape[1]):
            rank = (np.argsort(np.argsort(values[:, j])) + 0.5) / len(values)
            rows.append((abs(rank[div].mean() - 0.5), name, j, rank[div].mean()))
    print(f"{'parameter':<28}{'index':>6}{'mean rank of divergent draws':>30}")
    for _, name, j, r in sorted(rows, reverse=True)[: a.top]:
        print(f"{name:<28}{j:>6}{r:>30.4f}")


if __name__ == "__main__":
    main()
