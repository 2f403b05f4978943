"""Gaussian maths of the EM engine, one small pure function per idea.

Conventions follow scikit-learn's ``GaussianMixture`` so that parameters move freely
between the two: ``means`` has shape (n_components, n_features); ``covariances`` and
``precisions_cholesky`` have shape

=============  ==================================
full           (n_components, n_features, n_features)
tied           (n_features, n_features)
diag           (n_components, n_features)
spherical      (n_components,)
=============  ==================================

``precisions_cholesky`` is the upper-triangular ``P`` with ``P @ P.T`` the precision
matrix, i.e. ``inv(cholesky(covariance)).T``.

Log-densities are evaluated in the *linear-in-features* form

    log N(x | mu, Lambda) = c - 1/2 x' Lambda x + x' Lambda mu,

where ``x' Lambda x`` is a dot product between the quadratic features ``q(x)``
(the upper triangle of ``x x'`` for full/tied, ``x**2`` for diag, ``|x|**2`` for
spherical) and the matching entries of ``Lambda``. One design matrix
``Z = [q(x), x]`` then serves every component: the E-step is ``Z @ W`` and the M-step
statistics are ``resp.T @ Z``, both single matrix products.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.linalg import lapack
from scipy.special import logsumexp

__all__ = [
    "COMPONENT_DIM",
    "COVARIANCE_TYPES",
    "FEATURE2_DIM",
    "FEATURE_DIM",
    "LOG_2PI",
    "SKLEARN_COLLAPSE_MESSAGE",
    "CollapsedComponentError",
    "check_covariance_type",
    "compute_precision_cholesky",
    "covariance_dims",
    "covariance_shape",
    "covariances_from_precision_cholesky",
    "covariances_from_scatter",
    "full_covariances",
    "inverse_lower",
    "log_det_precision_cholesky",
    "log_likelihood_draws",
    "n_parameters",
    "n_quadratic_features",
    "precision_cholesky_from_precisions",
    "precision_feature_coefficients",
    "precisions_from_cholesky",
    "quadratic_features",
    "scatter_from_moments",
    "sd_shape",
    "unpack_quadratic_moments",
]

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
LOG_2PI = math.log(2.0 * math.pi)


class CollapsedComponentError(ValueError):
    """A component's covariance is singular: it has collapsed onto too few points."""


#: Names of the covariance dimensions, shared by every labelled array of a mixture.
COMPONENT_DIM = "component"
FEATURE_DIM = "feature"
FEATURE2_DIM = "feature_"


def check_covariance_type(covariance_type: object) -> str:
    """``covariance_type`` if it is one of :data:`COVARIANCE_TYPES`, else ValueError."""
    if not isinstance(covariance_type, str) or covariance_type not in COVARIANCE_TYPES:
        raise ValueError(
            f"Unknown covariance_type {covariance_type!r}: covariance_type must be one of "
            f"{COVARIANCE_TYPES}."
        )
    return covariance_type


def covariance_shape(covariance_type: str, n_components: int, n_features: int) -> tuple:
    """Shape of the covariances (or precisions, or their Cholesky factors) of a mixture.

    ``(K, D, D)`` for "full", ``(D, D)`` for "tied", ``(K, D)`` for "diag", ``(K,)`` for
    "spherical", as in scikit-learn.
    """
    k, d = n_components, n_features
    return {"full": (k, d, d), "tied": (d, d), "diag": (k, d), "spherical": (k,)}[
        check_covariance_type(covariance_type)
    ]


def sd_shape(covariance_type: str, n_components: int, n_features: int) -> tuple:
    """Shape of the component standard deviations: ``(K, D)`` for "full" and "diag",
    ``(D,)`` for "tied", ``(K,)`` for "spherical"."""
    k, d = n_components, n_features
    return {"full": (k, d), "tied": (d,), "diag": (k, d), "spherical": (k,)}[
        check_covariance_type(covariance_type)
    ]


def covariance_dims(covariance_type: str) -> tuple[str, ...]:
    """Named dims of the array of :func:`covariance_shape` (xarray / PyMC ``dims``)."""
    return {
        "full": (COMPONENT_DIM, FEATURE_DIM, FEATURE2_DIM),
        "tied": (FEATURE_DIM, FEATURE2_DIM),
        "diag": (COMPONENT_DIM, FEATURE_DIM),
        "spherical": (COMPONENT_DIM,),
    }[check_covariance_type(covariance_type)]


def n_quadratic_features(n_features: int, covariance_type: str) -> int:
    """Number of columns of :func:`quadratic_features`."""
    check_covariance_type(covariance_type)
    if covariance_type in ("full", "tied"):
        return n_features * (n_features + 1) // 2
    if covariance_type == "diag":
        return n_features
    return 1


