r"""Fisher vectors of descriptor sets from a fitted Gaussian mixture, every covariance type.

A set of descriptors ``X = {x_1, ..., x_n}`` (rows of an (n, D) array, with optional
weights ``v_i``) is encoded by the gradient of its log-likelihood under a fitted mixture
``p(x) = sum_k w_k N(x | mu_k, Lambda_k^-1)``,

    L(theta) = sum_i v_i log p(x_i | theta),

normalised by the Fisher information (Perronnin & Dance 2007; Sanchez, Perronnin, Mensink
& Verbeek 2013). With ``gamma_ik = p(k | x_i)`` and ``d_ik = x_i - mu_k``:

Parametrisation (the raw gradient, ``normalization="none"``)
-----------------------------------------------------------
- **weights**: softmax coordinates ``alpha`` (``w = softmax(alpha)``):
  ``dL/d alpha_k = sum_i v_i (gamma_ik - w_k)``.
- **means**: ``dL/d mu_k = Lambda_k sum_i v_i gamma_ik d_ik``.
- **covariances**: the upper-triangular Cholesky factor ``P_k`` of the precision
  (``P_k P_k' = Lambda_k``, scikit-learn's ``precisions_cholesky_``), whose log-density is
  ``log det P_k - |P_k' d|^2 / 2 + const``:
  ``dL/dP_k,ab = sum_i v_i gamma_ik (delta_ab / P_k,aa - (d_ik d_ik' P_k)_ab)`` for
  ``a <= b`` (full, tied), ``dL/dp_kd = sum_i v_i gamma_ik (1/p_kd - p_kd d_ikd^2)`` with
  ``p_kd = 1/sigma_kd`` (diag).

Normalisation (``normalization="fisher"``, the default)
-------------------------------------------------------
The Fisher information of the mixture is approximated, as usual, by its value when the
components do not overlap (``gamma`` one-hot): it is then block-diagonal in the
components, and each block is that of one Gaussian observed with probability ``w_k``.
Change, locally at the fitted parameters, to the coordinates

    mu_k = mu_k0 + P_k0^-T t_k,     P_k = P_k0 (I + E_k)   (E_k upper triangular),

in which the whitened residual ``y_ik = P_k' d_ik`` is standard normal under component k,
and the scores per descriptor are ``d log N_k / d t_k = y`` and
``d log N_k / d E_k,ab = delta_ab - y_a y_b``. Their covariance under ``N(0, I)`` is
diagonal: 1 for ``t``, 2 for a diagonal ``E_aa`` (``Var(1 - y_a^2) = 2``), 1 for
``E_ab, a < b`` (``Var(y_a y_b) = 1``), and zero between all of them (odd moments vanish).
So the Fisher information per descriptor is diagonal in ``(alpha, t, E)``:
``w_k``, ``w_k I`` and ``w_k diag(2 or 1)``, and the normalised vector is

    G_alpha_k = sum_i v_i (gamma_ik - w_k)                  / (n sqrt(w_k))
    G_mu_k    = P_k' sum_i v_i gamma_ik d_ik                / (n sqrt(w_k))
    G_P_k,ab  = sum_i v_i gamma_ik (delta_ab - y_a y_b)     / (n sqrt(w_k) sqrt(1 + delta_ab))

with ``n = sum_i v_i`` (the number of descriptors without weights): the gradient in
``(alpha, t, E)`` divided by the square root of its Fisher information, averaged over the
set as scikit-image and VLFeat do. Hence ``G' G`` is the Fisher kernel of the mixture
(within the approximation) and, on data drawn from the mixture, the normalised score of one
descriptor has unit expected Fisher information ``E[G G'] = I`` on the means and
covariance blocks, and ``I - sqrt(w) sqrt(w)'`` on the weights block: the identity on the
``K - 1`` directions the data can inform (the weights sum to one, so ``sum_k sqrt(w_k)
G_alpha_k = 0`` always; this is the pseudo-inverse normalisation).

For diagonal covariances ``P_k = diag(1/sigma_k)`` and ``E`` is diagonal: the covariance
block is ``sum_i v_i gamma_ik (1 - ((x_i - mu_k)/sigma_k)^2) / (n sqrt(2 w_k))``, which is
exactly :func:`skimage.feature.fisher_vector` (its sign is that of the precision, its
weights block the ``K`` values ``(mean gamma - w)/sqrt(w)``, its blocks ordered weights,
means, covariances, each component-major). Perronnin's and VLFeat's "variance" block is
the same with the opposite sign.

Tied and spherical mixtures
---------------------------
``covariance_parameters="component"`` (default) gives every component its own covariance
block, i.e. the Fisher vector of the untied family (full for tied, diag for spherical)
evaluated at the fitted mixture: ``2KD + K`` values for diag and spherical,
``K + KD + K D(D+1)/2`` for full and tied. ``"model"`` differentiates the fitted model's own
parameters instead: one shared ``P`` for tied (``D(D+1)/2`` values, Fisher information
``sum_k w_k diag(2 or 1)``) and one precision ``p_k^2 I`` per component for spherical
(``K`` values: ``sum_i v_i gamma_ik (D - |y_ik|^2) / (n sqrt(2 D w_k))``). Both are exact
gradients of the set's log-likelihood in their parametrisation.

Improved Fisher vectors (Perronnin, Sanchez & Mensink 2010): ``improved=True`` applies the
signed power ``sign(z) |z|^alpha`` then divides by the L2 norm (a zero vector stays zero).

Numerics: everything is computed in float64, whatever the descriptors' dtype (scikit-learn
keeps float32 data in float32, so scikit-image's vectors of float32 descriptors carry float32
errors). Statistics are accumulated about the mixture's mean ``c = sum_k w_k mu_k`` and
shifted to each component mean (``sum gamma (x - mu)(x - mu)' = S2 - S1 delta' - delta S1'
+ S0 delta delta'`` with ``delta = mu_k - c``); this loses ``eps |mu_k - c|^2 / sigma_k^2``
relative to the second-order block, negligible unless a component sits thousands of its
standard deviations away from the others. Responsibilities come from the EM engine's
E-step (:func:`bayesgmm.em.sweep.log_prob_resp`: log-space, far rows guarded).

Batch encoding stacks every set, computes all responsibilities in the EM engine's blocked
pass, and the per-set statistics by one matrix product per set (or one sparse product for
many small sets): no Python loop over descriptors.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache

import numpy as np
from scipy import sparse
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

from bayesgmm._validation import check_choice, check_real
from bayesgmm.em.gaussian import (
    check_covariance_type,
    n_quadratic_features,
    quadratic_features,
    unpack_quadratic_moments,
)
from bayesgmm.em.sweep import (
    N_THREADS,
    Design,
    MixtureParams,
    log_prob_resp,
    single_threaded_blas,
)

__all__ = [
    "BLOCKS",
    "COVARIANCE_PARAMETERS",
    "NORMALIZATIONS",
    "EncodingOptions",
    "FittedMixture",
    "PreparedSets",
    "check_options",
    "encode_prepared",
    "fisher_vector",
    "fisher_vector_blocks",
    "fisher_vector_names",
    "fisher_vectors",
    "fitted_mixture",
    "prepare_sets",
]

#: The parameter blocks of a Fisher vector, in the order they are concatenated.
BLOCKS = ("weights", "means", "covariances")
#: ``"fisher"``: normalised by the Fisher information and averaged over the set;
#: ``"none"``: the raw gradient of the set's (weighted) log-likelihood.
NORMALIZATIONS = ("fisher", "none")
#: Covariance parameters of tied and spherical mixtures: one block per component (the
#: untied family) or the fitted model's own (shared / scalar) parameters.
COVARIANCE_PARAMETERS = ("component", "model")

#: Bytes of the per-chunk design matrices (rows of whole sets are encoded per chunk).
_CHUNK_BYTES = 64 * 2**20
#: Below this mean set size the per-set statistics are one sparse product, else one
#: dense matrix product per set.
_SPARSE_MEAN_SET_SIZE = 16


# ------------------------------------------------------------------------------ mixture
@dataclass(frozen=True)
class FittedMixture:
    """The parameters of a fitted mixture that a Fisher vector needs (scikit-learn shapes).

    ``weights`` (K,), ``means`` (K, D), ``covariances`` and ``precisions_cholesky`` in the
    shape of ``covariance_type`` ((K, D, D) full, (D, D) tied, (K, D) diag, (K,)
    spherical).
    """

    covariance_type: str
    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray
    precisions_cholesky: np.ndarray

    @property
    def n_components(self) -> int:
        return self.means.shape[0]

    @property
    def n_features(self) -> int:
        return self.means.shape[1]

    def params(self) -> MixtureParams:
        return MixtureParams(self.weights, self.means, self.covariances, self.precisions_cholesky)

    def center(self) -> np.ndarray:
        """The mixture's mean ``sum_k w_k mu_k``: the origin of the statistics."""
        return self.weights @ self.means / self.weights.sum()


