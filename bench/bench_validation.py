"""Time the cheap validation trainer on the bundled sample.

    python bench/bench_validation.py [--seeds 1] [--folds 5] [--splits 1] [--sweep]

Loads ``sample_data/pyfaq`` (whole corpus; with ``--sweep`` also ``sample_data/pyfaq/sweep``),
runs the ``linear`` trainer protocol (default: one split, one seed: "one cheap-trainer run" =
every source plus the two baselines trained and evaluated once) and prints wall time and this
process's CPU time. The full shipped validation is the CLI command in BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import glob
import os
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import eci_core  # noqa: E402,F401


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--splits", type=int, default=1)
    ap.add_argument("--sweep", action="store_true")
    args = ap.parse_args()
    from eci_core.models.cache import EmbeddingCache
    from eci_core.validation import ValidationConfig
    from eci_core.validation.loading import load_for_validation
    from eci_core.validation.protocol import run_protocol

    sample = ROOT / "sample_data" / "pyfaq"
    paths = [str(sample)] + (sorted(glob.glob(str(sample / "sweep" / "*.trec"))) if args.sweep else [])
    coll, _ = load_for_validation(paths)
    cache = EmbeddingCache(readonly_dirs=[sample / "embeddings"])
    cfg = ValidationConfig(
        folds=args.folds, seeds=args.seeds, splits_limit=args.splits, exclude_prefixes=("llm-",)
    )
    t0, c0 = time.perf_counter(), time.process_time()
    raw = run_protocol(coll, list(coll.sources), cfg, cache=cache)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    runs = raw.per_query.groupby(["variant", "split", "seed"]).ngroups
    print(
        f"{len(coll.sources)} sources, {coll.n_passages:,} passages ({raw.meta['n_eval_passages']:,} "
        f"ranked), {runs} trained/evaluated variants x splits x seeds: {wall:.1f} s wall, {cpu:.1f} s CPU "
        f"(maxrss {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB, "
        f"load {os.getloadavg()[0]:.1f})"
    )


if __name__ == "__main__":
    main()
