"""Word2GM: a planted two-sense corpus, bounds, reproducibility, save/load, queries, errors."""

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError

from bayesgmm.embeddings import UnknownWordError, Word2GM
from bayesgmm.embeddings.kernel import log_expected_likelihood

#: Eight topics of eight words; "bank" occurs in topics 0 and 1 only (its two senses).
TOPICS = [[f"t{t}w{i}" for i in range(8)] for t in range(8)]
TOY = dict(vector_size=10, window=3, sample=0.0, min_count=1, epochs=1, learning_rate=0.1,
           progressbar=False, workers=1)  # fmt: skip


def two_sense_corpus(seed: int, n_sentences: int = 4000) -> list[list[str]]:
    rng = np.random.default_rng(seed)
    sentences = []
    for _ in range(n_sentences):
        topic = int(rng.integers(0, 8))
        words = list(rng.choice(TOPICS[topic], 6))
        if topic < 2 and rng.random() < 0.5:
            words.insert(int(rng.integers(0, 7)), "bank")
        sentences.append(words)
    return sentences


def nearest_component(model: Word2GM, word: str, other: str) -> int:
    """The component of ``word`` whose mean has the largest cosine with a mean of ``other``."""
    a, b = model.mixture(word)["means"], model.mixture(other)["means"]
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return int(np.argmax((a @ b.T).max(axis=1)))


@pytest.fixture(scope="module")
def toy_model():
    # a seed whose one-epoch fit separates the senses with pure per-component neighbours
    # (how often seeds separate is tested below; pure top-4 neighbours of both components
    # are rarer: 1 of seeds 0-15 (seed 8) with this loop, whose word steps are one per
    # window; 2 of 16 (seeds 7 and another) with the per-pair steps before it)
    return Word2GM(2, random_state=8, **TOY).fit(two_sense_corpus(8))


def separates(model: Word2GM) -> bool:
    sense_a = {nearest_component(model, "bank", w) for w in TOPICS[0]}
    sense_b = {nearest_component(model, "bank", w) for w in TOPICS[1]}
    return len(sense_a) == 1 and len(sense_b) == 1 and sense_a != sense_b


def separation_rate(n_seeds: int, **params) -> int:
    return sum(
        separates(Word2GM(2, random_state=seed, **{**TOY, **params}).fit(two_sense_corpus(seed)))
        for seed in range(n_seeds)
    )


def test_one_epoch_separates_the_planted_senses(toy_model):
    # every context word of one sense is nearest to one component, of the other sense to
    # the other. One epoch does not separate every seed: over seeds 0-15, 10 of 16 fits
    # separate (also 10 with per-pair word steps; 11 of 16 with the loop before the float32 /
    # alias-sampler rewrite), where a
    # random assignment of the 16 context words to the components separates with
    # probability 2 / 2**16 per seed. At least 9 of 16 (single-threaded: deterministic).
    assert separates(toy_model)
    assert separation_rate(16) >= 9
    # a word of one sense is nearer (in the ELK) to bank than a word of no sense of bank
    assert toy_model.similarity("bank", "t0w0") > toy_model.similarity("bank", "t5w0")
    assert toy_model.similarity("bank", "t1w0") > toy_model.similarity("bank", "t6w0")


def test_per_component_neighbours_are_the_senses(toy_model):
    neighbours = toy_model.component_neighbours("bank", topn=4)
    topics = [{w.split("w")[0] for w, _, _ in comp} for comp in neighbours]
    assert {frozenset(t) for t in topics} == {frozenset({"t0"}), frozenset({"t1"})}


def test_bounds_hold_and_loss_is_recorded(toy_model):
    lower, upper = toy_model.var_bounds
    for var in (toy_model.variances_, toy_model.context_variances_):
        assert var.min() >= lower and var.max() <= upper
    for means in (toy_model.means_, toy_model.context_means_):
        assert np.linalg.norm(means, axis=2).max() <= toy_model.max_norm + 1e-12
    assert toy_model.loss_curve_.shape[0] >= 1 and np.all(toy_model.loss_curve_ > 0)
    np.testing.assert_allclose(toy_model.weights_.sum(axis=1), 1.0)
    assert toy_model.n_words_trained_ == sum(len(s) for s in two_sense_corpus(8))


def test_similarity_is_the_kernel_of_the_mixtures(toy_model):
    a, b = toy_model.mixture("bank"), toy_model.mixture("t3w1")
    expected = log_expected_likelihood(
        a["weights"], a["means"], a["variances"], b["weights"], b["means"], b["variances"]
    )
    assert toy_model.similarity("bank", "t3w1") == pytest.approx(expected, abs=1e-12)
    top = toy_model.most_similar("t3w1", topn=3, metric="elk")
    brute = sorted(
        ((w, toy_model.similarity("t3w1", w)) for w in toy_model.vocabulary_ if w != "t3w1"),
        key=lambda x: -x[1],
    )[:3]
    assert [w for w, _ in top] == [w for w, _ in brute]
    np.testing.assert_allclose([s for _, s in top], [s for _, s in brute], rtol=1e-10)
    top_cos = toy_model.most_similar("t3w1", topn=3, metric="maxcos")
    assert top_cos[0][1] == pytest.approx(
        toy_model.similarity("t3w1", top_cos[0][0], metric="maxcos"), abs=1e-12
    )


