"""DAGMM's mixture in NumPy, by the EM engine: parameters from memberships, energies, loss.

The estimation network's memberships ``gamma`` play the E-step's responsibilities; the
mixture parameters are the EM engine's M-step on them (:func:`bayesgmm.em.driver.m_step`,
maximum likelihood, full covariances), and the energy is the negative mixture log-density
(:func:`bayesgmm.em.gaussian.log_likelihood_draws`). Used after training (the fitted
mixture, predictions) and for the validation loss; the PyTensor graph that trains the
networks (:mod:`bayesgmm.dagmm.graph`) is tested equal to it.
"""

from __future__ import annotations

import numpy as np

from bayesgmm.dagmm.network import Architecture, forward
from bayesgmm.em.driver import m_step
from bayesgmm.em.gaussian import log_likelihood_draws
from bayesgmm.em.sweep import Design, MixtureParams, moments_from_resp

__all__ = ["loss_terms", "mixture_from_memberships", "sample_energy"]


def mixture_from_memberships(z: np.ndarray, gamma: np.ndarray, reg_covar: float = 0.0):
    """The M-step on memberships: :class:`~bayesgmm.em.sweep.MixtureParams` with weights
    (K,), means (K, d), full covariances (K, d, d) (+ ``reg_covar`` on the diagonal) and
    their precision Cholesky factors. Raises ``CollapsedComponentError`` (a ValueError)
    if a covariance is singular."""
    moments = moments_from_resp(Design(z, "full"), gamma)
    return m_step(moments, "full", reg_covar, None)


def sample_energy(z: np.ndarray, params: MixtureParams) -> np.ndarray:
    """Energies ``-log p(z_i)`` (n,) under the mixture ``params``."""
    chol = np.linalg.cholesky(params.covariances)
    return -log_likelihood_draws(z, params.weights[None], params.means[None], chol[None])[0]


def loss_terms(
    arch: Architecture,
    weights: list,
    X: np.ndarray,
    *,
    lambda_energy: float,
    lambda_cov: float,
    reg_covar: float = 0.0,
) -> dict[str, float]:
    """The objective on ``X`` as one batch, without dropout: ``total``,
    ``reconstruction``, ``energy``, ``covariance_penalty`` (see
    :func:`bayesgmm.dagmm.graph.loss_terms`)."""
    out = forward(arch, weights, X)
    params = mixture_from_memberships(out.z, out.gamma, reg_covar)
    recon = float(np.mean(np.sum((X - out.reconstruction) ** 2, axis=1)))
    energy = float(np.mean(sample_energy(out.z, params)))
    penalty = float(np.sum(1.0 / np.diagonal(params.covariances, axis1=1, axis2=2)))
    total = recon + lambda_energy * energy + lambda_cov * penalty
    return {
        "total": total,
        "reconstruction": recon,
        "energy": energy,
        "covariance_penalty": penalty,
    }