def fitted_mixture(gmm) -> FittedMixture:
    """The parameters of a fitted :class:`bayesgmm.GaussianMixture` (or scikit-learn's
    ``GaussianMixture`` / ``BayesianGaussianMixture``), checked.

    Raises
    ------
    sklearn.exceptions.NotFittedError
        If ``gmm`` is not fitted.
    TypeError
        If ``gmm`` is not a Gaussian mixture estimator (a ``BayesGMM`` is pointed to
        :func:`bayesgmm.gmm.fisher.posterior_fisher_vectors`).
    """
    if isinstance(gmm, FittedMixture):
        return gmm
    if type(gmm).__name__ == "BayesGMM":
        raise TypeError(
            "a BayesGMM has a posterior, not one mixture: use "
            "bayesgmm.gmm.fisher.posterior_fisher_vectors(model, sets) for the posterior "
            "mean and sd of the Fisher vectors, or fisher_vectors(sets, model.em_) for the EM "
            "estimate's"
        )
    if not hasattr(gmm, "fit") or not hasattr(gmm, "covariance_type"):
        raise TypeError(
            "gmm must be a fitted Gaussian mixture (bayesgmm.GaussianMixture or "
            f"sklearn.mixture.GaussianMixture), got {type(gmm).__name__}"
        )
    try:
        check_is_fitted(gmm, ("weights_", "means_", "precisions_cholesky_"))
    except NotFittedError:
        raise NotFittedError(
            f"This {type(gmm).__name__} instance is not fitted yet: fit the mixture on the "
            "descriptors first (e.g. GaussianMixture(16, covariance_type='diag').fit(X)), then "
            "encode the sets with it"
        ) from None
    covariance_type = check_covariance_type(gmm.covariance_type)
    weights = np.asarray(gmm.weights_, dtype=np.float64)
    if not (weights > 0).all():
        k = int(np.flatnonzero(~(weights > 0))[0])
        raise ValueError(
            f"component {k} of the mixture has weight {weights[k]!r}: a Fisher vector "
            "divides by sqrt(weight); refit with fewer components"
        )
    return FittedMixture(
        covariance_type,
        weights,
        np.asarray(gmm.means_, dtype=np.float64),
        np.asarray(gmm.covariances_, dtype=np.float64),
        np.asarray(gmm.precisions_cholesky_, dtype=np.float64),
    )


