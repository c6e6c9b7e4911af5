"""Every ArviZ call of the package goes through this module (ArviZ 0.2x, InferenceData).

Moving to ArviZ 1.x (DataTree) should touch this file only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr


def summary(idata: Any, var_names: Sequence[str] | None = None, hdi_prob: float = 0.9) -> pd.DataFrame:
    """Posterior summary table (mean, sd, HDI, MCSE, ESS, R-hat) per scalar parameter."""
    import arviz as az

    return az.summary(idata, var_names=list(var_names) if var_names else None, hdi_prob=hdi_prob,
                      round_to="none")


def rhat(idata: Any, var_names: Sequence[str] | None = None) -> xr.Dataset:
    import arviz as az

    return az.rhat(idata, var_names=list(var_names) if var_names else None)


def ess(idata: Any, var_names: Sequence[str] | None = None, method: str = "bulk") -> xr.Dataset:
    import arviz as az

    return az.ess(idata, var_names=list(var_names) if var_names else None, method=method)


def bfmi(idata: Any) -> np.ndarray:
    """E-BFMI per chain (needs ``energy`` in sample_stats)."""
    import arviz as az

    return np.asarray(az.bfmi(idata))


def hdi(values: np.ndarray, prob: float) -> np.ndarray:
    """Highest-density interval over the first axis of ``values``: shape (2, ...) with lower, upper."""
    import arviz as az

    arr = np.asarray(values)
    out = az.hdi(arr.reshape(arr.shape[0], -1).T[:, None, :].transpose(1, 2, 0), hdi_prob=prob) \
        if arr.ndim > 1 else az.hdi(arr, hdi_prob=prob)
    out = np.asarray(out)
    if arr.ndim > 1:
        return out.T.reshape((2, *arr.shape[1:]))
    return out


def from_netcdf(path: str) -> Any:
    import arviz as az

    return az.from_netcdf(path)


def to_netcdf(idata: Any, path: str) -> None:
    idata.to_netcdf(path)


def add_groups(idata: Any, groups: dict[str, xr.Dataset]) -> None:
    """Attach extra groups (e.g. the input tables) to an InferenceData, quietly."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        idata.add_groups(groups)


def extract_draws(idata: Any, group: str = "posterior") -> xr.Dataset:
    """Stack chains and draws into one ``sample`` dimension."""
    import arviz as az

    return az.extract(idata, group=group)


def from_dict(**kwargs: Any) -> Any:
    import arviz as az

    return az.from_dict(**kwargs)


def is_inference_data(obj: Any) -> bool:
    import arviz as az

    return isinstance(obj, az.InferenceData)
