"""Score negative sources with ECI: ``score_collection()`` and the array-level ``score_arrays()``.

``score_arrays`` works on embedding matrices and index arrays (it is what the benchmark times);
``score_collection`` embeds every unique query and passage text once with the target encoder
(queries as queries, passages as passages), scores every source with ``score_arrays`` and
returns the tables of :class:`ScoreResult` (ids as strings). Definitions: ``shared/spec/ECI.md``
and :mod:`eci_core.metrics.eci`.

Choices the spec leaves open, and what this module does:

* ``positive="mean"``: ``s_qp`` is the mean of the positive similarities; the terms that need one
  positive passage p* (``lex_overlap``, ``ce_margin``, ECI_sem's residuals) use the least similar
  positive. ``s_pn`` is always the max over all positives.
* Texts are compared up to whitespace (runs of spaces, tabs and newlines count as one space):
  passages with the same such text share one embedding row (the first one's text is embedded),
  so a whitespace variant of a positive is an exact copy (margin 0, unsafe, near_duplicate).
* Exact-duplicate removal (the spec's K): negatives of one query whose *text* repeats an earlier
  negative of the same query are dropped before scoring (the loader already drops repeated ids);
  the count is in ``ScoreResult.notes``.
* A query with K = 0 scores 0 on every metric (Δ = 0), so it counts in ``unsafe_query_rate``
  (the share of queries with Δ = 0).
* Without a lexicon (``score_arrays(lexicon=None)``) ``lex_overlap`` is NaN and ECI_sem takes
  ℓ_k = 1.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from eci_core.metrics import eci as M
from eci_core.metrics.bootstrap import beats_matrix, interval, resampled_means
from eci_core.config import ECIConfig

PAIR_COLUMNS = [
    "source",
    "query_id",
    "passage_id",
    "rank",
    "miner_score",
    "s_qn",
    "s_qp",
    "margin",
    "s_pn",
    "lex_overlap",
    "ce_margin",
    "unsafe",
    "near_duplicate",
    "cross_encoder",
    "percpos",
    "flagged",
    "flag_reasons",
    "fn_score",
    "fn_band",
]
QUERY_COLUMNS = [
    "source",
    "query_id",
    "K",
    "C",
    "S",
    "delta",
    "DE",
    "eci",
    "eci_arith",
    "infonce",
    "eci_sem",
    "unsafe",
    "s_qp",
    "positive_id",
]
SOURCE_COLUMNS = [
    "name",
    "n_queries",
    "n_negatives",
    "eci",
    "eci_low",
    "eci_high",
    "signal",
    "safety",
    "capacity",
    "de",
    "eci_arith",
    "infonce_bound",
    "eci_sem",
    "unsafe_query_rate",
    "unsafe_negative_rate",
    "mean_k",
    "signal_low",
    "signal_high",
    "safety_low",
    "safety_high",
    "capacity_low",
    "capacity_high",
    "de_low",
    "de_high",
    "infonce_bound_low",
    "infonce_bound_high",
]


def _work_dtype(*arrays) -> type:
    return np.float64 if any(a.dtype == np.float64 for a in arrays) else np.float32


# ----------------------------------------------------------------------------- array level


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
            f"{missing.shape[0]} queries have no labelled positive (first: query row {int(queries[missing[0]])}); "
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
        queries=queries, lexicon=lexicon, text_key=text_key, cross=cross, with_sem=with_sem, chunk=chunk
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
            n_threads=1 if pool is None else getattr(pool, "_max_workers", 2),
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


# ----------------------------------------------------------------------------- per source

#: per-query columns resampled together for the sources table (one draw serves all of them)
BOOTSTRAP_COLUMNS = ("eci", "S", "delta", "DE", "C", "infonce", "K")


def source_summary(name: str, scores: ArrayScores, config: ECIConfig = ECIConfig()) -> dict:
    """One row of the ``sources`` table from a source's :class:`ArrayScores`.

    ``aggregate="query"``: each statistic is the mean over queries with a bootstrap percentile
    interval. ``aggregate="set"``: capacity = ln(mean K + 1), de and eci from the averaged S and
    Δ (bootstrapped the same way, from the same resamples).
    """
    qm = scores.metrics
    n_q = int(scores.queries.shape[0])
    values = np.stack([np.asarray(qm[c], dtype=np.float64) for c in BOOTSTRAP_COLUMNS], axis=1)
    samples = resampled_means(values, config.n_bootstrap, config.seed)
    col = {c: i for i, c in enumerate(BOOTSTRAP_COLUMNS)}
    mean = values.mean(axis=0) if n_q else np.full(len(BOOTSTRAP_COLUMNS), np.nan)
    stat = {c: (mean[i], samples[:, i]) for c, i in col.items()}
    if config.aggregate == "set":
        agg = M.set_aggregate(qm["K"], qm["S"], qm["delta"])
        kb, sb, db = samples[:, col["K"]], samples[:, col["S"]], samples[:, col["delta"]]
        cb = np.log1p(kb)
        deb = M.discriminative_efficiency(sb, db)
        stat["C"] = (agg["capacity"], cb)
        stat["DE"] = (agg["de"], deb)
        stat["eci"] = (agg["eci"], cb * deb)
        eci_arith = agg["eci_arith"]
    else:
        eci_arith = float(np.mean(qm["eci_arith"])) if n_q else np.nan
    row = {"name": name, "n_queries": n_q, "n_negatives": int(scores.q_idx.shape[0])}
    out_names = {
        "eci": "eci",
        "S": "signal",
        "delta": "safety",
        "C": "capacity",
        "DE": "de",
        "infonce": "infonce_bound",
    }
    for c, out in out_names.items():
        point, boot = stat[c]
        lo, hi = interval(boot[:, None], config.confidence)
        row[out] = float(point)
        row[f"{out}_low"] = float(lo[0])
        row[f"{out}_high"] = float(hi[0])
    n_neg = scores.q_idx.shape[0]
    row["eci_arith"] = float(eci_arith)
    row["eci_sem"] = float(np.mean(scores.eci_sem)) if n_q else np.nan
    row["unsafe_query_rate"] = float(np.mean(qm["unsafe"])) if n_q else np.nan
    row["unsafe_negative_rate"] = float(np.mean(scores.flags["unsafe"])) if n_neg else np.nan
    row["mean_k"] = float(np.mean(qm["K"])) if n_q else np.nan
    return {c: row[c] for c in SOURCE_COLUMNS}


def eci_statistic(config: ECIConfig):
    """``(columns, statistic)`` used by :func:`beats`: per-query value columns and the map from
    resampled column means to ECI under ``config.aggregate``."""
    if config.aggregate == "set":
        return ("K", "S", "delta"), M.set_eci_from_means
    return ("eci",), None


def beats(scored: dict[str, ArrayScores], config: ECIConfig = ECIConfig(), query_keys: dict | None = None):
    """``beats.loc[a, b]`` = bootstrap P(ECI(a) > ECI(b)) on the queries both cover (same
    resample of the shared queries for both; see :func:`eci_core.metrics.bootstrap.beats_matrix`)."""
    cols, stat = eci_statistic(config)
    per = {}
    for name, sc in scored.items():
        keys = sc.queries if query_keys is None else query_keys[name]
        per[name] = (keys, np.stack([np.asarray(sc.metrics[c], dtype=np.float64) for c in cols], axis=1))
    return beats_matrix(per, config.n_bootstrap, config.seed, statistic=stat)


# ----------------------------------------------------------------------------- collection level


@dataclass
class ScoreResult:
    """The tables of one scoring run (see docs/ARCHITECTURE.md, "Scoring output")."""

    pairs: "pd.DataFrame"  # noqa: F821
    queries: "pd.DataFrame"  # noqa: F821
    sources: "pd.DataFrame"  # noqa: F821
    beats: "pd.DataFrame"  # noqa: F821
    encoder: str
    config: ECIConfig
    notes: dict = field(default_factory=dict)


@dataclass
class _ForBeats:
    """What :func:`beats` needs of a source's :class:`ArrayScores` (its per-query metrics)."""

    metrics: dict
    queries: np.ndarray


