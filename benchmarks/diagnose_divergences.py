"""Where do divergent transitions sit, and is a chain stuck? Fit a synthetic cohort and rank the divergent draws.

    python benchmarks/diagnose_divergences.py [--design recovery|reference] [--subjects 200] [--seed 2]
        [--chains 4] [--target-accept 0.9] [--draws 1000] [--tune 1000] [--config KEY=VALUE ...]

``--design recovery`` is the synthetic job's default cohort (``SyntheticDesign(n_subjects=N)``, cohort seed 1;
the recovery test's data); ``--design reference`` is the benchmark's (``benchmarks/bench_reference.py``: 3
cohorts, 7 visits, two BMD sites, serum at baseline). Fits ``IndividualModel`` with the given sampler seed,
prints the diagnostics verdict, then

* the parameters whose divergent draws lie furthest from the middle of their marginal posterior (mean
  normalised rank of the divergent draws; 0 or 1 = at an extreme): how the tau_cohort funnel behind an earlier
  CI failure of the recovery test was located;
* per chain: divergences, mean leapfrog steps, step size, and the population parameters whose chain mean lies
  furthest from the other chains' (in pooled posterior SDs): where a stuck chain sits.

``--config`` passes ``ModelConfig`` fields (e.g. ``--config random_kM=false``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def _config(pairs: list[str]) -> dict:
    out: dict = {}
    for p in pairs:
        k, _, v = p.partition("=")
        out[k] = {"true": True, "false": False}.get(v.lower(), v)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--design", choices=("recovery", "reference"), default="recovery")
    ap.add_argument("--subjects", type=int, default=200)
    ap.add_argument("--seed", type=int, default=2)
    ap.add_argument("--chains", type=int, default=4)
    ap.add_argument("--target-accept", type=float, default=0.9)
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--tune", type=int, default=1000)
    ap.add_argument("--top", type=int, default=15)
    ap.add_argument("--config", nargs="*", default=[])
    a = ap.parse_args()

    from bonebayes.datasets.synthetic import SyntheticDesign, simulate_cohort
    from bonebayes.models.individual import IndividualModel

    if a.design == "reference":
        from bench_reference import VISITS

        design = SyntheticDesign(n_subjects=a.subjects, n_cohorts=3, visits=VISITS, bmd_visits=VISITS,
                                 serum_visits=(0,), sites=("lumbar_spine", "total_hip"))
    else:
        design = SyntheticDesign(n_subjects=a.subjects)
    cohort = simulate_cohort(design, seed=1)
    model = IndividualModel(cohort.observations, cohort.exposures, config=_config(a.config))
    t = time.perf_counter()
    fit = model.fit(draws=a.draws, tune=a.tune, chains=a.chains, seed=a.seed, progress=False,
                    target_accept=a.target_accept)
    print(f"{a.design} design, {a.subjects} subjects, seed {a.seed}, tune {a.tune}, "
          f"target_accept {a.target_accept}, config {a.config}: {time.perf_counter() - t:.0f} s")
    print(fit.verdict)
    st = fit.idata.sample_stats
    div = st["diverging"].values
    steps = next((st[k].values for k in ("n_steps", "tree_size") if k in st), None)
    eps = next((st[k].values for k in ("step_size", "step_size_bar") if k in st), None)
    print(f"divergent transitions: {int(div.sum())}")
    print(f"{'chain':>5}{'divergent':>11}{'mean leapfrog':>15}{'step size':>11}")
    for c in range(div.shape[0]):
        print(f"{c:>5}{int(div[c].sum()):>11}{(steps[c].mean() if steps is not None else float('nan')):>15.1f}"
              f"{(eps[c].mean() if eps is not None else float('nan')):>11.4f}")
    post = fit.idata.posterior
    pop = [n for n in model.population_vars() if n in post]
    if div.shape[0] > 1:
        rows = []
        for name in pop:
            v = post[name].values.reshape(div.shape[0], div.shape[1], -1)
            sd = v.reshape(-1, v.shape[-1]).std(axis=0) + 1e-12
            for j in range(v.shape[-1]):
                means = v[:, :, j].mean(axis=1)
                for c in range(len(means)):
                    others = np.delete(means, c).mean()
                    rows.append((abs(means[c] - others) / sd[j], name, j, c, means[c], others))
        print(f"\nchain means furthest from the other chains' (pooled SDs):")
        print(f"{'parameter':<24}{'index':>6}{'chain':>6}{'SDs':>8}{'chain mean':>12}{'others':>12}")
        for d, name, j, c, m, o in sorted(rows, reverse=True)[: a.top]:
            print(f"{name:<24}{j:>6}{c:>6}{d:>8.2f}{m:>12.4f}{o:>12.4f}")
    if not div.any():
        return
    div = div.ravel()
    rows = []
    for name in post.data_vars:
        values = post[name].values
        values = values.reshape(values.shape[0] * values.shape[1], -1)
        if values.shape[1] > 50:  # subject-level vectors: too many to list
            continue
        for j in range(values.shape[1]):
            rank = (np.argsort(np.argsort(values[:, j])) + 0.5) / len(values)
            rows.append((abs(rank[div].mean() - 0.5), name, j, rank[div].mean()))
    print(f"\n{'parameter':<28}{'index':>6}{'mean rank of divergent draws':>30}")
    for _, name, j, r in sorted(rows, reverse=True)[: a.top]:
        print(f"{name:<28}{j:>6}{r:>30.4f}")


if __name__ == "__main__":
    main()
