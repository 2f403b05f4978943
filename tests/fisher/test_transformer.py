"""FisherVectors: the transformer in scikit-learn pipelines and cross-validation."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import Pipeline
from sklearn.svm import LinearSVC

from bayesgmm import FisherVectors, GaussianMixture, fisher_vectors


@pytest.fixture(scope="module")
def labelled_sets():
    """Two classes of 2-D sets that differ only in the spread of their descriptors (equal
    means): mean pooling cannot tell them apart, the covariance block can."""
    rng = np.random.default_rng(0)
    sets, y = [], []
    for i in range(80):
        label = i % 2
        n = int(rng.integers(10, 40))
        sets.append(rng.normal(scale=1.0 if label else 1.6, size=(n, 2)))
        y.append(label)
    return sets, np.array(y)


def test_pipeline_with_linear_svm(labelled_sets):
    sets, y = labelled_sets
    pipe = Pipeline([("fv", FisherVectors(4, improved=True, random_state=0)), ("svm", LinearSVC())])
    scores = cross_val_score(pipe, sets, y, cv=4)
    assert scores.mean() > 0.85
    pipe.fit(sets, y)
    fv = pipe.named_steps["fv"]
    # what the pipeline feeds the SVM is fisher_vectors with the fitted mixture
    assert_allclose(fv.transform(sets), fisher_vectors(sets, fv.mixture_, improved=True))
    assert fv.n_dims_ == 4 + 2 * 4 * 2 == len(fv.get_feature_names_out())
    # the means block alone cannot separate the classes as well
    means_only = Pipeline(
        [("fv", FisherVectors(4, blocks="weights", random_state=0)), ("svm", LinearSVC())]
    )
    assert cross_val_score(means_only, sets, y, cv=4).mean() < scores.mean()


def test_given_mixture_fitted_or_not(labelled_sets):
    sets, _ = labelled_sets
    pooled = np.vstack(sets)
    fitted = GaussianMixture(3, covariance_type="full", random_state=1).fit(pooled)
    fv = FisherVectors(mixture=fitted).fit(sets)
    assert fv.mixture_ is fitted  # used as it is
    assert_allclose(fv.transform(sets[:5]), fisher_vectors(sets[:5], fitted))
    unfitted = GaussianMixture(3, covariance_type="tied", random_state=2)
    fv = FisherVectors(mixture=unfitted, covariance_parameters="model").fit(sets)
    assert not hasattr(unfitted, "weights_")  # cloned, then fitted
    expected = GaussianMixture(3, covariance_type="tied", random_state=2).fit(pooled)
    assert_allclose(fv.mixture_.means_, expected.means_)
    assert fv.transform(sets).shape == (80, 3 + 6 + 3)
    # clone (as cross-validation does) clones the mixture: each fold fits its own
    assert not hasattr(clone(FisherVectors(mixture=fitted)).mixture, "weights_")


def test_bad_input(labelled_sets):
    sets, _ = labelled_sets
    with pytest.raises(NotFittedError):
        FisherVectors().transform(sets)
    with pytest.raises(ValueError, match=r"covariance_type must be one of"):
        FisherVectors(2, covariance_type="diagonal").fit(sets)
    with pytest.raises(ValueError, match=r"n_components must be an integer >= 1"):
        FisherVectors(0).fit(sets)
    fv = FisherVectors(2, random_state=0).fit(sets)
    with pytest.raises(ValueError, match=r"set 1 has 3 features, but the mixture was fitted"):
        fv.transform([np.ones((3, 2)), np.ones((3, 3))])
    with pytest.raises(ValueError, match=r"set 0 is empty"):
        fv.transform([np.empty((0, 2))])
    with pytest.raises(ValueError, match=r"no sets to encode"):
        FisherVectors(2).fit([])
    with pytest.raises(TypeError, match=r"must be a fitted Gaussian mixture"):
        FisherVectors(mixture="gmm").fit(sets)


def test_pickle_round_trip_and_map_em_mixture(labelled_sets):
    import pickle

    sets, _ = labelled_sets
    fv = FisherVectors(3, covariance_type="spherical", random_state=0).fit(sets)
    loaded = pickle.loads(pickle.dumps(fv))
    np.testing.assert_array_equal(loaded.transform(sets), fv.transform(sets))
    # a MAP-EM mixture (conjugate prior) encodes like any other
    map_em = GaussianMixture(3, prior="default", random_state=0)
    fv = FisherVectors(mixture=map_em).fit(sets)
    assert fv.mixture_.prior_ is not None
    assert_allclose(fv.transform(sets), fisher_vectors(sets, fv.mixture_))


def _assert_same_transformer(a, b):
    pa, pb = a.get_params(deep=False), b.get_params(deep=False)
    assert pa.keys() == pb.keys()
    for key in pa:
        if key == "mixture" and pa[key] is not None:
            assert type(pa[key]) is type(pb[key])
            assert repr(pa[key].get_params()) == repr(pb[key].get_params())
        else:
            assert pa[key] == pb[key], key
    assert (a.n_features_in_, a.n_dims_) == (b.n_features_in_, b.n_dims_)
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
        np.testing.assert_array_equal(getattr(a.mixture_, name), getattr(b.mixture_, name))


@pytest.mark.parametrize("given", ["none", "fitted", "unfitted"])
def test_save_load_round_trip(labelled_sets, tmp_path, given):
    sets, _ = labelled_sets
    pooled = np.vstack(sets)
    mixture = {
        "none": None,
        "fitted": GaussianMixture(2, covariance_type="full", random_state=0).fit(pooled),
        "unfitted": GaussianMixture(2, covariance_type="tied", prior="default", random_state=3),
    }[given]
    fv = FisherVectors(
        3, mixture=mixture, blocks=("means", "covariances"), improved=True, alpha=0.3,
        covariance_parameters="model", random_state=1,
    ).fit(sets)  # fmt: skip
    fv.save(tmp_path / "fv.nc")
    loaded = FisherVectors.load(tmp_path / "fv.nc")
    _assert_same_transformer(loaded, fv)
    if given == "fitted":
        assert loaded.mixture is loaded.mixture_
    np.testing.assert_array_equal(loaded.transform(sets), fv.transform(sets))


def test_save_refuses_what_it_cannot_hold(labelled_sets, tmp_path):
    from sklearn.mixture import GaussianMixture as SklearnGaussianMixture

    sets, _ = labelled_sets
    with pytest.raises(NotFittedError):
        FisherVectors().save(tmp_path / "fv.nc")
    sk = SklearnGaussianMixture(2, random_state=0).fit(np.vstack(sets))
    with pytest.raises(TypeError, match=r"bayesgmm file format holds a bayesgmm.GaussianMixture"):
        FisherVectors(mixture=sk).fit(sets).save(tmp_path / "fv.nc")
    gm = GaussianMixture(2, random_state=0).fit(np.vstack(sets))
    gm.save(tmp_path / "gm.nc")
    with pytest.raises(ValueError, match=r"load it with GaussianMixture.load"):
        FisherVectors.load(tmp_path / "gm.nc")
    assert not (tmp_path / "fv.nc").exists()
