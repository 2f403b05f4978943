"""Word2GM: multimodal word distributions (Athiwaratkun & Wilson, ACL 2017).

Every word is a Gaussian mixture with ``n_components`` components in ``vector_size``
dimensions (spherical or diagonal covariances), so that a polysemous word can put one
component on each sense. Training is skip-gram with negative sampling and subsampling of
frequent words; the energy of a (word, context) pair is the log expected likelihood kernel
between the word's mixture and the context's (:mod:`bayesgmm.embeddings.kernel`), and the
loss of a triple (word, context, negative context) is the paper's max-margin hinge
``max(0, margin - log xi(w, c) + log xi(w, c'))``. Parameters are updated by AdaGrad in a
compiled, multi-threaded, lock-free loop (:mod:`bayesgmm.embeddings.sgd`), with the paper's
bounds: every variance in ``var_bounds``, every component mean in the ball of radius
``max_norm``.

As in word2vec, each word has an input mixture (its embedding, what the queries use) and an
output mixture (used when it is a context); the paper's energy is between the two.
"""

from __future__ import annotations

import time

import numpy as np
from scipy.special import softmax
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from bayesgmm._validation import check_choice, check_positive_int, check_real, check_seed
from bayesgmm.em.gaussian import LOG_2PI
from bayesgmm.embeddings.corpus import build_vocabulary, encode_corpus, read_corpus
from bayesgmm.embeddings.kernel import log_expected_likelihood, max_cosine_similarity
from bayesgmm.embeddings.sgd import (
    alias_table,
    pack_records,
    record_layout,
    train_block,
    unpack_records,
)
from bayesgmm.io import (
    SaveLoadMixin,
    fitted_attributes,
    fitted_variables,
    require_fitted,
    restore_fitted,
)
from bayesgmm.progress import progress_bar

__all__ = [
    "EMBEDDING_COVARIANCE_TYPES",
    "SIMILARITY_METRICS",
    "TRAINING_DTYPES",
    "UnknownWordError",
    "Word2GM",
]

#: Covariance types of the embeddings (the names of bayesgmm's EM engine).
EMBEDDING_COVARIANCE_TYPES = ("spherical", "diag")
#: Floating-point types of the training loop (``dtype``).
TRAINING_DTYPES = ("float32", "float64")
#: Word similarities: the log expected likelihood kernel, and the max-over-components cosine.
SIMILARITY_METRICS = ("elk", "maxcos")
#: Words per chunk of sentences (a unit of parallel work with its own random stream).
_CHUNK_WORDS = 4096
#: Chunks per compiled call (one progress-bar step); fixed, so draws do not depend on threads.
_CHUNKS_PER_BLOCK = 32


class UnknownWordError(KeyError, ValueError):
    """A query named a word that is not in the fitted vocabulary."""

    def __str__(self) -> str:
        return str(self.args[0])


