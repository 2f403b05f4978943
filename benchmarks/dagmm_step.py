"""Milliseconds per DAGMM training step: the NumPy step against PyTensor's compiled step.

The paper's KDDCUP99 network (Zong et al. 2018: 120-60-30-10-1 compression network,
10-4 estimation network, batch 1024) on random standardised rows; the same weights,
batches and dropout masks for both; medians over ``--steps`` steps after 3 warm-up
steps. The compiled step's compilation time is reported apart (with PyTensor's disk
cache warm it loads the C modules; cold, it compiles them).

    python benchmarks/dagmm_step.py [--steps 50] [--modes numpy c numba]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from bayesgmm.dagmm.network import Architecture, initial_weights
from bayesgmm.dagmm.training import make_train_step


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--modes", nargs="+", default=["numpy", "c"])
    parser.add_argument("--batch", type=int, default=1024)
    args = parser.parse_args(argv)
    arch = Architecture(120, (60, 30, 10), 1, (10,), 4)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(args.batch, arch.n_features))
    masks = [(rng.random((args.batch, w)) < 0.5) / 0.5 for w in arch.estimation_widths]
    weights = initial_weights(arch, rng)
    options = dict(lambda_energy=0.1, lambda_cov=0.005, reg_covar=1e-6, learning_rate=1e-4)
    times = {}
    for name in args.modes:
        mode = None
        if name != "numpy":
            from pytensor.compile.mode import Mode, get_mode

            c_mode = Mode(linker="cvm", optimizer="fast_run")
            mode = get_mode("NUMBA") if name == "numba" else c_mode
        start = time.perf_counter()
        step, _ = make_train_step(arch, weights, mode=mode, **options)
        ready = time.perf_counter() - start
        for _ in range(3):
            step(X, *masks)
        per = []
        for _ in range(args.steps):
            t0 = time.perf_counter()
            step(X, *masks)
            per.append(time.perf_counter() - t0)
        times[name] = float(np.median(per))
        print(f"{name}: {1e3 * times[name]:.2f} ms per step (median of {args.steps}); "
              f"step built in {ready:.1f} s")
    if "numpy" in times:
        for name, t in times.items():
            print(f"{name} / numpy: {t / times['numpy']:.2f}")


if __name__ == "__main__":
    main()
