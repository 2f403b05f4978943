"""bayesgmm: Gaussian mixture models done both ways, by EM and by NUTS on PyMC.

Public API
----------
GaussianMixture
    EM estimator (maximum likelihood or MAP-EM), a drop-in for scikit-learn's.
ConjugatePrior
    The Dirichlet / Normal-inverse-Wishart prior of MAP-EM.
BayesGMM
    Bayesian GMM in PyMC: EM -> MAP -> NUTS, with the EM-vs-posterior cross-check.
build_gmm_model
    The PyMC model behind BayesGMM, for users who want to inspect or extend it.
datasets
    Bundled classic datasets, synthetic mixtures and the MovieLens loader.

``BayesGMM`` and ``build_gmm_model`` import PyMC, so they are loaded on first access:
``import bayesgmm`` and the EM engine stay fast.
"""

from importlib import import_module

from bayesgmm import datasets
from bayesgmm.em.gaussian import CollapsedComponentError
from bayesgmm.em.priors import ConjugatePrior
from bayesgmm.em.estimator import DegenerateComponentWarning, GaussianMixture

__version__ = "0.1.0"

_LAZY = {
    "BayesGMM": "bayesgmm.gmm.estimator",
    "build_gmm_model": "bayesgmm.gmm.model",
    "MPMA": "bayesgmm.mpma.estimator",
    "build_mpma_model": "bayesgmm.mpma.model",
}

__all__ = [
    "BayesGMM",
    "CollapsedComponentError",
    "ConjugatePrior",
    "DegenerateComponentWarning",
    "GaussianMixture",
    "__version__",
    "build_gmm_model",
    "datasets",
]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'bayesgmm' has no attribute {name!r}")
