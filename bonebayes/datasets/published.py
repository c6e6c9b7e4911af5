"""Published arm-level evidence: the shipped tables in ``data/``, their validation and endpoint mapping.

``load_published()`` reads ``published_arms.csv`` (one row per arm x endpoint x site x time, every citation,
address and quality column kept), ``published_design.toml`` (how each arm enters the model: population preset,
regimen, assumptions) and ``reference_values.csv``. It works from an installed wheel (the files are package
data) as well as from a checkout. Malformed cells raise :class:`DataValidationError` naming the file, row,
line and column; well-formed rows the model cannot use are kept in ``PublishedEvidence.excluded`` with the
reason, never dropped silently.

Endpoint mapping (``ENDPOINTS``; each assay has its own scale):

=================  ==============  ==============================================================
endpoint           model quantity  scale
=================  ==============  ==============================================================
bmd (DXA, site)    m at that site  % change of exp(m) (m = log BMD ratio)
vbmd_trabecular    its own site    QCT trabecular vBMD is a separate site ``<site>_trabecular``
ctx (serum)        C (resorption)  anchor assay: log ratio of C
ctx_urine, ntx     C               log ratio of C times an assay exponent beta_assay
p1np (serum)       B (formation)   anchor assay: log ratio of B
bsap, osteocalcin  B               log ratio of B times beta_assay
opg, rankl         serum layer     log level = study-assay intercept + g . x(t)
=================  ==============  ==============================================================

Dispersion to standard error (``se`` column, on the reported scale; level rows are modelled on the log scale
with ``se_log = se / value``): ``se`` as given; ``sd`` / sqrt(n); ``ci95`` (hi - lo) / (2 x 1.96);
``median_range`` range / 4 (n <= 70) or range / 6 (n > 70) per Hozo et al. 2005, then / sqrt(n); ``none``
(or an SD without n) leaves ``se`` empty: the model uses a fitted per-subject reporting scale / sqrt(n).
"""

from __future__ import annotations

import math
import os
import tomllib
import warnings
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from bonebayes.datasets.io import _Checker, _read_csv
from bonebayes.datasets.schema import DataValidationError, Problem
from bonebayes.regimens import POPULATIONS, Dose, population_preset

ARM_COLUMNS: tuple[str, ...] = (
    "record_id", "study", "citation", "address", "population", "sex", "n", "arm", "regimen", "control_arm",
    "endpoint", "site", "measure", "time_months", "time_end_months", "value", "unit", "dispersion", "disp_lo",
    "disp_hi", "quality", "note",
)
MEASURES: tuple[str, ...] = ("pct_change_from_baseline", "pct_diff_vs_control", "annual_rate_pct", "level")
DISPERSIONS: tuple[str, ...] = ("se", "sd", "ci95", "median_range", "none")
QUALITIES: tuple[str, ...] = ("primary", "secondary", "unverified")
DXA_SITES: tuple[str, ...] = ("lumbar_spine", "total_hip", "femoral_neck")
Z95 = 1.959963984540054


@dataclass(frozen=True)
class EndpointMap:
    """How one published endpoint enters the model."""

    kind: Literal["bmd", "marker", "serum"]
    latent: str  # "C" / "B" for markers, "m" for BMD, analyte ("opg", "rankl") for the serum layer
    assay: str  # assay scale: its own exponent (markers) or intercept (levels)
    anchor: bool = False  # the assay whose exponent is fixed at 1 (defines the latent's scale)
    meaning: str = ""


ENDPOINTS: dict[str, EndpointMap] = {
    "bmd": EndpointMap("bmd", "m", "dxa", True, "DXA areal BMD at the row's site -> that site's BMD state"),
    "vbmd_trabecular": EndpointMap("bmd", "m", "qct", True,
                                   "QCT trabecular volumetric BMD -> its own site '<site>_trabecular'"),
    "ctx": EndpointMap("marker", "C", "ctx_serum", True, "serum CTX -> resorption state C (anchor assay)"),
    "ctx_urine": EndpointMap("marker", "C", "ctx_urine", False,
                             "urinary CrossLaps/creatinine -> C with its own exponent"),
    "ntx": EndpointMap("marker", "C", "ntx_urine", False, "urinary NTX -> C with its own exponent"),
    "p1np": EndpointMap("marker", "B", "p1np_serum", True, "serum P1NP -> formation state B (anchor assay)"),
    "bsap": EndpointMap("marker", "B", "bsap", False, "bone-specific ALP -> B with its own exponent"),
    "osteocalcin": EndpointMap("marker", "B", "osteocalcin", False, "osteocalcin -> B with its own exponent"),
    "opg": EndpointMap("serum", "opg", "opg", False, "serum/plasma OPG -> serum measurement layer (g_opg)"),
    "rankl": EndpointMap("serum", "rankl", "rankl", False,
                         "serum/plasma RANKL -> serum measurement layer (g_rankl)"),
}