def quadratic_features(X: np.ndarray, covariance_type: str, out: np.ndarray | None = None):
    """Quadratic features q(x) whose dot product with a precision gives x' Lambda x.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    covariance_type : {'full', 'tied', 'diag', 'spherical'}
    out : ndarray of shape (n_samples, n_quadratic_features), optional

    Returns
    -------
    Q : ndarray of shape (n_samples, n_quadratic_features)
        full/tied: ``x_a x_b`` for ``a <= b`` in ``np.triu_indices`` order;
        diag: ``x**2``; spherical: ``sum(x**2)``.
    """
    n_features = X.shape[1]
    if out is None:
        out = np.empty((X.shape[0], n_quadratic_features(n_features, covariance_type)))
    if covariance_type in ("full", "tied"):
        # row a of the upper triangle at a time: contiguous slices, no (n, D(D+1)/2) gathers
        # (the same products as X[:, rows] * X[:, cols]; 5-10x faster at D = 256)
        start = 0
        for a in range(n_features):
            stop = start + n_features - a
            np.multiply(X[:, a:], X[:, a, None], out=out[:, start:stop])
            start = stop
    elif covariance_type == "diag":
        np.multiply(X, X, out=out)
    else:
        np.einsum("ij,ij->i", X, X, out=out[:, 0])
    return out


def _triu_weights(n_features: int) -> np.ndarray:
    """1 on the diagonal, 2 off it: x' A x = sum(w * q(x) * A[triu])."""
    rows, cols = np.triu_indices(n_features)
    return np.where(rows == cols, 1.0, 2.0)


def precision_feature_coefficients(precisions: np.ndarray, covariance_type: str) -> np.ndarray:
    """Coefficients ``A`` (n_quadratic_features, n_components) with q(x) @ A = x' Lambda_k x.

    ``precisions`` has the covariance shapes of the module docstring (tied is
    broadcast to every component by the caller).
    """
    if covariance_type in ("full", "tied"):
        n_features = precisions.shape[-1]
        rows, cols = np.triu_indices(n_features)
        return (precisions[:, rows, cols] * _triu_weights(n_features)).T
    if covariance_type == "diag":
        return precisions.T
    return precisions[None, :]


def unpack_quadratic_moments(moments: np.ndarray, n_features: int, covariance_type: str):
    """Second moments in feature layout (n_components, n_quadratic_features) -> matrix layout.

    Returns (n_components, n_features, n_features) for full/tied, the input otherwise
    (diag: (n_components, n_features); spherical: (n_components, 1) -> (n_components,)).
    """
    if covariance_type in ("full", "tied"):
        rows, cols = np.triu_indices(n_features)
        out = np.empty((moments.shape[0], n_features, n_features))
        out[:, rows, cols] = moments
        out[:, cols, rows] = moments
        return out
    if covariance_type == "spherical":
        return moments[:, 0]
    return moments


def scatter_from_moments(
    resp_sum: np.ndarray,
    nk: np.ndarray,
    first: np.ndarray,
    second: np.ndarray,
    covariance_type: str,
) -> tuple[np.ndarray, np.ndarray]:
    """Means and responsibility-weighted scatter from raw moments about a shift.

    Parameters
    ----------
    resp_sum : ndarray (n_components,)
        ``s_k = sum_i r_ik``.
    nk : ndarray (n_components,)
        ``s_k + 10 eps`` (scikit-learn's guard against empty components).
    first : ndarray (n_components, n_features)
        ``sum_i r_ik d_ik`` with ``d_ik = x_i - c_k`` for a shift ``c_k``.
    second : ndarray
        ``sum_i r_ik q(d_ik)`` unpacked by :func:`unpack_quadratic_moments`.

    Returns
    -------
    mean_offsets : ndarray (n_components, n_features)
        ``mu_k - c_k``.
    scatter : ndarray
        ``sum_i r_ik (x_i - mu_k)(x_i - mu_k)'`` reduced to the covariance type's
        shape per component: (K, D, D) full/tied, (K, D) diag, (K,) spherical.
    """
    offsets = first / nk[:, None]
    excess = 2.0 * nk - resp_sum
    if covariance_type in ("full", "tied"):
        scatter = second - excess[:, None, None] * offsets[:, :, None] * offsets[:, None, :]
    elif covariance_type == "diag":
        scatter = second - excess[:, None] * offsets**2
    else:
        scatter = second - excess * np.einsum("kd,kd->k", offsets, offsets)
    return offsets, scatter


