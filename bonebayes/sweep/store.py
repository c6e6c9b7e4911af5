"""The results directory of a sweep: one committed record per task, written exactly once.

Layout (``KEY`` is the task's content hash):

    KEY.json            the result record; its presence (valid JSON, matching key, every listed file
                        present) is what marks the task finished
    KEY.nc / KEY.csv    the task's data (posterior, held-out rows, ...), listed in the record's ``files``
    .attempts/KEY/      one empty marker per attempt (worker host, pid, time): how often the task started
    .work/KEY/          scratch space of a task (resumable intermediate files)
    summary.csv/.json   the final table of the last run
    .*.tmp              a write in progress or one interrupted by a dying worker: never read, ignored

Data files are written first (temporary file, fsync, atomic rename); the record is committed last with
``os.link``, which fails if ``KEY.json`` already exists, so a task that runs twice (a worker presumed
dead that was still running) cannot commit twice: the second run finds the first's record and discards its
own. A data file without a committed record is an interrupted attempt and is overwritten by the retry.
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

from bonebayes._atomic import atomic_path

RECORD_VERSION = 1


def record_path(results: Path, key: str) -> Path:
    return Path(results) / f"{key}.json"


def read_record(results: Path, key: str) -> dict[str, Any] | None:
    """The committed record of ``key``, or None when the task has not finished (or its files are missing)."""
    path = record_path(results, key)
    try:
        rec = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(rec, dict) or rec.get("key") != key or rec.get("status") != "done":
        return None
    if any(not (Path(results) / f).is_file() for f in rec.get("files", [])):
        return None
    return rec


def mark_attempt(results: Path, key: str) -> int:
    """Leave a marker that an attempt of ``key`` started here; returns the attempt number (1, 2, ...)."""
    d = Path(results) / ".attempts" / key
    d.mkdir(parents=True, exist_ok=True)
    name = f"{socket.gethostname()}-{os.getpid()}-{time.time_ns()}"
    (d / name).touch()
    return len(list(d.iterdir()))


def attempts(results: Path, key: str) -> int:
    d = Path(results) / ".attempts" / key
    return len(list(d.iterdir())) if d.is_dir() else 0


def work_dir(results: Path, key: str) -> Path:
    d = Path(results) / ".work" / key
    d.mkdir(parents=True, exist_ok=True)
    return d


def write_data(results: Path, name: str, write: Any) -> str:
    """Write a task's data file atomically (``write(tmp_path)``); returns its name for the record."""
    with atomic_path(Path(results) / name) as tmp:
        write(tmp)
    return name


def commit(results: Path, key: str, record: dict[str, Any]) -> tuple[bool, dict[str, Any]]:
    """Commit ``record`` as ``KEY.json`` unless a record is already there.

    Returns (committed, the record now on disk). Exclusive: of two concurrent commits exactly one wins.
    """
    results = Path(results)
    final = record_path(results, key)
    record = {**record, "key": key, "status": "done", "record_version": RECORD_VERSION}
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=results)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(record, fh, indent=2, default=_json_default)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        try:
            os.link(tmp, final)
            committed = True
        except FileExistsError:
            committed = False
    finally:
        Path(tmp).unlink(missing_ok=True)
    if committed:
        _fsync_dir(results)
        return True, record
    existing = read_record(results, key)
    if existing is None:  # a corrupt or foreign file under the final name: replace it
        with atomic_path(final) as t:
            t.write_text(json.dumps(record, indent=2, default=_json_default), encoding="utf-8")
        return True, record
    return False, existing


def temp_files(results: Path) -> list[Path]:
    """Partial writes (``.NAME.*.tmp``) left in the results directory: ignored, listed for the summary."""
    return sorted(p for p in Path(results).glob(".*.tmp") if p.is_file())


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass


def _json_default(o: Any) -> Any:
    import numpy as np

    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.bool_):
        return bool(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, tuple | set):
        return list(o)
    if isinstance(o, Path):
        return str(o)
    return str(o)
