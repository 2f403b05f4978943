"""The hand-written numba log-density against PyMC: the built model and the plain Mixture."""

import numpy as np
import pymc as pm
import pytest

from bayesgmm.em.gaussian import COVARIANCE_TYPES
from bayesgmm.gmm import fast_logp
from bayesgmm.gmm.fast_logp import fast_gmm
from bayesgmm.gmm.model import build_gmm_model, default_gmm_priors

K = 3
#: PyTensor's Python-level linker: no C compilation of the reference graphs (the values
#: are the same; the compiled graphs are small, so evaluating them in Python is quick)
REFERENCE_MODE = "FAST_COMPILE"


def make_data(n=50, d=3, seed=0):
    rng = np.random.default_rng(seed)
    centres = np.array([[-4.0, 0.0, 1.0], [0.0, 3.0, -1.0], [5.0, -2.0, 0.0]])[:, :d]
    z = rng.integers(0, K, size=n)
    return 10.0 + centres[z] + rng.normal(scale=[1.0, 0.5, 2.0][:d], size=(n, d))


def random_vectors(fast, n_points, seed, scale=0.7):
    rng = np.random.default_rng(seed)
    return [rng.normal(scale=scale, size=fast.n_dim) for _ in range(n_points)]


def as_point(fast, x):
    """Flat unconstrained vector -> PyMC point of value variables."""
    return {
        name: arr
        for name, arr in fast.expand(x).items()
        if name in fast.value_names  # the unconstrained block
    }


@pytest.mark.parametrize("order_feature", [0, 2, None])
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_logp_and_gradient_equal_pymc_model(covariance_type, order_feature):
    """Same value as ``model.logp()`` (transforms and Jacobians included) and its gradient."""
    model = build_gmm_model(
        make_data(), n_components=K, covariance_type=covariance_type, order_feature=order_feature
    )
    fast = fast_gmm(model)
    assert fast is not None
    logp_ref = model.compile_logp(mode=REFERENCE_MODE)
    dlogp_ref = model.compile_dlogp(mode=REFERENCE_MODE)
    for x in random_vectors(fast, 4, seed=1):
        lp, grad = fast.logp_dlogp(x)
        point = as_point(fast, x)
        assert lp == pytest.approx(logp_ref(point), rel=1e-12, abs=1e-10)
        np.testing.assert_allclose(grad, dlogp_ref(point), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("d", [1, 2])
def test_single_feature_single_component_and_tied_two_features(d):
    X = make_data(d=d)
    for k, ct in [(1, "full"), (2, "tied"), (K, "full")]:
        model = build_gmm_model(X, n_components=k, covariance_type=ct)
        fast = fast_gmm(model)
        x = random_vectors(fast, 1, seed=2)[0]
        lp, grad = fast.logp_dlogp(x)
        assert lp == pytest.approx(
            model.compile_logp(mode=REFERENCE_MODE)(as_point(fast, x)), rel=1e-12
        )
        np.testing.assert_allclose(
            grad, model.compile_dlogp(mode=REFERENCE_MODE)(as_point(fast, x)), atol=1e-10
        )


def test_gradient_matches_central_differences():
    fast = fast_gmm(build_gmm_model(make_data(), n_components=K))
    x = random_vectors(fast, 1, seed=3)[0]
    _, grad = fast.logp_dlogp(x)
    h = 1e-5
    fd = np.array(
        [
            (fast.logp_dlogp(x + h * e)[0] - fast.logp_dlogp(x - h * e)[0]) / (2 * h)
            for e in np.eye(fast.n_dim)
        ]
    )
    np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-6)


