"""The ``eci`` command: ``eci inspect``, ``eci score``, ``eci mine`` and ``eci validate``.

``eci --help`` stays fast: numpy, pandas and the model libraries are imported inside the
commands. Importing :mod:`eci_core` (this package) sets ``HF_HUB_OFFLINE=1`` and
``TRANSFORMERS_OFFLINE=1``; :func:`main` sets them again in case the module is run oddly.

Exit status: 0 on success, 2 on a bad file or parameter (one line on stderr, ``PATH:LINE:
message`` for a bad file, no traceback). ``eci inspect good bad`` still prints the report of
every file that loaded, then exits 2; ``eci score`` scores nothing when a file failed (stdout says so).

Defaults worth knowing: ``--encoder`` is the bundled all-MiniLM-L6-v2; ``--cross-encoder`` is
``none`` (the ``cross_encoder`` flag and ``ce_margin`` need a cross-encoder, which costs about a
forward pass per (query, negative) pair: ask for it with ``--cross-encoder bundled``).
"""

from __future__ import annotations

import argparse
import os
import sys

from eci_core.cli.progress import TqdmProgress


def _format_name(value: str) -> str:
    """``--format``: the canonical name of a format or alias (an unknown name is left for argparse
    to refuse with the list of formats)."""
    from eci_core.io.formats import normalise_format

    try:
        return normalise_format(value)
    except ValueError:
        return value


def _add_load_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "paths",
        nargs="+",
        metavar="PATH",
        help="hard-negative files or BEIR directories (formats are detected)",
    )
    from eci_core.io.formats import FORMATS

    p.add_argument(
        "--format",
        default=None,
        type=_format_name,
        choices=list(FORMATS),
        metavar="FORMAT",
        help="force the format of every PATH instead of detecting it: "
        + ", ".join(FORMATS)
        + " (aliases such as n-tuple or triplet accepted)",
    )
    p.add_argument(
        "--split",
        default=None,
        metavar="NAME",
        help="BEIR directories: read positives from qrels/NAME.tsv only (e.g. train, dev, test); "
        "default: every qrels split, each query's positives from the split it is labelled in",
    )


