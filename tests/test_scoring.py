"""score_collection on small collections with the model-free HashingEncoder."""

from __future__ import annotations

import math

import numpy as np
import pytest

import eci_core  # noqa: F401
from eci_core.config import ECIConfig
from eci_core.io.collection import Collection
from eci_core.io.records import PassageRef, QueryRecord
from eci_core.models.encoding import embed
from eci_core.models.hashing import HashingEncoder
from eci_core.scoring import score_collection
from eci_core.scoring.arrays import score_arrays
from eci_core.scoring.tables import PAIR_COLUMNS, QUERY_COLUMNS, SOURCE_COLUMNS

import reference as R  # tests/ is on sys.path under pytest

QUERIES = {
    "q1": ("how do I sort a list in python", "use sorted() or list.sort() to sort a python list"),
    "q2": ("what is a python dictionary", "a dictionary maps keys to values in python"),
    "q3": ("how to read a file line by line", "iterate over the open file object to read lines"),
    "q4": ("convert a string to an integer", "call int() on the string to get an integer"),
}
NEG_POOL = [
    "python lists can be sorted in place",
    "sorting algorithms compare elements",
    "dictionaries are hash tables with keys",
    "a set holds unique values",
    "files are opened with open()",
    "read the whole file at once with read()",
    "strings are immutable sequences",
    "int and float are numeric types",
    "the weather is nice today",
    "bananas are yellow",
]


def records(neg_for, skip=()):
    out = []
    for i, (qid, (q, p)) in enumerate(QUERIES.items()):
        if qid in skip:
            continue
        negs = [PassageRef(None, t) for t in neg_for(i, qid, p)]
        out.append(QueryRecord(qid, q, [PassageRef(f"pos-{qid}", p)], negs))
    return out


def collection():
    c = Collection()
    c.add_source("hard", records(lambda i, qid, p: NEG_POOL[2 * i : 2 * i + 3]))
    c.add_source("easy", records(lambda i, qid, p: NEG_POOL[8:10]))
    c.add_source("copies", records(lambda i, qid, p: [p, p.upper() + "!"]))
    return c


@pytest.fixture(scope="module")
def result():
    return score_collection(collection(), HashingEncoder(), ECIConfig(n_bootstrap=200))


def test_tables_have_the_documented_columns(result):
    assert list(result.pairs.columns) == PAIR_COLUMNS
    assert list(result.queries.columns) == QUERY_COLUMNS
    assert list(result.sources.columns) == SOURCE_COLUMNS
    assert result.encoder == "hashing (dim 256)"
    assert set(result.pairs["query_id"]) == set(QUERIES)
    assert result.pairs["passage_id"].map(type).eq(str).all()
    assert list(result.beats.index) == list(result.sources["name"]) == list(result.beats.columns)
    assert (result.queries["positive_id"] == "pos-" + result.queries["query_id"]).all()
    assert result.sources["eci"].is_monotonic_decreasing
    hard = result.sources.set_index("name").loc["hard"]
    assert hard["n_queries"] == 4 and hard["n_negatives"] == 12 and hard["mean_k"] == 3
    assert hard["eci_low"] <= hard["eci"] <= hard["eci_high"]
    for c in ("signal", "safety", "capacity", "de", "infonce_bound"):
        assert hard[f"{c}_low"] <= hard[c] + 1e-12 and hard[c] <= hard[f"{c}_high"] + 1e-12


def test_copies_of_the_positive_are_flagged_near_duplicate(result):
    copies = result.pairs[result.pairs["source"] == "copies"]
    assert len(copies) == 8
    assert copies["near_duplicate"].all() and copies["flagged"].all()
    # rank 1: another passage id with the positive's exact text; rank 2: an upper-cased copy,
    # caught by s_pn = 1 >= 0.95 (the hashing encoder lower-cases)
    assert np.allclose(copies["s_pn"], 1.0, atol=1e-6)
    assert (copies.loc[copies["rank"] == 1, "margin"] == 0.0).all()  # same text, same row: exactly 0
    assert copies["flag_reasons"].str.contains("near_duplicate").all()
    q = result.queries[result.queries["source"] == "copies"]
    assert (q["eci"] == 0).all() and q["unsafe"].all()


