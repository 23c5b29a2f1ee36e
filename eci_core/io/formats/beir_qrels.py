"""BEIR qrels: ``qrels/<split>.tsv`` (``query-id corpus-id score``; score > 0 is relevant) read
into the positives per query and its split, per line or by pyarrow.

* :func:`qrels_splits` (the split names, test/dev/train first), :func:`read_beir_qrels` (public:
  positives, splits and where each positive id is first named).
* :func:`read_qrels` (:class:`Qrels`, dicts) and :func:`read_qrels_arrow` (:class:`ArrowQrels`:
  the same in Arrow arrays and CSR, for the vectorised load of :func:`~.beir.load_beir`); both
  read each file with pyarrow when it can (:func:`_fast_qrels_rows`), else line by line.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from eci_core.io.collection import PositiveIds
from eci_core.io.formats.fn_labels import LABELS_FILE
from eci_core.io.read.blocks import (
    NotFast,
    arrow_ids,
    arrow_tables,
    concat_tables,
    read_plain_columns,
    total_size,
    use_fast,
)
from eci_core.io.read.text import Lines, plain_or_gz, strip_gz
from eci_core.io.read.values import finite, unexpected_error
from eci_core.io.records import LoadError
from eci_core.io.texts import ints_arrow, lookup_rows, np_of, str_arrow


def read_beir_qrels(
    directory: str | Path, split: str | None = None
) -> tuple[dict[str, list[str]], dict[str, str], dict[str, tuple[str, int]]]:
    """``(positives, splits, where)`` of a BEIR directory as :func:`load_beir` reads them: per
    query id its positive corpus ids (score > 0) and its qrels split (from ``qrels/<split>.tsv``
    alone when ``split`` is given), and per corpus id the file and line first naming it. A bad
    line raises :class:`LoadError` naming file, line and field."""
    qr = read_qrels(Path(directory), split)
    return qr.pos, qr.split, qr.where


SPLIT_ORDER = ("test", "dev", "validation", "val", "train")


# qrels/ files that are labels, not a split of positives: known false negatives (issue 9)
LABEL_FILES = frozenset({LABELS_FILE})


def _split_rank(name: str) -> tuple[int, str]:
    return (SPLIT_ORDER.index(name) if name in SPLIT_ORDER else len(SPLIT_ORDER), name)


def qrels_splits(directory: str | os.PathLike) -> list[str]:
    """The qrels split names of a BEIR directory (``qrels/<split>.tsv``), test/dev/train first."""
    qdir = Path(directory) / "qrels"
    if not qdir.is_dir():
        return []
    names = {
        strip_gz(p.name)[:-4]
        for p in qdir.iterdir()
        if p.is_file()
        and strip_gz(p.name).endswith(".tsv")
        and not p.name.startswith(".")
        and strip_gz(p.name) not in LABEL_FILES
    }
    return sorted(names, key=_split_rank)


@dataclass
class Qrels:
    """Positives of a BEIR directory: per query id its split and positive ids."""

    pos: dict[str, list[str]] = field(default_factory=dict)  # qid -> positive ids (its split only)
    split: dict[str, str] = field(default_factory=dict)  # qid -> split name
    where: dict[str, tuple[str, int]] = field(default_factory=dict)  # pid -> (file, first line)
    several: set[str] = field(default_factory=set)  # qids labelled in more than one split


def _fast_qrels_rows(f: Path) -> tuple[Any, Any, Any] | None:
    """``(query ids, corpus ids, lines)`` (two Arrow string arrays, an int64 array) of the
    relevant rows (score > 0) of a tab-separated qrels file read by pyarrow, or None to let the
    per-line reader decide."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    def read(b: bytes):
        cols = ["q", "p", "s"]
        return read_plain_columns(b, cols, "\t", dict.fromkeys(cols, pa.string()), 1 << 24, False)

    try:
        t = concat_tables(list(arrow_tables(f, read)))
    except NotFast:
        return None
    if t.num_rows == 0:
        return None
    cols = [arrow_ids(t.column(c).combine_chunks()) for c in ("q", "p", "s")]
    if any(c is None for c in cols):
        return None
    q, p, sc = cols
    start = 0
    try:
        float(sc[0].as_py())
    except ValueError:
        start = 1  # a header line
    try:
        score = np_of(pc.cast(sc.slice(start), pa.float64()))
    except (pa.ArrowException, ValueError):
        return None
    if not np.isfinite(score).all():
        return None
    keep = np.flatnonzero(score > 0) + start
    idx = ints_arrow(keep)
    return q.take(idx), p.take(idx), keep + 1


