"""Young-adult BMD references for T-scores: one table, each entry with its source.

T = (BMD - young-adult mean) / young-adult SD at a DXA site (WHO: osteoporosis at T <= -2.5, low bone mass
between -1 and -2.5). The model's state m = log(BMD / reference) is relative to its own young-adult
reference, which the T-score maps onto these means (see :mod:`bonebayes.projections.engine`).

The values are the ones shipped in ``data/reference_values.csv`` (a test checks that they agree). Men's hip
references are not in the shipped table: the WHO reference standard (Kanis et al. 2008) uses the NHANES III
young white women's femoral-neck data for men and women alike, so men's total hip and femoral neck take the
female entries here (men's lumbar spine has its own entry).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BMDReference:
    """Young-adult mean and SD of areal BMD (g/cm2) at one site, for one sex."""

    sex: str
    site: str
    mean: float  # g/cm2
    sd: float  # g/cm2
    source: str


_NHANES_T3 = (
    "NHANES young-adult (21-30 y) reference as tabulated in Front Endocrinol 2026, table T3 "
    "(https://pmc.ncbi.nlm.nih.gov/articles/PMC12995607/table/T3/; NHANES cycle not stated)"
)
_NHANES_III_FN = (
    "NHANES III femoral neck, white women 20-29 y (Looker AC et al. Osteoporos Int 1998;8:468; "
    "the WHO reference standard, Kanis JA et al. Bone 2008;42:467), as quoted with McCloskey & "
    "Kanis 2011"
)
_WHO_MEN = " Used for men too: the WHO reference standard applies the female young-adult reference to men."

BMD_REFERENCES: dict[tuple[str, str], BMDReference] = {
    (r.sex, r.site): r
    for r in [
        BMDReference("female", "lumbar_spine", 1.064, 0.106, _NHANES_T3),
        BMDReference("female", "total_hip", 0.971, 0.114, _NHANES_T3),
        BMDReference("female", "femoral_neck", 0.858, 0.120, _NHANES_III_FN),
        BMDReference("male", "lumbar_spine", 1.057, 0.110, _NHANES_T3),
        BMDReference("male", "total_hip", 0.971, 0.114, _NHANES_T3 + "." + _WHO_MEN),
        BMDReference("male", "femoral_neck", 0.858, 0.120, _NHANES_III_FN + "." + _WHO_MEN),
    ]
}
"""(sex, site) -> young-adult reference used for T-scores."""

OSTEOPENIA_T = -1.0
OSTEOPOROSIS_T = -2.5
"""WHO thresholds (SD units): osteoporosis at T <= -2.5."""


def bmd_reference(sex: str, site: str) -> BMDReference:
    """The young-adult reference for ``sex`` and ``site`` (an error lists the available ones)."""
    try:
        return BMD_REFERENCES[(sex, site)]
    except KeyError:
        have = ", ".join(f"{s}/{t}" for s, t in BMD_REFERENCES)
        raise ValueError(f"no young-adult BMD reference for {sex} {site}; available: {have}") from None
