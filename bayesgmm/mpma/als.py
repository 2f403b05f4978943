"""Weighted alternating least squares: the factor M-step of MAP-EM (numba kernels).

Every MPMA component is a biased matrix factorisation ``offset + a_r + b_s + U_r . V_s``
on a re-indexed copy of the ratings (see :mod:`bayesgmm.mpma.em`), fitted with per-rating
weights ``w_n = resp_nc / sigma_c**2`` under Gaussian priors
``U, V ~ N(0, 1 / factor_precision)`` and ``a, b ~ N(0, 1 / bias_precision)`` (MPMA passes
``factor_penalty / sigma_c**2`` and ``bias_penalty / sigma_c**2``). Given the other side,
the MAP of one row is the ridge solution of a (k+1)-dimensional system, solved for all rows
in parallel.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

__all__ = ["Factors", "SideIndex", "als_sweep", "factor_means", "side_index"]


@dataclass
class SideIndex:
    """Ratings grouped by one side (rows or columns) of a component's matrix.

    Attributes
    ----------
    indptr : ndarray of shape (n_side + 1,), int64
        Ratings of entity ``r`` are ``order[indptr[r]:indptr[r + 1]]``.
    order : ndarray of shape (n_ratings,), int64
        Rating indices sorted by this side's index (stable).
    """

    indptr: np.ndarray
    order: np.ndarray


def side_index(index: np.ndarray, n_side: int) -> SideIndex:
    """Group the ratings by ``index`` (shape (n_ratings,), values in ``0..n_side-1``)."""
    order = np.argsort(index, kind="stable").astype(np.int64)
    counts = np.bincount(index, minlength=n_side)
    indptr = np.zeros(n_side + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    return SideIndex(indptr=indptr, order=order)


@dataclass
class Factors:
    """Parameters of one biased factorisation.

    Attributes
    ----------
    offset : float
        Constant added to every prediction (rating units).
    row_bias : ndarray of shape (n_rows,)
    col_bias : ndarray of shape (n_cols,)
    row_factors : ndarray of shape (n_rows, n_factors)
    col_factors : ndarray of shape (n_cols, n_factors)
    """

    offset: float
    row_bias: np.ndarray
    col_bias: np.ndarray
    row_factors: np.ndarray
    col_factors: np.ndarray

    def copy(self) -> Factors:
        return Factors(
            self.offset,
            self.row_bias.copy(),
            self.col_bias.copy(),
            self.row_factors.copy(),
            self.col_factors.copy(),
        )


@numba.njit(cache=True, nogil=True)
def _means_kernel(rows, cols, offset, row_bias, col_bias, row_factors, col_factors, out):
    n_factors = row_factors.shape[1]
    for n in range(rows.shape[0]):
        r, s = rows[n], cols[n]
        acc = offset + row_bias[r] + col_bias[s]
        for f in range(n_factors):
            acc += row_factors[r, f] * col_factors[s, f]
        out[n] = acc


def factor_means(factors: Factors, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Predicted mean of each rating, shape (n_ratings,), for index arrays ``rows, cols``."""
    out = np.empty(rows.shape[0])
    _means_kernel(
        rows,
        cols,
        float(factors.offset),
        factors.row_bias,
        factors.col_bias,
        factors.row_factors,
        factors.col_factors,
        out,
    )
    return out


@numba.njit(cache=True, nogil=True)
def _cholesky_solve_inplace(a, b):
    """Solve ``a x = b`` for symmetric positive definite ``a`` (lower triangle read).

    ``a`` is overwritten by its Cholesky factor and ``b`` by ``x``.
    """
    dim = a.shape[0]
    for j in range(dim):
        d = a[j, j]
        for p in range(j):
            d -= a[j, p] * a[j, p]
        d = np.sqrt(d)
        a[j, j] = d
        for i in range(j + 1, dim):
            v = a[i, j]
            for p in range(j):
                v -= a[i, p] * a[j, p]
            a[i, j] = v / d
    for i in range(dim):
        v = b[i]
        for p in range(i):
            v -= a[i, p] * b[p]
        b[i] = v / a[i, i]
    for i in range(dim - 1, -1, -1):
        v = b[i]
        for p in range(i + 1, dim):
            v -= a[p, i] * b[p]
        b[i] = v / a[i, i]


@numba.njit(cache=True, nogil=True, parallel=True)
def _update_side(
    indptr, order, other, target, weight, own_bias, other_bias, own, other_factors,
    factor_precision, bias_precision, use_bias,
):  # fmt: skip
    """MAP of every entity's (factors, bias) on one side given the other side, in place.

    Row ``r`` solves ``(P + sum_n w_n x_n x_n^T) theta = sum_n w_n x_n t_n`` with
    ``x_n = (V_s, 1)``, ``t_n = target_n - other_bias_s`` and ``P`` the prior precisions.
    Rows without ratings get their prior mean, zero.
    """
    n_side = indptr.shape[0] - 1
    k = own.shape[1]
    dim = k + 1 if use_bias else k
    for r in numba.prange(n_side):
        a = np.zeros((dim, dim))
        b = np.zeros(dim)
        x = np.empty(dim)
        for f in range(k):
            a[f, f] = factor_precision
        if use_bias:
            a[k, k] = bias_precision
            x[k] = 1.0
        for p in range(indptr[r], indptr[r + 1]):
            n = order[p]
            s = other[n]
            w = weight[n]
            t = target[n] - other_bias[s]
            for f in range(k):
                x[f] = other_factors[s, f]
            for f in range(dim):
                wx = w * x[f]
                b[f] += wx * t
                for g in range(f + 1):
                    a[f, g] += wx * x[g]
        _cholesky_solve_inplace(a, b)
        for f in range(k):
            own[r, f] = b[f]
        if use_bias:
            own_bias[r] = b[k]


def als_sweep(
    factors: Factors,
    ratings: np.ndarray,
    weight: np.ndarray,
    rows: np.ndarray,
    cols: np.ndarray,
    by_row: SideIndex,
    by_col: SideIndex,
    *,
    factor_precision: float,
    bias_precision: float,
    offset_prior: tuple[float, float],
    use_bias: bool,
) -> None:
    """One coordinate-ascent sweep (rows, columns, offset) of the weighted MAP, in place.

    Parameters
    ----------
    factors : Factors
        Updated in place.
    ratings, weight, rows, cols : ndarray of shape (n_ratings,)
        Ratings, their weights ``resp / sigma**2`` (1 / rating units**2) and matrix indices.
    by_row, by_col : SideIndex
        The ratings grouped by ``rows`` and by ``cols``.
    factor_precision, bias_precision : float
        Prior precisions of the factors and of the biases (1 / rating units**2).
    offset_prior : (mean, sd)
        Normal prior of the offset.
    use_bias : bool
        Whether the row/column biases are free (otherwise they stay at zero).
    """
    target = ratings - factors.offset
    _update_side(
        by_row.indptr, by_row.order, cols, target, weight, factors.row_bias, factors.col_bias,
        factors.row_factors, factors.col_factors, factor_precision, bias_precision, use_bias,
    )  # fmt: skip
    _update_side(
        by_col.indptr, by_col.order, rows, target, weight, factors.col_bias, factors.row_bias,
        factors.col_factors, factors.row_factors, factor_precision, bias_precision, use_bias,
    )  # fmt: skip
    residual = ratings - factor_means(factors, rows, cols) + factors.offset
    mean0, sd0 = offset_prior
    precision0 = 1.0 / sd0**2
    factors.offset = float((weight @ residual + precision0 * mean0) / (weight.sum() + precision0))
