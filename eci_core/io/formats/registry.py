"""The format registry: one :class:`FormatSpec` per accepted format, in :data:`FORMATS`.

Everything that lists, detects, reads or writes formats reads this table: :func:`normalise_format`
(names and aliases), :func:`detect_format` (a directory, a container, then the fields of the first
row, each format's detector in ``detect_order``), :func:`eci_core.io.load.load_path` (the reader),
the CLI's ``--format`` choices, :data:`eci_core.io.read.vocab.FORMAT_HINTS` and
:data:`~eci_core.io.read.vocab.KNOWN_FIELDS` (messages), and :func:`eci_core.io.export.export_bytes`
(the writers). The table itself is filled in :mod:`eci_core.io.formats` (one entry per format);
:func:`register_format` adds one more (a plug-in, or a test's toy format) and
:func:`unregister_format` removes it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from eci_core.io.collection import Collection
from eci_core.io.records import LoadError, LoadReport, QueryRecord
from eci_core.io.read.limits import Progress
from eci_core.io.read.parquet import parquet_rows
from eci_core.io.read.rows import container_of, peek, record_rows
from eci_core.io.read.text import missing_path_error
from eci_core.io.read.vocab import FORMAT_HINTS, KNOWN_FIELDS, accepted_formats, field_names

#: ``parse_rows(path, rows) -> (records, rows read, notes)``: a row format's reader
RowParser = Callable[[str, Iterator[tuple[int, dict]]], tuple[list[QueryRecord], int, dict[str, int]]]
#: ``load(path, collection, format, name, progress, split) -> LoadReport``: a file or directory reader
#: (``path`` as the caller gave it: messages name it so)
PathLoader = Callable[
    ["str | os.PathLike", Collection, str, "str | None", "Progress | None", "str | None"], LoadReport
]


@dataclass(frozen=True)
class ExportSpec:
    """How a format is written from a cleaned set (:mod:`eci_core.io.cleaning`): ``label`` is the
    Export page's name, ``suffix`` ends the suggested file name (``<source>.<suffix>``) and
    ``write(cleaned, source, n)`` returns the file's bytes (``n``: negatives per row, where the
    format has rows of a fixed size; others ignore it); ``button`` is its download button's short
    name (default: ``label``)."""

    label: str
    suffix: str
    write: Callable[[Any, "str | None", "int | None"], bytes]
    extension: str = ".jsonl"
    mime: str = "application/jsonl"
    order: int = 100  # position on the Export page (lower first)
    button: str = ""


@dataclass(frozen=True)
class FormatSpec:
    """One accepted format.

    * ``name`` (the ``format=`` / ``--format`` value), ``family`` (the module of
      :mod:`eci_core.io.formats` holding its code), ``hint`` (its fields in one line, for messages
      and help), ``aliases`` (other accepted names), ``known_fields`` (field names its messages may
      show: :data:`~eci_core.io.read.vocab.KNOWN_FIELDS`).
    * Detection: ``detect(first_row) -> bool``, tried in ``detect_order`` (lower first);
      ``container``: a container that alone means this format (``"trec"``: whitespace run lines);
      ``directory(path) -> bool``: a directory of this format (a format with it reads directories).
    * Reading: ``parse_rows`` for a format of records (JSONL/JSON/CSV/TSV/Parquet rows, added as one
      source named after the file), else ``load`` for anything else (ids resolved against other
      files, several systems, directories). ``passage_ids=False``: its passages carry no ids (no
      "passage id given with a different text" count).
    * Writing: ``export`` (:class:`ExportSpec`) when a cleaned set can be written in it.
    """

    name: str
    family: str
    hint: str
    aliases: tuple[str, ...] = ()
    known_fields: tuple[str, ...] = ()
    detect: Callable[[dict], bool] | None = None
    detect_order: int = 100
    container: str | None = None
    directory: Callable[[Path], bool] | None = None
    parse_rows: RowParser | None = None
    load: PathLoader | None = None
    passage_ids: bool = True
    export: ExportSpec | None = None


#: every accepted format by name, in the order the README and ``--help`` list them
FORMATS: dict[str, FormatSpec] = {}


def _sync_vocab() -> None:
    """Keep the message vocabulary (:mod:`eci_core.io.read.vocab`) equal to the table."""
    KNOWN_FIELDS.clear()
    for spec in FORMATS.values():
        KNOWN_FIELDS.update(spec.known_fields)
    FORMAT_HINTS.clear()
    FORMAT_HINTS.update((spec.name, spec.hint) for spec in FORMATS.values())


def _key(name: str) -> str:
    return str(name).strip().lower().replace("_", "-")


def aliases() -> dict[str, str]:
    """Every alias of every format -> its format name."""
    return {_key(a): spec.name for spec in FORMATS.values() for a in spec.aliases}


def register_format(spec: FormatSpec) -> FormatSpec:
    """Add ``spec`` to :data:`FORMATS` (after the others). Raises ``ValueError`` when its name or an
    alias is already taken, or when it has neither ``parse_rows`` nor ``load``."""
    if spec.parse_rows is None and spec.load is None:
        raise ValueError(f"format {spec.name!r}: give parse_rows (records) or load (anything else)")
    taken = set(FORMATS) | set(aliases())
    for n in (spec.name, *spec.aliases):
        if _key(n) in taken:
            raise ValueError(f"format name or alias {n!r} is already registered; choose another")
    FORMATS[spec.name] = spec
    _sync_vocab()
    return spec


def unregister_format(name: str) -> FormatSpec:
    """Remove a format added with :func:`register_format` (e.g. a test's); returns its spec."""
    spec = FORMATS.pop(name)
    _sync_vocab()
    return spec


def normalise_format(format: str) -> str:
    """The canonical name of ``format`` (aliases such as ``"n-tuple"`` accepted).

    Raises ``ValueError`` naming the accepted formats for an unknown name."""
    key = _key(format)
    key = aliases().get(key, key)
    if key not in FORMATS:
        raise ValueError(f"format={format!r} is not a known format; use one of: {', '.join(FORMATS)}")
    return key


def detect_row(row: dict) -> str | None:
    """The format whose detector accepts the fields of ``row`` first (``detect_order``), or None."""
    for spec in sorted(FORMATS.values(), key=lambda s: s.detect_order):
        if spec.detect is not None and spec.detect(row):
            return spec.name
    return None


def detect_format(path: str | os.PathLike) -> str:
    """The format name of a file or directory (one of :data:`FORMATS`).

    A directory with ``corpus.jsonl`` is ``beir``; a file of ``qid Q0 docid rank score tag`` lines
    is ``trec-run``; otherwise the fields of the first record decide (see :mod:`eci_core.io.load`).
    Raises LoadError listing the accepted formats when nothing matches."""
    p = Path(path)
    spath = str(path)
    if not p.exists():
        raise missing_path_error(p, spath)
    if p.is_dir():
        for spec in FORMATS.values():
            if spec.directory is not None and spec.directory(p):
                return spec.name
        raise LoadError(
            spath,
            None,
            "a directory must be a BEIR directory (corpus.jsonl, queries.jsonl, qrels/, "
            "negatives/); give files by name otherwise",
        )
    try:
        kind = container_of(p)
        for spec in FORMATS.values():
            if spec.container is not None and spec.container == kind:
                return spec.name
        (line, row), _ = peek(
            parquet_rows(p, None, first_only=True) if kind == "parquet" else record_rows(p, kind)
        )
    except OSError as e:
        raise LoadError(spath, None, f"cannot read the file ({e.strerror or e})") from None
    fmt = detect_row(row)
    if fmt is None:
        found = field_names(row)
        raise LoadError(
            spath,
            line,
            f"cannot detect the format from the fields {found}; accepted formats: "
            f"{accepted_formats()}; or pass format= (--format) to choose one",
        )
    return fmt
