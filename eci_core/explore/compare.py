"""The Compare page's data: per-query ECI of two sources on their shared queries and its scatter."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from eci_core.explore import common
from eci_core.explore.common import (
    require_columns,
    result_table,
    rows_of,
    sampling_note,
    scatter_sample,
    source_order,
)
from eci_core.explore.memo import memo

__all__ = ["Comparison", "compare_sources", "compare_sample", "compare_scatter"]


@dataclass
class Comparison:
    """Two sources on the queries both cover.

    ``per_query``: ``query_id, eci_a, eci_b, diff`` (= eci_a − eci_b), plus ``S_a, S_b,
    delta_a, delta_b, K_a, K_b`` when present, sorted by |diff| descending; ``top``: its first
    ``n_top`` rows (the most-disagreeing queries). ``mean_diff`` = mean of diff,
    ``a_wins`` / ``b_wins`` / ``ties`` count queries where a > b, a < b, a == b.
    """

    a: str
    b: str
    per_query: pd.DataFrame
    top: pd.DataFrame
    n_shared: int
    mean_diff: float
    a_wins: int
    b_wins: int
    ties: int
    only_a: int = 0
    only_b: int = 0

    def summary(self) -> str:
        """One line, e.g. ``"120 shared queries: bm25 − dense = +0.031 ECI per query; bm25
        higher on 70, dense higher on 45, equal on 5."``"""
        if not self.n_shared:
            return f"{self.a} and {self.b} share no query: nothing to compare."
        return (
            f"{self.n_shared} shared queries: {self.a} − {self.b} = {self.mean_diff:+.3f} ECI per query; "
            f"{self.a} higher on {self.a_wins}, {self.b} higher on {self.b_wins}, equal on {self.ties}."
        )


def compare_sources(result: Any, a: str, b: str, n_top: int = 10) -> Comparison:
    """Per-query ECI difference between sources ``a`` and ``b`` on their shared queries."""
    q = result_table(result, "queries")
    require_columns(q, ("source", "query_id", "eci"), "queries")
    known = source_order(q, None)
    for name, val in (("a", a), ("b", b)):
        if val not in known:
            raise ValueError(f"{name}={val!r} is not a scored source; known: {', '.join(known)}")
    if a == b:
        raise ValueError(f"a and b are both {a!r}: choose two different sources")
    return memo(q, ("compare", str(a), str(b), int(n_top)), lambda: _compare(q, a, b, n_top))


def _compare(q: pd.DataFrame, a: str, b: str, n_top: int) -> Comparison:
    extra = [c for c in ("S", "delta", "K") if c in q.columns]
    qa = rows_of(q, "source", a).set_index("query_id")[["eci", *extra]]
    qb = rows_of(q, "source", b).set_index("query_id")[["eci", *extra]]
    j = qa.add_suffix("_a").join(qb.add_suffix("_b"), how="inner").reset_index()
    j["diff"] = j["eci_a"] - j["eci_b"]
    cols = ["query_id", "eci_a", "eci_b", "diff"] + [f"{c}_{s}" for c in extra for s in ("a", "b")]
    j = j[cols]
    order = np.argsort(-np.abs(j["diff"].to_numpy(dtype=np.float64)), kind="stable")
    j = j.iloc[order].reset_index(drop=True)
    d = j["diff"].to_numpy(dtype=np.float64)
    return Comparison(
        a=a,
        b=b,
        per_query=j,
        top=j.head(n_top).copy(),
        n_shared=len(j),
        mean_diff=float(d.mean()) if len(d) else float("nan"),
        a_wins=int((d > 0).sum()),
        b_wins=int((d < 0).sum()),
        ties=int((d == 0).sum()),
        only_a=int(len(qa.index.difference(qb.index))),
        only_b=int(len(qb.index.difference(qa.index))),
    )


def compare_sample(comparison: Comparison) -> tuple[pd.DataFrame, str]:
    """The shared queries :func:`compare_scatter` draws (all, or a seeded random sample of at
    most :data:`~eci_core.explore.common.SCATTER_MAX_POINTS` that always holds ``comparison.top``) and the
    note saying so. ``per_query`` is sorted by |diff|, so the top rows are its first ``len(top)`` rows."""
    pq = comparison.per_query
    keep = np.zeros(len(pq), dtype=bool)
    keep[: len(comparison.top)] = True
    shown = scatter_sample(pq, None, keep=keep)
    return shown, sampling_note(len(shown), len(pq), None, "shared queries", "summary numbers and tables")


def _compare_scatter(comparison: Comparison, highlight_top: bool = True):
    """ECI_q of source a (x) vs source b (y) on shared queries, with the diagonal y = x; the most
    disagreeing queries (``comparison.top``) are drawn larger. custom_data = [query_id, diff].
    Above :data:`~eci_core.explore.common.SCATTER_MAX_POINTS` shared queries a seeded random sample is drawn
    (the most disagreeing always among them; :func:`compare_sample` gives it and its note)."""
    import plotly.graph_objects as go

    pq, _ = compare_sample(comparison)
    top_ids = set(comparison.top["query_id"].astype(str)) if highlight_top else set()
    is_top = pq["query_id"].astype(str).isin(top_ids).to_numpy()
    fig = go.Figure()
    hi = (
        float(np.nanmax(np.r_[pq["eci_a"].to_numpy(dtype=float), pq["eci_b"].to_numpy(dtype=float), 0.01]))
        * 1.05
    )
    fig.add_trace(
        go.Scatter(
            x=[0, hi],
            y=[0, hi],
            mode="lines",
            line=dict(color="#999999", dash="dash"),
            hoverinfo="skip",
            name="equal",
        )
    )
    for mask, name, size, color in (
        (~is_top, "shared queries", 6, "#56B4E9"),
        (is_top, "most disagreeing", 10, "#D55E00"),
    ):
        part = pq[mask]
        if not len(part):
            continue
        fig.add_trace(
            go.Scattergl(
                x=part["eci_a"].to_numpy(dtype=float),
                y=part["eci_b"].to_numpy(dtype=float),
                mode="markers",
                name=name,
                marker=dict(size=size, color=color, opacity=0.8),
                customdata=np.column_stack(
                    [part["query_id"].astype(str).to_numpy(), part["diff"].to_numpy(dtype=float)]
                ).astype(object),
                hovertemplate="query %{customdata[0]}<br>"
                + f"{comparison.a} %{{x:.3f}}<br>{comparison.b} %{{y:.3f}}"
                + "<br>diff %{customdata[1]:+.3f}<extra></extra>",
            )
        )
    fig.update_layout(
        title=f"ECI per query: {comparison.a} vs {comparison.b}",
        height=520,
        xaxis_title=f"ECI_q {comparison.a}",
        yaxis_title=f"ECI_q {comparison.b}",
        margin=dict(l=10, r=10, t=50, b=40),
        dragmode="lasso",
    )
    return fig


# Building a figure of 20,000 WebGL points costs about as much as sending it; a page rerun (a
# page switch, a widget elsewhere on the page) gets the figure built for the same table and
# arguments. Callers may restyle the returned figure (axes margins, height) but not its data.
def compare_scatter(comparison: Comparison, highlight_top: bool = True):
    return memo(
        comparison,
        ("fig_compare", bool(highlight_top), common.SCATTER_MAX_POINTS),
        lambda: _compare_scatter(comparison, highlight_top),
    )


compare_scatter.__doc__ = (_compare_scatter.__doc__ or "") + common.BUILT_ONCE_NOTE
