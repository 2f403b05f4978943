"""MPMA on MovieLens-100K: cross-validation against baselines and peers on a named protocol.

One run, one fixed seed, the same folds for every method: ``--protocol kfold`` (default:
``KFold(5, shuffle=True, random_state=seed)`` over the 100,000 ratings), ``u1`` (GroupLens'
u1.base/u1.test, the split GC-MC, IGMC and GLocal-K report on), ``u`` (u1..u5), ``ua``,
``ub`` or any name of :data:`bayesgmm.mpma.protocols.PROTOCOLS`. Per fold: RMSE, MAE and
fit time; then mean +/- sd over folds, and with ``--pair A B`` the paired comparison of two
rows across folds. Rows: global mean, user/item bias baseline (MAP), PMF (MAP, MPMA's
global component alone), MPMA with Chen et al.'s schedule (components fitted separately,
then MAP-EM of pi and sigma), MPMA joint MAP-EM (factors refined in the EM too), Bayesian
PMF and MPMA with hierarchical (BPMF) priors by Gibbs sampling (``GibbsMPMA``), and the
scikit-surprise peers BaselineOnly, KNNBaseline, SVD and SVD++ with default settings (the
``bench`` extra; skipped with the reason printed when surprise cannot be imported).

Usage::

    .venv/bin/python benchmarks/mpma_movielens.py              # full protocol
    .venv/bin/python benchmarks/mpma_movielens.py --no-peers   # without surprise
    .venv/bin/python benchmarks/mpma_movielens.py --folds 2 --methods "PMF (MAP)"
    .venv/bin/python benchmarks/mpma_movielens.py --protocol u1
    .venv/bin/python benchmarks/mpma_movielens.py --protocol u \
        --pair "MPMA (Gibbs, BPMF priors)" "BPMF (Gibbs)"

scikit-surprise: ``.venv/bin/pip install scikit-surprise`` (or the ``bench`` extra) installs
1.1.5 on Python 3.12 from its manylinux wheel, and it imports and runs under NumPy 2.x. Its
SVD++ is slow (minutes per fold on two cores); ``--no-peers`` leaves both peers out.

The data are read from ``../shared/data/ml-100k`` next to the repository (never the
network) unless ``--data`` points elsewhere. ``--release 1m`` (or 10m, 20m, ...) runs another
GroupLens release with ``--data`` its folder, or downloads it into the cache with
``--download``; e.g. ``--release 10m --protocol rendle2019 --methods "BPMF (Gibbs)"``.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import pandas as pd

from bayesgmm.datasets import load_movielens
from bayesgmm.mpma.evaluation import (
    compare_methods,
    default_methods,
    paired_comparison,
    summarize,
)

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ml-100k"


def main(argv: list[str] | None = None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--release", default="100k", help="MovieLens release (100k, 1m, ...)")
    parser.add_argument("--data", type=Path, default=None, help="data_home of the release")
    parser.add_argument("--download", action="store_true", help="allow the download")
    parser.add_argument("--protocol", default="kfold", help="u1, u, ua, ub, kfold, ...")
    parser.add_argument("--folds", type=int, default=5, help="folds of --protocol kfold")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-factors", type=int, default=10)
    parser.add_argument("--no-peers", action="store_true", help="skip scikit-surprise")
    parser.add_argument("--methods", nargs="*", help="run only these rows (exact names)")
    parser.add_argument("--pair", nargs=2, metavar=("A", "B"), help="paired comparison A - B")
    args = parser.parse_args(argv)

    data = args.data if args.data or args.release != "100k" else DATA
    ratings = load_movielens(args.release, data_home=data, download=args.download)
    methods, reason = default_methods(
        n_factors=args.n_factors, seed=args.seed, include_peers=not args.no_peers
    )
    if reason:
        print(f"skipping the scikit-surprise peers: {reason}")
    if args.methods:
        unknown = set(args.methods) - set(methods)
        if unknown:
            parser.error(f"unknown method(s) {sorted(unknown)}; available: {list(methods)}")
        methods = {name: methods[name] for name in args.methods}
    protocol = {"n_splits": args.folds, "seed": args.seed} if args.protocol == "kfold" else {}
    print(
        f"MovieLens {args.release}: {len(ratings):,} ratings; protocol {args.protocol} "
        f"{protocol}; "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU(s)"
    )
    start = time.perf_counter()
    per_fold = compare_methods(ratings, methods, args.protocol, verbose=True, **protocol)
    table = summarize(per_fold)
    print()
    print(
        table.to_string(
            float_format=lambda x: f"{x:.4f}",
            formatters={c: "{:.1f}".format for c in ("fit_time_mean_s", "fit_time_total_s")},
        )
    )
    if args.pair:
        a, b = (per_fold[per_fold["method"] == m] for m in args.pair)
        print()
        try:
            print(paired_comparison(a, b))
        except ValueError as err:  # one fold (u1, ua, ub): no paired test
            print(f"no paired comparison: {err}")
    print(f"\ntotal wall time {time.perf_counter() - start:.0f} s")
    return table


if __name__ == "__main__":
    main()
