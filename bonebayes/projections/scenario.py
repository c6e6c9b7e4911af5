"""Treatment scenarios: the TOML format, its validation, and the simulated units it stands for.

A scenario names a population (a preset of :mod:`bonebayes.regimens`, optionally adjusted), the times and
skeletal sites to report, the arms (each a regimen) and the contrasts between arms. Times are months since
the scenario's start (month 0 = baseline of every percent change); negative start months put a course or an
event before the start (it becomes part of the simulated history). Example::

    name = "denosumab vs placebo, postmenopausal osteoporosis"
    population = "postmenopausal"        # preset (see POPULATION_CHOICES)
    age = 72                             # optional (years)
    years_since_menopause = 20           # optional (years)
    baseline_tscore = { lumbar_spine = -2.8, total_hip = -1.9 }   # optional (SD units)
    times_months = [0, 12, 24, 36]
    sites = ["lumbar_spine", "total_hip", "femoral_neck"]

    [arms.denosumab]
    regimen = [ { drug = "denosumab", dose = 60, unit = "mg", every_months = 6, start_month = 0, stop_month = 36 } ]

    [arms.placebo]
    regimen = []

    [[contrasts]]
    name = "denosumab_vs_placebo"
    arms = ["denosumab", "placebo"]      # first minus second

Any problem raises :class:`ScenarioError`, whose message names the file, the TOML key path (for example
``arms.denosumab.regimen[0].every_months``) and the allowed values.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from bonebayes._keypath import KeyPathError, read_input
from bonebayes.physiology.schedule import Unit
from bonebayes.regimens import (
    DRUGS,
    HORMONE_UNITS,
    HORMONES,
    POPULATIONS,
    Dose,
    population_preset,
    resolve_drug,
)

SITES: tuple[str, ...] = ("lumbar_spine", "total_hip", "femoral_neck")
"""DXA sites a scenario may report (each has a young-adult reference for T-scores)."""
POPULATION_CHOICES: tuple[str, ...] = (*POPULATIONS, "custom")
"""Population presets; ``custom`` starts from the sex's young-adult reference plus ``levels``."""
MENOPAUSE_AGE_YEARS = 51.0
"""Mean age at natural menopause, used to derive years_since_menopause from age when only age is given."""
USES_YEARS_SINCE_MENOPAUSE: tuple[str, ...] = (
    "postmenopausal",
    "glucocorticoid_user",
    "primary_hyperparathyroidism",
)
MAX_MONTHS = 1200.0  # 100 years: guards against a time typed in days or weeks

_NAME = re.compile(r"^[A-Za-z0-9_.+-]+$")


class ScenarioError(KeyPathError):
    """A scenario that fails validation: ``problems`` lists (key path, message); ``source`` is the file."""

    def __init__(self, problems: list[tuple[str, str]], source: str = "<scenario>") -> None:
        super().__init__(problems, source)


def _choices(values: Any) -> str:
    return ", ".join(str(v) for v in values)


