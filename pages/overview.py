"""Overview: which source of negatives trains best, as far as training on this data measured it.

With a saved validation of the loaded data made under the same encoder and pre-training settings
(``ui.state.validation.validation_status``), the headline and the first chart rank the loaded
sources by their measured downstream nDCG@10 with 95 % intervals (sources whose difference training
did not resolve share a rank), with how far apart they trained. Without one, the headline says
plainly that no validated ranking exists for this data, and why (e.g. a validation made under
another encoder is never quoted). The ECI ranking (the seed metric) with its validity line, P(row
beats column) and the ECI components sit one click away in the "ECI ranking (seed metric)"
expander; the sentence-transformers Positive / Negative / Difference summary follows.
"""

import streamlit as st

from eci_core.explore import overview
from ui import components
from ui.state.navigation import PAGE_FILES
from ui.state.validation import validation_status

cur = components.require_result(
    "Overview",
    "Which source of negatives trains best, as measured by training on this data. "
    "ECI is a pre-training estimate: its ranking is one click below, with what is known of its validity.",
)
res = cur.result
names = components.source_names(cur)
validation, why_not = validation_status(cur.settings)

# what comes from saved files or source names is shown as plain text (never Markdown)
st.info(
    components.plain(overview.verdict(res, validation, why_not)),
    icon=":material/model_training:" if validation is not None else ":material/info:",
)
if validation is None:
    st.page_link(
        PAGE_FILES["validation"],
        label="Validation: measure which source trains best on this data",
        icon=":material/model_training:",
    )

c1, c2, c3, c4, c5 = st.columns([1, 1, 1, 2, 1])
c1.metric("Sources", f"{len(res.sources)}")
c2.metric("Queries", f"{cur.collection.n_queries:,}")
c3.metric("Negatives scored", f"{len(res.pairs):,}")
st.caption(
    components.plain(
        f"Target encoder: {res.encoder} · positive rule: {res.config.positive} · "
        f"aggregate: {res.config.aggregate}"
    )
)

if validation is not None:
    ranking = overview.validated_ranking(validation, names)
    top = ranking.iloc[0]
    c4.metric(
        "Trained best",
        str(top["source"]),
        help="Highest mean downstream nDCG@10 of the loaded sources in the saved validation",
    )
    c5.metric(
        "Its nDCG@10",
        f"{top['ndcg@10']:.3f}",
        help=f"95 % CI {top['ndcg@10_low']:.3f}–{top['ndcg@10_high']:.3f} over the test queries",
    )
    st.caption(components.plain(overview.validated_effect(validation, names)))
    left, right = st.columns([5, 6])
    with left:
        components.plotly(overview.validated_figure(validation, names), key="ov_measured")
    with right:
        shown = ranking.assign(
            ci=[f"{lo:.3f}–{hi:.3f}" for lo, hi in zip(ranking["ndcg@10_low"], ranking["ndcg@10_high"])]
        )
        st.dataframe(
            shown,
            hide_index=True,
            width="stretch",
            column_order=["rank", "tied", "source", "ndcg@10", "ci", "gain"],
            column_config={
                "rank": st.column_config.NumberColumn(
                    "#", width="small", help="1 + the sources that train better with P ≥ 0.95"
                ),
                "tied": st.column_config.CheckboxColumn(
                    "tied", width="small", help="shares its rank: the difference is not resolved"
                ),
                "ndcg@10": st.column_config.NumberColumn("nDCG@10", format="%.3f"),
                "ci": st.column_config.TextColumn("95 % CI", help="over the test queries"),
                "gain": st.column_config.NumberColumn(
                    "vs in-batch", format="%+.3f", help="nDCG@10 minus training with in-batch negatives only"
                ),
            },
        )
    st.page_link(
        PAGE_FILES["validation"],
        label="Validation: every number, the agreement table, the protocol",
        icon=":material/model_training:",
    )

else:
    predicted, reliability = overview.predicted_ranking(res)
    if predicted is None:
        st.caption(components.plain(reliability))
    else:
        st.subheader("Predicted training value (no validation of this data yet)")
        st.caption(
            components.plain(reliability)
            + " A prediction, not a measurement: validate before you rely on it."
        )
        st.dataframe(
            predicted,
            hide_index=True,
            width="stretch",
            column_config={
                "rank": st.column_config.NumberColumn("#", width="small"),
                "source": st.column_config.TextColumn("source"),
                "predicted_gain": st.column_config.NumberColumn(
                    "predicted gain vs in-batch",
                    format="%+.4f",
                    help="predicted nDCG@10 of fine-tuning on this source minus in-batch negatives only",
                ),
            },
        )

