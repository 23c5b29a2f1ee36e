"""Read every accepted hard-negative file format into a :class:`~eci_core.io.collection.Collection`.

Public API::

    detect_format(path) -> str
    load_path(path, collection, format=None, name=None, progress=None, split=None) -> LoadReport   # raises LoadError
    load_paths(paths, collection=None, format=None, progress=None, split=None, limits=None, corpus_dirs=())
        -> (Collection, LoadReport)
    plan_extra_runs(paths, format=None, corpus_dirs=()) -> list[LoadStep]
    load_msmarco_hn(path, collection_tsv, queries_tsv, collection, name=None, progress=None) -> LoadReport
    load_beir(directory, collection, name=None, progress=None, split=None, extra=None) -> LoadReport
    qrels_splits(directory) -> list[str]

Containers
    JSONL (``.jsonl``/``.ndjson``), JSON (``.json``: an array of objects, an object of equal-length
    lists (columns), or JSONL saved as ``.json``), CSV, TSV (header row), Parquet (pyarrow), and
    ``.gz`` of any text container. Text must be UTF-8 (a BOM is accepted). In CSV/TSV/Parquet,
    list cells may be JSON arrays or Python list literals (``['a', 'b']``, read with
    ``ast.literal_eval``, never ``eval``).

Formats (``format=`` names; detected from the fields of the first row, overridable)
    ``st-triplet``       sentence-transformers ``mine_hard_negatives(output_format="triplet")``:
                         anchor, positive, ``negative`` [, ``scores`` = [pos, neg]]
    ``st-ntuple``        ``output_format="n-tuple"`` (and the older ``"n-tuple-scores"``):
                         anchor, positive, ``negative_1`` … ``negative_n`` [, ``scores`` = [pos, neg_1 … neg_n]]
    ``st-labeled-pair``  anchor, passage, ``label`` (>0 = positive) or ``score``
    ``st-labeled-list``  anchor, a list column [pos, neg …] under the positive's name, ``labels`` or ``scores``
    ``bge``              FlagEmbedding: ``{query, pos: [...], neg: [...], pos_scores?, neg_scores?}``
    ``tevatron``         Tevatron/RLHN: ``{query_id, query, positive_passages: [{docid, title, text}],
                         negative_passages: [...]}``; passage text = ``title + " " + text`` when the title is set
    ``msmarco-hn``       ``{qid, pos: [pid ...], neg: {system: [pid ...]}}`` with ``pid<TAB>text`` and
                         ``qid<TAB>text`` TSV files
    ``beir``             a directory: ``corpus.jsonl``, ``queries.jsonl``, ``qrels/*.tsv`` and ``negatives/``
    ``trec-run``         ``qid Q0 docid rank score tag`` lines (negatives ordered by rank, score kept)
    ``negative-ids``     JSONL ``{query_id, negative_ids: [...], scores?: [...]}``

sentence-transformers column names
    The miner keeps the user's anchor and positive column names, so they are detected, not assumed:
    a known anchor name (``anchor``, ``query``, ``question`` …) or else the first remaining column,
    and a known positive name (``positive``, ``pos``, ``answer``, ``passage`` …) or else the next one
    (the miner's own rule is "first column, second column"). A column named ``query_id``/``qid``/
    ``query-id`` is used as the query id (other columns such as a row ``id`` are ignored). Rows are grouped by query: a repeated anchor means several
    positives. The miner repeats a query's negatives once per positive (triplet, n-tuple,
    labeled-list); those repeats are merged (multiset union over the query's positives), so only
    duplicates *within* one positive's list are reported as duplicate negatives. Miner scores are
    kept as the negatives' ``score`` (metadata, never used in margins).
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
    :class:`LoadLimits` holds on every reader, before bytes are decoded where the format allows:
    text lines (and CSV records spanning lines) via :class:`_Lines`; ``.gz`` size and ratio via
    :class:`GzipRaw`; Parquet by :func:`check_parquet_metadata` (footer) and
    :class:`ParquetDecodedLimits` (the dictionary columns of each row group, read as Arrow
    dictionaries, then each batch of rows, before they become Python values); whole-document JSON by
    :func:`check_file_size` and :func:`check_json_document`; the pyarrow block readers leave a
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

import ast
import contextvars
import errno
import io
import json
import math
import os
import re
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, NamedTuple

from eci_core.io.collection import Collection
from eci_core.io.records import LoadError, LoadReport, PassageRef, QueryRecord, SourceReport
from eci_core.io.texts import ArrowTextMap, KeyedTexts, bool_arrow, ints_arrow, np_of, str_arrow
from eci_core.io.trust import dataset_dir, is_trusted_dir, normalise_roots, open_within

Progress = Callable[[str, int, int], None]

FORMATS: tuple[str, ...] = (
    "st-triplet",
    "st-ntuple",
    "st-labeled-pair",
    "st-labeled-list",
    "bge",
    "tevatron",
    "msmarco-hn",
    "beir",
    "trec-run",
    "negative-ids",
)

FORMAT_HINTS: dict[str, str] = {
    "st-triplet": "anchor, positive, negative [, scores]",
    "st-ntuple": "anchor, positive, negative_1..negative_n [, scores]",
    "st-labeled-pair": "anchor, passage, label|score",
    "st-labeled-list": "anchor, [passages], labels|scores",
    "bge": "query, pos, neg [, pos_scores, neg_scores]",
    "tevatron": "query_id, query, positive_passages, negative_passages",
    "msmarco-hn": "qid, pos, neg: {system: [pid...]}",
    "beir": "a directory with corpus.jsonl, queries.jsonl, qrels/, negatives/",
    "trec-run": "qid Q0 docid rank score tag",
    "negative-ids": "query_id, negative_ids [, scores]",
}

_ALIASES = {
    "triplet": "st-triplet",
    "n-tuple": "st-ntuple",
    "ntuple": "st-ntuple",
    "n-tuple-scores": "st-ntuple",
    "st-n-tuple": "st-ntuple",
    "st-n-tuple-scores": "st-ntuple",
    "labeled-pair": "st-labeled-pair",
    "labeled-list": "st-labeled-list",
    "flagembedding": "bge",
    "rlhn": "tevatron",
    "msmarco": "msmarco-hn",
    "msmarco-hard-negatives": "msmarco-hn",
    "trec": "trec-run",
    "run": "trec-run",
}

ANCHOR_NAMES = (
    "anchor",
    "query",
    "question",
    "queries",
    "questions",
    "q",
    "search_query",
    "sentence1",
    "sentence_1",
    "sentence_a",
    "sentence_A",
    "text1",
    "text_1",
    "query_text",
    "input",
    "prompt",
)
POSITIVE_NAMES = (
    "positive",
    "pos",
    "positives",
    "answer",
    "answers",
    "passage",
    "passages",
    "document",
    "documents",
    "doc",
    "docs",
    "context",
    "response",
    "sentence2",
    "sentence_2",
    "sentence_b",
    "sentence_B",
    "text2",
    "text_2",
    "text",
    "positive_passage",
    "pos_text",
    "target",
)
QUERY_ID_NAMES = ("query_id", "qid", "query-id")  # not "id": often a row id, which would split queries
_NEG_N = re.compile(r"^negative_(\d+)$")
# never taken as the anchor/positive by position: row ids and pandas index columns
_INDEX_COLUMNS = {"", "id", "_id", "idx", "index", "row", "row_id", "__index_level_0__", "Unnamed: 0"}
_ROLE_COLUMNS = {"negative", "scores", "score", "label", "labels"}
_ID_LESS = {"st-triplet", "st-ntuple", "st-labeled-pair", "st-labeled-list", "bge"}
SCORE_ONLY_NOTE = "labeled-pair without 'label': first row of each query taken as its only positive"
_tuple_new = tuple.__new__
_STR_ONLY = {str}


def _refs(texts: list[str], scores: list | None = None, ids: list | None = None) -> list[PassageRef]:
    """PassageRefs built without NamedTuple's Python-level ``__new__`` (hot path)."""
    if ids is None and scores is None:
        return [_tuple_new(PassageRef, (None, t, None)) for t in texts]
    if ids is None:
        return [_tuple_new(PassageRef, (None, t, s)) for t, s in zip(texts, scores)]
    if scores is None:
        return [_tuple_new(PassageRef, (i, t, None)) for i, t in zip(ids, texts)]
    return [_tuple_new(PassageRef, (i, t, s)) for i, t, s in zip(ids, texts, scores)]


_PROGRESS_EVERY = 20000


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


@dataclass(frozen=True)
class LoadLimits:
    """Limits that keep one hostile file from costing minutes or gigabytes while loading.

    Every limit gives a one-line ``PATH:LINE: message`` naming the limit when exceeded. Override
    per call (``load_paths(..., limits=LoadLimits(max_line_bytes=2**28))``) or for the CLI and
    the dashboard with environment variables (:meth:`from_env`): ``ECI_MAX_LINE_BYTES``,
    ``ECI_MAX_DECOMPRESSED_BYTES``, ``ECI_MAX_COMPRESSION_RATIO``, ``ECI_MAX_NEGATIVES_PER_QUERY``.

    * ``max_line_bytes`` (64 MiB): the longest line of a text file (JSONL, CSV/TSV, TREC, qrels).
    * ``max_decompressed_bytes`` (16 GiB): the most data one ``.gz`` file may decompress to.
    * ``max_compression_ratio`` (100): decompressed / compressed bytes of a ``.gz`` file, checked
      once more than ``ratio_grace_bytes`` (1 MiB) came out. Text and JSONL compress 3-15x; a
      gzip bomb (51 KB holding 50 MB of newlines: 1,000x) is rejected after 1 MiB.
    * ``max_negatives_per_query`` (100,000): negatives of one query in one source.
    """

    max_line_bytes: int = 64 * 2**20
    max_decompressed_bytes: int = 16 * 2**30
    max_compression_ratio: float = 100.0
    ratio_grace_bytes: int = 2**20
    max_negatives_per_query: int = 100_000

    @classmethod
    def from_env(cls) -> "LoadLimits":
        """The defaults, each overridden by its environment variable when set."""
        env = {
            "max_line_bytes": "ECI_MAX_LINE_BYTES",
            "max_decompressed_bytes": "ECI_MAX_DECOMPRESSED_BYTES",
            "max_compression_ratio": "ECI_MAX_COMPRESSION_RATIO",
            "max_negatives_per_query": "ECI_MAX_NEGATIVES_PER_QUERY",
        }
        kw: dict[str, Any] = {}
        for k, var in env.items():
            v = os.environ.get(var, "").strip()
            if v:
                try:
                    kw[k] = float(v) if k == "max_compression_ratio" else int(float(v))
                except ValueError:
                    raise ValueError(
                        f"{var}={v!r} is not a number; unset it or give e.g. {getattr(cls, k)}"
                    ) from None
        return cls(**kw)


_LIMITS: contextvars.ContextVar[LoadLimits | None] = contextvars.ContextVar("eci_load_limits", default=None)


def current_limits() -> LoadLimits:
    lim = _LIMITS.get()
    return lim if lim is not None else LoadLimits.from_env()


# the allowed roots of the load in progress (``roots=`` of load_path / load_paths; None: no limit)
_ROOTS: contextvars.ContextVar[tuple[Path, ...] | None] = contextvars.ContextVar(
    "eci_load_roots", default=None
)


def _open_file(path: Path):
    """Every file the loaders read is opened here: inside the load's allowed roots when it has
    some (:func:`eci_core.io.trust.open_within`)."""
    return open_within(path, _ROOTS.get())


def normalise_format(format: str) -> str:
    """The canonical name of ``format`` (aliases such as ``"n-tuple"`` accepted).

    Raises ``ValueError`` naming the accepted formats for an unknown name."""
    key = str(format).strip().lower().replace("_", "-")
    key = _ALIASES.get(key, key)
    if key not in FORMATS:
        raise ValueError(f"format={format!r} is not a known format; use one of: {', '.join(FORMATS)}")
    return key


def _accepted() -> str:
    return "; ".join(f"{k} ({v})" for k, v in FORMAT_HINTS.items())


# ====================================================================== never-echo helpers
_KNOWN_FIELDS = frozenset(
    ANCHOR_NAMES
    + POSITIVE_NAMES
    + QUERY_ID_NAMES
    + tuple(_INDEX_COLUMNS)
    + tuple(_ROLE_COLUMNS)
    + (
        "pos",
        "neg",
        "pos_scores",
        "neg_scores",
        "query_id",
        "positive_passages",
        "negative_passages",
        "qid",
        "negative_ids",
        "docid",
        "title",
        "text",
        "_id",
        "query-id",
        "corpus-id",
        "metadata",
    )
)


def _field_names(keys: Iterable[Any]) -> str:
    """The field names of a record for a message: known names shown, others only counted (a
    headerless CSV's first line would otherwise be echoed as "field names")."""
    keys = [str(k) for k in keys]
    shown = [k for k in keys if k in _KNOWN_FIELDS or _NEG_N.match(k)]
    other = len(keys) - len(shown)
    if not keys:
        return "none"
    text = ", ".join(shown)
    if other:
        text += (" and " if shown else "") + _plural(other, "unrecognised field")
    return text


_SURR_ESC = re.compile(r"\\[uU](?:0000)?[dD][89a-fA-F]")
_SURR = re.compile("[\ud800-\udfff]")
_DIGITS_MSG = "an integer with more than 4,300 digits (Python's limit for numbers read from text)"


def _surrogate_field(obj: Any, fld: str | None) -> str | None:
    """The field path of the first string (key or value) holding a lone UTF-16 surrogate."""
    stack: list[tuple[Any, str | None]] = [(obj, fld)]
    while stack:
        v, where = stack.pop()
        if isinstance(v, str):
            if _SURR.search(v):
                return where or "?"
        elif isinstance(v, dict):
            for k, x in reversed(list(v.items())):
                if isinstance(k, str) and _SURR.search(k):
                    return where or "?"
                stack.append((x, f"{where}.{k}" if where else str(k)))
        elif isinstance(v, (list, tuple)):
            for i in range(len(v) - 1, -1, -1):
                stack.append((v[i], f"{where}[{i}]" if where else f"[{i}]"))
    return None


def _check_surrogates(path: str, line: int | None, raw: str, obj: Any, fld: str | None = None) -> None:
    """Raise LoadError when ``obj`` (parsed from ``raw``) holds a lone surrogate (``"\\ud800"``):
    such text cannot be encoded as UTF-8 and would fail later, far from its line."""
    if "\\" in raw and _SURR_ESC.search(raw):
        where = _surrogate_field(obj, fld)
        if where is not None:
            raise LoadError(
                path,
                line,
                "text holds a lone UTF-16 surrogate (a \\ud800-\\udfff escape without "
                "its pair), which is not valid Unicode",
                field=None if where == "?" else where,
            )


def _loads(path: str, line: int | None, raw: str, fld: str | None = None) -> Any:
    """``json.loads`` whose every failure is a one-line LoadError (never echoing the text)."""
    try:
        obj = json.loads(raw)
    except json.JSONDecodeError as e:
        raise LoadError(path, line, f"invalid JSON: {e.msg} at column {e.colno}", field=fld) from None
    except RecursionError:
        raise LoadError(path, line, "JSON nested too deeply to read", field=fld) from None
    except ValueError:
        raise LoadError(path, line, _DIGITS_MSG, field=fld) from None
    _check_surrogates(path, line, raw, obj, fld)
    return obj


