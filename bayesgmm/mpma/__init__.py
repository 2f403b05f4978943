"""MPMA: mixture probabilistic matrix approximation (Chen et al., IJCAI 2016).

Modules: :mod:`~bayesgmm.mpma.data` (input checks), :mod:`~bayesgmm.mpma.als` (weighted
ALS kernels), :mod:`~bayesgmm.mpma.em` (model, MAP-EM), :mod:`~bayesgmm.mpma.gibbs`
(hierarchical priors, Gibbs sampling), :mod:`~bayesgmm.mpma.estimator` (the ``MPMA`` and
``GibbsMPMA`` estimators), :mod:`~bayesgmm.mpma.baselines`, :mod:`~bayesgmm.mpma.evaluation`
(cross-validation protocol); and, importing PyMC,
:mod:`~bayesgmm.mpma.model` (the PyMC posterior) and :mod:`~bayesgmm.mpma.crosscheck`
(EM vs NUTS), :mod:`~bayesgmm.mpma.saem` (the marginal MAP of pi and sigma by SAEM); and
:mod:`~bayesgmm.mpma.run` (the ``mpma`` family of ``bayesgmm run``).
"""

from bayesgmm.mpma.baselines import GlobalMean, bias_baseline, bpmf, pmf
from bayesgmm.mpma.em import COMPONENTS, MPMAPriors
from bayesgmm.mpma.estimator import MPMA, GibbsMPMA, mae, rmse
from bayesgmm.mpma.gibbs import GibbsPriors

__all__ = [
    "COMPONENTS",
    "MPMA",
    "GibbsMPMA",
    "GibbsPriors",
    "GlobalMean",
    "MPMAPriors",
    "bias_baseline",
    "bpmf",
    "mae",
    "pmf",
    "rmse",
]
