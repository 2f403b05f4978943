"""benchmarks/export_folds.py: the CSV folds that peers in other venvs (LensKit) read.

Checked against the raw ``u.data`` file (u1.test = its first 20,000 lines, ``mku.sh``) and
scikit-learn's ``KFold`` directly, not against the splitter that wrote the files.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import KFold

from bayesgmm.datasets import load_movielens

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "export_folds.py"


@pytest.fixture(scope="module")
def export_folds():
    spec = importlib.util.spec_from_file_location("export_folds", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.export_folds


@pytest.fixture(scope="module")
def ml100k(shared_data):
    return load_movielens("100k", data_home=shared_data / "ml-100k")


def _raw_u_data(shared_data) -> np.ndarray:
    path = next((shared_data / "ml-100k").rglob("u.data"))
    return np.loadtxt(path, dtype=np.int64, usecols=(0, 1, 2))


def test_u1_export_is_groupLens_u1(export_folds, ml100k, shared_data, tmp_path):
    folder = export_folds(ml100k, "u1", tmp_path)
    train = pd.read_csv(folder / "u1.train.csv")
    test = pd.read_csv(folder / "u1.test.csv")
    assert list(train.columns) == ["user", "item", "rating"]
    assert (len(train), len(test)) == (80_000, 20_000)
    raw = _raw_u_data(shared_data)
    np.testing.assert_array_equal(test.to_numpy(dtype=np.int64), raw[:20_000])
    np.testing.assert_array_equal(train.to_numpy(dtype=np.int64), raw[20_000:])
    folds = pd.read_csv(folder / "folds.csv")
    assert folds.to_dict("records") == [{"fold": "u1", "n_train": 80_000, "n_test": 20_000}]


def test_kfold_export_matches_sklearn_kfold(export_folds, ml100k, tmp_path):
    folder = export_folds(ml100k, "kfold", tmp_path, n_splits=5, seed=0)
    values = ml100k[["user", "item", "rating"]].to_numpy(dtype=np.float64)
    kfold = KFold(5, shuffle=True, random_state=0).split(values)
    for k, (train, test) in enumerate(kfold):
        got_test = pd.read_csv(folder / f"fold_{k}.test.csv").to_numpy(dtype=np.float64)
        np.testing.assert_array_equal(got_test, values[np.sort(test)])
        if k == 0:  # one training file is enough to check the complement
            got_train = pd.read_csv(folder / f"fold_{k}.train.csv").to_numpy(dtype=np.float64)
            np.testing.assert_array_equal(got_train, values[np.sort(train)])
