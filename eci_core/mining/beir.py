"""The miners' input: a BEIR directory as a :class:`~eci_core.io.collection.Collection` with every
passage and query, and negatives by id (TREC run or negative-ids JSONL) for ``--add-negatives``.

Both read through the io layer's readers (:func:`eci_core.io.formats.beir.read_beir_texts`,
:func:`~eci_core.io.formats.beir_qrels.read_beir_qrels`,
:func:`~eci_core.io.formats.run_files.parse_negatives_file`),
the ones ``eci score`` loads with: the same texts, the same positives, the same
``PATH:LINE: field 'F': message`` errors, no value of the file echoed.
"""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Mapping

from eci_core.io.collection import Collection
from eci_core.io.records import LoadError


def _beir_file(d: Path, name: str) -> Path | None:
    """``d/name`` or ``d/name.gz``, whichever exists (the loaders' rule), else None."""
    for cand in (d / name, d / (name + ".gz")):
        if cand.is_file():
            return cand
    return None


def read_beir(directory: str | Path, split: str = "test") -> Collection:
    """Read a BEIR directory into a :class:`Collection` (passages, queries, positives; no source).

    ``corpus.jsonl`` lines ``{"_id", "title", "text"}`` (passage text = ``title + " " + text``
    when the title is non-empty, the BEIR convention), ``queries.jsonl`` lines
    ``{"_id", "text"}`` (either may be gzipped, ``.jsonl.gz``), ``qrels/<split>.tsv`` with header
    ``query-id corpus-id score`` (score > 0 = relevant). Every query of ``queries.jsonl`` is added;
    those with a relevant passage get positives and are the ones mined. The files are read by the
    io layer's BEIR readers (:func:`eci_core.io.formats.beir.read_beir_texts`,
    :func:`eci_core.io.formats.beir_qrels.read_beir_qrels`), so a repeated id keeps its first line and a
    problem raises the loaders' :class:`LoadError`, ``PATH:LINE: field 'F': message``, with no
    value of the file echoed. A qrels row naming a query or passage the other files lack is an
    error at its line.
    """
    from eci_core.io.formats.beir import read_beir_texts
    from eci_core.io.formats.beir_qrels import read_beir_qrels

    d = Path(directory)
    if not d.is_dir():
        raise FileNotFoundError(
            f"{d}: not a directory (expected a BEIR folder with corpus.jsonl, queries.jsonl, qrels/)"
        )
    corpus, queries = _beir_file(d, "corpus.jsonl"), _beir_file(d, "queries.jsonl")
    missing = [n for n, f in (("corpus.jsonl", corpus), ("queries.jsonl", queries)) if f is None]
    if missing:
        raise LoadError(str(d), None, f"not a BEIR directory: missing {', '.join(missing)}")
    ptexts = read_beir_texts(corpus, with_title=True)
    qtexts = read_beir_texts(queries, with_title=False)
    pos, _, where = read_beir_qrels(d, split)
    qrels = _beir_file(d / "qrels", f"{split}.tsv")
    if not pos:
        raise LoadError(str(qrels), None, "no relevant (score > 0) query-passage pair: nothing to mine")
    # ids the qrels name that the corpus / queries lack: one line at the first such row
    _check_known(
        str(qrels), {p: ln for p, (_, ln) in where.items()}, ptexts, "positive id", corpus.name, "corpus-id"
    )
    if any(q not in qtexts for q in pos):
        lines = _first_relevant_lines(qrels, set(pos) - qtexts.keys())
        _check_known(str(qrels), lines, qtexts, "query id", queries.name, "query-id")
    coll = Collection()
    for pid, text in ptexts.items():
        coll.add_passage(text, pid)
    for qid, text in qtexts.items():
        coll.add_query(text, qid)
    for qid, pids in pos.items():
        coll.positives[coll.query_index(qid)] = [coll.passage_index(p) for p in pids]
    return coll


def _check_known(
    path: str, first_line: Mapping[str, int], known, what: str, where: str, fld: str | None
) -> None:
    """Raise LoadError at the first line (in file order) naming an id that ``known`` lacks,
    with how many such ids there are (the loaders' message for unknown ids; no id echoed)."""
    missing = sorted((ln, i) for i, ln in first_line.items() if i not in known)
    if not missing:
        return
    word = what if len(missing) == 1 else what + "s"
    first = "" if len(missing) == 1 else " (the first on this line)"
    raise LoadError(path, missing[0][0], f"{len(missing)} {word} not in {where}{first}", field=fld)


def _first_relevant_lines(qrels: Path, qids: set[str]) -> dict[str, int]:
    """The first line of a relevant (score > 0) row of each of ``qids`` in a qrels file, read
    again only when the qrels name queries that ``queries.jsonl`` lacks, to name the line. The
    file has just been read and checked by :func:`~eci_core.io.formats.beir_qrels.read_beir_qrels` (UTF-8,
    line length, gzip limits), so this pass only splits its lines, numbered as the loaders number
    them (``\\n``-terminated)."""
    out: dict[str, int] = {}
    opener = gzip.open if qrels.name.endswith(".gz") else open
    with opener(qrels, "rb") as fh:
        for no, b in enumerate(fh, start=1):
            s = b.decode("utf-8").rstrip("\r\n")
            parts = s.split("\t") if "\t" in s else s.split()
            q = parts[0].strip() if parts else ""
            if q in qids and q not in out:
                try:
                    if float(parts[-1]) > 0:
                        out[q] = no
                except ValueError:
                    continue
    return out


def read_negative_ids(path: str | Path) -> dict[str, list[str]]:
    """Read negatives by id: a TREC run (``qid Q0 docid rank score tag``, ordered by rank) or
    JSONL lines ``{"query_id": str, "negative_ids": [str, ...]}``. Returns query id → ids.

    Read by the loaders' negatives reader, so a bad line raises the loaders' :class:`LoadError`
    (``PATH:LINE: field 'F': message``, no value echoed). A TREC run with several tags gives each
    query its tags' lists merged by position in the list (the first ranks of every tag first,
    tags in file order)."""
    from eci_core.io.formats.run_files import parse_negatives_file

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file (expected a TREC run or negative-ids JSONL)")
    runs = parse_negatives_file(path)
    if len(runs) == 1:
        return {q: [pid for pid, _ in v] for q, v in runs[0].negs.items()}
    merged: dict[str, list[tuple[int, int, str]]] = {}
    for r, run in enumerate(runs):
        for q, v in run.negs.items():
            merged.setdefault(q, []).extend((i, r, pid) for i, (pid, _) in enumerate(v))
    return {q: [pid for _, _, pid in sorted(v)] for q, v in merged.items()}
