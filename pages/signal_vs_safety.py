"""Signal vs Safety: every (query, source) as a point.

x = Signal S (how hard the negatives are), y = Safety Δ (how far the hardest negative stays
below the positive); grey lines are iso-DE curves (DE = 2·S·Δ / (S + Δ)); histograms on the
margins. Above 20,000 points the scatter draws a stratified sample by source (the page says so;
the histograms count every point). Draw a box or a lasso to list those queries below; choose a
row to open it in the Query drill-down.
"""

import streamlit as st

from eci_core.explore import selection, signal_safety
from ui import components

cur = components.require_result(
    "Signal vs Safety",
    "Good sets sit up and to the right: hard negatives (high S) that stay safely below the positive (high "
    "Δ). Points on the x-axis (Δ = 0) are unsafe queries.",
)
res = cur.result
names = components.source_names(cur)


@st.fragment
def chart_and_table() -> None:
    chosen = components.sources_multiselect(names, "ss_sources")
    if not chosen:
        st.info("Choose at least one source.")
        return
    frame = signal_safety.signal_safety_frame(res, chosen)
    fig = signal_safety.signal_safety_figure(res, chosen, frame=frame)
    _, note = signal_safety.signal_safety_sample(frame)
    if note:
        st.caption(note)
    event = components.plotly(fig, key="ss_chart_" + "_".join(chosen), select=True)
    ids = selection.selected_ids(event, fig)
    rows = selection.rows_for_ids(frame, ids, "row_id")
    st.subheader(f"Selected queries ({len(rows)})" if len(rows) else "Selected queries")
    if not len(rows):
        st.caption(
            "Use **Box Select** or **Lasso Select** (chart toolbar, top right) and draw around points to "
            "list them here. Lowest ECI first."
        )
        return
    shown = components.with_query_text(rows, cur.collection)
    shown = shown.sort_values("eci", kind="stable").reset_index(drop=True)
    cols = [
        c
        for c in ("source", "query_id", "query", "K", "S", "delta", "DE", "eci", "unsafe")
        if c in shown.columns
    ]
    pick = st.dataframe(
        shown[cols],
        hide_index=True,
        width="stretch",
        on_select="rerun",
        selection_mode="single-row",
        key="ss_table",
        column_config={
            "S": st.column_config.NumberColumn("S", format="%.3f"),
            "delta": st.column_config.NumberColumn("Δ", format="%.3f"),
            "DE": st.column_config.NumberColumn(format="%.3f"),
            "eci": st.column_config.NumberColumn("ECI_q", format="%.3f"),
        },
    )
    st.caption("Choose a row to open the query in the drill-down.")
    components.open_query_on_select(pick, shown)


chart_and_table()
