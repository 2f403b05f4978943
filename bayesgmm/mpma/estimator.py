"""``MPMA``: mixture probabilistic matrix approximation, a scikit-learn style estimator.

Chen, Li, Lv, Yan, Chu and Shang (2016), "MPMA: Mixture probabilistic matrix approximation
for collaborative filtering", IJCAI. The model and the MAP-EM fit are in
:mod:`bayesgmm.mpma.em`; the same posterior as a PyMC model in :mod:`bayesgmm.mpma.model`.
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from collections.abc import Mapping

import numpy as np
import pandas as pd
from scipy.special import logsumexp
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from bayesgmm._validation import check_positive_int, check_seed
from bayesgmm.io import (
    SaveLoadMixin,
    fitted_attributes,
    fitted_variables,
    require_fitted,
    restore_fitted,
)
from bayesgmm.mpma.als import Factors
from bayesgmm.mpma.data import (
    check_rating_scale,
    encode,
    resolve_rating_scale,
    validate_ratings,
)
from bayesgmm.mpma.em import (
    COMPONENTS,
    ComponentIndex,
    MPMAPriors,
    MPMAState,
    component_index,
    component_means,
    e_step,
    fit_map_em,
)
from bayesgmm.mpma.gibbs import ComponentPosterior, GibbsPriors, fit_gibbs
from bayesgmm.progress import progress_bar

__all__ = ["MPMA", "GibbsMPMA", "UnseenIdWarning", "mae", "resolve_priors", "rmse"]


class UnseenIdWarning(UserWarning):
    """``predict`` got user or item ids not seen in ``fit`` (they get the fallback)."""


def rmse(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Root mean squared error of two arrays of shape (N,)."""
    diff = np.asarray(y_true, dtype=float) - np.asarray(y_pred, dtype=float)
    return float(np.sqrt(np.mean(diff**2)))


