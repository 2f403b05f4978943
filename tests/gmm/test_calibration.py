"""Simulation-based calibration: rank statistics, prior simulation, and a small SBC run."""

import numpy as np
import pytest
from scipy import stats

from bayesgmm.gmm.calibration import (
    chi2_uniformity,
    ecdf_band,
    ecdf_uniformity,
    mixture_loglik,
    rank_uniformity_table,
    sbc_priors,
    sbc_ranks,
    simulate_from_prior,
    thin_evenly,
)

L = 99  # posterior draws per replication in the statistics tests


# --------------------------------------------------------------------------------------
# ranks
# --------------------------------------------------------------------------------------


def test_sbc_ranks_hand_example():
    truth = np.array([0.5, 2.0, -1.0])
    draws = np.array(
        [
            [0.1, 3.0, -2.0],
            [0.7, 1.0, -0.5],
            [0.3, 2.5, -3.0],
            [0.9, 0.0, 0.0],
        ]
    )
    # #{draws < truth}: column 0: 0.1, 0.3 -> 2; column 1: 1.0, 0.0 -> 2; column 2: -2, -3 -> 2
    np.testing.assert_array_equal(sbc_ranks(truth, draws), [2, 2, 2])
    np.testing.assert_array_equal(sbc_ranks(np.array([10.0]), draws[:, :1]), [4])
    np.testing.assert_array_equal(sbc_ranks(np.array([-10.0]), draws[:, :1]), [0])


def test_sbc_ranks_break_ties_uniformly():
    # truth 0 among draws (-1, 0, 0, 1): one draw below, two ties -> rank uniform on {1, 2, 3}
    n = 6000
    draws = np.tile(np.array([[-1.0], [0.0], [0.0], [1.0]]), (1, n))
    ranks = sbc_ranks(np.zeros(n), draws, rng=1)
    counts = np.bincount(ranks, minlength=5)
    assert counts[0] == 0 and counts[4] == 0
    assert stats.chisquare(counts[1:4]).pvalue > 1e-3


def test_sbc_ranks_rejects_bad_shapes():
    with pytest.raises(ValueError, match="shape"):
        sbc_ranks(np.zeros(2), np.zeros((5, 3)))


def test_thin_evenly_picks_centred_indices():
    draws = np.arange(10) * 10
    # floor((i + 0.5) * 10 / 3) = 1, 5, 8
    np.testing.assert_array_equal(thin_evenly(draws, 3), [10, 50, 80])
    np.testing.assert_array_equal(thin_evenly(draws, 10), draws)
    with pytest.raises(ValueError, match="n_keep"):
        thin_evenly(draws, 11)


def test_mixture_loglik_matches_scipy():
    rng = np.random.default_rng(9)
    S, K, D, N = 3, 2, 2, 15
    X = rng.normal(size=(N, D))
    w = rng.dirichlet(np.ones(K), size=S)
    mu = rng.normal(size=(S, K, D))
    a = rng.normal(size=(S, K, D, D))
    cov = a @ np.swapaxes(a, -1, -2) + np.eye(D)
    expected = [
        np.sum(
            np.log(
                sum(
                    w[s, k] * stats.multivariate_normal(mu[s, k], cov[s, k]).pdf(X)
                    for k in range(K)
                )
            )
        )
        for s in range(S)
    ]
    np.testing.assert_allclose(mixture_loglik(X, w, mu, np.linalg.cholesky(cov)), expected)


# --------------------------------------------------------------------------------------
# uniformity statistics
# --------------------------------------------------------------------------------------


def test_chi2_all_ranks_in_one_bin():
    # 100 ranks in the first of 10 equal bins: (90^2 + 9 * 10^2) / 10 = 900 = n (B - 1)
    stat, p = chi2_uniformity(np.zeros(100, dtype=int), L, 10)
    assert stat == pytest.approx(900.0)
    assert p == pytest.approx(stats.chi2.sf(900.0, 9))
    stat, p = chi2_uniformity(np.arange(100), L, 10)
    assert stat == 0.0 and p == 1.0


def test_chi2_matches_scipy_with_unequal_bins():
    # L = 9 -> 10 rank values in 3 bins of 4, 3, 3 values
    rng = np.random.default_rng(3)
    ranks = rng.integers(0, 10, size=57)
    observed = [np.sum(ranks <= 3), np.sum((ranks >= 4) & (ranks <= 6)), np.sum(ranks >= 7)]
    ref = stats.chisquare(observed, 57 * np.array([4, 3, 3]) / 10)
    stat, p = chi2_uniformity(ranks, 9, 3)
    assert stat == pytest.approx(ref.statistic)
    assert p == pytest.approx(ref.pvalue)


