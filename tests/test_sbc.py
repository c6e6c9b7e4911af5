"""Simulation-based calibration: ranks, uniformity tests, a resumable mock run, the sweep entry point, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from bonebayes.checks import sbc as sbc_mod
from bonebayes.checks.sbc import rank_of, rank_uniformity, run_sbc, summarise_sbc
from bonebayes.cli import app


@pytest.fixture(autouse=True, scope="module")
def _fast_compile():
    """Mock fits and predictive draws compile large graphs once each: skip PyTensor's C compilation here."""
    import pytensor

    with pytensor.config.change_flags(mode="FAST_COMPILE"):
        yield


def test_rank_of_counts_thinned_draws_below_the_truth() -> None:
    draws = np.arange(1000, dtype=float)
    assert rank_of(-1.0, draws, 99) == 0
    assert rank_of(1e9, draws, 99) == 99
    assert rank_of(500.0, draws, 99) in (49, 50)


def test_uniformity_tests_accept_uniform_and_reject_peaked_ranks() -> None:
    rng = np.random.default_rng(0)
    uni = rank_uniformity(rng.integers(0, 100, 400), 99)
    assert uni["chi2_pvalue"] > 0.01 and uni["ks_pvalue"] > 0.01 and uni["bins"] == 20
    peaked = rank_uniformity(np.clip(rng.normal(50, 8, 400).round(), 0, 99), 99)  # posterior too wide
    assert peaked["chi2_pvalue"] < 1e-6 and peaked["ks_pvalue"] < 1e-6
    biased = rank_uniformity(rng.integers(0, 40, 400), 99)  # posterior biased upwards
    assert biased["chi2_pvalue"] < 1e-6 and biased["mean_normalised_rank"] < 0.3


def test_summarise_builds_ranks_table_and_figure() -> None:
    rng = np.random.default_rng(1)
    recs = [{"replicate": i, "seed": i, "ranks": {"a": int(rng.integers(0, 20)), "b[x]": int(rng.integers(0, 20))},
             "wall_time_s": 1.0, "rhat_max": 1.0, "ess_bulk_min": 100.0, "divergences": 0} for i in range(30)]
    res = summarise_sbc(recs, 19)
    assert res.ranks.dims == ("replicate", "parameter") and res.ranks.shape == (30, 2)
    assert list(res.table.index) == ["a", "b[x]"] and res.wall_time_s == 30.0
    assert res.figure is not None


def test_mock_sbc_run_is_resumable(tmp_path, monkeypatch) -> None:
    res = run_sbc("individual", 2, draws=10, chains=2, sampler="mock", rank_draws=19, n_subjects=4,
                  output=tmp_path)
    assert res.ranks.sizes["replicate"] == 2
    assert {"k_C", "k_M[lumbar_spine]", "tau_kM"} <= set(res.table.index)
    assert res.ranks.min() >= 0 and res.ranks.max() <= 19
    for name in ("ranks.csv", "uniformity.csv", "replicates.csv", "rank_histograms.png"):
        assert (tmp_path / name).exists()
    rec = json.loads((tmp_path / "replicates" / "rep_00001.json").read_text())
    assert rec["request"]["variant"] == "individual" and rec["seed"] == 1

    def refuse(*a, **k):  # finished replicates must not be refitted
        raise AssertionError("replicate refitted")

    monkeypatch.setattr(sbc_mod, "replicate_record", refuse)
    again = run_sbc("individual", 2, draws=10, chains=2, sampler="mock", rank_draws=19, n_subjects=4,
                    output=tmp_path)
    np.testing.assert_array_equal(again.ranks.values, res.ranks.values)
    with pytest.raises(AssertionError, match="refitted"):  # a changed request is not reused
        run_sbc("individual", 2, draws=10, chains=2, sampler="mock", rank_draws=9, n_subjects=4,
                output=tmp_path)


def test_sweep_entry_point_and_summary(tmp_path, monkeypatch) -> None:
    from bonebayes import sbc

    calls = []
    monkeypatch.setattr(sbc, "workspace", lambda model, n_subjects, n_cohorts, seed: "WS")

    def fake(ws, replicate, seed, **kw):
        assert ws == "WS"
        calls.append((replicate, seed, kw["rank_draws"]))
        return {"replicate": replicate, "seed": seed, "ranks": {"k_C": replicate}, "truth": {}, "rank_draws": 9,
                "wall_time_s": 2.0, "rhat_max": 1.0, "ess_bulk_min": 50.0, "divergences": 0, "ok": True}

    monkeypatch.setattr(sbc, "replicate_record", fake)
    rec = sbc.run_replicate(replicate=3, seed=7, model="individual", rank_draws=9)
    assert calls == [(3, 7, 9)] and rec["model"] == "individual"
    for i in range(3):
        (tmp_path / f"k{i}.json").write_text(json.dumps({"value": {**rec, "replicate": i}}))
    (tmp_path / "summary.json").write_text("{}")
    res = sbc.summarise_sweep(tmp_path)
    assert res.ranks.sizes["replicate"] == 3 and res.rank_draws == 9
    with pytest.raises(ValueError, match="no SBC replicate records"):
        sbc.summarise_sweep(tmp_path / "empty")


