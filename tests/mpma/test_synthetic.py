"""make_ratings: shape, grid, activity bounds, determinism and the planted noise model."""

import math

import numpy as np
import pandas as pd
import pytest

from bayesgmm.mpma.synthetic import make_ratings

SHAPE = dict(n_ratings=40_000, n_users=700, n_items=400)


@pytest.fixture(scope="module")
def data():
    return make_ratings(**SHAPE, min_user_ratings=10, seed=3)


def test_shape_grid_and_activity(data):
    frame = data.ratings
    assert list(frame.columns) == ["user", "item", "rating"]
    assert len(frame) == SHAPE["n_ratings"]
    assert frame["user"].dtype == np.int64 and frame["item"].dtype == np.int64
    assert frame.attrs["rating_scale"] == (0.5, 5.0)
    assert not frame.duplicated(["user", "item"]).any()
    assert frame["user"].between(0, SHAPE["n_users"] - 1).all()
    assert frame["item"].between(0, SHAPE["n_items"] - 1).all()
    stars = frame["rating"].to_numpy()
    np.testing.assert_array_equal(np.unique(stars), np.arange(0.5, 5.01, 0.5))
    per_user = np.bincount(frame["user"], minlength=SHAPE["n_users"])
    assert per_user.min() >= 10 and per_user.max() <= int(0.7 * SHAPE["n_items"])
    assert np.median(per_user) < 0.8 * per_user.mean()  # long tail: median below the mean
    per_item = np.bincount(frame["item"], minlength=SHAPE["n_items"])
    assert per_item.max() > 10 * np.median(per_item)
    assert data.mean.shape == (len(frame),)
    assert data.user_groups.shape == (SHAPE["n_users"],)
    assert set(np.unique(data.item_groups)) == set(range(4))


def test_same_seed_same_ratings_other_seed_other_ratings(data):
    again = make_ratings(**SHAPE, min_user_ratings=10, seed=3)
    pd.testing.assert_frame_equal(again.ratings, data.ratings)
    np.testing.assert_array_equal(again.mean, data.mean)
    other = make_ratings(**SHAPE, min_user_ratings=10, seed=4)
    assert not np.array_equal(other.ratings["rating"], data.ratings["rating"])


def test_ratings_are_the_rounded_noisy_mean(data):
    # Three noise sds from the bounds (clipping < 0.2%), rating - mean = noise + rounding
    # error: mean zero and variance noise_sd**2 + step**2 / 12 (Sheppard: the noise sd is
    # wider than the 0.5 grid, so the rounding error is uniform and independent of it).
    inside = (data.mean > 2.5) & (data.mean < 3.0)
    residual = data.ratings["rating"].to_numpy()[inside] - data.mean[inside]
    expected = math.sqrt(data.noise_sd**2 + 0.5**2 / 12)
    assert abs(residual.mean()) < 0.02
    assert residual.std() == pytest.approx(expected, rel=0.02)
    # The planted structure carries signal: the mean explains most of the variance.
    assert np.corrcoef(data.mean, data.ratings["rating"])[0, 1] > 0.7


def test_whole_star_grid_and_bad_arguments():
    whole = make_ratings(2_000, 100, 60, rating_scale=(1, 5), step=1, min_user_ratings=5, seed=0)
    assert set(np.unique(whole.ratings["rating"])) <= {1.0, 2.0, 3.0, 4.0, 5.0}
    with pytest.raises(ValueError, match=r"n_ratings=.*does not fit"):
        make_ratings(10_000, 10, 200, seed=0)  # 10 users hold at most 10 * 140
    with pytest.raises(ValueError, match="whole number of steps"):
        make_ratings(2_000, 100, 60, rating_scale=(1, 5), step=0.3, min_user_ratings=5)
    with pytest.raises(ValueError, match="min_user_ratings"):
        make_ratings(2_000, 100, 10, min_user_ratings=8)
