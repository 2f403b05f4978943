"""EM on incomplete and noisy rows: missing entries and per-row measurement errors.

One model covers both (Ghahramani & Jordan 1994, "Supervised learning from incomplete
data via an EM approach", NIPS 6; Bovy, Hogg & Roweis 2011, "Extreme deconvolution", Ann.
Appl. Stat. 5): row ``i`` is a true point ``v_i ~ sum_k w_k N(mu_k, Sigma_k)`` seen through
noise ``x_i = v_i + e_i``, ``e_i ~ N(0, S_i)`` (``S_i = 0`` without measurement errors),
of which only the coordinates ``o_i`` are observed (missing at random). Component ``k``'s
density of the observed part is therefore ``N(x_io | mu_ko, T_ik)`` with
``T_ik = (Sigma_k + S_i)_{o_i o_i}``: the E-step uses the observed coordinates only. Given
component ``k``, the true point has the Gaussian posterior

    b_ik = mu_k + Sigma_{k,:o} T_ik^-1 (x_io - mu_ko),
    B_ik = Sigma_k - Sigma_{k,:o} T_ik^-1 Sigma_{k,o:},

and the M-step is the complete-data M-step on the expected sufficient statistics:
``sum_i r_ik b_ik`` and ``sum_i r_ik (b_ik b_ik' + B_ik)`` (reduced to the covariance
type: the diagonal for 'diag', the trace for 'spherical', the sum over components for
'tied'; the MAP M-step of :mod:`bayesgmm.em.priors` takes the same statistics). Each
iteration raises the observed-data log-likelihood (plus log prior).

Cost. Rows are sorted once by missingness pattern and cut into blocks, which run in
parallel threads. Without noise, ``T_ik`` depends only on the pattern and the component:
one Cholesky factor of ``Sigma_{k,oo}`` per (pattern, component) per iteration serves
every row of the pattern, and ``b_ik - mu_k`` is a fixed linear map of ``x_io - mu_ko``,
so the fused kernel :func:`~bayesgmm.em.kernels.incomplete_block_statistics` accumulates
only the observed coordinates' moments per row, mapped to all coordinates (plus ``B``)
once per pattern: the pass costs about what the complete-data pass costs (1.3-2x at
N = 1e5, D = 5, K = 4 with 30% missing; ``benchmarks/em_missing.py``). With noise every
row has its own ``T_ik``: :func:`~bayesgmm.em.kernels.noisy_block_statistics` factors it
row by row, as extreme deconvolution needs. Per-row outputs (predictions, imputations)
and the initialisation use batched NumPy.

Rows with no observed coordinate carry no information: :class:`IncompleteData` keeps them
(their responsibilities are the weights and their log-likelihood 0); the estimator drops
them before fitting.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from functools import cache
from typing import NamedTuple

import numpy as np

from bayesgmm.em.gaussian import LOG_2PI, full_covariances, scatter_from_moments
from bayesgmm.em.kernels import (
    incomplete_block_statistics,
    noisy_block_statistics,
    responsibilities_inplace,
)
from bayesgmm.em.sweep import (
    N_THREADS,
    MixtureParams,
    Moments,
    require_finite_log_likelihood,
    single_threaded_blas,
)

__all__ = [
    "NAN_POLICIES",
    "IncompleteData",
    "check_noise_cov",
    "conditional_means",
    "incomplete_log_prob_resp",
    "incomplete_moments_from_resp",
    "incomplete_sweep",
    "observed_mean_and_covariance",
]

#: How an estimator treats NaN in X: integrate the missing entries out, or refuse them.
NAN_POLICIES = ("marginalize", "raise")
#: Rows per block of the pass (noise-free rows; noisy rows use an eighth of it): bounds the
#: temporary (components x rows x features) arrays.
_BLOCK_ROWS = 16384
#: Relative tolerance of the symmetry and positive semi-definiteness checks of noise_cov.
_NOISE_RTOL = 1e-10


class _Block(NamedTuple):
    rows: slice  # rows of the pattern-sorted data
    pattern: int
    observed: np.ndarray  # indices of the observed features
    missing: np.ndarray  # indices of the missing features


class IncompleteData:
    """Rows with missing entries (NaN) and/or measurement errors, grouped by pattern.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Float64, NaN for a missing entry, no inf.
    sample_weight : ndarray of shape (n_samples,), optional
    noise_cov : ndarray of shape (n_samples, n_features, n_features) or (n_samples,
        n_features), optional
        Checked by :func:`check_noise_cov` (full error covariances, or error variances).

    Attributes
    ----------
    order : ndarray (n_samples,)
        Original index of each pattern-sorted row.
    total_weight : float
    patterns : ndarray of bool, shape (n_patterns, n_features)
        Observed features of each missingness pattern.
    """

    def __init__(self, X: np.ndarray, sample_weight=None, noise_cov=None):
        X = np.asarray(X, dtype=np.float64)
        self.n_samples, self.n_features = X.shape
        observed = ~np.isnan(X)
        if self.n_features <= 62:
            codes = observed @ (1 << np.arange(self.n_features, dtype=np.int64))
            _, first, inverse = np.unique(codes, return_index=True, return_inverse=True)
            patterns = observed[first]
        else:
            patterns, inverse = np.unique(observed, axis=0, return_inverse=True)
        inverse = inverse.ravel()
        self.patterns = patterns
        self.order = np.argsort(inverse, kind="stable")
        self.X = np.ascontiguousarray(X[self.order])
        weight = np.ones(self.n_samples) if sample_weight is None else np.asarray(sample_weight)
        self.sample_weight = np.ascontiguousarray(weight[self.order], dtype=np.float64)
        self.total_weight = float(self.sample_weight.sum())
        self.noise = None if noise_cov is None else np.ascontiguousarray(noise_cov[self.order])
        counts = np.bincount(inverse, minlength=len(patterns))
        step = _BLOCK_ROWS if noise_cov is None else _BLOCK_ROWS // 8
        self.blocks = []
        start = 0
        for p, count in enumerate(counts):
            obs = np.flatnonzero(patterns[p])
            miss = np.flatnonzero(~patterns[p])
            for lo in range(start, start + count, step):
                hi = min(lo + step, start + count)
                self.blocks.append(_Block(slice(lo, hi), p, obs, miss))
            start += count

    def noise_block(self, block: _Block) -> np.ndarray | None:
        """The block's error covariances on its observed features, (n_rows, d_o, d_o)."""
        if self.noise is None:
            return None
        o = block.observed
        S = self.noise[block.rows]
        if S.ndim == 2:
            S = S[:, o]
            return S[:, :, None] * np.eye(len(o))
        return S[:, o][:, :, o]


