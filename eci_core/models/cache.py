"""The on-disk embedding cache (:class:`EmbeddingCache`): vectors and cross-encoder scores keyed by
``(fingerprint, kind, sha1(text))``, so each text is encoded once per model.

On disk it is a directory tree ``<dir>/<fingerprint>/<kind>/*.npz`` of shards written with
``np.savez`` (no pickle), kind ``"query"``, ``"passage"`` or ``"ce"`` (cross-encoder pairs, key
``sha1(query + "\\x1f" + passage)``). The default folder is
:func:`eci_core.config.default_cache_dir`. :func:`eci_core.models.encoding.embed` and
:func:`~eci_core.models.encoding.cross_scores` read and fill it.
"""

from __future__ import annotations

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
# Compaction (size-tiered, like an LSM tree): a shard of at least _SHARD_BYTES is "full" and never
# rewritten; smaller shards are grouped in tiers by size (tier t holds sizes in
# [_FANIN**t, _FANIN**(t+1)) bytes), and as soon as a tier holds _FANIN shards they are merged into
# one, which lands in a higher tier (or is full). A row is therefore rewritten at most
# log_FANIN(_SHARD_BYTES / first shard size) times, whatever the cache size: the bytes read and
# written grow linearly with the rows cached, a merge holds at most about 2 * _SHARD_BYTES of
# vectors, and a folder holds about size / _SHARD_BYTES full shards plus at most (_FANIN - 1) per
# tier. Only shards this cache wrote or read from its main directory are merged;
# the decision uses the in-memory list of them (no folder listing per put).
_SHARD_BYTES = 64 << 20
_FANIN = 8
_INDEX_BLOCK_BYTES = 32 << 20  # the in-memory index grows in blocks of this size (no regrow copy)
_MEMORY_MB = 1024  # default: vectors held in memory per (fingerprint, kind); the rest stay on disk


def _dir_name(fingerprint: str) -> str:
    if _SAFE_NAME.fullmatch(fingerprint) and fingerprint not in (".", ".."):
        return fingerprint
    return f"{slug(fingerprint)}-{hashlib.sha1(fingerprint.encode()).hexdigest()[:16]}"


def _as_keys(keys: Any) -> np.ndarray:
    """Keys as an ``S40`` array of lower-case sha1 hex digests."""
    arr = np.asarray(keys)
    if arr.dtype.kind == "U":
        arr = np.char.encode(np.char.lower(arr), "ascii")
    if arr.ndim != 1 or arr.dtype.kind != "S":
        raise ValueError("keys must be a 1-D sequence of 40-character sha1 hex strings")
    arr = arr.astype("S40")
    if arr.size and (np.char.str_len(arr) != 40).any():
        raise ValueError("keys must be 40-character sha1 hex strings (see text_key())")
    return arr


class _ShardError(ValueError):
    """A shard file that cannot be used."""


def _read_shard(path: Path, fingerprint: str, kind: str) -> tuple[np.ndarray, np.ndarray] | None:
    """``(keys S40, vecs float32)`` of a shard; ``None`` if it belongs to another fingerprint.

    Raises :class:`_ShardError` when the file is unreadable or malformed.
    """
    try:
        with np.load(path, allow_pickle=False) as z:
            names = set(z.files)
            if not {"keys", "vecs", "fingerprint", "kind"} <= names:
                missing = sorted({"keys", "vecs", "fingerprint", "kind"} - names)
                raise _ShardError(f"missing arrays {missing}")
            fp = z["fingerprint"]
            kd = z["kind"]
            keys = z["keys"]
            vecs = z["vecs"]
    except _ShardError:
        raise
    except Exception as err:  # any failure to read a damaged file: zip, header, truncation
        raise _ShardError(f"{type(err).__name__}: {err}") from err
    if fp.dtype.kind != "S" or kd.dtype.kind != "S" or fp.size != 1 or kd.size != 1:
        raise _ShardError("malformed fingerprint/kind metadata")
    if (fp.item().decode("utf-8", "replace"), kd.item().decode("utf-8", "replace")) != (
        fingerprint,
        kind,
    ):
        return None  # stale: written for another model or kind
    if keys.ndim != 1 or keys.dtype != np.dtype("S40"):
        raise _ShardError(f"keys have dtype {keys.dtype} and shape {keys.shape}, expected S40 (n,)")
    if vecs.ndim != 2 or vecs.shape[0] != keys.shape[0] or vecs.dtype not in (np.float16, np.float32):
        raise _ShardError(f"vecs have dtype {vecs.dtype} and shape {vecs.shape}, expected float16/32 (n, d)")
    stored = vecs.dtype
    vecs = vecs.astype(np.float32)
    if not np.isfinite(vecs).all():
        raise _ShardError("vecs contain NaN or infinity")
    if kind in _NORMALISED_KINDS and stored == np.float16:
        vecs = l2_normalize(vecs)  # undo the float16 rounding of the norm
    return keys, vecs


