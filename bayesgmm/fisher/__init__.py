"""Fisher vectors: fixed-length encodings of descriptor sets from a fitted Gaussian mixture.

Modules: :mod:`~bayesgmm.fisher.encoding` (the maths: ``fisher_vector``, ``fisher_vectors``,
every covariance type, the layout of the vector) and :mod:`~bayesgmm.fisher.transformer`
(``FisherVectors``, the scikit-learn transformer on lists of sets). The posterior version
from a ``BayesGMM`` is :func:`bayesgmm.gmm.fisher.posterior_fisher_vectors`.

Nothing is imported here: import the module you need, or use the public names re-exported
lazily by :mod:`bayesgmm`.
"""
