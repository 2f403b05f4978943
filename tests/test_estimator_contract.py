"""Contract tests: sections 1-10 for bayesgmm.GaussianMixture (scikit-learn API, input
validation, sample weights, model selection, warm start, save/load); section 11 one contract
over every estimator (GaussianMixture, BayesGMM, MPMA, GibbsMPMA): clone and get_params,
NotFittedError, an exact save/load round trip, and the one file format's refusals and atomic
writes (:mod:`bayesgmm.io`).

"""

from __future__ import annotations

import dataclasses
import errno
import math
import os
import re
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import BaseEstimator, clone
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.mixture import GaussianMixture as SklearnGaussianMixture
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from bayesgmm import (
    MPMA,
    BayesGMM,
    CollapsedComponentError,
    ConjugatePrior,
    DegenerateComponentWarning,
    GaussianMixture,
    GibbsMPMA,
)
from bayesgmm.datasets import make_mixture
from bayesgmm.io import FORMAT_ATTR, HEADER_SIZE, to_netcdf_data, write_model_file
from bayesgmm.mpma.gibbs import GibbsPriors
from tests.helpers import low_rank_ratings

try:
    import resource
except ImportError:  # not POSIX
    resource = None

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
    # NaN is refused under nan_policy='raise' only (a missing value otherwise: tests/em/)
    policies = ["raise"] if "NaN" in match else ["raise", "marginalize"]
    for nan_policy in policies:
        with pytest.raises(ValueError, match=match):
            GaussianMixture(2, nan_policy=nan_policy).fit(make_X(X_good))


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


# ------------------------------------------------- 9. save / load (GaussianMixture)
# The file format itself (exactness, refusals, atomicity) is checked for every estimator
# by the contract in section 11; these cover GaussianMixture's parameter variety.
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
    assert_same(loaded, est)
    assert_array_equal(loaded.feature_names_in_, ["length", "width"])
    assert_array_equal(loaded.predict_proba(df), est.predict_proba(df), strict=True)
    assert_array_equal(loaded.score_samples(df), est.score_samples(df), strict=True)


def test_save_load_keeps_initial_parameters_by_value(tmp_path, three_clusters):
    init = _initial_params(three_clusters, "full")
    init["weights_init"] = list(init["weights_init"])  # a list stays a list
    est = GaussianMixture(3, max_iter=5, tol=0.0, **init)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(three_clusters)
    est.save(tmp_path / "m.nc")
    loaded = GaussianMixture.load(tmp_path / "m.nc")
    assert_same(loaded, est)
    assert not hasattr(loaded, "feature_names_in_")
    assert_array_equal(loaded.predict(three_clusters), est.predict(three_clusters))


def test_save_load_keeps_conjugate_prior_instance(tmp_path, three_clusters):
    prior = ConjugatePrior(mean_precision=0.1)
    est = GaussianMixture(3, prior=prior, random_state=0).fit(three_clusters)
    est.save(tmp_path / "m.nc")
    loaded = GaussianMixture.load(tmp_path / "m.nc")
    assert isinstance(loaded.prior, ConjugatePrior)
    assert_same(loaded, est)


def test_random_state_instance_round_trips_with_its_state(tmp_path, three_clusters):
    est = GaussianMixture(3, random_state=np.random.RandomState(0)).fit(three_clusters)
    est.save(tmp_path / "m.nc")
    loaded = GaussianMixture.load(tmp_path / "m.nc")
    assert isinstance(loaded.random_state, np.random.RandomState)
    assert_same(loaded, est)
    # the same state: the next draws agree
    assert_array_equal(loaded.sample(20)[0], est.sample(20)[0])


def test_unsupported_parameter_value_is_refused_clearly(tmp_path, three_clusters):
    est = GaussianMixture(3, random_state=0).fit(three_clusters)
    est.random_state = np.random.default_rng(0)  # not a scikit-learn random_state
    with pytest.raises(TypeError, match=r"cannot save attrs\['params'\]\['random_state'\]"):
        est.save(tmp_path / "m.nc")
    assert list(tmp_path.iterdir()) == []


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


