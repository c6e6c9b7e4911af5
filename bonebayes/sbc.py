"""Simulation-based calibration entry points for sweeps: ``[[sbc]] function = "bonebayes.sbc:run_replicate"``.

The sweep runner calls :func:`run_replicate` once per replicate (``replicate=i, seed=seed0 + i`` plus the
table's ``kwargs``); each returns a JSON-able record. :func:`summarise_sweep` reads the finished records from a
sweep results directory and returns the same :class:`~bonebayes.checks.sbc.SBCResult` as ``bonebayes sbc``.
The algorithm itself lives in :mod:`bonebayes.checks.sbc`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bonebayes.checks.sbc import SBCResult, replicate_record, run_sbc, summarise_sbc, workspace

__all__ = ["run_replicate", "run_sbc", "summarise_sweep"]


def run_replicate(replicate: int, seed: int, *, model: str = "individual", draws: int = 200, tune: int = 200,
                  chains: int = 2, sampler: str = "nutpie", rank_draws: int = 99, n_subjects: int = 20,
                  n_cohorts: int = 1, template_seed: int = 0) -> dict[str, Any]:
    """One SBC replicate of variant ``model`` on its template design (see :func:`checks.sbc.run_sbc`).

    The template, its prior simulator and the compiled model are cached per worker process, so a sweep
    compiles once per worker rather than once per replicate.
    """
    ws = workspace(model, n_subjects, n_cohorts, template_seed)
    rec = replicate_record(ws, replicate, seed, draws=draws, tune=tune, chains=chains, sampler=sampler,
                           rank_draws=rank_draws)
    rec["model"] = model
    return rec


def summarise_sweep(results: str | Path, model: str | None = None) -> SBCResult:
    """Collect the ``run_replicate`` records of a sweep results directory (``*.json`` with a ``value``)."""
    records = []
    for path in sorted(Path(results).glob("*.json")):
        try:
            value = json.loads(path.read_text()).get("value")
        except (OSError, ValueError):
            continue
        if isinstance(value, dict) and "ranks" in value and (model is None or value.get("model") == model):
            records.append(value)
    if not records:
        raise ValueError(f"no SBC replicate records (bonebayes.sbc:run_replicate) found in {results}")
    rank_draws = {int(r["rank_draws"]) for r in records}
    if len(rank_draws) != 1:
        raise ValueError(f"records in {results} mix rank_draws {sorted(rank_draws)}; summarise one sweep at a time")
    return summarise_sbc(sorted(records, key=lambda r: r["replicate"]), rank_draws.pop())
