"""Vocabulary of the observation and exposure tables, and the validation error type.

Observation table (long, NM-TRAN-like): one measured value per row.
Exposure table: one dosing record (or single event) per row.
Times are in months; time 0 is the subject's trial start.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bonebayes.regimens import DRUGS

# variable -> {unit: factor}; canonical value = reported value * factor.
# The first unit listed for each variable is its canonical unit.
UNIT_FACTORS: dict[str, dict[str, float]] = {
    # Soluble RANKL, ~19 kDa: 1 pmol/L ~ 19 pg/mL. Approximate; mass/molar
    # conversion is assay (calibrator) specific.
    "rankl": {"pmol/L": 1.0, "pg/mL": 1.0 / 19.0},
    # OPG: 1 pmol/L = 20 pg/mL, i.e. 1 pg/mL = 0.05 pmol/L. This is an
    # assay-kit convention, not the physical mass of the glycosylated OPG
    # monomer (~55-60 kDa); treat it as approximate.
    "opg": {"pmol/L": 1.0, "pg/mL": 1.0 / 20.0},
    "ctx": {"ng/mL": 1.0, "pg/mL": 1.0 / 1000.0},
    "p1np": {"ng/mL": 1.0, "ug/L": 1.0},
    "bmd_lumbar_spine": {"g/cm2": 1.0},
    "bmd_total_hip": {"g/cm2": 1.0},
    "bmd_femoral_neck": {"g/cm2": 1.0},
    "estradiol": {"pg/mL": 1.0, "pmol/L": 1.0 / 3.671},  # 1 pg/mL = 3.671 pmol/L
    "testosterone": {"ng/dL": 1.0, "nmol/L": 1.0 / 0.0347},  # 1 ng/dL = 0.0347 nmol/L
    "pth": {"pg/mL": 1.0, "pmol/L": 1.0 / 0.106},  # 1 pg/mL = 0.106 pmol/L
    "free_t4": {"ng/dL": 1.0, "pmol/L": 1.0 / 12.87},  # 1 ng/dL = 12.87 pmol/L
    "igf1": {"ng/mL": 1.0, "nmol/L": 1.0 / 0.131},  # 1 ng/mL = 0.131 nmol/L
    "cortisol": {"ug/dL": 1.0, "nmol/L": 1.0 / 27.59},  # 1 ug/dL = 27.59 nmol/L
}

VARIABLES: tuple[str, ...] = tuple(UNIT_FACTORS)
CANONICAL_UNITS: dict[str, str] = {v: next(iter(u)) for v, u in UNIT_FACTORS.items()}

OBS_REQUIRED: tuple[str, ...] = (
    "subject", "cohort", "time_months", "variable", "value", "unit", "below_loq",
)
OBS_OPTIONAL: tuple[str, ...] = ("arm", "note", "sex")

EXP_REQUIRED: tuple[str, ...] = (
    "subject", "drug", "dose", "unit", "start_month", "stop_month", "every_months",
)
EXP_OPTIONAL: tuple[str, ...] = ("route", "note")
# Drugs that are events rather than doses: their `dose` (and `unit`) may be empty.
DOSE_OPTIONAL_DRUGS: frozenset[str] = frozenset(
    {n for n, d in DRUGS.items() if d.kind == "event"} | {a for d in DRUGS.values() if d.kind == "event" for a in d.aliases}
)

# below_loq tokens (compared lower-case, stripped); an empty cell means False.
TRUE_TOKENS: frozenset[str] = frozenset({"true", "1", "1.0", "yes"})
FALSE_TOKENS: frozenset[str] = frozenset({"false", "0", "0.0", "no", ""})


@dataclass(frozen=True)
class Problem:
    """One validation problem. `row` is the 1-based data row, `line` the file line
    (row + 1, the header being line 1); both None for file- or column-level problems."""

    path: str
    row: int | None
    line: int | None
    column: str | None
    value: Any
    reason: str

    def __str__(self) -> str:
        where = []
        if self.row is not None:
            where.append(f"row {self.row}" + (f" (line {self.line})" if self.line is not None else ""))
        if self.column is not None:
            where.append(f"column {self.column!r}")
        loc = ", ".join(where)
        return f"{self.path}: {loc + ': ' if loc else ''}{self.reason}"


class DataValidationError(ValueError):
    """Invalid input table. Attributes describe the first problem; all problems are
    in `.problems` (print them with ``"\\n".join(map(str, err.problems))``)."""

    def __init__(self, problems: list[Problem]) -> None:
        if not problems:
            raise ValueError("DataValidationError needs at least one problem")
        self.problems = list(problems)
        first = self.problems[0]
        self.path, self.row, self.line = first.path, first.row, first.line
        self.column, self.value, self.reason = first.column, first.value, first.reason
        n = len(self.problems) - 1
        more = f" (and {n} more problem{'s' if n > 1 else ''})" if n else ""
        super().__init__(f"{first}{more}")

    def __reduce__(self):  # keep picklable (e.g. across worker processes)
        return (type(self), (self.problems,))
