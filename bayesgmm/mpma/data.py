"""Ratings input: validation with actionable errors, and id encoding.

Policy for bad input (every case raises ``ValueError`` naming the problem and the fix):

* empty input, or missing ``user`` / ``item`` / ``rating`` columns;
* NaN or infinite ratings, or missing user / item ids;
* ratings outside the declared ``rating_scale`` (the scale is a modelling choice: clipping
  silently would hide a unit mismatch such as 0-10 data fitted on a 1-5 scale);
* duplicate (user, item) pairs: one user rates one item once in this model, so repeated
  pairs are refused rather than silently averaged or overwritten; aggregate them first,
  e.g. ``df.groupby(["user", "item"], as_index=False)["rating"].mean()``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from bayesgmm.movielens import rating_scale_of

__all__ = [
    "REQUIRED_COLUMNS",
    "RatingsData",
    "check_rating_scale",
    "encode",
    "resolve_rating_scale",
    "validate_ratings",
]

REQUIRED_COLUMNS = ("user", "item", "rating")


@dataclass
class RatingsData:
    """Validated ratings with users and items encoded as ``0..n-1``.

    Attributes
    ----------
    users, items : ndarray of shape (N,), int64
        Positions in ``user_ids`` / ``item_ids``.
    ratings : ndarray of shape (N,), float64
    user_ids : ndarray of shape (n_users,)
        Original user ids, sorted.
    item_ids : ndarray of shape (n_items,)
        Original item ids, sorted.
    """

    users: np.ndarray
    items: np.ndarray
    ratings: np.ndarray
    user_ids: np.ndarray
    item_ids: np.ndarray


def check_rating_scale(rating_scale: tuple[float, float]) -> tuple[float, float]:
    """Return ``(low, high)`` as floats, or raise ValueError unless finite and low < high."""
    try:
        low, high = (float(v) for v in rating_scale)
    except (TypeError, ValueError):
        raise ValueError(
            f"rating_scale must be a pair (low, high) of numbers, got {rating_scale!r}"
        ) from None
    if not (np.isfinite(low) and np.isfinite(high) and low < high):
        raise ValueError(f"rating_scale must satisfy low < high (finite), got {rating_scale!r}")
    return low, high


def resolve_rating_scale(
    rating_scale: tuple[float, float] | None, data, items=None, ratings=None
) -> tuple[float, float]:
    """The rating scale an estimator uses: ``rating_scale`` if given, else read from the data.

    Read from the data means ``data.attrs["rating_scale"]`` when a loader recorded it
    (:func:`bayesgmm.movielens.load_movielens`, :func:`~bayesgmm.movielens.load_ratings`:
    the published scale, half stars included), else the smallest and largest rating given.
    The latter is only as wide as the ratings seen: pass ``rating_scale`` when the training
    data may lack the extreme values.

    Parameters
    ----------
    rating_scale : (low, high) or None
    data, items, ratings
        As :func:`validate_ratings` takes them.

    Returns
    -------
    (low, high) as floats, finite, low < high.
    """
    if rating_scale is not None:
        return check_rating_scale(rating_scale)
    if isinstance(data, pd.DataFrame) and items is None and ratings is None:
        if "rating" not in data.columns and not data.attrs.get("rating_scale"):
            _as_frame(data, items, ratings)  # raises, naming the missing columns
        values = data
    else:
        values = _as_frame(data, items, ratings)["rating"]
    try:
        return check_rating_scale(rating_scale_of(values))
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"cannot read the rating scale from the ratings ({err}); pass "
            "rating_scale=(low, high)"
        ) from None


def _as_frame(data, items, ratings) -> pd.DataFrame:
    if items is None and ratings is None:
        if not isinstance(data, pd.DataFrame):
            raise ValueError(
                "pass a DataFrame with columns 'user', 'item', 'rating', or three arrays: "
                "fit(users, items, ratings)"
            )
        missing = [c for c in REQUIRED_COLUMNS if c not in data.columns]
        if missing:
            raise ValueError(
                f"the ratings DataFrame lacks column(s) {missing} (has {list(data.columns)}); "
                "rename them to 'user', 'item', 'rating'"
            )
        return data.loc[:, list(REQUIRED_COLUMNS)]
    if items is None or ratings is None:
        raise ValueError("pass both items and ratings with users, or a single DataFrame")
    arrays = [np.asarray(a) for a in (data, items, ratings)]
    if any(a.ndim != 1 for a in arrays) or len({a.shape[0] for a in arrays}) != 1:
        raise ValueError(
            "users, items and ratings must be 1-D arrays of the same length, got shapes "
            f"{[a.shape for a in arrays]}"
        )
    return pd.DataFrame(dict(zip(REQUIRED_COLUMNS, arrays, strict=True)))


def validate_ratings(
    data, items=None, ratings=None, *, rating_scale: tuple[float, float]
) -> pd.DataFrame:
    """Check ratings and return them as a DataFrame (user, item, rating float64).

    Parameters
    ----------
    data : DataFrame with columns user, item, rating; or array-like of user ids (N,)
    items, ratings : array-like of shape (N,), optional
        Item ids and ratings when ``data`` holds the user ids.
    rating_scale : (low, high)
        Allowed range of the ratings (inclusive).

    Raises
    ------
    ValueError
        For empty input, missing ids, non-numeric, NaN/inf or out-of-scale ratings, and
        duplicate (user, item) pairs; see the module docstring for the policy.
    """
    low, high = check_rating_scale(rating_scale)
    frame = _as_frame(data, items, ratings)
    if len(frame) == 0:
        raise ValueError("no ratings: the input is empty; pass at least one (user, item, rating)")
    for column in ("user", "item"):
        missing = frame[column].isna().to_numpy()
        if missing.any():
            raise ValueError(
                f"{int(missing.sum())} rating(s) have a missing {column} id (first rows: "
                f"{np.flatnonzero(missing)[:5].tolist()}); drop them, e.g. df.dropna()"
            )
    try:
        values = frame["rating"].to_numpy(dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"ratings must be numeric ({err}); convert the column first") from None
    bad = ~np.isfinite(values)
    if bad.any():
        raise ValueError(
            f"{int(bad.sum())} rating(s) are NaN or infinite (first rows: "
            f"{np.flatnonzero(bad)[:5].tolist()}); drop them, e.g. df.dropna()"
        )
    outside = (values < low) | (values > high)
    if outside.any():
        examples = ", ".join(f"{v:g}" for v in np.unique(values[outside])[:5])
        raise ValueError(
            f"{int(outside.sum())} rating(s) lie outside rating_scale=({low:g}, {high:g}) "
            f"(e.g. {examples}); set rating_scale to the scale of your data, or drop or "
            "rescale those ratings"
        )
    duplicated = frame.duplicated(["user", "item"], keep=False).to_numpy()
    if duplicated.any():
        first = frame.loc[duplicated, ["user", "item"]].iloc[0].tolist()
        raise ValueError(
            f"{int(frame.duplicated(['user', 'item']).sum())} duplicate (user, item) pair(s), "
            f"e.g. {tuple(first)}: each user may rate each item once; aggregate them first, "
            "e.g. df.groupby(['user', 'item'], as_index=False)['rating'].mean()"
        )
    return frame.assign(rating=values)


def encode(frame: pd.DataFrame) -> RatingsData:
    """Encode a validated frame's user and item ids as ``0..n-1`` (sorted ids)."""
    users, user_ids = pd.factorize(frame["user"], sort=True)
    items, item_ids = pd.factorize(frame["item"], sort=True)
    return RatingsData(
        users=users.astype(np.int64),
        items=items.astype(np.int64),
        ratings=frame["rating"].to_numpy(dtype=np.float64),
        user_ids=np.asarray(user_ids),
        item_ids=np.asarray(item_ids),
    )