def _unexpected(path: str, line: int | None, e: BaseException, fld: str | None = None) -> LoadError:
    """A one-line LoadError for an exception a record caused (no traceback, no file content)."""
    if isinstance(e, LoadError):
        return e
    if isinstance(e, RecursionError):
        msg = "nested too deeply to read"
    elif isinstance(e, MemoryError):
        msg = "too large to read in memory"
    elif isinstance(e, UnicodeError):
        msg = "text is not valid Unicode (a lone surrogate?)"
    elif isinstance(e, OverflowError):
        msg = "a number is too large"
    elif isinstance(e, ValueError) and "digits" in str(e):
        msg = _DIGITS_MSG
    else:
        msg = f"cannot read this record ({type(e).__name__})"
    return LoadError(path, line, msg, field=fld)


# ====================================================================== value checks
def _kind(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true/false"
    if isinstance(v, (int, float)):
        return "a number"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, (list, tuple)):
        return "a list"
    if isinstance(v, dict):
        return "an object"
    return type(v).__name__


def _text(path: str, line: int | None, v: Any, fld: str) -> str:
    """A required, non-empty text value."""
    if isinstance(v, str):
        if v.strip():
            return v
        raise LoadError(path, line, "empty text (every query and passage needs text)", field=fld)
    if v is None:
        raise LoadError(path, line, "is null; expected text", field=fld)
    raise LoadError(path, line, f"expected a string, got {_kind(v)}", field=fld)


def _ident(path: str, line: int | None, v: Any, fld: str) -> str:
    """An id: a non-empty string or an integer (kept as its decimal string)."""
    if isinstance(v, bool):
        raise LoadError(path, line, "expected an id (string or integer), got true/false", field=fld)
    if isinstance(v, int):
        try:
            return str(v)
        except ValueError:
            raise LoadError(path, line, _DIGITS_MSG, field=fld) from None
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if isinstance(v, str):
        s = v.strip()
        if s:
            return s
        raise LoadError(path, line, "empty id", field=fld)
    if v is None:
        raise LoadError(path, line, "is null; expected an id", field=fld)
    raise LoadError(path, line, f"expected an id (string or integer), got {_kind(v)}", field=fld)


def _as_list(path: str, line: int | None, v: Any, fld: str, what: str) -> list:
    """A list value; a string cell holding a JSON array or Python list literal is parsed."""
    if isinstance(v, list):
        return v
    if isinstance(v, tuple):
        return list(v)
    if isinstance(v, str) and v.lstrip().startswith("["):
        try:
            out = json.loads(v)
        except RecursionError:
            raise LoadError(path, line, "list nested too deeply to read", field=fld) from None
        except json.JSONDecodeError:
            try:
                out = ast.literal_eval(v.strip())
            except RecursionError:
                raise LoadError(path, line, "list nested too deeply to read", field=fld) from None
            except (ValueError, SyntaxError, MemoryError, TypeError):
                raise LoadError(
                    path, line, "cannot read the list: expected a JSON array", field=fld
                ) from None
        except ValueError:
            raise LoadError(path, line, _DIGITS_MSG, field=fld) from None
        _check_surrogates(path, line, v, out, fld)
        if isinstance(out, (list, tuple)):
            return list(out)
    if hasattr(v, "tolist") and not isinstance(v, (str, bytes)):  # numpy arrays from pandas
        out = v.tolist()
        if isinstance(out, list):
            return out
    if v is None:
        raise LoadError(path, line, f"is null; expected {what}", field=fld)
    raise LoadError(path, line, f"expected {what}, got {_kind(v)}", field=fld)


def _text_list(path: str, line: int | None, v: Any, fld: str) -> list[str]:
    if type(v) is list:  # fast path (C-level checks): a JSON list of non-blank strings
        kinds = set(map(type, v))
        if (not kinds or kinds == _STR_ONLY) and "" not in v and not any(map(str.isspace, v)):
            return v
    items = _as_list(path, line, v, fld, "a list of strings")
    return [_text(path, line, t, f"{fld}[{i}]") for i, t in enumerate(items)]


def _finite(path: str, line: int | None, x: float, fld: str) -> float:
    if math.isfinite(x):
        return x
    raise LoadError(path, line, f"expected a finite number, got {'NaN' if x != x else 'infinity'}", field=fld)


def _num(path: str, line: int | None, v: Any, fld: str) -> float:
    if isinstance(v, bool):
        return float(v)
    if isinstance(v, (int, float)):
        try:
            return _finite(path, line, float(v), fld)
        except OverflowError:
            raise LoadError(path, line, "number too large", field=fld) from None
    if isinstance(v, str):
        try:
            x = float(v)
        except ValueError:
            raise LoadError(path, line, "expected a number, got text", field=fld) from None
        return _finite(path, line, x, fld)
    if v is None:
        raise LoadError(path, line, "is null; expected a number", field=fld)
    raise LoadError(path, line, f"expected a number, got {_kind(v)}", field=fld)


def _num_list(path: str, line: int | None, v: Any, fld: str, n: int | None, expect: str) -> list[float]:
    items = _as_list(path, line, v, fld, "a list of numbers")
    if n is not None and len(items) != n:
        raise LoadError(path, line, f"has {_plural(len(items), 'value')}, expected {n} ({expect})", field=fld)
    return [_num(path, line, x, f"{fld}[{i}]") for i, x in enumerate(items)]


def _present(v: Any) -> bool:
    """Whether an optional cell holds a value (CSV gives '' for a missing one)."""
    return v is not None and not (isinstance(v, str) and not v.strip())


def _need(path: str, line: int | None, row: dict, key: str) -> Any:
    if key not in row:
        found = _field_names(row)
        raise LoadError(path, line, f"missing required field (fields found: {found})", field=key)
    return row[key]


# ====================================================================== reading text
def _is_gz(path: Path) -> bool:
    try:
        with _open_file(path) as f:
            return f.read(2) == b"\x1f\x8b"
    except OSError:
        return False


def _strip_gz(name: str) -> str:
    return name[:-3] if name.lower().endswith(".gz") else name


def _stem(path: Path) -> str:
    name = _strip_gz(path.name)
    base, dot, _ = name.rpartition(".")
    return base if dot and base else name


class GzipRaw(io.RawIOBase):
    """The decompressed bytes of a gzip file (several members allowed), with the size and
    compression-ratio limits of :class:`LoadLimits` checked as data comes out (a gzip bomb is
    rejected after ``ratio_grace_bytes``, not after decompressing it all)."""

    CHUNK = 1 << 16

    def __init__(self, raw, spath: str, limits: LoadLimits):
        self.raw, self.spath, self.lim = raw, spath, limits
        self.d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self.pending = b""  # compressed bytes read but not yet consumed
        self.in_total = 0
        self.out_total = 0
        self.fed = 0  # compressed bytes fed to the current member
        self.members = 0
        self.done = False

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        n = len(b)
        while True:
            if not self.pending:
                if self.done:
                    return 0
                self.pending = self.raw.read(self.CHUNK)
                if not self.pending:
                    if self.fed == 0 and self.members > 0:
                        self.done = True
                        return 0
                    raise LoadError(
                        self.spath,
                        None,
                        "broken gzip data (the file ends in the middle of the "
                        "compressed stream); re-compress the file",
                    )
            before = len(self.pending)
            try:
                out = self.d.decompress(self.pending, n)
            except zlib.error:
                raise LoadError(
                    self.spath,
                    None,
                    "broken gzip data (not a valid gzip/deflate stream); re-compress the file",
                ) from None
            if self.d.eof:  # end of one member: another may follow
                rest = self.d.unused_data
                self.in_total += before - len(rest) - len(self.d.unconsumed_tail)
                self.members += 1
                self.fed = 0
                self.d = zlib.decompressobj(16 + zlib.MAX_WBITS)
                self.pending = rest.lstrip(b"\x00")  # zero padding after a member is allowed
            else:
                self.pending = self.d.unconsumed_tail
                self.in_total += before - len(self.pending)
                self.fed += before - len(self.pending)
            if out:
                self._check(len(out))
                b[: len(out)] = out
                return len(out)

    def _check(self, k: int) -> None:
        self.out_total += k
        lim = self.lim
        if self.out_total > lim.max_decompressed_bytes:
            raise LoadError(
                self.spath,
                None,
                f"the gzip decompresses to more than {lim.max_decompressed_bytes:,} "
                "bytes (LoadLimits.max_decompressed_bytes, env ECI_MAX_DECOMPRESSED_BYTES)",
            )
        if self.out_total > lim.ratio_grace_bytes and self.out_total > lim.max_compression_ratio * max(
            self.in_total, 1
        ):
            raise LoadError(
                self.spath,
                None,
                f"the gzip expands more than {lim.max_compression_ratio:g}x "
                "(a compression bomb?); LoadLimits.max_compression_ratio, env ECI_MAX_COMPRESSION_RATIO",
            )


def _open_bytes(path: Path) -> tuple[io.BufferedReader, Any, bool]:
    """``(binary stream, underlying file, is_gzip)`` of a plain or gzipped file (limits applied)."""
    gz = _is_gz(path)
    raw = _open_file(path)
    if not gz:
        return raw, raw, False
    return io.BufferedReader(GzipRaw(raw, str(path), current_limits()), buffer_size=1 << 20), raw, True


def _read_bytes(path: Path) -> tuple[bytes, bool]:
    """The whole (decompressed) content of a file, with the gzip limits checked."""
    f, raw, gz = _open_bytes(path)
    try:
        return f.read(), gz
    finally:
        raw.close()


class _Lines:
    """``(line_no, text)`` of a UTF-8 text file (plain or gzip), decoded line by line, streaming.

    Undecodable bytes raise a LoadError with the byte offset; progress is reported in bytes of
    the file on disk. Lines longer than ``LoadLimits.max_line_bytes`` are rejected before being
    read whole."""

    def __init__(self, path: Path, progress: Progress | None = None, stage: str = ""):
        self.path = path
        self.progress = progress
        self.stage = stage or f"reading {path.name}"
        self.lines = 0

    def __iter__(self) -> Iterator[tuple[int, str]]:
        path, spath = self.path, str(self.path)
        total = os.path.getsize(path)
        if total == 0:
            raise LoadError(spath, None, "file is empty")
        f, raw, gz = _open_bytes(path)
        max_line = current_limits().max_line_bytes
        try:
            offset = 0
            no = 0
            readline = f.readline
            while True:
                b = readline(max_line + 1)
                if not b:
                    break
                no += 1
                if len(b) > max_line and not (len(b) == max_line + 1 and b.endswith(b"\n")):
                    raise LoadError(
                        spath,
                        no,
                        f"line longer than {max_line:,} bytes (LoadLimits.max_line_bytes, "
                        "env ECI_MAX_LINE_BYTES)",
                    )
                try:
                    s = b.decode("utf-8")
                except UnicodeDecodeError as e:
                    where = "of the decompressed data" if gz else "of the file"
                    raise LoadError(
                        spath,
                        no,
                        f"not valid UTF-8 (expected UTF-8 text) at byte {offset + e.start} {where}; "
                        "re-save the file as UTF-8",
                    ) from None
                if no == 1 and s.startswith("\ufeff"):
                    s = s[1:]
                offset += len(b)
                self.lines = no
                if self.progress and no % _PROGRESS_EVERY == 0:
                    self.progress(self.stage, raw.tell(), total)
                yield no, s.rstrip("\r\n")
            if no == 0:
                raise LoadError(spath, None, "file is empty" + (" (the gzip holds no data)" if gz else ""))
            if self.progress:
                self.progress(self.stage, total, total)
        except LoadError as e:
            if e.line is None and gz and no:  # a gzip problem found while reading: name the line
                raise LoadError(spath, no + 1, e.message, e.field) from None
            raise
        finally:
            raw.close()


def _read_text(path: Path, check: Callable[[str, bytes], None] | None = None) -> str:
    """A whole (possibly gzipped) UTF-8 file as text, with the same checks as :class:`_Lines`
    and :func:`check_file_size`; ``check(path, bytes)`` sees the bytes before they are decoded."""
    spath = str(path)
    if os.path.getsize(path) == 0:
        raise LoadError(spath, None, "file is empty")
    check_file_size(path, current_limits())
    data, gz = _read_bytes(path)
    if not data:
        raise LoadError(spath, None, "file is empty (the gzip holds no data)")
    if check is not None:
        check(spath, data)
    try:
        s = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        where = "of the decompressed data" if gz else "of the file"
        raise LoadError(
            spath,
            line,
            f"not valid UTF-8 (expected UTF-8 text) at byte {e.start} {where}; re-save the file as UTF-8",
        ) from None
    return s[1:] if s.startswith("\ufeff") else s


def longest_json_string_over(data: bytes, limit: int, piece_bytes: int = 1 << 22) -> int | None:
    """The byte offset of the opening quote of the first string literal of the JSON text
    ``data`` longer than ``limit`` bytes (as written, escapes included), or None. Found with
    numpy, ``piece_bytes`` at a time (4 MiB: at most 32 MiB of positions), before the text is
    decoded: quotes preceded by an odd run of backslashes are escaped; the others alternate
    opening and closing. Invalid JSON gives some answer; the decoder reports it afterwards."""
    import numpy as np

    arr = np.frombuffer(data, np.uint8)
    n = len(arr)
    step = max(int(piece_bytes), 1)
    open_at = -1  # >= 0: inside a string that opened there
    carry = 0  # backslashes ending the previous piece
    for lo in range(0, n, step):
        a = arr[lo : lo + step]
        q = np.flatnonzero(a == 34)
        b = np.flatnonzero(a == 92)
        if len(q):
            run = np.zeros(len(q), np.int64)  # backslashes right before each quote
            if len(b):
                new_run = np.ones(len(b), bool)
                new_run[1:] = np.diff(b) != 1
                run_start = b[new_run][np.cumsum(new_run) - 1]
                k = np.minimum(np.searchsorted(b, q - 1), len(b) - 1)
                run = np.where(b[k] == q - 1, q - run_start[k] + np.where(run_start[k] == 0, carry, 0), 0)
            if q[0] == 0:
                run[0] = carry
            q = q[run % 2 == 0] + lo
        start = 0
        if open_at >= 0 and len(q):
            if q[0] - open_at - 1 > limit:
                return open_at
            open_at, start = -1, 1
        opens, closes = q[start::2], q[start + 1 :: 2]
        long = np.flatnonzero(closes - opens[: len(closes)] - 1 > limit)
        if len(long):
            return int(opens[long[0]])
        if len(opens) > len(closes):
            open_at = int(opens[-1])
        if open_at >= 0 and lo + len(a) - open_at - 1 > limit:
            return open_at
        if len(b) and b[-1] == len(a) - 1:  # the piece ends with a run of backslashes
            gaps = np.flatnonzero(np.diff(b) != 1)
            first = int(b[gaps[-1] + 1]) if len(gaps) else int(b[0])
            carry = len(a) - first + (carry if first == 0 else 0)
        else:
            carry = 0
    return None


_JSON_KEY_BEFORE = re.compile(rb'"((?:[^"\\\n]|\\.){1,100})"\s*:\s*\[?[^:]*$', re.S)


def check_json_document(path: str, data: bytes, limits: LoadLimits) -> None:
    """Refuse a whole-document JSON file (``data``: its bytes, not yet decoded) holding a string
    longer than ``limits.max_line_bytes`` (the limit of one JSONL line), naming the line and, when
    it is a known field name, the field the string belongs to. Raises :class:`LoadError`."""
    at = longest_json_string_over(data, limits.max_line_bytes)
    if at is None:
        return
    m = _JSON_KEY_BEFORE.search(data, max(0, at - 4096), at)
    key = m.group(1).decode("utf-8", "replace") if m else None
    fld = key if key is not None and (key in _KNOWN_FIELDS or _NEG_N.match(key)) else None
    raise LoadError(
        path,
        data.count(b"\n", 0, at) + 1,
        f"a string longer than {limits.max_line_bytes:,} bytes "
        "(LoadLimits.max_line_bytes, env ECI_MAX_LINE_BYTES: the longest line of a text file, or "
        "string of a JSON file)",
        field=fld,
    )


