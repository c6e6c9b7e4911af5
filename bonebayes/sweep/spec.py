"""The sweep file (``sweep.toml``): a validated description of many fits.

```toml
name = "individual model: variants x seeds"
retries = 2                      # automatic retries of a task that raised (a killed worker is always retried)
workers = 2                      # local cluster only: worker processes (default: one per 2 cores, at least 1)

[sampler]                        # defaults for every task; a task group may override any of them
sampler = "nutpie"               # nutpie | pymc | numpyro | mock
draws = 500
tune = 500
chains = 4
target_accept = 0.9              # default: the model's own (individual 0.95, published 0.9)

[[fit]]                          # model variant x dataset x seed
model = "individual"             # individual | published
seeds = [1, 2]
save_fit = true                  # keep the posterior (<key>.nc) beside the result record
[fit.variants]                   # name -> model configuration (ModelConfig / PublishedConfig fields)
default = {}
no_random_kM = { random_kM = false }
[fit.datasets.synth100]          # name -> a synthetic cohort ...
synthetic = { n_subjects = 100, n_cohorts = 3, seed = 1 }
[fit.datasets.mycohort]          # ... or CSV tables (paths relative to the sweep file)
observations = "cohort/observations.csv"
exposures = "cohort/exposures.csv"

[[loso]]                         # leave-one-study-out refits of the published model
studies = 8                      # N largest studies with BMD rows, "all", or a list of names
seeds = [1]

[[sbc]]                          # simulation-based calibration replicates
function = "bonebayes.sbc:run_replicate"   # called as function(replicate=i, seed=s, **kwargs)
replicates = 100
kwargs = { n_subjects = 40 }     # add only = [2, 6] to run just those replicates (e.g. longer refits)

[[call]]                         # any function by import path, one task per kwargs table
function = "bonebayes.sweep.testing:sleep_task"
calls = [ { seconds = 1 }, { seconds = 2 } ]
```

Errors name the file and the key path (``sweep.toml: fit[0].seeds[1]: Input should be a valid integer``).
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

SAMPLERS = ("nutpie", "pymc", "numpyro", "mock")


class SweepSpecError(ValueError):
    """A sweep file that cannot be read or fails validation; the message names the file and key path."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or [message]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SamplerSettings(_Strict):
    """Sampler settings of a fit (part of every task's content hash)."""

    sampler: Literal["nutpie", "pymc", "numpyro", "mock"] = "nutpie"
    draws: int = Field(1000, ge=1)
    tune: int = Field(1000, ge=0)
    chains: int = Field(4, ge=1)
    target_accept: float | None = Field(None, gt=0, lt=1, description="None: the model's own default")


class SamplerOverride(_Strict):
    sampler: Literal["nutpie", "pymc", "numpyro", "mock"] | None = None
    draws: int | None = Field(None, ge=1)
    tune: int | None = Field(None, ge=0)
    chains: int | None = Field(None, ge=1)
    target_accept: float | None = Field(None, gt=0, lt=1)

    def apply(self, base: SamplerSettings) -> SamplerSettings:
        return base.model_copy(update={k: v for k, v in self.model_dump().items() if v is not None})


class SyntheticData(_Strict):
    """A synthetic cohort from :func:`bonebayes.datasets.synthetic.simulate_cohort`."""

    n_subjects: int = Field(200, ge=1)
    n_cohorts: int = Field(3, ge=1)
    seed: int = 1
    visits: list[float] | None = None
    bmd_visits: list[float] | None = None
    serum_visits: list[float] | None = None
    sites: list[str] | None = None


class DatasetSpec(_Strict):
    """One dataset: ``synthetic = {...}``, CSV tables, or ``published = "shipped"``."""

    synthetic: SyntheticData | None = None
    observations: Path | None = None
    exposures: Path | None = None
    published: Literal["shipped"] | None = None

    @model_validator(mode="after")
    def _one_source(self) -> DatasetSpec:
        kinds = [self.synthetic is not None, self.observations is not None or self.exposures is not None,
                 self.published is not None]
        if sum(kinds) != 1:
            raise ValueError("give exactly one of: synthetic = {...}; observations + exposures; "
                             'published = "shipped"')
        if (self.observations is None) != (self.exposures is None):
            raise ValueError("CSV datasets need both observations and exposures")
        return self


class FitGroup(_Strict):
    """Model variant x dataset x seed."""

    model: Literal["individual", "published"] = "individual"
    variants: dict[str, dict[str, Any]] = Field(default_factory=lambda: {"default": {}})
    datasets: dict[str, DatasetSpec] = Field(default_factory=dict)
    seeds: list[int] = Field(default_factory=lambda: [1], min_length=1)
    sampler: SamplerOverride = Field(default_factory=SamplerOverride)
    save_fit: bool = True

    @model_validator(mode="after")
    def _datasets(self) -> FitGroup:
        if self.model == "published":
            if not self.datasets:
                self.datasets = {"shipped": DatasetSpec(published="shipped")}
            bad = [k for k, d in self.datasets.items() if d.published is None]
            if bad:
                raise ValueError(f"the published model takes only published = \"shipped\" datasets (not {bad})")
        else:
            if not self.datasets:
                raise ValueError("the individual model needs at least one dataset under [fit.datasets.NAME]")
            bad = [k for k, d in self.datasets.items() if d.published is not None]
            if bad:
                raise ValueError(f"published datasets {bad} need model = \"published\"")
        if not self.variants:
            raise ValueError("variants must name at least one configuration (e.g. default = {})")
        return self


