#!/usr/bin/env python3
"""Embedding-cache fill benchmark: ``EmbeddingCache.put`` in encoder-sized chunks, at scale.

Fills an empty cache (a temporary folder unless ``--dir``) with ``--rows`` random ``--dim``-d
float32 vectors (kind ``passage``, keys ``text_key("synthetic passage <i>")``) in chunks of
``--chunk`` rows, which is how :func:`embed` writes (a ``put`` every 2,048 newly encoded rows).
Only the public API is used, so the same script measures an older checkout
(``PYTHONPATH=/path/to/old``).

Recorded: wall time of the fill (and a checkpoint every ``--every`` rows, to show whether the
cost per row stays flat), peak RSS (``VmHWM``), bytes the process wrote and read (``wchar`` /
``rchar`` of ``/proc/self/io``: every write and read call, page cache included), the files and
bytes left on disk, and then in a fresh ``EmbeddingCache`` on the same folder: the time to look
up every key (reading the shards; one ``get`` per chunk) and a check that a sample of rows reads
back equal. ``--memory-mb`` sets the cache's in-memory budget (vectors beyond it stay on disk).
``--max-seconds`` stops the fill early (the old quadratic compaction) and records how far it got.

``--compare`` (issue 17) instead measures the cache against an Arrow IPC memory-mapped store and
SQLite (:mod:`bench_cache_stores`) on the same keys and vectors, back to back: for each of
``--reps`` rounds, each store in turn, one fresh process fills an empty folder (``put`` of
``--chunk`` rows at a time), looks up every key (one ``get``, as a warm re-score does), then
``--rows`` keys of which half were never put (one ``get``); a second fresh process opens the
folder and looks up every key (one ``get``: a new ``eci score`` on a cached data set), a third
10 % of the keys, drawn over all files (a small data set scored with a large cache). Recorded
per case: those times, the process's peak RSS (``VmHWM``) and the bytes on disk; printed as the
median and range over the rounds, with the load average before and after.

Usage::

    nice -n 10 python bench/bench_cache.py --rows 1000000 --dim 256
    PYTHONPATH=/old/checkout nice -n 10 python bench/bench_cache.py --rows 300000 --max-seconds 300
    nice -n 10 python bench/bench_cache.py --compare --rows 100000 --dim 384 --reps 3
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _proc_io() -> dict[str, int]:
    out = {}
    with open("/proc/self/io") as f:
        for line in f:
            k, v = line.split(":")
            out[k.strip()] = int(v)
    return out


def _vm(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


def _chunk(rng: np.random.Generator, start: int, n: int, dim: int):
    from eci_core.models.base import text_key

    keys = [text_key(f"synthetic passage {i}") for i in range(start, start + n)]
    vecs = rng.standard_normal((n, dim), dtype=np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    return keys, vecs


_STORES = ("eci", "arrow", "sqlite")


def _store_class(name: str):
    """The class of store ``name`` (imported here: outside the timed part). ``eci@REF`` is the
    ``EmbeddingCache`` of ``eci_core/models/cache.py`` at git commit ``REF`` of this checkout."""
    if name == "eci":
        from eci_core.models.cache import EmbeddingCache

        return EmbeddingCache
    if name.startswith("eci@"):
        import importlib.util

        repo = Path(__file__).resolve().parents[1]
        src = subprocess.run(
            ["git", "-C", str(repo), "show", f"{name[4:]}:eci_core/models/cache.py"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        path = Path(tempfile.mkdtemp(prefix="eci-bench-old-")) / "eci_cache_at_ref.py"
        path.write_text(src)
        spec = importlib.util.spec_from_file_location("eci_cache_at_ref", path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        shutil.rmtree(path.parent, ignore_errors=True)  # loaded: the copy is not needed
        return mod.EmbeddingCache
    sys.path.insert(0, str(Path(__file__).parent))
    import bench_cache_stores as S

    return S.ArrowIpcStore if name == "arrow" else S.SqliteStore


def _all_keys(rows: int, dim: int):
    """Keys and vectors of the fill (2,048 rows at a time), and ``rows`` keys half of them new."""
    rng = np.random.default_rng(0)
    keys, vecs = [], []
    for start in range(0, rows, 2048):
        k, v = _chunk(rng, start, min(2048, rows - start), dim)
        keys += k
        vecs.append(v)
    vecs = np.concatenate(vecs)
    half, _ = _chunk(rng, rows, rows // 2, 1)
    mixed = keys[: rows - rows // 2] + half
    order = np.random.default_rng(1).permutation(rows)
    return keys, vecs, [mixed[i] for i in order]


def _worker(args) -> None:
    """One case in this process; prints its numbers as one JSON line."""
    folder = Path(args.dir)
    keys, vecs, mixed = _all_keys(args.rows, args.dim)
    cls = _store_class(args.worker)
    import pyarrow  # noqa: F401  (loaded by eci_core's data layer anyway: not timed for any store)

    res: dict = {"rss_before_mb": _vm("VmRSS") / 2**20}  # the keys and vectors of the bench
    t0 = time.perf_counter()
    store = cls(folder)
    if args.phase == "fill":
        for start in range(0, args.rows, args.chunk):
            sl = slice(start, start + args.chunk)
            store.put("bench-fp", "passage", keys[sl], vecs[sl])
        res["put_s"] = time.perf_counter() - t0
        t1 = time.perf_counter()
        found, got = store.get("bench-fp", "passage", keys)
        res["get_all_s"] = time.perf_counter() - t1
        assert found.all() and np.array_equal(got, vecs), "warm get: wrong vectors"
        t2 = time.perf_counter()
        found, got = store.get("bench-fp", "passage", mixed)
        res["get_half_miss_s"] = time.perf_counter() - t2
        assert int(found.sum()) == args.rows - args.rows // 2, "half-miss get: wrong hits"
    elif args.phase == "cold":
        found, got = store.get("bench-fp", "passage", keys)
        res["cold_open_get_s"] = time.perf_counter() - t0
        assert found.all() and np.array_equal(got, vecs), "cold get: wrong vectors"
    else:  # a small data set scored with a large cache: 10 % of the keys, spread over all files
        part = np.random.default_rng(2).choice(args.rows, args.rows // 10, replace=False)
        found, got = store.get("bench-fp", "passage", [keys[i] for i in part])
        res["cold_open_get_10pct_s"] = time.perf_counter() - t0
        assert found.all() and np.array_equal(got, vecs[part]), "cold 10 % get: wrong vectors"
    res["peak_rss_mb"] = _vm("VmHWM") / 2**20
    # at the end: private memory vs file pages mapped (page cache: shared, reclaimable)
    res["rss_anon_end_mb"], res["rss_file_end_mb"] = _vm("RssAnon") / 2**20, _vm("RssFile") / 2**20
    print(json.dumps(res), flush=True)


def _run_case(store: str, phase: str, folder: Path, args) -> dict:
    cmd = [sys.executable, __file__, "--worker", store, "--phase", phase, "--dir", str(folder)]
    cmd += ["--rows", str(args.rows), "--dim", str(args.dim), "--chunk", str(args.chunk)]
    t = time.perf_counter()
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    got = json.loads(out.strip().splitlines()[-1])
    got[f"{phase}_process_s"] = time.perf_counter() - t
    return got


def compare_main() -> None:
    ap = argparse.ArgumentParser(description="EmbeddingCache vs Arrow IPC vs SQLite (issue 17)")
    ap.add_argument("--compare", action="store_true")
    ap.add_argument("--worker", help="one of --stores (internal: runs one case)")
    ap.add_argument("--phase", choices=("fill", "cold", "cold10"), default="fill")
    ap.add_argument("--dir", default=None)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--chunk", type=int, default=2048, help="rows per put (embed's flush size)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument(
        "--stores",
        default=",".join(_STORES),
        help="comma-separated: eci (this checkout's EmbeddingCache), eci@REF (the one at git "
        "commit REF), arrow, sqlite",
    )
    ap.add_argument("--json", default=None, help="save the numbers here")
    args = ap.parse_args()
    if args.worker:
        return _worker(args)
    stores = args.stores.split(",")
    res: dict = {
        "rows": args.rows,
        "dim": args.dim,
        "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} CPUs",
        "loadavg_start": os.getloadavg(),
        "runs": {s: [] for s in stores},
    }
    root = Path(tempfile.mkdtemp(prefix="eci-bench-stores-", dir=args.dir))
    try:
        for rep in range(args.reps):
            for s in stores:
                folder = root / f"{s}-{rep}"
                run = _run_case(s, "fill", folder, args)
                cold = _run_case(s, "cold", folder, args)
                run.update(cold_open_get_s=cold["cold_open_get_s"], cold_process_s=cold["cold_process_s"])
                run["cold_peak_rss_mb"] = cold["peak_rss_mb"]
                run["cold_rss_anon_end_mb"] = cold["rss_anon_end_mb"]
                run["cold_rss_file_end_mb"] = cold["rss_file_end_mb"]
                part = _run_case(s, "cold10", folder, args)
                run["cold_open_get_10pct_s"] = part["cold_open_get_10pct_s"]
                run["cold_10pct_peak_rss_mb"] = part["peak_rss_mb"]
                run["disk_mb"] = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20
                run["files"] = sum(1 for p in folder.rglob("*") if p.is_file())
                run["loadavg"] = os.getloadavg()[0]
                res["runs"][s].append(run)
                print(json.dumps({"rep": rep, "store": s, **{k: round(v, 3) for k, v in run.items()}}))
                shutil.rmtree(folder, ignore_errors=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    res["loadavg_end"] = os.getloadavg()
    fields = ["put_s", "get_all_s", "get_half_miss_s", "cold_open_get_s", "cold_process_s"]
    fields += ["cold_open_get_10pct_s", "rss_before_mb", "peak_rss_mb", "cold_peak_rss_mb"]
    fields += ["cold_rss_anon_end_mb", "cold_rss_file_end_mb", "cold_10pct_peak_rss_mb", "disk_mb", "files"]
    print(f"\n{args.rows:,} x {args.dim} float32, {args.reps} rounds; median [min-max]")
    print("| store | " + " | ".join(fields) + " |")
    for s in stores:
        cells = []
        for f in fields:
            xs = [r[f] for r in res["runs"][s]]
            cells.append(f"{statistics.median(xs):.3g} [{min(xs):.3g}-{max(xs):.3g}]")
        print(f"| {s} | " + " | ".join(cells) + " |")
    print("load average start / end:", res["loadavg_start"], res["loadavg_end"])
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--chunk", type=int, default=2048, help="rows per put (embed's flush size)")
    ap.add_argument("--dtype", default="float32", help="cache storage dtype")
    ap.add_argument("--every", type=int, default=100_000, help="checkpoint interval (rows)")
    ap.add_argument("--max-seconds", type=float, default=0.0, help="stop the fill after this")
    ap.add_argument(
        "--memory-mb",
        type=float,
        default=None,
        help="EmbeddingCache(memory_mb=...): versions from branch cachefix to issue 17 (before Arrow IPC)",
    )
    ap.add_argument("--dir", default=None, help="cache folder (default: a temporary one)")
    ap.add_argument("--json", default=None, help="save the numbers here")
    args = ap.parse_args()

    from eci_core.models.cache import EmbeddingCache

    tmp = None
    if args.dir is None:
        tmp = tempfile.mkdtemp(prefix="eci-bench-cache-")
        folder = Path(tmp)
    else:
        folder = Path(args.dir)
    res: dict = {
        "rows": args.rows,
        "dim": args.dim,
        "chunk": args.chunk,
        "dtype": args.dtype,
        "machine": f"{platform.node()} {os.cpu_count()} CPUs",
        "loadavg_start": os.getloadavg(),
        "checkpoints": [],
    }
    try:
        rng = np.random.default_rng(0)
        opts = {} if args.memory_mb is None else {"memory_mb": args.memory_mb}
        res["memory_mb"] = args.memory_mb
        cache = EmbeddingCache(folder, dtype=args.dtype, **opts)
        io0 = _proc_io()
        t0 = time.perf_counter()
        done, put_s, next_cp = 0, 0.0, args.every
        while done < args.rows:
            n = min(args.chunk, args.rows - done)
            keys, vecs = _chunk(rng, done, n, args.dim)
            tp = time.perf_counter()
            cache.put("bench-fp", "passage", keys, vecs)
            put_s += time.perf_counter() - tp
            done += n
            if done >= next_cp or done == args.rows:
                io = _proc_io()
                cp = {
                    "rows": done,
                    "s": round(time.perf_counter() - t0, 2),
                    "put_s": round(put_s, 2),
                    "written_mb": round((io["wchar"] - io0["wchar"]) / 2**20, 1),
                    "rss_mb": round(_vm("VmRSS") / 2**20),
                }
                res["checkpoints"].append(cp)
                print(json.dumps(cp), flush=True)
                next_cp += args.every
            if args.max_seconds and time.perf_counter() - t0 > args.max_seconds:
                break
        io1 = _proc_io()
        res.update(
            rows_done=done,
            stopped_early=done < args.rows,
            fill_s=round(time.perf_counter() - t0, 2),
            put_s=round(put_s, 2),
            written_mb=round((io1["wchar"] - io0["wchar"]) / 2**20, 1),
            read_mb=round((io1["rchar"] - io0["rchar"]) / 2**20, 1),
            peak_rss_mb_fill=round(_vm("VmHWM") / 2**20),
        )
        files = [p for p in folder.rglob("*") if p.suffix in (".npz", ".arrow")]
        res["files"] = len(files)
        res["disk_mb"] = round(sum(p.stat().st_size for p in files) / 2**20, 1)
        res["data_mb"] = round(done * args.dim * np.dtype(args.dtype).itemsize / 2**20, 1)
        del cache
        # a new process's view: read the shards, look up every key, compare a sample
        t1 = time.perf_counter()
        fresh = EmbeddingCache(folder, dtype=args.dtype, **opts)
        rng = np.random.default_rng(0)
        start, ok, found_all = 0, True, True
        while start < done:
            n = min(args.chunk, done - start)
            keys, vecs = _chunk(rng, start, n, args.dim)
            found, got = fresh.get("bench-fp", "passage", keys)
            found_all &= bool(found.all())
            if start % (50 * args.chunk) == 0 and found.all():
                ok &= bool(np.allclose(got, vecs, atol=1e-3 if args.dtype == "float16" else 0))
            start += n
        res["reopen_lookup_all_s"] = round(time.perf_counter() - t1, 2)
        res["read_back_found_all"] = found_all
        res["read_back_equal_sample"] = ok
        res["peak_rss_mb"] = round(_vm("VmHWM") / 2**20)
        res["loadavg_end"] = os.getloadavg()
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps({k: v for k, v in res.items() if k != "checkpoints"}, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    if "--compare" in sys.argv[1:] or "--worker" in sys.argv[1:]:
        compare_main()
    else:
        main()
