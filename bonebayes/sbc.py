"""Simulation-based calibration entry points for sweeps: ``[[sbc]] function = "bonebayes.sbc:run_replicate"``.

The sweep runner calls :func:`run_replicate` once per replicate (``replicate=i, seed=seed0 + i`` plus the
table's ``kwargs``); each returns a JSON-able record. :func:`summarise_sweep` reads the finished records from
one or more sweep results directories (later ones replace a replicate's record: longer refits of replicates
that did not converge) and returns the same :class:`~bonebayes.checks.sbc.SBCResult` as ``bonebayes sbc``.
The algorithm itself lives in :mod:`bonebayes.checks.sbc`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bonebayes.checks.sbc import SCREEN_RHAT, SBCResult, replicate_record, run_sbc, summarise_sbc, workspace

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


def _records_in(results: Path, model: str | None) -> list[dict[str, Any]]:
    records = []
    for path in sorted(results.glob("*.json")):
        try:
            value = json.loads(path.read_text()).get("value")
        except (OSError, ValueError):
            continue
        if isinstance(value, dict) and "ranks" in value and (model is None or value.get("model") == model):
            records.append(value)
    return records


def summarise_sweep(results: str | Path | Sequence[str | Path], model: str | None = None,
                    screen_rhat: float = SCREEN_RHAT) -> SBCResult:
    """Collect the ``run_replicate`` records of one or more sweep results directories (``*.json`` with a
    ``value``).

    With several directories a later one's record of a replicate replaces an earlier one's: longer refits of
    the replicates that did not converge (an ``[[sbc]]`` table with ``only = [...]`` and more draws, e.g.
    ``data/sweeps/sbc_individual_refits.toml``) then take the place of the short ones. A replacement must
    refit the same simulated data (same seed, same true values); anything else is an error, since it would
    change the prior draws being calibrated.
    """
    dirs = [Path(results)] if isinstance(results, (str, Path)) else [Path(r) for r in results]
    by_rep: dict[int, dict[str, Any]] = {}
    for d in dirs:
        for rec in _records_in(d, model):
            old = by_rep.get(int(rec["replicate"]))
            if old is not None and (old["seed"] != rec["seed"] or old.get("truth") != rec.get("truth")):
                raise ValueError(f"{d}: replicate {rec['replicate']} (seed {rec['seed']}) does not refit the "
                                 f"simulated data of the earlier record (seed {old['seed']}); refits must "
                                 "keep the replicate's seed and template")
            by_rep[int(rec["replicate"])] = rec
    where = ", ".join(map(str, dirs))
    if not by_rep:
        raise ValueError(f"no SBC replicate records (bonebayes.sbc:run_replicate) found in {where}")
    records = [by_rep[r] for r in sorted(by_rep)]
    rank_draws = {int(r["rank_draws"]) for r in records}
    if len(rank_draws) != 1:
        raise ValueError(f"records in {where} mix rank_draws {sorted(rank_draws)}; ranks need one scale")
    return summarise_sbc(records, rank_draws.pop(), screen_rhat)
