"""EM vs posterior cross-check on mock posteriors (numpy + xarray, no MCMC)."""

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from bayesgmm.gmm.crosscheck import (
    CrossCheck,
    crosscheck,
    posterior_reporting_parameters,
    reporting_parameters,
)
from bayesgmm.verdict import Thresholds, bfmi_per_chain

K, D = 3, 2
TRUE_W = np.array([0.3, 0.5, 0.2])
TRUE_MU = np.array([[-3.0, 0.0], [0.0, 3.0], [3.0, -1.0]])
TRUE_CHOL = np.array(
    [
        [[1.0, 0.0], [0.4, 0.8]],
        [[0.7, 0.0], [-0.3, 1.1]],
        [[1.2, 0.0], [0.0, 0.5]],
    ]
)
COV_TYPES = ("full", "tied", "diag", "spherical")


def random_cov(rng, lead, k, d):
    a = rng.normal(size=(*lead, k, d, d))
    return a @ np.swapaxes(a, -1, -2) + d * np.eye(d)


def sd_corr_reference(cov):
    """sd = sqrt(diag(cov)), corr = cov / outer(sd, sd), by plain loops."""
    sd = np.sqrt(np.diagonal(cov, axis1=-2, axis2=-1))
    corr = np.empty_like(cov)
    for idx in np.ndindex(*cov.shape[:-2]):
        corr[idx] = cov[idx] / np.outer(sd[idx], sd[idx])
    return sd, corr


def true_em(covariance_type):
    cov = TRUE_CHOL @ np.swapaxes(TRUE_CHOL, -1, -2)
    covs = {
        "full": cov,
        "tied": cov[0],
        "diag": np.diagonal(cov, axis1=-2, axis2=-1).copy(),
        "spherical": np.array([1.0, 0.8, 1.5]) ** 2,
    }
    return {"weights": TRUE_W.copy(), "means": TRUE_MU.copy(), "covariances": covs[covariance_type]}


def make_idata(
    covariance_type="full", n_chains=4, n_draws=500, seed=0, tied_repeated=False, mu=TRUE_MU
):
    """Posterior draws from known Gaussians around the true parameters, nutpie-like."""
    rng = np.random.default_rng(seed)
    c, s = n_chains, n_draws
    weights = rng.dirichlet(2000 * TRUE_W, size=(c, s))
    means = mu + rng.normal(scale=0.05, size=(c, s, K, D))
    post = {
        "weights": (("chain", "draw", "component"), weights),
        "means": (("chain", "draw", "component", "feature"), means),
        "lp_helper": (("chain", "draw"), rng.normal(size=(c, s))),
    }
    if covariance_type in ("full", "tied"):
        chol = TRUE_CHOL + np.tril(rng.normal(scale=0.02, size=(c, s, K, D, D)))
        if covariance_type == "full":
            post["chol_cov"] = (("chain", "draw", "component", "feature", "feature_"), chol)
        elif tied_repeated:  # the model's layout: the shared factor repeated per component
            rep = np.broadcast_to(chol[:, :, :1], chol.shape).copy()
            post["chol_cov"] = (("chain", "draw", "component", "feature", "feature_"), rep)
        else:
            post["chol_cov"] = (("chain", "draw", "feature", "feature_"), chol[:, :, 0])
    elif covariance_type == "diag":
        sd = np.sqrt(true_em("diag")["covariances"])
        sig = sd * np.exp(rng.normal(scale=0.02, size=(c, s, K, D)))
        post["sigmas"] = (("chain", "draw", "component", "feature"), sig)
    else:
        sd = np.sqrt(true_em("spherical")["covariances"])
        sig = sd * np.exp(rng.normal(scale=0.02, size=(c, s, K)))
        post["sigmas"] = (("chain", "draw", "component"), sig)
    coords = {
        "chain": np.arange(c),
        "draw": np.arange(s),
        "component": np.arange(K),
        "feature": ["x0", "x1"],
        "feature_": ["x0", "x1"],
    }
    stats = xr.Dataset(
        {
            "diverging": (("chain", "draw"), np.zeros((c, s), dtype=bool)),
            "maxdepth_reached": (("chain", "draw"), np.zeros((c, s), dtype=bool)),
            "energy": (("chain", "draw"), rng.normal(size=(c, s))),
            "depth": (("chain", "draw"), np.full((c, s), 3)),
        },
        coords={"chain": coords["chain"], "draw": coords["draw"]},
    )
    warm = stats.isel(draw=slice(0, 10)).copy(deep=True)
    warm["diverging"][:] = True  # warm-up divergences must not count
    return xr.DataTree.from_dict(
        {
            "posterior": xr.Dataset(post, coords=coords),
            "sample_stats": stats,
            "warmup_sample_stats": warm,
        }
    )


