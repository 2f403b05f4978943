"""Word2GM (w2gm) vs gensim's word2vec on the King James Bible: similarity and throughput.

Same corpus, tokenisation, vocabulary threshold (``min_count``), window, dimension,
subsampling threshold and epochs for every row; skip-gram for word2vec. Rows:

- ``w2gm K=2``: two spherical components per word (the paper's setting), one negative
  per (word, context) pair (the paper's triples);
- ``w2gm K=1``: the same with one Gaussian per word (Vilnis & McCallum 2015);
- ``word2vec neg=1``: gensim's skip-gram with as many negatives as ours;
- ``word2vec neg=5``: gensim's default number of negatives.

Scores: Spearman's rho between the model's similarities and the human scores of
WordSim-353 and SimLex-999 (gensim's test data) over the pairs whose two words are in the
vocabulary (``covered``); for w2gm both the expected likelihood kernel (``elk``) and the
max-over-components cosine (``maxcos``), for word2vec the cosine. Throughput: corpus words
(before subsampling) times epochs over the seconds of training, vocabulary building
excluded for both, after a warm-up fit that loads numba's compiled code.

Usage::

    .venv/bin/python benchmarks/word_embeddings.py                 # KJV, 5 epochs
    .venv/bin/python benchmarks/word_embeddings.py --corpus lee --epochs 2
    .venv/bin/python benchmarks/word_embeddings.py --kjv-path kjv.txt   # a local copy
    .venv/bin/python benchmarks/word_embeddings.py --cpu-time   # 1 thread, CPU seconds

The KJV comes from Debian's ``bible-kjv`` package (``apt-get install bible-kjv``) unless
``--kjv-path`` is given; gensim from the ``bench`` extra.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import pandas as pd

from bayesgmm.embeddings import Word2GM, evaluate_word_pairs, load_kjv, load_lee, load_word_pairs

RESULTS = Path(__file__).resolve().parent / "results" / "word_embeddings.csv"


def score_rows(name, model, metrics, pairs, seconds, words):
    rows = []
    for metric in metrics:
        row = {"model": name, "similarity": metric or "cosine"}
        for bench, data in pairs.items():
            result = evaluate_word_pairs(model, data, metric=metric)
            row[f"{bench} rho"] = round(result["spearman"], 3)
            row[f"{bench} covered"] = f"{result['n_covered']}/{result['n_pairs']}"
        row["train s"] = round(seconds, 1)
        row["words/s"] = round(words / seconds)
        rows.append(row)
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", choices=("kjv", "lee"), default="kjv")
    parser.add_argument("--kjv-path", default=None)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--window", type=int, default=5)
    parser.add_argument("--dim", type=int, default=50)
    parser.add_argument("--min-count", type=int, default=5)
    parser.add_argument("--sample", type=float, default=1e-3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3,
                        help="rounds of the interleaved one-epoch throughput runs")
    parser.add_argument("--cpu-time", action="store_true",
                        help="only the throughput rounds, single-threaded and timed in CPU "
                             "seconds of the process (less exposed to a busy machine)")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)

    from gensim.models import Word2Vec

    corpus = load_kjv(args.kjv_path) if args.corpus == "kjv" else load_lee()
    n_tokens = sum(map(len, corpus))
    pairs = {"WordSim-353": load_word_pairs("wordsim353"),
             "SimLex-999": load_word_pairs("simlex999")}  # fmt: skip
    common = dict(window=args.window, min_count=args.min_count, sample=args.sample)
    print(f"corpus {args.corpus}: {len(corpus)} sentences, {n_tokens} tokens; "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"workers={args.workers}")  # fmt: skip

    # warm-up: numba loads (or compiles) the training loop once per process
    Word2GM(2, epochs=1, progressbar=False, min_count=1).fit(corpus[:200])
    if args.cpu_time:
        args.workers = 1
        print(markdown(throughput(corpus, n_tokens, args, common, clock=time.process_time)))
        return
    rows = []
    for k in (2, 1):
        model = Word2GM(
            k, vector_size=args.dim, epochs=args.epochs, workers=args.workers,
            random_state=args.seed, progressbar=False, **common,
        ).fit(corpus)  # fmt: skip
        rows += score_rows(f"w2gm K={k}", model, ("elk", "maxcos"), pairs,
                           model.train_time_, model.n_words_trained_)  # fmt: skip
        print(rows[-2], rows[-1], f"epoch loss {model.epoch_loss_.round(4)}", flush=True)
    for negative in (1, 5):
        w2v = Word2Vec(vector_size=args.dim, sg=1, negative=negative, workers=args.workers,
                       seed=args.seed, **common)  # fmt: skip
        w2v.build_vocab(corpus)
        start = time.perf_counter()
        w2v.train(corpus, total_examples=len(corpus), epochs=args.epochs)
        seconds = time.perf_counter() - start
        rows += score_rows(f"word2vec neg={negative}", w2v.wv, (None,), pairs, seconds,
                           n_tokens * args.epochs)  # fmt: skip
        print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, index=False)
    print(markdown(table))
    print(markdown(throughput(corpus, n_tokens, args, common)))


def throughput(corpus, n_tokens, args, common, clock=time.perf_counter) -> pd.DataFrame:
    """Words/s of one-epoch fits, interleaved (ours, gensim, ours, ...) ``args.repeats``
    times, so that the load of a shared machine hits every row alike; medians. ``clock``:
    wall-clock time, or the process's CPU time (``time.process_time``, all its threads),
    measured around the training call only (vocabulary building excluded for both)."""
    from gensim.models import Word2Vec

    import bayesgmm.embeddings.estimator as estimator

    train_block = estimator.train_block
    spent = [0.0]

    def timed_block(*block_args):
        start = clock()
        train_block(*block_args)
        spent[0] += clock() - start

    runs = {"w2gm K=2": [], "w2gm K=1": [], "word2vec neg=1": [], "word2vec neg=5": []}
    for _ in range(args.repeats):
        for k in (2, 1):
            spent[0] = 0.0
            estimator.train_block = timed_block
            try:
                model = Word2GM(
                    k, vector_size=args.dim, epochs=1, workers=args.workers,
                    random_state=args.seed, progressbar=False, **common,
                ).fit(corpus)  # fmt: skip
            finally:
                estimator.train_block = train_block
            runs[f"w2gm K={k}"].append(model.n_words_trained_ / spent[0])
        for negative in (1, 5):
            w2v = Word2Vec(vector_size=args.dim, sg=1, negative=negative, workers=args.workers,
                           seed=args.seed, **common)  # fmt: skip
            w2v.build_vocab(corpus)
            start = clock()
            w2v.train(corpus, total_examples=len(corpus), epochs=1)
            runs[f"word2vec neg={negative}"].append(n_tokens / (clock() - start))
    median = {name: float(pd.Series(v).median()) for name, v in runs.items()}
    return pd.DataFrame([
        {"model": name, "median words/s": round(v),
         "runs": " ".join(f"{x:.0f}" for x in runs[name]),
         "/ word2vec neg=1": round(v / median["word2vec neg=1"], 2),
         "/ word2vec neg=5": round(v / median["word2vec neg=5"], 2)}
        for name, v in median.items()
    ])  # fmt: skip


def markdown(table: pd.DataFrame) -> str:
    """The table as GitHub markdown (without the optional ``tabulate`` dependency)."""
    lines = ["| " + " | ".join(table.columns) + " |", "|" + " --- |" * len(table.columns)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in table.itertuples(False)]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
