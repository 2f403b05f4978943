"""EM on binary descriptors: bayesgmm.GaussianMixture vs scikit-learn's, side by side.

The data are the stacked ORB descriptors of scikit-learn's digits exactly as notebook 06
(Fisher vectors) builds them: images resized to 80 x 80, ``ORB(n_keypoints=5,
harris_k=0.01)``, float64, the 75% training split (1,347 images x 5 descriptors of 256
binary features). Both estimators are fitted with the same arguments (K=16,
``random_state=0``, default ``max_iter``/``tol``/``reg_covar``); on such data most
components sit at ``reg_covar`` along many dimensions, so squared Mahalanobis distances
are huge and the sweep's numerical guards (``bayesgmm.em.sweep``) are exercised.

Printed per covariance type: wall time of each (best of ``--repeats``, and the first
fit, where ours also loads its numba kernels from the on-disk cache), iterations, final
lower bounds and the largest differences of weights, means and covariances.

    python benchmarks/em_binary.py                       # diag (the notebook's case)
    python benchmarks/em_binary.py --cov diag spherical tied full
    python benchmarks/em_binary.py --cache /tmp/orb.npy  # reuse the descriptors (ORB ~40 s)
    python benchmarks/em_binary.py --cov tied full --max-iter 3   # per-iteration cost only
"""

from __future__ import annotations

import argparse
import os
import platform
import time
import warnings

import numpy as np
from sklearn.datasets import load_digits
from sklearn.mixture import GaussianMixture as SklearnGM
from sklearn.model_selection import train_test_split

from bayesgmm import GaussianMixture


def orb_descriptors() -> np.ndarray:
    """The notebook's training descriptors, stacked: (6735, 256) float64 of 0/1."""
    from skimage.feature import ORB
    from skimage.transform import resize

    data = load_digits()
    descriptors = []
    for image in data.images:
        extractor = ORB(n_keypoints=5, harris_k=0.01)
        extractor.detect_and_extract(resize(image, (80, 80)))
        descriptors.append(extractor.descriptors.astype("float32"))
    train, _, _, _ = train_test_split(descriptors, data.target, random_state=0)
    return np.vstack([d.astype(np.float64) for d in train])


def compare(X, n_components: int, covariance_type: str, max_iter=None, repeats=3) -> dict:
    kwargs = dict(covariance_type=covariance_type, random_state=0)
    if max_iter is not None:  # a fixed number of iterations (tied/full are slow at D = 256)
        kwargs.update(max_iter=max_iter, tol=0.0)
    times_theirs, times_ours = [], []
    for _ in range(repeats):  # the first fit of ours loads the numba kernels (cached on disk)
        t0 = time.perf_counter()
        theirs = SklearnGM(n_components, **kwargs).fit(X)
        times_theirs.append(time.perf_counter() - t0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # collapsed components are expected here
            t0 = time.perf_counter()
            ours = GaussianMixture(n_components, **kwargs).fit(X)
            times_ours.append(time.perf_counter() - t0)
    t_ours, t_theirs = min(times_ours), min(times_theirs)
    return {
        "cov": covariance_type,
        "first_s": (times_ours[0], times_theirs[0]),
        "ours_s": t_ours,
        "sklearn_s": t_theirs,
        "ratio": t_ours / t_theirs,
        "n_iter": (ours.n_iter_, theirs.n_iter_),
        "lower_bound": (ours.lower_bound_, theirs.lower_bound_),
        "d_weights": np.abs(ours.weights_ - theirs.weights_).max(),
        "d_means": np.abs(ours.means_ - theirs.means_).max(),
        "d_covariances": np.abs(ours.covariances_ - theirs.covariances_).max(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cov", nargs="+", default=["diag"])
    parser.add_argument("--k", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3, help="fits of each; best kept")
    parser.add_argument("--max-iter", type=int, help="fixed iterations (tol=0) instead")
    parser.add_argument("--cache", help=".npy file for the descriptors (read if present)")
    args = parser.parse_args()
    if args.cache and os.path.exists(args.cache):
        X = np.load(args.cache)
    else:
        t0 = time.perf_counter()
        X = orb_descriptors()
        print(f"ORB descriptors {X.shape} in {time.perf_counter() - t0:.1f} s")
        if args.cache:
            np.save(args.cache, X)
    print(f"{platform.node()}, {os.cpu_count()} cores, K={args.k}, X {X.shape}")
    for cov in args.cov:
        r = compare(X, args.k, cov, args.max_iter, args.repeats)
        print(
            f"{r['cov']:>9}: best of {args.repeats}: ours {r['ours_s']:.2f} s, sklearn "
            f"{r['sklearn_s']:.2f} s (ratio {r['ratio']:.2f}; first fits "
            f"{r['first_s'][0]:.2f} vs {r['first_s'][1]:.2f} s); "
            f"n_iter {r['n_iter'][0]} vs {r['n_iter'][1]}; "
            f"lower bound {r['lower_bound'][0]:.12g} vs {r['lower_bound'][1]:.12g}; "
            f"max |diff| weights {r['d_weights']:.1e}, means {r['d_means']:.1e}, "
            f"covariances {r['d_covariances']:.1e}",
            flush=True,
        )


if __name__ == "__main__":
    main()
