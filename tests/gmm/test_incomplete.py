"""Missing entries (NaN) and measurement errors in the Bayesian GMM, against scipy."""

import numpy as np
import pymc as pm
import pytest
from pytensor.compile.mode import Mode
from scipy import stats
from scipy.special import logsumexp

from bayesgmm.em.gaussian import COVARIANCE_TYPES
from bayesgmm.gmm.fast_logp import fast_gmm
from bayesgmm.gmm.incomplete import (
    check_noise_cov,
    conditional_gaussians,
    missing_patterns,
    observed_log_prob,
    posterior_predictive_draws,
)
from bayesgmm.gmm.model import OBS_VAR, build_gmm_model

K = 2
#: pure-Python linker: nothing compiled (the graphs here are tiny)
PY_MODE = Mode(linker="py", optimizer="fast_compile")


def incomplete_data(n=24, d=3, frac=0.3, seed=0):
    rng = np.random.default_rng(seed)
    centres = np.array([[-2.0, 0.0, 1.0], [2.0, 1.0, -1.0]])[:, :d]
    X = centres[rng.integers(0, K, n)] + rng.normal(size=(n, d))
    X[rng.random((n, d)) < frac] = np.nan
    X[np.isnan(X).all(axis=1), 0] = 0.5  # no empty rows
    return X


def noise_covs(n, d, seed=1):
    rng = np.random.default_rng(seed)
    A = 0.4 * rng.normal(size=(n, d, d))
    return A @ np.swapaxes(A, 1, 2)


def scipy_loglik(X, w, mu, cov, noise=None):
    """Row by row: log sum_k w_k N(x_o | mu_o, (Sigma_k + S_i)_oo) by scipy."""
    out = []
    for i, x in enumerate(X):
        o = ~np.isnan(x)
        s = 0.0 if noise is None else noise[i]
        comp = [
            np.log(w[k])
            + stats.multivariate_normal(mu[k][o], (cov[k] + s)[np.ix_(o, o)]).logpdf(x[o])
            for k in range(len(w))
        ]
        out.append(logsumexp(comp))
    return np.array(out)


def logp_and_params(model, n_points=2, seed=0):
    """Pointwise observed logp and (weights, means, covariances) at random points."""
    outs = [model.logp(vars=[model[OBS_VAR]], sum=False)[0]]
    outs += model.replace_rvs_by_values([model["weights"], model["means"], model["chol_cov"]])
    fn = model.compile_fn(
        outs, inputs=model.value_vars, point_fn=True, on_unused_input="ignore", mode=PY_MODE
    )
    rng = np.random.default_rng(seed)
    ip = model.initial_point()
    for _ in range(n_points):
        point = {k: v + rng.normal(scale=0.5, size=v.shape) for k, v in ip.items()}
        lp, w, mu, chol = fn(point)
        yield point, lp, w, mu, chol @ np.swapaxes(chol, -1, -2)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("noise", [None, "full", "diag"])
def test_logp_matches_scipy_on_observed_coordinates(covariance_type, noise):
    X = incomplete_data()
    n, d = X.shape
    S = {None: None, "full": noise_covs(n, d), "diag": np.random.default_rng(2).random((n, d))}
    noise_cov = S[noise]
    model = build_gmm_model(X, n_components=K, covariance_type=covariance_type, noise_cov=noise_cov)
    full_noise = None
    if noise_cov is not None:
        full_noise = (
            noise_cov if noise_cov.ndim == 3 else np.apply_along_axis(np.diag, 1, noise_cov)
        )
    for _, lp, w, mu, cov in logp_and_params(model):
        assert lp.shape == (n,)
        np.testing.assert_allclose(lp, scipy_loglik(X, w, mu, cov, full_noise), rtol=1e-10, atol=0)
        # and the NumPy maths used for predictions
        np.testing.assert_allclose(
            observed_log_prob(X, w, mu, cov, full_noise)[0], lp, rtol=1e-10, atol=0
        )


