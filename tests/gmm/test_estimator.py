"""BayesGMM against independent references: EM on Old Faithful, posteriordb's long Stan runs,
known truth, and the ambiguity of a collapsed posterior."""

import json

import arviz as az
import numpy as np
import pandas as pd
import pytest

from bayesgmm.datasets import load_faithful, make_mixture
from bayesgmm.gmm.crosscheck import posterior_reporting_parameters
from bayesgmm.gmm.estimator import BayesGMM
from tests.helpers import SHARED_DATA

POSTERIORDB = SHARED_DATA / "posteriordb"
# posteriordb low_dim_gauss_mix priors: theta ~ Beta(5, 5) (= Dirichlet(5, 5) for K = 2),
# mu ~ Normal(0, 2) ordered, sigma ~ HalfNormal(2)
POSTERIORDB_PRIORS = {"weights_alpha": 5.0, "means_mu": 0.0, "means_sigma": 2.0, "sigma_scale": 2.0}


@pytest.fixture(scope="module")
def faithful_fit():
    X = load_faithful()
    return X, BayesGMM(2, random_state=1, progressbar=False).fit(X)


def test_faithful_em_agrees_with_posterior(faithful_fit):
    _, model = faithful_fit
    check = model.crosscheck_
    assert check.verdict == "agree", check.to_text()
    table = check.table
    assert (table["z"].abs() <= 3).all()
    assert (table["r_hat"] <= 1.01).all()
    assert check.diagnostics["n_divergences"] == 0
    assert len(check.modes.groups) == 1
    assert len(table) == 2 + 4 + 4 + 2  # weights, means, sds, correlations
    # the posterior mean of the means is close to EM in absolute terms too (Old Faithful)
    means = table.loc[["means[0,0]", "means[0,1]", "means[1,0]", "means[1,1]"], "mean"]
    np.testing.assert_allclose(means, [2.036, 54.48, 4.29, 79.97], rtol=0.01)


def test_faithful_predictions(faithful_fit):
    X, model = faithful_fit
    proba, sd = model.predict_proba(X, return_std=True)
    assert proba.shape == sd.shape == (len(X), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    # posterior labels agree with EM's on points far from the boundary
    clear = model.em_.predict_proba(X).max(axis=1) > 0.99
    assert np.array_equal(model.predict(X)[clear], model.em_.predict(X)[clear])
    # posterior predictive density is close to the EM plug-in density, and slightly lower
    assert model.score(X) == pytest.approx(model.em_.score(X), abs=0.01)
    draws, labels = model.sample(2000, random_state=0)
    assert draws.shape == (2000, 2)
    np.testing.assert_allclose(np.bincount(labels) / 2000, model.em_.weights_, atol=0.05)


def test_faithful_loo_and_save_load(faithful_fit, tmp_path):
    X, model = faithful_fit
    loo = model.loo()
    # elpd_loo is a little below the in-sample posterior predictive log density
    in_sample = model.score_samples(X).sum()
    assert in_sample - 20 < loo.elpd < in_sample
    model.save(tmp_path / "fit.nc")
    loaded = BayesGMM.load(tmp_path / "fit.nc")
    for name in ("weights", "means", "chol_cov"):
        np.testing.assert_array_equal(
            loaded.idata_["posterior"][name].values, model.idata_["posterior"][name].values
        )
    assert loaded.get_params() == model.get_params()
    assert loaded.crosscheck_.verdict == model.crosscheck_.verdict
    pd.testing.assert_frame_equal(loaded.crosscheck_.table, model.crosscheck_.table)
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))


def _posteriordb(name):
    folder = POSTERIORDB / name
    data = json.loads((folder / "data.json").read_text())
    return np.asarray(data["y"], dtype=float)[:, None], folder


