"""The records a loader produces before anything is added to a collection, and the reports.

Loaders never mutate a collection while parsing: they build :class:`QueryRecord` s (each
positive and negative a :class:`PassageRef`) first and then call
:meth:`~eci_core.io.collection.Collection.add_source`, so a bad file cannot damage what was
already loaded. Bad input raises :class:`LoadError` (``PATH:LINE: field 'F': message``); what loading
did is told by a :class:`LoadReport` of :class:`SourceReport` s.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import NamedTuple


def text_id(text: str) -> str:
    """Stable id of a text that came without one: ``"h" + sha1(utf-8 text)[:16]``."""
    return "h" + hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]


class LoadError(ValueError):
    """A problem in a user's file, reported as ``PATH:LINE: field 'F': message``.

    ``line`` is the 1-based line of the file where the problem is (JSONL, JSON, CSV/TSV with the
    header as line 1, TREC), or the data row for Parquet and JSON objects of lists; ``None`` when
    it concerns the whole file.
    """

    def __init__(self, path: str, line: int | None, message: str, field: str | None = None):
        self.path = str(path)
        self.line = line
        self.field = field
        self.message = message
        super().__init__(str(self))

    def __str__(self) -> str:
        where = self.path if self.line is None else f"{self.path}:{self.line}"
        what = f"field '{self.field}': {self.message}" if self.field else self.message
        return f"{where}: {what}"


class PassageRef(NamedTuple):
    """A passage as a file gives it: an id (or None) and its text, with an optional miner score."""

    id: str | None
    text: str
    score: float | None = None


class QueryRecord(NamedTuple):
    """Everything one file says about one query.

    ``line`` is where the query was first seen in the file (for messages).
    """

    query_id: str | None
    query: str
    positives: list[PassageRef]
    negatives: list[PassageRef]
    line: int | None = None
    split: str | None = None  # the qrels split the query's positives came from (BEIR), if known


@dataclass
class SourceReport:
    """What loading one source did: rows read, what was kept, and each drop with its reason.

    ``drops`` maps a reason to how many items were not kept for it; ``notes`` maps a reason to
    how many items were kept but deserve attention (e.g. a negative identical to a positive).
    """

    source: str
    path: str
    format: str
    rows_read: int = 0
    queries: int = 0
    negatives_kept: int = 0
    drops: dict[str, int] = field(default_factory=dict)
    notes: dict[str, int] = field(default_factory=dict)

    def drop(self, reason: str, n: int = 1) -> None:
        if n:
            self.drops[reason] = self.drops.get(reason, 0) + n

    def note(self, reason: str, n: int = 1) -> None:
        if n:
            self.notes[reason] = self.notes.get(reason, 0) + n

    def as_row(self) -> dict:
        return {
            "source": self.source,
            "path": self.path,
            "format": self.format,
            "rows_read": self.rows_read,
            "queries": self.queries,
            "negatives_kept": self.negatives_kept,
            "dropped": "; ".join(f"{k}: {v}" for k, v in self.drops.items()),
            "notes": "; ".join(f"{k}: {v}" for k, v in self.notes.items()),
        }


@dataclass
class LoadReport:
    """The result of loading one or more paths: one :class:`SourceReport` per source created,
    and the one-line errors of paths that could not be loaded."""

    sources: list[SourceReport] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def table(self):
        """The report as a pandas DataFrame (one row per source)."""
        import pandas as pd

        cols = ["source", "path", "format", "rows_read", "queries", "negatives_kept", "dropped", "notes"]
        return pd.DataFrame([s.as_row() for s in self.sources], columns=cols)

    def extend(self, other: "LoadReport") -> None:
        self.sources.extend(other.sources)
        self.errors.extend(other.errors)
