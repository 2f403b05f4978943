"""Bad inputs of GaussianMixture (issue 13's corpus): each gives the right answer, or an
error naming the parameter and the fix."""

from __future__ import annotations

import numpy as np
import pandas as pd
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
    reference = (
        -0.5 * t * t
        + logsumexp(np.log(weights) + log_det - 0.5 * np.array([0.0, 4.0]))
        - np.log(2 * np.pi)
    )
    score = gm.score_samples([[t, 0.0]])[0]
    if np.isfinite(reference):
        np.testing.assert_allclose(score, reference, rtol=1e-12)
    else:
        assert score == -np.inf


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
@pytest.mark.parametrize("t", [1e6, 1e8, 1e154, 1e160, 1e200, 1e300])
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


# --------------------------------------------------------------- (16) seeds
@pytest.mark.parametrize(
    ("seed", "error"),
    [("abc", TypeError), (2.5, TypeError), (-1, ValueError), (2**40, ValueError)],
)
def test_bad_random_state_is_named(X, seed, error):
    with pytest.raises(error, match=r"random_state must be None or an integer in \[0, 2\*\*32"):
        GaussianMixture(2, random_state=seed).fit(X)


def test_random_state_instance_is_accepted(X):
    gm = GaussianMixture(2, random_state=np.random.RandomState(0)).fit(X)
    assert gm.converged_


# ----------------------------------------------------- (19) warm start shape
def test_warm_start_on_other_features_uses_sklearn_wording(X):
    gm = GaussianMixture(2, warm_start=True, random_state=0).fit(X)
    with pytest.raises(
        ValueError,
        match=r"X has 3 features, but GaussianMixture is expecting 2 features as input\.",
    ):
        gm.fit(np.c_[X, X[:, :1]])


# ------------------------------------------------------ (22) argument types
def test_non_numeric_weights_init_is_named(X):
    with pytest.raises(TypeError, match=r"weights_init must be a numeric array of shape \(2,\)"):
        GaussianMixture(2, weights_init=["a", "b"]).fit(X)


def test_non_integer_verbose_is_named(X):
    with pytest.raises(ValueError, match="verbose must be an integer >= 0, got 'x'"):
        GaussianMixture(2, verbose="x").fit(X)


def test_score_sample_weight_of_wrong_length_is_named(X):
    gm = GaussianMixture(2, random_state=0).fit(X)
    with pytest.raises(ValueError, match=r"sample_weight must have shape \(200,\) to match X"):
        gm.score(X, sample_weight=np.ones(3))
    weights = np.arange(200.0)
    assert gm.score(X, sample_weight=weights) == pytest.approx(
        np.average(gm.score_samples(X), weights=weights)
    )


# ------------------------------------------------------- (17) data scale
def test_data_too_large_in_scale_names_x(X):
    with pytest.raises(ValueError, match=r"X is too large in scale: .*rescale X"):
        GaussianMixture(2, random_state=0).fit(X * 1e300)


# --------------------------------------------------------- (23) pandas NA
@pytest.mark.parametrize("dtype", ["Int64", "boolean", "Float64"])
def test_pandas_na_gets_the_nan_message(dtype):
    pd = pytest.importorskip("pandas")
    values = [1, None, 0, 1] if dtype != "Float64" else [1.0, None, 0.5, 2.0]
    frame = pd.DataFrame({"a": pd.array(values, dtype=dtype), "b": [0.1, 0.2, 0.3, 0.4]})
    with pytest.raises(ValueError, match=r"X contains NaN .* first at \[1\]: drop or impute"):
        GaussianMixture(1, nan_policy="raise").fit(frame)
    # the default policy reads pd.NA as a missing value: the fit equals that of NaN
    values = frame.to_numpy(dtype=np.float64, na_value=np.nan)
    assert np.isnan(values[1, 0])
    np.testing.assert_array_equal(
        GaussianMixture(1).fit(frame).covariances_, GaussianMixture(1).fit(values).covariances_
    )


def test_pandas_nullable_columns_without_na_fit(X):
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"a": pd.array(X[:, 0], dtype="Float64"), "b": X[:, 1]})
    np.testing.assert_allclose(
        GaussianMixture(2, random_state=0).fit(frame).means_,
        GaussianMixture(2, random_state=0).fit(X).means_,
    )


