"""MAP-EM against independent computations: scipy.stats densities and numerical optimisation."""

import warnings

import numpy as np
import pytest
from scipy import optimize, stats
from scipy.special import logsumexp
from sklearn.exceptions import ConvergenceWarning

from bayesgmm import ConjugatePrior, GaussianMixture
from bayesgmm.datasets import make_mixture
from bayesgmm.em.gaussian import COVARIANCE_TYPES
from bayesgmm.em.priors import log_prior_density
from tests.helpers import dense_covariances


def scipy_log_prior(weights, means, cov, prior: dict, covariance_type):
    """The prior of bayesgmm.em.priors written out with scipy.stats."""
    k, d = means.shape
    alpha, kappa, mu0 = prior["weight_concentration"], prior["mean_precision"], prior["mean_prior"]
    nu, scale = prior["degrees_of_freedom"], np.asarray(prior["scale"])
    out = stats.dirichlet(np.full(k, alpha)).logpdf(weights)
    covs = dense_covariances(cov, covariance_type, k, d)
    for j in range(k):
        if covariance_type == "full":
            out += stats.invwishart(nu, scale).logpdf(covs[j])
        if covariance_type == "diag":
            out += stats.invgamma(nu / 2, scale=scale / 2).logpdf(cov[j]).sum()
        if covariance_type == "spherical":
            out += stats.invgamma(nu / 2, scale=scale / 2).logpdf(cov[j])
        out += stats.multivariate_normal(mu0, covs[j] / kappa).logpdf(means[j])
    if covariance_type == "tied":
        out += stats.invwishart(nu, scale).logpdf(cov)
    return out


def scipy_log_lik(X, weights, means, cov, covariance_type):
    k, d = means.shape
    covs = dense_covariances(cov, covariance_type, k, d)
    comp = [
        np.log(w) + stats.multivariate_normal(m, c).logpdf(X)
        for w, m, c in zip(weights, means, covs, strict=True)
    ]
    return logsumexp(np.column_stack(comp), axis=1).sum()


@pytest.fixture(scope="module")
def faithful_std(faithful):
    return (faithful - faithful.mean(0)) / faithful.std(0)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_log_prior_density_matches_scipy(faithful_std, covariance_type):
    prior = {"weight_concentration": 2.5, "mean_precision": 0.3, "degrees_of_freedom": 4.5}
    gm = GaussianMixture(3, covariance_type=covariance_type, prior=prior, random_state=0)
    gm.fit(faithful_std)
    resolved = gm._resolve_prior(faithful_std, None)
    ours = log_prior_density(gm._params(), resolved)
    ref = scipy_log_prior(gm.weights_, gm.means_, gm.covariances_, gm.prior_, covariance_type)
    np.testing.assert_allclose(ours, ref, rtol=1e-10)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_map_objective_is_monotone_and_is_the_log_posterior(faithful_std, covariance_type):
    gm = GaussianMixture(
        3,
        covariance_type=covariance_type,
        prior="default",
        reg_covar=0.0,
        tol=1e-12,
        max_iter=500,
        random_state=1,
    ).fit(faithful_std)
    trace = np.asarray(gm.lower_bounds_)
    assert np.all(np.diff(trace) >= -1e-12 * np.abs(trace[1:]))
    # one more iteration from the fitted point: the objective there is the log posterior / n
    again = GaussianMixture(
        3,
        covariance_type=covariance_type,
        prior="default",
        reg_covar=0.0,
        max_iter=1,
        weights_init=gm.weights_,
        means_init=gm.means_,
        precisions_init=gm.precisions_,
    )
    with pytest.warns(Warning):
        again.fit(faithful_std)
    log_post = scipy_log_lik(faithful_std, gm.weights_, gm.means_, gm.covariances_, covariance_type)
    log_post += scipy_log_prior(gm.weights_, gm.means_, gm.covariances_, gm.prior_, covariance_type)
    np.testing.assert_allclose(again.lower_bounds_[0] * len(faithful_std), log_post, rtol=1e-10)