def check_file_size(path: str | os.PathLike, limits: LoadLimits) -> None:
    """Refuse a file read whole into memory (a JSON document) that is larger on disk than
    ``limits.max_decompressed_bytes``, before reading it (a ``.gz`` is checked as it
    decompresses). Raises :class:`LoadError`."""
    size = os.path.getsize(path)
    if size > limits.max_decompressed_bytes:
        raise LoadError(
            str(path),
            None,
            f"the file holds more than {limits.max_decompressed_bytes:,} bytes, "
            "too many to read whole (LoadLimits.max_decompressed_bytes, env ECI_MAX_DECOMPRESSED_BYTES); "
            "save it as JSONL (one record per line), which is read line by line",
        )


# ====================================================================== containers -> rows
def _container(path: Path) -> str:
    """``jsonl``, ``json``, ``csv``, ``tsv``, ``parquet`` or ``trec`` (whitespace run file)."""
    name = _strip_gz(path.name.lower())
    ext = name.rpartition(".")[2] if "." in name else ""
    if ext in ("jsonl", "ndjson"):
        return "jsonl"
    if ext == "json":
        return "json"
    if ext in ("parquet", "pq"):
        return "parquet"
    if ext in ("trec", "run"):
        return "trec"
    spath = str(path)
    if os.path.getsize(path) == 0:
        raise LoadError(spath, None, "file is empty")
    with _open_file(path) as f:
        if f.read(4) == b"PAR1":
            return "parquet"
    first = None
    for _, s in _Lines(path):
        if s.strip():
            first = s
            break
    if first is None:
        raise LoadError(spath, None, "file has no data (only blank lines)")
    if _looks_like_trec(first):
        return "trec"
    if ext == "csv":
        return "csv"
    if ext in ("tsv", "tab"):
        return "tsv"
    head = first.lstrip()
    if head.startswith("{"):
        return "jsonl"
    if head.startswith("["):
        return "json"
    if "\t" in first:
        return "tsv"
    if "," in first:
        return "csv"
    raise LoadError(
        spath,
        None,
        f"cannot tell what kind of file this is (expected JSONL, JSON, CSV, TSV, Parquet "
        f"or a TREC run); accepted formats: {_accepted()}",
    )


def _looks_like_trec(line: str) -> bool:
    parts = line.split()
    if len(parts) != 6:
        return False
    try:
        int(parts[3])
        float(parts[4])
    except ValueError:
        return False
    return True


def _rows(path: Path, container: str, progress: Progress | None = None) -> Iterator[tuple[int, dict]]:
    """``(line_or_row, record dict)`` for a JSONL/JSON/CSV/TSV/Parquet file, streaming where possible."""
    if container == "jsonl":
        return _jsonl_rows(path, progress)
    if container == "json":
        return _json_rows(path)
    if container in ("csv", "tsv"):
        return _csv_rows(path, "," if container == "csv" else "\t", progress)
    if container == "parquet":
        return _parquet_rows(path, progress)
    raise LoadError(str(path), None, f"a {container} file has no records of fields")


def _jsonl_rows(path: Path, progress: Progress | None) -> Iterator[tuple[int, dict]]:
    spath = str(path)
    any_row = False
    for no, obj in _jsonl_objects(spath, _Lines(path, progress)):
        any_row = True
        yield no, obj
    if not any_row:
        raise LoadError(spath, None, "file has no data (only blank lines)")


def _jsonl_objects(spath: str, lines: Iterable[tuple[int, str]]) -> Iterator[tuple[int, dict]]:
    """One JSON object per non-blank line, each checked (invalid JSON, surrogates, not an object)."""
    loads = json.loads
    for no, s in lines:
        if not s.strip():
            continue
        try:
            obj = loads(s)
        except Exception:
            obj = _loads(spath, no, s)  # raises the one-line error
        if "\\" in s:
            _check_surrogates(spath, no, s, obj)
        if not isinstance(obj, dict):
            raise LoadError(spath, no, f"expected one JSON object {{...}} per line, got {_kind(obj)}")
        yield no, obj


_WS = re.compile(r"[ \t\n\r]*")
_BEIR_ID = re.compile(r'\s*\{\s*"_id"\s*:\s*"((?:[^"\\]|\\.)*)"')


def _json_rows(path: Path) -> Iterator[tuple[int, dict]]:
    """A JSON array of objects (real line numbers), an object of equal-length lists (row
    numbers), a single object, or JSONL saved with a ``.json`` name."""
    spath = str(path)
    limits = current_limits()
    s = _read_text(path, lambda sp, data: check_json_document(sp, data, limits))
    i = _WS.match(s, 0).end()
    if i == len(s):
        raise LoadError(spath, None, "file has no data (only blank lines)")
    if s[i] == "[":
        yield from _json_array(spath, s, i)
        return
    try:
        obj = json.loads(s)
    except json.JSONDecodeError as e:
        if e.msg == "Extra data":  # one object per line: JSONL with a .json name
            yield from _jsonl_rows(path, None)
            return
        raise LoadError(spath, e.lineno, f"invalid JSON: {e.msg} at column {e.colno}") from None
    except RecursionError:
        raise LoadError(spath, None, "JSON nested too deeply to read") from None
    except ValueError:
        raise LoadError(spath, None, _DIGITS_MSG) from None
    _check_surrogates(spath, None, s, obj)
    if not isinstance(obj, dict):
        raise LoadError(spath, 1, f"expected a JSON array of objects or an object of lists, got {_kind(obj)}")
    cols = list(obj)
    if cols and all(isinstance(obj[c], list) for c in cols) and len({len(obj[c]) for c in cols}) == 1:
        n = len(obj[cols[0]])
        if n == 0:
            raise LoadError(spath, None, "file has no data rows (every column is an empty list)")
        for r in range(n):
            yield r + 1, {c: obj[c][r] for c in cols}
        return
    if cols and all(isinstance(obj[c], list) for c in cols):
        lens = ", ".join(f"{c}: {len(obj[c])}" for c in cols)
        raise LoadError(spath, None, f"an object of lists needs lists of equal length, got {lens}")
    yield 1, obj


def _json_array(spath: str, s: str, i: int) -> Iterator[tuple[int, dict]]:
    dec = json.JSONDecoder()
    n = len(s)
    i = _WS.match(s, i + 1).end()
    line, pos = 1 + s.count("\n", 0, i), i
    if i < n and s[i] == "]":
        raise LoadError(spath, line, "file has no data rows (the JSON array is empty)")
    while True:
        line += s.count("\n", pos, i)
        pos = i
        try:
            obj, end = dec.raw_decode(s, i)
        except json.JSONDecodeError as e:
            raise LoadError(spath, e.lineno, f"invalid JSON: {e.msg} at column {e.colno}") from None
        except RecursionError:
            raise LoadError(spath, line, "JSON nested too deeply to read") from None
        except ValueError:
            raise LoadError(spath, line, _DIGITS_MSG) from None
        _check_surrogates(spath, line, s[i:end], obj)
        if not isinstance(obj, dict):
            raise LoadError(spath, line, f"expected a JSON array of objects, got {_kind(obj)} as an element")
        yield line, obj
        i = _WS.match(s, end).end()
        if i < n and s[i] == ",":
            i = _WS.match(s, i + 1).end()
            continue
        if i < n and s[i] == "]":
            rest = _WS.match(s, i + 1).end()
            if rest != n:
                ln = 1 + s.count("\n", 0, rest)
                raise LoadError(spath, ln, "invalid JSON: Extra data after the closing ']'")
            return
        ln = 1 + s.count("\n", 0, i)
        col = i - (s.rfind("\n", 0, i) + 1) + 1
        what = "Expecting ',' delimiter" if i < n else "Expecting ']' (the array is not closed)"
        raise LoadError(spath, ln, f"invalid JSON: {what} at column {col}")


def _csv_rows(path: Path, delim: str, progress: Progress | None) -> Iterator[tuple[int, dict]]:
    import csv
    import sys

    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    spath = str(path)
    lines = _Lines(path, progress)
    it = iter(lines)
    max_rec = current_limits().max_line_bytes
    holder = {"no": 0, "first": 0, "bytes": 0, "lines": 0}  # bytes and lines of the record being read

    def text_lines() -> Iterator[str]:
        for no, s in it:
            holder["no"] = no
            if not holder["lines"]:
                holder["first"] = no
            # a quoted cell may span lines: the record, like a JSONL line, holds at most max_line_bytes
            holder["bytes"] += (len(s) if s.isascii() else len(s.encode("utf-8", "surrogatepass"))) + (
                1 if holder["lines"] else 0
            )
            holder["lines"] += 1
            if holder["bytes"] > max_rec:
                raise LoadError(
                    spath,
                    holder["first"],
                    f"record longer than {max_rec:,} bytes (a quoted cell "
                    "spans its lines; LoadLimits.max_line_bytes, env ECI_MAX_LINE_BYTES)",
                )
            yield s + "\n"

    reader = csv.reader(text_lines(), delimiter=delim)
    header: list[str] | None = None
    start = 1
    any_row = False
    try:
        for cells in reader:
            holder["bytes"] = holder["lines"] = 0  # the next lines read belong to the next record
            if header is None:
                header = [c.strip() for c in cells]
                if not any(header):
                    raise LoadError(spath, holder["no"], "the first line must be a header naming the columns")
                dup = [c for c, k in Counter(header).items() if k > 1]
                if dup:
                    raise LoadError(
                        spath, holder["no"], f"duplicate column name(s) in the header: {', '.join(dup)}"
                    )
                start = holder["no"] + 1
                continue
            line = start
            start = holder["no"] + 1
            if not cells or (len(cells) == 1 and not cells[0].strip()):
                continue
            if len(cells) != len(header):
                sep = "comma" if delim == "," else "tab"
                raise LoadError(
                    spath,
                    line,
                    f"row has {_plural(len(cells), 'field')} but the header has "
                    f"{len(header)} ({sep}-separated; quote texts that contain a {sep})",
                )
            any_row = True
            yield line, dict(zip(header, cells))
    except csv.Error as e:
        raise LoadError(spath, holder["no"], f"cannot parse the row: {e}") from None
    if header is None:
        raise LoadError(spath, None, "file has no data (only blank lines)")
    if not any_row:
        raise LoadError(spath, None, "file has a header but no data rows")


def _shown_column(name: str, index: int) -> tuple[str | None, str]:
    """``(field for the message, extra words)`` of a Parquet column: a known field name is shown,
    any other is only numbered (a column name is file content, never echoed)."""
    if name in _KNOWN_FIELDS or _NEG_N.match(name):
        return name, ""
    return None, f" (column {index + 1})"


