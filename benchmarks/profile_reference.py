"""Profile the reference model's log density + gradient: one evaluation's cost on each back-end.

    python benchmarks/profile_reference.py [--subjects 500] [--repeats 200] [--threads 2] [--no-stan]
        [--json ...]

Separates the two things that set ESS per second: the cost of one gradient (this script) and the number of
gradients per effective draw (geometry and mass-matrix adaptation; ``bench_reference.py`` reports leapfrog
steps per draw). Back-ends: JAX (what nutpie's default path and numpyro evaluate), PyTensor's C back-end
(PyMC's NUTS), Stan (PyStan's ``grad_log_prob``: a call through httpstan that costs far more than Stan's
own gradient inside its sampler, 242 ms at 500 subjects; ``bench_reference.py`` derives Stan's in-sampler cost
per gradient from sampling time and leapfrog steps). ``--threads 2`` also times the JAX gradient with two
threads evaluating at once, as nutpie's two chains do on two cores. XLA flags are bonebayes' own
(``bonebayes.inference.configure_xla_cpu``); ``BONEBAYES_XLA_YNN=1`` keeps XLA's YNNPACK fusions to compare.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "stan"))
sys.path.insert(0, str(HERE))


def _time(fn, repeats: int) -> float:  # noqa: ANN001
    fn()
    fn()
    t = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - t) / repeats


def _time_threads(fn, threads: int, repeats: int) -> float:  # noqa: ANN001
    """Mean ms per call when ``threads`` threads call ``fn`` at once (as nutpie's chains do)."""
    import threading

    per_call: list[float] = []

    def loop() -> None:
        fn()
        t = time.perf_counter()
        for _ in range(repeats):
            fn()
        per_call.append((time.perf_counter() - t) / repeats)

    workers = [threading.Thread(target=loop) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return 1e3 * float(np.mean(per_call))


def _xla_kernels(fn, top: int, calls: int = 50) -> dict:  # noqa: ANN001
    """Trace ``calls`` evaluations with jax.profiler; the ``top`` slowest XLA kernels (ms per evaluation) and
    the count and total of all kernels (events named like XLA fusions, dots and copies)."""
    import collections
    import gzip
    import tempfile

    import jax

    with tempfile.TemporaryDirectory() as d:
        fn()
        with jax.profiler.trace(d, create_perfetto_trace=True):
            for _ in range(calls):
                fn()
        trace = next(Path(d).rglob("*.trace.json.gz"))
        events = json.loads(gzip.decompress(trace.read_bytes()))["traceEvents"]
    per_kernel: collections.Counter = collections.Counter()
    for e in events:
        name = e.get("name", "")
        if e.get("ph") == "X" and not any(t in name for t in ("$", "::", "Pjit", " ", "Await")):
            per_kernel[name] += e.get("dur", 0) / 1e3 / calls  # us -> ms per evaluation
    ranked = per_kernel.most_common()
    print(f"XLA kernels: {len(ranked)} per evaluation, {sum(v for _, v in ranked):.3f} ms in total; slowest:")
    for name, ms in ranked[:top]:
        print(f"  {ms:7.3f} ms  {name}")
    return {"n_kernels": len(ranked), "total_ms": sum(v for _, v in ranked),
            "slowest": {name: ms for name, ms in ranked[:top]}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--subjects", type=int, default=500)
    ap.add_argument("--repeats", type=int, default=200)
    ap.add_argument("--no-stan", action="store_true")
    ap.add_argument("--threads", type=int, default=2,
                    help="also time the JAX gradient with this many threads evaluating at once "
                         "(nutpie runs one chain per thread); 1 skips it")
    ap.add_argument("--trace", type=int, default=0, metavar="K",
                    help="also trace 50 JAX evaluations with jax.profiler and print the K slowest XLA kernels")
    ap.add_argument("--json", default=str(HERE / "results" / "profile_reference.json"))
    a = ap.parse_args()
    from bonebayes.inference import configure_xla_cpu

    configure_xla_cpu()
    from bench_reference import reference_model

    model = reference_model(a.subjects)
    m = model.model
    ip = m.initial_point(random_seed=1)
    n_params = int(sum(np.size(v) for v in ip.values()))
    out = {"subjects": a.subjects, "observations": int(len(model.observations)), "parameters": n_params}
    print(f"model: {out}", flush=True)

    import jax
    from pymc.sampling.jax import get_jaxified_logp

    t = time.perf_counter()
    logp_jax = get_jaxified_logp(m)
    vg = jax.jit(jax.value_and_grad(lambda xs: logp_jax(xs)))
    x = [jax.numpy.asarray(ip[v.name]) for v in m.value_vars]
    jax.block_until_ready(vg(x))
    out["jax_compile_s"] = time.perf_counter() - t
    out["jax_logp_grad_ms"] = 1e3 * _time(lambda: jax.block_until_ready(vg(x)), a.repeats)
    print(f"jax: compile {out['jax_compile_s']:.1f} s, logp+grad {out['jax_logp_grad_ms']:.3f} ms", flush=True)
    out["xla_flags"] = os.environ.get("XLA_FLAGS", "")
    if a.trace:
        out["xla_kernels"] = _xla_kernels(lambda: jax.block_until_ready(vg(x)), a.trace)
    if a.threads > 1:
        out[f"jax_logp_grad_ms_{a.threads}_threads"] = _time_threads(
            lambda: [np.asarray(g) for g in vg(x)[1]], a.threads, a.repeats)
        print(f"jax, {a.threads} threads at once: "
              f"{out[f'jax_logp_grad_ms_{a.threads}_threads']:.3f} ms per call and thread", flush=True)

    t = time.perf_counter()
    f = m.logp_dlogp_function(ravel_inputs=True)
    f.set_extra_values({})
    arr = np.concatenate([np.ravel(ip[v.name]) for v in m.value_vars])
    f(arr)
    out["pytensor_c_compile_s"] = time.perf_counter() - t
    out["pytensor_c_logp_grad_ms"] = 1e3 * _time(lambda: f(arr), a.repeats)
    print(f"pytensor C: compile {out['pytensor_c_compile_s']:.1f} s, logp+grad "
          f"{out['pytensor_c_logp_grad_ms']:.3f} ms", flush=True)

    if not a.no_stan:
        try:
            from export import build_posterior, stan_point

            t = time.perf_counter()
            post = build_posterior(model, seed=1)
            out["stan_build_s"] = time.perf_counter() - t
            print(f"stan: build {out['stan_build_s']:.1f} s", flush=True)
            to_values = m.compile_fn(m.unobserved_value_vars, inputs=m.value_vars, on_unused_input="ignore")
            vals = dict(zip([v.name for v in m.unobserved_value_vars], to_values(ip)))
            u = post.unconstrain_pars(stan_point(model, vals))
            out["stan_logp_grad_ms"] = 1e3 * _time(lambda: post.grad_log_prob(u), a.repeats)
            out["stan_logp_ms"] = 1e3 * _time(lambda: post.log_prob(u), a.repeats)
        except ImportError:
            out["stan"] = "skipped: PyStan not installed"
    for k, v in out.items():
        print(f"{k:<26} {v:.4g}" if isinstance(v, float) else f"{k:<26} {v}")
    Path(a.json).parent.mkdir(parents=True, exist_ok=True)
    Path(a.json).write_text(json.dumps(out, indent=2))
    print(f"wrote {a.json}")


if __name__ == "__main__":
    main()