def permute_chain(idata, chain, perm):
    """Relabel one chain's components: component j becomes component perm[j]."""
    post = idata["posterior"].to_dataset().copy(deep=True)
    inv = np.argsort(perm)
    for name, da in post.data_vars.items():
        if "component" in da.dims:
            post[name][dict(chain=chain)] = da.isel(chain=chain, component=inv).values
    return _replace_posterior(idata, post)


def _replace_posterior(idata, post):
    groups = {k: idata[k].to_dataset() for k in idata.children}
    groups["posterior"] = post
    return xr.DataTree.from_dict(groups)


def _replace_stats(idata, **updates):
    groups = {k: idata[k].to_dataset() for k in idata.children}
    stats = groups["sample_stats"].copy(deep=True)
    for name, values in updates.items():
        stats[name] = (("chain", "draw"), values)
    groups["sample_stats"] = stats
    return xr.DataTree.from_dict(groups)


def hdi_nearest(x, prob):
    x = np.sort(x.ravel())
    n = len(x)
    inc = min(int(np.floor(prob * n)), n - 1)
    i = np.argmin(x[inc:] - x[: n - inc])
    return x[i], x[i + inc]


# --------------------------------------------------------------------------------------
# reporting_parameters
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_reporting_parameters_match_numpy_and_cholesky_path(covariance_type):
    rng = np.random.default_rng(0)
    lead = (2, 3)  # (chain, draw)
    w = rng.dirichlet(np.ones(K), size=lead)
    mu = rng.normal(size=(*lead, K, D))
    full = random_cov(rng, lead, K, D)
    if covariance_type == "full":
        cov, chol = full, np.linalg.cholesky(full)
        sd_ref, corr_ref = sd_corr_reference(full)
    elif covariance_type == "tied":
        cov, chol = full[..., 0, :, :], np.linalg.cholesky(full[..., 0, :, :])
        sd_ref, corr_ref = sd_corr_reference(cov)
    elif covariance_type == "diag":
        cov = np.diagonal(full, axis1=-2, axis2=-1).copy()
        chol = np.sqrt(cov)
        sd_ref, corr_ref = chol, None
    else:
        cov = full[..., 0, 0].copy()
        chol = np.sqrt(cov)
        sd_ref, corr_ref = chol, None
    from_cov = reporting_parameters(w, mu, cov, covariance_type, from_cholesky=False)
    from_chol = reporting_parameters(w, mu, chol, covariance_type, from_cholesky=True)
    np.testing.assert_array_equal(from_cov["weights"], w)
    np.testing.assert_array_equal(from_cov["means"], mu)
    np.testing.assert_allclose(from_cov["sd"], sd_ref, rtol=1e-12)
    np.testing.assert_allclose(from_chol["sd"], sd_ref, rtol=1e-12)
    if corr_ref is None:
        assert "corr" not in from_cov and "corr" not in from_chol
    else:
        np.testing.assert_allclose(from_cov["corr"], corr_ref, rtol=1e-12)
        np.testing.assert_allclose(from_chol["corr"], corr_ref, rtol=1e-12, atol=1e-15)
    # a single point estimate (no leading dims), as EM gives it
    one = reporting_parameters(w[0, 0], mu[0, 0], cov[0, 0], covariance_type, from_cholesky=False)
    np.testing.assert_allclose(one["sd"], sd_ref[0, 0], rtol=1e-12)


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_posterior_reporting_parameters_named_dims(covariance_type):
    idata = make_idata(covariance_type, n_chains=2, n_draws=20)
    rep = posterior_reporting_parameters(idata["posterior"].to_dataset(), covariance_type)
    assert isinstance(rep, xr.Dataset)
    assert rep["weights"].dims == ("chain", "draw", "component")
    assert rep["means"].dims == ("chain", "draw", "component", "feature")
    expected_sd = {
        "full": ("chain", "draw", "component", "feature"),
        "tied": ("chain", "draw", "feature"),
        "diag": ("chain", "draw", "component", "feature"),
        "spherical": ("chain", "draw", "component"),
    }[covariance_type]
    assert rep["sd"].dims == expected_sd
    assert list(rep["means"].coords["feature"].values) == ["x0", "x1"]
    if covariance_type in ("full", "tied"):
        chol = idata["posterior"]["chol_cov"].values
        cov = chol @ np.swapaxes(chol, -1, -2)
        sd_ref, corr_ref = sd_corr_reference(cov)
        np.testing.assert_allclose(rep["sd"].values, sd_ref, rtol=1e-12)
        np.testing.assert_allclose(rep["corr"].values, corr_ref, rtol=1e-12)
        assert rep["corr"].dims[-2:] == ("feature", "feature_")
    else:
        np.testing.assert_array_equal(rep["sd"].values, idata["posterior"]["sigmas"].values)


