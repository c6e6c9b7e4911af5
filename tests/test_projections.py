"""Treatment projections (issue 4): scenarios, the batched physics, bands, contrasts, outputs, CLI, plots."""

from __future__ import annotations

import numpy as np

from bonebayes.physiology.schedule import Unit, build_schedule
from bonebayes.physiology.signalling import DrugEffects
from bonebayes.physiology.simulate import PhysiologyParams, at_times, simulate
from bonebayes.physiology.turnover import TurnoverRates
from bonebayes.regimens import Dose, population_preset


# --------------------------------------------------------------------------- batched physics
def test_batched_simulation_equals_one_draw_at_a_time() -> None:
    """A draw axis on the parameters gives, draw by draw, exactly the states of scalar-parameter runs."""
    pre = population_preset("postmenopausal", years_since_menopause=20)
    units = [
        Unit("placebo", pre.history),
        Unit("dmab", pre.history + (Dose(drug="denosumab", dose=60, unit="mg", every_months=6, start_month=0,
                                         stop_month=18),)),
        Unit("switch", pre.history + (Dose(drug="teriparatide", dose=20, unit="ug/day", start_month=0,
                                           stop_month=18),
                                      Dose(drug="alendronate", dose=10, unit="mg/day", start_month=18)),
             levels={"thyroid": 2.0}),
    ]
    sched = build_schedule(units, 36.5)
    sched = sched.restrict_hormones(sched.active_hormones())
    H, S, D = len(sched.hormones), 3, 5
    rng = np.random.default_rng(0)
    draws = dict(
        k_C=np.exp(rng.normal(0, 0.3, D)), k_B=0.35 * np.exp(rng.normal(0, 0.3, D)),
        k_M=0.015 * np.exp(rng.normal(0, 0.3, (D, S))), lam=0.01 * np.exp(rng.normal(0, 0.3, (D, S))),
        gamma=rng.normal(0, 0.3, (D, H)), e_form=rng.normal(0, 0.1, (D, H)),
        emax_res=rng.uniform(0.5, 0.9, (D, 2)), ec50_res=rng.uniform(0.05, 0.3, (D, 2)),
        emax_ana=rng.uniform(0.2, 0.6, (D, 1)), ec50_ana=rng.uniform(0.3, 0.9, (D, 1)),
        kappa=rng.uniform(0, 1, (D, 1)))

    def params(i: int | slice) -> PhysiologyParams:
        v = {k: a[i] for k, a in draws.items()}
        return PhysiologyParams(v["gamma"], v["e_form"], DrugEffects(v["emax_res"], v["ec50_res"]),
                                DrugEffects(v["emax_ana"], v["ec50_ana"]),
                                TurnoverRates(v["k_C"], v["k_B"], v["k_M"], v["lam"]), 1.0, v["kappa"])

    times = np.array([0.0, 3.0, 12.5, 36.5])
    node, tau = sched.locate(times)
    nn, uu = np.tile(node, 3), np.repeat(np.arange(3), len(times))
    traj, co = simulate(sched, params(slice(None)), S, extra_h=np.tile(tau, 3))
    st = at_times(traj, nn, uu, draws["k_M"], co, sched.n_window)
    assert traj.state.m.shape == (sched.n_window + 1, 3, D, S)
    for i in range(D):
        t1, c1 = simulate(sched, params(i), S, extra_h=np.tile(tau, 3))
        s1 = at_times(t1, nn, uu, draws["k_M"][i], c1, sched.n_window)
        for one, batched in zip(t1.state, traj.state):
            np.testing.assert_allclose(one, batched[:, :, i], rtol=1e-12, atol=1e-14)
        for one, batched in zip(s1, st):
            np.testing.assert_allclose(one, batched[:, i], rtol=1e-12, atol=1e-14)
