"""FlagEmbedding / BGE: ``{query, pos: [...], neg: [...], pos_scores?, neg_scores?}`` per line.

Reader :func:`parse_bge`, detector :func:`detect` (``pos`` and ``neg`` fields; a row with a ``qid``
and no ``query`` whose ``neg`` is an object is msmarco-hn, tried first), writer
:func:`to_bge_jsonl`. Passages carry no ids.
"""

from __future__ import annotations

import io
import json
from typing import Any, Iterator

from eci_core.io.records import QueryRecord
from eci_core.io.formats.base import parse_rows, passage_refs
from eci_core.io.read.values import id_value, need_field, num_list, present, text_list, text_value


def _bge_record(path: str, line: int, row: dict) -> QueryRecord:
    q = text_value(path, line, need_field(path, line, row, "query"), "query")
    pos = text_list(path, line, need_field(path, line, row, "pos"), "pos")
    neg = text_list(path, line, need_field(path, line, row, "neg"), "neg")
    ps = ns = None
    if present(row.get("pos_scores")):
        ps = num_list(path, line, row["pos_scores"], "pos_scores", len(pos), "one per item of 'pos'")
    if present(row.get("neg_scores")):
        ns = num_list(path, line, row["neg_scores"], "neg_scores", len(neg), "one per item of 'neg'")
    qid = None
    for k in ("query_id", "qid"):
        if present(row.get(k)):
            qid = id_value(path, line, row[k], k)
            break
    return QueryRecord(qid, q, passage_refs(pos, ps), passage_refs(neg, ns), line)


def parse_bge(path: str, rows: Iterator[tuple[int, dict]]) -> tuple[list[QueryRecord], int, dict[str, int]]:
    return parse_rows(path, rows, _bge_record)


def detect(row: dict) -> bool:
    return "neg" in row and "pos" in row


#: field names BGE messages may show
KNOWN_FIELDS = ("query", "pos", "neg", "pos_scores", "neg_scores", "query_id", "qid")


def to_bge_jsonl(cleaned: Any, source: str | None = None) -> bytes:
    """FlagEmbedding / BGE fine-tuning JSONL: ``{"query_id": str, "query": str, "pos": [str],
    "neg": [str]}`` per query (no scores: miner scores are not reranker scores). FlagEmbedding
    ignores ``query_id``; ECI Explorer reads it, so two queries with one text stay two.
    ``cleaned``: a :class:`~eci_core.io.cleaning.CleanedSet`."""
    recs = cleaned.get(source)
    out = io.StringIO()
    for r in recs:
        out.write(
            json.dumps(
                {
                    "query_id": r.query_id,
                    "query": r.query,
                    "pos": [p.text for p in r.positives],
                    "neg": [n.text for n in r.negatives],
                },
                ensure_ascii=False,
            )
            + "\n"
        )
    return out.getvalue().encode("utf-8")


def write(cleaned: Any, source: str | None = None, n: int | None = None) -> bytes:
    """The registry's writer (``n`` unused)."""
    return to_bge_jsonl(cleaned, source)
