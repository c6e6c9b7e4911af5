"""Sweep throughput on a local dask cluster: fits per minute, and the per-task overhead of the sweep machinery.

    python benchmarks/bench_sweep.py [--workers 2] [--fits 8] [--subjects 30] [--draws 200] [--tune 200]
        [--chains 2] [--sampler nutpie] [--overhead-tasks 200] [--json benchmarks/results/bench_sweep.json]

Two measurements, each a fresh results directory:

* overhead: ``--overhead-tasks`` no-op tasks (``bonebayes.sweep.testing:echo_task``): tasks per second
  through planning, submission, atomic commit of one record each, and the summary table;
* fits: ``--fits`` individual-model fits (synthetic cohorts of ``--subjects`` subjects, one per seed) as
  ``[[fit]]`` tasks: fits per minute of sweep wall time (cluster start included), and the mean task time.

Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--fits", type=int, default=8)
    ap.add_argument("--subjects", type=int, default=30)
    ap.add_argument("--draws", type=int, default=200)
    ap.add_argument("--tune", type=int, default=200)
    ap.add_argument("--chains", type=int, default=2)
    ap.add_argument("--sampler", default="nutpie")
    ap.add_argument("--overhead-tasks", type=int, default=200)
    ap.add_argument("--json", default=str(HERE / "results" / "bench_sweep.json"))
    a = ap.parse_args()

    from bonebayes.sweep import expand, parse_spec, run_sweep

    out: dict = {"workers": a.workers, "cpus": os.cpu_count(), "load_average_start": os.getloadavg()}
    with tempfile.TemporaryDirectory() as tmp:
        if a.overhead_tasks:
            spec = parse_spec({"call": [{"function": "bonebayes.sweep.testing:echo_task",
                                         "calls": [{"value": i} for i in range(a.overhead_tasks)]}]})
            t = time.perf_counter()
            rep = run_sweep(spec, Path(tmp) / "overhead", workers=a.workers)
            wall = time.perf_counter() - t
            assert rep.ok
            out["overhead"] = {"tasks": a.overhead_tasks, "wall_s": wall, "tasks_per_s": a.overhead_tasks / wall}
        if a.fits:
            spec = parse_spec({
                "sampler": {"sampler": a.sampler, "draws": a.draws, "tune": a.tune, "chains": a.chains},
                "fit": [{"seeds": [1], "save_fit": True, "datasets": {
                    f"synth{i}": {"synthetic": {"n_subjects": a.subjects, "n_cohorts": 2, "seed": i + 1}}
                    for i in range(a.fits)}}]})
            t = time.perf_counter()
            tasks = expand(spec)
            plan = time.perf_counter() - t
            rep = run_sweep(spec, Path(tmp) / "fits", workers=a.workers, tasks=tasks)
            wall = time.perf_counter() - t
            tab = rep.table
            out["fits"] = {
                "fits": a.fits, "subjects": a.subjects, "sampler": a.sampler, "draws": a.draws, "tune": a.tune,
                "chains": a.chains, "plan_s": plan, "wall_s": wall, "fits_per_min": 60 * rep.n_done / wall,
                "done": rep.n_done, "failed": rep.n_failed,
                "mean_task_s": float(tab["wall_time_s"].astype(float).mean()),
                "gate_failures": rep.gate_failures,
            }
    out["load_average_end"] = os.getloadavg()
    print("measurement | value")
    print("----------- | -----")
    if "overhead" in out:
        o = out["overhead"]
        print(f"no-op tasks | {o['tasks']} in {o['wall_s']:.1f} s = {o['tasks_per_s']:.1f} tasks/s "
              f"({a.workers} workers, cluster start included)")
    if "fits" in out:
        f = out["fits"]
        print(f"fits ({f['sampler']}, {f['subjects']} subjects, {f['chains']}x({f['tune']}+{f['draws']})) | "
              f"{f['done']}/{f['fits']} in {f['wall_s']:.0f} s = {f['fits_per_min']:.2f} fits/min; "
              f"mean task {f['mean_task_s']:.0f} s; planning {f['plan_s']:.1f} s")
    Path(a.json).parent.mkdir(parents=True, exist_ok=True)
    Path(a.json).write_text(json.dumps(out, indent=2))
    print(f"wrote {a.json}")


if __name__ == "__main__":
    main()
