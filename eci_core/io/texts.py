"""The Arrow text store: texts and ids held in Arrow string buffers, not Python strings.

:class:`TextColumn` is a collection's read-only sequence of texts (rows of Arrow blocks shared
with the reader that produced them); :class:`ArrowTextMap` is a reader's ``id -> text`` over
Arrow blocks, looked up many ids at once with Arrow's hash kernels; :func:`take_texts` reads
many texts at once. The ``*_arrow`` / :func:`np_of` helpers convert between numpy and Arrow
through buffers only (no pandas import).
"""

from __future__ import annotations

import bisect
from typing import Iterable, Iterator, Mapping, Sequence

import numpy as np


# ====================================================================== texts in Arrow buffers
TAKE_BLOCK = 16384  # texts made into Python strings at a time by iteration and take()


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


def as_str_arrow(values):
    """``values`` as an Arrow string array: an Arrow (large) string array as it is, a list of
    str through :func:`str_arrow`, anything else through ``str`` of each value."""
    import pyarrow as pa

    if isinstance(values, pa.Array):
        return values
    values = values if isinstance(values, list) else list(values)
    try:
        return str_arrow(values)
    except TypeError:  # not all str (e.g. ints given as ids)
        return str_arrow([str(v) for v in values])


def lookup_rows(keys, ids) -> np.ndarray:
    """The row of each of ``keys`` in ``ids`` (both Arrow string arrays, ``ids`` unique), int64,
    -1 where a key is not there. No Python dict: Arrow's ``index_in`` hash kernel.

    ``index_in`` builds a hash table of its value set on every call, so the smaller side is
    hashed: the distinct keys when there are fewer than half as many keys as ids (then every id
    is probed once), else the ids. Cost O(len(keys) + len(ids)) either way, but hashing 3M ids
    for a few keys took ~0.65 s per call, 11 calls in a 1M-query load (now ~0.05 s)."""
    import pyarrow.compute as pc

    if not len(keys) or not len(ids):
        return np.full(len(keys), -1, dtype=np.int64)
    if 2 * len(keys) >= len(ids):  # the key side costs two hashings (distinct keys, value set)
        return _index_or_minus1(pc.index_in(keys, value_set=ids))
    enc = keys.dictionary_encode()
    hit = _index_or_minus1(pc.index_in(ids, value_set=enc.dictionary))
    row_of = np.full(len(enc.dictionary), -1, dtype=np.int64)
    rows = np.flatnonzero(hit >= 0)
    row_of[hit[rows]] = rows  # ids are unique: one row per distinct key at most
    return row_of[np_of(enc.indices).astype(np.int64)]


