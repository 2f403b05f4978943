"""Bad inputs of BayesGMM and the anomaly helpers (issue 13's corpus): each gives the right
answer, or an error naming the parameter and the fix, before any EM/MAP/NUTS work."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from scipy.special import softmax
from sklearn.exceptions import NotFittedError

from bayesgmm import BayesGMM


@pytest.fixture(scope="module")
def X():
    X = np.random.default_rng(0).normal(size=(200, 2))
    X[1::2] += 6
    return X


def _fixed_posterior(weights, means, chols) -> BayesGMM:
    """A BayesGMM whose posterior is the given draws (no sampling): (draw, ...) arrays."""
    model = BayesGMM(2)
    dims = ("chain", "draw")
    post = xr.Dataset(
        {
            "weights": ((*dims, "component"), np.asarray(weights)[None]),
            "means": ((*dims, "component", "feature"), np.asarray(means)[None]),
            "chol_cov": ((*dims, "component", "feature", "feature_"), np.asarray(chols)[None]),
        }
    )
    model.idata_ = xr.DataTree.from_dict({"posterior": post})
    model.n_features_in_ = 2
    return model


# ------------------------------------------------------------- (14) not fitted
@pytest.mark.parametrize(
    "method",
    ["predict", "predict_proba", "score_samples", "score", "responsibilities",
     "log_density_draws", "responsibility_summary"],
)  # fmt: skip
def test_unfitted_methods_raise_not_fitted(X, method):
    with pytest.raises(NotFittedError, match="not fitted"):
        getattr(BayesGMM(2), method)(X)


@pytest.mark.parametrize("method", ["sample", "loo"])
def test_unfitted_sample_and_loo_raise_not_fitted(method):
    with pytest.raises(NotFittedError, match="not fitted"):
        getattr(BayesGMM(2), method)()


# --------------------------------------------------------------- (16) seeds
@pytest.mark.parametrize(
    ("seed", "error"),
    [("abc", TypeError), (2.5, TypeError), (-1, ValueError), (2**40, ValueError)],
)
def test_bad_random_state_is_named(X, seed, error):
    with pytest.raises(error, match=r"random_state must be None or an integer in \[0, 2\*\*32"):
        BayesGMM(2, random_state=seed).fit(X)


def test_bad_sample_random_state_is_named():
    model = _fixed_posterior([[0.5, 0.5]], [[[0, 0], [1, 1]]], [np.stack([np.eye(2)] * 2)])
    with pytest.raises(TypeError, match="random_state must be None or an integer"):
        model.sample(2, random_state="abc")


# ---------------------------------------------------- (7) tune, draws, chains
def test_tune_zero_with_nutpie_is_refused(X):
    with pytest.raises(ValueError, match=r"tune must be an integer >= 1 .*sampler='pymc'"):
        BayesGMM(2, tune=0).fit(X)


@pytest.mark.parametrize("name", ["draws", "chains", "tune"])
@pytest.mark.parametrize("value", [-1, 2.5, "10"])
def test_bad_draws_chains_tune_are_named(X, name, value):
    with pytest.raises(ValueError, match=f"{name} must be an integer >= "):
        BayesGMM(2, **{name: value}).fit(X)


# --------------------------------------------------- (15) order_feature
@pytest.mark.parametrize("value", [5, -1, "0", 1.0])
def test_bad_order_feature_is_refused_before_em(X, value):
    model = BayesGMM(2, order_feature=value)
    with pytest.raises(ValueError, match="order_feature"):
        model.fit(X)
    assert not hasattr(model, "em_")  # refused before any work


# ------------------------------------------------------------ (22) priors
def test_priors_of_the_wrong_type_are_named(X):
    model = BayesGMM(2, priors=[1, 2])
    with pytest.raises(TypeError, match="priors must be a dict of prior overrides or None"):
        model.fit(X)
    assert not hasattr(model, "em_")


def test_unknown_prior_key_is_refused_before_em(X):
    model = BayesGMM(2, priors={"foo": 1.0})
    with pytest.raises(ValueError, match=r"Unknown prior key\(s\) \['foo'\]"):
        model.fit(X)
    assert not hasattr(model, "em_")


# ------------------------------------------------------- (17) data scale
def test_data_too_large_in_scale_names_x(X):
    with pytest.raises(ValueError, match=r"X is too large in scale: .*rescale X") as info:
        BayesGMM(2).fit(X * 1e300)
    assert "reg_covar" not in str(info.value)


# ------------------------------------------------- (9) far points, Bayesian
@pytest.mark.parametrize("t", [1e100, 1e160, 1e200, 1e300])
def test_far_point_posterior_responsibilities_closed_form(t):
    """Two posterior draws; in each, components of equal precision along x: the
    responsibilities are a softmax independent of t (closed form), averaged over draws."""
    weights = np.array([[0.3, 0.7], [0.6, 0.4]])
    means = np.array([[[0.0, 0.0], [0.0, 1.0]], [[0.0, 0.5], [0.0, -1.0]]])
    # covariance Cholesky factors: precisions diag(1, 1) and diag(1, 4)
    chol = np.stack([np.eye(2), np.diag([1.0, 0.5])])
    model = _fixed_posterior(weights, means, np.stack([chol, chol]))
    expected = [
        softmax(np.log(w) + np.log([1.0, 2.0]) - 0.5 * np.array([1.0, 4.0]) * m[:, 1] ** 2)
        for w, m in zip(weights, means, strict=True)
    ]
    proba = model.predict_proba([[t, 0.0], [-t, 0.0]])
    np.testing.assert_allclose(proba, [np.mean(expected, axis=0)] * 2, rtol=1e-12)
    assert model.predict([[t, 0.0]]).tolist() == [int(np.argmax(np.mean(expected, axis=0)))]
    assert np.isfinite(model.responsibilities([[t, 0.0]]).values).all()


# -------------------------------------------------------- (6) small data
@pytest.mark.filterwarnings("ignore:component")
@pytest.mark.parametrize("n", [2, 4, 10])
def test_small_data_samples(X, n):
    """With N = 2, 4 or 10 and K = 2 the MAP splits the data into equal halves, where the
    gradient of the weights is exactly 0 and nutpie refused to start; the sampler now
    starts a rounding-sized step away."""
    model = BayesGMM(2, tune=50, draws=50, progressbar=False, random_state=0).fit(X[:n])
    assert dict(model.idata_.posterior["weights"].sizes) == {"chain": 4, "draw": 50, "component": 2}
    assert np.isfinite(model.idata_.posterior["means"].values).all()


# ------------------------------------------------- (22, 24) anomaly helpers
def test_anomaly_scores_with_a_non_model_names_the_argument(X):
    from bayesgmm.gmm.anomaly import anomaly_scores

    with pytest.raises(TypeError, match=r"model must be a fitted GaussianMixture or BayesGMM"):
        anomaly_scores("abc", X)


@pytest.mark.parametrize("threshold", [np.nan, np.inf, -np.inf])
def test_flag_anomalies_refuses_non_finite_threshold(threshold):
    import pandas as pd

    from bayesgmm.gmm.anomaly import flag_anomalies

    scores = pd.DataFrame({"log_density": [0.0, 1.0], "low": [-1.0, 0.5], "high": [0.5, 2.0]})
    with pytest.raises(ValueError, match="threshold must be a finite number"):
        flag_anomalies(scores, threshold=threshold)
    assert flag_anomalies(scores, threshold=0.0).tolist() == ["uncertain", "normal"]


def test_flag_anomalies_needs_the_scores_frame():
    from bayesgmm.gmm.anomaly import flag_anomalies

    with pytest.raises(TypeError, match=r"scores must be the DataFrame of anomaly_scores"):
        flag_anomalies(np.array([1.0, 2.0]), threshold=0.0)


@pytest.mark.parametrize("value", [5, "0"])
def test_fit_point_estimates_checks_order_feature_first(X, value):
    from bayesgmm.gmm.estimator import fit_point_estimates

    with pytest.raises(ValueError, match="order_feature"):
        fit_point_estimates(X, 2, order_feature=value)