class _RemappedLexicon:
    """A lexicon over global passage indices used with local (embedded) rows; ``to_local`` first
    maps the rows scoring uses (e.g. rows of a user's embedding file) to local rows."""

    def __init__(self, lexicon, rows_to_global: np.ndarray, to_local=None):
        self.lexicon = lexicon
        self.g = rows_to_global
        self.to_local = to_local

    def overlap(self, neg_rows, pos_rows):
        if self.to_local is not None:
            neg_rows, pos_rows = self.to_local(neg_rows), self.to_local(pos_rows)
        return self.lexicon.overlap(self.g[neg_rows], self.g[pos_rows])


def _normalised(text: str) -> str:
    """``text`` up to whitespace: runs of whitespace (``str.split()``'s) as one space, stripped."""
    return " ".join(text.split())


def text_keys(texts: Sequence[str], chunk: int = 65_536, hash_fn: Callable[[str], int] = hash) -> np.ndarray:
    """int64 key per text, equal exactly when the texts are equal up to whitespace
    (:func:`_normalised`), numbered in order of first occurrence (0, 1, 2, ...): the same array as
    ``pd.factorize([_normalised(t) for t in texts])[0]``, without holding the normalised corpus.

    Texts are normalised ``chunk`` at a time and only their ``hash_fn`` (64-bit) is kept; the
    texts of a hash value shared by several texts are normalised again and compared, so a hash
    collision between different texts splits into separate keys (never one key for two texts).
    Memory: 8 bytes per text plus one chunk of normalised texts.
    """
    import itertools

    import pandas as pd

    n = len(texts)
    h = np.empty(n, dtype=np.int64)
    it = iter(texts)
    for a in range(0, n, chunk):
        block = [_normalised(t) for t in itertools.islice(it, chunk)]
        h[a : a + len(block)] = np.fromiter(map(hash_fn, block), dtype=np.int64, count=len(block))
        del block
    codes = pd.factorize(h)[0].astype(np.int64)
    del h
    if n == 0:
        return codes
    sizes = np.bincount(codes)
    shared = np.flatnonzero(sizes[codes] > 1)  # texts whose hash another text has too
    if shared.shape[0] == 0:
        return codes
    shared = shared[np.argsort(codes[shared], kind="stable")]
    bounds = np.flatnonzero(np.diff(codes[shared])) + 1
    next_code = int(sizes.shape[0])
    split = False
    for run in np.split(shared, bounds):
        seen: dict[str, int] = {}
        for i in run.tolist():
            t = _normalised(texts[i])
            if t not in seen:  # the first text of the run keeps the hash's code
                seen[t] = int(codes[i]) if not seen else next_code
                next_code += len(seen) > 1
            if seen[t] != codes[i]:
                codes[i] = seen[t]
                split = True
    # a split class numbered after the others: renumber by first occurrence, as factorize does
    return pd.factorize(codes)[0].astype(np.int64) if split else codes


