"""``eci validate``: does ECI predict training on this data?

Registered by :mod:`eci_core.cli` through :func:`add_parser`. Trains with each source's negatives
on a fixed budget (``eci_core.validation``), evaluates nDCG@10 / R@10 / MRR@10 on held-out
queries over the whole corpus, and prints the downstream table (with the untrained and
in-batch-only baselines) and the agreement table (how each pre-training number ranked the
sources compared with training). ``--out DIR`` saves JSON + CSV; ``--show DIR`` reopens them.

Examples::

    eci validate sample_data/pyfaq --exclude-prefix llm- --out results/val
    eci validate sample_data/pyfaq sample_data/pyfaq/sweep/*.trec --seeds 3
    eci validate --show sample_data/pyfaq/validation/linear
    eci validate --show sample_data/pyfaq/validation/linear sample_data/pyfaq/validation/finetune
"""

from __future__ import annotations

import argparse
import json
import sys

from eci_core.cli.progress import TqdmProgress


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "validate",
        help="train per source on a fixed budget and check which pre-training number predicts training",
        description=(
            "Train a retriever with each source's negatives on the same budget (same training queries, "
            "steps, batch size, learning rate, negatives per example and seeds), evaluate nDCG@10, R@10 and "
            "MRR@10 on held-out queries over the full corpus, and report (1) the downstream table with the "
            "untrained and in-batch-only baselines and (2) how well ECI and every other pre-training number "
            "ranked the sources the way training did (Spearman, Kendall, pairwise accuracy, top-1 regret). "
            "Splits (--split-policy): auto uses the official split of a BEIR directory when it has qrels for "
            "train and test (or dev) queries, the test queries needing no negatives, else k-fold over "
            "queries. Each source trains on its negatives as given: only a training negative that is a "
            "positive of a held-out query is dropped (and counted); negatives that are their own query's "
            "positive are kept and counted."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "paths",
        nargs="+",
        metavar="PATH",
        help="a BEIR directory with negatives (plus any extra negative files); with --show, saved result "
        "directories (two: their trainer agreement is printed too)",
    )
    p.add_argument(
        "--show",
        action="store_true",
        help="reopen saved results (PATH = --out directory) without recomputing",
    )
    p.add_argument("--format", default=None, help="force the format of every PATH (see `eci score --help`)")
    p.add_argument(
        "--trainer",
        default="linear",
        choices=("linear", "linear-both", "top-layers", "finetune"),
        help="linear: a query-side linear map on frozen embeddings (seconds on a CPU); linear-both: the map "
        "on queries and passages; top-layers: only the model's top transformer layer trained, on cached "
        "lower-layer states (a sixth of a fine-tune's forward passes for MiniLM); finetune: full "
        "sentence-transformers fine-tuning, the reference (GPU when present)",
    )
    p.add_argument(
        "--split-policy",
        default="auto",
        choices=("auto", "official", "kfold"),
        help="official: train on the qrels 'train' queries, test on the 'test' queries (or 'dev' when there "
        "is no test), even those without negatives; kfold: k-fold over the labelled queries; auto: official "
        "when the data has that split, else kfold",
    )
    p.add_argument(
        "--folds",
        type=int,
        default=5,
        help="k of k-fold cross-validation over queries (no qrels train/test split)",
    )
    p.add_argument(
        "--max-splits",
        type=int,
        default=None,
        metavar="N",
        help="evaluate only the first N splits (e.g. 1 for a CPU fine-tune)",
    )
    p.add_argument("--seeds", type=int, default=3, help="training seeds 0..N-1 per split")
    p.add_argument(
        "--first-seed",
        type=int,
        default=0,
        metavar="S",
        help="start the training seeds at S (S..S+N-1): split a long run into one saved call per seed",
    )
    p.add_argument(
        "--steps",
        type=int,
        default=None,
        help="optimiser steps per training run (default: one epoch of the largest training "
        "split at --batch-size, every trainer: the budget at which the cheap trainers agreed with "
        "fine-tuning, BENCHMARKS.md)",
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="queries per step (default 16, every trainer)",
    )
    p.add_argument(
        "--negatives-per-example",
        type=int,
        default=3,
        help="hard negatives per training query and step, drawn from its list (with "
        "replacement when it has fewer)",
    )
    p.add_argument(
        "--lr",
        type=float,
        default=None,
        help="learning rate (default: 1e-3 linear, 1e-4 top-layers, 5e-5 finetune)",
    )
    p.add_argument(
        "--max-seq-length",
        type=int,
        default=None,
        help="finetune and top-layers: token limit for training and re-encoding",
    )
    p.add_argument(
        "--eval-pool",
        type=int,
        default=None,
        metavar="K",
        help="CPU approximation for finetune: re-rank the union of the untrained encoder's top-K for the "
        "test queries (plus their positives) instead of the whole corpus",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="finetune and top-layers on CPU: torch threads (default: torch's)",
    )
    p.add_argument(
        "--device",
        default="auto",
        help="where finetune / top-layers train and the target encoder encodes: auto (CUDA, else MPS, else "
        "CPU), cpu, cuda, cuda:N or mps (linear trainers: also a comma-separated list for encoding)",
    )
    p.add_argument("--sources", default=None, help="comma-separated sources to compare (default: all loaded)")
    p.add_argument(
        "--encoder",
        default="minilm",
        help="target encoder: 'minilm' (bundled), 'hashing', a load_encoder name or a local folder "
        "(finetune needs a sentence-transformers folder or 'minilm')",
    )
    p.add_argument(
        "--agreement-encoders",
        default="",
        metavar="NAMES",
        help="comma-separated further encoders (e.g. hashing,bge-small) whose ECI ranking is compared with "
        "the target's (Kendall τ)",
    )
    p.add_argument(
        "--exclude-prefix",
        action="append",
        default=[],
        metavar="PREFIX",
        help="passages whose id starts with PREFIX are not part of the evaluation "
        "corpus (repeatable), e.g. llm-",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the fold assignment and of the bootstrap")
    p.add_argument(
        "--bootstrap", type=int, default=1000, metavar="B", help="bootstrap resamples for the intervals"
    )
    p.add_argument(
        "--compare",
        default=None,
        metavar="DIR",
        help="saved results of another trainer: print the trainer agreement",
    )
    p.add_argument("--out", default=None, metavar="DIR", help="save results.json and CSV tables to DIR")
    p.add_argument("--json", action="store_true", help="print results.json instead of tables")
    p.add_argument("--markdown", action="store_true", help="print the tables as Markdown (for a README)")
    p.add_argument("--cache-dir", default=None, help="embedding cache directory")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=run)
    return p


