"""Sweeps on dask.distributed: spec validation, content-hash keys, the results protocol, and real LocalClusters
of two worker processes (one test kills a worker mid-task)."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

pytest.importorskip("distributed")

from bonebayes.sweep import SweepSpecError, content_key, expand, load_spec, parse_spec, run_sweep  # noqa: E402
from bonebayes.sweep import store  # noqa: E402
from bonebayes.sweep.tasks import Task, execute  # noqa: E402

TESTING = "bonebayes.sweep.testing"


@pytest.fixture(scope="module")
def cluster():
    """A real LocalCluster: two worker processes, one thread each (shared by the tests of this module)."""
    from distributed import Client, LocalCluster

    old = os.environ.get("PYTENSOR_FLAGS")
    os.environ["PYTENSOR_FLAGS"] = "cxx="  # workers inherit it: no C compilation in mock fits
    try:
        cl = LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None,
                          silence_logs=50)
        client = Client(cl)
    finally:
        if old is None:
            os.environ.pop("PYTENSOR_FLAGS")
        else:
            os.environ["PYTENSOR_FLAGS"] = old
    yield client
    client.close()
    cl.close()


def _files(results: Path) -> list[str]:
    return sorted(p.name for p in results.iterdir() if p.is_file())


# --------------------------------------------------------------------------- spec and keys
def test_spec_errors_name_the_key_path(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[sampler]\ndraws = -3\n[[fit]]\nseeds = [1, "x"]\n[fit.datasets.a]\nsynthetic = {}\n')
    with pytest.raises(SweepSpecError) as e:
        load_spec(bad)
    msg = str(e.value)
    assert "bad.toml: sampler.draws" in msg and "fit[0].seeds[1]" in msg
    with pytest.raises(SweepSpecError, match="no tasks"):
        parse_spec({})
    with pytest.raises(SweepSpecError, match=r"call\[0\].function: .*import path"):
        parse_spec({"call": [{"function": "not a path"}]})
    with pytest.raises(SweepSpecError, match=r"fit\[0\].datasets.d: .*exactly one"):
        parse_spec({"fit": [{"datasets": {"d": {}}}]})
    with pytest.raises(SweepSpecError, match=r"loso\[0\].extra: Extra inputs"):
        parse_spec({"loso": [{"extra": 1}]})
    with pytest.raises(SweepSpecError, match="not valid TOML"):
        (tmp_path / "x.toml").write_text("a = [")
        load_spec(tmp_path / "x.toml")
    spec = parse_spec({"fit": [{"variants": {"v": {"no_such_option": 1}},
                                "datasets": {"d": {"synthetic": {"n_subjects": 4, "n_cohorts": 1}}}}]}, "s.toml")
    with pytest.raises(SweepSpecError, match=r"s.toml: fit\[0\].variants.v.no_such_option"):
        expand(spec)


def test_keys_cover_model_data_settings_and_seed() -> None:
    base = {"sampler": {"sampler": "mock", "draws": 5, "tune": 0, "chains": 2},
            "fit": [{"seeds": [1, 2], "variants": {"a": {}, "b": {"random_kM": False}},
                     "datasets": {"d1": {"synthetic": {"n_subjects": 6, "n_cohorts": 2, "seed": 1}},
                                  "d2": {"synthetic": {"n_subjects": 6, "n_cohorts": 2, "seed": 2}}}}]}
    tasks = expand(parse_spec(base))
    assert len(tasks) == 8 and len({t.key for t in tasks}) == 8  # variant x dataset x seed
    again = expand(parse_spec(base))
    assert [t.key for t in again] == [t.key for t in tasks]  # deterministic
    more_draws = json.loads(json.dumps(base))
    more_draws["sampler"]["draws"] = 6
    assert not {t.key for t in expand(parse_spec(more_draws))} & {t.key for t in tasks}
    # the same data under another name is the same task (keys hash the content, not the label)
    renamed = json.loads(json.dumps(base))
    renamed["fit"][0]["datasets"] = {"other": base["fit"][0]["datasets"]["d1"]}
    assert {t.key for t in expand(parse_spec(renamed))} < {t.key for t in tasks}
    assert content_key({"a": 1, "b": 2}) == content_key({"b": 2, "a": 1})


def test_sbc_group_can_run_selected_replicates_with_their_own_seeds() -> None:
    full = expand(parse_spec({"sbc": [{"replicates": 10, "seed": 100, "kwargs": {"draws": 5}}]}))
    some = expand(parse_spec({"sbc": [{"replicates": 10, "seed": 100, "only": [7, 2, 7],
                                       "kwargs": {"draws": 5}}]}))
    assert [(t.params["replicate"], t.params["seed"]) for t in some] == [(2, 102), (7, 107)]
    assert {t.key for t in some} < {t.key for t in full}  # the same tasks as in the full group
    with pytest.raises(SweepSpecError, match=r"sbc\[0\].*only: replicate indices \[10\] are outside 0..9"):
        parse_spec({"sbc": [{"replicates": 10, "only": [10]}]})


# --------------------------------------------------------------------------- results protocol
def test_commit_is_exclusive_and_partial_files_are_ignored(tmp_path: Path) -> None:
    ok, rec = store.commit(tmp_path, "k1", {"value": 1, "files": []})
    assert ok and store.read_record(tmp_path, "k1")["value"] == 1
    ok2, rec2 = store.commit(tmp_path, "k1", {"value": 2, "files": []})
    assert not ok2 and rec2["value"] == 1  # the first commit wins; nothing is written twice
    (tmp_path / ".k2.json.abc.tmp").write_text('{"key": "k2", "status": "done", "files": []}')
    (tmp_path / "k3.json").write_text('{"key": "k3", "status": "done", "files": ["k3.nc"]}')  # data missing
    (tmp_path / "k4.json").write_text('{"key": "k4", "sta')  # truncated
    assert store.read_record(tmp_path, "k2") is None
    assert store.read_record(tmp_path, "k3") is None
    assert store.read_record(tmp_path, "k4") is None
    assert [p.name for p in store.temp_files(tmp_path)] == [".k2.json.abc.tmp"]


def test_duplicate_run_commits_once(tmp_path: Path) -> None:
    task = Task("call", "echo", {"function": f"{TESTING}:echo_task", "kwargs": {"value": 3}}, "dup")
    first = execute(task, tmp_path)
    second = execute(task, tmp_path)
    assert second["duplicate_run"] and second["finished"] == first["finished"]
    assert _files(tmp_path) == ["dup.json"] and store.attempts(tmp_path, "dup") == 1


def test_loso_task_records_held_out_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The loso kind runs checks.published.leave_one_study_out for one study (MCMC replaced by a stub)."""
    import pandas as pd

    import bonebayes.checks.published as cp

    seen = {}

    def fake(evidence, studies, out_dir, **kw):  # noqa: ANN001, ANN202
        seen.update(kw, studies=studies)
        (Path(out_dir) / f"{studies[0]}.json").write_text(json.dumps({"ok": True, "ess_bulk_min": 500.0}))
        rows = pd.DataFrame({"study": studies * 2, "row_class": ["bmd", "bmd"], "inside": [True, False],
                             "abs_error": [0.5, 1.5]})
        summ = pd.DataFrame([{"study": studies[0], "rows": 2, "inside": 1, "bmd_rows": 2,
                              "bmd_median_abs_error_pp": 1.0, "rhat_max": 1.004, "divergences": 0,
                              "wall_time_s": 1.0}])
        return rows, summ

    monkeypatch.setattr(cp, "leave_one_study_out", fake)
    spec = parse_spec({"sampler": {"sampler": "mock", "draws": 7, "tune": 3, "chains": 2},
                       "loso": [{"studies": 2, "seeds": [5]}]})
    tasks = expand(spec)
    assert [t.kind for t in tasks] == ["loso", "loso"] and tasks[0].params["study"] != tasks[1].params["study"]
    rec = execute(tasks[0], tmp_path)
    assert seen["studies"] == [tasks[0].params["study"]] and seen["draws"] == 7 and seen["seed"] == 5
    assert rec["rows"] == 2 and rec["ok"] and rec["files"] == [f"{tasks[0].key}.csv"]
    assert len(pd.read_csv(tmp_path / rec["files"][0])) == 2


