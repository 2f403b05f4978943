"""DAGMM's NumPy training step against independent references: the EM engine's objective
(:func:`bayesgmm.dagmm.mixture.loss_terms`), finite differences, and PyTensor's automatic
gradient with PyMC's Adam (the compiled step, here with PyTensor's Python linker: no C
compilation)."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose
from pytensor.compile.mode import Mode

from bayesgmm.dagmm.backprop import NumpyTrainStep, loss_and_gradient
from bayesgmm.dagmm.mixture import loss_terms as numpy_loss_terms
from bayesgmm.dagmm.network import Architecture, initial_weights
from bayesgmm.dagmm.training import LOSS_TERMS, compile_train_step

LAMBDAS = {"lambda_energy": 0.1, "lambda_cov": 0.005}


def _case(activation: str, seed: int = 3, n: int = 40):
    arch = Architecture(5, (4,), 2, (3,), 2, activation=activation)
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, arch.n_features)) * [1, 2, 3, 1, 0.5] + 1.0
    weights = initial_weights(arch, rng)
    weights = [w + rng.normal(0.0, 0.1, w.shape) for w in weights]  # biases off zero
    masks = [(rng.random((n, w)) < 0.8) / 0.8 for w in arch.estimation_widths]
    return arch, X, weights, masks


@pytest.mark.parametrize("activation", ["tanh", "relu", "sigmoid"])
@pytest.mark.parametrize("reg_covar", [0.0, 1e-3])
def test_terms_equal_the_em_engine_objective(activation, reg_covar):
    arch, X, weights, _ = _case(activation)
    terms, grads = loss_and_gradient(arch, weights, X, reg_covar=reg_covar, **LAMBDAS)
    expected = numpy_loss_terms(arch, weights, X, reg_covar=reg_covar, **LAMBDAS)
    assert_allclose(terms, [expected[k] for k in LOSS_TERMS], rtol=1e-11)
    assert [g.shape for g in grads] == [w.shape for w in weights]


@pytest.mark.parametrize("activation", ["tanh", "sigmoid"])
@pytest.mark.parametrize("reg_covar", [0.0, 1e-3])
def test_gradient_equals_finite_differences(activation, reg_covar):
    # with dropout masks; the objective without masks is the EM engine's (test above)
    arch, X, weights, masks = _case(activation)
    options = dict(reg_covar=reg_covar, **LAMBDAS)
    _, grads = loss_and_gradient(arch, weights, X, masks, **options)
    h = 1e-6
    for w, g in zip(weights, grads, strict=True):
        numeric = np.zeros_like(w)
        for idx in np.ndindex(w.shape):
            old = w[idx]
            w[idx] = old + h
            plus = loss_and_gradient(arch, weights, X, masks, **options)[0][0]
            w[idx] = old - h
            minus = loss_and_gradient(arch, weights, X, masks, **options)[0][0]
            w[idx] = old
            numeric[idx] = (plus - minus) / (2 * h)
        assert_allclose(g, numeric, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_numpy_step_takes_the_compiled_steps_path(activation):
    # three Adam steps from the same weights on the same batches and dropout masks: the
    # same loss terms and weights as PyTensor's gradient with PyMC's Adam
    arch, X, weights, masks = _case(activation)
    options = dict(lambda_energy=0.1, lambda_cov=0.005, reg_covar=1e-6, learning_rate=1e-3)
    ours = NumpyTrainStep(arch, weights, **options)
    compiled, shared = compile_train_step(
        arch, weights, mode=Mode(linker="py", optimizer="fast_compile"), **options
    )
    rows = [np.arange(0, 20), np.arange(20, 40), np.arange(0, 40, 2)]
    for r in rows:
        batch_masks = [m[r] for m in masks]
        expected = np.array(compiled(X[r], *batch_masks))
        assert_allclose(ours(X[r], *batch_masks), expected, rtol=1e-10)
    for w, s in zip(ours.current_weights(), shared, strict=True):
        assert_allclose(w, s.get_value(), rtol=1e-9, atol=1e-12)


def test_singular_covariance_gives_nan_terms_and_no_step():
    # every row the same: the batch covariance of z is singular (no reg_covar), as the
    # graph's Cholesky with on_error="nan"; the step leaves the weights alone
    arch, X, weights, _ = _case("tanh")
    X = np.repeat(X[:1], 10, axis=0)
    terms, grads = loss_and_gradient(arch, weights, X, **LAMBDAS)
    assert np.isnan(terms).all() and grads is None
    step = NumpyTrainStep(arch, weights, reg_covar=0.0, learning_rate=1e-3, **LAMBDAS)
    assert np.isnan(step(X)).all()
    for a, b in zip(step.current_weights(), weights, strict=True):
        assert_allclose(a, b, rtol=0, atol=0)


def test_bad_shapes_are_refused():
    arch, X, weights, _ = _case("tanh")
    with pytest.raises(ValueError, match="X must be"):
        loss_and_gradient(arch, weights, X[:, :3], **LAMBDAS)
    with pytest.raises(ValueError, match="weights of shapes"):
        loss_and_gradient(arch, weights[:-1], X, **LAMBDAS)
