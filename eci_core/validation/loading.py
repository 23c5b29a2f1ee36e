"""The evaluation corpus: every passage of a BEIR directory, not only those a source mentions.

``loaders.load_beir`` keeps the passages that positives and negatives refer to (what scoring
needs). Retrieval evaluation ranks the *whole* corpus, so a validation first adds every passage
of each BEIR directory's ``corpus.jsonl`` (text = title + " " + text, as the loader builds it, so
embedding-cache keys agree), then loads the sources into that collection.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from eci_core.io.data import Collection


def corpus_dir(path: str | Path) -> Path | None:
    """The BEIR directory a path belongs to, when it holds ``corpus.jsonl``: a folder itself (named
    explicitly), else the file's dataset folder (:func:`eci_core.io.trust.neighbour_dirs`: the
    folder holding it, or DIR for a file in DIR/negatives/ of a BEIR directory; never a parent,
    the temporary folder or an upload folder); else None. A file in ``DIR/sweep/`` does not make
    ``DIR``'s corpus read: name ``DIR`` too."""
    from eci_core.io.trust import neighbour_dirs

    p = Path(path)
    # a folder is named explicitly (a loaded source's path is always a file)
    for d in [p] if p.is_dir() else neighbour_dirs([p]):
        if (d / "corpus.jsonl").is_file():
            return d
    return None


def add_corpus(collection: Collection, directory: str | Path, roots=None) -> int:
    """Add every passage of ``directory/corpus.jsonl`` to ``collection`` (known ids keep their
    index; texts built as the loader builds them, read by the loader's own BEIR reader); returns
    how many were new. A bad line raises LoadError naming file, line and field; with ``roots``
    (the dashboard's data roots) a corpus that resolves outside them too."""
    from eci_core.io.loaders import read_beir_texts

    before = collection.n_passages
    for pid, text in read_beir_texts(Path(directory) / "corpus.jsonl", with_title=True, roots=roots).items():
        collection.add_passage(text, pid)
    return collection.n_passages - before


def with_full_corpus(collection: Collection, paths: Iterable[str | Path], roots=None) -> Collection:
    """A copy of ``collection`` with the whole corpus of every BEIR directory behind ``paths``
    (:func:`corpus_dir`) added (source and positive indices stay valid: passages are only
    appended). ``roots``: see :func:`add_corpus`."""
    dirs = []
    for p in paths:
        d = corpus_dir(p)
        if d is not None and d not in dirs:
            dirs.append(d)
    if not dirs:
        return collection
    out = collection.copy()
    for d in dirs:
        add_corpus(out, d, roots=roots)
    return out


def load_for_validation(paths: list[str], format: str | None = None):
    """``(collection, report)``: the full corpora of the BEIR directories among ``paths`` first,
    then every path loaded into that collection (so extra runs may use any corpus passage)."""
    from eci_core.io.loaders import load_paths

    coll = Collection()
    for p in paths:
        d = corpus_dir(p)
        if d is not None and Path(p).is_dir():
            add_corpus(coll, d)
    return load_paths(paths, collection=coll, format=format)
