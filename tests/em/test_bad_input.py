"""Bad inputs of GaussianMixture (issue 13's corpus): each gives the right answer, or an
error naming the parameter and the fix."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import logsumexp, softmax

from bayesgmm import GaussianMixture


@pytest.fixture(scope="module")
def X():
    X = np.random.default_rng(0).normal(size=(200, 2))
    X[1::2] += 6
    return X


def _fixed_mixture(weights, means, precisions, covariance_type):
    """A GaussianMixture holding exactly the given parameters (no EM iteration)."""
    X = np.random.default_rng(1).normal(size=(50, len(means[0])))
    return GaussianMixture(
        len(weights),
        covariance_type=covariance_type,
        max_iter=0,
        weights_init=weights,
        means_init=means,
        precisions_init=precisions,
        reg_covar=0.0,
    ).fit(X)


# ---------------------------------------------------------------- (9) far points
@pytest.mark.parametrize("t", [1e8, 1e100, 1e154, 1e160, 1e200, 1e300])
def test_far_point_responsibilities_equal_precision_closed_form(t):
    """Equal precision along the direction of x: the quadratic terms cancel exactly and
    the responsibilities are softmax(log w_k + log det P_k / 2 - P_k,yy mu_ky**2 / 2),
    whatever the distance t (a scaled closed form)."""
    weights = np.array([0.3, 0.7])
    means = np.array([[0.0, 0.0], [0.0, 1.0]])
    precisions = np.array([np.diag([1.0, 1.0]), np.diag([1.0, 4.0])])
    gm = _fixed_mixture(weights, means, precisions, "full")
    log_det = 0.5 * np.log([1.0, 4.0])
    expected = softmax(np.log(weights) + log_det - 0.5 * np.array([0.0, 4.0]))
    proba = gm.predict_proba([[t, 0.0], [-t, 0.0]])
    np.testing.assert_allclose(proba, [expected, expected], rtol=1e-12)
    assert gm.predict([[t, 0.0]]).tolist() == [int(np.argmax(expected))]
    # log p(x) = -t**2 / 2 + log sum_k w_k sqrt(det P_k) exp(...) - log 2 pi, or -inf
    # where it is below -1.8e308
    reference = -0.5 * t * t + logsumexp(
        np.log(weights) + log_det - 0.5 * np.array([0.0, 4.0])
    ) - np.log(2 * np.pi)
    score = gm.score_samples([[t, 0.0]])[0]
    if np.isfinite(reference):
        np.testing.assert_allclose(score, reference, rtol=1e-12)
    else:
        assert score == -np.inf


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
@pytest.mark.parametrize("t", [1e154, 1e160, 1e200, 1e300])
def test_far_point_goes_to_the_widest_component(X, covariance_type, t):
    """Far away, the component with the largest variance along the direction of x takes
    all the responsibility (for tied covariances the linear term decides: the component
    whose mean lies towards x); no NaN, the label of that component."""
    gm = GaussianMixture(2, covariance_type=covariance_type, random_state=0).fit(X)
    points = np.array([[t, 0.0], [0.0, -t], [t, t], [-t, t / 2]])
    proba = gm.predict_proba(points)
    assert np.isfinite(proba).all()
    cov = gm.covariances_
    expected = []
    for x in points:
        u = x / np.abs(x).max()
        if covariance_type == "tied":
            # same quadratic term: the larger u' P mu_k wins
            expected.append(int(np.argmax(gm.means_ @ gm.precisions_ @ u)))
            continue
        full = {
            "full": cov,
            "diag": np.stack([np.diag(c) for c in cov]) if cov.ndim == 2 else None,
            "spherical": np.stack([c * np.eye(2) for c in np.atleast_1d(cov)]),
        }[covariance_type]
        # the smallest u' Sigma_k^-1 u
        expected.append(int(np.argmin([u @ np.linalg.solve(c, u) for c in full])))
    np.testing.assert_array_equal(proba.argmax(axis=1), expected)
    np.testing.assert_array_equal(proba.max(axis=1), 1.0)
    np.testing.assert_array_equal(gm.predict(points), expected)


def test_far_point_in_a_batch_leaves_the_other_rows_unchanged(X):
    """A far row in the batch (which moves the data centre by 1e199) changes nothing for
    the other rows."""
    gm = GaussianMixture(2, random_state=0).fit(X)
    near = X[:7]
    mixed = np.vstack([near[:3], [[1e200, 0.0]], near[3:]])
    proba = gm.predict_proba(mixed)
    np.testing.assert_allclose(np.delete(proba, 3, axis=0), gm.predict_proba(near), atol=1e-12)
    np.testing.assert_allclose(
        np.delete(gm.score_samples(mixed), 3), gm.score_samples(near), rtol=1e-12
    )
    assert proba[3].tolist() == [1.0, 0.0] or proba[3].tolist() == [0.0, 1.0]
