"""The model-free :class:`HashingEncoder`: a hashed bag of words, for tests and instant runs
(``--encoder hashing``)."""

from __future__ import annotations

import hashlib
from functools import lru_cache
from typing import Sequence

import numpy as np

from eci_core.models.base import check_texts
from eci_core.text import tokenize


@lru_cache(maxsize=1 << 18)
def _token_hash(token: str) -> int:
    return int.from_bytes(hashlib.blake2b(token.encode("utf-8"), digest_size=8).digest(), "little")


class HashingEncoder:
    """Model-free hashed bag of words (the "hashing trick"), L2-normalised.

    For each token ``t`` of :func:`eci_core.text.tokenize` (the library's one tokenizer: lowercase
    ``\\w+`` runs) with ``h = blake2b-64(t)``:
    ``v[h mod dim] += sign(t)`` with ``sign(t) = +1`` if bit 63 of ``h`` is set else ``-1``;
    then ``v ← v / ‖v‖₂``. Signed hashing keeps ``E[⟨v_a, v_b⟩]`` equal to the unhashed
    term-count inner product. A text with no tokens (or whose signs cancel to the zero vector)
    gets the vector of the reserved token ``"\\0empty"``, so every row has norm 1.
    Deterministic across runs and machines; queries and passages are encoded alike.
    """

    def __init__(self, dim: int = 256):
        if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 2:
            raise ValueError(f"dim={dim!r}: must be an integer >= 2 (e.g. 256)")
        self.dim = int(dim)
        self.name = f"hashing (dim {self.dim})"
        self.fingerprint = f"hashing-v1-dim{self.dim}"
        self.n_encoded = 0

    def _encode(self, texts: Sequence[str]) -> np.ndarray:
        texts = check_texts(texts)
        n = len(texts)
        rows: list[int] = []
        hashes: list[int] = []
        for i, text in enumerate(texts):
            toks = tokenize(text)
            hashes.extend(_token_hash(t) for t in toks)
            rows.extend([i] * len(toks))
        mat = np.zeros((n, self.dim), dtype=np.float64)
        if hashes:
            h = np.array(hashes, dtype=np.uint64)
            cols = (h % np.uint64(self.dim)).astype(np.intp)
            signs = np.where((h >> np.uint64(63)) & np.uint64(1), 1.0, -1.0)
            np.add.at(mat, (np.array(rows, dtype=np.intp), cols), signs)
        norms = np.linalg.norm(mat, axis=1)
        empty = norms == 0
        if empty.any():
            h0 = _token_hash("\0empty")
            mat[empty, h0 % self.dim] = 1.0 if (h0 >> 63) & 1 else -1.0
            norms[empty] = 1.0
        self.n_encoded += n
        return (mat / norms[:, None]).astype(np.float32)

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts)

    def encode_passages(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts)

    def __repr__(self) -> str:
        return f"HashingEncoder(dim={self.dim})"


__all__ = ["HashingEncoder"]
