"""Sweep tasks: expansion of a :class:`SweepSpec` into tasks with content-hash keys, and their execution.

Kinds:

* ``fit``: one model variant x dataset x seed (individual or published model); record + ``KEY.nc``;
* ``loso``: the published model refitted without one study, its rows predicted
  (:func:`bonebayes.checks.published.leave_one_study_out` for that study); record + ``KEY.csv``;
* ``sbc``: one simulation-based-calibration replicate, ``function(replicate=i, seed=s, **kwargs)``;
* ``call``: any function by import path with keyword arguments.

A task's key is the sha256 of a canonical JSON of everything that determines its result: the kind, the model
name and its full configuration, the data's content hash, the sampler settings and the seed (for sbc/call:
the function path and its arguments). A rerun with the same key finds the committed record and skips it.

``execute`` runs on a worker: it configures the process (PyTensor compile directory, cores per fit) before
anything imports PyTensor, marks the attempt, runs the task, writes its data files atomically and commits
the record exactly once (see :mod:`bonebayes.sweep.store`).
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import socket
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bonebayes.sweep import store
from bonebayes.sweep.spec import DatasetSpec, SweepSpec, SweepSpecError

KEY_VERSION = 1


@dataclass(frozen=True)
class Task:
    kind: str
    label: str
    params: dict[str, Any]  # JSON-able; everything the worker needs
    key: str = field(default="")

    @property
    def short(self) -> str:
        return self.key[:12]


def content_key(payload: dict[str, Any]) -> str:
    """sha256 (first 24 hex digits) of the canonical JSON of ``payload``."""
    text = json.dumps({"v": KEY_VERSION, **payload}, sort_keys=True, separators=(",", ":"),
                      default=store._json_default)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]


def _task(kind: str, label: str, params: dict[str, Any], keyed: dict[str, Any]) -> Task:
    return Task(kind, label, params, content_key({"kind": kind, **keyed}))


# --------------------------------------------------------------------------- data
def load_dataset(ds: dict[str, Any]) -> tuple[Any, Any]:
    """Validated (observations, exposures) of a dataset spec (synthetic or CSV)."""
    if ds.get("synthetic") is not None:
        from bonebayes.datasets.synthetic import SyntheticDesign, simulate_cohort

        syn = dict(ds["synthetic"])
        seed = int(syn.pop("seed", 1))
        kw = {k: tuple(v) for k, v in syn.items() if v is not None and isinstance(v, list)}
        kw.update({k: v for k, v in syn.items() if v is not None and not isinstance(v, list)})
        cohort = simulate_cohort(SyntheticDesign(**kw), seed=seed)
        return cohort.observations, cohort.exposures
    from bonebayes.datasets import load_cohort

    return load_cohort(ds["observations"], ds["exposures"])


def _model_config(model: str, cfg: dict[str, Any], where: str) -> dict[str, Any]:
    from pydantic import ValidationError

    if model == "individual":
        from bonebayes.models.individual import ModelConfig as Config
    else:
        from bonebayes.models.published import PublishedConfig as Config
    try:
        return Config(**cfg).model_dump(mode="json")
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        raise SweepSpecError(f"{where}.{loc}: {err['msg']}") from None


# --------------------------------------------------------------------------- expansion
def expand(spec: SweepSpec) -> list[Task]:
    """All tasks of a sweep, in file order, duplicates (same key) removed. Loads data to hash it."""
    src = str(spec.source or "<sweep>")
    tasks: list[Task] = []
    for gi, g in enumerate(spec.fit):
        settings = g.sampler.apply(spec.sampler).model_dump()
        data_cache: dict[str, tuple[str, dict[str, Any]]] = {}
        for dname, ds in g.datasets.items():
            data_cache[dname] = _data_identity(g.model, ds, f"{src}: fit[{gi}].datasets.{dname}")
        for vname, vcfg in g.variants.items():
            config = _model_config(g.model, vcfg, f"{src}: fit[{gi}].variants.{vname}")
            for dname, (dhash, dparams) in data_cache.items():
                for seed in g.seeds:
                    params = {"model": g.model, "variant": vname, "config": config, "dataset": dname,
                              "data": dparams, "data_hash": dhash, "settings": settings, "seed": seed,
                              "save_fit": g.save_fit}
                    keyed = {k: params[k] for k in ("model", "config", "data_hash", "settings", "seed",
                                                     "save_fit")}
                    tasks.append(_task("fit", f"{g.model}/{vname}/{dname}/seed{seed}", params, keyed))
    if spec.loso:
        from bonebayes.checks.published import loso_studies
        from bonebayes.datasets.published import load_published
        from bonebayes.models.published import PublishedConfig, PublishedModel

        ev = load_published()
        for gi, g in enumerate(spec.loso):
            settings = g.sampler.apply(spec.sampler).model_dump()
            settings.pop("target_accept")  # leave_one_study_out uses the model's default
            known = loso_studies(ev, None)
            if isinstance(g.studies, list):
                unknown = [s for s in g.studies if s not in known]
                if unknown:
                    raise SweepSpecError(f"{src}: loso[{gi}].studies: unknown or BMD-less studies {unknown}; "
                                         f"valid: {', '.join(known)}")
                studies = list(g.studies)
            else:
                studies = loso_studies(ev, None if g.studies == "all" else g.studies)
            base = PublishedConfig(**_model_config("published", g.config, f"{src}: loso[{gi}].config"))
            for study in studies:
                cfg = base.model_copy(update={"holdout_studies": (study,)})
                dhash = PublishedModel(ev, cfg).data_hash()
                for seed in g.seeds:
                    params = {"study": study, "config": base.model_dump(mode="json"), "data_hash": dhash,
                              "settings": settings, "seed": seed, "prob": g.prob}
                    keyed = {"model": "published", "config": cfg.model_dump(mode="json"), "data_hash": dhash,
                             "settings": settings, "seed": seed, "prob": g.prob}
                    tasks.append(_task("loso", f"published/without {study}/seed{seed}", params, keyed))
    for g in spec.sbc:
        for i in g.indices():
            params = {"function": g.function, "replicate": i, "seed": g.seed + i, "kwargs": g.kwargs}
            tasks.append(_task("sbc", f"{g.function.split(':')[-1]}/replicate{i}", params, params))
    for g in spec.call:
        for i, kw in enumerate(g.calls):
            params = {"function": g.function, "kwargs": kw}
            tasks.append(_task("call", f"{g.function.split(':')[-1]}/{i}", params, params))
    seen: set[str] = set()
    unique = []
    for t in tasks:
        if t.key not in seen:
            seen.add(t.key)
            unique.append(t)
    return unique


def _data_identity(model: str, ds: DatasetSpec, where: str) -> tuple[str, dict[str, Any]]:
    """(content hash of the data, JSON-able description the worker reloads it from)."""
    if model == "published":
        from bonebayes.models.published import PublishedModel

        return PublishedModel().data_hash(), {"published": "shipped"}
    params = ds.model_dump(mode="json", exclude_none=True)
    try:
        obs, exp = load_dataset(params)
    except (OSError, ValueError) as e:
        raise SweepSpecError(f"{where}: {e}") from None
    from bonebayes.models.individual import IndividualModel

    return _table_hash(IndividualModel, obs, exp), params


def _table_hash(cls: Any, obs: Any, exp: Any) -> str:
    """IndividualModel.data_hash without preparing the model's data (only the canonical tables)."""
    obj = cls.__new__(cls)
    obj.observations, obj.exposures = obs, exp
    return cls.data_hash(obj)


