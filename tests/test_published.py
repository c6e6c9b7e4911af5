"""Published evidence: shipped files, validation, endpoint mapping, SE conversion, the arm-level model."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bonebayes.datasets.published import (
    ENDPOINTS,
    data_path,
    load_design,
    load_published,
    population_profiles,
)
from bonebayes.datasets.schema import DataValidationError


@pytest.fixture(scope="module")
def evidence():
    return load_published()


def test_shipped_files_keep_every_source_row_and_column(evidence) -> None:
    src = Path(__file__).resolve().parents[1] / ".." / "shared" / "reference" / "published_arms.csv"
    shipped = pd.read_csv(data_path("published_arms.csv"))
    if src.exists():  # the curated copy is the reference file, byte for byte
        assert src.read_bytes() == data_path("published_arms.csv").read_bytes()
    for col in ("citation", "address", "quality", "note", "dispersion", "disp_lo", "disp_hi"):
        assert col in evidence.arms.columns and col in shipped.columns
    # nothing silently dropped: used + excluded == all rows
    assert len(evidence.usable) + len(evidence.excluded) == len(evidence.arms) == len(shipped)
    assert set(evidence.usable["record_id"]).isdisjoint(set(evidence.excluded["record_id"]))
    assert evidence.excluded["reason"].str.len().min() > 10


def test_exclusion_reasons(evidence) -> None:
    reason = dict(zip(evidence.excluded["record_id"], evidence.excluded["reason"]))
    assert reason[82].startswith("no time point") and reason[91].startswith("no time point")
    assert "comparator" in reason[88]  # Grigorie: single levels
    assert "twice" in reason[76]  # ratio derived from rows 72-75 (curated)
    assert 1 not in reason and 63 not in reason


def test_endpoint_mapping(evidence) -> None:
    u = evidence.usable.set_index("record_id")
    assert u.loc[63, "model_site"] == "lumbar_spine_trabecular"  # QCT vBMD is its own site
    assert u.loc[1, "model_site"] == "total_hip"
    assert u.loc[53, "latent"] == "C" and u.loc[53, "assay"] == "ntx_urine"
    assert u.loc[22, "latent"] == "B" and u.loc[22, "assay"] == "osteocalcin"
    assert u.loc[7, "assay"] == "ctx_serum" and ENDPOINTS["ctx"].anchor
    assert u.loc[72, "model_kind"] == "serum"


def test_standard_errors(evidence) -> None:
    u = evidence.usable.set_index("record_id")
    assert u.loc[1, "se"] == pytest.approx(0.2 / (2 * 1.959964), rel=1e-5)  # ci95
    assert u.loc[24, "se"] == 0.4  # se
    assert u.loc[65, "se"] == pytest.approx(40.4 / np.sqrt(13))  # sd / sqrt(n)
    assert u.loc[86, "se"] == pytest.approx((12.0 - 1.6) / 6 / np.sqrt(114))  # Hozo, n > 70
    assert np.isnan(u.loc[9, "se"]) and u.loc[9, "se_source"] == "fitted reporting scale"
    assert u.loc[5, "n_control"] == 128  # control arm size from the design


def test_population_profiles_cite_their_sources(evidence) -> None:
    prof = population_profiles(evidence).set_index("arm")
    assert prof.loc["FREEDOM/placebo", "estradiol"] == pytest.approx(8.5, rel=1e-3)
    assert "reference_values.csv" in prof.loc["FREEDOM/placebo", "source"]
    assert prof.loc["PHPT-PTX/parathyroidectomy", "pth"] == pytest.approx(196.0)
    assert prof.loc["TTrials-Bone/placebo", "testosterone"] < 275  # below the trial's entry threshold
    ref = evidence.references
    e2 = ref[(ref["quantity"] == "estradiol_serum") & ref["population"].str.contains("not using")]["value"]
    assert float(e2.iloc[0]) == pytest.approx(prof.loc["FREEDOM/placebo", "estradiol"], rel=1e-3)


def _copy_data(tmp_path: Path) -> Path:
    for name in ("published_arms.csv", "published_design.toml", "reference_values.csv"):
        shutil.copy(data_path(name), tmp_path / name)
    return tmp_path


def test_bad_cell_names_file_row_and_column(tmp_path: Path) -> None:
    d = _copy_data(tmp_path)
    lines = (d / "published_arms.csv").read_text().splitlines()
    lines[3] = lines[3].replace("pct_change_from_baseline", "pct_change_bogus")
    (d / "published_arms.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataValidationError) as e:
        load_published(d / "published_arms.csv", d / "published_design.toml", d / "reference_values.csv")
    assert e.value.row == 3 and e.value.line == 4 and e.value.column == "measure"
    assert "published_arms.csv" in str(e.value) and "pct_change_from_baseline" in str(e.value)


def test_bad_design_names_the_key_path(tmp_path: Path) -> None:
    d = _copy_data(tmp_path)
    text = (d / "published_design.toml").read_text().replace('dose = 60, unit = "mg"', 'dose = 60, unit = "mg/furlong"', 1)
    (d / "published_design.toml").write_text(text)
    with pytest.raises(DataValidationError) as e:
        load_design(d / "published_design.toml")
    assert "studies.FREEDOM.arms.denosumab.regimen[0]" in str(e.value)


def test_missing_design_is_an_exclusion_not_a_silent_drop(tmp_path: Path) -> None:
    d = _copy_data(tmp_path)
    text = (d / "published_design.toml").read_text()
    a = text.index("[studies.EPIC]")
    b = text.index("[studies.HORIZON-BTM]")
    (d / "published_design.toml").write_text(text[:a] + text[b:])
    ev = load_published(d / "published_arms.csv", d / "published_design.toml", d / "reference_values.csv")
    reason = dict(zip(ev.excluded["record_id"], ev.excluded["reason"]))
    assert "no arm design for EPIC/alendronate_5" in reason[31]


def test_published_model_builds_and_predictions_follow_the_physics(evidence) -> None:
    """At a fixed parameter point the model's row predictions have the signs the physiology implies."""
    from bonebayes.models.published import PublishedModel

    pm_ = PublishedModel(evidence)
    model = pm_.model
    names = {v.name for v in model.free_RVs}
    assert {"tau_kM_study", "tau_drift", "kappa_ana", "beta_assay", "omega_bmd", "s_bmd"} <= names
    from pymc.initial_point import make_initial_point_fn

    ip = make_initial_point_fn(model=model, jitter_rvs=set(), default_strategy="support_point",
                               return_transformed=True)(0)  # prior support point: literature-leaning signs
    # compile_fn on a Deterministic would draw its RVs from the prior: substitute the value variables
    (pred_v,) = model.replace_rvs_by_values([model["pub_pred"]])
    f = model.compile_fn(pred_v, inputs=model.value_vars, on_unused_input="ignore")
    pred = pd.Series(f(ip), index=pm_.data.rows["record_id"])
    assert pred[3] > pred[1]  # denosumab above placebo (FREEDOM, 12 months)
    assert pred[24] > 0  # alendronate minus placebo
    assert pred[68] < 0  # BMD falls after the final menstrual period
    assert np.all(np.isfinite(pred))
    logp = model.compile_logp()(ip)
    assert np.isfinite(logp)


