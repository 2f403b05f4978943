"""DAGMM the estimator: training lowers every loss term, seeds reproduce, the outlier-detector
conventions hold, save/load is exact, bad input is refused with a clear message.

One small model is fitted once for the module (a few seconds: the NumPy training step
compiles nothing).
"""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from bayesgmm import DAGMM
from bayesgmm.dagmm.mixture import loss_terms
from bayesgmm.dagmm.network import initial_weights
from tests.test_estimator_contract import assert_same

PARAMS = dict(
    n_components=2,
    encoder_widths=(8,),
    latent_dim=1,
    estimation_widths=(10,),
    batch_size=128,
    max_epochs=30,
    learning_rate=1e-3,
    contamination=0.05,
    random_state=0,
)
TERMS = ("reconstruction", "energy", "covariance_penalty")


@pytest.fixture(scope="module")
def X():
    """1000 standard normal rows in 10-D (the energy, a scale-dependent term that the
    covariance penalty pulls the other way, falls on this seed; it need not in general)."""
    return np.random.default_rng(0).normal(size=(1000, 10))


@pytest.fixture(scope="module")
def fitted(X):
    return DAGMM(**PARAMS).fit(X)


def test_training_reduces_every_loss_term(fitted, X):
    model = fitted
    arch = model._architecture(X.shape[1])
    start = initial_weights(arch, np.random.default_rng(PARAMS["random_state"]))
    Xs = (X - model.mean_) / model.scale_
    lambdas = {"lambda_energy": 0.1, "lambda_cov": 0.005}
    before = loss_terms(arch, start, Xs, **lambdas)
    after = loss_terms(arch, model.network_weights_, Xs, **lambdas)
    for term in (*TERMS, "total"):
        assert after[term] < before[term], (term, before[term], after[term])
    trace = model.trace_
    assert len(trace) == model.n_epochs_ and model.best_epoch_ >= 1
    assert {f"{p}_{t}" for p in ("train", "val") for t in TERMS} <= set(trace.columns)
    assert trace["val_total"].iloc[model.best_epoch_ - 1] == trace["val_total"].min()


def test_same_seed_same_fit_other_seed_other_fit(fitted, X):
    again = DAGMM(**PARAMS).fit(X)
    for a, b in zip(again.network_weights_, fitted.network_weights_, strict=True):
        assert_array_equal(a, b)
    other = DAGMM(**{**PARAMS, "random_state": 1, "max_epochs": 2}).fit(X)
    assert not np.array_equal(other.network_weights_[0], fitted.network_weights_[0])


def test_outlier_detector_conventions(fitted, X):
    model = fitted
    scores = model.score_samples(X)
    assert_allclose(scores, -model.energy(X))
    assert_allclose(model.decision_function(X), scores - model.offset_)
    labels = model.predict(X)
    assert set(np.unique(labels)) == {-1, 1}
    # the threshold is the contamination quantile of the training scores
    assert abs((labels == -1).mean() - PARAMS["contamination"]) <= 1 / len(X)
    z = model.transform(X)
    assert z.shape == (len(X), 3)
    assert_allclose(model.memberships(X).sum(axis=1), 1.0)
    # the mixture is the M-step of the training memberships (weights = mean membership)
    assert_allclose(model.weights_, model.memberships(X).mean(axis=0), rtol=1e-10)


def test_save_load_is_exact(fitted, X, tmp_path):
    path = tmp_path / "dagmm.nc"
    fitted.save(path)
    loaded = DAGMM.load(path)
    assert_same(loaded, fitted)
    assert_array_equal(loaded.score_samples(X), fitted.score_samples(X))
    assert_array_equal(loaded.transform(X), fitted.transform(X))
    assert_array_equal(loaded.predict(X), fitted.predict(X))


def test_clone_and_not_fitted(fitted, X, tmp_path):
    copy = clone(fitted)
    assert copy.get_params() == fitted.get_params()
    for method in ("score_samples", "decision_function", "predict", "transform"):
        with pytest.raises(NotFittedError):
            getattr(copy, method)(X)
    with pytest.raises(NotFittedError):
        copy.save(tmp_path / "x.nc")


def test_wrong_number_of_features(fitted):
    with pytest.raises(ValueError, match="X has 3 features, but DAGMM is expecting 10"):
        fitted.predict(np.ones((4, 3)))


def _with(X, row, col, value):
    X = X.copy()
    X[row, col] = value
    return X


