"""The two stores :mod:`bench.bench_cache` compares with :class:`EmbeddingCache` (issue 17).

Both have the cache's ``put(fingerprint, kind, keys, vecs) -> int`` and
``get(fingerprint, kind, keys) -> (found, vecs)`` with keys as 40-character sha1 hex strings, so
the benchmark calls the three the same way:

* :class:`ArrowIpcStore`: one Arrow IPC file per ``put`` (``key`` fixed-size binary(40), ``vec``
  fixed-size list of float32), written atomically (temporary file, ``fsync``, ``os.replace``),
  merged by the same size-tiered rule as the cache (8 files of a tier into one, files of 64 MiB
  or more never rewritten). Files are opened with ``pyarrow.memory_map`` (zero copy: the vectors
  stay in the page cache, read only where looked up); lookups are a sorted search
  (``numpy.searchsorted`` over the concatenated keys, sorted once after a change).
* :class:`SqliteStore`: the standard library's SQLite, one ``WITHOUT ROWID`` table of
  ``(key BLOB PRIMARY KEY, vec BLOB)`` per (fingerprint, kind) in WAL mode; ``INSERT OR IGNORE``
  in one transaction per ``put``; lookups through a temporary table joined on the key.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

_SHARD_BYTES = 64 << 20
_FANIN = 8


def as_keys(keys) -> np.ndarray:
    arr = np.asarray(keys)
    if arr.dtype.kind == "U":
        arr = np.char.encode(np.char.lower(arr), "ascii")
    return arr.astype("S40")


class _Folder:
    """The memory-mapped files of one (fingerprint, kind) and their sorted key table: ``keys``
    (sorted ``S40``) with the file (``fid``, into ``paths``) and row of each, kept sorted by
    inserting each new file's keys (``numpy.searchsorted`` + ``numpy.insert``)."""

    def __init__(self) -> None:
        self.files: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # path -> (keys S40, vecs)
        self.small: dict[str, int] = {}
        self.paths: list[str] = []
        self.keys = np.empty(0, "S40")
        self.fid = np.empty(0, np.int32)
        self.row = np.empty(0, np.int32)

    def add(self, path: str, got: tuple[np.ndarray, np.ndarray]) -> None:
        self.files[path] = got
        self.paths.append(path)
        fkeys = got[0]
        order = np.argsort(fkeys)
        pos = np.searchsorted(self.keys, fkeys[order])
        self.keys = np.insert(self.keys, pos, fkeys[order])
        self.fid = np.insert(self.fid, pos, len(self.paths) - 1)
        self.row = np.insert(self.row, pos, order.astype(np.int32))

    def merged(self, path: str, got: tuple[np.ndarray, np.ndarray], group: list[str]) -> None:
        """``path`` holds the rows of ``group`` (in order): point their keys to it."""
        for p in group:
            del self.files[p]
        self.files[path] = got
        self.paths.append(path)
        pos = np.searchsorted(self.keys, got[0])
        self.fid[pos] = len(self.paths) - 1
        self.row[pos] = np.arange(len(pos), dtype=np.int32)

    def lookup(self, k: np.ndarray) -> np.ndarray:
        """Position of each key in the table; -1 where absent."""
        if not len(self.keys):
            return np.full(len(k), -1)
        pos = np.minimum(np.searchsorted(self.keys, k), len(self.keys) - 1)
        return np.where(self.keys[pos] == k, pos, -1)


def _open_ipc(path: Path, fingerprint: str, kind: str) -> tuple[np.ndarray, np.ndarray] | None:
    with pa.memory_map(str(path), "r") as source:
        table = pa.ipc.open_file(source).read_all()
    meta = table.schema.metadata or {}
    if (meta.get(b"fingerprint"), meta.get(b"kind")) != (fingerprint.encode(), kind.encode()):
        return None
    key, vec = (c.chunk(0) if c.num_chunks == 1 else c.combine_chunks() for c in table.columns)
    dim = vec.type.list_size
    keys = np.frombuffer(key.buffers()[1], dtype="S40", count=len(key), offset=key.offset * 40)
    flat = vec.values
    vecs = np.frombuffer(flat.buffers()[1], np.float32, len(vec) * dim, (vec.offset * dim + flat.offset) * 4)
    return keys, vecs.reshape(len(vec), dim)


