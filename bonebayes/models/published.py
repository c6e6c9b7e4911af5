"""Meta-analytic model of published arm-level results, alone or joint with individual cohort data.

Every arm is a unit of the same physiology as a subject (population preset history + the arm's regimen,
``data/published_design.toml``), so published arms and individual cohorts share the population parameters.
For row j of arm a (control arm c) with model states C, B, m at the row's times t_a (reference) and t_b:

    BMD, pct_change_from_baseline   mu_j = 100 (r_a - 1) + d_s (t_b - t_a) / 12,  r = exp(m(t_b) - m(t_a))
    BMD, pct_diff_vs_control        mu_j = 100 (r_a - r_c)                      (the study drift d_s cancels)
    BMD, annual_rate_pct            mu_j = 100 (r_a - 1) 12 / (t_b - t_a) + d_s
    marker, pct_change              mu_j = 100 (exp(beta_q log(X(t_b) / X(t_a))) - 1),  X = C or B
    marker, pct_diff_vs_control     mu_j = (the same for arm a) - (the same for control c)
    level (log, centred per group)  mu_j = a_g + beta_q log(X(t_b) / X(0))   (marker levels)
                                    mu_j = a_g + sum_h g_analyte,h x_h(t_b)   (serum OPG / RANKL)

    y_j ~ StudentT(nu, mu_j, sqrt(se_j^2 + omega_k^2)),   se_j reported, or s_k sqrt(1/n_a [+ 1/n_c]) when not

The row error is Student-t (nu = 4 by default, ``PublishedConfig.nu``; ``None`` gives a Normal): between-trial
heterogeneity of published results is heavy-tailed (a few arms far from the rest, e.g. an early teriparatide
reading), and under a Normal those rows inflate omega_k and so widen every other row's interval.

Study random effects (non-centred): k_M of every arm in study s is k_M exp(tau_kM_study z_s) (responsiveness,
shared by the study's arms) and d_s = tau_drift u_s is an extra BMD drift (%/year) shared by its arms, so it
cancels in between-arm differences. beta_q is 1 for the anchor assays (serum CTX, P1NP, DXA). Rows held out
(leave-one-study-out) keep their predictions as deterministics (``pub_pred``, ``pub_sd``) but no likelihood,
so a held-out study's effects are draws from their population distribution: a prediction for a new study.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from bonebayes.datasets.published import DXA_SITES, PublishedEvidence, load_published
from bonebayes.models.population import PopulationParams, build_population, union
from bonebayes.models.priors import PRIORS
from bonebayes.physiology.backend import get_ops
from bonebayes.physiology.inputs import hormone_covariates
from bonebayes.physiology.schedule import Schedule, Unit, build_schedule
from bonebayes.physiology.simulate import at_times, simulate

CLASSES: tuple[str, ...] = ("bmd", "marker", "level")
"""Noise classes: each has its residual heterogeneity omega_k (and, without dispersion, s_k)."""


class PublishedConfig(BaseModel):
    """Settings of the published-arm model; stored beside the posterior in every saved fit."""

    model_config = ConfigDict(extra="forbid")

    name: str = "published"
    step_months: float = Field(1.0, gt=0, description="window grid step (months)")
    history_step_months: float = Field(1.0, gt=0, description="segment length in smooth pre-trial changes")
    ratio_driver: str = Field("latent", pattern="^(latent|serum)$")
    study_effects: bool = Field(True, description="study random effects on k_M and BMD drift")
    anabolic_coupling: bool = Field(True, description="anabolic drugs also raise resorption (kappa_ana)")
    holdout_studies: tuple[str, ...] = Field((), description="studies whose rows get no likelihood (LOSO)")
    nu: float | None = Field(4.0, gt=1, description="Student-t degrees of freedom of row errors; None = Normal")
    signalling: str = Field("separate", pattern="^(separate|ratio)$",
                            description="separate serum RANKL and OPG elasticities, or one ratio elasticity")
    precursor_pool: bool = Field(False, description="osteoclast-precursor pool: denosumab rebound (variant)")

    def model_dump(self, **kwargs):  # noqa: ANN003, ANN201
        """As pydantic's, without variant options left at their defaults (saved configs stay unchanged)."""
        from bonebayes.models.individual import _drop_default_variants

        return _drop_default_variants(super().model_dump(**kwargs), PUBLISHED_VARIANT_DEFAULTS)