class _PatternTerms(NamedTuple):
    whiten: np.ndarray  # (K, d_o, d_o) L^-T, L L' = Sigma_oo: z = (x_o - mu_o) @ whiten
    log_det: np.ndarray  # (K,) sum log diag L
    gain: np.ndarray  # (K, d_o, d_m) Sigma_oo^-1 Sigma_om: E[x_m - mu_m | x_o] = diff @ gain
    cond_cov: np.ndarray  # (K, d_m, d_m) Sigma_mm - Sigma_mo Sigma_oo^-1 Sigma_om


def _pattern_terms(cov: np.ndarray, block: _Block) -> _PatternTerms:
    """Per (pattern, component) factors of a noise-free pattern; ``cov`` is (K, D, D).

    The rows are then whitened and their missing coordinates predicted by matrix
    products (the inverse Cholesky factor, as scikit-learn's precision Cholesky)."""
    o, m = block.observed, block.missing
    chol = np.linalg.cholesky(cov[:, o][:, :, o])
    inverse = _solve_lower(chol, np.broadcast_to(np.eye(len(o)), chol.shape))  # L^-1
    log_det = np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(axis=1)
    whitened = inverse @ cov[:, o][:, :, m]  # L^-1 Sigma_om, (K, d_o, d_m)
    gain = np.swapaxes(inverse, 1, 2) @ whitened
    cond_cov = cov[:, m][:, :, m] - np.swapaxes(whitened, 1, 2) @ whitened
    whiten = np.ascontiguousarray(np.swapaxes(inverse, 1, 2))
    return _PatternTerms(whiten, log_det, np.ascontiguousarray(gain), cond_cov)


