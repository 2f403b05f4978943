"""The compiled training loop of the Gaussian-mixture word embeddings (numba, Hogwild threads).

Compiled functions, all cached on disk (``cache=True``) so that a process pays numba's
compilation once per machine:

- :func:`log_energy`: the log expected likelihood kernel between two mixtures given as
  (weight logits, means, variances) rows, and, on request, its gradient (accumulated into
  buffers, scaled). The same quantity as :func:`bayesgmm.embeddings.kernel.log_expected_likelihood`.
  It is a forward pass (energy, keeping the responsibilities and squared distances) and a
  backward pass (gradient from what the forward pass kept); the training loop runs the
  backward pass only for triples whose hinge is active (an inactive hinge has zero loss
  and zero gradient, exactly).
- :func:`adagrad_step`: an AdaGrad step on one word's mixture with the paper's bounds:
  variances clipped to ``[var_min, var_max]``, each component mean projected onto the ball
  of radius ``max_norm``.
- :func:`alias_table`: Walker's alias table of the negatives' distribution (O(1) draws; a
  binary search of the CDF cost about a fifth of the training time on the KJV).
- :func:`train_block`: skip-gram with subsampling, dynamic windows and negative sampling over
  a block of sentence chunks; the chunks run in parallel (``prange``) and update the shared
  parameters without locks, as word2vec does (Hogwild; Recht et al. 2011).

Precision: the parameters may be float32 or float64 (one compilation each). The vector
loops over the dimension run in the parameters' type (float32 by default in
:class:`~bayesgmm.embeddings.Word2GM`: twice the SIMD width); scalars (energies, logs,
exps, AdaGrad step sizes) are float64. The means may carry zero padding on their last axis
(the dimension ``n_dims`` is passed separately), so that those loops run whole vector
iterations; the padding's gradient is zero and it stays zero.

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

import numba as nb
import numpy as np
from numba.extending import overload

from bayesgmm.em.gaussian import LOG_2PI

__all__ = ["adagrad_step", "alias_table", "log_energy", "pair_loss_and_gradient", "train_block"]

_LCG_MUL = np.uint64(25214903917)
_LCG_ADD = np.uint64(11)
_SHIFT = np.uint64(11)
_INV_2_53 = 1.0 / 9007199254740992.0


def _like(x, arr):
    """``x`` as a scalar of ``arr``'s dtype (float32 arithmetic in float32 loops)."""
    return arr.dtype.type(x)


@overload(_like, inline="always")
def _like_compiled(x, arr):
    dtype = arr.dtype

    def impl(x, arr):
        return dtype(x)

    return impl


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
def _softmax(logits, out):
    """``out[:K]`` = the softmax of the ``K`` weight logits; returns their log-sum-exp."""
    k_n = logits.shape[0]
    for i in range(k_n):
        out[i] = logits[i]
    vmax, tot = _exp_shifted(out, 0, k_n)
    inv = 1.0 / tot
    for i in range(k_n):
        out[i] *= inv
    return vmax + math.log(tot) if k_n > 1 else vmax


@nb.njit(cache=True, nogil=True, fastmath=True, error_model="numpy", inline="always")
def _pair_layout(ma, va, mb, n_dims):
    """Sizes of a pair (a, b) and where :func:`_energy_forward` keeps its state in ``buf``:
    ``(K_a, K_b, D, variance columns, padded D, start of the responsibilities, start of
    the squared distances)``; b's weights are ``buf[:K_b]``."""
    k_a = ma.shape[0]
    k_b = mb.shape[0]
    return k_a, k_b, n_dims, va.shape[1], ma.shape[1], k_b, k_b + k_a * k_b


