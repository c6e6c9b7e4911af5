"""Parameter recovery: does the posterior contain the truth that generated a synthetic cohort?"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

_PER_HORMONE = ("gamma", "e_form", "g_rankl", "g_opg")
_PER_LEVEL = ("mu_level", "tau_subject", "tau_cohort")


def truth_values(truth: dict[str, Any], sites: list[str]) -> dict[str, float]:
    """Flatten a synthetic truth dict into ``{"k_M[lumbar_spine]": 0.015, ...}`` labels."""
    out: dict[str, float] = {}
    for k in ("k_C", "k_B", "tau_kM"):
        if k in truth:
            out[k] = float(truth[k])
    for k in ("k_M", "lam"):
        for s, v in zip(sites, np.atleast_1d(truth[k])):
            out[f"{k}[{s}]"] = float(v)
    for k in _PER_HORMONE:
        for h, v in dict(truth.get(k, {})).items():
            out[f"{k}[{h}]"] = float(v)
    for k, axis in (("emax_res", "antiresorptives"), ("ec50_res", "antiresorptives"),
                    ("eref_ana", "anabolics"), ("ec50_ana", "anabolics")):
        for d, v in zip(truth.get(axis, []), np.atleast_1d(truth.get(k, []))):
            out[f"{k}[{d}]"] = float(v)
    levels = list(truth["levels"])
    for k in _PER_LEVEL:
        for lv, v in zip(levels, np.atleast_1d(truth[k])):
            out[f"{k}[{lv}]"] = float(v)
    for lv, v in zip(levels, np.atleast_1d(truth["sigma_level"])):
        out[f"sigma_{lv}"] = float(v)
    return out


def _posterior_columns(idata: Any) -> dict[str, np.ndarray]:
    post = idata.posterior
    cols: dict[str, np.ndarray] = {}
    for name, da in post.data_vars.items():
        dims = [d for d in da.dims if d not in ("chain", "draw")]
        flat = da.values.reshape(-1, *da.shape[2:])
        if not dims:
            cols[name] = flat
        elif len(dims) == 1:
            for k, label in enumerate(da[dims[0]].values):
                cols[f"{name}[{label}]"] = flat[:, k]
    return cols


def recovery_table(idata: Any, truth: dict[str, Any], sites: list[str], prob: float = 0.9) -> pd.DataFrame:
    """One row per population-level parameter: truth, posterior mean/sd, central interval, covered, z."""
    cols = _posterior_columns(idata)
    lo_q, hi_q = (1 - prob) / 2, 1 - (1 - prob) / 2
    rows = []
    for label, true in truth_values(truth, sites).items():
        if label not in cols:
            continue
        x = cols[label]
        lo, hi = np.quantile(x, [lo_q, hi_q])
        sd = float(np.std(x))
        rows.append({"parameter": label, "truth": true, "mean": float(np.mean(x)), "sd": sd,
                     f"q{lo_q * 100:g}": lo, f"q{hi_q * 100:g}": hi, "covered": bool(lo <= true <= hi),
                     "z": (float(np.mean(x)) - true) / sd if sd > 0 else np.nan})
    return pd.DataFrame(rows).set_index("parameter")
