"""PyMC models of Bayesian Gaussian mixtures."""

from bayesgmm.models.gmm import (
    COVARIANCE_TYPES,
    OBS_DIM,
    OBS_VAR,
    build_gmm_model,
    default_gmm_priors,
    initial_values_from_em,
)

__all__ = [
    "COVARIANCE_TYPES",
    "OBS_DIM",
    "OBS_VAR",
    "build_gmm_model",
    "default_gmm_priors",
    "initial_values_from_em",
]