PUBLISHED_VARIANT_DEFAULTS: dict[str, object] = {"signalling": "separate", "precursor_pool": False}


@dataclass
class PublishedData:
    """Arrays the published block needs, derived from :class:`PublishedEvidence`."""

    rows: pd.DataFrame  # usable rows + 'fit' (bool) + 'row_class'
    units: list[str]  # "study/arm"
    schedule: Schedule
    sites: tuple[str, ...]
    hormones: tuple[str, ...]
    studies: list[str]  # studies with BMD rows (study random effects)
    study_of_unit: np.ndarray  # (U,) index into studies, -1 without BMD rows
    points_unit: np.ndarray  # (P,) unit of each evaluation point
    points_time: np.ndarray  # (P,) window time (months)
    pa: np.ndarray  # (R,) point of the arm at t_a
    pb: np.ndarray  # (R,) point of the arm at t_b
    ca: np.ndarray  # (R,) point of the control at t_a (-1 if none)
    cb: np.ndarray
    site: np.ndarray  # (R,) site index (BMD rows, else 0)
    study: np.ndarray  # (R,) study index for the drift (-1 without)
    drift_factor: np.ndarray  # (R,) years multiplying d_s (0 for differences and non-BMD rows)
    rate_factor: np.ndarray  # (R,) 12 / (t_b - t_a) for annual rates, else 1
    latent_C: np.ndarray  # (R,) marker rows: True for C, False for B
    assay: np.ndarray  # (R,) index into assays (+1; 0 = anchor)
    assays: list[str]  # non-anchor marker assays
    group: np.ndarray  # (R,) level group index (-1 for non-level rows)
    groups: list[str]
    serum_x: np.ndarray  # (R, H) hormone covariates at t_b (serum level rows)
    is_rankl: np.ndarray  # (R,)
    row_class: np.ndarray  # (R,) index into CLASSES
    y: np.ndarray  # (R,) observation on the model scale
    se: np.ndarray  # (R,) reported SE on the model scale (NaN: fitted)
    se_scale: np.ndarray  # (R,) multiplier of s_k when se is NaN
    group_centre: np.ndarray  # (R,) the log-level centre added back for the reported scale
    fit: np.ndarray  # (R,) bool: row has a likelihood
    nu: float | None = None  # Student-t degrees of freedom of the row errors (None: Normal)

    @property
    def n_rows(self) -> int:
        return len(self.y)


def _unit(ev: PublishedEvidence, key: str) -> Unit:
    d = ev.designs[key]
    return Unit(key, d.regimen, d.sex, d.levels)


