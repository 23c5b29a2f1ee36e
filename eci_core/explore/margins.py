"""The Margins & flags page's data: margin histograms and ECDFs with the 95 %-of-positive band,
flag counts and the flag funnel per source, and how the false-negative score splits each source."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd

from eci_core.explore import common
from eci_core.explore.common import (
    FLAG_RULES,
    as_bool,
    binned_histogram,
    ecdf,
    ecdf_points,
    finite_range,
    ranked_names,
    require_columns,
    result_table,
    rows_of,
    source_colors,
    source_order,
    values_of,
)
from eci_core.explore.memo import memo

__all__ = [
    "flag_counts",
    "flag_funnel",
    "flag_funnel_figure",
    "ecdf_frame",
    "percpos_band",
    "margin_histogram",
    "fn_band_counts",
]


def flag_counts(result: Any, sources: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per source: ``n_negatives``, the number of negatives each rule catches
    (``unsafe``, ``near_duplicate``, ``cross_encoder``; a rule caught by several rules counts in
    each), ``flagged`` (the union: any rule), ``percpos`` (the risk marker, not a flag),
    ``kept`` = n_negatives − flagged and ``flagged_share`` = flagged / n_negatives."""
    pairs = result_table(result, "pairs")
    require_columns(pairs, ("source", "flagged"), "pairs")

    def count(s: str) -> dict:
        p = rows_of(pairs, "source", s)
        n = len(p)
        row = {"source": s, "n_negatives": n}
        for rule in FLAG_RULES:
            row[rule] = int(as_bool(p[rule]).sum()) if rule in p.columns else 0
        row["flagged"] = int(as_bool(p["flagged"]).sum())
        row["percpos"] = int(as_bool(p["percpos"]).sum()) if "percpos" in p.columns else 0
        row["kept"] = n - row["flagged"]
        row["flagged_share"] = row["flagged"] / n if n else 0.0
        return row

    rows = [memo(pairs, ("flag_counts", s), lambda s=s: count(s)) for s in source_order(pairs, sources)]
    cols = ["source", "n_negatives", *FLAG_RULES, "flagged", "percpos", "kept", "flagged_share"]
    return pd.DataFrame(rows, columns=cols)


def flag_funnel(result: Any, source: str) -> pd.DataFrame:
    """The flag funnel of one source: rows ``all negatives``, then each rule in
    :data:`FLAG_RULES` order, then ``flagged (any rule)``, and ``kept``.

    Columns: ``stage``, ``caught`` (negatives the rule catches on its own; for ``all negatives``
    the total, for ``flagged`` the union, for ``kept`` the rest), ``new`` (negatives this rule
    catches that no earlier rule caught: the funnel step) and ``remaining`` (negatives not caught
    by this or any earlier rule). The ``new`` column sums to the union.
    """
    pairs = result_table(result, "pairs")
    if str(source) not in source_order(pairs, None):
        raise ValueError(f"unknown source {source!r}; known: {', '.join(source_order(pairs, None))}")
    return memo(
        pairs, ("flag_funnel", str(source)), lambda: _flag_funnel(rows_of(pairs, "source", source))
    ).copy()


def _flag_funnel(p: pd.DataFrame) -> pd.DataFrame:
    n = len(p)
    caught_so_far = np.zeros(n, dtype=bool)
    rows = [{"stage": "all negatives", "caught": n, "new": 0, "remaining": n}]
    for rule in FLAG_RULES:
        m = as_bool(p[rule]) if rule in p.columns else np.zeros(n, dtype=bool)
        new = int((m & ~caught_so_far).sum())
        caught_so_far |= m
        rows.append(
            {"stage": rule, "caught": int(m.sum()), "new": new, "remaining": int(n - caught_so_far.sum())}
        )
    flagged = as_bool(p["flagged"]) if "flagged" in p.columns else caught_so_far
    nf = int(flagged.sum())
    rows.append({"stage": "flagged (any rule)", "caught": nf, "new": 0, "remaining": n - nf})
    rows.append({"stage": "kept", "caught": n - nf, "new": 0, "remaining": n - nf})
    return pd.DataFrame(rows, columns=["stage", "caught", "new", "remaining"])


def ecdf_frame(result: Any, column: str = "margin", sources: Sequence[str] | None = None) -> pd.DataFrame:
    """ECDF of a pairs column per source: columns ``source, x, y`` (see :func:`ecdf`)."""
    pairs = result_table(result, "pairs")
    require_columns(pairs, ("source", column), "pairs")
    frames = []
    for s in source_order(pairs, sources):
        x, y = ecdf(values_of(pairs, "source", s, column))
        frames.append(pd.DataFrame({"source": s, "x": x, "y": y}))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["source", "x", "y"])