def _qrels_files(d: Path, split: str | None) -> list[tuple[str, Path]]:
    """``(split name, file)`` of the qrels files read, best split first (see :func:`read_qrels`)."""
    qdir = d / "qrels"
    if not qdir.is_dir():
        raise LoadError(
            str(d), None, "BEIR directory has no qrels/ folder (qrels/<split>.tsv: query-id corpus-id score)"
        )
    names = qrels_splits(d)
    if not names:
        raise LoadError(
            str(qdir),
            None,
            "no qrels files (expected qrels/<split>.tsv, e.g. test.tsv: query-id corpus-id score)",
        )
    if split is not None:
        if split not in names:
            raise LoadError(
                str(qdir), None, f"split={split!r}: no qrels/{split}.tsv; splits here: {', '.join(names)}"
            )
        names = [split]
    return [(name, plain_or_gz(qdir, name + ".tsv")) for name in names]


def _qrels_lines(f: Path) -> list[tuple[str, str, int]]:
    """``(query id, corpus id, line)`` of the relevant rows (score > 0), read line by line."""
    sf = str(f)
    out = []
    no = None
    try:
        for no, s in Lines(f):
            if not s.strip():
                continue
            parts = s.split("\t") if "\t" in s else s.split()
            if len(parts) < 3:
                raise LoadError(sf, no, f"expected 3 fields 'query-id corpus-id score', found {len(parts)}")
            qid, pid, sc = parts[0].strip(), parts[1].strip(), parts[-1].strip()
            try:
                score = float(sc)
            except ValueError:
                if no == 1:  # header
                    continue
                raise LoadError(sf, no, "expected a number", field="score") from None
            if not math.isfinite(score):
                finite(sf, no, score, "score")
            if score > 0:
                out.append((qid, pid, no))
    except LoadError:
        raise
    except Exception as err:  # any failure inside a record: one line at that record
        raise unexpected_error(sf, no, err) from None
    return out


def read_qrels(d: Path, split: str | None = None) -> Qrels:
    """Positives per query id (score > 0) from ``qrels/<split>.tsv``, or from every split.

    With ``split=None`` every ``qrels/*.tsv`` is read and each query takes its positives from the
    split it is labelled in; a query labelled in several splits takes them from the first of
    test, dev, validation, val, train, then the others by name (counted in ``several``)."""
    out = Qrels()
    for name, f in _qrels_files(d, split):  # best split first: a query already labelled keeps that split
        sf = str(f)
        mine: dict[str, list[str]] = {}
        fast = _fast_qrels_rows(f) if use_fast(total_size(f)) else None
        rows = (
            _qrels_lines(f)
            if fast is None
            else zip(fast[0].to_pylist(), fast[1].to_pylist(), fast[2].tolist())
        )
        for qid, pid, no in rows:
            # a query labelled in an earlier split keeps that split's positives (``several``)
            if qid in out.split:
                out.several.add(qid)
                continue
            lst = mine.setdefault(qid, [])
            if pid not in lst:
                lst.append(pid)
            out.where.setdefault(pid, (sf, no))
        for qid, lst in mine.items():
            out.pos[qid] = lst
            out.split[qid] = name
    return out


