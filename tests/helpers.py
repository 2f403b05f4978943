"""Reference helpers shared by the tests: written plainly, independent of the package.

Fixtures live in ``conftest.py``; plain functions that tests call with arguments live here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

#: ``../shared/data`` beside the checkout (CI clones the repository next to it).
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def dense_covariances(cov, covariance_type: str, n_components: int, n_features: int):
    """Every component's full (K, D, D) covariance from scikit-learn's per-type layout:
    (K, D, D) "full", (D, D) "tied", (K, D) "diag" (variances), (K,) "spherical"."""
    cov = np.asarray(cov)
    k, d = n_components, n_features
    if covariance_type == "full":
        return cov
    if covariance_type == "tied":
        return np.broadcast_to(cov, (k, d, d))
    if covariance_type == "diag":
        return np.stack([np.diag(c) for c in cov])
    return np.stack([c * np.eye(d) for c in cov])


def scipy_log_prob(X, params, covariance_type: str):
    """``(log p(x) (n,), responsibilities (n, K))`` of a mixture (weights, means,
    covariances in scikit-learn's layout) from scipy's densities, term by term."""
    from scipy import stats
    from scipy.special import logsumexp

    covs = dense_covariances(params.covariances, covariance_type, *params.means.shape)
    comp = np.column_stack(
        [
            np.log(w) + stats.multivariate_normal(m, c).logpdf(X)
            for w, m, c in zip(params.weights, params.means, covs, strict=True)
        ]
    )
    norm = logsumexp(comp, axis=1)
    return norm, np.exp(comp - norm[:, None])


def low_rank_ratings(
    seed: int = 0,
    *,
    n_users: int,
    n_items: int,
    rank: int = 2,
    density: float = 0.5,
    offset: float = 3.0,
    user_sd: float = 0.4,
    item_sd: float = 0.4,
    noise: float = 0.3,
    cover_all: bool = False,
    whole_stars: bool = False,
) -> tuple[pd.DataFrame, np.ndarray]:
    """Ratings of a known biased rank-``rank`` matrix plus Normal(0, ``noise``) noise.

    ``mean = offset + user_sd * a_u + item_sd * b_i + U V^T``; each (user, item) is rated
    with probability ``density``; ``cover_all`` rates one extra random item per user and
    one extra random user per item, so every user and item is present; ``whole_stars``
    rounds to whole stars and clips to 1..5. Returns the ratings (columns user, item,
    rating) and the true mean matrix (n_users, n_items).
    """
    rng = np.random.default_rng(seed)
    u = rng.normal(size=(n_users, rank))
    v = rng.normal(size=(n_items, rank))
    mean = (
        offset
        + user_sd * rng.normal(size=(n_users, 1))
        + item_sd * rng.normal(size=n_items)
        + u @ v.T
    )
    mask = rng.random((n_users, n_items)) < density
    if cover_all:
        mask[np.arange(n_users), rng.integers(0, n_items, n_users)] = True
        mask[rng.integers(0, n_users, n_items), np.arange(n_items)] = True
    users, items = np.nonzero(mask)
    ratings = mean[users, items] + noise * rng.normal(size=users.size)
    if whole_stars:
        ratings = np.clip(np.round(ratings), 1, 5)
    return pd.DataFrame({"user": users, "item": items, "rating": ratings}), mean
