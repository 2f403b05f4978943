"""Contract tests for bayesgmm.GaussianMixture: scikit-learn API, input validation,
sample weights, model selection, warm start and persistence.

"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture as SklearnGaussianMixture
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from bayesgmm import (
    CollapsedComponentError,
    ConjugatePrior,
    DegenerateComponentWarning,
    GaussianMixture,
)
from bayesgmm.datasets import make_mixture

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
FITTED_ARRAYS = ("weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_")

# tol=0 runs exactly max_iter iterations, which is reported as non-convergence.
ignore_convergence = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


# ----------------------------------------------------------------------------- helpers
@pytest.fixture(scope="module")
def three_clusters() -> np.ndarray:
    """120 points from 3 overlapping 2-D Gaussians (EM does not converge in 20 steps)."""
    return make_mixture(120, 3, 2, separation=1.0, seed=1).X


def _initial_params(X: np.ndarray, covariance_type: str, n_components: int = 3) -> dict:
    """Identical user-given initial parameters, in scikit-learn's shapes."""
    n_features = X.shape[1]
    precisions = {
        "full": np.stack([0.7 * np.eye(n_features)] * n_components),
        "tied": 0.7 * np.eye(n_features),
        "diag": np.full((n_components, n_features), 0.7),
        "spherical": np.full(n_components, 0.7),
    }[covariance_type]
    rows = np.linspace(0, len(X) - 1, n_components).astype(int)
    return {
        "weights_init": np.full(n_components, 1.0 / n_components),
        "means_init": X[rows].copy(),
        "precisions_init": precisions,
    }


def _assert_same_fit(a, b, *, rtol=1e-10, atol=1e-10) -> None:
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
        assert_allclose(getattr(a, name), getattr(b, name), rtol=rtol, atol=atol, err_msg=name)
    assert_allclose(a.lower_bound_, b.lower_bound_, rtol=rtol, atol=atol)


def _assert_params_equal(got: dict, expected: dict) -> None:
    """get_params() equality, with array-valued parameters compared by value."""
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        if isinstance(value, np.ndarray) or isinstance(got[key], np.ndarray):
            assert_array_equal(np.asarray(got[key]), np.asarray(value), err_msg=key)
        else:
            assert got[key] == value, key


def _full_covariance(est: GaussianMixture, k: int) -> np.ndarray:
    cov, n_features = est.covariances_, est.means_.shape[1]
    return {
        "full": lambda: cov[k],
        "tied": lambda: cov,
        "diag": lambda: np.diag(cov[k]),
        "spherical": lambda: cov[k] * np.eye(n_features),
    }[est.covariance_type]()


