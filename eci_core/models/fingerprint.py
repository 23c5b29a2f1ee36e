"""Fingerprints of model folders: :func:`folder_digest` (content hash of a folder's files) and
:func:`slug` (a file-name-safe form of a model name), used by the encoders' ``fingerprint`` and
the embedding cache's folder names."""

from __future__ import annotations

import hashlib
import os
import re
import threading
from pathlib import Path
from typing import Iterable


def slug(text: str, max_len: int = 48) -> str:
    """``text`` with runs of characters other than letters, digits, ``.``, ``_``, ``-`` replaced by
    ``-``, cut to ``max_len`` (``"model"`` when nothing is left)."""
    s = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")
    return s[:max_len].rstrip("-.") or "model"


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


__all__ = ["folder_digest", "slug"]
