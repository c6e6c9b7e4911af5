"""Benchmark treatment projections: 1,000 posterior draws x 10 arms x 20 years at monthly resolution.

    python benchmarks/bench_projection.py [--fit results/fit.nc] [--draws 1000] [--arms 10] [--years 20]
                                          [--repeats 3] [--no-contrasts] [--json benchmarks/results/bench_projection.json]

Times ``bonebayes.projections.project`` end to end (scenario -> schedule -> batched physics -> endpoints ->
contrasts -> summaries) and its two halves, plus rendering the JSON output, as the best and median of
``--repeats`` runs (wall clock and process CPU time: on a shared machine the CPU time is the steadier
figure). Peak memory: the tracemalloc peak of one projection (NumPy allocations are traced) and the process's
maximum RSS. Without ``--fit`` (or if the file is missing) the posterior is drawn from the priors with NumPy,
which costs the same to project. Prints a table and writes JSON (atomically). Target: < 2 s.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import time
import tracemalloc
from pathlib import Path

import numpy as np

REGIMENS: list[tuple[str, list[dict]]] = [
    ("placebo", []),
    (
        "denosumab",
        [dict(drug="denosumab", dose=60, unit="mg", every_months=6, start_month=0, stop_month=240)],
    ),
    ("alendronate", [dict(drug="alendronate", dose=10, unit="mg/day", start_month=0, stop_month=240)]),
    (
        "zoledronate",
        [dict(drug="zoledronate", dose=5, unit="mg", every_months=12, start_month=0, stop_month=240)],
    ),
    (
        "teriparatide_to_alendronate",
        [
            dict(drug="teriparatide", dose=20, unit="ug/day", start_month=0, stop_month=24),
            dict(drug="alendronate", dose=10, unit="mg/day", start_month=24, stop_month=240),
        ],
    ),
    (
        "estradiol",
        [dict(drug="estradiol", route="oral", dose=1, unit="mg/day", start_month=0, stop_month=240)],
    ),
    (
        "denosumab_stop",
        [dict(drug="denosumab", dose=60, unit="mg", every_months=6, start_month=0, stop_month=54)],
    ),
    (
        "denosumab_to_zoledronate",
        [
            dict(drug="denosumab", dose=60, unit="mg", every_months=6, start_month=0, stop_month=54),
            dict(drug="zoledronate", dose=5, unit="mg", start_month=60, stop_month=60),
        ],
    ),
    (
        "alendronate_holiday",
        [
            dict(drug="alendronate", dose=10, unit="mg/day", start_month=0, stop_month=60),
            dict(drug="alendronate", dose=10, unit="mg/day", start_month=96, stop_month=240),
        ],
    ),
    (
        "glucocorticoid_course",
        [dict(drug="glucocorticoid", dose=7.5, unit="mg/day", start_month=0, stop_month=12)],
    ),
]


def prior_posterior(draws: int, seed: int = 0):  # noqa: ANN201
    """A posterior-shaped Dataset of prior draws (NumPy) with the published fit's axes."""
    import xarray as xr

    from bonebayes.models.priors import E_FORM_MEAN, G_OPG_MEAN, G_RANKL_MEAN, GAMMA_MEAN, PRIORS

    rng = np.random.default_rng(seed)
    hormones = ["estradiol", "testosterone", "pth", "glucocorticoid", "thyroid"]
    n = (1, draws)

    def pr(name: str, k: int | None = None, mu: dict | None = None) -> np.ndarray:
        if mu is not None:
            p = PRIORS[name]
            return np.stack([type(p)(p.dist, mu[h], p.b).sample(rng, n) for h in hormones], axis=-1)
        return PRIORS[name].sample(rng, n if k is None else (*n, k))

    d = {
        "k_C": pr("k_C"),
        "k_B": pr("k_B"),
        "k_M": pr("k_M", 3),
        "lam": pr("lam", 3),
        "gamma": pr("gamma", mu=GAMMA_MEAN),
        "e_form": pr("e_form", mu=E_FORM_MEAN),
        "g_rankl": pr("g_rankl", mu=G_RANKL_MEAN),
        "g_opg": pr("g_opg", mu=G_OPG_MEAN),
        "emax_res": pr("emax_res", 3),
        "ec50_res": pr("ec50_res", 3),
        "ec50_ana": pr("ec50_ana", 1),
        "emax_ana": pr("eref_ana", 1) * 1.5,
        "kappa_ana": pr("kappa_ana", 1),
        "tau_kM_study": pr("tau_kM_study"),
        "tau_drift": pr("tau_drift"),
    }
    from bonebayes.projections.engine import PARAMETER_DIMS as dims

    return xr.Dataset(
        {k: (("chain", "draw") + ((dims[k],) if k in dims else ()), v) for k, v in d.items()},
        coords={
            "chain": [0],
            "draw": np.arange(draws),
            "site": ["lumbar_spine", "total_hip", "femoral_neck"],
            "hormone": hormones,
            "antiresorptive": ["alendronate", "zoledronate", "denosumab"],
            "anabolic": ["teriparatide"],
        },
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fit", default="results/fit.nc")
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--arms", type=int, default=10)
    ap.add_argument("--years", type=float, default=20.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-contrasts", action="store_true", help="skip the arm-vs-placebo contrasts")
    ap.add_argument("--json", default="benchmarks/results/bench_projection.json")
    a = ap.parse_args()
    if not 1 <= a.arms <= len(REGIMENS):
        ap.error(f"--arms must be between 1 and {len(REGIMENS)}")

    from bonebayes._atomic import write_text_atomic
    from bonebayes.projections import Scenario, project
    from bonebayes.projections.engine import load_posterior
    from bonebayes.projections.output import render
    from bonebayes.projections.summary import summarize

    if Path(a.fit).is_file():
        post, prov, _ = load_posterior(a.fit)
        post = post.load()
        source = f"{a.fit} ({prov.get('sampler', '?')}, {post.sizes['chain'] * post.sizes['draw']} draws)"
    else:
        post, prov = prior_posterior(a.draws), {"config": {}}
        source = "prior draws (NumPy; no fit file)"
    fit = {"posterior": post, "provenance": prov}

    class _Fit:  # the loaded posterior, so file reading is not timed
        idata = type("I", (), {"posterior": fit["posterior"]})()
        provenance = fit["provenance"]

    months = int(round(12 * a.years))
    arms = dict(REGIMENS[: a.arms])
    for regimen in arms.values():
        for item in regimen:
            item["stop_month"] = min(item["stop_month"], months)
            item["start_month"] = min(item["start_month"], item["stop_month"])
    spec = {
        "name": "benchmark",
        "population": "postmenopausal",
        "years_since_menopause": 5,
        "times_months": list(range(months + 1)),
        "arms": {k: {"regimen": v} for k, v in arms.items()},
        "contrasts": [] if a.no_contrasts else [{"arms": [k, "placebo"]} for k in arms if k != "placebo"],
    }
    scn = Scenario.from_dict(spec)

    def timed(fn):  # noqa: ANN001, ANN202
        w, c = time.perf_counter(), time.process_time()
        out = fn()
        return out, time.perf_counter() - w, time.process_time() - c

    project(_Fit, scn, draws=min(a.draws, 50))  # warm-up (imports, caches)
    rec: dict[str, list[float]] = {
        k: []
        for k in ("total_wall", "total_cpu", "physics_endpoints_wall", "summary_wall", "render_json_wall")
    }
    for _ in range(a.repeats):
        ds, w, c = timed(lambda: project(_Fit, scn, draws=a.draws))
        rec["total_wall"].append(w)
        rec["total_cpu"].append(c)
        raw, w, _ = timed(lambda: project(_Fit, scn, draws=a.draws, summary=False))
        rec["physics_endpoints_wall"].append(w)
        _, w, _ = timed(lambda: summarize(raw))
        rec["summary_wall"].append(w)
        _, w, _ = timed(lambda: render(ds, "json"))
        rec["render_json_wall"].append(w)
    tracemalloc.start()
    project(_Fit, scn, draws=a.draws)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    n_draws = int(ds.sizes["draw"])
    out = {
        "fit": source,
        "draws": n_draws,
        "arms": a.arms,
        "contrasts": int(ds.sizes.get("contrast", 0)),
        "years": a.years,
        "times": int(ds.sizes["time"]),
        "sites": int(ds.sizes["site"]),
        "cells_per_draw_variable": int(ds["bmd"].size // n_draws),
        "repeats": a.repeats,
        **{f"{k}_best_s": round(min(v), 3) for k, v in rec.items()},
        **{f"{k}_median_s": round(statistics.median(v), 3) for k, v in rec.items()},
        "tracemalloc_peak_mb": round(peak / 2**20, 1),
        "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "dataset_mb": round(ds.nbytes / 2**20, 1),
        "target_s": 2.0,
        "meets_target": bool(min(rec["total_wall"]) < 2.0),
        "machine": f"{platform.machine()}, {platform.python_version()}, numpy {np.__version__}",
        "load_average": [round(x, 2) for x in __import__("os").getloadavg()],
    }
    width = max(map(len, out))
    print(
        f"projection benchmark: {n_draws} draws x {a.arms} arms x {a.years:g} years monthly "
        f"({out['times']} times x {out['sites']} sites), {out['contrasts']} contrasts"
    )
    for k, v in out.items():
        print(f"  {k:<{width}}  {v}")
    if a.json:
        write_text_atomic(json.dumps(out, indent=2) + "\n", a.json)
        print(f"wrote {a.json}")


if __name__ == "__main__":
    main()
