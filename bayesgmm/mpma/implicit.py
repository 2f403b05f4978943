"""Implicit feedback for the Gibbs-sampled factorisations: who rated what, as side features.

A rating says twice something about a user: its value, and that the user chose to rate the
item at all. SVD++ (Koren 2008) and Rendle's Bayesian factorisation machine with implicit
features ("On the difficulty of evaluating baselines", 2019) use the second part; on
MovieLens-100K u1 it is what separates myFM (0.8912) from Bayesian PMF (0.9052). Here it
enters as side features of the entities, as in Macau (Simm et al. 2017, "Macau: scalable
Bayesian factorization with high-dimensional side information using MCMC"): the prior mean of
every entity vector ``theta_r = (U_r, a_r)`` is shifted by a linear map of its features::

    x_r = (1[r rated s] / sqrt(n_r))_s      row r's implicit features (n_r: its ratings)
    theta_r ~ Normal(mu + B^T x_r, Lambda**-1)
    B ~ MatrixNormal(0, I / lam, Lambda**-1)     (rows of B: Normal(0, (lam Lambda)**-1))
    lam ~ Gamma(implicit_shape, rate=implicit_rate)

so ``B^T x_r`` is SVD++'s ``|N(r)|**-1/2 sum_{s in N(r)} y_s``, with the bias coordinate
too. The columns get the mirror features (the rows that rated them, the "flipped"
features of Rendle et al.). Given ``theta``, ``mu`` and ``Lambda`` the conditional of ``B``
is the Bayesian multivariate regression ``MatrixNormal((X^T X + lam I)^-1 X^T E,
(X^T X + lam I)^-1, Lambda**-1)`` with ``E = theta - mu`` (:func:`sample_link`, drawn
through a thin SVD of ``X`` computed once); ``lam`` is conjugate Gamma
(:func:`sample_link_precision`); and ``(mu, Lambda)`` stay Normal-Wishart, on the residual
vectors ``theta_r - B^T x_r`` with the extra scatter ``lam B^T B`` and ``p`` extra degrees
of freedom from the prior of ``B`` (:func:`bayesgmm.mpma.gibbs.sample_normal_wishart`).

``X`` is kept dense (entities with a rating x the other side's entities with a rating):
right for MovieLens-100K and 1M (6,040 x 3,706), not for 10M-scale matrices, where
:func:`implicit_features` raises a ValueError above ``MAX_IMPLICIT_ENTRIES`` entries.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.linalg import solve_triangular

__all__ = [
    "MAX_IMPLICIT_ENTRIES",
    "ImplicitFeatures",
    "implicit_features",
    "sample_link",
    "sample_link_precision",
]

#: Largest dense implicit-feature matrix built (50M float64 entries, 400 MB).
MAX_IMPLICIT_ENTRIES = 50_000_000


@dataclass
class ImplicitFeatures:
    """Implicit features of one side of a component's matrix and their thin SVD.

    Attributes
    ----------
    matrix : ndarray of shape (n_seen, p)
        ``X``: row ``r`` is ``1 / sqrt(n_r)`` on the ``n_r`` entities of the other side
        that it has a rating with (``p``: the other side's entities with a rating).
    left : ndarray of shape (n_seen, q)
    singular : ndarray of shape (q,)
    right : ndarray of shape (p, q)
        ``X = left @ diag(singular) @ right.T``, ``q = min(n_seen, p)``.
    """

    matrix: np.ndarray
    left: np.ndarray
    singular: np.ndarray
    right: np.ndarray

    @property
    def n_features(self) -> int:
        return self.matrix.shape[1]


def implicit_features(
    own: np.ndarray, other: np.ndarray, seen_own: np.ndarray, seen_other: np.ndarray
) -> ImplicitFeatures:
    """The implicit features of the entities ``seen_own`` of one side.

    Parameters
    ----------
    own, other : ndarray of shape (N,), int
        Each rating's index on this side and on the other side.
    seen_own, seen_other : ndarray, int, sorted
        The indices with at least one rating on each side (every ``own`` is in
        ``seen_own``, every ``other`` in ``seen_other``).
    """
    size = seen_own.shape[0] * seen_other.shape[0]
    if size > MAX_IMPLICIT_ENTRIES:
        raise ValueError(
            f"implicit=True needs a dense {seen_own.shape[0]:,} x {seen_other.shape[0]:,} "
            f"feature matrix ({size:,} entries, more than MAX_IMPLICIT_ENTRIES = "
            f"{MAX_IMPLICIT_ENTRIES:,}): use implicit=False on a matrix this large"
        )
    rows = np.searchsorted(seen_own, own)
    cols = np.searchsorted(seen_other, other)
    x = np.zeros((seen_own.shape[0], seen_other.shape[0]))
    x[rows, cols] = 1.0  # a repeated (row, col) pair counts once
    count = x.sum(axis=1, keepdims=True)
    x /= np.sqrt(np.maximum(count, 1.0))
    left, singular, right_t = np.linalg.svd(x, full_matrices=False)
    return ImplicitFeatures(x, left, singular, right_t.T)


def sample_link(
    features: ImplicitFeatures,
    residual: np.ndarray,
    precision: np.ndarray,
    lam: float,
    noise: np.ndarray | None,
) -> np.ndarray:
    """A draw of the link matrix ``B`` given the entities, from its matrix-normal conditional.

    Parameters
    ----------
    features : ImplicitFeatures
        ``X`` of shape (n_seen, p) and its SVD.
    residual : ndarray of shape (n_seen, dim)
        ``E = theta - mu``: the entity vectors minus the prior mean.
    precision : ndarray of shape (dim, dim)
        ``Lambda``.
    lam : float
        Precision multiplier of ``B``'s prior (> 0).
    noise : ndarray of shape (p, dim) or None
        Standard normal draws; None returns the conditional mean.

    Returns
    -------
    ndarray of shape (p, dim)
        ``M + A**-1/2 Z C**-1`` with ``A = X^T X + lam I``, ``M = A**-1 X^T E`` and
        ``Lambda = C C^T``: a draw of ``MatrixNormal(M, A**-1, Lambda**-1)``.
    """
    u, s, v = features.left, features.singular, features.right
    mean = v @ ((s / (s**2 + lam))[:, None] * (u.T @ residual))
    if noise is None:
        return mean
    projected = v.T @ noise  # (q, dim)
    # A**-1/2 Z: (s**2 + lam)**-1/2 inside X's row space, lam**-1/2 on its complement
    scaled = v @ (projected / np.sqrt(s**2 + lam)[:, None])
    scaled += (noise - v @ projected) / np.sqrt(lam)
    chol = np.linalg.cholesky(precision)
    # Z C**-1 = (C**-T Z^T)^T: row covariance Lambda**-1
    return mean + solve_triangular(chol, scaled.T, lower=True, trans="T").T


def sample_link_precision(
    rng: np.random.Generator, link: np.ndarray, precision: np.ndarray, shape: float, rate: float
) -> float:
    """A draw of ``lam`` given ``B`` (p, dim) and ``Lambda``: conjugate Gamma.

    ``Gamma(shape + p dim / 2, rate + tr(B Lambda B^T) / 2)``.
    """
    p, dim = link.shape
    quad = float(np.einsum("ij,jk,ik->", link, precision, link))
    return float(rng.gamma(shape + 0.5 * p * dim, 1.0 / (rate + 0.5 * quad)))
