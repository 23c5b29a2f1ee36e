"""Export: a cleaned training set, the tables and a standalone report.

Choose a source and a cleaning rule (flags, or the false-negative score ≥ t); your marks (drill-down,
review queue) override the rule ("fine" keeps a flagged negative, "false negative" removes one).
Download the cleaned set as a sentence-transformers n-tuple or triplet file, BGE or Tevatron JSONL;
the score tables as CSV or Parquet; and the HTML report.
"""

import streamlit as st

from eci_core.io import cleaning as io_cleaning
from eci_core.io import export as io_export
from eci_core.io.formats import sentence_transformers as st_format
from eci_core.io import tables as io_tables

from eci_core.explore import cleaning, common, overview, report
from ui import components
from ui.state.keys import K_MARKS
from ui.state.marks import MARK_FALSE_NEGATIVE, marks_frame

cur = components.require_result(
    "Export",
    "Turn the scores into a cleaned training set. Nothing is written to disk: every file is a download.",
)
res = cur.result
coll = cur.collection
names = components.source_names(cur)

RULES = {
    "drop_flagged": "Drop flagged negatives (unsafe, near duplicate, cross-encoder)",
    "relabel_flagged": "Move flagged negatives to the positives (only when you checked the flags: most "
    "unsafe negatives are hard negatives, not missed positives)",
    "drop_unsafe_queries": "Drop queries that still have an unsafe negative",
    "drop_fn_score": "Drop negatives with false-negative score ≥ t",
    "relabel_fn_score": "Move negatives with false-negative score ≥ t to the positives",
}

components.url_value("ex_source", "src", names, names[0])
c1, c2 = st.columns([1, 2])
source = c1.selectbox(
    "Source",
    names,
    key="ex_source",
    on_change=components.to_url,
    args=("ex_source", "src"),
    help="Sources are listed best ECI first.",
)
rule = c2.radio("Cleaning rule", list(RULES), format_func=RULES.get, key="ex_rule")
fn_t = 0.5
if rule in io_cleaning.FN_RULES:
    fn_t = c2.slider(
        "t (false-negative score)",
        0.0,
        1.0,
        0.5,
        0.05,
        key="ex_fn_t",
        help="0.5: the 'likely' band (the score says more likely a false negative than not); "
        "0.1: 'possible' and above. The score is the shipped one (the Review queue's refit "
        "does not change Export).",
    )

marks = dict(st.session_state[K_MARKS])
own_marks = {k: v for k, v in marks.items() if k[0] == source}
cleaned = cleaning.cleaned_set(coll, res, rule=rule, marks=own_marks, sources=[source], fn_threshold=fn_t)

n_fn = sum(v == MARK_FALSE_NEGATIVE for v in own_marks.values())
n_fine = len(own_marks) - n_fn
if own_marks:
    st.caption(
        f"Your marks on {components.plain(source)}: {n_fn} false negative(s), {n_fine} fine. They override "
        "the rule."
    )
else:
    st.caption(
        "No marks on this source yet: mark negatives in the Query drill-down or the Review queue to "
        "override the rule."
    )
if cleaned.unmatched_marks:
    st.warning(
        f"{len(cleaned.unmatched_marks)} mark(s) match no negative of {components.plain(source)} and were "
        "ignored."
    )

summary = cleaning.cleaned_summary(cleaned)
row = summary.iloc[0] if len(summary) else None
if row is not None:
    m1, m2, m3, m4 = st.columns(4)
    m1.metric("Queries kept", f"{int(row['queries_out']):,} / {int(row['queries_in']):,}")
    m2.metric("Negatives kept", f"{int(row['negatives_out']):,} / {int(row['negatives_in']):,}")
    m3.metric("Dropped", f"{int(row['dropped']):,}")
    m4.metric("Relabelled as positives", f"{int(row['relabelled']):,}")

with st.expander("What happened to each negative"):
    if len(cleaned.actions) > common.TABLE_MAX_ROWS:
        st.caption(
            f"The first {common.TABLE_MAX_ROWS:,} of {len(cleaned.actions):,} rows; the “actions” download "
            "below has them all."
        )
    st.dataframe(cleaned.actions.head(common.TABLE_MAX_ROWS), hide_index=True, width="stretch")

st.subheader("Cleaned training set")
records = cleaned.get(source)
if not records:
    st.warning("Nothing is left to export with this rule: choose another rule or mark negatives fine.")
