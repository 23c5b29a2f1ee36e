"""Lexicon benchmark: ``token_matrix`` (Arrow string kernels) against ``token_matrix_py`` (one
text at a time in Python, the code before) on a BEIR corpus held as the loaders hold it.

    nice -n 10 python bench/bench_lexicon.py /tmp/syn100k/corpus.jsonl [--repeat 2]

The corpus is read by the loaders' vectorised reader into Arrow blocks and put in a
:class:`TextColumn` in a shuffled order (as a collection's passages come in the order the
negatives files name them, so one chunk takes from many blocks). Each path builds the
``PassageLexicon`` matrix of every passage; wall time, process CPU time and the 1-minute load
average are printed, and the two results are checked to be identical (vocabulary in order, CSR
arrays, IDF bytes). Nothing is written.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from eci_core.io.texts import TextColumn  # noqa: E402
from eci_core.io.formats.beir import read_beir_jsonl  # noqa: E402
from eci_core.metrics import lexical as L  # noqa: E402


def timed(fn, *a):
    w, c = time.perf_counter(), time.process_time()
    out = fn(*a)
    return out, time.perf_counter() - w, time.process_time() - c


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("corpus", help="BEIR corpus.jsonl")
    ap.add_argument("--repeat", type=int, default=1, help="runs of each path, alternated")
    ap.add_argument(
        "--accented",
        type=float,
        default=0.0,
        help="share of texts given a non-ASCII word (' café', Python's tokenizer) and as many a "
        "typographic apostrophe ('’', a separator: still the vectorised path)",
    )
    ap.add_argument("--skip-old", action="store_true", help="time the new path only")
    args = ap.parse_args()
    t0 = time.perf_counter()
    m = read_beir_jsonl(Path(args.corpus), None, with_title=True)
    col = TextColumn()
    col.extend_rows(m, np.random.default_rng(0).permutation(len(m)))
    if args.accented:
        from eci_core.io.texts import ArrowTextMap, str_arrow

        texts = list(col)
        step = max(1, round(1 / args.accented))
        for i in range(0, len(texts), step):
            texts[i] += " café"
        for i in range(step // 2, len(texts), step):
            texts[i] = texts[i].replace(" ", "’ ", 1)
        blocks = [str_arrow(texts[i : i + 50_000]) for i in range(0, len(texts), 50_000)]
        col = TextColumn()
        col.extend_rows(
            ArrowTextMap(str_arrow([str(i) for i in range(len(texts))]), blocks), np.arange(len(texts))
        )
        del texts, blocks
        print(f"every {step}th text with ' café', every {step}th with '’'", flush=True)
    print(
        f"read {len(col):,} passages in {time.perf_counter() - t0:.1f} s; load {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    res = {}
    for r in range(args.repeat):
        for name, fn in (("new token_matrix", L.token_matrix), ("old token_matrix_py", L.token_matrix_py)):
            if args.skip_old and fn is L.token_matrix_py:
                continue
            la = os.getloadavg()[0]
            (mat, vocab), wall, cpu = timed(fn, col)
            idf = L.idf_weights(mat)
            print(
                f"run {r + 1} {name}: wall {wall:.1f} s, CPU {cpu:.1f} s, load {la:.2f} -> "
                f"{os.getloadavg()[0]:.2f}; {mat.shape[0]:,} texts x "
                f"{len(vocab):,} tokens, {mat.nnz:,} entries",
                flush=True,
            )
            res[name] = (list(vocab.items()) if r == 0 else None, mat, idf.tobytes())
            del mat, vocab
    if len(res) == 2:
        (va, a, ia), (vb, b, ib) = res.values()
        same = (
            va == vb
            and ia == ib
            and all(
                np.array_equal(x, y)
                for x, y in ((a.indptr, b.indptr), (a.indices, b.indices), (a.data, b.data))
            )
        )
        print(f"identical (vocabulary order, CSR arrays, IDF bytes): {same}", flush=True)


if __name__ == "__main__":
    main()