def test_fit_task_saves_the_posterior(tiny_cohort_dir: Path, tmp_path: Path) -> None:
    """The fit kind in-process with the mock sampler: record, NetCDF fit with provenance, skip on rerun."""
    from bonebayes.fit import Fit

    spec = parse_spec({"sampler": {"sampler": "mock", "draws": 20, "tune": 0, "chains": 2},
                       "fit": [{"datasets": {"tiny": {"observations": str(tiny_cohort_dir / "observations.csv"),
                                                      "exposures": str(tiny_cohort_dir / "exposures.csv")}}}]})
    (task,) = expand(spec)
    rec = execute(task, tmp_path)
    assert rec["files"] == [f"{task.key}.nc"] and rec["rhat_max"] is not None and rec["attempt"] == 1
    fit = Fit.load(tmp_path / rec["files"][0])
    assert fit.provenance["data_hash"] == task.params["data_hash"] and fit.provenance["seed"] == 1
    report = run_sweep(spec, tmp_path, tasks=[task])  # finished: skipped, no cluster needed
    assert report.table["status"].tolist() == ["cached"]


# --------------------------------------------------------------------------- real LocalCluster
def _mock_spec(n: int, seconds: float = 0.2, retries: int = 2) -> dict:
    return {"retries": retries,
            "call": [{"function": f"{TESTING}:sleep_task", "calls": [{"seconds": seconds, "tag": f"t{i}"}
                                                                     for i in range(n)]}],
            "sbc": [{"function": f"{TESTING}:sbc_mock_replicate", "replicates": 3}]}


