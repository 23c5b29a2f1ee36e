"""2-D projections (PCA / UMAP) of query and passage embeddings for the Projection page.

* :func:`project` maps an ``(n, dim)`` embedding matrix to ``(n, 2)`` coordinates: PCA with
  numpy (instant) or UMAP (umap-learn, imported lazily; ~12 s of numba compilation the
  first time in a process). UMAP coordinates are cached on disk as ``.npy`` files keyed by a
  hash of the embedding bytes and the parameters.
* :func:`stratified_sample` keeps at most ``max_points`` points with every stratum represented
  proportionally (at least one point each).
* :func:`projection_frame` builds the point table (queries, positives and the negatives of the
  chosen sources) with the matching embedding rows; :func:`project_points` adds ``x``, ``y``.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Literal, Sequence

import numpy as np
import pandas as pd

from eci_core.explore.common import BUILT_ONCE_NOTE, CONTINUOUS_SCALE, require_columns, source_colors
from eci_core.explore.memo import memo

__all__ = [
    "pca_2d",
    "project",
    "stratified_sample",
    "projection_cache_dir",
    "projection_key",
    "ProjectionData",
    "projection_frame",
    "project_points",
    "collection_embeddings",
    "KINDS",
    "projection_figure",
]

Method = Literal["umap", "pca"]
#: The kinds of points a projection can show.
KINDS = ("query", "positive", "negative")


# --------------------------------------------------------------------------- projection
def pca_2d(x: np.ndarray) -> np.ndarray:
    """First two principal components, float32 (n, 2).

    With ``X_c = X − mean(X)`` and the thin SVD ``X_c = U Σ Vᵀ``, coordinates are
    ``U[:, :2] · Σ[:2] = X_c · V[:, :2]``. When n ≥ dim, ``V`` is taken from the eigenvectors of
    the dim × dim scatter matrix ``X_cᵀ X_c = V Σ² Vᵀ`` (``numpy.linalg.eigh``: the same axes,
    ~30× faster than a thin SVD of a 5 000 × 256 matrix); else from ``numpy.linalg.svd``. Each
    axis' sign is fixed so that its loading of largest magnitude is positive (deterministic across
    runs). Missing components (n < 2, rank < 2) are zeros."""
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[0]
    out = np.zeros((n, 2), dtype=np.float64)
    if n < 2:
        return out.astype(np.float32)
    xc = x - x.mean(axis=0, keepdims=True)
    if n >= x.shape[1]:
        w, v = np.linalg.eigh(xc.T @ xc)
        order = np.argsort(w)[::-1]
        w, vt = w[order], v[:, order].T
        rank = int((w > max(w[0], 0.0) * 1e-12).sum()) if w.size and w[0] > 0 else 0
    else:
        _, s, vt = np.linalg.svd(xc, full_matrices=False)
        rank = int((s > (s[0] if s.size else 0.0) * 1e-9).sum()) if s.size and s[0] > 0 else 0
    k = min(2, rank)
    for i in range(k):
        j = int(np.argmax(np.abs(vt[i])))
        if vt[i, j] < 0:
            vt[i] = -vt[i]
    out[:, :k] = xc @ vt[:k].T
    return out.astype(np.float32)


def projection_cache_dir(cache: Any = None) -> Path:
    """Where UMAP coordinates are cached: ``<EmbeddingCache directory>/projections`` when an
    ``EmbeddingCache`` (anything with a ``directory`` attribute) or a path is given, else
    ``$ECI_CACHE_DIR/projections`` or ``~/.cache/eci-explorer/projections``."""
    if cache is not None:
        d = getattr(cache, "directory", cache)
        return Path(d).expanduser() / "projections"
    base = os.environ.get("ECI_CACHE_DIR")
    return (Path(base).expanduser() if base else Path.home() / ".cache" / "eci-explorer") / "projections"


def projection_key(x: np.ndarray, **params: Any) -> str:
    """sha1 of (shape, dtype, C-order bytes of the float32 matrix, JSON of the sorted params)."""
    a = np.ascontiguousarray(np.asarray(x, dtype=np.float32))
    h = hashlib.sha1()
    h.update(f"{a.shape}|{a.dtype.str}|".encode())
    h.update(a.tobytes())
    h.update(json.dumps(params, sort_keys=True, default=str).encode())
    return h.hexdigest()


def _validate(method: str, n_neighbors: int, min_dist: float, metric: str) -> None:
    if method not in ("umap", "pca"):
        raise ValueError(f"method={method!r}: use 'umap' or 'pca' (instant)")
    if method == "umap":
        if int(n_neighbors) < 2:
            raise ValueError(f"n_neighbors={n_neighbors}: must be >= 2 (e.g. 15)")
        if not 0.0 <= float(min_dist) <= 1.0:
            raise ValueError(f"min_dist={min_dist}: must be between 0 and 1 (e.g. 0.1)")
        if metric not in ("cosine", "euclidean", "manhattan", "correlation", "dot"):
            raise ValueError(f"metric={metric!r}: use 'cosine' (default) or 'euclidean'")


def project(
    embeddings: np.ndarray,
    method: Method = "umap",
    n_neighbors: int = 15,
    min_dist: float = 0.1,
    metric: str = "cosine",
    seed: int = 42,
    cache: Any = None,
    use_cache: bool = True,
    progress: Callable[[str, int, int], None] | None = None,
) -> np.ndarray:
    """2-D coordinates (n, 2) float32 of ``embeddings`` (n, dim).

    * ``method="pca"``: :func:`pca_2d` (numpy; instant; never cached).
    * ``method="umap"``: ``umap.UMAP(n_components=2, n_neighbors=min(n_neighbors, n − 1),
      min_dist, metric, random_state=seed, init="pca")``; with fewer than 4 points UMAP is not
      defined and PCA is returned. The result is cached as ``<projection_cache_dir>/<key>.npy``
      (``key`` = :func:`projection_key` of the embeddings and every parameter) and read back with
      ``allow_pickle=False``; ``use_cache=False`` skips the cache.
    """
    _validate(method, n_neighbors, min_dist, metric)
    x = np.asarray(embeddings, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"embeddings must be a 2-D (n, dim) array, got shape {x.shape}")
    n = x.shape[0]
    if method == "pca" or n < 4:
        return pca_2d(x)
    nn = int(min(int(n_neighbors), n - 1))
    params = dict(method="umap", n_neighbors=nn, min_dist=float(min_dist), metric=metric, seed=int(seed), v=1)
    path = None
    if use_cache:
        path = projection_cache_dir(cache) / f"{projection_key(x, **params)}.npy"
        if path.is_file():
            try:
                arr = np.load(path, allow_pickle=False)
                if arr.shape == (n, 2):
                    return arr.astype(np.float32)
            except (OSError, ValueError):
                pass  # a damaged cache file is recomputed and overwritten
    if progress:
        progress("umap", 0, 1)
    import warnings

    import umap  # heavy (numba), imported lazily

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reducer = umap.UMAP(
            n_components=2,
            n_neighbors=nn,
            min_dist=float(min_dist),
            metric=metric,
            random_state=int(seed),
            init="pca",
            low_memory=True,
        )
        coords = np.asarray(reducer.fit_transform(x), dtype=np.float32)
    if progress:
        progress("umap", 1, 1)
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp.npy")
            np.save(tmp, coords, allow_pickle=False)
            os.replace(tmp, path)
        except OSError:
            pass  # a read-only cache directory only costs a recomputation next time
    return coords


# --------------------------------------------------------------------------- sampling
def stratified_sample(
    labels: Sequence[Any] | np.ndarray, max_points: int = 20000, seed: int = 0
) -> np.ndarray:
    """Sorted indices of at most ``max_points`` items, stratified by ``labels``.

    With n ≤ max_points every index is returned. Otherwise stratum ``h`` of size ``n_h`` gets
    ``max(1, floor(max_points · n_h / n))`` points, then the points still free go to the strata
    with the largest remainders ``max_points · n_h / n − floor(…)`` (Hamilton's method), so every
    stratum is represented and shares are proportional up to rounding. Points within a stratum are
    drawn uniformly without replacement with ``numpy.random.default_rng(seed)``.
    """
    lab = np.asarray(labels, dtype=object) if not isinstance(labels, np.ndarray) else labels
    n = len(lab)
    max_points = int(max_points)
    if max_points < 1:
        raise ValueError(f"max_points={max_points}: must be >= 1 (e.g. 20000)")
    if n <= max_points:
        return np.arange(n, dtype=np.int64)
    if lab.dtype.kind in "iub":  # integer codes: no Python objects for millions of points
        codes, uniques = pd.factorize(lab, sort=True)
    else:
        codes, uniques = pd.factorize(pd.Series(lab, dtype=object), sort=True)
    sizes = np.bincount(codes, minlength=len(uniques)).astype(np.int64)
    h = len(uniques)
    if h > max_points:
        raise ValueError(
            f"max_points={max_points} is smaller than the number of strata ({h}): raise max_points"
        )
    quota = max_points * sizes / n
    alloc = np.maximum(1, np.floor(quota).astype(np.int64))
    alloc = np.minimum(alloc, sizes)
    left = max_points - int(alloc.sum())
    if left > 0:
        rem = quota - np.floor(quota)
        for k in np.argsort(-rem, kind="stable"):
            if left == 0:
                break
            if alloc[k] < sizes[k]:
                alloc[k] += 1
                left -= 1
    elif left < 0:  # minimum-one rule overshot: take back from the largest strata
        for k in np.argsort(-alloc, kind="stable"):
            while left < 0 and alloc[k] > 1:
                alloc[k] -= 1
                left += 1
    rng = np.random.default_rng(seed)
    order = np.argsort(codes, kind="stable")
    starts = np.r_[0, np.cumsum(sizes)[:-1]]
    picked = []
    for k in range(h):
        members = order[starts[k] : starts[k] + sizes[k]]
        picked.append(rng.choice(members, size=int(alloc[k]), replace=False))
    return np.sort(np.concatenate(picked)).astype(np.int64)


# --------------------------------------------------------------------------- point table
@dataclass
class ProjectionData:
    """The points of a projection: ``frame`` (one row per point) and ``embeddings`` (the same
    rows, float32). ``frame`` columns: ``row_id`` (stable id of the point before sampling),
    ``kind`` (query / positive / negative), ``source`` (the negative's source; ``"(query)"`` /
    ``"(positive)"`` for the others), ``flag`` (``flagged`` / ``risky`` (percpos) / ``clean`` for
    negatives, else the kind), ``margin`` (negatives, else NaN), ``query_id``, ``passage_id``,
    ``text``; after :func:`project_points` also ``x``, ``y``. ``n_total`` is the number of points
    before sampling; ``note`` explains the sampling ("" when none)."""

    frame: pd.DataFrame
    embeddings: np.ndarray
    n_total: int
    note: str = ""

    @property
    def sampled(self) -> bool:
        return len(self.frame) < self.n_total


def collection_embeddings(
    collection: Any, encoder: Any, cache: Any = None, progress: Callable[[str, int, int], None] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Query and passage embeddings of the whole collection with ``encoders.embed`` (rows in
    collection index order; cached per text by the EmbeddingCache, so after scoring this is a
    cache read)."""
    from eci_core.models.encoding import embed

    q = embed(encoder, collection.query_texts, "query", cache=cache, progress=progress)
    p = embed(encoder, collection.passage_texts, "passage", cache=cache, progress=progress)
    return np.asarray(q, dtype=np.float32), np.asarray(p, dtype=np.float32)


def projection_frame(
    collection: Any,
    result: Any,
    query_embeddings: np.ndarray | None = None,
    passage_embeddings: np.ndarray | None = None,
    sources: Sequence[str] | None = None,
    color_by: str = "source",
    kinds: Sequence[str] = KINDS,
    max_points: int = 20000,
    seed: int = 0,
    encoder: Any = None,
    cache: Any = None,
) -> ProjectionData:
    """Point table + embedding rows for the chosen ``sources`` (default: all scored sources).

    Queries are those covered by the chosen sources; positives are their labelled positives;
    negatives come from ``result.pairs`` (a passage that is a negative in two sources is two
    points). ``query_embeddings`` is indexed by the collection's query index, ``passage_embeddings``
    by passage index; without them, ``encoder`` (with ``cache``, an ``EmbeddingCache``) embeds
    only the texts of the points kept. Above ``max_points`` points a :func:`stratified_sample` by
    (kind, source, colour category) keeps every group, and ``note`` says so. The sample is drawn
    on integer codes before any text, id or embedding row is gathered, so the cost of a page
    with millions of negatives is one pass over their codes. ``color_by`` (``source`` / ``kind``
    / ``flag`` / ``margin``) is validated here and only decides the sampling strata.
    """
    if color_by not in ("source", "kind", "flag", "margin"):
        raise ValueError(f"color_by={color_by!r}: use 'source', 'kind', 'flag' or 'margin'")
    bad = [k for k in kinds if k not in KINDS]
    if bad:
        raise ValueError(f"kinds={list(kinds)}: unknown {bad}; use some of {list(KINDS)}")
    if (query_embeddings is None or passage_embeddings is None) and encoder is None:
        raise ValueError(
            "give query_embeddings and passage_embeddings, or an encoder to embed the sampled points"
        )
    qe = pe = None
    if query_embeddings is not None and passage_embeddings is not None:
        qe = np.asarray(query_embeddings, dtype=np.float32)
        pe = np.asarray(passage_embeddings, dtype=np.float32)
        if qe.shape[0] != collection.n_queries:
            raise ValueError(
                f"query_embeddings has {qe.shape[0]} rows but the collection has "
                f"{collection.n_queries} queries"
            )
        if pe.shape[0] != collection.n_passages:
            raise ValueError(
                f"passage_embeddings has {pe.shape[0]} rows but the collection has "
                f"{collection.n_passages} passages"
            )
    pairs = result.pairs if hasattr(result, "pairs") else result
    # string columns stay in pandas (Arrow-backed strings): only the kept rows become Python str
    src_cat = pd.Categorical(pairs["source"].astype(str)) if len(pairs) else pd.Categorical([])
    known = list(collection.sources) if not len(pairs) else [str(x) for x in pd.unique(src_cat)]
    names = known if sources is None else [str(s) for s in sources]
    unknown = [s for s in names if s not in known and s not in collection.sources]
    if unknown:
        raise ValueError(f"unknown source(s) {', '.join(unknown)}; known: {', '.join(known)}")
    if len(pairs):  # code of each pair's source in ``names`` (-1: a source not shown)
        to_names = np.r_[pd.Index(names).get_indexer([str(c) for c in src_cat.categories]), -1].astype(
            np.int64
        )
        src_codes = to_names[src_cat.codes]  # code -1 (missing) picks the trailing -1
    else:
        src_codes = np.zeros(0, np.int64)
    neg_rows = np.flatnonzero(src_codes >= 0)
    q_parts = [
        np.asarray(collection.sources[s].query_indices, dtype=np.int64)
        for s in names
        if s in collection.sources
    ]
    if len(neg_rows) and any(s not in collection.sources for s in names):
        qids = [str(x) for x in pd.unique(pairs["query_id"].take(neg_rows))]
        q_parts.append(pd.Index(list(collection.query_ids)).get_indexer(qids).astype(np.int64))
    q_arr = np.unique(np.concatenate(q_parts)) if q_parts else np.zeros(0, dtype=np.int64)
    q_arr = q_arr[q_arr >= 0]

    # every point as integer codes: kind, source, colour category; q / p indices where known
    kind_c, src_c, cat_c, q_of, p_of = [], [], [], [], []
    if "query" in kinds and len(q_arr):
        kind_c.append(np.zeros(len(q_arr), np.int64))
        q_of.append(q_arr)
        p_of.append(np.full(len(q_arr), -1, np.int64))
    pos_q: list[int] = []
    if "positive" in kinds and len(q_arr):
        pp: list[int] = []
        seen: set[int] = set()
        for q in q_arr.tolist():
            for pi in collection.positives.get(q, []):
                if pi not in seen:  # a passage positive for two queries is one point
                    seen.add(pi)
                    pos_q.append(q)
                    pp.append(pi)
        kind_c.append(np.ones(len(pp), np.int64))
        q_of.append(np.asarray(pos_q, dtype=np.int64))
        p_of.append(np.asarray(pp, dtype=np.int64))
    n_fixed = sum(len(k) for k in kind_c)
    src_c.append(np.full(n_fixed, -1, np.int64))
    cat_c.append(np.zeros(n_fixed, np.int64))
    use_neg = "negative" in kinds and len(neg_rows) > 0
    if use_neg:
        codes = src_codes[neg_rows]
        flagged = (
            pairs["flagged"].fillna(False).to_numpy(dtype=bool)[neg_rows]
            if "flagged" in pairs.columns
            else np.zeros(len(neg_rows), bool)
        )
        risky = (
            pairs["percpos"].fillna(False).to_numpy(dtype=bool)[neg_rows]
            if "percpos" in pairs.columns
            else np.zeros(len(neg_rows), bool)
        )
        margin = pairs["margin"].to_numpy(dtype=np.float64)[neg_rows]
        if color_by == "flag":
            cat = np.where(flagged, 2, np.where(risky, 1, 0))
        elif color_by == "margin":
            cat = np.where(np.isnan(margin), 2, (margin > 0).astype(np.int64))
        else:
            cat = np.zeros(len(neg_rows), np.int64)
        kind_c.append(np.full(len(neg_rows), 2, np.int64))
        src_c.append(codes)
        cat_c.append(cat.astype(np.int64))
    cols = ["row_id", "kind", "source", "flag", "margin", "query_id", "passage_id", "text"]
    n_total = n_fixed + (len(neg_rows) if use_neg else 0)
    dim = qe.shape[1] if qe is not None and qe.ndim == 2 else int(getattr(encoder, "dim", 0) or 0)
    if n_total == 0:
        return ProjectionData(pd.DataFrame(columns=cols), np.zeros((0, dim), np.float32), 0, "")
    kind_all = np.concatenate(kind_c)
    note = ""
    if n_total > max_points:
        labels = (
            (kind_all * 4 + 0) * (len(names) + 2) * 4
            + (np.concatenate(src_c) + 1) * 4
            + np.concatenate(cat_c)
        )
        keep = stratified_sample(labels, max_points, seed)
        note = (
            f"showing a stratified sample of {len(keep):,} of {n_total:,} points "
            f"(every kind and source kept in proportion)"
        )
    else:
        keep = np.arange(n_total, dtype=np.int64)

    # gather only the kept points
    kinds_k = kind_all[keep]
    fixed = keep[keep < n_fixed]
    q_fixed = np.concatenate(q_of) if q_of else np.zeros(0, np.int64)
    p_fixed = np.concatenate(p_of) if p_of else np.zeros(0, np.int64)
    nk = keep[keep >= n_fixed] - n_fixed
    rows = neg_rows[nk] if use_neg else np.zeros(0, np.int64)
    qids_all, pids_all = collection.query_ids, collection.passage_ids
    fixed_kind = np.array(["query", "positive"], dtype=object)[kinds_k[: len(fixed)]]
    neg_pid = (
        pairs["passage_id"].take(rows).astype(str).to_numpy(dtype=object)
        if len(rows)
        else np.zeros(0, dtype=object)
    )
    neg_flag_f = (
        pairs["flagged"].fillna(False).to_numpy(dtype=bool)[rows]
        if "flagged" in pairs.columns
        else np.zeros(len(rows), bool)
    )
    neg_risky = (
        pairs["percpos"].fillna(False).to_numpy(dtype=bool)[rows]
        if "percpos" in pairs.columns
        else np.zeros(len(rows), bool)
    )
    frame = pd.concat(
        [
            pd.DataFrame(
                {
                    "row_id": fixed,
                    "kind": fixed_kind,
                    "source": np.where(fixed_kind == "query", "(query)", "(positive)"),
                    "flag": fixed_kind,
                    "margin": np.nan,
                    "query_id": [qids_all[i] for i in q_fixed[fixed]],
                    "passage_id": ["" if p < 0 else pids_all[p] for p in p_fixed[fixed]],
                    "_q": np.where(fixed_kind == "query", q_fixed[fixed], -1),
                    "_p": p_fixed[fixed],
                }
            ),
            pd.DataFrame(
                {
                    "row_id": nk + n_fixed,
                    "kind": "negative",
                    "source": np.asarray(names, dtype=object)[src_codes[rows]]
                    if len(rows)
                    else np.zeros(0, dtype=object),
                    "flag": np.where(neg_flag_f, "flagged", np.where(neg_risky, "risky (percpos)", "clean")),
                    "margin": pairs["margin"].to_numpy(dtype=np.float64)[rows],
                    "query_id": pairs["query_id"].take(rows).astype(str).to_numpy(dtype=object)
                    if len(rows)
                    else np.zeros(0, dtype=object),
                    "passage_id": neg_pid,
                    "_q": -1,
                    "_p": np.fromiter(
                        (collection.passage_index(x) for x in neg_pid), dtype=np.int64, count=len(neg_pid)
                    ),
                }
            ),
        ],
        ignore_index=True,
    )
    frame["row_id"] = frame["row_id"].astype(np.int64)
    qk, pk = frame["_q"].to_numpy(dtype=np.int64), frame["_p"].to_numpy(dtype=np.int64)
    is_q = qk >= 0
    qt, pt = collection.query_texts, collection.passage_texts
    frame["text"] = [qt[q] if q >= 0 else pt[p] for q, p in zip(qk.tolist(), pk.tolist())]
    if qe is not None:
        emb = (
            np.where(is_q[:, None], qe[np.maximum(qk, 0)], pe[np.maximum(pk, 0)])
            if len(frame)
            else np.zeros((0, dim), np.float32)
        )
    else:
        from eci_core.models.encoding import embed

        emb = np.zeros((len(frame), int(encoder.dim)), np.float32)
        if is_q.any():
            emb[is_q] = embed(encoder, frame.loc[is_q, "text"].tolist(), "query", cache=cache)
        if (~is_q).any():
            emb[~is_q] = embed(encoder, frame.loc[~is_q, "text"].tolist(), "passage", cache=cache)
    return ProjectionData(frame[cols], np.ascontiguousarray(emb, dtype=np.float32), n_total, note)


def project_points(
    data: ProjectionData,
    method: Method = "umap",
    n_neighbors: int = 15,
    min_dist: float = 0.1,
    metric: str = "cosine",
    seed: int = 42,
    cache: Any = None,
    use_cache: bool = True,
    progress: Callable[[str, int, int], None] | None = None,
) -> pd.DataFrame:
    """``data.frame`` with ``x``, ``y`` from :func:`project` of ``data.embeddings``."""
    xy = project(
        data.embeddings,
        method=method,
        n_neighbors=n_neighbors,
        min_dist=min_dist,
        metric=metric,
        seed=seed,
        cache=cache,
        use_cache=use_cache,
        progress=progress,
    )
    out = data.frame.copy()
    out["x"] = xy[:, 0] if len(out) else np.zeros(0)
    out["y"] = xy[:, 1] if len(out) else np.zeros(0)
    return out


# --------------------------------------------------------------------------- figure
def _projection_figure(
    points: pd.DataFrame,
    color_by: str = "source",
    selected: Iterable[Any] | None = None,
    note: str | None = None,
    title: str = "Projection",
):
    """Scatter of a projection point table (from ``projection.project_points``: ``row_id, x, y,
    kind, source, flag, margin, text``).

    ``color_by``: ``"source"``, ``"kind"``, ``"flag"`` (categorical, Okabe–Ito) or ``"margin"``
    (negatives on the continuous colour-blind-safe Cividis scale, queries and positives grey).
    When ``selected`` (row ids) is given, the other points are drawn dimmed (opacity 0.12) in
    separate traces named ``"… (not selected)"``. Hover shows the kind, source and the first 200
    characters of ``text``; custom_data = [row_id, kind, source]. ``note`` (e.g. the sampling
    note) is appended to the title."""
    import plotly.graph_objects as go

    require_columns(points, ("row_id", "x", "y", "kind", "source"), "projection points")
    if color_by not in ("source", "kind", "flag", "margin"):
        raise ValueError(f"color_by={color_by!r}: use 'source', 'kind', 'flag' or 'margin'")
    sel = None if selected is None else set(_plain_ids(selected))
    text = (
        points["text"].astype(str).str.slice(0, 200)
        if "text" in points.columns
        else points["kind"].astype(str)
    )
    fig = go.Figure()
    margin_range = None
    if color_by == "margin":
        m_all = points.loc[points["kind"] == "negative", "margin"].to_numpy(dtype=float)
        m_all = m_all[np.isfinite(m_all)]
        margin_range = (float(m_all.min()), float(m_all.max())) if m_all.size else (0.0, 1.0)

    def add(part, name, color, scale=False):
        # selected and unselected points go to separate traces: a per-point opacity array is
        # mis-rendered by some WebGL back-ends
        if sel is None:
            groups = [(part, name, 0.8, True)]
        else:
            chosen = part["row_id"].isin(sel).to_numpy()
            groups = [(part[~chosen], f"{name} (not selected)", 0.12, False), (part[chosen], name, 0.9, True)]
        for g, gname, op, main in groups:
            if not len(g):
                continue
            custom = np.column_stack(
                [g["row_id"].to_numpy(), g["kind"].astype(str).to_numpy(), g["source"].astype(str).to_numpy()]
            ).astype(object)
            marker = dict(size=5, opacity=op)
            if scale:
                marker.update(
                    color=g["margin"].to_numpy(dtype=float),
                    colorscale=CONTINUOUS_SCALE,
                    cmin=margin_range[0],
                    cmax=margin_range[1],
                    showscale=main,
                    colorbar=dict(title="margin", x=1.02, len=0.75, y=0.4),
                )
            else:
                marker.update(color=color)
            fig.add_trace(
                go.Scattergl(
                    x=g["x"].to_numpy(dtype=float),
                    y=g["y"].to_numpy(dtype=float),
                    mode="markers",
                    name=gname,
                    customdata=custom,
                    text=text.loc[g.index].to_numpy(),
                    marker=marker,
                    hovertemplate="<b>%{customdata[1]}</b> %{customdata[2]}<br>%{text}<extra></extra>",
                )
            )

    if color_by == "margin":
        add(points[points["kind"] != "negative"], "query / positive", "#999999")
        add(points[points["kind"] == "negative"], "negatives (margin)", None, scale=True)
    else:
        col = color_by
        if col not in points.columns:
            raise ValueError(f"color_by={color_by!r} needs a '{col}' column in the point table")
        cats = list(dict.fromkeys(points[col].astype(str).tolist()))
        pal = source_colors(cats)
        for c in cats:
            add(points[points[col].astype(str) == c], c, pal[c])
    fig.update_layout(
        title=title + (f" — {note}" if note else ""),
        height=620,
        dragmode="lasso",
        legend=dict(title=color_by, orientation="h", y=-0.05, x=0),
        margin=dict(l=10, r=10, t=60, b=30),
        xaxis=dict(showticklabels=False, title=None),
        yaxis=dict(showticklabels=False, title=None),
    )
    return fig


def _plain_ids(ids: Iterable[Any]) -> list:
    return [v.item() if isinstance(v, np.generic) else v for v in ids]


def projection_figure(
    points: pd.DataFrame,
    color_by: str = "source",
    selected: Iterable[Any] | None = None,
    note: str | None = None,
    title: str = "Projection",
):
    if selected is not None:
        return _projection_figure(points, color_by, selected, note, title)
    return memo(
        points,
        ("fig_projection", color_by, note, title),
        lambda: _projection_figure(points, color_by, None, note, title),
    )


projection_figure.__doc__ = (_projection_figure.__doc__ or "") + BUILT_ONCE_NOTE
