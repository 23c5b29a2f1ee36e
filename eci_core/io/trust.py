"""Which files the product reads besides the ones you named, and the data root (issue 16).

**Neighbour files.** Besides the files and folders you name, the product reads a few files it
finds itself: a negatives file's BEIR ``corpus.jsonl`` / ``queries.jsonl`` / ``qrels/``, the
review labels ``qrels/false_negatives.tsv``, saved validations ``validation/**/results.json``
and the whole ``corpus.jsonl`` a validation ranks. One rule decides where
(:func:`neighbour_dirs`): only in the *dataset folder* of a named path,

* a folder you named: that folder itself;
* a file you named: the folder that holds it. A file in ``DIR/negatives/`` of a BEIR directory
  ``DIR`` (``corpus.jsonl`` and ``qrels/`` there) is read by the loader as part of ``DIR`` (its
  ids mean nothing without ``DIR``'s corpus, queries and qrels), so ``DIR`` is its dataset
  folder; a file anywhere else (``DIR/sweep/x.trec``) gives only its own folder: name ``DIR``
  too (``eci validate DIR DIR/sweep/*.trec``) for ``DIR``'s files to be read;

never a parent of these, never the temporary folder or one of its parents (anyone may write
there), and after a load never an upload folder (``eci-upload-*`` in the temporary folder: it
is removed once the upload is loaded, and its name could be taken again by someone else).
Embedding caches are read only from the user cache and folders named explicitly (see
``ui.state.readonly_cache_dirs``).

**Data root.** :func:`open_within` is the one place where a file is opened under a set of
allowed roots (the dashboard's data roots; the CLI has none: you name the files): the path is
resolved (``..`` and every symbolic link), checked to lie inside a root, and that resolved path
is opened without following a link; on Linux the opened file's own path is checked again, so a
link swapped in between the check and the open is refused as well.
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path
from typing import IO, Iterable, Sequence

from eci_core.io.records import LoadError

#: Prefix of the private temporary folder an upload is written to while it loads (``ui.state``).
UPLOAD_PREFIX = "eci-upload-"

__all__ = [
    "UPLOAD_PREFIX",
    "dataset_dir",
    "is_trusted_dir",
    "neighbour_dirs",
    "neighbour_file",
    "normalise_roots",
    "within_roots",
    "resolve_within",
    "open_within",
    "outside_message",
]


# ----------------------------------------------------------------------------- neighbour files
def _is_beir_dir(d: Path) -> bool:
    return ((d / "corpus.jsonl").is_file() or (d / "corpus.jsonl.gz").is_file()) and (d / "qrels").is_dir()


def dataset_dir(path: str | os.PathLike) -> Path:
    """The dataset folder of one named path (or a loaded source's path): the folder itself; for
    a file, the folder that holds it, or ``DIR`` for a file in ``DIR/negatives/`` when ``DIR`` is
    a BEIR directory (``corpus.jsonl`` and ``qrels/``). Trust is decided by :func:`is_trusted_dir`."""
    p = Path(path).expanduser()
    if p.is_dir():
        return p
    d = p.parent
    if d.name == "negatives" and not _is_beir_dir(d) and _is_beir_dir(d.parent):
        return d.parent
    return d


def _real(p: Path) -> Path | None:
    try:
        return p.expanduser().resolve()
    except (OSError, RuntimeError):  # a symlink loop
        return None


def _temp_dirs(temp_dir: str | os.PathLike | None) -> list[Path]:
    base = Path(temp_dir) if temp_dir is not None else Path(tempfile.gettempdir())
    out = [base.absolute()]
    r = _real(base)
    if r is not None and r not in out:
        out.append(r)
    return out


def is_trusted_dir(
    d: str | os.PathLike, uploads: bool = False, temp_dir: str | os.PathLike | None = None
) -> bool:
    """False when folder ``d`` (as written, or resolved) is the temporary folder or one of its
    parents (the file-system root included), or, unless ``uploads``, lies in an upload folder
    (``eci-upload-*`` directly in the temporary folder); ``uploads=True`` is for the load of an
    upload itself, while the folder holds exactly the uploaded files. ``temp_dir`` defaults to
    ``tempfile.gettempdir()``."""
    p = Path(d).expanduser()
    cands = [p.absolute()]
    r = _real(p)
    if r is None:
        return False
    if r not in cands:
        cands.append(r)
    for t in _temp_dirs(temp_dir):
        for c in cands:
            if c == t or t.is_relative_to(c):
                return False
            if not uploads and c.is_relative_to(t):
                rel = c.relative_to(t).parts
                if rel and rel[0].startswith(UPLOAD_PREFIX):
                    return False
    return True


def neighbour_dirs(
    paths: Iterable[str | os.PathLike], uploads: bool = False, temp_dir: str | os.PathLike | None = None
) -> list[Path]:
    """The folders neighbour files of ``paths`` may be read from: each path's
    :func:`dataset_dir` when :func:`is_trusted_dir`, in order, without repeats."""
    out: list[Path] = []
    for p in paths:
        if not p:
            continue
        d = dataset_dir(p)
        if d not in out and is_trusted_dir(d, uploads=uploads, temp_dir=temp_dir):
            out.append(d)
    return out


def neighbour_file(
    paths: Iterable[str | os.PathLike],
    relative: str | os.PathLike,
    roots: Sequence[str | os.PathLike] | None = None,
    uploads: bool = False,
    temp_dir: str | os.PathLike | None = None,
) -> Path | None:
    """The first ``DIR/relative`` that is a file, over the :func:`neighbour_dirs` of ``paths``;
    with ``roots``, only one that resolves inside a root."""
    for d in neighbour_dirs(paths, uploads=uploads, temp_dir=temp_dir):
        cand = d / relative
        if cand.is_file() and (roots is None or within_roots(cand, roots)):
            return cand
    return None


# ----------------------------------------------------------------------------- data root
def normalise_roots(roots: Iterable[str | os.PathLike] | None) -> tuple[Path, ...] | None:
    """``roots`` resolved (symlinks followed), without repeats; None stays None (no limit)."""
    if roots is None:
        return None
    out: list[Path] = []
    for r in roots:
        rr = _real(Path(r))
        if rr is not None and rr not in out:
            out.append(rr)
    return tuple(out)


def _inside(real: Path, roots: Sequence[Path]) -> bool:
    return any(real == r or real.is_relative_to(r) for r in roots)


def within_roots(path: str | os.PathLike, roots: Sequence[str | os.PathLike] | None) -> bool:
    """True when ``path`` resolves inside one of ``roots`` (always True for ``roots=None``)."""
    if roots is None:
        return True
    real = _real(Path(path))
    return real is not None and _inside(real, normalise_roots(roots) or ())


def outside_message() -> str:
    return (
        "outside the data root (a symbolic link or '..' leads out of it); only files inside the data root "
        "are read: copy the file into it, or start the app with --data-root (ECI_DATA_ROOT) naming its folder"
    )


def resolve_within(path: str | os.PathLike, roots: Sequence[str | os.PathLike] | None) -> Path:
    """``path`` resolved (``..`` and symbolic links), checked to lie inside one of ``roots``.
    Raises LoadError ``PATH: outside the data root …`` naming ``path`` as given (never where a
    link points). ``roots=None``: no limit, ``path`` is returned as given."""
    if roots is None:
        return Path(path)
    real = _real(Path(path))
    if real is None or not _inside(real, normalise_roots(roots) or ()):
        raise LoadError(str(path), None, outside_message())
    return real


def open_within(path: str | os.PathLike, roots: Sequence[str | os.PathLike] | None) -> IO[bytes]:
    """``path`` opened for binary reading; with ``roots`` through :func:`resolve_within`: the
    resolved path is opened with ``O_NOFOLLOW`` and, where ``/proc/self/fd`` exists (Linux),
    the opened file's own path is checked against the roots again (a link swapped in between
    the check and the open is refused). Without ``roots`` a plain ``open(path, "rb")``."""
    if roots is None:
        return open(path, "rb")
    nroots = normalise_roots(roots) or ()
    real = resolve_within(path, nroots)
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(real, flags)
    except OSError as e:
        if e.errno == errno.ELOOP:  # the last part became a symbolic link after the check
            raise LoadError(str(path), None, outside_message()) from None
        raise
    try:
        proc = Path(f"/proc/self/fd/{fd}")
        if proc.exists():
            opened = Path(os.readlink(proc))
            if not _inside(opened, nroots):
                raise LoadError(str(path), None, outside_message())
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
