"""DAGMM as a PyTensor graph: networks, membership-weighted mixture, energy and the loss.

Zong et al. (ICLR 2018), Sections 3.2-3.4, for a batch of N samples:

- mixture parameters from the memberships ``gamma`` (N, K), as in an EM M-step::

      phi_k = sum_i gamma_ik / N
      mu_k = sum_i gamma_ik z_i / sum_i gamma_ik
      Sigma_k = sum_i gamma_ik (z_i - mu_k)(z_i - mu_k)' / sum_i gamma_ik

- the sample energy, the negative log mixture density::

      E(z) = -log sum_k phi_k N(z | mu_k, Sigma_k)

  computed with the Cholesky factor ``L_k`` of ``Sigma_k``: the Mahalanobis term is
  ``|L_k^-1 (z - mu_k)|^2`` by a triangular solve, ``log det Sigma_k = 2 sum log diag L_k``,
  and the sum over components is a log-sum-exp; no inverse or determinant is formed;

- the objective::

      J = 1/N sum_i |x_i - x'_i|^2 + lambda1 / N sum_i E(z_i) + lambda2 sum_k sum_j 1 / Sigma_kjj

Regularisation. The paper adds nothing to the covariances: the penalty ``P(Sigma)`` (the
``lambda2`` term) is its guard against a collapsing diagonal. So ``reg_covar`` defaults to
0 here; a user may add ``reg_covar * I`` to every ``Sigma_k`` (as several public
implementations do, e.g. 1e-6), and it is then part of the objective, visible in the
estimator's parameters. A covariance that is not positive definite makes the Cholesky
factor NaN (``on_error="nan"``), which the training loop reports as an error naming
``reg_covar``, never as a silent NaN.
"""

from __future__ import annotations

import pytensor.tensor as pt

from bayesgmm.dagmm.network import NORM_FLOOR, Architecture, split_weights
from bayesgmm.em.gaussian import LOG_2PI

__all__ = [
    "compression",
    "energy",
    "loss_terms",
    "memberships",
    "mixture_parameters",
    "mlp",
    "reconstruction_features",
]

_ACTIVATIONS = {"tanh": pt.tanh, "relu": lambda a: pt.maximum(a, 0.0), "sigmoid": pt.sigmoid}


def mlp(h, layers, activation: str, *, last: str = "linear", dropout_masks=None):
    """A fully connected network: ``activation`` on every hidden layer; the last layer
    linear or softmax. ``dropout_masks[i]`` (inverted dropout: 0 or 1/(1-p)) multiplies
    the output of hidden layer ``i``."""
    act = _ACTIVATIONS[activation]
    for i, (W, b) in enumerate(layers):
        h = pt.dot(h, W) + b
        if i < len(layers) - 1:
            h = act(h)
            if dropout_masks is not None:
                h = h * dropout_masks[i]
    return pt.special.softmax(h, axis=1) if last == "softmax" else h


def _floored_norm(v):
    """``max(|v_i|, NORM_FLOOR)`` per row, floored *inside* the square root: the gradient
    of ``sqrt`` at 0 is infinite, and ``max(sqrt(0), floor)`` would multiply it by 0 (a
    NaN; a ReLU decoder whose units are all off for a row outputs ``x' = 0`` exactly)."""
    return pt.sqrt(pt.maximum(pt.sum(v**2, axis=1), NORM_FLOOR**2))


def reconstruction_features(x, x_hat):
    """(N, 2): relative Euclidean distance and cosine similarity of ``x`` and ``x_hat``."""
    norm_x = _floored_norm(x)
    norm_r = _floored_norm(x_hat)
    distance = _floored_norm(x - x_hat) / norm_x
    cosine = pt.sum(x * x_hat, axis=1) / (norm_x * norm_r)
    return pt.stack([distance, cosine], axis=1)


def compression(x, arch: Architecture, weights):
    """Code (N, latent_dim), reconstruction (N, D) and ``z`` (N, latent_dim + 2)."""
    nets = split_weights(arch, weights)
    code = mlp(x, nets["encoder"], arch.activation)
    x_hat = mlp(code, nets["decoder"], arch.activation)
    z = pt.concatenate([code, reconstruction_features(x, x_hat)], axis=1)
    return code, x_hat, z


def memberships(z, arch: Architecture, weights, dropout_masks=None):
    """Softmax memberships (N, K) from the estimation network."""
    layers = split_weights(arch, weights)["estimation"]
    return mlp(z, layers, arch.activation, last="softmax", dropout_masks=dropout_masks)


def mixture_parameters(z, gamma, reg_covar: float = 0.0):
    """``phi`` (K,), ``mu`` (K, d), ``Sigma`` (K, d, d) from memberships (see module)."""
    nk = pt.sum(gamma, axis=0)
    phi = nk / gamma.shape[0]
    mu = pt.dot(gamma.T, z) / nk[:, None]
    diff = z[None, :, :] - mu[:, None, :]  # (K, N, d)
    weighted = diff * gamma.T[:, :, None]
    sigma = pt.matmul(weighted.transpose(0, 2, 1), diff) / nk[:, None, None]
    if reg_covar:
        sigma = sigma + reg_covar * pt.eye(z.shape[1])[None]
    return phi, mu, sigma


def _diagonal(matrices):
    """Diagonals (K, d) of (K, d, d) matrices, as a masked sum: its gradient is
    elementwise (``pt.diagonal``'s gradient needs an op numba runs in object mode)."""
    eye = pt.eye(matrices.shape[-1])
    return pt.sum(matrices * eye[None], axis=-1)


def energy(z, phi, mu, sigma):
    """Sample energies ``-log sum_k phi_k N(z_i | mu_k, Sigma_k)``, (N,), via Cholesky
    factors and log-sum-exp."""
    d = z.shape[1]
    chol = pt.linalg.cholesky(sigma, lower=True, on_error="nan")  # (K, d, d)
    diff = z.T[None, :, :] - mu[:, :, None]  # (K, d, N)
    white = pt.linalg.solve_triangular(chol, diff, lower=True, b_ndim=2)
    mahalanobis = pt.sum(white**2, axis=1)  # (K, N)
    log_det = pt.sum(pt.log(_diagonal(chol)), axis=1)  # (K,)
    log_comp = (pt.log(phi) - log_det - 0.5 * d * LOG_2PI)[:, None] - 0.5 * mahalanobis
    return -pt.logsumexp(log_comp, axis=0)


def loss_terms(
    x,
    arch: Architecture,
    weights,
    *,
    lambda_energy: float,
    lambda_cov: float,
    reg_covar: float = 0.0,
    dropout_masks=None,
):
    """The objective and its terms on a batch ``x`` (N, D).

    Returns ``(total, reconstruction, energy, covariance_penalty)``: scalars, with
    ``total = reconstruction + lambda_energy * energy + lambda_cov * covariance_penalty``
    (``reconstruction`` and ``energy`` are batch means).
    """
    _, x_hat, z = compression(x, arch, weights)
    gamma = memberships(z, arch, weights, dropout_masks)
    phi, mu, sigma = mixture_parameters(z, gamma, reg_covar)
    recon = pt.mean(pt.sum((x - x_hat) ** 2, axis=1))
    mean_energy = pt.mean(energy(z, phi, mu, sigma))
    penalty = pt.sum(1.0 / _diagonal(sigma))
    total = recon + lambda_energy * mean_energy + lambda_cov * penalty
    return total, recon, mean_energy, penalty
