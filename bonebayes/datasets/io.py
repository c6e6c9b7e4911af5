"""Load and validate the observation and exposure CSV tables.

All loaders check every cell, collect every problem and raise a single
:class:`DataValidationError` (first problem in the message, all in
``.problems``). No row is ever dropped: rows out == rows in. Blank lines
in a file are not data rows; numbering follows the file (data row k is
file line k + 1, the header being line 1).
"""

from __future__ import annotations

import csv
import hashlib
import importlib
import os
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bonebayes.datasets.schema import (
    CANONICAL_UNITS,
    DOSE_OPTIONAL_DRUGS,
    EXP_OPTIONAL,
    EXP_REQUIRED,
    FALSE_TOKENS,
    OBS_OPTIONAL,
    OBS_REQUIRED,
    TRUE_TOKENS,
    UNIT_FACTORS,
    VARIABLES,
    DataValidationError,
    Problem,
)

ItemValidator = Callable[[dict[str, Any]], None]


# --------------------------------------------------------------------------- helpers
class _Checker:
    """Collects problems for one table; positions are 0-based after reset_index."""

    def __init__(self, source: str, rows: np.ndarray, has_lines: bool) -> None:
        self.source, self.rows, self.has_lines = source, rows, has_lines
        self.problems: list[Problem] = []
        self.bad = np.zeros(len(rows), dtype=bool)

    def table(self, column: str | None, reason: str) -> None:
        self.problems.append(Problem(self.source, None, None, column, None, reason))

    def flag(self, mask: Any, column: str | None, cells: pd.Series | None,
             reason: str | Callable[[int], str]) -> None:
        for i in np.flatnonzero(np.asarray(mask, dtype=bool)):
            self.flag_one(i, column, None if cells is None else cells.iloc[i],
                          reason(i) if callable(reason) else reason)

    def flag_one(self, i: int, column: str | None, value: Any, reason: str) -> None:
        row = int(self.rows[i])
        self.problems.append(Problem(self.source, row, row + 1 if self.has_lines else None,
                                     column, value, reason))
        self.bad[i] = True

    def raise_if_any(self) -> None:
        if self.problems:
            raise DataValidationError(sorted(self.problems, key=lambda p: p.row or 0))

    def columns(self, df: pd.DataFrame, required: Iterable[str], optional: Iterable[str]) -> None:
        cols = [str(c) for c in df.columns]
        found = ", ".join(cols) or "(none)"
        for c in required:
            if c not in cols:
                self.table(c, f"required column is missing; found columns: {found}")
        allowed = set(required) | set(optional)
        for c in dict.fromkeys(cols):
            if cols.count(c) > 1:
                self.table(c, "column appears more than once in the header")
            if c not in allowed:
                self.table(c, f"unknown column; allowed optional columns: {', '.join(optional)}")
        self.raise_if_any()

    def text(self, df: pd.DataFrame, col: str, required: bool = True) -> pd.Series:
        """Stripped str cells; None where empty/NaN (flagged if required)."""
        t = pd.Series([None if _isna(v) else (str(v).strip() or None) for v in df[col]],
                      index=df.index, dtype=object)
        if required:
            self.flag(t.isna(), col, t, "missing value (empty cell)")
        return t

    def number(self, df: pd.DataFrame, col: str, required: bool = True) -> pd.Series:
        """Finite floats; NaN where empty or invalid (invalid always flagged)."""
        t = self.text(df, col, required)
        x = pd.to_numeric(t, errors="coerce").astype(float)
        self.flag(t.notna() & x.isna(), col, t, lambda i: f"{t.iloc[i]!r} is not a number")
        self.flag(np.isinf(x), col, t, lambda i: f"{t.iloc[i]!r} is not finite")
        return x.where(np.isfinite(x))


def _isna(v: Any) -> bool:
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def _str_col(s: pd.Series) -> pd.Series:
    return pd.Series(s.to_numpy(dtype=object), dtype="str")


