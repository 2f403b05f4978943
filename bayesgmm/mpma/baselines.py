"""Baselines for rating prediction: the global mean, user/item biases, and PMF.

The bias baseline and PMF are MPMA's global component alone (``components=("global",)``),
with zero factors for the bias baseline: the same priors, the same ALS, so their
comparison with MPMA isolates what the local components add. PMF here is the MAP of
Salakhutdinov and Mnih (2007) with biases (``use_bias=False`` gives their original form);
Bayesian PMF (Salakhutdinov and Mnih 2008) is the Gibbs-sampled global component of
:class:`~bayesgmm.mpma.estimator.GibbsMPMA` alone.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from bayesgmm.mpma.data import resolve_rating_scale, validate_ratings
from bayesgmm.mpma.estimator import MPMA, GibbsMPMA, mae, rmse

__all__ = ["GlobalMean", "bias_baseline", "bpmf", "pmf"]


class GlobalMean(BaseEstimator):
    """Predict the mean training rating for every (user, item) pair.

    Parameters
    ----------
    rating_scale : (float, float) or None, default=None
        None reads it from the data given to ``fit``, as :class:`MPMA` does.

    Attributes
    ----------
    mean_ : float
    fit_time_ : float
    rating_scale_ : ndarray of shape (2,)
    """

    def __init__(self, rating_scale: tuple[float, float] | None = None):
        self.rating_scale = rating_scale

    def fit(self, data, items=None, ratings=None) -> GlobalMean:
        """Store the mean rating; same inputs as :meth:`MPMA.fit`."""
        scale = resolve_rating_scale(self.rating_scale, data, items, ratings)
        frame = validate_ratings(data, items, ratings, rating_scale=scale)
        self.mean_ = float(frame["rating"].mean())
        self.fit_time_ = 0.0
        self.rating_scale_ = np.array(scale)
        return self

    def predict(self, user, item) -> np.ndarray:
        """The mean rating, shape (N,)."""
        check_is_fitted(self)
        return np.full(np.atleast_1d(np.asarray(user)).shape[0], self.mean_)

    def _truth_and_prediction(self, data, items, ratings):
        check_is_fitted(self)
        frame = validate_ratings(data, items, ratings, rating_scale=self.rating_scale_)
        return frame["rating"].to_numpy(), self.predict(frame["user"], frame["item"])

    def rmse(self, data, items=None, ratings=None) -> float:
        """Root mean squared error on held-out ratings."""
        return rmse(*self._truth_and_prediction(data, items, ratings))

    def mae(self, data, items=None, ratings=None) -> float:
        """Mean absolute error on held-out ratings."""
        return mae(*self._truth_and_prediction(data, items, ratings))


def bias_baseline(**params) -> MPMA:
    """``offset + user bias + item bias`` by MAP: MPMA's global component without factors.

    Keyword arguments go to :class:`MPMA` (e.g. ``priors``, ``max_iter``).
    """
    return MPMA(**({"n_factors": 0, "components": ("global",)} | params))


def pmf(n_factors: int = 10, **params) -> MPMA:
    """Probabilistic matrix factorisation by MAP: MPMA's global component alone.

    Keyword arguments go to :class:`MPMA` (e.g. ``priors``, ``use_bias``, ``max_iter``).
    """
    return MPMA(n_factors, **({"components": ("global",)} | params))


def bpmf(n_factors: int = 10, **params) -> GibbsMPMA:
    """Bayesian PMF by Gibbs sampling: GibbsMPMA's global component alone.

    Keyword arguments go to :class:`GibbsMPMA` (e.g. ``priors``, ``n_draws``).
    """
    return GibbsMPMA(n_factors, **({"components": ("global",)} | params))
