"""The treatment vocabulary: drugs, doses, schedules, hormone scenarios and population presets.

Time is in months since the unit's (subject's or arm's) start. A regimen is a list of :class:`Dose` items:

* continuous daily drugs omit ``every_months`` (``alendronate 10 mg/day from month 0 to 36``);
* repeated injections give ``every_months`` (``denosumab 60 mg every 6 months``);
* a single dose has ``stop_month == start_month`` (``zoledronate 5 mg once``);
* events have no dose (``natural_menopause`` at ``start_month`` = the final menstrual period).

Every drug belongs to one of three kinds, which decides how it enters the physiology:

* ``antiresorptive`` and ``anabolic``: a kinetic-PD exposure (one virtual compartment with the half-life
  below, in reference-dose equivalents) drives an Emax effect on resorption (I_R) or formation (E_F);
* ``hormone``: the drug changes a circulating hormone level (estradiol, testosterone, glucocorticoid dose,
  free T4, IGF-1, continuous PTH), which enters the signalling layer as x_h = log(H / H_reference);
* ``event``: natural menopause, parathyroidectomy, hypogonadism onset, restoring euthyroidism.

The vocabulary numbers (reference doses, half-lives, hormone potencies) are literature-anchored constants,
not fitted parameters; each carries its rationale in ``DRUGS[...].source``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

HORMONES: tuple[str, ...] = ("estradiol", "testosterone", "pth", "glucocorticoid", "thyroid", "igf1")
"""Signalling-layer covariates, in this order on every hormone axis."""

HORMONE_UNITS: dict[str, str] = {
    "estradiol": "pg/mL",
    "testosterone": "ng/dL",
    "pth": "pg/mL",
    "glucocorticoid": "mg/day prednisone-equivalent",
    "thyroid": "ng/dL free T4",
    "igf1": "ng/mL",
}

Kind = Literal["antiresorptive", "anabolic", "hormone", "event"]
Sex = Literal["female", "male"]

# Young-adult reference levels (x_h = 0). Female estradiol: mid-follicular premenopausal level; male levels:
# Travison 2017 harmonised median testosterone (531 ng/dL) and a typical male estradiol of 25 pg/mL.
REFERENCE_LEVELS: dict[str, dict[str, float]] = {
    "female": {"estradiol": 100.0, "testosterone": 30.0, "pth": 40.0, "glucocorticoid": 0.0, "thyroid": 1.2,
               "igf1": 200.0},
    "male": {"estradiol": 25.0, "testosterone": 531.0, "pth": 40.0, "glucocorticoid": 0.0, "thyroid": 1.2,
             "igf1": 200.0},
}
POSTMENOPAUSAL_ESTRADIOL = 8.5  # pg/mL, median of postmenopausal women not using estrogen (Menopause 2013)
GLUCOCORTICOID_SCALE = 5.0  # mg/day prednisone-equivalent; x_gc = log(1 + dose / 5)


@dataclass(frozen=True)
class DrugSpec:
    """One entry of the vocabulary."""

    name: str
    kind: Kind
    units: dict[str, float]  # accepted unit -> factor to the canonical unit (first key)
    reference_dose: float | None = None  # canonical units; exposure is in multiples of it
    half_life_months: float | None = None  # kinetic-PD (effect-compartment) half-life
    schedule: Literal["continuous", "injection", "event", "any"] = "any"
    routes: tuple[str, ...] = ()
    hormone: str | None = None  # hormone the drug moves (kind == "hormone")
    source: str = ""
    aliases: tuple[str, ...] = field(default=())

    @property
    def canonical_unit(self) -> str:
        return next(iter(self.units))


DRUGS: dict[str, DrugSpec] = {
    d.name: d
    for d in [
        DrugSpec("alendronate", "antiresorptive", {"mg/day": 1.0, "mg/week": 1 / 7}, 10.0, 12.0, "continuous",
                 source="oral bisphosphonate; markers recover over 1-2 years after stopping (bone retention)"),
        DrugSpec("zoledronate", "antiresorptive", {"mg": 1.0}, 5.0, 36.0, "injection",
                 source="IV bisphosphonate; one 1-5 mg infusion suppresses turnover for years (Grey 2017)"),
        DrugSpec("denosumab", "antiresorptive", {"mg": 1.0}, 60.0, 1.0, "injection",
                 source="anti-RANKL antibody, serum half-life about 26 days; effect wanes 6-9 months after a dose"),
        DrugSpec("calcitonin", "antiresorptive", {"IU/day": 1.0}, 200.0, 0.1, "continuous",
                 source="nasal salmon calcitonin 200 IU/day; short-acting, weak antiresorptive"),
        DrugSpec("teriparatide", "anabolic", {"ug/day": 1.0, "mcg/day": 1.0}, 20.0, 0.1, "continuous",
                 source="intermittent PTH(1-34) 20 ug/day SC; anabolic, effect gone within weeks of stopping"),
        DrugSpec("estradiol", "hormone", {"mg/day": 1.0, "ug/day": 1e-3}, schedule="continuous",
                 routes=("oral", "transdermal"), hormone="estradiol",
                 source="oral E2: +25 pg/mL per mg/day; transdermal: +1.8 pg/mL per ug/day (50 ug patch ~ 97 "
                        "pg/mL, Glynne 2025 median 355 pmol/L)"),
        DrugSpec("conjugated_estrogens", "hormone", {"mg/day": 1.0}, schedule="continuous", routes=("oral",),
                 hormone="estradiol", source="0.625 mg/day CEE taken as equivalent to 1 mg/day oral estradiol"),
        DrugSpec("testosterone", "hormone", {"mg/day": 1.0, "mg": 1.0}, schedule="any",
                 routes=("gel", "im"), hormone="testosterone",
                 source="gel: +80 ng/dL per mg/day (Kenny 2010); IM esters: dose per injection averaged over "
                        "the interval, +35 ng/dL per mg/day; aromatisation adds 0.03 pg/mL E2 per ng/dL"),
        DrugSpec("glucocorticoid", "hormone", {"mg/day": 1.0}, schedule="continuous", hormone="glucocorticoid",
                 aliases=("prednisone", "prednisolone"), source="prednisone-equivalent dose"),
        DrugSpec("thyroid_excess", "hormone", {"ng/dL": 1.0, "pmol/L": 1 / 12.87}, schedule="continuous",
                 hormone="thyroid", aliases=("levothyroxine_excess", "hyperthyroidism"),
                 source="dose is the free T4 level reached (reference 1.2 ng/dL)"),
        DrugSpec("gh_secretagogue", "hormone", {"mg/day": 1.0}, schedule="continuous", hormone="igf1",
                 aliases=("ibutamoren",), source="oral GH secretagogue: IGF-1 x (1 + 0.02 per mg/day)"),
        DrugSpec("growth_hormone", "hormone", {"mg/day": 1.0}, schedule="continuous", hormone="igf1",
                 source="recombinant GH: IGF-1 x (1 + 1.5 per mg/day)"),
        DrugSpec("natural_menopause", "event", {"": 1.0}, schedule="event", hormone="estradiol",
                 source="estradiol falls from the premenopausal to the postmenopausal level (8.5 pg/mL) along a "
                        "logistic centred 3 months before the final menstrual period, scale 8 months"),
        DrugSpec("hypogonadism_onset", "event", {"": 1.0}, schedule="event", hormone="testosterone",
                 source="male testosterone falls to 250 ng/dL (estradiol to 15 pg/mL) at start_month"),
        DrugSpec("parathyroidectomy", "event", {"": 1.0}, schedule="event", hormone="pth",
                 source="continuous PTH excess removed: PTH returns to the reference 40 pg/mL"),
        DrugSpec("antithyroid", "event", {"": 1.0}, schedule="event", hormone="thyroid",
                 source="euthyroidism restored: free T4 back to 1.2 ng/dL"),
        DrugSpec("placebo", "event", {"": 1.0}, schedule="any", aliases=("none", "no_treatment"),
                 source="no pharmacological effect"),
    ]
}
_ALIASES = {alias: spec.name for spec in DRUGS.values() for alias in spec.aliases}


def resolve_drug(name: str) -> DrugSpec:
    """Look a drug up by name or alias; an unknown name is an error listing the valid ones."""
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key not in DRUGS:
        valid = ", ".join(sorted([*DRUGS, *_ALIASES]))
        raise ValueError(f"unknown drug {name!r}; valid drugs: {valid}")
    return DRUGS[key]


class Dose(BaseModel):
    """One regimen item: a drug, its dose and schedule (months since the unit's start)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    drug: str
    dose: float | None = None
    unit: str = ""
    start_month: float = 0.0
    stop_month: float | None = None  # None: open-ended (continuous) or a single event
    every_months: float | None = None  # None: continuous daily dosing (or a single injection/event)
    route: str | None = None

    @field_validator("drug")
    @classmethod
    def _known_drug(cls, v: str) -> str:
        return resolve_drug(v).name

    @model_validator(mode="after")
    def _check(self) -> Dose:
        spec = DRUGS[self.drug]
        if spec.kind == "event" or spec.name == "placebo":
            return self
        if self.unit not in spec.units:
            raise ValueError(
                f"unit {self.unit!r} is not valid for {self.drug}; valid units: {', '.join(spec.units)}"
            )
        if self.dose is None or not self.dose >= 0:
            raise ValueError(f"{self.drug}: dose must be a number >= 0 (got {self.dose!r})")
        if self.stop_month is not None and self.stop_month < self.start_month:
            raise ValueError(f"{self.drug}: stop_month {self.stop_month} is before start_month {self.start_month}")
        if self.every_months is not None and not self.every_months > 0:
            raise ValueError(f"{self.drug}: every_months must be > 0 (got {self.every_months})")
        if spec.routes:
            if self.route is not None and self.route not in spec.routes:
                raise ValueError(f"{self.drug}: route {self.route!r} is not valid; valid routes: "
                                 f"{', '.join(spec.routes)}")
        elif self.route is not None:
            raise ValueError(f"{self.drug} takes no route (got {self.route!r})")
        if spec.schedule == "continuous" and self.every_months is not None:
            raise ValueError(f"{self.drug} is dosed continuously: omit every_months")
        if spec.schedule == "continuous" and not self.unit.endswith(("/day", "/week")) and spec.hormone is None:
            raise ValueError(f"{self.drug} is dosed continuously; give a daily unit")
        return self

    @property
    def spec(self) -> DrugSpec:
        return DRUGS[self.drug]

    @property
    def canonical_dose(self) -> float:
        """Dose in the drug's canonical unit (e.g. mg/week -> mg/day)."""
        return float(self.dose or 0.0) * self.spec.units.get(self.unit, 1.0)

    @property
    def effective_route(self) -> str | None:
        return self.route or (self.spec.routes[0] if self.spec.routes else None)

    def injection_times(self, horizon: float) -> list[float]:
        """Administration times (months) of a bolus drug up to ``horizon`` (inclusive of stop_month)."""
        if self.every_months is None:
            return [self.start_month]
        end = min(self.stop_month if self.stop_month is not None else horizon, horizon)
        times, t = [], self.start_month
        while t <= end + 1e-9:
            times.append(t)
            t += self.every_months
        return times

    def is_bolus(self) -> bool:
        """True for injections (zoledronate, denosumab, IM testosterone given per dose)."""
        return self.spec.schedule == "injection" or (self.unit == "mg" and self.spec.schedule == "any")


Population = Literal[
    "premenopausal", "perimenopausal", "postmenopausal", "hypogonadal_male", "eugonadal_male",
    "glucocorticoid_user", "hyperthyroid", "primary_hyperparathyroidism",
]
POPULATIONS: tuple[str, ...] = Population.__args__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class PopulationPreset:
    """A baseline hormone profile and the history that produced it."""

    name: str
    sex: Sex
    levels: dict[str, float]  # hormone levels that differ from the sex's reference
    history: tuple[Dose, ...] = ()
    source: str = ""


def population_preset(
    name: str, *, years_since_menopause: float | None = None, years_since_onset: float = 5.0
) -> PopulationPreset:
    """Build a population preset; unknown names are an error listing the valid ones."""
    if name not in POPULATIONS:
        raise ValueError(f"unknown population {name!r}; valid: {', '.join(POPULATIONS)}")
    onset = -12.0 * years_since_onset
    ysm_default = 10.0 if years_since_menopause is None else years_since_menopause
    if name == "premenopausal":
        return PopulationPreset(name, "female", {})
    if name == "perimenopausal":
        return PopulationPreset(name, "female", {}, (Dose(drug="natural_menopause", start_month=12.0),),
                                "final menstrual period one year after the start")
    if name == "postmenopausal":
        return PopulationPreset(name, "female", {}, (Dose(drug="natural_menopause",
                                                         start_month=-12.0 * ysm_default),),
                                "natural menopause years_since_menopause before the start (default 10)")
    if name == "eugonadal_male":
        return PopulationPreset(name, "male", {})
    if name == "hypogonadal_male":
        return PopulationPreset(name, "male", {}, (Dose(drug="hypogonadism_onset", start_month=onset),),
                                "testosterone < 275 ng/dL (TTrials entry), onset years_since_onset before")
    if name == "glucocorticoid_user":
        return PopulationPreset(name, "female", {}, (
            Dose(drug="natural_menopause", start_month=-12.0 * ysm_default),
            Dose(drug="glucocorticoid", dose=7.5, unit="mg/day", start_month=onset / 5),
        ), "postmenopausal woman on prednisone 7.5 mg/day for a year before the start")
    if name == "hyperthyroid":
        return PopulationPreset(name, "female", {"thyroid": 3.0}, (),
                                "free T4 2.5x the reference (untreated overt hyperthyroidism)")
    return PopulationPreset(name, "female", {"pth": 196.0}, (
        Dose(drug="natural_menopause", start_month=-12.0 * ysm_default),),
        "PTH 196 pg/mL (Grigorie 2013), postmenopausal")


def validate_exposure_row(row: dict) -> None:
    """Validate one exposure-table row against the vocabulary (raises ValueError naming the problem)."""
    def clean(v: object) -> object:
        return None if v is None or (isinstance(v, float) and v != v) or v == "" else v

    Dose(**{k: clean(v) for k, v in row.items()
            if k in {"drug", "dose", "unit", "start_month", "stop_month", "every_months", "route"}
            and clean(v) is not None})


def regimen_from_records(records: list[dict]) -> list[Dose]:
    """Build a regimen from plain dicts (TOML tables, DataFrame rows)."""
    return [Dose(**r) for r in records]