def _read_csv(path: str | os.PathLike[str]) -> tuple[pd.DataFrame, np.ndarray]:
    """Read a CSV as str cells; return the frame and the 1-based data-row numbers."""
    src = str(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if header is None:
                raise DataValidationError([Problem(src, None, None, None, None,
                                                   "file is empty (no header line)")])
            header = [h.strip() for h in header]
            records, lines, problems = [], [], []
            last = reader.line_num
            for rec in reader:
                line, last = last + 1, reader.line_num
                if not any(c.strip() for c in rec):
                    continue  # blank line: not a data row
                if len(rec) != len(header):
                    problems.append(Problem(src, line - 1, line, None, None,
                                            f"expected {len(header)} fields, found {len(rec)}"))
                records.append(rec)
                lines.append(line)
    except FileNotFoundError as e:
        raise DataValidationError([Problem(src, None, None, None, None, "file not found")]) from e
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DataValidationError([Problem(src, None, None, None, None, f"cannot read file: {e}")]) from e
    if problems:
        raise DataValidationError(problems)
    df = pd.DataFrame(records, columns=header, dtype=object)
    return df, np.asarray(lines, dtype=np.int64) - 1


# --------------------------------------------------------------------------- observations
def _validate_observations(df: pd.DataFrame, source: str, rows: np.ndarray,
                           has_lines: bool) -> pd.DataFrame:
    df = df.reset_index(drop=True)
    ck = _Checker(source, rows, has_lines)
    ck.columns(df, OBS_REQUIRED, OBS_OPTIONAL)

    subject, cohort = ck.text(df, "subject"), ck.text(df, "cohort")
    time = ck.number(df, "time_months")
    ck.flag(time < 0, "time_months", time,
            lambda i: f"negative time {time.iloc[i]:g}; time_months must be >= 0 "
                      "(0 = the subject's trial start)")
    variable = ck.text(df, "variable")
    ck.flag(variable.notna() & ~variable.isin(VARIABLES), "variable", variable,
            lambda i: f"{variable.iloc[i]!r} is not a known variable; valid: {', '.join(VARIABLES)}")

    raw_loq = ck.text(df, "below_loq", required=False)
    tok = raw_loq.map(lambda v: "" if v is None else v.lower())
    ck.flag(~tok.isin(TRUE_TOKENS | FALSE_TOKENS), "below_loq", raw_loq,
            lambda i: f"{raw_loq.iloc[i]!r} is not a boolean; use true/false, 1/0 or yes/no")
    below_loq = tok.isin(TRUE_TOKENS).astype(bool)

    value = ck.number(df, "value")
    ck.flag((value <= 0) & ~below_loq, "value", value,
            lambda i: f"value {value.iloc[i]:g} must be > 0")
    ck.flag((value <= 0) & below_loq, "value", value,
            lambda i: f"value {value.iloc[i]:g} must be > 0 (for below_loq rows it is the LOQ)")

    unit = ck.text(df, "unit")
    known = variable.isin(VARIABLES) & unit.notna()
    bad_unit = known & np.array([u not in UNIT_FACTORS.get(v, {}) for v, u in zip(variable, unit)],
                                dtype=bool)
    ck.flag(bad_unit, "unit", unit,
            lambda i: f"{unit.iloc[i]!r} is not a valid unit for variable {variable.iloc[i]!r}; "
                      f"valid: {', '.join(UNIT_FACTORS[variable.iloc[i]])}")

    key = pd.DataFrame({"s": subject, "t": time, "v": variable}).dropna()
    first = pd.Series(key.index, index=key.index).groupby([key.s, key.t, key.v], sort=False) \
        .transform("first")
    dup = pd.Series(False, index=df.index)
    dup[first.index[first != first.index]] = True

    def dup_reason(i: int) -> str:
        j = int(first[i])
        other = f"row {rows[j]}" + (f" (line {rows[j] + 1})" if has_lines else "")
        return (f"duplicate of {other}: same subject {subject.iloc[i]!r}, "
                f"time_months {time.iloc[i]:g}, variable {variable.iloc[i]!r}")

    ck.flag(dup, None, None, dup_reason)
    ck.raise_if_any()

    factor = np.array([UNIT_FACTORS[v][u] for v, u in zip(variable, unit)], dtype=float)
    out = pd.DataFrame({
        "row": rows.astype(np.int64),
        "subject": _str_col(subject),
        "cohort": _str_col(cohort),
        "time_months": time,
        "variable": _str_col(variable),
        "value": value.to_numpy() * factor,
        "unit": _str_col(variable.map(CANONICAL_UNITS)),
        "below_loq": below_loq.to_numpy(),
        "value_reported": value,
        "unit_reported": _str_col(unit),
    })
    for c in OBS_OPTIONAL:
        if c in df.columns:
            out[c] = df[c].to_numpy()
    return out.sort_values(["subject", "time_months", "variable"], kind="stable") \
        .reset_index(drop=True)


def validate_observations(df: pd.DataFrame, source: str = "<memory>") -> pd.DataFrame:
    """Validate an in-memory observation table (same checks as :func:`load_observations`).

    Rows are numbered 1..n in frame order (no file lines). Returns a new frame with
    `value`/`unit` converted to the canonical unit per variable (see CANONICAL_UNITS),
    the originals in `value_reported`/`unit_reported`, a bool `below_loq`, an int
    `row` column, sorted by subject, time_months, variable.
    """
    return _validate_observations(df, source, np.arange(1, len(df) + 1), has_lines=False)


def load_observations(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Load and validate an observation CSV (time in months, values in the listed units).

    Columns: subject, cohort, time_months (>= 0), variable, value (> 0; the LOQ if
    below_loq), unit, below_loq; optional arm, note, sex. See
    :func:`validate_observations` for the returned frame; `row` is the data-row
    number in the file (file line = row + 1).
    """
    df, rows = _read_csv(path)
    return _validate_observations(df, str(path), rows, has_lines=True)


# --------------------------------------------------------------------------- exposures
def _default_item_validator() -> ItemValidator | None:
    """`bonebayes.regimens.validate_exposure_row` if that module/function exists."""
    try:
        mod = importlib.import_module("bonebayes.regimens")
    except ModuleNotFoundError as e:
        if e.name == "bonebayes.regimens":
            return None
        raise  # regimens exists but is broken: don't silently skip the vocabulary check
    return getattr(mod, "validate_exposure_row", None)


def _validate_exposures(df: pd.DataFrame, source: str, rows: np.ndarray, has_lines: bool,
                        validate_item: ItemValidator | None) -> pd.DataFrame:
    df = df.reset_index(drop=True)
    ck = _Checker(source, rows, has_lines)
    ck.columns(df, EXP_REQUIRED, EXP_OPTIONAL)

    subject, drug = ck.text(df, "subject"), ck.text(df, "drug")
    dose_optional = drug.isin(DOSE_OPTIONAL_DRUGS)
    dose_text = ck.text(df, "dose", required=False)
    ck.flag(dose_text.isna() & ~dose_optional, "dose", dose_text,
            f"missing value (empty cell); dose may be empty only for "
            f"{', '.join(sorted(DOSE_OPTIONAL_DRUGS))}")
    dose = ck.number(df, "dose", required=False)
    ck.flag(dose < 0, "dose", dose, lambda i: f"negative dose {dose.iloc[i]:g}; dose must be >= 0")
    unit = ck.text(df, "unit", required=False)
    ck.flag(unit.isna() & dose.notna(), "unit", unit, "missing value (empty cell); a dose needs a unit")

    start = ck.number(df, "start_month")
    stop = ck.number(df, "stop_month", required=False)
    ck.flag(stop < start, "stop_month", stop,
            lambda i: f"stop_month {stop.iloc[i]:g} is before start_month {start.iloc[i]:g}")
    every = ck.number(df, "every_months", required=False)
    ck.flag(every <= 0, "every_months", every,
            lambda i: f"every_months {every.iloc[i]:g} must be > 0 "
                      "(leave empty for continuous daily dosing)")

    optional = [c for c in EXP_OPTIONAL if c in df.columns]
    out = pd.DataFrame({
        "row": rows.astype(np.int64),
        "subject": _str_col(subject),
        "drug": _str_col(drug),
        "dose": dose,
        "unit": _str_col(unit),
        "start_month": start,
        "stop_month": stop,
        "every_months": every,
        **{c: df[c].to_numpy() for c in optional},
    })

    if validate_item is None:
        validate_item = _default_item_validator()
    if validate_item is not None:  # vocabulary check, only on otherwise valid rows
        numeric = {"dose", "start_month", "stop_month", "every_months"}
        for i in np.flatnonzero(~ck.bad):
            item = {c: v if c in numeric or not _isna(v) else None
                    for c, v in out.iloc[i].items() if c != "row"}
            try:
                validate_item(item)
            except ValueError as e:
                col = "unit" if "unit" in str(e).lower() else "drug"
                ck.flag_one(i, col, item[col], str(e))
    ck.raise_if_any()
    return out.sort_values(["subject", "start_month", "row"], kind="stable").reset_index(drop=True)


def validate_exposures(df: pd.DataFrame, source: str = "<memory>",
                       validate_item: ItemValidator | None = None) -> pd.DataFrame:
    """Validate an in-memory exposure table (same checks as :func:`load_exposures`)."""
    return _validate_exposures(df, source, np.arange(1, len(df) + 1), False, validate_item)


def load_exposures(path: str | os.PathLike[str],
                   validate_item: ItemValidator | None = None) -> pd.DataFrame:
    """Load and validate an exposure (dosing) CSV; times in months relative to trial start.

    Columns: subject, drug, dose (>= 0, in `unit`; may be empty only for
    natural_menopause), unit, start_month (may be negative, e.g. menopause at -120),
    stop_month (empty = open-ended / single event, else >= start_month),
    every_months (empty = continuous daily, else > 0); optional route, note.

    `validate_item(row)` checks the drug/unit vocabulary and raises ValueError; it is
    called once per otherwise-valid row with a dict of the parsed row (text cells str
    or None when empty; dose/start_month/stop_month/every_months float, NaN when empty).
    Default: ``bonebayes.regimens.validate_exposure_row`` if it exists, else no check.
    Returns a frame with an int `row` column, sorted by subject, start_month, row.
    """
    df, rows = _read_csv(path)
    return _validate_exposures(df, str(path), rows, True, validate_item)


def load_cohort(observations_path: str | os.PathLike[str],
                exposures_path: str | os.PathLike[str],
                validate_item: ItemValidator | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Load both tables and check that every exposure subject has observations."""
    obs = load_observations(observations_path)
    exp = load_exposures(exposures_path, validate_item)
    unknown = exp[~exp["subject"].isin(set(obs["subject"]))].sort_values("row")
    if len(unknown):
        src = str(exposures_path)
        raise DataValidationError([
            Problem(src, int(r), int(r) + 1, "subject", s,
                    f"subject {s!r} does not appear in the observation table {str(observations_path)!r}")
            for r, s in zip(unknown["row"], unknown["subject"])
        ])
    return obs, exp


# --------------------------------------------------------------------------- output
def write_table_atomic(df: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write `df` as CSV (no index) atomically: temp file in the same dir, fsync, os.replace."""
    from bonebayes._atomic import write_atomic

    return write_atomic(path, lambda tmp: df.to_csv(tmp, index=False, lineterminator="\n"))


def dataframe_hash(df: pd.DataFrame) -> str:
    """sha256 hex digest of a canonical CSV serialisation (columns in order, no index,
    round-trip float repr, NaN as <NA>) for provenance records."""
    text = df.to_csv(index=False, lineterminator="\n", na_rep="<NA>")
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
