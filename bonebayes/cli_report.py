"""``bonebayes report``: one self-contained HTML report of an analysis (registered on the main app by
:mod:`bonebayes.cli`). Heavy modules are imported inside the command."""

from __future__ import annotations

import shlex
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from bonebayes.cli import (
    EXIT_DIAGNOSTICS_FAILED,
    _check_writable,
    _fail,
    _fail_validation,
    _gate_failed_warning,
    _quiet_diagnostics_warning,
    app,
    err,
    out,
)


def _command_line() -> str:
    """The command as typed (program name without its folder), quoted so it can be pasted back."""
    argv = list(sys.argv) or ["bonebayes"]
    argv[0] = Path(argv[0]).name or "bonebayes"
    return " ".join(shlex.quote(a) for a in argv)


def _rich_progress() -> Any:
    """Report progress on stderr: a bar with the current step and elapsed time on a terminal, plain lines
    otherwise (logs, CI)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    from bonebayes.report import LogProgress
    from bonebayes.report import Progress as Base

    if not err.is_terminal:
        return LogProgress(lambda m: err.print(escape(m), soft_wrap=True))

    class RichProgress(Base):
        def __init__(self) -> None:
            self.bar = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=err,
                transient=False,
            )
            self.task: Any = None

        def start(self, total: int) -> None:
            self.bar.start()
            self.task = self.bar.add_task("report", total=total)

        @contextmanager
        def step(self, name: str) -> Iterator[None]:
            t = time.perf_counter()
            self.bar.update(self.task, description=escape(name))
            yield
            self.bar.advance(self.task)
            self.bar.console.print(
                f"[green]done[/] {escape(name)} ({time.perf_counter() - t:.1f} s)", soft_wrap=True
            )

        def note(self, message: str) -> None:
            self.bar.console.print(escape(message), soft_wrap=True)

        def finish(self) -> None:
            self.bar.stop()

    return RichProgress()


@app.command()
def report(
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="Report configuration (TOML): data, model variant, fit (reused when it matches), checks, "
            "comparison and projections. Default: the shipped example data/analysis.toml (the main "
            "job's analysis).",
            show_default=False,
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            help="HTML file to write (atomically; replaced if it exists). Default: the configuration's "
            "`output` key.",
            show_default=False,
        ),
    ] = None,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress output (errors still print).")
    ] = False,
) -> None:
    """Build one self-contained HTML report: data summary, model equations and priors, convergence
    diagnostics, posterior predictive checks, model comparison, treatment projections and provenance.

    Figures are embedded (PNG data URIs); the file needs no network and no other file. A fit at the
    configuration's [fit] path is reused when its data hash, model configuration and sampler settings match;
    otherwise the model is fitted (real MCMC; can take many minutes) and saved there, and the command says so.
    The same configuration gives the same numbers and figures.

    Exit codes: 0 written; 1 bad input (the message names the configuration file and the TOML key path, or
    the data file, row and column); 3 written, but the fit failed the convergence diagnostics gate.
    """
    from bonebayes.datasets.schema import DataValidationError
    from bonebayes.projections import ProjectionError, ScenarioError
    from bonebayes.report import Progress, ReportConfigError, build_report, load_config

    try:
        cfg = load_config(config)
    except ReportConfigError as e:
        _fail(f"invalid report configuration: {e}")
    target = output if output is not None else cfg.resolve(cfg.output)
    _check_writable(target, "--output")
    if target.is_dir():
        _fail(f"--output {target} is a directory; give a file name such as {target / 'report.html'}")
    import os

    os.environ.setdefault("MPLBACKEND", "Agg")  # files only: no window system needed
    progress = Progress() if quiet else _rich_progress()
    if not quiet:
        err.print(
            f"Building the report of {escape(cfg.source)} into {escape(str(target))}...", soft_wrap=True
        )
    try:
        with _quiet_diagnostics_warning():
            result = build_report(cfg, target, command=_command_line(), progress=progress)
    except DataValidationError as e:
        progress.finish()
        _fail_validation(e)
    except (ScenarioError, ProjectionError, FileNotFoundError, ReportConfigError) as e:
        progress.finish()
        _fail(str(e))
    finally:
        progress.finish()  # idempotent: leaves the terminal clean whatever happened
    out.print(
        f"[green]Wrote[/] {escape(str(result.path))} ({result.path.stat().st_size / 1e6:.1f} MB, "
        f"{result.seconds:.1f} s{'; reused the fit' if result.fit_reused else ''})",
        soft_wrap=True,
    )
    if not result.ok:
        _gate_failed_warning(result.fit_path, result.sampler)
        raise typer.Exit(EXIT_DIAGNOSTICS_FAILED)
