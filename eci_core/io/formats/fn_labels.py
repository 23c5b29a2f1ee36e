"""False-negative labels files: the BEIR qrels layout of ``qrels/false_negatives.tsv``
(``query-id corpus-id score``, tab or space separated, header optional, gzip read transparently
within :class:`~eci_core.io.read.limits.LoadLimits`; score 1 = false negative, 0 = reviewed fine).

Reader :func:`read_labels`, writer :func:`labels_bytes`, lookup beside a loaded dataset
:func:`find_labels_file`. Not a hard-negative format (not in the registry): the labels are read by
the Review page and the false-negative score's fit (:mod:`eci_core.metrics.false_negatives`), and
a BEIR directory's qrels splits leave this file out (:data:`eci_core.io.formats.beir_qrels.LABEL_FILES`).
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Iterable

from eci_core.io.records import LoadError
from eci_core.io.read.limits import current_limits
from eci_core.io.read.text import GzipRaw
from eci_core.io.trust import neighbour_file, open_within

__all__ = ["LABELS_FILE", "read_labels", "labels_bytes", "labels_text", "find_labels_file"]

LABELS_FILE = "false_negatives.tsv"  # in a BEIR directory's qrels/


def labels_text(raw: bytes, name: str) -> str:
    """A labels file's bytes as text: gzip (by its magic bytes) decompressed with the loaders'
    size and ratio limits (:class:`eci_core.io.read.limits.LoadLimits`), UTF-8 with an optional BOM.
    Raises ``LoadError`` (a ValueError) in one line naming ``name`` (and the line of bad UTF-8)."""
    if raw[:2] == b"\x1f\x8b":
        raw = io.BufferedReader(GzipRaw(io.BytesIO(raw), name, current_limits())).read()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise LoadError(
            name,
            raw.count(b"\n", 0, e.start) + 1,
            "not valid UTF-8 (expected UTF-8 text); re-save the file as UTF-8",
        ) from None


def read_labels(path_or_bytes, name: str | None = None, roots=None) -> dict[tuple[str, str], int]:
    """``{(query_id, passage_id): score}`` of a labels file (``query-id corpus-id score``, tab
    or space separated, header optional; gzip read transparently, within the loaders' limits).
    Raises ``ValueError`` in one line naming the file and line for a malformed one
    (``NAME:LINE: ...``, no value echoed); ``name`` is what the errors call the file (default: the
    path, or ``"labels"`` for bytes, e.g. pass an uploaded file's name). ``roots``: a path is
    read only when it resolves inside one of them (:func:`eci_core.io.trust.open_within`)."""
    if isinstance(path_or_bytes, (bytes, bytearray)):
        name = name or "labels"
        text = labels_text(bytes(path_or_bytes), name)
    else:
        p = Path(path_or_bytes)
        name = name or str(p)
        with open_within(p, roots) as f:
            text = labels_text(f.read(), name)
    out: dict[tuple[str, str], int] = {}
    for no, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split("\t") if "\t" in line else line.split()
        if len(parts) == 4:  # TREC qrels: qid 0 docid rel
            parts = [parts[0], parts[2], parts[3]]
        if len(parts) != 3:
            raise ValueError(f"{name}:{no}: expected 3 fields 'query-id corpus-id score', found {len(parts)}")
        try:
            score = float(parts[2])
        except ValueError:
            if no == 1:
                continue  # header
            raise ValueError(f"{name}:{no}: field 'score': expected a number") from None
        if not math.isfinite(score):
            raise ValueError(f"{name}:{no}: field 'score': must be a finite number")
        q, pid = parts[0].strip(), parts[1].strip()
        for field, value in (("query-id", q), ("corpus-id", pid)):
            if not value:
                raise ValueError(
                    f"{name}:{no}: field '{field}': empty; every row needs a query id and a passage id"
                )
        out[(q, pid)] = 1 if score > 0 else 0
    return out


def labels_bytes(labels: Iterable[tuple[str, str, int]]) -> bytes:
    """A labels file: header then ``query-id\\tcorpus-id\\tscore`` rows (1 = false negative,
    0 = fine), sorted by query id then passage id."""
    buf = io.StringIO()
    buf.write("query-id\tcorpus-id\tscore\n")
    for q, p, s in sorted(set((str(q), str(p), int(s)) for q, p, s in labels)):
        buf.write(f"{q}\t{p}\t{s}\n")
    return buf.getvalue().encode("utf-8")


def find_labels_file(collection, roots=None) -> Path | None:
    """``qrels/false_negatives.tsv`` in the dataset folder a loaded source came from (the BEIR
    directory of ``DIR/negatives/x``, else the folder holding the file), if any. Only where
    :func:`eci_core.io.trust.neighbour_dirs` allows: never a parent folder, the temporary folder
    or an upload folder. With ``roots`` (the dashboard's data roots) only a file that resolves
    inside a root."""
    paths = [getattr(src, "path", None) for src in getattr(collection, "sources", {}).values()]
    return neighbour_file([p for p in paths if p], Path("qrels") / LABELS_FILE, roots=roots)
