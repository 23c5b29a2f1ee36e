"""The sidebar "Data and settings", shared by every page.

Top to bottom: what is loaded (and any error, in one line each), adding or opening data
(upload, local path, bundled sample), the load report, the encoder and cross-encoder, and the
metric options of the spec. Widget values live in ``st.session_state`` under the keys of
:mod:`ui.state.keys`, so they survive page switches.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from eci_core.config import ECIConfig
from ui import components
from ui.state.keys import (
    K_COLLECTION,
    K_DATA_LABEL,
    K_ERRORS,
    K_REPORT,
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
from ui.state.launch import SAMPLE_DIR, data_roots, path_allowed
from ui.state.loading import add_paths, add_uploads, max_upload_mb, open_default_dataset, replace_with_path
from ui.state.settings import ENCODER_CHOICES

_UPLOAD_COUNTER = "eci_upload_counter"
_DATA_PANEL = "eci_data_panel"


def _uploader_key() -> str:
    return f"eci_uploads_{st.session_state.get(_UPLOAD_COUNTER, 0)}"


#: Shown when "Add uploaded files" finds no file: the browser may still be sending one (the
#: uploader lists a file with its size only once it has arrived).
NO_UPLOAD_YET = (
    "No uploaded file has arrived yet: choose one or more files above and wait until each "
    "is listed with its size (large files take a while), then press Add."
)


def _on_add_uploads() -> None:
    files = st.session_state.get(_uploader_key()) or []
    if not files:
        st.session_state[K_ERRORS] = [NO_UPLOAD_YET]
        return
    add_uploads(files)
    if not st.session_state[K_ERRORS]:
        # a fresh uploader (empty) once the files are in the session
        st.session_state[_UPLOAD_COUNTER] = st.session_state.get(_UPLOAD_COUNTER, 0) + 1


def _on_path(mode: str) -> None:
    raw = (st.session_state.get("eci_local_path") or "").strip()
    if not raw:
        st.session_state[K_ERRORS] = ["Type the path of a file or folder first."]
        return
    path = Path(raw).expanduser()
    # the resolved path is checked and then loaded (a link swapped in after the check is not
    # followed); the loaders check every file they open against the data root again
    try:
        real = path.resolve()
    except (OSError, RuntimeError):  # a symlink loop
        real = None
    if real is None or not path_allowed(real):
        roots = ", ".join(str(r) for r in data_roots())
        st.session_state[K_ERRORS] = [
            f"{path}: outside the data root ({roots}); upload the file instead, or start the app with "
            "ECI_DATA_ROOT (or --data-root) naming its folder"
        ]
        return
    if not real.exists():
        st.session_state[K_ERRORS] = [f"{path}: no such file or folder"]
        return
    if mode == "add":
        add_paths([real], label=path.name)
    else:
        replace_with_path(real)


def _on_sample() -> None:
    open_default_dataset(SAMPLE_DIR)


def _data_section() -> None:
    ss = st.session_state
    coll = ss[K_COLLECTION]
    if coll is None:
        st.info("No data loaded yet: upload files or give a local path below.")
    else:
        st.markdown(f"**Dataset:** {components.plain(ss[K_DATA_LABEL])}")
        st.caption(
            f"{coll.n_queries:,} queries · {coll.n_passages:,} passages · "
            f"{len(coll.sources)} sources: {components.plain(', '.join(coll.sources))}"
        )
    for err in ss[K_ERRORS]:
        components.show_error(err)
    if ss[K_ERRORS] and coll is not None:
        st.caption("Nothing already loaded was lost.")

    # a keyed, state-tracked expander keeps whatever the user left it at (open while choosing files)
    # even when elements above it come and go between reruns
    ss.setdefault(_DATA_PANEL, coll is None)
    with st.expander("Add or open data", key=_DATA_PANEL, on_change="rerun"):
        st.file_uploader(
            "Upload negatives (any accepted format; one source per file)",
            accept_multiple_files=True,
            key=_uploader_key(),
            help="JSONL/JSON/CSV/TSV/Parquet from sentence-transformers, BGE, Tevatron, "
            "msmarco-hard-negatives, TREC runs. A source is named after its file name. At most "
            f"{max_upload_mb():,} MB per file (server.maxUploadSize in .streamlit/config.toml).",
        )
        st.button("Add uploaded files", on_click=_on_add_uploads, width="stretch")
        st.text_input(
            "…or a local file or folder",
            key="eci_local_path",
            placeholder="/path/to/negatives.jsonl",
            help="Read on the server, inside the data root only: "
            + ", ".join(str(r) for r in data_roots())
            + " (set ECI_DATA_ROOT or --data-root to change it).",
        )
        c1, c2 = st.columns(2)
        c1.button(
            "Add", on_click=_on_path, args=("add",), width="stretch", help="Add its sources to the session"
        )
        c2.button(
            "Open instead",
            on_click=_on_path,
            args=("open",),
            width="stretch",
            help="Replace the session's data",
        )
        if SAMPLE_DIR.exists():
            st.button("Open the bundled sample (pyfaq)", on_click=_on_sample, width="stretch")

    report = ss[K_REPORT]
    if report is not None and report.sources:
        with st.expander("Load report"):
            st.dataframe(report.table(), hide_index=True, width="stretch")


def _settings_section() -> None:
    ss = st.session_state
    st.selectbox("Target encoder", list(ENCODER_CHOICES), key=W_ENCODER)
    if ENCODER_CHOICES[ss[W_ENCODER]] == "folder":
        st.text_input(
            "Local sentence-transformers folder",
            key=W_ENCODER_PATH,
            placeholder="/models/my-encoder",
            help="A folder saved with SentenceTransformer.save(); remote code is never run.",
        )
    if ENCODER_CHOICES[ss[W_ENCODER]] == "embeddings":
        st.text_input(
            "Folder of your vectors",
            key=W_EMBEDDINGS,
            placeholder="/data/msmarco-embeddings",
            help="queries.npy + queries.ids.txt and passages.npy + passages.ids.txt (memory-mapped), "
            "queries/passages.parquet (id + list column), or an embedding cache folder.",
        )
        st.text_input(
            "Model that made them",
            key=W_EMBEDDINGS_MODEL,
            placeholder="bge-base-en-v1.5",
            help="Recorded with the results.",
        )
    st.checkbox(
        "Cross-encoder (ms-marco MiniLM, bundled)",
        key=W_CROSS,
        help="Adds ce_margin and the cross_encoder flag. Slower: every (query, negative) pair is scored.",
    )
    defaults = ECIConfig()
    with st.expander("Metric options"):
        st.radio(
            "Positive used for s_qp",
            ["min", "max", "mean"],
            key=W_POSITIVE,
            horizontal=True,
            help="When a query has several positives: the least similar (default), most similar, or the "
            "mean.",
        )
        st.radio(
            "Aggregate",
            ["query", "set"],
            key=W_AGGREGATE,
            horizontal=True,
            help="query: ECI = mean of per-query ECI (default). set: S, Δ, K averaged first, then one "
            "harmonic mean.",
        )
        st.number_input(
            "InfoNCE temperature τ",
            min_value=0.001,
            max_value=1.0,
            step=0.01,
            format="%.3f",
            key=W_TEMPERATURE,
            help=f"Temperature of the InfoNCE bound (default {defaults.temperature}).",
        )
        st.slider(
            "Near-duplicate threshold (s_pn ≥ t)",
            0.5,
            1.0,
            step=0.01,
            key=W_NEAR_DUP,
            help="A negative this similar to a positive is flagged near_duplicate "
            f"(default {defaults.near_duplicate_threshold}).",
        )
        st.number_input(
            "Cross-encoder margin m (ce_margin ≤ m)",
            min_value=-20.0,
            max_value=20.0,
            step=0.5,
            key=W_CE_MARGIN,
            help="Flag when the cross-encoder rates a negative about as relevant as the positive "
            f"(default {defaults.cross_encoder_margin}).",
        )
        st.slider(
            "PercPos band (s_qn > band · s_qp)",
            0.5,
            1.0,
            step=0.01,
            key=W_PERCPOS,
            help=f"NV-Retriever TopK-PercPos risk marker (default {defaults.percpos}).",
        )


def render() -> None:
    """Draw the sidebar (called by ``app.py`` on every run, before the page)."""
    with st.sidebar:
        st.header("Data and settings")
        _data_section()
        st.divider()
        _settings_section()
