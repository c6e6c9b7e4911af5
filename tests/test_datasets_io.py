"""Tests for bonebayes.datasets (observation/exposure CSV loading and validation)."""

from __future__ import annotations

import math
import pickle
import sys
import types
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bonebayes.datasets import (
    CANONICAL_UNITS,
    VARIABLES,
    DataValidationError,
    dataframe_hash,
    load_cohort,
    load_exposures,
    load_observations,
    write_table_atomic,
)
from bonebayes.datasets.io import validate_exposures, validate_observations

OBS_HEADER = "subject,cohort,time_months,variable,value,unit,below_loq"
OBS_ROWS = [
    "S2,A,0,ctx,0.5,ng/mL,false",
    "S1,A,12,rankl,190,pg/mL,",
    "S1,A,0,estradiol,36.71,pmol/L,no",
    "S1,A,0,bmd_lumbar_spine,0.9,g/cm2,0",
    "S1,A,6,ctx,50,pg/mL,TRUE",
]
EXP_HEADER = "subject,drug,dose,unit,start_month,stop_month,every_months"
EXP_ROWS = [
    "S1,denosumab,60,mg,0,24,6",
    "S1,natural_menopause,,,-120,,",
    "S2,alendronate,70,mg,0,,",
]


def accept_all(row: dict) -> None:
    """Vocabulary hook that accepts everything (keeps tests independent of regimens)."""


def write(tmp_path: Path, name: str, header: str, rows: list[str]) -> Path:
    p = tmp_path / name
    p.write_text("\n".join([header, *rows]) + "\n")
    return p


def obs_error(tmp_path: Path, rows: list[str], header: str = OBS_HEADER) -> DataValidationError:
    p = write(tmp_path, "observations.csv", header, rows)
    with pytest.raises(DataValidationError) as ei:
        load_observations(p)
    return ei.value


def obs_error_from(p: Path) -> DataValidationError:
    with pytest.raises(DataValidationError) as ei:
        load_observations(p)
    return ei.value


def exp_error(tmp_path: Path, rows: list[str]) -> DataValidationError:
    p = write(tmp_path, "exposures.csv", EXP_HEADER, rows)
    with pytest.raises(DataValidationError) as ei:
        load_exposures(p, validate_item=accept_all)
    return ei.value


def assert_names(err: DataValidationError, row: int | None, column: str | None) -> str:
    """The message names file, row (with file line) and column, and attributes match."""
    msg = str(err)
    assert Path(err.path).name in msg and msg.startswith(err.path)
    assert (err.row, err.column) == (row, column)
    if row is not None:
        assert err.line == row + 1
        assert f"row {row} (line {row + 1})" in msg
    if column is not None:
        assert f"column {column!r}" in msg
    return msg


# ------------------------------------------------------------------ observations: happy path
def test_load_observations_converts_and_sorts(tmp_path):
    df = load_observations(write(tmp_path, "observations.csv", OBS_HEADER, OBS_ROWS))
    assert len(df) == len(OBS_ROWS)
    assert list(df[["subject", "time_months", "variable"]].itertuples(index=False, name=None)) == [
        ("S1", 0.0, "bmd_lumbar_spine"), ("S1", 0.0, "estradiol"), ("S1", 6.0, "ctx"),
        ("S1", 12.0, "rankl"), ("S2", 0.0, "ctx"),
    ]
    assert df["row"].tolist() == [4, 3, 5, 2, 1]
    by_var = df.set_index(["subject", "variable"])
    assert by_var.loc[("S1", "rankl"), "value"] == pytest.approx(10.0)  # 190 pg/mL / 19
    assert by_var.loc[("S1", "rankl"), "unit"] == "pmol/L"
    assert by_var.loc[("S1", "rankl"), "value_reported"] == 190.0
    assert by_var.loc[("S1", "rankl"), "unit_reported"] == "pg/mL"
    assert by_var.loc[("S1", "estradiol"), "value"] == pytest.approx(10.0)  # 36.71 pmol/L
    assert by_var.loc[("S1", "ctx"), "value"] == pytest.approx(0.05)  # 50 pg/mL -> ng/mL
    assert df["below_loq"].dtype == bool
    assert df["below_loq"].tolist() == [False, False, True, False, False]
    assert (df["unit"] == df["variable"].map(CANONICAL_UNITS)).all()


def test_vocabulary():
    assert len(VARIABLES) == 13 and VARIABLES[0] == "rankl"
    assert CANONICAL_UNITS["testosterone"] == "ng/dL"
    assert CANONICAL_UNITS["bmd_total_hip"] == "g/cm2"