def data_path(name: str = "") -> Path:
    """Path of a shipped data file (``bonebayes/data`` in a wheel; the checkout's ``data/`` otherwise)."""
    base = resources.files("bonebayes") / "data"
    path = Path(str(base))
    if not path.exists():  # pragma: no cover - only if package data is missing
        path = Path(__file__).resolve().parents[2] / "data"
    return path / name if name else path


@dataclass
class ArmDesign:
    """How one arm is simulated: a population preset, its history and the arm's regimen (model time)."""

    study: str
    arm: str
    population: str
    sex: str
    years_since_menopause: float | None
    time_offset_months: float
    regimen: tuple[Dose, ...]  # preset history + arm regimen, in model time (arm time + offset)
    levels: dict[str, float]
    n_assumed: float | None
    note: str
    why: str

    @property
    def key(self) -> str:
        return f"{self.study}/{self.arm}"


@dataclass
class PublishedEvidence:
    """The shipped (or a user's) published evidence, split into usable and excluded rows."""

    arms: pd.DataFrame  # every row as read (validated), all source columns kept
    usable: pd.DataFrame  # rows the model uses, with mapping and standard-error columns added
    excluded: pd.DataFrame  # record_id, study, arm, endpoint, measure, reason
    designs: dict[str, ArmDesign]  # "study/arm" -> design
    references: pd.DataFrame  # reference_values.csv
    source: str = ""
    design_source: str = ""
    notes: list[str] = field(default_factory=list)

    def studies(self) -> list[str]:
        return list(dict.fromkeys(self.usable["study"]))

    def study_sizes(self) -> pd.Series:
        """Largest arm size (n, else n_assumed) of each study with usable rows, descending."""
        n = self.usable["n_used"].groupby(self.usable["study"]).max()
        return n.sort_values(ascending=False, kind="stable")

    def summary(self) -> str:
        u, x = self.usable, self.excluded
        lines = [f"{len(self.arms)} published rows from {self.arms['study'].nunique()} studies: "
                 f"{len(u)} used ({u['study'].nunique()} studies, {u['arm_key'].nunique()} arms), "
                 f"{len(x)} excluded"]
        for reason, grp in x.groupby("reason", sort=False):
            lines.append(f"  excluded {len(grp)} (records {', '.join(map(str, grp['record_id']))}): {reason}")
        return "\n".join(lines)


# --------------------------------------------------------------------------- reading
def _validate_arms(df: pd.DataFrame, rows: np.ndarray, source: str, has_lines: bool) -> pd.DataFrame:
    ck = _Checker(source, rows, has_lines)
    ck.columns(df, ARM_COLUMNS, ())
    out = pd.DataFrame(index=df.index)
    for col in ("study", "citation", "arm", "endpoint", "measure", "unit", "dispersion", "quality"):
        out[col] = ck.text(df, col)
    for col in ("address", "population", "sex", "regimen", "control_arm", "site", "note"):
        out[col] = ck.text(df, col, required=False)
    rid = ck.number(df, "record_id")
    for col in ("n", "time_months", "time_end_months", "disp_lo", "disp_hi"):
        out[col] = ck.number(df, col, required=False)
    out["value"] = ck.number(df, "value", required=False)
    ck.flag(rid.notna() & (rid != rid.round()), "record_id", rid, "record_id must be an integer")
    ck.flag(rid.duplicated(keep=False) & rid.notna(), "record_id", rid, "duplicate record_id")
    out.insert(0, "record_id", rid.astype("Int64"))
    ck.flag(~out["measure"].isin(MEASURES) & out["measure"].notna(), "measure", out["measure"],
            lambda i: f"unknown measure {out['measure'].iloc[i]!r}; valid: {', '.join(MEASURES)}")
    ck.flag(~out["dispersion"].isin(DISPERSIONS) & out["dispersion"].notna(), "dispersion", out["dispersion"],
            lambda i: f"unknown dispersion {out['dispersion'].iloc[i]!r}; valid: {', '.join(DISPERSIONS)}")
    ck.flag(~out["quality"].isin(QUALITIES) & out["quality"].notna(), "quality", out["quality"],
            lambda i: f"unknown quality {out['quality'].iloc[i]!r}; valid: {', '.join(QUALITIES)}")
    ck.flag(out["n"].notna() & (out["n"] <= 0), "n", out["n"], "n must be positive")
    ck.flag(out["value"].isna() & out["measure"].isin(MEASURES), "value", out["value"],
            "missing value (empty cell)")
    ck.flag((out["measure"] == "level") & (out["value"] <= 0), "value", out["value"],
            "a level must be positive (modelled on the log scale)")
    ck.flag((out["measure"] == "annual_rate_pct") & out["time_months"].notna() & out["time_end_months"].isna(),
            "time_end_months", out["time_end_months"], "an annual rate needs time_end_months")
    ck.flag((out["measure"] == "annual_rate_pct") & (out["time_end_months"] <= out["time_months"]),
            "time_end_months", out["time_end_months"], "time_end_months must be after time_months")
    ck.flag((out["measure"] == "pct_diff_vs_control") & out["control_arm"].isna(), "control_arm", None,
            "a pct_diff_vs_control row needs control_arm")
    need_lo = out["dispersion"].isin(("se", "sd", "ci95", "median_range"))
    ck.flag(need_lo & out["disp_lo"].isna(), "disp_lo", None,
            lambda i: f"dispersion {out['dispersion'].iloc[i]!r} needs disp_lo")
    need_hi = out["dispersion"].isin(("ci95", "median_range"))
    ck.flag(need_hi & out["disp_hi"].isna(), "disp_hi", None,
            lambda i: f"dispersion {out['dispersion'].iloc[i]!r} needs disp_hi")
    ck.flag(need_hi & (out["disp_hi"] < out["disp_lo"]), "disp_hi", out["disp_hi"], "disp_hi < disp_lo")
    ck.flag(out["dispersion"].isin(("se", "sd")) & (out["disp_lo"] <= 0), "disp_lo", out["disp_lo"],
            "an SE or SD must be positive")
    ck.raise_if_any()
    out.insert(0, "row", rows)
    return out


