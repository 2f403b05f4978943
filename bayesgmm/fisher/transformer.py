"""``FisherVectors``: the scikit-learn transformer from descriptor sets to Fisher vectors."""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

from bayesgmm._validation import check_positive_int
from bayesgmm.em.estimator import GaussianMixture
from bayesgmm.em.gaussian import COVARIANCE_TYPES
from bayesgmm.em.priors import ConjugatePrior
from bayesgmm.fisher.encoding import (
    BLOCKS,
    check_options,
    encode_prepared,
    fisher_vector_names,
    fitted_mixture,
    prepare_sets,
)
from bayesgmm.io import SaveLoadMixin, from_netcdf_data, to_netcdf_data

__all__ = ["FisherVectors"]


def _n_features_of(sets) -> int:
    """The descriptor dimension of the first set (the others are checked against it)."""
    try:
        first = np.asarray(sets[0])
    except (TypeError, IndexError, KeyError, ValueError):
        first = None
    if first is None or first.ndim != 2:
        # let prepare_sets name the problem (empty list, 1-D set, wrong type, ...)
        prepare_sets(sets, 1)
        raise ValueError("the first set must be a 2-D array (n_descriptors, n_features)")
    return first.shape[1]


#: Group of a saved file holding the fitted mixture ``mixture_``.
_MIXTURE_GROUP = "mixture_"


