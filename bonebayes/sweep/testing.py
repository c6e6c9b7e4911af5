"""Cheap task functions for testing sweeps (``[[call]]`` / ``[[sbc]]`` tables): no MCMC.

They live in the package (not in ``tests/``) because worker processes must be able to import them.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any


def echo_task(value: Any = None, **kwargs: Any) -> dict[str, Any]:
    """Return its arguments and the worker's pid."""
    return {"value": value, "kwargs": kwargs, "pid": os.getpid()}


def sleep_task(seconds: float = 0.1, signal_dir: str | None = None, tag: str = "task",
               sleep_once: bool = False) -> dict[str, Any]:
    """Sleep ``seconds``; first write ``signal_dir/<tag>.<pid>.started`` so a test knows which process runs it.

    ``sleep_once``: only the first attempt sleeps (a retry after a killed worker returns at once).
    """
    first = True
    if signal_dir is not None:
        d = Path(signal_dir)
        d.mkdir(parents=True, exist_ok=True)
        first = not any(d.glob(f"{tag}.*.started"))
        tmp = d / f".{tag}.{os.getpid()}.tmp"
        tmp.write_text(str(os.getpid()))
        os.replace(tmp, d / f"{tag}.{os.getpid()}.started")
    if first or not sleep_once:
        time.sleep(seconds)
    return {"tag": tag, "pid": os.getpid(), "slept": bool(first or not sleep_once)}


def flaky_task(marker: str, failures: int = 1) -> dict[str, Any]:
    """Raise on the first ``failures`` calls (counted in the file ``marker``), then succeed."""
    p = Path(marker)
    n = int(p.read_text()) if p.exists() else 0
    p.write_text(str(n + 1))
    if n < failures:
        raise RuntimeError(f"flaky_task: planned failure {n + 1} of {failures}")
    return {"calls": n + 1}


def fail_task(message: str = "planned failure") -> None:
    raise RuntimeError(message)


def sbc_mock_replicate(replicate: int, seed: int, n: int = 50) -> dict[str, Any]:
    """A stand-in SBC replicate: the rank of a prior draw among ``n`` posterior draws of a conjugate normal."""
    import numpy as np

    rng = np.random.default_rng(seed)
    theta = rng.normal()
    y = rng.normal(theta, 1.0, 10)
    post_sd = 1.0 / np.sqrt(1.0 + len(y))
    post = rng.normal(y.sum() * post_sd**2, post_sd, n)
    return {"replicate": replicate, "rank": int((post < theta).sum()), "n_draws": n}