def test_gradient_matches_finite_differences():
    """The PyTensor gradient (through the per-pattern and per-row Cholesky factors)."""
    X = incomplete_data(n=6, d=2)
    model = build_gmm_model(X, n_components=K, noise_cov=noise_covs(*X.shape))
    logp = model.compile_logp(mode=PY_MODE)
    dlogp = model.compile_dlogp(mode=PY_MODE)
    point = next(logp_and_params(model, 1, seed=3))[0]
    names = [v.name for v in model.value_vars]
    flat = np.concatenate([np.ravel(point[n]) for n in names])
    sizes = np.cumsum([0] + [np.size(point[n]) for n in names])

    def at(x):
        return {
            n: x[a:b].reshape(np.shape(point[n]))
            for n, a, b in zip(names, sizes[:-1], sizes[1:], strict=True)
        }

    h = 1e-5
    fd = np.array(
        [(logp(at(flat + h * e)) - logp(at(flat - h * e))) / (2 * h) for e in np.eye(flat.size)]
    )
    np.testing.assert_allclose(dlogp(at(flat)), fd, rtol=1e-6, atol=1e-6)


def test_complete_noise_free_model_is_unchanged():
    X = np.nan_to_num(incomplete_data(), nan=0.25)
    plain = build_gmm_model(X, n_components=K)
    zero = build_gmm_model(X, n_components=K, noise_cov=np.zeros(X.shape))
    assert [v.name for v in plain.free_RVs] == [v.name for v in zero.free_RVs]
    assert sorted(plain.named_vars) == sorted(zero.named_vars)
    for model in (plain, zero):
        obs = model[OBS_VAR].owner
        assert len(obs.op.dist_params(obs)) == 3
    a = plain.compile_logp(mode=PY_MODE)
    b = zero.compile_logp(mode=PY_MODE)
    for point, *_ in logp_and_params(plain, 2, seed=5):
        assert a(point) == b(point)
    assert fast_gmm(zero) is not None