def test_ecdf_statistic_matches_naive_loop():
    rng = np.random.default_rng(4)
    ranks = rng.integers(0, 20, size=37)
    n, n_ranks = ranks.size, 19
    devs, tails = [], []
    for j in range(1, n_ranks + 1):
        z = j / (n_ranks + 1)
        c = sum(int(r < j) for r in ranks)
        devs.append(abs(c / n - z))
        lower, upper = stats.binom.cdf(c, n, z), stats.binom.sf(c - 1, n, z)
        tails.append(min(1.0, 2 * min(lower, upper)))
    max_dev, stat, p = ecdf_uniformity(ranks, n_ranks, n_mc=500)
    assert max_dev == pytest.approx(max(devs))
    assert stat == pytest.approx(min(tails))
    assert 0 < p <= 1


def test_ecdf_test_is_calibrated_and_band_matches():
    rng = np.random.default_rng(5)
    n = 100
    ps = np.array([ecdf_uniformity(rng.integers(0, L + 1, n), L)[2] for _ in range(300)])
    # under the null the p-value is uniform: 5 % below 0.05 (binomial sd 1.3 %)
    assert 0.012 < np.mean(ps < 0.05) < 0.09
    assert 0.13 < np.mean(ps < 0.2) < 0.27
    z, low, up = ecdf_band(n, L, 0.05)
    inside = []
    for _ in range(300):
        r = rng.integers(0, L + 1, n)
        ecdf = np.cumsum(np.bincount(r, minlength=L + 1))[:-1] / n
        inside.append(np.all((ecdf >= low) & (ecdf <= up)))
    assert 0.9 < np.mean(inside) < 0.99
    assert np.all(low <= z) and np.all(up >= z)


def conjugate_ranks(n_sims, shift=0.0, scale=1.0, seed=0):
    """theta ~ N(0, 1), y ~ N(theta, 1): posterior N(y / 2, 1 / 2), optionally distorted."""
    rng = np.random.default_rng(seed)
    theta = rng.normal(size=n_sims)
    y = theta + rng.normal(size=n_sims)
    post_sd = np.sqrt(0.5)
    ranks = np.empty((n_sims, 1), dtype=int)
    for i in range(n_sims):
        draws = y[i] / 2 + shift * post_sd + scale * post_sd * rng.normal(size=(L, 1))
        ranks[i] = sbc_ranks(theta[i : i + 1], draws, rng)
    return ranks


def test_exact_posterior_passes():
    table = rank_uniformity_table(conjugate_ranks(200, seed=6), ["theta"], L)
    row = table.loc["theta"]
    assert row["passed"]
    assert row["chi2_p"] > 0.01 and row["ecdf_p"] > 0.01
    assert abs(row["mean_rank"] - L / 2) < 5  # sd of the mean rank: 28.9 / sqrt(200) = 2.0


@pytest.mark.parametrize(
    ("shift", "scale", "shape"),
    [(0.6, 1.0, "skew"), (0.0, 0.5, "U"), (0.0, 1.8, "hump")],
    ids=["biased", "over-confident", "over-dispersed"],
)
def test_miscalibrated_posteriors_fail(shift, scale, shape):
    ranks = conjugate_ranks(200, shift, scale, seed=7)
    table = rank_uniformity_table(ranks, ["theta"], L)
    row = table.loc["theta"]
    assert not row["passed"]
    assert row["chi2_p"] < 1e-4 and row["ecdf_p"] < 1e-3
    r = ranks[:, 0]
    edges = np.mean((r < 10) | (r > L - 10))  # 20 % under uniformity
    if shape == "skew":  # posterior too high -> truth ranks low
        assert row["mean_rank"] < L / 2 - 10
    elif shape == "U":
        assert edges > 0.35
    else:
        assert edges < 0.08
    assert row["outer_frac"] == pytest.approx(edges)


def test_table_levels_and_flags():
    ranks = np.column_stack([conjugate_ranks(100, seed=8), np.zeros(100, dtype=int)])
    table = rank_uniformity_table(ranks, ["good", "bad"], L, alpha=0.1)
    assert table.attrs["per_test_level"] == pytest.approx(0.1 / 4)
    assert table.attrs["outer_expected"] == pytest.approx(0.2)
    assert table.loc["bad", "outer_frac"] == 1.0  # every rank is 0
    assert list(table["passed"]) == [True, False]
    assert table.loc["bad", "mean_rank"] == 0.0
    assert table.loc["bad", "p_min"] == min(table.loc["bad", "chi2_p"], table.loc["bad", "ecdf_p"])
    with pytest.raises(ValueError, match="labels"):
        rank_uniformity_table(ranks, ["only one"], L)
    with pytest.raises(ValueError, match="integers"):
        chi2_uniformity(np.array([0, L + 1]), L)


# --------------------------------------------------------------------------------------
# prior simulation
# --------------------------------------------------------------------------------------