def id_categorical_dtype(ids: Sequence[str]) -> tuple["pd.CategoricalDtype", np.ndarray]:  # noqa: F821
    """``(dtype, code_of)``: a categorical dtype over the (unique) ``ids`` with the categories in
    sorted order, so that sorting a column of it sorts the ids as strings, and ``code_of[i]`` the
    code of ``ids[i]`` (int32 when it fits)."""
    import pandas as pd

    cats = pd.Index(np.asarray(ids, dtype=object) if not isinstance(ids, np.ndarray) else ids, dtype="str")
    order = np.asarray(cats.argsort(), dtype=np.int64)
    code_of = np.empty(len(cats), dtype=np.int32 if len(cats) < 2**31 else np.int64)
    code_of[order] = np.arange(len(cats), dtype=code_of.dtype)
    return pd.CategoricalDtype(cats.take(order)), code_of


class _PairColumns:
    """The columns of the pairs table (``PAIR_COLUMNS``), each allocated once for ``n`` rows.

    ``source``, ``query_id``, ``passage_id``, ``flag_reasons`` and ``fn_band`` are categorical
    (the ids' categories are every id of the collection, sorted; codes int32), so a pair costs
    about 90 bytes whatever the lengths of its ids."""

    _FLOAT = ("miner_score", "s_qn", "s_qp", "margin", "s_pn", "lex_overlap", "ce_margin", "fn_score")
    _BOOL = ("unsafe", "near_duplicate", "cross_encoder", "percpos", "flagged")

    def __init__(self, n: int, collection, names: Sequence[str]):
        self.n = n
        self.names = list(names)
        self.qdtype, self.q_code = id_categorical_dtype(collection.query_ids)
        self.pdtype, self.p_code = id_categorical_dtype(collection.passage_ids)
        self.a: dict[str, np.ndarray] = {
            "source": np.empty(n, dtype=np.int8 if len(self.names) < 128 else np.int32),
            "query_id": np.empty(n, dtype=self.q_code.dtype),
            "passage_id": np.empty(n, dtype=self.p_code.dtype),
            "rank": None,  # the loader's dtype, set by the first fill
            "flag_reasons": np.empty(n, dtype=np.int8),
        }
        for c in self._FLOAT:
            self.a[c] = np.empty(n, dtype=np.float64)
        for c in self._BOOL:
            self.a[c] = np.empty(n, dtype=bool)
        self.a["fn_score"][:] = np.nan

    def fill(self, at: slice, source: int, q_idx, p_idx, rank, miner_score, sc: ArrayScores) -> None:
        a = self.a
        if a["rank"] is None:
            a["rank"] = np.empty(self.n, dtype=np.asarray(rank).dtype)
        a["source"][at] = source
        a["query_id"][at] = self.q_code[q_idx]
        a["passage_id"][at] = self.p_code[p_idx]
        a["rank"][at] = rank
        a["miner_score"][at] = miner_score
        for c in ("s_qn", "s_qp", "margin", "s_pn", "lex_overlap", "ce_margin"):
            a[c][at] = getattr(sc, c)
        fl = sc.flags
        for c in self._BOOL:
            a[c][at] = fl[c]
        a["flag_reasons"][at] = (
            np.asarray(fl["unsafe"], dtype=np.int8)
            + 2 * np.asarray(fl["near_duplicate"], dtype=np.int8)
            + 4 * np.asarray(fl["cross_encoder"], dtype=np.int8)
        )

    def frame(self) -> "pd.DataFrame":  # noqa: F821
        """The pairs table; the arrays become its columns without a copy where pandas allows."""
        import pandas as pd

        a = self.a
        if a["rank"] is None:
            a["rank"] = np.empty(0, dtype=np.int64)
        cat = pd.Categorical.from_codes
        data = {
            "source": cat(a.pop("source"), dtype=pd.CategoricalDtype(pd.Index(self.names, dtype="str"))),
            "query_id": cat(a.pop("query_id"), dtype=self.qdtype),
            "passage_id": cat(a.pop("passage_id"), dtype=self.pdtype),
            "flag_reasons": cat(
                a.pop("flag_reasons"), dtype=pd.CategoricalDtype(pd.Index(list(M._REASONS), dtype="str"))
            ),
            "fn_band": cat(np.full(self.n, -1, dtype=np.int8), dtype=_band_dtype()),
        }
        data.update(a)
        self.a = {}
        return pd.DataFrame({c: data[c] for c in PAIR_COLUMNS}, copy=False)


