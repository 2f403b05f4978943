"""The PyMC graph of the Bayesian GMM against independent references."""

import numpy as np
import pandas as pd
import pymc as pm
import pytensor
import pytensor.tensor as pt
import pytest
from pymc.initial_point import make_initial_point_fn
from scipy import stats
from scipy.special import betaln, gammaln, logsumexp
from xarray import DataTree

from bayesgmm.em.gaussian import COVARIANCE_TYPES
from bayesgmm.gmm.model import (
    OBS_DIM,
    OBS_VAR,
    build_gmm_model,
    default_gmm_priors,
    initial_values_from_em,
)
from tests.helpers import dense_covariances

K = 3


def make_data(n=40, d=3, seed=0):
    rng = np.random.default_rng(seed)
    centres = np.array([[-4.0, 0.0, 1.0], [0.0, 3.0, -1.0], [5.0, -2.0, 0.0]])[:, :d]
    z = rng.integers(0, K, size=n)
    return 10.0 + centres[z] + rng.normal(scale=[1.0, 0.5, 2.0][:d], size=(n, d))


@pytest.fixture(scope="module")
def X():
    return make_data()


@pytest.fixture(scope="module")
def models(X):
    return {ct: build_gmm_model(X, n_components=K, covariance_type=ct) for ct in COVARIANCE_TYPES}


def random_points(model, n_points, seed):
    """Random points in the unconstrained space around the model's initial point."""
    rng = np.random.default_rng(seed)
    ip = model.initial_point()
    return [
        {k: v + rng.normal(scale=0.7, size=v.shape) for k, v in ip.items()} for _ in range(n_points)
    ]


def params_at(model, point):
    return compile_point_fn(model, [model["weights"], model["means"], model["chol_cov"]])(point)


def compile_point_fn(model, outs):
    """Evaluate model variables (RVs/Deterministics) at a point of the value variables."""
    return model.compile_fn(
        model.replace_rvs_by_values(outs),
        inputs=model.value_vars,
        point_fn=True,
        on_unused_input="ignore",
    )


def scipy_loglik(X, w, mu, chol):
    comp = np.stack(
        [
            np.log(w[k]) + stats.multivariate_normal(mu[k], chol[k] @ chol[k].T).logpdf(X)
            for k in range(len(w))
        ],
        axis=-1,
    )
    return logsumexp(comp, axis=-1)


@pytest.fixture(scope="module")
def pm_mixture_logp():
    """Plain PyMC formulation: Mixture of MvNormal(mu_k, chol=L_k), compiled once."""
    w_t = pt.vector("w")
    mu_t = pt.matrix("mu")
    chol_t = pt.tensor3("chol")
    x_t = pt.matrix("x")
    comps = [pm.MvNormal.dist(mu_t[k], chol=chol_t[k]) for k in range(K)]
    mix = pm.Mixture.dist(w=w_t, comp_dists=comps)
    return pytensor.function([x_t, w_t, mu_t, chol_t], pm.logp(mix, x_t))


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_obs_logp_matches_references(X, models, pm_mixture_logp, covariance_type):
    model = models[covariance_type]
    obs_logp = model.compile_logp(vars=[model[OBS_VAR]], sum=False)
    for point in random_points(model, 3, seed=1):
        (ours,) = obs_logp(point)
        w, mu, chol = params_at(model, point)
        assert ours.shape == (X.shape[0],)
        ref_scipy = scipy_loglik(X, w, mu, chol)
        ref_pm = pm_mixture_logp(X, w, mu, chol)
        np.testing.assert_allclose(ours, ref_scipy, rtol=1e-10, atol=0)
        np.testing.assert_allclose(ours, ref_pm, rtol=1e-10, atol=0)
        np.testing.assert_allclose(ours.sum(), ref_scipy.sum(), rtol=1e-12)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_structure_of_covariances(models, covariance_type):
    model = models[covariance_type]
    (point,) = random_points(model, 1, seed=2)
    _, _, chol = params_at(model, point)
    assert np.allclose(np.triu(chol, 1), 0.0) and np.all(np.diagonal(chol, 0, 1, 2) > 0)
    if covariance_type == "tied":
        assert np.allclose(chol, chol[0])
    if covariance_type in ("diag", "spherical"):
        assert np.allclose(np.tril(chol, -1), 0.0)
    if covariance_type == "spherical":
        diag = np.diagonal(chol, 0, 1, 2)
        assert np.allclose(diag, diag[:, :1])