def test_prior_simulation_matches_closed_form_moments():
    n = 4000
    sim = simulate_from_prior(n, 3, 2, seed=11)
    pri = sbc_priors("full")
    assert sim.labels == [
        "weights[0]",
        "weights[1]",
        "means[0,0]",
        "means[0,1]",
        "means[1,0]",
        "means[1,1]",
        "sd[0,0]",
        "sd[0,1]",
        "sd[1,0]",
        "sd[1,1]",
        "corr[0,0,1]",
        "corr[1,0,1]",
    ]
    assert sim.truth.shape == (n, 12) and sim.data.shape == (n, 3, 2)
    col = dict(zip(sim.labels, sim.truth.T, strict=True))

    def check(x, mean, var, k=4.5):
        """Sample mean within k standard errors, sample variance within k of its se."""
        x = np.asarray(x)
        assert abs(x.mean() - mean) < k * np.sqrt(var / x.size), (x.mean(), mean)
        m4 = np.mean((x - x.mean()) ** 4)
        assert abs(x.var() - var) < k * np.sqrt((m4 - var**2) / x.size), (x.var(), var)

    a = pri["weights_alpha"]  # Dirichlet(a, a): Beta(a, a) marginal
    check(col["weights[0]"], 0.5, 1 / (4 * (2 * a + 1)))
    np.testing.assert_allclose(col["weights[0]"] + col["weights[1]"], 1.0)
    s = pri["means_sigma"]  # ordered feature: min / max of two iid N(0, s^2)
    check(col["means[0,0]"], -s / np.sqrt(np.pi), s**2 * (1 - 1 / np.pi))
    check(col["means[1,0]"], s / np.sqrt(np.pi), s**2 * (1 - 1 / np.pi))
    assert np.all(col["means[1,0]"] > col["means[0,0]"])
    for k in (0, 1):  # free feature: N(0, s^2)
        check(col[f"means[{k},1]"], 0.0, s**2)
    for lab in ("sd[0,0]", "sd[0,1]", "sd[1,0]", "sd[1,1]"):  # HalfNormal(1)
        check(col[lab], np.sqrt(2 / np.pi), 1 - 2 / np.pi)
    eta = pri["lkj_eta"]  # D = 2: (r + 1) / 2 ~ Beta(eta, eta)
    for lab in ("corr[0,0,1]", "corr[1,0,1]"):
        check(col[lab], 0.0, 1 / (2 * eta + 1))
    # data: first observation of each data set; E x = 0, Var x = E sd^2 + E mu^2 = 1 + s^2
    x = sim.data[:, 0, :]
    for f in (0, 1):
        assert abs(x[:, f].mean()) < 4.5 * np.sqrt((1 + s**2) / n)
        assert x[:, f].var() == pytest.approx(1 + s**2, rel=0.12)


def test_prior_simulation_refuses_data_scaled_priors():
    with pytest.raises(ValueError, match="explicitly"):
        simulate_from_prior(5, 10, 1, priors={"weights_alpha": 1.0})


def test_shared_data_model_has_the_same_logp_for_every_data_set():
    from bayesgmm.gmm.calibration import DATA_NAME, _with_shared_data
    from bayesgmm.gmm.model import build_gmm_model

    rng = np.random.default_rng(12)
    pri = sbc_priors("full")
    shared = _with_shared_data(build_gmm_model(np.zeros((30, 2)), n_components=2, priors=pri))
    assert [v.name for v in shared.data_vars] == [DATA_NAME]
    assert len(shared.coords["obs"]) == 30 and "feature_free" in shared.coords
    logp = shared.compile_logp(mode="FAST_COMPILE")
    for shift in ([3.0, -1.0], [-20.0, 5.0]):  # the template's centring constant is 0
        X = rng.normal(size=(30, 2)) + np.array(shift)
        ref = build_gmm_model(X, n_components=2, priors=pri)
        point = ref.initial_point()
        shared[DATA_NAME].set_value(X)
        expected = ref.compile_logp(mode="FAST_COMPILE")(point)
        assert logp(point) == pytest.approx(expected, rel=1e-12)


# --------------------------------------------------------------------------------------
# the full pipeline (slow)
# --------------------------------------------------------------------------------------


@pytest.mark.slow
def test_small_sbc_of_the_1d_model_is_calibrated():
    from bayesgmm.gmm.calibration import run_sbc

    n_sims, n_ranks = 20, 39
    sim = simulate_from_prior(n_sims, 100, 1, seed=2024)
    result = run_sbc(sim, n_ranks=n_ranks, chains=2, draws=500, tune=500, seed=2024)
    assert result.labels[-1] == "loglik"
    assert result.ranks.shape == (n_sims, 7)
    assert result.ranks.min() >= 0 and result.ranks.max() <= n_ranks
    # weights[1] = 1 - weights[0]: mirrored ranks (a check of the rank bookkeeping)
    np.testing.assert_array_equal(result.ranks[:, 0] + result.ranks[:, 1], n_ranks)
    assert len(result.diagnostics) == n_sims
    table = result.table(n_bins=4)
    assert table["passed"].all(), table
