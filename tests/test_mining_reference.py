"""The dense miner against the reference it reimplements, ``sentence_transformers.util.mine_hard_negatives``,
on the bundled pyfaq sample (5,231 passages; 157 of the 158 labelled queries, one per distinct text).

Both get the same embeddings (the bundled all-MiniLM-L6-v2 through the project's encoder registry,
read from the sample's shipped embedding cache) and the same cosine arithmetic (the adapter below
computes ``q @ P.T`` and the pairwise dot products with numpy, as the miner does), so what is
compared is the mining procedure: candidate window, positive exclusion, margin and score filters,
``range_min``, ``sampling_strategy="top"``, ``use_faiss=False``.

The documented differences (``eci_core.mining``'s docstring):

* sentence-transformers retrieves ``range_max + max_positives + 1`` passages and only then drops the
  positives, so with one positive per query its filters see ``range_max + 1`` candidates when the
  positive is among the first ``range_max + 2`` and ``range_max + 2`` when it is not; here the
  window is exactly ``range_max`` non-positives. Without a filter both keep the same negatives; with
  one, each query matches ``mine(range_max=R + 1)`` or ``mine(range_max=R + 2)`` accordingly.
* it identifies queries and passages by text: two queries with one text are one query with two
  positives there (pyfaq has one such pair; its second query is left out, as ``max_positives = 2``
  would widen every query's window).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

datasets = pytest.importorskip(
    "datasets", reason="sentence-transformers' mine_hard_negatives needs `datasets` (make installs it)"
)
torch = pytest.importorskip("torch")

from eci_core.mining import mine, read_beir  # noqa: E402

PYFAQ = Path(__file__).resolve().parents[1] / "sample_data" / "pyfaq"


class NumpyCosineModel:
    """The sentence-transformers model interface ``mine_hard_negatives`` uses (``encode_query``,
    ``encode_document``, ``similarity``, ``similarity_pairwise``, ``device``), answering with given
    L2-normalised embeddings looked up by text and numpy's float32 products."""

    device = torch.device("cpu")

    def __init__(self, queries: dict[str, np.ndarray], passages: dict[str, np.ndarray]):
        self.queries, self.passages = queries, passages

    def encode_query(self, texts, **kw):
        return np.stack([self.queries[t] for t in texts])

    def encode_document(self, texts, **kw):
        return np.stack([self.passages[t] for t in texts])

    def similarity(self, a, b):
        return torch.from_numpy(np.asarray(a, np.float32) @ np.asarray(b, np.float32).T)

    def similarity_pairwise(self, a, b):
        return torch.from_numpy(np.einsum("ij,ij->i", np.asarray(a, np.float32), np.asarray(b, np.float32)))


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    from eci_core.models.cache import EmbeddingCache
    from eci_core.models.encoding import embed
    from eci_core.models.registry import load_encoder

    coll = read_beir(PYFAQ)
    seen = set()
    for q in sorted(coll.positives):  # a second query with a text already seen is not mined:
        if coll.query_texts[q] in seen:  # sentence-transformers would make them one query
            del coll.positives[q]  # with two positives
        seen.add(coll.query_texts[q])
    assert len(coll.positives) == 157 and max(map(len, coll.positives.values())) == 1
    assert len(set(coll.passage_texts)) == coll.n_passages  # ids and texts are one-to-one
    enc = load_encoder(None)
    cache = EmbeddingCache(tmp_path_factory.mktemp("cache"), readonly_dirs=[PYFAQ / "embeddings"])
    q_list = sorted(coll.positives)
    q_texts = [coll.query_texts[q] for q in q_list]
    q_emb = embed(enc, q_texts, "query", cache=cache)
    p_emb = embed(enc, coll.passage_texts, "passage", cache=cache)
    model = NumpyCosineModel(dict(zip(q_texts, q_emb)), dict(zip(coll.passage_texts, p_emb)))
    return coll, enc, cache, q_list, model, (q_emb @ p_emb.T)


def reference(coll, q_list, model, **params) -> dict[str, list[tuple[str, float]]]:
    """``mine_hard_negatives`` on the sample: query id → [(negative id, score)], best first."""
    from sentence_transformers.util import mine_hard_negatives

    pid = {t: i for i, t in zip(coll.passage_ids, coll.passage_texts)}
    qid = {coll.query_texts[q]: coll.query_ids[q] for q in q_list}
    ds = datasets.Dataset.from_dict(
        {
            "query": [coll.query_texts[q] for q in q_list],
            "positive": [coll.passage_texts[coll.positives[q][0]] for q in q_list],
        }
    )
    out = mine_hard_negatives(
        ds,
        model,
        corpus=list(coll.passage_texts),
        sampling_strategy="top",
        use_faiss=False,
        output_format="labeled-list",
        output_scores=True,
        verbose=False,
        **params,
    )
    got = {coll.query_ids[q]: [] for q in q_list}
    for row in out:
        negs = row["positive"][1:]  # the positive first, then the negatives best first
        got[qid[row["query"]]] = [(pid[t], s) for t, s in zip(negs, row["scores"][1:])]
    return got


def ours(coll, enc, cache, **params) -> dict[str, list[tuple[str, float]]]:
    res = mine(coll, "dense", encoder=enc, cache=cache, **params)
    return res.negatives


def assert_same(a: dict, b: dict, qids) -> None:
    for q in qids:
        assert [p for p, _ in a[q]] == [p for p, _ in b[q]], q
        # same float32 products on both sides: the scores are equal, not only close
        assert [np.float32(s) for _, s in a[q]] == [np.float32(s) for _, s in b[q]], q


@pytest.mark.timeout(120)
def test_dense_miner_equals_mine_hard_negatives_without_filters(sample):
    coll, enc, cache, q_list, model, _ = sample
    params = dict(num_negatives=5, range_min=2, range_max=12)
    ref = reference(coll, q_list, model, **params)
    got = ours(coll, enc, cache, **params)
    assert sum(map(len, ref.values())) == 157 * 5
    assert_same(ref, got, got)


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    "filters",
    [dict(absolute_margin=0.05, max_score=0.7), dict(relative_margin=0.1), dict(max_score=0.6)],
    ids=["absolute_margin+max_score", "relative_margin", "max_score"],
)
def test_dense_miner_equals_mine_hard_negatives_with_filters_up_to_its_wider_window(sample, filters):
    coll, enc, cache, q_list, model, scores = sample
    R = 12
    params = dict(num_negatives=8, range_min=1, **filters)
    ref = reference(coll, q_list, model, range_max=R, **params)
    # sentence-transformers' window: R + 2 retrieved, minus the positive when it is among them
    pos = np.array([coll.positives[q][0] for q in q_list])
    pos_score = scores[np.arange(len(q_list)), pos]
    pos_rank = (scores > pos_score[:, None]).sum(axis=1)  # 0 = first
    window = np.where(pos_rank < R + 2, R + 1, R + 2)
    by_window = {w: ours(coll, enc, cache, range_max=w, **params) for w in (R + 1, R + 2)}
    ids = [coll.query_ids[q] for q in q_list]
    for w in (R + 1, R + 2):
        assert_same(ref, by_window[w], [i for i, x in zip(ids, window) if x == w])
    # the window matters: with exactly R candidates some queries keep fewer negatives here
    narrow = ours(coll, enc, cache, range_max=R, **params)
    assert sum(map(len, narrow.values())) < sum(map(len, ref.values()))
