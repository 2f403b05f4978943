"""``GaussianMixture``: the EM estimator, a drop-in for scikit-learn's with MAP priors."""

from __future__ import annotations

import math
import numbers
import warnings

import numpy as np
from sklearn.base import BaseEstimator, DensityMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from bayesgmm._validation import (
    check_choice,
    check_data_matrix,
    check_data_scale,
    check_no_constant_features,
    check_positive_int,
    check_sample_weight,
    check_seed,
    is_dask_collection,
)
from bayesgmm.em.driver import INIT_METHODS, initial_responsibilities, m_step, run_em
from bayesgmm.em.gaussian import (
    COMPONENT_DIM,
    COVARIANCE_TYPES,
    FEATURE_DIM,
    covariance_dims,
    covariance_shape,
    covariances_from_precision_cholesky,
    n_parameters,
    precision_cholesky_from_precisions,
    precisions_from_cholesky,
)
from bayesgmm.em.priors import ConjugatePrior
from bayesgmm.em.sweep import Design, MixtureParams, em_sweep, log_prob_resp, moments_from_resp
from bayesgmm.io import (
    SaveLoadMixin,
    fitted_attributes,
    fitted_variables,
    require_fitted,
    restore_fitted,
)


class DegenerateComponentWarning(UserWarning):
    """A fitted component's covariance is set by ``reg_covar`` rather than by the data."""