# --------------------------------------------------------------------------- worker side
def configure_process(name: str | None = None, cores: int | None = None, root: str | None = None) -> str:
    """Give this worker process its own PyTensor compile directory and a cores-per-fit limit.

    Must run before PyTensor is imported in the process (the worker plugin does it at worker start; the
    task repeats it, harmlessly). Returns the compile directory in effect.
    """
    if cores:
        os.environ["BONEBAYES_CORES"] = str(int(cores))
        os.environ.setdefault("OMP_NUM_THREADS", str(int(cores)))
    if "pytensor" in sys.modules:
        import pytensor

        return str(pytensor.config.base_compiledir)
    name = name or f"pid{os.getpid()}"
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in str(name))
    user = os.environ.get("USER") or str(os.getuid())
    base = Path(root or Path(tempfile.gettempdir()) / f"bonebayes-sweep-pytensor-{user}") / f"worker-{safe}"
    base.mkdir(parents=True, exist_ok=True)
    flags = [f for f in os.environ.get("PYTENSOR_FLAGS", "").split(",") if f and
             not f.startswith(("base_compiledir=", "compiledir="))]
    os.environ["PYTENSOR_FLAGS"] = ",".join([*flags, f"base_compiledir={base}"])
    return str(base)


def _worker_name() -> str | None:
    try:
        from distributed import get_worker

        return str(get_worker().name)
    except (ImportError, ValueError):
        return None


def execute(task: Task, results: str | Path, cores: int | None = None) -> dict[str, Any]:
    """Run one task and commit its record; returns the record on disk (possibly an earlier attempt's)."""
    results = Path(results)
    compiledir = configure_process(_worker_name(), cores)
    done = store.read_record(results, task.key)
    if done is not None:  # finished meanwhile (a duplicate run): nothing to do
        return {**done, "duplicate_run": True}
    attempt = store.mark_attempt(results, task.key)
    started = time.time()
    t0 = time.perf_counter()
    runner = {"fit": _run_fit, "loso": _run_loso, "sbc": _run_call, "call": _run_call}[task.kind]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = runner(task, results)
    record = {
        "kind": task.kind, "label": task.label, "params": task.params,
        "attempt": attempt, "worker": f"{socket.gethostname()}:{os.getpid()}", "worker_name": _worker_name(),
        "compiledir": compiledir, "started": started, "finished": time.time(),
        "wall_time_s": time.perf_counter() - t0, **out,
    }
    committed, on_disk = store.commit(results, task.key, record)
    if not committed:
        for f in out.get("files", []):
            if f not in on_disk.get("files", []):
                (results / f).unlink(missing_ok=True)
        return {**on_disk, "duplicate_run": True}
    return on_disk