class FisherVectors(SaveLoadMixin, TransformerMixin, BaseEstimator):
    """Descriptor sets in, Fisher vectors out: a Gaussian mixture fitted on the pooled
    descriptors, then :func:`bayesgmm.fisher.encoding.fisher_vectors` of every set.

    ``X`` is a list of (n_i, n_features) arrays (sets may differ in size) or an
    (n_sets, n, n_features) array; ``transform`` returns (n_sets, n_dims), so that
    ``Pipeline([("fv", FisherVectors(16)), ("svm", LinearSVC())]).fit(sets, y)`` works.

    Parameters
    ----------
    n_components : int, default=16
        Components of the mixture fitted when ``mixture`` is None.
    covariance_type : {'full', 'tied', 'diag', 'spherical'}, default='diag'
        Its covariance type (``mixture`` None).
    mixture : GaussianMixture, optional
        A fitted mixture (bayesgmm's or scikit-learn's) is used as it is, and ``fit`` only
        checks the sets; an unfitted one is cloned and fitted on the pooled descriptors
        (to choose its other settings: ``reg_covar``, ``n_init``, ``prior``, ...).
        scikit-learn's ``clone`` (cross-validation, grid search) clones the mixture too,
        so each training fold then fits its own: no leakage from the held-out sets.
    blocks, improved, alpha, normalization, covariance_parameters
        As in :func:`bayesgmm.fisher.encoding.fisher_vectors` (``improved=True`` usually
        helps a linear classifier; the default follows scikit-image's).
    random_state : int, RandomState or None
        Seeds the mixture fitted when ``mixture`` is None.

    Attributes
    ----------
    mixture_ : the fitted mixture that encodes the sets.
    n_features_in_ : int, the descriptor dimension.
    n_dims_ : int, the length of a Fisher vector.

    ``save(path)`` / ``FisherVectors.load(path)`` write and read the fitted transformer in
    bayesgmm's file format (the mixture in a group of its own) when the mixture is a
    ``bayesgmm.GaussianMixture``; a scikit-learn mixture is refused (pickle it instead).

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.pipeline import Pipeline
    >>> from sklearn.svm import LinearSVC
    >>> from bayesgmm import FisherVectors
    >>> rng = np.random.default_rng(0)
    >>> sets = [rng.normal(loc=c, size=(rng.integers(5, 20), 2)) for c in [0, 1] * 20]
    >>> y = [0, 1] * 20
    >>> pipe = Pipeline([("fv", FisherVectors(3, random_state=0)), ("svm", LinearSVC())])
    >>> pipe.fit(sets, y).score(sets, y) > 0.9
    True
    """

    def __init__(
        self,
        n_components: int = 16,
        *,
        covariance_type: str = "diag",
        mixture=None,
        blocks=BLOCKS,
        improved: bool = False,
        alpha: float = 0.5,
        normalization: str = "fisher",
        covariance_parameters: str = "component",
        random_state=None,
    ):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.mixture = mixture
        self.blocks = blocks
        self.improved = improved
        self.alpha = alpha
        self.normalization = normalization
        self.covariance_parameters = covariance_parameters
        self.random_state = random_state

    def _options(self):
        return check_options(
            self.blocks, self.improved, self.alpha, self.normalization, self.covariance_parameters
        )

    def fit(self, X, y=None) -> FisherVectors:
        """Fit the mixture on the pooled descriptors of the sets ``X`` (or take the given
        fitted one); ``y`` is ignored."""
        self._options()
        if self.mixture is None:
            check_positive_int(self.n_components, "n_components")
            if self.covariance_type not in COVARIANCE_TYPES:
                raise ValueError(
                    f"covariance_type must be one of {COVARIANCE_TYPES}, got "
                    f"{self.covariance_type!r}"
                )
            prep = prepare_sets(X, _n_features_of(X))
            mixture = GaussianMixture(
                self.n_components,
                covariance_type=self.covariance_type,
                random_state=self.random_state,
            ).fit(prep.X)
        else:
            try:
                fitted = fitted_mixture(self.mixture)
            except NotFittedError:
                prep = prepare_sets(X, _n_features_of(X))
                mixture = clone(self.mixture).fit(prep.X)
            else:
                prepare_sets(X, fitted.n_features)
                mixture = self.mixture
        self.mixture_ = mixture
        self.n_features_in_ = fitted_mixture(mixture).n_features
        self.n_dims_ = len(self.get_feature_names_out())
        return self

    def transform(self, X) -> np.ndarray:
        """Fisher vectors of the sets ``X``: (n_sets, n_dims)."""
        check_is_fitted(self, "mixture_")
        mixture = fitted_mixture(self.mixture_)
        return encode_prepared(prepare_sets(X, mixture.n_features), mixture, self._options())

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        """Coordinate names (:func:`bayesgmm.fisher.encoding.fisher_vector_names`)."""
        check_is_fitted(self, "mixture_")
        options = self._options()
        names = fisher_vector_names(
            self.mixture_,
            blocks=options.blocks,
            covariance_parameters=options.covariance_parameters,
        )
        return np.asarray(names, dtype=object)

    # -------------------------------------------------------------- save/load
    _file_format = "bayesgmm.FisherVectors/1"
    _file_types = (ConjugatePrior,)

    def _to_netcdf(self):
        """The fitted mixture in a group of its own; the parameters as JSON, the
        ``mixture`` parameter as how it was given (None, the fitted mixture itself, or an
        unfitted GaussianMixture's parameters)."""
        import xarray as xr

        if not isinstance(self.mixture_, GaussianMixture):
            raise TypeError(
                f"cannot save a FisherVectors whose mixture is a {type(self.mixture_).__name__}: "
                "the bayesgmm file format holds a bayesgmm.GaussianMixture; fit FisherVectors "
                "with one (the default), or pickle the transformer"
            )
        if self.mixture is None:
            given = ["none", None]
        elif self.mixture is self.mixture_:
            given = ["fitted", None]
        elif isinstance(self.mixture, GaussianMixture):
            given = ["unfitted", self.mixture.get_params(deep=False)]
        else:
            raise TypeError(
                f"cannot save the mixture parameter, a {type(self.mixture).__name__}: give "
                "a bayesgmm.GaussianMixture or None"
            )
        params = {k: v for k, v in self.get_params(deep=False).items() if k != "mixture"}
        tree = xr.DataTree.from_dict({_MIXTURE_GROUP: to_netcdf_data(self.mixture_)})
        attrs = {
            "params": params,
            "mixture": given,
            "n_features_in_": self.n_features_in_,
            "n_dims_": self.n_dims_,
        }
        return tree, attrs

    @classmethod
    def _from_netcdf(cls, tree, attrs) -> FisherVectors:
        data = tree[_MIXTURE_GROUP].to_dataset(inherit=False)
        mixture_ = from_netcdf_data(GaussianMixture, data, source=f"its {_MIXTURE_GROUP!r} group")
        kind, params = attrs["mixture"]
        mixture = {"none": None, "fitted": mixture_}.get(kind)
        if kind == "unfitted":
            mixture = GaussianMixture(**params)
        elif kind not in ("none", "fitted"):
            raise ValueError(f"unknown mixture kind {kind!r}")
        self = cls(**attrs["params"], mixture=mixture)
        self.mixture_ = mixture_
        self.n_features_in_ = attrs["n_features_in_"]
        self.n_dims_ = attrs["n_dims_"]
        if len(self.get_feature_names_out()) != self.n_dims_:
            raise ValueError("n_dims_ does not match the mixture and the options")
        return self
