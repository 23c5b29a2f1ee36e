"""The metrics of ``shared/spec/ECI.md``, one function each, vectorised over ragged groups.

Conventions. Per-negative ("pair") arrays are sorted by query; ``counts[q]`` is the number of
pairs of query q (K_q, may be 0), so query q owns pairs ``starts[q] : starts[q] + counts[q]``
with ``starts = cumsum(counts) − counts``. Group reductions use ``ufunc.reduceat`` on the starts
of the non-empty groups and ``np.repeat(values, counts)`` broadcasts per-query values back to
pairs: there is no Python loop over pairs or queries (ECI_sem loops over the distinct values
of K only). Per-query results are float64. A query with K = 0 scores 0 on every metric.
"""

from __future__ import annotations

import math

import numpy as np

# ----------------------------------------------------------------------------- ragged groups


def as_counts(counts) -> np.ndarray:
    """``counts`` as an int64 array, checked non-negative."""
    c = np.asarray(counts, dtype=np.int64)
    if c.ndim != 1:
        raise ValueError(f"counts must be 1-d, got shape {c.shape}")
    if c.size and c.min() < 0:
        raise ValueError("counts must be >= 0 (number of negatives per query)")
    return c


def group_starts(counts) -> np.ndarray:
    """``starts[q] = Σ_{j<q} counts[j]``: index of query q's first pair."""
    c = as_counts(counts)
    return np.cumsum(c) - c


def group_reduce(ufunc: np.ufunc, x, counts, empty) -> np.ndarray:
    """``ufunc`` reduced over each group of ``x``; ``empty`` for groups with no element.

    Result dtype: bool for a bool ``x`` (logical reductions), else float64.
    """
    c = as_counts(counts)
    x = np.asarray(x)
    if int(c.sum()) != x.shape[0]:
        raise ValueError(f"counts sum to {int(c.sum())} but there are {x.shape[0]} values")
    dtype = bool if x.dtype == bool else np.float64
    out = np.full(c.shape[0], empty, dtype=dtype)
    nonempty = c > 0
    if x.shape[0]:
        out[nonempty] = ufunc.reduceat(x, group_starts(c)[nonempty])
    return out


def group_sum(x, counts) -> np.ndarray:
    """Σ over each group (0 for an empty group)."""
    return group_reduce(np.add, np.asarray(x, dtype=np.float64), counts, 0.0)


def group_max(x, counts, empty=-np.inf) -> np.ndarray:
    """max over each group (``empty`` for an empty group)."""
    return group_reduce(np.maximum, np.asarray(x, dtype=np.float64), counts, empty)


def group_min(x, counts, empty=np.inf) -> np.ndarray:
    """min over each group (``empty`` for an empty group)."""
    return group_reduce(np.minimum, np.asarray(x, dtype=np.float64), counts, empty)


def group_any(x, counts) -> np.ndarray:
    """logical or over each group (False for an empty group)."""
    return group_reduce(np.logical_or, np.asarray(x, dtype=bool), counts, False)


def broadcast(values, counts) -> np.ndarray:
    """Per-query values repeated onto each query's pairs."""
    return np.repeat(np.asarray(values), as_counts(counts))


def group_argext(x, counts, largest: bool = False) -> np.ndarray:
    """Index (into ``x``) of the first minimum (``largest=False``) or maximum of each group; −1
    for an empty group."""
    c = as_counts(counts)
    x = np.asarray(x, dtype=np.float64)
    if c.shape[0] == x.shape[0] and np.all(c == 1):  # one element per group
        return np.arange(c.shape[0], dtype=np.int64)
    gid = np.repeat(np.arange(c.shape[0]), c)
    order = np.lexsort((-x if largest else x, gid))  # stable: first index wins ties
    out = np.full(c.shape[0], -1, dtype=np.int64)
    nonempty = c > 0
    out[nonempty] = order[group_starts(c)[nonempty]]
    return out


# ----------------------------------------------------------------------------- per negative


