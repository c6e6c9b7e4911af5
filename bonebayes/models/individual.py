"""Hierarchical model of individual cohort data: population -> cohort -> subject.

Observation model (all on the log scale, subject i in cohort c, variable v, time t; t0 = month 0):

    log CTX_it   ~ Normal(a_ctx,i  + log C_i(t) - log C_i(t0), sigma_ctx)    left-censored below LOQ (M3, erfc)
    log P1NP_it  ~ Normal(a_p1np,i + log B_i(t) - log B_i(t0), sigma_p1np)   left-censored below LOQ
    log BMD_ist  ~ Normal(a_bmd_s,i + m_is(t) - m_is(t0), sigma_bmd_s)   DXA precision (m = log BMD ratio)
    log RANKL_it ~ Normal(a_rankl,i + sum_h g_rankl,h (x_h,i(t) - x_h,i(t0)), sigma_rankl)   serum layer
    log OPG_it   ~ Normal(a_opg,i   + sum_h g_opg,h   (x_h,i(t) - x_h,i(t0)), sigma_opg)

    a_v,i ~ N(c_v,c, tau_subject_v),   c_v,c ~ N(mu_v, tau_cohort_v)        (cohort c of subject i)
                                       (sampled as mean + zero-sum deviations; see _hierarchical_levels)

The intercepts a_v,i are baseline (month 0) levels: normalising the latent states to each subject's own
baseline decorrelates the intercepts from the rate and hormone parameters (the subject's pre-trial history
moves C(t0) and m(t0) with k_M and gamma), which is what makes NUTS trajectories short.
C, B and m come from the two-layer physiology (``bonebayes.physiology``) with subject-specific
k_M,is = k_M,s * exp(tau_kM * z_i). Cohort means are sampled directly (as their mean and zero-sum
deviations, with mu drawn given them) for variables with at least ``layout.CENTRED_MIN_OBS`` observations per subject
on average (pinned by the data) and as non-centred offsets otherwise (the funnel at small tau_cohort);
subject intercepts are centred when the observations pin them (a pilot estimate of the between-subject SD
exceeds the noise of a subject's mean) and non-centred otherwise; with at most one observation per subject
the subject intercept is dropped (it is not separable from the residual). ``models.layout.level_layout``
makes these choices. Priors: ``models.priors``.

By default (``ModelConfig(intercepts="marginal")``) NUTS samples the same posterior with the subject
intercepts of every level without censored observations integrated out exactly (``models.marginal``: each subject's
observations of a level are jointly normal with covariance sigma^2 I + tau^2 11'); the intercepts are then
drawn back from their normal conditional (``IndividualModel.complete_posterior``), so saved fits, pointwise
log-likelihoods and predictive checks all refer to the full model. At 500 subjects this removes 1,500 of 2,559
parameters and halves the NUTS trajectory (``benchmarks/bench_reference.py --intercepts marginal``).
``intercepts="sampled"`` samples every intercept (the default before; saved fits whose configuration has
no ``intercepts`` key were fitted that way, see :func:`saved_config`).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from bonebayes.models._gather import take_by_index
from bonebayes.models.data import MARKER_LATENT, IndividualData, prepare_individual
from bonebayes.models.layout import censored_levels, integrates_intercepts, level_layout
from bonebayes.models.marginal import Groups, marginal_loglik_rows, segment_sums
from bonebayes.models.population import PopulationParams, build_population
from bonebayes.models.priors import PRIORS
from bonebayes.physiology.backend import get_ops
from bonebayes.physiology.simulate import at_times, simulate
from bonebayes.physiology.turnover import TurnoverState

POPULATION_VARS: tuple[str, ...] = (
    "k_C", "k_B", "k_M", "lam", "gamma", "e_form", "g_rankl", "g_opg", "emax_res", "ec50_res", "eref_ana",
    "ec50_ana", "kappa_ana", "alpha", "g_ratio", "k_Q", "eta_pool", "mu_level", "tau_subject", "tau_cohort",
    "tau_kM",
)


class ModelConfig(BaseModel):
    """Settings of the individual model; stored beside the posterior in every saved fit."""

    model_config = ConfigDict(extra="forbid")

    name: str = "individual"
    step_months: float = Field(1.0, gt=0, description="window grid step (months)")
    history_step_months: float = Field(1.0, gt=0, description="segment length in smooth pre-trial changes")
    random_kM: bool = Field(True, description="subject-level random effect on log k_M")
    cohort_effects: Literal["hierarchical", "pooled"] = "hierarchical"
    ratio_driver: Literal["latent", "serum"] = Field(
        "latent", description="latent local ratio (alpha fixed 1) or serum ratio as driver (alpha estimated)")
    sites: tuple[str, ...] | None = None
    signalling: Literal["separate", "ratio"] = Field(
        "separate", description="separate serum RANKL and OPG elasticities, or one ratio elasticity (variant)")
    precursor_pool: bool = Field(False, description="osteoclast-precursor pool: denosumab rebound (variant)")
    holdout_subjects: tuple[str, ...] = Field(
        (), description="subjects whose observations get no likelihood (grouped K-fold); their log-density "
                        "is kept as the deterministic holdout_loglik")
    intercepts: Literal["sampled", "marginal"] = Field(
        "marginal", description="subject intercepts integrated out where all of a level's observations are "
                                "uncensored Gaussian (models.marginal; drawn back after sampling), or sampled")

    def model_dump(self, **kwargs):  # noqa: ANN003, ANN201
        """As pydantic's, without variant options left at their defaults (saved configs stay unchanged)."""
        return _drop_default_variants(super().model_dump(**kwargs), VARIANT_DEFAULTS)


