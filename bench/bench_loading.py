"""Loading benchmark: time and peak memory of ``load_paths`` on a synthetic BEIR directory.

    python bench/synthetic.py /tmp/syn --queries 100000 --passages 300000 --sources 3 --k 10
    python bench/bench_loading.py /tmp/syn [--repeat 1] [--slow] [--phases]

Each run loads the directory in a fresh child process and reports wall time, CPU time (user +
system, all threads, import included) and the child's peak resident memory (VmHWM from
/proc/self/status), next to the size of the text on disk. On a shared machine read the CPU
time: the wall time includes waiting for the CPU.
Each run is compared with a plain pyarrow read of the same files, measured in the same run: a
child reads every file of the directory with ``pyarrow.json.read_json`` (``.jsonl``) or
``pyarrow.csv.read_csv`` (``.tsv``/``.csv`` with their header, TREC runs as space-separated
columns), best of 3 (page cache warm); ``ratio`` is the load's wall time over that read's.
``--slow`` forces the per-line parsers (``ECI_LOADER_FAST=0``) for a before/after comparison.
``--phases`` passes a progress callback and prints, per stage ("reading <file>"), the wall and CPU
seconds since the child started at its first and last progress call (the vectorised TREC readers
report once, at the end of the file; the corpus/queries reader once per 4 MiB block).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import json, os, resource, sys, time
t0 = time.perf_counter()
from eci_core.io.load import load_paths
t1 = time.perf_counter()
seen = {}
def stage(name, done, total):  # wall and CPU seconds since the start at the first and last call of each stage
    now = (round(time.perf_counter() - t0, 1), round(sum(os.times()[:2]), 1))
    seen.setdefault(name, [now, now])[1] = now
coll, report = load_paths([sys.argv[1]], progress=stage if len(sys.argv) > 2 else None)
t2 = time.perf_counter()
ru = resource.getrusage(resource.RUSAGE_SELF)
hwm = 0
for line in open("/proc/self/status"):
    if line.startswith("VmHWM:"):
        hwm = int(line.split()[1]) * 1024
print(json.dumps({"import_s": t1 - t0, "load_s": t2 - t1, "cpu_s": ru.ru_utime + ru.ru_stime,
                  "peak_rss": hwm, "queries": coll.n_queries, "passages": coll.n_passages,
                  "pairs": sum(len(s) for s in coll.sources.values()), "errors": report.errors,
                  "phases": seen}))
"""


# the file-reading floor: every file read into Arrow tables by pyarrow's own readers, best of 3
BASELINE = r"""
import json, os, sys, time
from pathlib import Path
import pyarrow.csv as pc
import pyarrow.json as pj

files = sorted(p for p in Path(sys.argv[1]).rglob("*") if p.is_file() and "embeddings" not in p.parts)


def read(p):
    if p.suffix == ".jsonl":
        return pj.read_json(p).num_rows
    if p.suffix in (".tsv", ".csv"):
        sep = pc.ParseOptions(delimiter="\t" if p.suffix == ".tsv" else ",")
        return pc.read_csv(p, parse_options=sep).num_rows
    # TREC run: qid Q0 docid rank score tag
    opts = pc.ReadOptions(autogenerate_column_names=True)
    return pc.read_csv(p, read_options=opts, parse_options=pc.ParseOptions(delimiter=" ")).num_rows


best = None
for _ in range(3):
    t, c = time.perf_counter(), sum(os.times()[:2])
    rows = sum(read(p) for p in files)
    dt, dc = time.perf_counter() - t, sum(os.times()[:2]) - c
    best = (dt, dc) if best is None else min(best, (dt, dc))
print(json.dumps({"read_s": best[0], "read_cpu_s": best[1], "rows": rows, "files": len(files)}))
"""


def pyarrow_read(d: Path) -> dict:
    """Best of 3 wall seconds of a plain pyarrow read of every file of ``d`` (in a child)."""
    out = subprocess.run(
        [sys.executable, "-c", BASELINE, str(d.resolve())], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def text_bytes(d: Path) -> int:
    return sum(p.stat().st_size for p in d.rglob("*") if p.is_file() and "embeddings" not in p.parts)


def run_once(d: Path, slow: bool, code: str | None = None, phases: bool = False) -> dict:
    env = dict(os.environ)
    root = code or str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    if slow:
        env["ECI_LOADER_FAST"] = "0"
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(d.resolve())] + (["phases"] if phases else []),
        env=env,
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("directory")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--slow", action="store_true", help="per-line parsers only (the path before vectorising)")
    ap.add_argument(
        "--phases",
        action="store_true",
        help="print the wall / CPU time (s since start) at the first and last progress call of each stage",
    )
    ap.add_argument(
        "--code", default=None, help="load with the eci_core of this checkout (e.g. an older worktree)"
    )
    args = ap.parse_args()
    d = Path(args.directory)
    size = text_bytes(d)
    lines = sum(1 for f in (d / "negatives").iterdir() for _ in open(f, "rb"))
    mode = "slow" if args.slow else "fast"
    print(f"data: {d}  text {size / 2**20:.0f} MiB  negatives lines {lines:,}  mode {mode}")
    for i in range(args.repeat):
        la = os.getloadavg()[0]
        base = pyarrow_read(d)
        r = run_once(d, args.slow, args.code, args.phases)
        print(
            f"run {i + 1}: pyarrow read of the {base['files']} files {base['read_s']:.2f} s wall, "
            f"{base['read_cpu_s']:.2f} s CPU (best of 3); load / read = {r['load_s'] / base['read_s']:.1f}x "
            f"wall, {r['cpu_s'] / base['read_cpu_s']:.1f}x CPU  (load average {la:.2f} -> "
            f"{os.getloadavg()[0]:.2f})"
        )
        print(
            f"run {i + 1}: load {r['load_s']:.1f} s wall, {r['cpu_s']:.1f} s CPU "
            f"(import {r['import_s']:.1f} s)  peak RSS {r['peak_rss'] / 2**20:.0f} MiB "
            f"({r['peak_rss'] / size:.2f}x text)  queries {r['queries']:,}  "
            f"passages {r['passages']:,}  pairs {r['pairs']:,}  errors {len(r['errors'])}"
        )
        for name, ((w0, c0), (w1, c1)) in r["phases"].items():
            print(f"    {name}: first call {w0} s ({c0} s CPU), last {w1} s ({c1} s CPU)")


if __name__ == "__main__":
    main()
