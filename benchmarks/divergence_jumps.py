"""Which coordinates do divergent trajectories move? nutpie's stored divergences, ranked by jump.

    python benchmarks/divergence_jumps.py [--target-accept 0.95] [--draws 2000] [--cohort-form ctx=direct]

The recovery test's cohort (100 subjects, seed 1), the sampled model of ``IndividualModel`` with the
default config, nutpie with ``store_divergences`` and ``store_unconstrained``: 4 chains, 1500 tuning steps,
sampler seed 1 (chain starts without the data-informed levels ``IndividualModel.fit`` uses, so counts differ
from a fit's). For every divergent draw it prints the unconstrained coordinates with the largest
|end - start| of the divergent trajectory and those whose start lies furthest from the posterior mean, both
in posterior SDs. ``--cohort-form LEVEL=direct|offset`` overrides ``models.layout.level_layout``'s cohort
form of a level: ``ctx=direct`` is the layout before its rule for levels that keep sampled intercepts (the
divergences located this way), the default layout is ``ctx=offset``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--target-accept", type=float, default=0.95)
    ap.add_argument("--draws", type=int, default=2000)
    ap.add_argument("--cohort-form", nargs="*", default=[], help="LEVEL=direct|offset overrides")
    a = ap.parse_args()
    import nutpie

    import bonebayes.models.individual as individual
    from bonebayes.datasets.synthetic import SyntheticDesign, simulate_cohort
    from bonebayes.inference import compile_nutpie

    forms = dict(p.split("=", 1) for p in a.cohort_form)
    if forms:
        original = individual.level_layout

        def patched(data, cfg):  # noqa: ANN001, ANN202
            out = original(data, cfg)
            for lv, form in forms.items():
                out[lv] = (form, out[lv][1])
            print(f"layout: {out}")
            return out

        individual.level_layout = patched
    cohort = simulate_cohort(SyntheticDesign(n_subjects=100), seed=1)
    model = individual.IndividualModel(cohort.observations, cohort.exposures)
    compiled = compile_nutpie(model.sampling_model, cores=2)
    order = compiled._make_initial_points.order  # the flat unconstrained layout (inference._FlatStarts)
    ip = model.sampling_model.initial_point()
    labels = np.array([f"{n}[{j}]" if np.size(ip[n]) > 1 else n for n in order for j in range(np.size(ip[n]))])
    t = time.perf_counter()
    idata = nutpie.sample(compiled, draws=a.draws, tune=1500, chains=4, seed=1, cores=2,
                          target_accept=a.target_accept, progress_bar=False, low_rank_modified_mass_matrix=True,
                          store_divergences=True, store_unconstrained=True)
    st = idata.sample_stats
    div = st["diverging"].values
    print(f"sampling {time.perf_counter() - t:.0f} s; divergences {int(div.sum())}, per chain {div.sum(axis=1)}; "
          f"mean leapfrog {float(st['n_steps'].mean()):.1f}")
    draws = st["unconstrained_draw"].values.reshape(-1, len(labels))
    mean, sd = draws.mean(axis=0), draws.std(axis=0) + 1e-300
    start, end = st["divergence_start"].values, st["divergence_end"].values
    for c, d in zip(*np.nonzero(div)):
        jump = np.abs(end[c, d] - start[c, d]) / sd
        where = (start[c, d] - mean) / sd
        top, far = np.argsort(jump)[::-1][:6], np.argsort(np.abs(where))[::-1][:6]
        print(f"chain {c} draw {d}: jump/SD " + ", ".join(f"{labels[j]} {jump[j]:.1f}" for j in top))
        print("    start furthest (SDs): " + ", ".join(f"{labels[j]} {where[j]:+.1f}" for j in far))


if __name__ == "__main__":
    main()