@pytest.mark.parametrize("covariance_type", ["full", "tied"])
def test_single_feature_and_single_component(covariance_type):
    X1 = make_data(n=25, d=1, seed=3)
    for k in (1, 2):
        model = build_gmm_model(X1, n_components=k, covariance_type=covariance_type)
        assert "chol_corr" not in model.named_vars
        assert ("means_ordered" in model.named_vars) == (k > 1)
        (point,) = random_points(model, 1, seed=4)
        (ours,) = model.compile_logp(vars=[model[OBS_VAR]], sum=False)(point)
        w, mu, chol = params_at(model, point)
        np.testing.assert_allclose(ours, scipy_loglik(X1, w, mu, chol), rtol=1e-10)


def test_k1_multivariate(X):
    model = build_gmm_model(X, n_components=1, covariance_type="full", order_feature=0)
    assert "means_ordered" not in model.named_vars  # ordering is a no-op for K = 1
    (point,) = random_points(model, 1, seed=5)
    (ours,) = model.compile_logp(vars=[model[OBS_VAR]], sum=False)(point)
    w, mu, chol = params_at(model, point)
    np.testing.assert_allclose(w, [1.0])
    np.testing.assert_allclose(ours, scipy_loglik(X, w, mu, chol), rtol=1e-10)


def test_coords_and_dims_dataframe(X):
    df = pd.DataFrame(X, columns=["a", "b", "c"])
    model = build_gmm_model(df, n_components=K, covariance_type="full", order_feature=1)
    assert list(model.coords["component"]) == [0, 1, 2]
    assert list(model.coords["feature"]) == ["a", "b", "c"]
    assert list(model.coords["feature_"]) == ["a", "b", "c"]
    assert list(model.coords["feature_free"]) == ["a", "c"]
    assert len(model.coords[OBS_DIM]) == X.shape[0]
    dims = model.named_vars_to_dims
    assert dims == {
        "weights": ("component",),
        "means_ordered": ("component",),
        "means_free": ("component", "feature_free"),
        "means": ("component", "feature"),
        "sigmas": ("component", "feature"),
        "chol_corr": ("component", "feature", "feature_"),
        "chol_cov": ("component", "feature", "feature_"),
        OBS_VAR: (OBS_DIM, "feature"),
    }
    # every named variable carries dims
    assert set(model.named_vars) == set(dims)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_default_feature_names_and_dims(models, covariance_type):
    model = models[covariance_type]
    assert list(model.coords["feature"]) == ["x0", "x1", "x2"]
    dims = model.named_vars_to_dims
    assert set(model.named_vars) == set(dims)
    assert dims["means"] == ("component", "feature")
    assert dims["chol_cov"] == ("component", "feature", "feature_")
    assert dims[OBS_VAR] == (OBS_DIM, "feature")
    expected_sigmas = {
        "full": ("component", "feature"),
        "tied": ("feature",),
        "diag": ("component", "feature"),
        "spherical": ("component",),
    }[covariance_type]
    assert dims["sigmas"] == expected_sigmas


def test_user_coords(X):
    model = build_gmm_model(
        X, n_components=K, coords={"component": ["lo", "mid", "hi"], "extra": [1, 2]}
    )
    assert list(model.coords["component"]) == ["lo", "mid", "hi"]
    assert list(model.coords["extra"]) == [1, 2]
    with pytest.raises(ValueError, match="component"):
        build_gmm_model(X, n_components=K, coords={"component": ["a", "b"]})


@pytest.mark.parametrize(("covariance_type", "order_feature"), [("full", 0), ("diag", 2)])
def test_prior_predictive_ordering(X, covariance_type, order_feature):
    model = build_gmm_model(
        X, n_components=K, covariance_type=covariance_type, order_feature=order_feature
    )
    with model:
        idata = pm.sample_prior_predictive(100, random_seed=7)
    means = idata.prior["means"].values  # (chain, draw, component, feature)
    assert np.all(np.diff(means[..., order_feature], axis=-1) > 0)
    # the other features are not ordered
    other = (order_feature + 1) % X.shape[1]
    assert np.any(np.diff(means[..., other], axis=-1) < 0)
    assert idata.prior_predictive[OBS_VAR].shape[2:] == X.shape
    assert idata.prior_predictive[OBS_VAR].dims[2:] == (OBS_DIM, "feature")
    assert idata.prior["chol_cov"].shape[2:] == (K, 3, 3)


def test_ordering_can_be_switched_off(X):
    model = build_gmm_model(X, n_components=K, order_feature=None)
    assert "means_ordered" not in model.named_vars
    assert model["means"] in model.free_RVs
    with model:
        idata = pm.sample_prior_predictive(100, random_seed=8)
    means = idata.prior["means"].values
    assert np.any(np.diff(means[..., 0], axis=-1) < 0)


