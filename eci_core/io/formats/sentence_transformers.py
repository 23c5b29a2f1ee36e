"""sentence-transformers ``mine_hard_negatives`` outputs: ``st-triplet``, ``st-ntuple``,
``st-labeled-pair``, ``st-labeled-list``.

The four formats share the column rules (:func:`_st_columns`: the anchor, positive and query-id
columns are detected by name, else by position) and the grouping of rows by query (:class:`_QB`);
each has one row reader in :data:`ROW_READERS` and one detector (:data:`DETECTORS`). Writers:
:func:`to_st_ntuple`, :func:`to_st_triplet` (with :func:`ntuple_chunks`, :func:`ntuple_size`,
:func:`shared_query_texts`, used by :func:`eci_core.io.cleaning.ntuple_plan` too).

Column names: the miner keeps the user's anchor and positive column names, so they are detected,
not assumed: a known anchor name (``anchor``, ``query``, ``question`` …) or else the first
remaining column, and a known positive name (``positive``, ``pos``, ``answer``, ``passage`` …) or
else the next one. A column named ``query_id``/``qid``/``query-id`` is the query id. Rows are
grouped by query: a repeated anchor means several positives. The miner repeats a query's
negatives once per positive (triplet, n-tuple, labeled-list); those repeats are merged (multiset
union over the query's positives). ``st-labeled-pair`` with ``score`` instead of ``label``: the
first row of each query is its positive (the report notes it, :data:`SCORE_ONLY_NOTE`).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterator, Literal, Sequence

from eci_core.io.records import LoadError, PassageRef, QueryRecord
from eci_core.io.read.rows import peek
from eci_core.io.read.values import (
    id_value,
    maybe_list,
    need_field,
    num_list,
    num_value,
    present,
    text_list,
    text_value,
    unexpected_error,
)
from eci_core.io.read.vocab import NEG_N, field_names

ANCHOR_NAMES = (
    "anchor",
    "query",
    "question",
    "queries",
    "questions",
    "q",
    "search_query",
    "sentence1",
    "sentence_1",
    "sentence_a",
    "sentence_A",
    "text1",
    "text_1",
    "query_text",
    "input",
    "prompt",
)


POSITIVE_NAMES = (
    "positive",
    "pos",
    "positives",
    "answer",
    "answers",
    "passage",
    "passages",
    "document",
    "documents",
    "doc",
    "docs",
    "context",
    "response",
    "sentence2",
    "sentence_2",
    "sentence_b",
    "sentence_B",
    "text2",
    "text_2",
    "text",
    "positive_passage",
    "pos_text",
    "target",
)


QUERY_ID_NAMES = ("query_id", "qid", "query-id")  # not "id": often a row id, which would split queries


# never taken as the anchor/positive by position: row ids and pandas index columns
INDEX_COLUMNS = {"", "id", "_id", "idx", "index", "row", "row_id", "__index_level_0__", "Unnamed: 0"}


ROLE_COLUMNS = {"negative", "scores", "score", "label", "labels"}


TableFormat = Literal["jsonl", "csv", "parquet"]
SCORE_ONLY_NOTE = "labeled-pair without 'label': first row of each query taken as its only positive"


# ====================================================================== reading
@dataclass
class _QB:
    """One query being assembled from several rows of an id-less (sentence-transformers) file."""

    qid: str | None
    query: str
    line: int
    positives: dict[str, float | None] = field(default_factory=dict)
    groups: dict[Any, list[tuple[str, float | None]]] = field(default_factory=dict)

    def record(self) -> QueryRecord:
        # multiset union over the positive groups: the miner repeats one list per positive
        final: list[PassageRef] = []
        have: Counter = Counter()
        for negs in self.groups.values():
            c: Counter = Counter()
            for t, s in negs:
                c[t] += 1
                if c[t] > have[t]:
                    have[t] += 1
                    final.append(PassageRef(None, t, s))
        pos = [PassageRef(None, t, s) for t, s in self.positives.items()]
        return QueryRecord(self.qid, self.query, pos, final, self.line)


def _st_columns(path: str, line: int, row: dict, fmt: str) -> tuple[str, str, str | None]:
    """(anchor column, positive/passage column, query-id column or None) of an ST file."""
    cols = [str(c) for c in row]
    qid_col = next((c for c in QUERY_ID_NAMES if c in cols), None)
    rest = [
        c
        for c in cols
        if c not in ROLE_COLUMNS and not NEG_N.match(c) and c != qid_col and c not in INDEX_COLUMNS
    ]
    anchor = next((c for c in ANCHOR_NAMES if c in rest), rest[0] if rest else None)
    if anchor is None:
        raise LoadError(
            path,
            line,
            f"no anchor (query) column for {fmt}: expected one of "
            f"{', '.join(ANCHOR_NAMES[:4])}… (fields found: {field_names(cols)})",
            field="anchor",
        )
    rest = [c for c in rest if c != anchor]
    if fmt == "st-labeled-list":
        lists = [c for c in rest if maybe_list(row[c])]
        rest = lists or rest
    positive = next((c for c in POSITIVE_NAMES if c in rest), rest[0] if rest else None)
    if positive is None:
        what = "passage" if fmt in ("st-labeled-pair", "st-labeled-list") else "positive"
        raise LoadError(
            path,
            line,
            f"no {what} column for {fmt}: expected one of "
            f"{', '.join(POSITIVE_NAMES[:4])}… (fields found: {field_names(cols)})",
            field=what,
        )
    return anchor, positive, qid_col


@dataclass(frozen=True)
class _Cols:
    """The columns of one file: anchor, positive (or passage/list), query id, negative_<n>, labels."""

    anchor: str
    positive: str
    qid: str | None
    negatives: tuple[str, ...]
    use_labels: bool


def _triplet_row(path: str, line: int, row: dict, b: _QB, new: bool, c: _Cols) -> None:
    p = text_value(path, line, need_field(path, line, row, c.positive), c.positive)
    neg = text_value(path, line, need_field(path, line, row, "negative"), "negative")
    ps = ns = None
    if present(row.get("scores")):
        ps, ns = num_list(path, line, row["scores"], "scores", 2, "[positive score, negative score]")
    b.positives.setdefault(p, ps)
    b.groups.setdefault(p, []).append((neg, ns))


def _ntuple_row(path: str, line: int, row: dict, b: _QB, new: bool, c: _Cols) -> None:
    p = text_value(path, line, need_field(path, line, row, c.positive), c.positive)
    negs = [text_value(path, line, need_field(path, line, row, k), k) for k in c.negatives]
    sc: list[float | None] = [None] * (len(negs) + 1)
    if present(row.get("scores")):
        sc = num_list(
            path,
            line,
            row["scores"],
            "scores",
            len(negs) + 1,
            f"1 positive score + {len(negs)} negative scores",
        )
    b.positives.setdefault(p, sc[0])
    # the same (anchor, positive) on two rows is one list (its repeats are duplicates)
    b.groups.setdefault(p, []).extend(zip(negs, sc[1:]))


def _labeled_pair_row(path: str, line: int, row: dict, b: _QB, new: bool, c: _Cols) -> None:
    t = text_value(path, line, need_field(path, line, row, c.positive), c.positive)
    if c.use_labels:
        is_pos = num_value(path, line, need_field(path, line, row, "label"), "label") > 0
        s = num_value(path, line, row["score"], "score") if present(row.get("score")) else None
    else:
        s = num_value(path, line, need_field(path, line, row, "score"), "score")
        is_pos = new  # the miner writes a query's positive first
    if is_pos:
        b.positives.setdefault(t, s)
    else:
        b.groups.setdefault(None, []).append((t, s))


def _labeled_list_row(path: str, line: int, row: dict, b: _QB, new: bool, c: _Cols) -> None:
    positive = c.positive
    docs = text_list(path, line, need_field(path, line, row, positive), positive)
    if not docs:
        raise LoadError(path, line, "empty list; expected [positive, negative, …]", field=positive)
    each = f"one per item of '{positive}'"
    if c.use_labels:
        labels = num_list(path, line, need_field(path, line, row, "labels"), "labels", len(docs), each)
        scores: list[float | None] = [None] * len(docs)
        if present(row.get("scores")):
            scores = num_list(path, line, row["scores"], "scores", len(docs), each)
    else:
        scores = num_list(path, line, need_field(path, line, row, "scores"), "scores", len(docs), each)
        labels = [1.0] + [0.0] * (len(docs) - 1)
    pos_here = []
    negs_here = []
    for d, lab, s in zip(docs, labels, scores):
        if lab > 0:
            pos_here.append(d)
            b.positives.setdefault(d, s)
        else:
            negs_here.append((d, s))
    b.groups.setdefault(tuple(pos_here), []).extend(negs_here)


#: per format, how one row adds to its query: ``reader(path, line, row, query, new query?, columns)``
ROW_READERS = {
    "st-triplet": _triplet_row,
    "st-ntuple": _ntuple_row,
    "st-labeled-pair": _labeled_pair_row,
    "st-labeled-list": _labeled_list_row,
}
#: the label column of the labeled formats (when absent, the scores decide)
LABEL_COLUMN = {"st-labeled-pair": "label", "st-labeled-list": "labels"}


def parse_st(
    path: str, fmt: str, rows: Iterator[tuple[int, dict]]
) -> tuple[list[QueryRecord], int, dict[str, int]]:
    """The records of a sentence-transformers file of format ``fmt`` (one of :data:`ROW_READERS`),
    rows grouped by (query id, anchor); returns the records, the rows read and the notes."""
    (line0, row0), rows = peek(rows)
    anchor, positive, qid_col = _st_columns(path, line0, row0, fmt)
    neg_cols: list[str] = []
    if fmt == "st-ntuple":
        neg_cols = sorted(
            (c for c in map(str, row0) if NEG_N.match(c)), key=lambda c: int(NEG_N.match(c).group(1))
        )
        if not neg_cols:
            raise LoadError(
                path,
                line0,
                f"missing required field (fields found: {field_names(row0)})",
                field="negative_1",
            )
    use_labels = LABEL_COLUMN.get(fmt, "labels") in row0
    cols = _Cols(anchor, positive, qid_col, tuple(neg_cols), use_labels)
    add_row = ROW_READERS[fmt]
    builders: dict[tuple[str | None, str], _QB] = {}
    n = 0
    line = None
    try:
        for line, row in rows:
            n += 1
            a = text_value(path, line, need_field(path, line, row, anchor), anchor)
            qid = (
                id_value(path, line, row[qid_col], qid_col) if qid_col and present(row.get(qid_col)) else None
            )
            key = (qid, a) if qid is not None else (None, a)
            b = builders.get(key)
            new = b is None
            if new:
                b = builders[key] = _QB(qid, a, line)
            add_row(path, line, row, b, new, cols)
    except LoadError:
        raise
    except Exception as err:  # any failure inside a record: one line at that record
        raise unexpected_error(path, line, err) from None
    notes = {}
    if fmt == "st-labeled-pair" and not use_labels:
        notes[SCORE_ONLY_NOTE] = len(builders)
    return [b.record() for b in builders.values()], n, notes


def parse_triplet(path: str, rows: Iterator[tuple[int, dict]]):
    return parse_st(path, "st-triplet", rows)


def parse_ntuple(path: str, rows: Iterator[tuple[int, dict]]):
    return parse_st(path, "st-ntuple", rows)


def parse_labeled_pair(path: str, rows: Iterator[tuple[int, dict]]):
    return parse_st(path, "st-labeled-pair", rows)


def parse_labeled_list(path: str, rows: Iterator[tuple[int, dict]]):
    return parse_st(path, "st-labeled-list", rows)


# ---------------------------------------------------------------------- detectors
def detect_ntuple(row: dict) -> bool:
    return any(NEG_N.match(str(k)) for k in row)


def detect_triplet(row: dict) -> bool:
    return "negative" in row


def detect_labeled_list(row: dict) -> bool:
    if "labels" in row:
        return True
    return "scores" in row and any(maybe_list(row[k]) for k in row if k != "scores")


def detect_labeled_pair(row: dict) -> bool:
    return "label" in row or "score" in row


#: field names sentence-transformers messages may show
KNOWN_FIELDS = ANCHOR_NAMES + POSITIVE_NAMES + QUERY_ID_NAMES + tuple(INDEX_COLUMNS) + tuple(ROLE_COLUMNS)


# ---------------------------------------------------------------------- writers
def shared_query_texts(records: Sequence[QueryRecord]) -> int:
    """How many of ``records`` share their query text with another record (they would read back
    as one query from a file without ids)."""
    c = Counter(r.query for r in records)
    return sum(v for v in c.values() if v > 1)


def use_query_ids(records: Sequence[QueryRecord], ids: bool | None) -> bool:
    """Whether a file of ``records`` needs a ``query_id`` column (``ids=None``: only when two
    records share a query text)."""
    return shared_query_texts(records) > 0 if ids is None else bool(ids)


def ntuple_size(cleaned: Any, source: str | None = None) -> int:
    """The default ``n`` of :func:`to_st_ntuple`: the smallest number of negatives over the
    source's exported queries (0 when it has none), so that every query fills a row."""
    recs = cleaned.get(source)
    ks = [len(r.negatives) for r in recs if r.negatives]
    return min(ks) if ks else 0


