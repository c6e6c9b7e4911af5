"""Sampling, the diagnostics gate, and saving/loading fits with their provenance.

* :func:`sample` runs nutpie (default), PyMC's own NUTS, or numpyro; only integer seeds are accepted, because
  only they reproduce across calls, and the seed is stored with the fit.
* :func:`diagnose` returns a structured :class:`Verdict` (R-hat, bulk and tail ESS, divergences, E-BFMI) and
  warns loudly when a gate fails.
* :func:`save_fit` writes one NetCDF file atomically (temporary file, fsync, rename), holding the posterior,
  the input tables and a provenance record (model configuration, data hash, package versions, seed,
  command line, wall time); :func:`load_fit` reads it back for use without refitting.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import xarray as xr

from bonebayes import _arviz
from bonebayes._atomic import write_atomic

Sampler = Literal["nutpie", "pymc", "numpyro", "mock"]
SAMPLERS: tuple[str, ...] = ("nutpie", "pymc", "numpyro", "mock")
"""``mock`` draws from the prior and labels it a posterior: for testing plumbing only (no inference)."""
PROVENANCE_ATTR = "bonebayes_provenance"
NUTPIE_BACKEND = "jax"
"""nutpie compiles the log-density with JAX by default: its cold compile takes seconds, while the numba
back-end took minutes on these models' graphs (set BONEBAYES_NUTPIE_BACKEND=numba to use it anyway)."""
NUTPIE_GRADIENT = "jax"
"""Who differentiates the log density for nutpie: JAX's autodiff (default) or PyTensor's symbolic gradient
(``sample(gradient_backend="pytensor")``, also compiled by JAX). ``benchmarks/bench_gradient_backend.py``
measured no consistent winner on this shared 2-core machine: 150-subject reference model, compile + first draw
143 s (PyTensor) vs 147 s (JAX) and 3.3 vs 2.5 ms per gradient in one run, 43 vs 78 s and 3.1 vs 3.6 ms in
an earlier one; published model 189 vs 156 s and 7.1 vs 6.0 ms. So the default stays JAX's autodiff.
The environment variable BONEBAYES_NUTPIE_GRADIENT overrides it."""


class DiagnosticsWarning(UserWarning):
    """A fit failed one of the convergence gates."""


NO_YNN_FROM_JAXLIB = (0, 10)
"""From this jaxlib on (checked on 0.10.2; older ones may not know the flag, and XLA aborts on an unknown
flag) bonebayes switches off XLA's YNNPACK fusions, which run this model's float64 element-wise work slowly:
500-subject reference model in nutpie (2 chains, 2 x (150 + 150), ``benchmarks/bench_reference.py``)
15.6 -> 10.4 ms per gradient; alone (``benchmarks/profile_reference.py``) 8.8 -> 6.2 ms; no change at 100
subjects (3.38 vs 3.33 ms in nutpie)."""


def _jaxlib_version() -> tuple[int, ...]:
    """The installed jaxlib's release numbers, e.g. (0, 10, 2); () if it is not installed or unparsable."""
    from importlib.metadata import PackageNotFoundError, version

    from packaging.version import InvalidVersion, Version

    try:
        return Version(version("jaxlib")).release
    except (PackageNotFoundError, InvalidVersion):
        return ()


def configure_xla_cpu(one_thread_per_chain: bool = True) -> None:
    """Set XLA's CPU flags for sampling; only takes effect before JAX starts (call it before importing jax).

    * ``--xla_cpu_multi_thread_eigen=false`` (``one_thread_per_chain``): stops XLA's intra-op thread pool
      from oversubscribing the cores when nutpie runs one chain per thread;
    * ``--xla_cpu_experimental_ynn_fusion_type=`` (empty: no YNNPACK fusions; see :data:`NO_YNN_FROM_JAXLIB`);
      ``BONEBAYES_XLA_YNN=1`` keeps XLA's default (for benchmarks against it).

    Never overrides a flag the user set in ``XLA_FLAGS``.
    """
    if "jax" in sys.modules:
        return
    flags = os.environ.get("XLA_FLAGS", "")
    extra = []
    if one_thread_per_chain and "xla_cpu_multi_thread_eigen" not in flags:
        extra.append("--xla_cpu_multi_thread_eigen=false")
    keep_ynn = os.environ.get("BONEBAYES_XLA_YNN", "") == "1"
    if not keep_ynn and "xla_cpu_experimental_ynn_fusion_type" not in flags \
            and _jaxlib_version() >= NO_YNN_FROM_JAXLIB:
        extra.append("--xla_cpu_experimental_ynn_fusion_type=")
    if extra:
        os.environ["XLA_FLAGS"] = " ".join([flags, *extra]).strip()


