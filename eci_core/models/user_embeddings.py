"""Bring your own embeddings: vectors a team already computed, keyed by query and passage id.

:func:`open_embeddings` reads a folder (or the product's own cache folder) and returns a
:class:`UserEmbeddings` that :func:`eci_core.scoring.score_collection` uses instead of an encoder
(``score_collection(collection, None, embeddings=...)``; ``eci score --embeddings PATH
--embeddings-model NAME``).

Accepted layouts (``PATH`` is a folder)
---------------------------------------
* **.npy + ids**: ``queries.npy`` and ``passages.npy`` (or ``corpus.npy``), each a 2-D float16 /
  float32 / float64 matrix, with its ids beside it in ``queries.ids.txt`` (one id a line),
  ``queries.ids.jsonl`` (one JSON string, or object with ``"id"``/``"_id"``, a line) or
  ``queries.ids.json`` (one JSON list); likewise ``passages.ids.*``. Row i of the matrix is the
  vector of the i-th id. The matrices are memory-mapped (``np.load(mmap_mode="r")``): nothing is
  copied into memory; scoring reads the rows it needs, chunk by chunk, so a 8.8M × 768 float16
  corpus (13.5 GB on disk) scores on a 24 GB machine.
* **Parquet**: ``queries.parquet`` and ``passages.parquet`` (or ``corpus.parquet``), each with an
  id column (``id``, ``_id``, ``query-id``, ``corpus-id``, ``qid``, ``pid``, ``docid``, ``doc_id``,
  or the only string column) and one list / fixed-size-list column of floats (``embedding``,
  ``vector``, ``emb``, or the only list column). Parquet cannot be memory-mapped (it is
  compressed): it is converted once, in record batches, to a ``.npy`` beside the user cache
  (``<cache>/user-embeddings/<sha1 of path, size, mtime>/``) and that file is memory-mapped.
* **The product's own cache** (``<PATH>/<fingerprint>/{query,passage}/*.arrow`` or ``*.npz``, e.g.
  a data set's shipped ``embeddings/`` folder or ``~/.cache/eci-explorer``): vectors keyed by
  text, not id.
  With several fingerprints in the folder, ``model`` picks one (a prefix of the fingerprint).

Checks (each failure is one ``ValueError`` line naming the file and what to fix): a matrix is
2-D and floating point; its row count equals its id count; ids are unique; query and passage
vectors have the same dimension; every query and passage the scored sources need has a vector
(the message says how many are missing and names the first few ids).

Normalisation: ECI uses cosine similarity. A sample of up to 4,096 rows per matrix is checked;
when some norm differs from 1 by more than 1e-3, every row is divided by its norm as it is read
(``ScoreResult.notes`` says so). Vectors are never modified on disk. NaN or infinite values in
the sample are an error.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from eci_core.config import default_cache_dir
from eci_core.io.trust import resolve_within
from eci_core.models.base import text_key
from eci_core.models.cache import EmbeddingCache

Kind = str  # "query" | "passage"

ID_COLUMNS = ("id", "_id", "query-id", "corpus-id", "query_id", "passage_id", "qid", "pid", "docid", "doc_id")
VECTOR_COLUMNS = ("embedding", "embeddings", "vector", "vectors", "emb")
_STEMS = {"query": ("queries", "query"), "passage": ("passages", "passage", "corpus")}
_SAMPLE = 4096
_NORM_TOL = 1e-3


class NormalisedRows:
    """A read-only view of a 2-D matrix whose gathered rows are L2-normalised float32.

    Supports what :func:`eci_core.scoring.arrays.score_arrays` uses: ``shape``, ``ndim``, ``dtype``
    (float32) and ``view[rows]`` for an integer index array (any shape) or a slice.
    """

    def __init__(self, matrix: np.ndarray):
        self.matrix = matrix
        self.shape = matrix.shape
        self.ndim = 2
        self.dtype = np.dtype(np.float32)

    def __getitem__(self, idx) -> np.ndarray:
        rows = np.asarray(self.matrix[idx], dtype=np.float32)
        norms = np.linalg.norm(rows, axis=-1, keepdims=True)
        return np.divide(rows, norms, out=np.zeros_like(rows), where=norms > 0)

    def __len__(self) -> int:
        return self.shape[0]


@dataclass
class _Side:
    """One matrix (queries or passages) and its ids."""

    path: Path
    matrix: np.ndarray  # memory-mapped (n, dim)
    ids: np.ndarray | None  # (n,) object array of str; None for a text-keyed cache
    normalised: bool  # True: rows are unit length already
    sample_norms: tuple[float, float]
    _index: "object | None" = field(default=None, repr=False)

    def index(self):
        if self._index is None:
            import pandas as pd

            self._index = pd.Index(self.ids)
        return self._index

    @property
    def view(self):
        return self.matrix if self.normalised else NormalisedRows(self.matrix)


class UserEmbeddings:
    """Vectors keyed by id (or, for the product's cache, by text) for queries and passages.

    ``model`` is the name the user gives (recorded in ``ScoreResult.encoder``); ``dim`` the
    vector dimension; :meth:`rows` maps ids to matrix rows; :attr:`queries` / :attr:`passages`
    are what scoring indexes (memory maps, or normalising views of them).
    """

    def __init__(
        self,
        path: Path,
        model: str,
        query: _Side | None,
        passage: _Side | None,
        cache=None,
        fingerprint: str | None = None,
    ):
        self.path = path
        self.model = model
        self._q = query
        self._p = passage
        self._cache = cache  # EmbeddingCache for a text-keyed product cache
        self.fingerprint = fingerprint
        if query is not None and passage is not None and query.matrix.shape[1] != passage.matrix.shape[1]:
            raise ValueError(
                f"{passage.path}: passage vectors have dimension {passage.matrix.shape[1]} but the query "
                f"vectors in {query.path.name} have {query.matrix.shape[1]}: "
                "both must come from the same model"
            )

    @property
    def by_text(self) -> bool:
        """True for the product's cache (vectors looked up by text, not id)."""
        return self._cache is not None

    @property
    def name(self) -> str:
        return f"{self.model} (your embeddings: {self.path})"

    @property
    def dim(self) -> int:
        return int((self._q or self._p).matrix.shape[1])

    @property
    def queries(self):
        return self._q.view

    @property
    def passages(self):
        return self._p.view

    def notes(self) -> dict:
        """Notes for ``ScoreResult.notes`` (e.g. that vectors were normalised on read)."""
        out = {}
        for side, what in ((self._q, "query"), (self._p, "passage")):
            if side is not None and not side.normalised:
                lo, hi = side.sample_norms
                out.setdefault("your embeddings were not unit length (normalised on read)", {})[what] = (
                    f"{side.path.name}: norms {lo:.3g}–{hi:.3g} in a sample"
                )
        return out

    def rows(self, kind: Kind, ids: Sequence[str]) -> np.ndarray:
        """Matrix rows of ``ids`` (int64); ``ValueError`` naming how many and a few missing ids."""
        side = self._q if kind == "query" else self._p
        ids = np.asarray(ids, dtype=object)
        rows = side.index().get_indexer(ids)
        miss = rows < 0
        if miss.any():
            n = int(miss.sum())
            few = ", ".join(repr(str(x)) for x in ids[miss][:5])
            raise ValueError(
                f"{side.path}: {n} of {len(ids)} {kind} ids the scored sources need have no vector "
                f"(e.g. {few}): add their vectors or score only sources whose ids are covered (--source)"
            )
        return rows.astype(np.int64)

    def vectors_by_text(self, kind: Kind, texts: Sequence[str]) -> np.ndarray:
        """For the product's cache: float32 unit vectors of ``texts`` (every text must be cached)."""
        found, vecs = self._cache.get(self.fingerprint, kind, [text_key(t) for t in texts])
        if not found.all():
            n = int((~found).sum())
            few = ", ".join(repr(t[:40]) for t, f in zip(texts, found) if not f)
            few = ", ".join(few.split(", ")[:3])
            raise ValueError(
                f"{self.path}: {n} of {len(texts)} {kind} texts have no vector for {self.fingerprint!r} "
                f"(e.g. {few}): encode them with that model first (eci score --encoder ...) or pass --encoder"
            )
        return vecs

    def __repr__(self) -> str:
        return f"UserEmbeddings({str(self.path)!r}, model={self.model!r}, dim={self.dim})"


# ----------------------------------------------------------------------------- reading


def _find(folder: Path, kind: Kind, exts: Sequence[str]) -> Path | None:
    for stem in _STEMS[kind]:
        for ext in exts:
            p = folder / f"{stem}{ext}"
            if p.is_file():
                return p
    return None


def _read_ids(matrix_path: Path, roots=None) -> tuple[Path, np.ndarray]:
    stem = matrix_path.name[: -len(".npy")]
    for ext in (".ids.txt", ".ids.jsonl", ".ids.json", ".ids"):
        p = matrix_path.with_name(stem + ext)
        if p.is_file():
            break
    else:
        raise ValueError(
            f"{matrix_path}: no ids file beside it: write one id per line to {stem}.ids.txt "
            f"(row i of {matrix_path.name} is the vector of line i)"
        )
    p = resolve_within(p, roots) if roots is not None else p
    ids: list[str] = []
    if p.name.endswith(".json"):
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except ValueError as err:
            raise ValueError(
                f"{p}: not valid JSON ({err.msg} at line {err.lineno}); expected a list of ids"
            ) from None
        if not isinstance(data, list):
            raise ValueError(f"{p}: expected a JSON list of ids, got {type(data).__name__}")
        ids = [str(x) for x in data]
    else:
        with open(p, encoding="utf-8") as f:
            for n, line in enumerate(f, start=1):
                line = line.rstrip("\r\n")
                if p.name.endswith(".jsonl"):
                    if not line.strip():
                        continue
                    try:
                        v = json.loads(line)
                    except ValueError as err:
                        raise ValueError(f"{p}:{n}: not valid JSON ({err.msg})") from None
                    if isinstance(v, dict):
                        v = v.get("id", v.get("_id"))
                    if v is None or isinstance(v, (list, dict)):
                        raise ValueError(
                            f"{p}:{n}: field 'id': expected a string id (or an object with \"id\")"
                        )
                    ids.append(str(v))
                else:
                    if not line.strip():
                        raise ValueError(f"{p}:{n}: empty id: one id per line, no blank lines")
                    ids.append(line.strip())
    return p, np.asarray(ids, dtype=object)


def _check_ids(path: Path, ids: np.ndarray, n_rows: int, matrix_name: str) -> None:
    if len(ids) != n_rows:
        raise ValueError(
            f"{path}: {len(ids)} ids but {matrix_name} has {n_rows} rows: they must match one to one"
        )
    import pandas as pd

    dup = pd.Index(ids).duplicated()
    if dup.any():
        raise ValueError(
            f"{path}: id {str(ids[dup.argmax()])!r} appears more than once ({int(dup.sum())} repeats): "
            "ids must be unique"
        )


def _check_matrix(path: Path, m: np.ndarray) -> tuple[bool, tuple[float, float]]:
    if m.ndim != 2 or m.shape[1] < 1:
        raise ValueError(f"{path}: expected a 2-D matrix (rows × dimension), got shape {m.shape}")
    if m.dtype not in (np.float16, np.float32, np.float64):
        raise ValueError(
            f"{path}: dtype {m.dtype} is not supported: store float16, float32 or float64 vectors"
        )
    n = m.shape[0]
    if n == 0:
        return True, (1.0, 1.0)
    take = np.unique(np.linspace(0, n - 1, num=min(n, _SAMPLE)).astype(np.int64))
    sample = np.asarray(m[take], dtype=np.float64)
    if not np.isfinite(sample).all():
        bad = int(take[np.flatnonzero(~np.isfinite(sample).all(axis=1))[0]])
        raise ValueError(f"{path}: row {bad} holds NaN or infinity: every vector must be finite")
    norms = np.linalg.norm(sample, axis=1)
    # float16 storage rounds norms by up to ~1e-3
    tol = 2e-3 if m.dtype == np.float16 else _NORM_TOL
    return bool(np.all(np.abs(norms - 1.0) <= tol)), (float(norms.min()), float(norms.max()))


def _random_access(m: np.ndarray) -> None:
    """``madvise(MADV_RANDOM)`` on a memory map: scoring reads scattered rows, and the kernel's
    read-ahead around each page fault (8 MB on the project's VM) would otherwise pull most of a
    large file into memory (measured: 3.0 of 2.9 GiB resident before, see BENCHMARKS.md)."""
    import mmap

    mm = getattr(m, "_mmap", None)
    if mm is not None and hasattr(mm, "madvise") and hasattr(mmap, "MADV_RANDOM"):
        try:
            mm.madvise(mmap.MADV_RANDOM)
        except (OSError, ValueError):  # pragma: no cover - advice is optional
            pass


def _load_npy(path: Path, roots=None) -> _Side:
    if roots is not None:
        path = resolve_within(path, roots)
    try:
        m = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as err:
        raise ValueError(f"{path}: not a plain .npy matrix ({err})") from None
    except OSError as err:
        raise ValueError(f"{path}: cannot read ({err.strerror or err})") from None
    _random_access(m)
    normalised, norms = _check_matrix(path, m)
    ids_path, ids = _read_ids(path, roots)
    _check_ids(ids_path, ids, m.shape[0], path.name)
    return _Side(path, m, ids, normalised, norms)


def _parquet_cache_dir(path: Path) -> Path:
    st = path.stat()
    key = hashlib.sha1(f"{path.resolve()}\0{st.st_size}\0{st.st_mtime_ns}".encode()).hexdigest()[:20]
    return default_cache_dir() / "user-embeddings" / key


def _load_parquet(path: Path, roots=None) -> _Side:
    import pyarrow as pa
    import pyarrow.parquet as pq

    if roots is not None:
        path = resolve_within(path, roots)
    try:
        pf = pq.ParquetFile(path)
    except Exception as err:  # pyarrow raises several types for a damaged file
        raise ValueError(f"{path}: not a readable Parquet file ({err})") from None
    schema = pf.schema_arrow
    names = schema.names
    strings = [
        n
        for n in names
        if pa.types.is_string(schema.field(n).type)
        or pa.types.is_large_string(schema.field(n).type)
        or pa.types.is_integer(schema.field(n).type)
    ]
    lists = [
        n
        for n in names
        if pa.types.is_list(schema.field(n).type)
        or pa.types.is_fixed_size_list(schema.field(n).type)
        or pa.types.is_large_list(schema.field(n).type)
    ]
    id_col = next((n for n in ID_COLUMNS if n in strings), strings[0] if len(strings) == 1 else None)
    vec_col = next((n for n in VECTOR_COLUMNS if n in lists), lists[0] if len(lists) == 1 else None)
    if id_col is None:
        raise ValueError(
            f"{path}: no id column: name it one of {', '.join(ID_COLUMNS[:4])}, ... (columns: {names})"
        )
    if vec_col is None:
        raise ValueError(
            f"{path}: no vector column: store the vectors in one list column named 'embedding' "
            f"(columns: {names})"
        )
    vtype = schema.field(vec_col).type.value_type
    if not pa.types.is_floating(vtype):
        raise ValueError(
            f"{path}: column '{vec_col}' holds {vtype}, not floats: store float16/float32 vectors"
        )
    n = pf.metadata.num_rows
    out_dir = _parquet_cache_dir(path)
    npy, ids_txt = out_dir / "vectors.npy", out_dir / "vectors.ids.json"
    if not (npy.is_file() and ids_txt.is_file()):
        out_dir.mkdir(parents=True, exist_ok=True)
        dim = None
        mm = None
        ids: list[str] = []
        at = 0
        dtype = (
            np.float16
            if pa.types.is_float16(vtype)
            else (np.float64 if pa.types.is_float64(vtype) else np.float32)
        )
        tmp = out_dir / f"vectors.{os.getpid()}.npy.tmp"
        for batch in pf.iter_batches(batch_size=65536, columns=[id_col, vec_col]):
            col = batch.column(1)
            if col.null_count:
                bad = at + int(np.flatnonzero(col.is_null().to_numpy(zero_copy_only=False))[0])
                raise ValueError(f"{path}: row {bad}: column '{vec_col}' is null: every row needs a vector")
            lens = (
                col.value_lengths().to_numpy(zero_copy_only=False)
                if not pa.types.is_fixed_size_list(col.type)
                else np.full(len(col), col.type.list_size)
            )
            if dim is None and len(lens):
                dim = int(lens[0])
                mm = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=(n, dim))
            if len(lens) and (lens != dim).any():
                bad = at + int(np.flatnonzero(lens != dim)[0])
                raise ValueError(
                    f"{path}: row {bad}: vector of dimension {int(lens[lens != dim][0])}, "
                    f"but the first row has {dim}: every vector must have the same dimension"
                )
            flat = col.flatten().to_numpy(zero_copy_only=False)
            mm[at : at + len(col)] = flat.reshape(len(col), dim)
            ids.extend(str(x) for x in batch.column(0).to_pylist())
            at += len(col)
        if mm is None:
            raise ValueError(f"{path}: no rows")
        mm.flush()
        del mm
        os.replace(tmp, npy)
        ids_txt.write_text(json.dumps(ids), encoding="utf-8")
    side = _load_npy(npy)
    side.path = path
    return side


