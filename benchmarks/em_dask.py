"""EM on Dask arrays (bayesgmm.em.dask): out-of-core memory and time, and the chunking cost.

(a) Out of core: writes an (n x 2) float64 ``.npy`` in a temporary directory (1e8 rows:
    1.6 GB), opens it as a dask array whose chunks are read from a memory map (each task
    maps the file, copies its rows and unmaps it), fits K=5 full covariances for 20
    iterations (tol=0, from given initial parameters: the scan plus 20 passes) and
    reports the wall time and the peak resident memory of this process
    (``ru_maxrss``, and VmHWM) and, with ``--distributed``, of each worker process of a
    ``LocalCluster`` (VmHWM: a spawned worker inherits its parent's ``ru_maxrss``).
    The file is deleted afterwards. Target: peak < 2 GB.
(b) Chunking cost: one EM iteration (sweep + M-step) on an in-memory (n x 2) dask array
    vs the in-memory engine on the same NumPy array (median of ``--repeats``), K=5 full.
    Target: ratio <= 1.5.

    python benchmarks/em_dask.py --quick          # 1e6 rows, seconds
    python benchmarks/em_dask.py                  # 1e8 rows out of core, 1e7 in memory
    python benchmarks/em_dask.py --distributed    # (a) on a LocalCluster of processes too
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import tempfile
import time
import warnings

import dask
import dask.array as da
import numpy as np
from sklearn.exceptions import ConvergenceWarning

from bayesgmm import GaussianMixture
from bayesgmm.em import dask as dask_em
from bayesgmm.em.driver import m_step
from bayesgmm.em.sweep import Design, MixtureParams, em_sweep

K = 5
N_FEATURES = 2
MEANS = np.array([[0.0, 0.0], [5.0, 5.0], [-5.0, 4.0], [4.0, -6.0], [10.0, 0.0]])


def peak_rss_mb() -> float:
    """Peak resident memory of this process in MB: ``ru_maxrss``."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kB


