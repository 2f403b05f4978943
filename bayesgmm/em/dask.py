"""EM over chunked data: :class:`~bayesgmm.em.estimator.GaussianMixture` on a Dask array.

Imported only when ``fit`` (or a prediction) is given a ``dask.array.Array`` or a dask
DataFrame of numeric columns (``pip install bayesgmm[dask]``); ``import bayesgmm`` never
imports dask.

Passes over the data (each reads every row chunk once, on whatever scheduler is active:
the threaded default or a ``dask.distributed.Client``):

1. **Scan**: row count, non-finite values (a ValueError naming ``X`` and the first bad
   rows), sample-weight checks, per-feature spread (scale and constant-feature checks),
   the weighted mean (the centre of every design matrix, as in memory) and covariance
   (the MAP prior's data-based defaults), combined across chunks exactly (Chan et al.).
2. **Initialisation sample** (only when the initial parameters are not all given by
   ``weights_init``, ``means_init`` and ``precisions_init``): up to
   :data:`INIT_SAMPLE_SIZE` rows drawn uniformly without replacement (seeded by
   ``random_state``) are brought into memory and initialised as in memory
   (``init_params``); with fewer rows than that, all rows are used in order, so that the
   initialisation is exactly the in-memory one.
3. **One pass per EM iteration**: on each row chunk the in-memory blocked sweep
   (:func:`~bayesgmm.em.sweep.sweep_partials`, centred on the global mean) gives the
   log-likelihood and the responsibility-weighted design sums, a flat vector per chunk;
   the vectors are tree-summed by Dask and the M-step (ML or MAP, any covariance type)
   runs on the client.

Predictions (``predict``, ``predict_proba``, ``score_samples``) are lazy ``map_blocks``
over the row chunks; ``score``, ``bic``, ``aic`` and ``icl`` compute their sums.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import reduce

import dask
import dask.array as da
import numpy as np

from bayesgmm._validation import (
    NonNumericInputError,
    check_feature_spread,
    check_matrix_shape,
    check_numeric_columns,
    check_sample_weight,
)
from bayesgmm.em.gaussian import n_quadratic_features
from bayesgmm.em.sweep import (
    Design,
    MixtureParams,
    finish_sweep,
    linearise,
    log_prob_resp,
    single_threaded_blas,
    sweep_partials,
)

__all__ = [
    "INIT_SAMPLE_SIZE",
    "SPLIT_EVERY",
    "ChunkedData",
    "as_dask_array",
    "chunked_sweep",
    "columns_view",
    "lazy_predictions",
]

#: Most rows brought into memory to initialise (k-means, k-means++, random ...).
INIT_SAMPLE_SIZE = 100_000
#: Fan-in of the tree reductions across chunks.
SPLIT_EVERY = 8
_N_REPORTED = 5


def as_dask_array(X, name: str = "X") -> da.Array:
    """``X`` (a dask array, or a dask DataFrame of numeric columns) as a float64 dask array
    of shape (n_samples, n_features) whose chunks hold whole rows, or a clear error."""
    columns, dtypes = getattr(X, "columns", None), getattr(X, "dtypes", None)
    if columns is not None and dtypes is not None and hasattr(X, "to_dask_array"):
        check_numeric_columns(dtypes, name)
        X = X.to_dask_array(lengths=True)  # one pass over the partitions for their lengths
    if not isinstance(X, da.Array):
        raise TypeError(
            f"{name} is a {type(X).__module__}.{type(X).__name__}: give a dask.array.Array "
            "or a dask DataFrame (or a NumPy array / pandas DataFrame)"
        )
    kind = X.dtype.kind
    if kind == "c":
        raise ValueError(f"Complex data not supported: {name} must be real-valued")
    if kind not in "biuf":
        raise NonNumericInputError(
            f"{name} must be numeric, got a dask array of dtype {X.dtype}; drop or encode "
            "non-numeric columns first"
        )
    if X.ndim == 2 and any(np.isnan(c) for c in X.chunks[0]):
        raise ValueError(
            f"{name} has unknown chunk sizes (NaN rows per chunk): call "
            f"{name}.compute_chunk_sizes() first (or to_dask_array(lengths=True))"
        )
    check_matrix_shape(X.shape, name)
    if len(X.chunks[1]) > 1:
        raise ValueError(
            f"{name}'s chunks split its columns (column chunks {X.chunks[1]}): EM reads whole "
            f"rows; rechunk to row blocks first, e.g. {name} = {name}.rechunk({{1: -1}})"
        )
    return X if X.dtype == np.float64 else X.astype(np.float64)


def columns_view(X):
    """What scikit-learn's ``validate_data`` reads feature names and counts from: the empty
    pandas frame of a dask DataFrame (its meta), the dask array itself otherwise."""
    if hasattr(X, "columns") and hasattr(X, "_meta"):
        return X._meta
    return X


def _combine_rows(rows: np.ndarray, combine) -> np.ndarray:
    return reduce(lambda a, b: combine(a[None], b[None])[0], rows)[None]


def _tree_reduce(parts: da.Array, combine) -> da.Array:
    """Dask tree reduction (fan-in :data:`SPLIT_EVERY`) of the rows of ``parts`` (one row
    per chunk, one row block each) by ``combine(a, b)`` on (1, P) rows; a (1, P) array."""
    width = parts.shape[1]
    while parts.numblocks[0] > 1:
        parts = parts.rechunk((SPLIT_EVERY, width))
        parts = parts.map_blocks(
            _combine_rows,
            combine,
            chunks=((1,) * parts.numblocks[0], (width,)),
            dtype=np.float64,
            meta=np.empty((0, 0)),
        )
    return parts


# ---------------------------------------------------------------------- first pass
@dataclass
class _Scan:
    """Statistics of the first pass over some rows (additive across chunks)."""

    n: int
    n_bad_rows: int
    bad_rows: np.ndarray  # first global indices of rows with NaN/inf
    has_nan: bool
    n_bad_weights: int
    n_positive: int
    weight: float
    mean: np.ndarray
    scatter: np.ndarray  # sum w (x - mean)(x - mean)'
    low: np.ndarray
    high: np.ndarray
    positive_low: np.ndarray  # over the rows of positive weight
    positive_high: np.ndarray


def _scan_width(n_features: int) -> int:
    return 6 + _N_REPORTED + n_features * (5 + n_features)


def _scan_to_row(scan: _Scan) -> np.ndarray:
    bad_rows = np.full(_N_REPORTED, -1.0)
    bad_rows[: len(scan.bad_rows)] = scan.bad_rows
    head = [scan.n, scan.n_bad_rows, scan.has_nan, scan.n_bad_weights, scan.n_positive]
    return np.concatenate(
        [
            head,
            [scan.weight],
            bad_rows,
            scan.mean,
            scan.scatter.ravel(),
            scan.low,
            scan.high,
            scan.positive_low,
            scan.positive_high,
        ]
    )[None]


def _scan_from_row(row: np.ndarray) -> _Scan:
    row = row.ravel()
    n_features = round((-5 + np.sqrt(25 + 4 * (len(row) - 6 - _N_REPORTED))) / 2)
    d = n_features
    head, weight, bad_rows = row[:5].astype(np.int64), row[5], row[6 : 6 + _N_REPORTED]
    rest = row[6 + _N_REPORTED :]
    return _Scan(
        int(head[0]),
        int(head[1]),
        bad_rows[bad_rows >= 0].astype(np.int64),
        bool(head[2]),
        int(head[3]),
        int(head[4]),
        float(weight),
        rest[:d],
        rest[d : d + d * d].reshape(d, d),
        *(rest[d + d * d + i * d : d + d * d + (i + 1) * d] for i in range(4)),
    )


def _scan_block(x: np.ndarray, w: np.ndarray | None = None, block_info=None) -> np.ndarray:
    offset = block_info[0]["array-location"][0][0] if block_info else 0
    return _scan_to_row(_scan_chunk(x, None if w is None else w[:, 0], offset))


def _scan_combine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return _scan_to_row(_scan_combine(_scan_from_row(a), _scan_from_row(b)))


def _scan_chunk(x: np.ndarray, w: np.ndarray | None, offset: int) -> _Scan:
    n_features = x.shape[1]
    finite_rows = np.isfinite(x).all(axis=1)
    bad = np.flatnonzero(~finite_rows)
    if w is None:
        w = np.ones(len(x))
        n_bad_weights = 0
    else:
        w = np.asarray(w, dtype=np.float64)
        n_bad_weights = int((~(np.isfinite(w) & (w >= 0))).sum())
    inf = np.full(n_features, np.inf)
    if bad.size or n_bad_weights or len(x) == 0:
        zeros = np.zeros(n_features)
        return _Scan(
            len(x),
            bad.size,
            offset + bad[:_N_REPORTED],
            bool(np.isnan(x).any()),
            n_bad_weights,
            0,
            0.0,
            zeros,
            np.zeros((n_features, n_features)),
            inf,
            -inf,
            inf,
            -inf,
        )
    total = float(w.sum())
    mean = w @ x / total if total > 0 else np.zeros(n_features)
    centred = x - mean
    scatter = (centred * w[:, None]).T @ centred
    positive = x[w > 0]
    return _Scan(
        len(x),
        0,
        bad,
        False,
        0,
        len(positive),
        total,
        mean,
        scatter,
        x.min(axis=0),
        x.max(axis=0),
        positive.min(axis=0) if len(positive) else inf,
        positive.max(axis=0) if len(positive) else -inf,
    )


def _scan_combine(a: _Scan, b: _Scan) -> _Scan:
    weight = a.weight + b.weight
    delta = b.mean - a.mean
    share = b.weight / weight if weight > 0 else 0.0
    return _Scan(
        a.n + b.n,
        a.n_bad_rows + b.n_bad_rows,
        np.concatenate([a.bad_rows, b.bad_rows])[:_N_REPORTED],
        a.has_nan or b.has_nan,
        a.n_bad_weights + b.n_bad_weights,
        a.n_positive + b.n_positive,
        weight,
        a.mean + delta * share,
        a.scatter + b.scatter + np.outer(delta, delta) * (a.weight * share),
        np.minimum(a.low, b.low),
        np.maximum(a.high, b.high),
        np.minimum(a.positive_low, b.positive_low),
        np.maximum(a.positive_high, b.positive_high),
    )


def _as_weights(sample_weight, X: da.Array) -> da.Array | None:
    """Sample weights as a 1-D dask array with X's row chunks (checked in the scan)."""
    if sample_weight is None:
        return None
    n_samples = X.shape[0]
    if isinstance(sample_weight, da.Array):
        w = sample_weight
        if w.ndim == 0:
            w = da.full(n_samples, w, chunks=(X.chunks[0],))
        if w.shape != (n_samples,):
            raise ValueError(
                f"sample_weight must have shape ({n_samples},) to match X, got {w.shape}"
            )
        if w.dtype.kind not in "biuf":
            raise ValueError("sample_weight must be numeric")
        return w.astype(np.float64).rechunk((X.chunks[0],))
    return da.from_array(check_sample_weight(sample_weight, n_samples), chunks=(X.chunks[0],))


