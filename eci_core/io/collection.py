"""The collection: every query and passage once, the labelled positives, the negative sources.

A :class:`Collection` holds every query and passage once, the labelled positives per query, and
any number of negative :class:`Source` s aligned on the same queries. Loaders never mutate a
collection while parsing: they build :class:`~eci_core.io.records.QueryRecord` s first and then
call :meth:`Collection.add_source`, so a bad file cannot damage what was already loaded.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import itertools
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Mapping, Sequence

import numpy as np

from eci_core.io.positives import Positives
from eci_core.io.records import QueryRecord, SourceReport, text_id
from eci_core.io.texts import (
    TAKE_BLOCK,
    IdIndex,
    KeyedTexts,
    TextColumn,
    append_texts,
    as_str_arrow,
    bool_arrow,
    ints_arrow,
    np_of,
    take_texts,
    text_codes,
    texts_differ,
)


def content_hash(collection: "Collection") -> str:
    """SHA-256 (hex) of everything a score depends on in ``collection``: ids, texts, positives,
    every source's name and arrays (and the query splits when known). Unlike
    :meth:`Collection.fingerprint` (16 hex digits, a quick label) it is collision-resistant, so
    the dashboard can share results between sessions by it (``ui.state.score_key``)."""
    h = hashlib.sha256()

    def part(b: bytes) -> None:  # length-prefixed, so no two layouts hash alike
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)

    for arr in (
        collection.passage_ids,
        collection.query_ids,
        collection.passage_texts,
        collection.query_texts,
    ):
        enc = [x.encode("utf-8", "surrogatepass") for x in arr]
        part(
            np.fromiter(map(len, enc), dtype=np.int64, count=len(enc)).tobytes()
        )  # the lengths split the join
        part(b"".join(enc))
    for q, ps in collection.positives.items():  # ascending query order, one pass over the CSR
        part(f"{q}:{list(ps)}".encode())
    for name in sorted(collection.sources):
        s = collection.sources[name]
        part(name.encode("utf-8", "surrogatepass"))
        for a in (s.q_idx, s.p_idx, s.rank, s.score):
            part(np.ascontiguousarray(a).tobytes())
    splits = getattr(collection, "query_splits", None) or {}
    part(repr(sorted(splits.items())).encode())
    return h.hexdigest()


def sorted_unique(a: np.ndarray) -> np.ndarray:
    """``np.unique(a)`` by sorting: numpy 2.4's hash-based one is 10x slower on 1M integers."""
    s = np.sort(np.asarray(a).ravel())
    return s if len(s) < 2 else s[np.r_[True, s[1:] != s[:-1]]]


@dataclass
class Source:
    """One set of negatives: parallel arrays sorted by (query index, rank).

    ``rank`` is 1-based within the query (file order, or the file's own rank); ``score`` is the
    miner's score (NaN when none was given); it is metadata, never mixed into margins.
    """

    name: str
    q_idx: np.ndarray
    p_idx: np.ndarray
    rank: np.ndarray
    score: np.ndarray
    queries: np.ndarray | None = None
    path: str = ""
    format: str = ""

    def __post_init__(self) -> None:
        if self.queries is None:
            self.queries = sorted_unique(self.q_idx)

    def __len__(self) -> int:
        return int(self.q_idx.shape[0])

    @property
    def query_indices(self) -> np.ndarray:
        """Sorted query indices this source covers, including queries with K = 0 negatives."""
        return self.queries


@dataclass
class PositiveIds:
    """Positives in CSR form: record ``j`` has the ``lengths[j]`` next ids of ``ids`` (Arrow)."""

    lengths: np.ndarray
    ids: object


class _PyIds(Sequence):
    """An Arrow string array read one Python string at a time (the few ids a message needs)."""

    def __init__(self, arr):
        self.arr = arr

    def __len__(self) -> int:
        return len(self.arr)

    def __getitem__(self, i):
        return self.arr[i].to_pylist() if isinstance(i, slice) else self.arr[int(i)].as_py()


def _index_array(a) -> np.ndarray:
    """``a`` as an integer numpy array: int32 and int64 arrays are kept as they are (no copy; the
    arrays built from them are int64), anything else becomes int64."""
    arr = np.asarray(a)
    return arr if arr.dtype in (np.int32, np.int64) else arr.astype(np.int64)


_CHUNK_ROWS = 1 << 17  # rows of a new source checked at a time (bounded temporaries)


