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
    "diagonal_log_density_about",
    "diagonal_moments_about",
    "incomplete_block_statistics",
    "noisy_block_statistics",
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


_ROW_TILE = 32  # rows of a tile in diagonal_moments_about: 32 x 256 features = 64 KiB


@numba.njit(cache=True, nogil=True)
def diagonal_log_density_about(
    Z: np.ndarray,
    start: int,
    shifts_t: np.ndarray,
    coef_t: np.ndarray,
    columns: np.ndarray,
    out: np.ndarray,
) -> None:
    """Diagonal quadratic forms about component-specific centres, term by term.

    With ``D = Z[:, start:]``: ``out[i, columns[j]] = sum_d coef_t[d, j] * (D[i, d] -
    shifts_t[d, j])**2``. With ``coef_t = -precisions.T / 2`` and ``shifts_t`` the
    components' means (transposed, in ``D``'s coordinates) this is the log-density
    without its constant, evaluated about each component's own mean, so exact to rounding
    however far the mean lies from the origin of ``D`` (no cancellation, unlike the
    expanded form of the design product). One pass over the rows; the innermost loop runs
    over components (independent accumulators, vectorised); each sum over ``d`` is taken
    in order.

    Parameters
    ----------
    Z : ndarray (n_rows, start + n_features), C-contiguous
    start : int
        First column of the coordinates in ``Z``.
    shifts_t, coef_t : ndarray (n_features, n_guarded), C-contiguous
    columns : ndarray (n_guarded,) of int
        Columns of ``out`` to write.
    out : ndarray (n_rows, n_components)
    """
    n_rows = Z.shape[0]
    n_features, n_guarded = shifts_t.shape
    acc = np.empty(n_guarded)
    for i in range(n_rows):
        acc[:] = 0.0
        for d in range(n_features):
            x = Z[i, start + d]
            for j in range(n_guarded):
                t = x - shifts_t[d, j]
                acc[j] += coef_t[d, j] * (t * t)
        for j in range(n_guarded):
            out[i, columns[j]] = acc[j]


@numba.njit(cache=True, nogil=True)
def diagonal_moments_about(
    Z: np.ndarray,
    start: int,
    shifts: np.ndarray,
    resp: np.ndarray,
    columns: np.ndarray,
    first: np.ndarray,
    second: np.ndarray,
) -> None:
    """Responsibility-weighted first and squared moments about component-specific centres.

    With ``D = Z[:, start:]``, ``k = columns[j]``: adds ``sum_i resp[i, k] (D[i, d] -
    shifts[j, d])`` to ``first[j, d]`` and ``sum_i resp[i, k] (D[i, d] - shifts[j, d])**2``
    to ``second[j, d]``: the diagonal moments of :func:`diagonal_log_density_about`'s
    components about their own means (no cancellation in the scatter). Rows are taken in
    tiles that stay in cache while every component passes over them; the innermost loop
    runs over features (vectorised), each sum over rows in order.

    Parameters
    ----------
    Z : ndarray (n_rows, start + n_features), C-contiguous
    start : int
    shifts : ndarray (n_guarded, n_features), C-contiguous
    resp : ndarray (n_rows, n_components)
    columns : ndarray (n_guarded,) of int
    first, second : ndarray (n_guarded, n_features), C-contiguous, accumulated into
    """
    n_rows = Z.shape[0]
    n_guarded, n_features = shifts.shape
    for i0 in range(0, n_rows, _ROW_TILE):
        i1 = min(i0 + _ROW_TILE, n_rows)
        for j in range(n_guarded):
            k = columns[j]
            s = shifts[j]
            f = first[j]
            q = second[j]
            for i in range(i0, i1):
                r = resp[i, k]
                x = Z[i, start : start + n_features]
                for d in range(n_features):
                    t = x[d] - s[d]
                    rt = r * t
                    f[d] += rt
                    q[d] += rt * t


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


