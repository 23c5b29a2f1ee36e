"""Retrieval evaluation of trained embeddings with ir_measures (no hand-written metric).

For each test query the whole evaluation corpus is ranked by cosine similarity (dot product of
L2-normalised embeddings); the top ``depth`` passages form the run handed to ``ir_measures``
with the binary qrels (every labelled positive has relevance 1). Measures: ``nDCG@10`` (the
headline), ``R@10`` and ``RR@10`` (MRR@10), per query. ``depth`` ≥ 10 makes the @10 measures
equal to those of the full ranking.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

#: ir_measures names → column names of the per-query table.
MEASURES = {"nDCG@10": "ndcg@10", "R@10": "recall@10", "RR@10": "mrr@10"}


def top_k(q_emb: np.ndarray, p_emb: np.ndarray, k: int, chunk: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Per query, the ``k`` best passages by dot product: (n_q, k) column indices and scores,
    best first (ties by column index), in chunks of queries (memory O(chunk · n_passages))."""
    n = p_emb.shape[0]
    k = min(k, n)
    idx_out = np.empty((q_emb.shape[0], k), dtype=np.int64)
    sc_out = np.empty((q_emb.shape[0], k), dtype=np.float32)
    for s in range(0, q_emb.shape[0], chunk):
        block = q_emb[s : s + chunk] @ p_emb.T
        part = (
            np.argpartition(-block, k - 1, axis=1)[:, :k]
            if k < n
            else np.broadcast_to(np.arange(n), block.shape)
        )
        top = np.take_along_axis(block, part, axis=1)
        order = np.lexsort((part, -top), axis=1)
        idx_out[s : s + chunk] = np.take_along_axis(part, order, axis=1)
        sc_out[s : s + chunk] = np.take_along_axis(top, order, axis=1)
    return idx_out, sc_out


def evaluate_run(
    run: dict[str, dict[str, float]], qrels: dict[str, dict[str, int]]
) -> dict[str, dict[str, float]]:
    """Per-query ``{query_id: {"ndcg@10", "recall@10", "mrr@10"}}`` computed by ir_measures.

    ``run``: query id → {passage id: score}; ``qrels``: query id → {passage id: relevance}. A
    query in ``qrels`` that the run misses scores 0 on every measure."""
    import ir_measures

    measures = [ir_measures.parse_measure(m) for m in MEASURES]
    out = {q: {c: 0.0 for c in MEASURES.values()} for q in qrels}
    for m in ir_measures.iter_calc(measures, qrels, run):
        if m.query_id in out:
            out[m.query_id][MEASURES[str(m.measure)]] = float(m.value)
    return out


def evaluate_embeddings(
    q_emb: np.ndarray,
    query_ids: Sequence[str],
    p_emb: np.ndarray,
    passage_ids: Sequence[str],
    qrels: dict[str, dict[str, int]],
    depth: int = 100,
) -> dict[str, dict[str, float]]:
    """Rank all of ``p_emb`` for each query of ``q_emb`` and evaluate with :func:`evaluate_run`."""
    idx, sc = top_k(np.asarray(q_emb, np.float32), np.asarray(p_emb, np.float32), depth)
    pids = np.asarray(passage_ids, dtype=object)
    run = {
        str(q): dict(zip(pids[idx[i]].tolist(), sc[i].astype(float).tolist()))
        for i, q in enumerate(query_ids)
    }
    return evaluate_run(run, qrels)
