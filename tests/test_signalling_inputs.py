"""Tests for the signalling layer, the regimen-driven inputs, schedules and the NumPy simulation."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bonebayes.physiology.inputs import (
    drug_exposure,
    event_times,
    hormone_covariates,
    hormone_levels,
)
from bonebayes.physiology.schedule import Schedule, Unit, build_schedule
from bonebayes.physiology.signalling import (
    DrugEffects,
    formation_enhancement,
    resorption_inhibition,
    stimuli,
)
from bonebayes.physiology.simulate import PhysiologyParams, at_times, simulate
from bonebayes.physiology.turnover import TurnoverRates, TurnoverState, propagate
from bonebayes.regimens import GLUCOCORTICOID_SCALE, HORMONES, Dose

NH = len(HORMONES)
IE2 = HORMONES.index("estradiol")
IGC = HORMONES.index("glucocorticoid")
S = 2  # skeletal sites

# --------------------------------------------------------------------------- signalling


def no_drug() -> DrugEffects:
    return DrugEffects(np.zeros(0), np.zeros(0))


def test_reference_stimuli_are_one() -> None:
    x = np.zeros((5, 3, NH))
    gamma, e_form = np.linspace(-1, 1, NH), np.linspace(2, -0.5, NH)
    S_R, S_F = stimuli(x, None, None, gamma, e_form, no_drug(), no_drug())
    np.testing.assert_array_equal(S_R, 1.0)
    np.testing.assert_array_equal(S_F, 1.0)
    assert S_R.shape == S_F.shape == (5, 3)
    # drugs present on the axis but with zero exposure
    eff = DrugEffects(np.array([0.8, 0.5]), np.array([0.3, 2.0]))
    S_R, S_F = stimuli(x, np.zeros((5, 3, 2)), np.zeros((5, 3, 2)), gamma, e_form, eff, eff, alpha=1.7)
    np.testing.assert_array_equal(S_R, 1.0)
    np.testing.assert_array_equal(S_F, 1.0)


def test_antiresorptive_emax_lowers_resorption() -> None:
    x = np.zeros((1, NH))
    g = np.zeros(NH)
    eff = DrugEffects(np.array([0.8]), np.array([0.5]))
    S_R, S_F = stimuli(x, np.array([[1e12]]), None, g, g, eff, no_drug())
    assert S_R[0] == pytest.approx(1.0 - 0.8, rel=1e-9)
    assert S_F[0] == 1.0
    # at EC50 half the maximal effect
    S_R, _ = stimuli(x, np.array([[0.5]]), None, g, g, eff, no_drug())
    assert S_R[0] == pytest.approx(1.0 - 0.4)
    # two antiresorptives combine by independent action
    eff2 = DrugEffects(np.array([0.8, 0.5]), np.array([0.5, 1.0]))
    S_R, _ = stimuli(x, np.array([[1e12, 1e12]]), None, g, g, eff2, no_drug())
    assert S_R[0] == pytest.approx(0.2 * 0.5, rel=1e-9)
    assert resorption_inhibition(np.array([1e12, 1e12]), eff2) == pytest.approx(0.9, rel=1e-9)


def test_anabolic_emax_raises_formation() -> None:
    x = np.zeros((1, NH))
    g = np.zeros(NH)
    eff = DrugEffects(np.array([1.5]), np.array([0.5]))
    S_R, S_F = stimuli(x, None, np.array([[1e12]]), g, g, no_drug(), eff)
    assert S_F[0] == pytest.approx(2.5, rel=1e-9)
    assert S_R[0] == 1.0
    eff2 = DrugEffects(np.array([1.5, 0.5]), np.array([0.5, 1.0]))
    assert formation_enhancement(np.array([0.5, 1.0]), eff2) == pytest.approx(0.75 + 0.25)


coef = st.one_of(st.just(0.0), st.floats(0.01, 3.0), st.floats(-3.0, -0.01))


@settings(max_examples=60, deadline=None)
@given(
    gamma=st.lists(coef, min_size=NH, max_size=NH),
    e_form=st.lists(coef, min_size=NH, max_size=NH),
    k=st.integers(0, NH - 1),
    xk=st.floats(-3.0, 3.0).filter(lambda v: abs(v) > 1e-3),
    alpha=st.floats(0.1, 3.0),
)
def test_stimulus_signs_follow_coefficients(gamma, e_form, k, xk, alpha) -> None:
    x = np.zeros(NH)
    x[k] = xk
    S_R, S_F = stimuli(x, None, None, np.array(gamma), np.array(e_form), no_drug(), no_drug(), alpha=alpha)
    assert np.sign(np.log(S_R)) == np.sign(gamma[k] * xk)
    assert np.sign(np.log(S_F)) == np.sign(e_form[k] * xk)
    assert np.log(S_R) == pytest.approx(alpha * gamma[k] * xk, rel=1e-12, abs=1e-15)
    assert np.log(S_F) == pytest.approx(e_form[k] * xk, rel=1e-12, abs=1e-15)


# --------------------------------------------------------------------------- inputs

MENOPAUSE = Dose(drug="natural_menopause", start_month=-120)


def test_postmenopausal_estradiol_covariate() -> None:
    t = np.array([0.0, 24.0, 240.0])
    x = hormone_covariates([MENOPAUSE], t)
    assert x.shape == (3, NH)
    np.testing.assert_allclose(x[:, IE2], np.log(8.5 / 100.0), atol=1e-6)
    others = [k for k in range(NH) if k != IE2]
    np.testing.assert_array_equal(x[:, others], 0.0)
    # well before the menopause transition: premenopausal reference
    assert abs(hormone_covariates([MENOPAUSE], np.array([-300.0]))[0, IE2]) < 1e-6
    # monotone decline through the transition
    tt = np.linspace(-200.0, 0.0, 101)
    assert np.all(np.diff(hormone_covariates([MENOPAUSE], tt)[:, IE2]) <= 0.0)


@pytest.mark.parametrize("dose,unit,route,added", [
    (1.0, "mg/day", None, 25.0),
    (2.0, "mg/day", "oral", 50.0),
    (50.0, "ug/day", "transdermal", 90.0),
])
def test_estradiol_therapy_raises_estradiol_only_while_on(dose, unit, route, added) -> None:
    reg = [MENOPAUSE, Dose(drug="estradiol", dose=dose, unit=unit, route=route, start_month=0, stop_month=24)]
    t = np.array([-1.0, 0.0, 12.0, 23.9, 24.0, 36.0])
    x = hormone_covariates(reg, t)[:, IE2]
    base = hormone_covariates([MENOPAUSE], t)[:, IE2]
    on = (t >= 0) & (t < 24)
    np.testing.assert_allclose(x[on], np.log((8.5 + added) / 100.0), atol=1e-6)
    assert np.all(x[on] > base[on])
    np.testing.assert_allclose(x[~on], base[~on], atol=1e-12)
    lev = hormone_levels(reg, np.array([12.0]))["estradiol"][0]
    assert lev == pytest.approx(8.5 + added, abs=1e-4)


def test_glucocorticoid_course_only_while_on() -> None:
    reg = [Dose(drug="prednisone", dose=7.5, unit="mg/day", start_month=3, stop_month=15)]
    t = np.array([0.0, 2.99, 3.0, 10.0, 14.99, 15.0, 40.0])
    x = hormone_covariates(reg, t)
    on = (t >= 3) & (t < 15)
    np.testing.assert_allclose(x[on, IGC], np.log1p(7.5 / GLUCOCORTICOID_SCALE), rtol=1e-14)
    np.testing.assert_array_equal(x[~on, IGC], 0.0)
    np.testing.assert_array_equal(np.delete(x, IGC, axis=1), 0.0)


def test_denosumab_single_injection_halves_monthly() -> None:
    reg = [Dose(drug="denosumab", dose=60, unit="mg", start_month=2.0)]
    t = np.array([0.0, 1.999, 2.0, 3.0, 4.0, 7.0])
    A = drug_exposure(reg, t, ("denosumab",))[:, 0]
    np.testing.assert_allclose(A, [0.0, 0.0, 1.0, 0.5, 0.25, 0.5**5], rtol=1e-12)
    # the drug axis order follows the requested drugs; other drugs get zero
    A2 = drug_exposure(reg, t, ("alendronate", "denosumab"))
    np.testing.assert_array_equal(A2[:, 0], 0.0)
    np.testing.assert_allclose(A2[:, 1], A)


def test_alendronate_continuous_steady_state_and_washout() -> None:
    reg = [Dose(drug="alendronate", dose=10, unit="mg/day", start_month=0, stop_month=240)]
    t = np.array([-1.0, 0.0, 12.0, 120.0, 240.0, 252.0])
    A = drug_exposure(reg, t, ("alendronate",))[:, 0]
    assert A[0] == 0.0 and A[1] == 0.0
    assert A[2] == pytest.approx(0.5, rel=1e-12)  # 12-month half-life
    assert A[4] == pytest.approx(1.0, abs=1e-5)
    assert A[5] == pytest.approx(A[4] / 2, rel=1e-12)  # decays with the same half-life after stop
    tt = np.linspace(0.0, 240.0, 50)
    assert np.all(np.diff(drug_exposure(reg, tt, ("alendronate",))[:, 0]) > 0)
    # 70 mg/week is the same exposure as 10 mg/day
    weekly = [Dose(drug="alendronate", dose=70, unit="mg/week", start_month=0, stop_month=240)]
    np.testing.assert_allclose(drug_exposure(weekly, t, ("alendronate",))[:, 0], A, rtol=1e-12)


def test_zoledronate_single_dose_decays_with_36_month_half_life() -> None:
    reg = [Dose(drug="zoledronate", dose=5, unit="mg", start_month=0, stop_month=0)]
    t = np.array([0.0, 18.0, 36.0, 72.0])
    A = drug_exposure(reg, t, ("zoledronate",))[:, 0]
    np.testing.assert_allclose(A, [1.0, 2 ** -0.5, 0.5, 0.25], rtol=1e-12)
    half = [Dose(drug="zoledronate", dose=2.5, unit="mg", start_month=0, stop_month=0)]
    np.testing.assert_allclose(drug_exposure(half, t, ("zoledronate",))[:, 0], A / 2, rtol=1e-12)


def test_denosumab_every_six_months() -> None:
    reg = [Dose(drug="denosumab", dose=60, unit="mg", start_month=0, stop_month=18, every_months=6)]
    assert event_times(reg, 36.0) == [0.0, 6.0, 12.0, 18.0]
    assert reg[0].injection_times(36.0) == [0.0, 6.0, 12.0, 18.0]
    inj = [0.0, 6.0, 12.0, 18.0]
    t = np.linspace(0.0, 36.0, 145)
    A = drug_exposure(reg, t, ("denosumab",))[:, 0]
    expected = sum(np.where(t >= ti, 0.5 ** np.maximum(t - ti, 0.0), 0.0) for ti in inj)
    np.testing.assert_allclose(A, expected, rtol=1e-12)
    # a jump of one reference dose at each injection and none at 24 (after the stop)
    for ti in inj:
        jump = np.diff(drug_exposure(reg, np.array([ti - 1e-9, ti]), ("denosumab",))[:, 0])[0]
        assert jump == pytest.approx(1.0, abs=1e-6)
    jump24 = np.diff(drug_exposure(reg, np.array([24.0 - 1e-9, 24.0]), ("denosumab",))[:, 0])[0]
    assert abs(jump24) < 1e-6


def test_event_times_skip_menopause_and_placebo() -> None:
    reg = [MENOPAUSE, Dose(drug="placebo", start_month=0),
           Dose(drug="prednisone", dose=5, unit="mg/day", start_month=-12, stop_month=-2)]
    assert event_times(reg, 24.0) == [-12.0, -2.0]


# --------------------------------------------------------------------------- schedule + simulate

GAMMA = {"estradiol": -0.3, "testosterone": -0.1, "pth": 0.4, "glucocorticoid": 0.3, "thyroid": 0.6,
         "igf1": 0.05}
E_FORM = {"estradiol": 0.05, "testosterone": 0.05, "pth": 0.1, "glucocorticoid": -0.5, "thyroid": 0.3,
          "igf1": 0.3}
EMAX = {"alendronate": 0.7, "zoledronate": 0.75, "denosumab": 0.9, "calcitonin": 0.2, "teriparatide": 1.5}
EC50 = {"alendronate": 0.3, "zoledronate": 0.2, "denosumab": 0.1, "calcitonin": 0.5, "teriparatide": 0.5}
K_M = np.array([0.006, 0.004])
LAM = np.array([0.005, 0.01])


def params_for(s: Schedule, k_M: np.ndarray = K_M, k_C: float = 1.2, k_B: float = 0.35) -> PhysiologyParams:
    """Parameters whose hormone and drug axes match the schedule's."""
    return PhysiologyParams(
        gamma=np.array([GAMMA[h] for h in s.hormones]),
        e_form=np.array([E_FORM[h] for h in s.hormones]),
        res_effects=DrugEffects(np.array([EMAX[d] for d in s.antiresorptives]),
                                np.array([EC50[d] for d in s.antiresorptives])),
        ana_effects=DrugEffects(np.array([EMAX[d] for d in s.anabolics]),
                                np.array([EC50[d] for d in s.anabolics])),
        rates=TurnoverRates(np.float64(k_C), np.float64(k_B), k_M, LAM),
    )


