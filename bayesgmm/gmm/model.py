"""PyMC graph of the Bayesian Gaussian mixture model.

:func:`build_gmm_model` returns a plain :class:`pymc.Model` that a user can inspect
(``model.to_graphviz()``, ``model.point_logps()``) and extend (add variables inside
``with model:``).  The latent assignments are marginalised out analytically, so every
free variable is continuous and the model can be sampled with NUTS (PyMC or nutpie).

Model (K components, D features, N observations)::

    weights           ~ Dirichlet(weights_alpha)                    (component)
    means[:, j]       ~ Normal(means_mu[j], means_sigma[j]), ordered (component)
    means[:, d != j]  ~ Normal(means_mu[d], means_sigma[d])          (component, feature_free)
    Sigma_k = L_k L_k^T, L_k = diag(sigmas_k) chol_corr_k   ("full"; see below for others)
    x_n | theta       ~ sum_k weights_k MvNormal(means_k, Sigma_k)   (obs, feature)

The likelihood is a :class:`pymc.CustomDist` named ``x`` whose log-density is written
through the Cholesky factors (one small triangular solve per component, one matrix
product over all observations, log-sum-exp over components) and whose random
generator draws ``z ~ Categorical(weights)`` and ``x = means[z] + L[z] eps``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pymc as pm
import pytensor.tensor as pt
from pymc.distributions.shape_utils import rv_size_is_none
from pymc.distributions.transforms import CholeskyCorrTransform, ordered
from pytensor.tensor.linalg import cholesky, solve_triangular
from pytensor.tensor.special import logsumexp

from bayesgmm.em.gaussian import (
    LOG_2PI,
    check_covariance_type,
    covariance_shape,
    full_covariances,
)
from bayesgmm.gmm.incomplete import check_noise_cov, missing_patterns

__all__ = [
    "OBS_DIM",
    "OBS_VAR",
    "build_gmm_model",
    "check_order_feature",
    "default_gmm_priors",
    "initial_values_from_em",
    "model_covariance_type",
    "resolve_gmm_priors",
]

#: Name of the observed variable and of its observation dim (PyMC forbids a variable
#: and a dim of the same name).
OBS_VAR = "x"
OBS_DIM = "obs"


#: Multiple of the per-feature data standard deviation used as the prior sd of the means.
MEANS_SIGMA_FACTOR = 2.0
#: Multiple of the per-feature data standard deviation used as the HalfNormal scale of
#: the component standard deviations.
SIGMA_SCALE_FACTOR = 1.0
#: Default LKJ concentration of the component correlation matrices.
LKJ_ETA = 2.0
#: Default symmetric Dirichlet concentration of the weights.
WEIGHTS_ALPHA = 1.0

_PRIOR_DOCS = {
    "weights_alpha": "Dirichlet concentration of the weights: scalar or (K,), > 0",
    "means_mu": "prior centre of the component means: scalar or (D,)",
    "means_sigma": "prior sd of the component means: scalar or (D,), > 0",
    "sigma_scale": "HalfNormal scale of the component sds: scalar or (D,) "
    "(scalar only for 'spherical'), > 0",
    "lkj_eta": "LKJ concentration of the correlation matrices ('full'/'tied' only), > 0",
}


# --------------------------------------------------------------------------------------
# input validation
# --------------------------------------------------------------------------------------


def _as_data_matrix(X: Any) -> tuple[np.ndarray, list[str]]:
    """Return ``X`` as a float64 (n_obs, n_features) array and the feature names.

    NaN marks a missing entry (marginalised by the model); inf, a column never observed
    and a row with nothing observed raise ValueError.
    """
    columns = getattr(X, "columns", None)
    if columns is not None and hasattr(X, "to_numpy"):  # pandas DataFrame
        names = [str(c) for c in columns]
        try:
            arr = X.to_numpy(dtype=np.float64, na_value=np.nan)
        except (TypeError, ValueError) as err:
            raise ValueError(
                f"X must contain only numeric columns ({err}); drop or encode the "
                "non-numeric columns first."
            ) from err
    else:
        try:
            arr = np.asarray(X, dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise ValueError(
                f"X must be a numeric array of shape (n_obs, n_features) ({err})."
            ) from err
        names = None
    if arr.ndim != 2:
        raise ValueError(
            f"X must be 2-D (n_obs, n_features), got an array with shape {arr.shape}; "
            "use X.reshape(-1, 1) for a single feature."
        )
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"X must have at least one observation and one feature, got {arr.shape}.")
    if np.isinf(arr).any():
        bad = np.argwhere(np.isinf(arr))[0]
        raise ValueError(
            f"X contains non-finite values (inf, first at row {bad[0]}, column {bad[1]}); "
            "remove or rescale those rows before building the model (NaN is allowed and "
            "means missing)."
        )
    observed = ~np.isnan(arr)
    empty = np.flatnonzero(~observed.any(axis=1))
    if empty.size:
        raise ValueError(
            f"X has {empty.size} row(s) with every coordinate missing (NaN), first at "
            f"{empty[:5].tolist()}: they carry no information; drop them before building the "
            "model."
        )
    empty = np.flatnonzero(~observed.any(axis=0))
    if empty.size:
        raise ValueError(
            f"X has no observed value in column(s) {empty[:5].tolist()}; drop the column(s)."
        )
    if names is None:
        names = [f"x{i}" for i in range(arr.shape[1])]
    return np.ascontiguousarray(arr), names


def _check_n_components(n_components: Any, n_obs: int) -> int:
    if isinstance(n_components, bool) or not isinstance(n_components, int | np.integer):
        raise ValueError(f"n_components must be an integer >= 1, got {n_components!r}.")
    k = int(n_components)
    if k < 1:
        raise ValueError(f"n_components must be >= 1, got {k}.")
    if n_obs < k:
        raise ValueError(
            f"n_obs ({n_obs}) must be >= n_components ({k}); use fewer components or more data."
        )
    return k


def check_order_feature(order_feature: Any, n_features: int) -> int | None:
    """``order_feature`` as a column index in ``[0, n_features)``, or None; else ValueError."""
    if order_feature is None:
        return None
    if isinstance(order_feature, bool) or not isinstance(order_feature, int | np.integer):
        raise ValueError(
            f"order_feature must be a column index in [0, {n_features - 1}] or None, "
            f"got {order_feature!r}."
        )
    j = int(order_feature)
    if not 0 <= j < n_features:
        raise ValueError(
            f"order_feature={j} is out of range for X with {n_features} feature(s); "
            f"use an index in [0, {n_features - 1}] or None to switch ordering off."
        )
    return j


# --------------------------------------------------------------------------------------
# priors
# --------------------------------------------------------------------------------------


def _valid_prior_keys(covariance_type: str) -> tuple[str, ...]:
    keys = ("weights_alpha", "means_mu", "means_sigma", "sigma_scale")
    if covariance_type in ("full", "tied"):
        keys = (*keys, "lkj_eta")
    return keys


def default_gmm_priors(X: Any, covariance_type: str = "full") -> dict[str, Any]:
    """Data-scaled default priors of :func:`build_gmm_model` for data ``X``.

    With ``m`` the per-feature mean and ``s`` the per-feature standard deviation of X
    (over the observed entries where X has NaN):

    - ``weights_alpha = 1.0``: symmetric Dirichlet(1), uniform on the simplex.
    - ``means_mu = m``: means are centred on the data centre.
    - ``means_sigma = 2.0 * s``: a component mean is a priori within about +-4 data sds of
      the data centre (95 %), which covers the data range without putting mass far outside it.
    - ``sigma_scale = 1.0 * s`` (``sqrt(mean(s**2))`` for "spherical"): HalfNormal scale of the
      component standard deviations.  By the law of total variance a component's variance is
      at most the marginal variance, so the data sd is the natural upper scale: ~68 % of the
      prior mass is below ``s`` and ~95 % below ``2 s``.
    - ``lkj_eta = 2.0`` ("full"/"tied"): LKJ prior on correlations, mildly favouring weak
      correlation (eta = 1 would be uniform over correlation matrices).
    """
    covariance_type = check_covariance_type(covariance_type)
    arr, _ = _as_data_matrix(X)
    centre = np.nanmean(arr, axis=0)  # NaN (missing) entries are left out
    sd = np.nanstd(arr, axis=0)
    priors: dict[str, Any] = {
        "weights_alpha": WEIGHTS_ALPHA,
        "means_mu": centre,
        "means_sigma": MEANS_SIGMA_FACTOR * sd,
        "sigma_scale": (
            SIGMA_SCALE_FACTOR * float(np.sqrt(np.mean(sd**2)))
            if covariance_type == "spherical"
            else SIGMA_SCALE_FACTOR * sd
        ),
    }
    if covariance_type in ("full", "tied"):
        priors["lkj_eta"] = LKJ_ETA
    return priors


def _prior_array(
    priors: Mapping[str, Any], key: str, shape: tuple[int, ...], positive: bool
) -> np.ndarray:
    try:
        value = np.asarray(priors[key], dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"priors[{key!r}] must be numeric ({_PRIOR_DOCS[key]}).") from err
    if value.ndim > len(shape) or (value.ndim == 1 and value.shape != shape):
        raise ValueError(
            f"priors[{key!r}] has shape {value.shape}, expected a scalar or shape {shape} "
            f"({_PRIOR_DOCS[key]})."
        )
    value = np.broadcast_to(value, shape).copy()
    if not np.all(np.isfinite(value)):
        raise ValueError(f"priors[{key!r}] must be finite, got {value}.")
    if positive and not np.all(value > 0):
        hint = ""
        if key in ("means_sigma", "sigma_scale"):
            hint = (
                " The default is a multiple of the data sd, so a constant feature gives 0; "
                "drop constant columns or pass this prior explicitly."
            )
        raise ValueError(f"priors[{key!r}] must be > 0, got {value}.{hint}")
    return value


def resolve_gmm_priors(
    X: np.ndarray, n_components: int, covariance_type: str, priors: Mapping[str, Any] | None
) -> dict[str, np.ndarray]:
    """The priors of :func:`build_gmm_model`: ``default_gmm_priors(X) | priors``, checked.

    Raises TypeError when ``priors`` is not a dict (or None), ValueError for an unknown
    key or a value of the wrong shape, non-finite or not positive where it must be.
    """
    valid = _valid_prior_keys(covariance_type)
    if priors is not None and not isinstance(priors, Mapping):
        raise TypeError(
            f"priors must be a dict of prior overrides or None, got {type(priors).__name__} "
            f"{priors!r}: pass e.g. priors={{'weights_alpha': 2.0}}; valid keys are "
            f"{list(valid)}"
        )
    user = dict(priors or {})
    unknown = sorted(set(user) - set(valid))
    if unknown:
        raise ValueError(
            f"Unknown prior key(s) {unknown} for covariance_type={covariance_type!r}; "
            f"valid keys are {list(valid)}."
        )
    merged = default_gmm_priors(X, covariance_type) | user
    d = X.shape[1]
    out = {
        "weights_alpha": _prior_array(merged, "weights_alpha", (n_components,), True),
        "means_mu": _prior_array(merged, "means_mu", (d,), False),
        "means_sigma": _prior_array(merged, "means_sigma", (d,), True),
        "sigma_scale": _prior_array(
            merged, "sigma_scale", () if covariance_type == "spherical" else (d,), True
        ),
    }
    if "lkj_eta" in valid:
        out["lkj_eta"] = _prior_array(merged, "lkj_eta", (), True)
    return out


class _CholeskyCorr(CholeskyCorrTransform):
    """PyMC's LKJCorr transform under an underscore-free name.

    PyMC recovers an RV name from its value variable by dropping the last three
    ``_``-separated tokens (``get_untransformed_name``), which breaks for the default
    ``cholesky_corr`` transform name: ``chol_corr_cholesky_corr__`` -> ``chol_corr_cholesky``,
    and ``pm.compute_log_likelihood`` then fails.  Value variable: ``chol_corr_choleskycorr__``.
    """

    name = "choleskycorr"


# --------------------------------------------------------------------------------------
# ordered means: exchangeable Normal prior restricted to increasing values
# --------------------------------------------------------------------------------------


def _sorted_normal_dist(mu, sigma, size):
    """Generative graph: the order statistics of K iid Normal(mu, sigma) draws."""
    if rv_size_is_none(size):
        draws = pm.Normal.dist(mu, sigma)
    else:
        draws = pm.Normal.dist(mu, sigma, size=pt.concatenate([size, mu.shape[-1:]]))
    return pt.sort(draws, axis=-1)


def _sorted_normal_logp(value, mu, sigma):
    """Density of sorted iid Normals: K! prod_k N(value_k | mu, sigma) on increasing values."""
    k = value.shape[-1]
    z = (value - mu) / sigma
    lp = -0.5 * z**2 - pt.log(sigma) - 0.5 * LOG_2PI
    return pt.sum(lp, axis=-1) + pt.gammaln(k + 1.0)


def _sorted_normal_support_point(rv, size, mu, sigma):
    """Strictly increasing start: mu + sigma * (approximate expected normal order statistics).

    Blom's approximation Phi^-1((i - 3/8) / (K + 1/4)), with Phi^-1(p) = sqrt(2) erfinv(2p - 1).
    """
    k = rv.shape[-1]
    p = (pt.arange(1, k + 1, dtype="float64") - 0.375) / (k + 0.25)
    scores = np.sqrt(2.0) * pt.erfinv(2.0 * p - 1.0)
    return pt.broadcast_to(mu + sigma * scores, rv.shape)


# --------------------------------------------------------------------------------------
# likelihood: marginalised Gaussian mixture
# --------------------------------------------------------------------------------------


def _mixture_logp_from_quad(w, quad, logdet, d: int):
    """logsumexp_k [log w_k - logdet_k - d/2 log(2 pi) - quad_nk / 2] -> (N,)."""
    comp = pt.log(w) - logdet - 0.5 * (d * LOG_2PI) - 0.5 * quad
    return logsumexp(comp, axis=-1)


def _make_logp(covariance_type: str, centre: np.ndarray):
    """Hand-written log-density of the observations, one value per observation (row).

    ``centre`` (the data mean) is subtracted from both data and means: it leaves the
    density unchanged and keeps the quadratic forms well conditioned.
    """
    d = int(centre.shape[0])
    c = pt.constant(centre)

    if covariance_type == "full":

        def logp(value, w, mu, chol):
            k = w.shape[-1]
            n = value.shape[0]
            # one DxD triangular inverse per component, stacked as a (K*D, D+1) matrix
            # [L_k^-1 | -L_k^-1 (mu_k - c)], so a single matmul gives all whitened residuals
            linv = solve_triangular(chol, pt.eye(d), lower=True, b_ndim=2)  # (K, D, D)
            b = pt.sum(linv * (mu - c)[:, None, :], axis=-1)  # (K, D)
            w_aug = pt.concatenate([linv, -b[:, :, None]], axis=-1).reshape((k * d, d + 1))
            x_aug = pt.concatenate([value - c, pt.ones((n, 1))], axis=-1)  # (N, D+1)
            resid = pt.dot(x_aug, w_aug.T).reshape((n, k, d))  # (N, K, D)
            quad = pt.sum(pt.square(resid), axis=-1)  # (N, K)
            logdet = pt.sum(pt.log(pt.diagonal(chol, axis1=-2, axis2=-1)), axis=-1)
            return _mixture_logp_from_quad(w, quad, logdet, d)

    elif covariance_type == "tied":

        def logp(value, w, mu, chol):
            linv = solve_triangular(chol, pt.eye(d), lower=True, b_ndim=2)  # (D, D)
            zx = pt.dot(value - c, linv.T)  # (N, D)
            zm = pt.dot(mu - c, linv.T)  # (K, D)
            quad = pt.sum(pt.square(zx[:, None, :] - zm[None, :, :]), axis=-1)
            logdet = pt.sum(pt.log(pt.diagonal(chol)))
            return _mixture_logp_from_quad(w, quad, logdet, d)

    elif covariance_type == "diag":

        def logp(value, w, mu, sigmas):
            inv = 1.0 / sigmas  # (K, D)
            resid = ((value - c)[:, None, :] - (mu - c)[None, :, :]) * inv[None, :, :]
            quad = pt.sum(pt.square(resid), axis=-1)
            logdet = pt.sum(pt.log(sigmas), axis=-1)
            return _mixture_logp_from_quad(w, quad, logdet, d)

    else:  # spherical

        def logp(value, w, mu, sigmas):
            sqdist = pt.sum(pt.square((value - c)[:, None, :] - (mu - c)[None, :, :]), axis=-1)
            quad = sqdist / pt.square(sigmas)
            logdet = d * pt.log(sigmas)
            return _mixture_logp_from_quad(w, quad, logdet, d)

    return logp


def _make_logp_expanded(covariance_type: str, centre: np.ndarray):
    """Log-density with the quadratic form expanded into one matrix product.

    ``log w_k + log N(x | mu_k, Sigma_k) = F(x) @ coef_k`` with data features
    ``F(x) = [q(x), x, 1]`` (x centred; ``q`` = upper-triangle products x_i x_j for
    "full"/"tied", squares for "diag", the squared norm for "spherical") and parameter
    coefficients ``coef_k = [-q-coefficients of P_k / 2, P_k mu_k, log w_k - log|L_k|
    - D/2 log 2 pi - mu_k' P_k mu_k / 2]`` (``P_k = Sigma_k^-1``).  ``F`` depends only on the
    observed data, so PyTensor constant-folds it; each evaluation is then one
    (N, F) x (F, K) product plus the log-sum-exp.  Expanding the square costs a few digits
    when a component is much narrower than its distance to the data centre (relative
    error ~ eps * |x - centre|^2 / sigma_k^2 * cond(Sigma_k)); the default Cholesky form
    does not have that loss.
    """
    d = int(centre.shape[0])
    c = pt.constant(centre)
    iu0, iu1 = np.triu_indices(d)
    half_diag = np.where(iu0 == iu1, 0.5, 1.0)  # (P + P^T)_ij for i < j, P_ii on the diagonal

    def features(value):
        xc = value - c
        if covariance_type in ("full", "tied"):
            q = xc[:, iu0] * xc[:, iu1]
        elif covariance_type == "diag":
            q = pt.square(xc)
        else:
            q = pt.sum(pt.square(xc), axis=-1, keepdims=True)
        return pt.concatenate([q, xc, pt.ones((xc.shape[0], 1))], axis=1)

    def logp(value, w, mu, scale):
        k = w.shape[-1]
        muc = mu - c
        if covariance_type == "full":
            linv = solve_triangular(scale, pt.eye(d), lower=True, b_ndim=2)  # (K, D, D)
            prec = pt.matmul(linv.mT, linv)
            qcoef = (prec + prec.mT)[:, iu0, iu1] * half_diag
            lin = pt.sum(prec * muc[:, None, :], axis=-1)  # P_k mu_k
            logdet = pt.sum(pt.log(pt.diagonal(scale, axis1=-2, axis2=-1)), axis=-1)
        elif covariance_type == "tied":
            linv = solve_triangular(scale, pt.eye(d), lower=True, b_ndim=2)  # (D, D)
            prec = pt.dot(linv.T, linv)
            qcoef = pt.broadcast_to(((prec + prec.T)[iu0, iu1] * half_diag)[None, :], (k, iu0.size))
            lin = pt.dot(muc, prec)
            logdet = pt.sum(pt.log(pt.diagonal(scale)))
        elif covariance_type == "diag":
            qcoef = 1.0 / pt.square(scale)  # (K, D)
            lin = muc * qcoef
            logdet = pt.sum(pt.log(scale), axis=-1)
        else:
            inv_var = 1.0 / pt.square(scale)  # (K,)
            qcoef = inv_var[:, None]
            lin = muc * qcoef
            logdet = d * pt.log(scale)
        const = pt.log(w) - logdet - 0.5 * (d * LOG_2PI) - 0.5 * pt.sum(lin * muc, axis=-1)
        coef = pt.concatenate([-0.5 * qcoef, lin, const[:, None]], axis=1)  # (K, F)
        return logsumexp(pt.dot(features(value), coef.T), axis=-1)

    return logp


_LOGP_FORMS = {"cholesky": _make_logp, "expanded": _make_logp_expanded}


def _make_random_dist(covariance_type: str, d: int):
    """Generative graph: z ~ Categorical(w), x = mu[z] + L[z] @ eps, eps ~ N(0, I)."""

    def dist(w, mu, scale, size):
        z = pm.Categorical.dist(p=w, size=None if rv_size_is_none(size) else size)
        eps = pm.Normal.dist(0.0, 1.0, size=(*z.shape, d))
        if covariance_type == "full":
            noise = pt.sum(scale[z] * eps[..., None, :], axis=-1)
        elif covariance_type == "tied":
            noise = pt.dot(eps, scale.T)
        elif covariance_type == "diag":
            noise = scale[z] * eps
        else:
            noise = scale[z][..., None] * eps
        return mu[z] + noise

    return dist


_SIGNATURES = {
    "full": "(k),(k,d),(k,d,d)->(d)",
    "tied": "(k),(k,d),(d,d)->(d)",
    "diag": "(k),(k,d),(k,d)->(d)",
    "spherical": "(k),(k,d),(k)->(d)",
}


# --------------------------------------------------------------------------------------
# likelihood of incomplete (NaN) and noisy rows
# --------------------------------------------------------------------------------------


def _component_covariances(covariance_type: str, scale, d: int):
    """(K, D, D) component covariances from the likelihood's scale parameter."""
    if covariance_type == "full":
        return pt.matmul(scale, scale.mT)
    if covariance_type == "tied":
        return pt.dot(scale, scale.T)[None, :, :]
    if covariance_type == "diag":
        return pt.eye(d)[None, :, :] * pt.square(scale)[:, None, :]
    return pt.eye(d)[None, :, :] * pt.square(scale)[:, None, None]


def _make_incomplete_logp(
    covariance_type: str,
    centre: np.ndarray,
    patterns: list[tuple[np.ndarray, np.ndarray]],
    noise: str | None,
    logp_form: str,
):
    """Log-density of rows with missing coordinates and/or measurement noise.

    One term per missingness pattern (``patterns``: observed coordinates ``o``, rows):
    ``logsumexp_k [log w_k + log N(x_o | mu_{k,o}, (Sigma_k + S_i)_{oo})]``.

    - no noise: one Cholesky factor of ``Sigma_{k,oo}`` per component and pattern (the
      sub-vector of the sds for "diag"/"spherical"); rows of the complete pattern use the
      complete-data log-density of ``logp_form`` unchanged;
    - ``noise="full"``: one Cholesky factor of ``(Sigma_k + S_i)_{oo}`` per row and component;
    - ``noise="diag"`` with "diag"/"spherical" components: the variances add, no factor.

    ``noise_cov`` and the missing-value mask enter as constants; the returned function gives
    one value per row, in the rows' order.
    """
    d = int(centre.shape[0])
    c = pt.constant(centre)
    complete_logp = _LOGP_FORMS[logp_form](covariance_type, centre)
    order = np.concatenate([rows for _, rows in patterns])
    inverse = np.argsort(order)
    diag_like = covariance_type in ("diag", "spherical")

    def pattern_term(value, w, mu, scale, sigma, ncov, o, rows):
        m = o.size
        if m == d and noise is None:
            return complete_logp(value[rows], w, mu, scale)
        xo = (value[rows] - c)[:, o]  # (P, m): only observed coordinates are read
        mo = (mu - c)[:, o]  # (K, m)
        resid = xo[:, None, :] - mo[None, :, :]  # (P, K, m)
        if diag_like and noise != "full":
            sd = scale[:, o] if covariance_type == "diag" else scale[:, None]
            var = pt.square(sd)[None, :, :]  # (1, K, m or 1)
            if noise == "diag":
                var = var + ncov[rows][:, o][:, None, :]  # (P, K, m): variances add
            var = pt.broadcast_to(var, resid.shape)
            quad = pt.sum(pt.square(resid) / var, axis=-1)  # (P, K)
            logdet = 0.5 * pt.sum(pt.log(var), axis=-1)
        elif noise is None:
            chol = cholesky(sigma[:, o[:, None], o[None, :]], lower=True)  # (K, m, m)
            z = solve_triangular(chol, resid.dimshuffle(1, 2, 0), lower=True, b_ndim=2)
            quad = pt.sum(pt.square(z), axis=1).T  # (P, K)
            logdet = pt.sum(pt.log(pt.diagonal(chol, axis1=-2, axis2=-1)), axis=-1)
        else:
            s_oo = ncov[rows[:, None, None], o[None, :, None], o[None, None, :]]  # (P, m, m)
            cov = sigma[None, :, o[:, None], o[None, :]] + s_oo[:, None, :, :]  # (P, K, m, m)
            chol = cholesky(cov, lower=True)
            z = solve_triangular(chol, resid, lower=True, b_ndim=1)  # (P, K, m)
            quad = pt.sum(pt.square(z), axis=-1)
            logdet = pt.sum(pt.log(pt.diagonal(chol, axis1=-2, axis2=-1)), axis=-1)
        comp = pt.log(w) - logdet - 0.5 * (m * LOG_2PI) - 0.5 * quad
        return logsumexp(comp, axis=-1)

    def logp(value, w, mu, scale, *noise_inputs):
        sigma = _component_covariances(covariance_type, scale, d)
        sigma = pt.broadcast_to(sigma, (w.shape[0], d, d))
        ncov = None
        if noise is not None:
            ncov = noise_inputs[0]
            if noise == "diag" and diag_like:
                ncov = pt.diagonal(ncov, axis1=-2, axis2=-1)  # (N, D) variances
        parts = [pattern_term(value, w, mu, scale, sigma, ncov, o, rows) for o, rows in patterns]
        return pt.concatenate(parts)[inverse]

    return logp


def _make_noisy_random_dist(covariance_type: str, d: int):
    """Generative graph with measurement error: the mixture draw plus ``A_i eps_i``,
    ``A_i A_i^T = S_i`` (the rows' noise factors, last input)."""
    mixture = _make_random_dist(covariance_type, d)

    def dist(w, mu, scale, ncov, nfac, size):
        batch = nfac.shape[:-2] if rv_size_is_none(size) else size
        x = mixture(w, mu, scale, batch)
        eps = pm.Normal.dist(0.0, 1.0, size=(*x.shape[:-1], d))
        return x + pt.sum(nfac * eps[..., None, :], axis=-1)

    return dist


def _noisy_signature(covariance_type: str) -> str:
    """The signature with the rows' noise covariance and its square root, (d,d) each."""
    params, out = _SIGNATURES[covariance_type].split("->")
    return f"{params},(d,d),(d,d)->{out}"


def _noise_factors(noise_cov: np.ndarray) -> np.ndarray:
    """``A_i`` with ``A_i A_i^T = S_i`` (eigen-decomposition: S_i may be singular)."""
    val, vec = np.linalg.eigh(noise_cov)
    return vec * np.sqrt(np.clip(val, 0.0, None))[:, None, :]


# --------------------------------------------------------------------------------------
# model builder
# --------------------------------------------------------------------------------------


def _build_coords(
    n_obs: int, k: int, feature_names: list[str], user_coords: Mapping[str, Any] | None
) -> dict[str, list]:
    coords: dict[str, list] = {
        "component": list(range(k)),
        "feature": list(feature_names),
        OBS_DIM: list(range(n_obs)),
    }
    user = dict(user_coords or {})
    expected = {"component": k, "feature": len(feature_names), "feature_": len(feature_names)}
    expected[OBS_DIM] = n_obs
    for name, values in user.items():
        values = list(values)
        if name in expected and len(values) != expected[name]:
            raise ValueError(
                f"coords[{name!r}] has {len(values)} labels but the model needs "
                f"{expected[name]}; pass one label per {name}."
            )
        coords[name] = values
    coords.setdefault("feature_", list(coords["feature"]))
    return coords


def build_gmm_model(
    X: Any,
    *,
    n_components: int,
    covariance_type: str = "full",
    priors: dict | None = None,
    order_feature: int | None = 0,
    coords: dict | None = None,
    logp_form: str = "cholesky",
    noise_cov: Any = None,
) -> pm.Model:
    """Build the PyMC model of a Bayesian Gaussian mixture with marginalised assignments.

    Parameters
    ----------
    X : array-like or pandas.DataFrame, shape (n_obs, n_features)
        Numeric data; NaN marks a missing entry (missing at random), which is marginalised
        out (see Notes).  No inf, no row and no column with every entry missing.
        DataFrame column names become the ``feature`` labels (else ``"x0", "x1", ...``).
    n_components : int
        Number of mixture components K (>= 1, <= n_obs).
    covariance_type : {"full", "tied", "diag", "spherical"}
        Covariance structure, with scikit-learn's meaning:

        - ``"full"``: each component has its own covariance ``L_k L_k^T`` with
          ``L_k = diag(sigmas[k]) @ chol_corr[k]``, ``sigmas ~ HalfNormal(sigma_scale)``
          (component, feature) and ``chol_corr ~ LKJCorr(D, lkj_eta)`` (the Cholesky factor
          of the correlation matrix; component, feature, feature_), batched over components.
        - ``"tied"``: one shared ``sigmas`` (feature) and ``chol_corr`` (feature, feature_).
        - ``"diag"``: ``sigmas ~ HalfNormal(sigma_scale)`` (component, feature).
        - ``"spherical"``: ``sigmas ~ HalfNormal(sigma_scale)`` (component), one sd per component.

        For D == 1 there is no correlation factor ("full"/"tied" reduce to ``sigmas``).
    priors : dict, optional
        Overrides merged as ``defaults | priors``; unknown keys raise ``ValueError``.
        Keys and defaults (``m``/``s``: per-feature data mean / sd, see
        :func:`default_gmm_priors` for the reasoning):

        - ``weights_alpha`` (1.0): Dirichlet concentration, scalar or (K,).
        - ``means_mu`` (``m``): prior centre of the means, scalar or (D,).
        - ``means_sigma`` (``2 s``): prior sd of the means, scalar or (D,).
        - ``sigma_scale`` (``1 s``; ``sqrt(mean(s**2))`` for "spherical"): HalfNormal scale of
          the component standard deviations, scalar or (D,) (scalar for "spherical").
        - ``lkj_eta`` (2.0, "full"/"tied" only): LKJ concentration.
    order_feature : int or None, default 0
        Column whose component means are constrained increasing (ordered transform) to
        remove label switching.  The ordered means have the exchangeable Normal prior
        restricted to increasing values (order statistics), so prior draws are ordered too.
        ``None`` (or K == 1) switches the constraint off.
    coords : dict, optional
        Extra coords or relabelling of ``component``/``feature``/``obs`` (lengths
        checked).
    logp_form : {"cholesky", "expanded"}, default "cholesky"
        How the likelihood's quadratic forms are computed.  "cholesky": whitened residuals
        ``L_k^-1 (x - mu_k)`` from one stacked matrix product (exact to rounding).
        "expanded": ``F(x) @ coef(theta)`` with constant-folded data features, about 2x
        faster per gradient but it loses digits for components much narrower than their
        distance from the data centre (see ``_make_logp_expanded``).  With missing entries
        or noise it applies to the complete, noise-free rows only.
    noise_cov : array-like, shape (n_obs, n_features, n_features) or (n_obs, n_features)
        Known measurement-error covariance ``S_i`` of each row (symmetric positive
        semi-definite), or for shape (n_obs, n_features) the error *variances* (diagonal
        errors).  Extreme deconvolution: component k's density for row i is
        ``N(x_i | mu_k, Sigma_k + S_i)``, so the parameters describe the error-free
        (deconvolved) mixture.  None or all zeros: no measurement error.

    Returns
    -------
    pymc.Model
        Variables (all with named dims):

        - ``weights`` (component): Dirichlet.
        - ``means`` (component, feature): a Normal RV when unordered; with ordering it is a
          Deterministic assembled from ``means_ordered`` (component) and, if D > 1,
          ``means_free`` (component, feature_free).
        - ``sigmas`` and, for "full"/"tied" with D > 1, ``chol_corr`` (see above).
        - ``chol_cov`` (component, feature, feature_): Deterministic Cholesky factor of each
          component covariance, for every covariance type (repeated for "tied", diagonal for
          "diag"/"spherical").
        - ``x`` (obs, feature): observed mixture likelihood, pointwise log-likelihood of
          shape (n_obs,), and a generative random method for predictive sampling.

    Raises
    ------
    ValueError
        On invalid data, arguments, priors or coords (the message says what to change).

    Notes
    -----
    **Missing entries and measurement errors.**  Row i with observed coordinates ``o``
    contributes ``log sum_k w_k N(x_{i,o} | mu_{k,o}, (Sigma_k + S_i)_{oo})`` (``S_i = 0``
    without ``noise_cov``): the missing coordinates are integrated out exactly, which is
    valid when they are missing at random.  Rows are grouped by missingness pattern; without
    noise each pattern costs one Cholesky factor of ``Sigma_{k,oo}`` per component, with
    noise one of ``(Sigma_k + S_i)_{oo}`` per row and component (for "diag"/"spherical"
    components and diagonal errors the variances simply add).  The observed variable ``x``
    then holds the data with its NaN (as a constant, so PyMC does not create imputation
    variables); its pointwise log-likelihood is still one value per row, and its random
    method draws complete rows (plus ``N(0, S_i)`` errors), i.e. replicated measurements.
    With no NaN and no noise the model is exactly the complete-data model above.

    Examples
    --------
    >>> from bayesgmm import build_gmm_model
    >>> from bayesgmm.datasets import load_faithful
    >>> model = build_gmm_model(load_faithful(), n_components=2)
    >>> [rv.name for rv in model.free_RVs]
    ['weights', 'means_ordered', 'means_free', 'sigmas', 'chol_corr']
    >>> model.coords["feature"], model.coords["component"]
    (('eruptions', 'waiting'), (0, 1))
    """
    data, feature_names = _as_data_matrix(X)
    n_obs, d = data.shape
    k = _check_n_components(n_components, n_obs)
    covariance_type = check_covariance_type(covariance_type)
    j = check_order_feature(order_feature, d)
    if logp_form not in _LOGP_FORMS:
        raise ValueError(f"Unknown logp_form {logp_form!r}; use one of {list(_LOGP_FORMS)}.")
    pri = resolve_gmm_priors(data, k, covariance_type, priors)
    observed_mask = ~np.isnan(data)
    # None or all zeros: no measurement error, the complete-data model
    noise, noise_diagonal = check_noise_cov(noise_cov, data)
    plain = noise is None and bool(observed_mask.all())

    model_coords = _build_coords(n_obs, k, feature_names, coords)
    use_order = j is not None and k > 1
    free_idx = [i for i in range(d) if i != j] if use_order else []
    if use_order and free_idx:
        model_coords["feature_free"] = [model_coords["feature"][i] for i in free_idx]

    centre = np.nanmean(data, axis=0)
    with pm.Model(coords=model_coords) as model:
        weights = pm.Dirichlet("weights", a=pri["weights_alpha"], dims="component")

        # ----- means
        mu0, s0 = pri["means_mu"], pri["means_sigma"]
        if use_order:
            means_ord = pm.CustomDist(
                "means_ordered",
                np.full(k, mu0[j]),
                np.full(k, s0[j]),
                dist=_sorted_normal_dist,
                logp=_sorted_normal_logp,
                support_point=_sorted_normal_support_point,
                signature="(k),(k)->(k)",
                transform=ordered,
                shape=(k,),
                dims="component",
            )
            if free_idx:
                means_free = pm.Normal(
                    "means_free",
                    mu=mu0[free_idx],
                    sigma=s0[free_idx],
                    shape=(k, d - 1),
                    dims=("component", "feature_free"),
                )
                means_t = pt.concatenate(
                    [means_free[:, :j], means_ord[:, None], means_free[:, j:]], axis=1
                )
            else:
                means_t = means_ord[:, None]
            means = pm.Deterministic("means", means_t, dims=("component", "feature"))
        else:
            means = pm.Normal(
                "means", mu=mu0, sigma=s0, shape=(k, d), dims=("component", "feature")
            )

        # ----- covariances
        scale = pri["sigma_scale"]
        if covariance_type in ("full", "tied"):
            batch = (k,) if covariance_type == "full" else ()
            batch_dims = ("component",) if covariance_type == "full" else ()
            sigmas = pm.HalfNormal(
                "sigmas", sigma=scale, shape=(*batch, d), dims=(*batch_dims, "feature")
            )
            if d > 1:
                chol_corr = pm.LKJCorr(
                    "chol_corr",
                    n=d,
                    eta=float(pri["lkj_eta"]),
                    default_transform=_CholeskyCorr(d),
                    shape=(*batch, d, d),
                    dims=(*batch_dims, "feature", "feature_"),
                )
                chol = sigmas[..., :, None] * chol_corr
            else:
                chol = sigmas[..., :, None]
            chol_full = chol if covariance_type == "full" else pt.broadcast_to(chol, (k, d, d))
            pm.Deterministic("chol_cov", chol_full, dims=("component", "feature", "feature_"))
            lik_scale = chol
        elif covariance_type == "diag":
            sigmas = pm.HalfNormal(
                "sigmas", sigma=scale, shape=(k, d), dims=("component", "feature")
            )
            pm.Deterministic(
                "chol_cov",
                sigmas[:, :, None] * pt.eye(d)[None, :, :],
                dims=("component", "feature", "feature_"),
            )
            lik_scale = sigmas
        else:
            sigmas = pm.HalfNormal("sigmas", sigma=float(scale), shape=(k,), dims="component")
            pm.Deterministic(
                "chol_cov",
                sigmas[:, None, None] * pt.eye(d)[None, :, :],
                dims=("component", "feature", "feature_"),
            )
            lik_scale = sigmas

        # ----- marginalised likelihood
        if plain:
            pm.CustomDist(
                OBS_VAR,
                weights,
                means,
                lik_scale,
                dist=_make_random_dist(covariance_type, d),
                logp=_LOGP_FORMS[logp_form](covariance_type, centre),
                signature=_SIGNATURES[covariance_type],
                observed=data,
                dims=(OBS_DIM, "feature"),
            )
        else:
            noise_kind = None if noise is None else ("diag" if noise_diagonal else "full")
            logp = _make_incomplete_logp(
                covariance_type, centre, missing_patterns(observed_mask), noise_kind, logp_form
            )
            # a constant, not an array: PyMC would turn the NaN into imputed variables
            observed = pt.as_tensor_variable(data)
            if noise is None:
                pm.CustomDist(
                    OBS_VAR,
                    weights,
                    means,
                    lik_scale,
                    dist=_make_random_dist(covariance_type, d),
                    logp=logp,
                    signature=_SIGNATURES[covariance_type],
                    observed=observed,
                    dims=(OBS_DIM, "feature"),
                )
            else:
                pm.CustomDist(
                    OBS_VAR,
                    weights,
                    means,
                    lik_scale,
                    pt.constant(noise),
                    pt.constant(_noise_factors(noise)),
                    dist=_make_noisy_random_dist(covariance_type, d),
                    logp=logp,
                    signature=_noisy_signature(covariance_type),
                    observed=observed,
                    dims=(OBS_DIM, "feature"),
                )
    return model


# --------------------------------------------------------------------------------------
# initial values from a point estimate (EM)
# --------------------------------------------------------------------------------------


def model_covariance_type(model: pm.Model) -> str:
    """The covariance type of a model built by :func:`build_gmm_model`, read from its variables."""
    names = model.named_vars
    dims = model.named_vars_to_dims
    if "sigmas" not in names or "chol_cov" not in names:
        raise ValueError("model was not built by build_gmm_model (no 'sigmas'/'chol_cov').")
    sig_dims = tuple(dims.get("sigmas", ()))
    if sig_dims == ("component",):
        return "spherical"
    if sig_dims == ("feature",):
        return "tied"
    if "chol_corr" in names:
        return "full"
    # (component, feature) sds without a correlation factor: "diag", or "full" with D == 1
    return "diag"


def _to_full_covariances(
    covariances: Any, covariance_type: str, k: int, d: int
) -> tuple[np.ndarray, np.ndarray | None]:
    """EM covariances -> (K, D, D) array (and the (D, D) matrix for "tied")."""
    cov = np.asarray(covariances, dtype=np.float64)
    expected = covariance_shape(covariance_type, k, d)
    if cov.shape != expected:
        raise ValueError(
            f"covariances for covariance_type={covariance_type!r} must have shape "
            f"{expected}, got {cov.shape}."
        )
    if not np.all(np.isfinite(cov)):
        raise ValueError("covariances must be finite.")
    full = full_covariances(cov, covariance_type, k, d).copy()
    return full, (cov if covariance_type == "tied" else None)


def _cholesky(cov: np.ndarray) -> np.ndarray:
    try:
        return np.linalg.cholesky(cov)
    except np.linalg.LinAlgError as err:
        raise ValueError(
            "covariances must be symmetric positive definite (Cholesky failed); "
            "regularise the estimate (e.g. GaussianMixture(reg_covar=...))."
        ) from err


def initial_values_from_em(
    model: pm.Model,
    weights: Any,
    means: Any,
    covariances: Any,
    covariance_type: str,
) -> dict[str, np.ndarray]:
    """Map a point estimate to initial values of every free variable of a GMM model.

    Parameters
    ----------
    model : pymc.Model
        A model returned by :func:`build_gmm_model`.
    weights, means, covariances : array-like
        Point estimate in scikit-learn ``GaussianMixture`` conventions: ``weights_`` (K,),
        ``means_`` (K, D), ``covariances_`` (K, D, D) "full" / (D, D) "tied" / (K, D) "diag"
        / (K,) "spherical".
    covariance_type : str
        The convention of ``covariances``.  If it differs from the model's covariance
        type, the estimate is converted: to "full" exactly; to "tied" by the
        weight-averaged covariance; to "diag" by the diagonal; to "spherical" by the mean
        of the diagonal variances.

    Returns
    -------
    dict
        ``{rv_name: value}`` in the constrained (natural) space of each free random
        variable, the format of ``initvals=`` in ``pm.sample`` / ``start=`` in
        ``pm.find_MAP``.  Components are permuted so that the ordered mean coordinate is
        increasing.  Weights are floored at 1e-12 (and renormalised) so that the simplex
        transform stays finite.
    """
    k = len(model.coords["component"])
    d = len(model.coords["feature"])
    w = np.asarray(weights, dtype=np.float64)
    m = np.asarray(means, dtype=np.float64)
    if w.shape != (k,):
        raise ValueError(f"weights must have shape ({k},) for this model, got {w.shape}.")
    if m.shape != (k, d):
        raise ValueError(f"means must have shape ({k}, {d}) for this model, got {m.shape}.")
    if not (np.all(np.isfinite(w)) and np.all(w >= 0) and w.sum() > 0):
        raise ValueError("weights must be finite, non-negative and not all zero.")
    if not np.all(np.isfinite(m)):
        raise ValueError("means must be finite.")
    cov_full, cov_tied = _to_full_covariances(covariances, covariance_type, k, d)
    w = np.maximum(w / w.sum(), 1e-12)
    w = w / w.sum()

    # ----- permutation for the ordering constraint
    names = model.named_vars
    ordered_model = "means_ordered" in names
    j = None
    if ordered_model:
        if "feature_free" in model.coords:
            free = set(model.coords["feature_free"])
            j = next(i for i, f in enumerate(model.coords["feature"]) if f not in free)
        else:
            j = 0
        perm = np.argsort(m[:, j], kind="stable")
        if np.any(np.diff(m[perm, j]) <= 0):
            raise ValueError(
                f"means[:, {j}] (the ordered feature) has tied values, which the strictly "
                "increasing constraint cannot represent; perturb the estimate or build the "
                "model with another order_feature."
            )
        w, m, cov_full = w[perm], m[perm], cov_full[perm]

    out: dict[str, np.ndarray] = {"weights": w}
    if ordered_model:
        out["means_ordered"] = m[:, j].copy()
        if "means_free" in names:
            out["means_free"] = np.delete(m, j, axis=1)
    else:
        out["means"] = m.copy()

    # ----- covariance parameters in the model's own parametrisation
    model_type = model_covariance_type(model)
    if model_type == "full":
        chol = _cholesky(cov_full)
        sig = np.sqrt(np.einsum("kii->ki", cov_full))
        out["sigmas"] = sig
        if "chol_corr" in names:
            out["chol_corr"] = chol / sig[:, :, None]
    elif model_type == "tied":
        tied = cov_tied if cov_tied is not None else np.einsum("k,kij->ij", w, cov_full)
        chol = _cholesky(tied)
        sig = np.sqrt(np.diag(tied))
        out["sigmas"] = sig
        if "chol_corr" in names:
            out["chol_corr"] = chol / sig[:, None]
    else:
        var = np.einsum("kii->ki", cov_full)
        if np.any(var <= 0):
            raise ValueError("covariances must have positive variances.")
        if model_type == "diag":
            out["sigmas"] = np.sqrt(var)
        else:
            out["sigmas"] = np.sqrt(var.mean(axis=1))
    missing = [rv.name for rv in model.free_RVs if rv.name not in out]
    expected = {"weights", "means", "means_ordered", "means_free", "sigmas", "chol_corr"}
    if any(name in expected for name in missing):  # pragma: no cover - defensive
        raise ValueError(f"could not derive initial values for {missing}.")
    return out
