"""Negatives given by id (TREC runs, negative-ids files, msmarco-hn systems, BEIR ``negatives/``):
the per-line form :class:`IdRun` and the columnar form :class:`IdArrays`, the checks that every id
is known (:func:`check_known`, :func:`check_runs`, :func:`check_arrays`) and under the negatives cap
(:func:`check_cap_arrays`), and their records added to a collection (:func:`id_records`,
:func:`add_arrays`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from eci_core.io.texts import ArrowTextMap, KeyedTexts
from eci_core.io.collection import Collection
from eci_core.io.records import LoadError, PassageRef, QueryRecord, SourceReport
from eci_core.io.read.limits import current_limits


# ====================================================================== id-based sources
@dataclass
class IdRun:
    """Negatives given by id (one system of a TREC run / negative-ids / msmarco-hn file)."""

    name: str
    path: str
    format: str
    rows_read: int = 0
    negs: dict[str, list[tuple[str, float | None]]] = field(default_factory=dict)  # qid -> [(pid, score)]
    qline: dict[str, int] = field(default_factory=dict)  # first line of each query id
    pline: dict[str, int] = field(default_factory=dict)  # first line of each negative id


def check_known(
    path: str, first_line: Mapping[str, int], known: Any, what: str, where: str, fld: str | None
) -> None:
    """Raise LoadError naming the first few ids (in file order) that ``known`` lacks."""
    missing = [(ln, i) for i, ln in first_line.items() if i not in known]
    if not missing:
        return
    missing.sort()
    word = what if len(missing) == 1 else what + "s"
    first = "" if len(missing) == 1 else " (the first on this line)"
    raise LoadError(path, missing[0][0], f"{len(missing)} {word} not in {where}{first}", field=fld)


def check_runs(runs: list[IdRun], qtexts: Any, ptexts: Any, qwhere: str, pwhere: str) -> None:
    """Check the query and negative ids of one file's runs (all its systems together)."""
    qline: dict[str, int] = {}
    pline: dict[str, int] = {}
    for run in runs:
        for src, dst in ((run.qline, qline), (run.pline, pline)):
            for i, ln in src.items():
                if i not in dst or ln < dst[i]:
                    dst[i] = ln
    ids = runs[0].format == "negative-ids"
    check_known(runs[0].path, qline, qtexts, "query id", qwhere, "query_id" if ids else "qid")
    check_known(runs[0].path, pline, ptexts, "negative id", pwhere, "negative_ids" if ids else "docid")


def id_records(
    run: IdRun,
    positives: Mapping[str, list[str]],
    ptext: Mapping[str, str],
    qtext: Mapping[str, str],
    splits: Mapping[str, str] | None = None,
) -> list[QueryRecord]:
    out = []
    splits = splits or {}
    for qid, negs in run.negs.items():
        pos = [PassageRef(pid, ptext[pid]) for pid in positives.get(qid, ())]
        out.append(
            QueryRecord(
                qid,
                qtext[qid],
                pos,
                [PassageRef(pid, ptext[pid], sc) for pid, sc in negs],
                run.qline.get(qid),
                splits.get(qid),
            )
        )
    return out


@dataclass
class IdArrays:
    """One system of a TREC run / negative-ids file in columnar form.

    ``qids`` in first-appearance order (a list, or an Arrow string array from the columnar
    readers, as ``pids``); ``q`` (ascending) and ``p`` (integer arrays: int32 from
    the TREC reader, int64 otherwise) index ``qids`` / ``pids`` per negative, rows in the order
    :class:`IdRun` keeps them (TREC: by rank, then file order);
    ``qline`` / ``pline``: the first line of each query / negative id."""

    name: str
    path: str
    format: str
    rows_read: int
    qids: Any
    q: Any
    pids: Any
    p: Any
    score: Any
    qline: Any
    pline: Any