def positive_similarity(s_qpos, pos_counts, rule: str = "min") -> tuple[np.ndarray, np.ndarray]:
    """``s_qp`` per query from the similarities ``s(q, p)`` of its labelled positives, and p*.

    * ``"min"`` (spec default): s_qp = min_p s(q, p), p* = argmin (the least similar positive);
    * ``"max"``: s_qp = max_p s(q, p), p* = argmax;
    * ``"mean"``: s_qp = mean_p s(q, p), p* = argmin (the least similar positive defines the
      terms that need one passage: ``lex_overlap``, ``ce_margin`` and ECI_sem's residuals).

    Returns ``(s_qp, pstar)`` where ``pstar`` indexes ``s_qpos`` (−1 and NaN for a query with no
    positive). Ties: the first positive in input order.
    """
    c = as_counts(pos_counts)
    s = np.asarray(s_qpos, dtype=np.float64)
    if rule == "min":
        pstar = group_argext(s, c)
    elif rule == "max":
        pstar = group_argext(s, c, largest=True)
    elif rule == "mean":
        pstar = group_argext(s, c)
    else:
        raise ValueError(f"positive={rule!r}: use 'min', 'max' or 'mean'")
    if rule == "mean":
        s_qp = np.full(c.shape[0], np.nan)
        ok = c > 0
        s_qp[ok] = group_sum(s, c)[ok] / c[ok]
    else:
        s_qp = np.where(pstar >= 0, s[np.maximum(pstar, 0)] if s.size else np.nan, np.nan)
    return s_qp, pstar


#: similarities closer than this are a tie: ``|s_qp − s_qn| < TIE_TOLERANCE`` gives margin 0.
#: Two embeddings that are equal up to float rounding (a copy of the positive under another id,
#: a whitespace variant, a float16 cache, another BLAS summation order) differ by ~1e-7 in
#: float32 and ~1e-6 through a float16 round trip; passages that differ by one word differ by
#: ~1e-2 or more. A tie must count as a tie (Δ = 0, unsafe), whatever the rounding.
TIE_TOLERANCE = 1e-5


def margin(s_qp, s_qn, counts, copy=None, tol: float = TIE_TOLERANCE) -> np.ndarray:
    """``margin_k = s_qp − s_qn_k`` (positive: the encoder still ranks p* above n_k).

    Ties are ties: ``|margin_k| < tol`` (default :data:`TIE_TOLERANCE`) gives exactly 0. ``copy``
    (bool per pair): the negative is a copy of one of its query's positives (same text, up to
    whitespace); its margin is ``min(margin_k, 0)``, so a copy is never safer than a tie (under
    ``positive="min"`` a copy of p* has margin exactly 0, a copy of a more similar positive a
    negative one).
    """
    m = broadcast(np.asarray(s_qp, dtype=np.float64), counts) - np.asarray(s_qn, dtype=np.float64)
    m[np.abs(m) < tol] = 0.0
    if copy is not None:
        c = np.asarray(copy, dtype=bool)
        m[c] = np.minimum(m[c], 0.0)
    return m


def negative_positive_similarity(s_pn_all, pos_per_pair) -> np.ndarray:
    """``s_pn_k = max_{p ∈ P_q} s(p, n_k)`` from the similarities of each negative with each of
    its query's positives (grouped by negative, ``pos_per_pair[k] = |P_q|``)."""
    return group_max(s_pn_all, pos_per_pair, empty=np.nan)


# ----------------------------------------------------------------------------- per query


def capacity(K) -> np.ndarray:
    """Information Capacity ``C = ln(K + 1)`` (0 for K = 0)."""
    return np.log1p(np.asarray(K, dtype=np.float64))


def signal(s_qn, counts) -> np.ndarray:
    """Signal (hardness) ``S = max(0, (1/K) Σ_k s_qn_k)``; 0 for K = 0."""
    c = as_counts(counts)
    tot = group_sum(s_qn, c)
    mean = np.divide(tot, c, out=np.zeros_like(tot), where=c > 0)
    return np.maximum(mean, 0.0)


def safety(margins, counts) -> np.ndarray:
    """Safety ``Δ = max(0, s_qp − max_k s_qn_k) = max(0, min_k margin_k)``; 0 for K = 0.

    A single negative with margin ≤ 0 (ranked at or above the positive) gives Δ = 0.
    """
    m = group_min(margins, counts, empty=0.0)
    return np.maximum(m, 0.0)


