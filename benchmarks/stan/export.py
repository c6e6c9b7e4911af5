"""Data for ``reference.stan`` from a bonebayes :class:`IndividualModel`, and point conversion for checks.

Everything that does not depend on parameters is computed here by bonebayes itself (schedule, hormone
covariates, drug exposures, observation locations, centring choices, prior hyperparameters), so the Stan
program and the PyMC model see identical inputs. ``stan_point`` maps a PyMC point (constrained values by
variable name) to the Stan parameter names, for the log-density agreement check in ``bench_reference.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

STAN_FILE = Path(__file__).with_name("reference.stan")


def _layout(model: Any) -> dict[str, Any]:
    """Centring choices per level as Stan data, from bonebayes' own ``models.individual.level_layout``."""
    from bonebayes.models.individual import level_layout

    d = model.data
    hier = model.config.cohort_effects == "hierarchical" and len(d.cohorts) > 1
    code = {"pooled": 0, "offset": 1, "direct": 2, "none": 0}
    cohort_mode, subj_mode, cslot, sslot = [], [], [], []
    counts = {"cc": 0, "cn": 0, "sc": 0, "sn": 0}
    for lv, (cohort, subject) in level_layout(d, model.config).items():
        cohort_mode.append(code[cohort])
        subj_mode.append(code[subject])
        ckey = {"direct": "cc", "offset": "cn"}.get(cohort)
        skey = {"direct": "sc", "offset": "sn"}.get(subject)
        for key, slots in ((ckey, cslot), (skey, sslot)):
            if key:
                counts[key] += 1
            slots.append(counts[key] if key else 0)
    return {"hier": int(hier), "cohort_mode": cohort_mode, "subj_mode": subj_mode, "cohort_slot": cslot,
            "subj_slot": sslot, "n_cc": counts["cc"], "n_cn": counts["cn"], "n_sc": counts["sc"],
            "n_sn": counts["sn"]}


