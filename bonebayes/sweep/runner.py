"""Run a sweep on ``dask.distributed``: a local cluster by default, or an existing scheduler.

* Tasks whose record is already committed in the results directory are skipped (keyed by content hash).
* Every remaining task is one ``client.submit`` with ``retries`` (a task that raised is retried); a task whose
  worker dies is rescheduled by the scheduler on another worker (up to the scheduler's
  ``distributed.scheduler.allowed-failures``, default 3, after which it fails with ``KilledWorker``).
* Results are committed by the tasks themselves, exactly once (:mod:`bonebayes.sweep.store`), so the client
  may be interrupted at any point: a rerun resumes.
* A worker plugin gives every worker process its own PyTensor compile directory and a cores-per-fit limit
  before any task imports PyTensor.
* The final table (``summary.csv`` / ``summary.json`` in the results directory) has one row per task:
  status, attempts, diagnostics and wall time.

With an external scheduler the results directory must be on a filesystem every worker can write.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from bonebayes._atomic import write_text_atomic
from bonebayes.sweep import store
from bonebayes.sweep.spec import SweepSpec
from bonebayes.sweep.tasks import Task, execute, expand

SUMMARY_COLUMNS = ["task", "kind", "label", "status", "attempts", "ok", "rhat_max", "ess_bulk_min",
                   "divergences", "wall_time_s", "worker", "error"]


class _WorkerSetup:
    """Worker plugin (duck-typed ``distributed.WorkerPlugin``): per-worker compile directory and cores."""

    name = "bonebayes-sweep-setup"

    def __init__(self, cores: int | None) -> None:
        self.cores = cores

    def setup(self, worker: Any) -> None:
        from bonebayes.sweep.tasks import configure_process

        configure_process(str(worker.name), self.cores)

    def teardown(self, worker: Any) -> None:  # pragma: no cover - nothing to undo
        pass

    def transition(self, *args: Any, **kwargs: Any) -> None:  # pragma: no cover
        pass


def _plugin(cores: int | None) -> Any:
    from distributed import WorkerPlugin

    class SweepWorkerSetup(_WorkerSetup, WorkerPlugin):
        pass

    return SweepWorkerSetup(cores)


@dataclass
class SweepReport:
    table: pd.DataFrame  # one row per task (SUMMARY_COLUMNS)
    results: Path
    wall_time_s: float
    temp_files: list[str]

    @property
    def n_failed(self) -> int:
        return int((self.table["status"] == "failed").sum())

    @property
    def n_done(self) -> int:
        return int(self.table["status"].isin(["done", "cached"]).sum())

    @property
    def ok(self) -> bool:
        return self.n_failed == 0

    @property
    def gate_failures(self) -> int:
        ok = self.table["ok"]
        return int((ok.notna() & (ok == False)).sum())  # noqa: E712 - object column with None


def default_workers() -> int:
    return max(1, (os.cpu_count() or 1) // 2)


def _row(task: Task, rec: dict[str, Any] | None, status: str, results: Path, error: str = "") -> dict:
    rec = rec or {}
    return {"task": task.key, "kind": task.kind, "label": task.label, "status": status,
            "attempts": store.attempts(results, task.key), "ok": rec.get("ok"), "rhat_max": rec.get("rhat_max"),
            "ess_bulk_min": rec.get("ess_bulk_min"), "divergences": rec.get("divergences"),
            "wall_time_s": rec.get("wall_time_s"), "worker": rec.get("worker", ""), "error": error}


def run_sweep(
    spec: SweepSpec,
    results: str | Path,
    *,
    scheduler: str | None = None,
    client: Any = None,
    workers: int | None = None,
    log: Callable[[str], None] | None = None,
    tasks: list[Task] | None = None,
) -> SweepReport:
    """Run every unfinished task of ``spec``; returns the summary (also written to the results directory).

    ``client``: an existing ``distributed.Client`` (used as is); else ``scheduler`` (``tcp://host:port``) or a
    new ``LocalCluster`` of ``workers`` processes with one thread each.
    """
    say = log or (lambda m: None)
    results = Path(results)
    results.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    tasks = tasks if tasks is not None else expand(spec)
    manifest = {"name": spec.name, "source": str(spec.source) if spec.source else None,
                "tasks": [{"key": t.key, "kind": t.kind, "label": t.label} for t in tasks]}
    write_text_atomic(json.dumps(manifest, indent=2), results / "sweep_manifest.json")
    rows: dict[str, dict] = {}
    pending = []
    for t in tasks:
        rec = store.read_record(results, t.key)
        if rec is not None:
            rows[t.key] = _row(t, rec, "cached", results)
        else:
            pending.append(t)
    say(f"{len(tasks)} tasks: {len(tasks) - len(pending)} already finished, {len(pending)} to run")
    if pending:
        _run_pending(spec, pending, results, rows, scheduler=scheduler, client=client, workers=workers, say=say)
    table = pd.DataFrame([rows[t.key] for t in tasks], columns=SUMMARY_COLUMNS)
    from bonebayes.datasets.io import write_table_atomic

    write_table_atomic(table, results / "summary.csv")
    temps = [p.name for p in store.temp_files(results)]
    report = SweepReport(table, results, time.perf_counter() - t_start, temps)
    write_text_atomic(json.dumps({
        "name": spec.name, "tasks": len(tasks), "done": report.n_done, "failed": report.n_failed,
        "diagnostics_gate_failures": report.gate_failures, "wall_time_s": report.wall_time_s,
        "ignored_temp_files": temps, "rows": json.loads(table.to_json(orient="records")),
    }, indent=2), results / "summary.json")
    return report


def _run_pending(spec: SweepSpec, pending: list[Task], results: Path, rows: dict[str, dict], *,
                 scheduler: str | None, client: Any, workers: int | None, say: Callable[[str], None]) -> None:
    import dask
    from distributed import Client, LocalCluster, as_completed

    own_cluster = own_client = None
    n_workers = workers or spec.workers or default_workers()
    try:
        if client is None:
            if scheduler:
                client = own_client = Client(scheduler)
                say(f"connected to {scheduler} ({len(client.scheduler_info().get('workers', {}))} workers)")
            else:
                with dask.config.set({"distributed.worker.daemon": False}):
                    own_cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                                               dashboard_address=None, silence_logs=logging.ERROR)
                client = own_client = Client(own_cluster)
                say(f"local cluster: {n_workers} worker processes x 1 thread")
        n_now = max(1, len(client.scheduler_info().get("workers", {})) or n_workers)
        cores = spec.cores_per_worker or max(1, (os.cpu_count() or 1) // n_now)
        client.register_plugin(_plugin(cores), name=_WorkerSetup.name)
        futures = {}
        for t in pending:
            fut = client.submit(execute, t, str(results.resolve()), cores, key=f"bonebayes-{t.kind}-{t.key}",
                                retries=spec.retries, pure=False)
            futures[fut] = t
        n, total = 0, len(futures)
        for fut in as_completed(list(futures)):
            t = futures[fut]
            n += 1
            try:
                rec = fut.result()
                rows[t.key] = _row(t, rec, "done", results)
                w = rec.get("wall_time_s")
                say(f"[{n}/{total}] done   {t.label} ({t.short})" + (f" {w:.1f} s" if w is not None else ""))
            except Exception as e:  # noqa: BLE001 - a failed task is reported, the sweep goes on
                rec = store.read_record(results, t.key)  # committed before the failure was seen?
                if rec is not None:
                    rows[t.key] = _row(t, rec, "done", results)
                else:
                    msg = f"{type(e).__name__}: {e}"
                    rows[t.key] = _row(t, None, "failed", results, msg[:500])
                    say(f"[{n}/{total}] FAILED {t.label} ({t.short}): {msg[:200]}")
    finally:
        if own_client is not None:
            own_client.close()
        if own_cluster is not None:
            own_cluster.close()


def format_table(table: pd.DataFrame) -> str:
    """Plain-text rendering of the summary table."""
    show = table.copy()
    show["task"] = show["task"].str[:12]
    for c in ("rhat_max", "ess_bulk_min", "wall_time_s"):
        show[c] = pd.to_numeric(show[c], errors="coerce")
    for c in ("ok", "divergences"):
        show[c] = show[c].map(lambda v: "-" if v is None or (isinstance(v, float) and v != v) else
                              ("yes" if v is True else "NO" if v is False else str(int(v))))
    return show.drop(columns=["error"] if not show["error"].astype(bool).any() else []).to_string(
        index=False, float_format=lambda v: f"{v:.3g}", na_rep="-")
