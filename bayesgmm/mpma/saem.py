"""Stochastic-approximation EM for the marginal MAP of MPMA's weights and noise sds.

The joint posterior mode that MAP-EM finds (:mod:`bayesgmm.mpma.em`) is not where the
posterior mass of ``(pi, sigma)`` is when the factors are many for the ratings: on the
densest 150 x 200 MovieLens sub-matrix every factor collapses to zero at the joint mode,
and the mode deflates ``sigma_c**2`` by about ``N_c / (N_c + p_c)`` (``p_c`` the
component's factor and bias values), against a posterior sd of ``sigma_c`` near 1%. The
point estimate to set against a posterior sample of ``(pi, sigma)`` is the mode of their
*marginal* posterior, with the factors, biases, offsets and the component of every rating
integrated out. EM computes that mode when those are its missing data. Their
conditional distribution given ``(pi, sigma)`` has no closed form, so each iteration draws
them by one Gibbs sweep and averages the sufficient statistics with decreasing steps:
SAEM (Delyon, Lavielle and Moulines 1999; with an MCMC E-step, Kuhn and Lavielle 2004)::

    z_n | ...                 ~ Categorical(pi_c Normal(R_n | mu_nc, sigma_c**2))
    rows of component c | ... ~ Normal (conditional of the ridge prior, given the columns)
    columns, then offset_c    ~ likewise
    s_k = s_(k-1) + gamma_k (S_k - s_(k-1)),  S_k = (N_c, SS_c, penalty_c) of the draw
    pi, sigma = the closed-form M-steps of MAP-EM at s_k

with ``gamma_k = 1`` for ``n_burn`` iterations (plain stochastic EM, which forgets the
start) and ``1 / (k - n_burn + 1)`` after (averaging, which converges). The model and
priors are those of :mod:`bayesgmm.mpma.em` and the PyMC graph of :mod:`bayesgmm.mpma.model`
(fixed ridge penalties on the noise scale of each component), not the hierarchical priors
of :mod:`bayesgmm.mpma.gibbs`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bayesgmm.mpma.als import factor_means, offset_conditional, ridge_precision, update_side
from bayesgmm.mpma.em import (
    ComponentIndex,
    MPMAPriors,
    MPMAState,
    component_means,
    e_step,
    m_step_weights,
    penalty_terms,
    sigma_from_statistics,
)
from bayesgmm.progress import progress_bar

__all__ = ["SAEMResult", "saem_weights_sigmas"]


@dataclass
class SAEMResult:
    """Outcome of :func:`saem_weights_sigmas`.

    Attributes
    ----------
    weights, sigmas : ndarray of shape (n_components,)
        The marginal MAP estimate after the last iteration.
    state : MPMAState
        The last Gibbs draw of the factors, with ``weights`` and ``sigmas``: a point in
        the posterior's typical set (a start for NUTS).
    weights_trace, sigmas_trace : ndarray of shape (n_burn + n_average, n_components)
        The estimate after every iteration.
    """

    weights: np.ndarray
    sigmas: np.ndarray
    state: MPMAState
    weights_trace: np.ndarray
    sigmas_trace: np.ndarray


def _sample_assignments(rng, ratings, means, weights, sigmas) -> np.ndarray:
    """One draw of every rating's component, shape (N,), int64."""
    resp, _ = e_step(ratings, means, weights, sigmas)
    draws = (rng.random(ratings.shape[0])[:, None] > np.cumsum(resp, axis=1)).sum(axis=1)
    return np.minimum(draws, weights.shape[0] - 1)


def saem_weights_sigmas(
    state: MPMAState,
    ratings: np.ndarray,
    index: list[ComponentIndex],
    priors: MPMAPriors,
    *,
    use_bias: bool,
    n_burn: int = 3000,
    n_average: int = 1000,
    seed: int | None = None,
    progressbar: bool = False,
) -> SAEMResult:
    """Marginal MAP of ``(pi, sigma)`` by SAEM, started at ``state`` (copied).

    Parameters
    ----------
    state : MPMAState
        Start, e.g. the MAP-EM fit (factors at exactly zero are fine: the first Gibbs draw
        leaves them).
    ratings : ndarray of shape (N,)
    index : list of ComponentIndex
        One per component of ``state``.
    priors : MPMAPriors
    use_bias : bool
    n_burn, n_average : int
        Iterations with step 1, then with steps ``1 / k``.
    seed : int or None
    progressbar : bool, default False
        A progress bar on standard error, one step per iteration, showing the current
        weights (the traces are ``weights_trace`` and ``sigmas_trace``).
    """
    rng = np.random.default_rng(seed)
    state = state.copy()
    n_components = len(state.components)
    n_factors = state.factors[0].row_factors.shape[1]
    dim = n_factors + int(use_bias)
    zero = np.zeros(dim)
    n_penalised = np.array(
        [sum(penalty_terms(f, ix, priors, use_bias)[1:])
         for f, ix in zip(state.factors, index, strict=True)],
        dtype=np.float64,
    )  # fmt: skip
    offset_prior = (priors.offset_mu, priors.offset_sd)
    stats = None
    weights_trace, sigmas_trace = [], []
    with progress_bar(n_burn + n_average, "SAEM", enabled=progressbar) as bar:
        for it in range(n_burn + n_average):
            z = _sample_assignments(
                rng, ratings, component_means(state, index), state.weights, state.sigmas
            )
            counts = np.bincount(z, minlength=n_components).astype(np.float64)
            sse, penalty = np.empty(n_components), np.empty(n_components)
            for c, (f, ix) in enumerate(zip(state.factors, index, strict=True)):
                var = state.sigmas[c] ** 2
                mine = z == c
                weight = np.where(mine, 1.0 / var, 0.0)
                precision = ridge_precision(
                    n_factors, priors.factor_penalty / var, priors.bias_penalty / var, use_bias
                )
                for side, by_side, n_side in (("row", ix.by_row, ix.n_rows),
                                              ("col", ix.by_col, ix.n_cols)):  # fmt: skip
                    update_side(
                        f, side, ratings - f.offset, weight, ix.rows, ix.cols, by_side,
                        precision, zero, use_bias=use_bias,
                        noise=rng.standard_normal((n_side, dim)),
                    )  # fmt: skip
                partial = ratings - factor_means(f, ix.rows, ix.cols) + f.offset
                mean, prec = offset_conditional(partial, weight, offset_prior)
                f.offset = float(rng.normal(mean, prec**-0.5))
                resid = partial[mine] - f.offset
                sse[c] = resid @ resid
                penalty[c] = penalty_terms(f, ix, priors, use_bias)[0]
            draw = np.concatenate([counts, sse, penalty])
            step = 1.0 if it < n_burn else 1.0 / (it - n_burn + 1)
            stats = draw if stats is None else stats + step * (draw - stats)
            s_counts, s_sse, s_penalty = np.split(stats, 3)
            state.weights = m_step_weights(s_counts[None, :], priors.weights_alpha)
            state.sigmas = sigma_from_statistics(
                s_sse, s_counts, priors.sigma_a, priors.sigma_b, priors.sigma_min,
                s_penalty, n_penalised,
            )  # fmt: skip
            weights_trace.append(state.weights.copy())
            sigmas_trace.append(state.sigmas.copy())
            bar.advance(1, "weights " + " ".join(f"{w:.3f}" for w in state.weights))
    return SAEMResult(
        state.weights.copy(),
        state.sigmas.copy(),
        state,
        np.asarray(weights_trace),
        np.asarray(sigmas_trace),
    )
