"""notebooks/03_choosing_k.ipynb executes (reduced K range and draws); its numbers are right."""

import numpy as np
import pytest

from bayesgmm import GaussianMixture
from bayesgmm.datasets import load_galaxies
from tests.notebooks.notebook_runner import run_notebook


@pytest.fixture(scope="module")
def results():
    return run_notebook("03_choosing_k.ipynb", env={"BAYESGMM_NOTEBOOK_QUICK": "1"})


def test_bic_matches_independent_em_fits(results):
    X = load_galaxies() / 1000
    assert results["k_range"] == [2, 3, 4]
    # BIC = -2 log L + p log n of independent EM fits with many restarts: the notebook's
    # (5 restarts) can only be at the same or a worse local optimum, and is the same for
    # K = 2, 3 where the likelihood has one dominant optimum
    n = len(X)
    for k, bic in zip(results["k_range"], results["bic"], strict=True):
        em = GaussianMixture(k, n_init=20, random_state=1).fit(X)
        best = -2 * em.score(X) * n + (3 * k - 1) * np.log(n)
        assert bic >= best - 1e-6
        if k < 4:
            assert bic == pytest.approx(best, abs=1e-3)
    assert results["choice_bic"] == 3


def test_loo_choice_and_weights(results):
    # two components predict clearly worse than the best
    assert -results["elpd_diff"][0] > 2 * results["se_diff"][0]
    assert results["choice_loo_parsimonious"] in (2, 3, 4)
    assert results["k_big"] == results["choice_loo_parsimonious"] + 1
    assert results["min_weight_mean"] < 0.15
