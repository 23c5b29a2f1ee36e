"""Read every accepted hard-negative file format into a :class:`~eci_core.io.collection.Collection`.

Public API::

    load_path(path, collection, format=None, name=None, progress=None, split=None)
        -> LoadReport   # raises LoadError
    load_paths(paths, collection=None, format=None, progress=None, split=None, limits=None,
               corpus_dirs=()) -> (Collection, LoadReport)
    load_batch(paths, collection=None, ...) -> (Collection copy, LoadReport, errors)   # never raises
    plan_extra_runs(paths, format=None, corpus_dirs=()) -> list[LoadStep]

Elsewhere: the formats and their registry (``detect_format``, ``normalise_format``, ``FORMATS``) in
:mod:`eci_core.io.formats`, ``load_msmarco_hn`` in :mod:`eci_core.io.formats.msmarco_hn`,
``load_beir`` in :mod:`eci_core.io.formats.beir`, ``qrels_splits`` in
:mod:`eci_core.io.formats.beir_qrels`; the shared reading plumbing (``LoadLimits``, bounded gzip
and lines, rows, no-echo value checks, Arrow blocks) in :mod:`eci_core.io.read`.

Containers
    JSONL (``.jsonl``/``.ndjson``), JSON (``.json``: an array of objects, an object of equal-length
    lists (columns), or JSONL saved as ``.json``), CSV, TSV (header row), Parquet (pyarrow), and
    ``.gz`` of any text container. Text must be UTF-8 (a BOM is accepted). In CSV/TSV/Parquet,
    list cells may be JSON arrays or Python list literals (``['a', 'b']``, read with
    ``ast.literal_eval``, never ``eval``).

Formats (``format=`` names, :data:`eci_core.io.formats.FORMATS`; detected from the fields of the
first row, overridable)
    ``st-triplet``       sentence-transformers ``mine_hard_negatives(output_format="triplet")``:
                         anchor, positive, ``negative`` [, ``scores`` = [pos, neg]]
    ``st-ntuple``        ``output_format="n-tuple"`` (and the older ``"n-tuple-scores"``):
                         anchor, positive, ``negative_1`` … ``negative_n``
                         [, ``scores`` = [pos, neg_1 … neg_n]]
    ``st-labeled-pair``  anchor, passage, ``label`` (>0 = positive) or ``score``
    ``st-labeled-list``  anchor, a list column [pos, neg …] under the positive's name, ``labels``
                         or ``scores``
    ``bge``              FlagEmbedding: ``{query, pos: [...], neg: [...], pos_scores?, neg_scores?}``
    ``tevatron``         Tevatron/RLHN: ``{query_id, query, positive_passages: [{docid, title, text}],
                         negative_passages: [...]}``; passage text = ``title + " " + text`` when
                         the title is set
    ``msmarco-hn``       ``{qid, pos: [pid ...], neg: {system: [pid ...]}}`` with ``pid<TAB>text`` and
                         ``qid<TAB>text`` TSV files
    ``beir``             a directory: ``corpus.jsonl``, ``queries.jsonl``, ``qrels/*.tsv`` and
                         ``negatives/``
    ``trec-run``         ``qid Q0 docid rank score tag`` lines (negatives ordered by rank, score kept)
    ``negative-ids``     JSONL ``{query_id, negative_ids: [...], scores?: [...]}``

sentence-transformers column names
    The miner keeps the user's anchor and positive column names, so they are detected, not assumed:
    a known anchor name (``anchor``, ``query``, ``question`` …) or else the first remaining column,
    and a known positive name (``positive``, ``pos``, ``answer``, ``passage`` …) or else the next one
    (the miner's own rule is "first column, second column"). A column named ``query_id``/``qid``/
    ``query-id`` is used as the query id (other columns such as a row ``id`` are ignored). Rows are
    grouped by query: a repeated anchor means several positives. The miner repeats a query's
    negatives once per positive (triplet, n-tuple, labeled-list); those repeats are merged
    (multiset union over the query's positives), so only duplicates *within* one positive's list
    are reported as duplicate negatives. Miner scores are kept as the negatives' ``score``
    (metadata, never used in margins).
    ``st-labeled-pair`` with ``score`` instead of ``label``: the miner writes a query's positives
    first, so the first row of each query is its positive and the rest its negatives; a
    score-only file cannot mark a second positive (use ``label`` for that; the report notes it).

Names of sources
    One source per file, named after the file stem (``bm25.jsonl.gz`` -> ``bm25``) or ``name=``.
    A file holding several systems (an msmarco-hn file with several keys under ``neg``, a TREC
    run with several tags) gives one source per system named ``<stem>:<system>``. A BEIR directory
    gives one source per file in ``negatives/``, named after that file's stem (``<name>:<stem>``
    when ``name=`` is given). ``Collection.unique_source_name`` appends ``-2``, ``-3`` … on clashes.

Where ids are looked up
    * msmarco-hn via :func:`load_path`: ``collection.tsv`` (or ``corpus.tsv``) and ``queries.tsv``
      (or ``queries.train.tsv``), plain or ``.gz``, in the same folder as the file; failing that,
      passages and queries already in the collection.
    * A TREC run or negative-ids file given on its own: the BEIR directory it sits in (its folder,
      or the parent of a ``negatives/`` folder); failing that, passages, queries and positives
      already in the collection (load the BEIR directory first).
    * A TREC run or negative-ids file named in the same :func:`load_paths` call as a BEIR
      directory (or with ``corpus_dirs=``): that directory's whole corpus and queries (the ids of
      all its files gathered first, the corpus read once); see :func:`plan_extra_runs`.
    * BEIR positives: every ``qrels/<split>.tsv`` (train, dev, test …), each query's positives
      from the split it is labelled in (a query in several splits: the first of test, dev,
      validation, val, train), or one split chosen with ``split=`` (``--split``); a qrels
      score > 0 is relevant. The split of each query is kept in ``Collection.query_splits``.
      Only passages and queries that are referenced are kept.
    An id referenced but not found is an error naming the first few ids.

Speed
    TREC runs, negative-ids JSONL, qrels and BEIR corpus/queries files are read with pyarrow's
    CSV/JSON readers in blocks of whole lines and ingested with numpy
    (:meth:`Collection.add_id_source`). Whenever a vectorised reader cannot reproduce the per-line
    parser exactly (comments, blank lines, odd whitespace, NaN, mixed types, a bad line), it gives
    up: for a TREC run or negative-ids file the per-line parser first re-scans the block where
    pyarrow stopped (every earlier block is valid line by line, so a bad line there is the first
    one and is reported at once), and reads the whole file only when that block has no bad line.
    Results and messages are the same either way. They read id files of 1 MiB or more
    (corpus/queries: 16 MiB), or any file when pyarrow is already imported (small files do not
    repay pyarrow's import); ``ECI_LOADER_FAST=1`` / ``0`` forces them on / off.

Limits
    :class:`~eci_core.io.read.limits.LoadLimits` holds on every reader, before bytes are decoded
    where the format allows: text lines (and CSV records spanning lines) via
    :class:`~eci_core.io.read.text.Lines`; ``.gz`` size and ratio via
    :class:`~eci_core.io.read.text.GzipRaw`; Parquet by
    :func:`~eci_core.io.read.parquet.check_parquet_metadata` (footer) and
    :class:`~eci_core.io.read.parquet.ParquetDecodedLimits` (the dictionary columns of each row
    group, read as Arrow dictionaries, then each batch of rows, before they become Python values);
    whole-document JSON by
    :func:`~eci_core.io.read.text.check_file_size` and
    :func:`~eci_core.io.read.text.check_json_document`; the pyarrow block readers leave a
    file that breaks a limit to the per-line readers, which name the line.

Errors
    Bad input raises :class:`~eci_core.io.records.LoadError`, printed as ``PATH:LINE: field 'F': message``.
    LINE is the 1-based line of the file (JSONL, JSON array, CSV/TSV: the line where the record
    starts, header = line 1; TREC/TSV text files) or the 1-based row (Parquet, JSON object of
    lists). A file is parsed completely before the collection is touched, so an error leaves the
    collection exactly as it was. In a BEIR directory each negatives file is loaded on its own:
    a bad one is reported in ``LoadReport.errors`` and the others still load.
    Kept-but-counted cases (queries with no positive, duplicate negatives, a negative identical
    to a positive) are counted in the :class:`~eci_core.io.records.SourceReport` by
    :meth:`Collection.add_source`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable, NamedTuple

from eci_core.io.collection import Collection
from eci_core.io.records import LoadError, LoadReport
from eci_core.io.formats import FORMATS, detect_format, normalise_format
from eci_core.io.formats.base import add_records
from eci_core.io.formats.beir import is_beir_dir, load_beir, own_beir_dir
from eci_core.io.read.blocks import (
    AFTER_MMAP_THRESHOLD,
    ARROW_POOL,
    LOAD_MMAP_THRESHOLD,
    mmap_threshold,
    trim_memory,
)
from eci_core.io.read.limits import LIMITS, ROOTS, LoadLimits, Progress
from eci_core.io.read.rows import container_of, record_rows
from eci_core.io.read.text import file_stem, missing_path_error
from eci_core.io.read.values import unexpected_error
from eci_core.io.trust import normalise_roots


def load_path(
    path: str | os.PathLike,
    collection: Collection,
    format: str | None = None,
    name: str | None = None,
    progress: Progress | None = None,
    split: str | None = None,
    limits: LoadLimits | None = None,
    roots: Iterable[str | os.PathLike] | None = None,
) -> LoadReport:
    """Load one file or BEIR directory into ``collection``; returns its :class:`LoadReport`.

    ``format`` overrides detection (see :data:`FORMATS`); ``name`` overrides the source name
    (the file stem). ``split`` chooses one qrels split of a BEIR directory (default: every split,
    each query's positives from its own; ignored for other formats). ``limits`` bounds line
    length, gzip expansion and negatives per query (default :meth:`LoadLimits.from_env`).
    ``progress(stage, done, total)`` is called while reading. ``roots`` (the dashboard's data
    roots; default None: no limit, the CLI reads what you name) limits every file opened, the
    named one and those read beside it (a BEIR directory's corpus, queries, qrels, negatives), to
    files that resolve inside a root: each is resolved, checked and opened by its resolved path
    (:func:`eci_core.io.trust.open_within`); a symbolic link out of the roots is refused with
    ``PATH: outside the data root …``. Raises LoadError (``PATH:LINE:
    field 'F': message``, never echoing the file's content) on bad input of any kind, leaving
    ``collection`` unchanged; a BEIR directory reports a bad negatives file in
    ``LoadReport.errors`` and loads the others."""
    token = LIMITS.set(limits) if limits is not None else None
    rtoken = ROOTS.set(normalise_roots(roots)) if roots is not None else None
    try:
        return _load_path(path, collection, format, name, progress, split)
    finally:
        if rtoken is not None:
            ROOTS.reset(rtoken)
        if token is not None:
            LIMITS.reset(token)


def _load_path(
    path: str | os.PathLike,
    collection: Collection,
    format: str | None,
    name: str | None,
    progress: Progress | None,
    split: str | None,
) -> LoadReport:
    p = Path(path)
    spath = str(path)
    if not p.exists():
        raise missing_path_error(p, spath)
    try:
        fmt = normalise_format(format) if format else detect_format(p)
        spec = FORMATS[fmt]
        if p.is_dir():
            if spec.directory is None:
                raise LoadError(spath, None, f"format {fmt} is a file format, but this is a directory")
            return spec.load(path, collection, fmt, name, progress, split)
        if spec.parse_rows is None:  # a directory format refuses a file itself
            return spec.load(path, collection, fmt, name, progress, split)
        rows = record_rows(p, container_of(p), progress)
        records, n, notes = spec.parse_rows(spath, rows)
        report = LoadReport()
        report.sources.append(
            add_records(
                collection, name or file_stem(p), records, spath, fmt, n, notes, passage_ids=spec.passage_ids
            )
        )
        return report
    except LoadError:
        raise
    except OSError as e:
        raise LoadError(spath, None, f"cannot read the file ({e.strerror or type(e).__name__})") from None
    except Exception as e:  # last resort: still one line, and add_source left the collection as it was
        raise unexpected_error(spath, None, e) from None


def load_paths(
    paths: Iterable[str | os.PathLike] | str | os.PathLike,
    collection: Collection | None = None,
    format: str | None = None,
    progress: Progress | None = None,
    split: str | None = None,
    limits: LoadLimits | None = None,
    roots: Iterable[str | os.PathLike] | None = None,
    corpus_dirs: Iterable[str | os.PathLike] = (),
) -> tuple[Collection, LoadReport]:
    """Load several files/directories into one collection (a new one when ``collection`` is None).
    ``roots``: the allowed roots of every file opened (see :func:`load_path`).

    A path that fails, for any reason, adds its one-line error to ``LoadReport.errors`` and
    loading continues with the next path; everything loaded before stays (each path's sources
    are added whole or not at all). TREC runs and negative-ids files named with a BEIR directory
    load with it, their ids resolved against its whole corpus (:func:`plan_extra_runs`);
    ``corpus_dirs`` names BEIR directories (e.g. of the data already in ``collection``) that
    resolve such files the same way without loading their ``negatives/``. Raises only
    ValueError for a bad ``format`` name."""
    state: dict = {}
    token = ARROW_POOL.set(state)
    mmap_threshold(LOAD_MMAP_THRESHOLD)
    try:
        rtoken = ROOTS.set(normalise_roots(roots)) if roots is not None else None
        try:
            return _load_paths(paths, collection, format, progress, split, limits, corpus_dirs)
        finally:
            if rtoken is not None:
                ROOTS.reset(rtoken)
    finally:
        ARROW_POOL.reset(token)
        if "prev" in state:
            import pyarrow as pa

            pa.set_memory_pool(state["prev"])
        mmap_threshold(AFTER_MMAP_THRESHOLD)
        trim_memory()


class LoadStep(NamedTuple):
    """One step of :func:`load_paths`: ``path`` loaded on its own (``extra`` empty), or the BEIR
    directory ``path`` with the run files ``extra`` (its ``negatives/`` too when ``negatives``)."""

    path: Any
    extra: list
    negatives: bool = True


def plan_extra_runs(
    paths: Iterable[str | os.PathLike],
    format: str | None = None,
    corpus_dirs: Iterable[str | os.PathLike] = (),
) -> list[LoadStep]:
    """How :func:`load_paths` loads ``paths``: a list of :class:`LoadStep`, in order.

    A TREC run or negative-ids file named together with a BEIR directory is loaded with that
    directory (``load_beir(directory, extra=[...])``): its ids resolve against the whole corpus,
    read once for every file. It goes to the directory it lies in (``DIR/sweep/x.trec``, or
    ``DIR/negatives/x.trec``), else, when only one BEIR directory is named, to that one.
    ``corpus_dirs`` are BEIR directories that resolve such files without their ``negatives/``
    being loaded (a dataset loaded before, e.g. the dashboard's). Any other path (and every path
    when ``format`` is given) is loaded on its own, as before."""
    paths = list(paths)
    dirs: list[tuple[Any, Path, bool]] = []  # (path as given, resolved, named in paths)
    for p in paths:
        try:
            if is_beir_dir(Path(p)):
                dirs.append((p, Path(p).resolve(), True))
        except OSError:
            continue
    for p in corpus_dirs:
        try:
            r = Path(p).resolve()
            if is_beir_dir(Path(p)) and all(r != d for _, d, _ in dirs):
                dirs.append((p, r, False))
        except OSError:
            continue
    if format or not dirs:
        return [LoadStep(p, []) for p in paths]
    extras: dict[int, list[Any]] = {k: [] for k in range(len(dirs))}
    first_at: dict[int, int] = {}  # a corpus_dirs entry's files load where its first file was named
    moved: set[int] = set()
    for i, p in enumerate(paths):
        q = Path(p)
        try:
            # run files are TREC or JSONL text: other containers are not even opened here
            if (
                not q.is_file()
                or container_of(q) not in ("trec", "jsonl")
                or detect_format(q) not in ("trec-run", "negative-ids")
            ):
                continue
            own = own_beir_dir(q)
            rq = q.resolve()
            own = own.resolve() if own is not None else None
        except (LoadError, OSError, ValueError):
            continue  # loaded on its own, which reports the problem
        if own is not None:
            home = [k for k, (_, d, _) in enumerate(dirs) if d == own]
        else:
            home = [k for k, (_, d, _) in enumerate(dirs) if d in rq.parents] or (
                [0] if len(dirs) == 1 else []
            )
        if home:
            extras[home[0]].append(p)
            first_at.setdefault(home[0], i)
            moved.add(i)
    named = {id(p): k for k, (p, _, inside) in enumerate(dirs) if inside}
    steps: list[LoadStep] = []
    for i, p in enumerate(paths):
        for k, at in first_at.items():
            if at == i and not dirs[k][2]:
                steps.append(LoadStep(dirs[k][0], extras[k], False))
        if i in moved:
            continue
        k = named.get(id(p))
        steps.append(LoadStep(p, extras[k] if k is not None else []))
    return steps


def _load_paths(
    paths, collection, format, progress, split, limits, corpus_dirs=()
) -> tuple[Collection, LoadReport]:
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    coll = Collection() if collection is None else collection
    fmt = normalise_format(format) if format else None
    report = LoadReport()
    token = LIMITS.set(limits) if limits is not None else None
    try:
        plan = plan_extra_runs(paths, fmt, corpus_dirs)
    finally:
        if token is not None:
            LIMITS.reset(token)
    for p, extra, negatives in plan:
        try:
            if extra:
                token = LIMITS.set(limits) if limits is not None else None
                try:
                    report.extend(
                        load_beir(
                            p,
                            coll,
                            progress=progress,
                            split=split,
                            extra=extra,
                            only=None if negatives else [],
                        )
                    )
                finally:
                    if token is not None:
                        LIMITS.reset(token)
            else:
                report.extend(load_path(p, coll, format=fmt, progress=progress, split=split, limits=limits))
        except LoadError as e:
            report.errors.append(str(e))
        except Exception as e:  # never lose the good files of a batch
            report.errors.append(str(unexpected_error(str(p), None, e)))
    return coll, report


def load_batch(
    paths: Iterable[str | os.PathLike],
    collection: Collection | None = None,
    format: str | None = None,
    split: str | None = None,
    limits: LoadLimits | None = None,
    progress: Progress | None = None,
    corpus_dirs: Iterable[str | os.PathLike] = (),
) -> tuple[Collection, LoadReport, list[str]]:
    """Load a batch (e.g. one upload of several files) on top of ``collection``, never raising.

    Returns ``(new_collection, report, errors)``: ``new_collection`` is a copy of ``collection``
    (a new one when None; the caller's object is never changed) with every good path's sources
    added; ``report`` lists those sources; ``errors`` holds one ``PATH:LINE: field 'F': message``
    line per bad path (also in ``report.errors``). A bad ``format`` name is an error line too.
    ``corpus_dirs``: as in :func:`load_paths`."""
    coll = Collection() if collection is None else collection.copy()
    try:
        coll, report = load_paths(
            list(paths),
            coll,
            format=format,
            progress=progress,
            split=split,
            limits=limits,
            corpus_dirs=corpus_dirs,
        )
    except ValueError as e:  # unknown format name
        report = LoadReport(errors=[f"format: {e}"])
    return coll, report, list(report.errors)
