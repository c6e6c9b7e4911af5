"""Model variants registered by name: one registry for ``bonebayes compare``, ``bonebayes sbc`` and Python.

A variant is a model kind (``individual`` or ``published``) plus overrides of its configuration
(:class:`~bonebayes.models.individual.ModelConfig` or :class:`~bonebayes.models.published.PublishedConfig`).
The defaults of both configurations are the default models; every variant changes one modelling choice:

* signalling layer: separate serum RANKL and OPG elasticities (default) vs one ratio elasticity (``ratio``);
* off-treatment rebound: no precursor pool (default) vs an osteoclast-precursor pool (``rebound``);
* between-group effects: hierarchical cohort / study effects (default) vs pooled (``pooled``);
* resorption driver: latent local ratio (default) vs the serum ratio with a fitted exponent (``serum_driver``).

>>> from bonebayes.variants import get_variant
>>> get_variant("published_rebound").config()          # PublishedConfig(..., precursor_pool=True)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Kind = Literal["individual", "published"]


@dataclass(frozen=True)
class Variant:
    """A named model variant: model kind, configuration overrides and what it changes."""

    name: str
    kind: Kind
    overrides: dict[str, Any] = field(default_factory=dict)
    description: str = ""

    def config(self, **extra: Any) -> Any:
        """The variant's configuration (``extra`` overrides on top, e.g. ``holdout_studies``)."""
        settings = {**self.overrides, **extra, "name": self.name}
        if self.kind == "published":
            from bonebayes.models.published import PublishedConfig

            return PublishedConfig(**settings)
        from bonebayes.models.individual import ModelConfig

        return ModelConfig(**settings)


def _both(stem: str, individual: dict[str, Any], published: dict[str, Any], what: str) -> list[Variant]:
    return [Variant(f"individual{stem}", "individual", individual, what),
            Variant(f"published{stem}", "published", published, what)]


VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in [
        *_both("", {}, {}, "the default model"),
        *_both("_ratio_only", {"signalling": "ratio"}, {"signalling": "ratio"},
               "ratio-only signalling layer: one serum RANKL/OPG ratio elasticity per hormone instead of "
               "separate RANKL and OPG elasticities"),
        *_both("_rebound", {"precursor_pool": True}, {"precursor_pool": True},
               "osteoclast-precursor pool: CTX overshoot and BMD loss after stopping denosumab"),
        *_both("_pooled", {"cohort_effects": "pooled"}, {"study_effects": False},
               "pooled: no cohort effects on baseline levels (individual) / no study effects on k_M and "
               "BMD drift (published)"),
        *_both("_serum_driver", {"ratio_driver": "serum"}, {"ratio_driver": "serum"},
               "serum RANKL/OPG ratio as the resorption driver with a fitted exponent alpha, instead of a "
               "latent local ratio with a serum measurement layer"),
    ]
}
"""Every registered variant by name."""

DEFAULT_VARIANT: dict[str, str] = {"individual": "individual", "published": "published"}


def get_variant(name: str) -> Variant:
    """The variant called ``name``; a clear error lists the registered names."""
    try:
        return VARIANTS[name]
    except KeyError:
        raise ValueError(f"unknown variant {name!r}; registered: {', '.join(VARIANTS)}") from None


def register(variant: Variant) -> Variant:
    """Add a variant to the registry (an existing name is an error)."""
    if variant.name in VARIANTS:
        raise ValueError(f"variant {variant.name!r} is already registered")
    if variant.kind not in ("individual", "published"):
        raise ValueError(f"variant kind must be 'individual' or 'published' (got {variant.kind!r})")
    variant.config()  # validates the overrides now
    VARIANTS[variant.name] = variant
    return variant


def variants_table() -> list[dict[str, str]]:
    """Rows (name, kind, overrides, description) for ``bonebayes compare --list`` and the README."""
    return [{"name": v.name, "kind": v.kind, "overrides": ", ".join(f"{k}={x}" for k, x in v.overrides.items())
             or "(defaults)", "description": v.description} for v in VARIANTS.values()]


def build_variant_model(variant: Variant | str, *, evidence: Any = None, observations: Any = None,
                        exposures: Any = None, **extra: Any) -> Any:
    """The model object (``PublishedModel`` or ``IndividualModel``) of a variant for the given data."""
    v = get_variant(variant) if isinstance(variant, str) else variant
    cfg = v.config(**extra)
    if v.kind == "published":
        from bonebayes.models.published import PublishedModel

        return PublishedModel(evidence, cfg)
    if observations is None or exposures is None:
        raise ValueError(f"variant {v.name!r} is an individual-data model: pass observations and exposures")
    from bonebayes.models.individual import IndividualModel

    return IndividualModel(observations, exposures, cfg)
