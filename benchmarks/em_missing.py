"""EM with missing entries vs the complete-data EM iteration, side by side in one run.

Data: N rows from a K-component, D-dimensional mixture (``make_mixture``); each entry is
then removed (NaN) with probability ``--fraction`` (MCAR; rows left with nothing observed
are dropped from both runs, so both see the same rows). Both fits start from the same
parameters (one complete-data M-step from k-means++ centres) and run fixed numbers of
iterations (tol=0). Seconds per iteration: the time of 2m iterations minus that of m, over
m (m = ``--iterations``), so that set-up and the final E-step cancel. Printed: the best of
``--repeats`` (the runs alternating), the ratio missing/complete of the best times and the
median over back-to-back pairs (robust to a varying load), and the iterations each needs
to converge at tol=1e-3 from that start. Also the extreme-deconvolution iteration (complete
rows with (N, D) error variances) for reference.

    python benchmarks/em_missing.py             # N = 1e5, D = 5, K = 4, 30% missing
    python benchmarks/em_missing.py --quick     # N = 1e4
"""

from __future__ import annotations

import argparse
import os
import platform
import time
import warnings

import numpy as np
from sklearn.cluster import kmeans_plusplus
from sklearn.exceptions import ConvergenceWarning

from bayesgmm import GaussianMixture
from bayesgmm.datasets import make_mixture


def initial_parameters(X, n_components, seed):
    centres, _ = kmeans_plusplus(X, n_components, random_state=seed)
    start = GaussianMixture(n_components, means_init=centres, max_iter=1, tol=0).fit(X)
    return {
        "weights_init": start.weights_,
        "means_init": start.means_,
        "precisions_init": start.precisions_,
    }


def per_iteration(make, X, n_iter, **fit_kw):
    """Seconds per EM iteration: (time of 2 n_iter iterations - time of n_iter) / n_iter,
    so that the set-up and the final E-step of a fit cancel."""
    times = []
    for iterations in (n_iter, 2 * n_iter):
        t0 = time.perf_counter()
        make(max_iter=iterations, tol=0.0).fit(X, **fit_kw)
        times.append(time.perf_counter() - t0)
    return (times[1] - times[0]) / n_iter


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--d", type=int, default=5)
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--fraction", type=float, default=0.3)
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    n = 10_000 if args.quick else args.n
    warnings.simplefilter("ignore", ConvergenceWarning)
    print(
        f"# {platform.node()} ({os.cpu_count()} cores), Python {platform.python_version()}; "
        f"N={n}, D={args.d}, K={args.k}, {args.fraction:.0%} missing (MCAR)"
    )
    X = make_mixture(n, args.k, args.d, separation=2.0, seed=0).X
    rng = np.random.default_rng(1)
    X_missing = np.where(rng.random(X.shape) < args.fraction, np.nan, X)
    keep = ~np.isnan(X_missing).all(axis=1)
    X, X_missing = X[keep], X_missing[keep]
    patterns = len(np.unique(np.isnan(X_missing), axis=0))
    print(f"# {keep.size - keep.sum()} empty rows dropped; {patterns} missingness patterns")
    init = initial_parameters(X, args.k, seed=0)

    def make(**kw):
        return GaussianMixture(args.k, reg_covar=1e-6, **init, **kw)

    variances = rng.uniform(0.05, 0.5, size=X.shape)
    for fit_X, kw in ((X, {}), (X_missing, {}), (X, {"noise_cov": variances})):
        make(max_iter=2, tol=0.0).fit(fit_X, **kw)  # warm-up (numba kernels, caches)
    best = {"complete": np.inf, "missing": np.inf, "deconvolution": np.inf}
    paired = []  # missing / complete, measured back to back (robust to a varying load)
    for _ in range(args.repeats):
        complete = per_iteration(make, X, args.iterations)
        missing = per_iteration(make, X_missing, args.iterations)
        paired.append(missing / complete)
        best["complete"] = min(best["complete"], complete)
        best["missing"] = min(best["missing"], missing)
        best["deconvolution"] = min(
            best["deconvolution"],
            per_iteration(make, X, max(2, args.iterations // 4), noise_cov=variances),
        )
    converged = {
        "complete": make(max_iter=1000).fit(X).n_iter_,
        "missing": make(max_iter=1000).fit(X_missing).n_iter_,
    }
    print("| run | ms per iteration | ratio to complete | iterations to tol=1e-3 |")
    print("|---|---:|---:|---:|")
    for name, seconds in best.items():
        ratio = seconds / best["complete"]
        iterations = converged.get(name, "")
        print(f"| {name} | {1e3 * seconds:.2f} | {ratio:.2f} | {iterations} |")
    print(
        f"# missing / complete, paired runs: median {np.median(paired):.2f}, "
        f"range {min(paired):.2f}-{max(paired):.2f} ({len(paired)} pairs)"
    )


if __name__ == "__main__":
    main()
