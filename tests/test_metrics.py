"""The vectorised metrics against the spec's reference values and the slow reference."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import eci_core  # noqa: F401  (sets the offline variables first)
from eci_core.metrics import eci as M
from eci_core.metrics.bootstrap import (
    beats_matrix,
    bootstrap_mean,
    interval,
    resample_counts,
    resampled_means,
)
from eci_core.config import ECIConfig
from eci_core.metrics.lexical import PassageLexicon, lex_overlap
from eci_core.text import tokenize
from eci_core.metrics.eci import FLAG_RULES
from eci_core.scoring.arrays import score_arrays
from eci_core.scoring.tables import source_summary

import reference as R  # tests/ is on sys.path under pytest (prepend import mode)

WORDS = ["alpha", "beta", "gamma", "delta", "eps", "zeta", "eta", "theta"]


def unit(rng, n, dim):
    v = rng.normal(size=(n, dim))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


# ----------------------------------------------------------------------------- spec values


def test_spec_reference_values():
    r = M.query_metrics(np.array([0.80]), np.array([0.60, 0.50, 0.30]), [3])
    assert r["K"][0] == 3
    assert round(r["C"][0], 6) == 1.386294
    assert round(r["S"][0], 6) == 0.466667
    assert round(r["delta"][0], 6) == 0.2
    assert round(r["DE"][0], 6) == 0.28
    assert round(r["eci"][0], 6) == 0.388162
    assert round(r["eci_arith"][0], 6) == 0.462098
    assert not r["unsafe"][0]
    r4 = M.query_metrics(np.array([0.80]), np.array([0.60, 0.50, 0.30, 0.85]), [4])
    assert r4["K"][0] == 4 and r4["delta"][0] == 0.0 and r4["eci"][0] == 0.0
    assert r4["eci_arith"][0] > 0 and r4["unsafe"][0]


def test_spec_reference_values_through_embeddings():
    # q = e1, p = (0.8, 0.6, 0), n = (s, 0, sqrt(1 - s²)): s(q, n) = s and s(p, n) = 0.8 s < 0.95
    q = np.array([[1.0, 0.0, 0.0]])
    passages = np.array([[0.8, 0.6, 0.0]] + [[s, 0.0, math.sqrt(1 - s * s)] for s in (0.6, 0.5, 0.3, 0.85)])
    sc = score_arrays(q, passages, [0, 0, 0], [1, 2, 3], [0], [0])
    assert np.allclose(sc.s_qn, [0.6, 0.5, 0.3]) and np.allclose(sc.s_qp, 0.8)
    assert round(sc.metrics["eci"][0], 6) == 0.388162
    assert round(sc.metrics["eci_arith"][0], 6) == 0.462098
    sc4 = score_arrays(q, passages, [0, 0, 0, 0], [1, 2, 3, 4], [0], [0])
    assert sc4.metrics["K"][0] == 4 and sc4.metrics["eci"][0] == 0.0 and sc4.metrics["delta"][0] == 0.0
    assert sc4.flags["unsafe"].tolist() == [False, False, False, True]
    assert sc4.flags["flag_reasons"].tolist() == ["", "", "", "unsafe"]


def test_margin_exactly_zero_is_unsafe():
    r = M.query_metrics(np.array([0.5]), np.array([0.5, 0.1]), [2])
    assert r["delta"][0] == 0.0 and r["eci"][0] == 0.0 and r["unsafe"][0]
    f = M.flags(r["margin"], np.array([0.1, 0.1]), np.array([0.5, 0.1]), np.array([0.5, 0.5]))
    assert f["unsafe"].tolist() == [True, False]


def test_ties_within_the_tolerance_are_margin_zero():
    # the float noise of issue 9: whitespace copies came out at +6e-8 and +9e-8
    s_qn = np.array([0.5 - 6e-8, 0.5 - 9e-8, 0.5 + 4e-6, 0.5 - 2e-5, 0.49])
    r = M.query_metrics(np.array([0.5]), s_qn, [5])
    assert r["margin"][:3].tolist() == [0.0, 0.0, 0.0]
    assert r["margin"][3] == pytest.approx(2e-5) and r["margin"][4] == pytest.approx(0.01)
    assert r["delta"][0] == 0.0 and r["unsafe"][0]
    # a copy of a positive is never safer than a tie; other negatives keep their margin
    m = M.margin(np.array([0.5]), np.array([0.3, 0.3]), [2], copy=np.array([True, False]))
    assert m.tolist() == [0.0, pytest.approx(0.2)]
    assert M.margin(np.array([0.5]), np.array([0.7]), [1], copy=np.array([True]))[0] == pytest.approx(-0.2)


def test_infonce_by_hand():
    # one negative: L = ln(1 + exp((s_qn - s_qp)/tau)), I = ln 2 - L
    got = M.infonce_bound(np.array([0.8]), np.array([0.6]), [1], 0.05)[0]
    assert got == pytest.approx(math.log(2) - math.log1p(math.exp(-4.0)), abs=1e-12)
    # extreme logits stay finite (stable logsumexp)
    big = M.infonce_bound(np.array([-1.0]), np.array([1.0]), [1], 1e-4)[0]
    assert np.isfinite(big) and big == pytest.approx(math.log(2) - 2e4, rel=1e-9)
    safe = M.infonce_bound(np.array([1.0]), np.array([-1.0]), [1], 1e-4)[0]
    assert safe == pytest.approx(math.log(2), abs=1e-12)  # positive far above: I = ln(K + 1)


def test_k_zero_scores_zero():
    r = M.query_metrics(np.array([0.7, 0.9]), np.array([0.2]), [0, 1])
    for key in ("K", "C", "S", "delta", "DE", "eci", "eci_arith", "infonce"):
        assert r[key][0] == 0
    assert r["unsafe"][0]  # Δ = 0: counted in unsafe_query_rate, as the spec defines it
    w = M.sem_weights(np.zeros(0), np.array([0.7]), np.zeros(0), np.zeros(0), [0])
    assert w.shape == (0,)
    assert M.eci_sem(np.eye(3), np.zeros(0, np.int64), np.array([0]), w, [0])[0] == 0.0


def test_more_equally_hard_safe_negatives_raise_eci():
    ecis = [M.query_metrics(np.array([0.8]), np.full(k, 0.5), [k])["eci"][0] for k in range(1, 12)]
    assert all(b > a for a, b in zip(ecis, ecis[1:]))
    # S and Δ do not change, only C = ln(K + 1)
    assert ecis[4] / ecis[0] == pytest.approx(math.log(6) / math.log(2))


def test_harmonic_mean_punishes_imbalance():
    # same S + Δ, balanced vs one-sided
    bal = M.discriminative_efficiency(0.3, 0.3)
    lop = M.discriminative_efficiency(0.59, 0.01)
    assert bal == pytest.approx(0.3) and lop < 0.03
    assert M.discriminative_efficiency(0.0, 0.0) == 0.0


def test_group_reduce_with_empty_groups():
    counts = np.array([0, 2, 0, 3, 0])
    x = np.array([1.0, 5.0, -2.0, 7.0, 0.5])
    assert M.group_sum(x, counts).tolist() == [0, 6.0, 0, 5.5, 0]
    assert M.group_max(x, counts, empty=-1).tolist() == [-1, 5.0, -1, 7.0, -1]
    assert M.group_min(x, counts, empty=9).tolist() == [9, 1.0, 9, -2.0, 9]
    assert M.group_argext(x, counts).tolist() == [-1, 0, -1, 2, -1]
    assert M.group_argext(x, counts, largest=True).tolist() == [-1, 1, -1, 3, -1]
    with pytest.raises(ValueError, match="counts sum"):
        M.group_sum(x, [1, 1])


def test_positive_rules():
    s = np.array([0.9, 0.4, 0.6, 0.7])
    for rule, want, pstar in (
        ("min", [0.4, 0.7], [1, 3]),
        ("max", [0.9, 0.7], [0, 3]),
        ("mean", [1.9 / 3, 0.7], [1, 3]),
    ):
        got, ps = M.positive_similarity(s, [3, 1], rule)
        assert np.allclose(got, want) and ps.tolist() == pstar
    with pytest.raises(ValueError, match="positive='median'"):
        M.positive_similarity(s, [3, 1], "median")


def test_flags_and_reasons():
    f = M.flags(
        margins=np.array([0.2, -0.1, 0.3, 0.0, 0.5]),
        s_pn=np.array([0.5, 0.97, 0.2, 0.99, 0.1]),
        s_qn=np.array([0.6, 0.9, 0.5, 0.8, 0.77]),
        s_qp_pair=np.array([0.8, 0.8, 0.8, 0.8, 0.8]),
        exact_duplicate=np.array([False, False, True, False, False]),
        ce_margin=np.array([1.0, 2.0, 0.0, -1.0, np.nan]),
    )
    assert f["unsafe"].tolist() == [False, True, False, True, False]
    assert f["near_duplicate"].tolist() == [False, True, True, True, False]
    assert f["cross_encoder"].tolist() == [False, False, True, True, False]
    assert f["percpos"].tolist() == [False, True, False, True, True]  # 0.77 > 0.76, a marker only
    assert f["flagged"].tolist() == [False, True, True, True, False]
    assert f["flag_reasons"].tolist() == [
        "",
        "unsafe,near_duplicate",
        "near_duplicate,cross_encoder",
        "unsafe,near_duplicate,cross_encoder",
        "",
    ]
    nf = M.flags(np.array([0.1]), np.array([0.1]), np.array([0.1]), np.array([0.2]))
    assert not nf["cross_encoder"][0]  # no cross-encoder configured: the rule never fires


def test_eci_sem_k1_by_hand():
    emb = np.array([[1.0, 0.0], [0.6, 0.8]])  # p* = row 0, negative = row 1
    s_qp, s_qn, lex = 0.9, 0.7, 0.25
    w = M.sem_weights(np.array([s_qn]), np.array([s_qp]), np.array([s_qp - s_qn]), np.array([lex]), [1])
    a = (s_qn - s_qp) / 0.05
    want_w = math.exp(a) / (1 + math.exp(a)) * (1 / (1 + math.exp(-(s_qp - s_qn) / 0.05))) * (1 - lex)
    assert w[0] == pytest.approx(want_w, rel=1e-12)
    d2 = (0.6 - 1.0) ** 2 + 0.8**2
    got = M.eci_sem(emb, np.array([1]), np.array([0]), w, [1], lam=0.1)[0]
    assert got == pytest.approx(math.log(1 + want_w * d2 / 0.1), rel=1e-12)


# ----------------------------------------------------------------------------- lexical


def test_lex_overlap_by_hand():
    corpus = ["the cat sat", "the dog", "a cat"]
    lex = PassageLexicon(corpus + ["The cat!", ""], idf_corpus=corpus)
    i43 = math.log(4 / 3) + 1
    want = 2 * i43 / (2 * i43 + math.log(2) + 1)
    got = lex.overlap(np.array([0, 4, 0]), np.array([3, 0, 0]))
    assert got[0] == pytest.approx(want, rel=1e-12)
    assert got[1] == 0.0  # empty negative
    assert got[2] == pytest.approx(1.0)
    assert tokenize("Hello, World_2 héllo") == ["hello", "world_2", "héllo"]
    # IDF over the texts themselves by default; unseen tokens of a given corpus get df = 0
    assert lex_overlap(["x y"], ["x"], idf_corpus=["z"]).tolist() == [0.5]


# ----------------------------------------------------------------------------- fast == reference


@st.composite
def problems(draw):
    n_q = draw(st.integers(1, 5))
    return {
        "seed": draw(st.integers(0, 2**32 - 1)),
        "Ks": draw(st.lists(st.integers(0, 5), min_size=n_q, max_size=n_q)),
        "npos": draw(st.lists(st.integers(1, 3), min_size=n_q, max_size=n_q)),
        "dim": draw(st.integers(2, 6)),
        "tie": draw(st.booleans()),
        "neg_is_pos": draw(st.booleans()),
        "rule": draw(st.sampled_from(["min", "max", "mean"])),
        "with_ce": draw(st.booleans()),
        "skip": draw(st.lists(st.booleans(), min_size=n_q, max_size=n_q)),
    }


def build(pb):
    """Random ragged source: query rows, passage rows, texts, positives; some queries covered
    by nothing (skip), ties (copied vectors), negatives that are the positive itself."""
    rng = np.random.default_rng(pb["seed"])
    dim = pb["dim"]
    qv = unit(rng, len(pb["Ks"]), dim)
    pv, texts, pairs, positives, queries = [], [], [], {}, []

    def new_passage(vec=None, text=None):
        pv.append(unit(rng, 1, dim)[0] if vec is None else vec)
        texts.append(" ".join(rng.choice(WORDS, size=rng.integers(0, 5))) if text is None else text)
        return len(pv) - 1

    for q, (K, npos) in enumerate(zip(pb["Ks"], pb["npos"])):
        positives[q] = [new_passage() for _ in range(npos)]
        if pb["skip"][q]:
            continue
        queries.append(q)
        negs = []
        for k in range(K):
            if k == 0 and pb["neg_is_pos"]:
                negs.append(positives[q][0])
            elif k == 1 and pb["tie"]:
                negs.append(new_passage(vec=pv[negs[0]].copy(), text=texts[negs[0]] + " tie"))
            else:
                negs.append(new_passage())
        pairs.extend((q, n) for n in negs)
    return qv, np.array(pv), texts, pairs, positives, queries, rng


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problems())
def test_fast_equals_reference(pb):
    qv, pv, texts, pairs, positives, queries, rng = build(pb)
    if not queries:
        return
    ce_tab = rng.normal(size=(qv.shape[0], pv.shape[0]))
    cfg = ECIConfig(positive=pb["rule"], n_bootstrap=50)
    pos_q = np.array([q for q in positives for _ in positives[q]])
    pos_p = np.array([p for q in positives for p in positives[q]])
    sc = score_arrays(
        qv,
        pv,
        np.array([q for q, _ in pairs], dtype=np.int64),
        np.array([n for _, n in pairs], dtype=np.int64),
        pos_q,
        pos_p,
        cfg,
        queries=np.array(queries),
        lexicon=PassageLexicon(texts),
        text_key=pd.factorize(pd.Series(texts, dtype=object))[0],
        cross=(lambda a, b: ce_tab[a, b]) if pb["with_ce"] else None,
        chunk=3,
    )
    ref_pairs, ref_q = R.score(
        qv,
        pv,
        pairs,
        positives,
        queries,
        positive_rule=pb["rule"],
        passage_texts=texts,
        ce=(lambda a, b: float(ce_tab[a, b])) if pb["with_ce"] else None,
    )
    fast_pairs = {
        "s_qn": sc.s_qn,
        "s_qp": sc.s_qp,
        "margin": sc.margin,
        "s_pn": sc.s_pn,
        "lex_overlap": sc.lex_overlap,
        "ce_margin": sc.ce_margin,
    }
    for key, arr in fast_pairs.items():
        want = np.array([r[key] for r in ref_pairs], dtype=np.float64)
        np.testing.assert_allclose(arr, want, atol=1e-6, err_msg=key, equal_nan=True)
    # A threshold rule can only be compared where the reference value is not within rounding of
    # the threshold. Ties (identical vectors in different rows, summed in different orders) are
    # margin 0 on both sides (|s_qp - s_qn| < TIE_TOL), so only the tolerance's edge is skipped.
    eps = 1e-9
    edge = {
        "unsafe": [abs(abs(r["s_qp"] - r["s_qn"]) - R.TIE_TOL) < eps for r in ref_pairs],
        "near_duplicate": [abs(r["s_pn"] - 0.95) < eps for r in ref_pairs],
        "cross_encoder": [pb["with_ce"] and abs(r["ce_margin"]) < eps for r in ref_pairs],
        "percpos": [abs(r["s_qn"] - 0.95 * r["s_qp"]) < eps for r in ref_pairs],
    }
    edge["flagged"] = edge["flag_reasons"] = (
        [any(e) for e in zip(*(edge[k] for k in FLAG_RULES))] if ref_pairs else []
    )
    for key in ("unsafe", "near_duplicate", "cross_encoder", "percpos", "flagged", "flag_reasons"):
        got = [g for g, e in zip(sc.flags[key], edge[key]) if not e]
        assert got == [r[key] for r, e in zip(ref_pairs, edge[key]) if not e], key
    q_edge = np.array([any(e for p, e in zip(ref_pairs, edge["unsafe"]) if p["q"] == r["q"]) for r in ref_q])
    for key in ("K", "C", "S", "delta", "DE", "eci", "eci_arith", "infonce", "unsafe"):
        want = np.array([r[key] for r in ref_q], dtype=np.float64)
        got = np.asarray(sc.metrics[key], dtype=np.float64)
        if key == "unsafe":
            got, want = got[~q_edge], want[~q_edge]
        np.testing.assert_allclose(got, want, atol=1e-6, err_msg=key)
    np.testing.assert_allclose(sc.eci_sem, [r["eci_sem"] for r in ref_q], atol=1e-6)
    assert sc.pstar.tolist() == [r["pstar"] for r in ref_q]
    assert np.all(sc.eci_sem >= -1e-12)
    if pb["neg_is_pos"]:  # the positive's own row as a negative: a copy, margin <= 0 on every rule
        with_negs = [q for q in queries if pb["Ks"][q] > 0]
        first = np.searchsorted(sc.q_idx, with_negs)
        assert sc.flags["near_duplicate"][first].all() and sc.flags["unsafe"][first].all()
        assert (sc.margin[first] <= 0).all()
        one_pos = np.array([pb["npos"][q] == 1 for q in with_negs], dtype=bool)  # then s_qp = s(q, p0)
        assert (sc.margin[first][one_pos] == 0).all()
    for agg in ("query", "set"):
        row = source_summary("s", sc, cfg.with_(aggregate=agg))
        want = R.source_point(ref_q, ref_pairs, agg)
        for key, val in want.items():
            if key.startswith("unsafe") and any(edge["unsafe"]):
                continue  # a tie within rounding of margin 0 (see above)
            if isinstance(val, float) and math.isnan(val):
                assert math.isnan(row[key]), key
            else:
                assert row[key] == pytest.approx(val, abs=1e-6), (agg, key)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 40), st.integers(1, 120))
def test_bootstrap_matches_reference(seed, n, B):
    rng = np.random.default_rng(seed)
    v = rng.normal(size=n)
    counts = resample_counts(n, B, seed)
    assert counts.shape == (B, n) and np.all(counts.sum(axis=1) == n)
    means = resampled_means(v, B, seed)[:, 0]
    ref = [R.resampled_mean(v.tolist(), c.tolist()) for c in counts]
    np.testing.assert_allclose(means, ref, atol=1e-9)
    lo, hi = interval(means[:, None], 0.95)
    assert lo[0] == pytest.approx(R.quantile(ref, 0.025), abs=1e-9)
    assert hi[0] == pytest.approx(R.quantile(ref, 0.975), abs=1e-9)


def test_bootstrap_interval_contains_mean_and_is_reproducible():
    v = np.random.default_rng(3).gamma(2.0, size=500)
    m, lo, hi = bootstrap_mean(v, 1000, seed=7)
    assert lo < m < hi and m == pytest.approx(v.mean())
    assert bootstrap_mean(v, 1000, seed=7) == (m, lo, hi)
    assert bootstrap_mean(v, 1000, seed=8) != (m, lo, hi)
    # independent of the number of threads
    np.testing.assert_array_equal(
        resampled_means(v, 300, 1, n_threads=1), resampled_means(v, 300, 1, n_threads=2)
    )
    # roughly the normal-theory interval
    se = v.std() / math.sqrt(v.shape[0])
    assert hi - lo == pytest.approx(2 * 1.96 * se, rel=0.15)
    nan = bootstrap_mean(np.zeros(0), 10)
    assert all(math.isnan(x) for x in nan)


def test_beats_matrix():
    rng = np.random.default_rng(0)
    keys = np.arange(200)
    a = rng.normal(1.0, 1.0, size=200)
    per = {"A": (keys, a), "B": (keys, a - 0.5), "A2": (keys, a.copy()), "far": (keys + 1000, a)}
    bt = beats_matrix(per, n_resamples=400, seed=0)
    assert bt.loc["A", "A"] == 0.0 and bt.loc["B", "B"] == 0.0
    assert bt.loc["A", "B"] == 1.0 and bt.loc["B", "A"] == 0.0  # A beats B on every query
    assert bt.loc["A", "A2"] == 0.0 and bt.loc["A2", "A"] == 0.0  # identical: ties count for neither
    assert math.isnan(bt.loc["A", "far"])  # no shared query
    # a close race on partly shared queries: same resample for both, P(a>b) + P(b>a) = 1
    b = a + rng.normal(0, 1.0, size=200) * 0.3
    per2 = {"x": (keys, a), "y": (keys[50:], b[50:])}
    bt2 = beats_matrix(per2, n_resamples=500, seed=1)
    assert 0 < bt2.loc["x", "y"] < 1 and bt2.loc["x", "y"] + bt2.loc["y", "x"] == pytest.approx(1.0)
    # equals the reference on the shared queries with the same resamples
    counts = resample_counts(150, 500, 1)
    ra = [R.resampled_mean(a[50:].tolist(), c.tolist()) for c in counts]
    rb = [R.resampled_mean(b[50:].tolist(), c.tolist()) for c in counts]
    assert bt2.loc["x", "y"] == pytest.approx(sum(x > y for x, y in zip(ra, rb)) / 500)


def test_token_columns_follow_first_occurrence_so_lex_overlap_is_the_same_in_every_run():
    from eci_core.metrics.lexical import token_matrix

    m, vocab = token_matrix(["Beta alpha beta", "gamma ALPHA", ""])
    assert vocab == {"beta": 0, "alpha": 1, "gamma": 2}  # not set order (per-process str hashing)
    assert m.toarray().tolist() == [[1, 1, 0], [0, 1, 1], [0, 0, 0]]
    assert m.dtype == np.int8 and m.indices.dtype == np.int32
