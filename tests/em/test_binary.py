"""EM on binary (0/1) data, where components collapse to ``reg_covar`` along many features.

Squared Mahalanobis distances of such components from the data centre are huge, so the
sweep evaluates them about their own means (``bayesgmm.em.sweep``'s guard, by the numba
kernels for diag/spherical and BLAS whitening for full/tied) while the other components
go through the design product. Checked against scipy (term-by-term densities, explicit
weighted covariances) and against scikit-learn's fit from the same ``random_state``.
"""

import warnings

import numpy as np
import pytest
from sklearn.mixture import GaussianMixture as SklearnGM

from bayesgmm import GaussianMixture
from bayesgmm.em.gaussian import COVARIANCE_TYPES, compute_precision_cholesky
from bayesgmm.em.sweep import (
    WHITEN_ALL_FEATURES,
    Design,
    MixtureParams,
    em_sweep,
    linearise,
    log_prob_resp,
)
from tests.helpers import scipy_log_prob


def binary_data(seed, n, n_features, n_prototypes, flip, exact=0.5):
    """Copies of random 0/1 prototypes; half the rows (``1 - exact``) with bits flipped."""
    rng = np.random.default_rng(seed)
    prototypes = rng.integers(0, 2, (n_prototypes, n_features))
    labels = rng.integers(0, n_prototypes, n)
    flips = (rng.random((n, n_features)) < flip) & (rng.random(n) > exact)[:, None]
    return (prototypes[labels] ^ flips).astype(float), prototypes.astype(float)


