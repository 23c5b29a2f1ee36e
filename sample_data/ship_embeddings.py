#!/usr/bin/env python3
"""Write the shipped embedding cache of a BEIR sample directory: ``<DIR>/embeddings/``.

It holds, in the project's embedding-cache layout (``<fingerprint>/<kind>/<kind>.npz``, read by
``EmbeddingCache(readonly_dirs=[DIR/embeddings])``, which ``eci score``, ``eci mine`` and the
dashboard do automatically for a BEIR directory):

* ``passage``: the bundled all-MiniLM-L6-v2 embedding of every passage of ``corpus.jsonl``
  (float16, 384 dims);
* ``query``: the same for every query of ``queries.jsonl``;
* ``ce``: the bundled cross-encoder's logit (float32) for every (query, positive) pair, every
  (query, negative) pair of the files in ``<DIR>/negatives/`` (what scoring with a
  cross-encoder needs) and every pair the two cross-encoder miners rerank (BM25 top-100 and
  dense top-50 of each query, ``llm-`` passages excluded as ``mine_all.sh`` does), so a rebuild
  of the sources does not run the cross-encoder again.

Keys are sha1 hashes of the texts under the model fingerprint, so a changed text or model is a
cache miss (recomputed), never a stale hit. Vectors come from the user's cache when already
computed (``--cache-dir``, default ``$ECI_CACHE_DIR`` or ``~/.cache/eci-explorer``), else are
computed. The new folder replaces the old one only once complete.

Usage: ``python sample_data/ship_embeddings.py sample_data/pyfaq [--max-mb 10] [--no-ce]``
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import eci_core  # noqa: E402,F401  (offline environment first)
from eci_core.models.cache import EmbeddingCache  # noqa: E402
from eci_core.models.encoding import cross_scores, embed  # noqa: E402
from eci_core.models.registry import load_cross_encoder, load_encoder  # noqa: E402
from eci_core.mining import read_beir, read_negative_ids  # noqa: E402


def _tqdm_progress():
    from tqdm.auto import tqdm

    bars: dict[str, object] = {}

    def progress(stage: str, done: int, total: int) -> None:
        bar = bars.get(stage)
        if bar is None:
            bar = bars[stage] = tqdm(total=total, desc=stage, file=sys.stderr, leave=False)
        bar.total = total
        bar.n = done
        bar.refresh()
        if done >= total:
            bar.close()

    return progress


def ce_pairs(directory: Path, coll, cache=None, pools: bool = True) -> list[tuple[str, str]]:
    """(query, passage) texts of every positive, every negative in ``negatives/`` and, with
    ``pools``, the candidate pools of the ``cross-encoder`` and ``bm25+ce`` miners."""
    pairs: dict[tuple[int, int], None] = {}
    for qi, ps in coll.positives.items():
        for p in ps:
            pairs[(qi, p)] = None
    neg_dir = directory / "negatives"
    files = sorted(neg_dir.glob("*.trec")) + sorted(neg_dir.glob("*.jsonl")) if neg_dir.is_dir() else []
    for f in files:
        for qid, pids in read_negative_ids(f).items():
            if qid not in coll._qid_index:
                continue
            qi = coll.query_index(qid)
            for pid in pids:
                if coll.has_passage(pid):
                    pairs[(qi, coll.passage_index(pid))] = None
    if pools:
        from eci_core.mining import DEFAULT_POOL_SIZE, mine

        bm25 = mine(coll, "bm25", DEFAULT_POOL_SIZE["bm25+ce"], exclude_prefixes=("llm-",))
        dense = mine(
            coll, "dense", DEFAULT_POOL_SIZE["cross-encoder"], exclude_prefixes=("llm-",), cache=cache
        )
        for res in (bm25, dense):
            for qid in res.query_ids:
                qi = coll.query_index(qid)
                for pid, _ in res.negatives[qid]:
                    pairs[(qi, coll.passage_index(pid))] = None
    return [(coll.query_texts[q], coll.passage_texts[p]) for q, p in pairs]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dir", type=Path, help="BEIR directory (corpus.jsonl, queries.jsonl, qrels/test.tsv)")
    ap.add_argument(
        "--cache-dir", default=None, help="working cache (default $ECI_CACHE_DIR or ~/.cache/eci-explorer)"
    )
    ap.add_argument("--max-mb", type=float, default=10.0, help="refuse to ship more than this many MB")
    ap.add_argument("--no-ce", action="store_true", help="do not ship cross-encoder scores")
    ap.add_argument(
        "--no-pools",
        action="store_true",
        help="ship cross-encoder scores of the sources only, not of the miners' pools",
    )
    args = ap.parse_args(argv)

    d: Path = args.dir
    out = d / "embeddings"
    coll = read_beir(d)
    cache = EmbeddingCache(args.cache_dir, readonly_dirs=[out] if out.is_dir() else [])
    progress = _tqdm_progress()
    enc = load_encoder(None)
    embed(enc, coll.passage_texts, "passage", cache=cache, progress=progress)
    embed(enc, coll.query_texts, "query", cache=cache, progress=progress)
    pairs = [] if args.no_ce else ce_pairs(d, coll, cache=cache, pools=not args.no_pools)
    ce = None
    if pairs:
        ce = load_cross_encoder(None)
        cross_scores(ce, pairs, cache=cache, progress=progress)

    with tempfile.TemporaryDirectory(dir=d) as tmp:
        stage = Path(tmp) / "embeddings"
        cache.export(enc.fingerprint, "passage", coll.passage_texts, stage, dtype="float16")
        cache.export(enc.fingerprint, "query", coll.query_texts, stage, dtype="float16")
        if pairs:
            cache.export(ce.fingerprint, "ce", pairs, stage)
        size = sum(f.stat().st_size for f in stage.rglob("*") if f.is_file())
        if size > args.max_mb * 2**20:
            print(
                f"error: the cache would be {size / 2**20:.1f} MB > --max-mb {args.max_mb}; not shipped",
                file=sys.stderr,
            )
            return 1
        if out.exists():
            shutil.rmtree(out)
        shutil.move(str(stage), str(out))
    print(
        f"Shipped {out}: {len(set(coll.passage_texts)):,} passage and {len(set(coll.query_texts)):,} query "
        f"embeddings ({enc.name}, float16), {len(pairs):,} cross-encoder scores; {size / 2**20:.2f} MB"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