class GaussianMixture(SaveLoadMixin, DensityMixin, BaseEstimator):
    """Gaussian mixture fitted by EM (maximum likelihood or MAP), scikit-learn compatible.

    Same parameters, fitted attributes and results as
    :class:`sklearn.mixture.GaussianMixture` (to 1e-8 from identical initial
    parameters), computed faster, plus ``sample_weight`` in :meth:`fit` and MAP-EM
    with conjugate priors (``prior``).

    Data larger than memory: ``fit`` and the predictions also take a ``dask.array.Array``
    (row chunks) or a dask DataFrame of numeric columns (``pip install bayesgmm[dask]``;
    :mod:`bayesgmm.em.dask`). Each EM iteration is then one pass over the chunks on the
    active Dask scheduler, with the same results as in memory (to rounding) from the same
    initial parameters; ``sample_weight`` may be a dask array aligned with the rows.
    Initialisation by ``init_params`` uses up to 100,000 rows drawn uniformly without
    replacement (seeded by ``random_state``; all rows, in order, for smaller data, so
    that it equals the in-memory initialisation), unless ``weights_init``, ``means_init``
    and ``precisions_init`` are all given. ``predict``, ``predict_proba`` and
    ``score_samples`` of a dask array are lazy dask arrays; ``score``, ``bic``, ``aic``
    and ``icl`` compute.

    Parameters
    ----------
    n_components : int, default=1
        Number of mixture components K (>= 1).
    covariance_type : {'full', 'tied', 'diag', 'spherical'}, default='full'
    tol : float, default=1e-3
        Convergence threshold on the change of the objective (mean log-likelihood per
        sample, plus log prior / total weight for MAP-EM).
    reg_covar : float, default=1e-6
        Added to the diagonal of every covariance in every M-step, as scikit-learn does,
        so that components on a few points stay invertible. Set 0 for pure maximum
        likelihood or the exact MAP. Components whose covariance is dominated by it are
        reported (``degenerate_components_`` and a ``DegenerateComponentWarning``).
    max_iter : int, default=100
    n_init : int, default=1
        Number of initialisations; the run with the highest objective is kept.
    init_params : {'kmeans', 'k-means++', 'random', 'random_from_data'}, default='kmeans'
    weights_init, means_init, precisions_init : array-like, optional
        User-given initial parameters (scikit-learn's shapes); they replace the ones
        computed from ``init_params``.
    prior : None, 'default', dict or ConjugatePrior, default=None
        None: maximum likelihood. Otherwise MAP-EM with a Dirichlet prior on the weights
        and a Normal-inverse-Wishart prior on each (mean, covariance): 'default' uses
        mclust's ``priorControl`` defaults, a dict gives :class:`ConjugatePrior` fields.
    random_state : int, RandomState or None, default=None
        A seed in [0, 2**32 - 1] or a ``numpy.random.RandomState``.
    warm_start : bool, default=False
        Start the next ``fit`` from the current solution (``n_init`` is then ignored).
    verbose : int, default=0
        1 prints one line per initialisation, 2 one per iteration.

    Attributes
    ----------
    weights_ : ndarray (n_components,)
    means_ : ndarray (n_components, n_features)
    covariances_, precisions_, precisions_cholesky_ : ndarray
        Shapes (K, D, D) full, (D, D) tied, (K, D) diag, (K,) spherical.
    converged_ : bool
    n_iter_ : int
    lower_bound_ : float
        Final objective of the best run (mean log-likelihood per sample for ML).
    lower_bounds_ : list of float
        Objective per iteration of the best run (the convergence trace).
    prior_ : dict or None
        The resolved prior hyperparameters (data-scaled defaults filled in).
    degenerate_components_ : ndarray of int
        Components whose covariance has a direction narrower than ``reg_covar`` would
        leave it (i.e. set by the regularisation, not the data).
    n_features_in_, feature_names_in_ : as in scikit-learn.

    Examples
    --------
    >>> from bayesgmm import GaussianMixture
    >>> from bayesgmm.datasets import load_faithful
    >>> X = load_faithful()
    >>> gm = GaussianMixture(2, random_state=0).fit(X)
    >>> gm.converged_, gm.weights_.round(3).tolist()
    (True, [0.356, 0.644])
    >>> gm.means_.round(1).tolist()
    [[2.0, 54.5], [4.3, 80.0]]
    >>> gm.predict(X.iloc[:3]).tolist(), round(gm.bic(X), 1)
    ([1, 0, 1], 2322.2)
    >>> GaussianMixture(2, prior="default", random_state=0).fit(X).prior_ is not None   # MAP-EM
    True
    """

    def __init__(
        self,
        n_components: int = 1,
        *,
        covariance_type: str = "full",
        tol: float = 1e-3,
        reg_covar: float = 1e-6,
        max_iter: int = 100,
        n_init: int = 1,
        init_params: str = "kmeans",
        weights_init=None,
        means_init=None,
        precisions_init=None,
        prior=None,
        random_state=None,
        warm_start: bool = False,
        verbose: int = 0,
    ):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weights_init = weights_init
        self.means_init = means_init
        self.precisions_init = precisions_init
        self.prior = prior
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose

    # ------------------------------------------------------------------ checks
    def _check_params(self) -> None:
        check_positive_int(self.n_components, "n_components")
        check_choice(self.covariance_type, "covariance_type", COVARIANCE_TYPES)
        check_choice(self.init_params, "init_params", INIT_METHODS)
        check_positive_int(self.max_iter, "max_iter", minimum=0)
        check_positive_int(self.n_init, "n_init")
        for name in ("tol", "reg_covar"):
            value = getattr(self, name)
            if not isinstance(value, numbers.Real) or not value >= 0 or math.isinf(value):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if not isinstance(self.verbose, bool):
            check_positive_int(self.verbose, "verbose", minimum=0)
        check_seed(self.random_state, instances=(np.random.RandomState,))

    def _check_given_init(self, n_features: int) -> dict:
        """The user-given ``weights_init``, ``means_init``, ``precisions_init``, checked
        (type, shape, values; scikit-learn's messages) before any work."""
        given = {}
        if self.weights_init is not None:
            weights = _check_init(self.weights_init, (self.n_components,), "weights_init")
            if (weights < 0).any() or (weights > 1).any():
                raise ValueError(
                    "The parameter 'weights' should be in the range [0, 1], but got max value "
                    f"{weights.max():.5f}, min value {weights.min():.5f}: weights_init must "
                    "be non-negative and sum to 1"
                )
            if not np.isclose(weights.sum(), 1.0, rtol=0.0, atol=1e-8):
                raise ValueError(
                    "The parameter 'weights' should be normalized, but got sum(weights) = "
                    f"{weights.sum():.5f}: weights_init must be non-negative and sum to 1 "
                    "(divide it by its sum)"
                )
            given["weights"] = weights
        if self.means_init is not None:
            shape = (self.n_components, n_features)
            given["means"] = _check_init(self.means_init, shape, "means_init")
        if self.precisions_init is not None:
            shape = covariance_shape(self.covariance_type, self.n_components, n_features)
            precisions = _check_init(
                self.precisions_init, shape, "precisions_init", f"{self.covariance_type} precision"
            )
            prec_chol = precision_cholesky_from_precisions(precisions, self.covariance_type)
            given["precisions_cholesky"] = prec_chol
            given["covariances"] = covariances_from_precision_cholesky(
                prec_chol, self.covariance_type
            )
        return given

    def _resolve_prior(self, X, sample_weight):
        spec = self._prior_spec()
        if spec is None:
            return None
        return spec.resolve(X, sample_weight, self.n_components, self.covariance_type)

    def _prior_spec(self) -> ConjugatePrior | None:
        if self.prior is None:
            return None
        if isinstance(self.prior, str):
            check_choice(self.prior, "prior", ("default",))
            spec = ConjugatePrior()
        elif isinstance(self.prior, dict):
            try:
                spec = ConjugatePrior(**self.prior)
            except TypeError as err:
                raise ValueError(f"invalid prior fields: {err}") from None
        elif isinstance(self.prior, ConjugatePrior):
            spec = self.prior
        else:
            raise ValueError(
                "prior must be None, 'default', a dict of ConjugatePrior fields or a "
                f"ConjugatePrior, got {type(self.prior).__name__}"
            )
        return spec

    def _validate_X(self, X, *, reset: bool) -> np.ndarray:
        checked = check_data_matrix(X, min_samples=2 if reset else 1)
        if reset:
            validate_data(self, X, reset=True, skip_check_array=True)
            return checked
        validate_data(self, X, reset=False, skip_check_array=True)
        if checked.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {checked.shape[1]} features, but {type(self).__name__} was fitted "
                f"with {self.n_features_in_} features"
            )
        return checked

    # --------------------------------------------------------------------- fit
    def fit(self, X, y=None, sample_weight=None) -> GaussianMixture:
        """Estimate the parameters by EM; see :meth:`fit_predict`."""
        if is_dask_collection(X):
            self._fit_dask(X, sample_weight)
            return self
        self.fit_predict(X, y, sample_weight=sample_weight)
        return self

    def fit_predict(self, X, y=None, sample_weight=None) -> np.ndarray:
        """Fit by EM (``n_init`` restarts, best objective kept) and label ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), or a dask array / DataFrame
        y : ignored
        sample_weight : array-like of shape (n_samples,), optional
            Non-negative observation weights; integer weights are equivalent to
            repeating rows. A dask array (aligned with X's rows) for dask ``X``.

        Returns
        -------
        labels : ndarray of shape (n_samples,) (a lazy dask array for dask ``X``)
        """
        if is_dask_collection(X):
            self._fit_dask(X, sample_weight)
            return self.predict(X)
        self._check_params()
        do_init = not (self.warm_start and hasattr(self, "converged_"))
        if not do_init:  # the warm start continues from parameters of this many features
            self._validate_X(X, reset=False)
        X = self._validate_X(X, reset=True)
        sample_weight = check_sample_weight(sample_weight, X.shape[0])
        if X.shape[0] < self.n_components:
            raise ValueError(
                f"Expected n_samples >= n_components but got n_components = "
                f"{self.n_components}, n_samples = {X.shape[0]}: X has {X.shape[0]} samples "
                f"but n_components={self.n_components}, and a mixture needs at least as many "
                "samples as components; reduce n_components"
            )
        names = getattr(self, "feature_names_in_", None)
        check_data_scale(X, names=names)
        check_no_constant_features(X, sample_weight, names)
        given = self._check_given_init(X.shape[1])
        prior = self._resolve_prior(X, sample_weight)
        design = Design(X, self.covariance_type, sample_weight)
        random_state = check_random_state(self.random_state)

        def initial(random_state):
            return self._initial_params(X, design, random_state, prior, sample_weight, given)

        self._run_inits(design, initial, random_state, prior, do_init)
        # final E-step so that fit_predict(X) == fit(X).predict(X)
        _, resp = log_prob_resp(design, self._params())
        return resp.argmax(axis=1)

    def _fit_dask(self, X, sample_weight) -> None:
        """:meth:`fit` on a dask array or DataFrame: one pass over the chunks per EM
        iteration (:mod:`bayesgmm.em.dask`)."""
        from bayesgmm.em import dask as dask_em

        self._check_params()
        do_init = not (self.warm_start and hasattr(self, "converged_"))
        checked = dask_em.as_dask_array(X)
        if not do_init:  # the warm start continues from parameters of this many features
            self._check_features(dask_em.columns_view(X), checked.shape[1])
        validate_data(self, dask_em.columns_view(X), reset=True, skip_check_array=True)
        given = self._check_given_init(checked.shape[1])  # before any pass over the data
        data = dask_em.ChunkedData(checked, sample_weight, self.covariance_type, min_samples=2)
        if data.n_samples < self.n_components:
            raise ValueError(
                f"Expected n_samples >= n_components but got n_components = "
                f"{self.n_components}, n_samples = {data.n_samples}: X has {data.n_samples} "
                f"samples but n_components={self.n_components}, and a mixture needs at least "
                "as many samples as components; reduce n_components"
            )
        data.check_spread(getattr(self, "feature_names_in_", None))
        spec = self._prior_spec()
        prior = (
            None
            if spec is None
            else spec.resolve_from_moments(
                data.center, data.covariance, self.n_components, self.covariance_type
            )
        )
        random_state = check_random_state(self.random_state)
        if do_init and len(given) < 4:
            X_init, weight_init = data.sample(random_state)
            design = Design(X_init, self.covariance_type, weight_init)
        else:
            X_init = weight_init = design = None

        def initial(random_state):
            return self._initial_params(X_init, design, random_state, prior, weight_init, given)

        self._run_inits(
            data, initial, random_state, prior, do_init, dask_em.chunked_sweep, stacklevel=4
        )

    def _run_inits(
        self, design, initial, random_state, prior, do_init, sweep=em_sweep, stacklevel=3
    ):
        """EM from ``n_init`` initialisations (``initial(random_state)``), or from the
        current solution (warm start); keep the best run and set the fitted attributes."""
        best = None
        for init in range(self.n_init if do_init else 1):
            if do_init:
                params = initial(random_state)
                start = -np.inf
            else:
                params, start = self._params(), self.lower_bound_
            if self.max_iter == 0:
                run_params, trace, converged, n_iter = params, [], False, 0
            else:
                run = run_em(
                    design,
                    params,
                    covariance_type=self.covariance_type,
                    reg_covar=self.reg_covar,
                    prior=prior,
                    tol=self.tol,
                    max_iter=self.max_iter,
                    start_objective=start,
                    on_iteration=self._print_iteration if self.verbose >= 2 else None,
                    sweep=sweep,
                )
                run_params, trace = run.params, run.objective_trace
                converged, n_iter = run.converged, run.n_iter
                if self.verbose >= 1:
                    print(f"init {init}: objective {run.objective:.6g}, converged={converged}")
            objective = trace[-1] if trace else -np.inf
            if best is None or objective > best[0]:
                best = (objective, run_params, trace, converged, n_iter)

        objective, params, trace, converged, n_iter = best
        if not converged and self.max_iter > 0:
            warnings.warn(
                "Best performing initialization did not converge. Try different init "
                "parameters, or increase max_iter, tol, or check for degenerate data. (EM did "
                "not converge for the best initialisation: increase max_iter or tol, try "
                "other initialisations (n_init), or check for degenerate data.)",
                ConvergenceWarning,
                stacklevel=stacklevel,
            )
        self._set_params(params)
        self.converged_ = converged
        self.n_iter_ = n_iter
        self.lower_bound_ = objective
        self.lower_bounds_ = trace
        self.prior_ = None if prior is None else prior.as_dict()
        self._report_degenerate(stacklevel + 1)

    def _initial_params(
        self, X, design, random_state, prior, sample_weight, given: dict
    ) -> MixtureParams:
        """Initial parameters: those computed from ``init_params``, replaced by the
        checked user-given ones (``given``, from :meth:`_check_given_init`)."""
        if len(given) < 4:  # weights, means, precisions_cholesky and covariances
            resp = initial_responsibilities(
                X, self.n_components, self.init_params, random_state, sample_weight
            )
            moments = moments_from_resp(design, resp)
            computed = MixtureParams(*m_step(moments, self.covariance_type, self.reg_covar, prior))
            return computed._replace(**given)
        return MixtureParams(**given)

    @staticmethod
    def _print_iteration(n_iter: int, objective: float) -> None:
        print(f"  iteration {n_iter}: objective {objective:.10g}")

    def _params(self) -> MixtureParams:
        return MixtureParams(
            self.weights_, self.means_, self.covariances_, self.precisions_cholesky_
        )

    def _set_params(self, params: MixtureParams) -> None:
        self.weights_, self.means_, self.covariances_, self.precisions_cholesky_ = params
        self.precisions_ = precisions_from_cholesky(self.precisions_cholesky_, self.covariance_type)

    def _report_degenerate(self, stacklevel: int = 4) -> None:
        cov = self.covariances_
        if self.covariance_type in ("full", "tied"):
            stack = cov[None] if self.covariance_type == "tied" else cov
            smallest = np.linalg.eigvalsh(stack)[:, 0]
        elif self.covariance_type == "diag":
            smallest = cov.min(axis=1)
        else:
            smallest = cov
        # covariance = data part + reg_covar: the data part is below reg_covar
        degenerate = np.flatnonzero(smallest < 2.0 * self.reg_covar)
        self.degenerate_components_ = degenerate
        if degenerate.size:
            warnings.warn(
                f"component(s) {degenerate.tolist()} collapsed: in at least one direction "
                "their covariance is set by reg_covar, not by the data. Reduce "
                "n_components, set a prior (prior='default'), or check for duplicated points.",
                DegenerateComponentWarning,
                stacklevel=stacklevel,
            )

    # ------------------------------------------------------------- inference
    def _check_features(self, X, n_features: int) -> None:
        validate_data(self, X, reset=False, skip_check_array=True)
        if n_features != self.n_features_in_:
            raise ValueError(
                f"X has {n_features} features, but {type(self).__name__} was fitted "
                f"with {self.n_features_in_} features"
            )

    def _log_prob_resp(self, X):
        check_is_fitted(self)
        X = self._validate_X(X, reset=False)
        return log_prob_resp(Design(X, self.covariance_type), self._params())

    def _lazy(self, X, what: str):
        """Per-row results on a dask ``X``, lazily (:func:`bayesgmm.em.dask.lazy_predictions`)."""
        from bayesgmm.em import dask as dask_em

        check_is_fitted(self)
        checked = dask_em.as_dask_array(X)
        self._check_features(dask_em.columns_view(X), checked.shape[1])
        return dask_em.lazy_predictions(checked, self.covariance_type, self._params(), what)

    def score_samples(self, X) -> np.ndarray:
        """Log-density ``log p(x_i)`` of each sample, shape (n_samples,) (lazy for dask X)."""
        if is_dask_collection(X):
            return self._lazy(X, "score")
        return self._log_prob_resp(X)[0]

    def score(self, X, y=None, sample_weight=None) -> float:
        """Mean (weighted) log-likelihood per sample."""
        log_density = self.score_samples(X)
        if is_dask_collection(X):
            import dask

            if sample_weight is None:
                return float(log_density.mean().compute())
            weight = sample_weight
            if not is_dask_collection(weight):
                weight = check_sample_weight(weight, len(log_density))
            total, weight_sum = dask.compute((log_density * weight).sum(), weight.sum())
            return float(total / weight_sum)
        weight = check_sample_weight(sample_weight, len(log_density))
        return float(np.average(log_density, weights=weight))

    def predict(self, X) -> np.ndarray:
        """Most probable component of each sample, shape (n_samples,) (lazy for dask X)."""
        if is_dask_collection(X):
            return self._lazy(X, "label")
        return self._log_prob_resp(X)[1].argmax(axis=1)

    def predict_proba(self, X) -> np.ndarray:
        """Responsibilities p(z_i = k | x_i), shape (n_samples, n_components) (lazy for
        dask X)."""
        if is_dask_collection(X):
            return self._lazy(X, "proba")
        return self._log_prob_resp(X)[1]

    def _total_log_density(self, X) -> tuple[float, int]:
        """``(sum_i log p(x_i), n_samples)``; computed for dask X."""
        log_density = self.score_samples(X)
        total = log_density.sum()
        return float(total.compute() if is_dask_collection(X) else total), len(log_density)

    def sample(self, n_samples: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Draw ``(X, labels)`` from the fitted mixture (uses ``random_state``)."""
        check_is_fitted(self)
        if isinstance(n_samples, numbers.Integral) and n_samples < 1:
            raise ValueError(
                f"Invalid value for 'n_samples': {n_samples} . The sampling requires at least "
                "one sample: n_samples must be an integer >= 1"
            )
        n_samples = check_positive_int(n_samples, "n_samples")
        rng = check_random_state(self.random_state)
        counts = rng.multinomial(n_samples, self.weights_ / self.weights_.sum())
        n_features = self.means_.shape[1]
        covariances = self.covariances_
        if self.covariance_type == "tied":
            covariances = np.broadcast_to(covariances, (self.n_components, n_features, n_features))
        draws = []
        for k, count in enumerate(counts):
            z = rng.standard_normal((count, n_features))
            if self.covariance_type in ("full", "tied"):
                z = z @ np.linalg.cholesky(covariances[k]).T
            else:
                z = z * np.sqrt(covariances[k])
            draws.append(self.means_[k] + z)
        labels = np.repeat(np.arange(self.n_components), counts)
        return np.vstack(draws), labels

    def reorder_components(self, order) -> GaussianMixture:
        """Permute the fitted components in place: component ``j`` becomes old ``order[j]``.

        The mixture is unchanged (labels are arbitrary); e.g.
        ``gm.reorder_components(np.argsort(gm.means_[:, 0]))`` sorts by the first feature.
        """
        check_is_fitted(self)
        order = np.asarray(order)
        if sorted(order.tolist()) != list(range(self.n_components)):
            raise ValueError(f"order must be a permutation of 0..{self.n_components - 1}")
        self.weights_ = self.weights_[order]
        self.means_ = self.means_[order]
        if self.covariance_type != "tied":
            self.covariances_ = self.covariances_[order]
            self.precisions_cholesky_ = self.precisions_cholesky_[order]
            self.precisions_ = self.precisions_[order]
        return self

    # ------------------------------------------------------- model selection
    def _n_parameters(self) -> int:
        return n_parameters(self.n_components, self.means_.shape[1], self.covariance_type)

    def aic(self, X) -> float:
        """Akaike information criterion on X (lower is better)."""
        total, _ = self._total_log_density(X)
        return float(-2.0 * total + 2.0 * self._n_parameters())

    def bic(self, X) -> float:
        """Bayesian information criterion on X (lower is better)."""
        total, n_samples = self._total_log_density(X)
        return float(-2.0 * total + self._n_parameters() * math.log(n_samples))

    def icl(self, X) -> float:
        """Integrated completed likelihood (Biernacki et al. 2000), lower is better.

        ``BIC - 2 sum_i log tau_{i, c_i}`` with ``c_i`` the most probable component:
        the BIC penalised by the entropy of the hard classification, as mclust's ``icl``
        (which reports the negative, higher-is-better).
        """
        if is_dask_collection(X):
            import dask

            log_density, resp = self.score_samples(X), self.predict_proba(X)
            with np.errstate(divide="ignore"):
                log_density, classification = dask.compute(
                    log_density.sum(), np.log(resp.max(axis=1)).sum()
                )
            n_samples = len(resp)
        else:
            log_density, resp = self._log_prob_resp(X)
            with np.errstate(divide="ignore"):
                classification = np.log(resp.max(axis=1)).sum()
            log_density, n_samples = log_density.sum(), len(log_density)
        bic = -2.0 * log_density + self._n_parameters() * math.log(n_samples)
        return float(bic - 2.0 * classification)

    # -------------------------------------------------------------- save/load
    # save(path) and load(path) come from SaveLoadMixin: one file format for every estimator
    _file_format = "bayesgmm.GaussianMixture/2"
    _file_types = (ConjugatePrior,)

    def _to_netcdf(self):
        """Fitted arrays as variables with named dims; the parameters (``random_state``: an
        int, None or a RandomState with its current state) and the other fitted attributes
        as JSON attributes."""
        import xarray as xr

        cov_dims = covariance_dims(self.covariance_type)
        dims = {
            "weights_": (COMPONENT_DIM,),
            "means_": (COMPONENT_DIM, FEATURE_DIM),
            "covariances_": cov_dims,
            "precisions_": cov_dims,
            "precisions_cholesky_": cov_dims,
            "degenerate_components_": ("degenerate",),
            "feature_names_in_": (FEATURE_DIM,),
        }
        variables, attrs = fitted_variables(self, fitted_attributes(self), dims)
        return xr.Dataset(variables), attrs

    @classmethod
    def _from_netcdf(cls, data, attrs) -> GaussianMixture:
        estimator = restore_fitted(cls, data, attrs)
        required = (
            "weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_",
            "converged_", "n_iter_", "lower_bound_", "lower_bounds_", "prior_",
            "degenerate_components_", "n_features_in_",
        )  # fmt: skip
        require_fitted(estimator, required)
        k, d = estimator.n_components, estimator.n_features_in_
        cov_shape = covariance_shape(estimator.covariance_type, k, d)
        shapes = {"weights_": (k,), "means_": (k, d), "covariances_": cov_shape}
        shapes |= {"precisions_": cov_shape, "precisions_cholesky_": cov_shape}
        for name, shape in shapes.items():
            if getattr(estimator, name).shape != shape:
                raise ValueError(
                    f"{name} has shape {getattr(estimator, name).shape}, expected {shape}"
                )
        return estimator

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        return tags


def _check_init(value, shape: tuple, name: str, sklearn_name: str | None = None) -> np.ndarray:
    """``value`` as a finite float64 array of ``shape``; errors name ``name`` and include
    scikit-learn's message (its parameter ``sklearn_name``, default ``name`` less _init)."""
    sklearn_name = sklearn_name or name.removesuffix("_init")
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise TypeError(
            f"{name} must be a numeric array of shape {shape}, got {value!r} ({err})"
        ) from None
    if arr.shape != shape:
        raise ValueError(
            f"The parameter '{sklearn_name}' should have the shape of {shape}, but got "
            f"{arr.shape}: {name} must have shape {shape}, got {arr.shape}"
        )
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or inf: give finite values")
    return arr.copy()


__all__ = ["DegenerateComponentWarning", "GaussianMixture"]
