"""EM speed: bayesgmm.GaussianMixture vs scikit-learn's, side by side in one run.

Both start from identical initial parameters (k-means++ centres computed once) on the
same data and run the same fixed number of EM iterations (tol=0). Printed per case:
wall time of each (best of ``--repeats``), the time ratio ours/sklearn, and the
difference of the final log-likelihoods and parameters.

    python benchmarks/em_vs_sklearn.py            # the three cases of BENCHMARKS.md
    python benchmarks/em_vs_sklearn.py --quick    # small sizes, seconds
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
from sklearn.mixture import GaussianMixture as SklearnGM

from bayesgmm import GaussianMixture
from bayesgmm.datasets import make_mixture

CASES = [
    # (n_samples, n_features, n_components, covariance_type)
    (200_000, 10, 8, "full"),
    (1_000_000, 2, 5, "full"),
    (200_000, 50, 8, "diag"),
]
QUICK = [(20_000, 10, 8, "full"), (100_000, 2, 5, "full"), (20_000, 50, 8, "diag")]


def initial_parameters(X, n_components, covariance_type, seed):
    """Identical starting point for both: k-means++ centres, then one sklearn M-step."""
    centres, _ = kmeans_plusplus(X, n_components, random_state=seed)
    start = SklearnGM(
        n_components,
        covariance_type=covariance_type,
        means_init=centres,
        max_iter=1,
        tol=0,
        random_state=seed,
    ).fit(X)
    return {
        "weights_init": start.weights_,
        "means_init": start.means_,
        "precisions_init": start.precisions_,
    }


def time_fit(estimator, X, repeats):
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        estimator.fit(X)
        best = min(best, time.perf_counter() - t0)
    return best


def run_case(n, d, k, covariance_type, n_iter, repeats, seed=0):
    X = make_mixture(n, k, d, separation=1.5, seed=seed).X
    init = initial_parameters(X, k, covariance_type, seed)
    common = dict(covariance_type=covariance_type, max_iter=n_iter, tol=0.0, **init)
    ours = GaussianMixture(k, **common)
    theirs = SklearnGM(k, **common)
    ours.set_params(max_iter=1).fit(X[:1000])  # JIT warm-up, outside the timing
    ours.set_params(max_iter=n_iter)
    t_ours = time_fit(ours, X, repeats)
    t_sk = time_fit(theirs, X, repeats)
    ll_ours, ll_sk = ours.score(X), theirs.score(X)
    return {
        "case": f"N={n:,} D={d} K={k} {covariance_type}",
        "t_ours": t_ours,
        "t_sklearn": t_sk,
        "ratio": t_ours / t_sk,
        "ll_ours": ll_ours,
        "ll_rel_diff": abs(ll_ours - ll_sk) / abs(ll_sk),
        "means_max_diff": float(np.abs(ours.means_ - theirs.means_).max()),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes")
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    machine = f"{platform.platform()}, python {platform.python_version()}"
    print(f"# {machine}, {os.cpu_count()} cores")
    print(f"# {args.iterations} EM iterations per fit from identical initial parameters;", end=" ")
    print(f"best of {args.repeats}")
    columns = [("case", 28), ("ours [s]", 9), ("sklearn [s]", 11), ("ratio", 6)]
    columns += [("loglik/n (ours)", 16), ("rel diff", 9), ("max |dmu|", 9)]
    header = " ".join(
        f"{name:<{width}}" if i == 0 else f"{name:>{width}}"
        for i, (name, width) in enumerate(columns)
    )
    print(header)
    warnings.simplefilter("ignore", ConvergenceWarning)
    for case in QUICK if args.quick else CASES:
        r = run_case(*case, n_iter=args.iterations, repeats=args.repeats)
        print(
            f"{r['case']:<28} {r['t_ours']:>9.3f} {r['t_sklearn']:>11.3f} {r['ratio']:>6.3f} "
            f"{r['ll_ours']:>16.10f} {r['ll_rel_diff']:>9.1e} {r['means_max_diff']:>9.1e}"
        )


if __name__ == "__main__":
    main()