def build_parser() -> argparse.ArgumentParser:
    """The ``eci`` argument parser (``inspect``, ``score``, ``mine`` and ``validate`` sub-commands)."""
    parser = argparse.ArgumentParser(
        prog="eci",
        description="Score hard-negative sets for dense-retriever training with ECI "
        "(Effective Contrastive Information) before you fine-tune.",
    )
    from eci_core import __version__

    parser.add_argument("--version", action="version", version=f"eci {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{inspect,score,mine,validate}")

    p = sub.add_parser(
        "inspect",
        help="load files and print what was read, kept and dropped",
        description="Load hard-negative files and print the load report: one row per source with "
        "rows read, queries, negatives kept, and every drop with its reason.",
    )
    _add_load_args(p)
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser(
        "score",
        help="score every source with ECI and print the leaderboard",
        description="Score every loaded source with ECI under one frozen target encoder: a "
        "leaderboard (ECI with its 95 % bootstrap interval, C, S, Δ, DE, I_NCE, unsafe rates, mean "
        "K) and per source the Positive / Negative / Difference similarity summary.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    _add_load_args(p)
    p.add_argument(
        "--encoder",
        default="minilm",
        help="target encoder: 'minilm' (bundled all-MiniLM-L6-v2), 'bge-small' (bundled int8 ONNX "
        "bge-small-en-v1.5, CPU), 'hashing' (model-free, instant) or a local sentence-transformers folder",
    )
    p.add_argument(
        "--device",
        default="auto",
        help="where sentence-transformers encoders run: 'auto' (every CUDA GPU, else MPS, else CPU), 'cpu', "
        "'cuda', 'cuda:N', 'mps' or a comma-separated list (several GPUs: multi-process encoding); with "
        "--engine ray: 'cpu' / 'mps' keep the actors off the cluster's GPUs, N named "
        "CUDA devices ask for N GPU actors",
    )
    p.add_argument(
        "--engine",
        choices=("local", "ray"),
        default="local",
        help="where to encode, score and cross-encode: this process, or a Ray cluster (Ray Data "
        "map_batches, each model loaded once per Ray worker; needs the optional extra: "
        "pip install 'eci-explorer[ray]')",
    )
    p.add_argument(
        "--ray-address",
        default=None,
        metavar="ADDR",
        help="with --engine ray: the cluster to join ('auto', "
        "'ray://HOST:10001'); default: start a local Ray",
    )
    p.add_argument(
        "--embeddings",
        default=None,
        metavar="DIR",
        help="score with your own vectors instead of an encoder: a folder with queries.npy + "
        "queries.ids.txt and passages.npy + passages.ids.txt (memory-mapped), queries.parquet + "
        "passages.parquet (an id column and a list column), or an embedding cache folder",
    )
    p.add_argument(
        "--embeddings-model",
        default=None,
        metavar="NAME",
        help="name of the model that made --embeddings (recorded with the results; for a cache "
        "folder, picks one of its models)",
    )
    p.add_argument(
        "--cross-encoder",
        default="none",
        help="cross-encoder for ce_margin and the cross_encoder flag: 'none', 'bundled' "
        "(ONNX ms-marco-MiniLM-L-12-v2) or a local folder; slow on CPU, hence off by default (with "
        "--engine ray it runs on the Ray workers)",
    )
    p.add_argument(
        "--source",
        action="append",
        default=None,
        metavar="NAME",
        help="score only this source (repeatable; default: all loaded sources)",
    )
    p.add_argument(
        "--out",
        default=None,
        metavar="DIR",
        help="write pairs.parquet, queries.parquet, sources.csv and beats.csv to DIR",
    )
    p.add_argument(
        "--json", action="store_true", help="print the per-source numbers as JSON instead of tables"
    )
    p.add_argument(
        "--aggregate",
        choices=("query", "set"),
        default="query",
        help="ECI per source: mean of per-query ECI, or one harmonic mean of averaged S and Δ",
    )
    p.add_argument(
        "--positive",
        choices=("min", "max", "mean"),
        default="min",
        help="which labelled positive defines s_qp when a query has several",
    )
    p.add_argument("--temperature", type=float, default=0.05, help="τ of the InfoNCE bound")
    p.add_argument(
        "--near-duplicate-threshold", type=float, default=0.95, help="flag a negative when s_pn >= this"
    )
    p.add_argument("--ce-margin", type=float, default=0.0, help="flag a negative when ce_margin <= this")
    p.add_argument(
        "--eci-sem-max-k",
        type=int,
        default=256,
        metavar="K",
        help="ECI_sem of a query with more than K negatives uses its K negatives of largest weight "
        "(a lower bound; bounds time and memory per query); 0 = no cap",
    )
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    p.add_argument("--bootstrap", type=int, default=1000, metavar="B", help="bootstrap resamples of queries")
    p.add_argument(
        "--embedding-dtype",
        choices=("float32", "float16"),
        default="float32",
        help="precision the embedding matrices are held in while scoring: float16 halves "
        "their memory (1M queries + 3M passages x 256 dims: 3.9 -> 2.0 GB) and costs "
        "about 2x the pair kernel's CPU (numpy widens half floats one by one); dot "
        "products still accumulate in float32. Not used with --embeddings (your "
        "vectors are memory-mapped in their own dtype)",
    )
    p.add_argument(
        "--cache-dir",
        default=None,
        help="embedding cache directory (default $ECI_CACHE_DIR or ~/.cache/eci-explorer)",
    )
    p.add_argument("--no-cache", action="store_true", help="do not read or write the embedding cache")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=cmd_score)

    from eci_core.cli import mine as mine_cli, validate as validate_cli

    mine_cli.add_parser(sub)
    validate_cli.add_parser(sub)
    return parser


# ----------------------------------------------------------------------------- helpers


def _err(message: str) -> int:
    print(message, file=sys.stderr)
    return 2


def _load(args):
    """``(collection, report, status)``: status 2 when a path failed (errors printed)."""
    from eci_core.io.records import LoadError
    from eci_core.io.load import load_paths

    try:
        coll, report = load_paths(args.paths, format=args.format, split=args.split)
    except (LoadError, ValueError, OSError) as err:
        return None, None, _err(str(err))
    for line in report.errors:
        print(line, file=sys.stderr)
    return coll, report, 2 if report.errors else 0


def _fmt(x: float, digits: int = 4) -> str:
    import math

    return "nan" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _pct(x: float) -> str:
    import math

    return "n/a" if x is None or math.isnan(x) else f"{x:.1%}"