def ntuple_chunks(k: int, n: int) -> list[tuple[int, int]]:
    """(start, end) of each row's negatives: chunks of ``n`` in rank order, the last one moved
    back to end at ``k`` when ``k`` is not a multiple of ``n``."""
    out = [(i, i + n) for i in range(0, k - n + 1, n)]
    if k % n:
        out.append((k - n, k))
    return out


def _rows_bytes(rows: list[dict], columns: list[str], fmt: str) -> bytes:
    if fmt == "jsonl":
        return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")
    from eci_core.io.tables import rows_table_bytes  # pandas: only for CSV / Parquet

    return rows_table_bytes(rows, columns, fmt)


def to_st_ntuple(
    cleaned: Any,
    source: str | None = None,
    n: int | None = None,
    fmt: TableFormat = "jsonl",
    anchor_column: str = "query",
    positive_column: str = "positive",
    ids: bool | None = None,
) -> bytes:
    """sentence-transformers ``n-tuple`` rows ``{[query_id,] anchor, positive, negative_1 …
    negative_n}``: one per (query, positive, chunk of ``n`` negatives in rank order); the last
    chunk of a query whose ``K`` is not a multiple of ``n`` is its last ``n`` negatives.

    ``cleaned``: a :class:`~eci_core.io.cleaning.CleanedSet`. ``n=None`` uses :func:`ntuple_size`
    (every query and every negative written). A query with fewer than ``n`` negatives is left out
    (like ``mine_hard_negatives``); :func:`eci_core.io.cleaning.ntuple_plan` counts what is written
    and left out. ``ids``: add the ``query_id`` column (``None``: only when two exported queries
    share a text). ``fmt``: ``jsonl`` (default), ``csv`` or ``parquet``."""
    recs = cleaned.get(source)
    if n is None:
        n = ntuple_size(cleaned, source)
    n = int(n)
    if n < 1:
        raise ValueError(
            f"n={n}: an n-tuple needs at least one negative per row (e.g. n=1); "
            "the cleaned set may have no negatives left"
        )
    with_ids = use_query_ids(recs, ids)
    cols = (
        (["query_id"] if with_ids else [])
        + [anchor_column, positive_column]
        + [f"negative_{i}" for i in range(1, n + 1)]
    )
    rows = []
    for r in recs:
        k = len(r.negatives)
        if k < n:
            continue
        head = [r.query_id] if with_ids else []
        chunks = [[x.text for x in r.negatives[a:b]] for a, b in ntuple_chunks(k, n)]
        for p in r.positives:
            for negs in chunks:
                rows.append(dict(zip(cols, [*head, r.query, p.text, *negs])))
    return _rows_bytes(rows, cols, fmt)


