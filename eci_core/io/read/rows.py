"""Containers to records: :func:`container_of` (JSONL, JSON, CSV, TSV, Parquet or a TREC run) and
:func:`record_rows` (``(line or row, record dict)`` of any container but TREC, streaming where the
container allows: :func:`jsonl_rows`, :func:`json_rows`, :func:`csv_rows`,
:func:`eci_core.io.read.parquet.parquet_rows`); :func:`peek` (the first record and the rest)."""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from pathlib import Path
from typing import Iterable, Iterator

from eci_core.io.records import LoadError
from eci_core.io.read.limits import Progress, current_limits, open_file
from eci_core.io.read.parquet import parquet_rows
from eci_core.io.read.text import Lines, check_json_document, read_text, strip_gz
from eci_core.io.read.values import DIGITS_MSG, check_surrogates, kind_of, loads_checked
from eci_core.io.read.vocab import accepted_formats, plural


# ====================================================================== containers -> rows
def container_of(path: Path) -> str:
    """``jsonl``, ``json``, ``csv``, ``tsv``, ``parquet`` or ``trec`` (whitespace run file)."""
    name = strip_gz(path.name.lower())
    ext = name.rpartition(".")[2] if "." in name else ""
    if ext in ("jsonl", "ndjson"):
        return "jsonl"
    if ext == "json":
        return "json"
    if ext in ("parquet", "pq"):
        return "parquet"
    if ext in ("trec", "run"):
        return "trec"
    spath = str(path)
    if os.path.getsize(path) == 0:
        raise LoadError(spath, None, "file is empty")
    with open_file(path) as f:
        if f.read(4) == b"PAR1":
            return "parquet"
    first = None
    for _, s in Lines(path):
        if s.strip():
            first = s
            break
    if first is None:
        raise LoadError(spath, None, "file has no data (only blank lines)")
    if _looks_like_trec(first):
        return "trec"
    if ext == "csv":
        return "csv"
    if ext in ("tsv", "tab"):
        return "tsv"
    head = first.lstrip()
    if head.startswith("{"):
        return "jsonl"
    if head.startswith("["):
        return "json"
    if "\t" in first:
        return "tsv"
    if "," in first:
        return "csv"
    raise LoadError(
        spath,
        None,
        f"cannot tell what kind of file this is (expected JSONL, JSON, CSV, TSV, Parquet "
        f"or a TREC run); accepted formats: {accepted_formats()}",
    )


def _looks_like_trec(line: str) -> bool:
    parts = line.split()
    if len(parts) != 6:
        return False
    try:
        int(parts[3])
        float(parts[4])
    except ValueError:
        return False
    return True


def record_rows(path: Path, container: str, progress: Progress | None = None) -> Iterator[tuple[int, dict]]:
    """``(line_or_row, record dict)`` for a JSONL/JSON/CSV/TSV/Parquet file, streaming where possible."""
    if container == "jsonl":
        return jsonl_rows(path, progress)
    if container == "json":
        return json_rows(path)
    if container in ("csv", "tsv"):
        return csv_rows(path, "," if container == "csv" else "\t", progress)
    if container == "parquet":
        return parquet_rows(path, progress)
    raise LoadError(str(path), None, f"a {container} file has no records of fields")


def jsonl_rows(path: Path, progress: Progress | None) -> Iterator[tuple[int, dict]]:
    spath = str(path)
    any_row = False
    for no, obj in jsonl_objects(spath, Lines(path, progress)):
        any_row = True
        yield no, obj
    if not any_row:
        raise LoadError(spath, None, "file has no data (only blank lines)")


def jsonl_objects(spath: str, lines: Iterable[tuple[int, str]]) -> Iterator[tuple[int, dict]]:
    """One JSON object per non-blank line, each checked (invalid JSON, surrogates, not an object)."""
    loads = json.loads
    for no, s in lines:
        if not s.strip():
            continue
        try:
            obj = loads(s)
        except Exception:
            obj = loads_checked(spath, no, s)  # raises the one-line error
        if "\\" in s:
            check_surrogates(spath, no, s, obj)
        if not isinstance(obj, dict):
            raise LoadError(spath, no, f"expected one JSON object {{...}} per line, got {kind_of(obj)}")
        yield no, obj


_WS = re.compile(r"[ \t\n\r]*")


def json_rows(path: Path) -> Iterator[tuple[int, dict]]:
    """A JSON array of objects (real line numbers), an object of equal-length lists (row
    numbers), a single object, or JSONL saved with a ``.json`` name."""
    spath = str(path)
    limits = current_limits()
    s = read_text(path, lambda sp, data: check_json_document(sp, data, limits))
    i = _WS.match(s, 0).end()
    if i == len(s):
        raise LoadError(spath, None, "file has no data (only blank lines)")
    if s[i] == "[":
        yield from _json_array(spath, s, i)
        return
    try:
        obj = json.loads(s)
    except json.JSONDecodeError as e:
        if e.msg == "Extra data":  # one object per line: JSONL with a .json name
            yield from jsonl_rows(path, None)
            return
        raise LoadError(spath, e.lineno, f"invalid JSON: {e.msg} at column {e.colno}") from None
    except RecursionError:
        raise LoadError(spath, None, "JSON nested too deeply to read") from None
    except ValueError:
        raise LoadError(spath, None, DIGITS_MSG) from None
    check_surrogates(spath, None, s, obj)
    if not isinstance(obj, dict):
        raise LoadError(
            spath, 1, f"expected a JSON array of objects or an object of lists, got {kind_of(obj)}"
        )
    cols = list(obj)
    if cols and all(isinstance(obj[c], list) for c in cols) and len({len(obj[c]) for c in cols}) == 1:
        n = len(obj[cols[0]])
        if n == 0:
            raise LoadError(spath, None, "file has no data rows (every column is an empty list)")
        for r in range(n):
            yield r + 1, {c: obj[c][r] for c in cols}
        return
    if cols and all(isinstance(obj[c], list) for c in cols):
        lens = ", ".join(f"{c}: {len(obj[c])}" for c in cols)
        raise LoadError(spath, None, f"an object of lists needs lists of equal length, got {lens}")
    yield 1, obj


