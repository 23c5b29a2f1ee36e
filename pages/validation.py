"""Validation: does ECI predict training on this data?

Open saved results (the bundled sample's are shipped) or run a cheap-trainer validation of the
loaded sources; then, effect size first: how far apart the sources train (spread, each source
against in-batch only and untrained, resolved pairs, tied sources as rank ranges, the power
line); then the agreement table (intervals over test queries and seeds), the scatter of a
pre-training number against downstream nDCG@10 per source, the downstream table with its
baselines, and the trainer agreement.
"""

import streamlit as st

from eci_core.validation import figures
from eci_core.validation.analysis import has_joint_intervals
from ui import components
from ui.state.launch import ROOT, read_roots
from ui.state.loading import one_line
from ui.state.models import get_embedding_cache
from ui.state.navigation import use_navigation_only
from ui.state.scores import current
from ui.state.validation import (
    add_validation,
    matches_loaded_data,
    validation_for_loaded_data,
    validation_results,
)

if use_navigation_only():  # legacy deep-link run: let the entry point draw this page
    import runpy

    runpy.run_path(str(ROOT / "app.py"), run_name="__main__")
    st.stop()

st.title("Validation")
st.caption(
    "Does ECI predict training? Each source's negatives train a retriever on the same budget; nDCG@10 on "
    "held-out queries shows which source really trained best, and which pre-training number ranked the "
    "sources the same way."
)

cur = current()
results = validation_results()


