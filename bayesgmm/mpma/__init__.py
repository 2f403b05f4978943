"""MPMA: mixture probabilistic matrix approximation (Chen et al., IJCAI 2016).

Modules: :mod:`~bayesgmm.mpma.data` (input checks), :mod:`~bayesgmm.mpma.als` (weighted
ALS kernels), :mod:`~bayesgmm.mpma.em` (model, MAP-EM), :mod:`~bayesgmm.mpma.gibbs`
(hierarchical priors, Gibbs sampling), :mod:`~bayesgmm.mpma.estimator` (the ``MPMA`` and
``GibbsMPMA`` estimators), :mod:`~bayesgmm.mpma.baselines`, :mod:`~bayesgmm.mpma.protocols`
(named splitters: GroupLens' u1..u5/ua/ub, k-fold, repeated 90/10, Rendle et al.'s 10-fold),
:mod:`~bayesgmm.mpma.evaluation` (``cross_validate``, paired comparisons, peers),
:mod:`~bayesgmm.mpma.synthetic` (``make_ratings``: MovieLens-shaped synthetic ratings from
a planted model, the data of the scale benchmark); and,
importing PyMC, :mod:`~bayesgmm.mpma.model` (the PyMC posterior) and
:mod:`~bayesgmm.mpma.crosscheck` (EM vs NUTS), :mod:`~bayesgmm.mpma.saem` (the marginal MAP
of pi and sigma by SAEM); and :mod:`~bayesgmm.mpma.run` (the ``mpma`` family of
``bayesgmm run``).
"""

from bayesgmm.mpma.baselines import GlobalMean, bias_baseline, bpmf, pmf
from bayesgmm.mpma.em import COMPONENTS, MPMAPriors
from bayesgmm.mpma.estimator import MPMA, GibbsMPMA, mae, rmse
from bayesgmm.mpma.evaluation import compare_methods, cross_validate, paired_comparison
from bayesgmm.mpma.gibbs import GibbsPriors
from bayesgmm.mpma.protocols import get_protocol
from bayesgmm.mpma.synthetic import make_ratings

__all__ = [
    "COMPONENTS",
    "MPMA",
    "GibbsMPMA",
    "GibbsPriors",
    "GlobalMean",
    "MPMAPriors",
    "bias_baseline",
    "bpmf",
    "compare_methods",
    "cross_validate",
    "get_protocol",
    "mae",
    "make_ratings",
    "paired_comparison",
    "pmf",
    "rmse",
]