def test_matches_reference_on_the_same_embeddings(result):
    c = collection()
    enc = HashingEncoder()
    qv = embed(enc, c.query_texts, "query").astype(np.float64)
    pv = embed(enc, c.passage_texts, "passage").astype(np.float64)
    for name in ("hard", "easy", "copies"):
        src = c.sources[name]
        pairs = list(zip(src.q_idx.tolist(), src.p_idx.tolist()))
        ref_pairs, ref_q = R.score(qv, pv, pairs, c.positives, passage_texts=c.passage_texts)
        got = result.pairs[result.pairs["source"] == name]
        for key in ("s_qn", "s_qp", "margin", "s_pn", "lex_overlap"):
            np.testing.assert_allclose(
                got[key].to_numpy(), [r[key] for r in ref_pairs], atol=1e-5, err_msg=key
            )
        for key in ("near_duplicate", "unsafe", "flag_reasons"):
            assert got[key].tolist() == [r[key] for r in ref_pairs]
        gq = result.queries[result.queries["source"] == name]
        for key in ("eci", "S", "delta", "infonce", "eci_sem"):
            np.testing.assert_allclose(gq[key].to_numpy(), [r[key] for r in ref_q], atol=1e-4, err_msg=key)
        row = result.sources.set_index("name").loc[name]
        point = R.source_point(ref_q, ref_pairs)
        assert row["eci"] == pytest.approx(point["eci"], abs=1e-5)
        assert row["unsafe_negative_rate"] == pytest.approx(point["unsafe_negative_rate"])


def test_hard_source_beats_easy_source(result):
    hard = result.sources.set_index("name").loc["hard", "eci"]
    easy = result.sources.set_index("name").loc["easy", "eci"]
    assert hard > easy
    assert result.beats.loc["hard", "easy"] > 0.5
    assert result.beats.loc["hard", "hard"] == 0.0
    assert result.beats.loc["hard", "easy"] + result.beats.loc["easy", "hard"] <= 1.0


def test_duplicate_text_is_removed_and_k0_scores_zero():
    c = Collection()
    recs = records(lambda i, qid, p: [NEG_POOL[i], NEG_POOL[i]] if qid != "q4" else [])
    # the same text under two ids inside one query: an exact duplicate, dropped before scoring
    recs[0] = recs[0]._replace(
        negatives=[PassageRef("a", NEG_POOL[5]), PassageRef("b", NEG_POOL[5]), PassageRef("c", NEG_POOL[6])]
    )
    c.add_source("s", recs)
    res = score_collection(c, HashingEncoder(), ECIConfig(n_bootstrap=50))
    q = res.queries.set_index("query_id")
    assert q.loc["q1", "K"] == 2 and q.loc["q2", "K"] == 1 and q.loc["q4", "K"] == 0
    assert q.loc["q4", ["C", "S", "delta", "DE", "eci", "eci_arith", "infonce", "eci_sem"]].eq(0).all()
    assert q.loc["q4", "unsafe"]  # Δ = 0: counted in unsafe_query_rate, as the spec defines it
    assert res.notes["duplicate negative text within a query (dropped)"] == {"s": 1}
    row = res.sources.iloc[0]
    assert row["n_queries"] == 4 and row["n_negatives"] == 4 and row["mean_k"] == 1.0


class FakeCrossEncoder:
    """Deterministic cross-encoder: logit = 10 × word overlap share (query words in passage)."""

    name = "fake-ce"
    fingerprint = "fake-ce-v1"

    def __init__(self):
        self.calls = 0

    def predict(self, pairs):
        self.calls += len(pairs)
        out = []
        for q, p in pairs:
            qw, pw = set(q.split()), set(p.split())
            out.append(10.0 * len(qw & pw) / max(1, len(qw)))
        return np.array(out, dtype=np.float32)