@st.fragment
def run_form() -> None:
    """A cheap-trainer validation of the loaded sources, with a progress bar."""
    coll = cur.collection
    if coll is None or not coll.sources:
        st.info("Load a dataset with negatives in the sidebar to run a validation.")
        return
    has_llm = any(pid.startswith("llm-") for pid in coll.passage_ids[:: max(1, coll.n_passages // 2000)])
    st.warning(
        "How far to trust a cheap trainer: against real fine-tuning (every weight of MiniLM, 3 seeds), "
        "the linear trainer at one epoch (the default) decided 88 % of the source pairs fine-tuning "
        "resolved on NFCorpus and 14 of 14 on this sample's Python FAQ (lower 95 % bounds 69 % and "
        "78 %); trained longer (100 steps × 32) it was at chance on the FAQ. That budget was chosen "
        "after seeing these two datasets, and linear-both at one epoch decided only 64 % on the FAQ "
        "(BENCHMARKS.md, 'Validation'). For a decision that matters, run the fine-tuning reference on "
        "your data: eci validate DIR --trainer finetune.",
        icon=":material/warning:",
    )
    with st.form("val_run"):
        c1, c2, c3 = st.columns(3)
        trainer = c1.selectbox(
            "Trainer",
            ["linear", "linear-both"],
            key="val_trainer",
            help="linear: a linear map on frozen query embeddings; linear-both: on queries and passages. "
            "Full fine-tuning is a CLI job: eci validate DIR --trainer finetune",
        )
        folds = c2.number_input("Folds", 2, 20, 5, key="val_folds")
        seeds = c3.number_input("Seeds", 1, 10, 3, key="val_seeds")
        c4, c5, c6 = st.columns(3)
        steps = c4.number_input(
            "Steps (0: one epoch)",
            0,
            5000,
            0,
            key="val_steps",
            help="0 trains one epoch of the training queries, the budget at which the linear trainer "
            "agreed with fine-tuning on both reference datasets",
        )
        batch = c5.number_input("Batch size", 2, 512, 16, key="val_batch")
        negs = c6.number_input("Negatives per example", 1, 50, 3, key="val_negs")
        exclude = st.text_input(
            "Leave out of the evaluation corpus (id prefix)",
            "llm-" if has_llm else "",
            key="val_exclude",
            help="Passages whose id starts with this are not ranked at evaluation (e.g. LLM-written "
            "negatives)",
        )
        go = st.form_submit_button("Run validation", type="primary")
    if not go:
        return
    from eci_core.validation import ValidationConfig, validate
    from eci_core.validation.loading import with_full_corpus

    bar = st.progress(0.0, text="Starting…")
    try:
        cfg = ValidationConfig(
            trainer=trainer,
            folds=int(folds),
            seeds=int(seeds),
            steps=int(steps) or None,
            batch_size=int(batch),
            negatives_per_example=int(negs),
            exclude_prefixes=(exclude.strip(),) if exclude.strip() else (),
        )
        full = with_full_corpus(
            coll,
            [s.path for s in coll.sources.values() if s.path],  # rank the whole corpus
            roots=read_roots(),
        )
        res = validate(
            full,
            None,
            cfg,
            encoder=cur.settings.encoder,
            cache=get_embedding_cache(),
            progress=components.progress_callback(bar),
            score_config=cur.settings.config,
        )
    except (ValueError, FileNotFoundError) as err:
        bar.empty()
        st.error(one_line(err))
        return
    bar.empty()
    label = f"this session: {trainer}, {int(folds)} folds × {int(seeds)} seeds"
    add_validation(label, res)
    st.session_state["val_choice"] = label
    st.rerun()


with st.expander("Run a cheap-trainer validation of the loaded data", expanded=not results):
    run_form()

if not results:
    st.info(
        "No validation results yet: run one above, or `eci validate DIR --out DIR/validation/linear` and "
        "reload."
    )
    st.stop()

labels = list(results)
qp = st.query_params
if "val_choice" not in st.session_state and qp.get("results") in labels:  # a shared link
    st.session_state["val_choice"] = qp["results"]
if st.session_state.get("val_choice") not in labels:
    # default: the validation the Overview quotes for the loaded data, else the first one
    quoted = validation_for_loaded_data()
    st.session_state["val_choice"] = next((k for k, r in results.items() if r is quoted), labels[0])
choice = st.selectbox("Results", labels, key="val_choice")
qp["results"] = choice
res = results[choice]
m = res.meta
cfg = m.get("config", {})
matches = matches_loaded_data(res)
# a saved results.json is a file anyone may have written: what it says is shown as plain text (never Markdown)
st.caption(
    components.plain(
        f"Trainer {m.get('trainer')} · encoder {m.get('encoder')} · {m.get('n_splits')} split(s) × "
        f"{cfg.get('seeds')} seed(s) · {cfg.get('steps')} steps · batch {cfg.get('batch_size')} · "
        f"{cfg.get('negatives_per_example')} negatives per example · lr {m.get('lr')} · "
        f"{m.get('n_eval_passages'):,} passages ranked · {m.get('seconds')} s"
        + ("" if matches else " · these results are for other data than the loaded sources")
    )
)

st.success(components.plain(res.summary()), icon=":material/model_training:")

st.subheader("How far apart the sources train")
eff = res.effect
if eff is None:
    st.info(
        "Effect sizes need the per-query table: no usable per_query.csv next to these results.json. "
        "Re-run `eci validate` to write it."
    )
    for note in res.notes():
        st.caption(components.plain(note))
else:
    es = eff.summary
    m1, m2, m3, m4 = st.columns(4)
    m1.metric(
        "Spread (best − worst)",
        f"{100 * es['spread']:.1f} points",
        help=f"max − min of the sources' mean nDCG@10, in points (0.01 = 1 point); 95 % CI "
        f"{100 * es['spread_low']:.1f}–{100 * es['spread_high']:.1f} (biased upward: tied sources still "
        "spread)",
    )
    m2.metric(
        "Resolved source pairs",
        f"{es['n_resolved']} of {es['n_pairs']}",
        help=f"paired bootstrap over test queries and seeds; P(trains better) ≥ {es['level']:.2f} either way",
    )
    m3.metric(
        "May be best",
        f"{len(es['tied_first'])} source{'s' if len(es['tied_first']) != 1 else ''}",
        help="sources no other source resolvably beats (tied with the highest): "
        + ", ".join(es["tied_first"]),
    )
    ivu = es.get("in_batch_vs_untrained")
    m4.metric(
        "In-batch only vs untrained",
        "–" if ivu is None else f"{100 * ivu:+.1f} points",
        help=None
        if ivu is None
        else f"95 % CI {100 * es['in_batch_vs_untrained_low']:+.1f} to "
        f"{100 * es['in_batch_vs_untrained_high']:+.1f} points",
    )
    components.plotly(figures.effect_figure(res), key="val_effect")
    st.dataframe(
        figures.effect_display(res),
        hide_index=True,
        width="stretch",
        column_config={
            "rank": st.column_config.TextColumn(
                "rank", help="the ranks the resolved pairs allow: tied sources share a range"
            ),
            "source": st.column_config.TextColumn("source"),
            "ndcg@10": st.column_config.NumberColumn("nDCG@10", format="%.3f"),
            "ndcg@10_low": st.column_config.NumberColumn(
                "2.5 %", format="%.3f", help="intervals in this table: test queries and seeds resampled"
            ),
            "ndcg@10_high": st.column_config.NumberColumn("97.5 %", format="%.3f"),
            "vs_in_batch": st.column_config.NumberColumn("vs in-batch only (points)", format="%+.1f"),
            "vs_in_batch_low": st.column_config.NumberColumn("2.5 %", format="%+.1f"),
            "vs_in_batch_high": st.column_config.NumberColumn("97.5 %", format="%+.1f"),
            "vs_untrained": st.column_config.NumberColumn("vs untrained (points)", format="%+.1f"),
            "vs_untrained_low": st.column_config.NumberColumn("2.5 %", format="%+.1f"),
            "vs_untrained_high": st.column_config.NumberColumn("97.5 %", format="%+.1f"),
            "n_tied": st.column_config.NumberColumn(
                "tied with", format="%d", help="sources it is not resolved against"
            ),
            "tied_with": st.column_config.TextColumn("tied with (names)"),
        },
    )
    for note in res.notes():
        st.caption(components.plain(note))

st.subheader("Agreement with training")
joint = has_joint_intervals(res.agreement)
st.dataframe(
    figures.agreement_display(res),
    hide_index=True,
    width="stretch",
    column_config={
        "number": st.column_config.TextColumn("pre-training number"),
        "spearman": st.column_config.NumberColumn("Spearman ρ", format="%.2f"),
        "spearman_low": st.column_config.NumberColumn("ρ 2.5 %", format="%.2f"),
        "spearman_high": st.column_config.NumberColumn("ρ 97.5 %", format="%.2f"),
        "kendall": st.column_config.NumberColumn("Kendall τ", format="%.2f"),
        "kendall_low": st.column_config.NumberColumn("τ 2.5 %", format="%.2f"),
        "kendall_high": st.column_config.NumberColumn("τ 97.5 %", format="%.2f"),
        "pairwise_accuracy": st.column_config.NumberColumn(
            "pairwise accuracy", format="%.2f", help="share of source pairs ordered as training ordered them"
        ),
        "pairwise_accuracy_low": st.column_config.NumberColumn("acc. 2.5 %", format="%.2f"),
        "pairwise_accuracy_high": st.column_config.NumberColumn("acc. 97.5 %", format="%.2f"),
        "resolved_accuracy": st.column_config.NumberColumn(
            "accuracy on resolved pairs",
            format="%.2f",
            help="share of the resolved source pairs that this number orders as training did",
        ),
        "n_resolved": st.column_config.NumberColumn("resolved pairs", format="%d"),
        "top1_regret": st.column_config.NumberColumn(
            "top-1 regret",
            format="%.3f",
            help="nDCG@10 of the best-training source minus that of this number's pick",
        ),
        "pick": st.column_config.TextColumn("its pick"),
        "pick rank": st.column_config.TextColumn(
            "pick's rank", help="rank range of the pick in training (tied sources share a range)"
        ),
        "n": st.column_config.NumberColumn("sources", format="%d"),
        "spearman_src_low": st.column_config.NumberColumn("ρ 2.5 % (sources only)", format="%.2f"),
        "spearman_src_high": st.column_config.NumberColumn("ρ 97.5 % (sources only)", format="%.2f"),
    },
)
st.caption(
    (
        "Intervals: test queries and seeds resampled together; in every resample each source's nDCG@10 is "
        "re-measured, the sources re-ranked and ρ, τ, accuracy recomputed (the sources are the ones "
        "validated). For comparison, the ρ columns marked 'sources only' resample the sources and treat "
        "each nDCG@10 as exact."
        if joint
        else "Intervals: sources resampled with replacement, each nDCG@10 taken as exact (no per-query table "
        "to resample test queries and seeds)."
    )
    + " Unsafe rates are negated so that higher should be better."
)

st.subheader("Pre-training number vs downstream nDCG@10")
numbers = figures.number_labels(res)
if "val_number" not in st.session_state and qp.get("number") in numbers:
    st.session_state["val_number"] = qp["number"]
number = st.selectbox("Pre-training number", numbers, key="val_number")
qp["number"] = number
components.plotly(figures.scatter_figure(res, number), key="val_scatter")
st.caption(
    "One point per source; error bars: 95 % bootstrap interval over test queries (they overlap because every "
    "source is tested on the same queries: compare two sources with the paired P(row trains better) below); "
    "dashed: Theil–Sen line (median of pairwise slopes); dotted: the baselines; orange: sources that may be "
    "best "
    "(no other source resolvably trains better)."
)

st.subheader("Downstream quality per source")
st.dataframe(
    figures.downstream_display(res),
    hide_index=True,
    width="stretch",
    column_config={
        "rank": st.column_config.TextColumn(
            "rank", help="the ranks the resolved pairs allow: tied sources share a range"
        ),
        "variant": st.column_config.TextColumn("source / baseline"),
        "ndcg@10": st.column_config.NumberColumn("nDCG@10", format="%.3f"),
        "ndcg@10_low": st.column_config.NumberColumn("2.5 %", format="%.3f"),
        "ndcg@10_high": st.column_config.NumberColumn("97.5 %", format="%.3f"),
        "gain": st.column_config.NumberColumn("gain vs in-batch", format="%+.3f"),
        "gain_low": st.column_config.NumberColumn("gain 2.5 %", format="%+.3f"),
        "gain_high": st.column_config.NumberColumn("gain 97.5 %", format="%+.3f"),
        "recall@10": st.column_config.NumberColumn("R@10", format="%.3f"),
        "mrr@10": st.column_config.NumberColumn("MRR@10", format="%.3f"),
        "seed_sd": st.column_config.NumberColumn("seed sd", format="%.4f"),
        "n_test_queries": st.column_config.NumberColumn("test queries", format="%d"),
        "n_seeds": st.column_config.NumberColumn("seeds", format="%d"),
    },
)
if eff is not None:
    with st.expander(
        "P(row trains better than column), paired bootstrap over the shared test queries and seeds"
    ):
        st.dataframe(eff.beats.style.format("{:.2f}", na_rep="–"), width="stretch")
else:
    with st.expander("P(row trains better than column), paired bootstrap on the shared test queries"):
        st.dataframe(res.beats.style.format("{:.2f}", na_rep="–"), width="stretch")

st.subheader("Trainer agreement")
if len(results) > 1:
    st.dataframe(
        figures.trainer_agreement_frame(results),
        hide_index=True,
        width="stretch",
        column_config={"Kendall τ": st.column_config.NumberColumn(format="%.2f")},
    )
    st.caption(
        "Kendall τ between two trainers' rankings of the sources they share, and whether their best source "
        "is the same."
    )
else:
    st.info(
        "Only one set of results: a second trainer (e.g. `eci validate DIR --trainer finetune`) shows "
        "whether the cheap "
        "trainer ranks the sources as full fine-tuning does."
    )

ea = res.encoder_agreement()
if not ea.empty:
    st.subheader("Encoder agreement")
    st.dataframe(ea.style.format("{:.2f}"), width="stretch")
    st.caption("Kendall τ between the ECI rankings of the sources under each encoder.")
