"""Fisher vectors (bayesgmm.fisher.encoding) against independent references.

- scikit-image's ``fisher_vector`` on the same scikit-learn mixture (diag, improved on/off);
- finite differences of the set's log-likelihood, written here with scipy's densities, in
  the documented parametrisations: (softmax weights, means, precision Cholesky factor) for
  the raw gradient, and the local coordinates (alpha, t, E) for the normalised vector;
- a Monte Carlo check of unit expected Fisher information on data drawn from the mixture.
"""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy.special import logsumexp, softmax
from scipy.stats import multivariate_normal
from sklearn.exceptions import NotFittedError
from sklearn.mixture import GaussianMixture as SklearnGaussianMixture

from bayesgmm import GaussianMixture
from bayesgmm.datasets import make_mixture
from bayesgmm.fisher.encoding import (
    fisher_vector,
    fisher_vector_blocks,
    fisher_vector_names,
    fisher_vectors,
)

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
#: (covariance_type, covariance_parameters) pairs that differ
VARIANTS = [(c, "component") for c in COVARIANCE_TYPES] + [
    ("tied", "model"),
    ("spherical", "model"),
]


@pytest.fixture(scope="module")
def data():
    return make_mixture(600, 3, 3, separation=3.0, seed=4).X


@pytest.fixture(scope="module")
def mixtures(data):
    return {
        c: GaussianMixture(3, covariance_type=c, random_state=0).fit(data) for c in COVARIANCE_TYPES
    }


# ---------------------------------------------------------------------- scikit-image
@pytest.mark.parametrize("improved", [False, True])
def test_equals_skimage_for_a_diagonal_mixture(improved):
    skimage_feature = pytest.importorskip("skimage.feature")
    rng = np.random.default_rng(1)
    X = np.vstack([rng.normal(loc=m, size=(300, 6)) for m in (-2.0, 0.0, 3.0)])
    gmm = SklearnGaussianMixture(5, covariance_type="diag", random_state=0).fit(X)
    sets = [rng.normal(scale=2.0, size=(n, 6)) for n in (1, 4, 37, 250)]
    expected = np.array([skimage_feature.fisher_vector(s, gmm, improved=improved) for s in sets])
    got = fisher_vectors(sets, gmm, improved=improved)
    assert got.shape == (4, 2 * 5 * 6 + 5)
    assert_allclose(got, expected, rtol=0, atol=1e-10)
    # one set at a time, and the improved vector with another alpha
    assert_allclose(fisher_vector(sets[2], gmm, improved=improved), expected[2], atol=1e-10)
    if improved:
        ref = skimage_feature.fisher_vector(sets[3], gmm, improved=True, alpha=0.3)
        assert_allclose(fisher_vector(sets[3], gmm, improved=True, alpha=0.3), ref, atol=1e-10)


def test_bayesgmm_mixture_equals_skimage_on_its_parameters():
    """The same parameters in a scikit-learn object: skimage only accepts those."""
    skimage_feature = pytest.importorskip("skimage.feature")
    rng = np.random.default_rng(2)
    X = rng.normal(size=(400, 4)) * [1.0, 2.0, 0.5, 1.0]
    ours = GaussianMixture(4, covariance_type="diag", random_state=0).fit(X)
    theirs = SklearnGaussianMixture(4, covariance_type="diag")
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
        setattr(theirs, name, getattr(ours, name))
    sets = [rng.normal(size=(n, 4)) for n in rng.integers(1, 30, size=40)]  # sparse path
    expected = np.array([skimage_feature.fisher_vector(s, theirs) for s in sets])
    assert_allclose(fisher_vectors(sets, ours), expected, rtol=0, atol=1e-10)


# ------------------------------------------------------------ finite differences
def _log_likelihood(X, v, weights, means, covariances) -> float:
    comp = np.stack(
        [
            multivariate_normal(means[k], covariances[k]).logpdf(X).reshape(len(X))
            for k in range(len(weights))
        ],
        axis=1,
    )
    return float(v @ logsumexp(comp + np.log(weights), axis=1))


