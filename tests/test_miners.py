"""Tests of the hard-negative miners (eci_core.mining) and `eci mine` (eci_core.cli.mine)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import eci_core  # noqa: F401  (sets the offline environment first)
from eci_core.io.collection import Collection
from eci_core.io.records import LoadError
from eci_core.models.hashing import HashingEncoder
from eci_core.mining import (
    BM25CE_DEFAULT_MARGIN,
    mine,
    read_beir,
    read_negative_ids,
    retrieval_metrics,
    write_trec_run,
)

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "app_small"
PYFAQ = ROOT / "sample_data" / "pyfaq"


# --------------------------------------------------------------------------------- helpers
class TableEncoder:
    """An encoder returning given unit vectors per text (queries and passages alike), so that
    cosine scores are exactly what a test wants."""

    name = "table"
    fingerprint = "table-encoder-test"

    def __init__(self, table: dict[str, np.ndarray]):
        self.table = {k: np.asarray(v, dtype=np.float32) / np.linalg.norm(v) for k, v in table.items()}
        self.dim = len(next(iter(table.values())))

    def encode_queries(self, texts):
        return np.stack([self.table[t] for t in texts])

    encode_passages = encode_queries


def scored_collection(pos_scores: list[float], cand_scores: list[list[float]], n_pos_per_query=None):
    """Queries q0.. whose cosine with passages is exactly given: query j has positives with
    ``pos_scores[j]`` (or several, ``n_pos_per_query``) and candidates with ``cand_scores[j]``.
    Every passage is orthogonal to every other query (2 dims per query)."""
    nq = len(pos_scores)
    dim = 2 * nq
    table, coll = {}, Collection()
    for j in range(nq):
        e = np.zeros(dim)
        e[2 * j] = 1.0
        qt = f"query {j}"
        table[qt] = e
        qi = coll.add_query(qt, f"q{j}")
        pos = pos_scores[j] if isinstance(pos_scores[j], list) else [pos_scores[j]]
        for i, s in enumerate(pos):
            v = np.zeros(dim)
            v[2 * j], v[2 * j + 1] = s, np.sqrt(1 - s * s)
            pt = f"pos {j} {i}"
            table[pt] = v
            coll.positives.setdefault(qi, []).append(coll.add_passage(pt, f"q{j}-pos{i}"))
        for i, s in enumerate(cand_scores[j]):
            v = np.zeros(dim)
            v[2 * j], v[2 * j + 1] = s, np.sqrt(1 - s * s)
            pt = f"cand {j} {i}"
            table[pt] = v
            coll.add_passage(pt, f"q{j}-c{i}")
    return coll, TableEncoder(table)


def synthetic(n_passages=300, n_queries=40, seed=0, vocab=400, extra_pos=0):
    """A random bag-of-words corpus; each query is the first words of its positive, so lexical
    and hashing miners find near neighbours. ``extra_pos`` queries get a second positive."""
    rng = np.random.default_rng(seed)
    words = [f"w{i}" for i in range(vocab)]
    c = Collection()
    for i in range(n_passages):
        c.add_passage(" ".join(rng.choice(words, 12)), f"p{i}")
    for j in range(n_queries):
        p = int(rng.integers(n_passages))
        qi = c.add_query(" ".join(c.passage_texts[p].split()[:5]), f"q{j}")
        c.positives.setdefault(qi, []).append(p)
        if j < extra_pos:
            c.positives[qi].append(int((p + 1) % n_passages))
    return c


class OverlapCrossEncoder:
    """A deterministic model-free cross-encoder: logit = 10 · Jaccard(query words, passage
    words) − 5 (a real scorer, so tests can recompute it independently)."""

    name = "overlap-ce"
    fingerprint = "overlap-ce-test"

    @staticmethod
    def score(q: str, p: str) -> float:
        a, b = set(q.split()), set(p.split())
        return 10.0 * len(a & b) / max(len(a | b), 1) - 5.0

    def predict(self, pairs):
        return np.array([self.score(q, p) for q, p in pairs], dtype=np.float32)


def pids_of(res, qid):
    return [p for p, _ in res.negatives[qid]]


# --------------------------------------------------------------------------------- positives / determinism
@pytest.mark.parametrize("method", ["bm25", "dense", "random", "bm25+ce", "cross-encoder"])
def test_miners_never_return_a_positive(method):
    c = synthetic(extra_pos=15)
    res = mine(
        c, method, num_negatives=8, encoder=HashingEncoder(), cross_encoder=OverlapCrossEncoder(), seed=1
    )
    assert len(res.query_ids) == 40
    for qid in res.query_ids:
        pos = {c.passage_ids[p] for p in c.positives[c.query_index(qid)]}
        got = pids_of(res, qid)
        assert not pos & set(got)
        assert len(got) == len(set(got))
        scores = [s for _, s in res.negatives[qid]]
        assert scores == sorted(scores, reverse=True)
    if method not in ("bm25+ce",):
        assert all(len(res.negatives[q]) == 8 for q in res.query_ids)


def test_dense_top_k_matches_exhaustive_ranking():
    c = synthetic()
    enc = HashingEncoder()
    res = mine(c, "dense", num_negatives=5, encoder=enc)
    P = enc.encode_passages(c.passage_texts)
    for qid in res.query_ids[:10]:
        qi = c.query_index(qid)
        s = P @ enc.encode_queries([c.query_texts[qi]])[0]
        s[c.positives[qi]] = -np.inf
        got = [c.passage_index(p) for p in pids_of(res, qid)]
        assert np.allclose([x for _, x in res.negatives[qid]], s[got], atol=1e-6)
        rest = np.delete(s, got)
        assert s[got].min() >= rest.max() - 1e-6  # nothing left out scores above what was kept
        assert np.allclose(np.sort(s[got])[::-1], np.sort(s)[::-1][:5], atol=1e-6)


@pytest.mark.parametrize("exclude_llm", [False, True])
def test_bm25_candidates_from_bm25s_retrieve_equal_ranking_the_full_score_matrix(exclude_llm):
    """bm25s' ``retrieve(k=...)`` gives the same candidates, scores and order as ranking every
    passage's score (positives and excluded passages out, ties by index) on the pyfaq sample.
    BM25 ties are common there (short FAQ passages): the rows where a tie crosses retrieve's cut
    are ranked from the full row, and the sample has such rows at every k."""
    from eci_core.metrics.retrieval import top_k_rows
    from eci_core.mining.bm25 import Bm25
    from eci_core.mining.params import Params
    from eci_core.mining.selection import MiningContext

    c = read_beir(PYFAQ)
    q_list = np.array(sorted(c.positives), dtype=np.int64)
    excl = (
        np.array([p.startswith("llm-") for p in c.passage_ids])
        if exclude_llm
        else np.zeros(c.n_passages, bool)
    )
    ctx = MiningContext(c, q_list, excl, Params(1, 0, 1, None, None, None, None, "top", 0), None, None)
    bm25 = Bm25(c.passage_texts)
    full = ctx.masked(np.arange(q_list.size), bm25.block([c.query_texts[q] for q in q_list]))
    for k in (10, 100):
        idx, sc = bm25.retrieve(ctx, k)
        want_idx, want_sc = top_k_rows(full, k)
        assert np.array_equal(idx, want_idx) and np.array_equal(sc, want_sc)
        assert 0 < bm25.n_full_rows < q_list.size  # ties crossed the cut on some rows, not all


def test_random_and_random_sampling_are_deterministic_for_a_seed():
    c = synthetic()
    a = mine(c, "random", num_negatives=6, seed=7)
    b = mine(c, "random", num_negatives=6, seed=7)
    d = mine(c, "random", num_negatives=6, seed=8)
    assert a.negatives == b.negatives
    assert a.negatives != d.negatives
    kw = dict(num_negatives=4, range_max=20, sampling_strategy="random", encoder=HashingEncoder())
    x, y, z = mine(c, "dense", seed=3, **kw), mine(c, "dense", seed=3, **kw), mine(c, "dense", seed=4, **kw)
    assert x.negatives == y.negatives
    assert x.negatives != z.negatives


def test_random_miner_is_roughly_uniform():
    c = synthetic(n_passages=50, n_queries=1)
    counts = np.zeros(50)
    for seed in range(400):
        for pid, _ in mine(c, "random", num_negatives=5, seed=seed).negatives["q0"]:
            counts[c.passage_index(pid)] += 1
    pos = c.positives[0][0]
    assert counts[pos] == 0
    others = np.delete(counts, pos)
    # each non-positive is drawn with probability 5/49: expected 40.8 of 400 draws
    assert abs(others.mean() - 400 * 5 / 49) < 1e-9
    assert others.min() > 15 and others.max() < 70


# ------------------------------------------------------- filters (sentence-transformers semantics)
def test_relative_margin_by_hand():
    # positive 0.80; threshold 0.80 - 0.80*0.05 = 0.76: 0.85 and 0.78 go, 0.76 (not >) stays
    coll, enc = scored_collection([0.80], [[0.85, 0.78, 0.76, 0.70, 0.50, 0.30]])
    res = mine(coll, "dense", num_negatives=3, relative_margin=0.05, encoder=enc)
    assert pids_of(res, "q0") == ["q0-c2", "q0-c3", "q0-c4"]
    assert res.skipped == {"relative_margin": 2}
    assert res.positive_scores["q0"] == pytest.approx(0.80, abs=1e-6)
    assert res.params["range_max"] == 30  # range_min + 10 * num_negatives with a filter
    assert res.skip_lines()[0] == "Skipped 2 potential negatives (33.33%) due to the relative_margin of 0.05."


def test_relative_margin_with_negative_positive_score_uses_abs():
    # positive -0.5, m=0.1: threshold -0.5 - 0.05 = -0.55 (not -0.45 as (1-m)*pos would give)
    coll, enc = scored_collection([-0.5], [[-0.4, -0.5, -0.52, -0.6, -0.7]])
    res = mine(coll, "dense", num_negatives=2, relative_margin=0.1, encoder=enc)
    assert pids_of(res, "q0") == ["q0-c3", "q0-c4"]
    assert res.skipped == {"relative_margin": 3}


def test_absolute_margin_and_score_bounds_by_hand():
    coll, enc = scored_collection([0.80], [[0.85, 0.75, 0.69, 0.60, 0.40, 0.20, 0.10]])
    # absolute 0.1: drop neg + 0.1 > 0.8, i.e. 0.85, 0.75 (0.69 + 0.1 = 0.79 stays)
    res = mine(coll, "dense", num_negatives=3, absolute_margin=0.1, encoder=enc)
    assert pids_of(res, "q0") == ["q0-c2", "q0-c3", "q0-c4"]
    assert res.skipped == {"absolute_margin": 2}
    res = mine(coll, "dense", num_negatives=2, max_score=0.65, min_score=0.15, encoder=enc)
    assert pids_of(res, "q0") == ["q0-c3", "q0-c4"]
    # min_score drops 0.10 only (the window holds all 7 candidates: range_max = 20)
    assert res.skipped == {"max_score": 3, "min_score": 1}
    # filters run in order: absolute_margin first, then max_score only sees what is left
    res = mine(coll, "dense", num_negatives=2, absolute_margin=0.1, max_score=0.65, encoder=enc)
    assert res.skipped == {"absolute_margin": 2, "max_score": 1}
    assert pids_of(res, "q0") == ["q0-c3", "q0-c4"]


def test_margin_uses_the_lowest_positive():
    # positives 0.9 and 0.6: with absolute_margin 0, candidates above 0.6 are dropped
    coll, enc = scored_collection([[0.9, 0.6]], [[0.8, 0.7, 0.55, 0.5]])
    res = mine(coll, "dense", num_negatives=2, absolute_margin=0.0, encoder=enc)
    assert res.positive_scores["q0"] == pytest.approx(0.6, abs=1e-6)
    assert pids_of(res, "q0") == ["q0-c2", "q0-c3"]
    assert res.skipped == {"absolute_margin": 2}


def test_range_min_range_max_window():
    scores = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3]
    coll, enc = scored_collection([0.95], [scores])
    # window = 4 best non-positives (0.9 .. 0.6); skip 2 -> 0.7, 0.6
    res = mine(coll, "dense", num_negatives=2, range_min=2, range_max=4, encoder=enc)
    assert pids_of(res, "q0") == ["q0-c2", "q0-c3"]
    # range_min counts survivors of the filters (sentence-transformers applies it after them)
    res = mine(coll, "dense", num_negatives=2, range_min=1, range_max=6, max_score=0.75, encoder=enc)
    assert pids_of(res, "q0") == ["q0-c3", "q0-c4"]
    # a window too small for the filters leaves a query short, and says so
    res = mine(coll, "dense", num_negatives=2, range_max=3, max_score=0.75, encoder=enc)
    assert pids_of(res, "q0") == ["q0-c2"]
    assert res.short_queries == 1
    assert res.skip_lines()[-1].startswith("Could not find enough negatives for 1 queries (100.00%)")


def test_random_sampling_draws_from_the_window_only():
    coll, enc = scored_collection([0.95], [[0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2]])
    seen = set()
    for seed in range(30):
        res = mine(
            coll,
            "dense",
            num_negatives=2,
            range_min=1,
            range_max=5,
            sampling_strategy="random",
            seed=seed,
            encoder=enc,
        )
        got = pids_of(res, "q0")
        assert len(got) == 2
        sc = [s for _, s in res.negatives["q0"]]
        assert sc == sorted(sc, reverse=True)
        seen |= set(got)
    assert seen == {"q0-c1", "q0-c2", "q0-c3", "q0-c4"}


# --------------------------------------------------------------------------------- bm25+ce, cross-encoder
def test_bm25_ce_removes_candidates_within_the_margin_of_the_positive():
    c = synthetic(n_passages=120, n_queries=25, vocab=60, seed=3)
    ce = OverlapCrossEncoder()
    m = 2.0
    res = mine(c, "bm25+ce", num_negatives=5, absolute_margin=m, pool_size=200, cross_encoder=ce)
    total_removed = 0
    for qid in res.query_ids:
        qi = c.query_index(qid)
        q = c.query_texts[qi]
        pos = min(ce.score(q, c.passage_texts[p]) for p in c.positives[qi])
        assert res.positive_scores[qid] == pytest.approx(pos, abs=1e-5)
        # the pool is every non-positive (pool_size > corpus): expected = CE-sorted survivors
        cands = [
            (ce.score(q, c.passage_texts[i]), i) for i in range(c.n_passages) if i not in c.positives[qi]
        ]
        removed = [i for s, i in cands if np.float32(s) + m > np.float32(pos)]
        total_removed += len(removed)
        kept = sorted(
            [(s, i) for s, i in cands if i not in removed], key=lambda t: (-np.float32(t[0]), t[1])
        )[:5]
        got = res.negatives[qid]
        assert [p for p, _ in got] == [c.passage_ids[i] for _, i in kept]
        for pid, s in got:
            assert s + m <= pos + 1e-5
    assert total_removed > 0
    assert res.skipped["absolute_margin"] == total_removed


def test_bm25_ce_default_margin_and_pool():
    c = synthetic(n_passages=120, n_queries=10, vocab=60, seed=3)
    res = mine(c, "bm25+ce", num_negatives=5, cross_encoder=OverlapCrossEncoder())
    assert res.params["absolute_margin"] == BM25CE_DEFAULT_MARGIN == 1.0
    assert res.params["pool_size"] == 100
    assert res.params["range_max"] == 100  # the whole reranked pool
    for qid in res.query_ids:
        for _, s in res.negatives[qid]:
            assert s + 1.0 <= res.positive_scores[qid] + 1e-6


def test_cross_encoder_method_reranks_union_of_bm25_and_dense():
    c = synthetic(n_passages=200, n_queries=10, seed=5)
    ce = OverlapCrossEncoder()
    enc = HashingEncoder()
    res = mine(c, "cross-encoder", num_negatives=5, pool_size=10, cross_encoder=ce, encoder=enc)
    bm = mine(c, "bm25", num_negatives=10, encoder=enc)
    de = mine(c, "dense", num_negatives=10, encoder=enc)
    for qid in res.query_ids:
        qi = c.query_index(qid)
        pool = set(pids_of(bm, qid)) | set(pids_of(de, qid))
        exp = sorted(
            pool,
            key=lambda p: (
                -np.float32(ce.score(c.query_texts[qi], c.passage_texts[c.passage_index(p)])),
                c.passage_index(p),
            ),
        )[:5]
        assert pids_of(res, qid) == exp


def test_bm25_ce_with_the_bundled_onnx_cross_encoder(tmp_path):
    """The real cross-encoder on a handful of pairs; checked against the scores it gives."""
    from eci_core.models.cache import EmbeddingCache
    from eci_core.models.encoding import cross_scores
    from eci_core.models.registry import load_cross_encoder

    texts = [
        "Use list.sort() to sort a list in place, or sorted() to get a new sorted list.",
        "Tuples are immutable sequences; lists are mutable.",
        "To reverse a list call list.reverse() or use reversed().",
        "sorted() accepts a key function, e.g. sorted(words, key=str.lower).",
        "Dictionaries map keys to values.",
        "The GIL lets only one thread execute Python bytecode at a time.",
    ]
    c = Collection()
    for i, t in enumerate(texts):
        c.add_passage(t, f"d{i}")
    qi = c.add_query("How do I sort a list?", "q1")
    c.positives[qi] = [0]
    ce = load_cross_encoder()
    cache = EmbeddingCache(tmp_path / "cache")
    res = mine(c, "bm25+ce", num_negatives=3, pool_size=5, cross_encoder=ce, cache=cache)
    scores = cross_scores(ce, [("How do I sort a list?", t) for t in texts], cache=cache)
    pos = scores[0]
    assert res.positive_scores["q1"] == pytest.approx(pos, abs=1e-5)
    expected = [i for i in np.argsort(-scores, kind="stable") if i != 0 and scores[i] + 1.0 <= pos][:3]
    assert pids_of(res, "q1") == [f"d{i}" for i in expected]
    assert "d5" in pids_of(res, "q1") or len(expected) < 3 or scores[5] < scores[expected[-1]]
    # sorted() with a key is about sorting lists: the cross-encoder rates it close to the positive
    assert scores[3] > scores[4]


# --------------------------------------------------------------------------------- extras, exclusions
def test_exclude_prefixes_and_extra_negatives():
    c = synthetic(n_passages=100, n_queries=8)
    for j in range(8):
        c.add_passage(c.query_texts[j] + " written by a model", f"llm-q{j}-1")
    enc = HashingEncoder()
    plain = mine(c, "dense", num_negatives=5, encoder=enc)
    assert any(p.startswith("llm-") for q in plain.query_ids for p in pids_of(plain, q))
    res = mine(c, "dense", num_negatives=5, encoder=enc, exclude_prefixes=("llm-",))
    assert not any(p.startswith("llm-") for q in res.query_ids for p in pids_of(res, q))
    pos0 = c.passage_ids[c.positives[0][0]]
    extra = {f"q{j}": [f"llm-q{j}-1"] + ([pos0] if j == 0 else []) for j in range(8)}
    res = mine(c, "dense", num_negatives=5, encoder=enc, exclude_prefixes=("llm-",), extra_negatives=extra)
    for j in range(8):
        got = res.negatives[f"q{j}"]
        assert len(got) == 6  # 5 mined + the llm one (q0's own positive is refused)
        assert f"llm-q{j}-1" in [p for p, _ in got]
        assert [s for _, s in got] == sorted((s for _, s in got), reverse=True)
    assert pos0 not in pids_of(res, "q0")
    with pytest.raises(ValueError, match="not in the corpus"):
        mine(c, "dense", num_negatives=5, encoder=enc, extra_negatives={"q0": ["nope"]})


# --------------------------------------------------------------------------------- bad parameters
@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(method="bm25", num_negatives=0), "num_negatives=0"),
        (dict(method="bm25", range_min=-1), "range_min=-1"),
        (dict(method="bm25", range_min=10, range_max=5), r"range_max=5 must be > range_min=10"),
        (dict(method="bm25", num_negatives=10, range_min=5, range_max=10), "num_negatives=10"),
        (dict(method="dense", relative_margin=-0.1), "relative_margin=-0.1"),
        (dict(method="dense", absolute_margin=float("nan")), "absolute_margin=nan"),
        (dict(method="dense", min_score=0.9, max_score=0.1), "min_score=0.9 must be <= max_score=0.1"),
        (dict(method="dense", sampling_strategy="best"), "sampling_strategy='best'"),
        (dict(method="colbert"), "method='colbert'"),
        (dict(method="random", absolute_margin=0.1), "absolute_margin=0.1"),
        (dict(method="bm25", pool_size=50), "pool_size=50"),
        (dict(method="bm25+ce", pool_size=5, num_negatives=10), "pool_size=5"),
    ],
)
def test_bad_parameters_raise_naming_the_parameter(kwargs, match):
    c = synthetic(n_passages=30, n_queries=3)
    with pytest.raises(ValueError, match=match):
        mine(c, encoder=HashingEncoder(), cross_encoder=OverlapCrossEncoder(), **kwargs)


# --------------------------------------------------------------------------------- files, CLI
def test_trec_round_trip_and_read_beir(tmp_path):
    c = read_beir(FIXTURE)
    res = mine(c, "bm25", num_negatives=4)
    out = tmp_path / "bm25.trec"
    n = write_trec_run(res, out, tag="bm25")
    lines = out.read_text().splitlines()
    assert n == len(lines) == res.n_negatives
    first = lines[0].split()
    assert first[1] == "Q0" and first[3] == "1" and first[5] == "bm25"
    back = read_negative_ids(out)
    assert back == {q: pids_of(res, q) for q in res.query_ids}
    js = tmp_path / "neg.jsonl"
    js.write_text("".join(json.dumps({"query_id": q, "negative_ids": v}) + "\n" for q, v in back.items()))
    assert read_negative_ids(js) == back


def _beir_dir(d: Path, corpus: str, queries: str, qrels: str) -> Path:
    (d / "qrels").mkdir(parents=True, exist_ok=True)
    (d / "negatives").mkdir(exist_ok=True)
    (d / "corpus.jsonl").write_text(corpus)
    (d / "queries.jsonl").write_text(queries)
    (d / "qrels" / "test.tsv").write_text(qrels)
    (d / "negatives" / "bm25.trec").write_text("q1 Q0 d1 1 2.0 bm25\n")
    return d


GOOD_CORPUS = '{"_id": "d1", "text": "a"}\n{"_id": "d2", "title": "T", "text": "b"}\n'
GOOD_QUERIES = '{"_id": "q1", "text": "x"}\n'
GOOD_QRELS = "query-id\tcorpus-id\tscore\nq1\td2\t1\n"


def test_read_beir_reads_texts_positives_and_first_of_a_repeated_id(tmp_path):
    d = _beir_dir(
        tmp_path,
        GOOD_CORPUS + '{"_id": "d1", "text": "again"}\n',
        GOOD_QUERIES + '{"_id": "q2", "text": "y"}\n',
        GOOD_QRELS + "q1\td1\t0\nq2\td1\t2\nq2\td2\t1\n",
    )
    c = read_beir(d)
    assert c.passage_ids == ["d1", "d2"] and c.passage_texts == ["a", "T b"]  # title + text; first d1 wins
    assert c.query_ids == ["q1", "q2"] and c.query_texts == ["x", "y"]
    assert c.positives == {0: [1], 1: [0, 1]}  # score 0 is not relevant


@pytest.mark.parametrize(
    "bad, where",
    [
        (dict(corpus=GOOD_CORPUS + '{"text": "no id"}\n'), "corpus.jsonl:3: field '_id'"),
        (dict(corpus=GOOD_CORPUS + '{"_id": "d3", "text": "broken"\n'), "corpus.jsonl:3: "),
        (
            dict(corpus=GOOD_CORPUS + '{"_id": "d3", "text": ["not", "a", "string"]}\n'),
            "corpus.jsonl:3: field 'text'",
        ),
        (dict(corpus=GOOD_CORPUS + '["d3", "an array"]\n'), "corpus.jsonl:3: "),
        (dict(queries=GOOD_QUERIES + '{"_id": "secret-q", "text": 7}\n'), "queries.jsonl:2: field 'text'"),
        (dict(qrels=GOOD_QRELS + "q1\td1\tsecret-score\n"), "test.tsv:3: field 'score'"),
        (dict(qrels=GOOD_QRELS + "q1\n"), "test.tsv:3: "),
        (dict(qrels=GOOD_QRELS + "q1\tsecret-d9\t1\n"), "test.tsv:3: field 'corpus-id'"),
    ],
)
def test_read_beir_errors_are_the_loaders_lines(tmp_path, bad, where):
    """A bad corpus, queries or qrels line gives read_beir (mining) exactly the loader's error
    line, PATH:LINE: field 'F': message, with no value from the file echoed."""
    from eci_core.io.formats.beir import load_beir

    files = dict(corpus=GOOD_CORPUS, queries=GOOD_QUERIES, qrels=GOOD_QRELS) | bad
    d = _beir_dir(tmp_path, **files)
    # the loader reads only the ids its negatives name: name the bad lines' ids there too
    (d / "negatives" / "bm25.trec").write_text(
        "q1 Q0 d1 1 2.0 bm25\nq1 Q0 d3 2 1.0 bm25\nsecret-q Q0 d1 1 1.0 bm25\n"
    )
    with pytest.raises(LoadError) as mined:
        read_beir(d)
    with pytest.raises(LoadError) as loaded:
        load_beir(d, Collection())
    assert str(mined.value) == str(loaded.value)
    path, rest = where.split(":", 1)
    assert str(mined.value).startswith(str(next(d.rglob(path))) + ":" + rest), str(mined.value)
    assert "secret" not in str(mined.value) and "d3" not in str(mined.value)


def test_read_beir_names_the_qrels_line_of_an_unknown_query_or_passage(tmp_path):
    d = _beir_dir(tmp_path, GOOD_CORPUS, GOOD_QUERIES, GOOD_QRELS + "q1\td9\t1\n")
    with pytest.raises(LoadError) as err:
        read_beir(d)
    assert (
        str(err.value)
        == f"{d / 'qrels' / 'test.tsv'}:3: field 'corpus-id': 1 positive id not in corpus.jsonl"
    )
    d = _beir_dir(
        tmp_path, GOOD_CORPUS, GOOD_QUERIES, GOOD_QRELS + "q7\td1\t0\nq8\td1\t0\nq8\td1\t1\nq7\td2\t3\n"
    )
    with pytest.raises(LoadError) as err:  # q7/q8's score-0 rows are not the lines named
        read_beir(d)
    assert str(err.value) == (
        f"{d / 'qrels' / 'test.tsv'}:5: field 'query-id': 2 query ids not in queries.jsonl "
        "(the first on this line)"
    )
    d = _beir_dir(tmp_path, GOOD_CORPUS, GOOD_QUERIES, "query-id\tcorpus-id\tscore\nq1\td1\t0\n")
    with pytest.raises(
        LoadError, match=r"test.tsv: no relevant \(score > 0\) query-passage pair: nothing to mine$"
    ):
        read_beir(d)
    with pytest.raises(LoadError, match=r"split='dev': no qrels/dev.tsv; splits here: test"):
        read_beir(d, split="dev")
    (d / "queries.jsonl").unlink()
    with pytest.raises(LoadError, match=r"not a BEIR directory: missing queries.jsonl$"):
        read_beir(d)


@pytest.mark.parametrize(
    "name, body, line",
    [
        (
            "a.trec",
            "q1 Q0 d1 1 2.0 t\nq1 Q0 secret-d2 x 1.0 t\n",
            "a.trec:2: field 'rank': expected an integer rank",
        ),
        (
            "b.trec",
            "q1 Q0 d1 1 2.0 t\nq1 Q0 d2\n",
            "b.trec:2: expected 6 whitespace-separated fields 'qid Q0 docid rank score tag', found 3",
        ),
        (
            "c.jsonl",
            '{"query_id": "q1", "negative_ids": ["d1"]}\n{"query_id": "secret-q"}\n',
            "c.jsonl:2: field 'negative_ids': missing required field (fields found: query_id)",
        ),
        (
            "d.jsonl",
            '{"query_id": "q1", "negative_ids": "secret-d1"}\n',
            "d.jsonl:1: field 'negative_ids': expected a list of ids, got a string",
        ),
    ],
)
def test_read_negative_ids_errors_are_the_loaders_lines(tmp_path, name, body, line):
    (tmp_path / name).write_text(body)
    with pytest.raises(LoadError) as err:
        read_negative_ids(tmp_path / name)
    assert str(err.value) == f"{tmp_path / name.split(':')[0]}:{line.split(':', 1)[1]}"  # nothing echoed
    assert "secret" not in str(err.value)


def test_read_negative_ids_merges_the_tags_of_a_run_by_position(tmp_path):
    (tmp_path / "r.trec").write_text(
        "q1 Q0 d1 1 2.0 a\nq1 Q0 d2 1 2.0 b\nq1 Q0 d3 2 1.0 a\nq2 Q0 d4 1 1 b\nq1 Q0 d5 2 1.0 b\n"
    )
    assert read_negative_ids(tmp_path / "r.trec") == {"q1": ["d1", "d2", "d3", "d5"], "q2": ["d4"]}
    with pytest.raises(FileNotFoundError, match="no such file"):
        read_negative_ids(tmp_path / "missing.trec")


def test_eci_mine_cli_writes_run_and_prints_skip_lines(tmp_path, capsys):
    from eci_core.cli.mine import main

    out = tmp_path / "dense-percpos.trec"
    rc = main([str(FIXTURE), "--method", "dense", "--encoder", "hashing", "--num-negatives", "3",
               "--relative-margin", "0.05", "--max-score", "0.3", "--cache-dir", str(tmp_path / "c"),
               "--no-progress", "--out", str(out)])  # fmt: skip
    assert rc == 0
    text = capsys.readouterr().out
    runs = read_negative_ids(out)
    assert (
        set(runs)
        == {
            json.loads(ln)["_id"] for ln in (FIXTURE / "queries.jsonl").read_text().splitlines() if ln.strip()
        }
        or runs
    )
    assert all(line.split()[5] == "dense" for line in out.read_text().splitlines())
    assert "Mined " in text and "queries with dense" in text
    assert "Metric       Positive" in text
    for line in text.splitlines():
        if line.startswith("Skipped"):
            assert line.endswith("due to the relative_margin of 0.05.") or line.endswith(
                "due to the max_score of 0.3."
            )
    rc = main(
        [str(FIXTURE), "--method", "random", "--absolute-margin", "0.1", "--out", str(tmp_path / "r.trec")]
    )
    assert rc == 2
    assert "absolute_margin=0.1" in capsys.readouterr().err


# --------------------------------------------------------------------------------- evaluation
def test_retrieval_metrics_by_hand():
    # q0: positive 0.8, one candidate above (0.9) -> rank 2; q1: positive 0.9 is first -> rank 1
    coll, enc = scored_collection([0.8, 0.9], [[0.9, 0.5], [0.7, 0.2]])
    m = retrieval_metrics(coll, "dense", ks=(1, 2), encoder=enc)
    assert m["R@1"] == pytest.approx(0.5)
    assert m["R@2"] == pytest.approx(1.0)
    assert m["MRR"] == pytest.approx((0.5 + 1.0) / 2)
    # ties count against the positive
    coll, enc = scored_collection([0.8], [[0.8, 0.1]])
    assert retrieval_metrics(coll, "dense", ks=(1,), encoder=enc)["MRR"] == pytest.approx(0.5)


def test_positive_rank_metrics_by_hand_with_two_positives_ties_and_a_masked_positive():
    """ir_measures counts what the miners' definition says: each positive ranked against the
    non-positives only, ties against it; a positive at -inf is never retrieved."""
    from eci_core.metrics.retrieval import positive_rank_metrics

    rows = [
        # non-positives 0.9, 0.8, 0.7: rank(p1 = 0.8) = 3 (the tie counts), rank(p3 = 0.5) = 4
        (np.array([0.9, 0.8, 0.8, 0.5, 0.7]), [1, 3]),
        # p1 first (rank 1); p2 masked out: never retrieved
        (np.array([0.1, 0.6, -np.inf]), [1, 2]),
    ]
    m = positive_rank_metrics(iter(rows), ks=(1, 3, 4))
    assert m["R@1"] == (0.0 + 0.5) / 2
    assert m["R@3"] == (0.5 + 0.5) / 2
    assert m["R@4"] == (1.0 + 0.5) / 2
    assert m["MRR"] == pytest.approx((1 / 3 + 1.0) / 2, abs=1e-15)  # 1/3 + 1: two roundings


def test_top_k_rows_breaks_ties_by_index_also_at_the_cut():
    from eci_core.metrics.retrieval import top_k, top_k_rows

    s = np.array([[1.0, 2.0, 2.0, 2.0, 0.0, -np.inf], [3.0, -np.inf, -np.inf, 1.0, 1.0, 2.0]])
    idx, sc = top_k_rows(s, 2)
    assert idx.tolist() == [[1, 2], [0, 5]] and sc.tolist() == [[2.0, 2.0], [3.0, 2.0]]
    idx, sc = top_k_rows(s, 5)
    assert idx.tolist() == [[1, 2, 3, 0, 4], [0, 5, 3, 4, -1]]  # -inf cells come back as -1
    # the validation's ranking (top_k of q @ P.T, in chunks) keeps the same passages: with many
    # ties at the cut np.argpartition alone (its former top-k) kept other tied passages
    rng = np.random.default_rng(0)
    q = rng.integers(0, 5, size=(8, 300)).astype(np.float32)
    idx, sc = top_k(q, np.eye(300, dtype=np.float32), 10, chunk=3)
    want = np.argsort(-q, axis=1, kind="stable")[:, :10]
    assert np.array_equal(idx, want) and np.array_equal(sc, np.take_along_axis(q, want, axis=1))


# --------------------------------------------------------------------------------- memory
def test_dense_mining_of_20k_passages_stays_under_1_gb():
    """20k passages x 5k queries, in a fresh process. A full query x corpus score matrix would
    be 400 MB of float32 (and its argpartition indices 800 MB more): the numpy allocations
    traced during mining must stay under 256 MB, and the whole process under 1 GB."""
    script = textwrap.dedent(
        """
        import tracemalloc
        import numpy as np
        import eci_core
        from eci_core.io.collection import Collection
        from eci_core.mining import mine
        n, nq = 20000, 5000
        rng = np.random.default_rng(0)

        class GaussEncoder:  # continuous random unit vectors: no ties, like a real encoder
            name = fingerprint = "gauss-test"
            dim = 32
            def __init__(self, texts):
                v = rng.standard_normal((len(texts), self.dim)).astype(np.float32)
                self.table = dict(zip(texts, v / np.linalg.norm(v, axis=1, keepdims=True)))
            def encode_queries(self, texts):
                return np.stack([self.table[t] for t in texts])
            encode_passages = encode_queries

        c = Collection()
        for i in range(n):
            c.add_passage(f"passage {i}", f"p{i}")
        for j in range(nq):
            c.positives[c.add_query(f"query {j}", f"q{j}")] = [j]
        enc = GaussEncoder(c.passage_texts + c.query_texts)
        tracemalloc.start()
        res = mine(c, "dense", 10, encoder=enc)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert res.n_negatives == 10 * nq
        # VmHWM: this process's own peak RSS (getrusage's ru_maxrss keeps the parent's
        # high-water mark across fork + exec on Linux, i.e. pytest's whole footprint)
        hwm = next(l for l in open("/proc/self/status") if l.startswith("VmHWM:"))
        print(peak, int(hwm.split()[1]) * 1024)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    traced, rss = (int(x) for x in proc.stdout.split()[-2:])
    assert traced < 256 * 2**20, f"numpy/python allocations peaked at {traced / 2**20:.0f} MB while mining"
    assert rss < 2**30, f"peak RSS {rss / 2**20:.0f} MB"