def _cache_fingerprints(folder: Path) -> list[str]:
    out = []
    for d in sorted(p for p in folder.iterdir() if p.is_dir()):
        if any(
            (d / k).is_dir() and any(f.suffix in (".arrow", ".npz") for f in (d / k).iterdir())
            for k in ("query", "passage")
        ):
            out.append(d.name)
    return out


def open_embeddings(path: str | os.PathLike, model: str | None = None, roots=None) -> UserEmbeddings:
    """Opens a folder of your own vectors (see the module docstring for the layouts).

    ``model`` is the name of the model that made them (required for .npy / Parquet: it is
    recorded with every result; for the product's cache it selects a fingerprint and defaults to
    the folder's only one). Raises ``ValueError`` with one line naming the file and the fix.
    ``roots`` (the dashboard's data roots; None: no limit): the folder and every file read from
    it must resolve inside a root (each is resolved, checked and read by its resolved path; the
    files of a cache layout are checked when the folder is opened), else ``PATH: outside the
    data root …``.
    """
    folder = Path(path).expanduser()
    if roots is not None and folder.exists():
        folder = resolve_within(folder, roots)
        for f in sorted(folder.rglob("*")):
            if f.is_file() or f.is_symlink():
                resolve_within(f, roots)
    if not folder.exists():
        raise ValueError(f"--embeddings {str(path)!r}: no such folder")
    if not folder.is_dir():
        raise ValueError(
            f"--embeddings {str(path)!r} is a file: pass the folder that holds queries.npy / "
            "passages.npy (+ .ids.txt), queries.parquet / passages.parquet, or an embedding cache"
        )
    q = _find(folder, "query", (".npy", ".parquet"))
    p = _find(folder, "passage", (".npy", ".parquet"))
    if q is not None or p is not None:
        if q is None or p is None:
            missing = "queries.npy (or .parquet)" if q is None else "passages.npy / corpus.npy (or .parquet)"
            raise ValueError(f"{folder}: {missing} is missing: both query and passage vectors are needed")
        if not model or not str(model).strip():
            raise ValueError(
                f"{folder}: name the model that made these vectors (--embeddings-model NAME): it is "
                "recorded with the results"
            )
        sides = [(_load_npy(x, roots) if x.suffix == ".npy" else _load_parquet(x, roots)) for x in (q, p)]
        return UserEmbeddings(folder, str(model).strip(), sides[0], sides[1])
    fps = _cache_fingerprints(folder)
    if not fps:
        raise ValueError(
            f"{folder}: found neither queries.npy / passages.npy (+ .ids.txt), queries.parquet / "
            "passages.parquet, nor an embedding cache (<fingerprint>/query/*.arrow or *.npz)"
        )
    if model:
        pick = [f for f in fps if f == model or f.startswith(str(model))]
        if len(pick) != 1:
            raise ValueError(
                f"{folder}: --embeddings-model {model!r} matches {len(pick)} of the cached models "
                f"{fps}: give a longer prefix of one"
            )
        fp = pick[0]
    elif len(fps) == 1:
        fp = fps[0]
    else:
        raise ValueError(
            f"{folder}: holds vectors of {len(fps)} models {fps}: pick one with --embeddings-model"
        )
    import secrets
    import tempfile

    # read-only: the folder is a read-only layer (never written, no shard renamed); the main
    # directory is a path that does not exist and is never created (nothing is put)
    cache = EmbeddingCache(
        Path(tempfile.gettempdir()) / f"eci-unused-{secrets.token_hex(8)}", readonly_dirs=[folder]
    )
    return UserEmbeddings(folder, str(model or fp), None, None, cache=cache, fingerprint=fp)


