"""What every model of :mod:`eci_core.models` shares: the two protocols, the bundled models' names
and aliases, the cache keys of texts and pairs, and the checks of encoder inputs.

Protocols
---------
* :class:`Encoder`: ``name``, ``fingerprint``, ``dim``, ``encode_queries(texts)``,
  ``encode_passages(texts)`` → ``(n, dim)`` float32, rows L2-normalised (‖v‖₂ = 1), so the
  cosine similarity of two texts is the dot product of their rows.
* :class:`CrossEncoderModel`: ``name``, ``fingerprint``, ``predict(pairs)`` → ``(n,)`` float32
  raw relevance logits (no sigmoid).

``fingerprint`` identifies the weights *and* the settings that change the output; it is the key
of the :class:`~eci_core.models.cache.EmbeddingCache`, so a changed model never reuses stale vectors.
"""

from __future__ import annotations

import hashlib
from typing import Any, Callable, Literal, Protocol, Sequence, runtime_checkable

import numpy as np

Kind = Literal["query", "passage"]
Progress = Callable[[str, int, int], None]

BUNDLED_ENCODER_NAME = "all-MiniLM-L6-v2 (bundled)"
BUNDLED_CROSS_ENCODER_NAME = "ms-marco-MiniLM-L-12-v2 (bundled, ONNX int8)"
BUNDLED_BGE_NAME = "bge-small-en-v1.5 (bundled, ONNX int8)"

#: Names that select the bundled bi-encoder in :func:`~eci_core.models.registry.load_encoder`
#: (compared case-insensitively).
BUNDLED_ENCODER_ALIASES = (
    "minilm",
    "all-minilm-l6-v2",
    "sentence-transformers/all-minilm-l6-v2",
    "bundled",
)
#: Names that select the bundled ONNX cross-encoder in
#: :func:`~eci_core.models.registry.load_cross_encoder`.
BUNDLED_CROSS_ENCODER_ALIASES = (
    "ms-marco-minilm-l-12-v2",
    "cross-encoder/ms-marco-minilm-l-12-v2",
    "bundled",
)
#: Names that select :class:`~eci_core.models.onnx.OnnxBgeEncoder` in
#: :func:`~eci_core.models.registry.load_encoder` (case-insensitive).
BGE_SMALL_ALIASES = ("bge-small", "bge-small-en-v1.5", "baai/bge-small-en-v1.5")

#: Cache kinds of embeddings (stored unit-length) and of cross-encoder scores.
EMBEDDING_KINDS = ("query", "passage")
CE_KIND = "ce"
_PAIR_SEP = "\x1f"


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


def check_texts(texts: Any, what: str = "texts") -> list[str]:
    """``texts`` as a list of str; ``TypeError`` naming ``what`` for one string or a non-str item."""
    if isinstance(texts, str):
        raise TypeError(f"{what} must be a sequence of strings, got one string; wrap it in a list")
    out = list(texts)
    for i, t in enumerate(out):
        if not isinstance(t, str):
            raise TypeError(f"{what}[{i}] is {type(t).__name__}, expected str")
    return out


def as_pairs(pairs: Any) -> list[tuple[str, str]]:
    """``pairs`` as a list of (query, passage) str tuples; ``TypeError`` naming the bad item."""
    out = []
    for i, pair in enumerate(pairs):
        if isinstance(pair, str) or len(pair) != 2:
            raise TypeError(f"pairs[{i}] must be a (query, passage) pair of strings")
        q, p = pair
        if not isinstance(q, str) or not isinstance(p, str):
            raise TypeError(f"pairs[{i}] = ({type(q).__name__}, {type(p).__name__}): expected two strings")
        out.append((q, p))
    return out


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


__all__ = [
    "BGE_SMALL_ALIASES",
    "BUNDLED_BGE_NAME",
    "BUNDLED_CROSS_ENCODER_ALIASES",
    "BUNDLED_CROSS_ENCODER_NAME",
    "BUNDLED_ENCODER_ALIASES",
    "BUNDLED_ENCODER_NAME",
    "CE_KIND",
    "CrossEncoderModel",
    "EMBEDDING_KINDS",
    "Encoder",
    "EncoderCallCounter",
    "Kind",
    "Progress",
    "as_pairs",
    "check_texts",
    "l2_normalize",
    "pair_key",
    "text_key",
]