def test_cross_encoder_margin_and_flag():
    ce = FakeCrossEncoder()
    res = score_collection(
        collection(),
        HashingEncoder(),
        ECIConfig(n_bootstrap=20),
        cross_encoder=ce,
        sources=["hard", "copies"],
    )
    c = collection()
    for _, row in res.pairs.iterrows():
        qi = c.query_index(row["query_id"])
        q = c.query_texts[qi]
        p = c.passage_texts[c.positives[qi][0]]
        n = c.passage_texts[c.passage_index(row["passage_id"])]
        want = ce.predict([(q, p)])[0] - ce.predict([(q, n)])[0]
        assert row["ce_margin"] == pytest.approx(want, abs=1e-5)
        assert row["cross_encoder"] == (want <= 0)
    copies = res.pairs[(res.pairs["source"] == "copies") & (res.pairs["rank"] == 1)]
    assert len(copies) == 4
    assert copies["flag_reasons"].str.contains("cross_encoder").all()  # exact copy: ce_margin 0
    assert set(res.sources["name"]) == {"hard", "copies"}


def test_options_set_aggregate_float16_idf_corpus_and_progress():
    c = collection()
    calls = []
    base = score_collection(c, HashingEncoder(), ECIConfig(n_bootstrap=30), sources=["hard"])
    res = score_collection(
        c,
        HashingEncoder(),
        ECIConfig(n_bootstrap=30, aggregate="set"),
        sources=["hard"],
        progress=lambda s, d, t: calls.append((s, d, t)),
        embedding_dtype="float16",
        idf_corpus=["python python python", "other text"],
    )
    row = res.sources.iloc[0]
    q = res.queries
    C = math.log(q["K"].mean() + 1)
    S, D = q["S"].mean(), q["delta"].mean()
    assert row["capacity"] == pytest.approx(C)
    assert row["eci"] == pytest.approx(C * 2 * S * D / (S + D))
    assert row["eci_low"] <= row["eci"] <= row["eci_high"]
    import rounding  # float16 storage: |Δs| <= 2^-10 + 2·gamma_d (derived in tests/rounding.py)

    np.testing.assert_allclose(
        res.pairs["s_qn"],
        base.pairs["s_qn"],
        rtol=0,
        atol=rounding.float16_similarity_bound(HashingEncoder().dim),
    )
    assert not np.allclose(res.pairs["lex_overlap"], base.pairs["lex_overlap"])  # other IDF
    assert ("scoring sources", 0, 1) in calls and calls[-1] == ("scoring sources", 1, 1)
    with pytest.raises(ValueError, match="sources=\\['nope'\\]"):
        score_collection(c, HashingEncoder(), sources=["nope"])


def test_score_arrays_validates_inputs():
    e = np.eye(3, dtype=np.float32)
    with pytest.raises(ValueError, match="sorted"):
        score_arrays(e, e, [1, 0], [0, 1], [0, 1], [2, 2])
    with pytest.raises(ValueError, match="no labelled positive"):
        score_arrays(e, e, [0, 1], [0, 1], [0], [2])
    with pytest.raises(ValueError, match="same dim"):
        score_arrays(e, np.eye(4, dtype=np.float32), [0], [0], [0], [1])


def test_second_scoring_run_encodes_nothing(tmp_path):
    """Each unique text is encoded once per model across sources, and a second run (a new
    process would build a new EmbeddingCache on the same folder) encodes nothing."""
    from eci_core.models.base import EncoderCallCounter
    from eci_core.models.cache import EmbeddingCache

    c = collection()
    enc = EncoderCallCounter(HashingEncoder())
    first = score_collection(c, enc, ECIConfig(n_bootstrap=20), cache=EmbeddingCache(tmp_path))
    # 4 queries; passages: 4 positives + all 10 NEG_POOL texts (hard: windows 0-2, 2-4, 4-6, 6-8;
    # easy: 8-9) + 4 upper-cased copies, each once although "copies" repeats the positives' texts
    used = {c.passage_texts[p] for s in c.sources.values() for p in s.p_idx} | {
        c.passage_texts[p] for ps in c.positives.values() for p in ps
    }
    assert enc.n_queries == 4 and enc.n_passages == len(used) == 4 + 10 + 4
    enc.reset()
    second = score_collection(c, enc, ECIConfig(n_bootstrap=20), cache=EmbeddingCache(tmp_path))
    assert enc.n_encoded == 0
    np.testing.assert_allclose(second.pairs["s_qn"], first.pairs["s_qn"], rtol=0, atol=1e-7)


# ----------------------------------------------------------------------------- ties are ties