class IdIndex(Mapping):
    """``id -> row`` over a list of unique ids (a collection's passage or query ids).

    Many ids are looked up at once by :meth:`lookup` through Arrow's hash kernels against an
    Arrow copy of the ids (extended as ids are added; no Python dict); single lookups (``get``,
    ``in``, ``[]``) build an ``{id: row}`` dict on their first use, kept up to date from then on.
    A bulk load (:meth:`Collection.add_id_source`) never needs the dict. Only the collection
    changes the ids, through :meth:`append`, :meth:`extend` and :meth:`truncate`."""

    def __init__(self, ids: list[str]):
        self.ids = ids
        self._dict: dict[str, int] | None = None
        self._arrow = None  # Arrow string array of ids[:len(_arrow)]
        self._chunks: list = []  # Arrow arrays of the ids after those (concatenated on use)

    # ---------------------------------------------------------------- reading
    def _index(self) -> dict[str, int]:
        if self._dict is None:
            self._dict = {k: r for r, k in enumerate(self.ids)}
        return self._dict

    def __getitem__(self, key: str) -> int:
        return self._index()[key]

    def get(self, key, default=None):
        return self._index().get(key, default)

    def __contains__(self, key: object) -> bool:
        return key in self._index()

    def __iter__(self) -> Iterator[str]:
        return iter(self.ids)

    def __len__(self) -> int:
        return len(self.ids)

    def arrow(self):
        """The ids as one Arrow string array."""
        import pyarrow as pa

        have = 0 if self._arrow is None else len(self._arrow)
        have += sum(len(c) for c in self._chunks)
        if have < len(self.ids):  # ids appended one by one (add_passage / add_query)
            self._chunks.append(str_arrow(self.ids[have:]))
        if self._chunks:
            parts = ([self._arrow] if self._arrow is not None else []) + self._chunks
            self._arrow = pa.concat_arrays([c.cast(pa.large_string()) for c in parts])
            self._chunks = []
        if self._arrow is None:
            self._arrow = str_arrow([], large=True)
        return self._arrow

    def lookup(self, keys) -> np.ndarray:
        """The row of each key (int64, -1: not here); ``keys`` an Arrow string array or strs."""
        import pyarrow as pa

        keys = as_str_arrow(keys)
        if not len(keys) or not len(self.ids):
            return np.full(len(keys), -1, dtype=np.int64)
        ids = self.arrow()
        if keys.type != ids.type:
            keys = keys.cast(pa.large_string())
        return lookup_rows(keys, ids)

    # ---------------------------------------------------------------- changing (the collection only)
    def append(self, key: str) -> int:
        r = len(self.ids)
        self.ids.append(key)
        if self._dict is not None:
            self._dict[key] = r
        return r

    def extend(self, keys: list[str], arrow=None) -> None:
        """Append new ids (unique, none here yet); ``arrow``: the same ids as an Arrow array."""
        r = len(self.ids)
        have = 0 if self._arrow is None else len(self._arrow)
        have += sum(len(c) for c in self._chunks)
        self.ids.extend(keys)
        if arrow is not None and have == r:
            self._chunks.append(arrow)
        if self._dict is not None:
            self._dict.update(zip(keys, range(r, r + len(keys))))

    def truncate(self, n: int) -> None:
        """Keep the first ``n`` ids (the loaders' rollback)."""
        if self._dict is not None:
            for k in self.ids[n:]:
                self._dict.pop(k, None)
        del self.ids[n:]
        arr = self.arrow() if (self._arrow is not None or self._chunks) else None
        self._arrow = None if arr is None else arr.slice(0, min(n, len(arr)))
        self._chunks = []

    def __deepcopy__(self, memo) -> "IdIndex":
        import copy as _copy

        new = IdIndex.__new__(IdIndex)
        new.ids = _copy.deepcopy(self.ids, memo)
        new._dict = None if self._dict is None else dict(self._dict)
        new._arrow, new._chunks = self._arrow, list(self._chunks)  # Arrow arrays are immutable: shared
        return new


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

    def _lookup(self, keys) -> tuple[list[str] | object, np.ndarray]:
        """The keys (a list, or the Arrow string array given) and the row of each (int64, -1:
        not here); see :func:`lookup_rows`."""
        import pyarrow as pa

        if not isinstance(keys, pa.Array):
            keys = keys if isinstance(keys, list) else list(keys)
            if not keys or not len(self.ids):
                return keys, np.full(len(keys), -1, dtype=np.int64)
            return keys, lookup_rows(str_arrow(keys), self.ids)
        return keys, lookup_rows(keys, self.ids)

    def rows(self, keys: Iterable[str]) -> np.ndarray:
        """The row of each key (int64); KeyError names the first key that is not here."""
        keys, found = self._lookup(keys)
        bad = np.flatnonzero(found < 0)
        if len(bad):
            k = keys[int(bad[0])]
            raise KeyError(k if isinstance(k, str) else k.as_py())
        return found

    def missing(self, keys: Iterable[str]) -> list[str]:
        """The keys that are not here, in the order given."""
        keys, found = self._lookup(keys)
        miss = np.flatnonzero(found < 0).tolist()
        return [keys[i] for i in miss] if isinstance(keys, list) else [keys[i].as_py() for i in miss]


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
        for lo in range(0, len(loc), TAKE_BLOCK):
            yield from _blocks_take(self._blocks, self._starts, loc[lo : lo + TAKE_BLOCK])
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
        for lo in range(0, len(idx), TAKE_BLOCK):
            part = idx[lo : lo + TAKE_BLOCK]
            t = in_tail[lo : lo + TAKE_BLOCK]
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

    def arrow_chunks(self, size: int = TAKE_BLOCK):
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

    def byte_lengths(self, indices) -> np.ndarray:
        """The UTF-8 byte length of each text at ``indices`` (int64), read from the Arrow offsets
        (no string made): equal texts have equal lengths, so only texts of equal length need
        comparing. Costs one pass over the offsets of every block (ask for many at once)."""
        import pyarrow as pa

        idx = np.asarray(indices, dtype=np.int64)
        na = len(self._loc)
        out = np.empty(len(idx), dtype=np.int64)
        a = np.flatnonzero(idx < na)
        if len(a):
            per_row = []  # the length of every row of the store, block after block
            for block in self._blocks:
                wide = np.int64 if pa.types.is_large_string(block.type) else np.int32
                offs = np.frombuffer(block.buffers()[1], dtype=wide) if len(block) else np.zeros(1, wide)
                per_row.append(np.diff(offs[block.offset : block.offset + len(block) + 1]))
            out[a] = np.concatenate(per_row)[self._loc[idx[a]]]
        for k in np.flatnonzero(idx >= na).tolist():
            out[k] = len(self._tail[int(idx[k]) - na].encode("utf-8", "surrogatepass"))
        return out

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
        for lo in range(0, len(self._loc), TAKE_BLOCK):
            parts.append(
                str_arrow(
                    _blocks_take(self._blocks, self._starts, self._loc[lo : lo + TAKE_BLOCK]), large=True
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


def append_texts(column: TextColumn, texts, keys: list) -> None:
    """``column.extend(texts[k] for k in keys)``: as Arrow rows when ``texts`` is an
    :class:`ArrowTextMap` (or a :class:`KeyedTexts` over one), else as Python strings."""
    if isinstance(texts, KeyedTexts):
        keys = [texts.keys[j] for j in keys]
        texts = texts.texts
    if isinstance(texts, ArrowTextMap) and len(keys):
        column.extend_rows(texts, texts.rows(keys))
    else:
        keys = keys.to_pylist() if hasattr(keys, "to_pylist") else keys  # Arrow ids
        column.extend(texts[k] for k in keys)


def texts_differ(
    column: TextColumn, indices: np.ndarray, texts, keys: Sequence, known: np.ndarray
) -> np.ndarray:
    """Whether ``column[indices[k]] != texts[keys[at[k]]]`` for each k, ``at`` the positions
    where ``known`` is true. A text stored in the reader's own Arrow blocks is equal without being
    read: the collection only stores a row of an :class:`ArrowTextMap` for that row's id
    (:func:`append_texts`), so it is the reader's text for the same id. The others are compared
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


def text_codes(column: TextColumn, pos: np.ndarray, neg: np.ndarray, n: int) -> np.ndarray:
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
