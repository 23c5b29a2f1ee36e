"""negative-ids: JSONL ``{query_id, negative_ids: [...], scores?: [...]}`` (ids resolved against a
BEIR corpus). Per-line reader :func:`parse_negative_ids` (:func:`negative_ids_scan`), columnar
reader :func:`fast_negative_ids`, detector :func:`detect`. No writer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from eci_core.io.records import LoadError
from eci_core.io.texts import np_of, str_arrow
from eci_core.io.formats.id_runs import IdArrays, IdRun
from eci_core.io.read.blocks import arrow_ids, arrow_tables, concat_tables, read_json_block
from eci_core.io.read.limits import Progress
from eci_core.io.read.rows import record_rows
from eci_core.io.read.values import as_list, id_value, need_field, num_list, present, unexpected_error


def parse_negative_ids(
    path: Path, stem: str, container: str, progress: Progress | None = None
) -> list[IdRun]:
    spath = str(path)
    run = IdRun(stem, spath, "negative-ids")
    run.rows_read = negative_ids_scan(spath, run, record_rows(path, container, progress))
    return [run]


def negative_ids_scan(spath: str, run: IdRun, rows: Iterable[tuple[int, dict]]) -> int:
    """Check and collect negative-ids rows into ``run``; returns the number of rows."""
    n = 0
    line = None
    try:
        for line, row in rows:
            n += 1
            qid = id_value(spath, line, need_field(spath, line, row, "query_id"), "query_id")
            ids = as_list(
                spath, line, need_field(spath, line, row, "negative_ids"), "negative_ids", "a list of ids"
            )
            ids = [id_value(spath, line, x, f"negative_ids[{i}]") for i, x in enumerate(ids)]
            sc: list[float | None] = [None] * len(ids)
            if present(row.get("scores")):
                sc = num_list(
                    spath, line, row["scores"], "scores", len(ids), "one per item of 'negative_ids'"
                )
            run.qline.setdefault(qid, line)
            for pid in ids:
                run.pline.setdefault(pid, line)
            run.negs.setdefault(qid, []).extend(zip(ids, sc))
    except LoadError:
        raise
    except Exception as err:  # any failure inside a record: one line at that record
        raise unexpected_error(spath, line, err) from None
    return n


def fast_negative_ids(path: Path, stem: str) -> list[IdArrays] | None:
    """A negative-ids JSONL read by pyarrow's JSON reader, or None to let the per-line parser decide."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    t = concat_tables(list(arrow_tables(path, read_json_block)))  # NotFast goes to the caller
    if "query_id" not in t.column_names or "negative_ids" not in t.column_names:
        return None
    n = t.num_rows
    qcol = arrow_ids(t.column("query_id").combine_chunks())
    lists = t.column("negative_ids").combine_chunks()
    if qcol is None or lists.null_count or not pa.types.is_list(lists.type):
        return None
    flat = lists.flatten()
    if pa.types.is_null(flat.type):
        flat = str_arrow([])
    flat = arrow_ids(flat) if len(flat) else str_arrow([])
    if flat is None:
        return None
    offsets = np_of(lists.offsets)
    lens = np.diff(offsets)
    row_of = np.repeat(np.arange(n, dtype=np.int64), lens)
    score = np.full(len(flat), np.nan)
    if "scores" in t.column_names:
        sc = t.column("scores").combine_chunks()
        if pa.types.is_null(sc.type):
            pass
        elif not pa.types.is_list(sc.type):
            return None
        else:
            valid = ~np_of(sc.is_null())
            s_lens = np.diff(np_of(sc.offsets))
            if (valid & (s_lens != lens)).any():
                return None
            vals = sc.flatten()
            if vals.null_count or not (
                pa.types.is_integer(vals.type)
                or pa.types.is_floating(vals.type)
                or pa.types.is_null(vals.type)
            ):
                return None
            v = np_of(vals).astype(np.float64) if len(vals) else np.zeros(0)
            if not np.isfinite(v).all():
                return None
            row_valid = valid[row_of]
            score[row_valid] = v  # flatten() keeps only valid rows' values, in order
    q_enc = pc.dictionary_encode(qcol)
    qrow = np_of(q_enc.indices).astype(np.int64)  # per row, first-appearance order
    qline = np.full(len(q_enc.dictionary), 0, np.int64)
    first_rows = np.unique(qrow, return_index=True)[1]
    qline[qrow[first_rows]] = first_rows + 1
    p_enc = pc.dictionary_encode(flat)
    pflat = np_of(p_enc.indices).astype(np.int64)
    pline = np.zeros(len(p_enc.dictionary), np.int64)
    if len(pflat):
        u, f = np.unique(pflat, return_index=True)
        pline[u] = row_of[f] + 1
    qflat = qrow[row_of]
    order = np.argsort(qflat, kind="stable")  # rows of one query id, merged in file order
    return [
        IdArrays(
            stem,
            str(path),
            "negative-ids",
            n,
            q_enc.dictionary.to_pylist(),
            qflat[order],
            p_enc.dictionary.to_pylist(),
            pflat[order],
            score[order],
            qline,
            pline,
        )
    ]


def detect(row: dict) -> bool:
    return "negative_ids" in row


#: field names negative-ids messages may show
KNOWN_FIELDS = ("query_id", "negative_ids", "scores")
