"""The tutorial notebooks (notebooks/*.ipynb): committed without outputs, in sync with their generator, and
each one executes from top to bottom (a few minutes in all, so `slow`).

Each notebook reads its sampler and sampling size from environment variables (``BONEBAYES_NB_SAMPLER``,
``BONEBAYES_NB_DRAWS`` etc., see notebooks/README.md). The settings below use the mock sampler (prior draws
dressed as a posterior): these tests check that every cell runs, not inference, which the slow tests of the
models check with real MCMC (test_recovery_slow, test_published_slow, test_sbc_slow). With real MCMC at these
sizes the four notebooks took 1,227 s on a cold 2-core machine (CI: 1,222 s), mostly compilation; with the
mock sampler 328 s (warm PyTensor cache). The notebooks run in one temporary working directory, in order,
so that notebook 03 reuses the published fit that notebook 02 saved (``outputs/published_fit.nc``; same data and settings).
Wall times are printed and written to ``<pytest basetemp>/notebook_times.json`` (and to
``$BONEBAYES_NB_TIMES`` when set).
"""

from __future__ import annotations

import importlib.util
import json
import os
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NB_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(p.name for p in NB_DIR.glob("*.ipynb"))
EXPECTED = ["01_quickstart.ipynb", "02_published_evidence.ipynb", "03_treatment_projections.ipynb",
            "04_model_comparison_and_sbc.ipynb"]
CELL_TIMEOUT_S = 1500  # one cell (a fit) on a loaded 2-core CI machine

# Test-suite settings per notebook (02 and 03 must agree, so that 03 reuses 02's fit).
MOCK = {"BONEBAYES_NB_SAMPLER": "mock"}
PUBLISHED = {**MOCK, "BONEBAYES_NB_DRAWS": "50", "BONEBAYES_NB_TUNE": "50", "BONEBAYES_NB_CHAINS": "2"}
SETTINGS: dict[str, dict[str, str]] = {
    "01_quickstart.ipynb": {**MOCK, "BONEBAYES_NB_DRAWS": "50", "BONEBAYES_NB_TUNE": "50",
                            "BONEBAYES_NB_CHAINS": "2", "BONEBAYES_NB_SUBJECTS": "12"},
    "02_published_evidence.ipynb": PUBLISHED,
    "03_treatment_projections.ipynb": PUBLISHED,
    "04_model_comparison_and_sbc.ipynb": {
        **MOCK, "BONEBAYES_NB_DRAWS": "30", "BONEBAYES_NB_TUNE": "30", "BONEBAYES_NB_CHAINS": "2",
        "BONEBAYES_NB_SUBJECTS": "10", "BONEBAYES_NB_KFOLD": "0", "BONEBAYES_NB_SBC_REPLICATES": "2",
        "BONEBAYES_NB_SBC_SUBJECTS": "8",
    },
}
ALL_VARIABLES = sorted({k for s in SETTINGS.values() for k in s} | {"BONEBAYES_NB_FIT", "BONEBAYES_NB_REBOUND_FIT"})


def _read(name: str):  # noqa: ANN202
    import nbformat

    return nbformat.read(NB_DIR / name, as_version=4)


# --------------------------------------------------------------------------- fast checks
def test_the_four_tutorials_exist() -> None:
    assert NOTEBOOKS == EXPECTED
    assert set(SETTINGS) == set(EXPECTED)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_committed_notebook_has_no_outputs(name: str) -> None:
    nb = _read(name)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, f"{name} has no code cells"
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{name}: cell {i} has outputs (commit notebooks stripped)"
            assert cell.execution_count is None, f"{name}: cell {i} has an execution count"
    assert nb.metadata["kernelspec"]["name"] == "python3"


def test_notebooks_match_their_generator() -> None:
    spec = importlib.util.spec_from_file_location("build_notebooks", NB_DIR / "build_notebooks.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert list(mod.NOTEBOOKS) == EXPECTED
    for name in EXPECTED:
        assert (NB_DIR / name).read_text() == mod.render(name), (
            f"{name} differs from notebooks/build_notebooks.py: edit the generator and run it")


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_documents_its_parameters(name: str) -> None:
    """Every environment variable the test sets is read in the notebook's parameter cell and documented."""
    nb = _read(name)
    text = "\n".join(c.source for c in nb.cells)
    params = next(c.source for c in nb.cells if c.cell_type == "code" and "BONEBAYES_NB_DRAWS" in c.source)
    for var in SETTINGS[name]:
        assert f'os.environ.get("{var}"' in params, f"{name}: {var} is not read in the parameter cell"
        assert f"`{var}`" in text, f"{name}: {var} is not documented in a markdown cell"
    readme = (NB_DIR / "README.md").read_text()
    assert name in readme, f"notebooks/README.md does not list {name}"


# --------------------------------------------------------------------------- execution
@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("notebooks_run")


@pytest.fixture(scope="module")
def times_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.getbasetemp() / "notebook_times.json"


def _record_time(path: Path, name: str, seconds: float) -> dict[str, float]:
    times = json.loads(path.read_text()) if path.exists() else {}
    times[name] = round(seconds, 1)
    text = json.dumps(times, indent=1, sort_keys=True)
    path.write_text(text)
    extra = os.environ.get("BONEBAYES_NB_TIMES")
    if extra:
        Path(extra).write_text(text)
    return times


@pytest.mark.slow
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_executes(name: str, workdir: Path, times_file: Path, monkeypatch: pytest.MonkeyPatch,
                           capsys: pytest.CaptureFixture[str]) -> None:
    import nbformat
    from nbclient import NotebookClient

    for var in ALL_VARIABLES:  # nothing from the caller's environment (e.g. an existing fit) leaks in
        monkeypatch.delenv(var, raising=False)
    for var, value in SETTINGS[name].items():
        monkeypatch.setenv(var, value)
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the notebooks select the inline backend themselves
    nb = _read(name)
    client = NotebookClient(nb, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                            resources={"metadata": {"path": str(workdir)}})
    start = time.perf_counter()
    client.execute()  # raises CellExecutionError (with the traceback) if any cell fails
    seconds = time.perf_counter() - start
    nbformat.write(nb, workdir / name)  # the executed copy, for inspection
    times = _record_time(times_file, name, seconds)
    with capsys.disabled():
        print(f"\n{name}: executed in {seconds:.0f} s (all so far: {times}; {times_file})")

    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in code), f"{name}: not every code cell ran"
    outputs = [o for c in code for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"], f"{name}: a cell produced an error output"
    images = [o for o in outputs if o.output_type in ("display_data", "execute_result")
              and "image/png" in o.get("data", {})]
    assert images, f"{name}: no inline image was produced"
