"""One self-contained HTML report of an analysis (``bonebayes report``).

>>> from bonebayes.report import load_config, build_report
>>> result = build_report(load_config("analysis.toml"), "report.html")   # default: the shipped example
>>> result.ok, result.path

Sections: data summary, model equations and priors, convergence diagnostics, posterior predictive checks,
model comparison, treatment projections and provenance. See :mod:`bonebayes.report.config` for the TOML
configuration and ``data/analysis.toml`` for the shipped example.
"""

from bonebayes.report.config import (
    ReportConfig,
    ReportConfigError,
    config_from_text,
    load_config,
    shipped_config_path,
)
from bonebayes.report.render import (
    SECTION_IDS,
    LogProgress,
    Progress,
    ReportResult,
    build_context,
    build_report,
    render_html,
    write_html,
)

__all__ = [
    "SECTION_IDS",
    "LogProgress",
    "Progress",
    "ReportConfig",
    "ReportConfigError",
    "ReportResult",
    "build_context",
    "build_report",
    "config_from_text",
    "load_config",
    "render_html",
    "shipped_config_path",
    "write_html",
]