def _tie_problem(dtype, npos):
    """One query, ``npos`` positives, negatives: the least similar positive's exact row, two
    near-copies of it equal up to float rounding (noise 1e-7 then renormalised), a copy of the
    most similar positive, and an unrelated passage."""
    rng = np.random.default_rng(7)
    dim = 64
    q = rng.normal(size=(1, dim))
    pos = rng.normal(size=(npos, dim)) + 1.5 * q  # all related to the query
    pos /= np.linalg.norm(pos, axis=1, keepdims=True)
    q /= np.linalg.norm(q)
    s = pos @ q[0]
    lo, hi = int(np.argmin(s)), int(np.argmax(s))
    near = pos[[lo, lo]] + rng.normal(scale=1e-7, size=(2, dim))
    near /= np.linalg.norm(near, axis=1, keepdims=True)
    other = rng.normal(size=(1, dim))
    other /= np.linalg.norm(other)
    P = np.concatenate([pos, near, pos[[hi]], other]).astype(dtype)
    n_idx = np.array([lo, npos, npos + 1, npos + 2, npos + 3])
    return q.astype(dtype), P, n_idx, lo, hi


@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.float64])
@pytest.mark.parametrize("npos", [1, 3])
def test_copies_of_a_positive_tie_on_every_path(dtype, npos):
    q, P, n_idx, lo, hi = _tie_problem(dtype, npos)
    sc = score_arrays(
        q,
        P,
        np.zeros(5, dtype=np.int64),
        n_idx,
        np.zeros(npos, dtype=np.int64),
        np.arange(npos),
        ECIConfig(n_bootstrap=10),
        with_sem=False,
    )
    # the positive's own row and its two rounding-level copies: margin exactly 0, flagged both ways
    assert sc.margin[:3].tolist() == [0.0, 0.0, 0.0]
    assert sc.flags["unsafe"][:3].all() and sc.flags["near_duplicate"][:3].all()
    # a copy of the most similar positive ranks at or above p* (the least similar under "min")
    assert sc.margin[3] <= 0 and sc.flags["unsafe"][3] and sc.flags["near_duplicate"][3]
    assert sc.margin[3] == (0.0 if npos == 1 else sc.margin[3]) and (npos == 1 or sc.margin[3] < 0)
    assert sc.margin[4] > 0 and not sc.flags["near_duplicate"][4]
    assert sc.metrics["delta"][0] == 0.0 and sc.metrics["unsafe"][0]


@pytest.mark.parametrize("rule", ["max", "mean"])
def test_a_copy_of_a_positive_is_never_safer_than_a_tie(rule):
    q, P, n_idx, lo, hi = _tie_problem(np.float32, 3)
    # negatives: exact row copies of the least similar positive (same text key)
    sc = score_arrays(
        q,
        P,
        np.zeros(1, dtype=np.int64),
        np.array([lo]),
        np.zeros(3, dtype=np.int64),
        np.arange(3),
        ECIConfig(positive=rule, n_bootstrap=10),
        with_sem=False,
    )
    assert sc.margin[0] == 0.0 and sc.flags["unsafe"][0] and sc.flags["near_duplicate"][0]


@pytest.mark.parametrize("embedding_dtype", ["float32", "float16"])
def test_whitespace_copies_of_the_positive_score_as_the_positive(embedding_dtype):
    c = Collection()
    for k in range(3):  # one source per copy (inside one query the copies would be duplicates)
        recs = []
        for qid, (qt, pt) in QUERIES.items():
            variant = [pt, "  " + pt.replace(" ", "\n  ") + "\t", pt.replace(" ", "   ")][k]
            recs.append(
                QueryRecord(
                    qid,
                    qt,
                    [PassageRef(f"pos-{qid}", pt), PassageRef(f"pos2-{qid}", NEG_POOL[0] + " " + qt)],
                    [PassageRef(f"{qid}-v{k}", variant), PassageRef(None, NEG_POOL[-1])],
                )
            )
        c.add_source(f"copy{k}", recs)
    res = score_collection(c, HashingEncoder(), ECIConfig(n_bootstrap=20), embedding_dtype=embedding_dtype)
    p = res.pairs
    copies = p[p["passage_id"].str.contains("-v")]
    assert len(copies) == 12
    assert (copies["margin"] <= 0).all() and copies["unsafe"].all() and copies["near_duplicate"].all()
    # with two positives the "min" rule's p* is the less similar one; copies of it tie exactly
    pstar = copies.merge(res.queries[["source", "query_id", "positive_id"]], on=["source", "query_id"])
    of_pstar = pstar[pstar["positive_id"].str.startswith("pos-")]
    assert len(of_pstar) > 0 and (of_pstar["margin"] == 0.0).all()
    assert (res.queries["delta"] == 0).all()
    assert (p.loc[~p.index.isin(copies.index), "margin"] > 0).all()


