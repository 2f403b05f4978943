"""Save and load a fitted :class:`~bayesgmm.mpma.estimator.MPMA` as netCDF, exactly.

Arrays are float64 / int64 variables with named dims (``component``, ``user``, ``item``,
``factor`` and per-component ``row_<c>`` / ``col_<c>``); constructor parameters and scalars
are JSON attributes, with a format tag so a file never loads into the wrong model.
"""

from __future__ import annotations

import dataclasses
import json
from os import PathLike

import numpy as np
import xarray as xr

from bayesgmm.mpma.als import Factors
from bayesgmm.mpma.em import MPMAPriors
from bayesgmm.persistence import check_format, write_netcdf_atomic

_FORMAT = "bayesgmm.MPMA/1"
_FACTOR_FIELDS = ("row_bias", "col_bias", "row_factors", "col_factors")


def _ids(values: np.ndarray) -> np.ndarray:
    """Ids as a netCDF-storable array (numbers stay numeric, anything else becomes str)."""
    arr = np.asarray(values)
    return arr if arr.dtype.kind in "iuf" else arr.astype(str)


def save_mpma(model, path: str | PathLike) -> None:
    """Write a fitted MPMA to ``path`` (atomically)."""
    if not hasattr(model, "weights_"):
        raise ValueError("the model is not fitted: call fit before save")
    data = {
        "weights": ("component", model.weights_),
        "sigmas": ("component", model.sigmas_),
        "user_ids": ("user", _ids(model.user_ids_)),
        "item_ids": ("item", _ids(model.item_ids_)),
        "user_groups": ("user", model.user_groups_),
        "item_groups": ("item", model.item_groups_),
        "trace": ("iteration", model.trace_),
        "warmup_trace": ("warmup_iteration", model.warmup_trace_),
        "train_users": ("rating", model.train_users_),
        "train_items": ("rating", model.train_items_),
    }
    offsets = []
    for name, f in zip(model.components_, model.factors_, strict=True):
        offsets.append(f.offset)
        data[f"{name}_row_bias"] = (f"row_{name}", f.row_bias)
        data[f"{name}_col_bias"] = (f"col_{name}", f.col_bias)
        data[f"{name}_row_factors"] = ((f"row_{name}", "factor"), f.row_factors)
        data[f"{name}_col_factors"] = ((f"col_{name}", "factor"), f.col_factors)
    data["offsets"] = ("component", np.asarray(offsets, dtype=np.float64))
    params = model.get_params()
    params["components"] = list(params["components"])
    params["rating_scale"] = [float(v) for v in params["rating_scale"]]
    if isinstance(params["priors"], MPMAPriors):
        params["priors"] = dataclasses.asdict(params["priors"])
    ds = xr.Dataset(data, coords={"component": list(model.components_)})
    ds.attrs.update(
        format=_FORMAT,
        params=json.dumps(params),
        fitted=json.dumps(
            {
                "converged_": bool(model.converged_),
                "n_iter_": int(model.n_iter_),
                "fit_time_": float(model.fit_time_),
                "priors_": dataclasses.asdict(model.priors_),
            }
        ),
    )
    write_netcdf_atomic(ds, path)


def load_mpma(path: str | PathLike):
    """Read an MPMA written by :func:`save_mpma`."""
    from bayesgmm.mpma.estimator import MPMA

    with xr.open_dataset(path, engine="h5netcdf") as ds:
        ds = ds.load()
    check_format(ds.attrs, _FORMAT, path, "bayesgmm MPMA model")
    params = json.loads(ds.attrs["params"])
    params["components"] = tuple(params["components"])
    params["rating_scale"] = tuple(params["rating_scale"])
    model = MPMA(**params)
    fitted = json.loads(ds.attrs["fitted"])
    model.converged_ = fitted["converged_"]
    model.n_iter_ = fitted["n_iter_"]
    model.fit_time_ = fitted["fit_time_"]
    model.priors_ = MPMAPriors(**fitted["priors_"])
    model.components_ = tuple(str(c) for c in ds["component"].values)
    model.weights_ = ds["weights"].values
    model.sigmas_ = ds["sigmas"].values
    model.user_ids_ = ds["user_ids"].values
    model.item_ids_ = ds["item_ids"].values
    model.user_groups_ = ds["user_groups"].values.astype(np.int64)
    model.item_groups_ = ds["item_groups"].values.astype(np.int64)
    model.trace_ = ds["trace"].values
    model.warmup_trace_ = ds["warmup_trace"].values
    model.train_users_ = ds["train_users"].values.astype(np.int64)
    model.train_items_ = ds["train_items"].values.astype(np.int64)
    model.factors_ = [
        Factors(
            float(ds["offsets"].values[c]),
            *(ds[f"{name}_{field}"].values for field in _FACTOR_FIELDS),
        )
        for c, name in enumerate(model.components_)
    ]
    return model
