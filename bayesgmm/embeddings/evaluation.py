"""Word-similarity evaluation: Spearman correlation with human judgements.

WordSim-353 (Finkelstein et al. 2002) and SimLex-999 (Hill et al. 2015) ship inside
gensim's test data (``wordsim353.tsv``, ``simlex999.txt``): tab-separated
``word1 word2 score`` lines, ``#`` comments. Pairs with a word outside the model's
vocabulary are left out and counted, as gensim's ``evaluate_word_pairs`` does.
"""

from __future__ import annotations

from os import PathLike
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from bayesgmm.embeddings.corpus import gensim_test_data

__all__ = ["WORD_PAIR_FILES", "evaluate_word_pairs", "load_word_pairs"]

#: Benchmark name -> its file in gensim's test data.
WORD_PAIR_FILES = {"wordsim353": "wordsim353.tsv", "simlex999": "simlex999.txt"}


def load_word_pairs(name_or_path: str | PathLike) -> list[tuple[str, str, float]]:
    """Word pairs with their human similarity score.

    Parameters
    ----------
    name_or_path : str or path-like
        ``"wordsim353"`` or ``"simlex999"`` (read from gensim's test data), or the path of a
        file in the same format: ``word1<TAB>word2<TAB>score`` per line, ``#`` comments.

    Returns
    -------
    list of (str, str, float)
        Words lower-cased.
    """
    if isinstance(name_or_path, str) and name_or_path in WORD_PAIR_FILES:
        path = gensim_test_data(WORD_PAIR_FILES[name_or_path])
    else:
        path = Path(name_or_path)
        if not path.is_file():
            raise ValueError(
                f"{name_or_path!r} is neither a benchmark name {tuple(WORD_PAIR_FILES)} nor a "
                "file of 'word1<TAB>word2<TAB>score' lines"
            )
    pairs = []
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip() or line.startswith("#"):
                continue
            fields = line.rstrip("\n").split("\t")
            try:
                pairs.append((fields[0].lower(), fields[1].lower(), float(fields[2])))
            except (IndexError, ValueError):
                raise ValueError(
                    f"{path}:{number}: expected 'word1<TAB>word2<TAB>score', got {line!r}"
                ) from None
    if not pairs:
        raise ValueError(f"{path} holds no word pairs")
    return pairs


def evaluate_word_pairs(model, pairs, metric: str | None = "elk") -> dict:
    """Spearman correlation between a model's similarities and human scores.

    Parameters
    ----------
    model : Word2GM or gensim KeyedVectors
        Anything with ``word in model`` and ``model.similarity(a, b)``; for a
        :class:`~bayesgmm.embeddings.Word2GM`, ``metric`` picks the similarity
        (``"elk"`` or ``"maxcos"``).
    pairs : str, path-like, or list of (str, str, float)
        A benchmark name or file for :func:`load_word_pairs`, or the pairs.
    metric : str or None

    Returns
    -------
    dict
        ``spearman`` (NaN if fewer than 3 pairs are covered), ``n_pairs``, ``n_covered``
        (pairs whose two words are both in the vocabulary).
    """
    if isinstance(pairs, str | PathLike):
        pairs = load_word_pairs(pairs)
    kwargs = {"metric": metric} if hasattr(model, "component_neighbours") else {}
    ours, human = [], []
    for a, b, score in pairs:
        if a in model and b in model:
            ours.append(float(model.similarity(a, b, **kwargs)))
            human.append(score)
    rho = spearmanr(ours, human).statistic if len(ours) >= 3 else np.nan
    return {"spearman": float(rho), "n_pairs": len(pairs), "n_covered": len(ours)}