class LosoGroup(_Strict):
    """Leave-one-study-out refits of the published model (one task per held-out study and seed)."""

    studies: int | Literal["all"] | list[str] = 8
    config: dict[str, Any] = Field(default_factory=dict)
    seeds: list[int] = Field(default_factory=lambda: [1], min_length=1)
    sampler: SamplerOverride = Field(default_factory=SamplerOverride)
    prob: float = Field(0.9, gt=0, lt=1)

    @field_validator("studies")
    @classmethod
    def _positive(cls, v: Any) -> Any:
        if isinstance(v, int) and v < 1:
            raise ValueError("studies must be >= 1, \"all\" or a list of study names")
        if isinstance(v, list) and not v:
            raise ValueError("studies list is empty")
        return v


def _check_import_path(v: str) -> str:
    mod, sep, attr = v.partition(":")
    if not sep or not mod or not attr or not all(p.isidentifier() for p in mod.split(".") + attr.split(".")):
        raise ValueError(f"function must be an import path 'package.module:function' (got {v!r})")
    return v


class SbcGroup(_Strict):
    """Simulation-based calibration: ``replicates`` calls of ``function(replicate=i, seed=seed0 + i, **kwargs)``."""

    function: str = "bonebayes.sbc:run_replicate"
    replicates: int = Field(..., ge=1)
    seed: int = 0
    only: list[int] | None = Field(
        None, description="run just these replicate indices (e.g. longer refits of unconverged replicates; "
                          "each keeps its seed, seed0 + i)")
    kwargs: dict[str, Any] = Field(default_factory=dict)

    _path = field_validator("function")(classmethod(lambda cls, v: _check_import_path(v)))

    @model_validator(mode="after")
    def _only_in_range(self) -> SbcGroup:
        bad = [i for i in self.only or [] if not 0 <= i < self.replicates]
        if bad:
            raise ValueError(f"only: replicate indices {bad} are outside 0..{self.replicates - 1}")
        return self

    def indices(self) -> list[int]:
        """The replicate indices this group runs."""
        return sorted(set(self.only)) if self.only is not None else list(range(self.replicates))


class CallGroup(_Strict):
    """Any function by import path; one task per entry of ``calls`` (keyword arguments)."""

    function: str
    calls: list[dict[str, Any]] = Field(default_factory=lambda: [{}], min_length=1)

    _path = field_validator("function")(classmethod(lambda cls, v: _check_import_path(v)))


class SweepSpec(_Strict):
    name: str = "sweep"
    retries: int = Field(2, ge=0, description="retries of a task that raised an exception")
    workers: int | None = Field(None, ge=1, description="worker processes of the local cluster")
    cores_per_worker: int | None = Field(None, ge=1, description="cores each fit may use (nutpie chains)")
    sampler: SamplerSettings = Field(default_factory=SamplerSettings)
    fit: list[FitGroup] = Field(default_factory=list)
    loso: list[LosoGroup] = Field(default_factory=list)
    sbc: list[SbcGroup] = Field(default_factory=list)
    call: list[CallGroup] = Field(default_factory=list)
    source: Path | None = Field(None, exclude=True)

    @model_validator(mode="after")
    def _some_tasks(self) -> SweepSpec:
        if not (self.fit or self.loso or self.sbc or self.call):
            raise ValueError("no tasks: add at least one [[fit]], [[loso]], [[sbc]] or [[call]] table")
        return self


def _loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif str(part).startswith("function-after[") or part in ("literal['all']", "int", "list[str]"):
            continue  # pydantic's internal union/validator labels
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def parse_spec(data: dict[str, Any], source: str | Path = "<sweep>") -> SweepSpec:
    """Validate a parsed TOML document; relative dataset paths are resolved against the file's folder."""
    try:
        spec = SweepSpec.model_validate(data)
    except ValidationError as e:
        problems = [f"{source}: {_loc(err['loc'])}: {err['msg']}" for err in e.errors()]
        raise SweepSpecError(problems[0] if len(problems) == 1 else
                             f"{source}: {len(problems)} problems: " + "; ".join(problems), problems) from None
    base = Path(source).parent if str(source) != "<sweep>" else Path(".")
    for group in spec.fit:
        for ds in group.datasets.values():
            for attr in ("observations", "exposures"):
                p = getattr(ds, attr)
                if p is not None and not p.is_absolute():
                    setattr(ds, attr, (base / p).resolve())
    spec.source = Path(source) if str(source) != "<sweep>" else None
    return spec


def load_spec(path: str | Path) -> SweepSpec:
    """Read and validate ``sweep.toml``; raises :class:`SweepSpecError` naming the file and key path."""
    path = Path(path)
    if not path.is_file():
        raise SweepSpecError(f"sweep file not found: {path}")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise SweepSpecError(f"{path}: not valid TOML: {e}") from None
    return parse_spec(data, path)
