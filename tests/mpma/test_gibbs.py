"""Gibbs-sampled MPMA and SAEM: conditional draws, hyperpriors and the marginal MAP against
closed forms, recovery of a known truth, mixture weights against a direct optimiser,
estimator API, bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import optimize, stats

from bayesgmm.mpma import MPMA, GibbsMPMA, GibbsPriors, bias_baseline, bpmf
from bayesgmm.mpma.als import Factors, side_index, update_side
from bayesgmm.mpma.data import encode, validate_ratings
from bayesgmm.mpma.em import MPMAPriors, MPMAState, component_index
from bayesgmm.mpma.gibbs import mixture_weights, sample_normal_wishart
from bayesgmm.mpma.saem import saem_weights_sigmas
from tests import helpers

SCALE = (-20.0, 25.0)  # a declared scale wide enough that the truth is never clipped


def low_rank_ratings(seed=0, n_users=120, n_items=90, rank=2, noise=0.3, density=0.5):
    """Continuous ratings of a known biased rank-``rank`` matrix plus Normal(0, noise) noise."""
    data = helpers.low_rank_ratings(
        seed, n_users=n_users, n_items=n_items, rank=rank, noise=noise, density=density
    )
    ratings = data[0]["rating"]
    assert SCALE[0] < ratings.min() and ratings.max() < SCALE[1]  # no clipping anywhere
    return data


def test_conditional_draws_have_the_exact_gaussian_posterior():
    """update_side with noise draws theta_r from N(A^-1 b, A^-1), A and b written plainly."""
    rng = np.random.default_rng(1)
    n_rows, n_cols, k = 3, 6, 2
    rows = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2])
    cols = np.array([0, 2, 5, 1, 3, 0, 1, 4, 5])
    ratings = rng.normal(3.0, 1.0, rows.size)
    weight = rng.uniform(0.5, 2.0, rows.size)
    base = Factors(
        3.0, rng.normal(size=n_rows), rng.normal(size=n_cols),
        rng.normal(size=(n_rows, k)), rng.normal(size=(n_cols, k)),
    )  # fmt: skip
    prior_precision = np.array([[2.0, 0.3, 0.1], [0.3, 1.5, 0.0], [0.1, 0.0, 3.0]])
    prior_mean = np.array([0.2, -0.1, 0.3])
    n_draws = 20_000
    draws = np.empty((n_draws, n_rows, k + 1))
    f = base.copy()
    by_row = side_index(rows, n_rows)
    for d in range(n_draws):
        update_side(
            f, "row", ratings - f.offset, weight, rows, cols, by_row, prior_precision,
            prior_mean, use_bias=True, noise=rng.standard_normal((n_rows, k + 1)),
        )  # fmt: skip
        draws[d] = np.column_stack([f.row_factors, f.row_bias])
    for r in range(n_rows):
        sel = rows == r
        x = np.column_stack([base.col_factors[cols[sel]], np.ones(sel.sum())])
        t = ratings[sel] - base.offset - base.col_bias[cols[sel]]
        a = prior_precision + (x * weight[sel, None]).T @ x
        cov = np.linalg.inv(a)
        mean = cov @ (prior_precision @ prior_mean + x.T @ (weight[sel] * t))
        se = np.sqrt(np.diag(cov) / n_draws)
        np.testing.assert_array_less(np.abs(draws[:, r].mean(axis=0) - mean), 5 * se)
        np.testing.assert_allclose(np.cov(draws[:, r].T), cov, rtol=0.05, atol=0.01 * cov.max())


def test_normal_wishart_draws_match_the_conjugate_posterior():
    """Mean of Lambda = nu_n W_n and mean of mu = n xbar / (beta0 + n) (closed forms)."""
    rng = np.random.default_rng(2)
    x = rng.multivariate_normal([0.5, -0.3], [[1.0, 0.4], [0.4, 0.5]], size=40)
    priors = GibbsPriors(beta0=2.0, wishart_scale=1.0)
    n, dim = x.shape
    xbar = x.mean(axis=0)
    scale = np.linalg.inv(
        np.eye(dim) + (x - xbar).T @ (x - xbar) + 2.0 * n / (2.0 + n) * np.outer(xbar, xbar)
    )
    draws = [sample_normal_wishart(rng, x, priors) for _ in range(8000)]
    mus = np.array([d[0] for d in draws])
    lams = np.array([d[1] for d in draws])
    np.testing.assert_allclose(lams.mean(axis=0), (dim + n) * scale, rtol=0.03)
    np.testing.assert_allclose(mus.mean(axis=0), n * xbar / (2.0 + n), atol=0.01)


def test_mixture_weights_match_a_direct_optimiser():
    rng = np.random.default_rng(3)
    log_dens = np.log(rng.dirichlet(np.ones(3), size=500)) + rng.normal(size=(500, 1))
    alpha = 2.0
    weights, trace = mixture_weights(log_dens, alpha)

    def neg(z):
        w = np.exp(z - np.logaddexp.reduce(z))
        return -(np.logaddexp.reduce(np.log(w) + log_dens, axis=1).sum()
                 + (alpha - 1) * np.log(w).sum())  # fmt: skip

    best = optimize.minimize(neg, np.zeros(3), method="Nelder-Mead", options={"xatol": 1e-10,
                             "fatol": 1e-12, "maxiter": 20_000})  # fmt: skip
    np.testing.assert_allclose(weights, np.exp(best.x - np.logaddexp.reduce(best.x)), atol=1e-4)
    assert np.all(np.diff(trace) >= -1e-9)


@pytest.fixture(scope="module")
def truth():
    return low_rank_ratings()


def test_bpmf_recovers_a_known_low_rank_matrix_and_noise(truth):
    frame, mean = truth
    model = bpmf(2, n_burn=40, n_draws=60, rating_scale=SCALE, random_state=0).fit(frame)
    grid_u, grid_i = np.meshgrid(np.arange(mean.shape[0]), np.arange(mean.shape[1]), indexing="ij")
    pred = model.predict(grid_u.ravel(), grid_i.ravel())
    err = np.sqrt(np.mean((pred - mean.ravel()) ** 2))
    # the whole matrix, unobserved half included, within the noise sd of the truth
    assert err < 0.15, err  # MAP PMF at its default penalty: 0.37 on these data
    assert abs(model.sigmas_[0] - 0.3) < 0.03, model.sigmas_


def test_gibbs_mpma_fits_weights_on_held_out_ratings_only(truth):
    frame, _ = truth
    model = GibbsMPMA(
        2, n_burn=10, n_draws=10, validation_fraction=0.2, rating_scale=SCALE, random_state=0,
        refit=False,  # the components' draws are those the weights were fitted with
    )
    model.fit(frame)
    held = model.validation_
    assert 0.15 < held.mean() < 0.25
    assert np.isclose(model.weights_.sum(), 1.0) and model.weights_.shape == (3,)
    # the weights maximise the mixture of the components' predictive densities there
    sub = frame[held]
    resp = model.predict_proba_components(sub)
    alpha = model.priors_.weights_alpha
    expected = (resp.sum(axis=0) + alpha - 1) / (len(sub) + 3 * (alpha - 1))
    np.testing.assert_allclose(model.weights_, expected, atol=1e-4)  # EM's stopping rule


def test_predict_averages_the_draws_and_save_load_is_exact(tmp_path, truth):
    frame, _ = truth
    model = GibbsMPMA(2, n_burn=5, n_draws=8, rating_scale=SCALE, random_state=1).fit(frame)
    u, i = frame["user"].to_numpy()[:50], frame["item"].to_numpy()[:50]
    means = model.component_means(u, i)
    post = model.posteriors_[0]
    by_hand = np.mean(
        [f.offset + f.row_bias[u] + f.col_bias[i] + np.sum(f.row_factors[u] * f.col_factors[i], 1)
         for f in post.draws], axis=0,
    )  # fmt: skip
    np.testing.assert_allclose(means[:, 0], by_hand, rtol=1e-12)
    np.testing.assert_allclose(model.predict(u, i), np.clip(means @ model.weights_, *SCALE))
    path = tmp_path / "gibbs.nc"
    model.save(path)
    back = GibbsMPMA.load(path)
    np.testing.assert_array_equal(back.predict(u, i), model.predict(u, i))
    assert back.get_params() == model.get_params()
    for a, b in zip(back.posteriors_, model.posteriors_, strict=True):
        np.testing.assert_array_equal(a.sigmas, b.sigmas)
        np.testing.assert_array_equal(a.draws[-1].col_factors, b.draws[-1].col_factors)
    with pytest.raises(ValueError, match="not a saved bayesgmm MPMA model"):
        MPMA.load(path)


def test_same_seed_same_fit(truth):
    frame, _ = truth
    a = GibbsMPMA(2, n_burn=3, n_draws=4, rating_scale=SCALE, random_state=5).fit(frame)
    b = GibbsMPMA(2, n_burn=3, n_draws=4, rating_scale=SCALE, random_state=5).fit(frame)
    np.testing.assert_array_equal(a.predict(frame["user"], frame["item"]),
                                  b.predict(frame["user"], frame["item"]))  # fmt: skip


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"validation_fraction": 0.0}, "validation_fraction must be in"),
        ({"validation_fraction": 1.0}, "validation_fraction must be in"),
        ({"n_draws": 0}, "n_draws must be an integer >= 1"),
        ({"n_burn": -1}, "n_burn must be an integer >= 0"),
        ({"priors": {"beta": 1.0}}, "unknown prior field"),
        ({"priors": {"weights_alpha": 0.5}}, "weights_alpha must be >= 1"),
        ({"priors": {"noise_sd": 0.0}}, "noise_sd must be > 0 or None"),
        ({"components": ("user",)}, "components must include 'global'"),
        ({"n_factors": 0}, "n_factors=0 leaves no global factors to group"),
        ({"n_factors": 0, "use_bias": False, "components": ("global",)}, "nothing to sample"),
    ],
)
def test_bad_parameters_raise(truth, params, match):
    with pytest.raises(ValueError, match=match):
        GibbsMPMA(
            **({"n_factors": 2, "n_burn": 1, "n_draws": 1, "rating_scale": SCALE} | params)
        ).fit(truth[0])


def test_bias_only_models_fit():
    """n_factors=0 is the bias model: MAP-EM (PMF reduction) and Gibbs both fit it."""
    frame, _ = low_rank_ratings(seed=7, n_users=40, n_items=30)
    gibbs = bpmf(0, n_burn=5, n_draws=10, rating_scale=SCALE, random_state=0).fit(frame)
    assert gibbs.posteriors_[0].draws[0].row_factors.shape == (40, 0)
    # the same additive model as the MAP bias baseline: training RMSE within 5% of it (both
    # well below the rating sd, 1.25 here)
    baseline = bias_baseline(rating_scale=SCALE).fit(frame)
    assert abs(gibbs.rmse(frame) / baseline.rmse(frame) - 1) < 0.05
    with pytest.raises(ValueError, match="n_factors=0 leaves no global factors"):
        MPMA(0, rating_scale=SCALE).fit(frame)


def test_too_few_ratings_for_a_validation_split_raise():
    frame = pd.DataFrame({"user": [0, 1, 2], "item": [0, 1, 0], "rating": [3.0, 4.0, 5.0]})
    with pytest.raises(ValueError, match="held-out ratings"):
        GibbsMPMA(1, n_user_groups=1, n_item_groups=1, n_burn=1, n_draws=1,
                  validation_fraction=0.01, random_state=0).fit(frame)  # fmt: skip


def test_saem_finds_the_exact_marginal_map_of_sigma():
    """Biases only, one component: R ~ N(mu0, sigma^2 (I + Z Z^T / bias_penalty) + sd0^2 J)
    in closed form, so the marginal MAP of sigma^2 is a 1-D optimisation to compare with."""
    frame, _ = low_rank_ratings(seed=6, n_users=25, n_items=20, rank=1, noise=0.5, density=0.5)
    priors = MPMAPriors(sigma_min=0.01, bias_penalty=2.0, sigma_a=2.0, sigma_b=1.0)
    enc = encode(validate_ratings(frame, rating_scale=SCALE))
    n_users, n_items = len(enc.user_ids), len(enc.item_ids)
    groups = np.zeros(n_users, dtype=np.int64), np.zeros(n_items, dtype=np.int64)
    index = [component_index("global", enc.users, enc.items, n_users, n_items, *groups)]
    start = MPMAState(
        ("global",), np.ones(1), np.ones(1),
        [Factors(3.0, np.zeros(n_users), np.zeros(n_items), np.zeros((n_users, 0)),
                 np.zeros((n_items, 0)))],
    )  # fmt: skip
    fit = saem_weights_sigmas(
        start, enc.ratings, index, priors, use_bias=True, n_burn=200, n_average=1500, seed=0
    )
    z = np.hstack([np.eye(n_users)[enc.users], np.eye(n_items)[enc.items]])
    n = enc.ratings.size

    def neg_log_post(var):
        cov = var * (np.eye(n) + z @ z.T / priors.bias_penalty) + priors.offset_sd**2
        lik = stats.multivariate_normal(np.full(n, priors.offset_mu), cov).logpdf(enc.ratings)
        return -(lik + stats.invgamma(priors.sigma_a, scale=priors.sigma_b).logpdf(var))

    best = optimize.minimize_scalar(neg_log_post, bounds=(0.01, 5.0), method="bounded")
    assert abs(fit.sigmas[0] - np.sqrt(best.x)) < 0.005 * np.sqrt(best.x), (fit.sigmas, best.x)
    # the joint mode's sigma is smaller (the N / (N + p) deflation the marginal MAP removes)
    joint = MPMA(0, components=("global",), priors=priors, rating_scale=SCALE).fit(frame)
    assert joint.sigmas_[0] < np.sqrt(best.x) * 0.97


def test_fixed_noise_sd_is_used_by_every_draw(truth):
    frame, _ = truth
    model = bpmf(2, n_burn=3, n_draws=5, priors={"noise_sd": 0.4}, rating_scale=SCALE,
                 random_state=0).fit(frame)  # fmt: skip
    np.testing.assert_array_equal(model.posteriors_[0].sigmas, np.full(5, 0.4))
    free = bpmf(2, n_burn=3, n_draws=5, rating_scale=SCALE, random_state=0).fit(frame)
    assert np.ptp(free.posteriors_[0].sigmas) > 0  # sampled otherwise


@pytest.mark.parametrize("constant_weight", [False, True])
def test_update_side_paths_solve_the_normal_equations(constant_weight):
    # Every way of calling the ALS kernel (the other index stored in side order or
    # gathered, targets pre-ordered or not, a constant weight as a stride-0 array) gives
    # the per-row ridge solution computed directly with numpy.
    rng = np.random.default_rng(5)
    n_rows, n_cols, k = 30, 20, 3
    cells = rng.choice(n_rows * n_cols, size=300, replace=False)
    rows, cols = np.divmod(cells, n_cols)
    target = rng.normal(size=300)
    weight = np.broadcast_to(2.5, 300) if constant_weight else rng.uniform(0.5, 2.0, 300)
    start = Factors(0.0, rng.normal(size=n_rows), rng.normal(size=n_cols),
                    rng.normal(size=(n_rows, k)), rng.normal(size=(n_cols, k)))  # fmt: skip
    precision = np.diag([3.0, 3.0, 3.0, 1.5])
    prior_mean = np.array([0.1, -0.2, 0.0, 0.3])
    x = np.column_stack([start.col_factors[cols], np.ones(300)])
    t = target - start.col_bias[cols]
    expected = np.empty((n_rows, k + 1))
    for r in range(n_rows):
        on = rows == r
        a = precision + (x[on] * np.asarray(weight)[on, None]).T @ x[on]
        expected[r] = np.linalg.solve(a, precision @ prior_mean + x[on].T @ (weight[on] * t[on]))
    plain = side_index(rows, n_rows)
    stored = side_index(rows, n_rows, other=cols)
    assert stored.other.dtype == np.int32
    calls = [(plain, target, weight, False), (stored, target, weight, False),
             (stored, target[stored.order], np.asarray(weight)[stored.order], True)]  # fmt: skip
    for by_row, t_in, w_in, ordered in calls:
        f = start.copy()
        update_side(f, "row", t_in, w_in, rows, cols, by_row, precision, prior_mean,
                    use_bias=True, ordered=ordered)  # fmt: skip
        np.testing.assert_allclose(f.row_factors, expected[:, :k], rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(f.row_bias, expected[:, k], rtol=1e-10, atol=1e-12)
