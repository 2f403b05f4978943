"""Gaussian-mixture word embeddings (w2gm; Athiwaratkun & Wilson, ACL 2017).

Every word is a Gaussian mixture whose components can take its senses. :class:`Word2GM`
trains them by skip-gram with negative sampling and the max-margin loss on the log expected
likelihood kernel; :mod:`~bayesgmm.embeddings.kernel` holds the maths,
:mod:`~bayesgmm.embeddings.sgd` the compiled training loop, :mod:`~bayesgmm.embeddings.corpus`
the corpora, :mod:`~bayesgmm.embeddings.evaluation` the word-similarity benchmarks.
"""

from bayesgmm.embeddings.corpus import load_kjv, load_lee, read_corpus, tokenize
from bayesgmm.embeddings.estimator import UnknownWordError, Word2GM
from bayesgmm.embeddings.evaluation import evaluate_word_pairs, load_word_pairs
from bayesgmm.embeddings.kernel import log_expected_likelihood, max_cosine_similarity

__all__ = [
    "UnknownWordError",
    "Word2GM",
    "evaluate_word_pairs",
    "load_kjv",
    "load_lee",
    "load_word_pairs",
    "log_expected_likelihood",
    "max_cosine_similarity",
    "read_corpus",
    "tokenize",
]
