"""Anomaly scores and flags against hand computations."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from bayesgmm import GaussianMixture
from bayesgmm.gmm.anomaly import anomaly_scores, flag_anomalies, score_threshold


class _DrawsModel:
    """A stand-in posterior: log p(x | theta_s) = log N(x; mu_s, 1) for given mu_s."""

    def __init__(self, mus):
        self.mus = np.asarray(mus)

    def log_density_draws(self, X):
        x = np.asarray(X)[:, 0]
        return stats.norm(self.mus[:, None], 1.0).logpdf(x[None, :])

    def score_samples(self, X):
        draws = self.log_density_draws(X)
        return np.log(np.mean(np.exp(draws), axis=0))


def test_em_scores_are_the_log_density():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(500, 1))
    gm = GaussianMixture(1, reg_covar=0.0).fit(X)
    scores = anomaly_scores(gm, X[:5])
    expected = stats.norm(X.mean(), X.std()).logpdf(X[:5, 0])
    np.testing.assert_allclose(scores["log_density"], expected, rtol=1e-10)
    assert (scores["low"] == scores["high"]).all()
    threshold = score_threshold(gm, X, 0.01)
    assert (gm.score_samples(X) < threshold).mean() == pytest.approx(0.01, abs=0.002)


def test_posterior_intervals_and_flags():
    model = _DrawsModel(np.linspace(-0.5, 0.5, 101))
    X = np.array([[0.0], [3.0], [10.0]])
    scores = anomaly_scores(model, X, prob=0.9)
    draws = model.log_density_draws(X)
    np.testing.assert_allclose(scores["low"], np.quantile(draws, 0.05, axis=0))
    np.testing.assert_allclose(scores["high"], np.quantile(draws, 0.95, axis=0))
    threshold = float(stats.norm(0, 1).logpdf(3.0))  # x = 3 straddles it across draws
    flags = flag_anomalies(scores, threshold)
    assert flags.tolist() == ["normal", "uncertain", "anomaly"]


def test_bad_arguments():
    with pytest.raises(ValueError, match="prob must be in"):
        anomaly_scores(_DrawsModel([0.0]), np.zeros((2, 1)), prob=2)
    with pytest.raises(ValueError, match="quantile must be in"):
        score_threshold(_DrawsModel([0.0]), np.zeros((2, 1)), quantile=0)
    with pytest.raises(ValueError, match="scores need columns"):
        flag_anomalies(pd.DataFrame({"log_density": [0.0]}), 0.0)
