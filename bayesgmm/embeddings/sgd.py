"""The compiled training loop of the Gaussian-mixture word embeddings (numba, Hogwild threads).

Parameter records. During training each word's whole state (its mixture and its AdaGrad
accumulators) is one row of a 2-D array, the word's *record* (:func:`record_layout`)::

    [ means (K, D') | variances (K, 1) or (K, D) | weight logits (K,) |
      accumulators: logits (K,), means (K,), variances (K,) | padding ]

with the means padded with zeros from ``D`` to ``D'`` (a multiple of 128 bytes, so that the
loops over the dimension run whole vector iterations; the padding's gradient is zero and it
stays zero) and each record padded to whole 64-byte cache lines, in an array aligned to 64
bytes. One word's updates thus write only its own cache lines: with separate arrays for the
logits, variances and accumulators, eight words' logits shared one cache line, and the
most frequent words (the first rows, and the most often updated) made the two threads of a
fit invalidate each other's caches (K = 1 gained 14% and K = 2 7% in words/s with two
threads from spreading those rows out; the records keep the frequent words together for
the single-threaded locality as well). :func:`pack_records` and :func:`unpack_records`
convert between records and the ``(logits, means, variances)`` arrays of the estimator.

Compiled functions, all cached on disk (``cache=True``) so that a process pays numba's
compilation once per machine:

- the log expected likelihood kernel between two records and its gradient, as a forward
  pass (energy, keeping the responsibilities and squared distances) and a backward pass
  (gradient from what the forward pass kept); the training loop runs the backward pass only
  for triples whose hinge is active (an inactive hinge has zero loss and zero gradient,
  exactly). :func:`log_energy` and :func:`pair_loss_and_gradient` expose them for tests:
  the same quantities as :mod:`bayesgmm.embeddings.kernel`.
- an AdaGrad step on one record with the paper's bounds: variances clipped to
  ``[var_min, var_max]``, each component mean projected onto the ball of radius
  ``max_norm``.
- :func:`alias_table`: Walker's alias table of the negatives' distribution (O(1) draws; a
  binary search of the CDF cost about a fifth of the training time on the KJV).
- :func:`train_block`: skip-gram with subsampling, dynamic windows and negative sampling over
  a block of sentence chunks; the chunks run in parallel (``prange``) and update the shared
  records without locks, as word2vec does (Hogwild; Recht et al. 2011).

Precision: the records may be float32 or float64 (one compilation each), the AdaGrad
accumulators included. The vector loops over the dimension run in the records' type
(float32 by default in :class:`~bayesgmm.embeddings.Word2GM`: twice the SIMD width);
scalars (energies, logs, exps, AdaGrad step sizes) are float64.

Parametrisation: a word's mixture has weight logits ``(K,)`` (weights = softmax), means
``(K, D)`` and variances ``(K, 1)`` (spherical) or ``(K, D)`` (diagonal), stored directly
(not their logarithms) and kept in their bounds by projection after every step.

Randomness: each chunk has its own 64-bit linear congruential generator (word2vec's) seeded
from the caller's seeds, so the random draws (subsampling, window sizes, negatives) do not
depend on the number of threads; the floating-point result does (lock-free updates race),
except with one thread, where it is reproducible bit for bit.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numba as nb
import numpy as np
from numba.extending import overload

from bayesgmm.em.gaussian import LOG_2PI

__all__ = [
    "RecordLayout",
    "alias_table",
    "log_energy",
    "pack_records",
    "pair_loss_and_gradient",
    "record_layout",
    "train_block",
    "unpack_records",
]

#: Bytes to which the padded dimension ``D'`` of the means is rounded up.
_MEANS_ALIGN = 128
#: Bytes of a cache line: the records' size and the arrays' start are multiples of it.
_CACHE_LINE = 64
_LCG_MUL = np.uint64(25214903917)
_LCG_ADD = np.uint64(11)
_SHIFT = np.uint64(11)
_INV_2_53 = 1.0 / 9007199254740992.0


class RecordLayout(NamedTuple):
    """Sizes of a record (see the module docstring): ``n_components`` (K), ``n_dims`` (D),
    ``d_pad`` (D', the means' padded length), ``var_cols`` (1 spherical, D diagonal),
    ``row`` (entries per record) and ``dtype``."""

    n_components: int
    n_dims: int
    d_pad: int
    var_cols: int
    row: int
    dtype: np.dtype


def record_layout(n_components: int, n_dims: int, var_cols: int, dtype="float32") -> RecordLayout:
    """The record layout of ``n_components`` components of dimension ``n_dims`` with
    ``var_cols`` variances each (1: spherical, ``n_dims``: diagonal), in ``dtype``."""
    dt = np.dtype(dtype)
    step = _MEANS_ALIGN // dt.itemsize
    d_pad = -(-n_dims // step) * step
    used = n_components * (d_pad + var_cols + 4)
    line = _CACHE_LINE // dt.itemsize
    return RecordLayout(n_components, n_dims, d_pad, var_cols, -(-used // line) * line, dt)


def pack_records(logits: np.ndarray, means: np.ndarray, variances: np.ndarray,
                 layout: RecordLayout) -> np.ndarray:  # fmt: skip
    """Records (n_words, ``layout.row``) in ``layout.dtype``, starting on a cache line, of
    the mixtures ``logits`` (n_words, K), ``means`` (n_words, K, D) and ``variances``
    (n_words, K, 1) or (n_words, K, D); zero accumulators and padding."""
    n, k, d, dp, dv = len(logits), layout.n_components, layout.n_dims, layout.d_pad, layout.var_cols
    shapes = (np.shape(logits), np.shape(means), np.shape(variances))
    if shapes != ((n, k), (n, k, d), (n, k, dv)):
        raise ValueError(
            f"pack_records: logits, means and variances must have shapes (n, {k}), "
            f"(n, {k}, {d}) and (n, {k}, {dv}) for this layout, got {shapes}"
        )
    itemsize = layout.dtype.itemsize
    raw = np.zeros(n * layout.row + _CACHE_LINE // itemsize, dtype=layout.dtype)
    skip = (-raw.ctypes.data % _CACHE_LINE) // itemsize
    rec = raw[skip : skip + n * layout.row].reshape(n, layout.row)
    rec[:, : k * dp].reshape(n, k, dp)[..., :d] = means
    rec[:, k * dp : k * (dp + dv)] = np.asarray(variances).reshape(n, k * dv)
    rec[:, k * (dp + dv) : k * (dp + dv + 1)] = logits
    return rec


def unpack_records(rec: np.ndarray, layout: RecordLayout):
    """``(logits, means, variances)`` in float64 from records: the inverse of
    :func:`pack_records` (shapes (n_words, K), (n_words, K, D), (n_words, K, var_cols))."""
    n, k, d, dp, dv = len(rec), layout.n_components, layout.n_dims, layout.d_pad, layout.var_cols
    rec = rec.astype(np.float64)
    means = np.ascontiguousarray(rec[:, : k * dp].reshape(n, k, dp)[..., :d])
    variances = np.ascontiguousarray(rec[:, k * dp : k * (dp + dv)].reshape(n, k, dv))
    logits = np.ascontiguousarray(rec[:, k * (dp + dv) : k * (dp + dv + 1)])
    return logits, means, variances


def _like(x, arr):
    """``x`` as a scalar of ``arr``'s dtype (float32 arithmetic in float32 loops)."""
    return arr.dtype.type(x)


