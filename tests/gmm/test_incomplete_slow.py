"""Slow checks of the Bayesian GMM with missing entries and measurement errors.

Recorded runs: ``BENCHMARKS.md`` (section "Bayesian GMM with missing entries").
"""

import warnings

import numpy as np
import pytest

from bayesgmm import BayesGMM
from bayesgmm.gmm.calibration import run_sbc, simulate_from_prior


@pytest.mark.slow
def test_sbc_with_missing_entries_and_imputation_coverage():
    """100 SBC replications of a K = 2, D = 2 "full" model with 20% of the entries missing
    (the settings of ``benchmarks/sbc_missing.py``): every rank-uniformity test passes at
    family-wise level 0.05, and the central 90% posterior predictive intervals of the
    removed entries cover 88-92% of them (3,900 entries: binomial sd 0.5%)."""
    sim = simulate_from_prior(100, 100, 2, seed=2026, missing_fraction=0.2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = run_sbc(sim, n_ranks=99, chains=2, draws=1000, tune=1000, seed=2026)
    table = result.table()
    assert table["passed"].all(), table
    assert 0.88 <= result.imputation_coverage <= 0.92, result.imputation_coverage


@pytest.mark.slow
def test_bayesgmm_with_missing_entries_and_noise_end_to_end(tmp_path):
    """Fit with 20% NaN and known heteroscedastic errors: the cross-check agrees with the
    EM of the same model, the posterior covers the true (deconvolved) means, deconvolution
    moves rows towards their true positions, and the fit saves and loads back."""
    rng = np.random.default_rng(11)
    n = 400
    means = np.array([[-2.0, 0.0], [2.0, 1.5]])
    covs = np.array([[[0.6, 0.2], [0.2, 0.5]], [[0.4, -0.1], [-0.1, 0.7]]])
    z = rng.integers(0, 2, n)
    truth = means[z] + np.einsum("nij,nj->ni", np.linalg.cholesky(covs)[z], rng.normal(size=(n, 2)))
    err_var = rng.uniform(0.05, 0.5, size=(n, 2))
    X = truth + rng.normal(size=(n, 2)) * np.sqrt(err_var)
    X[rng.random((n, 2)) < 0.2] = np.nan
    X[np.isnan(X).all(axis=1), 1] = truth[np.isnan(X).all(axis=1), 1]

    model = BayesGMM(2, random_state=3, progressbar=False).fit(X, noise_cov=err_var)
    assert model.crosscheck_.verdict == "agree", model.crosscheck_.to_text()
    post = model.idata_["posterior"]["means"].values.reshape(-1, 2, 2)
    low, high = np.quantile(post, [0.005, 0.995], axis=0)
    assert np.all((low <= means) & (means <= high)), (low, high)

    dec = model.deconvolve(X, err_var, random_state=0)
    observed = ~np.isnan(X)
    assert np.mean((dec.mean - truth)[observed] ** 2) < np.mean((X - truth)[observed] ** 2)

    path = tmp_path / "fit.nc"
    model.save(path)
    loaded = BayesGMM.load(path)
    np.testing.assert_array_equal(
        loaded.idata_["observed_data"]["noise_cov"].values,
        model.idata_["observed_data"]["noise_cov"].values,
    )
    np.testing.assert_allclose(
        loaded.score_samples(X[:5], noise_cov=err_var[:5]),
        model.score_samples(X[:5], noise_cov=err_var[:5]),
    )
