"""DAGMM: the deep autoencoding Gaussian mixture model (Zong et al., ICLR 2018).

Modules: :mod:`~bayesgmm.dagmm.network` (architecture, initial weights, the NumPy forward
pass), :mod:`~bayesgmm.dagmm.mixture` (the mixture from memberships, energies and the loss
by the EM engine), :mod:`~bayesgmm.dagmm.graph` (the same as a PyTensor graph),
:mod:`~bayesgmm.dagmm.training` (minibatch Adam, early stopping),
:mod:`~bayesgmm.dagmm.estimator` (``DAGMM``), :mod:`~bayesgmm.dagmm.bayes` (the latent
mixture refitted by ``BayesGMM``: energies with posterior intervals),
:mod:`~bayesgmm.dagmm.baselines` (two-step autoencoder + GMM, PCA + GMM, GMM) and
:mod:`~bayesgmm.dagmm.evaluation` (the paper's protocol, data sets, the KDDCUP99 loader).

Training imports PyTensor; nothing is imported here.
"""