def fake_posterior(model, draws=4, seed=9):
    with model:
        prior = pm.sample_prior_predictive(draws, random_seed=seed).prior
    free = [rv.name for rv in model.free_RVs]
    return DataTree.from_dict({"posterior": prior.to_dataset()[free]})


def test_pointwise_log_likelihood_and_posterior_predictive(X, models):
    model = models["full"]
    idata = fake_posterior(model)
    with model:
        pm.compute_log_likelihood(idata, progressbar=False)
        pp = pm.sample_posterior_predictive(idata, random_seed=10, progressbar=False)
    ll = idata.log_likelihood[OBS_VAR]
    assert ll.dims == ("chain", "draw", OBS_DIM)
    assert ll.shape == (1, 4, X.shape[0])
    # pointwise values agree with the model's logp at the same draw
    post = idata.posterior
    w = post["weights"].values[0, 1]
    mu = post["means_ordered"].values[0, 1], post["means_free"].values[0, 1]
    means = np.column_stack([mu[0], mu[1]])
    chol = post["sigmas"].values[0, 1][:, :, None] * post["chol_corr"].values[0, 1]
    np.testing.assert_allclose(ll.values[0, 1], scipy_loglik(X, w, means, chol), rtol=1e-10)
    assert pp.posterior_predictive[OBS_VAR].shape == (1, 4, *X.shape)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_generative_draws_match_mixture_moments(X, covariance_type):
    """x = mu[z] + L[z] eps draws have the mixture's mean and covariance."""
    model = build_gmm_model(X, n_components=K, covariance_type=covariance_type)
    rng = np.random.default_rng(11)
    (point,) = random_points(model, 1, seed=12)
    w, mu, chol = params_at(model, point)
    free = {rv.name: rv for rv in model.free_RVs}
    values = compile_point_fn(model, list(free.values()))(point)
    fixed = pm.do(model, dict(zip(free.values(), values, strict=True)))
    draws = pm.draw(fixed[OBS_VAR], draws=400, random_seed=rng).reshape(-1, X.shape[1])
    cov = chol @ chol.transpose(0, 2, 1)
    mean = w @ mu
    total = np.einsum("k,kij->ij", w, cov + np.einsum("ki,kj->kij", mu - mean, mu - mean))
    se = np.sqrt(np.diag(total) / draws.shape[0])
    assert np.all(np.abs(draws.mean(0) - mean) < 5 * se)
    np.testing.assert_allclose(np.cov(draws.T), total, rtol=0.1, atol=0.05 * np.diag(total).max())


def test_default_priors_and_override(X):
    pri = default_gmm_priors(X, "full")
    assert set(pri) == {"weights_alpha", "means_mu", "means_sigma", "sigma_scale", "lkj_eta"}
    np.testing.assert_allclose(pri["means_mu"], X.mean(0))
    np.testing.assert_allclose(pri["means_sigma"], 2.0 * X.std(0))
    np.testing.assert_allclose(pri["sigma_scale"], X.std(0))
    assert pri["lkj_eta"] == 2.0 and pri["weights_alpha"] == 1.0
    assert set(default_gmm_priors(X, "diag")) == set(pri) - {"lkj_eta"}

    X2 = X[:, :2]
    user = {
        "weights_alpha": [2.0, 3.0, 4.0],
        "means_mu": 1.0,
        "means_sigma": [5.0, 7.0],
        "sigma_scale": 0.5,
        "lkj_eta": 3.5,
    }
    model = build_gmm_model(X2, n_components=K, covariance_type="full", priors=user)
    (point,) = random_points(model, 1, seed=13)
    names = ("weights", "means_ordered", "means_free", "sigmas", "chol_corr")
    vals = compile_point_fn(model, [model[n] for n in names])(point)
    w, m_ord, m_free, sig, corr = vals
    terms = model.compile_logp(
        vars=[model[n] for n in names],
        jacobian=False,
        sum=False,
    )(point)
    np.testing.assert_allclose(terms[0], stats.dirichlet([2.0, 3.0, 4.0]).logpdf(w), rtol=1e-10)
    # ordered means: K! * prod Normal(1, 5) on the increasing region
    ref = stats.norm(1.0, 5.0).logpdf(m_ord).sum() + gammaln(K + 1)
    np.testing.assert_allclose(np.sum(terms[1]), ref, rtol=1e-10)
    np.testing.assert_allclose(terms[2], stats.norm(1.0, 7.0).logpdf(m_free), rtol=1e-10)
    np.testing.assert_allclose(terms[3], stats.halfnorm(scale=0.5).logpdf(sig), rtol=1e-10)
    # D = 2: LKJ(eta) density of r = L[1, 0] is (1 - r^2)^(eta - 1) / (2^(2 eta - 1) B(eta, eta))
    eta, r = 3.5, corr[:, 1, 0]
    ref_lkj = (eta - 1) * np.log1p(-(r**2)) - (2 * eta - 1) * np.log(2) - betaln(eta, eta)
    np.testing.assert_allclose(np.sum(terms[4]), ref_lkj.sum(), rtol=1e-10)


