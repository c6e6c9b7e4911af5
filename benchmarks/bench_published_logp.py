"""Benchmark the published-arm model's log density + gradient: compile time and time per evaluation.

    python benchmarks/bench_published_logp.py [--modes JAX,NUMBA,FAST_RUN] [--evals 300] [--json out.json]

One evaluation of log p and its gradient is what every NUTS leapfrog step costs, so this number times the
leapfrog steps per draw sets the wall time of a fit. The point is the prior support point of the frozen model
(what nutpie compiles). Also reports the history and window grid sizes, which set the graph's cost.
"""

from __future__ import annotations

import argparse
import json
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--modes", default="JAX", help="comma-separated PyTensor modes (JAX, NUMBA, FAST_RUN)")
    ap.add_argument("--evals", type=int, default=300)
    ap.add_argument("--history-step", type=float, default=None, help="override history_step_months")
    ap.add_argument("--json", default=None)
    a = ap.parse_args()

    import pytensor
    import pytensor.tensor as pt
    from pymc.initial_point import make_initial_point_fn
    from pymc.model.transform.optimization import freeze_dims_and_data

    from bonebayes.models.published import PublishedConfig, PublishedModel

    cfg = PublishedConfig() if a.history_step is None else PublishedConfig(history_step_months=a.history_step)
    pmod = PublishedModel(config=cfg)
    model = freeze_dims_and_data(pmod.model)
    point = make_initial_point_fn(model=model, jitter_rvs=set(), default_strategy="support_point",
                                  return_transformed=True)(0)
    args = [point[v.name] for v in model.value_vars]
    logp = model.logp()
    outputs = [logp, *pt.grad(logp, model.value_vars)]
    sched = pmod.data.schedule
    rows = []
    for mode in [m.strip() for m in a.modes.split(",") if m.strip()]:
        t = time.perf_counter()
        fn = pytensor.function(model.value_vars, outputs, mode=mode, on_unused_input="ignore")
        fn(*args)
        compile_s = time.perf_counter() - t
        t = time.perf_counter()
        for _ in range(a.evals):
            fn(*args)
        ms = (time.perf_counter() - t) / a.evals * 1e3
        rows.append({"mode": mode, "compile_s": round(compile_s, 2), "logp_grad_ms": round(ms, 3)})
    meta = {"rows": pmod.data.n_rows, "units": len(pmod.data.units), "window_months": sched.n_window,
            "history_steps": int(sched.patterns.x.shape[0]), "history_patterns": int(sched.patterns.x.shape[1]),
            "parameters": int(sum(v.size for v in args))}
    print(" ".join(f"{k}={v}" for k, v in meta.items()))
    print(f"{'mode':<10} {'compile (s)':>12} {'logp+grad (ms)':>15}")
    for r in rows:
        print(f"{r['mode']:<10} {r['compile_s']:>12.1f} {r['logp_grad_ms']:>15.3f}")
    if a.json:
        with open(a.json, "w") as fh:
            json.dump({"meta": meta, "results": rows}, fh, indent=2)


if __name__ == "__main__":
    main()
