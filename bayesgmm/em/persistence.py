"""Save and load fitted estimators as netCDF (xarray, h5netcdf engine), exactly.

Arrays are stored as float64 variables with named dimensions (``component``,
``feature``, ``feature_``); constructor parameters and scalars go into attributes as
JSON, with the estimator class and the bayesgmm version, so a file never loads into
the wrong model.
"""

from __future__ import annotations

import dataclasses
import json
import os
from os import PathLike

import numpy as np
import xarray as xr

from bayesgmm.em.estimator import GaussianMixture
from bayesgmm.em.priors import ConjugatePrior

_FORMAT = "bayesgmm.GaussianMixture/1"
_PRIOR_TAG = "__ConjugatePrior__"
_ARRAYS = ("weights_", "means_", "covariances_", "precisions_cholesky_", "precisions_")


def write_netcdf_atomic(data: xr.Dataset | xr.DataTree, path: str | PathLike) -> None:
    """Write ``data`` to ``path`` (h5netcdf) through a temporary file and ``os.replace``, so
    an interrupted save never leaves a truncated file under ``path``."""
    tmp = f"{os.fspath(path)}.tmp-{os.getpid()}"
    data.to_netcdf(tmp, engine="h5netcdf")
    os.replace(tmp, path)


def check_format(attrs: dict, expected: str, path: str | PathLike, what: str) -> None:
    """Raise ValueError unless the file's ``format`` attribute is ``expected``; ``what``
    names the model in the message (a file never loads into the wrong model)."""
    if attrs.get("format") != expected:
        raise ValueError(
            f"{os.fspath(path)!r} is not a saved {what} (format attribute "
            f"{attrs.get('format')!r}, expected {expected!r})"
        )


def _dims(name: str, ndim: int, covariance_type: str) -> tuple[str, ...]:
    if name == "weights_":
        return ("component",)
    if name == "means_":
        return ("component", "feature")
    return {
        "full": ("component", "feature", "feature_"),
        "tied": ("feature", "feature_"),
        "diag": ("component", "feature"),
        "spherical": ("component",),
    }[covariance_type][:ndim]


def _json_params(estimator: GaussianMixture) -> str:
    params = estimator.get_params()
    for key in ("weights_init", "means_init", "precisions_init"):
        if params[key] is not None:
            params[key] = np.asarray(params[key]).tolist()
    if isinstance(params["prior"], ConjugatePrior):
        params["prior"] = {_PRIOR_TAG: dataclasses.asdict(params["prior"])}
    if not isinstance(params["random_state"], int | type(None)):
        params["random_state"] = None
    return json.dumps(params, default=lambda v: np.asarray(v).tolist())


def save_gaussian_mixture(estimator: GaussianMixture, path: str | PathLike) -> None:
    """Write a fitted :class:`GaussianMixture` to ``path`` (atomically)."""
    if not hasattr(estimator, "weights_"):
        raise ValueError("the estimator is not fitted: call fit before save")
    cov_type = estimator.covariance_type
    data = {
        name: (_dims(name, np.ndim(getattr(estimator, name)), cov_type), getattr(estimator, name))
        for name in _ARRAYS
    }
    data["lower_bounds_"] = ("iteration", np.asarray(estimator.lower_bounds_, dtype=float))
    data["degenerate_components_"] = ("degenerate", estimator.degenerate_components_)
    coords = {"feature": [str(f) for f in getattr(estimator, "feature_names_in_", [])] or None}
    ds = xr.Dataset(data, coords={k: v for k, v in coords.items() if v is not None})
    ds.attrs.update(
        format=_FORMAT,
        params=_json_params(estimator),
        fitted=json.dumps(
            {
                "converged_": bool(estimator.converged_),
                "n_iter_": int(estimator.n_iter_),
                "lower_bound_": float(estimator.lower_bound_),
                "n_features_in_": int(estimator.n_features_in_),
                "prior_": estimator.prior_,
                "has_feature_names": hasattr(estimator, "feature_names_in_"),
            }
        ),
    )
    write_netcdf_atomic(ds, path)


def load_gaussian_mixture(path: str | PathLike) -> GaussianMixture:
    """Read a :class:`GaussianMixture` written by :func:`save_gaussian_mixture`."""
    with xr.open_dataset(path, engine="h5netcdf") as ds:
        ds = ds.load()
    check_format(ds.attrs, _FORMAT, path, "bayesgmm GaussianMixture")
    params = json.loads(ds.attrs["params"])
    if isinstance(params["prior"], dict) and _PRIOR_TAG in params["prior"]:
        params["prior"] = ConjugatePrior(**params["prior"][_PRIOR_TAG])
    estimator = GaussianMixture(**params)
    fitted = json.loads(ds.attrs["fitted"])
    for name in _ARRAYS:
        setattr(estimator, name, ds[name].values.astype(np.float64))
    estimator.lower_bounds_ = ds["lower_bounds_"].values.tolist()
    estimator.degenerate_components_ = ds["degenerate_components_"].values.astype(int)
    if fitted.pop("has_feature_names"):
        estimator.feature_names_in_ = np.asarray(ds["feature"].values, dtype=object)
    for key, value in fitted.items():
        setattr(estimator, key, value)
    return estimator
