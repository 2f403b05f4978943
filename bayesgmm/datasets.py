"""Datasets for mixture modelling: bundled classics, CSV files, synthetic mixtures, MovieLens.

Four groups of loaders live here:

* the small classic datasets shipped inside the package (``load_faithful``,
  ``load_galaxies``, ``load_geyser``, and ``load_dataset`` to pick one by name from
  :data:`BUNDLED_DATASETS`);
* ``load_table``, the one reader of "a CSV file or a bundled dataset name" (``bayesgmm fit``
  and ``bayesgmm run``): it says which columns it left out, refuses a numeric column with a
  few unparseable cells (naming them), and names the file and the problem when a CSV is
  empty, header-only or not text;
* ``make_mixture``, which draws a Gaussian mixture with a known, exactly controlled
  c-separation (Dasgupta 1999) and samples from it;
* ``load_movielens`` (every GroupLens MovieLens release, downloaded once into a cache
  directory or read from a local copy) and ``load_ratings`` (any (user, item, rating)
  file), re-exported from :mod:`bayesgmm.movielens`, where they live.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from bayesgmm._validation import check_positive_int
from bayesgmm.em.gaussian import check_covariance_type, full_covariances
from bayesgmm.movielens import MOVIELENS_100K_URL, load_movielens, load_ratings

__all__ = [
    "BUNDLED_DATASETS",
    "MOVIELENS_100K_URL",
    "SyntheticMixture",
    "Table",
    "ignored_columns_note",
    "load_dataset",
    "load_faithful",
    "load_galaxies",
    "load_geyser",
    "load_movielens",
    "load_ratings",
    "load_table",
    "make_mixture",
]

# ---------------------------------------------------------------------------
# Bundled classic datasets
# ---------------------------------------------------------------------------


def _read_bundled_csv(filename: str) -> pd.DataFrame:
    """Read ``bayesgmm/data/<filename>`` with every column as float64."""
    resource = resources.files("bayesgmm").joinpath("data", filename)
    with resource.open("rb") as handle:
        return pd.read_csv(handle, dtype="float64")


def load_faithful() -> pd.DataFrame:
    """Old Faithful geyser eruptions, as in R's ``datasets::faithful``.

    Eruption durations and waiting times of the Old Faithful geyser in Yellowstone
    National Park, Wyoming, USA: the textbook bimodal example for two-component mixtures.

    Returns
    -------
    pandas.DataFrame of shape (272, 2)
        Columns, both float64:

        ``eruptions``
            Duration of the eruption, in minutes.
        ``waiting``
            Waiting time to the next eruption, in minutes.

    Notes
    -----
    Source: R package ``datasets`` (``faithful``), from W. Härdle (1991), *Smoothing
    Techniques with Implementation in S*, Springer. See also A. Azzalini and A. W. Bowman
    (1990), "A look at some data on the Old Faithful geyser", *Applied Statistics* 39,
    357-365.
    """
    return _read_bundled_csv("faithful.csv")


def load_galaxies() -> pd.DataFrame:
    """Velocities of 82 galaxies in the Corona Borealis region, as in ``MASS::galaxies``.

    Recession velocities of galaxies from six well-separated conic sections of an
    unfilled survey of the Corona Borealis region; multimodality is evidence for voids and
    superclusters. The standard one-dimensional benchmark for choosing the number of
    mixture components.

    Returns
    -------
    pandas.DataFrame of shape (82, 1)
        Column ``velocity`` (float64): velocity in km/s.

    Notes
    -----
    Source: R package ``MASS`` (``galaxies``), from K. Roeder (1990), "Density estimation
    with confidence sets exemplified by superclusters and voids in the galaxies",
    *JASA* 85, 617-624, who took them from M. Postman, J. P. Huchra and M. J. Geller
    (1986), "Probes of large-scale structures in the Corona Borealis region",
    *Astronomical Journal* 92, 1238-1247. As in MASS, the 78th value is 26690 (a known typo
    for 26960), and Postman et al.'s 83rd measurement (5607 km/s) is omitted.
    """
    return _read_bundled_csv("galaxies.csv")


def load_geyser() -> pd.DataFrame:
    """Old Faithful geyser data of Azzalini & Bowman (1990), as in ``MASS::geyser``.

    Continuous measurements from 1 to 15 August 1985. Some night-time durations were
    recorded only as "short", "medium" or "long" and are coded as 2, 3 or 4 minutes, which
    puts spikes in the ``duration`` margin.

    Returns
    -------
    pandas.DataFrame of shape (299, 2)
        Columns, both float64:

        ``waiting``
            Waiting time, in minutes.
        ``duration``
            Duration of the eruption, in minutes.

    Notes
    -----
    Source: R package ``MASS`` (``geyser``), from A. Azzalini and A. W. Bowman (1990),
    "A look at some data on the Old Faithful geyser", *Applied Statistics* 39, 357-365.
    """
    return _read_bundled_csv("geyser.csv")


_BUNDLED_LOADERS = {
    "faithful": load_faithful,
    "galaxies": load_galaxies,
    "geyser": load_geyser,
}
#: Names of the datasets shipped in the package (for :func:`load_dataset`).
BUNDLED_DATASETS: tuple[str, ...] = tuple(_BUNDLED_LOADERS)


def load_dataset(name: str) -> pd.DataFrame:
    """Load a bundled classic dataset by name.

    Parameters
    ----------
    name : {"faithful", "galaxies", "geyser"}
        Which dataset; see `load_faithful`, `load_galaxies` and `load_geyser`.

    Returns
    -------
    pandas.DataFrame
        The dataset, every column float64.

    Raises
    ------
    ValueError
        If `name` is not one of the bundled datasets.
    """
    try:
        loader = _BUNDLED_LOADERS[name]
    except (KeyError, TypeError):
        valid = ", ".join(repr(key) for key in _BUNDLED_LOADERS)
        raise ValueError(f"unknown dataset {name!r}; valid names are {valid}") from None
    return loader()


# ---------------------------------------------------------------------------
# A CSV file or a bundled dataset, by name
# ---------------------------------------------------------------------------

_SNIFF_BYTES = 1 << 16  # how much of a file is checked for binary content
_MAX_LISTED = 5  # bad cells named in an error


@dataclass(frozen=True, eq=False)
class Table:
    """Columns read by :func:`load_table`, with where they came from and what was left out.

    Attributes
    ----------
    frame : pandas.DataFrame
        The selected columns, in order, with string column names.
    source : str
        The source as given (a path or a bundled dataset name).
    kind : {"csv", "dataset"}
        Whether `source` was read as a CSV file or is a bundled dataset.
    ignored : tuple of str
        Columns left out because they are not numeric (only when no columns were named).
    """

    frame: pd.DataFrame
    source: str
    kind: str
    ignored: tuple[str, ...] = ()

    @property
    def note(self) -> str | None:
        """What was left out, in words (:func:`ignored_columns_note`), or None."""
        return ignored_columns_note(self.ignored) if self.ignored else None


def ignored_columns_note(columns: Sequence[str]) -> str:
    """The one wording, in ``bayesgmm fit`` and ``bayesgmm run``, of the columns left out."""
    return f"non-numeric columns ignored: {', '.join(columns)}"


def _read_csv(path: Path) -> pd.DataFrame:
    """``pandas.read_csv(path)``, or ValueError naming the file and what is wrong with it."""
    prefix = f"could not read {path} as CSV"
    with path.open("rb") as handle:
        head = handle.read(_SNIFF_BYTES)
    if not head:
        raise ValueError(f"{prefix}: the file is empty (0 bytes)")
    if b"\0" in head:
        raise ValueError(
            f"{prefix}: it is not a text file (it holds NUL bytes: binary data, such as a "
            "spreadsheet or an archive?); export the data as a UTF-8 CSV with a header row"
        )
    try:
        frame = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise ValueError(
            f"{prefix}: it has no header row (the file holds only blank lines)"
        ) from None
    except UnicodeDecodeError as err:
        raise ValueError(
            f"{prefix}: it is not UTF-8 text (it holds byte 0x{err.object[err.start]:02x}); "
            "save it as UTF-8, or export the data as a CSV if the file is binary"
        ) from None
    except (ValueError, pd.errors.ParserError) as err:
        raise ValueError(f"{prefix}: {err}") from None
    if frame.empty:
        columns = ", ".join(map(str, frame.columns))
        raise ValueError(f"{path} has a header row ({columns}) but no data rows")
    return frame


def _bad_cells(column: pd.Series) -> pd.Series | None:
    """The unparseable cells of a column that is numeric but for them, else None.

    A non-numeric column is read as numbers with a few bad cells when more than half of
    its non-empty cells parse as numbers; otherwise it is a text column.
    """
    values = column.dropna()
    bad = pd.to_numeric(values, errors="coerce").isna()
    if not bad.any() or bad.sum() * 2 >= len(values):
        return None
    return values[bad]


def _check_cells(frame: pd.DataFrame, name: str, source: str) -> None:
    """ValueError naming the cells if column ``name`` is numeric but for a few cells."""
    bad = _bad_cells(frame[name])
    if bad is None:
        return
    rows = list(frame.index.get_indexer(bad.index) + 1)
    listed = ", ".join(
        f"row {row}: {value!r}" for row, value in zip(rows[:_MAX_LISTED], bad, strict=False)
    )
    more = f" and {len(rows) - _MAX_LISTED} more" if len(rows) > _MAX_LISTED else ""
    raise ValueError(
        f"column {name!r} of {source} is numeric but for {len(rows)} cell(s) that are not "
        f"numbers ({listed}{more}; rows counted from 1 after the header): fix them, or "
        "leave a missing value empty"
    )


def load_table(
    source: str,
    columns: Sequence[str] | None = None,
    *,
    base: str | os.PathLike[str] | None = None,
    numeric: bool = True,
) -> Table:
    """Read a CSV file or a bundled dataset and select its numeric (or named) columns.

    Parameters
    ----------
    source : str
        Path of a CSV file with a header row (relative to `base`), or the name of a
        bundled dataset (:data:`BUNDLED_DATASETS`). An existing path wins over a dataset
        of the same name.
    columns : sequence of str, optional
        The columns to use, in this order. By default every numeric column; the others
        are left out and listed in :attr:`Table.ignored`.
    base : path, optional
        Directory a relative `source` is resolved against (default: the working
        directory).
    numeric : bool, default True
        Whether named `columns` must be numeric (with ``False`` they are returned as read,
        e.g. user and item ids).

    Returns
    -------
    Table

    Raises
    ------
    FileNotFoundError
        If `source` is neither an existing file nor a bundled dataset name.
    ValueError
        If the file is a directory, empty (0 bytes), binary or not UTF-8, has no header
        or no data rows, or cannot be parsed; if a named column is unknown (or, with
        `numeric`, not numeric); if a numeric column has unparseable cells (their rows
        and values are named); or if no numeric column is left.
    """
    path = Path(source) if base is None else Path(base) / source
    if path.exists():
        if path.is_dir():
            raise ValueError(f"{path} is a directory, not a CSV file")
        frame, kind, where = _read_csv(path), "csv", str(path)
    elif source in BUNDLED_DATASETS:
        frame, kind, where = load_dataset(source), "dataset", source
    else:
        looked = f" (looked for {path})" if path != Path(source) else ""
        raise FileNotFoundError(
            f"{source!r} is neither an existing file{looked} nor a bundled dataset "
            f"(bundled datasets: {', '.join(BUNDLED_DATASETS)})"
        )
    frame.columns = [str(name) for name in frame.columns]
    is_numeric = {name: pd.api.types.is_numeric_dtype(frame[name]) for name in frame.columns}
    if columns is None:
        for name in frame.columns:
            if not is_numeric[name]:
                _check_cells(frame, name, where)
        selected = [name for name in frame.columns if is_numeric[name]]
        if not selected:
            raise ValueError(f"{where} has no numeric columns")
        ignored = tuple(name for name in frame.columns if not is_numeric[name])
    else:
        selected = list(columns)
        unknown = [name for name in selected if name not in frame.columns]
        if unknown:
            available = ", ".join(frame.columns)
            raise ValueError(f"unknown column(s) {unknown} in {where}; available: {available}")
        if numeric:
            for name in selected:
                if not is_numeric[name]:
                    _check_cells(frame, name, where)
            text = [name for name in selected if not is_numeric[name]]
            if text:
                raise ValueError(f"column(s) {text} in {where} are not numeric")
        ignored = ()
    return Table(frame[selected], source, kind, ignored)


# ---------------------------------------------------------------------------
# Synthetic mixtures
# ---------------------------------------------------------------------------

_EIGENVALUE_RANGE = (0.5, 2.0)
_DIRICHLET_CONCENTRATION = 5.0


@dataclass(frozen=True, eq=False)
class SyntheticMixture:
    """A Gaussian mixture with known parameters and a sample drawn from it.

    Attributes
    ----------
    X : ndarray of shape (n, d), float64
        The sample.
    labels : ndarray of shape (n,), int64
        Component of each row of `X`, in ``0..k-1``.
    weights : ndarray of shape (k,), float64
        Mixing weights (positive, summing to one).
    means : ndarray of shape (k, d), float64
        Component means.
    covariances : ndarray, float64
        Component covariances, shaped as scikit-learn's ``GaussianMixture.covariances_``:
        (k, d, d) for "full", (d, d) for "tied", (k, d) for "diag" (the variances) and
        (k,) for "spherical" (one variance per component).
    covariance_type : {"full", "tied", "diag", "spherical"}
        How `covariances` is parametrised.
    """

    X: np.ndarray
    labels: np.ndarray
    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray
    covariance_type: str


def _random_rotation(rng: np.random.Generator, d: int) -> np.ndarray:
    """Haar-distributed orthogonal matrix of shape (d, d) (QR of a Gaussian matrix)."""
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    return q * np.sign(np.diag(r))


def _draw_covariances(rng: np.random.Generator, k: int, d: int, covariance_type: str) -> np.ndarray:
    """Random covariances in scikit-learn's layout, eigenvalues in ``_EIGENVALUE_RANGE``."""
    low, high = _EIGENVALUE_RANGE
    if covariance_type == "spherical":
        return rng.uniform(low, high, size=k)
    if covariance_type == "diag":
        return rng.uniform(low, high, size=(k, d))
    n_matrices = k if covariance_type == "full" else 1
    matrices = np.empty((n_matrices, d, d))
    for i in range(n_matrices):
        rotation = _random_rotation(rng, d)
        matrix = (rotation * rng.uniform(low, high, size=d)) @ rotation.T
        matrices[i] = (matrix + matrix.T) / 2.0
    return matrices if covariance_type == "full" else matrices[0]


