"""Texts compared up to whitespace: one int64 key per text (:func:`text_keys`), and the repeated
negative texts of a query dropped before scoring (:func:`dedup_text`)."""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np


def _normalised(text: str) -> str:
    """``text`` up to whitespace: runs of whitespace (``str.split()``'s) as one space, stripped."""
    return " ".join(text.split())


def text_keys(texts: Sequence[str], chunk: int = 65_536, hash_fn: Callable[[str], int] = hash) -> np.ndarray:
    """int64 key per text, equal exactly when the texts are equal up to whitespace
    (:func:`_normalised`), numbered in order of first occurrence (0, 1, 2, ...): the same array as
    ``pd.factorize([_normalised(t) for t in texts])[0]``, without holding the normalised corpus.

    Texts are normalised ``chunk`` at a time and only their ``hash_fn`` (64-bit) is kept; the
    texts of a hash value shared by several texts are normalised again and compared, so a hash
    collision between different texts splits into separate keys (never one key for two texts).
    Memory: 8 bytes per text plus one chunk of normalised texts.
    """
    import itertools

    import pandas as pd

    n = len(texts)
    h = np.empty(n, dtype=np.int64)
    it = iter(texts)
    for a in range(0, n, chunk):
        block = [_normalised(t) for t in itertools.islice(it, chunk)]
        h[a : a + len(block)] = np.fromiter(map(hash_fn, block), dtype=np.int64, count=len(block))
        del block
    codes = pd.factorize(h)[0].astype(np.int64)
    del h
    if n == 0:
        return codes
    sizes = np.bincount(codes)
    shared = np.flatnonzero(sizes[codes] > 1)  # texts whose hash another text has too
    if shared.shape[0] == 0:
        return codes
    shared = shared[np.argsort(codes[shared], kind="stable")]
    bounds = np.flatnonzero(np.diff(codes[shared])) + 1
    next_code = int(sizes.shape[0])
    split = False
    for run in np.split(shared, bounds):
        seen: dict[str, int] = {}
        for i in run.tolist():
            t = _normalised(texts[i])
            if t not in seen:  # the first text of the run keeps the hash's code
                seen[t] = int(codes[i]) if not seen else next_code
                next_code += len(seen) > 1
            if seen[t] != codes[i]:
                codes[i] = seen[t]
                split = True
    # a split class numbered after the others: renumber by first occurrence, as factorize does
    return pd.factorize(codes)[0].astype(np.int64) if split else codes


def dedup_text(src, text_key: np.ndarray) -> np.ndarray:
    """Mask of the source's pairs to keep: the first negative of each (query, text)."""
    if len(src) == 0:
        return np.ones(0, dtype=bool)
    keys = text_key[src.p_idx]
    # rows are sorted by (query, rank): a stable sort on (query, text) keeps the best rank first
    order = np.lexsort((np.arange(len(src)), keys, src.q_idx))
    q, k = src.q_idx[order], keys[order]
    first = np.ones(len(src), dtype=bool)
    first[1:] = (q[1:] != q[:-1]) | (k[1:] != k[:-1])
    keep = np.zeros(len(src), dtype=bool)
    keep[order[first]] = True
    return keep
