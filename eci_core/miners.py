"""Hard-negative miners with sentence-transformers' parameter names and semantics.

Five methods mine negatives for every query that has a labelled positive:

``bm25``
    BM25 (``bm25s``, Lucene variant, k1 = 1.5, b = 0.75, English stop words, no stemming) over
    the corpus; the score is the BM25 score.
``dense``
    the bi-encoder (``encoders.embed`` with the embedding cache): cosine ``s(q, p) = f(q) · f(p)``
    of L2-normalised embeddings. Top-k is computed per chunk of queries with
    ``np.argpartition``: memory is O(chunk · n_passages), never a full query × corpus matrix.
``cross-encoder``
    the cross-encoder (bundled ONNX ms-marco-MiniLM-L-12-v2) reranks the union of the BM25
    top-``pool_size`` and the dense top-``pool_size`` non-positive passages (default 50 + 50);
    the score is the cross-encoder logit.
``bm25+ce``
    BM25 top-``pool_size`` (default 100) rescored by the cross-encoder; candidates the
    cross-encoder rates within ``absolute_margin`` of the positive are removed
    (``CE(q, n) + m > CE(q, p)``); default ``m = BM25CE_DEFAULT_MARGIN = 1.0`` logit for this
    method, so every kept negative is rated at least one logit below the positive; the rest are
    ranked by cross-encoder score.
``random``
    a seeded uniform sample of non-positive passages. Its "score" is the U(0, 1) key that
    orders the sample (no relevance meaning); relevance filters are refused.

Selection, identical for every scored method and following ``mine_hard_negatives``:

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
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np

from eci_core.io.collection import Collection
from eci_core.io.records import LoadError, PassageRef, QueryRecord, SourceReport

METHODS = ("bm25", "dense", "cross-encoder", "bm25+ce", "random")
#: Candidates per retriever before cross-encoder rescoring.
DEFAULT_POOL_SIZE = {"cross-encoder": 50, "bm25+ce": 100}
#: Default ``absolute_margin`` (cross-encoder logits) of the ``bm25+ce`` method.
BM25CE_DEFAULT_MARGIN = 1.0
#: Filters in the order they are applied (and reported).
FILTERS = ("absolute_margin", "relative_margin", "max_score", "min_score")
#: Upper bound on the floats held by one block of query × passage scores (16 MB of float32).
_BLOCK_FLOATS = 1 << 22

Progress = Callable[[str, int, int], None]


# ---------------------------------------------------------------------------------------- input
def read_beir(directory: str | Path, split: str = "test") -> Collection:
    """Read a BEIR directory into a :class:`Collection` (passages, queries, positives; no source).

    ``corpus.jsonl`` lines ``{"_id", "title", "text"}`` (passage text = ``title + " " + text``
    when the title is non-empty, the BEIR convention), ``queries.jsonl`` lines
    ``{"_id", "text"}`` (either may be gzipped, ``.jsonl.gz``), ``qrels/<split>.tsv`` with header
    ``query-id corpus-id score`` (score > 0 = relevant). Every query of ``queries.jsonl`` is added;
    those with a relevant passage get positives and are the ones mined. The files are read by the
    loaders' readers (:func:`eci_core.io.loaders.read_beir_texts` and the qrels reader), so a
    repeated id keeps its first line and a problem raises the loaders' :class:`LoadError`,
    ``PATH:LINE: field 'F': message``, with no value of the file echoed. A qrels row naming a
    query or passage the other files lack is an error at its line.
    """
    from eci_core.io import loaders as L

    d = Path(directory)
    if not d.is_dir():
        raise FileNotFoundError(
            f"{d}: not a directory (expected a BEIR folder with corpus.jsonl, queries.jsonl, qrels/)"
        )
    corpus, queries = L._beir_file(d, "corpus.jsonl"), L._beir_file(d, "queries.jsonl")
    missing = [n for n, f in (("corpus.jsonl", corpus), ("queries.jsonl", queries)) if f is None]
    if missing:
        raise LoadError(str(d), None, f"not a BEIR directory: missing {', '.join(missing)}")
    ptexts = L.read_beir_texts(corpus, with_title=True)
    qtexts = L.read_beir_texts(queries, with_title=False)
    qr = L._read_qrels(d, split)
    qrels = L._beir_file(d / "qrels", f"{split}.tsv")
    if not qr.pos:
        raise LoadError(str(qrels), None, "no relevant (score > 0) query-passage pair: nothing to mine")
    # ids the qrels name that the corpus / queries lack: one line at the first such row
    L._check_known(
        str(qrels),
        {p: ln for p, (_, ln) in qr.where.items()},
        ptexts,
        "positive id",
        corpus.name,
        "corpus-id",
    )
    if any(q not in qtexts for q in qr.pos):
        L._check_known(
            str(qrels),
            _first_relevant_lines(qrels, set(qr.pos) - qtexts.keys()),
            qtexts,
            "query id",
            queries.name,
            "query-id",
        )
    coll = Collection()
    for pid, text in ptexts.items():
        coll.add_passage(text, pid)
    for qid, text in qtexts.items():
        coll.add_query(text, qid)
    for qid, pids in qr.pos.items():
        coll.positives[coll.query_index(qid)] = [coll.passage_index(p) for p in pids]
    return coll


def _first_relevant_lines(qrels: Path, qids: set[str]) -> dict[str, int]:
    """The first line of a relevant (score > 0) row of each of ``qids`` in a qrels file (read
    again only when the qrels name queries that ``queries.jsonl`` lacks, to name the line)."""
    from eci_core.io.loaders import _Lines

    out: dict[str, int] = {}
    for no, s in _Lines(qrels):
        parts = s.split("\t") if "\t" in s else s.split()
        q = parts[0].strip() if parts else ""
        if q in qids and q not in out:
            try:
                if float(parts[-1]) > 0:
                    out[q] = no
            except ValueError:
                continue
    return out


def read_negative_ids(path: str | Path) -> dict[str, list[str]]:
    """Read negatives by id: a TREC run (``qid Q0 docid rank score tag``, ordered by rank) or
    JSONL lines ``{"query_id": str, "negative_ids": [str, ...]}``. Returns query id → ids.

    Read by the loaders' negatives reader, so a bad line raises the loaders' :class:`LoadError`
    (``PATH:LINE: field 'F': message``, no value echoed). A TREC run with several tags gives each
    query its tags' lists merged by position in the list (the first ranks of every tag first,
    tags in file order)."""
    from eci_core.io.loaders import parse_negatives_file

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file (expected a TREC run or negative-ids JSONL)")
    runs = parse_negatives_file(path)
    if len(runs) == 1:
        return {q: [pid for pid, _ in v] for q, v in runs[0].negs.items()}
    merged: dict[str, list[tuple[int, int, str]]] = {}
    for r, run in enumerate(runs):
        for q, v in run.negs.items():
            merged.setdefault(q, []).extend((i, r, pid) for i, (pid, _) in enumerate(v))
    return {q: [pid for _, _, pid in sorted(v)] for q, v in merged.items()}


# ---------------------------------------------------------------------------------------- result
@dataclass
class MiningResult:
    """What a miner returned.

    ``negatives[qid]`` is the ranked list of ``(passage id, score)`` (best first) for every mined
    query, in ``query_ids`` order (a query may have fewer than ``num_negatives``).
    ``positive_scores[qid]`` is the lowest positive score under the same scorer (NaN for
    ``random``). ``skipped[param]`` is how many candidates each filter removed, out of
    ``n_candidates`` considered (the ``range_max`` window of non-positives, summed over queries).
    """

    method: str
    num_negatives: int
    query_ids: list[str]
    negatives: dict[str, list[tuple[str, float]]]
    positive_scores: dict[str, float]
    skipped: dict[str, int]
    n_candidates: int
    params: dict = field(default_factory=dict)
    n_extra: int = 0

    @property
    def n_negatives(self) -> int:
        return sum(len(v) for v in self.negatives.values())

    @property
    def short_queries(self) -> int:
        """Queries that got fewer than ``num_negatives`` mined negatives."""
        return sum(1 for q in self.query_ids if len(self.negatives[q]) < self.num_negatives)

    def skip_lines(self) -> list[str]:
        """sentence-transformers' report lines: "Skipped N potential negatives (x %) due to the
        <param> of <value>." (ratio over the candidates still in play when the filter ran) and
        "Could not find enough negatives for …"."""
        lines = []
        remaining = self.n_candidates
        for name in FILTERS:
            n = self.skipped.get(name, 0)
            if n:
                ratio = n / remaining if remaining else 0.0
                lines.append(
                    f"Skipped {n:,} potential negatives ({ratio:.2%}) due to the {name} of {self.params.get(name)}."
                )
                remaining -= n
        short = self.short_queries
        if short:
            first = "pool_size" if self.params.get("pool_size") else "range_max"
            fixes = [first] + [p for p in ("range_min", *FILTERS[:3]) if self.params.get(p) not in (None, 0)]
            what = fixes[0] if len(fixes) == 1 else ", ".join(fixes[:-1]) + " and " + fixes[-1]
            lines.append(
                f"Could not find enough negatives for {short} queries ({short / max(len(self.query_ids), 1):.2%})."
                f" Consider adjusting the {what} parameter{'s' if len(fixes) > 1 else ''} if you'd like to find more valid negatives."
            )
        return lines

    def stats_table(self) -> str:
        """The Positive / Negative / Difference table sentence-transformers prints (difference =
        positive − negative score per mined pair)."""
        pos = np.array([self.positive_scores[q] for q in self.query_ids], dtype=np.float64)
        neg, diff = [], []
        for q in self.query_ids:
            for _, s in self.negatives[q]:
                neg.append(s)
                diff.append(self.positive_scores[q] - s)
        cols = [pos, np.asarray(neg, dtype=np.float64), np.asarray(diff, dtype=np.float64)]
        row = "{:<6} {:>14} {:>14} {:>14}"
        lines = [
            row.format("Metric", "Positive", "Negative", "Difference"),
            row.format("Count", f"{len(pos):,}", f"{len(neg):,}", ""),
        ]
        stats = [
            ("Mean", np.mean), ("Median", np.median), ("Std", lambda a: np.std(a, ddof=1) if a.size > 1 else float("nan")),
            ("Min", np.min), ("25%", lambda a: np.quantile(a, 0.25)), ("50%", lambda a: np.quantile(a, 0.5)),
            ("75%", lambda a: np.quantile(a, 0.75)), ("Max", np.max),
        ]  # fmt: skip
        for name, fn in stats:
            vals = [f"{fn(c):.4f}" if c.size and np.isfinite(c).all() else "nan" for c in cols]
            lines.append(row.format(name, *vals))
        return "\n".join(lines)

    def summary(self, path: str | Path | None = None, written: int | None = None) -> str:
        """One line: negatives, queries, method, queries short of ``num_negatives``, output."""
        n = self.n_negatives if written is None else written
        extra = f", {self.n_extra:,} added from --add-negatives" if self.n_extra else ""
        out = f" -> {path}" if path is not None else ""
        return (
            f"Mined {n:,} negatives for {len(self.query_ids):,} queries with {self.method}{extra} "
            f"(mean {n / max(len(self.query_ids), 1):.2f} per query; {self.short_queries} queries with fewer than "
            f"{self.num_negatives}){out}"
        )

    def to_records(self, collection: Collection) -> list[QueryRecord]:
        """The result as loader records (ids resolved to texts in ``collection``), e.g. for
        ``collection.add_source(name, result.to_records(collection))``."""
        recs = []
        for qid in self.query_ids:
            qi = collection.query_index(qid)
            pos = [
                PassageRef(collection.passage_ids[p], collection.passage_texts[p])
                for p in collection.positives.get(qi, [])
            ]
            negs = [
                PassageRef(pid, collection.passage_texts[collection.passage_index(pid)], float(s))
                for pid, s in self.negatives[qid]
            ]
            recs.append(QueryRecord(qid, collection.query_texts[qi], pos, negs))
        return recs

    def add_to(self, collection: Collection, name: str | None = None) -> SourceReport:
        """Add the mined negatives to ``collection`` as a source (named after the method)."""
        return collection.add_source(name or self.method, self.to_records(collection), format="mined")


def write_trec_run(result: MiningResult, path: str | Path, tag: str | None = None) -> int:
    """Write ``qid Q0 docid rank score tag`` lines (queries in mining order, rank 1 = best) and
    return the number of lines. Ids containing whitespace cannot be written as TREC."""
    tag = tag or result.method
    if any(c.isspace() for c in tag) or not tag:
        raise ValueError(
            f"tag={tag!r}: a TREC tag must be one non-empty word without spaces (e.g. {result.method!r})"
        )
    lines = []
    for qid in result.query_ids:
        if any(c.isspace() for c in qid):
            raise ValueError(
                f"query id {qid!r} contains whitespace and cannot be written to a TREC run; rename it"
            )
        for rank, (pid, score) in enumerate(result.negatives[qid], start=1):
            if any(c.isspace() for c in pid):
                raise ValueError(
                    f"passage id {pid!r} contains whitespace and cannot be written to a TREC run; rename it"
                )
            lines.append(f"{qid} Q0 {pid} {rank} {score:.6f} {tag}\n")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        fh.writelines(lines)
    return len(lines)


# ---------------------------------------------------------------------------------------- params
@dataclass(frozen=True)
class _Params:
    num_negatives: int
    range_min: int
    range_max: int
    absolute_margin: float | None
    relative_margin: float | None
    max_score: float | None
    min_score: float | None
    sampling_strategy: str
    seed: int


def _check_params(method, num_negatives, range_min, range_max, absolute_margin, relative_margin, max_score, min_score,
                  sampling_strategy, seed, pool_size) -> _Params:  # fmt: skip
    if method not in METHODS:
        raise ValueError(f"method={method!r}: use one of {', '.join(METHODS)}")
    for name, v in (("num_negatives", num_negatives), ("range_min", range_min), ("seed", seed)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise ValueError(f"{name}={v!r}: must be an integer")
    if num_negatives < 1:
        raise ValueError(f"num_negatives={num_negatives}: must be >= 1 (e.g. 10)")
    if range_min < 0:
        raise ValueError(f"range_min={range_min}: must be >= 0 (0 keeps the best candidates)")
    for name, v in (("absolute_margin", absolute_margin), ("relative_margin", relative_margin),
                    ("max_score", max_score), ("min_score", min_score)):  # fmt: skip
        if v is not None and (
            not isinstance(v, (int, float, np.floating, np.integer)) or not math.isfinite(v)
        ):
            raise ValueError(f"{name}={v!r}: must be a finite number or None")
    if absolute_margin is not None and absolute_margin < 0:
        raise ValueError(
            f"absolute_margin={absolute_margin}: must be >= 0 (a candidate is dropped if its score + margin > the positive's)"
        )
    if relative_margin is not None and not 0 <= relative_margin < 1:
        raise ValueError(
            f"relative_margin={relative_margin}: must be in [0, 1) (e.g. 0.05 keeps negatives below 95 % of the positive score)"
        )
    if max_score is not None and min_score is not None and min_score > max_score:
        raise ValueError(f"min_score={min_score} must be <= max_score={max_score}")
    if sampling_strategy not in ("top", "random"):
        raise ValueError(f"sampling_strategy={sampling_strategy!r}: use 'top' or 'random'")
    if method == "random":
        given = [n for n, v in (("absolute_margin", absolute_margin), ("relative_margin", relative_margin),
                                ("max_score", max_score), ("min_score", min_score)) if v is not None]  # fmt: skip
        if given:
            raise ValueError(f"{given[0]}={locals()[given[0]]}: the random miner has no relevance score to filter on; "
                             "remove it or use method 'bm25' or 'dense'")  # fmt: skip
        if range_min or range_max is not None or sampling_strategy != "top":
            raise ValueError("range_min/range_max/sampling_strategy do not apply to method 'random' (it already samples "
                             "uniformly); leave them at their defaults")  # fmt: skip
    if pool_size is not None and range_min + num_negatives > _pool_capacity(method, pool_size):
        raise ValueError(
            f"pool_size={pool_size}: too small for range_min + num_negatives = {range_min + num_negatives}; increase it"
        )
    if method == "bm25+ce" and absolute_margin is None:
        absolute_margin = BM25CE_DEFAULT_MARGIN
    filtered = any(v is not None for v in (absolute_margin, relative_margin, max_score, min_score))
    if range_max is None:
        if pool_size is not None:  # cross-encoder methods: every reranked candidate is in the window
            range_max = _pool_capacity(method, pool_size)
        else:
            range_max = range_min + num_negatives * (10 if filtered else 1)
    if isinstance(range_max, bool) or not isinstance(range_max, (int, np.integer)):
        raise ValueError(f"range_max={range_max!r}: must be an integer or None")
    if range_max <= range_min:
        raise ValueError(f"range_max={range_max} must be > range_min={range_min}")
    if num_negatives > range_max - range_min:
        raise ValueError(
            f"num_negatives={num_negatives}: only range_max - range_min = {range_max - range_min} candidates remain "
            f"after skipping range_min={range_min} of range_max={range_max}; decrease num_negatives or range_min, or "
            "increase range_max"
        )
    return _Params(int(num_negatives), int(range_min), int(range_max), absolute_margin, relative_margin, max_score,
                   min_score, sampling_strategy, int(seed))  # fmt: skip


def _pool_capacity(method: str, pool_size: int) -> int:
    return 2 * pool_size if method == "cross-encoder" else pool_size


# ---------------------------------------------------------------------------------------- scorers
class _Bm25:
    """BM25 over the corpus (bm25s, Lucene BM25, English stop words)."""

    def __init__(self, texts: Sequence[str], progress: Progress | None = None):
        import bm25s

        if progress:
            progress("BM25 index", 0, 1)
        self._bm25s = bm25s
        self.n = len(texts)
        self.retriever = bm25s.BM25()
        self.retriever.index(
            bm25s.tokenize(list(texts), stopwords="en", show_progress=False), show_progress=False
        )
        if progress:
            progress("BM25 index", 1, 1)

    def _tokens(self, texts: Sequence[str]) -> list[list[str]]:
        toks = self._bm25s.tokenize(list(texts), stopwords="en", return_ids=False, show_progress=False)
        return [list(t) for t in toks]

    def block(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), n_passages) float32 BM25 scores."""
        out = np.zeros((len(texts), self.n), dtype=np.float32)
        for i, toks in enumerate(self._tokens(texts)):
            if toks:
                out[i] = self.retriever.get_scores(toks)
        return out

    def pairs(self, q_texts: Sequence[str], p_idx: np.ndarray) -> np.ndarray:
        return np.array([self.block([q])[0, p] for q, p in zip(q_texts, p_idx)], dtype=np.float32)


