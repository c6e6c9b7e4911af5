"""One error type for input files validated key by key (scenario TOML, report config)."""

from __future__ import annotations

from pathlib import Path


class KeyPathError(ValueError):
    """Validation problems of one input file: ``problems`` lists (key path, message); the message names
    ``source`` (the file) and every key path."""

    def __init__(self, problems: list[tuple[str, str]], source: str = "<input>") -> None:
        self.problems = problems
        self.source = source
        lines = [f"{path or '(top level)'}: {msg}" for path, msg in problems]
        head = (
            f"{source}: {lines[0]}"
            if len(lines) == 1
            else f"{source}: {len(lines)} problems:\n  " + "\n  ".join(lines)
        )
        super().__init__(head)


def read_input(path: Path, error: type[KeyPathError]) -> str:
    """The UTF-8 text of an input file, or ``error`` naming the file (not a file, unreadable, not UTF-8)."""
    if not path.is_file():
        raise error([("", "not a file")], str(path))
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise error([("", f"cannot read: {e}")], str(path)) from None