# ----------------------------------------------------------------------------- ECI_sem cap


def _sem_weights_ref(s_qp, s_qn, tau=0.05, tau_c=0.05):
    ex = [math.exp((s - s_qp) / tau) for s in s_qn]
    den = 1 + sum(ex)
    return [e / den / (1 + math.exp(-(s_qp - s) / tau_c)) for e, s in zip(ex, s_qn)]


def test_eci_sem_cap_uses_the_largest_weights_and_bounds_from_below():
    rng = np.random.default_rng(3)
    d, K, cap = 16, 40, 8
    qe = rng.normal(size=(2, d))
    pe = rng.normal(size=(2 + 2 * K, d))
    pe[2:] += 2.0 * qe[np.repeat([0, 1], K)]  # negatives near their query: weights spread out
    qe /= np.linalg.norm(qe, axis=1, keepdims=True)
    pe /= np.linalg.norm(pe, axis=1, keepdims=True)
    q_idx = np.repeat([0, 1], [K, 5])
    n_idx = np.concatenate([np.arange(2, 2 + K), np.arange(2 + K, 2 + K + 5)])
    args = (qe, pe, q_idx, n_idx, [0, 1], [0, 1])
    full = score_arrays(*args, ECIConfig(eci_sem_max_k=None), n_threads=1)
    capped = score_arrays(*args, ECIConfig(eci_sem_max_k=cap), n_threads=1)
    assert capped.n_sem_capped == 1 and full.n_sem_capped == 0
    assert capped.eci_sem[1] == full.eci_sem[1]  # K = 5 <= cap: unchanged
    np.testing.assert_array_equal(capped.s_qn, full.s_qn)  # only ECI_sem changes
    # by hand: the cap negatives of largest w_k (weights over all K), ln det of their submatrix
    s_qp = float(qe[0] @ pe[0])
    s_qn = [float(qe[0] @ pe[j]) for j in range(2, 2 + K)]
    w = _sem_weights_ref(s_qp, s_qn)
    top = sorted(sorted(range(K), key=lambda k: -w[k])[:cap])
    dv = [pe[2 + k] - pe[0] for k in top]
    mat = [
        [
            (1.0 if a == b else 0.0) + math.sqrt(w[top[a]] * w[top[b]]) * float(dv[a] @ dv[b]) / 0.1
            for b in range(cap)
        ]
        for a in range(cap)
    ]
    assert capped.eci_sem[0] == pytest.approx(R.logdet(mat), abs=1e-6)
    assert full.eci_sem[0] == pytest.approx(
        R.eci_sem([pe[j] for j in range(2, 2 + K)], pe[0], s_qp, s_qn, [0.0] * K), abs=1e-6
    )
    assert 0 < capped.eci_sem[0] <= full.eci_sem[0] + 1e-12  # a principal minor: a lower bound
    with pytest.raises(ValueError, match="eci_sem_max_k"):
        ECIConfig(eci_sem_max_k=0)