class _Dense:
    """Cosine similarities of L2-normalised embeddings from ``encoders.embed``."""

    def __init__(self, encoder, passage_texts, cache=None, progress: Progress | None = None):
        from eci_core.models.encoding import embed

        self._embed = embed
        self.encoder = encoder
        self.cache = cache
        self.progress = progress
        self.p_emb = np.ascontiguousarray(
            embed(encoder, list(passage_texts), "passage", cache=cache, progress=progress), dtype=np.float32
        )
        self.n = self.p_emb.shape[0]

    def queries(self, texts: Sequence[str]) -> np.ndarray:
        return np.ascontiguousarray(
            self._embed(self.encoder, list(texts), "query", cache=self.cache, progress=self.progress),
            dtype=np.float32,
        )


def _resolve_encoder(encoder):
    from eci_core.models.registry import load_encoder

    return load_encoder(encoder) if encoder is None or isinstance(encoder, (str, Path)) else encoder


def _resolve_cross_encoder(cross_encoder):
    from eci_core.models.registry import load_cross_encoder

    if cross_encoder is None or isinstance(cross_encoder, (str, Path)):
        ce = load_cross_encoder(None if cross_encoder is None else str(cross_encoder))
        if ce is None:
            raise ValueError(
                f"cross_encoder={cross_encoder!r}: this method needs a cross-encoder; use the bundled default (None)"
            )
        return ce
    return cross_encoder