VARIANT_DEFAULTS: dict[str, object] = {"signalling": "separate", "precursor_pool": False, "holdout_subjects": ()}
"""Options added for model variants and K-fold; omitted from dumped configs at these values, so that configs
saved before they existed compare equal (fit reuse) and the default model's provenance is unchanged."""


def saved_config(config: dict) -> dict:
    """A configuration stored in a saved fit, as a ModelConfig argument: fits saved before ``intercepts``
    became a stored setting sampled every intercept (its default then) and are rebuilt that way."""
    return {"intercepts": "sampled", **config}


def _drop_default_variants(d: dict, defaults: dict[str, object]) -> dict:
    for k, v in defaults.items():
        if k in d and (d[k] == v or (isinstance(v, tuple) and list(d[k]) == list(v))):
            d.pop(k)
    return d


def _censored_normal_logp(value, mu, sigma, censored):  # noqa: ANN001, ANN202
    """Normal log-density, or log P(Y < value) where censored (M3); erfc runs on every back-end."""
    import pytensor.tensor as pt

    z = (value - mu) / sigma
    logpdf = -0.5 * z**2 - pt.log(sigma) - 0.5 * np.log(2 * np.pi)
    logcdf = pt.log(0.5 * pt.erfc(-z / np.sqrt(2.0)))
    return pt.switch(censored, logcdf, logpdf)


def _censored_normal_random(mu, sigma, censored, rng=None, size=None):  # noqa: ANN001, ANN202
    return rng.normal(mu, sigma, size=size)


def build_individual_model(data: IndividualData, config: ModelConfig | None = None,
                           integrate: bool = True):  # noqa: ANN201
    """Build the PyMC model for :class:`IndividualData`; ``integrate=False`` keeps every subject intercept a
    parameter even with ``intercepts="marginal"`` (same layout otherwise: the model of record)."""
    import pymc as pm

    cfg = config or ModelConfig()
    sched = data.schedule
    active = sched.active_hormones()
    coords = {
        "site": list(data.sites), "hormone": list(active), "antiresorptive": list(sched.antiresorptives),
        "anabolic": list(sched.anabolics),
    }
    with pm.Model(coords=coords) as model:
        pop = build_population(data.sites, active, sched.antiresorptives, sched.anabolics, cfg.ratio_driver,
                               signalling=cfg.signalling, precursor_pool=cfg.precursor_pool)
        add_individual_block(data, pop, cfg, integrate)
    return model


