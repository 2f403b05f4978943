"""DAGMM's maths against independent references: the EM engine's M-step and log-density,
scikit-learn's GaussianMixture, finite differences, and the NumPy forward pass.

One PyTensor function is built for the whole module (graph pieces as outputs), plus one
for the gradient check, with PyTensor's Python linker (nothing compiled).
"""

from __future__ import annotations

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from numpy.testing import assert_allclose
from pytensor.compile.mode import Mode
from sklearn.mixture import GaussianMixture as SklearnGaussianMixture

from bayesgmm.dagmm import graph
from bayesgmm.dagmm.mixture import loss_terms as numpy_loss_terms
from bayesgmm.dagmm.mixture import mixture_from_memberships, sample_energy
from bayesgmm.dagmm.network import Architecture, forward, initial_weights
from bayesgmm.em.driver import m_step
from bayesgmm.em.sweep import Design, log_prob_resp, moments_from_resp

#: PyTensor's Python linker: these tests check the graph's maths, not a backend, and a
#: cold C compilation cost CI about 40 s
MODE = Mode(linker="py", optimizer="fast_compile")
ARCH = Architecture(7, (6,), 2, (5,), 3)
LAMBDAS = {"lambda_energy": 0.1, "lambda_cov": 0.005}


@pytest.fixture(scope="module")
def case():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(40, ARCH.n_features)) * [1, 2, 3, 1, 1, 0.5, 2] + 1.0
    weights = initial_weights(ARCH, rng)
    return X, weights, rng


@pytest.fixture(scope="module")
def pieces():
    """Compiled: (x, weights...) -> z, gamma, phi, mu, sigma, energy, loss terms; and
    (z, gamma) -> phi, mu, sigma, energy for given memberships."""
    x = pt.matrix("x")
    ws = [pt.matrix(f"w{i}") if i % 2 == 0 else pt.vector(f"w{i}") for i in range(12)]
    _, _, z = graph.compression(x, ARCH, ws)
    gamma = graph.memberships(z, ARCH, ws)
    phi, mu, sigma = graph.mixture_parameters(z, gamma)
    energy = graph.energy(z, phi, mu, sigma)
    terms = graph.loss_terms(x, ARCH, ws, **LAMBDAS)
    net = pytensor.function([x, *ws], [z, gamma, phi, mu, sigma, energy, *terms], mode=MODE)
    zz, gg = pt.matrix("z"), pt.matrix("gamma")
    p2 = graph.mixture_parameters(zz, gg, reg_covar=1e-3)
    mix = pytensor.function([zz, gg], [*p2, graph.energy(zz, *p2)], mode=MODE)
    return net, mix


def test_mixture_parameters_equal_the_em_m_step_on_fixed_memberships(pieces):
    _, mix = pieces
    rng = np.random.default_rng(0)
    z = rng.normal(size=(60, 3)) @ [[1, 0.3, 0], [0, 1, 0.5], [0, 0, 2]] + [5.0, -1, 0]
    gamma = rng.dirichlet(np.ones(4), size=60)
    phi, mu, sigma, _ = mix(z, gamma)
    em = m_step(moments_from_resp(Design(z, "full"), gamma), "full", 1e-3, None)
    assert_allclose(phi, em.weights, rtol=1e-12)
    assert_allclose(mu, em.means, rtol=1e-12, atol=1e-12)
    assert_allclose(sigma, em.covariances, rtol=1e-10)
    # and the textbook formulas, written out
    nk = gamma.sum(0)
    for k in range(4):
        d = z - z.T @ gamma[:, k] / nk[k]
        naive = (gamma[:, k, None] * d).T @ d / nk[k] + 1e-3 * np.eye(3)
        assert_allclose(sigma[k], naive, rtol=1e-10)
    assert_allclose(phi, nk / 60, rtol=1e-12)


def test_energy_equals_the_em_engine_log_density(pieces):
    _, mix = pieces
    rng = np.random.default_rng(1)
    z = np.vstack([rng.normal(size=(50, 3)), rng.normal(size=(30, 3)) * 0.3 + 4.0])
    gamma = rng.dirichlet(np.ones(3) * 0.5, size=80)
    phi, mu, sigma, energy = mix(z, gamma)
    em = m_step(moments_from_resp(Design(z, "full"), gamma), "full", 1e-3, None)
    log_density, _ = log_prob_resp(Design(z, "full"), em)  # the EM engine's E-step
    assert_allclose(-energy, log_density, rtol=1e-10, atol=1e-10)
    # scikit-learn, from the same parameters
    sk = SklearnGaussianMixture(3, covariance_type="full")
    sk.weights_, sk.means_, sk.covariances_ = phi, mu, sigma
    sk.precisions_cholesky_ = em.precisions_cholesky
    assert_allclose(-energy, sk.score_samples(z), rtol=1e-10)
    # far points stay finite (log-sum-exp, no exp underflow to log 0)
    _, _, _, far = mix(np.vstack([z, [[60.0, -60.0, 60.0]]]), np.vstack([gamma, [[1, 1, 1]]]) / 1)
    assert np.isfinite(far).all()