def _verdict_fields(v: Any) -> dict[str, Any]:
    if v is None:
        return {}
    return {"ok": bool(v.ok), "rhat_max": v.rhat_max, "ess_bulk_min": v.ess_bulk_min,
            "ess_tail_min": v.ess_tail_min, "divergences": v.divergences, "problems": list(v.problems)}


def _run_fit(task: Task, results: Path) -> dict[str, Any]:
    p = task.params
    s = p["settings"]
    if p["model"] == "individual":
        from bonebayes.models.individual import IndividualModel

        obs, exp = load_dataset(p["data"])
        model = IndividualModel(obs, exp, p["config"])
    else:
        from bonebayes.models.published import PublishedModel

        model = PublishedModel(None, p["config"])
    if model.data_hash() != p["data_hash"]:
        raise RuntimeError(f"data of {task.label} changed since the sweep was planned (hash mismatch)")
    fit = model.fit(draws=s["draws"], tune=s["tune"], chains=s["chains"], seed=p["seed"], sampler=s["sampler"],
                    progress=False, target_accept=s["target_accept"])
    files = []
    if p.get("save_fit", True):
        files.append(store.write_data(results, f"{task.key}.nc", fit.save))
    return {"files": files, "sample_time_s": fit.provenance.get("wall_time_s"), **_verdict_fields(fit.verdict)}


def _run_loso(task: Task, results: Path) -> dict[str, Any]:
    from bonebayes.checks.published import leave_one_study_out
    from bonebayes.datasets.io import write_table_atomic
    from bonebayes.datasets.published import load_published
    from bonebayes.models.published import PublishedConfig

    p = task.params
    s = p["settings"]
    rows, summ = leave_one_study_out(load_published(), [p["study"]], store.work_dir(results, task.key),
                                     config=PublishedConfig(**p["config"]), draws=s["draws"], tune=s["tune"],
                                     chains=s["chains"], seed=p["seed"], sampler=s["sampler"], prob=p["prob"])
    name = store.write_data(results, f"{task.key}.csv", lambda tmp: write_table_atomic(rows, tmp))
    r = summ.iloc[0]
    info = json.loads((store.work_dir(results, task.key) / f"{_safe(p['study'])}.json").read_text())
    return {"files": [name], "sample_time_s": float(r["wall_time_s"]), "rows": int(r["rows"]),
            "inside": int(r["inside"]), "bmd_median_abs_error_pp": float(r["bmd_median_abs_error_pp"]),
            "ok": bool(info.get("ok")), "rhat_max": float(r["rhat_max"]),
            "ess_bulk_min": info.get("ess_bulk_min"), "divergences": int(r["divergences"])}


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def resolve(path: str) -> Any:
    """Import ``package.module:attr.attr``."""
    mod, _, attr = path.partition(":")
    obj: Any = importlib.import_module(mod)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def _run_call(task: Task, results: Path) -> dict[str, Any]:
    p = task.params
    try:
        fn = resolve(p["function"])
    except (ImportError, AttributeError) as e:
        raise RuntimeError(f"cannot import {p['function']}: {e}") from e
    kwargs = dict(p["kwargs"])
    if task.kind == "sbc":
        kwargs.update(replicate=p["replicate"], seed=p["seed"])
    value = fn(**kwargs)
    return _store_value(value, task, results)


def _store_value(value: Any, task: Task, results: Path) -> dict[str, Any]:
    """Keep a function's return value: dict in the record, a table as CSV, a fit or dataset as NetCDF."""
    import pandas as pd

    if value is None:
        return {"files": []}
    if isinstance(value, dict):
        summary_keys = ("ok", "rhat_max", "ess_bulk_min", "ess_tail_min", "divergences")
        return {"files": [], "value": value, **{k: value[k] for k in summary_keys if k in value}}
    if isinstance(value, pd.DataFrame):
        from bonebayes.datasets.io import write_table_atomic

        return {"files": [store.write_data(results, f"{task.key}.csv",
                                           lambda tmp: write_table_atomic(value, tmp))]}
    if hasattr(value, "save") and hasattr(value, "verdict"):  # a bonebayes Fit
        return {"files": [store.write_data(results, f"{task.key}.nc", value.save)],
                **_verdict_fields(value.verdict)}
    if hasattr(value, "to_netcdf"):
        return {"files": [store.write_data(results, f"{task.key}.nc", lambda tmp: value.to_netcdf(str(tmp)))]}
    return {"files": [], "value": json.loads(json.dumps(value, default=store._json_default))}
