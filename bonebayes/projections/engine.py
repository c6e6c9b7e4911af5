"""Project a scenario under a fitted posterior: per-draw trajectories of BMD, T-score and markers.

Every arm is one simulated unit of the same physiology the model was fitted with
(:func:`bonebayes.physiology.simulate.simulate`, NumPy back-end, the fit's own grid step), evaluated once
for all posterior draws (a draw axis on the parameters). All arms of a scenario use the same draws, so a
contrast is the paired difference draw by draw.

Endpoints (``t`` in months since the scenario's start, baseline = month 0; ``r(t) = exp(m(t) - m(0)) +
drift t / 1200`` is the BMD ratio to baseline, ``drift`` the study drift in %/year, see ``parameters``):

=================  ===========================================  ======================================
variable           definition                                   unit
=================  ===========================================  ======================================
bmd                100 (r(t) - 1) per site                      % change from month 0
tscore             (BMD_0 r(t) - mean) / SD per site            SD (young-adult reference, ``references``)
ctx                100 (C(t) / C(0) - 1), C = resorption        % change from month 0
p1np               100 (B(t) / B(0) - 1), B = formation         % change from month 0
rankl_opg_ratio    100 (exp(g . (x(t) - x(0))) - 1), g = g_rankl - g_opg   % change of the serum ratio
p_osteoporosis     fraction of draws with T <= -2.5             probability
=================  ===========================================  ======================================

``BMD_0`` is mean + T0 SD when the scenario gives a baseline T-score T0 for the site; otherwise the model's
own baseline ``mean exp(m(0))`` after the population's simulated history (years since menopause etc.).

What the default model cannot project: there is no osteoclast-precursor pool, so stopping denosumab only lets
its effect wane (turnover returns to the pre-treatment level); the observed rebound (CTX above baseline and
rapid BMD loss after stopping) is not reproduced. A fit of a precursor-pool variant (``k_Q``, ``eta_pool`` in
the posterior; ``bonebayes.variants``) projects the rebound, and ``attrs["denosumab_rebound"]`` says which.
Serum RANKL/OPG is a measurement layer that follows hormones
only (drugs such as denosumab do not move it here). Fracture risk is not modelled.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from bonebayes.physiology.inputs import hormone_covariates
from bonebayes.physiology.schedule import Unit, build_schedule
from bonebayes.physiology.simulate import at_times, simulate
from bonebayes.physiology.turnover import TurnoverState
from bonebayes.projections.parameters import (
    DrawParameters,
    ProjectionError,
    draw_indices,
    physiology_draws,
    stack_draws,
)
from bonebayes.projections.references import OSTEOPOROSIS_T, bmd_reference
from bonebayes.projections.scenario import ArmSetup, Scenario, load_scenario

DRAW_VARIABLES: tuple[str, ...] = ("bmd", "tscore", "ctx", "p1np", "rankl_opg_ratio")
"""Per-draw variables (arms: dims draw, arm, time[, site]; contrasts: ``contrast_<name>``)."""
SITE_VARIABLES: tuple[str, ...] = ("bmd", "tscore", "p_osteoporosis")
ENDPOINTS: tuple[str, ...] = ("bmd", "ctx", "p1np", "rankl_opg_ratio", "tscore", "p_osteoporosis")
UNITS: dict[str, str] = {
    "bmd": "% change from month 0",
    "tscore": "SD (T-score)",
    "ctx": "% change from month 0",
    "p1np": "% change from month 0",
    "rankl_opg_ratio": "% change from month 0 (serum RANKL/OPG)",
    "p_osteoporosis": "probability (T <= -2.5)",
}
DENOSUMAB_REBOUND_NOTE = (
    "no denosumab rebound: the model has no osteoclast-precursor pool, so stopping denosumab only lets its "
    "effect wane back to pre-treatment turnover; the observed rebound (CTX above baseline, rapid BMD loss) "
    "is not reproduced (a model variant with a rebound is planned)"
)
REBOUND_MODELLED = "modelled (osteoclast-precursor pool variant)"
REBOUND_NOTE = (
    "denosumab rebound modelled: the fit has an osteoclast-precursor pool (rate k_Q, strength eta_pool) that "
    "fills while denosumab acts and raises resorption after it wanes (CTX above baseline, BMD loss)"
)
GENERAL_NOTES: tuple[str, ...] = (
    "serum RANKL/OPG follows hormones only (measurement layer); drugs do not move it in this model",
    "fractures are not modelled; p_osteoporosis is the posterior probability that the T-score is <= -2.5",
)
BASELINE_EPS_MONTHS = 1e-6  # hormone levels are read just before a time (a dose at t acts after t)


# --------------------------------------------------------------------------- the fit
def load_posterior(fit: Any) -> tuple[xr.Dataset, dict[str, Any], str]:
    """(posterior, provenance, label) from a Fit, a fit file, an InferenceData or a posterior Dataset."""
    from bonebayes import _arviz
    from bonebayes.inference import PROVENANCE_ATTR

    label = "<in memory>"
    if isinstance(fit, str | os.PathLike):
        from bonebayes.fit import Fit

        label = str(fit)
        fit = Fit.load(fit)
    if hasattr(fit, "idata") and hasattr(fit, "provenance"):
        return fit.idata.posterior, dict(fit.provenance or {}), label
    if _arviz.is_inference_data(fit):
        post = fit.posterior
    elif isinstance(fit, xr.Dataset):
        post = fit
    else:
        raise ProjectionError(
            f"fit must be a Fit, a fit file, an InferenceData or a posterior Dataset "
            f"(got {type(fit).__name__})"
        )
    raw = post.attrs.get(PROVENANCE_ATTR)
    return post, (json.loads(raw) if raw else {}), label


PARAMETER_DIMS: dict[str, str] = {
    "k_M": "site",
    "lam": "site",
    "gamma": "hormone",
    "e_form": "hormone",
    "g_rankl": "hormone",
    "g_opg": "hormone",
    "emax_res": "antiresorptive",
    "ec50_res": "antiresorptive",
    "emax_ana": "anabolic",
    "ec50_ana": "anabolic",
    "eref_ana": "anabolic",
    "kappa_ana": "anabolic",
    "z_kM_study": "study",
    "z_drift_study": "study",
    "beta_assay": "assay",
}
"""The coordinate of each vector-valued population parameter in a posterior."""


def point_posterior(values: Mapping[str, Any], coords: Mapping[str, Sequence[str]]) -> xr.Dataset:
    """A one-draw posterior from fixed parameter values (e.g. for what-if projections and tests).

    ``values`` maps names to scalars or vectors; a vector's dimension is the coordinate whose length and
    name fit: ``k_M``/``lam`` use ``site``, hormone coefficients ``hormone``, ``*_res`` ``antiresorptive``,
    ``*_ana`` ``anabolic``, ``z_*_study`` ``study``, ``beta_assay`` ``assay``.
    """
    dims = PARAMETER_DIMS
    data = {}
    for k, v in values.items():
        arr = np.asarray(v, dtype=float)
        d = ("chain", "draw") + ((dims[k],) if arr.ndim == 1 else ())
        data[k] = (d, arr.reshape((1, 1) + arr.shape))
    used = {dims[k] for k, v in values.items() if np.ndim(v) == 1}
    return xr.Dataset(data, coords={"chain": [0], "draw": [0], **{c: list(coords[c]) for c in used}})


# --------------------------------------------------------------------------- core
def _explainer(setups: Sequence[ArmSetup]):  # noqa: ANN202
    def explain(kind: str, label: str) -> str:
        if kind == "site":
            return "a scenario site"
        users = []
        for s in setups:
            for d in s.unit.regimen:
                if (kind == "hormone" and d.spec.hormone == label) or (kind == "drug" and d.drug == label):
                    users.append(f"{d.drug} in arm {s.name}")
            if kind == "hormone" and label in s.unit.levels:
                users.append(f"the {s.population} levels of arm {s.name}")
        return "used by " + ", ".join(dict.fromkeys(users)) if users else ""

    return explain


def _states_at(sched: Any, params: DrawParameters, n_sites: int, times: np.ndarray) -> TurnoverState:
    """States (T, N, D[, S]) of every unit at ``times`` for every draw."""
    node, tau = sched.locate(times)
    frac = np.flatnonzero(tau > 0)
    N = len(sched.units)
    extra = np.repeat(tau[frac], N) if len(frac) else None
    traj, tau_co = simulate(sched, params.physiology, n_sites, extra_h=extra)
    C, B, m = (s[node] for s in traj.state)  # exact at grid nodes
    if len(frac):
        nn, uu = np.repeat(node[frac], N), np.tile(np.arange(N), len(frac))
        st = at_times(traj, nn, uu, params.physiology.rates.k_M, tau_co, sched.n_window)
        C[frac] = st.C.reshape(len(frac), N, *st.C.shape[1:])
        B[frac] = st.B.reshape(len(frac), N, *st.B.shape[1:])
        m[frac] = st.m.reshape(len(frac), N, *st.m.shape[1:])
    return TurnoverState(C, B, m)


@dataclass
class Simulated:
    """Raw per-draw states of units at ``times`` (native layout: time, unit, draw[, site])."""

    times: np.ndarray  # (T,) months, always including 0
    C: np.ndarray  # (T, N, D) resorption (CTX) relative to the young-adult reference
    B: np.ndarray  # (T, N, D) formation (P1NP)
    m: np.ndarray  # (T, N, D, S) log(BMD / young-adult reference)
    params: DrawParameters
    hormones: tuple[str, ...]
    antiresorptives: tuple[str, ...]
    anabolics: tuple[str, ...]

    def index(self, t: float) -> int:
        return int(np.searchsorted(self.times, float(t)))


def simulate_draws(
    post: xr.Dataset,
    units: Sequence[Unit],
    times: Sequence[float],
    sites: Sequence[str],
    *,
    config: Mapping[str, Any] | None = None,
    allow_prior: bool = False,
    study_effects: str = "new",
    seed: int = 0,
    explain_missing: Any = None,
) -> Simulated:
    """Simulate ``units`` for every draw of ``post`` (axis ``sample``) and read the states at ``times``.

    The fit's own grid (``config`` step_months / history_step_months) and the same NumPy physics as the
    fitted model; draws are a batch axis of the parameters (no Python loop over draws).
    """
    cfg = dict(config or {})
    rng = np.random.default_rng(seed)
    t = np.asarray(sorted(set(float(x) for x in times) | {0.0}), dtype=float)
    if t[0] < 0:
        raise ProjectionError(f"times must be months >= 0 (got {t[0]:g})")
    step = float(cfg.get("step_months", 1.0))
    sched = build_schedule(
        list(units),
        max(float(t[-1]), step),
        t0=0.0,
        step=step,
        history_step=float(cfg.get("history_step_months", 1.0)),
    )
    sched = sched.restrict_hormones(sched.active_hormones())
    params = physiology_draws(
        post,
        hormones=sched.hormones,
        antiresorptives=sched.antiresorptives,
        anabolics=sched.anabolics,
        sites=list(sites),
        config=cfg,
        allow_prior=allow_prior,
        study_effects=study_effects,
        rng=rng,
        explain_missing=explain_missing,
    )
    C, B, m = _states_at(sched, params, len(sites), t)
    return Simulated(
        t, C, B, m, params, tuple(sched.hormones), tuple(sched.antiresorptives), tuple(sched.anabolics)
    )


def project_units(
    post: xr.Dataset,
    setups: Sequence[ArmSetup],
    times: Sequence[float],
    sites: Sequence[str],
    *,
    baseline_tscore: Mapping[str, float] | None = None,
    contrasts: Sequence[tuple[str, str, str]] = (),
    config: Mapping[str, Any] | None = None,
    allow_prior: bool = False,
    study_effects: str = "new",
    seed: int = 0,
) -> xr.Dataset:
    """Per-draw endpoints for units (arms) at ``times`` (months >= 0); ``post`` has a ``sample`` axis.

    ``contrasts`` are (name, first arm, second arm). ``config`` is the fit's model configuration (grid
    step, ratio driver, anabolic coupling).
    """
    times = np.asarray(sorted(set(float(t) for t in times)), dtype=float)
    if times.size == 0 or times[0] < 0:
        raise ProjectionError("times must be months >= 0")
    units: list[Unit] = [s.unit for s in setups]
    sim = simulate_draws(
        post,
        units,
        times,
        sites,
        config=config,
        allow_prior=allow_prior,
        study_effects=study_effects,
        seed=seed,
        explain_missing=_explainer(setups),
    )
    params, all_t, C, B, m = sim.params, sim.times, sim.C, sim.B, sim.m
    k0 = sim.index(0.0)
    keep = np.searchsorted(all_t, times)
    tk = all_t[keep]
    m0 = m[k0].copy()  # (N, D, S) baseline log BMD ratio
    # BMD(t) / BMD(0), (T, N, D, S); the large arrays are updated in place (m is ours: a fresh gather)
    ratio = m if len(keep) == len(all_t) else m[keep]
    ratio -= m0[None]
    np.exp(ratio, out=ratio)
    ratio += params.drift[None, None, :, None] * (tk[:, None, None, None] / 1200.0)
    bmd = np.multiply(ratio, 100.0)
    bmd -= 100.0
    # T-scores: T = (BMD_0 r - mean) / SD, BMD_0 = mean + T0 SD (given T0) or mean exp(m(0)) (model baseline)
    mean = np.array([[bmd_reference(s.sex, site).mean for site in sites] for s in setups])  # (N, S)
    sd = np.array([[bmd_reference(s.sex, site).sd for site in sites] for s in setups])
    given = dict(baseline_tscore or {})
    t0 = np.array([given.get(site, np.nan) for site in sites])
    bmd0 = mean[:, None, :] * np.exp(m0)  # (N, D, S)
    has_t0 = np.isfinite(t0)
    bmd0[..., has_t0] = (mean[:, has_t0] + t0[has_t0] * sd[:, has_t0])[:, None, :]
    ratio *= (bmd0 / sd[:, None, :])[None]
    ratio -= (mean / sd)[None, :, None, :]
    tscore = ratio
    ctx = 100.0 * (C[keep] / C[k0][None] - 1.0)  # (T, N, D)
    p1np = 100.0 * (B[keep] / B[k0][None] - 1.0)
    # serum RANKL/OPG ratio (measurement layer: hormones only)
    hcols = [list(_all_hormones()).index(h) for h in sim.hormones]
    x = np.stack(
        [
            hormone_covariates(u.regimen, all_t - BASELINE_EPS_MONTHS, u.sex, u.levels)[:, hcols]
            for u in units
        ],
        axis=1,
    )  # (T, N, H)
    dx = x[keep] - x[k0][None]
    ratio_pct = 100.0 * np.expm1(np.einsum("dh,tnh->tnd", params.serum_ratio, dx))

    native = {"bmd": bmd, "tscore": tscore, "ctx": ctx, "p1np": p1np, "rankl_opg_ratio": ratio_pct}
    arms = [s.name for s in setups]
    draw_ids = post["sample"].values if "sample" in post.dims else np.arange(post.sizes["sample"])
    coords: dict[str, Any] = {
        "draw": np.arange(len(draw_ids)),
        "arm": arms,
        "time": times,
        "site": list(sites),
    }
    if isinstance(post.indexes.get("sample"), pd.MultiIndex):  # which posterior draw each projection draw is
        idx = post.indexes["sample"]
        coords["posterior_chain"] = ("draw", np.asarray(idx.get_level_values("chain")))
        coords["posterior_draw"] = ("draw", np.asarray(idx.get_level_values("draw")))
    if contrasts:
        coords["contrast"] = [c[0] for c in contrasts]
        coords["contrast_first"] = ("contrast", [c[1] for c in contrasts])
        coords["contrast_second"] = ("contrast", [c[2] for c in contrasts])
        ia = [arms.index(c[1]) for c in contrasts]
        ib = [arms.index(c[2]) for c in contrasts]
        for v in DRAW_VARIABLES:  # paired differences, draw by draw
            arr = native[v]
            diff = np.empty((arr.shape[0], len(ia)) + arr.shape[2:])
            for k, (i, j) in enumerate(zip(ia, ib)):
                np.subtract(arr[:, i], arr[:, j], out=diff[:, k])
            native[f"contrast_{v}"] = diff
    data = {}
    for v, arr in native.items():  # native (T, N, D[, S]) -> dims (draw, arm, time[, site]) as a view
        group = "contrast" if v.startswith("contrast_") else "arm"
        dims = ("draw", group, "time") + (("site",) if arr.ndim == 4 else ())
        data[v] = (dims, np.swapaxes(arr, 0, 2))
    ds = xr.Dataset(data, coords=coords)
    ds.coords["time"].attrs.update(
        units="month", long_name="time from the scenario's start (month 0 = baseline)"
    )
    for v in list(ds.data_vars):
        base = v.removeprefix("contrast_")
        unit = (
            UNITS[base]
            if not v.startswith("contrast_")
            else ("difference in percentage points" if base != "tscore" else "difference in SD")
        )
        ds[v].attrs["units"] = unit
    ds.attrs.update(
        {
            "n_draws": int(len(draw_ids)),
            "seed": int(seed),
            "study_effects": study_effects,
            "study_effects_note": params.study_effects_note,
            "allow_prior": int(bool(allow_prior)),
            "prior_parameters": json.dumps(params.from_prior),
            "denosumab_rebound": REBOUND_MODELLED if params.rebound else "not modelled",
            "hormones": json.dumps(list(sim.hormones)),
            "antiresorptives": json.dumps(list(sim.antiresorptives)),
            "anabolics": json.dumps(list(sim.anabolics)),
            "tscore_baseline": json.dumps({site: ("given" if site in given else "model") for site in sites}),
            "tscore_reference": json.dumps(
                {
                    f"{s.sex}/{site}": {
                        "mean_g_cm2": bmd_reference(s.sex, site).mean,
                        "sd_g_cm2": bmd_reference(s.sex, site).sd,
                        "source": bmd_reference(s.sex, site).source,
                    }
                    for s in setups
                    for site in sites
                }
            ),
            "osteoporosis_threshold_T": OSTEOPOROSIS_T,
        }
    )
    return ds


def _all_hormones() -> tuple[str, ...]:
    from bonebayes.regimens import HORMONES

    return HORMONES


def project(
    fit: Any,
    scenario: Scenario | str | os.PathLike[str] | Mapping[str, Any],
    *,
    draws: int | None = None,
    seed: int = 0,
    allow_prior: bool = False,
    study_effects: str = "new",
    times: Sequence[float] | None = None,
    monthly: bool = False,
    summary: bool = True,
) -> xr.Dataset:
    """Project ``scenario`` under ``fit``'s posterior.

    Returns an ``xarray.Dataset`` with per-draw variables ``bmd``, ``tscore`` (dims draw, arm, time, site),
    ``ctx``, ``p1np``, ``rankl_opg_ratio`` (draw, arm, time), their paired contrasts ``contrast_<name>``
    (draw, contrast, ...), and (``summary=True``) ``<name>_summary`` with a ``stat`` axis (mean, median,
    hdi50_lo/hi, hdi90_lo/hi) plus ``p_osteoporosis`` (arm, time, site). Units in each variable's attrs;
    provenance, notes and any prior-drawn parameters in ``attrs``.

    ``draws``: use this many posterior draws, evenly spaced (default all). ``seed``: new-study effects and
    prior draws. ``allow_prior``: draw parameters the fit lacks from their priors instead of failing.
    ``study_effects``: ``"new"`` (a new trial population), ``"none"`` (population average) or a study of the
    fit. ``times``: override the scenario's times (months); ``monthly``: every month from 0 to the last time
    (for plots).
    """
    scn = load_scenario(scenario)
    post, prov, label = load_posterior(fit)
    stacked = stack_draws(post)
    idx = draw_indices(stacked.sizes["sample"], draws)
    stacked = stacked.isel(sample=idx)
    t = list(scn.times_months if times is None else times)
    if monthly:
        step = float((prov.get("config") or {}).get("step_months", 1.0))
        t = sorted(set(t) | set(np.arange(0.0, max(t) + 1e-9, step).tolist()))
    setups = scn.setup()
    ds = project_units(
        stacked,
        setups,
        t,
        scn.sites,
        baseline_tscore=scn.baseline_tscore,
        contrasts=[(c.label, *c.arms) for c in scn.contrasts],
        config=prov.get("config"),
        allow_prior=allow_prior,
        study_effects=study_effects,
        seed=seed,
    )
    notes = list(GENERAL_NOTES)
    rebound = ds.attrs.get("denosumab_rebound", "not modelled") == REBOUND_MODELLED
    if "denosumab" in scn.drugs():
        notes.insert(0, REBOUND_NOTE if rebound else DENOSUMAB_REBOUND_NOTE)
    if prov.get("sampler") == "mock":
        notes.insert(0, "the fit used the mock sampler: these are PRIOR draws, not a posterior")
    prior = json.loads(ds.attrs["prior_parameters"])
    if prior:
        notes.insert(0, f"drawn from their priors (the fit has no posterior for them): {', '.join(prior)}")
    ds.attrs.update(
        {
            "scenario_name": scn.name,
            "scenario": json.dumps(scn.as_json_dict()),
            "fit_source": label,
            "fit_model": str(prov.get("model", "")),
            "fit_sampler": str(prov.get("sampler", "")),
            "fit_created": str(prov.get("created", "")),
            "fit_data_hash": str(prov.get("data_hash", "")),
            "fit_draws_available": int(post.sizes.get("chain", 1) * post.sizes.get("draw", 1)),
            "denosumab_rebound": REBOUND_MODELLED if rebound else "not modelled",
            "notes": json.dumps(notes),
            "arm_notes": json.dumps({s.name: list(s.notes) for s in setups if s.notes}),
            "arm_populations": json.dumps(
                {
                    s.name: {
                        "population": s.population,
                        "sex": s.sex,
                        "years_since_menopause": s.years_since_menopause,
                    }
                    for s in setups
                }
            ),
        }
    )
    if summary:
        from bonebayes.projections.summary import summarize

        ds = summarize(ds)
    return ds


def default_fit_path() -> Path:
    """Where the README's main command (``make demo`` / ``bonebayes demo``) writes its fit."""
    return Path("results") / "fit.nc"
