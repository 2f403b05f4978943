"""Label switching and mode detection on mock posteriors (numpy + xarray, no MCMC)."""

import itertools

import numpy as np
import pytest
import xarray as xr

from bayesgmm.gmm.relabel import (
    _best_permutations,
    align_to_pivot,
    detect_label_switching,
    relabel,
)
from bayesgmm.verdict import detect_modes, flatten_draws

MU = np.array([[-3.0, 0.0], [0.0, 3.0], [3.0, -1.0]])
W = np.array([0.3, 0.5, 0.2])
SCALE = np.array([2.5, 1.8])


def make_posterior(n_chains=4, n_draws=300, seed=0, mu=MU, means_sd=0.1):
    """Draws around MU with extra variables that carry (or not) the component dim."""
    rng = np.random.default_rng(seed)
    k, d = mu.shape
    means = mu + rng.normal(scale=means_sd, size=(n_chains, n_draws, k, d))
    w = W if k == len(W) else np.full(k, 1 / k)
    weights = rng.dirichlet(400 * w, size=(n_chains, n_draws))
    sigmas = (
        np.exp(rng.normal(scale=0.05, size=(n_chains, n_draws, k, d))) * (1 + np.arange(k))[:, None]
    )
    coords = {
        "chain": np.arange(n_chains),
        "draw": np.arange(n_draws),
        "component": np.arange(k),
        "feature": ["a", "b"][:d],
    }
    return xr.Dataset(
        {
            "weights": (("chain", "draw", "component"), weights),
            "means": (("chain", "draw", "component", "feature"), means),
            "sigmas": (("chain", "draw", "component", "feature"), sigmas),
            # component dim not right after draw: the dim order must survive relabelling
            "means_t": (("chain", "draw", "feature", "component"), np.swapaxes(means, -1, -2)),
            "noise": (("chain", "draw"), rng.normal(size=(n_chains, n_draws))),
            "fixed": (("component",), np.arange(k, dtype=float)),
        },
        coords=coords,
    )


def permute_draws(ds, chain, draws, perm):
    """Apply old->new relabelling: the draw's component j becomes component perm[j]."""
    ds = ds.copy(deep=True)
    inv = np.argsort(perm)
    for name, da in ds.data_vars.items():
        if "component" in da.dims and "chain" in da.dims:
            sub = da.isel(chain=chain, draw=draws)
            ds[name][dict(chain=chain, draw=draws)] = sub.isel(component=inv).values
    return ds


def test_identity_when_draws_match_pivot():
    post = make_posterior()
    perm = align_to_pivot(post, MU, SCALE)
    assert perm.dims == ("chain", "draw", "component")
    assert np.all(perm.values == np.arange(3))
    rep = detect_label_switching(post, MU, SCALE)
    assert not rep.relabelled
    assert not rep.between_chain_switch and not rep.within_chain_switch
    assert rep.is_pure_permutation
    np.testing.assert_array_equal(rep.switched_fraction, 0.0)
    assert rep.chain_permutations == [(0, 1, 2)] * 4
    xr.testing.assert_identical(relabel(post, perm), post)


def test_one_chain_permuted_is_detected_and_undone():
    post = make_posterior()
    switched = permute_draws(post, chain=2, draws=slice(None), perm=[2, 0, 1])
    rep = detect_label_switching(switched, MU, SCALE)
    assert rep.between_chain_switch
    assert not rep.within_chain_switch
    assert rep.is_pure_permutation
    np.testing.assert_array_equal(rep.switched_fraction, [0, 0, 1, 0])
    # switched component j holds original component argsort([2, 0, 1])[j], so the fix
    # takes switched component p[j] as component j with p = (2, 0, 1)
    assert rep.chain_permutations[2] == (2, 0, 1)
    fixed = relabel(switched, rep.permutations)
    xr.testing.assert_allclose(fixed, post)
    assert any("chain 2" in s and "(2, 0, 1)" in s for s in rep.describe())
    assert any("between-chain" in s for s in rep.describe())


def test_within_chain_switching_is_detected_and_undone():
    post = make_posterior()
    rng = np.random.default_rng(1)
    draws = np.sort(rng.choice(300, size=150, replace=False))
    switched = permute_draws(post, chain=0, draws=draws, perm=[1, 0, 2])
    rep = detect_label_switching(switched, MU, SCALE)
    assert rep.within_chain_switch
    assert rep.within_chain_fraction[0] == pytest.approx(0.5)
    np.testing.assert_array_equal(rep.within_chain_fraction[1:], 0.0)
    assert rep.switched_fraction[0] == pytest.approx(0.5)
    assert rep.is_pure_permutation
    xr.testing.assert_allclose(relabel(switched, rep.permutations), post)
    # the transposed variable keeps its dim order and is permuted consistently
    fixed = relabel(switched, rep.permutations)
    assert fixed["means_t"].dims == ("chain", "draw", "feature", "component")
    np.testing.assert_array_equal(fixed["fixed"].values, post["fixed"].values)
    np.testing.assert_array_equal(fixed["noise"].values, switched["noise"].values)