def _chol(gm, covariance_type, parameters):
    """Precision Cholesky factors in the parametrisation of the covariance block, and its
    kind: "matrices" (K, D, D), "shared" (D, D), "diagonals" (K, D), "scalars" (K,)."""
    k, d = gm.means_.shape
    pc = gm.precisions_cholesky_.copy()
    if covariance_type == "full":
        return pc, "matrices"
    if covariance_type == "tied":
        return (pc, "shared") if parameters == "model" else (np.stack([pc] * k), "matrices")
    if covariance_type == "diag":
        return pc, "diagonals"
    if parameters == "model":
        return pc, "scalars"
    return np.repeat(pc[:, None], d, axis=1), "diagonals"


def _factor_matrices(chol, kind, k, d):
    """(K, D, D) precision Cholesky factors from :func:`_chol`'s layout."""
    if kind == "matrices":
        return chol
    if kind == "shared":
        return np.stack([chol] * k)
    if kind == "diagonals":
        return np.stack([np.diag(p) for p in chol])
    return np.stack([p * np.eye(d) for p in chol])


def _unpack(theta, gm, covariance_type, parameters, local):
    """(weights, means, covariances) at the coordinates ``theta``.

    ``local=False``: theta = (alpha, means, entries of the precision factor: upper triangle
    or diagonal), the raw gradient's parametrisation; ``local=True``: theta = (alpha, t, E)
    about the fit, with mu = mu0 + P0^-T t and P = P0 (I + E), the normalised vector's.
    """
    k, d = gm.means_.shape
    chol0, kind = _chol(gm, covariance_type, parameters)
    alpha, rest = theta[:k], theta[k:]
    weights = softmax(np.log(gm.weights_) + alpha)
    mean_part, cov_part = rest[: k * d].reshape(k, d), rest[k * d :]
    if kind in ("matrices", "shared"):
        rows, cols = np.triu_indices(d)
        entries = cov_part.reshape(-1, len(rows))
        upper = np.zeros((len(entries), d, d))
        upper[:, rows, cols] = entries
        chol = chol0 @ (np.eye(d) + upper) if local else upper
        if kind == "shared":
            chol = chol[0]
    else:
        entries = cov_part.reshape(chol0.shape)
        chol = chol0 * (1.0 + entries) if local else entries
    P = _factor_matrices(chol, kind, k, d)
    if local:
        P0 = _factor_matrices(chol0, kind, k, d)
        means = gm.means_ + np.stack([np.linalg.solve(P0[j].T, mean_part[j]) for j in range(k)])
    else:
        means = mean_part
    covariances = np.stack([np.linalg.inv(F @ F.T) for F in P])
    return weights, means, covariances


def _theta0(gm, covariance_type, parameters, local):
    k, d = gm.means_.shape
    if local:
        n_cov = {
            ("full", "component"): k * d * (d + 1) // 2,
            ("tied", "component"): k * d * (d + 1) // 2,
            ("tied", "model"): d * (d + 1) // 2,
            ("diag", "component"): k * d,
            ("spherical", "component"): k * d,
            ("spherical", "model"): k,
        }[(covariance_type, parameters)]
        return np.zeros(k + k * d + n_cov)
    chol, kind = _chol(gm, covariance_type, parameters)
    if kind in ("matrices", "shared"):
        rows, cols = np.triu_indices(d)
        cov = chol[..., rows, cols].ravel()
    else:
        cov = chol.ravel()
    return np.concatenate([np.zeros(k), gm.means_.ravel(), cov])


def _fd_gradient(f, theta, h):
    grad = np.empty_like(theta)
    for j in range(len(theta)):
        e = np.zeros_like(theta)
        e[j] = h[j]
        grad[j] = (f(theta - 2 * e) - 8 * f(theta - e) + 8 * f(theta + e) - f(theta + 2 * e)) / (
            12 * h[j]
        )
    return grad


