"""Loading: the dataset opened at start, local paths and uploads added or opened from the sidebar,
and the load report and errors shown there.

* The default dataset is loaded once per process (``st.cache_resource`` keyed on its path and
  modification times) and never mutated: adding files works on a copy, and when every added file
  fails the session keeps what it had.
* Every file opened must resolve inside the data root (:func:`ui.state.launch.read_roots`; an
  upload's: inside its own temporary folder).
* Errors are one line each (:func:`one_line`), with the upload folder cut from file names.
* A new collection restores the marks saved for its data (:func:`ui.state.marks.restore_marks`).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import streamlit as st

from eci_core.io.collection import Collection, content_hash
from eci_core.io.records import LoadReport
from eci_core.io.trust import UPLOAD_PREFIX
from ui.state.keys import (
    K_COLLECTION,
    K_CONTENT_HASH,
    K_DATA_DIRS,
    K_DATA_LABEL,
    K_ERRORS,
    K_FINGERPRINT,
    K_QUERY,
    K_REPORT,
)
from ui.state.launch import ROOT, read_roots
from ui.state.marks import restore_marks


def one_line(err: BaseException) -> str:
    """The first line of an error's message (its type name when the message is empty)."""
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def dataset_label(path: Path) -> str:
    """``path`` relative to the repository when it lies inside it (how a dataset is named)."""
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def _mtimes(path: Path) -> tuple:
    """Modification time and size of a file or of every file under a folder (the key of the
    per-process dataset cache; scores are keyed on the loaded data's content hash instead)."""

    def stamp(p: Path) -> tuple:
        st_ = p.stat()
        return (str(p), st_.st_mtime_ns, st_.st_size)

    if path.is_file():
        return (stamp(path),)
    if path.is_dir():
        return tuple(sorted(stamp(p) for p in path.rglob("*") if p.is_file() and "embeddings" not in p.parts))
    return ()


@st.cache_resource(show_spinner="Reading the dataset…", max_entries=4)
def _load_cached(path: str, mtimes_key: tuple, roots: tuple[str, ...]) -> tuple[Collection, LoadReport]:
    from eci_core.io.load import load_paths

    return load_paths([path], roots=roots)


def open_default_dataset(path: Path) -> None:
    """Replace the session's data by the dataset at ``path`` (shared, read-only, cached)."""
    ss = st.session_state
    if not path.exists():
        ss[K_ERRORS] = [f"{path}: no such file or folder (set ECI_DATA or --data to a dataset)"]
        return
    try:
        coll, report = _load_cached(str(path), _mtimes(path), tuple(str(r) for r in read_roots()))
    except Exception as err:  # a LoadError or an unreadable dataset: say it in one line
        ss[K_ERRORS] = [one_line(err)]
        return
    ss[K_ERRORS] = list(report.errors)
    if coll is not None and coll.sources:
        _set_collection(coll, report, label=dataset_label(path))
        ss[K_DATA_DIRS] = [str(path)] if path.is_dir() else []
    elif not report.errors:
        ss[K_ERRORS] = [f"{path}: no negatives found (a dataset needs at least one source of negatives)"]


def _set_collection(coll: Collection, report: LoadReport, label: str) -> None:
    ss = st.session_state
    ss[K_COLLECTION] = coll
    ss[K_FINGERPRINT] = coll.fingerprint()
    ss[K_CONTENT_HASH] = content_hash(coll)
    restore_marks()
    ss[K_REPORT] = report
    ss[K_DATA_LABEL] = label
    ss[K_QUERY] = None