def _read_shard_rows(path: Path, fingerprint: str, kind: str, keys: np.ndarray) -> np.ndarray | None:
    """float32 vectors of ``keys`` (all in the shard) read from ``path``; ``None`` if it is gone,
    unreadable, of another fingerprint or lacks one of the keys.

    Reads the shard's keys, then only the wanted rows of its ``vecs`` member through a
    read-only memory map of the (uncompressed) npz member; falls back to reading the shard.
    Nothing is unpickled: the member's header must describe a C-order 2-D float16/float32 array.
    """
    import struct
    import zipfile

    try:
        with np.load(path, allow_pickle=False) as z:
            if not {"keys", "vecs", "fingerprint", "kind"} <= set(z.files):
                return None
            fp, kd, skeys = z["fingerprint"], z["kind"], z["keys"]
        if fp.dtype.kind != "S" or kd.dtype.kind != "S" or fp.size != 1 or kd.size != 1:
            return None
        if (fp.item().decode("utf-8", "replace"), kd.item().decode("utf-8", "replace")) != (
            fingerprint,
            kind,
        ):
            return None
        if skeys.ndim != 1 or skeys.dtype != np.dtype("S40") or not len(skeys):
            return None
        korder = np.argsort(skeys)
        pos = korder[np.minimum(np.searchsorted(skeys, keys, sorter=korder), len(skeys) - 1)]
        if not (skeys[pos] == keys).all():
            return None
        mm = None
        with zipfile.ZipFile(path) as zf:
            info = zf.getinfo("vecs.npy")
        if info.compress_type == zipfile.ZIP_STORED:
            with open(path, "rb") as f:
                f.seek(info.header_offset)
                head = f.read(30)
                if head[:4] == b"PK\x03\x04":
                    name_len, extra_len = struct.unpack("<HH", head[26:30])
                    f.seek(info.header_offset + 30 + name_len + extra_len)
                    version = np.lib.format.read_magic(f)
                    if version == (1, 0):
                        shape, fortran, dt = np.lib.format.read_array_header_1_0(f)
                    else:
                        shape, fortran, dt = np.lib.format.read_array_header_2_0(f)
                    if (
                        not fortran
                        and len(shape) == 2
                        and shape[0] == len(skeys)
                        and dt in (np.dtype("<f2"), np.dtype("<f4"))
                    ):
                        mm = np.memmap(path, dtype=dt, mode="r", offset=f.tell(), shape=shape)
        if mm is not None:
            stored = mm.dtype
            vecs = np.asarray(mm[pos], dtype=np.float32)
            del mm
        else:  # pragma: no cover - shards written by np.savez are stored uncompressed
            got = _read_shard(path, fingerprint, kind)
            if got is None:
                return None
            return got[1][pos]
    except Exception:  # gone (merged by another process), truncated, malformed: not usable
        return None
    if not np.isfinite(vecs).all():
        return None
    if kind in _NORMALISED_KINDS and stored == np.float16:
        vecs = l2_normalize(vecs)  # as _read_shard does
    return vecs