def postmenopausal(name: str, fmp: float, *extra: Dose) -> Unit:
    return Unit(name, (Dose(drug="natural_menopause", start_month=fmp), *extra))


LEVELS_HISTORY_BUG = (
    "schedule.build_schedule (lines 168-184, 199): BASELINE_HISTORY_MONTHS (60 months lived with preset levels "
    "before t0) is applied only to units WITHOUT a history; a unit with preset levels and any history item "
    "before t0 starts from the reference state at its first history event, so its preset levels act only "
    "from there. E.g. Unit('b', (Dose(drug='zoledronate', dose=0.0, unit='mg', start_month=-6, stop_month=-6),), "
    "levels={'thyroid': 3.0}) has t0 state m ~ 2e-4 while the physiologically identical "
    "Unit('a', (), levels={'thyroid': 3.0}) has m ~ 0.15 (tests' params)"
)


def test_shifted_histories_share_one_pattern() -> None:
    units = [postmenopausal(f"u{i}", fmp) for i, fmp in enumerate([-60.0, -120.0, -240.0, -37.5, -20.0])]
    sched = build_schedule(units, 24.0)
    assert sched.patterns.x.shape[1] == 1
    np.testing.assert_array_equal(sched.unit_pattern, 0)
    # later menopause -> reaches at most as far along the pattern
    assert sched.unit_node[4] <= sched.unit_node[3] <= sched.unit_node[0]
    # a different history makes a second pattern
    units.append(postmenopausal("gc", -60.0, Dose(drug="prednisone", dose=5, unit="mg/day", start_month=-30)))
    assert build_schedule(units, 24.0).patterns.x.shape[1] == 2


