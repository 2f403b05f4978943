"""Write a protocol's folds as CSV, made by bayesgmm's own splitters, for peers in other venvs.

Peers whose packages cannot live in the project's environment (LensKit pulls PyTorch and pins
pandas) run in a separate virtual environment on exactly the folds our methods see: this
script writes, for each fold of ``--protocol`` (``bayesgmm.mpma.protocols``), the files
``DIR/<protocol>/<fold>.train.csv`` and ``<fold>.test.csv`` with columns ``user,item,rating``
(the rows of ``ratings.iloc[train]`` / ``ratings.iloc[test]``, in the splitter's order), plus
``DIR/<protocol>/folds.csv`` listing the fold names and sizes. Fold names are made file-safe
(``fold 0`` -> ``fold_0``).

Two-venv invocation (from the repository root)::

    export PYTHONPATH=$PWD
    /work/main/.venv/bin/python benchmarks/export_folds.py --protocol u1 --out /tmp/folds
    /work/main/.venv/bin/python benchmarks/export_folds.py --protocol kfold --out /tmp/folds
    /work/lenskit-venv/bin/python benchmarks/lenskit_peer.py /tmp/folds/u1
    /work/lenskit-venv/bin/python benchmarks/lenskit_peer.py /tmp/folds/kfold

``--protocol kfold`` uses ``--folds 5 --seed 0`` by default: ``KFold(5, shuffle=True,
random_state=0)``, the folds of ``benchmarks/mpma_movielens.py --protocol kfold``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from bayesgmm.datasets import load_movielens
from bayesgmm.mpma.protocols import get_protocol

__all__ = ["export_folds", "fold_file_stem"]

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ml-100k"
COLUMNS = ["user", "item", "rating"]


def fold_file_stem(name: str) -> str:
    """File-safe stem of a fold name (``"fold 0"`` -> ``"fold_0"``)."""
    return name.replace(" ", "_")


def export_folds(ratings: pd.DataFrame, protocol: str, out: Path, **params) -> Path:
    """Write each fold of ``protocol`` on ``ratings`` as train/test CSV files; return the folder.

    Parameters
    ----------
    ratings : DataFrame with columns user, item, rating (n_ratings rows)
    protocol : str
        A name of :data:`bayesgmm.mpma.protocols.PROTOCOLS`.
    out : Path
        Parent folder; the files go to ``out / protocol``.
    **params
        Overrides of the protocol's defaults (e.g. ``n_splits``, ``seed`` for ``kfold``).
    """
    splitter = get_protocol(protocol, **params)
    folder = Path(out) / protocol
    folder.mkdir(parents=True, exist_ok=True)
    frame = ratings[COLUMNS]
    rows = []
    for name, (train, test) in zip(splitter.fold_names, splitter.split(ratings), strict=True):
        stem = fold_file_stem(name)
        frame.iloc[train].to_csv(folder / f"{stem}.train.csv", index=False)
        frame.iloc[test].to_csv(folder / f"{stem}.test.csv", index=False)
        rows.append({"fold": stem, "n_train": len(train), "n_test": len(test)})
    pd.DataFrame(rows).to_csv(folder / "folds.csv", index=False)
    return folder


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--release", default="100k")
    parser.add_argument("--data", type=Path, default=None, help="data_home of the release")
    parser.add_argument("--protocol", default="kfold")
    parser.add_argument("--folds", type=int, default=5, help="folds of --protocol kfold")
    parser.add_argument("--seed", type=int, default=0, help="seed of --protocol kfold")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    data = args.data if args.data or args.release != "100k" else DATA
    ratings = load_movielens(args.release, data_home=data)
    params = {"n_splits": args.folds, "seed": args.seed} if args.protocol == "kfold" else {}
    folder = export_folds(ratings, args.protocol, args.out, **params)
    print(pd.read_csv(folder / "folds.csv").to_string(index=False))
    print(f"written to {folder}")
    return folder


if __name__ == "__main__":
    main()