# ------------------------------------------------- 11. the contract of every estimator
# One contract over GaussianMixture, BayesGMM, MPMA and GibbsMPMA: scikit-learn's clone and
# get_params, NotFittedError before fit, an exact save/load round trip of every parameter
# and fitted attribute, and the one file format's refusals (another estimator's file, a
# foreign or damaged file) and atomic writes. Fits are small: the format is under test.
def _mixture_data() -> np.ndarray:
    return make_mixture(100, 2, 2, separation=4.0, seed=0).X


def _ratings(id_kind: str) -> pd.DataFrame:
    frame = low_rank_ratings(
        0, n_users=30, n_items=25, density=0.6, offset=3.5, user_sd=0.5, item_sd=0.3,
        noise=0.5, cover_all=True, whole_stars=True,
    )[0]  # fmt: skip
    if id_kind == "object-int":  # the fault corpus case: ints in object columns
        return frame.astype({"user": object, "item": object})
    if id_kind == "str":
        return frame.assign(user="u" + frame["user"].astype(str)).astype({"user": object})
    if id_kind == "mixed":
        users = [u if u % 2 else f"u{u}" for u in frame["user"]]
        return frame.assign(user=pd.Series(users, dtype=object))
    return frame


def _ratings_args(frame: pd.DataFrame) -> tuple:
    return frame["user"].to_numpy(), frame["item"].to_numpy()


@dataclasses.dataclass(frozen=True)
class Case:
    """An estimator under the contract: how to build and fit it, and what it predicts."""

    make: Callable[[], Any]
    data: Callable[[], Any]
    predictions: Callable[[Any, Any], dict[str, Any]]
    unfitted_calls: Callable[[Any, Any], dict[str, Callable[[], Any]]]


def _gm_predictions(est, X) -> dict:
    return {
        "predict": est.predict(X),
        "predict_proba": est.predict_proba(X),
        "score_samples": est.score_samples(X),
        "sample": est.sample(7),  # the saved RandomState: the same draws
    }


def _bayes_predictions(est, X) -> dict:
    return {
        "predict": est.predict(X),
        "predict_proba": est.predict_proba(X, return_std=True),
        "score_samples": est.score_samples(X),
    }


def _mpma_predictions(est, frame) -> dict:
    users, items = _ratings_args(frame)
    known = {"user": users[:40], "item": items[:40], "rating": frame["rating"].to_numpy()[:40]}
    return {
        "predict": est.predict(users, items),
        "component_means": est.component_means(users[:40], items[:40]),
        "predict_proba_components": est.predict_proba_components(pd.DataFrame(known)),
        "recommend": est.recommend(users[0], 5),
    }


def _mixture_calls(est, X) -> dict:
    return {name: lambda m=name: getattr(est, m)(X) for name in _MIXTURE_METHODS}


def _mpma_calls(est, frame) -> dict:
    users, items = _ratings_args(frame)
    return {
        "predict": lambda: est.predict(users, items),
        "component_means": lambda: est.component_means(users, items),
        "predict_proba_components": lambda: est.predict_proba_components(frame),
        "recommend": lambda: est.recommend(users[0]),
    }


_MIXTURE_METHODS = ("predict", "predict_proba", "score_samples", "score")

CASES = {
    "GaussianMixture": Case(
        lambda: GaussianMixture(
            3,
            covariance_type="diag",
            prior="default",
            weights_init=np.full(3, 1.0 / 3.0),
            random_state=np.random.RandomState(0),
        ),
        _mixture_data,  # an ndarray: no feature_names_in_, before or after a round trip
        _gm_predictions,
        _mixture_calls,
    ),
    "BayesGMM": Case(
        lambda: BayesGMM(  # 2 chains x 50 draws: the file format is under test
            2,
            chains=2,
            draws=50,
            tune=50,
            em_n_init=1,
            max_predict_draws=20,
            random_state=0,
            progressbar=False,
        ),
        _mixture_data,
        _bayes_predictions,
        _mixture_calls,
    ),
    "MPMA": Case(
        lambda: MPMA(2, n_warmup=3, max_iter=10, priors={"factor_penalty": 9.0}, random_state=1),
        lambda: _ratings("mixed"),
        _mpma_predictions,
        _mpma_calls,
    ),
    "GibbsMPMA": Case(
        lambda: GibbsMPMA(
            2,
            n_burn=3,
            n_draws=4,
            priors=GibbsPriors(noise_sd=0.8),
            rating_scale=(1, 5),
            random_state=1,
        ),
        lambda: _ratings("str"),
        _mpma_predictions,
        _mpma_calls,
    ),
}
#: For each estimator, another whose file it must refuse (GibbsMPMA is an MPMA subclass).
OTHER = {
    "GaussianMixture": "MPMA",
    "BayesGMM": "GaussianMixture",
    "MPMA": "GibbsMPMA",
    "GibbsMPMA": "MPMA",
}
_FITTED: dict[str, tuple[Any, Any]] = {}


