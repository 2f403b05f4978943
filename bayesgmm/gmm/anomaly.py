"""Anomaly detection with a fitted mixture: the (posterior predictive) log density as an
outlier score, and, for a Bayesian fit, how sure we are that a point is anomalous.

An observation is scored by ``log p(x)``: the EM plug-in density for a
:class:`bayesgmm.GaussianMixture`, the posterior predictive density
``log E_theta[p(x | theta)]`` for a :class:`bayesgmm.BayesGMM`.  The threshold is a low
quantile of the scores of reference (training) data, e.g. the 1 % quantile: a point
scoring below it is less likely than 99 % of the reference data.

For a Bayesian fit, :func:`anomaly_scores` also gives the equal-tailed interval of
``log p(x | theta)`` across posterior draws, and :func:`flag_anomalies` sorts points into

- ``"anomaly"``: the whole interval lies below the threshold;
- ``"uncertain"``: the interval straddles it (the fit is not sure: more data, or a
  closer look);
- ``"normal"``: the whole interval lies above it.

A point-estimate detector has no "uncertain" class: every point on either side of the
threshold is reported with the same confidence.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bayesgmm._validation import check_real

__all__ = ["anomaly_scores", "flag_anomalies", "score_threshold"]

CATEGORIES = ("anomaly", "uncertain", "normal")


def _check_model(model) -> None:
    if not callable(getattr(model, "score_samples", None)):
        raise TypeError(
            "model must be a fitted GaussianMixture or BayesGMM (anything with "
            f"score_samples), got {type(model).__name__} {model!r:.60}: the arguments are "
            "(model, X)"
        )


def anomaly_scores(model, X, *, prob: float = 0.94) -> pd.DataFrame:
    """Outlier scores of ``X`` (n_samples, n_features): one row per observation.

    Columns ``log_density`` (the score; lower is more anomalous) and, for a BayesGMM,
    ``low``/``high``: the central ``prob`` interval of ``log p(x | theta)`` over draws
    (for a GaussianMixture both equal the score).
    """
    if not 0.0 < prob < 1.0:
        raise ValueError(f"prob must be in (0, 1), got {prob!r}")
    _check_model(model)
    score = np.asarray(model.score_samples(X))
    if hasattr(model, "log_density_draws"):
        low, high = np.quantile(
            model.log_density_draws(X), [(1 - prob) / 2, (1 + prob) / 2], axis=0
        )
    else:
        low = high = score
    return pd.DataFrame({"log_density": score, "low": low, "high": high})


def score_threshold(model, X_reference, quantile: float = 0.01) -> float:
    """The ``quantile`` of the scores of reference data (e.g. the training set)."""
    if not 0.0 < quantile < 1.0:
        raise ValueError(f"quantile must be in (0, 1), got {quantile!r}")
    _check_model(model)
    return float(np.quantile(model.score_samples(X_reference), quantile))


def flag_anomalies(scores: pd.DataFrame, threshold: float) -> pd.Series:
    """ "anomaly" / "uncertain" / "normal" per row of :func:`anomaly_scores` (see module).

    ``threshold`` must be a finite number (e.g. from :func:`score_threshold`): a NaN
    threshold would label every point "normal".
    """
    if not isinstance(scores, pd.DataFrame):
        raise TypeError(
            f"scores must be the DataFrame of anomaly_scores(model, X), got {type(scores).__name__}"
        )
    missing = {"low", "high"} - set(scores.columns)
    if missing:
        raise ValueError(f"scores need columns {sorted(missing)}: use anomaly_scores(...)")
    check_real(threshold, "threshold")
    labels = np.where(
        scores["high"] < threshold,
        "anomaly",
        np.where(scores["low"] < threshold, "uncertain", "normal"),
    )
    return pd.Series(pd.Categorical(labels, categories=CATEGORIES), index=scores.index)