# ------------------------------------------------------------------------------ options
@dataclass(frozen=True)
class EncodingOptions:
    """Checked options of an encoding (see :func:`fisher_vectors`)."""

    blocks: tuple[str, ...] = BLOCKS
    improved: bool = False
    alpha: float = 0.5
    normalization: str = "fisher"
    covariance_parameters: str = "component"


def check_options(
    blocks=BLOCKS,
    improved: bool = False,
    alpha: float = 0.5,
    normalization: str = "fisher",
    covariance_parameters: str = "component",
) -> EncodingOptions:
    """The options, checked: ValueError/TypeError naming the parameter and what it takes."""
    if isinstance(blocks, str):
        blocks = (blocks,)
    try:
        chosen = tuple(blocks)
    except TypeError:
        raise TypeError(
            f"blocks must be a sequence of names from {BLOCKS}, got {blocks!r}"
        ) from None
    unknown = [b for b in chosen if b not in BLOCKS]
    if unknown or not chosen or len(set(chosen)) != len(chosen):
        raise ValueError(
            f"blocks must be a non-empty selection without repeats from {BLOCKS}, got "
            f"{blocks!r}" + (f" (unknown: {unknown})" if unknown else "")
        )
    if not isinstance(improved, bool | np.bool_):
        raise TypeError(f"improved must be True or False, got {improved!r}")
    alpha = check_real(alpha, "alpha", minimum=0.0)
    if alpha > 1.0:
        raise ValueError(f"alpha must be in [0, 1] (the power of the signed power), got {alpha!r}")
    check_choice(normalization, "normalization", NORMALIZATIONS)
    check_choice(covariance_parameters, "covariance_parameters", COVARIANCE_PARAMETERS)
    return EncodingOptions(
        tuple(b for b in BLOCKS if b in chosen),
        bool(improved),
        alpha,
        normalization,
        covariance_parameters,
    )


