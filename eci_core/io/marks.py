"""A reviewer's marks (``fine`` / ``false_negative`` per (source, query, negative)) on disk and as a
labels file.

* **Saved marks** survive a page reload: ``<cache dir>/marks/<data fingerprint>.tsv`` (cache dir
  ``$ECI_CACHE_DIR`` or ``~/.cache/eci-explorer``), a plain TSV ``source query_id passage_id
  mark`` with a header, rewritten atomically on every change; read back when the same data
  (same fingerprint) is opened again; :func:`clear_marks` deletes it.
* **Labels file** (:func:`marks_to_labels`, :func:`labels_to_marks`): the BEIR qrels layout of
  ``qrels/false_negatives.tsv`` (``query-id corpus-id score``; 1 = false negative, 0 = fine). A
  label is about a (query, passage), whatever source mined it: reading one back marks that pair
  in every source that holds it.
"""

from __future__ import annotations

import csv
import io
import os
import re
import tempfile
from pathlib import Path
from typing import Iterable, Mapping

MARKS = ("false_negative", "fine")
HEADER = ("source", "query_id", "passage_id", "mark")

Mark = tuple[str, str, str]


def marks_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    from eci_core.config import default_cache_dir

    return Path(cache_dir).expanduser() / "marks" if cache_dir else default_cache_dir() / "marks"


def marks_path(fingerprint: str, cache_dir: str | os.PathLike | None = None) -> Path:
    """Where the marks of the data with ``fingerprint`` are saved."""
    if not re.fullmatch(r"[0-9A-Za-z_-]{1,128}", str(fingerprint)):
        raise ValueError(f"fingerprint={fingerprint!r}: expected the hex fingerprint of a Collection")
    return marks_dir(cache_dir) / f"{fingerprint}.tsv"


def save_marks(fingerprint: str, marks: Mapping[Mark, str], cache_dir=None) -> Path | None:
    """Write ``marks`` (replacing what was saved; none: the file is removed). Returns the path,
    or None when the cache folder cannot be written (marks then live for the session only)."""
    path = marks_path(fingerprint, cache_dir)
    try:
        if not marks:
            path.unlink(missing_ok=True)
            return path
        path.parent.mkdir(parents=True, exist_ok=True)
        buf = io.StringIO()
        w = csv.writer(buf, delimiter="\t", lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
        w.writerow(HEADER)
        for (s, q, p), m in sorted(marks.items()):
            if m not in MARKS:
                raise ValueError(f"mark {m!r} for {(s, q, p)}: use 'false_negative' or 'fine'")
            w.writerow((s, q, p, m))
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".marks-", suffix=".tsv")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(buf.getvalue())
        os.replace(tmp, path)
        return path
    except OSError:
        return None


def load_marks(fingerprint: str, cache_dir=None) -> dict[Mark, str]:
    """The saved marks of ``fingerprint`` (empty when none). Lines that are not a valid mark are
    skipped (a hand-edited file never stops the dashboard)."""
    path = marks_path(fingerprint, cache_dir)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return {}
    out: dict[Mark, str] = {}
    for row in csv.reader(io.StringIO(text), delimiter="\t"):
        if len(row) != 4 or tuple(row) == HEADER or row[3] not in MARKS:
            continue
        out[(row[0], row[1], row[2])] = row[3]
    return out


def clear_marks(fingerprint: str, cache_dir=None) -> None:
    """Delete the saved marks of ``fingerprint``."""
    try:
        marks_path(fingerprint, cache_dir).unlink(missing_ok=True)
    except OSError:
        pass


def marks_to_labels(marks: Mapping[Mark, str]) -> list[tuple[str, str, int]]:
    """``(query_id, passage_id, score)`` per marked pair: 1 false negative, 0 fine. A pair marked
    differently in two sources is a false negative (never trained on as a negative)."""
    out: dict[tuple[str, str], int] = {}
    for (_, q, p), m in marks.items():
        v = 1 if m == "false_negative" else 0
        out[(q, p)] = max(out.get((q, p), 0), v)
    return [(q, p, v) for (q, p), v in out.items()]


def labels_to_marks(labels: Mapping[tuple[str, str], int], pairs: Iterable[Mark]) -> dict[Mark, str]:
    """Marks for every ``(source, query_id, passage_id)`` of ``pairs`` whose (query, passage) has a
    label: ``false_negative`` for score > 0, ``fine`` for 0."""
    out: dict[Mark, str] = {}
    for s, q, p in pairs:
        v = labels.get((str(q), str(p)))
        if v is not None:
            out[(str(s), str(q), str(p))] = "false_negative" if v > 0 else "fine"
    return out


def marks_from_labels_file(data: bytes, name: str, pairs) -> tuple[dict[Mark, str], int]:
    """``(marks, n_labels)`` for an uploaded labels file: ``data`` read with
    :func:`eci_core.io.formats.fn_labels.read_labels` (errors name ``name`` and the line, in one
    line; nothing is returned then, so a caller that merges only on success loses no marks), and
    a mark for every negative of the scored ``pairs`` table (columns ``source``, ``query_id``,
    ``passage_id``) whose (query, passage) has a label (:func:`labels_to_marks`). ``n_labels`` is
    how many (query, passage) labels the file holds, matched or not."""
    from eci_core.io.formats.fn_labels import read_labels

    labels = read_labels(bytes(data), name=name)
    keys = zip(pairs["source"].astype(str), pairs["query_id"].astype(str), pairs["passage_id"].astype(str))
    return labels_to_marks(labels, keys), len(labels)


def marked_rows(pairs, marks: Mapping[Mark, str]):
    """``(rows, labels)``: the positions in the scored ``pairs`` table (columns ``source``,
    ``query_id``, ``passage_id``) of every marked negative, and its label (1 false negative,
    0 fine), both int64 arrays in table order — what a refit of the false-negative score learns
    from."""
    import numpy as np

    keys = zip(pairs["source"].astype(str), pairs["query_id"].astype(str), pairs["passage_id"].astype(str))
    got = [(i, marks[k]) for i, k in enumerate(keys) if k in marks]
    rows = np.array([i for i, _ in got], dtype=np.int64)
    labels = np.array([1 if m == "false_negative" else 0 for _, m in got], dtype=np.int64)
    return rows, labels
