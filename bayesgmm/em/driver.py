"""EM iterations: initial responsibilities, the M-step, and the loop to convergence."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from sklearn.cluster import KMeans, kmeans_plusplus

from bayesgmm.em.gaussian import compute_precision_cholesky, covariances_from_scatter
from bayesgmm.em.priors import ResolvedPrior, log_prior_density, map_parameters
from bayesgmm.em.sweep import Design, MixtureParams, Moments, em_sweep

__all__ = [
    "INIT_METHODS",
    "EMRun",
    "initial_responsibilities",
    "m_step",
    "run_em",
]

INIT_METHODS = ("kmeans", "k-means++", "random", "random_from_data")


def initial_responsibilities(
    X: np.ndarray,
    n_components: int,
    method: str,
    random_state: np.random.RandomState,
    sample_weight: np.ndarray | None = None,
) -> np.ndarray:
    """Initial responsibilities (n_samples, n_components), as scikit-learn draws them.

    With the same ``random_state`` and no sample weights these are exactly
    scikit-learn's. Sample weights enter k-means and k-means++ as point weights, and
    ``random_from_data`` picks points with probability proportional to weight.
    """
    n_samples = X.shape[0]
    resp = np.zeros((n_samples, n_components))
    if method == "kmeans":
        labels = (
            KMeans(n_clusters=n_components, n_init=1, random_state=random_state)
            .fit(X, sample_weight=sample_weight)
            .labels_
        )
        resp[np.arange(n_samples), labels] = 1.0
    elif method == "random":
        resp = random_state.uniform(size=(n_samples, n_components))
        resp /= resp.sum(axis=1)[:, None]
    elif method == "random_from_data":
        p = None if sample_weight is None else sample_weight / sample_weight.sum()
        indices = random_state.choice(n_samples, size=n_components, replace=False, p=p)
        resp[indices, np.arange(n_components)] = 1.0
    elif method == "k-means++":
        _, indices = kmeans_plusplus(
            X, n_components, random_state=random_state, sample_weight=sample_weight
        )
        resp[indices, np.arange(n_components)] = 1.0
    else:
        raise ValueError(f"init_params must be one of {INIT_METHODS}, got {method!r}")
    return resp


def m_step(
    moments: Moments,
    covariance_type: str,
    reg_covar: float,
    prior: ResolvedPrior | None,
) -> MixtureParams:
    """Maximum-likelihood (``prior=None``) or MAP parameters from E-step statistics."""
    n_features = moments.means.shape[1]
    if prior is None:
        weights = moments.nk / moments.nk.sum()
        means = moments.means
        covariances = covariances_from_scatter(
            moments.nk, moments.scatter, reg_covar, covariance_type, n_features
        )
    else:
        weights, means, covariances = map_parameters(moments, prior, reg_covar, n_features)
    precisions_cholesky = compute_precision_cholesky(covariances, covariance_type, moments.nk)
    return MixtureParams(weights, means, covariances, precisions_cholesky)


@dataclass
class EMRun:
    """The outcome of one EM run from one initialisation.

    ``objective_trace[t]`` is the objective at the parameters entering iteration t+1:
    the mean (weighted) log-likelihood per sample, plus log prior / total weight for
    MAP-EM. ``params`` are those after the last M-step (scikit-learn's convention).
    """

    params: MixtureParams
    objective_trace: list[float]
    converged: bool
    n_iter: int

    @property
    def objective(self) -> float:
        return self.objective_trace[-1] if self.objective_trace else -np.inf


def run_em(
    design: Design,
    params: MixtureParams,
    *,
    covariance_type: str,
    reg_covar: float,
    prior: ResolvedPrior | None,
    tol: float,
    max_iter: int,
    start_objective: float = -np.inf,
    on_iteration: Callable[[int, float], None] | None = None,
    sweep: Callable = em_sweep,
) -> EMRun:
    """Iterate E- and M-steps until the objective changes by less than ``tol``.

    ``sweep(design, params)`` returns the log-likelihood and the :class:`Moments`; the
    default reads an in-memory :class:`Design`, :mod:`bayesgmm.em.dask` passes its chunked
    pass (``design`` then needs only ``total_weight``).
    """
    trace: list[float] = []
    previous = start_objective
    for n_iter in range(1, max_iter + 1):
        log_likelihood, moments = sweep(design, params)
        objective = log_likelihood
        if prior is not None:
            objective += log_prior_density(params, prior)
        objective /= design.total_weight
        trace.append(objective)
        params = m_step(moments, covariance_type, reg_covar, prior)
        if on_iteration is not None:
            on_iteration(n_iter, objective)
        if abs(objective - previous) < tol:
            return EMRun(params, trace, True, n_iter)
        previous = objective
    return EMRun(params, trace, False, max_iter)