# ---------------------------------------------------- 1. scikit-learn estimator checks
# Checks excluded because they do not apply to this estimator: none. Every check of
# scikit-learn 1.9 applies to a density estimator with predict/predict_proba/score.
@parametrize_with_checks(
    [GaussianMixture(covariance_type=c, random_state=0) for c in COVARIANCE_TYPES],
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


# ------------------------------------------------------- 2. Pipeline, GridSearchCV, clone
def test_pipeline_with_standard_scaler(three_clusters):
    X = 10.0 * three_clusters + 100.0
    pipe = Pipeline([("scale", StandardScaler()), ("gmm", GaussianMixture(3, random_state=0))]).fit(
        X
    )
    labels = pipe.predict(X)
    assert labels.shape == (len(X),)
    assert set(np.unique(labels)) <= {0, 1, 2}

    Z = StandardScaler().fit_transform(X)
    direct = GaussianMixture(3, random_state=0).fit(Z)
    assert_array_equal(labels, direct.predict(Z))
    assert math.isfinite(pipe.score(X))
    assert pipe.score(X) == pytest.approx(direct.score(Z), rel=1e-12)


def test_grid_search_selects_three_components():
    # 5-D data: a superfluous component costs >= 6 parameters, which the held-out
    # likelihood of 3-fold CV penalises clearly (margin about 0.03 nats per sample)
    X = make_mixture(300, 3, 5, separation=3.0, seed=3).X
    search = GridSearchCV(
        GaussianMixture(random_state=0),
        {"n_components": [1, 2, 3, 4, 5], "covariance_type": list(COVARIANCE_TYPES)},
        cv=KFold(3, shuffle=True, random_state=0),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", DegenerateComponentWarning)
        search.fit(X)  # default scoring: GaussianMixture.score, held-out mean log-likelihood
    assert search.best_params_["n_components"] == 3
    assert search.best_estimator_.n_components == 3
    scores = search.cv_results_["mean_test_score"]
    n_components = np.asarray(search.cv_results_["param_n_components"], dtype=int)
    assert search.best_score_ == scores.max()
    assert scores[n_components == 1].max() < scores[n_components == 3].max()


@ignore_convergence
def test_clone_keeps_params(three_clusters):
    est = GaussianMixture(
        3,
        covariance_type="diag",
        tol=1e-5,
        reg_covar=1e-4,
        max_iter=17,
        n_init=2,
        init_params="k-means++",
        prior={"mean_precision": 0.1},
        random_state=3,
        warm_start=True,
        **_initial_params(three_clusters, "diag"),
    )
    est.fit(three_clusters)
    copy = clone(est)
    _assert_params_equal(copy.get_params(), est.get_params())
    assert not hasattr(copy, "weights_")


# -------------------------------------------------------------------- 3. bad input
@pytest.fixture(scope="module")
def X_good() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(50, 2))


def _with(X: np.ndarray, row: int, col: int, value: float) -> np.ndarray:
    X = X.copy()
    X[row, col] = value
    return X


@pytest.mark.parametrize(
    ("make_X", "match"),
    [
        (lambda X: _with(X, 3, 1, np.nan), r"X contains NaN .* first at \[3\]"),
        (lambda X: _with(X, 7, 0, np.inf), r"X contains inf .* first at \[7\]"),
        (lambda X: _with(X, 7, 0, -np.inf), r"X contains inf"),
        (lambda X: np.empty((0, 2)), r"X is empty: got shape \(0, 2\)"),
        (lambda X: X[:, 0], r"X must be 2-D .* got 1-D.*Reshape your data"),
        (lambda X: X.reshape(50, 2, 1), r"X must be 2-D .* got 3-D"),
        (lambda X: np.array([["a", "b"], ["c", "d"], ["e", "f"]]), r"X must be numeric"),
        (lambda X: _with(X, slice(None), 1, 3.0), r"feature\(s\) \['column 1'\] are constant"),
    ],
    ids=["nan", "inf", "-inf", "empty", "1-D", "3-D", "strings", "constant-column"],
)
def test_bad_X_raises(X_good, make_X, match):
    with pytest.raises(ValueError, match=match):
        GaussianMixture(2).fit(make_X(X_good))


def test_fewer_rows_than_components(X_good):
    with pytest.raises(ValueError, match=r"3 samples but n_components=5"):
        GaussianMixture(5).fit(X_good[:3])


def test_non_numeric_dataframe_column_is_named(X_good):
    df = pd.DataFrame({"height": X_good[:, 0], "colour": ["red", "blue"] * 25})
    with pytest.raises(ValueError, match=r"non-numeric columns \['colour'\]"):
        GaussianMixture(2).fit(df)


def test_constant_dataframe_column_is_named(X_good):
    df = pd.DataFrame({"height": X_good[:, 0], "year": 2024.0})
    with pytest.raises(ValueError, match=r"feature\(s\) \['year'\] are constant"):
        GaussianMixture(2).fit(df)


def test_pandas_nullable_numeric_columns_are_numeric(X_good):
    df = pd.DataFrame(
        {
            "a": X_good[:, 0],
            "b": pd.array(np.arange(50) % 7, dtype="Int64"),
            "c": pd.array(X_good[:, 1], dtype="Float64"),
        }
    )
    GaussianMixture(2, random_state=0).fit(df)


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"n_components": 0}, r"n_components must be an integer >= 1, got 0"),
        ({"n_components": -1}, r"n_components must be an integer >= 1, got -1"),
        ({"n_components": 2.5}, r"n_components must be an integer >= 1, got 2.5"),
        ({"covariance_type": "fulll"}, r"covariance_type must be one of .* got 'fulll'"),
        ({"init_params": "kmeanz"}, r"init_params must be one of .* got 'kmeanz'"),
        ({"reg_covar": -1e-6}, r"reg_covar must be a finite number >= 0"),
        ({"tol": -1e-3}, r"tol must be a finite number >= 0"),
        ({"max_iter": -1}, r"max_iter must be an integer >= 0"),
        ({"n_init": 0}, r"n_init must be an integer >= 1"),
        ({"prior": {"shape": 1.0}}, r"invalid prior fields: .*unexpected keyword.*'shape'"),
        ({"prior": {"weight_concentration": 0.5}}, r"weight_concentration must be >= 1"),
        ({"prior": "flat"}, r"prior must be one of \('default',\), got 'flat'"),
    ],
    ids=lambda v: repr(v) if isinstance(v, dict) else None,
)
def test_bad_params_raise(X_good, params, match):
    params = {"n_components": 2, **params}
    with pytest.raises(ValueError, match=match):
        GaussianMixture(**params).fit(X_good)


