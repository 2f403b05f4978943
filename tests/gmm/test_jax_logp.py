"""The JAX log-density against the numba kernel (itself tested against PyMC), and the
``sampler="nutpie-jax"`` path end to end."""

import importlib.util

import numpy as np
import pymc as pm
import pytest

from bayesgmm import BayesGMM
from bayesgmm.em.gaussian import COVARIANCE_TYPES
from bayesgmm.gmm.jax_logp import CPU_CHUNK, compile_jax_gmm, jax_gmm
from bayesgmm.gmm.model import build_gmm_model
from bayesgmm.inference import sample_nuts
from tests.gmm.test_fast_logp import REFERENCE_MODE, K, as_point, make_data, random_vectors


def assert_same_density(jg, points, rtol=1e-10):
    for x in points:
        lp_ref, grad_ref = jg.fast.logp_dlogp(x)
        lp, grad = jg.logp_dlogp(x)
        assert lp == pytest.approx(lp_ref, rel=rtol)
        np.testing.assert_allclose(grad, grad_ref, rtol=rtol, atol=rtol * np.abs(grad_ref).max())


@pytest.mark.parametrize("order_feature", [0, 2, None])
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_density_and_gradient_equal_the_numba_kernel(covariance_type, order_feature):
    model = build_gmm_model(
        make_data(), n_components=K, covariance_type=covariance_type, order_feature=order_feature
    )
    # one pass over all rows, or chunks of 16 (the last one padded): both code paths
    jg = jax_gmm(model, chunk=16 if order_feature == 2 else None)
    assert jg is not None
    assert_same_density(jg, random_vectors(jg.fast, 3, seed=1))


@pytest.mark.parametrize("d", [1, 2])
def test_one_feature_one_component_and_tied(d):
    X = make_data(d=d)
    for k, ct in [(1, "full"), (2, "tied"), (K, "spherical")]:
        jg = jax_gmm(build_gmm_model(X, n_components=k, covariance_type=ct), chunk=7)
        assert_same_density(jg, random_vectors(jg.fast, 2, seed=2))


def test_equals_pymc_directly_and_with_far_points():
    """Against ``model.logp()`` itself, with outliers 1e4 away from every component (the
    numba kernel drops their negligible terms; JAX's log-sum-exp keeps them)."""
    X = make_data(n=300, d=2)
    X[::50] += np.array([1e4, -3e4])
    model = build_gmm_model(X, n_components=K)
    jg = jax_gmm(model)
    logp_ref = model.compile_logp(mode=REFERENCE_MODE)
    dlogp_ref = model.compile_dlogp(mode=REFERENCE_MODE)
    for x in random_vectors(jg.fast, 2, seed=8):
        lp, grad = jg.logp_dlogp(x)
        point = as_point(jg.fast, x)
        assert lp == pytest.approx(logp_ref(point), rel=1e-10)
        np.testing.assert_allclose(grad, dlogp_ref(point), rtol=1e-10, atol=1e-8)


def test_default_chunking_on_the_cpu_covers_every_row():
    """More rows than one CPU chunk: the padded last chunk adds nothing."""
    X = make_data(n=2 * CPU_CHUNK + 123, d=2)
    jg = jax_gmm(build_gmm_model(X, n_components=K))
    assert jg.chunk == CPU_CHUNK and jg.xs.shape == (3, 2, CPU_CHUNK)
    assert_same_density(jg, random_vectors(jg.fast, 2, seed=4))


@pytest.mark.parametrize("chunk", [0, -3, 2.5, True, "big"])
def test_bad_chunk_is_refused(chunk):
    with pytest.raises(ValueError, match="chunk must be a positive integer"):
        jax_gmm(build_gmm_model(make_data(), n_components=K), chunk=chunk)


def test_declines_an_extended_model():
    model = build_gmm_model(make_data(), n_components=K)
    with model:
        pm.Normal("extra", 0.0, 1.0)
    assert jax_gmm(model) is None
    assert compile_jax_gmm(model, {}) is None


def test_declines_missing_entries_and_measurement_errors():
    """The numba kernel covers them (rows after the complete ones); this density does not
    yet, so it must decline rather than drop those rows."""
    X = make_data()
    X[3, 1] = np.nan
    assert jax_gmm(build_gmm_model(X, n_components=K)) is None
    noisy = build_gmm_model(make_data(), n_components=K, noise_cov=np.full((50, 3), 0.1))
    assert jax_gmm(noisy) is None


def test_extended_model_samples_on_nutpies_jax_backend():
    """A model the JAX density declines is compiled from its PyTensor graph by nutpie's JAX
    backend, not by numba: ``sampler="nutpie-jax"`` keeps its promise of a JAX density."""
    X = make_data(n=60, d=1)
    model = build_gmm_model(X, n_components=2)
    with model:
        pm.Normal("extra", 0.0, 1.0)
    lo, hi = np.percentile(X[:, 0], [25, 75])
    point = {
        "weights": np.array([0.5, 0.5]),
        "means_ordered": np.array([lo, hi]),
        "sigmas": np.full((2, 1), X.std()),
        "extra": np.array(0.0),
    }
    idata = sample_nuts(
        model, point, sampler="nutpie-jax", chains=2, draws=50, tune=50, seed=1, progressbar=False
    )
    assert "extra" in idata.posterior
    assert idata.posterior["extra"].shape == (2, 50)


def test_faithful_posterior_on_jax_passes_the_crosscheck(faithful):
    """The same model and check as the default sampler, on the JAX density: agree, and the
    posterior means within Monte Carlo error of the numba run's."""
    jax_fit = BayesGMM(2, sampler="nutpie-jax", random_state=1, progressbar=False).fit(faithful)
    assert jax_fit.crosscheck_.verdict == "agree"
    assert jax_fit.idata_.posterior["means"].shape == (4, 1000, 2, 2)
    numba_fit = BayesGMM(2, random_state=1, progressbar=False).fit(faithful)
    for name in ("weights", "means", "chol_cov"):
        a, b = jax_fit.idata_.posterior[name], numba_fit.idata_.posterior[name]
        gap = np.abs(a.mean(("chain", "draw")) - b.mean(("chain", "draw")))
        sd = np.sqrt(a.var(("chain", "draw")) + b.var(("chain", "draw")))
        # 4000 draws each, effective sizes in the thousands: 5 sd / sqrt(1000) of slack
        assert float((gap / np.maximum(sd, 1e-12)).max()) < 5 / np.sqrt(1000)


def test_missing_jax_is_a_clear_error(monkeypatch, faithful):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "jax" else real(name, *a)
    )
    with pytest.raises(ImportError, match=r"pip install 'bayesgmm\[jax\]'"):
        BayesGMM(2, sampler="nutpie-jax", progressbar=False).fit(faithful)