def _local_scale(gm, covariance_type, parameters, total):
    """The documented normalisation: n sqrt(w_k) (times sqrt 2 on diagonal precision
    entries, sqrt(2D) for spherical-model) per coordinate of (alpha, t, E)."""
    d = gm.means_.shape[1]
    w = gm.weights_
    parts = [total * np.sqrt(w), np.repeat(total * np.sqrt(w), d)]
    if covariance_type in ("full", "tied"):
        rows, cols = np.triu_indices(d)
        diag = np.sqrt(np.where(rows == cols, 2.0, 1.0))
        if parameters == "model" and covariance_type == "tied":
            parts.append(total * diag)
        else:
            parts.append((total * np.sqrt(w)[:, None] * diag).ravel())
    elif covariance_type == "spherical" and parameters == "model":
        parts.append(total * np.sqrt(w) * np.sqrt(2.0 * d))
    else:
        parts.append(np.repeat(total * np.sqrt(w) * np.sqrt(2.0), d))
    return np.concatenate(parts)


@pytest.mark.parametrize(("covariance_type", "parameters"), VARIANTS)
@pytest.mark.parametrize("normalization", ["none", "fisher"])
def test_blocks_are_the_gradient_of_the_set_log_likelihood(
    mixtures, covariance_type, parameters, normalization
):
    gm = mixtures[covariance_type]
    rng = np.random.default_rng(5)
    X = gm.sample(25)[0] + rng.normal(scale=0.3, size=(25, 3))
    v = rng.uniform(0.2, 2.0, size=25)  # descriptor weights
    local = normalization == "fisher"
    theta0 = _theta0(gm, covariance_type, parameters, local)

    def loglik(theta):
        return _log_likelihood(X, v, *_unpack(theta, gm, covariance_type, parameters, local))

    h = np.full(len(theta0), 1e-3) * np.maximum(1.0, np.abs(theta0)) * (0.1 if not local else 1)
    expected = _fd_gradient(loglik, theta0, h)
    got = fisher_vector(
        X,
        gm,
        sample_weight=v,
        normalization=normalization,
        covariance_parameters=parameters,
    )
    if local:  # the normalised vector: the local gradient over sqrt(Fisher information)
        expected = expected / _local_scale(gm, covariance_type, parameters, v.sum())
    assert got.shape == expected.shape
    assert_allclose(got, expected, rtol=1e-6, atol=1e-6 * np.abs(expected).max())


def test_raw_weights_block_sums_to_zero_and_weights_repeat_rows(mixtures):
    gm = mixtures["full"]
    X = gm.sample(30)[0]
    raw = fisher_vector(X, gm, normalization="none", blocks=["weights"])
    assert abs(raw.sum()) < 1e-10  # sum_k (gamma_ik - w_k) = 0
    counts = np.arange(30) % 3
    repeated = np.repeat(X, counts, axis=0)
    for normalization in ("fisher", "none"):
        weighted = fisher_vector(X, gm, sample_weight=counts, normalization=normalization)
        assert_allclose(weighted, fisher_vector(repeated, gm, normalization=normalization),
                        atol=1e-10, rtol=1e-10)  # fmt: skip


