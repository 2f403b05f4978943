"""Where MPMA's local components help: a denser synthetic matrix with planted local structure.

Users fall into two hidden groups, and the items have different factors for each group:
``R_ui = 3 + a_u + b_i + U_u . V_i^(g(u)) + noise`` with ``V^(0)``, ``V^(1)`` independent
rank-``rank`` matrices, so the matrix as a whole has rank ``2 * rank`` while each user
group's sub-matrix has rank ``rank``: exactly MPMA's user-local component. Half-integer
noise is added and the ratings are clipped to 1..5 (no rounding). Every model sees the same
train/test split (80/20, random). Rows: Bayesian PMF of rank ``rank`` (MPMA's global
component alone), GibbsMPMA of rank ``rank`` with 2 + 2 groups (k-means on the global
factors), and Bayesian PMF of rank ``2 * rank`` (as many parameters per user as the
mixture; the fair control for "more parameters").

Command: ``python benchmarks/mpma_local_structure.py`` (about a minute on 2 cores).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from bayesgmm.mpma import GibbsMPMA, bpmf


def planted(seed: int, n_users: int, n_items: int, rank: int, density: float, noise: float):
    """(ratings frame, user groups): the model of the module docstring."""
    rng = np.random.default_rng(seed)
    group = rng.integers(2, size=n_users)
    u = rng.normal(size=(n_users, rank)) / rank**0.25
    v = rng.normal(size=(2, n_items, rank)) / rank**0.25
    a, b = 0.3 * rng.normal(size=n_users), 0.3 * rng.normal(size=n_items)
    users, items = np.nonzero(rng.random((n_users, n_items)) < density)
    mean = 3.0 + a[users] + b[items] + np.einsum("nk,nk->n", u[users], v[group[users], items])
    ratings = np.clip(mean + noise * rng.standard_normal(users.size), 1.0, 5.0)
    return pd.DataFrame({"user": users, "item": items, "rating": ratings}), group


def main(argv: list[str] | None = None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--users", type=int, default=600)
    parser.add_argument("--items", type=int, default=400)
    parser.add_argument("--rank", type=int, default=3)
    parser.add_argument("--density", type=float, default=0.3)
    parser.add_argument("--noise", type=float, default=0.5)
    args = parser.parse_args(argv)
    frame, group = planted(args.seed, args.users, args.items, args.rank, args.density, args.noise)
    test = frame.sample(frac=0.2, random_state=args.seed)
    train = frame.drop(test.index)
    print(
        f"{len(frame):,} ratings, {args.users} users x {args.items} items (density "
        f"{args.density}), rank {args.rank} per user group, noise sd {args.noise}"
    )
    k = args.rank
    methods = {
        f"BPMF rank {k} (MPMA's global component)": lambda: bpmf(k, random_state=args.seed),
        f"MPMA (Gibbs) rank {k}, 2 + 2 groups": lambda: GibbsMPMA(k, random_state=args.seed),
        f"BPMF rank {2 * k}": lambda: bpmf(2 * k, random_state=args.seed),
    }
    rows = []
    for name, make in methods.items():
        start = time.perf_counter()
        model = make().set_params(progressbar=False).fit(train)
        seconds = time.perf_counter() - start
        row = {"method": name, "test RMSE": model.rmse(test), "fit time [s]": seconds}
        if isinstance(model, GibbsMPMA) and len(model.components_) > 1:
            groups = model.user_groups_[np.searchsorted(model.user_ids_, np.arange(args.users))]
            agree = max(np.mean(groups == group), np.mean(groups != group))
            row["weights"] = np.round(model.weights_, 3).tolist()
            row["user groups recovered"] = agree
        rows.append(row)
        print(row, flush=True)
    table = pd.DataFrame(rows).set_index("method")
    print()
    print(table.to_string(float_format=lambda x: f"{x:.4f}"))
    return table


if __name__ == "__main__":
    main()
