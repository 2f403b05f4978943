"""The PyMC graph of MPMA: its log density is the MAP-EM objective, and find_MAP agrees."""

from __future__ import annotations

import numpy as np
import pytest
from pymc.model.transform.conditioning import remove_value_transforms

from bayesgmm.mpma import MPMA, MPMAPriors
from bayesgmm.mpma.em import component_index, log_posterior
from bayesgmm.mpma.model import build_mpma_model, initial_values_from_em, state_from_point
from tests.mpma.test_estimator import synthetic_ratings


def build(model_em, data, use_bias=True):
    return build_mpma_model(
        model_em.train_users_,
        model_em.train_items_,
        data["rating"].to_numpy(dtype=float),
        len(model_em.user_ids_),
        len(model_em.item_ids_),
        model_em.user_groups_,
        model_em.item_groups_,
        components=model_em.components_,
        n_factors=model_em.n_factors,
        priors=model_em.priors_,
        use_bias=use_bias,
    )


def em_objective(model_em, data, state, use_bias=True):
    index = [
        component_index(
            c,
            model_em.train_users_,
            model_em.train_items_,
            len(model_em.user_ids_),
            len(model_em.item_ids_),
            model_em.user_groups_,
            model_em.item_groups_,
        )
        for c in model_em.components_
    ]
    return log_posterior(
        state, data["rating"].to_numpy(dtype=float), index, model_em.priors_, use_bias
    )


def compiled_logp(model):
    """``model.logp(jacobian=False)`` as a function of the constrained free-variable values."""
    plain = remove_value_transforms(model)
    logp = plain.compile_logp(jacobian=False)
    return lambda values: float(logp({rv.name: values[rv.name] for rv in plain.free_RVs}))


@pytest.mark.parametrize("use_bias", [True, pytest.param(False, marks=pytest.mark.slow)])
def test_pymc_log_density_equals_the_em_log_posterior(use_bias):
    data = synthetic_ratings(seed=4)[0]
    fitted = MPMA(
        2,
        n_warmup=3,
        max_iter=15,
        use_bias=use_bias,
        random_state=0,
        priors=MPMAPriors(weights_alpha=1.5, sigma_b=0.5),
    ).fit(data)
    model = build(fitted, data, use_bias)
    assert set(model.coords) >= {"component", "factor", "obs", "row_user", "col_item"}
    assert model.named_vars_to_dims["col_factors_user"] == ("col_user", "factor")
    logp = compiled_logp(model)
    rng = np.random.default_rng(0)
    state = fitted._state()
    for _ in range(3):  # the fit, then random perturbations of it
        values = initial_values_from_em(model, state)
        assert logp(values) == pytest.approx(em_objective(fitted, data, state, use_bias), rel=1e-9)
        back = state_from_point(model, values, state)
        assert back.sigmas == pytest.approx(state.sigmas)
        np.testing.assert_array_equal(back.factors[1].col_factors, state.factors[1].col_factors)
        state = state.copy()
        state.weights = rng.dirichlet(np.full(3, 5.0))
        state.sigmas = state.sigmas + rng.uniform(0.05, 0.3, 3)
        for f in state.factors:
            f.col_factors += rng.normal(scale=0.1, size=f.col_factors.shape)
            f.offset += 0.1


@pytest.mark.slow
def test_find_map_from_map_em_stays_at_the_joint_map_em_fixed_point():
    """MAP-EM with refined factors (the joint mode) is where pm.find_MAP ends too; on these
    whole-star ratings two components sit on the sigma floor, in both."""
    from bayesgmm.inference import find_map

    data = synthetic_ratings(seed=6)[0]
    fitted = MPMA(
        2,
        n_warmup=5,
        max_iter=3000,
        tol=1e-12,
        refine_factors=True,
        priors=MPMAPriors(weights_alpha=5.0),
        random_state=0,
    ).fit(data)
    assert fitted.converged_
    model = build(fitted, data)
    start = initial_values_from_em(model, fitted._state(), sigma_min=fitted.priors_.sigma_min)
    found = find_map(model, start, seed=0)
    np.testing.assert_allclose(found["weights"], fitted.weights_, atol=1e-4)
    np.testing.assert_allclose(found["sigmas"], fitted.sigmas_, rtol=1e-4)
    found_state = state_from_point(model, found, fitted._state())
    gain = em_objective(fitted, data, found_state) - em_objective(fitted, data, fitted._state())
    assert abs(gain) < 1e-3, gain
