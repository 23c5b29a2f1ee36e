"""The Query drill-down page's data: finding a query (by id or words, never listing them all), the
lowest-ECI queries, one query's negatives with their texts and the words they share with the positives."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from eci_core.explore.common import require_columns, result_table, rows_of, source_order
from eci_core.explore.memo import memo

__all__ = [
    "DrillDown",
    "query_drilldown",
    "shared_words",
    "highlight_html",
    "search_queries",
    "scored_query_mask",
    "query_choices",
    "worst_queries",
    "worst_query",
]


def shared_words(text: str, reference: str | Sequence[str]) -> list[str]:
    """Distinct tokens of ``text`` (``eci_core.text.tokenize``: lowercase ``\\w+``) that also
    occur in ``reference`` (one text or several, e.g. all positives), in order of first
    appearance in ``text``: the words to highlight."""
    from eci_core.text import tokenize

    refs = [reference] if isinstance(reference, str) else list(reference)
    ref_tokens: set[str] = set()
    for r in refs:
        ref_tokens.update(tokenize(r))
    return [t for t in dict.fromkeys(tokenize(text)) if t in ref_tokens]


def highlight_html(text: str, words: Iterable[str], tag: str = "mark") -> str:
    """``text`` HTML-escaped, with every token (``\\w+``, compared lowercase as
    ``eci_core.text.tokenize`` does) that is in ``words`` wrapped in ``<mark>…</mark>``: the
    drill-down's highlighting of words shared with the positive."""
    import html
    import re

    wanted = {w.lower() for w in words}
    out, last = [], 0
    for m in re.finditer(r"\w+", text):
        if m.group().lower() in wanted:
            out.append(html.escape(text[last : m.start()]))
            out.append(f"<{tag}>{html.escape(m.group())}</{tag}>")
            last = m.end()
    out.append(html.escape(text[last:]))
    return "".join(out)


@dataclass
class DrillDown:
    """Everything the Query drill-down shows for one query.

    ``negatives`` has one row per (source, negative), ranked by ``s_qn`` descending within each
    source: ``source, rank_by_sim, rank, passage_id, text, s_qn, margin, s_pn, lex_overlap,
    ce_margin, flagged, flag_reasons, percpos, fn_score, fn_band, shared_words``; ``metrics``: the query's
    rows of the queries table (one per source).
    """

    query_id: str
    query: str
    positive_ids: list[str]
    positives: list[str]
    negatives: pd.DataFrame
    metrics: pd.DataFrame = field(default_factory=pd.DataFrame)


def query_drilldown(
    collection: Any, result: Any, query_id: str, sources: Sequence[str] | None = None
) -> DrillDown:
    """Rows of one query for the drill-down page (see :class:`DrillDown`). ``collection`` gives
    the texts; ``result`` the pairs and queries tables."""
    qid = str(query_id)
    try:
        qi = collection.query_index(qid)
    except KeyError:
        raise ValueError(
            f"query_id={qid!r} is not in the collection ({collection.n_queries} queries loaded)"
        ) from None
    pos_idx = list(collection.positives.get(qi, []))
    pos_texts = [collection.passage_texts[i] for i in pos_idx]
    pairs = result_table(result, "pairs")
    p = rows_of(pairs, "query_id", qid)
    if sources is not None:
        p = p[p["source"].astype(str).isin([str(s) for s in sources])]
    order = source_order(p, None)
    frames = []
    for s in order:
        ps = (
            p[p["source"].astype(str).to_numpy() == s]
            .sort_values("s_qn", ascending=False, kind="stable")
            .copy()
        )
        ps.insert(1, "rank_by_sim", np.arange(1, len(ps) + 1))
        frames.append(ps)
    neg = pd.concat(frames, ignore_index=True) if frames else p.iloc[0:0].copy()
    texts = (
        [collection.passage_texts[collection.passage_index(str(pid))] for pid in neg["passage_id"]]
        if len(neg)
        else []
    )
    neg["text"] = texts
    neg["shared_words"] = [shared_words(t, pos_texts) for t in texts]
    cols = [
        "source",
        "rank_by_sim",
        "rank",
        "passage_id",
        "text",
        "s_qn",
        "margin",
        "s_pn",
        "lex_overlap",
        "ce_margin",
        "flagged",
        "flag_reasons",
        "percpos",
        "fn_score",
        "fn_band",
        "shared_words",
    ]
    neg = neg[[c for c in cols if c in neg.columns]].reset_index(drop=True)
    qt = result_table(result, "queries")
    met = rows_of(qt, "query_id", qid)
    if sources is not None:
        met = met[met["source"].astype(str).isin([str(s) for s in sources])]
    return DrillDown(
        query_id=qid,
        query=collection.query_texts[qi],
        positive_ids=[collection.passage_ids[i] for i in pos_idx],
        positives=pos_texts,
        negatives=neg,
        metrics=met.reset_index(drop=True),
    )


