"""Synthetic ratings with a planted MPMA-like structure and MovieLens-like activity.

:func:`make_ratings` builds a ratings matrix with the shape of a MovieLens release (by
default ML-10M: 10M ratings of 69,878 users on 10,677 items, half stars from 0.5 to 5)
from a known model, so that a fit's RMSE can be read against the noise floor. It is the
data of the scale benchmark (``benchmarks/mpma_scale.py``); every step is vectorised or a
numba kernel, so the 10M-rating matrix takes seconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np
import pandas as pd

from bayesgmm._validation import check_positive_int, check_real
from bayesgmm.mpma.als import Factors, factor_means
from bayesgmm.mpma.data import check_rating_scale

__all__ = ["ML10M_SHAPE", "SyntheticRatings", "make_ratings"]

#: (ratings, users, items) of MovieLens-10M (GroupLens' ``ratings.dat``).
ML10M_SHAPE = (10_000_054, 69_878, 10_677)

# Spreads of the planted model (rating units) and of the activity (log scale); see Notes
# of make_ratings.
_OFFSET = 3.5
_USER_BIAS_SD = 0.35
_ITEM_BIAS_SD = 0.45
_GLOBAL_SD = 0.6
_LOCAL_SD = 0.4
_GROUP_SPREAD = 0.8
_USER_ACTIVITY_SIGMA = 1.3
_ITEM_POPULARITY_SIGMA = 1.8
_MAX_USER_FRACTION = 0.7


@dataclass(frozen=True, eq=False)
class SyntheticRatings:
    """Ratings drawn from a known model, with the model's truth.

    Attributes
    ----------
    ratings : pandas.DataFrame
        Columns ``user``, ``item`` (int64, ``0..n-1``) and ``rating`` (float64, on the
        grid ``low, low + step, ..., high``), sorted by user; ``attrs["rating_scale"]`` is
        ``(low, high)`` as the MovieLens loaders record it.
    mean : ndarray of shape (N,), float64
        Noiseless mean of every rating (before the noise, the rounding and the clipping).
    user_groups : ndarray of shape (n_users,), int64
    item_groups : ndarray of shape (n_items,), int64
        The planted groups.
    noise_sd : float
        Sd of the Gaussian noise added to ``mean`` before rounding.
    """

    ratings: pd.DataFrame
    mean: np.ndarray
    user_groups: np.ndarray
    item_groups: np.ndarray
    noise_sd: float


def _allocate(total: int, weights: np.ndarray, minimum: int, cap: int) -> np.ndarray:
    """Integer counts summing to ``total``, each in ``[minimum, cap]``, the share above
    ``minimum`` proportional to ``weights`` (largest remainders; capped shares are
    redistributed over the others)."""
    n = weights.shape[0]
    counts = np.full(n, minimum, dtype=np.int64)
    free = np.ones(n, dtype=bool)
    while True:
        left = total - int(counts.sum())
        if left == 0:
            return counts
        share = np.where(free, weights, 0.0)
        share = share / share.sum() * left
        whole = np.floor(share).astype(np.int64)
        rest = left - int(whole.sum())
        if rest:
            whole[np.argsort(-(share - whole), kind="stable")[:rest]] += 1
        counts += whole
        over = counts > cap
        if not over.any():
            return counts
        counts[over] = cap
        free &= ~over


@numba.njit(cache=True)
def _sample_items(counts, cdf, rng, users, items):  # pragma: no cover - numba kernel
    """For user ``u``, ``counts[u]`` distinct items drawn one after the other with
    probability proportional to the increments of ``cdf`` among those not yet drawn
    (rejection of repeats; successive sampling without replacement)."""
    n_items = cdf.shape[0]
    taken = np.zeros(n_items, dtype=np.bool_)
    total = cdf[-1]
    pos = 0
    for u in range(counts.shape[0]):
        start = pos
        for _ in range(counts[u]):
            j = n_items
            while j >= n_items or taken[j]:
                j = np.searchsorted(cdf, rng.random() * total, side="right")
            taken[j] = True
            users[pos] = u
            items[pos] = j
            pos += 1
        for p in range(start, pos):
            taken[items[p]] = False


def _clustered(
    rng: np.random.Generator, groups: np.ndarray, n_groups: int, rank: int, sd: float
) -> np.ndarray:
    """Factors (n, rank) of entities clustered by ``groups``: a group centre plus noise,
    scaled so that every coordinate has variance ``sd**2``."""
    centres = rng.standard_normal((n_groups, rank))
    spread = _GROUP_SPREAD
    noise = rng.standard_normal((groups.shape[0], rank))
    return sd * (spread * centres[groups] + math.sqrt(1.0 - spread**2) * noise)


def make_ratings(
    n_ratings: int = ML10M_SHAPE[0],
    n_users: int = ML10M_SHAPE[1],
    n_items: int = ML10M_SHAPE[2],
    *,
    rank: int = 10,
    n_user_groups: int = 4,
    n_item_groups: int = 4,
    noise_sd: float = 0.75,
    rating_scale: tuple[float, float] = (0.5, 5.0),
    step: float = 0.5,
    min_user_ratings: int = 20,
    seed: int | None = None,
) -> SyntheticRatings:
    """Draw a MovieLens-shaped ratings matrix from a planted low-rank plus local model.

    Parameters
    ----------
    n_ratings, n_users, n_items : int, default ML-10M's (10,000,054, 69,878, 10,677)
        Shape. Every user gets at least ``min_user_ratings`` ratings and at most 70% of
        the items (MovieLens-10M's heaviest user rated 69% of them); items nobody drew
        stay unrated, so fewer than ``n_items`` may appear (as in MovieLens, where every
        listed item has a rating, the count is what appears).
    rank : int, default 10
        Rank of the global and of every local interaction.
    n_user_groups, n_item_groups : int, default 4
        Planted groups of users and of items.
    noise_sd : float, default 0.75
        Sd of the Gaussian noise on the rating scale (before rounding).
    rating_scale : (low, high), default (0.5, 5.0)
    step : float, default 0.5
        Grid of the ratings (0.5: half stars, 1: whole stars); ``high - low`` must be a
        multiple of it.
    min_user_ratings : int, default 20
        Fewest ratings per user (MovieLens keeps users with at least 20).
    seed : int or None
        Seed of ``numpy.random.default_rng``; the same seed gives the same ratings.

    Returns
    -------
    SyntheticRatings

    Raises
    ------
    ValueError
        For counts below 1, a rating scale or step that is not a finite increasing grid,
        or more (fewer) ratings than the users can hold at 70% of the items (at
        ``min_user_ratings`` each).

    Notes
    -----
    Activity: user ``u`` rates ``min_user_ratings + share`` items, the shares
    proportional to LogNormal(0, 1.3) weights (median user ~1/3 of the mean; long tail);
    items are drawn for each user without replacement with probabilities proportional to
    LogNormal(0, 1.8) popularities. On ML-10M's shape (seed 0) this gives 73 ratings for
    the median user (ML-10M: 69) and 7,473 for the heaviest (7,359), 246 for the median
    item (135) and 46,262 for the most popular (34,864); a few of the least popular items
    get none.

    Model: users and items fall uniformly into ``n_user_groups`` / ``n_item_groups``
    groups, and the global factors are clustered by group (a group centre with 80% of the
    variance, so k-means on fitted global factors can find the groups, as MPMA's local
    components need). The noiseless mean is::

        3.5 + a_u + b_i + U_u . V_i + P_u . Q_{g(u), i} + S_{h(i), u} . T_i

    with biases of sd 0.35 (users) and 0.45 (items), a global interaction of sd 0.6 and
    two local interactions of sd 0.4 each: item factors specific to the user's group
    ``g(u)`` and user factors specific to the item's group ``h(i)`` (the user-local and
    item-local components of MPMA, here added rather than mixed). The rating is
    ``mean + Normal(0, noise_sd**2)`` rounded to the ``step`` grid and clipped to
    ``rating_scale``. So an RMSE near ``noise_sd`` (plus the rounding, and less the
    clipping) means the structure was learned; a global factorisation alone cannot fit
    the local terms.
    """
    n_ratings = check_positive_int(n_ratings, "n_ratings")
    n_users = check_positive_int(n_users, "n_users")
    n_items = check_positive_int(n_items, "n_items")
    rank = check_positive_int(rank, "rank")
    n_user_groups = check_positive_int(n_user_groups, "n_user_groups")
    n_item_groups = check_positive_int(n_item_groups, "n_item_groups")
    min_user_ratings = check_positive_int(min_user_ratings, "min_user_ratings", minimum=0)
    noise_sd = float(check_real(noise_sd, "noise_sd", minimum=0.0))
    low, high = check_rating_scale(rating_scale)
    step = float(check_real(step, "step", minimum=0.0, strict=True))
    n_steps = (high - low) / step
    if abs(n_steps - round(n_steps)) > 1e-9 * max(1.0, n_steps):
        raise ValueError(
            f"rating_scale {rating_scale!r} is not a whole number of steps of {step}: "
            "choose a step that divides high - low"
        )
    cap = max(1, int(_MAX_USER_FRACTION * n_items))
    if min_user_ratings > cap:
        raise ValueError(
            f"min_user_ratings={min_user_ratings} exceeds 70% of the {n_items} items: "
            f"use min_user_ratings <= {cap}"
        )
    if not min_user_ratings * n_users <= n_ratings <= cap * n_users:
        raise ValueError(
            f"n_ratings={n_ratings} does not fit {n_users} users with between "
            f"min_user_ratings={min_user_ratings} and {cap} (70% of {n_items} items) ratings "
            f"each: use n_ratings in [{min_user_ratings * n_users}, {cap * n_users}], or "
            "change n_users, n_items or min_user_ratings"
        )

    rng = np.random.default_rng(seed)
    activity = rng.lognormal(0.0, _USER_ACTIVITY_SIGMA, size=n_users)
    counts = _allocate(n_ratings, activity, min_user_ratings, cap)
    popularity = rng.lognormal(0.0, _ITEM_POPULARITY_SIGMA, size=n_items)
    users = np.empty(n_ratings, dtype=np.int64)
    items = np.empty(n_ratings, dtype=np.int64)
    _sample_items(counts, np.cumsum(popularity), rng, users, items)

    user_groups = rng.integers(n_user_groups, size=n_users)
    item_groups = rng.integers(n_item_groups, size=n_items)
    scale = math.sqrt(_GLOBAL_SD / math.sqrt(rank))  # U . V has sd _GLOBAL_SD
    local = math.sqrt(_LOCAL_SD / math.sqrt(rank))
    mean = factor_means(
        Factors(
            _OFFSET,
            _USER_BIAS_SD * rng.standard_normal(n_users),
            _ITEM_BIAS_SD * rng.standard_normal(n_items),
            _clustered(rng, user_groups, n_user_groups, rank, scale),
            _clustered(rng, item_groups, n_item_groups, rank, scale),
        ),
        users,
        items,
    )
    zeros = np.zeros(n_users), np.zeros(n_user_groups * n_items)
    mean += factor_means(
        Factors(
            0.0, *zeros,
            local * rng.standard_normal((n_users, rank)),
            local * rng.standard_normal((n_user_groups * n_items, rank)),
        ),
        users, user_groups[users] * n_items + items,
    )  # fmt: skip
    zeros = np.zeros(n_item_groups * n_users), np.zeros(n_items)
    mean += factor_means(
        Factors(
            0.0, *zeros,
            local * rng.standard_normal((n_item_groups * n_users, rank)),
            local * rng.standard_normal((n_items, rank)),
        ),
        item_groups[items] * n_users + users, items,
    )  # fmt: skip
    rating = rng.standard_normal(n_ratings)
    rating *= noise_sd
    rating += mean
    rating -= low
    rating /= step
    np.round(rating, out=rating)
    np.clip(rating, 0.0, round(n_steps), out=rating)
    rating *= step
    rating += low
    frame = pd.DataFrame({"user": users, "item": items, "rating": rating}, copy=False)
    frame.attrs["rating_scale"] = (low, high)
    return SyntheticRatings(frame, mean, user_groups, item_groups, noise_sd)
