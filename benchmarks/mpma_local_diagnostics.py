"""Why MPMA's local components do or do not help on MovieLens-100K u1: oracles and controls.

Three measurements on GroupLens' u1 split (issue 17, item 4), every one against Bayesian
PMF fitted on all the training ratings (MPMA's global component alone):

1. **Oracle combination.** GibbsMPMA's component means at the test ratings, combined with
   the best weights fitted *on the test ratings themselves* (non-negative least squares, and
   affine least squares): the most any reweighting of these components could give.
2. **Local structure left in the residuals.** A user-local (item-local) Bayesian PMF of
   rank 5 sampled on the training residuals of Bayesian PMF, in k-means groups of its
   factors; its test-set predictions added to BPMF's, with the best scale fitted on the
   test ratings (oracle). If this gains ~0, the global model leaves no group-local signal.
3. **Groups vs plain averaging.** GibbsMPMA with 1 group per side (the "local" components
   are then two more chains of the global model: a pure ensemble), 2 and 4 groups.

``--implicit`` runs 1 and 3 with implicit-feedback features in every component.
Command: ``python benchmarks/mpma_local_diagnostics.py [--implicit]``.
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
from scipy.optimize import nnls

from bayesgmm.datasets import load_movielens
from bayesgmm.mpma import GibbsMPMA, bpmf
from bayesgmm.mpma.als import Factors
from bayesgmm.mpma.em import cluster_entities, component_index
from bayesgmm.mpma.estimator import UnseenIdWarning
from bayesgmm.mpma.gibbs import GibbsPriors, sample_component
from bayesgmm.mpma.protocols import get_protocol

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ml-100k"


def rmse(y: np.ndarray, pred: np.ndarray) -> float:
    return float(np.sqrt(np.mean((y - np.clip(pred, 1.0, 5.0)) ** 2)))


def component_table(model, test) -> np.ndarray:
    """Component means at the test ratings, (N, 3); unseen ids get the model's fallback."""
    users, items = test["user"].to_numpy(), test["item"].to_numpy()
    known = np.isin(users, model.user_ids_) & np.isin(items, model.item_ids_)
    table = np.repeat(model.predict(users, items)[:, None], len(model.components_), axis=1)
    table[known] = model.component_means(users[known], items[known])
    return np.clip(table, 1.0, 5.0)


def oracle(y: np.ndarray, table: np.ndarray) -> tuple[float, float, np.ndarray]:
    """RMSE of the test-fitted non-negative and affine combinations, and the NNLS weights."""
    w, _ = nnls(table, y)
    design = np.column_stack([np.ones(len(y)), table])
    coef = np.linalg.lstsq(design, y, rcond=None)[0]
    return rmse(y, table @ w), rmse(y, design @ coef), w


def residual_locality(train, test, glob, y, pred_glob, n_groups: int, seed: int) -> None:
    """Measurement 2 for one number of groups."""
    users = np.searchsorted(glob.user_ids_, train["user"])
    items = np.searchsorted(glob.item_ids_, train["item"])
    n_users, n_items = len(glob.user_ids_), len(glob.item_ids_)
    post = glob.posteriors_[0]
    residual = train["rating"].to_numpy() - post.mean_prediction(users, items)
    known = np.isin(test["item"], glob.item_ids_)
    t_users = np.searchsorted(glob.user_ids_, test["user"][known])
    t_items = np.searchsorted(glob.item_ids_, test["item"][known])
    mean = post.posterior_mean()
    groups = (
        cluster_entities(mean.row_factors, n_groups, seed),
        cluster_entities(mean.col_factors, n_groups, seed),
    )
    rng = np.random.default_rng(seed)
    for name in ("user", "item"):
        ix = component_index(name, users, items, n_users, n_items, *groups)
        start = Factors(
            0.0, np.zeros(ix.n_rows), np.zeros(ix.n_cols),
            0.01 * rng.standard_normal((ix.n_rows, 5)), 0.01 * rng.standard_normal((ix.n_cols, 5)),
        )  # fmt: skip
        delta_post = sample_component(
            start, residual, ix, GibbsPriors(), use_bias=True, n_burn=30, n_draws=100, rng=rng
        )
        t_ix = component_index(name, t_users, t_items, n_users, n_items, *groups)
        delta = np.zeros(len(y))
        delta[known] = delta_post.mean_prediction(t_ix.rows, t_ix.cols)
        scale = float(delta @ (y - pred_glob) / (delta @ delta))
        print(
            f"  {n_groups} groups, {name}-local delta: sd {delta.std():.4f}; BPMF + delta "
            f"{rmse(y, pred_glob + delta):.4f}; oracle scale {scale:.2f}: "
            f"{rmse(y, pred_glob + scale * delta):.4f}"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=DATA)
    parser.add_argument("--implicit", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore", UnseenIdWarning)
    ratings = load_movielens("100k", data_home=args.data)
    train_ix, test_ix = next(get_protocol("u1").split(ratings))
    train, test = ratings.iloc[train_ix], ratings.iloc[test_ix]
    y = test["rating"].to_numpy()
    common = {"random_state": args.seed, "progressbar": False, "implicit": args.implicit}

    start = time.perf_counter()
    glob = bpmf(10, **common).fit(train)
    pred_glob = glob.predict(test["user"], test["item"])
    print(f"BPMF on all training ratings: {rmse(y, pred_glob):.4f} "
          f"({time.perf_counter() - start:.0f} s)")  # fmt: skip

    print("1. oracle combinations of GibbsMPMA's components (weights fitted on the test set)")
    for refit in (False, True):
        model = GibbsMPMA(10, refit=refit, **common).fit(train)
        table = component_table(model, test)
        nn, affine, w = oracle(y, table)
        single = ", ".join(f"{c} {rmse(y, table[:, j]):.4f}"
                           for j, c in enumerate(model.components_))  # fmt: skip
        print(
            f"  refit={refit}: components alone {single}; mixture (fitted weights "
            f"{np.round(model.weights_, 2)}) {rmse(y, table @ model.weights_):.4f}; oracle "
            f"NNLS {nn:.4f} (weights {np.round(w, 2)}), oracle affine {affine:.4f}"
        )
        if not refit:
            both = np.column_stack([pred_glob, table])
            nn2, affine2, w2 = oracle(y, both)
            print(f"  BPMF(all ratings) + these components: oracle NNLS {nn2:.4f} "
                  f"(weights {np.round(w2, 2)}), affine {affine2:.4f}")  # fmt: skip

    if not args.implicit:
        print("2. local structure in BPMF's training residuals (rank-5 local models)")
        for n_groups in (2, 4):
            residual_locality(train, test, glob, y, pred_glob, n_groups, args.seed)

    print("3. groups per side (refit=True); 1 group = an ensemble of three global chains")
    for n_groups in (1, 2, 4):
        model = GibbsMPMA(10, n_user_groups=n_groups, n_item_groups=n_groups, **common)
        model.fit(train)
        print(f"  {n_groups} group(s): {model.rmse(test):.4f} "
              f"(weights {np.round(model.weights_, 2)})")  # fmt: skip


if __name__ == "__main__":
    main()