def prepare_published(ev: PublishedEvidence, config: PublishedConfig | None = None) -> PublishedData:
    """Build units, the schedule and row arrays for the published block."""
    cfg = config or PublishedConfig()
    rows = ev.usable.copy()
    unknown = sorted(set(cfg.holdout_studies) - set(rows["study"]))
    if unknown:
        raise ValueError(f"holdout_studies {unknown} have no usable rows; studies: {', '.join(ev.studies())}")
    rows["fit"] = ~rows["study"].isin(cfg.holdout_studies)
    keys = list(dict.fromkeys(list(rows["arm_key"]) + [k for k in rows["control_key"] if k]))
    offset = {k: ev.designs[k].time_offset_months for k in keys}
    units = [_unit(ev, k) for k in keys]
    uidx = {k: i for i, k in enumerate(keys)}
    # evaluation times (window time = arm time + offset)
    t_rel = rows["time_months"].to_numpy(float)
    t_end_rel = rows["time_end_months"].to_numpy(float)
    meas = rows["measure"].to_numpy()
    off = rows["arm_key"].map(offset).to_numpy(float)
    ta = np.where(meas == "annual_rate_pct", off + t_rel, off)
    tb = np.where(meas == "annual_rate_pct", off + t_end_rel, off + t_rel)
    t_end = float(np.max(tb)) if len(tb) else 1.0
    sched = build_schedule(units, t_end, t0=0.0, step=cfg.step_months, history_step=cfg.history_step_months)
    points: dict[tuple[int, float], int] = {}

    def point(u: int, t: float) -> int:
        return points.setdefault((u, round(float(t), 9)), len(points))

    ua = rows["arm_key"].map(uidx).to_numpy()
    uc = np.array([uidx[k] if k else -1 for k in rows["control_key"]])
    pa = np.array([point(u, t) for u, t in zip(ua, ta)])
    pb = np.array([point(u, t) for u, t in zip(ua, tb)])
    ca = np.array([point(u, t) if u >= 0 else -1 for u, t in zip(uc, ta)])
    cb = np.array([point(u, t) if u >= 0 else -1 for u, t in zip(uc, tb)])
    pts = np.array(list(points), dtype=float).reshape(-1, 2)
    kind = rows["model_kind"].to_numpy()
    sites = tuple(s for s in DXA_SITES if s in set(rows["model_site"])) + tuple(
        sorted({s for s in rows["model_site"] if s and s not in DXA_SITES}))
    site = np.array([sites.index(s) if s else 0 for s in rows["model_site"]])
    bmd_rows = kind == "bmd"
    studies = list(dict.fromkeys(rows.loc[bmd_rows, "study"]))
    sidx = {s: i for i, s in enumerate(studies)}
    study_of_unit = np.array([sidx.get(k.split("/", 1)[0], -1) for k in keys])
    study = np.array([sidx.get(s, -1) for s in rows["study"]])
    dt = tb - ta
    drift = np.where(bmd_rows & (meas == "pct_change_from_baseline"), dt / 12.0,
                     np.where(bmd_rows & (meas == "annual_rate_pct"), 1.0, 0.0))
    rate = np.where(meas == "annual_rate_pct", 12.0 / np.where(dt > 0, dt, 1.0), 1.0)
    anchors = {"ctx_serum", "p1np_serum", "dxa", "qct"}
    assays = sorted({a for a, k in zip(rows["assay"], kind) if k == "marker" and a not in anchors})
    assay = np.array([assays.index(a) + 1 if (k == "marker" and a in assays) else 0
                      for a, k in zip(rows["assay"], kind)])
    is_level = meas == "level"
    groups = list(dict.fromkeys(rows.loc[is_level, "assay"]))
    group = np.array([groups.index(a) if lv else -1 for a, lv in zip(rows["assay"], is_level)])
    value = rows["value"].to_numpy(float)
    y = np.where(is_level, np.log(np.where(is_level, value, 1.0)), value)
    centre = np.zeros(len(rows))
    for g in range(len(groups)):
        m = group == g
        centre[m] = y[m].mean()
    y = y - centre
    se = rows["se"].to_numpy(float)
    se = np.where(is_level, se / np.where(is_level, value, 1.0), se)
    n = rows["n_used"].to_numpy(float)
    n_c = rows["n_control"].to_numpy(float)
    scale = np.sqrt(1.0 / n + np.where(np.isfinite(n_c), 1.0 / np.where(np.isfinite(n_c), n_c, 1.0), 0.0))
    scale = np.where(meas == "annual_rate_pct", scale * rate, scale)
    scale = np.where(np.isfinite(se), 0.0, scale)  # unused where the SE is reported (keeps gradients finite)
    row_class = np.where(is_level, 2, np.where(bmd_rows, 0, 1))
    # hormone covariates at each level row's time, just before anything scheduled at that time
    hormones = sched.active_hormones()
    hcols = [sched.hormones.index(h) for h in hormones]
    serum_x = np.zeros((len(rows), len(hormones)))
    for j in np.flatnonzero(kind == "serum"):
        u = units[ua[j]]
        serum_x[j] = hormone_covariates(u.regimen, np.array([tb[j] - 1e-6]), u.sex, u.levels)[0, hcols]
    rows["row_class"] = [CLASSES[k] for k in row_class]
    return PublishedData(
        rows=rows.reset_index(drop=True), units=keys, schedule=sched, sites=sites, hormones=hormones,
        studies=studies, study_of_unit=study_of_unit, points_unit=pts[:, 0].astype(int), points_time=pts[:, 1],
        pa=pa, pb=pb, ca=ca, cb=cb, site=site, study=study, drift_factor=drift, rate_factor=rate,
        latent_C=rows["latent"].to_numpy() == "C", assay=assay, assays=assays, group=group, groups=groups,
        serum_x=serum_x, is_rankl=rows["latent"].to_numpy() == "rankl", row_class=row_class, y=y, se=se,
        se_scale=scale, group_centre=centre, fit=rows["fit"].to_numpy(bool), nu=cfg.nu,
    )