def covariances_from_scatter(
    nk: np.ndarray, scatter: np.ndarray, reg_covar: float, covariance_type: str, n_features: int
) -> np.ndarray:
    """Maximum-likelihood covariances (the classic M-step) plus ``reg_covar`` on the diagonal.

    ``scatter`` is the output of :func:`scatter_from_moments`; for spherical it holds the
    trace of each component's scatter, averaged here over the ``n_features`` dimensions.
    """
    if covariance_type == "full":
        return scatter / nk[:, None, None] + reg_covar * np.eye(n_features)
    if covariance_type == "tied":
        return scatter.sum(axis=0) / nk.sum() + reg_covar * np.eye(n_features)
    if covariance_type == "diag":
        return scatter / nk[:, None] + reg_covar
    return scatter / (nk * n_features) + reg_covar


def _lower_cholesky(matrix: np.ndarray) -> np.ndarray | None:
    """Lower Cholesky factor via LAPACK ``dpotrf`` (None if not positive definite).

    Direct LAPACK calls: scipy.linalg's wrappers cost ~1000x more on small matrices.
    """
    factor, info = lapack.dpotrf(matrix, lower=1, clean=1)
    if info != 0 or not np.all(np.isfinite(factor)):
        return None
    return factor


def inverse_lower(factor: np.ndarray) -> np.ndarray:
    """Inverse of a lower-triangular matrix via LAPACK ``dtrtri``."""
    inverse, info = lapack.dtrtri(factor, lower=1)
    if info != 0:
        raise np.linalg.LinAlgError("singular triangular factor")
    return np.tril(inverse)


def compute_precision_cholesky(
    covariances: np.ndarray, covariance_type: str, nk: np.ndarray | None = None
) -> np.ndarray:
    """Upper-triangular precision Cholesky factors from covariances.

    Raises
    ------
    CollapsedComponentError
        When a covariance is not positive definite, naming the component, how many
        (weighted) points it holds when ``nk`` is given, and the remedies.
    """
    if covariance_type in ("full", "tied"):
        stack = covariances[None] if covariance_type == "tied" else covariances
        out = np.empty_like(stack)
        for k, cov in enumerate(stack):
            chol = _lower_cholesky(cov)
            if chol is None:
                raise _collapse_error(k, covariance_type, nk)
            out[k] = inverse_lower(chol).T
        return out[0] if covariance_type == "tied" else out
    bad = ~(covariances > 0.0) | ~np.isfinite(covariances)
    if np.any(bad):
        k = int(np.argwhere(bad)[0][0])
        raise _collapse_error(k, covariance_type, nk)
    return 1.0 / np.sqrt(covariances)


#: scikit-learn's message for a collapsed component (kept verbatim at the start of ours, so
#: that code matching scikit-learn's errors keeps working).
SKLEARN_COLLAPSE_MESSAGE = (
    "Fitting the mixture model failed because some components have ill-defined empirical "
    "covariance (for instance caused by singleton or collapsed samples). Try to decrease the "
    "number of components, increase reg_covar, or scale the input data."
)


def _collapse_error(k: int, covariance_type: str, nk: np.ndarray | None):
    what = "the shared covariance" if covariance_type == "tied" else f"component {k}"
    held = ""
    if nk is not None and covariance_type != "tied":
        held = f" (it holds {float(nk[k]):.3g} effective points)"
    return CollapsedComponentError(
        f"{SKLEARN_COLLAPSE_MESSAGE} Here {what}{held} has a singular covariance: the "
        "component collapsed onto too few "
        "distinct points. Remedies: increase reg_covar, reduce n_components, set a prior "
        "(prior='default' runs MAP-EM, whose covariances stay positive definite), or "
        "standardise the features."
    )


def precisions_from_cholesky(precisions_cholesky: np.ndarray, covariance_type: str):
    """Precision matrices ``P @ P.T`` (full/tied) or ``P**2`` (diag/spherical)."""
    if covariance_type == "full":
        return precisions_cholesky @ np.swapaxes(precisions_cholesky, -1, -2)
    if covariance_type == "tied":
        return precisions_cholesky @ precisions_cholesky.T
    return precisions_cholesky**2


def precision_cholesky_from_precisions(precisions: np.ndarray, covariance_type: str):
    """Upper-triangular ``P`` with ``P @ P.T == precision`` (for user-given precisions).

    Raises ValueError unless every precision is symmetric positive definite (full/tied)
    or positive (diag/spherical).
    """
    if covariance_type in ("full", "tied"):
        stack = precisions[None] if covariance_type == "tied" else precisions
        out = np.empty_like(stack)
        for k, prec in enumerate(stack):
            where = "precisions_init" if covariance_type == "tied" else f"precisions_init[{k}]"
            sklearn = f"'{covariance_type} precision' should be symmetric, positive-definite"
            if not np.allclose(prec, prec.T, rtol=1e-10, atol=1e-12 * np.abs(prec).max()):
                raise ValueError(f"{sklearn}: {where} is not symmetric")
            # the row/column-reversed matrix's lower factor, reversed, is an upper factor
            chol = _lower_cholesky(np.ascontiguousarray(prec[::-1, ::-1]))
            if chol is None:
                raise ValueError(f"{sklearn}: {where} is not positive definite")
            out[k] = chol[::-1, ::-1]
        return out[0] if covariance_type == "tied" else out
    if not np.all(precisions > 0):
        raise ValueError(
            f"'{covariance_type} precision' should be positive: precisions_init must be > 0"
        )
    return np.sqrt(precisions)