def unsafe_query(margins, counts) -> np.ndarray:
    """A query is unsafe when Δ = 0 (the spec's ``unsafe_query_rate`` is the share of such
    queries): some negative has margin ≤ 0, or the query has K = 0 negatives (Δ = 0 because a
    K = 0 query scores 0 on every metric)."""
    counts = np.asarray(counts)
    return group_any(np.asarray(margins, dtype=np.float64) <= 0, counts) | (counts == 0)


def discriminative_efficiency(S, delta) -> np.ndarray:
    """``DE = 2·S·Δ / (S + Δ)`` (harmonic mean of S and Δ); 0 when S + Δ = 0."""
    S = np.asarray(S, dtype=np.float64)
    delta = np.asarray(delta, dtype=np.float64)
    den = S + delta
    return np.divide(2.0 * S * delta, den, out=np.zeros(np.broadcast(S, delta).shape), where=den > 0)


def eci_query(C, DE) -> np.ndarray:
    """``ECI_q = C · DE``."""
    return np.asarray(C, dtype=np.float64) * np.asarray(DE, dtype=np.float64)


def eci_arith(C, S, delta) -> np.ndarray:
    """Ablation ``ECI_arith_q = C · (S + Δ) / 2`` (arithmetic instead of harmonic mean)."""
    return (
        np.asarray(C, dtype=np.float64)
        * (np.asarray(S, dtype=np.float64) + np.asarray(delta, dtype=np.float64))
        / 2.0
    )


def infonce_bound(s_qp, s_qn, counts, temperature: float = 0.05) -> np.ndarray:
    """``I_NCE = ln(K + 1) − L`` with the InfoNCE loss at the positive
    ``L = −ln softmax([s_qp, s_qn_1 … s_qn_K] / τ)[0] = logsumexp(z) − z_0``, z = scores / τ.

    logsumexp is taken stably per group around ``m = max(z_0, max_k z_k)``. K = 0 gives
    L = 0 and I_NCE = ln 1 = 0.
    """
    if not temperature > 0:
        raise ValueError(f"temperature={temperature!r}: must be > 0 (e.g. 0.05)")
    c = as_counts(counts)
    z0 = np.asarray(s_qp, dtype=np.float64) / temperature
    z = np.asarray(s_qn, dtype=np.float64) / temperature
    m = np.maximum(z0, group_max(z, c))
    total = np.exp(z0 - m) + group_sum(np.exp(z - broadcast(m, c)), c)
    loss = m + np.log(total) - z0
    return np.log1p(c.astype(np.float64)) - loss


def query_metrics(s_qp, s_qn, counts, temperature: float = 0.05, copy=None) -> dict[str, np.ndarray]:
    """Every per-query metric from ``s_qp`` (per query) and ``s_qn`` (per pair):
    ``K, C, S, delta, DE, eci, eci_arith, infonce, unsafe`` (and the per-pair ``margin``, see
    :func:`margin` for ties and ``copy``)."""
    c = as_counts(counts)
    mg = margin(s_qp, s_qn, c, copy=copy)
    C = capacity(c)
    S = signal(s_qn, c)
    D = safety(mg, c)
    DE = discriminative_efficiency(S, D)
    return {
        "K": c,
        "C": C,
        "S": S,
        "delta": D,
        "DE": DE,
        "eci": eci_query(C, DE),
        "eci_arith": eci_arith(C, S, D),
        "infonce": infonce_bound(s_qp, s_qn, c, temperature),
        "unsafe": unsafe_query(mg, c),
        "margin": mg,
    }


# ----------------------------------------------------------------------------- per source