with st.expander("ECI ranking (seed metric)", expanded=False):
    st.markdown(f"**{components.plain(overview.eci_validity(validation, why_not))}**")
    st.markdown(components.plain(overview.eci_ranking_line(res)))
    best = res.sources.iloc[0]
    e1, e2 = st.columns(2)
    e1.metric(
        "Highest ECI",
        f"{best['eci']:.3f}",
        help=components.plain(f"{best['name']}: first in the ECI ranking (not a recommendation)"),
    )
    e2.metric(
        "Its unsafe queries",
        f"{100 * best['unsafe_query_rate']:.1f} %",
        help=components.plain(
            f"Share of {best['name']}'s queries with a negative ranked at or above the positive (Δ = 0)"
        ),
    )
    st.caption("ECI = ln(K+1) · harmonic mean of Signal and Safety, per query, averaged over queries.")
    left, right = st.columns([3, 2])
    with left:
        components.plotly(overview.overview_figure(res), key="ov_rank")
    with right:
        if len(res.sources) > 1:
            components.plotly(overview.beats_heatmap(res), key="ov_beats")
            st.caption(
                "Bootstrap probability that the row's ECI exceeds the column's, on the queries both cover."
            )
        else:
            st.info("Load a second source to see which one beats which.")

    st.subheader("Components")
    st.dataframe(
        overview.components_table(res),
        hide_index=True,
        width="stretch",
        column_order=[
            "rank",
            "name",
            "eci",
            "unsafe_query_rate",
            "unsafe_negative_rate",
            "signal",
            "safety",
            "capacity",
            "de",
            "eci_arith",
            "infonce_bound",
            "eci_sem",
            "mean_k",
            "n_queries",
            "n_negatives",
            "eci_low",
            "eci_high",
        ],
        column_config={
            "rank": st.column_config.NumberColumn("#", width="small"),
            "name": st.column_config.TextColumn("source"),
            "eci": st.column_config.NumberColumn("ECI", format="%.3f", help="mean of C·DE over queries"),
            "eci_low": st.column_config.NumberColumn("ECI 2.5 %", format="%.3f"),
            "eci_high": st.column_config.NumberColumn("ECI 97.5 %", format="%.3f"),
            "signal": st.column_config.NumberColumn(
                "Signal S", format="%.3f", help="mean s_qn, clipped at 0"
            ),
            "safety": st.column_config.NumberColumn(
                "Safety Δ", format="%.3f", help="s_qp − max s_qn, clipped at 0"
            ),
            "capacity": st.column_config.NumberColumn("Capacity C", format="%.3f", help="ln(K + 1)"),
            "de": st.column_config.NumberColumn("DE", format="%.3f", help="2·S·Δ / (S + Δ)"),
            "eci_arith": st.column_config.NumberColumn(
                "ECI arith.", format="%.3f", help="Ablation: C·(S + Δ)/2, the arithmetic-mean variant"
            ),
            "infonce_bound": st.column_config.NumberColumn(
                "I_NCE", format="%.3f", help="ln(K+1) − InfoNCE loss"
            ),
            "eci_sem": st.column_config.NumberColumn(
                "ECI_sem (exp.)",
                format="%.3f",
                help="Experimental reconstruction of the paper's v3 metric (ln det of a weighted residual "
                "Gram matrix).",
            ),
            "unsafe_query_rate": st.column_config.NumberColumn("unsafe queries", format="percent"),
            "unsafe_negative_rate": st.column_config.NumberColumn("unsafe negatives", format="percent"),
            "mean_k": st.column_config.NumberColumn("mean K", format="%.1f"),
            "n_queries": st.column_config.NumberColumn("queries", format="%d"),
            "n_negatives": st.column_config.NumberColumn("negatives", format="%d"),
        },
    )
    st.caption(
        "ECI_sem is experimental: our reconstruction of the June version of the paper, not a validated "
        "metric."
    )


@st.fragment
def positive_negative_difference() -> None:
    st.subheader("Positive / Negative / Difference")
    chosen = st.segmented_control("Source", names, default=names[0], key="ov_summary_source")
    chosen = chosen or names[0]
    st.dataframe(components.summary_display(overview.score_summary(res.pairs, chosen)), width=620)
    st.caption(
        "As sentence-transformers' mine_hard_negatives prints it: similarities under the target encoder; "
        "Difference = s_qp − s_qn per negative."
    )


positive_negative_difference()
