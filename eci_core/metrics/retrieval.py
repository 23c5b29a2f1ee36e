"""Retrieval: the one top-k selection and the one evaluator (ir_measures) of the library.

* :func:`top_k_rows` the ``k`` best columns of each row of a score block, best first, ties by
  column index (also at the cut: among passages tied with the ``k``-th, the lowest indices are
  kept, so the result does not depend on ``np.argpartition``'s arbitrary pick); used by the dense
  miner, the validation's ranking and its evaluation pool.
* :func:`top_k` the same over ``q_emb @ p_emb.T``, computed per chunk of queries (memory
  O(chunk · n_passages), never the whole query × corpus matrix).
* :func:`evaluate_run` per-query measures of a run against qrels, computed by ``ir_measures``
  (trec_eval's definitions; no hand-written metric). The validation's nDCG@10 / R@10 / MRR@10
  and :func:`positive_rank_metrics` (the miners' R@k / MRR) both go through it.
"""

from __future__ import annotations

from typing import Iterable, Mapping, Sequence

import numpy as np

#: ir_measures names → column names of the per-query table (the validation's measures).
DEFAULT_MEASURES = {"nDCG@10": "ndcg@10", "R@10": "recall@10", "RR@10": "mrr@10"}


def top_k_rows(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row of ``scores`` (n_rows, n_cols), the ``k`` best columns sorted by score descending,
    ties by column index: ``(indices int64, scores)`` of shape (n_rows, min(k, n_cols)). Cells
    scoring -inf come back as index -1 (a masked-out column is never returned). ``scores`` is
    only read."""
    n = scores.shape[1]
    k = min(k, n)
    if k <= 0:
        empty = (scores.shape[0], 0)
        return np.full(empty, -1, np.int64), np.full(empty, -np.inf, scores.dtype)
    if k < n:
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        # argpartition picks arbitrarily among scores tied with the k-th: keep the lowest indices
        kth = np.take_along_axis(scores, part, axis=1).min(axis=1)
        for r in np.flatnonzero((scores >= kth[:, None]).sum(axis=1) > k):
            above = np.flatnonzero(scores[r] > kth[r])
            tied = np.flatnonzero(scores[r] == kth[r])
            part[r] = np.concatenate([above, tied[: k - above.size]])
    else:
        part = np.broadcast_to(np.arange(n), scores.shape).copy()
    top = np.take_along_axis(scores, part, axis=1)
    order = np.lexsort((part, -top), axis=1)
    idx = np.take_along_axis(part, order, axis=1).astype(np.int64)
    sc = np.take_along_axis(top, order, axis=1)
    idx[~np.isfinite(sc) & (sc < 0)] = -1
    return idx, sc


def top_k(q_emb: np.ndarray, p_emb: np.ndarray, k: int, chunk: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Per query, the ``k`` best passages by dot product (:func:`top_k_rows` of
    ``q_emb @ p_emb.T``): (n_q, k) column indices and scores, best first, ties by column index,
    in chunks of ``chunk`` queries (memory O(chunk · n_passages))."""
    k = min(k, p_emb.shape[0])
    idx_out = np.empty((q_emb.shape[0], k), dtype=np.int64)
    sc_out = np.empty((q_emb.shape[0], k), dtype=np.result_type(q_emb.dtype, p_emb.dtype))
    for s in range(0, q_emb.shape[0], chunk):
        idx_out[s : s + chunk], sc_out[s : s + chunk] = top_k_rows(q_emb[s : s + chunk] @ p_emb.T, k)
    return idx_out, sc_out


def evaluate_run(
    run: Mapping[str, Mapping[str, float]],
    qrels: Mapping[str, Mapping[str, int]],
    measures: Mapping[str, str] = DEFAULT_MEASURES,
) -> dict[str, dict[str, float]]:
    """Per-query ``{query_id: {column: value}}`` of ``measures`` (ir_measures name → column
    name, default nDCG@10, R@10, RR@10) computed by ir_measures.

    ``run``: query id → {passage id: score} (ranked by score, trec_eval's rules); ``qrels``:
    query id → {passage id: relevance}. A query in ``qrels`` that the run misses scores 0 on
    every measure."""
    import ir_measures

    parsed = {str(ir_measures.parse_measure(m)): col for m, col in measures.items()}
    out = {q: {c: 0.0 for c in parsed.values()} for q in qrels}
    for m in ir_measures.iter_calc([ir_measures.parse_measure(m) for m in measures], qrels, run):
        if m.query_id in out:
            out[m.query_id][parsed[str(m.measure)]] = float(m.value)
    return out


def positive_rank_metrics(
    rows: Iterable[tuple[np.ndarray, np.ndarray]], ks: Sequence[int] = (1, 10)
) -> dict[str, float]:
    """R@k and MRR of exhaustive rankings, each positive ranked against the non-positives only.

    ``rows`` yields, per query, ``(scores, positives)``: the scores of every passage (a masked-out
    passage at -inf) and the column indices of the query's positives. For a positive p,
    rank(p) = 1 + #{non-positive d : s(d) ≥ s(p)} (ties count against the positive; the other
    positives do not compete). R@k = mean_q |{p : rank(p) ≤ k}| / |P_q| (with one positive, the
    hit rate); MRR = mean_q 1 / min_p rank(p). A positive scored -inf (masked out) is never
    retrieved: it counts 0 in R@k and RR.

    Computed by ir_measures (:func:`evaluate_run`): each (query, positive) pair is one run of the
    passages ranked above p (score 1) followed by p (score 0, the one relevant passage), so
    trec_eval's ``R@k`` is [rank(p) ≤ k] and its ``RR`` is 1 / rank(p); R@k is averaged over the
    query's positives and RR maximised over them. Queries are evaluated 256 at a time (a run
    holds the passages above each positive, at most every passage)."""
    ks = [int(k) for k in ks]
    measures = {f"R@{k}": f"R@{k}" for k in ks} | {"RR": "RR"}
    recall = {k: 0.0 for k in ks}
    rr = 0.0
    nq = 0

    def flush(batch: list[list[str]], run: dict, qrels: dict) -> None:
        nonlocal rr
        res = evaluate_run(run, qrels, measures)
        for pqs in batch:
            for k in ks:
                recall[k] += float(np.mean([res[pq][f"R@{k}"] for pq in pqs]))
            rr += max(res[pq]["RR"] for pq in pqs)

    batch: list[list[str]] = []
    run: dict[str, dict[str, float]] = {}
    qrels: dict[str, dict[str, int]] = {}
    for scores, positives in rows:
        pos = np.asarray(positives, dtype=np.int64)
        rest = np.asarray(scores).copy()
        rest[pos] = -np.inf
        is_pos = np.zeros(rest.size, dtype=bool)
        is_pos[pos] = True
        pqs = []
        for j, p in enumerate(pos):
            pq = f"{nq}/{j}"
            qrels[pq] = {"p": 1}
            pqs.append(pq)
            if scores[p] == -np.inf:  # a masked-out positive is never retrieved: R@k = RR = 0
                continue
            above = np.flatnonzero((rest >= scores[p]) & ~is_pos)
            run[pq] = dict.fromkeys(map(str, above.tolist()), 1.0) | {"p": 0.0}
        batch.append(pqs)
        nq += 1
        if len(batch) == 256:
            flush(batch, run, qrels)
            batch, run, qrels = [], {}, {}
    if batch:
        flush(batch, run, qrels)
    n = max(nq, 1)
    out = {f"R@{k}": v / n for k, v in recall.items()}
    out["MRR"] = rr / n
    return out


__all__ = ["DEFAULT_MEASURES", "evaluate_run", "positive_rank_metrics", "top_k", "top_k_rows"]