@overload(_like, inline="always")
def _like_compiled(x, arr):
    dtype = arr.dtype

    def impl(x, arr):
        return dtype(x)

    return impl


@nb.njit(cache=True, nogil=True, inline="always")
def _offsets(k, dp, dv):
    """Where a record of ``k`` components keeps its variances, its weight logits and its
    accumulators (logits, then means, then variances: ``k`` each)."""
    ov = k * dp
    ol = ov + k * dv
    return ov, ol, ol + k


@nb.njit(cache=True, nogil=True, fastmath=True, error_model="numpy", inline="always")
def _exp_shifted(buf, start, n):
    """``buf[start:start + n]`` -> ``exp(v - max v)`` in place (the largest entry becomes
    exactly 1); returns ``(max v, sum)``: the pieces of a log-sum-exp or a softmax."""
    top = start
    for i in range(start + 1, start + n):
        if buf[i] > buf[top]:
            top = i
    vmax = buf[top]
    tot = 1.0
    for i in range(start, start + n):
        e = 1.0
        if i != top:
            e = math.exp(buf[i] - vmax)
            tot += e
        buf[i] = e
    return vmax, tot


@nb.njit(cache=True, nogil=True, fastmath=True, error_model="numpy", inline="always")
def _softmax(rec, start, k_n, out):
    """``out[:k_n]`` = the softmax of the logits ``rec[start:start + k_n]``; returns their
    log-sum-exp."""
    for i in range(k_n):
        out[i] = rec[start + i]
    vmax, tot = _exp_shifted(out, 0, k_n)
    inv = 1.0 / tot
    for i in range(k_n):
        out[i] *= inv
    return vmax + math.log(tot) if k_n > 1 else vmax


