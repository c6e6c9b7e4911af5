"""Summaries over posterior draws: mean, median, 50% and 90% highest-density intervals, P(T <= -2.5)."""

from __future__ import annotations

import numpy as np
import xarray as xr

from bonebayes import _arviz
from bonebayes.projections.references import OSTEOPOROSIS_T

STATS: tuple[str, ...] = ("mean", "median", "hdi50_lo", "hdi50_hi", "hdi90_lo", "hdi90_hi")
"""The ``stat`` axis of every ``<variable>_summary``."""


def summarize_array(values: np.ndarray) -> np.ndarray:
    """Stats over the first (draw) axis: shape ``(len(STATS),) + values.shape[1:]`` (one sort per call)."""
    s = np.array(np.moveaxis(np.asarray(values, dtype=float), 0, -1), order="C")  # draws last, contiguous
    s.sort(axis=-1)
    n = s.shape[-1]
    median = 0.5 * (s[..., (n - 1) // 2] + s[..., n // 2])
    lo50, hi50 = _arviz.hdi_sorted(s, 0.5)
    lo90, hi90 = _arviz.hdi_sorted(s, 0.9)
    return np.stack([s.mean(axis=-1), median, lo50, hi50, lo90, hi90])


def summarize(ds: xr.Dataset) -> xr.Dataset:
    """Add ``<v>_summary`` (stat, ...) for every per-draw variable and ``p_osteoporosis`` (+ contrast)."""
    out = ds.copy()
    for v in [v for v in ds.data_vars if "draw" in ds[v].dims]:
        da = ds[v].transpose("draw", ...)
        rest = da.dims[1:]
        out[f"{v}_summary"] = (("stat", *rest), summarize_array(da.values))
        out[f"{v}_summary"].attrs = dict(ds[v].attrs)
    out = out.assign_coords(stat=list(STATS))
    if "tscore" in ds:
        low = (ds["tscore"] <= OSTEOPOROSIS_T).astype(float)
        out["p_osteoporosis"] = low.mean("draw")
        out["p_osteoporosis"].attrs["units"] = "probability (T <= -2.5)"
        if "contrast" in ds.dims:
            p = out["p_osteoporosis"]
            first = p.sel(arm=ds["contrast_first"]).drop_vars("arm")
            second = p.sel(arm=ds["contrast_second"]).drop_vars("arm")
            out["contrast_p_osteoporosis"] = (first - second).transpose("contrast", "time", "site")
            out["contrast_p_osteoporosis"].attrs["units"] = "difference in probability"
    return out
