"""Hard-negative miners with sentence-transformers' parameter names and semantics.

Five methods mine negatives for every query that has a labelled positive:

``bm25``
    BM25 (``bm25s``, Lucene variant, k1 = 1.5, b = 0.75, English stop words, no stemming) over
    the corpus, candidates from ``bm25s``' own ``retrieve(k=...)``; the score is the BM25 score
    (:mod:`.bm25`).
``dense``
    the bi-encoder (``encoders.embed`` with the embedding cache): cosine ``s(q, p) = f(q) · f(p)``
    of L2-normalised embeddings. Top-k is computed per chunk of queries
    (:func:`eci_core.metrics.retrieval.top_k_rows`): memory is O(chunk · n_passages), never a
    full query × corpus matrix (:mod:`.dense`).
``cross-encoder``
    the cross-encoder (bundled ONNX ms-marco-MiniLM-L-12-v2) reranks the union of the BM25
    top-``pool_size`` and the dense top-``pool_size`` non-positive passages (default 50 + 50);
    the score is the cross-encoder logit (:mod:`.cross_encoder`).
``bm25+ce``
    BM25 top-``pool_size`` (default 100) rescored by the cross-encoder; candidates the
    cross-encoder rates within ``absolute_margin`` of the positive are removed
    (``CE(q, n) + m > CE(q, p)``); default ``m = BM25CE_DEFAULT_MARGIN = 1.0`` logit for this
    method, so every kept negative is rated at least one logit below the positive; the rest are
    ranked by cross-encoder score.
``random``
    a seeded uniform sample of non-positive passages. Its "score" is the U(0, 1) key that
    orders the sample (no relevance meaning); relevance filters are refused
    (:mod:`.random_negatives`).

Selection (:mod:`.selection`), identical for every scored method and following
``mine_hard_negatives``:

1. candidates = the ``range_max`` best-scoring passages that are not a positive of the query
   (positives are always excluded, and so are passages given in ``exclude_ids`` /
   ``exclude_prefixes``);
2. with ``s⁺`` = the *lowest* positive score of the query under the same scorer, drop in turn
   candidates with ``s + absolute_margin > s⁺``, then ``s > s⁺ − |s⁺| · relative_margin``,
   then ``s > max_score``, then ``s < min_score``; ``skipped[param]`` counts what each removed;
3. skip the first ``range_min`` survivors;
4. ``sampling_strategy="top"`` keeps the next ``num_negatives``; ``"random"`` samples
   ``num_negatives`` of the remaining survivors (seeded) and re-sorts them by score.

``range_max`` defaults to ``range_min + num_negatives``, or ``range_min + 10 · num_negatives``
when a margin or score filter is set (sentence-transformers' rule; its extra ``max_positives``
slots are not needed here because positives are removed before the window is taken). For the
cross-encoder methods it defaults to the whole reranked pool (``pool_size``, or ``2 · pool_size``
for the union of ``cross-encoder``).

Ties are broken by passage index everywhere (candidates by score descending, then index).

Checked against ``sentence_transformers.util.mine_hard_negatives`` on the pyfaq sample
(``tests/test_mining_reference.py``, ``dense`` with the same embeddings, ``use_faiss=False``,
``sampling_strategy="top"``): the same negatives and scores, up to two differences.
sentence-transformers retrieves ``range_max + max_positives + 1`` passages and only then drops the
positives (and a passage whose text is the query's), so with one positive per query its filters
see ``range_max + 1`` candidates when the positive ranks among the first ``range_max + 2`` and
``range_max + 2`` when it does not; here the window is exactly ``range_max`` non-positives.
Without a margin or score filter this changes nothing; with one, a query can keep more negatives
there. And it identifies queries and passages by text (two queries with one text are one query
with two positives there), here by id.

Modules: :mod:`.api` (:func:`mine`, the ``bm25`` / ``dense`` miners), :mod:`.params`,
:mod:`.selection`, :mod:`.bm25`, :mod:`.dense`, :mod:`.cross_encoder`, :mod:`.random_negatives`,
:mod:`.result` (:class:`MiningResult`, :func:`write_trec_run`), :mod:`.beir` (:func:`read_beir`,
:func:`read_negative_ids`), :mod:`.evaluation` (:func:`retrieval_metrics`), :mod:`.sweep`
(``eci mine --sweep``).
"""

from __future__ import annotations

from eci_core.mining.api import mine
from eci_core.mining.beir import read_beir, read_negative_ids
from eci_core.mining.evaluation import retrieval_metrics
from eci_core.mining.params import BM25CE_DEFAULT_MARGIN, DEFAULT_POOL_SIZE, FILTERS, METHODS, Progress
from eci_core.mining.result import MiningResult, write_trec_run
from eci_core.mining.sweep import SWEEP, mine_sweep

__all__ = [
    "BM25CE_DEFAULT_MARGIN",
    "DEFAULT_POOL_SIZE",
    "FILTERS",
    "METHODS",
    "SWEEP",
    "MiningResult",
    "Progress",
    "mine",
    "mine_sweep",
    "read_beir",
    "read_negative_ids",
    "retrieval_metrics",
    "write_trec_run",
]