def test_graph_equals_the_numpy_forward_pass_and_loss(pieces, case):
    net, _ = pieces
    X, weights, _ = case
    z, gamma, _, _, _, energy, total, recon, mean_energy, penalty = net(X, *weights)
    ref = forward(ARCH, weights, X)
    assert_allclose(z, ref.z, rtol=1e-12, atol=1e-12)
    assert_allclose(gamma, ref.gamma, rtol=1e-12, atol=1e-14)
    params = mixture_from_memberships(ref.z, ref.gamma)
    assert_allclose(energy, sample_energy(ref.z, params), rtol=1e-10)
    terms = numpy_loss_terms(ARCH, weights, X, **LAMBDAS)
    assert_allclose(
        [total, recon, mean_energy, penalty],
        [terms[k] for k in ("total", "reconstruction", "energy", "covariance_penalty")],
        rtol=1e-10,
    )
    # the reconstruction features, by hand for one row
    x, r = X[0], ref.reconstruction[0]
    assert_allclose(z[0, 2], np.linalg.norm(x - r) / np.linalg.norm(x), rtol=1e-12)
    assert_allclose(z[0, 3], x @ r / np.linalg.norm(x) / np.linalg.norm(r), rtol=1e-12)


def test_loss_gradient_matches_finite_differences(case):
    X, weights, _ = case
    sizes = [w.size for w in weights]
    theta = pt.vector("theta")
    ws, start = [], 0
    for w in weights:
        ws.append(theta[start : start + w.size].reshape(w.shape))
        start += w.size
    mask = pt.matrix("mask")
    total = graph.loss_terms(pt.constant(X), ARCH, ws, **LAMBDAS, dropout_masks=[mask])[0]
    f = pytensor.function([theta, mask], [total, pytensor.grad(total, theta)], mode=MODE)
    flat = np.concatenate([w.ravel() for w in weights])
    flat[sizes[0] + sizes[1] :] += np.random.default_rng(5).normal(
        scale=0.1, size=flat.size - sizes[0] - sizes[1]
    )  # non-zero biases
    drop = (np.random.default_rng(6).random((len(X), 5)) < 0.5) / 0.5
    _, grad = f(flat, drop)
    rng = np.random.default_rng(7)
    for _ in range(5):
        direction = rng.normal(size=flat.size)
        h = 1e-5
        fd = (f(flat + h * direction, drop)[0] - f(flat - h * direction, drop)[0]) / (2 * h)
        assert_allclose(grad @ direction, fd, rtol=1e-6, atol=1e-8)
    # single coordinates of the first and last layers too
    for i in (0, flat.size - 1):
        e = np.zeros(flat.size)
        e[i] = 1e-6
        fd = (f(flat + e, drop)[0] - f(flat - e, drop)[0]) / 2e-6
        assert_allclose(grad[i], fd, rtol=1e-5, atol=1e-8)


def test_reconstruction_features_have_finite_gradients_at_a_zero_reconstruction():
    """A ReLU decoder whose units are all off for a row outputs x' = 0 exactly; the
    gradient of the features must stay finite there (a NaN would end training)."""
    x, x_hat = pt.dmatrix("x"), pt.dmatrix("x_hat")
    feats = graph.reconstruction_features(x, x_hat)
    grad = pytensor.grad(feats.sum(), x_hat)
    f = pytensor.function([x, x_hat], [feats, grad], mode=Mode(linker="py", optimizer=None))
    X = np.array([[1.0, 2.0, 2.0], [0.5, -1.0, 0.0]])
    R = np.array([[0.0, 0.0, 0.0], [0.5, -1.0, 0.0]])  # zero x', and x' = x (distance 0)
    values, g = f(X, R)
    assert np.isfinite(g).all(), g
    # the values themselves: distance 1 and cosine 0 for x' = 0; distance 0, cosine 1 for x' = x
    assert_allclose(values, [[1.0, 0.0], [0.0, 1.0]], atol=1e-12)
