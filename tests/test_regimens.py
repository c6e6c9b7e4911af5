"""Tests for bonebayes.regimens: the drug vocabulary, Dose validation, presets and exposure-row checks."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from bonebayes.regimens import (
    DRUGS,
    HORMONE_UNITS,
    HORMONES,
    POPULATIONS,
    REFERENCE_LEVELS,
    Dose,
    population_preset,
    regimen_from_records,
    resolve_drug,
    validate_exposure_row,
)


def make_canonical(name: str) -> Dose:
    spec = DRUGS[name]
    if spec.kind == "event":
        return Dose(drug=name, start_month=-12.0)
    return Dose(drug=name, dose=spec.reference_dose or 1.0, unit=spec.canonical_unit, start_month=0.0,
                stop_month=12.0)


def test_validation_error_is_a_value_error() -> None:
    assert issubclass(ValidationError, ValueError)


@pytest.mark.parametrize("name", list(DRUGS))
def test_every_drug_constructs_with_its_canonical_unit(name: str) -> None:
    d = make_canonical(name)
    assert d.drug == name
    assert d.spec is DRUGS[name]
    if d.spec.kind != "event":
        assert d.unit == d.spec.canonical_unit
        assert d.canonical_dose == pytest.approx(d.dose)
    else:
        assert d.dose is None and d.canonical_dose == 0.0


def test_vocabulary_is_consistent() -> None:
    for name, spec in DRUGS.items():
        assert spec.name == name
        assert spec.units, name
        assert spec.source, name
        if spec.kind in ("antiresorptive", "anabolic"):
            assert spec.reference_dose and spec.reference_dose > 0, name
            assert spec.half_life_months and spec.half_life_months > 0, name
        if spec.kind == "hormone":
            assert spec.hormone in HORMONES, name
    assert set(HORMONE_UNITS) == set(HORMONES)
    for sex in ("female", "male"):
        assert set(REFERENCE_LEVELS[sex]) == set(HORMONES)


def test_unknown_drug_lists_valid_names() -> None:
    with pytest.raises(ValueError) as e:
        Dose(drug="aspirin", dose=100, unit="mg/day")
    msg = str(e.value)
    assert "unknown drug 'aspirin'" in msg
    for valid in ("alendronate", "denosumab", "teriparatide", "natural_menopause", "prednisone"):
        assert valid in msg
    with pytest.raises(ValueError, match="valid drugs"):
        resolve_drug("aspirin")


@pytest.mark.parametrize("drug,unit,valid", [
    ("denosumab", "mg/day", "mg"),
    ("alendronate", "mg", "mg/day, mg/week"),
    ("teriparatide", "mg/day", "ug/day, mcg/day"),
    ("estradiol", "", "mg/day, ug/day"),
])
def test_wrong_unit_lists_valid_units(drug: str, unit: str, valid: str) -> None:
    with pytest.raises(ValueError) as e:
        Dose(drug=drug, dose=1.0, unit=unit)
    assert f"valid units: {valid}" in str(e.value)


def test_stop_before_start_is_an_error() -> None:
    with pytest.raises(ValueError, match="stop_month .* before start_month"):
        Dose(drug="alendronate", dose=10, unit="mg/day", start_month=12, stop_month=6)
    # stop == start is a single dose
    d = Dose(drug="zoledronate", dose=5, unit="mg", start_month=3, stop_month=3)
    assert d.injection_times(100.0) == [3.0]


@pytest.mark.parametrize("every", [0.0, -6.0])
def test_every_months_must_be_positive(every: float) -> None:
    with pytest.raises(ValueError, match="every_months must be > 0"):
        Dose(drug="denosumab", dose=60, unit="mg", every_months=every)


@pytest.mark.parametrize("drug,unit", [("alendronate", "mg/day"), ("teriparatide", "ug/day"),
                                       ("glucocorticoid", "mg/day"), ("calcitonin", "IU/day")])
def test_continuous_drug_rejects_every_months(drug: str, unit: str) -> None:
    with pytest.raises(ValueError, match="continuously"):
        Dose(drug=drug, dose=1.0, unit=unit, every_months=1.0)


def test_negative_or_missing_dose_is_an_error() -> None:
    with pytest.raises(ValueError, match="dose must be a number >= 0"):
        Dose(drug="denosumab", dose=-60, unit="mg")
    with pytest.raises(ValueError, match="dose must be a number >= 0"):
        Dose(drug="denosumab", unit="mg")
    with pytest.raises(ValueError, match="dose must be a number >= 0"):
        Dose(drug="denosumab", dose=math.nan, unit="mg")


def test_routes() -> None:
    with pytest.raises(ValueError) as e:
        Dose(drug="estradiol", dose=1, unit="mg/day", route="im")
    assert "valid routes: oral, transdermal" in str(e.value)
    assert Dose(drug="estradiol", dose=50, unit="ug/day", route="transdermal").effective_route == "transdermal"
    assert Dose(drug="estradiol", dose=1, unit="mg/day").effective_route == "oral"
    with pytest.raises(ValueError, match="takes no route"):
        Dose(drug="alendronate", dose=10, unit="mg/day", route="oral")


@pytest.mark.parametrize("alias,name", [
    ("prednisone", "glucocorticoid"), ("Prednisolone", "glucocorticoid"), (" prednisone ", "glucocorticoid"),
    ("levothyroxine_excess", "thyroid_excess"), ("ibutamoren", "gh_secretagogue"), ("none", "placebo"),
])
def test_aliases(alias: str, name: str) -> None:
    assert resolve_drug(alias).name == name
    spec = DRUGS[name]
    kw = {} if spec.kind == "event" else {"dose": 5.0, "unit": spec.canonical_unit}
    assert Dose(drug=alias, **kw).drug == name


def test_weekly_alendronate_converts_to_daily() -> None:
    d = Dose(drug="alendronate", dose=70, unit="mg/week")
    assert d.canonical_dose == pytest.approx(10.0, rel=1e-14)
    assert DRUGS["alendronate"].canonical_unit == "mg/day"
    assert Dose(drug="estradiol", dose=50, unit="ug/day").canonical_dose == pytest.approx(0.05)
    assert Dose(drug="thyroid_excess", dose=12.87 * 3, unit="pmol/L").canonical_dose == pytest.approx(3.0)


def test_dose_is_frozen_and_strict() -> None:
    d = Dose(drug="alendronate", dose=10, unit="mg/day")
    with pytest.raises(ValidationError):
        d.dose = 5  # type: ignore[misc]
    with pytest.raises(ValueError, match="extra"):
        Dose(drug="alendronate", dose=10, unit="mg/day", frequency="daily")  # type: ignore[call-arg]


def test_injection_schedule() -> None:
    d = Dose(drug="denosumab", dose=60, unit="mg", start_month=0, stop_month=18, every_months=6)
    assert d.is_bolus()
    assert d.injection_times(100.0) == [0.0, 6.0, 12.0, 18.0]
    assert d.injection_times(10.0) == [0.0, 6.0]
    open_ended = Dose(drug="denosumab", dose=60, unit="mg", start_month=0, every_months=6)
    assert open_ended.injection_times(24.0) == [0.0, 6.0, 12.0, 18.0, 24.0]
    assert not Dose(drug="alendronate", dose=10, unit="mg/day").is_bolus()
    assert Dose(drug="testosterone", dose=200, unit="mg", every_months=0.5, route="im").is_bolus()
    assert not Dose(drug="testosterone", dose=50, unit="mg/day", route="gel").is_bolus()


def test_regimen_from_records() -> None:
    reg = regimen_from_records([
        {"drug": "natural_menopause", "start_month": -120},
        {"drug": "denosumab", "dose": 60, "unit": "mg", "start_month": 0, "every_months": 6},
    ])
    assert [d.drug for d in reg] == ["natural_menopause", "denosumab"]


# --------------------------------------------------------------------------- populations


@pytest.mark.parametrize("name", POPULATIONS)
def test_population_presets(name: str) -> None:
    p = population_preset(name)
    assert p.name == name
    assert p.sex in ("female", "male")
    assert set(p.levels) <= set(HORMONES)
    for d in p.history:
        assert isinstance(d, Dose)
        assert d.start_month <= 12.0


def test_population_preset_parameters() -> None:
    p = population_preset("postmenopausal", years_since_menopause=3)
    assert p.history[0].drug == "natural_menopause" and p.history[0].start_month == -36.0
    assert population_preset("postmenopausal").history[0].start_month == -120.0
    assert population_preset("postmenopausal", years_since_menopause=0).history[0].start_month == 0.0
    assert population_preset("hypogonadal_male", years_since_onset=2).history[0].start_month == -24.0
    assert population_preset("hyperthyroid").levels == {"thyroid": 3.0}


def test_unknown_population_lists_valid_ones() -> None:
    with pytest.raises(ValueError) as e:
        population_preset("teenager")
    msg = str(e.value)
    assert "unknown population 'teenager'" in msg
    for name in POPULATIONS:
        assert name in msg


@pytest.mark.parametrize("name", ["glucocorticoid_user", "primary_hyperparathyroidism"])
def test_population_preset_zero_years_since_menopause(name: str) -> None:
    p = population_preset(name, years_since_menopause=0)
    meno = [d for d in p.history if d.drug == "natural_menopause"]
    assert meno[0].start_month == 0.0


# --------------------------------------------------------------------------- exposure rows

NAN = float("nan")


@pytest.mark.parametrize("row", [
    {"subject": "S1", "drug": "natural_menopause", "dose": NAN, "unit": None, "start_month": -120.0,
     "stop_month": NAN, "every_months": NAN, "route": None, "note": None},
    {"subject": "S1", "drug": "natural_menopause", "dose": NAN, "unit": NAN, "start_month": -120.0,
     "stop_month": NAN, "every_months": NAN},
    {"subject": "S1", "drug": "denosumab", "dose": 60.0, "unit": "mg", "start_month": 0.0, "stop_month": 24.0,
     "every_months": 6.0},
    {"subject": "S2", "drug": "alendronate", "dose": 70.0, "unit": "mg/week", "start_month": 0.0,
     "stop_month": NAN, "every_months": NAN, "route": ""},
    {"subject": "S3", "drug": "prednisone", "dose": 7.5, "unit": "mg/day", "start_month": -12.0,
     "stop_month": NAN, "every_months": NAN},
    {"subject": "S4", "drug": "estradiol", "dose": 50.0, "unit": "ug/day", "start_month": 0.0,
     "stop_month": 12.0, "every_months": NAN, "route": "transdermal"},
])
def test_validate_exposure_row_accepts_valid_rows(row: dict) -> None:
    assert validate_exposure_row(row) is None


@pytest.mark.parametrize("row,match", [
    ({"drug": "aspirin", "dose": 100.0, "unit": "mg/day", "start_month": 0.0}, "unknown drug"),
    ({"drug": "alendronate", "dose": 70.0, "unit": "mg", "start_month": 0.0, "stop_month": NAN,
      "every_months": NAN}, "valid units"),
    ({"drug": "denosumab", "dose": NAN, "unit": "mg", "start_month": 0.0}, "dose must be"),
    ({"drug": "alendronate", "dose": 10.0, "unit": "mg/day", "start_month": 0.0, "every_months": 1.0},
     "continuously"),
    ({"drug": "estradiol", "dose": 1.0, "unit": "mg/day", "start_month": 0.0, "route": "im"}, "valid routes"),
    ({"drug": "denosumab", "dose": 60.0, "unit": "mg", "start_month": 6.0, "stop_month": 0.0}, "before"),
])
def test_validate_exposure_row_rejects_bad_rows(row: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        validate_exposure_row(row)