def _scalar_mcse_sd(posterior):
    """MCSE of the posterior sd of each scalar, keyed like the cross-check table's rows."""
    out = {}
    for name, da in az.mcse(posterior, method="sd").data_vars.items():
        for idx in np.ndindex(da.shape):
            out[f"{name}[{','.join(map(str, idx))}]" if idx else name] = da.values[idx]
    return out


def test_matches_posteriordb_reference_within_monte_carlo_error():
    y, folder = _posteriordb("low_dim_gauss_mix-low_dim_gauss_mix")
    reference = json.loads((folder / "reference_summary.json").read_text())["params"]
    model = BayesGMM(2, priors=POSTERIORDB_PRIORS, random_state=3, progressbar=False).fit(y)
    assert model.crosscheck_.verdict == "agree", model.crosscheck_.to_text()
    table = model.crosscheck_.table
    sd_mcses = _scalar_mcse_sd(posterior_reporting_parameters(model.crosscheck_.posterior, "full"))
    ours = {
        "mu[1]": "means[0,0]",
        "mu[2]": "means[1,0]",
        "sigma[1]": "sd[0,0]",
        "sigma[2]": "sd[1,0]",
        "theta": "weights[0]",
    }
    for ref_name, our_name in ours.items():
        ref = reference[ref_name]
        row = table.loc[our_name]
        # reference MCSE: between-chain spread of its 10 chain means
        ref_mcse = np.std(ref["chain_means"], ddof=1) / np.sqrt(len(ref["chain_means"]))
        mcse = np.hypot(row["mcse_mean"], ref_mcse)
        assert abs(row["mean"] - ref["mean"]) < 4 * mcse, (our_name, row["mean"], ref["mean"])
        # MCSE of our sd (ArviZ: from the ESS of the squared deviations) combined with the
        # reference's: 10,000 nearly independent Stan draws give sd / sqrt(2 * 10,000)
        ref_sd_mcse = ref["sd"] / np.sqrt(2 * ref["n_draws"])
        sd_mcse = np.hypot(float(sd_mcses[our_name]), ref_sd_mcse)
        assert abs(row["sd"] - ref["sd"]) < 4 * sd_mcse, (our_name, row["sd"], ref["sd"])


def test_collapsed_posterior_is_flagged_not_agreed():
    """posteriordb's low_dim_gauss_mix_collapse: poorly separated data, unordered means."""
    y, _ = _posteriordb("low_dim_gauss_mix_collapse-low_dim_gauss_mix_collapse")
    model = BayesGMM(
        2, priors=POSTERIORDB_PRIORS, order_feature=None, random_state=4, progressbar=False
    ).fit(y)
    assert model.crosscheck_.verdict != "agree", model.crosscheck_.to_text()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_components": 0}, "n_components must be an integer >= 1"),
        ({"chains": 0}, "chains must be an integer >= 1"),
        ({"draws": -5}, "draws must be an integer >= 1"),
        ({"sampler": "stan"}, "sampler must be one of"),
        ({"covariance_type": "banded"}, "covariance_type"),
        ({"n_components": 500}, "n_components"),
    ],
)
def test_bad_settings_are_clear_errors(kwargs, match):
    X = load_faithful()
    with pytest.raises(ValueError, match=match):
        BayesGMM(**kwargs, progressbar=False).fit(X)


@pytest.mark.parametrize(
    ("X", "match"),
    [
        # NaN is a missing entry (issue 16); inf and a never-observed column stay errors
        (np.array([[1.0, np.inf], [2.0, 3.0], [4.0, 5.0]]), "inf"),
        (np.array([[1.0, np.nan], [2.0, np.nan], [4.0, np.nan]]), "no observed value"),
        (np.array([[1.0, 2.0], [np.nan, np.nan], [np.nan, np.nan]]), "at least 2"),
        (np.zeros((0, 2)), "empty"),
        (np.arange(10.0), "2-D"),
        (
            pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": ["x", "y", "z"]}),
            r"non-numeric columns \['b'\]",
        ),
    ],
)
def test_bad_data_are_clear_errors(X, match):
    with pytest.raises(ValueError, match=match):
        BayesGMM(2, progressbar=False).fit(X)