class Word2GM(SaveLoadMixin, BaseEstimator):
    """Gaussian-mixture word embeddings (w2gm; Athiwaratkun & Wilson 2017).

    Parameters
    ----------
    n_components : int, default=2
        Components (senses) per word; 1 gives the single-Gaussian embeddings of Vilnis &
        McCallum (2015).
    vector_size : int, default=50
        Dimension ``D`` of the embedding space.
    covariance_type : {"spherical", "diag"}, default="spherical"
        One variance per component (the paper's main setting) or one per dimension.
    window : int, default=5
        Largest distance between a word and a context word; each centre word draws its
        window size uniformly from ``1..window`` (word2vec's dynamic window).
    negative : int, default=1
        Negative contexts drawn per (word, context) pair, each a hinge term (the paper uses
        one), from the unigram distribution to the power 0.75.
    margin : float, default=1.0
        The hinge margin ``m``.
    sample : float, default=1e-3
        Subsampling threshold: a word of frequency ``f`` is kept with probability
        ``(sqrt(f / sample) + 1) * sample / f`` (word2vec's formula; 0 keeps every word).
    min_count : int, default=5
        Words seen fewer times are dropped from the corpus.
    epochs : int, default=5
    learning_rate : float, default=0.05
        AdaGrad's base step (the paper's 0.05).
    var_init : float, default=1.0
        Initial variance of every component.
    var_bounds : tuple of float, default=(0.05, 2.0)
        Every variance is kept in ``[lower, upper]`` (projected after each step).
    max_norm : float, default=5.0
        Every component mean is kept in the ball of this radius.
    mean_init_scale : float, default=0.05
        Initial means are ``Normal(0, mean_init_scale**2)`` per coordinate: small against
        the initial variances, so that every energy starts near the same value and the
        hinge is active (with means spread wider than the variances, random differences
        between energies satisfy the margin from the start and learning is slow). These
        defaults were chosen on the King James Bible against SimLex-999 / WordSim-353
        (``benchmarks/word_embeddings.py``); the paper does not state all of them.
    dtype : {"float32", "float64"}, default="float32"
        Floating-point type of the parameters and of the vector arithmetic while training
        (word2vec's float32 by default: half the memory traffic and twice the SIMD width of
        float64). Scalars (energies, logs, AdaGrad accumulators of the logits) are float64
        either way, and the fitted attributes are float64 whatever the choice.
    workers : int or None, default=None
        Threads of the training loop (numba's current number of threads if None).
    random_state : int or None, default=None
        Seeds the initial parameters and every random draw of training (subsampling,
        window sizes, negatives), which are made per chunk of sentences and so do not
        depend on ``workers``. With ``workers=1`` a seeded fit is reproducible bit for bit;
        with more threads, the lock-free (Hogwild) updates race and the parameters differ
        from run to run by rounding-level amounts that SGD then amplifies: results are
        statistically, not bitwise, reproducible, as with word2vec.
    progressbar : bool, default=True
        Show a progress bar (:mod:`bayesgmm.progress`, on standard error) over the
        training blocks, with the running loss per triple.

    Attributes
    ----------
    vocabulary_ : ndarray of str, shape (n_words,)
        Words, most frequent first.
    counts_ : ndarray of int64, shape (n_words,)
    logits_ : ndarray of shape (n_words, n_components)
        Weight logits of the input mixtures (``weights_`` is their softmax).
    means_ : ndarray of shape (n_words, n_components, vector_size)
    variances_ : ndarray of shape (n_words, n_components, 1 or vector_size)
        Spherical: one variance per component; diagonal: one per dimension.
    context_logits_, context_means_, context_variances_ : ndarray
        The output (context) mixtures, same shapes.
    loss_curve_ : ndarray of shape (n_blocks,)
        Mean hinge loss per sampled triple in each training block (about 130,000 corpus
        words): the training curve.
    epoch_loss_ : ndarray of shape (epochs,)
        Mean hinge loss per triple in each epoch.
    n_words_trained_ : int
        Corpus words read (before subsampling), over all epochs.
    n_triples_ : int
        (word, context, negative) triples sampled, over all epochs: a function of the
        random draws alone, so the same for every ``workers`` under one seed.
    train_time_ : float
        Seconds spent in the training loop (vocabulary building excluded).
    words_per_second_ : float
        ``n_words_trained_ / train_time_``.

    Examples
    --------
    >>> import numpy as np
    >>> from bayesgmm.embeddings import Word2GM
    >>> rng = np.random.default_rng(0)
    >>> river, money = "river water shore fish".split(), "money loan cash credit".split()
    >>> corpus = [list(rng.choice(river if i % 2 else money, 5)) + ["bank"] for i in range(400)]
    >>> model = Word2GM(2, vector_size=8, min_count=1, sample=0, epochs=2, workers=1,
    ...                 random_state=0, progressbar=False).fit(corpus)
    >>> model.means_.shape, model.variances_.shape     # 9 words, 2 components, 8 dims
    ((9, 2, 8), (9, 2, 1))
    >>> mixture = model.mixture("bank")
    >>> round(float(mixture["weights"].sum()), 12), mixture["variances"].shape
    (1.0, (2,))
    >>> len(model.component_neighbours("bank", topn=3)), len(model.most_similar("loan", 4))
    (2, 4)
    >>> model.similarity("loan", "cash") > model.similarity("loan", "shore")
    True
    """

    _file_format = "bayesgmm.Word2GM/2"  # the version of the one format every estimator uses
    _file_fitted = (
        "vocabulary_", "counts_", "logits_", "means_", "variances_", "context_logits_",
        "context_means_", "context_variances_", "loss_curve_", "epoch_loss_",
    )  # fmt: skip

    def __init__(
        self,
        n_components: int = 2,
        *,
        vector_size: int = 50,
        covariance_type: str = "spherical",
        window: int = 5,
        negative: int = 1,
        margin: float = 1.0,
        sample: float = 1e-3,
        min_count: int = 5,
        epochs: int = 5,
        learning_rate: float = 0.05,
        var_init: float = 1.0,
        var_bounds: tuple[float, float] = (0.05, 2.0),
        max_norm: float = 5.0,
        mean_init_scale: float = 0.05,
        dtype: str = "float32",
        workers: int | None = None,
        random_state: int | None = None,
        progressbar: bool = True,
    ):
        self.n_components = n_components
        self.vector_size = vector_size
        self.covariance_type = covariance_type
        self.window = window
        self.negative = negative
        self.margin = margin
        self.sample = sample
        self.min_count = min_count
        self.epochs = epochs
        self.learning_rate = learning_rate
        self.var_init = var_init
        self.var_bounds = var_bounds
        self.max_norm = max_norm
        self.mean_init_scale = mean_init_scale
        self.dtype = dtype
        self.workers = workers
        self.random_state = random_state
        self.progressbar = progressbar

    # ------------------------------------------------------------------ fitting
    def _check_params(self) -> tuple[float, float]:
        check_positive_int(self.n_components, "n_components")
        check_positive_int(self.vector_size, "vector_size")
        check_choice(self.covariance_type, "covariance_type", EMBEDDING_COVARIANCE_TYPES)
        check_choice(self.dtype, "dtype", TRAINING_DTYPES)
        check_positive_int(self.window, "window")
        check_positive_int(self.negative, "negative")
        check_real(self.margin, "margin", minimum=0.0, strict=True)
        check_real(self.sample, "sample", minimum=0.0)
        check_positive_int(self.min_count, "min_count")
        check_positive_int(self.epochs, "epochs")
        check_real(self.learning_rate, "learning_rate", minimum=0.0, strict=True)
        check_real(self.max_norm, "max_norm", minimum=0.0, strict=True)
        check_real(self.mean_init_scale, "mean_init_scale", minimum=0.0)
        if self.workers is not None:
            check_positive_int(self.workers, "workers")
        check_seed(self.random_state)
        try:
            lower, upper = (float(v) for v in self.var_bounds)
        except (TypeError, ValueError):
            raise ValueError(
                f"var_bounds must be a pair (lower, upper) of positive numbers, got "
                f"{self.var_bounds!r}"
            ) from None
        if not 0.0 < lower <= upper < np.inf:
            raise ValueError(f"var_bounds must satisfy 0 < lower <= upper, got {self.var_bounds!r}")
        var_init = check_real(self.var_init, "var_init", minimum=0.0, strict=True)
        if not lower <= var_init <= upper:
            raise ValueError(f"var_init={var_init} must lie within var_bounds={self.var_bounds}")
        return lower, upper

    def fit(self, corpus, y=None) -> Word2GM:
        """Train on a corpus.

        Parameters
        ----------
        corpus : str, path-like, or iterable of lists of str
            A text file with one sentence per line (tokens separated by white space) or an
            iterable of token lists (see :func:`bayesgmm.embeddings.read_corpus`).
        y : ignored

        Returns
        -------
        self
        """
        import numba

        var_min, var_max = self._check_params()
        self._index_cache = None  # a refit may change the vocabulary
        sentences = read_corpus(corpus)
        words, counts = build_vocabulary(sentences, self.min_count)
        index = {w: i for i, w in enumerate(words.tolist())}
        tokens, starts = encode_corpus(sentences, index)
        if starts.shape[0] < 2:
            raise ValueError(
                "no sentence has two in-vocabulary words, so there are no (word, context) "
                "pairs: give a larger corpus or lower min_count"
            )
        del sentences
        n_words, k_n, d = len(words), self.n_components, self.vector_size
        dv = 1 if self.covariance_type == "spherical" else d
        rng = np.random.default_rng(self.random_state)
        self.logits_ = np.zeros((n_words, k_n))
        self.means_ = rng.normal(0.0, self.mean_init_scale, (n_words, k_n, d))
        self.variances_ = np.full((n_words, k_n, dv), float(self.var_init))
        self.context_logits_ = np.zeros((n_words, k_n))
        self.context_means_ = rng.normal(0.0, self.mean_init_scale, (n_words, k_n, d))
        self.context_variances_ = np.full((n_words, k_n, dv), float(self.var_init))
        layout = record_layout(k_n, d, dv, self.dtype)
        records = (pack_records(self.logits_, self.means_, self.variances_, layout),
                   pack_records(self.context_logits_, self.context_means_,
                                self.context_variances_, layout))  # fmt: skip
        var_lo, var_hi, norm_max = _bounds_in(self.dtype, var_min, var_max, self.max_norm)

        freq = counts / counts.sum()
        if self.sample > 0:
            keep = (np.sqrt(freq / self.sample) + 1.0) * self.sample / freq
        else:
            keep = np.ones(n_words)
        keep = np.minimum(keep, 1.0)
        neg_prob, neg_alias = alias_table(counts.astype(np.float64) ** 0.75)
        chunk_starts = _chunk_sentences(starts, _CHUNK_WORDS)
        n_chunks = len(chunk_starts) - 1
        blocks = [chunk_starts[i : i + _CHUNKS_PER_BLOCK + 1]
                  for i in range(0, n_chunks, _CHUNKS_PER_BLOCK)]  # fmt: skip
        seed_root = int(rng.integers(0, 2**63))

        old_threads = numba.get_num_threads()
        # chunks handed out one at a time as threads free up (not a static split), so that
        # a thread slowed down by a busy machine does not hold the others at the block's end
        old_chunksize = numba.set_parallel_chunksize(1)
        if self.workers is not None:
            numba.set_num_threads(min(self.workers, numba.config.NUMBA_NUM_THREADS))
        loss_curve, epoch_loss = [], []
        n_read = 0
        n_triples = 0
        start = time.perf_counter()
        try:
            with progress_bar(
                self.epochs * len(tokens), "Word2GM", enabled=self.progressbar
            ) as bar:
                for epoch in range(self.epochs):
                    epoch_sums = np.zeros(2)
                    for b, block in enumerate(blocks):
                        seeds = np.random.default_rng([seed_root, epoch, b]).integers(
                            0, 2**63, len(block) - 1, dtype=np.uint64
                        )
                        stats = np.zeros((len(block) - 1, 4))
                        train_block(
                            tokens, starts, block, seeds, keep, neg_prob, neg_alias, *records,
                            k_n, d, layout.d_pad, dv, self.window, self.negative,
                            float(self.margin), float(self.learning_rate), 1e-10, var_lo,
                            var_hi, norm_max, stats,
                        )  # fmt: skip
                        total = stats.sum(axis=0)
                        loss_curve.append(total[0] / max(total[1], 1.0))
                        epoch_sums += total[:2]
                        n_read += int(total[2])
                        n_triples += int(total[1])
                        bar.advance(int(total[2]), status=f"loss {loss_curve[-1]:.4f}")
                    epoch_loss.append(epoch_sums[0] / max(epoch_sums[1], 1.0))
                bar.finish()
        finally:
            self.train_time_ = time.perf_counter() - start
            numba.set_num_threads(old_threads)
            numba.set_parallel_chunksize(old_chunksize)
        if not all(np.isfinite(r).all() for r in records):
            raise FloatingPointError(
                "training produced non-finite parameters: lower learning_rate or raise the "
                "lower variance bound var_bounds[0]"
            )
        self.logits_, self.means_, self.variances_ = unpack_records(records[0], layout)
        (self.context_logits_, self.context_means_,
         self.context_variances_) = unpack_records(records[1], layout)  # fmt: skip
        self.vocabulary_ = words
        self.counts_ = counts
        self.loss_curve_ = np.array(loss_curve)
        self.epoch_loss_ = np.array(epoch_loss)
        self.n_words_trained_ = n_read
        self.n_triples_ = n_triples
        self.words_per_second_ = n_read / max(self.train_time_, 1e-12)
        return self

    # ------------------------------------------------------------------ queries
    @property
    def weights_(self) -> np.ndarray:
        """Mixture weights of the input mixtures, shape (n_words, n_components)."""
        check_is_fitted(self, "logits_")
        return softmax(self.logits_, axis=1)

    def _index(self) -> dict[str, int]:
        check_is_fitted(self, "vocabulary_")
        if getattr(self, "_index_cache", None) is None:
            self._index_cache = {w: i for i, w in enumerate(self.vocabulary_.tolist())}
        return self._index_cache

    def word_index(self, word: str) -> int:
        """The row of ``word``; :class:`UnknownWordError` (a KeyError and a ValueError) if it
        is not in the vocabulary."""
        index = self._index()
        if not isinstance(word, str):
            raise TypeError(f"a word must be a str, got {type(word).__name__}")
        if word not in index:
            raise UnknownWordError(
                f"word {word!r} is not in the vocabulary ({len(index)} words seen at least "
                f"min_count={self.min_count} times): check the spelling and case (the "
                "loaders lower-case), or test `word in model` first"
            )
        return index[word]

    def __contains__(self, word) -> bool:
        return isinstance(word, str) and word in self._index()

    def mixture(self, word: str) -> dict[str, np.ndarray]:
        """The input mixture of ``word``: ``weights`` (K,), ``means`` (K, D) and
        ``variances`` (K,) for spherical or (K, D) for diagonal covariances."""
        i = self.word_index(word)
        var = self.variances_[i]
        return {
            "weights": softmax(self.logits_[i]),
            "means": self.means_[i].copy(),
            "variances": var[:, 0].copy() if self.covariance_type == "spherical" else var.copy(),
        }

    def similarity(self, word_a: str, word_b: str, metric: str = "elk") -> float:
        """Similarity of two words' input mixtures.

        ``metric="elk"``: the log expected likelihood kernel ``log int f g`` (the paper's
        energy); ``"maxcos"``: the largest cosine between a component mean of each word.
        """
        check_choice(metric, "metric", SIMILARITY_METRICS)
        a, b = self.mixture(word_a), self.mixture(word_b)
        if metric == "maxcos":
            return max_cosine_similarity(a["means"], b["means"])
        return log_expected_likelihood(
            a["weights"], a["means"], a["variances"], b["weights"], b["means"], b["variances"]
        )

    def most_similar(self, word: str, topn: int = 10, metric: str = "maxcos") -> list:
        """The ``topn`` words most similar to ``word`` (itself excluded), as (word, score).

        The default is the max-over-components cosine, as the paper uses for neighbours.
        The kernel (``metric="elk"``) also rewards broad components. On a small corpus its
        nearest neighbours are dominated by a few "hub" words whose components are wide. On
        the King James Bible, ``"king"`` gets cyrus, darius, joshua by ``maxcos`` and
        unrelated hubs by ``elk``.
        """
        check_choice(metric, "metric", SIMILARITY_METRICS)
        topn = check_positive_int(topn, "topn")
        i = self.word_index(word)
        scores = self._scores_against_all(i, metric)
        scores[i] = -np.inf
        order = np.argsort(-scores, kind="stable")[:topn]
        return [(str(self.vocabulary_[j]), float(scores[j])) for j in order]

    def _scores_against_all(self, i: int, metric: str) -> np.ndarray:
        if metric == "maxcos":
            unit = self.means_ / np.linalg.norm(self.means_, axis=2, keepdims=True)
            return np.einsum("kd,vld->vkl", unit[i], unit).reshape(len(unit), -1).max(axis=1)
        d = self.means_.shape[2]
        var = np.broadcast_to(self.variances_, self.means_.shape)
        s = var[i][None, :, None, :] + var[:, None, :, :]  # (V, K_i, K, D)
        diff = self.means_[i][None, :, None, :] - self.means_[:, None, :, :]
        log_n = -0.5 * (d * LOG_2PI + np.sum(np.log(s) + diff**2 / s, axis=3))
        log_w = np.log(self.weights_)
        total = log_w[i][None, :, None] + log_w[:, None, :] + log_n
        top = total.max(axis=(1, 2), keepdims=True)
        return (top + np.log(np.exp(total - top).sum(axis=(1, 2), keepdims=True))).ravel()

    def component_neighbours(self, word: str, topn: int = 10) -> list[list[tuple]]:
        """Nearest neighbours of each component of ``word`` (its senses), as in the paper's
        Table 1: for component ``k``, the ``topn`` (word, component, cosine) of other words
        whose component means have the largest cosine with ``word``'s ``k``-th mean."""
        topn = check_positive_int(topn, "topn")
        i = self.word_index(word)
        k_n = self.means_.shape[1]
        unit = self.means_ / np.linalg.norm(self.means_, axis=2, keepdims=True)
        flat = unit.reshape(-1, unit.shape[2])
        result = []
        for k in range(k_n):
            cos = flat @ unit[i, k]
            cos[i * k_n : (i + 1) * k_n] = -np.inf
            order = np.argsort(-cos, kind="stable")[:topn]
            result.append(
                [(str(self.vocabulary_[j // k_n]), int(j % k_n), float(cos[j])) for j in order]
            )
        return result

    # ------------------------------------------------------------------ persistence
    def _to_netcdf(self):
        import xarray as xr

        fitted = fitted_attributes(self)
        dims = {
            "vocabulary_": ("word",), "counts_": ("word",),
            "logits_": ("word", "component"), "context_logits_": ("word", "component"),
            "means_": ("word", "component", "dimension"),
            "context_means_": ("word", "component", "dimension"),
            "variances_": ("word", "component", "variance_dimension"),
            "context_variances_": ("word", "component", "variance_dimension"),
            "loss_curve_": ("block",), "epoch_loss_": ("epoch",),
        }  # fmt: skip
        variables, attrs = fitted_variables(self, fitted, dims)
        return xr.Dataset(variables), attrs

    @classmethod
    def _from_netcdf(cls, data, attrs) -> Word2GM:
        model = restore_fitted(cls, data, attrs)
        require_fitted(model, cls._file_fitted)
        return model


def _chunk_sentences(starts: np.ndarray, chunk_words: int) -> np.ndarray:
    """Sentence indices cutting the corpus into chunks of at least ``chunk_words`` words."""
    bounds = [0]
    n_sentences = len(starts) - 1
    target = chunk_words
    for s in range(1, n_sentences):
        if starts[s] >= target:
            bounds.append(s)
            target = starts[s] + chunk_words
    bounds.append(n_sentences)
    return np.array(bounds, dtype=np.int64)


def _bounds_in(dtype: str, var_min: float, var_max: float, max_norm: float):
    """The variance bounds rounded inwards to ``dtype``, and the norm bound less a few of
    its rounding units, so that parameters trained in ``dtype`` keep the bounds exactly
    when read back as float64."""
    dt = np.dtype(dtype).type
    lower, upper = dt(var_min), dt(var_max)
    if lower < var_min:
        lower = np.nextafter(lower, dt(np.inf))
    if upper > var_max:
        upper = np.nextafter(upper, dt(0.0))
    return float(lower), float(upper), float(max_norm) * (1.0 - 8.0 * np.finfo(dt).eps)