def _f(x, d: int = 3) -> str:
    try:
        return "n/a" if x is None or x != x else f"{float(x):.{d}f}"
    except (TypeError, ValueError):
        return str(x)


def _count(x) -> str:
    """An integer count, or '-' (a baseline, or results saved before it was counted)."""
    try:
        return "-" if x is None or x != x else str(int(x))
    except (TypeError, ValueError):
        return "-"


def downstream_text(res) -> str:
    """The downstream table as text (sources, then baselines)."""
    import pandas as pd

    rows = []
    for r in res.downstream.to_dict("records"):
        rows.append(
            {
                "variant": r["variant"] + (" *" if r["kind"] == "baseline" else ""),
                "nDCG@10 [95% CI]": f"{_f(r['ndcg@10'])} [{_f(r['ndcg@10_low'])}, {_f(r['ndcg@10_high'])}]",
                "gain vs in-batch [95% CI]": f"{float(r.get('gain', float('nan'))):+.3f} "
                f"[{float(r.get('gain_low', float('nan'))):+.3f}, "
                f"{float(r.get('gain_high', float('nan'))):+.3f}]",
                "R@10": _f(r["recall@10"]),
                "MRR@10": _f(r["mrr@10"]),
                "seed sd": _f(r["seed_sd"], 4),
                "own positives": _count(r.get("own_positive")),
            }
        )
    return (
        pd.DataFrame(rows).to_string(index=False)
        + "\n* baseline; own positives: training negatives that were "
        "their own query's labelled positive (kept: each source trains as given)"
    )


def agreement_text(res) -> str:
    import pandas as pd

    rows = []
    for r in res.agreement.to_dict("records"):
        rows.append(
            {
                "pre-training number": r["number"],
                "Spearman ρ [95% CI]": f"{_f(r['spearman'], 2)} "
                f"[{_f(r['spearman_low'], 2)}, {_f(r['spearman_high'], 2)}]",
                "Kendall τ [95% CI]": f"{_f(r['kendall'], 2)} "
                f"[{_f(r['kendall_low'], 2)}, {_f(r['kendall_high'], 2)}]",
                "pairwise acc.": _f(r["pairwise_accuracy"], 2),
                "top-1 regret": _f(r["top1_regret"]),
                "its pick": r.get("pick"),
            }
        )
    return pd.DataFrame(rows).to_string(index=False)


