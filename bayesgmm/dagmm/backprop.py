"""DAGMM's training step in NumPy: the objective's gradient by a hand-written backward pass,
and Adam. Nothing is compiled.

The objective is :func:`bayesgmm.dagmm.graph.loss_terms` (the PyTensor graph, the
reference it is tested against, with finite differences of
:func:`bayesgmm.dagmm.mixture.loss_terms`)::

    J = 1/N sum_i |x_i - x'_i|^2 + lambda1 / N sum_i E(z_i) + lambda2 sum_kj 1 / Sigma_kjj

The backward pass, for the mixture part (see :mod:`bayesgmm.dagmm.graph` for the forward
quantities; ``r_ki`` are the energy's responsibilities, the softmax over ``k`` of the log
terms ``l_ki = log phi_k - log|L_k| - d/2 log 2 pi - m_ki / 2``, with ``L_k`` the Cholesky
factor of ``Sigma_k``, ``delta_ki = z_i - mu_k``, ``v_ki = Sigma_k^-1 delta_ki`` by two
triangular solves and ``m_ki = delta_ki' v_ki``)::

    dJ/dl_ki       = -lambda1 / N r_ki
    dJ/dphi_k      = sum_i dJ/dl_ki / phi_k
    dJ/dSigma_k    = -1/2 sum_i dJ/dl_ki (Sigma_k^-1 - v_ki v_ki')
                     - lambda2 / Sigma_kjj^2                     (on the diagonal)
    dJ/dz_i       += sum_k dJ/dl_ki (-v_ki)                    (through delta, Sigma held)
    dJ/dmu_k      += sum_i dJ/dl_ki v_ki

then through the M-step ``N_k = sum_i gamma_ik``, ``phi_k = N_k / N``,
``mu_k = sum_i gamma_ik z_i / N_k``, ``Sigma_k = sum_i gamma_ik delta_ki delta_ki' / N_k
(+ reg_covar I)`` with ``G_k = dJ/dSigma_k`` (symmetric); ``Sigma_k``'s dependence on
``mu_k`` drops out because ``sum_i gamma_ik delta_ki = 0``::

    dJ/dz_i       += sum_k gamma_ik (2 G_k delta_ki + dJ/dmu_k) / N_k
    dJ/dgamma_ik   = (delta_ki' G_k delta_ki - tr(G_k S_k) + dJ/dmu_k' delta_ki) / N_k
                     + dJ/dphi_k / N

(``S_k`` the covariance without ``reg_covar``), then the softmax, the estimation network,
the reconstruction features and the two halves of the compression network as usual. The
subgradients at ties follow PyTensor's ``maximum`` (``x >= y`` takes the gradient): a ReLU
at 0 and a norm at its floor pass the gradient on.

``Sigma_k^-1`` itself enters only the gradient (a d x d matrix, d = latent + 2, from the
Cholesky factor by triangular solves); the energies use the factor.

Adam is PyMC's (:func:`pymc.variational.updates.adam`): ``a_t = lr sqrt(1 - b2^t) /
(1 - b1^t)``, ``w -= a_t m_t / (sqrt(v_t) + eps)`` with ``b1 = 0.9``, ``b2 = 0.999``,
``eps = 1e-8``, so that this step and the compiled one take the same path up to rounding
(tested).
"""

from __future__ import annotations

import numpy as np
from scipy.special import logsumexp

from bayesgmm.dagmm.network import NORM_FLOOR, Architecture, softmax, split_weights
from bayesgmm.em.gaussian import LOG_2PI

__all__ = ["ADAM_BETAS", "ADAM_EPSILON", "NumpyTrainStep", "loss_and_gradient"]

#: Adam's decay rates of the first and second moments (PyMC's defaults).
ADAM_BETAS = (0.9, 0.999)
#: Adam's denominator guard (PyMC's default).
ADAM_EPSILON = 1e-8


def _activation(name: str):
    """``(f, df)``: the activation and its derivative from ``(a, f(a))``."""
    if name == "tanh":
        return np.tanh, lambda a, out: 1.0 - out * out
    if name == "relu":
        return lambda a: np.maximum(a, 0.0), lambda a, out: (a >= 0.0).astype(a.dtype)
    if name == "sigmoid":
        return (lambda a: 0.5 * (1.0 + np.tanh(0.5 * a))), lambda a, out: out * (1.0 - out)
    raise ValueError(f"unknown activation {name!r}")


def _mlp_forward(h, layers, act, masks=None):
    """Output (linear last layer) and, per layer, ``(input, pre-activation, activation)``."""
    cache = []
    for i, (W, b) in enumerate(layers):
        a = h @ W + b
        if i < len(layers) - 1:
            out = act(a)
            cache.append((h, a, out))
            h = out * masks[i] if masks is not None else out
        else:
            cache.append((h, a, None))
            h = a
    return h, cache


