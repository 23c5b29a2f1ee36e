"""Lexical residuality: tokenizer, IDF and the IDF-weighted overlap of a negative with a positive.

Definitions (``shared/spec/ECI.md``, pairs table, ``lex_overlap``):

* tokens of a text: the lowercase ``\\w+`` runs (Unicode word characters), each counted once
  per text (binary bag of words);
* IDF over a reference set of N texts (default: every passage of the collection; option: a
  given corpus): ``idf(t) = ln((N + 1) / (df(t) + 1)) + 1`` where ``df(t)`` is the number of
  reference texts that contain ``t`` (a token never seen in the reference set has ``df = 0``);
* ``lex_overlap(n, p) = Σ_{t ∈ T(n) ∩ T(p)} idf(t) / Σ_{t ∈ T(n)} idf(t)`` with ``T(x)`` the
  distinct tokens of ``x``; 0 when the negative has no token. It is the IDF-weighted share of
  the negative's vocabulary that also occurs in the positive, in [0, 1].

Everything is vectorised with binary ``scipy.sparse`` CSR token matrices: the overlap of
many (negative, positive) rows is ``(A ∘ B) · idf / (A · idf)``.
"""

from __future__ import annotations

import re
from typing import Iterable, Sequence

import numpy as np

TOKEN_RE = re.compile(r"\w+")


def tokenize(text: str) -> list[str]:
    """Lowercase ``\\w+`` tokens of ``text`` in order (with repeats)."""
    return TOKEN_RE.findall(text.lower())


def token_matrix(texts: Iterable[str], vocab: dict[str, int] | None = None, grow: bool = True):
    """Binary CSR matrix (n_texts × |vocab|): entry 1 when the text contains the token.

    ``vocab`` (token → column) is extended in place with unseen tokens when ``grow`` is true,
    else unseen tokens are ignored. Returns ``(matrix, vocab)``.

    New tokens get columns in order of first occurrence (not in ``set`` order, which follows the
    per-process string hash), so IDF sums, hence ``lex_overlap``, are the same to the last bit in
    every run. Memory: 5 bytes per (text, distinct token) entry (int32 column indices, int8 ones; products
    with float64 IDF vectors are exact, so every overlap equals the float64-matrix value), built
    in a compact ``array`` buffer rather than a Python list.
    """
    from array import array

    from scipy import sparse

    vocab = {} if vocab is None else vocab
    lengths = array("q", [0])
    indices = array("i")  # C int: 4 bytes
    for text in texts:
        toks = dict.fromkeys(TOKEN_RE.findall(text.lower()))  # distinct, in order: columns never depend on str hashing
        if grow:
            ids = [vocab.setdefault(t, len(vocab)) for t in toks]
        else:
            ids = [vocab[t] for t in toks if t in vocab]
        ids.sort()
        indices.extend(ids)
        lengths.append(len(ids))
    indptr = np.cumsum(np.frombuffer(lengths, dtype=np.int64))
    del lengths
    idx = np.frombuffer(indices, dtype=np.intc).astype(np.int32, copy=False)
    if indptr[-1] >= 2**31:  # scipy needs int64 indices beyond 2^31 entries
        idx = idx.astype(np.int64)
    else:
        indptr = indptr.astype(np.int32)
    mat = sparse.csr_matrix(
        (np.ones(idx.shape[0], dtype=np.int8), idx, indptr),
        shape=(indptr.shape[0] - 1, len(vocab)), copy=False,
    )
    return mat, vocab


def idf_weights(reference, n_tokens: int | None = None) -> np.ndarray:
    """``idf(t) = ln((N + 1) / (df(t) + 1)) + 1`` from a binary reference token matrix (N rows).

    ``n_tokens`` pads the vector to a larger vocabulary (tokens absent from the reference get
    ``df = 0``).
    """
    n = reference.shape[0]
    df = np.asarray(reference.sum(axis=0)).ravel()
    if n_tokens is not None and n_tokens > df.shape[0]:
        df = np.concatenate([df, np.zeros(n_tokens - df.shape[0])])
    return np.log((n + 1.0) / (df + 1.0)) + 1.0


