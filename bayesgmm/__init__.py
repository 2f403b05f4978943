"""bayesgmm: Gaussian mixture models done both ways, by EM and by NUTS on PyMC.

Public API
----------
GaussianMixture, ConjugatePrior, CollapsedComponentError, DegenerateComponentWarning
    The EM engine (:mod:`bayesgmm.em`): maximum likelihood or MAP-EM, a drop-in for
    scikit-learn's ``GaussianMixture``.
BayesGMM, build_gmm_model
    The Bayesian GMM (:mod:`bayesgmm.gmm`): the PyMC model, and the estimator that runs
    EM -> MAP -> NUTS and cross-checks the point estimate against the posterior.
crosscheck, select_n_components, anomaly_scores, flag_anomalies
    What builds on a fitted mixture: the EM-vs-posterior report, choosing K (BIC vs LOO),
    anomaly scores with posterior intervals.
MPMA, GibbsMPMA, build_mpma_model
    Mixture probabilistic matrix approximation for collaborative filtering
    (:mod:`bayesgmm.mpma`, Chen et al. 2016): MAP-EM, Gibbs sampling with hierarchical
    priors, and the PyMC posterior.
fisher_vector, fisher_vectors, FisherVectors, posterior_fisher_vectors
    Fisher vectors of descriptor sets from a fitted mixture (:mod:`bayesgmm.fisher`, every
    covariance type; equal to scikit-image's for diagonal mixtures), the scikit-learn
    transformer, and their posterior mean and sd from a ``BayesGMM``.
DAGMM
    The deep autoencoding Gaussian mixture for anomaly detection (:mod:`bayesgmm.dagmm`,
    Zong et al. 2018), trained in PyTensor.
Word2GM
    Gaussian-mixture word embeddings (:mod:`bayesgmm.embeddings`, Athiwaratkun & Wilson
    2017): one mixture per word, a component per sense.
run_spec
    ``bayesgmm run``: a TOML run spec in, a directory of results out.
datasets
    Bundled classic datasets, synthetic mixtures and the MovieLens loader.

Only the EM engine and :mod:`bayesgmm.datasets` are imported with the package; every other
name is imported on first access, so ``import bayesgmm`` stays fast and never loads PyMC.
"""

from importlib import import_module

from bayesgmm import datasets
from bayesgmm.em.estimator import DegenerateComponentWarning, GaussianMixture
from bayesgmm.em.gaussian import CollapsedComponentError
from bayesgmm.em.priors import ConjugatePrior

__version__ = "0.1.0"

#: Public names loaded on first access, and the module that owns each.
_LAZY = {
    "BayesGMM": "bayesgmm.gmm.estimator",
    "build_gmm_model": "bayesgmm.gmm.model",
    "crosscheck": "bayesgmm.gmm.crosscheck",
    "select_n_components": "bayesgmm.gmm.selection",
    "anomaly_scores": "bayesgmm.gmm.anomaly",
    "flag_anomalies": "bayesgmm.gmm.anomaly",
    "MPMA": "bayesgmm.mpma.estimator",
    "GibbsMPMA": "bayesgmm.mpma.estimator",
    "build_mpma_model": "bayesgmm.mpma.model",
    "run_spec": "bayesgmm.run",
    "fisher_vector": "bayesgmm.fisher.encoding",
    "fisher_vectors": "bayesgmm.fisher.encoding",
    "FisherVectors": "bayesgmm.fisher.transformer",
    "posterior_fisher_vectors": "bayesgmm.gmm.fisher",
    "DAGMM": "bayesgmm.dagmm.estimator",
    "Word2GM": "bayesgmm.embeddings.estimator",
}

__all__ = [
    "DAGMM",
    "MPMA",
    "BayesGMM",
    "CollapsedComponentError",
    "ConjugatePrior",
    "DegenerateComponentWarning",
    "FisherVectors",
    "GaussianMixture",
    "GibbsMPMA",
    "Word2GM",
    "__version__",
    "anomaly_scores",
    "build_gmm_model",
    "build_mpma_model",
    "crosscheck",
    "datasets",
    "fisher_vector",
    "fisher_vectors",
    "flag_anomalies",
    "posterior_fisher_vectors",
    "run_spec",
    "select_n_components",
]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'bayesgmm' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