class ChunkedData:
    """A dask array of rows, scanned once (checks, centre, covariance), for chunked EM.

    Parameters
    ----------
    X : dask.array.Array, from :func:`as_dask_array`
    sample_weight : dask array, array-like, scalar or None
        Aligned with X's rows (rechunked to X's row chunks).
    covariance_type : str
    min_samples : int
        Fewer rows raise a ValueError.
    name : str
        Used in error messages.
    """

    def __init__(
        self,
        X: da.Array,
        sample_weight,
        covariance_type: str,
        *,
        min_samples: int = 1,
        name: str = "X",
    ):
        self.X = X
        self.weights = _as_weights(sample_weight, X)
        self.covariance_type = covariance_type
        self.n_samples, self.n_features = X.shape
        self.n_quadratic = n_quadratic_features(self.n_features, covariance_type)
        self.name = name
        if self.n_samples < min_samples:
            raise ValueError(
                f"{name} has {self.n_samples} sample{'s' if self.n_samples != 1 else ''} "
                f"(n_samples = {self.n_samples}); at least {min_samples} are needed"
            )
        scan = self._scan()
        if scan.n_bad_rows:
            kind = "NaN" if scan.has_nan else "inf"
            raise ValueError(
                f"{name} contains {kind} (non-finite values: NaN or inf) in "
                f"{scan.n_bad_rows} row(s), first at {scan.bad_rows.tolist()}: drop or "
                "impute them first (found in the first pass over the chunks; missing values "
                "are marginalised (nan_policy='marginalize') for in-memory X only)"
            )
        if scan.n_bad_weights:
            raise ValueError("sample_weight must be finite and non-negative")
        if not scan.weight > 0:
            raise ValueError(
                "sample_weight sums to zero: at least one sample needs positive weight"
            )
        self.scan = scan
        self.total_weight = scan.weight
        self.center = scan.mean
        self.covariance = scan.scatter / scan.weight

    def _scan(self) -> _Scan:
        args = [self.X] if self.weights is None else [self.X, self.weights[:, None]]
        width = _scan_width(self.n_features)
        parts = da.map_blocks(
            _scan_block,
            *args,
            chunks=((1,) * self.X.numblocks[0], (width,)),
            dtype=np.float64,
            meta=np.empty((0, 0)),
        )
        (row,) = dask.compute(_tree_reduce(parts, _scan_combine_rows))
        return _scan_from_row(row)

    def check_spread(self, names=None) -> None:
        """Scale and constant-feature checks (as in memory) from the scan."""
        scan = self.scan
        with np.errstate(over="ignore", invalid="ignore"):
            spread = scan.high - scan.low
            positive = scan.positive_high - scan.positive_low
        check_feature_spread(
            spread,
            name=self.name,
            names=names,
            positive_spread=positive,
            n_positive=scan.n_positive,
        )

    def sample(self, random_state: np.random.RandomState):
        """Rows for the initialisation: ``(X_sample, weight_sample or None)`` in memory.

        All rows (in order, no random draw) when there are at most
        :data:`INIT_SAMPLE_SIZE`; otherwise that many drawn uniformly without replacement
        (one pass): a seed drawn from ``random_state`` splits the sample over the chunks
        (multivariate hypergeometric in the chunk sizes) and picks each chunk's rows.
        """
        args = [self.X] if self.weights is None else [self.X, self.weights[:, None]]
        width = self.n_features + (self.weights is not None)
        if self.n_samples <= INIT_SAMPLE_SIZE:
            counts, seed = np.asarray(self.X.chunks[0]), None
        else:
            seed = int(random_state.randint(np.iinfo(np.int32).max))
            generator = np.random.default_rng(seed)
            counts = generator.multivariate_hypergeometric(
                np.asarray(self.X.chunks[0]), INIT_SAMPLE_SIZE
            )
        sample = da.map_blocks(
            _sample_block,
            *args,
            chunks=(tuple(int(c) for c in counts), (width,)),
            dtype=np.float64,
            meta=np.empty((0, 0)),
            counts=counts,
            seed=seed,
        )
        (rows,) = dask.compute(sample)
        if self.weights is None:
            return rows, None
        return rows[:, :-1], rows[:, -1]


