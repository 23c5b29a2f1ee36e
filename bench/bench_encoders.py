"""Throughput of the bundled models on the pyfaq sample texts (best of ``--repeat`` runs).

* all-MiniLM-L6-v2 bi-encoder through ``eci_core.models.encoding.embed`` (no cache): passages/s and
  queries/s at batch 64, on every device ``--device`` resolves to (auto: all CUDA GPUs, several
  GPUs = sentence-transformers' multi-process pool);
* the bundled int8 ONNX bge-small-en-v1.5 (``load_encoder("bge-small")``, CPU): one text per
  model run (the default) and 32 per run (sorted by length);
* the model-free hashing encoder;
* the int8 ONNX ms-marco-MiniLM-L-12-v2 cross-encoder: pairs/s with one pair per model run (the
  default, whose scores do not depend on the other pairs of a batch) and with 32 per run.

Usage::

    .venv/bin/python bench/bench_encoders.py [--passages 192] [--pairs 64] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import eci_core  # noqa: E402,F401
from eci_core.models.encoding import embed  # noqa: E402
from eci_core.models.onnx import OnnxBgeEncoder, OnnxCrossEncoder  # noqa: E402
from eci_core.models.registry import load_encoder  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--passages", type=int, default=192)
    ap.add_argument("--pairs", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--device", default="auto", help="device(s) of the sentence-transformers model")
    args = ap.parse_args()

    data = ROOT / "sample_data" / "pyfaq"
    corpus = [json.loads(line)["text"] for line in open(data / "corpus.jsonl", encoding="utf-8")]
    queries = [json.loads(line)["text"] for line in open(data / "queries.jsonl", encoding="utf-8")]
    passages = corpus[: args.passages]
    rng = np.random.default_rng(0)
    idx = rng.permutation(len(corpus))[: args.pairs]
    pairs = [(queries[i % len(queries)], corpus[j]) for i, j in enumerate(idx)]

    enc = load_encoder("minilm", device=args.device)
    bge1, bge32 = load_encoder("bge-small"), OnnxBgeEncoder(batch_size=32)
    hashing = load_encoder("hashing")
    bge1.encode_passages(passages[:2])
    bge32.encode_passages(passages[:2])
    t = time.perf_counter()
    enc.encode_passages(passages[:4])
    load_s = time.perf_counter() - t
    ce1, ce32 = OnnxCrossEncoder(), OnnxCrossEncoder(batch_size=32)
    ce1.predict(pairs[:2])
    ce32.predict(pairs[:2])

    jobs = {
        "MiniLM passages/s (batch 64)": (
            len(passages),
            lambda: embed(enc, passages, "passage", batch_size=64),
        ),
        "MiniLM queries/s (batch 64)": (len(queries), lambda: embed(enc, queries, "query", batch_size=64)),
        "bge-small ONNX int8 passages/s (1 per run, default)": (
            len(passages),
            lambda: embed(bge1, passages, "passage"),
        ),
        "bge-small ONNX int8 queries/s (1 per run, default)": (
            len(queries),
            lambda: embed(bge1, queries, "query"),
        ),
        "bge-small ONNX int8 passages/s (32 per run)": (
            len(passages),
            lambda: embed(bge32, passages, "passage"),
        ),
        "hashing passages/s": (len(passages), lambda: embed(hashing, passages, "passage")),
        "ONNX cross-encoder pairs/s (1 pair per run, default)": (len(pairs), lambda: ce1.predict(pairs)),
        "ONNX cross-encoder pairs/s (32 pairs per run)": (len(pairs), lambda: ce32.predict(pairs)),
    }
    best = {k: 0.0 for k in jobs}
    best_cpu = {k: 0.0 for k in jobs}  # texts per CPU-second (all threads): steadier under load
    for _ in range(args.repeat):
        for k, (n, fn) in jobs.items():
            t, c = time.perf_counter(), time.process_time()
            fn()
            best[k] = max(best[k], n / (time.perf_counter() - t))
            best_cpu[k] = max(best_cpu[k], n / max(time.process_time() - c, 1e-9))
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
        f"load average before: {os.getloadavg()[0]:.2f}"
    )
    print(
        f"passages: {len(passages)} (mean {np.mean([len(p.split()) for p in passages]):.0f} words), queries: "
        f"{len(queries)}, pairs: {len(pairs)}; MiniLM on {enc.devices}, load + first batch {load_s:.1f} s\n"
    )
    print("| measurement | per wall second, best of %d | per CPU second |" % args.repeat)
    print("|---|---|---|")
    for k, v in best.items():
        print(f"| {k} | {v:.1f} | {best_cpu[k]:.1f} |")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
