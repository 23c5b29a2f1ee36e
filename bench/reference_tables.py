"""Merge per-seed validation runs and compare cheap trainers with the fine-tuning reference.

    python bench/reference_tables.py merge OUT DIR_SEED0 DIR_SEED1 ...   # one result from per-seed calls
    python bench/reference_tables.py report REF [CHEAP ...] [--time NAME=SECONDS ...] [--json FILE]

``merge``: the per-seed calls of one protocol (``eci validate --first-seed S --seeds 1``, same
sources, split and settings) hold disjoint seeds of the same runs; their per-query rows are
concatenated and every table is recomputed with the library's own functions
(``downstream_table``, ``agreement_table``), so the merged result equals what one call with all
seeds would have produced (same seeds, same batches).

``report``: what BENCHMARKS.md quotes about a reference REF (a saved validation): per source
nDCG@10 as the mean over seeds with a t interval over the per-seed means (seed noise) and the
bootstrap interval over test queries; the spread of the sources against the in-batch-only and
untrained baselines; the source pairs the reference resolves (P(A > B) ≥ 0.95 either way, paired
bootstrap over test queries, seeds averaged); the agreement of the pre-training numbers; and per
cheap trainer (saved validations of the same sources): pairwise decision accuracy on the
resolved pairs with a Wilson 95 % interval, Spearman ρ and Kendall τ over all shared sources,
top-1 regret (the reference's nDCG@10 of its best source minus that of the cheap trainer's pick)
and its CPU time (``--time LABEL=SECONDS``, measured by the caller, e.g. with /usr/bin/time; the
label of a saved validation is its folder name without a leading ``val_``).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from eci_core.validation import load_results  # noqa: E402
from eci_core.validation.analysis import agreement_table, downstream_table  # noqa: E402
from eci_core.validation.protocol import IN_BATCH, UNTRAINED  # noqa: E402
from eci_core.validation.results import ValidationResult  # noqa: E402

T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571}  # Student t, two-sided 95 %, by degrees of freedom


def merge(out: str, dirs: list[str], n_bootstrap: int = 1000, seed: int = 0) -> ValidationResult:
    parts = [load_results(d) for d in dirs]
    first = parts[0]
    for p in parts[1:]:
        same = ("steps", "batch_size", "negatives_per_example", "max_seq_length", "split_policy", "lr")
        cfg, cfg0 = p.meta.get("config", {}), first.meta.get("config", {})
        if p.meta.get("sources") != first.meta.get("sources") or any(cfg.get(k) != cfg0.get(k) for k in same):
            raise ValueError(f"{p.path}: other sources or settings than {first.path}: not one protocol")
    per_query = pd.concat([p.per_query for p in parts], ignore_index=True)
    if per_query.duplicated(["variant", "split", "seed", "query_id"]).any():
        raise ValueError("the runs share a seed: merge calls with disjoint --first-seed")
    variants = [UNTRAINED, IN_BATCH, *first.meta["sources"]]
    down, beats = downstream_table(per_query, variants, n_bootstrap=n_bootstrap, seed=seed)
    agree = agreement_table(first.pretraining, down, n_bootstrap=n_bootstrap, seed=seed)
    own = first.own_positive()
    down["own_positive"] = [float(own[v]) if v in own else np.nan for v in down["variant"]]
    meta = dict(first.meta)
    meta["resolution"] = down.attrs.get("resolution")
    meta["seconds"] = round(sum(float(p.meta.get("seconds", 0)) for p in parts), 1)
    meta["seconds_per_call"] = [p.meta.get("seconds") for p in parts]
    meta["merged_from"] = [str(Path(p.path).name) for p in parts]
    meta["config"] = dict(
        meta.get("config", {}),
        seeds=int(per_query["seed"].nunique()),
        first_seed=int(per_query["seed"].min()),
    )
    res = ValidationResult(down, beats, first.pretraining, agree, per_query, meta, first.encoder_eci)
    res.save(out)
    res.path = out
    return res


def wilson(k: float, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return float("nan"), float("nan")
    p = k / n
    den = 1 + z * z / n
    c = (p + z * z / (2 * n)) / den
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return c - h, c + h


def seed_table(res: ValidationResult) -> pd.DataFrame:
    """Per variant: mean of the per-seed means, t interval over seeds, and the bootstrap CI."""
    per_seed = res.per_query.groupby(["variant", "seed"])["ndcg@10"].mean().unstack("seed")
    d = res.downstream.set_index("variant")
    rows = []
    for v in d.index:
        s = per_seed.loc[v].to_numpy(float)
        n = s.size
        half = T975.get(n - 1, 1.96) * s.std(ddof=1) / math.sqrt(n) if n > 1 else float("nan")
        rows.append(
            {
                "variant": v,
                "kind": d.loc[v, "kind"],
                "ndcg@10": d.loc[v, "ndcg@10"],
                "seed_mean": s.mean(),
                "seed_ci_half": half,
                "seeds": n,
                "boot_low": d.loc[v, "ndcg@10_low"],
                "boot_high": d.loc[v, "ndcg@10_high"],
                "gain_vs_inbatch": d.loc[v].get("gain", float("nan")),
                "gain_low": d.loc[v].get("gain_low", float("nan")),
                "gain_high": d.loc[v].get("gain_high", float("nan")),
                "own_positive": d.loc[v].get("own_positive", float("nan")),
            }
        )
    return pd.DataFrame(rows)


def resolved_pairs(res: ValidationResult) -> list[tuple[str, str]]:
    """(better, worse) source pairs with P(better > worse) ≥ 0.95."""
    src = res.sources
    b = res.beats.loc[src, src]
    out = []
    for i, a in enumerate(src):
        for c in src[i + 1 :]:
            p = float(b.loc[a, c])
            if p >= 0.95:
                out.append((a, c))
            elif p <= 0.05:
                out.append((c, a))
    return out


def cheap_vs_reference(ref: ValidationResult, cheap: ValidationResult) -> dict:
    from scipy import stats

    y = ref.downstream[ref.downstream["kind"] == "source"].set_index("variant")["ndcg@10"]
    x = cheap.downstream[cheap.downstream["kind"] == "source"].set_index("variant")["ndcg@10"]
    shared = [s for s in y.index if s in x.index]
    pairs = [(a, b) for a, b in resolved_pairs(ref) if a in shared and b in shared]
    right = sum(1.0 if x[a] > x[b] else (0.5 if x[a] == x[b] else 0.0) for a, b in pairs)
    lo, hi = wilson(right, len(pairs))
    cheap_resolved = resolved_pairs(cheap)
    pick = max(shared, key=lambda s: x[s])
    return {
        "trainer": cheap.trainer,
        "n_sources": len(shared),
        "resolved_reference_pairs": len(pairs),
        "decision_accuracy": right / len(pairs) if pairs else float("nan"),
        "decision_low": lo,
        "decision_high": hi,
        "spearman": float(stats.spearmanr(x[shared], y[shared]).statistic),
        "kendall": float(stats.kendalltau(x[shared], y[shared]).statistic),
        "pick": pick,
        "reference_best": str(y[shared].idxmax()),
        "top1_regret": float(y[shared].max() - y[pick]),
        "own_resolved_pairs": len(cheap_resolved),
        "seconds_protocol": cheap.meta.get("seconds"),
    }


def report(ref_dir: str, cheap_dirs: list[str], times: dict[str, float]) -> dict:
    ref = load_results(ref_dir)
    st = seed_table(ref)
    d = ref.downstream.set_index("variant")
    src = ref.sources
    pairs = resolved_pairs(ref)
    n_pairs = len(src) * (len(src) - 1) // 2
    spread = float(d.loc[src, "ndcg@10"].max() - d.loc[src, "ndcg@10"].min())
    out = {
        "reference": ref_dir,
        "trainer": ref.trainer,
        "split_policy": ref.meta.get("split_policy"),
        "splits": ref.meta.get("splits"),
        "config": ref.meta.get("config"),
        "lr": ref.meta.get("lr"),
        "seconds": ref.meta.get("seconds"),
        "resolution": ref.resolution,
        "per_source": st.to_dict("records"),
        "spread_sources": spread,
        "best": str(d.loc[src, "ndcg@10"].idxmax()),
        "worst": str(d.loc[src, "ndcg@10"].idxmin()),
        "in_batch": float(d.loc[IN_BATCH, "ndcg@10"]),
        "untrained": float(d.loc[UNTRAINED, "ndcg@10"]),
        "resolved_pairs": len(pairs),
        "n_pairs": n_pairs,
        "resolved": [list(p) for p in pairs],
        "agreement": ref.agreement.to_dict("records"),
        "cheap": [],
    }
    for c in cheap_dirs:
        r = cheap_vs_reference(ref, load_results(c))
        r["label"] = Path(c).name.removeprefix("val_")  # e.g. linear, linear-refbudget
        r["cpu_seconds"] = times.get(r["label"])
        out["cheap"].append(r)
    return out


def print_report(r: dict) -> None:
    f = lambda x, d=3: "n/a" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.{d}f}"  # noqa: E731
    print(
        f"Reference: {r['trainer']}, split policy {r['split_policy']}, {r['seconds']} s, "
        f"resolution {f(r['resolution'])}"
    )
    print(
        "| source | nDCG@10 (mean over seeds ± t 95 % half-width) | 95 % CI over test queries | gain vs "
        "in-batch [95 % CI] | own positives |"
    )
    print("|---|---|---|---|---|")
    for s in r["per_source"]:
        name = f"*{s['variant']}*" if s["kind"] == "baseline" else f"`{s['variant']}`"
        gain = (
            ""
            if s["variant"] == IN_BATCH
            else f"{s['gain_vs_inbatch']:+.3f} [{s['gain_low']:+.3f}, {s['gain_high']:+.3f}]"
        )
        own = "-" if not math.isfinite(s["own_positive"]) else str(int(s["own_positive"]))
        print(
            f"| {name} | {f(s['seed_mean'])} ± {f(s['seed_ci_half'])} ({s['seeds']} seeds) | "
            f"{f(s['boot_low'])}–{f(s['boot_high'])} | {gain} | {own} |"
        )
    print(
        f"\nSpread of the sources: {f(r['spread_sources'])} nDCG@10 ({r['worst']} … {r['best']}); in-batch "
        f"only {f(r['in_batch'])}, untrained {f(r['untrained'])}. Resolved pairs: "
        f"{r['resolved_pairs']} of {r['n_pairs']}."
    )
    print(
        "\n| pre-training number | Spearman ρ [95 % CI] | pairwise accuracy | top-1 regret | "
        "its pick |\n|---|---|---|---|---|"
    )
    for a in r["agreement"]:
        print(
            f"| {a['number']} | {f(a['spearman'], 2)} [{f(a['spearman_low'], 2)}, "
            f"{f(a['spearman_high'], 2)}] | {f(a['pairwise_accuracy'], 2)} | "
            f"{f(a['top1_regret'])} | `{a['pick']}` |"
        )
    if r["cheap"]:
        print(
            "\n| cheap trainer | decision accuracy on the reference's resolved pairs [Wilson 95 %] | "
            "Spearman ρ | Kendall τ | its pick (regret) | its own resolved pairs | CPU time "
            "|\n|---|---|---|---|---|---|---|"
        )
        for c in r["cheap"]:
            print(
                f"| {c['label']} | {f(c['decision_accuracy'], 2)} of {c['resolved_reference_pairs']} "
                f"[{f(c['decision_low'], 2)}, {f(c['decision_high'], 2)}] | {f(c['spearman'], 2)} | "
                f"{f(c['kendall'], 2)} | `{c['pick']}` ({f(c['top1_regret'])}) | {c['own_resolved_pairs']} | "
                f"{f(c['cpu_seconds'], 0) + ' s' if c['cpu_seconds'] else 'n/a'} |"
            )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("merge")
    m.add_argument("out")
    m.add_argument("dirs", nargs="+")
    m.add_argument("--bootstrap", type=int, default=1000)
    r = sub.add_parser("report")
    r.add_argument("ref")
    r.add_argument("cheap", nargs="*")
    r.add_argument("--time", action="append", default=[], metavar="TRAINER=SECONDS")
    r.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    if a.cmd == "merge":
        res = merge(a.out, a.dirs, n_bootstrap=a.bootstrap)
        print(res.summary())
        return 0
    times = {k: float(v) for k, v in (t.split("=", 1) for t in a.time)}
    rep = report(a.ref, a.cheap, times)
    print_report(rep)
    if a.json:
        Path(a.json).write_text(
            json.dumps(
                rep,
                indent=1,
                default=lambda o: None if isinstance(o, float) and not math.isfinite(o) else str(o),
            )
            + "\n"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