def _sample_block(x, w=None, *, counts, seed, block_info=None):
    """``counts[i]`` rows of chunk ``i`` (all of them, in order, when ``seed`` is None),
    with their weight as a last column when ``w`` is given."""
    i = block_info[0]["chunk-location"][0]
    if seed is None:
        rows = slice(None)
    else:
        generator = np.random.default_rng([seed, i])
        rows = np.sort(generator.choice(len(x), int(counts[i]), replace=False))
    return x[rows] if w is None else np.hstack([x[rows], w[rows]])


# -------------------------------------------------------------------- EM passes
def _sweep_chunk(x, w=None, *, center, covariance_type, lin, moments, width):
    """One chunk's sweep partials as a (1, width) row: ``[log-lik, resp_sum, raw]``."""
    out = np.zeros((1, width))
    if len(x) == 0:
        return out
    design = Design(x, covariance_type, None if w is None else w[:, 0], center=center, serial=True)
    log_likelihood, raw, resp_sum = sweep_partials(design, lin, moments=moments)
    out[0, 0] = log_likelihood
    if moments:
        n_components = len(resp_sum)
        out[0, 1 : 1 + n_components] = resp_sum
        out[0, 1 + n_components :] = raw.ravel()
    return out


def chunked_sweep(data: ChunkedData, params: MixtureParams, *, moments: bool = True):
    """:func:`~bayesgmm.em.sweep.em_sweep` over the chunks of ``data``: one pass, one
    ``map_blocks`` task per row chunk and a tree sum; ``(log_likelihood, Moments)``."""
    lin = linearise(data, params)
    n_components = params.means.shape[0]
    n_columns = data.n_quadratic + data.n_features
    width = 1 + (n_components + n_components * n_columns if moments else 0)
    args = [data.X] if data.weights is None else [data.X, data.weights[:, None]]
    parts = da.map_blocks(
        _sweep_chunk,
        *args,
        chunks=((1,) * data.X.numblocks[0], (width,)),
        dtype=np.float64,
        meta=np.empty((0, 0)),
        center=data.center,
        covariance_type=data.covariance_type,
        lin=lin,
        moments=moments,
        width=width,
    )
    with single_threaded_blas():  # threads of the local scheduler share the cores
        (total,) = dask.compute(parts.sum(axis=0, split_every=SPLIT_EVERY))
    log_likelihood = float(total[0])
    if not moments:
        return finish_sweep(data, lin, log_likelihood, None, None, moments=False)
    resp_sum = total[1 : 1 + n_components]
    raw = total[1 + n_components :].reshape(n_components, n_columns)
    return finish_sweep(data, lin, log_likelihood, raw, resp_sum)


