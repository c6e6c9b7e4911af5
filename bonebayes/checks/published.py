"""Predictive checks of the published-arm model: a posterior predictive table per row, leave-one-study-out.

Both use the model's deterministics ``pub_pred`` (the row's predicted mean) and ``pub_sd`` (its reported SE or
fitted reporting scale combined with the residual heterogeneity), so no extra compilation is needed: a replicate
is ``pub_pred + pub_sd * eps`` per posterior draw (eps Student-t or Normal, as in the model), shown on the
reported scale (levels exponentiated).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bonebayes._atomic import write_text_atomic
from bonebayes.datasets.io import write_table_atomic

ROW_COLUMNS = ["record_id", "study", "arm", "endpoint", "site", "measure", "time_months", "time_end_months",
               "unit", "row_class", "fit"]


def replicate_rows(idata: Any, data: Any, seed: int = 0) -> np.ndarray:
    """Posterior predictive replicates of every row, (draws, rows), on the reported scale."""
    post = idata.posterior
    pred = post["pub_pred"].values.reshape(-1, data.n_rows)
    sd = post["pub_sd"].values.reshape(-1, data.n_rows)
    rng = np.random.default_rng(seed)
    nu = getattr(data, "nu", None)
    eps = rng.standard_normal(pred.shape) if nu is None else rng.standard_t(nu, pred.shape)
    rep = pred + sd * eps
    level = data.rows["measure"].to_numpy() == "level"
    rep[:, level] = np.exp(rep[:, level] + data.group_centre[level])
    return rep


def predictive_table(idata: Any, data: Any, prob: float = 0.9, seed: int = 0) -> pd.DataFrame:
    """Observed value, predicted median and central ``prob`` interval for every row, and whether it is inside."""
    rep = replicate_rows(idata, data, seed)
    lo_q, hi_q = (1 - prob) / 2, 1 - (1 - prob) / 2
    out = data.rows[ROW_COLUMNS].copy()
    out["observed"] = data.rows["value"].to_numpy(float)
    out["pred_median"] = np.median(rep, axis=0)
    out["lo"] = np.quantile(rep, lo_q, axis=0)
    out["hi"] = np.quantile(rep, hi_q, axis=0)
    out["inside"] = (out["observed"] >= out["lo"]) & (out["observed"] <= out["hi"])
    level = (data.rows["measure"] == "level").to_numpy()
    # widths and errors in percentage points, or on the log scale for levels (units differ between studies)
    obs, med, lo, hi = (out[c].to_numpy(float) for c in ("observed", "pred_median", "lo", "hi"))
    one = np.ones_like(obs)
    out["width"] = np.where(level, np.log(np.where(level, hi, one) / np.where(level, lo, one)), hi - lo)
    out["abs_error"] = np.where(level, np.abs(np.log(np.where(level, obs, one) / np.where(level, med, one))),
                                np.abs(obs - med))
    # PIT-style position of the observation in its predictive distribution (0..1)
    out["pit"] = (rep < out["observed"].to_numpy()[None, :]).mean(axis=0)
    return out


def coverage_summary(table: pd.DataFrame, by: str | None = "row_class") -> pd.DataFrame:
    """Rows, fraction inside, median interval width and median absolute error (overall and by ``by``)."""
    def summ(t: pd.DataFrame) -> pd.Series:
        return pd.Series({"rows": len(t), "inside": int(t["inside"].sum()), "coverage": t["inside"].mean(),
                          "median_width": t["width"].median(), "median_abs_error": t["abs_error"].median()})

    parts = {"all": summ(table)}
    if by is not None:
        for k, t in table.groupby(by, sort=False):
            parts[str(k)] = summ(t)
    return pd.DataFrame(parts).T


def loso_studies(evidence: Any, n_largest: int | None = 8) -> list[str]:
    """Studies to leave out: those with BMD rows, largest first (``None`` = all of them)."""
    u = evidence.usable
    bmd = u[u["model_kind"] == "bmd"]
    sizes = bmd.groupby("study")["n_used"].max().fillna(0).sort_values(ascending=False, kind="stable")
    names = list(sizes.index)
    return names if n_largest is None else names[:n_largest]


def leave_one_study_out(
    evidence: Any,
    studies: Sequence[str],
    out_dir: str | Path,
    *,
    config: Any = None,
    draws: int = 500,
    tune: int = 500,
    chains: int = 4,
    seed: int = 1,
    sampler: str = "nutpie",
    prob: float = 0.9,
    progress: Callable[[str], None] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Refit without each study, predict its rows; returns (held-out row table, per-study summary).

    Each study's result is written atomically to ``out_dir/<study>.csv`` with a ``.json`` sidecar holding the
    request; a rerun with the same request skips finished studies (an interrupted run resumes).
    """
    from bonebayes.models.published import PublishedConfig, PublishedModel

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    base = config or PublishedConfig()
    tables, summaries = [], []
    for study in studies:
        cfg = base.model_copy(update={"holdout_studies": (study,)})
        model = PublishedModel(evidence, cfg)
        request = {"study": study, "data_hash": model.data_hash(), "config": cfg.model_dump(mode="json"),
                   "draws": draws, "tune": tune, "chains": chains, "seed": seed, "sampler": sampler, "prob": prob}
        csv, meta = out / f"{_safe(study)}.csv", out / f"{_safe(study)}.json"
        done = None
        if csv.exists() and meta.exists():
            try:
                info = json.loads(meta.read_text())
                if info.get("request") == request:
                    done = (pd.read_csv(csv), info)
            except (OSError, ValueError):
                done = None
        if done is None:
            if progress:
                progress(f"leave-one-study-out: refitting without {study}")
            t = time.perf_counter()
            fit = model.fit(draws=draws, tune=tune, chains=chains, seed=seed, sampler=sampler, progress=False)
            table = predictive_table(fit.idata, model.data, prob=prob, seed=seed)
            table = table[~table["fit"]].copy()
            v = fit.verdict
            info = {"request": request, "wall_time_s": time.perf_counter() - t, "rhat_max": v.rhat_max,
                    "ess_bulk_min": v.ess_bulk_min, "divergences": v.divergences, "ok": v.ok}
            write_table_atomic(table, csv)  # data first, then the sidecar that marks it finished
            write_text_atomic(json.dumps(info, indent=2), meta)
            done = (table, info)
        table, info = done
        tables.append(table)
        bmd = table[table["row_class"] == "bmd"]
        summaries.append({"study": study, "rows": len(table), "inside": int(table["inside"].sum()),
                          "bmd_rows": len(bmd), "bmd_median_abs_error_pp": bmd["abs_error"].median(),
                          "rhat_max": info["rhat_max"], "divergences": info["divergences"],
                          "wall_time_s": info["wall_time_s"]})
    return pd.concat(tables, ignore_index=True), pd.DataFrame(summaries)


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
