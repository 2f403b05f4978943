"""GaussianMixture on Dask arrays (bayesgmm.em.dask): equal to the in-memory engine.

From identical initial parameters the chunked EM gives the in-memory log-likelihood trace
and parameters to 1e-10 (relative), for every covariance type, with and without sample
weights and MAP priors, on several chunkings and under a distributed Client; each EM
iteration reads each chunk once; predictions are lazy; bad input is refused clearly.
"""

from __future__ import annotations

import threading
import warnings

import dask.array as da
import dask.dataframe as dd
import distributed
import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import ConvergenceWarning

from bayesgmm import GaussianMixture
from bayesgmm.em import dask as dask_em
from bayesgmm.em.gaussian import COVARIANCE_TYPES

RTOL = 1e-10
N_SAMPLES, N_FEATURES, K = 900, 3, 3
CHUNKINGS = {
    "one chunk": N_SAMPLES,
    "uneven last": 400,  # 400, 400, 100
    "irregular": ((100, 250, 333, 217),),
}


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(7)
    centres = np.array([[0.0, 0.0, 0.0], [4.0, 1.0, -2.0], [-3.0, 5.0, 1.0]])
    labels = rng.integers(0, K, N_SAMPLES)
    X = centres[labels] + rng.normal(size=(N_SAMPLES, N_FEATURES)) * [1.0, 0.5, 2.0]
    X += 100.0  # off-centre data: the centring must match the in-memory one
    weight = rng.uniform(0.2, 3.0, N_SAMPLES)
    return X, weight


def _init(X: np.ndarray, covariance_type: str) -> dict:
    """Identical initial parameters for both engines (deliberately rough)."""
    means = X[[0, 1, 2]] + 0.5
    if covariance_type == "full":
        precisions = np.stack([np.eye(N_FEATURES) * s for s in (0.5, 1.0, 2.0)])
        precisions[:, 0, 1] = precisions[:, 1, 0] = 0.1
    elif covariance_type == "tied":
        precisions = np.eye(N_FEATURES) * 0.7
    elif covariance_type == "diag":
        precisions = np.array([[0.5, 1.0, 0.3], [1.0, 1.0, 1.0], [2.0, 0.4, 0.8]])
    else:
        precisions = np.array([0.5, 1.0, 2.0])
    return dict(weights_init=[0.2, 0.3, 0.5], means_init=means, precisions_init=precisions)


