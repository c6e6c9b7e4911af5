"""Model comparison: stacking, grouped K-fold pieces, the comparison table, and an end-to-end mock run."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from bonebayes.cli import app
from bonebayes.compare import (
    ComparisonData,
    VariantResult,
    assign_folds,
    compare_variants,
    comparison_table,
    group_elpd,
    grouped_kfold,
    stacking_weights,
    synthetic_data,
)
from bonebayes.variants import get_variant


@pytest.fixture(autouse=True, scope="module")
def _fast_compile():
    """Mock fits and predictive draws compile large graphs once each: skip PyTensor's C compilation here."""
    import pytensor

    with pytensor.config.change_flags(mode="FAST_COMPILE"):
        yield


def test_stacking_weights() -> None:
    rng = np.random.default_rng(0)
    good = rng.normal(-1.0, 0.1, 200)
    w = stacking_weights(np.column_stack([good, good - 2.0]))
    assert w.sum() == pytest.approx(1.0) and w[0] > 0.95
    # two models each good on half the points: both get weight
    a = np.where(np.arange(200) < 100, -1.0, -4.0)
    b = np.where(np.arange(200) < 100, -4.0, -1.0)
    w = stacking_weights(np.column_stack([a, b]))
    assert w == pytest.approx([0.5, 0.5], abs=0.02)
    assert stacking_weights(np.zeros((5, 1))).tolist() == [1.0]


def test_group_elpd_is_the_joint_log_predictive_density_of_each_group() -> None:
    rng = np.random.default_rng(1)
    ll = rng.normal(-1.0, 0.3, (400, 6))
    groups = np.array(["a", "a", "b", "b", "b", "c"])
    got = group_elpd(ll, groups)
    want = np.log(np.mean(np.exp(ll[:, :2].sum(axis=1))))
    assert got["a"] == pytest.approx(want, rel=1e-12)
    assert list(got.index) == ["a", "b", "c"]


def test_assign_folds_partitions_the_groups() -> None:
    folds = assign_folds(["s1", "s2", "s3", "s4", "s5", "s1"], 2, seed=3)
    assert sorted(g for f in folds for g in f) == ["s1", "s2", "s3", "s4", "s5"]
    assert sorted(len(f) for f in folds) == [2, 3]
    assert folds == assign_folds(["s5", "s4", "s3", "s2", "s1"], 2, seed=3)  # seeded, order-free
    with pytest.raises(ValueError, match="kfold must be between 2 and the number of groups"):
        assign_folds(["a", "b"], 3)


def _result(name: str, elpd_i: np.ndarray, k: np.ndarray) -> VariantResult:
    loo = {"elpd": float(elpd_i.sum()), "se": 1.0, "p_loo": 3.0, "elpd_i": elpd_i, "pareto_k": k}
    return VariantResult(get_variant(name), loo, np.array(["g"] * len(k)), None, 1.0)


def test_comparison_table_ranks_and_pairs() -> None:
    rng = np.random.default_rng(2)
    base = rng.normal(-2.0, 0.5, 50)
    res = {"published": _result("published", base, np.full(50, 0.2)),
           "published_rebound": _result("published_rebound", base + 0.1, np.r_[np.full(48, 0.3), 0.6, 0.9])}
    t = comparison_table(res, "loo")
    assert list(t.index) == ["published_rebound", "published"]
    assert t.loc["published_rebound", "elpd_diff"] == 0.0
    assert t.loc["published", "elpd_diff"] == pytest.approx(-5.0)
    assert t.loc["published", "se_diff"] == pytest.approx(0.0, abs=1e-9)  # a constant shift: no paired noise
    assert t.loc["published_rebound", ["k_good", "k_ok", "k_bad"]].tolist() == [48, 1, 1]
    assert t["weight"].sum() == pytest.approx(1.0)
    res["published"].kfold = pd.Series({"s1": -3.0, "s2": -4.0})
    res["published_rebound"].kfold = pd.Series({"s1": -2.0, "s2": -4.5})
    t = comparison_table(res, "kfold2")
    assert t.loc["published_rebound", "elpd"] == pytest.approx(-6.5) and t.index[0] == "published_rebound"


def test_compare_rejects_mismatched_variants() -> None:
    data = ComparisonData("individual", label="x")
    with pytest.raises(ValueError, match="is a published model"):
        data.model(get_variant("published"))
    with pytest.raises(ValueError, match="truth_variant must be"):
        synthetic_data("individual_pooled")
    with pytest.raises(ValueError, match="unknown variant"):
        compare_variants(data, ["nope"])


def test_compare_end_to_end_with_mock_fits_and_kfold(tmp_path) -> None:
    """Prior draws (mock) give high Pareto k, so the grouped K-fold path runs; a rerun reuses everything."""
    data = synthetic_data("individual_rebound", n_subjects=6, seed=2)
    comp = compare_variants(data, ["individual", "individual_rebound"], draws=20, chains=2, sampler="mock",
                            kfold=2, output=tmp_path)
    t = comp.table
    assert set(t.index) == {"individual", "individual_rebound"}
    assert comp.method == "kfold2" and len(comp.folds) == 2
    assert t["k_bad"].gt(0).all() and np.isfinite(t["elpd"]).all()
    assert t["n_points"].iloc[0] == len(data.observations)  # every observation has a pointwise term
    assert (tmp_path / "comparison.csv").exists() and (tmp_path / "individual_rebound.nc").exists()
    assert len(list(tmp_path.glob("*_fold*.json"))) == 4
    # a rerun reuses the saved fold results without refitting
    def refuse(*a, **k):
        raise AssertionError("refitted")

    data.model = refuse
    kw = {"draws": 20, "tune": 1000, "chains": 2, "seed": 1, "sampler": "mock", "progress": False}
    again = grouped_kfold(data, get_variant("individual_rebound"), comp.folds, kw, tmp_path)
    pd.testing.assert_series_equal(again, comp.results["individual_rebound"].kfold)


def test_cli_compare_list_and_bad_names() -> None:
    r = CliRunner().invoke(app, ["compare", "--list"])
    assert r.exit_code == 0 and "published_rebound" in r.output and "individual_pooled" in r.output
    r = CliRunner().invoke(app, ["compare", "--variants", "published,bogus"])
    assert r.exit_code == 1 and "bogus" in r.output
    r = CliRunner().invoke(app, ["compare", "--data", "synthetic", "--variants", "published"])
    assert r.exit_code == 1 and "not individual variants" in r.output


def test_cli_compare_runs_end_to_end_with_mock_fits(tmp_path) -> None:
    """The command itself, not only compare_variants: table printed, files written (guards its wiring)."""
    r = CliRunner().invoke(app, ["compare", "--data", "synthetic",
                                 "--variants", "individual,individual_rebound",
                                 "--n-subjects", "6", "--draws", "20", "--chains", "2", "--sampler", "mock",
                                 "--kfold", "0", "--output", str(tmp_path)])
    assert r.exit_code == 0, r.output
    assert "model comparison" in r.output and "individual_rebound" in r.output
    assert (tmp_path / "comparison.csv").is_file() and (tmp_path / "comparison.md").is_file()
