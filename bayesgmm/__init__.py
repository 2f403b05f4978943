"""bayesgmm: Gaussian mixture models done both ways, by EM and by NUTS on PyMC.

Public API
----------
GaussianMixture
    EM estimator (maximum likelihood or MAP-EM), a drop-in for scikit-learn's.
ConjugatePrior
    The Dirichlet / Normal-inverse-Wishart prior of MAP-EM.
datasets
    Bundled classic datasets, synthetic mixtures and the MovieLens loader.
"""

from bayesgmm import datasets
from bayesgmm.em.gaussian import CollapsedComponentError
from bayesgmm.em.priors import ConjugatePrior
from bayesgmm.mixture import DegenerateComponentWarning, GaussianMixture

__version__ = "0.1.0"

__all__ = [
    "CollapsedComponentError",
    "ConjugatePrior",
    "DegenerateComponentWarning",
    "GaussianMixture",
    "__version__",
    "datasets",
]
