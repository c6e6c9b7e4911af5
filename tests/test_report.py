"""``bonebayes report``: configuration errors, sections, determinism, atomic writes, self-contained HTML, and
the report as a user sees it in headless Chromium.

No real MCMC here. The published report is built from a *stand-in* published fit: physiology parameters drawn
from their priors and row predictions scattered around the data (built with NumPy in a second, where a mock
fit of the published model would compile for a minute); its data hash, model configuration and settings are
the real ones, so the report reuses it exactly as it reuses ``results/fit.nc``. The individual report runs a
real mock-sampler fit of a tiny synthetic cohort.
"""

from __future__ import annotations

import os
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from _cli import invoke

from bonebayes.cli import EXIT_BAD_INPUT, EXIT_DIAGNOSTICS_FAILED, app
from bonebayes.report import (
    SECTION_IDS,
    ReportConfigError,
    build_context,
    build_report,
    config_from_text,
    load_config,
    render_html,
    shipped_config_path,
    write_html,
)

CHROMIUM = os.environ.get("BONEBAYES_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]



# --------------------------------------------------------------------------- a stand-in published fit
def standin_published_fit(path: Path, chains: int = 2, draws: int = 20, seed: int = 1) -> Path:
    """A saved 'published' fit (sampler mock) without sampling: parameters from their priors, predictions near
    the data. Its provenance matches the shipped data, the default configuration and the settings below."""
    from bonebayes import _arviz
    from bonebayes.fit import Fit
    from bonebayes.inference import package_versions
    from bonebayes.models.priors import HORMONE_MEANS, PRIORS
    from bonebayes.models.published import PublishedModel

    model = PublishedModel()
    d = model.data
    rng = np.random.default_rng(seed)
    n = (chains, draws)
    coords = {
        "site": list(d.sites),
        "hormone": list(d.hormones),
        "antiresorptive": list(d.schedule.antiresorptives),
        "anabolic": list(d.schedule.anabolics),
        "study": list(d.studies),
        "assay": list(d.assays),
        "level_group": list(d.groups),
        "pub_row": list(range(d.n_rows)),
    }
    from bonebayes.projections.engine import PARAMETER_DIMS

    dims = {**PARAMETER_DIMS, "a_level": "level_group", "pub_pred": "pub_row", "pub_sd": "pub_row"}
    post: dict[str, np.ndarray] = {}
    for name in (
        "k_C",
        "k_B",
        "k_M",
        "lam",
        "gamma",
        "e_form",
        "g_rankl",
        "g_opg",
        "emax_res",
        "ec50_res",
        "eref_ana",
        "ec50_ana",
        "kappa_ana",
        "tau_kM_study",
        "tau_drift",
        "beta_assay",
        "omega_bmd",
        "omega_marker",
        "omega_level",
        "s_bmd",
        "s_marker",
        "a_level",
    ):
        p = PRIORS[name]
        k = len(coords[dims[name]]) if name in dims else None
        if name in HORMONE_MEANS:
            post[name] = np.stack(
                [type(p)(p.dist, HORMONE_MEANS[name][h], p.b).sample(rng, n) for h in d.hormones], axis=-1
            )
        else:
            post[name] = p.sample(rng, n if k is None else (*n, k))
    post["emax_ana"] = post["eref_ana"] * (1 + post["ec50_ana"])
    post["z_kM_study"] = rng.standard_normal((*n, len(d.studies)))
    post["z_drift_study"] = rng.standard_normal((*n, len(d.studies)))
    scale = np.array([1.0, 10.0, 0.2])[d.row_class]
    sd = np.sqrt(np.where(np.isfinite(d.se), d.se, scale) ** 2 + scale**2)
    post["pub_sd"] = np.broadcast_to(sd, (*n, d.n_rows)) * rng.uniform(0.9, 1.1, (*n, 1))
    post["pub_pred"] = d.y + 0.7 * sd * rng.standard_normal((*n, d.n_rows))
    idata = _arviz.from_dict(
        posterior=post,
        coords=coords,
        dims={k: [v] for k, v in dims.items() if k in post},
        sample_stats={
            "diverging": np.zeros(n, bool),
            "energy": rng.standard_normal(n),
            "n_steps": np.full(n, 7),
        },
    )
    prov = {
        "config": model.config.model_dump(mode="json"),
        "data_hash": model.data_hash(),
        "seed": seed,
        "sampler": "mock",
        "draws": draws,
        "tune": 0,
        "chains": chains,
        "wall_time_s": None,
        "versions": package_versions(),
        "command": "tests/test_report.py (stand-in fit)",
        "created": "test",
        "model": "published",
        "population_vars": model.population_vars(),
    }
    return Fit(idata=idata, provenance=prov).save(path)


PUBLISHED_CONFIG = """
title = "test report: stand-in published fit"
output = "report.html"

[data]
kind = "published"

[fit]
path = "fit.nc"
sampler = "mock"
draws = 20
tune = 0
chains = 2
seed = 1

[checks]
seed = 3

[compare]
enabled = false
reason = "skipped in the tests: variants would need refits"

[[projections]]
scenario = "denosumab_vs_placebo"
draws = 40
seed = 1
endpoints = ["bmd"]

[[projections]]
scenario = "stopping_denosumab"
draws = 40
seed = 2
endpoints = ["ctx"]
"""


@pytest.fixture(scope="module")
def published_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with the stand-in fit, analysis.toml (paths relative to it) and a report built by the CLI."""
    d = tmp_path_factory.mktemp("report_published")
    standin_published_fit(d / "fit.nc")
    (d / "analysis.toml").write_text(PUBLISHED_CONFIG)
    # the stand-in's prior draws fail the convergence gate: written, exit code 3
    result = invoke(["report", "--config", d / "analysis.toml"], EXIT_DIAGNOSTICS_FAILED)
    (d / "cli_output.txt").write_text(result.output)
    return d


@pytest.fixture(scope="module")
def published_html(published_dir: Path) -> str:
    return (published_dir / "report.html").read_text(encoding="utf-8")


# --------------------------------------------------------------------------- HTML structure
class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: list[str] = []
        self.hrefs: list[str] = []
        self.resources: list[tuple[str, str]] = []  # (tag, url) of things a browser would load
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        self.tags.append(tag)
        if "id" in a:
            self.ids.append(a["id"])
        if tag == "a" and "href" in a:
            self.hrefs.append(a["href"])
        for key in ("src", "href", "srcset", "data", "poster"):
            if key in a and not (tag == "a" and key == "href"):
                self.resources.append((tag, a[key]))


def parse(html: str) -> _Collector:
    c = _Collector()
    c.feed(html)
    c.close()
    return c


def test_sections_toc_and_internal_links(published_html: str) -> None:
    c = parse(published_html)
    assert len(c.ids) == len(set(c.ids)), "duplicate element ids"
    for sid in SECTION_IDS:
        assert sid in c.ids, f"section #{sid} missing"
        assert f"#{sid}" in c.hrefs, f"no table-of-contents link to #{sid}"
    assert {"projection-1", "projection-2"} <= set(c.ids)
    internal = [h for h in c.hrefs if h.startswith("#")]
    assert internal and all(h[1:] in c.ids for h in internal), [h for h in internal if h[1:] not in c.ids]
    assert all(h.startswith("#") for h in c.hrefs), "only internal links expected"


def test_self_contained_no_external_resources(published_html: str) -> None:
    c = parse(published_html)
    assert "script" not in c.tags and "link" not in c.tags and "iframe" not in c.tags
    imgs = [url for tag, url in c.resources if tag == "img"]
    assert len(imgs) >= 6  # observed-vs-predicted, LOO-PIT, fans of two scenarios
    assert all(url.startswith("data:image/png;base64,") for url in imgs)
    assert not [r for r in c.resources if not r[1].startswith("data:")]
    assert not re.search(r"(?i)url\(\s*['\"]?(https?:)?//", published_html)
    assert not re.search(r"(?i)@import", published_html)


def test_section_contents(published_dir: Path, published_html: str) -> None:
    html = published_html
    # data summary: counts and the excluded rows with their reasons
    assert "rows excluded" in html and "12 excluded rows and why" in html
    assert "no time point in the source" in html
    # equations and priors (from the model's prior table, Gamma scale priors included)
    assert "dC/dt = k_C (S_R - C)" in html and "StudentT(nu, mu_j" in html
    assert "LogNormal(0, 0.5)" in html and "Gamma(2, rate" in html
    # diagnostics: the verdict, every check and a population parameter row
    for text in ("max R-hat", "min bulk ESS", "min tail ESS", "divergences", "min E-BFMI", "k_M[total_hip]"):
        assert text in html
    assert 'class="verdict fail"' in html and "Mock sampler" in html
    # predictive checks at four levels, LOO-PIT
    for col in ("coverage_50", "coverage_80", "coverage_90", "coverage_95"):
        assert f"<th>{col}</th>" in html
    assert "LOO-PIT uniformity" in html and "rows outside their central 90% interval" in html
    # comparison skipped with its reason, PSIS-LOO of the fit shown
    assert "skipped in the tests: variants would need refits" in html and "PSIS-LOO of this fit" in html
    # projections: fans and tables
    assert "denosumab vs placebo" in html and "denosumab_vs_placebo" in html and "month 36" in html
    # provenance: versions, hashes, seeds, config content
    from bonebayes.models.published import PublishedModel

    assert PublishedModel().data_hash() in html
    for pkg in ("bonebayes", "pymc", "pytensor", "arviz", "nutpie", "numpy", "xarray"):
        assert f"<td>{pkg}</td>" in html
    cfg = load_config(published_dir / "analysis.toml")
    assert cfg.sha256 in html and "reason = &#34;skipped in the tests" in html
    assert 'id="started"' in html and 'id="duration"' in html
    out = (published_dir / "cli_output.txt").read_text()
    assert "reusing the fit" in out and "Wrote" in out and "CONVERGENCE DIAGNOSTICS FAILED" in out


def _without_timing(html: str) -> str:
    return re.sub(r'<span class="timing" id="(\w+)">[^<]*</span>', r"<\1/>", html)


@pytest.fixture(scope="module")
def rebuilt(published_dir: Path) -> dict:
    """A second build of the same configuration (Python API), not yet written."""
    return build_context(load_config(published_dir / "analysis.toml"), command="bonebayes report (rebuilt)")


def test_same_config_gives_the_same_report(published_html: str, rebuilt: dict) -> None:
    """Rebuilt from the same configuration: byte-identical except the start time, the duration and the
    command line (given here explicitly; the CLI takes it from sys.argv)."""
    html2 = render_html(rebuilt)
    a, b = (_without_timing(h) for h in (published_html, html2))
    cmd = re.compile(r"<dt>command</dt><dd><code>[^<]*</code></dd>")
    assert cmd.search(a) and cmd.search(b)
    assert cmd.sub("", a) == cmd.sub("", b)
    assert rebuilt["checks"]["coverage_numbers"]["coverage_90"] > 0.5  # numbers, not just markup


def test_write_is_atomic(published_dir: Path, rebuilt: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    """If the final rename fails, the previous report stays intact and no temporary file is left."""
    import bonebayes._atomic as atomic

    target = published_dir / "atomic.html"
    target.write_text("previous report")

    def broken_replace(src: str, dst: str) -> None:
        raise OSError("disk full (simulated)")

    class _OS:  # os with a failing replace, for the atomic-write module only
        def __getattr__(self, name: str) -> object:
            return getattr(os, name)

        replace = staticmethod(broken_replace)

    monkeypatch.setattr(atomic, "os", _OS())
    with pytest.raises(OSError, match="simulated"):
        write_html(rebuilt, target)
    monkeypatch.undo()
    assert target.read_text() == "previous report"
    assert not [p.name for p in published_dir.iterdir() if p.name.endswith(".tmp")]
    html = write_html(rebuilt, target)
    assert target.read_text(encoding="utf-8") == html and html.startswith("<!DOCTYPE html>")


def test_compare_section_runs_the_configured_variants(
    published_dir: Path, rebuilt: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    """compare.enabled: the variants are passed to compare_variants with the configured settings, the
    report's own fit stands for its variant (copied into compare.output), and the table is rendered."""
    import pandas as pd

    import bonebayes.compare as compare_mod
    from bonebayes.fit import Fit
    from bonebayes.report import sections as S

    calls = {}

    def fake_compare(data, variants, **kw):  # noqa: ANN001, ANN003, ANN202
        calls.update(kw, variants=list(variants), kind=data.kind)
        table = pd.DataFrame(
            {
                "variant": list(variants),
                "method": "kfold5",
                "elpd": [-160.0, -170.5],
                "se": [14.0, 15.0],
                "elpd_diff": [0.0, 10.5],
                "se_diff": [0.0, 3.1],
                "weight": [0.9, 0.1],
                "elpd_loo": [-166.1, -171.0],
                "p_loo": [47.6, 50.2],
                "k_good": [58, 57],
                "k_ok": [11, 12],
                "k_bad": [10, 10],
                "k_max": [1.02, 1.1],
                "converged": [True, True],
                "rhat_max": [1.004, 1.006],
                "divergences": [0, 0],
                "wall_time_s": [1530.8, 1720.2],
                "description": ["the default model", "osteoclast-precursor pool"],
            }
        )
        return compare_mod.Comparison(table.set_index("variant"), {}, "kfold5", [["A"], ["B"]], data.label)

    monkeypatch.setattr(compare_mod, "compare_variants", fake_compare)
    text = (
        (published_dir / "analysis.toml")
        .read_text()
        .replace(
            '[compare]\nenabled = false\nreason = "skipped in the tests: variants would need refits"',
            '[compare]\nenabled = true\nvariants = ["published", "published_rebound"]\n'
            'kfold = 5\noutput = "cmp"',
        )
    )
    cfg = config_from_text(text, "cmp.toml", published_dir)
    inputs = S.load_inputs(cfg)
    fit = Fit.load(published_dir / "fit.nc")
    info = S.FitInfo(str(published_dir / "fit.nc"), True, "", "", 0.0)
    notes: list[str] = []
    sec = S.compare_section(cfg, inputs, fit, info, S.pointwise_loglik(inputs, fit), notes.append)
    assert calls["variants"] == ["published", "published_rebound"] and calls["kind"] == "published"
    assert {k: calls[k] for k in ("draws", "tune", "chains", "seed", "sampler", "kfold")} == {
        "draws": 20,
        "tune": 0,
        "chains": 2,
        "seed": 1,
        "sampler": "mock",
        "kfold": 5,
    }
    assert (published_dir / "cmp" / "published.nc").read_bytes() == (published_dir / "fit.nc").read_bytes()
    assert notes and "is used for published" in notes[0]
    html = render_html({**rebuilt, "comparison": sec})
    assert "Variants ranked by kfold5 elpd" in html and "published_rebound" in html
    assert "Comparison of variants skipped" not in html


# --------------------------------------------------------------------------- configuration
BAD_CONFIGS = [
    ("[fit]\ndraws = 0", "fit.draws", "greater than or equal to 1"),
    ('[fit]\nsampler = "stan"', "fit.sampler", "'nutpie'"),
    ('[fit]\npaht = "x.nc"', "fit.paht", "allowed keys: path, reuse"),
    ('colour = "blue"', "colour", "allowed keys: title, paths_relative_to, output"),
    ('[data]\nkind = "cohort"', "data.kind", "'published'"),
    ('[data]\nkind = "individual"', "data.observations", "synthetic"),
    ('[data]\nkind = "individual"\nsynthetic = { n_subjects = 1 }', "data.synthetic.n_subjects", "2"),
    ('[model]\nvariant = "individual"', "model.variant", "published_rebound"),
    (
        '[compare]\nenabled = true\nvariants = ["published", "individual"]',
        "compare.variants[1]",
        "published_pooled",
    ),
    ('[[projections]]\nscenario = "no_such_scenario"', "projections[0].scenario", "denosumab_vs_placebo"),
    (
        '[[projections]]\nscenario = "denosumab_vs_placebo"\nendpoints = ["bone"]',
        "projections[0].endpoints",
        "allowed: bmd",
    ),
    ("[[projections]]\ndraws = 10", "projections[0].scenario", "required key is missing"),
    ("[fit\ndraws = 1", "(top level)", "invalid TOML"),
]


@pytest.mark.parametrize("text, where, allowed", BAD_CONFIGS, ids=[b[1] for b in BAD_CONFIGS])
def test_bad_config_names_the_key_path(text: str, where: str, allowed: str) -> None:
    with pytest.raises(ReportConfigError) as e:
        config_from_text(text, "bad.toml")
    msg = str(e.value)
    assert msg.startswith("bad.toml: ") and f"{where}: " in msg and allowed in msg, msg


def test_bad_scenario_file_is_reported_with_its_own_key_path(tmp_path: Path) -> None:
    (tmp_path / "scn.toml").write_text(
        'name = "x"\npopulation = "postmenopausal"\ntimes_months = [0, 12]\n'
        '[arms.a]\nregimen = [ { drug = "denosumab", dose = 60, unit = "mg", '
        "every_months = -6 } ]\n"
    )
    with pytest.raises(ReportConfigError) as e:
        config_from_text('[[projections]]\nscenario = "scn.toml"', "cfg.toml", tmp_path)
    assert "projections[0].scenario" in str(e.value) and "every_months" in str(e.value)


def test_cli_config_errors(tmp_path: Path) -> None:
    r = invoke(["report", "--config", tmp_path / "missing.toml"], EXIT_BAD_INPUT)
    assert "missing.toml: (top level): file not found" in r.output
    bad = tmp_path / "bad.toml"
    bad.write_text("[fit]\nchains = 0\n")
    r = invoke(["report", "--config", bad, "--output", tmp_path / "r.html"], EXIT_BAD_INPUT)
    assert "invalid report configuration" in r.output and "fit.chains" in r.output
    assert not (tmp_path / "r.html").exists()


def test_cli_help_and_bad_data(tiny_cohort_dir: Path, tmp_path: Path) -> None:
    assert "self-contained HTML report" in invoke(["report", "--help"], 0).output
    lines = (tiny_cohort_dir / "observations.csv").read_text().splitlines()
    header = lines[0].split(",")
    row = lines[5].split(",")
    row[header.index("time_months")] = "-3"  # data row 5 = file line 6
    (tmp_path / "obs.csv").write_text("\n".join([*lines[:5], ",".join(row), *lines[6:]]) + "\n")
    (tmp_path / "a.toml").write_text(
        f'[data]\nkind = "individual"\nobservations = "obs.csv"\n'
        f'exposures = "{tiny_cohort_dir / "exposures.csv"}"\n'
    )
    r = invoke(["report", "--config", tmp_path / "a.toml", "--quiet"], EXIT_BAD_INPUT)
    assert (
        "obs.csv" in r.stderr and "row 5" in r.stderr and "line 6" in r.stderr and "time_months" in r.stderr
    )
    (tmp_path / "b.toml").write_text(
        '[data]\nkind = "individual"\nobservations = "nope.csv"\nexposures = "x.csv"\n'
    )
    r = invoke(["report", "--config", tmp_path / "b.toml", "--quiet"], EXIT_BAD_INPUT)
    assert "data file not found" in r.stderr and "nope.csv" in r.stderr
    assert not (tmp_path / "report.html").exists()


def test_shipped_example_config() -> None:
    """data/analysis.toml is package data, is the default, and describes the main job's analysis."""
    from importlib import resources

    path = shipped_config_path()
    assert path.is_file() and path == Path(str(resources.files("bonebayes") / "data" / "analysis.toml"))
    cfg = load_config()
    assert cfg.source == str(path)
    assert cfg.data.kind == "published" and cfg.model.variant == "published"
    assert cfg.paths_relative_to == "cwd" and cfg.resolve(cfg.fit.path) == Path("results/fit.nc")
    assert cfg.fit.request() == {"seed": 1, "sampler": "nutpie", "draws": 1000, "tune": 1000, "chains": 4}
    assert not cfg.compare.enabled and "K-fold" in cfg.compare.reason
    assert [p.scenario for p in cfg.projections] == [
        "denosumab_vs_placebo",
        "five_regimens_vs_placebo",
        "stopping_denosumab",
    ]
    # the same request as `bonebayes demo` (its option defaults), so the main job's fit is reused. Read from
    # the CLI, not by importing bonebayes.pipeline: test_cli swaps that module in and needs it unimported.
    import typer

    demo = typer.main.get_command(app).commands["demo"]
    defaults = {p.name: p.default for p in demo.params}
    assert {k: defaults[k] for k in ("seed", "draws", "tune", "chains")} == {
        k: v for k, v in cfg.fit.request().items() if k != "sampler"
    }
    assert str(getattr(defaults["sampler"], "value", defaults["sampler"])) == cfg.fit.sampler


def test_relative_paths_follow_the_config_file(tmp_path: Path) -> None:
    cfg = config_from_text('[fit]\npath = "fits/a.nc"', "x.toml", tmp_path)
    assert cfg.resolve(cfg.fit.path) == tmp_path / "fits" / "a.nc"
    cfg = config_from_text('paths_relative_to = "cwd"\n[fit]\npath = "fits/a.nc"', "x.toml", tmp_path)
    assert cfg.resolve(cfg.fit.path) == Path("fits/a.nc")


def test_a_fit_is_reused_only_when_it_matches(published_dir: Path) -> None:
    from bonebayes.fit import Fit
    from bonebayes.report.sections import fit_mismatch, load_inputs

    cfg = load_config(published_dir / "analysis.toml")
    inputs = load_inputs(cfg)
    fit = Fit.load(published_dir / "fit.nc")
    assert fit_mismatch(fit, inputs, cfg.fit.request()) == []
    assert "seed 1 (configured 2)" in " ".join(fit_mismatch(fit, inputs, {**cfg.fit.request(), "seed": 2}))
    other = load_inputs(config_from_text('[model]\nvariant = "published_rebound"'))
    assert any("model configuration" in w for w in fit_mismatch(fit, other, cfg.fit.request()))


# --------------------------------------------------------------------------- individual data
@pytest.fixture
def _fast_compile():
    """Mock fits and predictive draws compile large graphs once each: skip PyTensor's C compilation here."""
    import pytensor

    with pytensor.config.change_flags(mode="FAST_COMPILE"):
        yield


INDIVIDUAL_CONFIG = """
[data]
kind = "individual"
synthetic = { n_subjects = 6, n_cohorts = 2, seed = 4 }

[fit]
path = "fits/individual.nc"
sampler = "mock"
draws = 20
tune = 0
chains = 2
seed = 1

[compare]
enabled = true
variants = ["individual"]
kfold = 0
output = "compare"

[[projections]]
scenario = "denosumab_vs_placebo"
draws = 20
endpoints = ["bmd"]
allow_prior = true               # the tiny cohort has no femoral-neck BMD
"""


@pytest.mark.slow  # a mock fit plus three PyMC compilations: about a minute on 2 shared cores
@pytest.mark.filterwarnings("ignore::bonebayes.inference.DiagnosticsWarning")  # prior draws fail the gate
def test_individual_report_fits_when_no_fit_exists(tmp_path: Path, _fast_compile: None) -> None:
    """No fit at [fit] path: the model is fitted (mock sampler) and saved, and the report says so; a VPC
    replaces the observed-vs-predicted plot; the comparison reuses the report's own fit."""
    from bonebayes.report import LogProgress

    (tmp_path / "analysis.toml").write_text(INDIVIDUAL_CONFIG)
    cfg = load_config(tmp_path / "analysis.toml")
    lines: list[str] = []
    res = build_report(cfg, tmp_path / "ind.html", progress=LogProgress(lines.append))
    assert any(m.startswith("fitting: no fit at") for m in lines), lines
    assert (tmp_path / "fits" / "individual.nc").is_file() and not res.fit_reused
    html = res.html
    assert "Visual predictive check" in html and "No rows were excluded" in html
    assert "observations below the LOQ" in html and "Subjects per cohort and arm" in html
    assert "Variants ranked by loo elpd" in html and "the report&#39;s fit" in html
    assert (tmp_path / "compare" / "individual.nc").is_file()
    c = parse(html)
    assert all(h[1:] in c.ids for h in c.hrefs if h.startswith("#"))
    assert sum(1 for tag, _ in c.resources if tag == "img") >= 3


# --------------------------------------------------------------------------- in the browser
@pytest.fixture
def chromium() -> str:
    """The Chromium executable, else a skip with the reason (a failure when BONEBAYES_REQUIRE_BROWSER=1)."""
    require = os.environ.get("BONEBAYES_REQUIRE_BROWSER") == "1"
    problem = None
    if not (Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK)):
        problem = (
            f"{CHROMIUM} not found: run scripts/ensure_chromium.sh (root + apt-get) or set BONEBAYES_CHROMIUM"
        )
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            problem = "the playwright package is not installed (pip install -e '.[test]')"
    if problem:
        if require:
            pytest.fail(f"BONEBAYES_REQUIRE_BROWSER=1 but {problem}")
        pytest.skip(problem)
    return CHROMIUM


