"""One log-density-and-gradient evaluation of the GMM: numba (the default) against JAX.

The cost of one gradient, the unit NUTS pays per leapfrog step, for the same model on the
same data: ``numba`` (:func:`bayesgmm.gmm.fast_logp.logp_grad`, one thread: the default,
one chain per core), ``numba-threads`` (:func:`logp_grad_threads` over every core: one
chain on large data) and ``jax`` (:mod:`bayesgmm.gmm.jax_logp` on JAX's default device:
the CPU here, a GPU where one is installed; its default chunking), each timed as the
median of repeated calls after a warm-up call (JAX's compilation is reported apart).
Data: N draws of a K = 5, D = 2 mixture (``--k``/``--d`` to change), full covariances.

    python benchmarks/jax_logp.py                        # N = 1e4, 1e5, 1e6, 1e7
    python benchmarks/jax_logp.py --sizes 1e6,1e7        # the GPU rows of issue 15
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np

from bayesgmm.datasets import make_mixture
from bayesgmm.gmm.fast_logp import fast_gmm, logp_grad_threads
from bayesgmm.gmm.model import build_gmm_model


def median_time(fn, x, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1e4,1e5,1e6,1e7")
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--d", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=0, help="0: as many as fit in ~2 s")
    args = parser.parse_args(argv)

    import jax

    from bayesgmm.gmm.jax_logp import jax_gmm

    device = jax.devices()[0]
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores; JAX {jax.__version__} on "
        f"{device.platform} ({device.device_kind}); K={args.k}, D={args.d}, full covariances"
    )
    print(
        "| N | numba [ms] | numba-threads [ms] | jax [ms] | jax compile [s] "
        "| numba / jax | jax obs-grad/s |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for size in (int(float(s)) for s in args.sizes.split(",")):
        X = make_mixture(size, args.k, args.d, seed=0).X
        model = build_gmm_model(X, n_components=args.k)
        fast = fast_gmm(model)
        x = np.random.default_rng(1).normal(scale=0.3, size=fast.n_dim)
        grad = np.empty(fast.n_dim)

        t0 = time.perf_counter()
        dens = jax_gmm(model)
        dens.logp_dlogp(x)
        t_compile = time.perf_counter() - t0
        lp_j, grad_j = dens.logp_dlogp(x)
        lp_n, grad_n = fast.logp_dlogp(x)
        assert abs(lp_j - lp_n) <= 1e-9 * abs(lp_n), (lp_j, lp_n)  # the same density
        assert np.allclose(grad_j, grad_n, rtol=1e-8, atol=1e-8 * np.abs(grad_n).max())
        fast.logp_dlogp(x)
        logp_grad_threads(x, grad, fast.buf)

        one = median_time(fast.logp_dlogp, x, 3)
        reps = args.repeats or max(3, min(200, int(2.0 / max(one, 1e-6))))
        t_numba = median_time(fast.logp_dlogp, x, reps)
        t_threads = median_time(
            lambda x, g=grad, buf=fast.buf: logp_grad_threads(x, g, buf), x, reps
        )
        t_jax = median_time(dens.logp_dlogp, x, reps)
        print(
            f"| {size:.0e} | {t_numba * 1e3:.3f} | {t_threads * 1e3:.3f} | {t_jax * 1e3:.3f} "
            f"| {t_compile:.2f} | {t_numba / t_jax:.2f} | {size / t_jax:.2e} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