# ------------------------------------------------------ unit Fisher information (MC)
@pytest.mark.parametrize(("covariance_type", "parameters"), VARIANTS)
def test_unit_expected_fisher_information_on_data_from_the_mixture(covariance_type, parameters):
    """E[G G'] over single descriptors drawn from the fitted mixture itself is the identity
    on the means and covariance blocks and I - sqrt(w) sqrt(w)' on the weights block.

    Tolerance, per entry: 5 Monte Carlo standard errors (the sd of G_a G_b over the draws
    / sqrt(n), up to about 0.03 at n = 100,000 for the diagonal precision coordinates, whose
    fourth moment is 15 / w_k) plus 0.005 for the bias of the diagonal-in-components
    approximation (the components are c = 8 separated, so responsibilities are 0 or 1 to
    about 1e-6)."""
    truth = make_mixture(3000, 3, 2, separation=8.0, seed=6)
    gm = GaussianMixture(3, covariance_type=covariance_type, random_state=0).fit(truth.X)
    X = gm.sample(100_000)[0]
    G = fisher_vectors(X, gm, set_ids=np.arange(len(X)), covariance_parameters=parameters)
    products = G[:, :, None] * G[:, None, :]
    info = products.mean(axis=0)
    se = products.std(axis=0) / np.sqrt(len(G))
    k = 3
    expected = np.eye(G.shape[1])
    root = np.sqrt(gm.weights_)
    expected[:k, :k] -= np.outer(root, root)
    excess = np.abs(info - expected) - (5 * se + 0.005)
    assert excess.max() < 0, np.unravel_index(excess.argmax(), excess.shape)
    # and the mean score is zero within its Monte Carlo error
    assert (np.abs(G.mean(axis=0)) < 5 * G.std(axis=0) / np.sqrt(len(G))).all()


# -------------------------------------------------------------------- options, layout
def test_blocks_improved_and_names(mixtures):
    gm = mixtures["full"]
    X = gm.sample(40)[0]
    full = fisher_vector(X, gm)
    names = fisher_vector_names(gm)
    assert len(names) == len(full) == 3 + 9 + 3 * 6
    assert names[:4] == ["weights[0]", "weights[1]", "weights[2]", "means[0,0]"]
    assert names[12:14] == ["covariances[0,0,0]", "covariances[0,0,1]"]
    blocks = fisher_vector_blocks(names)
    only = fisher_vector(X, gm, blocks=["covariances", "means"])  # order is fixed
    assert_allclose(only, full[blocks != "weights"])
    improved = fisher_vector(X, gm, improved=True, alpha=0.5)
    manual = np.sign(full) * np.sqrt(np.abs(full))
    assert_allclose(improved, manual / np.linalg.norm(manual), rtol=1e-12)
    # K = 1: the weights block is identically zero; improved leaves it zero, not NaN
    one = GaussianMixture(1, random_state=0).fit(X)
    assert_allclose(fisher_vector(X, one, blocks="weights", improved=True), [0.0])


def test_batch_forms_agree(mixtures):
    gm = mixtures["diag"]
    rng = np.random.default_rng(7)
    sets = [gm.sample(n)[0] for n in (5, 60, 1, 33)]
    weights = [rng.uniform(0.5, 1.5, size=len(s)) for s in sets]
    listed = fisher_vectors(sets, gm, sample_weight=weights)
    one_by_one = np.array(
        [fisher_vector(s, gm, sample_weight=w) for s, w in zip(sets, weights, strict=True)]
    )
    assert_allclose(listed, one_by_one, rtol=1e-12, atol=1e-13)
    # one array with set ids, rows shuffled and ids not 0..n-1: rows follow np.unique(ids)
    ids = np.repeat([40, 10, 30, 20], [len(s) for s in sets])
    X, w = np.vstack(sets), np.concatenate(weights)
    perm = rng.permutation(len(X))
    by_ids = fisher_vectors(X[perm], gm, set_ids=ids[perm], sample_weight=w[perm])
    assert_allclose(by_ids, listed[[1, 3, 2, 0]], rtol=1e-10, atol=1e-12)
    # a 3-D array of equal-size sets
    cube = np.stack([gm.sample(8)[0] for _ in range(3)])
    assert_allclose(fisher_vectors(cube, gm), fisher_vectors(list(cube), gm))


def test_sklearn_mixture_of_every_type_is_accepted(data):
    for covariance_type in COVARIANCE_TYPES:
        sk = SklearnGaussianMixture(3, covariance_type=covariance_type, random_state=0).fit(data)
        ours = GaussianMixture(3, covariance_type=covariance_type)
        for name in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
            setattr(ours, name, getattr(sk, name))
        ours.n_features_in_ = 3
        sets = [data[:20], data[100:103]]
        assert_allclose(fisher_vectors(sets, sk), fisher_vectors(sets, ours))