def test_merged_components_are_not_a_pure_permutation():
    # components 1 and 2 both sit near pivot component 1: no relabelling recovers the pivot
    mu_bad = np.array([[-3.0, 0.0], [0.0, 3.0], [0.3, 2.8]])
    post = make_posterior(mu=mu_bad)
    rep = detect_label_switching(post, MU, SCALE)
    assert not rep.is_pure_permutation
    assert rep.pure_fraction.max() < 0.95
    assert any("NOT a pure permutation" in s for s in rep.describe())


def test_enumeration_matches_hungarian():
    rng = np.random.default_rng(3)
    for k in (2, 3, 4, 5):
        cost = rng.exponential(size=(200, k, k))
        a = _best_permutations(cost, "enumerate")
        b = _best_permutations(cost, "hungarian")
        ca = np.take_along_axis(cost, a[:, :, None], axis=2).sum(axis=(1, 2))
        cb = np.take_along_axis(cost, b[:, :, None], axis=2).sum(axis=(1, 2))
        np.testing.assert_allclose(ca, cb)
        np.testing.assert_array_equal(a, b)  # continuous costs: unique optimum
        # brute force on a few draws
        for i in range(5):
            best = min(
                itertools.permutations(range(k)),
                key=lambda p, c=cost[i]: sum(c[j, p[j]] for j in range(k)),
            )
            np.testing.assert_array_equal(a[i], best)


def test_large_k_uses_hungarian_and_undoes_switch():
    k = 7
    mu = np.column_stack([np.arange(k) * 4.0, np.zeros(k)])
    post = make_posterior(n_chains=2, n_draws=50, mu=mu)
    perm = np.array([3, 6, 0, 1, 5, 2, 4])
    switched = permute_draws(post, chain=1, draws=slice(None), perm=perm)
    rep = detect_label_switching(switched, mu, np.ones(2))
    assert rep.between_chain_switch and rep.is_pure_permutation
    xr.testing.assert_allclose(relabel(switched, rep.permutations), post)


def test_bad_inputs():
    post = make_posterior(n_chains=1, n_draws=5)
    with pytest.raises(ValueError, match="pivot_means has shape"):
        align_to_pivot(post, MU[:2], SCALE)
    with pytest.raises(ValueError, match="scale"):
        align_to_pivot(post, MU, np.array([1.0, 0.0]))
    bad = xr.zeros_like(align_to_pivot(post, MU, SCALE))
    with pytest.raises(ValueError, match=r"permutation of 0\.\.K-1"):
        relabel(post, bad)


def test_modes_single_group():
    post = make_posterior()
    rep = detect_modes(post, ["weights", "means"])
    assert rep.groups == [[0, 1, 2, 3]]
    assert not rep.multimodal
    assert rep.n_parameters == 9
    assert rep.separating.empty
    assert rep.std_diff.max() < 1.0
    assert "one mode" in str(rep)


def test_modes_two_groups_with_separating_parameter():
    post = make_posterior()
    other = make_posterior(seed=5, mu=np.array([[-3.0, 0.0], [0.0, 3.0], [3.0, 2.0]]))
    post["means"][dict(chain=[1, 3])] = other["means"].isel(chain=[1, 3]).values
    rep = detect_modes(post, ["weights", "means"])
    assert rep.groups == [[0, 2], [1, 3]]
    assert rep.multimodal and rep.n_modes == 2
    top = rep.separating.iloc[0]
    assert top["parameter"] == "means[2,1]"
    assert top["std_diff"] > 20
    assert top["mean_group0"] == pytest.approx(-1.0, abs=0.05)
    assert top["mean_group1"] == pytest.approx(2.0, abs=0.05)
    assert set(rep.separating["parameter"]) == {"means[2,1]"}
    text = str(rep)
    assert "[0, 2] | [1, 3]" in text and "means[2,1]" in text


def test_modes_flat_dataarray_and_constants():
    labels, arr = flatten_draws(make_posterior(n_chains=2, n_draws=50), ["weights", "noise"])
    assert labels == ["weights[0]", "weights[1]", "weights[2]", "noise"]
    assert arr.shape == (2, 50, 4)
    arr = np.concatenate([arr, np.ones((2, 50, 1))], axis=-1)  # constant parameter
    da = xr.DataArray(
        arr, dims=("chain", "draw", "parameter"), coords={"parameter": [*labels, "c"]}
    )
    assert detect_modes(da).groups == [[0, 1]]
    arr[1, :, -1] = 2.0  # constant within chains but different between them
    rep = detect_modes(da)
    assert rep.groups == [[0], [1]]
    assert rep.separating.iloc[0]["parameter"] == "c"
    assert np.isinf(rep.separating.iloc[0]["std_diff"])
    one = detect_modes(da.isel(chain=[0]))
    assert one.groups == [[0]] and "one chain only" in str(one)
