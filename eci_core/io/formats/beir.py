"""BEIR directories: ``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv`` and ``negatives/``
(TREC runs or negative-ids files, :mod:`.run_files`).

* :func:`load_beir` (:func:`load_beir_path` for the registry): one source per negatives file, plus
  run files kept elsewhere (``extra``); every file's ids gathered first, ``corpus.jsonl`` read once.
* :func:`load_id_file`: a run file given on its own, resolved through its BEIR directory
  (:func:`own_beir_dir`), else the collection.
* :func:`read_beir_jsonl`, :func:`read_beir_texts` (corpus/queries, vectorised when large); the
  qrels (positives per query and split) are read by :mod:`.beir_qrels`.
* Detected as a directory holding ``corpus.jsonl`` (:func:`looks_like_beir_dir`). No writer (the
  false-negative labels of ``qrels/`` are :mod:`.fn_labels`).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from eci_core.io.texts import (
    ArrowTextMap,
    as_str_arrow,
    bool_arrow,
    lookup_rows,
    np_of,
    str_arrow,
)
from eci_core.io.collection import Collection
from eci_core.io.records import LoadError, LoadReport, QueryRecord
from eci_core.io.formats.base import add_records, check_cap
from eci_core.io.formats.beir_qrels import read_qrels, read_qrels_arrow
from eci_core.io.formats.id_runs import add_arrays, check_arrays, check_cap_arrays, check_runs, id_records
from eci_core.io.formats.run_files import parse_negatives_arrays, parse_negatives_file
from eci_core.io.read.blocks import (
    FAST_MIN_TEXT_BYTES,
    NotFast,
    arrow_ids,
    arrow_tables,
    read_json_block,
    release_arrow_memory,
    total_size,
    trim_memory,
    use_fast,
    use_system_pool,
)
from eci_core.io.read.limits import ROOTS, Progress
from eci_core.io.read.text import Lines, missing_path_error, plain_or_gz
from eci_core.io.read.values import (
    id_value,
    kind_of,
    loads_checked,
    need_field,
    text_value,
    unexpected_error,
)
from eci_core.io.read.vocab import plural
from eci_core.io.trust import dataset_dir, is_trusted_dir, normalise_roots

_BEIR_ID = re.compile(r'\s*\{\s*"_id"\s*:\s*"((?:[^"\\]|\\.)*)"')


# Python's whitespace (str.isspace / str.strip), so Arrow's trims and tests match them exactly
_PY_SPACE = "".join(chr(c) for c in range(0x110000) if chr(c).isspace())


_PY_BLANK_RE = "^[" + "".join(f"\\x{{{ord(c):x}}}" for c in _PY_SPACE) + "]*$"


def _fast_beir_jsonl(
    path: Path,
    needed: set[str] | dict[str, str] | Any | None,
    with_title: bool,
    progress: Progress | None = None,
) -> ArrowTextMap | None:
    """:func:`read_beir_jsonl` with pyarrow's JSON reader, block by block, or None to let the
    per-line reader decide. The texts of the needed rows stay in Arrow (one string block per file
    block, shared with the collection that adds them): only the ids become Python strings.
    ``needed``: an Arrow string array of the ids to keep (looked up with ``pc.is_in``), a set or
    dict (looked up per id in Python), or None to keep every id."""
    import pyarrow as pa
    import pyarrow.compute as pc

    use_system_pool()
    id_blocks: list = []
    blocks: list = []
    rows = 0
    arrow_needed = isinstance(needed, pa.Array)
    if arrow_needed and needed.type != pa.string():
        needed = needed.cast(pa.string())
    # Arrow membership in ``needed`` is tested for several blocks at once: pc.is_in builds a hash
    # table of every needed id on each call, so one call per 4 MiB block would cost O(blocks x
    # needed ids), quadratic in the corpus size (523 s of a 1M-query load, BENCHMARKS.md
    # "Loading"). Blocks wait until they hold as many rows as there are needed ids (at least
    # 64k): O(rows) in all, and the waiting rows are at most about the size of what is kept.
    batch = max(len(needed), 1 << 16) if arrow_needed else 0
    pending: list = []  # (ids, text, title) of blocks read, not yet filtered
    codes: list = []  # of the rows kept: which needed id each is

    def add(ids, body, title, keep) -> bool:
        def kept(col):
            return col if keep is None else pc.filter(col, keep)

        body = kept(body)
        if body.null_count or not pa.types.is_string(body.type):
            return len(body) == 0
        if title is not None:
            title = kept(title)
        kid = kept(ids)
        if not len(body):
            return True
        # text = stripped title + " " + text when both are set, else title or text (as read_beir_jsonl)
        blank = pc.match_substring_regex(body, _PY_BLANK_RE)
        if title is not None:
            title = pc.utf8_trim(title, characters=_PY_SPACE)
            has_t_np = np_of(pc.utf8_length(title)) > 0  # null title: NaN, not > 0
            has_t = bool_arrow(has_t_np)
            if has_t_np.any():
                both = pc.and_(has_t, pc.invert(blank))
                body = pc.if_else(
                    both,
                    pc.binary_join_element_wise(title, body, str_arrow([" "])[0]),
                    pc.if_else(has_t, title, body),
                )
                blank = pc.and_(blank, pc.invert(has_t))
        if np_of(blank).any():
            return False  # the per-line reader names the line
        # pyarrow's pieces of the block as they are (no copy of the text into one array)
        blocks.extend(c for c in (body.chunks if isinstance(body, pa.ChunkedArray) else [body]) if len(c))
        id_blocks.append(pc.cast(kid, pa.string()) if not pa.types.is_string(kid.type) else kid)
        return True

    def flush() -> bool:
        if not pending:
            return True
        ids = pa.concat_arrays([x[0] for x in pending]) if len(pending) > 1 else pending[0][0]
        code = lookup_rows(ids, needed)  # the needed id each row is (-1: not needed)
        keep_np = code >= 0
        codes.append(code[keep_np])
        del ids, code
        at = 0
        for ids, body, title in pending:
            k = keep_np[at : at + len(ids)]
            at += len(ids)
            if not add(ids, body, title, None if k.all() else bool_arrow(k)):
                return False
        pending.clear()
        return True

    try:
        for t in arrow_tables(path, read_json_block, progress):
            rows += t.num_rows
            if "_id" not in t.column_names or "text" not in t.column_names:
                return None
            ids = arrow_ids(t.column("_id").combine_chunks())
            if ids is None:
                return None
            body = t.column("text")  # chunked: pyarrow parses a block in pieces
            title = None
            if with_title and "title" in t.column_names:
                title = t.column("title")
                if pa.types.is_null(title.type):
                    title = None
                elif not pa.types.is_string(title.type):
                    return None
            del t
            if arrow_needed:
                pending.append((ids, body, title))
                if sum(len(x[0]) for x in pending) >= batch and not flush():
                    return None
                continue
            # membership in a set/dict by Python hashing, O(rows in the block)
            keep = (
                None
                if needed is None
                else bool_arrow(
                    np.fromiter(map(needed.__contains__, ids.to_pylist()), dtype=bool, count=len(ids))
                )
            )
            if not add(ids, body, title, keep):
                return None
            del ids, body, title, keep
        if not flush():
            return None
    except NotFast:
        return None
    finally:
        pending.clear()
        release_arrow_memory()
    if not rows:
        return None
    if arrow_needed:
        code = np.concatenate(codes) if codes else np.zeros(0, np.int64)
        if not len(code) or np.bincount(code).max() <= 1:  # each id once: nothing to drop
            return ArrowTextMap(pa.concat_arrays(id_blocks) if id_blocks else str_arrow([]), blocks)
    return _first_of_each_id(id_blocks, blocks)


def _first_of_each_id(id_blocks: list, blocks: list) -> ArrowTextMap:
    """The rows of ``blocks`` (ids in ``id_blocks``) keeping the first row of each id."""
    import pyarrow as pa

    ids = pa.concat_arrays(id_blocks) if id_blocks else str_arrow([])
    codes = np_of(ids.dictionary_encode().indices)
    first = np.unique(codes, return_index=True)[1] if len(codes) else np.zeros(0, np.int64)
    if len(first) == len(codes):
        return ArrowTextMap(ids, blocks)
    keep = np.zeros(len(codes), dtype=bool)
    keep[first] = True
    out, at = [], 0
    for b in blocks:
        k = keep[at : at + len(b)]
        out.append(b if k.all() else b.filter(bool_arrow(k)))
        at += len(b)
    return ArrowTextMap(ids.filter(bool_arrow(keep)), out)


def read_beir_texts(
    path: str | Path, with_title: bool = True, roots: Iterable[str | os.PathLike] | None = None
) -> dict[str, str]:
    """Every ``{_id, title?, text}`` line of a BEIR ``corpus.jsonl`` / ``queries.jsonl`` as
    ``{id: text}``, the text built as :func:`load_beir` builds it (stripped title, a space and the
    text when both are set), the first line winning for a repeated id. A bad line raises
    :class:`LoadError` naming file, line and field; with ``roots``, a file outside them too
    (see :func:`load_path`)."""
    token = ROOTS.set(normalise_roots(roots)) if roots is not None else None
    try:
        out = read_beir_jsonl(Path(path), None, with_title)
    finally:
        if token is not None:
            ROOTS.reset(token)
    return out if isinstance(out, dict) else dict(out.items())


def read_beir_jsonl(
    path: Path, needed: set[str] | dict[str, str] | None, with_title: bool, progress: Progress | None = None
) -> Mapping[str, str]:
    """``{_id, title?, text}`` lines of a BEIR corpus/queries file, keeping only ``needed`` ids
    (None: every id): an :class:`ArrowTextMap` from the vectorised reader, else a dict."""
    if use_fast(total_size(path), FAST_MIN_TEXT_BYTES):
        out = _fast_beir_jsonl(path, needed, with_title, progress)
        if out is not None:
            if progress:  # done (the blocks reported their progress on the way)
                n = os.path.getsize(path)
                progress(f"reading {path.name}", n, n)
            return out
    if needed is not None and hasattr(needed, "to_pylist"):  # Arrow ids: the per-line reader needs a set
        needed = set(needed.to_pylist())
    spath = str(path)
    out: dict[str, str] = {}
    head = _BEIR_ID.match
    any_row = False
    line = None
    try:
        for line, s in Lines(path, progress):
            m = head(s)
            if (
                m is not None
                and "\\" not in m.group(1)
                and ((needed is not None and m.group(1).strip() not in needed) or m.group(1).strip() in out)
            ):
                any_row = True
                continue  # unreferenced: skip the JSON parse (BEIR files put "_id" first)
            if not s.strip():
                continue
            any_row = True
            row = loads_checked(spath, line, s)
            if not isinstance(row, dict):
                raise LoadError(spath, line, f"expected one JSON object {{...}} per line, got {kind_of(row)}")
            i = id_value(spath, line, need_field(spath, line, row, "_id"), "_id")
            if (needed is not None and i not in needed) or i in out:
                continue
            body = need_field(spath, line, row, "text")
            if body is not None and not isinstance(body, str):
                raise LoadError(spath, line, f"expected a string, got {kind_of(body)}", field="text")
            title = row.get("title") if with_title else None
            if title is not None and not isinstance(title, str):
                raise LoadError(spath, line, f"expected a string, got {kind_of(title)}", field="title")
            title = (title or "").strip()
            b = body or ""
            text = f"{title} {b}" if title and b.strip() else (title or b)
            out[i] = text_value(spath, line, text if text.strip() else body, "text")
    except LoadError:
        raise
    except Exception as err:  # any failure inside a record: one line at that record
        raise unexpected_error(spath, line, err) from None
    if not any_row:
        raise LoadError(spath, None, "file has no data (only blank lines)")
    return out


def _str_ids(ids) -> Any:
    """Ids (a list of str or an Arrow string array) as an Arrow ``string`` array."""
    import pyarrow as pa

    arr = as_str_arrow(ids)
    if arr.type != pa.string():
        try:
            arr = arr.cast(pa.string())
        except (pa.ArrowException, ValueError):  # over 2 GiB of ids: kept large
            pass
    return arr


def _unique_ids(arrays: list) -> Any:
    """The distinct ids of several Arrow string arrays, in first-appearance order."""
    import pyarrow as pa

    arrays = [a for a in arrays if len(a)]
    if not arrays:
        return str_arrow([])
    if len({a.type for a in arrays}) > 1:
        arrays = [a.cast(pa.large_string()) for a in arrays]
    return _str_ids(pa.concat_arrays(arrays).unique())


def load_beir(
    directory: str | os.PathLike,
    collection: Collection,
    name: str | None = None,
    progress: Progress | None = None,
    only: list[Path] | None = None,
    split: str | None = None,
    extra: Iterable[str | os.PathLike] | None = None,
) -> LoadReport:
    """Load a BEIR directory: one source per file in ``negatives/`` (or per file in ``only``),
    then one per run file in ``extra`` (TREC runs / negative-ids files kept elsewhere, e.g. a
    ``sweep/`` folder: :func:`load_paths` passes the ones named beside the directory). Every
    file's ids are gathered first and ``corpus.jsonl`` is read once for all of them, so an extra
    run may name any passage of the corpus; a bad extra file is reported like a negatives file.

    Positives (qrels score > 0) come from every ``qrels/<split>.tsv``, each query's from the split
    it is labelled in, or from ``qrels/<split>.tsv`` alone when ``split`` is given (a query
    labelled in no file read is skipped as having no positive). The split of each query is kept
    in ``collection.query_splits``. A query labelled in several splits takes the first of test,
    dev, validation, val, train (then by name); the report notes how many. Each negatives
    file is a TREC run or a negative-ids JSONL; a bad one (unparsable, or naming ids missing from
    ``corpus.jsonl``/``queries.jsonl``) goes to ``LoadReport.errors`` and the others still load.
    Problems in ``corpus.jsonl``, ``queries.jsonl`` or ``qrels/`` raise LoadError (nothing loaded).
    With ``only`` (used for a negatives file given on its own), that file's error is raised;
    ``only=[]`` with ``extra`` loads the extra files alone (not ``negatives/``), their errors reported."""
    d = Path(directory)
    sd = str(directory)
    corpus = plain_or_gz(d, "corpus.jsonl")
    queries = plain_or_gz(d, "queries.jsonl")
    missing = [n for n, f in (("corpus.jsonl", corpus), ("queries.jsonl", queries)) if f is None]
    if missing:
        raise LoadError(sd, None, f"not a BEIR directory: missing {', '.join(missing)}")
    if only is None:
        ndir = d / "negatives"
        if not ndir.is_dir():
            raise LoadError(
                sd,
                None,
                "BEIR directory has no negatives/ folder: put TREC runs "
                "(qid Q0 docid rank score tag) or negative-ids JSONL files there",
            )
        listing = sorted(p for p in ndir.iterdir() if not p.name.startswith("."))
        files = [p for p in listing if p.is_file()]
        unreadable = [p for p in listing if p.is_symlink() and not p.exists()]
        if not files and not unreadable:
            raise LoadError(
                str(ndir),
                None,
                "the negatives/ folder is empty: put TREC runs or negative-ids JSONL files there",
            )
    else:
        files = list(only)
    report = LoadReport()
    if only is None:
        report.errors.extend(str(missing_path_error(f, str(f))) for f in unreadable)
    strict = {str(p) for p in only or ()}  # the errors of these files are raised
    for f in (Path(x) for x in (extra or ())):
        if f.is_file():
            files.append(f)
        else:
            report.errors.append(str(missing_path_error(f, str(f))))
    fast = use_fast(total_size(*files))
    parsed: list[list[Any]] = []  # per file, one run per system (IdArrays when fast, else IdRun)
    # every id needed, each mapped to itself: the fast path keeps one string object per id for
    # all files, the corpus/queries dicts and the collection (lower peak memory)
    need_q: dict[str, str] = {}
    need_p: dict[str, str] = {}
    for f in files:
        try:
            if fast:  # ids as Arrow string arrays (no Python string per id)
                runs = parse_negatives_arrays(f, progress=progress)
                for run in runs:
                    run.qids, run.pids = _str_ids(run.qids), _str_ids(run.pids)
                parsed.append(runs)
                del runs
            else:
                parsed.append(parse_negatives_file(f, progress=progress))
        except LoadError as e:
            if str(f) in strict:
                raise
            report.errors.append(str(e))
        except OSError as e:
            err = LoadError(str(f), None, f"cannot read the file ({e.strerror or type(e).__name__})")
            if str(f) in strict:
                raise err from None
            report.errors.append(str(err))
        except Exception as e:
            if str(f) in strict:
                raise unexpected_error(str(f), None, e) from None
            report.errors.append(str(unexpected_error(str(f), None, e)))
        if fast:
            trim_memory()  # the reader's freed blocks, before the next file (lower peak memory)
    qr: Any
    if fast:  # every id needed, once, as Arrow arrays (looked up with Arrow's hash kernels)
        qr = read_qrels_arrow(d, split)
        all_runs = [r for runs in parsed for r in runs]
        need_q = _unique_ids([r.qids for r in all_runs])
        named = _unique_ids([qr.lists_for(need_q).ids])  # the positives of the queries used
        need_p = _unique_ids([r.pids for r in all_runs] + [named])
        del all_runs
    else:
        qr = read_qrels(d, split)
        for run in (r for runs in parsed for r in runs):
            need_q.update(zip(run.negs, run.negs))
            need_p.update(zip(run.pline, run.pline))
        for q in need_q:
            for pid in qr.pos.get(q, ()):
                need_p.setdefault(pid, pid)
    ptexts = read_beir_jsonl(corpus, need_p, True, progress)
    # the readers keep only needed ids, once each: as many as needed means none is missing
    all_known = len(ptexts) == len(need_p)
    del need_p
    qtexts = read_beir_jsonl(queries, need_q, False, progress)
    all_known = all_known and len(qtexts) == len(need_q)
    if fast:
        trim_memory()
    # positives named in qrels must exist (for the queries we use)
    if not fast:
        named = list({pid for q in need_q for pid in qr.pos.get(q, ())})
    if isinstance(ptexts, ArrowTextMap):
        bad = ptexts.missing(named)
    else:
        bad = [p for p in (named.to_pylist() if fast else named) if p not in ptexts]
    qrels_where = qr.where_of(bad) if fast else qr.where
    bad.sort(key=lambda pid, where=qrels_where: where[pid][1:] + where[pid][:1])
    if bad:
        f, ln = qrels_where[bad[0]]
        first = "" if len(bad) == 1 else " (the first on this line)"
        raise LoadError(
            f, ln, f"{plural(len(bad), 'positive id')} not in {corpus.name}{first}", field="corpus-id"
        )
    del need_q, bad, named, qrels_where
    if not fast:  # only the message above needs it: ~100 bytes a positive freed before the sources are added
        qr.where = {}
    good: list[list[Any]] = []
    for runs in parsed:
        if fast and all_known:  # every id of every file was found (see above)
            good.append(runs)
            continue
        try:
            (check_arrays if fast else check_runs)(runs, qtexts, ptexts, queries.name, corpus.name)
        except LoadError as e:
            if runs[0].path in strict:
                raise
            report.errors.append(str(e))
            continue
        good.append(runs)
    n_runs = sum(map(len, good))
    staged: list[tuple[Any, list[QueryRecord] | None]] = []
    for runs in good:  # one file's systems are added together or not at all
        recs_of = [None if fast else id_records(run, qr.pos, ptexts, qtexts, qr.split) for run in runs]
        try:
            for run, recs in zip(runs, recs_of):
                if fast:
                    check_cap_arrays(run)
                else:
                    check_cap(recs, runs[0].path)
        except LoadError as e:
            if runs[0].path in strict:
                raise
            report.errors.append(str(e))
            continue
        staged.extend(zip(runs, recs_of))
    runs = recs_of = None
    del parsed, good  # each run's arrays are freed once added (lower peak memory)
    staged.reverse()
    while staged:
        run, recs = staged.pop()
        if not name:
            sname = run.name
        elif only is None or n_runs > 1:
            sname = f"{name}:{run.name.rpartition(':')[2]}" if only else f"{name}:{run.name}"
        else:
            sname = name
        notes: dict[str, int] = {}
        if fast:
            notes = qr.several_notes(run.qids)
        else:
            for q in run.negs:
                if q in qr.several:
                    k = f"query labelled in several qrels splits (positives from its {qr.split[q]} split)"
                    notes[k] = notes.get(k, 0) + 1
        if fast:
            report.sources.append(add_arrays(collection, sname, run, qr, ptexts, qtexts, qr.names, notes))
            del run
            trim_memory()
        else:
            report.sources.append(
                add_records(collection, sname, recs, run.path, run.format, run.rows_read, notes)
            )
    return report


def load_id_file(
    p: Path,
    collection: Collection,
    fmt: str,
    name: str | None,
    progress: Progress | None,
    split: str | None = None,
) -> LoadReport:
    """A TREC run / negative-ids file on its own: resolved through its BEIR directory (its
    dataset folder, :func:`eci_core.io.trust.dataset_dir`: the folder holding it, or DIR for a
    file in DIR/negatives/), else the collection."""
    d = own_beir_dir(p)
    if d is not None:
        return load_beir(d, collection, name=name, progress=progress, only=[p], split=split)
    fast = use_fast(total_size(p))
    runs = parse_negatives_arrays(p, fmt, progress) if fast else parse_negatives_file(p, fmt, progress)
    qtexts, ptexts = collection.query_map(), collection.passage_map()
    (check_arrays if fast else check_runs)(
        runs,
        qtexts,
        ptexts,
        "the loaded queries (load the BEIR directory first, or put this file in its negatives/ folder)",
        "the loaded passages (load the corpus first)",
    )
    positives = {
        collection.query_ids[q]: [collection.passage_ids[i] for i in ps]
        for q, ps in collection.positives.items()
    }
    report = LoadReport()
    staged = []
    for run in runs:
        sname = (
            run.name if name is None else (name if len(runs) == 1 else f"{name}:{run.name.partition(':')[2]}")
        )
        if fast:
            check_cap_arrays(run)
            staged.append((sname, run, None))
        else:
            staged.append((sname, run, id_records(run, positives, ptexts, qtexts)))
            check_cap(staged[-1][2], run.path)
    for sname, run, recs in staged:
        if fast:  # every id is already in the collection: nothing new is read from these views
            report.sources.append(add_arrays(collection, sname, run, positives, ptexts, qtexts, None))
        else:
            report.sources.append(add_records(collection, sname, recs, run.path, run.format, run.rows_read))
    return report


def own_beir_dir(p: Path) -> Path | None:
    """The BEIR directory a run file given on its own resolves through (see :func:`load_id_file`):
    its dataset folder (:func:`eci_core.io.trust.dataset_dir`) when that is a trusted BEIR folder."""
    d = dataset_dir(p)
    if (
        is_trusted_dir(d, uploads=True)
        and plain_or_gz(d, "corpus.jsonl") is not None
        and (d / "qrels").is_dir()
    ):
        return d
    return None


def is_beir_dir(p: Path) -> bool:
    return p.is_dir() and plain_or_gz(p, "corpus.jsonl") is not None and (p / "qrels").is_dir()


def looks_like_beir_dir(p: Path) -> bool:
    """The registry's directory detector: a directory holding ``corpus.jsonl`` (plain or .gz)."""
    return plain_or_gz(p, "corpus.jsonl") is not None


def load_beir_path(
    path: str | os.PathLike,
    collection: Collection,
    fmt: str = "beir",
    name: str | None = None,
    progress: Progress | None = None,
    split: str | None = None,
) -> LoadReport:
    """The registry's reader: :func:`load_beir` of the directory ``path`` (a file is refused)."""
    p = Path(path)
    if not p.is_dir():
        raise LoadError(
            str(path), None, "format beir needs a directory (corpus.jsonl, queries.jsonl, qrels/, negatives/)"
        )
    return load_beir(p, collection, name=name, progress=progress, split=split)


#: field names BEIR messages may show
KNOWN_FIELDS = ("_id", "title", "text", "query-id", "corpus-id", "metadata")


def load_run_file(
    path: str | os.PathLike,
    collection: Collection,
    fmt: str,
    name: str | None = None,
    progress: Progress | None = None,
    split: str | None = None,
) -> LoadReport:
    """The registry's reader of ``trec-run`` and ``negative-ids`` files: :func:`load_id_file`."""
    return load_id_file(Path(path), collection, fmt, name, progress, split)
