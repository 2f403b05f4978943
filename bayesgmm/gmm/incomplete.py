"""Incomplete and noisy rows under a Gaussian mixture: the NumPy maths of the Bayesian side.

A row ``x_i`` of the data may have missing coordinates (NaN; missing at random) and a known
measurement-error covariance ``S_i`` (extreme deconvolution, Bovy, Hogg & Roweis 2011).
Under component k the true position is ``t_i ~ N(mu_k, Sigma_k)`` and the measurement
``x_i = t_i + e_i`` with ``e_i ~ N(0, S_i)``, so with ``o`` the observed coordinates of the
row::

    x_{i,o} | k ~ N(mu_{k,o}, (Sigma_k + S_i)_{oo})

Everything here works per missingness pattern (the rows sharing one set of observed
coordinates share one factorisation of ``Sigma_{k,oo}`` when there is no noise).  Given
``x_{i,o}`` and k, a target ``y`` jointly Gaussian with it has the conditional law
``N(mu_k + B C^-1 (x_o - mu_o), T - B C^-1 B^T)`` with ``C = (Sigma_k + S_i)_{oo}`` and

- the measurement (imputation, :func:`conditional_gaussians` ``target="measurement"``):
  ``T = Sigma_k + S_i``, ``B = (Sigma_k + S_i)_{:, o}``;
- the true position (deconvolution, ``target="truth"``): ``T = Sigma_k``,
  ``B = Sigma_{k, :, o}``.

Used by :class:`bayesgmm.BayesGMM` (``impute``, ``deconvolve``, predictions on incomplete or
noisy rows) for each posterior draw, and by the tests as the reference of the PyMC graph.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import logsumexp

from bayesgmm._validation import check_data_matrix, check_feature_spread
from bayesgmm.em.gaussian import LOG_2PI
from bayesgmm.em.missing import check_noise_cov as em_check_noise_cov

__all__ = [
    "IMPUTATION_TARGETS",
    "PosteriorImputation",
    "check_incomplete_matrix",
    "check_noise_cov",
    "conditional_gaussians",
    "missing_patterns",
    "observed_log_prob",
    "posterior_predictive_draws",
]

#: what :func:`conditional_gaussians` conditions: the measurement (imputation) or the
#: true position (deconvolution)
IMPUTATION_TARGETS = ("measurement", "truth")


# --------------------------------------------------------------------------------------
# input checks
# --------------------------------------------------------------------------------------


def check_incomplete_matrix(
    X,
    *,
    name: str = "X",
    min_samples: int = 1,
    allow_empty_rows: bool = False,
    check_spread: bool = True,
) -> np.ndarray:
    """``X`` as a float64 (n_samples, n_features) array in which NaN marks a missing entry.

    The checks of :func:`bayesgmm._validation.check_data_matrix` with ``allow_nan=True``
    (numeric, 2-D, non-empty, enough rows, no inf) and, if ``check_spread`` (data to fit,
    not to predict on), of the feature spread, ignoring NaN, and of columns with no
    observed value; a row with no observed value raises ValueError unless
    ``allow_empty_rows``.
    """
    arr = check_data_matrix(X, name=name, min_samples=min_samples, allow_nan=True)
    observed = ~np.isnan(arr)
    empty_cols = np.flatnonzero(~observed.any(axis=0))
    if empty_cols.size and check_spread:
        raise ValueError(
            f"{name} has no observed value in column(s) {empty_cols[:5].tolist()}: a feature "
            "that is never observed cannot be modelled; drop it"
        )
    if not allow_empty_rows:
        empty = np.flatnonzero(~observed.any(axis=1))
        if empty.size:
            raise ValueError(
                f"{name} has {empty.size} row(s) with every coordinate missing (NaN), first at "
                f"{empty[:5].tolist()}: they carry no information about the mixture; drop them "
                f"(e.g. {name}[~np.isnan({name}).all(axis=1)])"
            )
    if check_spread:
        with np.errstate(invalid="ignore", over="ignore"):
            spread = np.nanmax(arr, axis=0) - np.nanmin(arr, axis=0)
        names = [str(c) for c in X.columns] if hasattr(X, "columns") else None
        check_feature_spread(spread, name=name, names=names)
    return arr


def check_noise_cov(noise_cov, X: np.ndarray) -> tuple[np.ndarray | None, bool]:
    """Measurement-error covariances as a (n_samples, n_features, n_features) array.

    The rules of EM's :func:`bayesgmm.em.missing.check_noise_cov` (the same input is
    accepted by ``GaussianMixture`` and ``BayesGMM``): ``noise_cov`` is (n, d, d) (full
    error covariances: symmetric positive semi-definite on each row's observed block) or
    (n, d) (diagonal errors: the *variances*, >= 0); entries of missing coordinates are
    ignored (set to 0).  Returns ``(S, diagonal)``: the full array, or None when every
    entry is 0 (no measurement error), and whether every matrix is diagonal.
    """
    s = em_check_noise_cov(noise_cov, X)
    if s is None:
        return None, False
    n, d = X.shape
    if s.ndim == 2:
        full = np.zeros((n, d, d))
        full[:, np.arange(d), np.arange(d)] = s
        return full, True
    off = s.copy()
    off[:, np.arange(d), np.arange(d)] = 0.0
    return s, bool(not off.any())


def missing_patterns(observed: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """The missingness patterns of a (n, d) boolean ``observed`` mask.

    Returns a list of ``(obs_idx, rows)``: the observed coordinates of the pattern and the
    rows that have it (increasing), one entry per distinct pattern, the complete pattern (if
    present) last.
    """
    keys, inverse = np.unique(observed, axis=0, return_inverse=True)
    inverse = inverse.ravel()
    return [(np.flatnonzero(key), np.flatnonzero(inverse == p)) for p, key in enumerate(keys)]


# --------------------------------------------------------------------------------------
# densities and conditionals for one parameter value
# --------------------------------------------------------------------------------------


def _psd_sqrt(cov: np.ndarray) -> np.ndarray:
    """A square root ``A`` with ``A A^T = cov`` for a stack of symmetric PSD matrices
    (eigen-decomposition, negative rounding clipped: works where Cholesky fails)."""
    val, vec = np.linalg.eigh(cov)
    return vec * np.sqrt(np.clip(val, 0.0, None))[..., None, :]


def conditional_gaussians(
    X: np.ndarray,
    means: np.ndarray,
    covariances: np.ndarray,
    noise_cov: np.ndarray | None = None,
    *,
    target: str = "measurement",
    patterns: list[tuple[np.ndarray, np.ndarray]] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row and component: log N(x_o | mu_o, C), and the conditional law of the target.

    Parameters
    ----------
    X : ndarray (n, d)
        NaN marks a missing coordinate.
    means : ndarray (K, d)
    covariances : ndarray (K, d, d)
        Full component covariances.
    noise_cov : ndarray (n, d, d) or None
        Measurement-error covariances (None: no noise).
    target : {"measurement", "truth"}
        "measurement": the row's measurement x (imputation; its observed coordinates have
        conditional variance 0); "truth": the true position t (deconvolution).
    patterns : list, optional
        ``missing_patterns(~np.isnan(X))``, when already computed.

    Returns
    -------
    log_dens : ndarray (n, K)
        ``log N(x_{i,o} | mu_{k,o}, (Sigma_k + S_i)_{oo})`` (0 for a row with nothing
        observed).
    cond_mean : ndarray (n, K, d)
        ``E[target_i | x_{i,o}, z_i = k]``.
    cond_cov : ndarray (n, K, d, d)
        ``Cov[target_i | x_{i,o}, z_i = k]``.
    """
    if target not in IMPUTATION_TARGETS:
        raise ValueError(f"target must be one of {IMPUTATION_TARGETS}, got {target!r}")
    n, d = X.shape
    k = means.shape[0]
    log_dens = np.zeros((n, k))
    cond_mean = np.empty((n, k, d))
    cond_cov = np.empty((n, k, d, d))
    if patterns is None:
        patterns = missing_patterns(~np.isnan(X))
    for o, rows in patterns:
        npat = rows.size
        sig = np.broadcast_to(covariances, (npat, k, d, d))
        meas = sig if noise_cov is None else sig + noise_cov[rows][:, None]
        tgt = meas if target == "measurement" else sig
        mu = np.broadcast_to(means, (npat, k, d))
        m = o.size
        if m == 0:
            cond_mean[rows] = mu
            cond_cov[rows] = tgt
            continue
        chol = np.linalg.cholesky(meas[..., o[:, None], o[None, :]])  # (npat, K, m, m)
        resid = X[rows][:, o][:, None, :] - mu[..., o]  # (npat, K, m)
        z = np.linalg.solve(chol, resid[..., None])[..., 0]
        log_det = np.log(np.diagonal(chol, axis1=-2, axis2=-1)).sum(axis=-1)
        log_dens[rows] = -0.5 * np.sum(z * z, axis=-1) - log_det - 0.5 * m * LOG_2PI
        cross = tgt[..., :, o]  # (npat, K, d, m): Cov(target, x_o)
        w = np.linalg.solve(chol, np.swapaxes(cross, -1, -2))  # L^-1 B^T: (npat, K, m, d)
        cond_mean[rows] = mu + np.einsum("pkmd,pkm->pkd", w, z)
        cond_cov[rows] = tgt - np.swapaxes(w, -1, -2) @ w
    return log_dens, cond_mean, cond_cov


def observed_log_prob(
    X: np.ndarray,
    weights: np.ndarray,
    means: np.ndarray,
    covariances: np.ndarray,
    noise_cov: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Marginal log-likelihood of each row's observed coordinates and the responsibilities.

    Returns ``(log_prob (n,), resp (n, K))`` with ``log_prob_i = log sum_k w_k
    N(x_{i,o} | mu_{k,o}, (Sigma_k + S_i)_{oo})`` (0 for a row with nothing observed, whose
    responsibilities are the weights) and ``resp_ik = p(z_i = k | x_{i,o})``.
    """
    log_dens = _observed_log_dens(X, means, covariances, noise_cov)
    joint = np.log(weights)[None, :] + log_dens
    log_prob = logsumexp(joint, axis=1)
    return log_prob, np.exp(joint - log_prob[:, None])


def _observed_log_dens(X, means, covariances, noise_cov):
    """The ``log_dens`` of :func:`conditional_gaussians` alone (no conditionals)."""
    n = X.shape[0]
    k = means.shape[0]
    out = np.zeros((n, k))
    for o, rows in missing_patterns(~np.isnan(X)):
        m = o.size
        if m == 0:
            continue
        sig = covariances[:, o[:, None], o[None, :]]
        cov = (
            sig[None]
            if noise_cov is None
            else sig[None] + noise_cov[rows][:, None][..., o[:, None], o[None, :]]
        )
        chol = np.linalg.cholesky(cov)
        resid = X[rows][:, o][:, None, :] - means[None][..., o]
        z = np.linalg.solve(np.broadcast_to(chol, (rows.size, k, m, m)), resid[..., None])[..., 0]
        log_det = np.log(np.diagonal(chol, axis1=-2, axis2=-1)).sum(axis=-1)
        out[rows] = -0.5 * np.sum(z * z, axis=-1) - log_det - 0.5 * m * LOG_2PI
    return out


# --------------------------------------------------------------------------------------
# posterior predictive draws over parameter draws
# --------------------------------------------------------------------------------------


@dataclass
class PosteriorImputation:
    """Posterior predictive draws of missing entries (or of true positions) and summaries.

    Attributes
    ----------
    draws : ndarray (n_draws, n_samples, n_features)
        A multiple-imputation set: draw ``s`` is one completed data set, from posterior
        draw ``s`` of the parameters (then a component from its responsibility given the
        row's observed coordinates, then the conditional Gaussian).  For imputation the
        observed entries equal ``X`` in every draw.
    mean : ndarray (n_samples, n_features)
        Posterior mean of each entry, Rao-Blackwellised: the average over the parameter
        draws of ``sum_k p(z=k | x_o) E[entry | x_o, k]`` (observed entries: ``X``).
    low, high : ndarray (n_samples, n_features)
        Equal-tailed central ``prob`` interval of each entry from ``draws`` (observed
        entries of an imputation: ``X``).
    prob : float
        Mass of the interval.
    missing : ndarray of bool (n_samples, n_features)
        Which entries were drawn: the NaN of ``X`` for an imputation; every entry for a
        deconvolution.
    """

    draws: np.ndarray
    mean: np.ndarray
    low: np.ndarray
    high: np.ndarray
    prob: float
    missing: np.ndarray

    @property
    def sd(self) -> np.ndarray:
        """Posterior sd of each entry from ``draws`` (n_samples, n_features); 0 if observed."""
        return self.draws.std(axis=0, ddof=1) if len(self.draws) > 1 else np.zeros_like(self.mean)


def posterior_predictive_draws(
    X: np.ndarray,
    params,
    noise_cov: np.ndarray | None,
    *,
    target: str,
    prob: float,
    rng: np.random.Generator,
) -> PosteriorImputation:
    """Draws of the target (see :func:`conditional_gaussians`) over parameter draws.

    ``params`` is an iterable of ``(weights (K,), means (K, d), covariances (K, d, d))``;
    each gives one draw per row: ``z ~ p(z | x_o)``, then the target from its conditional
    Gaussian given ``x_o`` and ``z``.  With ``target="measurement"`` only the missing
    entries are drawn (the observed ones are copied from ``X``).
    """
    n, d = X.shape
    observed = ~np.isnan(X)
    drawn = ~observed if target == "measurement" else np.ones_like(observed)
    draws, means = [], []
    patterns = missing_patterns(observed)
    for weights, mu, cov in params:
        log_dens, cmean, ccov = conditional_gaussians(
            X, mu, cov, noise_cov, target=target, patterns=patterns
        )
        joint = np.log(weights)[None, :] + log_dens
        resp = np.exp(joint - joint.max(axis=1, keepdims=True))
        resp /= resp.sum(axis=1, keepdims=True)
        u = rng.random(n)
        z = np.minimum((np.cumsum(resp, axis=1) < u[:, None]).sum(axis=1), len(weights) - 1)
        rows = np.arange(n)
        eps = rng.standard_normal((n, d))
        draw = cmean[rows, z] + np.einsum("nij,nj->ni", _psd_sqrt(ccov[rows, z]), eps)
        draws.append(np.where(drawn, draw, X))
        means.append(np.where(drawn, np.einsum("nk,nkd->nd", resp, cmean), X))
    draws_arr = np.stack(draws)
    tail = (1.0 - prob) / 2.0
    low, high = np.quantile(draws_arr, [tail, 1.0 - tail], axis=0)
    return PosteriorImputation(
        draws=draws_arr,
        mean=np.mean(means, axis=0),
        low=np.where(drawn, low, X),
        high=np.where(drawn, high, X),
        prob=float(prob),
        missing=drawn,
    )