def test_posterior_reporting_parameters_model_layouts():
    # "tied" with the shared factor repeated over components (the PyMC model's layout)
    a = make_idata("tied", n_chains=2, n_draws=20, seed=3)
    b = make_idata("tied", n_chains=2, n_draws=20, seed=3, tied_repeated=True)
    ra = posterior_reporting_parameters(a["posterior"].to_dataset(), "tied")
    rb = posterior_reporting_parameters(b["posterior"].to_dataset(), "tied")
    xr.testing.assert_allclose(ra, rb)
    # diag / spherical from chol_cov alone
    post = make_idata("diag", n_chains=2, n_draws=20)["posterior"].to_dataset()
    sig = post["sigmas"]
    chol = xr.DataArray(sig.values[..., None] * np.eye(D), dims=(*sig.dims, "feature_"))
    only_chol = post.drop_vars("sigmas").assign(chol_cov=chol)
    r = posterior_reporting_parameters(only_chol, "diag")
    np.testing.assert_allclose(r["sd"].values, sig.values)
    r = posterior_reporting_parameters(only_chol, "spherical")
    np.testing.assert_allclose(r["sd"].values, sig.values[..., 0])


def test_bfmi_formula():
    rng = np.random.default_rng(0)
    e = rng.normal(size=(2, 1000))
    e[1] = np.cumsum(e[1])  # random walk: energy poorly explored
    b = bfmi_per_chain(e)
    ref = [np.sum(np.diff(x) ** 2) / np.sum((x - x.mean()) ** 2) for x in e]
    np.testing.assert_allclose(b, ref)
    assert b[0] > 1.5 and b[1] < 0.3