class _BlockTerms(NamedTuple):
    log_prob: np.ndarray  # (n_rows, K) log N(x_o | mu_ko, T_ik), C-contiguous
    shifted: np.ndarray  # (K, n_rows, D) b_ik - mu_k
    cond_cov: np.ndarray  # (K, d_m, d_m) noise-free, or (K, n_rows, d_o, D) noisy factors


def _block_terms(
    data: IncompleteData, block: _Block, params: MixtureParams, cov, cache, *, need: int = 2
):
    """Log-densities of a block's rows and their conditional expectations per component.

    Noise-free: ``cond_cov`` is ``B_k`` on the missing block, the same for every row.
    Noisy: ``cond_cov`` holds ``W_ik = L_ik^-1 Sigma_{k,o:}`` (``L_ik L_ik' = T_ik``), so
    that ``B_ik = Sigma_k - W_ik' W_ik``. ``need``: 0 the log-densities only (``shifted``
    and ``cond_cov`` None for noisy rows), 1 also ``shifted``, 2 everything.
    """
    o, m = block.observed, block.missing
    X = data.X[block.rows]
    n_rows, n_components = X.shape[0], params.means.shape[0]
    d_o = len(o)
    shifted = np.empty((n_components, n_rows, data.n_features))
    if d_o == 0:  # nothing observed: density 1, the true point is the component itself
        shifted[:] = 0.0
        return _BlockTerms(np.zeros((n_rows, n_components)), shifted, cov)
    diff = X[:, o][None] - params.means[:, None, o]  # (K, n, d_o)
    noise = data.noise_block(block)
    if noise is None:
        if block.pattern not in cache:
            cache[block.pattern] = _pattern_terms(cov, block)
        terms = cache[block.pattern]
        z = diff @ terms.whiten  # (K, n, d_o)
        maha = np.einsum("kno,kno->kn", z, z)
        log_det = terms.log_det[:, None]
        shifted[:, :, o] = diff
        if len(m):
            shifted[:, :, m] = diff @ terms.gain
        cond_cov = terms.cond_cov
    else:
        cov_o = cov[:, o]  # (K, d_o, D)
        T = cov_o[:, :, o][:, None] + noise[None]  # (K, n, d_o, d_o)
        chol = _cholesky(T)
        z = _solve_lower(chol, diff[..., None])  # (K, n, d_o, 1)
        maha = np.einsum("knoi,knoi->kn", z, z)
        log_det = np.log(np.diagonal(chol, axis1=2, axis2=3)).sum(axis=2)
        shifted = cond_cov = None
        if need >= 1:
            u = _solve_lower_transposed(chol, z)[..., 0]  # T^-1 diff, (K, n, d_o)
            shifted = np.einsum("kod,kno->knd", cov_o, u)
        if need >= 2:
            cond_cov = _solve_lower(
                chol, np.broadcast_to(cov_o[:, None], (*chol.shape[:2], *cov_o.shape[1:]))
            )
    log_prob = np.ascontiguousarray((-0.5 * maha - log_det - 0.5 * d_o * LOG_2PI).T)
    return _BlockTerms(log_prob, shifted, cond_cov)


