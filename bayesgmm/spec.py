"""Run specifications: one TOML file describes the data, the model, the inference and the
outputs of a reproducible run (``bayesgmm run models/<spec>.toml``), and the registry of the
model families a spec can name.

Schema of the keys every family shares (optional unless marked required; defaults in
brackets)::

    name = "faithful"                 # required; names the default output directory
    description = "..."               # free text, copied into the report

    [data]
    source = "faithful"               # required: a bundled dataset (faithful, galaxies,
                                      # geyser), a CSV path (relative to the spec file), or
                                      # "movielens-100k" (or -1m, -10m, -20m, -25m, -32m,
                                      # -latest-small; family mpma)
    columns = ["eruptions", "waiting"]  # [all numeric columns]
    path = "../shared/data/ml-100k"   # local copy for movielens-* [download + cache]

    [model]
    family = "gmm"                    # a registered family: "gmm" | "mpma" ["gmm"]

    [inference]
    method = "nuts"                   # "em" | "map" | "nuts" ["nuts"]
    chains = 4                        # [4]
    draws = 1000                      # [1000]
    tune = 1000                       # [1000]
    seed = 1                          # [0]

    [output]
    directory = "runs/faithful"       # relative to the working directory [runs/<name>]
    figures = true                    # [true]

``[model]`` and ``[inference]`` take further keys of the chosen family, documented (and
validated) by the family's module: :mod:`bayesgmm.gmm.run` (``n_components``, a sweep
over K, ``covariance_type``, ``order_feature``, ``select``, ``priors``; ``em_n_init``) and
:mod:`bayesgmm.mpma.run` (``estimator``, ``options``, ``priors``; ``holdout``,
``subsample``, ``subsample_factors``).  A key of another family is an error naming that
family.  An invalid spec raises :class:`SpecError` (a ``ValueError``) naming the key, the
value and the allowed values.

Families
--------
:data:`FAMILIES` maps each ``model.family`` to the module that implements it, by name: the
module is imported on first use (:func:`family_module`).  The dependency runs one way:
a family module imports the driver's public API (this module and :mod:`bayesgmm.run`),
and neither driver module imports a family module; the registry names them, as data.
So there is no import cycle, hidden or not, and adding a family is one module plus one
line here.  A family module provides:

``KEYS``
    ``{"model": (...), "inference": (...)}``: its keys of those tables.  Each key sets the
    :class:`Spec` field of the same name (a new family adds its fields to :class:`Spec`,
    whose fields are also the ``spec`` entry of ``MANIFEST.json``).
``check_spec(spec, model, inference) -> Spec``
    Validate the family's own keys (``model`` and ``inference`` hold just those, as read
    from TOML) and return ``spec`` with their fields set; raise :class:`SpecError` naming
    the key and the allowed values.  ``spec`` has the shared keys set and the family's
    fields at their defaults.  No fitting, no reading of data.
``load_data(spec) -> bayesgmm.datasets.Table``
    The data, usually by :func:`bayesgmm.run.load_spec_data`.
``run(spec, data, context) -> bayesgmm.run.FamilyOutput``
    Fit; write its data files into ``context.directory``; return the report's sections,
    the figures, the files it wrote, the verdict and extra manifest entries.  The driver
    (:func:`bayesgmm.run.run_spec`) writes ``report.md``, the figures and
    ``MANIFEST.json``, and owns the output directory, its atomicity and the seeds.
"""

from __future__ import annotations

import importlib
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

__all__ = [
    "FAMILIES",
    "FAMILY_API",
    "Spec",
    "SpecError",
    "family_module",
    "load_spec",
    "parse_spec",
    "spec_choice",
    "spec_int",
    "spec_table",
]

#: The model families: ``model.family`` -> the module implementing it (imported on use).
FAMILIES: dict[str, str] = {"gmm": "bayesgmm.gmm.run", "mpma": "bayesgmm.mpma.run"}
#: What a family module provides (see "Families" in the module docstring).
FAMILY_API = ("KEYS", "check_spec", "load_data", "run")
#: Tables whose keys a family may add to.
FAMILY_TABLES = ("model", "inference")
METHODS = ("em", "map", "nuts")
#: The keys every family shares, per table ("" is the top level).
_TABLES = {
    "": ("name", "description", "data", "model", "inference", "output"),
    "data": ("source", "columns", "path"),
    "model": ("family",),
    "inference": ("method", "chains", "draws", "tune", "seed"),
    "output": ("directory", "figures"),
}


class SpecError(ValueError):
    """An invalid run specification; the message names the key and what is allowed."""


@dataclass(frozen=True)
class Spec:
    """A validated run specification (see the module docstring for the schema).

    The fields are the shared keys and the settings of every family; a family's
    ``check_spec`` sets its own, and the others keep their defaults.
    """

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
        """Whether ``model.n_components`` lists more than one K."""
        return len(self.n_components) > 1


def family_module(name: Any) -> ModuleType:
    """The module implementing family ``name``, imported on first use.

    Parameters
    ----------
    name : str
        A key of :data:`FAMILIES`.

    Returns
    -------
    module
        With the attributes of :data:`FAMILY_API`.

    Raises
    ------
    SpecError
        If ``name`` is not registered; the message names the registered families.
    TypeError
        If the registered module lacks part of :data:`FAMILY_API`.
    """
    spec_choice(name, "model.family", tuple(FAMILIES))
    module = importlib.import_module(FAMILIES[name])
    missing = [attr for attr in FAMILY_API if not hasattr(module, attr)]
    if missing:
        raise TypeError(f"family {name!r} ({FAMILIES[name]}) does not provide {missing}")
    return module


