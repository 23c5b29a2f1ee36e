"""The evaluation corpus and queries: every passage of a BEIR directory, not only those a source
mentions, and the official test queries even when no source mined negatives for them.

``loaders.load_beir`` keeps the passages that positives and negatives refer to, and the queries
the sources mention (what scoring needs). Retrieval evaluation ranks the *whole* corpus, so a
validation first adds every passage of each BEIR directory's ``corpus.jsonl`` (text = title + " "
+ text, as the loader builds it, so embedding-cache keys agree), then loads the sources into that
collection. Negatives are usually mined for the training queries only, so the official test
queries (qrels "test", else "dev", when the directory also has "train") are then added with their
positives and split (:func:`add_eval_queries`) unless the split policy is ``kfold``. This copy
of the data is the validation's own: what ``eci score`` loads and reports is unchanged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from eci_core.io.collection import Collection


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
    from eci_core.io.formats.beir import read_beir_texts

    before = collection.n_passages
    for pid, text in read_beir_texts(Path(directory) / "corpus.jsonl", with_title=True, roots=roots).items():
        collection.add_passage(text, pid)
    return collection.n_passages - before


def eval_split_name(directory: str | Path) -> str | None:
    """The qrels split of ``directory`` that is its official test set: "test", else "dev", when the
    directory also has ``qrels/train.tsv``; None when it has no official split."""
    from eci_core.io.formats.beir_qrels import qrels_splits

    names = set(qrels_splits(directory))
    if "train" not in names:
        return None
    return "test" if "test" in names else ("dev" if "dev" in names else None)


def add_eval_queries(collection: Collection, directory: str | Path, roots=None) -> int:
    """Add the official test queries of the BEIR ``directory`` (:func:`eval_split_name`) that
    ``collection`` lacks or holds without a positive, with their positives and split (the queries
    no source mined negatives for); returns how many were added. The passages must be loaded
    (:func:`add_corpus`); a positive missing from them raises LoadError naming the qrels line."""
    from eci_core.io.records import LoadError
    from eci_core.io.formats.beir import read_beir_texts
    from eci_core.io.formats.beir_qrels import read_beir_qrels

    d = Path(directory)
    name = eval_split_name(d)
    if name is None:
        return 0
    pos, splits, where = read_beir_qrels(d, name)
    todo = [
        q
        for q in pos
        if not (collection.has_query(q) and collection.positives.get(collection.query_index(q)))
    ]
    if not todo:
        return 0
    texts = read_beir_texts(d / "queries.jsonl", with_title=False, roots=roots)
    added = 0
    for qid in todo:
        if qid not in texts:
            f, line = where[pos[qid][0]]
            raise LoadError(f, line, "query id not in queries.jsonl", field="query-id")
        missing = [p for p in pos[qid] if not collection.has_passage(p)]
        if missing:
            f, line = where[missing[0]]
            raise LoadError(f, line, "positive id not in corpus.jsonl", field="corpus-id")
        qi = collection.add_query(texts[qid], qid)
        collection.positives[qi] = [collection.passage_index(p) for p in pos[qid]]
        collection.query_splits[qi] = splits[qid]
        added += 1
    return added


def with_full_corpus(
    collection: Collection, paths: Iterable[str | Path], split_policy: str = "auto", roots=None
) -> Collection:
    """A copy of ``collection`` with the whole corpus of every BEIR directory behind ``paths``
    added (source and positive indices stay valid: passages and queries are only appended), and,
    unless ``split_policy`` is ``kfold``, their official test queries (:func:`add_eval_queries`).
    ``roots``: see :func:`add_corpus`."""
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
    if split_policy != "kfold":
        for d in dirs:
            add_eval_queries(out, d, roots=roots)
    return out


def load_for_validation(paths: list[str], format: str | None = None, split_policy: str = "auto"):
    """``(collection, report)``: the full corpora of the BEIR directories among ``paths`` first,
    then every path loaded into that collection (so extra runs may use any corpus passage), then,
    unless ``split_policy`` is ``kfold``, the official test queries that no source covers
    (:func:`add_eval_queries`)."""
    from eci_core.io.load import load_paths

    coll = Collection()
    dirs = []
    for p in paths:
        d = corpus_dir(p)
        if d is not None and Path(p).is_dir():
            add_corpus(coll, d)
            dirs.append(d)
    coll, report = load_paths(paths, collection=coll, format=format)
    if split_policy != "kfold" and not report.errors:
        for d in dict.fromkeys(dirs):
            add_eval_queries(coll, d)
    return coll, report
