"""MPMA at MovieLens-10M scale: fit time and peak memory of MAP-EM and Gibbs on synthetic data.

The ratings are :func:`bayesgmm.mpma.synthetic.make_ratings` (a planted low-rank plus
local model with MovieLens-like activity, half stars 0.5..5). ``--ratings 1e7`` is ML-10M's
shape (69,878 users, 10,677 items); smaller sizes scale users and items by
``sqrt(ratings / 1e7)`` (so the density, 1.34%, stays ML-10M's) and the minimum of 20
ratings per user by the same factor. 10% of the ratings, drawn at random, are the test set.

Each fit runs in a fresh Python process (``--worker``) that loads the train/test arrays
from a temporary ``.npz``, fits with the estimator's defaults (``MPMA()``:
``n_factors=10``, 2 user and 2 item groups, 15 warm-up iterations per stage, at most 50
mixture iterations; ``GibbsMPMA()``: 30 + 100 sweeps per component) and predicts the test
ratings. Peak memory is that process's ``resource.getrusage(RUSAGE_SELF).ru_maxrss``
(the high-water resident set, Linux kB), read once the data are loaded (``rss_data``) and
at the end (``peak_rss``): it includes the interpreter, NumPy/numba and the data, and
counts every temporary, unlike ``tracemalloc``, which misses numba's allocations. Fit
times are the estimators' ``fit_time_`` (wall clock, validation and encoding excluded),
with the process's CPU time over the fit (``fit_cpu_s``, all threads: on a machine shared
with other jobs it moves less than the wall time).

Reported per method: fit and predict time, peak RSS, test RMSE; and on the same test set
the RMSE of the global mean and of the truth (the noiseless mean, clipped to the scale:
the floor a perfect model reaches, up to the rounding).

Usage::

    .venv/bin/python benchmarks/mpma_scale.py --ratings 1e6
    .venv/bin/python benchmarks/mpma_scale.py --ratings 1e7 --methods em
    .venv/bin/python benchmarks/mpma_scale.py --ratings 1e7 --methods gibbs
    .venv/bin/python benchmarks/mpma_scale.py --ratings 1e5 --n-burn 3 --n-draws 5

``NUMBA_NUM_THREADS`` (default: every core) sets the threads of the parallel kernels.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ML10M_RATINGS = 10_000_000
METHODS = ("em", "gibbs")


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def make_data(n_ratings: int, seed: int, path: Path) -> dict:
    """Draw the synthetic ratings, split 90/10, save to ``path`` (.npz); return a summary."""
    from bayesgmm.mpma.synthetic import ML10M_SHAPE, make_ratings

    scale = math.sqrt(n_ratings / ML10M_RATINGS)
    shape = dict(
        n_users=max(1, round(ML10M_SHAPE[1] * scale)),
        n_items=max(1, round(ML10M_SHAPE[2] * scale)),
        min_user_ratings=max(1, round(20 * scale)),
    )
    start = time.perf_counter()
    data = make_ratings(n_ratings, seed=seed, **shape)
    make_time = time.perf_counter() - start
    frame = data.ratings
    rng = np.random.default_rng(seed + 1)
    test = rng.random(len(frame)) < 0.1
    arrays = {name: frame[name].to_numpy() for name in ("user", "item", "rating")}
    np.savez(
        path,
        **{f"train_{k}": v[~test] for k, v in arrays.items()},
        **{f"test_{k}": v[test] for k, v in arrays.items()},
        rating_scale=np.asarray(frame.attrs["rating_scale"]),
    )
    truth = np.clip(data.mean[test], *frame.attrs["rating_scale"])
    y = arrays["rating"][test]
    return {
        "ratings": len(frame),
        "users": int(frame["user"].nunique()),
        "items": int(frame["item"].nunique()),
        "train": int((~test).sum()),
        "test": int(test.sum()),
        "make_time_s": round(make_time, 2),
        "rmse_truth": float(np.sqrt(np.mean((y - truth) ** 2))),
        "rmse_global_mean": float(np.sqrt(np.mean((y - arrays["rating"][~test].mean()) ** 2))),
    }


def worker(method: str, path: Path, seed: int, options: dict) -> dict:
    """Fit ``method`` on the saved split in this process; return times, RSS and RMSE."""
    import pandas as pd

    from bayesgmm.mpma import MPMA, GibbsMPMA

    saved = np.load(path)
    train = pd.DataFrame({k: saved[f"train_{k}"] for k in ("user", "item", "rating")})
    train.attrs["rating_scale"] = tuple(saved["rating_scale"])
    test = {k: saved[f"test_{k}"] for k in ("user", "item", "rating")}
    rss_data = _peak_rss_mb()
    if method == "em":
        model = MPMA(random_state=seed, progressbar=options["progressbar"])
    else:
        extra = {k: options[k] for k in ("n_burn", "n_draws") if options[k] is not None}
        model = GibbsMPMA(random_state=seed, progressbar=options["progressbar"], **extra)
    cpu = _cpu_seconds()
    model.fit(train)
    fit_cpu = _cpu_seconds() - cpu
    start = time.perf_counter()
    import warnings

    from bayesgmm.mpma.estimator import UnseenIdWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnseenIdWarning)  # test users/items absent in train
        pred = model.predict(test["user"], test["item"])
    predict_time = time.perf_counter() - start
    out = {
        "method": method,
        "fit_time_s": round(model.fit_time_, 1),
        "fit_cpu_s": round(fit_cpu, 1),
        "predict_time_s": round(predict_time, 1),
        "rss_data_mb": round(rss_data),
        "peak_rss_mb": round(_peak_rss_mb()),
        "test_rmse": float(np.sqrt(np.mean((test["rating"] - pred) ** 2))),
        "weights": [round(float(w), 3) for w in model.weights_],
    }
    if method == "em":
        out["n_iter"] = int(model.n_iter_)
        out["converged"] = bool(model.converged_)
    return out


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ratings", type=float, default=1e6, help="number of ratings (1e7 max)")
    parser.add_argument("--methods", nargs="*", choices=METHODS, default=list(METHODS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-burn", type=int, default=None, help="GibbsMPMA n_burn (default 30)")
    parser.add_argument("--n-draws", type=int, default=None, help="GibbsMPMA n_draws (100)")
    parser.add_argument("--progress", action="store_true", help="show the progress bars")
    parser.add_argument("--worker", nargs=2, metavar=("METHOD", "NPZ"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    options = {"n_burn": args.n_burn, "n_draws": args.n_draws, "progressbar": args.progress}
    if args.worker:
        print(json.dumps(worker(args.worker[0], Path(args.worker[1]), args.seed, options)))
        return []

    n_ratings = int(args.ratings)
    threads = os.environ.get("NUMBA_NUM_THREADS", str(os.cpu_count()))
    print(
        f"MPMA scale benchmark: {n_ratings:,} synthetic ratings, seed {args.seed}; "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU(s), "
        f"numba threads {threads}, load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ratings.npz"
        summary = make_data(n_ratings, args.seed, path)
        print(json.dumps(summary), flush=True)
        for method in args.methods:
            command = [sys.executable, __file__, "--worker", method, str(path),
                       "--seed", str(args.seed)]  # fmt: skip
            for flag, value in (("--n-burn", args.n_burn), ("--n-draws", args.n_draws)):
                if value is not None:
                    command += [flag, str(value)]
            if args.progress:
                command.append("--progress")
            start = time.perf_counter()
            done = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True)
            result = json.loads(done.stdout.strip().splitlines()[-1])
            result["process_wall_s"] = round(time.perf_counter() - start, 1)
            result["load_average"] = round(os.getloadavg()[0], 1)
            print(json.dumps(result), flush=True)
            results.append(result)
    return results


if __name__ == "__main__":
    main()
