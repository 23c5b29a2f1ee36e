"""The Review page's data: the queue of distinct (query, negative) pairs, most likely false negative
first, with the reviewer's marks joined in, and how well each rule finds labelled false negatives."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd

from eci_core.explore.common import OKABE_ITO, require_columns, result_table, row_groups, source_order
from eci_core.explore.memo import memo

__all__ = ["review_queue", "ReviewView", "review_view", "detector_quality", "pr_figure"]


def review_queue(
    result: Any, scores: np.ndarray | None = None, sources: Sequence[str] | None = None
) -> pd.DataFrame:
    """Every distinct (query, negative) across the chosen sources, most likely false negative
    first: ``query_id, passage_id, fn_score`` (the highest over the sources that mined it; the
    ``scores`` array per row of ``result.pairs`` replaces the shipped ``fn_score`` after a refit),
    ``fn_band, sources`` (comma-joined), ``n_sources, s_pn, lex_overlap, margin, unsafe,
    flag_reasons`` (of the best-scoring row)."""
    return _queue(result, scores, sources).copy()  # the caller's own copy, to add columns to


@dataclass
class ReviewView:
    """What the Review page shows of the queue: ``n_queue`` pairs in the queue, ``bands`` (count per
    fn_band), ``n_view`` pairs passing the "show" filter, and :meth:`page` for one page of them
    (queue rows with a ``mark`` column). Only the page's rows are copied, never the whole queue."""

    n_queue: int
    bands: dict
    n_view: int
    _base: pd.DataFrame
    _positions: np.ndarray
    _marks: np.ndarray

    def page(self, number: int, size: int) -> pd.DataFrame:
        """Rows ``(number − 1)·size … number·size − 1`` of the filtered queue (1-based pages)."""
        pos = self._positions[(number - 1) * size : number * size]
        out = self._base.iloc[pos].copy()
        out["mark"] = self._marks[pos]
        return out.reset_index(drop=True)


def review_view(
    result: Any,
    scores: np.ndarray | None,
    sources: Sequence[str] | None,
    pair_marks: dict,
    show: str = "Unreviewed",
) -> ReviewView:
    """The Review page's queue (:func:`review_queue`, computed once) with the user's marks per
    (query_id, passage_id) joined in (cost proportional to the number of marks) and filtered by
    ``show``: ``"Unreviewed"`` (no mark), ``"Marked"`` or ``"All"``."""
    if show not in ("Unreviewed", "Marked", "All"):
        raise ValueError(f"show={show!r}: use 'Unreviewed', 'Marked' or 'All'")
    base = _queue(result, scores, sources)
    bands = memo(base, ("bands",), lambda: base["fn_band"].astype(str).value_counts().to_dict())
    marks = np.full(len(base), None, dtype=object)
    marked = np.zeros(len(base), dtype=bool)
    if pair_marks:
        groups = row_groups(base, "query_id")
        pids = memo(base, ("pids",), lambda: base["passage_id"].astype(str).to_numpy(dtype=object))
        for (q, p), m in pair_marks.items():
            rows = groups.rows(str(q))
            hit = rows[pids[rows] == str(p)] if len(rows) else rows
            if m is not None and len(hit):
                marks[hit] = m
                marked[hit] = True
    if show == "Unreviewed":
        positions = np.flatnonzero(~marked)
    elif show == "Marked":
        positions = np.flatnonzero(marked)
    else:
        positions = np.arange(len(base))
    return ReviewView(
        n_queue=len(base), bands=bands, n_view=len(positions), _base=base, _positions=positions, _marks=marks
    )


def _queue(result: Any, scores: np.ndarray | None, sources: Sequence[str] | None) -> pd.DataFrame:
    """The review queue, computed once per (pairs, sources, scores) through the memo (shared,
    never to be changed in place)."""
    pairs = result_table(result, "pairs")
    require_columns(pairs, ("source", "query_id", "passage_id", "fn_score"), "pairs")
    skey = (
        None
        if scores is None
        else hashlib.sha1(np.ascontiguousarray(scores, dtype=np.float64).tobytes()).hexdigest()
    )
    key = ("review_queue", None if sources is None else tuple(map(str, sources)), skey)
    return memo(pairs, key, lambda: _review_queue(pairs, scores, sources))


def _review_queue(
    pairs: pd.DataFrame, scores: np.ndarray | None, sources: Sequence[str] | None
) -> pd.DataFrame:
    from eci_core.metrics.false_negatives import fn_bands

    p = pairs.assign(fn_score=np.asarray(scores, dtype=np.float64)) if scores is not None else pairs
    if sources is not None:
        p = p[_isin(p["source"], sources)]
    cols = [
        "query_id",
        "passage_id",
        "fn_score",
        "fn_band",
        "sources",
        "n_sources",
        "s_pn",
        "lex_overlap",
        "margin",
        "unsafe",
        "flag_reasons",
    ]
    if not len(p):
        return pd.DataFrame(columns=cols)
    key = ["query_id", "passage_id"]
    g = p.groupby(key, sort=False).ngroup().to_numpy()
    p = p.assign(_g=g)
    best = p.sort_values("fn_score", ascending=False, kind="stable").drop_duplicates(key)
    # the sources of each (query, passage), comma-joined in order of appearance: vectorised for
    # the (usual) pairs one source mined, a Python join only for pairs several sources share
    # (on integer codes of the source names: no string per row)
    s_codes, s_names = pd.factorize(p["source"], sort=False)
    u = pd.DataFrame({"g": g, "s": s_codes}).drop_duplicates()
    ug, us = u["g"].to_numpy(), np.asarray([str(x) for x in s_names], dtype=object)[u["s"].to_numpy()]
    n_src = np.bincount(ug, minlength=int(g.max()) + 1)
    joined = np.empty(len(n_src), dtype=object)
    one = n_src[ug] == 1
    joined[ug[one]] = us[one]
    if (~one).any():
        for gi, names in pd.Series(us[~one]).groupby(ug[~one], sort=False):
            joined[gi] = ",".join(names)
    out = best.assign(sources=joined[best["_g"].to_numpy()], n_sources=n_src[best["_g"].to_numpy()])
    out["fn_band"] = fn_bands(out["fn_score"].to_numpy())
    out = out.sort_values(
        ["fn_score", "query_id", "passage_id"], ascending=[False, True, True], kind="stable", key=_lexical
    )
    return out[cols].reset_index(drop=True)


