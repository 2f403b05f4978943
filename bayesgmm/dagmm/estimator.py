"""``DAGMM``: the deep autoencoding Gaussian mixture model as a scikit-learn outlier detector.

Zong, Song, Min, Cheng, Lumezanu, Cho and Chen, "Deep Autoencoding Gaussian Mixture Model
for Unsupervised Anomaly Detection", ICLR 2018. The networks and the loss are in
:mod:`bayesgmm.dagmm.graph` (PyTensor, training) and :mod:`bayesgmm.dagmm.network` /
:mod:`bayesgmm.dagmm.mixture` (NumPy and the EM engine, prediction).
"""

from __future__ import annotations

import numbers
import warnings

import numpy as np
from sklearn.base import BaseEstimator, OutlierMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from bayesgmm._validation import (
    check_choice,
    check_data_matrix,
    check_no_constant_features,
    check_positive_int,
    check_real,
    check_seed,
)
from bayesgmm.dagmm.mixture import mixture_from_memberships, sample_energy
from bayesgmm.dagmm.network import ACTIVATIONS, Architecture, forward, initial_weights
from bayesgmm.em.sweep import MixtureParams
from bayesgmm.io import (
    SaveLoadMixin,
    fitted_attributes,
    fitted_variables,
    require_fitted,
    restore_fitted,
)

__all__ = ["COMPILE_MODES", "DAGMM", "MembershipCollapseWarning", "collapsed_components"]

#: How the training step runs (see ``DAGMM``'s ``compile_mode``): NumPy, or PyTensor's backends.
COMPILE_MODES = ("numpy", "c", "numba", "fast_compile")

#: A component holding less than this share of ``1 / n_components`` of the training rows'
#: membership counts as collapsed (see :func:`collapsed_components`).
COLLAPSE_SHARE = 0.1


class MembershipCollapseWarning(UserWarning):
    """DAGMM's estimation network put (almost) no rows on some mixture components."""


def collapsed_components(weights: np.ndarray) -> np.ndarray:
    """Indices of the components whose weight (the mean membership, (K,)) is below
    ``COLLAPSE_SHARE / K``: the estimation network has stopped using them, and the energy
    is then that of a mixture with fewer components.

    Raises ValueError unless ``weights`` is a non-empty 1-D array of finite numbers."""
    weights = np.asarray(weights, dtype=float)
    if weights.ndim != 1 or len(weights) == 0 or not np.isfinite(weights).all():
        raise ValueError(
            f"weights must be a non-empty 1-D array of finite mixture weights (n_components,), "
            f"got shape {weights.shape}"
        )
    return np.flatnonzero(weights < COLLAPSE_SHARE / len(weights))


def _widths(value, name: str, *, allow_empty: bool) -> tuple[int, ...]:
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        value = (value,)
    try:
        widths = tuple(value)
    except TypeError:
        raise TypeError(f"{name} must be a tuple of positive integers, got {value!r}") from None
    if not allow_empty and not widths:
        raise ValueError(f"{name} needs at least one hidden width, got {value!r}")
    return tuple(check_positive_int(w, f"every entry of {name}") for w in widths)


