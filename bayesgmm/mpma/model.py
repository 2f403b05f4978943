"""PyMC graph of MPMA: the posterior that MAP-EM maximises, for find_MAP, NUTS and ADVI.

:func:`build_mpma_model` returns a plain :class:`pymc.Model` with named dims. The component
of each rating is marginalised analytically (``pm.NormalMixture``), so every free variable
is continuous. Variables (``<c>`` is global, user or item)::

    weights            ~ Dirichlet(weights_alpha)                   (component)
    sigma2             ~ InverseGamma(sigma_a, sigma_b), > sigma_min**2 (component)
    sigmas             = sqrt(sigma2)                               (component)
    offset_<c>         ~ Normal(offset_mu, offset_sd)
    row_bias_<c>       ~ Normal(0, sigmas[c] / sqrt(bias_penalty))   (row_<c>)
    col_bias_<c>       ~ Normal(0, sigmas[c] / sqrt(bias_penalty))   (col_<c>)
    row_factors_<c>    ~ Normal(0, sigmas[c] / sqrt(factor_penalty)) (row_<c>, factor)
    col_factors_<c>    ~ Normal(0, sigmas[c] / sqrt(factor_penalty)) (col_<c>, factor)
    rating             ~ NormalMixture(weights, mu, sigmas)         (obs)

with the row/column layouts of :func:`bayesgmm.mpma.em.component_index`:
``row_global = user``, ``col_global = item``; ``row_user = user``,
``col_user = (user_group, item)`` flattened; ``row_item = (item_group, user)`` flattened,
``col_item = item``. Only rows and columns with at least one rating are variables (the
others are integrated out, see :mod:`bayesgmm.mpma.em`); the coordinate values of
``row_<c>`` and ``col_<c>`` are their indices in those layouts, which are the arrays of
:class:`bayesgmm.mpma.als.Factors`, so MAP-EM output is a valid initial point
(:func:`initial_values_from_em`). Priors are those of :class:`bayesgmm.mpma.em.MPMAPriors`;
the MAP of this model (without Jacobian, as ``pm.find_MAP`` computes it) is the MAP-EM
fixed point.
"""

from __future__ import annotations

import warnings

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from bayesgmm.mpma.als import Factors
from bayesgmm.mpma.em import MPMAPriors, MPMAState, component_index

__all__ = ["OBS_DIM", "build_mpma_model", "initial_values_from_em", "state_from_point"]

OBS_DIM = "obs"
_FIELDS = ("row_bias", "col_bias", "row_factors", "col_factors")


def build_mpma_model(
    users: np.ndarray,
    items: np.ndarray,
    ratings: np.ndarray,
    n_users: int,
    n_items: int,
    user_groups: np.ndarray,
    item_groups: np.ndarray,
    *,
    components: tuple[str, ...],
    n_factors: int,
    priors: MPMAPriors,
    use_bias: bool = True,
) -> pm.Model:
    """The MPMA posterior as a PyMC model.

    Parameters
    ----------
    users, items : ndarray of shape (N,), int
        Encoded indices (``0..n_users-1``, ``0..n_items-1``).
    ratings : ndarray of shape (N,)
    n_users, n_items : int
    user_groups, item_groups : ndarray of shape (n_users,), (n_items,), int
        Group of every user and item (as found by MAP-EM).
    components : tuple of str
        Ordered subset of ("global", "user", "item").
    n_factors : int
    priors : MPMAPriors
    use_bias : bool, default True
        Without biases the ``*_bias_<c>`` variables are absent (fixed at zero).

    Examples
    --------
    The posterior around a MAP-EM fit (encoded indices and groups from the estimator), on
    ratings of a random rank-1 matrix:

    >>> import numpy as np, pandas as pd
    >>> from bayesgmm import MPMA, build_mpma_model
    >>> rng = np.random.default_rng(2)
    >>> user, item = np.divmod(rng.choice(30 * 20, size=300, replace=False), 20)
    >>> taste = np.outer(rng.normal(size=30), rng.normal(size=20))
    >>> stars = np.clip(np.round(3 + taste[user, item]), 1, 5)
    >>> ratings = pd.DataFrame({"user": user, "item": item, "rating": stars})
    >>> em = MPMA(1, n_user_groups=2, n_item_groups=2, random_state=0).fit(ratings)
    >>> model = build_mpma_model(
    ...     em.train_users_, em.train_items_, stars, len(em.user_ids_), len(em.item_ids_),
    ...     em.user_groups_, em.item_groups_, components=em.components_, n_factors=1,
    ...     priors=em.priors_,
    ... )
    >>> model.coords["component"], len(model.coords["obs"]) == len(ratings)
    (('global', 'user', 'item'), True)
    """
    coords: dict[str, object] = {
        "component": list(components),
        "factor": np.arange(n_factors),
        OBS_DIM: np.arange(len(ratings)),
    }
    positions = {}
    for name in components:
        ix = component_index(name, users, items, n_users, n_items, user_groups, item_groups)
        seen_rows, seen_cols = ix.seen_rows, ix.seen_cols
        coords[f"row_{name}"] = seen_rows
        coords[f"col_{name}"] = seen_cols
        positions[name] = np.searchsorted(seen_rows, ix.rows), np.searchsorted(seen_cols, ix.cols)
    with pm.Model(coords=coords) as model:
        if len(components) > 1:
            weights = pm.Dirichlet(
                "weights", a=np.full(len(components), priors.weights_alpha), dims="component"
            )
        with warnings.catch_warnings():
            # PyMC warns about cloned RVs in the icdf graph of the truncated InverseGamma
            # (used only by its random generator); the log density is unaffected.
            warnings.filterwarnings("ignore", "RandomVariables", UserWarning)
            sigma2 = pm.Truncated(
                "sigma2",
                pm.InverseGamma.dist(alpha=priors.sigma_a, beta=priors.sigma_b),
                lower=priors.sigma_min**2,
                dims="component",
            )
        sigmas = pm.Deterministic("sigmas", pt.sqrt(sigma2), dims="component")
        means = []
        for c, name in enumerate(components):
            rows, cols = positions[name]
            row, col = f"row_{name}", f"col_{name}"
            factor_sd = sigmas[c] / np.sqrt(priors.factor_penalty)
            offset = pm.Normal(f"offset_{name}", priors.offset_mu, priors.offset_sd)
            u = pm.Normal(f"row_factors_{name}", 0.0, factor_sd, dims=(row, "factor"))
            v = pm.Normal(f"col_factors_{name}", 0.0, factor_sd, dims=(col, "factor"))
            mu = offset + (u[rows] * v[cols]).sum(axis=-1)
            if use_bias:
                bias_sd = sigmas[c] / np.sqrt(priors.bias_penalty)
                a = pm.Normal(f"row_bias_{name}", 0.0, bias_sd, dims=row)
                b = pm.Normal(f"col_bias_{name}", 0.0, bias_sd, dims=col)
                mu = mu + a[rows] + b[cols]
            means.append(mu)
        if len(components) > 1:
            pm.NormalMixture(
                "rating",
                w=weights,
                mu=pt.stack(means, axis=-1),
                sigma=sigmas,
                observed=ratings,
                dims=OBS_DIM,
            )
        else:
            pm.Normal("rating", mu=means[0], sigma=sigmas[0], observed=ratings, dims=OBS_DIM)
    return model