def plain_mixture_logp(X, priors, k):
    """Plain PyMC formulation: Mixture of MvNormal with a per-component LKJCholeskyCov,
    on constrained values (no transforms)."""
    d = X.shape[1]
    with pm.Model() as plain:
        w = pm.Dirichlet("weights", a=np.full(k, priors["weights_alpha"]), default_transform=None)
        mu = pm.Normal("means", priors["means_mu"], priors["means_sigma"], shape=(k, d))
        chols = [
            pm.LKJCholeskyCov(
                f"chol{c}",
                n=d,
                eta=float(priors["lkj_eta"]),
                sd_dist=pm.HalfNormal.dist(priors["sigma_scale"], shape=d),
                compute_corr=False,
                default_transform=None,
            )
            for c in range(k)
        ]
        comps = [
            pm.MvNormal.dist(mu[c], chol=pm.math.expand_packed_triangular(d, chols[c]))
            for c in range(k)
        ]
        pm.Mixture("x", w=w, comp_dists=comps, observed=X)
    return plain.compile_logp(jacobian=False, mode=REFERENCE_MODE)


def test_density_equals_plain_pymc_mixture():
    """On the same constrained values, the fast density equals pm.Mixture's.

    The differences are accounted for exactly: the Jacobians of the unconstrained
    parametrisation (from PyMC: logp(jacobian=True) - logp(jacobian=False)); the ordering
    constraint (the ordered means' density is K! times the unordered one); and the change
    of variables (sigma_i, C_i) -> L_i = sigma_i C_i of each Cholesky row, whose inverse
    Jacobian is log C_ii - i log sigma_i (0-based row i), as in PyMC's LKJCholeskyCov.
    """
    d = 3
    X = make_data(d=d)
    model = build_gmm_model(X, n_components=K)
    fast = fast_gmm(model)
    with_jac = model.compile_logp(mode=REFERENCE_MODE)
    without_jac = model.compile_logp(jacobian=False, mode=REFERENCE_MODE)
    plain_logp = plain_mixture_logp(X, default_gmm_priors(X), K)
    rows, cols = np.tril_indices(d)
    for x in random_vectors(fast, 3, seed=4):
        values, point = fast.expand(x), as_point(fast, x)
        log_jac = with_jac(point) - without_jac(point)
        corr_diag = np.diagonal(values["chol_corr"], axis1=1, axis2=2)
        cov_change = np.sum(np.log(corr_diag) - np.arange(d) * np.log(values["sigmas"]))
        plain_point = {"weights": values["weights"], "means": values["means"]}
        for c in range(K):
            plain_point[f"chol{c}"] = values["chol_cov"][c][rows, cols]
        lp, _ = fast.logp_dlogp(x)
        expected = plain_logp(plain_point) + np.log(6.0) - cov_change
        assert lp - log_jac == pytest.approx(expected, rel=1e-12, abs=1e-10)


# --------------------------------------------------------------------------------------
# the blocked likelihood pass (fast_logp._likelihood) against a plain scalar reference
# --------------------------------------------------------------------------------------


def scalar_likelihood(xt, linv, b, base):
    """The pass written plainly, one observation at a time (as the kernel was before the
    blocked, vectorised pass): log-sum-exp and the gradient's sufficient statistics."""
    k, d = b.shape
    lp, resp_sum, z_sum, zz_sum = 0.0, np.zeros(k), np.zeros((k, d)), np.zeros((k, d, d))
    for x in xt.T:
        z = np.array([linv[c] @ x - b[c] for c in range(k)])
        comp = base - 0.5 * np.sum(z * z, axis=1)
        top = comp.max()
        terms = np.exp(comp - top)
        lp += top + np.log(terms.sum())
        rho = terms / terms.sum()
        resp_sum += rho
        z_sum += rho[:, None] * z
        zz_sum += np.tril(rho[:, None, None] * z[:, :, None] * z[:, None, :])
    return lp, resp_sum, z_sum, zz_sum


def random_pass_inputs(n, k, d, seed, spread=1.0):
    rng = np.random.default_rng(seed)
    linv = np.tril(rng.normal(scale=0.3, size=(k, d, d))) + np.eye(d)
    b = rng.normal(size=(k, d))
    base = rng.normal(size=k)
    xt = np.ascontiguousarray(rng.normal(scale=spread, size=(d, n)))
    return xt, linv, b, base


