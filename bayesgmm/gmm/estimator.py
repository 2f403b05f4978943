"""``BayesGMM``: the full Bayesian Gaussian mixture, checked against its EM estimate.

``fit`` runs, in order:

1. EM (:class:`bayesgmm.GaussianMixture`, ``em_n_init`` restarts, maximum likelihood);
2. the PyMC model (:func:`bayesgmm.gmm.model.build_gmm_model`: Dirichlet weights, Normal
   means with one ordered coordinate, LKJ/half-normal covariances, z marginalised);
3. EM -> initial values of every free variable -> the MAP from there (``pm.find_MAP``'s
   objective and optimiser; for an unmodified model on the fused numba log-density of
   :mod:`bayesgmm.gmm.fast_logp`, with no PyTensor compilation);
4. NUTS from the MAP (nutpie by default; >= 4 chains recommended);
5. relabelling of the draws onto the EM components and the cross-check
   (:func:`bayesgmm.gmm.crosscheck.crosscheck`): a table and a verdict.

The posterior lives in ``idata_`` (an ArviZ ``DataTree``) next to the ``em`` and
``map`` point estimates and the ``observed_data``.
"""

from __future__ import annotations

import json
import numbers
import warnings

import numpy as np
import pandas as pd
import pymc as pm
import xarray as xr
from scipy.special import logsumexp
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from bayesgmm._validation import (
    check_choice,
    check_positive_int,
    check_seed,
)
from bayesgmm.em.estimator import GaussianMixture
from bayesgmm.em.gaussian import check_covariance_type, inverse_lower, log_likelihood_draws
from bayesgmm.em.sweep import Design, MixtureParams, log_prob_resp
from bayesgmm.gmm.crosscheck import crosscheck
from bayesgmm.gmm.fast_logp import fast_gmm, find_map_fast
from bayesgmm.gmm.incomplete import (
    PosteriorImputation,
    check_incomplete_matrix,
    check_noise_cov,
    observed_log_prob,
    posterior_predictive_draws,
)
from bayesgmm.gmm.model import (
    OBS_DIM,
    OBS_VAR,
    build_gmm_model,
    check_order_feature,
    initial_values_from_em,
    resolve_gmm_priors,
)
from bayesgmm.inference import SAMPLERS, find_map, require_sampler, sample_nuts
from bayesgmm.io import SaveLoadMixin, from_netcdf_data, to_netcdf_data
from bayesgmm.verdict import SAMPLE_DIMS

__all__ = [
    "RELATIVE_REG_COVAR",
    "BayesGMM",
    "fit_point_estimates",
    "log_likelihood_dataset",
    "point_from_chol",
]

#: Group of a saved file holding the EM fit ``em_``.
_EM_GROUP = "em_estimator"
#: Groups of ``idata_`` that ``fit`` writes (``loo`` may add ``log_likelihood``).
_IDATA_GROUPS = ("posterior", "sample_stats", "observed_data", "em", "map")


def _compile_fast(model: pm.Model, start):
    """nutpie on the fused numba log-density of :mod:`bayesgmm.gmm.fast_logp` for an unmodified
    :func:`build_gmm_model` model, else None (see :func:`bayesgmm.gmm.fastnuts.compile_fast_gmm`;
    imported on first use because its numba callbacks are compiled or loaded at import)."""
    from bayesgmm.gmm import fastnuts

    return fastnuts.compile_fast_gmm(model, start)


def _compile_jax(model: pm.Model, start):
    """nutpie on the JAX log-density of :mod:`bayesgmm.gmm.jax_logp` for an unmodified
    :func:`build_gmm_model` model, else None (imported on first use: it imports JAX)."""
    from bayesgmm.gmm import jax_logp

    return jax_logp.compile_jax_gmm(model, start)


#: the GMM's own log-densities, by sampler (see :func:`bayesgmm.inference.sample_nuts`)
_COMPILERS = {"nutpie": _compile_fast, "nutpie-jax": _compile_jax}


#: Name, in the ``observed_data`` group, of the rows' measurement-error covariances.
NOISE_VAR = "noise_cov"
#: EM's covariance regularisation inside BayesGMM, relative to the smallest feature variance.
RELATIVE_REG_COVAR = 1e-6


