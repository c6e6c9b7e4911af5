"""The report configuration (``analysis.toml``): what to fit or reuse, the checks, comparison and projections.

```toml
title = "Published evidence, default model"      # optional
paths_relative_to = "config"     # "config" (default): relative paths from this file's folder; "cwd": from
                                 # the current directory (the shipped example, which lives in the package)
output = "report.html"           # default output file (the command's --output overrides it)

[data]
kind = "published"               # "published" (the shipped evidence, or arms/design files) | "individual"
# arms = "my_arms.csv"           # published: optional own files (default: the shipped data/)
# design = "my_design.toml"
# individual: observations = "obs.csv" and exposures = "exp.csv", or a synthetic cohort:
# synthetic = { n_subjects = 12, n_cohorts = 2, seed = 3 }

[model]
variant = "published"            # a registered variant of the data's kind (default: the default model)

[fit]
path = "results/fit.nc"          # reused if its data hash, model configuration and settings match; else
reuse = true                     # the model is fitted with these settings and saved here
sampler = "nutpie"
draws = 1000
tune = 1000
chains = 4
seed = 1

[checks]
seed = 1                         # seed of the posterior predictive replicates (default: the fit's seed)
interval = 0.9                   # interval of the observed-vs-predicted plot and the 'outside' table
vpc_by = "stratum"               # individual data: VPC strata (stratum = arm, else cohort; or cohort)

[compare]
enabled = false
reason = "why the comparison is skipped (shown in the report)"
variants = ["published", "published_rebound"]
kfold = 5                        # grouped K-fold fallback when Pareto k > 0.7 (0: never refit)
output = "results/compare"       # fits and fold results, reused by a rerun
# sampler, draws, tune, chains, seed: default to [fit]'s

[[projections]]
scenario = "denosumab_vs_placebo"   # a scenario TOML file or the name of a shipped example
draws = 1000                        # posterior draws used (evenly spaced)
seed = 1
study_effects = "new"               # new | none | a study of the fit
endpoints = ["bmd", "ctx", "p1np"]  # fan charts and table rows
allow_prior = false
```

Any problem raises :class:`ReportConfigError`, whose message names the file and the TOML key path
(``analysis.toml: fit.draws: Input should be greater than or equal to 1``), like scenario and sweep files.
"""

from __future__ import annotations

import hashlib
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from bonebayes._keypath import KeyPathError, read_input

SAMPLERS = ("nutpie", "pymc", "numpyro", "mock")
SHIPPED_CONFIG = "analysis.toml"


class ReportConfigError(KeyPathError):
    """A report configuration that cannot be read or fails validation: ``problems`` lists (key path,
    message); the message names the file and every key path."""

    def __init__(self, problems: list[tuple[str, str]], source: str = "<config>") -> None:
        super().__init__(problems, source)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SyntheticData(_Strict):
    """A synthetic cohort (``bonebayes.datasets.synthetic``) as the individual data."""

    n_subjects: int = Field(12, ge=2)
    n_cohorts: int = Field(2, ge=1)
    seed: int = 3


class DataSection(_Strict):
    kind: Literal["published", "individual"] = "published"
    arms: str | None = None
    design: str | None = None
    observations: str | None = None
    exposures: str | None = None
    synthetic: SyntheticData | None = None

    @model_validator(mode="after")
    def _sources(self) -> DataSection:
        problems = []
        if self.kind == "published":
            for key in ("observations", "exposures", "synthetic"):
                if getattr(self, key) is not None:
                    problems.append(f"data.{key}|not used with kind = 'published' (use arms / design)")
        else:
            for key in ("arms", "design"):
                if getattr(self, key) is not None:
                    problems.append(f"data.{key}|not used with kind = 'individual'")
            tables = (self.observations is not None, self.exposures is not None)
            if self.synthetic is not None and any(tables):
                problems.append("data.synthetic|give either synthetic or observations + exposures, not both")
            elif self.synthetic is None and not all(tables):
                missing = "exposures" if tables[0] else "observations"
                problems.append(
                    f"data.{missing}|kind = 'individual' needs observations and exposures "
                    "(CSV paths) or synthetic = { n_subjects = ..., n_cohorts = ..., seed = ... }"
                )
        if problems:
            raise ValueError("\n".join(problems))
        return self


class ModelSection(_Strict):
    variant: str | None = None