def _fitted(name: str) -> tuple[Any, Any]:
    """(fitted estimator, its data), fitted once per session."""
    if name not in _FITTED:
        data = CASES[name].data()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # BayesGMM's few chains, EM convergence
            _FITTED[name] = CASES[name].make().fit(data), data
    return _FITTED[name]


@pytest.fixture(params=list(CASES))
def name(request) -> str:
    return request.param


@pytest.fixture
def fitted(name):
    return _fitted(name)


@pytest.fixture
def saved(tmp_path, fitted, name):
    path = tmp_path / f"{name}.nc"
    fitted[0].save(path)
    return path


def _refused(path, name: str, reason: str = "") -> str:
    """The start of the message of every refusal to load ``path``."""
    return re.escape(f"{str(path)!r} is not a saved bayesgmm {name} model: ") + reason


def test_clone_and_get_params(fitted, name):
    est, _ = fitted
    copy = clone(est)
    assert type(copy) is type(est)
    assert_same(copy.get_params(deep=False), est.get_params(deep=False))
    assert not [a for a in vars(copy) if a.endswith("_") and not a.startswith("_")]
    rebuilt = type(est)(**est.get_params(deep=False))
    assert_same(rebuilt.get_params(deep=False), est.get_params(deep=False))


def test_not_fitted_errors(tmp_path, fitted, name):
    _, data = fitted
    fresh = CASES[name].make()
    for method, call in CASES[name].unfitted_calls(fresh, data).items():
        with pytest.raises(NotFittedError):
            call()
        assert method  # (names the call in a failure's traceback)
    with pytest.raises(NotFittedError, match="not fitted"):
        fresh.save(tmp_path / "unfitted.nc")
    assert list(tmp_path.iterdir()) == []


def test_save_load_round_trip_is_exact(tmp_path, fitted, name):
    est, data = fitted
    path = tmp_path / "model.nc"
    est.save(path)
    loaded = type(est).load(path)
    assert_same(loaded, est)  # every parameter and fitted attribute, dtypes included
    # predictions (and random draws from the saved RandomState) too
    assert_same(CASES[name].predictions(loaded, data), CASES[name].predictions(est, data))
    # and a loaded model saves the same content again
    loaded.save(tmp_path / "again.nc")
    assert_same(type(est).load(tmp_path / "again.nc"), loaded)


def test_saved_file_is_plain_netcdf4_after_the_header(saved, name):
    content = saved.read_bytes()
    assert content.startswith(b"bayesgmm model file\n")
    assert f"format: bayesgmm.{name}/2\n".encode() in content[:HEADER_SIZE]
    assert content[HEADER_SIZE : HEADER_SIZE + 8] == b"\x89HDF\r\n\x1a\n"
    # the header is an HDF5 user block: xarray (and ArviZ) read the file directly
    with xr.open_datatree(saved, engine="h5netcdf") as tree:
        assert tree.attrs[FORMAT_ATTR] == f"bayesgmm.{name}/2"


def test_refuses_another_estimators_file(tmp_path, name):
    other = OTHER[name]
    path = tmp_path / f"{other}.nc"
    _fitted(other)[0].save(path)
    reason = re.escape(f"it holds a 'bayesgmm.{other}/2' file; load it with {other}.load")
    with pytest.raises(ValueError, match=_refused(path, name, reason)):
        CASES[name].make().load(path)


def test_refuses_a_foreign_netcdf_file(tmp_path, name):
    path = tmp_path / "foreign.nc"
    xr.Dataset({"a": ("x", np.arange(3.0))}, attrs={"title": "not a model"}).to_netcdf(
        path, engine="h5netcdf"
    )
    with pytest.raises(ValueError, match=_refused(path, name, "it is a netCDF-4/HDF5 file")):
        type(CASES[name].make()).load(path)


