"""Retrieval evaluation of trained embeddings with ir_measures (no hand-written metric).

For each test query the whole evaluation corpus is ranked by cosine similarity (dot product of
L2-normalised embeddings); the top ``depth`` passages form the run handed to ``ir_measures``
with the binary qrels (every labelled positive has relevance 1), evaluated by the library's one
evaluator (:func:`eci_core.metrics.retrieval.evaluate_run`; top-k by
:func:`eci_core.metrics.retrieval.top_k`, ties by passage index). Measures: ``nDCG@10`` (the
headline), ``R@10`` and ``RR@10`` (MRR@10), per query. ``depth`` ≥ 10 makes the @10 measures
equal to those of the full ranking.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from eci_core.metrics.retrieval import DEFAULT_MEASURES, evaluate_run, top_k

#: ir_measures names → column names of the per-query table.
MEASURES = DEFAULT_MEASURES


def evaluate_embeddings(
    q_emb: np.ndarray,
    query_ids: Sequence[str],
    p_emb: np.ndarray,
    passage_ids: Sequence[str],
    qrels: dict[str, dict[str, int]],
    depth: int = 100,
) -> dict[str, dict[str, float]]:
    """Rank all of ``p_emb`` for each query of ``q_emb`` and evaluate with
    :func:`eci_core.metrics.retrieval.evaluate_run`."""
    idx, sc = top_k(np.asarray(q_emb, np.float32), np.asarray(p_emb, np.float32), depth)
    pids = np.asarray(passage_ids, dtype=object)
    run = {
        str(q): dict(zip(pids[idx[i]].tolist(), sc[i].astype(float).tolist()))
        for i, q in enumerate(query_ids)
    }
    return evaluate_run(run, qrels, MEASURES)