def percpos_band(
    result: Any, percpos: float | None = None, sources: Sequence[str] | None = None
) -> pd.DataFrame:
    """Where the 95 %-of-positive (TopK-PercPos) band lies on the margin axis, per source.

    A negative is in the band when ``s_qn > p·s_qp``, i.e. ``margin < (1 − p)·s_qp``: its upper
    edge depends on the query's ``s_qp``. The band drawn on a margin histogram goes from 0 to
    ``(1 − p)·median(s_qp)`` of the source. Columns: ``source, low, high, share`` where ``share``
    is the fraction of the source's negatives inside the exact per-pair band
    ``0 < margin < (1 − p)·s_qp``. ``p`` defaults to the result's ``config.percpos`` (else 0.95).
    """
    pairs = result_table(result, "pairs")
    if percpos is None:
        cfg = getattr(result, "config", None)
        percpos = float(getattr(cfg, "percpos", 0.95))
    if not 0 < percpos <= 1:
        raise ValueError(f"percpos={percpos}: must be in (0, 1] (e.g. 0.95)")

    def band(s: str) -> dict:
        sqp = values_of(pairs, "source", s, "s_qp")
        m = values_of(pairs, "source", s, "margin")
        hi = (1 - percpos) * float(np.nanmedian(sqp)) if len(m) else np.nan
        inside = (m > 0) & (m < (1 - percpos) * sqp)
        return {"source": s, "low": 0.0, "high": hi, "share": float(inside.mean()) if len(m) else 0.0}

    rows = [
        memo(pairs, ("percpos_band", s, float(percpos)), lambda s=s: band(s))
        for s in source_order(pairs, sources)
    ]
    return pd.DataFrame(rows, columns=["source", "low", "high", "share"])


def fn_band_counts(result: Any, sources: Sequence[str] | None = None) -> pd.DataFrame:
    """Per source: how the false-negative score splits its negatives, next to the flags.

    Columns: ``source, n_negatives, likely, possible, unlikely, likely_share`` (share of the
    source's negatives in band ``likely``), ``unsafe``, ``unsafe_likely`` (unsafe and likely a
    false negative) and ``unsafe_unlikely`` (unsafe but unlikely a false negative: usually a
    true hard negative the encoder gets wrong, the most useful kind)."""
    pairs = result_table(result, "pairs")
    require_columns(pairs, ("source", "fn_band", "unsafe"), "pairs")

    def count(s: str) -> dict:
        p = rows_of(pairs, "source", s)
        band = p["fn_band"].astype(str).to_numpy()
        uns = as_bool(p["unsafe"])
        n = len(p)
        return {
            "source": s,
            "n_negatives": n,
            "likely": int((band == "likely").sum()),
            "possible": int((band == "possible").sum()),
            "unlikely": int((band == "unlikely").sum()),
            "likely_share": float((band == "likely").mean()) if n else 0.0,
            "unsafe": int(uns.sum()),
            "unsafe_likely": int((uns & (band == "likely")).sum()),
            "unsafe_unlikely": int((uns & (band == "unlikely")).sum()),
        }

    rows = [memo(pairs, ("fn_band_counts", s), lambda s=s: count(s)) for s in source_order(pairs, sources)]
    return pd.DataFrame(
        rows,
        columns=[
            "source",
            "n_negatives",
            "likely",
            "possible",
            "unlikely",
            "likely_share",
            "unsafe",
            "unsafe_likely",
            "unsafe_unlikely",
        ],
    )


