"""The log expected likelihood kernel against numerical integration, and the compiled
loss gradient against finite differences of the NumPy loss."""

import numpy as np
import pytest
from scipy import integrate
from scipy.special import softmax
from scipy.stats import norm

from bayesgmm.embeddings.kernel import (
    hinge_loss,
    log_expected_likelihood,
    max_cosine_similarity,
)
from bayesgmm.embeddings.sgd import (
    alias_table,
    log_energy,
    pack_records,
    pair_loss_and_gradient,
    record_layout,
    unpack_records,
)


def _mixture(rng, k, d, spherical):
    weights = rng.dirichlet(np.ones(k))
    means = rng.normal(0.0, 0.7, (k, d))
    variances = rng.uniform(0.2, 0.9, k if spherical else (k, d))
    return weights, means, variances


def _density_1d(x, weights, means, variances):
    return sum(
        w * norm.pdf(x, m[0], np.sqrt(v if np.ndim(v) == 0 else v[0]))
        for w, m, v in zip(weights, means, variances, strict=True)
    )


@pytest.mark.parametrize("ka, kb", [(1, 1), (2, 3)])
def test_kernel_equals_integral_1d(ka, kb):
    rng = np.random.default_rng(ka * 10 + kb)
    f = _mixture(rng, ka, 1, True)
    g = _mixture(rng, kb, 1, True)
    value, _ = integrate.quad(
        lambda x: _density_1d(x, *f) * _density_1d(x, *g), -np.inf, np.inf,
        epsabs=0.0, epsrel=1e-13, limit=200,
    )  # fmt: skip
    assert log_expected_likelihood(*f, *g) == pytest.approx(np.log(value), abs=1e-8)


@pytest.mark.parametrize("spherical", [True, False])
def test_kernel_equals_integral_2d(spherical):
    rng = np.random.default_rng(7 + spherical)
    f = _mixture(rng, 2, 2, spherical)
    g = _mixture(rng, 2, 2, spherical)

    def density(x, y, weights, means, variances):
        var = np.broadcast_to(np.asarray(variances).reshape(len(weights), -1), (len(weights), 2))
        total = 0.0
        for w, (mx, my), (vx, vy) in zip(weights, means, var, strict=True):
            total += w * np.exp(-0.5 * ((x - mx) ** 2 / vx + (y - my) ** 2 / vy)) / (
                2 * np.pi * np.sqrt(vx * vy)
            )
        return total

    value, _ = integrate.dblquad(
        lambda y, x: density(x, y, *f) * density(x, y, *g), -8, 8, -8, 8,
        epsabs=1e-14, epsrel=1e-11,
    )  # fmt: skip
    assert log_expected_likelihood(*f, *g) == pytest.approx(np.log(value), abs=1e-8)


@pytest.mark.parametrize("spherical", [True, False])
def test_compiled_energy_equals_numpy_kernel(spherical):
    rng = np.random.default_rng(3)
    k, d = 3, 5
    logits_a, logits_b = rng.normal(size=k), rng.normal(size=k)
    (_, ma, va), (_, mb, vb) = _mixture(rng, k, d, spherical), _mixture(rng, k, d, spherical)
    shape = (k, 1) if spherical else (k, d)
    value = log_energy((logits_a, ma, va.reshape(shape)), (logits_b, mb, vb.reshape(shape)))
    expected = log_expected_likelihood(softmax(logits_a), ma, va, softmax(logits_b), mb, vb)
    assert value == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("spherical", [True, False])
def test_loss_gradient_equals_finite_differences(spherical):
    rng = np.random.default_rng(11 + spherical)
    k, d = 2, 3
    shape = (k, 1) if spherical else (k, d)
    triple = [
        (rng.normal(size=k), rng.normal(0.0, 0.5, (k, d)), rng.uniform(0.3, 0.8, shape))
        for _ in range(3)
    ]
    # make the hinge active: the negative context near the word, the context far
    triple[2] = (triple[2][0], triple[0][1] + 0.05, triple[2][2])
    triple[1] = (triple[1][0], triple[0][1] + 1.5, triple[1][2])

    def loss(params):
        as_mixture = [(softmax(lg), m, v[:, 0] if spherical else v) for lg, m, v in params]
        return hinge_loss(*as_mixture, margin=1.0)

    value, grads = pair_loss_and_gradient(*triple, margin=1.0)
    assert value == pytest.approx(loss(triple), abs=1e-12)
    assert value > 0
    h = 1e-6
    for t in range(3):
        for p in range(3):
            numeric = np.zeros_like(triple[t][p])
            for idx in np.ndindex(numeric.shape):
                plus = [list(x) for x in triple]
                minus = [list(x) for x in triple]
                plus[t][p] = plus[t][p].copy()
                minus[t][p] = minus[t][p].copy()
                plus[t][p][idx] += h
                minus[t][p][idx] -= h
                numeric[idx] = (loss(plus) - loss(minus)) / (2 * h)
            np.testing.assert_allclose(grads[t][p], numeric, rtol=1e-6, atol=1e-7)