def add_individual_block(data: IndividualData, pop: PopulationParams, cfg: ModelConfig,
                         integrate: bool = True) -> None:
    """Add the cohort levels, subject effects and likelihoods of ``data`` to the current model
    (``integrate``: see :func:`build_individual_model`)."""
    import pymc as pm
    import pytensor.tensor as pt

    ops = get_ops("pytensor")
    sched = data.schedule
    active = sched.active_hormones()
    hcols = [sched.hormones.index(h) for h in active]
    N, S = data.n_subjects, len(data.sites)
    model = pm.modelcontext(None)
    for name, labels in {
        "subject": data.subjects, "cohort": data.cohorts, "level": list(data.levels),
        "marker_obs": np.arange(len(data.markers)), "bmd_obs": np.arange(len(data.bmd)),
        "serum_obs": np.arange(len(data.serum)),
    }.items():
        model.add_coord(name, labels)
    coefs = pop.hormone_coefs(active)
    g_rankl, g_opg = coefs["g_rankl"], coefs["g_opg"]
    k_M, lam = pop.site_rates(data.sites)
    # --- levels: population mean, cohort and subject effects ---------------------------------------
    mu_loc, mu_sd, sig_sd, tau_sd = [], [], [], []
    for lv in data.levels:
        key = "bmd" if lv.startswith("bmd_") else lv
        p_mu = PRIORS[f"mu_{key}"]
        mu_loc.append(p_mu.a)
        mu_sd.append(p_mu.b)
        sig_sd.append(PRIORS[f"sigma_{key}"])
        tau_sd.append(PRIORS["tau_bmd_subject" if key == "bmd" else "tau_subject"].a)
    layout = level_layout(data, cfg)
    hierarchical = cfg.cohort_effects == "hierarchical" and len(data.cohorts) > 1
    if hierarchical:
        tau_cohort = PRIORS["tau_cohort"].build("tau_cohort", dims="level")
        mu_level, cohort_cols = _hierarchical_levels(data, layout, np.array(mu_loc), np.array(mu_sd),
                                                     tau_cohort)
    else:
        mu_level = pm.Normal("mu_level", np.array(mu_loc), np.array(mu_sd), dims="level")
    sigma_parts = []
    for lv, pr in zip(data.levels, sig_sd):
        if pr.dist == "lognormal":
            sigma_parts.append(pm.LogNormal(f"sigma_{lv}", pr.a, pr.b))
        else:
            sigma_parts.append(pm.HalfNormal(f"sigma_{lv}", pr.a))
    sigma_level = pm.Deterministic("sigma_level", pt.stack(sigma_parts), dims="level")

    def sigma_obs(level_index: np.ndarray):  # noqa: ANN202 - sigma_level[level_index], one op (see _gather)
        return take_by_index(sigma_level, level_index, len(data.levels))

    if hierarchical:
        level_mean = pt.stack(cohort_cols, axis=1)  # (cohort, level)
    else:
        level_mean = mu_level[None, :] * pt.ones((len(data.cohorts), 1))
    tau_subject = pm.HalfNormal("tau_subject", np.array(tau_sd), dims="level")
    held = np.isin(np.asarray(data.subjects), list(cfg.holdout_subjects))
    marg = _marginal_levels(data, layout, cfg) if integrate else set()
    columns = []
    for k, lv in enumerate(data.levels):
        base = level_mean[data.cohort_of, k]
        if layout[lv][1] == "none" or k in marg:
            columns.append(base)
        elif layout[lv][1] == "direct":
            columns.append(pm.Normal(f"a_{lv}", base, tau_subject[k], dims="subject"))
        else:
            z = pm.Normal(f"z_{lv}", 0.0, 1.0, dims="subject")
            columns.append(base + tau_subject[k] * z)
    intercept = pt.stack(columns, axis=1)  # (N, L)

    # --- physiology -----------------------------------------------------------------------------------
    if cfg.random_kM:
        tau_kM = PRIORS["tau_kM"].build("tau_kM")
        z_kM = pm.Normal("z_kM", 0.0, 1.0, dims="subject")
        kM_subject = k_M[None, :] * pt.exp(tau_kM * z_kM)[:, None]
    else:
        kM_subject = k_M[None, :] * pt.ones((N, 1))
    params = pop.physiology(active, sched.antiresorptives, sched.anabolics, kM_subject, lam)
    blocks = [b for b in (data.markers, data.bmd) if len(b)]
    node = np.concatenate([b.node for b in blocks]) if blocks else np.zeros(0, int)
    unit = np.concatenate([b.unit for b in blocks]) if blocks else np.zeros(0, int)
    tau = np.concatenate([b.tau for b in blocks]) if blocks else np.zeros(0)
    need_tau = bool(np.any(tau > 0))
    traj, tau_co = simulate(sched.restrict_hormones(active), params, S, ops,
                            extra_h=tau if need_tau else None)
    st_all = at_times(traj, node, unit, kM_subject[unit] if need_tau else None,
                      tau_co if need_tau else None, sched.n_window)
    base = TurnoverState(traj.state.C[0], traj.state.B[0], traj.state.m[0])  # at t0, per subject
    offsets = np.cumsum([0] + [len(b) for b in blocks])
    by_block = {id(b): TurnoverState(st_all.C[a:z], st_all.B[a:z], st_all.m[a:z])
                for b, a, z in zip(blocks, offsets[:-1], offsets[1:])}

    # --- likelihoods ----------------------------------------------------------------------------------
    unknown = sorted(set(cfg.holdout_subjects) - set(data.subjects))
    if unknown:
        raise ValueError(f"holdout_subjects {unknown[:5]} are not subjects of the data")
    held_ll = []
    marginal_rows: list[tuple] = []  # (y, mean without intercept) of rows whose intercept is integrated out
    mk = data.markers
    if len(mk):
        st = by_block[id(mk)]
        is_C = np.array([MARKER_LATENT[v] == "C" for v in mk.variable])
        latent = pt.switch(is_C, st.C, st.B)
        latent0 = pt.switch(is_C, base.C[mk.unit], base.B[mk.unit])
        f_mk = pt.log(latent) - pt.log(latent0)  # the mean without the intercept (marginal levels)
        mu = intercept[mk.unit, mk.level] + pt.log(latent) - pt.log(latent0)  # (this order: same bits as before)
        if held.any():
            f, h = ~held[mk.unit], held[mk.unit]
            model.add_coord("marker_fit_obs", np.flatnonzero(f))
            pm.CustomDist("obs_markers", mu[f], sigma_obs(mk.level[f]), mk.censored[f].astype("int8"),
                          logp=_censored_normal_logp, random=_censored_normal_random,
                          observed=mk.log_value[f], dims="marker_fit_obs")
            held_ll.append(_censored_normal_logp(mk.log_value[h], mu[h], sigma_obs(mk.level[h]),
                                                 mk.censored[h]))
        elif marg:
            c = _split_marginal(mk, f_mk, marg, marginal_rows)
            if c.any():
                model.add_coord("marker_cond_obs", np.flatnonzero(c))
                pm.CustomDist("obs_markers", mu[c], sigma_obs(mk.level[c]), mk.censored[c].astype("int8"),
                              logp=_censored_normal_logp, random=_censored_normal_random,
                              observed=mk.log_value[c], dims="marker_cond_obs")
        else:
            # observed values and censoring flags as pm.Data: a compiled model can be refitted to new
            # values of the same design (SBC replicates) without recompiling; fits freeze them as constants
            pm.CustomDist("obs_markers", mu, sigma_obs(mk.level),
                          pm.Data("censored_markers", mk.censored.astype("int8"), dims="marker_obs"),
                          logp=_censored_normal_logp, random=_censored_normal_random,
                          observed=pm.Data("y_markers", mk.log_value, dims="marker_obs"), dims="marker_obs")
    bm = data.bmd
    if len(bm):
        st = by_block[id(bm)]
        m_obs = st.m[pt.arange(len(bm)), data.site_of_bmd]
        m_base = base.m[bm.unit, data.site_of_bmd]
        f_b = m_obs - m_base
        mu_b = intercept[bm.unit, bm.level] + m_obs - m_base
        if held.any():
            f, h = ~held[bm.unit], held[bm.unit]
            model.add_coord("bmd_fit_obs", np.flatnonzero(f))
            pm.Normal("obs_bmd", mu_b[f], sigma_obs(bm.level[f]), observed=bm.log_value[f], dims="bmd_fit_obs")
            held_ll.append(pm.logp(pm.Normal.dist(mu_b[h], sigma_obs(bm.level[h])), bm.log_value[h]))
        elif marg:
            c = _split_marginal(bm, f_b, marg, marginal_rows)
            if c.any():
                model.add_coord("bmd_cond_obs", np.flatnonzero(c))
                pm.Normal("obs_bmd", mu_b[c], sigma_obs(bm.level[c]), observed=bm.log_value[c],
                          dims="bmd_cond_obs")
        else:
            pm.Normal("obs_bmd", mu_b, sigma_obs(bm.level),
                      observed=pm.Data("y_bmd", bm.log_value, dims="bmd_obs"), dims="bmd_obs")
    se = data.serum
    if len(se):
        x = data.serum_x[:, hcols]
        is_rankl = np.array([v == "rankl" for v in se.variable])
        slope = pt.switch(is_rankl[:, None], g_rankl[None, :], g_opg[None, :]) if active else 0.0
        lin = pt.sum(x * slope, axis=1) if active else 0.0
        mu_s = intercept[se.unit, se.level] + lin
        if held.any():
            f, h = ~held[se.unit], held[se.unit]
            mu_s = mu_s * pt.ones((len(se),))
            model.add_coord("serum_fit_obs", np.flatnonzero(f))
            pm.Normal("obs_serum", mu_s[f], sigma_obs(se.level[f]), observed=se.log_value[f],
                      dims="serum_fit_obs")
            held_ll.append(pm.logp(pm.Normal.dist(mu_s[h], sigma_obs(se.level[h])), se.log_value[h]))
        elif marg:
            mu_s = mu_s * pt.ones((len(se),))
            c = _split_marginal(se, lin * pt.ones((len(se),)), marg, marginal_rows)
            if c.any():
                model.add_coord("serum_cond_obs", np.flatnonzero(c))
                pm.Normal("obs_serum", mu_s[c], sigma_obs(se.level[c]), observed=se.log_value[c],
                          dims="serum_cond_obs")
        else:
            pm.Normal("obs_serum", mu_s, sigma_obs(se.level),
                      observed=pm.Data("y_serum", se.log_value, dims="serum_obs"), dims="serum_obs")
    if marginal_rows:
        y, f = np.concatenate([x[0] for x in marginal_rows]), pt.concatenate([x[1] for x in marginal_rows])
        unit, level = _marginal_rows(data, marg)
        L = len(data.levels)
        groups = Groups.of(unit, level, L)
        # plus the cohort means, taken as one op from the flattened (cohort, level) matrix (see _gather)
        K = len(data.cohorts)
        mean = f + take_by_index(level_mean.flatten(), data.cohort_of[unit] * L + level, K * L)
        model.add_coord("marginal_obs", np.arange(len(unit)))
        model.add_coord("marginal_group", np.arange(len(groups.n)))
        pm.CustomDist("obs_marginal", mean, take_by_index(sigma_level, level, L),
                      take_by_index(tau_subject, level, L),
                      logp=lambda value, mu, sigma, tau: marginal_loglik_rows(value - mu, groups, sigma, tau),
                      observed=y, dims="marginal_obs")
        # what drawing the intercepts back needs (IndividualModel.complete_posterior)
        pm.Deterministic("marginal_resid_sum", segment_sums(y - mean, groups), dims="marginal_group")
        pm.Deterministic("cohort_level_mean", level_mean, dims=("cohort", "level"))
    if held.any():
        blocks_all = (mk, bm, se)
        model.add_coord("holdout_obs", np.concatenate([b.row[held[b.unit]] for b in blocks_all if len(b)]))
        pm.Deterministic("holdout_loglik", pt.concatenate(held_ll), dims="holdout_obs")


