"""Plots of projections (matplotlib): fan charts, a regimen comparison, T-score trajectories.

All take the Dataset of :func:`bonebayes.projections.project` (``summary=True``; use ``monthly=True`` for
smooth fans) and return a matplotlib Figure; :func:`save_figure` writes one atomically. Bands are the 50%
(dark) and 90% (light) highest-density intervals over posterior draws; the line is the median.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from bonebayes._atomic import write_atomic
from bonebayes.projections.references import OSTEOPENIA_T, OSTEOPOROSIS_T

LABELS: dict[str, str] = {
    "bmd": "BMD, % change from month 0",
    "tscore": "T-score (SD)",
    "ctx": "CTX, % change from month 0",
    "p1np": "P1NP, % change from month 0",
    "rankl_opg_ratio": "serum RANKL/OPG, % change from month 0",
}


def _pyplot() -> Any:
    import matplotlib.pyplot as plt  # the user's backend (the CLI selects Agg)

    return plt


def _summary(ds: xr.Dataset, endpoint: str, group: str = "arm") -> xr.DataArray:
    name = f"{'contrast_' if group == 'contrast' else ''}{endpoint}_summary"
    if name not in ds:
        raise ValueError(f"the projection has no {name!r}: call project(..., summary=True)")
    return ds[name]


def _names(ds: xr.Dataset, group: str, chosen: Sequence[str] | None) -> list[str]:
    have = [str(a) for a in ds[group].values]
    if chosen is None:
        return have
    bad = [a for a in chosen if a not in have]
    if bad:
        raise ValueError(f"unknown {group}(s) {', '.join(bad)}; allowed: {', '.join(have)}")
    return list(chosen)


def _fan(ax: Any, t: np.ndarray, s: xr.DataArray, color: Any, label: str) -> None:
    ax.fill_between(t, s.sel(stat="hdi90_lo"), s.sel(stat="hdi90_hi"), color=color, alpha=0.18, lw=0)
    ax.fill_between(t, s.sel(stat="hdi50_lo"), s.sel(stat="hdi50_hi"), color=color, alpha=0.38, lw=0)
    ax.plot(t, s.sel(stat="median"), color=color, lw=1.8, label=label)


def fan_chart(
    ds: xr.Dataset,
    endpoint: str = "bmd",
    *,
    arms: Sequence[str] | None = None,
    sites: Sequence[str] | None = None,
    contrasts: bool = False,
) -> Any:
    """Trajectories with 50/90% bands: one panel per site (site endpoints) or one panel, one colour per arm.

    ``contrasts=True`` plots the contrasts (paired differences) instead of the arms.
    """
    plt = _pyplot()
    group = "contrast" if contrasts else "arm"
    if contrasts and "contrast" not in ds.dims:
        raise ValueError("the scenario has no contrasts")
    s_all = _summary(ds, endpoint, group)
    names = _names(ds, group, arms)
    panel_sites = _names(ds, "site", sites) if "site" in s_all.dims else [None]
    width = max(6.4, 4.6 * len(panel_sites))
    fig, axes = plt.subplots(1, len(panel_sites), figsize=(width, 4.0), squeeze=False, sharey=True)
    t = ds["time"].values
    colors = plt.get_cmap("tab10")
    for k, site in enumerate(panel_sites):
        ax = axes[0, k]
        for i, name in enumerate(names):
            s = s_all.sel({group: name})
            s = s.sel(site=site) if site is not None else s
            _fan(ax, t, s, colors(i % 10), name)
        ax.axhline(0.0, color="0.5", lw=0.8, ls=":")
        ax.set_title(site.replace("_", " ") if site else LABELS.get(endpoint, endpoint).split(",")[0])
        ax.set_xlabel("months")
        ax.grid(alpha=0.3)
    ylabel = LABELS.get(endpoint, endpoint)
    axes[0, 0].set_ylabel(("difference in " + ylabel) if contrasts else ylabel)
    axes[0, -1].legend(fontsize=8, loc="best")
    title = f"{ds.attrs.get('scenario_name', '')}: median, 50% and 90% HDI over posterior draws"
    fig.suptitle(textwrap.fill(title, width=int(width * 13)), fontsize=10)
    fig.tight_layout()
    return fig


def regimen_comparison(
    ds: xr.Dataset,
    endpoint: str = "bmd",
    *,
    time: float | None = None,
    site: str | None = None,
    contrasts: bool | None = None,
) -> Any:
    """Intervals of every arm (or contrast) at one time: median, 50% and 90% HDI, one row each.

    Defaults: the last time, the first site, and the contrasts when the scenario has any.
    """
    plt = _pyplot()
    use_contrasts = ("contrast" in ds.dims) if contrasts is None else contrasts
    group = "contrast" if use_contrasts else "arm"
    s_all = _summary(ds, endpoint, group)
    t = float(ds["time"].values[-1]) if time is None else float(time)
    if t not in set(map(float, ds["time"].values)):
        raise ValueError(
            f"time {t:g} is not a projected time; times: {', '.join(f'{x:g}' for x in ds['time'].values)}"
        )
    s = s_all.sel(time=t)
    if "site" in s.dims:
        site = site or str(ds["site"].values[0])
        s = s.sel(site=site)
    names = [str(n) for n in ds[group].values]
    fig, ax = plt.subplots(figsize=(6.4, 0.55 * len(names) + 1.6))
    y = np.arange(len(names))[::-1]
    ax.hlines(
        y, s.sel(stat="hdi90_lo"), s.sel(stat="hdi90_hi"), color="C0", lw=2, alpha=0.45, label="90% HDI"
    )
    ax.hlines(y, s.sel(stat="hdi50_lo"), s.sel(stat="hdi50_hi"), color="C0", lw=6, label="50% HDI")
    ax.plot(s.sel(stat="median"), y, "o", color="k", ms=5, label="median")
    ax.axvline(0.0, color="0.5", lw=0.8, ls=":")
    ax.set_yticks(y, names)
    what = LABELS.get(endpoint, endpoint)
    ax.set_xlabel(("difference in " + what) if use_contrasts else what)
    ax.set_title(
        f"month {t:g}" + (f", {site.replace('_', ' ')}" if site and "site" in s_all.dims else ""), fontsize=10
    )
    ax.legend(fontsize=8, loc="best")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig


def tscore_chart(ds: xr.Dataset, *, site: str | None = None, arms: Sequence[str] | None = None) -> Any:
    """T-score trajectories (median, 50/90% bands) per arm with the -1 and -2.5 lines."""
    plt = _pyplot()
    s_all = _summary(ds, "tscore")
    site = site or str(ds["site"].values[0])
    _names(ds, "site", [site])
    names = _names(ds, "arm", arms)
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    t = ds["time"].values
    colors = plt.get_cmap("tab10")
    for i, name in enumerate(names):
        _fan(ax, t, s_all.sel(arm=name, site=site), colors(i % 10), name)
    ax.axhline(OSTEOPENIA_T, color="darkorange", lw=1.0, ls="--", label="T = -1 (low bone mass)")
    ax.axhline(OSTEOPOROSIS_T, color="firebrick", lw=1.0, ls="--", label="T = -2.5 (osteoporosis)")
    ax.set_xlabel("months")
    ax.set_ylabel(f"T-score, {site.replace('_', ' ')} (SD)")
    base = _baseline_note(ds, site)
    ax.set_title(textwrap.fill(ds.attrs.get("scenario_name", ""), width=80) + f"\n{base}", fontsize=9)
    ax.legend(fontsize=8, loc="best")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def _baseline_note(ds: xr.Dataset, site: str) -> str:
    import json

    src = json.loads(ds.attrs.get("tscore_baseline", "{}")).get(site, "model")
    return (
        "baseline T-score given" if src == "given" else "baseline T-score from the model's simulated history"
    )


def save_figure(fig: Any, path: str | Path, dpi: int = 120) -> Path:
    """Save a figure atomically (format from the suffix: .png, .pdf, .svg) and close it."""
    path = Path(path)
    fmt = path.suffix.lstrip(".") or "png"
    try:
        return write_atomic(path, lambda tmp: fig.savefig(tmp, format=fmt, dpi=dpi))
    finally:
        _pyplot().close(fig)


def write_standard_plots(ds: xr.Dataset, directory: str | Path) -> list[Path]:
    """Fan charts (BMD per site, markers), the regimen comparison and T-score charts into ``directory``."""
    d = Path(directory)
    out = [
        save_figure(fan_chart(ds, "bmd"), d / "fan_bmd.png"),
        save_figure(fan_chart(ds, "ctx"), d / "fan_ctx.png"),
        save_figure(fan_chart(ds, "p1np"), d / "fan_p1np.png"),
    ]
    if "contrast" in ds.dims:
        out.append(save_figure(fan_chart(ds, "bmd", contrasts=True), d / "fan_bmd_contrasts.png"))
    for site in ds["site"].values:
        out.append(
            save_figure(regimen_comparison(ds, "bmd", site=str(site)), d / f"comparison_bmd_{site}.png")
        )
        out.append(save_figure(tscore_chart(ds, site=str(site)), d / f"tscore_{site}.png"))
    return out
