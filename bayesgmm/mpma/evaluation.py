"""Cross-validation of rating predictors on a named protocol, and paired comparisons.

:func:`cross_validate` fits one method on every fold of a protocol
(:mod:`bayesgmm.mpma.protocols`: GroupLens' ml-100k splits, random k-fold, repeated 90/10,
Rendle et al.'s 10-fold) and returns a :class:`CVResult`: the per-fold table (RMSE, MAE,
fit time, sizes) and its mean +/- sd. :func:`paired_comparison` compares two methods fold
by fold on the same folds (per-fold differences, their mean and sd, the paired t-test and
a confidence interval), which is the test that matters when folds differ in difficulty
more than methods do. :func:`compare_methods` runs several methods on the same folds
(the benchmark's table). The peers from scikit-surprise are wrapped by
:class:`SurprisePeer`; surprise is an optional dependency (the ``bench`` extra) and the
methods are skipped, with the reason, when it cannot be imported.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import io
import math
import time
from collections.abc import Callable, Mapping
from contextlib import redirect_stderr
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.base import BaseEstimator, clone

from bayesgmm.mpma.baselines import GlobalMean, bias_baseline, bpmf, pmf
from bayesgmm.mpma.data import resolve_rating_scale
from bayesgmm.mpma.estimator import MPMA, GibbsMPMA, mae, rmse
from bayesgmm.mpma.protocols import Protocol, get_protocol
from bayesgmm.progress import progress_bar

__all__ = [
    "CVResult",
    "MyFMPeer",
    "PairedComparison",
    "SurprisePeer",
    "compare_methods",
    "cross_validate",
    "default_methods",
    "myfm_available",
    "paired_comparison",
    "peers_available",
    "summarize",
]

#: Scores a fold records; ``paired_comparison`` compares any of them.
METRICS = ("rmse", "mae", "fit_time")


def peers_available() -> tuple[bool, str]:
    """Whether scikit-surprise imports, and why not if it does not."""
    try:
        import surprise  # noqa: F401
    except Exception as err:  # ImportError, or a binary built against another NumPy
        return False, f"scikit-surprise is not importable ({type(err).__name__}: {err})"
    return True, ""


def myfm_available() -> tuple[bool, str]:
    """Whether myfm (Rendle's Bayesian FM, the ``bench`` extra) imports, and why not."""
    try:
        import myfm  # noqa: F401
    except Exception as err:
        return False, f"myfm is not importable ({type(err).__name__}: {err})"
    return True, ""


class SurprisePeer:
    """A scikit-surprise algorithm behind the ``fit(df)`` / ``predict(user, item)`` API.

    Parameters
    ----------
    name : {"SVD", "SVDpp", "BaselineOnly", "KNNBaseline", ...}
        Algorithm class in ``surprise``; constructed with its default settings (plus
        ``random_state`` where the class takes one).
    rating_scale : (float, float) or None
        None reads it from the training data (``attrs["rating_scale"]``, else min/max).
    random_state : int or None
    """

    def __init__(self, name: str, rating_scale=None, random_state: int | None = None):
        self.name = name
        self.rating_scale = rating_scale
        self.random_state = random_state

    def fit(self, ratings: pd.DataFrame) -> SurprisePeer:
        import surprise

        scale = resolve_rating_scale(self.rating_scale, ratings)
        data = surprise.Dataset.load_from_df(
            ratings[["user", "item", "rating"]], surprise.Reader(rating_scale=scale)
        )
        start = time.perf_counter()
        cls = getattr(surprise, self.name)
        seeded = "random_state" in inspect.signature(cls.__init__).parameters
        self.algo_ = cls(random_state=self.random_state) if seeded else cls()
        self.algo_.fit(data.build_full_trainset())
        self.fit_time_ = time.perf_counter() - start
        return self

    def predict(self, user, item) -> np.ndarray:
        """Surprise's estimates (clipped to the scale, unknown ids get its fallback)."""
        return np.array([self.algo_.predict(u, i).est for u, i in zip(user, item, strict=True)])


class MyFMPeer(BaseEstimator):
    """Rendle's Bayesian factorisation machine (myFM's Gibbs sampler) on (user, item) ids.

    The features of a rating are the one-hot user and item and, with ``implicit=True``, the
    implicit feedback of SVD++ and its "flipped" twin as in Rendle, Zhang and Koren (2019)
    and myFM's reproduction: the items the user rated and the users who rated the item,
    each set weighted ``1 / sqrt(size)``. The implicit sets come from the training ratings
    only (Rendle et al.'s "stricter protocol": no information about the test pairs). Each
    group of features (user, user's items, item, item's users) gets its own Normal-Gamma
    hyperprior, as in myFM's examples. Predictions average the kept draws, clipped to the
    rating scale; an unseen user or item has no features (the prediction falls back to the
    other side and the global bias).

    Parameters
    ----------
    rank : int, default 10
    n_iter : int, default 200
        Gibbs sweeps; the last ``n_kept_samples`` are kept.
    n_kept_samples : int, default 150
    implicit : bool, default True
    rating_scale : (float, float) or None
        None reads it from the training data.
    random_state : int, default 0
    progressbar : bool, default True
        myFM's own (tqdm) progress bar; ``cross_validate`` switches it off.
    """

    def __init__(self, rank: int = 10, n_iter: int = 200, n_kept_samples: int = 150,
                 implicit: bool = True, rating_scale=None, random_state: int = 0,
                 progressbar: bool = True):  # fmt: skip
        self.rank = rank
        self.n_iter = n_iter
        self.n_kept_samples = n_kept_samples
        self.implicit = implicit
        self.rating_scale = rating_scale
        self.random_state = random_state
        self.progressbar = progressbar

    def _features(self, own: int, other: int, pairs_own, pairs_other):
        """One-hot ids (plus an all-zero row for unseen ids) and, if ``implicit``, the
        normalised set of the other side each id rated."""
        import scipy.sparse as sps

        eye = sps.vstack([sps.identity(own, format="csr"), sps.csr_matrix((1, own))])
        if not self.implicit:
            return eye.tocsr()
        rated = sps.csr_matrix(
            (np.ones(len(pairs_own)), (pairs_own, pairs_other)), shape=(own + 1, other)
        )
        counts = np.asarray(rated.sum(axis=1)).ravel()
        scale = sps.diags(1.0 / np.sqrt(np.maximum(counts, 1.0)))
        return sps.hstack([eye, scale @ rated]).tocsr()

    def fit(self, ratings: pd.DataFrame) -> MyFMPeer:
        import myfm

        scale = resolve_rating_scale(self.rating_scale, ratings)
        self.rating_scale_ = np.array(scale)
        self.user_ids_ = np.unique(ratings["user"].to_numpy())
        self.item_ids_ = np.unique(ratings["item"].to_numpy())
        u = np.searchsorted(self.user_ids_, ratings["user"].to_numpy())
        i = np.searchsorted(self.item_ids_, ratings["item"].to_numpy())
        n_u, n_i = len(self.user_ids_), len(self.item_ids_)
        self.user_features_ = self._features(n_u, n_i, u, i)
        self.item_features_ = self._features(n_i, n_u, i, u)
        shapes = [n_u, n_i, n_i, n_u] if self.implicit else [n_u, n_i]
        start = time.perf_counter()
        # myFM always draws a tqdm bar on standard error: silenced by redirecting it
        quiet = contextlib.nullcontext() if self.progressbar else redirect_stderr(io.StringIO())
        with quiet:
            self.fm_ = myfm.MyFMRegressor(rank=self.rank, random_seed=self.random_state).fit(
                None, ratings["rating"].to_numpy(dtype=np.float64), X_rel=self._blocks(u, i),
                n_iter=self.n_iter, n_kept_samples=self.n_kept_samples, group_shapes=shapes,
            )  # fmt: skip
        self.fit_time_ = time.perf_counter() - start
        return self

    def _blocks(self, u: np.ndarray, i: np.ndarray) -> list:
        import myfm

        return [myfm.RelationBlock(u, self.user_features_),
                myfm.RelationBlock(i, self.item_features_)]  # fmt: skip

    def _codes(self, ids, known: np.ndarray) -> np.ndarray:
        ids = np.asarray(ids)
        pos = np.clip(np.searchsorted(known, ids), 0, len(known) - 1)
        return np.where(known[pos] == ids, pos, len(known))  # unseen -> the zero row

    def predict(self, user, item) -> np.ndarray:
        """Posterior-mean predictions, clipped to the rating scale, shape (N,)."""
        u = self._codes(user, self.user_ids_)
        i = self._codes(item, self.item_ids_)
        return np.clip(self.fm_.predict(None, self._blocks(u, i)), *self.rating_scale_)


def default_methods(
    *, n_factors: int = 10, seed: int = 0, include_peers: bool = True, **mpma_params
) -> tuple[dict[str, Callable[[], Any]], str]:
    """The benchmark's methods as factories, and why the peers are missing (or "").

    Rows: global mean, user/item bias baseline, PMF (MAP), MPMA as Chen et al. combine the
    components (``refine_factors=False``), MPMA joint MAP-EM (``refine_factors=True``),
    Bayesian PMF and MPMA with its hierarchical priors by Gibbs sampling
    (:class:`GibbsMPMA`, default settings), both again with implicit-feedback features
    (``implicit=True``), scikit-surprise's BaselineOnly,
    KNNBaseline, SVD and SVD++ with default settings, and myFM's Bayesian factorisation
    machine with implicit feedback (:class:`MyFMPeer`, rank ``n_factors``). ``mpma_params``
    go to every MAP-EM method. The second value names the peers that could not be
    imported (empty when all are there).
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
        "BPMF (Gibbs, implicit feedback)": lambda: bpmf(
            n_factors, implicit=True, random_state=seed
        ),
        "MPMA (Gibbs, implicit feedback)": lambda: GibbsMPMA(
            n_factors, implicit=True, random_state=seed
        ),
    }
    reason = ""
    if include_peers:
        ok, reason = peers_available()
        if ok:
            methods["surprise BaselineOnly (default)"] = lambda: SurprisePeer("BaselineOnly")
            methods["surprise KNNBaseline (default)"] = lambda: SurprisePeer("KNNBaseline")
            methods["surprise SVD (default)"] = lambda: SurprisePeer("SVD", random_state=seed)
            methods["surprise SVD++ (default)"] = lambda: SurprisePeer("SVDpp", random_state=seed)
        ok_fm, reason_fm = myfm_available()
        if ok_fm:
            methods["myFM Bayesian FM (rank 10, implicit)"] = lambda: MyFMPeer(
                n_factors, random_state=seed
            )
        reason = "; ".join(r for r in (reason, reason_fm) if r)
    else:
        reason = "peers not requested"
    return methods, reason


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


# ---------------------------------------------------------------------------
# cross_validate: one method on one protocol
# ---------------------------------------------------------------------------


def _fresh(estimator) -> Any:
    """An unfitted model from ``estimator``: called if it is a factory, else cloned
    (scikit-learn's ``clone`` for estimators with ``get_params``, a deep copy otherwise).
    Its own progress bar is switched off (the protocol's bar shows the folds)."""
    if hasattr(estimator, "fit") and not isinstance(estimator, type):
        model = clone(estimator) if hasattr(estimator, "get_params") else copy.deepcopy(estimator)
    elif callable(estimator):
        model = estimator()
        if not hasattr(model, "fit"):
            raise TypeError(
                f"the factory returned {type(model).__name__}, which has no fit method: pass "
                "an estimator or a callable returning one"
            )
    else:
        raise TypeError(
            f"estimator must have fit(ratings) and predict(user, item), or be a callable "
            f"returning such a model; got {type(estimator).__name__}"
        )
    if hasattr(model, "get_params") and "progressbar" in model.get_params(deep=False):
        model.set_params(progressbar=False)
    return model


def _method_name(estimator) -> str:
    return getattr(estimator, "__name__", None) or type(estimator).__name__


@dataclass
class CVResult:
    """Scores of one method on every fold of one protocol.

    Attributes
    ----------
    method : str
    protocol : str
    per_fold : DataFrame
        One row per fold: ``fold`` (its name, e.g. "u1" or "fold 3"), ``n_train``,
        ``n_test``, ``rmse``, ``mae``, ``fit_time`` (seconds, wall clock).
    """

    method: str
    protocol: str
    per_fold: pd.DataFrame

    def summary(self) -> pd.Series:
        """Mean and sd (ddof=1; NaN for one fold) of RMSE and MAE over folds, mean and total
        fit time, and the number of folds."""
        f = self.per_fold
        return pd.Series(
            {
                "rmse_mean": f["rmse"].mean(),
                "rmse_sd": f["rmse"].std(ddof=1),
                "mae_mean": f["mae"].mean(),
                "mae_sd": f["mae"].std(ddof=1),
                "fit_time_mean_s": f["fit_time"].mean(),
                "fit_time_total_s": f["fit_time"].sum(),
                "n_folds": len(f),
            },
            name=self.method,
        )

    def __str__(self) -> str:
        s = self.summary()
        spread = "" if len(self.per_fold) < 2 else f" +/- {s['rmse_sd']:.4f}"
        table = self.per_fold.to_string(
            index=False, float_format=lambda x: f"{x:.4f}"
        )  # fmt: skip
        return (
            f"{self.method} on {self.protocol} ({len(self.per_fold)} fold(s)): RMSE "
            f"{s['rmse_mean']:.4f}{spread}, MAE {s['mae_mean']:.4f}, fit "
            f"{s['fit_time_mean_s']:.1f} s per fold\n{table}"
        )


def cross_validate(
    estimator,
    ratings: pd.DataFrame,
    protocol: str | Protocol = "kfold",
    *,
    name: str | None = None,
    progressbar: bool = True,
    **protocol_params,
) -> CVResult:
    """Fit ``estimator`` on every fold of ``protocol`` and score the held-out ratings.

    Parameters
    ----------
    estimator : estimator or callable
        A model with ``fit(ratings)`` and ``predict(user, item)`` (cloned afresh for every
        fold: :func:`sklearn.base.clone` when it has ``get_params``, else a deep copy), or a
        callable returning a new unfitted one (a class, or e.g.
        ``lambda: MPMA(10, random_state=0)``).
        A model's own progress bar is switched off; the protocol's bar counts the folds.
    ratings : DataFrame with columns user, item, rating
        E.g. ``load_movielens("100k")``; its ``attrs["rating_scale"]`` reaches every fold's
        training frame, so estimators with ``rating_scale=None`` use the published scale.
    protocol : str or Protocol, default "kfold"
        A name from :data:`~bayesgmm.mpma.protocols.PROTOCOLS` ("u1".."u5", "u", "ua",
        "ub", "kfold", "random-90-10", "rendle2019") or a
        :class:`~bayesgmm.mpma.protocols.Protocol`.
    name : str or None
        The method's label in the result; default: the estimator's class or function name.
    progressbar : bool, default True
        One step per fold on standard error, with the last fold's RMSE.
    **protocol_params
        Override the named protocol's defaults (``n_splits``, ``seed``, ``n_repeats``...).

    Returns
    -------
    CVResult

    Examples
    --------
    >>> from bayesgmm.mpma import MPMA
    >>> from bayesgmm.mpma.evaluation import cross_validate, paired_comparison
    >>> ratings = load_movielens("100k")                            # doctest: +SKIP
    >>> pmf = cross_validate(lambda: MPMA(10, components=("global",)), ratings, "u")
    ... # doctest: +SKIP
    >>> mpma = cross_validate(MPMA(10), ratings, "u")                # doctest: +SKIP
    >>> print(paired_comparison(mpma, pmf))                         # doctest: +SKIP
    """
    splitter = get_protocol(protocol, **protocol_params)
    folds = list(zip(splitter.fold_names, splitter.split(ratings), strict=True))
    label = name or _method_name(estimator)
    rows = []
    with progress_bar(len(folds), f"{label} on {splitter.name}", enabled=progressbar) as bar:
        for fold, (train, test) in folds:
            rows.append({"fold": fold, **_score_fold(estimator, ratings, train, test)})
            bar.advance(1, f"{fold}: RMSE {rows[-1]['rmse']:.4f}")
    return CVResult(label, splitter.name, pd.DataFrame(rows))


def _score_fold(estimator, ratings: pd.DataFrame, train, test) -> dict[str, float]:
    held_out = ratings.iloc[test]
    model = _fresh(estimator)
    start = time.perf_counter()
    model.fit(ratings.iloc[train])
    fit_time = time.perf_counter() - start
    pred = model.predict(held_out["user"].to_numpy(), held_out["item"].to_numpy())
    truth = held_out["rating"].to_numpy(dtype=np.float64)
    return {
        "n_train": len(train),
        "n_test": len(test),
        "rmse": rmse(truth, pred),
        "mae": mae(truth, pred),
        "fit_time": fit_time,
    }


def compare_methods(
    ratings: pd.DataFrame,
    methods: Mapping[str, Any],
    protocol: str | Protocol = "kfold",
    *,
    progressbar: bool = True,
    verbose: bool = False,
    **protocol_params,
) -> pd.DataFrame:
    """RMSE, MAE and fit time of every method on every fold of one protocol (same folds).

    Parameters
    ----------
    ratings : DataFrame with columns user, item, rating
    methods : mapping of name to an estimator or a factory (as :func:`cross_validate`)
    protocol : str or Protocol, default "kfold"
    progressbar : bool, default True
        One step per (method, fold).
    verbose : bool, default False
        Also print one line per (method, fold) on standard output.
    **protocol_params
        Override the named protocol's defaults.

    Returns
    -------
    DataFrame with columns method, fold, n_train, n_test, rmse, mae, fit_time (seconds),
    and the protocol's name in ``attrs["protocol"]``; :func:`summarize` gives mean +/- sd
    per method, and ``per_fold[per_fold.method == m]`` the rows :func:`paired_comparison`
    compares.
    """
    splitter = get_protocol(protocol, **protocol_params)
    folds = list(zip(splitter.fold_names, splitter.split(ratings), strict=True))
    rows = []
    total = len(folds) * len(methods)
    label = f"{len(methods)} methods on {splitter.name}"
    with progress_bar(total, label, enabled=progressbar) as bar:
        for method, estimator in methods.items():
            for fold, (train, test) in folds:
                rows.append({"method": method, "fold": fold,
                             **_score_fold(estimator, ratings, train, test)})  # fmt: skip
                r = rows[-1]
                bar.advance(1, f"{method}, {fold}: RMSE {r['rmse']:.4f}")
                if verbose:
                    print(f"{method:40s} {fold}: RMSE {r['rmse']:.4f} MAE {r['mae']:.4f} "
                          f"fit {r['fit_time']:.1f} s", flush=True)  # fmt: skip
    per_fold = pd.DataFrame(rows)
    per_fold.attrs["protocol"] = splitter.name
    return per_fold


# ---------------------------------------------------------------------------
# Paired comparison of two methods on the same folds
# ---------------------------------------------------------------------------


@dataclass
class PairedComparison:
    """Two methods compared fold by fold on the same folds (``a - b`` per fold).

    Attributes
    ----------
    metric : str
    method_a, method_b, protocol : str
    differences : Series
        ``a - b`` per fold, indexed by fold name (negative: ``a`` has the lower error).
    mean, sd : float
        Mean and sd (ddof=1) of the differences.
    t, df, p_value : float
        Paired t statistic ``mean / (sd / sqrt(K))`` on ``K - 1`` degrees of freedom and
        its two-sided p-value (equal to :func:`scipy.stats.ttest_rel`).
    ci : (float, float)
        ``confidence`` interval for the mean difference (Student t).
    confidence : float
    n_better : int
        Folds on which ``a`` has the lower value.
    """

    metric: str
    method_a: str
    method_b: str
    protocol: str
    differences: pd.Series
    mean: float
    sd: float
    t: float
    df: int
    p_value: float
    ci: tuple[float, float]
    confidence: float
    n_better: int

    def __str__(self) -> str:
        k = len(self.differences)
        return (
            f"{self.method_a} - {self.method_b}, {self.metric} on {self.protocol} ({k} folds): "
            f"mean {self.mean:+.5f}, sd {self.sd:.5f}, {self.confidence:.0%} CI "
            f"[{self.ci[0]:+.5f}, {self.ci[1]:+.5f}], paired t = {self.t:.3f} (df {self.df}), "
            f"p = {self.p_value:.3g}; {self.method_a} lower on {self.n_better}/{k} folds"
        )


def _as_fold_scores(result, metric: str) -> tuple[str, str, pd.Series, pd.Series]:
    if isinstance(result, CVResult):
        frame, method, protocol = result.per_fold, result.method, result.protocol
    elif isinstance(result, pd.DataFrame) and {"fold", metric} <= set(result.columns):
        if "method" in result and result["method"].nunique() > 1:
            raise ValueError("pass one method's rows (per_fold[per_fold.method == name])")
        method = str(result["method"].iloc[0]) if "method" in result else "method"
        frame, protocol = result, str(result.attrs.get("protocol", ""))
    else:
        raise TypeError(
            f"expected a CVResult or a per-fold DataFrame with 'fold' and {metric!r} columns, "
            f"got {type(result).__name__}"
        )
    sizes = frame.set_index("fold")["n_test"] if "n_test" in frame else None
    return method, protocol, frame.set_index("fold")[metric], sizes


def paired_comparison(a, b, metric: str = "rmse", *, confidence: float = 0.95) -> PairedComparison:
    """Compare two methods fold by fold: per-fold differences ``a - b`` and the paired t-test.

    Parameters
    ----------
    a, b : CVResult or DataFrame
        Results of :func:`cross_validate` (or one method's rows of :func:`compare_methods`)
        on the same protocol: the same fold names and test-set sizes.
    metric : {"rmse", "mae", "fit_time"}, default "rmse"
    confidence : float, default 0.95
        Level of the interval for the mean difference.

    Returns
    -------
    PairedComparison

    Raises
    ------
    ValueError
        If the folds differ, or there are fewer than 2 folds (no sd, no test).

    Notes
    -----
    The folds of k-fold cross-validation share training data, so the per-fold differences
    are not independent and the paired t-test is optimistic (Nadeau and Bengio 2003;
    Dietterich 1998); read it with the per-fold differences and ``n_better``.
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    name_a, protocol_a, score_a, size_a = _as_fold_scores(a, metric)
    name_b, protocol_b, score_b, size_b = _as_fold_scores(b, metric)
    same = list(score_a.index) == list(score_b.index) and (
        not protocol_a or not protocol_b or protocol_a == protocol_b
    )
    if same and size_a is not None and size_b is not None:
        same = bool((size_a.to_numpy() == size_b.to_numpy()).all())
    if not same:
        raise ValueError(
            f"the two results are not on the same folds ({protocol_a or '?'}: "
            f"{list(score_a.index)} vs {protocol_b or '?'}: {list(score_b.index)}); run both "
            "with the same protocol and seed"
        )
    k = len(score_a)
    if k < 2:
        raise ValueError(
            f"a paired comparison needs at least 2 folds, got {k}: use a protocol with "
            "several folds (e.g. 'u' or 'kfold')"
        )
    diff = pd.Series(score_a.to_numpy() - score_b.to_numpy(), index=score_a.index, name=metric)
    mean, sd = float(diff.mean()), float(diff.std(ddof=1))
    se = sd / math.sqrt(k)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = float(np.float64(mean) / np.float64(se))
    p_value = float(2.0 * stats.t.sf(abs(t), k - 1)) if math.isfinite(t) else (
        0.0 if mean != 0 else float("nan")
    )  # fmt: skip
    half = float(stats.t.ppf(0.5 + confidence / 2.0, k - 1)) * se
    return PairedComparison(
        metric=metric, method_a=name_a, method_b=name_b, protocol=protocol_a or protocol_b,
        differences=diff, mean=mean, sd=sd, t=t, df=k - 1, p_value=p_value,
        ci=(mean - half, mean + half), confidence=confidence,
        n_better=int((diff < 0).sum()),
    )  # fmt: skip