def _env_cores() -> int | None:
    """Cores per fit from ``BONEBAYES_CORES`` (set per worker by sweeps so workers do not oversubscribe)."""
    raw = os.environ.get("BONEBAYES_CORES", "").strip()
    return max(int(raw), 1) if raw.isdigit() else None


def _check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise TypeError(f"seed must be an integer (got {seed!r}); only integer seeds are reproducible")
    return int(seed)


def sample(
    model: Any,
    *,
    sampler: Sampler = "nutpie",
    draws: int = 1000,
    tune: int = 1000,
    chains: int = 4,
    seed: int = 0,
    cores: int | None = None,
    target_accept: float = 0.8,
    progress: bool = True,
    low_rank: bool = True,
    no_jitter: Sequence[str] = (),
    gradient_backend: str | None = None,
    initvals: dict[str, np.ndarray] | None = None,
) -> Any:
    """Draw posterior samples from a PyMC model; returns ArviZ InferenceData with ``sample_stats``.

    ``low_rank`` (nutpie only): adapt a diagonal plus low-rank mass matrix, which follows the few strongly
    correlated directions of these models (k_M, lambda, the estradiol elasticities trade off through each
    subject's pre-trial history) that a diagonal mass matrix mixes slowly. ``gradient_backend`` (nutpie with
    the JAX back-end): "jax" (autodiff, the default) or "pytensor" (symbolic gradient); see NUTPIE_GRADIENT.
    Chains start at the priors' support points jittered by at most one prior SD per element
    (:class:`bonebayes.initial_points.ChainStarts`, the same for every sampler); ``initvals`` (name -> value on
    the constrained scale) replace the support point for those free variables, and ``no_jitter`` names
    variables started exactly there.
    """
    seed = _check_seed(seed)
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; valid: {', '.join(SAMPLERS)}")
    if draws < 1 or tune < 0 or chains < 1:
        raise ValueError(f"need draws >= 1, tune >= 0, chains >= 1 (got {draws}, {tune}, {chains})")
    cores = cores or _env_cores() or min(chains, os.cpu_count() or 1)
    if sampler == "mock":
        return _mock_sample(model, draws=draws, chains=chains, seed=seed)
    if sampler == "nutpie":
        compiled = compile_nutpie(model, no_jitter=no_jitter, gradient_backend=gradient_backend, cores=cores,
                                  initvals=initvals)
        return sample_compiled(compiled, draws=draws, tune=tune, chains=chains, seed=seed, cores=cores,
                               target_accept=target_accept, progress=progress, low_rank=low_rank)
    import pymc as pm

    from bonebayes.initial_points import ChainStarts

    starts = ChainStarts(model, initvals, no_jitter).constrained(chains, seed)  # jitter included
    with model:
        if sampler == "numpyro":
            configure_xla_cpu(one_thread_per_chain=cores > 1)
            from pymc.sampling.jax import sample_numpyro_nuts

            return sample_numpyro_nuts(draws=draws, tune=tune, chains=chains, random_seed=seed, initvals=starts,
                                       jitter=False, target_accept=target_accept, progressbar=progress,
                                       chain_method="sequential" if cores == 1 else "parallel")
        return pm.sample(draws=draws, tune=tune, chains=chains, cores=cores, random_seed=seed, initvals=starts,
                         init="adapt_diag", target_accept=target_accept, progressbar=progress,
                         compute_convergence_checks=False)


