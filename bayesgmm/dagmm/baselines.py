"""The baselines DAGMM is compared with, as anomaly scorers: fit on training rows, return
anomaly scores of test rows (higher is more anomalous).

- :func:`two_step_scores`: the two-step recipe DAGMM improves on (Zong et al. 2018): the
  same compression network trained as a plain autoencoder (``lambda_energy = lambda_cov =
  0``), then a Gaussian mixture (the EM engine) fitted to the code;
- :func:`pca_gmm_scores`: standardise, PCA to ``n_dims`` dimensions, then the mixture;
- :func:`gmm_scores`: the mixture on the standardised raw features;
- :func:`dagmm_refit_scores`: DAGMM's ``z`` with the mixture refitted by EM.

Mixture scores are negative log-densities (energies), like DAGMM's.
"""

from __future__ import annotations

import numpy as np
from sklearn.decomposition import PCA
from sklearn.preprocessing import StandardScaler

from bayesgmm.em.estimator import GaussianMixture

__all__ = [
    "dagmm_refit_scores",
    "dagmm_scores",
    "gmm_scores",
    "pca_gmm_scores",
    "two_step_scores",
]


def _mixture_energy(train: np.ndarray, test: np.ndarray, n_components: int, seed: int):
    gm = GaussianMixture(n_components, covariance_type="full", n_init=3, random_state=seed)
    return -gm.fit(train).score_samples(test)


def dagmm_scores(X_train, X_test, *, seed: int = 0, **params) -> np.ndarray:
    """DAGMM's energies of ``X_test`` after training on ``X_train``."""
    from bayesgmm.dagmm.estimator import DAGMM

    return DAGMM(random_state=seed, **params).fit(X_train).energy(X_test)


def dagmm_refit_scores(model, X_train, X_test, *, seed: int = 0) -> np.ndarray:
    """A fitted DAGMM's representation with its mixture refitted by EM (maximum
    likelihood on ``model.transform(X_train)``, the point estimate that the Bayesian step
    of :mod:`bayesgmm.dagmm.bayes` centres on) instead of the membership mixture."""
    z_train, z_test = model.transform(X_train), model.transform(X_test)
    return _mixture_energy(z_train, z_test, model.n_components, seed)


def two_step_scores(X_train, X_test, *, seed: int = 0, **params) -> np.ndarray:
    """Autoencoder (DAGMM's compression network alone), then a mixture on its code."""
    from bayesgmm.dagmm.estimator import DAGMM

    params = {**params, "lambda_energy": 0.0, "lambda_cov": 0.0}
    ae = DAGMM(random_state=seed, **params).fit(X_train)
    d = ae.latent_dim
    code_train, code_test = ae.transform(X_train)[:, :d], ae.transform(X_test)[:, :d]
    return _mixture_energy(code_train, code_test, ae.n_components, seed)


def pca_gmm_scores(X_train, X_test, *, n_dims: int, n_components: int, seed: int = 0):
    """Standardise, project on the first ``n_dims`` principal axes, fit the mixture."""
    scaler = StandardScaler().fit(X_train)
    pca = PCA(n_dims, random_state=seed).fit(scaler.transform(X_train))
    train = pca.transform(scaler.transform(X_train))
    test = pca.transform(scaler.transform(X_test))
    return _mixture_energy(train, test, n_components, seed)


def gmm_scores(X_train, X_test, *, n_components: int, seed: int = 0) -> np.ndarray:
    """The mixture on the standardised raw features."""
    scaler = StandardScaler().fit(X_train)
    return _mixture_energy(scaler.transform(X_train), scaler.transform(X_test), n_components, seed)