def _marginal_levels(data: IndividualData, layout: dict[str, tuple[str, str]], cfg: ModelConfig) -> set[int]:
    """Indices of the levels whose subject intercepts are integrated out (``cfg.intercepts == "marginal"``):
    those with a subject intercept and no censored observation (markers below the LOQ keep theirs)."""
    if not integrates_intercepts(data, cfg):
        return set()
    censored = censored_levels(data)
    return {k for k, lv in enumerate(data.levels) if layout[lv][1] != "none" and lv not in censored}


def _marginal_rows(data: IndividualData, marg: set[int]) -> tuple[np.ndarray, np.ndarray]:
    """(unit, level) of the rows of marginal levels, in the model's order (markers, BMD, serum)."""
    blocks = [b for b in (data.markers, data.bmd, data.serum) if len(b)]
    keep = [np.isin(b.level, sorted(marg)) for b in blocks]
    return (np.concatenate([b.unit[k] for b, k in zip(blocks, keep)]),
            np.concatenate([b.level[k] for b, k in zip(blocks, keep)]))


def _split_marginal(block, f, marg: set[int], out: list) -> np.ndarray:  # noqa: ANN001
    """Append (y, f) of the block's rows of marginal levels to ``out`` (f: the model's mean without the
    intercept); returns the mask of the other rows."""
    m = np.isin(block.level, sorted(marg))
    if m.any():
        idx = np.flatnonzero(m)
        out.append((block.log_value[idx], f[idx]))
    return ~m