# --------------------------------------------------------------------------- regimen items
class RegimenItem(BaseModel):
    """One regimen entry, checked field by field so errors name the exact key (see :class:`Dose`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    drug: str
    dose: float | None = Field(None, validate_default=True)
    unit: str = Field("", validate_default=True)
    start_month: float = 0.0
    stop_month: float | None = None
    every_months: float | None = Field(None, validate_default=True)
    route: str | None = Field(None, validate_default=True)

    @field_validator("drug")
    @classmethod
    def _drug(cls, v: str) -> str:
        try:
            return resolve_drug(v).name
        except ValueError:
            raise ValueError(f"unknown drug {v!r}; allowed: {_choices(sorted(DRUGS))}") from None

    @staticmethod
    def _spec(info: ValidationInfo):  # noqa: ANN205
        drug = info.data.get("drug")
        return DRUGS.get(drug) if drug else None

    @field_validator("dose")
    @classmethod
    def _dose(cls, v: float | None, info: ValidationInfo) -> float | None:
        spec = cls._spec(info)
        if spec is None or spec.kind == "event":
            if v is not None and spec is not None and spec.name != "placebo":
                raise ValueError(f"{spec.name} is an event and takes no dose; omit dose")
            return v
        if v is None:
            raise ValueError(f"{spec.name} needs a dose (a number >= 0, in {_choices(spec.units)})")
        if not (v >= 0 and math.isfinite(v)):
            raise ValueError(f"dose must be a finite number >= 0 (got {v})")
        return v

    @field_validator("unit")
    @classmethod
    def _unit(cls, v: str, info: ValidationInfo) -> str:
        spec = cls._spec(info)
        if spec is None or spec.kind == "event":
            if v and spec is not None and v not in spec.units:
                raise ValueError(f"{spec.name} takes no unit; omit unit")
            return v
        if v not in spec.units:
            shown = "(missing)" if v == "" else repr(v)
            raise ValueError(f"unit {shown} is not valid for {spec.name}; allowed: {_choices(spec.units)}")
        if spec.schedule == "continuous" and spec.hormone is None and not v.endswith(("/day", "/week")):
            raise ValueError(f"{spec.name} is dosed continuously; allowed: {_choices(spec.units)}")
        return v

    @field_validator("start_month")
    @classmethod
    def _start(cls, v: float) -> float:
        if not math.isfinite(v) or abs(v) > MAX_MONTHS:
            raise ValueError(f"start_month must be a number of months within +-{MAX_MONTHS:g} (got {v})")
        return v

    @field_validator("stop_month")
    @classmethod
    def _stop(cls, v: float | None, info: ValidationInfo) -> float | None:
        start = info.data.get("start_month")
        if v is not None:
            if not math.isfinite(v) or abs(v) > MAX_MONTHS:
                raise ValueError(f"stop_month must be a number of months within +-{MAX_MONTHS:g} (got {v})")
            if start is not None and v < start:
                raise ValueError(
                    f"stop_month {v:g} is before start_month {start:g} (equal means a single dose)"
                )
        return v

    @field_validator("every_months")
    @classmethod
    def _every(cls, v: float | None, info: ValidationInfo) -> float | None:
        spec = cls._spec(info)
        if v is None or spec is None:
            return v
        if spec.schedule in ("continuous", "event"):
            what = "is dosed continuously (daily)" if spec.schedule == "continuous" else "is an event"
            raise ValueError(f"{spec.name} {what}: omit every_months")
        if not (v > 0 and math.isfinite(v)):
            raise ValueError(f"every_months must be > 0 months (got {v})")
        return v

    @field_validator("route")
    @classmethod
    def _route(cls, v: str | None, info: ValidationInfo) -> str | None:
        spec = cls._spec(info)
        if v is None or spec is None:
            return v
        if not spec.routes:
            raise ValueError(f"{spec.name} takes no route; omit route")
        if v not in spec.routes:
            raise ValueError(f"route {v!r} is not valid for {spec.name}; allowed: {_choices(spec.routes)}")
        return v

    def to_dose(self) -> Dose:
        """The vocabulary's :class:`Dose` for this item (times in months since the scenario's start)."""
        fields = self.model_dump(exclude_none=True)
        if fields.get("unit") == "":
            fields.pop("unit")
        return Dose(**fields)


# --------------------------------------------------------------------------- population settings
class _PopulationFields(BaseModel):
    """Keys that set an arm's population (top level, overridable per arm)."""

    model_config = ConfigDict(extra="forbid")

    population: Literal[POPULATION_CHOICES] | None = None  # type: ignore[valid-type]
    sex: Literal["female", "male"] | None = None
    age: float | None = Field(None, description="years")
    years_since_menopause: float | None = Field(None, description="years")
    years_since_onset: float | None = Field(None, description="years (hypogonadal_male)")
    levels: dict[Literal[HORMONES], float] | None = Field(  # type: ignore[valid-type]
        None, description="custom baseline hormone levels (units in regimens.HORMONE_UNITS)"
    )

    @field_validator("age")
    @classmethod
    def _age(cls, v: float | None) -> float | None:
        if v is not None and not 18 <= v <= 110:
            raise ValueError(f"age must be between 18 and 110 years (got {v:g})")
        return v

    @field_validator("years_since_menopause", "years_since_onset")
    @classmethod
    def _years(cls, v: float | None) -> float | None:
        if v is not None and not 0 <= v <= 70:
            raise ValueError(f"must be between 0 and 70 years (got {v:g})")
        return v

    @field_validator("levels")
    @classmethod
    def _levels(cls, v: dict[str, float] | None) -> dict[str, float] | None:
        for h, x in (v or {}).items():
            low = 0.0 if h == "glucocorticoid" else 1e-9
            if not (x >= low and math.isfinite(x)):
                raise ValueError(
                    f"{h} level must be {'>= 0' if low == 0 else '> 0'} {HORMONE_UNITS[h]} (got {x})"
                )
        return v