class FitSection(_Strict):
    path: str = "fit.nc"
    reuse: bool = True
    sampler: Literal["nutpie", "pymc", "numpyro", "mock"] = "nutpie"
    draws: int = Field(1000, ge=1)
    tune: int = Field(1000, ge=0)
    chains: int = Field(4, ge=1)
    seed: int = 1

    def request(self) -> dict[str, Any]:
        """The settings a reusable fit must match (as stored in its provenance)."""
        return {
            "seed": self.seed,
            "sampler": self.sampler,
            "draws": self.draws,
            "tune": self.tune,
            "chains": self.chains,
        }


class ChecksSection(_Strict):
    seed: int | None = None
    interval: float = Field(0.9, gt=0, lt=1)
    vpc_by: Literal["stratum", "cohort"] = "stratum"


class CompareSection(_Strict):
    enabled: bool = False
    reason: str = ""
    variants: list[str] = Field(default_factory=list)
    kfold: int = Field(5, ge=0)
    output: str | None = None
    sampler: Literal["nutpie", "pymc", "numpyro", "mock"] | None = None
    draws: int | None = Field(None, ge=1)
    tune: int | None = Field(None, ge=0)
    chains: int | None = Field(None, ge=1)
    seed: int | None = None


class ProjectionSection(_Strict):
    scenario: str
    draws: int | None = Field(1000, ge=1)
    seed: int = 0
    study_effects: str = "new"
    endpoints: list[str] = Field(default_factory=lambda: ["bmd", "ctx", "p1np"])
    allow_prior: bool = False

    @field_validator("endpoints")
    @classmethod
    def _endpoints(cls, v: list[str]) -> list[str]:
        from bonebayes.projections.engine import ENDPOINTS

        plotted = [e for e in ENDPOINTS if e != "p_osteoporosis"]
        bad = [e for e in v if e not in plotted]
        if bad:
            raise ValueError(
                f"unknown endpoint(s) {', '.join(map(repr, bad))}; allowed: {', '.join(plotted)}"
            )
        if not v:
            raise ValueError(f"give at least one endpoint; allowed: {', '.join(plotted)}")
        return list(dict.fromkeys(v))


class ReportConfig(_Strict):
    """A validated report configuration (see the module docstring for the TOML format)."""

    title: str = ""
    paths_relative_to: Literal["config", "cwd"] = "config"
    output: str = "report.html"
    data: DataSection = Field(default_factory=DataSection)
    model: ModelSection = Field(default_factory=ModelSection)
    fit: FitSection = Field(default_factory=FitSection)
    checks: ChecksSection = Field(default_factory=ChecksSection)
    compare: CompareSection = Field(default_factory=CompareSection)
    projections: list[ProjectionSection] = Field(default_factory=list)

    # filled by load_config (not TOML keys)
    source: str = Field("<config>", exclude=True)
    text: str = Field("", exclude=True)
    base_dir: str = Field(".", exclude=True)

    @model_validator(mode="after")
    def _cross(self) -> ReportConfig:
        from bonebayes.variants import DEFAULT_VARIANT, VARIANTS

        problems = []
        kind = self.data.kind
        if self.model.variant is not None:
            v = VARIANTS.get(self.model.variant)
            if v is None:
                problems.append(
                    f"model.variant|unknown variant {self.model.variant!r}; registered: "
                    f"{', '.join(n for n, x in VARIANTS.items() if x.kind == kind)}"
                )
            elif v.kind != kind:
                problems.append(
                    f"model.variant|{self.model.variant!r} is for {v.kind} data but data.kind is "
                    f"{kind!r}; allowed: {', '.join(n for n, x in VARIANTS.items() if x.kind == kind)}"
                )
        else:
            self.model.variant = DEFAULT_VARIANT[kind]
        if self.compare.enabled:
            if not self.compare.variants:
                problems.append("compare.variants|give at least one variant when compare.enabled = true")
            for i, name in enumerate(self.compare.variants):
                v = VARIANTS.get(name)
                if v is None or v.kind != kind:
                    what = (
                        f"unknown variant {name!r}"
                        if v is None
                        else f"{name!r} is for {v.kind} data but data.kind is {kind!r}"
                    )
                    problems.append(
                        f"compare.variants[{i}]|{what}; allowed: "
                        f"{', '.join(n for n, x in VARIANTS.items() if x.kind == kind)}"
                    )
            if len(set(self.compare.variants)) != len(self.compare.variants):
                problems.append("compare.variants|duplicate variant names")
        elif not self.compare.reason.strip():
            self.compare.reason = "compare.enabled is false in the configuration"
        if problems:
            raise ValueError("\n".join(problems))
        return self

    # ----------------------------------------------------------------- helpers
    def resolve(self, path: str) -> Path:
        """A path of the configuration, relative to the config file's folder or the current directory."""
        p = Path(path).expanduser()
        if p.is_absolute() or self.paths_relative_to == "cwd":
            return p
        return Path(self.base_dir) / p

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()

    def compare_settings(self) -> dict[str, Any]:
        c, f = self.compare, self.fit
        return {
            "sampler": c.sampler or f.sampler,
            "draws": c.draws or f.draws,
            "tune": f.tune if c.tune is None else c.tune,
            "chains": c.chains or f.chains,
            "seed": f.seed if c.seed is None else c.seed,
        }

    @property
    def checks_seed(self) -> int:
        return self.fit.seed if self.checks.seed is None else self.checks.seed