def compile_nutpie(model: Any, *, swap_data: Sequence[str] = (), no_jitter: Sequence[str] = (),
                   gradient_backend: str | None = None, cores: int = 2,
                   initvals: dict[str, np.ndarray] | None = None) -> Any:
    """Compile ``model``'s log density for nutpie; dims and all data are frozen as constants except ``swap_data``.

    The names in ``swap_data`` (``pm.Data`` of the model, e.g. observed values) stay inputs of the compiled
    function, so :func:`sample_compiled` can refit the same design to new values without recompiling
    (SBC replicates, one cohort after another): about 11 s of JAX compile saved per fit on a 20-subject cohort.
    """
    backend = os.environ.get("BONEBAYES_NUTPIE_BACKEND", NUTPIE_BACKEND)
    if backend == "jax":
        configure_xla_cpu(one_thread_per_chain=cores > 1)  # before nutpie, which may import jax
    import nutpie

    from pymc.model.transform.optimization import freeze_dims_and_data

    from bonebayes.initial_points import ChainStarts

    unknown = sorted(set(swap_data) - {v.name for v in model.data_vars})
    if unknown:
        raise ValueError(f"swap_data {unknown} are not pm.Data of the model")
    frozen = freeze_dims_and_data(model, data=[n for n in model.named_vars if n not in set(swap_data)])
    starts = ChainStarts(frozen, initvals, no_jitter)
    gradient = os.environ.get("BONEBAYES_NUTPIE_GRADIENT",
                              (gradient_backend or NUTPIE_GRADIENT) if backend == "jax" else backend)
    from bonebayes.models.marginal import POSTHOC_VARS

    names = [v.name for v in frozen.unobserved_value_vars]
    stored = [n for n in names if n not in POSTHOC_VARS] if set(POSTHOC_VARS) & set(names) else None
    compiled = nutpie.compile_pymc_model(frozen, backend=backend, gradient_backend=gradient, jitter_rvs=set(),
                                         freeze_model=False, var_names=stored)
    order = [frozen.rvs_to_values[v].name for v in frozen.free_RVs]  # nutpie's flat layout
    return dataclasses.replace(compiled, **{_starts_field(compiled): _FlatStarts(starts, order)})


@dataclass(frozen=True)
class _FlatStarts:
    """nutpie's start function: seed -> flat unconstrained start, in the compiled model's variable order."""

    starts: Any  # bonebayes.initial_points.ChainStarts
    order: list[str]

    def __call__(self, seed: Any) -> np.ndarray:
        return self.starts.flat(seed, self.order)


def _starts_field(compiled: Any) -> str:
    """nutpie's JAX models keep the start function as ``_make_initial_points``, numba ones as
    ``initial_point_func``."""
    return "_make_initial_points" if hasattr(compiled, "_make_initial_points") else "initial_point_func"


def with_chain_starts(compiled: Any, starts: Any) -> Any:
    """A model compiled by :func:`compile_nutpie` whose chains start at ``starts`` instead (a
    :class:`bonebayes.initial_points.ChainStarts` of the same model, e.g. with per-dataset overrides)."""
    old = getattr(compiled, _starts_field(compiled), None)
    if not isinstance(old, _FlatStarts):
        raise TypeError("with_chain_starts needs a model compiled by bonebayes.inference.compile_nutpie")
    return dataclasses.replace(compiled, **{_starts_field(compiled): _FlatStarts(starts, old.order)})


def sample_compiled(compiled: Any, data: dict[str, np.ndarray] | None = None, *, draws: int = 1000,
                    tune: int = 1000, chains: int = 4, seed: int = 0, cores: int | None = None,
                    target_accept: float = 0.8, progress: bool = True, low_rank: bool = True) -> Any:
    """Sample a model compiled by :func:`compile_nutpie`, with new values for its swappable ``data``."""
    import nutpie

    seed = _check_seed(seed)
    cores = cores or _env_cores() or min(chains, os.cpu_count() or 1)
    if data:
        compiled = compiled.with_data(**{k: np.asarray(v) for k, v in data.items()})
    return nutpie.sample(compiled, draws=draws, tune=tune, chains=chains, seed=seed, cores=cores,
                         target_accept=target_accept, progress_bar=progress, low_rank_modified_mass_matrix=low_rank)


def _mock_sample(model: Any, *, draws: int, chains: int, seed: int) -> Any:
    """Prior draws shaped as a posterior with fake sample stats (tests of plumbing; not inference)."""
    import pymc as pm

    names = [v.name for v in model.free_RVs] + [v.name for v in model.deterministics]
    with model:
        prior = pm.sample_prior_predictive(draws=draws * chains, var_names=names, random_seed=seed)
    post = {k: v.values.reshape(chains, draws, *v.shape[2:]) for k, v in prior.prior.data_vars.items()}
    rng = np.random.default_rng(seed)
    stats = xr.Dataset({
        "diverging": (("chain", "draw"), np.zeros((chains, draws), dtype=bool)),
        "energy": (("chain", "draw"), rng.normal(size=(chains, draws))),
        "n_steps": (("chain", "draw"), np.full((chains, draws), 7)),
    }, coords={"chain": np.arange(chains), "draw": np.arange(draws)})
    return _arviz.from_dict(posterior=post,
                            sample_stats={k: stats[k].values for k in stats.data_vars},
                            coords={k: v for k, v in model.coords.items()},
                            dims={k: list(model.named_vars_to_dims.get(k, [])) for k in post})


