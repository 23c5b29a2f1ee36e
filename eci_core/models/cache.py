"""The on-disk embedding cache (:class:`EmbeddingCache`): vectors and cross-encoder scores keyed by
``(fingerprint, kind, sha1(text))``, so each text is encoded once per model.

On disk it is a directory tree ``<dir>/<fingerprint>/<kind>/*.arrow`` of Arrow IPC files (one per
``put``, merged by size tier), read through memory maps, kind ``"query"``, ``"passage"`` or
``"ce"`` (cross-encoder pairs, key ``sha1(query + "\\x1f" + passage)``). Shipped read-only caches
(:meth:`EmbeddingCache.export`) are ``np.savez`` archives. The default folder is
:func:`eci_core.config.default_cache_dir`. :func:`eci_core.models.encoding.embed` and
:func:`~eci_core.models.encoding.cross_scores` read and fill it. Why Arrow IPC and not the
hand-written npz shards of earlier versions: BENCHMARKS.md, "Embedding cache vs Arrow IPC".
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
import threading
import time
import warnings
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from eci_core.config import default_cache_dir
from eci_core.models.base import (
    CE_KIND,
    EMBEDDING_KINDS,
    as_pairs,
    check_texts,
    l2_normalize,
    pair_key,
    text_key,
)
from eci_core.models.fingerprint import slug

_SAFE_NAME = re.compile(r"[A-Za-z0-9._-]{1,120}")
_NORMALISED_KINDS = EMBEDDING_KINDS
# Compaction (size-tiered, like an LSM tree; see EmbeddingCache): a row is rewritten at most
# log_FANIN(_SHARD_BYTES / first file size) times, so bytes written grow linearly with the cache.
# Only files this cache wrote or read from its main directory are merged (no listing per put).
_SHARD_BYTES = 64 << 20
_FANIN = 8
_SUFFIX = ".arrow"
_KEY_BYTES = 40


def _dir_name(fingerprint: str) -> str:
    if _SAFE_NAME.fullmatch(fingerprint) and fingerprint not in (".", ".."):
        return fingerprint
    return f"{slug(fingerprint)}-{hashlib.sha1(fingerprint.encode()).hexdigest()[:16]}"


def _as_keys(keys: Any) -> np.ndarray:
    """Keys as an ``S40`` array of lower-case sha1 hex digests."""
    arr = np.asarray(keys)
    if arr.dtype.kind == "U":
        try:
            arr = arr.astype("S")
        except UnicodeEncodeError:
            arr = np.zeros(arr.shape, "S1")  # not hex: refused below
    if arr.ndim != 1 or arr.dtype.kind != "S":
        raise ValueError("keys must be a 1-D sequence of 40-character sha1 hex strings")
    if arr.size and arr.dtype.itemsize == 40 and ((arr.view(np.uint8) - 65).astype(np.uint8) < 6).any():
        arr = np.char.lower(arr)  # A-F
    arr = np.ascontiguousarray(arr, dtype="S40" if arr.dtype.itemsize <= 40 else "S41")
    if arr.size and (arr.dtype.itemsize != 40 or (_HEX_VALUE[arr.view(np.uint8)] == 255).any()):
        raise ValueError("keys must be 40-character sha1 hex strings (see text_key())")
    return arr


_HEX_VALUE = np.full(256, 255, dtype=np.uint8)  # byte -> value of a lower-case hex digit, else 255
_HEX_VALUE[np.frombuffer(b"0123456789abcdef", np.uint8)] = np.arange(16)


def _prefix(keys: np.ndarray) -> np.ndarray:
    """The first 16 hex digits of each key as a ``uint64``: ordered as the keys are, so a sorted
    search runs on integers, not 40-byte strings (keys whose prefixes tie are compared whole)."""
    digits = _HEX_VALUE[np.ascontiguousarray(keys, dtype="S40").view(np.uint8).reshape(-1, 40)[:, :16]]
    out = np.zeros(len(keys), dtype=np.uint64)
    for j in range(16):
        out <<= np.uint64(4)
        out |= digits[:, j]
    return out


class _ShardError(ValueError):
    """A cache file that cannot be used."""


def _check(keys: np.ndarray, vecs: np.ndarray) -> None:
    if keys.ndim != 1 or keys.dtype != np.dtype("S40"):
        raise _ShardError(f"keys have dtype {keys.dtype} and shape {keys.shape}, expected S40 (n,)")
    if (_HEX_VALUE[np.ascontiguousarray(keys).view(np.uint8)] == 255).any():
        raise _ShardError("keys are not 40 lower-case hex digits")
    if vecs.ndim != 2 or vecs.shape[0] != keys.shape[0] or vecs.dtype not in (np.float16, np.float32):
        raise _ShardError(f"vecs have dtype {vecs.dtype} and shape {vecs.shape}, expected float16/32 (n, d)")


def read_npz_shard(path: Path, fingerprint: str, kind: str) -> tuple[np.ndarray, np.ndarray] | None:
    """``(keys S40, vecs float16/float32)`` of an ``np.savez`` shard (an export, or a cache file
    of an earlier version); ``None`` if it belongs to another fingerprint or kind.

    Read with ``allow_pickle=False``; raises :class:`_ShardError` when the file is unreadable or
    malformed (or holds NaN / infinity).
    """
    try:
        with np.load(path, allow_pickle=False) as z:
            names = set(z.files)
            if not {"keys", "vecs", "fingerprint", "kind"} <= names:
                missing = sorted({"keys", "vecs", "fingerprint", "kind"} - names)
                raise _ShardError(f"missing arrays {missing}")
            fp, kd, keys, vecs = z["fingerprint"], z["kind"], z["keys"], z["vecs"]
    except _ShardError:
        raise
    except Exception as err:  # any failure to read a damaged file: zip, header, truncation
        raise _ShardError(f"{type(err).__name__}: {err}") from err
    if fp.dtype.kind != "S" or kd.dtype.kind != "S" or fp.size != 1 or kd.size != 1:
        raise _ShardError("malformed fingerprint/kind metadata")
    meta = (fp.item().decode("utf-8", "replace"), kd.item().decode("utf-8", "replace"))
    if meta != (fingerprint, kind):
        return None  # stale: written for another model or kind
    _check(keys, vecs)
    if not np.isfinite(vecs).all():
        raise _ShardError("vecs contain NaN or infinity")
    return keys, vecs


def _one_chunk(column):
    """The column as one array: its only chunk (zero copy), else the chunks concatenated."""
    return column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()


def read_arrow_shard(path: Path, fingerprint: str, kind: str) -> tuple[np.ndarray, np.ndarray] | None:
    """``(keys S40, vecs float16/float32)`` of a cache file, both read-only views of a memory map
    (nothing is copied: the vectors are read from the page cache when looked up); ``None`` if the
    file belongs to another fingerprint or kind. Raises :class:`_ShardError` when it is unreadable
    or malformed."""
    import pyarrow as pa

    try:
        with pa.memory_map(str(path), "r") as source:
            table = pa.ipc.open_file(source).read_all()
        meta = table.schema.metadata or {}
        if (meta.get(b"fingerprint"), meta.get(b"kind")) != (fingerprint.encode(), kind.encode()):
            return None  # stale: written for another model or kind
        key, vec = (_one_chunk(table.column(name)) for name in ("key", "vec"))
        if key.type != pa.binary(_KEY_BYTES) or not pa.types.is_fixed_size_list(vec.type):
            raise _ShardError(f"columns of types {key.type}, {vec.type}")
        if key.null_count or vec.null_count or vec.values.null_count:
            raise _ShardError("null keys or vectors")
        dim, flat = vec.type.list_size, vec.values
        dtype = {pa.float16(): np.float16, pa.float32(): np.float32}.get(flat.type)
        if dtype is None or len(key) != len(vec) or dim < 1:
            raise _ShardError(f"vectors of type {flat.type}, {len(vec)} for {len(key)} keys")
        keys = np.frombuffer(key.buffers()[1], "S40", len(key), key.offset * _KEY_BYTES)
        size = np.dtype(dtype).itemsize
        start = (vec.offset * dim + flat.offset) * size
        vecs = np.frombuffer(flat.buffers()[1], dtype, len(vec) * dim, start).reshape(len(vec), dim)
        keys.flags.writeable = vecs.flags.writeable = False  # views of the map: never written
        _check(keys, vecs)
    except _ShardError:
        raise
    except Exception as err:  # truncated, not an IPC file, missing column, short buffer
        raise _ShardError(f"{type(err).__name__}: {err}") from err
    return keys, vecs


def _atomic(path: Path, write) -> None:
    """Calls ``write(file)`` on a temporary file in ``path``'s folder, then ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink(missing_ok=True)


