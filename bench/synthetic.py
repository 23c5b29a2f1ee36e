"""Generate a synthetic BEIR directory at MS MARCO-like scale for the scale benchmarks.

    python bench/synthetic.py OUT_DIR [--queries 100000] [--passages 300000] [--sources 3] [--k 10]

Writes ``corpus.jsonl``, ``queries.jsonl``, ``qrels/test.tsv`` (one positive per query) and
``negatives/<source>.trec`` (``k`` negatives per query and source, TREC run lines). Texts are
drawn from a fixed 5,000-word vocabulary with a seeded generator, so the same arguments give the
same bytes. Passages are 40-80 words, queries 5-12 words; query ``i``'s positive is passage
``d<i>``, and the query's first words are that passage's first six, so encoders see some signal.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def vocab_words(rng: np.random.Generator, n: int = 5000) -> np.ndarray:
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    lengths = rng.integers(3, 10, size=n)
    return np.array(["".join(rng.choice(letters, size=int(k))) for k in lengths])


def make_beir(
    out: str | Path,
    n_queries: int = 100_000,
    n_passages: int = 300_000,
    n_sources: int = 3,
    k: int = 10,
    seed: int = 0,
) -> Path:
    """Write the synthetic BEIR directory to ``out`` and return its path."""
    if n_passages < n_queries:
        raise ValueError("n_passages must be at least n_queries (each query has its own positive)")
    out = Path(out)
    (out / "qrels").mkdir(parents=True, exist_ok=True)
    (out / "negatives").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    vocab = vocab_words(rng)

    chunk = 50_000
    shared = np.empty((n_queries, 6), dtype=np.int64)  # words each query takes from its positive
    with open(out / "corpus.jsonl", "w", encoding="utf-8") as f:
        for start in range(0, n_passages, chunk):
            n = min(chunk, n_passages - start)
            idx = rng.integers(0, len(vocab), size=(n, 80))
            take = max(0, min(n, n_queries - start))
            shared[start : start + take] = idx[:take, :6]
            words = vocab[idx]
            lens = rng.integers(40, 81, size=n)
            lines = []
            for i in range(n):
                text = " ".join(words[i, : lens[i]])
                lines.append(json.dumps({"_id": f"d{start + i}", "title": "", "text": text}))
            f.write("\n".join(lines) + "\n")

    # Query i's positive is passage d{i}; the query reuses some of its words.
    with (
        open(out / "queries.jsonl", "w", encoding="utf-8") as f,
        open(out / "qrels" / "test.tsv", "w", encoding="utf-8") as qrels,
    ):
        qrels.write("query-id\tcorpus-id\tscore\n")
        for start in range(0, n_queries, chunk):
            n = min(chunk, n_queries - start)
            own = vocab[
                np.concatenate([shared[start : start + n], rng.integers(0, len(vocab), size=(n, 6))], axis=1)
            ]
            lens = rng.integers(5, 13, size=n)
            lines, qlines = [], []
            for i in range(n):
                qid = start + i
                lines.append(json.dumps({"_id": f"q{qid}", "text": " ".join(own[i, : lens[i]])}))
                qlines.append(f"q{qid}\td{qid}\t1")
            f.write("\n".join(lines) + "\n")
            qrels.write("\n".join(qlines) + "\n")

    for s in range(n_sources):
        name = f"source{s}"
        with open(out / "negatives" / f"{name}.trec", "w", encoding="utf-8") as f:
            for start in range(0, n_queries, chunk):
                n = min(chunk, n_queries - start)
                negs = rng.integers(0, n_passages, size=(n, k))
                qids = np.arange(start, start + n)
                # never the query's own positive
                negs = np.where(negs == qids[:, None], (negs + 1) % n_passages, negs)
                scores = np.sort(rng.random((n, k)) * 10, axis=1)[:, ::-1]
                lines = [
                    f"q{qids[i]} Q0 d{negs[i, r]} {r + 1} {scores[i, r]:.4f} {name}"
                    for i in range(n)
                    for r in range(k)
                ]
                f.write("\n".join(lines) + "\n")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--queries", type=int, default=100_000)
    ap.add_argument("--passages", type=int, default=300_000)
    ap.add_argument("--sources", type=int, default=3)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    make_beir(a.out, a.queries, a.passages, a.sources, a.k, a.seed)
    print(a.out)


if __name__ == "__main__":
    main()
