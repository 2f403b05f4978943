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