@pytest.mark.parametrize("token,expected", [
    ("true", True), ("Yes", True), ("1", True), ("FALSE", False), ("no", False), ("0", False),
    ("", False),
])
def test_below_loq_tokens(tmp_path, token, expected):
    df = load_observations(write(tmp_path, "o.csv", OBS_HEADER, [f"S1,A,0,ctx,0.01,ng/mL,{token}"]))
    assert df["below_loq"].tolist() == [expected]


def test_optional_columns_kept_and_header_only(tmp_path):
    df = load_observations(write(tmp_path, "o.csv", OBS_HEADER + ",arm,sex,note",
                                 ["S1,A,0,ctx,0.5,ng/mL,false,placebo,F,fasting"]))
    assert df.loc[0, ["arm", "sex", "note"]].tolist() == ["placebo", "F", "fasting"]
    empty = load_observations(write(tmp_path, "e.csv", OBS_HEADER, []))
    assert len(empty) == 0 and "value_reported" in empty.columns


def test_blank_lines_keep_file_numbering(tmp_path):
    p = tmp_path / "observations.csv"
    p.write_text(OBS_HEADER + "\nS1,A,0,ctx,0.5,ng/mL,false\n\nS1,A,1,ctx,-1,ng/mL,false\n")
    err = obs_error_from(p)
    assert_names(err, 3, "value")


# ------------------------------------------------------------------ observations: errors
def test_file_missing(tmp_path):
    with pytest.raises(DataValidationError) as ei:
        load_observations(tmp_path / "nope.csv")
    msg = assert_names(ei.value, None, None)
    assert "nope.csv" in msg and "file not found" in msg


def test_empty_file(tmp_path):
    p = tmp_path / "observations.csv"
    p.write_text("")
    assert "empty" in assert_names(obs_error_from(p), None, None)


def test_missing_required_column(tmp_path):
    err = obs_error(tmp_path, ["S1,A,0,ctx,0.5,false"],
                    header="subject,cohort,time_months,variable,value,below_loq")
    msg = assert_names(err, None, "unit")
    assert "required column is missing" in msg
    assert "found columns: subject, cohort, time_months, variable, value, below_loq" in msg


def test_unknown_extra_column(tmp_path):
    err = obs_error(tmp_path, ["S1,A,0,ctx,0.5,ng/mL,false,x"], header=OBS_HEADER + ",site")
    msg = assert_names(err, None, "site")
    assert "unknown column" in msg and "arm, note, sex" in msg


def test_duplicate_header_column(tmp_path):
    err = obs_error(tmp_path, ["S1,A,0,ctx,0.5,ng/mL,false,0.6"], header=OBS_HEADER + ",value")
    assert "more than once" in assert_names(err, None, "value")


def test_ragged_row(tmp_path):
    err = obs_error(tmp_path, ["S1,A,0,ctx,0.5,ng/mL,false", "S1,A,1,ctx,0.5,ng/mL"])
    assert "expected 7 fields, found 6" in assert_names(err, 2, None)


def test_empty_required_cell(tmp_path):
    err = obs_error(tmp_path, ["S1,A,0,ctx,0.5,ng/mL,false", ",A,1,ctx,0.5,ng/mL,false"])
    assert "missing value" in assert_names(err, 2, "subject")


def test_non_numeric_value(tmp_path):
    err = obs_error(tmp_path, ["S1,A,0,ctx,abc,ng/mL,false"])
    assert "'abc' is not a number" in assert_names(err, 1, "value")
    err = obs_error(tmp_path, ["S1,A,0,ctx,inf,ng/mL,false"])
    assert "not finite" in assert_names(err, 1, "value")


def test_negative_time(tmp_path):
    err = obs_error(tmp_path, ["S1,A,-3,ctx,0.5,ng/mL,false"])
    assert "negative time -3" in assert_names(err, 1, "time_months")


@pytest.mark.parametrize("value,loq", [("0", "false"), ("-0.2", "false"), ("0", "true")])
def test_non_positive_value(tmp_path, value, loq):
    err = obs_error(tmp_path, [f"S1,A,0,ctx,{value},ng/mL,{loq}"])
    msg = assert_names(err, 1, "value")
    assert "must be > 0" in msg
    assert ("LOQ" in msg) == (loq == "true")


def test_unknown_variable(tmp_path):
    err = obs_error(tmp_path, ["S1,A,0,ctx,0.5,ng/mL,false", "S1,A,0,vitd,30,ng/mL,false"])
    msg = assert_names(err, 2, "variable")
    assert "'vitd' is not a known variable; valid: rankl, opg, ctx" in msg
    assert err.value == "vitd"


