"""Tables and figures of the Validation page (plotly imported inside the builders)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from eci_core.validation.analysis import PRETRAINING_NUMBERS


def number_labels(res) -> list[str]:
    """Pre-training numbers available in ``res`` (agreement-table order)."""
    cols = set(res.pretraining.columns)
    return [label for label, col, _ in PRETRAINING_NUMBERS if col in cols]


def scatter_frame(res, number: str = "ECI") -> pd.DataFrame:
    """One row per source: ``source, x`` (the pre-training number, signed as in the agreement
    table: higher should be better), ``ndcg@10, low, high`` (downstream mean and 95 % interval)."""
    lookup = {label: (col, sign) for label, col, sign in PRETRAINING_NUMBERS}
    if number not in lookup:
        raise ValueError(f"number={number!r}: use one of {', '.join(lookup)}")
    col, sign = lookup[number]
    d = res.downstream[res.downstream["kind"] == "source"].set_index("variant")
    pre = res.pretraining.set_index("name")
    rows = [
        {
            "source": s,
            "x": sign * float(pre.loc[s, col]) if s in pre.index else np.nan,
            "ndcg@10": float(d.loc[s, "ndcg@10"]),
            "low": float(d.loc[s, "ndcg@10_low"]),
            "high": float(d.loc[s, "ndcg@10_high"]),
        }
        for s in d.index
    ]
    return pd.DataFrame(rows, columns=["source", "x", "ndcg@10", "low", "high"])


def rank_line(x: np.ndarray, y: np.ndarray) -> tuple[float, float] | None:
    """Theil–Sen line (median of pairwise slopes, scipy): a rank-robust fit, or None (< 2 points)."""
    from scipy import stats

    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 2 or np.ptp(x[ok]) == 0:
        return None
    slope, intercept, _, _ = stats.theilslopes(y[ok], x[ok])
    return float(slope), float(intercept)


def scatter_figure(res, number: str = "ECI"):
    """Pre-training number (x) against downstream nDCG@10 (y) per source, 95 % error bars, the
    Theil–Sen line and the baselines as horizontal lines; title carries ρ and τ. Sources that may
    be best (tied with the highest, ``res.effect``) are orange, the others blue; the hover shows
    each source's rank range."""
    import plotly.graph_objects as go

    f = scatter_frame(res, number)
    e = res.effect
    rank = e.table.set_index("variant") if e is not None else None
    ranks = [str(rank.loc[x, "rank"]) if rank is not None and x in rank.index else "–" for x in f["source"]]
    colors = [
        "#E69F00"
        if rank is not None and x in rank.index and int(rank.loc[x, "rank_best"]) == 1
        else "#0072B2"
        for x in f["source"]
    ]
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=f["x"],
            y=f["ndcg@10"],
            mode="markers+text",
            text=f["source"],
            textposition="top center",
            error_y=dict(
                type="data",
                symmetric=False,
                array=f["high"] - f["ndcg@10"],
                arrayminus=f["ndcg@10"] - f["low"],
                thickness=1,
            ),
            marker=dict(size=9, color=colors),
            name="source",
            customdata=np.column_stack([f["source"], ranks]),
            hovertemplate="%{customdata[0]}<br>"
            + number
            + " %{x:.3f}<br>nDCG@10 %{y:.3f}<br>rank %{customdata[1]}<extra></extra>",
        )
    )
    line = rank_line(f["x"].to_numpy(dtype=float), f["ndcg@10"].to_numpy(dtype=float))
    if line is not None:
        xs = np.linspace(np.nanmin(f["x"]), np.nanmax(f["x"]), 20)
        fig.add_trace(
            go.Scatter(
                x=xs,
                y=line[0] * xs + line[1],
                mode="lines",
                name="Theil–Sen line",
                line=dict(color="#D55E00", dash="dash"),
            )
        )
    d = res.downstream.set_index("variant")
    for b, color in (("in-batch only", "#009E73"), ("untrained", "#999999")):
        if b in d.index:
            fig.add_hline(
                y=float(d.loc[b, "ndcg@10"]),
                line=dict(color=color, dash="dot"),
                annotation_text=b,
                annotation_position="bottom right",
            )
    a = res.agreement.set_index("number")
    title = number
    if number in a.index:
        r = a.loc[number]
        title = (
            f"{number} vs downstream nDCG@10: Spearman ρ = {r['spearman']:.2f} [{r['spearman_low']:.2f}, "
            f"{r['spearman_high']:.2f}], Kendall τ = {r['kendall']:.2f}"
        )
    sign_note = " (sign flipped: higher = safer)" if number.startswith("−") else ""
    fig.update_layout(
        title=title,
        xaxis_title=number + sign_note,
        yaxis_title="nDCG@10 on held-out queries",
        height=520,
        margin=dict(l=10, r=10, t=60, b=10),
        showlegend=False,
    )
    return fig