@nb.njit(cache=True, nogil=True, fastmath=True, error_model="numpy", inline="always")
def _energy_forward(la, ma, va, lb, mb, vb, n_dims, buf):
    """``log xi(a, b) + logsumexp(la)``; keeps in ``buf`` what :func:`_energy_backward` needs.

    The log-sum-exp of a's logits is left in: it is the same for every target of the word
    ``a``, so it cancels in the hinge, and leaving it out spares one log per pair. ``buf``
    (at least ``K_b + 2 K_a K_b`` entries) receives b's weights, the responsibilities
    ``r_ij = p_i q_j N_ij / xi`` and, for spherical covariances, the squared distances
    ``||mu_i - nu_j||**2``. ``n_dims`` is the dimension ``D``; the means may carry zero
    padding beyond it (``ma.shape[1] >= D``, see :func:`train_block`).
    """
    k_a, k_b, d, dv, d_pad, r0, q0 = _pair_layout(ma, va, mb, n_dims)
    # b's weights, unnormalised (exp(lb_j - max lb)) until the end
    for j in range(k_b):
        buf[j] = lb[j]
    lb_max, tot_b = _exp_shifted(buf, 0, k_b)
    for i in range(k_a):
        for j in range(k_b):
            t = la[i] + lb[j] - lb_max
            if dv == 1:
                s = float(va[i, 0] + vb[j, 0])
                sq_c = _like(0.0, ma)
                for k in range(d_pad):
                    diff = ma[i, k] - mb[j, k]
                    sq_c += diff * diff
                sq = float(sq_c)
                t -= 0.5 * (d * math.log(s) + sq / s)
                buf[q0 + i * k_b + j] = sq
            else:  # log det as logs of products of 32 variances: one log per 32 dims
                acc = 0.0
                logdet = 0.0
                prod = 1.0
                for k in range(d):
                    s = float(va[i, k] + vb[j, k])
                    diff = float(ma[i, k] - mb[j, k])
                    acc += diff * diff / s
                    prod *= s
                    if k % 32 == 31:
                        logdet += math.log(prod)
                        prod = 1.0
                t -= 0.5 * (logdet + math.log(prod) + acc)
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
def _energy_backward(wa, ma, va, mb, vb, n_dims, buf, gscale, gla, gma, gva, glb, gmb, gvb):
    """Adds ``gscale * d log xi(a, b) / d params`` to the ``g*`` buffers, given a's weights
    ``wa`` (K_a,) and the state :func:`_energy_forward` left in ``buf`` (the parameters
    unchanged since)."""
    k_a, k_b, d, dv, d_pad, r0, q0 = _pair_layout(ma, va, mb, n_dims)
    for i in range(k_a):
        gla[i] -= gscale * wa[i]
    for j in range(k_b):
        glb[j] -= gscale * buf[j]
    for i in range(k_a):
        for j in range(k_b):
            g = gscale * buf[r0 + i * k_b + j]  # gscale * responsibility
            gla[i] += g
            glb[j] += g
            if dv == 1:
                s = float(va[i, 0] + vb[j, 0])
                gs = g / s
                gs_c = _like(gs, gma)
                for k in range(d_pad):
                    c = gs_c * (ma[i, k] - mb[j, k])
                    gma[i, k] -= c
                    gmb[j, k] += c
                ds = -0.5 * gs * (d - buf[q0 + i * k_b + j] / s)
                gva[i, 0] += ds
                gvb[j, 0] += ds
            else:
                g_c = _like(g, gma)
                half = _like(0.5, gma)
                for k in range(d):
                    s = va[i, k] + vb[j, k]
                    diff = ma[i, k] - mb[j, k]
                    gs_c = g_c / s
                    c = gs_c * diff
                    gma[i, k] -= c
                    gmb[j, k] += c
                    ds = half * gs_c * (diff * diff / s - 1)
                    gva[i, k] += ds
                    gvb[j, k] += ds


@nb.njit(cache=True, nogil=True, fastmath=True, error_model="numpy", inline="always")
def log_energy(la, ma, va, lb, mb, vb, gscale, gla, gma, gva, glb, gmb, gvb, work):
    """log xi(a, b) for mixtures a and b; adds ``gscale * d log xi / d params`` to ``g*``.

    ``la``/``lb``: logits (K,); ``ma``/``mb``: means (K, D); ``va``/``vb``: variances (K, 1)
    or (K, D); ``work``: a float64 buffer of at least ``K_a + K_b + 2 K_a K_b`` entries.
    With ``gscale == 0`` the gradient buffers are not touched. The training loop runs the
    same two passes (:func:`_energy_forward`, then :func:`_energy_backward` only where a
    hinge is active).
    """
    k_a = la.shape[0]
    lse_a = _softmax(la, work[:k_a])
    le = _energy_forward(la, ma, va, lb, mb, vb, ma.shape[1], work[k_a:]) - lse_a
    if gscale != 0.0:
        _energy_backward(work[:k_a], ma, va, mb, vb, ma.shape[1], work[k_a:], gscale,
                         gla, gma, gva, glb, gmb, gvb)  # fmt: skip
    return le


