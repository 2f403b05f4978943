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

__all__ = [
    "PARALLEL_MIN_RATINGS",
    "Factors",
    "SideIndex",
    "als_sweep",
    "factor_means",
    "offset_conditional",
    "ridge_precision",
    "side_index",
    "update_side",
]


@dataclass
class SideIndex:
    """Ratings grouped by one side (rows or columns) of a component's matrix.

    Attributes
    ----------
    indptr : ndarray of shape (n_side + 1,), int64
        Ratings of entity ``r`` are ``order[indptr[r]:indptr[r + 1]]``.
    order : ndarray of shape (n_ratings,), int64
        Rating indices sorted by this side's index (stable).
    other : ndarray of shape (n_ratings,), int32 or int64, or None
        The other side's index of every rating, in ``order`` (``other_index[order]``), so
        that the kernels read it in sequence; None when not given (then gathered on use).
    """

    indptr: np.ndarray
    order: np.ndarray
    other: np.ndarray | None = None


def side_index(index: np.ndarray, n_side: int, other: np.ndarray | None = None) -> SideIndex:
    """Group the ratings by ``index`` (shape (n_ratings,), values in ``0..n_side-1``).

    ``other`` (n_ratings,), the other side's index, is stored in this side's order (int32
    when its values fit, to halve its memory).
    """
    order = np.argsort(index, kind="stable").astype(np.int64)
    counts = np.bincount(index, minlength=n_side)
    indptr = np.zeros(n_side + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    if other is not None:
        small = other.size == 0 or int(other.max()) < np.iinfo(np.int32).max
        other = other.take(order).astype(np.int32 if small else np.int64, copy=False)
    return SideIndex(indptr=indptr, order=order, other=other)


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


@numba.njit(cache=True, nogil=True, parallel=True)
def _means_kernel_parallel(
    rows, cols, offset, row_bias, col_bias, row_factors, col_factors, out
):  # the same as _means_kernel, over the ratings in parallel
    n_factors = row_factors.shape[1]
    for n in numba.prange(rows.shape[0]):
        r, s = rows[n], cols[n]
        acc = offset + row_bias[r] + col_bias[s]
        for f in range(n_factors):
            acc += row_factors[r, f] * col_factors[s, f]
        out[n] = acc


#: Fewest ratings for which factor_means runs in parallel (below, starting the threads
#: costs more than it saves: e.g. averaging many Gibbs draws on a small test set).
PARALLEL_MIN_RATINGS = 100_000


def factor_means(factors: Factors, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Predicted mean of each rating, shape (n_ratings,), for index arrays ``rows, cols``."""
    out = np.empty(rows.shape[0])
    kernel = _means_kernel_parallel if rows.shape[0] >= PARALLEL_MIN_RATINGS else _means_kernel
    kernel(
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
def _cholesky_solve_inplace(a, b, noise):
    """``x = a^-1 b + L^-T noise`` for symmetric positive definite ``a = L L^T``, into ``b``.

    Only the lower triangle of ``a`` is read; ``a`` is overwritten by ``L``. With an empty
    ``noise`` this is the solve ``a x = b``; with standard normal ``noise`` of length
    ``a.shape[0]``, ``x`` is a draw from ``Normal(a^-1 b, a^-1)``.
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
    if noise.shape[0] > 0:
        for i in range(dim):
            b[i] += noise[i]
    for i in range(dim - 1, -1, -1):
        v = b[i]
        for p in range(i + 1, dim):
            v -= a[p, i] * b[p]
        b[i] = v / a[i, i]


@numba.njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def _normal_equations(start, stop, other, target, weight, other_bias, other_factors, a, b):
    """``a += sum_p w_p x_p x_p^T`` (lower triangle) and ``b += sum_p w_p x_p t_p`` over
    positions ``start:stop``, with ``x_p = (V_s, 1)`` (the 1 only when ``b`` has one more
    entry than ``V_s``) and ``t_p = target_p - other_bias_s``, ``s = other[p]``.

    The ratings are gathered into a (dim, m) block first, so that every entry of ``a`` is
    a dot product over contiguous memory (vectorised: the sums are reassociated).
    """
    k = other_factors.shape[1]
    dim = b.shape[0]
    m = stop - start
    x = np.empty((dim, m))
    wx = np.empty((dim, m))
    wt = np.empty(m)
    for q in range(m):
        p = start + q
        s = other[p]
        w = weight[p]
        for f in range(k):
            v = other_factors[s, f]
            x[f, q] = v
            wx[f, q] = w * v
        if dim > k:
            x[k, q] = 1.0
            wx[k, q] = w
        wt[q] = target[p] - other_bias[s]
    for f in range(dim):
        acc = 0.0
        for q in range(m):
            acc += wx[f, q] * wt[q]
        b[f] += acc
        for g in range(f + 1):
            acc = 0.0
            for q in range(m):
                acc += wx[f, q] * x[g, q]
            a[f, g] += acc


@numba.njit(cache=True, nogil=True, parallel=True)
def _update_side(
    indptr, other, target, weight, own_bias, other_bias, own, other_factors,
    prior_precision, prior_shift, noise, use_bias,
):  # fmt: skip
    """Conditional MAP (or a conditional draw) of every entity on one side, in place.

    ``other``, ``target`` and ``weight`` are in this side's order: entity ``r``'s ratings
    are positions ``indptr[r]:indptr[r + 1]``. Entity ``r`` has ``theta = (factors,
    bias)`` (bias only if ``use_bias``) with the Gaussian conditional posterior of
    precision ``A = P + sum_n w_n x_n x_n^T`` and ``A mean = prior_shift + sum_n w_n x_n
    t_n``, where ``x_n = (V_s, 1)``, ``t_n = target_n - other_bias_s``, ``P =
    prior_precision`` (dim, dim) and ``prior_shift = P @ prior_mean``: shape (1, dim) for
    one prior mean shared by every entity, (n_side, dim) for one per entity. ``noise``
    of shape (n_side, dim) draws ``theta`` from that posterior; shape (0, dim) sets it to
    the mean (the ALS step). Entities without ratings get their prior mean (or a draw
    from their prior).
    """
    n_side = indptr.shape[0] - 1
    k = own.shape[1]
    sample = noise.shape[0] > 0
    shared = prior_shift.shape[0] == 1
    empty = np.empty(0)
    for r in numba.prange(n_side):
        a = prior_precision.copy()
        b = prior_shift[0].copy() if shared else prior_shift[r].copy()
        _normal_equations(
            indptr[r], indptr[r + 1], other, target, weight, other_bias, other_factors, a, b
        )
        _cholesky_solve_inplace(a, b, noise[r] if sample else empty)
        for f in range(k):
            own[r, f] = b[f]
        if use_bias:
            own_bias[r] = b[k]


def update_side(
    factors: Factors,
    side: str,
    target: np.ndarray,
    weight: np.ndarray,
    rows: np.ndarray,
    cols: np.ndarray,
    by_side: SideIndex,
    prior_precision: np.ndarray,
    prior_mean: np.ndarray,
    *,
    use_bias: bool,
    noise: np.ndarray | None = None,
    ordered: bool = False,
) -> None:
    """Update the rows (``side="row"``) or columns of ``factors`` given the other side.

    Parameters
    ----------
    factors : Factors
        Updated in place.
    side : {"row", "col"}
    target, weight, rows, cols : ndarray of shape (n_ratings,)
        Ratings minus the offset, their weights (1 / rating units**2), matrix indices.
    by_side : SideIndex
        The ratings grouped by this side's index.
    prior_precision : ndarray of shape (dim, dim)
        Gaussian prior precision of an entity's ``(factors, bias)`` (``dim = n_factors +
        use_bias``).
    prior_mean : ndarray of shape (dim,) or (n_side, dim)
        One prior mean for every entity, or one per entity (e.g. shifted by implicit
        feedback, :mod:`bayesgmm.mpma.implicit`).
    use_bias : bool
    noise : ndarray of shape (n_side, dim), optional
        Standard normal draws: sample from the conditional posterior instead of taking
        its mean.
    ordered : bool, default False
        True when ``target`` and ``weight`` are already in ``by_side.order`` (e.g.
        ``target.take(by_side.order)``, computed once for many updates); ``rows`` and
        ``cols`` are in rating order in any case.
    """
    if side == "row":
        own, own_bias, other, other_bias, other_f = (
            factors.row_factors, factors.row_bias, cols, factors.col_bias, factors.col_factors
        )  # fmt: skip
    else:
        own, own_bias, other, other_bias, other_f = (
            factors.col_factors, factors.col_bias, rows, factors.row_bias, factors.row_factors
        )  # fmt: skip
    dim = own.shape[1] + int(use_bias)
    precision = np.ascontiguousarray(prior_precision, dtype=np.float64).reshape(dim, dim)
    mean = np.asarray(prior_mean, dtype=np.float64)
    if mean.ndim == 2 and mean.shape != (own.shape[0], dim):
        raise ValueError(
            f"prior_mean of shape {mean.shape} must be ({dim},) or ({own.shape[0]}, {dim})"
        )
    shift = np.ascontiguousarray(mean.reshape(-1, dim) @ precision)  # P symmetric
    draws = np.empty((0, dim)) if noise is None else np.ascontiguousarray(noise, dtype=np.float64)
    order = None if ordered else by_side.order
    sorted_other = other.take(by_side.order) if by_side.other is None else by_side.other
    _update_side(
        by_side.indptr, sorted_other, _in_order(target, order), _in_order(weight, order),
        own_bias, other_bias, own, other_f, precision, shift, draws, use_bias,
    )  # fmt: skip


def _in_order(values: np.ndarray, order: np.ndarray | None) -> np.ndarray:
    """``values[order]`` as float64 (``values`` itself when ``order`` is None or the array
    is a constant, ``np.broadcast_to`` of a scalar)."""
    values = np.asarray(values, dtype=np.float64)
    if order is None or (values.size and values.strides == (0,)):
        return values
    return values.take(order)


def ridge_precision(
    n_factors: int, factor_precision: float, bias_precision: float, use_bias: bool
) -> np.ndarray:
    """Diagonal prior precision of one entity's ``(factors, bias)``, shape (dim, dim)."""
    return np.diag(
        np.r_[np.full(n_factors, factor_precision), np.full(int(use_bias), bias_precision)]
    )


def offset_conditional(
    partial_residual: np.ndarray, weight: np.ndarray, offset_prior: tuple[float, float]
) -> tuple[float, float]:
    """Mean and precision of the offset's Gaussian conditional given everything else.

    ``partial_residual`` (n_ratings,) is the rating minus every term of the mean but the
    offset; ``weight`` the ratings' precisions; ``offset_prior`` its (mean, sd).
    """
    mean0, sd0 = offset_prior
    precision0 = 1.0 / sd0**2
    precision = weight.sum() + precision0
    return float((weight @ partial_residual + precision0 * mean0) / precision), float(precision)


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
    n_factors = factors.row_factors.shape[1]
    precision = ridge_precision(n_factors, factor_precision, bias_precision, use_bias)
    zero = np.zeros(n_factors + int(use_bias))
    for side, by_side in (("row", by_row), ("col", by_col)):
        update_side(
            factors, side, target, weight, rows, cols, by_side, precision, zero,
            use_bias=use_bias,
        )  # fmt: skip
    residual = ratings - factor_means(factors, rows, cols) + factors.offset
    factors.offset = offset_conditional(residual, weight, offset_prior)[0]
