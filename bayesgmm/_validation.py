"""Input checks that name the problem and the fix, before NumPy can fail deep inside."""

from __future__ import annotations

import numbers

import numpy as np

__all__ = [
    "NonNumericInputError",
    "check_choice",
    "check_data_matrix",
    "check_data_scale",
    "check_feature_spread",
    "check_matrix_shape",
    "check_no_constant_features",
    "check_numeric_columns",
    "check_positive_int",
    "check_real",
    "check_sample_weight",
    "check_seed",
    "is_dask_collection",
]

#: Seeds are integers in [0, SEED_LIMIT): the range of numpy's ``RandomState`` (and so of
#: scikit-learn's ``random_state``).
SEED_LIMIT = 2**32
#: Largest spread (max - min) of a feature that a fit accepts: beyond it the squared
#: deviations, summed over the samples, overflow float64 (about 1.8e308).
MAX_FEATURE_SPREAD = 1e150


def is_dask_collection(X) -> bool:
    """Whether ``X`` is a Dask collection (array, DataFrame), without importing dask."""
    return type(X).__module__.partition(".")[0] == "dask"


def check_data_matrix(
    X, *, name: str = "X", min_samples: int = 1, allow_nan: bool = False
) -> np.ndarray:
    """Return ``X`` as a finite float64 (n_samples, n_features) array, or raise ValueError.

    Checks, in order: non-numeric columns (named for a DataFrame), dimensionality, empty
    input, too few rows, NaN/inf (the first offending rows are listed). With
    ``allow_nan=True`` NaN (a missing entry; pandas' NA too) passes and only inf is refused.
    """
    if hasattr(X, "toarray") or type(X).__module__.startswith("scipy.sparse"):
        raise ValueError(
            f"sparse input is not supported: {name} must be dense; convert with X.toarray()"
        )
    columns = getattr(X, "columns", None)
    dtypes = getattr(X, "dtypes", None)
    if columns is not None and dtypes is not None and hasattr(dtypes, "items"):
        check_numeric_columns(dtypes, name)
    raw = np.asarray(X) if not hasattr(X, "dtypes") else None
    if raw is not None and np.iscomplexobj(raw):
        raise ValueError(f"Complex data not supported: {name} must be real-valued")
    try:
        if columns is not None and hasattr(X, "to_numpy"):
            # nullable columns (Int64, boolean, Float64): pd.NA becomes NaN, reported below
            arr = X.to_numpy(dtype=np.float64, na_value=np.nan)
        else:
            arr = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise NonNumericInputError(
            f"{name} must be numeric (could not convert to float: {err}); drop or encode "
            "non-numeric columns first"
        ) from None
    check_matrix_shape(arr.shape, name)
    if arr.shape[0] < min_samples:
        raise ValueError(
            f"{name} has {arr.shape[0]} sample{'s' if arr.shape[0] != 1 else ''} "
            f"(n_samples = {arr.shape[0]}); at least {min_samples} are needed"
        )
    finite = np.isfinite(arr) | (np.isnan(arr) if allow_nan else False)
    if not finite.all():
        rows = np.flatnonzero(~finite.all(axis=1))
        kind = "NaN" if np.isnan(arr).any() and not allow_nan else "inf"
        raise ValueError(
            f"{name} contains {kind} (non-finite values: NaN or inf) in {rows.size} row(s), "
            f"first at {rows[:5].tolist()}: drop or impute them first"
        )
    return arr