@pytest.mark.parametrize(
    ("covariance_type", "noise"),
    [("full", "full"), ("tied", "diag"), ("diag", "diag"), ("spherical", "full")],
)
def test_fast_kernel_with_noise_equals_pymc(covariance_type, noise):
    """Measurement errors (with missing entries for full errors): the fused row-by-row
    pass against ``model.logp()`` and ``model.dlogp()``."""
    X = incomplete_data(n=20, seed=4) + 5.0
    n, d = X.shape
    if noise == "full":
        noise_cov = noise_covs(n, d, seed=5)
    else:
        X, noise_cov = np.nan_to_num(X, nan=5.0), np.random.default_rng(5).random((n, d))
    model = build_gmm_model(X, n_components=3, covariance_type=covariance_type, noise_cov=noise_cov)
    fast = fast_gmm(model)
    assert fast is not None
    logp_ref = model.compile_logp(mode=PY_MODE)
    dlogp_ref = model.compile_dlogp(mode=PY_MODE)
    x = np.random.default_rng(0).normal(scale=0.7, size=fast.n_dim)
    lp, grad = fast.logp_dlogp(x)
    point = {k: v for k, v in fast.expand(x).items() if k in fast.value_names}
    assert lp == pytest.approx(logp_ref(point), rel=1e-12, abs=1e-10)
    np.testing.assert_allclose(grad, dlogp_ref(point), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize(
    ("covariance_type", "order_feature"), [(ct, 0) for ct in COVARIANCE_TYPES] + [("full", None)]
)
def test_fast_kernel_with_missing_entries_equals_pymc(covariance_type, order_feature):
    """The fused numba log-density (complete rows, then one pass per missingness pattern)
    against ``model.logp()`` and ``model.dlogp()`` of the PyMC graph."""
    X = incomplete_data(n=40, seed=3) + 5.0
    model = build_gmm_model(
        X, n_components=3, covariance_type=covariance_type, order_feature=order_feature
    )
    fast = fast_gmm(model)
    assert fast is not None
    logp_ref = model.compile_logp(mode=PY_MODE)
    dlogp_ref = model.compile_dlogp(mode=PY_MODE)
    for seed in range(2):
        x = np.random.default_rng(seed).normal(scale=0.7, size=fast.n_dim)
        lp, grad = fast.logp_dlogp(x)
        point = {k: v for k, v in fast.expand(x).items() if k in fast.value_names}
        assert lp == pytest.approx(logp_ref(point), rel=1e-12, abs=1e-10)
        np.testing.assert_allclose(grad, dlogp_ref(point), rtol=1e-10, atol=1e-10)


def test_observed_data_keeps_nan_and_no_imputation_variables():
    X = incomplete_data()
    model = build_gmm_model(X, n_components=K)
    assert [v.name for v in model.free_RVs] == [
        "weights",
        "means_ordered",
        "means_free",
        "sigmas",
        "chol_corr",
    ]
    data = model.rvs_to_values[model[OBS_VAR]].data
    np.testing.assert_array_equal(np.isnan(data), np.isnan(X))


def test_noisy_generator_adds_the_errors():
    """K = 1: x ~ N(mu, Sigma + S), checked on one prior predictive draw of many rows."""
    n, d = 4000, 2
    S = np.array([[0.5, 0.3], [0.3, 0.4]])
    model = build_gmm_model(
        np.zeros((n, d)),
        n_components=1,
        noise_cov=np.broadcast_to(S, (n, d, d)),
        priors={"weights_alpha": 1.0, "means_mu": 0.0, "means_sigma": 1.0, "sigma_scale": 1.0},
    )
    idata = pm.sample_prior_predictive(
        draws=1, model=model, random_seed=4, compile_kwargs={"mode": PY_MODE}
    )
    x = idata["prior_predictive"][OBS_VAR].values[0, 0]
    chol = idata["prior"]["chol_cov"].values[0, 0, 0]
    expected = chol @ chol.T + S
    # sd of a sample covariance entry ~ sqrt(2/n) * scale: 5 sds
    np.testing.assert_allclose(np.cov(x.T), expected, atol=5 * np.sqrt(2 / n) * expected.max())


def test_conditional_gaussians_match_joint_gaussian_conditioning():
    rng = np.random.default_rng(6)
    d = 3
    X = np.array([[0.3, np.nan, -1.0], [np.nan, np.nan, 2.0], [np.nan] * 3])
    mu = rng.normal(size=(K, d))
    A = rng.normal(size=(K, d, d))
    cov = A @ np.swapaxes(A, 1, 2) + np.eye(d)
    S = noise_covs(3, d, seed=7)
    for target in ("measurement", "truth"):
        log_dens, cmean, ccov = conditional_gaussians(X, mu, cov, S, target=target)
        for i, x in enumerate(X):
            o = ~np.isnan(x)
            for k in range(K):
                # joint of (target, x_o) as one Gaussian, conditioned with a pseudo-inverse
                meas = cov[k] + S[i]
                tgt = meas if target == "measurement" else cov[k]
                cross = meas[:, o] if target == "measurement" else cov[k][:, o]
                c_oo = meas[np.ix_(o, o)]
                gain = cross @ np.linalg.pinv(c_oo) if o.any() else np.zeros((d, 0))
                np.testing.assert_allclose(
                    cmean[i, k], mu[k] + gain @ (x[o] - mu[k][o]), rtol=1e-10, atol=1e-12
                )
                np.testing.assert_allclose(ccov[i, k], tgt - gain @ cross.T, rtol=1e-10, atol=1e-12)
                ref = stats.multivariate_normal(mu[k][o], c_oo).logpdf(x[o]) if o.any() else 0.0
                np.testing.assert_allclose(log_dens[i, k], ref, rtol=1e-12)


def test_posterior_predictive_draws_match_the_conditional_mixture():
    """One parameter value, many draws: mean and variance of the drawn missing entry equal
    the moments of the conditional mixture sum_k p(k | x_o) N(m_k, v_k)."""
    rng = np.random.default_rng(8)
    w = np.array([0.3, 0.7])
    mu = np.array([[-1.0, 0.0], [1.5, 2.0]])
    cov = np.array([[[1.0, 0.6], [0.6, 1.0]], [[0.5, -0.2], [-0.2, 0.8]]])
    X = np.array([[0.4, np.nan], [np.nan, 1.0], [2.0, 3.0]])
    res = posterior_predictive_draws(
        X, [(w, mu, cov)] * 2000, None, target="measurement", prob=0.9, rng=rng
    )
    np.testing.assert_array_equal(res.draws[:, 2], np.broadcast_to(X[2], (2000, 2)))
    _, resp = observed_log_prob(X, w, mu, cov)
    _, cmean, ccov = conditional_gaussians(X, mu, cov)
    for i, j in ((0, 1), (1, 0)):
        m = resp[i] @ cmean[i, :, j]
        v = resp[i] @ (ccov[i, :, j, j] + cmean[i, :, j] ** 2) - m**2
        np.testing.assert_allclose(res.mean[i, j], m, rtol=1e-12)
        draws = res.draws[:, i, j]
        assert abs(draws.mean() - m) < 5 * np.sqrt(v / draws.size)
        assert abs(draws.var() / v - 1) < 5 * np.sqrt(2 / draws.size) * 2  # heavier tails
        assert res.low[i, j] < m < res.high[i, j]
    assert res.missing.tolist() == np.isnan(X).tolist()


def test_missing_patterns_partition_the_rows():
    X = incomplete_data(n=40)
    pats = missing_patterns(~np.isnan(X))
    rows = np.sort(np.concatenate([r for _, r in pats]))
    np.testing.assert_array_equal(rows, np.arange(40))
    for o, r in pats:
        np.testing.assert_array_equal(
            ~np.isnan(X[r]), np.broadcast_to(np.isin(np.arange(3), o), (r.size, 3))
        )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (
            {"X": np.array([[1.0, np.nan], [np.nan, np.nan], [2.0, 2.0]])},
            "every coordinate missing",
        ),
        ({"X": np.array([[1.0, np.inf], [0.0, 1.0], [2.0, 2.0]])}, "inf"),
        ({"X": np.array([[1.0, np.nan], [0.0, np.nan], [2.0, np.nan]])}, "no observed value"),
        ({"noise_cov": np.ones((3, 3))}, r"noise_cov must have shape"),
        ({"noise_cov": -np.ones((3, 2))}, r"variances.*>= 0"),
        ({"noise_cov": np.broadcast_to([[1.0, 2.0], [2.0, 1.0]], (3, 2, 2))}, "positive semi"),
        ({"noise_cov": np.broadcast_to([[1.0, 0.5], [0.1, 1.0]], (3, 2, 2))}, "symmetric"),
    ],
)
def test_bad_incomplete_input_raises(kwargs, match):
    args = {"X": np.array([[1.0, 0.0], [0.0, 1.0], [2.0, 2.0]]), "n_components": 2, **kwargs}
    with pytest.raises(ValueError, match=match):
        build_gmm_model(**args)