def _cholesky(A: np.ndarray) -> np.ndarray:
    """Lower Cholesky factors of a stack (..., d, d) of positive definite matrices,
    vectorised over the stack (LAPACK per small matrix costs a microsecond each)."""
    L = np.zeros_like(A)
    for j in range(A.shape[-1]):
        row = L[..., j, :j]
        pivot = A[..., j, j] - np.einsum("...l,...l->...", row, row)
        if not np.all(pivot > 0):
            raise np.linalg.LinAlgError("Matrix is not positive definite")
        L[..., j, j] = np.sqrt(pivot)
        below = A[..., j + 1 :, j] - np.einsum("...il,...l->...i", L[..., j + 1 :, :j], row)
        L[..., j + 1 :, j] = below / L[..., j, j, None]
    return L


def _solve_lower(L: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``L^-1 b`` for a stack of lower-triangular ``L`` (..., d, d) and ``b`` (..., d, m),
    by forward substitution vectorised over the stack (d is small; scipy's batched
    triangular solve loops in Python over the stack)."""
    x = np.empty(np.broadcast_shapes(L.shape[:-2], b.shape[:-2]) + b.shape[-2:])
    for j in range(L.shape[-1]):
        acc = b[..., j, :] - np.einsum("...l,...lm->...m", L[..., j, :j], x[..., :j, :])
        x[..., j, :] = acc / L[..., j, j, None]
    return x


def _solve_lower_transposed(L: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``L^-T b`` (back substitution), shapes as :func:`_solve_lower`."""
    d = L.shape[-1]
    x = np.empty(np.broadcast_shapes(L.shape[:-2], b.shape[:-2]) + b.shape[-2:])
    for j in range(d - 1, -1, -1):
        acc = b[..., j, :] - np.einsum("...l,...lm->...m", L[..., j + 1 :, j], x[..., j + 1 :, :])
        x[..., j, :] = acc / L[..., j, j, None]
    return x


def _log_weights(params: MixtureParams) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return np.log(params.weights)


def _covariance_stack(params: MixtureParams, covariance_type: str) -> np.ndarray:
    n_components, n_features = params.means.shape
    return np.ascontiguousarray(
        full_covariances(params.covariances, covariance_type, n_components, n_features)
    )


def _accumulate(data, block, terms, resp, cov, first, second) -> None:
    """Add a block's responsibility-weighted ``sum r d``, ``sum r (d d' + B)``."""
    for k in range(resp.shape[1]):
        r = resp[:, k]
        d = terms.shifted[k]
        first[k] += r @ d
        second[k] += (d * r[:, None]).T @ d
    if block.observed.size == 0:  # B = Sigma
        second += resp.sum(axis=0)[:, None, None] * cov
        return
    if data.noise is None:
        m = block.missing
        if m.size:
            ix = np.ix_(np.arange(resp.shape[1]), m, m)
            second[ix] += resp.sum(axis=0)[:, None, None] * terms.cond_cov
        return
    W = terms.cond_cov  # (K, n, d_o, D)
    second += resp.sum(axis=0)[:, None, None] * cov
    for k in range(resp.shape[1]):  # sum_i r_ik W_ik' W_ik as one matrix product
        flat = W[k].reshape(-1, W.shape[-1])
        second[k] -= (flat * np.repeat(resp[:, k], W.shape[2])[:, None]).T @ flat


def _moments(data, params, covariance_type, resp_sum, first, second) -> Moments:
    """:class:`Moments` from the sums about the current means (``second`` (K, D, D))."""
    nk = resp_sum + 10 * np.finfo(float).eps
    if covariance_type == "diag":
        second = np.diagonal(second, axis1=1, axis2=2).copy()
    elif covariance_type == "spherical":
        second = np.trace(second, axis1=1, axis2=2)
    offsets, scatter = scatter_from_moments(resp_sum, nk, first, second, covariance_type)
    return Moments(resp_sum, nk, params.means + offsets, scatter, data.total_weight)


def _sweep_block(data, block, params, cov, cache, log_weights):
    """``(log_likelihood, resp_sum, first, second)`` of one block (moments about the
    current means; ``second`` includes the conditional covariances)."""
    n_components, n_features = params.means.shape
    weight = data.sample_weight[block.rows]
    if data.noise is None and block.observed.size:
        terms = cache[block.pattern]
        o, m = block.observed, block.missing
        offset = log_weights - terms.log_det - 0.5 * o.size * LOG_2PI
        log_likelihood, resp_sum, first_o, second_o = incomplete_block_statistics(
            data.X[block.rows], o, params.means, terms.whiten, offset, weight
        )
        if not np.isfinite(log_likelihood):
            return log_likelihood, resp_sum, np.zeros((n_components, n_features)), None
        # E[x - mu_k | x_o, k] = A_k d with A_k = I on the observed, gain_k' on the missing
        first = np.zeros((n_components, n_features))
        second = np.zeros((n_components, n_features, n_features))
        first[:, o] = first_o
        second[:, o[:, None], o] = second_o
        if m.size:
            gain_t = np.swapaxes(terms.gain, 1, 2)  # (K, d_m, d_o)
            cross = gain_t @ second_o  # (K, d_m, d_o)
            first[:, m] = np.einsum("kmo,ko->km", gain_t, first_o)
            second[:, m[:, None], o] = cross
            second[:, o[:, None], m] = np.swapaxes(cross, 1, 2)
            second[:, m[:, None], m] = cross @ terms.gain + resp_sum[:, None, None] * (
                terms.cond_cov
            )
        return log_likelihood, resp_sum, first, second
    if block.observed.size:  # noisy rows
        log_likelihood, resp_sum, first, second = noisy_block_statistics(
            data.X[block.rows], block.observed, params.means, cov,
            np.ascontiguousarray(data.noise_block(block)), log_weights, weight,
        )  # fmt: skip
        if np.isfinite(log_likelihood):
            second += resp_sum[:, None, None] * cov
        return log_likelihood, resp_sum, first, second
    terms = _block_terms(data, block, params, cov, cache)
    log_norm = np.empty(len(weight))
    resp = terms.log_prob
    responsibilities_inplace(resp, log_weights, weight, log_norm)
    log_likelihood = float(weight @ log_norm)
    first = np.zeros((n_components, n_features))
    second = np.zeros((n_components, n_features, n_features))
    if not np.isfinite(log_likelihood):
        return log_likelihood, np.zeros(n_components), first, second
    _accumulate(data, block, terms, resp, cov, first, second)
    return log_likelihood, resp.sum(axis=0), first, second


@cache
def _executor() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=N_THREADS, thread_name_prefix="bayesgmm-missing")