@nb.njit(cache=True, nogil=True, fastmath=True, error_model="numpy", inline="always")
def _energy_forward(ra, k_a, rb, k_b, d, dp, dv, buf):
    """``log xi(a, b) + logsumexp(a's logits)`` for the records ``ra`` and ``rb`` (``k_a``
    and ``k_b`` components; dimension ``d`` padded to ``dp``; ``dv`` variance columns);
    keeps in ``buf`` what :func:`_energy_backward` needs.

    The log-sum-exp of a's logits is left in: it is the same for every target of the word
    ``a``, so it cancels in the hinge, and leaving it out spares one log per pair. ``buf``
    (at least ``K_b + 2 K_a K_b`` entries) receives b's weights, the responsibilities
    ``r_ij = p_i q_j N_ij / xi`` and, for spherical covariances, the squared distances
    ``||mu_i - nu_j||**2``.
    """
    ova, ola, _ = _offsets(k_a, dp, dv)
    ovb, olb, _ = _offsets(k_b, dp, dv)
    r0 = k_b
    q0 = k_b + k_a * k_b
    # b's weights, unnormalised (exp(lb_j - max lb)) until the end
    for j in range(k_b):
        buf[j] = rb[olb + j]
    lb_max, tot_b = _exp_shifted(buf, 0, k_b)
    for i in range(k_a):
        ai = i * dp
        for j in range(k_b):
            bj = j * dp
            t = float(ra[ola + i]) + float(rb[olb + j]) - lb_max
            if dv == 1:
                s = float(ra[ova + i] + rb[ovb + j])
                sq_c = _like(0.0, ra)
                for k in range(dp):
                    diff = ra[ai + k] - rb[bj + k]
                    sq_c += diff * diff
                sq = float(sq_c)
                t -= 0.5 * (d * math.log(s) + sq / s)
                buf[q0 + i * k_b + j] = sq
            else:  # log det as logs of products of 32 variances: one log per 32 dims
                vi = ova + i * dv
                vj = ovb + j * dv
                acc_c = _like(0.0, ra)
                for k in range(d):
                    diff = ra[ai + k] - rb[bj + k]
                    acc_c += diff * diff / (ra[vi + k] + rb[vj + k])
                logdet = 0.0
                for k0 in range(0, d, 32):
                    prod = 1.0
                    for k in range(k0, min(k0 + 32, d)):
                        prod *= float(ra[vi + k] + rb[vj + k])
                    logdet += math.log(prod)
                t -= 0.5 * (logdet + float(acc_c))
            buf[r0 + i * k_b + j] = t
    tmax, tot = _exp_shifted(buf, r0, k_a * k_b)
    inv = 1.0 / tot
    for ij in range(k_a * k_b):
        buf[r0 + ij] *= inv
    inv_b = 1.0 / tot_b
    for j in range(k_b):
        buf[j] *= inv_b
    le = tmax - 0.5 * d * LOG_2PI
    if k_a * k_b > 1:  # log(tot) - log(tot_b), the normalisers, in one log
        le += math.log(tot * inv_b)
    return le