# --------------------------------------------------------------------------- errors
def _path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("[key]",) or str(part).startswith("function-"):
            continue
        else:
            out += ("." if out else "") + str(part)
    return out


_SECTIONS: dict[str, type[BaseModel]] = {
    "data": DataSection,
    "model": ModelSection,
    "fit": FitSection,
    "checks": ChecksSection,
    "compare": CompareSection,
    "projections": ProjectionSection,
}


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    if not loc:
        return ReportConfig
    if loc[0] == "data" and len(loc) == 2 and loc[1] == "synthetic":
        return SyntheticData
    if loc[0] == "projections":
        return ProjectionSection if len(loc) == 2 else None
    return _SECTIONS.get(str(loc[0])) if len(loc) == 1 else None


def _translate(e: ValidationError) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    for err in e.errors(include_url=False):
        loc, typ, msg = tuple(err["loc"]), err["type"], str(err["msg"])
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        if typ == "value_error" and "|" in msg:  # cross-key problems: "path|message" per line
            for line in msg.splitlines():
                p, _, m = line.partition("|")
                problems.append((p, m))
        elif typ == "extra_forbidden":
            model = _model_at(loc[:-1])
            fields = [k for k, f in model.model_fields.items() if not f.exclude] if model else []
            allowed = f"; allowed keys: {', '.join(fields)}" if fields else ""
            problems.append((_path(loc), f"unknown key {loc[-1]!r}{allowed}"))
        elif typ == "missing":
            problems.append((_path(loc), "required key is missing"))
        elif typ == "literal_error":
            problems.append(
                (
                    _path(loc),
                    f"{err.get('input')!r} is not allowed; allowed: {err.get('ctx', {}).get('expected')}",
                )
            )
        else:
            problems.append((_path(loc), msg))
    return problems


# --------------------------------------------------------------------------- loading
def shipped_config_path() -> Path:
    """The example configuration shipped with the package (``data/analysis.toml``)."""
    from bonebayes.datasets.published import data_path

    return data_path(SHIPPED_CONFIG)


def config_from_text(text: str, source: str = "<config>", base_dir: str | Path = ".") -> ReportConfig:
    """Validate a configuration given as TOML text."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ReportConfigError([("", f"invalid TOML: {e}")], source) from None
    for key in ("source", "text", "base_dir"):
        if key in data:
            raise ReportConfigError(
                [
                    (
                        key,
                        f"unknown key {key!r}; allowed keys: "
                        f"{', '.join(k for k, f in ReportConfig.model_fields.items() if not f.exclude)}",
                    )
                ],
                source,
            )
    try:
        cfg = ReportConfig.model_validate({**data, "source": source, "text": text, "base_dir": str(base_dir)})
    except ValidationError as e:
        raise ReportConfigError(_translate(e), source) from None
    _check_scenarios(cfg)
    return cfg


def scenario_source(cfg: ReportConfig, scenario: str) -> str:
    """A projection's scenario: a file (resolved like every path of the configuration) or a shipped name."""
    from bonebayes.projections.scenario import shipped_scenarios

    path = cfg.resolve(scenario)
    return str(path) if path.exists() or scenario not in shipped_scenarios() else scenario


def _check_scenarios(cfg: ReportConfig) -> None:
    """Load every projection scenario now, so a bad one stops the report before any long work."""
    from bonebayes.projections.scenario import ScenarioError, load_scenario

    problems = []
    for i, p in enumerate(cfg.projections):
        try:
            load_scenario(scenario_source(cfg, p.scenario))
        except ScenarioError as e:
            problems.append((f"projections[{i}].scenario", str(e).replace("\n", "; ")))
    if problems:
        raise ReportConfigError(problems, cfg.source)


def load_config(path: str | Path | None = None) -> ReportConfig:
    """Read and validate a report configuration (default: the shipped example ``data/analysis.toml``)."""
    p = shipped_config_path() if path is None else Path(path)
    if not p.exists():
        raise ReportConfigError([("", "file not found")], str(p))
    return config_from_text(read_input(p, ReportConfigError), str(p), p.resolve().parent)
