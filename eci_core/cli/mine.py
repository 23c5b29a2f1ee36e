"""``eci mine``: mine hard negatives for a BEIR directory and write them as a TREC run.

Registered by :mod:`eci_core.cli` through :func:`add_parser`; :func:`run` does the work. The
parameters carry sentence-transformers' names (``mine_hard_negatives``) and the same semantics,
documented in :func:`eci_core.mining.mine`.

Example::

    eci mine sample_data/pyfaq --method dense --num-negatives 10 \\
        --relative-margin 0.05 --out sample_data/pyfaq/negatives/dense-percpos.trec
"""

from __future__ import annotations

import argparse
import sys

from eci_core.cli.progress import TqdmProgress

METHODS = ("bm25", "dense", "cross-encoder", "bm25+ce", "random")


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register the ``mine`` sub-command on an ``argparse`` sub-parsers object."""
    p = subparsers.add_parser(
        "mine",
        help="mine hard negatives for a BEIR directory and write a TREC run",
        description=(
            "Mine hard negatives for the queries of a BEIR directory (corpus.jsonl, queries.jsonl, "
            "qrels/<split>.tsv) and write them as a TREC run 'qid Q0 docid rank score tag' with the "
            "miner's scores. Parameters follow sentence-transformers' mine_hard_negatives; labelled "
            "positives are never returned as negatives."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("dir", help="BEIR directory with corpus.jsonl, queries.jsonl and qrels/<split>.tsv")
    p.add_argument(
        "--method",
        default=None,
        choices=METHODS,
        help="how candidates are retrieved and scored (required unless --sweep)",
    )
    p.add_argument(
        "--sweep",
        action="store_true",
        help="write the whole sweep of sources (dense / BM25 / cross-encoder rank windows, TopK-PercPos "
        "margins, cross-encoder-denoised, mixtures with --add-negatives) as OUT/<name>.trec, for "
        "`eci validate`",
    )
    p.add_argument("--num-negatives", type=int, default=10, help="negatives per query")
    p.add_argument("--range-min", type=int, default=0, help="skip the first N surviving candidates")
    p.add_argument(
        "--range-max",
        type=int,
        default=None,
        help="consider only the top N non-positive candidates (default: range_min + num_negatives, "
        "x10 when a margin or score filter is set)",
    )
    p.add_argument(
        "--absolute-margin",
        type=float,
        default=None,
        help="drop a candidate if its score + m > the positive's score",
    )
    p.add_argument(
        "--relative-margin",
        type=float,
        default=None,
        help="drop a candidate if its score > pos - |pos| * m (0.05 = NV-Retriever TopK-PercPos 95%%)",
    )
    p.add_argument("--max-score", type=float, default=None, help="drop candidates scoring above this")
    p.add_argument("--min-score", type=float, default=None, help="drop candidates scoring below this")
    p.add_argument(
        "--sampling-strategy",
        choices=("top", "random"),
        default="top",
        help="take the top survivors or sample them",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of random sampling and of the random miner")
    p.add_argument(
        "--encoder",
        default=None,
        help="bi-encoder for dense / cross-encoder: 'minilm' (bundled, default), 'hashing' or a local "
        "sentence-transformers folder",
    )
    p.add_argument(
        "--cross-encoder",
        default=None,
        help="cross-encoder: bundled ONNX ms-marco-MiniLM-L-12-v2 (default) or a local folder",
    )
    p.add_argument(
        "--pool-size",
        type=int,
        default=None,
        help="candidates per retriever before cross-encoder rescoring (cross-encoder: 50 from BM25 + 50 "
        "dense; bm25+ce: 100 from BM25)",
    )
    p.add_argument("--split", default="test", help="qrels split: qrels/<split>.tsv")
    p.add_argument(
        "--exclude-prefix",
        action="append",
        default=[],
        metavar="PREFIX",
        help="never mine passages whose id starts with PREFIX (repeatable), e.g. llm- for LLM-written "
        "passages",
    )
    p.add_argument(
        "--add-negatives",
        default=None,
        metavar="FILE",
        help="add every query's negatives from FILE (TREC run or JSONL {query_id, negative_ids}) to the "
        "mined ones, unfiltered and scored by the method's scorer",
    )
    p.add_argument("--tag", default=None, help="TREC run tag (default: the method)")
    p.add_argument(
        "--cache-dir",
        default=None,
        help="embedding cache directory (default $ECI_CACHE_DIR or ~/.cache/eci-explorer)",
    )
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument(
        "--out", default=None, help="output TREC run file (with --sweep: a directory, default DIR/sweep)"
    )
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Mine, write the run, print sentence-transformers-style skip lines and a summary.

    Returns the exit status: 0 on success, 2 on a bad file or parameter (one-line message on
    stderr, no traceback).
    """
    from eci_core.io.records import LoadError
    from eci_core.mining import mine, read_beir, read_negative_ids, write_trec_run

    if args.sweep:
        return run_sweep(args)
    if not args.method or not args.out:
        print("error: --method and --out are required (or use --sweep)", file=sys.stderr)
        return 2
    progress = TqdmProgress(enabled=not args.no_progress)
    try:
        data = read_beir(args.dir, split=args.split)
        extra = read_negative_ids(args.add_negatives) if args.add_negatives else None
        cache = None
        if args.method in ("dense", "cross-encoder", "bm25+ce"):
            from pathlib import Path

            from eci_core.models.cache import EmbeddingCache

            shipped = Path(args.dir) / "embeddings"
            cache = EmbeddingCache(args.cache_dir, readonly_dirs=[shipped] if shipped.is_dir() else [])
        result = mine(
            data,
            args.method,
            num_negatives=args.num_negatives,
            range_min=args.range_min,
            range_max=args.range_max,
            absolute_margin=args.absolute_margin,
            relative_margin=args.relative_margin,
            max_score=args.max_score,
            min_score=args.min_score,
            sampling_strategy=args.sampling_strategy,
            seed=args.seed,
            encoder=args.encoder,
            cross_encoder=args.cross_encoder,
            pool_size=args.pool_size,
            exclude_prefixes=tuple(args.exclude_prefix),
            extra_negatives=extra,
            cache=cache,
            progress=progress,
        )
        n = write_trec_run(result, args.out, tag=args.tag or args.method)
    except (LoadError, ValueError, FileNotFoundError) as err:
        progress.close()
        print(f"error: {err}", file=sys.stderr)
        return 2
    progress.close()
    print(result.stats_table())
    for line in result.skip_lines():
        print(line)
    print(result.summary(args.out, n))
    return 0