def set_aggregate(K, S, delta) -> dict[str, float]:
    """Option ``aggregate="set"``: ``C = ln(mean K + 1)``, ``S̄``, ``Δ̄`` averaged over queries
    first, ``DE = 2 S̄ Δ̄ / (S̄ + Δ̄)``, ``ECI = C · DE``, ``ECI_arith = C · (S̄ + Δ̄) / 2``."""
    Kbar = float(np.mean(K)) if len(K) else math.nan
    Sbar = float(np.mean(S)) if len(S) else math.nan
    Dbar = float(np.mean(delta)) if len(delta) else math.nan
    C = math.log1p(Kbar)
    DE = float(discriminative_efficiency(Sbar, Dbar)) if not math.isnan(Sbar + Dbar) else math.nan
    return {
        "capacity": C,
        "signal": Sbar,
        "safety": Dbar,
        "de": DE,
        "eci": C * DE,
        "eci_arith": C * (Sbar + Dbar) / 2,
    }


def set_eci_from_means(means: np.ndarray) -> np.ndarray:
    """Vectorised :func:`set_aggregate` ECI from (B, 3) resampled means of (K, S, Δ)."""
    C = np.log1p(means[:, 0])
    return C * discriminative_efficiency(means[:, 1], means[:, 2])


# ----------------------------------------------------------------------------- flags

FLAG_RULES = ("unsafe", "near_duplicate", "cross_encoder")
FLAG_REASONS = np.array(
    [",".join(r for bit, r in enumerate(FLAG_RULES) if code >> bit & 1) for code in range(8)], dtype=object
)


def flags(
    margins,
    s_pn,
    s_qn,
    s_qp_pair,
    exact_duplicate=None,
    ce_margin=None,
    near_duplicate_threshold: float = 0.95,
    cross_encoder_margin: float = 0.0,
    percpos: float = 0.95,
) -> dict[str, np.ndarray]:
    """The spec's flag rules ("Flags"). Each says what it measures, not that the negative is a
    false negative (see :mod:`eci_core.metrics.false_negatives` for that score):

    * ``unsafe``: margin ≤ 0 (ties included, see :func:`margin`): the target encoder ranks the
      negative at or above the positive;
    * ``near_duplicate``: exact text match with a positive (up to whitespace), or s_pn ≥ t;
    * ``cross_encoder``: ce_margin ≤ m (only when a cross-encoder gave ``ce_margin``; NaN never
      fires);
    * ``percpos`` (risk marker, not part of ``flagged``): s_qn > percpos · s_qp;
    * ``flagged`` = unsafe ∨ near_duplicate ∨ cross_encoder; ``flag_reasons`` the fired rules
      comma-joined in that order ("" when none).
    """
    mg = np.asarray(margins, dtype=np.float64)
    n = mg.shape[0]
    unsafe = mg <= 0
    near = np.asarray(s_pn, dtype=np.float64) >= near_duplicate_threshold
    if exact_duplicate is not None:
        near = near | np.asarray(exact_duplicate, dtype=bool)
    if ce_margin is None:
        cross = np.zeros(n, dtype=bool)
    else:
        cross = np.asarray(ce_margin, dtype=np.float64) <= cross_encoder_margin
    risky = np.asarray(s_qn, dtype=np.float64) > percpos * np.asarray(s_qp_pair, dtype=np.float64)
    code = unsafe.astype(np.int8) + 2 * near.astype(np.int8) + 4 * cross.astype(np.int8)
    return {
        "unsafe": unsafe,
        "near_duplicate": near,
        "cross_encoder": cross,
        "percpos": risky,
        "flagged": code > 0,
        "flag_reasons": FLAG_REASONS[code],
    }


# ----------------------------------------------------------------------------- ECI_sem


def sem_weights(
    s_qn, s_qp, margins, lex_overlap, counts, temperature=0.05, consistency_temperature=0.05
) -> np.ndarray:
    """ECI_sem weights ``w_k = π_k · c_k · ℓ_k`` with

    * semantic locality ``π_k = exp(a_k) / (1 + Σ_j exp(a_j))``, ``a_k = (s_qn_k − s_qp)/τ``
      (the InfoNCE softmax weight of n_k with the positive's term exp(0) = 1 in the
      denominator; computed stably around ``max(0, max_j a_j)``);
    * target consistency ``c_k = sigmoid(margin_k / τ_c)``;
    * lexical residuality ``ℓ_k = 1 − lex_overlap_k``.
    """
    c = as_counts(counts)
    a = (np.asarray(s_qn, dtype=np.float64) - broadcast(np.asarray(s_qp, dtype=np.float64), c)) / temperature
    m = np.maximum(group_max(a, c), 0.0)
    mp = broadcast(m, c)
    e = np.exp(a - mp)
    den = np.exp(-m) + group_sum(e, c)
    pi = e / broadcast(den, c)
    x = np.asarray(margins, dtype=np.float64) / consistency_temperature
    cons = 0.5 * (1.0 + np.tanh(0.5 * x))  # sigmoid, overflow-free
    lexres = 1.0 - np.asarray(lex_overlap, dtype=np.float64)
    return pi * cons * lexres


