#!/usr/bin/env python3
"""Add the LLM-written negatives to the bundled ``pyfaq`` corpus (BEIR layout).

Input: ``sample_data/llm_negatives.jsonl``, one line per query::

    {"query_id": "faq-design-1", "query": "...", "model": "...", "prompt": "...",
     "passages": ["...", "...", "..."]}

These are raw generations of a large language model (see the README section "LLM-written
negatives" for the model, the prompt and the date). For every line and every passage ``n``
(1-based position in ``passages``) this script

* appends ``{"_id": "llm-<query_id>-<n>", "title": "", "text": <passage>}`` to
  ``sample_data/pyfaq/corpus.jsonl``, after removing every passage whose ``_id`` starts with
  ``llm-`` (so running it twice gives the same file: it is idempotent);
* writes ``sample_data/pyfaq/negatives/llm.jsonl``, one line per query in the order of
  ``queries.jsonl``: ``{"query_id": ..., "negative_ids": ["llm-<query_id>-1", ...]}`` (the
  negative-ids form the BEIR loader reads from ``negatives/``).

The output depends only on the input files (no clock, no randomness). Build order of the sample
data: ``build.py`` (rewrites corpus.jsonl without the ``llm-`` passages), then this script, then
the miners that write the other files of ``negatives/``.

Every query of ``llm_negatives.jsonl`` must exist in ``queries.jsonl`` and its ``query`` text
must match it, so that a rebuilt query set that renumbered the questions is caught instead of
attaching passages to the wrong question.

Usage::

    python sample_data/add_llm_negatives.py [--data sample_data/pyfaq] [--llm sample_data/llm_negatives.jsonl]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE / "pyfaq"
DEFAULT_LLM = HERE / "llm_negatives.jsonl"
PREFIX = "llm-"
REQUIRED = ("query_id", "query", "model", "prompt", "passages")


class InputError(Exception):
    """A problem in one of the input files; the message names the file, the line and the field."""


def _read_jsonl(path: Path) -> list[tuple[int, dict]]:
    """Return ``(line number, object)`` for every non-blank line of a JSONL file."""
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    rows = []
    with open(path, encoding="utf-8") as fh:
        for ln, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{path}:{ln}: not valid JSON ({exc.msg}); fix or remove the line") from None
            if not isinstance(obj, dict):
                raise InputError(f"{path}:{ln}: expected a JSON object, got {type(obj).__name__}")
            rows.append((ln, obj))
    return rows


def read_llm_negatives(path: Path, queries: dict[str, str]) -> list[dict]:
    """Validate ``llm_negatives.jsonl`` against ``queries`` (id -> text) and return its rows."""
    out, seen = [], {}
    for ln, row in _read_jsonl(path):
        missing = [k for k in REQUIRED if k not in row]
        if missing:
            raise InputError(
                f"{path}:{ln}: missing field(s) {', '.join(missing)}; every line needs {', '.join(REQUIRED)}"
            )
        qid = row["query_id"]
        if not isinstance(qid, str) or not qid:
            raise InputError(f"{path}:{ln}: field 'query_id' must be a non-empty string")
        if qid in seen:
            raise InputError(
                f"{path}:{ln}: query_id {qid!r} already given on line {seen[qid]}; keep one line per query"
            )
        seen[qid] = ln
        if qid not in queries:
            raise InputError(
                f"{path}:{ln}: query_id {qid!r} is not in queries.jsonl; "
                "was the query set rebuilt? regenerate or remove this line"
            )
        if row["query"] != queries[qid]:
            raise InputError(
                f"{path}:{ln}: field 'query' {row['query']!r} differs from queries.jsonl "
                f"{queries[qid]!r} for {qid}; the ids were probably renumbered"
            )
        ps = row["passages"]
        if not isinstance(ps, list) or not ps:
            raise InputError(f"{path}:{ln}: field 'passages' must be a non-empty list of strings")
        for i, p in enumerate(ps):
            if not isinstance(p, str) or not p.strip():
                raise InputError(f"{path}:{ln}: passages[{i}] must be a non-empty string")
        out.append(row)
    return out


def build(data: Path, llm_path: Path) -> tuple[int, int, int]:
    """Rewrite ``corpus.jsonl`` and ``negatives/llm.jsonl``; return (queries, passages, removed)."""
    queries_path, corpus_path = data / "queries.jsonl", data / "corpus.jsonl"
    qrows = _read_jsonl(queries_path)
    queries: dict[str, str] = {}
    order: list[str] = []
    for ln, q in qrows:
        if "_id" not in q or "text" not in q:
            raise InputError(f"{queries_path}:{ln}: a query needs '_id' and 'text'")
        queries[q["_id"]] = q["text"]
        order.append(q["_id"])
    rows = read_llm_negatives(llm_path, queries)
    by_qid = {r["query_id"]: r for r in rows}

    if not corpus_path.is_file():
        raise InputError(f"{corpus_path}: file not found; run sample_data/build.py first")
    kept: list[str] = []
    removed = 0
    real_ids: set[str] = set()
    with open(corpus_path, encoding="utf-8") as fh:
        for ln, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                pid = json.loads(line)["_id"]
            except (json.JSONDecodeError, KeyError, TypeError):
                raise InputError(f"{corpus_path}:{ln}: not a BEIR corpus line with an '_id'") from None
            if str(pid).startswith(PREFIX):
                removed += 1
                continue
            real_ids.add(str(pid))
            kept.append(line if line.endswith("\n") else line + "\n")

    new_lines, neg_lines, n_pass = [], [], 0
    for qid in order:  # queries.jsonl order, so the output does not depend on the LLM file's order
        row = by_qid.get(qid)
        if row is None:
            continue
        ids = []
        for n, text in enumerate(row["passages"], 1):
            pid = f"{PREFIX}{qid}-{n}"
            if pid in real_ids:
                raise InputError(f"{corpus_path}: passage id {pid} already used by a non-LLM passage")
            new_lines.append(
                json.dumps({"_id": pid, "title": "", "text": text.strip()}, ensure_ascii=False) + "\n"
            )
            ids.append(pid)
            n_pass += 1
        neg_lines.append(json.dumps({"query_id": qid, "negative_ids": ids}, ensure_ascii=False) + "\n")

    _write_atomic(corpus_path, kept + new_lines)
    _write_atomic(data / "negatives" / "llm.jsonl", neg_lines)
    return len(neg_lines), n_pass, removed


def _write_atomic(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8", newline="\n") as fh:
        fh.writelines(lines)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="BEIR directory (default: %(default)s)")
    ap.add_argument("--llm", type=Path, default=DEFAULT_LLM, help="LLM generations (default: %(default)s)")
    args = ap.parse_args(argv)
    try:
        nq, np_, removed = build(args.data, args.llm)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(
        f"{args.data / 'corpus.jsonl'}: removed {removed} old llm- passages, added {np_} "
        f"for {nq} queries; wrote {args.data / 'negatives' / 'llm.jsonl'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