def stan_data(model: Any) -> dict[str, Any]:
    """The data block of ``reference.stan`` for ``model`` (an IndividualModel with the default config)."""
    from bonebayes.models.individual import ModelConfig
    from bonebayes.models.priors import HORMONE_MEANS, HORMONE_SDS, PRIORS, SITE_KM_MEANS

    cfg = model.config
    default = ModelConfig()
    for k in ("ratio_driver", "random_kM", "cohort_effects"):
        if getattr(cfg, k) != getattr(default, k):
            raise ValueError(f"reference.stan translates the default configuration only ({k}={getattr(cfg, k)!r})")
    d = model.data
    sched = d.schedule
    active = sched.active_hormones()
    sc = sched.restrict_hormones(active)
    H, Dr, Da = len(active), len(sc.antiresorptives), len(sc.anabolics)
    N, S = d.n_subjects, len(d.sites)

    def arr(a: np.ndarray) -> list:
        return np.asarray(a, dtype=float).tolist()

    mk, bm, se = d.markers, d.bmd, d.serum
    hcols = [sched.hormones.index(h) for h in active]

    def hvec(name: str) -> tuple[list, list]:
        mu = [HORMONE_MEANS[name][h] for h in active]
        sd = [HORMONE_SDS.get(name, {}).get(h, PRIORS[name].b) for h in active]
        return mu, sd

    mu_loc, mu_sd, sig_dist, sig_a, sig_b, tau_sd = [], [], [], [], [], []
    for lv in d.levels:
        key = "bmd" if lv.startswith("bmd_") else lv
        mu_loc.append(PRIORS[f"mu_{key}"].a)
        mu_sd.append(PRIORS[f"mu_{key}"].b)
        p = PRIORS[f"sigma_{key}"]
        sig_dist.append(2 if p.dist == "lognormal" else 3)
        sig_a.append(p.a)
        sig_b.append(p.b)
        tau_sd.append(PRIORS["tau_bmd_subject" if key == "bmd" else "tau_subject"].a)
    for name, dist in (("k_C", "lognormal"), ("k_B", "lognormal"), ("k_M", "lognormal"), ("lam", "lognormal"),
                       ("emax_res", "beta"), ("ec50_res", "lognormal"), ("eref_ana", "lognormal"),
                       ("ec50_ana", "lognormal"), ("tau_cohort", "gamma"), ("tau_kM", "halfnormal")):
        if PRIORS[name].dist != dist:
            raise ValueError(f"prior of {name} is {PRIORS[name].dist}, reference.stan assumes {dist}")
    g = {n: hvec(n) for n in ("gamma", "e_form", "g_rankl", "g_opg")}
    out = {
        "N": N, "S": S, "H": H, "Dr": Dr, "Da": Da, "L": len(d.levels), "NC": len(d.cohorts),
        "cohort_of": (np.asarray(d.cohort_of) + 1).tolist(),
        "Jp": int(sc.patterns.x.shape[0]), "P": int(sc.patterns.x.shape[1]), "hist_step": float(sc.history_step),
        "px": arr(sc.patterns.x), "pAr": arr(sc.patterns.A_res), "pAa": arr(sc.patterns.A_ana),
        "unit_pattern": (sc.unit_pattern + 1).tolist(), "unit_node": (sc.unit_node + 1).tolist(),
        "unit_tau": arr(sc.unit_tau), "tail_h": arr(sc.tail_h),
        "tx": arr(sc.tail.x), "tAr": arr(sc.tail.A_res), "tAa": arr(sc.tail.A_ana),
        "J": int(sc.n_window), "step_h": float(sc.step),
        "wx": arr(sc.window.x), "wAr": arr(sc.window.A_res), "wAa": arr(sc.window.A_ana),
        "n_mk": len(mk), "mk_unit": (mk.unit + 1).tolist(), "mk_node": (mk.node + 1).tolist(),
        "mk_tau": arr(mk.tau), "mk_isC": [int(v == "ctx") for v in mk.variable],
        "mk_level": (mk.level + 1).tolist(), "mk_cens": mk.censored.astype(int).tolist(), "mk_y": arr(mk.log_value),
        "n_bm": len(bm), "bm_unit": (bm.unit + 1).tolist(), "bm_node": (bm.node + 1).tolist(),
        "bm_tau": arr(bm.tau), "bm_site": (np.asarray(d.site_of_bmd) + 1).tolist(),
        "bm_level": (bm.level + 1).tolist(), "bm_y": arr(bm.log_value),
        "n_se": len(se), "se_unit": (se.unit + 1).tolist(), "se_level": (se.level + 1).tolist(),
        "se_isR": [int(v == "rankl") for v in se.variable],
        "se_x": arr(d.serum_x[:, hcols].reshape(len(se), H)), "se_y": arr(se.log_value),
        **_layout(model),
        "pr_kC": [PRIORS["k_C"].a, PRIORS["k_C"].b], "pr_kB": [PRIORS["k_B"].a, PRIORS["k_B"].b],
        "pr_kM_mu": [SITE_KM_MEANS.get(s, PRIORS["k_M"].a) for s in d.sites], "pr_kM_sd": PRIORS["k_M"].b,
        "pr_lam": [PRIORS["lam"].a, PRIORS["lam"].b],
        "pr_gamma_mu": g["gamma"][0], "pr_gamma_sd": g["gamma"][1],
        "pr_eform_mu": g["e_form"][0], "pr_eform_sd": g["e_form"][1],
        "pr_grankl_mu": g["g_rankl"][0], "pr_grankl_sd": g["g_rankl"][1],
        "pr_gopg_mu": g["g_opg"][0], "pr_gopg_sd": g["g_opg"][1],
        "pr_emax_res": [PRIORS["emax_res"].a, PRIORS["emax_res"].b],
        "pr_ec50_res": [PRIORS["ec50_res"].a, PRIORS["ec50_res"].b],
        "pr_eref_ana": [PRIORS["eref_ana"].a, PRIORS["eref_ana"].b],
        "pr_ec50_ana": [PRIORS["ec50_ana"].a, PRIORS["ec50_ana"].b],
        "pr_mu_loc": mu_loc, "pr_mu_sd": mu_sd, "pr_sig_dist": sig_dist, "pr_sig_a": sig_a, "pr_sig_b": sig_b,
        "pr_tau_cohort_shape": PRIORS["tau_cohort"].a, "pr_tau_cohort_rate": PRIORS["tau_cohort"].b, "pr_tau_subject": tau_sd, "pr_tau_kM": PRIORS["tau_kM"].a,
    }
    return out