def test_holdout_rows_have_no_likelihood(evidence) -> None:
    from bonebayes.models.published import PublishedConfig, PublishedModel

    pm_ = PublishedModel(evidence, PublishedConfig(holdout_studies=("FREEDOM",)))
    d = pm_.data
    assert (~d.fit).sum() == 4 and not d.rows.loc[~d.fit, "study"].ne("FREEDOM").any()
    assert pm_.model["obs_published"].eval().shape[0] == d.n_rows - 4
    with pytest.raises(ValueError, match="no usable rows"):
        PublishedModel(evidence, PublishedConfig(holdout_studies=("Nope",)))


def test_main_job_writes_ppc_and_loso_and_resumes(tmp_path: Path) -> None:
    """The published main job end to end with the mock sampler (prior draws: plumbing, not inference)."""
    from bonebayes.pipeline import run_main_job

    out = tmp_path / "results"
    kw = dict(draws=20, tune=0, chains=2, seed=3, sampler="mock", progress=False, loso=1, loso_draws=10)
    summary = run_main_job(out, **kw)
    for name in ("fit.nc", "diagnostics.txt", "ppc_published.csv", "ppc_coverage.csv", "loso_rows.csv",
                 "loso_summary.csv", "summary.json", "summary.md", "data/published_rows_used.csv",
                 "data/published_rows_excluded.csv", "data/population_profiles.csv"):
        assert (out / name).is_file(), name
    ppc = pd.read_csv(out / "ppc_published.csv")
    ev = load_published()
    assert len(ppc) == len(ev.usable) and set(ppc["record_id"]) == set(ev.usable["record_id"])
    assert (ppc["lo"] <= ppc["pred_median"]).all() and (ppc["pred_median"] <= ppc["hi"]).all()
    assert summary["loso"]["studies"] == ["FREEDOM"]
    loso = pd.read_csv(out / "loso_rows.csv")
    assert set(loso["study"]) == {"FREEDOM"} and len(loso) == 4 and not loso["fit"].any()
    assert "Leave-one-study-out" in (out / "summary.md").read_text()
    stamp = (out / "loso" / "FREEDOM.csv").stat().st_mtime_ns
    again = run_main_job(out, **kw)  # resumes: the fit is reused, the finished refit is skipped
    assert again["reused_existing_fit"] is True
    assert (out / "loso" / "FREEDOM.csv").stat().st_mtime_ns == stamp


def test_joint_model_shares_population_parameters(tiny_cohort_dir: Path, evidence) -> None:
    """Published arms and an individual cohort in one model: one k_M, one gamma, one emax per drug."""
    from bonebayes.datasets import load_cohort
    from bonebayes.models.individual import IndividualModel
    from bonebayes.models.published import PublishedConfig, build_joint_model, prepare_published

    obs, exp = load_cohort(tiny_cohort_dir / "observations.csv", tiny_cohort_dir / "exposures.csv")
    ind = IndividualModel(obs, exp)
    pub = prepare_published(evidence, PublishedConfig())
    joint = build_joint_model(ind.data, pub)
    names = [v.name for v in joint.free_RVs]
    for shared in ("k_C", "k_B", "k_M", "lam", "gamma", "emax_res"):
        assert names.count(shared) == 1
    assert {"obs_bmd", "obs_markers", "obs_published"} <= {v.name for v in joint.observed_RVs}
    # the union of both blocks' labels
    assert set(joint.coords["site"]) >= set(ind.data.sites) | set(pub.sites)
    assert set(joint.coords["antiresorptive"]) >= set(pub.schedule.antiresorptives)
    from pymc.initial_point import make_initial_point_fn

    ip = make_initial_point_fn(model=joint, jitter_rvs=set(), default_strategy="support_point",
                               return_transformed=True)(0)
    assert np.isfinite(joint.compile_logp()(ip))
    with pytest.raises(ValueError, match="ratio_driver"):
        from bonebayes.models.individual import ModelConfig

        build_joint_model(ind.data, pub, ModelConfig(ratio_driver="serum"))
