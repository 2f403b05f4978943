"""The Bayesian Gaussian mixture: PyMC model, fast NUTS, estimator and what builds on it.

Modules: :mod:`~bayesgmm.gmm.model` (``build_gmm_model``, the PyMC graph),
:mod:`~bayesgmm.gmm.fast_logp` and :mod:`~bayesgmm.gmm.fastnuts` (the fused numba
log-density and its nutpie wiring), :mod:`~bayesgmm.gmm.estimator` (``BayesGMM``:
EM -> MAP -> NUTS), :mod:`~bayesgmm.gmm.relabel` (label switching),
:mod:`~bayesgmm.gmm.crosscheck` (EM vs posterior, on :mod:`bayesgmm.verdict`),
:mod:`~bayesgmm.gmm.selection` (choosing K), :mod:`~bayesgmm.gmm.anomaly`,
:mod:`~bayesgmm.gmm.calibration` (SBC), :mod:`~bayesgmm.gmm.plotting`, and
:mod:`~bayesgmm.gmm.run` (the ``gmm`` family of ``bayesgmm run``).

Most of them import PyMC, so nothing is imported here: import the module you need, or use
the public names re-exported lazily by :mod:`bayesgmm`.
"""
