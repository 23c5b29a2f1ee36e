"""The typed data model shared by loaders, scoring, miners and the dashboard.

A :class:`Collection` holds every query and passage once, the labelled positives per query, and
any number of negative :class:`Source` s aligned on the same queries. Loaders never mutate a
collection while parsing: they build :class:`QueryRecord` s first and then call
:meth:`Collection.add_source`, so a bad file cannot damage what was already loaded.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Mapping, NamedTuple, Sequence

import numpy as np


def text_id(text: str) -> str:
    """Stable id of a text that came without one: ``"h" + sha1(utf-8 text)[:16]``."""
    return "h" + hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]


def content_hash(collection: "Collection") -> str:
    """SHA-256 (hex) of everything a score depends on in ``collection``: ids, texts, positives,
    every source's name and arrays (and the query splits when known). Unlike
    :meth:`Collection.fingerprint` (16 hex digits, a quick label) it is collision-resistant, so
    the dashboard can share results between sessions by it (``ui.state.score_key``)."""
    h = hashlib.sha256()

    def part(b: bytes) -> None:  # length-prefixed, so no two layouts hash alike
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)

    for arr in (collection.passage_ids, collection.query_ids, collection.passage_texts, collection.query_texts):
        enc = [x.encode("utf-8", "surrogatepass") for x in arr]
        part(np.fromiter(map(len, enc), dtype=np.int64, count=len(enc)).tobytes())  # the lengths split the join
        part(b"".join(enc))
    for q in sorted(collection.positives):
        part(f"{q}:{list(collection.positives[q])}".encode())
    for name in sorted(collection.sources):
        s = collection.sources[name]
        part(name.encode("utf-8", "surrogatepass"))
        for a in (s.q_idx, s.p_idx, s.rank, s.score):
            part(np.ascontiguousarray(a).tobytes())
    splits = getattr(collection, "query_splits", None) or {}
    part(repr(sorted(splits.items())).encode())
    return h.hexdigest()


class LoadError(ValueError):
    """A problem in a user's file, reported as ``PATH:LINE: field 'F': message``.

    ``line`` is the 1-based line of the file where the problem is (JSONL, JSON, CSV/TSV with the
    header as line 1, TREC), or the data row for Parquet and JSON objects of lists; ``None`` when
    it concerns the whole file.
    """

    def __init__(self, path: str, line: int | None, message: str, field: str | None = None):
        self.path = str(path)
        self.line = line
        self.field = field
        self.message = message
        super().__init__(str(self))

    def __str__(self) -> str:
        where = self.path if self.line is None else f"{self.path}:{self.line}"
        what = f"field '{self.field}': {self.message}" if self.field else self.message
        return f"{where}: {what}"


class PassageRef(NamedTuple):
    """A passage as a file gives it: an id (or None) and its text, with an optional miner score."""

    id: str | None
    text: str
    score: float | None = None


class QueryRecord(NamedTuple):
    """Everything one file says about one query.

    ``line`` is where the query was first seen in the file (for messages).
    """

    query_id: str | None
    query: str
    positives: list[PassageRef]
    negatives: list[PassageRef]
    line: int | None = None
    split: str | None = None  # the qrels split the query's positives came from (BEIR), if known


@dataclass
class SourceReport:
    """What loading one source did: rows read, what was kept, and each drop with its reason.

    ``drops`` maps a reason to how many items were not kept for it; ``notes`` maps a reason to
    how many items were kept but deserve attention (e.g. a negative identical to a positive).
    """

    source: str
    path: str
    format: str
    rows_read: int = 0
    queries: int = 0
    negatives_kept: int = 0
    drops: dict[str, int] = field(default_factory=dict)
    notes: dict[str, int] = field(default_factory=dict)

    def drop(self, reason: str, n: int = 1) -> None:
        if n:
            self.drops[reason] = self.drops.get(reason, 0) + n

    def note(self, reason: str, n: int = 1) -> None:
        if n:
            self.notes[reason] = self.notes.get(reason, 0) + n

    def as_row(self) -> dict:
        return {
            "source": self.source,
            "path": self.path,
            "format": self.format,
            "rows_read": self.rows_read,
            "queries": self.queries,
            "negatives_kept": self.negatives_kept,
            "dropped": "; ".join(f"{k}: {v}" for k, v in self.drops.items()),
            "notes": "; ".join(f"{k}: {v}" for k, v in self.notes.items()),
        }


@dataclass
class LoadReport:
    """The result of loading one or more paths: one :class:`SourceReport` per source created,
    and the one-line errors of paths that could not be loaded."""

    sources: list[SourceReport] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def table(self):
        """The report as a pandas DataFrame (one row per source)."""
        import pandas as pd

        cols = ["source", "path", "format", "rows_read", "queries", "negatives_kept", "dropped", "notes"]
        return pd.DataFrame([s.as_row() for s in self.sources], columns=cols)

    def extend(self, other: "LoadReport") -> None:
        self.sources.extend(other.sources)
        self.errors.extend(other.errors)


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
            self.queries = np.unique(self.q_idx)

    def __len__(self) -> int:
        return int(self.q_idx.shape[0])

    @property
    def query_indices(self) -> np.ndarray:
        """Sorted query indices this source covers, including queries with K = 0 negatives."""
        return self.queries


def _index_array(a) -> np.ndarray:
    """``a`` as an integer numpy array: int32 and int64 arrays are kept as they are (no copy; the
    arrays built from them are int64), anything else becomes int64."""
    arr = np.asarray(a)
    return arr if arr.dtype in (np.int32, np.int64) else arr.astype(np.int64)


def _pairs_in(a: np.ndarray, b: np.ndarray, pa: np.ndarray, pb: np.ndarray, base: int) -> np.ndarray:
    """Whether each pair ``(a[i], b[i])`` is one of the pairs ``(pa[j], pb[j])`` (``0 <= b, pb < base``).

    ``np.isin`` on int64 keys, by binary search in the (small) sorted set of pairs, so the
    temporaries are one key array of ``len(a)``, not the sorted concatenation of both."""
    keys = np.unique(pa * np.int64(base) + pb)
    if not len(keys):
        return np.zeros(len(a), dtype=bool)
    k = a * np.int64(base)
    k += b
    pos = np.searchsorted(keys, k)
    np.minimum(pos, len(keys) - 1, out=pos)
    return keys[pos] == k


class IdTextMap(Mapping):
    """Read-only ``id -> text`` view of a collection's passages or queries (no copy)."""

    def __init__(self, ids: list[str], texts: list[str], index: dict[str, int]):
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

    ``query_splits`` maps a query index to the qrels split (``"train"``, ``"dev"``, ``"test"`` …)
    its positives were read from; it is empty when the data carries no splits (every format but
    BEIR).
    """

    passage_ids: list[str] = field(default_factory=list)
    passage_texts: list[str] = field(default_factory=list)
    query_ids: list[str] = field(default_factory=list)
    query_texts: list[str] = field(default_factory=list)
    positives: dict[int, list[int]] = field(default_factory=dict)
    sources: dict[str, Source] = field(default_factory=dict)
    query_splits: dict[int, str] = field(default_factory=dict)
    _pid_index: dict[str, int] = field(default_factory=dict, repr=False)
    _qid_index: dict[str, int] = field(default_factory=dict, repr=False)
    _qtext_index: dict[str, int] = field(default_factory=dict, repr=False)

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
        qs, ps = [], []
        for q in sorted(self.positives):
            for p in self.positives[q]:
                qs.append(q)
                ps.append(p)
        return np.asarray(qs, dtype=np.int64), np.asarray(ps, dtype=np.int64)

    def fingerprint(self) -> str:
        """A hash of everything loaded (texts, labels, sources): the dashboard's cache key."""
        h = hashlib.sha1()
        for arr in (self.passage_ids, self.query_ids):
            h.update("\x1f".join(arr).encode())
        h.update("\x1e".join(self.passage_texts).encode())
        h.update("\x1e".join(self.query_texts).encode())
        for q in sorted(self.positives):
            h.update(f"{q}:{self.positives[q]}".encode())
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
            idx = len(self.passage_ids)
            self.passage_ids.append(pid)
            self.passage_texts.append(text)
            self._pid_index[pid] = idx
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
        idx = len(self.query_ids)
        self.query_ids.append(qid)
        self.query_texts.append(text)
        self._qid_index[qid] = idx
        self._qtext_index.setdefault(text, idx)
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
        # the state to restore, in flat lists and arrays (no dict of Python ints: less memory at scale)
        old_keys = list(self.positives)
        old_lens = np.fromiter(map(len, self.positives.values()), dtype=np.int64, count=len(old_keys))
        old_split_keys, old_split_vals = list(self.query_splits), list(self.query_splits.values())
        try:
            yield
        except BaseException:
            for pid in self.passage_ids[n_p:]:
                self._pid_index.pop(pid, None)
            for qid, text in zip(self.query_ids[n_q:], self.query_texts[n_q:]):
                self._qid_index.pop(qid, None)
                if self._qtext_index.get(text, -1) >= n_q:
                    del self._qtext_index[text]
            del self.passage_ids[n_p:], self.passage_texts[n_p:], self.query_ids[n_q:], self.query_texts[n_q:]
            old_pos = set(old_keys)
            for q in [q for q in self.positives if q not in old_pos]:
                del self.positives[q]
            for q, k in zip(old_keys, old_lens.tolist()):
                del self.positives[q][k:]
            old_splits = dict(zip(old_split_keys, old_split_vals))
            if self.query_splits != old_splits:
                self.query_splits.clear()
                self.query_splits.update(old_splits)
            raise

    def _add_source(self, name: str, records: Iterable[QueryRecord], path: str, format: str, rows_read: int,
                    report: SourceReport | None) -> SourceReport:
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
        positives: Sequence[Sequence[str]],
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
        ids ``positives[j]`` and split ``splits[j]``; its negatives are the rows ``neg_q == j``
        (``neg_q`` ascending, rows in rank order within a query), passage ``neg_ids[neg_p[i]]``
        with score ``neg_score[i]`` (NaN: none). Every text is ``passage_text[id]``. The result
        (indices, order, drops and notes) is exactly what :meth:`add_source` gives for the same
        records (including the notes on ids already loaded with another text, which the loaders
        add for :meth:`add_source`), with per-pair work in numpy and Python work only per unique
        query and passage. ``neg_score`` may be kept as the new source's ``score`` without a copy
        (when no row is dropped), so the caller must not change it afterwards.
        """
        with self._all_or_nothing():
            return self._add_id_source(name, query_ids, query_texts, positives, _index_array(neg_q),
                                       _index_array(neg_p), np.asarray(neg_score, np.float64), neg_ids,
                                       passage_text, splits, path, format, rows_read, report)

    def _add_id_source(self, name, query_ids, query_texts, positives, neg_q, neg_p, neg_score, neg_ids,
                       passage_text, splits, path, format, rows_read, report) -> SourceReport:
        name = self.unique_source_name(name)
        rep = report or SourceReport(source=name, path=str(path), format=format)
        rep.source = name
        rep.rows_read = rows_read or rep.rows_read
        nq_rec = len(query_ids)
        # ids already loaded with another text (the first text is kept): counted per occurrence
        pid_index, ptexts_now = self._pid_index, self.passage_texts
        n_diff = 0
        if pid_index:
            differs = np.zeros(len(neg_ids), dtype=bool)
            for c, pid in enumerate(neg_ids):
                i = pid_index.get(pid)
                if i is not None and ptexts_now[i] != passage_text[pid]:
                    differs[c] = True
            n_diff = int(differs[neg_p].sum()) if differs.any() else 0
            for lst in positives:
                for pid in lst:
                    i = pid_index.get(pid)
                    if i is not None and ptexts_now[i] != passage_text[pid]:
                        n_diff += 1
        rep.note("passage id given with a different text (first text kept)", n_diff)
        qi_index = self._qid_index
        rep.note("query id given with a different text (first text kept)",
                 sum(1 for q, t in zip(query_ids, query_texts)
                     if q in qi_index and self.query_texts[qi_index[q]] != t) if qi_index else 0)
        # which records are kept: positives in the record, or the query already has some
        kept = np.zeros(nq_rec, dtype=bool)
        for j in range(nq_rec):
            if positives[j]:
                kept[j] = True
            else:
                known = self._qid_index.get(str(query_ids[j]))
                kept[j] = known is not None and bool(self.positives.get(known))
        n_nopos = int(nq_rec - kept.sum())
        # passage vocabulary: negative ids, then positive ids not among them
        code_of = {pid: i for i, pid in enumerate(neg_ids)}
        vocab = list(neg_ids)
        pos_q: list[int] = []
        pos_k: list[int] = []
        pos_code: list[int] = []
        for j in np.flatnonzero(kept).tolist():
            for k, pid in enumerate(positives[j]):
                c = code_of.get(pid)
                if c is None:
                    c = code_of[pid] = len(vocab)
                    vocab.append(pid)
                pos_q.append(j)
                pos_k.append(k)
                pos_code.append(c)
        if kept.all():  # the usual case: no copy of the caller's arrays
            kq, kp, ks = neg_q, neg_p, neg_score
        else:
            row_kept = kept[neg_q] if len(neg_q) else np.zeros(0, dtype=bool)
            kq, kp, ks = neg_q[row_kept], neg_p[row_kept], neg_score[row_kept]
            del row_kept
        # passages are added in the order add_source meets them: per query, positives then
        # negatives. Place every event on that time line and keep each passage's first time.
        n_pos = np.bincount(np.asarray(pos_q, np.int64), minlength=nq_rec) if pos_q else np.zeros(nq_rec, np.int64)
        n_neg = np.bincount(kq, minlength=nq_rec) if len(kq) else np.zeros(nq_rec, np.int64)
        start = np.concatenate([[0], np.cumsum(n_pos + n_neg)[:-1]]) if nq_rec else np.zeros(0, np.int64)
        first_time = np.full(len(vocab), np.iinfo(np.int64).max, dtype=np.int64)
        if pos_q:
            pq_arr = np.asarray(pos_q, np.int64)
            np.minimum.at(first_time, np.asarray(pos_code, np.int64), start[pq_arr] + np.asarray(pos_k, np.int64))
        if len(kq):
            neg_start = np.concatenate([[0], np.cumsum(n_neg)[:-1]])  # first kept row of each query
            t = start[kq]  # in place: one array of len(kq) at a time
            t += n_pos[kq]
            t += np.arange(len(kq), dtype=np.int64)
            t -= neg_start[kq]
            np.minimum.at(first_time, kp, t)
            del t, neg_start
        del pos_k, start
        seen_codes = np.flatnonzero(first_time != np.iinfo(np.int64).max)
        codes = seen_codes[np.argsort(first_time[seen_codes], kind="stable")]
        del first_time, seen_codes
        index_of = np.full(len(vocab), -1, dtype=np.int64)
        pid_index, pids, ptexts = self._pid_index, self.passage_ids, self.passage_texts
        for c in codes.tolist():
            pid = vocab[c]
            idx = pid_index.get(pid)
            if idx is None:
                idx = len(pids)
                pids.append(pid)
                ptexts.append(passage_text[pid])
                pid_index[pid] = idx
            index_of[c] = idx
        del codes
        # queries and their positives, in record order
        qi_of = np.full(nq_rec, -1, dtype=np.int64)
        pos_pairs_q: list[int] = []
        pos_pairs_p: list[int] = []
        for j in np.flatnonzero(kept).tolist():
            qi = self.add_query(query_texts[j], query_ids[j])
            qi_of[j] = qi
            pos = self.positives.setdefault(qi, [])
            for pid in positives[j]:
                pi = int(index_of[code_of[pid]])
                if pi not in pos:
                    pos.append(pi)
            pos_pairs_q.extend([qi] * len(pos))
            pos_pairs_p.extend(pos)
            if splits is not None and splits[j] is not None:
                self.query_splits.setdefault(qi, splits[j])
        # duplicates within a query: the first (best-ranked) occurrence is kept
        p_idx = index_of[kp]
        del kp, index_of, code_of, vocab, pos_code  # (temporaries freed early: lower peak memory)
        # the first occurrence of each (query, passage) is kept (np.unique returns first indices)
        dup = np.ones(len(kq), dtype=bool)
        if len(kq):
            key = kq * np.int64(len(self.passage_ids) + 1)
            key += p_idx
            dup[np.unique(key, return_index=True)[1]] = False
            del key
        # drops in the order add_source first meets them (the report lists them in that order)
        drops = [("query with no positive (skipped)", n_nopos, int(np.argmin(kept)) if n_nopos else nq_rec),
                 ("duplicate negative within a query", int(dup.sum()), int(kq[dup][0]) if dup.any() else nq_rec)]
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
        if len(q_idx) and pos_pairs_q:
            pq, pp = np.asarray(pos_pairs_q, np.int64), np.asarray(pos_pairs_p, np.int64)
            same = _pairs_in(q_idx, p_idx, pq, pp, len(self.passage_ids) + 1)
            tcode: dict[str, int] = {}
            for pi in pp.tolist():
                tcode.setdefault(self.passage_texts[pi], len(tcode))
            # text code of every passage a negative names (-1: not a positive's text), no sort
            named = np.zeros(len(self.passage_ids), dtype=bool)
            named[p_idx] = True
            u = np.flatnonzero(named)
            del named
            lut = np.full(len(self.passage_ids), -1, dtype=np.int64)
            lut[u] = np.fromiter((tcode.get(self.passage_texts[i], -1) for i in u.tolist()), np.int64, count=len(u))
            del u
            neg_t = lut[p_idx]
            del lut
            pos_t = np.asarray([tcode[self.passage_texts[i]] for i in pp.tolist()], np.int64)
            hit = neg_t >= 0
            if hit.any():
                rows = np.flatnonzero(hit)
                same[rows] |= _pairs_in(q_idx[rows], neg_t[rows], pq, pos_t, len(tcode) + 1)
            del neg_t, hit
            rep.note("negative identical to a positive (kept, flagged)", int(same.sum()))
            del same
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
            queries=np.unique(kept_q).astype(np.int64),
            path=str(path),
            format=format,
        )
        self.sources[name] = src
        rep.queries = len(src.queries)
        rep.negatives_kept = len(src)
        return rep