@nb.njit(cache=True, nogil=True, fastmath=True, error_model="numpy", inline="always")
def _energy_backward(wa, ra, k_a, rb, k_b, d, dp, dv, buf, gscale, ga, gb):
    """Adds ``gscale * d log xi(a, b) / d params`` to the gradient records ``ga`` and ``gb``
    (the layouts of ``ra`` and ``rb``; only their mixture parts are touched), given a's
    weights ``wa`` (K_a,) and the state :func:`_energy_forward` left in ``buf`` (the
    records unchanged since)."""
    ova, ola, _ = _offsets(k_a, dp, dv)
    ovb, olb, _ = _offsets(k_b, dp, dv)
    r0 = k_b
    q0 = k_b + k_a * k_b
    for i in range(k_a):
        ga[ola + i] -= gscale * wa[i]
    for j in range(k_b):
        gb[olb + j] -= gscale * buf[j]
    for i in range(k_a):
        ai = i * dp
        for j in range(k_b):
            bj = j * dp
            g = gscale * buf[r0 + i * k_b + j]  # gscale * responsibility
            ga[ola + i] += g
            gb[olb + j] += g
            if dv == 1:
                s = float(ra[ova + i] + rb[ovb + j])
                gs = g / s
                gs_c = _like(gs, ga)
                for k in range(dp):
                    c = gs_c * (ra[ai + k] - rb[bj + k])
                    ga[ai + k] -= c
                    gb[bj + k] += c
                ds = -0.5 * gs * (d - buf[q0 + i * k_b + j] / s)
                ga[ova + i] += ds
                gb[ovb + j] += ds
            else:
                vi = ova + i * dv
                vj = ovb + j * dv
                g_c = _like(g, ga)
                half = _like(0.5, ga)
                one = _like(1.0, ga)
                for k in range(d):
                    s = ra[vi + k] + rb[vj + k]
                    diff = ra[ai + k] - rb[bj + k]
                    gs_c = g_c / s
                    c = gs_c * diff
                    ga[ai + k] -= c
                    gb[bj + k] += c
                    ds = half * gs_c * (diff * diff / s - one)
                    ga[vi + k] += ds
                    gb[vj + k] += ds


@nb.njit(cache=True, nogil=True, fastmath=True, error_model="numpy", inline="always")
def _adagrad_step(rec, grad, k_n, d, dp, dv, lr, eps, var_min, var_max, max_norm):
    """Row-wise AdaGrad on one record with the gradient record ``grad``, then the bounds.

    Each weight logit has its own accumulator (``acc += g**2``); each component's mean, and
    each component's variances, share one accumulator that grows by the mean of their
    squared gradients (row-wise AdaGrad, as for large embedding tables: one square root per
    component, not per coordinate). The step is ``param -= lr * g / sqrt(acc + eps)``; then
    every variance is clipped to ``[var_min, var_max]`` and every component mean projected
    onto the ball of radius ``max_norm``.
    """
    ov, ol, oa = _offsets(k_n, dp, dv)
    for i in range(k_n):
        g = float(grad[ol + i])
        acc = float(rec[oa + i]) + g * g
        rec[oa + i] = acc
        rec[ol + i] -= lr * g / math.sqrt(acc + eps)
        ai = i * dp
        sq_c = _like(0.0, rec)
        for k in range(dp):
            sq_c += grad[ai + k] * grad[ai + k]
        acc = float(rec[oa + k_n + i]) + float(sq_c) / d
        rec[oa + k_n + i] = acc
        step_c = _like(lr / math.sqrt(acc + eps), rec)
        norm2_c = _like(0.0, rec)
        for k in range(dp):
            rec[ai + k] -= step_c * grad[ai + k]
            norm2_c += rec[ai + k] * rec[ai + k]
        norm2 = float(norm2_c)
        if norm2 > max_norm * max_norm:
            shrink = _like(max_norm / math.sqrt(norm2), rec)
            for k in range(dp):
                rec[ai + k] *= shrink
        vi = ov + i * dv
        sq_c = _like(0.0, rec)
        for k in range(dv):
            sq_c += grad[vi + k] * grad[vi + k]
        acc = float(rec[oa + 2 * k_n + i]) + float(sq_c) / dv
        rec[oa + 2 * k_n + i] = acc
        step_c = _like(lr / math.sqrt(acc + eps), rec)
        lo = _like(var_min, rec)
        hi = _like(var_max, rec)
        for k in range(dv):
            rec[vi + k] = min(max(rec[vi + k] - step_c * grad[vi + k], lo), hi)


