"""Hand-written log-density and gradient of a :func:`build_gmm_model` model, in numba.

The PyMC model stays the source of truth: :func:`fast_gmm` reads the priors, data and
parameter layout off a built model and refuses (returns ``None``) any model it does not
recognise exactly (an extra variable, a potential, another prior family), so a model a
user has extended is never sampled with the wrong density.  The kernel evaluates the same
density as ``model.logp()`` (transforms and Jacobians included) on the same unconstrained
vector that nutpie builds from the model (value variables in ``model.free_RVs`` order), in
one fused pass: the priors through PyMC's transforms (simplex, ordered, log, LKJ
Cholesky-correlation), then the marginalised likelihood through the inverse Cholesky
factor of each component (one DxD forward substitution per component, then one pass over
the observations, stored feature-major, in blocks whose inner loops along the block are
branch-free and vectorised, exp included), and the reverse-mode gradient by hand.
:func:`logp_grad_threads` splits that pass over threads (opt-in, for one chain on large
data).

Missing entries (NaN, :func:`build_gmm_model` marginalises them) are covered: the complete
rows take the pass above, then each missingness pattern its own pass on its observed
coordinates with the Cholesky factor of ``Sigma_oo`` (:func:`_patterns_likelihood`).
Rows with measurement errors (``noise_cov``) take a row-by-row pass with one Cholesky
factor of ``Sigma_k,oo + S_i,oo`` per row and component (:func:`_noisy_likelihood`).

The kernels are compiled by numba with ``cache=True``: the compilation (a few seconds) is
paid once per machine and environment, not once per model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np
import pymc as pm
from pytensor.compile.mode import Mode
from pytensor.graph.basic import Constant
from pytensor.graph.traversal import graph_inputs
from scipy.special import gammaln

from bayesgmm.em.gaussian import LOG_2PI, sd_shape
from bayesgmm.gmm.incomplete import missing_patterns
from bayesgmm.gmm.model import OBS_VAR, model_covariance_type

__all__ = ["FastGMM", "KernelLayout", "fast_gmm", "kernel_layout"]

#: observations per block of the likelihood pass (its scratch, (K, D + 1, B), stays in cache)
_BLOCK = 256
#: mixture terms more than 39 below the largest (exp(-39) < 2**-56) are dropped: they
#: cannot change the sum, and dropping them keeps subnormal numbers (slow) out of the
#: pass.  Differences are clamped at _LOG_FLOOR (a NaN one too), then terms below
#: _TERM_CUT are zeroed.
_LOG_FLOOR = -40.0
_TERM_CUT = math.exp(-39.0)
#: observations per chunk (at least) of the threaded pass, :func:`logp_grad_threads`
_THREAD_CHUNK = 4096
#: log-sum-exp totals (each in [1, K]) are multiplied in runs of this many before one log
_LOG_RUN = 16
_COV_CODES = {"full": 0, "tied": 1, "diag": 2, "spherical": 3}
# header of the flat float64 buffer read by the kernels
(_H_LEN, _H_N, _H_K, _H_D, _H_COV, _H_J, _H_OW, _H_OMO, _H_OMF, _H_OM, _H_OS, _H_OC, _H_NDIM) = (
    range(13)
)
_HEADER = 13


# --------------------------------------------------------------------------------------
# buffer access (the buffer is one float64 array so that it can travel as a void pointer)
# --------------------------------------------------------------------------------------


@numba.njit(cache=True)
def _unpack(buf):
    n, k, d = int(buf[_H_N]), int(buf[_H_K]), int(buf[_H_D])
    pos = _HEADER
    alpha = buf[pos : pos + k]
    pos += k
    mu0 = buf[pos : pos + d]
    pos += d
    s0 = buf[pos : pos + d]
    pos += d
    scale = buf[pos : pos + d]
    pos += d
    eta, const = buf[pos], buf[pos + 1]
    pos += 2
    centre = buf[pos : pos + d]
    pos += d
    corr_idx = buf[pos : pos + d * d].reshape((d, d))
    pos += d * d
    xt = buf[pos : pos + n * d].reshape((d, n))  # centred data, transposed: (D, N)
    return alpha, mu0, s0, scale, eta, const, centre, corr_idx, xt


@numba.njit(cache=True, error_model="numpy")
def _constrain(x, buf):
    """Unconstrained vector -> (log weights, centred means, sigmas, Cholesky factors,
    correlation rows' squared norms) and the prior log-density with Jacobians."""
    k, d, cov, j = int(buf[_H_K]), int(buf[_H_D]), int(buf[_H_COV]), int(buf[_H_J])
    ow, omo, omf, om = int(buf[_H_OW]), int(buf[_H_OMO]), int(buf[_H_OMF]), int(buf[_H_OM])
    os_, oc = int(buf[_H_OS]), int(buf[_H_OC])
    alpha, mu0, s0, scale, eta, const, centre, corr_idx, _ = _unpack(buf)
    lp = const

    # weights: simplex transform v = [u, -sum u], w = softmax(v); with sum(v) = 0 the
    # Jacobian log K + K sum(u) - K lse([u + sum u, 0]) is log K + sum_k log w_k
    v = np.empty(k)
    tot = 0.0
    for i in range(k - 1):
        v[i] = x[ow + i]
        tot += v[i]
    v[k - 1] = -tot
    vmax = v.max()
    lse = vmax + math.log(np.sum(np.exp(v - vmax)))
    logw = v - lse
    for i in range(k):
        lp += alpha[i] * logw[i]  # (alpha - 1) log w (Dirichlet) + log w (Jacobian)

    # means (centred on the data mean)
    mu = np.empty((k, d))
    if j >= 0:  # ordered feature j: m_0 = y_0, m_i = m_{i-1} + exp(y_i)
        for i in range(k):
            mu[i, j] = x[omo] if i == 0 else mu[i - 1, j] + math.exp(x[omo + i])
            if i > 0:
                lp += x[omo + i]
        for i in range(k):
            f = 0
            for dd in range(d):
                if dd != j:
                    mu[i, dd] = x[omf + i * (d - 1) + f]
                    f += 1
    else:
        for i in range(k):
            for dd in range(d):
                mu[i, dd] = x[om + i * d + dd]
    for i in range(k):
        for dd in range(d):
            z = (mu[i, dd] - mu0[dd]) / s0[dd]
            lp -= 0.5 * z * z
            mu[i, dd] -= centre[dd]

    # sigmas: log transform, HalfNormal prior
    ns = k * d if cov in (0, 2) else (d if cov == 1 else k)
    sig = np.empty(ns)
    for i in range(ns):
        y = x[os_ + i]
        sig[i] = math.exp(y)
        sc = scale[i % d] if cov != 3 else scale[0]
        z = sig[i] / sc
        lp += y - 0.5 * z * z

    # Cholesky factors: L = diag(sigmas) C, C from PyMC's Cholesky-correlation transform
    # (strict lower triangle filled from u, unit diagonal, rows normalised); LKJ prior
    # (exponent 2 eta - 3 + D - i on C_ii) plus Jacobian (exponent i + 2) sum to
    # (2 eta - 1 + D) log C_ii = -(2 eta - 1 + D) / 2 log(1 + |u_i|^2) per row
    kc = 1 if cov == 1 else k
    chol = np.zeros((k, d, d))
    rownorm2 = np.ones((kc, d))
    a_lkj = 2.0 * eta - 1.0 + d
    for c in range(kc):
        for r in range(d):
            if oc >= 0:
                for col in range(r):
                    u = x[oc + c * (d * (d - 1) // 2) + int(corr_idx[r, col])]
                    rownorm2[c, r] += u * u
                lp -= 0.5 * a_lkj * math.log(rownorm2[c, r])
                inv = 1.0 / math.sqrt(rownorm2[c, r])
                for col in range(r):
                    u = x[oc + c * (d * (d - 1) // 2) + int(corr_idx[r, col])]
                    chol[c, r, col] = sig[c * d + r] * u * inv
                chol[c, r, r] = sig[c * d + r] * inv
            elif cov == 3:
                chol[c, r, r] = sig[c]
            else:
                chol[c, r, r] = sig[c * d + r]
    if cov == 1:
        for c in range(1, k):
            chol[c] = chol[0]
    return lp, logw, mu, sig, chol, rownorm2


# --------------------------------------------------------------------------------------
# the likelihood pass: blocks of observations, branch-free loops along the block
# --------------------------------------------------------------------------------------

# exp(v) = 2**k exp(r), k = round(v / log 2), r = v - k log 2 (Cody-Waite: log 2 in two
# parts), |r| <= log(2) / 2; exp(r) by its Taylor polynomial to degree 13 (truncation
# error < 4e-18 relative).  k is read off the bits of v / log 2 + 1.5 * 2**52, whose low
# mantissa bits hold round(v / log 2); 2**k is built from its exponent bits.
_LOG2E = 1.4426950408889634
_LN2_HI = 0.6931471803691238  # 0x1.62e42feep-1: low 32 bits zero, k * _LN2_HI exact
_LN2_LO = 1.9082149292705877e-10
_SHIFT = 6755399441055744.0  # 1.5 * 2**52
_SHIFT_BITS = 0x4338000000000000  # its bits
_EXP_COEF = tuple(1.0 / math.factorial(i) for i in range(14))


@numba.njit(cache=True, fastmath={"contract"}, error_model="numpy")
def _exp_block(v, m, scratch):
    """``v[:m] = exp(v[:m])`` for ``-708 <= v <= 0`` in loops that LLVM vectorises
    (numba calls libm's scalar ``exp`` otherwise); relative error a few units in the last
    place.  ``scratch``: float64 (>= m), overwritten.  No reassociation here: the rounding
    to the nearest integer by adding and subtracting 1.5 * 2**52 must stay as written."""
    bits = scratch.view(np.int64)
    c = _EXP_COEF
    for i in range(m):
        s = v[i] * _LOG2E + _SHIFT
        kf = s - _SHIFT
        r = (v[i] - kf * _LN2_HI) - kf * _LN2_LO
        p = c[13]
        p = p * r + c[12]
        p = p * r + c[11]
        p = p * r + c[10]
        p = p * r + c[9]
        p = p * r + c[8]
        p = p * r + c[7]
        p = p * r + c[6]
        p = p * r + c[5]
        p = p * r + c[4]
        p = p * r + c[3]
        p = p * r + c[2]
        p = p * r + c[1]
        v[i] = p * r + c[0]
        scratch[i] = s
    for i in range(m):
        bits[i] = (bits[i] - _SHIFT_BITS + 1023) << 52
    for i in range(m):
        v[i] *= scratch[i]


@numba.njit(cache=True, fastmath={"reassoc", "contract", "nsz"}, error_model="numpy")
def _likelihood(xt, lo, hi, linv, b, base, resp_sum, z_sum, zz_sum):
    """Sum over observations ``lo:hi`` of log sum_k exp(base_k - |z_nk|^2 / 2), where
    z_nk = linv_k x_n - b_k and ``xt`` is the centred data (D, N); adds sum_n rho_nk,
    sum_n rho_nk z_nk and the lower triangle of sum_n rho_nk z_nk z_nk^T into
    ``resp_sum``, ``z_sum`` and ``zz_sum`` (rho: the responsibilities).

    Block by block, every inner loop runs along the block without branches, so that it
    is vectorised; the reassociation allowed here only reorders sums (along a block)."""
    k, d = b.shape
    bsz = min(_BLOCK, max(hi - lo, 1))
    z = np.empty((k, d, bsz))
    comp = np.empty((k, bsz))
    cmax = np.empty(bsz)
    tot = np.empty(bsz)
    scratch = np.empty(bsz)
    lp = 0.0
    for start in range(lo, hi, bsz):
        m = min(bsz, hi - start)
        for c in range(k):
            q = comp[c]
            for i in range(m):
                q[i] = 0.0
            for r in range(d):
                zr = z[c, r]
                br = b[c, r]
                for i in range(m):
                    zr[i] = -br
                for col in range(r + 1):
                    a = linv[c, r, col]
                    xcol = xt[col, start : start + m]
                    for i in range(m):
                        zr[i] += a * xcol[i]
                for i in range(m):
                    q[i] += zr[i] * zr[i]
            bc = base[c]
            for i in range(m):
                q[i] = bc - 0.5 * q[i]
        # log-sum-exp over components, per observation
        for i in range(m):
            cmax[i] = comp[0, i]
            tot[i] = 0.0
        for c in range(1, k):
            q = comp[c]
            for i in range(m):
                cmax[i] = q[i] if q[i] > cmax[i] else cmax[i]
        for c in range(k):
            q = comp[c]
            for i in range(m):
                delta = q[i] - cmax[i]
                q[i] = delta if delta > _LOG_FLOOR else _LOG_FLOOR
            _exp_block(q, m, scratch)
            for i in range(m):
                q[i] = q[i] if q[i] > _TERM_CUT else 0.0
                tot[i] += q[i]
        acc = 0.0
        for i in range(m):
            acc += cmax[i]
        lp += acc
        for r0 in range(0, m, _LOG_RUN):  # each total is in [1, K]: no overflow
            prod = 1.0
            for i in range(r0, min(r0 + _LOG_RUN, m)):
                prod *= tot[i]
            lp += math.log(prod)
        for i in range(m):
            tot[i] = 1.0 / tot[i]
        # responsibilities and the sufficient statistics of the gradient
        for c in range(k):
            q = comp[c]
            acc = 0.0
            for i in range(m):
                q[i] *= tot[i]
                acc += q[i]
            resp_sum[c] += acc
            for r in range(d):
                zr = z[c, r]
                acc = 0.0
                for i in range(m):
                    # a dropped term adds exactly 0, even where z overflowed to inf (rows
                    # col < r were cleared so at the earlier r)
                    zr[i] = zr[i] if q[i] > 0.0 else 0.0
                    acc += q[i] * zr[i]
                z_sum[c, r] += acc
                for col in range(r + 1):
                    zc = z[c, col]
                    acc = 0.0
                    for i in range(m):
                        acc += q[i] * zr[i] * zc[i]
                    zz_sum[c, r, col] += acc
    return lp


@numba.njit(cache=True, error_model="numpy")
def _components(x, buf):
    """Prior log-density and the constrained parameters at ``x``, and per component the
    inverse Cholesky factor, ``b_k = L_k^-1 mu_k`` and log w_k - log|L_k| - D/2 log 2 pi."""
    k, d = int(buf[_H_K]), int(buf[_H_D])
    lp, logw, mu, sig, chol, rownorm2 = _constrain(x, buf)

    # ----- likelihood: z_nk = L_k^-1 (x_n - mu_k) = A_k x_n - b_k
    linv = np.zeros((k, d, d))
    b = np.zeros((k, d))
    base = np.empty(k)
    for c in range(k):
        logdet = 0.0
        for r in range(d):
            logdet += math.log(chol[c, r, r])
            for col in range(r + 1):  # row r of L^-1 by forward substitution
                acc = 1.0 if r == col else 0.0
                for m in range(col, r):
                    acc -= chol[c, r, m] * linv[c, m, col]
                linv[c, r, col] = acc / chol[c, r, r]
        for r in range(d):
            acc = 0.0
            for col in range(r + 1):
                acc += linv[c, r, col] * mu[c, col]
            b[c, r] = acc
        base[c] = logw[c] - logdet - 0.5 * d * LOG_2PI
    return lp, logw, mu, sig, chol, rownorm2, linv, b, base


@numba.njit(cache=True, error_model="numpy")
def _gradient(x, grad, buf, logw, mu, sig, chol, rownorm2, linv, resp_sum, z_sum, zz_sum, extra):
    """The gradient into ``grad`` from the likelihood's sums (``zz_sum``: lower triangle)
    and ``extra`` = (g_logw, g_mu, g_chol) of the rows with missing coordinates."""
    k, d, cov, j = int(buf[_H_K]), int(buf[_H_D]), int(buf[_H_COV]), int(buf[_H_J])
    ow, omo, omf, om = int(buf[_H_OW]), int(buf[_H_OMO]), int(buf[_H_OMF]), int(buf[_H_OM])
    os_, oc = int(buf[_H_OS]), int(buf[_H_OC])
    alpha, mu0, s0, scale, eta, _, centre, corr_idx, _ = _unpack(buf)

    # ----- gradient w.r.t. log w, centred means and L (lower triangle)
    g_logw = resp_sum + alpha
    g_mu = np.empty((k, d))
    g_chol = np.zeros((k, d, d))
    for c in range(k):
        for r in range(d):
            for col in range(r):  # symmetric zz_sum
                zz_sum[c, col, r] = zz_sum[c, r, col]
        for r in range(d):
            acc = 0.0
            for m in range(r, d):
                acc += linv[c, m, r] * z_sum[c, m]
            g_mu[c, r] = acc - (mu[c, r] + centre[r] - mu0[r]) / (s0[r] * s0[r])
            for col in range(r + 1):  # (L^-T sum_n rho z z^T)[r, col]
                acc = 0.0
                for m in range(r, d):
                    acc += linv[c, m, r] * zz_sum[c, m, col]
                g_chol[c, r, col] = acc
            g_chol[c, r, r] -= resp_sum[c] / chol[c, r, r]
    g_logw += extra[0]
    g_mu += extra[1]
    g_chol += extra[2]

    grad[:] = 0.0
    # weights: d/dv = g - w sum(g), then u_i = v_i - v_{K-1} in reverse
    w = np.exp(logw)
    gsum = g_logw.sum()
    g_last = g_logw[k - 1] - w[k - 1] * gsum
    for i in range(k - 1):
        grad[ow + i] = g_logw[i] - w[i] * gsum - g_last

    # means
    if j >= 0:
        tail = 0.0
        for i in range(k - 1, -1, -1):
            tail += g_mu[i, j]
            grad[omo + i] = tail if i == 0 else tail * math.exp(x[omo + i]) + 1.0
        for i in range(k):
            f = 0
            for dd in range(d):
                if dd != j:
                    grad[omf + i * (d - 1) + f] = g_mu[i, dd]
                    f += 1
    else:
        for i in range(k):
            for dd in range(d):
                grad[om + i * d + dd] = g_mu[i, dd]

    # covariance parameters
    kc = 1 if cov == 1 else k
    g_sig = np.zeros(sig.shape[0])
    m_corr = d * (d - 1) // 2
    for c in range(k):
        cc = 0 if cov == 1 else c
        for r in range(d):
            if cov == 3:
                g_sig[c] += g_chol[c, r, r]
            elif oc < 0:
                g_sig[cc * d + r] += g_chol[c, r, r]
            else:
                s = sig[cc * d + r]
                for col in range(r + 1):
                    g_sig[cc * d + r] += g_chol[c, r, col] * chol[c, r, col] / s
    if oc >= 0:
        g_corr = np.zeros((kc, d, d))  # d logp / d C (summed over components if tied)
        for c in range(k):
            cc = 0 if cov == 1 else c
            for r in range(d):
                for col in range(r + 1):
                    g_corr[cc, r, col] += g_chol[c, r, col] * sig[cc * d + r]
        for cc in range(kc):
            for r in range(1, d):
                inv = 1.0 / math.sqrt(rownorm2[cc, r])
                # C_r = M_r / |M_r|: dC/dM = (I - C C^T) / |M_r|; M_r = [u_r, 1]
                proj = 0.0
                for col in range(r + 1):
                    proj += g_corr[cc, r, col] * chol[cc, r, col] / sig[cc * d + r]
                for col in range(r):
                    pos = oc + cc * m_corr + int(corr_idx[r, col])
                    u = x[pos]
                    grad[pos] = (g_corr[cc, r, col] - proj * u * inv) * inv - (
                        2.0 * eta - 1.0 + d
                    ) * u / rownorm2[cc, r]
    for i in range(sig.shape[0]):
        sc = scale[i % d] if cov != 3 else scale[0]
        grad[os_ + i] = g_sig[i] * sig[i] + 1.0 - (sig[i] / sc) ** 2


@numba.njit(cache=True, error_model="numpy")
def logp_grad(x, grad, buf):
    """Log-density of the model at the unconstrained vector ``x``; its gradient into ``grad``.

    Complete rows only: for a model with missing entries or measurement errors
    (:meth:`FastGMM.incomplete`) use :func:`logp_grad_incomplete`.  Two functions, so that
    the passes over such rows are compiled only when a model has them (they added 4 s to
    every first fit)."""
    n, k, d = int(buf[_H_N]), int(buf[_H_K]), int(buf[_H_D])
    lp, logw, mu, sig, chol, rownorm2, linv, b, base = _components(x, buf)
    resp_sum = np.zeros(k)
    z_sum = np.zeros((k, d))
    zz_sum = np.zeros((k, d, d))
    lp += _likelihood(_unpack(buf)[8], 0, n, linv, b, base, resp_sum, z_sum, zz_sum)
    extra = _extra_sums(k, d)
    _gradient(x, grad, buf, logw, mu, sig, chol, rownorm2, linv, resp_sum, z_sum, zz_sum, extra)
    return lp


@numba.njit(cache=True, error_model="numpy")
def logp_grad_incomplete(x, grad, buf):
    """:func:`logp_grad` with the rows with missing entries or measurement errors."""
    n, k, d = int(buf[_H_N]), int(buf[_H_K]), int(buf[_H_D])
    lp, logw, mu, sig, chol, rownorm2, linv, b, base = _components(x, buf)
    resp_sum = np.zeros(k)
    z_sum = np.zeros((k, d))
    zz_sum = np.zeros((k, d, d))
    lp += _likelihood(_unpack(buf)[8], 0, n, linv, b, base, resp_sum, z_sum, zz_sum)
    extra = _extra_sums(k, d)
    lp += _patterns_likelihood(buf, logw, mu, chol, extra)
    _gradient(x, grad, buf, logw, mu, sig, chol, rownorm2, linv, resp_sum, z_sum, zz_sum, extra)
    return lp


@numba.njit(cache=True)
def _extra_sums(k, d):
    return np.zeros(k), np.zeros((k, d)), np.zeros((k, d, d))


@numba.njit(cache=True, error_model="numpy", inline="always")
def _observed_factor(chol_c, o, s, lo, linv_c):
    """The Cholesky factor ``lo`` (m, m) of ``(L L^T)[o, o] + s`` (``L = chol_c``, (D, D);
    ``o`` the m observed coordinates; ``s`` (m, m): the rows' error covariance, or zeros),
    row by row, and its inverse into ``linv_c[:m, :m]``; returns log det ``lo``."""
    m, d = o.shape[0], chol_c.shape[0]
    for r in range(m):
        for q in range(r + 1):
            acc = s[r, q]
            for t in range(d):
                acc += chol_c[o[r], t] * chol_c[o[q], t]
            for t in range(q):
                acc -= lo[r, t] * lo[q, t]
            lo[r, q] = math.sqrt(acc) if r == q else acc / lo[q, q]
    logdet = 0.0
    for r in range(m):
        logdet += math.log(lo[r, r])
        for col in range(r + 1):
            acc = 1.0 if r == col else 0.0
            for t in range(col, r):
                acc -= lo[r, t] * linv_c[t, col]
            linv_c[r, col] = acc / lo[r, r]
    return logdet


@numba.njit(cache=True, error_model="numpy")
def _patterns_likelihood(buf, logw, mu, chol, extra):
    """Log-likelihood of the rows with missing coordinates, stored after the complete rows
    one missingness pattern at a time (``[n_patterns, then per pattern m, n_rows, the m
    observed coordinates, the centred observed data (m, n_rows)]``); adds its gradient
    w.r.t. log w, the centred means and the Cholesky factors L into ``extra``.

    Pattern o: the complete-data pass on ``x_o`` with ``L_o = chol(Sigma_oo)``; the gradient
    w.r.t. ``Sigma_oo`` is ``G = L_o^-T (sum rho z z^T - sum rho I) L_o^-1 / 2`` and, with
    ``Sigma = L L^T``, the one w.r.t. L is ``2 G L`` (rows and columns o of G)."""
    n, k, d = int(buf[_H_N]), int(buf[_H_K]), int(buf[_H_D])
    pos = _HEADER + k + 3 * d + 2 + d + d * d + n * d
    if pos >= int(buf[_H_LEN]):
        return 0.0
    g_logw, g_mu, g_chol = extra
    n_pat = int(buf[pos])
    pos += 2  # n_patterns, position of the noisy rows' section
    lp = 0.0
    for _ in range(n_pat):
        m, n_p = int(buf[pos]), int(buf[pos + 1])
        pos += 2
        o = np.empty(m, dtype=np.int64)
        for r in range(m):
            o[r] = int(buf[pos + r])
        pos += m
        xt = buf[pos : pos + m * n_p].reshape((m, n_p))
        pos += m * n_p
        linv = np.zeros((k, m, m))
        b = np.zeros((k, m))
        base = np.empty(k)
        lo = np.zeros((m, m))
        no_noise = np.zeros((m, m))
        for c in range(k):
            logdet = _observed_factor(chol[c], o, no_noise, lo, linv[c])
            for r in range(m):
                acc = 0.0
                for col in range(r + 1):
                    acc += linv[c, r, col] * mu[c, o[col]]
                b[c, r] = acc
            base[c] = logw[c] - logdet - 0.5 * m * LOG_2PI
        resp = np.zeros(k)
        zs = np.zeros((k, m))
        zz = np.zeros((k, m, m))
        lp += _likelihood(xt, 0, n_p, linv, b, base, resp, zs, zz)
        for c in range(k):
            g_logw[c] += resp[c]
            for r in range(m):
                for col in range(r):
                    zz[c, col, r] = zz[c, r, col]
                zz[c, r, r] -= resp[c]
            for r in range(m):
                acc = 0.0
                for t in range(r, m):
                    acc += linv[c, t, r] * zs[c, t]
                g_mu[c, o[r]] += acc
            g = 0.5 * (linv[c].T @ (zz[c] @ linv[c]))  # d lp / d Sigma_oo
            for r in range(m):
                for t in range(o[r] + 1):  # lower triangle of 2 G L, rows o
                    acc = 0.0
                    for q in range(m):
                        acc += g[r, q] * chol[c, o[q], t]
                    g_chol[c, o[r], t] += 2.0 * acc
    return lp + _noisy_likelihood(buf, logw, mu, chol, extra)


@numba.njit(cache=True, error_model="numpy")
def _noisy_likelihood(buf, logw, mu, chol, extra):
    """Log-likelihood of rows with measurement errors, one at a time (``[n_rows, then per
    row m, its m observed coordinates, centred x_o (m), S_oo (m, m)]``): one Cholesky
    factor of ``Sigma_k,oo + S_oo`` per row and component; adds the gradient (w.r.t.
    ``Sigma_oo``: ``rho (P r r^T P - P) / 2``, then ``2 G L``) into ``extra``."""
    n, k, d = int(buf[_H_N]), int(buf[_H_K]), int(buf[_H_D])
    pos = int(buf[_HEADER + k + 3 * d + 2 + d + d * d + n * d + 1])
    g_logw, g_mu, g_chol = extra
    n_rows = int(buf[pos])
    pos += 1
    lp = 0.0
    comp = np.empty(k)
    lo = np.zeros((d, d))
    linv = np.zeros((k, d, d))
    pr = np.zeros((k, d))
    for _ in range(n_rows):
        m = int(buf[pos])
        pos += 1
        o = np.empty(m, dtype=np.int64)
        for r in range(m):
            o[r] = int(buf[pos + r])
        pos += m
        x = buf[pos : pos + m]
        pos += m
        s = buf[pos : pos + m * m].reshape((m, m))
        pos += m * m
        for c in range(k):
            logdet = _observed_factor(chol[c], o, s, lo, linv[c])
            quad = 0.0
            for r in range(m):  # z = L^-1 (x - mu), then P r = L^-T z
                acc = 0.0
                for col in range(r + 1):
                    acc += linv[c, r, col] * (x[col] - mu[c, o[col]])
                pr[c, r] = acc
                quad += acc * acc
            for r in range(m):
                acc = 0.0
                for t in range(r, m):
                    acc += linv[c, t, r] * pr[c, t]
                pr[c, r] = acc
            comp[c] = logw[c] - logdet - 0.5 * m * LOG_2PI - 0.5 * quad
        cmax = comp.max()
        tot = 0.0
        for c in range(k):
            comp[c] = math.exp(comp[c] - cmax)
            tot += comp[c]
        lp += cmax + math.log(tot)
        for c in range(k):
            rho = comp[c] / tot
            g_logw[c] += rho
            for r in range(m):
                g_mu[c, o[r]] += rho * pr[c, r]
            for r in range(m):
                for t in range(o[r] + 1):  # lower triangle of 2 G L, rows o
                    acc = 0.0
                    for q in range(m):
                        prec = 0.0  # P[r, q] = sum_t linv[t, r] linv[t, q]
                        for u in range(max(r, q), m):
                            prec += linv[c, u, r] * linv[c, u, q]
                        acc += (pr[c, r] * pr[c, q] - prec) * chol[c, o[q], t]
                    g_chol[c, o[r], t] += rho * acc
    return lp


@numba.njit(cache=True)
def _thread_chunks(n):
    return n // _THREAD_CHUNK


def thread_chunks(buf: np.ndarray) -> int:
    """Chunks that :func:`logp_grad_threads` splits the pass into (below 2: it runs
    :func:`logp_grad`, on one thread) for the buffer ``FastGMM.buf``."""
    return int(buf[_H_N]) // _THREAD_CHUNK


@numba.njit(cache=True)
def _chunk_sums(chunks, k, d):
    return (
        np.zeros(chunks),
        np.zeros((chunks, k)),
        np.zeros((chunks, k, d)),
        np.zeros((chunks, k, d, d)),
    )


@numba.njit(cache=True)
def _total(parts, resp, zs, zzs):
    return parts.sum(), resp.sum(axis=0), zs.sum(axis=0), zzs.sum(axis=0)


@numba.njit(cache=True, parallel=True, error_model="numpy")
def logp_grad_threads(x, grad, buf):
    """:func:`logp_grad` with the likelihood pass split over numba's threads, in chunks of
    ``_THREAD_CHUNK`` observations and more (``logp_grad`` itself below two chunks).
    Opt-in: for one chain on several cores; with as many chains as cores it only adds
    overhead.  The sums are taken in another order, so the result can differ from
    ``logp_grad``'s in the last bits (not with the number of threads)."""
    n, k, d = int(buf[_H_N]), int(buf[_H_K]), int(buf[_H_D])
    # chunks of a fixed size, whatever the number of threads: the same result on any
    # machine (numba.get_num_threads here would keep the function out of the cache)
    chunks = _thread_chunks(n)
    if chunks < 2:
        return logp_grad_incomplete(x, grad, buf)
    lp, logw, mu, sig, chol, rownorm2, linv, b, base = _components(x, buf)
    xt = _unpack(buf)[8]
    # allocated and summed in helpers: array expressions here would be parallel loops too
    parts, resp, zs, zzs = _chunk_sums(chunks, k, d)
    for t in numba.prange(chunks):
        lo, hi = t * n // chunks, (t + 1) * n // chunks
        parts[t] = _likelihood(xt, lo, hi, linv, b, base, resp[t], zs[t], zzs[t])
    part, resp_sum, z_sum, zz_sum = _total(parts, resp, zs, zzs)
    lp += part
    extra = _extra_sums(k, d)
    lp += _patterns_likelihood(buf, logw, mu, chol, extra)
    _gradient(x, grad, buf, logw, mu, sig, chol, rownorm2, linv, resp_sum, z_sum, zz_sum, extra)
    return lp


@numba.njit(cache=True, error_model="numpy")
def expand(x, out, buf):
    """Write ``x`` and the constrained variables into ``out`` (see ``FastGMM.expanded``)."""
    k, d, cov, j, oc = (
        int(buf[_H_K]),
        int(buf[_H_D]),
        int(buf[_H_COV]),
        int(buf[_H_J]),
        int(buf[_H_OC]),
    )
    centre = _unpack(buf)[6]
    _, logw, mu, sig, chol, _ = _constrain(x, buf)
    pos = x.shape[0]
    out[:pos] = x
    out[pos : pos + k] = np.exp(logw)
    pos += k
    if j >= 0:
        out[pos : pos + k] = mu[:, j] + centre[j]
        pos += k
    out[pos : pos + sig.shape[0]] = sig
    pos += sig.shape[0]
    if oc >= 0:
        for c in range(1 if cov == 1 else k):
            for r in range(d):
                for col in range(d):
                    out[pos] = chol[c, r, col] / sig[c * d + r]
                    pos += 1
    if j >= 0:
        for c in range(k):
            for dd in range(d):
                out[pos] = mu[c, dd] + centre[dd]
                pos += 1
    out[pos : pos + k * d * d] = chol.ravel()


# --------------------------------------------------------------------------------------
# reading a built model
# --------------------------------------------------------------------------------------


def _corr_index(d: int) -> np.ndarray:
    """Position in the unconstrained vector of each strictly lower entry of C (else -1).

    PyMC's ``CholeskyCorrTransform`` (lower) fills the (D-1)x(D-1) lower triangle below the
    first row in TensorFlow Probability's spiral order: [x[D-1:], x reversed] row-major.
    """
    idx = np.full((d, d), -1.0)
    if d > 1:
        m = d * (d - 1) // 2
        ar = np.arange(m)
        spiral = np.concatenate([ar[d - 1 :], ar[::-1]]).reshape(d - 1, d - 1)
        rows, cols = np.tril_indices(d - 1)
        idx[rows + 1, cols] = spiral[rows, cols]
    return idx


def _lkj_log_norm(eta: float, d: int) -> float:
    """PyMC's LKJ normalising constant (``_lkj_normalizing_constant``)."""
    k = np.arange(1, d)
    return float(
        (d - 1) * gammaln(eta + 0.5 * (d - 1))
        - np.sum(0.5 * k * np.log(np.pi) + gammaln(eta + 0.5 * (d - 1 - k)))
    )


def _const(var) -> np.ndarray:
    """Value of a graph built from constants only (e.g. a broadcast constant)."""
    if isinstance(var, Constant):
        return np.asarray(var.data, dtype=np.float64)
    if not all(isinstance(v, Constant) for v in graph_inputs([var])):
        raise _Unsupported(f"{var} depends on a variable")
    # the pure-Python linker: nothing compiled (FAST_COMPILE's "vm" linker compiles
    # PyTensor's C lazylinker on a fresh machine)
    return np.asarray(var.eval(mode=_PY_MODE), dtype=np.float64)


_PY_MODE = Mode(linker="py", optimizer="fast_compile")


class _Unsupported(Exception):
    """The model is not exactly one that :func:`build_gmm_model` builds."""


def _dist_inputs(model: pm.Model, name: str, op_name: str) -> list:
    rv = model[name]
    if rv.owner.op.__class__.__name__ != op_name:
        raise _Unsupported(f"{name} is {rv.owner.op}, expected {op_name}")
    return rv.owner.inputs


def _complete_only(buf: np.ndarray) -> bool:
    """Whether the buffer ends after the complete rows (no missing entries or errors)."""
    n, k, d = int(buf[_H_N]), int(buf[_H_K]), int(buf[_H_D])
    return int(buf[_H_LEN]) == _HEADER + k + 3 * d + 2 + d + d * d + n * d


@dataclass(frozen=True)
class FastGMM:
    """The numba log-density of one built GMM model and its parameter layout.

    ``buf`` carries the data and priors; ``value_names``/``value_shapes`` give the layout of
    the unconstrained vector (nutpie's: value variables in ``model.free_RVs`` order),
    ``expanded`` the names and shapes that :func:`expand` writes after it.
    """

    buf: np.ndarray
    n_dim: int
    rv_names: list[str]
    value_names: list[str]
    value_shapes: list[tuple[int, ...]]
    expanded: list[tuple[str, tuple[int, ...]]]

    @property
    def incomplete(self) -> bool:
        """Whether the model has rows with missing entries or measurement errors (the
        buffer's tail after the complete rows)."""
        return not _complete_only(self.buf)

    def logp_dlogp(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        """Log-density (Jacobians included) and its gradient at the unconstrained ``x``."""
        grad = np.empty(self.n_dim)
        kernel = logp_grad_incomplete if self.incomplete else logp_grad
        lp = kernel(np.ascontiguousarray(x, dtype=np.float64), grad, self.buf)
        return lp, grad

    def logp_dlogp_nojac(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        """Log-density without the transforms' Jacobians (``model.logp(jacobian=False)``,
        the objective of ``pm.find_MAP``) and its gradient at the unconstrained ``x``."""
        lp, grad = self.logp_dlogp(x)
        jac, jac_grad = log_jacobian(self, x)
        return lp - jac, grad - jac_grad

    def expand(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Constrained variables (and the unconstrained values) at ``x``, by name."""
        size = self.n_dim + sum(int(np.prod(s)) for _, s in self.expanded)
        out = np.empty(size)
        expand(np.ascontiguousarray(x, dtype=np.float64), out, self.buf)
        shapes = [*zip(self.value_names, self.value_shapes, strict=True), *self.expanded]
        result, pos = {}, 0
        for name, shape in shapes:
            n = int(np.prod(shape))
            result[name] = out[pos : pos + n].reshape(shape)
            pos += n
        return result

    def to_unconstrained(self, point: dict[str, np.ndarray]) -> np.ndarray:
        """Flat unconstrained vector from constrained free-RV values (PyMC's forward maps)."""
        parts = []
        for name in self.rv_names:
            value = np.asarray(point[name], dtype=np.float64)
            if name == "weights":  # simplex: log w[:-1] - mean(log w)
                parts.append(np.log(value[:-1]) - np.log(value).mean())
            elif name == "means_ordered":
                parts.append(np.concatenate([value[:1], np.log(np.diff(value))]))
            elif name == "sigmas":
                parts.append(np.log(value).ravel())
            elif name == "chol_corr":  # strict lower triangle divided by the diagonal
                d = value.shape[-1]
                c = value.reshape(-1, d, d)
                idx = _corr_index(d)
                rows, cols = np.nonzero(idx >= 0)
                u = np.empty((c.shape[0], rows.size))
                u[:, idx[rows, cols].astype(int)] = c[:, rows, cols] / c[:, rows, rows]
                parts.append(u.ravel())
            else:
                parts.append(value.ravel())
        return np.concatenate(parts)


@dataclass(frozen=True)
class KernelLayout:
    """What the kernels read off a :class:`FastGMM` buffer, unpacked, for other backends of
    the same density (:mod:`bayesgmm.gmm.jax_logp`).

    Offsets are positions in the unconstrained vector, -1 for a block the model lacks
    (``means_ordered``/``means_free`` without an ordered feature, ``means`` with one,
    ``chol_corr`` for diagonal covariances).  ``const`` is the priors' normalising
    constant; ``data`` is the data centred on ``centre``, (N, D); ``corr_index`` is
    :func:`_corr_index`'s (D, D) map of the Cholesky-correlation entries (-1 off the strict
    lower triangle).  ``complete`` is False when the model also has rows with missing
    coordinates or measurement errors (the buffer's tail, which ``data`` does not hold:
    a backend that reads only ``data`` must decline such a model).
    """

    n: int
    k: int
    d: int
    covariance_type: str
    order_feature: int
    offsets: dict[str, int]
    alpha: np.ndarray
    mu0: np.ndarray
    s0: np.ndarray
    scale: np.ndarray
    eta: float
    const: float
    centre: np.ndarray
    corr_index: np.ndarray
    data: np.ndarray
    complete: bool


def kernel_layout(fast: FastGMM) -> KernelLayout:
    """The :class:`KernelLayout` of ``fast`` (copies of the buffer's parts)."""
    buf = fast.buf
    alpha, mu0, s0, scale, eta, const, centre, corr_idx, xt = _unpack(buf)
    code = int(buf[_H_COV])
    n, k, d = int(buf[_H_N]), int(buf[_H_K]), int(buf[_H_D])
    names = ["weights", "means_ordered", "means_free", "means", "sigmas", "chol_corr"]
    heads = [_H_OW, _H_OMO, _H_OMF, _H_OM, _H_OS, _H_OC]
    return KernelLayout(
        n=n,
        k=k,
        d=d,
        covariance_type=next(c for c, v in _COV_CODES.items() if v == code),
        order_feature=int(buf[_H_J]),
        offsets={name: int(buf[h]) for name, h in zip(names, heads, strict=True)},
        alpha=alpha.copy(),
        mu0=mu0.copy(),
        s0=s0.copy(),
        scale=scale.copy(),
        eta=float(eta),
        const=float(const),
        centre=centre.copy(),
        corr_index=corr_idx.astype(np.int64),
        data=np.ascontiguousarray(xt.T),
        complete=_complete_only(buf),
    )


def fast_gmm(model: pm.Model) -> FastGMM | None:
    """The fused numba log-density of ``model``, or None if the model is not exactly a
    :func:`build_gmm_model` model (for example after a user added a variable) or has
    measurement errors (``noise_cov``; missing entries are supported)."""
    try:
        return _read_model(model)
    except (_Unsupported, KeyError):  # KeyError: a variable or coord of ours is missing
        return None


def _read_model(model: pm.Model) -> FastGMM:
    free = [rv.name for rv in model.free_RVs]
    if model.potentials or [rv.name for rv in model.observed_RVs] != [OBS_VAR]:
        raise _Unsupported("extra potentials or observed variables")
    try:
        cov = model_covariance_type(model)
    except ValueError as err:
        raise _Unsupported(str(err)) from err
    data = _const(model.rvs_to_values[model[OBS_VAR]])
    # measurement errors (extra likelihood inputs): the PyTensor graph; missing entries
    # (NaN): the complete rows as usual, the others by pattern after them
    obs = model[OBS_VAR].owner
    params = obs.op.dist_params(obs)
    noise = None
    if len(params) == 5:  # measurement errors: (weights, means, scale, noise_cov, factor)
        noise = _const(params[3])
    elif len(params) != 3:
        raise _Unsupported(f"likelihood with {len(params)} parameters")
    n, d = data.shape
    k = len(model.coords["component"])
    ordered = "means_ordered" in free
    has_corr = "chol_corr" in free
    expected = ["weights", *(["means_ordered"] if ordered else ["means"])]
    expected += ["means_free"] if ordered and d > 1 else []
    expected += ["sigmas", *(["chol_corr"] if has_corr else [])]
    if free != expected:
        raise _Unsupported(f"free variables {free}, expected {expected}")

    alpha = _const(_dist_inputs(model, "weights", "DirichletRV")[2]) * np.ones(k)
    mu0, s0 = np.zeros(d), np.ones(d)
    j = -1
    if ordered:
        j = 0
        if d > 1:
            names = list(model.coords["feature_free"])
            j = next(i for i, f in enumerate(model.coords["feature"]) if f not in names)
        ins = _dist_inputs(model, "means_ordered", "CustomDist_means_ordered")
        mu0[j], s0[j] = _const(ins[1])[0], _const(ins[2])[0]
        free_idx = [i for i in range(d) if i != j]
        if free_idx:
            _, _, m_mu, m_sd = _dist_inputs(model, "means_free", "NormalRV")
            mu0[free_idx] = _const(m_mu) * np.ones(d - 1)
            s0[free_idx] = _const(m_sd) * np.ones(d - 1)
    else:
        _, _, m_mu, m_sd = _dist_inputs(model, "means", "NormalRV")
        mu0[:], s0[:] = _const(m_mu) * np.ones(d), _const(m_sd) * np.ones(d)
    _, _, loc, scale = _dist_inputs(model, "sigmas", "HalfNormalRV")
    if np.any(_const(loc) != 0):
        raise _Unsupported("HalfNormal with a non-zero loc")
    scale = _const(scale) * np.ones(d)
    eta = 1.0
    kc = 1 if cov == "tied" else k
    if has_corr:
        eta = float(_const(_dist_inputs(model, "chol_corr", "LKJCorrRV")[3]))

    const = float(gammaln(alpha.sum()) - gammaln(alpha).sum() + np.log(k))
    const += float(-np.log(s0[:, None] * np.ones((d, k))).sum() - 0.5 * k * d * LOG_2PI)
    if ordered:
        const += float(gammaln(k + 1.0))
    n_sig = int(np.prod(sd_shape(cov, k, d)))
    sig_scale = np.full(n_sig, scale[0]) if cov == "spherical" else np.tile(scale, n_sig // d)
    const += float(n_sig * 0.5 * np.log(2.0 / np.pi) - np.log(sig_scale).sum())
    if has_corr:
        const += kc * _lkj_log_norm(eta, d)

    value_vars = [model.rvs_to_values[model[name]] for name in free]
    m_corr = d * (d - 1) // 2
    sizes = {
        "weights": (k - 1,),
        "means_ordered": (k,),
        "means_free": (k, d - 1),
        "means": (k, d),
        "sigmas": sd_shape(cov, k, d),
        "chol_corr": (m_corr,) if cov == "tied" else (k, m_corr),
    }
    shapes = [sizes[name] for name in free]
    ends = np.cumsum([int(np.prod(s)) for s in shapes])
    off = {name: int(end - np.prod(s)) for name, s, end in zip(free, shapes, ends, strict=True)}
    n_dim = int(ends[-1])
    centre = np.nanmean(data, axis=0)
    observed = ~np.isnan(data)
    complete = observed.all(axis=1)
    patterns = []
    if noise is not None:  # every row in the noisy section
        complete[:] = False
    if not complete.all():
        groups = [] if noise is not None else missing_patterns(observed[~complete])
        patterns = [float(len(groups)), 0.0]
        for o, rows in groups:
            sub = (data[~complete][rows][:, o] - centre[o]).T  # (m, n_p)
            patterns += [float(o.size), float(rows.size), *o.astype(float), *sub.ravel()]
        n_complete = int(complete.sum())
        noisy_pos = _HEADER + k + 3 * d + 2 + d + d * d + n_complete * d + len(patterns)
        patterns[1] = float(noisy_pos)
        if noise is None:
            patterns.append(0.0)
        else:
            patterns.append(float(n))
            for i in range(n):
                o = np.flatnonzero(observed[i])
                patterns += [float(o.size), *o.astype(float), *(data[i, o] - centre[o])]
                patterns += list(noise[i][np.ix_(o, o)].ravel())
        data = data[complete]
        n = data.shape[0]
    header = np.zeros(_HEADER)
    header[[_H_N, _H_K, _H_D, _H_COV, _H_J]] = n, k, d, _COV_CODES[cov], j
    header[[_H_OW, _H_OMO, _H_OMF, _H_OM, _H_OS, _H_OC, _H_NDIM]] = (
        off["weights"],
        off.get("means_ordered", -1),
        off.get("means_free", -1),
        off.get("means", -1),
        off["sigmas"],
        off.get("chol_corr", -1),
        n_dim,
    )
    body = [alpha, mu0, s0, scale, [eta, const], centre, _corr_index(d).ravel()]
    body.append((data - centre).T.ravel())  # feature-major: the pass runs along N
    body.append(np.asarray(patterns))  # rows with missing coordinates (none: empty)
    buf = np.concatenate([header, *map(np.ravel, body)])
    buf[_H_LEN] = buf.size

    expanded = [("weights", (k,))]
    expanded += [("means_ordered", (k,))] if ordered else []
    expanded += [("sigmas", sizes["sigmas"])]
    expanded += [("chol_corr", (d, d) if cov == "tied" else (k, d, d))] if has_corr else []
    expanded += [("means", (k, d))] if ordered else []
    expanded += [("chol_cov", (k, d, d))]
    known = {v.name for v in value_vars} | {name for name, _ in expanded}
    # the names of model.unobserved_value_vars, without building its graphs (slow)
    names = {v.name for v in value_vars} | set(free) | {v.name for v in model.deterministics}
    if names != known:
        raise _Unsupported("unexpected deterministics")
    return FastGMM(buf, n_dim, free, [v.name for v in value_vars], shapes, expanded)


# --------------------------------------------------------------------------------------
# the transforms' log-Jacobian (for the MAP, whose objective is ``model.logp(jacobian=False)``)
# --------------------------------------------------------------------------------------


def log_jacobian(fast: FastGMM, x: np.ndarray) -> tuple[float, np.ndarray]:
    """Sum of the log-Jacobians of the model's transforms at the unconstrained ``x``, and its
    gradient: ``model.logp() - model.logp(jacobian=False)``.

    Simplex: log K + sum_k log w_k; ordered: sum_{i>0} y_i; log: sum y; Cholesky-correlation
    (PyMC's ``CholeskyCorrTransform``): -(r + 2) / 2 log(1 + |u_r|^2) per row r >= 1 of
    each correlation factor (u_r: the row's unconstrained entries).
    """
    buf = fast.buf
    k, d, cov = int(buf[_H_K]), int(buf[_H_D]), int(buf[_H_COV])
    ow, omo, os_, oc = int(buf[_H_OW]), int(buf[_H_OMO]), int(buf[_H_OS]), int(buf[_H_OC])
    x = np.asarray(x, dtype=np.float64)
    grad = np.zeros(fast.n_dim)
    # simplex: v = [u, -sum u], log w = v - lse(v)
    u = x[ow : ow + k - 1]
    v = np.append(u, -u.sum())
    logw = v - (v.max() + np.log(np.exp(v - v.max()).sum()))
    w = np.exp(logw)
    jac = math.log(k) + logw.sum()
    grad[ow : ow + k - 1] = k * (w[-1] - w[:-1])
    if omo >= 0:
        jac += x[omo + 1 : omo + k].sum()
        grad[omo + 1 : omo + k] = 1.0
    ns = k * d if cov in (0, 2) else (d if cov == 1 else k)
    jac += x[os_ : os_ + ns].sum()
    grad[os_ : os_ + ns] = 1.0
    if oc >= 0 and d > 1:
        kc = 1 if cov == 1 else k
        m_corr = d * (d - 1) // 2
        idx = _corr_index(d).astype(np.int64)
        for c in range(kc):
            uc = x[oc + c * m_corr : oc + (c + 1) * m_corr]
            for r in range(1, d):
                pos = idx[r, :r]
                norm2 = 1.0 + uc[pos] @ uc[pos]
                jac -= 0.5 * (r + 2) * math.log(norm2)
                grad[oc + c * m_corr + pos] = -(r + 2) * uc[pos] / norm2
    return float(jac), grad


def find_map_fast(
    fast: FastGMM, initvals: dict[str, np.ndarray], *, options: dict | None = None
) -> dict[str, np.ndarray]:
    """``pm.find_MAP`` on the fused log-density: L-BFGS-B (scipy's defaults, as in
    ``find_MAP``) on -``model.logp(jacobian=False)`` with its analytic gradient, over the
    unconstrained space, from the constrained free-RV values ``initvals``.

    Returns the value of every named variable at the optimum (the free and deterministic
    variables, constrained; not the transformed value variables), as ``find_MAP`` does.
    Warns, as ``find_MAP`` does, when the optimiser did not converge.
    """
    import warnings

    from scipy.optimize import minimize

    x0 = fast.to_unconstrained(initvals)

    def objective(x):
        lp, grad = fast.logp_dlogp_nojac(x)
        return -lp, -grad

    res = minimize(objective, x0, jac=True, method="L-BFGS-B", options=options)
    if not res.success:
        warnings.warn(f"The optimizer did not converge: {res.message}", UserWarning, stacklevel=2)
    return {name: v for name, v in fast.expand(res.x).items() if not name.endswith("__")}
