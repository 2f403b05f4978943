"""The fast default path of ``BayesGMM`` (no PyTensor compilation) against PyMC's.

- the transforms' log-Jacobian, so that the fused log-density gives ``find_MAP``'s objective
  ``model.logp(jacobian=False)`` and its gradient;
- the MAP by L-BFGS-B on the fused log-density against ``pm.find_MAP``.
"""

import warnings

import numpy as np
import pymc as pm
import pytest

from bayesgmm.em.gaussian import COVARIANCE_TYPES
from bayesgmm.gmm.fast_logp import fast_gmm, find_map_fast
from bayesgmm.gmm.model import build_gmm_model, initial_values_from_em
from tests.gmm.test_fast_logp import REFERENCE_MODE, as_point, make_data, random_vectors

K = 3


@pytest.mark.parametrize("order_feature", [0, None])
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("d", [1, 3])
def test_logp_without_jacobian_equals_pymc(d, covariance_type, order_feature):
    model = build_gmm_model(
        make_data(d=d), n_components=K, covariance_type=covariance_type, order_feature=order_feature
    )
    fast = fast_gmm(model)
    logp_ref = model.compile_logp(jacobian=False, mode=REFERENCE_MODE)
    dlogp_ref = model.compile_dlogp(jacobian=False, mode=REFERENCE_MODE)
    for x in random_vectors(fast, 3, seed=2):
        lp, grad = fast.logp_dlogp_nojac(x)
        point = as_point(fast, x)
        assert lp == pytest.approx(logp_ref(point), rel=1e-12, abs=1e-10)
        np.testing.assert_allclose(grad, dlogp_ref(point), rtol=1e-10, atol=1e-10)


def _em_start(model, X, covariance_type):
    from bayesgmm.em.estimator import GaussianMixture

    em = GaussianMixture(K, covariance_type=covariance_type, random_state=0, n_init=2).fit(X)
    em.reorder_components(np.argsort(em.means_[:, 0]))
    return initial_values_from_em(model, em.weights_, em.means_, em.covariances_, covariance_type)


@pytest.mark.parametrize("order_feature", [0, None])
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_map_equals_pymc_find_map(covariance_type, order_feature):
    X = make_data(n=80, d=2, seed=3)
    model = build_gmm_model(
        X, n_components=K, covariance_type=covariance_type, order_feature=order_feature
    )
    fast = fast_gmm(model)
    start = _em_start(model, X, covariance_type)
    ours = find_map_fast(fast, start)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = pm.find_MAP(
            initvals=start,
            model=model,
            progressbar=False,
            jitter=False,
            return_inferencedata=True,
            compile_kwargs={"mode": REFERENCE_MODE},
        )
    post = ref["posterior"].to_dataset()
    assert set(ours) == set(post.data_vars)
    for name in ours:
        np.testing.assert_allclose(
            ours[name], post[name].values[0, 0], rtol=1e-6, atol=1e-8, err_msg=name
        )
    # the objective at both optima
    logp = model.compile_logp(jacobian=False, mode=REFERENCE_MODE)
    ref_point = {v.name: post[v.name].values[0, 0] for v in model.free_RVs}
    lp_ours = fast.logp_dlogp_nojac(fast.to_unconstrained(ours))[0]
    lp_ref = fast.logp_dlogp_nojac(fast.to_unconstrained(ref_point))[0]
    assert lp_ours == pytest.approx(lp_ref, rel=1e-9)
    assert lp_ours == pytest.approx(logp(as_point(fast, fast.to_unconstrained(ours))), rel=1e-12)


# --------------------------------------------------------------------------------------
# post-processing in NumPy: log-likelihood (LOO), responsibilities
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=COVARIANCE_TYPES)
def fitted(request, faithful):
    from bayesgmm import BayesGMM

    return BayesGMM(
        2,
        covariance_type=request.param,
        random_state=1,
        progressbar=False,
        draws=25,
        tune=50,
        max_predict_draws=20,
    ).fit(faithful)


def _pymc_log_likelihood(model, posterior):
    import xarray as xr

    ll = pm.compute_log_likelihood(
        xr.DataTree.from_dict({"posterior": posterior}),
        model=model,
        extend_inferencedata=False,
        progressbar=False,
        compile_kwargs={"mode": REFERENCE_MODE},
    )
    ll = ll["log_likelihood"] if "log_likelihood" in ll else ll
    return ll.to_dataset() if hasattr(ll, "to_dataset") else ll


def test_log_likelihood_equals_pymc(fitted):
    from bayesgmm.gmm.estimator import log_likelihood_dataset

    posterior = fitted.idata_["posterior"].to_dataset()
    ours = log_likelihood_dataset(posterior, fitted.idata_["observed_data"]["x"].values)
    ref = _pymc_log_likelihood(fitted.model_, posterior)
    assert ours["x"].dims == ref["x"].dims
    np.testing.assert_array_equal(ours["obs"].values, ref["obs"].values)
    np.testing.assert_allclose(ours["x"].values, ref["x"].values, rtol=1e-10, atol=1e-10)


