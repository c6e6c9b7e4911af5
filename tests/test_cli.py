"""Tests for the command-line interface (``bonebayes ...``). Mock sampler only: no real MCMC here."""

from __future__ import annotations

import csv
import json
import sys
import types
from pathlib import Path

import pytest

from _cli import invoke

from bonebayes.cli import EXIT_BAD_INPUT, EXIT_DIAGNOSTICS_FAILED, SAMPLER_NAMES

COMMANDS = ("simulate", "fit", "diagnose", "summary", "demo")
MOCK = ["--sampler", "mock", "--draws", "20", "--tune", "0", "--chains", "2", "--no-progress"]



def fit_args(cohort: Path, out: Path, observations: Path | None = None) -> list[str]:
    return ["fit", "--observations", observations or cohort / "observations.csv",
            "--exposures", cohort / "exposures.csv", "--out", out, *MOCK]


@pytest.fixture(scope="module")
def mock_fit(tiny_cohort_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """One mock fit through the CLI: (path of the saved fit, CLI output)."""
    out = tmp_path_factory.mktemp("cli_fit") / "fit.nc"
    result = invoke(fit_args(tiny_cohort_dir, out), EXIT_DIAGNOSTICS_FAILED)  # prior draws fail the gate
    return out, result.output


# --------------------------------------------------------------------------- help
@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_help_works(command: str | None) -> None:
    result = invoke([command, "--help"] if command else ["--help"], 0)
    assert "Usage" in result.output
    if command is None:
        for c in COMMANDS:
            assert c in result.output


def test_sampler_names_match_the_inference_module() -> None:
    from bonebayes.inference import SAMPLERS

    assert tuple(SAMPLER_NAMES) == tuple(SAMPLERS)


# --------------------------------------------------------------------------- simulate
def test_simulate_writes_the_four_files(tmp_path: Path) -> None:
    out = tmp_path / "synth"
    invoke(["simulate", "--out", out, "--n-subjects", "6", "--n-cohorts", "2", "--seed", "5"], 0)
    for name in ("observations.csv", "exposures.csv", "truth.json", "subject_effects.csv"):
        assert (out / name).is_file(), name
    truth = json.loads((out / "truth.json").read_text())
    assert {"k_C", "k_B", "k_M", "mu_level", "cohort_effects"} <= set(truth)
    assert isinstance(truth["k_M"], list)
    with open(out / "subject_effects.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 6 and rows[0]["subject"] == "S0001" and "kM_multiplier" in rows[0]
    # what it wrote loads and validates
    from bonebayes.datasets.io import load_cohort

    obs, exp = load_cohort(out / "observations.csv", out / "exposures.csv")
    assert obs["subject"].nunique() == 6 and len(exp) >= 6


def test_simulate_is_reproducible(tmp_path: Path) -> None:
    for d in ("a", "b"):
        invoke(["simulate", "--out", tmp_path / d, "--n-subjects", "3", "--n-cohorts", "1"], 0)
    assert (tmp_path / "a/observations.csv").read_bytes() == (tmp_path / "b/observations.csv").read_bytes()


def test_simulate_rejects_bad_value(tmp_path: Path) -> None:
    invoke(["simulate", "--out", tmp_path, "--n-subjects", "0"], EXIT_BAD_INPUT)


# --------------------------------------------------------------------------- fit / summary / diagnose
def test_fit_saves_then_reports_failed_gate(mock_fit: tuple[Path, str]) -> None:
    path, output = mock_fit
    assert path.is_file()  # saved although the diagnostics gate failed (exit 3)
    assert "diagnostics FAIL" in output
    assert "CONVERGENCE DIAGNOSTICS FAILED" in output
    from bonebayes.fit import Fit

    fit = Fit.load(path)
    assert fit.provenance["sampler"] == "mock" and fit.provenance["seed"] == 1
    assert fit.idata.posterior.sizes["chain"] == 2 and fit.idata.posterior.sizes["draw"] == 20


def test_no_temporary_files_left(mock_fit: tuple[Path, str]) -> None:
    path, _ = mock_fit
    assert [p.name for p in path.parent.iterdir()] == [path.name]


def test_diagnose_reads_the_fit(mock_fit: tuple[Path, str]) -> None:
    path, _ = mock_fit
    result = invoke(["diagnose", path], EXIT_DIAGNOSTICS_FAILED)
    assert "diagnostics FAIL" in result.output and "R-hat" in result.output
    result = invoke(["diagnose", path, "--format", "json", "--per-parameter"], EXIT_DIAGNOSTICS_FAILED)
    payload = json.loads(result.stdout)
    assert payload["ok"] is False and payload["n_chains"] == 2
    assert "k_C" in payload["per_parameter"]


@pytest.mark.parametrize("fmt", ["table", "csv", "json"])
def test_summary_formats(mock_fit: tuple[Path, str], fmt: str) -> None:
    path, _ = mock_fit
    result = invoke(["summary", path, "--hdi", "0.8", "--format", fmt], 0)
    text = result.stdout
    if fmt == "csv":
        rows = list(csv.DictReader(text.splitlines()))
        params = [r["parameter"] for r in rows]
        assert "hdi_10%" in rows[0] and "hdi_90%" in rows[0]
    elif fmt == "json":
        rows = json.loads(text)
        params = [r["parameter"] for r in rows]
        assert {"mean", "sd", "r_hat"} <= set(rows[0])
    else:
        params = [p for p in ("k_C", "k_B", "tau_kM") if p in text]
    assert {"k_C", "k_B"} <= set(params)
    assert not any(p.startswith(("a_", "z_")) for p in params)  # population parameters only


def test_summary_var_selection_and_errors(mock_fit: tuple[Path, str], tmp_path: Path) -> None:
    path, _ = mock_fit
    rows = list(csv.DictReader(invoke(["summary", path, "--var", "k_C", "--format", "csv"], 0)
                               .stdout.splitlines()))
    assert [r["parameter"] for r in rows] == ["k_C"]
    result = invoke(["summary", path, "--var", "no_such_parameter"], EXIT_BAD_INPUT)
    assert "no_such_parameter" in result.output
    result = invoke(["summary", path, "--hdi", "1.5"], EXIT_BAD_INPUT)
    assert "--hdi" in result.output
    result = invoke(["summary", tmp_path / "missing.nc"], EXIT_BAD_INPUT)
    assert "not found" in result.output
    not_a_fit = tmp_path / "junk.nc"
    not_a_fit.write_text("hello")
    result = invoke(["diagnose", not_a_fit], EXIT_BAD_INPUT)
    assert "junk.nc" in result.output


def test_fit_rejects_malformed_observations(tiny_cohort_dir: Path, tmp_path: Path) -> None:
    with open(tiny_cohort_dir / "observations.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    rows[4]["time_months"] = "-3"  # data row 5 = file line 6
    bad = tmp_path / "bad_observations.csv"
    with open(bad, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    out = tmp_path / "fit.nc"
    result = invoke(fit_args(tiny_cohort_dir, out, observations=bad), EXIT_BAD_INPUT)
    assert "bad_observations.csv" in result.stderr
    assert "row 5" in result.stderr and "line 6" in result.stderr
    assert "time_months" in result.stderr and "negative time" in result.stderr
    assert not out.exists()


def test_fit_missing_file_and_bad_option(tiny_cohort_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "fit.nc"
    result = invoke(fit_args(tiny_cohort_dir, out, observations=tmp_path / "nope.csv"), EXIT_BAD_INPUT)
    assert "nope.csv" in result.stderr and "not found" in result.stderr
    args = fit_args(tiny_cohort_dir, out)
    args[args.index("mock")] = "bogus"
    invoke(args, EXIT_BAD_INPUT)
    args = fit_args(tiny_cohort_dir, out)
    args[args.index("--draws") + 1] = "0"
    invoke(args, EXIT_BAD_INPUT)
    assert not out.exists()


def test_fit_refuses_to_overwrite_without_force(tiny_cohort_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "fit.nc"
    out.write_text("precious")
    result = invoke(fit_args(tiny_cohort_dir, out), EXIT_BAD_INPUT)
    assert "already exists" in result.stderr and "--force" in result.stderr
    assert out.read_text() == "precious"


def test_fit_force_replaces(tiny_cohort_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "fit.nc"
    out.write_text("old")
    invoke([*fit_args(tiny_cohort_dir, out), "--force", "--seed", "7"], EXIT_DIAGNOSTICS_FAILED)
    from bonebayes.fit import Fit

    assert Fit.load(out).provenance["seed"] == 7


# --------------------------------------------------------------------------- demo (pipeline stubbed)
@pytest.fixture
def fake_pipeline(monkeypatch: pytest.MonkeyPatch) -> dict:
    calls: dict = {}

    def run_main_job(out_dir, **kwargs):  # noqa: ANN001, ANN202
        kwargs.pop("log", None)
        out_dir = Path(out_dir)
        if out_dir.exists() and any(out_dir.iterdir()) and not kwargs["force"]:
            raise FileExistsError(f"{out_dir} already holds results")
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "summary.csv").write_text("parameter,mean\n")
        calls.update(out_dir=out_dir, **kwargs)
        return {"ok": True}

    module = types.ModuleType("bonebayes.pipeline")
    module.run_main_job = run_main_job
    module.run_synthetic_job = lambda out_dir, **kw: run_main_job(out_dir, synthetic=True, **kw)
    monkeypatch.setitem(sys.modules, "bonebayes.pipeline", module)
    return calls


def test_demo_calls_the_pipeline(fake_pipeline: dict, tmp_path: Path) -> None:
    out = tmp_path / "results"
    result = invoke(["demo", "--out", out, "--draws", "30", "--tune", "40", "--chains", "2", "--seed", "9",
                     "--sampler", "mock", "--no-progress", "--loso", "3", "--loso-draws", "20"], 0)
    assert fake_pipeline == {"out_dir": out, "draws": 30, "tune": 40, "chains": 2, "loso": 3, "loso_draws": 20,
                             "seed": 9, "sampler": "mock", "progress": False, "force": False}
    assert "summary.csv" in result.stdout and "Results written to" in result.stdout
    result = invoke(["demo", "--out", out, "--sampler", "mock"], EXIT_BAD_INPUT)
    assert "--force" in result.stderr
    invoke(["demo", "--out", out, "--sampler", "mock", "--force"], 0)
    fake_pipeline.clear()
    invoke(["demo", "--out", tmp_path / "syn", "--synthetic", "--n-subjects", "10", "--sampler", "mock"], 0)
    assert fake_pipeline["synthetic"] is True and fake_pipeline["n_subjects"] == 10


def test_demo_reports_failed_gate(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    module = types.ModuleType("bonebayes.pipeline")
    module.run_main_job = lambda out_dir, **kw: {"verdict": {"ok": False}}
    module.run_synthetic_job = module.run_main_job
    monkeypatch.setitem(sys.modules, "bonebayes.pipeline", module)
    result = invoke(["demo", "--out", tmp_path / "r", "--sampler", "mock"], EXIT_DIAGNOSTICS_FAILED)
    assert "CONVERGENCE DIAGNOSTICS FAILED" in result.stderr


def test_demo_runs_the_real_pipeline_with_mock_sampler(tmp_path: Path) -> None:
    pytest.importorskip("bonebayes.pipeline")
    out = tmp_path / "results"
    result = invoke(["demo", "--out", out, "--synthetic", "--n-subjects", "12", *MOCK], EXIT_DIAGNOSTICS_FAILED)
    assert "Results written to" in result.stdout and "Diagnostics" in result.stdout
    assert (out / "fit.nc").is_file()
