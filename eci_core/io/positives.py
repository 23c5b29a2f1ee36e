"""A collection's labelled positives as sorted pair arrays (CSR), read like a dict of lists.

:class:`Positives` holds every (query index, passage index) pair in two int32 arrays sorted by
query (stable: a query's positives keep the order they were added in), so the row of query
``q`` is ``p[indptr[q]:indptr[q + 1]]`` and a bulk load adds a million pairs with a few numpy
calls (:meth:`Positives.add_pairs`), not one Python list per query. It reads like the
``{query index: [passage index, ...]}`` dict it replaces (``positives[q]``, ``get``, ``in``,
``items()``, ``len``, ``==`` with a dict); keys are iterated in ascending query order.
Small edits (``positives[q] = [...]``, ``setdefault(q, []).append(p)``, ``del positives[q]``)
wait in a small dict of lists and are merged into the arrays on the next bulk read.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Iterable, Iterator

import numpy as np

_DELETED = None  # a pending entry that removes the query's pairs


def _narrow(a: np.ndarray) -> np.ndarray:
    """``a`` as int32 when its values fit, else int64."""
    a = np.asarray(a)
    if len(a) and (a.max() >= 2**31 or a.min() < -(2**31)):
        return a.astype(np.int64, copy=False)
    return a.astype(np.int32, copy=False)


class Positives(MutableMapping):
    """Query index -> list of positive passage indices, stored as sorted pair arrays (CSR).

    ``q`` (query of each pair, ascending) and ``p`` (passage of each pair) are int32 while the
    indices fit; :meth:`csr` gives ``(indptr, indices)`` over ``n`` queries and :meth:`pairs` the
    two arrays. A query is a key when it has at least one positive (or was set to ``[]``)."""

    __slots__ = ("_q", "_p", "_pending", "_empty")

    def __init__(self, items=None):
        self._q = np.zeros(0, dtype=np.int32)
        self._p = np.zeros(0, dtype=np.int32)
        self._pending: dict[int, list[int] | None] = {}  # edits not merged yet (None: deleted)
        self._empty: set[int] = set()  # keys whose list is empty
        if items:
            for k, v in dict(items).items():
                self._pending[int(k)] = [int(x) for x in v]

    # ---------------------------------------------------------------- bulk
    def _flush(self) -> None:
        """Merge the pending edits into the arrays."""
        if not self._pending:
            return
        keys = np.fromiter(self._pending, dtype=np.int64, count=len(self._pending))
        keep = ~np.isin(self._q, keys) if len(self._q) else np.zeros(0, dtype=bool)
        add_q, add_p = [], []
        for k, v in self._pending.items():
            self._empty.discard(k)
            if v is None:
                continue
            if not v:
                self._empty.add(k)
            add_q.extend([k] * len(v))
            add_p.extend(v)
        self._pending = {}
        q = np.concatenate([self._q[keep], np.asarray(add_q, dtype=np.int64)])
        p = np.concatenate([self._p[keep], np.asarray(add_p, dtype=np.int64)])
        order = np.argsort(q, kind="stable")
        self._q, self._p = _narrow(q[order]), _narrow(p[order])

    def pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """(query, passage) of every pair, sorted by query (a query's pairs in their order)."""
        self._flush()
        return self._q, self._p

    def csr(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """``(indptr, indices)``: the positives of query ``i < n`` are
        ``indices[indptr[i]:indptr[i + 1]]`` (``indptr`` int64, ``indices`` int32 where it fits)."""
        q, p = self.pairs()
        indptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.bincount(q, minlength=n)[:n], out=indptr[1:])
        return indptr, p

    def counts(self, n: int) -> np.ndarray:
        """The number of positives of each query ``0 .. n - 1`` (int64)."""
        q, _ = self.pairs()
        return np.bincount(q, minlength=n)[:n].astype(np.int64)

    def add_pairs(self, q: np.ndarray, p: np.ndarray) -> None:
        """Add the pairs ``(q[i], p[i])`` in order, each after the query's positives already
        there; a pair already there (or earlier in ``q``, ``p``) is not added again."""
        self._flush()
        q = np.asarray(q, dtype=np.int64)
        p = np.asarray(p, dtype=np.int64)
        if not len(q):
            return
        n_old = len(self._q)
        aq = np.concatenate([self._q.astype(np.int64), q])
        ap = np.concatenate([self._p.astype(np.int64), p])
        base = np.int64(max(int(ap.max()), 0) + 1)
        first = np.unique(aq * base + ap, return_index=True)[1]  # first occurrence of each pair
        keep = np.zeros(len(aq), dtype=bool)
        keep[first] = True
        keep[:n_old] = True  # what is there stays as it is (a list set with a repeated index too)
        if keep[n_old:].all():
            if not n_old or q.min() > self._q[-1]:  # new queries after the known ones: no sort
                self._q, self._p = _narrow(aq), _narrow(ap)
                self._empty.difference_update(np.unique(q).tolist())
                return
        aq, ap = aq[keep], ap[keep]
        order = np.argsort(aq, kind="stable")
        self._q, self._p = _narrow(aq[order]), _narrow(ap[order])
        if self._empty:
            self._empty.difference_update(np.unique(q).tolist())

    def truncate_to(self, state) -> None:
        """Restore a :meth:`state` (the loaders' rollback)."""
        self._q, self._p, pending, empty = state
        self._pending = {k: (None if v is None else list(v)) for k, v in pending.items()}
        self._empty = set(empty)

    def state(self):
        """What :meth:`truncate_to` restores (the arrays are never changed in place: shared)."""
        return (
            self._q,
            self._p,
            {k: (None if v is None else list(v)) for k, v in self._pending.items()},
            set(self._empty),
        )

    # ---------------------------------------------------------------- mapping
    def _row(self, k: int) -> np.ndarray:
        lo, hi = np.searchsorted(self._q, [k, k + 1])
        return self._p[lo:hi]

    def __getitem__(self, k) -> list[int]:
        """The positives of query ``k``: a new list (changing it changes nothing here, unless it
        came from :meth:`setdefault` or an assignment not merged yet); assign to change them."""
        k = int(k)
        if k in self._pending:
            v = self._pending[k]
            if v is None:
                raise KeyError(k)
            return v
        row = self._row(k)
        if not len(row) and k not in self._empty:
            raise KeyError(k)
        return row.tolist()

    def __contains__(self, k) -> bool:
        try:
            k = int(k)
        except (TypeError, ValueError):
            return False
        if k in self._pending:
            return self._pending[k] is not None
        return k in self._empty or bool(len(self._row(k)))

    def get(self, k, default=None):
        try:
            return self[k]
        except (KeyError, TypeError, ValueError):
            return default

    def __setitem__(self, k, v: Iterable[int]) -> None:
        self._pending[int(k)] = [int(x) for x in v]

    def setdefault(self, k, default=None):
        """The list of ``k`` (kept pending, so changes to it are kept), set to ``default`` when
        ``k`` has none."""
        k = int(k)
        if k in self._pending and self._pending[k] is not None:
            return self._pending[k]
        if k in self:
            self._pending[k] = self[k]
        else:
            self._pending[k] = [] if default is None else list(default)
        return self._pending[k]

    def __delitem__(self, k) -> None:
        k = int(k)
        if k not in self:
            raise KeyError(k)
        self._pending[k] = _DELETED

    def keys_array(self) -> np.ndarray:
        """The keys, ascending (int64)."""
        q, _ = self.pairs()
        keys = np.unique(q).astype(np.int64)
        if self._empty:
            keys = np.union1d(keys, np.fromiter(self._empty, dtype=np.int64, count=len(self._empty)))
        return keys

    def __iter__(self) -> Iterator[int]:
        return iter(self.keys_array().tolist())

    def __len__(self) -> int:
        return len(self.keys_array())

    def items(self):
        q, p = self.pairs()
        keys = self.keys_array()
        lo = np.searchsorted(q, keys, side="left").tolist()
        hi = np.searchsorted(q, keys, side="right").tolist()
        pl = p.tolist()
        return [(k, pl[a:b]) for k, a, b in zip(keys.tolist(), lo, hi)]

    def values(self):
        return [v for _, v in self.items()]

    def __eq__(self, other) -> bool:
        if isinstance(other, Positives):
            other = dict(other.items())
        if isinstance(other, dict):
            return dict(self.items()) == other
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Positives({dict(self.items())!r})"

    def __bool__(self) -> bool:
        return len(self) > 0

    def __deepcopy__(self, memo) -> "Positives":
        new = Positives.__new__(Positives)
        new.truncate_to(self.state())
        return new

    def __getstate__(self):
        return self.state()

    def __setstate__(self, state) -> None:
        self.truncate_to(state)
