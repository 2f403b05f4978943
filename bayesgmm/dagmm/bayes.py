"""The Bayesian step beyond the paper: the latent mixture refitted by ``BayesGMM``.

DAGMM's energy uses one point estimate of the mixture on ``z``. Refitting that mixture by
NUTS (:class:`bayesgmm.BayesGMM`, K components on the learned ``z`` of the training rows)
gives every energy a posterior interval, and :mod:`bayesgmm.gmm.anomaly` sorts points
into "anomaly" (the whole interval beyond the threshold), "uncertain" (the interval
straddles it) and "normal". The networks stay fixed: the intervals reflect the mixture's
uncertainty given the learned representation, not the networks'.
"""

from __future__ import annotations

import pandas as pd

from bayesgmm.gmm.anomaly import anomaly_scores, flag_anomalies, score_threshold

__all__ = ["energy_intervals", "fit_latent_posterior", "flag_uncertain"]


def fit_latent_posterior(model, X, **bayes_params):
    """A :class:`bayesgmm.BayesGMM` with ``model.n_components`` components fitted to
    ``model.transform(X)`` (X: the training rows); ``bayes_params`` go to BayesGMM."""
    from bayesgmm.gmm.estimator import BayesGMM

    params = {"n_components": model.n_components, **bayes_params}
    return BayesGMM(**params).fit(model.transform(X))


def energy_intervals(model, bayes, X, *, prob: float = 0.94) -> pd.DataFrame:
    """Per row of ``X``: ``energy`` (minus the posterior predictive log-density of z) and
    the central ``prob`` posterior interval ``low``, ``high`` of ``-log p(z | theta)``."""
    scores = anomaly_scores(bayes, model.transform(X), prob=prob)
    return pd.DataFrame(
        {"energy": -scores["log_density"], "low": -scores["high"], "high": -scores["low"]}
    )


def flag_uncertain(
    model, bayes, X, X_reference, *, contamination: float | None = None, prob: float = 0.94
) -> pd.DataFrame:
    """:func:`energy_intervals` plus ``label`` ("anomaly" / "uncertain" / "normal") at the
    threshold that flags ``contamination`` (default: the model's) of ``X_reference``
    (the training rows); the threshold (an energy) is in ``attrs["threshold"]``."""
    quantile = model.contamination if contamination is None else contamination
    threshold = score_threshold(bayes, model.transform(X_reference), quantile)
    scores = anomaly_scores(bayes, model.transform(X), prob=prob)
    out = energy_intervals(model, bayes, X, prob=prob)
    out["label"] = flag_anomalies(scores, threshold)
    out.attrs["threshold"] = -threshold
    return out
