"""Benchmark of the ECI scoring engine on random unit vectors.

Times, on Q queries × K negatives (one positive each, ``--dim`` dimensions):

* the gather bound: ``emb[idx]`` of the same negative rows, chunked and threaded like scoring;
* the core path: ``score_arrays`` (s_qn, s_qp, margin, s_pn, flags, per-query metrics) plus the
  per-source row without bootstrap; pairs/s and its share of the gather bound;
* ECI_sem (experimental) and lex_overlap (binary token-id matrices) separately;
* the bootstrap (all per-source statistics, B resamples of Q queries);
* peak memory (tracemalloc of numpy allocations during scoring, and the process' peak RSS);
* the speed-up over ``tests/reference.py`` on a slice of ``--reference-pairs`` pairs.

Usage::

    .venv/bin/python bench/bench_scoring.py                       # 100k × 10, float32
    .venv/bin/python bench/bench_scoring.py --dtype float16
    .venv/bin/python bench/bench_scoring.py --queries 1000000 --pool 2000000 --dtype float16

``--pool N`` draws negatives from N shared passages instead of giving every negative its own row
(keeps the 1M-query run in memory). ``--json PATH`` writes the numbers as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from eci_core.metrics.bootstrap import resampled_means  # noqa: E402
from eci_core.config import ECIConfig  # noqa: E402
from eci_core.metrics.lexical import PassageLexicon  # noqa: E402
from eci_core.scoring.arrays import score_arrays  # noqa: E402
from eci_core.scoring.tables import BOOTSTRAP_COLUMNS, source_summary  # noqa: E402


def machine() -> dict:
    model = "?"
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        model = next(
            line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name")
        )
    except (OSError, StopIteration):
        pass
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "ram_gib": round(mem_gb, 1),
        "numpy": np.__version__,
        "python": platform.python_version(),
        "loadavg_start": os.getloadavg(),
    }


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def unit_rows(rng, n: int, dim: int, dtype, block: int = 65536) -> np.ndarray:
    """n random unit vectors, generated in blocks straight into the output (no big temporary)."""
    out = np.empty((n, dim), dtype=dtype)
    for a in range(0, n, block):
        b = min(a + block, n)
        x = rng.standard_normal((b - a, dim), dtype=np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        out[a:b] = x
    return out


CPU: dict[str, float] = {}


def best_of(repeat: int, fn, name: str | None = None):
    """Best wall time of ``repeat`` runs (and, under ``name`` in CPU, the process CPU seconds of
    that run: all threads together; less sensitive to other load on the machine)."""
    best, result = None, None
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        result = fn()
        wall, cpu = time.perf_counter() - t, time.process_time() - c
        if best is None or wall < best[0]:
            best = (wall, cpu)
    if name:
        CPU[name] = best[1]
    return best[0], result


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--queries", type=int, default=100_000)
    ap.add_argument("--k", type=int, default=10, help="negatives per query")
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--dtype", choices=("float32", "float16"), default="float32")
    ap.add_argument("--pool", type=int, default=0, help="shared negative passages (0: one row per negative)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--chunk", type=int, default=2048, help="pairs per kernel task")
    ap.add_argument("--bootstrap", type=int, default=1000)
    ap.add_argument("--tokens", type=int, default=30, help="distinct tokens per passage (lex_overlap)")
    ap.add_argument("--vocab", type=int, default=30_000)
    ap.add_argument("--reference-pairs", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--skip-sem", action="store_true")
    ap.add_argument("--skip-lex", action="store_true")
    ap.add_argument("--skip-reference", action="store_true")
    ap.add_argument("--json", default=None, metavar="PATH")
    args = ap.parse_args(argv)

    info = machine()
    rng = np.random.default_rng(0)
    nq, K, dim = args.queries, args.k, args.dim
    n_pairs = nq * K
    dtype = np.dtype(args.dtype)
    t = time.perf_counter()
    Q = unit_rows(rng, nq, dim, dtype)
    n_neg_rows = args.pool or n_pairs
    P = unit_rows(rng, nq + n_neg_rows, dim, dtype)  # rows [0, nq): positives
    q_idx = np.repeat(np.arange(nq, dtype=np.int64), K)
    if args.pool:
        n_idx = nq + rng.integers(0, args.pool, size=n_pairs)
        # the loader removes duplicate negatives within a query; collisions in a large pool are
        # rare and harmless here
    else:
        n_idx = nq + rng.permutation(n_pairs)
    pos_q = np.arange(nq, dtype=np.int64)
    pos_p = rng.permutation(nq).astype(np.int64)  # each query's positive at a random row
    setup_s = time.perf_counter() - t
    emb_mib = (Q.nbytes + P.nbytes) / 2**20
    base_rss = rss_mib()
    cfg = ECIConfig(n_bootstrap=args.bootstrap)
    res: dict = {
        "machine": info,
        "args": vars(args),
        "pairs": n_pairs,
        "setup_s": round(setup_s, 2),
        "embedding_mib": round(emb_mib, 1),
    }
    print(
        f"{nq:,} queries × {K} negatives = {n_pairs:,} pairs, dim {dim}, {args.dtype}; "
        f"embeddings {emb_mib:,.0f} MiB (set up in {setup_s:.1f} s)",
        flush=True,
    )

    # gather bound: the negative rows the kernel reads, same chunking and threads
    rows_per_task = max(1, args.chunk // K) * K

    def gather():
        def g(a):
            P[n_idx[a : a + rows_per_task]].astype(np.float32, copy=False)

        with ThreadPoolExecutor(args.threads) as ex:
            list(ex.map(g, range(0, n_pairs, rows_per_task)))

    t_gather, _ = best_of(args.repeat, gather, "gather")
    res["gather_s"] = t_gather
    print(
        f"gather bound   emb[idx] of {n_pairs:,} rows: {t_gather:.3f} s = "
        f"{n_pairs / t_gather / 1e6:.2f} M rows/s",
        flush=True,
    )

    # core path: pairs + per-query + per-source (bootstrap excluded: B = 1)
    def core():
        sc = score_arrays(
            Q, P, q_idx, n_idx, pos_q, pos_p, cfg, with_sem=False, chunk=args.chunk, n_threads=args.threads
        )
        source_summary("bench", sc, cfg.with_(n_bootstrap=1))
        return sc

    t_core, sc = best_of(args.repeat, core, "core")
    res["core_s"] = t_core
    res["core_pairs_per_s"] = n_pairs / t_core
    res["core_breakdown_s"] = {k: round(v, 3) for k, v in sc.timings.items()}
    print(
        f"core path      {t_core:.3f} s = {n_pairs / t_core / 1e6:.2f} M pairs/s "
        f"({t_gather / t_core:.0%} of the gather bound); breakdown {res['core_breakdown_s']}",
        flush=True,
    )

    # peak memory of the core path
    tracemalloc.start()
    core()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    res["core_peak_alloc_mib"] = peak / 2**20
    print(
        f"memory         numpy peak during scoring {peak / 2**20:,.0f} MiB (= {peak / 2**20 / emb_mib:.2f} × "
        f"the embedding matrices); process peak RSS {peak_rss_mib():,.0f} MiB, RSS "
        f"before scoring {base_rss:,.0f} MiB",
        flush=True,
    )

    if not args.skip_sem:

        def full():
            return score_arrays(
                Q, P, q_idx, n_idx, pos_q, pos_p, cfg, with_sem=True, chunk=args.chunk, n_threads=args.threads
            )

        t_sem, scs = best_of(max(1, args.repeat - 1), full, "with_sem")
        res["with_sem_s"] = t_sem
        res["with_sem_pairs_per_s"] = n_pairs / t_sem
        res["sem_extra_s"] = t_sem - res["core_breakdown_s"]["total"]
        print(
            f"with ECI_sem   {t_sem:.3f} s = {n_pairs / t_sem / 1e6:.2f} M pairs/s "
            f"(ECI_sem adds ≈ {res['sem_extra_s']:.2f} s: K×K Gram of residuals + Cholesky per query)",
            flush=True,
        )

    if not args.skip_lex:
        # binary token-id matrix: each passage has --tokens distinct ids out of --vocab (Zipf-ish)
        from scipy import sparse

        n_rows = P.shape[0]
        ranks = np.arange(1, args.vocab + 1)
        p = 1.0 / ranks
        p /= p.sum()
        ids = rng.choice(args.vocab, size=(n_rows, args.tokens), p=p).astype(np.int32)
        ids.sort(axis=1)
        keep = np.ones_like(ids, dtype=bool)
        keep[:, 1:] = ids[:, 1:] != ids[:, :-1]
        indptr = np.concatenate([[0], np.cumsum(keep.sum(axis=1))])
        mat = sparse.csr_matrix((np.ones(int(keep.sum())), ids[keep], indptr), shape=(n_rows, args.vocab))
        lex = PassageLexicon.from_matrix(mat)
        pstar_pair = np.repeat(sc.pstar, K)
        t_lex, _ = best_of(max(1, args.repeat - 1), lambda: lex.overlap(n_idx, pstar_pair), "lex")
        res["lex_s"] = t_lex
        res["lex_pairs_per_s"] = n_pairs / t_lex
        print(
            f"lex_overlap    {t_lex:.3f} s = {n_pairs / t_lex / 1e6:.2f} M pairs/s "
            f"({args.tokens} token ids per passage, vocabulary {args.vocab:,}; tokenising text not included)",
            flush=True,
        )

    # bootstrap: every per-source statistic, B resamples of nq queries
    values = np.stack([np.asarray(sc.metrics[c], dtype=np.float64) for c in BOOTSTRAP_COLUMNS], axis=1)
    t_boot, _ = best_of(args.repeat, lambda: resampled_means(values, args.bootstrap, 0), "bootstrap")
    t_boot1, _ = best_of(
        args.repeat, lambda: resampled_means(values[:, 0], args.bootstrap, 0), "bootstrap_one"
    )
    res["bootstrap_s"] = t_boot
    res["bootstrap_one_stat_s"] = t_boot1
    print(
        f"bootstrap      {nq:,} queries × {args.bootstrap} resamples: {t_boot:.3f} s for all "
        f"{len(BOOTSTRAP_COLUMNS)} statistics, {t_boot1:.3f} s for ECI alone",
        flush=True,
    )

    if not args.skip_reference:
        import reference as R

        nref = max(1, args.reference_pairs // K)
        sl = slice(0, nref * K)
        qi, ni = q_idx[sl], n_idx[sl]
        pos_rows = pos_p[:nref]
        rows = np.unique(np.concatenate([ni, pos_rows]))
        remap = {int(r): i for i, r in enumerate(rows)}
        Ps = P[rows].astype(np.float64)
        Qs = Q[:nref].astype(np.float64)
        ni_l = np.array([remap[int(r)] for r in ni])
        pos_l = np.array([remap[int(r)] for r in pos_rows])
        t = time.perf_counter()
        ref_pairs, ref_q = R.score(
            Qs, Ps, list(zip(qi.tolist(), ni_l.tolist())), {q: [int(pos_l[q])] for q in range(nref)}
        )
        t_ref = time.perf_counter() - t
        t_fast, fs = best_of(
            args.repeat, lambda: score_arrays(Qs, Ps, qi, ni_l, np.arange(nref), pos_l, cfg, n_threads=1)
        )
        err = max(
            float(np.max(np.abs(fs.metrics["eci"] - [r["eci"] for r in ref_q]))),
            float(np.max(np.abs(fs.eci_sem - [r["eci_sem"] for r in ref_q]))),
        )
        res.update(
            reference_s=t_ref,
            reference_fast_s=t_fast,
            reference_speedup=t_ref / t_fast,
            reference_max_abs_err=err,
        )
        print(
            f"reference      {len(ni):,} pairs (with ECI_sem, float64): tests/reference.py {t_ref:.2f} s, "
            f"score_arrays {t_fast * 1e3:.1f} ms → {t_ref / t_fast:,.0f}× faster (max |Δ| {err:.1e})",
            flush=True,
        )

    res["cpu_s"] = CPU
    print("CPU seconds    " + ", ".join(f"{k} {v:.3f}" for k, v in CPU.items()))
    res["peak_rss_mib"] = peak_rss_mib()
    res["machine"]["loadavg_end"] = os.getloadavg()
    print(
        f"load average   start {info['loadavg_start']}, end {res['machine']['loadavg_end']}  "
        f"({info['cpu']}, {info['cores']} cores, {info['ram_gib']} GiB, numpy {info['numpy']})"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2, default=float))
    return res


if __name__ == "__main__":
    main()
