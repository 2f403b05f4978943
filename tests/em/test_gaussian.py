"""EM maths against naive references (scipy densities, explicit weighted covariances)."""

import numpy as np
import pytest

from bayesgmm.em.driver import m_step
from bayesgmm.em.gaussian import (
    COVARIANCE_TYPES,
    CollapsedComponentError,
    compute_precision_cholesky,
    n_parameters,
    precision_cholesky_from_precisions,
    precision_feature_coefficients,
    precisions_from_cholesky,
    quadratic_features,
)
from bayesgmm.em.sweep import (
    GUARD_MAHALANOBIS_SQ,
    Design,
    MixtureParams,
    em_sweep,
    log_prob_resp,
    moments_from_resp,
)
from tests.helpers import dense_covariances, scipy_log_prob


def random_params(rng, n_components, n_features, covariance_type, scale=1.0):
    weights = rng.dirichlet(np.ones(n_components) * 3)
    means = rng.normal(scale=3 * scale, size=(n_components, n_features))
    if covariance_type == "full":
        A = rng.normal(size=(n_components, n_features, n_features))
        cov = scale**2 * (A @ A.transpose(0, 2, 1) / n_features + 0.3 * np.eye(n_features))
    elif covariance_type == "tied":
        A = rng.normal(size=(n_features, n_features))
        cov = scale**2 * (A @ A.T / n_features + 0.3 * np.eye(n_features))
    elif covariance_type == "diag":
        cov = scale**2 * rng.uniform(0.3, 2.0, size=(n_components, n_features))
    else:
        cov = scale**2 * rng.uniform(0.3, 2.0, size=n_components)
    return MixtureParams(weights, means, cov, compute_precision_cholesky(cov, covariance_type))


def sample_mixture(rng, params, covariance_type, n):
    covs = dense_covariances(params.covariances, covariance_type, *params.means.shape)
    labels = rng.choice(len(params.weights), size=n, p=params.weights)
    return np.stack([rng.multivariate_normal(params.means[k], covs[k]) for k in labels])


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_quadratic_features_give_mahalanobis_form(covariance_type):
    rng = np.random.default_rng(0)
    params = random_params(rng, 3, 4, covariance_type)
    X = rng.normal(size=(50, 4))
    precisions = precisions_from_cholesky(params.precisions_cholesky, covariance_type)
    dense = np.linalg.inv(
        dense_covariances(params.covariances, covariance_type, *params.means.shape)
    )
    if covariance_type in ("full", "tied"):
        stack = np.broadcast_to(precisions, (3, 4, 4))
        np.testing.assert_allclose(stack, dense, rtol=1e-10)
    else:
        stack = precisions
        np.testing.assert_allclose(1.0 / precisions, params.covariances, rtol=1e-12)
    coef = precision_feature_coefficients(stack, covariance_type)
    got = quadratic_features(X, covariance_type) @ coef
    expected = np.einsum("nd,kde,ne->nk", X, dense, X)
    np.testing.assert_allclose(got, expected, rtol=1e-12)


@pytest.mark.parametrize("covariance_type", ["full", "tied"])
def test_precision_cholesky_is_upper_factor_of_inverse(covariance_type):
    rng = np.random.default_rng(1)
    params = random_params(rng, 2, 3, covariance_type)
    P = params.precisions_cholesky
    stack = P[None] if covariance_type == "tied" else P
    assert np.allclose(np.tril(stack, -1), 0.0)
    cov = dense_covariances(params.covariances, covariance_type, *params.means.shape)
    np.testing.assert_allclose(stack @ np.swapaxes(stack, 1, 2), np.linalg.inv(cov)[: len(stack)])
    back = precision_cholesky_from_precisions(
        precisions_from_cholesky(P, covariance_type), covariance_type
    )
    np.testing.assert_allclose(back, P, rtol=1e-12)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("offset", [0.0, 1e6])
