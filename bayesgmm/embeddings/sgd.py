"""The compiled training loop of the Gaussian-mixture word embeddings (numba, Hogwild threads).

Three compiled functions, all cached on disk (``cache=True``) so that a process pays numba's
compilation once per machine:

- :func:`log_energy`: the log expected likelihood kernel between two mixtures given as
  (weight logits, means, variances) rows, and, on request, its gradient (accumulated into
  buffers, scaled). The same quantity as :func:`bayesgmm.embeddings.kernel.log_expected_likelihood`.
- :func:`adagrad_step`: an AdaGrad step on one word's mixture with the paper's bounds:
  variances clipped to ``[var_min, var_max]``, each component mean projected onto the ball
  of radius ``max_norm``.
- :func:`train_block`: skip-gram with subsampling, dynamic windows and negative sampling over
  a block of sentence chunks; the chunks run in parallel (``prange``) and update the shared
  parameters without locks, as word2vec does (Hogwild; Recht et al. 2011).

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

from bayesgmm.em.gaussian import LOG_2PI

__all__ = ["adagrad_step", "log_energy", "pair_loss_and_gradient", "train_block"]

_LCG_MUL = np.uint64(25214903917)
_LCG_ADD = np.uint64(11)
_SHIFT = np.uint64(11)
_INV_2_53 = 1.0 / 9007199254740992.0


@nb.njit(cache=True, nogil=True, fastmath=True, error_model="numpy", inline="always")
def _log_sum_exp(v):
    """log sum_i exp(v_i), shifted by the largest entry (one mixture's weight logits)."""
    vmax = v[0]
    for i in range(1, v.shape[0]):
        vmax = max(vmax, v[i])
    tot = 0.0
    for i in range(v.shape[0]):
        tot += math.exp(v[i] - vmax)
    return vmax + math.log(tot)


@nb.njit(cache=True, nogil=True, fastmath=True, error_model="numpy", inline="always")
def log_energy(la, ma, va, lb, mb, vb, gscale, gla, gma, gva, glb, gmb, gvb, work):
    """log xi(a, b) for mixtures a and b; adds ``gscale * d log xi / d params`` to ``g*``.

    ``la``/``lb``: logits (K,); ``ma``/``mb``: means (K, D); ``va``/``vb``: variances (K, 1)
    or (K, D); ``work``: a float64 buffer of at least 2 K + 2 K**2 entries. With
    ``gscale == 0`` the gradient buffers are not touched.
    """
    k_a = ma.shape[0]
    k_b = mb.shape[0]
    d = ma.shape[1]
    dv = va.shape[1]
    # log-softmax of the weights, in work[0:k_a] and work[k_a:k_a+k_b]
    lse_a = _log_sum_exp(la)
    lse_b = _log_sum_exp(lb)
    off = k_a + k_b
    tmax = -1e300  # not -inf: fastmath assumes no infinities
    for i in range(k_a):
        for j in range(k_b):
            t = la[i] - lse_a + lb[j] - lse_b
            if dv == 1:
                s = va[i, 0] + vb[j, 0]
                sq = 0.0
                for k in range(d):
                    diff = ma[i, k] - mb[j, k]
                    sq += diff * diff
                t -= 0.5 * (d * (LOG_2PI + math.log(s)) + sq / s)
                work[off + k_a * k_b + i * k_b + j] = sq
            else:  # log det as logs of products of 32 variances: one log per 32 dims
                acc = 0.0
                logdet = 0.0
                prod = 1.0
                for k in range(d):
                    s = va[i, k] + vb[j, k]
                    diff = ma[i, k] - mb[j, k]
                    acc += diff * diff / s
                    prod *= s
                    if k % 32 == 31:
                        logdet += math.log(prod)
                        prod = 1.0
                t -= 0.5 * (d * LOG_2PI + logdet + math.log(prod) + acc)
            work[off + i * k_b + j] = t
            tmax = max(tmax, t)
    tot = 0.0
    for ij in range(k_a * k_b):
        tot += math.exp(work[off + ij] - tmax)
    le = tmax + math.log(tot)
    if gscale == 0.0:
        return le
    for i in range(k_a):
        gla[i] -= gscale * math.exp(la[i] - lse_a)
    for j in range(k_b):
        glb[j] -= gscale * math.exp(lb[j] - lse_b)
    for i in range(k_a):
        for j in range(k_b):
            g = gscale * math.exp(work[off + i * k_b + j] - le)  # gscale * responsibility
            gla[i] += g
            glb[j] += g
            if dv == 1:
                s = va[i, 0] + vb[j, 0]
                sq = work[off + k_a * k_b + i * k_b + j]
                gs = g / s
                for k in range(d):
                    c = gs * (ma[i, k] - mb[j, k])
                    gma[i, k] -= c
                    gmb[j, k] += c
                ds = -0.5 * g * (d / s - sq / (s * s))
                gva[i, 0] += ds
                gvb[j, 0] += ds
            else:
                for k in range(d):
                    s = va[i, k] + vb[j, k]
                    diff = ma[i, k] - mb[j, k]
                    c = g * diff / s
                    gma[i, k] -= c
                    gmb[j, k] += c
                    ds = -0.5 * g * (1.0 / s - diff * diff / (s * s))
                    gva[i, k] += ds
                    gvb[j, k] += ds
    return le


@nb.njit(cache=True, nogil=True, fastmath=True, error_model="numpy", inline="always")
def adagrad_step(
    logits, means, variances, acc_l, acc_m, acc_v, gl, gm, gv, scale, lr, eps,
    var_min, var_max, max_norm,
):  # fmt: skip
    """Row-wise AdaGrad on one word's mixture, then the bounds.

    With ``g = scale * grad``: each weight logit has its own accumulator
    (``acc_l[i] += g**2``); each component's mean, and each component's variances, share
    one accumulator that grows by the mean of their squared gradients (row-wise AdaGrad,
    as for large embedding tables: one square root per component, not per coordinate).
    The step is ``param -= lr * g / sqrt(acc + eps)``; then every variance is clipped to
    ``[var_min, var_max]`` and every component mean projected onto the ball of radius
    ``max_norm``. Arrays are one word's rows: logits (K,), means (K, D), variances (K, 1)
    or (K, D); accumulators (K,) each.
    """
    k_n = means.shape[0]
    d = means.shape[1]
    dv = variances.shape[1]
    for i in range(k_n):
        g = scale * gl[i]
        acc_l[i] += g * g
        logits[i] -= lr * g / math.sqrt(acc_l[i] + eps)
        sq = 0.0
        for k in range(d):
            sq += gm[i, k] * gm[i, k]
        acc_m[i] += scale * scale * sq / d
        step = lr * scale / math.sqrt(acc_m[i] + eps)
        norm2 = 0.0
        for k in range(d):
            means[i, k] -= step * gm[i, k]
            norm2 += means[i, k] * means[i, k]
        if norm2 > max_norm * max_norm:
            shrink = max_norm / math.sqrt(norm2)
            for k in range(d):
                means[i, k] *= shrink
        sq = 0.0
        for k in range(dv):
            sq += gv[i, k] * gv[i, k]
        acc_v[i] += scale * scale * sq / dv
        step = lr * scale / math.sqrt(acc_v[i] + eps)
        for k in range(dv):
            variances[i, k] = min(max(variances[i, k] - step * gv[i, k], var_min), var_max)


@nb.njit(cache=True, nogil=True, inline="always")
def _uniform(state):
    state[0] = state[0] * _LCG_MUL + _LCG_ADD
    return float(state[0] >> _SHIFT) * _INV_2_53


@nb.njit(parallel=True, cache=True, fastmath=True, error_model="numpy")
def train_block(
    tokens, starts, chunk_starts, seeds, keep_prob, neg_cum,
    l_in, m_in, v_in, l_out, m_out, v_out,
    al_in, am_in, av_in, al_out, am_out, av_out,
    window, negative, margin, lr, eps, var_min, var_max, max_norm, stats,
):  # fmt: skip
    """One block of skip-gram training: chunk ``c`` holds sentences
    ``chunk_starts[c]:chunk_starts[c+1]``; sentence ``s`` is ``tokens[starts[s]:starts[s+1]]``.

    For each kept centre word ``w`` (kept with probability ``keep_prob[w]``), each context
    ``c`` within a window of size drawn uniformly from ``1..window``, and ``negative``
    negatives ``c'`` drawn from the distribution whose CDF is ``neg_cum``: one AdaGrad step on
    the sum over the negatives of ``max(0, margin - log xi(w, c) + log xi(w, c'))`` (input
    mixture of ``w``, output mixtures of ``c`` and ``c'``), every gradient taken at the
    parameters before the step. ``stats[c]`` gets (loss sum, triples, words read,
    active triples).
    """
    n_chunks = chunk_starts.shape[0] - 1
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
        # gradients of log xi(w, target t): on the target (gt_*) and on the word (gw_*)
        gt_l = np.zeros((n_t, k_n))
        gt_m = np.zeros((n_t, k_n, d))
        gt_v = np.zeros((n_t, k_n, dv))
        gw_l = np.zeros((n_t, k_n))
        gw_m = np.zeros((n_t, k_n, d))
        gw_v = np.zeros((n_t, k_n, dv))
        work = np.empty(2 * k_n + 2 * k_n * k_n)
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
                    for t in range(1, n_t):
                        cn = np.searchsorted(neg_cum, _uniform(state) * neg_cum[-1], "right")
                        cn = min(cn, neg_cum.shape[0] - 1)
                        targets[t] = -1 if cn == targets[0] else cn  # word2vec skips c' = c
                    for t in range(n_t):
                        if targets[t] < 0:
                            continue
                        gt_l[t] = 0.0
                        gt_m[t] = 0.0
                        gt_v[t] = 0.0
                        gw_l[t] = 0.0
                        gw_m[t] = 0.0
                        gw_v[t] = 0.0
                        o = targets[t]
                        energy[t] = log_energy(
                            l_in[w], m_in[w], v_in[w], l_out[o], m_out[o], v_out[o], 1.0,
                            gw_l[t], gw_m[t], gw_v[t], gt_l[t], gt_m[t], gt_v[t], work,
                        )  # fmt: skip
                    active = 0
                    for t in range(1, n_t):
                        scale[t] = 0.0
                        if targets[t] < 0:
                            continue
                        n_triples += 1.0
                        hinge = margin - energy[0] + energy[t]
                        if hinge > 0.0:
                            loss += hinge
                            active += 1
                            scale[t] = 1.0
                    if active == 0:
                        continue
                    n_active += active
                    scale[0] = -float(active)
                    # the word's gradient: sum over active triples of (grad neg - grad pos)
                    for i in range(k_n):
                        gw_l[0, i] *= scale[0]
                        for k in range(d):
                            gw_m[0, i, k] *= scale[0]
                        for k in range(dv):
                            gw_v[0, i, k] *= scale[0]
                        for t in range(1, n_t):
                            if scale[t] != 0.0:
                                gw_l[0, i] += gw_l[t, i]
                                for k in range(d):
                                    gw_m[0, i, k] += gw_m[t, i, k]
                                for k in range(dv):
                                    gw_v[0, i, k] += gw_v[t, i, k]
                    for t in range(n_t):
                        if scale[t] != 0.0:
                            o = targets[t]
                            adagrad_step(
                                l_out[o], m_out[o], v_out[o], al_out[o], am_out[o], av_out[o],
                                gt_l[t], gt_m[t], gt_v[t], scale[t], lr, eps, var_min, var_max,
                                max_norm,
                            )  # fmt: skip
                    adagrad_step(
                        l_in[w], m_in[w], v_in[w], al_in[w], am_in[w], av_in[w],
                        gw_l[0], gw_m[0], gw_v[0], 1.0, lr, eps, var_min, var_max, max_norm,
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