def add_published_block(data: PublishedData, pop: PopulationParams, config: PublishedConfig) -> None:
    """Add study effects, assay scales, heterogeneity and the arm-level likelihood to the current model."""
    import pymc as pm
    import pytensor.tensor as pt

    ops = get_ops("pytensor")
    model = pm.modelcontext(None)
    model.add_coord("pub_row", np.arange(data.n_rows))
    model.add_coord("pub_fit_row", np.flatnonzero(data.fit))
    sched = data.schedule
    k_M, lam = pop.site_rates(data.sites)
    U = len(data.units)
    if config.study_effects and data.studies:
        model.add_coord("study", data.studies)
        tau_s = PRIORS["tau_kM_study"].build("tau_kM_study")
        z_s = pm.Normal("z_kM_study", 0.0, 1.0, dims="study")
        tau_d = PRIORS["tau_drift"].build("tau_drift")
        u_d = pm.Normal("z_drift_study", 0.0, 1.0, dims="study")
        z_ext = pt.concatenate([z_s, pt.zeros((1,))])
        mult = pt.exp(tau_s * z_ext[data.study_of_unit])  # index -1 -> 0
        kM_unit = k_M[None, :] * mult[:, None]
        drift = pt.concatenate([tau_d * u_d, pt.zeros((1,))])[data.study]
    else:
        kM_unit = k_M[None, :] * pt.ones((U, 1))
        drift = pt.zeros((data.n_rows,))
    params = pop.physiology(data.hormones, sched.antiresorptives, sched.anabolics, kM_unit, lam)
    node, tau = sched.locate(data.points_time)
    need_tau = bool(np.any(tau > 0))
    traj, tau_co = simulate(sched.restrict_hormones(data.hormones), params, len(data.sites), ops,
                            extra_h=tau if need_tau else None)
    st = at_times(traj, node, data.points_unit, kM_unit[data.points_unit] if need_tau else None,
                  tau_co if need_tau else None, sched.n_window)
    R = data.n_rows
    meas = data.rows["measure"].to_numpy()
    kind = data.rows["model_kind"].to_numpy()
    has_c = data.ca >= 0
    ca, cb = np.where(has_c, data.ca, data.pa), np.where(has_c, data.cb, data.pb)
    # BMD: ratio between the row's times (m is the log BMD ratio to the young-adult reference)
    m = st.m
    r_arm = pt.exp(m[data.pb, data.site] - m[data.pa, data.site])
    r_ctl = pt.exp(m[cb, data.site] - m[ca, data.site])
    bmd_pred = pt.switch(meas == "pct_diff_vs_control", 100.0 * (r_arm - r_ctl),
                         100.0 * (r_arm - 1.0) * data.rate_factor) + drift * data.drift_factor
    # markers: assay-scaled log ratio of C or B
    if data.assays:
        model.add_coord("assay", data.assays)
        beta = pt.concatenate([pt.ones((1,)), PRIORS["beta_assay"].build("beta_assay", dims="assay")])[data.assay]
    else:
        beta = pt.ones((R,))
    logC, logB = pt.log(st.C), pt.log(st.B)

    def log_x(p: np.ndarray):  # noqa: ANN202
        return pt.switch(data.latent_C, logC[p], logB[p])

    lr_arm = beta * (log_x(data.pb) - log_x(data.pa))
    lr_ctl = beta * (log_x(cb) - log_x(ca))
    marker_pred = pt.switch(meas == "pct_diff_vs_control", 100.0 * (pt.expm1(lr_arm) - pt.expm1(lr_ctl)),
                            100.0 * pt.expm1(lr_arm))
    # levels: centred log scale with a group intercept
    if data.groups:
        model.add_coord("level_group", data.groups)
        a_g = pt.concatenate([PRIORS["a_level"].build("a_level", dims="level_group"), pt.zeros((1,))])
        coefs = pop.hormone_coefs(data.hormones)
        if data.hormones:
            slope = pt.switch(data.is_rankl[:, None], coefs["g_rankl"][None, :], coefs["g_opg"][None, :])
            serum_lin = pt.sum(data.serum_x * slope, axis=1)
        else:
            serum_lin = pt.zeros((R,))
        level_pred = a_g[data.group] + pt.switch(kind == "serum", serum_lin, lr_arm)
    else:
        level_pred = pt.zeros((R,))
    pred = pt.switch(meas == "level", level_pred, pt.switch(kind == "bmd", bmd_pred, marker_pred))
    pred = pm.Deterministic("pub_pred", pred, dims="pub_row")
    # noise: reported SE (or fitted reporting scale) plus residual heterogeneity
    present = sorted(set(data.row_class.tolist()))
    omega = pt.zeros((len(CLASSES),))
    s_k = pt.ones((len(CLASSES),))
    for k in present:
        omega = pt.set_subtensor(omega[k], PRIORS[f"omega_{CLASSES[k]}"].build(f"omega_{CLASSES[k]}"))
        if np.any(~np.isfinite(data.se) & (data.row_class == k)):
            s_k = pt.set_subtensor(s_k[k], PRIORS[f"s_{CLASSES[k]}"].build(f"s_{CLASSES[k]}"))
    se_known = np.isfinite(data.se)
    se = pt.switch(se_known, np.where(se_known, data.se, 0.0), s_k[data.row_class] * data.se_scale)
    sd = pm.Deterministic("pub_sd", pt.sqrt(se**2 + omega[data.row_class] ** 2), dims="pub_row")
    f = np.flatnonzero(data.fit)
    if data.nu is None:
        pm.Normal("obs_published", pred[f], sd[f], observed=data.y[f], dims="pub_fit_row")
    else:
        pm.StudentT("obs_published", nu=data.nu, mu=pred[f], sigma=sd[f], observed=data.y[f], dims="pub_fit_row")