def _query_chunks(q: np.ndarray, size: int = _CHUNK_ROWS) -> Iterator[tuple[int, int]]:
    """``(lo, hi)`` row ranges of about ``size`` rows covering ``q`` (ascending), never splitting
    the rows of one query."""
    n, lo = len(q), 0
    while lo < n:
        hi = min(lo + size, n)
        if hi < n:
            hi = int(np.searchsorted(q, q[hi], side="left"))
            if hi <= lo:  # one query of more than ``size`` rows
                hi = int(np.searchsorted(q, q[lo], side="right"))
        yield lo, hi
        lo = hi


def _pairs_in(a: np.ndarray, b: np.ndarray, keys: np.ndarray, base: int) -> np.ndarray:
    """Whether each pair ``(a[i], b[i])`` is a pair of ``keys`` (the sorted unique
    ``pa * base + pb`` of the pairs, ``0 <= b, pb < base``).

    ``np.isin`` on int64 keys, by binary search in the (small) sorted set of pairs, so the
    temporaries are one key array of ``len(a)``, not the sorted concatenation of both."""
    if not len(keys):
        return np.zeros(len(a), dtype=bool)
    k = a * np.int64(base)
    k += b
    pos = np.searchsorted(keys, k)
    np.minimum(pos, len(keys) - 1, out=pos)
    return keys[pos] == k


