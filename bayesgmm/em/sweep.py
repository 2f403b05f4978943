"""One pass over the data: E-step and the M-step's sufficient statistics together.

The data are centred once (on their weighted mean) and cut into row blocks. For each
block the design matrix ``Z = [q(x), x]`` (see :mod:`bayesgmm.em.gaussian`) gives all
components' log-densities in one matrix product; the fused kernel turns them into
responsibilities; one more product ``resp.T @ Z`` accumulates every component's
zeroth, first and second moments. A full EM iteration therefore reads the data once.

Numerical guard: the expanded quadratic form loses ``eps * m`` in absolute precision
where ``m`` is the squared Mahalanobis distance of the component mean from the data
centre. Components with ``m > GUARD_MAHALANOBIS_SQ`` (tight, far-away clusters) are
evaluated about their own mean instead, which is exact to rounding; their moments are
then taken about that mean too (no cancellation in the covariance either). The design
product then covers only the other components. The guarded path
(:func:`_log_density_about`, :func:`_moments_about`) costs about what the design product
costs, so it may run for every component without slowing the sweep (binary data, where
most components sit at ``reg_covar`` along many coordinates, guard nearly all of them):

- diag, spherical: the numba kernels :func:`~bayesgmm.em.kernels.diagonal_log_density_about`
  and :func:`~bayesgmm.em.kernels.diagonal_moments_about`, one pass over a block's rows for
  all guarded components together, term by term ``(x_d - mu_kd)**2``;
- full, tied: per guarded component ``|(x - mu_k) P_k|**2`` (``P_k`` the precision
  Cholesky factor, scikit-learn's form: a sum of squares) and the scatter about the
  mean as ``(r * d)' d``, both BLAS products, never the (n, D(D+1)/2) quadratic features.

When every component is guarded (always for full/tied above ``WHITEN_ALL_FEATURES``
features, where the quadratic features would cost more than the K products) the sweep
reads only the centred coordinates and the design's quadratic features are never built.

Parallelism: row blocks are processed by a small thread pool (one worker per core).
Each worker's matrix products run single-threaded (BLAS is limited to one thread for
the sweep) and the row kernel is a serial ``nogil`` numba function, so the cores never
fight over spinning BLAS threads; partial statistics are summed at the end.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from typing import NamedTuple

import numpy as np
from threadpoolctl import ThreadpoolController

from bayesgmm.em.gaussian import (
    LOG_2PI,
    full_covariances,
    log_det_precision_cholesky,
    n_quadratic_features,
    precision_feature_coefficients,
    precisions_from_cholesky,
    quadratic_features,
    scatter_from_moments,
    unpack_quadratic_moments,
)
from bayesgmm.em.kernels import (
    diagonal_log_density_about,
    diagonal_moments_about,
    responsibilities_inplace,
)

__all__ = [
    "CENTRE_ROUNDING",
    "FAR_LOG_DENSITY",
    "GUARD_MAHALANOBIS_SQ",
    "N_THREADS",
    "WHITEN_ALL_FEATURES",
    "Design",
    "MixtureParams",
    "Moments",
    "em_sweep",
    "finish_sweep",
    "linearise",
    "log_prob_resp",
    "moments_from_resp",
    "require_finite_log_likelihood",
    "single_threaded_blas",
    "sweep_partials",
]

GUARD_MAHALANOBIS_SQ = 1e4
#: Rows with ``log p(x)`` below this (about 1e4 sds from every component), or not finite,
#: are evaluated by :func:`_far_log_prob_resp`: there the rounding of the expanded quadratic
#: forms (``eps * |log p|``) would exceed 1e-8, and beyond about 1e154 they overflow.
FAR_LOG_DENSITY = -1e8
#: When the design centre is so far from the components (far rows in the batch) that
#: centring costs the other rows more than this (in sds: ``eps * |c - mean of means| /
#: sd``), every row is evaluated by :func:`_far_log_prob_resp`.
CENTRE_ROUNDING = 1e-8
#: full/tied with more features than this evaluate every component about its own mean
#: (whitening by BLAS, as scikit-learn does) and never build the design's D(D+1)/2
#: quadratic features: writing those (n, D(D+1)/2) arrays every sweep costs more than the
#: K whitening products (K=16, D=256 binary descriptors: 10 s against 1 s a sweep).
WHITEN_ALL_FEATURES = 128
_BLOCK_BYTES = 8 * 2**20
_MIN_BLOCK_ROWS = 4096
_CACHE_BYTES = 512 * 2**20
N_THREADS = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


@cache
def _executor() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=N_THREADS, thread_name_prefix="bayesgmm-em")


@cache
def _blas() -> ThreadpoolController:
    return ThreadpoolController()


def single_threaded_blas():
    """Context manager limiting BLAS to one thread (process-wide) while callers run blocks
    in parallel threads of their own."""
    return _blas().limit(limits=1, user_api="blas")


def _map_blocks(function, design: Design, *, quadratic: bool = True) -> list:
    """``[function(rows, Z) for each block]``, in parallel when there are several blocks
    (serially for a ``serial`` design). ``Z`` is the design matrix ``[q(x - c), x - c]``,
    or with ``quadratic=False`` only the centred coordinates ``x - c`` (the guarded path
    needs no more: full/tied designs then skip building their D(D+1)/2 features)."""
    get = design.block if quadratic else design.coordinates
    if len(design.slices) == 1 or design.serial:
        return [function(rows, get(b)) for b, rows in enumerate(design.slices)]
    with single_threaded_blas():
        return list(
            _executor().map(lambda b: function(design.slices[b], get(b)), range(len(design.slices)))
        )


class MixtureParams(NamedTuple):
    """Point estimate of a Gaussian mixture in scikit-learn's conventions."""

    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray
    precisions_cholesky: np.ndarray