def _topk_rows(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the ``k`` best columns sorted by score (desc), ties by column index; cells
    scoring -inf come back as index -1. ``scores`` is only read."""
    n = scores.shape[1]
    k = min(k, n)
    if k <= 0:
        return np.full((scores.shape[0], 0), -1, np.int64), np.full((scores.shape[0], 0), -np.inf, np.float32)
    if k < n:
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        # argpartition picks arbitrarily among scores tied with the k-th: break ties by index
        kth = np.take_along_axis(scores, part, axis=1).min(axis=1)
        for r in np.flatnonzero((scores >= kth[:, None]).sum(axis=1) > k):
            above = np.flatnonzero(scores[r] > kth[r])
            tied = np.flatnonzero(scores[r] == kth[r])
            part[r] = np.concatenate([above, tied[: k - above.size]])
    else:
        part = np.broadcast_to(np.arange(n), scores.shape).copy()
    top = np.take_along_axis(scores, part, axis=1)
    order = np.lexsort((part, -top), axis=1)
    idx = np.take_along_axis(part, order, axis=1).astype(np.int64)
    sc = np.take_along_axis(top, order, axis=1)
    idx[~np.isfinite(sc) & (sc < 0)] = -1
    return idx, sc


def _chunk_size(n_passages: int, cap: int = 1024) -> int:
    return max(1, min(cap, _BLOCK_FLOATS // max(n_passages, 1)))


# ---------------------------------------------------------------------------------------- mining
def mine(
    data: Collection | str | Path,
    method: str,
    num_negatives: int = 10,
    *,
    range_min: int = 0,
    range_max: int | None = None,
    absolute_margin: float | None = None,
    relative_margin: float | None = None,
    max_score: float | None = None,
    min_score: float | None = None,
    sampling_strategy: str = "top",
    seed: int = 0,
    encoder=None,
    cross_encoder=None,
    pool_size: int | None = None,
    exclude_ids: Iterable[str] = (),
    exclude_prefixes: Sequence[str] = (),
    extra_negatives: Mapping[str, Sequence[str]] | None = None,
    cache=None,
    split: str = "test",
    progress: Progress | None = None,
) -> MiningResult:
    """Mine ``num_negatives`` hard negatives per query with positives (see the module docstring).

    Args:
        data: a :class:`Collection` (its passages are the corpus, its ``positives`` the labels) or
            a BEIR directory (read with :func:`read_beir`, ``split`` selects the qrels).
        method: ``"bm25"``, ``"dense"``, ``"cross-encoder"``, ``"bm25+ce"`` or ``"random"``.
        num_negatives, range_min, range_max, absolute_margin, relative_margin, max_score,
            min_score, sampling_strategy, seed: as in sentence-transformers'
            ``mine_hard_negatives`` (module docstring). ``bm25+ce`` defaults ``absolute_margin``
            to ``BM25CE_DEFAULT_MARGIN`` (1.0 logit).
        encoder: bi-encoder for ``dense`` / ``cross-encoder`` (an Encoder, or a name/path for
            ``encoders.load_encoder``; None = bundled MiniLM).
        cross_encoder: a CrossEncoderModel or a name/path (None = bundled ONNX).
        pool_size: candidates per retriever before cross-encoder rescoring (default 50 for
            ``cross-encoder``, 100 for ``bm25+ce``).
        exclude_ids, exclude_prefixes: passages never returned (e.g. ``("llm-",)``).
        extra_negatives: query id → passage ids added to that query's mined negatives without
            filtering (except positives), scored by the method's scorer and merged by score.
        cache: an ``encoders.EmbeddingCache`` for embeddings and cross-encoder scores.
        progress: ``progress(stage, done, total)``.

    Returns:
        :class:`MiningResult`. Raises ``ValueError`` naming a bad parameter.
    """
    if pool_size is not None and (
        isinstance(pool_size, bool) or not isinstance(pool_size, (int, np.integer)) or pool_size < 1
    ):
        raise ValueError(f"pool_size={pool_size!r}: must be a positive integer (e.g. 50)")
    if pool_size is not None and method not in DEFAULT_POOL_SIZE:
        raise ValueError(
            f"pool_size={pool_size}: only used by methods 'cross-encoder' and 'bm25+ce'; remove it"
        )
    if method in DEFAULT_POOL_SIZE and pool_size is None:
        pool_size = DEFAULT_POOL_SIZE[method]
    prm = _check_params(method, num_negatives, range_min, range_max, absolute_margin, relative_margin, max_score,
                        min_score, sampling_strategy, seed, pool_size)  # fmt: skip
    coll = data if isinstance(data, Collection) else read_beir(data, split=split)
    n = coll.n_passages
    q_list = np.array(sorted(q for q, ps in coll.positives.items() if ps), dtype=np.int64)
    if q_list.size == 0:
        raise ValueError("data has no query with a labelled positive: nothing to mine")
    excluded = np.zeros(n, dtype=bool)
    ex_ids = list(exclude_ids)
    for pid in ex_ids:
        if coll.has_passage(pid):
            excluded[coll.passage_index(pid)] = True
    prefixes = tuple(p for p in exclude_prefixes if p)
    if prefixes:
        excluded |= np.fromiter((pid.startswith(prefixes) for pid in coll.passage_ids), dtype=bool, count=n)
    extra = _resolve_extra(coll, extra_negatives, q_list)
    rng = np.random.default_rng(prm.seed)
    ctx = _Ctx(coll, q_list, excluded, prm, rng, progress)

    if method == "random":
        res = _mine_random(ctx, extra)
    elif method in ("bm25", "dense"):
        res = _mine_scored(ctx, method, encoder, cache, extra)
    else:
        res = _mine_ce(ctx, method, encoder, cross_encoder, pool_size, cache, extra)
    res.params = {
        "num_negatives": prm.num_negatives, "range_min": prm.range_min, "range_max": prm.range_max,
        "absolute_margin": prm.absolute_margin, "relative_margin": prm.relative_margin, "max_score": prm.max_score,
        "min_score": prm.min_score, "sampling_strategy": prm.sampling_strategy, "seed": prm.seed,
        "pool_size": pool_size, "exclude_prefixes": list(prefixes), "exclude_ids": len(ex_ids),
    }  # fmt: skip
    return res


@dataclass
class _Ctx:
    coll: Collection
    q_list: np.ndarray
    excluded: np.ndarray
    prm: _Params
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


def _select(cand_idx: np.ndarray, cand_score: np.ndarray, pos_score: np.ndarray, prm: _Params,
            rng: np.random.Generator, skipped: dict[str, int]) -> tuple[np.ndarray, int]:  # fmt: skip
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


def _collect(ctx: _Ctx, method: str, rows_q: np.ndarray, cand_idx, cand_score, keep, pos_score_all,
             extra_scored: dict[int, list[tuple[int, float]]], skipped, n_cand) -> MiningResult:  # fmt: skip
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


def _resolve_extra(coll: Collection, extra, q_list) -> dict[int, list[int]]:
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
                    f"extra negatives: passage {pid!r} (query {qid!r}) is not in the corpus; add it to corpus.jsonl"
                )
            pi = coll.passage_index(pid)
            if pi not in pos and pi not in lst:
                lst.append(pi)
    return out


def _mine_random(ctx: _Ctx, extra: dict[int, list[int]]) -> MiningResult:
    """Uniform sample without replacement of ``num_negatives`` non-positive, non-excluded
    passages per query; score = a U(0, 1) key, sorted descending."""
    coll, prm, rng = ctx.coll, ctx.prm, ctx.rng
    allowed = np.flatnonzero(~ctx.excluded)
    k = prm.num_negatives
    nq = ctx.q_list.size
    cand_idx = np.full((nq, k), -1, dtype=np.int64)
    cand_score = np.full((nq, k), -np.inf)
    for r, q in enumerate(ctx.q_list):
        pos = np.asarray(coll.positives[int(q)], dtype=np.int64)
        pool_n = allowed.size
        take = min(k + pos.size, pool_n)
        draw = allowed[rng.choice(pool_n, size=take, replace=False)]
        draw = draw[~np.isin(draw, pos)][:k]
        keys = np.sort(rng.random(draw.size))[::-1]
        cand_idx[r, : draw.size] = draw
        cand_score[r, : draw.size] = keys
        ctx.tick("Sampling", r + 1, nq)
    keep = cand_idx >= 0
    extra_scored = {q: [(p, float(rng.random())) for p in ps] for q, ps in extra.items()}
    return _collect(
        ctx,
        "random",
        ctx.q_list,
        cand_idx,
        cand_score,
        keep,
        np.full(nq, np.nan),
        extra_scored,
        {},
        int(keep.sum()),
    )


def _score_blocks(ctx: _Ctx, method: str, scorer) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(rows of q_list, float32 block (rows, n_passages)) for BM25 or dense, in query chunks."""
    coll = ctx.coll
    n = coll.n_passages
    chunk = _chunk_size(n, cap=256 if method == "bm25" else 1024)
    nq = ctx.q_list.size
    stage = "BM25 retrieval" if method == "bm25" else "Dense retrieval"
    for start in range(0, nq, chunk):
        rows = np.arange(start, min(start + chunk, nq))
        texts = [coll.query_texts[int(q)] for q in ctx.q_list[rows]]
        if method == "bm25":
            block = scorer.block(texts)
        else:
            block = scorer.queries(texts) @ scorer.p_emb.T
        yield rows, block
        ctx.tick(stage, int(rows[-1]) + 1, nq)


def _make_scorer(ctx: _Ctx, method: str, encoder, cache):
    if method == "bm25":
        return _Bm25(ctx.coll.passage_texts, ctx.progress)
    return _Dense(_resolve_encoder(encoder), ctx.coll.passage_texts, cache=cache, progress=ctx.progress)


def _pair_scorer(ctx: _Ctx, method: str, scorer) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    coll = ctx.coll
    if method == "bm25":

        def f(qs, ps):
            out = np.empty(len(qs), dtype=np.float64)
            for q in np.unique(qs):
                m = qs == q
                out[m] = scorer.block([coll.query_texts[int(q)]])[0, ps[m]]
            return out

        return f

    def g(qs, ps):
        uq, inv = np.unique(qs, return_inverse=True)
        qe = scorer.queries([coll.query_texts[int(q)] for q in uq])
        return np.einsum("ij,ij->i", qe[inv], scorer.p_emb[ps]).astype(np.float64)

    return g


def _retrieve(ctx: _Ctx, method: str, scorer, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` non-positive, non-excluded passages per query of ``q_list`` by ``method``:
    (nq, k) indices (-1 = none) and float32 scores, sorted by score descending."""
    nq = ctx.q_list.size
    k = min(k, ctx.coll.n_passages)
    all_idx = np.full((nq, k), -1, dtype=np.int64)
    all_sc = np.full((nq, k), -np.inf, dtype=np.float32)
    ex_cols = np.flatnonzero(ctx.excluded)
    for rows, block in _score_blocks(ctx, method, scorer):
        if ex_cols.size:
            block[:, ex_cols] = -np.inf
        pr = [(r, p) for r, q in enumerate(ctx.q_list[rows]) for p in ctx.coll.positives[int(q)]]
        if pr:
            pr_a = np.asarray(pr, dtype=np.int64)
            block[pr_a[:, 0], pr_a[:, 1]] = -np.inf
        idx, sc = _topk_rows(block, k)
        all_idx[rows, : idx.shape[1]] = idx
        all_sc[rows, : sc.shape[1]] = sc
        del block
    return all_idx, all_sc


def _mine_scored(ctx: _Ctx, method: str, encoder, cache, extra) -> MiningResult:
    scorer = _make_scorer(ctx, method, encoder, cache)
    cand_idx, cand_score = _retrieve(ctx, method, scorer, ctx.prm.range_max)
    pair = _pair_scorer(ctx, method, scorer)
    pos_score = ctx.min_positive(pair)
    skipped: dict[str, int] = {}
    keep, n_cand = _select(cand_idx, cand_score, pos_score, ctx.prm, ctx.rng, skipped)
    extra_scored = _score_extra(extra, pair)
    return _collect(
        ctx, method, ctx.q_list, cand_idx, cand_score, keep, pos_score, extra_scored, skipped, n_cand
    )


def _score_extra(extra: dict[int, list[int]], pair) -> dict[int, list[tuple[int, float]]]:
    if not extra:
        return {}
    qs = np.array([q for q, ps in extra.items() for _ in ps], dtype=np.int64)
    ps = np.array([p for _, pl in extra.items() for p in pl], dtype=np.int64)
    sc = pair(qs, ps) if qs.size else np.zeros(0)
    out: dict[int, list[tuple[int, float]]] = {}
    for q, p, s in zip(qs, ps, sc):
        out.setdefault(int(q), []).append((int(p), float(s)))
    return out


def _mine_ce(ctx: _Ctx, method: str, encoder, cross_encoder, pool_size: int, cache, extra) -> MiningResult:
    """Pool candidates (BM25, plus dense for ``cross-encoder``), rescore with the cross-encoder."""
    from eci_core.models.encoding import cross_scores

    coll, nq = ctx.coll, ctx.q_list.size
    ce = _resolve_cross_encoder(cross_encoder)
    pools = [_retrieve(ctx, "bm25", _make_scorer(ctx, "bm25", None, None), pool_size)[0]]
    if method == "cross-encoder":
        pools.append(_retrieve(ctx, "dense", _make_scorer(ctx, "dense", encoder, cache), pool_size)[0])
    pool = np.concatenate(pools, axis=1)
    # union per row, first occurrence kept, -1 dropped
    rows_q, rows_p = [], []
    for r in range(nq):
        ids = pool[r][pool[r] >= 0]
        _, first = np.unique(ids, return_index=True)
        ids = ids[np.sort(first)]
        rows_q.append(np.full(ids.size, r, dtype=np.int64))
        rows_p.append(ids)
    rq = np.concatenate(rows_q)
    rp = np.concatenate(rows_p)

    def pair(qi_rows_or_q: np.ndarray, ps: np.ndarray, by_row: bool = False) -> np.ndarray:
        qs = ctx.q_list[qi_rows_or_q] if by_row else qi_rows_or_q
        texts = [(coll.query_texts[int(q)], coll.passage_texts[int(p)]) for q, p in zip(qs, ps)]
        prog = (lambda stage, d, t: ctx.tick("Cross-encoder", d, t)) if ctx.progress else None
        return np.asarray(cross_scores(ce, texts, cache=cache, progress=prog), dtype=np.float64)

    # one cross-encoder pass over pool pairs and positive pairs (the cache dedups repeats)
    pos_q, pos_p = [], []
    for q in ctx.q_list:
        for p in coll.positives[int(q)]:
            pos_q.append(int(q))
            pos_p.append(p)
    all_scores = pair(np.concatenate([ctx.q_list[rq], np.asarray(pos_q, np.int64)]),
                      np.concatenate([rp, np.asarray(pos_p, np.int64)]))  # fmt: skip
    cand_sc_flat = all_scores[: rq.size]
    pos_flat = all_scores[rq.size :]
    pos_score = np.full(nq, np.inf)
    np.minimum.at(pos_score, np.searchsorted(ctx.q_list, np.asarray(pos_q, np.int64)), pos_flat)
    width = max((a.size for a in rows_p), default=0)
    cand_idx = np.full((nq, max(width, 1)), -1, dtype=np.int64)
    cand_score = np.full((nq, max(width, 1)), -np.inf)
    off = 0
    for r, ids in enumerate(rows_p):
        cand_idx[r, : ids.size] = ids
        cand_score[r, : ids.size] = cand_sc_flat[off : off + ids.size]
        off += ids.size
    order = np.lexsort((np.where(cand_idx < 0, np.iinfo(np.int64).max, cand_idx), -cand_score), axis=1)
    cand_idx = np.take_along_axis(cand_idx, order, axis=1)
    cand_score = np.take_along_axis(cand_score, order, axis=1)
    skipped: dict[str, int] = {}
    keep, n_cand = _select(cand_idx, cand_score, pos_score, ctx.prm, ctx.rng, skipped)
    extra_scored = _score_extra(extra, pair)
    return _collect(
        ctx, method, ctx.q_list, cand_idx, cand_score, keep, pos_score, extra_scored, skipped, n_cand
    )


# ---------------------------------------------------------------------------------------- evaluation
def retrieval_metrics(
    data: Collection | str | Path,
    method: str,
    ks: Sequence[int] = (1, 10),
    *,
    encoder=None,
    cache=None,
    exclude_prefixes: Sequence[str] = (),
    split: str = "test",
    progress: Progress | None = None,
) -> dict[str, float]:
    """Retrieval quality of ``bm25`` or ``dense`` on the labelled queries (exhaustive ranking).

    For query q with positives P_q, rank(p) = 1 + #{non-positive passages d : s(q, d) ≥ s(q, p)}
    (ties counted against the positive). R@k = mean_q |{p ∈ P_q : rank(p) ≤ k}| / |P_q| (with
    one positive, the hit rate); MRR = mean_q 1 / min_{p ∈ P_q} rank(p). Passages with an id in
    ``exclude_prefixes`` are not ranked.
    """
    if method not in ("bm25", "dense"):
        raise ValueError(f"method={method!r}: retrieval metrics are computed for 'bm25' or 'dense'")
    for k in ks:
        if int(k) < 1:
            raise ValueError(f"ks={list(ks)}: every cut-off must be >= 1")
    coll = data if isinstance(data, Collection) else read_beir(data, split=split)
    n = coll.n_passages
    q_list = np.array(sorted(q for q, ps in coll.positives.items() if ps), dtype=np.int64)
    excluded = np.zeros(n, dtype=bool)
    prefixes = tuple(p for p in exclude_prefixes if p)
    if prefixes:
        excluded = np.fromiter((pid.startswith(prefixes) for pid in coll.passage_ids), dtype=bool, count=n)
    prm = _Params(1, 0, 1, None, None, None, None, "top", 0)
    ctx = _Ctx(coll, q_list, excluded, prm, np.random.default_rng(0), progress)
    scorer = _make_scorer(ctx, method, encoder, cache)
    recall = {int(k): 0.0 for k in ks}
    rr = 0.0
    for rows, block in _score_blocks(ctx, method, scorer):
        block[:, excluded] = -np.inf
        for r, q in enumerate(q_list[rows]):
            pos = np.asarray(coll.positives[int(q)], dtype=np.int64)
            ps = block[r, pos]
            rest = block[r].copy()
            rest[pos] = -np.inf
            srt = np.sort(rest)
            ranks = 1 + (srt.size - np.searchsorted(srt, ps, side="left"))
            for k in recall:
                recall[k] += float(np.mean(ranks <= k))
            rr += 1.0 / float(ranks.min())
    nq = max(q_list.size, 1)
    out = {f"R@{k}": v / nq for k, v in recall.items()}
    out["MRR"] = rr / nq
    return out


# ---------------------------------------------------------------------------------------- sweep
#: The sources ``eci mine --sweep`` writes: (name, method, parameters); ``"+llm"`` names add the
#: ``--add-negatives`` file (e.g. the LLM-written negatives) to the mined ones. Windows sample
#: 10 negatives uniformly (seeded) from the given rank window, so K stays 10.
SWEEP: tuple[tuple[str, str, dict], ...] = (
    ("dense-1-5", "dense", {"num_negatives": 5}),
    ("dense-11-30", "dense", {"range_min": 10, "range_max": 30, "sampling_strategy": "random"}),
    ("dense-31-100", "dense", {"range_min": 30, "range_max": 100, "sampling_strategy": "random"}),
    ("dense-percpos-0", "dense", {"relative_margin": 0.0}),
    ("dense-percpos-0.1", "dense", {"relative_margin": 0.1}),
    ("dense-percpos-0.2", "dense", {"relative_margin": 0.2}),
    ("bm25-11-30", "bm25", {"range_min": 10, "range_max": 30, "sampling_strategy": "random"}),
    ("bm25-31-100", "bm25", {"range_min": 30, "range_max": 100, "sampling_strategy": "random"}),
    ("bm25-percpos-0.05", "bm25", {"relative_margin": 0.05}),
    ("ce-denoised", "cross-encoder", {"absolute_margin": 1.0}),
    ("ce-11-30", "cross-encoder", {"range_min": 10, "range_max": 30, "sampling_strategy": "random"}),
    ("bm25ce-m0", "bm25+ce", {"absolute_margin": 0.0}),
    ("bm25ce-m3", "bm25+ce", {"absolute_margin": 3.0}),
    ("dense+llm", "dense", {"extra": True}),
    ("dense-percpos+llm", "dense", {"relative_margin": 0.05, "extra": True}),
    ("bm25+llm", "bm25", {"extra": True}),
    ("random+llm", "random", {"extra": True}),
)


def mine_sweep(
    data: Collection | str | Path,
    out_dir: str | Path,
    *,
    extra_negatives: Mapping[str, Sequence[str]] | None = None,
    exclude_prefixes: Sequence[str] = (),
    seed: int = 0,
    encoder=None,
    cross_encoder=None,
    cache=None,
    split: str = "test",
    only: Sequence[str] | None = None,
    progress: Progress | None = None,
) -> list[tuple[str, MiningResult, Path, int]]:
    """Mine every source of :data:`SWEEP` (or the names in ``only``) from one corpus and write
    each as ``out_dir/<name>.trec`` (tag = name). The ``+llm`` sources need ``extra_negatives``
    and are skipped without it. Returns ``(name, result, path, lines written)`` per source."""
    coll = data if isinstance(data, Collection) else read_beir(data, split=split)
    names = [s[0] for s in SWEEP]
    if only:
        unknown = [n for n in only if n not in names]
        if unknown:
            raise ValueError(f"sweep source {unknown[0]!r} is unknown; choose from {', '.join(names)}")
    enc = _resolve_encoder(encoder)
    chosen = [s for s in SWEEP if not only or s[0] in only]
    ce = _resolve_cross_encoder(cross_encoder) if any(m in DEFAULT_POOL_SIZE for _, m, _ in chosen) else None
    out = []
    for name, method, params in SWEEP:
        if only and name not in only:
            continue
        kw = dict(params)
        wants_extra = kw.pop("extra", False)
        if wants_extra and not extra_negatives:
            continue
        res = mine(
            coll,
            method,
            exclude_prefixes=exclude_prefixes,
            seed=seed,
            encoder=enc,
            cross_encoder=ce,
            cache=cache,
            extra_negatives=extra_negatives if wants_extra else None,
            progress=progress,
            **kw,
        )
        path = Path(out_dir) / f"{name}.trec"
        out.append((name, res, path, write_trec_run(res, path, tag=name)))
    return out
