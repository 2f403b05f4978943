"""Input checks that name the problem and the fix, before NumPy can fail deep inside."""

from __future__ import annotations

import numbers

import numpy as np

__all__ = [
    "NonNumericInputError",
    "check_choice",
    "check_data_matrix",
    "check_no_constant_features",
    "check_positive_int",
    "check_sample_weight",
]


def check_data_matrix(X, *, name: str = "X", min_samples: int = 1) -> np.ndarray:
    """Return ``X`` as a finite float64 (n_samples, n_features) array, or raise ValueError.

    Checks, in order: non-numeric columns (named for a DataFrame), dimensionality, empty
    input, too few rows, NaN/inf (the first offending rows are listed).
    """
    if hasattr(X, "toarray") or type(X).__module__.startswith("scipy.sparse"):
        raise ValueError(
            f"sparse input is not supported: {name} must be dense; convert with X.toarray()"
        )
    columns = getattr(X, "columns", None)
    dtypes = getattr(X, "dtypes", None)
    if columns is not None and dtypes is not None and hasattr(dtypes, "items"):
        bad = [str(c) for c, dt in dtypes.items() if not _is_numeric_dtype(dt)]
        if bad:
            raise ValueError(
                f"{name} has non-numeric columns {bad}: a Gaussian mixture needs numeric "
                "features; drop or encode them first"
            )
    raw = np.asarray(X) if not hasattr(X, "dtypes") else None
    if raw is not None and np.iscomplexobj(raw):
        raise ValueError(f"Complex data not supported: {name} must be real-valued")
    try:
        arr = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise NonNumericInputError(
            f"{name} must be numeric (could not convert to float: {err}); drop or encode "
            "non-numeric columns first"
        ) from None
    if arr.ndim != 2:
        hint = (
            " Reshape your data: X.reshape(-1, 1) for a single feature, or X.reshape(1, -1) "
            "for a single sample."
            if arr.ndim == 1
            else ""
        )
        raise ValueError(
            f"{name} must be 2-D of shape (n_samples, n_features), got {arr.ndim}-D.{hint}"
        )
    if arr.shape[0] == 0:
        raise ValueError(f"{name} is empty: got shape {arr.shape}; at least one sample is needed")
    if arr.shape[1] == 0:
        raise ValueError(
            f"{name} has 0 feature(s) (shape={arr.shape}) while a minimum of 1 is required."
        )
    if arr.shape[0] < min_samples:
        raise ValueError(
            f"{name} has {arr.shape[0]} sample{'s' if arr.shape[0] != 1 else ''} "
            f"(n_samples = {arr.shape[0]}); at least {min_samples} are needed"
        )
    finite = np.isfinite(arr)
    if not finite.all():
        rows = np.flatnonzero(~finite.all(axis=1))
        kind = "NaN" if np.isnan(arr).any() else "inf"
        raise ValueError(
            f"{name} contains {kind} (non-finite values: NaN or inf) in {rows.size} row(s), "
            f"first at {rows[:5].tolist()}: drop or impute them first"
        )
    return arr


class NonNumericInputError(ValueError, TypeError):
    """Input that cannot be converted to float (a ValueError, and a TypeError for sklearn)."""


def check_no_constant_features(X: np.ndarray, sample_weight: np.ndarray | None, names=None):
    """Raise ValueError if a feature is constant (over the points with positive weight)."""
    rows = X if sample_weight is None else X[np.asarray(sample_weight) > 0]
    constant = np.flatnonzero(np.ptp(rows, axis=0) == 0)
    if constant.size and len(rows) > 1:
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


def check_choice(value, name: str, allowed) -> str:
    """One of ``allowed``, or ValueError listing them."""
    if value not in allowed:
        raise ValueError(f"{name} must be one of {tuple(allowed)}, got {value!r}")
    return value


def _is_numeric_dtype(dtype) -> bool:
    from pandas.api.types import is_bool_dtype, is_complex_dtype, is_numeric_dtype

    return (is_numeric_dtype(dtype) or is_bool_dtype(dtype)) and not is_complex_dtype(dtype)