def _write_arrow_atomic(path: Path, keys: np.ndarray, vecs: np.ndarray, fingerprint: str, kind: str) -> None:
    """One Arrow IPC file of ``key`` (fixed-size binary 40) and ``vec`` (fixed-size list of the
    vectors' float type) columns, the fingerprint and kind in the schema's metadata."""
    import pyarrow as pa

    n, dim = vecs.shape
    key = pa.FixedSizeBinaryArray.from_buffers(pa.binary(_KEY_BYTES), n, [None, pa.py_buffer(keys.tobytes())])
    vec = pa.FixedSizeListArray.from_arrays(pa.array(np.ascontiguousarray(vecs).reshape(-1)), dim)
    schema = pa.schema(
        [("key", key.type), ("vec", vec.type)], metadata={"fingerprint": fingerprint, "kind": kind}
    )

    def write(f) -> None:
        with pa.ipc.new_file(f, schema) as writer:
            writer.write_batch(pa.record_batch([key, vec], schema=schema))

    _atomic(path, write)


def _write_npz_atomic(path: Path, **arrays: np.ndarray) -> None:
    _atomic(path, lambda f: np.savez(f, **arrays))  # exports: np.savez, atomically


def _find(keys: np.ndarray, pref: np.ndarray, wanted: np.ndarray, wpref: np.ndarray) -> np.ndarray:
    """Position of each of ``wanted`` (prefixes ``wpref``) in sorted ``keys`` (``pref``), or -1."""
    if not len(keys):
        return np.full(len(wanted), -1, dtype=np.int64)
    pos = np.minimum(np.searchsorted(pref, wpref), len(keys) - 1)
    hit = keys[pos] == wanted
    tie = np.flatnonzero(~hit & (pref[pos] == wpref))  # another key with the same prefix first
    if len(tie):
        again = np.minimum(np.searchsorted(keys, wanted[tie]), len(keys) - 1)
        pos[tie], hit[tie] = again, keys[again] == wanted[tie]
    return np.where(hit, pos, -1)