# -------------------------------------------------------------------------------- layout
def _covariance_block_names(mixture: FittedMixture, covariance_parameters: str) -> list[str]:
    k, d, cov = mixture.n_components, mixture.n_features, mixture.covariance_type
    if cov in ("full", "tied"):
        rows, cols = np.triu_indices(d)
        pairs = [f"{a},{b}" for a, b in zip(rows, cols, strict=True)]
        if cov == "tied" and covariance_parameters == "model":
            return [f"covariances[{p}]" for p in pairs]
        return [f"covariances[{c},{p}]" for c in range(k) for p in pairs]
    if cov == "spherical" and covariance_parameters == "model":
        return [f"covariances[{c}]" for c in range(k)]
    return [f"covariances[{c},{j}]" for c in range(k) for j in range(d)]


def fisher_vector_names(
    gmm, *, blocks=BLOCKS, covariance_parameters: str = "component"
) -> list[str]:
    """Names of the coordinates of the Fisher vector, in order.

    ``weights[k]``, ``means[k,d]``, then ``covariances[k,a,b]`` (full/tied, ``a <= b`` in
    ``np.triu_indices`` order: the entry ``(a, b)`` of the precision Cholesky factor),
    ``covariances[k,d]`` (diag, spherical), ``covariances[a,b]`` (tied, model) or
    ``covariances[k]`` (spherical, model).
    """
    mixture = fitted_mixture(gmm)
    options = check_options(blocks, covariance_parameters=covariance_parameters)
    k, d = mixture.n_components, mixture.n_features
    names = {
        "weights": [f"weights[{c}]" for c in range(k)],
        "means": [f"means[{c},{j}]" for c in range(k) for j in range(d)],
        "covariances": _covariance_block_names(mixture, options.covariance_parameters),
    }
    return [name for block in options.blocks for name in names[block]]


def fisher_vector_blocks(names) -> np.ndarray:
    """The block (``"weights"``, ``"means"``, ``"covariances"``) of each coordinate name."""
    return np.array([str(name).partition("[")[0] for name in names])


# ---------------------------------------------------------------------------------- sets
@dataclass(frozen=True)
class PreparedSets:
    """Descriptor sets stacked and checked: rows of set ``s`` are
    ``X[starts[s]:starts[s + 1]]``; ``sample_weight`` (n_rows,) or None; ``ids`` the set
    identifiers (the output row order)."""

    X: np.ndarray
    starts: np.ndarray
    sample_weight: np.ndarray | None
    ids: np.ndarray

    @property
    def n_sets(self) -> int:
        return len(self.starts) - 1


def _as_set(value, index: int, n_features: int) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"set {index} must be a numeric array (n_descriptors, n_features): {err}"
        ) from None
    if arr.ndim != 2:
        hint = " (one descriptor: reshape it with x.reshape(1, -1))" if arr.ndim == 1 else ""
        raise ValueError(
            f"set {index} must be 2-D (n_descriptors, n_features), got {arr.ndim}-D{hint}"
        )
    if arr.shape[1] != n_features:
        raise ValueError(
            f"set {index} has {arr.shape[1]} features, but the mixture was fitted with "
            f"{n_features}: encode descriptors of the kind the mixture was fitted on"
        )
    if arr.shape[0] == 0:
        raise ValueError(
            f"set {index} is empty (0 descriptors): a Fisher vector needs at least one "
            "descriptor; drop the set or give it one"
        )
    return arr


def _label(ids: np.ndarray, s: int):
    """The id of set ``s`` as a plain Python value (for messages)."""
    value = ids[s]
    return value.item() if isinstance(value, np.generic) else value


def _check_finite(X: np.ndarray, starts: np.ndarray, ids: np.ndarray) -> None:
    finite = np.isfinite(X).all(axis=1)
    if not finite.all():
        rows = np.flatnonzero(~finite)
        sets = np.searchsorted(starts, rows, side="right") - 1
        kind = "NaN" if np.isnan(X[rows]).any() else "inf"
        first = int(sets[0])
        raise ValueError(
            f"the descriptors contain {kind} (non-finite values) in {rows.size} row(s) of "
            f"{np.unique(sets).size} set(s), first in set {_label(ids, first)!r} (descriptor "
            f"{int(rows[0] - starts[first])}): drop or impute them first"
        )


