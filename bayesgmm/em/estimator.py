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
    check_feature_spread,
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
from bayesgmm.em.missing import (
    NAN_POLICIES,
    IncompleteData,
    check_noise_cov,
    conditional_means,
    incomplete_log_prob_resp,
    incomplete_moments_from_resp,
    incomplete_sweep,
    observed_mean_and_covariance,
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

    Missing values and measurement errors (:mod:`bayesgmm.em.missing`): with
    ``nan_policy='marginalize'`` (the default) a NaN in ``X`` is a missing entry (missing
    at random): EM marginalises it (Ghahramani & Jordan 1994), ``score_samples`` gives the
    log-density of each row's observed coordinates, and :meth:`impute` fills the NaN with
    their conditional means. ``nan_policy='raise'`` refuses NaN, as scikit-learn does.
    ``fit(X, noise_cov=S)`` runs extreme deconvolution (Bovy, Hogg & Roweis 2011): row
    ``i`` is a true point of the mixture plus Gaussian noise of covariance ``S[i]``, so
    component ``k``'s density for it is ``N(x_i | mu_k, Sigma_k + S_i)``; the fitted
    parameters are those of the deconvolved (noise-free) mixture, and :meth:`deconvolve`
    gives the posterior means of the true points. NaN and noise combine (the missing
    coordinates of ``Sigma_k + S_i`` are marginalised). Without NaN and with
    ``noise_cov=None`` (or all zeros) every result is exactly the complete-data one.
    Rows with every coordinate missing carry no information: ``fit`` drops them with a
    ``UserWarning`` naming how many (an error if no row is left); the prediction methods
    give them the weights as responsibilities and a log-likelihood of 0. Dask input keeps
    refusing NaN and ``noise_cov`` (EM with missing values runs in memory).

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
    nan_policy : {'marginalize', 'raise'}, default='marginalize'
        'marginalize': NaN entries are missing at random and are integrated out (see
        above); the scikit-learn tag ``allow_nan`` is then True. 'raise': NaN is refused
        with a ValueError, scikit-learn's behaviour. inf is always refused.

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
        nan_policy: str = "marginalize",
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
        self.nan_policy = nan_policy

    # ------------------------------------------------------------------ checks
    def _check_params(self) -> None:
        check_positive_int(self.n_components, "n_components")
        check_choice(self.covariance_type, "covariance_type", COVARIANCE_TYPES)
        check_choice(self.init_params, "init_params", INIT_METHODS)
        check_choice(self.nan_policy, "nan_policy", NAN_POLICIES)
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

    def _validate_X(self, X, *, reset: bool, allow_nan: bool | None = None) -> np.ndarray:
        if allow_nan is None:
            allow_nan = self.nan_policy == "marginalize"
        checked = check_data_matrix(X, min_samples=2 if reset else 1, allow_nan=allow_nan)
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
    def fit(self, X, y=None, sample_weight=None, *, noise_cov=None) -> GaussianMixture:
        """Estimate the parameters by EM; see :meth:`fit_predict`."""
        if is_dask_collection(X):
            _refuse_dask_noise(noise_cov)
            self._fit_dask(X, sample_weight)
            return self
        self.fit_predict(X, y, sample_weight=sample_weight, noise_cov=noise_cov)
        return self

    def fit_predict(self, X, y=None, sample_weight=None, *, noise_cov=None) -> np.ndarray:
        """Fit by EM (``n_init`` restarts, best objective kept) and label ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), or a dask array / DataFrame
            NaN marks a missing entry (``nan_policy='marginalize'``; not for dask input).
        y : ignored
        sample_weight : array-like of shape (n_samples,), optional
            Non-negative observation weights; integer weights are equivalent to
            repeating rows. A dask array (aligned with X's rows) for dask ``X``.
        noise_cov : array-like of shape (n_samples, n_features, n_features) or \
(n_samples, n_features), optional
            Measurement-error covariance of each row (symmetric positive semi-definite),
            or the error variances of each coordinate: extreme deconvolution (the fitted
            mixture is the noise-free one). Entries of missing coordinates are ignored
            (they may be NaN). All zeros is the same as None.

        Returns
        -------
        labels : ndarray of shape (n_samples,) (a lazy dask array for dask ``X``)
        """
        if is_dask_collection(X):
            _refuse_dask_noise(noise_cov)
            self._fit_dask(X, sample_weight)
            return self.predict(X)
        self._check_params()
        do_init = not (self.warm_start and hasattr(self, "converged_"))
        if not do_init:  # the warm start continues from parameters of this many features
            self._validate_X(X, reset=False)
        X = self._validate_X(X, reset=True)
        sample_weight = check_sample_weight(sample_weight, X.shape[0])
        noise = check_noise_cov(noise_cov, X)
        if noise is not None or np.isnan(X).any():
            return self._fit_incomplete(X, sample_weight, noise, do_init)
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

    def _fit_incomplete(self, X, sample_weight, noise, do_init) -> np.ndarray:
        """:meth:`fit_predict` for rows with NaN and/or measurement errors: EM of
        :mod:`bayesgmm.em.missing` (rows with nothing observed dropped, with a warning)."""
        X_all, noise_all = X, noise
        observed = ~np.isnan(X)
        empty = ~observed.any(axis=1)
        if empty.all():
            raise ValueError(
                "every row of X has every coordinate missing (NaN): there is nothing to fit"
            )
        if empty.any():
            rows = np.flatnonzero(empty)
            warnings.warn(
                f"{rows.size} row(s) of X have every coordinate missing (NaN), first at "
                f"{rows[:5].tolist()}: they carry no information and were dropped from the "
                "fit (predictions give them the mixture weights and a log-likelihood of 0)",
                UserWarning,
                stacklevel=4,
            )
            keep = ~empty
            X, observed = X[keep], observed[keep]
            sample_weight = None if sample_weight is None else sample_weight[keep]
            noise = None if noise is None else noise[keep]
            if sample_weight is not None and not sample_weight.sum() > 0:
                raise ValueError(
                    "sample_weight sums to zero over the rows with an observed coordinate"
                )
        names = getattr(self, "feature_names_in_", None)
        never = np.flatnonzero(~observed.any(axis=0))
        if never.size:
            labels = [str(names[j]) if names is not None else f"column {j}" for j in never]
            raise ValueError(
                f"feature(s) {labels} have no observed value (all NaN): a mixture cannot "
                "estimate them; drop the feature"
            )
        if X.shape[0] < self.n_components:
            raise ValueError(
                f"Expected n_samples >= n_components but got n_components = "
                f"{self.n_components}, n_samples = {X.shape[0]}: X has {X.shape[0]} samples "
                f"with an observed coordinate but n_components={self.n_components}, and a "
                "mixture needs at least as many samples as components; reduce n_components"
            )
        positive = X if sample_weight is None else X[sample_weight > 0]
        with warnings.catch_warnings(), np.errstate(invalid="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns of `positive`
            spread = np.nanmax(X, axis=0) - np.nanmin(X, axis=0)
            positive_spread = np.nanmax(positive, axis=0) - np.nanmin(positive, axis=0)
        positive_spread[np.isnan(positive_spread)] = 0.0
        check_feature_spread(
            spread, names=names, positive_spread=positive_spread, n_positive=len(positive)
        )
        given = self._check_given_init(X.shape[1])
        spec = self._prior_spec()
        if spec is None:
            prior = None
        elif not np.isnan(X).any():
            prior = spec.resolve(X, sample_weight, self.n_components, self.covariance_type)
        else:  # the data-scaled defaults from the ML mean and covariance of incomplete rows
            mean, cov = observed_mean_and_covariance(X, sample_weight)
            prior = spec.resolve_from_moments(mean, cov, self.n_components, self.covariance_type)
        data = IncompleteData(X, sample_weight, noise)
        random_state = check_random_state(self.random_state)
        cov_type = self.covariance_type

        def initial(random_state):
            return self._initial_incomplete(X, data, random_state, prior, sample_weight, given)

        def sweep(data, params):
            return incomplete_sweep(data, params, cov_type)

        self._run_inits(data, initial, random_state, prior, do_init, sweep, stacklevel=5)
        # final E-step so that fit_predict(X) == fit(X).predict(X)
        data = IncompleteData(X_all, noise_cov=noise_all)
        return incomplete_log_prob_resp(data, self._params(), cov_type)[1].argmax(axis=1)

    def _initial_incomplete(self, X, data, random_state, prior, sample_weight, given: dict):
        """Initial parameters for incomplete or noisy rows.

        ``init_params`` runs on the rows with each NaN filled by its column's observed
        mean, except 'kmeans' when values are missing: k-means on the complete rows (on
        the mean-filled rows if fewer than ``10 K D`` rows are complete), then every row
        is labelled by its nearest centre on its observed coordinates. (k-means on
        mean-filled rows alone makes spurious clusters of rows missing the same
        coordinate.) Then the complete-data M-step of those responsibilities on the
        filled rows, and the incomplete-data M-step from there (same responsibilities,
        conditional expectations of the missing entries and true points); the checked
        user-given parameters (``given``) replace the computed ones.
        """
        if len(given) == 4:
            return MixtureParams(**given)
        missing = np.isnan(X)
        weight = np.ones(len(X)) if sample_weight is None else sample_weight
        column_means = weight @ np.where(missing, 0.0, X) / (weight @ ~missing)
        filled = np.where(missing, column_means, X)
        if self.init_params == "kmeans" and missing.any():
            resp = _partial_kmeans(X, filled, self.n_components, random_state, sample_weight)
        else:
            resp = initial_responsibilities(
                filled, self.n_components, self.init_params, random_state, sample_weight
            )
        cov_type, reg = self.covariance_type, self.reg_covar
        moments = moments_from_resp(Design(filled, cov_type, sample_weight), resp)
        first = MixtureParams(*m_step(moments, cov_type, reg, prior))
        moments = incomplete_moments_from_resp(data, first, resp, cov_type)
        return MixtureParams(*m_step(moments, cov_type, reg, prior))._replace(**given)

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

    def _log_prob_resp(self, X, noise_cov=None):
        check_is_fitted(self)
        X = self._validate_X(X, reset=False)
        noise = check_noise_cov(noise_cov, X)
        if noise is None and not np.isnan(X).any():
            return log_prob_resp(Design(X, self.covariance_type), self._params())
        data = IncompleteData(X, noise_cov=noise)
        return incomplete_log_prob_resp(data, self._params(), self.covariance_type)

    def _lazy(self, X, what: str):
        """Per-row results on a dask ``X``, lazily (:func:`bayesgmm.em.dask.lazy_predictions`)."""
        from bayesgmm.em import dask as dask_em

        check_is_fitted(self)
        checked = dask_em.as_dask_array(X)
        self._check_features(dask_em.columns_view(X), checked.shape[1])
        return dask_em.lazy_predictions(checked, self.covariance_type, self._params(), what)

    def score_samples(self, X, *, noise_cov=None) -> np.ndarray:
        """Log-density ``log p(x_i)`` of each sample, shape (n_samples,) (lazy for dask X).

        With NaN: the density of the row's observed coordinates (0 for a row with none);
        with ``noise_cov`` (see :meth:`fit_predict`): the density of the noisy
        observation, ``sum_k w_k N(x_i | mu_k, Sigma_k + S_i)``.
        """
        if is_dask_collection(X):
            _refuse_dask_noise(noise_cov)
            return self._lazy(X, "score")
        return self._log_prob_resp(X, noise_cov)[0]

    def score(self, X, y=None, sample_weight=None, *, noise_cov=None) -> float:
        """Mean (weighted) log-likelihood per sample (see :meth:`score_samples`)."""
        log_density = self.score_samples(X, noise_cov=noise_cov)
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

    def predict(self, X, *, noise_cov=None) -> np.ndarray:
        """Most probable component of each sample, shape (n_samples,) (lazy for dask X).
        NaN and ``noise_cov`` as in :meth:`score_samples`."""
        if is_dask_collection(X):
            _refuse_dask_noise(noise_cov)
            return self._lazy(X, "label")
        return self._log_prob_resp(X, noise_cov)[1].argmax(axis=1)

    def predict_proba(self, X, *, noise_cov=None) -> np.ndarray:
        """Responsibilities p(z_i = k | x_i), shape (n_samples, n_components) (lazy for
        dask X). NaN and ``noise_cov`` as in :meth:`score_samples` (a row with nothing
        observed gets the weights)."""
        if is_dask_collection(X):
            _refuse_dask_noise(noise_cov)
            return self._lazy(X, "proba")
        return self._log_prob_resp(X, noise_cov)[1]

    def impute(self, X) -> np.ndarray:
        """``X`` with each NaN replaced by its conditional mean under the fitted mixture.

        ``E[x_miss | x_obs] = sum_k p(k | x_obs) E_k[x_miss | x_obs]``: the
        responsibility-weighted conditional means of the components given the row's
        observed coordinates (the weighted component means for a row with nothing
        observed). Observed entries are returned unchanged. NaN is accepted whatever
        ``nan_policy``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        X_imputed : ndarray of shape (n_samples, n_features)
        """
        return self.deconvolve(X, None)

    def deconvolve(self, X, noise_cov) -> np.ndarray:
        """Posterior mean of each row's true position under the fitted (deconvolved) mixture.

        Row ``i`` is a true point of the mixture seen with noise of covariance
        ``noise_cov[i]`` (shapes as in :meth:`fit_predict`) and possibly missing entries
        (NaN); returns ``E[v_i | x_i] = sum_k p(k | x_i) (mu_k + Sigma_k T_ik^-1 (x_i -
        mu_k))`` over the observed coordinates, ``T_ik = (Sigma_k + S_i)_oo``, missing
        entries included. Coordinates measured without error (zero variance) are returned
        unchanged; ``noise_cov=None`` is :meth:`impute`.

        Returns
        -------
        X_true : ndarray of shape (n_samples, n_features)
        """
        check_is_fitted(self)
        if is_dask_collection(X):
            raise TypeError(
                "impute and deconvolve take in-memory arrays, not dask collections: "
                "apply them chunk by chunk (X.map_blocks) or on X.compute()"
            )
        X = self._validate_X(X, reset=False, allow_nan=True)
        noise = check_noise_cov(noise_cov, X)
        missing = np.isnan(X)
        if noise is None:
            exact = ~missing
            rows = np.flatnonzero(missing.any(axis=1))
        else:
            variances = noise if noise.ndim == 2 else np.diagonal(noise, axis1=1, axis2=2)
            exact = ~missing & (variances == 0.0)
            rows = np.flatnonzero(~exact.all(axis=1))
        out = X.copy()
        if rows.size:
            data = IncompleteData(X[rows], noise_cov=None if noise is None else noise[rows])
            means = conditional_means(data, self._params(), self.covariance_type)
            out[rows] = np.where(exact[rows], X[rows], means)
        return out

    def _total_log_density(self, X, noise_cov=None) -> tuple[float, int]:
        """``(sum_i log p(x_i), n_samples)``; computed for dask X. Rows with nothing
        observed are not counted."""
        log_density = self.score_samples(X, noise_cov=noise_cov)
        total = log_density.sum()
        if is_dask_collection(X):
            return float(total.compute()), len(log_density)
        return float(total), _n_informative(X, len(log_density))

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

    def aic(self, X, *, noise_cov=None) -> float:
        """Akaike information criterion on X (lower is better)."""
        total, _ = self._total_log_density(X, noise_cov)
        return float(-2.0 * total + 2.0 * self._n_parameters())

    def bic(self, X, *, noise_cov=None) -> float:
        """Bayesian information criterion on X (lower is better); ``n`` counts the rows
        with an observed coordinate."""
        total, n_samples = self._total_log_density(X, noise_cov)
        return float(-2.0 * total + self._n_parameters() * math.log(n_samples))

    def icl(self, X, *, noise_cov=None) -> float:
        """Integrated completed likelihood (Biernacki et al. 2000), lower is better.

        ``BIC - 2 sum_i log tau_{i, c_i}`` with ``c_i`` the most probable component:
        the BIC penalised by the entropy of the hard classification, as mclust's ``icl``
        (which reports the negative, higher-is-better).
        """
        if is_dask_collection(X):
            import dask

            _refuse_dask_noise(noise_cov)
            log_density, resp = self.score_samples(X), self.predict_proba(X)
            with np.errstate(divide="ignore"):
                log_density, classification = dask.compute(
                    log_density.sum(), np.log(resp.max(axis=1)).sum()
                )
            n_samples = len(resp)
        else:
            log_density, resp = self._log_prob_resp(X, noise_cov)
            with np.errstate(divide="ignore"):
                classification = np.log(resp.max(axis=1)).sum()
            log_density, n_samples = log_density.sum(), _n_informative(X, len(log_density))
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
        tags.input_tags.allow_nan = self.nan_policy == "marginalize"
        return tags


def _partial_kmeans(X, filled, n_components: int, random_state, sample_weight) -> np.ndarray:
    """Hard responsibilities (n_samples, K) for rows with NaN: k-means centres from the
    complete rows (or from ``filled`` when fewer than ``10 K D`` rows are complete), each
    row labelled by the nearest centre over its observed coordinates."""
    from sklearn.cluster import KMeans

    complete = ~np.isnan(X).any(axis=1)
    if complete.sum() >= 10 * n_components * X.shape[1]:
        source = X[complete]
        weight = None if sample_weight is None else sample_weight[complete]
        if weight is not None and not (weight > 0).sum() >= n_components:
            source, weight = filled, sample_weight
    else:
        source, weight = filled, sample_weight
    centres = (
        KMeans(n_clusters=n_components, n_init=1, random_state=random_state)
        .fit(source, sample_weight=weight)
        .cluster_centers_
    )
    distances = np.stack([np.nansum((X - c) ** 2, axis=1) for c in centres], axis=1)
    resp = np.zeros((len(X), n_components))
    resp[np.arange(len(X)), distances.argmin(axis=1)] = 1.0
    return resp


def _refuse_dask_noise(noise_cov) -> None:
    if noise_cov is not None:
        raise TypeError(
            "noise_cov is not supported for dask input (extreme deconvolution runs on "
            "in-memory arrays): fit X.compute() with noise_cov, or drop noise_cov"
        )


def _n_informative(X, n_rows: int) -> int:
    """Rows of ``X`` with at least one observed (non-NaN) coordinate."""
    values = np.asarray(X, dtype=np.float64) if not hasattr(X, "to_numpy") else None
    if values is None:
        values = X.to_numpy(dtype=np.float64, na_value=np.nan)
    return int((~np.isnan(values)).any(axis=1).sum()) if values.ndim == 2 else n_rows


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
