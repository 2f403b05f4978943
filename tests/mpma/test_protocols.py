"""Protocols (bayesgmm.mpma.protocols) and cross-validation (bayesgmm.mpma.evaluation).

The GroupLens splits are checked against GroupLens' own files: the counts of the ml-100k
README (20,000 / 80,000 per u-split, 9,430 test ratings for ua and ub), and lines of the
distributed ``u1.test``, ``u5.test``, ``ua.test`` and ``ub.test`` (copied from those files,
sorted by user and item as GroupLens ships them). The paired comparison is checked against
scipy.stats.ttest_rel.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.model_selection import KFold

from bayesgmm.datasets import load_movielens
from bayesgmm.mpma import MPMA
from bayesgmm.mpma.baselines import GlobalMean
from bayesgmm.mpma.evaluation import (
    CVResult,
    compare_methods,
    cross_validate,
    paired_comparison,
    summarize,
)
from bayesgmm.mpma.protocols import PROTOCOLS, Protocol, get_protocol


@pytest.fixture(scope="module")
def ml100k(shared_data):
    return load_movielens("100k", data_home=shared_data / "ml-100k", download=False)


def _pairs(frame: pd.DataFrame, rows: np.ndarray) -> set[tuple[int, int]]:
    sub = frame.iloc[rows]
    return set(zip(sub["user"].tolist(), sub["item"].tolist(), strict=True))


def _items_of(frame: pd.DataFrame, rows: np.ndarray, user: int) -> list[int]:
    sub = frame.iloc[rows]
    return sorted(sub.loc[sub["user"] == user, "item"].tolist())


# Lines of GroupLens' distributed u1.test and ua.test (user: items), from the files.
U1_TEST = {
    3: [245, 264, 272, 294, 299, 300, 307, 318, 323, 324, 327, 328, 330, 331, 332, 334, 335,
        337, 341, 343, 345, 348, 349, 350, 351, 354],
    4: [50, 260, 264, 288, 294, 303, 354, 356, 357, 361],
    9: [6, 286, 298, 340, 479, 487, 507, 521, 527, 691],
}  # fmt: skip
U1_TEST_LINES = {2: 22, 3: 26, 4: 10, 8: 29, 9: 10}
U5_TEST = {
    1: [3, 13, 15, 18, 19, 28, 29, 52, 59, 83, 88, 94, 111, 122, 126, 152, 172, 204, 207,
        231, 244],
    2: [275, 286, 296, 302],
    3: [340, 346, 353],
    4: [301, 360],
}  # fmt: skip
UA_TEST = {
    1: [20, 33, 61, 117, 155, 160, 171, 189, 202, 265],
    2: [13, 50, 251, 280, 281, 290, 292, 297, 312, 314],
    3: [245, 294, 323, 328, 331, 332, 334, 335, 337, 343],
    85: [25, 51, 228, 259, 427, 433, 507, 588, 642, 1065],
}
UB_TEST = {
    1: [17, 47, 64, 90, 92, 113, 222, 227, 228, 253],
    2: [257, 279, 299, 301, 303, 307, 308, 313, 315, 316],
    85: [13, 83, 187, 272, 277, 282, 298, 501, 604, 647],
}


def test_u_splits_reproduce_grouplens(ml100k):
    splits = list(get_protocol("u").split(ml100k))
    assert get_protocol("u").fold_names == ["u1", "u2", "u3", "u4", "u5"]
    tests = []
    for f, (train, test) in enumerate(splits, start=1):
        assert (len(train), len(test)) == (80_000, 20_000)
        assert np.intersect1d(train, test).size == 0
        # mku.sh: head -$((f*20000)) u.data | tail -20000
        np.testing.assert_array_equal(test, np.arange((f - 1) * 20_000, f * 20_000))
        tests.append(test)
    union = np.concatenate(tests)
    assert np.unique(union).size == 100_000  # disjoint test sets covering every rating
    train, test = next(get_protocol("u1").split(ml100k))
    for user, items in U1_TEST.items():
        assert _items_of(ml100k, test, user) == items
    for user, n in U1_TEST_LINES.items():
        assert len(_items_of(ml100k, test, user)) == n
    train, test = next(get_protocol("u5").split(ml100k))  # the last block: tail -20000
    for user, items in U5_TEST.items():
        assert _items_of(ml100k, test, user) == items


def test_ua_ub_reproduce_grouplens(ml100k):
    (ua_train, ua_test), = get_protocol("ua").split(ml100k)
    (ub_train, ub_test), = get_protocol("ub").split(ml100k)
    for train, test in ((ua_train, ua_test), (ub_train, ub_test)):
        assert len(test) == 9_430 and len(train) == 90_570
        assert np.intersect1d(train, test).size == 0
        per_user = ml100k.iloc[test]["user"].value_counts()
        assert len(per_user) == 943 and (per_user == 10).all()
    assert np.intersect1d(ua_test, ub_test).size == 0  # "ua.test and ub.test are disjoint"
    for user, items in UA_TEST.items():
        assert _items_of(ml100k, ua_test, user) == items
    assert _items_of(ml100k, ua_test, 86)[:3] == [258, 286, 300]
    for user, items in UB_TEST.items():
        assert _items_of(ml100k, ub_test, user) == items


@pytest.mark.parametrize("name", ["u1", "u", "ua", "ub"])
def test_grouplens_splits_refuse_a_reordered_frame(ml100k, name):
    with pytest.raises(ValueError, match=r"order GroupLens distributes it"):
        next(get_protocol(name).split(ml100k.sort_values(["user", "item"])))
    with pytest.raises(ValueError, match=r"100,000 lines"):
        next(get_protocol(name).split(ml100k.iloc[:5000]))


def _check_partition(protocol: Protocol, frame: pd.DataFrame) -> list[np.ndarray]:
    tests = []
    for train, test in protocol.split(frame):
        assert np.intersect1d(train, test).size == 0
        assert len(train) + len(test) == len(frame)
        tests.append(test)
    return tests


def test_kfold_partitions_and_is_seeded():
    frame = pd.DataFrame({"user": np.arange(103) % 7, "item": np.arange(103), "rating": 3.0})
    tests = _check_partition(get_protocol("kfold", n_splits=4, seed=1), frame)
    assert sorted(np.concatenate(tests).tolist()) == list(range(103))
    assert [len(t) for t in tests] == [26, 26, 26, 25]
    again = [t for _, t in get_protocol("kfold", n_splits=4, seed=1).split(frame)]
    other = [t for _, t in get_protocol("kfold", n_splits=4, seed=2).split(frame)]
    assert all(np.array_equal(a, b) for a, b in zip(tests, again, strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(tests, other, strict=True))
    expected = [np.sort(t) for _, t in KFold(4, shuffle=True, random_state=1).split(frame)]
    assert all(np.array_equal(a, b) for a, b in zip(tests, expected, strict=True))


def test_rendle2019_is_ten_fold_with_myfm_seed():
    frame = pd.DataFrame({"user": np.arange(1000) % 13, "item": np.arange(1000), "rating": 4.0})
    protocol = get_protocol("rendle2019")
    assert protocol.get_n_splits() == 10
    tests = _check_partition(protocol, frame)
    assert [len(t) for t in tests] == [100] * 10
    expected = [np.sort(t) for _, t in KFold(10, shuffle=True, random_state=42).split(frame)]
    assert all(np.array_equal(a, b) for a, b in zip(tests, expected, strict=True))


def test_random_90_10_repeats():
    frame = pd.DataFrame({"user": np.arange(995) % 11, "item": np.arange(995), "rating": 2.0})
    protocol = get_protocol("random-90-10", n_repeats=3, seed=5)
    assert protocol.fold_names == ["repeat 0", "repeat 1", "repeat 2"]
    tests = _check_partition(protocol, frame)
    assert [len(t) for t in tests] == [100, 100, 100]  # ceil(0.1 * 995)
    assert not np.array_equal(tests[0], tests[1])
    again = [t for _, t in get_protocol("random-90-10", n_repeats=3, seed=5).split(frame)]
    assert all(np.array_equal(a, b) for a, b in zip(tests, again, strict=True))


def test_protocol_registry_and_errors():
    assert {"u1", "u5", "u", "ua", "ub", "kfold", "random-90-10", "rendle2019"} <= set(PROTOCOLS)
    with pytest.raises(ValueError, match="unknown protocol 'u6'"):
        get_protocol("u6")
    with pytest.raises(ValueError, match="n_splits must be an integer >= 2"):
        get_protocol("kfold", n_splits=1)
    with pytest.raises(ValueError, match="seed must be an int"):
        get_protocol("kfold", seed=None)
    with pytest.raises(ValueError, match="protocol 'ua'"):
        get_protocol("ua", n_splits=3)
    with pytest.raises(ValueError, match="columns 'user', 'item'"):
        next(get_protocol("kfold").split(np.zeros((10, 3))))


# ------------------------------------------------------------------------ cross_validate


def test_cross_validate_global_mean_on_u1_matches_closed_form(ml100k, capsys):
    result = cross_validate(GlobalMean(), ml100k, "u1", progressbar=False)
    assert capsys.readouterr().err == ""
    train, test = ml100k.iloc[20_000:], ml100k.iloc[:20_000]
    residual = test["rating"].to_numpy() - train["rating"].mean()
    row = result.per_fold.iloc[0]
    assert (row["fold"], row["n_train"], row["n_test"]) == ("u1", 80_000, 20_000)
    assert row["rmse"] == pytest.approx(np.sqrt(np.mean(residual**2)), rel=1e-12)
    assert row["mae"] == pytest.approx(np.mean(np.abs(residual)), rel=1e-12)
    assert result.method == "GlobalMean" and result.protocol == "u1"


def test_cross_validate_progress_bar_and_summary(ml100k, capsys):
    result = cross_validate(GlobalMean, ml100k, "u", name="mean", progressbar=True)
    err = capsys.readouterr().err
    assert "mean on u" in err and "5/5" in err and "RMSE" in err
    summary = result.summary()
    rmses = result.per_fold["rmse"].to_numpy()
    assert summary["rmse_mean"] == pytest.approx(rmses.mean())
    assert summary["rmse_sd"] == pytest.approx(np.std(rmses, ddof=1))
    assert summary["n_folds"] == 5
    assert "mean on u (5 fold(s)): RMSE" in str(result)


def _small_ratings(seed=0, n_users=40, n_items=30):
    rng = np.random.default_rng(seed)
    u, v = rng.normal(size=(n_users, 2)), rng.normal(size=(n_items, 2))
    users, items = np.nonzero(rng.random((n_users, n_items)) < 0.6)
    stars = np.clip(np.round(3 + (u @ v.T)[users, items]), 1, 5)
    return pd.DataFrame({"user": users, "item": items, "rating": stars})


def test_cross_validate_instance_equals_factory_and_silences_inner_bars(capsys):
    data = _small_ratings()
    model = MPMA(2, max_iter=5, n_warmup=3, random_state=0)  # progressbar=True by default
    by_instance = cross_validate(model, data, "kfold", n_splits=3, progressbar=False)
    by_factory = cross_validate(
        lambda: MPMA(2, max_iter=5, n_warmup=3, random_state=0), data, "kfold", n_splits=3,
        progressbar=False,
    )  # fmt: skip
    assert capsys.readouterr().err == ""  # the models' own bars are switched off
    np.testing.assert_array_equal(by_instance.per_fold["rmse"], by_factory.per_fold["rmse"])
    assert not hasattr(model, "weights_")  # the instance given is not fitted


def test_compare_methods_table():
    data = _small_ratings(1)
    per_fold = compare_methods(
        data, {"mean": GlobalMean, "pmf": MPMA(2, components=("global",), max_iter=5)},
        "kfold", n_splits=3, progressbar=False,
    )  # fmt: skip
    assert per_fold.groupby("method").size().to_dict() == {"mean": 3, "pmf": 3}
    alone = cross_validate(GlobalMean, data, "kfold", n_splits=3, progressbar=False)
    rows = per_fold[per_fold["method"] == "mean"]
    np.testing.assert_array_equal(rows["rmse"], alone.per_fold["rmse"])  # the same folds
    table = summarize(per_fold)
    assert table.loc["mean", "rmse_mean"] == pytest.approx(alone.summary()["rmse_mean"])
    cmp = paired_comparison(per_fold[per_fold["method"] == "pmf"], rows)
    assert (cmp.method_a, cmp.method_b, cmp.protocol) == ("pmf", "mean", "kfold")
    np.testing.assert_allclose(
        cmp.differences.to_numpy(),
        per_fold.loc[per_fold["method"] == "pmf", "rmse"].to_numpy() - rows["rmse"].to_numpy(),
    )


# ------------------------------------------------------------------------- paired comparison


def _result(name: str, values, protocol="kfold") -> CVResult:
    k = len(values)
    frame = pd.DataFrame(
        {"fold": [f"fold {i}" for i in range(k)], "n_train": 90, "n_test": 10,
         "rmse": values, "mae": values, "fit_time": 1.0}
    )  # fmt: skip
    return CVResult(name, protocol, frame)


def test_paired_comparison_matches_scipy_ttest_rel():
    rng = np.random.default_rng(3)
    a = 0.9 + 0.01 * rng.standard_normal(10)
    b = a + 0.003 + 0.002 * rng.standard_normal(10)
    cmp = paired_comparison(_result("A", a), _result("B", b), confidence=0.9)
    reference = stats.ttest_rel(a, b)
    assert cmp.t == pytest.approx(reference.statistic, rel=1e-12)
    assert cmp.p_value == pytest.approx(reference.pvalue, rel=1e-10)
    assert cmp.df == 9
    ci = reference.confidence_interval(confidence_level=0.9)
    assert cmp.ci == pytest.approx((ci.low, ci.high), rel=1e-10)
    np.testing.assert_allclose(cmp.differences.to_numpy(), a - b)
    assert cmp.n_better == int(np.sum(a < b))
    assert "A - B, rmse on kfold (10 folds)" in str(cmp)


def test_paired_comparison_refuses_other_folds():
    with pytest.raises(ValueError, match="not on the same folds"):
        paired_comparison(_result("A", [1.0, 2.0, 3.0]), _result("B", [1.0, 2.0]))
    with pytest.raises(ValueError, match="not on the same folds"):
        paired_comparison(_result("A", [1.0, 2.0]), _result("B", [1.0, 2.0], protocol="u"))
    with pytest.raises(ValueError, match="at least 2 folds"):
        paired_comparison(_result("A", [1.0]), _result("B", [2.0]))
    with pytest.raises(ValueError, match="metric must be one of"):
        paired_comparison(_result("A", [1.0, 2.0]), _result("B", [1.0, 2.0]), metric="r2")
