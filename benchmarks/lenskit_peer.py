"""LensKit peers (biased ALS MF, bias baseline, item-kNN) on folds exported by bayesgmm.

Runs in its OWN virtual environment, not the project's: ``pip install lenskit`` (2025.8.1)
pulls PyTorch (with CUDA, ~5 GB) and pins pandas 2.3, which the project's venv cannot take.
It does not import bayesgmm; it reads the CSV folds that ``benchmarks/export_folds.py``
writes with bayesgmm's own splitters, so LensKit sees exactly the folds our methods see.

Two-venv invocation (from the repository root)::

    # once: the LensKit venv (the PyTorch CPU index is tried first; pip falls back to PyPI)
    python3.12 -m venv /work/lenskit-venv
    /work/lenskit-venv/bin/pip install --index-url https://download.pytorch.org/whl/cpu torch
    /work/lenskit-venv/bin/pip install lenskit
    # folds, made by bayesgmm in the project's venv
    PYTHONPATH=$PWD .venv/bin/python benchmarks/export_folds.py --protocol u1 --out /tmp/folds
    PYTHONPATH=$PWD .venv/bin/python benchmarks/export_folds.py --protocol kfold --out /tmp/folds
    # LensKit on them
    /work/lenskit-venv/bin/python benchmarks/lenskit_peer.py /tmp/folds/u1
    /work/lenskit-venv/bin/python benchmarks/lenskit_peer.py /tmp/folds/kfold

Models, with LensKit 2025.8.1's own defaults (no tuning; nothing is chosen on test data):

- ``LensKit BiasedMF (ALS)``: ``lenskit.als.BiasedMFScorer`` with ``BiasedMFConfig()``:
  50 features, 10 epochs, regularisation 0.1 (weighted by each row's rating count), bias
  damping 5, seed ``--seed``.
- ``LensKit Bias``: ``lenskit.basic.BiasScorer`` with ``BiasConfig()`` (global mean + user
  and item biases, damping 0).
- ``LensKit ItemKNN``: ``lenskit.knn.ItemKNNScorer`` with ``ItemKNNConfig()`` (explicit
  feedback, mean-centred cosine similarity, 20 neighbours, min similarity 1e-6).

Each scorer runs in LensKit's ``predict_pipeline(scorer, fallback=False)``, which looks up
the user's training history (so BiasedMF re-solves the user's embedding against the final
item embeddings, as LensKit's pipelines do). Pairs a scorer cannot score (NaN: e.g. an item
absent from training, or no neighbours for item-kNN) are filled with the LensKit Bias
prediction, as LensKit's default ``fallback=True`` would, and counted (``n_fallback``); all
predictions are clipped to the rating scale of the training data. Output: one row per
(method, fold) with RMSE, MAE, fit seconds and the fallback count, then mean +/- sd per
method, as CSV and as a markdown table.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
from lenskit.als import BiasedMFConfig, BiasedMFScorer
from lenskit.basic import BiasScorer
from lenskit.data import ItemList, from_interactions_df
from lenskit.knn import ItemKNNScorer
from lenskit.pipeline import predict_pipeline
from lenskit.training import TrainingOptions

__all__ = ["run_folder"]

BIAS = "LensKit Bias"


def _models() -> dict:
    return {
        "LensKit BiasedMF (ALS)": lambda: BiasedMFScorer(BiasedMFConfig()),
        BIAS: BiasScorer,
        "LensKit ItemKNN": ItemKNNScorer,
    }


def _fit_predict(scorer, train_ds, test: pd.DataFrame, seed: int) -> tuple[np.ndarray, float]:
    pipe = predict_pipeline(scorer, fallback=False)
    start = time.perf_counter()
    pipe.train(train_ds, TrainingOptions(rng=seed))
    fit_s = time.perf_counter() - start
    # One pipeline run per test user (LensKit 2025.8.1's batch.predict fails on item-kNN
    # output: its per-user lists disagree on the dtype of the ``nbr_counts`` field).
    scores = np.full(len(test), np.nan)
    for user, rows in test.groupby("user_id", sort=False).indices.items():
        items = ItemList(item_ids=test["item_id"].to_numpy()[rows])
        out = pipe.run("rating-predictor", query=user, items=items)
        scores[rows] = out.scores("numpy")
    return scores, fit_s


def run_folder(folder: Path, seed: int = 0, methods: list[str] | None = None) -> pd.DataFrame:
    """RMSE, MAE, fit seconds and fallback count of each LensKit model on each exported fold."""
    folds = pd.read_csv(folder / "folds.csv")
    models = _models()
    names = methods or list(models)
    rows = []
    for fold in folds["fold"]:
        train = pd.read_csv(folder / f"{fold}.train.csv")
        test = pd.read_csv(folder / f"{fold}.test.csv")
        train = train.rename(columns={"user": "user_id", "item": "item_id"})
        test = test.rename(columns={"user": "user_id", "item": "item_id"})
        lo, hi = train["rating"].min(), train["rating"].max()
        truth = test["rating"].to_numpy(dtype=np.float64)
        train_ds = from_interactions_df(train.copy())
        bias_pred, bias_fit = _fit_predict(BiasScorer(), train_ds, test, seed)
        bias_pred = np.where(np.isnan(bias_pred), train["rating"].mean(), bias_pred)
        for name in names:
            if name == BIAS:
                pred, fit_s = bias_pred, bias_fit
            else:
                pred, fit_s = _fit_predict(models[name](), train_ds, test, seed)
            missing = np.isnan(pred)
            pred = np.clip(np.where(missing, bias_pred, pred), lo, hi)
            err = pred - truth
            rows.append({
                "method": name, "fold": fold, "rmse": float(np.sqrt(np.mean(err**2))),
                "mae": float(np.mean(np.abs(err))), "fit_time_s": fit_s,
                "n_test": len(truth), "n_fallback": int(missing.sum()),
            })
            print(f"{fold:>8}  {name:<24} RMSE {rows[-1]['rmse']:.4f}  fit {fit_s:.1f} s  "
                  f"fallback {rows[-1]['n_fallback']}", flush=True)
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder", type=Path, help="a folder written by export_folds.py")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--methods", nargs="*", help="only these rows (exact names)")
    parser.add_argument("--csv", type=Path, help="write the per-fold table here")
    args = parser.parse_args(argv)
    import lenskit

    print(f"LensKit {lenskit.__version__}; folds from {args.folder}")
    per_fold = run_folder(args.folder, args.seed, args.methods)
    if args.csv:
        per_fold.to_csv(args.csv, index=False)
    print()
    print(per_fold.to_csv(index=False, float_format="%.4f"))
    summary = per_fold.groupby("method", sort=False).agg(
        rmse_mean=("rmse", "mean"), rmse_sd=("rmse", "std"), mae_mean=("mae", "mean"),
        mae_sd=("mae", "std"), fit_time_mean_s=("fit_time_s", "mean"),
        n_fallback=("n_fallback", "sum"),
    )
    print(summary.to_markdown(floatfmt=".4f") if _has_tabulate() else summary.to_string())
    return per_fold


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401
    except ImportError:
        return False
    return True


if __name__ == "__main__":
    main()