def _margin_histogram(
    result: Any,
    sources: Sequence[str] | None = None,
    mode: str = "overlay",
    ecdf_view: bool = False,
    percpos: float | None = None,
    nbins: int = 60,
):
    """Histogram (or ECDF with ``ecdf_view=True``) of ``margin = s_qp − s_qn`` per source.

    ``mode``: ``"overlay"`` (one axis, translucent bars / lines) or ``"facets"`` (small
    multiples, one row per source, shared x). A solid line marks margin = 0 (left of it: unsafe)
    and a shaded band marks the 95 %-of-positive band 0 … (1 − p)·median(s_qp) (see
    :func:`percpos_band`)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    if mode not in ("overlay", "facets"):
        raise ValueError(f"mode={mode!r}: use 'overlay' or 'facets'")
    pairs = result_table(result, "pairs")
    require_columns(pairs, ("source", "margin"), "pairs")
    order = source_order(pairs, sources)
    colors = source_colors(ranked_names(result, order))
    band = percpos_band(result, percpos, order) if "s_qp" in pairs.columns else pd.DataFrame()
    rows = len(order) if mode == "facets" and order else 1
    fig = make_subplots(
        rows=rows,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.04 if rows > 1 else 0.0,
        subplot_titles=order if mode == "facets" else None,
    )
    lo, hi = memo(pairs, ("margin_range",), lambda: finite_range(pairs["margin"].to_numpy(dtype=np.float64)))
    size = (hi - lo) / nbins if hi > lo else 0.01
    edges = lo + size * np.arange(nbins + 1 if hi > lo else 2)
    centers = (edges[:-1] + edges[1:]) / 2
    for i, s in enumerate(order):
        r = i + 1 if mode == "facets" else 1
        if ecdf_view:  # the exact ECDF at <= ECDF_MAX_POINTS ranks, not one point per negative
            x, y = memo(
                pairs,
                ("ecdf_points", s, "margin"),
                lambda s=s: ecdf_points(values_of(pairs, "source", s, "margin")),
            )
            fig.add_trace(
                go.Scatter(
                    x=x,
                    y=y,
                    mode="lines",
                    line=dict(color=colors[s], shape="hv"),
                    name=s,
                    legendgroup=s,
                    hovertemplate=f"{s}<br>margin %{{x:.3f}}<br>F %{{y:.3f}}<extra></extra>",
                ),
                row=r,
                col=1,
            )
        else:  # binned here with numpy: the figure carries nbins counts, not every margin
            counts = memo(
                pairs,
                ("margin_hist", s, lo, hi, int(nbins)),
                lambda s=s: binned_histogram(values_of(pairs, "source", s, "margin"), edges),
            )
            fig.add_trace(
                go.Bar(
                    x=centers,
                    y=counts,
                    width=size,
                    name=s,
                    legendgroup=s,
                    marker_color=colors[s],
                    marker_line_width=0,
                    opacity=0.55 if mode == "overlay" else 0.85,
                    customdata=np.column_stack([edges[:-1], edges[1:]]),
                    hovertemplate=f"{s}<br>margin %{{customdata[0]:.3f}} to %{{customdata[1]:.3f}}"
                    f"<br>%{{y}} negatives<extra></extra>",
                ),
                row=r,
                col=1,
            )
    for r in range(1, rows + 1):
        fig.add_vline(x=0, line=dict(color="#D55E00", width=2), row=r, col=1)
    if len(band):
        for i, b in band.iterrows():
            if not np.isfinite(b["high"]):
                continue
            r = i + 1 if mode == "facets" else 1
            fig.add_vrect(
                x0=0,
                x1=float(b["high"]),
                fillcolor=colors.get(b["source"], "#999999") if mode == "overlay" else "#F0E442",
                opacity=0.15,
                line_width=0,
                row=r,
                col=1,
            )
    fig.update_layout(
        barmode="overlay",
        bargap=0,
        title="Margin s_qp − s_qn per negative",
        height=max(320, 170 * rows + 80),
        legend_title_text="source",
        margin=dict(l=10, r=10, t=60, b=40),
    )
    fig.update_xaxes(title_text="margin", row=rows, col=1)
    fig.update_yaxes(title_text="share ≤ x" if ecdf_view else "negatives")
    return fig


def flag_funnel_figure(result: Any, source: str):
    """Funnel chart of :func:`flag_funnel` for one source (negatives caught per rule, new
    catches per step, then kept)."""
    import plotly.graph_objects as go

    f = flag_funnel(result, source)
    steps = f[f["stage"].isin(FLAG_RULES)]
    fig = go.Figure()
    fig.add_trace(
        go.Bar(
            y=f["stage"],
            x=f["caught"],
            orientation="h",
            name="caught by the rule",
            marker_color="#56B4E9",
            text=f["caught"],
            textposition="outside",
            hovertemplate="%{y}: %{x}<extra></extra>",
        )
    )
    fig.add_trace(
        go.Bar(
            y=steps["stage"],
            x=steps["new"],
            orientation="h",
            name="new (not caught before)",
            marker_color="#0072B2",
            text=steps["new"],
            textposition="outside",
            hovertemplate="%{y}: %{x} new<extra></extra>",
        )
    )
    fig.update_layout(
        barmode="group",
        title=f"Flags of {source}",
        yaxis=dict(autorange="reversed"),
        height=300,
        margin=dict(l=10, r=10, t=50, b=30),
        xaxis_title="negatives",
    )
    return fig


# Building a figure of 20,000 WebGL points costs about as much as sending it; a page rerun (a
# page switch, a widget elsewhere on the page) gets the figure built for the same table and
# arguments. Callers may restyle the returned figure (axes margins, height) but not its data.
def margin_histogram(
    result: Any,
    sources: Sequence[str] | None = None,
    mode: str = "overlay",
    ecdf_view: bool = False,
    percpos: float | None = None,
    nbins: int = 60,
):
    pairs = result_table(result, "pairs")
    key = (
        "fig_margin",
        id(result),
        None if sources is None else tuple(map(str, sources)),
        mode,
        bool(ecdf_view),
        percpos,
        int(nbins),
    )
    return memo(pairs, key, lambda: _margin_histogram(result, sources, mode, ecdf_view, percpos, nbins))


margin_histogram.__doc__ = (_margin_histogram.__doc__ or "") + common.BUILT_ONCE_NOTE
