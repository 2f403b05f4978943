"""Conjugate priors and the MAP M-step (MAP-EM).

The prior is Fraley & Raftery's (2007, "Bayesian regularization for normal mixture
estimation and model-based clustering", J. Classif. 24) and mclust's ``priorControl``:

* weights ~ Dirichlet(alpha, ..., alpha);
* full:  Sigma_k ~ InvWishart(nu, Lambda), mu_k | Sigma_k ~ N(mu_0, Sigma_k / kappa);
* tied:  Sigma ~ InvWishart(nu, Lambda),   mu_k | Sigma ~ N(mu_0, Sigma / kappa);
* diag:  sigma2_kd ~ InvGamma(nu/2, lambda_d/2), mu_kd | sigma2_kd ~ N(mu_0d, sigma2_kd / kappa);
* spherical: sigma2_k ~ InvGamma(nu/2, lambda/2), mu_k | sigma2_k ~ N(mu_0, sigma2_k I / kappa).

InvWishart(nu, Lambda) has density proportional to
``|Sigma|^(-(nu + D + 1)/2) exp(-tr(Lambda Sigma^-1)/2)`` (scipy's ``invwishart``).
The M-step maximises the expected complete-data log-likelihood plus the log prior: it
returns the joint posterior mode of each component given the responsibilities. With
``prior=None`` the estimator runs plain maximum likelihood instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike
from scipy import special

from bayesgmm._validation import check_real
from bayesgmm.em.gaussian import LOG_2PI, log_det_precision_cholesky, precisions_from_cholesky
from bayesgmm.em.sweep import MixtureParams, Moments

__all__ = [
    "ConjugatePrior",
    "ResolvedPrior",
    "log_prior_density",
    "map_parameters",
    "map_weights",
]


@dataclass(frozen=True)
class ConjugatePrior:
    """Dirichlet and Normal-inverse-Wishart prior of MAP-EM, with mclust's defaults.

    Every field is checked on construction (finite numbers in the ranges below); the
    shapes, which depend on the data, in :meth:`resolve`.

    Parameters
    ----------
    weight_concentration : float, default=1.0
        Dirichlet ``alpha`` (>= 1; 1 leaves the weights at maximum likelihood).
        Values below 1 have no interior mode: use the Bayesian estimator for sparse priors.
    mean_precision : float, default=0.01
        ``kappa``, the prior's weight on ``mean_prior`` in units of observations.
    mean_prior : array-like of shape (n_features,), optional
        ``mu_0``; default the (weighted) data mean.
    degrees_of_freedom : float, optional
        ``nu``; default ``n_features + 2``. Must exceed ``n_features - 1`` for full/tied
        and 0 for diag/spherical.
    scale : array-like, optional
        ``Lambda``: (D, D) for full/tied, (D,) for diag, a scalar for spherical. Default
        ``cov(X) / K**(2/D)`` reduced to the covariance type (diag: its diagonal;
        spherical: the mean of the diagonal), as mclust's ``defaultPrior``.
    """

    weight_concentration: float = 1.0
    mean_precision: float = 0.01
    mean_prior: ArrayLike | None = None
    degrees_of_freedom: float | None = None
    scale: ArrayLike | None = field(default=None)

    def __post_init__(self):
        """Check every field (those that depend on the data again in :meth:`resolve`)."""
        alpha = check_real(self.weight_concentration, "weight_concentration")
        if not alpha >= 1.0:
            raise ValueError(
                f"weight_concentration must be >= 1 for MAP-EM, got {alpha}: below 1 the "
                "Dirichlet has no interior mode (use BayesGMM for sparse weight priors)"
            )
        kappa = check_real(self.mean_precision, "mean_precision (kappa)")
        if not kappa > 0.0:
            raise ValueError(f"mean_precision (kappa) must be > 0, got {kappa}")
        if self.degrees_of_freedom is not None:
            check_real(self.degrees_of_freedom, "degrees_of_freedom", minimum=0.0, strict=True)
        for name in ("mean_prior", "scale"):
            value = getattr(self, name)
            if value is None:
                continue
            try:
                arr = np.asarray(value, dtype=np.float64)
            except (TypeError, ValueError):
                raise TypeError(
                    f"{name} must be None or numeric (an array of floats), got {value!r}"
                ) from None
            if not np.isfinite(arr).all():
                raise ValueError(
                    f"{name} must be finite (no NaN or inf), got {value!r}: fix the values or "
                    f"leave {name}=None for the data-based default"
                )

    def resolve(self, X: np.ndarray, sample_weight, n_components: int, covariance_type: str):
        """Fill the data-dependent defaults; validate; return a :class:`ResolvedPrior`."""
        w = np.ones(len(X)) if sample_weight is None else np.asarray(sample_weight)
        data_mean = w @ X / w.sum()
        centred = X - data_mean
        data_cov = (centred * w[:, None]).T @ centred / w.sum()
        return self.resolve_from_moments(data_mean, data_cov, n_components, covariance_type)

    def resolve_from_moments(
        self, data_mean: np.ndarray, data_cov: np.ndarray, n_components: int, covariance_type: str
    ):
        """:meth:`resolve` from the data's (weighted) mean and covariance (chunked data)."""
        n_features = len(data_mean)
        alpha = float(self.weight_concentration)
        kappa = float(self.mean_precision)
        mu0 = data_mean if self.mean_prior is None else np.asarray(self.mean_prior, float)
        if mu0.shape != (n_features,):
            raise ValueError(f"mean_prior must have shape ({n_features},), got {mu0.shape}")
        nu = n_features + 2.0 if self.degrees_of_freedom is None else float(self.degrees_of_freedom)
        nu_min = n_features - 1.0 if covariance_type in ("full", "tied") else 0.0
        if not nu > nu_min:
            raise ValueError(
                f"degrees_of_freedom must be > {nu_min} for covariance_type="
                f"{covariance_type!r}, got {nu}"
            )
        fac = n_components ** (-2.0 / n_features)
        default_scale = {
            "full": fac * data_cov,
            "tied": fac * data_cov,
            "diag": fac * np.diag(data_cov),
            "spherical": fac * np.trace(data_cov) / n_features,
        }[covariance_type]
        scale = default_scale if self.scale is None else np.asarray(self.scale, float)
        if scale.shape != np.shape(default_scale):
            raise ValueError(
                f"scale must have shape {np.shape(default_scale)} for covariance_type="
                f"{covariance_type!r}, got {scale.shape}"
            )
        if covariance_type in ("full", "tied"):
            if not np.allclose(scale, scale.T) or np.linalg.eigvalsh(scale).min() <= 0:
                raise ValueError(
                    "scale must be symmetric positive definite (a constant feature makes "
                    "the default singular: drop it or pass scale explicitly)"
                )
        elif np.any(~(scale > 0)):
            raise ValueError("scale must be positive (a constant feature makes the default 0)")
        return ResolvedPrior(alpha, kappa, mu0, nu, scale, covariance_type)