def _png_pixels(path: Path) -> np.ndarray:
    from PIL import Image  # a matplotlib dependency

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.int64)


IMAGE_CHECK_JS = """
() => Array.from(document.images).map((img) => {
  const out = {alt: img.alt, complete: img.complete, w: img.naturalWidth, h: img.naturalHeight, sd: 0};
  if (!img.complete || !img.naturalWidth) return out;
  const c = document.createElement('canvas');
  c.width = img.naturalWidth; c.height = img.naturalHeight;
  const ctx = c.getContext('2d');
  ctx.drawImage(img, 0, 0);
  const px = ctx.getImageData(0, 0, c.width, c.height).data;
  let n = 0, s = 0, s2 = 0;
  for (let i = 0; i < px.length; i += 4 * 7) {
    const v = (px[i] + px[i + 1] + px[i + 2]) / 3; n++; s += v; s2 += v * v;
  }
  out.sd = Math.sqrt(Math.max(s2 / n - (s / n) ** 2, 0));
  return out;
})
"""


def test_report_in_headless_chromium(chromium: str, published_dir: Path, tmp_path: Path) -> None:
    """As a user sees it: the page renders, every figure loads and is not blank, no network request is made,
    and the table-of-contents links scroll to their sections."""
    from playwright.sync_api import sync_playwright

    requests: list[str] = []
    errors: list[str] = []
    shot = tmp_path / "report.png"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("request", lambda r: requests.append(r.url))
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto((published_dir / "report.html").resolve().as_uri(), wait_until="load")
            page.screenshot(path=str(shot), full_page=False)
            images = page.evaluate(IMAGE_CHECK_JS)
            heights = page.evaluate("document.body.scrollHeight")
            page.click("nav.toc a[href='#diagnostics']")
            top = page.evaluate("document.getElementById('diagnostics').getBoundingClientRect().top")
            title = page.title()
        finally:
            browser.close()
    assert not errors, errors
    assert all(u.startswith(("file:", "data:")) for u in requests), [
        u for u in requests if not u.startswith(("file:", "data:"))
    ]
    assert title.startswith("test report")
    assert len(images) >= 6
    for img in images:
        assert img["complete"] and img["w"] > 100 and img["h"] > 100, img
        assert img["sd"] > 5, f"blank image: {img}"
    assert heights > 3000
    assert abs(top) < 5, "the contents link did not scroll to its section"
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pixels = _png_pixels(shot)
    assert pixels.shape == (900, 1280, 3)
    assert pixels.std() > 5 and len(np.unique(pixels.reshape(-1, 3), axis=0)) > 20, "blank screenshot"
    keep = os.environ.get("BONEBAYES_SCREENSHOT_DIR")
    if keep:  # to look at it: BONEBAYES_SCREENSHOT_DIR=/tmp/shots pytest tests/test_report.py -k chromium
        Path(keep).mkdir(parents=True, exist_ok=True)
        (Path(keep) / "report.png").write_bytes(shot.read_bytes())