@pytest.mark.parametrize(
    ("sample_weight", "match"),
    [
        (np.ones(49), r"sample_weight must have shape \(50,\) to match X, got \(49,\)"),
        (np.ones((50, 1)), r"sample_weight must have shape \(50,\) to match X, got \(50, 1\)"),
        (np.r_[-1.0, np.ones(49)], r"sample_weight must be finite and non-negative"),
        (np.zeros(50), r"sample_weight sums to zero"),
    ],
    ids=["wrong-length", "2-D", "negative", "all-zero"],
)
def test_bad_sample_weight_raises(X_good, sample_weight, match):
    with pytest.raises(ValueError, match=match):
        GaussianMixture(2).fit(X_good, sample_weight=sample_weight)


@pytest.mark.parametrize("method", ["predict", "predict_proba", "score_samples", "score"])
def test_predict_with_other_number_of_features(X_good, method):
    est = GaussianMixture(2, random_state=0).fit(X_good)
    with pytest.raises(ValueError, match=r"X has 3 features, but GaussianMixture is expecting 2"):
        getattr(est, method)(np.ones((4, 3)))


@pytest.mark.parametrize(
    ("covariance_type", "params", "match"),
    [
        ("full", {"weights_init": [1.0]}, r"weights_init must have shape \(2,\), got \(1,\)"),
        ("full", {"weights_init": [0.3, 0.3]}, r"weights_init must be non-negative and sum to 1"),
        ("full", {"means_init": np.zeros((2, 3))}, r"means_init must have shape \(2, 2\)"),
        ("full", {"means_init": np.zeros(2)}, r"means_init must have shape \(2, 2\), got \(2,\)"),
        (
            "full",
            {"precisions_init": np.ones((2, 2))},
            r"precisions_init must have shape \(2, 2, 2\), got \(2, 2\)",
        ),
        (
            "tied",
            {"precisions_init": np.ones((2, 2, 2))},
            r"precisions_init must have shape \(2, 2\), got \(2, 2, 2\)",
        ),
        (
            "diag",
            {"precisions_init": np.ones(2)},
            r"precisions_init must have shape \(2, 2\), got \(2,\)",
        ),
        (
            "spherical",
            {"precisions_init": np.ones((2, 2))},
            r"precisions_init must have shape \(2,\), got \(2, 2\)",
        ),
        (
            "full",
            {"precisions_init": np.stack([np.eye(2), -np.eye(2)])},
            r"precisions_init\[1\] is not positive definite",
        ),
    ],
)
def test_bad_initial_params_raise(X_good, covariance_type, params, match):
    with pytest.raises(ValueError, match=match):
        GaussianMixture(2, covariance_type=covariance_type, **params).fit(X_good)


def test_asymmetric_precisions_init_raises(X_good):
    asymmetric = np.stack([[[1.0, 0.9], [0.0, 1.0]], np.eye(2)])
    with pytest.raises(ValueError, match=r"precisions_init.*symmetric"):
        GaussianMixture(2, precisions_init=asymmetric).fit(X_good)


@pytest.mark.parametrize(
    ("covariance_type", "precisions"),
    [("diag", -np.ones((2, 2))), ("spherical", np.array([1.0, -1.0]))],
)
def test_non_positive_precisions_init_raises(X_good, covariance_type, precisions):
    with pytest.raises(ValueError, match=r"precisions_init"):
        GaussianMixture(2, covariance_type=covariance_type, precisions_init=precisions).fit(X_good)


