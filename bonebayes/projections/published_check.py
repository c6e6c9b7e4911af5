"""Sanity check of projections against the published rows the model was trained on.

For every usable published row (``data/published_arms.csv``) that is a change in BMD or a turnover marker,
:func:`predict_rows` replays the trial's arm design (population history + regimen, ``published_design.toml``)
through the projection engine and computes the row's quantity draw by draw, with the published model's
definitions (``bonebayes.models.published``): a change from t_a to t_b, a difference against the control
arm, or an annual rate. :func:`compare_published` summarises that next to the observed value and, for a
scenario, next to the scenario arm with the same drugs at the same time.

With ``study_effects="own"`` each row uses its study's fitted effects, which reproduces the model's own
``pub_pred`` (a test checks this: one physics implementation). The default ``"new"`` treats every trial as a
new study population, the honest comparison for a projection. Level rows (absolute OPG, RANKL, marker levels)
carry study-assay intercepts and are not projected.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from bonebayes.datasets.published import DXA_SITES, PublishedEvidence, load_published
from bonebayes.physiology.schedule import Unit
from bonebayes.projections.engine import load_posterior, project, simulate_draws
from bonebayes.projections.parameters import draw_indices, stack_draws
from bonebayes.projections.scenario import Scenario, load_scenario
from bonebayes.projections.summary import summarize_array

ANCHOR_ASSAYS: frozenset[str] = frozenset({"ctx_serum", "p1np_serum", "dxa", "qct"})
"""Assays with scale 1 (the model's anchors); others are scaled by the fitted beta_assay."""
DRUG_FAMILY: dict[str, str] = {"conjugated_estrogens": "estradiol", "growth_hormone": "gh_secretagogue"}
"""Drugs that count as the same regimen when matching published arms with scenario arms."""
PROJECTED_MEASURES: tuple[str, ...] = ("pct_change_from_baseline", "pct_diff_vs_control", "annual_rate_pct")


def _drug_set(doses: Iterable[Any], before: float | None = None, since: float = 0.0) -> frozenset[str]:
    """Drugs of a regimen (families merged), plus the events at or after ``since`` (the arm's own events,
    e.g. a parathyroidectomy or the final menstrual period within the trial; earlier events are history)."""
    out = set()
    for d in doses:
        if before is not None and d.start_month >= before:
            continue
        if d.spec.kind != "event":
            out.add(DRUG_FAMILY.get(d.drug, d.drug))
        elif d.drug != "placebo" and d.start_month >= since:
            out.add(d.drug)
    return frozenset(out)


def _design_set(ev: PublishedEvidence, key: str) -> frozenset[str]:
    d = ev.designs[key]
    return _drug_set(d.regimen, since=d.time_offset_months)


def projectable_rows(ev: PublishedEvidence) -> pd.DataFrame:
    """Usable rows that are BMD or marker changes (not levels), with their model times t_a and t_b."""
    u = ev.usable
    rows = u[u["measure"].isin(PROJECTED_MEASURES) & u["model_kind"].isin(("bmd", "marker"))].copy()
    off = rows["arm_key"].map(lambda k: ev.designs[k].time_offset_months).astype(float)
    annual = rows["measure"] == "annual_rate_pct"
    rows["t_a"] = np.where(annual, off + rows["time_months"], off)
    rows["t_b"] = np.where(annual, off + rows["time_end_months"], off + rows["time_months"])
    return rows.reset_index(drop=True)


def _beta(post: xr.Dataset, assay: str) -> np.ndarray | float:
    if assay in ANCHOR_ASSAYS:
        return 1.0
    if "beta_assay" in post and "assay" in post["beta_assay"].dims and assay in post["assay"].values:
        return post["beta_assay"].sel(assay=assay).transpose("sample").values
    return np.nan  # scale unknown to this fit: no prediction


def predict_rows(
    post: xr.Dataset,
    ev: PublishedEvidence,
    rows: pd.DataFrame,
    *,
    config: dict[str, Any] | None = None,
    study_effects: str = "new",
    seed: int = 0,
    allow_prior: bool = False,
) -> np.ndarray:
    """Per-draw predictions (D, R) of ``rows`` (:func:`projectable_rows`); ``post`` has a ``sample`` axis.

    ``study_effects``: ``"own"`` (each study's fitted effects, as in the model), ``"new"`` or ``"none"``.
    """
    D = post.sizes["sample"]
    out = np.full((D, len(rows)), np.nan)
    studies = set(map(str, post["study"].values)) if "study" in post.coords else set()
    for k, (study, grp) in enumerate(rows.groupby("study", sort=False)):
        keys = list(dict.fromkeys(list(grp["arm_key"]) + [c for c in grp["control_key"] if c]))
        units = [
            Unit(key, ev.designs[key].regimen, ev.designs[key].sex, ev.designs[key].levels) for key in keys
        ]
        sites = sorted({s for s in grp["model_site"] if s}, key=lambda s: (s not in DXA_SITES, s)) or [
            "lumbar_spine"
        ]
        mode = study_effects
        if study_effects == "own":
            mode = study if study in studies else "none"
        sim = simulate_draws(
            post,
            units,
            np.concatenate([grp["t_a"], grp["t_b"]]),
            sites,
            config=config,
            allow_prior=allow_prior,
            study_effects=mode,
            seed=seed + k,
        )
        drift = sim.params.drift
        for j, r in grp.iterrows():
            a, b = sim.index(r["t_a"]), sim.index(r["t_b"])
            u = keys.index(r["arm_key"])
            c = keys.index(r["control_key"]) if r["control_key"] else None
            if r["model_kind"] == "bmd":
                s = sites.index(r["model_site"])
                ratio = np.exp(sim.m[b, u, :, s] - sim.m[a, u, :, s])
                if r["measure"] == "pct_diff_vs_control":
                    out[:, j] = 100.0 * (ratio - np.exp(sim.m[b, c, :, s] - sim.m[a, c, :, s]))
                elif r["measure"] == "annual_rate_pct":
                    out[:, j] = 100.0 * (ratio - 1.0) * 12.0 / (r["t_b"] - r["t_a"]) + drift
                else:
                    out[:, j] = 100.0 * (ratio - 1.0) + drift * (r["t_b"] - r["t_a"]) / 12.0
            else:
                X = sim.C if r["latent"] == "C" else sim.B
                beta = _beta(post, r["assay"])
                arm = 100.0 * np.expm1(beta * np.log(X[b, u] / X[a, u]))
                if r["measure"] == "pct_diff_vs_control":
                    arm = arm - 100.0 * np.expm1(beta * np.log(X[b, c] / X[a, c]))
                out[:, j] = arm
    return out


def related_rows(rows: pd.DataFrame, ev: PublishedEvidence, scenario: Scenario) -> pd.Series:
    """Rows whose arm (and control) use only drugs and events the scenario's arms use (placebo arms when the
    scenario has a drug-free arm)."""
    scen_sets = {name: _drug_set(a.to_dose() for a in arm.regimen) for name, arm in scenario.arms.items()}
    drugs = frozenset().union(*scen_sets.values())
    has_free = any(not s for s in scen_sets.values())

    def ok(key: str) -> bool:
        if not key:
            return True
        s = _design_set(ev, key)
        return (bool(s) and s <= drugs) or (not s and has_free)

    arm_ok = rows["arm_key"].map(ok) & rows["control_key"].map(ok)
    sites_ok = (rows["model_kind"] != "bmd") | rows["model_site"].isin(scenario.sites)
    return arm_ok & sites_ok


def _scenario_match(scenario: Scenario, ev: PublishedEvidence, r: pd.Series) -> tuple[str, str] | None:
    """(arm, control arm or '') of the scenario matching a row's drugs up to the row's time, if any."""
    t = float(r["t_b"])

    def find(key: str) -> str | None:
        want = _design_set(ev, key)
        for name, arm in scenario.arms.items():
            if _drug_set((a.to_dose() for a in arm.regimen), before=t) == want:
                return name
        return None

    arm = find(r["arm_key"])
    if arm is None:
        return None
    ctrl = find(r["control_key"]) if r["control_key"] else ""
    return None if ctrl is None or ctrl == arm else (arm, ctrl)


def compare_published(
    fit: Any,
    scenario: Scenario | str | None = None,
    *,
    draws: int | None = None,
    seed: int = 0,
    study_effects: str = "new",
    allow_prior: bool = False,
    records: Sequence[int] | None = None,
) -> pd.DataFrame:
    """Observed published rows next to their projections (mean and 90% HDI over draws).

    Without ``scenario`` every projectable row is included; with one, the rows related to its drugs, plus the
    scenario's matching arm (or arm minus its drug-free arm) at the row's time in ``scenario_*`` columns.
    """
    ev = load_published()
    post, prov, _ = load_posterior(fit)
    stacked = stack_draws(post)
    stacked = stacked.isel(sample=draw_indices(stacked.sizes["sample"], draws))
    rows = projectable_rows(ev)
    scn = load_scenario(scenario) if scenario is not None else None
    if scn is not None:
        rows = rows[related_rows(rows, ev, scn)].reset_index(drop=True)
    if records is not None:
        rows = rows[rows["record_id"].isin(records)].reset_index(drop=True)
    pred = predict_rows(
        stacked,
        ev,
        rows,
        config=prov.get("config"),
        study_effects=study_effects,
        seed=seed,
        allow_prior=allow_prior,
    )
    summ = summarize_array(pred) if len(rows) else np.zeros((6, 0))
    ctrl_arm = rows["control_key"].str.split("/").str[-1].where(rows["control_key"] != "", "")
    out = pd.DataFrame(
        {
            "record_id": rows["record_id"].astype(int),
            "study": rows["study"],
            "arm": rows["arm"],
            "control": ctrl_arm,
            "endpoint": rows["endpoint"],
            "site": rows["model_site"].where(rows["model_kind"] == "bmd", rows["site"]),
            "measure": rows["measure"],
            "months": [
                f"{r.time_months:g} to {r.time_end_months:g}"
                if r.measure == "annual_rate_pct"
                else f"{r.time_months:g}"
                for r in rows.itertuples()
            ],
            "observed": rows["value"].astype(float),
            "se": rows["se"].astype(float),
            "projected_mean": summ[0],
            "projected_hdi90_lo": summ[4],
            "projected_hdi90_hi": summ[5],
        }
    )
    out["inside_90"] = (out["observed"] >= out["projected_hdi90_lo"]) & (
        out["observed"] <= out["projected_hdi90_hi"]
    )
    if scn is not None and len(rows):
        out = _add_scenario_columns(
            out,
            rows,
            fit,
            scn,
            ev,
            draws=draws,
            seed=seed,
            study_effects=study_effects,
            allow_prior=allow_prior,
        )
    return out


def _add_scenario_columns(
    out: pd.DataFrame, rows: pd.DataFrame, fit: Any, scn: Scenario, ev: PublishedEvidence, **kw: Any
) -> pd.DataFrame:
    """The scenario's matching arm (or contrast) at each row's time: mean and 90% HDI."""
    matches = [
        _scenario_match(scn, ev, r) if r["measure"] != "annual_rate_pct" and r["t_a"] == 0 else None
        for _, r in rows.iterrows()
    ]
    times = sorted({float(r["t_b"]) for (_, r), m in zip(rows.iterrows(), matches) if m is not None})
    cols = {
        "scenario_arm": [""] * len(rows),
        "scenario_mean": [np.nan] * len(rows),
        "scenario_hdi90_lo": [np.nan] * len(rows),
        "scenario_hdi90_hi": [np.nan] * len(rows),
    }
    if times:
        ds = project(fit, scn, times=sorted(set(times) | set(scn.times_months)), summary=False, **kw)
        for j, ((_, r), m) in enumerate(zip(rows.iterrows(), matches)):
            if m is None:
                continue
            var = {"bmd": "bmd", "ctx": "ctx", "p1np": "p1np"}.get(r["endpoint"])
            if var is None or (r["model_kind"] == "marker" and r["assay"] not in ANCHOR_ASSAYS):
                continue
            sel: dict[str, Any] = {"time": float(r["t_b"])}
            if var == "bmd":
                if r["model_site"] not in list(ds["site"].values):
                    continue
                sel["site"] = r["model_site"]
            v = ds[var].sel(arm=m[0], **sel).values
            if m[1]:
                v = v - ds[var].sel(arm=m[1], **sel).values
            s = summarize_array(v[:, None])[:, 0]
            cols["scenario_arm"][j] = m[0] + (f" - {m[1]}" if m[1] else "")
            cols["scenario_mean"][j], cols["scenario_hdi90_lo"][j], cols["scenario_hdi90_hi"][j] = (
                s[0],
                s[4],
                s[5],
            )
    for k, v in cols.items():
        out[k] = v
    return out