@numba.njit(cache=True, nogil=True)
def noisy_block_statistics(
    X: np.ndarray,
    observed: np.ndarray,
    means: np.ndarray,
    covariances: np.ndarray,
    noise: np.ndarray,
    log_weights: np.ndarray,
    row_weight: np.ndarray,
):
    """E-step and expected statistics of noisy rows sharing one missingness pattern
    (extreme deconvolution; Bovy, Hogg & Roweis 2011).

    For row i and component k, ``T = (Sigma_k + S_i)_oo = L L'``; the true point's
    posterior given k has mean ``mu_k + Sigma_{k,:o} T^-1 d`` (``d = x_io - mu_ko``) and
    covariance ``Sigma_k - W' W`` with ``W = L^-1 Sigma_{k,o:}``.

    Parameters
    ----------
    X : ndarray (n_rows, n_features)
    observed : ndarray of int64 (d_o,), d_o >= 1
    means : ndarray (n_components, n_features)
    covariances : ndarray (n_components, n_features, n_features)
    noise : ndarray (n_rows, d_o, d_o)
        The rows' error covariances on the observed coordinates.
    log_weights : ndarray (n_components,)
    row_weight : ndarray (n_rows,)

    Returns
    -------
    log_likelihood : float
    resp_sum : ndarray (n_components,)
    first : ndarray (n_components, n_features)
        ``sum_i r_ik (b_ik - mu_k)``.
    second : ndarray (n_components, n_features, n_features)
        ``sum_i r_ik ((b_ik - mu_k)(b_ik - mu_k)' - W_ik' W_ik)``; the caller adds
        ``resp_sum_k Sigma_k``.
    """
    n_rows, n_features = X.shape
    n_components = means.shape[0]
    d_o = observed.shape[0]
    first = np.zeros((n_components, n_features))
    second = np.zeros((n_components, n_features, n_features))
    resp_sum = np.zeros(n_components)
    chol = np.empty((n_components, d_o, d_o))
    z = np.empty((n_components, d_o))
    log_prob = np.empty(n_components)
    u = np.empty(d_o)
    d = np.empty(n_features)
    W = np.empty((d_o, n_features))
    constant = 0.5 * d_o * math.log(2.0 * math.pi)
    log_likelihood = 0.0
    for i in range(n_rows):
        peak = -np.inf
        for k in range(n_components):
            L = chol[k]
            for a in range(d_o):  # Cholesky of T, column by column
                for b in range(a + 1):
                    s = covariances[k, observed[a], observed[b]] + noise[i, a, b]
                    for c in range(b):
                        s -= L[a, c] * L[b, c]
                    if a == b:
                        L[a, a] = math.sqrt(s) if s > 0.0 else np.nan
                    else:
                        L[a, b] = s / L[b, b]
            maha = 0.0
            log_det = 0.0
            for a in range(d_o):
                s = X[i, observed[a]] - means[k, observed[a]]
                for c in range(a):
                    s -= L[a, c] * z[k, c]
                z[k, a] = s / L[a, a]
                maha += z[k, a] * z[k, a]
                log_det += math.log(L[a, a])
            v = log_weights[k] - log_det - constant - 0.5 * maha
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
            L = chol[k]
            for a in range(d_o - 1, -1, -1):  # u = L^-T z = T^-1 d
                s = z[k, a]
                for c in range(a + 1, d_o):
                    s -= L[c, a] * u[c]
                u[a] = s / L[a, a]
            for e in range(n_features):  # d = Sigma_{:o} u;  W = L^-1 Sigma_{o:}
                s = 0.0
                for a in range(d_o):
                    s += covariances[k, e, observed[a]] * u[a]
                d[e] = s
                for a in range(d_o):
                    s = covariances[k, observed[a], e]
                    for c in range(a):
                        s -= L[a, c] * W[c, e]
                    W[a, e] = s / L[a, a]
            for e in range(n_features):
                re = r * d[e]
                first[k, e] += re
                for f in range(e, n_features):
                    s = d[e] * d[f]
                    for a in range(d_o):
                        s -= W[a, e] * W[a, f]
                    second[k, e, f] += r * s
    for k in range(n_components):
        for e in range(n_features):
            for f in range(e + 1, n_features):
                second[k, f, e] = second[k, e, f]
    return log_likelihood, resp_sum, first, second
