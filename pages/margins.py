"""Margins: how far each negative sits below its positive.

A histogram (or ECDF) of margin = s_qp − s_qn per negative, overlaid or as small multiples,
with a line at 0 (left of it: unsafe negatives) and the 95 %-of-positive band; then how many
negatives each flag rule catches, per source, and how the false-negative score splits them
(likely / possible / unlikely an unlabelled positive).
"""

import streamlit as st

from eci_core.explore import margins
from ui import components

cur = components.require_result(
    "Margins",
    "margin = s_qp − s_qn: how much lower the encoder ranks a negative than the positive. "
    "≤ 0 means the negative looks at least as relevant as the positive (unsafe).",
)
res = cur.result
names = components.source_names(cur)


@st.fragment
def margin_chart() -> None:
    c1, c2, c3 = st.columns([4, 2, 1])
    chosen = components.sources_multiselect(names, "mg_sources", where=c1)
    layout = c2.segmented_control(
        "Layout", ["Overlay", "Small multiples"], default="Overlay", key="mg_layout"
    )
    c3.write("")
    as_ecdf = c3.toggle("ECDF", key="mg_ecdf", help="Cumulative share of negatives with margin ≤ x")
    if not chosen:
        st.info("Choose at least one source.")
        return
    fig = margins.margin_histogram(
        res, chosen, mode="facets" if layout == "Small multiples" else "overlay", ecdf_view=as_ecdf
    )
    components.plotly(fig, key="mg_hist")
    band = margins.percpos_band(res, sources=chosen)
    pct = round(100 * res.config.percpos)
    st.caption(
        f"Red line: margin = 0 (left of it the negative is unsafe). Shaded: the {pct} %-of-positive band "
        f"0 < margin < (1 − {res.config.percpos:g})·s_qp (drawn at the source's median s_qp), where "
        "NV-Retriever's TopK-PercPos would drop negatives as risky."
    )
    st.dataframe(
        band.rename(
            columns={
                "low": "band from",
                "high": "band to (median s_qp)",
                "share": "share of negatives in band",
            }
        ),
        hide_index=True,
        width=720,
        column_config={
            "band from": st.column_config.NumberColumn(format="%.3f"),
            "band to (median s_qp)": st.column_config.NumberColumn(format="%.3f"),
            "share of negatives in band": st.column_config.NumberColumn(format="percent"),
        },
    )


margin_chart()

st.subheader("Flag funnel")
st.caption(
    "How many negatives each rule catches (a negative can fire several rules), how many are new at each "
    "step, and how many are kept. percpos is a risk marker, not a flag. The rules say what they measure: "
    "unsafe = the target encoder ranks the negative at or above the positive (most unsafe negatives are "
    "true hard negatives); whether a negative is an unlabelled positive is the false-negative score below."
)
st.dataframe(
    margins.flag_counts(res, names),
    hide_index=True,
    width="stretch",
    column_config={
        "n_negatives": st.column_config.NumberColumn("negatives"),
        "near_duplicate": st.column_config.NumberColumn("near duplicate"),
        "cross_encoder": st.column_config.NumberColumn(
            "cross-encoder", help="needs the cross-encoder (sidebar)"
        ),
        "percpos": st.column_config.NumberColumn("percpos (risky)"),
        "flagged": st.column_config.NumberColumn("flagged (any)"),
        "flagged_share": st.column_config.NumberColumn("flagged share", format="percent"),
    },
)
if not cur.settings.cross_encoder:
    st.caption("The cross_encoder rule is off: turn the cross-encoder on in the sidebar to use it.")


@st.fragment
def funnel() -> None:
    pick = st.segmented_control("Funnel of", names, default=names[0], key="mg_funnel_source") or names[0]
    fig = margins.flag_funnel_figure(res, pick)
    fig.update_layout(
        legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0),
        height=360,
        margin=dict(l=10, r=10, t=80, b=10),
    )
    left, _ = st.columns([3, 2])
    with left:
        components.plotly(fig, key="mg_funnel")


funnel()


st.subheader("False-negative score")
st.caption(
    "How likely each negative is an unlabelled positive (a logistic model over s_pn, lexical overlap, "
    "margin, s_qn, rank, copy and the cross-encoder margin when it is on; measured on labelled data, see "
    "the README). Bands: likely ≥ 0.5, possible ≥ 0.1, unlikely below. The Review queue lists them in score "
    "order."
)
st.dataframe(
    margins.fn_band_counts(res, names),
    hide_index=True,
    width="stretch",
    column_config={
        "n_negatives": st.column_config.NumberColumn("negatives"),
        "likely_share": st.column_config.NumberColumn("likely share", format="percent"),
        "unsafe_likely": st.column_config.NumberColumn("unsafe & likely FN"),
        "unsafe_unlikely": st.column_config.NumberColumn(
            "unsafe, unlikely FN", help="usually a true hard negative"
        ),
    },
)
