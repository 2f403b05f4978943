"""EM with missing entries and measurement errors (bayesgmm.em.missing, issue 16), against
independent computations: scipy's multivariate normal on each row's observed coordinates,
the Ghahramani-Jordan / Bovy et al. M-step written out row by row, closed forms of one
Gaussian, astroML's XDGMM, and simulations with known truth."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from bayesgmm import GaussianMixture
from bayesgmm.em import missing as missing_em
from bayesgmm.em.driver import m_step
from bayesgmm.em.gaussian import full_covariances
from bayesgmm.em.missing import (
    IncompleteData,
    incomplete_sweep,
    observed_mean_and_covariance,
)
from bayesgmm.em.sweep import Design, MixtureParams, em_sweep

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
ignore_convergence = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


# ----------------------------------------------------------------------------- helpers
def _truth(n_features: int = 3):
    weights = np.array([0.3, 0.7])
    means = np.array([[0.0, 0.0, 0.0], [4.0, -3.0, 2.0]])[:, :n_features]
    a = np.array([[1.0, 0.6, 0.2], [0.6, 1.5, -0.3], [0.2, -0.3, 0.8]])
    b = np.array([[0.5, -0.2, 0.1], [-0.2, 0.4, 0.0], [0.1, 0.0, 1.2]])
    covs = np.stack([a, b])[:, :n_features, :n_features]
    return weights, means, covs


def _simulate(n: int, seed: int, n_features: int = 3):
    rng = np.random.default_rng(seed)
    weights, means, covs = _truth(n_features)
    z = rng.choice(2, size=n, p=weights)
    chol = np.linalg.cholesky(covs)
    X = means[z] + np.einsum("nde,ne->nd", chol[z], rng.standard_normal((n, n_features)))
    return X, z


def _remove(X: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """MCAR: each entry missing with probability ``fraction``."""
    out = X.copy()
    out[np.random.default_rng(seed).random(X.shape) < fraction] = np.nan
    return out


def _random_noise(n: int, d: int, seed: int, scale: float = 0.5) -> np.ndarray:
    a = np.random.default_rng(seed).normal(size=(n, d, d)) * scale
    return a @ np.swapaxes(a, 1, 2)


def _fixed(covariance_type: str, n_features: int = 3, **kw) -> GaussianMixture:
    """A fitted GaussianMixture holding exactly given (non-trivial) parameters."""
    weights, means, covs = _truth(n_features)
    precisions = np.linalg.inv(covs)
    precisions = {
        "full": precisions,
        "tied": precisions[1],
        "diag": np.diagonal(precisions, axis1=1, axis2=2),
        "spherical": np.diagonal(precisions, axis1=1, axis2=2).mean(axis=1),
    }[covariance_type]
    X, _ = _simulate(50, 9, n_features)
    return GaussianMixture(
        2,
        covariance_type=covariance_type,
        max_iter=0,
        weights_init=weights,
        means_init=means,
        precisions_init=precisions,
        reg_covar=0.0,
        **kw,
    ).fit(X)


def _full_covs(gm: GaussianMixture) -> np.ndarray:
    return np.asarray(
        full_covariances(gm.covariances_, gm.covariance_type, gm.n_components, gm.n_features_in_)
    )


def _reference_log_density(gm, X, noise=None):
    """log p(x_io) row by row with scipy (0 for a row with nothing observed)."""
    covs = _full_covs(gm)
    out = []
    for i, x in enumerate(X):
        o = ~np.isnan(x)
        if not o.any():
            out.append(0.0)
            continue
        terms = []
        for k in range(gm.n_components):
            cov = covs[k] if noise is None else covs[k] + noise[i]
            dist = multivariate_normal(gm.means_[k][o], cov[np.ix_(o, o)])
            terms.append(np.log(gm.weights_[k]) + dist.logpdf(x[o]))
        out.append(logsumexp(terms))
    return np.array(out)


def _reference_em_step(gm, X, noise, weight):
    """One EM step of Ghahramani & Jordan / Bovy et al., row by row with np.linalg:
    full-covariance expected scatter per component, and the new means."""
    covs, means = _full_covs(gm), gm.means_
    n, d = X.shape
    log_r = _reference_log_density_terms(gm, X, noise)
    r = np.exp(log_r - logsumexp(log_r, axis=1, keepdims=True)) * weight[:, None]
    b = np.zeros((n, gm.n_components, d))
    B = np.zeros((n, gm.n_components, d, d))
    for i, x in enumerate(X):
        o = ~np.isnan(x)
        for k in range(gm.n_components):
            S = np.zeros((d, d)) if noise is None else noise[i]
            T = (covs[k] + S)[np.ix_(o, o)]
            gain = covs[k][:, o] @ np.linalg.inv(T)
            b[i, k] = means[k] + gain @ (x[o] - means[k][o])
            B[i, k] = covs[k] - gain @ covs[k][o, :]
    nk = r.sum(axis=0)
    new_means = np.einsum("nk,nkd->kd", r, b) / nk[:, None]
    dev = b - new_means[None]
    scatter = np.einsum("nk,nkd,nke->kde", r, dev, dev) + np.einsum("nk,nkde->kde", r, B)
    return nk, new_means, scatter


def _reference_log_density_terms(gm, X, noise):
    covs = _full_covs(gm)
    out = np.empty((len(X), gm.n_components))
    for i, x in enumerate(X):
        o = ~np.isnan(x)
        for k in range(gm.n_components):
            cov = covs[k] if noise is None else covs[k] + noise[i]
            dist = multivariate_normal(gm.means_[k][o], cov[np.ix_(o, o)])
            out[i, k] = np.log(gm.weights_[k]) + dist.logpdf(x[o])
    return out


# ------------------------------------------------------------- log-likelihood vs scipy
@pytest.mark.parametrize("noise_kind", [None, "full", "diag"])
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_log_likelihood_equals_scipy_on_observed_coordinates(covariance_type, noise_kind):
    gm = _fixed(covariance_type)
    X = _remove(_simulate(60, 1)[0], 0.35, 2)
    X[0] = np.nan  # nothing observed
    X[1, :] = [0.5, np.nan, np.nan]
    noise = None
    if noise_kind == "full":
        noise = _random_noise(len(X), 3, 3)
    elif noise_kind == "diag":
        noise = np.random.default_rng(3).uniform(0.0, 0.8, size=X.shape)
    dense = noise if noise_kind != "diag" else noise[:, :, None] * np.eye(3)
    got = gm.score_samples(X, noise_cov=noise)
    assert_allclose(got, _reference_log_density(gm, X, dense), rtol=1e-10, atol=1e-10)
    assert got[0] == 0.0
    proba = gm.predict_proba(X, noise_cov=noise)
    empty = np.isnan(X).all(axis=1)
    assert_allclose(proba[empty], np.broadcast_to(gm.weights_, (empty.sum(), 2)), rtol=1e-12)
    reference = _reference_log_density_terms(
        gm, X[~empty], None if noise is None else dense[~empty]
    )
    assert_allclose(
        proba[~empty], np.exp(reference - logsumexp(reference, axis=1, keepdims=True)), atol=1e-10
    )
    assert gm.score(X, noise_cov=noise) == pytest.approx(got.mean(), rel=1e-12)
    assert_array_equal(gm.predict(X, noise_cov=noise), proba.argmax(axis=1))


# ------------------------------------------------------- the M-step, row by row
@pytest.mark.parametrize("noise_kind", [None, "full"])
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_one_em_step_equals_the_row_by_row_formulas(covariance_type, noise_kind):
    gm = _fixed(covariance_type)
    X = _remove(_simulate(80, 4)[0], 0.3, 5)
    X = X[~np.isnan(X).all(axis=1)]
    noise = None if noise_kind is None else _random_noise(len(X), 3, 6, scale=0.3)
    weight = np.random.default_rng(7).uniform(0.2, 2.0, size=len(X))
    nk, means, scatter = _reference_em_step(gm, X, noise, weight)
    params = MixtureParams(gm.weights_, gm.means_, gm.covariances_, gm.precisions_cholesky_)
    data = IncompleteData(X, weight, noise)
    log_likelihood, moments = incomplete_sweep(data, params, covariance_type)
    expected_ll = weight @ _reference_log_density(gm, X, noise)
    assert log_likelihood == pytest.approx(expected_ll, rel=1e-12)
    assert_allclose(moments.resp_sum, nk, rtol=1e-12)
    assert_allclose(moments.means, means, rtol=1e-10, atol=1e-12)
    expected = {
        "full": scatter,
        "tied": scatter,
        "diag": np.diagonal(scatter, axis1=1, axis2=2),
        "spherical": np.trace(scatter, axis1=1, axis2=2),
    }[covariance_type]
    assert_allclose(moments.scatter, expected, rtol=1e-10, atol=1e-10)
    # and the estimator's first iteration is the M-step of these statistics
    new = m_step(moments, covariance_type, 0.0, None)
    one = GaussianMixture(
        2, covariance_type=covariance_type, max_iter=1, tol=0.0, reg_covar=0.0,
        weights_init=gm.weights_, means_init=gm.means_, precisions_init=gm.precisions_,
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        one.fit(X, sample_weight=weight, noise_cov=noise)
    assert_allclose(one.means_, new.means, rtol=1e-12)
    assert_allclose(one.covariances_, new.covariances, rtol=1e-12)
    assert_allclose(one.weights_, nk / nk.sum(), rtol=1e-12)


# --------------------------------------------------------------- monotone EM
@ignore_convergence
@pytest.mark.parametrize("prior", [None, "default"])
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_em_raises_the_objective_monotonically(covariance_type, prior):
    X = _remove(_simulate(400, 8)[0], 0.3, 9)
    X = X[~np.isnan(X).all(axis=1)]
    noise = np.random.default_rng(10).uniform(0.0, 0.3, size=X.shape)
    for noise_cov in (None, noise):
        gm = GaussianMixture(
            2, covariance_type=covariance_type, prior=prior, reg_covar=0.0, tol=0.0,
            max_iter=40, random_state=0,
        ).fit(X, noise_cov=noise_cov)  # fmt: skip
        trace = np.asarray(gm.lower_bounds_)
        assert np.all(np.diff(trace) >= -1e-12 * np.abs(trace[1:])), np.diff(trace).min()
        assert trace[-1] > trace[0]
        # lower_bounds_ is the observed-data log-likelihood per sample (+ log prior / N)
        if prior is None:
            last = GaussianMixture(
                2, covariance_type=covariance_type, reg_covar=0.0, max_iter=39, tol=0.0,
                random_state=0,
            ).fit(X, noise_cov=noise_cov)  # fmt: skip
            assert trace[-1] == pytest.approx(last.score(X, noise_cov=noise_cov), rel=1e-10)


# ------------------------------------------- no NaN and no noise: exactly as before
@ignore_convergence
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_complete_noise_free_data_take_the_complete_data_path_exactly(covariance_type, monkeypatch):
    X, _ = _simulate(300, 11)
    kw = {"covariance_type": covariance_type, "random_state": 0, "max_iter": 30}
    reference = GaussianMixture(2, nan_policy="raise", **kw).fit(X)
    calls = []
    monkeypatch.setattr(missing_em.IncompleteData, "__init__", lambda *a, **k: calls.append(1))
    for noise in (None, np.zeros((300, 3)), np.zeros((300, 3, 3))):
        gm = GaussianMixture(2, **kw).fit(X, noise_cov=noise)
        for name in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
            assert_array_equal(getattr(gm, name), getattr(reference, name), strict=True)
        assert gm.lower_bounds_ == reference.lower_bounds_
        assert_array_equal(gm.score_samples(X, noise_cov=noise), reference.score_samples(X))
    assert calls == []


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_incomplete_sweep_on_complete_rows_equals_the_complete_data_sweep(covariance_type):
    gm = _fixed(covariance_type)
    X, _ = _simulate(500, 12)
    params = MixtureParams(gm.weights_, gm.means_, gm.covariances_, gm.precisions_cholesky_)
    ll, moments = em_sweep(Design(X, covariance_type), params)
    ll2, moments2 = incomplete_sweep(IncompleteData(X), params, covariance_type)
    assert ll2 == pytest.approx(ll, rel=1e-12)
    for a, b in zip(moments, moments2, strict=True):
        assert_allclose(b, a, rtol=1e-10, atol=1e-10)


def test_tags_follow_nan_policy():
    assert GaussianMixture().__sklearn_tags__().input_tags.allow_nan is True
    assert GaussianMixture(nan_policy="raise").__sklearn_tags__().input_tags.allow_nan is False
    with pytest.raises(ValueError, match=r"nan_policy must be one of \('marginalize', 'raise'\)"):
        GaussianMixture(nan_policy="omit").fit(np.eye(3))


# ---------------------------------------------------------- weights and labels
@ignore_convergence
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_integer_weights_equal_repeated_rows_with_nan_and_noise(covariance_type):
    X = _remove(_simulate(120, 13)[0], 0.3, 14)
    X = X[~np.isnan(X).all(axis=1)]
    noise = _random_noise(len(X), 3, 15, scale=0.3)
    counts = np.random.default_rng(16).integers(1, 4, size=len(X))
    gm = _fixed(covariance_type)
    kw = {
        "covariance_type": covariance_type, "tol": 0.0, "max_iter": 15,
        "weights_init": gm.weights_, "means_init": gm.means_, "precisions_init": gm.precisions_,
    }  # fmt: skip
    weighted = GaussianMixture(2, **kw).fit(X, sample_weight=counts, noise_cov=noise)
    repeated = GaussianMixture(2, **kw).fit(
        np.repeat(X, counts, axis=0), noise_cov=np.repeat(noise, counts, axis=0)
    )
    for name in ("weights_", "means_", "covariances_"):
        assert_allclose(getattr(weighted, name), getattr(repeated, name), rtol=1e-10)


def test_fit_predict_equals_fit_then_predict_with_nan():
    X = _remove(_simulate(300, 17)[0], 0.3, 18)
    with pytest.warns(UserWarning, match="every coordinate missing"):
        labels = GaussianMixture(2, random_state=0).fit_predict(X)
    with pytest.warns(UserWarning, match="every coordinate missing"):
        gm = GaussianMixture(2, random_state=0).fit(X)
    assert_array_equal(labels, gm.predict(X))


# ------------------------------------------------------------- impute / deconvolve
def test_impute_is_the_gaussian_conditional_mean_for_one_component():
    X = _remove(_simulate(200, 19)[0], 0.3, 20)
    X = X[~np.isnan(X).all(axis=1)]
    gm = GaussianMixture(1, random_state=0).fit(X)
    mu, cov = gm.means_[0], gm.covariances_[0]
    imputed = gm.impute(X)
    for x, got in zip(X, imputed, strict=True):
        o, m = ~np.isnan(x), np.isnan(x)
        expected = x.copy()
        expected[m] = mu[m] + cov[np.ix_(m, o)] @ np.linalg.solve(cov[np.ix_(o, o)], x[o] - mu[o])
        assert_allclose(got, expected, rtol=1e-10, atol=1e-12)
    assert_array_equal(imputed[~np.isnan(X)], X[~np.isnan(X)])  # observed entries untouched


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_impute_is_the_responsibility_weighted_conditional_mean(covariance_type):
    gm = _fixed(covariance_type)
    X = _remove(_simulate(40, 21)[0], 0.4, 22)
    X[0] = np.nan
    covs = _full_covs(gm)
    log_r = np.where(np.isnan(X).all(axis=1)[:, None], np.log(gm.weights_), 0.0)
    rows = ~np.isnan(X).all(axis=1)
    log_r[rows] = _reference_log_density_terms(gm, X[rows], None)
    r = np.exp(log_r - logsumexp(log_r, axis=1, keepdims=True))
    imputed = gm.impute(X)
    for i, x in enumerate(X):
        o, m = ~np.isnan(x), np.isnan(x)
        expected = x.copy()
        expected[m] = sum(
            r[i, k] * (gm.means_[k][m] + covs[k][np.ix_(m, o)] @ np.linalg.solve(
                covs[k][np.ix_(o, o)], x[o] - gm.means_[k][o]))
            for k in range(2)
        )  # fmt: skip
        assert_allclose(imputed[i], expected, rtol=1e-10, atol=1e-12)
    assert_allclose(imputed[0], gm.weights_ @ gm.means_, rtol=1e-12)


def test_deconvolve_is_the_gaussian_posterior_mean_for_one_component():
    X, _ = _simulate(100, 23)
    X[3, 1] = np.nan
    noise = _random_noise(100, 3, 24, scale=0.4)
    noise[5] = 0.0  # measured exactly: returned unchanged
    gm = GaussianMixture(1, random_state=0).fit(X, noise_cov=noise)
    mu, cov = gm.means_[0], gm.covariances_[0]
    got = gm.deconvolve(X, noise)
    for i, x in enumerate(X):
        o = ~np.isnan(x)
        T = (cov + noise[i])[np.ix_(o, o)]
        expected = mu + cov[:, o] @ np.linalg.solve(T, x[o] - mu[o])
        assert_allclose(got[i], expected, rtol=1e-9, atol=1e-10)
    assert_array_equal(got[5], X[5])
    assert_array_equal(gm.deconvolve(X, None), gm.impute(X))


# ------------------------------------------------------------ extreme deconvolution
def _heteroscedastic(n: int, seed: int):
    """True points from a 2-D, 2-component mixture seen through per-row noise whose
    scale varies tenfold between rows (some rows are noisier than the signal)."""
    rng = np.random.default_rng(seed)
    weights = np.array([0.4, 0.6])
    means = np.array([[0.0, 0.0], [4.0, 3.0]])
    covs = np.array([[[1.0, 0.5], [0.5, 1.0]], [[0.5, -0.2], [-0.2, 0.3]]])
    z = rng.choice(2, size=n, p=weights)
    true = means[z] + np.einsum("nde,ne->nd", np.linalg.cholesky(covs)[z], rng.normal(size=(n, 2)))
    a = rng.normal(size=(n, 2, 2)) * rng.uniform(0.1, 1.0, size=(n, 1, 1))
    noise = a @ np.swapaxes(a, 1, 2)
    X = true + np.einsum("nde,ne->nd", np.linalg.cholesky(noise), rng.normal(size=(n, 2)))
    return X, noise, true, (weights, means, covs)


def test_extreme_deconvolution_recovers_the_true_covariances():
    """N = 20,000: the deconvolved covariances are within 0.07 (absolute, entries of order
    1; the standard error of a variance is about 0.015 here, inflated by the noise) of the
    truth, the means within 0.04, the weights within 0.02 (measured: 0.029, 0.011,
    0.0024); a plain fit (no noise_cov) overestimates the variances by far more."""
    X, noise, true, (weights, means, covs) = _heteroscedastic(20_000, 25)
    gm = GaussianMixture(2, random_state=0, tol=1e-6, max_iter=500).fit(X, noise_cov=noise)
    order = np.argsort(gm.means_[:, 0])
    gm.reorder_components(order)
    assert_allclose(gm.weights_, weights, atol=0.02)
    assert_allclose(gm.means_, means, atol=0.04)
    assert_allclose(gm.covariances_, covs, atol=0.07)
    plain = GaussianMixture(2, random_state=0).fit(X)
    plain.reorder_components(np.argsort(plain.means_[:, 0]))
    inflation = np.diagonal(plain.covariances_ - covs, axis1=1, axis2=2)
    assert inflation.min() > 0.2  # what deconvolution removes
    # the posterior means of the true points are closer to them than the noisy data
    rmse_deconvolved = np.sqrt(np.mean((gm.deconvolve(X, noise) - true) ** 2))
    assert rmse_deconvolved < 0.8 * np.sqrt(np.mean((X - true) ** 2))


@pytest.mark.slow
def test_extreme_deconvolution_agrees_with_astroml_from_the_same_start():
    """astroML's XDGMM (the ``bench`` extra, installed by the validation command, which
    runs this test) from the same start, 30 iterations, to 1e-6 (they agree to about
    1e-14)."""
    from astroML.density_estimation import XDGMM as xdgmm
    X, noise, _, _ = _heteroscedastic(300, 26)
    weights, means = np.array([0.5, 0.5]), np.array([[0.0, 0.0], [3.0, 3.0]])
    covs = np.stack([np.cov(X.T)] * 2)
    gm = GaussianMixture(
        2, tol=0.0, max_iter=30, reg_covar=0.0, weights_init=weights, means_init=means,
        precisions_init=np.linalg.inv(covs),
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gm.fit(X, noise_cov=noise)
    xd = xdgmm(2)
    xd.alpha, xd.mu, xd.V = weights.copy(), means.copy(), covs.copy()
    for _ in range(30):
        xd._EMstep(X, noise)  # astroML's fit() starts from its own GaussianMixture
    assert_allclose(gm.weights_, xd.alpha, rtol=1e-6, atol=1e-10)
    assert_allclose(gm.means_, xd.mu, rtol=1e-6, atol=1e-10)
    assert_allclose(gm.covariances_, xd.V, rtol=1e-6, atol=1e-10)
    assert gm.score(X, noise_cov=noise) * len(X) == pytest.approx(xd.logL(X, noise), rel=1e-10)


# ------------------------------------------------------------------- bad input
def test_rows_with_nothing_observed_are_dropped_with_a_warning():
    X = _remove(_simulate(200, 27)[0], 0.2, 28)
    X[[3, 10, 11]] = np.nan
    n_empty = int(np.isnan(X).all(axis=1).sum())
    with pytest.warns(UserWarning, match=rf"{n_empty} row\(s\) of X have every coordinate missing"):
        gm = GaussianMixture(2, random_state=0).fit(X)
    kept = GaussianMixture(2, random_state=0).fit(X[~np.isnan(X).all(axis=1)])
    assert_array_equal(gm.means_, kept.means_)
    assert_array_equal(gm.score_samples(X[[3, 10]]), [0.0, 0.0])
    assert_allclose(gm.predict_proba(X[[3]]), gm.weights_[None], rtol=1e-12)
    with pytest.raises(ValueError, match="every row of X has every coordinate missing"):
        GaussianMixture(2).fit(np.full((5, 2), np.nan))


def test_feature_never_observed_is_named():
    X = _simulate(50, 29)[0]
    X[:, 1] = np.nan
    with pytest.raises(ValueError, match=r"feature\(s\) \['column 1'\] have no observed value"):
        GaussianMixture(2).fit(X)
    X = _simulate(50, 29)[0]
    X[1:, 2] = np.nan  # one observed value: constant
    with pytest.raises(ValueError, match=r"feature\(s\) \['column 2'\] are constant"):
        GaussianMixture(2).fit(X)


def test_nan_policy_raise_refuses_nan_but_impute_accepts_it():
    X = _remove(_simulate(60, 30)[0], 0.2, 31)
    with pytest.raises(ValueError, match=r"X contains NaN .*drop or impute"):
        GaussianMixture(2, nan_policy="raise").fit(X)
    gm = GaussianMixture(2, nan_policy="raise", random_state=0).fit(_simulate(60, 30)[0])
    with pytest.raises(ValueError, match=r"X contains NaN"):
        gm.predict(X)
    assert not np.isnan(gm.impute(X)).any()
    with pytest.raises(ValueError, match=r"X contains inf"):
        GaussianMixture(2).fit(np.where(np.isnan(X), np.inf, X))


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda n: np.ones((n, 3, 2)), ValueError, r"noise_cov must have shape \(40, 3, 3\)"),
        (lambda n: np.ones((n - 1, 3)), ValueError, r"noise_cov must have shape .*got \(39, 3\)"),
        (lambda n: np.ones(n), ValueError, r"noise_cov must have shape"),
        (lambda n: -np.ones((n, 3)), ValueError, r"must be >= 0; row\(s\) \[0, 1, 2, 3, 4\]"),
        (
            lambda n: np.tile([[1.0, 0.5, 0], [0.0, 1, 0], [0, 0, 1]], (n, 1, 1)),
            ValueError,
            r"noise_cov must be symmetric .*row\(s\) \[0, 1",
        ),
        (
            lambda n: np.tile([[1.0, 2.0, 0], [2.0, 1, 0], [0, 0, 1]], (n, 1, 1)),
            ValueError,
            r"noise_cov must be positive semi-definite .*smallest eigenvalue -1",
        ),
        (
            lambda n: np.where(np.arange(n)[:, None] == 7, np.inf, np.ones((n, 3))),
            ValueError,
            r"noise_cov contains NaN or inf in row\(s\) \[7\]",
        ),
        (lambda n: [["a"] * 3] * n, TypeError, r"noise_cov must be a numeric array"),
    ],
    ids=["shape-3d", "rows", "1-D", "negative", "asymmetric", "not-psd", "inf", "strings"],
)
def test_bad_noise_cov_is_named(make, error, match):
    X = _simulate(40, 32)[0]
    with pytest.raises(error, match=match):
        GaussianMixture(2).fit(X, noise_cov=make(40))
    gm = GaussianMixture(2, random_state=0).fit(X)
    with pytest.raises(error, match=match):
        gm.score_samples(X, noise_cov=make(40))


def test_noise_cov_may_be_nan_only_at_missing_coordinates():
    X = _simulate(40, 33)[0]
    noise = np.full((40, 3), 0.1)
    X[2, 1] = np.nan
    noise[2, 1] = np.nan
    gm = GaussianMixture(2, random_state=0).fit(X, noise_cov=noise)
    dense = np.nan_to_num(noise)[:, :, None] * np.eye(3)
    assert_allclose(
        gm.score_samples(X, noise_cov=noise), _reference_log_density(gm, X, dense), rtol=1e-10
    )
    noise[3, 0] = np.nan
    with pytest.raises(ValueError, match=r"noise_cov contains NaN or inf in row\(s\) \[3\]"):
        gm.score_samples(X, noise_cov=noise)


def test_dask_input_refuses_noise_and_names_the_in_memory_path():
    da = pytest.importorskip("dask.array")
    X = _remove(_simulate(300, 34)[0], 0.1, 35)
    with pytest.raises(ValueError, match=r"X contains NaN .*marginalised .*for in-memory X only"):
        GaussianMixture(2).fit(da.from_array(X, chunks=100))
    dX = da.from_array(_simulate(300, 34)[0], chunks=100)
    with pytest.raises(TypeError, match="noise_cov is not supported for dask input"):
        GaussianMixture(2).fit(dX, noise_cov=np.ones((300, 3)))
    gm = GaussianMixture(2, random_state=0).fit(dX)
    with pytest.raises(TypeError, match="impute and deconvolve take in-memory arrays"):
        gm.impute(dX)


def test_unfitted_impute_and_deconvolve_raise_not_fitted():
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        GaussianMixture(2).impute(np.ones((2, 2)))
    with pytest.raises(NotFittedError):
        GaussianMixture(2).deconvolve(np.ones((2, 2)), np.ones((2, 2)))


def test_save_load_keeps_nan_policy(tmp_path):
    X = _remove(_simulate(100, 36)[0], 0.2, 37)
    X = X[~np.isnan(X).all(axis=1)]
    gm = GaussianMixture(2, nan_policy="marginalize", random_state=0).fit(X)
    gm.save(tmp_path / "m.nc")
    loaded = GaussianMixture.load(tmp_path / "m.nc")
    assert loaded.nan_policy == "marginalize"
    assert_array_equal(loaded.impute(X), gm.impute(X))


# ------------------------------------------------------------ the prior's defaults
def test_observed_mean_and_covariance_is_the_sample_moments_without_nan():
    X, _ = _simulate(200, 38)
    w = np.random.default_rng(39).uniform(0.5, 1.5, size=200)
    mean, cov = observed_mean_and_covariance(X, w)
    assert_allclose(mean, np.average(X, axis=0, weights=w), rtol=1e-12)
    assert_allclose(cov, np.cov(X.T, aweights=w, bias=True), rtol=1e-10)


def test_precisions_init_gives_the_matching_covariances():
    """max_iter=0 reports the initial parameters: covariances_ = inv(precisions_init)
    (the conversion through the Cholesky factor once returned inv(P' P))."""
    gm = _fixed("full")
    assert_allclose(gm.covariances_, _truth()[2], rtol=1e-12, atol=1e-15)
    assert_allclose(_fixed("tied").covariances_, _truth()[2][1], rtol=1e-12, atol=1e-15)


# ------------------------------------------------------ MCAR: converges to the truth
@pytest.mark.slow
@pytest.mark.parametrize("fraction", [0.1, 0.3, 0.5])
def test_mcar_estimates_converge_to_the_truth(fraction):
    """MCAR at 10/30/50%: the largest error of weights, means and covariances shrinks as
    N grows (about 1/sqrt(N)): below 0.3 at N = 1,000, 0.12 at N = 10,000 and 0.03 at
    N = 200,000 (measured at 10/30/50%: 0.094/0.110/0.104, 0.022/0.035/0.092,
    0.0078/0.011/0.019)."""
    weights, means, covs = _truth()
    errors = []
    for n, tolerance in ((1_000, 0.3), (10_000, 0.12), (200_000, 0.03)):
        X = _remove(_simulate(n, 40)[0], fraction, 41)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            gm = GaussianMixture(2, random_state=0, tol=1e-8, max_iter=1000).fit(X)
        gm.reorder_components(np.argsort(gm.means_[:, 0]))
        error = max(
            np.abs(gm.weights_ - weights).max(),
            np.abs(gm.means_ - means).max(),
            np.abs(gm.covariances_ - covs).max(),
        )
        assert error < tolerance, (n, error)
        errors.append(error)
    assert errors[-1] < errors[0] / 3


@ignore_convergence
def test_warm_start_continues_with_nan_and_noise():
    X = _remove(_simulate(200, 42)[0], 0.3, 43)
    X = X[~np.isnan(X).all(axis=1)]
    noise = np.random.default_rng(44).uniform(0.0, 0.2, size=X.shape)
    gm = _fixed("full")
    kw = {"tol": 0.0, "weights_init": gm.weights_, "means_init": gm.means_,
          "precisions_init": gm.precisions_}  # fmt: skip
    warm = GaussianMixture(2, max_iter=1, warm_start=True, **kw)
    warm.fit(X, noise_cov=noise)
    warm.fit(X, noise_cov=noise)
    once = GaussianMixture(2, max_iter=2, **kw).fit(X, noise_cov=noise)
    assert_allclose(warm.means_, once.means_, rtol=1e-12)
    assert_allclose(warm.covariances_, once.covariances_, rtol=1e-12)


def test_dataframe_with_nan_keeps_feature_names():
    pd = pytest.importorskip("pandas")
    X = _remove(_simulate(150, 45)[0], 0.2, 46)
    X = X[~np.isnan(X).all(axis=1)]
    frame = pd.DataFrame(X, columns=["length", "width", "depth"])
    gm = GaussianMixture(2, random_state=0).fit(frame)
    assert list(gm.feature_names_in_) == ["length", "width", "depth"]
    # (a DataFrame's array is Fortran-ordered: equal up to the order of the sums)
    assert_allclose(gm.means_, GaussianMixture(2, random_state=0).fit(X).means_, rtol=1e-12)
    with pytest.warns(UserWarning, match="does not have valid feature names"):
        from_array = gm.impute(X)
    assert_allclose(gm.impute(frame), from_array, rtol=1e-12)
    frame["depth"] = np.nan
    with (
        pytest.raises(ValueError, match=r"feature\(s\) \['depth'\] have no observed value"),
        pytest.warns(UserWarning, match="every coordinate missing"),  # rows now all NaN
    ):
        GaussianMixture(2).fit(frame)