def incomplete_sweep(
    data: IncompleteData, params: MixtureParams, covariance_type: str, *, moments: bool = True
):
    """E-step at ``params`` and the statistics of the next M-step (one pass).

    Noise-free blocks run the fused numba kernel
    :func:`~bayesgmm.em.kernels.incomplete_block_statistics`, blocks in parallel threads
    (one per core, BLAS single-threaded meanwhile); noisy blocks run batched NumPy.

    Returns
    -------
    log_likelihood : float
        ``sum_i w_i log p(x_io | params)`` (observed coordinates, noise included).
    moments : Moments or None
        Expected complete-data statistics of the true points.
    """
    cov = _covariance_stack(params, covariance_type)
    log_weights = _log_weights(params)
    cache: dict = {}
    if data.noise is None:  # the per-pattern factors, before the threads read them
        for block in data.blocks:
            if block.observed.size and block.pattern not in cache:
                cache[block.pattern] = _pattern_terms(cov, block)

    def run(block):
        return _sweep_block(data, block, params, cov, cache, log_weights)

    if len(data.blocks) == 1 or N_THREADS == 1:
        parts = [run(block) for block in data.blocks]
    else:
        with single_threaded_blas():
            parts = list(_executor().map(run, data.blocks))
    log_likelihood = float(sum(p[0] for p in parts))
    require_finite_log_likelihood(log_likelihood)
    if not moments:
        return log_likelihood, None
    resp_sum, first, second = (sum(p[j] for p in parts) for j in (1, 2, 3))
    return log_likelihood, _moments(data, params, covariance_type, resp_sum, first, second)