def leaderboard(sources) -> str:
    """The leaderboard table (one row per source, ranked by ECI)."""
    import pandas as pd

    rows = []
    for i, r in enumerate(sources.itertuples(index=False), start=1):
        rows.append(
            {
                "#": i,
                "source": r.name,
                "ECI [95% CI]": f"{_fmt(r.eci)} [{_fmt(r.eci_low)}, {_fmt(r.eci_high)}]",
                "C": _fmt(r.capacity),
                "S": _fmt(r.signal),
                "Δ": _fmt(r.safety),
                "DE": _fmt(r.de),
                "I_NCE": _fmt(r.infonce_bound),
                "ECI_arith": _fmt(r.eci_arith),
                "ECI_sem*": _fmt(r.eci_sem),
                "unsafe q": _pct(r.unsafe_query_rate),
                "unsafe neg": _pct(r.unsafe_negative_rate),
                "mean K": _fmt(r.mean_k, 2),
                "queries": r.n_queries,
                "negatives": r.n_negatives,
            }
        )
    return pd.DataFrame(rows).to_string(index=False)


def similarity_summary(pairs) -> str:
    """sentence-transformers' Positive / Negative / Difference table (``overview.score_summary``)."""
    from eci_core.explore.overview import score_summary

    t = score_summary(pairs)
    lines = [f"{'Metric':<8} {'Positive':>12} {'Negative':>12} {'Difference':>12}"]
    for metric, row in t.iterrows():
        label = str(metric).capitalize() if metric[0].isalpha() else str(metric)
        cells = []
        for col in ("Positive", "Negative", "Difference"):
            v = row[col]
            if metric == "count":
                cells.append(f"{'':>12}" if v != v else f"{int(v):>12,}")
            else:
                cells.append(f"{_fmt(float(v)):>12}")
        lines.append(f"{label:<8} " + " ".join(cells))
    return "\n".join(lines)


def _source_rows(pairs, name: str):
    """The rows of source ``name``: a slice (no copy) when they are contiguous, as
    ``score_collection`` writes them, else the selected rows."""
    import numpy as np

    rows = np.flatnonzero((pairs["source"] == name).to_numpy(dtype=bool))
    if rows.shape[0] and rows[-1] - rows[0] + 1 == rows.shape[0]:
        return pairs.iloc[int(rows[0]) : int(rows[-1]) + 1]
    return pairs.iloc[rows]


def flag_summary(pairs) -> str:
    n = len(pairs)
    parts = ", ".join(
        f"{rule} {int(pairs[rule].sum())}" for rule in ("unsafe", "near_duplicate", "cross_encoder")
    )
    return (
        f"Flagged {int(pairs['flagged'].sum())} of {n} negatives ({parts}); "
        f"{int(pairs['percpos'].sum())} in the TopK-PercPos risk band"
    )


def json_report(result) -> dict:
    """``{"encoder": str, "sources": [{name, n_queries, ..., mean_k, predicted_gain}], "predictor":
    {available, line, held_out, per_dataset}}`` (NaN → null). ``predicted_gain`` (the predicted
    nDCG@10 gain over in-batch-only fine-tuning, eci_core/validation/predictor.py) is present only
    when the shipped predictor applies to these scores; ``predictor.line`` says how reliable it
    was on datasets it was not fitted on, or why there is none."""
    import math

    from eci_core.scoring.tables import SUMMARY_COLUMNS

    out = []
    for r in result.sources.to_dict("records"):
        item = {}
        for k in SUMMARY_COLUMNS:
            v = r[k]
            if k == "name":
                item[k] = str(v)
            else:
                item[k] = None if v is None or math.isnan(float(v)) else float(v)
        out.append(item)
    from eci_core.validation.predictor import load, predicted_values

    model = load()
    pred, line = predicted_values(result, model)
    if pred is not None:
        by = dict(zip(pred["source"], pred["predicted_gain"]))
        for item in out:
            v = by.get(item["name"])
            item["predicted_gain"] = None if v is None or math.isnan(float(v)) else float(v)
    predictor = {
        "available": pred is not None,
        "line": line,
        "held_out": model.held_out() if model is not None else None,
        "per_dataset": model.reliability if model is not None else [],
    }
    return {"encoder": str(result.encoder), "sources": out, "predictor": predictor}


# ----------------------------------------------------------------------------- commands


def cmd_inspect(args) -> int:
    coll, report, status = _load(args)
    if coll is None:
        return status
    if report.sources:
        print(report.table().to_string(index=False))
        print()
    print(f"{coll.n_queries} queries, {coll.n_passages} passages, {len(coll.sources)} sources")
    return status


