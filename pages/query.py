"""Query drill-down: one query, its positives, and every source's negatives for it.

Pick a query (search by words or id: the picker lists the top matches, else the lowest-ECI
queries; the default is the query with the lowest ECI). Per source
the negatives are ranked by s_qn, with margin, s_pn, lexical overlap (words shared with the
positive highlighted), cross-encoder margin, the flag rules that fired (each says what it
measures: unsafe = ranked at or above the positive) and the false-negative score with its band
(how likely the negative is an unlabelled positive). Mark a negative as a "false negative" or
"fine" ("unmarked" clears it): marks are saved with the data (they survive a reload) and used by Export.
"""

import streamlit as st

from eci_core.explore import drilldown
from ui import components
from ui.state.keys import K_MARKS, K_QUERY
from ui.state.marks import (
    MARK_CHOICES,
    MARK_CHOICE_LABELS,
    MARK_LABELS,
    MARK_UNMARKED,
    mark_key,
    mark_of_choice,
    set_mark,
)
from ui.state.navigation import qp_get, qp_set

cur = components.require_result(
    "Query drill-down",
    "Read the negatives the way the encoder sees them: highest similarity first.",
)
res = cur.result
coll = cur.collection
ss = st.session_state

CSS = """
<style>
.eci-card{border:1px solid #e5e7eb;border-radius:8px;padding:10px 14px;margin:0 0 6px 0;background:#fff}
.eci-card.flagged{border-left:5px solid #D55E00}
.eci-card.risky{border-left:5px solid #E69F00}
.eci-card.pos{border-left:5px solid #009E73;background:#f6fbf8}
.eci-head{font-size:.82rem;color:#4b5563;margin-bottom:4px}
.eci-head b{color:#111827}
.eci-text{font-size:.93rem;line-height:1.45;color:#111827}
.eci-text mark{background:#fde68a;padding:0 1px;border-radius:2px}
.eci-chip{display:inline-block;border-radius:10px;padding:0 8px;margin-left:4px;font-size:.75rem;
background:#fee2e2;color:#991b1b}
.eci-chip.risk{background:#fef3c7;color:#92400e}
.eci-chip.ok{background:#dcfce7;color:#166534}
.eci-chip.mark{background:#e0e7ff;color:#3730a3}
.eci-chip.fn-likely{background:#fecaca;color:#7f1d1d;font-weight:600}
.eci-chip.fn-possible{background:#fef3c7;color:#92400e}
.eci-chip.fn-unlikely{background:#f3f4f6;color:#374151}
.eci-neg{color:#b91c1c;font-weight:600}
.eci-id{font-size:.72rem;color:#9ca3af;margin-top:4px}
</style>
"""
st.html(CSS)
FIRST_SHOWN = 5  # negatives per source shown before "Show all"

# ----------------------------------------------------------------------------- choose the query
worst = drilldown.worst_query(res)
if worst is None:
    st.info("No scored query.")
    st.stop()

c_search, c_pick = st.columns([1, 3])
search = c_search.text_input("Search queries", key="dd_search", placeholder="words or id")
options, found = drilldown.query_choices(coll, res, search, current=qp_get("q") or ss.get("dd_query"))
if not options:
    c_pick.warning(f"No query matches “{search}”.")
    st.stop()
components.url_value("dd_query", "q", options, worst if worst in options else options[0])
qid = c_pick.selectbox(
    f"Query ({found})",
    options,
    key="dd_query",
    format_func=lambda q: components.query_label(cur, q, width=110),
    on_change=components.to_url,
    args=("dd_query", "q"),
)
ss[K_QUERY] = qid
qp_set(q=qid)
if qid == worst:
    st.caption("Showing the query with the lowest ECI (mean over sources). Search or pick another above.")

dd = drilldown.query_drilldown(coll, res, qid)

st.subheader(components.md_escape(dd.query))
st.caption(
    f"query id `{dd.query_id}` · {len(dd.positives)} positive(s) · "
    f"{dd.negatives['source'].nunique() if len(dd.negatives) else 0} source(s) with negatives"
)

for pid, text in zip(dd.positive_ids, dd.positives):
    st.html(
        f'<div class="eci-card pos"><div class="eci-head"><b>Positive</b> '
        f'<span class="eci-chip ok">{components.html_escape(pid)}</span></div>'
        f'<div class="eci-text">{components.highlight(text, [])}</div></div>'
    )

# ----------------------------------------------------------------------------- per-source metrics
st.markdown("**ECI components for this query**")
met = dd.metrics
cols = [
    c
    for c in ("source", "K", "C", "S", "delta", "DE", "eci", "eci_arith", "infonce", "eci_sem", "unsafe")
    if c in met.columns
]
st.dataframe(
    met[cols],
    hide_index=True,
    width="stretch",
    column_config={
        "C": st.column_config.NumberColumn("C = ln(K+1)", format="%.3f"),
        "S": st.column_config.NumberColumn("Signal S", format="%.3f"),
        "delta": st.column_config.NumberColumn("Safety Δ", format="%.3f"),
        "DE": st.column_config.NumberColumn(format="%.3f"),
        "eci": st.column_config.NumberColumn("ECI_q", format="%.3f"),
        "eci_arith": st.column_config.NumberColumn("ECI arith.", format="%.3f"),
        "infonce": st.column_config.NumberColumn("I_NCE", format="%.3f"),
        "eci_sem": st.column_config.NumberColumn("ECI_sem (exp.)", format="%.3f"),
    },
)