def _write_npz_atomic(path: Path, **arrays: np.ndarray) -> None:
    """``np.savez`` to ``path`` via a temporary file in the same folder and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink(missing_ok=True)


class _Index:
    """Table of one (fingerprint, kind): key → row of an in-memory float32 matrix, or → shard.

    ``rows[key]`` is a row (>= 0) of the matrix, a list of fixed-size blocks
    (``_INDEX_BLOCK_BYTES`` each, so growing it never copies the rows already held), or
    ``-2 - sid`` for an entry kept on disk only, in the shard ``shards[sid]`` (read on demand by
    :meth:`EmbeddingCache.get`). Vectors are held in memory while ``n * dim * 4`` stays within
    ``memory_bytes``. ``small`` maps the main directory's shards below ``_SHARD_BYTES`` (written
    or read by this cache) to their size: the compaction candidates.
    """

    __slots__ = (
        "rows",
        "blocks",
        "block_rows",
        "dim",
        "n",
        "loaded",
        "small",
        "shards",
        "sid_of",
        "memory_bytes",
    )

    def __init__(self, memory_bytes: int) -> None:
        self.rows: dict[bytes, int] = {}
        self.blocks: list[np.ndarray] = []
        self.block_rows = 0
        self.dim: int | None = None
        self.n = 0  # rows held in memory
        self.loaded: set[str] = set()
        self.small: dict[str, int] = {}
        self.shards: list[str] = []
        self.sid_of: dict[str, int] = {}
        self.memory_bytes = memory_bytes

    def _code(self, shard: str) -> int:
        sid = self.sid_of.get(shard)
        if sid is None:
            sid = self.sid_of[shard] = len(self.shards)
            self.shards.append(shard)
        return -2 - sid

    def lookup(self, keys: np.ndarray) -> np.ndarray:
        """Row of each key (>= 0 in memory, <= -2 on disk), -1 where absent."""
        get = self.rows.get
        return np.fromiter((get(x, -1) for x in keys.tolist()), dtype=np.int64, count=len(keys))

    def fits(self, m: int, dim: int) -> bool:
        """Whether ``m`` more vectors of dimension ``dim`` stay within the memory budget."""
        return (self.n + m) * dim * 4 <= self.memory_bytes

    def gather(self, rows: np.ndarray) -> np.ndarray:
        """``(len(rows), dim)`` float32 copy of the given in-memory rows (all >= 0)."""
        out = np.empty((len(rows), self.dim or 0), dtype=np.float32)
        if not len(rows):
            return out
        b = rows // self.block_rows
        if len(self.blocks) == 1 or (b == b[0]).all():
            out[:] = self.blocks[int(b[0])][rows - int(b[0]) * self.block_rows]
            return out
        order = np.argsort(b, kind="stable")
        sb = b[order]
        cuts = np.flatnonzero(np.diff(sb)) + 1
        for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, len(sb)]):
            j = int(sb[lo])
            sel = order[lo:hi]
            out[sel] = self.blocks[j][rows[sel] - j * self.block_rows]
        return out

    def new_mask(self, keys: np.ndarray) -> np.ndarray:
        """Mask of the keys not in the table (the first of duplicates inside ``keys``)."""
        new = np.fromiter((k not in self.rows for k in keys.tolist()), dtype=bool, count=len(keys))
        if new.any():
            _, first = np.unique(keys, return_index=True)
            dup = np.ones(len(keys), dtype=bool)
            dup[first] = False
            new &= ~dup
        return new

    def add(self, keys: np.ndarray, vecs: np.ndarray, shard: str | None = None) -> np.ndarray:
        """Adds entries whose key is new; returns the mask of the ones added.

        They are held in memory when they fit the budget or ``shard`` is ``None`` (nothing on
        disk to read them back from), else recorded as entries of ``shard``.
        """
        new = self.new_mask(keys)
        m = int(new.sum())
        if m == 0:
            return new
        if self.dim is None:
            self.dim = int(vecs.shape[1])
            self.block_rows = max(1024, _INDEX_BLOCK_BYTES // (4 * max(self.dim, 1)))
        if shard is not None and not self.fits(m, self.dim):
            code = self._code(shard)
            for k in keys[new].tolist():
                self.rows[k] = code
            return new
        src = vecs[new]
        done = 0
        while done < m:
            j, off = divmod(self.n + done, self.block_rows)
            if j == len(self.blocks):
                # the first block only as large as needed (small caches stay small)
                size = self.block_rows if j else min(self.block_rows, max(m, 1024))
                self.blocks.append(np.empty((size, self.dim), dtype=np.float32))
            blk = self.blocks[j]
            if blk.shape[0] < self.block_rows and off + (m - done) > blk.shape[0]:
                grown = np.empty((self.block_rows, self.dim), dtype=np.float32)  # first block only
                grown[:off] = blk[:off]
                self.blocks[j] = blk = grown
            take = min(m - done, blk.shape[0] - off)
            blk[off : off + take] = src[done : done + take]
            done += take
        for i, k in enumerate(keys[new].tolist()):
            self.rows[k] = self.n + i
        self.n += m
        return new

    def moved(self, keys: np.ndarray, old: set[str], new_path: str) -> None:
        """Points the on-disk entries of ``keys`` held in shards ``old`` to ``new_path``."""
        old_codes = {-2 - self.sid_of[p] for p in old if p in self.sid_of}
        if not old_codes:
            return
        code = self._code(new_path)
        rows = self.rows
        for k in keys.tolist():
            if rows.get(k, 0) in old_codes:
                rows[k] = code


class EmbeddingCache:
    """On-disk cache of embeddings (and cross-encoder scores), keyed by model and text.

    Layout: ``<directory>/<fingerprint>/<kind>/<shard>.npz``, each shard an ``np.savez`` archive
    with ``keys`` (``S40``: sha1 hex of the text), ``vecs`` (float16 or float32 ``(n, d)``),
    ``fingerprint`` and ``kind`` (``S`` scalars, checked on read: a shard written for another
    fingerprint is ignored). Shards are read with ``allow_pickle=False`` and written atomically
    (temporary file + ``os.replace``); new entries go to a new shard. Compaction is size-tiered:
    shards under ``_SHARD_BYTES`` (64 MiB) are grouped by size in tiers of factor ``_FANIN`` (8:
    sizes in [8**t, 8**(t+1)) bytes), a tier holding 8 shards is merged into one, and shards of
    64 MiB or more are never rewritten. So caching N vectors reads and writes O(N) bytes (each
    row is rewritten at most log_8(64 MiB / first shard size) times: twice for ``embed``'s
    2,048-row puts of 256-d float32), a merge reads less than 128 MiB of shards, and a folder
    holds about size / 64 MiB shards plus at most 7 per tier. Lookups go through an in-memory
    key → row table, so their cost does not depend on the number of shards. Vectors are held in
    memory up to ``memory_mb`` (default 1024 MiB) per (fingerprint, kind); beyond it the table
    keeps only the key and its shard, and ``get`` reads the wanted rows from the shard through a
    read-only memory map of its (uncompressed) ``vecs`` member (vectors put by this process into
    a float16 cache stay in memory: the shard holds them rounded). Caches written by
    earlier versions (one compacted shard plus up to 16 small ones, the same file format) are
    read as they are and join the tiers; no migration is needed. An unreadable shard triggers a warning, is
    renamed ``*.corrupt`` (main directory only) and its entries are recomputed.

    ``readonly_dirs`` (same layout, e.g. a data set's shipped ``embeddings/`` folder) are
    searched after ``directory`` and never written. ``dtype`` (``"float32"`` default or
    ``"float16"``) is the storage type of embeddings; returned vectors are always float32 and,
    for kinds ``"query"``/``"passage"``, re-normalised to unit length after reading. Other kinds
    (``"ce"`` scores) are always stored as float32. If the directory cannot be written the cache
    warns once and keeps new entries in memory only.
    """

    def __init__(
        self,
        directory: str | os.PathLike | None = None,
        readonly_dirs: Iterable[str | os.PathLike] = (),
        dtype: str | np.dtype = "float32",
        memory_mb: float = _MEMORY_MB,
    ):
        if isinstance(readonly_dirs, (str, os.PathLike)):
            readonly_dirs = (readonly_dirs,)
        self.directory = Path(directory).expanduser() if directory is not None else default_cache_dir()
        self.readonly_dirs = tuple(Path(d).expanduser() for d in readonly_dirs)
        dt = np.dtype(dtype)
        if dt not in (np.float16, np.float32):
            raise ValueError(f"dtype={dtype!r}: use 'float32' (default) or 'float16'")
        self.dtype = dt
        if not memory_mb >= 0:
            raise ValueError(f"memory_mb={memory_mb!r}: use a size in MiB >= 0 (e.g. 1024)")
        self.memory_bytes = int(memory_mb * 2**20)
        self._indexes: dict[tuple[str, str], _Index] = {}
        self._lock = threading.RLock()
        self._write_failed = False

    def __repr__(self) -> str:
        ro = f", readonly_dirs={[str(d) for d in self.readonly_dirs]}" if self.readonly_dirs else ""
        return f"EmbeddingCache({str(self.directory)!r}{ro}, dtype={self.dtype.name!r})"

    # -- layout ---------------------------------------------------------------------------
    def shard_dir(self, fingerprint: str, kind: str, root: Path | None = None) -> Path:
        """Folder of the shards of ``(fingerprint, kind)`` under ``root`` (default: main dir)."""
        if not _SAFE_NAME.fullmatch(kind):
            raise ValueError(f"kind={kind!r}: use letters, digits, '.', '_' or '-' (e.g. 'passage')")
        return (self.directory if root is None else Path(root)) / _dir_name(fingerprint) / kind

    def _load_dir(self, index: _Index, folder: Path, fingerprint: str, kind: str, writable: bool) -> None:
        if not folder.is_dir():
            return
        for shard in sorted(folder.glob("*.npz")):
            skey = str(shard)
            if skey in index.loaded:
                continue
            index.loaded.add(skey)
            try:
                got = _read_shard(shard, fingerprint, kind)
            except _ShardError as err:
                self._report_corrupt(shard, str(err), writable)
                continue
            if got is None:
                continue  # stale shard of another fingerprint: ignored, entries recomputed
            keys, vecs = got
            if index.dim is not None and vecs.shape[1] != index.dim and len(keys):
                self._report_corrupt(
                    shard, f"vectors have dimension {vecs.shape[1]}, other shards {index.dim}", writable
                )
                continue
            if len(keys):
                index.add(keys, vecs, shard=skey)
            if writable:
                self._track_small(index, shard)

    @staticmethod
    def _report_corrupt(shard: Path, why: str, writable: bool) -> None:
        warnings.warn(
            f"ignoring unreadable embedding-cache shard {shard} ({why}); its entries will be recomputed",
            RuntimeWarning,
            stacklevel=4,
        )
        if writable:
            try:
                os.replace(shard, shard.with_name(shard.name + ".corrupt"))
            except OSError:
                pass

    @staticmethod
    def _track_small(index: _Index, shard: Path) -> None:
        """Records a main-directory shard below ``_SHARD_BYTES`` as a compaction candidate."""
        try:
            size = shard.stat().st_size
        except OSError:
            return
        if size < _SHARD_BYTES:
            index.small[str(shard)] = size

    def _index(self, fingerprint: str, kind: str) -> _Index:
        key = (fingerprint, kind)
        index = self._indexes.get(key)
        if index is None:
            index = _Index(self.memory_bytes)
            self._load_dir(index, self.shard_dir(fingerprint, kind), fingerprint, kind, True)
            for ro in self.readonly_dirs:
                ro_dir = self.shard_dir(fingerprint, kind, ro)
                self._load_dir(index, ro_dir, fingerprint, kind, False)
            self._indexes[key] = index
        return index

    # -- lookup / store -------------------------------------------------------------------
    def get(
        self, fingerprint: str, kind: str, keys: Sequence[str] | np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(found, vecs)``: boolean mask over ``keys`` and the float32 rows of the found ones.

        Shards written to the main directory by another process since the last read are picked
        up when some keys are missing. Entries kept on disk only (beyond ``memory_mb``) are read
        from their shards, one shard at a time.
        """
        k = _as_keys(keys)
        with self._lock:
            index = self._index(fingerprint, kind)
            for attempt in range(2):
                rows = index.lookup(k)
                if (rows == -1).any():
                    before = len(index.rows)
                    self._load_dir(index, self.shard_dir(fingerprint, kind), fingerprint, kind, True)
                    if len(index.rows) != before:
                        rows = index.lookup(k)
                found = rows != -1
                if index.dim is None:
                    return found, np.zeros((0, 0), dtype=np.float32)
                frows = rows[found]
                out = np.empty((len(frows), index.dim), dtype=np.float32)
                mem = frows >= 0
                if mem.all():
                    return found, index.gather(frows)
                out[mem] = index.gather(frows[mem])
                if self._read_on_disk(index, fingerprint, kind, k[found], frows, out):
                    return found, out
                if attempt:  # changed again: the entries whose shard vanished count as misses
                    keep = index.lookup(k[found]) != -1
                    found[found] = keep
                    return found, out[keep]
                # a shard had vanished (merged by another process): its entries were dropped
                # from the table; the second attempt re-reads the whole main folder (keys
                # already known are skipped, the dropped ones found where they are now)
                main = str(self.shard_dir(fingerprint, kind))
                index.loaded = {p for p in index.loaded if str(Path(p).parent) != main}
            raise AssertionError("unreachable")  # pragma: no cover

    def _read_on_disk(
        self,
        index: _Index,
        fingerprint: str,
        kind: str,
        keys: np.ndarray,
        rows: np.ndarray,
        out: np.ndarray,
    ) -> bool:
        """Fills ``out`` where ``rows <= -2`` from those shards (only the rows wanted, through a
        memory map); ``False`` if one was gone."""
        disk = np.flatnonzero(rows <= -2)
        codes = rows[disk]
        order = np.argsort(codes, kind="stable")
        sc = codes[order]
        cuts = np.flatnonzero(np.diff(sc)) + 1
        ok = True
        for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, len(sc)]):
            sel = disk[order[lo:hi]]
            path = index.shards[-2 - int(sc[lo])]
            got = _read_shard_rows(Path(path), fingerprint, kind, keys[sel])
            if got is not None:
                out[sel] = got
                continue
            ok = False  # gone or changed: forget its entries, re-read the folder
            index.small.pop(path, None)
            code = int(sc[lo])
            for key in [x for x, r in index.rows.items() if r == code]:
                del index.rows[key]
        return ok

    def put(self, fingerprint: str, kind: str, keys: Sequence[str] | np.ndarray, vecs: np.ndarray) -> int:
        """Stores entries (new keys only) as one new shard; returns how many.

        They are also held in memory while the (fingerprint, kind) holds less than
        ``memory_mb`` of vectors there, or when the folder cannot be written.
        """
        k = _as_keys(keys)
        v = np.asarray(vecs, dtype=np.float32)
        if v.ndim == 1:
            v = v[:, None]
        if v.ndim != 2 or v.shape[0] != len(k):
            raise ValueError(f"vecs has shape {v.shape}; expected ({len(k)}, d) for {len(k)} keys")
        if not np.isfinite(v).all():
            raise ValueError("vecs contain NaN or infinity; refusing to cache them")
        with self._lock:
            index = self._index(fingerprint, kind)
            if index.dim is not None and len(k) and v.shape[1] != index.dim:
                raise ValueError(
                    f"vectors of dimension {v.shape[1]} for fingerprint {fingerprint!r} ({kind}), "
                    f"but the cache holds dimension {index.dim}: the fingerprint must change when "
                    f"the model changes (or delete {self.shard_dir(fingerprint, kind)})"
                )
            added = index.new_mask(k)
            m = int(added.sum())
            if not m:
                return 0
            k, v = k[added], v[added]
            written: Path | None = None
            if not self._write_failed:
                store = self.dtype if kind in _NORMALISED_KINDS else np.dtype(np.float32)
                folder = self.shard_dir(fingerprint, kind)
                name = f"{time.time_ns():020d}-{os.getpid()}-{secrets.token_hex(4)}.npz"
                try:
                    _write_npz_atomic(
                        folder / name,
                        keys=k,
                        vecs=v.astype(store),
                        fingerprint=np.array(fingerprint.encode("utf-8")),
                        kind=np.array(kind.encode("utf-8")),
                    )
                    written = folder / name
                except OSError as err:
                    self._write_warning(err)
            # a float16 shard does not hold the exact vectors: those stay in memory
            exact = store == np.float32 if written is not None else False
            index.add(k, v, shard=str(written) if written is not None and exact else None)
            if written is not None:
                index.loaded.add(str(written))
                self._track_small(index, written)
                try:
                    self._maybe_compact(fingerprint, kind)
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
        """Size tier of a small shard: ``floor(log_FANIN(size))``."""
        t = 0
        bound = _FANIN
        while size >= bound:
            t += 1
            bound *= _FANIN
        return t

    def _maybe_compact(self, fingerprint: str, kind: str) -> None:
        """Merges ``_FANIN`` small shards of one size tier into one, repeatedly (cascading).

        Works from the index's list of small shards (no folder listing). A merge takes the
        tier's oldest shards (by name, which starts with the write time) and stops adding once
        ``_SHARD_BYTES`` are gathered, so its output is a full shard or a shard of a higher tier.
        """
        index = self._indexes.get((fingerprint, kind))
        if index is None:
            return
        while True:
            tiers: dict[int, list[str]] = {}
            for path, size in index.small.items():
                tiers.setdefault(self._tier(size), []).append(path)
            ready = [t for t, paths in tiers.items() if len(paths) >= _FANIN]
            if not ready:
                return
            group, total = [], 0
            for path in sorted(tiers[min(ready)]):
                group.append(path)
                total += index.small[path]
                if len(group) == _FANIN or total >= _SHARD_BYTES:
                    break
            self._merge(fingerprint, kind, index, [Path(p) for p in group])

    def _merge(self, fingerprint: str, kind: str, index: _Index, group: list[Path]) -> None:
        """Rewrites the shards ``group`` as one shard and deletes them.

        Every shard of ``group`` leaves the candidate list (so the caller's loop ends); a shard
        that vanished (merged by another process) or is unusable is skipped, and a lone usable
        one is kept as it is and stays a candidate.
        """
        keys_l, vecs_l, used = [], [], []
        for shard in group:
            index.small.pop(str(shard), None)  # merged, vanished or unusable: no candidate now
            try:
                got = _read_shard(shard, fingerprint, kind)
            except _ShardError:
                continue  # e.g. merged meanwhile by another process; reported on first read
            if got is None or (vecs_l and got[1].shape[1] != vecs_l[0].shape[1]):
                continue
            keys_l.append(got[0])
            vecs_l.append(got[1])
            used.append(shard)
        if len(used) < 2:
            for shard in used:
                self._track_small(index, shard)
            return
        keys = np.concatenate(keys_l)
        vecs = np.concatenate(vecs_l)
        del keys_l, vecs_l  # at most two copies of the group's vectors alive at once
        _, first = np.unique(keys, return_index=True)
        if len(first) < len(keys):  # the same key in two shards (e.g. two processes): keep one
            first.sort()
            keys, vecs = keys[first], vecs[first]
        store = self.dtype if kind in _NORMALISED_KINDS else np.dtype(np.float32)
        folder = self.shard_dir(fingerprint, kind)
        path = folder / f"{time.time_ns():020d}-{os.getpid()}-{secrets.token_hex(4)}.npz"
        _write_npz_atomic(
            path,
            keys=keys,
            vecs=vecs.astype(store, copy=False),
            fingerprint=np.array(fingerprint.encode("utf-8")),
            kind=np.array(kind.encode("utf-8")),
        )
        index.loaded.add(str(path))
        self._track_small(index, path)
        index.moved(keys, {str(u) for u in used}, str(path))  # before the old files go
        for shard in used:
            try:
                shard.unlink()
            except FileNotFoundError:
                pass

    def count(self, fingerprint: str, kind: str) -> int:
        """Number of cached entries of ``(fingerprint, kind)`` (main + read-only dirs)."""
        with self._lock:
            return len(self._index(fingerprint, kind).rows)

    def clear(self, fingerprint: str | None = None) -> int:
        """Deletes the main directory's shards (of one fingerprint, or all); returns files removed.

        Only ``<fingerprint>/{query,passage,ce}/*.npz`` (and ``*.npz.corrupt``) files are
        removed, so other tools' files kept under the same folder (e.g. ``projections/``) and the
        read-only directories are never touched.
        """
        with self._lock:
            removed = 0
            if fingerprint is None:
                top = self.directory
                roots = [p for p in top.glob("*") if p.is_dir()] if top.is_dir() else []
                self._indexes.clear()
            else:
                roots = [self.directory / _dir_name(fingerprint)]
                for key in [k for k in self._indexes if k[0] == fingerprint]:
                    del self._indexes[key]
            for root in roots:
                for kind in (*_NORMALISED_KINDS, CE_KIND):
                    sub = root / kind
                    if not sub.is_dir():
                        continue
                    for f in list(sub.glob("*.npz")) + list(sub.glob("*.npz.corrupt")):
                        f.unlink(missing_ok=True)
                        removed += 1
                    try:
                        sub.rmdir()
                    except OSError:
                        pass
                try:
                    root.rmdir()
                except OSError:
                    pass
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

        The result, ``<directory>/<fingerprint>/<kind>/<kind>.npz`` (sorted unique keys,
        ``dtype`` storage, float16 by default; cross-encoder scores always float32), is readable
        as a ``readonly_dirs`` entry of a later cache. For ``kind="ce"`` pass the
        ``(query, passage)`` pairs. Every item must already be cached (call :func:`embed` /
        :func:`cross_scores` with this cache first); otherwise ``KeyError`` says how many are
        missing. An existing export of the same (fingerprint, kind) is replaced. Returns the path.
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
