"""Cleaned sets: apply a flag rule (and a reviewer's marks) to a scored source, and plan how they
are written (the writers are in :mod:`eci_core.io.formats`, one per format, and
:func:`eci_core.io.export.export_bytes` picks one by the Export page's name).

Rules (``clean_collection(..., rule=...)``), applied per source to the flags of ``result.pairs``:

* ``"drop_flagged"``: remove every flagged negative (any rule: unsafe, near_duplicate,
  cross_encoder).
* ``"relabel_flagged"``: move every flagged negative to the query's positives (for data whose
  flags were checked: most unsafe negatives are hard negatives, not missed positives).
* ``"drop_unsafe_queries"``: remove every query that still has an unsafe negative (margin ≤ 0);
  the other queries keep all their negatives.
* ``"drop_fn_score"`` / ``"relabel_fn_score"``: remove, or move to the positives, every negative
  whose false-negative score (``fn_score``, :mod:`eci_core.metrics.false_negatives`) is ≥
  ``fn_threshold`` (default 0.5, the ``likely`` band).

Reviewer marks override the rules: ``marks[(source, query_id, passage_id)]`` is ``"fine"`` (a
real negative: kept even when flagged, and it no longer makes its query unsafe) or
``"false_negative"`` (removed under ``drop_*`` and moved to the positives under
``relabel_flagged``, even when no rule flagged it). Queries left without any negative are dropped
(``drop_empty=True``): no training format can use them.

Writers (in ``eci_core.io.formats``: ``sentence_transformers``, ``bge``, ``tevatron``) return
``bytes`` (UTF-8 text for JSONL/CSV) ready for a download button or a file.
Every writer keeps every kept negative and every query (read back with ECI Explorer's own
loader, a file gives the counts :meth:`CleanedSet.summary` reports):

* ``to_st_ntuple``: sentence-transformers ``n-tuple`` (``query, positive, negative_1 …
  negative_n``). sentence-transformers needs the same ``n`` on every row, and sets are ragged, so
  a query's negatives are written in rank order in chunks of ``n``, one row per (query, positive,
  chunk); when ``K`` is not a multiple of ``n`` the query's last row is its last ``n`` negatives
  (it overlaps the row before: every row holds ``n`` distinct negatives, and
  :func:`ntuple_plan` counts the repeated cells). ``n`` defaults to the smallest ``K`` over the
  exported queries (``ntuple_size``), so nothing is left out; with a larger ``n`` the
  queries with fewer negatives are left out (as ``mine_hard_negatives`` does) and
  :func:`ntuple_plan` says how many. Rows are never padded with repeats of one negative.
* ``to_st_triplet``: ``query, positive, negative``, one row per (query, positive, negative).
* Both sentence-transformers writers add a ``query_id`` column when two exported queries share
  the same text (``ids=None``, the default; ``True``/``False`` force it): without it the two
  would read back as one query. sentence-transformers would tokenize that column as text, so
  drop it before training (``dataset.remove_columns("query_id")``).
* ``to_bge_jsonl``: FlagEmbedding ``{"query_id", "query", "pos": [...], "neg": [...]}``
  (FlagEmbedding reads ``query``, ``pos``, ``neg`` and ignores ``query_id``).
* ``to_tevatron_jsonl``: ``{"query_id", "query", "positive_passages": [{"docid", "title",
  "text"}], "negative_passages": [...]}``.
* :func:`eci_core.io.tables.table_bytes`: any table as CSV or Parquet. In CSV (tables and
  training sets alike) a text cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage
  return is prefixed with ``'`` so that spreadsheet tools show it instead of running it as a
  formula (:func:`eci_core.io.tables.escape_formula_cells`, used by every CSV the product writes;
  ``escape_formulas=False`` writes the cells as they are); JSONL and Parquet are exact.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Mapping, Sequence

import numpy as np
import pandas as pd

from eci_core.io.records import PassageRef, QueryRecord
from eci_core.io.texts import take_texts
from eci_core.io.formats.sentence_transformers import ntuple_chunks, ntuple_size, use_query_ids

__all__ = [
    "RULES",
    "FN_RULES",
    "RELABEL_RULES",
    "MARKS",
    "CleanedSet",
    "clean_collection",
    "ntuple_plan",
    "NTuplePlan",
]

Rule = Literal["drop_flagged", "relabel_flagged", "drop_unsafe_queries", "drop_fn_score", "relabel_fn_score"]
RULES = ("drop_flagged", "relabel_flagged", "drop_unsafe_queries", "drop_fn_score", "relabel_fn_score")
FN_RULES = ("drop_fn_score", "relabel_fn_score")
RELABEL_RULES = ("relabel_flagged", "relabel_fn_score")
MARKS = ("false_negative", "fine")
TableFormat = Literal["jsonl", "csv", "parquet"]


@dataclass
class CleanedSet:
    """The cleaned training data of one or more sources.

    ``records[source]`` is a list of :class:`~eci_core.io.records.QueryRecord` (query id and text,
    positives and negatives as ``PassageRef(id, text, miner score)``, negatives in rank order).
    ``actions`` logs one row per input negative (plus one per dropped query): ``source, query_id,
    passage_id, action, reason`` with ``action`` in ``kept``, ``dropped``, ``relabelled``,
    ``query dropped`` (negatives of dropped queries are logged ``dropped`` with the query's
    reason). ``unmatched_marks`` are mark keys of exported sources that match no negative.
    """

    rule: str
    records: dict[str, list[QueryRecord]]
    actions: pd.DataFrame
    unmatched_marks: list[tuple[str, str, str]] = field(default_factory=list)

    @property
    def sources(self) -> list[str]:
        return list(self.records)

    def summary(self) -> pd.DataFrame:
        """Per source: ``queries_in, queries_out, negatives_in, negatives_out, dropped,
        relabelled, positives_out`` (counts from ``actions`` and ``records``)."""
        rows = []
        for s, recs in self.records.items():
            a = self.actions[self.actions["source"] == s]
            neg = a[a["action"] != "query dropped"]
            rows.append(
                {
                    "source": s,
                    # queries with a negative, plus dropped queries without one: every query id logged
                    "queries_in": int(a["query_id"].nunique()),
                    "queries_out": len(recs),
                    "negatives_in": len(neg),
                    "negatives_out": sum(len(r.negatives) for r in recs),
                    "dropped": int((neg["action"] == "dropped").sum()),
                    "relabelled": int((neg["action"] == "relabelled").sum()),
                    "queries_dropped": int((a["action"] == "query dropped").sum()),
                    "positives_out": sum(len(r.positives) for r in recs),
                }
            )
        return pd.DataFrame(rows)

    def get(self, source: str | None = None) -> list[QueryRecord]:
        """The records of ``source`` (may be omitted when the set holds one source)."""
        if source is None:
            if len(self.records) != 1:
                raise ValueError(
                    f"this cleaned set holds {len(self.records)} sources "
                    f"({', '.join(self.records)}): pass source="
                )
            return next(iter(self.records.values()))
        if source not in self.records:
            raise ValueError(
                f"source={source!r} is not in the cleaned set; it holds: {', '.join(self.records)}"
            )
        return self.records[source]


def _check_marks(marks: Mapping | None) -> dict[tuple[str, str, str], str]:
    out: dict[tuple[str, str, str], str] = {}
    for key, val in (marks or {}).items():
        if not (isinstance(key, tuple) and len(key) == 3):
            raise ValueError(f"mark key {key!r}: use a (source, query_id, passage_id) tuple")
        if val not in MARKS:
            raise ValueError(f"mark {val!r} for {key}: use 'false_negative' or 'fine'")
        out[(str(key[0]), str(key[1]), str(key[2]))] = val
    return out


def _equals(col: pd.Series, value: str) -> np.ndarray:
    """``col.astype(str) == value`` without making a string per row of a categorical column."""
    if isinstance(col.dtype, pd.CategoricalDtype):
        k = col.cat.categories.astype(str).get_indexer([value])[0]
        return col.cat.codes.to_numpy() == k if k >= 0 else np.zeros(len(col), dtype=bool)
    return (col.astype(str) == value).to_numpy()


def _indexer(index: pd.Index, col: pd.Series) -> np.ndarray:
    """``index.get_indexer(col.astype(str))`` (−1: not in ``index``); a categorical column is looked
    up once per category, not once per row."""
    if isinstance(col.dtype, pd.CategoricalDtype):
        per_cat = np.r_[index.get_indexer(col.cat.categories.astype(str).to_numpy(dtype=object)), -1]
        return per_cat[col.cat.codes.to_numpy()]  # code −1 (missing) picks the trailing −1
    return index.get_indexer(col.astype(str).to_numpy(dtype=object))


def _shared_texts(texts: Sequence[str], indices: np.ndarray) -> list[str]:
    """``[texts[i] for i in indices]`` with one str per distinct index (a passage mined for several
    queries is one object, not one copy per negative)."""
    if not len(indices):
        return []
    uniq, inv = np.unique(np.asarray(indices, dtype=np.int64), return_inverse=True)
    got = take_texts(texts, uniq)
    return [got[i] for i in inv.tolist()]


def clean_collection(
    collection: Any,
    result: Any,
    rule: Rule = "drop_flagged",
    marks: Mapping[tuple[str, str, str], str] | None = None,
    sources: Sequence[str] | None = None,
    drop_empty: bool = True,
    fn_threshold: float = 0.5,
) -> CleanedSet:
    """Apply ``rule`` and the reviewer's ``marks`` to the scored sources (default: every source
    in ``result.pairs``) and return a :class:`CleanedSet` (see the module docstring for the
    rules and how marks override them).

    The negatives come from ``collection.sources[s]`` in rank order; their flags from
    ``result.pairs`` joined on (source, query_id, passage_id). A negative of the collection
    missing from the pairs table is an error (the result belongs to another collection), except
    a later copy of a text already among the query's negatives, which scoring does not score and
    the export drops.
    """
    if rule not in RULES:
        raise ValueError(f"rule={rule!r}: use one of {', '.join(RULES)}")
    if rule in FN_RULES and not 0.0 <= float(fn_threshold) <= 1.0:
        raise ValueError(
            f"fn_threshold={fn_threshold!r}: use a false-negative score between 0 and 1 (e.g. 0.5)"
        )
    mk = _check_marks(marks)
    pairs = result.pairs if hasattr(result, "pairs") else result
    scored = [str(x) for x in pd.unique(pairs["source"])] if len(pairs) else []  # order of appearance
    names = scored if sources is None else [str(s) for s in sources]
    for s in names:
        if s not in collection.sources:
            raise ValueError(
                f"source {s!r} is not in the collection; loaded: {', '.join(collection.sources)}"
            )
    records: dict[str, list[QueryRecord]] = {}
    log_parts: list[pd.DataFrame] = []
    used_marks: set[tuple[str, str, str]] = set()
    q_index = pd.Index(np.asarray(collection.query_ids, dtype=object))
    p_index = pd.Index(np.asarray(collection.passage_ids, dtype=object))
    n_p = max(1, collection.n_passages)
    for s in names:
        src = collection.sources[s]
        ps = pairs[_equals(pairs["source"], s)]
        # join on integer (query index, passage index) codes rather than on id strings
        pq = _indexer(q_index, ps["query_id"])
        pp = _indexer(p_index, ps["passage_id"])
        ok = (pq >= 0) & (pp >= 0)
        pair_code = pd.Index(pq[ok].astype(np.int64) * n_p + pp[ok])
        flag_arr = ps["flagged"].fillna(False).to_numpy(dtype=bool)[ok]
        unsafe_arr = ps["unsafe"].fillna(False).to_numpy(dtype=bool)[ok]
        reason_arr = ps["flag_reasons"].fillna("").astype(str).to_numpy(dtype=object)[ok]
        if rule in FN_RULES:  # the "flag" is the false-negative score at or above the threshold
            if "fn_score" not in ps:
                raise ValueError(
                    f"rule={rule!r} needs the pairs table's fn_score column: score the collection again"
                )
            fs = ps["fn_score"].to_numpy(dtype=np.float64)[ok]
            flag_arr = fs >= float(fn_threshold)
            reason_arr = np.where(flag_arr, f"fn_score ≥ {float(fn_threshold):g}", "").astype(object)
        if not pair_code.is_unique:
            first = ~pair_code.duplicated()
            pair_code, flag_arr, unsafe_arr, reason_arr = (
                pair_code[first],
                flag_arr[first],
                unsafe_arr[first],
                reason_arr[first],
            )
        qids = np.asarray(collection.query_ids, dtype=object)[src.q_idx] if len(src) else np.zeros(0, object)
        pids = (
            np.asarray(collection.passage_ids, dtype=object)[src.p_idx] if len(src) else np.zeros(0, object)
        )
        k = src.q_idx.astype(np.int64) * n_p + src.p_idx
        pos = pair_code.get_indexer(k) if len(k) else np.zeros(0, np.int64)
        missing = pos < 0
        if missing.any():
            # scoring keeps the first negative of each (query, text); later copies are not scored
            scored_text = {
                (q, collection.passage_texts[pi]) for q, pi, m in zip(qids, src.p_idx, missing) if not m
            }
            for i in np.flatnonzero(missing):
                if (qids[i], collection.passage_texts[int(src.p_idx[i])]) not in scored_text:
                    raise ValueError(
                        f"source {s!r}: negative (query {qids[i]!r}, passage {pids[i]!r}) is not in "
                        "the scored pairs: score the collection again before exporting"
                    )
        safe = np.maximum(pos, 0)
        f = np.where(missing, False, flag_arr[safe]) if len(pair_code) else np.zeros(len(k), bool)
        u = np.where(missing, False, unsafe_arr[safe]) if len(pair_code) else np.zeros(len(k), bool)
        why = (
            np.where(missing, "duplicate text within the query (not scored)", reason_arr[safe]).astype(object)
            if len(pair_code)
            else np.full(len(k), "duplicate text within the query (not scored)", dtype=object)
        )
        mark = np.full(len(qids), "", dtype=object)
        if any(key[0] == s for key in mk):
            mark[:] = [mk.get((s, str(q), str(p)), "") for q, p in zip(qids, pids)]
            for q, p, m in zip(qids, pids, mark):
                if m:
                    used_marks.add((s, str(q), str(p)))
        fine = mark == "fine"
        fneg = mark == "false_negative"
        remove = fneg.copy()  # false negatives never stay negatives
        reason = np.where(fneg, "marked false negative", why).astype(object)
        if rule in ("drop_flagged", "relabel_flagged") + FN_RULES:
            remove |= f & ~fine
        fine_note = fine & f
        reason = np.array(
            [f"marked fine (kept despite: {w})" if fn else r for fn, w, r in zip(fine_note, why, reason)],
            dtype=object,
        )
        action = np.where(remove, "relabelled" if rule in RELABEL_RULES else "dropped", "kept").astype(object)
        if missing.any():  # unscored copies of a text already among the query's negatives
            action[missing] = "dropped"
            reason[missing] = "duplicate text within the query (not scored)"
        # queries dropped by the unsafe rule: any remaining unsafe negative not marked fine
        q_drop: dict[int, str] = {}
        if rule == "drop_unsafe_queries":
            bad = u & ~fine & ~remove
            for qi in np.unique(src.q_idx[bad]):
                q_drop[int(qi)] = "unsafe query (a negative has margin ≤ 0)"
        # build records (plain Python lists: indexing numpy scalars per row is slow). Texts and ids
        # are gathered once per source (one gather per Arrow block of a TextColumn, where reading
        # them one by one costs ~2 us each) and each distinct passage text is one str shared by
        # every record that holds it, as with a list-backed collection
        pid_l = pids.tolist()
        ptexts = _shared_texts(collection.passage_texts, src.p_idx)
        q_l = src.query_indices.tolist()
        qid_l = take_texts(collection.query_ids, q_l)
        qtext_l = take_texts(collection.query_texts, q_l)
        pos_idx = [collection.positives.get(qi, []) for qi in q_l]
        flat_pos = [p for ps_ in pos_idx for p in ps_]
        pos_id_of = dict(zip(flat_pos, take_texts(collection.passage_ids, flat_pos)))
        pos_text_of = dict(zip(flat_pos, take_texts(collection.passage_texts, flat_pos)))
        score_l = [None if v != v else v for v in src.score.tolist()]  # NaN → None
        relabel_any = bool((action == "relabelled").any())
        recs: list[QueryRecord] = []
        qd_rows = []
        starts = np.searchsorted(src.q_idx, src.query_indices, side="left")
        ends = np.searchsorted(src.q_idx, src.query_indices, side="right")
        for qn, (qi, a, b) in enumerate(zip(q_l, starts.tolist(), ends.tolist())):
            qid = qid_l[qn]
            if qi in q_drop:
                action[a:b] = "dropped"
                reason[a:b] = q_drop[qi]
                qd_rows.append((s, qid, "", "query dropped", q_drop[qi]))
                continue
            positives = [PassageRef(pos_id_of[p], pos_text_of[p], None) for p in pos_idx[qn]]
            negatives = [
                PassageRef(pid_l[j], ptexts[j], score_l[j]) for j in range(a, b) if action[j] == "kept"
            ]
            if relabel_any:
                have = {r.id for r in positives}
                for j in range(a, b):
                    if action[j] == "relabelled" and pid_l[j] not in have:
                        have.add(pid_l[j])
                        positives.append(PassageRef(pid_l[j], ptexts[j], None))
            if not negatives and drop_empty:
                qd_rows.append((s, qid, "", "query dropped", "no negative left"))
                continue
            recs.append(QueryRecord(qid, qtext_l[qn], positives, negatives))
        records[s] = recs
        log_parts.append(
            pd.DataFrame(
                {
                    "source": s,
                    "query_id": qids.astype(str),
                    "passage_id": pids.astype(str),
                    "action": action.astype(str),
                    "reason": reason.astype(str),
                }
            )
        )
        if qd_rows:
            log_parts.append(
                pd.DataFrame(qd_rows, columns=["source", "query_id", "passage_id", "action", "reason"])
            )
    actions = (
        pd.concat(log_parts, ignore_index=True)
        if log_parts
        else pd.DataFrame(columns=["source", "query_id", "passage_id", "action", "reason"])
    )
    unmatched = sorted(k for k in mk if k[0] in names and k not in used_marks)
    return CleanedSet(rule=rule, records=records, actions=actions, unmatched_marks=unmatched)


@dataclass(frozen=True)
class NTuplePlan:
    """What :func:`to_st_ntuple` writes for one ``n`` (the Export page shows it).

    ``rows`` lines of ``n`` negatives each; ``queries`` written and ``negatives`` (distinct
    (query, negative) pairs) written; ``queries_left_out`` / ``negatives_left_out``: queries
    with fewer than ``n`` negatives and their negatives; ``repeated_cells``: negative cells that
    repeat a negative already written for the same (query, positive) because the query's last
    row overlaps the one before; ``query_id``: whether the file has a ``query_id`` column."""

    n: int
    rows: int
    queries: int
    negatives: int
    queries_left_out: int
    negatives_left_out: int
    repeated_cells: int
    query_id: bool


def ntuple_plan(
    cleaned: CleanedSet, source: str | None = None, n: int | None = None, ids: bool | None = None
) -> NTuplePlan:
    """Counts of the file :func:`to_st_ntuple` writes with the same arguments (no bytes built)."""
    recs = cleaned.get(source)
    n = ntuple_size(cleaned, source) if n is None else int(n)
    rows = queries = negs = q_out = n_out = repeated = 0
    for r in recs:
        k = len(r.negatives)
        if n < 1 or k < n:
            q_out += 1
            n_out += k
            continue
        ch = ntuple_chunks(k, n)
        queries += 1
        negs += k
        rows += len(ch) * len(r.positives)
        repeated += (len(ch) * n - k) * len(r.positives)
    return NTuplePlan(n, rows, queries, negs, q_out, n_out, repeated, use_query_ids(recs, ids))
