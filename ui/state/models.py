"""Models: the target encoder, the cross-encoder and the embedding cache, loaded once per process
(``st.cache_resource``) and shared by every session.

The embedding cache is the user's (``$ECI_CACHE_DIR`` or ``~/.cache/eci-explorer``) with the trusted
read-only layers of :func:`ui.state.launch.readonly_cache_dirs`; :func:`cache_dirs_read` lists every
folder scoring reads (part of the score key, :func:`ui.state.scores.score_key`).
"""

from __future__ import annotations

import streamlit as st

from ui.state.launch import readonly_cache_dirs


@st.cache_resource(show_spinner="Loading the encoder…", max_entries=3)
def get_encoder(name: str):
    """The target encoder (bundled MiniLM, ``hashing`` or a local folder), once per process."""
    from eci_core.models.registry import load_encoder

    return load_encoder(None if name == "minilm" else name)


@st.cache_resource(show_spinner="Loading the cross-encoder…", max_entries=2)
def get_cross_encoder():
    """The bundled ONNX cross-encoder, once per process."""
    from eci_core.models.registry import load_cross_encoder

    return load_cross_encoder(None)


def get_embedding_cache():
    """The on-disk embedding cache (``$ECI_CACHE_DIR`` or ``~/.cache/eci-explorer``) with the
    trusted read-only layers of :func:`readonly_cache_dirs`."""
    return _embedding_cache(tuple(str(p) for p in readonly_cache_dirs()))


@st.cache_resource(show_spinner=False, max_entries=4)
def _embedding_cache(readonly: tuple[str, ...]):
    from eci_core.models.cache import EmbeddingCache

    return EmbeddingCache(readonly_dirs=list(readonly))


def cache_dirs_read() -> tuple[str, ...]:
    """Every embedding-cache folder scoring reads: the user's cache, then the read-only layers."""
    from eci_core.config import default_cache_dir

    return (str(default_cache_dir().expanduser().resolve()), *(str(p) for p in readonly_cache_dirs()))
