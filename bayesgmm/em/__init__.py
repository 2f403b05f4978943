"""The EM engine: maximum likelihood and MAP-EM for Gaussian mixtures (no PyMC).

Modules: :mod:`~bayesgmm.em.gaussian` (Gaussian maths per covariance type; owns the
covariance-type vocabulary), :mod:`~bayesgmm.em.kernels` and :mod:`~bayesgmm.em.sweep` (the
blocked E-step pass), :mod:`~bayesgmm.em.priors` (the conjugate prior of MAP-EM),
:mod:`~bayesgmm.em.driver` (initialisation and the EM loop), :mod:`~bayesgmm.em.missing`
(EM with missing entries and measurement errors) and
:mod:`~bayesgmm.em.estimator` (``GaussianMixture``, the scikit-learn drop-in).
"""
