"""Score negative sources with ECI: ``score_collection()`` → :class:`ScoreResult`.

``score_collection`` embeds every unique query and passage text once with the target encoder
(queries as queries, passages as passages), scores every source with
:func:`eci_core.scoring.arrays.score_arrays` and returns the tables of :class:`ScoreResult` (ids as
strings). Definitions: ``shared/spec/ECI.md`` and :mod:`eci_core.metrics.eci`. The package:

* ``arrays``: ``score_arrays`` and ``ArrayScores``, one source from embedding matrices and index
  arrays (what the benchmark times and the Ray engine runs per batch);
* ``tables``: the output tables' columns, a source's summary row with its bootstrap intervals,
  the ``beats`` matrix and the pairs table's categorical columns;
* ``texts``: text keys up to whitespace and the within-query duplicate-text drop;
* this module: ``score_collection`` (embedding, the per-source loop, the tables assembled).

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

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np

from eci_core.config import ECIConfig
from eci_core.scoring.arrays import ArrayScores, score_arrays
from eci_core.scoring.tables import PairColumns, QUERY_COLUMNS, SOURCE_COLUMNS, beats, source_summary
from eci_core.scoring.texts import dedup_text, text_keys

if TYPE_CHECKING:
    import pandas as pd


@dataclass
class ScoreResult:
    """The tables of one scoring run (see docs/ARCHITECTURE.md, "Scoring output")."""

    pairs: "pd.DataFrame"
    queries: "pd.DataFrame"
    sources: "pd.DataFrame"
    beats: "pd.DataFrame"
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
        keep[name] = dedup_text(collection.sources[name], text_key)
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
    cols = PairColumns(sum(n_kept.values()), collection, names)
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
