"""Overview: how the sources of negatives rank before training, and what training showed.

The verdict in one line (what a validation of the loaded data showed, else the ECI ranking and a
pointer to the Validation page), the ECI ranking with 95 % bootstrap intervals, P(row beats column),
the ECI components per source (ECI_sem marked experimental) and the sentence-transformers
Positive / Negative / Difference summary.
"""

import streamlit as st

from eci_core.explore import views
from ui import components, state

cur = components.require_result(
    "Overview",
    "ECI = ln(K+1) · harmonic mean of Signal and Safety, per query, averaged over queries. Higher is better.",
)
res = cur.result
best = res.sources.iloc[0]

validation = state.validation_for_loaded_data()
st.info(components.plain(views.verdict(res, validation)), icon=":material/model_training:" if validation is not None else ":material/info:")
if validation is None:
    st.page_link(state.PAGE_FILES["validation"], label="Validation: does ECI predict training on this data?",
                 icon=":material/model_training:")

c1, c2, c3, c4, c5 = st.columns(5)
c1.metric("Sources", f"{len(res.sources)}")
c2.metric("Queries", f"{cur.collection.n_queries:,}")
c3.metric("Negatives scored", f"{len(res.pairs):,}")
c4.metric("Best ECI", f"{best['eci']:.3f}", help=components.plain(f"{best['name']}: the highest-ranked source"))
c5.metric("Its unsafe queries", f"{100 * best['unsafe_query_rate']:.1f} %",
          help=components.plain(f"Share of {best['name']}'s queries with a negative ranked at or above the "
                                "positive (Δ = 0)"))
st.caption(components.plain(f"Target encoder: {res.encoder} · positive rule: {res.config.positive} · "
                            f"aggregate: {res.config.aggregate}"))

left, right = st.columns([3, 2])
with left:
    components.plotly(views.overview_figure(res), key="ov_rank")
with right:
    if len(res.sources) > 1:
        components.plotly(views.beats_heatmap(res), key="ov_beats")
        st.caption("Bootstrap probability that the row's ECI exceeds the column's, on the queries both cover.")
    else:
        st.info("Load a second source to see which one beats which.")

st.subheader("Components")
st.dataframe(
    views.components_table(res),
    hide_index=True,
    width="stretch",
    column_order=["rank", "name", "eci", "unsafe_query_rate", "unsafe_negative_rate", "signal", "safety", "capacity",
                  "de", "eci_arith", "infonce_bound", "eci_sem", "mean_k", "n_queries", "n_negatives",
                  "eci_low", "eci_high"],
    column_config={
        "rank": st.column_config.NumberColumn("#", width="small"),
        "name": st.column_config.TextColumn("source"),
        "eci": st.column_config.NumberColumn("ECI", format="%.3f", help="mean of C·DE over queries"),
        "eci_low": st.column_config.NumberColumn("ECI 2.5 %", format="%.3f"),
        "eci_high": st.column_config.NumberColumn("ECI 97.5 %", format="%.3f"),
        "signal": st.column_config.NumberColumn("Signal S", format="%.3f", help="mean s_qn, clipped at 0"),
        "safety": st.column_config.NumberColumn("Safety Δ", format="%.3f", help="s_qp − max s_qn, clipped at 0"),
        "capacity": st.column_config.NumberColumn("Capacity C", format="%.3f", help="ln(K + 1)"),
        "de": st.column_config.NumberColumn("DE", format="%.3f", help="2·S·Δ / (S + Δ)"),
        "eci_arith": st.column_config.NumberColumn("ECI arith.", format="%.3f",
                                                   help="Ablation: C·(S + Δ)/2, the arithmetic-mean variant"),
        "infonce_bound": st.column_config.NumberColumn("I_NCE", format="%.3f", help="ln(K+1) − InfoNCE loss"),
        "eci_sem": st.column_config.NumberColumn(
            "ECI_sem (exp.)", format="%.3f",
            help="Experimental reconstruction of the paper's v3 metric (ln det of a weighted residual Gram matrix).",
        ),
        "unsafe_query_rate": st.column_config.NumberColumn("unsafe queries", format="percent"),
        "unsafe_negative_rate": st.column_config.NumberColumn("unsafe negatives", format="percent"),
        "mean_k": st.column_config.NumberColumn("mean K", format="%.1f"),
        "n_queries": st.column_config.NumberColumn("queries", format="%d"),
        "n_negatives": st.column_config.NumberColumn("negatives", format="%d"),
    },
)
st.caption("ECI_sem is experimental: our reconstruction of the June version of the paper, not a validated metric.")


@st.fragment
def positive_negative_difference() -> None:
    st.subheader("Positive / Negative / Difference")
    names = components.source_names(cur)
    chosen = st.segmented_control("Source", names, default=names[0], key="ov_summary_source")
    chosen = chosen or names[0]
    st.dataframe(components.summary_display(views.score_summary(res.pairs, chosen)), width=620)
    st.caption("As sentence-transformers' mine_hard_negatives prints it: similarities under the target encoder; "
               "Difference = s_qp − s_qn per negative.")


positive_negative_difference()