class DAGMM(SaveLoadMixin, OutlierMixin, BaseEstimator):
    """Deep autoencoding Gaussian mixture model for unsupervised anomaly detection.

    A compression network (autoencoder) maps ``x`` to a code ``z_c``; with the relative
    Euclidean distance and the cosine similarity between ``x`` and its reconstruction it
    forms ``z``; an estimation network (softmax output) gives each sample's mixture
    memberships, from which the mixture's weights, means and covariances are computed as
    in an EM M-step; the sample energy ``E(z) = -log p(z)`` is the anomaly score. The
    networks are trained jointly on

        J = mean |x - x'|^2 + lambda_energy * mean E(z) + lambda_cov * sum_kj 1 / Sigma_kjj

    by minibatch Adam (PyMC's updates on a PyTensor graph), with early stopping on a
    validation split. After training the mixture is re-estimated once from the
    memberships of all training rows (the paper's test-time parameters) and kept in
    ``weights_``, ``means_``, ``covariances_``, ``precisions_cholesky_``.

    Parameters
    ----------
    n_components : int, default=4
        Mixture components K (the paper: 4 on KDDCUP99, 2 on Thyroid, Arrhythmia, KDD-rev).
    encoder_widths : tuple of int, default=(60, 30, 10)
        Hidden widths of the encoder; the decoder mirrors them (the paper's KDDCUP99
        network without its 120-unit input).
    latent_dim : int, default=1
        Width of the code ``z_c`` (so ``z`` has ``latent_dim + 2`` dimensions).
    estimation_widths : tuple of int, default=(10,)
        Hidden widths of the estimation network; dropout follows each.
    activation : {'tanh', 'relu', 'sigmoid'}, default='tanh'
        The paper's tanh saturates: rows far outside the training range (a z-score of
        40 in one pixel) all get codes at the edge of the code's range, close to the
        normal rows, so their energy stays low. ReLU networks extrapolate linearly and
        keep such rows apart: on the digits and breast-cancer benchmarks DAGMM's F1 rises
        from 0.22 to 0.58 and from 0.37 to 0.54 (lambda_cov=1e-5, tuning seeds of
        ``benchmarks/dagmm.py``; BENCHMARKS.md).
    dropout : float in [0, 1), default=0.5
        Dropout rate in the estimation network during training (inverted dropout).
    lambda_energy, lambda_cov : float, default=0.1, 0.005
        lambda1 and lambda2 of the paper. The covariance penalty is not scale-free: it
        sums ``1 / Sigma_kjj`` over components and dimensions of ``z``, and the
        reconstruction features of standardised data have variances near 0.04, so the
        paper's 0.005 can outweigh the energy and pull every component onto one wide
        covariance: on the synthetic benchmark the memberships then collapse (weights
        like [0.01, 0.98, 0.01]) and F1 is 0.47 against 0.90 with ``lambda_cov=0`` and
        ``reg_covar=1e-6`` (tanh, tuning seeds of ``benchmarks/dagmm.py``). A fit whose
        memberships collapse raises a :class:`MembershipCollapseWarning` naming this
        remedy.
    reg_covar : float, default=0.0
        Added to the diagonal of every mixture covariance. The paper adds nothing (its
        lambda_cov penalty guards the diagonal), hence 0; a small value (1e-6) helps
        when training reports a singular covariance.
    learning_rate : float, default=1e-4
        Adam's step size (the paper's 1e-4).
    batch_size : int, default=1024
        Rows per minibatch (the paper's 1024). Each epoch splits the training rows into
        ``n // batch_size`` batches; a fit with fewer training rows than ``batch_size``
        is refused.
    max_epochs : int, default=200
        The paper trains 200 epochs on KDDCUP99.
    validation_fraction : float in [0, 0.5), default=0.1
        Share of the rows held out for early stopping (0: none; all epochs run).
    patience : int, default=20
        Epochs without an improvement of the validation objective larger than ``tol``
        before training stops; the weights of the best epoch are kept.
    tol : float, default=0.0
    contamination : float in (0, 0.5], default=0.1
        Expected share of anomalies: ``predict`` flags the training rows' lowest
        ``contamination`` quantile of ``score_samples`` (scikit-learn's convention; the
        upper bound 0.5 is scikit-learn's too).
    standardize : bool, default=True
        Centre and scale every feature by its training mean and standard deviation before
        the networks (``mean_``, ``scale_``); constant features are refused either way.
    compile_mode : {'numpy', 'c', 'numba', 'fast_compile'}, default='numpy'
        How the training step runs. 'numpy': a hand-written backward pass in NumPy
        (:mod:`bayesgmm.dagmm.backprop`), nothing compiled, so the first fit on a machine
        is as fast as the next. The others compile the PyTensor graph
        (:mod:`bayesgmm.dagmm.graph`, tested equal): 'c' (C code, cached on disk across
        processes; the first fit on a machine compiles about 95 C modules, minutes),
        'numba' (PyTensor's default backend; its just-in-time compilation recurs in every
        process), 'fast_compile' (fewer graph rewrites, slower steps).
    random_state : int or None, default=None
        Seeds the initial weights, the validation split, the batch order and the dropout
        masks: the same seed reproduces the fit.
    progressbar : bool, default=False

    Attributes
    ----------
    weights_ : ndarray (n_components,)
    means_ : ndarray (n_components, latent_dim + 2)
    covariances_, precisions_cholesky_ : ndarray (n_components, latent_dim + 2, latent_dim + 2)
        The mixture on ``z``, from the memberships of all training rows.
    network_weights_ : list of ndarray
        ``[W0, b0, W1, b1, ...]``: encoder, decoder, estimation network.
    mean_, scale_ : ndarray (n_features,)
        The standardisation (zeros and ones when ``standardize=False``).
    offset_ : float
        The ``contamination`` quantile of the training rows' ``score_samples``.
    trace_ : pandas.DataFrame
        Per epoch: ``train_*`` and ``val_*`` for ``total``, ``reconstruction``, ``energy``
        and ``covariance_penalty``.
    best_epoch_, n_epochs_ : int
    stopped_early_ : bool
    compile_seconds_, train_seconds_ : float
    n_features_in_ : int

    Examples
    --------
    Rows near a line in 6-D, and a few off it:

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> t = rng.normal(size=(400, 1))
    >>> X = np.hstack([t, 2 * t, -t, t**2, np.sin(t), 0.5 * t]) + 0.05 * rng.normal(size=(400, 6))
    >>> from bayesgmm import DAGMM
    >>> model = DAGMM(2, encoder_widths=(8,), batch_size=64, max_epochs=5,
    ...               learning_rate=1e-3, contamination=0.05, random_state=0).fit(X)
    >>> model.transform(X).shape                      # z = [code, rel. distance, cosine]
    (400, 3)
    >>> labels = model.predict(X)                      # +1 inlier, -1 anomaly
    >>> sorted(set(labels.tolist())), round(float((labels == -1).mean()), 2)
    ([-1, 1], 0.05)
    >>> list(model.trace_.columns[:3])
    ['epoch', 'train_total', 'train_reconstruction']
    """

    _file_format = "bayesgmm.DAGMM/2"  # the format generation every estimator shares

    def __init__(
        self,
        n_components: int = 4,
        *,
        encoder_widths=(60, 30, 10),
        latent_dim: int = 1,
        estimation_widths=(10,),
        activation: str = "tanh",
        dropout: float = 0.5,
        lambda_energy: float = 0.1,
        lambda_cov: float = 0.005,
        reg_covar: float = 0.0,
        learning_rate: float = 1e-4,
        batch_size: int = 1024,
        max_epochs: int = 200,
        validation_fraction: float = 0.1,
        patience: int = 20,
        tol: float = 0.0,
        contamination: float = 0.1,
        standardize: bool = True,
        compile_mode: str = "numpy",
        random_state: int | None = None,
        progressbar: bool = False,
    ):
        self.n_components = n_components
        self.encoder_widths = encoder_widths
        self.latent_dim = latent_dim
        self.estimation_widths = estimation_widths
        self.activation = activation
        self.dropout = dropout
        self.lambda_energy = lambda_energy
        self.lambda_cov = lambda_cov
        self.reg_covar = reg_covar
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.tol = tol
        self.contamination = contamination
        self.standardize = standardize
        self.compile_mode = compile_mode
        self.random_state = random_state
        self.progressbar = progressbar

    # ------------------------------------------------------------------ checks
    def _check_params(self) -> None:
        check_positive_int(self.n_components, "n_components")
        check_positive_int(self.latent_dim, "latent_dim")
        _widths(self.encoder_widths, "encoder_widths", allow_empty=True)
        _widths(self.estimation_widths, "estimation_widths", allow_empty=False)
        check_choice(self.activation, "activation", ACTIVATIONS)
        check_choice(self.compile_mode, "compile_mode", COMPILE_MODES)
        dropout = check_real(self.dropout, "dropout", minimum=0.0)
        if dropout >= 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        for name in ("lambda_energy", "lambda_cov", "reg_covar", "tol"):
            check_real(getattr(self, name), name, minimum=0.0)
        check_real(self.learning_rate, "learning_rate", minimum=0.0, strict=True)
        check_positive_int(self.batch_size, "batch_size", minimum=2)
        check_positive_int(self.max_epochs, "max_epochs")
        check_positive_int(self.patience, "patience")
        fraction = check_real(self.validation_fraction, "validation_fraction", minimum=0.0)
        if fraction >= 0.5:
            raise ValueError(
                f"validation_fraction must be in [0, 0.5), got {self.validation_fraction!r}"
            )
        contamination = check_real(self.contamination, "contamination", minimum=0.0, strict=True)
        if contamination > 0.5:
            raise ValueError(
                f"contamination must be in (0, 0.5] (the expected share of anomalies), "
                f"got {self.contamination!r}"
            )
        if not isinstance(self.standardize, bool | np.bool_):
            raise TypeError(f"standardize must be True or False, got {self.standardize!r}")
        check_seed(self.random_state)

    def _architecture(self, n_features: int) -> Architecture:
        return Architecture(
            n_features=n_features,
            encoder_widths=_widths(self.encoder_widths, "encoder_widths", allow_empty=True),
            latent_dim=int(self.latent_dim),
            estimation_widths=_widths(
                self.estimation_widths, "estimation_widths", allow_empty=False
            ),
            n_components=int(self.n_components),
            activation=self.activation,
        )

    def _mode(self):
        if self.compile_mode == "numpy":
            return None
        from pytensor.compile.mode import Mode, get_mode

        return {
            "c": lambda: Mode(linker="cvm", optimizer="fast_run"),
            "numba": lambda: get_mode("NUMBA"),
            "fast_compile": lambda: Mode(linker="cvm", optimizer="fast_compile"),
        }[self.compile_mode]()

    # --------------------------------------------------------------------- fit
    def fit(self, X, y=None) -> DAGMM:
        """Train the networks on ``X`` (n_samples, n_features); ``y`` is ignored.

        Raises
        ------
        ValueError
            Bad parameters; ``X`` with NaN/inf, non-numeric or constant columns; fewer
            training rows (after the validation split) than ``batch_size``.
        FloatingPointError
            If training diverges (a singular covariance of ``z``): the message names the
            remedies (``reg_covar``, ``learning_rate``, ``lambda_cov``).
        """
        from bayesgmm.dagmm.training import train

        self._check_params()
        raw, X = X, check_data_matrix(X, min_samples=2)
        validate_data(self, raw, reset=True, skip_check_array=True)  # feature names, count
        check_no_constant_features(X, None, getattr(self, "feature_names_in_", None))
        n = len(X)
        n_val = round(self.validation_fraction * n)
        if n - n_val < self.batch_size:
            raise ValueError(
                f"X has {n} rows, {n - n_val} of them for training after the validation "
                f"split (validation_fraction={self.validation_fraction}), fewer than "
                f"batch_size={self.batch_size}: lower batch_size (e.g. batch_size="
                f"{max(2, (n - n_val) // 4)}) or give more rows"
            )
        z_dim = int(self.latent_dim) + 2
        if 0 < n_val <= z_dim:
            raise ValueError(
                f"the validation split has {n_val} rows (validation_fraction="
                f"{self.validation_fraction} of {n}), too few for the mixture's "
                f"{z_dim}-dimensional covariances: raise validation_fraction or set it to 0 "
                "(no early stopping)"
            )
        rng = np.random.default_rng(self.random_state)
        arch = self._architecture(X.shape[1])
        weights = initial_weights(arch, rng)
        if self.standardize:
            self.mean_, self.scale_ = X.mean(axis=0), X.std(axis=0)
        else:
            self.mean_, self.scale_ = np.zeros(X.shape[1]), np.ones(X.shape[1])
        Xs = (X - self.mean_) / self.scale_
        order = rng.permutation(n)
        X_val = Xs[order[:n_val]] if n_val else None
        result = train(
            Xs[order[n_val:]],
            X_val,
            arch,
            weights,
            rng,
            lambda_energy=self.lambda_energy,
            lambda_cov=self.lambda_cov,
            reg_covar=self.reg_covar,
            dropout=self.dropout,
            learning_rate=self.learning_rate,
            batch_size=self.batch_size,
            max_epochs=self.max_epochs,
            patience=self.patience,
            tol=self.tol,
            progressbar=self.progressbar,
            mode=self._mode(),
        )
        self.network_weights_ = result.weights
        self.trace_ = result.trace
        self.best_epoch_ = int(result.best_epoch)
        self.n_epochs_ = int(result.n_epochs)
        self.stopped_early_ = bool(result.stopped_early)
        self.compile_seconds_ = float(result.compile_seconds)
        self.train_seconds_ = float(result.train_seconds)
        out = forward(arch, self.network_weights_, Xs)
        params = mixture_from_memberships(out.z, out.gamma, self.reg_covar)
        self.weights_, self.means_ = params.weights, params.means
        self.covariances_, self.precisions_cholesky_ = (
            params.covariances,
            params.precisions_cholesky,
        )
        self.offset_ = float(np.quantile(-sample_energy(out.z, params), self.contamination))
        self._warn_if_collapsed(out.z)
        return self

    def _warn_if_collapsed(self, z: np.ndarray) -> None:
        collapsed = collapsed_components(self.weights_)
        if len(collapsed) == 0:
            return
        head = (
            f"DAGMM's memberships collapsed: component(s) {collapsed.tolist()} hold "
            f"{np.round(self.weights_[collapsed], 4).tolist()} of the rows (weights "
            f"{np.round(self.weights_, 3).tolist()}), so the energy is that of a mixture with "
            f"{self.n_components - len(collapsed)} component(s). "
        )
        if self.lambda_cov > 0:
            smallest = float(np.min(np.diagonal(self.covariances_, axis1=1, axis2=2)))
            cause = (
                f"The covariance penalty lambda_cov * sum 1/Sigma_kjj (here up to "
                f"{1 / smallest:.3g} per entry; z's variances are "
                f"{np.round(z.var(axis=0), 4).tolist()}) pulls components onto one wide "
                "covariance when z's variances are small: try a smaller lambda_cov (1e-5, or "
                "0 with reg_covar=1e-6) or fewer n_components"
            )
        else:
            cause = (
                "There is no covariance penalty (lambda_cov=0), so the network found no use "
                "for them on this data: use fewer n_components, or another random_state"
            )
        warnings.warn(
            head + cause,
            MembershipCollapseWarning,
            stacklevel=3,
        )

    # --------------------------------------------------------------- inference
    def _forward(self, X):
        check_is_fitted(self)
        raw, X = X, check_data_matrix(X)
        validate_data(self, raw, reset=False, skip_check_array=True)
        if X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {X.shape[1]} features, but DAGMM was fitted with "
                f"{self.n_features_in_} features"
            )
        Xs = (X - self.mean_) / self.scale_
        return forward(self._architecture(self.n_features_in_), self.network_weights_, Xs)

    def architecture(self) -> Architecture:
        """The fitted networks' shapes (:class:`bayesgmm.dagmm.network.Architecture`)."""
        check_is_fitted(self)
        return self._architecture(self.n_features_in_)

    def _params(self) -> MixtureParams:
        return MixtureParams(
            self.weights_, self.means_, self.covariances_, self.precisions_cholesky_
        )

    def transform(self, X) -> np.ndarray:
        """The latent representation ``z = [z_c, relative distance, cosine]``,
        (n_samples, latent_dim + 2)."""
        return self._forward(X).z

    def memberships(self, X) -> np.ndarray:
        """The estimation network's memberships ``gamma`` (n_samples, n_components)."""
        return self._forward(X).gamma

    def reconstruct(self, X) -> np.ndarray:
        """The autoencoder's reconstruction of ``X`` in the input units (n_samples, D)."""
        return self._forward(X).reconstruction * self.scale_ + self.mean_

    def energy(self, X) -> np.ndarray:
        """Sample energies ``E(z) = -log p(z)`` (n_samples,): higher is more anomalous."""
        return sample_energy(self.transform(X), self._params())

    def score_samples(self, X) -> np.ndarray:
        """Negative energy ``log p(z)`` (n_samples,): lower is more anomalous."""
        return -self.energy(X)

    def decision_function(self, X) -> np.ndarray:
        """``score_samples(X) - offset_``: negative for the predicted anomalies."""
        return self.score_samples(X) - self.offset_

    def predict(self, X) -> np.ndarray:
        """+1 for inliers, -1 for anomalies (``decision_function < 0``)."""
        return np.where(self.decision_function(X) < 0, -1, 1)

    def fit_predict(self, X, y=None) -> np.ndarray:
        return self.fit(X).predict(X)

    # -------------------------------------------------------------- save/load
    def _to_netcdf(self):
        import xarray as xr

        fitted = fitted_attributes(self)
        network = fitted.pop("network_weights_")
        trace = fitted.pop("trace_")
        variables, attrs = fitted_variables(self, fitted, {})
        for i, w in enumerate(network):
            variables[f"network_{i}"] = (tuple(f"network_{i}_dim_{j}" for j in range(w.ndim)), w)
        for column in trace.columns:
            variables[f"trace_{column}"] = ("epoch_row", trace[column].to_numpy())
        attrs["n_network"] = len(network)
        attrs["trace_columns"] = list(trace.columns)
        return xr.Dataset(variables), attrs

    @classmethod
    def _from_netcdf(cls, data, attrs) -> DAGMM:
        import pandas as pd

        estimator = restore_fitted(cls, data, attrs)
        estimator.network_weights_ = [
            data[f"network_{i}"].values for i in range(attrs["n_network"])
        ]
        estimator.trace_ = pd.DataFrame(
            {c: data[f"trace_{c}"].values for c in attrs["trace_columns"]}
        )
        require_fitted(
            estimator,
            ("weights_", "means_", "covariances_", "precisions_cholesky_", "mean_", "scale_",
             "offset_", "n_features_in_"),
        )  # fmt: skip
        arch = estimator._architecture(estimator.n_features_in_)
        shapes = [s for _, a, b in arch.layer_shapes() for s in ((a, b), (b,))]
        got = [w.shape for w in estimator.network_weights_]
        if got != shapes:
            raise ValueError(f"network weights have shapes {got}, the parameters need {shapes}")
        return estimator
