"""The Signal vs Safety page's data: the per-(query, source) points with row ids (the linked
table), the points the scatter draws, the iso-DE grid and the figure."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd

from eci_core.explore import common
from eci_core.explore.common import (
    binned_histogram,
    ranked_names,
    require_columns,
    result_table,
    rows_of,
    sampling_note,
    scatter_sample,
    source_colors,
    source_order,
    values_of,
)
from eci_core.explore.memo import memo

__all__ = ["de_grid", "signal_safety_frame", "signal_safety_sample", "signal_safety_figure"]


def _de(s: np.ndarray, d: np.ndarray) -> np.ndarray:
    """The engine's Discriminative Efficiency DE(S, Δ) = 2·S·Δ / (S + Δ) (0 when S + Δ = 0)."""
    from eci_core.metrics import eci as metrics

    return np.asarray(metrics.discriminative_efficiency(s, d), dtype=np.float64)


def de_grid(
    s_max: float = 1.0, delta_max: float = 1.0, n: int = 101
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Iso-DE contour grid: ``(s, delta, z)`` with ``s`` (n,), ``delta`` (n,) from 0 to the maxima
    and ``z[i, j] = DE(s[j], delta[i]) = 2·s·Δ / (s + Δ)`` (row = Δ, column = S: plotly's
    ``go.Contour(x=s, y=delta, z=z)`` layout). DE comes from ``eci_core.metrics.eci``."""
    if n < 2:
        raise ValueError(f"n={n}: the grid needs at least 2 points per axis (e.g. 101)")
    if not (s_max > 0 and delta_max > 0):
        raise ValueError(f"s_max={s_max}, delta_max={delta_max}: both must be > 0 (e.g. 1.0)")
    s = np.linspace(0.0, float(s_max), n)
    d = np.linspace(0.0, float(delta_max), n)
    S, D = np.meshgrid(s, d)
    z = _de(S.ravel(), D.ravel()).reshape(S.shape)
    return s, d, z


def signal_safety_frame(
    result: Any, sources: Sequence[str] | None = None, collection: Any = None
) -> pd.DataFrame:
    """The per-(query, source) points of the Signal-vs-Safety chart: the queries table (rows of
    the chosen sources, in source order) with a ``row_id`` column (0…n−1) that the figure carries
    as custom data, so ``selection.rows_for_ids(frame, selected_ids(event), "row_id")`` gives the
    selected rows (the linked table). With ``collection`` a ``query`` column holds the query text."""
    q = result_table(result, "queries")
    require_columns(q, ("source", "query_id", "S", "delta"), "queries")
    order = source_order(q, sources)

    def build() -> pd.DataFrame:
        parts = [rows_of(q, "source", s) for s in order]
        out = pd.concat(parts, ignore_index=True) if parts else q.iloc[0:0].copy()
        out.insert(0, "row_id", np.arange(len(out), dtype=np.int64))
        return out

    out = memo(q, ("signal_safety_frame", tuple(order)), build)
    if collection is not None:
        out = out.copy()
        texts = [
            collection.query_texts[collection.query_index(str(x))] if collection.has_query(str(x)) else ""
            for x in out["query_id"]
        ]
        out.insert(3, "query", texts)
    return out


def signal_safety_sample(frame: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """The points of :func:`signal_safety_frame` the scatter draws and the sentence saying so."""
    shown = scatter_sample(frame, "source")
    return shown, sampling_note(len(shown), len(frame), "source", "(query, source) points")


def _signal_safety_figure(
    result: Any,
    sources: Sequence[str] | None = None,
    marginals: bool = True,
    contours: bool = True,
    frame: pd.DataFrame | None = None,
):
    """Signal S (x) vs Safety Δ (y), one point per (query, source), coloured by source, with
    iso-DE contour lines of DE = 2·S·Δ / (S + Δ) and marginal histograms of S (top) and Δ
    (right). Every scatter point carries ``custom_data = [row_id, query_id, source]`` where
    ``row_id`` indexes ``frame`` (default :func:`signal_safety_frame`), so the page maps a box /
    lasso selection to rows with ``selection.selected_ids`` + ``selection.rows_for_ids``.

    At scale: the scatter draws :func:`signal_safety_sample` (at most
    :data:`~eci_core.explore.common.SCATTER_MAX_POINTS`, stratified by source); the marginal histograms are
    binned with numpy over every point."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    df = signal_safety_frame(result, sources) if frame is None else frame
    order = source_order(df, sources)
    colors = source_colors(ranked_names(result, order))
    if marginals:
        fig = make_subplots(
            rows=2,
            cols=2,
            column_widths=[0.82, 0.18],
            row_heights=[0.18, 0.82],
            shared_xaxes="columns",
            shared_yaxes="rows",
            horizontal_spacing=0.01,
            vertical_spacing=0.01,
        )
        main = dict(row=2, col=1)
    else:
        fig = make_subplots(rows=1, cols=1)
        main = dict(row=1, col=1)
    smax = float(np.nanmax(df["S"])) if len(df) else 1.0
    dmax = float(np.nanmax(df["delta"])) if len(df) else 1.0
    smax = max(smax * 1.05, 0.05)
    dmax = max(dmax * 1.05, 0.05)
    shown, _ = signal_safety_sample(df)
    s_edges, d_edges = np.linspace(0.0, smax, 41), np.linspace(0.0, dmax, 41)
    if contours:
        s, d, z = de_grid(smax, dmax, 81)
        fig.add_trace(
            go.Contour(
                x=s,
                y=d,
                z=z,
                showscale=False,
                contours=dict(coloring="none", showlabels=True, labelfont=dict(size=10, color="#777777")),
                line=dict(color="#BBBBBB", width=1),
                ncontours=8,
                hoverinfo="skip",
                name="iso-DE",
                showlegend=False,
            ),
            **main,
        )
    for s_name in order:
        part = rows_of(shown, "source", s_name)
        custom = (
            np.column_stack(
                [
                    part["row_id"].to_numpy(),
                    part["query_id"].astype(str).to_numpy(),
                    part["source"].astype(str).to_numpy(),
                ]
            ).astype(object)
            if len(part)
            else None
        )
        eci_txt = "<br>ECI_q %{customdata[3]:.3f}" if "eci" in part.columns else ""
        if "eci" in part.columns and custom is not None:
            custom = np.column_stack([custom, part["eci"].to_numpy(dtype=float)]).astype(object)
        fig.add_trace(
            go.Scattergl(
                x=part["S"].to_numpy(dtype=float),
                y=part["delta"].to_numpy(dtype=float),
                mode="markers",
                name=s_name,
                legendgroup=s_name,
                marker=dict(color=colors[s_name], size=6, opacity=0.75),
                customdata=custom,
                hovertemplate=f"<b>{s_name}</b><br>query %{{customdata[1]}}<br>S %{{x:.3f}}<br>Δ "
                f"%{{y:.3f}}{eci_txt}<extra></extra>",
            ),
            **main,
        )
        if marginals:  # every point of the source, binned here
            sc = binned_histogram(values_of(df, "source", s_name, "S"), s_edges)
            dc = binned_histogram(values_of(df, "source", s_name, "delta"), d_edges)
            fig.add_trace(
                go.Bar(
                    x=(s_edges[:-1] + s_edges[1:]) / 2,
                    y=sc,
                    width=s_edges[1] - s_edges[0],
                    marker_color=colors[s_name],
                    marker_line_width=0,
                    opacity=0.55,
                    legendgroup=s_name,
                    showlegend=False,
                    hoverinfo="skip",
                ),
                row=1,
                col=1,
            )
            fig.add_trace(
                go.Bar(
                    y=(d_edges[:-1] + d_edges[1:]) / 2,
                    x=dc,
                    width=d_edges[1] - d_edges[0],
                    orientation="h",
                    marker_color=colors[s_name],
                    marker_line_width=0,
                    opacity=0.55,
                    legendgroup=s_name,
                    showlegend=False,
                    hoverinfo="skip",
                ),
                row=2,
                col=2,
            )
    fig.update_xaxes(title_text="Signal S = mean s_qn (clipped at 0)", range=[0, smax], **main)
    fig.update_yaxes(title_text="Safety Δ = s_qp − max s_qn (clipped at 0)", range=[0, dmax], **main)
    fig.update_layout(
        barmode="overlay",
        bargap=0,
        title="Signal vs Safety (lines: iso-DE)",
        height=620,
        dragmode="lasso",
        legend_title_text="source",
        margin=dict(l=10, r=10, t=60, b=40),
    )
    return fig


# Building a figure of 20,000 WebGL points costs about as much as sending it; a page rerun (a
# page switch, a widget elsewhere on the page) gets the figure built for the same table and
# arguments. Callers may restyle the returned figure (axes margins, height) but not its data.
def signal_safety_figure(
    result: Any,
    sources: Sequence[str] | None = None,
    marginals: bool = True,
    contours: bool = True,
    frame: pd.DataFrame | None = None,
):
    df = signal_safety_frame(result, sources) if frame is None else frame
    key = (
        "fig_signal_safety",
        id(result),
        None if sources is None else tuple(map(str, sources)),
        bool(marginals),
        bool(contours),
        common.SCATTER_MAX_POINTS,
    )
    return memo(df, key, lambda: _signal_safety_figure(result, sources, marginals, contours, df))


signal_safety_figure.__doc__ = (_signal_safety_figure.__doc__ or "") + common.BUILT_ONCE_NOTE