def test_refuses_the_right_tag_with_missing_content(tmp_path, fitted, name):
    est, _ = fitted
    cls, path = type(est), tmp_path / "hollow.nc"
    write_model_file(path, xr.Dataset(attrs={FORMAT_ATTR: cls._file_format}))
    with pytest.raises(ValueError, match=_refused(path, name, "the tag is right but the")):
        cls.load(path)
    # every variable (or group) is needed
    data = to_netcdf_data(est)
    if isinstance(data, xr.DataTree):
        parts = [f"/{child}" for child in data.children]
    else:
        parts = list(data.data_vars)
    for part in parts:
        if isinstance(data, xr.DataTree):
            damaged = data.copy()
            del damaged[part.lstrip("/")]
        else:
            damaged = data.drop_vars(part)
        write_model_file(path, damaged)
        with pytest.raises(ValueError, match=_refused(path, name, "the tag is right but the")):
            cls.load(path)


@pytest.mark.parametrize("where", ["start", "header", "tag", "payload-start", "middle", "end"])
def test_refuses_a_corrupted_file(saved, fitted, name, where):
    content = bytearray(saved.read_bytes())
    size = len(content)
    offset = {
        "start": 0,
        "header": 100,
        "tag": 40,
        "payload-start": HEADER_SIZE,
        "middle": size // 2,
        "end": size - 256,
    }[where]
    content[offset : offset + 256] = bytes(b ^ 0xFF for b in content[offset : offset + 256])
    saved.write_bytes(bytes(content))
    reason = (
        "it does not start with a bayesgmm header" if where == "start" else "the file is corrupted"
    )
    with pytest.raises(ValueError, match=_refused(saved, name, reason)):
        type(fitted[0]).load(saved)


@pytest.mark.parametrize(
    "damage",
    ["empty", "inside-header", "header-only", "truncated", "extended", "text", "zeroed", "netcdf3"],
)
def test_refuses_incomplete_or_foreign_bytes(saved, fitted, name, damage):
    content = saved.read_bytes()
    if damage == "netcdf3":
        xr.Dataset({"a": ("x", np.arange(3.0))}).to_netcdf(saved, engine="scipy")
        assert saved.read_bytes().startswith(b"CDF")
    else:
        saved.write_bytes(
            {
                "empty": b"",
                "inside-header": content[:10],
                "header-only": content[:HEADER_SIZE],
                "truncated": content[:-1],
                "extended": content + b"\0",
                "text": b"user,item,rating\n1,2,3.5\n" * 40,
                "zeroed": bytes(HEADER_SIZE) + content[HEADER_SIZE:],
            }[damage]
        )
    reason = {
        "empty": "the file is empty",
        "inside-header": "the file is truncated",
        "header-only": "the file is truncated",
        "truncated": "the file is truncated",
        "extended": "the file is corrupted",
        "text": "it does not start with a bayesgmm header",
        "zeroed": "its header is zeroed",
        "netcdf3": "it is a netCDF-3 file",
    }[damage]
    with pytest.raises(ValueError, match=_refused(saved, name, reason)):
        type(fitted[0]).load(saved)


def test_missing_file_is_an_oserror_naming_it(tmp_path, fitted):
    path = tmp_path / "absent.nc"
    with pytest.raises(FileNotFoundError, match=re.escape(str(path))):
        type(fitted[0]).load(path)