def test_shared_pattern_equals_own_pattern() -> None:
    """Sharing a pattern between shifted histories is exact: each unit alone gives the same t0 state."""
    units = [postmenopausal(f"u{i}", fmp) for i, fmp in enumerate([-60.0, -120.0, -37.5])]
    joint = build_schedule(units, 12.0)
    traj, _ = simulate(joint, params_for(joint), S)
    for i, u in enumerate(units):
        alone = build_schedule([u], 12.0)
        t1, _ = simulate(alone, params_for(alone), S)
        for a, b in zip(traj.state, t1.state):
            np.testing.assert_allclose(a[:, i], b[:, 0], rtol=1e-12, atol=1e-14)


def test_unit_without_history_stays_at_reference() -> None:
    units = [Unit("ref", ()), postmenopausal("pm", -120.0, Dose(drug="denosumab", dose=60, unit="mg",
                                                                 start_month=0, every_months=6)),
             Unit("placebo", (Dose(drug="placebo", start_month=0),))]
    sched = build_schedule(units, 24.0)
    traj, _ = simulate(sched, params_for(sched), S)
    for i in (0, 2):
        np.testing.assert_allclose(traj.state.C[:, i], 1.0, rtol=0, atol=1e-14)
        np.testing.assert_allclose(traj.state.B[:, i], 1.0, rtol=0, atol=1e-14)
        np.testing.assert_allclose(traj.state.m[:, i], 0.0, rtol=0, atol=1e-14)
        np.testing.assert_allclose(traj.S_R[:, i], 1.0, rtol=0, atol=1e-14)
        np.testing.assert_allclose(traj.S_F[:, i], 1.0, rtol=0, atol=1e-14)
    # the postmenopausal unit is not at the reference: high turnover and bone loss before t0
    assert traj.state.C[0, 1] > 1.5
    assert np.all(traj.state.m[0, 1] < -0.01)
    # denosumab suppresses resorption in the window and BMD rises
    assert traj.state.C[3, 1] < 0.5 * traj.state.C[0, 1]
    assert np.all(traj.state.m[-1, 1] > traj.state.m[0, 1])


