"""The ``random`` miner: a seeded uniform sample of non-positive, non-excluded passages. Its
"score" is the U(0, 1) key that orders the sample (no relevance meaning), so relevance filters
are refused (:func:`eci_core.mining.params.check_params`)."""

from __future__ import annotations

import numpy as np

from eci_core.mining.result import MiningResult
from eci_core.mining.selection import MiningContext, collect


def mine_random(ctx: MiningContext, extra: dict[int, list[int]]) -> MiningResult:
    """Uniform sample without replacement of ``num_negatives`` non-positive, non-excluded
    passages per query; score = a U(0, 1) key, sorted descending."""
    coll, prm, rng = ctx.coll, ctx.prm, ctx.rng
    allowed = np.flatnonzero(~ctx.excluded)
    k = prm.num_negatives
    nq = ctx.q_list.size
    cand_idx = np.full((nq, k), -1, dtype=np.int64)
    cand_score = np.full((nq, k), -np.inf)
    for r, q in enumerate(ctx.q_list):
        pos = np.asarray(coll.positives[int(q)], dtype=np.int64)
        pool_n = allowed.size
        take = min(k + pos.size, pool_n)
        draw = allowed[rng.choice(pool_n, size=take, replace=False)]
        draw = draw[~np.isin(draw, pos)][:k]
        keys = np.sort(rng.random(draw.size))[::-1]
        cand_idx[r, : draw.size] = draw
        cand_score[r, : draw.size] = keys
        ctx.tick("Sampling", r + 1, nq)
    keep = cand_idx >= 0
    extra_scored = {q: [(p, float(rng.random())) for p in ps] for q, ps in extra.items()}
    return collect(
        ctx,
        "random",
        ctx.q_list,
        cand_idx,
        cand_score,
        keep,
        np.full(nq, np.nan),
        extra_scored,
        {},
        int(keep.sum()),
    )