def _unpack(theta, k, d):
    """Unconstrained vector -> (weights, means, full covariances) via softmax and log-Cholesky."""
    logits = np.concatenate([[0.0], theta[: k - 1]])
    weights = np.exp(logits - logsumexp(logits))
    means = theta[k - 1 : k - 1 + k * d].reshape(k, d)
    tri = theta[k - 1 + k * d :].reshape(k, -1)
    rows, cols = np.tril_indices(d)
    L = np.zeros((k, d, d))
    L[:, rows, cols] = tri
    diag = np.arange(d)
    L[:, diag, diag] = np.exp(L[:, diag, diag])
    return weights, means, L @ L.transpose(0, 2, 1)


def _pack(weights, means, cov):
    d = means.shape[1]
    L = np.linalg.cholesky(cov)
    diag = np.arange(d)
    L[:, diag, diag] = np.log(L[:, diag, diag])
    rows, cols = np.tril_indices(d)
    logw = np.log(weights)
    return np.concatenate([logw[1:] - logw[0], means.ravel(), L[:, rows, cols].ravel()])


def test_map_em_is_the_posterior_mode_found_by_numerical_optimisation(faithful_std):
    """BFGS on the scipy.stats log posterior, started at the MAP-EM answer, cannot improve it.

    The Jacobian of the (softmax, log-Cholesky) reparametrisation is *not* added: the
    mode of a density over (weights, means, Sigma) is reparametrisation-invariant as a
    point when we maximise the same function, which we do.
    """
    prior = ConjugatePrior(weight_concentration=3.0, mean_precision=0.5, degrees_of_freedom=5.0)
    gm = GaussianMixture(2, prior=prior, reg_covar=0.0, tol=1e-14, max_iter=2000, random_state=0)
    gm.fit(faithful_std)
    k, d = gm.means_.shape

    def negative_log_posterior(theta):
        w, m, c = _unpack(theta, k, d)
        return -(
            scipy_log_lik(faithful_std, w, m, c, "full")
            + scipy_log_prior(w, m, c, gm.prior_, "full")
        )

    start = _pack(gm.weights_, gm.means_, gm.covariances_)
    result = optimize.minimize(negative_log_posterior, start, method="BFGS", options={"gtol": 1e-8})
    assert negative_log_posterior(start) - result.fun < 1e-7
    w, m, c = _unpack(result.x, k, d)
    np.testing.assert_allclose(gm.weights_, w, atol=1e-5)
    np.testing.assert_allclose(gm.means_, m, atol=1e-5)
    np.testing.assert_allclose(gm.covariances_, c, atol=1e-5)


def test_single_component_is_the_closed_form_niw_posterior_mode():
    """K=1: one MAP-EM step lands on the textbook joint mode (Murphy 2007, section 9)."""
    rng = np.random.default_rng(0)
    X = rng.multivariate_normal([1.0, -2.0], [[2.0, 0.6], [0.6, 0.5]], size=40)
    mu0, kappa, nu, scale = np.array([0.0, 0.0]), 4.0, 6.0, np.array([[1.0, 0.2], [0.2, 3.0]])
    gm = GaussianMixture(
        1,
        reg_covar=0.0,
        tol=1e-14,
        prior=dict(mean_prior=mu0, mean_precision=kappa, degrees_of_freedom=nu, scale=scale),
    ).fit(X)
    n, xbar = len(X), X.mean(0)
    S = (X - xbar).T @ (X - xbar)
    kappa_n, nu_n = kappa + n, nu + n
    mu_n = (kappa * mu0 + n * xbar) / kappa_n
    scale_n = scale + S + kappa * n / kappa_n * np.outer(xbar - mu0, xbar - mu0)
    np.testing.assert_allclose(gm.means_[0], mu_n, rtol=1e-12)
    # joint mode of NIW(mu_n, kappa_n, nu_n, scale_n): Sigma = scale_n / (nu_n + D + 2)
    np.testing.assert_allclose(gm.covariances_[0], scale_n / (nu_n + 2 + 2), rtol=1e-12)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_vanishing_prior_reproduces_maximum_likelihood(covariance_type):
    """Replicating the data m times (sample weights) dilutes the prior: MAP - ML ~ 1/m.

    Each fit runs a fixed 400 iterations (tol=0) so that both are converged to rounding,
    far below the gaps measured.
    """
    X = make_mixture(300, 2, 2, separation=3.0, seed=4).X
    common = dict(covariance_type=covariance_type, reg_covar=0.0, tol=0.0, max_iter=400)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ml = GaussianMixture(2, random_state=0, **common).fit(X)
        start = dict(weights_init=ml.weights_, means_init=ml.means_, precisions_init=ml.precisions_)
        gaps = []
        for m in (1e2, 1e4, 1e6):
            gm = GaussianMixture(2, prior="default", **start, **common)
            gm.fit(X, sample_weight=np.full(len(X), m))
            gaps.append(
                max(
                    np.abs(gm.means_ - ml.means_).max(),
                    np.abs(gm.covariances_ - ml.covariances_).max(),
                )
            )
    assert gaps[2] < 1e-5
    # first order in 1/m (at m = 100 second-order terms still show, a few percent)
    assert 80 < gaps[0] / gaps[1] < 120
    assert gaps[1] / gaps[2] == pytest.approx(100, rel=0.01)