@dataclass
class Verdict:
    """Outcome of the diagnostics gate."""

    ok: bool
    rhat_max: float
    ess_bulk_min: float
    ess_tail_min: float
    divergences: int
    ebfmi_min: float
    n_draws: int
    n_chains: int
    thresholds: dict[str, float]
    problems: list[str] = field(default_factory=list)
    table: pd.DataFrame | None = None  # per-parameter R-hat and ESS

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("table")
        return d

    def __str__(self) -> str:
        head = "PASS" if self.ok else "FAIL"
        lines = [
            f"diagnostics {head}: {self.n_chains} chains x {self.n_draws} draws",
            f"  max R-hat      {self.rhat_max:.4f}   (gate <= {self.thresholds['rhat_max']})",
            f"  min bulk ESS   {self.ess_bulk_min:.0f}   (gate >= {self.thresholds['ess_min']:.0f})",
            f"  min tail ESS   {self.ess_tail_min:.0f}   (gate >= {self.thresholds['ess_min']:.0f})",
            f"  divergences    {self.divergences}   (gate = 0)",
            f"  min E-BFMI     {self.ebfmi_min:.3f}   (gate >= {self.thresholds['ebfmi_min']})",
        ]
        lines += [f"  ! {p}" for p in self.problems]
        return "\n".join(lines)


def diagnose(
    idata: Any,
    var_names: Sequence[str] | None = None,
    *,
    rhat_max: float = 1.01,
    ess_min: float | None = None,
    ebfmi_min: float = 0.3,
    warn: bool = True,
) -> Verdict:
    """Convergence gate over ``var_names`` (default: every posterior variable).

    ``ess_min`` defaults to 100 per chain (400 for four chains), the usual bulk/tail ESS recommendation.
    """
    post = idata.posterior
    names = [v for v in (var_names or list(post.data_vars)) if v in post]
    n_chains, n_draws = int(post.sizes["chain"]), int(post.sizes["draw"])
    ess_min = 100.0 * n_chains if ess_min is None else ess_min
    rh = _arviz.rhat(idata, names)
    eb = _arviz.ess(idata, names, "bulk")
    et = _arviz.ess(idata, names, "tail")
    rows = []
    for v in names:
        r, b, t = (np.atleast_1d(ds[v].values).ravel() for ds in (rh, eb, et))
        coords = _flat_labels(post[v])
        for k in range(len(r)):
            rows.append({"parameter": v + coords[k], "r_hat": r[k], "ess_bulk": b[k], "ess_tail": t[k]})
    table = pd.DataFrame(rows).set_index("parameter") if rows else pd.DataFrame()
    stats = idata.sample_stats
    div_var = "diverging" if "diverging" in stats else None
    divergences = int(stats[div_var].sum()) if div_var else 0
    try:
        ebfmi = float(np.min(_arviz.bfmi(idata))) if "energy" in stats else float("nan")
    except Exception:  # noqa: BLE001 - E-BFMI is advisory when energy is degenerate
        ebfmi = float("nan")
    rmax = float(np.nanmax(table["r_hat"])) if len(table) else float("nan")
    bmin = float(np.nanmin(table["ess_bulk"])) if len(table) else float("nan")
    tmin = float(np.nanmin(table["ess_tail"])) if len(table) else float("nan")
    problems = []
    if n_chains < 2:
        problems.append("R-hat needs at least 2 chains; convergence cannot be judged")
    if not rmax <= rhat_max:
        worst = table["r_hat"].sort_values(ascending=False).head(3)
        problems.append(f"R-hat {rmax:.3f} > {rhat_max} (worst: {', '.join(worst.index)})")
    if not bmin >= ess_min:
        problems.append(f"bulk ESS {bmin:.0f} < {ess_min:.0f} (worst: "
                        f"{', '.join(table['ess_bulk'].sort_values().head(3).index)})")
    if not tmin >= ess_min:
        problems.append(f"tail ESS {tmin:.0f} < {ess_min:.0f}")
    if divergences:
        problems.append(f"{divergences} divergent transitions: the posterior geometry is not fully explored")
    if np.isfinite(ebfmi) and ebfmi < ebfmi_min:
        problems.append(f"E-BFMI {ebfmi:.2f} < {ebfmi_min}: energy transitions are inefficient")
    verdict = Verdict(not problems, rmax, bmin, tmin, divergences, ebfmi, n_draws, n_chains,
                      {"rhat_max": rhat_max, "ess_min": ess_min, "ebfmi_min": ebfmi_min}, problems, table)
    if warn and problems:
        warnings.warn("CONVERGENCE CHECK FAILED: " + "; ".join(problems), DiagnosticsWarning, stacklevel=2)
    return verdict