PUBLISHED_POPULATION_VARS: tuple[str, ...] = (
    "tau_kM_study", "tau_drift", "beta_assay", "omega_bmd", "omega_marker", "omega_level", "s_bmd", "s_marker",
)


def build_published_model(data: PublishedData, config: PublishedConfig | None = None):  # noqa: ANN201
    """The PyMC model of the published arms alone."""
    import pymc as pm

    cfg = config or PublishedConfig()
    sched = data.schedule
    coords = {"site": list(data.sites), "hormone": list(data.hormones),
              "antiresorptive": list(sched.antiresorptives), "anabolic": list(sched.anabolics)}
    with pm.Model(coords=coords) as model:
        pop = build_population(data.sites, data.hormones, sched.antiresorptives, sched.anabolics,
                               cfg.ratio_driver, cfg.anabolic_coupling, cfg.signalling, cfg.precursor_pool)
        add_published_block(data, pop, cfg)
    return model


def build_joint_model(individual, published: PublishedData, ind_config=None,  # noqa: ANN001, ANN201
                      pub_config: PublishedConfig | None = None):
    """Published arms and an individual cohort sharing one set of population parameters."""
    import pymc as pm

    from bonebayes.models.individual import ModelConfig, add_individual_block

    icfg = ind_config or ModelConfig()
    pcfg = pub_config or PublishedConfig()
    if icfg.ratio_driver != pcfg.ratio_driver:
        raise ValueError("the individual and published configurations must use the same ratio_driver")
    isched, psched = individual.schedule, published.schedule
    from bonebayes.physiology.inputs import ANABOLICS, ANTIRESORPTIVES
    from bonebayes.regimens import HORMONES

    sites = union(individual.sites, published.sites, order=DXA_SITES)
    hormones = union(isched.active_hormones(), published.hormones, order=HORMONES)
    res = union(isched.antiresorptives, psched.antiresorptives, order=ANTIRESORPTIVES)
    ana = union(isched.anabolics, psched.anabolics, order=ANABOLICS)
    coords = {"site": list(sites), "hormone": list(hormones), "antiresorptive": list(res), "anabolic": list(ana)}
    with pm.Model(coords=coords) as model:
        pop = build_population(sites, hormones, res, ana, pcfg.ratio_driver, pcfg.anabolic_coupling,
                               pcfg.signalling, pcfg.precursor_pool)
        add_individual_block(individual, pop, icfg, integrate=False)  # no draw-back step here
        add_published_block(published, pop, pcfg)
    return model