class Moments(NamedTuple):
    """Responsibility-weighted statistics of one sweep, per component.

    resp_sum (K,), nk = resp_sum + 10 eps (K,), means (K, D) in the original units,
    scatter: sum_i r_ik (x_i - mu_k)(x_i - mu_k)' reduced to the covariance type
    ((K, D, D) full/tied, (K, D) diag, (K,) spherical), total_weight = sum of sample
    weights.
    """

    resp_sum: np.ndarray
    nk: np.ndarray
    means: np.ndarray
    scatter: np.ndarray
    total_weight: float


class Design:
    """Centred data in row blocks, with the design matrices cached when they fit in memory.

    Parameters
    ----------
    X : ndarray (n_samples, n_features), finite float64
    covariance_type : str
    sample_weight : ndarray (n_samples,) or None
    center : ndarray (n_features,), optional
        The centre of the design (default: the weighted mean of ``X``); one chunk of a
        larger data set is centred on the mean of the whole (:mod:`bayesgmm.em.dask`).
    serial : bool, default=False
        Process the blocks one after the other in the calling thread, without caching
        the design matrices (one chunk of a larger data set, read once per sweep).
    """

    def __init__(
        self,
        X: np.ndarray,
        covariance_type: str,
        sample_weight=None,
        *,
        center: np.ndarray | None = None,
        serial: bool = False,
    ):
        self.n_samples, self.n_features = X.shape
        self.covariance_type = covariance_type
        self.serial = serial
        self.sample_weight = (
            np.ones(self.n_samples) if sample_weight is None else np.asarray(sample_weight)
        )
        self.total_weight = float(self.sample_weight.sum())
        if center is None:
            self.center = (self.sample_weight @ X) / self.total_weight
        else:
            self.center = np.asarray(center, dtype=np.float64)
        self._X = X
        self.n_quadratic = n_quadratic_features(self.n_features, covariance_type)
        width = self.n_quadratic + self.n_features
        rows = min(_BLOCK_BYTES // (8 * width), -(-self.n_samples // (2 * N_THREADS)))
        rows = max(rows, _MIN_BLOCK_ROWS)
        # the same number of blocks, of even sizes (threads finish together)
        n_blocks = max(1, -(-self.n_samples // rows))
        rows = max(1, -(-self.n_samples // n_blocks))
        self.slices = [
            slice(i, min(i + rows, self.n_samples)) for i in range(0, self.n_samples, rows)
        ]
        cacheable = (
            not serial
            and not _whitens_all(covariance_type, self.n_features)
            and 8 * width * self.n_samples <= _CACHE_BYTES
        )
        self._cache = [self._build(r) for r in self.slices] if cacheable else None

    def _build(self, rows: slice) -> np.ndarray:
        Z = np.empty((rows.stop - rows.start, self.n_quadratic + self.n_features))
        np.subtract(self._X[rows], self.center, out=Z[:, self.n_quadratic :])
        with np.errstate(over="ignore"):  # far rows: see _far_log_prob_resp
            quadratic_features(
                Z[:, self.n_quadratic :], self.covariance_type, out=Z[:, : self.n_quadratic]
            )
        return Z

    def block(self, b: int) -> np.ndarray:
        """Design matrix ``[q(x - c), x - c]`` of block ``b`` (rows ``self.slices[b]``)."""
        return self._build(self.slices[b]) if self._cache is None else self._cache[b]

    def coordinates(self, b: int) -> np.ndarray:
        """Centred coordinates ``x - c`` of block ``b`` (the last columns of its design)."""
        if self._cache is not None:
            return self._cache[b][:, self.n_quadratic :]
        return self._X[self.slices[b]] - self.center


def _whitens_all(covariance_type: str, n_features: int) -> bool:
    """Whether every component takes the guarded path (see ``WHITEN_ALL_FEATURES``)."""
    return covariance_type in ("full", "tied") and n_features > WHITEN_ALL_FEATURES


@dataclass
class _Linearised:
    """Per-sweep coefficients: log N_k(x) = Z @ W[:, k] + offset[k] (unguarded k)."""

    W: np.ndarray
    offset: np.ndarray
    guarded: np.ndarray  # component indices evaluated about their own mean
    guard_shift: np.ndarray  # (len(guarded), D): their means, centred coordinates
    guard_coef: np.ndarray  # (F, len(guarded)): -1/2 precision feature coefficients
    # (len(guarded), D, D) precision Cholesky factors (full, tied), None (diag, spherical)
    guard_whiten: np.ndarray | None
    unguarded: np.ndarray  # the other component indices (by the design product)


def linearise(design: Design, params: MixtureParams) -> _Linearised:
    """Per-sweep coefficients of the components' log-densities in the design's features.

    ``design`` needs ``center``, ``covariance_type`` and ``n_features`` only.
    """
    cov_type = design.covariance_type
    n_components = params.means.shape[0]
    precisions = precisions_from_cholesky(params.precisions_cholesky, cov_type)
    if cov_type == "tied":
        precisions = np.broadcast_to(precisions, (n_components, *precisions.shape))
    mu = params.means - design.center
    if cov_type in ("full", "tied"):
        lam_mu = np.einsum("kde,ke->kd", precisions, mu)
    elif cov_type == "diag":
        lam_mu = precisions * mu
    else:
        lam_mu = precisions[:, None] * mu
    mahalanobis_sq = np.einsum("kd,kd->k", lam_mu, mu)
    coef = -0.5 * precision_feature_coefficients(precisions, cov_type)
    with np.errstate(divide="ignore"):
        log_weights = np.log(params.weights)
    base = (
        log_weights
        + log_det_precision_cholesky(params.precisions_cholesky, cov_type, design.n_features)
        - 0.5 * design.n_features * LOG_2PI
    )
    is_guarded = mahalanobis_sq > GUARD_MAHALANOBIS_SQ
    if _whitens_all(cov_type, design.n_features):
        is_guarded[:] = True
    guarded, unguarded = np.flatnonzero(is_guarded), np.flatnonzero(~is_guarded)
    W = np.vstack([coef, lam_mu.T])
    offset = base - 0.5 * mahalanobis_sq
    W[:, guarded] = 0.0
    offset[guarded] = base[guarded]
    whiten = None
    if cov_type == "full":
        whiten = params.precisions_cholesky[guarded]
    elif cov_type == "tied":
        whiten = np.broadcast_to(params.precisions_cholesky, (len(guarded), *precisions.shape[1:]))
    return _Linearised(W, offset, guarded, mu[guarded], coef[:, guarded], whiten, unguarded)


def _log_density_about(
    design: Design, Z: np.ndarray, shifts: np.ndarray, lin: _Linearised, out: np.ndarray
) -> None:
    """``out[:, k] = -1/2 (x - mu_k)' Lambda_k (x - mu_k)`` for the guarded ``k``.

    ``Z``: a block's design matrix ``[q(x - c), x - c]`` or its centred coordinates alone
    (:func:`_map_blocks`); ``shifts`` (n_guarded, n_features):
    the guarded means in the same coordinates. Evaluated about each component's own mean,
    hence exact to rounding (see the module docstring for which path runs when).
    """
    if design.covariance_type in ("diag", "spherical"):
        # spherical: guard_coef is (1, n_guarded), the same coefficient for every feature
        coef_t = np.ascontiguousarray(
            np.broadcast_to(lin.guard_coef, (design.n_features, len(lin.guarded)))
        )
        shifts_t = np.ascontiguousarray(shifts.T)
        start = Z.shape[1] - design.n_features
        diagonal_log_density_about(Z, start, shifts_t, coef_t, lin.guarded, out)
        return
    D = Z[:, Z.shape[1] - design.n_features :]
    for j, k in enumerate(lin.guarded):
        y = (D - shifts[j]) @ lin.guard_whiten[j]
        out[:, k] = -0.5 * np.einsum("ij,ij->i", y, y)


def _moments_about(
    design: Design, Z: np.ndarray, resp: np.ndarray, columns: np.ndarray, shifts: np.ndarray
) -> np.ndarray:
    """``[resp_k @ q(x - s_k), resp_k @ (x - s_k)]`` (len(columns), F) for ``k = columns[j]``,
    ``s_k = shifts[j]``: design-layout moments about component-specific shifts, exact.

    ``Z``: a block's design matrix or its centred coordinates alone, ``resp`` (n_rows,
    n_components).
    diag/spherical: one numba pass for all components; full/tied: ``(r * d)' d`` per
    component (BLAS), packed in the quadratic features' ``triu`` order.
    """
    cov_type = design.covariance_type
    n_features, nq = design.n_features, design.n_quadratic
    out = np.empty((len(columns), nq + n_features))
    if cov_type in ("diag", "spherical"):
        first = np.zeros((len(columns), n_features))
        second = np.zeros((len(columns), n_features))
        shifts = np.ascontiguousarray(shifts)
        diagonal_moments_about(Z, Z.shape[1] - n_features, shifts, resp, columns, first, second)
        out[:, nq:] = first
        out[:, :nq] = second if cov_type == "diag" else second.sum(axis=1)[:, None]
        return out
    D = Z[:, Z.shape[1] - n_features :]
    rows, cols = np.triu_indices(n_features)
    for j, k in enumerate(columns):
        d = D - shifts[j]
        r = resp[:, k]
        out[j, nq:] = r @ d
        out[j, :nq] = ((d * r[:, None]).T @ d)[rows, cols]
    return out


def _finish(design: Design, resp_sum, raw, shifts) -> Moments:
    nq = design.n_quadratic
    nk = resp_sum + 10 * np.finfo(float).eps
    second = unpack_quadratic_moments(raw[:, :nq], design.n_features, design.covariance_type)
    offsets, scatter = scatter_from_moments(
        resp_sum, nk, raw[:, nq:], second, design.covariance_type
    )
    means = offsets + shifts + design.center
    return Moments(resp_sum, nk, means, scatter, design.total_weight)


def _e_block(design: Design, lin: _Linearised, Z: np.ndarray, row_weight: np.ndarray):
    """E-step of one block: ``(resp, log_norm)``, ``resp`` holding ``row_weight *
    p(z = k | x)``. Unguarded components by the design product, guarded ones by
    :func:`_log_density_about`."""
    if lin.guarded.size == 0:
        log_prob = Z @ lin.W
    else:
        log_prob = np.empty((Z.shape[0], len(lin.offset)))
        if lin.unguarded.size:
            log_prob[:, lin.unguarded] = Z @ lin.W[:, lin.unguarded]
        _log_density_about(design, Z, lin.guard_shift, lin, log_prob)
    log_norm = np.empty(Z.shape[0])
    responsibilities_inplace(log_prob, lin.offset, row_weight, log_norm)
    return log_prob, log_norm


def em_sweep(design: Design, params: MixtureParams, *, moments: bool = True):
    """E-step at ``params`` and, if asked, the statistics for the next M-step.

    Returns
    -------
    log_likelihood : float
        ``sum_i w_i log p(x_i | params)``.
    moments : Moments or None
    """
    lin = linearise(design, params)
    partials = sweep_partials(design, lin, moments=moments)
    return finish_sweep(design, lin, *partials, moments=moments)


def sweep_partials(design: Design, lin: _Linearised, *, moments: bool = True):
    """The additive part of a sweep over ``design``'s rows: ``(log_likelihood, raw,
    resp_sum)`` (``raw`` the (K, F) responsibility-weighted design sums, None with
    ``moments=False``). Partials of disjoint row sets add up (chunked data)."""

    def block(rows, Z):
        weight = design.sample_weight[rows]
        resp, log_norm = _e_block(design, lin, Z, weight)
        if not moments:
            return weight @ log_norm, None, None
        if lin.guarded.size == 0:
            raw = resp.T @ Z
        else:
            raw = np.empty((resp.shape[1], design.n_quadratic + design.n_features))
            if lin.unguarded.size:
                raw[lin.unguarded] = resp[:, lin.unguarded].T @ Z
            raw[lin.guarded] = _moments_about(design, Z, resp, lin.guarded, lin.guard_shift)
        return weight @ log_norm, raw, resp.sum(axis=0)

    parts = _map_blocks(block, design, quadratic=lin.unguarded.size > 0)
    log_likelihood = float(sum(p[0] for p in parts))
    if not moments:
        return log_likelihood, None, None
    return log_likelihood, sum(p[1] for p in parts), sum(p[2] for p in parts)


def require_finite_log_likelihood(log_likelihood: float) -> None:
    """Raise :class:`FloatingPointError` (saying why it happens) unless the summed
    log-likelihood of an E-step is finite."""
    if not np.isfinite(log_likelihood):
        raise FloatingPointError(
            "the log-likelihood is not finite: some observations have zero density under "
            "every component (all weights zero, or values too large for float64)"
        )


def finish_sweep(
    design, lin: _Linearised, log_likelihood: float, raw, resp_sum, *, moments: bool = True
):
    """``(log_likelihood, Moments or None)`` from summed :func:`sweep_partials`.

    ``design`` needs ``center``, ``covariance_type``, ``n_features``, ``n_quadratic`` and
    ``total_weight`` only (the whole data's, when the partials were summed over chunks).
    """
    require_finite_log_likelihood(log_likelihood)
    if not moments:
        return log_likelihood, None
    shifts = np.zeros((len(lin.offset), design.n_features))
    shifts[lin.guarded] = lin.guard_shift
    return log_likelihood, _finish(design, resp_sum, raw, shifts)


def moments_from_resp(design: Design, resp: np.ndarray) -> Moments:
    """Statistics of given responsibilities (initialisation), in two exact passes.

    The first pass gives the means; the second takes each component's moments about
    its own mean, so no precision is lost whatever the data's scale or offset.
    """
    weighted = resp * design.sample_weight[:, None]
    resp_sum = weighted.sum(axis=0)
    first = sum(_map_blocks(lambda rows, D: weighted[rows].T @ D, design, quadratic=False))
    shifts = first / (resp_sum + 10 * np.finfo(float).eps)[:, None]

    columns = np.arange(resp.shape[1])

    def block(rows, D):
        return _moments_about(design, D, weighted[rows], columns, shifts)

    raw = sum(_map_blocks(block, design, quadratic=False))
    return _finish(design, resp_sum, raw, shifts)


def log_prob_resp(design: Design, params: MixtureParams):
    """Per-observation ``log p(x_i)`` (n_samples,) and responsibilities (n_samples, K)."""
    lin = linearise(design, params)
    log_norm = np.empty(design.n_samples)
    resp = np.empty((design.n_samples, params.means.shape[0]))
    ones = np.ones(design.n_samples)

    def block(rows, Z):
        # far rows (which may overflow) are redone below by _far_log_prob_resp
        with np.errstate(over="ignore", invalid="ignore"):
            resp[rows], log_norm[rows] = _e_block(design, lin, Z, ones[rows])

    _map_blocks(block, design, quadratic=lin.unguarded.size > 0)
    # per feature, the largest precision Cholesky entry: |d| @ scale bounds |d P_k|
    n_components, n_features = params.means.shape
    cov_type, prec_chol = design.covariance_type, params.precisions_cholesky
    chol = None  # dense (K, D, D) factors: built for diag/spherical only if far rows need them
    if cov_type in ("full", "tied"):
        chol = full_covariances(prec_chol, cov_type, n_components, n_features)
        scale = np.abs(chol).max(axis=(0, 2))
    elif cov_type == "diag":
        scale = np.abs(prec_chol).max(axis=0)
    else:
        scale = np.full(n_features, np.abs(prec_chol).max())
    with np.errstate(over="ignore", invalid="ignore"):
        displacement = np.abs(design.center - params.means.mean(axis=0)) @ scale
    if not np.finfo(np.float64).eps * displacement <= CENTRE_ROUNDING:
        far = np.arange(design.n_samples)
    else:
        far = np.flatnonzero(~(log_norm > FAR_LOG_DENSITY))  # non-finite included
    if far.size:
        if chol is None:
            chol = full_covariances(prec_chol, cov_type, n_components, n_features)
        log_norm[far], resp[far] = _far_log_prob_resp(design._X[far], params, design, chol)
    return log_norm, resp


def _far_log_prob_resp(X: np.ndarray, params: MixtureParams, design: Design, chol: np.ndarray):
    """``log p(x)`` and responsibilities of rows far from the design centre, without overflow.

    With ``d = x - r = s y`` (``r`` the mean of the component means, ``s = max |d_j|``) the
    whitened residual of component ``k`` is ``(x - mu_k) P_k = s v_k - w_k`` with
    ``v_k = y P_k``, ``w_k = (mu_k - r) P_k`` (``P_k`` the precision Cholesky factor), so::

        log N_k(x) = C_k - |s v_k - w_k|**2 / 2,   C_k = log w_k + log det P_k - D/2 log 2 pi

    Differences ``log N_k - log N_m`` are computed as ``C_k - C_m - sum_j a_j b_j / 2``
    with ``a = s (v_k - v_m) - (w_k - w_m)`` and ``b = s (v_k + v_m) - (w_k + w_m)``: equal
    leading terms cancel exactly, so the linear term (tied covariances) and the small
    coordinates of ``d`` still count, and nothing overflows but a difference that is
    itself below -1.8e308. Far away, the component with the widest spread along the
    direction of ``x`` takes all the responsibility; ``log p(x)`` is -inf only below
    -1.8e308 (not representable). ``chol``: the (K, D, D) precision Cholesky factors.
    """
    cov_type = design.covariance_type
    n_features = params.means.shape[1]
    ref = params.means.mean(axis=0)
    d = X - ref
    s = np.abs(d).max(axis=1)
    s = np.where(s > 0, s, 1.0)[:, None]
    v = np.einsum("nd,kde->nke", d / s, chol)
    w = np.einsum("kd,kde->ke", params.means - ref, chol)
    with np.errstate(divide="ignore"):
        log_weights = np.log(params.weights)
    C = (
        log_weights
        + log_det_precision_cholesky(params.precisions_cholesky, cov_type, n_features)
        - 0.5 * n_features * LOG_2PI
    )
    rows = np.arange(len(X))
    scale = s[:, :, None]
    with np.errstate(over="ignore", invalid="ignore", under="ignore"):
        u = v - w[None] / scale  # residual / s
        best = np.argmax(C / s / s - 0.5 * np.einsum("nke,nke->nk", u, u), axis=1)
        for _ in range(2):  # the scaled argmax can be off by rounding: move to the true max
            v_best, w_best = v[rows, best][:, None, :], w[best][:, None, :]
            delta = (v - v_best) * scale - (w[None] - w_best)
            total = (v + v_best) * scale - (w[None] + w_best)
            quadratic = np.where(delta == 0.0, 0.0, delta * total).sum(axis=2)
            diff = (C - C[best][:, None]) - 0.5 * quadratic
            diff = np.where(np.isnan(diff), -np.inf, diff)
            diff[rows, best] = 0.0
            best = np.argmax(diff, axis=1)
        diff = diff - diff[rows, best, None]
        residual = v[rows, best] * s - w[best]  # (x - mu_best) P_best, inf on overflow
        peak = C[best] - 0.5 * np.einsum("nd,nd->n", residual, residual)
    weight = np.exp(diff)
    total = weight.sum(axis=1)
    return peak + np.log(total), weight / total[:, None]
