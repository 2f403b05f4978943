"""Save and load a fitted :class:`~bayesgmm.mpma.estimator.MPMA` or ``GibbsMPMA`` exactly.

netCDF files: arrays are float64 / int64 variables with named dims (``component``,
``user``, ``item``, ``factor``, per-component ``row_<c>`` / ``col_<c>``, and ``draw``
for the Gibbs draws); constructor parameters and scalars are JSON attributes, with a
format tag so a file never loads into the wrong model.
"""

from __future__ import annotations

import dataclasses
import json
from os import PathLike

import numpy as np
import xarray as xr

from bayesgmm.mpma.als import Factors
from bayesgmm.mpma.em import MPMAPriors
from bayesgmm.mpma.gibbs import ComponentPosterior, GibbsPriors
from bayesgmm.em.persistence import check_format, write_netcdf_atomic

_FORMATS = {"MPMA": "bayesgmm.MPMA/1", "GibbsMPMA": "bayesgmm.GibbsMPMA/1"}
_FACTOR_FIELDS = ("row_bias", "col_bias", "row_factors", "col_factors")


def _ids(values: np.ndarray) -> np.ndarray:
    """Ids as a netCDF-storable array (numbers stay numeric, anything else becomes str)."""
    arr = np.asarray(values)
    return arr if arr.dtype.kind in "iuf" else arr.astype(str)


def _factor_dims(name: str, field: str, draws: bool) -> tuple[str, ...]:
    dims = (
        (f"{field[:3]}_{name}", "factor") if field.endswith("factors") else (f"{field[:3]}_{name}",)
    )
    return ("draw", *dims) if draws else dims


def save_mpma(model, path: str | PathLike) -> None:
    """Write a fitted MPMA or GibbsMPMA to ``path`` (atomically)."""
    if not hasattr(model, "weights_"):
        raise ValueError("the model is not fitted: call fit before save")
    kind = type(model).__name__
    data = {
        "weights": ("component", model.weights_),
        "sigmas": ("component", model.sigmas_),
        "user_ids": ("user", _ids(model.user_ids_)),
        "item_ids": ("item", _ids(model.item_ids_)),
        "user_groups": ("user", model.user_groups_),
        "item_groups": ("item", model.item_groups_),
        "train_users": ("rating", model.train_users_),
        "train_items": ("rating", model.train_items_),
        "offsets": ("component", np.array([f.offset for f in model.factors_], dtype=np.float64)),
    }
    for name, f in zip(model.components_, model.factors_, strict=True):
        for field in _FACTOR_FIELDS:
            data[f"{name}_{field}"] = (_factor_dims(name, field, False), getattr(f, field))
    fitted = {"fit_time_": float(model.fit_time_), "priors_": dataclasses.asdict(model.priors_)}
    if kind == "GibbsMPMA":
        data["validation"] = ("rating", model.validation_.astype(np.int8))
        data["weights_trace"] = ("weights_iteration", model.weights_trace_)
        data["draw_sigmas"] = (
            ("component", "draw"),
            np.stack([p.sigmas for p in model.posteriors_]),
        )
        data["log_likelihood"] = (
            ("component", "sweep"),
            np.stack([p.log_likelihood for p in model.posteriors_]),
        )
        for name, p in zip(model.components_, model.posteriors_, strict=True):
            for field in _FACTOR_FIELDS:
                data[f"{name}_draw_{field}"] = (
                    _factor_dims(name, field, True),
                    np.stack([getattr(f, field) for f in p.draws]),
                )
    else:
        data["trace"] = ("iteration", model.trace_)
        data["warmup_trace"] = ("warmup_iteration", model.warmup_trace_)
        fitted |= {"converged_": bool(model.converged_), "n_iter_": int(model.n_iter_)}
    params = model.get_params()
    params["components"] = list(params["components"])
    params["rating_scale"] = [float(v) for v in params["rating_scale"]]
    if dataclasses.is_dataclass(params["priors"]):
        params["priors"] = dataclasses.asdict(params["priors"])
    ds = xr.Dataset(data, coords={"component": list(model.components_)})
    ds.attrs.update(format=_FORMATS[kind], params=json.dumps(params), fitted=json.dumps(fitted))
    write_netcdf_atomic(ds, path)


def load_mpma(path: str | PathLike, kind: str = "MPMA"):
    """Read a model written by :func:`save_mpma`; ``kind`` is "MPMA" or "GibbsMPMA"."""
    from bayesgmm.mpma.estimator import MPMA, GibbsMPMA

    with xr.open_dataset(path, engine="h5netcdf") as ds:
        ds = ds.load()
    check_format(ds.attrs, _FORMATS[kind], path, f"bayesgmm {kind} model")
    params = json.loads(ds.attrs["params"])
    params["components"] = tuple(params["components"])
    params["rating_scale"] = tuple(params["rating_scale"])
    model = (GibbsMPMA if kind == "GibbsMPMA" else MPMA)(**params)
    fitted = json.loads(ds.attrs["fitted"])
    model.fit_time_ = fitted["fit_time_"]
    model.components_ = tuple(str(c) for c in ds["component"].values)
    model.weights_ = ds["weights"].values
    model.sigmas_ = ds["sigmas"].values
    model.user_ids_ = ds["user_ids"].values
    model.item_ids_ = ds["item_ids"].values
    model.user_groups_ = ds["user_groups"].values.astype(np.int64)
    model.item_groups_ = ds["item_groups"].values.astype(np.int64)
    model.train_users_ = ds["train_users"].values.astype(np.int64)
    model.train_items_ = ds["train_items"].values.astype(np.int64)
    offsets = ds["offsets"].values
    model.factors_ = [
        Factors(float(offsets[c]), *(ds[f"{name}_{field}"].values for field in _FACTOR_FIELDS))
        for c, name in enumerate(model.components_)
    ]
    if kind == "GibbsMPMA":
        model.priors_ = GibbsPriors(**fitted["priors_"])
        model.validation_ = ds["validation"].values.astype(bool)
        model.weights_trace_ = ds["weights_trace"].values
        model.posteriors_ = [
            ComponentPosterior(
                draws=[
                    Factors(
                        float(offsets[c]),
                        *(ds[f"{name}_draw_{field}"].values[d] for field in _FACTOR_FIELDS),
                    )
                    for d in range(ds.sizes["draw"])
                ],
                sigmas=ds["draw_sigmas"].values[c],
                log_likelihood=ds["log_likelihood"].values[c],
            )
            for c, name in enumerate(model.components_)
        ]
    else:
        model.priors_ = MPMAPriors(**fitted["priors_"])
        model.trace_ = ds["trace"].values
        model.warmup_trace_ = ds["warmup_trace"].values
        model.converged_ = fitted["converged_"]
        model.n_iter_ = fitted["n_iter_"]
    return model