# -------------------------------------------------------------------- 4. collapse
COLLAPSING_TYPES = ("full", "diag", "spherical")  # a tied covariance is shared: no collapse


@pytest.fixture(scope="module")
def blob_and_triplet() -> np.ndarray:
    blob = np.random.default_rng(0).normal(size=(60, 2))
    return np.vstack([blob, np.full((3, 2), 6.0)])


def _collapse_init(covariance_type: str) -> dict:
    precisions = {
        "full": np.stack([np.eye(2)] * 2),
        "diag": np.ones((2, 2)),
        "spherical": np.ones(2),
    }[covariance_type]
    return {
        "covariance_type": covariance_type,
        "weights_init": [0.95, 0.05],
        "means_init": [[0.0, 0.0], [6.0, 6.0]],  # component 1 on the three identical points
        "precisions_init": precisions,
        "max_iter": 50,
    }


@pytest.mark.parametrize("covariance_type", COLLAPSING_TYPES)
def test_collapse_without_regularisation_raises(blob_and_triplet, covariance_type):
    est = GaussianMixture(2, reg_covar=0.0, **_collapse_init(covariance_type))
    with pytest.raises(CollapsedComponentError, match=r"component 1\b.*reg_covar") as info:
        est.fit(blob_and_triplet)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("covariance_type", COLLAPSING_TYPES)
def test_collapse_with_default_regularisation_warns(blob_and_triplet, covariance_type):
    est = GaussianMixture(2, **_collapse_init(covariance_type))
    with pytest.warns(DegenerateComponentWarning, match=r"component\(s\) \[1\] collapsed"):
        est.fit(blob_and_triplet)
    assert 1 in est.degenerate_components_.tolist()
    assert 0 not in est.degenerate_components_.tolist()
    for name in FITTED_ARRAYS:
        assert np.isfinite(getattr(est, name)).all(), name
    assert math.isfinite(est.lower_bound_)
    assert np.isfinite(est.lower_bounds_).all()
    assert np.isfinite(est.predict_proba(blob_and_triplet)).all()
    assert np.isfinite(est.score_samples(blob_and_triplet)).all()


# ------------------------------------------------------------------ 5. sample weights
@ignore_convergence
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_integer_weights_equal_repeated_rows(three_clusters, covariance_type):
    X = three_clusters
    weights = np.random.default_rng(1).integers(1, 4, size=len(X))
    init = _initial_params(X, covariance_type)
    kw = {"covariance_type": covariance_type, "tol": 0.0, "max_iter": 20, **init}
    weighted = GaussianMixture(3, **kw).fit(X, sample_weight=weights)
    repeated = GaussianMixture(3, **kw).fit(np.repeat(X, weights, axis=0))
    assert weighted.n_iter_ == repeated.n_iter_ == 20
    _assert_same_fit(weighted, repeated)


@ignore_convergence
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_unit_weights_equal_no_weights(three_clusters, covariance_type):
    X = three_clusters
    kw = {"covariance_type": covariance_type, "tol": 0.0, "max_iter": 20}
    kw |= _initial_params(X, covariance_type)
    ones = GaussianMixture(3, **kw).fit(X, sample_weight=np.ones(len(X)))
    none = GaussianMixture(3, **kw).fit(X)
    _assert_same_fit(ones, none)


@ignore_convergence
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_zero_weights_equal_dropped_rows(three_clusters, covariance_type):
    X = three_clusters
    weights = np.ones(len(X))
    weights[::4] = 0.0
    kw = {"covariance_type": covariance_type, "tol": 0.0, "max_iter": 20}
    kw |= _initial_params(X, covariance_type)
    zeroed = GaussianMixture(3, **kw).fit(X, sample_weight=weights)
    dropped = GaussianMixture(3, **kw).fit(X[weights > 0])
    _assert_same_fit(zeroed, dropped)


