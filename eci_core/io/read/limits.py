"""Limits of a load and its allowed roots: :class:`LoadLimits` (line length, gzip size and ratio,
negatives per query; :meth:`LoadLimits.from_env`), the limits and roots of the load in progress
(context variables :data:`LIMITS`, :data:`ROOTS`, read with :func:`current_limits`), and
:func:`open_file`, through which every file a reader opens goes (inside the roots when set)."""

from __future__ import annotations

import contextvars
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from eci_core.io.trust import open_within

Progress = Callable[[str, int, int], None]


PROGRESS_EVERY = 20000


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


LIMITS: contextvars.ContextVar[LoadLimits | None] = contextvars.ContextVar("eci_load_limits", default=None)


def current_limits() -> LoadLimits:
    lim = LIMITS.get()
    return lim if lim is not None else LoadLimits.from_env()


# the allowed roots of the load in progress (``roots=`` of load_path / load_paths; None: no limit)
ROOTS: contextvars.ContextVar[tuple[Path, ...] | None] = contextvars.ContextVar(
    "eci_load_roots", default=None
)


def open_file(path: Path):
    """Every file the loaders read is opened here: inside the load's allowed roots when it has
    some (:func:`eci_core.io.trust.open_within`)."""
    return open_within(path, ROOTS.get())
