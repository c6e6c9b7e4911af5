"""Real-MCMC check of the compile-once SBC path: nutpie compiles the individual model once and the swapped
observations really reach the log density (slow: a few minutes)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow


def test_compiled_model_is_reused_and_sees_the_swapped_data(monkeypatch) -> None:
    from bonebayes import inference
    from bonebayes.checks import sbc

    compiles = []
    real = inference.compile_nutpie
    monkeypatch.setattr(inference, "compile_nutpie", lambda *a, **k: compiles.append(1) or real(*a, **k))
    ws = sbc.SBCWorkspace(*sbc.template_model("individual", n_subjects=6, seed=3))
    assert ws.swappable
    data, truth, swap = ws.simulate(11)
    again, truth_again, _ = ws.simulate(11)
    other, truth_other, _ = ws.simulate(12)
    assert truth == truth_again and truth != truth_other  # reseeding reproduces a replicate exactly
    assert set(swap) == {"y_markers", "censored_markers", "y_bmd", "y_serum"}
    kw = dict(draws=100, tune=150, chains=2, sampler="nutpie")
    d = ws.template.data  # the template cohort itself (default truth): an easy posterior, unlike prior draws
    own = {"y_markers": d.markers.log_value, "censored_markers": d.markers.censored.astype("int8"),
           "y_bmd": d.bmd.log_value, "y_serum": d.serum.log_value}
    post_a, _ = ws.fit(d, own, seed=1, **kw)
    shifted = {**own, "y_serum": own["y_serum"] + 3.0}  # every serum RANKL/OPG value x e^3
    post_b, _ = ws.fit(d, shifted, seed=1, **kw)
    assert len(compiles) == 1  # the second fit reused the compiled log density
    shift = (post_b.posterior["mu_level"] - post_a.posterior["mu_level"]).mean(("chain", "draw"))
    levels = list(post_a.posterior["mu_level"]["level"].values)
    for lv in ("rankl", "opg"):  # the serum levels moved by about +3 on the log scale, BMD did not
        assert 2.0 < float(shift.sel(level=lv)) < 4.0, (lv, float(shift.sel(level=lv)))
    assert abs(float(shift.sel(level=[lv for lv in levels if lv.startswith("bmd_")][0]))) < 0.5


def test_a_replicate_whose_data_call_for_another_layout_gets_its_own_compiled_model(monkeypatch) -> None:
    """Subject intercepts are centred or not from the data (models.layout): replicates with pinned and with
    unidentified serum RANKL intercepts are fitted by two compiled models, each compiled once."""
    import dataclasses

    import numpy as np

    from bonebayes import inference
    from bonebayes.checks import sbc
    from bonebayes.models.layout import level_layout

    compiles = []
    real = inference.compile_nutpie
    monkeypatch.setattr(inference, "compile_nutpie", lambda *a, **k: compiles.append(1) or real(*a, **k))
    ws = sbc.SBCWorkspace(*sbc.template_model("individual", n_subjects=8, seed=3))
    d, cfg = ws.template.data, ws.template.config
    rows = d.serum.level == d.levels.index("rankl")
    rng = np.random.default_rng(0)

    def with_rankl(values: np.ndarray):  # noqa: ANN202
        y = d.serum.log_value.copy()
        y[rows] = values
        return dataclasses.replace(d, serum=dataclasses.replace(d.serum, log_value=y)), y

    subject_sd = rng.normal(0.0, 1.0, d.n_subjects)[d.serum.unit[rows]]
    pinned, y_pinned = with_rankl(np.log(0.4) + subject_sd + rng.normal(0.0, 0.02, rows.sum()))
    loose, y_loose = with_rankl(np.log(0.4) + 2.0 + rng.normal(0.0, 0.3, rows.sum()))  # and 2 log units up
    assert level_layout(pinned, cfg)["rankl"][1] == "direct" and level_layout(loose, cfg)["rankl"][1] == "offset"
    own = {"y_markers": d.markers.log_value, "censored_markers": d.markers.censored.astype("int8"),
           "y_bmd": d.bmd.log_value}
    means = []
    for data, y in ((pinned, y_pinned), (loose, y_loose), (pinned, y_pinned)):
        post, _ = ws.fit(data, {**own, "y_serum": y}, seed=1, draws=30, tune=50, chains=1, sampler="nutpie")
        means.append(float(post.posterior["mu_level"].sel(level="rankl").mean()))
    assert len(compiles) == 2  # one per layout; the third fit reused the first one's
    shifts = np.array(means) - np.log(0.4)  # each fit saw its own serum values
    assert abs(shifts[0]) < 0.8 and abs(shifts[2]) < 0.8 and 1.2 < shifts[1] < 2.8, means