@nb.njit(cache=True, nogil=True, fastmath=True, error_model="numpy", inline="always")
def adagrad_step(
    logits, means, variances, acc_l, acc_m, acc_v, gl, gm, gv, scale, lr, eps,
    var_min, var_max, max_norm, n_dims,
):  # fmt: skip
    """Row-wise AdaGrad on one word's mixture, then the bounds.

    With ``g = scale * grad``: each weight logit has its own accumulator
    (``acc_l[i] += g**2``); each component's mean, and each component's variances, share
    one accumulator that grows by the mean of their squared gradients (row-wise AdaGrad,
    as for large embedding tables: one square root per component, not per coordinate).
    The step is ``param -= lr * g / sqrt(acc + eps)``; then every variance is clipped to
    ``[var_min, var_max]`` and every component mean projected onto the ball of radius
    ``max_norm``. Arrays are one word's rows: logits (K,), means (K, D') with zero
    padding beyond ``D = n_dims`` (``D' >= D``; the padding's gradient is zero, so it
    stays zero), variances (K, 1) or (K, D); accumulators (K,) each.
    """
    k_n = means.shape[0]
    d = means.shape[1]
    dv = variances.shape[1]
    for i in range(k_n):
        g = scale * gl[i]
        acc_l[i] += g * g
        logits[i] -= lr * g / math.sqrt(acc_l[i] + eps)
        sq_c = _like(0.0, means)
        for k in range(d):
            sq_c += gm[i, k] * gm[i, k]
        acc_m[i] += scale * scale * float(sq_c) / n_dims
        step_c = _like(lr * scale / math.sqrt(acc_m[i] + eps), means)
        norm2_c = _like(0.0, means)
        for k in range(d):
            means[i, k] -= step_c * gm[i, k]
            norm2_c += means[i, k] * means[i, k]
        norm2 = float(norm2_c)
        if norm2 > max_norm * max_norm:
            shrink = _like(max_norm / math.sqrt(norm2), means)
            for k in range(d):
                means[i, k] *= shrink
        sq_c = _like(0.0, means)
        for k in range(dv):
            sq_c += gv[i, k] * gv[i, k]
        acc_v[i] += scale * scale * float(sq_c) / dv
        step_c = _like(lr * scale / math.sqrt(acc_v[i] + eps), means)
        lo = _like(var_min, means)
        hi = _like(var_max, means)
        for k in range(dv):
            variances[i, k] = min(max(variances[i, k] - step_c * gv[i, k], lo), hi)


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
    state[0] = state[0] * _LCG_MUL + _LCG_ADD
    return float(state[0] >> _SHIFT) * _INV_2_53