def _mlp_backward(g, layers, cache, dact, masks=None):
    """Gradient at the network's input, and ``[(dW, db), ...]``, from ``g`` at its output."""
    grads = []
    for i in reversed(range(len(layers))):
        W, _ = layers[i]
        h_in, a, out = cache[i]
        if i < len(layers) - 1:
            if masks is not None:
                g = g * masks[i]
            g = g * dact(a, out)
        grads.append((h_in.T @ g, g.sum(axis=0)))
        g = g @ W.T
    grads.reverse()
    return g, grads


def _solve_lower(chol, B):
    """``X`` with ``chol[k] @ X[k, n] = B[k, n]`` for lower-triangular ``chol`` (K, d, d)
    and ``B`` (K, N, d): forward substitution, one column at a time over all rows (d is
    the small dimension of z; NumPy only, so that SciPy's BLAS threads and NumPy's do not
    take turns, which made a step several times slower)."""
    X = np.empty_like(B)
    for j in range(B.shape[-1]):
        X[..., j] = (B[..., j] - np.einsum("kni,ki->kn", X[..., :j], chol[:, j, :j])) / chol[
            :, j, j
        ][:, None]
    return X


def _solve_lower_transposed(chol, B):
    """``X`` with ``chol[k].T @ X[k, n] = B[k, n]``: back substitution (see
    :func:`_solve_lower`)."""
    X = np.empty_like(B)
    d = B.shape[-1]
    for j in reversed(range(d)):
        X[..., j] = (
            B[..., j] - np.einsum("kni,ki->kn", X[..., j + 1 :], chol[:, j + 1 :, j])
        ) / chol[:, j, j][:, None]
    return X


def _floored_norm(V):
    """Row norms floored inside the square root (as the graph), and where the floor is off."""
    sq = np.einsum("ij,ij->i", V, V)
    on = sq >= NORM_FLOOR**2
    return np.sqrt(np.where(on, sq, NORM_FLOOR**2)), on


def loss_and_gradient(
    arch: Architecture,
    weights: list[np.ndarray],
    X: np.ndarray,
    masks: list[np.ndarray] | None = None,
    *,
    lambda_energy: float,
    lambda_cov: float,
    reg_covar: float = 0.0,
):
    """The objective's terms on the batch ``X`` (N, D) and its gradient.

    Parameters
    ----------
    arch : Architecture
    weights : list of ndarray
        ``[W0, b0, W1, b1, ...]`` (see :func:`bayesgmm.dagmm.network.split_weights`).
    X : ndarray of shape (N, D)
    masks : list of ndarray of shape (N, width), optional
        Inverted-dropout masks of the estimation network's hidden layers.
    lambda_energy, lambda_cov, reg_covar : float

    Returns
    -------
    terms : ndarray of shape (4,)
        ``total, reconstruction, energy, covariance_penalty``; all NaN when a component
        covariance is not positive definite (as the graph's ``on_error="nan"``).
    grads : list of ndarray or None
        ``dJ/dw`` for every array of ``weights``; None with NaN terms.
    """
    shapes = [s for _, a, b in arch.layer_shapes() for s in ((a, b), (b,))]
    if [np.shape(w) for w in weights] != shapes or np.ndim(X) != 2 or X.shape[1] != arch.n_features:
        raise ValueError(
            f"loss_and_gradient: X must be (N, {arch.n_features}) and the weights of shapes "
            f"{shapes}; got X {np.shape(X)} and weights {[np.shape(w) for w in weights]}"
        )
    act, dact = _activation(arch.activation)
    nets = split_weights(arch, weights)
    n, latent = X.shape[0], arch.latent_dim
    code, enc_cache = _mlp_forward(X, nets["encoder"], act)
    x_hat, dec_cache = _mlp_forward(code, nets["decoder"], act)
    norm_x, _ = _floored_norm(X)
    norm_r, on_r = _floored_norm(x_hat)
    err = X - x_hat
    norm_e, on_e = _floored_norm(err)
    dot = np.einsum("ij,ij->i", X, x_hat)
    z = np.column_stack([code, norm_e / norm_x, dot / (norm_x * norm_r)])
    logits, est_cache = _mlp_forward(z, nets["estimation"], act, masks)
    gamma = softmax(logits)

    # the mixture of the batch (the M-step on the memberships) and its energies
    d = z.shape[1]
    nk = gamma.sum(axis=0)
    phi = nk / n
    mu = gamma.T @ z / nk[:, None]
    delta = z[None, :, :] - mu[:, None, :]  # (K, N, d)
    s0 = np.einsum("nk,kni,knj->kij", gamma, delta, delta) / nk[:, None, None]
    sigma = s0 + reg_covar * np.eye(d) if reg_covar else s0
    try:
        chol = np.linalg.cholesky(sigma)
    except np.linalg.LinAlgError:
        return np.full(4, np.nan), None
    white = _solve_lower(chol, delta)  # L_k^-1 delta_ki, (K, N, d)
    log_det = np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(axis=1)  # (K,)
    log_comp = (np.log(phi) - log_det - 0.5 * d * LOG_2PI)[:, None] - 0.5 * np.einsum(
        "kni,kni->kn", white, white
    )  # (K, N)
    energies = -logsumexp(log_comp, axis=0)
    diag = np.diagonal(sigma, axis1=1, axis2=2)
    recon = float(np.mean(np.einsum("ij,ij->i", err, err)))
    mean_energy = float(np.mean(energies))
    penalty = float(np.sum(1.0 / diag))
    total = recon + lambda_energy * mean_energy + lambda_cov * penalty
    terms = np.array([total, recon, mean_energy, penalty])

    # backward: the energy, holding the mixture parameters
    g_log = -(lambda_energy / n) * np.exp(log_comp + energies[None, :])  # dJ/dl (K, N)
    g_sum = g_log.sum(axis=1)
    v = _solve_lower_transposed(chol, white)  # Sigma_k^-1 delta_ki
    eye = np.broadcast_to(np.eye(d), chol.shape)
    precision = _solve_lower_transposed(chol, _solve_lower(chol, eye))  # Sigma_k^-1 (symmetric)
    g_sigma = -0.5 * g_sum[:, None, None] * precision
    g_sigma += 0.5 * np.einsum("kn,kni,knj->kij", g_log, v, v)
    g_sigma[:, np.arange(d), np.arange(d)] -= lambda_cov / diag**2
    g_sigma = 0.5 * (g_sigma + g_sigma.transpose(0, 2, 1))
    g_delta = -g_log[:, :, None] * v  # (K, N, d): through the Mahalanobis terms
    g_z = g_delta.sum(axis=0)
    g_mu = -g_delta.sum(axis=1)  # (K, d)
    g_phi = g_sum / phi
    # ... through the M-step
    g_sd = np.einsum("kij,knj->kni", g_sigma, delta)  # G_k delta_ki
    g_z += np.einsum("nk,kni->ni", gamma, (2.0 * g_sd + g_mu[:, None, :]) / nk[:, None, None])
    g_gamma = (
        np.einsum("kni,kni->kn", delta, g_sd)
        - np.einsum("kij,kij->k", g_sigma, s0)[:, None]
        + np.einsum("kd,knd->kn", g_mu, delta)
    ).T / nk[None, :] + g_phi[None, :] / n
    # ... the softmax and the estimation network
    g_logits = gamma * (g_gamma - np.einsum("nk,nk->n", gamma, g_gamma)[:, None])
    g_in, est_grads = _mlp_backward(g_logits, nets["estimation"], est_cache, dact, masks)
    g_z += g_in
    # ... the reconstruction features and the reconstruction term, then the networks
    g_dist, g_cos = g_z[:, latent], g_z[:, latent + 1]
    g_xhat = -(2.0 / n) * err
    g_xhat -= (g_dist * on_e / (norm_x * norm_e))[:, None] * err
    g_xhat += (g_cos / (norm_x * norm_r))[:, None] * X
    g_xhat -= (g_cos * on_r * dot / (norm_x * norm_r**3))[:, None] * x_hat
    g_code, dec_grads = _mlp_backward(g_xhat, nets["decoder"], dec_cache, dact)
    _, enc_grads = _mlp_backward(g_code + g_z[:, :latent], nets["encoder"], enc_cache, dact)
    grads = [g for pair in (*enc_grads, *dec_grads, *est_grads) for g in pair]
    return terms, grads