# ------------------------------------------------ (18) ConjugatePrior fields
@pytest.mark.parametrize(
    ("fields", "error", "match"),
    [
        ({"mean_prior": [np.nan, 0.0]}, ValueError, r"mean_prior must be finite"),
        ({"scale": [[1.0, np.inf], [0.0, 1.0]]}, ValueError, r"scale must be finite"),
        ({"scale": "abc"}, TypeError, r"scale must be None or numeric"),
        ({"degrees_of_freedom": -1.0}, ValueError, r"degrees_of_freedom must be > 0"),
        ({"mean_precision": 0.0}, ValueError, r"mean_precision \(kappa\) must be > 0"),
        ({"weight_concentration": 0.5}, ValueError, r"weight_concentration must be >= 1"),
        ({"weight_concentration": "1"}, TypeError, r"weight_concentration must be a finite"),
    ],
)
def test_invalid_conjugate_prior_fields_are_named(fields, error, match):
    from bayesgmm import ConjugatePrior

    with pytest.raises(error, match=match):
        ConjugatePrior(**fields)


# ------------------------------------------- scikit-learn's messages included
SKLEARN_MESSAGES = [
    ({"weights_init": [0.2, 0.3, 0.5]}, r"The parameter 'weights' should have the shape of"),
    ({"weights_init": [1.5, -0.5]}, r"The parameter 'weights' should be in the range \[0, 1\]"),
    ({"weights_init": [0.2, 0.3]}, r"The parameter 'weights' should be normalized"),
    ({"means_init": np.zeros((3, 2))}, r"The parameter 'means' should have the shape of"),
    (
        {"precisions_init": np.ones((3, 2)), "covariance_type": "diag"},
        r"The parameter 'diag precision' should have the shape of",
    ),
    (
        {"precisions_init": np.zeros((2, 2, 2))},
        r"'full precision' should be symmetric, positive-definite",
    ),
    (
        {"precisions_init": -np.ones((2, 2)), "covariance_type": "diag"},
        r"'diag precision' should be positive",
    ),
]


@pytest.mark.parametrize(("params", "match"), SKLEARN_MESSAGES)
def test_bad_init_messages_include_sklearns(X, params, match):
    from sklearn.mixture import GaussianMixture as SklearnGM

    with pytest.raises(ValueError, match=match):
        SklearnGM(2, **params).fit(X)  # the pattern is scikit-learn's own
    with pytest.raises(ValueError, match=match):
        GaussianMixture(2, **params).fit(X)


def test_too_few_samples_message_includes_sklearns(X):
    match = r"Expected n_samples >= n_components but got n_components = 3, n_samples = 2"
    with pytest.raises(ValueError, match=match):
        GaussianMixture(3).fit(X[:2])


def test_convergence_warning_includes_sklearns(X):
    from sklearn.exceptions import ConvergenceWarning

    with pytest.warns(ConvergenceWarning, match="Best performing initialization did not converge"):
        GaussianMixture(2, max_iter=1, tol=0.0, random_state=0).fit(X)


def test_collapse_error_includes_sklearns():
    from bayesgmm.em.gaussian import CollapsedComponentError, compute_precision_cholesky

    with pytest.raises(CollapsedComponentError, match="ill-defined empirical covariance"):
        compute_precision_cholesky(np.zeros((1, 2, 2)), "full")
    with pytest.raises(ValueError, match="Fitting the mixture model failed because some"):
        compute_precision_cholesky(np.zeros(2), "spherical")


def test_sample_messages_include_sklearns(X):
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError, match="not fitted"):
        GaussianMixture(2).sample(3)
    gm = GaussianMixture(2, random_state=0).fit(X)
    with pytest.raises(
        ValueError, match=r"Invalid value for 'n_samples': 0 \. The sampling requires"
    ):
        gm.sample(0)


@pytest.mark.parametrize(
    ("shape", "message"),
    [
        ((5,), r"must be 2-D .* got 1-D\. Reshape your data"),
        ((2, 3, 4), r"must be 2-D .* got 3-D\.$"),
        ((0, 2), r"X is empty"),
        ((3, 0), r"has 0 feature\(s\)"),
    ],
)
def test_matrix_shape_check_names_the_problem(shape, message):
    from bayesgmm._validation import check_matrix_shape

    with pytest.raises(ValueError, match=message):
        check_matrix_shape(shape)
    check_matrix_shape((3, 2))  # a valid shape passes


def test_numeric_columns_check_lists_the_bad_columns():
    from bayesgmm._validation import check_numeric_columns

    frame = pd.DataFrame(
        {"a": [1.0], "b": ["x"], "c": [True], "d": [1 + 2j], "e": pd.array([1], "Int64")}
    )
    with pytest.raises(ValueError, match=r"Z has non-numeric columns \['b', 'd'\]"):
        check_numeric_columns(frame.dtypes, "Z")
    check_numeric_columns(frame[["a", "c", "e"]].dtypes)