def _isin(col: pd.Series, values: Sequence[Any]) -> np.ndarray:
    """``col.astype(str).isin(map(str, values))``; a categorical column is tested per category."""
    want = [str(v) for v in values]
    if isinstance(col.dtype, pd.CategoricalDtype):
        per_cat = np.r_[col.cat.categories.astype(str).isin(want), False]
        return per_cat[col.cat.codes.to_numpy()]  # code −1 (missing) picks the trailing False
    return col.astype(str).isin(want).to_numpy()


def _lexical(col: pd.Series) -> pd.Series:
    """A sort key that orders a categorical column by its values' text (as a string column sorts),
    not by the order of its categories; other columns unchanged."""
    if isinstance(col.dtype, pd.CategoricalDtype):
        cats = col.cat.categories
        if cats.is_monotonic_increasing:  # scoring's categories are sorted already
            return col
        return col.cat.reorder_categories(
            cats[np.argsort(cats.astype(str).to_numpy(dtype=object), kind="stable")]
        )
    return col


def detector_quality(result: Any, labels: Any, scores: np.ndarray | None = None) -> dict[str, pd.DataFrame]:
    """How well each flag rule and the false-negative score find labelled false negatives.

    ``labels``: ``{(query_id, passage_id): 1 or 0}`` (a labels file or the reviewer's marks; 0 and
    unlabelled rows count as not false negatives). Returns ``{"summary", "curves"}``: per source
    (and ``all sources``) and per ranking (``fn_score``, ``unsafe``, ``near_duplicate``,
    ``cross_encoder`` when a cross-encoder ran, ``s_pn``, ``lex_overlap``, ``margin``) the
    average precision, ROC AUC, labelled count and the share of the source's negatives in band
    ``likely``; and the precision-recall curve points (``source, score, recall, precision``).
    """
    from eci_core.metrics.false_negatives import LIKELY, ap_auc, label_vector, pr_curves, rule_scores

    pairs = result_table(result, "pairs")
    p = pairs.assign(fn_score=np.asarray(scores, dtype=np.float64)) if scores is not None else pairs
    rows, curves = [], []
    groups = [("all sources", p)] + [(s, p[p["source"].astype(str) == s]) for s in source_order(p, None)]
    for name, part in groups:
        y = label_vector(part, labels)
        sc = rule_scores(part)
        share = float((part["fn_score"].to_numpy(dtype=np.float64) >= LIKELY).mean()) if len(part) else 0.0
        for rule, v in sc.items():
            ap, auc = ap_auc(v, y)
            rows.append(
                {
                    "source": name,
                    "ranking": rule,
                    "average_precision": ap,
                    "roc_auc": auc,
                    "labelled": int(y.sum()),
                    "negatives": len(part),
                    "likely_share": share,
                }
            )
        if y.sum():
            c = pr_curves(sc, y)
            c.insert(0, "source", name)
            curves.append(c)
    summary = pd.DataFrame(
        rows,
        columns=[
            "source",
            "ranking",
            "average_precision",
            "roc_auc",
            "labelled",
            "negatives",
            "likely_share",
        ],
    )
    curves_df = (
        pd.concat(curves, ignore_index=True)
        if curves
        else pd.DataFrame(columns=["source", "score", "recall", "precision", "threshold"])
    )
    return {"summary": summary, "curves": curves_df}


def pr_figure(curves: pd.DataFrame, source: str = "all sources"):
    """Precision-recall curves of :func:`detector_quality` for one source: one line per ranking,
    one marker per yes/no flag rule (its operating point)."""
    import plotly.graph_objects as go

    c = curves[curves["source"] == source]
    fig = go.Figure()
    for i, (name, part) in enumerate(c.groupby("score", sort=False)):
        point = len(part) == 1  # a yes/no rule: one operating point
        fig.add_trace(
            go.Scatter(
                x=part["recall"],
                y=part["precision"],
                mode="markers" if point else "lines",
                name=str(name) + (" (flag)" if point else ""),
                marker=dict(size=11, color=OKABE_ITO[i % len(OKABE_ITO)], symbol="diamond"),
                line=dict(color=OKABE_ITO[i % len(OKABE_ITO)], width=3 if name == "fn_score" else 1.5),
                hovertemplate=f"{name}: recall %{{x:.2f}}, precision %{{y:.2f}}<extra></extra>",
            )
        )
    fig.update_layout(
        title=f"Precision–recall against the labels: {source}",
        xaxis_title="recall",
        yaxis_title="precision",
        xaxis=dict(range=[0, 1]),
        yaxis=dict(range=[0, 1.02]),
        height=380,
        margin=dict(l=10, r=10, t=50, b=30),
    )
    return fig
