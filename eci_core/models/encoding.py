"""Encoding through the cache: :func:`embed` (bi-encoder vectors) and :func:`cross_scores`
(cross-encoder logits) encode each distinct text (pair) once per model, looking it up in and
adding it to an :class:`~eci_core.models.cache.EmbeddingCache`; :func:`export_embeddings` and
:func:`export_cross_scores` write them as a shipped read-only cache."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from eci_core.models.base import (
    CE_KIND,
    EMBEDDING_KINDS,
    CrossEncoderModel,
    Encoder,
    Kind,
    Progress,
    as_pairs,
    check_texts,
    l2_normalize,
    pair_key,
    text_key,
)
from eci_core.models.cache import EmbeddingCache

_STAGE = {"query": "encoding queries", "passage": "encoding passages"}
_CE_STAGE = "cross-encoding pairs"
_FLUSH_ROWS = 2048  # embed() writes a shard at least every this many newly encoded rows


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
    if kind not in EMBEDDING_KINDS:
        raise ValueError(f"kind={kind!r}: use 'query' or 'passage'")
    texts = check_texts(texts)
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
    pairs = as_pairs(pairs)
    if not pairs:
        return np.zeros(0, dtype=np.float32)
    if batch_size is None:
        batch_size = int(getattr(cross_encoder, "predict_chunk", 32) or 32)

    def compute(batch: list[tuple[str, str]]) -> np.ndarray:
        return np.asarray(cross_encoder.predict(batch), dtype=np.float32).reshape(len(batch), 1)

    out = _cached_compute(
        cross_encoder.fingerprint,
        CE_KIND,
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
            return export_embeddings(encoder, texts, kind, directory, EmbeddingCache(tmp), progress, dtype)
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
            return export_cross_scores(cross_encoder, pairs, directory, EmbeddingCache(tmp), progress)
    cross_scores(cross_encoder, pairs, cache=cache, progress=progress)
    return cache.export(cross_encoder.fingerprint, CE_KIND, pairs, directory)


__all__ = ["cross_scores", "embed", "export_cross_scores", "export_embeddings"]