def test_local_cluster_runs_resumes_and_summarises(cluster, tmp_path: Path) -> None:
    spec = parse_spec(_mock_spec(4))
    report = run_sweep(spec, tmp_path, client=cluster)
    t = report.table
    assert len(t) == 7 and set(t["status"]) == {"done"} and report.ok
    assert t["attempts"].tolist() == [1] * 7 and t["wall_time_s"].notna().all()
    recs = [json.loads((tmp_path / f"{k}.json").read_text()) for k in t["task"]]
    assert len({r["worker"] for r in recs}) == 2  # both worker processes took tasks
    assert len({r["compiledir"] for r in recs}) == 2  # one PyTensor compile directory per worker
    assert all("worker-" in r["compiledir"] for r in recs)
    assert (tmp_path / "summary.csv").exists() and json.loads((tmp_path / "summary.json").read_text())["done"] == 7
    ranks = [r["value"]["rank"] for r in recs if r["kind"] == "sbc"]
    assert len(ranks) == 3
    # rerun: nothing recomputed; one more task: only that one runs
    again = run_sweep(spec, tmp_path, client=cluster)
    assert set(again.table["status"]) == {"cached"}
    bigger = run_sweep(parse_spec(_mock_spec(5)), tmp_path, client=cluster)
    assert bigger.table["status"].value_counts().to_dict() == {"cached": 7, "done": 1}


def test_failures_are_retried_then_reported(cluster, tmp_path: Path) -> None:
    marker = tmp_path / "flaky.count"
    spec = parse_spec({"retries": 2, "call": [
        {"function": f"{TESTING}:flaky_task", "calls": [{"marker": str(marker), "failures": 2}]},
        {"function": f"{TESTING}:fail_task", "calls": [{"message": "always"}]}]})
    report = run_sweep(spec, tmp_path / "res", client=cluster)
    t = report.table.set_index("label")
    assert t.loc["flaky_task/0", "status"] == "done" and t.loc["flaky_task/0", "attempts"] == 3
    assert t.loc["fail_task/0", "status"] == "failed" and "always" in t.loc["fail_task/0", "error"]
    assert not report.ok and report.n_failed == 1
    failed_key = t.loc["fail_task/0", "task"]
    assert not (tmp_path / "res" / f"{failed_key}.json").exists()  # a failure is not a result: rerun retries it