class NumpyTrainStep:
    """A training step with Adam on NumPy weights, called like the compiled PyTensor step:
    ``step(x, *masks)`` returns the loss terms on the batch before the update, then
    updates :attr:`weights` (no update when the terms are not finite)."""

    def __init__(self, arch: Architecture, weights: list[np.ndarray], *, lambda_energy: float,
                 lambda_cov: float, reg_covar: float, learning_rate: float):  # fmt: skip
        self.arch = arch
        self.weights = [np.array(w, dtype=np.float64) for w in weights]
        self.options = dict(lambda_energy=lambda_energy, lambda_cov=lambda_cov,
                            reg_covar=reg_covar)  # fmt: skip
        self.learning_rate = learning_rate
        self.m = [np.zeros_like(w) for w in self.weights]
        self.v = [np.zeros_like(w) for w in self.weights]
        self.t = 0

    def __call__(self, x: np.ndarray, *masks: np.ndarray) -> np.ndarray:
        terms, grads = loss_and_gradient(self.arch, self.weights, x, list(masks) or None,
                                         **self.options)  # fmt: skip
        if grads is None or not np.isfinite(terms).all():
            return terms
        b1, b2 = ADAM_BETAS
        self.t += 1
        a_t = self.learning_rate * np.sqrt(1.0 - b2**self.t) / (1.0 - b1**self.t)
        for w, m, v, g in zip(self.weights, self.m, self.v, grads, strict=True):
            m *= b1
            m += (1.0 - b1) * g
            v *= b2
            v += (1.0 - b2) * g * g
            w -= a_t * m / (np.sqrt(v) + ADAM_EPSILON)
        return terms

    def current_weights(self) -> list[np.ndarray]:
        """Copies of the weights now."""
        return [w.copy() for w in self.weights]