def arrays_from_run(run: IdRun) -> IdArrays:
    """The per-line parser's result in columnar form."""
    import numpy as np

    qids = list(run.negs)
    code: dict[str, int] = {}
    q, p, sc = [], [], []
    for j, qid in enumerate(qids):
        for pid, s in run.negs[qid]:
            c = code.get(pid)
            if c is None:
                c = code[pid] = len(code)
            q.append(j)
            p.append(c)
            sc.append(np.nan if s is None else s)
    pids = list(code)
    return IdArrays(
        run.name,
        run.path,
        run.format,
        run.rows_read,
        qids,
        np.asarray(q, np.int64),
        pids,
        np.asarray(p, np.int64),
        np.asarray(sc, np.float64),
        np.asarray([run.qline[x] for x in qids], np.int64),
        np.asarray([run.pline[x] for x in pids], np.int64),
    )


def check_arrays(runs: list[IdArrays], qtexts: Any, ptexts: Any, qwhere: str, pwhere: str) -> None:
    """:func:`check_runs` for columnar runs (same messages, same lines)."""
    qline: dict[str, int] = {}
    pline: dict[str, int] = {}
    for run in runs:
        for ids, lines, known, dst in (
            (run.qids, run.qline, qtexts, qline),
            (run.pids, run.pline, ptexts, pline),
        ):
            if isinstance(known, ArrowTextMap) and not known.missing(ids):
                continue  # all known (one Arrow hash lookup)
            ids = ids.to_pylist() if hasattr(ids, "to_pylist") else ids  # Arrow ids (columnar readers)
            if isinstance(known, dict) and not set(ids).difference(known):
                continue  # all known (a C-level set operation)
            for i, ln in zip(ids, lines.tolist()):
                if i not in known and (i not in dst or ln < dst[i]):
                    dst[i] = ln
    ids = runs[0].format == "negative-ids"
    check_known(runs[0].path, qline, qtexts, "query id", qwhere, "query_id" if ids else "qid")
    check_known(runs[0].path, pline, ptexts, "negative id", pwhere, "negative_ids" if ids else "docid")


def check_cap_arrays(run: IdArrays) -> None:
    import numpy as np

    cap = current_limits().max_negatives_per_query
    counts = np.bincount(run.q, minlength=len(run.qids)) if len(run.q) else np.zeros(len(run.qids), np.int64)
    over = np.flatnonzero(counts > cap)
    if len(over):
        j = int(over[0])
        raise LoadError(
            run.path,
            int(run.qline[j]),
            f"{int(counts[j]):,} negatives for one query, more than "
            f"{cap:,} (LoadLimits.max_negatives_per_query, env ECI_MAX_NEGATIVES_PER_QUERY)",
            field="negatives",
        )


def add_arrays(
    collection: Collection,
    name: str,
    run: IdArrays,
    positives: Any,
    ptexts: Mapping[str, str],
    qtexts: Mapping[str, str],
    splits: Mapping[str, str] | None,
    notes: dict[str, int] | None = None,
) -> SourceReport:
    """:func:`add_records` of :func:`id_records` for a columnar run (same collection, same report).

    ``positives``: ``{query id: [positive ids]}``, or columnar qrels (an object with
    ``lists_for(ids)`` and ``splits_for(ids)``, e.g. :class:`~.beir.ArrowQrels`, whose splits are
    then used when ``splits`` is not None) for Arrow query ids."""

    rep = SourceReport(source=name, path=run.path, format=run.format)
    for k, v in (notes or {}).items():
        rep.note(k, v)
    qids = run.qids
    if hasattr(positives, "lists_for") and hasattr(qids, "to_pylist"):  # columnar qrels and ids
        pos: Any = positives.lists_for(qids)
        split_of = positives.splits_for(qids) if splits is not None else None
    else:
        qids = qids.to_pylist() if hasattr(qids, "to_pylist") else qids
        pos = [positives.get(q, ()) for q in qids]
        split_of = None if splits is None else [splits.get(q) for q in qids]
    return collection.add_id_source(
        name,
        qids,
        KeyedTexts(qtexts, qids),
        pos,
        run.q,
        run.p,
        run.score,
        run.pids,
        ptexts,
        splits=split_of,
        path=run.path,
        format=run.format,
        rows_read=run.rows_read,
        report=rep,
    )
