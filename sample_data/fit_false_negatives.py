#!/usr/bin/env python3
"""Fit the shipped false-negative model (``eci_core/metrics/fn_model.json``) on the labelled pyfaq sample
and measure it, and every single flag rule, on held-out queries.

Data: every negative of every source of ``sample_data/pyfaq`` (the rows of the pairs table,
one per (source, query, negative)), scored with the bundled all-MiniLM-L6-v2 and the bundled
ms-marco-MiniLM-L-12-v2 cross-encoder (read from the shipped cache); label 1 when
``qrels/false_negatives.tsv`` lists the (query, passage), else 0.

Honest numbers: the rows are split into ``--folds`` folds by *query* (``GroupKFold``: a query's
rows of every source are in one fold), the two models (without / with the cross-encoder margin)
are fitted on the other folds and score the held-out fold. AP, ROC AUC and precision@k of those
held-out scores, and of each single rule on the same rows, get 95 % bootstrap intervals from
resampling queries (1,000 resamples, the same for every score). The shipped coefficients are
then fitted on all rows. Everything is deterministic.

Usage: ``python sample_data/fit_false_negatives.py [DIR] [--out eci_core/metrics/fn_model.json]``
(prints the README tables; ``--json`` writes the measurements too).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

import eci_core  # noqa: E402,F401
from eci_core.io.formats import fn_labels  # noqa: E402
from eci_core.metrics import false_negatives as FN  # noqa: E402

KS = (20, 100)


def score_sample(d: Path):
    from eci_core.config import ECIConfig
    from eci_core.models.cache import EmbeddingCache
    from eci_core.models.registry import load_cross_encoder, load_encoder
    from eci_core.io.load import load_paths
    from eci_core.scoring import score_collection

    coll, report = load_paths([d])
    if report.errors:
        raise SystemExit(f"{d}: {report.errors[0]}")
    cache = EmbeddingCache(None, readonly_dirs=[d / "embeddings"])
    res = score_collection(
        coll,
        load_encoder(None),
        ECIConfig(n_bootstrap=50),
        cross_encoder=load_cross_encoder(None),
        cache=cache,
        fn_models=False,
    )
    return coll, res


def held_out(pairs, y, folds: int) -> np.ndarray:
    from sklearn.model_selection import GroupKFold

    out = np.full(len(pairs), np.nan)
    groups = pairs["query_id"].astype(str).to_numpy()
    for train, test in GroupKFold(n_splits=folds).split(pairs, y, groups):
        tr = pairs.iloc[train]
        models = {
            "base": FN.fit(FN.features(tr, FN.BASE_FEATURES), y[train], FN.BASE_FEATURES),
            "with_ce": FN.fit(FN.features(tr, FN.FEATURES), y[train], FN.FEATURES),
        }
        out[test] = FN.fn_scores(pairs.iloc[test], models)
    return out


def gains_text(ev) -> str:
    return "\n".join(
        f"* {m}: fn_score − best single rule ({g['best_rule']}) = {g['gain']:+.3f} "
        f"[{g['low']:+.3f}, {g['high']:+.3f}]"
        for m, g in ev.attrs["gains"].items()
    )


RECALLS = (0.1, 0.25, 0.5, 0.75, 0.9)


def pr_table(scores, y) -> str:
    from sklearn.metrics import precision_recall_curve

    lines = [
        "| ranking | " + " | ".join(f"R = {r:g}" for r in RECALLS) + " |",
        "|---|" + "---|" * len(RECALLS),
    ]
    for name, s in scores.items():
        p, r, _ = precision_recall_curve(y, s)
        cells = []
        for rr in RECALLS:
            ok = r >= rr
            cells.append(f"{p[ok].max():.3f}" if ok.any() else "—")
        lines.append(f"| `{name}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def fmt(row, m) -> str:
    return f"{row[m]:.3f} [{row[m + '_low']:.3f}, {row[m + '_high']:.3f}]"


def table(ev) -> str:
    lines = [
        "| ranking | AP | ROC AUC | " + " | ".join(f"P@{k}" for k in KS) + " |",
        "|---|---|---|" + "---|" * len(KS),
    ]
    for _, r in ev.iterrows():
        lines.append(
            f"| `{r['score']}` | {fmt(r, 'ap')} | {fmt(r, 'roc_auc')} | "
            + " | ".join(fmt(r, f"p@{k}") for k in KS)
            + " |"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dir", nargs="?", type=Path, default=ROOT / "sample_data" / "pyfaq")
    ap.add_argument("--out", type=Path, default=FN.MODEL_PATH)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--bootstrap", type=int, default=1000)
    ap.add_argument("--json", type=Path, help="also write the measurements as JSON here")
    args = ap.parse_args(argv)

    labels_path = args.dir / "qrels" / fn_labels.LABELS_FILE
    labels = fn_labels.read_labels(labels_path)
    coll, res = score_sample(args.dir)
    pairs = res.pairs.reset_index(drop=True)
    y = FN.label_vector(pairs, labels)
    groups = pairs["query_id"].astype(str).to_numpy()
    print(
        f"{len(pairs):,} negatives (rows) over {pairs['source'].nunique()} sources, "
        f"{pairs['query_id'].nunique()} queries; {int(y.sum())} rows are labelled false negatives "
        f"({len(set(zip(pairs.loc[y == 1, 'query_id'], pairs.loc[y == 1, 'passage_id'])))} distinct pairs "
        f"of the {sum(v > 0 for v in labels.values())} labels)"
    )

    pairs["fn_score"] = held_out(pairs, y, args.folds)
    scores = FN.rule_scores(pairs)
    ev = FN.evaluate(scores, y, groups, ks=KS, n_bootstrap=args.bootstrap)
    print(
        f"\nHeld-out ({args.folds}-fold by query) on all sources pooled, 95 % "
        "bootstrap intervals over queries:\n"
    )
    print(table(ev))
    print("\nDifference to the best single rule on each measure (95 % interval, same resamples):\n")
    print(gains_text(ev))
    # without the cross-encoder (the dashboard's default)
    pairs_nce = pairs.copy()
    pairs_nce["ce_margin"] = np.nan
    pairs_nce["fn_score"] = held_out(pairs_nce, y, args.folds)
    ev_nce = FN.evaluate(FN.rule_scores(pairs_nce), y, groups, ks=KS, n_bootstrap=args.bootstrap)
    print("\nThe same without the cross-encoder (base model; the dashboard's default):\n")
    print(table(ev_nce))
    print("\nDifference to the best single rule on each measure:\n")
    print(gains_text(ev_nce))

    print(
        "\nPrecision-recall curves (held out, with the cross-encoder): interpolated precision "
        "(the best precision at this recall or more) at each recall:\n"
    )
    print(pr_table(scores, y))

    per_source = []
    print(
        "\nPer source (held-out fn_score, with the cross-encoder): AP of fn_score | best single rule AP | "
        "labelled / negatives | share of negatives in band 'likely'"
    )
    final = {
        "base": FN.fit(FN.features(pairs, FN.BASE_FEATURES), y, FN.BASE_FEATURES),
        "with_ce": FN.fit(FN.features(pairs, FN.FEATURES), y, FN.FEATURES),
    }
    shipped_scores = FN.fn_scores(pairs, final)
    for name, part in pairs.groupby("source", sort=False):
        idx = part.index.to_numpy()
        yy = y[idx]
        sc = FN.rule_scores(part)
        row = {
            "source": name,
            "negatives": int(len(part)),
            "labelled": int(yy.sum()),
            "likely_share": float(np.mean(shipped_scores[idx] >= FN.LIKELY)),
        }
        if yy.sum():
            from sklearn.metrics import average_precision_score

            aps = {k: float(average_precision_score(yy, v)) for k, v in sc.items()}
            row["ap_fn_score"] = aps.pop("fn_score")
            best = max(aps, key=aps.get)
            row["best_rule"], row["ap_best_rule"] = best, aps[best]
        per_source.append(row)
        print(
            f"  {name:14s} {row.get('ap_fn_score', float('nan')):.3f} | {row.get('best_rule', '-')} "
            f"{row.get('ap_best_rule', float('nan')):.3f} | {row['labelled']} / {row['negatives']} | "
            f"{row['likely_share']:.1%}"
        )

    info = {
        "fitted_on": f"{args.dir.name}: {len(pairs)} negatives of {pairs['source'].nunique()} sources, "
        f"{int(y.sum())} labelled false negatives (qrels/{fn_labels.LABELS_FILE})",
        "encoder": res.encoder,
        "fit": "sklearn LogisticRegression(C=1.0) on standardised features, sign constraints "
        "(eci_core/metrics/false_negatives.py), coefficients on raw features",
        "held_out": {
            "with_ce": ev.to_dict(orient="records"),
            "with_ce_gains": ev.attrs["gains"],
            "without_ce": ev_nce.to_dict(orient="records"),
            "without_ce_gains": ev_nce.attrs["gains"],
            "folds": args.folds,
            "bootstrap": args.bootstrap,
        },
        "per_source": per_source,
        "models": {k: m.to_dict() for k, m in final.items()},
    }
    args.out.write_text(json.dumps(info, indent=1) + "\n", encoding="utf-8")
    print(f"\nShipped coefficients -> {args.out}")
    for k, m in final.items():
        print(
            f"  {k}: intercept {m.intercept:+.3f}; "
            + ", ".join(f"{f} {c:+.3f}" for f, c in zip(m.features, m.coef))
        )
    if args.json:
        args.json.write_text(json.dumps(info, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