def test_strong_prior_moves_the_mode_to_the_prior():
    X = make_mixture(200, 2, 2, separation=3.0, seed=5).X
    target_mean, target_cov = np.array([10.0, -10.0]), np.array([[0.5, 0.1], [0.1, 0.2]])
    nu = 1e10  # nu * target_cov dwarfs the data scatter n_k |xbar - mu_0|^2 ~ 2e4
    gm = GaussianMixture(
        2,
        reg_covar=0.0,
        tol=1e-12,
        random_state=0,
        prior=dict(
            mean_prior=target_mean, mean_precision=1e9, degrees_of_freedom=nu, scale=nu * target_cov
        ),
    ).fit(X)
    np.testing.assert_allclose(gm.means_, np.broadcast_to(target_mean, (2, 2)), atol=1e-5)
    np.testing.assert_allclose(gm.covariances_, np.broadcast_to(target_cov, (2, 2, 2)), rtol=1e-3)


def test_dirichlet_prior_pulls_weights_towards_uniform():
    X = make_mixture(400, 2, 1, separation=4.0, seed=6).X
    ml = GaussianMixture(2, random_state=0, tol=1e-12).fit(X)
    strong = GaussianMixture(
        2, random_state=0, tol=1e-12, prior=dict(weight_concentration=1e4)
    ).fit(X)
    assert np.abs(strong.weights_ - 0.5).max() < 0.02 < np.abs(ml.weights_ - 0.5).max()


def test_map_prevents_collapse_where_ml_fails():
    """Four identical points: ML with reg_covar=0 raises, MAP-EM stays positive definite."""
    rng = np.random.default_rng(7)
    X = np.vstack([np.full((4, 2), 30.0), rng.normal(size=(100, 2))])
    init = dict(
        weights_init=[0.05, 0.95],
        means_init=[[30.0, 30.0], [0.0, 0.0]],
        precisions_init=[np.eye(2)] * 2,
    )
    with pytest.raises(ValueError, match=r"component 0 .*collapsed"):
        GaussianMixture(2, reg_covar=0.0, **init).fit(X)
    gm = GaussianMixture(2, reg_covar=0.0, prior="default", **init).fit(X)
    assert np.all(np.linalg.eigvalsh(gm.covariances_) > 0)
    assert np.isfinite(gm.lower_bound_)


@pytest.mark.parametrize(
    ("prior", "match"),
    [
        (dict(weight_concentration=0.5), "weight_concentration must be >= 1"),
        (dict(mean_precision=0.0), "mean_precision"),
        (dict(degrees_of_freedom=0.5), "degrees_of_freedom must be > 1"),
        (dict(scale=np.eye(3)), "scale must have shape"),
        (dict(scale=-np.eye(2)), "positive definite"),
        (dict(mean_prior=[0.0]), "mean_prior must have shape"),
        (dict(shrinkage=1.0), "invalid prior fields"),
        ("strong", "prior must be one of"),
        (3.0, "prior must be None"),
    ],
)
def test_bad_prior_is_a_clear_error(faithful_std, prior, match):
    with pytest.raises(ValueError, match=match):
        GaussianMixture(2, prior=prior).fit(faithful_std)
