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
    rows = [{"source": s, "x": sign * float(pre.loc[s, col]) if s in pre.index else np.nan, "ndcg@10": float(d.loc[s, "ndcg@10"]),
             "low": float(d.loc[s, "ndcg@10_low"]), "high": float(d.loc[s, "ndcg@10_high"])} for s in d.index]
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
    Theil–Sen line and the baselines as horizontal lines; title carries ρ and τ."""
    import plotly.graph_objects as go

    f = scatter_frame(res, number)
    fig = go.Figure()
    fig.add_trace(go.Scatter(
        x=f["x"], y=f["ndcg@10"], mode="markers+text", text=f["source"], textposition="top center",
        error_y=dict(type="data", symmetric=False, array=f["high"] - f["ndcg@10"], arrayminus=f["ndcg@10"] - f["low"],
                     thickness=1),
        marker=dict(size=9, color="#0072B2"), name="source", customdata=f[["source"]].to_numpy(),
        hovertemplate="%{customdata[0]}<br>" + number + " %{x:.3f}<br>nDCG@10 %{y:.3f}<extra></extra>"))
    line = rank_line(f["x"].to_numpy(dtype=float), f["ndcg@10"].to_numpy(dtype=float))
    if line is not None:
        xs = np.linspace(np.nanmin(f["x"]), np.nanmax(f["x"]), 20)
        fig.add_trace(go.Scatter(x=xs, y=line[0] * xs + line[1], mode="lines", name="Theil–Sen line",
                                 line=dict(color="#D55E00", dash="dash")))
    d = res.downstream.set_index("variant")
    for b, color in (("in-batch only", "#009E73"), ("untrained", "#999999")):
        if b in d.index:
            fig.add_hline(y=float(d.loc[b, "ndcg@10"]), line=dict(color=color, dash="dot"),
                          annotation_text=b, annotation_position="bottom right")
    a = res.agreement.set_index("number")
    title = number
    if number in a.index:
        r = a.loc[number]
        title = (f"{number} vs downstream nDCG@10: Spearman ρ = {r['spearman']:.2f} [{r['spearman_low']:.2f}, "
                 f"{r['spearman_high']:.2f}], Kendall τ = {r['kendall']:.2f}")
    sign_note = " (sign flipped: higher = safer)" if number.startswith("−") else ""
    fig.update_layout(title=title, xaxis_title=number + sign_note, yaxis_title="nDCG@10 on held-out queries",
                      height=520, margin=dict(l=10, r=10, t=60, b=10), showlegend=False)
    return fig


def downstream_display(res) -> pd.DataFrame:
    """The downstream table as shown: sources by nDCG@10, then the baselines."""
    d = res.downstream.copy()
    cols = ["variant", "kind", "ndcg@10", "ndcg@10_low", "ndcg@10_high", "gain", "gain_low", "gain_high",
            "recall@10", "mrr@10", "seed_sd", "n_test_queries", "n_seeds"]
    return d[[c for c in cols if c in d.columns]]


def agreement_display(res) -> pd.DataFrame:
    cols = ["number", "spearman", "spearman_low", "spearman_high", "kendall", "kendall_low", "kendall_high",
            "pairwise_accuracy", "top1_regret", "pick", "n"]
    return res.agreement[[c for c in cols if c in res.agreement.columns]]


def trainer_agreement_frame(results: dict) -> pd.DataFrame:
    """Rows for every pair of saved results: trainers, shared sources, Kendall τ, top-1 agreement."""
    from eci_core.validation.analysis import trainer_agreement

    names = list(results)
    rows = []
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            t = trainer_agreement(results[a].downstream, results[b].downstream)
            rows.append({"a": a, "b": b, "shared sources": t["n_sources"], "Kendall τ": t["kendall"],
                         "same best source": t["top1_agree"], "best (a)": t["best_a"], "best (b)": t["best_b"]})
    return pd.DataFrame(rows, columns=["a", "b", "shared sources", "Kendall τ", "same best source", "best (a)", "best (b)"])
