"""The expected likelihood kernel between Gaussian mixtures, and the paper's max-margin loss.

Plain NumPy reference maths (float64) for :mod:`bayesgmm.embeddings`: the compiled training
loop (:mod:`bayesgmm.embeddings.sgd`) computes the same quantities and is tested against
these functions, and these against numerical integration.

For two mixtures ``f = sum_i p_i N(mu_i, Sigma_i)`` and ``g = sum_j q_j N(nu_j, T_j)``
with diagonal (or spherical) covariances, the expected likelihood kernel is the integral of
their product (Jebara et al. 2004; Athiwaratkun & Wilson 2017, eq. 2)::

    xi(f, g) = int f(x) g(x) dx = sum_ij p_i q_j N(0; mu_i - nu_j, Sigma_i + T_j)

and the energy of a (word, context) pair is ``log xi``, computed here as a log-sum-exp.
The training loss of one (word w, context c, negative context c') triple is the hinge
``max(0, margin - log xi(w, c) + log xi(w, c'))`` (Athiwaratkun & Wilson 2017, eq. 4).
"""

from __future__ import annotations

import numpy as np
from scipy.special import logsumexp

from bayesgmm.em.gaussian import LOG_2PI

__all__ = [
    "hinge_loss",
    "log_expected_likelihood",
    "max_cosine_similarity",
]

def _as_variances(variances: np.ndarray, n_components: int, n_features: int) -> np.ndarray:
    """Variances of shape (K,) (spherical) or (K, D) (diagonal) as (K, D)."""
    variances = np.asarray(variances, dtype=np.float64)
    if variances.shape == (n_components,):
        return np.repeat(variances[:, None], n_features, axis=1)
    if variances.shape == (n_components, n_features):
        return variances
    raise ValueError(
        f"variances must have shape ({n_components},) (spherical) or "
        f"({n_components}, {n_features}) (diagonal), got {variances.shape}"
    )


def log_expected_likelihood(
    weights_a: np.ndarray,
    means_a: np.ndarray,
    variances_a: np.ndarray,
    weights_b: np.ndarray,
    means_b: np.ndarray,
    variances_b: np.ndarray,
) -> float:
    """``log int f(x) g(x) dx`` for two Gaussian mixtures with diagonal covariances.

    Parameters
    ----------
    weights_a : array-like of shape (K_a,)
        Mixture weights of ``f`` (positive, summing to one).
    means_a : array-like of shape (K_a, D)
    variances_a : array-like of shape (K_a,) or (K_a, D)
        Spherical (one variance per component) or diagonal covariances of ``f``.
    weights_b, means_b, variances_b
        The same for ``g`` (``K_b`` components, same ``D``).

    Returns
    -------
    float
        ``log sum_ij p_i q_j N(0; mu_i - nu_j, Sigma_i + T_j)``.
    """
    means_a = np.atleast_2d(np.asarray(means_a, dtype=np.float64))
    means_b = np.atleast_2d(np.asarray(means_b, dtype=np.float64))
    (ka, d), kb = means_a.shape, means_b.shape[0]
    if means_b.shape[1] != d:
        raise ValueError(f"means_a and means_b differ in dimension: {d} vs {means_b.shape[1]}")
    var_a = _as_variances(variances_a, ka, d)
    var_b = _as_variances(variances_b, kb, d)
    s = var_a[:, None, :] + var_b[None, :, :]
    diff = means_a[:, None, :] - means_b[None, :, :]
    log_n = -0.5 * np.sum(LOG_2PI + np.log(s) + diff**2 / s, axis=2)
    log_w = np.log(np.asarray(weights_a, dtype=np.float64))[:, None] + np.log(
        np.asarray(weights_b, dtype=np.float64)
    )[None, :]
    return float(logsumexp(log_w + log_n))


def hinge_loss(word: tuple, context: tuple, negative: tuple, margin: float = 1.0) -> float:
    """The max-margin loss of one (word, context, negative context) triple.

    Each argument is a ``(weights, means, variances)`` tuple as taken by
    :func:`log_expected_likelihood`; returns
    ``max(0, margin - log xi(word, context) + log xi(word, negative))``.
    """
    pos = log_expected_likelihood(*word, *context)
    neg = log_expected_likelihood(*word, *negative)
    return max(0.0, margin - pos + neg)


def max_cosine_similarity(means_a: np.ndarray, means_b: np.ndarray) -> float:
    """The largest cosine similarity between a component mean of ``a`` and one of ``b``.

    The paper's "MaxCos" word similarity (Athiwaratkun & Wilson 2017, section 5.3).

    Parameters
    ----------
    means_a : array-like of shape (K_a, D)
    means_b : array-like of shape (K_b, D)
    """
    a = np.atleast_2d(np.asarray(means_a, dtype=np.float64))
    b = np.atleast_2d(np.asarray(means_b, dtype=np.float64))
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return float(np.max(a @ b.T))
