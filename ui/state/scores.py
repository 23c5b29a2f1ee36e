"""Scores: the :class:`~eci_core.scoring.ScoreResult` of the loaded data under the sidebar's
settings, computed once and shared by every page and session, and :func:`current`, what every page
reads.

The score store
---------------
Results are kept in a slot of :func:`eci_core.explore.memo.memo`, the library's one memo, keyed on
:func:`score_key`: ``(content_hash(collection), encoder, cross-encoder, ECIConfig, every
embedding-cache folder read)``. Switching pages or going back to earlier settings never
recomputes, a result is shared with another session only when all of these are equal, the slot
keeps the :data:`SCORE_STORE_SIZE` most recently used results (bounded memory), and a session
asking for scores another session is computing waits for them instead of computing them again.
The slot's owner is held by ``st.cache_resource``, so clearing Streamlit's resource cache drops
every stored result.

Why not ``st.cache_resource`` on the scoring function itself: scoring reports its progress on a
bar drawn before it starts, and Streamlit records every element call made inside a cached
function to replay it on a cache hit; a call on a bar created outside the function cannot be
replayed (``CacheReplayClosureError`` on the first hit). Streamlit also has no public way to ask
whether a value is cached without computing it, which :func:`cached_result` (and so every page)
needs. The store is therefore filled outside any cached function.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import streamlit as st

from eci_core.explore import memo
from eci_core.io.collection import Collection
from ui.state.keys import K_COLLECTION, K_CONTENT_HASH, K_FINGERPRINT, K_MARKS
from ui.state.launch import path_allowed, read_roots, score_budget_s
from ui.state.models import cache_dirs_read, get_cross_encoder, get_embedding_cache, get_encoder
from ui.state.settings import Settings, settings

#: How many score results the store keeps (the most recently used ones), over every session.
SCORE_STORE_SIZE = 8
#: The memo slot that holds the score results.
SCORE_SLOT = "scores"


class ScoringBudgetExceeded(RuntimeError):
    """Scoring ran past the dashboard's time budget (:func:`ui.state.launch.score_budget_s`)."""


class _ScoreOwner:
    """The owner of the score slot in :func:`eci_core.explore.memo.memo` (its results live while it does)."""


@st.cache_resource(show_spinner=False)
def _score_owner() -> _ScoreOwner:
    return _ScoreOwner()


def stored_results() -> list:
    """Every ScoreResult the store holds now, least recently used first (for tests and diagnostics)."""
    return memo.slot_values(_score_owner(), SCORE_SLOT)


def score_key(content_hash: str, s: Settings) -> tuple:
    """Key of a result in the process-wide store: the data's content hash (SHA-256 of every
    text, id, label and source array), the settings, and every embedding-cache folder read
    (:func:`ui.state.models.cache_dirs_read`). A result is shared between sessions only when all are equal."""
    return (content_hash,) + s.key() + (cache_dirs_read(),)


def cached_result(s: Settings | None = None):
    """The ScoreResult for the current data and settings if it was computed, else ``None``."""
    ss = st.session_state
    if ss.get(K_COLLECTION) is None:
        return None
    s = s or settings()
    return memo.stored(_score_owner(), score_key(ss[K_CONTENT_HASH], s), slot=SCORE_SLOT)


def compute_result(s: Settings, progress: Callable[[str, int, int], None] | None = None):
    """Score the session's collection with ``s`` (or take it from the store; when another session
    is computing the same key, wait for its result)."""
    ss = st.session_state
    collection = ss[K_COLLECTION]
    return memo.memo(
        _score_owner(),
        score_key(ss[K_CONTENT_HASH], s),
        lambda: _score(collection, s, progress),
        slot=SCORE_SLOT,
        size=SCORE_STORE_SIZE,
    )


def _score(collection: Collection, s: Settings, progress: Callable[[str, int, int], None] | None):
    """Score ``collection`` with ``s`` within the time budget, reporting to ``progress``."""
    from eci_core.scoring import score_collection

    budget = score_budget_s()
    started = time.monotonic()

    def timed(stage: str, done: int, total: int) -> None:
        if budget is not None and time.monotonic() - started > budget:
            raise ScoringBudgetExceeded(
                f"scoring stopped after {budget:g} s (the dashboard's time budget, at '{stage}'): score "
                "large data with `eci score DATA --out DIR`, or raise the budget with ECI_SCORE_BUDGET_S "
                "or --score-budget (0 = no limit)"
            )
        if progress:
            progress(stage, done, total)

    timed("loading the encoder", 0, 1)
    embeddings = None
    if s.encoder == "embeddings":
        if not s.embeddings:
            raise ValueError("Your embeddings: type the folder that holds your vectors in the sidebar")
        try:
            folder = Path(s.embeddings).expanduser().resolve()
        except (OSError, RuntimeError):  # a symlink loop
            folder = None
        if folder is None or not path_allowed(folder):
            raise ValueError(
                "Your embeddings: that folder is outside the folders this dashboard may read "
                "(start it with --data-root DIRS or set ECI_DATA_ROOT)"
            )
        from eci_core.models.user_embeddings import open_embeddings

        # the resolved folder that was checked is opened; every file in it must resolve inside the data root
        embeddings, encoder = (
            open_embeddings(folder, model=s.embeddings_model or None, roots=read_roots()),
            None,
        )
    else:
        encoder = get_encoder(s.encoder)
    cross = get_cross_encoder() if s.cross_encoder else None
    return score_collection(
        collection,
        encoder,
        s.config,
        cross_encoder=cross,
        cache=get_embedding_cache(),
        progress=timed,
        embeddings=embeddings,
    )


@dataclass
class Current:
    """What every page works with."""

    collection: Collection | None
    result: Any  # eci_core.scoring.ScoreResult | None
    settings: Settings
    fingerprint: str | None
    marks: dict = field(default_factory=dict)

    @property
    def ready(self) -> bool:
        return self.collection is not None and self.result is not None


def current() -> Current:
    """The loaded data, its scores under the sidebar's settings (None when not computed), the
    settings and the marks."""
    ss = st.session_state
    s = settings()
    return Current(
        collection=ss.get(K_COLLECTION),
        result=cached_result(s),
        settings=s,
        fingerprint=ss.get(K_FINGERPRINT),
        marks=ss[K_MARKS],
    )
