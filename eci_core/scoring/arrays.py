"""One source scored from embedding matrices and index arrays: :func:`score_arrays` (what the
benchmark times and the Ray engine runs per batch) and its result :class:`ArrayScores`.

Definitions: ``shared/spec/ECI.md`` and :mod:`eci_core.metrics.eci`; the choices the spec leaves
open are listed in :mod:`eci_core.scoring`.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from eci_core.metrics import eci as M
from eci_core.config import ECIConfig


def _work_dtype(*arrays) -> type:
    return np.float64 if any(a.dtype == np.float64 for a in arrays) else np.float32


def _row_dots(X: np.ndarray, R: np.ndarray) -> np.ndarray:
    """``X @ Rᵀ`` batched: (n, k, d) rows against (n, r, d) rows -> (n, k, r) float64. The one
    code path for every similarity scoring takes (s(q, p) of the positives, s_qn, s_pn)."""
    return np.matmul(X, R.transpose(0, 2, 1)).astype(np.float64)


@dataclass
class ArrayScores:
    """Everything ``score_arrays`` computes for one source (indices are rows of the embedding
    matrices that were passed in)."""

    # per pair (sorted by query as the input)
    q_idx: np.ndarray
    n_idx: np.ndarray
    s_qn: np.ndarray
    s_qp: np.ndarray
    margin: np.ndarray
    s_pn: np.ndarray
    lex_overlap: np.ndarray
    ce_margin: np.ndarray
    flags: dict
    # per query (``queries`` order)
    queries: np.ndarray
    pstar: np.ndarray
    s_qp_query: np.ndarray
    metrics: dict
    eci_sem: np.ndarray
    timings: dict = field(default_factory=dict)
    n_sem_capped: int = 0  # queries whose ECI_sem used only config.eci_sem_max_k negatives


def positives_for(queries: np.ndarray, pos_q: np.ndarray, pos_p: np.ndarray):
    """Positive pairs of the covered queries, sorted by (query, passage) and de-duplicated, with
    per-query counts and starts."""
    pos_q = np.asarray(pos_q, dtype=np.int64)
    pos_p = np.asarray(pos_p, dtype=np.int64)
    if pos_q.shape != pos_p.shape:
        raise ValueError(f"pos_q {pos_q.shape} and pos_p {pos_p.shape} must have the same shape")
    if not (pos_q.shape == queries.shape and np.array_equal(pos_q, queries)):
        keep = np.isin(pos_q, queries)
        pq, pp = pos_q[keep], pos_p[keep]
        order = np.lexsort((pp, pq))
        pq, pp = pq[order], pp[order]
    else:  # one positive per covered query, already in query order (the common case)
        pq, pp = pos_q, pos_p
    if pq.shape[0]:
        first = np.ones(pq.shape[0], dtype=bool)
        first[1:] = (pq[1:] != pq[:-1]) | (pp[1:] != pp[:-1])
        pq, pp = pq[first], pp[first]
    counts = np.bincount(np.searchsorted(queries, pq), minlength=queries.shape[0]).astype(np.int64)
    missing = np.flatnonzero(counts == 0)
    if missing.shape[0]:
        raise ValueError(
            f"{missing.shape[0]} queries have no labelled positive "
            f"(first: query row {int(queries[missing[0]])}); "
            "pass their positives in pos_q/pos_p or drop them from the source"
        )
    return pq, pp, counts


def score_arrays(
    query_emb: np.ndarray,
    passage_emb: np.ndarray,
    q_idx,
    n_idx,
    pos_q,
    pos_p,
    config: ECIConfig = ECIConfig(),
    *,
    queries=None,
    lexicon=None,
    text_key=None,
    cross: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
    with_sem: bool = True,
    chunk: int = 2048,
    n_threads: int = 2,
) -> ArrayScores:
    """Score one source given L2-normalised embeddings and index arrays.

    Args:
        query_emb: (n_q, dim) query embeddings (float32, float16 or float64).
        passage_emb: (n_p, dim) passage embeddings (same dtype family).
        q_idx, n_idx: per negative pair, the query row and the negative's passage row; sorted by
            ``q_idx``.
        pos_q, pos_p: labelled positive pairs (query row, passage row), any order.
        queries: sorted query rows the source covers (queries with K = 0 included); default the
            unique ``q_idx``.
        lexicon: object with ``overlap(neg_rows, pos_rows) -> lex_overlap`` (e.g.
            :class:`eci_core.metrics.lexical.PassageLexicon` over the passage rows); None: NaN.
        text_key: int per passage row, equal for identical texts (exact-duplicate flag); None:
            a negative is an exact duplicate only when it is the positive's row itself.
        cross: ``cross(query_rows, passage_rows) -> logits``; gives ``ce_margin``.
        with_sem: compute ECI_sem (experimental); a query with K > ``config.eci_sem_max_k`` uses
            its ``eci_sem_max_k`` negatives of largest weight (see :class:`ECIConfig`).
        chunk, n_threads: pair chunk size and threads of the fused dot-product pass.

    Algorithm: queries are grouped into buckets of equal (K, |P_q|); per chunk of a bucket the
    negative rows are gathered once (the only random access) and multiplied with the query and its
    positives in one batched matmul ``(n, K, d) @ (n, d, 1 + |P|)``, which gives s_qn and every
    s(p, n); ECI_sem's residual Gram matrices are formed from the same gathered rows. Chunks run
    on ``n_threads`` threads (numpy releases the GIL in gathers and matmul).

    Ties are ties. s(q, p) of the positives and s_qn of the negatives are both computed in
    ``work`` precision by :func:`_row_dots` (one code path); a negative that is the very row of
    one of its query's positives gets ``s_qn = s(q, p)`` exactly, whatever the summation order
    of the BLAS kernel; a negative that is a copy of a positive (its row, or equal ``text_key``)
    has margin ``min(s_qp − s_qn, 0)`` (0 for a copy of p* under the default rule) and is
    unsafe and near_duplicate; and any ``|s_qp − s_qn| < metrics.TIE_TOLERANCE`` (1e-5) counts
    as margin 0, so embeddings equal up to float32 / float16 rounding tie.

    Dot products run in float32 (float64 if an input is float64); float16 matrices halve the
    memory and are widened to float32 per chunk (numpy's half-float cast is scalar on common
    builds, so this saves memory, not time: see BENCHMARKS.md). Per-query metrics are float64.
    """
    kwargs = dict(
        queries=queries,
        lexicon=lexicon,
        text_key=text_key,
        cross=cross,
        with_sem=with_sem,
        chunk=chunk,
        n_threads=n_threads,
    )
    if n_threads > 1:
        with ThreadPoolExecutor(n_threads) as pool:
            return _score_arrays(
                query_emb, passage_emb, q_idx, n_idx, pos_q, pos_p, config, pool=pool, **kwargs
            )
    return _score_arrays(query_emb, passage_emb, q_idx, n_idx, pos_q, pos_p, config, pool=None, **kwargs)


def _score_arrays(
    query_emb,
    passage_emb,
    q_idx,
    n_idx,
    pos_q,
    pos_p,
    config,
    *,
    queries,
    lexicon,
    text_key,
    cross,
    with_sem,
    chunk,
    n_threads,
    pool,
) -> ArrayScores:
    import time

    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    q_idx = np.asarray(q_idx, dtype=np.int64)
    n_idx = np.asarray(n_idx, dtype=np.int64)
    if q_idx.shape != n_idx.shape or q_idx.ndim != 1:
        raise ValueError(f"q_idx {q_idx.shape} and n_idx {n_idx.shape} must be 1-d of the same length")
    if q_idx.shape[0] > 1 and np.any(q_idx[1:] < q_idx[:-1]):
        raise ValueError("q_idx must be sorted (pairs grouped by query); sort pairs by query first")
    if query_emb.ndim != 2 or passage_emb.ndim != 2 or query_emb.shape[1] != passage_emb.shape[1]:
        raise ValueError(
            f"query_emb {query_emb.shape} and passage_emb {passage_emb.shape} must be 2-d with the same dim"
        )
    # q_idx is sorted: its runs give the distinct queries with pairs and their K
    first = np.flatnonzero(np.concatenate([[True], q_idx[1:] != q_idx[:-1]])) if q_idx.shape[0] else q_idx
    with_pairs = q_idx[first]
    run_len = np.diff(np.append(first, q_idx.shape[0]))
    queries = with_pairs if queries is None else np.asarray(queries, dtype=np.int64)
    if queries.shape[0] > 1 and np.any(queries[1:] <= queries[:-1]):
        raise ValueError("queries must be sorted and unique")
    at = np.searchsorted(queries, with_pairs)
    if with_pairs.shape[0] and (
        at[-1] >= queries.shape[0] or np.any(queries[np.minimum(at, queries.shape[0] - 1)] != with_pairs)
    ):
        raise ValueError("every q_idx must be listed in queries")
    counts = np.zeros(queries.shape[0], dtype=np.int64)
    counts[at] = run_len
    n_pairs = q_idx.shape[0]

    # positives: s(q, p) for every labelled positive, then s_qp and p* by the positive rule
    pq, pp, pos_counts = positives_for(queries, pos_q, pos_p)
    work = _work_dtype(query_emb, passage_emb)
    s_qpos = np.empty(pp.shape[0], dtype=np.float64)
    pool = pool if n_pairs > 4 * chunk else None

    def run(fn, items) -> None:
        if pool is None:
            for item in items:
                fn(item)
        else:
            list(pool.map(fn, items))

    def positives(a: int) -> None:
        b = min(a + chunk, pp.shape[0])
        P = passage_emb[pp[a:b]].astype(work, copy=False)[:, None, :]  # (n, 1, d)
        Q = query_emb[pq[a:b]].astype(work, copy=False)[:, None, :]
        s_qpos[a:b] = _row_dots(P, Q)[:, 0, 0]

    run(positives, range(0, pp.shape[0], chunk))
    s_qp_q, pstar_local = M.positive_similarity(s_qpos, pos_counts, config.positive)
    pstar = pp[pstar_local]
    pos_starts = M.group_starts(pos_counts)
    timings["positives"] = time.perf_counter() - t0

    # lex_overlap against p* (sparse token matrices), needed by ECI_sem's weights
    t1 = time.perf_counter()
    pstar_pair = np.repeat(pstar, counts)
    lex = lexicon.overlap(n_idx, pstar_pair) if lexicon is not None else np.full(n_pairs, np.nan)
    lex0 = np.nan_to_num(lex, nan=0.0)
    timings["lex_overlap"] = time.perf_counter() - t1

    # fused pass: queries in buckets of equal (K, |P_q|); each negative row is gathered once and
    # multiplied with its query and positives in one batched matmul, (n, K, d) @ (n, d, 1+|P|)
    t2 = time.perf_counter()
    s_qn = np.empty(n_pairs, dtype=np.float64)
    s_pn = np.empty(n_pairs, dtype=np.float64)
    exact_dup = np.zeros(n_pairs, dtype=bool)
    sem = np.zeros(queries.shape[0], dtype=np.float64) if with_sem else np.full(queries.shape[0], np.nan)
    pair_starts = M.group_starts(counts)
    sem_cap = config.eci_sem_max_k
    n_sem_capped = int((counts > sem_cap).sum()) if with_sem and sem_cap is not None else 0
    pstar_pos = pstar_local - pos_starts  # p*'s position among its query's positives
    tk = None if text_key is None else np.asarray(text_key)
    combo = counts * (int(pos_counts.max(initial=0)) + 1) + pos_counts
    tasks = []
    order = np.flatnonzero(counts > 0)
    order = order[np.argsort(combo[order], kind="stable")]  # bucket by (K, |P|), query order within
    bounds = np.flatnonzero(np.diff(combo[order])) + 1
    for qs in np.split(order, bounds) if order.shape[0] else []:
        K, npos = int(counts[qs[0]]), int(pos_counts[qs[0]])
        step = max(1, chunk // K)
        tasks.extend((qs[i : i + step], K, npos) for i in range(0, qs.shape[0], step))

    def kernel(task) -> None:
        qc, K, npos = task
        nc = qc.shape[0]
        if qc[-1] - qc[0] == nc - 1:  # consecutive queries: their pairs and positives are slices
            r0, p0 = pair_starts[qc[0]], pos_starts[qc[0]]
            rows = slice(r0, r0 + nc * K)
            prow = slice(p0, p0 + nc * npos)
            nrow, prow_p = n_idx[rows].reshape(nc, K), pp[prow].reshape(nc, npos)
        else:
            rows = pair_starts[qc][:, None] + np.arange(K)  # (nc, K) pair positions
            prow = pos_starts[qc][:, None] + np.arange(npos)  # (nc, npos) positive positions
            nrow, prow_p = n_idx[rows], pp[prow]
        N = passage_emb[nrow].astype(work, copy=False)  # (nc, K, d)
        Pc = passage_emb[prow_p].astype(work, copy=False)  # (nc, npos, d)
        R = np.concatenate([query_emb[queries[qc]].astype(work, copy=False)[:, None, :], Pc], axis=1)
        S = _row_dots(N, R)  # (nc, K, 1 + npos)
        sq = S[:, :, 0]
        same_row = nrow[:, :, None] == prow_p[:, None, :]
        hit = same_row.any(axis=2)
        if hit.any():  # a negative that is a positive's own row gets exactly s(q, p): margin 0
            sp = s_qpos[prow].reshape(nc, npos)
            sq = np.where(hit, np.take_along_axis(sp, same_row.argmax(axis=2), axis=1), sq)
        if tk is not None:
            hit = (tk[nrow][:, :, None] == tk[prow_p][:, None, :]).any(axis=2)
        flat = isinstance(rows, slice)
        s_qn[rows] = sq.ravel() if flat else sq
        s_pn[rows] = S[:, :, 1:].max(axis=2).ravel() if flat else S[:, :, 1:].max(axis=2)
        exact_dup[rows] = hit.ravel() if flat else hit
        if with_sem:
            sqp = s_qp_q[qc]
            sflat = sq.ravel()
            lx = lex0[rows].reshape(nc, K).ravel()
            w = M.sem_weights(
                sflat,
                sqp,
                np.repeat(sqp, K) - sflat,
                lx,
                np.full(nc, K),
                config.sem_temperature,
                config.sem_consistency_temperature,
            ).reshape(nc, K)
            Ns = N
            if sem_cap is not None and K > sem_cap:  # the sem_cap negatives of largest weight
                top = np.sort(np.argsort(-w, axis=1, kind="stable")[:, :sem_cap], axis=1)
                w = np.take_along_axis(w, top, axis=1)
                Ns = np.take_along_axis(N, top[:, :, None], axis=1)
            D = Ns - Pc[np.arange(nc), pstar_pos[qc]][:, None, :]
            sem[qc] = M.sem_logdet(D, w, config.sem_lambda)

    from eci_core.metrics import fused

    if fused.usable(query_emb, passage_emb, n_pairs, with_sem):  # one compiled gather-and-dot pass
        q_local = np.repeat(np.arange(queries.shape[0], dtype=np.int64), counts)
        fused.pair_pass(
            query_emb,
            passage_emb,
            q_idx,
            n_idx,
            q_local,
            pos_starts.astype(np.int64),
            pos_counts.astype(np.int64),
            pp,
            s_qpos,
            tk,
            s_qn,
            s_pn,
            exact_dup,
            n_threads=1 if pool is None else n_threads,
        )
        timings["fused"] = 1.0
    else:
        run(kernel, tasks)
    timings["pair_kernel"] = time.perf_counter() - t2

    # per query
    t3 = time.perf_counter()
    qm = M.query_metrics(s_qp_q, s_qn, counts, config.temperature, copy=exact_dup)
    mg = qm.pop("margin")
    s_qp_pair = np.repeat(s_qp_q, counts)
    ce = None
    if cross is not None:
        ce_pos = np.asarray(cross(queries, pstar), dtype=np.float64)
        ce_neg = np.asarray(cross(q_idx, n_idx), dtype=np.float64)
        ce = np.repeat(ce_pos, counts) - ce_neg
    fl = M.flags(
        mg,
        s_pn,
        s_qn,
        s_qp_pair,
        exact_duplicate=exact_dup,
        ce_margin=ce,
        near_duplicate_threshold=config.near_duplicate_threshold,
        cross_encoder_margin=config.cross_encoder_margin,
        percpos=config.percpos,
    )
    timings["query_metrics"] = time.perf_counter() - t3
    timings["total"] = time.perf_counter() - t0
    return ArrayScores(
        q_idx=q_idx,
        n_idx=n_idx,
        s_qn=s_qn,
        s_qp=s_qp_pair,
        margin=mg,
        s_pn=s_pn,
        lex_overlap=lex,
        ce_margin=np.full(n_pairs, np.nan) if ce is None else ce,
        flags=fl,
        queries=queries,
        pstar=pstar,
        s_qp_query=s_qp_q,
        metrics=qm,
        eci_sem=sem,
        timings=timings,
        n_sem_capped=n_sem_capped,
    )
