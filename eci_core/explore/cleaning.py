"""The Export page's data: the cleaned set of a source (computed once per option set) and its summary."""

from __future__ import annotations

from typing import Any

import pandas as pd

from eci_core.explore.memo import memo

__all__ = ["cleaned_set", "cleaned_summary"]


def cleaned_set(collection: Any, result: Any, **options: Any):
    """:func:`eci_core.io.cleaning.clean_collection` ``(collection, result, **options)``, computed once
    per (data, settings, options) and kept for the two most recent option sets (the Export page
    reruns on every widget change; cleaning a million negatives takes seconds)."""
    from eci_core.io import cleaning as io_cleaning

    def freeze(v: Any) -> Any:
        if isinstance(v, dict):
            return tuple(sorted((freeze(k), freeze(x)) for k, x in v.items()))
        if isinstance(v, (list, tuple, set, frozenset)):
            return tuple(freeze(x) for x in v)
        return v

    key = (id(collection),) + tuple(sorted((k, freeze(v)) for k, v in options.items()))
    return memo(
        result, key, lambda: io_cleaning.clean_collection(collection, result, **options), slot="cleaned_set"
    )


def cleaned_summary(cleaned: Any) -> pd.DataFrame:
    """``cleaned.summary()`` (see :class:`eci_core.io.cleaning.CleanedSet`), once per cleaned set."""
    return memo(cleaned, ("summary",), cleaned.summary).copy()