class _Table:
    """Key table of one (fingerprint, kind): ``keys`` sorted (``S40``; ``pref`` their
    :func:`_prefix`), the source (``src``, into ``sources``) and row of each; a source is
    ``(name, keys, vecs)``, a memory-mapped file or vectors in memory (``"<memory>"``). Each key
    is there once (its first source). A put's keys go to a second sorted table (``r*``), merged
    into the first when it passes 1/16 of it or at the next lookup, so a put copies ~1/16 of the
    table. ``small``: main-directory files below ``_SHARD_BYTES`` (compaction candidates) and
    their size; ``loaded``: every file read."""

    __slots__ = tuple("keys pref src row rkeys rpref rsrc rrow sources by_name dim loaded small".split())

    def __init__(self) -> None:
        self.keys = self.rkeys = np.empty(0, "S40")
        self.pref = self.rpref = np.empty(0, np.uint64)
        self.src = self.rsrc = np.empty(0, np.int32)
        self.row = self.rrow = np.empty(0, np.int32)
        self.sources: list[tuple[str, np.ndarray, np.ndarray] | None] = []
        self.by_name: dict[str, int] = {}
        self.dim: int | None = None
        self.loaded: set[str] = set()
        self.small: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self.keys) + len(self.rkeys)

    def settle(self) -> None:
        """Merges the recent table into the main one."""
        if len(self.rkeys):
            pos = np.searchsorted(self.keys, self.rkeys)
            self.keys = np.insert(self.keys, pos, self.rkeys)
            self.pref = np.insert(self.pref, pos, self.rpref)
            self.src = np.insert(self.src, pos, self.rsrc)
            self.row = np.insert(self.row, pos, self.rrow)
            self.rkeys, self.rpref = self.rkeys[:0], self.rpref[:0]
            self.rsrc, self.rrow = self.rsrc[:0], self.rrow[:0]

    def lookup(self, keys: np.ndarray) -> np.ndarray:
        """Position of each key in the (settled) table, -1 where absent."""
        self.settle()
        return _find(self.keys, self.pref, keys, _prefix(keys))

    def new_mask(self, keys: np.ndarray) -> np.ndarray:
        """Mask of the keys not in the table (the first of duplicates inside ``keys``)."""
        wpref = _prefix(keys)
        new = (_find(self.keys, self.pref, keys, wpref) < 0) & (
            _find(self.rkeys, self.rpref, keys, wpref) < 0
        )
        if new.any():
            _, first = np.unique(keys, return_index=True)
            dup = np.ones(len(keys), dtype=bool)
            dup[first] = False
            new &= ~dup
        return new

    def _register(self, name: str, keys: np.ndarray, vecs: np.ndarray) -> int:
        if self.dim is None and len(keys):
            self.dim = int(vecs.shape[1])
        sid = len(self.sources)
        self.sources.append((name, keys, vecs))
        if name != "<memory>":
            self.by_name[name] = sid
        return sid

    def add_many(self, items: list[tuple[str, np.ndarray, np.ndarray]]) -> None:
        """Adds sources (e.g. a folder's files) with one sort; keys already in the table, or in
        an earlier item, keep their source."""
        if len(items) < 2:
            for item in items:
                self.add(*item)
            return
        self.settle()
        ks, ss, rs = [self.keys], [self.src], [self.row]
        for name, keys, vecs in items:
            ks.append(keys)
            ss.append(np.full(len(keys), self._register(name, keys, vecs), dtype=np.int32))
            rs.append(np.arange(len(keys), dtype=np.int32))
        self.keys, first = np.unique(np.concatenate(ks), return_index=True)  # first occurrence
        self.src, self.row = np.concatenate(ss)[first], np.concatenate(rs)[first]
        self.pref = _prefix(self.keys)

    def add(self, name: str, keys: np.ndarray, vecs: np.ndarray) -> None:
        """Adds a source; its keys already in the table keep their source."""
        new = np.flatnonzero(self.new_mask(keys))
        sid = self._register(name, keys, vecs)
        order = new[np.argsort(keys[new])]
        pos = np.searchsorted(self.rkeys, keys[order])
        self.rkeys = np.insert(self.rkeys, pos, keys[order])
        self.rpref = np.insert(self.rpref, pos, _prefix(keys[order]))
        self.rsrc = np.insert(self.rsrc, pos, sid)
        self.rrow = np.insert(self.rrow, pos, order.astype(np.int32))
        if len(self.rkeys) > max(1 << 14, len(self.keys) >> 4):
            self.settle()

    def replace(self, name: str, keys: np.ndarray, vecs: np.ndarray, old: list[str]) -> None:
        """Source ``name`` holds the rows of the sources ``old``: their keys now point to it."""
        sid = len(self.sources)
        self.sources.append((name, keys, vecs))
        self.by_name[name] = sid
        olds = [self.by_name.pop(p) for p in old if p in self.by_name]
        wpref = _prefix(keys)
        for tkeys, tpref, src, row in (
            (self.keys, self.pref, self.src, self.row),
            (self.rkeys, self.rpref, self.rsrc, self.rrow),
        ):
            pos = _find(tkeys, tpref, keys, wpref)
            move = (pos >= 0) & np.isin(src[np.maximum(pos, 0)] if len(src) else pos, olds)
            src[pos[move]] = sid
            row[pos[move]] = np.flatnonzero(move).astype(np.int32)
        for s in olds:
            if not (self.src == s).any() and not (self.rsrc == s).any():
                self.sources[s] = None  # no key points there: its memory map can go

    def drop(self, sid: int) -> None:
        """Forgets a source and its keys (an unusable file: they become misses)."""
        self.settle()
        keep = self.src != sid
        self.keys, self.pref = self.keys[keep], self.pref[keep]
        self.src, self.row = self.src[keep], self.row[keep]
        name = self.sources[sid][0]
        self.by_name.pop(name, None)
        self.small.pop(name, None)
        self.sources[sid] = None

    def gather(self, pos: np.ndarray, normalised: bool) -> tuple[np.ndarray, int | None]:
        """``(len(pos), dim)`` float32 rows at table positions ``pos``, and the first source
        whose rows are not finite (``None`` if all are)."""
        out = np.empty((len(pos), self.dim or 0), dtype=np.float32)
        if not len(pos):
            return out, None
        src, row = self.src[pos], self.row[pos]
        order = np.argsort(src, kind="stable")
        ss = src[order]
        cuts = np.flatnonzero(np.diff(ss)) + 1
        for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, len(ss)]):
            sid = int(ss[lo])
            sel = order[lo:hi]
            sel = sel[np.argsort(row[sel])]  # in file order: the map's pages are read in sequence
            vecs = self.sources[sid][2]
            got = vecs[row[sel]].astype(np.float32, copy=False)
            if not np.isfinite(got).all():
                return out, sid
            if normalised and vecs.dtype == np.float16:
                got = l2_normalize(got)  # undo the float16 rounding of the norm
            out[sel] = got
        return out, None


