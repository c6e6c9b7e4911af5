"""Per-parameter bulk ESS and R-hat of a short fit of the reference cohort (finds the slowest parameters).

    python benchmarks/ess_by_parameter.py [--subjects 500] [--draws 300] [--intercepts marginal|sampled]

``IndividualModel.fit`` (bonebayes' default path, 2 chains x (draws + draws), seed 1) on the reference design of
``bench_reference.py``; prints bulk ESS and R-hat of the hierarchy's scale and mean parameters per level.
"""

from __future__ import annotations

import argparse
import time

from bench_reference import reference_model

VARS = ("mu_level", "tau_cohort", "tau_subject", "sigma_level", "tau_kM", "k_M")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--subjects", type=int, default=500)
    ap.add_argument("--draws", type=int, default=300)
    ap.add_argument("--intercepts", choices=("sampled", "marginal"), default="marginal")
    a = ap.parse_args()
    from bonebayes import _arviz

    model = reference_model(a.subjects, intercepts=a.intercepts)
    t = time.perf_counter()
    fit = model.fit(draws=a.draws, tune=a.draws, chains=2, seed=1, progress=False)
    print(f"fit {time.perf_counter() - t:.0f} s; levels {list(model.data.levels)}")
    post = fit.idata.posterior
    for v in VARS:
        ess = _arviz.ess(post, [v])[v].values.round(0).ravel().tolist()
        rhat = _arviz.rhat(post, [v])[v].values.round(3).ravel().tolist()
        print(f"{v}: bulk ESS {ess}, R-hat {rhat}")
    print(fit.verdict)


if __name__ == "__main__":
    main()