def test_bad_unit(tmp_path):
    rows = [f"S1,A,{t},ctx,0.5,ng/mL,false" for t in range(16)] + ["S1,A,16,ctx,0.5,mg,false"]
    err = obs_error(tmp_path, rows)
    assert str(err) == (f"{tmp_path / 'observations.csv'}: row 17 (line 18), column 'unit': "
                        "'mg' is not a valid unit for variable 'ctx'; valid: ng/mL, pg/mL")
    assert err.value == "mg" and err.reason.startswith("'mg'")


def test_duplicate_rows_name_both(tmp_path):
    err = obs_error(tmp_path, ["S1,A,0,ctx,0.5,ng/mL,false", "S1,A,1,ctx,0.5,ng/mL,false",
                               "S1,A,0.0,ctx,0.6,pg/mL,false"])
    msg = assert_names(err, 3, None)
    assert "duplicate of row 1 (line 2)" in msg
    assert "subject 'S1', time_months 0, variable 'ctx'" in msg


def test_bad_below_loq_token(tmp_path):
    err = obs_error(tmp_path, ["S1,A,0,ctx,0.5,ng/mL,maybe"])
    assert "'maybe' is not a boolean" in assert_names(err, 1, "below_loq")


def test_all_problems_collected(tmp_path):
    err = obs_error(tmp_path, ["S1,A,0,ctx,0.5,ng/mL,false", "S1,A,-1,ctx,x,mg,false",
                               "S1,A,2,foo,1,ng/mL,nah"])
    assert [(p.row, p.column) for p in err.problems] == [
        (2, "time_months"), (2, "value"), (2, "unit"), (3, "variable"), (3, "below_loq")]
    assert str(err).endswith("(and 4 more problems)")
    assert (err.row, err.column) == (2, "time_months")
    assert all(str(p).startswith(str(tmp_path / "observations.csv")) for p in err.problems)


def test_error_pickles(tmp_path):
    err = obs_error(tmp_path, ["S1,A,0,ctx,x,ng/mL,false"])
    again = pickle.loads(pickle.dumps(err))
    assert str(again) == str(err) and again.problems == err.problems


def test_validate_observations_in_memory():
    df = pd.DataFrame({"subject": ["S1", "S1"], "cohort": ["A", "A"], "time_months": [0.0, 3.0],
                       "variable": ["pth", "pth"], "value": [10.6, -1.0],
                       "unit": ["pmol/L", "pg/mL"], "below_loq": [False, True]})
    with pytest.raises(DataValidationError) as ei:
        validate_observations(df, source="synthetic")
    assert str(ei.value).startswith("synthetic: row 2, column 'value'")
    assert ei.value.line is None
    df.loc[1, "value"] = 5.0
    out = validate_observations(df)
    assert out["value"].tolist() == pytest.approx([100.0, 5.0])
    assert out["row"].tolist() == [1, 2] and out["below_loq"].tolist() == [False, True]
    assert len(df) == 2 and "row" not in df.columns  # input not modified


# ------------------------------------------------------------------ exposures
def test_load_exposures(tmp_path):
    df = load_exposures(write(tmp_path, "exposures.csv", EXP_HEADER, EXP_ROWS),
                        validate_item=accept_all)
    assert len(df) == 3
    assert df[["subject", "drug"]].values.tolist() == [
        ["S1", "natural_menopause"], ["S1", "denosumab"], ["S2", "alendronate"]]
    meno = df.iloc[0]
    assert math.isnan(meno["dose"]) and math.isnan(meno["stop_month"]) and meno["start_month"] == -120
    assert pd.isna(meno["unit"])
    assert df.iloc[2]["every_months"] != df.iloc[2]["every_months"]  # NaN = continuous daily
    assert df["row"].tolist() == [2, 1, 3]


def test_exposure_stop_before_start(tmp_path):
    err = exp_error(tmp_path, ["S1,denosumab,60,mg,12,6,6"])
    assert "stop_month 6 is before start_month 12" in assert_names(err, 1, "stop_month")


@pytest.mark.parametrize("every", ["0", "-6"])
def test_exposure_every_not_positive(tmp_path, every):
    err = exp_error(tmp_path, [f"S1,denosumab,60,mg,0,24,{every}"])
    assert "must be > 0" in assert_names(err, 1, "every_months")


def test_exposure_negative_dose(tmp_path):
    err = exp_error(tmp_path, EXP_ROWS + ["S2,denosumab,-60,mg,0,24,6"])
    assert "negative dose -60" in assert_names(err, 4, "dose")


