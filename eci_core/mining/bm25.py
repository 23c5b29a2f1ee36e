"""BM25 candidates: ``bm25s`` (Lucene BM25, k1 = 1.5, b = 0.75) over the whole corpus.

The candidates of a query are retrieved by ``bm25s``' own ``BM25.retrieve(k=...)`` (excluded
passages masked out with its ``weight_mask``), then the query's positives are dropped and the
rest is ordered by score, ties by passage index. ``retrieve`` picks arbitrarily among passages
tied with its ``k``-th (``np.argpartition``), so ``k`` is one more than needed: when the extra
passage ties with the last one kept, the tie crosses the cut and that query's candidates are
taken from its full score row instead (:func:`eci_core.metrics.retrieval.top_k_rows`, lowest
indices first). Either way the candidates are the ``k`` best non-positive, non-excluded
passages by (score desc, index asc), exactly what ranking the full score matrix gives.

Tokenizer: ``bm25s.tokenize`` with English stop words, not :func:`eci_core.text.tokenize`. It
is the analyser BM25 baselines use (Lucene-style: lowercase tokens of two or more word
characters, English stop words removed), and the BM25 scores, the shipped ``bm25`` sources and
the BM25 pools of the cross-encoder miners are defined by it; the library's tokenizer keeps
one-character tokens and stop words, which the lexical-overlap metric of the contract counts.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from eci_core.metrics.retrieval import top_k_rows
from eci_core.mining.params import Progress, chunk_size
from eci_core.mining.selection import MiningContext


class Bm25:
    """BM25 over the corpus (bm25s, Lucene BM25, English stop words)."""

    stage = "BM25 retrieval"
    chunk_cap = 256

    def __init__(self, texts: Sequence[str], progress: Progress | None = None):
        import bm25s

        if progress:
            progress("BM25 index", 0, 1)
        self._bm25s = bm25s
        self.n = len(texts)
        self.retriever = bm25s.BM25()
        self.retriever.index(
            bm25s.tokenize(list(texts), stopwords="en", show_progress=False), show_progress=False
        )
        if progress:
            progress("BM25 index", 1, 1)

    def tokens(self, texts: Sequence[str]) -> list[list[str]]:
        """``bm25s.tokenize`` of ``texts`` (English stop words) as lists of strings."""
        toks = self._bm25s.tokenize(list(texts), stopwords="en", return_ids=False, show_progress=False)
        return [list(t) for t in toks]

    def block(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), n_passages) float32 BM25 scores (0 for a query with no known token)."""
        out = np.zeros((len(texts), self.n), dtype=np.float32)
        for i, toks in enumerate(self.tokens(texts)):
            if toks:
                out[i] = self.retriever.get_scores(toks)
        return out

    def retrieve(self, ctx: MiningContext, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` non-positive, non-excluded passages per query of ``ctx.q_list``:
        (nq, k) indices (-1 = none) and float32 scores, by score descending then index (module
        docstring: ``bm25s``' ``retrieve``, the full row where a tie crosses its cut)."""
        coll, n, nq = ctx.coll, self.n, ctx.q_list.size
        k = min(k, n)
        all_idx = np.full((nq, k), -1, dtype=np.int64)
        all_sc = np.full((nq, k), -np.inf, dtype=np.float32)
        mask = (~ctx.excluded).astype(np.float32) if ctx.excluded.any() else None
        chunk = chunk_size(n, cap=self.chunk_cap)
        self.n_full_rows = 0
        for start in range(0, nq, chunk):
            rows = np.arange(start, min(start + chunk, nq))
            qs = [int(q) for q in ctx.q_list[rows]]
            # k + the most positives of a query, + 1 to see whether a tie crosses the cut
            want = min(n, k + max(len(coll.positives[q]) for q in qs) + 1)
            res = self.retriever.retrieve(
                self.tokens([coll.query_texts[q] for q in qs]),
                k=want,
                sorted=True,
                show_progress=False,
                weight_mask=mask,
                return_as="tuple",
            )
            docs, scores = np.asarray(res.documents, dtype=np.int64), np.asarray(res.scores, np.float32)
            for r, q in zip(rows, qs):
                d, s = docs[r - start], scores[r - start]
                if want < n:
                    if s[-1] == s[-2]:  # a tie crosses retrieve's cut: rank the full row
                        self.n_full_rows += 1
                        full = ctx.masked(np.array([r]), self.block([coll.query_texts[q]]))
                        idx, sc = top_k_rows(full, k)
                        all_idx[r, : idx.shape[1]], all_sc[r, : sc.shape[1]] = idx[0], sc[0]
                        continue
                    d, s = d[:-1], s[:-1]
                keep = ~ctx.excluded[d] & ~np.isin(d, coll.positives[q])
                d, s = d[keep], s[keep]
                order = np.lexsort((d, -s))[:k]
                all_idx[r, : order.size], all_sc[r, : order.size] = d[order], s[order]
            ctx.tick(self.stage, int(rows[-1]) + 1, nq)
        return all_idx, all_sc

    def pair_scorer(self, ctx: MiningContext):
        """``f(query indices, passage indices) -> float64 scores`` (one score row per query)."""
        coll = ctx.coll

        def f(qs: np.ndarray, ps: np.ndarray) -> np.ndarray:
            out = np.empty(len(qs), dtype=np.float64)
            for q in np.unique(qs):
                m = qs == q
                out[m] = self.block([coll.query_texts[int(q)]])[0, ps[m]]
            return out

        return f
