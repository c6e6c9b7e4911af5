"""A fitted model: posterior, provenance, input tables and diagnostics, saved as one NetCDF file."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from bonebayes import _arviz
from bonebayes.inference import Verdict, diagnose, load_fit, save_fit


@dataclass
class Fit:
    """Posterior draws with everything needed to use them without refitting."""

    idata: Any
    provenance: dict[str, Any]
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    verdict: Verdict | None = None
    model: Any = None  # the model object (rebuilt on demand after load)

    @property
    def seed(self) -> int:
        return int(self.provenance["seed"])

    @property
    def population_vars(self) -> list[str]:
        return list(self.provenance.get("population_vars") or [])

    def summary(self, var_names: list[str] | None = None, hdi_prob: float = 0.9) -> pd.DataFrame:
        """Posterior summary of the population-level parameters (or ``var_names``)."""
        return _arviz.summary(self.idata, var_names or self.population_vars or None, hdi_prob=hdi_prob)

    def diagnose(self, **kwargs: Any) -> Verdict:
        self.verdict = diagnose(self.idata, self.population_vars or None, **kwargs)
        return self.verdict

    def mismatch(self, model_obj: Any, request: dict[str, Any], data_hash: str | None = None) -> list[str]:
        """Why this fit cannot stand for ``model_obj.fit(**request)`` (empty: it can): data, configuration,
        settings, or parameterisation (the individual model's layout follows the data and the code,
        ``models.layout``, so a fit saved by an older version may lack some of today's free variables)."""
        p, why = self.provenance, []
        if p.get("data_hash") != (data_hash or model_obj.data_hash()):
            why.append("its data hash differs from the configured data")
        if p.get("config") != model_obj.config.model_dump(mode="json"):
            why.append("its model configuration differs from the configured variant")
        bad = [f"{k} {p.get(k)!r} (configured {v!r})" for k, v in request.items() if p.get(k) != v]
        if bad:
            why.append("its settings differ: " + ", ".join(bad))
        if why:  # no need to build the model
            return why
        missing = sorted({v.name for v in model_obj.model.free_RVs} - set(self.idata.posterior.data_vars))
        if missing:
            why.append(f"its posterior lacks free variables of today's model ({', '.join(missing[:5])}): "
                       "saved by a version with another parameterisation")
        return why

    def reusable_for(self, model_obj: Any, request: dict[str, Any]) -> bool:
        """Whether this fit is what ``model_obj.fit(**request)`` would produce (:meth:`mismatch` is empty)."""
        return not self.mismatch(model_obj, request)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the fit atomically to ``path`` (NetCDF)."""
        return save_fit(self.idata, path, self.provenance, self.tables)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Fit:
        idata, prov, tables = load_fit(path)
        return cls(idata=idata, provenance=prov, tables=tables)

    def rebuild_model(self) -> Any:
        """The model object of this fit, rebuilt from the stored tables and configuration."""
        if self.model is None:
            kind = self.provenance.get("model", "individual")
            if kind != "individual":
                raise ValueError(f"cannot rebuild model kind {kind!r}")
            from bonebayes.datasets.io import validate_exposures, validate_observations
            from bonebayes.models.individual import IndividualModel, saved_config

            obs = validate_observations(_from_saved(self.tables["observations"]), source="<fit observations>")
            exp = validate_exposures(_from_saved(self.tables["exposures"]), source="<fit exposures>")
            self.model = IndividualModel(obs, exp, saved_config(self.provenance["config"]))
        return self.model


def _from_saved(df: pd.DataFrame) -> pd.DataFrame:
    """Drop the derived columns that validation adds, so a stored table validates again."""
    keep = [c for c in df.columns if c not in ("row", "value_reported", "unit_reported")]
    out = df[keep].copy()
    if "value_reported" in df and "unit_reported" in df:
        out["value"], out["unit"] = df["value_reported"], df["unit_reported"]
    return out