def test_check_noise_cov_diagonal_flag():
    X = np.zeros((4, 2))
    full, diag = check_noise_cov(np.ones((4, 2)), X)
    assert diag and full.shape == (4, 2, 2)
    np.testing.assert_array_equal(full[0], np.eye(2))
    assert not check_noise_cov(noise_covs(4, 2), X)[1]
    assert check_noise_cov(np.zeros((4, 2)), X) == (None, False)
    # entries of missing coordinates are ignored (EM's rule)
    X[0, 1] = np.nan
    S = np.ones((4, 2))
    S[0, 1] = np.nan
    np.testing.assert_array_equal(check_noise_cov(S, X)[0][0], np.diag([1.0, 0.0]))


# --------------------------------------------------------------------------------------
# BayesGMM's imputation, deconvolution and predictions on a known posterior
# --------------------------------------------------------------------------------------


def fitted_on(weights, means, covs, n_features):
    """A BayesGMM whose posterior is the given draws (S, ...), one chain."""
    import xarray as xr

    from bayesgmm import BayesGMM

    chol = np.linalg.cholesky(covs)
    post = xr.Dataset(
        {
            "weights": (("chain", "draw", "component"), weights[None]),
            "means": (("chain", "draw", "component", "feature"), means[None]),
            "chol_cov": (("chain", "draw", "component", "feature", "feature_"), chol[None]),
        }
    )
    est = BayesGMM(2, max_predict_draws=len(weights))
    est.idata_ = xr.DataTree.from_dict({"posterior": post})
    est.n_features_in_ = n_features
    return est


