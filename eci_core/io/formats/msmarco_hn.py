"""msmarco-hard-negatives: ``{qid, pos: [pid ...], neg: {system: [pid ...]}}`` with ``pid<TAB>text``
and ``qid<TAB>text`` TSV files (``collection.tsv``/``corpus.tsv`` and ``queries.tsv``/
``queries.train.tsv`` beside it, plain or ``.gz``, else the texts already in the collection).

Reader :func:`load_msmarco_hn` (texts given) and :func:`load_msmarco_path` (texts found beside the
file), detector :func:`detect`. One source per system (``<stem>:<system>``). No writer.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

from eci_core.io.collection import Collection
from eci_core.io.records import LoadError, LoadReport, PassageRef, QueryRecord
from eci_core.io.formats.base import add_records, check_cap
from eci_core.io.formats.id_runs import IdRun, check_known
from eci_core.io.read.limits import Progress
from eci_core.io.read.rows import container_of, record_rows
from eci_core.io.read.text import Lines, file_stem, plain_or_gz
from eci_core.io.read.values import (
    as_list,
    id_value,
    loads_checked,
    maybe_dict,
    need_field,
    text_value,
    unexpected_error,
)
from eci_core.io.trust import is_trusted_dir


# ====================================================================== id -> text files
def read_id_text_tsv(path: Path, needed: set[str], progress: Progress | None = None) -> dict[str, str]:
    """``id<TAB>text`` lines (msmarco collection / queries), keeping only ``needed`` ids."""
    spath = str(path)
    out: dict[str, str] = {}
    no = None
    try:
        for no, s in Lines(path, progress):
            if not s.strip():
                continue
            pid, tab, text = s.partition("\t")
            pid = pid.strip()
            if pid in needed and pid not in out:
                if not tab:
                    raise LoadError(spath, no, "expected 'id<TAB>text', found no tab")
                out[pid] = text_value(spath, no, text, "text")
    except LoadError:
        raise
    except Exception as err:  # any failure inside a record: one line at that record
        raise unexpected_error(spath, no, err) from None
    return out


# ====================================================================== public loaders
def load_msmarco_hn(
    path: str | os.PathLike,
    collection_tsv: str | os.PathLike | None,
    queries_tsv: str | os.PathLike | None,
    collection: Collection,
    name: str | None = None,
    progress: Progress | None = None,
) -> LoadReport:
    """Load a msmarco-hard-negatives file ``{qid, pos: [pid], neg: {system: [pid]}}``.

    Passage and query texts come from ``collection_tsv`` (``pid<TAB>text``) and ``queries_tsv``
    (``qid<TAB>text``); only referenced ids are kept. ``None`` for either means "already in the
    collection". One source per system, ``<stem>:<system>`` (just ``<stem>`` when the file holds a
    single system); negatives keep the file's order as rank. Raises LoadError before changing
    ``collection`` when any row is bad or any id is unknown."""
    p = Path(path)
    spath = str(path)
    stem = name or file_stem(p)
    if not p.is_file():
        raise LoadError(spath, None, "no such file")
    systems: dict[str, IdRun] = {}
    pos: dict[str, list[str]] = {}
    pos_line: dict[str, int] = {}
    n = 0
    line = None
    try:
        for line, row in record_rows(p, container_of(p), progress):
            n += 1
            qid = id_value(spath, line, need_field(spath, line, row, "qid"), "qid")
            plist = as_list(spath, line, need_field(spath, line, row, "pos"), "pos", "a list of passage ids")
            plist = [id_value(spath, line, x, f"pos[{i}]") for i, x in enumerate(plist)]
            neg = need_field(spath, line, row, "neg")
            if isinstance(neg, str) and neg.lstrip().startswith("{"):
                neg = loads_checked(spath, line, neg, "neg")
            if not isinstance(neg, dict):
                neg = {
                    "": as_list(spath, line, neg, "neg", "an object {system: [passage ids]} or a list of ids")
                }
            lst = pos.setdefault(qid, [])
            for pid in plist:
                if pid not in lst:
                    lst.append(pid)
                pos_line.setdefault(pid, line)
            for system, ids in neg.items():
                fld = f"neg.{system}" if system else "neg"
                ids = as_list(spath, line, ids, fld, "a list of passage ids")
                run = systems.get(system)
                if run is None:
                    run = systems[system] = IdRun(str(system), spath, "msmarco-hn")
                run.qline.setdefault(qid, line)
                got = run.negs.setdefault(qid, [])
                for i, x in enumerate(ids):
                    pid = id_value(spath, line, x, f"{fld}[{i}]")
                    run.pline.setdefault(pid, line)
                    got.append((pid, None))
    except LoadError:
        raise
    except Exception as err:  # any failure inside a record: one line at that record
        raise unexpected_error(spath, line, err) from None
    if not systems:
        raise LoadError(spath, None, "no negatives: 'neg' holds no systems")
    qline: dict[str, int] = {}
    pline: dict[str, int] = dict(pos_line)
    for run in systems.values():
        for q, ln in run.qline.items():
            qline.setdefault(q, ln)
        for pid, ln in run.pline.items():
            if pid not in pline or ln < pline[pid]:
                pline[pid] = ln
    if queries_tsv is not None:
        qtexts: Mapping[str, str] = read_id_text_tsv(Path(queries_tsv), set(qline), progress)
        qwhere = Path(queries_tsv).name
    else:
        qtexts, qwhere = collection.query_map(), "the loaded queries"
    if collection_tsv is not None:
        ptexts: Mapping[str, str] = read_id_text_tsv(Path(collection_tsv), set(pline), progress)
        pwhere = Path(collection_tsv).name
    else:
        ptexts, pwhere = collection.passage_map(), "the loaded passages"
    check_known(spath, qline, qtexts, "query id", qwhere, "qid")
    check_known(spath, pos_line, ptexts, "positive id", pwhere, "pos")
    for system, run in systems.items():
        check_known(spath, run.pline, ptexts, "negative id", pwhere, f"neg.{system}" if system else "neg")
    staged = []
    for system, run in systems.items():
        sname = stem if len(systems) == 1 else f"{stem}:{system}"
        recs = []
        for qid, negs in run.negs.items():
            recs.append(
                QueryRecord(
                    qid,
                    qtexts[qid],
                    [PassageRef(pid, ptexts[pid]) for pid in pos.get(qid, ())],
                    [PassageRef(pid, ptexts[pid]) for pid, _ in negs],
                    run.qline[qid],
                )
            )
        check_cap(recs, spath)
        staged.append((sname, recs))
    report = LoadReport()
    for sname, recs in staged:
        report.sources.append(add_records(collection, sname, recs, spath, "msmarco-hn", n))
    return report


def _beside(p: Path, names: tuple[str, ...]) -> Path | None:
    if not is_trusted_dir(p.parent, uploads=True):  # never from the temporary folder itself
        return None
    for n in names:
        f = plain_or_gz(p.parent, n)
        if f is not None and f.resolve() != p.resolve():
            return f
    return None


def load_msmarco_path(
    path: str | os.PathLike,
    collection: Collection,
    fmt: str = "msmarco-hn",
    name: str | None = None,
    progress: Progress | None = None,
    split: str | None = None,
) -> LoadReport:
    """A msmarco-hn file with its texts beside it (see the module docstring), else the collection's."""
    p = Path(path)
    ctsv = _beside(p, ("collection.tsv", "corpus.tsv"))
    qtsv = _beside(p, ("queries.tsv", "queries.train.tsv"))
    if (ctsv is None or qtsv is None) and collection.n_passages == 0:
        raise LoadError(
            str(path),
            None,
            "a msmarco-hard-negatives file needs its texts: put collection.tsv "
            "(pid<TAB>text) and queries.tsv (qid<TAB>text) beside it, or call "
            "load_msmarco_hn(path, collection_tsv, queries_tsv, collection)",
        )
    return load_msmarco_hn(p, ctsv, qtsv, collection, name=name, progress=progress)


def detect(row: dict) -> bool:
    """``pos`` and ``neg`` without a ``query``, with a ``qid`` or an object ``neg`` (a row with a
    query is BGE, even when its ``neg`` is malformed: the BGE reader then names the bad field)."""
    keys = set(row)
    return (
        "neg" in keys
        and "pos" in keys
        and "query" not in keys
        and (maybe_dict(row.get("neg")) or "qid" in keys)
    )


#: field names msmarco-hn messages may show
KNOWN_FIELDS = ("qid", "pos", "neg")