def test_only_reference_units() -> None:
    sched = build_schedule([Unit("a", ()), Unit("b", ())], 6.0)
    traj, _ = simulate(sched, params_for(sched), S)
    assert traj.state.C.shape == (7, 2) and traj.state.m.shape == (7, 2, S)
    np.testing.assert_allclose(traj.state.C, 1.0, atol=1e-14)
    np.testing.assert_allclose(traj.state.m, 0.0, atol=1e-14)


def test_history_step_discretisation() -> None:
    units = [postmenopausal("pm120", -120.0), postmenopausal("pm20", -20.3),
             postmenopausal("gc", -40.0, Dose(drug="prednisone", dose=10, unit="mg/day", start_month=-25,
                                             stop_month=-7)),
             Unit("hyper", (), levels={"thyroid": 3.0})]
    states = []
    for hs in (1.0, 0.25):
        sched = build_schedule(units, 12.0, history_step=hs)
        traj, _ = simulate(sched, params_for(sched), S)
        states.append(TurnoverState(*(x[0] for x in traj.state)))
    for a, b in zip(*states):
        np.testing.assert_allclose(a, b, rtol=0, atol=2e-3)
    assert np.all(states[0].C > 1.0)  # every unit has a raised resorption at t0


@pytest.mark.parametrize("per_unit_kM", [False, True])
def test_simulate_has_no_cross_talk(per_unit_kM: bool) -> None:
    units = [
        postmenopausal("dmab", -96.0, Dose(drug="denosumab", dose=60, unit="mg", start_month=0,
                                           stop_month=12, every_months=6)),
        postmenopausal("teri", -30.5, Dose(drug="prednisone", dose=7.5, unit="mg/day", start_month=-14),
                       Dose(drug="teriparatide", dose=20, unit="ug/day", start_month=3, stop_month=21)),
        Unit("hyper", (Dose(drug="zoledronate", dose=5, unit="mg", start_month=-6, stop_month=-6),),
             levels={"thyroid": 3.0}),
    ]
    kM_all = K_M[None, :] * np.array([[0.7], [1.0], [1.4]]) if per_unit_kM else K_M
    joint = build_schedule(units, 30.0)
    traj, _ = simulate(joint, params_for(joint, kM_all), S)
    for i, u in enumerate(units):
        alone = build_schedule([u], 30.0)
        kM_i = kM_all[i:i + 1] if per_unit_kM else K_M
        t1, _ = simulate(alone, params_for(alone, kM_i), S)
        for a, b in zip(traj.state, t1.state):
            np.testing.assert_allclose(a[:, i], b[:, 0], rtol=1e-11, atol=1e-13)
        np.testing.assert_allclose(traj.S_R[:, i], t1.S_R[:, 0], rtol=1e-12)
        np.testing.assert_allclose(traj.S_F[:, i], t1.S_F[:, 0], rtol=1e-12)