def _standard_error(r: pd.Series) -> tuple[float, str]:
    """Standard error of the reported value and how it was obtained (NaN, 'fitted' where unknown)."""
    d, lo, hi, n = r["dispersion"], r["disp_lo"], r["disp_hi"], r["n"]
    if d == "se":
        return float(lo), "se"
    if d == "ci95":
        return float((hi - lo) / (2 * Z95)), "ci95 width / 3.92"
    if d == "sd" and pd.notna(n):
        return float(lo / math.sqrt(n)), "sd / sqrt(n)"
    if d == "median_range" and pd.notna(n):
        div = 4.0 if n <= 70 else 6.0
        return float((hi - lo) / div / math.sqrt(n)), f"range / {div:g} / sqrt(n) (Hozo 2005)"
    return float("nan"), "fitted reporting scale"


def _design_problem(path: str, key: str, reason: str) -> Problem:
    return Problem(path, None, None, key, None, reason)


def load_design(path: str | os.PathLike[str] | None = None) -> tuple[dict[str, ArmDesign], list[dict]]:
    """Read the arm-design TOML: ``{"study/arm": ArmDesign}`` and the curated exclusions."""
    p = Path(path) if path is not None else data_path("published_design.toml")
    src = str(p)
    try:
        spec = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise DataValidationError([_design_problem(src, None, "file not found")]) from e
    except tomllib.TOMLDecodeError as e:
        raise DataValidationError([_design_problem(src, None, f"invalid TOML: {e}")]) from e
    problems: list[Problem] = []
    designs: dict[str, ArmDesign] = {}
    for study, sspec in (spec.get("studies") or {}).items():
        for arm, aspec in (sspec.get("arms") or {}).items():
            keypath = f"studies.{study}.arms.{arm}"
            merged = {k: v for k, v in sspec.items() if k != "arms"} | aspec
            pop = merged.get("population")
            if pop not in POPULATIONS:
                problems.append(_design_problem(src, f"{keypath}.population",
                                                f"population {pop!r} is not one of {', '.join(POPULATIONS)}"))
                continue
            ysm = merged.get("years_since_menopause")
            preset = population_preset(pop, years_since_menopause=ysm)
            offset = float(merged.get("time_offset_months", 0.0))
            items = []
            for k, rec in enumerate(aspec.get("regimen", [])):
                try:
                    d = Dose(**rec)
                except (ValueError, TypeError) as e:
                    problems.append(_design_problem(src, f"{keypath}.regimen[{k}]", str(e).replace("\n", " ")))
                    continue
                items.append(d.model_copy(update={
                    "start_month": d.start_month + offset,
                    "stop_month": None if d.stop_month is None else d.stop_month + offset}))
            history = tuple(d.model_copy(update={"start_month": d.start_month + offset}) for d in preset.history)
            sex = merged.get("sex", preset.sex)
            if sex not in ("female", "male"):
                problems.append(_design_problem(src, f"{keypath}.sex", f"sex {sex!r} must be 'female' or 'male'"))
                continue
            designs[f"{study}/{arm}"] = ArmDesign(
                study=study, arm=arm, population=pop, sex=sex, years_since_menopause=ysm,
                time_offset_months=offset, regimen=history + tuple(items), levels=dict(preset.levels),
                n_assumed=aspec.get("n_assumed"), note=str(aspec.get("note", "")), why=str(sspec.get("why", "")))
    exclusions = []
    for k, ex in enumerate(spec.get("exclusions", [])):
        if not ex.get("records") or not ex.get("reason"):
            problems.append(_design_problem(src, f"exclusions[{k}]", "needs 'records' (list) and 'reason'"))
            continue
        exclusions.append({"records": [int(r) for r in ex["records"]], "reason": str(ex["reason"])})
    if problems:
        raise DataValidationError(problems)
    return designs, exclusions