def overlap_rows(neg_rows, pos_rows, idf: np.ndarray) -> np.ndarray:
    """Row-wise ``lex_overlap`` of two row-aligned binary CSR matrices (float64, 0 for an empty
    negative)."""
    num = np.asarray(neg_rows.multiply(pos_rows) @ idf).ravel()
    den = np.asarray(neg_rows @ idf).ravel()
    out = np.zeros(num.shape[0], dtype=np.float64)
    np.divide(num, den, out=out, where=den > 0)
    return out


class PassageLexicon:
    """Binary token matrix of a list of passages with the IDF of a reference set.

    ``PassageLexicon(texts)`` takes IDF over ``texts`` themselves (the spec's default: all
    passages loaded in the session); ``PassageLexicon(texts, idf_corpus=corpus)`` takes IDF over
    ``corpus`` instead. :meth:`overlap` then scores (negative index, positive index) pairs.
    """

    def __init__(self, texts: Sequence[str], idf_corpus: Sequence[str] | None = None):
        self.matrix, self.vocab = token_matrix(texts)
        if idf_corpus is None:
            self.idf = idf_weights(self.matrix)
        else:
            ref, _ = token_matrix(idf_corpus, vocab=self.vocab, grow=False)
            self.idf = idf_weights(ref, n_tokens=len(self.vocab))

    @classmethod
    def from_matrix(cls, matrix, idf: np.ndarray | None = None) -> "PassageLexicon":
        """A lexicon from an existing binary token matrix (rows = passages, e.g. token-id
        arrays of a tokenizer); IDF over its own rows unless ``idf`` is given."""
        self = cls.__new__(cls)
        self.matrix = matrix.tocsr()
        self.vocab = {}
        self.idf = idf_weights(self.matrix) if idf is None else np.asarray(idf, dtype=np.float64)
        if self.idf.shape[0] != self.matrix.shape[1]:
            raise ValueError(f"idf has {self.idf.shape[0]} entries for a vocabulary of {self.matrix.shape[1]} tokens")
        return self

    def overlap(self, neg_idx: np.ndarray, pos_idx: np.ndarray, chunk: int = 200_000) -> np.ndarray:
        """``lex_overlap`` of passage ``neg_idx[i]`` against passage ``pos_idx[i]`` for every i."""
        neg_idx = np.asarray(neg_idx, dtype=np.int64)
        pos_idx = np.asarray(pos_idx, dtype=np.int64)
        if neg_idx.shape != pos_idx.shape:
            raise ValueError(f"neg_idx {neg_idx.shape} and pos_idx {pos_idx.shape} must have the same shape")
        out = np.empty(neg_idx.shape[0], dtype=np.float64)
        for a in range(0, neg_idx.shape[0], chunk):
            b = min(a + chunk, neg_idx.shape[0])
            out[a:b] = overlap_rows(self.matrix[neg_idx[a:b]], self.matrix[pos_idx[a:b]], self.idf)
        return out


def lex_overlap(negatives: Sequence[str], positives: Sequence[str], idf_corpus: Sequence[str] | None = None) -> np.ndarray:
    """``lex_overlap`` of ``negatives[i]`` against ``positives[i]`` (texts), IDF over
    ``idf_corpus`` (default: the given negatives and positives together)."""
    if len(negatives) != len(positives):
        raise ValueError(f"negatives ({len(negatives)}) and positives ({len(positives)}) must have the same length")
    texts = list(negatives) + list(positives)
    lex = PassageLexicon(texts, idf_corpus=texts if idf_corpus is None else idf_corpus)
    n = len(negatives)
    return lex.overlap(np.arange(n), np.arange(n, 2 * n))