@nb.njit(cache=True, fastmath=True, error_model="numpy")
def _triple_loss(rw, k_w, rc, k_c, rn, k_n, d, dv, margin, gw, gc, gn):
    """The hinge loss of one (word, context, negative) triple of float64 records with
    unpadded means (``dp == d``); adds its gradient to ``gw``, ``gc`` and ``gn``. The same
    passes as :func:`train_block`."""
    kmax = max(k_w, k_c, k_n)
    wa = np.empty(k_w)
    buf_c = np.empty(kmax + 2 * kmax * kmax)
    buf_n = np.empty(kmax + 2 * kmax * kmax)
    _softmax(rw, _offsets(k_w, d, dv)[1], k_w, wa)
    pos = _energy_forward(rw, k_w, rc, k_c, d, d, dv, buf_c)
    neg = _energy_forward(rw, k_w, rn, k_n, d, d, dv, buf_n)
    loss = margin - pos + neg
    if loss > 0.0:
        _energy_backward(wa, rw, k_w, rc, k_c, d, d, dv, buf_c, -1.0, gw, gc)
        _energy_backward(wa, rw, k_w, rn, k_n, d, d, dv, buf_n, 1.0, gw, gn)
        return loss
    return 0.0


@nb.njit(cache=True, fastmath=True, error_model="numpy")
def _log_energy(ra, k_a, rb, k_b, d, dv):
    wa = np.empty(k_a)
    buf = np.empty(k_b + 2 * k_a * k_b)
    lse = _softmax(ra, _offsets(k_a, d, dv)[1], k_a, wa)
    return _energy_forward(ra, k_a, rb, k_b, d, d, dv, buf) - lse


def _as_record(mixture):
    """A float64 record with unpadded means of a ``(logits, means, variances)`` tuple."""
    logits, means, variances = (np.asarray(a, dtype=np.float64) for a in mixture)
    if means.ndim != 2 or logits.shape != means.shape[:1] or variances.shape not in (
        (means.shape[0], 1), (means.shape[0], means.shape[1])
    ):
        raise ValueError(
            "a mixture is (logits (K,), means (K, D), variances (K, 1) or (K, D)); got "
            f"shapes {logits.shape}, {means.shape}, {variances.shape}"
        )
    k, d = means.shape
    layout = RecordLayout(k, d, d, variances.shape[1], k * (d + variances.shape[1] + 4),
                          np.dtype(np.float64))  # fmt: skip
    return pack_records(logits[None], means[None], variances[None], layout)[0], layout


def _as_records(*mixtures):
    """Records of mixtures of one dimension and one covariance type (see
    :func:`_as_record`); a ValueError names a mismatch."""
    records = [_as_record(m) for m in mixtures]
    kinds = {(layout.n_dims, layout.var_cols) for _, layout in records}
    if len(kinds) > 1:
        raise ValueError(
            "the mixtures must share their dimension D and covariance type (variances of "
            f"shape (K, 1) or (K, D)); got (D, variance columns) {sorted(kinds)}"
        )
    return records


def log_energy(a, b) -> float:
    """log xi(a, b), the log expected likelihood kernel, by the compiled forward pass.

    ``a`` and ``b``: ``(logits, means, variances)`` tuples of shapes (K,), (K, D) and
    (K, 1) or (K, D) (weights = softmax of the logits); the same quantity as
    :func:`bayesgmm.embeddings.kernel.log_expected_likelihood`.
    """
    (ra, la), (rb, lb) = _as_records(a, b)
    return _log_energy(ra, la.n_components, rb, lb.n_components, la.n_dims, la.var_cols)


def pair_loss_and_gradient(word, context, negative, margin=1.0):
    """The hinge loss of one triple and its gradient, computed by the compiled kernel.

    Each argument is a ``(logits, means, variances)`` tuple (shapes (K,), (K, D), (K, 1) or
    (K, D)); returns ``(loss, grads)`` with ``grads`` a tuple of three such tuples, the
    gradient of the loss with respect to each argument's arrays (zeros where the hinge is
    inactive). The training loop takes exactly these gradients.
    """
    records = _as_records(word, context, negative)
    grads = [np.zeros_like(r) for r, _ in records]
    (rw, lw), (rc, lc), (rn, ln) = records
    loss = _triple_loss(rw, lw.n_components, rc, lc.n_components, rn, ln.n_components,
                        lw.n_dims, lw.var_cols, float(margin), *grads)  # fmt: skip
    return loss, tuple(
        tuple(a[0] for a in unpack_records(g[None], layout))
        for g, (_, layout) in zip(grads, records, strict=True)
    )