# --------------------------------------------------------------------------------- shipped sample data
SOURCES = ("bm25", "dense", "dense-percpos", "cross-encoder", "bm25+ce", "random", "llm+bm25ce")


def test_pyfaq_sources_are_committed_with_ten_negatives_and_no_positive():
    coll = read_beir(PYFAQ)
    qids = {coll.query_ids[q] for q in coll.positives}
    for name in SOURCES:
        runs = read_negative_ids(PYFAQ / "negatives" / f"{name}.trec")
        assert set(runs) <= qids, name
        for qid, pids in runs.items():
            pos = {coll.passage_ids[p] for p in coll.positives[coll.query_index(qid)]}
            assert not pos & set(pids), (name, qid)
            if name != "llm+bm25ce":
                assert not any(p.startswith("llm-") for p in pids)
        sizes = [len(v) for v in runs.values()]
        if name in ("bm25", "dense", "random", "cross-encoder"):
            assert len(runs) == len(qids) and set(sizes) == {10}, name
    llm = read_negative_ids(PYFAQ / "negatives" / "llm.jsonl")
    mixed = read_negative_ids(PYFAQ / "negatives" / "llm+bm25ce.trec")
    base = read_negative_ids(PYFAQ / "negatives" / "bm25+ce.trec")
    for qid, ids in llm.items():
        assert set(ids) <= set(mixed[qid]) and set(base.get(qid, [])) <= set(mixed[qid])