def blocked_likelihood(xt, linv, b, base, lo=0, hi=None):
    k, d = b.shape
    sums = np.zeros(k), np.zeros((k, d)), np.zeros((k, d, d))
    hi = xt.shape[1] if hi is None else hi
    lp = fast_logp._likelihood(xt, lo, hi, linv, b, base, *sums)
    return lp, *sums


def assert_pass_equal(got, expected, rtol=1e-10):
    lp, *sums = got
    lp_ref, *sums_ref = expected
    assert lp == pytest.approx(lp_ref, rel=rtol, abs=1e-300)
    for s, s_ref in zip(sums, sums_ref, strict=True):
        scale = max(np.max(np.abs(s_ref)), 1e-300)
        np.testing.assert_allclose(s, s_ref, rtol=rtol, atol=rtol * scale)


B = fast_logp._BLOCK


@pytest.mark.parametrize("n", [1, 2, B - 1, B, B + 1, 2 * B + 3])
@pytest.mark.parametrize(("k", "d"), [(1, 1), (1, 3), (3, 1), (3, 2), (4, 5)])
def test_blocked_pass_equals_scalar_reference(n, k, d):
    """N around the block size, a single component, a single feature."""
    inputs = random_pass_inputs(n, k, d, seed=n + 10 * k + 100 * d)
    assert_pass_equal(blocked_likelihood(*inputs), scalar_likelihood(*inputs))


def test_blocked_pass_on_a_sub_range():
    """lo:hi not on block boundaries (the threaded pass's chunks)."""
    xt, linv, b, base = random_pass_inputs(3 * B + 7, 3, 2, seed=5)
    lo, hi = B // 2 + 1, 2 * B + 5
    got = blocked_likelihood(xt, linv, b, base, lo, hi)
    assert_pass_equal(got, scalar_likelihood(np.ascontiguousarray(xt[:, lo:hi]), linv, b, base))


@pytest.mark.parametrize("spread", [30.0, 1e3, 1e6])
def test_blocked_pass_far_points(spread):
    """Terms far below the largest (dropped or underflowing) and huge z."""
    xt, linv, b, base = random_pass_inputs(B + 17, 3, 2, seed=6, spread=spread)
    xt[:, ::7] *= 10.0
    assert_pass_equal(blocked_likelihood(xt, linv, b, base), scalar_likelihood(xt, linv, b, base))


def test_exp_block_accuracy():
    v = np.concatenate([np.linspace(-708.0, 0.0, 10_001), -np.logspace(-300, 2.8, 1000), [0.0]])
    out = v.copy()
    fast_logp._exp_block(out, v.size, np.empty(v.size))
    np.testing.assert_allclose(out, np.exp(v), rtol=4e-16, atol=0)
    assert out[-1] == 1.0


# --------------------------------------------------------------------------------------
# the whole log-density at the edges of the blocked pass, and the threaded pass
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("n", "k", "d"), [(1, 1, 1), (B - 1, 1, 2), (B + 1, 2, 1), (B + 1, 3, 3)])
def test_logp_equals_pymc_around_the_block_size(n, k, d):
    X = make_data(n=max(n, 50), d=d)  # priors from 50 points: one point has no spread
    priors = default_gmm_priors(X)
    model = build_gmm_model(X[:n], n_components=k, priors=priors)
    fast = fast_gmm(model)
    assert fast is not None
    logp_ref = model.compile_logp(mode=REFERENCE_MODE)
    dlogp_ref = model.compile_dlogp(mode=REFERENCE_MODE)
    for x in random_vectors(fast, 2, seed=7):
        lp, grad = fast.logp_dlogp(x)
        point = as_point(fast, x)
        assert lp == pytest.approx(logp_ref(point), rel=1e-10)
        np.testing.assert_allclose(grad, dlogp_ref(point), rtol=1e-10, atol=1e-10)


