"""Segment schedules: turn units (subjects, arms) with regimens into piecewise-constant input arrays.

Every unit starts at the young-adult reference steady state (C = B = 1, m = 0) and is chained through

1. a **history pattern**: what happened before the window start ``t0`` (a menopause transition, a
   glucocorticoid course, years of low testosterone), on a uniform grid of ``history_step`` months measured
   from the unit's first history event. Units whose histories are the same up to a time shift share one
   pattern, so twenty years of postmenopausal history cost one short chain however many subjects there are;
2. a constant **tail** from the end of the pattern to ``t0`` (one exact segment of any length);
3. the shared uniform **window** grid ``t0, t0 + step, ...`` covering every observation and projection time.

Inputs are sampled at segment midpoints, so starts, stops and injections on a grid are exact, and the
turnover solution given the piecewise-constant inputs is exact (see ``turnover``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

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

BASELINE_HISTORY_MONTHS = 60.0
"""A unit whose preset levels differ from the reference has lived with them this long before t0."""


@dataclass(frozen=True)
class Unit:
    """One simulated unit: a subject or a trial arm."""

    name: str
    regimen: tuple[Dose, ...]
    sex: str = "female"
    levels: dict[str, float] = field(default_factory=dict)


@dataclass
class Inputs:
    """Hormone covariates and drug exposures on some leading axes (..., n_hormones / n_drugs)."""

    x: np.ndarray
    A_res: np.ndarray
    A_ana: np.ndarray

    def take(self, index: object) -> Inputs:
        return Inputs(self.x[index], self.A_res[index], self.A_ana[index])

    def restrict_hormones(self, cols: Sequence[int]) -> Inputs:
        return Inputs(self.x[..., list(cols)], self.A_res, self.A_ana)


@dataclass
class Schedule:
    """Piecewise-constant inputs for N units: P history patterns, N tails and a J-step window."""

    units: list[str]
    t0: float
    step: float
    history_step: float
    patterns: Inputs  # (J_p, P, ...)
    unit_pattern: np.ndarray  # (N,) pattern index
    unit_node: np.ndarray  # (N,) pattern node reached at t0 (or at the pattern's end)
    unit_tau: np.ndarray  # (N,) remainder (months) within the following pattern segment
    tail_h: np.ndarray  # (N,) months of constant inputs from the pattern's end to t0
    tail: Inputs  # (N, ...)
    window: Inputs  # (J, N, ...)
    antiresorptives: tuple[str, ...]
    anabolics: tuple[str, ...]
    hormones: tuple[str, ...] = HORMONES

    @property
    def n_window(self) -> int:
        return self.window.x.shape[0]

    @property
    def node_times(self) -> np.ndarray:
        """Times of the J + 1 window nodes (node 0 is t0)."""
        return self.t0 + self.step * np.arange(self.n_window + 1)

    def locate(self, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Window node at or before each time, and the remainder (months) to propagate from it."""
        times = np.asarray(times, dtype=float)
        pos = (times - self.t0) / self.step
        node = np.floor(pos + 1e-9).astype(int)
        past_end = (node == self.n_window) & (pos > self.n_window + 1e-9)
        if np.any(node < 0) or np.any(node > self.n_window) or np.any(past_end):
            raise ValueError(f"times outside the window [{self.t0}, {self.node_times[-1]}] months")
        tau = np.clip(times - (self.t0 + node * self.step), 0.0, None)
        return node, np.where(tau < 1e-9, 0.0, tau)

    def active_hormones(self) -> tuple[str, ...]:
        """Hormones whose covariate is non-zero somewhere (only these get free coefficients)."""
        nh = len(self.hormones)
        xs = np.concatenate([a.x.reshape(-1, nh) for a in (self.patterns, self.tail, self.window)])
        return tuple(h for k, h in enumerate(self.hormones) if np.any(np.abs(xs[:, k]) > 1e-9))

    def restrict_hormones(self, hormones: Sequence[str]) -> Schedule:
        """The same schedule with only ``hormones`` on the hormone axis."""
        cols = [self.hormones.index(h) for h in hormones]
        return replace(self, patterns=self.patterns.restrict_hormones(cols),
                       tail=self.tail.restrict_hormones(cols), window=self.window.restrict_hormones(cols),
                       hormones=tuple(hormones))


def _inputs(unit: Unit, regimen: Sequence[Dose], t: np.ndarray, res: tuple[str, ...],
            ana: tuple[str, ...]) -> Inputs:
    return Inputs(
        hormone_covariates(regimen, t, unit.sex, unit.levels),
        drug_exposure(regimen, t, res) if res else np.zeros(t.shape + (0,)),
        drug_exposure(regimen, t, ana) if ana else np.zeros(t.shape + (0,)),
    )