def _where(table: str, key: str) -> str:
    return f"{table}.{key}" if table else key


def _allowed(table: str, families: dict[str, ModuleType]) -> tuple[str, ...]:
    """The shared keys of ``table`` and those of every family, in registry order."""
    keys = list(_TABLES[table])
    for module in families.values():
        keys += [key for key in module.KEYS.get(table, ()) if key not in keys]
    return tuple(keys)


def _check_keys(raw: dict, table: str, allowed: tuple[str, ...]) -> None:
    for key in raw:
        if key not in allowed:
            raise SpecError(
                f"unknown key {_where(table, key)!r}; allowed in "
                f"{'[' + table + ']' if table else 'the top level'}: {', '.join(allowed)}"
            )


def _table(raw: dict, name: str, families: dict[str, ModuleType]) -> dict:
    value = raw.get(name, {})
    if not isinstance(value, dict):
        raise SpecError(f"{name!r} must be a table ([{name}]), got {value!r}")
    _check_keys(value, name, _allowed(name, families))
    return value


def _own_keys(
    table: str, values: dict, family: str, families: dict[str, ModuleType]
) -> dict[str, Any]:
    """The keys of ``values`` that belong to ``family``; SpecError for another family's."""
    own = families[family].KEYS.get(table, ())
    for key in values:
        if key not in _TABLES[table] and key not in own:
            owners = " or ".join(
                repr(name) for name, module in families.items() if key in module.KEYS.get(table, ())
            )
            raise SpecError(
                f"{table}.{key} is for family = {owners}; with family = {family!r}, "
                f"[{table}] takes {', '.join(_TABLES[table] + tuple(own))}"
            )
    return {key: value for key, value in values.items() if key in own}


def spec_choice(value: Any, key: str, allowed: tuple[str, ...]) -> str:
    """``value`` if it is one of ``allowed``, else SpecError naming ``key`` and them."""
    if value not in allowed:
        raise SpecError(f"{key} = {value!r} is not allowed; use one of {', '.join(allowed)}")
    return value


def spec_int(value: Any, key: str, minimum: int) -> int:
    """``value`` if it is an integer >= ``minimum`` (not a bool), else SpecError."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise SpecError(f"{key} = {value!r} must be an integer >= {minimum}")
    return value


def spec_table(value: Any, key: str) -> dict:
    """``value`` as a dict if it is a TOML table, else SpecError."""
    if not isinstance(value, dict):
        raise SpecError(f"{key} must be a table, got {value!r}")
    return dict(value)


def _str(value: Any, key: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise SpecError(f"{key} = {value!r} must be a non-empty string")
    return value


def parse_spec(raw: dict, origin: Path | None = None) -> Spec:
    """Validate a spec given as a dict (as read from TOML).

    Parameters
    ----------
    raw : dict
        The spec's tables (see the module docstring).
    origin : Path, optional
        The spec file, if read from one: relative data paths are resolved against its
        directory (default: the working directory).

    Returns
    -------
    Spec

    Raises
    ------
    SpecError
        Naming the key, the value and what is allowed; the family's keys are checked by
        the family (see "Families" in the module docstring).
    """
    if not isinstance(raw, dict):
        raise SpecError(f"a spec is a TOML table, got {type(raw).__name__}")
    families = {name: family_module(name) for name in FAMILIES}
    _check_keys(raw, "", _TABLES[""])
    if "name" not in raw:
        raise SpecError("missing required key 'name' (names the run and its output directory)")
    name = _str(raw["name"], "name")
    data, model = _table(raw, "data", families), _table(raw, "model", families)
    inference, output = _table(raw, "inference", families), _table(raw, "output", families)
    base = origin.parent if origin is not None else Path.cwd()

    if "source" not in data:
        raise SpecError(
            "missing required key 'data.source': a bundled dataset (faithful, galaxies, "
            "geyser), a CSV path, or movielens-100k (or another movielens-<release>)"
        )
    source = _str(data["source"], "data.source")
    columns = data.get("columns")
    if columns is not None:
        if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
            raise SpecError(f"data.columns = {columns!r} must be a list of column names")
        columns = tuple(columns)
    data_path = base / _str(data["path"], "data.path") if "path" in data else None

    family = spec_choice(model.get("family", "gmm"), "model.family", tuple(FAMILIES))
    own_model = _own_keys("model", model, family, families)
    own_inference = _own_keys("inference", inference, family, families)

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
        method=spec_choice(inference.get("method", "nuts"), "inference.method", METHODS),
        chains=spec_int(inference.get("chains", 4), "inference.chains", 1),
        draws=spec_int(inference.get("draws", 1000), "inference.draws", 1),
        tune=spec_int(inference.get("tune", 1000), "inference.tune", 0),
        seed=spec_int(inference.get("seed", 0), "inference.seed", 0),
        directory=Path(_str(out_dir, "output.directory")),
        figures=figures,
        origin=origin,
    )
    checked = families[family].check_spec(spec, own_model, own_inference)
    if not isinstance(checked, Spec):
        raise TypeError(f"family {family!r}: check_spec returned {checked!r}, not a Spec")
    return checked


def load_spec(path: str | Path) -> Spec:
    """Read and validate a TOML spec file.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    Spec

    Raises
    ------
    FileNotFoundError
        If there is no file at ``path``.
    SpecError
        If it is not valid TOML or not a valid spec.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no spec file at {path}")
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise SpecError(f"{path} is not valid TOML: {err}") from None
    return parse_spec(raw, origin=path.resolve())
