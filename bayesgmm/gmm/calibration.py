"""Simulation-based calibration (SBC) of the Bayesian GMM (Talts et al. 2018).

If parameters are drawn from the prior, ``theta* ~ p(theta)``, data from the model,
``y ~ p(y | theta*)``, and ``L`` independent draws from the exact posterior
``p(theta | y)``, then the rank of ``theta*`` among the ``L`` draws is uniform on
``{0, ..., L}`` for every scalar function of theta.  Repeating this ``n_sims`` times and
testing the ranks for uniformity checks the whole chain at once: the prior sampler, the
likelihood's generator against its log-density, and the inference (here EM -> MAP ->
NUTS).  Skewed rank histograms reveal bias, U shapes an over-confident (too narrow)
posterior, humps an over-dispersed one (Talts et al. 2018, Fig. 3-5).

The pieces:

- :func:`simulate_from_prior`: prior draws and data sets from PyMC prior sampling of the
  model built by :func:`bayesgmm.gmm.model.build_gmm_model`.  The priors must be given
  explicitly (:func:`sbc_priors`): the package defaults are scaled to the data, which
  would make the prior depend on the data and break the SBC identity.
- :class:`SBCFitter`: the EM-initialised NUTS pipeline of :class:`bayesgmm.BayesGMM`
  (EM with restarts, components ordered on ``order_feature``, EM -> initial values ->
  MAP by L-BFGS-B -> nutpie NUTS from the MAP without jitter), compiled once with the
  observed data as a shared variable and re-used for every data set.
- :func:`run_sbc`: ranks of the reporting parameters (``weights[k]``, ``means[k,d]``,
  ``sd[k,d]``, ``corr[k,d,e]``; :func:`bayesgmm.gmm.crosscheck.posterior_reporting_parameters`)
  among ``n_ranks`` draws thinned evenly from the posterior, and per-replication sampler
  diagnostics.
- :func:`chi2_uniformity`, :func:`ecdf_uniformity` and :func:`rank_uniformity_table`: the
  rank-uniformity statistics, one row per parameter with a Bonferroni-adjusted verdict.

References
----------
Talts, S., Betancourt, M., Simpson, D., Vehtari, A. and Gelman, A. (2018). Validating
Bayesian inference algorithms with simulation-based calibration. arXiv:1804.06788.

Säilynoja, T., Bürkner, P.-C. and Vehtari, A. (2022). Graphical test for discrete
uniformity and its applications in goodness-of-fit evaluation and multiple sample
comparison. Statistics and Computing 32, 32.
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize, stats

from bayesgmm.em.gaussian import log_likelihood_draws

__all__ = [
    "PriorSimulation",
    "SBCFitter",
    "SBCResult",
    "chi2_uniformity",
    "ecdf_band",
    "ecdf_uniformity",
    "mixture_loglik",
    "rank_uniformity_table",
    "run_sbc",
    "sbc_priors",
    "sbc_ranks",
    "simulate_from_prior",
    "thin_evenly",
]

#: Name given to the shared variable that holds the observed data inside :class:`SBCFitter`.
DATA_NAME = "x_data"
#: Family-wise level of the verdict in :func:`rank_uniformity_table`.
ALPHA = 0.05

_REQUIRED_PRIORS = ("weights_alpha", "means_mu", "means_sigma", "sigma_scale")


# --------------------------------------------------------------------------------------
# priors and prior simulation
# --------------------------------------------------------------------------------------


def sbc_priors(covariance_type: str = "full") -> dict[str, float]:
    """The fixed (data-independent) priors used for SBC of the GMM.

    ``weights_alpha = 2`` (symmetric Dirichlet that keeps components populated with a
    hundred-odd observations; under Dirichlet(1, 1) the smaller weight is below 0.03 with
    probability 6 %, i.e. a component of ~4 points),
    ``means_mu = 0``, ``means_sigma = 2``, ``sigma_scale = 1`` (HalfNormal component sds),
    and ``lkj_eta = 2`` for "full"/"tied".  Components therefore range from well separated
    to heavily overlapping, which is the regime where mixture inference is hardest.
    """
    priors = {"weights_alpha": 2.0, "means_mu": 0.0, "means_sigma": 2.0, "sigma_scale": 1.0}
    if covariance_type in ("full", "tied"):
        priors["lkj_eta"] = 2.0
    return priors


def _check_fixed_priors(priors: Mapping[str, Any], covariance_type: str) -> dict[str, Any]:
    required = _REQUIRED_PRIORS + (("lkj_eta",) if covariance_type in ("full", "tied") else ())
    missing = [key for key in required if key not in priors]
    if missing:
        raise ValueError(
            f"SBC needs every prior given explicitly; missing {missing}. The defaults of "
            "build_gmm_model are scaled to the data, so the prior would depend on the "
            "simulated data and the rank statistics would not be uniform even for exact "
            "inference. Start from bayesgmm.gmm.calibration.sbc_priors()."
        )
    return dict(priors)


@dataclass
class PriorSimulation:
    """Parameters drawn from the prior and one data set simulated from each draw.

    Attributes
    ----------
    labels : list of str
        Reporting parameter names (``"weights[0]"``, ``"means[1,0]"``, ``"sd[0,1]"``,
        ``"corr[0,0,1]"``, ...), as :func:`bayesgmm.gmm.crosscheck.flatten_reporting`.
    truth : ndarray of shape (n_sims, n_params)
        The reporting parameters of each prior draw.
    data : ndarray of shape (n_sims, n_obs, n_features)
        One data set per prior draw.
    n_components, covariance_type, order_feature, priors
        The model settings (as passed to :func:`bayesgmm.gmm.model.build_gmm_model`).
    weights, means, chol_cov : ndarray
        The true mixture of each draw: (n_sims, K), (n_sims, K, D), (n_sims, K, D, D)
        (Cholesky factors of the component covariances).
    missing : ndarray of bool (n_obs, n_features) or None
        The entries removed (NaN in ``data``), one mask for every replication (missing
        completely at random, drawn once, independent of the parameters), or None.
    complete_data : ndarray (n_sims, n_obs, n_features) or None
        The data before removal (the true values of the missing entries), or None.
    """

    labels: list[str]
    truth: np.ndarray
    data: np.ndarray
    n_components: int
    covariance_type: str
    order_feature: int | None
    priors: dict[str, Any]
    weights: np.ndarray
    means: np.ndarray
    chol_cov: np.ndarray
    missing: np.ndarray | None = None
    complete_data: np.ndarray | None = None

    @property
    def n_sims(self) -> int:
        return int(self.truth.shape[0])


def simulate_from_prior(
    n_sims: int,
    n_obs: int,
    n_features: int,
    *,
    n_components: int = 2,
    covariance_type: str = "full",
    priors: Mapping[str, Any] | None = None,
    order_feature: int | None = 0,
    seed: int | None = None,
    missing_fraction: float = 0.0,
) -> PriorSimulation:
    """Draw ``n_sims`` parameter sets from the prior and one data set from each.

    Uses :func:`pymc.sample_prior_predictive` on the model of
    :func:`bayesgmm.gmm.model.build_gmm_model`, so the draws come from the model's own
    prior (ordered means included) and its own generative method for ``x``.

    Parameters
    ----------
    n_sims : int
        Number of prior draws (SBC replications).
    n_obs, n_features : int
        Shape of each simulated data set.
    n_components, covariance_type, order_feature
        As in :func:`bayesgmm.gmm.model.build_gmm_model`.
    priors : dict, optional
        Fixed priors with every key given (default :func:`sbc_priors`).  Data-scaled
        defaults are refused: they make the prior a function of the data, which breaks SBC.
    seed : int, optional
    missing_fraction : float in [0, 1), default 0
        Remove this fraction of the entries (NaN), missing completely at random: one mask
        for every replication, drawn once (seeded by ``seed``) with at least one observed
        entry per row; the model of the fit marginalises them.  SBC stays exact because
        the mask does not depend on the parameters.

    Returns
    -------
    PriorSimulation
    """
    import pymc as pm

    from bayesgmm.gmm.crosscheck import flatten_reporting, posterior_reporting_parameters
    from bayesgmm.gmm.model import OBS_VAR, build_gmm_model

    priors = _check_fixed_priors(
        sbc_priors(covariance_type) if priors is None else priors, covariance_type
    )
    # the data only set the shape (and the likelihood's centring constant, which does not
    # change the density); the priors are all fixed
    model = build_gmm_model(
        np.zeros((n_obs, n_features)),
        n_components=n_components,
        covariance_type=covariance_type,
        priors=priors,
        order_feature=order_feature,
    )
    idata = pm.sample_prior_predictive(draws=n_sims, model=model, random_seed=seed)
    prior = idata["prior"].to_dataset()
    labels, truth = flatten_reporting(
        posterior_reporting_parameters(prior, covariance_type), covariance_type, n_sample_dims=2
    )
    data = idata["prior_predictive"][OBS_VAR].transpose("chain", "draw", ...).values
    data = data.reshape(n_sims, n_obs, n_features)
    missing = complete = None
    if missing_fraction:
        if not 0.0 < missing_fraction < 1.0:
            raise ValueError(f"missing_fraction must be in [0, 1), got {missing_fraction!r}")
        mask_rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(1)[0])
        missing = mask_rng.random((n_obs, n_features)) < missing_fraction
        full = np.flatnonzero(missing.all(axis=1))  # keep one entry of such rows
        missing[full, mask_rng.integers(0, n_features, full.size)] = False
        complete = data
        data = np.where(missing, np.nan, data)
    return PriorSimulation(
        labels=labels,
        truth=truth.reshape(n_sims, -1),
        data=data,
        missing=missing,
        complete_data=complete,
        n_components=n_components,
        covariance_type=covariance_type,
        order_feature=order_feature,
        priors=priors,
        **{
            name: prior[name].transpose("chain", "draw", ...).values.reshape(n_sims, *shape)
            for name, shape in (
                ("weights", (n_components,)),
                ("means", (n_components, n_features)),
                ("chol_cov", (n_components, n_features, n_features)),
            )
        },
    )


# --------------------------------------------------------------------------------------
# ranks
# --------------------------------------------------------------------------------------


def thin_evenly(draws: np.ndarray, n_keep: int) -> np.ndarray:
    """``n_keep`` draws evenly spaced over the first axis of ``draws`` (n_draws, ...).

    With chains concatenated along that axis and ``n_draws / n_keep`` at least the
    autocorrelation time (``n_draws / ESS``), the kept draws are close to independent,
    as SBC requires (Talts et al. 2018, Sec. 5).
    """
    n = draws.shape[0]
    if not 1 <= n_keep <= n:
        raise ValueError(f"n_keep must be in [1, {n}], got {n_keep}.")
    idx = np.floor((np.arange(n_keep) + 0.5) * n / n_keep).astype(int)
    return draws[idx]


def sbc_ranks(
    truth: np.ndarray, draws: np.ndarray, rng: np.random.Generator | int | None = None
) -> np.ndarray:
    """Rank of each true value among posterior draws: ``#{draws < truth}``.

    Parameters
    ----------
    truth : array of shape (n_params,)
    draws : array of shape (L, n_params)
    rng : Generator or seed
        Ties (``draws == truth``) are broken uniformly at random, so that the rank of a
        parameter with atoms is still uniform on ``{0, ..., L}``.

    Returns
    -------
    ndarray of int, shape (n_params,), values in ``0..L``
    """
    truth = np.asarray(truth, dtype=np.float64)
    draws = np.asarray(draws, dtype=np.float64)
    if draws.ndim != 2 or truth.shape != draws.shape[1:]:
        raise ValueError(
            f"draws must have shape (L, n_params) with n_params = {truth.shape}, got {draws.shape}."
        )
    below = (draws < truth).sum(axis=0)
    ties = (draws == truth).sum(axis=0)
    if np.any(ties):
        rng = np.random.default_rng(rng)
        below = below + rng.integers(0, ties + 1)
    return below.astype(int)


def mixture_loglik(
    X: np.ndarray, weights: np.ndarray, means: np.ndarray, chol_cov: np.ndarray
) -> np.ndarray:
    """Log-likelihood ``sum_n log sum_k w_k N(x_n | mu_k, L_k L_k^T)`` per parameter draw.

    Parameters
    ----------
    X : array of shape (n_obs, D)
    weights : array of shape (S, K)
    means : array of shape (S, K, D)
    chol_cov : array of shape (S, K, D, D)
        Lower Cholesky factors of the component covariances.

    Returns
    -------
    ndarray of shape (S,)
        Used by :func:`run_sbc` as a joint test quantity: its rank is uniform under
        calibration like any function of the parameters and the data, and it reacts to
        errors that no single parameter shows (Modrák et al. 2023, arXiv:2211.02383).
        With NaN in ``X``, the log-likelihood of the observed coordinates (the missing ones
        marginalised).
    """
    if np.isnan(X).any():
        from bayesgmm.gmm.incomplete import observed_log_prob

        cov = chol_cov @ np.swapaxes(chol_cov, -1, -2)
        return np.array(
            [
                observed_log_prob(X, w, m, c)[0].sum()
                for w, m, c in zip(weights, means, cov, strict=True)
            ]
        )
    return log_likelihood_draws(X, weights, means, chol_cov).sum(axis=-1)


# --------------------------------------------------------------------------------------
# rank-uniformity statistics
# --------------------------------------------------------------------------------------


def _check_ranks(ranks: Any, n_ranks: int) -> np.ndarray:
    r = np.asarray(ranks)
    if r.ndim != 1 or r.size == 0:
        raise ValueError(f"ranks must be a non-empty 1-D array, got shape {r.shape}.")
    if not np.all((r >= 0) & (r <= n_ranks) & (r == np.round(r))):
        raise ValueError(f"ranks must be integers in [0, {n_ranks}].")
    return r.astype(int)


def chi2_uniformity(ranks: Any, n_ranks: int, n_bins: int = 10) -> tuple[float, float]:
    """Pearson chi-square test of ranks against the discrete uniform on ``{0..n_ranks}``.

    Ranks are grouped into ``n_bins`` bins of consecutive values (bin ``b`` holds the
    ranks ``r`` with ``floor(r * n_bins / (n_ranks + 1)) == b``); the expected count of a
    bin is ``n * (its number of rank values) / (n_ranks + 1)``, so bins need not be equal.

    Returns
    -------
    (statistic, p_value)
        p-value from the chi-square distribution with ``n_bins - 1`` degrees of freedom
        (keep the expected count per bin >= 5 for the approximation).
    """
    r = _check_ranks(ranks, n_ranks)
    if not 2 <= n_bins <= n_ranks + 1:
        raise ValueError(f"n_bins must be in [2, {n_ranks + 1}], got {n_bins}.")
    values = np.arange(n_ranks + 1)
    bin_of = values * n_bins // (n_ranks + 1)
    expected = r.size * np.bincount(bin_of, minlength=n_bins) / (n_ranks + 1)
    observed = np.bincount(bin_of[r], minlength=n_bins)
    stat = float(np.sum((observed - expected) ** 2 / expected))
    return stat, float(stats.chi2.sf(stat, n_bins - 1))


def _pointwise_tail(counts: np.ndarray, n: int, z: np.ndarray) -> np.ndarray:
    """Two-sided binomial tail probability of ``counts`` (..., J) under Binomial(n, z_j)."""
    lower = stats.binom.cdf(counts, n, z)
    upper = stats.binom.sf(counts - 1, n, z)
    return np.minimum(1.0, 2.0 * np.minimum(lower, upper))


def _ecdf_counts(r: np.ndarray, n_ranks: int) -> np.ndarray:
    """``#{r_i < j}`` for j = 1..n_ranks, along the last axis."""
    hist = np.apply_along_axis(np.bincount, -1, r, minlength=n_ranks + 1)
    return np.cumsum(hist, axis=-1)[..., :-1]


