"""Gibbs sampling of MPMA with hierarchical priors: Bayesian PMF for every component.

Each component ``c`` (global, user-local, item-local, in the matrix layouts of
:func:`bayesgmm.mpma.em.component_index`) is the Bayesian probabilistic matrix
factorisation of Salakhutdinov and Mnih (2008, ICML), with the biases as one more
coordinate of every entity::

    theta_r = (U_r, a_r) ~ Normal(mu_row, Lambda_row**-1)      rows with a rating
    theta_s = (V_s, b_s) ~ Normal(mu_col, Lambda_col**-1)      columns with a rating
    (mu, Lambda) ~ NormalWishart(0, beta0, wishart_scale * I, dim)   one per side
    R_n | c ~ Normal(offset + a_r + b_s + U_r . V_s, 1 / tau_c)
    tau_c ~ Gamma(noise_shape, noise_rate)        (or fixed: GibbsPriors.noise_sd)

The offset is the mean of the ratings the component is fitted on (fixed). Unlike the fixed
ridge penalties of MAP-EM (:mod:`bayesgmm.mpma.em`), the prior mean and full covariance
of the factors are learned, and predictions average over the posterior instead of using
its mode. The Gibbs sweep draws, per side, ``(mu, Lambda)`` given the entities, then
every entity given the other side (the kernel of :func:`bayesgmm.mpma.als.update_side`,
with noise), then ``tau``.

The mixture is combined as Chen et al. (2016) do it: every component is sampled alone on
its (sub-)matrices (the global one first; users and items are grouped by k-means on its
posterior-mean factors; each local component starts from the last global draw). The
mixture weights ``pi`` are then the MAP (under ``Dirichlet(weights_alpha)``) of the
mixture of the components' posterior predictive densities on a held-out validation
fraction of the training ratings, which the components never see. Weights fitted on the
ratings the components were sampled on would reward the components with the most
parameters (they fit their training ratings best, and predict new ones worst). With
``refit`` every component is then sampled again on all the ratings (held-out ones
included; same groups), and those draws predict: otherwise the components miss 5% of the
data, which on MovieLens-100K costs more than the local components add.

``implicit`` shifts every entity's prior mean by its implicit features (who rated what:
:mod:`bayesgmm.mpma.implicit`); ``(mu, Lambda)`` are then drawn on the shifted vectors.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.special import logsumexp
from scipy.stats import wishart

from bayesgmm._validation import check_real
from bayesgmm.em.gaussian import LOG_2PI
from bayesgmm.mpma.als import Factors, factor_means, update_side
from bayesgmm.mpma.em import (
    ComponentIndex,
    cluster_entities,
    component_index,
    local_factors_from_global,
    m_step_weights,
)
from bayesgmm.mpma.implicit import implicit_features, sample_link, sample_link_precision

__all__ = [
    "ComponentPosterior",
    "GibbsFit",
    "GibbsPriors",
    "fit_gibbs",
    "mixture_weights",
    "sample_component",
    "sample_normal_wishart",
]


@dataclass(frozen=True)
class GibbsPriors:
    """Hyperpriors of the Gibbs-sampled MPMA (rating units).

    Every field is a finite number > 0 (``weights_alpha`` >= 1; ``noise_sd`` may be
    None); checked on construction.

    Attributes
    ----------
    beta0 : float
        Normal-Wishart: the prior mean of the entity vectors is ``Normal(0, (beta0
        Lambda)**-1)``.
    wishart_scale : float
        Normal-Wishart scale matrix ``W0 = wishart_scale * I``; the degrees of freedom are
        the dimension ``n_factors + use_bias`` (Salakhutdinov and Mnih's choice).
    noise_shape, noise_rate : float
        ``tau_c ~ Gamma(noise_shape, rate=noise_rate)``, the noise precision.
    noise_sd : float or None
        A fixed noise sd instead (``tau_c = noise_sd**-2``, as Bayesian PMF fixes its
        observation precision); None samples ``tau_c``. Fixed, the chain settles in the
        factor scale (on MovieLens-100K after about 300 sweeps; see BENCHMARKS.md).
    weights_alpha : float
        Symmetric Dirichlet concentration of the mixture weights ``pi`` (>= 1).
    implicit_shape, implicit_rate : float
        With implicit features: ``lam ~ Gamma(implicit_shape, rate=implicit_rate)``, the
        precision multiplier of the link matrix (:mod:`bayesgmm.mpma.implicit`).
    """

    beta0: float = 2.0
    wishart_scale: float = 1.0
    noise_shape: float = 1.0
    noise_rate: float = 1.0
    noise_sd: float | None = None
    weights_alpha: float = 2.0
    implicit_shape: float = 1.0
    implicit_rate: float = 1.0

    def __post_init__(self):
        """Check every field: TypeError or ValueError naming it and its allowed range."""
        for name in (
            "beta0", "wishart_scale", "noise_shape", "noise_rate", "implicit_shape",
            "implicit_rate",
        ):  # fmt: skip
            check_real(getattr(self, name), f"GibbsPriors.{name}", minimum=0.0, strict=True)
        sd = self.noise_sd
        if sd is not None and not (
            isinstance(sd, numbers.Real) and not isinstance(sd, bool)
            and math.isfinite(sd) and sd > 0
        ):  # fmt: skip
            raise ValueError(
                f"GibbsPriors.noise_sd must be > 0 or None (a finite fixed noise sd, or None "
                f"to sample it), got {sd!r}"
            )
        check_real(self.weights_alpha, "GibbsPriors.weights_alpha", minimum=1.0)


def sample_normal_wishart(
    rng: np.random.Generator,
    x: np.ndarray,
    priors: GibbsPriors,
    *,
    extra_scatter: np.ndarray | None = None,
    extra_df: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """A draw of ``(mu, Lambda)`` given entity vectors ``x`` of shape (n, dim).

    The conjugate update of ``NormalWishart(0, beta0, wishart_scale * I, dim)``
    (Salakhutdinov and Mnih 2008, eq. 14). ``extra_scatter`` (dim, dim) and ``extra_df``
    add the terms of other Gaussians with precision ``Lambda`` and known mean: with implicit
    features, the prior of the link matrix ``B`` contributes ``lam B^T B`` and ``p``
    (:mod:`bayesgmm.mpma.implicit`). Returns ``mu`` (dim,) and ``Lambda`` (dim, dim).
    """
    n, dim = x.shape
    xbar = x.mean(axis=0) if n else np.zeros(dim)
    centred = x - xbar
    beta0 = priors.beta0
    scale_inv = (
        np.eye(dim) / priors.wishart_scale
        + centred.T @ centred
        + (beta0 * n / (beta0 + n)) * np.outer(xbar, xbar)
    )
    if extra_scatter is not None:
        scale_inv = scale_inv + extra_scatter
    scale = np.linalg.inv(scale_inv)
    precision = np.atleast_2d(
        wishart.rvs(df=dim + n + extra_df, scale=0.5 * (scale + scale.T), random_state=rng)
    )
    mean = rng.multivariate_normal(n * xbar / (beta0 + n), np.linalg.inv((beta0 + n) * precision))
    return mean, precision


def _stack(factors: Factors, side: str, seen: np.ndarray, use_bias: bool) -> np.ndarray:
    """Entity vectors ``(factors, bias)`` of the ``seen`` rows or columns, (n_seen, dim)."""
    f = factors.row_factors if side == "row" else factors.col_factors
    b = factors.row_bias if side == "row" else factors.col_bias
    return np.column_stack([f[seen], b[seen]]) if use_bias else f[seen]


@dataclass
class ComponentPosterior:
    """Posterior draws of one component.

    Attributes
    ----------
    draws : list of Factors
        The kept draws (same layout as the component's :class:`ComponentIndex`).
    sigmas : ndarray of shape (n_draws,)
        Noise sd ``tau**-0.5`` of every kept draw (rating units).
    log_likelihood : ndarray of shape (n_burn + n_draws,)
        Log-likelihood of the component's training ratings after every sweep.
    """

    draws: list[Factors]
    sigmas: np.ndarray
    log_likelihood: np.ndarray

    def mean_prediction(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Posterior mean of the component's rating mean at (rows, cols), shape (N,)."""
        return np.mean([factor_means(f, rows, cols) for f in self.draws], axis=0)

    def log_predictive(self, ratings: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """``log p(R_n | draws)``: log of the draws' average Normal density, shape (N,)."""
        log_dens = np.stack(
            [
                -math.log(s)
                - 0.5 * LOG_2PI
                - 0.5 * ((ratings - factor_means(f, rows, cols)) / s) ** 2
                for f, s in zip(self.draws, self.sigmas, strict=True)
            ]
        )
        return logsumexp(log_dens, axis=0) - math.log(len(self.draws))

    def posterior_mean(self) -> Factors:
        """Factors averaged over the draws (for reporting; predictions average the means)."""
        mean = {
            name: np.mean([getattr(f, name) for f in self.draws], axis=0)
            for name in ("row_bias", "col_bias", "row_factors", "col_factors")
        }
        return Factors(self.draws[0].offset, **mean)


def sample_component(
    factors: Factors,
    ratings: np.ndarray,
    index: ComponentIndex,
    priors: GibbsPriors,
    *,
    use_bias: bool,
    n_burn: int,
    n_draws: int,
    rng: np.random.Generator,
    implicit: bool = False,
    callback: Callable[[float], None] | None = None,
) -> ComponentPosterior:
    """Gibbs-sample one component alone on its ratings, from ``factors`` (copied).

    Parameters
    ----------
    factors : Factors
        Starting point; its offset is kept fixed.
    ratings : ndarray of shape (N,)
    index : ComponentIndex
        Matrix indices of the ratings.
    priors : GibbsPriors
    use_bias : bool
        Sample the biases (otherwise they stay at zero).
    n_burn, n_draws : int
        Sweeps discarded, then sweeps kept.
    rng : numpy Generator
    implicit : bool, default False
        Shift every entity's prior mean by its implicit features, who rated what in
        ``index`` (:mod:`bayesgmm.mpma.implicit`); the link matrices and their precision
        multipliers are sampled too.
    callback : callable or None, default None
        Called with the training log-likelihood after every sweep (progress reporting).
    """
    f = factors.copy()
    target = ratings - f.offset
    n = ratings.shape[0]
    k = f.row_factors.shape[1]
    dim = k + int(use_bias)
    fixed = priors.noise_sd is not None
    tau = priors.noise_sd**-2 if fixed else 1.0 / max(float(np.var(ratings)), 1e-12)
    sides = (("row", index.by_row, index.seen_rows, index.n_rows),
             ("col", index.by_col, index.seen_cols, index.n_cols))  # fmt: skip
    links = {}
    if implicit:
        features = (
            implicit_features(index.rows, index.cols, index.seen_rows, index.seen_cols),
            implicit_features(index.cols, index.rows, index.seen_cols, index.seen_rows),
        )
        # per side: features, link matrix B (p, dim), its precision multiplier lam
        links = {
            side: [feat, np.zeros((feat.n_features, dim)), 1.0]
            for (side, *_), feat in zip(sides, features, strict=True)
        }
    # the targets in each side's order, gathered once for the whole chain
    targets = [target.take(by_side.order) for _, by_side, _, _ in sides]
    draws, sigmas, log_lik = [], [], []
    for sweep in range(n_burn + n_draws):
        weight = np.broadcast_to(tau, n)
        for (side, by_side, seen, n_side), ordered_target in zip(sides, targets, strict=True):
            theta = _stack(f, side, seen, use_bias)
            if implicit:
                feat, link, lam = links[side]
                shift = feat.matrix @ link
                mean, precision = sample_normal_wishart(
                    rng, theta - shift, priors, extra_scatter=lam * (link.T @ link),
                    extra_df=feat.n_features,
                )  # fmt: skip
                link = sample_link(
                    feat, theta - mean, precision, lam, rng.standard_normal(link.shape)
                )
                lam = sample_link_precision(
                    rng, link, precision, priors.implicit_shape, priors.implicit_rate
                )
                links[side][1:] = link, lam
                prior_mean = np.tile(mean, (n_side, 1))
                prior_mean[seen] += feat.matrix @ link
            else:
                prior_mean, precision = sample_normal_wishart(rng, theta, priors)
            update_side(
                f, side, ordered_target, weight, index.rows, index.cols, by_side, precision,
                prior_mean, use_bias=use_bias, noise=rng.standard_normal((n_side, dim)),
                ordered=True,
            )  # fmt: skip
        residual = ratings - factor_means(f, index.rows, index.cols)
        ss = float(residual @ residual)
        log_lik.append(0.5 * n * (math.log(tau) - LOG_2PI) - 0.5 * tau * ss)
        if callback is not None:
            callback(log_lik[-1])
        if not fixed:
            tau = rng.gamma(priors.noise_shape + 0.5 * n, 1.0 / (priors.noise_rate + 0.5 * ss))
        if sweep >= n_burn:
            draws.append(f.copy())
            sigmas.append(tau**-0.5)
    return ComponentPosterior(draws, np.asarray(sigmas), np.asarray(log_lik))


def mixture_weights(
    log_densities: np.ndarray, alpha: float, *, max_iter: int = 1000, tol: float = 1e-10
) -> tuple[np.ndarray, list[float]]:
    """MAP of ``pi`` for the mixture ``sum_c pi_c p_c(R_n)`` of fixed densities, by EM.

    ``log_densities`` (N, n_components) are ``log p_c(R_n)``; the prior is
    ``Dirichlet(alpha)``. Returns ``pi`` and the log posterior per iteration (which EM
    increases; the objective is concave in ``pi``, so the maximum is global).
    """
    n, n_components = log_densities.shape
    # The densities are fixed: scale each row by its largest once, so that every
    # iteration is a product and a sum (log p_c = top_n + log dens_nc).
    top = log_densities.max(axis=1, keepdims=True)
    dens = np.exp(log_densities - top)
    top_sum = float(top.sum())
    weights = np.full(n_components, 1.0 / n_components)
    trace: list[float] = []
    for _ in range(max_iter):
        norm = dens @ weights
        trace.append(
            float(np.log(norm).sum() + top_sum + (alpha - 1.0) * np.log(weights).sum())
        )
        if len(trace) > 1 and abs(trace[-1] - trace[-2]) < tol * n:
            break
        weights = m_step_weights(dens * (weights / norm[:, None]), alpha)
    return weights, trace


@dataclass
class GibbsFit:
    """Outcome of :func:`fit_gibbs`.

    Attributes
    ----------
    posteriors : list of ComponentPosterior
        One per component, in the order of ``components``.
    user_groups, item_groups : ndarray of shape (n_users,), (n_items,), int64
    weights : ndarray of shape (n_components,)
    sigmas : ndarray of shape (n_components,)
        Posterior mean noise sd per component.
    validation : ndarray of shape (N,), bool
        The training ratings held out to fit ``weights`` (all False for one component).
    weights_trace : list of float
        Log posterior of ``weights`` per EM iteration.
    """

    posteriors: list[ComponentPosterior]
    user_groups: np.ndarray
    item_groups: np.ndarray
    weights: np.ndarray
    sigmas: np.ndarray
    validation: np.ndarray
    weights_trace: list[float]


def fit_gibbs(
    users: np.ndarray,
    items: np.ndarray,
    ratings: np.ndarray,
    n_users: int,
    n_items: int,
    *,
    components: tuple[str, ...],
    n_factors: int,
    n_user_groups: int,
    n_item_groups: int,
    priors: GibbsPriors,
    use_bias: bool,
    n_burn: int,
    n_draws: int,
    validation_fraction: float,
    seed: int | None,
    implicit: bool = False,
    refit: bool = False,
    callback: Callable[[str, float], None] | None = None,
) -> GibbsFit:
    """Sample every component alone, then fit the mixture weights on held-out ratings.

    Parameters
    ----------
    users, items : ndarray of shape (N,), int64
        Encoded indices.
    ratings : ndarray of shape (N,), float64
    n_users, n_items : int
    components : tuple of str
        Ordered subset of ``COMPONENTS`` containing "global".
    n_factors, n_user_groups, n_item_groups : int
    priors : GibbsPriors
    use_bias : bool
    n_burn, n_draws : int
        Gibbs sweeps per component: discarded, then kept.
    validation_fraction : float
        Share of the ratings held out for the mixture weights (unused, and all ratings
        sampled on, when "global" is the only component).
    seed : int or None
    implicit : bool, default False
        Implicit-feedback side features in every component (:func:`sample_component`).
    refit : bool, default False
        Once the weights are fitted, sample every component again on all the ratings
        (held-out ones included; same groups), and predict with those draws: the
        components then see as many ratings as a global model alone, at twice the cost.
    callback : callable or None, default None
        Called as ``callback(component, log_likelihood)`` after every Gibbs sweep (``"refit
        <component>"`` in the refit), and as ``callback("weights", log_posterior)`` once
        the mixture weights are fitted.
    """
    rng = np.random.default_rng(seed)
    n = ratings.shape[0]
    single = len(components) == 1
    validation = np.zeros(n, dtype=bool) if single else rng.random(n) < validation_fraction
    if not single and (validation.sum() == 0 or validation.all()):
        raise ValueError(
            f"validation_fraction={validation_fraction} holds out {int(validation.sum())} of "
            f"{n} ratings; the mixture weights need some held-out ratings and the components "
            "some to sample on: use a fraction strictly between 0 and 1 with enough ratings"
        )
    options = {
        "use_bias": use_bias, "n_burn": n_burn, "n_draws": n_draws, "rng": rng,
        "implicit": implicit,
    }  # fmt: skip

    def reporter(stage: str) -> Callable[[float], None] | None:
        return None if callback is None else (lambda value: callback(stage, value))

    def sample_all(mask: np.ndarray, groups: tuple[np.ndarray, np.ndarray] | None):
        """Every component on the ratings ``mask``; groups by k-means unless given (the
        refit, whose progress stages are "refit <component>")."""
        stage = "" if groups is None else "refit "
        u, i, r = users[mask], items[mask], ratings[mask]
        start = Factors(
            offset=float(r.mean()),
            row_bias=np.zeros(n_users),
            col_bias=np.zeros(n_items),
            row_factors=0.1 * rng.standard_normal((n_users, n_factors)),
            col_factors=0.1 * rng.standard_normal((n_items, n_factors)),
        )
        none = np.zeros(n_users, dtype=np.int64), np.zeros(n_items, dtype=np.int64)
        glob = sample_component(
            start, r, component_index("global", u, i, n_users, n_items, *none), priors,
            callback=reporter(stage + "global"), **options,
        )  # fmt: skip
        if single:
            return [glob], none
        if groups is None:
            mean = glob.posterior_mean()
            seed_groups = int(rng.integers(2**31))
            groups = (
                cluster_entities(mean.row_factors, n_user_groups, seed_groups),
                cluster_entities(mean.col_factors, n_item_groups, seed_groups),
            )
        posteriors = [glob]
        for name in components[1:]:
            local = local_factors_from_global(name, glob.draws[-1], n_user_groups, n_item_groups)
            ix = component_index(name, u, i, n_users, n_items, *groups)
            posteriors.append(
                sample_component(local, r, ix, priors, callback=reporter(stage + name), **options)
            )
        return posteriors, groups

    posteriors, groups = sample_all(~validation, None)
    sigmas = np.array([float(np.mean(p.sigmas)) for p in posteriors])
    if single:
        return GibbsFit(posteriors, *groups, np.ones(1), sigmas, validation, [])
    val = [component_index(c, users[validation], items[validation], n_users, n_items, *groups)
           for c in components]  # fmt: skip
    log_dens = np.column_stack(
        [p.log_predictive(ratings[validation], ix.rows, ix.cols)
         for p, ix in zip(posteriors, val, strict=True)]
    )  # fmt: skip
    weights, trace = mixture_weights(log_dens, priors.weights_alpha)
    if callback is not None:
        callback("weights", trace[-1])
    if refit:
        posteriors, _ = sample_all(np.ones(n, dtype=bool), groups)
        sigmas = np.array([float(np.mean(p.sigmas)) for p in posteriors])
    return GibbsFit(posteriors, *groups, weights, sigmas, validation, trace)
