"""Benchmark of the hard-negative miners (``eci_core.mining``).

Measures, and prints as a markdown table:

* ``dense`` mining on random unit vectors (``--dim`` dimensions; the encoder is a table lookup,
  so this times retrieval and selection, not the model): wall time, queries/s, the peak of the
  allocations tracemalloc sees during mining (numpy reports its buffers to it) and the process'
  peak RSS. The top-k is computed per chunk of queries, so memory stays O(chunk x n_passages)
  while a full query x corpus float32 matrix would need 4 · Q · N bytes (shown for comparison);
* ``bm25`` mining of the pyfaq sample (4,974 passages, 158 queries);
* with ``--ce``, the bundled ONNX cross-encoder's throughput (pairs/s) on pyfaq pairs.

Usage::

    .venv/bin/python bench/bench_mining.py                        # 20k and 100k passages, 5k queries
    .venv/bin/python bench/bench_mining.py --passages 1000000 --queries 10000 --ce
"""

from __future__ import annotations

import argparse
import platform
import resource
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import eci_core  # noqa: E402,F401
from eci_core.io.collection import Collection  # noqa: E402
from eci_core.mining import mine, read_beir  # noqa: E402


class TableEncoder:
    """Random unit vectors looked up by text (no model): isolates the miner's own cost."""

    name = fingerprint = "bench-table"

    def __init__(self, texts, dim, seed=0):
        v = np.random.default_rng(seed).standard_normal((len(texts), dim)).astype(np.float32)
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        self.dim = dim
        self.rows = {t: i for i, t in enumerate(texts)}
        self.v = v

    def encode_queries(self, texts):
        return self.v[[self.rows[t] for t in texts]]

    encode_passages = encode_queries


def bench_dense(n: int, nq: int, dim: int, k: int) -> dict:
    c = Collection()
    for i in range(n):
        c.add_passage(f"passage {i}", f"p{i}")
    for j in range(nq):
        c.positives[c.add_query(f"query {j}", f"q{j}")] = [j % n]
    enc = TableEncoder(c.passage_texts + c.query_texts, dim)
    tracemalloc.start()
    t = time.perf_counter()
    res = mine(c, "dense", k, encoder=enc)
    wall = time.perf_counter() - t
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert res.n_negatives == k * nq
    return {"passages": n, "queries": nq, "wall_s": wall, "q_per_s": nq / wall, "traced_mb": peak / 2**20,
            "full_matrix_mb": 4 * n * nq / 2**20}  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--passages", type=int, nargs="+", default=[20000, 100000])
    ap.add_argument("--queries", type=int, default=5000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--num-negatives", type=int, default=10)
    ap.add_argument("--ce", action="store_true", help="also time the bundled cross-encoder")
    args = ap.parse_args()

    cores = len(__import__("os").sched_getaffinity(0))
    print(
        f"Machine: {platform.processor() or platform.machine()}, {cores} cores, "
        f"Python {platform.python_version()}, numpy {np.__version__}\n"
    )
    print("| miner | passages | queries | wall (s) | queries/s | traced peak (MB) | full Q×N matrix (MB) |")
    print("|---|---|---|---|---|---|---|")
    for n in args.passages:
        r = bench_dense(n, args.queries, args.dim, args.num_negatives)
        print(
            f"| dense (dim {args.dim}) | {n:,} | {r['queries']:,} | {r['wall_s']:.2f} | "
            f"{r['q_per_s']:,.0f} | {r['traced_mb']:.0f} | {r['full_matrix_mb']:,.0f} |"
        )
    pyfaq = read_beir(ROOT / "sample_data" / "pyfaq")
    t = time.perf_counter()
    mine(pyfaq, "bm25", 10, exclude_prefixes=("llm-",))
    wall = time.perf_counter() - t
    nq = len(pyfaq.positives)
    print(
        f"| bm25 (pyfaq, index + retrieval) | {pyfaq.n_passages:,} | {nq} | {wall:.2f} | "
        f"{nq / wall:,.0f} | – | – |"
    )
    print(f"\nProcess peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    if args.ce:
        from eci_core.models.registry import load_cross_encoder

        ce = load_cross_encoder()
        q = [pyfaq.query_texts[i] for i in sorted(pyfaq.positives)][:32]
        pairs = [(qt, pyfaq.passage_texts[j]) for qt in q for j in range(16)]
        ce.predict(pairs[:32])  # load / warm up
        t = time.perf_counter()
        ce.predict(pairs)
        wall = time.perf_counter() - t
        print(
            f"Cross-encoder (bundled ONNX int8): {len(pairs) / wall:.0f} pairs/s on {len(pairs)} pyfaq pairs"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