def test_exposure_dose_empty_only_for_menopause(tmp_path):
    err = exp_error(tmp_path, ["S1,denosumab,,mg,0,24,6"])
    assert "natural_menopause" in assert_names(err, 1, "dose")


def test_exposure_unknown_subject(tmp_path):
    obs = write(tmp_path, "observations.csv", OBS_HEADER, OBS_ROWS)
    exp = write(tmp_path, "exposures.csv", EXP_HEADER, EXP_ROWS + ["S9,denosumab,60,mg,0,,6"])
    with pytest.raises(DataValidationError) as ei:
        load_cohort(obs, exp, validate_item=accept_all)
    msg = assert_names(ei.value, 4, "subject")
    assert "exposures.csv" in msg and "'S9' does not appear" in msg
    o, e = load_cohort(obs, write(tmp_path, "exposures.csv", EXP_HEADER, EXP_ROWS),
                       validate_item=accept_all)
    assert len(o) == len(OBS_ROWS) and len(e) == len(EXP_ROWS)


def test_exposure_vocabulary_hook(tmp_path):
    seen = []

    def hook(row: dict) -> None:
        seen.append(row)
        if row["drug"] == "aspirin":
            raise ValueError("unknown drug 'aspirin'")
        if row["unit"] == "g":
            raise ValueError("unit 'g' not allowed for denosumab")

    p = write(tmp_path, "exposures.csv", EXP_HEADER,
              EXP_ROWS + ["S1,aspirin,1,mg,0,,", "S1,denosumab,1,g,0,,6", "S1,x,-1,mg,0,,"])
    with pytest.raises(DataValidationError) as ei:
        load_exposures(p, validate_item=hook)
    assert [(q.row, q.column) for q in ei.value.problems] == [(4, "drug"), (5, "unit"), (6, "dose")]
    assert "unknown drug 'aspirin'" in assert_names(ei.value, 4, "drug")
    assert len(seen) == 5  # row 6 already invalid: hook not called
    meno = next(r for r in seen if r["drug"] == "natural_menopause")
    assert meno["unit"] is None and math.isnan(meno["dose"]) and "row" not in meno


def test_exposure_default_hook_from_regimens(tmp_path, monkeypatch):
    p = write(tmp_path, "exposures.csv", EXP_HEADER, EXP_ROWS)
    fake = types.ModuleType("bonebayes.regimens")

    def validate_exposure_row(row):
        if row["drug"] == "alendronate":
            raise ValueError("drug 'alendronate' not in vocabulary")

    fake.validate_exposure_row = validate_exposure_row
    monkeypatch.setitem(sys.modules, "bonebayes.regimens", fake)
    with pytest.raises(DataValidationError) as ei:
        load_exposures(p)
    assert_names(ei.value, 3, "drug")
    # module without the function, or no module at all: vocabulary check skipped
    monkeypatch.setitem(sys.modules, "bonebayes.regimens", types.ModuleType("bonebayes.regimens"))
    assert len(load_exposures(p)) == 3
    monkeypatch.setitem(sys.modules, "bonebayes.regimens", None)
    assert len(load_exposures(p)) == 3


def test_validate_exposures_in_memory():
    df = pd.DataFrame({"subject": ["S1"], "drug": ["denosumab"], "dose": [60.0], "unit": ["mg"],
                       "start_month": [0.0], "stop_month": [np.nan], "every_months": [6.0],
                       "route": ["sc"]})
    out = validate_exposures(df, validate_item=accept_all)
    assert out.loc[0, "route"] == "sc" and out.loc[0, "row"] == 1


# ------------------------------------------------------------------ output helpers
def test_write_table_atomic_and_hash(tmp_path):
    df = load_observations(write(tmp_path, "observations.csv", OBS_HEADER, OBS_ROWS))
    target = tmp_path / "out" / "clean.csv"
    target.parent.mkdir()
    assert write_table_atomic(df, target) == target
    assert [q.name for q in target.parent.iterdir()] == ["clean.csv"]  # no temp files left
    back = pd.read_csv(target)
    assert len(back) == len(df)
    np.testing.assert_array_equal(back["value"].to_numpy(), df["value"].to_numpy())  # exact floats
    write_table_atomic(df.iloc[:2], target)  # overwrite
    assert len(pd.read_csv(target)) == 2

    h = dataframe_hash(df)
    assert len(h) == 64 and h == dataframe_hash(df.copy())
    changed = df.copy()
    changed.loc[0, "value"] += 1e-12
    assert dataframe_hash(changed) != h