@pytest.mark.slow
def test_float64_training_separates_as_often():
    # the float64 loop (a second compilation, hence slow) learns the same toy as float32
    assert separation_rate(16, dtype="float64") >= 9


def test_seeded_single_thread_fit_is_reproducible():
    corpus = two_sense_corpus(1, 1500)  # about 10,000 words: 3 chunks of parallel work
    a = Word2GM(2, random_state=3, **TOY).fit(corpus)
    b = Word2GM(2, random_state=3, **TOY).fit(corpus)
    c = Word2GM(2, random_state=4, **TOY).fit(corpus)
    np.testing.assert_array_equal(a.means_, b.means_)
    np.testing.assert_array_equal(a.context_variances_, b.context_variances_)
    assert not np.array_equal(a.means_, c.means_)
    # the random draws do not depend on the number of threads (only the races do): the
    # number of sampled triples is a function of the draws alone
    threads = Word2GM(2, random_state=3, **{**TOY, "workers": 2}).fit(corpus)
    assert threads.n_triples_ == a.n_triples_ > 0
    assert a.n_triples_ != c.n_triples_


def test_text_file_input_equals_token_lists(tmp_path, capsys):
    corpus = two_sense_corpus(2, 200)
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(" ".join(s) for s in corpus) + "\n")
    a = Word2GM(1, covariance_type="diag", random_state=0, **{**TOY, "progressbar": True}).fit(path)
    assert "Word2GM" in capsys.readouterr().err  # the progress bar
    b = Word2GM(1, covariance_type="diag", random_state=0, **TOY).fit(corpus)
    np.testing.assert_array_equal(a.means_, b.means_)
    assert a.variances_.shape == (len(a.vocabulary_), 1, TOY["vector_size"])


def test_save_load_round_trip(toy_model, tmp_path):
    toy_model.save(tmp_path / "w2gm.nc")
    loaded = Word2GM.load(tmp_path / "w2gm.nc")
    for name in Word2GM._file_fitted:
        np.testing.assert_array_equal(getattr(loaded, name), getattr(toy_model, name))
    assert loaded.get_params() == toy_model.get_params()
    assert loaded.vocabulary_.dtype == toy_model.vocabulary_.dtype
    assert loaded.similarity("bank", "t0w1") == toy_model.similarity("bank", "t0w1")
    assert loaded.words_per_second_ == toy_model.words_per_second_


def test_bad_input_gives_clear_errors(toy_model, tmp_path):
    with pytest.raises(ValueError, match="corpus is empty"):
        Word2GM(**TOY).fit([])
    with pytest.raises(ValueError, match="corpus is empty"):
        Word2GM(**TOY).fit([[], []])
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(ValueError, match="corpus is empty"):
        Word2GM(**TOY).fit(empty)
    with pytest.raises(ValueError, match="not a file"):
        Word2GM(**TOY).fit(tmp_path / "missing.txt")
    with pytest.raises(ValueError, match="window must be an integer >= 1, got 0"):
        Word2GM(**{**TOY, "window": 0}).fit(two_sense_corpus(0, 10))
    with pytest.raises(TypeError, match="not a list of tokens"):
        Word2GM(**TOY).fit(["a sentence as one string"])
    with pytest.raises(ValueError, match="min_count=50"):
        Word2GM(**{**TOY, "min_count": 50}).fit([["a", "b"]])
    with pytest.raises(ValueError, match="no sentence has two"):
        Word2GM(**TOY).fit([["a"], ["b"]])
    with pytest.raises(ValueError, match="var_init"):
        Word2GM(**{**TOY, "var_init": 5.0}).fit(two_sense_corpus(0, 10))
    with pytest.raises(ValueError, match="covariance_type"):
        Word2GM(covariance_type="full")._check_params()
    with pytest.raises(ValueError, match="dtype"):
        Word2GM(dtype="float16")._check_params()
    with pytest.raises(UnknownWordError, match="'riverbank' is not in the vocabulary"):
        toy_model.similarity("bank", "riverbank")
    with pytest.raises(KeyError):
        toy_model.component_neighbours("riverbank")
    with pytest.raises(ValueError, match="metric"):
        toy_model.similarity("bank", "t0w0", metric="dot")
    with pytest.raises(NotFittedError):
        Word2GM().similarity("a", "b")
    assert "bank" in toy_model and "riverbank" not in toy_model


def test_refit_replaces_the_vocabulary():
    model = Word2GM(1, random_state=0, **TOY).fit([["a", "b", "c"]] * 5)
    assert model.mixture("a")["weights"] == pytest.approx([1.0])
    model.fit([["x", "y", "z"]] * 5)  # the same number of words, other words
    assert "x" in model and "a" not in model
    assert model.word_index("z") == model.vocabulary_.tolist().index("z")
    with pytest.raises(UnknownWordError):
        model.mixture("a")