def _count_identical(
    texts: TextColumn, pq: np.ndarray, pp: np.ndarray, q_idx: np.ndarray, p_idx: np.ndarray
) -> int:
    """How many rows ``(q_idx[i], p_idx[i])`` name a passage whose text equals the text of one of
    query ``q_idx[i]``'s positives (the pairs ``(pq, pp)``, ``pq`` ascending): the same passage,
    or another with an equal text.

    Equal texts have equal UTF-8 lengths (read from the Arrow offsets), so only the rows whose
    length is one of their query's positives' lengths are compared, as strings; when that is
    more than an eighth of the rows (many texts of one length) the texts are compared by hash
    codes (:func:`text_codes`) instead. Exact either way."""
    n = np.int64(len(texts) + 1)
    length = texts.byte_lengths(np.arange(len(texts)))  # of every passage: one pass over the offsets
    plen = length[pp]
    base = np.int64(plen.max() + 1)
    np.minimum(length, base - 1, out=length)  # longer than every positive: no match (checked below)
    # each row against the lengths of its query's positives, through their CSR (few a query), or
    # by binary search in the (query, length) pairs (many)
    nq = int(max(pq.max(), q_idx.max())) + 1
    count = np.bincount(pq, minlength=nq)
    indptr = np.zeros(nq + 1, dtype=np.int64)
    np.cumsum(count, out=indptr[1:])
    most = int(count.max())
    keys = sorted_unique(pq * base + plen) if most > 8 else None
    cand = np.zeros(len(q_idx), dtype=bool)
    for lo in range(0, len(q_idx), _CHUNK_ROWS):  # row by row: bounded temporaries
        rows = slice(lo, lo + _CHUNK_ROWS)
        q, nl = q_idx[rows], length[p_idx[rows]]
        if keys is not None:
            cand[rows] = _pairs_in(q, nl, keys, base)
            continue
        first, k = indptr[q], count[q]
        hit = np.zeros(len(q), dtype=bool)
        for j in range(most):
            hit |= (k > j) & (plen[np.minimum(first + j, len(pp) - 1)] == nl)
        cand[rows] = hit
    del count, indptr
    c = np.flatnonzero(cand)
    del cand, keys
    if len(c) > max(4096, len(q_idx) // 8):
        tcode = text_codes(texts, pp, p_idx, int(n) - 1)
        keys = sorted_unique(pq * n + tcode[pp])
        return sum(
            int(_pairs_in(q_idx[lo : lo + _CHUNK_ROWS], tcode[p_idx[lo : lo + _CHUNK_ROWS]], keys, n).sum())
            for lo in range(0, len(q_idx), _CHUNK_ROWS)
        )
    same = _pairs_in(q_idx[c], p_idx[c], sorted_unique(pq * n + pp), n)  # the positive itself
    rest = c[~same]
    if not len(rest):
        return int(same.sum())
    # each remaining row against its query's positives of the same length, as strings
    lo = np.searchsorted(pq, q_idx[rest], side="left")
    hi = np.searchsorted(pq, q_idx[rest], side="right")
    size = hi - lo
    row = np.repeat(np.arange(len(rest)), size)
    at = (
        np.arange(int(size.sum()), dtype=np.int64)
        - np.repeat(np.cumsum(size) - size, size)
        + np.repeat(lo, size)
    )
    keep = plen[at] == length[p_idx[rest]][row]
    row, at = row[keep], at[keep]
    equal = np.fromiter(
        (a == b for a, b in zip(take_texts(texts, p_idx[rest][row]), take_texts(texts, pp[at]))),
        dtype=bool,
        count=len(row),
    )
    return int(same.sum()) + len(sorted_unique(row[equal]))


def _known_with_other_text(ix: np.ndarray, column: TextColumn, texts, keys: Sequence) -> np.ndarray:
    """Mask over ids whose rows in the collection are ``ix`` (-1: not there): the id is already
    in ``column`` with a text other than the new one, ``texts[keys[i]]`` (see
    :func:`texts_differ`)."""
    out = np.zeros(len(ix), dtype=bool)
    cs = np.flatnonzero(ix >= 0)
    if len(cs):
        out[cs] = texts_differ(column, ix[cs], texts, keys, ix >= 0)
    return out


class IdTextMap(Mapping):
    """Read-only ``id -> text`` view of a collection's passages or queries (no copy)."""

    def __init__(self, ids: Sequence[str], texts: Sequence[str], index: dict[str, int]):
        self._ids, self._texts, self._index = ids, texts, index

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key in self._index

    def __getitem__(self, key: str) -> str:
        return self._texts[self._index[key]]

    def __iter__(self) -> Iterator[str]:
        return iter(self._ids)

    def __len__(self) -> int:
        return len(self._ids)


@dataclass
class Collection:
    """Queries, passages, positives and negative sources for one session.

    ``passage_texts`` / ``query_texts`` are :class:`TextColumn` s (read-only sequences of str
    held in Arrow buffers; read many at once with :func:`take_texts`); a list given to the
    constructor is wrapped in one. Only the ``add_*`` methods change a collection.

    ``query_splits`` maps a query index to the qrels split (``"train"``, ``"dev"``, ``"test"`` …)
    its positives were read from; it is empty when the data carries no splits (every format but
    BEIR).
    """

    passage_ids: list[str] = field(default_factory=list)
    passage_texts: TextColumn = field(default_factory=TextColumn)
    query_ids: list[str] = field(default_factory=list)
    query_texts: TextColumn = field(default_factory=TextColumn)
    positives: Positives = field(default_factory=Positives)
    sources: dict[str, Source] = field(default_factory=dict)
    query_splits: dict[int, str] = field(default_factory=dict)
    _pid_index: IdIndex | None = field(default=None, repr=False)
    _qid_index: IdIndex | None = field(default=None, repr=False)
    _qtext_lazy: dict[str, int] | None = field(default=None, repr=False)  # see _qtext_index

    def __post_init__(self) -> None:
        if not isinstance(self.passage_texts, TextColumn):
            self.passage_texts = TextColumn(self.passage_texts)
        if not isinstance(self.query_texts, TextColumn):
            self.query_texts = TextColumn(self.query_texts)
        if not isinstance(self.positives, Positives):
            self.positives = Positives(self.positives)
        # id -> index: vectorised lookups in Arrow, a dict only once a single id is looked up
        if not isinstance(self._pid_index, IdIndex) or self._pid_index.ids is not self.passage_ids:
            self._pid_index = IdIndex(self.passage_ids)
        if not isinstance(self._qid_index, IdIndex) or self._qid_index.ids is not self.query_ids:
            self._qid_index = IdIndex(self.query_ids)

    @property
    def _qtext_index(self) -> dict[str, int]:
        """Query text -> first query index with it; built on first use (only queries given
        without an id are aligned by text, so a load by ids never makes these strings)."""
        if self._qtext_lazy is None:
            index: dict[str, int] = {}
            for i, t in enumerate(self.query_texts):
                index.setdefault(t, i)
            self._qtext_lazy = index
        return self._qtext_lazy

    # ------------------------------------------------------------------ basics
    @property
    def n_passages(self) -> int:
        return len(self.passage_ids)

    @property
    def n_queries(self) -> int:
        return len(self.query_ids)

    def copy(self) -> "Collection":
        """A deep copy (used to stage a load so that failure leaves the original intact)."""
        return copy.deepcopy(self)

    def passage_map(self) -> IdTextMap:
        """Passage id -> text, as a read-only mapping over the collection."""
        return IdTextMap(self.passage_ids, self.passage_texts, self._pid_index)

    def query_map(self) -> IdTextMap:
        """Query id -> text, as a read-only mapping over the collection."""
        return IdTextMap(self.query_ids, self.query_texts, self._qid_index)

    def passage_index(self, pid: str) -> int:
        return self._pid_index[pid]

    def query_index(self, qid: str) -> int:
        return self._qid_index[qid]

    def has_passage(self, pid: str) -> bool:
        return pid in self._pid_index

    def has_query(self, qid: str) -> bool:
        return qid in self._qid_index

    def positive_pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """All (query index, positive passage index) pairs as two int64 arrays sorted by query."""
        q, p = self.positives.pairs()
        return q.astype(np.int64), p.astype(np.int64)

    def fingerprint(self) -> str:
        """A hash of everything loaded (texts, labels, sources): the dashboard's cache key."""
        h = hashlib.sha1()
        for arr in (self.passage_ids, self.query_ids):
            h.update("\x1f".join(arr).encode())
        for texts in (self.passage_texts, self.query_texts):  # = "\x1e".join(texts), block by block
            it = iter(texts)
            first = True
            while block := list(itertools.islice(it, TAKE_BLOCK)):
                h.update(("" if first else "\x1e").encode() + "\x1e".join(block).encode())
                first = False
        for q, ps in self.positives.items():  # ascending query order, one pass over the CSR
            h.update(f"{q}:{ps}".encode())
        for name in sorted(self.sources):
            s = self.sources[name]
            h.update(name.encode())
            for a in (s.q_idx, s.p_idx, s.rank, s.score):
                h.update(np.ascontiguousarray(a).tobytes())
        return h.hexdigest()[:16]

    # ------------------------------------------------------------------ building
    def add_passage(self, text: str, pid: str | None = None) -> int:
        """Index of the passage, adding it if new. Without ``pid`` the id is ``text_id(text)``.

        A known id keeps its first text (the same id with another text is the caller's to report).
        """
        pid = text_id(text) if pid is None else str(pid)
        idx = self._pid_index.get(pid)
        if idx is None:
            idx = self._pid_index.append(pid)
            self.passage_texts.append(text)
        return idx

    def find_query(self, text: str, qid: str | None = None) -> int | None:
        """Index of a known query (by id, else by exact text, else by text hash), or None."""
        if qid is not None:
            return self._qid_index.get(str(qid))
        idx = self._qtext_index.get(text)
        return idx if idx is not None else self._qid_index.get(text_id(text))

    def add_query(self, text: str, qid: str | None = None) -> int:
        """Index of the query, adding it if new; aligned by id, else by exact text."""
        if qid is not None:
            qid = str(qid)
            idx = self._qid_index.get(qid)
            if idx is not None:
                return idx
        else:
            idx = self._qtext_index.get(text)
            if idx is not None:
                return idx
            qid = text_id(text)
            idx = self._qid_index.get(qid)
            if idx is not None:
                return idx
        idx = self._qid_index.append(qid)
        self.query_texts.append(text)
        if self._qtext_lazy is not None:
            self._qtext_lazy.setdefault(text, idx)
        return idx

    def unique_source_name(self, name: str) -> str:
        """``name``, or ``name-2``, ``name-3`` … when a source of that name exists."""
        if name not in self.sources:
            return name
        i = 2
        while f"{name}-{i}" in self.sources:
            i += 1
        return f"{name}-{i}"

    def add_source(
        self,
        name: str,
        records: Iterable[QueryRecord],
        path: str = "",
        format: str = "",
        rows_read: int = 0,
        report: SourceReport | None = None,
    ) -> SourceReport:
        """Ingest parsed records as a new source and return its report.

        * queries with no positive (in this file or loaded before) are skipped and counted;
        * duplicate negatives within a query (same passage id) are dropped and counted;
        * a negative whose text equals one of the query's positives is kept and counted
          (the ``near_duplicate`` flag marks it at scoring time);
        * a record's ``split`` (BEIR qrels split) is kept in :attr:`query_splits` (first one wins).

        All or nothing: if ingesting fails part-way (e.g. a text that cannot be encoded), every
        passage, query, positive and split added by this call is removed again before the error
        propagates, so the collection is exactly as it was.
        """
        with self._all_or_nothing():
            return self._add_source(name, records, path, format, rows_read, report)

    @contextlib.contextmanager
    def _all_or_nothing(self):
        """Undo every passage, query, positive and split added inside the block if it raises."""
        n_p, n_q = len(self.passage_ids), len(self.query_ids)
        old_pos = self.positives.state()  # arrays never changed in place: no copy
        old_split_keys, old_split_vals = list(self.query_splits), list(self.query_splits.values())
        try:
            yield
        except BaseException:
            if self._qtext_lazy is not None:
                for text in self.query_texts[n_q:]:
                    if self._qtext_lazy.get(text, -1) >= n_q:
                        del self._qtext_lazy[text]
            self._pid_index.truncate(n_p)
            self._qid_index.truncate(n_q)
            self.passage_texts.truncate(n_p)
            self.query_texts.truncate(n_q)
            self.positives.truncate_to(old_pos)
            old_splits = dict(zip(old_split_keys, old_split_vals))
            if self.query_splits != old_splits:
                self.query_splits.clear()
                self.query_splits.update(old_splits)
            raise

    def _add_source(
        self,
        name: str,
        records: Iterable[QueryRecord],
        path: str,
        format: str,
        rows_read: int,
        report: SourceReport | None,
    ) -> SourceReport:
        name = self.unique_source_name(name)
        rep = report or SourceReport(source=name, path=str(path), format=format)
        rep.source = name
        rep.rows_read = rows_read or rep.rows_read
        # Group by query first: a file may mention the same query on several rows.
        negs: dict[int, dict[int, float]] = {}
        for rec in records:
            if not rec.positives:
                known = self.find_query(rec.query, rec.query_id)
                if known is None or not self.positives.get(known):
                    rep.drop("query with no positive (skipped)")
                    continue
            qi = self.add_query(rec.query, rec.query_id)
            pos = self.positives.setdefault(qi, [])
            for ref in rec.positives:
                pi = self.add_passage(ref.text, ref.id)
                if pi not in pos:
                    pos.append(pi)
            if not pos:
                del self.positives[qi]
                rep.drop("query with no positive (skipped)")
                continue
            if rec.split is not None:
                self.query_splits.setdefault(qi, rec.split)
            seen = negs.setdefault(qi, {})
            pos_texts = {self.passage_texts[p] for p in pos}
            for ref in rec.negatives:
                pi = self.add_passage(ref.text, ref.id)
                if pi in seen:
                    rep.drop("duplicate negative within a query")
                    continue
                seen[pi] = np.nan if ref.score is None else float(ref.score)
                if pi in pos or self.passage_texts[pi] in pos_texts:
                    rep.note("negative identical to a positive (kept, flagged)")
        q_out, p_out, r_out, s_out = [], [], [], []
        for qi, seen in negs.items():
            if not seen:
                rep.note("query with no negatives (K = 0)")
            for rank, (pi, sc) in enumerate(seen.items(), start=1):
                q_out.append(qi)
                p_out.append(pi)
                r_out.append(rank)
                s_out.append(sc)
        queries = set(negs)
        q = np.asarray(q_out, dtype=np.int64)
        order = np.lexsort((np.asarray(r_out, dtype=np.int64), q)) if len(q) else np.zeros(0, np.int64)
        src = Source(
            name=name,
            q_idx=q[order],
            p_idx=np.asarray(p_out, dtype=np.int64)[order],
            rank=np.asarray(r_out, dtype=np.int64)[order],
            score=np.asarray(s_out, dtype=np.float64)[order],
            queries=np.asarray(sorted(queries), dtype=np.int64),
            path=str(path),
            format=format,
        )
        self.sources[name] = src
        rep.queries = len(queries)
        rep.negatives_kept = len(src)
        return rep

    def add_id_source(
        self,
        name: str,
        query_ids: Sequence[str],
        query_texts: Sequence[str],
        positives: Sequence[Sequence[str]] | PositiveIds,
        neg_q: np.ndarray,
        neg_p: np.ndarray,
        neg_score: np.ndarray,
        neg_ids: Sequence[str],
        passage_text: Mapping[str, str],
        splits: Sequence[str | None] | None = None,
        path: str = "",
        format: str = "",
        rows_read: int = 0,
        report: SourceReport | None = None,
    ) -> SourceReport:
        """Vectorised :meth:`add_source` for negatives given by id (TREC runs, negative-ids).

        Query ``j`` (in record order) has id ``query_ids[j]``, text ``query_texts[j]``, positive
        ids ``positives[j]`` (or, as :class:`PositiveIds`, the ``positives.lengths[j]`` next ones of
        ``positives.ids``) and split ``splits[j]``; ids may be Arrow string arrays (``query_ids``,
        ``neg_ids``, the keys of a :class:`KeyedTexts`); its negatives are the rows ``neg_q == j``
        (``neg_q`` ascending, rows in rank order within a query), passage ``neg_ids[neg_p[i]]``
        with score ``neg_score[i]`` (NaN: none). Every text is ``passage_text[id]``. The result
        (indices, order, drops and notes) is exactly what :meth:`add_source` gives for the same
        records (including the notes on ids already loaded with another text, which the loaders
        add for :meth:`add_source`), with per-pair work in numpy and Python work only per unique
        query and passage. ``neg_score`` may be kept as the new source's ``score`` without a copy
        (when no row is dropped), so the caller must not change it afterwards.
        """
        with self._all_or_nothing():
            return self._add_id_source(
                name,
                query_ids,
                query_texts,
                positives,
                _index_array(neg_q),
                _index_array(neg_p),
                np.asarray(neg_score, np.float64),
                neg_ids,
                passage_text,
                splits,
                path,
                format,
                rows_read,
                report,
            )

    def _add_id_source(
        self,
        name,
        query_ids,
        query_texts,
        positives,
        neg_q,
        neg_p,
        neg_score,
        neg_ids,
        passage_text,
        splits,
        path,
        format,
        rows_read,
        report,
    ) -> SourceReport:
        name = self.unique_source_name(name)
        rep = report or SourceReport(source=name, path=str(path), format=format)
        rep.source = name
        rep.rows_read = rows_read or rep.rows_read
        import pyarrow as pa

        nq_rec = len(query_ids)
        # ids as Arrow arrays: looked up in the collection's ids by Arrow hash kernels (no dict)
        qid_arr = as_str_arrow(query_ids)
        neg_arr = as_str_arrow(neg_ids)
        if isinstance(positives, PositiveIds):
            pos_len = np.asarray(positives.lengths, np.int64)
            flat = _PyIds(pos_arr := as_str_arrow(positives.ids))
        else:
            pos_len = np.fromiter(map(len, positives), dtype=np.int64, count=nq_rec)
            flat = list(itertools.chain.from_iterable(positives))
            pos_arr = as_str_arrow(flat)
        neg_keys = _PyIds(neg_ids) if isinstance(neg_ids, pa.Array) else neg_ids
        arrow_qkeys = isinstance(query_texts, KeyedTexts) and isinstance(query_texts.keys, pa.Array)
        if arrow_qkeys:  # per-item reads (rare: texts compared, lazy index) as Python strings
            query_texts = KeyedTexts(query_texts.texts, _PyIds(query_texts.keys))
        n_p0, n_q0 = len(self.passage_ids), len(self.query_ids)
        q_known = self._qid_index.lookup(qid_arr) if n_q0 else np.full(nq_rec, -1, dtype=np.int64)
        # every passage id once, as a code: the loaded ids first, then this source's negative ids,
        # then its positive ids, dictionary-encoded together (one Arrow hash pass); codes follow
        # first occurrence, so a code below n_p0 is the index of a loaded passage
        large = pa.large_string()
        enc = pa.concat_arrays(
            ([self._pid_index.arrow().cast(large)] if n_p0 else [])
            + [neg_arr.cast(large), pos_arr.cast(large)]
        ).dictionary_encode()
        uniq = enc.dictionary  # the id of each code
        codes = np_of(enc.indices).astype(np.int64)
        canon = codes[n_p0 : n_p0 + len(neg_arr)]  # code of each negative id
        pos_code = codes[n_p0 + len(neg_arr) :]  # code of each positive
        del enc, codes, pos_arr
        # ids already loaded with another text (the first text is kept): counted per occurrence
        n_diff = n_qdiff = 0
        if n_p0:
            ix = np.where(canon < n_p0, canon, -1)
            if (ix >= 0).any():
                n_diff = int(
                    _known_with_other_text(ix, self.passage_texts, passage_text, neg_keys)[neg_p].sum()
                )
            ix = np.where(pos_code < n_p0, pos_code, -1)
            if (ix >= 0).any():
                n_diff += int(_known_with_other_text(ix, self.passage_texts, passage_text, flat).sum())
            del ix
        rep.note("passage id given with a different text (first text kept)", n_diff)
        if n_q0 and (q_known >= 0).any():
            n_qdiff = int(_known_with_other_text(q_known, self.query_texts, query_texts, range(nq_rec)).sum())
        rep.note("query id given with a different text (first text kept)", n_qdiff)
        # which records are kept: positives in the record, or the query already has some
        has_pos = np.zeros(n_q0 + 1, dtype=bool)  # the last entry: a query not loaded yet
        has_pos[:-1] = self.positives.counts(n_q0) > 0
        kept = (pos_len > 0) | has_pos[q_known]
        del has_pos
        n_nopos = int(nq_rec - kept.sum())
        pos_q = np.repeat(np.arange(nq_rec, dtype=np.int64), pos_len)  # record of each positive
        pos_k = np.arange(len(pos_q), dtype=np.int64) - np.repeat(np.cumsum(pos_len) - pos_len, pos_len)
        del pos_len
        if kept.all():  # the usual case: no copy of the caller's arrays
            kq, kp, ks = neg_q, neg_p, neg_score
        else:
            row_kept = kept[neg_q] if len(neg_q) else np.zeros(0, dtype=bool)
            kq, kp, ks = neg_q[row_kept], neg_p[row_kept], neg_score[row_kept]
            del row_kept
        kc = canon[kp]  # the code of each kept negative's id
        del canon, kp
        # passages are added in the order add_source meets them: per query, positives then
        # negatives. Place every event on that time line and keep each passage's first time.
        n_pos = np.bincount(pos_q, minlength=nq_rec) if len(pos_q) else np.zeros(nq_rec, np.int64)
        n_neg = np.bincount(kq, minlength=nq_rec) if len(kq) else np.zeros(nq_rec, np.int64)
        start = np.concatenate([[0], np.cumsum(n_pos + n_neg)[:-1]]) if nq_rec else np.zeros(0, np.int64)
        first_time = np.full(len(uniq), np.iinfo(np.int64).max, dtype=np.int64)
        if len(pos_q):
            np.minimum.at(first_time, pos_code, start[pos_q] + pos_k)
        if len(kq):
            neg_start = np.concatenate([[0], np.cumsum(n_neg)[:-1]])  # first kept row of each query
            t = start[kq]  # in place: one array of len(kq) at a time
            t += n_pos[kq]
            t += np.arange(len(kq), dtype=np.int64)
            t -= neg_start[kq]
            np.minimum.at(first_time, kc, t)
            del t, neg_start
        del pos_k, start, n_pos, n_neg
        seen_codes = np.flatnonzero(first_time != np.iinfo(np.int64).max)
        codes = seen_codes[np.argsort(first_time[seen_codes], kind="stable")]
        del first_time, seen_codes
        # passage index of each code: the loaded one, else a new one in first-time order
        code_ids = uniq.take(ints_arrow(codes))
        known = np.where(codes < n_p0, codes, -1)
        new = known < 0
        index_of = np.full(len(uniq), -1, dtype=np.int64)
        index_of[codes] = np.where(new, n_p0 + np.cumsum(new) - 1, known)
        new_arr = code_ids.filter(bool_arrow(new))
        del codes, code_ids, known, new, uniq
        self._pid_index.extend(new_arr.to_pylist(), new_arr)
        append_texts(self.passage_texts, passage_text, new_arr)
        del new_arr
        # queries, in record order: the loaded index, else a new one at the first kept record
        kept_js = np.flatnonzero(kept)
        q_enc = qid_arr.dictionary_encode()
        q_canon = np_of(q_enc.indices).astype(np.int64)[kept_js]
        u, first = np.unique(q_canon, return_index=True)
        order = np.argsort(first, kind="stable")
        u, first = u[order], kept_js[first[order]]  # distinct kept queries, by first record
        known = q_known[first]
        new = known < 0
        q_index = np.full(len(q_enc.dictionary), -1, dtype=np.int64)
        q_index[u] = np.where(new, n_q0 + np.cumsum(new) - 1, known)
        qi_of = np.full(nq_rec, -1, dtype=np.int64)
        qi_of[kept_js] = q_index[q_canon]
        new_js = first[new]  # the record of each new query, in the order they are added
        del q_enc, q_canon, u, first, order, known, new, q_index
        new_q = qid_arr.take(ints_arrow(new_js))
        self._qid_index.extend(new_q.to_pylist(), new_q)
        if self._qtext_lazy is not None:
            for j, qi in zip(new_js.tolist(), qi_of[new_js].tolist()):
                self._qtext_lazy.setdefault(query_texts[j], qi)
        if arrow_qkeys:  # the new queries' texts looked up by their Arrow ids at once
            append_texts(self.query_texts, query_texts.texts, query_texts.keys.arr.take(ints_arrow(new_js)))
        else:
            append_texts(self.query_texts, query_texts, new_js.tolist())
        del new_q, new_js, qid_arr
        # positives (CSR): each record's, after the query's own, each pair once
        self.positives.add_pairs(qi_of[pos_q], index_of[pos_code])
        del pos_q, pos_code
        if splits is not None:
            query_splits = self.query_splits
            for j, qi in zip(kept_js.tolist(), qi_of[kept_js].tolist()):
                if splits[j] is not None:
                    query_splits.setdefault(qi, splits[j])
        # duplicates within a query: the first (best-ranked) occurrence is kept
        p_idx = index_of[kc]
        del kc, index_of  # (temporaries freed early: lower peak memory)
        # the first occurrence of each (query, passage) is kept (np.unique returns first indices)
        dup = np.ones(len(kq), dtype=bool)
        base = np.int64(len(self.passage_ids) + 1)
        for lo, hi in _query_chunks(kq):  # a query's rows in one chunk: bounded temporaries
            key = kq[lo:hi] * base
            key += p_idx[lo:hi]
            dup[np.unique(key, return_index=True)[1] + lo] = False
            del key
        # drops in the order add_source first meets them (the report lists them in that order)
        drops = [
            ("query with no positive (skipped)", n_nopos, int(np.argmin(kept)) if n_nopos else nq_rec),
            ("duplicate negative within a query", int(dup.sum()), int(kq[dup][0]) if dup.any() else nq_rec),
        ]
        for reason, n, _ in sorted(drops, key=lambda d: d[2]):
            rep.drop(reason, n)
        if dup.any():
            kq, p_idx, ks = kq[~dup], p_idx[~dup], ks[~dup]
        del dup
        q_idx = qi_of[kq]
        # rank: 1-based position within the query (rows are grouped by query)
        starts = np.flatnonzero(np.r_[True, kq[1:] != kq[:-1]]) if len(kq) else np.zeros(0, np.int64)
        sizes = np.diff(np.r_[starts, len(kq)])
        rank = np.repeat(starts, sizes)
        np.subtract(np.arange(len(kq), dtype=np.int64), rank, out=rank)
        rank += 1
        del kq, starts, sizes
        # negatives identical to a positive (same passage, or same text)
        all_q, all_p = self.positives.pairs()
        sel = np.isin(all_q, qi_of[kept_js])  # the positives of this file's queries
        pq, pp = all_q[sel].astype(np.int64), all_p[sel].astype(np.int64)
        del all_q, all_p, sel
        if len(q_idx) and len(pq):
            # the text of every passage named here, as the first passage index with an equal
            # text: equal passage, or another passage with the same text
            n_same = _count_identical(self.passage_texts, pq, pp, q_idx, p_idx)
            rep.note("negative identical to a positive (kept, flagged)", n_same)
        kept_q = qi_of[kept]
        has_neg = np.zeros(len(self.query_ids), dtype=bool)
        has_neg[q_idx] = True
        rep.note("query with no negatives (K = 0)", int((~has_neg[kept_q]).sum()))
        if len(q_idx) and (np.diff(q_idx) < 0).any():  # queries known before: sort by (query, rank)
            order = np.lexsort((rank, q_idx))
            q_idx, p_idx, rank, ks = q_idx[order], p_idx[order], rank[order], ks[order]
        src = Source(
            name=name,
            q_idx=q_idx,
            p_idx=p_idx,
            rank=rank,
            score=ks,
            queries=sorted_unique(kept_q).astype(np.int64),
            path=str(path),
            format=format,
        )
        self.sources[name] = src
        rep.queries = len(src.queries)
        rep.negatives_kept = len(src)
        return rep