def load_references(path: str | os.PathLike[str] | None = None) -> pd.DataFrame:
    """``reference_values.csv``: young-adult BMD references, T-score thresholds, typical hormone levels."""
    p = Path(path) if path is not None else data_path("reference_values.csv")
    df, _ = _read_csv(p)
    df["value"] = pd.to_numeric(df["value"].replace("", np.nan))
    return df


def load_published(
    arms_path: str | os.PathLike[str] | None = None,
    design_path: str | os.PathLike[str] | None = None,
    references_path: str | os.PathLike[str] | None = None,
) -> PublishedEvidence:
    """Load, validate and map the published evidence (the shipped files by default)."""
    ap = Path(arms_path) if arms_path is not None else data_path("published_arms.csv")
    raw, rows = _read_csv(ap)
    arms = _validate_arms(raw, rows, str(ap), True)
    designs, exclusions = load_design(design_path)
    references = load_references(references_path)
    curated = {r: ex["reason"] for ex in exclusions for r in ex["records"]}
    unknown = sorted(set(curated) - set(arms["record_id"].dropna().astype(int)))
    if unknown:
        raise DataValidationError([_design_problem(str(design_path or "published_design.toml"), "exclusions",
                                                   f"records {unknown} are not in {ap.name}")])
    reasons: dict[int, str] = {}
    mapped = []
    for i, r in arms.iterrows():
        rid = int(r["record_id"])
        key = f"{r['study']}/{r['arm']}"
        reason = curated.get(rid)
        if reason is None and pd.isna(r["time_months"]):
            reason = "no time point in the source"
        if reason is None and r["endpoint"] not in ENDPOINTS:
            reason = f"endpoint {r['endpoint']!r} is not mapped to a model quantity"
        if reason is None and key not in designs:
            reason = f"no arm design for {key} in the design file"
        if (reason is None and r["measure"] == "pct_diff_vs_control"
                and f"{r['study']}/{r['control_arm']}" not in designs):
            reason = f"no arm design for the control arm {r['study']}/{r['control_arm']}"
        if reason is None and ENDPOINTS[r["endpoint"]].kind == "serum" and r["measure"] != "level":
            reason = "serum OPG/RANKL changes are modelled as levels only"
        if reason is None and ENDPOINTS[r["endpoint"]].kind == "bmd" and r["measure"] == "level":
            reason = "absolute BMD levels are not modelled (only changes)"
        if reason is not None:
            reasons[rid] = reason
            continue
        mapped.append(i)
    usable = arms.loc[mapped].copy()
    ep = usable["endpoint"].map(ENDPOINTS)
    usable["model_kind"] = [e.kind for e in ep]
    usable["latent"] = [e.latent for e in ep]
    usable["assay"] = [e.assay if e.kind != "serum" else f"{r.study}:{r.endpoint}:{r.unit}"
                       for e, r in zip(ep, usable.itertuples())]
    usable["model_site"] = [(f"{s}_trabecular" if e.assay == "qct" else s) if e.kind == "bmd" else ""
                            for e, s in zip(ep, usable["site"])]
    bad_site = (usable["model_kind"] == "bmd") & ~usable["site"].isin(DXA_SITES)
    for rid in usable.loc[bad_site, "record_id"]:
        reasons[int(rid)] = "BMD site not one of " + ", ".join(DXA_SITES)
    usable = usable[~bad_site]
    # level rows are informative only against another level of the same study and assay
    lvl = usable["measure"] == "level"
    counts = usable[lvl].groupby("assay")["record_id"].transform("count")
    lonely = counts[counts < 2].index
    for rid in usable.loc[lonely, "record_id"]:
        reasons[int(rid)] = ("single level without a within-study comparator: with a study-specific assay "
                             "intercept it constrains no parameter")
    usable = usable.drop(index=lonely)
    se = [_standard_error(r) for _, r in usable.iterrows()]
    usable["se"] = [s for s, _ in se]
    usable["se_source"] = [w for _, w in se]
    usable["arm_key"] = usable["study"] + "/" + usable["arm"]
    usable["control_key"] = np.where(usable["measure"] == "pct_diff_vs_control",
                                     usable["study"] + "/" + usable["control_arm"].fillna(""), "")
    n_assumed = usable["arm_key"].map(lambda k: designs[k].n_assumed)
    usable["n_used"] = usable["n"].fillna(n_assumed.astype(float))
    missing_n = usable["se"].isna() & usable["n_used"].isna()
    if missing_n.any():
        raise DataValidationError([
            Problem(str(ap), int(r["row"]), int(r["row"]) + 1, "n", None,
                    "no dispersion and no n: give n here or n_assumed in the arm design")
            for _, r in usable[missing_n].iterrows()])
    ctrl_n = usable["control_key"].map(lambda k: designs[k].n_assumed if k else np.nan)
    usable["n_control"] = np.where(usable["control_key"] != "", ctrl_n.fillna(usable["n_used"]), np.nan)
    usable = usable.reset_index(drop=True)
    excluded = arms[arms["record_id"].astype(int).isin(reasons)][
        ["record_id", "study", "arm", "endpoint", "measure", "time_months"]].copy()
    excluded["reason"] = excluded["record_id"].astype(int).map(reasons)
    unused = sorted(set(designs) - set(usable["arm_key"]) - set(usable["control_key"]))
    notes = []
    if unused:
        notes.append(f"arm designs without usable rows (kept for reference): {', '.join(unused)}")
    if len(excluded) == len(arms):
        warnings.warn("every published row was excluded; see PublishedEvidence.excluded", stacklevel=2)
    return PublishedEvidence(arms=arms, usable=usable, excluded=excluded.reset_index(drop=True),
                             designs=designs, references=references, source=str(ap),
                             design_source=str(design_path or data_path("published_design.toml")), notes=notes)


