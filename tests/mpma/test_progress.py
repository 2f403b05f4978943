"""Progress bars and convergence traces of MPMA's fits, and the rating scale read from data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bayesgmm.mpma import MPMA, GibbsMPMA
from bayesgmm.mpma.baselines import GlobalMean
from bayesgmm.progress import progress_bar


def _ratings(seed=0, n_users=40, n_items=30, half=False):
    rng = np.random.default_rng(seed)
    u, v = rng.normal(size=(n_users, 2)), rng.normal(size=(n_items, 2))
    users, items = np.nonzero(rng.random((n_users, n_items)) < 0.6)
    raw = 3 + (u @ v.T)[users, items]
    stars = np.clip(np.round(2 * raw) / 2, 0.5, 5) if half else np.clip(np.round(raw), 1, 5)
    return pd.DataFrame({"user": users, "item": items, "rating": stars})


def test_progress_bar_draws_and_can_be_silenced(capsys):
    with progress_bar(3, "demo") as bar:
        for k in range(3):
            bar.advance(1, f"step {k}")
    err = capsys.readouterr().err
    assert "demo" in err and "3/3" in err and "step 2" in err
    with progress_bar(3, "quiet", enabled=False) as bar:
        bar.advance(1, "x")
        bar.finish()
    assert capsys.readouterr() == ("", "")


def test_map_em_progress_and_traces(capsys):
    data = _ratings()
    model = MPMA(2, n_warmup=4, max_iter=6, random_state=0).fit(data)
    err = capsys.readouterr().err
    total = 4 * 3 + 6  # warm-up, two local fits, the mixture EM
    assert "MPMA" in err and f"{total}/{total}" in err and "mixture: log post" in err
    assert set(model.local_traces_) == {"user", "item"}
    for trace in (model.warmup_trace_, *model.local_traces_.values(), model.trace_):
        assert 1 <= len(trace)
        assert np.all(np.diff(trace) >= -1e-8 * np.abs(trace[:-1]))  # EM never decreases it
    MPMA(2, n_warmup=4, max_iter=6, random_state=0, progressbar=False).fit(data)
    assert capsys.readouterr().err == ""


def test_pmf_has_no_local_traces():
    model = MPMA(2, components=("global",), max_iter=5, progressbar=False).fit(_ratings())
    assert model.local_traces_ == {}
    np.testing.assert_array_equal(model.trace_, model.warmup_trace_)


def test_gibbs_progress(capsys):
    data = _ratings(1)
    model = GibbsMPMA(2, n_burn=2, n_draws=3, random_state=0).fit(data)
    err = capsys.readouterr().err
    total = (2 + 3) * 3 * 2 + 1  # every component sampled twice (refit), then the weights
    assert "GibbsMPMA" in err and f"{total}/{total}" in err and "refit item: log lik" in err
    assert all(len(p.log_likelihood) == 5 for p in model.posteriors_)
    GibbsMPMA(2, n_burn=2, n_draws=3, random_state=0, progressbar=False).fit(data)
    assert capsys.readouterr().err == ""


def test_traces_and_scale_survive_save_load(tmp_path):
    data = _ratings(2, half=True)
    data.attrs["rating_scale"] = (0.5, 5.0)
    model = MPMA(2, n_warmup=3, max_iter=4, random_state=0, progressbar=False).fit(data)
    model.save(tmp_path / "m.nc")
    loaded = MPMA.load(tmp_path / "m.nc")
    assert loaded.local_traces_.keys() == model.local_traces_.keys()
    for name, trace in model.local_traces_.items():
        np.testing.assert_array_equal(loaded.local_traces_[name], trace)
    np.testing.assert_array_equal(loaded.rating_scale_, [0.5, 5.0])


def test_rating_scale_read_from_loader_attrs_and_data():
    data = _ratings(3, half=True)
    data = data[data["rating"].between(1.0, 4.5)].reset_index(drop=True)
    assert (data["rating"].min(), data["rating"].max()) == (1.0, 4.5)
    data.attrs["rating_scale"] = (0.5, 5.0)
    model = MPMA(2, max_iter=3, n_warmup=2, progressbar=False).fit(data)
    np.testing.assert_array_equal(model.rating_scale_, [0.5, 5.0])
    bare = data.copy()
    bare.attrs = {}
    inferred = MPMA(2, max_iter=3, n_warmup=2, progressbar=False).fit(bare)
    expected = [bare["rating"].min(), bare["rating"].max()]
    np.testing.assert_array_equal(inferred.rating_scale_, expected)
    pred = inferred.predict(bare["user"], bare["item"])
    assert pred.min() >= expected[0] and pred.max() <= expected[1]
    arrays = MPMA(2, max_iter=3, n_warmup=2, progressbar=False).fit(
        bare["user"].to_numpy(), bare["item"].to_numpy(), bare["rating"].to_numpy()
    )
    np.testing.assert_array_equal(arrays.rating_scale_, expected)
    explicit = MPMA(2, max_iter=3, n_warmup=2, rating_scale=(0, 10), progressbar=False)
    np.testing.assert_array_equal(explicit.fit(data).rating_scale_, [0.0, 10.0])
    np.testing.assert_array_equal(GlobalMean().fit(data).rating_scale_, [0.5, 5.0])


def test_rating_scale_cannot_be_read_from_constant_ratings():
    data = pd.DataFrame({"user": [0, 1, 2], "item": [0, 1, 2], "rating": 3.0})
    with pytest.raises(ValueError, match=r"pass rating_scale=\(low, high\)"):
        MPMA(1, components=("global",), progressbar=False).fit(data)


def test_saem_progress(capsys):
    """SAEM (the marginal MAP of the cross-check) shows a bar only when asked, with the
    same draws either way."""
    from bayesgmm.mpma.saem import saem_weights_sigmas

    model = MPMA(1, n_warmup=2, max_iter=3, random_state=0, progressbar=False).fit(_ratings())
    args = (model._state(), model.train_users_, model.train_items_)
    index = model._indices(args[1], args[2])
    ratings = _ratings()
    frame = ratings.set_index(["user", "item"]).loc[
        list(zip(model.user_ids_[args[1]], model.item_ids_[args[2]], strict=True))
    ]
    values = frame["rating"].to_numpy()
    quiet = saem_weights_sigmas(args[0], values, index, model.priors_, use_bias=True,
                                n_burn=3, n_average=2, seed=0)  # fmt: skip
    assert capsys.readouterr().err == ""
    loud = saem_weights_sigmas(args[0], values, index, model.priors_, use_bias=True,
                               n_burn=3, n_average=2, seed=0, progressbar=True)  # fmt: skip
    err = capsys.readouterr().err
    assert "SAEM" in err and "5/5" in err and "weights" in err
    np.testing.assert_array_equal(quiet.weights_trace, loud.weights_trace)
    assert quiet.weights_trace.shape == (5, 3)
