"""MPMA: maths functions against naive references, PMF reduction, estimator API, bad input."""

from __future__ import annotations

import types

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy import optimize, stats

from bayesgmm.mpma import MPMA, GlobalMean, MPMAPriors, bias_baseline, pmf
from bayesgmm.mpma.als import Factors, als_sweep, factor_means
from bayesgmm.mpma.crosscheck import crosscheck_mpma, densest_subsample
from bayesgmm.mpma.em import (
    COMPONENTS,
    component_index,
    e_step,
    m_step_sigma,
    m_step_weights,
)
from tests.helpers import low_rank_ratings

N_USERS, N_ITEMS = 30, 25


def synthetic_ratings(seed=0, density=0.6, rank=2):
    """Whole-star ratings from a known biased low-rank matrix; every user and item present."""
    return low_rank_ratings(
        seed,
        n_users=N_USERS,
        n_items=N_ITEMS,
        rank=rank,
        density=density,
        offset=3.5,
        user_sd=0.5,
        item_sd=0.3,
        noise=0.5,
        cover_all=True,
        whole_stars=True,
    )


@pytest.fixture(scope="module")
def data():
    return synthetic_ratings()[0]


# ----------------------------------------------------------------------------- naive ALS


def naive_sweep(f, ratings, w, rows, cols, n_rows, n_cols, priors, precisions, use_bias=True):
    """One ALS sweep written plainly: a ridge solve per row, then per column, then offset.

    ``precisions`` = (factor precision, bias precision) of the prior."""
    k = f.row_factors.shape[1]
    precision = np.diag([precisions[0]] * k + [precisions[1]] * use_bias)

    def solve_side(own, own_bias, other, other_bias, own_idx, other_idx, n_own):
        for r in range(n_own):
            sel = own_idx == r
            x = other[other_idx[sel]]
            if use_bias:
                x = np.hstack([x, np.ones((x.shape[0], 1))])
            t = ratings[sel] - f.offset - other_bias[other_idx[sel]]
            theta = np.linalg.solve(precision + (x * w[sel, None]).T @ x, x.T @ (w[sel] * t))
            own[r] = theta[:k]
            if use_bias:
                own_bias[r] = theta[k]

    solve_side(f.row_factors, f.row_bias, f.col_factors, f.col_bias, rows, cols, n_rows)
    solve_side(f.col_factors, f.col_bias, f.row_factors, f.row_bias, cols, rows, n_cols)
    resid = ratings - f.row_bias[rows] - f.col_bias[cols]
    resid = resid - np.sum(f.row_factors[rows] * f.col_factors[cols], axis=1)
    p0 = priors.offset_sd**-2
    f.offset = (w @ resid + p0 * priors.offset_mu) / (w.sum() + p0)


def random_factors(rng, n_rows, n_cols, k):
    return Factors(
        3.0,
        rng.normal(scale=0.3, size=n_rows),
        rng.normal(scale=0.3, size=n_cols),
        rng.normal(scale=0.3, size=(n_rows, k)),
        rng.normal(scale=0.3, size=(n_cols, k)),
    )


@pytest.mark.parametrize("name", COMPONENTS)
def test_weighted_als_sweep_matches_naive_solves(data, name):
    rng = np.random.default_rng(1)
    users, items = data["user"].to_numpy(), data["item"].to_numpy()
    groups_u = rng.integers(0, 3, N_USERS)
    groups_i = rng.integers(0, 2, N_ITEMS)
    ix = component_index(name, users, items, N_USERS, N_ITEMS, groups_u, groups_i)
    ratings = data["rating"].to_numpy()
    w = rng.uniform(0.1, 2.0, size=ratings.size)
    priors = MPMAPriors()
    fast = random_factors(rng, ix.n_rows, ix.n_cols, 3)
    slow = fast.copy()
    als_sweep(
        fast,
        ratings,
        w,
        ix.rows,
        ix.cols,
        ix.by_row,
        ix.by_col,
        factor_precision=0.4**-2,
        bias_precision=0.7**-2,
        offset_prior=(priors.offset_mu, priors.offset_sd),
        use_bias=True,
    )
    naive_sweep(slow, ratings, w, ix.rows, ix.cols, ix.n_rows, ix.n_cols, priors, (6.25, 0.7**-2))
    for field in ("row_bias", "col_bias", "row_factors", "col_factors"):
        np.testing.assert_allclose(getattr(fast, field), getattr(slow, field), atol=1e-12)
    assert fast.offset == pytest.approx(slow.offset, abs=1e-12)


