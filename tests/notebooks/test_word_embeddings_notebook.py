"""notebooks/09_word_embeddings.ipynb executes on the reduced corpus (gensim's Lee corpus,
3 epochs; about 20-30 s on two cores with numba's cache warm) and its numbers are right.

The full notebook (``BAYESGMM_REDUCED`` unset) trains on the King James Bible when Debian's
``bible-kjv`` is installed.
"""

import math
import os

import numpy as np
import pytest

from tests.notebooks.notebook_runner import run_notebook


@pytest.fixture(scope="module")
def results():
    return run_notebook("09_word_embeddings.ipynb", env={**os.environ, "BAYESGMM_REDUCED": "1"})


def test_training_curve_falls(results):
    assert results["reduced"] and results["corpus"] == "lee"
    assert results["n_tokens"] == 59576
    for k in ("1", "2"):
        curve = results["loss_curve"][k]
        assert len(curve) >= 3
        assert curve[-1] < 0.97 * curve[0]  # the hinge loss falls
        assert results["epoch_loss"][k][-1] < results["epoch_loss"][k][0]
        # the vocabulary is the set of words seen >= min_count times, counted independently
        assert results["vocabulary"][k] == results["n_in_vocab_expected"]


def test_similarity_table(results):
    table = results["table"]
    assert [(r["model"], r["similarity"]) for r in table] == [
        ("w2gm K=2", "elk"), ("w2gm K=2", "maxcos"), ("w2gm K=1", "elk"),
        ("w2gm K=1", "maxcos"), ("word2vec", "cosine"),
    ]  # fmt: skip
    for row in table:
        # every model covers exactly the pairs whose words pass min_count (counted apart)
        assert row["WordSim-353 covered"] == results["covered_expected"]["WordSim-353"]
        assert row["SimLex-999 covered"] == results["covered_expected"]["SimLex-999"]
        assert all(math.isfinite(row[f"{b} rho"]) for b in ("WordSim-353", "SimLex-999"))
        assert row["words/s"] > 0
    assert results["covered_expected"]["WordSim-353"] >= 30


def test_senses_table(results):
    assert results["senses_rows"] >= 8  # at least 4 polysemous words, 2 components each
    np.testing.assert_allclose(results["sense_weights"], 1.0, atol=2e-3)  # rounded weights
    assert 0.05 <= results["variances"][0] <= results["variances"][1] <= 2.0