def incomplete_moments_from_resp(
    data: IncompleteData, params: MixtureParams, resp: np.ndarray, covariance_type: str
) -> Moments:
    """Expected complete-data statistics for given responsibilities (rows in the original
    order, (n_samples, K)), with the conditional expectations taken under ``params``.

    Initialisation: ``params`` from a first guess, ``resp`` from ``init_params``.
    """
    cov = _covariance_stack(params, covariance_type)
    n_components, n_features = params.means.shape
    weighted = (resp * data.sample_weight[np.argsort(data.order)][:, None])[data.order]
    cache: dict = {}
    first = np.zeros((n_components, n_features))
    second = np.zeros((n_components, n_features, n_features))
    for block in data.blocks:
        terms = _block_terms(data, block, params, cov, cache)
        _accumulate(data, block, terms, weighted[block.rows], cov, first, second)
    resp_sum = weighted.sum(axis=0)
    return _moments(data, params, covariance_type, resp_sum, first, second)


def _per_row(data, params, covariance_type, *, means: bool):
    cov = _covariance_stack(params, covariance_type)
    n_components = params.means.shape[0]
    log_weights = _log_weights(params)
    ones = np.ones(data.n_samples)
    log_norm = np.empty(data.n_samples)
    resp = np.empty((data.n_samples, n_components))
    posterior = np.empty((data.n_samples, data.n_features)) if means else None
    cache: dict = {}
    for block in data.blocks:
        rows = block.rows
        terms = _block_terms(data, block, params, cov, cache, need=int(means))
        block_resp = terms.log_prob
        with np.errstate(over="ignore", invalid="ignore"):
            responsibilities_inplace(block_resp, log_weights, ones[rows], log_norm[rows])
        if block.observed.size == 0:  # p(nothing) = 1 exactly, not a rounded sum of weights
            log_norm[rows] = 0.0
        resp[rows] = block_resp
        if means:
            posterior[rows] = block_resp @ params.means + np.einsum(
                "nk,knd->nd", block_resp, terms.shifted
            )
    inverse = np.argsort(data.order)
    return log_norm[inverse], resp[inverse], None if posterior is None else posterior[inverse]


def incomplete_log_prob_resp(data: IncompleteData, params: MixtureParams, covariance_type: str):
    """Per-row ``log p(x_io)`` (n_samples,) and responsibilities (n_samples, K), in the
    original row order. A row with no observed coordinate gets log-likelihood 0 and the
    weights as responsibilities."""
    log_norm, resp, _ = _per_row(data, params, covariance_type, means=False)
    return log_norm, resp


def conditional_means(data: IncompleteData, params: MixtureParams, covariance_type: str):
    """Posterior mean of each true row, ``sum_k r_ik b_ik`` (n_samples, n_features).

    Without noise the observed entries are returned unchanged (up to rounding: callers
    copy them back) and each missing entry is ``E[x_m | x_o]`` under the mixture; with
    noise every entry is deconvolved.
    """
    return _per_row(data, params, covariance_type, means=True)[2]


def observed_mean_and_covariance(
    X: np.ndarray, sample_weight=None, *, tol: float = 1e-10, max_iter: int = 1000
):
    """Maximum-likelihood mean and covariance of one Gaussian from rows with NaN (EM).

    The incomplete-data analogue of the weighted sample mean and covariance (which it
    returns, after one iteration, when nothing is missing); the data-scaled defaults of
    MAP-EM's prior are computed from it. Starts at the observed means and variances,
    iterates until the log-likelihood per unit weight changes by less than ``tol``.
    """
    data = IncompleteData(X, sample_weight)
    weight = np.ones(len(X)) if sample_weight is None else np.asarray(sample_weight)
    observed = ~np.isnan(X)
    counts = weight @ observed
    mean = weight @ np.where(observed, X, 0.0) / counts
    var = weight @ np.where(observed, X - mean, 0.0) ** 2 / counts
    cov = np.diag(var)
    previous = -np.inf
    for _ in range(max_iter):
        params = MixtureParams(np.ones(1), mean[None], cov[None], np.empty((1, 0, 0)))
        log_likelihood, moments = incomplete_sweep(data, params, "full")
        mean, cov = moments.means[0], moments.scatter[0] / moments.nk[0]
        objective = log_likelihood / data.total_weight
        if abs(objective - previous) < tol:
            break
        previous = objective
    return mean, cov


