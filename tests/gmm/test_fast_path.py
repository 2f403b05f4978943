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
