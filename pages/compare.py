"""Compare: two sources on the queries both cover.

Per-query ECI of source A against source B (points above the diagonal: B better), the mean
per-query difference with win counts, and the queries where the two disagree most (choose
one to open it in the drill-down).
"""

import streamlit as st

from eci_core.explore import common, compare, selection
from ui import components

cur = components.require_result(
    "Compare",
    "Where do two sources of negatives differ? Same queries, same encoder, ECI per query.",
)
res = cur.result
names = components.source_names(cur)
if len(names) < 2:
    st.info("Load a second source of negatives to compare.")
    st.stop()

components.url_value("cmp_a", "a", names, names[0])
components.url_value("cmp_b", "b", names, names[1] if names[1] != st.session_state["cmp_a"] else names[0])
c1, c2, c3 = st.columns([2, 2, 1])
a = c1.selectbox("Source A", names, key="cmp_a", on_change=components.to_url, args=("cmp_a", "a"))
b = c2.selectbox("Source B", names, key="cmp_b", on_change=components.to_url, args=("cmp_b", "b"))
n_top = c3.number_input("Top disagreements", 5, 100, 15, step=5, key="cmp_n")
if a == b:
    st.warning("Choose two different sources.")
    st.stop()

cmp = compare.compare_sources(res, a, b, n_top=int(n_top))
st.info(components.plain(cmp.summary()), icon=":material/compare_arrows:")
m1, m2, m3, m4 = st.columns(4)
m1.metric("Shared queries", f"{cmp.n_shared:,}")
m2.metric(f"Mean ECI_q difference ({a} − {b})", components.fmt(cmp.mean_diff, "+.3f"))
m3.metric(f"{a} higher", f"{cmp.a_wins:,}")
m4.metric(f"{b} higher", f"{cmp.b_wins:,}")
if cmp.only_a or cmp.only_b:
    st.caption(f"Not compared: {cmp.only_a} queries only {a} covers, {cmp.only_b} only {b} covers.")
if not cmp.n_shared:
    st.stop()


@st.fragment
def scatter_and_tables() -> None:
    left, right = st.columns(2)
    with left:
        fig = compare.compare_scatter(cmp)
        event = components.plotly(fig, key=f"cmp_chart_{a}_{b}", select=True)
        _, note = compare.compare_sample(cmp)
        st.caption(
            "Each point is a query; above the dashed diagonal B scores higher, below it A does. "
            "Large orange points: the most disagreeing queries. " + note
        )
    ids = selection.selected_ids(event, fig)
    with right:
        if ids:
            table = selection.rows_for_ids(cmp.per_query, [str(i) for i in ids], "query_id")
            st.markdown(f"**Selected queries ({len(table)})**")
        else:
            table = cmp.top
            st.markdown("**Most disagreeing queries**")
        shown = components.with_query_text(table.reset_index(drop=True), cur.collection, width=90)
        cols = [c for c in ("diff", "eci_a", "eci_b", "query") if c in shown.columns]
        pick = st.dataframe(
            shown[cols],
            hide_index=True,
            width="stretch",
            height=min(38 + 35 * len(shown), 560),
            on_select="rerun",
            selection_mode="single-row",
            key="cmp_table",
            column_config={
                "eci_a": st.column_config.NumberColumn(a, format="%.3f", width="small"),
                "eci_b": st.column_config.NumberColumn(b, format="%.3f", width="small"),
                "diff": st.column_config.NumberColumn("A − B", format="%+.3f", width="small"),
            },
        )
        st.caption(
            "Choose a row to open the query in the drill-down. Box or lasso on the chart to list other "
            "queries."
        )
        components.open_query_on_select(pick, shown)

    st.subheader("Per-query ECI difference")
    if cmp.n_shared > common.TABLE_MAX_ROWS:
        st.caption(
            f"The {common.TABLE_MAX_ROWS:,} most disagreeing of {cmp.n_shared:,} shared queries; "
            "the queries table on the Export page has them all."
        )
    per_query = components.with_query_text(
        cmp.per_query.head(common.TABLE_MAX_ROWS), cur.collection, width=110
    )
    st.dataframe(
        per_query,
        hide_index=True,
        width="stretch",
        column_config={
            "eci_a": st.column_config.NumberColumn(f"ECI_q {a}", format="%.3f"),
            "eci_b": st.column_config.NumberColumn(f"ECI_q {b}", format="%.3f"),
            "diff": st.column_config.NumberColumn("A − B", format="%+.3f"),
            **{c: st.column_config.NumberColumn(format="%.3f") for c in ("S_a", "S_b", "delta_a", "delta_b")},
        },
    )


scatter_and_tables()
