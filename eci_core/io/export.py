"""Write a cleaned set (:class:`eci_core.io.cleaning.CleanedSet`) in a training format by the
Export page's name: :data:`EXPORT_FORMATS` and :func:`export_bytes` read the format registry
(:data:`eci_core.io.formats.FORMATS`, each format's :class:`~eci_core.io.formats.ExportSpec`), so
a format with a writer is offered here as soon as it is registered."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Iterator

from eci_core.io.formats import FORMATS, ExportSpec

__all__ = ["EXPORT_FORMATS", "export_bytes", "export_specs"]


def export_specs() -> list[ExportSpec]:
    """The writers of the registered formats, in the Export page's order."""
    specs = [s.export for s in FORMATS.values() if s.export is not None]
    return sorted(specs, key=lambda e: e.order)


class _ExportFormats(Mapping):
    """Export formats the Export page offers: name -> (file extension, MIME type), read from the
    registry each time (a format registered later is listed too)."""

    def __getitem__(self, label: str) -> tuple[str, str]:
        for e in export_specs():
            if e.label == label:
                return (e.extension, e.mime)
        raise KeyError(label)

    def __iter__(self) -> Iterator[str]:
        return iter([e.label for e in export_specs()])

    def __len__(self) -> int:
        return len(export_specs())

    def __repr__(self) -> str:
        return repr(dict(self))


#: Export formats the Export page offers: name -> (file extension, MIME type).
EXPORT_FORMATS: Mapping[str, tuple[str, str]] = _ExportFormats()


def export_bytes(
    cleaned: Any, fmt_name: str, source: str | None = None, n: int | None = None
) -> tuple[bytes, str]:
    """Bytes and suggested file name for one of :data:`EXPORT_FORMATS` (the Export page's
    selector), e.g. ``("...", "bm25.bge.jsonl")``."""
    src = source if source is not None else (cleaned.sources[0] if len(cleaned.sources) == 1 else None)
    recs_name = src or "cleaned"
    for e in export_specs():
        if e.label == fmt_name:
            return e.write(cleaned, src, n), f"{recs_name}.{e.suffix}"
    raise ValueError(f"fmt_name={fmt_name!r}: use one of {', '.join(EXPORT_FORMATS)}")
