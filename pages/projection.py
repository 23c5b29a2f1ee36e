"""Projection: queries, positives and negatives on one 2-D map of the target encoder's space.

PCA is drawn at once; UMAP runs when its parameters are submitted. Colour by source, flag,
margin or kind; hover shows the text. Above 20,000 points a stratified sample is drawn (and
the page says so). Select points with a box or lasso to list them; choose a row to open its
query in the drill-down.
"""

import streamlit as st

from eci_core.explore import projection, selection
from ui import components
from ui.state.derived import projection_points
from ui.state.keys import K_PROJECTION
from ui.state.settings import PROJECTION_DEFAULT_SOURCES

cur = components.require_result(
    "Projection",
    "Where the negatives lie relative to their queries and positives. Negatives on top of positives are "
    "candidates for false negatives.",
)
res = cur.result
names = components.source_names(cur)
ss = st.session_state

with st.expander("UMAP parameters", expanded=ss[K_PROJECTION]["method"] == "pca"):
    with st.form("pj_umap"):
        c1, c2, c3 = st.columns(3)
        n_neighbors = c1.slider(
            "n_neighbors",
            2,
            100,
            value=ss[K_PROJECTION]["n_neighbors"],
            help="Larger keeps more global structure",
        )
        min_dist = c2.slider(
            "min_dist",
            0.0,
            0.99,
            value=float(ss[K_PROJECTION]["min_dist"]),
            step=0.01,
            help="Smaller packs neighbours more tightly",
        )
        metric = c3.selectbox(
            "metric",
            ["cosine", "euclidean"],
            index=["cosine", "euclidean"].index(ss[K_PROJECTION]["metric"]),
        )
        b1, b2 = st.columns([1, 5])
        go_umap = b1.form_submit_button("Compute UMAP", type="primary")
        go_pca = b2.form_submit_button("Back to PCA")
    st.caption(
        "UMAP needs about a minute per 5,000 points on 2 cores, plus ~20 s the first time (numba "
        "compiles). Results are cached on disk: the same data and parameters come back at once."
    )
if go_umap:
    ss[K_PROJECTION] = {
        "method": "umap",
        "n_neighbors": n_neighbors,
        "min_dist": min_dist,
        "metric": metric,
    }
elif go_pca:
    ss[K_PROJECTION] = dict(ss[K_PROJECTION], method="pca")
params = ss[K_PROJECTION]


@st.fragment
def projection_view() -> None:
    c1, c2 = st.columns([3, 2])
    chosen = components.sources_multiselect(
        names, "pj_sources", default=names[:PROJECTION_DEFAULT_SOURCES], where=c1
    )
    color_by = (
        c2.segmented_control(
            "Colour by", ["source", "flag", "margin", "kind"], default="source", key="pj_color"
        )
        or "source"
    )
    if not chosen:
        st.info("Choose at least one source.")
        return
    label = "UMAP" if params["method"] == "umap" else "PCA"
    with st.spinner(f"Computing the {label} projection…"):
        points, note, n_total = projection_points(
            cur,
            chosen,
            "source",
            method=params["method"],
            n_neighbors=params["n_neighbors"],
            min_dist=params["min_dist"],
            metric=params["metric"],
        )
    title = (
        f"UMAP (n_neighbors={params['n_neighbors']}, min_dist={params['min_dist']:g}, {params['metric']})"
        if params["method"] == "umap"
        else "PCA (first two components)"
    )
    fig = projection.projection_figure(points, color_by=color_by, title=title)
    if note:
        st.info(note.capitalize() + ".", icon=":material/filter_alt:")
    st.caption(f"{len(points):,} points: queries, their positives and the negatives of the chosen sources.")
    event = components.plotly(fig, key=f"pj_chart_{params['method']}_{'_'.join(chosen)}", select=True)
    ids = selection.selected_ids(event, fig)
    rows = selection.rows_for_ids(points, ids, "row_id")
    st.subheader(f"Selected points ({len(rows)})" if len(rows) else "Selected points")
    if not len(rows):
        st.caption(
            "Use **Box Select** or **Lasso Select** in the chart toolbar and draw around points to list "
            "them here."
        )
        return
    shown = components.with_query_text(rows.reset_index(drop=True), cur.collection)
    cols = [
        c
        for c in ("kind", "source", "flag", "margin", "query_id", "query", "passage_id", "text")
        if c in shown.columns
    ]
    pick = st.dataframe(
        shown[cols],
        hide_index=True,
        width="stretch",
        on_select="rerun",
        selection_mode="single-row",
        key="pj_table",
        column_config={
            "margin": st.column_config.NumberColumn(format="%.3f"),
            "text": st.column_config.TextColumn(width="large"),
        },
    )
    st.caption("Choose a row to open its query in the drill-down.")
    components.open_query_on_select(pick, shown)


projection_view()