def test_component_index_layout():
    users, items = np.array([0, 1, 2, 1]), np.array([0, 1, 1, 2])
    groups_u, groups_i = np.array([0, 1, 1]), np.array([1, 0, 1])
    ix = component_index("user", users, items, 3, 3, groups_u, groups_i)
    np.testing.assert_array_equal(ix.cols, [0, 4, 4, 5])  # group * n_items + item
    assert (ix.n_rows, ix.n_cols) == (3, 6)
    ix = component_index("item", users, items, 3, 3, groups_u, groups_i)
    np.testing.assert_array_equal(ix.rows, [3, 1, 2, 4])  # group * n_users + user
    ordered = ix.by_row.order
    np.testing.assert_array_equal(np.sort(ix.rows[ordered]), ix.rows[ordered])


# ------------------------------------------------------------------------ E and M steps


def test_e_step_matches_scipy():
    rng = np.random.default_rng(2)
    r = rng.integers(1, 6, 50).astype(float)
    means = rng.uniform(1, 5, size=(50, 3))
    weights, sigmas = np.array([0.2, 0.5, 0.3]), np.array([0.4, 0.9, 1.5])
    dens = weights * stats.norm.pdf(r[:, None], means, sigmas)
    resp, log_lik = e_step(r, means, weights, sigmas)
    np.testing.assert_allclose(resp, dens / dens.sum(axis=1, keepdims=True), rtol=1e-12)
    assert log_lik == pytest.approx(np.log(dens.sum(axis=1)).sum(), rel=1e-12)
    # log space: every density underflows (exp(-800)) yet the responsibilities are finite
    resp, log_lik = e_step(np.array([60.0]), np.zeros((1, 3)), weights, sigmas)
    assert np.isfinite(log_lik) and resp[0].argmax() == 2 and resp.sum() == pytest.approx(1)


def test_m_steps_maximise_the_expected_complete_log_posterior():
    rng = np.random.default_rng(3)
    r = rng.integers(1, 6, 200).astype(float)
    means = rng.uniform(1, 5, size=(200, 3))
    resp = rng.dirichlet(np.ones(3), size=200)
    a, b, floor = 2.0, 1.0, 0.3
    # factors on the noise scale: n values whose penalised sum of squares is `penalty`
    penalty, n_values = np.array([4.0, 0.5, 30.0]), np.array([10, 3, 60])
    sig = m_step_sigma(r, means, resp, a, b, floor, penalty, n_values)
    for c in range(3):

        def neg_q(var, c=c):
            ll = resp[:, c] @ stats.norm.logpdf(r, means[:, c], np.sqrt(var))
            theta = np.sqrt(penalty[c] / n_values[c])  # any values with that sum of squares
            prior = stats.norm.logpdf(np.full(n_values[c], theta), 0, np.sqrt(var)).sum()
            return -(ll + prior + stats.invgamma.logpdf(var, a, scale=b))

        best = optimize.minimize_scalar(
            neg_q, bounds=(floor**2, 20.0), method="bounded", options={"xatol": 1e-12}
        )
        assert sig[c] ** 2 == pytest.approx(best.x, rel=1e-6)
    # the floor binds when the weighted residuals are tiny
    tight = m_step_sigma(means[:, 0], means, resp, a, 0.0, floor)
    assert tight[0] == pytest.approx(floor)

    alpha = 3.0
    w = m_step_weights(resp, alpha)

    def neg_q_w(logits):
        p = np.exp(logits - logits.max())
        p /= p.sum()
        return -(resp.sum(axis=0) @ np.log(p) + (alpha - 1) * np.log(p).sum())

    best = optimize.minimize(neg_q_w, np.zeros(3), tol=1e-12)
    p = np.exp(best.x - best.x.max())
    np.testing.assert_allclose(w, p / p.sum(), rtol=1e-5)
    with pytest.raises(ValueError, match="weights_alpha"):
        m_step_weights(np.c_[np.ones(5), np.zeros(5)], 0.5)