def fit_point_estimates(
    X,
    n_components: int,
    *,
    covariance_type: str = "full",
    priors: dict | None = None,
    order_feature: int | None = 0,
    em_n_init: int = 5,
    em_seed: int | None = None,
    map_seed: int | None = None,
    noise_cov=None,
) -> tuple[GaussianMixture, pm.Model, dict[str, np.ndarray]]:
    """EM (components sorted by ``order_feature``), the PyMC model, and its MAP from EM.

    The MAP maximises ``model.logp(jacobian=False)`` by L-BFGS-B over the unconstrained
    space, as ``pm.find_MAP`` does; for the model built here (always unmodified) it runs on
    the fused log-density (:func:`bayesgmm.gmm.fast_logp.find_map_fast`: no PyTensor
    compilation), else through ``pm.find_MAP``.

    EM's ``reg_covar`` is ``RELATIVE_REG_COVAR`` (1e-6) times the smallest feature variance,
    so the point estimate is invariant to the units of the data (scikit-learn's absolute
    default of 1e-6 would swamp data whose variance is below about 1e-4).

    ``X`` may hold NaN (missing entries, marginalised by EM and by the model) and
    ``noise_cov`` the rows' measurement-error covariances (extreme deconvolution), as in
    :func:`bayesgmm.gmm.model.build_gmm_model`; rows with nothing observed are refused
    here (:meth:`BayesGMM.fit` drops them with a warning).

    The first half of :meth:`BayesGMM.fit`, for when a point estimate is all you need.
    Returns the fitted ``GaussianMixture``, the ``pm.Model`` and the MAP values of every
    named model variable.
    """
    data = check_incomplete_matrix(X, min_samples=2)
    # before any work: a bad order_feature would fail in the reordering below, bad priors
    # only after EM
    check_order_feature(order_feature, data.shape[1])
    resolve_gmm_priors(data, n_components, covariance_type, priors)
    em = GaussianMixture(
        n_components,
        covariance_type=covariance_type,
        n_init=em_n_init,
        reg_covar=RELATIVE_REG_COVAR * float(np.nanvar(data, axis=0).min()),
        random_state=em_seed,
    )
    em = em.fit(X) if noise_cov is None else em.fit(X, noise_cov=noise_cov)
    if order_feature is not None:
        # EM's labels follow the model's ordering constraint, so that EM, MAP and
        # posterior components carry the same names
        em.reorder_components(np.argsort(em.means_[:, order_feature]))
    model = build_gmm_model(
        X,
        n_components=n_components,
        covariance_type=covariance_type,
        priors=priors,
        order_feature=order_feature,
        noise_cov=noise_cov,
    )
    init = initial_values_from_em(model, em.weights_, em.means_, em.covariances_, covariance_type)
    fast = fast_gmm(model)
    if fast is not None:  # the same objective on the fused numba log-density: no compiling
        return em, model, find_map_fast(fast, init)
    return em, model, find_map(model, init, seed=map_seed)


