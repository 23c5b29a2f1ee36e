"""What every format's reader shares: records into a collection.

* :func:`parse_rows`: one :class:`~eci_core.io.records.QueryRecord` per row (BGE, Tevatron), any
  failure inside a record one line at that record.
* :func:`add_records`: a parsed file's records added as one source (negatives per query capped by
  :class:`~eci_core.io.read.limits.LoadLimits`, ids given with another text counted), whole or not
  at all.
* :func:`passage_refs`: PassageRefs built fast.
"""

from __future__ import annotations

from typing import Callable, Iterator

from eci_core.io.collection import Collection
from eci_core.io.records import LoadError, PassageRef, QueryRecord, SourceReport
from eci_core.io.read.limits import current_limits
from eci_core.io.read.values import unexpected_error

tuple_new = tuple.__new__


def passage_refs(texts: list[str], scores: list | None = None, ids: list | None = None) -> list[PassageRef]:
    """PassageRefs built without NamedTuple's Python-level ``__new__`` (hot path)."""
    if ids is None and scores is None:
        return [tuple_new(PassageRef, (None, t, None)) for t in texts]
    if ids is None:
        return [tuple_new(PassageRef, (None, t, s)) for t, s in zip(texts, scores)]
    if scores is None:
        return [tuple_new(PassageRef, (i, t, None)) for i, t in zip(ids, texts)]
    return [tuple_new(PassageRef, (i, t, s)) for i, t, s in zip(ids, texts, scores)]


def parse_rows(
    path: str, rows: Iterator[tuple[int, dict]], record: Callable[[str, int, dict], QueryRecord]
) -> tuple[list[QueryRecord], int, dict[str, int]]:
    """One :class:`QueryRecord` per row from ``record(path, line, row)``; any failure inside a
    record becomes one line at that record. Returns the records, the rows read and no notes."""
    out: list[QueryRecord] = []
    n = 0
    line = None
    try:
        for line, row in rows:
            n += 1
            out.append(record(path, line, row))
    except LoadError:
        raise
    except Exception as err:  # any failure inside a record: one line at that record
        raise unexpected_error(path, line, err) from None
    return out, n, {}


# ====================================================================== reports
def _conflict_notes(
    collection: Collection, records: list[QueryRecord], rep: SourceReport, passages: bool
) -> None:
    """Count ids that arrive with a text other than the one already known (first text is kept).

    ``passages=False`` for formats whose passages never carry ids (their id is the text's hash)."""
    seen_p: dict[str, str] = {}
    seen_q: dict[str, str] = {}
    np_, nq = 0, 0
    for rec in records:
        if rec.query_id is not None:
            qid = str(rec.query_id)
            old = seen_q.get(qid)
            if old is None:
                old = (
                    collection.query_texts[collection.query_index(qid)]
                    if collection.has_query(qid)
                    else rec.query
                )
                seen_q[qid] = old
            if old != rec.query:
                nq += 1
        if not passages:
            continue
        for ref in (*rec.positives, *rec.negatives):
            if ref.id is None:
                continue
            old = seen_p.get(ref.id)
            if old is None:
                old = (
                    collection.passage_texts[collection.passage_index(ref.id)]
                    if collection.has_passage(ref.id)
                    else ref.text
                )
                seen_p[ref.id] = old
            if old != ref.text:
                np_ += 1
    rep.note("passage id given with a different text (first text kept)", np_)
    rep.note("query id given with a different text (first text kept)", nq)


def check_cap(records: list[QueryRecord], path: str) -> None:
    """LoadLimits.max_negatives_per_query, checked before anything is added."""
    cap = current_limits().max_negatives_per_query
    for rec in records:
        if len(rec.negatives) > cap:
            raise LoadError(
                path,
                rec.line,
                f"{len(rec.negatives):,} negatives for one query, more than "
                f"{cap:,} (LoadLimits.max_negatives_per_query, env ECI_MAX_NEGATIVES_PER_QUERY)",
                field="negatives",
            )


def add_records(
    collection: Collection,
    name: str,
    records: list[QueryRecord],
    path: str,
    fmt: str,
    rows: int,
    notes: dict[str, int] | None = None,
    passage_ids: bool = True,
) -> SourceReport:
    """Add ``records`` (parsed from ``path``, ``rows`` rows read) as the source ``name``; returns its
    report. ``passage_ids=False`` for formats whose passages never carry ids."""
    check_cap(records, path)
    rep = SourceReport(source=name, path=path, format=fmt)
    for k, v in (notes or {}).items():
        rep.note(k, v)
    _conflict_notes(collection, records, rep, passages=passage_ids)
    return collection.add_source(name, records, path=path, format=fmt, rows_read=rows, report=rep)