def scored_query_mask(collection: Any, result: Any) -> np.ndarray:
    """Boolean mask over the collection's query indices: queries with a row in ``result.queries``."""
    q = result_table(result, "queries")

    def build() -> np.ndarray:
        ids = pd.Index(list(collection.query_ids))
        pos = ids.get_indexer(pd.unique(q["query_id"].astype(str)))
        mask = np.zeros(collection.n_queries, dtype=bool)
        mask[pos[pos >= 0]] = True
        return mask

    return memo(q, ("scored_mask", id(collection), collection.n_queries), build)


def search_queries(collection: Any, text: str, result: Any = None, limit: int = 20) -> tuple[list[str], int]:
    """Query ids matching ``text`` and how many match in all, for a search box.

    Case-insensitive. Order: the query whose id equals ``text``; then ids containing it; then
    queries whose text contains every word of ``text`` (in collection order). With ``result``
    only queries scored in it are searched. At most ``limit`` ids are returned; vectorised over
    the query texts (lowercased once per collection), so it stays fast with a million queries."""
    needle = str(text or "").strip().lower()
    if not needle:
        return [], 0
    if limit < 1:
        raise ValueError(f"limit={limit}: must be >= 1 (e.g. 20)")
    ids = memo(
        collection,
        ("ids_lower", collection.n_queries),
        lambda: pd.Series(list(collection.query_ids), dtype=object).str.lower(),
    )
    texts = memo(
        collection,
        ("texts_lower", collection.n_queries),
        lambda: pd.Series(list(collection.query_texts), dtype=object).str.lower(),
    )
    allowed = scored_query_mask(collection, result) if result is not None else np.ones(len(ids), dtype=bool)
    exact = (ids == needle).to_numpy() & allowed
    in_id = ids.str.contains(needle, regex=False).to_numpy() & allowed & ~exact
    in_text = allowed & ~exact & ~in_id
    for w in needle.split():
        in_text &= texts.str.contains(w, regex=False).to_numpy()
    order = np.concatenate([np.flatnonzero(exact), np.flatnonzero(in_id), np.flatnonzero(in_text)])
    qids = collection.query_ids
    return [str(qids[i]) for i in order[:limit]], int(order.size)


def query_choices(
    collection: Any, result: Any, search: str = "", current: str | None = None, limit: int = 20
) -> tuple[list[str], str]:
    """The options of the drill-down's query picker and a caption for them.

    With ``search``: the first ``limit`` scored queries :func:`search_queries` finds. Without:
    ``current`` (when it is a scored query) followed by the ``limit`` queries with the lowest ECI
    (:func:`worst_queries`). The picker never lists every query (a million options would be sent
    to the browser on every run)."""
    n_scored = int(scored_query_mask(collection, result).sum())
    if str(search or "").strip():
        ids, n = search_queries(collection, search, result=result, limit=limit)
        more = f"; refine the search to see the other {n - len(ids):,}" if n > len(ids) else ""
        return ids, f"{n:,} of {n_scored:,} queries match{more}"
    ids = worst_queries(result, n=limit)["query_id"].astype(str).tolist()
    if current and str(current) not in ids and collection.has_query(str(current)):
        if scored_query_mask(collection, result)[collection.query_index(str(current))]:
            ids.insert(0, str(current))
    return ids, f"the {min(limit, n_scored):,} lowest-ECI of {n_scored:,} queries; search to find any other"


def worst_queries(result: Any, source: str | None = None, n: int = 10) -> pd.DataFrame:
    """The ``n`` queries with the lowest ECI_q (ties: lower Δ, then lower S, then query id).

    With ``source=None`` queries are ranked by their mean ECI_q over the sources that cover them
    (columns ``query_id, eci, delta, S, n_sources``); with a source, that source's queries rows."""
    q = result_table(result, "queries")
    require_columns(q, ("source", "query_id", "eci"), "queries")
    if source is not None and str(source) not in source_order(q, None):
        raise ValueError(f"unknown source {source!r}; known: {', '.join(source_order(q, None))}")
    ranked = memo(
        q, ("worst_queries", None if source is None else str(source)), lambda: _rank_worst(q, source)
    )
    return ranked.head(n).reset_index(drop=True)


def _rank_worst(q: pd.DataFrame, source: str | None) -> pd.DataFrame:
    if source is not None:
        t = rows_of(q, "source", source)
    else:
        agg = {"eci": ("eci", "mean"), "n_sources": ("source", "nunique")}
        if "delta" in q.columns:
            agg["delta"] = ("delta", "mean")
        if "S" in q.columns:
            agg["S"] = ("S", "mean")
        t = q.groupby("query_id", sort=False).agg(**agg).reset_index()
    keys = [c for c in ("eci", "delta", "S", "query_id") if c in t.columns]
    return t.sort_values(keys, kind="stable").reset_index(drop=True)


def worst_query(result: Any, source: str | None = None) -> str | None:
    """The id of the query with the lowest ECI (see :func:`worst_queries`); None when no query."""
    t = worst_queries(result, source, n=1)
    return None if t.empty else str(t["query_id"].iloc[0])
