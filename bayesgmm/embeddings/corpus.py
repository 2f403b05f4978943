"""Corpora for the word embeddings: reading, tokenising, the vocabulary, and the text sources.

- :func:`read_corpus`: a text file (one sentence per line, tokens separated by white space,
  as gensim's ``LineSentence``) or an iterable of token lists, as lists of tokens.
- :func:`build_vocabulary` / :func:`encode_corpus`: word counts with ``min_count``, and the
  corpus as one integer array with sentence offsets (what the compiled loop reads).
- :func:`load_kjv`: the King James Bible (public domain), as Debian's ``bible-kjv`` package
  installs it (``apt-get install bible-kjv``: the text ``bible-kjv-text`` and the ``bible``
  program that prints it), or a plain-text copy from a local path; one sentence per verse.
- :func:`load_lee`: gensim's bundled Lee background corpus (``lee_background.cor``, 300 news
  articles, about 60,000 tokens), or the same file from a local path.
- :func:`tokenize`: lower-cased runs of letters (apostrophes inside words kept).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections import Counter
from collections.abc import Iterable
from os import PathLike
from pathlib import Path

import numpy as np

__all__ = [
    "KJV_RANGE",
    "MAX_SENTENCE_LENGTH",
    "build_vocabulary",
    "encode_corpus",
    "gensim_test_data",
    "load_kjv",
    "load_lee",
    "read_corpus",
    "tokenize",
]

#: Sentences longer than this are cut into pieces of this length (as word2vec does).
MAX_SENTENCE_LENGTH = 10000
#: The verse range that spans the whole Bible, in the ``bible`` program's syntax.
KJV_RANGE = "gen1:1-rev22:21"

_WORD_RE = re.compile(r"[a-z]+(?:'[a-z]+)*")
_VERSE_RE = re.compile(r"^\s+\d+\s+(.*)$")
_HEADING_RE = re.compile(r"(?:[1-4] )?[A-Z][A-Za-z ]* \d+")


def tokenize(text: str) -> list[str]:
    """Lower-cased words of ``text``: runs of ASCII letters, inner apostrophes kept."""
    return _WORD_RE.findall(text.lower())


def read_corpus(corpus) -> list[list[str]]:
    """The corpus as a list of sentences (lists of string tokens).

    Parameters
    ----------
    corpus : str, path-like, or iterable of iterables of str
        A path to a UTF-8 text file with one sentence per line, tokens separated by white
        space (read as is: tokenise it first, e.g. with :func:`tokenize`), or an iterable
        of token lists (e.g. the output of :func:`load_kjv`).
    """
    if isinstance(corpus, str | PathLike):
        path = Path(corpus)
        if not path.is_file():
            raise ValueError(
                f"corpus {os.fspath(corpus)!r} is not a file: pass a path to a text file with "
                "one sentence per line, or an iterable of token lists"
            )
        with open(path, encoding="utf-8") as fh:
            return [line.split() for line in fh]
    if isinstance(corpus, bytes) or not isinstance(corpus, Iterable):
        raise TypeError(
            "corpus must be a path to a text file or an iterable of token lists, got "
            f"{type(corpus).__name__}"
        )
    sentences = []
    for i, sentence in enumerate(corpus):
        if isinstance(sentence, str | bytes) or not isinstance(sentence, Iterable):
            raise TypeError(
                f"corpus sentence {i} is a {type(sentence).__name__}, not a list of tokens: "
                "split each sentence into words (e.g. bayesgmm.embeddings.tokenize)"
            )
        sentence = list(sentence)
        bad = next((t for t in sentence if not isinstance(t, str)), None)
        if bad is not None:
            raise TypeError(
                f"corpus sentence {i} holds a token {bad!r} of type {type(bad).__name__}: "
                "tokens must be strings"
            )
        sentences.append(sentence)
    return sentences


def build_vocabulary(
    sentences: list[list[str]], min_count: int
) -> tuple[np.ndarray, np.ndarray]:
    """Words seen at least ``min_count`` times, most frequent first (ties alphabetical).

    Returns
    -------
    words : ndarray of str, shape (n_words,)
    counts : ndarray of int64, shape (n_words,)
    """
    counts = Counter()
    for sentence in sentences:
        counts.update(sentence)
    if not counts:
        raise ValueError("the corpus is empty: it holds no tokens")
    kept = sorted(((-n, w) for w, n in counts.items() if n >= min_count))
    if not kept:
        raise ValueError(
            f"no word occurs at least min_count={min_count} times in the corpus "
            f"({len(counts)} distinct words, the most frequent {max(counts.values())} times): "
            "lower min_count or give a larger corpus"
        )
    words = np.array([w for _, w in kept], dtype=str)
    return words, np.array([-n for n, _ in kept], dtype=np.int64)


def encode_corpus(
    sentences: list[list[str]], index: dict[str, int]
) -> tuple[np.ndarray, np.ndarray]:
    """The corpus as word ids: out-of-vocabulary tokens dropped, long sentences split.

    Returns
    -------
    tokens : ndarray of int32, shape (n_tokens,)
    starts : ndarray of int64, shape (n_sentences + 1,)
        Sentence ``s`` is ``tokens[starts[s]:starts[s + 1]]``; sentences left with fewer
        than two tokens are dropped (they have no context).
    """
    ids, starts = [], [0]
    for sentence in sentences:
        row = [index[t] for t in sentence if t in index]
        for lo in range(0, len(row), MAX_SENTENCE_LENGTH):
            piece = row[lo : lo + MAX_SENTENCE_LENGTH]
            if len(piece) >= 2:
                ids.extend(piece)
                starts.append(len(ids))
    return np.array(ids, dtype=np.int32), np.array(starts, dtype=np.int64)


def gensim_test_data(name: str) -> Path:
    """The path of a file in gensim's bundled test data (``gensim/test/test_data``).

    Raises ImportError saying how to install gensim (the ``bench`` extra) if it is absent.
    """
    try:
        import gensim
    except ImportError as err:
        raise ImportError(
            f"{name} ships inside gensim's test data: pip install gensim (or "
            "bayesgmm[bench]), or pass path= to a local copy"
        ) from err
    path = Path(gensim.__file__).parent / "test" / "test_data" / name
    if not path.is_file():
        raise FileNotFoundError(f"gensim {gensim.__version__} does not ship {path}")
    return path


def load_lee(path: str | PathLike | None = None) -> list[list[str]]:
    """The Lee background corpus (300 Australian news articles), one sentence per article.

    Parameters
    ----------
    path : str or path-like, optional
        A local copy of ``lee_background.cor``; by default the one in gensim's test data.
    """
    path = Path(path) if path is not None else gensim_test_data("lee_background.cor")
    with open(path, encoding="utf-8", errors="replace") as fh:
        return [s for s in (tokenize(line) for line in fh) if s]


def load_kjv(path: str | PathLike | None = None, *, program: str = "bible") -> list[list[str]]:
    """The King James Bible (public domain), tokenised, one sentence per verse.

    Parameters
    ----------
    path : str or path-like, optional
        A plain-text copy: one verse per line, or the ``bible`` program's output (verse
        numbers and chapter headings are dropped, verses wrapped over several lines are
        joined). By default the text comes from Debian's ``bible-kjv`` package: the
        ``bible`` program prints every verse of its data file (``apt-get install bible-kjv``).
    program : str
        The name or path of the ``bible`` program.

    Returns
    -------
    list of list of str
        31,102 verses and about 790,000 tokens for the full text.
    """
    if path is not None:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    else:
        exe = shutil.which(program)
        if exe is None:
            raise FileNotFoundError(
                f"the {program!r} program (Debian package bible-kjv) is not installed: "
                "apt-get install bible-kjv, or pass path= to a plain-text King James Bible"
            )
        result = subprocess.run(
            [exe, "-l", "100000", KJV_RANGE], capture_output=True, text=True, check=False,
            timeout=120,
        )  # fmt: skip
        if result.returncode != 0 or not result.stdout.strip():
            raise RuntimeError(
                f"{program} {KJV_RANGE} failed (exit {result.returncode}): {result.stderr[:300]}"
            )
        text = result.stdout
    verses: list[str] = []
    numbered = False
    for line in text.splitlines():
        if not line.strip() or _HEADING_RE.fullmatch(line.strip()):
            continue  # blank lines and chapter headings ("Genesis 1", "1 Samuel 3")
        match = _VERSE_RE.match(line)
        if match:  # "  12 And God said ...": an indented, numbered verse
            numbered = True
            verses.append(match.group(1))
        elif numbered and verses:  # a verse wrapped over several lines
            verses[-1] += " " + line
        else:  # a plain text: one verse per line
            verses.append(line)
    return [s for s in (tokenize(v) for v in verses) if s]