# --------------------------------------------------------------------------------------
# crosscheck
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_agree_and_table_against_numpy(covariance_type):
    idata = make_idata(covariance_type)
    em = true_em(covariance_type)
    res = crosscheck(idata, em, em, covariance_type)
    assert isinstance(res, CrossCheck)
    assert res.verdict == "agree", res.reasons
    assert res.reasons[0].startswith("[agree]")
    assert not res.labels.relabelled and not res.modes.multimodal
    table = res.to_dataframe()
    assert list(table.columns) == [
        "em",
        "map",
        "mean",
        "sd",
        "hdi_low",
        "hdi_high",
        "z",
        "mcse_mean",
        "r_hat",
        "ess_bulk",
        "ess_tail",
    ]
    n_corr = {"full": K, "tied": 1}.get(covariance_type, 0)
    n_sd = {"tied": D, "spherical": K}.get(covariance_type, K * D)
    assert len(table) == K + K * D + n_sd + n_corr
    post = posterior_reporting_parameters(idata["posterior"].to_dataset(), covariance_type)
    em_rep = reporting_parameters(
        em["weights"], em["means"], em["covariances"], covariance_type, from_cholesky=False
    )
    checks = {"weights[1]": ("weights", (1,)), "means[2,0]": ("means", (2, 0))}
    if covariance_type in ("full", "tied"):
        key = "corr[1,0,1]" if covariance_type == "full" else "corr[0,1]"
        idx = (1, 0, 1) if covariance_type == "full" else (0, 1)
        checks[key] = ("corr", idx)
    checks["sd[1]" if covariance_type in ("tied", "spherical") else "sd[1,1]"] = (
        "sd",
        (1,) if covariance_type in ("tied", "spherical") else (1, 1),
    )
    for label, (name, idx) in checks.items():
        draws = post[name].values[(slice(None), slice(None), *idx)]
        row = table.loc[label]
        assert row["mean"] == pytest.approx(draws.mean(), rel=1e-12)
        assert row["sd"] == pytest.approx(draws.std(ddof=1), rel=1e-12)
        lo, hi = hdi_nearest(draws, 0.94)
        assert (row["hdi_low"], row["hdi_high"]) == (lo, hi)
        assert row["em"] == pytest.approx(em_rep[name][idx])
        assert row["map"] == row["em"]
        assert row["z"] == pytest.approx((row["em"] - draws.mean()) / draws.std(ddof=1))
        assert row["mcse_mean"] == pytest.approx(draws.std() / np.sqrt(draws.size), rel=0.3)
    assert (table["r_hat"] < 1.01).all()
    assert (table["ess_bulk"] > 1000).all() and (table["ess_tail"] > 1000).all()
    assert res.diagnostics["n_divergences"] == 0  # warm-up divergences ignored
    assert res.diagnostics["n_chains"] == 4 and res.diagnostics["n_draws"] == 500
    assert res.diagnostics["min_bfmi"] > 1.5


def test_switched_chain_is_relabelled_then_agrees():
    idata = make_idata("full")
    switched = permute_chain(idata, chain=1, perm=[1, 2, 0])
    em = true_em("full")
    ref = crosscheck(idata, em, None, "full")
    res = crosscheck(switched, em, None, "full")
    assert res.verdict == "agree", res.reasons
    assert res.labels.between_chain_switch and not res.labels.within_chain_switch
    assert res.labels.is_pure_permutation
    np.testing.assert_array_equal(res.labels.switched_fraction, [0, 1, 0, 0])
    pd.testing.assert_frame_equal(res.table, ref.table)  # relabelling undid the switch
    assert res.table["map"].isna().all()
    assert any(r.startswith("[labels] chain 1: relabelled with permutation") for r in res.reasons)
    assert "between-chain label switching" in res.to_text()


def _switch_draws(idata, draws):
    post = idata["posterior"].to_dataset().copy(deep=True)
    for name in ("weights", "means", "sigmas"):
        sub = post[name].isel(chain=0, draw=draws)
        post[name][dict(chain=0, draw=draws)] = sub.isel(component=[2, 0, 1]).values
    return _replace_posterior(idata, post)


def test_rare_within_chain_switching_is_relabelled_then_agrees():
    idata = make_idata("diag")
    ref = crosscheck(idata, true_em("diag"), None, "diag")
    res = crosscheck(_switch_draws(idata, [10, 200, 333]), true_em("diag"), None, "diag")
    assert res.verdict == "agree", res.reasons
    assert res.labels.within_chain_switch
    assert res.labels.within_chain_fraction[0] == pytest.approx(3 / 500)
    assert any("within-chain label switching" in r for r in res.reasons)
    pd.testing.assert_frame_equal(res.table, ref.table)  # relabelling undid the switches


