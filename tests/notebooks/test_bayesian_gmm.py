"""notebooks/02_bayesian_gmm.ipynb executes, and its numbers are right."""

import numpy as np
import pytest

from tests.notebooks.notebook_runner import run_notebook


@pytest.fixture(scope="module")
def results():
    return run_notebook("02_bayesian_gmm.ipynb")


def test_em_matches_mclust(results):
    assert results["em_loglik"] == pytest.approx(-1130.264, abs=1e-3)


def test_posterior_agrees_with_em(results):
    assert results["verdict"] == "agree"
    assert results["max_abs_z"] < 3
    assert results["max_rhat"] <= 1.01
    assert results["min_ess_bulk"] > 1000
    assert results["divergences"] == 0
    assert results["n_modes"] == 1
    # component means near the EM estimate (eruption minutes, waiting minutes)
    np.testing.assert_allclose(results["posterior_means"], [2.036, 54.48, 4.29, 79.97], rtol=0.01)


def test_uncertain_points_and_loo(results):
    # a handful of eruptions between the clusters carry real membership uncertainty
    assert 1 <= results["n_uncertain"] <= 30
    # elpd_loo a little below the EM log-likelihood (-1130.26) by about p_loo ~ 11
    assert -1150 < results["elpd_loo"] < -1135