class EmbeddingCache:
    """On-disk cache of embeddings (and cross-encoder scores), keyed by model and text.

    Layout: ``<directory>/<fingerprint>/<kind>/<name>.arrow``, each an Arrow IPC file with a
    ``key`` column (fixed-size binary: the 40 hex characters of the text's sha1) and a ``vec``
    column (fixed-size list of float16 or float32), the fingerprint and kind in its schema's
    metadata (checked on read: a file written for another fingerprint is ignored). Files are
    written atomically (temporary file, ``fsync``, ``os.replace``); each ``put`` of new entries
    writes one. Compaction is size-tiered: files under ``_SHARD_BYTES`` (64 MiB) are grouped by
    size in tiers of factor ``_FANIN`` (8: sizes in [8**t, 8**(t+1)) bytes), a tier holding 8
    files is merged into one, and files of 64 MiB or more are never rewritten. So caching N
    vectors writes O(N) bytes, a merge holds less than 128 MiB of vectors, and a folder holds about
    size / 64 MiB files plus at most 7 per tier.

    Files are opened as memory maps: vectors are never copied into the process's memory except
    the rows a ``get`` returns (the page cache holds the rest, shared between processes), and the
    process holds only the key table (about 56 bytes per entry: each key, its prefix, file and row, in
    sorted arrays), so a lookup of many keys is one vectorised sorted search whatever the number
    of files. Vectors put by this process into a float16 cache are kept in memory as float32
    (the file holds them rounded), and so are the vectors of a folder that cannot be written.

    Caches written by earlier versions (``*.npz`` shards, ``np.savez``) are converted on first
    read: each shard is rewritten as an Arrow file and deleted, one at a time. An unreadable file
    (or one holding NaN or infinity, found when its rows are read) triggers a warning, is renamed
    ``*.corrupt`` (main directory only) and its entries are recomputed. Another process's files
    are picked up when a lookup misses keys; a file it merged away stays readable through the map
    this process holds until this process merges or forgets it.

    ``readonly_dirs`` (same layout, or the ``np.savez`` shards of :meth:`export`, e.g. a data set's
    shipped ``embeddings/`` folder; the ``.npz`` ones are read into memory) are searched after
    ``directory`` and never written. ``dtype`` (``"float32"`` default or ``"float16"``) is the
    storage type of embeddings; returned vectors are always float32 and, for kinds
    ``"query"``/``"passage"``, re-normalised to unit length after reading. Other kinds (``"ce"``
    scores) are always stored as float32. If the directory cannot be written the cache warns once
    and keeps new entries in memory only.
    """

    def __init__(
        self,
        directory: str | os.PathLike | None = None,
        readonly_dirs: Iterable[str | os.PathLike] = (),
        dtype: str | np.dtype = "float32",
    ):
        if isinstance(readonly_dirs, (str, os.PathLike)):
            readonly_dirs = (readonly_dirs,)
        self.directory = Path(directory).expanduser() if directory is not None else default_cache_dir()
        self.readonly_dirs = tuple(Path(d).expanduser() for d in readonly_dirs)
        dt = np.dtype(dtype)
        if dt not in (np.float16, np.float32):
            raise ValueError(f"dtype={dtype!r}: use 'float32' (default) or 'float16'")
        self.dtype = dt
        self._tables: dict[tuple[str, str], _Table] = {}
        self._lock = threading.RLock()
        self._write_failed = False

    def __repr__(self) -> str:
        ro = f", readonly_dirs={[str(d) for d in self.readonly_dirs]}" if self.readonly_dirs else ""
        return f"EmbeddingCache({str(self.directory)!r}{ro}, dtype={self.dtype.name!r})"

    # -- layout ---------------------------------------------------------------------------
    def shard_dir(self, fingerprint: str, kind: str, root: Path | None = None) -> Path:
        """Folder of the files of ``(fingerprint, kind)`` under ``root`` (default: main dir)."""
        if not _SAFE_NAME.fullmatch(kind):
            raise ValueError(f"kind={kind!r}: use letters, digits, '.', '_' or '-' (e.g. 'passage')")
        return (self.directory if root is None else Path(root)) / _dir_name(fingerprint) / kind

    def _new_path(self, fingerprint: str, kind: str) -> Path:
        name = f"{time.time_ns():020d}-{os.getpid()}-{secrets.token_hex(4)}{_SUFFIX}"
        return self.shard_dir(fingerprint, kind) / name

    def _store_dtype(self, kind: str) -> np.dtype:
        return self.dtype if kind in _NORMALISED_KINDS else np.dtype(np.float32)

    def _load_dir(self, table: _Table, folder: Path, fingerprint: str, kind: str, writable: bool) -> None:
        """Adds the folder's files not read yet (``*.npz`` of the main folder: converted first)."""
        if not folder.is_dir():
            return
        paths = sorted(folder.glob("*.npz")) + sorted(folder.glob(f"*{_SUFFIX}"))
        items: list[tuple[str, np.ndarray, np.ndarray]] = []
        dim = table.dim
        for path in paths:
            skey = str(path)
            if skey in table.loaded:
                continue
            table.loaded.add(skey)
            try:
                if path.suffix == _SUFFIX:
                    got = read_arrow_shard(path, fingerprint, kind)
                else:
                    got = read_npz_shard(path, fingerprint, kind)
                    if got is not None and writable:
                        path, got = self._convert(path, got, fingerprint, kind)
                        skey = str(path)
                        table.loaded.add(skey)
            except _ShardError as err:
                self._report_corrupt(path, str(err), writable)
                continue
            if got is None:
                continue  # stale file of another fingerprint: ignored, entries recomputed
            keys, vecs = got
            if dim is not None and vecs.shape[1] != dim and len(keys):
                why = f"vectors have dimension {vecs.shape[1]}, other files {dim}"
                self._report_corrupt(path, why, writable)
                continue
            if len(keys):
                dim = vecs.shape[1]
            if path.suffix != _SUFFIX:
                name = "<memory>"  # a read-only npz shard, read into memory
                if kind in _NORMALISED_KINDS and vecs.dtype == np.float16:
                    vecs = l2_normalize(vecs)
            else:
                name = skey
            items.append((name, keys, vecs))
            if writable:
                self._track_small(table, path)
        table.add_many(items)

    def _convert(
        self, path: Path, got: tuple[np.ndarray, np.ndarray], fingerprint: str, kind: str
    ) -> tuple[Path, tuple[np.ndarray, np.ndarray] | None]:
        """Rewrites an npz shard of an earlier version as an Arrow file and deletes it (or, if
        the folder cannot be written, keeps it as it is)."""
        new = path.with_suffix(_SUFFIX)
        try:
            _write_arrow_atomic(new, got[0], got[1], fingerprint, kind)
        except OSError:
            return path, got
        path.unlink(missing_ok=True)
        return new, read_arrow_shard(new, fingerprint, kind)

    @staticmethod
    def _report_corrupt(shard: Path, why: str, writable: bool) -> None:
        warnings.warn(
            f"ignoring unreadable embedding-cache shard {shard} ({why}); its entries will be recomputed",
            RuntimeWarning,
            stacklevel=4,
        )
        if writable:
            with contextlib.suppress(OSError):
                os.replace(shard, shard.with_name(shard.name + ".corrupt"))

    @staticmethod
    def _track_small(table: _Table, path: Path) -> None:
        """Records a main-directory file below ``_SHARD_BYTES`` as a compaction candidate."""
        try:
            size = path.stat().st_size
        except OSError:
            return
        if size < _SHARD_BYTES:
            table.small[str(path)] = size

    def _table(self, fingerprint: str, kind: str) -> _Table:
        key = (fingerprint, kind)
        table = self._tables.get(key)
        if table is None:
            table = _Table()
            self._load_dir(table, self.shard_dir(fingerprint, kind), fingerprint, kind, True)
            for ro in self.readonly_dirs:
                self._load_dir(table, self.shard_dir(fingerprint, kind, ro), fingerprint, kind, False)
            self._tables[key] = table
        return table

    # -- lookup / store -------------------------------------------------------------------
    def get(
        self, fingerprint: str, kind: str, keys: Sequence[str] | np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(found, vecs)``: boolean mask over ``keys`` and the float32 rows of the found ones.

        Files written to the main directory by another process since the last read are picked
        up when some keys are missing. Only the rows asked for are read from the files.
        """
        k = _as_keys(keys)
        with self._lock:
            table = self._table(fingerprint, kind)
            pos = table.lookup(k)
            if (pos < 0).any():
                before = len(table)
                self._load_dir(table, self.shard_dir(fingerprint, kind), fingerprint, kind, True)
                if len(table) != before:
                    pos = table.lookup(k)
            while True:
                found = pos >= 0
                if table.dim is None:
                    return found, np.zeros((0, 0), dtype=np.float32)
                out, bad = table.gather(pos[found], kind in _NORMALISED_KINDS)
                if bad is None:
                    return found, out
                name = table.sources[bad][0]
                main = str(self.shard_dir(fingerprint, kind))
                if name != "<memory>":
                    self._report_corrupt(Path(name), "vecs contain NaN or infinity", name.startswith(main))
                table.drop(bad)
                pos = table.lookup(k)

    def put(self, fingerprint: str, kind: str, keys: Sequence[str] | np.ndarray, vecs: np.ndarray) -> int:
        """Stores entries (new keys only) as one new file; returns how many."""
        k = _as_keys(keys)
        v = np.asarray(vecs, dtype=np.float32)
        if v.ndim == 1:
            v = v[:, None]
        if v.ndim != 2 or v.shape[0] != len(k):
            raise ValueError(f"vecs has shape {v.shape}; expected ({len(k)}, d) for {len(k)} keys")
        if not np.isfinite(v).all():
            raise ValueError("vecs contain NaN or infinity; refusing to cache them")
        with self._lock:
            table = self._table(fingerprint, kind)
            if table.dim is not None and len(k) and v.shape[1] != table.dim:
                raise ValueError(
                    f"vectors of dimension {v.shape[1]} for fingerprint {fingerprint!r} ({kind}), "
                    f"but the cache holds dimension {table.dim}: the fingerprint must change when "
                    f"the model changes (or delete {self.shard_dir(fingerprint, kind)})"
                )
            added = table.new_mask(k)
            m = int(added.sum())
            if not m:
                return 0
            k, v = k[added], v[added]
            store = self._store_dtype(kind)
            written: Path | None = None
            if not self._write_failed:
                path = self._new_path(fingerprint, kind)
                try:
                    _write_arrow_atomic(path, k, v.astype(store), fingerprint, kind)
                    written = path
                except OSError as err:
                    self._write_warning(err)
            mapped = self._map_own(written, fingerprint, kind) if store == np.float32 else None
            if mapped is not None:
                table.add(str(written), *mapped)
            else:  # nothing written, a float16 file (it holds the vectors rounded), or already gone
                table.add("<memory>", k, v)
            if written is not None:
                table.loaded.add(str(written))
                self._track_small(table, written)
                try:
                    self._maybe_compact(fingerprint, kind, table)
                except OSError as err:
                    self._write_warning(err)
            return m

    def _write_warning(self, err: OSError) -> None:
        self._write_failed = True
        warnings.warn(
            f"cannot write the embedding cache in {self.directory} ({err}); embeddings "
            "are kept in memory only. Set ECI_CACHE_DIR to a writable folder.",
            RuntimeWarning,
            stacklevel=3,
        )

    @staticmethod
    def _tier(size: int) -> int:
        """Size tier of a small file: ``floor(log_FANIN(size))``."""
        t = 0
        while size >= _FANIN ** (t + 1):
            t += 1
        return t

    def _maybe_compact(self, fingerprint: str, kind: str, table: _Table) -> None:
        """Merges ``_FANIN`` small files of one size tier into one, repeatedly (cascading).

        Works from the table's list of small files (no folder listing). A merge takes the tier's
        oldest files (by name, which starts with the write time) and stops adding once
        ``_SHARD_BYTES`` are gathered, so its output is a full file or a file of a higher tier.
        """
        while True:
            tiers: dict[int, list[str]] = {}
            for path, size in table.small.items():
                tiers.setdefault(self._tier(size), []).append(path)
            ready = [t for t, paths in tiers.items() if len(paths) >= _FANIN]
            if not ready:
                return
            group, total = [], 0
            for path in sorted(tiers[min(ready)]):
                group.append(path)
                total += table.small[path]
                if len(group) == _FANIN or total >= _SHARD_BYTES:
                    break
            self._merge(fingerprint, kind, table, group)

    def _merge(self, fingerprint: str, kind: str, table: _Table, group: list[str]) -> None:
        """Rewrites the files ``group`` (read through the table's maps, or opened) as one file and
        deletes them. Each leaves the candidate list (so the caller's loop ends); one that vanished
        or is unusable is skipped, and a lone usable one is kept and stays a candidate."""
        keys_l, vecs_l, used = [], [], []
        for name in group:
            table.small.pop(name, None)  # merged, vanished or unusable: no candidate now
            sid = table.by_name.get(name)
            if sid is not None:
                got = table.sources[sid][1:]
            else:
                try:
                    got = read_arrow_shard(Path(name), fingerprint, kind)
                except _ShardError:
                    continue  # e.g. merged meanwhile by another process; reported on first read
            if got is None or (vecs_l and got[1].shape[1] != vecs_l[0].shape[1]):
                continue
            keys_l.append(got[0])
            vecs_l.append(got[1])
            used.append(name)
        if len(used) < 2:
            for name in used:
                self._track_small(table, Path(name))
            return
        keys = np.concatenate(keys_l)
        vecs = np.concatenate([v.astype(self._store_dtype(kind), copy=False) for v in vecs_l])
        del keys_l, vecs_l  # at most two copies of the group's vectors alive at once
        _, first = np.unique(keys, return_index=True)
        if len(first) < len(keys):  # the same key in two files (e.g. two processes): keep one
            first.sort()
            keys, vecs = keys[first], vecs[first]
        path = self._new_path(fingerprint, kind)
        _write_arrow_atomic(path, keys, vecs, fingerprint, kind)
        del vecs
        table.loaded.add(str(path))
        self._track_small(table, path)
        got = self._map_own(path, fingerprint, kind)
        if got is None:  # merged away at once by another process: keep reading the maps held
            return
        table.replace(str(path), got[0], got[1], used)
        for name in used:
            Path(name).unlink(missing_ok=True)

    @staticmethod
    def _map_own(path: Path | None, fingerprint: str, kind: str) -> tuple[np.ndarray, np.ndarray] | None:
        """Maps a file this cache just wrote; ``None`` if there is none or it is already gone
        (another process may merge a file as soon as it is in the folder)."""
        if path is None:
            return None
        try:
            return read_arrow_shard(path, fingerprint, kind)
        except _ShardError:
            return None

    def count(self, fingerprint: str, kind: str) -> int:
        """Number of cached entries of ``(fingerprint, kind)`` (main + read-only dirs)."""
        with self._lock:
            return len(self._table(fingerprint, kind))

    def clear(self, fingerprint: str | None = None) -> int:
        """Deletes the main directory's files (of one fingerprint, or all); returns files removed:
        only ``<fingerprint>/{query,passage,ce}/`` ``*.arrow``, ``*.npz`` (earlier versions) and
        ``*.corrupt`` files, never other tools' files (e.g. ``projections/``) or read-only dirs."""
        with self._lock:
            removed = 0
            if fingerprint is None:
                top = self.directory
                roots = [p for p in top.glob("*") if p.is_dir()] if top.is_dir() else []
                self._tables.clear()
            else:
                roots = [self.directory / _dir_name(fingerprint)]
                for key in [k for k in self._tables if k[0] == fingerprint]:
                    del self._tables[key]
            for root in roots:
                for kind in (*_NORMALISED_KINDS, CE_KIND):
                    sub = root / kind
                    if not sub.is_dir():
                        continue
                    for pattern in (f"*{_SUFFIX}", "*.npz", "*.corrupt"):
                        for f in sub.glob(pattern):
                            f.unlink(missing_ok=True)
                            removed += 1
                    with contextlib.suppress(OSError):
                        sub.rmdir()
                with contextlib.suppress(OSError):
                    root.rmdir()
            return removed

    # -- shipped caches -------------------------------------------------------------------
    def export(
        self,
        fingerprint: str,
        kind: str,
        texts: Sequence[str] | Sequence[tuple[str, str]],
        directory: str | os.PathLike,
        dtype: str | np.dtype = "float16",
    ) -> Path:
        """Writes the cached vectors of ``texts`` as one compact shard under ``directory``.

        The result, ``<directory>/<fingerprint>/<kind>/<kind>.npz`` (an ``np.savez`` archive of
        ``keys``, sorted unique ``S40``, ``vecs`` in ``dtype`` storage, float16 by default, and
        the ``fingerprint`` and ``kind``; cross-encoder scores always float32), is readable as a
        ``readonly_dirs`` entry of a later cache. For ``kind="ce"`` pass the ``(query, passage)``
        pairs. Every item must already be cached (call :func:`embed` / :func:`cross_scores` with
        this cache first); otherwise ``KeyError`` says how many are missing. An existing export
        of the same (fingerprint, kind) is replaced. Returns the path.
        """
        dt = np.dtype(dtype)
        if dt not in (np.float16, np.float32):
            raise ValueError(f"dtype={dtype!r}: use 'float16' (default) or 'float32'")
        if kind not in _NORMALISED_KINDS:
            dt = np.dtype(np.float32)
        if kind == CE_KIND:
            raw = [pair_key(q, p) for q, p in as_pairs(texts)]
        else:
            raw = [text_key(t) for t in check_texts(texts)]
        keys = np.unique(_as_keys(raw)) if raw else np.empty(0, "S40")
        found, vecs = self.get(fingerprint, kind, keys)
        if not found.all():
            missing = int((~found).sum())
            what = "pairs" if kind == CE_KIND else "texts"
            raise KeyError(
                f"{missing} of {len(keys)} {what} are not in the cache for {fingerprint!r} "
                f"({kind}): compute them with this cache first, e.g. "
                + (
                    "cross_scores(cross_encoder, pairs, cache)"
                    if kind == CE_KIND
                    else "embed(encoder, texts, kind, cache)"
                )
            )
        path = self.shard_dir(fingerprint, kind, Path(directory)) / f"{kind}.npz"
        if not len(keys):
            vecs = np.zeros((0, 1), dtype=np.float32)
        _write_npz_atomic(
            path,
            keys=keys,
            vecs=vecs.astype(dt),
            fingerprint=np.array(fingerprint.encode("utf-8")),
            kind=np.array(kind.encode("utf-8")),
        )
        return path


__all__ = ["EmbeddingCache"]