def _check_weights(w, n_rows: int, starts: np.ndarray, ids: np.ndarray) -> np.ndarray:
    try:
        w = np.asarray(w, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError("sample_weight must be numeric") from None
    if w.shape != (n_rows,):
        raise ValueError(
            f"sample_weight must hold one weight per descriptor: shape ({n_rows},), got {w.shape}"
        )
    if not np.isfinite(w).all() or (w < 0).any():
        raise ValueError("sample_weight must be finite and non-negative")
    totals = np.add.reduceat(w, starts[:-1])
    if not (totals > 0).all():
        s = int(np.flatnonzero(~(totals > 0))[0])
        raise ValueError(
            f"the descriptor weights of set {_label(ids, s)!r} sum to zero: every set needs a "
            "positive total weight"
        )
    return w


def prepare_sets(sets, n_features: int, *, set_ids=None, sample_weight=None) -> PreparedSets:
    """Stack and check descriptor sets.

    Parameters
    ----------
    sets : list of array-like (n_i, n_features), array (n_sets, n, n_features), or
        array (n_descriptors, n_features) with ``set_ids``
    n_features : int
        The mixture's number of features.
    set_ids : array-like (n_descriptors,), optional
        The set of each row of a 2-D ``sets``; sets are returned in the order of
        ``np.unique(set_ids)``.
    sample_weight : per descriptor: a list of (n_i,) arrays for a list of sets, an
        (n_sets, n) array for a 3-D array, an (n_descriptors,) array with ``set_ids``.
    """
    if set_ids is not None:
        try:
            ndim = np.asarray(sets, dtype=np.float64).ndim
        except (TypeError, ValueError):
            ndim = None
        if ndim != 2:
            raise ValueError(
                "with set_ids, sets must be one 2-D numeric array (n_descriptors, "
                "n_features) whose rows set_ids labels"
                + ("" if ndim is None else f", got {ndim}-D")
            )
        X = _as_set(sets, 0, n_features)
        ids = np.asarray(set_ids)
        if ids.shape != (len(X),):
            raise ValueError(
                f"set_ids must hold one id per descriptor: shape ({len(X)},), got {ids.shape}"
            )
        order = np.argsort(ids, kind="stable")
        unique, first = np.unique(ids[order], return_index=True)
        starts = np.append(first, len(X))
        X = X[order]
        _check_finite(X, starts, unique)
        w = None
        if sample_weight is not None:
            w = np.asarray(sample_weight)
            if w.shape == (len(order),):
                w = w[order]
            w = _check_weights(w, len(X), starts, unique)
        return PreparedSets(np.ascontiguousarray(X), starts, w, unique)
    if isinstance(sets, np.ndarray) and sets.ndim == 3:
        sets = list(sets)
    elif isinstance(sets, np.ndarray) and sets.ndim == 2:
        raise ValueError(
            "sets is one 2-D array: pass set_ids to say which rows form each set, wrap it "
            "in a list ([X]) for one set, or use fisher_vector(X, gmm)"
        )
    if isinstance(sets, str | bytes) or not hasattr(sets, "__len__"):
        raise TypeError(
            "sets must be a list of 2-D arrays (n_descriptors, n_features), a 3-D array, or "
            f"one 2-D array with set_ids; got {type(sets).__name__}"
        )
    if len(sets) == 0:
        raise ValueError("no sets to encode: sets is empty")
    arrays = [_as_set(s, i, n_features) for i, s in enumerate(sets)]
    sizes = np.array([len(a) for a in arrays])
    starts = np.concatenate([[0], np.cumsum(sizes)])
    X = np.concatenate(arrays) if len(arrays) > 1 else arrays[0]
    ids = np.arange(len(arrays))
    _check_finite(X, starts, ids)
    w = None
    if sample_weight is not None:
        if isinstance(sample_weight, np.ndarray) and sample_weight.ndim == 2:
            sample_weight = list(sample_weight)
        if not hasattr(sample_weight, "__len__") or len(sample_weight) != len(arrays):
            raise ValueError(
                "sample_weight must hold one array of descriptor weights per set "
                f"({len(arrays)} sets)"
            )
        parts = [np.asarray(p, dtype=np.float64).reshape(-1) for p in sample_weight]
        bad = [i for i, (p, n) in enumerate(zip(parts, sizes, strict=True)) if len(p) != n]
        if bad:
            i = bad[0]
            raise ValueError(
                f"sample_weight[{i}] has {len(parts[i])} weights for the {sizes[i]} "
                f"descriptors of set {i}"
            )
        w = _check_weights(np.concatenate(parts), len(X), starts, ids)
    return PreparedSets(np.ascontiguousarray(X), starts, w, ids)


# ------------------------------------------------------------------------------- maths
def _chunks(starts: np.ndarray, row_bytes: int, set_bytes: int):
    """Ranges of consecutive sets ``(s0, s1)`` whose rows and per-set arrays take about
    ``_CHUNK_BYTES`` (at least one set per chunk)."""
    cost = starts * float(row_bytes) + np.arange(len(starts)) * float(set_bytes)
    s0, n_sets = 0, len(starts) - 1
    while s0 < n_sets:
        s1 = int(np.searchsorted(cost, cost[s0] + _CHUNK_BYTES, side="right")) - 1
        s1 = min(max(s1, s0 + 1), n_sets)
        yield s0, s1
        s0 = s1


def _group_statistics(resp, Z, local, first, last, raw, k) -> None:
    """``raw[s] = resp_s' Z_s`` for the sets ``first..last-1`` of a chunk (row offsets
    ``local``): one batched product when they have equal sizes, one sparse product when
    they are small, else one product per set."""
    lo, hi = local[first], local[last]
    sizes = np.diff(local[first : last + 1])
    n_sets, width = last - first, Z.shape[1]
    if n_sets == 0:
        return
    if (sizes == sizes[0]).all():
        batch = resp[lo:hi].reshape(n_sets, sizes[0], k)
        np.matmul(batch.transpose(0, 2, 1), Z[lo:hi].reshape(n_sets, sizes[0], width),
                  out=raw[first:last])  # fmt: skip
    elif (hi - lo) / n_sets < _SPARSE_MEAN_SET_SIZE:
        # row s*K + k of the indicator holds gamma_ik of the rows of set s
        set_of_row = np.repeat(np.arange(n_sets), sizes)
        indices = (set_of_row[:, None] * k + np.arange(k)).ravel()
        indptr = np.arange(0, (hi - lo) * k + 1, k)
        indicator = sparse.csc_matrix(
            (resp[lo:hi].ravel(), indices, indptr), shape=(n_sets * k, hi - lo)
        )
        raw[first:last] = (indicator @ Z[lo:hi]).reshape(n_sets, k, width)
    else:
        for s in range(first, last):
            rows = slice(local[s], local[s + 1])
            np.matmul(resp[rows].T, Z[rows], out=raw[s])


@cache
def _executor() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=N_THREADS, thread_name_prefix="bayesgmm-fisher")