@pytest.mark.parametrize("refine_factors", [True, False])
def test_map_em_trace_never_decreases(data, refine_factors):
    model = MPMA(
        2, n_warmup=3, max_iter=40, tol=0.0, refine_factors=refine_factors, random_state=0
    ).fit(data)
    steps = np.diff(model.trace_)
    assert np.all(steps >= -1e-9 * np.abs(model.trace_[:-1])), steps.min()
    assert model.weights_.sum() == pytest.approx(1.0)
    assert np.all(model.sigmas_ >= MPMAPriors().sigma_min - 1e-12)


# ------------------------------------------------------------------------ PMF reduction


def pmf_negative_log_posterior(theta, users, items, r, k, priors):
    """PMF with biases, written from the model definition (no bayesgmm code)."""
    m, rest = theta[0], theta[1:]
    a, rest = rest[:N_USERS], rest[N_USERS:]
    b, rest = rest[:N_ITEMS], rest[N_ITEMS:]
    u, rest = rest[: N_USERS * k].reshape(N_USERS, k), rest[N_USERS * k :]
    v, var = rest[: N_ITEMS * k].reshape(N_ITEMS, k), rest[-1]
    mean = m + a[users] + b[items] + np.sum(u[users] * v[items], axis=1)
    lp = stats.norm.logpdf(r, mean, np.sqrt(var)).sum()
    lp += stats.invgamma.logpdf(var, priors.sigma_a, scale=priors.sigma_b)
    lp += stats.norm.logpdf(m, priors.offset_mu, priors.offset_sd)
    sd = np.sqrt(var)  # biases and factors are on the noise scale
    lp += stats.norm.logpdf(np.r_[a, b], 0, sd / np.sqrt(priors.bias_penalty)).sum()
    factors = np.r_[u.ravel(), v.ravel()]
    lp += stats.norm.logpdf(factors, 0, sd / np.sqrt(priors.factor_penalty)).sum()
    return -lp


def test_mpma_without_local_components_is_pmf(data):
    """Global component alone == an independently written PMF MAP (same init, same sweeps),
    and its fixed point is a stationary point of the PMF log posterior written above."""
    k, seed, n_iter = 2, 5, 25
    priors = MPMAPriors(factor_penalty=4.0, bias_penalty=2.5)
    users, items = data["user"].to_numpy(), data["item"].to_numpy()
    r = data["rating"].to_numpy()
    model = MPMA(
        k, components=("global",), priors=priors, max_iter=n_iter, tol=0.0, random_state=seed
    ).fit(data)

    rng = np.random.default_rng(seed)  # the documented initialisation
    ref = Factors(
        r.mean(),
        np.zeros(N_USERS),
        np.zeros(N_ITEMS),
        0.1 * rng.standard_normal((N_USERS, k)),
        0.1 * rng.standard_normal((N_ITEMS, k)),
    )
    lf, lb = priors.factor_penalty, priors.bias_penalty
    for _ in range(n_iter):
        mean = factor_means(ref, users, items)
        ss = lf * (np.sum(ref.row_factors**2) + np.sum(ref.col_factors**2))
        ss += lb * (np.sum(ref.row_bias**2) + np.sum(ref.col_bias**2))
        n_values = (N_USERS + N_ITEMS) * (k + 1)
        var = ((r - mean) @ (r - mean) + ss + 2 * priors.sigma_b) / (
            r.size + n_values + 2 * (priors.sigma_a + 1)
        )
        var = max(var, priors.sigma_min**2)
        w = np.full(r.size, 1 / var)
        naive_sweep(ref, r, w, users, items, N_USERS, N_ITEMS, priors, (lf / var, lb / var))
    fitted = model.factors_[0]
    assert model.weights_ == pytest.approx([1.0])
    assert model.sigmas_[0] == pytest.approx(np.sqrt(var), rel=1e-10)
    for field in ("row_bias", "col_bias", "row_factors", "col_factors"):
        np.testing.assert_allclose(getattr(fitted, field), getattr(ref, field), atol=1e-9)

    converged = MPMA(
        k, components=("global",), priors=priors, max_iter=5000, tol=1e-14, random_state=seed
    ).fit(data)
    f = converged.factors_[0]
    theta = np.r_[
        f.offset,
        f.row_bias,
        f.col_bias,
        f.row_factors.ravel(),
        f.col_factors.ravel(),
        converged.sigmas_[0] ** 2,
    ]
    objective = lambda t: pmf_negative_log_posterior(t, users, items, r, k, priors)  # noqa: E731
    grad = optimize.approx_fprime(theta, objective, 1e-7)
    assert np.abs(grad).max() < 2e-3, np.abs(grad).max()
    # L-BFGS on the independent objective cannot improve on the MPMA fixed point
    polished = optimize.minimize(
        objective,
        theta,
        method="L-BFGS-B",
        bounds=[(None, None)] * (theta.size - 1) + [(1e-6, None)],
    )
    assert objective(theta) - polished.fun < 1e-6 * abs(polished.fun)


