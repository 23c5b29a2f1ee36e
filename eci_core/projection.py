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
from typing import Any, Callable, Literal, Sequence

import numpy as np
import pandas as pd

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
        reducer = umap.UMAP(n_components=2, n_neighbors=nn, min_dist=float(min_dist), metric=metric,
                            random_state=int(seed), init="pca", low_memory=True)
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
def stratified_sample(labels: Sequence[Any] | np.ndarray, max_points: int = 20000, seed: int = 0) -> np.ndarray:
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
    codes, uniques = pd.factorize(pd.Series(lab, dtype=object), sort=True)
    sizes = np.bincount(codes, minlength=len(uniques)).astype(np.int64)
    h = len(uniques)
    if h > max_points:
        raise ValueError(f"max_points={max_points} is smaller than the number of strata ({h}): raise max_points")
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
        members = order[starts[k]: starts[k] + sizes[k]]
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


def collection_embeddings(collection: Any, encoder: Any, cache: Any = None,
                          progress: Callable[[str, int, int], None] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Query and passage embeddings of the whole collection with ``encoders.embed`` (rows in
    collection index order; cached per text by the EmbeddingCache, so after scoring this is a
    cache read)."""
    from .encoders import embed

    q = embed(encoder, collection.query_texts, "query", cache=cache, progress=progress)
    p = embed(encoder, collection.passage_texts, "passage", cache=cache, progress=progress)
    return np.asarray(q, dtype=np.float32), np.asarray(p, dtype=np.float32)


def projection_frame(
    collection: Any,
    result: Any,
    query_embeddings: np.ndarray,
    passage_embeddings: np.ndarray,
    sources: Sequence[str] | None = None,
    color_by: str = "source",
    kinds: Sequence[str] = KINDS,
    max_points: int = 20000,
    seed: int = 0,
) -> ProjectionData:
    """Point table + embedding rows for the chosen ``sources`` (default: all scored sources).

    Queries are those covered by the chosen sources; positives are their labelled positives;
    negatives come from ``result.pairs`` (a passage that is a negative in two sources is two
    points). ``query_embeddings`` is indexed by the collection's query index, ``passage_embeddings``
    by passage index. Above ``max_points`` points a :func:`stratified_sample` by (kind, source,
    colour category) keeps every group, and ``note`` says so. ``color_by`` (``source`` / ``kind`` /
    ``flag`` / ``margin``) is validated here and only decides the sampling strata.
    """
    if color_by not in ("source", "kind", "flag", "margin"):
        raise ValueError(f"color_by={color_by!r}: use 'source', 'kind', 'flag' or 'margin'")
    bad = [k for k in kinds if k not in KINDS]
    if bad:
        raise ValueError(f"kinds={list(kinds)}: unknown {bad}; use some of {list(KINDS)}")
    qe = np.asarray(query_embeddings, dtype=np.float32)
    pe = np.asarray(passage_embeddings, dtype=np.float32)
    if qe.shape[0] != collection.n_queries:
        raise ValueError(f"query_embeddings has {qe.shape[0]} rows but the collection has {collection.n_queries} queries")
    if pe.shape[0] != collection.n_passages:
        raise ValueError(f"passage_embeddings has {pe.shape[0]} rows but the collection has {collection.n_passages} passages")
    pairs = result.pairs if hasattr(result, "pairs") else result
    known = list(collection.sources) if not len(pairs) else list(dict.fromkeys(pairs["source"].astype(str)))
    names = known if sources is None else [str(s) for s in sources]
    unknown = [s for s in names if s not in known and s not in collection.sources]
    if unknown:
        raise ValueError(f"unknown source(s) {', '.join(unknown)}; known: {', '.join(known)}")
    p = pairs[pairs["source"].astype(str).isin(names)]
    q_set: set[int] = set()
    for s in names:
        if s in collection.sources:
            q_set.update(int(i) for i in collection.sources[s].query_indices)
    q_set.update(collection.query_index(str(x)) for x in pd.unique(p["query_id"].astype(str)))
    q_list = sorted(q_set)
    parts = []
    emb_parts = []
    if "query" in kinds and q_list:
        qi = np.asarray(q_list, dtype=np.int64)
        parts.append(pd.DataFrame({
            "kind": "query", "source": "(query)", "flag": "query", "margin": np.nan,
            "query_id": [collection.query_ids[i] for i in qi], "passage_id": "",
            "_q": qi, "_p": -1}))
        emb_parts.append(qe[qi])
    if "positive" in kinds and q_list:
        qq, pp = [], []
        seen: set[int] = set()
        for q in q_list:
            for pi in collection.positives.get(q, []):
                if pi not in seen:  # a passage positive for two queries is one point
                    seen.add(pi)
                    qq.append(q)
                    pp.append(pi)
        pi_arr = np.asarray(pp, dtype=np.int64)
        parts.append(pd.DataFrame({
            "kind": "positive", "source": "(positive)", "flag": "positive", "margin": np.nan,
            "query_id": [collection.query_ids[i] for i in qq], "passage_id": [collection.passage_ids[i] for i in pp],
            "_q": -1, "_p": pi_arr}))
        emb_parts.append(pe[pi_arr] if len(pi_arr) else np.zeros((0, pe.shape[1]), np.float32))
    if "negative" in kinds and len(p):
        pid = p["passage_id"].astype(str).tolist()
        pi_arr = np.fromiter((collection.passage_index(x) for x in pid), dtype=np.int64, count=len(pid))
        flagged = p["flagged"].fillna(False).to_numpy(dtype=bool) if "flagged" in p.columns else np.zeros(len(p), bool)
        risky = p["percpos"].fillna(False).to_numpy(dtype=bool) if "percpos" in p.columns else np.zeros(len(p), bool)
        flag = np.where(flagged, "flagged", np.where(risky, "risky (percpos)", "clean"))
        parts.append(pd.DataFrame({
            "kind": "negative", "source": p["source"].astype(str).to_numpy(), "flag": flag,
            "margin": p["margin"].to_numpy(dtype=np.float64), "query_id": p["query_id"].astype(str).to_numpy(),
            "passage_id": pid, "_q": -1, "_p": pi_arr}))
        emb_parts.append(pe[pi_arr])
    cols = ["row_id", "kind", "source", "flag", "margin", "query_id", "passage_id", "text"]
    if not parts:
        dim = qe.shape[1] if qe.ndim == 2 else 0
        return ProjectionData(pd.DataFrame(columns=cols), np.zeros((0, dim), np.float32), 0, "")
    frame = pd.concat(parts, ignore_index=True)
    frame.insert(0, "row_id", np.arange(len(frame), dtype=np.int64))
    emb = np.concatenate(emb_parts, axis=0)
    n_total = len(frame)
    note = ""
    if n_total > max_points:
        cat = frame["flag"] if color_by == "flag" else (
            pd.cut(frame["margin"], [-np.inf, 0, np.inf]).astype(str) if color_by == "margin" else "")
        strata = frame["kind"].astype(str) + "|" + frame["source"].astype(str) + "|" + pd.Series(cat, index=frame.index).astype(str)
        keep = stratified_sample(strata.to_numpy(dtype=object), max_points, seed)
        frame = frame.iloc[keep].reset_index(drop=True)
        emb = emb[keep]
        note = (f"showing a stratified sample of {len(frame):,} of {n_total:,} points "
                f"(every kind and source kept in proportion)")
    # texts only for the points kept
    qt, pt = collection.query_texts, collection.passage_texts
    frame["text"] = [qt[q] if q >= 0 else pt[p] for q, p in zip(frame["_q"].tolist(), frame["_p"].tolist())]
    return ProjectionData(frame[cols], np.ascontiguousarray(emb, dtype=np.float32), n_total, note)


def project_points(data: ProjectionData, method: Method = "umap", n_neighbors: int = 15, min_dist: float = 0.1,
                   metric: str = "cosine", seed: int = 42, cache: Any = None, use_cache: bool = True,
                   progress: Callable[[str, int, int], None] | None = None) -> pd.DataFrame:
    """``data.frame`` with ``x``, ``y`` from :func:`project` of ``data.embeddings``."""
    xy = project(data.embeddings, method=method, n_neighbors=n_neighbors, min_dist=min_dist, metric=metric,
                 seed=seed, cache=cache, use_cache=use_cache, progress=progress)
    out = data.frame.copy()
    out["x"] = xy[:, 0] if len(out) else np.zeros(0)
    out["y"] = xy[:, 1] if len(out) else np.zeros(0)
    return out