def test_at_times_with_remainder_equals_propagating_by_hand() -> None:
    units = [postmenopausal("dmab", -96.0, Dose(drug="denosumab", dose=60, unit="mg", start_month=0)),
             postmenopausal("gc", -50.0, Dose(drug="prednisone", dose=7.5, unit="mg/day", start_month=-12))]
    sched = build_schedule(units, 6.0, step=1.0)
    obs_t = np.array([2.5, 2.0, 6.0, 0.25, 5.75])
    obs_u = np.array([0, 1, 0, 1, 1])
    node, tau = sched.locate(obs_t)
    np.testing.assert_array_equal(node, [2, 2, 6, 0, 5])
    np.testing.assert_allclose(tau, [0.5, 0.0, 0.0, 0.25, 0.75])
    kM_units = K_M[None, :] * np.array([[0.8], [1.3]])
    p = params_for(sched, kM_units)
    traj, tau_co = simulate(sched, p, S, extra_h=tau)
    got = at_times(traj, node, obs_u, kM_units[obs_u], tau_co, sched.n_window)
    for k in range(len(obs_t)):
        n, u = node[k], obs_u[k]
        start = TurnoverState(traj.state.C[n, u], traj.state.B[n, u], traj.state.m[n, u])
        seg = min(n, sched.n_window - 1)
        rates = p.rates._replace(k_M=kM_units[u])
        want = propagate(start, traj.S_R[seg, u], traj.S_F[seg, u], tau[k], rates)
        np.testing.assert_allclose(got.C[k], want.C, rtol=1e-13)
        np.testing.assert_allclose(got.B[k], want.B, rtol=1e-13)
        np.testing.assert_allclose(got.m[k], want.m, rtol=1e-12, atol=1e-16)
    # on a node the state is the node state
    np.testing.assert_allclose(got.C[1], traj.state.C[2, 1], rtol=1e-14)
    np.testing.assert_allclose(got.m[2], traj.state.m[6, 0], rtol=1e-14)
    # without remainder coefficients it is a plain gather
    plain = at_times(traj, node, obs_u)
    np.testing.assert_array_equal(plain.C, traj.state.C[node, obs_u])