def test_bias_baseline_and_pmf_factories(data):
    bias = bias_baseline(max_iter=30).fit(data)
    assert bias.factors_[0].row_factors.shape == (N_USERS, 0)
    assert pmf(3).set_params(max_iter=5).fit(data).components_ == ("global",)
    assert GlobalMean().fit(data).predict([0, 1], [0, 1]) == pytest.approx([data.rating.mean()] * 2)


# ------------------------------------------------------------------------ estimator API


@pytest.fixture(scope="module")
def fitted(data):
    return MPMA(2, n_warmup=5, max_iter=30, random_state=0).fit(data)


def test_fit_on_arrays_equals_fit_on_frame(data, fitted):
    again = MPMA(2, n_warmup=5, max_iter=30, random_state=0).fit(
        data["user"].to_numpy(), data["item"].to_numpy(), data["rating"].to_numpy()
    )
    np.testing.assert_array_equal(again.weights_, fitted.weights_)
    np.testing.assert_array_equal(again.predict([0, 3], [1, 2]), fitted.predict([0, 3], [1, 2]))


def test_predict_is_the_weighted_component_mean_clipped(data, fitted):
    u, i = data["user"].to_numpy(), data["item"].to_numpy()
    expected = np.clip(fitted.component_means(u, i) @ fitted.weights_, 1, 5)
    np.testing.assert_allclose(fitted.predict(u, i), expected, rtol=1e-14)
    assert fitted.rmse(data) == pytest.approx(np.sqrt(np.mean((expected - data.rating) ** 2)))
    assert fitted.mae(data) == pytest.approx(np.mean(np.abs(expected - data.rating)))
    assert fitted.score(data) == -fitted.rmse(data)


def test_unseen_users_and_items_fall_back_to_the_global_baseline(fitted):
    g = fitted.factors_[0]
    pred = fitted.predict([999, 0, 999], [3, 999, 999])
    np.testing.assert_allclose(
        pred, np.clip([g.offset + g.col_bias[3], g.offset + g.row_bias[0], g.offset], 1, 5)
    )


def test_recommend_returns_unrated_items_best_first(data, fitted):
    rec = fitted.recommend(4, n=5)
    rated = set(data.loc[data.user == 4, "item"])
    assert len(rec) == min(5, N_ITEMS - len(rated)) and not set(rec["item"]) & rated
    assert np.all(np.diff(rec["predicted_rating"]) <= 0)
    np.testing.assert_allclose(rec["predicted_rating"], fitted.predict([4] * len(rec), rec["item"]))
    with pytest.raises(ValueError, match="not seen in fit"):
        fitted.recommend(12345)


def test_save_load_round_trip_is_exact(tmp_path, data):
    frame = data.assign(user="u" + data["user"].astype(str), item=data["item"] * 10)
    priors = {"factor_penalty": 9.0}
    model = MPMA(2, n_warmup=3, max_iter=10, random_state=1, priors=priors).fit(frame)
    path = tmp_path / "mpma.nc"
    model.save(path)
    loaded = MPMA.load(path)
    assert loaded.get_params() == model.get_params()
    for name in ("weights_", "sigmas_", "trace_", "user_groups_", "item_groups_"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(model, name))
    np.testing.assert_array_equal(loaded.user_ids_, model.user_ids_)
    for a, b in zip(loaded.factors_, model.factors_, strict=True):
        assert a.offset == b.offset
        np.testing.assert_array_equal(a.col_factors, b.col_factors)
        np.testing.assert_array_equal(a.row_bias, b.row_bias)
    users, items = frame["user"].to_numpy(), frame["item"].to_numpy()
    np.testing.assert_array_equal(loaded.predict(users, items), model.predict(users, items))
    pd.testing.assert_frame_equal(loaded.recommend("u3", 4), model.recommend("u3", 4))
    xr.Dataset({"x": ("a", [1.0])}).to_netcdf(tmp_path / "other.nc", engine="h5netcdf")
    with pytest.raises(ValueError, match="not a saved bayesgmm MPMA"):
        MPMA.load(tmp_path / "other.nc")


