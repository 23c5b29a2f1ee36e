"""Settings: what the sidebar chose, validated by :class:`~eci_core.config.ECIConfig`, and the one
place the session state is initialised (:func:`init_state`).

The sidebar's widgets (keys ``W_*`` of :mod:`ui.state.keys`) hold the settings;
:func:`settings` reads them into a frozen :class:`Settings` (a widget value that is missing falls
back to its default). :func:`init_state` sets every missing session-state key to its default on
each run and opens the default dataset once per browser session.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import streamlit as st

from eci_core.config import ECIConfig
from eci_core.io.records import LoadReport
from ui.state.keys import (
    K_COLLECTION,
    K_CONTENT_HASH,
    K_DATA_DIRS,
    K_DATA_LABEL,
    K_ERRORS,
    K_FINGERPRINT,
    K_FN_MODELS,
    K_FN_REFIT,
    K_INITIALISED,
    K_MARKS,
    K_MARKS_RESTORED,
    K_PROJECTION,
    K_QUERY,
    K_REPORT,
    K_VALIDATIONS,
    W_AGGREGATE,
    W_CE_MARGIN,
    W_CROSS,
    W_EMBEDDINGS,
    W_EMBEDDINGS_MODEL,
    W_ENCODER,
    W_ENCODER_PATH,
    W_NEAR_DUP,
    W_PERCPOS,
    W_POSITIVE,
    W_TEMPERATURE,
)
from ui.state.launch import default_cross_encoder, default_data_path, default_encoder
from ui.state.loading import open_default_dataset


#: Choices of the sidebar's encoder box -> value passed to ``eci_core.models.registry.load_encoder``.
ENCODER_CHOICES = {
    "MiniLM (bundled)": "minilm",
    "Hashing (instant, lexical)": "hashing",
    "bge-small-en-v1.5 (bundled, ONNX, CPU)": "bge-small",
    "Local folder…": "folder",
    "Your embeddings (folder)…": "embeddings",
}


#: The Projection page's default parameters (PCA; the UMAP ones apply once UMAP is chosen).
PROJECTION_DEFAULTS = {"method": "pca", "n_neighbors": 15, "min_dist": 0.1, "metric": "cosine"}


#: The Projection page's default sources: the best-ranked ones (every source at once is a crowded, slow map).
PROJECTION_DEFAULT_SOURCES = 3


@dataclass(frozen=True)
class Settings:
    """What the sidebar chose: which encoder, whether a cross-encoder runs, and the options."""

    encoder: str
    cross_encoder: bool
    config: ECIConfig
    embeddings: str = ""  # a folder of your own vectors (then ``encoder`` is "embeddings")
    embeddings_model: str = ""

    def key(self) -> tuple:
        return (
            self.encoder,
            self.cross_encoder,
            tuple(sorted(self.config.as_dict().items())),
            self.embeddings,
            self.embeddings_model,
            _folder_stamp(self.embeddings),
        )


def _folder_stamp(folder: str) -> tuple:
    """(name, size, mtime) of the files of your embeddings folder: a changed file is a new key."""
    if not folder:
        return ()
    try:
        return tuple(
            sorted(
                (p.name, p.stat().st_size, p.stat().st_mtime_ns)
                for p in Path(folder).expanduser().iterdir()
                if p.is_file()
            )
        )
    except OSError:
        return ("unreadable",)


def _encoder_choice_default(enc: str) -> tuple[str, str]:
    if enc in ("minilm", "all-MiniLM-L6-v2", ""):
        return "MiniLM (bundled)", ""
    if enc == "hashing":
        return "Hashing (instant, lexical)", ""
    if enc == "bge-small":
        return "bge-small-en-v1.5 (bundled, ONNX, CPU)", ""
    return "Local folder…", enc


def settings() -> Settings:
    """The settings the sidebar widgets hold now (validated by ``ECIConfig``); a widget value
    that is missing falls back to its default."""
    ss = st.session_state
    d = _defaults()
    get = lambda k: ss.get(k, d[k])  # noqa: E731
    choice = ENCODER_CHOICES.get(get(W_ENCODER), "minilm")
    encoder = str(get(W_ENCODER_PATH)).strip() if choice == "folder" else choice
    config = ECIConfig(
        positive=get(W_POSITIVE),
        aggregate=get(W_AGGREGATE),
        temperature=float(get(W_TEMPERATURE)),
        near_duplicate_threshold=float(get(W_NEAR_DUP)),
        cross_encoder_margin=float(get(W_CE_MARGIN)),
        percpos=float(get(W_PERCPOS)),
    )
    emb = str(get(W_EMBEDDINGS)).strip() if choice == "embeddings" else ""
    emb_model = str(get(W_EMBEDDINGS_MODEL)).strip() if choice == "embeddings" else ""
    return Settings(
        encoder=encoder,
        cross_encoder=bool(get(W_CROSS)),
        config=config,
        embeddings=emb,
        embeddings_model=emb_model,
    )


def _defaults() -> dict[str, Any]:
    """The default of every session-state key (data, marks, pages) and sidebar widget."""
    enc_label, enc_path = _encoder_choice_default(default_encoder())
    cfg = ECIConfig()
    return {
        K_COLLECTION: None,
        K_FINGERPRINT: None,
        K_CONTENT_HASH: None,
        K_REPORT: LoadReport(),
        K_ERRORS: [],
        K_DATA_LABEL: "nothing loaded",
        K_DATA_DIRS: [],
        K_MARKS: {},
        K_MARKS_RESTORED: 0,
        K_FN_MODELS: None,
        K_FN_REFIT: None,
        K_QUERY: None,
        K_PROJECTION: dict(PROJECTION_DEFAULTS),
        K_VALIDATIONS: {},
        W_ENCODER: enc_label,
        W_ENCODER_PATH: enc_path,
        W_EMBEDDINGS: "",
        W_EMBEDDINGS_MODEL: "",
        W_CROSS: default_cross_encoder(),
        W_POSITIVE: cfg.positive,
        W_AGGREGATE: cfg.aggregate,
        W_TEMPERATURE: cfg.temperature,
        W_NEAR_DUP: cfg.near_duplicate_threshold,
        W_CE_MARGIN: cfg.cross_encoder_margin,
        W_PERCPOS: cfg.percpos,
    }


def init_state() -> None:
    """Set the session-state defaults that are missing, and open the default dataset once per
    browser session."""
    ss = st.session_state
    defaults = _defaults()
    # Every run: a widget key can be dropped by Streamlit's widget clean-up (e.g. the test
    # harness on reruns of a multipage app); setdefault restores only what is missing.
    for k, v in defaults.items():
        ss.setdefault(k, v)
    if ss.get(K_INITIALISED):
        return
    path = default_data_path()
    if path is not None:
        open_default_dataset(path)
    ss[K_INITIALISED] = True