def add_paths(paths: list[Path], label: str, hide_root: Path | None = None) -> None:
    """Load ``paths`` as extra sources of the current collection.

    The load works on a copy: when every path fails, the session keeps what it had; errors are
    shown as one line each (with ``hide_root/`` cut from file names, so an upload is named as the
    user's file). A path that loads adds its sources (named after the file stems); a TREC run or
    negative-ids file resolves its ids against the whole corpus of the BEIR folder opened before
    (``K_DATA_DIRS``), not only the passages already loaded. Every file opened must resolve inside
    :func:`read_roots` (an upload's: inside its own folder ``hide_root``).
    """
    from eci_core.io.load import load_paths

    ss = st.session_state
    current: Collection | None = ss[K_COLLECTION]
    base = current.copy() if current is not None else None
    try:
        corpus_dirs = (ss.get(K_DATA_DIRS) or []) if current is not None else []
        # an upload reads inside its own folder, plus the dataset folder opened before (its corpus)
        roots = [hide_root, *corpus_dirs] if hide_root is not None else read_roots()
        coll, report = load_paths(
            [str(p) for p in paths], collection=base, roots=roots, corpus_dirs=corpus_dirs
        )
    except Exception as err:
        ss[K_ERRORS] = [_short_names(one_line(err), hide_root)]
        return
    ss[K_ERRORS] = [_short_names(e, hide_root) for e in report.errors]
    if coll is None or not report.sources:
        return
    merged = LoadReport()
    merged.extend(ss[K_REPORT])
    merged.sources.extend(report.sources)
    old_label = ss[K_DATA_LABEL] if current is not None else ""
    _set_collection(coll, merged, label=f"{old_label} + {label}" if old_label else label)


def _short_names(message: str, root: Path | None) -> str:
    """``message`` with ``root/`` (and an upload sub-folder ``u<n>/``) removed from paths."""
    if root is None:
        return message
    import re

    return re.sub(re.escape(str(root)) + r"/(u\d+/)?", "", message)


def replace_with_path(path: Path) -> None:
    """Open another dataset in place of the current one (kept when the new one fails); every
    file opened must resolve inside :func:`read_roots`."""
    from eci_core.io.load import load_paths

    ss = st.session_state
    try:
        coll, report = load_paths([str(path)], roots=read_roots())
    except Exception as err:
        ss[K_ERRORS] = [one_line(err)]
        return
    ss[K_ERRORS] = list(report.errors)
    if coll is not None and coll.sources:
        _set_collection(coll, report, label=dataset_label(path))
        ss[K_DATA_DIRS] = [str(path)] if path.is_dir() else []


def max_upload_mb() -> int:
    """Largest upload the server accepts, in MB (Streamlit's ``server.maxUploadSize``, set in
    ``.streamlit/config.toml``; the uploader itself refuses a larger file with a message)."""
    try:
        return int(st.get_option("server.maxUploadSize"))
    except Exception:  # outside a server (tests): Streamlit's default
        return 200


def save_uploads(files, folder: Path) -> list[Path]:
    """Write uploaded files into ``folder``, keeping their names (sources are named after file
    stems, so ``bm25.jsonl`` becomes the source ``bm25``); a name used twice in one batch gets a
    sub-folder ``u<n>/`` so two files never overwrite each other."""
    out: list[Path] = []
    for f in files:
        name = Path(f.name).name or "upload"
        target_dir = folder
        n = 1
        while (target_dir / name).exists():
            target_dir = folder / f"u{n}"
            n += 1
        target_dir.mkdir(parents=True, exist_ok=True)
        target = target_dir / name
        target.write_bytes(f.getvalue())
        out.append(target)
    return out


def add_uploads(files) -> None:
    """Load uploaded files as extra sources (see :func:`add_paths`).

    The files are written to a fresh ``eci-upload-*`` folder in the temporary directory only for
    the time of the load, then the folder is removed (the loaded data lives in memory), so no
    upload outlives its session or stays behind when it is replaced. A file larger than
    :func:`max_upload_mb` is refused with one line (the uploader normally refuses it first).
    """
    import shutil

    limit = max_upload_mb() * 1024 * 1024
    too_big = [f for f in files if getattr(f, "size", 0) > limit]
    files = [f for f in files if f not in too_big]
    errors = [
        f"{Path(f.name).name}: {f.size / 1e6:,.0f} MB is over the upload limit of {max_upload_mb():,} MB "
        "(server.maxUploadSize); open it with --data or the local-path box instead"
        for f in too_big
    ]
    if not files:
        st.session_state[K_ERRORS] = errors
        return
    folder = Path(tempfile.mkdtemp(prefix=UPLOAD_PREFIX))
    try:
        paths = save_uploads(files, folder)
        add_paths(paths, label=", ".join(p.name for p in paths), hide_root=folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if errors:
        st.session_state[K_ERRORS] = errors + list(st.session_state[K_ERRORS])