def test_frequent_within_chain_switching_is_ambiguous():
    """A chain that keeps crossing between labellings has overlapping components."""
    idata = make_idata("diag")
    draws = np.arange(0, 500, 3)
    res = crosscheck(_switch_draws(idata, draws), true_em("diag"), None, "diag")
    assert res.verdict == "ambiguous", res.reasons
    assert res.labels.within_chain_fraction[0] == pytest.approx(len(draws) / 500)
    assert any(
        r.startswith("[ambiguous] labels switch within chains (chain 0: 33.4%") for r in res.reasons
    )
    relaxed = crosscheck(_switch_draws(idata, draws), true_em("diag"), None, "diag", switch_max=0.5)
    assert relaxed.verdict == "agree", relaxed.reasons
    same = crosscheck(
        _switch_draws(idata, draws),
        true_em("diag"),
        None,
        "diag",
        thresholds=Thresholds(switch_max=0.5),
    )
    assert same.reasons == relaxed.reasons and same.thresholds == Thresholds(switch_max=0.5)
    with pytest.raises(TypeError, match="Unknown threshold"):
        crosscheck(idata, true_em("diag"), None, "diag", switchmax=0.5)


def test_chains_in_different_mode_are_ambiguous():
    idata = make_idata("full")
    other_mu = TRUE_MU.copy()
    other_mu[2] = [3.0, 0.5]  # a different configuration, still nearest EM component 2
    other = make_idata("full", seed=9, mu=other_mu)
    post = idata["posterior"].to_dataset().copy(deep=True)
    post["means"][dict(chain=[2, 3])] = other["posterior"]["means"].isel(chain=[2, 3]).values
    res = crosscheck(_replace_posterior(idata, post), true_em("full"), None, "full")
    assert res.verdict == "ambiguous"
    assert res.modes.groups == [[0, 1], [2, 3]]
    assert res.modes.separating.iloc[0]["parameter"] == "means[2,1]"
    assert res.reasons[0].startswith("[ambiguous]")
    assert any("[0, 1] | [2, 3]" in r for r in res.reasons)
    assert any(r.startswith("[ambiguous] means[2,1] separates them") for r in res.reasons)
    assert res.labels.is_pure_permutation  # found by the mode check, not the alignment
    # R-hat and ESS also flag it: every finding is listed
    assert any(r.startswith("[sampler trouble] r_hat") for r in res.reasons)
    assert any(r.startswith("[sampler trouble] min ess_bulk") for r in res.reasons)
    assert "NOTE: chains sit in different modes" in res.to_text()


def test_merged_components_are_ambiguous():
    mu = TRUE_MU.copy()
    mu[2] = [0.2, 2.9]  # components 1 and 2 both sit on EM component 1
    res = crosscheck(make_idata("spherical", mu=mu), true_em("spherical"), None, "spherical")
    assert res.verdict == "ambiguous"
    assert not res.labels.is_pure_permutation
    assert any("relabelling cannot undo" in r for r in res.reasons)


def test_empty_component_is_ambiguous():
    idata = make_idata("diag")
    post = idata["posterior"].to_dataset().copy(deep=True)
    rng = np.random.default_rng(4)
    w = rng.dirichlet([60.0, 100.0, 0.5], size=(4, 500))
    post["weights"][:] = w
    res = crosscheck(_replace_posterior(idata, post), true_em("diag"), None, "diag")
    assert res.verdict == "ambiguous"
    p = float((w[..., 2] < 0.01).mean())
    assert any(
        r.startswith(f"[ambiguous] weights[2]: P(weight < 0.01) = {p:.2f}") for r in res.reasons
    )