def published_var_names(model) -> list[str]:  # noqa: ANN001
    """Population-level parameters of a published or joint model (for diagnostics)."""
    from bonebayes.models.individual import population_var_names

    names = {v.name for v in model.free_RVs} | {v.name for v in model.deterministics}
    base = population_var_names(model)
    return base + [v for v in PUBLISHED_POPULATION_VARS if v in names and v not in base]


@dataclass
class PublishedModel:
    """Meta-analytic model of published arms (pymc-marketing-style build / fit; ``Fit.save`` / ``Fit.load``).

    >>> pm_ = PublishedModel()                       # the shipped data/ (load_published())
    >>> fit = pm_.fit(draws=1000, tune=1000, seed=1)
    >>> fit.verdict.ok
    """

    evidence: PublishedEvidence | None = None
    config: PublishedConfig | dict | None = None
    _model: object = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.evidence = self.evidence or load_published()
        if not isinstance(self.config, PublishedConfig):
            self.config = PublishedConfig(**(self.config or {}))
        self.data = prepare_published(self.evidence, self.config)

    @property
    def model(self):  # noqa: ANN201
        if self._model is None:
            self._model = build_published_model(self.data, self.config)
        return self._model

    def population_vars(self) -> list[str]:
        return published_var_names(self.model)

    def data_hash(self) -> str:
        from bonebayes.datasets.io import dataframe_hash

        cols = ["record_id", "study", "arm", "endpoint", "site", "measure", "time_months", "time_end_months",
                "value", "se", "n_used", "n_control", "assay", "model_site"]
        design = pd.DataFrame([{"key": k, "regimen": repr(d.regimen), "sex": d.sex, "levels": repr(d.levels),
                                "n": d.n_assumed} for k, d in sorted(self.evidence.designs.items())])
        return dataframe_hash(self.evidence.usable[cols])[:32] + dataframe_hash(design)[:32]

    TARGET_ACCEPT = 0.9
    """Default NUTS target acceptance (the main job's fit passed the gate with 0 divergences at 0.9)."""

    def fit(self, *, draws: int = 1000, tune: int = 1000, chains: int = 4, seed: int = 0,
            sampler: str = "nutpie", progress: bool = True,
            target_accept: float | None = None):  # noqa: ANN201
        """Sample the posterior and run the diagnostics gate; returns a :class:`bonebayes.fit.Fit`."""
        return _fit(self, "published", draws=draws, tune=tune, chains=chains, seed=seed, sampler=sampler,
                    progress=progress, target_accept=target_accept or self.TARGET_ACCEPT,
                    tables={"published_rows": self.data.rows, "published_excluded": self.evidence.excluded})


def _fit(obj, kind: str, *, tables: dict[str, pd.DataFrame], **kw):  # noqa: ANN001, ANN202
    from bonebayes.fit import Fit
    from bonebayes.inference import diagnose, provenance, sample

    t = time.perf_counter()
    scales = [v.name for v in obj.model.free_RVs if v.name.startswith(("omega_", "s_", "tau_"))]
    idata = sample(obj.model, no_jitter=scales, **kw)
    wall = time.perf_counter() - t
    prov = provenance(config=obj.config.model_dump(mode="json"), data_hash=obj.data_hash(), seed=kw["seed"],
                      sampler=kw["sampler"], draws=kw["draws"], tune=kw["tune"], chains=kw["chains"],
                      wall_time_s=wall, extra={"model": kind, "population_vars": obj.population_vars()})
    verdict = diagnose(idata, obj.population_vars())
    return Fit(idata=idata, provenance=prov, tables=tables, verdict=verdict, model=obj)


def holdout_config(config: PublishedConfig, studies: Sequence[str]) -> PublishedConfig:
    return config.model_copy(update={"holdout_studies": tuple(studies)})
