"""notebooks/04_anomaly_detection.ipynb executes; detections against the injected truth."""

import pytest

from tests.notebooks.notebook_runner import run_notebook


@pytest.fixture(scope="module")
def results():
    return run_notebook("04_anomaly_detection.ipynb")


def test_injected_anomalies_are_found(results):
    assert results["n_injected"] >= 10
    assert results["em_recall"] >= 0.9
    assert results["bayes_recall_any"] >= 0.9
    assert results["bayes_recall_confident"] >= 0.8
    assert results["verdict"] == "agree"


def test_bayesian_detector_hedges_instead_of_false_alarms(results):
    # at a 1% threshold about 1% of normal points fall below it by chance; the Bayesian
    # detector calls at most as many of them confidently as the EM detector flags
    assert results["bayes_false_confident"] <= results["em_false_alarms"]
    assert results["em_false_alarms_not_confident"] == results["em_false_alarms"]
    assert results["bayes_false_confident"] <= 0.03 * results["n_normal_test"]
    assert 0 < results["n_uncertain"] < 0.1 * results["n_normal_test"]
