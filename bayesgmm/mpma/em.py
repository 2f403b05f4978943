"""MAP-EM for MPMA (Chen et al. 2016): E-step, closed-form M-steps, and the driver.

Model (N ratings ``R_n`` of user ``i_n`` on item ``j_n``, components ``c``)::

    R_n ~ sum_c pi_c Normal(mu_c(i_n, j_n), sigma_c**2)
    mu_global(i, j) = m_g + a_i + b_j + U_i . V_j                 (whole matrix)
    mu_user(i, j)   = m_u + a'_i + b'_{g(i), j} + U'_i . V'_{g(i), j}   (user group g(i))
    mu_item(i, j)   = m_v + a''_{h(j), i} + b''_j + U''_{h(j), i} . V''_j (item group h(j))

The user-local component is a factorisation of the matrix whose columns are the
(user group, item) pairs: the local item factors ``V'_{g, j}`` are learned only on the
ratings of group ``g``'s users (the sub-matrix of Chen et al.). The item-local component is
the mirror image. So every component is the same biased factorisation on re-indexed
ratings (:class:`ComponentIndex`), and one ALS kernel fits them all.

Priors: ``pi ~ Dirichlet(weights_alpha)``; ``sigma_c**2 ~ InverseGamma(sigma_a, sigma_b)``
truncated below at ``sigma_min**2``; offsets ``~ Normal(offset_mu, offset_sd**2)``; and on
the noise scale of their component (the conjugate choice of Bayesian ridge regression),
factors ``~ Normal(0, sigma_c**2 / factor_penalty)`` and biases
``~ Normal(0, sigma_c**2 / bias_penalty)``. So the ALS ridge penalties are the fixed
``factor_penalty`` and ``bias_penalty`` (as the regularisation constants of PMF, Salakhutdinov
and Mnih 2008) whatever sigma_c is. A prior with a fixed sd instead makes the penalty
``sigma_c**2 / sd**2``: a component that overfits gets a smaller sigma_c, hence less
shrinkage, hence more overfitting, until sigma_c reaches its floor (measured on MovieLens:
validation RMSE with a cliff on both sides of the best sd).

Rows and columns of a component's matrix without any training rating (a local item that no
user of the group rated) do not enter the likelihood: their posterior is their prior, they
are integrated out (left out of the log posterior and of the PyMC model) and predict with
their prior mean, zero.

The floor on sigma matters: ratings are whole stars, so a component whose mean hits one
star value exactly (say offset 4 and zero factors, for the 4-star ratings) makes the
Gaussian likelihood unbounded as its sigma -> 0, and the MAP would be that degenerate
spike. The default floor is the rounding noise of whole-star ratings,
``sigma_min = sqrt(1 / 12)`` (the sd of a uniform over one star).

MAP-EM alternates the E-step (responsibilities of the marginalised component of each
rating, in log space) with conditional maximisations: closed-form ``pi`` and ``sigma_c``,
then one weighted ALS sweep per component (:func:`bayesgmm.mpma.als.als_sweep`). Every
step increases the log posterior, which is recorded per iteration (the convergence trace).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import cached_property

import numba
import numpy as np
from scipy.special import gammaln
from scipy.stats import invgamma
from sklearn.cluster import KMeans

from bayesgmm._validation import check_real
from bayesgmm.em.gaussian import LOG_2PI
from bayesgmm.mpma.als import Factors, SideIndex, als_sweep, factor_means, side_index

__all__ = [
    "COMPONENTS",
    "ComponentIndex",
    "MPMAPriors",
    "MPMAState",
    "cluster_entities",
    "component_index",
    "e_step",
    "log_posterior",
    "m_step_sigma",
    "m_step_weights",
    "penalty_terms",
    "run_map_em",
    "sigma_from_statistics",
]

#: The three sources of a rating's mean, in this order everywhere.
COMPONENTS = ("global", "user", "item")


@dataclass(frozen=True)
class MPMAPriors:
    """Prior hyperparameters of MPMA (rating units).

    Every field is a finite number, > 0 except ``weights_alpha`` (>= 1, for an interior
    MAP of ``pi``) and ``offset_mu`` (any); checked on construction.

    Attributes
    ----------
    weights_alpha : float
        Symmetric Dirichlet concentration of ``pi``.
    sigma_a, sigma_b : float
        ``sigma_c**2 ~ InverseGamma(sigma_a, sigma_b)`` (shape, scale), truncated below at
        ``sigma_min**2``.
    sigma_min : float
        Lower bound of every ``sigma_c`` (rating units); default ``sqrt(1/12)``, the sd of
        the rounding of a continuous rating to whole stars.
    factor_penalty : float
        Ridge penalty of the latent factors: their prior is ``Normal(0, sigma_c**2 /
        factor_penalty)`` (precision relative to the component's noise precision).
    bias_penalty : float
        Ridge penalty of the user and item biases, likewise.
    offset_mu, offset_sd : float
        Normal prior of each component's offset.
    """

    weights_alpha: float = 2.0
    sigma_a: float = 2.0
    sigma_b: float = 1.0
    sigma_min: float = math.sqrt(1.0 / 12.0)
    factor_penalty: float = 11.0
    bias_penalty: float = 3.0
    offset_mu: float = 3.0
    offset_sd: float = 2.0

    def __post_init__(self):
        """Check every field: TypeError or ValueError naming it and its allowed range."""
        check_real(self.weights_alpha, "MPMAPriors.weights_alpha", minimum=1.0)
        for name in ("sigma_a", "sigma_b", "sigma_min", "factor_penalty", "bias_penalty",
                     "offset_sd"):  # fmt: skip
            check_real(getattr(self, name), f"MPMAPriors.{name}", minimum=0.0, strict=True)
        check_real(self.offset_mu, "MPMAPriors.offset_mu")


@dataclass
class ComponentIndex:
    """The ratings of one component as a (row, column) matrix.

    Attributes
    ----------
    rows, cols : ndarray of shape (n_ratings,), int64
    n_rows, n_cols : int
    by_row, by_col : SideIndex
    """

    rows: np.ndarray
    cols: np.ndarray
    n_rows: int
    n_cols: int
    by_row: SideIndex = field(repr=False)
    by_col: SideIndex = field(repr=False)

    @cached_property
    def seen_rows(self) -> np.ndarray:
        """Rows with at least one rating, sorted, shape (n_seen_rows,), int64."""
        return np.flatnonzero(np.diff(self.by_row.indptr))

    @cached_property
    def seen_cols(self) -> np.ndarray:
        """Columns with at least one rating, sorted, shape (n_seen_cols,), int64."""
        return np.flatnonzero(np.diff(self.by_col.indptr))


def component_index(
    name: str,
    users: np.ndarray,
    items: np.ndarray,
    n_users: int,
    n_items: int,
    user_groups: np.ndarray,
    item_groups: np.ndarray,
) -> ComponentIndex:
    """Matrix indices of component ``name`` for ratings (``users``, ``items``), shape (N,).

    ``user_groups`` (n_users,) and ``item_groups`` (n_items,) give each entity's group.
    Global: (user, item). User-local: (user, user group * n_items + item). Item-local:
    (item group * n_users + user, item).
    """
    n_user_groups = int(user_groups.max()) + 1
    n_item_groups = int(item_groups.max()) + 1
    if name == "global":
        rows, cols, shape = users, items, (n_users, n_items)
    elif name == "user":
        rows = users
        cols = user_groups[users] * n_items + items
        shape = (n_users, n_user_groups * n_items)
    elif name == "item":
        rows = item_groups[items] * n_users + users
        cols = items
        shape = (n_item_groups * n_users, n_items)
    else:
        raise ValueError(f"unknown component {name!r}; use one of {COMPONENTS}")
    rows = np.ascontiguousarray(rows, dtype=np.int64)
    cols = np.ascontiguousarray(cols, dtype=np.int64)
    return ComponentIndex(
        rows, cols, shape[0], shape[1],
        side_index(rows, shape[0], other=cols), side_index(cols, shape[1], other=rows),
    )  # fmt: skip


@dataclass
class MPMAState:
    """Parameters of an MPMA fit.

    Attributes
    ----------
    components : tuple of str
        Names of the active components (a subset of ``COMPONENTS``, in that order).
    weights : ndarray of shape (n_components,)
    sigmas : ndarray of shape (n_components,)
        Per-component noise sd (rating units).
    factors : list of Factors
        One per component, in the layout of its :class:`ComponentIndex`.
    """

    components: tuple[str, ...]
    weights: np.ndarray
    sigmas: np.ndarray
    factors: list[Factors]

    def copy(self) -> MPMAState:
        return MPMAState(
            self.components,
            self.weights.copy(),
            self.sigmas.copy(),
            [f.copy() for f in self.factors],
        )


def component_means(state: MPMAState, index: list[ComponentIndex]) -> np.ndarray:
    """Mean of every rating under every component, shape (N, n_components)."""
    return np.stack(
        [factor_means(f, ix.rows, ix.cols) for f, ix in zip(state.factors, index, strict=True)],
        axis=1,
    )


def log_component_densities(
    ratings: np.ndarray, means: np.ndarray, weights: np.ndarray, sigmas: np.ndarray
) -> np.ndarray:
    """``log pi_c + log Normal(R_n | mu_nc, sigma_c**2)``, shape (N, n_components)."""
    z = (ratings[:, None] - means) / sigmas
    return np.log(weights) - np.log(sigmas) - 0.5 * LOG_2PI - 0.5 * z * z


@numba.njit(cache=True, nogil=True, parallel=True)
def _e_step_kernel(ratings, means, log_coef, sigmas, resp, log_norm):  # pragma: no cover
    """Per rating: ``log_dens_c = log_coef_c - 0.5 ((R - mu_c) / sigma_c)**2``, its
    log-sum-exp (max-shifted, as scipy's ``logsumexp``) into ``log_norm`` and the
    responsibilities ``exp(log_dens_c - log_norm)`` (computed as the shifted exponentials
    over their sum) into ``resp`` (N, n_components)."""
    n_components = means.shape[1]
    for n in numba.prange(ratings.shape[0]):
        top = -np.inf
        for c in range(n_components):
            z = (ratings[n] - means[n, c]) / sigmas[c]
            value = log_coef[c] - 0.5 * z * z
            resp[n, c] = value
            top = max(top, value)
        total = 0.0
        for c in range(n_components):
            resp[n, c] = math.exp(resp[n, c] - top)
            total += resp[n, c]
        log_norm[n] = top + math.log(total)
        for c in range(n_components):
            resp[n, c] /= total


def e_step(
    ratings: np.ndarray, means: np.ndarray, weights: np.ndarray, sigmas: np.ndarray
) -> tuple[np.ndarray, float]:
    """Responsibilities (N, n_components) and the log-likelihood ``sum_n log p(R_n)``.

    One parallel pass over the ratings (numba) computes the densities of
    :func:`log_component_densities` and normalises them in log space.
    """
    ratings = np.ascontiguousarray(ratings, dtype=np.float64)
    means = np.ascontiguousarray(means, dtype=np.float64)
    sigmas = np.asarray(sigmas, dtype=np.float64)
    log_coef = np.log(weights) - np.log(sigmas) - 0.5 * LOG_2PI
    resp = np.empty(means.shape)
    log_norm = np.empty(ratings.shape[0])
    _e_step_kernel(ratings, means, log_coef, sigmas, resp, log_norm)
    return resp, float(log_norm.sum())


def m_step_weights(resp: np.ndarray, alpha: float) -> np.ndarray:
    """MAP of ``pi`` under Dirichlet(alpha): ``(N_c + alpha - 1) / (N + C (alpha - 1))``."""
    counts = resp.sum(axis=0) + alpha - 1.0
    if np.any(counts <= 0):
        raise ValueError(
            f"a component has no responsibility (expected counts {resp.sum(axis=0)}) and "
            f"weights_alpha={alpha} < 1 puts the MAP of pi on the boundary: use "
            "weights_alpha >= 1"
        )
    return counts / counts.sum()


def m_step_sigma(
    ratings: np.ndarray,
    means: np.ndarray,
    resp: np.ndarray,
    a: float,
    b: float,
    sigma_min: float = 0.0,
    penalty: np.ndarray | float = 0.0,
    n_penalised: np.ndarray | float = 0.0,
) -> np.ndarray:
    """MAP of ``sigma_c`` under ``sigma_c**2 ~ InverseGamma(a, b)`` truncated at ``sigma_min**2``.

    ``sigma_c**2 = max((sum_n resp_nc (R_n - mu_nc)**2 + penalty_c + 2 b) / (sum_n resp_nc
    + n_penalised_c + 2 (a + 1)), sigma_min**2)``, where ``penalty_c`` and
    ``n_penalised_c`` (shape (n_components,) or scalars) are the penalised sum of squares
    and the number of the component's parameters whose prior is on its noise scale
    (:func:`penalty_terms`). The objective is unimodal in ``sigma_c**2``, so the
    truncated maximum is the untruncated one clipped at the bound. Shape (n_components,).
    """
    sse = np.einsum("nc,nc->c", resp, (ratings[:, None] - means) ** 2)
    return sigma_from_statistics(sse, resp.sum(axis=0), a, b, sigma_min, penalty, n_penalised)


def sigma_from_statistics(
    sse: np.ndarray,
    counts: np.ndarray,
    a: float,
    b: float,
    sigma_min: float = 0.0,
    penalty: np.ndarray | float = 0.0,
    n_penalised: np.ndarray | float = 0.0,
) -> np.ndarray:
    """The sigma M-step from its sufficient statistics, shape (n_components,).

    ``sse`` and ``counts`` are the (expected) sums of squared residuals and numbers of
    ratings per component; the other arguments as in :func:`m_step_sigma`.
    """
    var = (sse + penalty + 2.0 * b) / (counts + n_penalised + 2.0 * (a + 1.0))
    return np.sqrt(np.maximum(var, sigma_min**2))


def penalty_terms(
    factors: Factors, index: ComponentIndex, priors: MPMAPriors, use_bias: bool
) -> tuple[float, int, int]:
    """Penalised sum of squares of one component's seen rows and columns, and the counts.

    Returns ``(factor_penalty * (|U|**2 + |V|**2) + bias_penalty * (|a|**2 + |b|**2),
    n_factor_values, n_bias_values)`` over the rows and columns with at least one rating.
    """
    rows, cols = index.seen_rows, index.seen_cols
    n_entities = rows.size + cols.size
    total = priors.factor_penalty * float(
        np.sum(factors.row_factors[rows] ** 2) + np.sum(factors.col_factors[cols] ** 2)
    )
    if not use_bias:
        return total, n_entities * factors.row_factors.shape[1], 0
    total += priors.bias_penalty * float(
        np.sum(factors.row_bias[rows] ** 2) + np.sum(factors.col_bias[cols] ** 2)
    )
    return total, n_entities * factors.row_factors.shape[1], n_entities


def _normal_log_prior(x: np.ndarray | float, mu: float, sd: float) -> float:
    x = np.asarray(x, dtype=np.float64)
    return float(-0.5 * np.sum(((x - mu) / sd) ** 2) - x.size * (math.log(sd) + 0.5 * LOG_2PI))


def log_prior(
    state: MPMAState,
    index: list[ComponentIndex],
    priors: MPMAPriors,
    use_bias: bool,
    terms: list[tuple[float, int, int]] | None = None,
) -> float:
    """Log prior density of the parameters (``sigma_c**2`` parametrisation).

    Factors and biases count on the seen rows and columns of each component's
    :class:`ComponentIndex` only (the others are integrated out). ``terms`` are the
    components' :func:`penalty_terms` if already computed for ``state``.
    """
    if terms is None:
        terms = [
            penalty_terms(f, ix, priors, use_bias)
            for f, ix in zip(state.factors, index, strict=True)
        ]
    n_components = len(state.components)
    total = 0.0
    if n_components > 1:
        alpha = priors.weights_alpha
        total += float(
            gammaln(n_components * alpha)
            - n_components * gammaln(alpha)
            + (alpha - 1.0) * np.log(state.weights).sum()
        )
    a, b = priors.sigma_a, priors.sigma_b
    var = state.sigmas**2
    log_mass = invgamma.logsf(priors.sigma_min**2, a, scale=b)  # truncation normaliser
    total += float(
        np.sum(a * math.log(b) - gammaln(a) - (a + 1.0) * np.log(var) - b / var - log_mass)
    )
    for f, v, (penalty, n_factor_values, n_bias_values) in zip(
        state.factors, var, terms, strict=True
    ):
        total += _normal_log_prior(f.offset, priors.offset_mu, priors.offset_sd)
        total += (
            -0.5 * penalty / v
            - 0.5 * (n_factor_values + n_bias_values) * (math.log(v) + LOG_2PI)
            + 0.5 * n_factor_values * math.log(priors.factor_penalty)
            + 0.5 * n_bias_values * math.log(priors.bias_penalty)
        )
    return total


def log_posterior(
    state: MPMAState,
    ratings: np.ndarray,
    index: list[ComponentIndex],
    priors: MPMAPriors,
    use_bias: bool,
) -> float:
    """Unnormalised log posterior: mixture log-likelihood plus :func:`log_prior`."""
    means = component_means(state, index)
    log_lik = e_step(ratings, means, state.weights, state.sigmas)[1]
    return log_lik + log_prior(state, index, priors, use_bias)


@dataclass
class EMResult:
    """Outcome of :func:`run_map_em`.

    Attributes
    ----------
    state : MPMAState
        The final parameters.
    trace : list of float
        Log posterior at the start of every iteration, and at the end.
    converged : bool
        Whether the change of the log posterior per rating fell below ``tol``.
    """

    state: MPMAState
    trace: list[float]
    converged: bool


def run_map_em(
    state: MPMAState,
    ratings: np.ndarray,
    index: list[ComponentIndex],
    priors: MPMAPriors,
    *,
    use_bias: bool,
    max_iter: int,
    tol: float,
    update_factors: bool = True,
    callback: Callable[[float], None] | None = None,
) -> EMResult:
    """Run MAP-EM from ``state`` (copied) until the log posterior per rating changes < tol.

    Parameters
    ----------
    state : MPMAState
        Initial parameters.
    ratings : ndarray of shape (N,)
    index : list of ComponentIndex
        One per component of ``state``.
    priors : MPMAPriors
    use_bias : bool
        Fit the user/item biases (else they stay at zero).
    max_iter : int
        Maximum number of E/M iterations (>= 0).
    tol : float
        Convergence threshold on the change of the log posterior divided by N.
    update_factors : bool, default True
        False keeps the factors fixed and maximises over ``pi`` and ``sigma`` only.
    callback : callable or None, default None
        Called with the log posterior after every iteration (progress reporting).
    """
    state = state.copy()
    n = ratings.shape[0]
    trace: list[float] = []
    converged = False
    offset_prior = (priors.offset_mu, priors.offset_sd)
    single = len(state.components) == 1
    fixed_means = None if update_factors else component_means(state, index)
    for _ in range(max_iter):
        means = component_means(state, index) if fixed_means is None else fixed_means
        resp, log_lik = e_step(ratings, means, state.weights, state.sigmas)
        terms = [
            penalty_terms(f, ix, priors, use_bias)
            for f, ix in zip(state.factors, index, strict=True)
        ]
        trace.append(log_lik + log_prior(state, index, priors, use_bias, terms))
        if callback is not None:
            callback(trace[-1])
        if len(trace) > 1 and abs(trace[-1] - trace[-2]) < tol * n:
            converged = True
            break
        if len(state.components) > 1:
            state.weights = m_step_weights(resp, priors.weights_alpha)
        state.sigmas = m_step_sigma(
            ratings, means, resp, priors.sigma_a, priors.sigma_b, priors.sigma_min,
            penalty=np.array([t[0] for t in terms]),
            n_penalised=np.array([t[1] + t[2] for t in terms], dtype=np.float64),
        )  # fmt: skip
        if not update_factors:
            continue
        for c, (factors, ix) in enumerate(zip(state.factors, index, strict=True)):
            # one component: every responsibility is exactly 1, the weight a constant
            precision = 1.0 / state.sigmas[c] ** 2
            als_sweep(
                factors,
                ratings,
                np.broadcast_to(precision, n) if single else resp[:, c] / state.sigmas[c] ** 2,
                ix.rows,
                ix.cols,
                ix.by_row,
                ix.by_col,
                factor_precision=priors.factor_penalty / state.sigmas[c] ** 2,
                bias_precision=priors.bias_penalty / state.sigmas[c] ** 2,
                offset_prior=offset_prior,
                use_bias=use_bias,
            )
    else:
        trace.append(log_posterior(state, ratings, index, priors, use_bias))
    return EMResult(state=state, trace=trace, converged=converged)


def cluster_entities(factors: np.ndarray, n_groups: int, seed: int | None) -> np.ndarray:
    """Group rows of ``factors`` (n_entities, n_factors) by k-means; labels (n_entities,)."""
    if n_groups == 1:
        return np.zeros(factors.shape[0], dtype=np.int64)
    if n_groups > factors.shape[0]:
        raise ValueError(
            f"cannot form {n_groups} groups from {factors.shape[0]} entities: reduce "
            "n_user_groups / n_item_groups"
        )
    km = KMeans(n_clusters=n_groups, n_init=4, random_state=seed).fit(factors)
    return km.labels_.astype(np.int64)


def local_factors_from_global(
    name: str, glob: Factors, n_user_groups: int, n_item_groups: int
) -> Factors:
    """Initial factors of component ``name`` copied from the global ones (tiled per group)."""
    if name == "global":
        return glob.copy()
    if name == "user":
        return replace(
            glob.copy(),
            col_bias=np.tile(glob.col_bias, n_user_groups),
            col_factors=np.tile(glob.col_factors, (n_user_groups, 1)),
        )
    return replace(
        glob.copy(),
        row_bias=np.tile(glob.row_bias, n_item_groups),
        row_factors=np.tile(glob.row_factors, (n_item_groups, 1)),
    )


@dataclass
class MPMAFit:
    """Outcome of :func:`fit_map_em`.

    Attributes
    ----------
    state : MPMAState
    user_groups : ndarray of shape (n_users,), int64
    item_groups : ndarray of shape (n_items,), int64
    warmup_trace : list of float
        Log posterior of the global-only warm-up (PMF) per iteration.
    trace : list of float
        Log posterior of the joint MAP-EM per iteration (empty for a global-only model,
        whose fit is the warm-up).
    converged : bool
    local_traces : dict of str to list of float
        Log posterior of each local component's separate fit per iteration (on its own
        sub-matrices), by component name; empty for a global-only model.
    """

    state: MPMAState
    user_groups: np.ndarray
    item_groups: np.ndarray
    warmup_trace: list[float]
    trace: list[float]
    converged: bool
    local_traces: dict[str, list[float]] = field(default_factory=dict)


def fit_map_em(
    users: np.ndarray,
    items: np.ndarray,
    ratings: np.ndarray,
    n_users: int,
    n_items: int,
    *,
    components: tuple[str, ...],
    n_factors: int,
    n_user_groups: int,
    n_item_groups: int,
    priors: MPMAPriors,
    use_bias: bool,
    n_warmup: int,
    max_iter: int,
    tol: float,
    refine_factors: bool,
    seed: int | None,
    callback: Callable[[str, float], None] | None = None,
) -> MPMAFit:
    """Fit MPMA by MAP-EM with a staged schedule.

    1. Global warm-up: the global component alone (PMF, with biases if ``use_bias``) from
       small random factors, for ``n_warmup`` iterations (``max_iter`` if it is the only
       component, which makes this the whole fit).
    2. Users and items are grouped by k-means on their global factors.
    3. Each local component starts from the global factors (tiled over groups) and is fitted
       alone on its sub-matrices for ``n_warmup`` iterations: the locally optimised factors
       of Chen et al. (2016).
    4. Joint MAP-EM of the mixture from ``pi`` uniform for ``max_iter`` iterations, updating
       ``pi``, ``sigma`` and, if ``refine_factors``, every component's factors.

    Parameters
    ----------
    users, items : ndarray of shape (N,), int64
        Encoded indices (``0..n_users-1``, ``0..n_items-1``).
    ratings : ndarray of shape (N,), float64
    n_users, n_items : int
    components : tuple of str
        Non-empty ordered subset of ``COMPONENTS`` containing "global".
    n_factors : int
        Rank of every component (>= 0; 0 leaves offset and biases only).
    n_user_groups, n_item_groups : int
        Number of k-means groups of users and of items (>= 1).
    priors : MPMAPriors
    use_bias : bool
    n_warmup, max_iter : int
    tol : float
    refine_factors : bool
    seed : int or None
        Seed of the initial factors and of k-means.
    callback : callable or None, default None
        Called as ``callback(stage, log_posterior)`` after every iteration of every stage
        (``stage`` is "warm-up", a local component's name, or "mixture").
    """
    rng = np.random.default_rng(seed)
    init_sd = 0.1
    glob = Factors(
        offset=float(ratings.mean()),
        row_bias=np.zeros(n_users),
        col_bias=np.zeros(n_items),
        row_factors=init_sd * rng.standard_normal((n_users, n_factors)),
        col_factors=init_sd * rng.standard_normal((n_items, n_factors)),
    )
    single = np.zeros(n_users, dtype=np.int64), np.zeros(n_items, dtype=np.int64)
    global_index = component_index("global", users, items, n_users, n_items, *single)
    sigma0 = max(float(ratings.std()), priors.sigma_min)
    start = MPMAState(("global",), np.ones(1), np.array([sigma0]), [glob])
    options = {"use_bias": use_bias, "tol": tol}

    def reporter(stage: str) -> Callable[[float], None] | None:
        return None if callback is None else (lambda value: callback(stage, value))

    only_global = components == ("global",)
    warm = run_map_em(
        start, ratings, [global_index], priors, max_iter=max_iter if only_global else n_warmup,
        callback=reporter("warm-up"), **options,
    )  # fmt: skip
    if only_global:
        return MPMAFit(warm.state, *single, warm.trace, [], warm.converged)

    glob = warm.state.factors[0]
    seed_groups = None if seed is None else int(rng.integers(2**31))
    user_groups = cluster_entities(glob.row_factors, n_user_groups, seed_groups)
    item_groups = cluster_entities(glob.col_factors, n_item_groups, seed_groups)
    index, factors, sigmas, local_traces = [], [], [], {}
    for name in components:
        ix = component_index(name, users, items, n_users, n_items, user_groups, item_groups)
        alone = MPMAState(
            (name,),
            np.ones(1),
            warm.state.sigmas.copy(),
            [local_factors_from_global(name, glob, n_user_groups, n_item_groups)],
        )
        if name != "global":
            separate = run_map_em(
                alone, ratings, [ix], priors, max_iter=n_warmup, callback=reporter(name),
                **options,
            )  # fmt: skip
            alone, local_traces[name] = separate.state, separate.trace
        index.append(ix)
        factors.append(alone.factors[0])
        sigmas.append(alone.sigmas[0])
    n_components = len(components)
    state = MPMAState(
        components, np.full(n_components, 1.0 / n_components), np.array(sigmas), factors
    )
    joint = run_map_em(
        state, ratings, index, priors, max_iter=max_iter, update_factors=refine_factors,
        callback=reporter("mixture"), **options,
    )  # fmt: skip
    return MPMAFit(
        joint.state, user_groups, item_groups, warm.trace, joint.trace, joint.converged,
        local_traces,
    )  # fmt: skip