@nb.njit(parallel=True, cache=True, fastmath=True, error_model="numpy")
def train_block(
    tokens, starts, chunk_starts, seeds, keep_prob, neg_prob, neg_alias,
    l_in, m_in, v_in, l_out, m_out, v_out,
    al_in, am_in, av_in, al_out, am_out, av_out,
    window, negative, margin, lr, eps, var_min, var_max, max_norm, n_dims, stats,
):  # fmt: skip
    """One block of skip-gram training: chunk ``c`` holds sentences
    ``chunk_starts[c]:chunk_starts[c+1]``; sentence ``s`` is ``tokens[starts[s]:starts[s+1]]``.

    For each kept centre word ``w`` (kept with probability ``keep_prob[w]``), each context
    ``c`` within a window of size drawn uniformly from ``1..window``, and ``negative``
    negatives ``c'`` drawn from the alias table ``(neg_prob, neg_alias)`` (see
    :func:`alias_table`): one AdaGrad step on the sum over the negatives of
    ``max(0, margin - log xi(w, c) + log xi(w, c'))`` (input mixture of ``w``, output
    mixtures of ``c`` and ``c'``), every gradient taken at the parameters before the step;
    no step where every hinge is inactive. ``stats[c]`` gets (loss sum, triples, words
    read, active triples).

    Parameters are float32 or float64 arrays (all of one type); the means ``m_in`` and
    ``m_out`` have shape (n_words, K, D') with zero padding beyond ``D = n_dims``
    (``D' >= D``), which stays zero. Accumulators are float64.
    """
    n_chunks = chunk_starts.shape[0] - 1
    n_words = neg_prob.shape[0]
    k_n = m_in.shape[1]
    d = m_in.shape[2]
    dv = v_in.shape[2]
    n_t = negative + 1  # target 0 is the context, targets 1.. the negatives
    for c in nb.prange(n_chunks):
        state = np.empty(1, dtype=np.uint64)
        state[0] = seeds[c]
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
        # gradients of the triples' loss: on the word (gw_*) and on each target (gt_*)
        gw_l = np.empty(k_n, l_in.dtype)
        gw_m = np.empty((k_n, d), m_in.dtype)
        gw_v = np.empty((k_n, dv), v_in.dtype)
        gt_l = np.empty((n_t, k_n), l_in.dtype)
        gt_m = np.empty((n_t, k_n, d), m_in.dtype)
        gt_v = np.empty((n_t, k_n, dv), v_in.dtype)
        loss = 0.0
        n_triples = 0.0
        n_active = 0.0
        for s in range(s0, s1):
            n = 0
            for t in range(starts[s], starts[s + 1]):
                w = tokens[t]
                if keep_prob[w] >= 1.0 or _uniform(state) < keep_prob[w]:
                    buf[n] = w
                    n += 1
            for pos in range(n):
                w = buf[pos]
                b = 1 + int(_uniform(state) * window)
                for cpos in range(max(0, pos - b), min(n, pos + b + 1)):
                    if cpos == pos:
                        continue
                    targets[0] = buf[cpos]
                    n_valid = 0
                    for t in range(1, n_t):
                        u = _uniform(state) * n_words
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
                            energy[t] = _energy_forward(
                                l_in[w], m_in[w], v_in[w], l_out[o], m_out[o], v_out[o], n_dims,
                                tbuf[t],
                            )  # fmt: skip
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
                    # backward passes, at the parameters before any step
                    _softmax(l_in[w], wbuf)
                    gw_l[:] = 0.0
                    gw_m[:] = 0.0
                    gw_v[:] = 0.0
                    for t in range(n_t):
                        if scale[t] != 0.0:
                            o = targets[t]
                            gt_l[t] = 0.0
                            gt_m[t] = 0.0
                            gt_v[t] = 0.0
                            _energy_backward(
                                wbuf, m_in[w], v_in[w], m_out[o], v_out[o], n_dims, tbuf[t],
                                scale[t], gw_l, gw_m, gw_v, gt_l[t], gt_m[t], gt_v[t],
                            )  # fmt: skip
                    for t in range(n_t):
                        if scale[t] != 0.0:
                            o = targets[t]
                            adagrad_step(
                                l_out[o], m_out[o], v_out[o], al_out[o], am_out[o], av_out[o],
                                gt_l[t], gt_m[t], gt_v[t], 1.0, lr, eps, var_min, var_max,
                                max_norm, n_dims,
                            )  # fmt: skip
                    adagrad_step(
                        l_in[w], m_in[w], v_in[w], al_in[w], am_in[w], av_in[w],
                        gw_l, gw_m, gw_v, 1.0, lr, eps, var_min, var_max, max_norm, n_dims,
                    )  # fmt: skip
        stats[c, 0] = loss
        stats[c, 1] = n_triples
        stats[c, 2] = starts[s1] - starts[s0]
        stats[c, 3] = n_active


def pair_loss_and_gradient(word, context, negative, margin=1.0):
    """The hinge loss of one triple and its gradient, computed by the compiled kernel.

    Each argument is a ``(logits, means, variances)`` tuple (shapes (K,), (K, D), (K, 1) or
    (K, D)); returns ``(loss, grads)`` with ``grads`` a tuple of three such tuples, the
    gradient of the loss with respect to each argument's arrays (zeros where the hinge is
    inactive). The training loop takes exactly these gradients.
    """
    arrays = [tuple(np.ascontiguousarray(a, dtype=np.float64) for a in x)
              for x in (word, context, negative)]  # fmt: skip
    grads = [tuple(np.zeros_like(a) for a in x) for x in arrays]
    k_n = max(x[1].shape[0] for x in arrays)
    work = np.empty(2 * k_n + 2 * k_n * k_n)
    pos = log_energy(*arrays[0], *arrays[1], 0.0, *grads[0], *grads[1], work)
    neg = log_energy(*arrays[0], *arrays[2], 0.0, *grads[0], *grads[2], work)
    loss = margin - pos + neg
    if loss <= 0.0:
        return 0.0, tuple(grads)
    log_energy(*arrays[0], *arrays[1], -1.0, *grads[0], *grads[1], work)
    log_energy(*arrays[0], *arrays[2], 1.0, *grads[0], *grads[2], work)
    return loss, tuple(grads)