def _fit_pair(X, weight, covariance_type, prior, chunks, max_iter=8):
    kwargs = dict(
        n_components=K,
        covariance_type=covariance_type,
        prior=prior,
        tol=0.0,
        max_iter=max_iter,
        **_init(X, covariance_type),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        memory = GaussianMixture(**kwargs).fit(X, sample_weight=weight)
        dX = da.from_array(
            X, chunks=(chunks, N_FEATURES) if isinstance(chunks, int) else (*chunks, (N_FEATURES,))
        )
        dw = None if weight is None else da.from_array(weight, chunks=(dX.chunks[0],))
        chunked = GaussianMixture(**kwargs).fit(dX, sample_weight=dw)
    return memory, chunked, dX


def _assert_same_fit(memory, chunked):
    assert chunked.n_iter_ == memory.n_iter_
    assert chunked.converged_ == memory.converged_
    np.testing.assert_allclose(chunked.lower_bounds_, memory.lower_bounds_, rtol=RTOL, atol=0)
    np.testing.assert_allclose(chunked.lower_bound_, memory.lower_bound_, rtol=RTOL, atol=0)
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_", "precisions_"):
        expected = getattr(memory, name)
        np.testing.assert_allclose(
            getattr(chunked, name),
            expected,
            rtol=RTOL,
            atol=RTOL * np.abs(expected).max(),
            err_msg=name,
        )
    assert chunked.prior_ == memory.prior_ or np.allclose(
        np.asarray(chunked.prior_["scale"]), np.asarray(memory.prior_["scale"]), rtol=RTOL
    )


@pytest.mark.parametrize("chunking", list(CHUNKINGS))
@pytest.mark.parametrize("prior", [None, "default"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_chunked_em_equals_in_memory(data, covariance_type, weighted, prior, chunking):
    X, weight = data
    memory, chunked, _ = _fit_pair(
        X, weight if weighted else None, covariance_type, prior, CHUNKINGS[chunking]
    )
    _assert_same_fit(memory, chunked)


def test_initialisation_from_random_state_equals_in_memory(data):
    """Fewer rows than INIT_SAMPLE_SIZE: all rows initialise, as in memory (k-means, n_init)."""
    X, weight = data
    kwargs = dict(n_components=K, n_init=2, random_state=3, tol=1e-6, max_iter=200)
    memory = GaussianMixture(**kwargs).fit(X, sample_weight=weight)
    dX = da.from_array(X, chunks=400)
    chunked = GaussianMixture(**kwargs).fit(dX, sample_weight=weight)  # numpy weights too
    assert chunked.converged_
    _assert_same_fit(memory, chunked)


def test_initialisation_sample_is_seeded_and_bounded(data, monkeypatch):
    X, _ = data
    monkeypatch.setattr(dask_em, "INIT_SAMPLE_SIZE", 250)
    seen = []
    original = dask_em.ChunkedData.sample

    def sample(self, random_state):
        rows, weights = original(self, random_state)
        seen.append(rows)
        return rows, weights

    monkeypatch.setattr(dask_em.ChunkedData, "sample", sample)
    dX = da.from_array(X, chunks=400)
    fits = [
        GaussianMixture(K, init_params=init, random_state=0).fit(dX)
        for init in ("kmeans", "kmeans", "k-means++")
    ]
    assert [len(rows) for rows in seen] == [250, 250, 250]
    np.testing.assert_array_equal(seen[0], seen[1])  # same seed, same sample
    assert all(set(map(tuple, rows)) <= set(map(tuple, X)) for rows in seen)
    np.testing.assert_array_equal(fits[0].means_, fits[1].means_)
    assert all(fit.converged_ for fit in fits)


def test_dask_dataframe_input(data):
    X, _ = data
    frame = pd.DataFrame(X, columns=["a", "b", "c"])
    kwargs = dict(n_components=K, covariance_type="diag", tol=0.0, max_iter=5, **_init(X, "diag"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        memory = GaussianMixture(**kwargs).fit(frame)
        chunked = GaussianMixture(**kwargs).fit(dd.from_pandas(frame, npartitions=3))
    _assert_same_fit(memory, chunked)
    assert list(chunked.feature_names_in_) == ["a", "b", "c"]
    labels = chunked.predict(dd.from_pandas(frame, npartitions=3))
    np.testing.assert_array_equal(labels.compute(), memory.predict(frame))
    frame["d"] = "text"
    with pytest.raises(ValueError, match=r"non-numeric columns \['d'\]"):
        GaussianMixture(2).fit(dd.from_pandas(frame, npartitions=2))


def test_predictions_are_lazy_and_equal(data):
    X, weight = data
    memory, chunked, dX = _fit_pair(X, weight, "full", "default", 400)
    for method in ("predict", "predict_proba", "score_samples"):
        lazy = getattr(chunked, method)(dX)
        assert isinstance(lazy, da.Array), method
        assert lazy.chunks[0] == dX.chunks[0]
        expected = getattr(memory, method)(X)
        if method == "predict":
            np.testing.assert_array_equal(lazy.compute(), expected)
        else:
            np.testing.assert_allclose(lazy.compute(), expected, rtol=RTOL, atol=1e-14)
    with pytest.warns(ConvergenceWarning) as record:
        labels = GaussianMixture(**chunked.get_params()).fit_predict(dX, sample_weight=weight)
    assert record[0].filename == __file__  # the warning points at the caller
    assert isinstance(labels, da.Array)
    np.testing.assert_array_equal(labels.compute(), memory.predict(X))
    for method in ("score", "bic", "aic", "icl"):
        value = getattr(chunked, method)(dX)
        assert isinstance(value, float)
        np.testing.assert_allclose(value, getattr(memory, method)(X), rtol=RTOL)
    dw = da.from_array(weight, chunks=300)
    np.testing.assert_allclose(
        chunked.score(dX, sample_weight=dw), memory.score(X, sample_weight=weight), rtol=RTOL
    )


# --------------------------------------------------------------- passes over the data
def _counting_array(X: np.ndarray, rows_per_chunk: int):
    """A dask array whose chunks are produced by a loader that counts its calls."""
    counts = {}
    lock = threading.Lock()

    def load(block_info=None):
        (start, stop), _ = block_info[None]["array-location"]
        with lock:
            counts[start] = counts.get(start, 0) + 1
        return X[start:stop].copy()

    sizes = [min(rows_per_chunk, len(X) - s) for s in range(0, len(X), rows_per_chunk)]
    array = da.map_blocks(
        load, chunks=(tuple(sizes), (X.shape[1],)), dtype=np.float64, meta=np.empty((0, 0))
    )
    return array, counts


def test_each_iteration_reads_each_chunk_once(data, monkeypatch):
    X, _ = data
    dX, loads = _counting_array(X, 250)  # 4 chunks (250, 250, 250, 150)
    sweeps = []
    original = dask_em._sweep_chunk

    def counting_sweep(x, *args, **kwargs):
        sweeps.append(len(x))
        return original(x, *args, **kwargs)

    monkeypatch.setattr(dask_em, "_sweep_chunk", counting_sweep)
    n_iter = 6
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gm = GaussianMixture(K, tol=0.0, max_iter=n_iter, **_init(X, "full")).fit(dX)
    assert gm.n_iter_ == n_iter
    # the scan (first pass) + one pass per iteration, every chunk read exactly once in each
    assert loads == {0: n_iter + 1, 250: n_iter + 1, 500: n_iter + 1, 750: n_iter + 1}
    assert sorted(sweeps) == sorted([250, 250, 250, 150] * n_iter)


# --------------------------------------------------------------------- bad input
def test_nan_in_a_chunk_is_found_in_the_first_pass(data, monkeypatch):
    X, _ = data
    X = X.copy()
    X[[612, 640], 1] = np.nan
    swept = []
    monkeypatch.setattr(dask_em, "_sweep_chunk", lambda *a, **k: swept.append(1))
    with pytest.raises(ValueError, match=r"X contains NaN .* 2 row\(s\), first at \[612, 640\]"):
        GaussianMixture(2).fit(da.from_array(X, chunks=300))
    assert swept == []  # refused before any EM pass
    X[612, 1] = np.inf
    X[640, 1] = 0.0
    with pytest.raises(ValueError, match="X contains inf"):
        GaussianMixture(2).fit(da.from_array(X, chunks=300))


def test_bad_dtype_and_shape(data):
    X, _ = data
    with pytest.raises(TypeError, match="must be numeric"):
        GaussianMixture(2).fit(da.from_array(X.astype(str), chunks=300))
    with pytest.raises(ValueError, match="must be numeric"):  # also a ValueError, as in memory
        GaussianMixture(2).fit(da.from_array(X.astype(str), chunks=300))
    with pytest.raises(ValueError, match="Complex data not supported"):
        GaussianMixture(2).fit(da.from_array(X.astype(complex), chunks=300))
    with pytest.raises(ValueError, match="must be 2-D"):
        GaussianMixture(2).fit(da.from_array(X[:, 0], chunks=300))
    with pytest.raises(ValueError, match=r"split its columns .*rechunk\(\{1: -1\}\)"):
        GaussianMixture(2).fit(da.from_array(X, chunks=(300, 2)))
    unknown = da.from_array(X, chunks=300)
    unknown = unknown[unknown[:, 0] > -np.inf]
    with pytest.raises(ValueError, match="unknown chunk sizes"):
        GaussianMixture(2).fit(unknown)
    integers = da.from_array(np.rint(X * 10).astype(np.int64), chunks=300)
    assert GaussianMixture(2, random_state=0).fit(integers).converged_  # cast to float64


def test_bad_weights_and_features(data):
    X, weight = data
    dX = da.from_array(X, chunks=300)
    bad = weight.copy()
    bad[700] = -1.0
    with pytest.raises(ValueError, match="finite and non-negative"):
        GaussianMixture(2).fit(dX, sample_weight=da.from_array(bad, chunks=300))
    with pytest.raises(ValueError, match="sums to zero"):
        GaussianMixture(2).fit(dX, sample_weight=da.zeros(len(X), chunks=300))
    with pytest.raises(ValueError, match=r"shape \(900,\)"):
        GaussianMixture(2).fit(dX, sample_weight=da.ones(10, chunks=5))
    constant = X.copy()
    constant[:, 2] = 1.0
    with pytest.raises(ValueError, match=r"\['column 2'\] are constant"):
        GaussianMixture(2).fit(da.from_array(constant, chunks=300))
    with pytest.raises(ValueError, match="too large in scale"):
        GaussianMixture(2).fit(da.from_array(X * 1e152, chunks=300))
    with pytest.raises(ValueError, match="n_samples >= n_components"):
        GaussianMixture(5).fit(da.from_array(X[:4], chunks=(2, -1)))
    gm = GaussianMixture(2, random_state=0).fit(dX)
    with pytest.raises(ValueError, match="X has 2 features"):
        gm.predict(dX[:, :2])
    nan = X.copy()
    nan[5, 0] = np.nan
    lazy = gm.score_samples(da.from_array(nan, chunks=300))
    with pytest.raises(ValueError, match=r"X contains NaN .* row\(s\) \[5\]"):
        lazy.compute()


def test_import_bayesgmm_leaves_dask_alone_until_dask_input():
    import subprocess
    import sys

    code = (
        "import sys, numpy as np, bayesgmm; "
        "bayesgmm.GaussianMixture(2, random_state=0).fit(np.random.default_rng(0)"
        ".normal(size=(50, 2))); print('dask' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ------------------------------------------------------------------ distributed
@pytest.fixture(scope="module")
def client():
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client


@pytest.mark.parametrize(
    ("covariance_type", "weighted", "prior"),
    [
        ("full", True, "default"),
        ("tied", False, None),
        ("diag", True, None),
        ("spherical", False, "default"),
    ],
)
def test_distributed_client_equals_in_memory(client, data, covariance_type, weighted, prior):
    X, weight = data
    memory, chunked, dX = _fit_pair(
        X, weight if weighted else None, covariance_type, prior, CHUNKINGS["uneven last"]
    )
    _assert_same_fit(memory, chunked)
    np.testing.assert_allclose(
        chunked.predict_proba(dX).compute(), memory.predict_proba(X), rtol=RTOL, atol=1e-14
    )


def test_distributed_worker_processes_equal_in_memory(data):
    """Worker processes: the chunk tasks and their statistics travel pickled."""
    X, weight = data
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster),
    ):
        memory, chunked, dX = _fit_pair(X, weight, "full", "default", CHUNKINGS["irregular"])
        _assert_same_fit(memory, chunked)
        np.testing.assert_array_equal(chunked.predict(dX).compute(), memory.predict(X))
