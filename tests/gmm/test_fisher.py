"""Posterior Fisher vectors of a BayesGMM: draws, alignment and summaries."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy.linalg import cho_factor, cho_solve
from sklearn.mixture import GaussianMixture as SklearnGaussianMixture

from bayesgmm import BayesGMM, fisher_vectors, posterior_fisher_vectors
from bayesgmm.datasets import make_mixture
from bayesgmm.verdict import SAMPLE_DIMS


def _point(weights, means, chol):
    """A scikit-learn mixture built by hand from one posterior draw (independent of the
    package's draw conversion): the diag covariance from the Cholesky factor of the
    covariance, its precision checked against a Cholesky solve."""
    cov = np.einsum("kde,kfe->kdf", chol, chol)
    gm = SklearnGaussianMixture(len(weights), covariance_type="diag")
    gm.weights_, gm.means_ = weights, means
    gm.covariances_ = np.diagonal(cov, axis1=1, axis2=2).copy()
    gm.precisions_cholesky_ = 1.0 / np.sqrt(gm.covariances_)
    assert_allclose(
        cho_solve(cho_factor(cov[0]), np.eye(len(cov[0]))),
        np.diag(gm.precisions_cholesky_[0] ** 2),
        rtol=1e-10,
    )
    return gm


@pytest.fixture(scope="module")
def fitted():
    truth = make_mixture(300, 2, 2, separation=4.0, seed=3)
    model = BayesGMM(
        2, covariance_type="diag", draws=100, tune=200, random_state=0, progressbar=False
    ).fit(truth.X)
    rng = np.random.default_rng(1)
    sets = [truth.X[rng.choice(300, size=n)] + rng.normal(scale=0.1, size=(n, 2))
            for n in (5, 20, 60)]  # fmt: skip
    return model, sets


def test_mean_and_sd_over_thinned_draws(fitted):
    model, sets = fitted
    fv = posterior_fisher_vectors(model, sets, n_draws=50, return_draws=True)
    post = model.idata_["posterior"].to_dataset()
    stacked = {
        name: post[name].stack(sample=SAMPLE_DIMS).transpose("sample", ...).values
        for name in ("weights", "means", "chol_cov")
    }
    keep = np.unique(np.linspace(0, 399, 50).astype(int))
    by_hand = np.stack(
        [
            fisher_vectors(sets, _point(*(stacked[n][s] for n in ("weights", "means", "chol_cov"))))
            for s in keep
        ]
    )
    assert_allclose(fv["draws"].values, by_hand, rtol=1e-9, atol=1e-12)
    assert_allclose(fv["mean"].values, by_hand.mean(axis=0), rtol=1e-9, atol=1e-12)
    assert_allclose(fv["sd"].values, by_hand.std(axis=0, ddof=1), rtol=1e-8, atol=1e-12)
    assert_allclose(fv["em"].values, fisher_vectors(sets, model.em_), rtol=1e-12)
    assert fv.attrs["n_draws"] == 50
    assert list(fv["block"].values[:2]) == ["weights", "weights"]


def test_components_are_aligned_with_em(fitted):
    """The EM vector lies inside the posterior spread, coordinate by coordinate: with
    misaligned components the means block would be off by many sds."""
    model, sets = fitted
    fv = posterior_fisher_vectors(model, sets)
    z = (fv["em"] - fv["mean"]) / fv["sd"]
    assert float(abs(z).max()) < 4
    # the sd grows with what the posterior does not know and shrinks nowhere to zero
    assert float(fv["sd"].min()) > 0


def test_bad_input(fitted):
    model, sets = fitted
    with pytest.raises(ValueError, match=r"set 0 has 3 features"):
        posterior_fisher_vectors(model, [np.ones((2, 3))])
    with pytest.raises(ValueError, match=r"n_draws must be an integer >= 1"):
        posterior_fisher_vectors(model, sets, n_draws=0)
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        posterior_fisher_vectors(BayesGMM(2), sets)