@nb.njit(cache=True)
def alias_table(weights):
    """Walker's alias table of a discrete distribution (Vose's construction), for O(1)
    draws: with ``u`` uniform on ``[0, n)``, ``i = floor(u)`` is drawn if
    ``u - i < prob[i]``, else ``alias[i]``.

    Parameters
    ----------
    weights : ndarray of shape (n,)
        Non-negative, not all zero (normalised here).

    Returns
    -------
    prob : ndarray of float64, shape (n,)
    alias : ndarray of int64, shape (n,)

    Raises ValueError for empty, negative, non-finite or all-zero ``weights``.
    """
    n = weights.shape[0]
    total = weights.sum()
    if n == 0 or not np.isfinite(total) or total <= 0.0 or weights.min() < 0.0:
        raise ValueError(
            "alias_table: weights must be a non-empty array of finite, non-negative numbers, "
            "not all zero"
        )
    scaled = weights * (n / total)
    prob = np.ones(n)
    alias = np.arange(n)
    small = np.empty(n, dtype=np.int64)
    large = np.empty(n, dtype=np.int64)
    n_small = 0
    n_large = 0
    for i in range(n):
        if scaled[i] < 1.0:
            small[n_small] = i
            n_small += 1
        else:
            large[n_large] = i
            n_large += 1
    while n_small > 0 and n_large > 0:
        n_small -= 1
        lo = small[n_small]
        hi = large[n_large - 1]
        prob[lo] = scaled[lo]
        alias[lo] = hi
        scaled[hi] = (scaled[hi] + scaled[lo]) - 1.0
        if scaled[hi] < 1.0:
            n_large -= 1
            small[n_small] = hi
            n_small += 1
    # what is left has probability 1 up to rounding: prob stays 1, alias itself
    return prob, alias


@nb.njit(cache=True, nogil=True, inline="always")
def _uniform(state):
    """The next state of the generator and a uniform draw on [0, 1) from it."""
    state = state * _LCG_MUL + _LCG_ADD
    return state, float(state >> _SHIFT) * _INV_2_53