def _set_statistics(
    prep: PreparedSets, a: int, b: int, mixture: FittedMixture, center: np.ndarray, stats: str
):
    """Per set ``a..b-1`` and component: ``S0 = sum v gamma``, ``S1 = sum v gamma (x - c)``
    and ``S2 = sum v gamma q(x - c)`` (quadratic features of the ``stats`` type).

    The EM engine's E-step gives the responsibilities, then ``resp_s' [q(x - c), x - c, 1]``
    per set, the sets split over the cores (single-threaded BLAS in each)."""
    k, d = mixture.n_components, mixture.n_features
    nq = n_quadratic_features(d, stats)
    width = nq + d + 1
    raw = np.empty((b - a, k, width))
    lo, hi = prep.starts[a], prep.starts[b]
    X = prep.X[lo:hi]
    resp = log_prob_resp(Design(X, mixture.covariance_type, center=center), mixture.params())[1]
    if prep.sample_weight is not None:
        resp *= prep.sample_weight[lo:hi, None]
    Z = np.empty((hi - lo, width))
    np.subtract(X, center, out=Z[:, nq : nq + d])
    quadratic_features(Z[:, nq : nq + d], stats, out=Z[:, :nq])
    Z[:, -1] = 1.0
    local = prep.starts[a : b + 1] - lo
    bounds = np.linspace(0, b - a, min(N_THREADS, b - a) + 1).astype(int)

    def work(g):
        _group_statistics(resp, Z, local, bounds[g], bounds[g + 1], raw, k)

    with single_threaded_blas():
        list(_executor().map(work, range(len(bounds) - 1)))
    return raw[..., -1], raw[..., nq : nq + d], raw[..., :nq]


def _broadcast_chol(mixture: FittedMixture) -> np.ndarray:
    """Precision Cholesky factors per component: (K, D, D) full/tied, (K, D) diag and
    spherical (the diagonal)."""
    pc, k, d = mixture.precisions_cholesky, mixture.n_components, mixture.n_features
    return {
        "full": lambda: pc,
        "tied": lambda: np.broadcast_to(pc, (k, d, d)),
        "diag": lambda: pc,
        "spherical": lambda: np.repeat(pc[:, None], d, axis=1),
    }[mixture.covariance_type]()


