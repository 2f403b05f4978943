"""DAGMM's evaluation protocol (Zong et al. 2018, Section 4) and its data sets.

Protocol: train on a random half of the normal rows; test on the other half plus every
anomaly; call the test rows with the highest anomaly scores anomalies, as many as the
anomaly share of the test set (the paper's threshold from the contamination ratio); report
precision, recall and F1 of the anomaly class; repeat over seeds.

Data: :func:`make_synthetic` (known anomalies off and on a nonlinear low-dimensional
manifold), :func:`load_breast_cancer_anomalies` (scikit-learn's Wisconsin data, benign
normal, malignant subsampled to the ODDS "wbc" ratio), :func:`load_digits_anomalies` and
:func:`load_kddcup99` (scikit-learn's fetcher with a ``data_home`` override; the paper's
preprocessing: one-hot protocol/service/flag, min-max scaling, "normal" traffic as the
anomaly class).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "TUNED_SETTINGS",
    "AnomalyData",
    "ProtocolSplit",
    "load_breast_cancer_anomalies",
    "load_digits_anomalies",
    "load_kddcup99",
    "make_synthetic",
    "precision_recall_f1",
    "protocol_split",
    "top_fraction",
]

#: Changes to the paper's DAGMM settings, the same for every data set, chosen on seeds
#: 100-104 of ``benchmarks/dagmm.py``'s data sets (mean F1; tanh with lambda_cov in
#: {0.005, 1e-4, 1e-5, 0 + reg_covar 1e-6}, ReLU with {1e-5, 0 + reg_covar 1e-6}; the
#: table is in BENCHMARKS.md): the covariance penalty collapses the memberships when z's
#: variances are small, and tanh saturates on rows far outside the training range (see
#: ``DAGMM``'s docstring). The estimator's defaults stay the paper's.
TUNED_SETTINGS = dict(activation="relu", lambda_cov=0.0, reg_covar=1e-6)

#: ODDS "wbc": 357 benign and 21 malignant (5.6 % anomalies).
WBC_ANOMALIES = 21


@dataclass(frozen=True)
class AnomalyData:
    """Rows ``X`` (n, D) and labels ``y`` (n,), 1 for an anomaly, 0 for a normal row."""

    X: np.ndarray
    y: np.ndarray
    name: str


@dataclass(frozen=True)
class ProtocolSplit:
    X_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray


def protocol_split(data: AnomalyData, seed: int) -> ProtocolSplit:
    """Half the normal rows (at random) for training; the rest and all anomalies to test.

    Features constant over the training rows (a pixel that is blank in every training
    digit) are dropped from both sets: no density model can use them, and the mixtures
    refuse them.
    """
    rng = np.random.default_rng(seed)
    normal = rng.permutation(np.flatnonzero(data.y == 0))
    half = len(normal) // 2
    test = np.concatenate([normal[half:], np.flatnonzero(data.y == 1)])
    X_train = data.X[normal[:half]]
    keep = np.ptp(X_train, axis=0) > 0
    return ProtocolSplit(X_train[:, keep], data.X[test][:, keep], data.y[test])


def top_fraction(scores: np.ndarray, fraction: float) -> np.ndarray:
    """1 for the ``round(fraction * n)`` highest ``scores`` (anomaly scores), else 0."""
    n_flag = round(fraction * len(scores))
    flags = np.zeros(len(scores), dtype=int)
    flags[np.argsort(-scores, kind="stable")[:n_flag]] = 1
    return flags


def precision_recall_f1(y_true: np.ndarray, y_flag: np.ndarray) -> tuple[float, float, float]:
    """Precision, recall and F1 of the anomaly class (label 1); 0 where undefined."""
    tp = int(np.sum((y_true == 1) & (y_flag == 1)))
    precision = tp / max(1, int(np.sum(y_flag == 1)))
    recall = tp / max(1, int(np.sum(y_true == 1)))
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def make_synthetic(
    n_normal: int = 2000,
    n_anomalies: int = 100,
    n_features: int = 30,
    *,
    noise: float = 0.05,
    seed: int = 0,
) -> AnomalyData:
    """Normal rows near a curved 2-D manifold in ``n_features`` dimensions, anomalies off it
    and in its empty regions.

    A latent ``t`` from a mixture of three 2-D Gaussians is mapped to
    ``x = tanh(t A) B + noise``, ``A`` (2, 8) and ``B`` (8, n_features) fixed by ``seed``.
    Half the anomalies are off the manifold (a normal ``t``, then the image moved by a
    random direction of length 1 in ``x``); half lie on it, at latent points between the
    clusters (uniform on the box around them, kept where every cluster's Mahalanobis
    distance exceeds 4).
    """
    rng = np.random.default_rng(seed)
    centres = np.array([[-2.0, 0.0], [2.0, 0.5], [0.0, 2.5]])
    scale = 0.35

    def latent(n):
        return centres[rng.integers(0, 3, size=n)] + scale * rng.normal(size=(n, 2))

    A = rng.normal(size=(2, 8)) / 1.5
    B = rng.normal(size=(8, n_features)) / np.sqrt(8)

    def embed(t):
        return np.tanh(t @ A) @ B + noise * rng.normal(size=(len(t), n_features))

    X_normal = embed(latent(n_normal))
    n_off = n_anomalies // 2
    shift = rng.normal(size=(n_off, n_features))
    off = embed(latent(n_off)) + shift / np.linalg.norm(shift, axis=1, keepdims=True)
    gaps = []
    while sum(len(g) for g in gaps) < n_anomalies - n_off:
        t = rng.uniform([-3.0, -1.5], [3.0, 3.5], size=(200, 2))
        distance = np.linalg.norm(t[:, None, :] - centres[None], axis=2) / scale
        gaps.append(t[(distance > 4.0).all(axis=1)])
    on = embed(np.concatenate(gaps)[: n_anomalies - n_off])
    X = np.vstack([X_normal, off, on])
    y = np.r_[np.zeros(n_normal, int), np.ones(n_anomalies, int)]
    return AnomalyData(X, y, "synthetic")


def load_breast_cancer_anomalies(seed: int = 0) -> AnomalyData:
    """scikit-learn's Wisconsin breast-cancer data: the 357 benign rows normal, 21 of the
    212 malignant rows (drawn with ``seed``) anomalies, the ODDS "wbc" ratio."""
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    benign = np.flatnonzero(data.target == 1)
    malignant = np.random.default_rng(seed).choice(
        np.flatnonzero(data.target == 0), WBC_ANOMALIES, replace=False
    )
    X = np.vstack([data.data[benign], data.data[malignant]])
    y = np.r_[np.zeros(len(benign), int), np.ones(len(malignant), int)]
    return AnomalyData(X, y, "breast-cancer")


def load_digits_anomalies(normal_digit: int = 0, fraction: float = 0.05, seed: int = 0):
    """scikit-learn's 8x8 digits: one digit normal, ``fraction`` of the normal count drawn
    from the other digits as anomalies; pixels that are constant among the rows are
    dropped."""
    from sklearn.datasets import load_digits

    data = load_digits()
    normal = np.flatnonzero(data.target == normal_digit)
    n_anom = max(1, round(fraction * len(normal)))
    others = np.random.default_rng(seed).choice(
        np.flatnonzero(data.target != normal_digit), n_anom, replace=False
    )
    X = np.vstack([data.data[normal], data.data[others]])
    X = X[:, np.ptp(X[: len(normal)], axis=0) > 0]
    y = np.r_[np.zeros(len(normal), int), np.ones(n_anom, int)]
    return AnomalyData(X, y, f"digits-{normal_digit}")


#: The categorical columns of KDDCUP99 (one-hot encoded, as in the paper).
KDD_CATEGORICAL = (1, 2, 3)


def load_kddcup99(data_home: str | None = None, *, percent10: bool = True) -> AnomalyData:
    """KDDCUP99 as in the paper: the 10 % set of :func:`sklearn.datasets.fetch_kddcup99`
    (read from ``data_home``; never downloaded here: fetch it once with scikit-learn), the
    three categorical columns one-hot encoded, every column min-max scaled, and, since
    attacks are 80 % of the rows, the "normal." rows labelled anomalies.

    Raises OSError naming ``data_home`` when the data are not there.
    """
    from sklearn.datasets import fetch_kddcup99

    try:
        bunch = fetch_kddcup99(data_home=data_home, percent10=percent10, download_if_missing=False)
    except OSError as err:
        raise OSError(
            f"KDDCUP99 not found under data_home={data_home!r} ({err}): download it once "
            "with sklearn.datasets.fetch_kddcup99(data_home=..., percent10=True)"
        ) from None
    raw = np.asarray(bunch.data, dtype=object)
    columns = []
    for j in range(raw.shape[1]):
        if j in KDD_CATEGORICAL:
            values = np.array([v.decode() if isinstance(v, bytes) else str(v) for v in raw[:, j]])
            levels = np.unique(values)
            columns.append((values[:, None] == levels[None]).astype(float))
        else:
            columns.append(raw[:, j].astype(float)[:, None])
    X = np.hstack(columns)
    span = np.ptp(X, axis=0)
    X = (X - X.min(axis=0)) / np.where(span > 0, span, 1.0)
    X = X[:, span > 0]
    labels = np.array([v.decode() if isinstance(v, bytes) else str(v) for v in bunch.target])
    y = (labels == "normal.").astype(int)
    return AnomalyData(X, y, "kddcup99")