def mae(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean absolute error of two arrays of shape (N,)."""
    return float(np.mean(np.abs(np.asarray(y_true, dtype=float) - np.asarray(y_pred, dtype=float))))


def resolve_priors(priors, kind: type = MPMAPriors):
    """Priors of dataclass type ``kind`` from None (defaults), a dict of fields, or an instance."""
    if priors is None:
        return kind()
    if isinstance(priors, kind):
        return priors
    if isinstance(priors, Mapping):
        unknown = set(priors) - {f.name for f in dataclasses.fields(kind)}
        if unknown:
            raise ValueError(
                f"unknown prior field(s) {sorted(unknown)}; valid: "
                f"{[f.name for f in dataclasses.fields(kind)]}"
            )
        return kind(**priors)
    raise ValueError(f"priors must be None, a dict or {kind.__name__}, got {type(priors).__name__}")


class MPMA(SaveLoadMixin, BaseEstimator):
    """Mixture probabilistic matrix approximation fitted by MAP-EM.

    Each rating is drawn from a mixture of three Gaussians whose means are a global
    factorisation, a user-local one (factors learned on the sub-matrix of the user's
    group) and an item-local one; the component of each rating is marginalised. See
    :mod:`bayesgmm.mpma.em` for the model and the priors.

    Parameters
    ----------
    n_factors : int, default=10
        Rank of every component's factorisation (>= 0, and at most
        ``min(n_users, n_items)`` of the ratings given to ``fit``).
    n_user_groups, n_item_groups : int, default=2
        Number of k-means groups of users (items) on the global factors (>= 1, and at
        most the number of users (items) in the ratings).
    components : tuple of str, default=("global", "user", "item")
        Active components, in that order; "global" is required (it initialises the
        others and predicts for unseen users/items). ``("global",)`` is PMF.
    use_bias : bool, default=True
        Give each component user and item biases (an extension of Chen et al., whose
        components are pure factorisations ``U_i . V_j`` plus an offset).
    priors : dict, MPMAPriors or None, default=None
        Prior hyperparameters; None uses :class:`~bayesgmm.mpma.em.MPMAPriors` defaults.
    rating_scale : (float, float) or None, default=None
        Allowed ratings; predictions are clipped to it. None reads it from the data given
        to ``fit``: ``attrs["rating_scale"]`` when a loader recorded it
        (:func:`~bayesgmm.movielens.load_movielens` records the release's published scale,
        e.g. ``(0.5, 5.0)`` for half stars), else the smallest and largest training
        rating. The scale used is ``rating_scale_``.
    n_warmup : int, default=15
        Iterations of the global warm-up and of each local component's separate fit.
    max_iter : int, default=50
        Maximum joint MAP-EM iterations (for a global-only model: PMF iterations).
    tol : float, default=1e-5
        Convergence threshold on the change of the log posterior per rating.
    refine_factors : bool, default=False
        False (Chen et al.'s procedure): each component's factors are its MAP fitted alone
        on its (sub-)matrices, and the mixture stage fits ``pi`` and ``sigma`` by MAP-EM.
        True: the mixture stage updates every component's factors too (weighted ALS), so
        the fit is the joint posterior mode. The joint mode lets components specialise on
        the ratings they already explain best, which raises the log posterior but makes
        the mixture mean a worse predictor of held-out ratings (see the benchmark).
    random_state : int or None, default=None
        A seed in [0, 2**32 - 1].
    progressbar : bool, default=True
        Show a progress bar on standard error (stages: global warm-up, each local
        component's separate fit, the mixture EM; the status shows the log posterior).

    Attributes
    ----------
    components_ : tuple of str
        Names of the fitted components, in the order of ``weights_``.
    user_ids_, item_ids_ : ndarray of shape (n_users,), (n_items,)
        Ids seen in ``fit``, sorted.
    user_groups_, item_groups_ : ndarray of shape (n_users,), (n_items,), int64
    weights_ : ndarray of shape (n_components,)
        Mixture weights ``pi``.
    sigmas_ : ndarray of shape (n_components,)
        Per-component noise sd (rating units).
    factors_ : list of Factors
        Per component: offset, row/column biases and factors (see :mod:`~.em` layouts).
    trace_ : ndarray
        Log posterior per joint MAP-EM iteration (the warm-up trace for PMF).
    warmup_trace_ : ndarray
        Log posterior per iteration of the global warm-up.
    local_traces_ : dict of str to ndarray
        Log posterior per iteration of each local component's separate fit on its
        sub-matrices ("user", "item"); empty for PMF. With ``trace_`` and
        ``warmup_trace_``, every EM stage's convergence trace.
    rating_scale_ : ndarray of shape (2,)
        The rating scale used (see ``rating_scale``).
    converged_ : bool
    n_iter_ : int
    fit_time_ : float
        Wall time of ``fit`` in seconds.
    priors_ : MPMAPriors
    train_users_, train_items_ : ndarray of shape (N,), int64
        Encoded (user, item) of the training ratings (``recommend`` leaves them out).

    Examples
    --------
    Whole-star ratings of a random rank-2 matrix:

    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> u, v = rng.normal(size=(40, 2)), rng.normal(size=(30, 2))
    >>> users, items = np.nonzero(rng.random((40, 30)) < 0.5)
    >>> stars = np.clip(np.round(3 + (u @ v.T)[users, items]), 1, 5)
    >>> ratings = pd.DataFrame({"user": users, "item": items, "rating": stars})
    >>> from bayesgmm.mpma import MPMA
    >>> model = MPMA(2, n_user_groups=2, n_item_groups=2, random_state=0).fit(ratings)
    >>> model.components_
    ('global', 'user', 'item')
    >>> bool(np.isclose(model.weights_.sum(), 1.0)), model.sigmas_.shape
    (True, (3,))
    >>> pred = model.predict([0, 1], [0, 1])
    >>> pred.shape, bool(((1 <= pred) & (pred <= 5)).all())
    ((2,), True)
    """

    def __init__(
        self,
        n_factors: int = 10,
        *,
        n_user_groups: int = 2,
        n_item_groups: int = 2,
        components: tuple[str, ...] = COMPONENTS,
        use_bias: bool = True,
        priors: MPMAPriors | Mapping | None = None,
        rating_scale: tuple[float, float] | None = None,
        n_warmup: int = 15,
        max_iter: int = 50,
        tol: float = 1e-5,
        refine_factors: bool = False,
        random_state: int | None = None,
        progressbar: bool = True,
    ):
        self.n_factors = n_factors
        self.n_user_groups = n_user_groups
        self.n_item_groups = n_item_groups
        self.components = components
        self.use_bias = use_bias
        self.priors = priors
        self.rating_scale = rating_scale
        self.n_warmup = n_warmup
        self.max_iter = max_iter
        self.tol = tol
        self.refine_factors = refine_factors
        self.random_state = random_state
        self.progressbar = progressbar

    # ------------------------------------------------------------------ checks
    def _check_params(self) -> tuple[str, ...]:
        components = self._check_structure()
        check_positive_int(self.max_iter, "max_iter")
        check_positive_int(self.n_warmup, "n_warmup", minimum=0)
        if not self.tol >= 0:
            raise ValueError(f"tol must be >= 0, got {self.tol!r}")
        return components

    def _check_structure(self) -> tuple[str, ...]:
        """Checks shared by every MPMA fit: components, rank, groups, rating scale."""
        components = tuple(self.components)
        if not components or "global" not in components:
            raise ValueError(
                f"components must include 'global', got {components!r}: it initialises the "
                "local components and predicts for unseen users and items"
            )
        if any(c not in COMPONENTS for c in components) or list(components) != sorted(
            set(components), key=COMPONENTS.index
        ):
            raise ValueError(
                f"components must be distinct names from {COMPONENTS} in that order, "
                f"got {components!r}"
            )
        check_positive_int(self.n_factors, "n_factors", minimum=0)
        if self.n_factors == 0 and len(components) > 1:
            raise ValueError(
                "n_factors=0 leaves no global factors to group users and items by, so the "
                "local components cannot be formed: use n_factors >= 1, or "
                "components=('global',) for the bias-only model"
            )
        check_positive_int(self.n_user_groups, "n_user_groups")
        check_positive_int(self.n_item_groups, "n_item_groups")
        if self.rating_scale is not None:
            check_rating_scale(self.rating_scale)
        check_seed(self.random_state)
        return components

    def _check_against_data(self, n_users: int, n_items: int) -> None:
        """The rank and the numbers of groups must fit the ratings: a rank above
        ``min(n_users, n_items)`` cannot be identified from them (and makes every sweep
        slow), and k-means cannot form more groups than entities."""
        limit = min(n_users, n_items)
        if self.n_factors > limit:
            raise ValueError(
                f"n_factors={self.n_factors} exceeds the rank the ratings can support: "
                f"{n_users} users x {n_items} items allow at most min(n_users, n_items) = "
                f"{limit} factors; use n_factors <= {limit} (typically far fewer)"
            )
        for name, n_groups, n_entities, kind in (
            ("n_user_groups", self.n_user_groups, n_users, "users"),
            ("n_item_groups", self.n_item_groups, n_items, "items"),
        ):
            if n_groups > n_entities:
                raise ValueError(
                    f"{name}={n_groups} exceeds the {n_entities} {kind} in the ratings: "
                    f"use {name} <= {n_entities}"
                )

    # --------------------------------------------------------------------- fit
    def fit(self, data, items=None, ratings=None) -> MPMA:
        """Fit by MAP-EM.

        Parameters
        ----------
        data : DataFrame with columns user, item, rating; or array-like of user ids (N,)
        items, ratings : array-like of shape (N,), optional
            Item ids and ratings, when ``data`` holds the user ids.

        Returns
        -------
        self
        """
        components = self._check_params()
        priors = resolve_priors(self.priors)
        fit = self._run_fit(
            fit_map_em, priors, components, data, items, ratings,
            n_warmup=int(self.n_warmup), max_iter=int(self.max_iter), tol=float(self.tol),
            refine_factors=bool(self.refine_factors),
        )  # fmt: skip
        self.weights_, self.sigmas_ = fit.state.weights, fit.state.sigmas
        self.factors_ = fit.state.factors
        self.trace_ = np.asarray(fit.trace if fit.trace else fit.warmup_trace)
        self.warmup_trace_ = np.asarray(fit.warmup_trace)
        self.local_traces_ = {name: np.asarray(t) for name, t in fit.local_traces.items()}
        self.converged_ = fit.converged
        self.n_iter_ = len(self.trace_) - 1
        return self

    def _progress_total(self, components: tuple[str, ...]) -> int:
        """Steps of the progress bar: EM iterations of every stage (an upper bound)."""
        if components == ("global",):
            return int(self.max_iter)
        return int(self.n_warmup) * len(components) + int(self.max_iter)

    def _run_fit(self, fitter, priors, components, data, items, ratings, **options):
        """Validate and encode the ratings, run ``fitter`` (``fit_map_em`` or ``fit_gibbs``)
        with the structure shared by both, and set the fitted attributes they share."""
        scale = resolve_rating_scale(self.rating_scale, data, items, ratings)
        encoded = encode(validate_ratings(data, items, ratings, rating_scale=scale))
        self._check_against_data(len(encoded.user_ids), len(encoded.item_ids))
        start = time.perf_counter()
        label = "log lik" if fitter is fit_gibbs else "log post"
        with progress_bar(
            self._progress_total(components), type(self).__name__, enabled=bool(self.progressbar)
        ) as bar:
            fit = fitter(
                encoded.users, encoded.items, encoded.ratings,
                len(encoded.user_ids), len(encoded.item_ids),
                components=components, n_factors=int(self.n_factors),
                n_user_groups=int(self.n_user_groups), n_item_groups=int(self.n_item_groups),
                priors=priors, use_bias=bool(self.use_bias), seed=self.random_state,
                callback=lambda stage, value: bar.advance(1, f"{stage}: {label} {value:.6g}"),
                **options,
            )  # fmt: skip
            bar.finish()
        self.fit_time_ = time.perf_counter() - start
        self.rating_scale_ = np.array(scale, dtype=np.float64)
        self.components_ = components
        self.user_ids_, self.item_ids_ = encoded.user_ids, encoded.item_ids
        self.user_groups_, self.item_groups_ = fit.user_groups, fit.item_groups
        self.priors_ = priors
        self.train_users_, self.train_items_ = encoded.users, encoded.items
        return fit

    # ----------------------------------------------------------------- predict
    def _state(self) -> MPMAState:
        return MPMAState(self.components_, self.weights_, self.sigmas_, self.factors_)

    def _encode_pairs(self, user, item) -> tuple[np.ndarray, np.ndarray]:
        user, item = np.atleast_1d(np.asarray(user)), np.atleast_1d(np.asarray(item))
        if user.ndim != 1 or user.shape != item.shape:
            raise ValueError(
                f"user and item must be 1-D of the same length, got {user.shape}, {item.shape}"
            )
        return (
            pd.Index(self.user_ids_).get_indexer(user),
            pd.Index(self.item_ids_).get_indexer(item),
        )

    def component_means(self, user, item) -> np.ndarray:
        """Mean of every component for known (user, item) pairs, shape (N, n_components).

        Raises ValueError if a user or item was not seen in ``fit``.
        """
        check_is_fitted(self)
        u, i = self._encode_pairs(user, item)
        if np.any(u < 0) or np.any(i < 0):
            raise ValueError("component_means needs users and items seen in fit")
        return self._component_means(u, i)

    def _indices(self, u: np.ndarray, i: np.ndarray) -> list[ComponentIndex]:
        """Matrix indices of (u, i) in every fitted component's layout."""
        n_users, n_items = len(self.user_ids_), len(self.item_ids_)
        return [
            component_index(c, u, i, n_users, n_items, self.user_groups_, self.item_groups_)
            for c in self.components_
        ]

    def _component_means(self, u: np.ndarray, i: np.ndarray) -> np.ndarray:
        return component_means(self._state(), self._indices(u, i))

    def predict(self, user, item) -> np.ndarray:
        """Predicted ratings ``sum_c pi_c mu_c(user, item)``, clipped to ``rating_scale``.

        Parameters
        ----------
        user, item : array-like of shape (N,) (or scalars)
            Ids as given to ``fit``.

        Returns
        -------
        ndarray of shape (N,)

        Notes
        -----
        An unseen user or item has no group and no fitted factors; its prediction falls
        back to the global component with the unseen entity at its prior mean (zero bias
        and factors): ``offset + item bias`` for an unseen user, ``offset + user bias``
        for an unseen item, ``offset`` when both are unseen. An :class:`UnseenIdWarning`
        says how many ids were unseen (and when they look like ids of another type, such
        as ``'1'`` for ``1``, how to convert them).
        """
        check_is_fitted(self)
        u, i = self._encode_pairs(user, item)
        self._warn_unseen(user, item, u, i)
        known = (u >= 0) & (i >= 0)
        out = np.empty(u.shape[0])
        out[known] = self._component_means(u[known], i[known]) @ self.weights_
        glob = self.factors_[0]
        fallback = np.full(int((~known).sum()), glob.offset)
        fallback += np.where(u[~known] >= 0, glob.row_bias[u[~known]], 0.0)
        fallback += np.where(i[~known] >= 0, glob.col_bias[i[~known]], 0.0)
        out[~known] = fallback
        return np.clip(out, *self.rating_scale_)

    def _warn_unseen(self, user, item, u: np.ndarray, i: np.ndarray) -> None:
        """UnseenIdWarning with the number of unseen users and items, and a hint when the
        ids given are of another kind than those seen in ``fit`` (``'1'`` for ``1``)."""
        parts, hints = [], []
        for side, given, codes, seen in (
            ("user", user, u, self.user_ids_),
            ("item", item, i, self.item_ids_),
        ):
            n_unseen = int((codes < 0).sum())
            if not n_unseen:
                continue
            parts.append(f"{n_unseen} of {codes.size} {side} ids")
            given_kind = np.atleast_1d(np.asarray(given)).dtype.kind
            seen_kind = np.asarray(seen).dtype.kind
            numeric = set("iuf")
            if (given_kind in numeric) != (seen_kind in numeric) and n_unseen == codes.size:
                hints.append(
                    f"the {side} ids given are {np.atleast_1d(np.asarray(given)).dtype} but "
                    f"fit saw {np.asarray(seen).dtype} ids: convert them (e.g. "
                    f"{'astype(int)' if seen_kind in numeric else 'astype(str)'})"
                )
        if parts:
            hint = ("; " + "; ".join(hints)) if hints else ""
            warnings.warn(
                f"{' and '.join(parts)} were not seen in fit: their predictions fall back to "
                f"the global offset and biases{hint}",
                UnseenIdWarning,
                stacklevel=3,
            )

    def predict_proba_components(self, data, items=None, ratings=None) -> np.ndarray:
        """Responsibilities ``p(component | rating)`` of known ratings, shape (N, n_components)."""
        check_is_fitted(self)
        frame = validate_ratings(data, items, ratings, rating_scale=self.rating_scale_)
        means = self.component_means(frame["user"].to_numpy(), frame["item"].to_numpy())
        resp, _ = e_step(frame["rating"].to_numpy(), means, self.weights_, self.sigmas_)
        return resp

    def recommend(self, user, n: int = 10, *, exclude_rated: bool = True) -> pd.DataFrame:
        """The ``n`` items with the highest predicted rating for ``user``.

        Parameters
        ----------
        user : a user id seen in ``fit``
        n : int, default=10
        exclude_rated : bool, default=True
            Leave out the items the user rated in the training data.

        Returns
        -------
        DataFrame with columns ``item`` and ``predicted_rating``, best first.
        """
        check_is_fitted(self)
        check_positive_int(n, "n")
        u = pd.Index(self.user_ids_).get_indexer([user])[0]
        if u < 0:
            raise ValueError(f"user {user!r} was not seen in fit; recommend needs a known user")
        candidates = np.arange(len(self.item_ids_))
        if exclude_rated:
            rated = self.train_items_[self.train_users_ == u]
            candidates = np.setdiff1d(candidates, rated)
        scores = self._component_means(np.full(candidates.shape, u), candidates) @ self.weights_
        scores = np.clip(scores, *self.rating_scale_)
        top = np.argsort(-scores, kind="stable")[:n]
        return pd.DataFrame(
            {"item": self.item_ids_[candidates[top]], "predicted_rating": scores[top]}
        )

    # ----------------------------------------------------------------- scoring
    def _truth_and_prediction(self, data, items, ratings) -> tuple[np.ndarray, np.ndarray]:
        frame = validate_ratings(data, items, ratings, rating_scale=self.rating_scale_)
        pred = self.predict(frame["user"].to_numpy(), frame["item"].to_numpy())
        return frame["rating"].to_numpy(), pred

    def rmse(self, data, items=None, ratings=None) -> float:
        """Root mean squared error of the predictions on held-out ratings."""
        return rmse(*self._truth_and_prediction(data, items, ratings))

    def mae(self, data, items=None, ratings=None) -> float:
        """Mean absolute error of the predictions on held-out ratings."""
        return mae(*self._truth_and_prediction(data, items, ratings))

    def score(self, data, items=None, ratings=None) -> float:
        """Negative RMSE (higher is better, as scikit-learn's model selection expects)."""
        return -self.rmse(data, items, ratings)

    # --------------------------------------------------------------- save/load
    # save(path) and load(path) come from SaveLoadMixin: one file format for every estimator
    _file_format = "bayesgmm.MPMA/2"
    _file_types = (MPMAPriors,)
    #: Fitted attributes a saved model must hold.
    _file_fitted = (
        "components_", "user_ids_", "item_ids_", "user_groups_", "item_groups_", "weights_",
        "sigmas_", "factors_", "trace_", "warmup_trace_", "converged_", "n_iter_",
        "fit_time_", "priors_", "train_users_", "train_items_", "rating_scale_",
        "local_traces_",
    )  # fmt: skip

    def _to_netcdf(self):
        """Arrays as variables (ids with their exact dtype, every component's factors, the
        Gibbs draws); parameters and scalars as JSON attributes."""
        import xarray as xr

        fitted = fitted_attributes(self)
        factors = fitted.pop("factors_")
        posteriors = fitted.pop("posteriors_", None)
        dims = {
            "user_ids_": ("user",), "item_ids_": ("item",),
            "user_groups_": ("user",), "item_groups_": ("item",),
            "train_users_": ("rating",), "train_items_": ("rating",), "validation_": ("rating",),
            "weights_": ("component",), "sigmas_": ("component",), "trace_": ("iteration",),
            "warmup_trace_": ("warmup_iteration",), "weights_trace_": ("weights_iteration",),
        }  # fmt: skip
        variables, attrs = fitted_variables(self, fitted, dims)
        attrs["factor_offsets"] = [f.offset for f in factors]
        for name, f in zip(self.components_, factors, strict=True):
            for field, value in _factor_arrays(f).items():
                variables[f"factors_{name}_{field}"] = (_factor_dims(name, field), value)
        if posteriors is not None:
            attrs["draw_offsets"] = [[f.offset for f in p.draws] for p in posteriors]
            variables["draw_sigmas"] = (("component", "draw"), [p.sigmas for p in posteriors])
            variables["draw_log_likelihood"] = (
                ("component", "sweep"),
                [p.log_likelihood for p in posteriors],
            )
            for name, p in zip(self.components_, posteriors, strict=True):
                draws = [_factor_arrays(f) for f in p.draws]
                for field in draws[0]:
                    variables[f"draws_{name}_{field}"] = (
                        ("draw", *_factor_dims(name, field)),
                        np.stack([d[field] for d in draws]),
                    )
        return xr.Dataset(variables, coords={"component": list(self.components_)}), attrs

    @classmethod
    def _from_netcdf(cls, data, attrs) -> MPMA:
        model = restore_fitted(cls, data, attrs)
        if not hasattr(model, "rating_scale_"):  # saved before rating_scale_ existed
            model.rating_scale_ = np.array(check_rating_scale(model.rating_scale))
        if "local_traces_" in cls._file_fitted and not hasattr(model, "local_traces_"):
            model.local_traces_ = {}  # saved before local_traces_ existed
        model.factors_ = [
            Factors(offset, **_factor_arrays_from(data, f"factors_{name}"))
            for name, offset in zip(model.components_, attrs["factor_offsets"], strict=True)
        ]
        if "draw_offsets" in attrs:
            model.posteriors_ = [
                _posterior_from(data, name, c, offsets)
                for c, (name, offsets) in enumerate(
                    zip(model.components_, attrs["draw_offsets"], strict=True)
                )
            ]
        require_fitted(model, cls._file_fitted)
        return model


class GibbsMPMA(MPMA):
    """MPMA with hierarchical priors, fitted by Gibbs sampling; predictions average the posterior.

    The same mixture of a global, a user-local and an item-local factorisation as
    :class:`MPMA`, with the priors of Bayesian PMF (Salakhutdinov and Mnih 2008) on every
    component: each side's factors and biases are ``Normal(mu, Lambda**-1)`` with
    ``(mu, Lambda)`` Normal-Wishart, so the shrinkage is learned rather than a fixed
    penalty. Each component is sampled alone on its (sub-)matrices, as in Chen et al.'s
    procedure; the mixture weights are then fitted on a held-out share of the training
    ratings, and (``refit``) the components sampled again on all of them. See
    :mod:`bayesgmm.mpma.gibbs` for the model and the sampler, and
    :mod:`bayesgmm.mpma.implicit` for the implicit-feedback features (``implicit``).

    Parameters
    ----------
    n_factors : int, default=10
    n_user_groups, n_item_groups : int, default=2
        k-means groups of users (items) on the posterior-mean global factors.
    components : tuple of str, default=("global", "user", "item")
        ``("global",)`` is Bayesian PMF.
    use_bias : bool, default=True
    priors : dict, GibbsPriors or None, default=None
        Hyperpriors; None uses :class:`~bayesgmm.mpma.gibbs.GibbsPriors` defaults.
    rating_scale : (float, float) or None, default=None
        As in :class:`MPMA`: None reads it from the data given to ``fit``.
    n_burn : int, default=30
        Gibbs sweeps discarded per component. The default chain is short of stationarity
        in the factor scale (the training log-likelihood levels off after about 300
        sweeps on MovieLens-100K), and on MovieLens it predicts slightly better than the
        stationary chain, which has a smaller sampled noise sd; see BENCHMARKS.md.
    n_draws : int, default=100
        Gibbs sweeps kept per component (predictions average them).
    validation_fraction : float, default=0.05
        Share of the training ratings held out from the components to fit the mixture
        weights (not used with one component).
    implicit : bool, default=False
        Implicit feedback: every entity's prior mean is shifted by a sampled linear map of
        who rated what (SVD++'s implicit term, as Macau's side features; see
        :mod:`bayesgmm.mpma.implicit`), in every component.
    refit : bool, default=True
        After the mixture weights are fitted on the held-out share, sample every component
        again on all the training ratings (same groups) and predict with those draws
        (twice the sweeps). Not used with one component. Without it the components never
        see the held-out share, which cost the mixture about 0.003 RMSE on MovieLens-100K
        u1 (0.9064 vs 0.9037; see BENCHMARKS.md).
    random_state : int or None, default=None
        A seed in [0, 2**32 - 1].
    progressbar : bool, default=True
        Show a progress bar on standard error: one step per Gibbs sweep of every
        component, the status showing the component and its training log-likelihood.

    Attributes
    ----------
    components_, user_ids_, item_ids_, user_groups_, item_groups_, train_users_,
    train_items_, fit_time_, priors_, rating_scale_
        As in :class:`MPMA` (``priors_`` is a ``GibbsPriors``).
    weights_ : ndarray of shape (n_components,)
        Mixture weights fitted on the validation ratings.
    sigmas_ : ndarray of shape (n_components,)
        Posterior mean noise sd per component (rating units).
    factors_ : list of Factors
        Posterior mean factors per component (reporting, and the fallback of unseen users
        and items; predictions average the draws' means instead).
    posteriors_ : list of ComponentPosterior
        The kept draws of every component.
    validation_ : ndarray of shape (N,), bool
        The training ratings held out for ``weights_``.
    weights_trace_ : ndarray
        Log posterior of the weights per EM iteration.

    Examples
    --------
    600 random whole-star ratings of 40 users and 30 items, a short chain:

    >>> import numpy as np, pandas as pd
    >>> from bayesgmm.mpma import GibbsMPMA
    >>> rng = np.random.default_rng(1)
    >>> cell = rng.choice(40 * 30, size=600, replace=False)
    >>> stars = rng.integers(1, 6, size=600).astype(float)
    >>> ratings = pd.DataFrame({"user": cell // 30, "item": cell % 30, "rating": stars})
    >>> model = GibbsMPMA(2, n_burn=5, n_draws=10, random_state=0).fit(ratings)
    >>> len(model.posteriors_), len(model.posteriors_[0].draws)
    (3, 10)
    >>> bool(1.0 <= model.predict([0], [0])[0] <= 5.0)
    True
    """

    _file_format = "bayesgmm.GibbsMPMA/2"
    _file_types = (GibbsPriors,)
    _file_fitted = (
        "components_", "user_ids_", "item_ids_", "user_groups_", "item_groups_", "weights_",
        "sigmas_", "factors_", "posteriors_", "validation_", "weights_trace_", "fit_time_",
        "priors_", "train_users_", "train_items_", "rating_scale_",
    )  # fmt: skip

    def __init__(
        self,
        n_factors: int = 10,
        *,
        n_user_groups: int = 2,
        n_item_groups: int = 2,
        components: tuple[str, ...] = COMPONENTS,
        use_bias: bool = True,
        priors: GibbsPriors | Mapping | None = None,
        rating_scale: tuple[float, float] | None = None,
        n_burn: int = 30,
        n_draws: int = 100,
        validation_fraction: float = 0.05,
        implicit: bool = False,
        refit: bool = True,
        random_state: int | None = None,
        progressbar: bool = True,
    ):
        self.n_factors = n_factors
        self.n_user_groups = n_user_groups
        self.n_item_groups = n_item_groups
        self.components = components
        self.use_bias = use_bias
        self.priors = priors
        self.rating_scale = rating_scale
        self.n_burn = n_burn
        self.n_draws = n_draws
        self.validation_fraction = validation_fraction
        self.implicit = implicit
        self.refit = refit
        self.random_state = random_state
        self.progressbar = progressbar

    def _check_params(self) -> tuple[str, ...]:
        components = self._check_structure()
        if self.n_factors == 0 and not self.use_bias:
            raise ValueError(
                "n_factors=0 with use_bias=False leaves nothing to sample (every prediction "
                "would be the offset): use n_factors >= 1 or use_bias=True"
            )
        check_positive_int(self.n_burn, "n_burn", minimum=0)
        check_positive_int(self.n_draws, "n_draws")
        if not 0.0 < self.validation_fraction < 1.0:
            raise ValueError(
                f"validation_fraction must be in (0, 1), got {self.validation_fraction!r}"
            )
        for name in ("implicit", "refit"):
            if not isinstance(getattr(self, name), bool | np.bool_):
                raise TypeError(f"{name} must be True or False, got {getattr(self, name)!r}")
        return components

    def _progress_total(self, components: tuple[str, ...]) -> int:
        """Gibbs sweeps of every component (twice with ``refit``), and one step for the
        mixture weights."""
        mixture = len(components) > 1
        passes = 1 + int(bool(self.refit) and mixture)
        return (int(self.n_burn) + int(self.n_draws)) * len(components) * passes + mixture

    def fit(self, data, items=None, ratings=None) -> GibbsMPMA:
        """Sample every component, then fit the mixture weights on held-out ratings.

        Parameters
        ----------
        data : DataFrame with columns user, item, rating; or array-like of user ids (N,)
        items, ratings : array-like of shape (N,), optional

        Returns
        -------
        self
        """
        components = self._check_params()
        priors = resolve_priors(self.priors, GibbsPriors)  # fields checked by GibbsPriors
        fit = self._run_fit(
            fit_gibbs, priors, components, data, items, ratings,
            n_burn=int(self.n_burn), n_draws=int(self.n_draws),
            validation_fraction=float(self.validation_fraction),
            implicit=bool(self.implicit), refit=bool(self.refit),
        )  # fmt: skip
        self.weights_, self.sigmas_ = fit.weights, fit.sigmas
        self.posteriors_ = fit.posteriors
        self.factors_ = [p.posterior_mean() for p in fit.posteriors]
        self.validation_ = fit.validation
        self.weights_trace_ = np.asarray(fit.weights_trace)
        return self

    def _component_means(self, u: np.ndarray, i: np.ndarray) -> np.ndarray:
        """Posterior mean of every component's rating mean, shape (N, n_components)."""
        return np.column_stack(
            [p.mean_prediction(ix.rows, ix.cols)
             for p, ix in zip(self.posteriors_, self._indices(u, i), strict=True)]
        )  # fmt: skip

    def predict_proba_components(self, data, items=None, ratings=None) -> np.ndarray:
        """``p(component | rating)`` from the components' posterior predictive densities.

        Shape (N, n_components); users and items must have been seen in ``fit``.
        """
        check_is_fitted(self)
        frame = validate_ratings(data, items, ratings, rating_scale=self.rating_scale_)
        u, i = self._encode_pairs(frame["user"].to_numpy(), frame["item"].to_numpy())
        if np.any(u < 0) or np.any(i < 0):
            raise ValueError("predict_proba_components needs users and items seen in fit")
        r = frame["rating"].to_numpy(dtype=np.float64)
        joint = np.log(self.weights_) + np.column_stack(
            [p.log_predictive(r, ix.rows, ix.cols)
             for p, ix in zip(self.posteriors_, self._indices(u, i), strict=True)]
        )  # fmt: skip
        return np.exp(joint - logsumexp(joint, axis=1, keepdims=True))


def _factor_arrays(factors: Factors) -> dict[str, np.ndarray]:
    """The array fields of a :class:`Factors` (all but the offset), by name."""
    return {
        f.name: getattr(factors, f.name) for f in dataclasses.fields(Factors) if f.name != "offset"
    }


def _factor_dims(component: str, field: str) -> tuple[str, ...]:
    side = f"{field[:3]}_{component}"  # row_<component> or col_<component>
    return (side, "factor") if field.endswith("factors") else (side,)


def _factor_arrays_from(data, prefix: str) -> dict[str, np.ndarray]:
    """The arrays written by ``MPMA._to_netcdf`` as ``<prefix>_<field>``."""
    return {
        f.name: data[f"{prefix}_{f.name}"].values
        for f in dataclasses.fields(Factors)
        if f.name != "offset"
    }


def _posterior_from(data, component: str, c: int, offsets: list) -> ComponentPosterior:
    """Component ``c``'s Gibbs draws as written by ``MPMA._to_netcdf``."""
    arrays = _factor_arrays_from(data, f"draws_{component}")
    draws = [
        Factors(offset, **{field: value[d] for field, value in arrays.items()})
        for d, offset in enumerate(offsets)
    ]
    return ComponentPosterior(
        draws=draws,
        sigmas=data["draw_sigmas"].values[c],
        log_likelihood=data["draw_log_likelihood"].values[c],
    )