def _json_array(spath: str, s: str, i: int) -> Iterator[tuple[int, dict]]:
    dec = json.JSONDecoder()
    n = len(s)
    i = _WS.match(s, i + 1).end()
    line, pos = 1 + s.count("\n", 0, i), i
    if i < n and s[i] == "]":
        raise LoadError(spath, line, "file has no data rows (the JSON array is empty)")
    while True:
        line += s.count("\n", pos, i)
        pos = i
        try:
            obj, end = dec.raw_decode(s, i)
        except json.JSONDecodeError as e:
            raise LoadError(spath, e.lineno, f"invalid JSON: {e.msg} at column {e.colno}") from None
        except RecursionError:
            raise LoadError(spath, line, "JSON nested too deeply to read") from None
        except ValueError:
            raise LoadError(spath, line, DIGITS_MSG) from None
        check_surrogates(spath, line, s[i:end], obj)
        if not isinstance(obj, dict):
            raise LoadError(
                spath, line, f"expected a JSON array of objects, got {kind_of(obj)} as an element"
            )
        yield line, obj
        i = _WS.match(s, end).end()
        if i < n and s[i] == ",":
            i = _WS.match(s, i + 1).end()
            continue
        if i < n and s[i] == "]":
            rest = _WS.match(s, i + 1).end()
            if rest != n:
                ln = 1 + s.count("\n", 0, rest)
                raise LoadError(spath, ln, "invalid JSON: Extra data after the closing ']'")
            return
        ln = 1 + s.count("\n", 0, i)
        col = i - (s.rfind("\n", 0, i) + 1) + 1
        what = "Expecting ',' delimiter" if i < n else "Expecting ']' (the array is not closed)"
        raise LoadError(spath, ln, f"invalid JSON: {what} at column {col}")


def csv_rows(path: Path, delim: str, progress: Progress | None) -> Iterator[tuple[int, dict]]:
    import csv
    import sys

    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    spath = str(path)
    lines = Lines(path, progress)
    it = iter(lines)
    max_rec = current_limits().max_line_bytes
    holder = {"no": 0, "first": 0, "bytes": 0, "lines": 0}  # bytes and lines of the record being read

    def text_lines() -> Iterator[str]:
        for no, s in it:
            holder["no"] = no
            if not holder["lines"]:
                holder["first"] = no
            # a quoted cell may span lines: the record, like a JSONL line, holds at most max_line_bytes
            holder["bytes"] += (len(s) if s.isascii() else len(s.encode("utf-8", "surrogatepass"))) + (
                1 if holder["lines"] else 0
            )
            holder["lines"] += 1
            if holder["bytes"] > max_rec:
                raise LoadError(
                    spath,
                    holder["first"],
                    f"record longer than {max_rec:,} bytes (a quoted cell "
                    "spans its lines; LoadLimits.max_line_bytes, env ECI_MAX_LINE_BYTES)",
                )
            yield s + "\n"

    reader = csv.reader(text_lines(), delimiter=delim)
    header: list[str] | None = None
    start = 1
    any_row = False
    try:
        for cells in reader:
            holder["bytes"] = holder["lines"] = 0  # the next lines read belong to the next record
            if header is None:
                header = [c.strip() for c in cells]
                if not any(header):
                    raise LoadError(spath, holder["no"], "the first line must be a header naming the columns")
                dup = [c for c, k in Counter(header).items() if k > 1]
                if dup:
                    raise LoadError(
                        spath, holder["no"], f"duplicate column name(s) in the header: {', '.join(dup)}"
                    )
                start = holder["no"] + 1
                continue
            line = start
            start = holder["no"] + 1
            if not cells or (len(cells) == 1 and not cells[0].strip()):
                continue
            if len(cells) != len(header):
                sep = "comma" if delim == "," else "tab"
                raise LoadError(
                    spath,
                    line,
                    f"row has {plural(len(cells), 'field')} but the header has "
                    f"{len(header)} ({sep}-separated; quote texts that contain a {sep})",
                )
            any_row = True
            yield line, dict(zip(header, cells))
    except csv.Error as e:
        raise LoadError(spath, holder["no"], f"cannot parse the row: {e}") from None
    if header is None:
        raise LoadError(spath, None, "file has no data (only blank lines)")
    if not any_row:
        raise LoadError(spath, None, "file has a header but no data rows")


def peek(rows: Iterator[tuple[int, dict]]) -> tuple[tuple[int, dict], Iterator[tuple[int, dict]]]:
    first = next(rows)

    def chained() -> Iterator[tuple[int, dict]]:
        yield first
        yield from rows

    return first, chained()