def test_em_far_from_posterior_disagrees():
    idata = make_idata("full")
    em = true_em("full")
    em["means"][1, 0] += 0.5  # posterior sd 0.05: 10 sd away
    res = crosscheck(idata, em, None, "full")
    assert res.verdict == "disagree"
    far = [r for r in res.reasons if r.startswith("[disagree]")]
    assert len(far) == 1 and far[0].startswith("[disagree] means[1,0]: EM 0.5 is")
    assert res.table.loc["means[1,0]", "z"] > 3
    assert res.to_text().splitlines()[0] == "EM vs posterior cross-check: DISAGREE"


def test_divergences_are_sampler_trouble():
    idata = make_idata("tied", tied_repeated=True)
    div = np.zeros((4, 500), dtype=bool)
    div[0, [10, 20, 30]] = True
    div[3, 7] = True
    em = true_em("tied")
    em["means"][0, 1] += 0.5  # also disagrees: the more severe verdict wins
    res = crosscheck(_replace_stats(idata, diverging=div), em, None, "tied")
    assert res.verdict == "sampler trouble"
    assert res.diagnostics["n_divergences"] == 4
    assert res.reasons[0] == (
        "[sampler trouble] 4 divergent transitions (0.2% of 2000 draws; per chain [3, 0, 0, 1])"
    )
    assert any(r.startswith("[disagree] means[0,1]") for r in res.reasons)


def test_low_bfmi_and_treedepth_are_sampler_trouble():
    idata = make_idata("spherical")
    rng = np.random.default_rng(2)
    energy = np.cumsum(rng.normal(size=(4, 500)), axis=1)
    hits = np.zeros((4, 500), dtype=bool)
    hits[:, :30] = True  # 6 % of draws
    res = crosscheck(
        _replace_stats(idata, energy=energy, maxdepth_reached=hits),
        true_em("spherical"),
        None,
        "spherical",
    )
    assert res.verdict == "sampler trouble"
    assert sum("BFMI" in r for r in res.reasons) == 4
    assert any("maximum tree depth reached in 120 draws (6.0% > 1%)" in r for r in res.reasons)


def test_poor_mixing_low_ess_and_rhat_are_sampler_trouble():
    idata = make_idata("diag")
    post = idata["posterior"].to_dataset().copy(deep=True)
    rng = np.random.default_rng(6)
    # strongly autocorrelated AR(1) chains for means[0,0]
    x = np.zeros((4, 500))
    for t in range(1, 500):
        x[:, t] = 0.995 * x[:, t - 1] + 0.1 * rng.normal(size=4) * np.sqrt(1 - 0.995**2)
    post["means"][dict(component=0, feature=0)] = TRUE_MU[0, 0] + x
    res = crosscheck(_replace_posterior(idata, post), true_em("diag"), None, "diag")
    assert res.verdict in ("sampler trouble", "ambiguous")
    assert any(
        r.startswith("[sampler trouble] min ess_bulk") and "means[0,0]" in r for r in res.reasons
    )


def test_text_report_and_missing_sample_stats():
    idata = make_idata("full", n_chains=2, n_draws=400)
    em = true_em("full")
    res = crosscheck(xr.DataTree.from_dict({"posterior": idata["posterior"].to_dataset()}), em)
    text = str(res)
    assert text.splitlines()[0] == "EM vs posterior cross-check: AGREE"
    assert "Reasons:" in text and "Table (hdi = 94%" in text and "means[2,1]" in text
    assert any(r.startswith("[note] no sample_stats") for r in res.reasons)
    assert res.diagnostics["has_sample_stats"] is False
    two = {
        "weights": em["weights"][:2],
        "means": em["means"][:2],
        "covariances": em["covariances"][:2],
    }
    with pytest.raises(ValueError, match="pivot_means has shape"):
        crosscheck(idata, two, None, "full")
    with pytest.raises(ValueError, match="'covariances' is missing"):
        crosscheck(idata, {"weights": em["weights"], "means": em["means"]})
