"""The entry point :func:`mine`, sentence-transformers' ``mine_hard_negatives`` parameters on a
:class:`~eci_core.io.collection.Collection` or a BEIR directory, and the ``bm25`` / ``dense`` miners
(retrieve ``range_max`` candidates, score the positives with the same scorer, select)."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from eci_core.io.collection import Collection
from eci_core.mining.beir import read_beir
from eci_core.mining.bm25 import Bm25
from eci_core.mining.cross_encoder import mine_ce
from eci_core.mining.dense import Dense, resolve_encoder
from eci_core.mining.params import DEFAULT_POOL_SIZE, Progress, check_params
from eci_core.mining.random_negatives import mine_random
from eci_core.mining.result import MiningResult
from eci_core.mining.selection import (
    MiningContext,
    collect,
    resolve_extra,
    score_extra,
    select_candidates,
)


def make_scorer(ctx: MiningContext, method: str, encoder=None, cache=None) -> Bm25 | Dense:
    """The ``bm25`` or ``dense`` scorer over ``ctx``'s corpus."""
    if method == "bm25":
        return Bm25(ctx.coll.passage_texts, ctx.progress)
    return Dense(resolve_encoder(encoder), ctx.coll.passage_texts, cache=cache, progress=ctx.progress)


def mine_scored(ctx: MiningContext, method: str, encoder, cache, extra) -> MiningResult:
    """``bm25`` or ``dense``: the ``range_max`` best candidates, the lowest positive score by the
    same scorer, then the shared selection."""
    scorer = make_scorer(ctx, method, encoder, cache)
    cand_idx, cand_score = scorer.retrieve(ctx, ctx.prm.range_max)
    pair = scorer.pair_scorer(ctx)
    pos_score = ctx.min_positive(pair)
    skipped: dict[str, int] = {}
    keep, n_cand = select_candidates(cand_idx, cand_score, pos_score, ctx.prm, ctx.rng, skipped)
    extra_scored = score_extra(extra, pair)
    return collect(
        ctx, method, ctx.q_list, cand_idx, cand_score, keep, pos_score, extra_scored, skipped, n_cand
    )


def mine(
    data: Collection | str | Path,
    method: str,
    num_negatives: int = 10,
    *,
    range_min: int = 0,
    range_max: int | None = None,
    absolute_margin: float | None = None,
    relative_margin: float | None = None,
    max_score: float | None = None,
    min_score: float | None = None,
    sampling_strategy: str = "top",
    seed: int = 0,
    encoder=None,
    cross_encoder=None,
    pool_size: int | None = None,
    exclude_ids: Iterable[str] = (),
    exclude_prefixes: Sequence[str] = (),
    extra_negatives: Mapping[str, Sequence[str]] | None = None,
    cache=None,
    split: str = "test",
    progress: Progress | None = None,
) -> MiningResult:
    """Mine ``num_negatives`` hard negatives per query with positives (see :mod:`eci_core.mining`).

    Args:
        data: a :class:`Collection` (its passages are the corpus, its ``positives`` the labels) or
            a BEIR directory (read with :func:`read_beir`, ``split`` selects the qrels).
        method: ``"bm25"``, ``"dense"``, ``"cross-encoder"``, ``"bm25+ce"`` or ``"random"``.
        num_negatives, range_min, range_max, absolute_margin, relative_margin, max_score,
            min_score, sampling_strategy, seed: as in sentence-transformers'
            ``mine_hard_negatives`` (:mod:`eci_core.mining`). ``bm25+ce`` defaults ``absolute_margin``
            to ``BM25CE_DEFAULT_MARGIN`` (1.0 logit).
        encoder: bi-encoder for ``dense`` / ``cross-encoder`` (an Encoder, or a name/path for
            ``encoders.load_encoder``; None = bundled MiniLM).
        cross_encoder: a CrossEncoderModel or a name/path (None = bundled ONNX).
        pool_size: candidates per retriever before cross-encoder rescoring (default 50 for
            ``cross-encoder``, 100 for ``bm25+ce``).
        exclude_ids, exclude_prefixes: passages never returned (e.g. ``("llm-",)``).
        extra_negatives: query id → passage ids added to that query's mined negatives without
            filtering (except positives), scored by the method's scorer and merged by score.
        cache: an ``encoders.EmbeddingCache`` for embeddings and cross-encoder scores.
        progress: ``progress(stage, done, total)``.

    Returns:
        :class:`MiningResult`. Raises ``ValueError`` naming a bad parameter.
    """
    if pool_size is not None and (
        isinstance(pool_size, bool) or not isinstance(pool_size, (int, np.integer)) or pool_size < 1
    ):
        raise ValueError(f"pool_size={pool_size!r}: must be a positive integer (e.g. 50)")
    if pool_size is not None and method not in DEFAULT_POOL_SIZE:
        raise ValueError(
            f"pool_size={pool_size}: only used by methods 'cross-encoder' and 'bm25+ce'; remove it"
        )
    if method in DEFAULT_POOL_SIZE and pool_size is None:
        pool_size = DEFAULT_POOL_SIZE[method]
    prm = check_params(
        method,
        num_negatives,
        range_min,
        range_max,
        absolute_margin,
        relative_margin,
        max_score,
        min_score,
        sampling_strategy,
        seed,
        pool_size,
    )
    coll = data if isinstance(data, Collection) else read_beir(data, split=split)
    n = coll.n_passages
    q_list = np.array(sorted(q for q, ps in coll.positives.items() if ps), dtype=np.int64)
    if q_list.size == 0:
        raise ValueError("data has no query with a labelled positive: nothing to mine")
    excluded = np.zeros(n, dtype=bool)
    ex_ids = list(exclude_ids)
    for pid in ex_ids:
        if coll.has_passage(pid):
            excluded[coll.passage_index(pid)] = True
    prefixes = tuple(p for p in exclude_prefixes if p)
    if prefixes:
        excluded |= np.fromiter((pid.startswith(prefixes) for pid in coll.passage_ids), dtype=bool, count=n)
    extra = resolve_extra(coll, extra_negatives, q_list)
    rng = np.random.default_rng(prm.seed)
    ctx = MiningContext(coll, q_list, excluded, prm, rng, progress)

    if method == "random":
        res = mine_random(ctx, extra)
    elif method in ("bm25", "dense"):
        res = mine_scored(ctx, method, encoder, cache, extra)
    else:
        res = mine_ce(ctx, method, encoder, cross_encoder, pool_size, cache, extra)
    res.params = {
        "num_negatives": prm.num_negatives,
        "range_min": prm.range_min,
        "range_max": prm.range_max,
        "absolute_margin": prm.absolute_margin,
        "relative_margin": prm.relative_margin,
        "max_score": prm.max_score,
        "min_score": prm.min_score,
        "sampling_strategy": prm.sampling_strategy,
        "seed": prm.seed,
        "pool_size": pool_size,
        "exclude_prefixes": list(prefixes),
        "exclude_ids": len(ex_ids),
    }
    return res