def to_st_triplet(
    cleaned: Any,
    source: str | None = None,
    fmt: TableFormat = "jsonl",
    anchor_column: str = "query",
    positive_column: str = "positive",
    ids: bool | None = None,
) -> bytes:
    """sentence-transformers ``triplet`` rows ``{[query_id,] anchor, positive, negative}``: one
    per (query, positive, negative), negatives in rank order. ``ids``: add the ``query_id``
    column (``None``: only when two exported queries share a text). ``fmt``: jsonl, csv or parquet."""
    recs = cleaned.get(source)
    with_ids = use_query_ids(recs, ids)
    cols = (["query_id"] if with_ids else []) + [anchor_column, positive_column, "negative"]
    rows = [
        dict(zip(cols, ((r.query_id,) if with_ids else ()) + (r.query, p.text, n.text)))
        for r in recs
        for p in r.positives
        for n in r.negatives
    ]
    return _rows_bytes(rows, cols, fmt)


def write_ntuple(cleaned: Any, source: str | None = None, n: int | None = None) -> bytes:
    """The registry's n-tuple writer."""
    return to_st_ntuple(cleaned, source, n=n)


def write_triplet(cleaned: Any, source: str | None = None, n: int | None = None) -> bytes:
    """The registry's triplet writer (``n`` unused)."""
    return to_st_triplet(cleaned, source)