def effect_figure(res):
    """Each source's nDCG@10 minus in-batch-only training (points), best first, with the 95 %
    interval of the paired difference from the joint bootstrap over test queries and seeds;
    sources that may be best (tied with the highest) in orange, the others blue; dotted lines at
    in-batch only (0) and untrained. Without an in-batch baseline: nDCG@10 itself. None when the
    validation has no effect table (no per-query table)."""
    import plotly.graph_objects as go

    e = res.effect
    if e is None:
        return None
    t = e.table
    rel = bool(np.isfinite(t["vs_in_batch"]).any())
    col = "vs_in_batch" if rel else "ndcg@10"
    scale = 100.0 if rel else 1.0
    first = t["rank_best"] == 1
    fig = go.Figure()
    groups = (
        (first, "may be best (tied with the highest)", "#E69F00"),
        (~first, "resolved below the best", "#0072B2"),
    )
    for mask, name, color in groups:
        f = t[mask]
        if f.empty:
            continue
        fig.add_trace(
            go.Scatter(
                x=scale * f[col],
                y=f["variant"],
                mode="markers",
                name=name,
                marker=dict(size=9, color=color),
                error_x=dict(
                    type="data",
                    symmetric=False,
                    array=scale * (f[f"{col}_high"] - f[col]),
                    arrayminus=scale * (f[col] - f[f"{col}_low"]),
                    thickness=1,
                ),
                customdata=f[["rank", "n_tied"]].to_numpy(),
                hovertemplate="%{y}<br>%{x:+.2f}<br>rank %{customdata[0]} (tied with "
                "%{customdata[1]} sources)<extra></extra>",
            )
        )
    if rel:
        fig.add_vline(x=0.0, line=dict(color="#009E73", dash="dot"), annotation_text="in-batch only")
        ivu = e.summary.get("in_batch_vs_untrained")
        if ivu is not None and np.isfinite(ivu):
            fig.add_vline(
                x=-100.0 * ivu,
                line=dict(color="#999999", dash="dot"),
                annotation_text="untrained",
                annotation_position="bottom left",
            )
    s = e.summary
    fig.update_layout(
        title=(
            f"Spread {100 * s['spread']:.1f} nDCG@10 points · {s['n_resolved']} of {s['n_pairs']} source "
            f"pairs resolved · {len(s['tied_first'])} may be best"
        ),
        xaxis_title="nDCG@10 minus in-batch only (points)" if rel else "nDCG@10",
        yaxis=dict(autorange="reversed", title=None, categoryorder="array", categoryarray=list(t["variant"])),
        height=max(260, 24 * len(t) + 120),
        margin=dict(l=10, r=10, t=60, b=10),
        legend=dict(orientation="h", yanchor="bottom", y=1.0, x=0),
    )
    return fig


def effect_display(res) -> pd.DataFrame:
    """The effect table as shown (best first; nDCG@10 differences in points): rank range, source,
    nDCG@10 with its interval, the differences to in-batch only and untrained with intervals,
    and the sources it is tied with. Empty without an effect table."""
    e = res.effect
    if e is None:
        return pd.DataFrame()
    t = e.table.copy()
    for c in ("vs_in_batch", "vs_untrained"):
        for suffix in ("", "_low", "_high"):
            t[c + suffix] = 100.0 * t[c + suffix]
    cols = [
        "rank",
        "variant",
        "ndcg@10",
        "ndcg@10_low",
        "ndcg@10_high",
        "vs_in_batch",
        "vs_in_batch_low",
        "vs_in_batch_high",
        "vs_untrained",
        "vs_untrained_low",
        "vs_untrained_high",
        "n_tied",
        "tied_with",
    ]
    return t[cols].rename(columns={"variant": "source"})


def downstream_display(res) -> pd.DataFrame:
    """The downstream table as shown: sources by nDCG@10, then the baselines; ``rank``: the rank
    range the resolved pairs allow (tied sources share a range; empty for baselines)."""
    d = res.downstream.copy()
    e = res.effect
    if e is not None:
        d.insert(0, "rank", d["variant"].map(e.table.set_index("variant")["rank"]).fillna(""))
    cols = [
        "rank",
        "variant",
        "kind",
        "ndcg@10",
        "ndcg@10_low",
        "ndcg@10_high",
        "gain",
        "gain_low",
        "gain_high",
        "recall@10",
        "mrr@10",
        "seed_sd",
        "n_test_queries",
        "n_seeds",
    ]
    return d[[c for c in cols if c in d.columns]]


def agreement_display(res) -> pd.DataFrame:
    """The agreement table as shown: intervals from the joint bootstrap over test queries and
    seeds (``analysis.has_joint_intervals``), the sources-only ρ interval next to it for comparison;
    ``pick rank``: the rank range of the number's pick (``tied for best`` when it may be best)."""
    a = res.agreement.copy()
    e = res.effect
    if e is not None and "pick" in a.columns:
        t = e.table.set_index("variant")
        a["pick rank"] = [
            ("tied for best" if int(t.loc[p, "rank_best"]) == 1 else str(t.loc[p, "rank"]))
            if p in t.index
            else ""
            for p in a["pick"]
        ]
    cols = [
        "number",
        "spearman",
        "spearman_low",
        "spearman_high",
        "spearman_src_low",
        "spearman_src_high",
        "resolved_accuracy",
        "n_resolved",
        "pairwise_accuracy",
        "pairwise_accuracy_low",
        "pairwise_accuracy_high",
        "kendall",
        "kendall_low",
        "kendall_high",
        "top1_regret",
        "pick",
        "pick rank",
        "n",
    ]
    return a[[c for c in cols if c in a.columns]]


def trainer_agreement_frame(results: dict) -> pd.DataFrame:
    """Rows for every pair of saved results: trainers, shared sources, Kendall τ, top-1 agreement."""
    from eci_core.validation.analysis import trainer_agreement

    names = list(results)
    rows = []
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            t = trainer_agreement(results[a].downstream, results[b].downstream)
            rows.append(
                {
                    "a": a,
                    "b": b,
                    "shared sources": t["n_sources"],
                    "Kendall τ": t["kendall"],
                    "same best source": t["top1_agree"],
                    "best (a)": t["best_a"],
                    "best (b)": t["best_b"],
                }
            )
    return pd.DataFrame(
        rows, columns=["a", "b", "shared sources", "Kendall τ", "same best source", "best (a)", "best (b)"]
    )