# ------------------------------------------------------------------ predictions
def _predict_chunk(x, *, covariance_type, params, what, label, block_info=None):
    if len(x) == 0:
        shape = (0, params.means.shape[0]) if what == "proba" else (0,)
        return np.empty(shape, dtype=np.intp if what == "label" else np.float64)
    finite = np.isfinite(x).all(axis=1)
    if not finite.all():
        offset = block_info[0]["array-location"][0][0] if block_info else 0
        rows = offset + np.flatnonzero(~finite)
        raise ValueError(
            f"{label} contains NaN or inf (non-finite values) in row(s) {rows[:5].tolist()} "
            "(of this chunk): drop or impute them first (missing values are marginalised "
            "for in-memory X only)"
        )
    log_norm, resp = log_prob_resp(Design(x, covariance_type, serial=True), params)
    if what == "score":
        return log_norm
    if what == "proba":
        return resp
    return resp.argmax(axis=1)


def lazy_predictions(
    X: da.Array, covariance_type: str, params: MixtureParams, what: str, name: str = "X"
) -> da.Array:
    """Lazy per-row results over X's row chunks: ``what`` = 'score' (log p(x), (n,)),
    'proba' (responsibilities, (n, K)) or 'label' (most probable component, (n,))."""
    kwargs = dict(covariance_type=covariance_type, params=params, what=what, label=name)
    if what == "proba":
        n_components = params.means.shape[0]
        return X.map_blocks(
            _predict_chunk,
            chunks=(X.chunks[0], (n_components,)),
            dtype=np.float64,
            meta=np.empty((0, 0)),
            **kwargs,
        )
    dtype = np.intp if what == "label" else np.float64
    return X.map_blocks(
        _predict_chunk,
        drop_axis=1,
        chunks=(X.chunks[0],),
        dtype=dtype,
        meta=np.empty((0,), dtype=dtype),
        **kwargs,
    )