def _history(unit: Unit, t0: float) -> tuple[float, float, tuple[Dose, ...]] | None:
    """(first change, last change, items shifted to start at 0) for what happens before t0, or None."""
    items = tuple(d for d in unit.regimen if d.start_month < t0 and d.drug != "placebo")
    if not items and not unit.levels:
        return None
    firsts, lasts = [], []
    if unit.levels:  # non-reference preset levels have been in place for BASELINE_HISTORY_MONTHS
        firsts.append(t0 - BASELINE_HISTORY_MONTHS)
        lasts.append(t0 - BASELINE_HISTORY_MONTHS)
    for d in items:
        ev = event_times([d], t0)
        wins = smooth_windows([d], t0)
        firsts += [t for t in ev if t < t0] + [a for a, _ in wins]
        lasts += [t for t in ev if t < t0] + [min(b, t0) for _, b in wins]
    first, last = min(firsts), max(lasts)

    def shift(d: Dose) -> Dose:
        return d.model_copy(update={
            "start_month": round(d.start_month - first, 6),
            "stop_month": None if d.stop_month is None else round(d.stop_month - first, 6)})

    return first, last, tuple(shift(d) for d in items)


def build_schedule(
    units: Sequence[Unit],
    t_end: float,
    *,
    t0: float = 0.0,
    step: float = 1.0,
    history_step: float = 1.0,
) -> Schedule:
    """Build the input arrays for ``units`` over the window ``[t0, t_end]`` (months)."""
    if step <= 0 or history_step <= 0:
        raise ValueError(f"step and history_step must be > 0 months (got {step}, {history_step})")
    J = max(int(np.ceil((t_end - t0) / step - 1e-9)), 1)
    mids = t0 + step * (np.arange(J) + 0.5)
    used = {d.drug for u in units for d in u.regimen}
    res = tuple(d for d in ANTIRESORPTIVES if d in used)
    ana = tuple(d for d in ANABOLICS if d in used)
    N = len(units)
    keys: dict[tuple, int] = {}
    pattern_defs: list[tuple[Unit, tuple[Dose, ...], int]] = []
    unit_pattern = np.zeros(N, dtype=int)
    rel_t0 = np.zeros(N)
    for i, u in enumerate(units):
        h = _history(u, t0)
        if h is None:
            unit_pattern[i] = -1
            continue
        first, last, shifted = h
        n_steps = max(int(np.ceil((last - first) / history_step - 1e-9)), 1)
        key = (u.sex, tuple(sorted(u.levels.items())), shifted)
        if key not in keys:
            keys[key] = len(pattern_defs)
            pattern_defs.append((u, shifted, n_steps))
        else:  # same shifted history: keep the longest span needed
            p = keys[key]
            pattern_defs[p] = (pattern_defs[p][0], shifted, max(pattern_defs[p][2], n_steps))
        unit_pattern[i] = keys[key]
        rel_t0[i] = t0 - first
    if not pattern_defs:  # a trivial pattern at the reference, for units without history
        pattern_defs.append((Unit("reference", ()), (), 1))
    P = len(pattern_defs)
    J_p = max(n for _, _, n in pattern_defs)
    pmids = history_step * (np.arange(J_p) + 0.5)
    pat = [_inputs(u, items, pmids, res, ana) for u, items, _ in pattern_defs]
    for p, (_, _, n) in enumerate(pattern_defs):  # pad with the last inputs (never reached by units)
        for arr in (pat[p].x, pat[p].A_res, pat[p].A_ana):
            arr[n:] = arr[n - 1]
    patterns = Inputs(*(np.stack([getattr(a, f) for a in pat], axis=1) for f in ("x", "A_res", "A_ana")))
    span = np.array([pattern_defs[p][2] * history_step if p >= 0 else 0.0 for p in unit_pattern])
    reach = np.minimum(rel_t0, span)
    unit_node = np.floor(reach / history_step + 1e-9).astype(int)
    unit_tau = np.clip(reach - unit_node * history_step, 0.0, None)
    tail_h = np.where(unit_pattern >= 0, np.clip(rel_t0 - span, 0.0, None), 0.0)
    tail_mid = t0 - tail_h / 2.0
    tails = [_inputs(u, u.regimen, np.array([tail_mid[i]]), res, ana) for i, u in enumerate(units)]
    tail = Inputs(*(np.concatenate([getattr(a, f) for a in tails]) for f in ("x", "A_res", "A_ana")))
    win = [_inputs(u, u.regimen, mids, res, ana) for u in units]
    window = Inputs(*(np.stack([getattr(a, f) for a in win], axis=1) for f in ("x", "A_res", "A_ana")))
    return Schedule(
        units=[u.name for u in units], t0=t0, step=step, history_step=history_step,
        patterns=patterns, unit_pattern=np.maximum(unit_pattern, 0), unit_node=unit_node,
        unit_tau=np.where(unit_pattern >= 0, unit_tau, 0.0), tail_h=tail_h, tail=tail, window=window,
        antiresorptives=res, anabolics=ana,
    )