def run_sweep(args: argparse.Namespace) -> int:
    """``eci mine DIR --sweep``: every source of ``mining.SWEEP`` into ``--out`` (default DIR/sweep)."""
    from pathlib import Path

    from eci_core.io.records import LoadError
    from eci_core.models.cache import EmbeddingCache
    from eci_core.mining import SWEEP, mine_sweep, read_beir, read_negative_ids

    set_params = [
        f"--{n.replace('_', '-')}"
        for n in (
            "method",
            "range_min",
            "range_max",
            "absolute_margin",
            "relative_margin",
            "max_score",
            "min_score",
            "pool_size",
            "tag",
        )
        if getattr(args, n) not in (None, 0)
    ]
    if args.sampling_strategy != "top":
        set_params.append("--sampling-strategy")
    if set_params:
        print(
            f"error: {set_params[0]} does not apply to --sweep (each sweep source has its own parameters; "
            f"see `eci_core.mining.SWEEP`)",
            file=sys.stderr,
        )
        return 2
    out_dir = Path(args.out) if args.out else Path(args.dir) / "sweep"
    progress = TqdmProgress(enabled=not args.no_progress)
    try:
        data = read_beir(args.dir, split=args.split)
        extra = read_negative_ids(args.add_negatives) if args.add_negatives else None
        shipped = Path(args.dir) / "embeddings"
        cache = EmbeddingCache(args.cache_dir, readonly_dirs=[shipped] if shipped.is_dir() else [])
        results = mine_sweep(
            data,
            out_dir,
            extra_negatives=extra,
            exclude_prefixes=tuple(args.exclude_prefix),
            seed=args.seed,
            encoder=args.encoder,
            cross_encoder=args.cross_encoder,
            cache=cache,
            split=args.split,
            progress=progress,
        )
    except (LoadError, ValueError, FileNotFoundError) as err:
        progress.close()
        print(f"error: {err}", file=sys.stderr)
        return 2
    progress.close()
    for name, res, path, n in results:
        print(res.summary(path, n).replace(f"with {res.method}", f"with {res.method} ({name})"))
    skipped = [name for name, _, p in SWEEP if p.get("extra") and not extra]
    if skipped:
        print(
            f"Skipped {', '.join(skipped)}: they mix in --add-negatives FILE (e.g. the LLM-written negatives)"
        )
    print(f"Wrote {len(results)} sources to {out_dir}")
    return 0


def main(argv=None) -> int:
    """Stand-alone entry (``python -m eci_core.cli.mine``), same arguments as ``eci mine``."""
    parser = argparse.ArgumentParser(prog="eci")
    sub = parser.add_subparsers(dest="command", required=True)
    add_parser(sub)
    args = parser.parse_args(["mine", *(sys.argv[1:] if argv is None else argv)])
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