_NULL_CACHE: dict[tuple[int, int, int, int], np.ndarray] = {}


def _null_min_tail(n: int, n_ranks: int, n_mc: int, seed: int) -> np.ndarray:
    """Monte Carlo null distribution of the smallest pointwise tail probability."""
    key = (n, n_ranks, n_mc, seed)
    if key not in _NULL_CACHE:
        rng = np.random.default_rng(seed)
        z = np.arange(1, n_ranks + 1) / (n_ranks + 1)
        sims = rng.integers(0, n_ranks + 1, size=(n_mc, n))
        counts = _ecdf_counts(sims, n_ranks)
        _NULL_CACHE[key] = np.sort(_pointwise_tail(counts, n, z).min(axis=1))
    return _NULL_CACHE[key]


def ecdf_uniformity(
    ranks: Any, n_ranks: int, *, n_mc: int = 4000, seed: int = 0
) -> tuple[float, float, float]:
    """ECDF test of discrete rank uniformity with a simultaneous band (Säilynoja et al. 2022).

    The ECDF of the ranks is evaluated at ``j = 1..n_ranks``: ``F_j = #{r_i < j} / n``;
    under uniformity ``n F_j ~ Binomial(n, j / (n_ranks + 1))`` exactly.  The statistic is
    the smallest two-sided pointwise binomial tail probability over ``j``; its null
    distribution (which accounts for the dependence between the ``j``) is simulated by
    Monte Carlo, so the p-value is exact up to Monte Carlo error (``n_mc`` draws) and the
    test is equivalent to asking whether the ECDF leaves the simultaneous band of
    :func:`ecdf_band`.

    Returns
    -------
    (max_deviation, min_pointwise_tail, p_value)
        ``max_deviation = max_j |F_j - j / (n_ranks + 1)|`` (a KS-type distance, reported
        for reading), the statistic, and its p-value ``(1 + #{null <= stat}) / (1 + n_mc)``.
    """
    r = _check_ranks(ranks, n_ranks)
    n = r.size
    z = np.arange(1, n_ranks + 1) / (n_ranks + 1)
    counts = _ecdf_counts(r, n_ranks)
    stat = float(_pointwise_tail(counts, n, z).min())
    null = _null_min_tail(n, n_ranks, n_mc, seed)
    p = (1.0 + np.searchsorted(null, stat, side="right")) / (1.0 + n_mc)
    return float(np.max(np.abs(counts / n - z))), stat, float(p)