def test_killed_worker_task_is_retried_and_every_result_exists_once(cluster, tmp_path: Path) -> None:
    """Kill the worker process running a task mid-task: the sweep completes, each result exactly once."""
    import threading

    signal_dir = tmp_path / "signals"
    results = tmp_path / "results"
    calls = [{"seconds": 0.3, "tag": f"quick{i}"} for i in range(5)]
    calls.insert(1, {"seconds": 300.0, "tag": "victim", "signal_dir": str(signal_dir), "sleep_once": True})
    spec = parse_spec({"retries": 0, "call": [{"function": f"{TESTING}:sleep_task", "calls": calls}]})
    pids_before = set(cluster.run(os.getpid).values())
    killed = {}

    def killer() -> None:
        deadline = time.time() + 60
        while time.time() < deadline and not killed:
            started = list(signal_dir.glob("victim.*.started")) if signal_dir.exists() else []
            if started:
                pid = int(started[0].read_text())
                assert pid in pids_before
                os.kill(pid, signal.SIGKILL)
                killed["pid"] = pid
            time.sleep(0.05)

    th = threading.Thread(target=killer, daemon=True)
    th.start()
    t0 = time.time()
    report = run_sweep(spec, results, client=cluster)
    th.join(5)
    assert killed, "the victim task never started"
    assert time.time() - t0 < 150  # the victim would sleep 300 s: it was killed and its retry returned at once
    t = report.table
    assert report.ok and len(t) == 6 and set(t["status"]) == {"done"}
    victim = t[t["label"] == "sleep_task/1"].iloc[0]
    assert victim["attempts"] == 2  # started on the killed worker, finished on another
    rec = json.loads((results / f"{victim['task']}.json").read_text())
    assert rec["attempt"] == 2 and rec["value"]["pid"] != killed["pid"]
    # every result exactly once: one record per task, nothing else but the summary files
    records = [f for f in _files(results) if f.endswith(".json") and f not in ("summary.json",
                                                                               "sweep_manifest.json")]
    assert sorted(records) == sorted(f"{k}.json" for k in t["task"])
    assert not store.temp_files(results)
    # the pool recovered (the nanny restarted the worker)
    deadline = time.time() + 30
    while len(cluster.scheduler_info()["workers"]) < 2 and time.time() < deadline:
        time.sleep(0.2)
    assert len(cluster.scheduler_info()["workers"]) == 2


@pytest.mark.slow
def test_mock_fits_on_the_cluster(cluster, tmp_path: Path) -> None:
    """Fit tasks (variant x seed) with the mock sampler on two worker processes, then a resumed rerun."""
    spec = parse_spec({"sampler": {"sampler": "mock", "draws": 10, "tune": 0, "chains": 2},
                       "fit": [{"seeds": [1], "variants": {"default": {}, "pooled": {"cohort_effects": "pooled"}},
                                "datasets": {"tiny": {"synthetic": {"n_subjects": 6, "n_cohorts": 2, "seed": 3}}}}]})
    report = run_sweep(spec, tmp_path, client=cluster)
    t = report.table
    assert report.ok and len(t) == 2 and t["rhat_max"].notna().all()
    assert sorted(f for f in _files(tmp_path) if f.endswith(".nc")) == sorted(f"{k}.nc" for k in t["task"])
    assert set(run_sweep(spec, tmp_path, client=cluster).table["status"]) == {"cached"}


def test_cli_sweep_with_a_scheduler_address(cluster, tmp_path: Path) -> None:
    """`bonebayes sweep FILE --scheduler tcp://...`: table, exit codes 0 / 4 / 1, dry run."""
    from typer.testing import CliRunner

    from bonebayes.cli import EXIT_TASKS_FAILED, app

    sweep = tmp_path / "sweep.toml"
    sweep.write_text(f'name = "cli"\nretries = 0\n[[call]]\nfunction = "{TESTING}:echo_task"\n'
                     'calls = [ { value = 1 }, { value = 2 } ]\n')
    address = cluster.scheduler.address
    runner = CliRunner()
    res = runner.invoke(app, ["sweep", str(sweep), "--scheduler", address, "--results", str(tmp_path / "r")])
    assert res.exit_code == 0, res.output
    assert "2/2 tasks finished, 0 failed" in res.output and "echo_task/1" in res.output
    dry = runner.invoke(app, ["sweep", str(sweep), "--results", str(tmp_path / "r"), "--dry-run"])
    assert dry.exit_code == 0 and dry.output.count("[finished]") == 2
    sweep.write_text(sweep.read_text() + f'[[call]]\nfunction = "{TESTING}:fail_task"\n')
    res = runner.invoke(app, ["sweep", str(sweep), "--scheduler", address, "--results", str(tmp_path / "r")])
    assert res.exit_code == EXIT_TASKS_FAILED and "planned failure" in res.output
    sweep.write_text('[[call]]\nfunction = "nope"\n')
    res = runner.invoke(app, ["sweep", str(sweep)])
    assert res.exit_code == 1 and "call[0].function" in res.output
