"""Reference-fit benchmark: bonebayes' default path against Stan, PyMC's own NUTS and numpyro, same model and data.

    python benchmarks/bench_reference.py [--subjects 500] [--draws 1000] [--tune 1000] [--chains 4]
        [--methods nutpie,stan,pymc,numpyro] [--json benchmarks/results/bench_reference.json] [--check-logp]
        [--method-timeout SECONDS] [--target-accept 0.95]

Reference data: a synthetic cohort (``bonebayes.datasets.synthetic``, seed 1) of ``--subjects`` subjects in 3
cohorts with 7 visits (months 0, 1, 3, 6, 12, 18, 24): CTX, P1NP and BMD at two sites (lumbar spine, total hip)
at every visit, serum RANKL/OPG at baseline. Model: ``IndividualModel`` with the default configuration;
``benchmarks/stan/reference.stan`` is its translation to Stan (``benchmarks/stan/export.py`` passes the same
schedule, inputs, centring choices and prior hyperparameters as data; ``--check-logp`` verifies that the two
log densities agree up to a constant at random points before timing anything).

Methods (each in its own process, so peak memory and XLA settings are per method; same draws, tuning, chains,
seed, target acceptance (``--target-accept``, default the individual model's 0.95) for all, and chain starts
drawn the same way (``bonebayes.initial_points.ChainStarts``: data-informed levels and a jitter no wider than
each prior); Stan's own U(-2, 2) and PyMC's U(-1, 1) jitter on the
unconstrained scale are 10-20 prior SDs for the narrow elasticity priors and strand chains):

* ``nutpie``  bonebayes' default path (``bonebayes.inference.sample``): nutpie, JAX back-end, low-rank mass
  matrix adaptation;
* ``stan``    PyStan 3 (CmdStan-equivalent NUTS, diagonal mass matrix), ``pip install -e '.[bench]'``;
* ``pymc``    PyMC's own NUTS (C back-end), ``pm.sample``;
* ``numpyro`` numpyro NUTS through ``pymc.sampling.jax.sample_numpyro_nuts`` (JAX).

Reported per method: compile time, sampling time, total wall time, min bulk ESS over the population parameters,
min bulk ESS per second of sampling, max R-hat, divergences, whether the gate (R-hat <= 1.01 and min bulk ESS
>= 400 for every population parameter) was met, the wall time until the gate (measured when met; otherwise a
projection: compile + warm-up + the draw time needed at the measured ESS rate, labelled as projected), peak
RSS; and ESS/s ratios of bonebayes' default path to each other method. Prints a table and writes JSON.

``--method-timeout`` time-boxes each method: a method still running after that many seconds is killed and
recorded as "did not finish in S s" (no ESS, so no ratio). The JSON is rewritten atomically after every
method, so an interrupted run keeps the rows it finished.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "stan"))
VISITS = (0, 1, 3, 6, 12, 18, 24)
METHODS = ("nutpie", "stan", "pymc", "numpyro")
TARGET_ACCEPT = 0.95  # bonebayes' default for the individual model (IndividualModel.TARGET_ACCEPT)
GATE_RHAT, GATE_ESS = 1.01, 400.0


def reference_model(subjects: int, seed: int = 1, intercepts: str = "marginal"):  # noqa: ANN201
    from bonebayes.datasets.synthetic import SyntheticDesign, simulate_cohort
    from bonebayes.models.individual import IndividualModel

    design = SyntheticDesign(n_subjects=subjects, n_cohorts=3, visits=VISITS, bmd_visits=VISITS,
                             serum_visits=(0,), sites=("lumbar_spine", "total_hip"))
    cohort = simulate_cohort(design, seed=seed)
    return IndividualModel(cohort.observations, cohort.exposures, {"intercepts": intercepts})


def _cpu_s() -> float:
    """CPU seconds (user + system) of this process, its threads and its children (finished and alive)."""
    import psutil

    t = os.times()
    total = t.user + t.system + t.children_user + t.children_system
    for child in psutil.Process().children(recursive=True):
        try:
            c = child.cpu_times()
            total += c.user + c.system
        except psutil.Error:
            pass
    return total


def _population_diag(idata, names) -> dict:  # noqa: ANN001
    import arviz as az
    import numpy as np

    names = [n for n in names if n in idata.posterior]
    ess = az.ess(idata, var_names=names, method="bulk")
    rhat = az.rhat(idata, var_names=names)
    ess_min = float(min(np.nanmin(ess[n].values) for n in names if ess[n].size))
    rhat_max = float(max(np.nanmax(rhat[n].values) for n in names if rhat[n].size))
    worst = sorted(((float(np.nanmin(ess[n].values)), n) for n in names if ess[n].size))[:3]
    st = idata.sample_stats
    div = int(st["diverging"].sum()) if "diverging" in st else -1
    steps = next((float(st[k].mean()) for k in ("n_steps", "n_leapfrog", "n_leapfrog__") if k in st), None)
    return {"min_bulk_ess": ess_min, "rhat_max": rhat_max, "divergences": div, "mean_leapfrog": steps,
            "slowest": [f"{n} ({e:.0f})" for e, n in worst]}


def run_one(method: str, a: argparse.Namespace) -> dict:
    """Fit with one method in this process; returns the measurements."""
    if method in ("nutpie", "numpyro"):
        from bonebayes.inference import configure_xla_cpu

        configure_xla_cpu(one_thread_per_chain=method == "nutpie" or a.chains > 1)
    t_build = time.perf_counter()
    model = reference_model(a.subjects, intercepts=a.intercepts)
    names = model.population_vars()
    pm_model = model.sampling_model  # what NUTS sees (intercepts integrated out with --intercepts marginal)
    build_s = time.perf_counter() - t_build
    cores = min(a.chains, os.cpu_count() or 1)
    out: dict = {"method": method, "model_build_s": build_s}
    # every method starts its chains where bonebayes does (data-informed levels, jitter scaled to the priors)
    from bonebayes.initial_points import ChainStarts

    free = {v.name for v in pm_model.free_RVs}
    init = {k: v for k, v in model.initial_values().items() if k in free}
    starts = ChainStarts(pm_model, init, model.no_jitter(init)).constrained(a.chains, a.seed)
    if method == "nutpie":
        from bonebayes.inference import compile_nutpie, sample_compiled

        t = time.perf_counter()
        compiled = compile_nutpie(pm_model, initvals=init, no_jitter=model.no_jitter(init), cores=cores)
        out["compile_s"] = time.perf_counter() - t
        t, c0 = time.perf_counter(), _cpu_s()
        idata = sample_compiled(compiled, draws=a.draws, tune=a.tune, chains=a.chains, seed=a.seed, cores=cores,
                                target_accept=a.target_accept, progress=False)
        out["sample_s"] = time.perf_counter() - t  # includes XLA's JIT at the first evaluation
        out["sample_cpu_s"] = _cpu_s() - c0
        t = time.perf_counter()
        idata = model.complete_posterior(idata, a.seed)  # draws integrated-out intercepts back (if any)
        out["posthoc_s"] = time.perf_counter() - t
        out["note"] = ("bonebayes default (inference.compile_nutpie + sample_compiled): nutpie + JAX, low-rank "
                       "mass matrix; sample_s includes the JIT")
    elif method == "pymc":
        import pymc as pm

        t, c0 = time.perf_counter(), _cpu_s()
        with pm_model:
            idata = pm.sample(draws=a.draws, tune=a.tune, chains=a.chains, cores=cores, random_seed=a.seed,
                              initvals=starts, init="adapt_diag", target_accept=a.target_accept,
                              progressbar=False, compute_convergence_checks=False)
        total = time.perf_counter() - t
        out["sample_s"] = float(idata.sample_stats.attrs.get("sampling_time", total))
        out["compile_s"] = total - out["sample_s"]
        out["sample_cpu_s"] = (_cpu_s() - c0) * out["sample_s"] / total  # compile share removed pro rata
        out["note"] = "PyMC NUTS, C back-end, diagonal mass matrix"
    elif method == "numpyro":
        from pymc.sampling.jax import sample_numpyro_nuts

        t, c0 = time.perf_counter(), _cpu_s()
        with pm_model:
            idata = sample_numpyro_nuts(draws=a.draws, tune=a.tune, chains=a.chains, random_seed=a.seed,
                                        initvals=starts, jitter=False, target_accept=a.target_accept,
                                        progressbar=False,
                                        chain_method="parallel" if cores > 1 else "sequential")
        total = time.perf_counter() - t
        st = idata.attrs if hasattr(idata, "attrs") else {}
        samp = float(idata.posterior.attrs.get("sampling_time", st.get("sampling_time", total)))
        out["sample_s"] = samp
        out["compile_s"] = total - samp
        out["sample_cpu_s"] = (_cpu_s() - c0) * samp / total
        out["note"] = "numpyro NUTS via PyMC (JAX), diagonal mass matrix; compile_s is JAX transpile + JIT"
    elif method == "stan":
        try:
            import stan
        except ImportError:
            return {"method": "stan", "skipped": "PyStan is not installed (pip install -e '.[bench]')"}
        import arviz as az

        from export import STAN_POPULATION, build_posterior, stan_point

        t = time.perf_counter()
        try:
            post = build_posterior(model, seed=a.seed)
        except Exception as e:  # noqa: BLE001 - no compiler, build failure: say so and skip
            return {"method": "stan", "skipped": f"Stan build failed: {type(e).__name__}: {str(e)[:300]}"}
        out["compile_s"] = time.perf_counter() - t
        full = model.model  # Stan samples every intercept: starts of the full model (same levels, same seed)
        f_init = {k: v for k, v in model.initial_values().items() if k in {v.name for v in full.free_RVs}}
        f_starts = ChainStarts(full, f_init, model.no_jitter(f_init)).constrained(a.chains, a.seed)
        t, c0 = time.perf_counter(), _cpu_s()
        fit = post.sample(num_chains=a.chains, num_samples=a.draws, num_warmup=a.tune, delta=a.target_accept,
                          init=[{k: v for k, v in stan_point(model, p).items() if v != []} for p in f_starts])
        out["sample_s"] = time.perf_counter() - t
        out["sample_cpu_s"] = _cpu_s() - c0
        idata = az.from_pystan(posterior=fit)
        names = [n for n in STAN_POPULATION]
        out["note"] = ("PyStan 3 (Stan NUTS, diagonal mass matrix); compile_s is the C++ build (cached by "
                       "httpstan on reruns of the same program)")
    else:
        raise ValueError(method)
    if "diverging" not in idata.sample_stats and "divergent__" in idata.sample_stats:
        idata.sample_stats["diverging"] = idata.sample_stats["divergent__"]
    out.update(_population_diag(idata, names))
    if out.get("mean_leapfrog"):  # seconds per gradient evaluation per chain (cores run chains in parallel)
        out["s_per_gradient"] = out["sample_s"] * min(cores, a.chains) / (
            a.chains * (a.tune + a.draws) * out["mean_leapfrog"])
    out["peak_rss_mb"] = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                          + resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024
    return out


def check_logp(a: argparse.Namespace, n_points: int = 3) -> dict:
    """Stan and PyMC log densities (with Jacobians) at random points: their differences must be constant."""
    import numpy as np
    from export import build_posterior, stan_point

    model = reference_model(a.subjects)
    post = build_posterior(model, seed=1)
    m = model.model
    ip = m.initial_point(random_seed=1)
    to_values = m.compile_fn(m.unobserved_value_vars, inputs=m.value_vars, on_unused_input="ignore")
    logp = m.compile_logp(jacobian=True)
    rng = np.random.default_rng(0)
    diffs = []
    for _ in range(n_points):
        pt = {k: v + 0.3 * rng.normal(size=np.shape(v)) for k, v in ip.items()}
        vals = dict(zip([v.name for v in m.unobserved_value_vars], to_values(pt)))
        u = post.unconstrain_pars(stan_point(model, vals))
        diffs.append(float(logp(pt)) - float(post.log_prob(u, adjust_transform=True)))
    return {"pymc_minus_stan": diffs, "spread": max(diffs) - min(diffs)}


def _table(rows: list[dict], ref: dict | None) -> str:
    head = ["method", "compile s", "sample s", "sample CPU s", "total s", "min ESS", "ESS/s", "ESS/CPU-s",
            "leapfrog/draw", "R-hat", "div", "gate", "to gate s", "peak MB", "bonebayes x (wall)",
            "bonebayes x (CPU)"]
    lines = [" | ".join(head), " | ".join("-" * len(h) for h in head)]
    for r in rows:
        if r.get("skipped"):
            lines.append(f"{r['method']} | skipped: {r['skipped']}")
            continue
        ratio = (ref["ess_per_s"] / r["ess_per_s"]) if ref and r["ess_per_s"] else float("nan")
        cpu_ratio = (ref["ess_per_cpu_s"] / r["ess_per_cpu_s"]) if ref and ref.get("ess_per_cpu_s") and \
            r.get("ess_per_cpu_s") else float("nan")
        lines.append(" | ".join([
            r["method"], f"{r['compile_s']:.1f}", f"{r['sample_s']:.1f}", f"{r.get('sample_cpu_s') or float('nan'):.1f}",
            f"{r['total_s']:.1f}", f"{r['min_bulk_ess']:.0f}", f"{r['ess_per_s']:.3g}",
            f"{r.get('ess_per_cpu_s') or float('nan'):.3g}", f"{r.get('mean_leapfrog') or float('nan'):.0f}",
            f"{r['rhat_max']:.3f}", str(r["divergences"]),
            "yes" if r["gate_met"] else "no", f"{r['wall_to_gate_s']:.0f}{'' if r['gate_met'] else ' (proj.)'}",
            f"{r['peak_rss_mb']:.0f}", f"{ratio:.2f}", f"{cpu_ratio:.2f}"]))
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--subjects", type=int, default=500)
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--tune", type=int, default=1000)
    ap.add_argument("--chains", type=int, default=4)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--target-accept", type=float, default=TARGET_ACCEPT,
                    help="NUTS target acceptance for every method (default: the individual model's)")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--json", default=str(HERE / "results" / "bench_reference.json"))
    ap.add_argument("--check-logp", action="store_true", help="verify the Stan translation first")
    ap.add_argument("--method-timeout", type=float, default=None,
                    help="kill a method still running after this many seconds (recorded as not finished)")
    ap.add_argument("--intercepts", choices=("sampled", "marginal"), default="marginal",
                    help="ModelConfig.intercepts of the bonebayes model (default: the model's; numpyro and PyMC "
                         "NUTS sample the same PyMC model, Stan samples every intercept on the same layout)")
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)  # internal: run one method, print JSON
    a = ap.parse_args()
    from bonebayes._atomic import write_text_atomic

    if a.one:
        print("BENCH_RESULT " + json.dumps(run_one(a.one, a)), flush=True)
        return
    info: dict = {"subjects": a.subjects, "cohorts": 3, "visits": list(VISITS), "draws": a.draws, "tune": a.tune,
                  "chains": a.chains, "seed": a.seed, "target_accept": a.target_accept,
                  "intercepts": a.intercepts,
                  "cpus": os.cpu_count(),
                  "load_average_start": os.getloadavg()}
    if a.check_logp:
        info["logp_check"] = check_logp(a)
        print(f"Stan vs PyMC log density: differences {info['logp_check']['pymc_minus_stan']} "
              f"(spread {info['logp_check']['spread']:.2e}; constant = same density)", flush=True)
    rows, ref = [], None
    for method in [m.strip() for m in a.methods.split(",") if m.strip()]:
        cmd = [sys.executable, __file__, "--one", method, "--subjects", str(a.subjects), "--draws", str(a.draws),
               "--tune", str(a.tune), "--chains", str(a.chains), "--seed", str(a.seed),
               "--target-accept", str(a.target_accept), "--intercepts", a.intercepts]
        t = time.perf_counter()
        proc = _run_boxed(cmd, a.method_timeout)
        wall = time.perf_counter() - t
        out = proc.stdout.splitlines() if proc else []
        line = next((ln for ln in out if ln.startswith("BENCH_RESULT ")), None)
        if proc is None:
            r = {"method": method, "process_wall_s": wall,
                 "skipped": f"did not finish in {a.method_timeout:.0f} s (killed; no draws)"}
        elif line is None:
            r = {"method": method, "skipped": f"failed (exit {proc.returncode}): {proc.stderr.strip()[-400:]}"}
        else:
            r = json.loads(line[len("BENCH_RESULT "):])
        if not r.get("skipped"):
            r["process_wall_s"] = wall
            r["total_s"] = r["model_build_s"] + r["compile_s"] + r["sample_s"] + r.get("posthoc_s", 0.0)
            r["ess_per_s"] = r["min_bulk_ess"] / r["sample_s"]
            r["ess_per_cpu_s"] = r["min_bulk_ess"] / r["sample_cpu_s"] if r.get("sample_cpu_s") else None
            r["ess_per_s_incl_compile"] = r["min_bulk_ess"] / (r["compile_s"] + r["sample_s"])
            r["gate_met"] = bool(r["rhat_max"] <= GATE_RHAT and r["min_bulk_ess"] >= GATE_ESS)
            # until the gate: measured when met; else compile + warm-up share + draws needed at the ESS rate
            per_iter = r["sample_s"] / (a.tune + a.draws)
            draw_rate = r["min_bulk_ess"] / (per_iter * a.draws)
            r["wall_to_gate_s"] = (r["total_s"] if r["gate_met"] else
                                   r["model_build_s"] + r["compile_s"] + per_iter * a.tune + GATE_ESS / draw_rate
                                   + r.get("posthoc_s", 0.0))  # drawing intercepts back (bonebayes)
        rows.append(r)
        print(f"{method}: {json.dumps(r)}", flush=True)
        ref = _add_ratios(rows)
        partial = {"settings": {**info, "complete": False}, "results": rows}
        write_text_atomic(json.dumps(partial, indent=2), a.json)
    info["load_average_end"] = os.getloadavg()
    info["complete"] = True
    print()
    print(_table(rows, ref))
    print("\nbonebayes x = ESS/s of bonebayes' default path (nutpie) divided by the method's ESS/s "
          "(sampling time; compile excluded); (CPU) uses CPU seconds instead of wall seconds, which is the "
          "fairer measure on a shared machine. 'to gate s' is projected where the gate was not met.")
    write_text_atomic(json.dumps({"settings": info, "results": rows}, indent=2), a.json)
    print(f"wrote {a.json}")


def _run_boxed(cmd: list[str], timeout: float | None) -> subprocess.CompletedProcess | None:
    """Run ``cmd`` in its own process group; None if it was still running after ``timeout`` s (group killed:
    PyStan samples in worker processes, which a plain kill of the child would leave running)."""
    import signal

    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          start_new_session=True) as child:
        try:
            out, err = child.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            child.communicate()
            return None
    return subprocess.CompletedProcess(cmd, child.returncode, out, err)


def _add_ratios(rows: list[dict]) -> dict | None:
    """Add ESS/s ratios (wall, CPU) of bonebayes' default path to every other finished method; returns its row."""
    ref = next((r for r in rows if r["method"] == "nutpie" and not r.get("skipped")), None)
    for r in rows:
        if ref and not r.get("skipped") and r is not ref:
            r["bonebayes_ess_per_s_ratio"] = ref["ess_per_s"] / r["ess_per_s"]
            if ref.get("ess_per_cpu_s") and r.get("ess_per_cpu_s"):
                r["bonebayes_ess_per_cpu_s_ratio"] = ref["ess_per_cpu_s"] / r["ess_per_cpu_s"]
    return ref


if __name__ == "__main__":
    main()