def check_data_scale(X: np.ndarray, *, name: str = "X", names=None) -> None:
    """Raise ValueError if a feature spreads too far for its variance to be a float64.

    ``X`` is a checked finite (n_samples, n_features) array. Beyond a spread of
    :data:`MAX_FEATURE_SPREAD` (1e150) the variance overflows to inf; the message names
    the feature and the fix (rescale) instead of a parameter computed from it.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        spread = np.ptp(X, axis=0)
    check_feature_spread(spread, name=name, names=names)


def check_feature_spread(
    spread: np.ndarray, *, name: str = "X", names=None, positive_spread=None, n_positive=0
) -> None:
    """:func:`check_data_scale` (and, given the spread over the ``n_positive`` rows of
    positive weight, :func:`check_no_constant_features`) from per-feature spreads
    (max - min), as a pass over chunked data computes them."""
    bad = np.flatnonzero(~(spread <= MAX_FEATURE_SPREAD))
    if bad.size:
        j = int(bad[0])
        label = str(names[j]) if names is not None else f"column {j}"
        raise ValueError(
            f"{name} is too large in scale: feature {label} spans {spread[j]:.3g} (max - min), "
            f"beyond the {MAX_FEATURE_SPREAD:.0e} at which its variance overflows float64; "
            f"rescale {name} before fitting (e.g. divide it by its standard deviation or a "
            "power of 10, or use sklearn.preprocessing.StandardScaler)"
        )
    if positive_spread is not None and n_positive > 1:
        _report_constant(np.flatnonzero(positive_spread == 0), names)


class NonNumericInputError(ValueError, TypeError):
    """Input that cannot be converted to float (a ValueError, and a TypeError for sklearn)."""


def check_no_constant_features(X: np.ndarray, sample_weight: np.ndarray | None, names=None):
    """Raise ValueError if a feature is constant (over the points with positive weight)."""
    rows = X if sample_weight is None else X[np.asarray(sample_weight) > 0]
    if len(rows) > 1:
        _report_constant(np.flatnonzero(np.ptp(rows, axis=0) == 0), names)


def _report_constant(constant: np.ndarray, names) -> None:
    if constant.size:
        labels = [str(names[j]) if names is not None else f"column {j}" for j in constant]
        raise ValueError(
            f"feature(s) {labels} are constant: a Gaussian mixture cannot fit a zero-variance "
            "feature (its covariance would be singular); drop the feature"
        )


def check_sample_weight(sample_weight, n_samples: int) -> np.ndarray | None:
    """Validate sample weights: shape (n_samples,), finite, >= 0, positive sum."""
    if sample_weight is None:
        return None
    try:
        w = np.asarray(sample_weight, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError("sample_weight must be numeric") from None
    if w.ndim == 0:
        w = np.full(n_samples, float(w))
    if w.shape != (n_samples,):
        raise ValueError(f"sample_weight must have shape ({n_samples},) to match X, got {w.shape}")
    if not np.isfinite(w).all() or (w < 0).any():
        raise ValueError("sample_weight must be finite and non-negative")
    if not w.sum() > 0:
        raise ValueError("sample_weight sums to zero: at least one sample needs positive weight")
    return w


def check_positive_int(value, name: str, minimum: int = 1) -> int:
    """An integer >= minimum, or ValueError naming the argument."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_real(value, name: str, *, minimum: float | None = None, strict: bool = False) -> float:
    """A finite real number (``> minimum`` if ``strict``, else ``>= minimum``), as float.

    TypeError when ``value`` is not a real number (bools included), ValueError when it is
    NaN, infinite or out of range; both name the parameter and the allowed range.
    """
    if minimum is None:
        expected = "a finite number"
    else:
        expected = f"{'>' if strict else '>='} {minimum:g} (a finite number)"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be {expected}, got {value!r} of type {type(value).__name__}")
    number = float(value)
    ok = np.isfinite(number) and (
        minimum is None or (number > minimum if strict else number >= minimum)
    )
    if not ok:
        raise ValueError(f"{name} must be {expected}, got {value!r}")
    return number


def check_seed(value, name: str = "random_state", *, instances: tuple[type, ...] = ()):
    """A random seed: None, an integer in [0, 2**32 - 1], or an instance of ``instances``.

    Returned unchanged. TypeError for another type (a string, a float), ValueError for an
    integer out of range; both name the parameter and what it accepts.
    """
    if value is None or (instances and isinstance(value, instances)):
        return value
    accepted = "None or an integer in [0, 2**32 - 1]" + "".join(
        f" or a numpy.random.{cls.__name__}"
        if cls.__module__.startswith("numpy.random")
        else f" or a {cls.__module__}.{cls.__name__}"
        for cls in instances
    )
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(
            f"{name} must be {accepted}, got {value!r} of type {type(value).__name__}: "
            f"pass an integer seed such as {name}=0, or None"
        )
    if not 0 <= value < SEED_LIMIT:
        raise ValueError(
            f"{name} must be {accepted}, got {value!r}: numpy seeds are in that range; "
            f"use a seed in it, e.g. {name}=0"
        )
    return value


def check_choice(value, name: str, allowed) -> str:
    """One of ``allowed``, or ValueError listing them."""
    if value not in allowed:
        raise ValueError(f"{name} must be one of {tuple(allowed)}, got {value!r}")
    return value


def check_numeric_columns(dtypes, name: str = "X") -> None:
    """ValueError listing the columns of a table (``dtypes``: column -> dtype, as pandas'
    and dask's ``DataFrame.dtypes``) that are not real numbers or booleans."""
    bad = [str(c) for c, dt in dtypes.items() if not _is_numeric_dtype(dt)]
    if bad:
        raise ValueError(
            f"{name} has non-numeric columns {bad}: a Gaussian mixture needs numeric "
            "features; drop or encode them first"
        )


def check_matrix_shape(shape: tuple, name: str = "X") -> None:
    """ValueError unless ``shape`` is 2-D with at least one row and one column."""
    if len(shape) != 2:
        hint = (
            " Reshape your data: X.reshape(-1, 1) for a single feature, or X.reshape(1, -1) "
            "for a single sample."
            if len(shape) == 1
            else ""
        )
        raise ValueError(
            f"{name} must be 2-D of shape (n_samples, n_features), got {len(shape)}-D.{hint}"
        )
    if shape[0] == 0:
        raise ValueError(f"{name} is empty: got shape {shape}; at least one sample is needed")
    if shape[1] == 0:
        raise ValueError(
            f"{name} has 0 feature(s) (shape={shape}) while a minimum of 1 is required."
        )


def _is_numeric_dtype(dtype) -> bool:
    from pandas.api.types import is_bool_dtype, is_complex_dtype, is_numeric_dtype

    return (is_numeric_dtype(dtype) or is_bool_dtype(dtype)) and not is_complex_dtype(dtype)