@dataclass
class ArrowQrels:
    """:class:`Qrels` in columnar form (the vectorised load): the labelled query ids ``q`` (Arrow,
    in the order :class:`Qrels` keeps them), their positives in CSR (``p[off[j]:off[j + 1]]``, file
    order, each once), the split of each (``names[split[j]]``), the ids labelled in several splits;
    ``where_of`` gives the file and first line of a positive id (for messages)."""

    q: Any
    off: Any
    p: Any
    split: Any
    names: list[str]
    several: Any
    files: list[str]
    _pid: Any  # each kept positive id once, and the file index and line of its first row
    _pfile: Any
    _pline: Any

    # (ids, rows) of the last lookup: lists_for, then splits_for, look the same ids up
    _last: tuple = field(default=(None, None), init=False, repr=False, compare=False)

    def _rows(self, ids) -> Any:
        if self._last[0] is ids:
            return self._last[1]
        arr = ids.cast(self.q.type) if ids.type != self.q.type else ids
        rows = lookup_rows(arr, self.q) if len(self.q) else np.full(len(ids), -1, np.int64)
        self._last = (ids, rows)
        return rows

    def lists_for(self, ids) -> PositiveIds:
        """The positives of each of ``ids`` (an Arrow string array; none for an unlabelled id)."""
        r = self._rows(ids)
        has = r >= 0
        r0 = np.where(has, r, 0)
        lens = np.where(has, self.off[r0 + 1] - self.off[r0], 0)
        total = int(lens.sum())
        at = np.repeat(self.off[r0] - (np.cumsum(lens) - lens), lens) + np.arange(total, dtype=np.int64)
        return PositiveIds(lens, self.p.take(ints_arrow(at)))

    def splits_for(self, ids) -> list[str | None]:
        r = self._rows(ids)
        names = np.array(self.names + [None], dtype=object)
        return names[np.where(r >= 0, self.split[np.maximum(r, 0)], len(self.names))].tolist()

    def several_notes(self, ids) -> dict[str, int]:
        """:func:`load_beir`'s note per split on the queries of ``ids`` labelled in several splits."""
        import pyarrow.compute as pc

        if not len(self.several):
            return {}
        hit = np.flatnonzero(np_of(pc.is_in(ids.cast(self.several.type), value_set=self.several)))
        notes: dict[str, int] = {}
        for name in self.splits_for(ids.take(ints_arrow(hit))):
            k = f"query labelled in several qrels splits (positives from its {name} split)"
            notes[k] = notes.get(k, 0) + 1
        return notes

    def where_of(self, pids: list[str]) -> dict[str, tuple[str, int]]:
        r = lookup_rows(str_arrow(pids).cast(self._pid.type), self._pid)
        return {p: (self.files[int(self._pfile[i])], int(self._pline[i])) for p, i in zip(pids, r.tolist())}


def read_qrels_arrow(d: Path, split: str | None = None) -> ArrowQrels:
    """:func:`read_qrels` in columnar form (same positives, splits, order and lines)."""
    import pyarrow as pa

    parts, files, names = [], [], []
    for k, (name, f) in enumerate(_qrels_files(d, split)):
        fast = _fast_qrels_rows(f)
        if fast is None:
            rows = _qrels_lines(f)
            fast = (
                str_arrow([r[0] for r in rows]),
                str_arrow([r[1] for r in rows]),
                np.asarray([r[2] for r in rows], np.int64),
            )
        parts.append(fast + (np.full(len(fast[2]), k, np.int64),))
        files.append(str(f))
        names.append(name)
    large = pa.large_string()
    qa = pa.concat_arrays([x[0].cast(large) for x in parts])
    pa_ = pa.concat_arrays([x[1].cast(large) for x in parts])
    line = np.concatenate([x[2] for x in parts])
    fidx = np.concatenate([x[3] for x in parts])
    del parts
    q_enc = qa.dictionary_encode()
    qc = np_of(q_enc.indices).astype(np.int64)  # codes by first appearance: splits in order
    nq = len(q_enc.dictionary)
    first = np.full(nq, len(qc), np.int64)
    np.minimum.at(first, qc, np.arange(len(qc), dtype=np.int64))
    qsplit = fidx[first] if nq else np.zeros(0, np.int64)
    kept = fidx == qsplit[qc] if len(qc) else np.zeros(0, bool)
    several = q_enc.dictionary.take(ints_arrow(np.unique(qc[~kept])))
    k = np.flatnonzero(kept)
    p_enc = pa_.take(ints_arrow(k)).dictionary_encode()
    pc_ = np_of(p_enc.indices).astype(np.int64)
    npd = len(p_enc.dictionary)
    qk = qc[k]
    uk = np.sort(np.unique(qk * max(npd, 1) + pc_, return_index=True)[1])  # first of each pair
    order = uk[np.argsort(qk[uk], kind="stable")]  # by query (first appearance), then file order
    off = np.zeros(nq + 1, np.int64)
    np.cumsum(np.bincount(qk[order], minlength=nq), out=off[1:])
    pfirst = np.full(npd, len(pc_), np.int64)
    np.minimum.at(pfirst, pc_, np.arange(len(pc_), dtype=np.int64))
    return ArrowQrels(
        q_enc.dictionary,
        off,
        p_enc.dictionary.take(ints_arrow(pc_[order])),
        qsplit,
        names,
        several,
        files,
        p_enc.dictionary,
        fidx[k][pfirst],
        line[k][pfirst],
    )