def cmd_score(args) -> int:
    import json
    from pathlib import Path

    from eci_core.config import ECIConfig
    from eci_core.io.records import LoadError

    try:
        config = ECIConfig(
            positive=args.positive,
            aggregate=args.aggregate,
            temperature=args.temperature,
            near_duplicate_threshold=args.near_duplicate_threshold,
            cross_encoder_margin=args.ce_margin,
            n_bootstrap=args.bootstrap,
            seed=args.seed,
            eci_sem_max_k=None if args.eci_sem_max_k == 0 else args.eci_sem_max_k,
        )
    except ValueError as err:
        return _err(f"error: {err}")
    coll, report, status = _load(args)
    if coll is None or status:
        if (
            coll is not None and not args.json
        ):  # stdout says why it holds no table (stderr: one line per bad file)
            n = len(report.errors)
            print(
                f"Nothing scored: {n} file{'' if n == 1 else 's'} could not be loaded (one line each on "
                "stderr); fix them or leave them out of the command (`eci inspect` shows what loads)"
            )
        return status or 2
    if not coll.sources:
        return _err(
            f"error: no negative source in {' '.join(args.paths)}: nothing to score "
            "(run `eci inspect` to see what was read)"
        )
    from eci_core.models.cache import EmbeddingCache
    from eci_core.models.registry import load_cross_encoder, load_encoder
    from eci_core.scoring import score_collection

    progress = TqdmProgress(enabled=not args.no_progress)
    try:
        embeddings = None
        if args.embeddings:
            from eci_core.models.user_embeddings import open_embeddings

            embeddings = open_embeddings(args.embeddings, model=args.embeddings_model)
            encoder = None
        elif args.engine == "ray":
            from eci_core.engines.ray_engine import RayEncoder, init_ray

            init_ray(args.ray_address)
            encoder = RayEncoder(args.encoder, device=args.device)
        else:
            encoder = load_encoder(args.encoder, device=args.device)
            getattr(encoder, "devices", None)  # a device this machine lacks: one line now, not mid-run
        cross = load_cross_encoder(args.cross_encoder)
        cache = None
        if not args.no_cache:
            shipped = [Path(p) / "embeddings" for p in args.paths if (Path(p) / "embeddings").is_dir()]
            cache = EmbeddingCache(args.cache_dir, readonly_dirs=shipped)
        score_source = None
        if args.engine == "ray":
            from eci_core.engines.ray_engine import RaySourceScorer, init_ray

            init_ray(args.ray_address)
            if cross is not None:  # scored on Ray actors (one model load per actor)
                from eci_core.engines.ray_engine import RayCrossEncoder

                cross = RayCrossEncoder(cross, device=args.device)
            score_source = RaySourceScorer()
        result = score_collection(
            coll,
            encoder,
            config,
            cross_encoder=cross,
            cache=cache,
            sources=args.source,
            progress=progress,
            embeddings=embeddings,
            score_source=score_source,
            embedding_dtype=args.embedding_dtype,
        )
    except (LoadError, ValueError, FileNotFoundError, RuntimeError) as err:
        progress.close()
        return _err(f"error: {err}")
    progress.close()

    if args.out:
        from eci_core.io.tables import write_tables

        write_tables(result, args.out)
    if args.json:
        print(json.dumps(json_report(result)))
        return 0
    print(
        f"Target encoder: {result.encoder}   aggregate: {config.aggregate}   positive: {config.positive}   "
        f"bootstrap: B={config.n_bootstrap}, seed={config.seed}"
    )
    print()
    print(leaderboard(result.sources))
    print("* ECI_sem is experimental (a reconstruction of the paper's June version).")
    from eci_core.validation.predictor import predicted_values

    pred, line = predicted_values(result)
    if pred is not None:
        print("\nPredicted training value (nDCG@10 gain over in-batch-only fine-tuning; not a measurement):")
        print(
            pred.sort_values("predicted_gain", ascending=False).to_string(
                index=False, float_format=lambda x: f"{x:+.4f}"
            )
        )
    print(line)
    if len(result.beats) > 1:
        print("\nP(row beats column), bootstrap on shared queries:")
        print(result.beats.to_string(float_format=lambda x: f"{x:.3f}"))
    for name in result.sources["name"]:
        pairs = _source_rows(result.pairs, name)
        print(f"\n== {name} ==")
        print(similarity_summary(pairs))
        print(flag_summary(pairs))
    for note, per in result.notes.items():
        print(f"\nNote: {note}: " + ", ".join(f"{k} {v}" for k, v in per.items()))
    if args.out:
        print(f"\nWrote pairs.parquet, queries.parquet, sources.csv and beats.csv to {args.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``eci`` command; returns the exit status."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    parser = build_parser()
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)
