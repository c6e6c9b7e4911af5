"""Who should differentiate the log density for nutpie: PyTensor's symbolic gradient or JAX's autodiff?

    python benchmarks/bench_gradient_backend.py [--model reference|published] [--subjects 150]
        [--gradients pytensor,jax] [--iterations 100] [--json benchmarks/results/bench_gradient_backend.json]

For each gradient back-end (the log density itself is compiled by JAX in both cases), in its own process so
that XLA caches do not carry over: nutpie's ``compile_pymc_model`` time, the time of the first one-draw
sample (dominated by XLA's compilation of logp+gradient), and the cost of one gradient during a short
single-chain run (``--iterations`` warm-up + draws; seconds / leapfrog steps). Prints a table, writes JSON.
bonebayes' default (``inference.NUTPIE_GRADIENT``) is chosen from these figures.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def _model(kind: str, subjects: int):  # noqa: ANN202
    if kind == "published":
        from bonebayes.datasets.published import load_published
        from bonebayes.models.published import PublishedModel

        return PublishedModel(load_published()).model
    from bench_reference import reference_model

    return reference_model(subjects).model


def one(kind: str, subjects: int, gradient: str, iterations: int) -> dict:
    """Measure one gradient back-end in this process."""
    import nutpie
    from pymc.model.transform.optimization import freeze_dims_and_data

    model = _model(kind, subjects)
    t0 = time.perf_counter()
    compiled = nutpie.compile_pymc_model(freeze_dims_and_data(model), backend="jax", gradient_backend=gradient,
                                         freeze_model=False)
    t1 = time.perf_counter()
    nutpie.sample(compiled, draws=1, tune=1, chains=1, progress_bar=False, seed=1)
    t2 = time.perf_counter()
    half = max(1, iterations // 2)
    trace = nutpie.sample(compiled, draws=half, tune=half, chains=1, progress_bar=False, seed=1)
    t3 = time.perf_counter()
    steps = int(trace.sample_stats["n_steps"].sum())
    if hasattr(trace, "warmup_sample_stats"):
        steps += int(trace.warmup_sample_stats["n_steps"].sum())
    return {"model": kind, "subjects": subjects if kind == "reference" else None, "gradient": gradient,
            "compile_s": t1 - t0, "first_sample_s": t2 - t1, "run_s": t3 - t2, "leapfrog_steps": steps,
            "ms_per_gradient": 1000 * (t3 - t2) / max(steps, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", choices=("reference", "published"), default="reference")
    ap.add_argument("--subjects", type=int, default=150)
    ap.add_argument("--gradients", default="pytensor,jax")
    ap.add_argument("--iterations", type=int, default=100)
    ap.add_argument("--json", default=str(HERE / "results" / "bench_gradient_backend.json"))
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.one:
        print("RESULT " + json.dumps(one(a.model, a.subjects, a.one, a.iterations)), flush=True)
        return
    rows = []
    for g in a.gradients.split(","):
        cmd = [sys.executable, __file__, "--model", a.model, "--subjects", str(a.subjects),
               "--iterations", str(a.iterations), "--one", g]
        out = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ), check=True).stdout
        rows.append(json.loads(next(line for line in out.splitlines() if line.startswith("RESULT "))[7:]))
    print(f"{'gradient':<10}{'compile s':>11}{'1st sample s':>14}{'ms/gradient':>13}{'steps':>8}")
    for r in rows:
        print(f"{r['gradient']:<10}{r['compile_s']:>11.1f}{r['first_sample_s']:>14.1f}"
              f"{r['ms_per_gradient']:>13.3f}{r['leapfrog_steps']:>8d}")
    path = Path(a.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    old = json.loads(path.read_text()) if path.exists() else {}
    old[a.model if a.model == "published" else f"reference_{a.subjects}"] = rows
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(old, indent=1))
    tmp.replace(path)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