else:
    default_n = st_format.ntuple_size(cleaned, source)
    max_k = max(len(r.negatives) for r in records)
    n_col, plan_col = st.columns([1, 3])
    n = n_col.number_input(
        "Negatives per n-tuple row",
        1,
        max(default_n, max_k),
        default_n,
        key=f"ex_n_{source}_{rule}",
        help=f"Default {default_n}: the smallest set size, so every query and every negative is written. "
        "Each query's negatives go in rank order into rows of n; when K is not a multiple of n the query's "
        "last row holds its last n negatives (overlapping the row before). A larger n leaves out the "
        "queries with fewer than n negatives (as mine_hard_negatives does).",
    )
    plan = io_cleaning.ntuple_plan(cleaned, source, n=int(n))
    n_trip = sum(len(r.positives) * len(r.negatives) for r in records)
    n_neg = sum(len(r.negatives) for r in records)
    lines = [
        f"**n-tuple**: {plan.rows:,} rows × {plan.n} negative{'s' if plan.n != 1 else ''} — {plan.queries:,} "
        f"queries, {plan.negatives:,} of {n_neg:,} negatives"
        + (
            f"; {plan.repeated_cells:,} cells repeat a negative (a query's last, overlapping row)"
            if plan.repeated_cells
            else ""
        ),
        f"**triplet**: {n_trip:,} rows — {len(records):,} queries, {n_neg:,} negatives",
        f"**BGE** and **Tevatron**: {len(records):,} lines — {len(records):,} queries, {n_neg:,} negatives",
    ]
    plan_col.markdown("  \n".join(lines))
    if plan.queries_left_out:
        st.warning(
            f"The n-tuple file leaves out {plan.queries_left_out:,} queries with fewer than {plan.n} "
            f"negatives ({plan.negatives_left_out:,} negatives): lower “Negatives per n-tuple row” to "
            f"{default_n} to keep them."
        )
    n_shared = st_format.shared_query_texts(records)
    if n_shared:
        st.info(
            f"{n_shared} queries share their text with another query, so the n-tuple and triplet files "
            "carry a query_id column that keeps them apart when read back. sentence-transformers would "
            "train on it as text: drop it first with dataset.remove_columns(\"query_id\").",
            icon=":material/info:",
        )
    base = f"{source}.{rule}"
    specs = io_export.export_specs()  # every registered format with a writer, in the page's order
    for col, spec in zip(st.columns(len(specs)), specs):
        col.download_button(
            spec.button or spec.label,
            lambda spec=spec: spec.write(cleaned, source, int(n)),
            file_name=f"{base}.{spec.suffix}",
            mime=spec.mime,
            icon=":material/download:",
            key=f"dl_{spec.suffix.split('.')[0]}",
            on_click="ignore",
            width="stretch",
        )
    st.caption(
        "n-tuple and triplet: sentence-transformers training columns (query, positive, negative…), one row "
        "per positive (n-tuple: per positive and row of n negatives; triplet: per negative). BGE: "
        "FlagEmbedding {query_id, query, pos, neg}. Tevatron: {query_id, query, positive_passages, "
        "negative_passages}. All JSONL, readable by datasets.load_dataset('json') and by ECI Explorer "
        "itself, which reads back exactly the queries and negatives counted above."
    )

st.subheader("Score tables")
table_fmt = (
    st.segmented_control("Table format", ["csv", "parquet"], default="csv", key="ex_table_fmt") or "csv"
)
mime = "text/csv" if table_fmt == "csv" else "application/vnd.apache.parquet"
tables = {
    "pairs": ("pairs", res.pairs),
    "queries": ("queries", res.queries),
    "sources": ("sources", res.sources),
    "actions": ("actions", cleaned.actions),
    "marks": ("marks", marks_frame()),
}
st.caption(
    "pairs: one row per negative · queries: one row per (query, source) · sources: the ranking · actions: "
    "what this export did to each negative · marks: your drill-down marks. In CSV, a text cell starting "
    "with =, +, -, @ (or a tab) gets a leading ' so spreadsheet tools never run it as a formula; Parquet "
    "holds the values as they are."
)
cols = st.columns(len(tables))
for col, (label, (stem, df)) in zip(cols, tables.items()):
    col.download_button(
        label,
        lambda df=df: io_tables.table_bytes(df, table_fmt),
        file_name=f"eci_{stem}.{table_fmt}",
        mime=mime,
        key=f"dl_table_{stem}",
        on_click="ignore",
        width="stretch",
        disabled=not len(df),
    )

st.subheader("Report")
st.write(
    "A standalone HTML page with the verdict, the components table, the charts and the settings "
    "(plotly.js is embedded, so it opens offline)."
)
st.download_button(
    "HTML report",
    lambda: report.html_report(res, coll).encode("utf-8"),
    file_name="eci_report.html",
    mime="text/html",
    icon=":material/description:",
    key="dl_report",
    on_click="ignore",
    type="primary",
)
st.caption(components.plain(overview.eci_ranking_line(res)))
