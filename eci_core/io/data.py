"""The typed data model shared by loaders, scoring, miners and the dashboard.

A :class:`Collection` holds every query and passage once, the labelled positives per query, and
any number of negative :class:`Source` s aligned on the same queries. Loaders never mutate a
collection while parsing: they build :class:`QueryRecord` s first and then call
:meth:`Collection.add_source`, so a bad file cannot damage what was already loaded.
"""

from __future__ import annotations

import bisect
import contextlib
import copy
import hashlib
import itertools
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


# ====================================================================== texts in Arrow buffers
_TAKE_BLOCK = 16384  # texts made into Python strings at a time by iteration and take()


# ====================================================================== Arrow <-> numpy
# pyarrow imports pandas (~40 MiB) the first time it converts a Python object or makes a numpy
# array (pa.array, pa.scalar, to_numpy, a Python number given to a compute function). The
# loaders convert through these helpers (buffers only), so a load does not import pandas.


def np_of(arr) -> np.ndarray:
    """A numeric or boolean Arrow array (or ChunkedArray) as numpy, as ``to_numpy(zero_copy_only=
    False)`` gives it: a view of the buffer when there is no null, else float64 with NaN."""
    import pyarrow as pa

    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
    n, off, t = len(arr), arr.offset, arr.type
    bufs = arr.buffers()

    def bits(buf) -> np.ndarray:
        return np.unpackbits(np.frombuffer(buf, np.uint8), count=off + n, bitorder="little")[off:].astype(
            bool
        )

    if pa.types.is_boolean(t):
        out = bits(bufs[1]) if n else np.zeros(0, dtype=bool)
    else:
        dt = {"double": np.float64, "float": np.float32, "halffloat": np.float16}.get(str(t)) or np.dtype(
            str(t)
        )
        out = np.frombuffer(bufs[1], dtype=dt)[off : off + n] if n else np.zeros(0, dtype=dt)
    if arr.null_count:
        out = out.astype(np.float64)
        out[~bits(bufs[0])] = np.nan
    return out


def ints_arrow(a: np.ndarray):
    """A numpy integer array as an Arrow array (int64 or int32; the buffer is shared)."""
    import pyarrow as pa

    a = np.ascontiguousarray(a)
    a = a if a.dtype in (np.int32, np.int64) else a.astype(np.int64)
    return pa.Array.from_buffers(
        pa.int32() if a.dtype == np.int32 else pa.int64(), len(a), [None, pa.py_buffer(a)]
    )


def bool_arrow(mask: np.ndarray):
    """A numpy boolean array as an Arrow boolean array."""
    import pyarrow as pa

    mask = np.asarray(mask, dtype=bool)
    return pa.Array.from_buffers(
        pa.bool_(), len(mask), [None, pa.py_buffer(np.packbits(mask, bitorder="little"))]
    )


def str_arrow(values: Sequence[str], large: bool = False):
    """Python strings as an Arrow ``string`` (``large_string``) array, made from one buffer."""
    import pyarrow as pa

    values = values if isinstance(values, list) else list(values)
    offs = np.zeros(len(values) + 1, dtype=np.int64)
    np.cumsum(np.fromiter(map(len, values), dtype=np.int64, count=len(values)), out=offs[1:])
    data = "".join(values).encode("utf-8")
    if len(data) != offs[-1]:  # not all ASCII: byte lengths differ from character lengths
        enc = [v.encode("utf-8") for v in values]
        np.cumsum(np.fromiter(map(len, enc), dtype=np.int64, count=len(enc)), out=offs[1:])
        del enc
    large = large or offs[-1] >= 2**31
    return (pa.LargeStringArray if large else pa.StringArray).from_buffers(
        len(offs) - 1, pa.py_buffer(offs if large else offs.astype(np.int32)), pa.py_buffer(data)
    )


def _blocks_take(blocks: list, starts: np.ndarray, rows: np.ndarray) -> list[str]:
    """The texts at global ``rows`` of the Arrow string ``blocks`` (block ``k`` holds rows
    ``starts[k]`` to ``starts[k + 1] - 1``), as Python strings, in the order of ``rows``."""
    import pyarrow as pa
    import pyarrow.compute as pc

    n = len(rows)
    if n == 0:
        return []
    pool = pa.system_memory_pool()  # malloc: these short-lived buffers go back to the system at once

    def take(block, local):
        return pc.take(block, ints_arrow(local), memory_pool=pool).to_pylist()

    k = np.searchsorted(starts, rows, side="right") - 1
    if k[0] == k[-1] and (k == k[0]).all():  # one block (the usual case): one take
        b = int(k[0])
        return take(blocks[b], rows - starts[b])
    order = np.argsort(k, kind="stable")
    ks = k[order]
    out = np.empty(n, dtype=object)
    bounds = np.flatnonzero(np.r_[True, ks[1:] != ks[:-1], True])
    for lo, hi in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
        b = int(ks[lo])
        sel = order[lo:hi]
        out[sel] = np.fromiter(take(blocks[b], rows[sel] - starts[b]), dtype=object, count=hi - lo)
    return out.tolist()


