"""MPMA on MovieLens-100K: 5-fold cross-validation against baselines and peers.

One run, one fixed seed, the same folds for every method (``KFold(5, shuffle=True,
random_state=seed)`` over the 100,000 ratings). Per fold: RMSE, MAE and fit time; then
mean +/- sd over folds. Rows: global mean, user/item bias baseline (MAP), PMF (MAP, MPMA's
global component alone), MPMA with Chen et al.'s schedule (components fitted separately,
then MAP-EM of pi and sigma), MPMA joint MAP-EM (factors refined in the EM too), Bayesian
PMF and MPMA with hierarchical (BPMF) priors by Gibbs sampling (``GibbsMPMA``), and the
scikit-surprise peers SVD and SVD++ with default settings (the ``bench`` extra; skipped
with the reason printed when surprise cannot be imported).

Usage::

    .venv/bin/python benchmarks/mpma_movielens.py              # full protocol
    .venv/bin/python benchmarks/mpma_movielens.py --no-peers   # without surprise
    .venv/bin/python benchmarks/mpma_movielens.py --folds 2 --methods "PMF (MAP)"

scikit-surprise: ``.venv/bin/pip install scikit-surprise`` (or the ``bench`` extra) installs
1.1.5 on Python 3.12 from its manylinux wheel, and it imports and runs under NumPy 2.x. Its
SVD++ is slow (minutes per fold on two cores); ``--no-peers`` leaves both peers out.

The data are read from ``../shared/data/ml-100k`` next to the repository (never the
network) unless ``--data`` points elsewhere.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import pandas as pd

from bayesgmm.datasets import load_movielens
from bayesgmm.mpma.evaluation import cross_validate, default_methods, summarize

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ml-100k"


def main(argv: list[str] | None = None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DATA, help="folder with u.data")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-factors", type=int, default=10)
    parser.add_argument("--no-peers", action="store_true", help="skip scikit-surprise")
    parser.add_argument("--methods", nargs="*", help="run only these rows (exact names)")
    args = parser.parse_args(argv)

    ratings = load_movielens(data_home=args.data, download=False)[["user", "item", "rating"]]
    methods, reason = default_methods(
        n_factors=args.n_factors, seed=args.seed, include_peers=not args.no_peers
    )
    if reason:
        print(f"skipping scikit-surprise SVD and SVD++: {reason}")
    if args.methods:
        unknown = set(args.methods) - set(methods)
        if unknown:
            parser.error(f"unknown method(s) {sorted(unknown)}; available: {list(methods)}")
        methods = {name: methods[name] for name in args.methods}
    print(
        f"MovieLens-100K: {len(ratings):,} ratings; {args.folds}-fold CV, seed {args.seed}; "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU(s)"
    )
    start = time.perf_counter()
    per_fold = cross_validate(ratings, methods, n_splits=args.folds, seed=args.seed, verbose=True)
    table = summarize(per_fold)
    print()
    print(
        table.to_string(
            float_format=lambda x: f"{x:.4f}",
            formatters={c: "{:.1f}".format for c in ("fit_time_mean_s", "fit_time_total_s")},
        )
    )
    print(f"\ntotal wall time {time.perf_counter() - start:.0f} s")
    return table


if __name__ == "__main__":
    main()