class BayesGMM(SaveLoadMixin, BaseEstimator):
    """Bayesian Gaussian mixture: NUTS posterior, initialised from and checked against EM.

    Parameters
    ----------
    n_components : int, default=2
    covariance_type : {'full', 'tied', 'diag', 'spherical'}, default='full'
    priors : dict, optional
        Prior overrides for :func:`bayesgmm.gmm.model.build_gmm_model` (data-scaled defaults).
    order_feature : int or None, default=0
        Feature whose component means are ordered (identifiability); None switches it off.
    sampler : {'nutpie', 'nutpie-pytensor', 'nutpie-jax', 'pymc'}, default='nutpie'
        'nutpie' samples with the hand-written numba log-density of the model
        (:mod:`bayesgmm.gmm.fast_logp`, no per-model compilation), the fastest on a CPU;
        'nutpie-pytensor' switches that off and compiles the PyMC graph instead;
        'nutpie-jax' evaluates the same density with JAX (:mod:`bayesgmm.gmm.jax_logp`,
        float64, on JAX's default device: the choice for N >= 1e6 on a GPU; needs the
        ``jax`` extra); 'pymc' is PyMC's own NUTS.
    chains, draws, tune : int, default 4, 1000, 1000
        Each >= 1 (``tune`` may be 0 only with ``sampler='pymc'``: nutpie needs a warm-up).
    em_n_init : int, default=5
        EM restarts for the initial estimate.
    max_predict_draws : int, default=500
        Posterior draws (thinned evenly) used by predictions and densities.
    random_state : int or None
        A seed in [0, 2**32 - 1] (it seeds EM, the MAP and NUTS).
    progressbar : bool, default=True

    Attributes
    ----------
    em_ : GaussianMixture
        The EM estimate that initialises the sampler and is checked against it (its
        ``reg_covar`` is relative to the data scale: see :func:`fit_point_estimates`).
    map_ : dict
        MAP estimate: ``weights`` (K,), ``means`` (K, D), ``covariances`` (scikit-learn's
        shape for ``covariance_type``).
    model_ : pymc.Model
    idata_ : xarray.DataTree
        Groups ``posterior`` (relabelled onto the EM components), ``sample_stats``,
        ``observed_data``, ``em``, ``map``.
    crosscheck_ : CrossCheck
        The EM/MAP-vs-posterior table, diagnostics and verdict (``print(model.crosscheck_)``).

    Examples
    --------
    EM -> MAP -> NUTS (4 chains x (1000 + 1000)) on Old Faithful, and the cross-check:

    >>> from bayesgmm import BayesGMM
    >>> from bayesgmm.datasets import load_faithful
    >>> X = load_faithful()
    >>> model = BayesGMM(2, random_state=1, progressbar=False).fit(X)
    >>> model.crosscheck_.verdict
    'agree'
    >>> dict(model.idata_.posterior["means"].sizes)
    {'chain': 4, 'draw': 1000, 'component': 2, 'feature': 2}
    >>> mean, sd = model.predict_proba(X.iloc[:2], return_std=True)
    >>> mean.shape, sd.shape
    ((2, 2), (2, 2))
    """

    def __init__(
        self,
        n_components: int = 2,
        *,
        covariance_type: str = "full",
        priors: dict | None = None,
        order_feature: int | None = 0,
        sampler: str = "nutpie",
        chains: int = 4,
        draws: int = 1000,
        tune: int = 1000,
        em_n_init: int = 5,
        max_predict_draws: int = 500,
        random_state: int | None = None,
        progressbar: bool = True,
    ):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.priors = priors
        self.order_feature = order_feature
        self.sampler = sampler
        self.chains = chains
        self.draws = draws
        self.tune = tune
        self.em_n_init = em_n_init
        self.max_predict_draws = max_predict_draws
        self.random_state = random_state
        self.progressbar = progressbar

    # ------------------------------------------------------------------ fit
    def _check_params(self, X) -> np.ndarray:
        """Check every parameter, then ``X`` against them, before any work (EM, MAP, NUTS).

        Returns ``X`` as a checked float64 array (NaN: missing entries; rows with nothing
        observed are kept here, :meth:`fit` drops them).
        """
        for name in ("n_components", "chains", "draws", "em_n_init", "max_predict_draws"):
            check_positive_int(getattr(self, name), name)
        check_choice(self.sampler, "sampler", SAMPLERS)
        require_sampler(self.sampler)
        if self.sampler != "pymc" and not (
            isinstance(self.tune, numbers.Integral) and not isinstance(self.tune, bool)
            and self.tune >= 1
        ):  # fmt: skip
            raise ValueError(
                f"tune must be an integer >= 1 with sampler={self.sampler!r}, got "
                f"{self.tune!r}: nutpie needs at least one warm-up draw to adapt its step "
                "size (tune=0 crashes it); use tune >= 1 (default 1000), or sampler='pymc'"
            )
        check_positive_int(self.tune, "tune", minimum=0)
        check_covariance_type(self.covariance_type)
        check_seed(self.random_state)
        data = check_incomplete_matrix(X, min_samples=2, allow_empty_rows=True)
        check_order_feature(self.order_feature, data.shape[1])
        kept = data[~np.isnan(data).all(axis=1)]
        if kept.shape[0] < 2:
            raise ValueError(
                f"X has {kept.shape[0]} row(s) with an observed coordinate; at least 2 are needed"
            )
        resolve_gmm_priors(kept, self.n_components, self.covariance_type, self.priors)
        if self.chains < 4:
            warnings.warn(
                f"chains={self.chains}: mixture posteriors are multimodal and chains in "
                "different modes can only be detected with several chains; use >= 4",
                UserWarning,
                stacklevel=3,
            )
        return data

    def fit(self, X, y=None, *, noise_cov=None) -> BayesGMM:
        """EM, MAP, NUTS and the cross-check on ``X`` (n_samples, n_features).

        Every parameter is checked first (:class:`ValueError` or :class:`TypeError` naming
        it); ``X`` must have at least 2 samples, no inf and each feature's spread below
        1e150 (rescale larger data).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            NaN marks a missing entry (missing at random): the model marginalises it
            (:func:`bayesgmm.gmm.model.build_gmm_model`) and EM, the initial estimate, does
            the same.  Rows with every entry missing carry no information: they are dropped
            with a ``UserWarning`` naming how many.
        y : ignored
        noise_cov : array-like of shape (n_samples, n_features, n_features) or \
(n_samples, n_features), optional
            Known measurement-error covariances (or, 2-D, error variances) of the rows:
            extreme deconvolution, component k's density for row i is
            ``N(x_i | mu_k, Sigma_k + S_i)`` and the posterior is that of the deconvolved
            mixture.  None or all zeros: no measurement error (today's model exactly).
        """
        data = self._check_params(X)
        names = [str(c) for c in X.columns] if hasattr(X, "columns") else None
        noise = check_noise_cov(noise_cov, data)[0]  # None: no (or all-zero) noise
        keep = ~np.isnan(data).all(axis=1)
        if not keep.all():
            warnings.warn(
                f"X has {int((~keep).sum())} row(s) with every coordinate missing (NaN); they "
                "carry no information and were dropped before fitting",
                UserWarning,
                stacklevel=2,
            )
            data = data[keep]
            noise = None if noise is None else noise[keep]
        X_fit = data if names is None else pd.DataFrame(data, columns=names)
        seeds = np.random.SeedSequence(self.random_state).generate_state(3)
        em_seed, map_seed, nuts_seed = (int(s) for s in seeds)

        self.em_, self.model_, map_point = fit_point_estimates(
            X_fit,
            self.n_components,
            covariance_type=self.covariance_type,
            priors=self.priors,
            order_feature=self.order_feature,
            em_n_init=self.em_n_init,
            em_seed=em_seed,
            map_seed=map_seed,
            noise_cov=noise,
        )
        self.map_ = point_from_chol(
            map_point["weights"], map_point["means"], map_point["chol_cov"], self.covariance_type
        )
        raw = sample_nuts(
            self.model_,
            map_point,
            sampler=self.sampler,
            chains=self.chains,
            draws=self.draws,
            tune=self.tune,
            seed=nuts_seed,
            progressbar=self.progressbar,
            compilers=_COMPILERS,
        )
        self.crosscheck_ = crosscheck(
            raw, self.em_, self.map_, covariance_type=self.covariance_type
        )
        features = names or list(self.model_.coords["feature"])
        observed = {OBS_VAR: ((OBS_DIM, "feature"), data)}
        if noise is not None:
            observed[NOISE_VAR] = ((OBS_DIM, "feature", "feature_"), noise)
        self.idata_ = xr.DataTree.from_dict(
            {
                "posterior": self.crosscheck_.posterior,
                "sample_stats": raw["sample_stats"].to_dataset(),
                "observed_data": xr.Dataset(
                    observed,
                    coords={"feature": features, "feature_": features}
                    if noise is not None
                    else {"feature": features},
                ),
                "em": _point_dataset(
                    self.em_.weights_,
                    self.em_.means_,
                    self.em_.covariances_,
                    self.covariance_type,
                    features,
                ),
                "map": _point_dataset(
                    **self.map_, covariance_type=self.covariance_type, features=features
                ),
            }
        )
        self.idata_.attrs.update(format=self._file_format, params=json.dumps(self._json_params()))
        self.n_features_in_ = data.shape[1]
        return self

    def _json_params(self) -> dict:
        params = self.get_params()
        if params["priors"] is not None:
            params["priors"] = {k: np.asarray(v).tolist() for k, v in params["priors"].items()}
        return params

    # ------------------------------------------------------------ posterior
    def _draw_params(self):
        """Evenly thinned posterior draws as ``MixtureParams`` with full covariances."""
        post = self.idata_["posterior"].to_dataset()
        weights = post["weights"].stack(sample=SAMPLE_DIMS).transpose("sample", ...).values
        means = post["means"].stack(sample=SAMPLE_DIMS).transpose("sample", ...).values
        chol = post["chol_cov"].stack(sample=SAMPLE_DIMS).transpose("sample", ...).values
        keep = np.unique(np.linspace(0, len(weights) - 1, self.max_predict_draws).astype(int))
        for s in keep:
            cov = chol[s] @ np.swapaxes(chol[s], -1, -2)
            prec_chol = np.stack([inverse_lower(L).T for L in chol[s]])
            yield MixtureParams(weights[s], means[s], cov, prec_chol)

    def _check_X(self, X, noise_cov=None) -> tuple[np.ndarray, np.ndarray | None]:
        """``X`` (NaN: missing entries, rows with nothing observed allowed) and the rows'
        noise covariances as (n, d, d) (None when not given or all zeros)."""
        check_is_fitted(self, "idata_")
        # predictions: any finite scale, and a column may be missing in every row
        data = check_incomplete_matrix(X, allow_empty_rows=True, check_spread=False)
        if data.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {data.shape[1]} features, but the model was fitted with "
                f"{self.n_features_in_}"
            )
        return data, check_noise_cov(noise_cov, data)[0]

    def _log_prob_resp_draws(self, X, noise_cov):
        """(log p(x_i,o | theta_s) (S, n), p(z_i = k | x_i,o, theta_s) (S, n, K)) over the
        thinned draws; complete noise-free rows take the complete-data path unchanged."""
        data, noise = self._check_X(X, noise_cov)
        if noise is None and not np.isnan(data).any():
            design = Design(data, "full")
            pairs = [log_prob_resp(design, p) for p in self._draw_params()]
        else:
            pairs = [
                observed_log_prob(data, p.weights, p.means, p.covariances, noise)
                for p in self._draw_params()
            ]
        return np.stack([a for a, _ in pairs]), np.stack([b for _, b in pairs])

    def responsibilities(self, X, *, noise_cov=None) -> xr.DataArray:
        """p(z_i = k | x_i, theta_s) for thinned posterior draws s: (sample, obs, component).

        ``X`` may hold NaN (the responsibility given the observed coordinates; a row with
        nothing observed gets the weights) and ``noise_cov`` the rows' error covariances
        ((n, d, d), or (n, d) variances), as in :meth:`fit`.
        """
        resp = self._log_prob_resp_draws(X, noise_cov)[1]
        return xr.DataArray(resp, dims=("sample", "obs", "component"))

    def responsibility_summary(self, X, *, prob: float = 0.94, noise_cov=None) -> xr.Dataset:
        """Posterior summary of p(z_i = k | x_i): ``mean``, ``sd``, and the equal-tailed
        central ``prob`` interval ``low``/``high``; each (obs, component)."""
        if not 0.0 < prob < 1.0:
            raise ValueError(f"prob must be in (0, 1), got {prob!r}")
        resp = self.responsibilities(X, noise_cov=noise_cov)
        q = resp.quantile([(1 - prob) / 2, (1 + prob) / 2], dim="sample")
        return xr.Dataset(
            {
                "mean": resp.mean("sample"),
                "sd": resp.std("sample"),
                "low": q.isel(quantile=0, drop=True),
                "high": q.isel(quantile=1, drop=True),
            },
            attrs={"prob": prob},
        )

    def predict_proba(self, X, *, return_std: bool = False, noise_cov=None):
        """Posterior mean responsibilities (n_samples, K) and, if asked, their posterior sd."""
        resp = self.responsibilities(X, noise_cov=noise_cov)
        mean = resp.mean("sample").values
        return (mean, resp.std("sample").values) if return_std else mean

    def predict(self, X, *, noise_cov=None) -> np.ndarray:
        """Component with the highest posterior mean responsibility."""
        return self.predict_proba(X, noise_cov=noise_cov).argmax(axis=1)

    def log_density_draws(self, X, *, noise_cov=None) -> np.ndarray:
        """log p(x_i | theta_s) for the thinned posterior draws s: (n_draws, n_samples).

        With NaN in ``X``, the density of each row's observed coordinates (0 for a row with
        nothing observed); with ``noise_cov``, of the noisy measurement (``Sigma_k + S_i``).
        """
        return self._log_prob_resp_draws(X, noise_cov)[0]

    def score_samples(self, X, *, noise_cov=None) -> np.ndarray:
        """Posterior predictive log density ``log E_theta[p(x_i | theta)]``, shape (n_samples,)."""
        log_dens = self.log_density_draws(X, noise_cov=noise_cov)
        return logsumexp(log_dens, axis=0) - np.log(len(log_dens))

    def score(self, X, y=None, *, noise_cov=None) -> float:
        """Mean posterior predictive log density per sample."""
        return float(self.score_samples(X, noise_cov=noise_cov).mean())

    # ------------------------------------------------------- imputation
    def _posterior_draws_of(self, X, noise_cov, target, prob, random_state):
        if isinstance(prob, bool) or not isinstance(prob, numbers.Real) or not 0 < prob < 1:
            raise ValueError(f"prob must be a number in (0, 1), got {prob!r}")
        data, noise = self._check_X(X, noise_cov)
        rng = np.random.default_rng(check_seed(random_state, instances=(np.random.Generator,)))
        params = ((p.weights, p.means, p.covariances) for p in self._draw_params())
        return posterior_predictive_draws(
            data, params, noise, target=target, prob=float(prob), rng=rng
        )

    def impute(
        self, X, *, noise_cov=None, prob: float = 0.9, random_state=None
    ) -> PosteriorImputation:
        """Posterior predictive draws of the missing (NaN) entries of ``X``.

        For each of the thinned posterior draws theta_s (``max_predict_draws``) and each
        row: a component from its posterior responsibility given the row's observed
        coordinates, ``p(z = k | x_o, theta_s)``, then the missing entries from the
        conditional Gaussian ``x_m | x_o, z = k, theta_s`` (with ``noise_cov``, of the noisy
        measurement: covariance ``Sigma_k + S_i``).  The draws are a multiple-imputation set
        that carries the parameter uncertainty as well as the within-model spread.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            NaN marks the entries to impute (rows with nothing observed: draws from the
            posterior predictive mixture).
        noise_cov : array-like of shape (n_samples, n_features, n_features) or \
(n_samples, n_features), optional
            The rows' measurement-error covariances (or variances).
        prob : float, default=0.9
            Mass of the equal-tailed intervals ``low``/``high``.
        random_state : int, Generator or None

        Returns
        -------
        PosteriorImputation
            ``draws`` (n_draws, n_samples, n_features): completed data sets, observed
            entries equal to ``X``; ``mean`` (n_samples, n_features): posterior mean of each
            entry (Rao-Blackwellised over the draws); ``low``/``high`` (n_samples,
            n_features): the ``prob`` interval; ``missing``: the NaN mask of ``X``.  The
            observed entries have ``mean == low == high == X``.
        """
        return self._posterior_draws_of(X, noise_cov, "measurement", prob, random_state)

    def deconvolve(
        self, X, noise_cov, *, prob: float = 0.9, random_state=None
    ) -> PosteriorImputation:
        """Posterior draws of the true (error-free) positions of noisy rows.

        Under component k the true position is ``t ~ N(mu_k, Sigma_k)`` and the measurement
        ``x = t + e``, ``e ~ N(0, S_i)``.  For each thinned posterior draw theta_s and each
        row: a component from ``p(z = k | x_o, theta_s)`` (``Sigma_k + S_i`` on the observed
        coordinates ``o``), then ``t`` from its conditional Gaussian
        ``N(mu_k + Sigma_{k,:o} C^-1 (x_o - mu_{k,o}), Sigma_k - Sigma_{k,:o} C^-1
        Sigma_{k,o:})``, ``C = (Sigma_k + S_i)_{oo}``: every coordinate, missing ones
        included.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Measurements; NaN marks a missing entry.
        noise_cov : array-like of shape (n_samples, n_features, n_features) or \
(n_samples, n_features)
            The rows' measurement-error covariances (or variances).
        prob : float, default=0.9
        random_state : int, Generator or None

        Returns
        -------
        PosteriorImputation
            ``draws`` (n_draws, n_samples, n_features) of the true positions, their
            posterior ``mean`` and ``prob`` intervals ``low``/``high`` (n_samples,
            n_features); ``missing`` is all True (every entry is drawn).
        """
        if noise_cov is None:
            raise ValueError(
                "deconvolve needs noise_cov, the rows' measurement-error covariances; "
                "without measurement error use impute"
            )
        return self._posterior_draws_of(X, noise_cov, "truth", prob, random_state)

    def sample(self, n_samples: int = 1, *, random_state=None) -> tuple[np.ndarray, np.ndarray]:
        """Posterior predictive draws ``(X, labels)``: a posterior draw, then x from it."""
        check_is_fitted(self, "idata_")
        n_samples = check_positive_int(n_samples, "n_samples")
        rng = np.random.default_rng(check_seed(random_state, instances=(np.random.Generator,)))
        params = list(self._draw_params())
        which = rng.integers(len(params), size=n_samples)
        X = np.empty((n_samples, self.n_features_in_))
        labels = np.empty(n_samples, dtype=int)
        for i, s in enumerate(which):
            p = params[s]
            k = rng.choice(len(p.weights), p=p.weights / p.weights.sum())
            labels[i] = k
            X[i] = rng.multivariate_normal(p.means[k], p.covariances[k])
        return X, labels

    def loo(self, pointwise: bool = False):
        """PSIS-LOO (ArviZ ``ELPDData``) from the pointwise log-likelihood of the data.

        The log-likelihood is computed once (in NumPy, :func:`log_likelihood_dataset`, for
        an unmodified model; else by ``pm.compute_log_likelihood``) and kept in
        ``idata_["log_likelihood"]``;
        ``pointwise=True`` adds ``elpd_i`` and ``pareto_k`` per observation.
        """
        import arviz as az
        import pymc as pm

        check_is_fitted(self, "idata_")
        if "log_likelihood" not in self.idata_.children:
            if fast_gmm(self.model_) is not None:  # the plain model: NumPy, no compiling
                observed = self.idata_["observed_data"].to_dataset()
                ll = log_likelihood_dataset(
                    self.idata_["posterior"].to_dataset(),
                    observed[OBS_VAR].values,
                    noise_cov=observed[NOISE_VAR].values if NOISE_VAR in observed else None,
                )
            else:
                ll = pm.compute_log_likelihood(
                    xr.DataTree.from_dict({"posterior": self.idata_["posterior"].to_dataset()}),
                    model=self.model_,
                    extend_inferencedata=False,
                    progressbar=False,
                )
                ll = ll["log_likelihood"] if "log_likelihood" in ll else ll
            self.idata_["log_likelihood"] = ll
        return az.loo(self.idata_, pointwise=pointwise)

    # ------------------------------------------------------------ save/load
    # save(path) and load(path) come from SaveLoadMixin: one file format for every estimator
    _file_format = "bayesgmm.BayesGMM/2"

    def _to_netcdf(self):
        """``idata_`` (posterior, sample_stats, observed_data, em, map and, after
        :meth:`loo`, log_likelihood) with the EM fit ``em_`` in a group of its own."""
        if _EM_GROUP in self.idata_.children:
            raise ValueError(f"idata_ has a group {_EM_GROUP!r}, which save writes itself")
        tree = self.idata_.copy(deep=False)
        tree[_EM_GROUP] = xr.DataTree(to_netcdf_data(self.em_))
        return tree, {"params": self.get_params(deep=False), "n_features_in_": self.n_features_in_}

    @classmethod
    def _from_netcdf(cls, tree, attrs) -> BayesGMM:
        """The posterior and the EM fit as saved; the PyMC model and the cross-check are
        rebuilt from them (no sampling)."""
        self = cls(**attrs["params"])
        em = tree[_EM_GROUP].to_dataset(inherit=False)
        self.em_ = from_netcdf_data(GaussianMixture, em, source=f"its {_EM_GROUP!r} group")
        idata = tree.copy(deep=False)
        del idata[_EM_GROUP]
        missing = [g for g in _IDATA_GROUPS if g not in idata.children]
        if missing:
            raise KeyError(f"group(s) {missing}")
        observed = idata["observed_data"].to_dataset()
        X = pd.DataFrame(observed[OBS_VAR].values, columns=list(observed["feature"].values))
        self.map_ = {
            name: idata["map"][name].values for name in ("weights", "means", "covariances")
        }
        self.model_ = build_gmm_model(
            X,
            n_components=self.n_components,
            covariance_type=self.covariance_type,
            priors=self.priors,
            order_feature=self.order_feature,
            noise_cov=observed[NOISE_VAR].values if NOISE_VAR in observed else None,
        )
        self.crosscheck_ = crosscheck(idata, self.em_, self.map_, self.covariance_type)
        self.idata_ = idata
        self.n_features_in_ = attrs["n_features_in_"]
        return self

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True  # NaN: missing entries, marginalised (see fit)
        return tags

    def __str__(self) -> str:
        if not hasattr(self, "crosscheck_"):
            return repr(self)
        return self.crosscheck_.to_text()