def _index_or_minus1(found) -> np.ndarray:
    """An Arrow ``index_in`` result as int64, -1 for null (not found)."""
    f = np_of(found)
    return np.where(np.isnan(f), -1, f).astype(np.int64) if f.dtype.kind == "f" else f.astype(np.int64)


class ArrowTextMap(Mapping):
    """Read-only ``id -> text`` over Arrow string blocks (what the vectorised corpus/queries
    readers return): row ``r`` has id ``ids[r]`` (an Arrow string array, ids unique) and the
    ``r``-th text of the concatenated ``blocks``. Neither ids nor texts are Python strings:
    :meth:`rows` and :meth:`missing` look many ids up at once with Arrow's hash kernels, and
    :meth:`TextColumn.extend_rows` adds rows to a collection without copying a block. A single
    lookup (``m[id]``, ``id in m``) builds an ``{id: row}`` dict on first use."""

    def __init__(self, ids, blocks: list):
        self.ids = ids
        self.blocks = blocks
        self.starts = np.cumsum([0] + [len(b) for b in blocks]).astype(np.int64)
        self._dict: dict[str, int] | None = None

    def _index(self) -> dict[str, int]:
        if self._dict is None:
            self._dict = {k: r for r, k in enumerate(self.ids.to_pylist())}
        return self._dict

    def __contains__(self, key: object) -> bool:
        return key in self._index()

    def __getitem__(self, key: str) -> str:
        return self.text_at(self._index()[key])

    def text_at(self, r: int) -> str:
        b = int(np.searchsorted(self.starts, r, side="right")) - 1
        return self.blocks[b][r - int(self.starts[b])].as_py()

    def __iter__(self) -> Iterator[str]:
        return iter(self.ids.to_pylist())

    def __len__(self) -> int:
        return len(self.ids)

    def _lookup(self, keys: Iterable[str]) -> tuple[list[str], np.ndarray]:
        """The keys as a list and the row of each (int64, -1: not here).

        Arrow's ``index_in`` builds a hash table of its value set on every call, so the smaller
        side is hashed: the distinct keys when there are fewer than half as many keys as ids
        (then every id is probed once), else the ids. Cost O(len(keys) + len(ids)) either way, but hashing 3M
        ids for a few keys took ~0.65 s per call, 11 calls in a 1M-query load (now ~0.05 s; a call
        with no key does nothing)."""
        import pyarrow.compute as pc

        keys = keys if isinstance(keys, list) else list(keys)
        if not keys or not len(self.ids):
            return keys, np.full(len(keys), -1, dtype=np.int64)
        arr = str_arrow(keys)
        if 2 * len(keys) >= len(self.ids):  # the key side costs two hashings (distinct keys, value set)
            return keys, _index_or_minus1(pc.index_in(arr, value_set=self.ids))
        enc = arr.dictionary_encode()
        hit = _index_or_minus1(pc.index_in(self.ids, value_set=enc.dictionary))
        row_of = np.full(len(enc.dictionary), -1, dtype=np.int64)
        rows = np.flatnonzero(hit >= 0)
        row_of[hit[rows]] = rows  # ids are unique: one row per distinct key at most
        return keys, row_of[np_of(enc.indices).astype(np.int64)]

    def rows(self, keys: Iterable[str]) -> np.ndarray:
        """The row of each key (int64); KeyError names the first key that is not here."""
        keys, found = self._lookup(keys)
        bad = np.flatnonzero(found < 0)
        if len(bad):
            raise KeyError(keys[int(bad[0])])
        return found

    def missing(self, keys: Iterable[str]) -> list[str]:
        """The keys that are not here, in the order given."""
        keys, found = self._lookup(keys)
        return [keys[i] for i in np.flatnonzero(found < 0).tolist()]