def _band_dtype():
    import pandas as pd

    from eci_core.metrics.false_negatives import BANDS

    return pd.CategoricalDtype(pd.Index(list(BANDS), dtype="str"))


def _dedup_text(src, text_key: np.ndarray) -> np.ndarray:
    """Mask of the source's pairs to keep: the first negative of each (query, text)."""
    if len(src) == 0:
        return np.ones(0, dtype=bool)
    keys = text_key[src.p_idx]
    # rows are sorted by (query, rank): a stable sort on (query, text) keeps the best rank first
    order = np.lexsort((np.arange(len(src)), keys, src.q_idx))
    q, k = src.q_idx[order], keys[order]
    first = np.ones(len(src), dtype=bool)
    first[1:] = (q[1:] != q[:-1]) | (k[1:] != k[:-1])
    keep = np.zeros(len(src), dtype=bool)
    keep[order[first]] = True
    return keep


def score_collection(
    collection,
    encoder,
    config: ECIConfig = ECIConfig(),
    cross_encoder=None,
    cache=None,
    sources: Sequence[str] | None = None,
    progress=None,
    *,
    idf_corpus: Sequence[str] | None = None,
    embedding_dtype: str = "float32",
    with_sem: bool = True,
    embeddings=None,
    score_source: Callable[..., ArrayScores] | None = None,
    fn_models=None,
) -> ScoreResult:
    """Score every (or the named) source of ``collection`` with the target ``encoder``.

    Each unique query text is embedded once as a query and each unique passage text once as a
    passage (``eci_core.models.encoding.embed``, with ``cache``); a cross-encoder, when given, scores
    (q, p*) and (q, n) for ``ce_margin``. IDF for ``lex_overlap`` is over every passage of the
    collection, or over ``idf_corpus`` when given. ``embedding_dtype="float16"`` keeps the
    embedding matrices in half precision (dot products still accumulate in float32).
    ``progress(stage, done, total)`` is called while embedding (the encoders' stages) and with
    stage ``"scoring sources"`` before each source (bootstrap included) and once at the end.

    ``embeddings``: a :class:`eci_core.models.user_embeddings.UserEmbeddings` (your own vectors, keyed by
    query and passage id; ``encoder`` is then ignored and may be None). Passage vectors are read
    from its memory map chunk by chunk (never copied whole); the query vectors the sources need
    are gathered. The result's ``encoder`` is the model name you gave.

    ``score_source``: what scores one source, called like :func:`score_arrays` (default); one with
    a ``score_many`` method scores every source in one call (the Ray engine,
    :mod:`eci_core.engines.ray_engine`: one Ray Data job over all (source, query) rows).

    Memory: sources are scored one after another; of each only its rows of the output tables and
    its per-query metrics (for ``beats``) are kept, so the working memory of scoring follows the
    largest source, not the sum (the returned tables hold every source). The pairs table's
    columns are allocated once for all sources and filled source by source (no per-source frames,
    no concat); its ids, source, flag_reasons and fn_band are categorical (~90 bytes per pair, see
    docs/ARCHITECTURE.md); text keys are hashed a chunk at a time (:func:`text_keys`).

    ``fn_score`` / ``fn_band`` come from :mod:`eci_core.metrics.false_negatives` (``fn_models``: the
    shipped models when None; ``False`` leaves them NaN, for refitting the shipped model).
    """
    import pandas as pd

    from eci_core.models import encoding as E
    from eci_core.metrics.lexical import PassageLexicon

    names = list(collection.sources) if sources is None else list(sources)
    unknown = [n for n in names if n not in collection.sources]
    if unknown:
        raise ValueError(f"sources={unknown!r} not loaded; available: {sorted(collection.sources)}")
    if embedding_dtype not in ("float32", "float16"):
        raise ValueError(f"embedding_dtype={embedding_dtype!r}: use 'float32' or 'float16'")
    notes: dict = {}

    # passages with the same text up to whitespace are one text (one embedding row, exact copies)
    text_key = text_keys(collection.passage_texts)
    keep = {}
    for name in names:
        keep[name] = _dedup_text(collection.sources[name], text_key)
        dropped = int((~keep[name]).sum())
        if dropped:
            notes.setdefault("duplicate negative text within a query (dropped)", {})[name] = dropped

    # what to embed: queries the sources cover, their negatives and positives
    q_needed = np.unique(
        np.concatenate([collection.sources[n].query_indices for n in names] + [np.zeros(0, np.int64)])
    )
    pos_q_all, pos_p_all = collection.positive_pairs()
    pmask = np.isin(pos_q_all, q_needed)
    pos_q_all, pos_p_all = pos_q_all[pmask], pos_p_all[pmask]
    p_needed = np.unique(
        np.concatenate([collection.sources[n].p_idx for n in names] + [pos_p_all, np.zeros(0, np.int64)])
    )
    q_row = np.full(collection.n_queries, -1, dtype=np.int64)
    q_row[q_needed] = np.arange(q_needed.shape[0])
    # one embedding row per distinct passage text: passages with the same text share a row, so
    # an exact copy of a positive is that positive's row (s_qn = s_qp exactly, margin 0)
    uniq_text, first = np.unique(text_key[p_needed], return_index=True)
    rep = p_needed[first]  # a representative passage index per row
    p_row = np.full(collection.n_passages, -1, dtype=np.int64)
    p_row[p_needed] = np.searchsorted(uniq_text, text_key[p_needed])

    from eci_core.io.texts import take_texts

    q_texts = take_texts(
        collection.query_texts, q_needed
    )  # Arrow-backed texts: one take, not a lookup per text
    p_texts = take_texts(collection.passage_texts, rep)
    to_local = None
    if embeddings is not None and not embeddings.by_text:
        # your vectors by id: queries gathered (few), passages read from the memory map by row
        qids_all = np.asarray(collection.query_ids, dtype=object)
        pids_all = np.asarray(collection.passage_ids, dtype=object)
        q_file = embeddings.rows("query", qids_all[q_needed])
        p_file = embeddings.rows("passage", pids_all[rep])
        q_emb = np.asarray(embeddings.queries[q_file])
        p_emb = embeddings.passages
        p_row[p_needed] = p_file[p_row[p_needed]]
        by_file = np.argsort(p_file, kind="stable")
        file_sorted = p_file[by_file]

        def to_local(rows):
            return by_file[np.searchsorted(file_sorted, np.asarray(rows, dtype=np.int64))]

        for note, per in embeddings.notes().items():
            notes[note] = per
    else:
        if embeddings is not None:  # the product's cache: vectors by text
            q_emb = embeddings.vectors_by_text("query", q_texts)
            p_emb = embeddings.vectors_by_text("passage", p_texts)
        else:
            q_emb = E.embed(encoder, q_texts, "query", cache=cache, progress=progress)
            p_emb = E.embed(encoder, p_texts, "passage", cache=cache, progress=progress)
        q_emb = np.asarray(q_emb, dtype=embedding_dtype)
        p_emb = np.asarray(p_emb, dtype=embedding_dtype)

    lexicon = _RemappedLexicon(PassageLexicon(collection.passage_texts, idf_corpus=idf_corpus), rep, to_local)

    cross = None
    if cross_encoder is not None:
        ce_cache: dict[tuple[int, int], float] = {}

        def cross(qr: np.ndarray, pr: np.ndarray) -> np.ndarray:
            if to_local is not None:
                pr = to_local(pr)
            code = qr.astype(np.int64) * max(1, rep.shape[0]) + pr
            uniq, inv = np.unique(code, return_inverse=True)
            todo = [int(u) for u in uniq if int(u) not in ce_cache]
            if todo:
                pairs = [
                    (q_texts[u // max(1, rep.shape[0])], p_texts[u % max(1, rep.shape[0])]) for u in todo
                ]
                vals = E.cross_scores(cross_encoder, pairs, cache=cache, progress=progress)
                ce_cache.update(zip(todo, np.asarray(vals, dtype=np.float64).tolist()))
            return np.asarray([ce_cache[int(u)] for u in uniq], dtype=np.float64)[inv]

    # the id of p*: the first labelled positive of the query with p*'s text
    pos_id = pd.Series(
        np.asarray(collection.passage_ids, dtype=object)[pos_p_all],
        index=pd.MultiIndex.from_arrays([pos_q_all, p_row[pos_p_all]]),
    )
    pos_id = pos_id[~pos_id.index.duplicated()]
    qids = np.asarray(collection.query_ids, dtype=object)
    query_frames, rows, scored, qkeys = [], [], {}, {}
    # the pairs table: every column allocated once for all sources and filled source by source
    # (no per-source frames and no concat copy); ids are categorical codes, not a string per pair
    n_kept = {name: int(keep[name].sum()) for name in names}
    cols = _PairColumns(sum(n_kept.values()), collection, names)
    start = 0
    many = None
    if hasattr(score_source, "score_many"):  # an engine that scores every source in one job
        jobs = {}
        for name in names:
            src = collection.sources[name]
            jobs[name] = dict(
                q_idx=q_row[src.q_idx[keep[name]]],
                n_idx=p_row[src.p_idx[keep[name]]],
                pos_q=q_row[pos_q_all],
                pos_p=p_row[pos_p_all],
                queries=q_row[src.query_indices],
            )
        many = score_source.score_many(
            q_emb, p_emb, jobs, config, lexicon=lexicon, cross=cross, with_sem=with_sem
        )
    for i, name in enumerate(names):
        if progress is not None:
            progress("scoring sources", i, len(names))
        src = collection.sources[name]
        k = keep[name]
        sq, sp = src.q_idx[k], src.p_idx[k]
        sc = (
            many.pop(name)
            if many is not None
            else (score_source or score_arrays)(
                q_emb,
                p_emb,
                q_row[sq],
                p_row[sp],
                q_row[pos_q_all],
                p_row[pos_p_all],
                config,
                queries=q_row[src.query_indices],
                lexicon=lexicon,
                cross=cross,
                with_sem=with_sem,
            )
        )
        scored[name] = _ForBeats(sc.metrics, sc.queries)  # the pair arrays go once copied below
        if sc.n_sem_capped:
            key = (
                f"ECI_sem on the {config.eci_sem_max_k} negatives of largest weight (queries with "
                f"K > eci_sem_max_k; a lower bound of the full value)"
            )
            notes.setdefault(key, {})[name] = sc.n_sem_capped
        qkeys[name] = src.query_indices
        stop = start + n_kept[name]
        cols.fill(slice(start, stop), i, sq, sp, src.rank[k], src.score[k], sc)
        start = stop
        qm = sc.metrics
        query_frames.append(
            pd.DataFrame(
                {
                    "source": name,
                    "query_id": qids[src.query_indices],
                    "K": qm["K"],
                    "C": qm["C"],
                    "S": qm["S"],
                    "delta": qm["delta"],
                    "DE": qm["DE"],
                    "eci": qm["eci"],
                    "eci_arith": qm["eci_arith"],
                    "infonce": qm["infonce"],
                    "eci_sem": sc.eci_sem,
                    "unsafe": qm["unsafe"],
                    "s_qp": sc.s_qp_query,
                    "positive_id": pos_id.reindex(
                        pd.MultiIndex.from_arrays([src.query_indices, sc.pstar])
                    ).to_numpy(),
                },
                columns=QUERY_COLUMNS,
            )
        )
        rows.append(source_summary(name, sc, config))
        del sc, qm  # free this source's pair arrays before the next source is scored
    if progress is not None:
        progress("scoring sources", len(names), len(names))

    pairs = cols.frame()
    del cols
    if fn_models is not False:
        from eci_core.metrics.false_negatives import add_scores

        add_scores(pairs, fn_models)
    queries = (
        pd.concat(query_frames, ignore_index=True) if query_frames else pd.DataFrame(columns=QUERY_COLUMNS)
    )
    src_table = pd.DataFrame(rows, columns=SOURCE_COLUMNS)
    src_table = src_table.sort_values("eci", ascending=False, kind="stable", na_position="last").reset_index(
        drop=True
    )
    bt = beats(scored, config, query_keys=qkeys)
    order = list(src_table["name"])
    bt = bt.loc[order, order]
    enc_name = embeddings.name if embeddings is not None else getattr(encoder, "name", str(encoder))
    return ScoreResult(
        pairs=pairs,
        queries=queries,
        sources=src_table,
        beats=bt,
        encoder=enc_name,
        config=config,
        notes=notes,
    )