def test_log_prob_resp_matches_scipy(covariance_type, offset):
    rng = np.random.default_rng(2)
    params = random_params(rng, 4, 3, covariance_type)
    params = params._replace(means=params.means + offset)
    X = rng.normal(scale=4, size=(3000, 3)) + offset
    log_norm, resp = log_prob_resp(Design(X, covariance_type), params)
    ref_norm, ref_resp = scipy_log_prob(X, params, covariance_type)
    np.testing.assert_allclose(log_norm, ref_norm, rtol=1e-11)
    np.testing.assert_allclose(resp, ref_resp, atol=1e-11)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_guarded_tight_far_components_stay_exact(covariance_type):
    """Tight clusters far from the data centre (Mahalanobis^2 >> guard) lose no precision."""
    rng = np.random.default_rng(3)
    params = random_params(rng, 2, 2, covariance_type, scale=1e-3)
    params = params._replace(means=np.array([[-500.0, 3.0], [500.0, -2.0]]))
    X = np.vstack([rng.normal(m, 1e-3, size=(500, 2)) for m in params.means])
    design = Design(X, covariance_type)
    mu = params.means - design.center
    assert (mu**2).sum(1).min() / 1e-6 > GUARD_MAHALANOBIS_SQ  # the guard is exercised
    log_norm, _ = log_prob_resp(design, params)
    ref_norm, _ = scipy_log_prob(X, params, covariance_type)
    np.testing.assert_allclose(log_norm, ref_norm, rtol=1e-9)
    # M-step statistics about each component's own mean: covariances exact too
    _, moments = em_sweep(design, params)
    resp = scipy_log_prob(X, params, covariance_type)[1]
    for k in range(2):
        ref = np.cov(X.T, aweights=resp[:, k], bias=True)
        got = moments.scatter[k] / moments.nk[k]
        if covariance_type in ("full", "tied"):
            np.testing.assert_allclose(got, ref, rtol=1e-7, atol=1e-14)
        elif covariance_type == "diag":
            np.testing.assert_allclose(got, np.diag(ref), rtol=1e-7)
        else:
            np.testing.assert_allclose(got, np.trace(ref), rtol=1e-7)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_sweep_moments_equal_weighted_sample_moments(covariance_type):
    rng = np.random.default_rng(4)
    params = random_params(rng, 3, 3, covariance_type)
    params = params._replace(means=params.means + 7.0)
    X = sample_mixture(rng, params, covariance_type, 20_000)  # several blocks, threads
    weight = rng.uniform(0, 2, size=len(X))
    design = Design(X, covariance_type, weight)
    assert len(design.slices) > 1
    log_lik, moments = em_sweep(design, params)
    ref_norm, ref_resp = scipy_log_prob(X, params, covariance_type)
    np.testing.assert_allclose(log_lik, weight @ ref_norm, rtol=1e-12)
    r = ref_resp * weight[:, None]
    np.testing.assert_allclose(moments.resp_sum, r.sum(0), rtol=1e-11)
    for k in range(3):
        np.testing.assert_allclose(moments.means[k], np.average(X, 0, r[:, k]), rtol=1e-11)
    new = m_step(moments, covariance_type, 0.0, None)
    for k in range(3):
        full = np.cov(X.T, aweights=r[:, k], bias=True)
        if covariance_type == "full":
            np.testing.assert_allclose(new.covariances[k], full, rtol=1e-9)
        elif covariance_type == "diag":
            np.testing.assert_allclose(new.covariances[k], np.diag(full), rtol=1e-9)
        elif covariance_type == "spherical":
            np.testing.assert_allclose(new.covariances[k], np.trace(full) / 3, rtol=1e-9)
    if covariance_type == "tied":
        pooled = (
            sum(r[:, k].sum() * np.cov(X.T, aweights=r[:, k], bias=True) for k in range(3))
            / r.sum()
        )
        np.testing.assert_allclose(new.covariances, pooled, rtol=1e-9)


def test_moments_from_resp_is_exact_for_huge_offsets():
    """Initial M-step (two passes) keeps covariances exact at offset 1e8, scale 1e-2."""
    rng = np.random.default_rng(5)
    X = rng.normal(scale=1e-2, size=(1000, 2)) + 1e8
    resp = np.zeros((1000, 2))
    resp[:500, 0] = resp[500:, 1] = 1.0
    moments = moments_from_resp(Design(X, "full"), resp)
    for k, rows in enumerate([slice(0, 500), slice(500, 1000)]):
        ref = np.cov(X[rows].T - 1e8, bias=True)
        np.testing.assert_allclose(moments.scatter[k] / moments.nk[k], ref, rtol=1e-6)


def test_collapsed_component_error_names_component():
    cov = np.stack([np.eye(2), np.zeros((2, 2))])
    with pytest.raises(
        CollapsedComponentError, match=r"component 1 .*holds 3 effective.*reg_covar"
    ):
        compute_precision_cholesky(cov, "full", nk=np.array([10.0, 3.0]))
    with pytest.raises(CollapsedComponentError, match="component 0"):
        compute_precision_cholesky(np.array([0.0, 1.0]), "spherical")


@pytest.mark.parametrize(
    ("covariance_type", "expected"),
    [
        ("full", 3 * 6 + 3 * 3 + 2),
        ("tied", 6 + 9 + 2),
        ("diag", 9 + 9 + 2),
        ("spherical", 3 + 9 + 2),
    ],
)
def test_n_parameters(covariance_type, expected):
    assert n_parameters(3, 3, covariance_type) == expected
