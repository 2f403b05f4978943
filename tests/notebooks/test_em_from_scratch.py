"""notebooks/01_em_from_scratch.ipynb executes; its EM equals ours and scikit-learn's."""

import pytest

from tests.notebooks.notebook_runner import run_notebook


@pytest.fixture(scope="module")
def results():
    return run_notebook("01_em_from_scratch.ipynb")


def test_hand_written_em_climbs_to_the_mclust_optimum(results):
    assert results["min_increment"] >= 0  # EM never decreases the log-likelihood
    assert results["final_loglik"] == pytest.approx(-1130.264, abs=1e-3)


def test_libraries_reproduce_the_hand_written_em(results):
    for key in ("bayesgmm_loglik", "sklearn_loglik"):
        assert results[key] == pytest.approx(results["final_loglik"], rel=1e-10)
    assert results["max_mean_diff_bayesgmm"] < 1e-8
    assert results["max_mean_diff_sklearn"] < 1e-8
