"""What the pages derive from the scores: the Projection page's map, and the warm-up that computes
what every page shows once per (data, settings) before the first chart is drawn.

The projected points are cached with ``st.cache_resource`` (bounded, keyed on the score key and the
projection's parameters); the tables the other pages derive are memoised by
:func:`eci_core.explore.memo.memo` on the ScoreResult (:func:`eci_core.explore.warm.warm_up`).
"""

from __future__ import annotations

from typing import Callable

import streamlit as st

from eci_core.io.collection import Collection
from ui.state.keys import K_COLLECTION, K_CONTENT_HASH
from ui.state.models import get_embedding_cache, get_encoder
from ui.state.scores import Current, score_key
from ui.state.settings import PROJECTION_DEFAULT_SOURCES, PROJECTION_DEFAULTS, Settings


@st.cache_resource(show_spinner=False, max_entries=8)  # the same table each rerun (no copy): read-only
def _projected(
    key: tuple,
    sources: tuple,
    color_by: str,
    method: str,
    n_neighbors: int,
    min_dist: float,
    metric: str,
    max_points: int,
    _collection: Collection,
    _result,
):
    from eci_core.explore.projection import project_points, projection_frame

    # sample first, then embed only the kept points (a cache read after scoring)
    data = projection_frame(
        _collection,
        _result,
        sources=list(sources),
        color_by=color_by,
        max_points=max_points,
        encoder=get_encoder(key[1]),
        cache=get_embedding_cache(),
    )
    points = project_points(
        data,
        method=method,
        n_neighbors=n_neighbors,
        min_dist=min_dist,
        metric=metric,
        cache=get_embedding_cache(),
    )
    return points, data.note, data.n_total


def projection_points(
    cur: "Current",
    sources: list[str],
    color_by: str,
    method: str = "pca",
    n_neighbors: int = 15,
    min_dist: float = 0.1,
    metric: str = "cosine",
    max_points: int = 20000,
):
    """The projected point table (``x``, ``y`` + point metadata), the sampling note and the
    number of points before sampling; cached on the data, settings and parameters."""
    key = score_key(st.session_state[K_CONTENT_HASH], cur.settings)
    return _projected(
        key,
        tuple(sources),
        color_by,
        method,
        int(n_neighbors),
        float(min_dist),
        metric,
        int(max_points),
        cur.collection,
        cur.result,
    )


def prepare_pages(s: Settings, result, progress: Callable[[str, int, int], None] | None = None) -> None:
    """Compute what the pages derive from new scores (:func:`eci_core.explore.warm.warm_up`) and
    the Projection page's default map, once per (data, settings), before the first chart is
    drawn: a first page visit then finds them ready instead of computing them or waiting for a
    background computation."""
    from eci_core.explore import warm

    cur = Current(collection=st.session_state[K_COLLECTION], result=result, settings=s, fingerprint=None)
    names = [str(n) for n in result.sources["name"]] if len(result.sources) else []
    p = PROJECTION_DEFAULTS
    projection = (
        [
            (
                "projection",
                lambda: projection_points(
                    cur,
                    names[:PROJECTION_DEFAULT_SOURCES],
                    "source",
                    method=p["method"],
                    n_neighbors=p["n_neighbors"],
                    min_dist=p["min_dist"],
                    metric=p["metric"],
                ),
            )
        ]
        if names
        else []
    )
    warm.warm_up(cur.collection, result, progress=progress, then=projection)
