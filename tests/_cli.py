"""Shared by the CLI tests: run ``bonebayes`` in-process and check how it ended."""

from __future__ import annotations

from typer.testing import CliRunner

from bonebayes.cli import app

runner = CliRunner()


def invoke(args: list, expect: int):  # noqa: ANN201
    """Run the CLI; check the exit code and that it ended through a deliberate exit, not a crash."""
    result = runner.invoke(app, [str(a) for a in args])
    crashed = result.exception is not None and not isinstance(result.exception, SystemExit)
    assert not crashed, f"unexpected {result.exception!r}\n{result.output}"
    assert result.exit_code == expect, result.output
    assert "Traceback" not in result.output
    return result
