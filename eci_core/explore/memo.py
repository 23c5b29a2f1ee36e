"""The one memo of :mod:`eci_core.explore`: values derived from a table, computed once while the
table lives.

The dashboard keeps one ScoreResult per (data, settings) in its score store, so everything the
pages derive from it (row positions per source, summaries, figures, the cleaned set) is computed
once per (data, settings) with :func:`memo` and shared by every page and session: a page switch
or a widget change never recomputes it, and a session asking for a value that another session is
computing waits for that result instead of computing it again. Entries are dropped when their
owner (a DataFrame, a ScoreResult, a Collection) is garbage-collected.

Results whose key changes with user input (e.g. a cleaned set per set of marks) go in a *slot*:
``memo(obj, key, fn, slot="cleaned_set", size=2)`` keeps only the ``size`` most recent keys.
:func:`stored` reads what is held without computing it (the dashboard asks whether scores exist
before it draws a progress bar); :func:`slot_values` lists what a slot holds.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any, Callable

import pandas as pd

__all__ = ["memo", "slot_values", "stored"]

_MEMO: dict[int, dict] = {}  # id(owner) -> {key: value}; slots are the entries ("recent", slot)
_MEMO_LOCK = threading.Lock()
_INFLIGHT: dict[tuple, threading.Event] = {}


def _once(
    store: dict,
    flight_key: tuple,
    key: Any,
    fn: Callable[[], Any],
    on_store: Callable[[], None] | None = None,
):
    """``store[key]``, computing it with ``fn()`` when missing; a second thread asking for the
    same key while it is being computed waits for that result instead of computing it again."""
    while True:
        with _MEMO_LOCK:
            if key in store:
                return store[key]
            ev = _INFLIGHT.get(flight_key)
            if ev is None:
                ev = _INFLIGHT[flight_key] = threading.Event()
                break
        ev.wait()
        with _MEMO_LOCK:
            if key in store:
                return store[key]
        # the other thread failed: compute here
    try:
        val = fn()
        with _MEMO_LOCK:
            store[key] = val
            if on_store:
                on_store()
        return val
    finally:
        with _MEMO_LOCK:
            _INFLIGHT.pop(flight_key, None)
        ev.set()


def _entry(obj: Any) -> dict | None:
    """The memo dict of ``obj`` (created on first use), None when ``obj`` cannot be weakly referenced."""
    oid = id(obj)
    with _MEMO_LOCK:
        entry = _MEMO.get(oid)
        if entry is None:
            try:
                weakref.finalize(obj, _MEMO.pop, oid, None)
            except TypeError:
                return None
            entry = _MEMO[oid] = {}
    return entry


def _table_key(obj: Any, key: tuple) -> tuple:
    """``key``, plus the length and columns of ``obj`` when it is a DataFrame (a table grown in
    place is a new entry)."""
    if isinstance(obj, pd.DataFrame):
        return key + (len(obj), tuple(map(str, obj.columns)))
    return key


def memo(obj: Any, key: tuple, fn: Callable[[], Any], slot: str | None = None, size: int = 2) -> Any:
    """``fn()`` computed once per (``obj``, ``key``) while ``obj`` is alive.

    ``obj`` is a table of a ScoreResult, the ScoreResult or a Collection. For a DataFrame the key
    includes its length and columns (a table grown in place is a new entry). Objects that cannot
    be weakly referenced are not memoised (``fn()`` every time). A thread asking for a key that
    another thread is computing waits for that result.

    With ``slot`` (a name): only the ``size`` most recent keys of that slot are kept, for large
    results whose key changes with user input (e.g. a cleaned set per set of marks)."""
    if slot is not None:
        box = memo(obj, ("recent", slot), dict)

        def trim() -> None:  # called under the lock
            while len(box) > size:
                box.pop(next(iter(box)))

        with _MEMO_LOCK:
            if key in box:
                box[key] = box.pop(key)  # most recent last
                return box[key]
        return _once(box, (id(box), key), key, fn, on_store=trim)
    key = _table_key(obj, key)
    entry = _entry(obj)
    if entry is None:
        return fn()
    return _once(entry, (id(obj), key), key, fn)


def stored(obj: Any, key: tuple, slot: str | None = None, default: Any = None) -> Any:
    """What :func:`memo` holds now for (``obj``, ``key``) (in ``slot`` when given), else ``default``.

    Never computes and never waits for a computation in flight. In a slot, a value found counts
    as used: it becomes the most recent key, as a :func:`memo` call finding it would."""
    with _MEMO_LOCK:
        entry = _MEMO.get(id(obj))
        if entry is None:
            return default
        if slot is None:
            return entry.get(_table_key(obj, key), default)
        box = entry.get(_table_key(obj, ("recent", slot)))
        if box is None or key not in box:
            return default
        box[key] = box.pop(key)  # most recent last
        return box[key]


def slot_values(obj: Any, slot: str) -> list:
    """The values ``slot`` of ``obj`` holds now, least recently used first (for tests and
    diagnostics: what a bounded slot kept)."""
    with _MEMO_LOCK:
        box = (_MEMO.get(id(obj)) or {}).get(_table_key(obj, ("recent", slot))) or {}
        return list(box.values())