@pytest.mark.skipif(resource is None, reason="needs POSIX resource limits")
def test_disk_full_save_keeps_the_old_file(saved, fitted):
    est, _ = fitted
    before = saved.read_bytes()
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    # a file size limit (as on a full disk): Python ignores SIGXFSZ, the write fails EFBIG
    resource.setrlimit(resource.RLIMIT_FSIZE, (len(before) // 2, hard))
    try:
        with pytest.raises(OSError, match=re.escape(repr(str(saved)))) as info:
            est.save(saved)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert ".tmp-" not in str(info.value)
    assert saved.read_bytes() == before
    assert list(saved.parent.iterdir()) == [saved]
    assert_same(type(est).load(saved), est)


def test_failed_write_removes_the_temporary_file(saved, fitted, monkeypatch):
    est, _ = fitted
    before = saved.read_bytes()

    def no_space(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(OSError, match=r"No space left on device.*" + re.escape(repr(str(saved)))):
        est.save(saved)
    assert saved.read_bytes() == before
    assert list(saved.parent.iterdir()) == [saved]


def test_save_onto_a_directory_names_it_and_leaves_nothing(tmp_path, fitted):
    est, _ = fitted
    target = tmp_path / "a-directory"
    target.mkdir()
    with pytest.raises(IsADirectoryError) as info:
        est.save(target)
    assert info.value.filename == str(target)
    assert ".tmp-" not in str(info.value)
    assert sorted(tmp_path.iterdir()) == [target]
    assert list(target.iterdir()) == []


# ------------------------------------------------------------- ids keep their dtype
@pytest.mark.parametrize("id_kind", ["int", "object-int", "str", "mixed"])
def test_mpma_ids_round_trip_with_their_dtype(tmp_path, id_kind):
    frame = _ratings(id_kind)
    model = MPMA(2, n_warmup=3, max_iter=5, random_state=0).fit(frame)
    model.save(tmp_path / "m.nc")
    loaded = MPMA.load(tmp_path / "m.nc")
    assert loaded.user_ids_.dtype == model.user_ids_.dtype
    assert [type(u) for u in loaded.user_ids_] == [type(u) for u in model.user_ids_]
    users, items = _ratings_args(frame)
    assert (loaded._encode_pairs(users, items)[0] >= 0).all()  # no id became unseen
    assert_array_equal(loaded.predict(users, items), model.predict(users, items), strict=True)
    pd.testing.assert_frame_equal(loaded.recommend(users[0], 3), model.recommend(users[0], 3))


# --------------------------------------------------------------------- comparisons
def assert_same(a, b, where: str = "model") -> None:
    """``a`` and ``b`` are equal and of the same types throughout: estimators by parameters
    and fitted attributes, arrays by value, shape and dtype (object elements by type too),
    dataclasses field by field, xarray objects identical, PyMC models by variables and
    coordinates, RandomStates by state."""
    if isinstance(a, BaseEstimator):
        assert type(a) is type(b), f"{where}: {type(a).__name__} != {type(b).__name__}"
        assert_same(a.get_params(deep=False), b.get_params(deep=False), f"{where}.get_params()")
        fitted_a, fitted_b = ({k: v for k, v in vars(e).items() if k.endswith("_")} for e in (a, b))
        assert sorted(fitted_a) == sorted(fitted_b), f"{where}: fitted attributes differ"
        for key in fitted_a:
            assert_same(fitted_a[key], fitted_b[key], f"{where}.{key}")
        return
    assert type(a) is type(b), f"{where}: {type(a).__name__} != {type(b).__name__}"
    if type(a).__module__.startswith("pymc") and type(a).__name__ == "Model":
        assert list(a.named_vars) == list(b.named_vars), where
        assert_same(dict(a.coords), dict(b.coords), f"{where}.coords")
    elif isinstance(a, xr.DataTree | xr.Dataset | xr.DataArray):
        xr.testing.assert_identical(a, b)
    elif isinstance(a, pd.DataFrame):
        pd.testing.assert_frame_equal(a, b)
    elif isinstance(a, np.ndarray):
        assert (a.dtype, a.shape) == (b.dtype, b.shape), (
            f"{where}: {a.dtype} {a.shape} != {b.dtype} {b.shape}"
        )
        assert np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"), where
        if a.dtype == object:
            for i, (x, y) in enumerate(zip(a.ravel(), b.ravel(), strict=True)):
                assert_same(x, y, f"{where}.flat[{i}]")
    elif isinstance(a, np.random.RandomState):
        assert_same(a.get_state(), b.get_state(), f"{where}.get_state()")
    elif dataclasses.is_dataclass(a):
        for field in dataclasses.fields(a):
            assert_same(getattr(a, field.name), getattr(b, field.name), f"{where}.{field.name}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), f"{where}: length {len(a)} != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, dict):
        assert list(a) == list(b), f"{where}: keys {list(a)} != {list(b)}"
        for key in a:
            assert_same(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, float) and math.isnan(a):
        assert math.isnan(b), where
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"
