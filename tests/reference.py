"""Slow, plain-Python reference implementation of ``shared/spec/ECI.md``.

Written straight from the spec with loops and the ``math`` module (no numpy in the
computations), so the vectorised ``eci_core`` code can be checked against it. Vectors are lists
of floats (numpy rows are converted with ``list(map(float, row))``).
"""

from __future__ import annotations

import math
import re

# ----------------------------------------------------------------------------- basics


def dot(a, b) -> float:
    return sum(float(x) * float(y) for x, y in zip(a, b))


def tokens(text: str) -> set[str]:
    """Distinct lowercase \\w+ tokens."""
    return set(re.findall(r"\w+", text.lower()))


def idf(corpus: list[str]) -> dict:
    """idf(t) = ln((N + 1) / (df(t) + 1)) + 1 over the corpus; unseen tokens: df = 0."""
    n = len(corpus)
    df: dict[str, int] = {}
    for text in corpus:
        for t in tokens(text):
            df[t] = df.get(t, 0) + 1

    def f(t: str) -> float:
        return math.log((n + 1) / (df.get(t, 0) + 1)) + 1

    return f


def lex_overlap(negative: str, positive: str, idf_fn) -> float:
    """Σ_{t ∈ T(n) ∩ T(p)} idf(t) / Σ_{t ∈ T(n)} idf(t); 0 for a negative without tokens."""
    tn, tp = tokens(negative), tokens(positive)
    den = sum(idf_fn(t) for t in tn)
    if den == 0:
        return 0.0
    return sum(idf_fn(t) for t in tn if t in tp) / den


# ----------------------------------------------------------------------------- per query


TIE_TOL = 1e-5  # |s_qp - s_qn| below this is a tie: margin 0 (metrics.TIE_TOLERANCE)


def tie(m: float) -> float:
    """A margin with ties as ties."""
    return 0.0 if abs(m) < TIE_TOL else m


def query_metrics(s_qp: float, s_qn: list[float], tau: float = 0.05, copies=None) -> dict:
    """K, C, S, Δ, DE, ECI_q, ECI_arith_q, I_NCE and unsafe for one query. ``copies[k]``: the
    k-th negative is a copy of a positive (its margin is min(margin, 0))."""
    K = len(s_qn)
    if K == 0:
        return {
            "K": 0,
            "C": 0.0,
            "S": 0.0,
            "delta": 0.0,
            "DE": 0.0,
            "eci": 0.0,
            "eci_arith": 0.0,
            "infonce": 0.0,
            "unsafe": True,
        }
    C = math.log(K + 1)
    S = max(0.0, sum(s_qn) / K)
    margins = (
        [tie(s_qp - s) for s in s_qn]
        if copies is None
        else [min(tie(s_qp - s), 0.0) if c else tie(s_qp - s) for s, c in zip(s_qn, copies)]
    )
    delta = max(0.0, min(margins))
    DE = 0.0 if S + delta == 0 else 2 * S * delta / (S + delta)
    logits = [s_qp / tau] + [s / tau for s in s_qn]
    m = max(logits)
    lse = m + math.log(sum(math.exp(z - m) for z in logits))
    L = lse - logits[0]
    return {
        "K": K,
        "C": C,
        "S": S,
        "delta": delta,
        "DE": DE,
        "eci": C * DE,
        "eci_arith": C * (S + delta) / 2,
        "infonce": math.log(K + 1) - L,
        "unsafe": any(mg <= 0 for mg in margins),
    }


def logdet(a: list[list[float]]) -> float:
    """ln det of a positive-definite matrix by Gaussian elimination with partial pivoting."""
    n = len(a)
    m = [list(row) for row in a]
    total = 0.0
    for i in range(n):
        p = max(range(i, n), key=lambda r: abs(m[r][i]))
        m[i], m[p] = m[p], m[i]
        piv = m[i][i]
        total += math.log(abs(piv))
        for r in range(i + 1, n):
            f = m[r][i] / piv
            for c in range(i, n):
                m[r][c] -= f * m[i][c]
    return total


def eci_sem(neg_vecs, pstar_vec, s_qp, s_qn, lex, tau=0.05, tau_c=0.05, lam=0.1) -> float:
    """ECI_sem_q = ln det(I + G/λ), G_kl = sqrt(w_k w_l) d_k·d_l, d_k = f(n_k) − f(p*),
    w_k = π_k c_k ℓ_k (spec, "ECI_sem")."""
    K = len(s_qn)
    if K == 0:
        return 0.0
    d = [[x - y for x, y in zip(v, pstar_vec)] for v in neg_vecs]
    ex = [math.exp((s - s_qp) / tau) for s in s_qn]
    den = 1 + sum(ex)
    w = []
    for k in range(K):
        pi = ex[k] / den
        c = 1 / (1 + math.exp(-(s_qp - s_qn[k]) / tau_c))
        w.append(pi * c * (1 - lex[k]))
    mat = [
        [(1.0 if k == j else 0.0) + math.sqrt(w[k] * w[j]) * dot(d[k], d[j]) / lam for j in range(K)]
        for k in range(K)
    ]
    return logdet(mat)


# ----------------------------------------------------------------------------- a whole source