@dataclass(frozen=True)
class ResolvedPrior:
    """A :class:`ConjugatePrior` with every hyperparameter a number/array."""

    weight_concentration: float
    mean_precision: float
    mean_prior: np.ndarray
    degrees_of_freedom: float
    scale: np.ndarray
    covariance_type: str

    def as_dict(self) -> dict:
        """Hyperparameters as plain Python values (for reports and saving)."""
        return {
            "weight_concentration": self.weight_concentration,
            "mean_precision": self.mean_precision,
            "mean_prior": self.mean_prior.tolist(),
            "degrees_of_freedom": self.degrees_of_freedom,
            "scale": np.asarray(self.scale).tolist(),
        }


def map_weights(nk: np.ndarray, alpha: float) -> np.ndarray:
    """Mode of the Dirichlet posterior: ``(n_k + alpha - 1) / (N + K (alpha - 1))``."""
    w = nk + (alpha - 1.0)
    return w / w.sum()


def map_parameters(moments: Moments, prior: ResolvedPrior, reg_covar: float, n_features: int):
    """The MAP M-step: posterior-mode weights, means and covariances.

    Parameters
    ----------
    moments : Moments
        Responsibility-weighted statistics from the E-step.
    prior : ResolvedPrior
    reg_covar : float
        Added to the covariance diagonals *after* the MAP update (0 gives the exact mode).

    Returns
    -------
    weights (K,), means (K, D), covariances (shape per covariance type)
    """
    n = moments.nk
    kappa, mu0, nu, scale = (
        prior.mean_precision,
        prior.mean_prior,
        prior.degrees_of_freedom,
        prior.scale,
    )
    means = (n[:, None] * moments.means + kappa * mu0) / (n + kappa)[:, None]
    dev = moments.means - mu0
    shrink = kappa * n / (kappa + n)
    scatter = moments.scatter
    eye = np.eye(n_features)
    cov_type = prior.covariance_type
    if cov_type == "full":
        total = scale + scatter + shrink[:, None, None] * dev[:, :, None] * dev[:, None, :]
        covariances = total / (nu + n + n_features + 2.0)[:, None, None] + reg_covar * eye
    elif cov_type == "tied":
        total = scale + scatter.sum(0) + np.einsum("k,kd,ke->de", shrink, dev, dev)
        covariances = total / (nu + n_features + 1.0 + len(n) + n.sum()) + reg_covar * eye
    elif cov_type == "diag":
        total = scale + scatter + shrink[:, None] * dev**2
        covariances = total / (nu + n + 3.0)[:, None] + reg_covar
    else:
        total = scale + scatter + shrink * np.einsum("kd,kd->k", dev, dev)
        covariances = total / (nu + 2.0 + n_features * (n + 1.0)) + reg_covar
    return map_weights(n, prior.weight_concentration), means, covariances