def _flat_labels(da: xr.DataArray) -> list[str]:
    dims = [d for d in da.dims if d not in ("chain", "draw")]
    if not dims:
        return [""]
    idx = pd.MultiIndex.from_product([da[d].values for d in dims]) if len(dims) > 1 else da[dims[0]].values
    return [f"[{', '.join(map(str, i)) if isinstance(i, tuple) else i}]" for i in idx]


PROVENANCE_PACKAGES: tuple[str, ...] = ("bonebayes", "pymc", "pytensor", "nutpie", "arviz", "numpy", "scipy",
                                        "pandas", "xarray")


def package_versions(packages: Sequence[str] = PROVENANCE_PACKAGES) -> dict[str, str]:
    """Python's and each package's installed version ("not installed" where absent)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in packages:
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def provenance(
    *, config: dict[str, Any], data_hash: str, seed: int, sampler: str, draws: int, tune: int, chains: int,
    wall_time_s: float | None = None, extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The provenance record stored with every fit."""
    return {
        "config": config, "data_hash": data_hash, "seed": _check_seed(seed), "sampler": sampler,
        "draws": draws, "tune": tune, "chains": chains, "wall_time_s": wall_time_s,
        "versions": package_versions(), "command": " ".join(sys.argv),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **(extra or {}),
    }


def _table_to_dataset(df: pd.DataFrame) -> xr.Dataset:
    clean = df.reset_index(drop=True).copy()
    for c in clean.columns:
        if clean[c].dtype == object or str(clean[c].dtype).startswith(("string", "str")):
            clean[c] = clean[c].astype(str)
    ds = xr.Dataset({c: ("row_index", clean[c].to_numpy()) for c in clean.columns})
    return ds.assign_coords(row_index=np.arange(len(clean)))


def _dataset_to_table(ds: xr.Dataset) -> pd.DataFrame:
    df = pd.DataFrame({v: ds[v].values for v in ds.data_vars})
    for c in df.columns:
        if df[c].dtype == object:
            df[c] = df[c].astype(str).replace({"nan": np.nan, "None": np.nan})
    return df


def save_fit(idata: Any, path: str | os.PathLike[str], prov: dict[str, Any],
             tables: dict[str, pd.DataFrame] | None = None) -> Path:
    """Write posterior + tables + provenance to one NetCDF file, atomically (no partial file is left)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    idata = idata.copy()
    idata.posterior.attrs[PROVENANCE_ATTR] = json.dumps(prov, default=_json_default)
    if tables:
        _arviz.add_groups(idata, {f"table_{k}": _table_to_dataset(v) for k, v in tables.items()})
    return write_atomic(path, lambda tmp: _arviz.to_netcdf(idata, str(tmp)))


def load_fit(path: str | os.PathLike[str]) -> tuple[Any, dict[str, Any], dict[str, pd.DataFrame]]:
    """Read a fit written by :func:`save_fit`: (InferenceData, provenance, tables)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"fit file not found: {path}")
    try:
        idata = _arviz.from_netcdf(str(path))
    except Exception as e:  # noqa: BLE001
        raise ValueError(f"{path}: not a readable bonebayes fit (NetCDF): {e}") from e
    raw = idata.posterior.attrs.get(PROVENANCE_ATTR)
    if raw is None:
        raise ValueError(f"{path}: no bonebayes provenance found; was it written by bonebayes.save_fit?")
    prov = json.loads(raw)
    tables = {g[len("table_"):]: _dataset_to_table(idata[g]) for g in idata.groups() if g.startswith("table_")}
    return idata, prov, tables


def _json_default(o: Any) -> Any:
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, tuple | set):
        return list(o)
    return str(o)
