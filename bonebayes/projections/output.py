"""Projection results as JSON, CSV or a text table (every file written atomically).

JSON (``to_json``)::

    {"scenario": "...", "fit": {...}, "settings": {...}, "notes": [...], "units": {...},
     "results": [
        {"arm": "denosumab", "endpoint": "bmd", "site": "lumbar_spine", "time_months": 12,
         "mean": 5.1, "median": 5.2, "hdi50": [4.4, 5.9], "hdi90": [3.0, 7.0]},
        {"contrast": "denosumab_vs_placebo", "endpoint": "ctx", "time_months": 12, ...},
        ...]}

Each result has ``arm`` or ``contrast``, ``endpoint`` (bmd, ctx, p1np, rankl_opg_ratio, tscore,
p_osteoporosis), ``site`` (bmd, tscore and p_osteoporosis only), ``time_months``, ``mean``, ``median``,
``hdi50`` and ``hdi90`` ([lower, upper] highest-density intervals). bmd, ctx, p1np and rankl_opg_ratio are %
change from month 0 (contrasts: differences in percentage points), tscore in SD. For ``p_osteoporosis``
``mean`` is the probability that T <= -2.5 (contrasts: the difference of probabilities); a probability over
draws has no band, so ``median``, ``hdi50`` and ``hdi90`` are null.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from bonebayes._atomic import write_text_atomic
from bonebayes.projections.engine import ENDPOINTS, UNITS

FORMATS: tuple[str, ...] = ("json", "csv", "table")
CSV_COLUMNS: tuple[str, ...] = (
    "arm",
    "contrast",
    "endpoint",
    "site",
    "time_months",
    "mean",
    "median",
    "hdi50_lo",
    "hdi50_hi",
    "hdi90_lo",
    "hdi90_hi",
    "unit",
)


def _num(x: Any, digits: int = 4) -> float | None:
    v = float(x)
    return None if math.isnan(v) else round(v, digits) + 0.0  # + 0.0: no "-0.0"


def _select_endpoints(endpoints: Sequence[str] | None) -> list[str]:
    if not endpoints:
        return list(ENDPOINTS)
    bad = [e for e in endpoints if e not in ENDPOINTS]
    if bad:
        raise ValueError(f"unknown endpoint(s) {', '.join(bad)}; allowed: {', '.join(ENDPOINTS)}")
    return list(endpoints)


def to_records(ds: xr.Dataset, endpoints: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """One dict per (arm or contrast, endpoint, site, time) with the summary statistics."""
    eps = _select_endpoints(endpoints)
    out: list[dict[str, Any]] = []
    groups = [("arm", "")] + ([("contrast", "contrast_")] if "contrast" in ds.dims else [])
    times = [_num(t, 6) for t in ds["time"].values]
    for group, prefix in groups:
        names = [str(n) for n in ds[group].values]
        for ep in eps:
            is_p = ep == "p_osteoporosis"
            var = ds.get(f"{prefix}p_osteoporosis" if is_p else f"{prefix}{ep}_summary")
            if var is None:
                continue
            has_site = "site" in var.dims
            order = ([] if is_p else ["stat"]) + [group, "time"] + (["site"] if has_site else [])
            arr = np.round(var.transpose(*order).values.astype(float), 4) + 0.0  # + 0.0: no "-0.0"
            if not has_site:
                arr = arr[..., None]
            sites = [str(s) for s in ds["site"].values] if has_site else [None]
            for i, name in enumerate(names):
                for s, site in enumerate(sites):
                    for k, t in enumerate(times):
                        row: dict[str, Any] = {group: name, "endpoint": ep}
                        if site is not None:
                            row["site"] = site
                        row["time_months"] = t
                        if is_p:
                            row.update(mean=_clean(arr[i, k, s]), median=None, hdi50=None, hdi90=None)
                        else:
                            v = [_clean(x) for x in arr[:, i, k, s]]
                            row.update(mean=v[0], median=v[1], hdi50=[v[2], v[3]], hdi90=[v[4], v[5]])
                        out.append(row)
    return out


def _clean(x: float) -> float | None:
    return None if math.isnan(x) else float(x)


def metadata(ds: xr.Dataset) -> dict[str, Any]:
    """Scenario, fit provenance, settings and notes of a projection (from its attrs)."""
    a = ds.attrs

    def js(key: str, default: Any) -> Any:
        return json.loads(a[key]) if key in a else default

    return {
        "scenario": a.get("scenario_name", ""),
        "fit": {
            "source": a.get("fit_source", ""),
            "model": a.get("fit_model", ""),
            "sampler": a.get("fit_sampler", ""),
            "created": a.get("fit_created", ""),
            "data_hash": a.get("fit_data_hash", ""),
            "draws_used": int(a.get("n_draws", 0)),
            "draws_available": int(a.get("fit_draws_available", 0)),
        },
        "settings": {
            "study_effects": a.get("study_effects", ""),
            "study_effects_note": a.get("study_effects_note", ""),
            "seed": int(a.get("seed", 0)),
            "allow_prior": bool(a.get("allow_prior", 0)),
            "prior_parameters": js("prior_parameters", []),
            "tscore_baseline": js("tscore_baseline", {}),
            "tscore_reference": js("tscore_reference", {}),
            "arm_populations": js("arm_populations", {}),
            "arm_notes": js("arm_notes", {}),
        },
        "denosumab_rebound": a.get("denosumab_rebound", "not modelled"),
        "notes": js("notes", []),
        "units": dict(UNITS),
        "scenario_definition": js("scenario", {}),
    }


def to_json(ds: xr.Dataset, endpoints: Sequence[str] | None = None) -> str:
    doc = metadata(ds)
    doc["results"] = to_records(ds, endpoints)
    return json.dumps(doc, indent=2) + "\n"


def to_frame(ds: xr.Dataset, endpoints: Sequence[str] | None = None) -> pd.DataFrame:
    """The results as a flat table (CSV columns)."""
    rows = []
    for r in to_records(ds, endpoints):
        h50, h90 = r.get("hdi50") or [None, None], r.get("hdi90") or [None, None]
        unit = UNITS[r["endpoint"]]
        if "contrast" in r:
            unit = {"tscore": "difference in SD", "p_osteoporosis": "difference in probability"}.get(
                r["endpoint"], "difference in percentage points"
            )
        rows.append(
            {
                "arm": r.get("arm", ""),
                "contrast": r.get("contrast", ""),
                "endpoint": r["endpoint"],
                "site": r.get("site", ""),
                "time_months": r["time_months"],
                "mean": r["mean"],
                "median": r["median"],
                "hdi50_lo": h50[0],
                "hdi50_hi": h50[1],
                "hdi90_lo": h90[0],
                "hdi90_hi": h90[1],
                "unit": unit,
            }
        )
    return pd.DataFrame(rows, columns=list(CSV_COLUMNS))


def to_csv(ds: xr.Dataset, endpoints: Sequence[str] | None = None) -> str:
    buf = io.StringIO()
    to_frame(ds, endpoints).to_csv(buf, index=False, lineterminator="\n")
    return buf.getvalue()


def _band(lo: Any, hi: Any) -> str:
    return "" if lo is None or pd.isna(lo) else f"[{lo:.2f}, {hi:.2f}]"


def to_table(ds: xr.Dataset, endpoints: Sequence[str] | None = None, width: int = 160) -> str:
    """A readable text table (one line per arm/contrast, endpoint, site and time) with the notes."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    df = to_frame(ds, endpoints)
    meta = metadata(ds)
    title = (
        f"{meta['scenario']}  (fit {meta['fit']['source']}, {meta['fit']['draws_used']} draws, "
        f"study effects: {meta['settings']['study_effects']})"
    )
    table = Table(title=title, box=box.SIMPLE_HEAD)
    for c, j in (
        ("arm / contrast", "left"),
        ("endpoint", "left"),
        ("site", "left"),
        ("month", "right"),
        ("mean", "right"),
        ("median", "right"),
        ("50% HDI", "right"),
        ("90% HDI", "right"),
    ):
        table.add_column(c, justify=j, no_wrap=True)
    for r in df.itertuples():
        who = r.arm or f"{r.contrast} (diff.)"
        med = "" if r.median is None or pd.isna(r.median) else f"{r.median:.2f}"
        table.add_row(
            who,
            r.endpoint,
            r.site,
            f"{r.time_months:g}",
            f"{r.mean:.3g}" if r.endpoint == "p_osteoporosis" else f"{r.mean:.2f}",
            med,
            _band(r.hdi50_lo, r.hdi50_hi),
            _band(r.hdi90_lo, r.hdi90_hi),
        )
    console = Console(width=width, record=True, file=io.StringIO(), highlight=False)
    console.print(table)
    lines = [
        "units: bmd, ctx, p1np, rankl_opg_ratio % change from month 0 (contrasts: percentage points); "
        "tscore SD; p_osteoporosis P(T <= -2.5)"
    ]
    lines += [f"note: {n}" for n in meta["notes"]]
    return console.export_text() + "\n".join(lines) + "\n"


def render(ds: xr.Dataset, fmt: str = "json", endpoints: Sequence[str] | None = None) -> str:
    """The projection in ``fmt`` (json, csv or table)."""
    if fmt == "json":
        return to_json(ds, endpoints)
    if fmt == "csv":
        return to_csv(ds, endpoints)
    if fmt == "table":
        return to_table(ds, endpoints)
    raise ValueError(f"unknown format {fmt!r}; allowed: {', '.join(FORMATS)}")


def write(
    ds: xr.Dataset, path: str | Path, fmt: str | None = None, endpoints: Sequence[str] | None = None
) -> Path:
    """Write the projection to ``path`` atomically (format from ``fmt`` or the file suffix; .nc = NetCDF)."""
    path = Path(path)
    fmt = fmt or {".json": "json", ".csv": "csv", ".txt": "table", ".nc": "netcdf"}.get(
        path.suffix.lower(), "json"
    )
    if fmt == "netcdf":
        from bonebayes._atomic import write_atomic

        return write_atomic(path, lambda tmp: ds.to_netcdf(tmp, engine="h5netcdf"))
    return write_text_atomic(render(ds, fmt, endpoints), path)