def test_loo_does_not_compile_for_the_plain_model(fitted, monkeypatch):
    import arviz as az

    def refuse(*args, **kwargs):
        raise AssertionError("pm.compute_log_likelihood called on the plain model")

    if "log_likelihood" in fitted.idata_.children:
        del fitted.idata_["log_likelihood"]
    monkeypatch.setattr(pm, "compute_log_likelihood", refuse)
    ours = fitted.loo(pointwise=True)
    monkeypatch.undo()
    tree = fitted.idata_.copy(deep=False)
    tree["log_likelihood"] = _pymc_log_likelihood(
        fitted.model_, fitted.idata_["posterior"].to_dataset()
    )
    ref = az.loo(tree, pointwise=True)
    assert ours.elpd == pytest.approx(ref.elpd, rel=1e-10)
    np.testing.assert_allclose(ours.elpd_i, ref.elpd_i, rtol=1e-10, atol=1e-10)


def test_loo_keeps_pymc_for_an_extended_model(faithful):
    from bayesgmm import BayesGMM

    fitted = BayesGMM(2, random_state=2, progressbar=False, draws=10, tune=20).fit(faithful)
    with fitted.model_:
        pm.Potential("extra", 0.0 * fitted.model_["weights"].sum())
    assert fast_gmm(fitted.model_) is None
    calls = []
    original = pm.compute_log_likelihood

    def spy(*args, **kwargs):
        calls.append(1)
        kwargs["compile_kwargs"] = {"mode": REFERENCE_MODE}
        return original(*args, **kwargs)

    pm.compute_log_likelihood = spy
    try:
        fitted.loo()
    finally:
        pm.compute_log_likelihood = original
    assert calls == [1]


def test_responsibilities_equal_scipy(fitted, faithful):
    from scipy.special import logsumexp
    from scipy.stats import multivariate_normal

    from bayesgmm.verdict import SAMPLE_DIMS

    X = faithful[:30]
    resp = fitted.responsibilities(X).values
    post = fitted.idata_["posterior"].to_dataset()
    stack = {
        name: post[name].stack(sample=SAMPLE_DIMS).transpose("sample", ...).values
        for name in ("weights", "means", "chol_cov")
    }
    n_draws = stack["weights"].shape[0]
    keep = np.unique(np.linspace(0, n_draws - 1, fitted.max_predict_draws).astype(int))
    assert resp.shape == (keep.size, 30, 2)
    for row, s in enumerate(keep):
        w, mu, L = stack["weights"][s], stack["means"][s], stack["chol_cov"][s]
        logp = np.stack(
            [np.log(w[k]) + multivariate_normal(mu[k], L[k] @ L[k].T).logpdf(X) for k in range(2)],
            axis=1,
        )
        np.testing.assert_allclose(
            resp[row], np.exp(logp - logsumexp(logp, axis=1, keepdims=True)), atol=1e-10
        )


def test_default_fit_does_not_call_pymc_find_map(faithful, monkeypatch):
    from bayesgmm import BayesGMM
    from bayesgmm.gmm import estimator

    def refuse(*args, **kwargs):
        raise AssertionError("the PyTensor MAP was used for the plain model")

    monkeypatch.setattr(estimator, "find_map", refuse)
    fitted = BayesGMM(2, random_state=3, progressbar=False, draws=10, tune=20).fit(faithful)
    assert set(fitted.map_) == {"weights", "means", "covariances"}


def test_sample_follows_the_posterior_draw(fitted):
    """With one posterior draw kept, ``sample`` draws from that mixture: label frequencies
    against the weights, and each component's squared Mahalanobis distances against
    scipy's chi-squared (Kolmogorov-Smirnov)."""
    from scipy.stats import chi2, kstest

    from bayesgmm.verdict import SAMPLE_DIMS

    saved = fitted.max_predict_draws
    fitted.max_predict_draws = 1
    try:
        X, labels = fitted.sample(20000, random_state=5)
    finally:
        fitted.max_predict_draws = saved
    post = fitted.idata_["posterior"].to_dataset()
    first = {
        name: post[name].stack(sample=SAMPLE_DIMS).transpose("sample", ...).values[0]
        for name in ("weights", "means", "chol_cov")
    }
    w = first["weights"]
    counts = np.bincount(labels, minlength=w.size)
    sd = np.sqrt(len(labels) * w * (1 - w))
    assert np.all(np.abs(counts - len(labels) * w) < 5 * sd)
    for k in range(w.size):
        L = first["chol_cov"][k]
        z = np.linalg.solve(L, (X[labels == k] - first["means"][k]).T)
        assert kstest((z * z).sum(axis=0), chi2(df=X.shape[1]).cdf).pvalue > 1e-4


def test_unchecked_nutpie_version_falls_back_to_the_pytensor_graph(monkeypatch):
    """nutpie internals are used only under a checked release series; any other version
    warns and declines, so sample_nuts compiles the PyTensor graph instead."""
    import nutpie

    from bayesgmm.gmm import fastnuts

    assert fastnuts.nutpie_internals_checked()  # the installed one is checked
    assert not fastnuts.nutpie_internals_checked("0.99.1")
    assert not fastnuts.nutpie_internals_checked("1.16.0")
    X = np.random.default_rng(0).normal(size=(40, 2))
    model = build_gmm_model(X, n_components=1)
    monkeypatch.setattr(nutpie, "__version__", "0.99.1")
    with pytest.warns(RuntimeWarning, match="PyTensor graph"):
        assert fastnuts.compile_fast_gmm(model, {}) is None