def high_water_mb() -> float:
    """Peak resident memory (VmHWM) of this process's address space in MB. Unlike
    ``ru_maxrss``, which a worker process inherits from the process that spawned it, this
    counts only the worker's own memory (Linux; ``ru_maxrss`` elsewhere)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return peak_rss_mb()


def write_npy(path: str, n_samples: int, seed: int = 0, block: int = 5_000_000) -> None:
    """Mixture data written block by block with plain writes (never all in memory, and no
    memory map: its dirty pages would count in this process's resident memory)."""
    rng = np.random.default_rng(seed)
    header = {"descr": "<f8", "fortran_order": False, "shape": (n_samples, N_FEATURES)}
    with open(path, "wb") as out:
        np.lib.format.write_array_header_2_0(out, header)
        for start in range(0, n_samples, block):
            stop = min(start + block, n_samples)
            labels = rng.integers(0, K, stop - start)
            (MEANS[labels] + rng.normal(size=(stop - start, N_FEATURES))).tofile(out)


def _load_rows(path: str, block_info=None) -> np.ndarray:
    (start, stop), _ = block_info[None]["array-location"]
    mapped = np.load(path, mmap_mode="r")
    rows = np.array(mapped[start:stop])  # a copy: the map is released with ``mapped``
    del mapped
    return rows


def npy_as_dask(path: str, rows_per_chunk: int) -> da.Array:
    n_samples = np.load(path, mmap_mode="r").shape[0]
    sizes = [min(rows_per_chunk, n_samples - s) for s in range(0, n_samples, rows_per_chunk)]
    return da.map_blocks(
        _load_rows,
        path,
        chunks=(tuple(sizes), (N_FEATURES,)),
        dtype=np.float64,
        meta=np.empty((0, 0)),
    )


def initial_parameters() -> dict:
    return {
        "weights_init": np.full(K, 1.0 / K),
        "means_init": MEANS + 0.5,
        "precisions_init": np.stack([np.eye(N_FEATURES) * 0.8] * K),
    }


def out_of_core(n_samples: int, rows_per_chunk: int, n_iter: int, distributed: bool):
    tmp = tempfile.mkdtemp(prefix="bayesgmm-em-dask-")
    path = os.path.join(tmp, "X.npy")
    try:
        free = shutil.disk_usage(tmp).free
        need = 8 * N_FEATURES * n_samples
        if free < 2 * need:
            raise SystemExit(
                f"not enough disk in {tmp}: {free / 2**30:.1f} GiB free, "
                f"{need / 2**30:.1f} GiB needed"
            )
        t0 = time.perf_counter()
        write_npy(path, n_samples)
        print(
            f"(a) wrote {n_samples:.0e} x {N_FEATURES} float64 ({need / 2**30:.2f} GiB) in "
            f"{time.perf_counter() - t0:.1f} s; chunks of {rows_per_chunk:.0e} rows; "
            f"peak RSS after writing {peak_rss_mb():.0f} MB"
        )
        X = npy_as_dask(path, rows_per_chunk)
        runs = [("threaded scheduler", None)]
        if distributed:
            runs.append(("LocalCluster(2 processes x 1 thread)", "processes"))
        for label, kind in runs:
            client = cluster = None
            if kind:
                from distributed import Client, LocalCluster

                cluster = LocalCluster(
                    n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
                )
                client = Client(cluster)
            try:
                gm = GaussianMixture(K, tol=0.0, max_iter=n_iter, **initial_parameters())
                t0 = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", ConvergenceWarning)
                    gm.fit(X)
                wall = time.perf_counter() - t0
                line = (
                    f"    {label}: {n_iter} iterations + scan in {wall:.1f} s "
                    f"({wall / (n_iter + 1):.2f} s per pass), lower bound "
                    f"{gm.lower_bound_:.6f}, peak RSS of this process {peak_rss_mb():.0f} MB "
                    f"(VmHWM {high_water_mb():.0f} MB)"
                )
                if client is not None:
                    workers = client.run(high_water_mb)
                    line += ", workers' peak RSS " + ", ".join(
                        f"{v:.0f} MB" for v in workers.values()
                    )
                print(line)
            finally:
                if client is not None:
                    client.close()
                    cluster.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def chunking_cost(n_samples: int, rows_per_chunk: int, repeats: int):
    rng = np.random.default_rng(1)
    X = MEANS[rng.integers(0, K, n_samples)] + rng.normal(size=(n_samples, N_FEATURES))
    gm = GaussianMixture(K, max_iter=0, **initial_parameters())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gm.fit(X[:1000])
    params = MixtureParams(gm.weights_, gm.means_, gm.covariances_, gm.precisions_cholesky_)
    design = Design(X, "full")  # built (and cached) once per fit, as in GaussianMixture.fit
    dX = da.from_array(X, chunks=(rows_per_chunk, N_FEATURES))
    data = dask_em.ChunkedData(dX, None, "full")  # the scan: once per fit

    def in_memory():
        _, moments = em_sweep(design, params)
        m_step(moments, "full", 1e-6, None)

    def chunked():
        _, moments = dask_em.chunked_sweep(data, params)
        m_step(moments, "full", 1e-6, None)

    times = {}
    for name, step in (("in-memory engine", in_memory), ("dask array", chunked)):
        step()  # warm up (numba, thread pools)
        samples = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            step()
            samples.append(time.perf_counter() - t0)
        times[name] = float(np.median(samples))
    ratio = times["dask array"] / times["in-memory engine"]
    print(
        f"(b) one EM iteration, {n_samples:.0e} x {N_FEATURES}, K={K} full, dask chunks of "
        f"{rows_per_chunk:.0e} rows ({dX.numblocks[0]} chunks), median of {repeats}: "
        f"in-memory {times['in-memory engine'] * 1e3:.0f} ms, dask "
        f"{times['dask array'] * 1e3:.0f} ms, ratio {ratio:.2f} (target <= 1.5)"
    )
    _, expected = em_sweep(design, params)
    _, got = dask_em.chunked_sweep(data, params)
    print(
        f"    max |difference| of the means after the sweep: "
        f"{np.abs(got.means - expected.means).max():.1e}"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1e6 rows for both parts")
    parser.add_argument(
        "--distributed",
        action="store_true",
        help="also run (a) on a LocalCluster of 2 worker processes",
    )
    parser.add_argument("--rows", type=float, default=None, help="rows of (a)")
    parser.add_argument("--chunk-rows", type=float, default=2e6)
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip-a", action="store_true")
    parser.add_argument("--skip-b", action="store_true")
    args = parser.parse_args()
    n_a = int(args.rows or (1e6 if args.quick else 1e8))
    n_b = int(1e6 if args.quick else 1e7)
    chunk = int(args.chunk_rows if not args.quick else min(args.chunk_rows, 2.5e5))
    print(
        f"dask {dask.__version__}, numpy {np.__version__}, {platform.processor() or 'cpu'}, "
        f"{len(os.sched_getaffinity(0))} cores, load average {os.getloadavg()[0]:.2f}"
    )
    if not args.skip_a:
        out_of_core(n_a, chunk, args.iterations, args.distributed)
    if not args.skip_b:
        chunking_cost(n_b, min(chunk, 1_000_000), args.repeats)


if __name__ == "__main__":
    main()