def test_inactive_hinge_has_zero_loss_and_gradient():
    rng = np.random.default_rng(5)
    word = (np.zeros(2), rng.normal(size=(2, 3)), np.full((2, 1), 0.5))
    close = (np.zeros(2), word[1] + 0.01, np.full((2, 1), 0.5))
    far = (np.zeros(2), word[1] + 5.0, np.full((2, 1), 0.5))
    value, grads = pair_loss_and_gradient(word, close, far, margin=1.0)
    assert value == 0.0
    assert all(not np.any(g) for grad in grads for g in grad)


def test_max_cosine_similarity_is_the_best_pair():
    a = np.array([[1.0, 0.0], [0.0, 2.0]])
    b = np.array([[-1.0, 0.0], [1.0, 1.0]])
    # pairs: (a0,b0) -1, (a0,b1) 1/sqrt2, (a1,b0) 0, (a1,b1) 1/sqrt2
    assert max_cosine_similarity(a, b) == pytest.approx(1 / np.sqrt(2), abs=1e-15)


@pytest.mark.parametrize("n", [1, 7, 5000])
def test_alias_table_draws_the_given_distribution(n):
    # the negatives' sampler: the probability the table gives each outcome, summed over the
    # n columns (kept with prob[i], else passed to alias[i]), equals the normalised weight
    rng = np.random.default_rng(n)
    weights = rng.pareto(1.0, n) ** 0.75 + (np.arange(n) == 0)  # heavy-tailed, like word counts
    prob, alias = alias_table(weights)
    implied = prob.copy()
    np.add.at(implied, alias, 1.0 - prob)
    np.testing.assert_allclose(implied / n, weights / weights.sum(), rtol=1e-9, atol=1e-15)
    assert np.all((prob >= 0) & (prob <= 1)) and np.all((alias >= 0) & (alias < n))


@pytest.mark.parametrize(
    "weights", [np.zeros(0), np.zeros(3), np.array([1.0, -0.5]), np.array([1.0, np.nan])]
)
def test_alias_table_refuses_weights_that_are_no_distribution(weights):
    with pytest.raises(ValueError, match="non-negative numbers, not all zero"):
        alias_table(weights)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("spherical", [True, False])
def test_records_round_trip_and_start_on_cache_lines(dtype, spherical):
    # the training loop's per-word records: every value comes back exactly, each record
    # starts on a 64-byte line, the means' padding and the accumulators start at zero
    rng = np.random.default_rng(2)
    n, k, d = 9, 3, 50
    dv = 1 if spherical else d
    logits, means, variances = (
        rng.normal(size=shape).astype(dtype).astype(np.float64)
        for shape in ((n, k), (n, k, d), (n, k, dv))
    )
    layout = record_layout(k, d, dv, dtype)
    rec = pack_records(logits, means, variances, layout)
    assert rec.dtype == np.dtype(dtype) and rec.shape == (n, layout.row)
    assert rec.ctypes.data % 64 == 0 and rec.strides[0] % 64 == 0
    assert layout.d_pad * np.dtype(dtype).itemsize % 128 == 0 and layout.d_pad >= d
    padded = rec[:, : k * layout.d_pad].reshape(n, k, layout.d_pad)
    assert not padded[..., d:].any()
    assert not rec[:, k * (layout.d_pad + dv + 1) :].any()  # accumulators and padding
    for got, want in zip(unpack_records(rec, layout), (logits, means, variances), strict=True):
        assert got.dtype == np.float64
        np.testing.assert_array_equal(got, want)


def test_records_and_kernel_refuse_mismatched_shapes():
    layout = record_layout(2, 3, 1)
    with pytest.raises(ValueError, match="shapes"):
        pack_records(np.zeros((4, 2)), np.zeros((4, 2, 5)), np.ones((4, 2, 1)), layout)
    a = (np.zeros(2), np.zeros((2, 3)), np.ones((2, 1)))
    with pytest.raises(ValueError, match="dimension D"):
        log_energy(a, (np.zeros(2), np.zeros((2, 4)), np.ones((2, 1))))
    with pytest.raises(ValueError, match="dimension D"):
        pair_loss_and_gradient(a, a, (np.zeros(2), np.zeros((2, 3)), np.ones((2, 3))))
    with pytest.raises(ValueError, match="a mixture is"):
        log_energy(a, (np.zeros(3), np.zeros((2, 3)), np.ones((2, 1))))