class Arm(_PopulationFields):
    """One arm: a regimen (and optional population overrides)."""

    regimen: tuple[RegimenItem, ...] = ()
    label: str | None = None
    description: str = ""


class Contrast(BaseModel):
    """A paired difference between two arms: first minus second, draw by draw."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = None
    arms: tuple[str, str]

    @property
    def label(self) -> str:
        return self.name or f"{self.arms[0]}_vs_{self.arms[1]}"


@dataclass(frozen=True)
class ArmSetup:
    """How one arm is simulated: the unit (history + regimen) and what it was built from."""

    name: str
    unit: Unit
    population: str
    sex: str
    years_since_menopause: float | None
    notes: tuple[str, ...]


class Scenario(_PopulationFields):
    """A projection scenario (see the module docstring for the TOML form)."""

    name: str
    description: str = ""
    population: Literal[POPULATION_CHOICES]  # type: ignore[valid-type]
    baseline_tscore: dict[Literal[SITES], float] | None = None  # type: ignore[valid-type]
    times_months: tuple[float, ...]
    sites: tuple[Literal[SITES], ...] = SITES  # type: ignore[valid-type]
    arms: dict[str, Arm]
    contrasts: tuple[Contrast, ...] = ()

    @field_validator("baseline_tscore")
    @classmethod
    def _tscores(cls, v: dict[str, float] | None) -> dict[str, float] | None:
        for site, t in (v or {}).items():
            if not (-7.0 <= t <= 5.0):
                raise ValueError(f"{site}: a T-score must be between -7 and 5 SD (got {t:g})")
        return v

    @field_validator("times_months")
    @classmethod
    def _times(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        if not v:
            raise ValueError("give at least one time (months since the start, >= 0)")
        bad = [t for t in v if not (0 <= t <= MAX_MONTHS)]
        if bad:
            raise ValueError(f"times must be months between 0 and {MAX_MONTHS:g} (got {_choices(bad)})")
        if len(set(v)) != len(v):
            raise ValueError("times must not repeat")
        return tuple(sorted(v))

    @field_validator("sites")
    @classmethod
    def _sites(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if not v:
            raise ValueError(f"give at least one site; allowed: {_choices(SITES)}")
        if len(set(v)) != len(v):
            raise ValueError("sites must not repeat")
        return v

    @field_validator("arms")
    @classmethod
    def _arms(cls, v: dict[str, Arm]) -> dict[str, Arm]:
        if not v:
            raise ValueError("give at least one arm ([arms.NAME] with a regimen)")
        bad = [k for k in v if not _NAME.match(k)]
        if bad:
            raise ValueError(f"arm names may use letters, digits and _ . + - only (got {_choices(bad)})")
        return v

    @model_validator(mode="after")
    def _cross(self) -> Scenario:
        problems = _cross_problems(self)
        if problems:
            raise ValueError("\n".join(f"{p}|{m}" for p, m in problems))
        return self

    # ----------------------------------------------------------------- construction
    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "<scenario>") -> Scenario:
        """Validate a parsed TOML document (raises :class:`ScenarioError` naming the key paths)."""
        try:
            return cls.model_validate(dict(data))
        except ValidationError as e:
            raise ScenarioError(_translate(e), source) from None

    @classmethod
    def from_toml(cls, text: str, source: str = "<scenario>") -> Scenario:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise ScenarioError([("", f"invalid TOML: {e}")], source) from None
        return cls.from_dict(data, source)

    def as_json_dict(self) -> dict[str, Any]:
        """A plain dict (JSON-able) of the validated scenario, for provenance."""
        return self.model_dump(mode="json", exclude_none=True)

    # ----------------------------------------------------------------- units
    @property
    def arm_names(self) -> list[str]:
        return list(self.arms)

    def drugs(self) -> set[str]:
        """Drugs and events the arms use."""
        return {item.drug for arm in self.arms.values() for item in arm.regimen}

    def setup(self) -> list[ArmSetup]:
        """One simulated unit per arm: the population's history followed by the arm's regimen."""
        return [_arm_setup(self, name, arm) for name, arm in self.arms.items()]


def _effective(scn: Scenario, arm: Arm) -> dict[str, Any]:
    """Population fields of an arm: the arm's own values override the scenario's (an arm with its own
    population preset takes that preset's sex unless it gives ``sex`` itself)."""
    out = {}
    for k in _PopulationFields.model_fields:
        own = getattr(arm, k)
        out[k] = own if own is not None else getattr(scn, k)
    if arm.levels is not None and scn.levels:  # per-hormone: the arm's levels add to the scenario's
        out["levels"] = {**scn.levels, **arm.levels}
    if arm.population is not None and arm.population != scn.population:  # another preset: its own sex
        out["sex"] = arm.sex
    return out


def _years_since_menopause(f: dict[str, Any]) -> tuple[float | None, str | None]:
    ysm = f["years_since_menopause"]
    if ysm is None and f["age"] is not None and f["population"] in USES_YEARS_SINCE_MENOPAUSE:
        ysm = max(f["age"] - MENOPAUSE_AGE_YEARS, 0.0)
        return ysm, (
            f"years_since_menopause {ysm:g} derived from age {f['age']:g} "
            f"(menopause at {MENOPAUSE_AGE_YEARS:g})"
        )
    return ysm, None


def _arm_setup(scn: Scenario, name: str, arm: Arm) -> ArmSetup:
    f = _effective(scn, arm)
    pop = f["population"]
    notes: list[str] = []
    ysm, note = _years_since_menopause(f)
    if note:
        notes.append(note)
    if pop == "custom":
        sex = f["sex"] or "female"
        history: tuple[Dose, ...] = ()
        levels: dict[str, float] = {}
    else:
        preset = population_preset(
            pop,
            years_since_menopause=ysm,
            years_since_onset=f["years_since_onset"] if f["years_since_onset"] is not None else 5.0,
        )
        sex = f["sex"] or preset.sex
        history, levels = preset.history, dict(preset.levels)
        if ysm is None and pop in USES_YEARS_SINCE_MENOPAUSE:
            notes.append("years_since_menopause not given: the preset's 10 years")
    levels.update(f["levels"] or {})
    doses = tuple(item.to_dose() for item in arm.regimen)
    own_events = {d.drug for d in doses if d.spec.kind == "event"}
    if own_events & {d.drug for d in history}:  # the arm's own event replaces the preset's
        history = tuple(d for d in history if d.drug not in own_events)
        notes.append(f"the arm's {', '.join(sorted(own_events))} replaces the preset's")
    regimen = history + tuple(d for d in doses if d.drug != "placebo")
    return ArmSetup(name, Unit(name, regimen, sex, levels), pop, sex, ysm, tuple(notes))


def _cross_problems(scn: Scenario) -> list[tuple[str, str]]:
    """Checks that involve several keys; each problem names its key path."""
    problems: list[tuple[str, str]] = []
    arm_names = list(scn.arms)
    seen: set[str] = set()
    for i, c in enumerate(scn.contrasts):
        for j, a in enumerate(c.arms):
            if a not in scn.arms:
                problems.append(
                    (f"contrasts[{i}].arms[{j}]", f"unknown arm {a!r}; allowed: {_choices(arm_names)}")
                )
        if c.arms[0] == c.arms[1]:
            problems.append((f"contrasts[{i}].arms", "the two arms must differ"))
        if c.name is not None and not _NAME.match(c.name):
            problems.append((f"contrasts[{i}].name", "use letters, digits and _ . + - only"))
        if c.label in seen:
            problems.append((f"contrasts[{i}].name", f"duplicate contrast name {c.label!r}"))
        seen.add(c.label)
    if (
        scn.years_since_menopause is not None
        and scn.population not in USES_YEARS_SINCE_MENOPAUSE
        and not any(a.population in USES_YEARS_SINCE_MENOPAUSE for a in scn.arms.values())
    ):
        problems.append(
            (
                "years_since_menopause",
                f"population {scn.population!r} does not use it; it applies "
                f"to {_choices(USES_YEARS_SINCE_MENOPAUSE)}",
            )
        )
    for name, arm in scn.arms.items():
        f = _effective(scn, arm)
        sex = f["sex"] or (
            population_preset(f["population"]).sex if f["population"] != "custom" else "female"
        )
        events: dict[str, int] = {}
        for k, item in enumerate(arm.regimen):
            path = f"arms.{name}.regimen[{k}].drug"
            if item.drug == "natural_menopause" and sex != "female":
                problems.append((path, f"natural_menopause needs sex 'female' (this arm's sex is {sex!r})"))
            if item.drug == "hypogonadism_onset" and sex != "male":
                problems.append((path, f"hypogonadism_onset needs sex 'male' (this arm's sex is {sex!r})"))
            if DRUGS[item.drug].kind == "event" and item.drug != "placebo":
                if item.drug in events:
                    problems.append(
                        (
                            path,
                            f"{item.drug} appears twice in this regimen (also at "
                            f"regimen[{events[item.drug]}])",
                        )
                    )
                events[item.drug] = k
    return problems


# --------------------------------------------------------------------------- error translation
def _path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if part == "[key]":
            continue
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The model class whose keys live at ``loc`` (for 'unknown key' messages)."""
    if len(loc) == 0:
        return Scenario
    if loc[0] == "arms" and len(loc) == 2:
        return Arm
    if loc[0] == "arms" and len(loc) == 4 and loc[2] == "regimen":
        return RegimenItem
    if loc[0] == "contrasts" and len(loc) == 2:
        return Contrast
    return None


def _translate(e: ValidationError) -> list[tuple[str, str]]:
    """Pydantic errors as (TOML key path, message naming the allowed values)."""
    problems: list[tuple[str, str]] = []
    for err in e.errors(include_url=False):
        loc = tuple(err["loc"])
        typ = err["type"]
        msg = str(err["msg"])
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        if typ == "value_error" and not loc and "|" in msg:  # cross-key problems (path|message per line)
            for line in msg.splitlines():
                p, _, m = line.partition("|")
                problems.append((p, m))
            continue
        if typ == "extra_forbidden":
            model = _model_at(loc[:-1])
            allowed = f"; allowed keys: {_choices(model.model_fields)}" if model else ""
            problems.append((_path(loc), f"unknown key {loc[-1]!r}{allowed}"))
            continue
        if typ == "missing":
            problems.append((_path(loc), "required key is missing"))
            continue
        if "[key]" in loc and typ in ("literal_error", "enum"):
            allowed = err.get("ctx", {}).get("expected", "")
            problems.append((_path(loc), f"unknown key {loc[-2]!r}; allowed: {allowed}"))
            continue
        if typ == "literal_error":
            given = err.get("input")
            problems.append(
                (_path(loc), f"{given!r} is not allowed; allowed: {err.get('ctx', {}).get('expected')}")
            )
            continue
        problems.append((_path(loc), msg))
    return problems


# --------------------------------------------------------------------------- loading
def shipped_scenarios_dir() -> Path:
    """Folder of the example scenarios shipped with the package (``data/scenarios``)."""
    from bonebayes.datasets.published import data_path

    return data_path("scenarios")


def shipped_scenarios() -> dict[str, Path]:
    """Shipped example scenarios by name (file stem)."""
    d = shipped_scenarios_dir()
    return {p.stem: p for p in sorted(d.glob("*.toml"))} if d.is_dir() else {}


def load_scenario(source: str | Path | Mapping[str, Any] | Scenario) -> Scenario:
    """A :class:`Scenario` from a TOML file, the name of a shipped example, a dict, or a Scenario."""
    if isinstance(source, Scenario):
        return source
    if isinstance(source, Mapping):
        return Scenario.from_dict(source)
    path = Path(source)
    if not path.exists():
        shipped = shipped_scenarios()
        if str(source) in shipped:
            path = shipped[str(source)]
        else:
            raise ScenarioError(
                [("", f"file not found; shipped examples: {_choices(shipped) or 'none'}")], str(source)
            )
    return Scenario.from_toml(read_input(path, ScenarioError), str(path))