# ---------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("sets", "kwargs", "error", "match"),
    [
        (
            [np.ones((4, 3)), np.ones((4, 2))],
            {},
            ValueError,
            r"set 1 has 2 features, but the mixture was fitted with 3",
        ),
        ([np.ones((4, 3)), np.empty((0, 3))], {}, ValueError, r"set 1 is empty \(0 descriptors\)"),
        (
            [np.ones((4, 3)), np.r_[[[0.0, np.nan, 1.0]], np.ones((2, 3))]],
            {},
            ValueError,
            r"NaN .* set 1 \(descriptor 0\)",
        ),
        ([np.ones((2, 3)), np.full((2, 3), np.inf)], {}, ValueError, r"contain inf"),
        ([np.ones(3)], {}, ValueError, r"set 0 must be 2-D .* reshape"),
        ([], {}, ValueError, r"no sets to encode"),
        (np.ones((5, 3)), {}, ValueError, r"pass set_ids"),
        (
            np.ones((5, 3)),
            {"set_ids": [0, 1]},
            ValueError,
            r"set_ids must hold one id per descriptor",
        ),
        ([np.ones((2, 3))], {"sample_weight": [[1.0, -1.0]]}, ValueError, r"non-negative"),
        ([np.ones((2, 3))], {"sample_weight": [[0.0, 0.0]]}, ValueError, r"sum to zero"),
        (
            [np.ones((2, 3))],
            {"sample_weight": [[1.0]]},
            ValueError,
            r"sample_weight\[0\] has 1 weights for the 2",
        ),
        (
            [np.ones((2, 3))],
            {"blocks": ["weights", "variances"]},
            ValueError,
            r"unknown: \['variances'\]",
        ),
        ([np.ones((2, 3))], {"blocks": []}, ValueError, r"non-empty selection"),
        ([np.ones((2, 3))], {"alpha": 2.0}, ValueError, r"alpha must be in \[0, 1\]"),
        ([np.ones((2, 3))], {"alpha": "half"}, TypeError, r"alpha must be"),
        ([np.ones((2, 3))], {"improved": "yes"}, TypeError, r"improved must be True or False"),
        ([np.ones((2, 3))], {"normalization": "l2"}, ValueError, r"normalization must be one of"),
        ("abc", {}, TypeError, r"sets must be a list of 2-D arrays"),
        ([np.ones((2, 3))] * 2, {"set_ids": [0, 1]}, ValueError, r"with set_ids, sets must"),
    ],
)
def test_bad_input_raises_clearly(mixtures, sets, kwargs, error, match):
    with pytest.raises(error, match=match):
        fisher_vectors(sets, mixtures["diag"], **kwargs)


def test_unfitted_or_wrong_mixture_raises(data):
    for gmm in (GaussianMixture(3), SklearnGaussianMixture(3)):
        with pytest.raises(NotFittedError, match=r"not fitted yet: fit the mixture"):
            fisher_vector(data[:5], gmm)
    with pytest.raises(TypeError, match=r"must be a fitted Gaussian mixture"):
        fisher_vector(data[:5], object())


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_chunked_encoding_equals_one_pass(mixtures, monkeypatch, covariance_type):
    """Many sets are encoded in chunks of whole sets (bounded memory): one set per chunk
    gives the same vectors as one chunk for all."""
    from bayesgmm.fisher import encoding

    gm = mixtures[covariance_type]
    rng = np.random.default_rng(8)
    sets = [gm.sample(n)[0] for n in rng.integers(1, 40, size=12)]
    weights = [rng.uniform(0.1, 2.0, size=len(s)) for s in sets]
    whole = fisher_vectors(sets, gm, sample_weight=weights, improved=True)
    monkeypatch.setattr(encoding, "_CHUNK_BYTES", 1)
    assert_allclose(
        fisher_vectors(sets, gm, sample_weight=weights, improved=True), whole, atol=1e-13
    )
