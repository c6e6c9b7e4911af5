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



def hdi_along(values: np.ndarray, prob: float, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Highest-density interval of ``values`` along ``axis`` for every other index at once: (lower, upper).

    The same rule as ``arviz.hdi`` for unimodal samples (the narrowest interval holding
    floor(prob * n) + 1 sorted draws), vectorised over the remaining axes so projections with thousands of
    cells cost one sort; a test checks it against ``arviz.hdi``.
    """
    s = np.sort(np.moveaxis(np.asarray(values, dtype=float), axis, -1), axis=-1)
    return hdi_sorted(s, prob)


def hdi_sorted(s: np.ndarray, prob: float) -> tuple[np.ndarray, np.ndarray]:
    """:func:`hdi_along` for values already sorted along the last axis (sort once, several intervals)."""
    if not 0.0 < prob < 1.0:
        raise ValueError(f"prob must be strictly between 0 and 1 (got {prob})")
    n = s.shape[-1]
    inc = int(np.floor(prob * n))
    if inc >= n:  # too few draws for this mass: the full range
        return s[..., 0], s[..., -1]
    width = s[..., inc:] - s[..., : n - inc]
    lo_idx = np.argmin(width, axis=-1)[..., None]
    lower = np.take_along_axis(s, lo_idx, axis=-1)[..., 0]
    upper = np.take_along_axis(s, lo_idx + inc, axis=-1)[..., 0]
    return lower, upper


# --------------------------------------------------------------------------- model checking and comparison
def loo(idata: Any, var_name: str | None = None) -> dict[str, Any]:
    """PSIS-LOO of ``idata``'s log_likelihood group: elpd, se, p_loo and the pointwise values and Pareto k.

    Returned as plain NumPy/float values (``elpd_i``, ``pareto_k``) so callers never touch ArviZ objects.
    """
    import warnings

    import arviz as az

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # high Pareto k is reported in the table instead
        res = az.loo(idata, pointwise=True, var_name=var_name)
    return {"elpd": float(res["elpd_loo"]), "se": float(res["se"]), "p_loo": float(res["p_loo"]),
            "elpd_i": np.asarray(res["loo_i"]).ravel(), "pareto_k": np.asarray(res["pareto_k"]).ravel(),
            "n_samples": int(res["n_samples"])}


def psis_log_weights(log_lik: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """PSIS-smoothed normalised log weights for leaving out each observation.

    ``log_lik`` is (samples, observations); returns (log weights of the same shape, Pareto k per observation).
    """
    import warnings

    import arviz as az

    ll = xr.DataArray(np.asarray(log_lik, dtype=float).T, dims=("obs", "__sample__"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        lw, k = az.psislw(-ll)
    return np.asarray(lw.transpose("__sample__", "obs").values), np.asarray(k.values)


def with_log_likelihood(idata: Any, log_lik: xr.DataArray, name: str = "loglik") -> Any:
    """A shallow copy of ``idata`` whose log_likelihood group holds one variable ``name`` (chain, draw, ...)."""
    import arviz as az

    post = idata.posterior
    return az.InferenceData(posterior=post, log_likelihood=xr.Dataset({name: log_lik}))