def log_likelihood_dataset(posterior: xr.Dataset, X, noise_cov=None) -> xr.Dataset:
    """The ``log_likelihood`` group of a GMM posterior (``weights``, ``means``, ``chol_cov``)
    on the observed data ``X``: variable ``x`` (chain, draw, obs), as
    ``pm.compute_log_likelihood`` writes it for a :func:`build_gmm_model` model (NaN in
    ``X``: the missing coordinates marginalised, as the model does; ``noise_cov``
    (n, d, d): the rows' measurement-error covariances added)."""
    dims = SAMPLE_DIMS
    stacked = [
        posterior[name].transpose(*dims, ...).values for name in ("weights", "means", "chol_cov")
    ]
    n_chain, n_draw = stacked[0].shape[:2]
    flat = [a.reshape(n_chain * n_draw, *a.shape[2:]) for a in stacked]
    X = np.asarray(X, dtype=np.float64)
    if noise_cov is not None or np.isnan(X).any():  # observed coordinates, noise added
        covs = flat[2] @ np.swapaxes(flat[2], -1, -2)
        ll = np.stack(
            [
                observed_log_prob(X, w, m, c, noise_cov)[0]
                for w, m, c in zip(flat[0], flat[1], covs, strict=True)
            ]
        ).reshape(n_chain, n_draw, -1)
    else:
        ll = log_likelihood_draws(X, *flat).reshape(n_chain, n_draw, -1)
    coords = {dim: posterior[dim].values for dim in dims}
    coords[OBS_DIM] = np.arange(ll.shape[-1])
    return xr.Dataset(
        {OBS_VAR: ((*dims, OBS_DIM), ll)}, coords=coords, attrs={"sample_dims": list(dims)}
    )


def point_from_chol(weights, means, chol, covariance_type: str) -> dict:
    """MAP values from the model's Cholesky factors to scikit-learn's covariance shapes."""
    full = chol @ np.swapaxes(chol, -1, -2)
    covariances = {
        "full": full,
        "tied": full[0],
        "diag": np.diagonal(full, axis1=-2, axis2=-1).copy(),
        "spherical": np.diagonal(full, axis1=-2, axis2=-1).mean(axis=-1),
    }[covariance_type]
    return {"weights": np.asarray(weights), "means": np.asarray(means), "covariances": covariances}


def _point_dataset(weights, means, covariances, covariance_type: str, features) -> xr.Dataset:
    cov_dims = {
        "full": ("component", "feature", "feature_"),
        "tied": ("feature", "feature_"),
        "diag": ("component", "feature"),
        "spherical": ("component",),
    }[covariance_type]
    return xr.Dataset(
        {
            "weights": ("component", np.asarray(weights)),
            "means": (("component", "feature"), np.asarray(means)),
            "covariances": (cov_dims, np.asarray(covariances)),
        },
        coords={"feature": list(features), "feature_": list(features)}
        if "feature_" in cov_dims
        else {"feature": list(features)},
    )