def arrow_value_bytes(array) -> Any:
    """Per element of a pyarrow ``Array``, the bytes its value takes once decoded, computed
    without decoding it: a string/binary value its length, a dictionary-encoded one its entry's
    length (so a 70 MiB dictionary entry named by 40 rows counts 40 times, read once), a list or
    struct the sum over its items, a null 0, any other value its fixed width (8 when it has none).
    Returns an int64 numpy array of ``len(array)``."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    def ints(a) -> Any:  # an integer Arrow array as int64, nulls 0 (pyarrow's own converters import pandas)
        v = np_of(a)
        return (np.nan_to_num(v, nan=0.0) if a.null_count else v).astype(np.int64)

    t, n = array.type, len(array)
    if n == 0:
        return np.zeros(0, np.int64)
    if pa.types.is_dictionary(t):
        entry = arrow_value_bytes(array.dictionary)
        out = entry[ints(array.indices)] if len(entry) else np.zeros(n, np.int64)
    elif (
        pa.types.is_string(t)
        or pa.types.is_binary(t)
        or pa.types.is_large_string(t)
        or pa.types.is_large_binary(t)
        or pa.types.is_fixed_size_binary(t)
    ):
        out = ints(pc.binary_length(array))
    elif getattr(pa.types, "is_string_view", lambda _: False)(t) or getattr(
        pa.types, "is_binary_view", lambda _: False
    )(t):
        out = ints(pc.binary_length(array.cast(pa.large_binary())))
    elif pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_map(t):
        child = arrow_value_bytes(array.values)  # the whole child: offsets index it directly
        cs = np.concatenate([np.zeros(1, np.int64), np.cumsum(child)])
        offs = ints(array.offsets)
        out = cs[offs[1:]] - cs[offs[:-1]]
    elif pa.types.is_fixed_size_list(t):
        size = t.list_size
        child = arrow_value_bytes(array.values)[
            array.offset * size : (array.offset + n) * size
        ]  # null slots too
        out = child.reshape(n, size).sum(axis=1) if size else np.zeros(n, np.int64)
    elif pa.types.is_struct(t):
        out = np.zeros(n, np.int64)
        for f in array.flatten():
            out += arrow_value_bytes(f)
    else:
        try:
            width = max(t.bit_width // 8, 1)
        except ValueError:
            width = 8
        out = np.full(n, width, np.int64)
    if array.null_count:
        out = np.where(np_of(array.is_null()), 0, out)
    return out


def _plain_type(t: Any) -> Any:
    """``t`` with every dictionary type replaced by its value type (lists and structs recursed)."""
    import pyarrow as pa

    if pa.types.is_dictionary(t):
        return _plain_type(t.value_type)
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        f = t.value_field
        make = pa.large_list if pa.types.is_large_list(t) else pa.list_
        return make(pa.field(f.name, _plain_type(f.type), f.nullable))
    if pa.types.is_struct(t):
        return pa.struct([pa.field(f.name, _plain_type(f.type), f.nullable) for f in t])
    return t


def _decoded_rows(batch: Any) -> list[dict]:
    """``batch.to_pylist()``, its dictionary columns decoded by Arrow first (several times faster
    than converting dictionary values one by one; done only after the batch's size was checked)."""
    cols = []
    for col in batch.columns:
        plain = _plain_type(col.type)
        if plain != col.type:
            try:
                col = col.cast(plain)
            except Exception:  # a type Arrow cannot cast: to_pylist decodes the dictionary itself
                pass
        cols.append(col)
    import pyarrow as pa

    return pa.RecordBatch.from_arrays(cols, names=batch.schema.names).to_pylist()


def check_parquet_metadata(pf: Any, path: str, limits: LoadLimits) -> None:
    """Refuse a Parquet file from its footer alone, before any page is decompressed: a column
    chunk, or the whole file, whose uncompressed size (dictionary pages included) is over
    ``limits.max_decompressed_bytes``, or a row group that expands more than
    ``limits.max_compression_ratio`` times once over ``ratio_grace_bytes`` (the rule of a ``.gz``,
    per row group: a zstd page holding a 70 MiB string of one repeated byte is a few KB; the
    message names the row group's largest column). ``pf`` is a ``pyarrow.parquet.ParquetFile``.
    Raises :class:`LoadError` (``PATH: [field 'F': ]message``)."""
    md = pf.metadata
    lim = limits.max_decompressed_bytes
    ratio, grace = limits.max_compression_ratio, limits.ratio_grace_bytes
    names = [md.schema.column(j).path.split(".")[0] for j in range(md.num_columns)]
    top = list(dict.fromkeys(names))

    def shown(j: int) -> tuple[str | None, str]:
        return _shown_column(names[j], top.index(names[j]))

    total = 0
    for i in range(md.num_row_groups):
        rg = md.row_group(i)
        sizes = [rg.column(j).total_uncompressed_size for j in range(rg.num_columns)]
        packed = sum(rg.column(j).total_compressed_size for j in range(rg.num_columns))
        for j, size in enumerate(sizes):
            if size > lim:
                fld, extra = shown(j)
                raise LoadError(
                    path,
                    None,
                    f"a column chunk{extra} decompresses to more than {lim:,} bytes "
                    "(LoadLimits.max_decompressed_bytes, env ECI_MAX_DECOMPRESSED_BYTES)",
                    field=fld,
                )
        unpacked = sum(sizes)
        total += unpacked
        if unpacked > grace and unpacked > ratio * max(packed, 1):
            fld, extra = shown(max(range(len(sizes)), key=sizes.__getitem__))
            raise LoadError(
                path,
                None,
                f"a row group expands more than {ratio:g}x when decompressed (its largest "
                f"column{extra or ' is this one'}; a compression bomb?); LoadLimits.max_compression_ratio, "
                "env ECI_MAX_COMPRESSION_RATIO",
                field=fld,
            )
    if total > lim:
        raise LoadError(
            path,
            None,
            f"the Parquet data decompresses to more than {lim:,} bytes "
            "(LoadLimits.max_decompressed_bytes, env ECI_MAX_DECOMPRESSED_BYTES)",
        )


class ParquetDecodedLimits:
    """The :class:`LoadLimits` of a Parquet file checked batch by batch before a batch is
    decoded into Python values (with :func:`arrow_value_bytes`): a row holds at most
    ``max_line_bytes`` (the limit of one JSONL line), the file decodes to at most
    ``max_decompressed_bytes``, and to at most ``max_compression_ratio`` times its size on disk
    once more than ``ratio_grace_bytes`` came out (a 3.4 KB file whose 40 rows name one 70 MiB
    dictionary entry is refused after reading that entry once, never decoding it 40 times)."""

    def __init__(self, path: str, file_bytes: int, limits: LoadLimits, names: list[str] | None = None):
        self.path, self.file_bytes, self.lim = path, max(file_bytes, 1), limits
        self.names = names  # the file's columns, to number an unknown one in messages (batches may hold some)
        self.total = 0

    def check(self, batch: Any, first_row: int) -> None:
        """Raise :class:`LoadError` when ``batch`` (a ``pyarrow.RecordBatch`` whose first row is
        row ``first_row``, 1-based) breaks a limit; the message names the row and the field."""
        import numpy as np

        if batch.num_rows == 0:
            return
        lim = self.lim
        cols = [arrow_value_bytes(batch.column(j)) for j in range(batch.num_columns)]
        rows = np.sum(cols, axis=0) if cols else np.zeros(batch.num_rows, np.int64)
        over = np.flatnonzero(rows > lim.max_line_bytes)
        if len(over):
            r = int(over[0])
            cells = [int(c[r]) for c in cols]
            j = int(np.argmax(cells))
            name = batch.schema.names[j]
            fld, extra = _shown_column(
                name, self.names.index(name) if self.names and name in self.names else j
            )
            what = "a cell" if cells[j] > lim.max_line_bytes else "a row (its largest cell here)"
            raise LoadError(
                self.path,
                first_row + r,
                f"{what}{extra} longer than {lim.max_line_bytes:,} bytes once "
                "decoded (LoadLimits.max_line_bytes, env ECI_MAX_LINE_BYTES: the longest line, or "
                "Parquet row)",
                field=fld,
            )
        cum = self.total + np.cumsum(rows)
        bad = np.flatnonzero(cum > lim.max_decompressed_bytes)
        if len(bad):
            raise LoadError(
                self.path,
                first_row + int(bad[0]),
                "the Parquet data decodes to more than "
                f"{lim.max_decompressed_bytes:,} bytes (LoadLimits.max_decompressed_bytes, "
                "env ECI_MAX_DECOMPRESSED_BYTES)",
            )
        ratio = np.flatnonzero(
            (cum > lim.ratio_grace_bytes) & (cum > lim.max_compression_ratio * self.file_bytes)
        )
        if len(ratio):
            raise LoadError(
                self.path,
                first_row + int(ratio[0]),
                "the Parquet data expands more than "
                f"{lim.max_compression_ratio:g}x its file size once decoded (a compression bomb?); "
                "LoadLimits.max_compression_ratio, env ECI_MAX_COMPRESSION_RATIO",
            )
        self.total = int(cum[-1])


def _parquet_rows(
    path: Path, progress: Progress | None, first_only: bool = False
) -> Iterator[tuple[int, dict]]:
    """The rows of a Parquet file, checked by :class:`ParquetDecodedLimits` before they become
    Python values. Per row group: first its string columns with dictionary pages, read as Arrow
    dictionaries (an entry named by many rows is held once), so their decoded size is known
    before any of it is decoded; then the row group 8,192 rows at a time, as before (each batch
    checked whole: rows, totals). ``first_only``: the first row alone, reading only the first
    pages (format detection)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    spath = str(path)
    size = os.path.getsize(path)
    if size == 0:
        raise LoadError(spath, None, "file is empty")
    limits = current_limits()
    _use_system_pool()
    try:
        # under data roots every open goes through open_within (resolved, checked, no link followed)
        source = (lambda: path) if _ROOTS.get() is None else (lambda: _open_file(path))
        pf = pq.ParquetFile(source())
        md = pf.metadata
        check_parquet_metadata(pf, spath, limits)
        dict_paths = {
            md.row_group(i).column(j).path_in_schema
            for i in range(md.num_row_groups)
            for j in range(md.num_columns)
            if md.row_group(i).column(j).has_dictionary_page
            and md.row_group(i).column(j).physical_type == "BYTE_ARRAY"
        }
        pf_dict = pq.ParquetFile(source(), read_dictionary=sorted(dict_paths)) if dict_paths else None
    except (pa.ArrowException, OSError) as e:
        raise LoadError(spath, None, f"not a valid Parquet file ({e})") from None
    total = md.num_rows
    if total == 0:
        raise LoadError(spath, None, "file has no data rows")
    names = pf.schema_arrow.names
    dict_top = [n for n in names if any(p == n or p.startswith(n + ".") for p in dict_paths)]
    budget = ParquetDecodedLimits(spath, size, limits, names)
    pre = ParquetDecodedLimits(spath, size, limits, names)  # the dictionary columns alone, a row group ahead
    row = 0
    try:
        if first_only:
            for batch in (pf_dict or pf).iter_batches(batch_size=1):
                budget.check(batch, 1)
                yield 1, _decoded_rows(batch)[0]
                return
        for i in range(md.num_row_groups):
            if dict_top:
                # one batch for the row group: a dictionary read of pages that fell back to plain
                # values grows its dictionary batch after batch (quadratic in smaller batches)
                for batch in pf_dict.iter_batches(
                    batch_size=max(md.row_group(i).num_rows, 1), row_groups=[i], columns=dict_top
                ):
                    pre.check(batch, row + 1)
                    del batch
                _release_arrow_memory()  # the dictionary read's buffers, before the rows are decoded
            for batch in pf.iter_batches(batch_size=8192, row_groups=[i]):
                budget.check(batch, row + 1)
                for rec in batch.to_pylist():
                    row += 1
                    yield row, rec
                if progress:
                    progress(f"reading {path.name}", row, total)
    except pa.ArrowException as e:
        raise LoadError(spath, row + 1, f"cannot read the Parquet data ({e})") from None


def _peek(rows: Iterator[tuple[int, dict]]) -> tuple[tuple[int, dict], Iterator[tuple[int, dict]]]:
    first = next(rows)

    def chained() -> Iterator[tuple[int, dict]]:
        yield first
        yield from rows

    return first, chained()


# ====================================================================== detection
def _maybe_list(v: Any) -> bool:
    if isinstance(v, (list, tuple)):
        return True
    return isinstance(v, str) and v.lstrip().startswith("[") and v.rstrip().endswith("]")


def _maybe_dict(v: Any) -> bool:
    if isinstance(v, dict):
        return True
    return isinstance(v, str) and v.lstrip().startswith("{")


def _detect_row(row: dict) -> str | None:
    keys = set(row)
    if "positive_passages" in keys or "negative_passages" in keys:
        return "tevatron"
    if "negative_ids" in keys:
        return "negative-ids"
    if "neg" in keys and "pos" in keys:
        # msmarco-hn rows carry a qid and no query text; a row with a query is BGE, even when
        # its 'neg' is malformed (an object): the BGE parser then names the bad field
        if "query" not in keys and (_maybe_dict(row.get("neg")) or "qid" in keys):
            return "msmarco-hn"
        return "bge"
    if any(_NEG_N.match(str(k)) for k in keys):
        return "st-ntuple"
    if "negative" in keys:
        return "st-triplet"
    if "labels" in keys:
        return "st-labeled-list"
    if "scores" in keys and any(_maybe_list(row[k]) for k in keys if k != "scores"):
        return "st-labeled-list"
    if "label" in keys or "score" in keys:
        return "st-labeled-pair"
    return None


def detect_format(path: str | os.PathLike) -> str:
    """The format name of a file or directory (one of :data:`FORMATS`).

    A directory with ``corpus.jsonl`` is ``beir``; a file of ``qid Q0 docid rank score tag`` lines
    is ``trec-run``; otherwise the fields of the first record decide (see the module docstring).
    Raises LoadError listing the accepted formats when nothing matches."""
    p = Path(path)
    spath = str(path)
    if not p.exists():
        raise _missing(p, spath)
    if p.is_dir():
        if _beir_file(p, "corpus.jsonl") is not None:
            return "beir"
        raise LoadError(
            spath,
            None,
            "a directory must be a BEIR directory (corpus.jsonl, queries.jsonl, qrels/, "
            "negatives/); give files by name otherwise",
        )
    try:
        kind = _container(p)
        if kind == "trec":
            return "trec-run"
        (line, row), _ = _peek(
            _parquet_rows(p, None, first_only=True) if kind == "parquet" else _rows(p, kind)
        )
    except OSError as e:
        raise LoadError(spath, None, f"cannot read the file ({e.strerror or e})") from None
    fmt = _detect_row(row)
    if fmt is None:
        found = _field_names(row)
        raise LoadError(
            spath,
            line,
            f"cannot detect the format from the fields {found}; accepted formats: "
            f"{_accepted()}; or pass format= (--format) to choose one",
        )
    return fmt


# ====================================================================== sentence-transformers
@dataclass
class _QB:
    """One query being assembled from several rows of an id-less (sentence-transformers) file."""

    qid: str | None
    query: str
    line: int
    positives: dict[str, float | None] = field(default_factory=dict)
    groups: dict[Any, list[tuple[str, float | None]]] = field(default_factory=dict)

    def record(self) -> QueryRecord:
        # multiset union over the positive groups: the miner repeats one list per positive
        final: list[PassageRef] = []
        have: Counter = Counter()
        for negs in self.groups.values():
            c: Counter = Counter()
            for t, s in negs:
                c[t] += 1
                if c[t] > have[t]:
                    have[t] += 1
                    final.append(PassageRef(None, t, s))
        pos = [PassageRef(None, t, s) for t, s in self.positives.items()]
        return QueryRecord(self.qid, self.query, pos, final, self.line)


def _st_columns(path: str, line: int, row: dict, fmt: str) -> tuple[str, str, str | None]:
    """(anchor column, positive/passage column, query-id column or None) of an ST file."""
    cols = [str(c) for c in row]
    qid_col = next((c for c in QUERY_ID_NAMES if c in cols), None)
    rest = [
        c
        for c in cols
        if c not in _ROLE_COLUMNS and not _NEG_N.match(c) and c != qid_col and c not in _INDEX_COLUMNS
    ]
    anchor = next((c for c in ANCHOR_NAMES if c in rest), rest[0] if rest else None)
    if anchor is None:
        raise LoadError(
            path,
            line,
            f"no anchor (query) column for {fmt}: expected one of "
            f"{', '.join(ANCHOR_NAMES[:4])}… (fields found: {_field_names(cols)})",
            field="anchor",
        )
    rest = [c for c in rest if c != anchor]
    if fmt == "st-labeled-list":
        lists = [c for c in rest if _maybe_list(row[c])]
        rest = lists or rest
    positive = next((c for c in POSITIVE_NAMES if c in rest), rest[0] if rest else None)
    if positive is None:
        what = "passage" if fmt in ("st-labeled-pair", "st-labeled-list") else "positive"
        raise LoadError(
            path,
            line,
            f"no {what} column for {fmt}: expected one of "
            f"{', '.join(POSITIVE_NAMES[:4])}… (fields found: {_field_names(cols)})",
            field=what,
        )
    return anchor, positive, qid_col


def _parse_st(
    path: str, fmt: str, rows: Iterator[tuple[int, dict]]
) -> tuple[list[QueryRecord], int, dict[str, int]]:
    (line0, row0), rows = _peek(rows)
    anchor, positive, qid_col = _st_columns(path, line0, row0, fmt)
    neg_cols: list[str] = []
    if fmt == "st-ntuple":
        neg_cols = sorted(
            (c for c in map(str, row0) if _NEG_N.match(c)), key=lambda c: int(_NEG_N.match(c).group(1))
        )
        if not neg_cols:
            raise LoadError(
                path,
                line0,
                f"missing required field (fields found: {_field_names(row0)})",
                field="negative_1",
            )
    label_col = "label" if fmt == "st-labeled-pair" else "labels"
    use_labels = label_col in row0
    builders: dict[tuple[str | None, str], _QB] = {}
    n = 0
    line = None
    try:
        for line, row in rows:
            n += 1
            a = _text(path, line, _need(path, line, row, anchor), anchor)
            qid = (
                _ident(path, line, row[qid_col], qid_col) if qid_col and _present(row.get(qid_col)) else None
            )
            key = (qid, a) if qid is not None else (None, a)
            b = builders.get(key)
            new = b is None
            if new:
                b = builders[key] = _QB(qid, a, line)
            if fmt == "st-triplet":
                p = _text(path, line, _need(path, line, row, positive), positive)
                neg = _text(path, line, _need(path, line, row, "negative"), "negative")
                ps = ns = None
                if _present(row.get("scores")):
                    ps, ns = _num_list(
                        path, line, row["scores"], "scores", 2, "[positive score, negative score]"
                    )
                b.positives.setdefault(p, ps)
                b.groups.setdefault(p, []).append((neg, ns))
            elif fmt == "st-ntuple":
                p = _text(path, line, _need(path, line, row, positive), positive)
                negs = [_text(path, line, _need(path, line, row, c), c) for c in neg_cols]
                sc: list[float | None] = [None] * (len(negs) + 1)
                if _present(row.get("scores")):
                    sc = _num_list(
                        path,
                        line,
                        row["scores"],
                        "scores",
                        len(negs) + 1,
                        f"1 positive score + {len(negs)} negative scores",
                    )
                b.positives.setdefault(p, sc[0])
                # the same (anchor, positive) on two rows is one list (its repeats are duplicates)
                b.groups.setdefault(p, []).extend(zip(negs, sc[1:]))
            elif fmt == "st-labeled-pair":
                t = _text(path, line, _need(path, line, row, positive), positive)
                if use_labels:
                    is_pos = _num(path, line, _need(path, line, row, "label"), "label") > 0
                    s = _num(path, line, row["score"], "score") if _present(row.get("score")) else None
                else:
                    s = _num(path, line, _need(path, line, row, "score"), "score")
                    is_pos = new  # the miner writes a query's positive first
                if is_pos:
                    b.positives.setdefault(t, s)
                else:
                    b.groups.setdefault(None, []).append((t, s))
            else:  # st-labeled-list
                docs = _text_list(path, line, _need(path, line, row, positive), positive)
                if not docs:
                    raise LoadError(
                        path, line, "empty list; expected [positive, negative, …]", field=positive
                    )
                if use_labels:
                    labels = _num_list(
                        path,
                        line,
                        _need(path, line, row, "labels"),
                        "labels",
                        len(docs),
                        f"one per item of '{positive}'",
                    )
                    scores: list[float | None] = [None] * len(docs)
                    if _present(row.get("scores")):
                        scores = _num_list(
                            path, line, row["scores"], "scores", len(docs), f"one per item of '{positive}'"
                        )
                else:
                    scores = _num_list(
                        path,
                        line,
                        _need(path, line, row, "scores"),
                        "scores",
                        len(docs),
                        f"one per item of '{positive}'",
                    )
                    labels = [1.0] + [0.0] * (len(docs) - 1)
                pos_here = []
                negs_here = []
                for d, lab, s in zip(docs, labels, scores):
                    if lab > 0:
                        pos_here.append(d)
                        b.positives.setdefault(d, s)
                    else:
                        negs_here.append((d, s))
                b.groups.setdefault(tuple(pos_here), []).extend(negs_here)
    except LoadError:
        raise
    except Exception as err:  # any failure inside a record: one line at that record
        raise _unexpected(path, line, err) from None
    notes = {}
    if fmt == "st-labeled-pair" and not use_labels:
        notes[SCORE_ONLY_NOTE] = len(builders)
    return [b.record() for b in builders.values()], n, notes


# ====================================================================== BGE, Tevatron
def _parse_rows(
    path: str, rows: Iterator[tuple[int, dict]], record: Callable[[str, int, dict], QueryRecord]
) -> tuple[list[QueryRecord], int]:
    """One :class:`QueryRecord` per row from ``record(path, line, row)``; any failure inside a
    record becomes one line at that record. Returns the records and the rows read."""
    out: list[QueryRecord] = []
    n = 0
    line = None
    try:
        for line, row in rows:
            n += 1
            out.append(record(path, line, row))
    except LoadError:
        raise
    except Exception as err:  # any failure inside a record: one line at that record
        raise _unexpected(path, line, err) from None
    return out, n


def _bge_record(path: str, line: int, row: dict) -> QueryRecord:
    q = _text(path, line, _need(path, line, row, "query"), "query")
    pos = _text_list(path, line, _need(path, line, row, "pos"), "pos")
    neg = _text_list(path, line, _need(path, line, row, "neg"), "neg")
    ps = ns = None
    if _present(row.get("pos_scores")):
        ps = _num_list(path, line, row["pos_scores"], "pos_scores", len(pos), "one per item of 'pos'")
    if _present(row.get("neg_scores")):
        ns = _num_list(path, line, row["neg_scores"], "neg_scores", len(neg), "one per item of 'neg'")
    qid = None
    for k in ("query_id", "qid"):
        if _present(row.get(k)):
            qid = _ident(path, line, row[k], k)
            break
    return QueryRecord(qid, q, _refs(pos, ps), _refs(neg, ns), line)


def _parse_bge(path: str, rows: Iterator[tuple[int, dict]]) -> tuple[list[QueryRecord], int]:
    return _parse_rows(path, rows, _bge_record)


def _tevatron_passages(path: str, line: int, v: Any, fld: str) -> list[PassageRef]:
    items = _as_list(path, line, v, fld, "a list of passages {docid, title, text}")
    out = []
    for i, p in enumerate(items):
        if type(p) is dict:  # fast path: well-formed passage
            body, title, pid = p.get("text"), p.get("title"), p.get("docid")
            if (
                type(body) is str
                and body
                and not body.isspace()
                and (title is None or type(title) is str)
                and (type(pid) is str and pid.strip() == pid and pid or type(pid) is int or pid is None)
                and "score" not in p
            ):
                t = title.strip() if title else ""
                out.append(
                    _tuple_new(
                        PassageRef, (None if pid is None else str(pid), f"{t} {body}" if t else body, None)
                    )
                )
                continue
        f = f"{fld}[{i}]"
        if isinstance(p, str) and p.lstrip().startswith("{"):
            p = _loads(path, line, p, f)
        if not isinstance(p, dict):
            raise LoadError(
                path, line, f"expected a passage object {{docid, title, text}}, got {_kind(p)}", field=f
            )
        if "text" not in p:
            raise LoadError(
                path, line, f"missing required field (fields found: {_field_names(p)})", field=f"{f}.text"
            )
        body = p["text"]
        if body is not None and not isinstance(body, str):
            raise LoadError(path, line, f"expected a string, got {_kind(body)}", field=f"{f}.text")
        title = p.get("title")
        if title is not None and not isinstance(title, str):
            raise LoadError(path, line, f"expected a string, got {_kind(title)}", field=f"{f}.title")
        title = (title or "").strip()
        body = body or ""
        text = f"{title} {body}" if title and body.strip() else (title or body)
        text = _text(path, line, text if text.strip() else (None if p["text"] is None else ""), f"{f}.text")
        pid = _ident(path, line, p["docid"], f"{f}.docid") if _present(p.get("docid")) else None
        sc = p.get("score")
        sc = (
            _num(path, line, sc, f"{f}.score")
            if isinstance(sc, (int, float)) and not isinstance(sc, bool)
            else None
        )
        out.append(PassageRef(pid, text, sc))
    return out


def _tevatron_record(path: str, line: int, row: dict) -> QueryRecord:
    q = _text(path, line, _need(path, line, row, "query"), "query")
    qid = _ident(path, line, row["query_id"], "query_id") if _present(row.get("query_id")) else None
    pos = _tevatron_passages(path, line, _need(path, line, row, "positive_passages"), "positive_passages")
    neg = _tevatron_passages(path, line, _need(path, line, row, "negative_passages"), "negative_passages")
    return QueryRecord(qid, q, pos, neg, line)


def _parse_tevatron(path: str, rows: Iterator[tuple[int, dict]]) -> tuple[list[QueryRecord], int]:
    return _parse_rows(path, rows, _tevatron_record)


# ====================================================================== id-based sources
@dataclass
class _IdRun:
    """Negatives given by id (one system of a TREC run / negative-ids / msmarco-hn file)."""

    name: str
    path: str
    format: str
    rows_read: int = 0
    negs: dict[str, list[tuple[str, float | None]]] = field(default_factory=dict)  # qid -> [(pid, score)]
    qline: dict[str, int] = field(default_factory=dict)  # first line of each query id
    pline: dict[str, int] = field(default_factory=dict)  # first line of each negative id


def _parse_trec(path: Path, stem: str, progress: Progress | None = None) -> list[_IdRun]:
    spath = str(path)
    hits, first, n = _trec_scan(spath, _Lines(path, progress))
    return _trec_runs(spath, stem, hits, first, n)


def _trec_scan(spath: str, lines: Iterable[tuple[int, str]]) -> tuple[dict, dict, int]:
    """Check and collect TREC lines: ``(tag -> qid -> [(rank, order, pid, score)], first lines, n)``."""
    hits: dict[
        str, dict[str, list[tuple[int, int, str, float]]]
    ] = {}  # tag -> qid -> [(rank, order, pid, score)]
    first: dict[str, tuple[dict, dict]] = {}
    n = 0
    no = None
    try:
        for no, s in lines:
            if not s.strip() or s.lstrip().startswith("#"):
                continue
            parts = s.split()
            if len(parts) != 6:
                raise LoadError(
                    spath,
                    no,
                    f"expected 6 whitespace-separated fields 'qid Q0 docid rank score tag', "
                    f"found {len(parts)}",
                )
            qid, _, pid, rank_s, score_s, tag = parts
            try:
                rank = int(rank_s)
            except ValueError:
                raise LoadError(spath, no, "expected an integer rank", field="rank") from None
            try:
                score = float(score_s)
            except ValueError:
                raise LoadError(spath, no, "expected a number", field="score") from None
            if not math.isfinite(score):
                _finite(spath, no, score, "score")
            n += 1
            per = hits.setdefault(tag, {})
            qline, pline = first.setdefault(tag, ({}, {}))
            qline.setdefault(qid, no)
            pline.setdefault(pid, no)
            per.setdefault(qid, []).append((rank, n, pid, score))
    except LoadError:
        raise
    except Exception as err:  # any failure inside a record: one line at that record
        raise _unexpected(spath, no, err) from None
    return hits, first, n


def _trec_runs(spath: str, stem: str, hits: dict, first: dict, n: int) -> list[_IdRun]:
    if n == 0:
        raise LoadError(spath, None, "file has no data (only blank or comment lines)")
    runs = []
    for tag, per in hits.items():
        name = stem if len(hits) == 1 else f"{stem}:{tag}"
        qline, pline = first[tag]
        run = _IdRun(name, spath, "trec-run", n, qline=qline, pline=pline)
        for qid, lst in per.items():
            lst.sort()
            run.negs[qid] = [(pid, sc) for _, _, pid, sc in lst]
        runs.append(run)
    return runs


def _parse_negative_ids(
    path: Path, stem: str, container: str, progress: Progress | None = None
) -> list[_IdRun]:
    spath = str(path)
    run = _IdRun(stem, spath, "negative-ids")
    run.rows_read = _negative_ids_scan(spath, run, _rows(path, container, progress))
    return [run]


def _negative_ids_scan(spath: str, run: _IdRun, rows: Iterable[tuple[int, dict]]) -> int:
    """Check and collect negative-ids rows into ``run``; returns the number of rows."""
    n = 0
    line = None
    try:
        for line, row in rows:
            n += 1
            qid = _ident(spath, line, _need(spath, line, row, "query_id"), "query_id")
            ids = _as_list(
                spath, line, _need(spath, line, row, "negative_ids"), "negative_ids", "a list of ids"
            )
            ids = [_ident(spath, line, x, f"negative_ids[{i}]") for i, x in enumerate(ids)]
            sc: list[float | None] = [None] * len(ids)
            if _present(row.get("scores")):
                sc = _num_list(
                    spath, line, row["scores"], "scores", len(ids), "one per item of 'negative_ids'"
                )
            run.qline.setdefault(qid, line)
            for pid in ids:
                run.pline.setdefault(pid, line)
            run.negs.setdefault(qid, []).extend(zip(ids, sc))
    except LoadError:
        raise
    except Exception as err:  # any failure inside a record: one line at that record
        raise _unexpected(spath, line, err) from None
    return n


def parse_negatives_file(
    path: Path, format: str | None = None, progress: Progress | None = None
) -> list[_IdRun]:
    """A TREC run or negative-ids file into one :class:`_IdRun` per system."""
    stem = _stem(path)
    kind = _container(path)
    fmt = format or ("trec-run" if kind == "trec" else None)
    if fmt is None:
        (line, row), _ = _peek(_rows(path, kind))
        fmt = _detect_row(row)
        if fmt != "negative-ids":
            found = _field_names(row)
            raise LoadError(
                str(path),
                line,
                f"a negatives file must be a TREC run (qid Q0 docid rank score tag) or "
                f"negative-ids JSONL (query_id, negative_ids [, scores]); fields found: {found}",
            )
    if fmt == "trec-run":
        if kind != "trec":
            raise LoadError(str(path), None, "expected a TREC run: lines of 'qid Q0 docid rank score tag'")
        return _parse_trec(path, stem, progress)
    return _parse_negative_ids(path, stem, kind, progress)


def _check_known(
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


def _check_runs(runs: list[_IdRun], qtexts: Any, ptexts: Any, qwhere: str, pwhere: str) -> None:
    """Check the query and negative ids of one file's runs (all its systems together)."""
    qline: dict[str, int] = {}
    pline: dict[str, int] = {}
    for run in runs:
        for src, dst in ((run.qline, qline), (run.pline, pline)):
            for i, ln in src.items():
                if i not in dst or ln < dst[i]:
                    dst[i] = ln
    ids = runs[0].format == "negative-ids"
    _check_known(runs[0].path, qline, qtexts, "query id", qwhere, "query_id" if ids else "qid")
    _check_known(runs[0].path, pline, ptexts, "negative id", pwhere, "negative_ids" if ids else "docid")


def _id_records(
    run: _IdRun,
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


# ====================================================================== id-based sources, columnar (fast path)
FAST_MIN_BYTES = 1 << 20  # TREC runs, negative-ids, qrels: the per-line parser costs ~15 us a line
FAST_MIN_TEXT_BYTES = 16 << 20  # corpus/queries: the per-line reader skips unneeded lines cheaply


def _size(*paths: Path) -> int:
    total = 0
    for p in paths:
        try:
            total += os.path.getsize(p)
        except OSError:
            pass
    return total


def _fast(nbytes: int, threshold: int = FAST_MIN_BYTES) -> bool:
    """Whether the vectorised readers read ``nbytes`` of files.

    ``ECI_LOADER_FAST=1``: always; ``0``: never (the per-line parsers); unset (``auto``): when
    pyarrow is already imported (the dashboard) or for at least ``threshold`` bytes on disk
    (:data:`FAST_MIN_BYTES`, 1 MiB, for id files; :data:`FAST_MIN_TEXT_BYTES`, 16 MiB, for a
    corpus), where they repay pyarrow's import (~0.5 s, ~100 MiB), so small data such as the
    bundled sample loads as fast as before."""
    mode = os.environ.get("ECI_LOADER_FAST", "auto").strip().lower()
    if mode in ("0", "false", "no", "off"):
        return False
    if mode in ("1", "true", "yes", "on"):
        return True
    import sys

    return "pyarrow" in sys.modules or nbytes >= threshold


@dataclass
class _IdArrays:
    """One system of a TREC run / negative-ids file in columnar form.

    ``qids`` in first-appearance order; ``q`` (ascending) and ``p`` (integer arrays: int32 from
    the TREC reader, int64 otherwise) index ``qids`` / ``pids`` per negative, rows in the order :class:`_IdRun` keeps them (TREC: by rank, then file order);
    ``qline`` / ``pline``: the first line of each query / negative id."""

    name: str
    path: str
    format: str
    rows_read: int
    qids: list[str]
    q: Any
    pids: list[str]
    p: Any
    score: Any
    qline: Any
    pline: Any


def _arrays_from_run(run: _IdRun) -> _IdArrays:
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
    return _IdArrays(
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


_UNICODE_SPACE = re.compile(
    rb"\xc2[\x85\xa0]|\xe1\x9a\x80|\xe2\x80[\x80-\x8a\xa8\xa9\xaf]|\xe2\x81\x9f|\xe3\x80\x80"
)


def _odd_space(data: bytes) -> bool:
    """Whether ``data`` holds whitespace that ``str.split()`` splits on but a one-character delimiter does not."""
    if any(data.find(c) >= 0 for c in (b"\x0b", b"\x0c", b"\x1c", b"\x1d", b"\x1e", b"\x1f")):
        return True
    return not data.isascii() and bool(_UNICODE_SPACE.search(data))


def _n_lines(data: bytes) -> int:
    return data.count(b"\n") + (0 if data.endswith(b"\n") else 1)


class _NotFast(Exception):
    """The vectorised reader cannot match the per-line reader exactly here: use the latter.

    ``block`` is ``(first line, byte offset in the decompressed file, bytes, gzip?)`` of the
    block where that was found, when known: the per-line parser re-scans it first."""

    def __init__(self, block: tuple[int, int, bytes, bool] | None = None):
        super().__init__()
        self.block = block


_BLOCK_BYTES = 1 << 22  # 4 MiB: pyarrow's readers take several times a block while parsing it


def _blocks(path: Path, where: list | None = None) -> Iterator[bytes]:
    """The decompressed file in blocks of whole lines (about 4 MiB each, BOM removed), so a
    vectorised reader never holds the whole text. Raises :class:`_NotFast` where the per-line
    reader must decide: a lone CR, a line over the limit, an empty file, a gzip problem. When
    ``where`` is given, ``where[:] = [first line, byte offset, gzip?, bytes of the file on disk
    read so far]`` of the block yielded."""
    max_line = current_limits().max_line_bytes
    try:
        f, raw, gz = _open_bytes(path)
    except OSError:
        raise _NotFast from None
    line, offset = 1, 0
    try:
        first = True
        while True:
            b = f.read(_BLOCK_BYTES)
            if not b:
                if first:
                    raise _NotFast
                return
            if not b.endswith(b"\n"):
                b += f.readline(max_line + 1)
                if not b.endswith(b"\n") and f.peek(1):
                    raise _NotFast  # a line over the limit
            size, start = len(b), offset  # start: where b begins in the decompressed file
            if first:
                if b.startswith(b"\xef\xbb\xbf"):
                    b = b[3:]
                    start += 3
                first = False
            if where is not None:
                where[:] = [line, start, gz, raw.tell()]
            if b.find(b"\r") >= 0 and b.count(b"\r") != b.count(b"\r\n"):
                raise _NotFast((line, start, b, gz))
            if len(b) > max_line:
                import numpy as np

                nl = np.flatnonzero(np.frombuffer(b, dtype=np.uint8) == 10)
                if np.diff(np.r_[-1, nl, len(b)]).max() > max_line + 1:
                    raise _NotFast
            yield b
            line += b.count(b"\n")
            offset += size
    except LoadError:
        raise _NotFast from None
    finally:
        raw.close()


# While load_paths runs, pyarrow allocates from the C library's malloc instead of its default
# pool (mimalloc/jemalloc): the buffers the loaders keep (text blocks, id columns) then do not pin
# the pool's pages between the many freed parse temporaries (measured: ~60 MiB less RSS after
# loading 300k passages, BENCHMARKS.md "Loading"). The previous pool is restored afterwards.
_ARROW_POOL: contextvars.ContextVar[dict | None] = contextvars.ContextVar("eci_arrow_pool", default=None)


def _use_system_pool() -> None:
    """Inside load_paths: make malloc pyarrow's default pool until the load ends (once)."""
    state = _ARROW_POOL.get()
    if state is not None and "prev" not in state:
        import pyarrow as pa

        state["prev"] = pa.default_memory_pool()
        pa.set_memory_pool(pa.system_memory_pool())


def _arrow_tables(
    path: Path, read: Callable[[bytes], Any], progress: Progress | None = None
) -> Iterator[Any]:
    """``read(block)`` per block, each checked to hold one row per line (row i = line i + 1);
    ``progress("reading <name>", bytes on disk read, file size)`` after each block."""
    import pyarrow as pa

    _use_system_pool()

    total = os.path.getsize(path) if progress else 0
    where: list = []
    for b in _blocks(path, where):
        block = (where[0], where[1], b, where[2])
        try:
            t = read(b)
        except (pa.ArrowException, ValueError, _NotFast):
            raise _NotFast(block) from None
        if t.num_rows != _n_lines(b):
            raise _NotFast(block)
        if progress:
            progress(f"reading {path.name}", min(where[3], total), total)
        yield t


def _concat(tables: list) -> Any:
    import pyarrow as pa

    try:
        return pa.concat_tables(tables, promote_options="permissive") if len(tables) > 1 else tables[0]
    except (pa.ArrowException, ValueError):
        raise _NotFast from None


def _release_arrow_memory() -> None:
    """Give pyarrow's freed buffers back to the system (the pool keeps them otherwise)."""
    import pyarrow as pa

    pa.default_memory_pool().release_unused()


def _group_trec(t, n: int, spath: str, stem: str) -> list[_IdArrays] | None:
    """Split a parsed TREC table into one :class:`_IdArrays` per tag (first-appearance order)."""
    import numpy as np
    import pyarrow.compute as pc

    for col in ("qid", "docid", "tag"):
        if (np_of(pc.utf8_length(t.column(col))) == 0).any():
            return None
    score = np_of(t.column("score"))
    if not np.isfinite(score).all():
        return None
    rank = np_of(t.column("rank"))
    tag_enc = pc.dictionary_encode(t.column("tag")).combine_chunks()
    tags = tag_enc.dictionary.to_pylist()
    tag_code = np_of(tag_enc.indices)
    q_enc = pc.dictionary_encode(t.column("qid")).combine_chunks()
    p_enc = pc.dictionary_encode(t.column("docid")).combine_chunks()
    q_all, p_all = np_of(q_enc.indices), np_of(p_enc.indices)  # int32 (pyarrow's dictionary indices)
    q_names, p_names = q_enc.dictionary, p_enc.dictionary
    runs = []
    for k, tag in enumerate(tags):
        rows = np.flatnonzero(tag_code == k) if len(tags) > 1 else np.arange(n, dtype=np.int64)
        qg, pg = q_all[rows], p_all[rows]
        # relabel query and passage codes by first appearance within this tag
        uq, fq = np.unique(qg, return_index=True)
        oq = np.argsort(fq, kind="stable")
        q_lab = np.empty(len(uq), np.int32)  # codes < n rows < 2**31 (dictionary indices are int32)
        q_lab[oq] = np.arange(len(uq))
        qloc = q_lab[np.searchsorted(uq, qg)]
        up, fp = np.unique(pg, return_index=True)
        op = np.argsort(fp, kind="stable")
        p_lab = np.empty(len(up), np.int32)
        p_lab[op] = np.arange(len(up))
        ploc = p_lab[np.searchsorted(up, pg)]
        order = np.lexsort((rows, rank[rows], qloc))
        name = stem if len(tags) == 1 else f"{stem}:{tag}"
        runs.append(
            _IdArrays(
                name,
                spath,
                "trec-run",
                n,
                q_names.take(ints_arrow(uq[oq])).to_pylist(),
                qloc[order],
                p_names.take(ints_arrow(up[op])).to_pylist(),
                ploc[order],
                score[rows][order],
                rows[fq[oq]] + 1,
                rows[fp[op]] + 1,
            )
        )
    return runs


def _fast_trec(path: Path, stem: str) -> list[_IdArrays] | None:
    """A TREC run read by pyarrow's CSV reader, or None to let the per-line parser decide."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    names = ["qid", "q0", "docid", "rank", "score", "tag"]
    types = {
        "qid": pa.string(),
        "q0": pa.string(),
        "docid": pa.string(),
        "rank": pa.int64(),
        "score": pa.float64(),
        "tag": pa.string(),
    }
    delim: list[str] = []

    def read(b: bytes):
        if b.startswith(b"#") or b"\n#" in b or _odd_space(b):
            raise _NotFast
        if not delim:
            first = b[: b.find(b"\n")] if b"\n" in b else b
            delim.append("\t" if b"\t" in first and b" " not in first else " ")
        if (delim[0] == " " and b"\t" in b) or (delim[0] == "\t" and b" " in b):
            raise _NotFast
        return pacsv.read_csv(
            pa.py_buffer(b),
            read_options=pacsv.ReadOptions(column_names=names, block_size=1 << 24, use_threads=False),
            parse_options=pacsv.ParseOptions(
                delimiter=delim[0],
                quote_char=False,
                double_quote=False,
                escape_char=False,
                newlines_in_values=False,
                ignore_empty_lines=False,
            ),
            convert_options=pacsv.ConvertOptions(
                column_types=types,
                null_values=[],
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )

    try:  # _NotFast (with the block where it happened) goes to the caller
        t = _concat(list(_arrow_tables(path, read)))
        if t.num_rows == 0:
            return None
        return _group_trec(t, t.num_rows, str(path), stem)
    finally:
        _release_arrow_memory()


_ID_SPACE = (
    r"^[\t\n\x0b\x0c\r\x1c-\x1f \x{85}\x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}]|"
    r"[\t\n\x0b\x0c\r\x1c-\x1f \x{85}\x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}]$|^$"
)


def _arrow_ids(col) -> Any:
    """An id column (string or integer) as strings exactly as :func:`_ident` gives them, or None."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if col.null_count:
        return None
    if pa.types.is_integer(col.type):
        return pc.cast(col, pa.string())
    if not pa.types.is_string(col.type) and not pa.types.is_large_string(col.type):
        return None
    if len(col) and pc.any(pc.match_substring_regex(col, _ID_SPACE)).as_py():
        return None
    return col


def _read_json_block(b: bytes):
    import pyarrow as pa
    import pyarrow.json as pajson

    return pajson.read_json(
        pa.py_buffer(b),
        read_options=pajson.ReadOptions(block_size=1 << 24, use_threads=False),
        parse_options=pajson.ParseOptions(newlines_in_values=False),
    )


def _read_json_table(path: Path):
    """A JSONL file as one pyarrow table, or None when pyarrow cannot read it exactly like json.loads."""
    try:
        return _concat(list(_arrow_tables(path, _read_json_block)))
    except _NotFast:
        return None


def _fast_negative_ids(path: Path, stem: str) -> list[_IdArrays] | None:
    """A negative-ids JSONL read by pyarrow's JSON reader, or None to let the per-line parser decide."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    t = _concat(list(_arrow_tables(path, _read_json_block)))  # _NotFast goes to the caller
    if "query_id" not in t.column_names or "negative_ids" not in t.column_names:
        return None
    n = t.num_rows
    qcol = _arrow_ids(t.column("query_id").combine_chunks())
    lists = t.column("negative_ids").combine_chunks()
    if qcol is None or lists.null_count or not pa.types.is_list(lists.type):
        return None
    flat = lists.flatten()
    if pa.types.is_null(flat.type):
        flat = str_arrow([])
    flat = _arrow_ids(flat) if len(flat) else str_arrow([])
    if flat is None:
        return None
    offsets = np_of(lists.offsets)
    lens = np.diff(offsets)
    row_of = np.repeat(np.arange(n, dtype=np.int64), lens)
    score = np.full(len(flat), np.nan)
    if "scores" in t.column_names:
        sc = t.column("scores").combine_chunks()
        if pa.types.is_null(sc.type):
            pass
        elif not pa.types.is_list(sc.type):
            return None
        else:
            valid = ~np_of(sc.is_null())
            s_lens = np.diff(np_of(sc.offsets))
            if (valid & (s_lens != lens)).any():
                return None
            vals = sc.flatten()
            if vals.null_count or not (
                pa.types.is_integer(vals.type)
                or pa.types.is_floating(vals.type)
                or pa.types.is_null(vals.type)
            ):
                return None
            v = np_of(vals).astype(np.float64) if len(vals) else np.zeros(0)
            if not np.isfinite(v).all():
                return None
            row_valid = valid[row_of]
            score[row_valid] = v  # flatten() keeps only valid rows' values, in order
    q_enc = pc.dictionary_encode(qcol)
    qrow = np_of(q_enc.indices).astype(np.int64)  # per row, first-appearance order
    qline = np.full(len(q_enc.dictionary), 0, np.int64)
    first_rows = np.unique(qrow, return_index=True)[1]
    qline[qrow[first_rows]] = first_rows + 1
    p_enc = pc.dictionary_encode(flat)
    pflat = np_of(p_enc.indices).astype(np.int64)
    pline = np.zeros(len(p_enc.dictionary), np.int64)
    if len(pflat):
        u, f = np.unique(pflat, return_index=True)
        pline[u] = row_of[f] + 1
    qflat = qrow[row_of]
    order = np.argsort(qflat, kind="stable")  # rows of one query id, merged in file order
    return [
        _IdArrays(
            stem,
            str(path),
            "negative-ids",
            n,
            q_enc.dictionary.to_pylist(),
            qflat[order],
            p_enc.dictionary.to_pylist(),
            pflat[order],
            score[order],
            qline,
            pline,
        )
    ]


def _block_lines(spath: str, block: tuple[int, int, bytes, bool]) -> Iterator[tuple[int, str]]:
    """``(line, text)`` of one block, split, decoded and checked exactly as :class:`_Lines` does."""
    line, start, data, gz = block
    pieces = data.split(b"\n")
    if pieces[-1] == b"":
        pieces.pop()  # the block ends with a newline
    pos = 0
    for i, piece in enumerate(pieces):
        b = piece + b"\n" if i < len(pieces) - 1 or data.endswith(b"\n") else piece
        try:
            s = b.decode("utf-8")
        except UnicodeDecodeError as e:
            where = "of the decompressed data" if gz else "of the file"
            raise LoadError(
                spath,
                line,
                f"not valid UTF-8 (expected UTF-8 text) at byte {start + pos + e.start} "
                f"{where}; re-save the file as UTF-8",
            ) from None
        yield line, s.rstrip("\r\n")
        pos += len(b)
        line += 1


def _rescan_block(spath: str, fmt: str | None, block: tuple[int, int, bytes, bool]) -> None:
    """Raise the per-line parser's LoadError for the first bad line of ``block``, if it has one.

    Every earlier block was read by pyarrow under checks that make it valid line by line, so a
    bad line found here is the file's first one (the whole file is re-read only otherwise)."""
    lines = _block_lines(spath, block)
    if fmt == "trec-run":
        _trec_scan(spath, lines)
    elif fmt == "negative-ids":
        _negative_ids_scan(spath, _IdRun("", spath, "negative-ids"), _jsonl_objects(spath, lines))


def _parse_negatives_arrays(
    path: Path, format: str | None = None, progress: Progress | None = None
) -> list[_IdArrays]:
    """:func:`parse_negatives_file` in columnar form: the vectorised readers first, else the
    per-line parser (which names the bad line)."""
    if _fast(_size(path)):
        stem = _stem(path)
        kind = _container(path)
        fmt = format or ("trec-run" if kind == "trec" else None)
        fast = None
        if fmt is None and kind == "jsonl":
            (_, row), _ = _peek(_rows(path, kind))
            fmt = "negative-ids" if _detect_row(row) == "negative-ids" else None
        try:
            if fmt == "trec-run" and kind == "trec":
                fast = _fast_trec(path, stem)
            elif fmt == "negative-ids" and kind == "jsonl":
                fast = _fast_negative_ids(path, stem)
        except _NotFast as e:
            if e.block is not None:  # re-scan the bad block first: a bad line there is the first one
                _rescan_block(str(path), fmt, e.block)
        finally:
            _release_arrow_memory()
        if fast is not None:
            if progress:
                progress(f"reading {path.name}", 1, 1)
            return fast
    return [_arrays_from_run(r) for r in parse_negatives_file(path, format, progress)]


def _check_arrays(runs: list[_IdArrays], qtexts: Any, ptexts: Any, qwhere: str, pwhere: str) -> None:
    """:func:`_check_runs` for columnar runs (same messages, same lines)."""
    qline: dict[str, int] = {}
    pline: dict[str, int] = {}
    for run in runs:
        for ids, lines, known, dst in (
            (run.qids, run.qline, qtexts, qline),
            (run.pids, run.pline, ptexts, pline),
        ):
            if isinstance(known, ArrowTextMap) and not known.missing(ids):
                continue  # all known (one Arrow hash lookup)
            if isinstance(known, dict) and not set(ids).difference(known):
                continue  # all known (a C-level set operation)
            for i, ln in zip(ids, lines.tolist()):
                if i not in known and (i not in dst or ln < dst[i]):
                    dst[i] = ln
    ids = runs[0].format == "negative-ids"
    _check_known(runs[0].path, qline, qtexts, "query id", qwhere, "query_id" if ids else "qid")
    _check_known(runs[0].path, pline, ptexts, "negative id", pwhere, "negative_ids" if ids else "docid")


def _check_cap_arrays(run: _IdArrays) -> None:
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


def _add_arrays(
    collection: Collection,
    name: str,
    run: _IdArrays,
    positives: Mapping[str, list[str]],
    ptexts: Mapping[str, str],
    qtexts: Mapping[str, str],
    splits: Mapping[str, str] | None,
    notes: dict[str, int] | None = None,
) -> SourceReport:
    """:func:`_add` of :func:`_id_records` for a columnar run (same collection, same report)."""

    rep = SourceReport(source=name, path=run.path, format=run.format)
    for k, v in (notes or {}).items():
        rep.note(k, v)
    pos_lists = [positives.get(q, ()) for q in run.qids]
    return collection.add_id_source(
        name,
        run.qids,
        KeyedTexts(qtexts, run.qids),
        pos_lists,
        run.q,
        run.p,
        run.score,
        run.pids,
        ptexts,
        splits=None if splits is None else [splits.get(q) for q in run.qids],
        path=run.path,
        format=run.format,
        rows_read=run.rows_read,
        report=rep,
    )


# ====================================================================== id -> text files
def _read_id_text_tsv(path: Path, needed: set[str], progress: Progress | None = None) -> dict[str, str]:
    """``id<TAB>text`` lines (msmarco collection / queries), keeping only ``needed`` ids."""
    spath = str(path)
    out: dict[str, str] = {}
    no = None
    try:
        for no, s in _Lines(path, progress):
            if not s.strip():
                continue
            pid, tab, text = s.partition("\t")
            pid = pid.strip()
            if pid in needed and pid not in out:
                if not tab:
                    raise LoadError(spath, no, "expected 'id<TAB>text', found no tab")
                out[pid] = _text(spath, no, text, "text")
    except LoadError:
        raise
    except Exception as err:  # any failure inside a record: one line at that record
        raise _unexpected(spath, no, err) from None
    return out


# Python's whitespace (str.isspace / str.strip), so Arrow's trims and tests match them exactly
_PY_SPACE = "".join(chr(c) for c in range(0x110000) if chr(c).isspace())
_PY_BLANK_RE = "^[" + "".join(f"\\x{{{ord(c):x}}}" for c in _PY_SPACE) + "]*$"


def _fast_beir_jsonl(
    path: Path, needed: set[str] | dict[str, str] | None, with_title: bool, progress: Progress | None = None
) -> ArrowTextMap | None:
    """:func:`read_beir_jsonl` with pyarrow's JSON reader, block by block, or None to let the
    per-line reader decide. The texts of the needed rows stay in Arrow (one string block per file
    block, shared with the collection that adds them): only the ids become Python strings. When
    ``needed`` is a dict (id -> the same id), its string objects are the ids of the result (no
    second copy of the ids); None keeps every id."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    _use_system_pool()
    id_blocks: list = []
    blocks: list = []
    rows = 0
    try:
        for t in _arrow_tables(path, _read_json_block, progress):
            rows += t.num_rows
            if "_id" not in t.column_names or "text" not in t.column_names:
                return None
            ids = _arrow_ids(t.column("_id").combine_chunks())
            if ids is None:
                return None
            # membership in ``needed`` by Python hashing, O(rows in the block): pc.is_in would
            # rebuild its hash table of every needed id for each 4 MiB block, O(blocks x ids),
            # quadratic in the corpus size (523 s of a 1M-query load, BENCHMARKS.md "Loading")
            keep = (
                None
                if needed is None
                else bool_arrow(
                    np.fromiter(map(needed.__contains__, ids.to_pylist()), dtype=bool, count=len(ids))
                )
            )

            def kept(col, keep=keep):
                return col if keep is None else pc.filter(col, keep)

            body = kept(t.column("text").combine_chunks())
            if body.null_count or not pa.types.is_string(body.type):
                if len(body) == 0:
                    continue
                return None
            title = None
            if with_title and "title" in t.column_names:
                title = kept(t.column("title").combine_chunks())
                if pa.types.is_null(title.type):
                    title = None
                elif not pa.types.is_string(title.type):
                    return None
            kid = kept(ids)
            del ids, keep
            if not len(body):
                continue
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
                return None  # the per-line reader names the line
            blocks.append(body)
            id_blocks.append(pc.cast(kid, pa.string()) if not pa.types.is_string(kid.type) else kid)
            del t, body, title, blank, kid
    except _NotFast:
        return None
    finally:
        _release_arrow_memory()
    if not rows:
        return None
    return _first_of_each_id(id_blocks, blocks)


def _first_of_each_id(id_blocks: list, blocks: list) -> ArrowTextMap:
    """The rows of ``blocks`` (ids in ``id_blocks``) keeping the first row of each id."""
    import numpy as np
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
    token = _ROOTS.set(normalise_roots(roots)) if roots is not None else None
    try:
        out = read_beir_jsonl(Path(path), None, with_title)
    finally:
        if token is not None:
            _ROOTS.reset(token)
    return out if isinstance(out, dict) else dict(out.items())


def read_beir_qrels(
    directory: str | Path, split: str | None = None
) -> tuple[dict[str, list[str]], dict[str, str], dict[str, tuple[str, int]]]:
    """``(positives, splits, where)`` of a BEIR directory as :func:`load_beir` reads them: per
    query id its positive corpus ids (score > 0) and its qrels split (from ``qrels/<split>.tsv``
    alone when ``split`` is given), and per corpus id the file and line first naming it. A bad
    line raises :class:`LoadError` naming file, line and field."""
    qr = _read_qrels(Path(directory), split)
    return qr.pos, qr.split, qr.where


def read_beir_jsonl(
    path: Path, needed: set[str] | dict[str, str] | None, with_title: bool, progress: Progress | None = None
) -> Mapping[str, str]:
    """``{_id, title?, text}`` lines of a BEIR corpus/queries file, keeping only ``needed`` ids
    (None: every id): an :class:`ArrowTextMap` from the vectorised reader, else a dict."""
    if _fast(_size(path), FAST_MIN_TEXT_BYTES):
        out = _fast_beir_jsonl(path, needed, with_title, progress)
        if out is not None:
            if progress:  # done (the blocks reported their progress on the way)
                n = os.path.getsize(path)
                progress(f"reading {path.name}", n, n)
            return out
    spath = str(path)
    out: dict[str, str] = {}
    loads, head = json.loads, _BEIR_ID.match
    any_row = False
    line = None
    try:
        for line, s in _Lines(path, progress):
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
            row = _loads(spath, line, s)
            if not isinstance(row, dict):
                raise LoadError(spath, line, f"expected one JSON object {{...}} per line, got {_kind(row)}")
            i = _ident(spath, line, _need(spath, line, row, "_id"), "_id")
            if (needed is not None and i not in needed) or i in out:
                continue
            body = _need(spath, line, row, "text")
            if body is not None and not isinstance(body, str):
                raise LoadError(spath, line, f"expected a string, got {_kind(body)}", field="text")
            title = row.get("title") if with_title else None
            if title is not None and not isinstance(title, str):
                raise LoadError(spath, line, f"expected a string, got {_kind(title)}", field="title")
            title = (title or "").strip()
            b = body or ""
            text = f"{title} {b}" if title and b.strip() else (title or b)
            out[i] = _text(spath, line, text if text.strip() else body, "text")
    except LoadError:
        raise
    except Exception as err:  # any failure inside a record: one line at that record
        raise _unexpected(spath, line, err) from None
    if not any_row:
        raise LoadError(spath, None, "file has no data (only blank lines)")
    return out


def _beir_file(d: Path, name: str) -> Path | None:
    for cand in (d / name, d / (name + ".gz")):
        if cand.is_file():
            return cand
    return None


SPLIT_ORDER = ("test", "dev", "validation", "val", "train")
# qrels/ files that are labels, not a split of positives: known false negatives (issue 9)
LABEL_FILES = frozenset({"false_negatives.tsv"})


def _split_rank(name: str) -> tuple[int, str]:
    return (SPLIT_ORDER.index(name) if name in SPLIT_ORDER else len(SPLIT_ORDER), name)


def qrels_splits(directory: str | os.PathLike) -> list[str]:
    """The qrels split names of a BEIR directory (``qrels/<split>.tsv``), test/dev/train first."""
    qdir = Path(directory) / "qrels"
    if not qdir.is_dir():
        return []
    names = {
        _strip_gz(p.name)[:-4]
        for p in qdir.iterdir()
        if p.is_file()
        and _strip_gz(p.name).endswith(".tsv")
        and not p.name.startswith(".")
        and _strip_gz(p.name) not in LABEL_FILES
    }
    return sorted(names, key=_split_rank)


@dataclass
class _Qrels:
    """Positives of a BEIR directory: per query id its split and positive ids."""

    pos: dict[str, list[str]] = field(default_factory=dict)  # qid -> positive ids (its split only)
    split: dict[str, str] = field(default_factory=dict)  # qid -> split name
    where: dict[str, tuple[str, int]] = field(default_factory=dict)  # pid -> (file, first line)
    several: set[str] = field(default_factory=set)  # qids labelled in more than one split


def _fast_qrels_rows(f: Path) -> list[tuple[str, str, int]] | None:
    """``(query id, corpus id, line)`` of the relevant rows (score > 0) of a tab-separated qrels
    file read by pyarrow, or None to let the per-line reader decide."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv

    def read(b: bytes):
        return pacsv.read_csv(
            pa.py_buffer(b),
            read_options=pacsv.ReadOptions(
                column_names=["q", "p", "s"], block_size=1 << 24, use_threads=False
            ),
            parse_options=pacsv.ParseOptions(
                delimiter="\t",
                quote_char=False,
                double_quote=False,
                escape_char=False,
                newlines_in_values=False,
                ignore_empty_lines=False,
            ),
            convert_options=pacsv.ConvertOptions(
                column_types={"q": pa.string(), "p": pa.string(), "s": pa.string()},
                null_values=[],
                strings_can_be_null=False,
            ),
        )

    try:
        t = _concat(list(_arrow_tables(f, read)))
    except _NotFast:
        return None
    if t.num_rows == 0:
        return None
    cols = [_arrow_ids(t.column(c).combine_chunks()) for c in ("q", "p", "s")]
    if any(c is None for c in cols):
        return None
    q, p, sc = cols
    start = 0
    try:
        float(sc[0].as_py())
    except ValueError:
        start = 1  # a header line
    try:
        score = np_of(pc.cast(sc.slice(start), pa.float64()))
    except (pa.ArrowException, ValueError):
        return None
    if not np.isfinite(score).all():
        return None
    keep = np.flatnonzero(score > 0) + start
    idx = ints_arrow(keep)
    return list(zip(q.take(idx).to_pylist(), p.take(idx).to_pylist(), (keep + 1).tolist()))


def _read_qrels(d: Path, split: str | None = None) -> _Qrels:
    """Positives per query id (score > 0) from ``qrels/<split>.tsv``, or from every split.

    With ``split=None`` every ``qrels/*.tsv`` is read and each query takes its positives from the
    split it is labelled in; a query labelled in several splits takes them from the first of
    test, dev, validation, val, train, then the others by name (counted in ``several``)."""
    qdir = d / "qrels"
    if not qdir.is_dir():
        raise LoadError(
            str(d), None, "BEIR directory has no qrels/ folder (qrels/<split>.tsv: query-id corpus-id score)"
        )
    names = qrels_splits(d)
    if not names:
        raise LoadError(
            str(qdir),
            None,
            "no qrels files (expected qrels/<split>.tsv, e.g. test.tsv: query-id corpus-id score)",
        )
    if split is not None:
        if split not in names:
            raise LoadError(
                str(qdir), None, f"split={split!r}: no qrels/{split}.tsv; splits here: {', '.join(names)}"
            )
        names = [split]
    out = _Qrels()
    for name in names:  # best split first: a query already labelled keeps that split
        f = _beir_file(qdir, name + ".tsv")
        sf = str(f)
        mine: dict[str, list[str]] = {}

        def add(qid: str, pid: str, no: int, mine=mine, sf=sf) -> None:
            """A relevant (query, passage) of this split; a query labelled in an earlier split
            keeps that split's positives (counted in ``several``)."""
            if qid in out.split:
                out.several.add(qid)
                return
            lst = mine.setdefault(qid, [])
            if pid not in lst:
                lst.append(pid)
            out.where.setdefault(pid, (sf, no))

        rows = _fast_qrels_rows(f) if _fast(_size(f)) else None
        if rows is not None:
            for qid, pid, no in rows:
                add(qid, pid, no)
            for qid, lst in mine.items():
                out.pos[qid] = lst
                out.split[qid] = name
            continue
        no = None
        try:
            for no, s in _Lines(f):
                if not s.strip():
                    continue
                parts = s.split("\t") if "\t" in s else s.split()
                if len(parts) < 3:
                    raise LoadError(
                        sf, no, f"expected 3 fields 'query-id corpus-id score', found {len(parts)}"
                    )
                qid, pid, sc = parts[0].strip(), parts[1].strip(), parts[-1].strip()
                try:
                    score = float(sc)
                except ValueError:
                    if no == 1:  # header
                        continue
                    raise LoadError(sf, no, "expected a number", field="score") from None
                if not math.isfinite(score):
                    _finite(sf, no, score, "score")
                if score > 0:
                    add(qid, pid, no)
        except LoadError:
            raise
        except Exception as err:  # any failure inside a record: one line at that record
            raise _unexpected(sf, no, err) from None
        for qid, lst in mine.items():
            out.pos[qid] = lst
            out.split[qid] = name
    return out


# ====================================================================== reports
def _conflict_notes(
    collection: Collection, records: list[QueryRecord], rep: SourceReport, passages: bool
) -> None:
    """Count ids that arrive with a text other than the one already known (first text is kept).

    ``passages=False`` for formats whose passages never carry ids (their id is the text's hash)."""
    seen_p: dict[str, str] = {}
    seen_q: dict[str, str] = {}
    np_, nq = 0, 0
    for rec in records:
        if rec.query_id is not None:
            qid = str(rec.query_id)
            old = seen_q.get(qid)
            if old is None:
                old = (
                    collection.query_texts[collection.query_index(qid)]
                    if collection.has_query(qid)
                    else rec.query
                )
                seen_q[qid] = old
            if old != rec.query:
                nq += 1
        if not passages:
            continue
        for ref in (*rec.positives, *rec.negatives):
            if ref.id is None:
                continue
            old = seen_p.get(ref.id)
            if old is None:
                old = (
                    collection.passage_texts[collection.passage_index(ref.id)]
                    if collection.has_passage(ref.id)
                    else ref.text
                )
                seen_p[ref.id] = old
            if old != ref.text:
                np_ += 1
    rep.note("passage id given with a different text (first text kept)", np_)
    rep.note("query id given with a different text (first text kept)", nq)


def _check_cap(records: list[QueryRecord], path: str) -> None:
    """LoadLimits.max_negatives_per_query, checked before anything is added."""
    cap = current_limits().max_negatives_per_query
    for rec in records:
        if len(rec.negatives) > cap:
            raise LoadError(
                path,
                rec.line,
                f"{len(rec.negatives):,} negatives for one query, more than "
                f"{cap:,} (LoadLimits.max_negatives_per_query, env ECI_MAX_NEGATIVES_PER_QUERY)",
                field="negatives",
            )


def _add(
    collection: Collection,
    name: str,
    records: list[QueryRecord],
    path: str,
    fmt: str,
    rows: int,
    notes: dict[str, int] | None = None,
) -> SourceReport:
    _check_cap(records, path)
    rep = SourceReport(source=name, path=path, format=fmt)
    for k, v in (notes or {}).items():
        rep.note(k, v)
    _conflict_notes(collection, records, rep, passages=fmt not in _ID_LESS)
    return collection.add_source(name, records, path=path, format=fmt, rows_read=rows, report=rep)


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
    stem = name or _stem(p)
    if not p.is_file():
        raise LoadError(spath, None, "no such file")
    systems: dict[str, _IdRun] = {}
    pos: dict[str, list[str]] = {}
    pos_line: dict[str, int] = {}
    n = 0
    line = None
    try:
        for line, row in _rows(p, _container(p), progress):
            n += 1
            qid = _ident(spath, line, _need(spath, line, row, "qid"), "qid")
            plist = _as_list(spath, line, _need(spath, line, row, "pos"), "pos", "a list of passage ids")
            plist = [_ident(spath, line, x, f"pos[{i}]") for i, x in enumerate(plist)]
            neg = _need(spath, line, row, "neg")
            if isinstance(neg, str) and neg.lstrip().startswith("{"):
                neg = _loads(spath, line, neg, "neg")
            if not isinstance(neg, dict):
                neg = {
                    "": _as_list(
                        spath, line, neg, "neg", "an object {system: [passage ids]} or a list of ids"
                    )
                }
            lst = pos.setdefault(qid, [])
            for pid in plist:
                if pid not in lst:
                    lst.append(pid)
                pos_line.setdefault(pid, line)
            for system, ids in neg.items():
                fld = f"neg.{system}" if system else "neg"
                ids = _as_list(spath, line, ids, fld, "a list of passage ids")
                run = systems.get(system)
                if run is None:
                    run = systems[system] = _IdRun(str(system), spath, "msmarco-hn")
                run.qline.setdefault(qid, line)
                got = run.negs.setdefault(qid, [])
                for i, x in enumerate(ids):
                    pid = _ident(spath, line, x, f"{fld}[{i}]")
                    run.pline.setdefault(pid, line)
                    got.append((pid, None))
    except LoadError:
        raise
    except Exception as err:  # any failure inside a record: one line at that record
        raise _unexpected(spath, line, err) from None
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
        qtexts: Mapping[str, str] = _read_id_text_tsv(Path(queries_tsv), set(qline), progress)
        qwhere = Path(queries_tsv).name
    else:
        qtexts, qwhere = collection.query_map(), "the loaded queries"
    if collection_tsv is not None:
        ptexts: Mapping[str, str] = _read_id_text_tsv(Path(collection_tsv), set(pline), progress)
        pwhere = Path(collection_tsv).name
    else:
        ptexts, pwhere = collection.passage_map(), "the loaded passages"
    _check_known(spath, qline, qtexts, "query id", qwhere, "qid")
    _check_known(spath, pos_line, ptexts, "positive id", pwhere, "pos")
    for system, run in systems.items():
        _check_known(spath, run.pline, ptexts, "negative id", pwhere, f"neg.{system}" if system else "neg")
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
        _check_cap(recs, spath)
        staged.append((sname, recs))
    report = LoadReport()
    for sname, recs in staged:
        report.sources.append(_add(collection, sname, recs, spath, "msmarco-hn", n))
    return report


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
    corpus = _beir_file(d, "corpus.jsonl")
    queries = _beir_file(d, "queries.jsonl")
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
        report.errors.extend(str(_missing(f, str(f))) for f in unreadable)
    strict = {str(p) for p in only or ()}  # the errors of these files are raised
    for f in (Path(x) for x in (extra or ())):
        if f.is_file():
            files.append(f)
        else:
            report.errors.append(str(_missing(f, str(f))))
    fast = _fast(_size(*files))
    parsed: list[list[Any]] = []  # per file, one run per system (_IdArrays when fast, else _IdRun)
    # every id needed, each mapped to itself: the fast path keeps one string object per id for
    # all files, the corpus/queries dicts and the collection (lower peak memory)
    need_q: dict[str, str] = {}
    need_p: dict[str, str] = {}
    for f in files:
        try:
            if fast:
                runs = _parse_negatives_arrays(f, progress=progress)
                for run in runs:
                    run.qids = [need_q.setdefault(x, x) for x in run.qids]
                    run.pids = [need_p.setdefault(x, x) for x in run.pids]
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
                raise _unexpected(str(f), None, e) from None
            report.errors.append(str(_unexpected(str(f), None, e)))
        if fast:
            _trim_memory()  # the reader's freed blocks, before the next file (lower peak memory)
    qr = _read_qrels(d, split)
    qrels, qrels_where = qr.pos, qr.where
    if not fast:
        for run in (r for runs in parsed for r in runs):
            need_q.update(zip(run.negs, run.negs))
            need_p.update(zip(run.pline, run.pline))
    for q in need_q:
        for pid in qrels.get(q, ()):
            need_p.setdefault(pid, pid)
    ptexts = read_beir_jsonl(corpus, need_p, True, progress)
    # the readers keep only needed ids, once each: as many as needed means none is missing
    all_known = len(ptexts) == len(need_p)
    del need_p
    qtexts = read_beir_jsonl(queries, need_q, False, progress)
    all_known = all_known and len(qtexts) == len(need_q)
    if fast:
        _trim_memory()
    # positives named in qrels must exist (for the queries we use)
    named = list({pid for q in need_q for pid in qrels.get(q, ())})
    bad = sorted(
        ptexts.missing(named) if isinstance(ptexts, ArrowTextMap) else [p for p in named if p not in ptexts],
        key=lambda pid: qrels_where[pid][1],
    )
    if bad:
        f, ln = qrels_where[bad[0]]
        first = "" if len(bad) == 1 else " (the first on this line)"
        raise LoadError(
            f, ln, f"{_plural(len(bad), 'positive id')} not in {corpus.name}{first}", field="corpus-id"
        )
    del need_q, bad, named, qrels_where
    qr.where = {}  # only the message above needs it: ~100 bytes a positive freed before the sources are added
    good: list[list[Any]] = []
    for runs in parsed:
        if fast and all_known:  # every id of every file was found (see above)
            good.append(runs)
            continue
        try:
            (_check_arrays if fast else _check_runs)(runs, qtexts, ptexts, queries.name, corpus.name)
        except LoadError as e:
            if runs[0].path in strict:
                raise
            report.errors.append(str(e))
            continue
        good.append(runs)
    n_runs = sum(map(len, good))
    staged: list[tuple[Any, list[QueryRecord] | None]] = []
    for runs in good:  # one file's systems are added together or not at all
        recs_of = [None if fast else _id_records(run, qrels, ptexts, qtexts, qr.split) for run in runs]
        try:
            for run, recs in zip(runs, recs_of):
                if fast:
                    _check_cap_arrays(run)
                else:
                    _check_cap(recs, runs[0].path)
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
        for q in run.qids if fast else run.negs:
            if q in qr.several:
                k = f"query labelled in several qrels splits (positives from its {qr.split[q]} split)"
                notes[k] = notes.get(k, 0) + 1
        if fast:
            report.sources.append(_add_arrays(collection, sname, run, qrels, ptexts, qtexts, qr.split, notes))
            del run
            _trim_memory()
        else:
            report.sources.append(_add(collection, sname, recs, run.path, run.format, run.rows_read, notes))
    return report


def _load_id_file(
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
    d = _own_beir_dir(p)
    if d is not None:
        return load_beir(d, collection, name=name, progress=progress, only=[p], split=split)
    fast = _fast(_size(p))
    runs = _parse_negatives_arrays(p, fmt, progress) if fast else parse_negatives_file(p, fmt, progress)
    qtexts, ptexts = collection.query_map(), collection.passage_map()
    (_check_arrays if fast else _check_runs)(
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
            _check_cap_arrays(run)
            staged.append((sname, run, None))
        else:
            staged.append((sname, run, _id_records(run, positives, ptexts, qtexts)))
            _check_cap(staged[-1][2], run.path)
    for sname, run, recs in staged:
        if fast:  # every id is already in the collection: nothing new is read from these views
            report.sources.append(_add_arrays(collection, sname, run, positives, ptexts, qtexts, None))
        else:
            report.sources.append(_add(collection, sname, recs, run.path, run.format, run.rows_read))
    return report


def _beside(p: Path, names: tuple[str, ...]) -> Path | None:
    if not is_trusted_dir(p.parent, uploads=True):  # never from the temporary folder itself
        return None
    for n in names:
        f = _beir_file(p.parent, n)
        if f is not None and f.resolve() != p.resolve():
            return f
    return None


def _missing(p: Path, spath: str) -> LoadError:
    """Why ``p`` cannot be opened: a symbolic link loop, a dangling link, or nothing there."""
    try:
        os.stat(p)
    except OSError as e:
        if e.errno == errno.ELOOP:
            return LoadError(
                spath,
                None,
                "symbolic link loop (too many levels of symbolic links); point the link at a real file",
            )
        if p.is_symlink():
            return LoadError(spath, None, "broken symbolic link (its target does not exist)")
        if e.errno not in (errno.ENOENT, errno.ENOTDIR):
            return LoadError(spath, None, f"cannot read the file ({e.strerror or type(e).__name__})")
    return LoadError(spath, None, "no such file or directory")


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
    token = _LIMITS.set(limits) if limits is not None else None
    rtoken = _ROOTS.set(normalise_roots(roots)) if roots is not None else None
    try:
        return _load_path(path, collection, format, name, progress, split)
    finally:
        if rtoken is not None:
            _ROOTS.reset(rtoken)
        if token is not None:
            _LIMITS.reset(token)


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
        raise _missing(p, spath)
    try:
        fmt = normalise_format(format) if format else detect_format(p)
        if p.is_dir():
            if fmt != "beir":
                raise LoadError(spath, None, f"format {fmt} is a file format, but this is a directory")
            return load_beir(p, collection, name=name, progress=progress, split=split)
        if fmt == "beir":
            raise LoadError(
                spath, None, "format beir needs a directory (corpus.jsonl, queries.jsonl, qrels/, negatives/)"
            )
        if fmt == "msmarco-hn":
            ctsv = _beside(p, ("collection.tsv", "corpus.tsv"))
            qtsv = _beside(p, ("queries.tsv", "queries.train.tsv"))
            if (ctsv is None or qtsv is None) and collection.n_passages == 0:
                raise LoadError(
                    spath,
                    None,
                    "a msmarco-hard-negatives file needs its texts: put collection.tsv "
                    "(pid<TAB>text) and queries.tsv (qid<TAB>text) beside it, or call "
                    "load_msmarco_hn(path, collection_tsv, queries_tsv, collection)",
                )
            return load_msmarco_hn(p, ctsv, qtsv, collection, name=name, progress=progress)
        if fmt in ("trec-run", "negative-ids"):
            return _load_id_file(p, collection, fmt, name, progress, split)
        rows = _rows(p, _container(p), progress)
        notes: dict[str, int] = {}
        if fmt == "bge":
            records, n = _parse_bge(spath, rows)
        elif fmt == "tevatron":
            records, n = _parse_tevatron(spath, rows)
        else:
            records, n, notes = _parse_st(spath, fmt, rows)
        report = LoadReport()
        report.sources.append(_add(collection, name or _stem(p), records, spath, fmt, n, notes))
        return report
    except LoadError:
        raise
    except OSError as e:
        raise LoadError(spath, None, f"cannot read the file ({e.strerror or type(e).__name__})") from None
    except Exception as e:  # last resort: still one line, and add_source left the collection as it was
        raise _unexpected(spath, None, e) from None


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
    token = _ARROW_POOL.set(state)
    _mmap_threshold(_LOAD_MMAP_THRESHOLD)
    try:
        rtoken = _ROOTS.set(normalise_roots(roots)) if roots is not None else None
        try:
            return _load_paths(paths, collection, format, progress, split, limits, corpus_dirs)
        finally:
            if rtoken is not None:
                _ROOTS.reset(rtoken)
    finally:
        _ARROW_POOL.reset(token)
        if "prev" in state:
            import pyarrow as pa

            pa.set_memory_pool(state["prev"])
        _mmap_threshold(_AFTER_MMAP_THRESHOLD)
        _trim_memory()


# glibc malloc serves a block of at least M_MMAP_THRESHOLD bytes with its own mmap (returned to
# the system when freed); by default the threshold rises (up to 32 MiB) each time such a block is
# freed, after which the loaders' many freed 1-30 MiB temporaries stay in the heap, fragmented
# between the blocks they keep. A load sets it to 256 KiB (peak RSS ~50 MiB lower on 3M TREC
# lines + 300k passages, BENCHMARKS.md "Loading") and leaves it at glibc's dynamic maximum, where
# a numpy-heavy process's threshold ends anyway. Not done when MALLOC_MMAP_THRESHOLD_ is set.
_LOAD_MMAP_THRESHOLD = 256 << 10
_AFTER_MMAP_THRESHOLD = 32 << 20


def _mmap_threshold(nbytes: int) -> None:
    import sys

    if not sys.platform.startswith("linux") or "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").mallopt(-3, nbytes)  # M_MMAP_THRESHOLD
    except Exception:  # an optimisation only (musl and others: no mallopt)
        pass


def _trim_memory() -> None:
    """Return freed memory to the system after a load (pyarrow's pool; glibc's heap on Linux)."""
    try:
        import ctypes
        import sys

        if "pyarrow" in sys.modules:
            _release_arrow_memory()
        if sys.platform.startswith("linux"):
            ctypes.CDLL("libc.so.6").malloc_trim(0)
    except Exception:  # an optimisation only
        pass


def _own_beir_dir(p: Path) -> Path | None:
    """The BEIR directory a run file given on its own resolves through (see :func:`_load_id_file`):
    its dataset folder (:func:`eci_core.io.trust.dataset_dir`) when that is a trusted BEIR folder."""
    d = dataset_dir(p)
    if (
        is_trusted_dir(d, uploads=True)
        and _beir_file(d, "corpus.jsonl") is not None
        and (d / "qrels").is_dir()
    ):
        return d
    return None


class LoadStep(NamedTuple):
    """One step of :func:`load_paths`: ``path`` loaded on its own (``extra`` empty), or the BEIR
    directory ``path`` with the run files ``extra`` (its ``negatives/`` too when ``negatives``)."""

    path: Any
    extra: list
    negatives: bool = True


def _is_beir_dir(p: Path) -> bool:
    return p.is_dir() and _beir_file(p, "corpus.jsonl") is not None and (p / "qrels").is_dir()


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
            if _is_beir_dir(Path(p)):
                dirs.append((p, Path(p).resolve(), True))
        except OSError:
            continue
    for p in corpus_dirs:
        try:
            r = Path(p).resolve()
            if _is_beir_dir(Path(p)) and all(r != d for _, d, _ in dirs):
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
                or _container(q) not in ("trec", "jsonl")
                or detect_format(q) not in ("trec-run", "negative-ids")
            ):
                continue
            own = _own_beir_dir(q)
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
    token = _LIMITS.set(limits) if limits is not None else None
    try:
        plan = plan_extra_runs(paths, fmt, corpus_dirs)
    finally:
        if token is not None:
            _LIMITS.reset(token)
    for p, extra, negatives in plan:
        try:
            if extra:
                token = _LIMITS.set(limits) if limits is not None else None
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
                        _LIMITS.reset(token)
            else:
                report.extend(load_path(p, coll, format=fmt, progress=progress, split=split, limits=limits))
        except LoadError as e:
            report.errors.append(str(e))
        except Exception as e:  # never lose the good files of a batch
            report.errors.append(str(_unexpected(str(p), None, e)))
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