def test_at_times_matches_a_finer_window_for_constant_inputs() -> None:
    """With inputs constant within the window the remainder map equals a finer window grid exactly."""
    units = [postmenopausal("gc", -200.0, Dose(drug="prednisone", dose=7.5, unit="mg/day", start_month=-12))]
    coarse = build_schedule(units, 6.0, step=1.0)
    fine = build_schedule(units, 6.0, step=0.5)
    node, tau = coarse.locate(np.array([2.5]))
    traj, tau_co = simulate(coarse, params_for(coarse), S, extra_h=tau)
    got = at_times(traj, node, np.array([0]), K_M[None, :], tau_co, coarse.n_window)
    tf, _ = simulate(fine, params_for(fine), S)
    np.testing.assert_allclose(got.C[0], tf.state.C[5, 0], rtol=1e-6)
    np.testing.assert_allclose(got.B[0], tf.state.B[5, 0], rtol=1e-6)
    np.testing.assert_allclose(got.m[0], tf.state.m[5, 0], rtol=1e-5)


def test_locate_rejects_times_outside_the_window() -> None:
    sched = build_schedule([Unit("a", ())], 6.0)
    node, tau = sched.locate(np.array([0.0, 6.0]))
    np.testing.assert_array_equal(node, [0, 6])
    np.testing.assert_array_equal(tau, [0.0, 0.0])
    for bad in (-0.5, 7.0, 20.0):
        with pytest.raises(ValueError, match="outside the window"):
            sched.locate(np.array([bad]))


def test_locate_rejects_times_just_past_the_last_node() -> None:
    sched = build_schedule([Unit("a", ())], 6.0)
    with pytest.raises(ValueError, match="outside the window"):
        sched.locate(np.array([6.5]))