def _write_ipc(path: Path, keys: np.ndarray, vecs: np.ndarray, fingerprint: str, kind: str) -> None:
    n, dim = vecs.shape
    key = pa.FixedSizeBinaryArray.from_buffers(pa.binary(40), n, [None, pa.py_buffer(keys.tobytes())])
    vec = pa.FixedSizeListArray.from_arrays(pa.array(np.ascontiguousarray(vecs).reshape(-1)), dim)
    schema = pa.schema(
        [("key", pa.binary(40)), ("vec", vec.type)], metadata={"fingerprint": fingerprint, "kind": kind}
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    with open(tmp, "wb") as f:
        with pa.ipc.new_file(f, schema) as writer:
            writer.write_batch(pa.record_batch([key, vec], schema=schema))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class ArrowIpcStore:
    def __init__(self, directory) -> None:
        self.directory = Path(directory)
        self._folders: dict[tuple[str, str], _Folder] = {}

    def _dir(self, fingerprint: str, kind: str) -> Path:
        return self.directory / fingerprint / kind

    def _folder(self, fingerprint: str, kind: str) -> _Folder:
        f = self._folders.get((fingerprint, kind))
        if f is None:
            f = self._folders[(fingerprint, kind)] = _Folder()
            d = self._dir(fingerprint, kind)
            for path in sorted(d.glob("*.arrow")) if d.is_dir() else []:
                got = _open_ipc(path, fingerprint, kind)
                if got is not None:
                    f.add(str(path), got)
                    size = path.stat().st_size
                    if size < _SHARD_BYTES:
                        f.small[str(path)] = size
        return f

    def get(self, fingerprint: str, kind: str, keys) -> tuple[np.ndarray, np.ndarray]:
        k = as_keys(keys)
        f = self._folder(fingerprint, kind)
        pos = f.lookup(k)
        found = pos >= 0
        if not found.any():
            return found, np.zeros((0, 0), np.float32)
        p = pos[found]
        fid, row = f.fid[p], f.row[p]
        dim = next(iter(f.files.values()))[1].shape[1]
        out = np.empty((len(p), dim), np.float32)
        order = np.argsort(fid, kind="stable")
        sf = fid[order]
        cuts = np.flatnonzero(np.diff(sf)) + 1
        for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, len(sf)]):
            sel = order[lo:hi]
            sel = sel[np.argsort(row[sel])]  # in file order: the map's pages are read in sequence
            out[sel] = f.files[f.paths[int(sf[lo])]][1][row[sel]]
        return found, out

    def put(self, fingerprint: str, kind: str, keys, vecs) -> int:
        k = as_keys(keys)
        v = np.asarray(vecs, np.float32)
        f = self._folder(fingerprint, kind)
        new = f.lookup(k) < 0
        _, first = np.unique(k, return_index=True)
        dup = np.ones(len(k), bool)
        dup[first] = False
        new &= ~dup
        if not new.any():
            return 0
        path = self._dir(fingerprint, kind) / f"{time.time_ns():020d}-{secrets.token_hex(4)}.arrow"
        _write_ipc(path, k[new], v[new], fingerprint, kind)
        f.add(str(path), _open_ipc(path, fingerprint, kind))
        f.small[str(path)] = path.stat().st_size
        self._compact(f, fingerprint, kind)
        return int(new.sum())

    def _compact(self, f: _Folder, fingerprint: str, kind: str) -> None:
        def tier(size: int) -> int:
            t, bound = 0, _FANIN
            while size >= bound:
                t, bound = t + 1, bound * _FANIN
            return t

        while True:
            tiers: dict[int, list[str]] = {}
            for p, size in f.small.items():
                tiers.setdefault(tier(size), []).append(p)
            ready = [t for t, ps in tiers.items() if len(ps) >= _FANIN]
            if not ready:
                return
            group, total = [], 0
            for p in sorted(tiers[min(ready)]):
                group.append(p)
                total += f.small[p]
                if len(group) == _FANIN or total >= _SHARD_BYTES:
                    break
            keys = np.concatenate([f.files[p][0] for p in group])
            vecs = np.concatenate([f.files[p][1] for p in group])
            path = self._dir(fingerprint, kind) / f"{time.time_ns():020d}-{secrets.token_hex(4)}.arrow"
            _write_ipc(path, keys, vecs, fingerprint, kind)
            del keys, vecs
            f.merged(str(path), _open_ipc(path, fingerprint, kind), group)
            for p in group:
                f.small.pop(p)
                os.unlink(p)
            size = path.stat().st_size
            if size < _SHARD_BYTES:
                f.small[str(path)] = size


class SqliteStore:
    def __init__(self, directory) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.directory / "cache.sqlite")
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("CREATE TEMP TABLE q (i INTEGER PRIMARY KEY, key BLOB)")
        self._dims: dict[str, int] = {}

    def _table(self, fingerprint: str, kind: str) -> str:
        name = f'"{fingerprint}/{kind}"'
        self.db.execute(f"CREATE TABLE IF NOT EXISTS {name} (key BLOB PRIMARY KEY, vec BLOB) WITHOUT ROWID")
        return name

    def put(self, fingerprint: str, kind: str, keys, vecs) -> int:
        k = as_keys(keys)
        v = np.ascontiguousarray(vecs, np.float32)
        t = self._table(fingerprint, kind)
        with self.db:
            before = self.db.total_changes
            self.db.executemany(
                f"INSERT OR IGNORE INTO {t} VALUES (?, ?)", zip(k.tolist(), (r.tobytes() for r in v))
            )
            return self.db.total_changes - before

    def get(self, fingerprint: str, kind: str, keys) -> tuple[np.ndarray, np.ndarray]:
        k = as_keys(keys)
        t = self._table(fingerprint, kind)
        with self.db:
            self.db.execute("DELETE FROM q")
            self.db.executemany("INSERT INTO q VALUES (?, ?)", enumerate(k.tolist()))
            rows = self.db.execute(f"SELECT q.i, {t}.vec FROM q JOIN {t} ON {t}.key = q.key").fetchall()
        found = np.zeros(len(k), bool)
        if not rows:
            return found, np.zeros((0, 0), np.float32)
        idx = np.fromiter((r[0] for r in rows), np.int64, len(rows))
        mat = np.frombuffer(b"".join(r[1] for r in rows), np.float32).reshape(len(rows), -1)
        order = np.argsort(idx)
        found[idx] = True
        return found, mat[order]