# ------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda d: d.assign(rating=d.rating.where(d.index != 3, 7.0)), r"outside rating_scale"),
        (lambda d: d.assign(rating=d.rating.where(d.index != 3, np.nan)), r"NaN.*dropna"),
        (lambda d: pd.concat([d, d.iloc[[0]]]), r"duplicate \(user, item\).*groupby"),
        (lambda d: d.iloc[:0], r"empty"),
        (lambda d: d.rename(columns={"rating": "stars"}), r"lacks column.*rating"),
        (lambda d: d.assign(user=d.user.where(d.index != 2, None)), r"missing user id"),
    ],
    ids=["out-of-scale", "nan", "duplicates", "empty", "no-rating-column", "missing-id"],
)
def test_bad_input_raises_actionable_errors(data, mutate, match):
    with pytest.raises(ValueError, match=match):
        MPMA(2, max_iter=2, rating_scale=(1.0, 5.0)).fit(mutate(data.copy()))


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"components": ("user", "item")}, "must include 'global'"),
        ({"components": ("item", "global")}, "in that order"),
        ({"n_user_groups": 0}, "n_user_groups"),
        ({"rating_scale": (5, 1)}, "low < high"),
        ({"priors": {"factor_scale": 1.0}}, "unknown prior"),
    ],
)
def test_bad_parameters_raise(data, params, match):
    with pytest.raises(ValueError, match=match):
        MPMA(**params).fit(data)


def test_mismatched_arrays_raise():
    with pytest.raises(ValueError, match="same length"):
        MPMA().fit([1, 2], [1], [3.0, 4.0])


# ----------------------------------------------------------------------- cross-check logic


def mock_idata(weights, sigmas, sd, n_chains=4, n_draws=500, seed=0):
    rng = np.random.default_rng(seed)
    shape = (n_chains, n_draws, len(weights))
    comp = {"component": list(COMPONENTS)}
    posterior = xr.Dataset(
        {
            "weights": (("chain", "draw", "component"), weights + sd * rng.normal(size=shape)),
            "sigmas": (("chain", "draw", "component"), sigmas + sd * rng.normal(size=shape)),
        },
        coords=comp,
    )
    stats_ = xr.Dataset(
        {
            "diverging": (("chain", "draw"), np.zeros(shape[:2], dtype=bool)),
            "energy": (("chain", "draw"), rng.normal(size=shape[:2])),
        }
    )
    return xr.DataTree.from_dict({"posterior": posterior, "sample_stats": stats_})


def test_crosscheck_verdicts_on_mock_posteriors():
    w, s, sd = np.array([0.3, 0.3, 0.4]), np.array([0.9, 0.6, 0.7]), 0.01
    idata = mock_idata(w, s, sd)
    em = types.SimpleNamespace(weights_=w, sigmas_=s, components_=COMPONENTS)
    report = crosscheck_mpma(idata, em)
    assert report.verdict == "agree"
    assert list(report.table.index) == [
        f"{p}[{c}]" for p in ("weights", "sigmas") for c in COMPONENTS
    ]
    assert report.table["sd"].to_numpy() == pytest.approx(np.full(6, sd), rel=0.1)
    off = types.SimpleNamespace(
        weights_=w, sigmas_=s + np.array([0, 5 * sd, 0]), components_=COMPONENTS
    )
    report = crosscheck_mpma(idata, off)
    assert report.verdict == "disagree"
    assert report.table.loc["sigmas[user]", "z"] == pytest.approx(5, abs=0.5)
    assert "sigmas[user]" in report.to_text()


def test_densest_subsample_keeps_the_most_active_users_and_items(data):
    sub = densest_subsample(data, 5, 4)
    top_users = data.user.value_counts().sort_index().sort_values(ascending=False, kind="stable")
    assert set(sub.user) <= set(top_users.index[:5]) and sub.item.nunique() <= 4