def initial_values_from_em(
    model: pm.Model, state: MPMAState, sigma_min: float = 0.0
) -> dict[str, np.ndarray]:
    """Values of the free variables of ``model`` (:func:`build_mpma_model`) from a MAP-EM state.

    The factors and biases of the rows and columns that are variables of ``model`` are
    taken (its ``row_<c>`` / ``col_<c>`` coordinates); biases only if ``model`` has them. A
    ``sigma_c`` on the floor ``sigma_min`` (where MAP-EM puts a component that would
    otherwise collapse) is moved inside the open support, by a relative 1e-6 on
    ``sigma_c**2``, so that the log-transformed start is finite.
    """
    floor = sigma_min**2 * (1.0 + 1e-6)
    values: dict[str, np.ndarray] = {"sigma2": np.maximum(np.asarray(state.sigmas) ** 2, floor)}
    if len(state.components) > 1:
        values["weights"] = np.asarray(state.weights)
    for name, f in zip(state.components, state.factors, strict=True):
        values[f"offset_{name}"] = np.asarray(f.offset)
        for field in _FIELDS:
            var = f"{field}_{name}"
            if var in model.named_vars:
                side = np.asarray(model.coords[f"{field[:3]}_{name}"], dtype=np.int64)
                values[var] = np.asarray(getattr(f, field))[side]
    return values


def state_from_point(model: pm.Model, point: dict[str, np.ndarray], like: MPMAState) -> MPMAState:
    """The :class:`MPMAState` of a ``model`` point (e.g. the output of ``pm.find_MAP``).

    ``like`` gives the components and the full array shapes; rows and columns that are
    not variables of ``model`` (no rating) get zero, their prior mean.
    """
    factors = []
    for name, template in zip(like.components, like.factors, strict=True):
        arrays = {}
        for field in _FIELDS:
            full = np.zeros_like(np.asarray(getattr(template, field), dtype=np.float64))
            var = f"{field}_{name}"
            if var in model.named_vars:
                full[np.asarray(model.coords[f"{field[:3]}_{name}"], dtype=np.int64)] = point[var]
            arrays[field] = full
        factors.append(Factors(float(point[f"offset_{name}"]), **arrays))
    weights = np.asarray(point["weights"]) if len(like.components) > 1 else np.ones(1)
    return MPMAState(like.components, weights, np.sqrt(np.asarray(point["sigma2"])), factors)


def fit_advi(
    model: pm.Model,
    *,
    start: dict[str, np.ndarray] | None = None,
    n: int = 20_000,
    draws: int = 500,
    seed: int | None = None,
    progressbar: bool = False,
):
    """Mean-field ADVI on ``model`` (e.g. the full data), started at ``start``.

    Parameters
    ----------
    model : pm.Model
        From :func:`build_mpma_model`.
    start : dict, optional
        Free-variable values (constrained space), e.g. :func:`initial_values_from_em`.
    n : int
        Optimisation steps.
    draws : int
        Draws taken from the fitted approximation.
    seed : int or None

    Returns
    -------
    approx : pymc.variational.Approximation
        The fitted approximation (``approx.hist`` is the negative ELBO trace).
    idata : xarray.DataTree
        ``draws`` draws from it (one chain).
    """
    with model:
        approx = pm.fit(n=n, method="advi", start=start, random_seed=seed, progressbar=progressbar)
    idata = approx.sample(draws, random_seed=seed)
    return approx, idata