def sem_logdet(D: np.ndarray, w: np.ndarray, lam: float = 0.1) -> np.ndarray:
    """``ln det(I_K + G/λ)`` for a batch of queries with the same K: residuals ``D`` (n, K, dim)
    and weights ``w`` (n, K), ``G_kl = sqrt(w_k w_l) · d_k · d_l``.

    ``I + G/λ`` is symmetric positive definite, so the stacked (n, K, K) matrices go through one
    batched Cholesky factorisation, ``ln det = 2 Σ_k ln L_kk`` (4× faster than ``slogdet``'s LU
    on 10 × 10 matrices, measured); ``np.linalg.slogdet`` on the stack is the fallback should
    rounding make a matrix numerically indefinite.
    """
    n, K = w.shape
    if K == 0:
        return np.zeros(n)
    gram = np.matmul(D, D.transpose(0, 2, 1)).astype(np.float64)
    sw = np.sqrt(np.asarray(w, dtype=np.float64))
    mat = (sw[:, :, None] * sw[:, None, :] * gram) / lam
    mat[:, np.arange(K), np.arange(K)] += 1.0
    try:
        chol = np.linalg.cholesky(mat)
    except np.linalg.LinAlgError:
        return np.linalg.slogdet(mat)[1]
    return 2.0 * np.log(chol[:, np.arange(K), np.arange(K)]).sum(axis=1)


def eci_sem(
    passage_emb, n_idx, pstar_idx, weights, counts, lam: float = 0.1, max_floats: int = 8_000_000
) -> np.ndarray:
    """Experimental ``ECI_sem_q = ln det(I_K + G / λ)`` with
    ``G_kl = sqrt(w_k w_l) · d_k · d_l`` and residuals ``d_k = f(n_k) − f(p*)``.

    ``passage_emb[n_idx[k]]`` is f(n_k) (pairs grouped by query as ``counts``) and
    ``passage_emb[pstar_idx[q]]`` is f(p*) of query q. G is positive semi-definite (Hadamard
    product of the PSD rank-one ``√w √wᵀ`` and the Gram matrix ``D Dᵀ``), so the determinant is
    ≥ 1 and ECI_sem ≥ 0; K = 0 gives ln det(I_0) = 0. Queries are batched by K and each batch's
    (n_q, K, K) matrices go through one batched factorisation (:func:`sem_logdet`);
    ``max_floats`` bounds the size of the gathered (n_q, K, dim) block.
    """
    if not lam > 0:
        raise ValueError(f"sem_lambda={lam!r}: must be > 0 (e.g. 0.1)")
    c = as_counts(counts)
    n_idx = np.asarray(n_idx, dtype=np.int64)
    pstar_idx = np.asarray(pstar_idx, dtype=np.int64)
    w = np.asarray(weights, dtype=np.float64)
    starts = group_starts(c)
    out = np.zeros(c.shape[0], dtype=np.float64)
    dim = passage_emb.shape[1]
    work = np.float64 if passage_emb.dtype == np.float64 else np.float32
    for K in np.unique(c[c > 0]):
        qs = np.flatnonzero(c == K)
        step = max(1, int(max_floats // (K * dim)))
        for a in range(0, qs.shape[0], step):
            qc = qs[a : a + step]
            rows = starts[qc][:, None] + np.arange(K)
            N = passage_emb[n_idx[rows]].astype(work, copy=False)
            D = N - passage_emb[pstar_idx[qc]].astype(work, copy=False)[:, None, :]
            out[qc] = sem_logdet(D, w[rows], lam)
    return out
