"""The words of load messages: which field names a message may show, the accepted formats.

A message never echoes file content, and a field or column name is file content unless it is a
name some format reads: :data:`KNOWN_FIELDS` (filled by the format registry,
:func:`eci_core.io.formats.registry.register_format`, from each format's ``known_fields``) and
``negative_<n>`` columns. :data:`FORMAT_HINTS` (format name -> one-line hint, also kept by the
registry) is what :func:`accepted_formats` lists when a file matches no format.
"""

from __future__ import annotations

import re
from typing import Any, Iterable

#: ``negative_1`` … ``negative_n`` columns (sentence-transformers n-tuple), always known
NEG_N = re.compile(r"^negative_(\d+)$")

#: field names a message may show; kept equal to the union of the registered formats' known fields
KNOWN_FIELDS: set[str] = set()

#: format name -> one-line hint of its fields, in registry order (kept by the registry)
FORMAT_HINTS: dict[str, str] = {}


def is_known_field(name: str) -> bool:
    """Whether ``name`` is a field some format reads (safe to show in a message)."""
    return name in KNOWN_FIELDS or NEG_N.match(name) is not None


def accepted_formats() -> str:
    """``"name (hint); …"`` of every registered format, for "cannot detect" messages."""
    return "; ".join(f"{k} ({v})" for k, v in FORMAT_HINTS.items())


def plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def field_names(keys: Iterable[Any]) -> str:
    """The field names of a record for a message: known names shown, others only counted (a
    headerless CSV's first line would otherwise be echoed as "field names")."""
    keys = [str(k) for k in keys]
    shown = [k for k in keys if is_known_field(k)]
    other = len(keys) - len(shown)
    if not keys:
        return "none"
    text = ", ".join(shown)
    if other:
        text += (" and " if shown else "") + plural(other, "unrecognised field")
    return text


def shown_column(name: str, index: int) -> tuple[str | None, str]:
    """``(field for the message, extra words)`` of a Parquet column: a known field name is shown,
    any other is only numbered (a column name is file content, never echoed)."""
    if is_known_field(name):
        return name, ""
    return None, f" (column {index + 1})"