@pytest.mark.parametrize(
    ("priors", "match"),
    [
        ({"mean_sigma": 1.0}, "Unknown prior key"),
        ({"lkj_eta": 2.0}, "valid keys are"),  # no LKJ for "diag"
        ({"means_sigma": -1.0}, "means_sigma"),
        ({"weights_alpha": [1.0, 2.0]}, "weights_alpha"),
        ({"sigma_scale": np.ones((2, 3))}, "sigma_scale"),
    ],
)
def test_bad_priors_raise(X, priors, match):
    with pytest.raises(ValueError, match=match):
        build_gmm_model(X, n_components=K, covariance_type="diag", priors=priors)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"X": np.ones(10)}, "2-D"),
        ({"X": np.array([[1.0, np.inf], [0.0, 1.0], [2.0, 2.0]])}, "non-finite"),  # NaN: missing
        ({"X": np.array([["a", "b"], ["c", "d"]])}, "numeric"),
        ({"X": np.random.default_rng(0).normal(size=(2, 2))}, "n_obs"),
        ({"n_components": 0}, "n_components"),
        ({"n_components": 2.5}, "n_components"),
        ({"covariance_type": "banded"}, "covariance_type"),
        ({"order_feature": 3}, "order_feature"),
        ({"order_feature": -1}, "order_feature"),
        ({"X": np.column_stack([np.arange(5.0), np.ones(5)])}, "constant"),
    ],
)
def test_bad_inputs_raise(X, kwargs, match):
    args = {"X": X, "n_components": K} | kwargs
    with pytest.raises(ValueError, match=match):
        build_gmm_model(args.pop("X"), **args)


def em_estimate(X, covariance_type, seed=0):
    from sklearn.mixture import GaussianMixture

    gm = GaussianMixture(K, covariance_type=covariance_type, random_state=seed, n_init=1)
    gm.fit(X)
    # reverse the component order so the permutation in initial_values_from_em is exercised
    order = np.argsort(gm.means_[:, 0])[::-1]
    cov = gm.covariances_ if covariance_type == "tied" else gm.covariances_[order]
    return gm.weights_[order], gm.means_[order], cov


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_initial_values_from_em_round_trip(X, models, covariance_type):
    model = models[covariance_type]
    w, m, cov = em_estimate(X, covariance_type)
    iv = initial_values_from_em(model, w, m, cov, covariance_type)
    assert set(iv) == {rv.name for rv in model.free_RVs}
    ip = make_initial_point_fn(model=model, overrides=iv, jitter_rvs=set())(0)
    assert np.isfinite(model.compile_logp()(ip))
    w_ip, m_ip, chol_ip = params_at(model, ip)
    perm = np.argsort(m[:, 0])
    np.testing.assert_allclose(w_ip, w[perm] / w.sum(), rtol=1e-10)
    np.testing.assert_allclose(m_ip, m[perm], rtol=1e-10, atol=1e-10)
    full = dense_covariances(cov, covariance_type, K, X.shape[1])[perm]
    np.testing.assert_allclose(chol_ip @ chol_ip.transpose(0, 2, 1), full, rtol=1e-10, atol=1e-12)


def test_initial_values_from_em_unordered_and_converted(X):
    model = build_gmm_model(X, n_components=K, covariance_type="diag", order_feature=None)
    w, m, cov = em_estimate(X, "full")
    iv = initial_values_from_em(model, w, m, cov, "full")
    assert set(iv) == {"weights", "means", "sigmas"}
    np.testing.assert_allclose(iv["means"], m)  # no permutation without ordering
    np.testing.assert_allclose(iv["sigmas"] ** 2, np.diagonal(cov, 0, 1, 2), rtol=1e-12)
    with pytest.raises(ValueError, match="shape"):
        initial_values_from_em(model, w, m, cov[:, :2, :2], "full")
    with pytest.raises(ValueError, match="positive definite"):
        bad = build_gmm_model(X, n_components=K, covariance_type="full")
        initial_values_from_em(bad, w, m, -cov, "full")
