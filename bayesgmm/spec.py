"""Run specifications: one TOML file describes the data, the model, the inference and the
outputs of a reproducible run (``bayesgmm run models/<spec>.toml``).

Schema (every key is optional unless marked required; defaults in brackets)::

    name = "faithful"                 # required; names the default output directory
    description = "..."               # free text, copied into the report

    [data]
    source = "faithful"               # required: a bundled dataset (faithful, galaxies,
                                      # geyser), a CSV path (relative to the spec file), or
                                      # "movielens-100k"
    columns = ["eruptions", "waiting"]  # [all numeric columns]
    path = "../shared/data/ml-100k"   # local copy for movielens-100k [download + cache]

    [model]
    family = "gmm"                    # "gmm" | "mpma" ["gmm"]
    n_components = 2                  # int, or a list of ints: a sweep over K (gmm)
    covariance_type = "full"          # "full" | "tied" | "diag" | "spherical" ["full"]
    order_feature = 0                 # int, or false to switch ordering off [0]
    select = "loo"                    # K of a sweep to report in full: "loo" | "bic" ["loo"]
    [model.priors]                    # gmm: weights_alpha, means_mu, means_sigma,
                                      # sigma_scale, lkj_eta [data-scaled defaults]
    estimator = "map-em"              # mpma: "map-em" (MPMA) | "gibbs" (GibbsMPMA) ["map-em"]
    [model.options]                   # mpma: keyword arguments of the estimator class
                                      # (model.priors: fields of MPMAPriors / GibbsPriors)

    [inference]
    method = "nuts"                   # "em" | "map" | "nuts" ["nuts"]
    chains = 4                        # [4]
    draws = 1000                      # [1000]
    tune = 1000                       # [1000]
    seed = 1                          # [0]
    em_n_init = 5                     # [5]
    holdout = 0.2                     # mpma: fraction of ratings held out for RMSE [0.2]
    subsample = [150, 200]            # mpma + nuts: densest users x items cross-checked
                                      # by NUTS [[150, 200]]
    subsample_factors = 2             # mpma + nuts: factors of the subsample model [2]

    [output]
    directory = "runs/faithful"       # relative to the working directory [runs/<name>]
    figures = true                    # [true]

An invalid spec raises :class:`SpecError` (a ``ValueError``) naming the key, the value and
the allowed values.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Spec", "SpecError", "load_spec", "parse_spec"]

FAMILIES = ("gmm", "mpma")
METHODS = ("em", "map", "nuts")
COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
SELECT = ("loo", "bic")
MPMA_INFERENCE_KEYS = ("holdout", "subsample", "subsample_factors")
MPMA_ESTIMATORS = ("map-em", "gibbs")
GMM_PRIOR_KEYS = ("weights_alpha", "means_mu", "means_sigma", "sigma_scale", "lkj_eta")
_TABLES = {
    "": ("name", "description", "data", "model", "inference", "output"),
    "data": ("source", "columns", "path"),
    "model": (
        "family",
        "n_components",
        "covariance_type",
        "order_feature",
        "select",
        "priors",
        "options",
        "estimator",
    ),
    "inference": (
        "method",
        "chains",
        "draws",
        "tune",
        "seed",
        "em_n_init",
        "holdout",
        "subsample",
        "subsample_factors",
    ),
    "output": ("directory", "figures"),
}


class SpecError(ValueError):
    """An invalid run specification; the message names the key and what is allowed."""


@dataclass(frozen=True)
class Spec:
    """A validated run specification (see the module docstring for the schema)."""

    name: str
    source: str
    description: str = ""
    columns: tuple[str, ...] | None = None
    data_path: Path | None = None
    family: str = "gmm"
    n_components: tuple[int, ...] = (2,)
    covariance_type: str = "full"
    order_feature: int | None = 0
    select: str = "loo"
    priors: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    estimator: str = "map-em"
    method: str = "nuts"
    chains: int = 4
    draws: int = 1000
    tune: int = 1000
    seed: int = 0
    em_n_init: int = 5
    holdout: float = 0.2
    subsample: tuple[int, int] = (150, 200)
    subsample_factors: int = 2
    directory: Path = Path("runs")
    figures: bool = True
    origin: Path | None = None  # the spec file, if read from one

    @property
    def is_sweep(self) -> bool:
        return len(self.n_components) > 1


def _where(table: str, key: str) -> str:
    return f"{table}.{key}" if table else key


def _check_keys(raw: dict, table: str) -> None:
    allowed = _TABLES[table]
    for key in raw:
        if key not in allowed:
            raise SpecError(
                f"unknown key {_where(table, key)!r}; allowed in "
                f"{'[' + table + ']' if table else 'the top level'}: {', '.join(allowed)}"
            )


def _table(raw: dict, name: str) -> dict:
    value = raw.get(name, {})
    if not isinstance(value, dict):
        raise SpecError(f"{name!r} must be a table ([{name}]), got {value!r}")
    _check_keys(value, name)
    return value


def _choice(value: Any, key: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise SpecError(f"{key} = {value!r} is not allowed; use one of {', '.join(allowed)}")
    return value


def _int(value: Any, key: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise SpecError(f"{key} = {value!r} must be an integer >= {minimum}")
    return value


def _str(value: Any, key: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise SpecError(f"{key} = {value!r} must be a non-empty string")
    return value


def parse_spec(raw: dict, origin: Path | None = None) -> Spec:
    """Validate a spec given as a dict (as read from TOML); see the module docstring."""
    if not isinstance(raw, dict):
        raise SpecError(f"a spec is a TOML table, got {type(raw).__name__}")
    _check_keys(raw, "")
    if "name" not in raw:
        raise SpecError("missing required key 'name' (names the run and its output directory)")
    name = _str(raw["name"], "name")
    data, model = _table(raw, "data"), _table(raw, "model")
    inference, output = _table(raw, "inference"), _table(raw, "output")
    base = origin.parent if origin is not None else Path.cwd()

    if "source" not in data:
        raise SpecError(
            "missing required key 'data.source': a bundled dataset (faithful, galaxies, "
            "geyser), a CSV path, or movielens-100k"
        )
    source = _str(data["source"], "data.source")
    columns = data.get("columns")
    if columns is not None:
        if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
            raise SpecError(f"data.columns = {columns!r} must be a list of column names")
        columns = tuple(columns)
    data_path = base / _str(data["path"], "data.path") if "path" in data else None

    family = _choice(model.get("family", "gmm"), "model.family", FAMILIES)
    k = model.get("n_components", 2)
    ks = k if isinstance(k, list) else [k]
    if not ks:
        raise SpecError("model.n_components = [] must list at least one K")
    ks = tuple(_int(v, "model.n_components", 1) for v in ks)
    if family == "mpma" and len(ks) > 1:
        raise SpecError("model.n_components: a sweep over K is for family = 'gmm' only")
    order = model.get("order_feature", 0)
    if order is False:
        order = None
    elif order is not None:
        order = _int(order, "model.order_feature", 0)
    priors = model.get("priors", {})
    if not isinstance(priors, dict):
        raise SpecError(f"model.priors must be a table, got {priors!r}")
    if family == "gmm":
        for key in priors:
            if key not in GMM_PRIOR_KEYS:
                raise SpecError(
                    f"unknown prior model.priors.{key}; allowed: {', '.join(GMM_PRIOR_KEYS)}"
                )
    options = model.get("options", {})
    if not isinstance(options, dict):
        raise SpecError(f"model.options must be a table, got {options!r}")
    if family == "gmm" and options:
        raise SpecError("model.options is for family = 'mpma'; gmm settings have their own keys")
    if family == "gmm" and "estimator" in model:
        raise SpecError("model.estimator is for family = 'mpma'")

    mpma_keys = [key for key in MPMA_INFERENCE_KEYS if key in inference]
    if family == "gmm" and mpma_keys:
        raise SpecError(f"inference.{mpma_keys[0]} is for family = 'mpma'")
    holdout = inference.get("holdout", 0.2)
    if isinstance(holdout, bool) or not isinstance(holdout, int | float) or not 0 <= holdout < 1:
        raise SpecError(f"inference.holdout = {holdout!r} must be a number in [0, 1)")
    subsample = inference.get("subsample", [150, 200])
    if not isinstance(subsample, list) or len(subsample) != 2:
        raise SpecError(f"inference.subsample = {subsample!r} must be [n_users, n_items]")
    subsample = tuple(_int(v, "inference.subsample", 2) for v in subsample)

    out_dir = output.get("directory", f"runs/{name}")
    figures = output.get("figures", True)
    if not isinstance(figures, bool):
        raise SpecError(f"output.figures = {figures!r} must be true or false")
    spec = Spec(
        name=name,
        description=str(raw.get("description", "")),
        source=source,
        columns=columns,
        data_path=data_path,
        family=family,
        n_components=ks,
        covariance_type=_choice(
            model.get("covariance_type", "full"), "model.covariance_type", COVARIANCE_TYPES
        ),
        order_feature=order,
        select=_choice(model.get("select", "loo"), "model.select", SELECT),
        priors=dict(priors),
        options=dict(options),
        estimator=_choice(model.get("estimator", "map-em"), "model.estimator", MPMA_ESTIMATORS),
        method=_choice(inference.get("method", "nuts"), "inference.method", METHODS),
        chains=_int(inference.get("chains", 4), "inference.chains", 1),
        draws=_int(inference.get("draws", 1000), "inference.draws", 1),
        tune=_int(inference.get("tune", 1000), "inference.tune", 0),
        seed=_int(inference.get("seed", 0), "inference.seed", 0),
        em_n_init=_int(inference.get("em_n_init", 5), "inference.em_n_init", 1),
        holdout=float(holdout),
        subsample=subsample,
        subsample_factors=_int(
            inference.get("subsample_factors", 2), "inference.subsample_factors", 0
        ),
        directory=Path(_str(out_dir, "output.directory")),
        figures=figures,
        origin=origin,
    )
    if family == "mpma":
        from bayesgmm.mpma.run import check_mpma_spec

        check_mpma_spec(spec)
    return spec


def load_spec(path: str | Path) -> Spec:
    """Read and validate a TOML spec file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no spec file at {path}")
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise SpecError(f"{path} is not valid TOML: {err}") from None
    return parse_spec(raw, origin=path.resolve())
