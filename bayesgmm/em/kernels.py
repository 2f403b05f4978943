"""Fused row kernel of the E-step (numba, releases the GIL).

One pass per row turns weighted log-probabilities into responsibilities: the max,
the log-sum-exp and the normalisation happen in registers, where NumPy would make
five passes over the (n_samples, n_components) array. The sweep runs blocks of rows
on several threads, so the kernel itself is serial.
"""

from __future__ import annotations

import math

import numba
import numpy as np

__all__ = [
    "incomplete_block_statistics",
    "responsibilities_inplace",
]


@numba.njit(cache=True, nogil=True)
def responsibilities_inplace(
    log_prob: np.ndarray, offset: np.ndarray, row_weight: np.ndarray, log_norm: np.ndarray
) -> None:
    """Turn ``log_prob + offset`` into weighted responsibilities, in place.

    Parameters
    ----------
    log_prob : ndarray (n_rows, n_components), C-contiguous
        On entry the per-component log-densities without the constant ``offset``;
        on exit ``row_weight[i] * p(z_i = k | x_i)``.
    offset : ndarray (n_components,)
        Added to every row (log weights, log-determinants, constants).
    row_weight : ndarray (n_rows,)
        Sample weights (ones for unweighted data).
    log_norm : ndarray (n_rows,)
        Output: ``log p(x_i) = logsumexp_k(log_prob[i, k] + offset[k])``.
    """
    n_rows, n_components = log_prob.shape
    for i in range(n_rows):
        peak = -np.inf
        for k in range(n_components):
            v = log_prob[i, k] + offset[k]
            log_prob[i, k] = v
            if v > peak:
                peak = v
        if not math.isfinite(peak):
            # every component has zero density (or a NaN): propagate, caller reports it
            log_norm[i] = peak if peak == -np.inf else np.nan
            for k in range(n_components):
                log_prob[i, k] = np.nan
            continue
        total = 0.0
        for k in range(n_components):
            e = math.exp(log_prob[i, k] - peak)
            log_prob[i, k] = e
            total += e
        log_norm[i] = peak + math.log(total)
        scale = row_weight[i] / total
        for k in range(n_components):
            log_prob[i, k] *= scale


@numba.njit(cache=True, nogil=True)
def incomplete_block_statistics(
    X: np.ndarray,
    observed: np.ndarray,
    means: np.ndarray,
    whiten: np.ndarray,
    offset: np.ndarray,
    row_weight: np.ndarray,
):
    """E-step and observed-coordinate statistics of rows sharing one missingness pattern.

    Without noise, ``E[x_i | x_io, k] - mu_k`` is a linear map of ``d_ik = x_io - mu_ko``
    (the identity on the observed coordinates, ``Sigma_mo Sigma_oo^-1`` on the missing
    ones), the same for every row of the pattern: the caller maps these sums to all
    coordinates once per pattern.

    Parameters
    ----------
    X : ndarray (n_rows, n_features)
        The rows (NaN at the missing coordinates, which are not read).
    observed : ndarray of int64 (d_o,)
        The pattern's observed features (d_o >= 1).
    means : ndarray (n_components, n_features)
    whiten : ndarray (n_components, d_o, d_o)
        ``L^-T`` with ``L L' = Sigma_oo``: ``z = (x_o - mu_o) @ whiten``.
    offset : ndarray (n_components,)
        ``log w_k - log det L_k - d_o / 2 log 2 pi``.
    row_weight : ndarray (n_rows,)

    Returns
    -------
    log_likelihood : float
        ``sum_i row_weight_i log p(x_io)`` (NaN or -inf if a row has zero density).
    resp_sum : ndarray (n_components,)
    first : ndarray (n_components, d_o)
        ``sum_i r_ik d_ik``.
    second : ndarray (n_components, d_o, d_o)
        ``sum_i r_ik d_ik d_ik'``.
    """
    n_rows = X.shape[0]
    n_components = means.shape[0]
    d_o = observed.shape[0]
    first = np.zeros((n_components, d_o))
    second = np.zeros((n_components, d_o, d_o))
    resp_sum = np.zeros(n_components)
    diff = np.empty((n_components, d_o))
    log_prob = np.empty(n_components)
    log_likelihood = 0.0
    for i in range(n_rows):
        peak = -np.inf
        for k in range(n_components):
            for a in range(d_o):
                diff[k, a] = X[i, observed[a]] - means[k, observed[a]]
            maha = 0.0
            for b in range(d_o):
                z = 0.0
                for a in range(b + 1):  # whiten is upper triangular
                    z += diff[k, a] * whiten[k, a, b]
                maha += z * z
            v = offset[k] - 0.5 * maha
            log_prob[k] = v
            if v > peak:
                peak = v
        if not math.isfinite(peak):
            log_likelihood += row_weight[i] * (peak if peak == -np.inf else np.nan)
            continue
        total = 0.0
        for k in range(n_components):
            e = math.exp(log_prob[k] - peak)
            log_prob[k] = e
            total += e
        log_likelihood += row_weight[i] * (peak + math.log(total))
        scale = row_weight[i] / total
        for k in range(n_components):
            r = log_prob[k] * scale
            resp_sum[k] += r
            for a in range(d_o):
                ra = r * diff[k, a]
                first[k, a] += ra
                for b in range(a, d_o):
                    second[k, a, b] += ra * diff[k, b]
    for k in range(n_components):
        for a in range(d_o):
            for b in range(a + 1, d_o):
                second[k, b, a] = second[k, a, b]
    return log_likelihood, resp_sum, first, second