@pytest.mark.parametrize(
    ("make_X", "params", "match"),
    [
        (lambda X: _with(X, 4, 2, np.nan), {}, r"X contains NaN .* first at \[4\]"),
        (lambda X: _with(X, slice(None), 3, 1.0), {}, r"\['column 3'\] are constant"),
        (lambda X: X[:100], {}, r"X has 100 rows, 90 of them for training .* batch_size=128"),
        (lambda X: X, {"contamination": 0.0}, r"contamination must be > 0"),
        (lambda X: X, {"contamination": 0.6}, r"contamination must be in \(0, 0.5\]"),
        (lambda X: X, {"contamination": -0.1}, r"contamination must be > 0"),
        (lambda X: X, {"dropout": 1.0}, r"dropout must be in \[0, 1\)"),
        (lambda X: X, {"activation": "gelu"}, r"activation must be one of"),
        (lambda X: X, {"encoder_widths": (8, 0)}, r"every entry of encoder_widths must be"),
        (lambda X: X, {"validation_fraction": 0.5}, r"validation_fraction must be in"),
        (lambda X: X[:, 0], {}, r"X must be 2-D"),
        (lambda X: X[:200], {"validation_fraction": 0.01}, r"validation split has 2 rows"),
    ],
    ids=[
        "nan",
        "constant",
        "few-rows",
        "c=0",
        "c=0.6",
        "c<0",
        "dropout",
        "activation",
        "widths",
        "validation",
        "1-D",
        "tiny-validation",
    ],
)
def test_bad_input_is_refused(X, make_X, params, match):
    with pytest.raises(ValueError, match=match):
        DAGMM(**{**PARAMS, **params}).fit(make_X(X))


def test_contamination_of_wrong_type():
    with pytest.raises(TypeError, match="contamination must be"):
        DAGMM(contamination="auto").fit(np.random.default_rng(0).normal(size=(50, 2)))


def test_a_singular_batch_covariance_is_an_error_naming_reg_covar(X):
    # batches of 2 rows: every component's covariance of the 3-D z has rank <= 1
    model = DAGMM(**{**PARAMS, "batch_size": 2, "max_epochs": 1, "validation_fraction": 0.0})
    with pytest.raises(FloatingPointError, match=r"diverged in epoch 1.*reg_covar"):
        model.fit(X[:20])


def test_dataframe_columns_are_named(X):
    import pandas as pd

    frame = pd.DataFrame(X[:300], columns=[f"f{i}" for i in range(10)])
    frame["year"] = 2024.0
    with pytest.raises(ValueError, match=r"\['year'\] are constant"):
        DAGMM(**PARAMS).fit(frame)


def test_collapsed_components_are_those_below_a_tenth_of_the_even_share():
    from bayesgmm.dagmm.estimator import collapsed_components

    assert_array_equal(collapsed_components([0.01, 0.98, 0.01]), [0, 2])
    assert_array_equal(collapsed_components([0.34, 0.33, 0.33]), [])
    # the even share of 4 components is 0.25; a tenth of it is 0.025
    assert_array_equal(collapsed_components([0.024, 0.026, 0.45, 0.5]), [0])


def test_a_collapsed_fit_warns_and_names_lambda_cov(fitted, X):
    import copy

    from bayesgmm.dagmm.estimator import MembershipCollapseWarning

    model = copy.deepcopy(fitted)
    z = model.transform(X)
    model.weights_ = np.array([0.995, 0.005])
    with pytest.warns(MembershipCollapseWarning, match=r"component\(s\) \[1\].*smaller lambda_cov"):
        model._warn_if_collapsed(z)
    # without the penalty the message does not blame it
    model.lambda_cov = 0.0
    with pytest.warns(MembershipCollapseWarning, match=r"no covariance penalty") as record:
        model._warn_if_collapsed(z)
    assert "smaller lambda_cov" not in str(record[0].message)
    model.weights_ = np.array([0.5, 0.5])
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", MembershipCollapseWarning)
        model._warn_if_collapsed(z)


@pytest.mark.parametrize("weights", [[], [[0.5, 0.5]], [0.5, np.nan]])
def test_collapsed_components_refuses_bad_weights(weights):
    from bayesgmm.dagmm.estimator import collapsed_components

    with pytest.raises(ValueError, match="non-empty 1-D array of finite mixture weights"):
        collapsed_components(weights)
