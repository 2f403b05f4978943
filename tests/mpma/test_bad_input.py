"""Bad inputs of MPMA and GibbsMPMA and their priors (issue 13's corpus): each gives an
error, or a warning, naming the parameter and the fix, before any fitting work."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from bayesgmm.mpma import MPMA, GibbsMPMA
from bayesgmm.mpma.em import MPMAPriors
from bayesgmm.mpma.estimator import UnseenIdWarning
from bayesgmm.mpma.gibbs import GibbsPriors


@pytest.fixture(scope="module")
def df():
    r = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "user": r.integers(1, 40, 1500),
            "item": r.integers(1, 60, 1500),
            "rating": r.integers(1, 6, 1500).astype(float),
        }
    )
    return frame.drop_duplicates(["user", "item"])


@pytest.fixture(scope="module")
def fitted(df):
    return MPMA(2, n_warmup=2, max_iter=3, random_state=0).fit(df)


# --------------------------------------------------------------- (16) seeds
@pytest.mark.parametrize("cls", [MPMA, GibbsMPMA])
@pytest.mark.parametrize(
    ("seed", "error"),
    [("abc", TypeError), (2.5, TypeError), (-1, ValueError), (2**40, ValueError)],
)
def test_bad_random_state_is_named(df, cls, seed, error):
    with pytest.raises(error, match=r"random_state must be None or an integer in \[0, 2\*\*32"):
        cls(2, random_state=seed).fit(df)


# -------------------------------------------------------------- (18) priors
@pytest.mark.parametrize(
    ("kind", "fields", "match"),
    [
        (GibbsPriors, {"beta0": -1}, r"GibbsPriors.beta0 must be > 0 \(a finite number\)"),
        (
            GibbsPriors,
            {"noise_shape": -1},
            r"GibbsPriors.noise_shape must be > 0 \(a finite number\)",
        ),
        (GibbsPriors, {"noise_rate": 0}, r"GibbsPriors.noise_rate must be > 0 \(a finite number\)"),
        (GibbsPriors, {"wishart_scale": -1}, r"GibbsPriors.wishart_scale must be > 0"),
        (GibbsPriors, {"noise_sd": 0.0}, r"GibbsPriors.noise_sd must be > 0 or None"),
        (GibbsPriors, {"weights_alpha": 0.5}, r"GibbsPriors.weights_alpha must be >= 1"),
        (GibbsPriors, {"beta0": np.nan}, r"GibbsPriors.beta0 must be > 0 \(a finite number\)"),
        (MPMAPriors, {"sigma_min": -1}, r"MPMAPriors.sigma_min must be > 0 \(a finite number\)"),
        (MPMAPriors, {"factor_penalty": -1}, r"MPMAPriors.factor_penalty must be > 0"),
        (MPMAPriors, {"bias_penalty": 0}, r"MPMAPriors.bias_penalty must be > 0"),
        (MPMAPriors, {"offset_sd": 0}, r"MPMAPriors.offset_sd must be > 0 \(a finite number\)"),
        (MPMAPriors, {"sigma_a": np.inf}, r"MPMAPriors.sigma_a must be > 0 \(a finite number\)"),
        (MPMAPriors, {"offset_mu": np.nan}, r"MPMAPriors.offset_mu must be a finite number"),
        (MPMAPriors, {"weights_alpha": 0.5}, r"MPMAPriors.weights_alpha must be >= 1"),
    ],
)
def test_invalid_prior_fields_are_named(kind, fields, match):
    with pytest.raises(ValueError, match=match):
        kind(**fields)


@pytest.mark.parametrize("kind", [GibbsPriors, MPMAPriors])
def test_non_numeric_prior_field_is_a_type_error(kind):
    with pytest.raises(
        TypeError, match=rf"{kind.__name__}.weights_alpha must be >= 1 \(a finite number\)"
    ):
        kind(weights_alpha="2")


def test_invalid_priors_given_as_dict_fail_before_fitting(df):
    model = GibbsMPMA(2, priors={"wishart_scale": -1.0})
    with pytest.raises(ValueError, match=r"GibbsPriors\.wishart_scale must be"):
        model.fit(df)
    assert not hasattr(model, "weights_")
    with pytest.raises(ValueError, match=r"MPMAPriors\.offset_sd must be"):
        MPMA(2, priors={"offset_sd": 0.0}).fit(df)


# -------------------------------------------------------- (26) rank vs data
def test_rank_above_the_data_is_refused_at_once(df):
    start = time.perf_counter()
    with pytest.raises(ValueError, match=r"n_factors=500 exceeds .* at most .* = \d+ factors"):
        GibbsMPMA(500, n_burn=3, n_draws=5).fit(df.iloc[:300])
    assert time.perf_counter() - start < 5.0
    with pytest.raises(ValueError, match="n_factors=500 exceeds"):
        MPMA(500).fit(df.iloc[:300])


@pytest.mark.parametrize("name", ["n_user_groups", "n_item_groups"])
def test_more_groups_than_entities_is_refused(df, name):
    with pytest.raises(ValueError, match=f"{name}=1000 exceeds the"):
        MPMA(2, **{name: 1000}).fit(df)


# ---------------------------------------------------------- (25) unseen ids
def test_ids_of_another_type_warn_with_count_and_hint(fitted):
    with pytest.warns(
        UnseenIdWarning, match=r"2 of 2 user ids and 2 of 2 item ids .*astype\(int\)"
    ):
        pred = fitted.predict(["1", "2"], ["1", "2"])
    np.testing.assert_allclose(pred, fitted.factors_[0].offset)


def test_some_unseen_ids_warn_with_count(fitted):
    with pytest.warns(UnseenIdWarning, match="1 of 3 user ids were not seen in fit") as record:
        fitted.predict([1, 2, 1000], [1, 2, 3])
    assert "convert" not in str(record[0].message)


def test_seen_ids_do_not_warn(fitted, recwarn):
    fitted.predict([1, 2], [1, 2])
    assert not [w for w in recwarn if issubclass(w.category, UnseenIdWarning)]