def check_noise_cov(noise_cov, X: np.ndarray) -> np.ndarray | None:
    """``noise_cov`` checked against ``X`` (n_samples, n_features), or None for all zeros.

    Accepted: (n_samples, n_features, n_features) symmetric positive semi-definite error
    covariances, or (n_samples, n_features) error variances (>= 0). Entries that involve
    a missing coordinate of their row (NaN in ``X``) are ignored and may be NaN; the others
    must be finite. Symmetry and positive semi-definiteness are checked on each row's
    observed block, to a relative tolerance of 1e-10 (the matrix is then symmetrised).

    Returns a float64 copy with the ignored entries set to 0, or None when every entry is
    0 (no measurement error: the estimator then runs exactly as without ``noise_cov``).
    """
    if noise_cov is None:
        return None
    n_samples, n_features = X.shape
    try:
        S = np.array(noise_cov, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(
            f"noise_cov must be a numeric array of shape ({n_samples}, {n_features}, "
            f"{n_features}) (error covariances) or ({n_samples}, {n_features}) (error "
            f"variances), got {type(noise_cov).__name__}"
        ) from None
    full_shape, diag_shape = (n_samples, n_features, n_features), (n_samples, n_features)
    if S.shape not in (full_shape, diag_shape):
        raise ValueError(
            f"noise_cov must have shape {full_shape} (a full error covariance per row) or "
            f"{diag_shape} (error variances per row), to match X of shape {X.shape}; got "
            f"{S.shape}"
        )
    missing = np.isnan(X)
    ignored = missing if S.ndim == 2 else missing[:, :, None] | missing[:, None, :]
    S[ignored] = 0.0
    if not np.isfinite(S).all():
        rows = np.flatnonzero(~np.isfinite(S).reshape(n_samples, -1).all(axis=1))
        raise ValueError(
            f"noise_cov contains NaN or inf in row(s) {rows[:5].tolist()} at observed "
            "coordinates: give finite error (co)variances (NaN is allowed only for "
            "coordinates that are missing in X)"
        )
    if S.ndim == 2:
        bad = np.flatnonzero((S < 0).any(axis=1))
        if bad.size:
            raise ValueError(
                f"noise_cov holds error variances (shape {diag_shape}) and must be >= 0; "
                f"row(s) {bad[:5].tolist()} have negative entries"
            )
    else:
        scale = np.abs(S).max(axis=(1, 2))
        asym = np.abs(S - np.swapaxes(S, 1, 2)).max(axis=(1, 2))
        bad = np.flatnonzero(asym > _NOISE_RTOL * scale)
        if bad.size:
            raise ValueError(
                f"noise_cov must be symmetric (error covariance matrices); row(s) "
                f"{bad[:5].tolist()} are not (largest asymmetry {asym[bad[0]]:.3g}): pass "
                "(S + S.T) / 2 if the asymmetry is rounding"
            )
        S = 0.5 * (S + np.swapaxes(S, 1, 2))
        smallest = np.linalg.eigvalsh(S)[:, 0]
        bad = np.flatnonzero(smallest < -_NOISE_RTOL * np.maximum(scale, 1e-300))
        if bad.size:
            raise ValueError(
                f"noise_cov must be positive semi-definite (error covariance matrices); "
                f"row(s) {bad[:5].tolist()} are not (smallest eigenvalue "
                f"{smallest[bad[0]]:.3g})"
            )
    if not S.any():
        return None
    return S