def _encode_blocks(s0, s1, s2, totals, mixture: FittedMixture, center, options) -> dict:
    """The blocks of every set, (n_sets, size) each, from the statistics."""
    w, n = mixture.weights, totals[:, None]
    fisher = options.normalization == "fisher"
    P = _broadcast_chol(mixture)
    delta = mixture.means - center  # (K, D)
    first = s1 - s0[..., None] * delta  # sum v gamma (x - mu_k): (S, K, D)
    scale = n * np.sqrt(w)  # (S, K)
    out = {}
    if "weights" in options.blocks:
        g = s0 - n * w
        out["weights"] = g / scale if fisher else g
    if "means" in options.blocks:
        if mixture.covariance_type in ("full", "tied"):
            g = np.einsum("kde,skd->ske", P, first)  # P' F
            if fisher:
                g /= scale[..., None]
            else:  # Lambda F = P P' F
                g = np.einsum("kde,ske->skd", P, g)
        else:
            g = P**2 * first if not fisher else P * first / scale[..., None]
        out["means"] = g.reshape(len(s0), -1)
    if "covariances" in options.blocks:
        out["covariances"] = _covariance_block(s0, s1, s2, n, scale, P, delta, mixture, options)
    return out


def _covariance_block(s0, s1, s2, n, scale, P, delta, mixture, options):
    cov, k, d = mixture.covariance_type, mixture.n_components, mixture.n_features
    fisher = options.normalization == "fisher"
    model = options.covariance_parameters == "model"
    n_sets = len(s0)
    if cov in ("full", "tied"):
        second = unpack_quadratic_moments(s2.reshape(n_sets * k, -1), d, "full")
        second = second.reshape(n_sets, k, d, d)
        cross = s1[..., :, None] * delta[:, None, :]  # S1 delta'
        M = second - cross - np.swapaxes(cross, -1, -2)
        M += s0[..., None, None] * (delta[:, :, None] * delta[:, None, :])
        MP = M @ P  # (S, K, D, D)
        rows, cols = np.triu_indices(d)
        eye = np.eye(d)
        if fisher:
            H = s0[..., None, None] * eye - np.swapaxes(P, -1, -2) @ MP  # S0 I - P'MP
            norm = np.sqrt(np.where(rows == cols, 2.0, 1.0))
            if cov == "tied" and model:
                return H.sum(axis=1)[:, rows, cols] / (n * norm)
            return (H[..., rows, cols] / (scale[..., None] * norm)).reshape(n_sets, -1)
        inv_diag = s0[..., None] * (1.0 / np.diagonal(P, axis1=-2, axis2=-1))  # (S, K, D)
        G = -MP
        G[..., np.arange(d), np.arange(d)] += inv_diag
        if cov == "tied" and model:
            return G.sum(axis=1)[:, rows, cols]
        return G[..., rows, cols].reshape(n_sets, -1)
    # diag / spherical: m = sum v gamma (x - mu)^2 per feature
    m = s2 - 2.0 * delta * s1 + s0[..., None] * delta**2
    if cov == "spherical" and model:
        p = mixture.precisions_cholesky  # (K,)
        total = m.sum(axis=-1)
        if fisher:
            return (d * s0 - p**2 * total) / (np.sqrt(2.0 * d) * scale)
        return d * s0 / p - p * total
    if fisher:
        return ((s0[..., None] - P**2 * m) / (np.sqrt(2.0) * scale[..., None])).reshape(n_sets, -1)
    return (s0[..., None] / P - P * m).reshape(n_sets, -1)


def _improve(fv: np.ndarray, alpha: float) -> np.ndarray:
    fv = np.sign(fv) * np.abs(fv) ** alpha
    norm = np.linalg.norm(fv, axis=1, keepdims=True)
    return np.divide(fv, norm, out=np.zeros_like(fv), where=norm > 0)


def encode_prepared(
    prep: PreparedSets, mixture: FittedMixture, options: EncodingOptions, center=None
) -> np.ndarray:
    """Fisher vectors (n_sets, n_dims) of checked sets; ``center`` (D,) the origin of the
    statistics (default the mixture's mean)."""
    center = mixture.center() if center is None else np.asarray(center, dtype=np.float64)
    cov, k, d = mixture.covariance_type, mixture.n_components, mixture.n_features
    stats = "full" if cov in ("full", "tied") else "diag"
    width = n_quadratic_features(d, stats) + d + 1
    if prep.sample_weight is None:
        totals = np.diff(prep.starts).astype(np.float64)
    else:
        totals = np.add.reduceat(prep.sample_weight, prep.starts[:-1])
    row_bytes = 8 * (2 * width + 2 * k + d)  # design matrices, responsibilities
    set_bytes = 8 * k * (width + (6 * d * d if stats == "full" else 4 * d))  # moments, blocks
    out = None
    for a, b in _chunks(prep.starts, row_bytes, set_bytes):
        s0, s1, s2 = _set_statistics(prep, a, b, mixture, center, stats)
        blocks = _encode_blocks(s0, s1, s2, totals[a:b], mixture, center, options)
        fv = np.concatenate([blocks[name] for name in options.blocks], axis=1)
        if out is None:
            out = np.empty((prep.n_sets, fv.shape[1]))
        out[a:b] = _improve(fv, options.alpha) if options.improved else fv
    return out