@nb.njit(parallel=True, cache=True, fastmath=True, error_model="numpy")
def train_block(
    tokens, starts, chunk_starts, seeds, keep_prob, neg_prob, neg_alias, rec_in, rec_out,
    k_n, n_dims, d_pad, dv, window, negative, margin, lr, eps, var_min, var_max, max_norm,
    stats,
):  # fmt: skip
    """One block of skip-gram training: chunk ``c`` holds sentences
    ``chunk_starts[c]:chunk_starts[c+1]``; sentence ``s`` is ``tokens[starts[s]:starts[s+1]]``.

    For each kept centre word ``w`` (kept with probability ``keep_prob[w]``), each context
    ``c`` within a window of size drawn uniformly from ``1..window``, and ``negative``
    negatives ``c'`` drawn from the alias table ``(neg_prob, neg_alias)`` (see
    :func:`alias_table`): the hinges ``max(0, margin - log xi(w, c) + log xi(w, c'))``
    (input record of ``w``, output records of ``c`` and ``c'``). After each (w, c) pair
    with an active hinge, one AdaGrad step on ``c`` and on each ``c'`` (gradients at the
    records before the step); ``w``'s gradient is summed over its whole window and applied
    in one step after it (a minibatch per centre word, as the authors' code takes minibatch
    steps; one step per pair for ``w`` cost 10% of the time). No step where every hinge is
    inactive. ``stats[c]`` gets (loss sum, triples, words read, active triples).

    ``rec_in`` and ``rec_out`` are the records (n_words, row) of :func:`record_layout` with
    ``k_n`` components, dimension ``n_dims`` padded to ``d_pad`` and ``dv`` variance
    columns, float32 or float64.
    """
    n_chunks = chunk_starts.shape[0] - 1
    n_words = neg_prob.shape[0]
    row = rec_in.shape[1]
    n_t = negative + 1  # target 0 is the context, targets 1.. the negatives
    n_grad = k_n * (d_pad + dv + 1)  # the mixture part of a record
    for c in nb.prange(n_chunks):
        state = seeds[c]  # a local: an array here would share cache lines between threads
        s0 = chunk_starts[c]
        s1 = chunk_starts[c + 1]
        longest = 0
        for s in range(s0, s1):
            longest = max(longest, starts[s + 1] - starts[s])
        buf = np.empty(max(longest, 1), dtype=np.int64)
        targets = np.empty(n_t, dtype=np.int64)
        energy = np.empty(n_t)
        scale = np.empty(n_t)
        # the word's weights; each target's forward-pass state
        wbuf = np.empty(k_n)
        tbuf = np.empty((n_t, k_n + 2 * k_n * k_n))
        # gradient records: of the word (summed over its window) and of each target
        gw = np.empty(row, rec_in.dtype)
        gt = np.empty((n_t, row), rec_in.dtype)
        loss = 0.0
        n_triples = 0.0
        n_active = 0.0
        for s in range(s0, s1):
            n = 0
            for t in range(starts[s], starts[s + 1]):
                w = tokens[t]
                if keep_prob[w] < 1.0:
                    state, u = _uniform(state)
                    if u >= keep_prob[w]:
                        continue
                buf[n] = w
                n += 1
            for pos in range(n):
                w = buf[pos]
                rw = rec_in[w]
                state, u = _uniform(state)
                b = 1 + int(u * window)
                word_active = False
                for cpos in range(max(0, pos - b), min(n, pos + b + 1)):
                    if cpos == pos:
                        continue
                    targets[0] = buf[cpos]
                    n_valid = 0
                    for t in range(1, n_t):
                        state, u = _uniform(state)
                        u *= n_words
                        cn = min(int(u), n_words - 1)
                        if u - cn >= neg_prob[cn]:
                            cn = neg_alias[cn]
                        if cn == targets[0]:  # word2vec skips c' = c
                            targets[t] = -1
                        else:
                            targets[t] = cn
                            n_valid += 1
                    if n_valid == 0:
                        continue
                    n_triples += n_valid
                    # forward passes: the energies of (w, c) and (w, c')
                    for t in range(n_t):
                        o = targets[t]
                        if o >= 0:
                            energy[t] = _energy_forward(rw, k_n, rec_out[o], k_n, n_dims, d_pad,
                                                        dv, tbuf[t])  # fmt: skip
                    active = 0
                    for t in range(1, n_t):
                        scale[t] = 0.0
                        if targets[t] >= 0:
                            hinge = margin - energy[0] + energy[t]
                            if hinge > 0.0:
                                loss += hinge
                                active += 1
                                scale[t] = 1.0
                    if active == 0:  # every hinge inactive: the gradient is zero
                        continue
                    n_active += active
                    scale[0] = -float(active)
                    if not word_active:
                        word_active = True
                        _softmax(rw, _offsets(k_n, d_pad, dv)[1], k_n, wbuf)
                        gw[:n_grad] = 0.0
                    # backward passes and the targets' steps, at the records before any step
                    for t in range(n_t):
                        if scale[t] != 0.0:
                            gt[t, :n_grad] = 0.0
                            _energy_backward(wbuf, rw, k_n, rec_out[targets[t]], k_n, n_dims,
                                             d_pad, dv, tbuf[t], scale[t], gw, gt[t])  # fmt: skip
                    for t in range(n_t):
                        if scale[t] != 0.0:
                            _adagrad_step(rec_out[targets[t]], gt[t], k_n, n_dims, d_pad, dv,
                                          lr, eps, var_min, var_max, max_norm)  # fmt: skip
                if word_active:
                    _adagrad_step(rw, gw, k_n, n_dims, d_pad, dv, lr, eps, var_min, var_max,
                                  max_norm)  # fmt: skip
        stats[c, 0] = loss
        stats[c, 1] = n_triples
        stats[c, 2] = starts[s1] - starts[s0]
        stats[c, 3] = n_active