def log_prior_density(params: MixtureParams, prior: ResolvedPrior) -> float:
    """Normalised log prior density of a parameter point (the MAP-EM objective's prior term)."""
    cov_type = prior.covariance_type
    n_components, n_features = params.means.shape
    alpha, kappa, nu = prior.weight_concentration, prior.mean_precision, prior.degrees_of_freedom
    log_dirichlet = (
        special.gammaln(n_components * alpha)
        - n_components * special.gammaln(alpha)
        + special.xlogy(alpha - 1.0, params.weights).sum()
    )
    chol = params.precisions_cholesky
    log_det_p = log_det_precision_cholesky(chol, cov_type, n_features)  # = -1/2 log det Sigma
    precisions = precisions_from_cholesky(chol, cov_type)
    dev = params.means - prior.mean_prior
    if cov_type in ("full", "tied"):
        per_component = np.broadcast_to(precisions, (n_components, n_features, n_features))
        maha = np.einsum("kd,kde,ke->k", dev, per_component, dev)
        log_means = (
            0.5 * n_features * (np.log(kappa) - LOG_2PI)
            + np.broadcast_to(log_det_p, (n_components,))
            - 0.5 * kappa * maha
        ).sum()
        distinct = precisions[None] if cov_type == "tied" else precisions
        _, log_det_scale = np.linalg.slogdet(prior.scale)
        log_iw = (
            0.5 * nu * log_det_scale
            - 0.5 * nu * n_features * np.log(2.0)
            - special.multigammaln(0.5 * nu, n_features)
            + (nu + n_features + 1.0) * np.atleast_1d(log_det_p)
            - 0.5 * np.einsum("de,ked->k", prior.scale, distinct)
        ).sum()
        return float(log_dirichlet + log_means + log_iw)
    # diag: one precision per (component, feature); spherical: one per component
    per_coord = np.broadcast_to(
        precisions if cov_type == "diag" else precisions[:, None], dev.shape
    )
    log_means = (
        0.5 * (np.log(kappa * per_coord) - LOG_2PI) - 0.5 * kappa * per_coord * dev**2
    ).sum()
    a, b = 0.5 * nu, 0.5 * prior.scale
    # InvGamma(a, b) density at sigma2 = 1 / precision
    log_ig = a * np.log(b) - special.gammaln(a) + (a + 1.0) * np.log(precisions) - b * precisions
    return float(log_dirichlet + log_means + log_ig.sum())
