"""Seconds to a first DAGMM fit in a fresh process: import, compile, train (small data).

    python benchmarks/dagmm_first_fit.py [--compile-mode numpy|c|numba|fast_compile]

The default NumPy training step compiles nothing. With ``c``, run it twice: the first run
on a machine fills PyTensor's compilation cache and pays the C compiler; later processes
load the compiled modules. To see the cold cost
again, point PyTensor at an empty directory:
``PYTENSOR_FLAGS=compiledir=/tmp/empty python benchmarks/dagmm_first_fit.py``.
"""

from __future__ import annotations

import argparse
import time

start = time.perf_counter()

import numpy as np  # noqa: E402

from bayesgmm import DAGMM  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--compile-mode", default="numpy")
    args = parser.parse_args()
    X = np.random.default_rng(0).normal(size=(2000, 20))
    model = DAGMM(
        4, encoder_widths=(16, 8), batch_size=256, max_epochs=20, compile_mode=args.compile_mode,
        random_state=0,
    ).fit(X)  # fmt: skip
    total = time.perf_counter() - start
    print(
        f"compile_mode={args.compile_mode}: first fit done {total:.1f} s after the process "
        f"started (compile {model.compile_seconds_:.1f} s, {model.n_epochs_} epochs "
        f"{model.train_seconds_:.1f} s)"
    )


if __name__ == "__main__":
    main()
