"""Run files: a TREC run or a negative-ids file, read by either reader (:mod:`.trec_run`,
:mod:`.negative_ids`): per line (:func:`parse_negatives_file`, :class:`~.id_runs.IdRun` per
system) or columnar (:func:`parse_negatives_arrays`, the pyarrow readers first, :class:`~.id_runs.IdArrays`).
"""

from __future__ import annotations

from pathlib import Path

from eci_core.io.records import LoadError
from eci_core.io.formats.id_runs import IdArrays, IdRun, arrays_from_run
from eci_core.io.formats.negative_ids import fast_negative_ids, negative_ids_scan, parse_negative_ids
from eci_core.io.formats.registry import detect_row
from eci_core.io.formats.trec_run import fast_trec, parse_trec, trec_scan
from eci_core.io.read.blocks import NotFast, block_lines, release_arrow_memory, total_size, use_fast
from eci_core.io.read.limits import Progress
from eci_core.io.read.rows import container_of, jsonl_objects, peek, record_rows
from eci_core.io.read.text import file_stem
from eci_core.io.read.vocab import field_names


def parse_negatives_file(
    path: Path, format: str | None = None, progress: Progress | None = None
) -> list[IdRun]:
    """A TREC run or negative-ids file into one :class:`IdRun` per system."""
    stem = file_stem(path)
    kind = container_of(path)
    fmt = format or ("trec-run" if kind == "trec" else None)
    if fmt is None:
        (line, row), _ = peek(record_rows(path, kind))
        fmt = detect_row(row)
        if fmt != "negative-ids":
            found = field_names(row)
            raise LoadError(
                str(path),
                line,
                f"a negatives file must be a TREC run (qid Q0 docid rank score tag) or "
                f"negative-ids JSONL (query_id, negative_ids [, scores]); fields found: {found}",
            )
    if fmt == "trec-run":
        if kind != "trec":
            raise LoadError(str(path), None, "expected a TREC run: lines of 'qid Q0 docid rank score tag'")
        return parse_trec(path, stem, progress)
    return parse_negative_ids(path, stem, kind, progress)


def _rescan_block(spath: str, fmt: str | None, block: tuple[int, int, bytes, bool]) -> None:
    """Raise the per-line parser's LoadError for the first bad line of ``block``, if it has one.

    Every earlier block was read by pyarrow under checks that make it valid line by line, so a
    bad line found here is the file's first one (the whole file is re-read only otherwise)."""
    lines = block_lines(spath, block)
    if fmt == "trec-run":
        trec_scan(spath, lines)
    elif fmt == "negative-ids":
        negative_ids_scan(spath, IdRun("", spath, "negative-ids"), jsonl_objects(spath, lines))


def parse_negatives_arrays(
    path: Path, format: str | None = None, progress: Progress | None = None
) -> list[IdArrays]:
    """:func:`parse_negatives_file` in columnar form: the vectorised readers first, else the
    per-line parser (which names the bad line)."""
    if use_fast(total_size(path)):
        stem = file_stem(path)
        kind = container_of(path)
        fmt = format or ("trec-run" if kind == "trec" else None)
        fast = None
        if fmt is None and kind == "jsonl":
            (_, row), _ = peek(record_rows(path, kind))
            fmt = "negative-ids" if detect_row(row) == "negative-ids" else None
        try:
            if fmt == "trec-run" and kind == "trec":
                fast = fast_trec(path, stem)
            elif fmt == "negative-ids" and kind == "jsonl":
                fast = fast_negative_ids(path, stem)
        except NotFast as e:
            if e.block is not None:  # re-scan the bad block first: a bad line there is the first one
                _rescan_block(str(path), fmt, e.block)
        finally:
            release_arrow_memory()
        if fast is not None:
            if progress:
                progress(f"reading {path.name}", 1, 1)
            return fast
    return [arrays_from_run(r) for r in parse_negatives_file(path, format, progress)]
