"""Where MCMC chains start: the prior's support point, jittered in proportion to each prior's own width.

PyMC and nutpie start a chain at each free variable's support point plus a U(-1, 1) jitter on the
unconstrained scale; Stan draws U(-2, 2). For a parameter whose prior is narrow that is a jump of many prior
SDs: the estradiol formation elasticity e_form (prior SD 0.1) started at -0.83 in one chain of the
benchmark's 100-subject cohort, every subject's pre-trial history (years since menopause) then gave absurd
turnover, the first log density was -1e8, and warm-up threw the chain into a region where every scale was
absurd (sigma_ctx 19, tau_subject 13), where it stayed with step size 0.0002 and 1,023 leapfrog steps per
draw (500 divergences, R-hat 2.24; ``benchmarks/diagnose_divergences.py``).

:class:`ChainStarts` jitters each unconstrained element by U(-1, 1) times its prior SD on that scale (from
prior draws), capped at 1, so wide priors keep the usual jitter and narrow ones get a jitter of their own
size: chains still start apart (R-hat can see disagreement) but inside the prior. ``overrides`` (constrained
values, e.g. data-informed levels from ``models.initial_values``) replace the support point; ``no_jitter``
names variables started exactly there. The same starts serve every sampler: nutpie (:meth:`flat`, called
from its threads: pure NumPy; ``inference.with_chain_starts``), PyMC and numpyro (:meth:`constrained`, one dict per chain) and Stan
(benchmarks).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

PRIOR_DRAWS = 200
"""Prior draws used to measure each element's prior SD on the unconstrained scale."""


class ChainStarts:
    """Per-chain starting points of ``model``'s free variables (see the module docstring)."""

    def __init__(self, model: Any, overrides: dict[str, Any] | None = None, no_jitter: Sequence[str] = (),
                 *, prior_draws: int = PRIOR_DRAWS) -> None:
        from pymc.initial_point import make_initial_point_fn

        overrides = dict(overrides or {})
        free = {v.name: v for v in model.free_RVs}
        unknown = sorted((set(overrides) | set(no_jitter)) - set(free))
        if unknown:
            raise ValueError(f"initial values {unknown} are not free variables of the model")
        self.model = model
        self.value_names = [model.rvs_to_values[v].name for v in model.free_RVs]
        support = make_initial_point_fn(model=model, overrides=overrides, jitter_rvs=set(),
                                        return_transformed=True)(0)
        self.support = {k: np.asarray(support[k], dtype=float) for k in self.value_names}
        prior = make_initial_point_fn(model=model, default_strategy="prior", jitter_rvs=set(),
                                      return_transformed=True)
        draws = [prior(s) for s in range(prior_draws)]
        fixed = {model.rvs_to_values[free[n]].name for n in no_jitter}
        self.width = {}
        for k in self.value_names:
            sd = np.std(np.stack([np.asarray(d[k], dtype=float) for d in draws]), axis=0)
            self.width[k] = np.zeros_like(self.support[k]) if k in fixed else np.minimum(sd, 1.0)
        self._to_constrained = None

    def with_overrides(self, overrides: dict[str, Any], no_jitter: Sequence[str] = ()) -> ChainStarts:
        """A copy starting the named untransformed variables (e.g. data-informed levels) at new values, those
        in ``no_jitter`` exactly there and the others jittered as before.

        For refits of one compiled model to new data (SBC replicates): no prior draws, no compilation.
        """
        import copy

        new = copy.copy(self)
        new.support, new.width = dict(self.support), dict(self.width)
        free = {v.name: v for v in self.model.free_RVs}
        for name, value in overrides.items():
            rv = free.get(name)
            if rv is None or self.model.rvs_to_transforms.get(rv) is not None:
                raise ValueError(f"{name!r} is not an untransformed free variable of the model")
            key = self.model.rvs_to_values[rv].name
            new.support[key] = np.broadcast_to(np.asarray(value, dtype=float), self.support[key].shape).copy()
            if name in no_jitter:
                new.width[key] = np.zeros_like(self.width[key])
        return new

    def unconstrained(self, seed: int) -> dict[str, np.ndarray]:
        """One chain's start on the unconstrained scale, keyed by value-variable name (e.g. ``tau_log__``)."""
        rng = np.random.default_rng(seed)
        return {k: self.support[k] + self.width[k] * rng.uniform(-1.0, 1.0, self.support[k].shape)
                for k in self.value_names}

    def flat(self, seed: Any, order: Sequence[str] | None = None) -> np.ndarray:
        """The unconstrained start as one flat vector, value variables in ``order`` (default: this model's
        free-variable order; a model cloned by ``freeze_dims_and_data`` orders them differently)."""
        point = self.unconstrained(int(np.random.default_rng(seed).integers(2**63 - 1)))
        return np.concatenate([point[k].ravel() for k in (order or self.value_names)])

    def constrained(self, chains: int, seed: int) -> list[dict[str, np.ndarray]]:
        """Starts of ``chains`` chains on the constrained scale, keyed by free-variable name (PyMC, numpyro)."""
        if self._to_constrained is None:
            m = self.model
            # free RVs as functions of their value variables (a plain compile_fn would draw them instead)
            self._to_constrained = m.compile_fn(m.replace_rvs_by_values(m.free_RVs), inputs=m.value_vars,
                                                on_unused_input="ignore", point_fn=True)
        names = [v.name for v in self.model.free_RVs]
        out = []
        for c in range(chains):
            vals = self._to_constrained(self.unconstrained(seed * 1000 + c))
            out.append({n: np.asarray(v) for n, v in zip(names, vals)})
        return out