TWO_DRAWS = (
    np.array([[0.4, 0.6], [0.5, 0.5]]),
    np.array([[[-1.0, 0.0], [1.0, 2.0]], [[-1.2, 0.1], [0.9, 2.2]]]),
    np.array(
        [
            [[[1.0, 0.5], [0.5, 2.0]], [[0.6, -0.2], [-0.2, 0.5]]],
            [[[1.1, 0.4], [0.4, 1.8]], [[0.7, -0.1], [-0.1, 0.6]]],
        ]
    ),
)


def test_impute_means_and_predictions_match_closed_forms():
    weights, means, covs = TWO_DRAWS
    est = fitted_on(weights, means, covs, 2)
    X = np.array([[0.3, np.nan], [np.nan, 1.5], [0.5, 1.0], [np.nan, np.nan]])
    res = est.impute(X, random_state=0)
    assert res.draws.shape == (2, 4, 2) and res.mean.shape == res.low.shape == (4, 2)
    expected_mean, expected_resp, expected_ll = np.zeros((4, 2)), np.zeros((2, 4, 2)), []
    for s in range(2):
        w, mu, cov = weights[s], means[s], covs[s]
        ll = np.zeros(4)
        for i, x in enumerate(X):
            o = ~np.isnan(x)
            if o.all():
                dens = [stats.multivariate_normal(mu[k], cov[k]).pdf(x) for k in range(2)]
                cond = [x, x]
            elif o.any():
                a, b = np.flatnonzero(o)[0], np.flatnonzero(~o)[0]
                dens = [stats.norm(mu[k, a], np.sqrt(cov[k, a, a])).pdf(x[a]) for k in range(2)]
                cond = []
                for k in range(2):
                    c = x.copy()
                    c[b] = mu[k, b] + cov[k, b, a] / cov[k, a, a] * (x[a] - mu[k, a])
                    cond.append(c)
            else:
                dens, cond = [1.0, 1.0], [mu[0], mu[1]]
            r = w * np.array(dens) / np.dot(w, dens)
            expected_resp[s, i] = r
            expected_mean[i] += 0.5 * (r[0] * cond[0] + r[1] * cond[1])
            ll[i] = np.log(np.dot(w, dens)) if o.any() else 0.0
        expected_ll.append(ll)
    np.testing.assert_allclose(res.mean, expected_mean, rtol=1e-10)
    np.testing.assert_array_equal(
        res.draws[:, ~np.isnan(X)], np.broadcast_to(X[~np.isnan(X)], (2, 4))
    )
    assert np.isfinite(res.draws).all()
    np.testing.assert_allclose(est.predict_proba(X), expected_resp.mean(axis=0), rtol=1e-10)
    np.testing.assert_allclose(est.log_density_draws(X), np.array(expected_ll), rtol=1e-10)
    # LOO's pointwise log-likelihood (NumPy) marginalises the NaN in the same way
    from bayesgmm.gmm.estimator import log_likelihood_dataset

    ll = log_likelihood_dataset(est.idata_["posterior"].to_dataset(), X)["x"].values[0]
    np.testing.assert_allclose(ll, np.array(expected_ll), rtol=1e-10)
    # complete rows: the complete-data path, same numbers
    np.testing.assert_allclose(
        est.log_density_draws(X[2:3]), np.array(expected_ll)[:, 2:3], rtol=1e-10
    )


