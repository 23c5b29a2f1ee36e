"""Review queue: the negatives most likely to be false negatives, across every query, first.

Each item shows the query, its positive and the negative side by side, with the words the
positive and the negative share highlighted; mark it *fine* (a real negative) or *false
negative* (an unlabelled positive). A mark applies to the pair in every source that mined it, is
saved at once (it survives a reload) and is used by Export. After 10 marks of each kind the
detector can be refitted on them plus the shipped prior: the unreviewed negatives are re-ranked
and the page shows how the ranking's precision on the marks moved. The marks download as a
labels file (``query-id corpus-id score``, the format of ``qrels/false_negatives.tsv``) and a
labels file uploads as marks. Below: how each flag rule and the score find labelled false
negatives (a labels file next to the data, or your marks).
"""

import streamlit as st

from eci_core.metrics import false_negatives as FN
from eci_core.io.formats import fn_labels
from eci_core.explore import drilldown, review
from ui import components
from ui.state.keys import K_FN_MODELS, K_FN_REFIT, K_MARKS, K_MARKS_RESTORED
from ui.state.launch import read_roots
from ui.state.loading import one_line
from ui.state.marks import (
    MARK_CHOICES,
    MARK_CHOICE_LABELS,
    MARK_FALSE_NEGATIVE,
    MARK_FINE,
    MARK_LABELS,
    MARK_UNMARKED,
    clear_marks,
    fn_scores_now,
    import_labels,
    mark_of_choice,
    marks_labels_bytes,
    pair_marks,
    refit_on_marks,
    set_pair_mark,
)

cur = components.require_result(
    "Review queue",
    "Negatives across all queries, most likely false negative first (false-negative score, "
    "see the bands below). Mark each one; your marks teach the score and feed Export.",
)
res = cur.result
coll = cur.collection
ss = st.session_state
PAGE_SIZE = 10
MIN_EACH = 10  # marks of each kind before a refit is offered

st.html("""
<style>
.rv-col{border:1px solid #e5e7eb;border-radius:8px;padding:8px 12px;background:#fff;height:100%}
.rv-col.pos{border-left:5px solid #009E73;background:#f6fbf8}
.rv-col.neg{border-left:5px solid #D55E00}
.rv-col.q{border-left:5px solid #0072B2;background:#f5f9fd}
.rv-lab{font-size:.75rem;color:#6b7280;text-transform:uppercase;letter-spacing:.04em;margin-bottom:4px}
.rv-text{font-size:.9rem;line-height:1.45;color:#111827}
.rv-text mark{background:#fde68a;padding:0 1px;border-radius:2px}
.rv-head{font-size:.85rem;color:#374151;margin:10px 0 4px 0}
.rv-band{display:inline-block;border-radius:10px;padding:0 8px;font-size:.75rem;margin-left:4px}
.rv-band.likely{background:#fee2e2;color:#991b1b}
.rv-band.possible{background:#fef3c7;color:#92400e}
.rv-band.unlikely{background:#e5e7eb;color:#374151}
.rv-mark{display:inline-block;border-radius:10px;padding:0 8px;font-size:.75rem;background:#e0e7ff;
color:#3730a3;margin-left:4px}
</style>
""")

names = components.source_names(cur)
scores = fn_scores_now(res)
refitted = ss.get(K_FN_MODELS) is not None

# ----------------------------------------------------------------------------- controls
c1, c2 = st.columns([3, 2])
chosen = components.sources_multiselect(names, "rv_sources", where=c1)
show = (
    c2.segmented_control("Show", ["Unreviewed", "Marked", "All"], default="Unreviewed", key="rv_show")
    or "Unreviewed"
)
if not chosen:
    st.info("Choose at least one source.")
    st.stop()

pm = pair_marks()
view = review.review_view(res, scores, chosen, pm, show)  # the queue once per data; only a page is copied
n_fn = sum(v == MARK_FALSE_NEGATIVE for v in pm.values())
n_fine = sum(v == MARK_FINE for v in pm.values())

bands = view.bands
m1, m2, m3, m4 = st.columns(4)
m1.metric(
    "Negatives in the queue",
    f"{view.n_queue:,}",
    help="distinct (query, negative) pairs of the chosen sources",
)
m2.metric(
    "Likely false negatives",
    f"{int(bands.get('likely', 0)):,}",
    help=f"fn_score ≥ {FN.LIKELY:g}; possible: ≥ {FN.POSSIBLE:g}",
)
m3.metric("Marked false negative", f"{n_fn:,}")
m4.metric("Marked fine", f"{n_fine:,}")
st.caption(
    f"Bands: **likely** fn_score ≥ {FN.LIKELY:g} · **possible** ≥ {FN.POSSIBLE:g} · **unlikely** below. "
    + (
        "Ranked by the score refitted on your marks."
        if refitted
        else "Ranked by the shipped score (a logistic model over s_pn, lexical overlap, margin, s_qn, rank, "
        "copy and the cross-encoder margin when it is on)."
    )
    + (
        f" {ss[K_MARKS_RESTORED]} mark(s) were restored from an earlier visit."
        if ss.get(K_MARKS_RESTORED)
        else ""
    )
)


