"""Corpus loaders (KJV in the format of Debian's ``bible`` program, Lee, text files) and the
word-similarity evaluation."""

import os
import stat

import numpy as np
import pytest
from scipy.stats import spearmanr

from bayesgmm.embeddings import evaluate_word_pairs, load_kjv, load_lee, load_word_pairs
from bayesgmm.embeddings.corpus import build_vocabulary, encode_corpus, read_corpus, tokenize

#: What `bible -l 100000 gen1:1-rev22:21` prints (abridged), with one verse wrapped as
#: `bible` wraps at its default width, and a numbered book's heading.
BIBLE_OUTPUT = """
Genesis 1

  1 In the beginning God created the heaven and the earth.
  2 And the earth was without form, and void; and darkness was upon the face of
the deep. And the Spirit of God moved upon the face of the waters.

1 Samuel 3

  1 And the child Samuel ministered unto the LORD before Eli.
"""


def test_kjv_loader_parses_the_bible_programs_output(tmp_path):
    path = tmp_path / "kjv.txt"
    path.write_text(BIBLE_OUTPUT)
    verses = load_kjv(path)
    assert len(verses) == 3
    assert verses[0] == "in the beginning god created the heaven and the earth".split()
    assert verses[1][-4:] == ["face", "of", "the", "waters"]
    assert verses[2][:4] == ["and", "the", "child", "samuel"]
    # the real source: the `bible` program, here a stand-in that prints the same text
    program = tmp_path / "bible"
    program.write_text(f"#!/bin/sh\ncat '{path}'\n")
    program.chmod(program.stat().st_mode | stat.S_IEXEC)
    assert load_kjv(program=os.fspath(program)) == verses
    with pytest.raises(FileNotFoundError, match="apt-get install bible-kjv"):
        load_kjv(program="no-such-bible-program")


def test_plain_text_corpora(tmp_path):
    path = tmp_path / "lee.cor"
    path.write_text("Hundreds of people have been forced to vacate their homes.\n\nIt's 2 a.m.\n")
    assert load_lee(path) == [
        "hundreds of people have been forced to vacate their homes".split(),
        ["it's", "a", "m"],
    ]
    assert tokenize("Rock'n'roll, ROCKS!") == ["rock'n'roll", "rocks"]
    lines = tmp_path / "c.txt"
    lines.write_text("a b  c\nd\n")
    assert read_corpus(lines) == [["a", "b", "c"], ["d"]]
    with pytest.raises(TypeError, match="tokens must be strings"):
        read_corpus([["a", 1]])


def test_vocabulary_and_encoding():
    sentences = [["b", "a", "b", "c"], ["a", "b", "z"], ["c"]]
    words, counts = build_vocabulary(sentences, min_count=2)
    assert words.tolist() == ["b", "a", "c"] and counts.tolist() == [3, 2, 2]
    tokens, starts = encode_corpus(sentences, {w: i for i, w in enumerate(words)})
    # "z" is dropped; the one-word sentence ["c"] has no context and is dropped
    assert tokens.tolist() == [0, 1, 0, 2, 1, 0] and starts.tolist() == [0, 4, 6]


class _Table:
    """A stand-in embedding: similarities from a dict (gensim KeyedVectors' interface)."""

    def __init__(self, sims):
        self.sims = sims

    def __contains__(self, word):
        return any(word in pair for pair in self.sims)

    def similarity(self, a, b):
        return self.sims[(a, b)]


def test_evaluation_is_spearman_over_covered_pairs(tmp_path):
    path = tmp_path / "pairs.tsv"
    path.write_text(
        "# Word 1\tWord 2\tHuman (mean)\nTiger\tcat\t7.35\nbook\tpaper\t7.46\n"
        "computer\tkeyboard\t7.62\nsun\tunknownword\t1.0\nking\tqueen\t8.58\n"
    )
    pairs = load_word_pairs(path)
    assert pairs[0] == ("tiger", "cat", 7.35) and len(pairs) == 5
    sims = {("tiger", "cat"): 0.1, ("book", "paper"): 0.5, ("computer", "keyboard"): 0.3,
            ("king", "queen"): 0.9}  # fmt: skip
    result = evaluate_word_pairs(_Table(sims), path)
    expected = spearmanr([0.1, 0.5, 0.3, 0.9], [7.35, 7.46, 7.62, 8.58]).statistic
    assert result == {"spearman": pytest.approx(expected), "n_pairs": 5, "n_covered": 4}
    assert expected == pytest.approx(0.8)
    bad = tmp_path / "bad.tsv"
    bad.write_text("a b 1.0\n")
    with pytest.raises(ValueError, match="expected 'word1<TAB>word2<TAB>score'"):
        load_word_pairs(bad)


def test_benchmark_files_from_gensims_test_data():
    wordsim, simlex = load_word_pairs("wordsim353"), load_word_pairs("simlex999")
    assert len(wordsim) == 353 and len(simlex) == 999
    assert ("tiger", "cat", 7.35) in wordsim and ("old", "new", 1.58) in simlex
    assert np.isclose(max(s for *_, s in wordsim), 10.0)
