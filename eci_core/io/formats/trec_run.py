"""TREC runs: ``qid Q0 docid rank score tag`` lines (negatives ordered by rank, score kept), one
system per tag. Per-line reader :func:`parse_trec` (:func:`trec_scan` checks and collects lines),
columnar reader :func:`fast_trec` (pyarrow's CSV reader, or None to let the per-line one decide).
Detected by its container (``.trec``/``.run``, or six whitespace fields with an integer rank and a
number score). No writer.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Iterable

from eci_core.io.records import LoadError
from eci_core.io.texts import ints_arrow, np_of
from eci_core.io.formats.id_runs import IdArrays, IdRun
from eci_core.io.read.blocks import (
    NotFast,
    arrow_tables,
    concat_tables,
    odd_space,
    parse_in_pieces,
    read_plain_columns,
    release_arrow_memory,
)
from eci_core.io.read.limits import Progress
from eci_core.io.read.text import Lines
from eci_core.io.read.values import finite, unexpected_error


def parse_trec(path: Path, stem: str, progress: Progress | None = None) -> list[IdRun]:
    spath = str(path)
    hits, first, n = trec_scan(spath, Lines(path, progress))
    return trec_runs(spath, stem, hits, first, n)


def trec_scan(spath: str, lines: Iterable[tuple[int, str]]) -> tuple[dict, dict, int]:
    """Check and collect TREC lines: ``(tag -> qid -> [(rank, order, pid, score)], first lines, n)``."""
    hits: dict[
        str, dict[str, list[tuple[int, int, str, float]]]
    ] = {}  # tag -> qid -> [(rank, order, pid, score)]
    first: dict[str, tuple[dict, dict]] = {}
    n = 0
    no = None
    try:
        for no, s in lines:
            if not s.strip() or s.lstrip().startswith("#"):
                continue
            parts = s.split()
            if len(parts) != 6:
                raise LoadError(
                    spath,
                    no,
                    f"expected 6 whitespace-separated fields 'qid Q0 docid rank score tag', "
                    f"found {len(parts)}",
                )
            qid, _, pid, rank_s, score_s, tag = parts
            try:
                rank = int(rank_s)
            except ValueError:
                raise LoadError(spath, no, "expected an integer rank", field="rank") from None
            try:
                score = float(score_s)
            except ValueError:
                raise LoadError(spath, no, "expected a number", field="score") from None
            if not math.isfinite(score):
                finite(spath, no, score, "score")
            n += 1
            per = hits.setdefault(tag, {})
            qline, pline = first.setdefault(tag, ({}, {}))
            qline.setdefault(qid, no)
            pline.setdefault(pid, no)
            per.setdefault(qid, []).append((rank, n, pid, score))
    except LoadError:
        raise
    except Exception as err:  # any failure inside a record: one line at that record
        raise unexpected_error(spath, no, err) from None
    return hits, first, n


def trec_runs(spath: str, stem: str, hits: dict, first: dict, n: int) -> list[IdRun]:
    if n == 0:
        raise LoadError(spath, None, "file has no data (only blank or comment lines)")
    runs = []
    for tag, per in hits.items():
        name = stem if len(hits) == 1 else f"{stem}:{tag}"
        qline, pline = first[tag]
        run = IdRun(name, spath, "trec-run", n, qline=qline, pline=pline)
        for qid, lst in per.items():
            lst.sort()
            run.negs[qid] = [(pid, sc) for _, _, pid, sc in lst]
        runs.append(run)
    return runs


def _first_seen(codes):
    """``codes`` numbered by first appearance (0, then each new code one above the largest so
    far: what Arrow's ``dictionary_encode`` gives): the first row of each code, else None."""
    import numpy as np

    if not len(codes) or codes[0] != 0:
        return None
    top = np.maximum.accumulate(codes)
    step = np.diff(top)
    if (step > 1).any():
        return None
    return np.flatnonzero(np.r_[True, step > 0])


def _grouped_order(qloc, rank):
    """Rows sorted by (query, rank, row), or None when they already are (a run written query by
    query, ranks ascending: no sort needed)."""
    import numpy as np

    if len(qloc) < 2:
        return None
    dq = np.diff(qloc)
    if (dq >= 0).all() and ((dq > 0) | (np.diff(rank) >= 0)).all():
        return None
    return np.lexsort((np.arange(len(qloc)), rank, qloc))


def _group_trec(t, n: int, spath: str, stem: str) -> list[IdArrays] | None:
    """Split a parsed TREC table into one :class:`IdArrays` per tag (first-appearance order);
    ids stay Arrow string arrays."""
    import numpy as np
    import pyarrow.compute as pc

    for col in ("qid", "docid", "tag"):  # an empty field: the per-line reader names the line
        if t.num_rows and pc.min(pc.binary_length(t.column(col))).as_py() == 0:
            return None
    score = np_of(t.column("score"))
    if not np.isfinite(score).all():
        return None
    rank = np_of(t.column("rank"))
    tag_enc = pc.dictionary_encode(t.column("tag")).combine_chunks()
    tags = tag_enc.dictionary.to_pylist()
    q_enc = pc.dictionary_encode(t.column("qid")).combine_chunks()
    p_enc = pc.dictionary_encode(t.column("docid")).combine_chunks()
    q_all, p_all = np_of(q_enc.indices), np_of(p_enc.indices)  # int32 (pyarrow's dictionary indices)
    q_names, p_names = q_enc.dictionary, p_enc.dictionary
    if len(tags) == 1:  # one system: the codes already number the ids by first appearance
        fq, fp = _first_seen(q_all), _first_seen(p_all)
        if fq is not None and fp is not None:
            order = _grouped_order(q_all, rank)
            if order is not None:
                q_all, p_all, score = q_all[order], p_all[order], score[order]
            return [
                IdArrays(stem, spath, "trec-run", n, q_names, q_all, p_names, p_all, score, fq + 1, fp + 1)
            ]
    tag_code = np_of(tag_enc.indices)
    runs = []
    for k, tag in enumerate(tags):
        rows = np.flatnonzero(tag_code == k) if len(tags) > 1 else np.arange(n, dtype=np.int64)
        qg, pg = q_all[rows], p_all[rows]
        # relabel query and passage codes by first appearance within this tag
        uq, fq = np.unique(qg, return_index=True)
        oq = np.argsort(fq, kind="stable")
        q_lab = np.empty(len(uq), np.int32)  # codes < n rows < 2**31 (dictionary indices are int32)
        q_lab[oq] = np.arange(len(uq))
        qloc = q_lab[np.searchsorted(uq, qg)]
        up, fp = np.unique(pg, return_index=True)
        op = np.argsort(fp, kind="stable")
        p_lab = np.empty(len(up), np.int32)
        p_lab[op] = np.arange(len(up))
        ploc = p_lab[np.searchsorted(up, pg)]
        order = _grouped_order(qloc, rank[rows])
        taken = rows
        if order is not None:
            taken, qloc, ploc = rows[order], qloc[order], ploc[order]
        name = stem if len(tags) == 1 else f"{stem}:{tag}"
        runs.append(
            IdArrays(
                name,
                spath,
                "trec-run",
                n,
                q_names.take(ints_arrow(uq[oq])),
                qloc,
                p_names.take(ints_arrow(up[op])),
                ploc,
                score[taken],
                rows[fq[oq]] + 1,
                rows[fp[op]] + 1,
            )
        )
    return runs


def fast_trec(path: Path, stem: str) -> list[IdArrays] | None:
    """A TREC run read by pyarrow's CSV reader, or None to let the per-line parser decide."""
    import pyarrow as pa

    names = ["qid", "q0", "docid", "rank", "score", "tag"]
    types = {
        "qid": pa.string(),
        "q0": pa.string(),
        "docid": pa.string(),
        "rank": pa.int64(),
        "score": pa.float64(),
        "tag": pa.string(),
    }
    delim: list[str] = []

    def read(b: bytes):
        if b.startswith(b"#") or b"\n#" in b or odd_space(b):
            raise NotFast
        if not delim:
            first = b[: b.find(b"\n")] if b"\n" in b else b
            delim.append("\t" if b"\t" in first and b" " not in first else " ")
        if (delim[0] == " " and b"\t" in b) or (delim[0] == "\t" and b" " in b):
            raise NotFast
        return parse_in_pieces(
            lambda size, threads: read_plain_columns(
                b, names, delim[0], types, size, threads, include=[c for c in names if c != "q0"]
            )  # Q0 is never read
        )

    try:  # NotFast (with the block where it happened) goes to the caller
        t = concat_tables(list(arrow_tables(path, read)))
        if t.num_rows == 0:
            return None
        return _group_trec(t, t.num_rows, str(path), stem)
    finally:
        release_arrow_memory()


#: field names TREC-run messages may show
KNOWN_FIELDS = ("qid", "docid", "score")
