"""notebooks/08_dagmm.ipynb executes (reduced setting: 840 rows, 40 epochs, 2 x 200 NUTS
draws) and its numbers are sane."""

import os

import pytest

from tests.notebooks.notebook_runner import run_notebook


@pytest.fixture(scope="module")
def results():
    return run_notebook("08_dagmm.ipynb", env={**os.environ, "BAYESGMM_REDUCED": "1"})


def test_training_lowers_the_objective(results):
    assert results["reduced"] and results["n_epochs"] >= 1
    assert results["train_last"]["total"] < results["train_first"]["total"]
    assert results["train_last"]["reconstruction"] < results["train_first"]["reconstruction"]


def test_table_and_bayesian_calls(results):
    f1 = results["f1"]
    assert set(f1) == {
        "DAGMM", "DAGMM z, mixture refitted by EM", "DAGMM, TUNED_SETTINGS",
        "two-step (AE, then GMM)", "PCA + GMM", "GMM (raw features)", "IsolationForest",
    }  # fmt: skip
    assert all(0.0 <= v <= 1.0 for v in f1.values())
    # better than flagging at random (F1 = the anomaly share, about 0.09)
    assert f1["DAGMM"] > 0.2
    labels = results["labels"]
    assert sum(labels.values()) == results["n_test"]
    assert labels.get("anomaly", 0) >= 1
    assert results["intervals_ordered"]