def _hierarchical_levels(data: IndividualData, layout: dict[str, tuple[str, str]], mu_loc: np.ndarray,
                         mu_sd: np.ndarray, tau_cohort):  # noqa: ANN001, ANN202
    """Population means ``mu_level`` (deterministic, dims level) and each level's cohort means (cohort,).

    Generatively mu ~ N(m0, s0), cohort means c_k ~ N(mu, tau) for K cohorts. For a level that subjects
    measure often (cohort form "direct" in :func:`level_layout`) the data pin the c_k, and with K = 2-3 the centred form leaves
    (mu, log tau) a K-observation funnel: NUTS diverged at small tau_cohort (89 divergent transitions at
    100 subjects, ``benchmarks/diagnose_divergences.py``) and mu_level mixed slowest (bulk ESS 61 in 1,000
    draws at 500 subjects). The same joint distribution is written in the order
    c_bar ~ N(m0, sqrt(s0^2 + tau^2/K)) (``cohort_mean_*``), deviations c - c_bar ~ ZeroSumNormal(tau)
    (``cohort_dev_*``; independent of c_bar), and mu | c_bar ~ N(post. mean, post. SD), non-centred
    (``z_mu_level``): p(mu) prod_k p(c_k | mu) = p(c_bar) p(c - c_bar) p(mu | c_bar) exactly, every piece can
    still be drawn forward (prior predictive, SBC), and mu, which no likelihood touches, no longer forms a
    funnel with tau. Sparsely measured levels keep non-centred cohort offsets, mu + tau z (``z_cohort_*``):
    there the funnel at small tau is the risk.
    """
    import pymc as pm
    import pytensor.tensor as pt

    K = len(data.cohorts)
    z_mu = pm.Normal("z_mu_level", 0.0, 1.0, dims="level")
    mus, cols = [], []
    for k, lv in enumerate(data.levels):
        m0, s0, tau = mu_loc[k], mu_sd[k], tau_cohort[k]
        if layout[lv][0] == "direct":
            v_bar = tau**2 / K  # variance of c_bar around mu
            c_bar = pm.Normal(f"cohort_mean_{lv}", m0, pt.sqrt(s0**2 + v_bar))
            dev = pm.ZeroSumNormal(f"cohort_dev_{lv}", sigma=tau, dims="cohort")
            cols.append(pm.Deterministic(f"cohort_{lv}", c_bar + dev, dims="cohort"))
            post_mean = (m0 * v_bar + c_bar * s0**2) / (s0**2 + v_bar)
            post_sd = s0 * pt.sqrt(v_bar / (s0**2 + v_bar))
            mus.append(post_mean + post_sd * z_mu[k])
        else:
            mus.append(m0 + s0 * z_mu[k])
            z = pm.Normal(f"z_cohort_{lv}", 0.0, 1.0, dims="cohort")
            cols.append(mus[-1] + tau * z)
    return pm.Deterministic("mu_level", pt.stack(mus), dims="level"), cols