def test_deconvolve_matches_the_gaussian_posterior_of_the_true_position():
    weights, means, covs = TWO_DRAWS
    est = fitted_on(weights[:1], means[:1], covs[:1], 2)
    X = np.array([[0.3, 1.0], [2.0, np.nan]])
    S = np.array([[[0.5, 0.1], [0.1, 0.3]], [[0.2, 0.0], [0.0, 0.4]]])
    res = est.deconvolve(X, S, random_state=0)
    w, mu, cov = weights[0], means[0], covs[0]
    expected_ll = []
    for i, x in enumerate(X):
        o = ~np.isnan(x)
        dens, post = [], []
        for k in range(2):
            c = (cov[k] + S[i])[np.ix_(o, o)]
            dens.append(stats.multivariate_normal(mu[k][o], c).pdf(x[o]))
            post.append(mu[k] + cov[k][:, o] @ np.linalg.solve(c, x[o] - mu[k][o]))
        r = w * np.array(dens) / np.dot(w, dens)
        np.testing.assert_allclose(res.mean[i], r @ np.array(post), rtol=1e-10)
        expected_ll.append(np.log(np.dot(w, dens)))
    # LOO's NumPy log-likelihood with the noise added
    from bayesgmm.gmm.estimator import log_likelihood_dataset

    ll = log_likelihood_dataset(est.idata_["posterior"].to_dataset(), X, noise_cov=S)
    np.testing.assert_allclose(ll["x"].values[0, 0], expected_ll, rtol=1e-10)
    assert res.missing.all() and res.draws.shape == (1, 2, 2)
    with pytest.raises(ValueError, match="needs noise_cov"):
        est.deconvolve(X, None)
    with pytest.raises(ValueError, match="noise_cov must have shape"):
        est.deconvolve(X, np.ones((3, 2)))
    with pytest.raises(ValueError, match="prob"):
        est.impute(X, prob=1.5)


def test_bayesgmm_fit_with_missing_entries_on_the_fused_kernel():
    """EM with NaN -> MAP -> nutpie on the fused log-density (no PyTensor compilation):
    the cross-check agrees, an empty row is dropped with a warning, NaN is kept in
    ``observed_data``, and LOO runs on the observed coordinates."""
    from bayesgmm import BayesGMM

    rng = np.random.default_rng(12)
    n = 200
    z = rng.integers(0, 2, n)
    X = np.array([[-2.0, 0.0], [2.0, 1.0]])[z] + 0.7 * rng.normal(size=(n, 2))
    X[rng.random((n, 2)) < 0.2] = np.nan
    X[0] = np.nan
    with pytest.warns(UserWarning, match=r"\d+ row\(s\) with every coordinate missing"):
        model = BayesGMM(2, random_state=0, progressbar=False, draws=500, tune=500).fit(X)
    assert fast_gmm(model.model_) is not None
    assert model.crosscheck_.verdict == "agree", model.crosscheck_.to_text()
    kept = X[~np.isnan(X).all(axis=1)]
    np.testing.assert_array_equal(
        np.isnan(model.idata_["observed_data"]["x"].values), np.isnan(kept)
    )
    assert model.loo().elpd < 0


def test_nutpie_callback_runs_the_current_kernel():
    """The cached C callback that nutpie calls gives the kernel's value on a model with
    missing entries and noise (a stale numba cache of fastnuts would not: see
    ``fastnuts._KERNEL_REVISION``)."""
    import ctypes

    from bayesgmm.gmm import fastnuts

    X = incomplete_data(n=20, seed=6)
    model = build_gmm_model(X, n_components=K, noise_cov=noise_covs(*X.shape, seed=7))
    fast = fast_gmm(model)
    x = np.random.default_rng(1).normal(scale=0.5, size=fast.n_dim)
    out, logp = np.empty(fast.n_dim), np.empty(1)
    ptr = ctypes.POINTER(ctypes.c_double)
    callback = fastnuts._logp_callback(fast, x, threads=False)
    assert fast.incomplete and callback is not fastnuts._logp_cfunc
    # a complete model keeps the callback without the passes over incomplete rows
    complete = fast_gmm(build_gmm_model(np.nan_to_num(X), n_components=K))
    assert fastnuts._logp_callback(complete, x, threads=False) is fastnuts._logp_cfunc
    rc = callback.ctypes(
        fast.n_dim,
        x.ctypes.data_as(ptr),
        out.ctypes.data_as(ptr),
        logp.ctypes.data_as(ptr),
        fast.buf.ctypes.data_as(ctypes.c_void_p),
    )
    lp, grad = fast.logp_dlogp(x)
    assert rc == 0
    assert logp[0] == lp
    np.testing.assert_array_equal(out, grad)