# ---------------------------------------------------------------------------------- API
def fisher_vectors(
    sets,
    gmm,
    *,
    set_ids=None,
    sample_weight=None,
    blocks=BLOCKS,
    improved: bool = False,
    alpha: float = 0.5,
    normalization: str = "fisher",
    covariance_parameters: str = "component",
) -> np.ndarray:
    """Fisher vectors of many descriptor sets at once (see the module docstring).

    Parameters
    ----------
    sets : list of array-like (n_i, n_features), or ndarray (n_sets, n, n_features), or
        ndarray (n_descriptors, n_features) with ``set_ids``
        The descriptor sets; sizes may differ.
    gmm : fitted bayesgmm.GaussianMixture or sklearn.mixture.GaussianMixture
        Any covariance type.
    set_ids : array-like (n_descriptors,), optional
        With a 2-D ``sets``: the set of each row. Rows of the result follow
        ``np.unique(set_ids)``.
    sample_weight : optional
        Non-negative weights per descriptor (a list of (n_i,) arrays for a list of sets,
        (n_sets, n) for a 3-D array, (n_descriptors,) with ``set_ids``); each set's total
        must be positive. Integer weights equal repeated descriptors.
    blocks : sequence of {'weights', 'means', 'covariances'}, default all three
        Which gradients to include; they are concatenated in that order.
    improved : bool, default=False
        Signed power ``sign(z)|z|^alpha``, then L2 normalisation of each vector.
    alpha : float in [0, 1], default=0.5
    normalization : {'fisher', 'none'}, default='fisher'
        'fisher': whitened by the Fisher information, averaged over the set (equal to
        :func:`skimage.feature.fisher_vector` for a diagonal mixture); 'none': the raw
        gradient of ``sum_i v_i log p(x_i)`` w.r.t. softmax weights, means and the
        precision Cholesky factor.
    covariance_parameters : {'component', 'model'}, default='component'
        For tied and spherical mixtures: one covariance block per component, or the
        model's own shared/scalar parameters.

    Returns
    -------
    fvs : ndarray (n_sets, n_dims)
        ``n_dims`` = K (weights) + KD (means) + the covariance block: KD (diag, spherical),
        K D(D+1)/2 (full, tied), D(D+1)/2 (tied, model), K (spherical, model). Coordinate
        names: :func:`fisher_vector_names`.

    Raises
    ------
    NotFittedError if ``gmm`` is not fitted; ValueError for a set with another number
    of features, an empty set, NaN or inf, bad weights or options.

    Examples
    --------
    >>> import numpy as np
    >>> from bayesgmm import GaussianMixture, fisher_vectors
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(500, 3))
    >>> gm = GaussianMixture(4, covariance_type="diag", random_state=0).fit(X)
    >>> sets = [rng.normal(size=(n, 3)) for n in (10, 25, 7)]
    >>> fisher_vectors(sets, gm).shape   # 2 K D + K = 28
    (3, 28)
    """
    mixture = fitted_mixture(gmm)
    options = check_options(blocks, improved, alpha, normalization, covariance_parameters)
    prep = prepare_sets(sets, mixture.n_features, set_ids=set_ids, sample_weight=sample_weight)
    return encode_prepared(prep, mixture, options)


def fisher_vector(
    descriptors,
    gmm,
    *,
    sample_weight=None,
    blocks=BLOCKS,
    improved: bool = False,
    alpha: float = 0.5,
    normalization: str = "fisher",
    covariance_parameters: str = "component",
) -> np.ndarray:
    """The Fisher vector of one set of descriptors (n_descriptors, n_features): 1-D.

    Same arguments as :func:`fisher_vectors` (``sample_weight`` of shape
    (n_descriptors,)); the argument order is that of :func:`skimage.feature.fisher_vector`,
    which it equals for a diagonal mixture (``improved`` on or off).
    """
    weights = None if sample_weight is None else [sample_weight]
    return fisher_vectors(
        [descriptors],
        gmm,
        sample_weight=weights,
        blocks=blocks,
        improved=improved,
        alpha=alpha,
        normalization=normalization,
        covariance_parameters=covariance_parameters,
    )[0]
