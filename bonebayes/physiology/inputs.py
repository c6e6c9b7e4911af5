"""Time-varying inputs of the physiology: hormone covariates and kinetic-PD drug exposures (NumPy).

Both are known functions of a regimen (no fitted parameters), evaluated at segment midpoints:

* ``hormone_covariates``: x_h(t) = log(H(t) / H_reference,sex) for each hormone in ``HORMONES``
  (glucocorticoid: log(1 + prednisone-equivalent mg/day / 5));
* ``drug_exposure``: one virtual compartment per drug, in multiples of the drug's reference dose:
  a bolus adds dose/reference and decays with the drug's half-life; a continuous daily dose drives the
  compartment towards rate/reference_rate with the same half-life.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from bonebayes.regimens import (
    DRUGS,
    GLUCOCORTICOID_SCALE,
    HORMONES,
    POSTMENOPAUSAL_ESTRADIOL,
    REFERENCE_LEVELS,
    Dose,
)

MENOPAUSE_CENTRE_MONTHS = -3.0  # estradiol decline centred 3 months before the final menstrual period
MENOPAUSE_SCALE_MONTHS = 8.0
HYPOGONADAL_TESTOSTERONE = 250.0  # ng/dL
HYPOGONADAL_ESTRADIOL = 15.0  # pg/mL
AROMATISATION = 0.03  # pg/mL estradiol per ng/dL testosterone added
ESTRADIOL_POTENCY = {"oral": 25.0, "transdermal": 1800.0}  # pg/mL per mg/day
TESTOSTERONE_POTENCY = {"gel": 80.0, "im": 35.0}  # ng/dL per mg/day
IGF1_POTENCY = {"gh_secretagogue": 0.02, "growth_hormone": 1.5}  # fractional IGF-1 rise per mg/day
ANTIRESORPTIVES: tuple[str, ...] = tuple(n for n, d in DRUGS.items() if d.kind == "antiresorptive")
ANABOLICS: tuple[str, ...] = tuple(n for n, d in DRUGS.items() if d.kind == "anabolic")
EXPOSURE_DRUGS: tuple[str, ...] = ANTIRESORPTIVES + ANABOLICS


def _active(d: Dose, t: np.ndarray) -> np.ndarray:
    stop = np.inf if d.stop_month is None else d.stop_month
    return (t >= d.start_month) & (t < stop)


def hormone_levels(
    regimen: Sequence[Dose], t: np.ndarray, sex: str = "female", levels: dict[str, float] | None = None
) -> dict[str, np.ndarray]:
    """Hormone levels (units in ``regimens.HORMONE_UNITS``) at times ``t`` (months) under a regimen."""
    t = np.asarray(t, dtype=float)
    ref = REFERENCE_LEVELS[sex]
    base = {h: np.full(t.shape, (levels or {}).get(h, ref[h]), dtype=float) for h in HORMONES}
    for d in regimen:  # events change the baseline first
        if d.drug == "natural_menopause":
            w = 1.0 / (1.0 + np.exp(-(t - d.start_month - MENOPAUSE_CENTRE_MONTHS) / MENOPAUSE_SCALE_MONTHS))
            lo, hi = np.log(POSTMENOPAUSAL_ESTRADIOL), np.log(base["estradiol"])
            base["estradiol"] = np.exp(hi + (lo - hi) * w)
        elif d.drug == "hypogonadism_onset":
            on = t >= d.start_month
            base["testosterone"] = np.where(on, HYPOGONADAL_TESTOSTERONE, base["testosterone"])
            base["estradiol"] = np.where(on, HYPOGONADAL_ESTRADIOL, base["estradiol"])
        elif d.drug in ("parathyroidectomy", "antithyroid"):
            h = DRUGS[d.drug].hormone
            base[h] = np.where(t >= d.start_month, ref[h], base[h])
    out = {h: v.copy() for h, v in base.items()}
    for d in regimen:
        if d.spec.kind != "hormone":
            continue
        on = _active(d, t)
        dose = d.canonical_dose
        if d.drug == "estradiol":
            out["estradiol"] += on * dose * ESTRADIOL_POTENCY[d.effective_route or "oral"]
        elif d.drug == "conjugated_estrogens":
            out["estradiol"] += on * dose / 0.625 * ESTRADIOL_POTENCY["oral"]
        elif d.drug == "testosterone":
            route = d.effective_route or "gel"
            rate = dose / (d.every_months * 30.44) if (d.unit == "mg" and d.every_months) else dose
            added = on * rate * TESTOSTERONE_POTENCY[route]
            out["testosterone"] += added
            out["estradiol"] += AROMATISATION * added
        elif d.drug == "glucocorticoid":
            out["glucocorticoid"] += on * dose
        elif d.drug == "thyroid_excess":
            out["thyroid"] = np.where(on, dose, out["thyroid"])
        elif d.drug in IGF1_POTENCY:
            out["igf1"] *= 1.0 + on * IGF1_POTENCY[d.drug] * dose
    return out


def hormone_covariates(
    regimen: Sequence[Dose], t: np.ndarray, sex: str = "female", levels: dict[str, float] | None = None
) -> np.ndarray:
    """Covariates x_h(t), shape ``t.shape + (len(HORMONES),)``: 0 at the young-adult reference."""
    lev = hormone_levels(regimen, t, sex, levels)
    ref = REFERENCE_LEVELS[sex]
    cols = []
    for h in HORMONES:
        if h == "glucocorticoid":
            cols.append(np.log1p(lev[h] / GLUCOCORTICOID_SCALE))
        else:
            cols.append(np.log(lev[h] / ref[h]))
    return np.stack(cols, axis=-1)


def drug_exposure(regimen: Sequence[Dose], t: np.ndarray, drugs: Sequence[str] = EXPOSURE_DRUGS) -> np.ndarray:
    """Kinetic-PD exposure of each drug in ``drugs`` at times ``t``: shape ``t.shape + (len(drugs),)``.

    Units: multiples of the drug's reference dose (a bolus) or reference daily rate (continuous dosing,
    where 1 is the steady state of the reference rate).
    """
    t = np.asarray(t, dtype=float)
    out = np.zeros(t.shape + (len(drugs),))
    for d in regimen:
        if d.drug not in drugs:
            continue
        spec = d.spec
        k = np.log(2.0) / spec.half_life_months
        rel = d.canonical_dose / spec.reference_dose
        col = drugs.index(d.drug)
        if d.is_bolus():
            for td in d.injection_times(float(np.max(t, initial=d.start_month))):
                dt = t - td
                out[..., col] += np.where(dt >= 0, rel * np.exp(-k * np.maximum(dt, 0.0)), 0.0)
        else:
            stop = np.inf if d.stop_month is None else d.stop_month
            on_time = np.clip(np.minimum(t, stop) - d.start_month, 0.0, None)
            off_time = np.clip(t - stop, 0.0, None)
            out[..., col] += rel * (1.0 - np.exp(-k * on_time)) * np.exp(-k * off_time)
    return out


def event_times(regimen: Sequence[Dose], horizon: float) -> list[float]:
    """Times (months) at which an input changes abruptly: starts, stops and injections."""
    times: list[float] = []
    for d in regimen:
        if d.drug == "natural_menopause" or d.drug == "placebo":
            continue
        times.append(d.start_month)
        if d.stop_month is not None:
            times.append(d.stop_month)
        if d.spec.kind in ("antiresorptive", "anabolic") and d.is_bolus():
            times.extend(d.injection_times(horizon))
    return sorted(set(times))


def smooth_windows(regimen: Sequence[Dose], horizon: float) -> list[tuple[float, float]]:
    """Intervals in which an input varies smoothly and needs fine segments (menopause, drug exposure)."""
    wins: list[tuple[float, float]] = []
    for d in regimen:
        if d.drug == "natural_menopause":
            c = d.start_month + MENOPAUSE_CENTRE_MONTHS
            wins.append((c - 5 * MENOPAUSE_SCALE_MONTHS, c + 5 * MENOPAUSE_SCALE_MONTHS))
        elif d.spec.kind in ("antiresorptive", "anabolic"):
            wins.append((d.start_month, horizon))
    return wins