# ------------------------------------------------------------- 6. inference methods
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_fit_predict_and_probabilities(three_clusters, covariance_type):
    X = three_clusters
    labels = GaussianMixture(3, covariance_type=covariance_type, random_state=0).fit_predict(X)
    est = GaussianMixture(3, covariance_type=covariance_type, random_state=0).fit(X)
    assert_array_equal(labels, est.predict(X))

    proba = est.predict_proba(X)
    assert proba.shape == (len(X), 3)
    assert (proba >= 0).all()
    assert_allclose(proba.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    assert_array_equal(proba.argmax(axis=1), est.predict(X))
    assert est.score(X) == pytest.approx(est.score_samples(X).mean(), rel=1e-12)
    w = np.arange(len(X), dtype=float)
    assert est.score(X, sample_weight=w) == pytest.approx(
        np.average(est.score_samples(X), weights=w), rel=1e-12
    )


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_sample_shapes_and_counts(three_clusters, covariance_type):
    est = GaussianMixture(3, covariance_type=covariance_type, random_state=0).fit(three_clusters)
    for n in (1, 7, 100):
        X_new, labels = est.sample(n)
        assert X_new.shape == (n, 2)
        assert labels.shape == (n,)
        assert np.bincount(labels, minlength=3).sum() == n
        assert set(labels.tolist()) <= {0, 1, 2}
    with pytest.raises(ValueError, match=r"n_samples must be an integer >= 1"):
        est.sample(0)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_sample_moments_match_fit(three_clusters, covariance_type):
    est = GaussianMixture(3, covariance_type=covariance_type, random_state=0).fit(three_clusters)
    n = 30_000
    X_new, labels = est.sample(n)
    counts = np.bincount(labels, minlength=3)
    # multinomial counts: within 5 standard deviations of n * weight
    sd = np.sqrt(n * est.weights_ * (1 - est.weights_))
    assert np.all(np.abs(counts - n * est.weights_) < 5 * sd)
    for k in range(3):
        draws = X_new[labels == k]
        cov = _full_covariance(est, k)
        # the sample mean has standard error sqrt(diag(cov) / n_k): allow 5 of them
        standard_error = np.sqrt(cov.diagonal() / counts[k])
        assert np.all(np.abs(draws.mean(axis=0) - est.means_[k]) < 5 * standard_error)
        # the sample covariance entries have standard error <= sqrt(2 / n_k) * max variance
        tol = 5 * np.sqrt(2.0 / counts[k]) * cov.diagonal().max()
        assert_allclose(np.cov(draws, rowvar=False), cov, rtol=0, atol=tol)


# -------------------------------------------------- 7. AIC / BIC / ICL vs scikit-learn
@ignore_convergence
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_aic_bic_match_sklearn(three_clusters, covariance_type):
    X = three_clusters
    kw = {"covariance_type": covariance_type, "tol": 0.0, "max_iter": 20}
    kw |= _initial_params(X, covariance_type)
    ours = GaussianMixture(3, **kw).fit(X)
    theirs = SklearnGaussianMixture(3, **kw).fit(X)
    assert ours.n_iter_ == theirs.n_iter_ == 20
    _assert_same_fit(ours, theirs, rtol=1e-8, atol=1e-10)
    assert ours.aic(X) == pytest.approx(theirs.aic(X), rel=1e-10)
    assert ours.bic(X) == pytest.approx(theirs.bic(X), rel=1e-10)
    assert ours.bic(X) - ours.aic(X) == pytest.approx(
        theirs.bic(X) - theirs.aic(X), rel=1e-10
    )  # same number of free parameters


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_icl_is_bic_plus_classification_entropy(three_clusters, covariance_type):
    X = three_clusters
    est = GaussianMixture(3, covariance_type=covariance_type, random_state=0).fit(X)
    classification = np.log(est.predict_proba(X).max(axis=1)).sum()
    assert est.icl(X) == pytest.approx(est.bic(X) - 2.0 * classification, rel=1e-12)
    assert est.icl(X) >= est.bic(X)
    assert est.icl(X) > est.bic(X)  # overlapping clusters: some points are ambiguous


# ------------------------------------------------------------------- 8. warm start
@ignore_convergence
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_warm_start_continues_from_previous_fit(three_clusters, covariance_type):
    X = three_clusters
    kw = {"covariance_type": covariance_type, "tol": 0.0} | _initial_params(X, covariance_type)
    warm = GaussianMixture(3, max_iter=1, warm_start=True, **kw)
    warm.fit(X)
    first_means = warm.means_.copy()
    warm.fit(X)
    assert not np.array_equal(first_means, warm.means_)  # the second fit moved on
    once = GaussianMixture(3, max_iter=2, **kw).fit(X)
    _assert_same_fit(warm, once, rtol=0, atol=1e-12)
    assert warm.lower_bound_ == pytest.approx(once.lower_bounds_[-1], rel=1e-14)


# ------------------------------------------------------------------ 9. save / load
@pytest.mark.parametrize(
    "prior", [None, "default", {"mean_precision": 0.1, "degrees_of_freedom": 5.0}]
)
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_save_load_round_trip(tmp_path, three_clusters, covariance_type, prior):
    df = pd.DataFrame(three_clusters, columns=["length", "width"])
    est = GaussianMixture(3, covariance_type=covariance_type, prior=prior, random_state=0)
    est.fit(df)
    path = tmp_path / f"gmm-{covariance_type}.nc"
    est.save(path)
    loaded = GaussianMixture.load(path)

    assert type(loaded) is GaussianMixture
    assert loaded.get_params() == est.get_params()
    for name in FITTED_ARRAYS:
        assert_array_equal(getattr(loaded, name), getattr(est, name), strict=True)
    assert_array_equal(loaded.degenerate_components_, est.degenerate_components_)
    assert loaded.lower_bounds_ == est.lower_bounds_
    assert loaded.lower_bound_ == est.lower_bound_
    assert loaded.n_iter_ == est.n_iter_
    assert loaded.converged_ == est.converged_
    assert loaded.n_features_in_ == est.n_features_in_
    assert loaded.prior_ == est.prior_
    assert_array_equal(loaded.feature_names_in_, est.feature_names_in_)
    assert_array_equal(loaded.predict(df), est.predict(df))
    assert_array_equal(loaded.predict_proba(df), est.predict_proba(df))
    assert_array_equal(loaded.score_samples(df), est.score_samples(df))


def test_save_load_keeps_initial_parameters_by_value(tmp_path, three_clusters):
    init = _initial_params(three_clusters, "full")
    est = GaussianMixture(3, max_iter=5, tol=0.0, **init)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(three_clusters)
    est.save(tmp_path / "m.nc")
    loaded = GaussianMixture.load(tmp_path / "m.nc")
    _assert_params_equal(loaded.get_params(), est.get_params())
    assert not hasattr(loaded, "feature_names_in_")
    assert_array_equal(loaded.predict(three_clusters), est.predict(three_clusters))


def test_save_load_keeps_conjugate_prior_instance(tmp_path, three_clusters):
    prior = ConjugatePrior(mean_precision=0.1)
    est = GaussianMixture(3, prior=prior, random_state=0).fit(three_clusters)
    est.save(tmp_path / "m.nc")
    loaded = GaussianMixture.load(tmp_path / "m.nc")
    assert loaded.prior_ == est.prior_  # the fit itself round-trips
    assert loaded.get_params() == est.get_params()


def test_load_foreign_netcdf_raises(tmp_path):
    path = tmp_path / "other.nc"
    xr.Dataset({"a": ("x", np.arange(3.0))}, attrs={"title": "not a model"}).to_netcdf(
        path, engine="h5netcdf"
    )
    with pytest.raises(ValueError, match=r"is not a saved bayesgmm GaussianMixture"):
        GaussianMixture.load(path)


def test_save_unfitted_raises(tmp_path):
    with pytest.raises(ValueError, match=r"not fitted"):
        GaussianMixture(2).save(tmp_path / "m.nc")


# ---------------------------------------------------------------------- 10. n_init
def test_more_initialisations_never_do_worse():
    # 6 overlapping clusters and random initialisation: EM has several local optima
    X = make_mixture(300, 6, 2, separation=1.0, seed=3).X
    kw = {"covariance_type": "diag", "init_params": "random", "max_iter": 200}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", DegenerateComponentWarning)
        one = [GaussianMixture(6, n_init=1, random_state=s, **kw).fit(X) for s in range(3)]
        five = [GaussianMixture(6, n_init=5, random_state=s, **kw).fit(X) for s in range(3)]
    single_bounds = [est.lower_bound_ for est in one]
    assert np.ptp(single_bounds) > 1e-2  # different starts reach different optima
    for seed in range(3):
        assert five[seed].lower_bound_ >= one[seed].lower_bound_
    # the first of the five initialisations is the single one: a worse start is replaced
    assert max(f.lower_bound_ - o.lower_bound_ for f, o in zip(five, one, strict=True)) > 1e-2