def test_not_fitted_and_wrong_features():
    with pytest.raises(ValueError, match="not fitted"):
        BayesGMM(2).predict(np.zeros((3, 2)))


@pytest.mark.slow
@pytest.mark.parametrize("scale", [1e-6, 1e6])
def test_extreme_scales_work_because_priors_are_data_scaled(scale):
    data = make_mixture(300, 2, 2, separation=4.0, seed=8)
    X = data.X * scale + 3 * scale
    model = BayesGMM(2, random_state=0, progressbar=False, draws=500, tune=500).fit(X)
    assert model.crosscheck_.verdict == "agree", model.crosscheck_.to_text()


@pytest.mark.slow
def test_single_component():
    X = make_mixture(200, 1, 2, seed=9).X
    model = BayesGMM(1, random_state=0, progressbar=False, draws=500, tune=500).fit(X)
    assert model.crosscheck_.verdict == "agree", model.crosscheck_.to_text()
    np.testing.assert_allclose(model.predict_proba(X), 1.0)


@pytest.mark.slow
def test_interval_coverage_on_known_truth():
    """94% intervals cover the true parameters at about the nominal rate (K=3, D=2)."""
    covered = []
    for seed in range(4):
        data = make_mixture(600, 3, 2, separation=3.0, seed=seed)
        model = BayesGMM(3, random_state=seed, progressbar=False, draws=600, tune=600).fit(data.X)
        table = model.crosscheck_.table
        order = np.argsort(data.means[:, 0])  # the model orders components by feature 0
        truth = {f"weights[{j}]": data.weights[k] for j, k in enumerate(order)}
        for j, k in enumerate(order):
            for d in range(2):
                truth[f"means[{j},{d}]"] = data.means[k, d]
                truth[f"sd[{j},{d}]"] = np.sqrt(data.covariances[k, d, d])
        for name, value in truth.items():
            covered.append(table.loc[name, "hdi_low"] <= value <= table.loc[name, "hdi_high"])
    rate = np.mean(covered)
    # 60 intervals, nominal 0.94: a binomial 99.9% lower bound is about 0.80
    assert rate >= 0.80, rate


def test_responsibility_summary_and_plots(faithful_fit):
    import matplotlib

    matplotlib.use("Agg")
    from scipy import stats

    from bayesgmm.gmm.plotting import ellipse_path, plot_components, plot_responsibilities

    X, model = faithful_fit
    summary = model.responsibility_summary(X, prob=0.9)
    resp = model.responsibilities(X)
    np.testing.assert_allclose(summary["mean"].values, model.predict_proba(X))
    np.testing.assert_allclose(
        summary["low"].values, np.quantile(resp.values, 0.05, axis=0), rtol=1e-12
    )
    assert (summary["low"] <= summary["high"]).all()
    np.testing.assert_allclose(
        summary["high"].values, np.quantile(resp.values, 0.95, axis=0), rtol=1e-12
    )
    # the ellipse is the chi-square(2) contour of the component
    cov = model.em_.covariances_[0]
    path = ellipse_path(model.em_.means_[0], cov, prob=0.9)
    dev = path - model.em_.means_[0]
    maha = np.einsum("ni,ij,nj->n", dev, np.linalg.inv(cov), dev)
    np.testing.assert_allclose(maha, stats.chi2(2).ppf(0.9), rtol=1e-10)
    ax = plot_components(model, X, n_draws=5)
    assert len(ax.lines) == 5 * 2 + 2 * 2  # posterior ellipses, EM ellipses and centres
    ax = plot_responsibilities(model, X, n_show=10)
    assert len(ax.get_yticks()) == 10
    with pytest.raises(ValueError, match="prob must be in"):
        model.responsibility_summary(X, prob=1.5)