def stan_point(model: Any, point: dict[str, np.ndarray]) -> dict[str, Any]:
    """Constrained PyMC values by name -> Stan parameter values (for log-density comparisons)."""
    d = model.data
    lay = _layout(model)
    N, NC = d.n_subjects, len(d.cohorts)
    out = {k: np.asarray(point[k], dtype=float) for k in
           ("k_C", "k_B", "k_M", "lam", "gamma", "e_form", "g_rankl", "g_opg", "emax_res", "ec50_res",
            "eref_ana", "ec50_ana", "tau_subject", "tau_kM", "z_kM")}
    out["sigma"] = np.array([float(point[f"sigma_{lv}"]) for lv in d.levels])
    hier = bool(lay["hier"])
    out["tau_cohort"] = np.asarray(point["tau_cohort"], float) if hier else np.zeros(0)
    out["z_mu"] = np.asarray(point["z_mu_level"], float) if hier else np.zeros(0)
    out["mu_free"] = np.zeros(0) if hier else np.asarray(point["mu_level"], float)
    cm, cd = np.zeros(lay["n_cc"]), np.zeros((lay["n_cc"], NC - 1))
    cn = np.zeros((lay["n_cn"], NC))
    sc, sn = np.zeros((lay["n_sc"], N)), np.zeros((lay["n_sn"], N))
    for k, lv in enumerate(d.levels):
        if lay["cohort_mode"][k] == 2:
            cm[lay["cohort_slot"][k] - 1] = point[f"cohort_mean_{lv}"]
            cd[lay["cohort_slot"][k] - 1] = np.asarray(point[f"cohort_dev_{lv}"])[:-1]
        elif lay["cohort_mode"][k] == 1:
            cn[lay["cohort_slot"][k] - 1] = point[f"z_cohort_{lv}"]
        if lay["subj_mode"][k] == 2:
            sc[lay["subj_slot"][k] - 1] = point[f"a_{lv}"]
        elif lay["subj_mode"][k] == 1:
            sn[lay["subj_slot"][k] - 1] = point[f"z_{lv}"]
    out.update(cohort_mean=cm, cohort_dev_raw=cd, z_cohort=cn, a_c=sc, z_subj=sn)
    return {k: (v.tolist() if np.ndim(v) else float(v)) for k, v in out.items()}


# names of the population parameters in the Stan output, as in IndividualModel.population_vars()
STAN_POPULATION = ("k_C", "k_B", "k_M", "lam", "gamma", "e_form", "g_rankl", "g_opg", "emax_res", "ec50_res",
                   "eref_ana", "ec50_ana", "mu_level", "tau_subject", "tau_cohort", "tau_kM", "sigma")


def build_posterior(model: Any, seed: int = 1) -> Any:
    """``stan.build`` of the reference program on ``model``'s data (PyStan 3; the C++ build is cached).

    httpstan runs ``stanc --warn-pedantic`` with a hard 1-second timeout; on this program it takes 0.9 s
    unloaded, so on a busy machine the build fails with ``TimeoutExpired``. The timeout is raised to 120 s.
    """
    import subprocess
    import types

    import httpstan.compile
    import stan

    def run(*args: Any, **kwargs: Any) -> Any:
        kwargs["timeout"] = max(kwargs.get("timeout") or 0, 120)
        return subprocess.run(*args, **kwargs)

    httpstan.compile.subprocess = types.SimpleNamespace(run=run)
    return stan.build(STAN_FILE.read_text(), data=stan_data(model), random_seed=seed)
