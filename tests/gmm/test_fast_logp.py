"""The hand-written numba log-density against PyMC: the built model and the plain Mixture."""

import numpy as np
import pymc as pm
import pytest

from bayesgmm.em.gaussian import COVARIANCE_TYPES
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