def test_a_20000_negative_row_scores_in_bounded_memory():
    """One query with 20,000 negatives: ECI_sem's K×K matrices would take 3.2 GB each in float64;
    with the default cap the whole run stays under 600 MB of peak RSS (a child process's VmHWM)."""
    import subprocess
    import sys
    import textwrap
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    script = textwrap.dedent(
        """
        import numpy as np
        from eci_core.config import ECIConfig
        from eci_core.io.collection import Collection
        from eci_core.io.records import PassageRef, QueryRecord
        from eci_core.models.hashing import HashingEncoder
        from eci_core.scoring import score_collection
        negs = [
            PassageRef(f"n{i}", f"negative passage number {i} about topic {i % 97}") for i in range(20000)
        ]
        pos = [PassageRef("p", "the passage about topic 5")]
        rec = [QueryRecord("q", "which passage is about topic 5", pos, negs),
               QueryRecord("q2", "another query", [PassageRef("p2", "another positive")], negs[:3])]
        c = Collection()
        c.add_source("big", rec)
        res = score_collection(c, HashingEncoder(), ECIConfig(n_bootstrap=50))
        q = res.queries.set_index("query_id")
        assert int(q.loc["q", "K"]) == 20000 and np.isfinite(q.loc["q", "eci_sem"]), q
        assert list(res.notes.values()) == [{"big": 1}], res.notes
        hwm = next(l for l in open("/proc/self/status") if l.startswith("VmHWM:"))
        print(int(hwm.split()[1]) * 1024)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=root, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    rss = int(proc.stdout.split()[-1])
    assert rss < 600 * 2**20, f"peak RSS {rss / 2**20:.0f} MB"
    print(f"peak RSS {rss / 2**20:.0f} MB")


def test_fused_numba_pair_pass_equals_the_numpy_path(monkeypatch):
    """The compiled gather-and-dot kernel (eci_core/metrics/fused.py) gives the numpy path's pair values
    and metrics within the bound that float32 summation order allows, and the same flags: several
    positives per query, negatives that are a positive's own row, and text keys (exact duplicates).

    Tolerances follow from the arithmetic, not from one CPU's luck. Both paths add the d float32
    products of a dot product in different orders (OpenBLAS vs numba's SIMD reduction, whose
    width depends on the CPU: AVX2, AVX-512, NEON), and each differs from the exact value by at
    most gamma_d * sum|x_i y_i| <= gamma_d * |x| |y| (Higham, Accuracy and Stability, 3.1), with
    gamma_d = d u / (1 - d u), u = 2^-24. So two paths differ by at most eps = 2 gamma_d |x| |y|
    on every similarity (s_qn, s_pn, s_qp; 5.7e-6 for d = 48 and unit vectors). From there:
    margin = s_qp - s_qn moves by <= 2 eps; S (a clipped mean of s_qn) by <= eps; Delta (a clipped
    min of margins) by <= 2 eps; DE = 2 S Delta / (S + Delta) has partial derivatives <= 2, so
    <= 2 eps + 2 (2 eps) = 6 eps; ECI = C DE and ECI_arith = C (S + Delta) / 2 with
    C = ln(K + 1) <= ln(K_max + 1); I_NCE = ln(K + 1) - (logsumexp(z) - z_0), z = s / tau:
    logsumexp is 1-Lipschitz in the max-norm, so <= (eps + eps) / tau (the 1/tau amplification
    that made a fixed 1e-6 fail on AVX-512: 1.12e-6 observed). The float64 work after the dot
    products adds ~1e-15, far below these."""
    from eci_core.metrics import fused

    if not fused.available():
        pytest.skip("the fused kernel is off: numba is not installed or ECI_NO_NUMBA=1")
    rng = np.random.default_rng(7)
    nq, npas, d = 300, 2000, 48
    qe = rng.normal(size=(nq, d)).astype(np.float32)
    pe = rng.normal(size=(npas, d)).astype(np.float32)
    qe /= np.linalg.norm(qe, axis=1, keepdims=True)
    pe /= np.linalg.norm(pe, axis=1, keepdims=True)
    K = rng.integers(0, 15, size=nq)
    q_idx = np.repeat(np.arange(nq), K)
    n_idx = rng.integers(0, npas, size=q_idx.shape[0])
    pos_q = np.concatenate([np.arange(nq), np.arange(0, nq, 3)])
    pos_p = rng.integers(0, npas, size=pos_q.shape[0])
    first_neg = np.searchsorted(q_idx, np.arange(0, nq, 5))
    ok = first_neg < q_idx.shape[0]
    n_idx[first_neg[ok]] = pos_p[q_idx[first_neg[ok]]]  # some negatives are their positive's row
    text_key = rng.integers(0, 1500, size=npas)
    cfg = ECIConfig(n_bootstrap=10)
    args = (qe, pe, q_idx, n_idx, pos_q, pos_p, cfg)

    u = 2.0**-24
    gamma_d = d * u / (1 - d * u)
    norm = float(max(np.linalg.norm(qe, axis=1).max(), np.linalg.norm(pe, axis=1).max()))
    eps = 2 * gamma_d * norm * norm  # any two summation orders of one float32 dot product
    c_max = np.log(K.max() + 1)
    pair_tol = {"s_qn": eps, "s_pn": eps, "s_qp": eps, "margin": 2 * eps}
    metric_tol = {
        "K": 0.0,
        "C": 0.0,
        "unsafe": 0.0,
        "S": eps,
        "delta": 2 * eps,
        "DE": 6 * eps,
        "eci": c_max * 6 * eps,
        "eci_arith": c_max * 3 * eps / 2,
        "infonce": 2 * eps / cfg.temperature,
    }
    for tk in (None, text_key):
        monkeypatch.setenv("ECI_NO_NUMBA", "1")
        ref = score_arrays(*args, text_key=tk, with_sem=False, chunk=64)
        monkeypatch.delenv("ECI_NO_NUMBA")
        monkeypatch.setattr(fused, "MIN_PAIRS", 1)
        got = score_arrays(*args, text_key=tk, with_sem=False, chunk=64)
        assert "fused" in got.timings and "fused" not in ref.timings
        for k, tol in pair_tol.items():
            np.testing.assert_allclose(getattr(got, k), getattr(ref, k), rtol=0, atol=tol, err_msg=k)
        for k in ("near_duplicate", "unsafe", "flag_reasons"):
            assert np.array_equal(got.flags[k], ref.flags[k]), k
        assert set(ref.metrics) == set(metric_tol), "a new metric needs its derived tolerance here"
        for k, v in ref.metrics.items():
            np.testing.assert_allclose(got.metrics[k], v, rtol=0, atol=metric_tol[k] + 1e-12, err_msg=k)
        assert ok.sum() > 10 and got.flags["near_duplicate"].sum() >= ok.sum()


def test_text_keys_are_factorize_of_the_whitespace_normalised_texts_even_when_hashes_collide():
    import pandas as pd

    from eci_core.scoring.texts import text_keys

    texts = ["a b", "a  b", " a\tb\n", "b a", "", "   ", "a b c", "x\u00a0y", "x y", "b a", "a b"]
    expected = pd.factorize(np.array([" ".join(t.split()) for t in texts], dtype=object))[0]
    assert expected.tolist() == [0, 0, 0, 1, 2, 2, 3, 4, 4, 1, 0]  # by hand: NBSP is whitespace too
    assert text_keys(texts).tolist() == expected.tolist()
    assert text_keys(texts, chunk=2).tolist() == expected.tolist()
    # forced collisions: every text one hash, or two hash classes mixing different texts; the
    # colliding texts are compared and split, keys still numbered by first occurrence
    for forced in (lambda s: 7, lambda s: len(s) % 2):
        assert text_keys(texts, chunk=3, hash_fn=forced).tolist() == expected.tolist()
    assert text_keys([]).tolist() == []


def test_pairs_table_ids_are_categorical_codes_of_the_collection_ids(result):
    import pandas as pd

    p = result.pairs
    for c in ("source", "query_id", "passage_id", "flag_reasons", "fn_band"):
        assert isinstance(p[c].dtype, pd.CategoricalDtype), c
    coll = collection()
    assert list(p["query_id"].cat.categories) == sorted(coll.query_ids)
    assert list(p["passage_id"].cat.categories) == sorted(coll.passage_ids)
    assert p["query_id"].cat.codes.dtype.itemsize <= 4 and p["source"].cat.codes.dtype == np.int8
    assert list(p["source"].cat.categories) == ["hard", "easy", "copies"]
    # sorting by an id column sorts the ids as strings
    s = p.sort_values(["query_id", "passage_id"], kind="stable")
    key = list(zip(s["query_id"].astype(str), s["passage_id"].astype(str)))
    assert key == sorted(key)
    # the values are the ids, row for row, as a string column would hold them
    hard = p[p["source"] == "hard"]
    assert hard["query_id"].astype(str).tolist() == [q for q in QUERIES for _ in range(3)]
    assert set(p["flag_reasons"].astype(str)) <= {"", "unsafe", "near_duplicate", "unsafe,near_duplicate"}
    assert (p["flag_reasons"].astype(str) != "").eq(p["flagged"]).all()
    # a pair costs no string: 8 float64, rank, 5 bools and 1-4 byte codes
    per_row = sum(
        p[c].cat.codes.dtype.itemsize if isinstance(p[c].dtype, pd.CategoricalDtype) else p[c].dtype.itemsize
        for c in p.columns
    )
    assert per_row <= 8 * 8 + 8 + 5 + 4 * 4  # 8 float64, rank, 5 bools, 5 codes of at most 4 bytes


# ----------------------------------------------------------------------------- float16 vs float32


def test_float16_embeddings_move_every_number_by_at_most_the_rounding_bound():
    """``embedding_dtype="float16"`` against float32 on the sample: every similarity within
    ``rounding.float16_similarity_bound(d)`` (≈ 2^-10 + 2·gamma_d, derived there), and every
    derived number within the bound that follows from it (``rounding.metric_bounds``:
    margins 2·eps + tie tolerance, I_NCE 2·eps/τ, ECI C·2(2·eps + tie)). The bounds are tight
    enough to matter: the rounding moves s_qn by more than a tenth of its bound."""
    from pathlib import Path

    import rounding
    from eci_core.io.load import load_paths
    from eci_core.metrics.eci import TIE_TOLERANCE

    coll, report = load_paths([str(Path(__file__).resolve().parents[1] / "sample_data" / "pyfaq")])
    assert not report.errors
    enc, cfg = HashingEncoder(), ECIConfig(n_bootstrap=200, seed=1)
    srcs = ["bm25", "dense"]
    a = score_collection(coll, enc, cfg, sources=srcs, embedding_dtype="float32")
    b = score_collection(coll, enc, cfg, sources=srcs, embedding_dtype="float16")
    eps = rounding.float16_similarity_bound(enc.dim)
    assert eps < 1.01e-3  # d = 256: 2^-10 + 2·gamma_256 + subnormal terms
    cmax = float(a.queries["C"].max())
    bound = rounding.metric_bounds(eps, TIE_TOLERANCE, cfg.temperature, cmax)
    assert (
        len(a.pairs) > 2000
        and (
            a.pairs[["source", "query_id", "passage_id"]].astype(str).values
            == b.pairs[["source", "query_id", "passage_id"]].astype(str).values
        ).all()
    )
    d_sqn = np.abs(a.pairs["s_qn"].to_numpy() - b.pairs["s_qn"].to_numpy())
    assert 0.1 * eps < d_sqn.max() <= bound["s_qn"]
    for col in ("s_qp", "s_pn", "margin"):
        diff = np.abs(a.pairs[col].to_numpy(float) - b.pairs[col].to_numpy(float)).max()
        assert diff <= bound[col], (col, diff, bound[col])
    qa, qb = a.queries, b.queries
    assert (qa["K"].to_numpy() == qb["K"].to_numpy()).all() and (
        qa["C"].to_numpy() == qb["C"].to_numpy()
    ).all()
    for col in ("S", "delta", "DE", "infonce"):
        diff = np.abs(qa[col].to_numpy(float) - qb[col].to_numpy(float)).max()
        assert diff <= bound[col], (col, diff, bound[col])
    per_c = np.abs(qa["eci"].to_numpy(float) - qb["eci"].to_numpy(float)) / np.maximum(
        qa["C"].to_numpy(float), 1e-300
    )
    assert per_c.max() <= bound["eci_per_C"]
    sa, sb = a.sources.set_index("name"), b.sources.set_index("name")
    for col, key in (
        ("eci", "eci"),
        ("eci_low", "eci"),
        ("eci_high", "eci"),
        ("eci_arith", "eci_arith"),
        ("signal", "S"),
        ("safety", "delta"),
        ("infonce_bound", "infonce"),
        ("infonce_bound_low", "infonce"),
        ("infonce_bound_high", "infonce"),
    ):
        diff = (sa[col] - sb.loc[sa.index, col]).abs().max()
        assert diff <= bound[key], (col, diff, bound[key])