def test_logp_equals_pymc_with_far_points():
    X = make_data(n=300, d=2)
    X[::50] += np.array([1e4, -3e4])  # outliers far from every component
    model = build_gmm_model(X, n_components=K)
    fast = fast_gmm(model)
    x = random_vectors(fast, 1, seed=8)[0]
    lp, grad = fast.logp_dlogp(x)
    point = as_point(fast, x)
    assert lp == pytest.approx(model.compile_logp(mode=REFERENCE_MODE)(point), rel=1e-10)
    np.testing.assert_allclose(
        grad, model.compile_dlogp(mode=REFERENCE_MODE)(point), rtol=1e-10, atol=1e-8
    )


def test_threaded_pass_equals_serial_pass():
    """Above two chunks the threaded kernel splits the pass; the same value up to the order
    of the sums (and the serial kernel itself below that)."""
    n = 2 * fast_logp._THREAD_CHUNK + 5
    X = make_data(n=n, d=2)
    fast = fast_gmm(build_gmm_model(X, n_components=K))
    for x in random_vectors(fast, 2, seed=9):
        lp, grad = fast.logp_dlogp(x)
        grad_t = np.empty(fast.n_dim)
        lp_t = fast_logp.logp_grad_threads(x, grad_t, fast.buf)
        assert lp_t == pytest.approx(lp, rel=1e-13)
        np.testing.assert_allclose(grad_t, grad, rtol=1e-11, atol=1e-9)
    small = fast_gmm(build_gmm_model(make_data(n=100, d=2), n_components=K))
    x = random_vectors(small, 1, seed=10)[0]
    grad_t = np.empty(small.n_dim)
    lp_t = fast_logp.logp_grad_threads(x, grad_t, small.buf)
    lp, grad = small.logp_dlogp(x)
    assert lp_t == lp
    np.testing.assert_array_equal(grad_t, grad)


def test_threaded_callback_under_nutpie_with_several_chains():
    """nutpie calls the callback from every chain's thread at once: the threaded kernel
    must survive that (numba's omp/tbb layers) or be refused with a warning (workqueue)."""
    import warnings

    import nutpie

    from bayesgmm.gmm.fastnuts import compile_fast_gmm

    X = make_data(n=2 * fast_logp._THREAD_CHUNK + 5, d=2)
    model = build_gmm_model(X, n_components=2)
    fast = fast_gmm(model)
    values = fast.expand(np.zeros(fast.n_dim))
    init = {name: values[name] for name in fast.rv_names}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        compiled = compile_fast_gmm(model, init, threads=True)
    threaded = "threads" in str(compiled.compiled_logp_func)
    assert threaded or any("threading layer" in str(w.message) for w in caught)
    trace = nutpie.sample(compiled, draws=30, tune=30, chains=4, seed=1, progress_bar=False)
    assert np.all(np.isfinite(trace.posterior["means_ordered"].values))


def test_overflowing_component_adds_nothing():
    """A component so narrow that its z overflows to inf everywhere is dropped exactly
    (0 * inf must not turn the gradient into NaN)."""
    model = build_gmm_model(make_data(n=300, d=2), n_components=K)
    fast = fast_gmm(model)
    x = random_vectors(fast, 1, seed=11)[0]
    ends = np.cumsum([int(np.prod(s)) for s in fast.value_shapes])
    i = fast.value_names.index("sigmas_log__")
    x[ends[i] - 2 : ends[i]] = -700.0  # the last component: sigmas ~ 1e-304
    lp, grad = fast.logp_dlogp(x)
    assert np.isfinite(lp)
    assert np.all(np.isfinite(grad))
    assert lp == pytest.approx(
        model.compile_logp(mode=REFERENCE_MODE)(as_point(fast, x)), rel=1e-10
    )
