"""The rating-prediction protocol: K-fold cross-validation of several methods on one split.

Every method sees exactly the same folds (``KFold(n_splits, shuffle=True,
random_state=seed)`` over the rating rows). Per fold: RMSE and MAE of the held-out ratings
and the wall time of ``fit``. The peers from scikit-surprise (SVD, SVD++ with default
settings) are wrapped by :class:`SurprisePeer`; surprise is an optional dependency (the
``bench`` extra) and the methods are skipped, with the reason, when it cannot be imported.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import KFold

from bayesgmm.mpma.baselines import GlobalMean, bias_baseline, bpmf, pmf
from bayesgmm.mpma.estimator import MPMA, GibbsMPMA, mae, rmse

__all__ = [
    "SurprisePeer",
    "cross_validate",
    "default_methods",
    "peers_available",
    "summarize",
]


def peers_available() -> tuple[bool, str]:
    """Whether scikit-surprise imports, and why not if it does not."""
    try:
        import surprise  # noqa: F401
    except Exception as err:  # ImportError, or a binary built against another NumPy
        return False, f"scikit-surprise is not importable ({type(err).__name__}: {err})"
    return True, ""


class SurprisePeer:
    """A scikit-surprise algorithm behind the ``fit(df)`` / ``predict(user, item)`` API.

    Parameters
    ----------
    name : {"SVD", "SVDpp"}
        Algorithm class in ``surprise``; constructed with its default settings plus
        ``random_state``.
    rating_scale : (float, float)
    random_state : int or None
    """

    def __init__(self, name: str, rating_scale=(1.0, 5.0), random_state: int | None = None):
        self.name = name
        self.rating_scale = rating_scale
        self.random_state = random_state

    def fit(self, ratings: pd.DataFrame) -> SurprisePeer:
        import surprise

        data = surprise.Dataset.load_from_df(
            ratings[["user", "item", "rating"]], surprise.Reader(rating_scale=self.rating_scale)
        )
        start = time.perf_counter()
        self.algo_ = getattr(surprise, self.name)(random_state=self.random_state)
        self.algo_.fit(data.build_full_trainset())
        self.fit_time_ = time.perf_counter() - start
        return self

    def predict(self, user, item) -> np.ndarray:
        """Surprise's estimates (clipped to the scale, unknown ids get its fallback)."""
        return np.array([self.algo_.predict(u, i).est for u, i in zip(user, item, strict=True)])


def default_methods(
    *, n_factors: int = 10, seed: int = 0, include_peers: bool = True, **mpma_params
) -> tuple[dict[str, Callable[[], Any]], str]:
    """The benchmark's methods as factories, and why the peers are missing (or "").

    Rows: global mean, user/item bias baseline, PMF (MAP), MPMA as Chen et al. combine the
    components (``refine_factors=False``), MPMA joint MAP-EM (``refine_factors=True``),
    Bayesian PMF and MPMA with its hierarchical priors by Gibbs sampling
    (:class:`GibbsMPMA`, default settings), and scikit-surprise's SVD and SVD++ with
    default settings. ``mpma_params`` go to every MAP-EM method.
    """
    methods: dict[str, Callable[[], Any]] = {
        "global mean": GlobalMean,
        "bias baseline (MAP)": lambda: bias_baseline(random_state=seed, **mpma_params),
        "PMF (MAP)": lambda: pmf(n_factors, random_state=seed, **mpma_params),
        "MPMA (MAP-EM, Chen et al. schedule)": lambda: MPMA(
            n_factors, refine_factors=False, random_state=seed, **mpma_params
        ),
        "MPMA (joint MAP-EM)": lambda: MPMA(
            n_factors, refine_factors=True, random_state=seed, **mpma_params
        ),
        "BPMF (Gibbs)": lambda: bpmf(n_factors, random_state=seed),
        "MPMA (Gibbs, BPMF priors)": lambda: GibbsMPMA(n_factors, random_state=seed),
    }
    reason = ""
    if include_peers:
        ok, reason = peers_available()
        if ok:
            methods["surprise SVD (default)"] = lambda: SurprisePeer("SVD", random_state=seed)
            methods["surprise SVD++ (default)"] = lambda: SurprisePeer("SVDpp", random_state=seed)
    else:
        reason = "peers not requested"
    return methods, reason


def cross_validate(
    ratings: pd.DataFrame,
    methods: Mapping[str, Callable[[], Any]],
    *,
    n_splits: int = 5,
    seed: int = 0,
    verbose: bool = False,
) -> pd.DataFrame:
    """RMSE, MAE and fit time of every method on every fold.

    Parameters
    ----------
    ratings : DataFrame with columns user, item, rating
    methods : mapping of name to a factory returning an unfitted model with
        ``fit(DataFrame)`` and ``predict(user, item)``
    n_splits : int, default 5
    seed : int, default 0
        ``random_state`` of the shuffled KFold.
    verbose : bool
        Print one line per (method, fold).

    Returns
    -------
    DataFrame with columns method, fold, rmse, mae, fit_time (seconds).
    """
    rows = []
    folds = list(KFold(n_splits, shuffle=True, random_state=seed).split(ratings))
    for name, factory in methods.items():
        for fold, (train, test) in enumerate(folds):
            held_out = ratings.iloc[test]
            start = time.perf_counter()
            model = factory().fit(ratings.iloc[train])
            fit_time = time.perf_counter() - start
            pred = model.predict(held_out["user"].to_numpy(), held_out["item"].to_numpy())
            truth = held_out["rating"].to_numpy()
            rows.append(
                {
                    "method": name,
                    "fold": fold,
                    "rmse": rmse(truth, pred),
                    "mae": mae(truth, pred),
                    "fit_time": fit_time,
                }
            )
            if verbose:
                r = rows[-1]
                print(f"{name:40s} fold {fold}: RMSE {r['rmse']:.4f} MAE {r['mae']:.4f} "
                      f"fit {fit_time:.1f} s", flush=True)  # fmt: skip
    return pd.DataFrame(rows)


def summarize(per_fold: pd.DataFrame) -> pd.DataFrame:
    """Mean and sd (ddof=1) over folds of RMSE and MAE, mean and total fit time per method."""
    grouped = per_fold.groupby("method", sort=False)
    return pd.DataFrame(
        {
            "rmse_mean": grouped["rmse"].mean(),
            "rmse_sd": grouped["rmse"].std(ddof=1),
            "mae_mean": grouped["mae"].mean(),
            "mae_sd": grouped["mae"].std(ddof=1),
            "fit_time_mean_s": grouped["fit_time"].mean(),
            "fit_time_total_s": grouped["fit_time"].sum(),
        }
    )
