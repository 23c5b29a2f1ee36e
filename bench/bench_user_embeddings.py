"""Memory of scoring with your own embeddings (``--embeddings``): a memory-mapped passage matrix
much larger than what the data needs.

Writes a synthetic BEIR directory (``bench/synthetic.py``) and a folder of vectors: the passage
matrix has ``--file-rows`` rows of ``--dim`` float16 (the corpus's passages first, then filler
rows with other ids, as in a full MS MARCO matrix of which a training set uses a part); queries
likewise. Scores one source with ``score_collection(embeddings=...)`` and reports the time, the
process's peak RSS (VmHWM), and its anonymous / file-backed resident memory afterwards: the file
is mapped, so only the pages of rows that scoring reads become resident (and those are page
cache the kernel can drop), while anonymous memory (real allocations) stays small.

Usage::

    .venv/bin/python bench/bench_user_embeddings.py [--queries 20000] [--passages 60000]
        [--file-rows 2000000] [--dim 768] [--workdir /tmp/eci-bench-emb]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def status(field: str) -> int:
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return -1


def write_matrix(path: Path, ids: list[str], rows: int, dim: int, rng) -> None:
    m = np.lib.format.open_memmap(path, mode="w+", dtype=np.float16, shape=(rows, dim))
    for a in range(0, rows, 65536):
        b = min(rows, a + 65536)
        x = rng.standard_normal((b - a, dim), dtype=np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        m[a:b] = x
    m.flush()
    del m
    stem = path.name[: -len(".npy")]
    with open(path.with_name(stem + ".ids.txt"), "w", encoding="utf-8") as f:
        f.writelines(f"{i}\n" for i in ids)
        f.writelines(f"filler-{i}\n" for i in range(rows - len(ids)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--queries", type=int, default=20_000)
    ap.add_argument("--passages", type=int, default=60_000)
    ap.add_argument("--file-rows", type=int, default=2_000_000)
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--workdir", default="/tmp/eci-bench-emb")
    args = ap.parse_args()

    import eci_core  # noqa: F401
    from eci_core.config import ECIConfig
    from eci_core.io.load import load_paths
    from eci_core.scoring import score_collection
    from eci_core.models.user_embeddings import open_embeddings
    from synthetic import make_beir

    work = Path(args.workdir)
    data = work / "beir"
    if not (data / "corpus.jsonl").is_file():
        make_beir(data, n_queries=args.queries, n_passages=args.passages, n_sources=1, k=10)
    coll, report = load_paths([str(data)])
    emb = work / "emb"
    if not (emb / "passages.npy").is_file():
        emb.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(0)
        write_matrix(
            emb / "queries.npy", list(coll.query_ids), max(args.queries, len(coll.query_ids)), args.dim, rng
        )
        write_matrix(
            emb / "passages.npy",
            list(coll.passage_ids),
            max(args.file_rows, len(coll.passage_ids)),
            args.dim,
            rng,
        )
    size = (emb / "passages.npy").stat().st_size
    before = status("VmRSS")
    t = time.perf_counter()
    e = open_embeddings(emb, model="random-unit-vectors")
    t_open = time.perf_counter() - t
    t = time.perf_counter()
    res = score_collection(coll, None, ECIConfig(n_bootstrap=200), embeddings=e)
    t_score = time.perf_counter() - t
    print(
        f"load average {os.getloadavg()[0]:.1f}; {coll.n_queries:,} queries, {len(res.pairs):,} pairs; "
        f"passage matrix {e.passages.shape[0]:,} x {args.dim} float16 = {size / 2**30:.2f} GiB on disk"
    )
    print(f"open (checks, ids): {t_open:.1f} s; score: {t_score:.1f} s")
    print(
        f"RSS before scoring {before / 2**20:,.0f} MiB; peak RSS (VmHWM) {status('VmHWM') / 2**20:,.0f} MiB; "
        f"after: anonymous {status('RssAnon') / 2**20:,.0f} MiB, file-backed "
        f"{status('RssFile') / 2**20:,.0f} MiB"
    )


if __name__ == "__main__":
    main()