def covariances_from_precision_cholesky(precisions_cholesky: np.ndarray, covariance_type: str):
    """Covariances ``inv(P @ P.T)`` computed through the triangular factor."""
    if covariance_type in ("full", "tied"):
        stack = precisions_cholesky[None] if covariance_type == "tied" else precisions_cholesky
        out = np.empty_like(stack)
        for k, factor in enumerate(stack):
            inv = inverse_lower(np.ascontiguousarray(factor.T))  # inv(P.T), lower
            out[k] = inv @ inv.T  # inv(P P.T) = inv(P.T) inv(P)
        return out[0] if covariance_type == "tied" else out
    return 1.0 / precisions_cholesky**2


def log_det_precision_cholesky(
    precisions_cholesky: np.ndarray, covariance_type: str, n_features: int
) -> np.ndarray:
    """``log det P`` per component (= -1/2 log det Sigma); a scalar for tied."""
    if covariance_type == "full":
        return np.log(np.diagonal(precisions_cholesky, axis1=1, axis2=2)).sum(axis=1)
    if covariance_type == "tied":
        return np.log(np.diag(precisions_cholesky)).sum()
    if covariance_type == "diag":
        return np.log(precisions_cholesky).sum(axis=1)
    return n_features * np.log(precisions_cholesky)


def full_covariances(
    covariances: np.ndarray, covariance_type: str, n_components: int, n_features: int
) -> np.ndarray:
    """Covariances in scikit-learn's layout for ``covariance_type`` as (K, D, D) matrices.

    "tied" is a read-only broadcast view of the shared (D, D) matrix.
    """
    cov, k, d = np.asarray(covariances), n_components, n_features
    if covariance_type == "full":
        return cov
    if covariance_type == "tied":
        return np.broadcast_to(cov, (k, d, d))
    if covariance_type == "diag":
        return cov[:, :, None] * np.eye(d)
    return cov[:, None, None] * np.eye(d)


def n_parameters(n_components: int, n_features: int, covariance_type: str) -> int:
    """Number of free parameters (weights, means, covariances) for AIC/BIC/ICL."""
    check_covariance_type(covariance_type)
    cov = {
        "full": n_components * n_features * (n_features + 1) // 2,
        "tied": n_features * (n_features + 1) // 2,
        "diag": n_components * n_features,
        "spherical": n_components,
    }[covariance_type]
    return cov + n_components * n_features + n_components - 1


#: float64 entries per chunk of draws in :func:`log_likelihood_draws` (about 32 MB)
_LOGLIK_CHUNK = 1 << 22


def log_likelihood_draws(X, weights, means, chol) -> np.ndarray:
    """log p(x_n | theta_s) of the mixture, (S, N), for draws ``weights`` (S, K), ``means``
    (S, K, D) and lower Cholesky factors ``chol`` (S, K, D, D) of the covariances, in NumPy:
    z = L^-1 (x - mu) by triangular solves, then log-sum-exp over components."""
    X = np.asarray(X, dtype=np.float64)
    weights, means, chol = (np.asarray(a, dtype=np.float64) for a in (weights, means, chol))
    n, d = X.shape
    s_all, k = weights.shape
    out = np.empty((s_all, n))
    step = max(1, _LOGLIK_CHUNK // max(1, k * d * n))
    eye = np.eye(d)
    for lo in range(0, s_all, step):
        hi = min(s_all, lo + step)
        L = chol[lo:hi]
        # L^-1 by a batched solve (lower triangular: exact enough, D is small)
        linv = np.linalg.solve(L, np.broadcast_to(eye, L.shape))
        diff = X.T[None, None] - means[lo:hi, :, :, None]  # (s, K, D, N)
        z = linv @ diff
        logdet = np.log(np.diagonal(L, axis1=-2, axis2=-1)).sum(axis=-1)  # (s, K)
        comp = -0.5 * np.einsum("skdn,skdn->skn", z, z)
        comp += (np.log(weights[lo:hi]) - logdet - 0.5 * d * LOG_2PI)[..., None]
        out[lo:hi] = logsumexp(comp, axis=1)
    return out
