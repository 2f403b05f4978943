"""The Bayesian refit of DAGMM's latent mixture, the evaluation protocol, and the KDDCUP99
loader on a tiny fixture in scikit-learn's cache format (no network)."""

from __future__ import annotations

import joblib
import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from bayesgmm import DAGMM, GaussianMixture
from bayesgmm.dagmm.bayes import energy_intervals, fit_latent_posterior, flag_uncertain
from bayesgmm.dagmm.evaluation import (
    AnomalyData,
    load_kddcup99,
    make_synthetic,
    precision_recall_f1,
    protocol_split,
    top_fraction,
)


def test_protocol_split_and_metrics():
    data = make_synthetic(200, 20, 10, seed=1)
    split = protocol_split(data, seed=0)
    assert len(split.X_train) == 100 and len(split.X_test) == 120
    assert split.y_test.sum() == 20
    # no training row is a test row, no anomaly is trained on
    train = {r.tobytes() for r in split.X_train}
    assert not train & {r.tobytes() for r in split.X_test}
    # a feature constant over the training rows is dropped from both sets
    X = data.X.copy()
    X[data.y == 0, 3] = 7.0
    X[data.y == 1, 3] = 9.0
    dropped = protocol_split(AnomalyData(X, data.y, "x"), seed=0)
    assert dropped.X_train.shape[1] == dropped.X_test.shape[1] == 9
    assert_array_equal(dropped.X_test, np.delete(X, 3, axis=1)[_test_rows(X, dropped)])
    y = np.array([1, 1, 0, 0, 0])
    flags = top_fraction(np.array([5.0, 1.0, 4.0, 0.0, -1.0]), 0.4)
    assert_array_equal(flags, [1, 0, 1, 0, 0])
    assert precision_recall_f1(y, flags) == (0.5, 0.5, 0.5)


def _test_rows(X, split):
    """Indices of the rows of ``X`` (columns but 3) that form ``split.X_test``."""
    rows = {r.tobytes(): i for i, r in enumerate(np.delete(X, 3, axis=1))}
    return [rows[r.tobytes()] for r in split.X_test]


def _kdd_row(label: bytes, service: bytes, duration: int):
    row = [duration, b"tcp", service, b"SF"] + [0] * 37 + [label]
    row[4] = 100 + duration  # src_bytes
    row[24] = 0.5  # a float column
    return row


def test_kddcup99_loader_reads_scikit_learns_cache_format(tmp_path):
    rows = [
        _kdd_row(b"normal.", b"http", 1),
        _kdd_row(b"smurf.", b"ecr_i", 2),
        _kdd_row(b"neptune.", b"private", 3),
        _kdd_row(b"normal.", b"smtp", 4),
    ]
    Xy = np.asarray(rows, dtype=object)
    folder = tmp_path / "kddcup99_10-py3"
    folder.mkdir()
    joblib.dump(Xy[:, :-1], folder / "samples", compress=3)
    joblib.dump(Xy[:, -1], folder / "targets", compress=3)
    data = load_kddcup99(data_home=str(tmp_path))
    assert_array_equal(data.y, [1, 0, 0, 1])  # "normal." is the anomaly class
    # columns in order: duration, the 4 services one-hot (sorted), src_bytes; the constant
    # protocol, flag and float columns dropped; everything min-max scaled
    assert data.X.shape == (4, 1 + 4 + 1)
    assert_allclose(data.X[:, 0], [0, 1 / 3, 2 / 3, 1])
    assert_allclose(data.X[:, 5], [0, 1 / 3, 2 / 3, 1])
    assert_array_equal(data.X[:, 1:5], [[0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])


def test_kddcup99_missing_names_data_home(tmp_path):
    with pytest.raises(OSError, match="KDDCUP99 not found under data_home"):
        load_kddcup99(data_home=str(tmp_path))


@pytest.fixture(scope="module")
def fitted():
    data = make_synthetic(600, 30, 10, seed=2)
    split = protocol_split(data, 0)
    model = DAGMM(
        2, encoder_widths=(8,), batch_size=64, max_epochs=10, learning_rate=1e-3,
        random_state=0,
    ).fit(split.X_train)  # fmt: skip
    bayes = fit_latent_posterior(
        model, split.X_train, chains=2, draws=150, tune=150, em_n_init=1,
        random_state=0, progressbar=False, max_predict_draws=100,
    )  # fmt: skip
    return model, bayes, split


def test_energy_intervals_bracket_the_point_energy(fitted):
    model, bayes, split = fitted
    out = energy_intervals(model, bayes, split.X_test)
    assert (out["low"] <= out["high"]).all()
    assert (out["low"] > -np.inf).all()
    # the posterior sits around the maximum-likelihood mixture on z (the EM engine's): its
    # energies fall within the intervals (widened by 0.1 nats) for most rows
    gm = GaussianMixture(2, n_init=3, random_state=0).fit(model.transform(split.X_train))
    em_energy = -gm.score_samples(model.transform(split.X_test))
    inside = (out["low"] - 0.1 <= em_energy) & (em_energy <= out["high"] + 0.1)
    assert inside.mean() >= 0.9
    predictive = (out["low"] <= out["energy"]) & (out["energy"] <= out["high"])
    assert predictive.mean() >= 0.9


def test_flags_uncertain_near_the_threshold(fitted):
    model, bayes, split = fitted
    out = flag_uncertain(model, bayes, split.X_test, split.X_train, contamination=0.05)
    threshold = out.attrs["threshold"]
    anomaly, uncertain = out["label"] == "anomaly", out["label"] == "uncertain"
    assert (out.loc[anomaly, "low"] > threshold).all()
    assert (
        (out.loc[uncertain, "low"] <= threshold) & (out.loc[uncertain, "high"] >= threshold)
    ).all()
    assert (out.loc[out["label"] == "normal", "high"] <= threshold).all()


def test_dagmm_ranks_known_anomalies_above_normal_rows(fitted):
    from sklearn.metrics import roc_auc_score

    model, _, split = fitted
    auc = roc_auc_score(split.y_test, model.energy(split.X_test))
    print("AUC", auc)
    assert auc >= 0.7