def write_embeddings(
    folder: str | os.PathLike, kind: Kind, ids: Sequence[str], vectors: np.ndarray, fmt: str = "npy"
) -> Path:
    """Writes vectors in a layout :func:`open_embeddings` reads (``fmt`` "npy" or "parquet").

    ``npy``: ``<kind-stem>.npy`` + ``<kind-stem>.ids.txt``; ``parquet``: one file with ``id`` and a
    fixed-size-list ``embedding`` column. ``kind`` is "query" or "passage". Returns the matrix file.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    stem = "queries" if kind == "query" else "passages"
    vectors = np.asarray(vectors)
    if fmt == "npy":
        out = folder / f"{stem}.npy"
        np.save(out, vectors)
        (folder / f"{stem}.ids.txt").write_text("".join(f"{i}\n" for i in ids), encoding="utf-8")
        return out
    if fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        flat = pa.array(vectors.reshape(-1))
        col = pa.FixedSizeListArray.from_arrays(flat, vectors.shape[1])
        out = folder / f"{stem}.parquet"
        pq.write_table(pa.table({"id": pa.array([str(i) for i in ids]), "embedding": col}), out)
        return out
    raise ValueError(f"fmt={fmt!r}: use 'npy' or 'parquet'")


__all__ = ["NormalisedRows", "UserEmbeddings", "open_embeddings", "write_embeddings"]
