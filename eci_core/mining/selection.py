"""Selection shared by every miner, following ``mine_hard_negatives``: the ``range_max`` window,
the margin and score filters, ``range_min``, the ``top`` / ``random`` sampling, and the result
(with the ``--add-negatives`` extras merged by score)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np

from eci_core.io.collection import Collection
from eci_core.mining.params import Params, Progress, chunk_size
from eci_core.mining.result import MiningResult


@dataclass
class MiningContext:
    """One mining run: the collection, the mined queries (``q_list``, query indices with a
    positive, sorted), the excluded passages, the checked parameters, the seeded generator."""

    coll: Collection
    q_list: np.ndarray
    excluded: np.ndarray
    prm: Params
    rng: np.random.Generator
    progress: Progress | None

    def min_positive(self, scores_of: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> np.ndarray:
        """Lowest positive score per query of ``q_list`` given a pair scorer (q idx, p idx) -> scores."""
        qs, ps = [], []
        for q in self.q_list:
            for p in self.coll.positives[int(q)]:
                qs.append(q)
                ps.append(p)
        qs_a = np.asarray(qs, dtype=np.int64)
        sc = np.asarray(scores_of(qs_a, np.asarray(ps, dtype=np.int64)), dtype=np.float64)
        out = np.full(self.q_list.size, np.inf)
        np.minimum.at(out, np.searchsorted(self.q_list, qs_a), sc)
        return out

    def tick(self, stage: str, done: int, total: int) -> None:
        if self.progress:
            self.progress(stage, done, total)

    def blocks(self, scorer) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """``(rows of q_list, float32 block (rows, n_passages))`` of ``scorer.block`` (every
        passage's score), in chunks of at most ``scorer.chunk_cap`` queries and 16 MB."""
        coll = self.coll
        chunk = chunk_size(coll.n_passages, cap=scorer.chunk_cap)
        nq = self.q_list.size
        for start in range(0, nq, chunk):
            rows = np.arange(start, min(start + chunk, nq))
            yield rows, scorer.block([coll.query_texts[int(q)] for q in self.q_list[rows]])
            self.tick(scorer.stage, int(rows[-1]) + 1, nq)

    def masked(self, rows: np.ndarray, block: np.ndarray) -> np.ndarray:
        """``block`` (rows of ``q_list``) with the excluded passages and each query's positives
        at -inf (in place), so that no top-k returns them."""
        ex_cols = np.flatnonzero(self.excluded)
        if ex_cols.size:
            block[:, ex_cols] = -np.inf
        pr = [(r, p) for r, q in enumerate(self.q_list[rows]) for p in self.coll.positives[int(q)]]
        if pr:
            pr_a = np.asarray(pr, dtype=np.int64)
            block[pr_a[:, 0], pr_a[:, 1]] = -np.inf
        return block


def select_candidates(
    cand_idx: np.ndarray,
    cand_score: np.ndarray,
    pos_score: np.ndarray,
    prm: Params,
    rng: np.random.Generator,
    skipped: dict[str, int],
) -> tuple[np.ndarray, int]:
    """Apply the window, filters, range_min and sampling to rows of candidates.

    ``cand_idx`` (nq, W) passage indices sorted by ``cand_score`` descending, -1 for "none";
    positives and excluded passages must already be -1. Returns the boolean mask of kept cells
    (row order = rank order) and the number of candidates in the ``range_max`` window.
    """
    valid = cand_idx >= 0
    valid &= np.cumsum(valid, axis=1) <= prm.range_max
    n_cand = int(valid.sum())
    s = cand_score.astype(np.float64)
    pos = pos_score.astype(np.float64)[:, None]
    rules = []
    if prm.absolute_margin is not None:
        rules.append(("absolute_margin", s + prm.absolute_margin > pos))
    if prm.relative_margin is not None:
        rules.append(("relative_margin", s > pos - np.abs(pos) * prm.relative_margin))
    if prm.max_score is not None:
        rules.append(("max_score", s > prm.max_score))
    if prm.min_score is not None:
        rules.append(("min_score", s < prm.min_score))
    for name, rule in rules:
        drop = valid & rule
        skipped[name] = skipped.get(name, 0) + int(drop.sum())
        valid &= ~drop
    keep = valid & (np.cumsum(valid, axis=1) > prm.range_min)
    if prm.sampling_strategy == "top":
        keep &= np.cumsum(keep, axis=1) <= prm.num_negatives
    else:
        key = rng.random(keep.shape)
        key[~keep] = np.inf
        k = min(prm.num_negatives, keep.shape[1])
        chosen = np.argpartition(key, k - 1, axis=1)[:, :k] if k < keep.shape[1] else np.argsort(key, axis=1)
        sel = np.zeros_like(keep)
        np.put_along_axis(sel, chosen, True, axis=1)
        keep &= sel
    return keep, n_cand


def collect(
    ctx: MiningContext,
    method: str,
    rows_q: np.ndarray,
    cand_idx,
    cand_score,
    keep,
    pos_score_all,
    extra_scored: dict[int, list[tuple[int, float]]],
    skipped,
    n_cand,
) -> MiningResult:
    """The kept cells as a :class:`MiningResult` (ids resolved), the extras merged by score."""
    coll = ctx.coll
    negatives: dict[str, list[tuple[str, float]]] = {}
    n_extra = 0
    for r, q in enumerate(rows_q):
        cols = np.flatnonzero(keep[r])
        items = [(int(cand_idx[r, c]), float(cand_score[r, c])) for c in cols]
        add = extra_scored.get(int(q), [])
        if add:
            have = {p for p, _ in items}
            new = [(p, s) for p, s in add if p not in have]
            n_extra += len(new)
            items = sorted(items + new, key=lambda t: (-t[1], t[0]))
        negatives[coll.query_ids[int(q)]] = [(coll.passage_ids[p], s) for p, s in items]
    qids = [coll.query_ids[int(q)] for q in ctx.q_list]
    return MiningResult(
        method=method,
        num_negatives=ctx.prm.num_negatives,
        query_ids=qids,
        negatives={q: negatives[q] for q in qids},
        positive_scores={coll.query_ids[int(q)]: float(s) for q, s in zip(ctx.q_list, pos_score_all)},
        skipped={k: v for k, v in skipped.items() if v},
        n_candidates=n_cand,
        n_extra=n_extra,
    )


def resolve_extra(coll: Collection, extra, q_list) -> dict[int, list[int]]:
    """Extra negatives as query index → passage indices; unknown ids are errors, positives and
    queries that are not mined are ignored."""
    if not extra:
        return {}
    mined = set(int(q) for q in q_list)
    out: dict[int, list[int]] = {}
    for qid, pids in extra.items():
        if qid not in coll._qid_index:
            raise ValueError(
                f"extra negatives: query {qid!r} is not among the queries; check the file's query ids"
            )
        qi = coll.query_index(qid)
        if qi not in mined:
            continue
        pos = set(coll.positives.get(qi, []))
        lst = out.setdefault(qi, [])
        for pid in pids:
            if not coll.has_passage(pid):
                raise ValueError(
                    f"extra negatives: passage {pid!r} (query {qid!r}) is not in the corpus; "
                    "add it to corpus.jsonl"
                )
            pi = coll.passage_index(pid)
            if pi not in pos and pi not in lst:
                lst.append(pi)
    return out


def score_extra(extra: dict[int, list[int]], pair) -> dict[int, list[tuple[int, float]]]:
    """The extras scored by ``pair(query indices, passage indices)``, per query index."""
    if not extra:
        return {}
    qs = np.array([q for q, ps in extra.items() for _ in ps], dtype=np.int64)
    ps = np.array([p for _, pl in extra.items() for p in pl], dtype=np.int64)
    sc = pair(qs, ps) if qs.size else np.zeros(0)
    out: dict[int, list[tuple[int, float]]] = {}
    for q, p, s in zip(qs, ps, sc):
        out.setdefault(int(q), []).append((int(p), float(s)))
    return out
