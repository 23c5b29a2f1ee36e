"""Cross-encoder rescoring: the ``cross-encoder`` method (the union of the BM25 and dense
top-``pool_size`` pools) and ``bm25+ce`` (the BM25 top-``pool_size`` pool), both rescored by the
cross-encoder (bundled ONNX ms-marco-MiniLM-L-12-v2 by default); the score is its logit."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from eci_core.mining.bm25 import Bm25
from eci_core.mining.dense import Dense, resolve_encoder
from eci_core.mining.result import MiningResult
from eci_core.mining.selection import MiningContext, collect, score_extra, select_candidates


def resolve_cross_encoder(cross_encoder):
    """A CrossEncoderModel as given, or loaded from a name / folder (None = bundled ONNX)."""
    from eci_core.models.registry import load_cross_encoder

    if cross_encoder is None or isinstance(cross_encoder, (str, Path)):
        ce = load_cross_encoder(None if cross_encoder is None else str(cross_encoder))
        if ce is None:
            raise ValueError(
                f"cross_encoder={cross_encoder!r}: this method needs a cross-encoder; use the bundled "
                "default (None)"
            )
        return ce
    return cross_encoder


def mine_ce(
    ctx: MiningContext, method: str, encoder, cross_encoder, pool_size: int, cache, extra
) -> MiningResult:
    """Pool candidates (BM25, plus dense for ``cross-encoder``), rescore with the cross-encoder."""
    from eci_core.models.encoding import cross_scores

    coll, nq = ctx.coll, ctx.q_list.size
    ce = resolve_cross_encoder(cross_encoder)
    pools = [Bm25(coll.passage_texts, ctx.progress).retrieve(ctx, pool_size)[0]]
    if method == "cross-encoder":
        dense = Dense(resolve_encoder(encoder), coll.passage_texts, cache=cache, progress=ctx.progress)
        pools.append(dense.retrieve(ctx, pool_size)[0])
    pool = np.concatenate(pools, axis=1)
    # union per row, first occurrence kept, -1 dropped
    rows_q, rows_p = [], []
    for r in range(nq):
        ids = pool[r][pool[r] >= 0]
        _, first = np.unique(ids, return_index=True)
        ids = ids[np.sort(first)]
        rows_q.append(np.full(ids.size, r, dtype=np.int64))
        rows_p.append(ids)
    rq = np.concatenate(rows_q)
    rp = np.concatenate(rows_p)

    def pair(qi_rows_or_q: np.ndarray, ps: np.ndarray, by_row: bool = False) -> np.ndarray:
        qs = ctx.q_list[qi_rows_or_q] if by_row else qi_rows_or_q
        texts = [(coll.query_texts[int(q)], coll.passage_texts[int(p)]) for q, p in zip(qs, ps)]
        prog = (lambda stage, d, t: ctx.tick("Cross-encoder", d, t)) if ctx.progress else None
        return np.asarray(cross_scores(ce, texts, cache=cache, progress=prog), dtype=np.float64)

    # one cross-encoder pass over pool pairs and positive pairs (the cache dedups repeats)
    pos_q, pos_p = [], []
    for q in ctx.q_list:
        for p in coll.positives[int(q)]:
            pos_q.append(int(q))
            pos_p.append(p)
    all_scores = pair(
        np.concatenate([ctx.q_list[rq], np.asarray(pos_q, np.int64)]),
        np.concatenate([rp, np.asarray(pos_p, np.int64)]),
    )
    cand_sc_flat = all_scores[: rq.size]
    pos_flat = all_scores[rq.size :]
    pos_score = np.full(nq, np.inf)
    np.minimum.at(pos_score, np.searchsorted(ctx.q_list, np.asarray(pos_q, np.int64)), pos_flat)
    width = max((a.size for a in rows_p), default=0)
    cand_idx = np.full((nq, max(width, 1)), -1, dtype=np.int64)
    cand_score = np.full((nq, max(width, 1)), -np.inf)
    off = 0
    for r, ids in enumerate(rows_p):
        cand_idx[r, : ids.size] = ids
        cand_score[r, : ids.size] = cand_sc_flat[off : off + ids.size]
        off += ids.size
    order = np.lexsort((np.where(cand_idx < 0, np.iinfo(np.int64).max, cand_idx), -cand_score), axis=1)
    cand_idx = np.take_along_axis(cand_idx, order, axis=1)
    cand_score = np.take_along_axis(cand_score, order, axis=1)
    skipped: dict[str, int] = {}
    keep, n_cand = select_candidates(cand_idx, cand_score, pos_score, ctx.prm, ctx.rng, skipped)
    extra_scored = score_extra(extra, pair)
    return collect(
        ctx, method, ctx.q_list, cand_idx, cand_score, keep, pos_score, extra_scored, skipped, n_cand
    )