def markdown_tables(res) -> str:
    """The downstream and agreement tables of ``res`` as Markdown."""
    lines = [
        f"Downstream ({res.trainer} trainer; nDCG@10 on held-out queries, 95 % bootstrap CI):",
        "",
        "| source | nDCG@10 [95 % CI] | gain vs in-batch [95 % CI] | R@10 | "
        "MRR@10 | seed sd | own positives |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in res.downstream.to_dict("records"):
        name = f"*{r['variant']}* (baseline)" if r["kind"] == "baseline" else f"`{r['variant']}`"
        lines.append(
            f"| {name} | {_f(r['ndcg@10'])} [{_f(r['ndcg@10_low'])}, {_f(r['ndcg@10_high'])}] | "
            f"{float(r.get('gain', float('nan'))):+.3f} [{float(r.get('gain_low', float('nan'))):+.3f}, "
            f"{float(r.get('gain_high', float('nan'))):+.3f}] | {_f(r['recall@10'])} | {_f(r['mrr@10'])} | "
            f"{_f(r['seed_sd'], 4)} | {_count(r.get('own_positive'))} |"
        )
    lines += [
        "",
        "Agreement with downstream nDCG@10 across sources:",
        "",
        "| pre-training number | Spearman ρ [95 % CI] | Kendall τ [95 % CI] | pairwise "
        "accuracy | top-1 regret | its pick |",
        "|---|---|---|---|---|---|",
    ]
    for r in res.agreement.to_dict("records"):
        lines.append(
            f"| {r['number']} | {_f(r['spearman'], 2)} [{_f(r['spearman_low'], 2)}, "
            f"{_f(r['spearman_high'], 2)}] | {_f(r['kendall'], 2)} [{_f(r['kendall_low'], 2)}, "
            f"{_f(r['kendall_high'], 2)}] | {_f(r['pairwise_accuracy'], 2)} | "
            f"{_f(r['top1_regret'])} | `{r.get('pick')}` |"
        )
    lines += [""] + res.notes() + [res.summary(), ""]
    return "\n".join(lines)


def print_results(res, out=None) -> None:
    """Print the validation tables of ``res`` to ``out`` (default: the current ``sys.stdout``)."""
    out = out if out is not None else sys.stdout
    m = res.meta
    cfg = m.get("config", {})
    print(
        f"Trainer: {m.get('trainer')}   encoder: {m.get('encoder')}   device: {m.get('device')}   splits: "
        f"{m.get('n_splits')}   seeds: {cfg.get('seeds')}   steps: {cfg.get('steps')}   batch: "
        f"{cfg.get('batch_size')}   negatives/example: {cfg.get('negatives_per_example')}   lr: "
        f"{m.get('lr')}   time: {m.get('seconds')} s",
        file=out,
    )
    if m.get("split_policy"):
        print(
            f"Split policy: {m['split_policy']}"
            + (
                f" (asked: {cfg.get('split_policy')})"
                if cfg.get("split_policy") not in (None, m["split_policy"])
                else ""
            ),
            file=out,
        )
    for s in m.get("splits", []):
        leaked = sum(s["leaked"].values())
        drop = s["n_train"] - s["n_train_used"]
        why = ", ".join(f"{k} {v}" for k, v in s["not_covered"].items() if v)
        own = ", ".join(f"{k} {v}" for k, v in (s.get("own_positive") or {}).items() if v)
        print(
            f"  {s['split']}: {s['n_train_used']} of {s['n_train']} training queries used ({drop} dropped: "
            f"not covered by {why or '-'}), {s['n_test']} test queries, {leaked} training negatives "
            "dropped as positives of test queries"
            + (
                f"; negatives that are their own query's positive (kept): {own or 'none'}"
                if "own_positive" in s
                else ""
            ),
            file=out,
        )
    print(
        "\nDownstream (nDCG@10 on held-out queries; mean over splits × seeds, 95 % "
        "bootstrap CI over test queries):",
        file=out,
    )
    print(downstream_text(res), file=out)
    print("\nAgreement of each pre-training number with downstream nDCG@10 across sources:", file=out)
    print(agreement_text(res), file=out)
    ea = res.encoder_agreement()
    if not ea.empty:
        print("\nEncoder agreement (Kendall τ between the ECI rankings of the sources):", file=out)
        print(ea.to_string(float_format=lambda x: f"{x:.2f}"), file=out)
    for name, err in (m.get("encoder_errors") or {}).items():
        print(f"  encoder {name!r} not available: {err}", file=out)
    print("", file=out)
    for line in res.notes():
        print(line, file=out)
    print(res.summary(), file=out)


def print_trainer_agreement(a, b, out=None) -> None:
    out = out if out is not None else sys.stdout
    from eci_core.validation import trainer_agreement

    t = trainer_agreement(a.downstream, b.downstream)
    print(
        f"\nTrainer agreement ({a.trainer} vs {b.trainer}, {t['n_sources']} shared sources): Kendall τ = "
        f"{_f(t['kendall'], 2)}; best source {t['best_a']} vs {t['best_b']} "
        f"({'same' if t['top1_agree'] else 'different'}).",
        file=out,
    )


def run(args: argparse.Namespace) -> int:
    from eci_core.io.records import LoadError
    from eci_core.validation import ValidationConfig, load_results, validate

    if args.show:
        try:
            results = [load_results(p) for p in args.paths]
        except (ValueError, FileNotFoundError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        if args.json:
            from eci_core.validation.results import RESULTS_JSON
            from pathlib import Path

            print((Path(results[0].path) / RESULTS_JSON).read_text(encoding="utf-8"))
            return 0
        if args.markdown:
            for r in results:
                print(markdown_tables(r))
            if len(results) >= 2:
                print_trainer_agreement(results[0], results[1])
            return 0
        for i, r in enumerate(results):
            if i:
                print("\n" + "=" * 100 + "\n")
            print(f"== {r.path} ==")
            print_results(r)
        if len(results) >= 2:
            print_trainer_agreement(results[0], results[1])
        return 0

    from eci_core.validation.loading import load_for_validation

    try:
        coll, report = load_for_validation(args.paths, format=args.format, split_policy=args.split_policy)
    except (LoadError, ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for line in report.errors:
        print(line, file=sys.stderr)
    if report.errors:
        return 2
    if not coll.sources:
        print(f"error: no negative source in {' '.join(args.paths)}: nothing to validate", file=sys.stderr)
        return 2
    finetune = args.trainer in (
        "finetune",
        "top-layers",
    )  # transformer trainers: batch 16, one epoch, one device
    for flag, value in (("--threads", args.threads), ("--max-seq-length", args.max_seq_length)):
        if value is not None and not finetune:
            print(
                f"warning: {flag} applies to --trainer finetune and top-layers only; "
                f"--trainer {args.trainer} ignores it",
                file=sys.stderr,
            )
    device = None if str(args.device).strip().lower() in ("", "auto") else args.device
    if device is not None:
        try:  # one line now, not after loading: finetune trains on one device; the encoder may use several
            from eci_core.models.device import resolve_devices
            from eci_core.validation.trainers import training_device

            training_device(device) if finetune else resolve_devices(device)
        except ValueError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
    try:
        config = ValidationConfig(
            trainer=args.trainer,
            folds=args.folds,
            seeds=args.seeds,
            steps=args.steps,
            batch_size=args.batch_size or 16,
            negatives_per_example=args.negatives_per_example,
            lr=args.lr,
            exclude_prefixes=tuple(args.exclude_prefix),
            split_seed=args.seed,
            splits_limit=args.max_splits,
            n_bootstrap=args.bootstrap,
            max_seq_length=args.max_seq_length,
            eval_pool=args.eval_pool,
            threads=args.threads,
            split_policy=args.split_policy,
            first_seed=args.first_seed,
        )
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    sources = [s.strip() for s in args.sources.split(",") if s.strip()] if args.sources else None
    from pathlib import Path

    from eci_core.models.cache import EmbeddingCache

    shipped = [Path(p) / "embeddings" for p in args.paths if (Path(p) / "embeddings").is_dir()]
    cache = EmbeddingCache(args.cache_dir, readonly_dirs=shipped)
    progress = TqdmProgress(enabled=not args.no_progress)
    try:
        res = validate(
            coll,
            sources,
            config,
            encoder=args.encoder,
            cache=cache,
            progress=progress,
            agreement_encoders=[e.strip() for e in args.agreement_encoders.split(",") if e.strip()],
            device=device,
        )
    except (LoadError, ValueError, FileNotFoundError) as err:
        progress.close()
        print(f"error: {err}", file=sys.stderr)
        return 2
    progress.close()
    if args.out:
        res.save(args.out)
        res.path = args.out
    if args.json:
        print(
            json.dumps(
                {
                    "summary": res.summary(),
                    "notes": res.notes(),
                    "meta": res.meta,
                    "downstream": json.loads(res.downstream.to_json(orient="records")),
                    "agreement": json.loads(res.agreement.to_json(orient="records")),
                },
                ensure_ascii=False,
            )
        )
        return 0
    if args.markdown:
        print(markdown_tables(res))
    else:
        print_results(res)
    if args.compare:
        try:
            print_trainer_agreement(res, load_results(args.compare))
        except (ValueError, FileNotFoundError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
    if args.out:
        print(
            f"\nSaved results.json and CSV tables to {args.out} (reopen with "
            f"`eci validate --show {args.out}`)"
        )
    return 0
