"""Dense candidates: cosine ``s(q, p) = f(q) · f(p)`` of L2-normalised bi-encoder embeddings
(``models.encoding.embed``, through the embedding cache). The top-k is taken per chunk of
queries by :func:`eci_core.metrics.retrieval.top_k_rows` (memory O(chunk · n_passages), never a
full query × corpus matrix), ties by passage index."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from eci_core.metrics.retrieval import top_k_rows
from eci_core.mining.params import Progress
from eci_core.mining.selection import MiningContext


def resolve_encoder(encoder):
    """An Encoder as given, or loaded from a registry name / folder (None = bundled MiniLM)."""
    from eci_core.models.registry import load_encoder

    return load_encoder(encoder) if encoder is None or isinstance(encoder, (str, Path)) else encoder


class Dense:
    """Cosine similarities of L2-normalised embeddings from ``encoders.embed``."""

    stage = "Dense retrieval"
    chunk_cap = 1024

    def __init__(self, encoder, passage_texts, cache=None, progress: Progress | None = None):
        from eci_core.models.encoding import embed

        self._embed = embed
        self.encoder = encoder
        self.cache = cache
        self.progress = progress
        self.p_emb = np.ascontiguousarray(
            embed(encoder, list(passage_texts), "passage", cache=cache, progress=progress), dtype=np.float32
        )
        self.n = self.p_emb.shape[0]

    def queries(self, texts: Sequence[str]) -> np.ndarray:
        """Query embeddings (float32, L2-normalised)."""
        return np.ascontiguousarray(
            self._embed(self.encoder, list(texts), "query", cache=self.cache, progress=self.progress),
            dtype=np.float32,
        )

    def block(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), n_passages) float32 cosine similarities."""
        return self.queries(texts) @ self.p_emb.T

    def retrieve(self, ctx: MiningContext, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` non-positive, non-excluded passages per query of ``ctx.q_list``: (nq, k)
        indices (-1 = none) and float32 scores, by score descending then index."""
        nq = ctx.q_list.size
        k = min(k, ctx.coll.n_passages)
        all_idx = np.full((nq, k), -1, dtype=np.int64)
        all_sc = np.full((nq, k), -np.inf, dtype=np.float32)
        for rows, block in ctx.blocks(self):
            idx, sc = top_k_rows(ctx.masked(rows, block), k)
            all_idx[rows, : idx.shape[1]] = idx
            all_sc[rows, : sc.shape[1]] = sc
            del block
        return all_idx, all_sc

    def pair_scorer(self, ctx: MiningContext):
        """``f(query indices, passage indices) -> float64 scores`` (each query embedded once)."""
        coll = ctx.coll

        def g(qs: np.ndarray, ps: np.ndarray) -> np.ndarray:
            uq, inv = np.unique(qs, return_inverse=True)
            qe = self.queries([coll.query_texts[int(q)] for q in uq])
            return np.einsum("ij,ij->i", qe[inv], self.p_emb[ps]).astype(np.float64)

        return g