# ----------------------------------------------------------------------------- negatives + marks
def _on_mark(key: str, source: str, query_id: str, passage_id: str) -> None:
    set_mark(source, query_id, passage_id, mark_of_choice(ss.get(key)))


def negative_card(row, rank_label: str, mark: str | None = None) -> str:
    flagged = bool(row.get("flagged", False))
    risky = bool(row.get("percpos", False))
    cls = "flagged" if flagged else ("risky" if risky else "")
    margin = row["margin"]
    margin_txt = components.fmt(margin, "+.3f")
    if margin <= 0:
        margin_txt = f'<span class="eci-neg">{margin_txt}</span>'
    chips = ""
    reasons = str(row.get("flag_reasons") or "")
    for r in [r for r in reasons.split(",") if r]:
        chips += f'<span class="eci-chip">{components.html_escape(r)}</span>'
    if risky:
        chips += '<span class="eci-chip risk">percpos (risky)</span>'
    if mark:
        chips += f'<span class="eci-chip mark">you: {MARK_LABELS[mark]}</span>'
    band = str(row.get("fn_band") or "")
    if band in ("likely", "possible", "unlikely"):
        chips += (
            f'<span class="eci-chip fn-{band}" title="false-negative score: how likely this negative is an '
            f'unlabelled positive">false negative: {band} '
            f'({components.fmt(row.get("fn_score"), ".2f")})</span>'
        )
    head = (
        f"<b>{rank_label}</b> · s_qn {components.fmt(row['s_qn'])} · margin {margin_txt} · "
        f"s_pn {components.fmt(row['s_pn'])} · lex overlap {components.fmt(row['lex_overlap'], '.2f')} · "
        f"ce margin {components.fmt(row.get('ce_margin'), '+.2f')}{chips}"
    )
    return (
        f'<div class="eci-card {cls}"><div class="eci-head">{head}</div><div '
        f'class="eci-text">{components.highlight(row["text"], list(row["shared_words"]))}</div><div '
        f'class="eci-id">{components.html_escape(str(row["passage_id"]))} · rank {int(row["rank"])} in the '
        'file</div></div>'
    )


@st.fragment
def negatives_by_source() -> None:
    st.markdown(
        "**Negatives per source** · words shared with a positive are <mark>highlighted</mark> (common "
        "function words left plain) · red chips: flag rules that fired (unsafe: ranked at or above the "
        "positive; most unsafe negatives are real hard negatives) · *false negative: likely / possible / "
        "unlikely*: the false-negative score's band · mark each negative *fine* or *false negative* "
        "(*unmarked* clears a mark)",
        unsafe_allow_html=True,
    )
    neg = dd.negatives
    if not len(neg):
        st.info("No source has negatives for this query.")
        return
    names = [n for n in components.source_names(cur) if n in set(neg["source"])]
    labels = []
    for n in names:
        part = neg[neg["source"] == n]
        nf = int(part["flagged"].sum())
        labels.append(f"{n} ({len(part)}" + (f", {nf} flagged)" if nf else ")"))
    tabs = st.tabs(labels)
    marks = ss[K_MARKS]
    for tab, name in zip(tabs, names):
        with tab:
            part = neg[neg["source"] == name].reset_index(drop=True)
            show_all = True
            if len(part) > FIRST_SHOWN:
                show_all = st.toggle(
                    f"Show all {len(part)} negatives (the {FIRST_SHOWN} most similar are shown)",
                    key=f"dd_all_{name}",
                )
            for _, row in (part if show_all else part.head(FIRST_SHOWN)).iterrows():
                left, right = st.columns([7, 3], vertical_alignment="center")
                mark = marks.get(mark_key(name, dd.query_id, row["passage_id"]))
                left.html(negative_card(row, f"#{int(row['rank_by_sim'])}", mark))
                key = f"mk|{name}|{dd.query_id}|{row['passage_id']}"
                ss[key] = mark or MARK_UNMARKED
                right.segmented_control(
                    "Mark",
                    MARK_CHOICES,
                    key=key,
                    required=True,
                    format_func=lambda v: MARK_CHOICE_LABELS[v],
                    label_visibility="collapsed",
                    on_change=_on_mark,
                    args=(key, name, dd.query_id, str(row["passage_id"])),
                )
    n_marks = len(marks)
    if n_marks:
        st.caption(
            f"{n_marks} negative(s) marked (saved with this data); Export applies the marks. "
            "The Review queue lists every query's negatives by false-negative score."
        )


negatives_by_source()