LEVEL_SOURCES: dict[str, str] = {
    "estradiol": "postmenopausal 8.5 pg/mL: reference_values.csv estradiol_serum, postmenopausal not using "
                 "estrogen (Menopause 2013;20(4):393, median); premenopausal 100 pg/mL and hypogonadal male "
                 "15 pg/mL stated as model assumptions",
    "testosterone": "male reference 531 ng/dL: reference_values.csv (Travison 2017); hypogonadal 250 ng/dL: "
                    "below the TTrials entry threshold 275 ng/dL (reference_values.csv)",
    "pth": "196 pg/mL: Grigorie 2013 (published_arms.csv note, untreated primary hyperparathyroidism)",
    "glucocorticoid": "7.5-32.5 mg/day prednisone-equivalent: the trials' entry criteria or reported dose",
    "thyroid": "free T4 3.0 ng/dL (2.5x reference): stated assumption for untreated overt hyperthyroidism",
    "igf1": "reference 200 ng/mL: stated assumption",
}
"""Where each non-reference baseline hormone level of the population presets comes from."""


def population_profiles(evidence: PublishedEvidence | None = None) -> pd.DataFrame:
    """Baseline hormone profile (levels just before month 0) of every arm design, with the sources of the
    levels that differ from the sex's young-adult reference."""
    from bonebayes.physiology.inputs import hormone_levels
    from bonebayes.regimens import REFERENCE_LEVELS

    ev = evidence or load_published()
    rows = []
    for key, d in ev.designs.items():
        lev = hormone_levels(d.regimen, np.array([d.time_offset_months - 1e-6]), d.sex, d.levels)
        ref = REFERENCE_LEVELS[d.sex]
        moved = [h for h, v in lev.items() if abs(np.log(max(v[0], 1e-9) / max(ref[h], 1e-9))) > 0.05
                 or (ref[h] == 0 and v[0] > 0)]
        rows.append({"arm": key, "population": d.population, "sex": d.sex,
                     "years_since_menopause": d.years_since_menopause,
                     **{h: round(float(v[0]), 3) for h, v in lev.items()},
                     "source": "; ".join(f"{h}: {LEVEL_SOURCES[h]}" for h in moved) or "young-adult reference"})
    return pd.DataFrame(rows)