@pytest.mark.slow
def test_shipped_embeddings_hit_the_cache_and_a_changed_text_misses(tmp_path):
    from eci_core.models.base import EncoderCallCounter
    from eci_core.models.cache import EmbeddingCache
    from eci_core.models.encoding import embed
    from eci_core.models.registry import load_encoder

    coll = read_beir(PYFAQ)
    enc = EncoderCallCounter(load_encoder(None))
    assert (PYFAQ / "embeddings" / enc.fingerprint / "passage" / "passage.npz").is_file()
    cache = EmbeddingCache(tmp_path / "c", readonly_dirs=[PYFAQ / "embeddings"])
    embed(enc, coll.passage_texts, "passage", cache=cache)
    embed(enc, coll.query_texts, "query", cache=cache)
    assert enc.n_encoded == 0
    embed(enc, [coll.passage_texts[0] + " (edited)"], "passage", cache=cache)
    assert enc.n_passages == 1  # a stale text is recomputed, never served from the shipped cache


@pytest.mark.slow
def test_pyfaq_dense_is_less_safe_than_dense_percpos(tmp_path):
    """Naive dense top-k keeps false negatives that TopK-PercPos removes: its unsafe rate
    (share of negatives the target encoder ranks at or above the positive) is clearly higher."""
    from eci_core.models.cache import EmbeddingCache
    from eci_core.models.registry import load_encoder
    from eci_core.io.load import load_paths
    from eci_core.scoring import score_collection
    from eci_core.config import ECIConfig

    coll, report = load_paths([PYFAQ])
    assert not report.errors
    cache = EmbeddingCache(tmp_path / "c", readonly_dirs=[PYFAQ / "embeddings"])
    res = score_collection(coll, load_encoder(None), ECIConfig(n_bootstrap=50), cache=cache,
                           sources=["dense", "dense-percpos"], with_sem=False)  # fmt: skip
    s = res.sources.set_index("name")
    assert s.loc["dense", "unsafe_negative_rate"] > 0.02
    # dense-percpos drops every candidate above 0.95 * s_qp: none can be at or above the positive
    assert s.loc["dense-percpos", "unsafe_negative_rate"] == 0.0
    assert s.loc["dense", "unsafe_query_rate"] > s.loc["dense-percpos", "unsafe_query_rate"] + 0.1