def _min_pairwise_distance(means: np.ndarray) -> float:
    """Smallest Euclidean distance between two rows of `means`, shape (k, d), k >= 2."""
    upper = np.triu_indices(len(means), k=1)
    return float(np.linalg.norm(means[upper[0]] - means[upper[1]], axis=-1).min())


def _separated_means(rng: np.random.Generator, k: int, d: int, min_distance: float) -> np.ndarray:
    """Means of shape (k, d) whose closest pair is exactly `min_distance` apart."""
    if k == 1:
        return np.zeros((1, d))
    means = rng.standard_normal((k, d))
    while (raw_min := _min_pairwise_distance(means)) == 0.0:  # probability zero; redraw
        means = rng.standard_normal((k, d))
    means -= means.mean(axis=0)
    scale = min_distance / raw_min
    scaled = means * scale
    # Rounding may leave the closest pair an ulp short of the bound: step the scale up.
    while _min_pairwise_distance(scaled) < min_distance:
        scale = np.nextafter(scale, np.inf)
        scaled = means * scale
    return scaled


def make_mixture(
    n: int,
    k: int,
    d: int,
    separation: float = 3.0,
    seed: int | None = None,
    covariance_type: str = "full",
) -> SyntheticMixture:
    """Draw a random Gaussian mixture with a given c-separation, and sample from it.

    Parameters
    ----------
    n : int
        Number of samples, >= 1.
    k : int
        Number of components, >= 1.
    d : int
        Number of features (dimension), >= 1.
    separation : float, default 3.0
        Dasgupta's c-separation ``c`` >= 0 (Dasgupta 1999, "Learning mixtures of
        Gaussians", FOCS): every pair of components ``i != j`` satisfies

            ``||mu_i - mu_j|| >= c * sqrt(d * lambda_max)``,

        where ``lambda_max`` is the largest eigenvalue over *all* the component
        covariances (a slightly stronger condition than Dasgupta's pairwise maximum).
        The means are scaled so that the closest pair sits on this bound (to
        floating-point rounding, never below it), so `separation` is exactly the
        mixture's c-separation. In Dasgupta's reading, c = 2 gives almost completely
        separated clusters and c = 1 or 1/2 clusters with some overlap. With
        ``separation=0`` all the means coincide and components differ only in weight
        and covariance.
    seed : int or None, default None
        Seed for ``numpy.random.default_rng``; the same seed gives the same mixture.
    covariance_type : {"full", "tied", "diag", "spherical"}, default "full"
        Structure of the covariances, as in scikit-learn's ``GaussianMixture``.

    Returns
    -------
    SyntheticMixture
        ``X`` of shape (n, d), ``labels`` of shape (n,), ``weights`` of shape (k,),
        ``means`` of shape (k, d), and ``covariances`` of shape (k, d, d) for "full",
        (d, d) for "tied", (k, d) for "diag" and (k,) for "spherical".

    Raises
    ------
    ValueError
        If `n`, `k` or `d` is not an integer >= 1, `separation` is negative, not
        finite or so large that the means would overflow, or `covariance_type` is not
        one of the four above.

    Notes
    -----
    The generative recipe, in order, from one ``numpy.random.default_rng(seed)``:

    1. weights ~ Dirichlet(5, ..., 5), so no component is vanishingly rare;
    2. covariances with every eigenvalue drawn uniformly from [0.5, 2.0] (condition
       number at most 4): for "full" and "tied", ``R diag(lambda) R^T`` with ``R`` a
       Haar-random rotation; for "diag", the variances themselves; for "spherical", one
       variance per component;
    3. means: ``k`` standard normal points, centred on their average, then scaled by
       one common factor so that the closest pair is exactly
       ``separation * sqrt(d * lambda_max)`` apart (a single component sits at the
       origin);
    4. labels drawn independently from ``Categorical(weights)``, and
       ``X[i] ~ Normal(means[labels[i]], covariance of component labels[i])``.
    """
    n = check_positive_int(n, "n")
    k = check_positive_int(k, "k")
    d = check_positive_int(d, "d")
    if (
        isinstance(separation, bool)
        or not isinstance(separation, numbers.Real)
        or not math.isfinite(separation)
        or separation < 0
    ):
        raise ValueError(f"separation must be a finite number >= 0, got {separation!r}")
    check_covariance_type(covariance_type)

    rng = np.random.default_rng(seed)
    weights = rng.dirichlet(np.full(k, _DIRICHLET_CONCENTRATION))
    covariances = _draw_covariances(rng, k, d, covariance_type)
    full = full_covariances(covariances, covariance_type, k, d)
    lambda_max = float(np.linalg.eigvalsh(full).max())
    min_distance = float(separation) * math.sqrt(d * lambda_max)
    if not math.isfinite(min_distance):
        raise ValueError(f"separation={separation!r} is too large: the means would overflow")
    means = _separated_means(rng, k, d, min_distance)

    labels = rng.choice(k, size=n, p=weights)
    noise = rng.standard_normal((n, d))
    X = np.empty((n, d))
    for component in range(k):
        rows = labels == component
        cholesky = np.linalg.cholesky(full[component])
        X[rows] = means[component] + noise[rows] @ cholesky.T
    return SyntheticMixture(
        X=X,
        labels=labels.astype(np.int64),
        weights=weights,
        means=means,
        covariances=covariances,
        covariance_type=covariance_type,
    )
