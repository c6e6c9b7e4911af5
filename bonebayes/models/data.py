"""From validated tables to the arrays a model needs: units, schedule and likelihood blocks."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from bonebayes.physiology.inputs import hormone_covariates
from bonebayes.physiology.schedule import Schedule, Unit, build_schedule
from bonebayes.regimens import Dose

MARKER_LATENT = {"ctx": "C", "p1np": "B"}
SERUM = ("rankl", "opg")
HORMONE_VARIABLES = ("estradiol", "testosterone", "pth", "free_t4", "igf1", "cortisol")


def regimens_from_exposures(exposures: pd.DataFrame, subjects: list[str]) -> dict[str, tuple[Dose, ...]]:
    """Regimen per subject from the exposure table (subjects without rows get an empty regimen)."""
    out: dict[str, list[Dose]] = {s: [] for s in subjects}
    keys = ("drug", "dose", "unit", "start_month", "stop_month", "every_months", "route")
    for rec in exposures.to_dict("records"):
        item = {}
        for k in keys:
            v = rec.get(k)
            if v is None or (isinstance(v, float) and np.isnan(v)) or v == "":
                continue
            item[k] = v
        out[str(rec["subject"])].append(Dose(**item))
    return {s: tuple(v) for s, v in out.items()}


@dataclass
class Block:
    """One likelihood block: observations of one kind with their unit, time location and level."""

    variable: np.ndarray  # str per observation
    unit: np.ndarray  # subject index
    node: np.ndarray  # window node at or before the time
    tau: np.ndarray  # remainder (months) after the node
    log_value: np.ndarray  # log of the canonical value (log LOQ when censored)
    censored: np.ndarray  # bool: left-censored below the limit of quantification
    level: np.ndarray  # index into IndividualData.levels
    row: np.ndarray  # source row numbers (for reports)

    def __len__(self) -> int:
        return len(self.unit)


@dataclass
class IndividualData:
    """Everything the individual hierarchical model needs, derived from the two tables."""

    subjects: list[str]
    cohorts: list[str]
    cohort_of: np.ndarray  # (N,) cohort index per subject
    sites: tuple[str, ...]
    levels: tuple[str, ...]  # measured variables with a subject intercept, e.g. ctx, p1np, bmd_lumbar_spine
    schedule: Schedule
    markers: Block  # ctx / p1np
    bmd: Block
    serum: Block
    serum_x: np.ndarray  # (n_serum, n_hormones) covariates at the serum times minus those at month 0
    site_of_bmd: np.ndarray  # (n_bmd,) site index
    unused: dict[str, int]  # variables present in the table but not used by the model, with counts
    regimens: dict[str, tuple[Dose, ...]]

    @property
    def n_subjects(self) -> int:
        return len(self.subjects)

    def obs_per_subject(self, level: str) -> np.ndarray:
        """Number of observations of ``level`` per subject."""
        k = self.levels.index(level)
        blocks = (self.markers, self.bmd, self.serum)
        units = np.concatenate([b.unit[b.level == k] for b in blocks])
        return np.bincount(units, minlength=self.n_subjects)


def prepare_individual(
    observations: pd.DataFrame,
    exposures: pd.DataFrame,
    *,
    step_months: float = 1.0,
    history_step_months: float = 3.0,
    sites: tuple[str, ...] | None = None,
) -> IndividualData:
    """Build :class:`IndividualData` from validated tables (see ``datasets.load_cohort``)."""
    obs = observations
    subjects = sorted(obs["subject"].astype(str).unique())
    sidx = {s: i for i, s in enumerate(subjects)}
    cohort_first = obs.groupby("subject")["cohort"].first()
    cohorts = sorted(cohort_first.astype(str).unique())
    cohort_of = np.array([cohorts.index(str(cohort_first[s])) for s in subjects])
    sex = (obs.groupby("subject")["sex"].first() if "sex" in obs else pd.Series(dtype=str))
    regimens = regimens_from_exposures(exposures, subjects)

    def sex_of(s: str) -> str:
        v = str(sex.get(s, "female")).strip().lower()
        return "male" if v in ("m", "male") else "female"

    units = [Unit(s, regimens[s], sex_of(s)) for s in subjects]
    present_sites = tuple(v[4:] for v in sorted(obs["variable"].unique()) if v.startswith("bmd_"))
    sites = sites or tuple(s for s in ("lumbar_spine", "total_hip", "femoral_neck") if s in present_sites)
    var_order = [*MARKER_LATENT, *SERUM, *[f"bmd_{s}" for s in sites]]
    levels = tuple(v for v in var_order if v in set(obs["variable"]))
    t_end = float(obs["time_months"].max())
    schedule = build_schedule(units, max(t_end, step_months), t0=0.0, step=step_months,
                              history_step=history_step_months)
    used_vars = set(levels)
    unused = {str(k): int(v) for k, v in obs.loc[~obs["variable"].isin(used_vars), "variable"]
              .value_counts().items()}

    def block(mask: np.ndarray) -> Block:
        sub = obs.loc[mask]
        node, tau = schedule.locate(sub["time_months"].to_numpy(float))
        return Block(
            variable=sub["variable"].to_numpy(str),
            unit=np.array([sidx[s] for s in sub["subject"].astype(str)], dtype=int),
            node=node, tau=tau,
            log_value=np.log(sub["value"].to_numpy(float)),
            censored=sub["below_loq"].to_numpy(bool),
            level=np.array([levels.index(v) for v in sub["variable"]], dtype=int),
            row=sub["row"].to_numpy(int) if "row" in sub else np.arange(len(sub)),
        )

    var = obs["variable"].to_numpy(str)
    markers = block(np.isin(var, list(MARKER_LATENT)))
    bmd = block(np.isin(var, [f"bmd_{s}" for s in sites]))
    serum = block(np.isin(var, list(SERUM)))
    for b, name in ((bmd, "BMD"), (serum, "serum RANKL/OPG")):
        if b.censored.any():
            raise ValueError(f"{name} rows {b.row[b.censored][:5].tolist()} are flagged below_loq; "
                             "censoring is modelled only for ctx and p1np")
    serum_x = np.zeros((len(serum), len(schedule.hormones)))
    for i in np.unique(serum.unit):
        sel = serum.unit == i
        t = obs.loc[np.isin(var, list(SERUM)), "time_months"].to_numpy(float)[sel]
        x = hormone_covariates(regimens[subjects[i]], np.append(t, 0.0), units[i].sex)
        serum_x[sel] = x[:-1] - x[-1]  # change from baseline: intercepts are baseline levels
    site_of_bmd = np.array([sites.index(v[4:]) for v in bmd.variable], dtype=int)
    return IndividualData(subjects, cohorts, cohort_of, sites, levels, schedule, markers, bmd, serum, serum_x,
                          site_of_bmd, unused, regimens)
