"""The Overview page's data: the verdict (what a validation measured, else why there is none), the
ECI ranking line and its validity, the validated and predicted rankings, the components table, the
sentence-transformers Positive / Negative / Difference summary, and the ranking and P(beats) figures."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd

from eci_core.explore.common import (
    SUMMARY_STATS,
    CONTINUOUS_SCALE,
    require_columns,
    result_table,
    rows_of,
    source_colors,
    source_order,
)
from eci_core.explore.memo import memo
from eci_core.scoring.tables import SUMMARY_COLUMNS

__all__ = [
    "verdict",
    "eci_ranking_line",
    "eci_validity",
    "validated_ranking",
    "validated_effect",
    "validated_figure",
    "validation_verdict",
    "RESOLVED_P",
    "predicted_ranking",
    "components_table",
    "score_summary",
    "summary_table",
    "overview_figure",
    "beats_heatmap",
]


#: P(trains better) at or above which a validation counts a difference between two sources as
#: resolved (the same threshold as ``ValidationResult.notes``); below it they are shown as tied.
RESOLVED_P = 0.95


def verdict(result: Any, validation: Any = None, why_not: str | None = None) -> str:
    """The Overview's headline. It leads with evidence and never recommends a source on ECI
    alone: ECI is measured before training, and whether its ranking predicts training is an
    empirical question.

    * With ``validation`` (an ``eci_core.validation.ValidationResult`` of the loaded data, made
      under the encoder and settings of these scores): what training measured
      (:func:`validation_verdict`).
    * Without: that no validated ranking exists for this data, why (``why_not``, e.g. "a
      validation of the loaded sources exists … but was made under encoder X"), and where to
      measure one. The ECI ranking is :func:`eci_ranking_line`, shown one click away.

    Takes a ScoreResult or the sources table."""
    src = result_table(result, "sources")
    if src is None or len(src) == 0:
        return "No source scored yet: load a file with negatives and score it."
    require_columns(src, ("name", "eci"), "sources")
    ranked = src.sort_values("eci", ascending=False, kind="stable").reset_index(drop=True)
    if validation is not None:
        return validation_verdict(ranked, validation)
    reason = why_not or "no saved validation covers the loaded sources with the same negatives"
    reason = reason[0].upper() + reason[1:]
    if not reason.endswith("."):
        reason += "."
    return (
        f"No validated ranking exists for this data. {reason} Which source trains best has not been "
        "measured here: run a validation on the Validation page. The ECI ranking is a pre-training "
        "estimate, not a recommendation."
    )


def eci_ranking_line(result: Any) -> str:
    """The ECI ranking in one line: the leader with its 95 % interval and unsafe-query rate,
    P(leader beats runner-up) when the intervals overlap, a note when the leader has the easiest
    negatives (lowest Signal), and that ECI is a pre-training estimate, e.g. ``"ECI ranks bm25
    first (0.412, 95 % CI 0.390–0.431), 3.1 % unsafe queries. ECI is a pre-training estimate:
    check on the Validation page which source actually trains best on this data."``

    Takes a ScoreResult or the sources table (ranked)."""
    src = result_table(result, "sources")
    if src is None or len(src) == 0:
        return "No source scored yet: load a file with negatives and score it."
    require_columns(src, ("name", "eci"), "sources")
    ranked = src.sort_values("eci", ascending=False, kind="stable").reset_index(drop=True)
    best = ranked.iloc[0]
    name = str(best["name"])
    ci = ""
    if "eci_low" in ranked.columns and "eci_high" in ranked.columns and pd.notna(best.get("eci_low")):
        ci = f", 95 % CI {best['eci_low']:.3f}–{best['eci_high']:.3f}"
    unsafe = ""
    if "unsafe_query_rate" in ranked.columns and pd.notna(best.get("unsafe_query_rate")):
        unsafe = f", {100 * float(best['unsafe_query_rate']):.1f} % unsafe queries"
    if len(ranked) > 1:
        text = f"ECI ranks {name} first ({best['eci']:.3f}{ci}){unsafe}."
    else:
        text = f"One source: {name}, ECI {best['eci']:.3f}{ci}{unsafe}."
    if len(ranked) > 1:
        second = ranked.iloc[1]
        beats = getattr(result, "beats", None) if not isinstance(result, pd.DataFrame) else None
        overlap = (
            "eci_low" in ranked.columns
            and pd.notna(best.get("eci_low"))
            and float(best["eci_low"]) <= float(second.get("eci_high", np.nan))
        )
        if isinstance(beats, pd.DataFrame) and name in beats.index and str(second["name"]) in beats.columns:
            pb = float(beats.loc[name, str(second["name"])])
            if overlap or pb < 0.95:
                text += f" P(beats {second['name']}) = {pb:.2f}."
        elif overlap:
            text += f" Its interval overlaps {second['name']}'s: the lead is not certain."
        if {"signal", "safety"} <= set(ranked.columns) and float(best["signal"]) <= float(
            ranked["signal"].min()
        ):
            # easy-but-safe sets (random negatives) can top ECI: say so next to the verdict
            text += (
                f" Note: its negatives are the easiest here (Signal {float(best['signal']):.3f}, lowest of "
                f"{len(ranked)} sources); it leads on Safety (Δ {float(best['safety']):.3f})."
            )
    text += (
        " ECI is a pre-training estimate: check on the Validation page which source actually trains best "
        "on this data."
    )
    return text


def _eci_agreement_sentence(validation: Any) -> str | None:
    """ "ECI's ranking agreed with / went against / did not reliably agree with training:
    Spearman ρ = … (95 % CI …) over n validated sources" from the validation's agreement table."""
    agree = getattr(validation, "agreement", None)
    if not isinstance(agree, pd.DataFrame) or agree.empty or "number" not in agree.columns:
        return None
    rows = agree[agree["number"] == "ECI"]
    if rows.empty:
        return None
    e = rows.iloc[0]
    rho, lo, hi = float(e["spearman"]), float(e["spearman_low"]), float(e["spearman_high"])
    if lo > 0:
        how = "ECI's ranking agreed with training"
    elif hi < 0:
        how = "ECI's ranking went against training"
    else:
        how = "ECI's ranking did not reliably agree with training"
    return (
        f"{how}: Spearman ρ = {rho:.2f} (95 % CI {lo:.2f} to {hi:.2f}) over {int(e['n'])} validated sources"
    )


def eci_validity(validation: Any = None, why_not: str | None = None) -> str:
    """The validity line shown next to the ECI ranking: what the validation of the loaded data
    (same encoder and settings) measured of ECI, else that ECI is not validated on this data and
    why (``why_not``)."""
    if validation is None:
        reason = why_not or "no saved validation covers the loaded sources with the same negatives"
        return f"Not validated on this data: {reason.rstrip('.')}."
    meta = getattr(validation, "meta", {}) or {}
    sentence = _eci_agreement_sentence(validation)
    if sentence is None:
        return (
            f"The validation of this data ({meta.get('trainer', '?')} trainer) did not measure ECI's "
            "agreement."
        )
    return f"Validity on this data ({meta.get('trainer', '?')} trainer): {sentence}."


def predicted_ranking(result: Any) -> tuple[pd.DataFrame | None, str]:
    """The shipped training-free predictor applied to ``result`` (a ScoreResult):
    (``rank, source, predicted_gain`` best first, or None; the predictor's held-out reliability
    line, or why there is no prediction). See ``eci_core.validation.predictor``."""
    from eci_core.validation import predictor as P

    def build():
        pred, line = P.predicted_values(result)
        if pred is not None:
            pred = pred.sort_values("predicted_gain", ascending=False, kind="stable").reset_index(drop=True)
            pred.insert(0, "rank", np.arange(1, len(pred) + 1))
        return pred, line

    path = P.SHIPPED  # the model file's version is part of the key: a refitted predictor is re-applied
    version = path.stat().st_mtime_ns if path.is_file() else None
    return memo(result.sources, ("predicted_ranking", str(path), version), build)


def _trains_better(validation: Any) -> pd.DataFrame | None:
    """P(row trains better than column): the joint bootstrap over test queries and seeds
    (``validation.effect.beats``) when the per-query table allows it, else the saved one (test
    queries resampled, seeds averaged)."""
    effect = getattr(validation, "effect", None)
    beats = getattr(effect, "beats", None)
    if isinstance(beats, pd.DataFrame) and not beats.empty:
        return beats
    return getattr(validation, "beats", None)


def validated_ranking(validation: Any, sources: Sequence[str] | None = None) -> pd.DataFrame:
    """The loaded sources ranked by what training measured: one row per source of
    ``validation.downstream`` (only those in ``sources`` when given), best nDCG@10 first, with
    ``rank, tied, source, ndcg@10, ndcg@10_low, ndcg@10_high, gain, gain_low, gain_high``.

    ``rank`` is 1 + the number of other listed sources that train better with P ≥
    :data:`RESOLVED_P` (:func:`_trains_better`: joint over test queries and seeds when the
    per-query table is there): sources whose differences are unresolved share a
    rank, and ``tied`` is True when a source shares its rank. Without ``beats`` for every listed
    source the rank is the position and ``tied`` is NaN (attrs ``"ties_known"`` False): only
    the intervals tell the sources apart then."""
    d = validation.downstream
    src = d[d["kind"] == "source"]
    if sources is not None:
        wanted = [str(n) for n in sources]
        src = src[src["variant"].astype(str).isin(wanted)]
    src = src.sort_values("ndcg@10", ascending=False, kind="stable").reset_index(drop=True)
    names = src["variant"].astype(str).tolist()
    out = pd.DataFrame({"source": names})
    for c in ("ndcg@10", "ndcg@10_low", "ndcg@10_high", "gain", "gain_low", "gain_high"):
        out[c] = src[c].to_numpy(dtype=float) if c in src.columns else np.nan
    beats = _trains_better(validation)
    known = (
        isinstance(beats, pd.DataFrame)
        and len(names) > 0
        and all(n in beats.index and n in beats.columns for n in names)
    )
    if known:
        b = beats.loc[names, names].to_numpy(dtype=float, copy=True)
        np.fill_diagonal(b, np.nan)
        better = b >= RESOLVED_P  # better[i, j]: i trains better than j (NaN: False)
        rank = 1 + better.sum(axis=0)
        counts = pd.Series(rank).map(pd.Series(rank).value_counts())
        out.insert(0, "tied", (counts > 1).to_numpy())
        out.insert(0, "rank", rank.astype(int))
    else:
        out.insert(0, "tied", np.nan)
        out.insert(0, "rank", np.arange(1, len(names) + 1))
    out.attrs["ties_known"] = bool(known)
    return out


def validated_effect(validation: Any, sources: Sequence[str] | None = None) -> str:
    """How much the choice among the listed sources mattered in the validation: the span of
    their measured nDCG@10 (in points, 1 point = 0.01), the baselines (in-batch negatives only,
    untrained), and how many source pairs training resolved (P ≥ :data:`RESOLVED_P` either way)."""
    r = validated_ranking(validation, sources)
    if r.empty:
        return "No loaded source was validated."
    lo, hi = float(r["ndcg@10"].min()), float(r["ndcg@10"].max())
    text = (
        f"The {len(r)} loaded source(s) trained to {lo:.3f}–{hi:.3f} nDCG@10 "
        f"(a spread of {100 * (hi - lo):.1f} points)"
    )
    d = validation.downstream.set_index(validation.downstream["variant"].astype(str))
    base = [
        f"{name} {float(d.loc[name, 'ndcg@10']):.3f}"
        for name in ("in-batch only", "untrained")
        if name in d.index and pd.notna(d.loc[name, "ndcg@10"])
    ]
    if base:
        text += "; baselines: " + ", ".join(base)
    text += "."
    names = r["source"].tolist()
    beats = _trains_better(validation)
    if len(names) > 1 and r.attrs.get("ties_known"):
        b = beats.loc[names, names].to_numpy(dtype=float, copy=True)
        iu = np.triu_indices(len(names), 1)
        p = b[iu]
        resolved = int(np.sum((p >= RESOLVED_P) | (p <= 1 - RESOLVED_P)))
        text += f" Training resolved {resolved} of {p.size} source pairs (P ≥ {RESOLVED_P:.2f} either way)."
    res = getattr(validation, "resolution", None)
    if isinstance(res, float) and np.isfinite(res):
        text += f" Differences below about {res:.3f} nDCG@10 are within noise."
    return text


def validated_figure(validation: Any, sources: Sequence[str] | None = None):
    """Horizontal dot chart of measured downstream nDCG@10 per source (:func:`validated_ranking`),
    best on top, with the 95 % interval over test queries as error bars; each label carries the
    resolved rank ("=1" for a tie), and the baselines (in-batch negatives only, untrained) are
    vertical lines. Colours: :func:`source_colors` in the order of ``sources`` (so a source keeps
    the colour the ECI charts give it). custom_data = [source, low, high, rank]."""
    import plotly.graph_objects as go

    r = validated_ranking(validation, sources)
    ties = r.attrs.get("ties_known", False)
    s = r.iloc[::-1]
    labels = [
        (f"{'=' if ties and bool(t) else ''}{int(k)}. {n}")
        for k, t, n in zip(s["rank"], s["tied"], s["source"])
    ]
    # colours follow ``sources`` (the pages pass them in ECI order, as every other chart colours them)
    colors = source_colors([str(n) for n in sources] if sources is not None else r["source"].tolist())
    err = dict(
        type="data",
        symmetric=False,
        array=(s["ndcg@10_high"] - s["ndcg@10"]).clip(lower=0).to_numpy(dtype=float),
        arrayminus=(s["ndcg@10"] - s["ndcg@10_low"]).clip(lower=0).to_numpy(dtype=float),
        thickness=1.5,
        width=6,
    )
    custom = (
        np.column_stack(
            [
                s["source"].to_numpy(dtype=object),
                s["ndcg@10_low"].to_numpy(dtype=float),
                s["ndcg@10_high"].to_numpy(dtype=float),
                s["rank"].to_numpy(),
            ]
        )
        if len(s)
        else None
    )
    fig = go.Figure(
        go.Scatter(
            x=s["ndcg@10"].to_numpy(dtype=float),
            y=labels,
            mode="markers",
            error_x=err,
            marker=dict(size=12, color=[colors[n] for n in s["source"]]),
            customdata=custom,
            name="nDCG@10",
            hovertemplate="<b>%{customdata[0]}</b><br>nDCG@10 %{x:.3f}<br>95 % CI "
            "%{customdata[1]:.3f}–%{customdata[2]:.3f}<extra></extra>",
        )
    )
    d = validation.downstream.set_index(validation.downstream["variant"].astype(str))
    # the two baselines are usually close: label the lower one on its left, the higher on its right
    base = sorted(
        (
            (float(d.loc[n, "ndcg@10"]), n)
            for n in ("in-batch only", "untrained")
            if n in d.index and pd.notna(d.loc[n, "ndcg@10"])
        )
    )
    for i, (x, name) in enumerate(base):
        fig.add_vline(
            x=x,
            line=dict(dash="dot" if name == "in-batch only" else "dash", color="#777777", width=1),
            annotation_text=name,
            annotation_position="top left" if i == 0 and len(base) > 1 else "top right",
            annotation_font_size=11,
        )
    meta = getattr(validation, "meta", {}) or {}
    fig.update_layout(
        title=f"Sources ranked by measured nDCG@10 ({meta.get('trainer', '?')} trainer)",
        xaxis_title="downstream nDCG@10 (95 % CI over test queries)",
        yaxis_title=None,
        showlegend=False,
        height=max(260, 50 * len(labels) + 140),
        margin=dict(l=10, r=10, t=70, b=40),
    )
    return fig


def validation_verdict(ranked: pd.DataFrame, validation: Any) -> str:
    """What a validation of the loaded sources measured: which loaded source trained best (mean
    nDCG@10 with its 95 % interval, gain over in-batch negatives only), which sources it is tied
    with (differences not resolved, :func:`validated_ranking`), ECI's pick among the loaded
    sources, and ECI's Spearman ρ with training (95 % interval) over the validated sources."""
    d = validation.downstream
    loaded = [str(n) for n in ranked["name"]]
    src = d[(d["kind"] == "source") & d["variant"].astype(str).isin(loaded)]
    if src.empty:
        src = d[d["kind"] == "source"]
    src = src.sort_values("ndcg@10", ascending=False, kind="stable")
    top = src.iloc[0]
    best = str(top["variant"])
    meta = getattr(validation, "meta", {}) or {}
    seeds = int(top.get("n_seeds", 1)) if pd.notna(top.get("n_seeds", np.nan)) else 1
    how = f"{meta.get('trainer', '?')} trainer, {meta.get('n_splits', '?')} split(s) × {seeds} seed(s)"
    text = (
        f"Validation ({how}): {best} trained best of the loaded sources (nDCG@10 {top['ndcg@10']:.3f}, "
        f"95 % CI {top['ndcg@10_low']:.3f}–{top['ndcg@10_high']:.3f}"
    )
    if pd.notna(top.get("gain", np.nan)):
        text += f", {float(top['gain']):+.3f} over in-batch negatives only"
    text += ")."
    table = validated_ranking(validation, src["variant"].astype(str).tolist())
    if table.attrs.get("ties_known"):
        tied = [n for n, k in zip(table["source"], table["rank"]) if k == 1 and n != best]
        if tied:
            shown = ", ".join(tied[:5]) + (f" and {len(tied) - 5} more" if len(tied) > 5 else "")
            text += (
                f" Not resolvably: training did not tell it apart from {shown} (P(trains better) < "
                f"{RESOLVED_P:.2f}), so {'they share' if len(tied) > 1 else 'both share'} first place."
            )
    elif len(src) > 1:
        text += " No pairwise probabilities were saved: compare the intervals."
    eci_pick = loaded[0]
    same = eci_pick == best
    text += f" ECI ranks {eci_pick} first{' too' if same else ''}"
    sentence = _eci_agreement_sentence(validation)
    text += f"; {sentence}." if sentence else "."
    return text


def components_table(result: Any) -> pd.DataFrame:
    """The sources table as the Overview shows it: one row per source in ranking order with
    ``rank, name, eci, eci_low, eci_high, signal, safety, capacity, de, eci_arith, infonce_bound,
    eci_sem, unsafe_query_rate, unsafe_negative_rate, mean_k, n_queries, n_negatives`` (the
    columns present in the table, in that order). No value is recomputed."""
    src = result_table(result, "sources")
    cols = [c for c in SUMMARY_COLUMNS if not c.startswith("n_")] + ["n_queries", "n_negatives"]
    out = src[[c for c in cols if c in src.columns]].copy().reset_index(drop=True)
    out.insert(0, "rank", np.arange(1, len(out) + 1))
    return out


def _st_stats(x: np.ndarray, with_count: bool = True) -> list[float]:
    """count, mean, median, std, min, 25 %, 50 %, 75 %, max as sentence-transformers prints them.

    ``median`` is torch.median's lower middle value (``sorted[(n-1)//2]``), ``std`` the sample
    standard deviation (ddof = 1), quantiles linear interpolation (torch.quantile); NaN for an
    empty array.
    """
    x = np.asarray(x, dtype=np.float64)
    x = x[~np.isnan(x)]
    n = x.size
    if n == 0:
        return [0 if with_count else np.nan] + [np.nan] * 8
    xs = np.sort(x)
    q25, q50, q75 = np.quantile(xs, [0.25, 0.5, 0.75])
    std = float(np.std(xs, ddof=1)) if n > 1 else np.nan
    return [
        n if with_count else np.nan,
        float(xs.mean()),
        float(xs[(n - 1) // 2]),
        std,
        float(xs[0]),
        float(q25),
        float(q50),
        float(q75),
        float(xs[-1]),
    ]


def score_summary(pairs: Any, source: str | None = None) -> pd.DataFrame:
    """The sentence-transformers Positive / Negative / Difference table for one source.

    Index: ``count, mean, median, std, min, 25%, 50%, 75%, max``; columns ``Positive``,
    ``Negative``, ``Difference``.

    * Positive: ``s_qp`` once per query of the source that has at least one negative (the
      similarity to the positive chosen by the ``positive`` rule; sentence-transformers counts one
      per (anchor, positive) row);
    * Negative: ``s_qn`` per negative;
    * Difference: ``margin = s_qp − s_qn`` per negative (``count`` left empty, as the miner prints).

    ``pairs`` is the pairs table (or a ScoreResult); ``source=None`` uses every row (one source
    expected). The CLI prints the same table from this function (one implementation).
    """
    pairs = result_table(pairs, "pairs")
    require_columns(pairs, ("source", "query_id", "s_qn", "s_qp", "margin"), "pairs")

    def build() -> pd.DataFrame:
        p = rows_of(pairs, "source", source) if source is not None else pairs
        pos = p.drop_duplicates(["source", "query_id"])["s_qp"].to_numpy(dtype=np.float64)
        neg = p["s_qn"].to_numpy(dtype=np.float64)
        diff = p["margin"].to_numpy(dtype=np.float64)
        out = pd.DataFrame(
            {
                "Positive": _st_stats(pos),
                "Negative": _st_stats(neg),
                "Difference": _st_stats(diff, with_count=False),
            },
            index=list(SUMMARY_STATS),
        )
        out.index.name = "metric"
        return out

    return memo(pairs, ("score_summary", None if source is None else str(source)), build).copy()


def summary_table(result: Any, sources: Sequence[str] | None = None) -> pd.DataFrame:
    """:func:`score_summary` for every source, stacked: columns ``source, metric, Positive,
    Negative, Difference`` (9 rows per source, sources in ranking order when a ScoreResult is
    given, else in order of appearance)."""
    pairs = result_table(result, "pairs")
    order = source_order(pairs, sources)
    if sources is None and not isinstance(result, pd.DataFrame) and hasattr(result, "sources"):
        ranked = [str(s) for s in result.sources["name"]]
        order = [s for s in ranked if s in order] + [s for s in order if s not in ranked]
    frames = []
    for s in order:
        t = score_summary(pairs, s).reset_index()
        t.insert(0, "source", s)
        frames.append(t)
    if not frames:
        return pd.DataFrame(columns=["source", "metric", "Positive", "Negative", "Difference"])
    return pd.concat(frames, ignore_index=True)


def overview_figure(result: Any, title: str = "Sources ranked by ECI"):
    """Horizontal dot chart of ECI per source, best on top, with 95 % bootstrap error bars
    (``eci_low`` … ``eci_high``). custom_data = [name]."""
    import plotly.graph_objects as go

    src = result_table(result, "sources")
    require_columns(src, ("name", "eci"), "sources")
    s = src.sort_values("eci", ascending=True, kind="stable")
    names = s["name"].astype(str).tolist()
    colors = source_colors(
        src.sort_values("eci", ascending=False, kind="stable")["name"].astype(str).tolist()
    )
    err = None
    if "eci_low" in s.columns and "eci_high" in s.columns:
        err = dict(
            type="data",
            symmetric=False,
            array=(s["eci_high"] - s["eci"]).clip(lower=0).to_numpy(dtype=float),
            arrayminus=(s["eci"] - s["eci_low"]).clip(lower=0).to_numpy(dtype=float),
            thickness=1.5,
            width=6,
        )
    hover = "<b>%{y}</b><br>ECI %{x:.3f}"
    if err is not None:
        hover += "<br>95 % CI %{customdata[1]:.3f}–%{customdata[2]:.3f}"
    custom = (
        np.column_stack(
            [
                names,
                s.get("eci_low", s["eci"]).to_numpy(dtype=float),
                s.get("eci_high", s["eci"]).to_numpy(dtype=float),
            ]
        )
        if len(s)
        else None
    )
    fig = go.Figure(
        go.Scatter(
            x=s["eci"].to_numpy(dtype=float),
            y=names,
            mode="markers",
            error_x=err,
            marker=dict(size=12, color=[colors[n] for n in names]),
            customdata=custom,
            hovertemplate=hover + "<extra></extra>",
            name="ECI",
        )
    )
    fig.update_layout(
        title=title,
        xaxis_title="ECI (nats · DE)",
        yaxis_title=None,
        showlegend=False,
        height=max(260, 60 * len(names) + 120),
        margin=dict(l=10, r=10, t=50, b=40),
    )
    return fig


def beats_heatmap(result: Any):
    """Heatmap of ``beats.loc[row, col]`` = P(ECI(row) > ECI(col)) on shared queries (diagonal
    blank), rows and columns in ranking order, cell text with two decimals."""
    import plotly.graph_objects as go

    b = result_table(result, "beats")
    names = [str(n) for n in b.index]
    z = b.to_numpy(dtype=float).copy()
    np.fill_diagonal(z, np.nan)
    text = [["" if np.isnan(v) else f"{v:.2f}" for v in row] for row in z]
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=[str(c) for c in b.columns],
            y=names,
            zmin=0,
            zmax=1,
            colorscale=CONTINUOUS_SCALE,
            text=text,
            texttemplate="%{text}",
            colorbar=dict(title="P"),
            hovertemplate="P(%{y} beats %{x}) = %{z:.3f}<extra></extra>",
        )
    )
    fig.update_layout(
        title="P(row beats column)",
        yaxis=dict(autorange="reversed"),
        height=max(260, 50 * len(names) + 140),
        margin=dict(l=10, r=10, t=50, b=40),
    )
    return fig
