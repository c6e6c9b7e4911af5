"""Shared test fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Headless plotting everywhere (set before anything imports matplotlib).
os.environ.setdefault("MPLBACKEND", "Agg")
try:  # and in case a plugin imported matplotlib already
    import matplotlib

    matplotlib.use("Agg")
except ImportError:  # pragma: no cover
    pass


@pytest.fixture(scope="session")
def tiny_cohort_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 12-subject, 2-cohort synthetic cohort: observations.csv and exposures.csv (treat as read-only)."""
    from bonebayes.datasets.synthetic import SyntheticDesign, simulate_cohort

    directory = tmp_path_factory.mktemp("tiny_cohort")
    simulate_cohort(SyntheticDesign(n_subjects=12, n_cohorts=2), seed=3).write(str(directory))
    return directory