def ecdf_band(
    n: int, n_ranks: int, alpha: float = 0.05, *, n_mc: int = 4000, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Simultaneous ``1 - alpha`` band for the rank ECDF of ``n`` uniform ranks.

    Returns ``(z, lower, upper)``: evaluation points ``j / (n_ranks + 1)`` and the band
    ``F_j`` must stay within for all ``j`` at once (binomial quantiles at the adjusted
    pointwise level ``gamma``, the ``alpha`` quantile of the null minimum tail
    probability; Säilynoja et al. 2022).
    """
    null = _null_min_tail(n, n_ranks, n_mc, seed)
    gamma = float(np.quantile(null, alpha))
    z = np.arange(1, n_ranks + 1) / (n_ranks + 1)
    lower = stats.binom.ppf(gamma / 2, n, z) / n
    upper = stats.binom.ppf(1 - gamma / 2, n, z) / n
    return z, lower, upper


def rank_uniformity_table(
    ranks: np.ndarray,
    labels: list[str],
    n_ranks: int,
    *,
    n_bins: int = 10,
    alpha: float = ALPHA,
    n_mc: int = 4000,
    seed: int = 0,
) -> pd.DataFrame:
    """Rank-uniformity statistics, one row per parameter.

    Parameters
    ----------
    ranks : array of shape (n_sims, n_params)
    labels : list of str, length n_params
    n_ranks : int
        L, the number of posterior draws per replication (ranks are in ``0..L``).
    n_bins : int
        Bins of the chi-square test.
    alpha : float
        Family-wise level.  Each parameter gets two tests, so the Bonferroni per-test
        level is ``alpha / (2 n_params)``; ``passed`` is False when either p-value is below
        it.  The tests are positively dependent (e.g. ``weights[1] = 1 - weights[0]`` has
        mirrored ranks), so the correction is conservative.  Unadjusted, about
        ``2 n_params alpha`` false alarms would be expected from perfectly calibrated
        inference.

    Returns
    -------
    pandas.DataFrame
        Index ``parameter``; columns ``n_sims``, ``mean_rank`` (expected ``L/2``; lower:
        the posterior sits too high, and vice versa), ``outer_frac`` (fraction of ranks in
        the lowest and highest tenth of ``0..L``; expected ``outer_expected`` ~ 0.2, more:
        U shape, over-confident posterior; less: hump, over-dispersed posterior), ``chi2``,
        ``chi2_p``, ``ecdf_max_dev``, ``ecdf_p``, ``p_min``, ``passed``.  ``attrs`` holds
        ``alpha``, ``per_test_level``, ``n_ranks``, ``n_bins``, ``outer_expected``.
    """
    ranks = np.asarray(ranks)
    if ranks.ndim != 2 or ranks.shape[1] != len(labels):
        raise ValueError(
            f"ranks must have shape (n_sims, {len(labels)}) to match labels, got {ranks.shape}."
        )
    level = alpha / (2 * len(labels))
    edge = (n_ranks + 1) // 10  # the lowest and highest tenth of the rank values
    rows = []
    for j, label in enumerate(labels):
        r = ranks[:, j]
        chi2, chi2_p = chi2_uniformity(r, n_ranks, n_bins)
        max_dev, _, ecdf_p = ecdf_uniformity(r, n_ranks, n_mc=n_mc, seed=seed)
        p_min = min(chi2_p, ecdf_p)
        rows.append(
            {
                "parameter": label,
                "n_sims": r.size,
                "mean_rank": float(r.mean()),
                "outer_frac": float(np.mean((r < edge) | (r > n_ranks - edge))),
                "chi2": chi2,
                "chi2_p": chi2_p,
                "ecdf_max_dev": max_dev,
                "ecdf_p": ecdf_p,
                "p_min": p_min,
                "passed": bool(p_min >= level),
            }
        )
    table = pd.DataFrame(rows).set_index("parameter")
    table.attrs.update(
        alpha=alpha,
        per_test_level=level,
        n_ranks=n_ranks,
        n_bins=n_bins,
        outer_expected=2 * edge / (n_ranks + 1),
    )
    return table


# --------------------------------------------------------------------------------------
# the fit path: EM -> MAP -> nutpie NUTS, compiled once
# --------------------------------------------------------------------------------------


def _with_shared_data(model, name: str = DATA_NAME):
    """A copy of ``model`` whose observed data is a shared variable called ``name``.

    :func:`bayesgmm.gmm.model.build_gmm_model` stores the data as a constant; swapping it for
    a shared variable (same shape) lets one compiled logp serve every simulated data set.
    """
    import pytensor
    from pymc.model.fgraph import (
        ModelObservedRV,
        fgraph_from_model,
        model_from_fgraph,
        model_named,
    )

    fgraph, _ = fgraph_from_model(model, inlined_views=True)
    [node] = [n for n in fgraph.apply_nodes if isinstance(n.op, ModelObservedRV)]
    const = node.inputs[1]
    shared = pytensor.shared(np.asarray(const.data), name=name, shape=const.type.shape)
    fgraph.replace(const, model_named(shared, name, *node.op.dims), import_missing=True)
    return model_from_fgraph(fgraph, mutate_fgraph=True)


class _MapFinder:
    """L-BFGS-B on the unconstrained space of ``-model.logp(jacobian=False)``, compiled once.

    The objective and optimiser of :func:`bayesgmm.inference.find_map` (``pm.find_MAP``
    with ``jitter=False``), without recompiling per data set.
    """

    def __init__(self, model):
        import pytensor.tensor as pt
        from pymc.pytensorf import compile as compile_pymc
        from pytensor.graph import graph_replace

        self.free_rvs = list(model.free_RVs)
        value_vars = [model.rvs_to_values[rv] for rv in self.free_rvs]
        point = model.initial_point()
        self.shapes = [np.shape(point[v.name]) for v in value_vars]
        sizes = [int(np.prod(s)) for s in self.shapes]
        flat = pt.dvector("flat_point")
        offsets = np.concatenate([[0], np.cumsum(sizes)])
        replace = {
            v: flat[offsets[i] : offsets[i + 1]].reshape(self.shapes[i])
            for i, v in enumerate(value_vars)
        }
        loss = -model.logp(jacobian=False)
        grad = pt.concatenate([g.ravel() for g in pt.grad(loss, value_vars)])
        loss, grad = graph_replace([loss, grad], replace)
        with model:
            self._loss_grad = compile_pymc([flat], [loss, grad])
        constrained = [rv.type() for rv in self.free_rvs]
        outs = []
        for rv, c in zip(self.free_rvs, constrained, strict=True):
            tr = model.rvs_to_transforms.get(rv)
            outs.append((c if tr is None else tr.forward(c, *rv.owner.inputs)).ravel())
        with model:
            self._forward = compile_pymc(constrained, pt.concatenate(outs))

    def to_unconstrained(self, values: Mapping[str, np.ndarray]) -> np.ndarray:
        """Flat unconstrained vector (model's free-RV order) from constrained values."""
        return np.asarray(self._forward(*[values[rv.name] for rv in self.free_rvs]))

    def finite(self, x: np.ndarray) -> bool:
        """Whether the posterior density and its gradient are finite at ``x``."""
        loss, grad = self._loss_grad(x)
        return bool(np.isfinite(loss) and np.all(np.isfinite(grad)))

    def __call__(self, x0: np.ndarray) -> tuple[np.ndarray, bool]:
        """Optimum from ``x0`` and whether it is a finite converged point."""

        def fun(x):
            loss, grad = self._loss_grad(x)
            return float(loss), np.asarray(grad)

        if not self.finite(x0):
            return x0, False
        res = optimize.minimize(fun, x0, jac=True, method="L-BFGS-B")
        ok = bool(res.success) and bool(np.isfinite(res.fun))
        return (np.asarray(res.x) if np.isfinite(res.fun) else x0), ok


class _FixedStart:
    """nutpie initial-point function: the same unconstrained point for every chain."""

    def __init__(self, point: np.ndarray):
        self.point = np.array(point, dtype=np.float64)

    def __call__(self, seed: Any = None) -> np.ndarray:
        return self.point.copy()


class SBCFitter:
    """The EM-initialised NUTS pipeline of :class:`bayesgmm.BayesGMM`, compiled once.

    Parameters
    ----------
    n_obs, n_features : int
        Shape of every data set that will be fitted.
    n_components, covariance_type, priors, order_feature
        As in :func:`bayesgmm.gmm.model.build_gmm_model` (priors fixed, see
        :func:`sbc_priors`).
    chains, draws, tune : int
        nutpie settings per data set (all chains start at the MAP, no jitter, as in
        :func:`bayesgmm.inference.sample_nuts`).
    em_n_init : int
        EM restarts.
    missing : ndarray of bool (n_obs, n_features), optional
        The entries that are NaN in every data set (:attr:`PriorSimulation.missing`): the
        model marginalises them; the compiled model serves one mask.

    Notes
    -----
    Per data set, :meth:`fit` runs EM (:class:`bayesgmm.GaussianMixture`, ``em_n_init``
    restarts), orders the components on ``order_feature``, maps them to initial values
    (:func:`bayesgmm.gmm.model.initial_values_from_em`), maximises the posterior density
    (L-BFGS-B, the objective of :func:`bayesgmm.inference.find_map`) and runs nutpie from
    the optimum.  The PyMC model and nutpie's numba code are compiled once (tens of seconds
    each); each data set then only swaps the shared data (nutpie ``with_data``).  If EM or
    the MAP fails, the chain starts from the last good point (EM estimate, else the
    model's default initial point) and the failure is recorded, never dropped.
    """

    def __init__(
        self,
        n_obs: int,
        n_features: int,
        *,
        n_components: int = 2,
        covariance_type: str = "full",
        priors: Mapping[str, Any] | None = None,
        order_feature: int | None = 0,
        chains: int = 2,
        draws: int = 1000,
        tune: int = 1000,
        em_n_init: int = 5,
        missing: np.ndarray | None = None,
    ):
        import nutpie

        from bayesgmm.gmm.model import build_gmm_model

        self.covariance_type = covariance_type
        self.n_components = n_components
        self.order_feature = order_feature
        self.priors = _check_fixed_priors(
            sbc_priors(covariance_type) if priors is None else priors, covariance_type
        )
        self.chains, self.draws, self.tune, self.em_n_init = chains, draws, tune, em_n_init
        self.shape = (n_obs, n_features)
        self.missing = None if missing is None else np.asarray(missing, dtype=bool)
        template_data = np.zeros(self.shape)
        if self.missing is not None:
            template_data[self.missing] = np.nan
        template = build_gmm_model(
            template_data,
            n_components=n_components,
            covariance_type=covariance_type,
            priors=self.priors,
            order_feature=order_feature,
        )
        self.model = _with_shared_data(template)
        self._data = self.model[DATA_NAME]
        self._map = _MapFinder(self.model)
        point = self.model.initial_point()  # support points, unconstrained space
        self._default_start = np.concatenate(
            [np.ravel(point[self.model.rvs_to_values[rv].name]) for rv in self._map.free_rvs]
        )
        self._map(self._default_start)  # warm-up: the first call JIT-compiles
        self._compiled = nutpie.compile_pymc_model(self.model, jitter_rvs=set(), backend="numba")

    def _em_start(self, X: np.ndarray, seed: int) -> np.ndarray:
        from bayesgmm.em.estimator import GaussianMixture
        from bayesgmm.gmm.model import initial_values_from_em

        em = GaussianMixture(
            self.n_components,
            covariance_type=self.covariance_type,
            n_init=self.em_n_init,
            random_state=seed,
        ).fit(X)
        if self.order_feature is not None:
            em.reorder_components(np.argsort(em.means_[:, self.order_feature]))
        init = initial_values_from_em(
            self.model, em.weights_, em.means_, em.covariances_, self.covariance_type
        )
        return self._map.to_unconstrained(init)

    def fit(
        self, X: np.ndarray, seed: int | None = None, *, draws: int | None = None
    ) -> tuple[Any, dict[str, Any]]:
        """Posterior draws for data ``X`` (n_obs, n_features).

        ``draws`` overrides the fitter's draws per chain for this call.

        Returns
        -------
        (trace, info)
            nutpie's DataTree (``posterior``, ``sample_stats``) and a dict with ``em_ok``,
            ``map_ok``, ``start_retries`` (times nutpie refused the start and it was moved
            by 1e-4) and the seconds spent in each stage.
        """
        import nutpie

        X = np.ascontiguousarray(X, dtype=np.float64)
        if X.shape != self.shape:
            raise ValueError(f"X must have shape {self.shape}, got {X.shape}.")
        mask = np.zeros(self.shape, dtype=bool) if self.missing is None else self.missing
        if not np.array_equal(np.isnan(X), mask):
            raise ValueError("X must have NaN exactly at the fitter's missing entries.")
        em_seed, nuts_seed = (int(s) for s in np.random.SeedSequence(seed).generate_state(2))
        info: dict[str, Any] = {"em_ok": True, "map_ok": True}
        t0 = time.perf_counter()
        self._data.set_value(X)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                start = self._em_start(X, em_seed)
        except Exception:  # collapsed component, tied ordered means, ...
            info["em_ok"] = False
            start = self._default_start
        t1 = time.perf_counter()
        start, info["map_ok"] = self._map(start)
        if not self._map.finite(start):  # EM start outside the support: default start
            start, _ = self._map(self._default_start)
        t2 = time.perf_counter()
        data_model = self._compiled.with_data(**{DATA_NAME: X})
        rng = np.random.default_rng(nuts_seed)
        info["start_retries"] = 0
        while True:
            compiled = dataclasses.replace(data_model, initial_point_func=_FixedStart(start))
            try:
                trace = nutpie.sample(
                    compiled,
                    draws=self.draws if draws is None else draws,
                    tune=self.tune,
                    chains=self.chains,
                    seed=nuts_seed,
                    progress_bar=False,
                    save_warmup=False,
                )
                break
            except RuntimeError as err:
                # nutpie sets the initial mass matrix from the gradient, so a start where a
                # gradient entry is exactly 0 (e.g. EM weights of exactly 1/K) is refused;
                # move the start by 1e-4 (unconstrained units) and try again
                if "initial" not in str(err) or info["start_retries"] >= 3:
                    raise
                info["start_retries"] += 1
                start = start + 1e-4 * rng.standard_normal(start.shape)
        info.update(seconds_em=t1 - t0, seconds_map=t2 - t1, seconds_nuts=time.perf_counter() - t2)
        return trace, info


# --------------------------------------------------------------------------------------
# the SBC loop
# --------------------------------------------------------------------------------------


@dataclass
class SBCResult:
    """Outcome of :func:`run_sbc`.

    Attributes
    ----------
    labels : list of str
        The reporting parameters of the simulation, then ``"loglik"`` if it was ranked.
    ranks : ndarray of int, shape (n_sims, n_params), values in ``0..n_ranks``
    n_ranks : int
        L, the number of thinned posterior draws each rank is taken among.
    diagnostics : pandas.DataFrame
        One row per replication: ``divergences``, ``treedepth_hits``, ``min_bfmi``,
        ``min_ess_bulk``, ``max_r_hat`` (over the reporting parameters), ``em_ok``,
        ``map_ok``, ``start_retries`` (see :meth:`SBCFitter.fit`), ``refits`` (re-runs
        with doubled draws because of low ESS), ``draws`` (per chain, of the run used),
        ``seconds``.
    seconds : float
        Wall time of the loop (compilation excluded; see ``compile_seconds``).
    compile_seconds : float
    settings : dict
        Sizes, model, priors and sampler settings of the run.
    """

    labels: list[str]
    ranks: np.ndarray
    n_ranks: int
    diagnostics: pd.DataFrame
    seconds: float
    compile_seconds: float = 0.0
    settings: dict[str, Any] = field(default_factory=dict)

    def table(self, **kwargs: Any) -> pd.DataFrame:
        """:func:`rank_uniformity_table` of the ranks (keyword arguments passed on)."""
        return rank_uniformity_table(self.ranks, self.labels, self.n_ranks, **kwargs)

    @property
    def imputation_coverage(self) -> float | None:
        """Fraction of the removed entries inside their central posterior predictive
        interval (``settings["impute_prob"]``), over all replications; None without
        missing entries."""
        d = self.diagnostics
        if "imputed_total" not in d:
            return None
        return float(d["imputed_covered"].sum() / d["imputed_total"].sum())

    def warning_summary(self) -> dict[str, int]:
        """Number of replications with each kind of sampler warning."""
        d = self.diagnostics
        return {
            "replications": len(d),
            "with_divergences": int((d["divergences"] > 0).sum()),
            "with_treedepth_hits": int((d["treedepth_hits"] > 0).sum()),
            "with_low_bfmi": int((d["min_bfmi"] < 0.3).sum()),
            "with_r_hat_above_1.01": int((d["max_r_hat"] > 1.01).sum()),
            "refitted_for_low_ess": int((d["refits"] > 0).sum()),
            "with_ess_bulk_below_L": int((d["min_ess_bulk"] < self.n_ranks).sum()),
            "em_failed": int((~d["em_ok"]).sum()),
            "map_failed": int((~d["map_ok"]).sum()),
            "start_moved": int((d["start_retries"] > 0).sum()),
        }


def _draw_diagnostics(trace: Any, labels: list[str], draws: np.ndarray) -> dict[str, float]:
    import arviz_stats as azs
    import xarray as xr

    from bayesgmm.verdict import sampler_diagnostics

    diag = sampler_diagnostics(trace)
    da = xr.DataArray(draws, dims=("chain", "draw", "parameter"), coords={"parameter": labels})
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ess = azs.ess(da, method="bulk").values
        rhat = azs.rhat(da).values if draws.shape[0] > 1 else np.full(len(labels), np.nan)
    return {
        "divergences": int(diag["n_divergences"] or 0),
        "treedepth_hits": int(diag["treedepth_hits"] or 0),
        "min_bfmi": float(diag["min_bfmi"]) if diag["min_bfmi"] is not None else np.nan,
        "min_ess_bulk": float(np.nanmin(ess)),
        "max_r_hat": float(np.nanmax(rhat)) if np.any(np.isfinite(rhat)) else np.nan,
    }


def _imputation_coverage(X, complete, post, prob, n_draws, rng) -> dict[str, int]:
    """How many missing entries of ``X`` the central ``prob`` posterior predictive
    intervals cover (true values: ``complete``)."""
    from bayesgmm.gmm.incomplete import posterior_predictive_draws

    sample = {
        name: post[name].transpose("chain", "draw", ...).values
        for name in ("weights", "means", "chol_cov")
    }
    sample = {name: v.reshape(-1, *v.shape[2:]) for name, v in sample.items()}
    keep = thin_evenly(np.arange(len(sample["weights"])), min(n_draws, len(sample["weights"])))
    chol = sample["chol_cov"][keep]
    params = zip(
        sample["weights"][keep],
        sample["means"][keep],
        chol @ np.swapaxes(chol, -1, -2),
        strict=True,
    )
    res = posterior_predictive_draws(X, params, None, target="measurement", prob=prob, rng=rng)
    miss = res.missing
    inside = (res.low[miss] <= complete[miss]) & (complete[miss] <= res.high[miss])
    return {"imputed_covered": int(inside.sum()), "imputed_total": int(miss.sum())}


def run_sbc(
    simulation: PriorSimulation,
    *,
    n_ranks: int = 99,
    chains: int = 2,
    draws: int = 1000,
    tune: int = 1000,
    em_n_init: int = 5,
    seed: int | None = None,
    max_refits: int = 1,
    loglik: bool = True,
    fitter: SBCFitter | None = None,
    callback: Callable[[int, dict[str, Any]], None] | None = None,
    impute_prob: float = 0.9,
    impute_draws: int = 500,
) -> SBCResult:
    """Fit every simulated data set and rank the true parameters among posterior draws.

    Parameters
    ----------
    simulation : PriorSimulation
        From :func:`simulate_from_prior`.
    n_ranks : int, default 99
        L: posterior draws kept per replication (thinned evenly from ``chains * draws``),
        so ranks take ``L + 1`` values; L = 99 gives 100 values, which 10 or 20 bins
        divide evenly.  ``chains * draws / L`` should exceed the autocorrelation time;
        replications whose smallest bulk ESS is below L are counted in
        :meth:`SBCResult.warning_summary`.
    chains, draws, tune, em_n_init
        Passed to :class:`SBCFitter` (ignored if ``fitter`` is given).
    seed : int, optional
        Seeds EM, NUTS and rank tie-breaking per replication.
    max_refits : int, default 1
        If the smallest bulk ESS of a replication is below ``n_ranks``, sample again with
        twice the draws, at most this many times (Talts et al. 2018, Sec. 5).
    loglik : bool, default True
        Also rank the log-likelihood of the replication's data (label ``"loglik"``,
        :func:`mixture_loglik`), a joint test quantity.
    fitter : SBCFitter, optional
        A compiled fitter to re-use (its settings must match ``simulation``).
    callback : callable, optional
        ``callback(i, row)`` after each replication (progress reporting).
    impute_prob, impute_draws
        With missing entries (``simulation.missing``): per replication, the central
        ``impute_prob`` posterior predictive interval of every missing entry
        (:func:`bayesgmm.gmm.incomplete.posterior_predictive_draws` over ``impute_draws``
        posterior draws thinned evenly) and whether it covers the removed true value:
        ``imputed_covered`` / ``imputed_total`` in ``diagnostics``,
        :attr:`SBCResult.imputation_coverage` overall.

    Returns
    -------
    SBCResult
        Replications with sampler warnings are kept (dropping them would condition on the
        data and bias the ranks); their counts are in ``diagnostics``.
    """
    from bayesgmm.gmm.crosscheck import flatten_reporting, posterior_reporting_parameters

    n_sims, n_obs, n_features = simulation.data.shape
    t0 = time.perf_counter()
    if fitter is None:
        fitter = SBCFitter(
            n_obs,
            n_features,
            n_components=simulation.n_components,
            covariance_type=simulation.covariance_type,
            priors=simulation.priors,
            order_feature=simulation.order_feature,
            chains=chains,
            draws=draws,
            tune=tune,
            em_n_init=em_n_init,
            missing=simulation.missing,
        )
    compile_seconds = time.perf_counter() - t0
    if fitter.chains * fitter.draws < n_ranks:
        raise ValueError(
            f"n_ranks={n_ranks} exceeds the {fitter.chains * fitter.draws} posterior draws."
        )
    seeds = np.random.SeedSequence(seed).generate_state(n_sims)
    rng = np.random.default_rng(seed)
    labels_out = [*simulation.labels, *(["loglik"] if loglik else [])]
    ranks = np.empty((n_sims, len(labels_out)), dtype=int)
    rows = []
    t1 = time.perf_counter()
    for i in range(n_sims):
        ts = time.perf_counter()
        n_draws = fitter.draws
        for attempt in range(max_refits + 1):
            trace, info = fitter.fit(simulation.data[i], seed=int(seeds[i]), draws=n_draws)
            post = trace["posterior"].to_dataset()
            labels, draws_ = flatten_reporting(
                posterior_reporting_parameters(post, simulation.covariance_type),
                simulation.covariance_type,
                n_sample_dims=2,
            )
            diag = _draw_diagnostics(trace, labels, draws_)
            if diag["min_ess_bulk"] >= n_ranks or attempt == max_refits:
                break
            n_draws *= 2  # Talts et al. (2018): too few effective draws -> sample longer
        if labels != simulation.labels:  # pragma: no cover - defensive
            raise RuntimeError(f"posterior labels {labels} != prior labels {simulation.labels}")
        keep = thin_evenly(np.arange(draws_.shape[0] * draws_.shape[1]), n_ranks)
        kept = draws_.reshape(-1, draws_.shape[-1])[keep]
        truth = simulation.truth[i]
        if loglik:
            X = simulation.data[i]
            sample = {
                name: post[name].transpose("chain", "draw", ...).values
                for name in ("weights", "means", "chol_cov")
            }
            sample = {name: v.reshape(-1, *v.shape[2:])[keep] for name, v in sample.items()}
            kept = np.column_stack([kept, mixture_loglik(X, **sample)])
            true_ll = mixture_loglik(
                X,
                simulation.weights[i : i + 1],
                simulation.means[i : i + 1],
                simulation.chol_cov[i : i + 1],
            )
            truth = np.append(truth, true_ll)
        ranks[i] = sbc_ranks(truth, kept, rng)
        row = {"replication": i, **diag, **info, "refits": attempt, "draws": n_draws}
        if simulation.missing is not None:
            row.update(
                _imputation_coverage(
                    simulation.data[i],
                    simulation.complete_data[i],
                    post,
                    impute_prob,
                    impute_draws,
                    rng,
                )
            )
        row["seconds"] = time.perf_counter() - ts
        rows.append(row)
        if callback is not None:
            callback(i, row)
    diagnostics = pd.DataFrame(rows).set_index("replication")
    return SBCResult(
        labels=labels_out,
        ranks=ranks,
        n_ranks=n_ranks,
        diagnostics=diagnostics,
        seconds=time.perf_counter() - t1,
        compile_seconds=compile_seconds,
        settings={
            "n_sims": n_sims,
            "n_obs": n_obs,
            "n_features": n_features,
            "n_components": simulation.n_components,
            "covariance_type": simulation.covariance_type,
            "order_feature": simulation.order_feature,
            "priors": simulation.priors,
            "chains": fitter.chains,
            "draws": fitter.draws,
            "tune": fitter.tune,
            "em_n_init": fitter.em_n_init,
            "n_ranks": n_ranks,
            "max_refits": max_refits,
            "seed": seed,
            "missing_entries": None
            if simulation.missing is None
            else int(simulation.missing.sum()),
            "impute_prob": impute_prob if simulation.missing is not None else None,
        },
    )
