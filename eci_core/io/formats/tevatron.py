"""Tevatron / RLHN: ``{query_id, query, positive_passages: [{docid, title, text}],
negative_passages: [...]}`` per line; passage text = ``title + " " + text`` when the title is set.

Reader :func:`parse_tevatron`, detector :func:`detect`, writer :func:`to_tevatron_jsonl`.
"""

from __future__ import annotations

import io
import json
from typing import Any, Iterator

from eci_core.io.records import LoadError, PassageRef, QueryRecord
from eci_core.io.formats.base import parse_rows, tuple_new
from eci_core.io.read.values import (
    as_list,
    id_value,
    kind_of,
    loads_checked,
    need_field,
    num_value,
    present,
    text_value,
)
from eci_core.io.read.vocab import field_names


def _tevatron_passages(path: str, line: int, v: Any, fld: str) -> list[PassageRef]:
    items = as_list(path, line, v, fld, "a list of passages {docid, title, text}")
    out = []
    for i, p in enumerate(items):
        if type(p) is dict:  # fast path: well-formed passage
            body, title, pid = p.get("text"), p.get("title"), p.get("docid")
            if (
                type(body) is str
                and body
                and not body.isspace()
                and (title is None or type(title) is str)
                and (type(pid) is str and pid.strip() == pid and pid or type(pid) is int or pid is None)
                and "score" not in p
            ):
                t = title.strip() if title else ""
                out.append(
                    tuple_new(
                        PassageRef, (None if pid is None else str(pid), f"{t} {body}" if t else body, None)
                    )
                )
                continue
        f = f"{fld}[{i}]"
        if isinstance(p, str) and p.lstrip().startswith("{"):
            p = loads_checked(path, line, p, f)
        if not isinstance(p, dict):
            raise LoadError(
                path, line, f"expected a passage object {{docid, title, text}}, got {kind_of(p)}", field=f
            )
        if "text" not in p:
            raise LoadError(
                path, line, f"missing required field (fields found: {field_names(p)})", field=f"{f}.text"
            )
        body = p["text"]
        if body is not None and not isinstance(body, str):
            raise LoadError(path, line, f"expected a string, got {kind_of(body)}", field=f"{f}.text")
        title = p.get("title")
        if title is not None and not isinstance(title, str):
            raise LoadError(path, line, f"expected a string, got {kind_of(title)}", field=f"{f}.title")
        title = (title or "").strip()
        body = body or ""
        text = f"{title} {body}" if title and body.strip() else (title or body)
        text = text_value(
            path, line, text if text.strip() else (None if p["text"] is None else ""), f"{f}.text"
        )
        pid = id_value(path, line, p["docid"], f"{f}.docid") if present(p.get("docid")) else None
        sc = p.get("score")
        sc = (
            num_value(path, line, sc, f"{f}.score")
            if isinstance(sc, (int, float)) and not isinstance(sc, bool)
            else None
        )
        out.append(PassageRef(pid, text, sc))
    return out


def _tevatron_record(path: str, line: int, row: dict) -> QueryRecord:
    q = text_value(path, line, need_field(path, line, row, "query"), "query")
    qid = id_value(path, line, row["query_id"], "query_id") if present(row.get("query_id")) else None
    pos = _tevatron_passages(
        path, line, need_field(path, line, row, "positive_passages"), "positive_passages"
    )
    neg = _tevatron_passages(
        path, line, need_field(path, line, row, "negative_passages"), "negative_passages"
    )
    return QueryRecord(qid, q, pos, neg, line)


def parse_tevatron(
    path: str, rows: Iterator[tuple[int, dict]]
) -> tuple[list[QueryRecord], int, dict[str, int]]:
    return parse_rows(path, rows, _tevatron_record)


def detect(row: dict) -> bool:
    return "positive_passages" in row or "negative_passages" in row


#: field names Tevatron messages may show
KNOWN_FIELDS = ("query_id", "query", "positive_passages", "negative_passages", "docid", "title", "text")


def to_tevatron_jsonl(cleaned: Any, source: str | None = None) -> bytes:
    """Tevatron JSONL: ``{"query_id", "query", "positive_passages": [{"docid", "title", "text"}],
    "negative_passages": [...]}`` per query; ``title`` is "" (loaded texts already include any
    title), ``docid`` the passage id. ``cleaned``: a :class:`~eci_core.io.cleaning.CleanedSet`."""
    recs = cleaned.get(source)
    out = io.StringIO()
    for r in recs:
        out.write(
            json.dumps(
                {
                    "query_id": r.query_id,
                    "query": r.query,
                    "positive_passages": [{"docid": p.id, "title": "", "text": p.text} for p in r.positives],
                    "negative_passages": [{"docid": n.id, "title": "", "text": n.text} for n in r.negatives],
                },
                ensure_ascii=False,
            )
            + "\n"
        )
    return out.getvalue().encode("utf-8")


def write(cleaned: Any, source: str | None = None, n: int | None = None) -> bytes:
    """The registry's writer (``n`` unused)."""
    return to_tevatron_jsonl(cleaned, source)