def test_summary_screens_unconverged_replicates() -> None:
    rng = np.random.default_rng(2)
    recs = [{"replicate": i, "seed": i, "ranks": {"a": int(rng.integers(0, 20))}, "wall_time_s": 1.0,
             "rhat_max": 1.2 if i % 3 == 0 else 1.01, "ess_bulk_min": 100.0, "divergences": 0,
             "rhat_worst": {"a": 1.2}} for i in range(30)]
    res = summarise_sbc(recs, 19, screen_rhat=1.05)
    assert res.table.loc["a", "replicates"] == 30 and res.table.loc["a", "replicates_screened"] == 20
    assert res.table.attrs["screen_rhat"] == 1.05
    assert res.replicate_info["rhat_worst"].iloc[0] == "a"


def test_later_sweep_folders_replace_records_of_the_same_replicate(tmp_path) -> None:
    from bonebayes import sbc

    base = {"ranks": {"k_C": 1}, "truth": {"k_C": 0.5}, "rank_draws": 9, "wall_time_s": 2.0, "rhat_max": 1.3,
            "ess_bulk_min": 5.0, "divergences": 0, "ok": False, "model": "individual"}
    short, long = tmp_path / "short", tmp_path / "long"
    short.mkdir(), long.mkdir()
    for i in range(4):
        (short / f"s{i}.json").write_text(json.dumps({"value": {**base, "replicate": i, "seed": i}}))
    better = {**base, "replicate": 2, "seed": 2, "ranks": {"k_C": 8}, "rhat_max": 1.004,
              "ess_bulk_min": 400.0}
    (long / "l2.json").write_text(json.dumps({"value": better}))
    res = sbc.summarise_sweep([short, long])
    assert res.ranks.sizes["replicate"] == 4
    assert int(res.ranks.sel(replicate=2, parameter="k_C")) == 8
    assert int(res.ranks.sel(replicate=1, parameter="k_C")) == 1
    assert res.replicate_info.set_index("replicate").loc[2, "rhat_max"] == 1.004
    assert res.table.loc["k_C", "replicates_screened"] == 1
    (long / "l3.json").write_text(json.dumps({"value": {**base, "replicate": 3, "seed": 99}}))
    with pytest.raises(ValueError, match="replicate 3 .*does not refit the simulated data"):
        sbc.summarise_sweep([short, long])
    (long / "l3.json").write_text(json.dumps({"value": {**base, "replicate": 3, "seed": 3,
                                                          "truth": {"k_C": 0.7}}}))
    with pytest.raises(ValueError, match="does not refit"):
        sbc.summarise_sweep([short, long])


def test_cli_sbc_bad_input() -> None:
    r = CliRunner().invoke(app, ["sbc", "--model", "nope", "--replicates", "2"])
    assert r.exit_code == 1 and "unknown variant" in r.output
    r = CliRunner().invoke(app, ["sbc", "--model", "individual", "--draws", "10", "--chains", "2",
                                 "--rank-draws", "50"])
    assert r.exit_code == 1 and "exceeds draws x chains" in r.output
    r = CliRunner().invoke(app, ["sbc", "--model", "individual", "--replicates", "0"])
    assert r.exit_code == 1


def test_cli_sbc_summarises_a_sweep(tmp_path) -> None:
    rec = {"replicate": 0, "seed": 1, "ranks": {"k_C": 3, "tau_kM": 7}, "truth": {}, "rank_draws": 9,
           "wall_time_s": 2.0, "rhat_max": 1.004, "ess_bulk_min": 150.0, "divergences": 0, "ok": True,
           "model": "individual"}
    for i in range(12):
        (tmp_path / f"t{i}.json").write_text(json.dumps({"value": {**rec, "replicate": i, "seed": i}}))
    r = CliRunner().invoke(app, ["sbc", "--model", "individual", "--from-sweep", str(tmp_path),
                                 "--output", str(tmp_path / "out")])
    assert r.exit_code == 0, r.output
    assert "12/12 with R-hat <= 1.01" in r.output and "tau_kM" in r.output
    assert "screened (the 12 replicates with R-hat <= 1.05)" in r.output
    assert (tmp_path / "out" / "uniformity.csv").exists()
    r = CliRunner().invoke(app, ["sbc", "--model", "individual_rebound", "--from-sweep", str(tmp_path)])
    assert r.exit_code == 1 and "no SBC replicate records" in r.output