def population_var_names(model) -> list[str]:  # noqa: ANN001
    """The population-level free parameters present in ``model`` (for diagnostics and recovery)."""
    names = {v.name for v in model.free_RVs} | {v.name for v in model.deterministics}
    extra = [v for v in names if v.startswith("sigma_") and v != "sigma_level"]
    return [v for v in POPULATION_VARS if v in names] + sorted(extra)


def individual_data_from_tables(observations: pd.DataFrame, exposures: pd.DataFrame,
                                config: ModelConfig | None = None) -> IndividualData:
    cfg = config or ModelConfig()
    return prepare_individual(observations, exposures, step_months=cfg.step_months,
                              history_step_months=cfg.history_step_months, sites=cfg.sites)


class IndividualModel:
    """Hierarchical model of a cohort's long-format data (pymc-marketing-style build / fit / save / load).

    >>> m = IndividualModel(observations, exposures)          # validated tables (datasets.load_cohort)
    >>> fit = m.fit(draws=1000, tune=1000, chains=4, seed=1)   # nutpie by default
    >>> fit.verdict.ok, fit.save("fit.nc")
    """

    def __init__(self, observations: pd.DataFrame, exposures: pd.DataFrame,
                 config: ModelConfig | dict | None = None) -> None:
        self.config = config if isinstance(config, ModelConfig) else ModelConfig(**(config or {}))
        self.observations = observations
        self.exposures = exposures
        self.data = individual_data_from_tables(observations, exposures, self.config)
        self._model = self._sampling_model = None

    @property
    def model(self):  # noqa: ANN201
        """The PyMC model of record, every subject intercept a parameter (built on first use).

        Log-likelihoods, predictive checks, saved posteriors and diagnostics refer to this model; with
        ``intercepts="marginal"`` only the sampler sees :attr:`sampling_model`.
        """
        if self._model is None:
            self._model = build_individual_model(self.data, self.config, integrate=False)
        return self._model

    @property
    def sampling_model(self):  # noqa: ANN201
        """The model NUTS samples: :attr:`model`, or with ``intercepts="marginal"`` the same posterior with
        the Gaussian subject intercepts integrated out (``models.marginal``; drawn back by
        :meth:`complete_posterior`)."""
        if not integrates_intercepts(self.data, self.config):  # sampled, or held-out subjects (K-fold)
            return self.model
        if self._sampling_model is None:
            self._sampling_model = build_individual_model(self.data, self.config)
        return self._sampling_model

    def build(self):  # noqa: ANN201
        self._model = self._sampling_model = None
        return self.model

    def complete_posterior(self, idata, seed: int):  # noqa: ANN001, ANN201
        """Add the integrated-out intercepts to a posterior of :attr:`sampling_model`, drawn exactly from their
        Gaussian conditional given every other parameter (one draw per posterior draw, seeded); a posterior
        of :attr:`model` is returned unchanged."""
        import pymc as pm

        from bonebayes.models.marginal import POSTHOC_VARS, complete_intercepts

        post = idata.posterior
        if "marginal_resid_sum" not in self.sampling_model.named_vars:
            return idata
        missing = [v for v in POSTHOC_VARS if v not in post]
        if missing:  # not stored by the sampler (inference.compile_nutpie): one forward pass per draw
            post = post.merge(pm.compute_deterministics(post, var_names=missing, model=self.sampling_model,
                                                        progressbar=False))
        layout = level_layout(self.data, self.config)
        marg = _marginal_levels(self.data, layout, self.config)
        groups = Groups.of(*_marginal_rows(self.data, marg), len(self.data.levels))
        forms = {self.data.levels[k]: layout[self.data.levels[k]][1] for k in sorted(marg)}
        idata.posterior = complete_intercepts(post, groups, forms, self.data.cohort_of, seed)
        return idata

    def population_vars(self) -> list[str]:
        return population_var_names(self.model)

    def initial_values(self, data: IndividualData | None = None) -> dict[str, np.ndarray]:
        """Data-informed, unjittered chain starts of the level parameters (``models.initial_values``), for
        this model's data or for ``data`` of the same design (a refit of the compiled model to new values)."""
        from bonebayes.models.initial_values import individual_initial_values

        return individual_initial_values(data or self.data, {v.name for v in self.model.free_RVs})

    @staticmethod
    def no_jitter(initial_values: dict[str, np.ndarray]) -> tuple[str, ...]:
        """The variables of :meth:`initial_values` started exactly there (``models.initial_values``)."""
        from bonebayes.models.initial_values import JITTERED

        return tuple(k for k in initial_values if k not in JITTERED)

    def data_hash(self) -> str:
        """Content hash of the canonical columns of both tables (independent of row order and extras)."""
        from bonebayes.datasets.io import dataframe_hash

        def canon(df: pd.DataFrame, cols: list[str]) -> pd.DataFrame:
            out = df.reindex(columns=cols).copy()
            for c in cols:
                if out[c].dtype.kind in "fc":
                    out[c] = out[c].round(12)
                elif out[c].dtype.kind != "b":
                    col = out[c].astype(object)
                    out[c] = col.where(col.notna(), "").astype(str).replace({"nan": "", "None": ""})
            return out.sort_values(cols).reset_index(drop=True)

        obs = canon(self.observations, ["subject", "cohort", "time_months", "variable", "value", "unit",
                                         "below_loq"])
        exp = canon(self.exposures, ["subject", "drug", "dose", "unit", "start_month", "stop_month",
                                      "every_months", "route"])
        return dataframe_hash(obs)[:32] + dataframe_hash(exp)[:32]

    TARGET_ACCEPT = 0.95
    """Default NUTS target acceptance. At 0.8 the default synthetic cohort gave a handful of divergences near
    small cohort SDs; at 0.9 the 100-subject recovery cohort (4 x (1000 + 1000)) gave 6 (seed 1) and 9
    (seed 2), spread over the posterior rather than at an extreme, at 0.95 it gave 2, with the same 31
    leapfrog steps per draw (tree depth 5 either way: a smaller step costs nothing here)."""

    def fit(self, *, draws: int = 1000, tune: int = 1000, chains: int = 4, seed: int = 0,
            sampler: str = "nutpie", progress: bool = True,
            target_accept: float | None = None):  # noqa: ANN201
        """Sample the posterior and run the diagnostics gate; returns a :class:`bonebayes.fit.Fit`.

        ``target_accept`` defaults to :attr:`TARGET_ACCEPT`.
        """
        import time

        from bonebayes.fit import Fit
        from bonebayes.inference import diagnose, provenance, sample

        free = {v.name for v in self.sampling_model.free_RVs}
        init = {k: v for k, v in self.initial_values().items() if k in free}
        t = time.perf_counter()
        idata = sample(self.sampling_model, sampler=sampler, draws=draws, tune=tune, chains=chains, seed=seed,
                       progress=progress, target_accept=target_accept or self.TARGET_ACCEPT, initvals=init,
                       no_jitter=self.no_jitter(init))
        idata = self.complete_posterior(idata, seed)
        wall = time.perf_counter() - t
        prov = provenance(config=self.config.model_dump(mode="json"), data_hash=self.data_hash(), seed=seed,
                          sampler=sampler, draws=draws, tune=tune, chains=chains, wall_time_s=wall,
                          extra={"model": "individual", "population_vars": self.population_vars()})
        verdict = diagnose(idata, self.population_vars())
        return Fit(idata=idata, provenance=prov, tables={"observations": self.observations,
                                                        "exposures": self.exposures},
                   verdict=verdict, model=self)