def score(
    query_vecs,
    passage_vecs,
    pairs,
    positives,
    queries=None,
    positive_rule="min",
    tau=0.05,
    passage_texts=None,
    idf_corpus=None,
    ce=None,
    near_t=0.95,
    ce_m=0.0,
    percpos=0.95,
    sem=(0.05, 0.05, 0.1),
):
    """Score one source.

    ``pairs``: list of (query row, passage row) in order, grouped by query; ``positives``: dict
    query row → list of passage rows; ``queries``: the covered query rows (default: those in
    pairs). ``passage_texts`` enables lex_overlap (IDF over ``idf_corpus``, default all passage
    texts) and exact text matches (up to whitespace); ``ce(q, p)`` a cross-encoder logit function.
    Returns ``(pair_rows, query_rows)`` lists of dicts.
    """
    qv = [list(map(float, r)) for r in query_vecs]
    pv = [list(map(float, r)) for r in passage_vecs]
    if queries is None:
        queries = sorted({q for q, _ in pairs})
    idf_fn = None
    if passage_texts is not None:
        idf_fn = idf(list(passage_texts) if idf_corpus is None else list(idf_corpus))
    pair_rows, query_rows = [], []
    for q in queries:
        pos = []
        for p in positives[q]:
            if p not in pos:
                pos.append(p)
        sims = [dot(qv[q], pv[p]) for p in pos]
        if positive_rule == "min":
            j = min(range(len(pos)), key=lambda i: (sims[i], i))
            s_qp = sims[j]
        elif positive_rule == "max":
            j = min(range(len(pos)), key=lambda i: (-sims[i], i))
            s_qp = sims[j]
        else:
            j = min(range(len(pos)), key=lambda i: (sims[i], i))
            s_qp = sum(sims) / len(sims)
        pstar = pos[j]
        negs = [n for qq, n in pairs if qq == q]
        s_qn = [dot(qv[q], pv[n]) for n in negs]
        lex, copies = [], []
        for n, s in zip(negs, s_qn):
            s_pn = max(dot(pv[p], pv[n]) for p in pos)
            exact = n in pos or (
                passage_texts is not None
                and any(passage_texts[n].split() == passage_texts[p].split() for p in pos)
            )
            copies.append(exact)
            mg = min(tie(s_qp - s), 0.0) if exact else tie(s_qp - s)
            lx = lex_overlap(passage_texts[n], passage_texts[pstar], idf_fn) if idf_fn else float("nan")
            lex.append(0.0 if math.isnan(lx) else lx)
            cem = ce(q, pstar) - ce(q, n) if ce else float("nan")
            unsafe = mg <= 0
            near = exact or s_pn >= near_t
            cross = ce is not None and cem <= ce_m
            reasons = [
                r for r, on in (("unsafe", unsafe), ("near_duplicate", near), ("cross_encoder", cross)) if on
            ]
            pair_rows.append(
                {
                    "q": q,
                    "n": n,
                    "s_qn": s,
                    "s_qp": s_qp,
                    "margin": mg,
                    "s_pn": s_pn,
                    "lex_overlap": lx,
                    "ce_margin": cem,
                    "unsafe": unsafe,
                    "near_duplicate": near,
                    "cross_encoder": cross,
                    "percpos": s > percpos * s_qp,
                    "flagged": bool(reasons),
                    "flag_reasons": ",".join(reasons),
                }
            )
        row = query_metrics(s_qp, s_qn, tau, copies)
        row["eci_sem"] = eci_sem([pv[n] for n in negs], pv[pstar], s_qp, s_qn, lex, *sem)
        row["q"] = q
        row["s_qp"] = s_qp
        row["pstar"] = pstar
        query_rows.append(row)
    return pair_rows, query_rows


def source_point(query_rows, pair_rows, aggregate="query") -> dict:
    """Point estimates of the sources table from per-query and per-pair rows."""
    n = len(query_rows)

    def mean(key):
        return sum(r[key] for r in query_rows) / n

    out = {
        "signal": mean("S"),
        "safety": mean("delta"),
        "infonce_bound": mean("infonce"),
        "eci_sem": mean("eci_sem"),
        "mean_k": mean("K"),
        "unsafe_query_rate": sum(1 for r in query_rows if r["unsafe"]) / n,
        "unsafe_negative_rate": (sum(1 for r in pair_rows if r["unsafe"]) / len(pair_rows))
        if pair_rows
        else float("nan"),
    }
    if aggregate == "set":
        C = math.log(mean("K") + 1)
        S, D = out["signal"], out["safety"]
        DE = 0.0 if S + D == 0 else 2 * S * D / (S + D)
        out.update(capacity=C, de=DE, eci=C * DE, eci_arith=C * (S + D) / 2)
    else:
        out.update(capacity=mean("C"), de=mean("DE"), eci=mean("eci"), eci_arith=mean("eci_arith"))
    return out


def quantile(values: list[float], q: float) -> float:
    """numpy's default (linear) quantile."""
    v = sorted(values)
    pos = (len(v) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (pos - lo)


def resampled_mean(values: list[float], counts: list[int]) -> float:
    """Mean of one bootstrap resample given how often each value was drawn."""
    return sum(c * v for c, v in zip(counts, values)) / sum(counts)