class TextColumn(Sequence):
    """A read-only sequence of ``str`` (a collection's texts or ids) held in Arrow buffers.

    It behaves like a list of str for reading: ``len``, ``c[i]`` (negative too), ``c[a:b]``
    (a list), iteration (texts are made into Python strings in blocks of 65,536), ``==`` with a
    list, ``list(c)``, ``np.asarray(c, dtype=object)``; :meth:`take` returns the texts at many
    indices at once and :meth:`to_arrow` gives the Arrow array. A text lives as a row of one of
    the Arrow string blocks it shares with the reader that produced it (no Python string per text
    at load time, no copy of a block when a collection is copied); texts appended one by one
    (small files, :meth:`Collection.add_passage`) wait in a Python list until Arrow rows follow
    them. Only the loaders (through :class:`Collection`) change it: :meth:`append`,
    :meth:`extend`, :meth:`extend_rows` and the rollback's :meth:`truncate`.

    Memory: the text bytes plus 12 bytes per text (an int64 row and the Arrow offset), against
    ~50 bytes of object header per text (and allocator fragmentation) for a list of str.
    """

    __slots__ = ("_blocks", "_starts", "_starts_l", "_block_no", "_loc", "_tail", "_hash_cache")

    def __init__(self, values: Iterable[str] = ()):
        self._blocks: list = []  # Arrow string arrays, never changed once added
        self._starts = np.zeros(1, dtype=np.int64)  # global first row of each block, then the total
        self._starts_l: list[int] = [0]  # the same as a list (one text looked up by bisect)
        self._block_no: dict[int, int] = {}  # id(block) -> its number (blocks shared with a reader)
        self._loc = np.zeros(0, dtype=np.int64)  # global row of each of the first len(_loc) texts
        self._tail: list[str] = list(values)  # texts after those, as Python strings
        self._hash_cache: tuple[np.ndarray, np.ndarray] | None = None  # per store row: hash, computed

    # ---------------------------------------------------------------- reading
    def __len__(self) -> int:
        return len(self._loc) + len(self._tail)

    def _pos(self, i) -> int:
        n = len(self)
        j = int(i)
        if j < 0:
            j += n
        if not 0 <= j < n:
            raise IndexError("TextColumn index out of range")
        return j

    def __getitem__(self, i):
        if isinstance(i, slice):
            return self.take(range(*i.indices(len(self))))
        na = len(self._loc)
        j = i if type(i) is int and 0 <= i < na else self._pos(i)
        if j >= na:
            return self._tail[j - na]
        r = int(self._loc[j])
        starts = self._starts_l
        b = bisect.bisect_right(starts, r) - 1
        return self._blocks[b][r - starts[b]].as_py()

    def __iter__(self) -> Iterator[str]:
        loc = self._loc
        for lo in range(0, len(loc), _TAKE_BLOCK):
            yield from _blocks_take(self._blocks, self._starts, loc[lo : lo + _TAKE_BLOCK])
        yield from list(self._tail)

    def take(self, indices) -> list[str]:
        """The texts at ``indices`` (ints, negative counted from the end), as a list of str."""
        idx = np.asarray(
            indices
            if not isinstance(indices, range)
            else np.arange(indices.start, indices.stop, indices.step)
        )
        if idx.dtype == object or idx.dtype == bool:
            idx = np.asarray([self._pos(i) for i in idx.tolist()], dtype=np.int64)
        idx = idx.astype(np.int64, copy=False).ravel()
        n = len(self)
        if len(idx) and (idx.min() < -n or idx.max() >= n):
            raise IndexError("TextColumn index out of range")
        if len(idx) and idx.min() < 0:
            idx = np.where(idx < 0, idx + n, idx)
        na = len(self._loc)
        if not na:
            tail = self._tail
            return [tail[i] for i in idx.tolist()]
        out: list = []
        in_tail = idx >= na
        for lo in range(0, len(idx), _TAKE_BLOCK):
            part = idx[lo : lo + _TAKE_BLOCK]
            t = in_tail[lo : lo + _TAKE_BLOCK]
            if not t.any():
                out.extend(_blocks_take(self._blocks, self._starts, self._loc[part]))
                continue
            got = np.empty(len(part), dtype=object)
            a = np.flatnonzero(~t)
            if len(a):
                got[a] = np.fromiter(
                    _blocks_take(self._blocks, self._starts, self._loc[part[a]]), dtype=object, count=len(a)
                )
            tail = self._tail
            for k in np.flatnonzero(t).tolist():
                got[k] = tail[int(part[k]) - na]
            out.extend(got.tolist())
        return out

    def arrow_chunks(self, size: int = _TAKE_BLOCK):
        """The texts in order as Arrow string arrays of at most ``size`` texts each (taken from
        the blocks, no Python string per text), then the list tail as a list of str (texts added
        one by one; none when there are none). For vectorised readers (the lexicon's tokenizer)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        loc = self._loc
        for lo in range(0, len(loc), size):
            rows = loc[lo : lo + size]
            k = np.searchsorted(self._starts, rows, side="right") - 1
            if k[0] == k[-1] and (k == k[0]).all():  # one block: one take
                yield pc.take(self._blocks[int(k[0])], ints_arrow(rows - self._starts[int(k[0])]))
                continue
            order = np.argsort(k, kind="stable")  # one take per block, then back to row order
            ks = k[order]
            bounds = np.flatnonzero(np.r_[True, ks[1:] != ks[:-1], True])
            parts = [
                pc.take(
                    self._blocks[int(ks[a])], ints_arrow(rows[order[a:b]] - self._starts[int(ks[a])])
                ).cast(pa.large_string())
                for a, b in zip(bounds[:-1].tolist(), bounds[1:].tolist())
            ]
            inv = np.empty_like(order)
            inv[order] = np.arange(len(order))
            yield pc.take(pa.concat_arrays(parts), ints_arrow(inv))
        if self._tail:
            yield list(self._tail)

    def _row_hashes(self, rows: np.ndarray) -> np.ndarray:
        """Python's ``hash`` of the UTF-8 bytes of the texts at store ``rows`` (int64), read from
        the Arrow buffers one ``bytes`` at a time. A row's text never changes, so the hashes are
        kept per row (9 bytes a row, shared with copies) and each is computed once."""
        total = int(self._starts[-1])
        cache = self._hash_cache
        if cache is None or len(cache[0]) < total:
            h = np.zeros(total, dtype=np.int64)
            have = np.zeros(total, dtype=bool)
            if cache is not None:
                h[: len(cache[0])] = cache[0]
                have[: len(cache[1])] = cache[1]
            cache = self._hash_cache = (h, have)
        h, have = cache
        need = np.unique(rows[~have[rows]])
        if len(need):
            import pyarrow as pa

            kb = np.searchsorted(self._starts, need, side="right") - 1
            bounds = np.flatnonzero(np.r_[True, kb[1:] != kb[:-1], True])
            for lo, hi in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
                b = int(kb[lo])
                block = self._blocks[b]
                bufs = block.buffers()
                wide = np.int64 if pa.types.is_large_string(block.type) else np.int32
                offs = np.frombuffer(bufs[1], dtype=wide)[block.offset : block.offset + len(block) + 1]
                mv = memoryview(bufs[2]) if bufs[2] is not None else memoryview(b"")
                local = need[lo:hi] - int(self._starts[b])
                h[need[lo:hi]] = np.fromiter(
                    (hash(mv[x:y].tobytes()) for x, y in zip(offs[local].tolist(), offs[local + 1].tolist())),
                    dtype=np.int64,
                    count=hi - lo,
                )
                have[need[lo:hi]] = True
        return h[rows]

    def hashes(self, indices) -> np.ndarray:
        """Python's ``hash`` of the UTF-8 bytes of each text at ``indices`` (int64): equal texts
        have equal hashes (compare the texts of equal hashes to be exact)."""
        idx = np.asarray(indices, dtype=np.int64)
        na = len(self._loc)
        out = np.empty(len(idx), dtype=np.int64)
        a = idx < na
        if a.any():
            out[a] = self._row_hashes(self._loc[idx[a]])
        for k in np.flatnonzero(~a).tolist():
            out[k] = hash(self._tail[int(idx[k]) - na].encode("utf-8", "surrogatepass"))
        return out

    def to_arrow(self):
        """The texts as one ``pyarrow.large_string`` ChunkedArray (copies the text bytes)."""
        import pyarrow as pa

        parts = []
        for lo in range(0, len(self._loc), _TAKE_BLOCK):
            parts.append(
                str_arrow(
                    _blocks_take(self._blocks, self._starts, self._loc[lo : lo + _TAKE_BLOCK]), large=True
                )
            )
        if self._tail:
            parts.append(str_arrow(self._tail, large=True))
        return pa.chunked_array(parts, type=pa.large_string())

    def __array__(self, dtype=None, copy=None):
        arr = np.empty(len(self), dtype=object)
        arr[:] = list(self) if len(self) else []
        return arr if dtype is None else arr.astype(dtype)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, TextColumn) or isinstance(other, (list, tuple)):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __add__(self, other) -> list[str]:
        return list(self) + list(other)

    def __radd__(self, other) -> list[str]:
        return list(other) + list(self)

    def __repr__(self) -> str:
        head = ", ".join(repr(t) for t in self[:3])
        return f"TextColumn([{head}{', ...' if len(self) > 3 else ''}], n={len(self)})"

    # ---------------------------------------------------------------- copying
    def __copy__(self) -> "TextColumn":
        new = TextColumn.__new__(TextColumn)
        new._blocks = list(self._blocks)  # Arrow blocks are immutable: shared
        new._starts = self._starts
        new._starts_l = list(self._starts_l)
        new._block_no = dict(self._block_no)
        new._loc = self._loc  # never written in place (appends and truncation make new arrays)
        new._tail = list(self._tail)
        new._hash_cache = self._hash_cache  # per store row (rows never change): shared
        return new

    def __deepcopy__(self, memo) -> "TextColumn":
        return self.__copy__()

    def __getstate__(self):
        return {"blocks": self._blocks, "loc": self._loc, "tail": self._tail}

    def __setstate__(self, state) -> None:
        self._blocks = list(state["blocks"])
        self._starts = np.cumsum([0] + [len(b) for b in self._blocks]).astype(np.int64)
        self._starts_l = self._starts.tolist()
        self._block_no = {id(b): k for k, b in enumerate(self._blocks)}
        self._loc = state["loc"]
        self._tail = list(state["tail"])
        self._hash_cache = None

    # ---------------------------------------------------------------- building (loaders only)
    def append(self, text: str) -> None:
        self._tail.append(text)

    def extend(self, texts: Iterable[str]) -> None:
        self._tail.extend(texts)

    def _add_block(self, block) -> int:
        k = self._block_no.get(id(block))
        if k is None or self._blocks[k] is not block:
            k = len(self._blocks)
            self._blocks.append(block)
            self._block_no[id(block)] = k
            self._starts = np.append(self._starts, self._starts[-1] + len(block))
            self._starts_l.append(int(self._starts[-1]))
        return int(self._starts[k])

    def _flush_tail(self) -> None:
        """Move the Python-string tail into an Arrow block (so Arrow rows can follow it)."""
        if self._tail:
            first = self._add_block(str_arrow(self._tail, large=True))
            self._loc = np.concatenate([self._loc, np.arange(first, first + len(self._tail), dtype=np.int64)])
            self._tail = []

    def extend_rows(self, texts: ArrowTextMap, rows: np.ndarray) -> None:
        """Append the texts at ``rows`` of ``texts`` (its blocks are shared, not copied)."""
        rows = np.asarray(rows, dtype=np.int64)
        if not len(rows):
            return
        self._flush_tail()
        base = [self._add_block(b) for b in texts.blocks]
        # global row in this column's store: the text's block start here + its offset in the block
        k = np.searchsorted(texts.starts, rows, side="right") - 1
        shift = np.asarray(base, dtype=np.int64) - texts.starts[:-1]
        self._loc = np.concatenate([self._loc, rows + shift[k]])

    def rows_in(self, texts: ArrowTextMap, indices: np.ndarray) -> np.ndarray:
        """For each of ``indices``: the row of ``texts`` this text is stored at, or -1 when it is
        stored elsewhere (a cheap equality test for texts shared with a reader)."""
        idx = np.asarray(indices, dtype=np.int64)
        out = np.full(len(idx), -1, dtype=np.int64)
        na = len(self._loc)
        a = np.flatnonzero(idx < na)
        if not len(a) or not texts.blocks:
            return out
        g = self._loc[idx[a]]
        kb = np.searchsorted(self._starts, g, side="right") - 1
        # the reader's block number of each of this column's blocks (-1: not the reader's); one
        # gather for all texts (a mask per block was O(blocks x texts): 7.5 s at 1M queries)
        theirs = np.full(len(self._blocks), -1, dtype=np.int64)
        for j, b in enumerate(texts.blocks):
            k = self._block_no.get(id(b))
            if k is not None and self._blocks[k] is b:
                theirs[k] = j
        jb = theirs[kb]
        m = np.flatnonzero(jb >= 0)
        out[a[m]] = g[m] - self._starts[kb[m]] + texts.starts[jb[m]]
        return out

    def truncate(self, n: int) -> None:
        """Keep only the first ``n`` texts (the loaders' rollback)."""
        na = len(self._loc)
        if n >= na:
            del self._tail[n - na :]
        else:
            self._tail = []
            self._loc = self._loc[:n].copy()


def take_texts(seq: Sequence[str], indices) -> list[str]:
    """``[seq[i] for i in indices]`` for a list of str, a :class:`TextColumn` (one gather per
    Arrow block, not one lookup per text) or a numpy array."""
    if isinstance(seq, TextColumn):
        return seq.take(indices)
    if isinstance(seq, np.ndarray):
        return seq[np.asarray(indices, dtype=np.int64)].tolist()
    if isinstance(indices, np.ndarray):
        indices = indices.tolist()
    return [seq[i] for i in indices]


class KeyedTexts(Sequence):
    """``[texts[k] for k in keys]`` as a lazy sequence (no string made until read), so that
    :meth:`Collection.add_id_source` can add texts of an :class:`ArrowTextMap` as Arrow rows."""

    def __init__(self, texts: Mapping[str, str], keys: Sequence[str]):
        self.texts, self.keys = texts, keys

    def __len__(self) -> int:
        return len(self.keys)

    def __getitem__(self, j):
        if isinstance(j, slice):
            return [self.texts[k] for k in self.keys[j]]
        return self.texts[self.keys[j]]


def _append_texts(column: TextColumn, texts, keys: list) -> None:
    """``column.extend(texts[k] for k in keys)``: as Arrow rows when ``texts`` is an
    :class:`ArrowTextMap` (or a :class:`KeyedTexts` over one), else as Python strings."""
    if isinstance(texts, KeyedTexts):
        keys = [texts.keys[j] for j in keys]
        texts = texts.texts
    if isinstance(texts, ArrowTextMap) and len(keys):
        column.extend_rows(texts, texts.rows(keys))
    else:
        column.extend(texts[k] for k in keys)


def _known_with_other_text(
    index: Mapping[str, int], ids: Sequence[str], column: TextColumn, texts, keys: Sequence
) -> np.ndarray:
    """Mask over ``ids``: the id is already in ``index`` (so in ``column``) with a text other than
    the new one, ``texts[keys[i]]`` (see :func:`_texts_differ`)."""
    ix = np.fromiter((index.get(i, -1) for i in ids), dtype=np.int64, count=len(ids))
    out = np.zeros(len(ids), dtype=bool)
    cs = np.flatnonzero(ix >= 0)
    if len(cs):
        out[cs] = _texts_differ(column, ix[cs], texts, keys, ix >= 0)
    return out


def _texts_differ(
    column: TextColumn, indices: np.ndarray, texts, keys: Sequence, known: np.ndarray
) -> np.ndarray:
    """Whether ``column[indices[k]] != texts[keys[at[k]]]`` for each k, ``at`` the positions
    where ``known`` is true. A text stored in the reader's own Arrow blocks is equal without being
    read: the collection only stores a row of an :class:`ArrowTextMap` for that row's id
    (:func:`_append_texts`), so it is the reader's text for the same id. The others are compared
    as strings."""
    at = np.flatnonzero(known)
    out = np.zeros(len(indices), dtype=bool)
    if not len(indices):
        return out
    check = np.arange(len(indices))
    base, ks = texts, keys
    if isinstance(texts, KeyedTexts):
        base, ks = texts.texts, texts.keys
    theirs = None
    if isinstance(base, ArrowTextMap):
        check = np.flatnonzero(column.rows_in(base, indices) < 0)
        theirs = base.rows([ks[int(at[k])] for k in check.tolist()])
    if len(check):
        mine = take_texts(column, indices[check])
        for j, (k, a) in enumerate(zip(check.tolist(), mine)):
            other = base.text_at(int(theirs[j])) if theirs is not None else texts[keys[int(at[k])]]
            out[k] = a != other
    return out


def _codes_in(keys: list[str], ids: Sequence[str]) -> np.ndarray:
    """For each key: its position in ``ids`` (the first, when repeated), or -1 (int64)."""
    if not len(keys):
        return np.zeros(0, dtype=np.int64)
    import pyarrow.compute as pc

    found = np_of(pc.index_in(str_arrow(keys), value_set=str_arrow(ids)))
    return (
        np.where(np.isnan(found), -1, found).astype(np.int64)
        if found.dtype.kind == "f"
        else found.astype(np.int64)
    )


def _text_codes(column: TextColumn, pos: np.ndarray, neg: np.ndarray, n: int) -> np.ndarray:
    """For every passage index ``i`` in ``pos`` or ``neg``: the smallest index among them with
    the same text (``code[i] == code[j]`` exactly when the texts are equal); ``i`` elsewhere.

    Texts are compared by Python's hash of the string (made block by block, never kept), and
    exactly only within the groups of equal hash that hold several passages."""
    code = np.arange(n, dtype=np.int64)
    named = np.zeros(n, dtype=bool)
    named[pos] = True
    named[neg] = True
    u = np.flatnonzero(named)
    del named
    h = _text_hashes(column, u)
    order = np.argsort(h, kind="stable")  # ascending index within a group of equal hash
    hs = h[order]
    del h
    if len(hs) > 1 and (hs[1:] == hs[:-1]).any():
        bounds = np.flatnonzero(np.r_[True, hs[1:] != hs[:-1], True])
        big = np.flatnonzero(np.diff(bounds) > 1)
        for lo, hi in zip(bounds[big].tolist(), bounds[big + 1].tolist()):
            members = u[order[lo:hi]]
            seen: dict[str, int] = {}
            for i, t in zip(members.tolist(), take_texts(column, members)):
                code[i] = seen.setdefault(t, i)
    return code


def _text_hashes(column: TextColumn, indices: np.ndarray) -> np.ndarray:
    """:meth:`TextColumn.hashes` (no list of strings; each Arrow row hashed once)."""
    return column.hashes(indices)


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
    positives: dict[int, list[int]] = field(default_factory=dict)
    sources: dict[str, Source] = field(default_factory=dict)
    query_splits: dict[int, str] = field(default_factory=dict)
    _pid_index: dict[str, int] = field(default_factory=dict, repr=False)
    _qid_index: dict[str, int] = field(default_factory=dict, repr=False)
    _qtext_lazy: dict[str, int] | None = field(default=None, repr=False)  # see _qtext_index

    def __post_init__(self) -> None:
        if not isinstance(self.passage_texts, TextColumn):
            self.passage_texts = TextColumn(self.passage_texts)
        if not isinstance(self.query_texts, TextColumn):
            self.query_texts = TextColumn(self.query_texts)

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
        for texts in (self.passage_texts, self.query_texts):  # = "\x1e".join(texts), block by block
            it = iter(texts)
            first = True
            while block := list(itertools.islice(it, _TAKE_BLOCK)):
                h.update(("" if first else "\x1e").encode() + "\x1e".join(block).encode())
                first = False
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
        # the state to restore, in flat lists and arrays (no dict of Python ints: less memory at scale)
        old_keys = list(self.positives)
        old_lens = np.fromiter(map(len, self.positives.values()), dtype=np.int64, count=len(old_keys))
        old_split_keys, old_split_vals = list(self.query_splits), list(self.query_splits.values())
        try:
            yield
        except BaseException:
            for pid in self.passage_ids[n_p:]:
                self._pid_index.pop(pid, None)
            for qid in self.query_ids[n_q:]:
                self._qid_index.pop(qid, None)
            if self._qtext_lazy is not None:
                for text in self.query_texts[n_q:]:
                    if self._qtext_lazy.get(text, -1) >= n_q:
                        del self._qtext_lazy[text]
            del self.passage_ids[n_p:], self.query_ids[n_q:]
            self.passage_texts.truncate(n_p)
            self.query_texts.truncate(n_q)
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
        nq_rec = len(query_ids)
        # ids already loaded with another text (the first text is kept): counted per occurrence
        n_diff = n_qdiff = 0
        if self._pid_index:
            n_diff = int(
                _known_with_other_text(self._pid_index, neg_ids, self.passage_texts, passage_text, neg_ids)[
                    neg_p
                ].sum()
            )
            flat = [pid for lst in positives for pid in lst]
            n_diff += int(
                _known_with_other_text(self._pid_index, flat, self.passage_texts, passage_text, flat).sum()
            )
            del flat
        rep.note("passage id given with a different text (first text kept)", n_diff)
        if self._qid_index:
            n_qdiff = int(
                _known_with_other_text(
                    self._qid_index, query_ids, self.query_texts, query_texts, range(len(query_ids))
                ).sum()
            )
        rep.note("query id given with a different text (first text kept)", n_qdiff)
        # which records are kept: positives in the record, or the query already has some
        kept = np.zeros(nq_rec, dtype=bool)
        for j in range(nq_rec):
            if positives[j]:
                kept[j] = True
            else:
                known = self._qid_index.get(str(query_ids[j]))
                kept[j] = known is not None and bool(self.positives.get(known))
        n_nopos = int(nq_rec - kept.sum())
        # passage vocabulary: negative ids, then positive ids not among them. The positives' codes
        # come from one hash lookup in Arrow (no dict of every negative id)
        kept_js = np.flatnonzero(kept)
        pos_len = np.fromiter(
            (len(positives[j]) for j in kept_js.tolist()), dtype=np.int64, count=len(kept_js)
        )
        pos_flat = [str(pid) for j in kept_js.tolist() for pid in positives[j]]
        pos_q = np.repeat(kept_js, pos_len)
        pos_k = np.arange(len(pos_flat), dtype=np.int64) - np.repeat(np.cumsum(pos_len) - pos_len, pos_len)
        vocab = list(neg_ids)
        pos_code = _codes_in(pos_flat, neg_ids)
        extra: dict[str, int] = {}
        for r in np.flatnonzero(pos_code < 0).tolist():
            pid = pos_flat[r]
            c = extra.get(pid)
            if c is None:
                c = extra[pid] = len(vocab)
                vocab.append(pid)
            pos_code[r] = c
        del extra, pos_len
        if kept.all():  # the usual case: no copy of the caller's arrays
            kq, kp, ks = neg_q, neg_p, neg_score
        else:
            row_kept = kept[neg_q] if len(neg_q) else np.zeros(0, dtype=bool)
            kq, kp, ks = neg_q[row_kept], neg_p[row_kept], neg_score[row_kept]
            del row_kept
        # passages are added in the order add_source meets them: per query, positives then
        # negatives. Place every event on that time line and keep each passage's first time.
        n_pos = np.bincount(pos_q, minlength=nq_rec) if len(pos_q) else np.zeros(nq_rec, np.int64)
        n_neg = np.bincount(kq, minlength=nq_rec) if len(kq) else np.zeros(nq_rec, np.int64)
        start = np.concatenate([[0], np.cumsum(n_pos + n_neg)[:-1]]) if nq_rec else np.zeros(0, np.int64)
        first_time = np.full(len(vocab), np.iinfo(np.int64).max, dtype=np.int64)
        if len(pos_q):
            np.minimum.at(first_time, pos_code, start[pos_q] + pos_k)
        if len(kq):
            neg_start = np.concatenate([[0], np.cumsum(n_neg)[:-1]])  # first kept row of each query
            t = start[kq]  # in place: one array of len(kq) at a time
            t += n_pos[kq]
            t += np.arange(len(kq), dtype=np.int64)
            t -= neg_start[kq]
            np.minimum.at(first_time, kp, t)
            del t, neg_start
        del pos_k, pos_q, start
        seen_codes = np.flatnonzero(first_time != np.iinfo(np.int64).max)
        codes = seen_codes[np.argsort(first_time[seen_codes], kind="stable")]
        del first_time, seen_codes
        index_of = np.full(len(vocab), -1, dtype=np.int64)
        pid_index, pids = self._pid_index, self.passage_ids
        new_pids: list[str] = []
        for c in codes.tolist():
            pid = vocab[c]
            idx = pid_index.get(pid)
            if idx is None:
                idx = len(pids)
                pids.append(pid)
                new_pids.append(pid)
                pid_index[pid] = idx
            index_of[c] = idx
        del codes
        _append_texts(self.passage_texts, passage_text, new_pids)
        del new_pids
        # queries and their positives, in record order
        qi_of = np.full(nq_rec, -1, dtype=np.int64)
        pos_pairs_q: list[int] = []
        pos_pairs_p: list[int] = []
        qid_index, qids = self._qid_index, self.query_ids
        new_q: list[int] = []
        pos_index = index_of[pos_code].tolist()  # passage index of each positive, in record order
        at = 0
        for j in np.flatnonzero(kept).tolist():  # add_query(query_texts[j], query_ids[j]), texts added below
            qid = str(query_ids[j])
            qi = qid_index.get(qid)
            if qi is None:
                qi = len(qids)
                qids.append(qid)
                qid_index[qid] = qi
                new_q.append(j)
                if self._qtext_lazy is not None:
                    self._qtext_lazy.setdefault(query_texts[j], qi)
            qi_of[j] = qi
            pos = self.positives.setdefault(qi, [])
            for pi in pos_index[at : at + len(positives[j])]:
                if pi not in pos:
                    pos.append(pi)
            at += len(positives[j])
            pos_pairs_q.extend([qi] * len(pos))
            pos_pairs_p.extend(pos)
            if splits is not None and splits[j] is not None:
                self.query_splits.setdefault(qi, splits[j])
        _append_texts(self.query_texts, query_texts, new_q)
        del new_q
        # duplicates within a query: the first (best-ranked) occurrence is kept
        p_idx = index_of[kp]
        del kp, index_of, vocab, pos_code, pos_index, pos_flat  # (temporaries freed early: lower peak memory)
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
        if len(q_idx) and pos_pairs_q:
            pq, pp = np.asarray(pos_pairs_q, np.int64), np.asarray(pos_pairs_p, np.int64)
            # the text of every passage named here, as the first passage index with an equal
            # text: equal passage, or another passage with the same text
            tcode = _text_codes(self.passage_texts, pp, p_idx, len(self.passage_ids))
            keys = np.unique(pq * np.int64(len(self.passage_ids) + 1) + tcode[pp])
            n_same = 0
            for lo in range(0, len(q_idx), _CHUNK_ROWS):  # row by row: bounded temporaries
                n_same += int(
                    _pairs_in(
                        q_idx[lo : lo + _CHUNK_ROWS],
                        tcode[p_idx[lo : lo + _CHUNK_ROWS]],
                        keys,
                        len(self.passage_ids) + 1,
                    ).sum()
                )
            del tcode, keys
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
            queries=np.unique(kept_q).astype(np.int64),
            path=str(path),
            format=format,
        )
        self.sources[name] = src
        rep.queries = len(src.queries)
        rep.negatives_kept = len(src)
        return rep
