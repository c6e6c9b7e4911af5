"""Build the report: load data, reuse or run the fit, compute every section, render one HTML file atomically.

The HTML is self-contained: figures are PNG ``data:`` URIs, the style sheet is inline, there is no script and
no external resource. With the same configuration (and fit) every table, number and figure is the same; only
the start time and duration in the provenance block (``class="timing"``) change between builds.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bonebayes._atomic import write_text_atomic
from bonebayes.report import sections as S
from bonebayes.report.config import ReportConfig

SECTION_IDS: tuple[str, ...] = (
    "data",
    "model",
    "diagnostics",
    "checks",
    "comparison",
    "projections",
    "provenance",
)
"""The report's top-level sections (element ids, in order)."""


class Progress:
    """Progress reporting of a report build; the default does nothing (``--quiet``).

    ``step(name)`` wraps one long step; ``note(message)`` is a line of information (e.g. why it refits).
    """

    def start(self, total: int) -> None:  # noqa: B027 - optional hook
        pass

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        yield

    def note(self, message: str) -> None:  # noqa: B027 - optional hook
        pass

    def finish(self) -> None:  # noqa: B027 - optional hook
        pass


class LogProgress(Progress):
    """Plain lines through a callable (``[3/8] diagnostics``), e.g. ``print`` or a logger."""

    def __init__(self, log: Callable[[str], None]) -> None:
        self.log, self.total, self.done = log, 0, 0

    def start(self, total: int) -> None:
        self.total = total

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        self.done += 1
        self.log(f"[{self.done}/{self.total}] {name}")
        yield

    def note(self, message: str) -> None:
        self.log(message)


@dataclass
class ReportResult:
    path: Path
    html: str
    ok: bool  # the diagnostics gate passed
    seconds: float
    fit_reused: bool
    fit_path: str = ""
    sampler: str = ""
    sections: list[str] = field(default_factory=list)
    context: dict[str, Any] = field(default_factory=dict)


def _environment() -> Any:
    import jinja2

    return jinja2.Environment(
        loader=jinja2.PackageLoader("bonebayes.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=False,
        lstrip_blocks=False,
        keep_trailing_newline=True,
    )


def render_html(context: dict[str, Any]) -> str:
    """The report HTML for a context built by :func:`build_context`."""
    return _environment().get_template("report.html.j2").render(**context)


def build_context(
    cfg: ReportConfig, *, command: str = "", progress: Progress | None = None, sampler_progress: bool = False
) -> dict[str, Any]:
    """Compute every section (long: may fit a model); returns the template context."""
    pr = progress or Progress()
    t0 = time.perf_counter()
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    pr.start(6 + len(cfg.projections))
    with pr.step("loading and validating the data"):
        inputs = S.load_inputs(cfg)
    with pr.step("fit: reusing a matching fit or fitting"):
        fit, fit_info = S.obtain_fit(cfg, inputs, pr.note, progress=sampler_progress)
    with pr.step("model, priors and convergence diagnostics"):
        data = S.data_section(inputs)
        model = S.model_section(inputs, fit)
        diagnostics = S.diagnostics_section(fit)
    with pr.step("posterior predictive checks (coverage, LOO-PIT, figures)"):
        ll = S.pointwise_loglik(inputs, fit)
        checks = S.checks_section(inputs, fit, cfg, ll)
    with pr.step("model comparison" if cfg.compare.enabled else "PSIS-LOO (variant comparison skipped)"):
        comparison = S.compare_section(cfg, inputs, fit, fit_info, ll, pr.note)
    projections = []
    for i, p in enumerate(cfg.projections):
        with pr.step(f"projection {i + 1}/{len(cfg.projections)}: {p.scenario}"):
            projections.append(S.projection_section(cfg, i, fit))
    seconds = time.perf_counter() - t0
    provenance = S.provenance_section(cfg, inputs, fit, fit_info, command, started, seconds)
    title = cfg.title or f"bonebayes report: {inputs.label}, model {inputs.variant}"
    return {
        "title": title,
        "generator": f"bonebayes {provenance_version(provenance)}",
        "data": data,
        "model": model,
        "diagnostics": diagnostics,
        "checks": checks,
        "comparison": comparison,
        "projections": projections,
        "provenance": provenance,
        "_fit_info": fit_info,
        "_t0": t0,
        "_sampler": str(fit.provenance.get("sampler", "")),
    }


def provenance_version(prov: dict[str, Any]) -> str:
    rows = prov["versions"].rows
    return next((r[1] for r in rows if r[0] == "bonebayes"), "")


def write_html(context: dict[str, Any], path: str | Path) -> str:
    """Render the context and write it atomically to ``path`` (the duration counts up to now); the HTML."""
    context["provenance"]["seconds"] = time.perf_counter() - context["_t0"]
    html = render_html(context)
    write_text_atomic(html, path)
    return html


def build_report(
    cfg: ReportConfig,
    output: str | Path | None = None,
    *,
    command: str = "",
    progress: Progress | None = None,
    sampler_progress: bool = False,
) -> ReportResult:
    """Build the report of ``cfg`` and write it atomically to ``output`` (default: the config's output)."""
    pr = progress or Progress()
    path = Path(output) if output is not None else cfg.resolve(cfg.output)
    ctx = build_context(cfg, command=command, progress=pr, sampler_progress=sampler_progress)
    with pr.step("rendering and writing the HTML"):
        html = write_html(ctx, path)
    pr.finish()
    info = ctx["_fit_info"]
    return ReportResult(
        path,
        html,
        bool(ctx["diagnostics"]["ok"]),
        ctx["provenance"]["seconds"],
        info.reused,
        info.path,
        ctx["_sampler"],
        list(SECTION_IDS),
        ctx,
    )