def mixed_params(X, prototypes, covariance_type):
    """Two tight components on prototypes (guarded), one broad at the data mean and one
    moderately broad on the third prototype (both unguarded)."""
    d = X.shape[1]
    means = np.vstack([prototypes[0], prototypes[1], X.mean(axis=0), prototypes[2]])
    variances = np.array([1e-6, 2e-6, 0.25, 0.05])
    if covariance_type == "full":
        A = np.random.default_rng(1).normal(size=(4, d, d))
        corr = A @ A.transpose(0, 2, 1) / d + np.eye(d)
        cov = variances[:, None, None] * corr
    elif covariance_type == "tied":
        cov = 1e-5 * (np.eye(d) + 0.1)  # every component tight: the broad one sits at the centre
    elif covariance_type == "diag":
        cov = variances[:, None] * np.linspace(0.5, 1.5, d)
    else:
        cov = variances
    weights = np.array([0.3, 0.2, 0.3, 0.2])
    return MixtureParams(weights, means, cov, compute_precision_cholesky(cov, covariance_type))


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_sweep_with_guarded_and_unguarded_components_matches_scipy(covariance_type):
    """Guarded and unguarded components in one sweep, over several blocks in threads:
    log-likelihood, responsibilities and M-step statistics equal scipy's term-by-term
    values (the guarded covariances are ~1e-6: any cancellation would show at 1e-9)."""
    X, prototypes = binary_data(0, 9000, 8, 3, flip=0.1)
    params = mixed_params(X, prototypes, covariance_type)
    weight = np.random.default_rng(2).uniform(0.5, 2.0, len(X))
    design = Design(X, covariance_type, weight)
    guarded = linearise(design, params).guarded
    assert 0 < len(guarded) < 4  # both paths run in the same sweep
    assert len(design.slices) > 1
    log_lik, moments = em_sweep(design, params)
    ref_norm, ref_resp = scipy_log_prob(X, params, covariance_type)
    np.testing.assert_allclose(log_lik, weight @ ref_norm, rtol=1e-12)
    log_norm, resp = log_prob_resp(design, params)
    np.testing.assert_allclose(log_norm, ref_norm, rtol=1e-11)
    np.testing.assert_allclose(resp, ref_resp, atol=1e-11)
    r = ref_resp * weight[:, None]
    np.testing.assert_allclose(moments.resp_sum, r.sum(axis=0), rtol=1e-11)
    for k in range(4):
        np.testing.assert_allclose(moments.means[k], np.average(X, 0, r[:, k]), atol=1e-12)
        ref = np.cov(X.T, aweights=r[:, k], bias=True)
        got = moments.scatter[k] / moments.nk[k]
        if covariance_type in ("full", "tied"):
            np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-14)
        elif covariance_type == "diag":
            np.testing.assert_allclose(got, np.diag(ref), rtol=1e-9, atol=1e-14)
        else:
            np.testing.assert_allclose(got, np.trace(ref), rtol=1e-9, atol=1e-14)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_binary_fit_matches_sklearn(covariance_type):
    """Same ``random_state``, same fit as scikit-learn on 0/1 data where most components
    end at ``reg_covar`` (1e-6) along many features (the guard is exercised).

    Tolerance 1e-8: scikit-learn's diag/spherical form ``x**2 @ P - 2 x @ (mu P) + mu**2 @
    P`` rounds each log-density by up to ``eps * sum_d x_d**2 / var_d`` ~ 2e-16 * 32 / 1e-6
    ~ 7e-9 (its lower bound differs from ours by 4e-10 here, the parameters by 1e-12);
    ours is exact to rounding (scipy's densities at the fitted parameters agree to 1e-11).
    """
    X, _ = binary_data(0, 400, 32, 3, flip=0.2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # collapsed components are the point here
        ours = GaussianMixture(5, covariance_type=covariance_type, random_state=0).fit(X)
        theirs = SklearnGM(5, covariance_type=covariance_type, random_state=0).fit(X)
    params = MixtureParams(ours.weights_, ours.means_, ours.covariances_, ours.precisions_cholesky_)
    if covariance_type != "tied":  # tied: one shared covariance, not pinned at reg_covar
        assert len(linearise(Design(X, covariance_type), params).guarded) >= 2
    assert ours.n_iter_ == theirs.n_iter_ > 1
    assert ours.converged_ == theirs.converged_
    assert abs(ours.lower_bound_ - theirs.lower_bound_) < 1e-8
    np.testing.assert_allclose(ours.weights_, theirs.weights_, atol=1e-8)
    np.testing.assert_allclose(ours.means_, theirs.means_, atol=1e-8)
    np.testing.assert_allclose(ours.covariances_, theirs.covariances_, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(
        ours.score_samples(X), scipy_log_prob(X, params, covariance_type)[0], rtol=1e-11
    )


@pytest.mark.parametrize("covariance_type", ["full", "tied"])
def test_wide_full_tied_whiten_every_component(covariance_type):
    """Above WHITEN_ALL_FEATURES features full/tied components are all evaluated about
    their own means (no quadratic features): the sweep still equals scipy's densities and
    weighted covariances, and the fit equals scikit-learn's."""
    n_features = WHITEN_ALL_FEATURES + 2
    X, _ = binary_data(3, 300, n_features, 2, flip=0.3)
    rng = np.random.default_rng(4)
    means = np.vstack([X[:150].mean(0), X[150:].mean(0)])
    A = rng.normal(size=(n_features, n_features))
    base = A @ A.T / n_features + 0.5 * np.eye(n_features)
    cov = np.stack([base, 1.01 * base]) if covariance_type == "full" else base
    prec_chol = compute_precision_cholesky(cov, covariance_type)
    params = MixtureParams(np.array([0.4, 0.6]), means, cov, prec_chol)
    design = Design(X, covariance_type)
    assert len(linearise(design, params).guarded) == 2  # mahalanobis alone would not guard
    log_lik, moments = em_sweep(design, params)
    ref_norm, ref_resp = scipy_log_prob(X, params, covariance_type)
    assert ref_resp.sum(axis=0).min() > 50  # both components own data
    np.testing.assert_allclose(log_lik, ref_norm.sum(), rtol=1e-12)
    np.testing.assert_allclose(log_prob_resp(design, params)[1], ref_resp, atol=1e-11)
    for k in range(2):
        ref = np.cov(X.T, aweights=ref_resp[:, k], bias=True)
        np.testing.assert_allclose(moments.scatter[k] / moments.nk[k], ref, rtol=1e-9, atol=1e-14)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kwargs = dict(covariance_type=covariance_type, random_state=0, max_iter=5)
        ours = GaussianMixture(2, **kwargs).fit(X)
        theirs = SklearnGM(2, **kwargs).fit(X)
    assert ours.n_iter_ == theirs.n_iter_
    np.testing.assert_allclose(ours.means_, theirs.means_, atol=1e-8)
    np.testing.assert_allclose(ours.covariances_, theirs.covariances_, rtol=1e-8, atol=1e-12)
