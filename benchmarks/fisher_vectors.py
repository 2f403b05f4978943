"""Fisher-vector encoding: bayesgmm.fisher_vectors vs skimage.feature.fisher_vector.

One diagonal scikit-learn mixture (K = 64, D = 32) encodes 1,000 sets of 500 descriptors
each (issue 18's size), by scikit-image (one call per set, as its API takes one set) and by
bayesgmm (one batched call: a list of sets, and one array with set ids), side by side in
one process. Printed: wall time of each (best of ``--repeats``), the speed-up, and the
largest difference of the vectors (improved off and on). Then the same for a full
covariance mixture (bayesgmm only: scikit-image refuses non-diagonal mixtures).

    python benchmarks/fisher_vectors.py            # the case of BENCHMARKS.md
    python benchmarks/fisher_vectors.py --quick    # 100 sets, seconds
"""

from __future__ import annotations

import argparse
import os
import platform
import time
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture as SklearnGM

from bayesgmm import fisher_vectors


def best_time(function, repeats: int):
    best, out = np.inf, None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = function()
        best = min(best, time.perf_counter() - t0)
    return best, out


def descriptors(rng, n_sets, n_per_set, n_features, n_clusters=64):
    """Clustered synthetic descriptors (a mixture of 64 anisotropic Gaussians)."""
    centres = rng.normal(scale=3.0, size=(n_clusters, n_features))
    scales = rng.uniform(0.3, 1.5, size=(n_clusters, n_features))
    labels = rng.integers(n_clusters, size=n_sets * n_per_set)
    X = centres[labels] + scales[labels] * rng.standard_normal((len(labels), n_features))
    return X.reshape(n_sets, n_per_set, n_features)


def main() -> None:
    from skimage.feature import fisher_vector

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    n_sets = 100 if args.quick else 1000
    n_per_set, n_features, n_components = 500, 32, 64
    rng = np.random.default_rng(0)
    train = descriptors(rng, 100, 500, n_features).reshape(-1, n_features)
    sets = list(descriptors(rng, n_sets, n_per_set, n_features))
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores")
    print(f"{n_sets} sets x {n_per_set} descriptors, D = {n_features}, K = {n_components}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gmm = SklearnGM(n_components, covariance_type="diag", max_iter=20, random_state=0)
        gmm.fit(train)

    X, ids = np.vstack(sets), np.repeat(np.arange(n_sets), n_per_set)
    for improved in (False, True):
        t_sk, ref = best_time(
            lambda improved=improved: np.array(
                [fisher_vector(s, gmm, improved=improved) for s in sets]
            ),
            args.repeats,
        )
        t_ours, ours = best_time(
            lambda improved=improved: fisher_vectors(sets, gmm, improved=improved), args.repeats
        )
        t_ids, by_ids = best_time(
            lambda improved=improved: fisher_vectors(X, gmm, set_ids=ids, improved=improved),
            args.repeats,
        )
        diff = max(np.abs(ours - ref).max(), np.abs(by_ids - ref).max())
        print(
            f"diag, improved={improved}: skimage {t_sk:.2f} s, bayesgmm {t_ours:.2f} s "
            f"(list of sets), {t_ids:.2f} s (array + set ids); speed-up "
            f"{t_sk / t_ours:.1f}x / {t_sk / t_ids:.1f}x; max |difference| {diff:.1e}"
        )

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        full = SklearnGM(n_components, covariance_type="full", max_iter=5, random_state=0)
        full.fit(train)
    t_full, fv = best_time(lambda: fisher_vectors(sets, full), 1)
    print(f"full covariances (bayesgmm only): {t_full:.2f} s, {fv.shape[1]} dimensions")


if __name__ == "__main__":
    main()