def test_build_schedule_rejects_bad_steps() -> None:
    with pytest.raises(ValueError, match="step"):
        build_schedule([Unit("a", ())], 6.0, step=0.0)
    with pytest.raises(ValueError, match="step"):
        build_schedule([Unit("a", ())], 6.0, history_step=-1.0)


@pytest.mark.parametrize("unit", [
    postmenopausal("dmab", -96.0, Dose(drug="denosumab", dose=60, unit="mg", start_month=0, every_months=6)),
    postmenopausal("gc_teri", -30.5, Dose(drug="prednisone", dose=7.5, unit="mg/day", start_month=-14),
                   Dose(drug="teriparatide", dose=20, unit="ug/day", start_month=3, stop_month=9)),
    Unit("hyper_zol_at_0", (Dose(drug="zoledronate", dose=5, unit="mg", start_month=0, stop_month=0),),
         levels={"thyroid": 3.0}),
    pytest.param(Unit("hyper_zol_before", (Dose(drug="zoledronate", dose=5, unit="mg", start_month=-6,
                                                stop_month=-6),), levels={"thyroid": 3.0}),
                 ),
], ids=lambda u: u.name)
def test_simulate_matches_a_direct_fine_chain(unit: Unit) -> None:
    """Independent of the pattern/tail machinery: chain from the reference far in the past on a fine grid
    with inputs evaluated directly from the regimen at segment midpoints."""
    from bonebayes.physiology.turnover import chain, reference_state

    sched = build_schedule([unit], 12.0, step=0.25, history_step=0.25)
    p = params_for(sched)
    traj, _ = simulate(sched, p, S)
    h = 0.05
    start = -360.0 if unit.levels == {} else -60.0  # a preset level is lived with for 60 months before t0
    t = np.arange(start, 12.0, h) + h / 2
    used_res, used_ana = sched.antiresorptives, sched.anabolics
    x = hormone_covariates(unit.regimen, t, unit.sex, unit.levels)
    S_R, S_F = stimuli(x, drug_exposure(unit.regimen, t, used_res) if used_res else None,
                       drug_exposure(unit.regimen, t, used_ana) if used_ana else None,
                       p.gamma, p.e_form, p.res_effects, p.ana_effects)
    path = chain(reference_state((1,), S), S_R[:, None], S_F[:, None], h, p.rates)
    ends = start + h * np.arange(1, len(t) + 1)
    for tn, k in [(0.0, 0), (3.0, 12), (12.0, 48)]:
        j = int(np.argmin(np.abs(ends - tn)))
        assert ends[j] == pytest.approx(tn)
        assert traj.state.C[k, 0] == pytest.approx(path.C[j, 0], rel=5e-3)
        assert traj.state.B[k, 0] == pytest.approx(path.B[j, 0], rel=5e-3)
        np.testing.assert_allclose(traj.state.m[k, 0], path.m[j, 0], rtol=2e-2, atol=1e-3)


def test_null_history_item_does_not_erase_preset_level_history() -> None:
    """A zero-dose item before t0 changes no input, so it must not change the state at t0."""
    plain = Unit("a", (), levels={"thyroid": 3.0})
    null_zol = Unit("b", (Dose(drug="zoledronate", dose=0.0, unit="mg", start_month=-6, stop_month=-6),),
                    levels={"thyroid": 3.0})
    null_gc = Unit("c", (Dose(drug="prednisone", dose=0.0, unit="mg/day", start_month=-6),),
                   levels={"thyroid": 3.0})
    sched = build_schedule([plain, null_zol, null_gc], 12.0)
    traj, _ = simulate(sched, params_for(sched), S)
    for k in (1, 2):  # identical inputs in the window
        np.testing.assert_allclose(traj.S_R[:, k], traj.S_R[:, 0], rtol=1e-12)
        np.testing.assert_allclose(traj.S_F[:, k], traj.S_F[:, 0], rtol=1e-12)
    for x in traj.state:
        np.testing.assert_allclose(x[0, 1], x[0, 0], rtol=1e-6)
        np.testing.assert_allclose(x[0, 2], x[0, 0], rtol=1e-6)