# ----------------------------------------------------------------------------- the queue
def _on_mark(key: str, query_id: str, passage_id: str) -> None:
    set_pair_mark(res.pairs, query_id, passage_id, mark_of_choice(ss.get(key)))


def _col(kind: str, label: str, html_text: str) -> str:
    return (
        f'<div class="rv-col {kind}"><div class="rv-lab">{label}</div>'
        f'<div class="rv-text">{html_text}</div></div>'
    )


def queue_items() -> None:
    """The current page of the queue (a whole-page rerun after each mark: the counters above and
    the "Unreviewed" filter follow at once)."""
    pages = max(1, -(-view.n_view // PAGE_SIZE))
    top = st.columns([1, 4])
    page = int(top[0].number_input("Page", 1, pages, 1, key="rv_page")) if pages > 1 else 1
    top[1].caption(f"{view.n_view:,} negative(s) shown as “{show}”; {PAGE_SIZE} per page.")
    part = view.page(page, PAGE_SIZE)
    if not len(part):
        st.info(
            "Nothing to review here."
            if show != "Unreviewed"
            else "Every negative of these sources is marked."
        )
        return
    for i, row in enumerate(part.itertuples(index=False), start=(page - 1) * PAGE_SIZE + 1):
        qi = coll.query_index(str(row.query_id))
        query = coll.query_texts[qi]
        pos_texts = [coll.passage_texts[p] for p in coll.positives.get(qi, [])]
        neg_text = coll.passage_texts[coll.passage_index(str(row.passage_id))]
        shared = drilldown.shared_words(neg_text, pos_texts)
        band = str(row.fn_band)
        mark = row.mark if isinstance(row.mark, str) else None
        mark_chip = f'<span class="rv-mark">you: {MARK_LABELS[mark]}</span>' if mark else ""
        st.html(
            f'<div class="rv-head"><b>#{i}</b> · fn_score <b>{components.fmt(row.fn_score, ".2f")}</b>'
            f'<span class="rv-band {band}">{band}</span>{mark_chip} · s_pn {components.fmt(row.s_pn)} · '
            f"lex overlap {components.fmt(row.lex_overlap, '.2f')} · margin "
            f"{components.fmt(row.margin, '+.3f')} · in {components.html_escape(row.sources)} · "
            f'<span style="color:#9ca3af">{components.html_escape(row.query_id)} / '
            f'{components.html_escape(row.passage_id)}</span></div>'
        )
        cq, cp, cn, cm = st.columns([1.4, 3.5, 3.5, 3.4], vertical_alignment="top")
        cq.html(_col("q", "Query", components.html_escape(query)))
        cp.html(
            _col("pos", "Positive", "<hr>".join(components.highlight(t, shared) for t in pos_texts) or "—")
        )
        cn.html(_col("neg", "Negative", components.highlight(neg_text, shared)))
        key = f"rv|{row.query_id}|{row.passage_id}"
        ss[key] = mark or MARK_UNMARKED
        cm.segmented_control(
            "Mark",
            MARK_CHOICES,
            key=key,
            required=True,
            format_func=lambda v: MARK_CHOICE_LABELS[v],
            label_visibility="collapsed",
            on_change=_on_mark,
            args=(key, str(row.query_id), str(row.passage_id)),
        )


queue_items()

# ----------------------------------------------------------------------------- teach the score
st.subheader("Teach the score")
if n_fn < MIN_EACH or n_fine < MIN_EACH:
    st.caption(
        f"After {MIN_EACH} marks of each kind (now {n_fn} false negative, {n_fine} fine) the score can be "
        "refitted on your marks plus the shipped prior, and the unreviewed negatives re-ranked."
    )
else:
    b1, b2, _ = st.columns([1, 1, 3])
    if b1.button("Refit on my marks", type="primary", key="rv_refit"):
        refit_on_marks(res)
        st.rerun()
    if refitted and b2.button("Back to the shipped score", key="rv_unrefit"):
        ss[K_FN_MODELS] = None
        ss[K_FN_REFIT] = None
        st.rerun()
rep = ss.get(K_FN_REFIT)
if rep:
    st.markdown(
        f"Precision of the ranking on your {rep['n_marked']} marked negatives ({rep['n_false_negative']} "
        f"false negative, {rep['n_fine']} fine): average precision "
        f"**{components.fmt(rep['ap_before'], '.2f')} → {components.fmt(rep['ap_after'], '.2f')}**, "
        f"precision of the top {rep['n_false_negative']} **{components.fmt(rep['precision_before'], '.2f')} "
        f"→ {components.fmt(rep['precision_after'], '.2f')}** (shipped score → refitted; the refitted "
        "numbers are held out: each mark is scored by a model fitted without it)."
    )
    models = ss.get(K_FN_MODELS)
    if models:
        m = models["base"]
        st.caption(
            "Refitted weights (no cross-encoder): "
            + ", ".join(f"{f} {c:+.2f}" for f, c in zip(m.features, m.coef))
            + f"; intercept {m.intercept:+.2f}."
        )

# ----------------------------------------------------------------------------- labels in and out
st.subheader("Your marks as a labels file")
st.caption(
    "Format of qrels/false_negatives.tsv: `query-id corpus-id score` (1 = false negative, 0 = fine). "
    "Marks are saved in your cache folder with this data's fingerprint, so they survive a reload."
)
l1, l2, l3 = st.columns([1, 2, 1])
l1.download_button(
    "Download labels",
    marks_labels_bytes(),
    file_name="false_negatives.tsv",
    mime="text/tab-separated-values",
    icon=":material/download:",
    key="rv_dl_labels",
    on_click="ignore",
    disabled=not ss[K_MARKS],
    width="stretch",
)
up = l2.file_uploader(
    "Read a labels file", type=["tsv", "txt", "gz"], key="rv_up_labels", label_visibility="collapsed"
)
if up is None:
    ss.pop("rv_up_note", None)
elif ss.get("rv_up_done") != (up.name, up.size):
    try:
        n, matched, n_labels = import_labels(up.getvalue(), res.pairs, name=up.name)
    except ValueError as err:  # one line naming the file and line; the marks are untouched
        ss.pop("rv_up_note", None)
        components.show_error(one_line(err))
    else:
        ss["rv_up_done"] = (up.name, up.size)
        ss["rv_up_note"] = f"{up.name}: {n} mark(s) set from {matched} of its {n_labels} label(s)" + (
            f"; {n_labels - matched} name no scored negative of this data." if matched < n_labels else "."
        )
        st.rerun()
if ss.get("rv_up_note"):
    st.success(components.plain(ss["rv_up_note"]))
if l3.button(
    "Clear all marks",
    key="rv_clear",
    disabled=not ss[K_MARKS],
    width="stretch",
    help="Forget every mark, here and in the saved copy",
):
    clear_marks()
    st.rerun()

# ----------------------------------------------------------------------------- detector quality
st.subheader("Detector quality")
labels_file = fn_labels.find_labels_file(coll, roots=read_roots())
choices = (["labels file next to the data"] if labels_file else []) + (["your marks"] if pm else [])
if not choices:
    st.caption(
        "No labels yet: put qrels/false_negatives.tsv in the dataset folder you opened, or mark negatives "
        "above."
    )
else:
    src_lab = st.segmented_control("Labels", choices, default=choices[0], key="rv_labels_from") or choices[0]
    if src_lab == "your marks":
        labels = {k: (1 if v == MARK_FALSE_NEGATIVE else 0) for k, v in pm.items()}
        st.caption("Only your marked negatives are scored here; unmarked ones count as not false negatives.")
    else:
        try:
            labels = fn_labels.read_labels(labels_file, roots=read_roots())
        except (OSError, ValueError) as err:
            components.show_error(one_line(err))
            st.stop()
        st.caption(
            f"{components.plain(labels_file.name)}: {sum(v > 0 for v in labels.values()):,} labelled false "
            "negatives. On the bundled sample the shipped score was fitted on these very labels, so its "
            "numbers here are in-sample; the README reports it on held-out queries."
        )
    dq = review.detector_quality(res, labels, scores)
    summ = dq["summary"]
    d1, d2 = st.columns([3, 2])
    which = d1.selectbox("Source", ["all sources"] + names, key="rv_dq_source")
    if len(dq["curves"]) and which in set(dq["curves"]["source"]):
        with d1:
            components.plotly(review.pr_figure(dq["curves"], which), key="rv_pr")
    else:
        d1.info(f"No labelled false negative among the negatives of {components.plain(which)}.")
    table = summ[summ["source"] == which][["ranking", "average_precision", "roc_auc"]]
    d2.dataframe(
        table,
        hide_index=True,
        width="stretch",
        column_config={
            "average_precision": st.column_config.NumberColumn("AP", format="%.3f"),
            "roc_auc": st.column_config.NumberColumn("ROC AUC", format="%.3f"),
        },
    )
    share = summ[(summ["ranking"] == "fn_score") & (summ["source"] != "all sources")][
        ["source", "negatives", "labelled", "likely_share"]
    ]
    d2.dataframe(
        share,
        hide_index=True,
        width="stretch",
        column_config={
            "labelled": st.column_config.NumberColumn("labelled false negatives"),
            "likely_share": st.column_config.NumberColumn(
                "likely false negatives",
                format="percent",
                help=f"share of the source's negatives with fn_score ≥ {FN.LIKELY:g}",
            ),
        },
    )
