"""Retrieval quality of the ``bm25`` and ``dense`` retrievers on the labelled queries (exhaustive
ranking), evaluated by the library's one evaluator, ir_measures
(:func:`eci_core.metrics.retrieval.positive_rank_metrics`)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from eci_core.io.collection import Collection
from eci_core.metrics.retrieval import positive_rank_metrics
from eci_core.mining.api import make_scorer
from eci_core.mining.beir import read_beir
from eci_core.mining.params import Params, Progress
from eci_core.mining.selection import MiningContext


def retrieval_metrics(
    data: Collection | str | Path,
    method: str,
    ks: Sequence[int] = (1, 10),
    *,
    encoder=None,
    cache=None,
    exclude_prefixes: Sequence[str] = (),
    split: str = "test",
    progress: Progress | None = None,
) -> dict[str, float]:
    """Retrieval quality of ``bm25`` or ``dense`` on the labelled queries (exhaustive ranking).

    For query q with positives P_q, rank(p) = 1 + #{non-positive passages d : s(q, d) ≥ s(q, p)}
    (ties counted against the positive). R@k = mean_q |{p ∈ P_q : rank(p) ≤ k}| / |P_q| (with
    one positive, the hit rate); MRR = mean_q 1 / min_{p ∈ P_q} rank(p). Passages with an id in
    ``exclude_prefixes`` are not ranked (a positive among them counts as never retrieved).
    Every query's scores are computed here (:class:`~eci_core.mining.bm25.Bm25` or
    :class:`~eci_core.mining.dense.Dense`); the counting is ir_measures'
    (:func:`eci_core.metrics.retrieval.positive_rank_metrics`). Returns ``{"R@k": ..., "MRR": ...}``.
    """
    if method not in ("bm25", "dense"):
        raise ValueError(f"method={method!r}: retrieval metrics are computed for 'bm25' or 'dense'")
    for k in ks:
        if int(k) < 1:
            raise ValueError(f"ks={list(ks)}: every cut-off must be >= 1")
    coll = data if isinstance(data, Collection) else read_beir(data, split=split)
    n = coll.n_passages
    q_list = np.array(sorted(q for q, ps in coll.positives.items() if ps), dtype=np.int64)
    excluded = np.zeros(n, dtype=bool)
    prefixes = tuple(p for p in exclude_prefixes if p)
    if prefixes:
        excluded = np.fromiter((pid.startswith(prefixes) for pid in coll.passage_ids), dtype=bool, count=n)
    prm = Params(1, 0, 1, None, None, None, None, "top", 0)
    ctx = MiningContext(coll, q_list, excluded, prm, np.random.default_rng(0), progress)
    scorer = make_scorer(ctx, method, encoder, cache)

    def rows():
        for block_rows, block in ctx.blocks(scorer):
            block[:, excluded] = -np.inf
            for r, q in enumerate(q_list[block_rows]):
                yield block[r], coll.positives[int(q)]

    return positive_rank_metrics(rows(), ks)
