"""Segment schedules: turn units (subjects, arms) with regimens into piecewise-constant input arrays.

Each unit starts at the young-adult reference steady state at its own history start (its earliest event,
e.g. the menopause transition) and is then chained through

* a ragged **history**: segments before the shared window start ``t0``: one long segment where nothing
  changes, ``history_step`` months where an input varies smoothly; padded with zero-length segments;
* a shared uniform **window** grid ``t0, t0 + step, ...`` covering every observation and projection time.

Inputs are sampled at segment midpoints, so starts, stops and injections on the grid are exact and the
turnover solution given these piecewise-constant inputs is exact (see ``turnover``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from bonebayes.physiology.inputs import (
    ANABOLICS,
    ANTIRESORPTIVES,
    drug_exposure,
    event_times,
    hormone_covariates,
    smooth_windows,
)
from bonebayes.regimens import HORMONES, Dose


@dataclass(frozen=True)
class Unit:
    """One simulated unit: a subject or a trial arm."""

    name: str
    regimen: tuple[Dose, ...]
    sex: str = "female"
    levels: dict[str, float] = field(default_factory=dict)


@dataclass
class Schedule:
    """Piecewise-constant inputs for N units over H history segments and a J-step window."""

    units: list[str]
    t0: float
    step: float
    hist_h: np.ndarray  # (H, N) months
    hist_x: np.ndarray  # (H, N, n_hormones)
    hist_A_res: np.ndarray  # (H, N, n_res)
    hist_A_ana: np.ndarray  # (H, N, n_ana)
    win_x: np.ndarray  # (J, N, n_hormones)
    win_A_res: np.ndarray  # (J, N, n_res)
    win_A_ana: np.ndarray  # (J, N, n_ana)
    antiresorptives: tuple[str, ...]
    anabolics: tuple[str, ...]
    hormones: tuple[str, ...] = HORMONES

    @property
    def n_window(self) -> int:
        return self.win_x.shape[0]

    @property
    def node_times(self) -> np.ndarray:
        """Times of the J + 1 window nodes (node 0 is t0)."""
        return self.t0 + self.step * np.arange(self.n_window + 1)

    def locate(self, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Window node at or before each time, and the remainder (months) to propagate from it."""
        times = np.asarray(times, dtype=float)
        pos = (times - self.t0) / self.step
        node = np.floor(pos + 1e-9).astype(int)
        if np.any(node < 0) or np.any(node > self.n_window):
            raise ValueError(f"times outside the window [{self.t0}, {self.node_times[-1]}] months")
        tau = np.clip(times - (self.t0 + node * self.step), 0.0, None)
        return node, np.where(tau < 1e-9, 0.0, tau)

    def active_hormones(self) -> tuple[str, ...]:
        """Hormones whose covariate is non-zero somewhere (only these get free coefficients)."""
        xs = np.concatenate([self.hist_x.reshape(-1, len(self.hormones)),
                             self.win_x.reshape(-1, len(self.hormones))])
        return tuple(h for k, h in enumerate(self.hormones) if np.any(np.abs(xs[:, k]) > 1e-9))


BASELINE_HISTORY_MONTHS = 60.0
"""A unit whose preset levels differ from the reference has lived with them this long before t0."""


def _history_breaks(unit: Unit, t0: float, history_step: float) -> np.ndarray:
    """Segment boundaries before t0 for one unit (just [t0] if nothing happens before t0)."""
    regimen = unit.regimen
    events = [t for t in event_times(regimen, t0) if t < t0]
    if unit.levels:
        events.append(t0 - BASELINE_HISTORY_MONTHS)
    wins = [(a, min(b, t0)) for a, b in smooth_windows(regimen, t0) if a < t0]
    starts = events + [a for a, _ in wins]
    if not starts:
        return np.array([t0])
    breaks = set(events) | {t0}
    for a, b in wins:
        n = max(int(np.ceil((b - a) / history_step)), 1)
        breaks.update(np.linspace(a, b, n + 1).tolist())
    return np.array(sorted(b for b in breaks if b <= t0))


def build_schedule(
    units: Sequence[Unit],
    t_end: float,
    *,
    t0: float = 0.0,
    step: float = 1.0,
    history_step: float = 3.0,
) -> Schedule:
    """Build the input arrays for ``units`` over the window ``[t0, t_end]`` (months)."""
    if step <= 0:
        raise ValueError(f"step must be > 0 months (got {step})")
    J = max(int(np.ceil((t_end - t0) / step - 1e-9)), 1)
    mids = t0 + step * (np.arange(J) + 0.5)
    used = {d.drug for u in units for d in u.regimen}
    res = tuple(d for d in ANTIRESORPTIVES if d in used)
    ana = tuple(d for d in ANABOLICS if d in used)
    hist_breaks = [_history_breaks(u, t0, history_step) for u in units]
    H = max(len(b) - 1 for b in hist_breaks)
    N, nh = len(units), len(HORMONES)
    hist_h = np.zeros((H, N))
    hist_mid = np.full((H, N), t0)
    for i, b in enumerate(hist_breaks):
        k = len(b) - 1
        if k:
            hist_h[H - k:, i] = np.diff(b)
            hist_mid[H - k:, i] = 0.5 * (b[1:] + b[:-1])
    hist_x = np.zeros((H, N, nh))
    win_x = np.zeros((J, N, nh))
    hist_Ar, win_Ar = np.zeros((H, N, len(res))), np.zeros((J, N, len(res)))
    hist_Aa, win_Aa = np.zeros((H, N, len(ana))), np.zeros((J, N, len(ana)))
    for i, u in enumerate(units):
        hist_x[:, i] = hormone_covariates(u.regimen, hist_mid[:, i], u.sex, u.levels)
        win_x[:, i] = hormone_covariates(u.regimen, mids, u.sex, u.levels)
        if res:
            hist_Ar[:, i] = drug_exposure(u.regimen, hist_mid[:, i], res)
            win_Ar[:, i] = drug_exposure(u.regimen, mids, res)
        if ana:
            hist_Aa[:, i] = drug_exposure(u.regimen, hist_mid[:, i], ana)
            win_Aa[:, i] = drug_exposure(u.regimen, mids, ana)
    return Schedule(
        units=[u.name for u in units], t0=t0, step=step,
        hist_h=hist_h, hist_x=hist_x, hist_A_res=hist_Ar, hist_A_ana=hist_Aa,
        win_x=win_x, win_A_res=win_Ar, win_A_ana=win_Aa,
        antiresorptives=res, anabolics=ana,
    )
