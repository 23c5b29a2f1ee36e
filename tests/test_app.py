"""The dashboard in Streamlit's headless test harness (``streamlit.testing.v1.AppTest``).

Every page renders without an exception and shows its key elements; the numbers on screen are
the numbers ``eci_core.scoring.score_collection`` gives for the small fixture
(``tests/fixtures/app_small``: 6 queries, 3 sources) with the model-free ``HashingEncoder``.

Each page gets a fresh ``AppTest``: run the entry point once (the Overview), then
``switch_page``. (AppTest does not carry sidebar widget values across several reruns of an
``st.navigation`` app; the real server does, which ``tests/test_browser.py`` checks.)
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import eci_core  # noqa: F401  (offline model environment first)
from eci_core.explore import common, compare, drilldown, margins, overview, review
from eci_core.config import ECIConfig
from eci_core.models.hashing import HashingEncoder
from eci_core.io.load import load_paths
from eci_core.scoring import score_collection

streamlit_testing = pytest.importorskip("streamlit.testing.v1")
AppTest = streamlit_testing.AppTest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the ui package (next to app.py), also under a bare `pytest`
APP = str(ROOT / "app.py")
FIXTURE = ROOT / "tests" / "fixtures" / "app_small"


def plain(text) -> str:
    """``text`` as the pages show text from files: Markdown escaped (``ui.components.plain``)."""
    from ui.components import plain as _plain

    return _plain(text)


PAGES = {
    "margins": ("pages/margins.py", "Margins"),
    "signal_safety": ("pages/signal_vs_safety.py", "Signal vs Safety"),
    "projection": ("pages/projection.py", "Projection"),
    "drilldown": ("pages/query.py", "Query drill-down"),
    "compare": ("pages/compare.py", "Compare"),
    "export": ("pages/export.py", "Export"),
    "review": ("pages/review.py", "Review queue"),
}
TIMEOUT = 120


@pytest.fixture(scope="session")
def _cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("eci-cache")


@pytest.fixture(autouse=True)
def _fixture_env(monkeypatch, _cache_dir):
    import shutil

    monkeypatch.setenv("ECI_CACHE_DIR", str(_cache_dir))  # never the user's ~/.cache
    monkeypatch.setenv("ECI_DATA", str(FIXTURE))
    monkeypatch.setenv("ECI_ENCODER", "hashing")
    monkeypatch.delenv("ECI_CROSS_ENCODER", raising=False)
    yield
    shutil.rmtree(
        _cache_dir / "marks", ignore_errors=True
    )  # marks are saved there: none leak into the next test


@pytest.fixture(scope="module")
def expected():
    """What the library computes for the fixture with the app's defaults."""
    coll, report = load_paths([str(FIXTURE)])
    assert not report.errors
    res = score_collection(coll, HashingEncoder(), ECIConfig())
    return coll, res


def _metrics(at) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def _no_exception(at) -> None:
    assert not at.exception, [e.message for e in at.exception]


def open_page(page: str | None = None, query_params: dict | None = None):
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    for k, v in (query_params or {}).items():
        at.query_params[k] = v
    at.run()
    _no_exception(at)
    if page is not None:
        at.switch_page(PAGES[page][0])
        at.run()
        _no_exception(at)
        assert [t.value for t in at.title] == [PAGES[page][1]]
    return at


# ----------------------------------------------------------------------------- overview
def test_overview_numbers_match_the_library(expected):
    coll, res = expected
    at = open_page()
    assert [t.value for t in at.title] == ["Overview"]
    best = res.sources.iloc[0]
    m = _metrics(at)
    assert m["Sources"] == "3"
    assert m["Queries"] == f"{coll.n_queries:,}" == "6"
    assert m["Negatives scored"] == f"{len(res.pairs):,}"
    # counted by hand from the fixture's TREC runs: bm25 19 + dense 15 + random 12
    assert len(res.pairs) == 46
    assert m["Highest ECI"] == f"{best['eci']:.3f}"
    assert m["Its unsafe queries"] == f"{100 * best['unsafe_query_rate']:.1f} %"
    assert "Best ECI" not in m and "Trained best" not in m
    # no validation of this data: the headline says so and names no source; the ECI ranking
    # (never "Train on") and its validity line are in the "ECI ranking (seed metric)" expander
    verdict = overview.verdict(res)
    assert plain(verdict) in [i.value for i in at.info]  # shown as plain text (Markdown escaped)
    assert verdict.startswith("No validated ranking exists for this data.") and best["name"] not in verdict
    assert [e.label for e in at.main.expander] == ["ECI ranking (seed metric)"]
    line = overview.eci_ranking_line(res)
    assert line.startswith(f"ECI ranks {best['name']} first") and "Validation page" in line
    shown = [md.value for md in at.markdown]
    validity = (
        "Not validated on this data: no saved validation covers the loaded sources with the same negatives."
    )
    assert plain(line) in shown and f"**{plain(validity)}**" in shown
    # the components table is the library's, row for row
    comp = at.dataframe[0].value
    want = overview.components_table(res)
    assert list(comp["name"]) == list(want["name"])
    np.testing.assert_allclose(comp["eci"].to_numpy(float), want["eci"].to_numpy(float))
    np.testing.assert_allclose(comp["eci_sem"].to_numpy(float), want["eci_sem"].to_numpy(float))
    assert any("experimental" in c.value for c in at.caption)


def test_overview_summary_table_is_sentence_transformers_style(expected):
    _, res = expected
    at = open_page()
    table = at.dataframe[1].value
    first = res.sources.iloc[0]["name"]
    want = overview.score_summary(res.pairs, first)
    assert list(table.index) == [i.capitalize() for i in want.index]
    n_neg = int((res.pairs["source"] == first).sum())
    assert table.loc["Count", "Negative"] == f"{n_neg:,}"
    assert table.loc["Mean", "Difference"] == f"{want.loc['mean', 'Difference']:.4f}"


def test_changing_an_option_rescores(expected):
    """The sidebar's positive rule reaches score_collection: the Overview shows the numbers of
    the new configuration."""
    coll, _ = expected
    res_max = score_collection(coll, HashingEncoder(), ECIConfig(positive="max"))
    at = open_page()
    at.sidebar.radio(key="set_positive").set_value("max").run()
    _no_exception(at)
    best = res_max.sources.iloc[0]
    assert _metrics(at)["Highest ECI"] == f"{best['eci']:.3f}"
    assert "positive rule: max" in " ".join(c.value.replace("\\", "") for c in at.caption)


def test_switching_pages_never_rescores(monkeypatch):
    import eci_core.scoring as scoring

    calls = []
    real = scoring.score_collection

    def counting(*a, **kw):
        calls.append(1)
        return real(*a, **kw)

    monkeypatch.setattr(scoring, "score_collection", counting)
    at = open_page()  # scores the defaults once (or finds them in the store)
    before = len(calls)
    assert before <= 1
    for path, _title in PAGES.values():
        at.switch_page(path).run()
        _no_exception(at)
    assert len(calls) == before


# ----------------------------------------------------------------------------- every page renders
@pytest.mark.parametrize("page", list(PAGES))
def test_every_page_renders(page):
    at = open_page(page)
    assert not at.error, [e.value for e in at.error]


def test_margins_flag_table_matches_library(expected):
    _, res = expected
    at = open_page("margins")
    assert at.multiselect(key="mg_sources").value == list(res.sources["name"])
    shown = at.dataframe[1].value
    want = margins.flag_counts(res, list(res.sources["name"]))
    assert list(shown["unsafe"]) == list(want["unsafe"])
    # by hand: bm25's d23 (q1) and dense's d24 (q4) are ranked above their positive
    assert dict(zip(shown["source"], shown["unsafe"])) == {"bm25": 1, "dense": 1, "random": 0}


def test_sources_come_from_the_url_and_go_back_into_it():
    at = open_page("margins", query_params={"src": "dense,random"})
    assert at.multiselect(key="mg_sources").value == ["dense", "random"]
    at.multiselect(key="mg_sources").set_value(["bm25"]).run()
    _no_exception(at)
    assert at.query_params.get("src") in ("bm25", ["bm25"])


def test_signal_safety_asks_for_a_selection():
    at = open_page("signal_safety")
    assert any("Lasso Select" in c.value for c in at.caption)
    assert len(at.get("plotly_chart")) == 1


def _scatter_points(at, index: int = 0) -> int:
    """Points the page's plotly chart sends in its WebGL scatter traces."""
    import json

    from eci_core.explore.selection import _decode_typed_array

    spec = json.loads(at.get("plotly_chart")[index].proto.spec)
    n = 0
    for t in spec["data"]:
        if t.get("type") == "scattergl":
            x = t.get("x", [])
            n += len(_decode_typed_array(x)) if isinstance(x, dict) else len(x)
    return n


def test_scatters_send_at_most_the_cap(monkeypatch):
    """Above common.SCATTER_MAX_POINTS the charts draw a stated sample (here the cap is lowered to
    7 so the fixture's 6 queries x 3 sources = 18 points exceed it)."""
    monkeypatch.setattr(common, "SCATTER_MAX_POINTS", 7)
    at = open_page("signal_safety")
    assert _scatter_points(at) == 7
    assert any(
        "7 of 18 (query, source) points" in c.value and "stratified by source" in c.value for c in at.caption
    )
    monkeypatch.setattr(common, "SCATTER_MAX_POINTS", 4)
    at = open_page("compare")
    assert _scatter_points(at) == 4  # 6 shared queries
    assert any("4 of 6 shared queries" in c.value for c in at.caption)


def test_signal_safety_draws_every_point_under_the_cap():
    at = open_page("signal_safety")
    assert _scatter_points(at) == 18
    assert not any("sample" in c.value for c in at.caption)


def test_projection_defaults_to_pca(expected):
    coll, res = expected
    at = open_page("projection")
    # 6 queries + 6 positives + 46 negatives
    assert any(c.value.startswith("58 points") for c in at.caption)
    assert len(at.get("plotly_chart")) == 1


def test_pages_are_prepared_before_the_first_chart(monkeypatch):
    """Scoring new data also computes, in the same run and before the Overview is drawn, what the
    pages derive from it, the Projection page's default PCA map included: the first visit of
    Projection projects nothing (at 3M pairs that took seconds, on a page switch)."""
    import streamlit as st

    import eci_core.explore.projection as P

    st.cache_resource.clear()  # a fresh server: nothing scored or projected yet
    calls = []
    real = P.project_points

    def counted(data, **kw):
        calls.append(kw.get("method"))
        return real(data, **kw)

    monkeypatch.setattr(P, "project_points", counted)
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    _no_exception(at)
    assert [t.value for t in at.title] == ["Overview"]
    assert calls == ["pca"]
    at.switch_page(PAGES["projection"][0])
    at.run()
    _no_exception(at)
    assert calls == ["pca"]  # the page read the prepared map
    assert any(c.value.startswith("58 points") for c in at.caption)


def test_projection_umap_form_passes_its_parameters(monkeypatch):
    """The UMAP form's values reach eci_core.explore.projection.project (UMAP itself is swapped for PCA
    here: its numba compilation alone takes ~20 s; tests/test_projection.py covers it)."""
    import eci_core.explore.projection as P

    calls = []
    real = P.project

    def fake(x, method="umap", **kw):
        calls.append((method, kw.get("n_neighbors"), kw.get("min_dist"), kw.get("metric")))
        return real(x, method="pca")

    monkeypatch.setattr(P, "project", fake)
    at = open_page("projection")
    next(s for s in at.slider if s.label == "n_neighbors").set_value(7)
    next(s for s in at.selectbox if s.label == "metric").set_value("euclidean")
    next(b for b in at.button if b.label == "Compute UMAP").click().run()
    _no_exception(at)
    assert calls[-1] == ("umap", 7, 0.1, "euclidean")
    spec = at.get("plotly_chart")[0].proto.spec
    assert "UMAP (n_neighbors=7, min_dist=0.1, euclidean)" in spec


# ----------------------------------------------------------------------------- drill-down
def test_drilldown_defaults_to_worst_query_and_shows_components(expected):
    coll, res = expected
    at = open_page("drilldown")
    worst = drilldown.worst_query(res)
    assert at.selectbox(key="dd_query").value == worst
    assert at.subheader[0].value.replace("\\", "") == coll.query_texts[coll.query_index(worst)]
    comp = at.dataframe[0].value
    want = res.queries[res.queries["query_id"] == worst]
    assert sorted(comp["source"]) == sorted(want["source"])
    np.testing.assert_allclose(
        comp.set_index("source")["eci"].sort_index().to_numpy(float),
        want.set_index("source")["eci"].sort_index().to_numpy(float),
    )
    assert at.query_params.get("q") in (worst, [worst])


def test_drilldown_opens_the_query_in_the_url(expected):
    coll, _ = expected
    at = open_page("drilldown", query_params={"q": "q4"})
    assert at.selectbox(key="dd_query").value == "q4"
    assert "reverse a string" in at.subheader[0].value


def test_drilldown_search_filters_queries():
    at = open_page("drilldown")
    at.text_input(key="dd_search").input("dictionar").run()
    _no_exception(at)
    assert at.selectbox(key="dd_query").options == ["How can I merge two dictionaries?  ·  q2"]


def test_drilldown_finds_a_query_by_id_and_lists_few_options(expected):
    _, res = expected
    at = open_page("drilldown")
    # without a search: the lowest-ECI queries (all 6 here), never more than 20 + the current one
    assert at.selectbox(key="dd_query").options[0].endswith(drilldown.worst_query(res))
    assert len(at.selectbox(key="dd_query").options) <= 21
    at.text_input(key="dd_search").input("Q4").run()
    _no_exception(at)
    assert at.selectbox(key="dd_query").options[0].endswith("·  q4")
    assert "reverse a string" in at.subheader[0].value


def test_marks_persist_and_feed_export(expected):
    coll, res = expected
    at = open_page("drilldown", query_params={"q": "q1"})
    key = "mk|bm25|q1|d23"
    at.segmented_control(key=key).set_value("fine").run()
    _no_exception(at)
    assert at.session_state["eci_marks"] == {("bm25", "q1", "d23"): "fine"}
    # the export of bm25 under "drop flagged" now keeps d23 (it was its only flagged negative)
    at.switch_page(PAGES["export"][0]).run()
    _no_exception(at)
    m = _metrics(at)
    assert m["Negatives kept"] == "19 / 19"
    assert m["Dropped"] == "0"


# ----------------------------------------------------------------------------- compare / export
def test_compare_numbers(expected):
    _, res = expected
    at = open_page("compare")
    a, b = list(res.sources["name"])[:2]
    assert at.selectbox(key="cmp_a").value == a and at.selectbox(key="cmp_b").value == b
    cmp = compare.compare_sources(res, a, b, n_top=15)
    m = _metrics(at)
    assert m["Shared queries"] == "6"
    assert m[f"Mean ECI_q difference ({a} − {b})"] == f"{cmp.mean_diff:+.3f}"
    assert at.info[0].value == plain(cmp.summary())


def test_compare_sources_from_the_url(expected):
    at = open_page("compare", query_params={"a": "random", "b": "bm25"})
    assert at.selectbox(key="cmp_a").value == "random"
    assert at.selectbox(key="cmp_b").value == "bm25"


def test_export_counts_and_downloads(expected):
    _, res = expected
    at = open_page("export")
    m = _metrics(at)
    best = res.sources.iloc[0]["name"]
    n = int((res.pairs["source"] == best).sum())
    flagged = int(res.pairs.loc[res.pairs["source"] == best, "flagged"].sum())
    assert m["Negatives kept"] == f"{n - flagged:,} / {n:,}"
    labels = [b.proto.label for b in at.get("download_button")]
    for want in ("n-tuple", "triplet", "BGE", "Tevatron", "pairs", "queries", "sources", "HTML report"):
        assert want in labels


# ----------------------------------------------------------------------------- data loading
def test_bad_local_path_keeps_the_loaded_data(tmp_path, monkeypatch):
    monkeypatch.setenv("ECI_DATA_ROOT", str(tmp_path))  # the local-path box reads only inside the data root
    bad = tmp_path / "broken.jsonl"
    bad.write_text('{"query": "q", "pos": ["p"], "neg": ["n"]}\n{"query": \n', encoding="utf-8")
    at = open_page()
    at.sidebar.text_input(key="eci_local_path").set_value(str(bad))
    at.sidebar.button[1].click().run()  # "Add"
    _no_exception(at)
    errors = at.session_state["eci_load_errors"]
    assert len(errors) == 1 and str(bad) in errors[0] and "\n" not in errors[0]
    assert list(at.session_state["eci_collection"].sources) == ["bm25", "dense", "random"]


def test_upload_adds_a_source_named_after_the_file():
    body = b"".join(
        (
            b'{"query": "How do I sort a list in Python?", '
            b'"pos": ["Use list.sort() to sort a list in place."],'
            b' "neg": ["Sort a list of tuples by the second element with a key function."]}\n',
            b'{"query": "How do I reverse a string?", "pos": ["Reverse a string with slicing."],'
            b' "neg": ["Join a list of strings into one string with str.join()."]}\n',
        )
    )
    at = open_page()
    at.sidebar.file_uploader[0].set_value(("my-miner.jsonl", body, "application/jsonl"))
    at.sidebar.button[0].click().run()  # "Add uploaded files"
    _no_exception(at)
    assert at.session_state["eci_load_errors"] == []
    coll = at.session_state["eci_collection"]
    assert list(coll.sources) == ["bm25", "dense", "random", "my-miner"]
    assert len(coll.sources["my-miner"]) == 2


def test_bad_upload_is_reported_by_its_file_name():
    at = open_page()
    at.sidebar.file_uploader[0].set_value(
        ("broken.jsonl", b'{"query": "q", "pos": ["p"], "neg": ["n"]}\n{"query": \n', "application/jsonl")
    )
    at.sidebar.button[0].click().run()
    _no_exception(at)
    errors = at.session_state["eci_load_errors"]
    assert len(errors) == 1 and errors[0].startswith("broken.jsonl:2: "), errors
    assert list(at.session_state["eci_collection"].sources) == ["bm25", "dense", "random"]


def test_no_data_shows_a_hint(monkeypatch, tmp_path):
    monkeypatch.setenv("ECI_DATA", str(tmp_path / "missing"))
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    _no_exception(at)
    assert any("Load a dataset" in i.value for i in at.info)
    assert any("no such file or folder" in e for e in at.session_state["eci_load_errors"])


def test_a_missing_encoder_folder_is_one_line_and_pages_wait(monkeypatch, tmp_path):
    monkeypatch.setenv("ECI_ENCODER", str(tmp_path / "no-such-model"))
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    _no_exception(at)
    (err,) = [e.value for e in at.error]
    assert err.startswith("Could not score the data: ") and "no-such-model" in err and "\n" not in err
    assert any("Scores are not available" in i.value for i in at.info)


def test_launch_args_parse():
    from ui.state.launch import launch_args

    assert launch_args(["--data", "x", "--encoder=hashing", "--cross-encoder", "--other"]) == {
        "data": "x",
        "encoder": "hashing",
        "cross-encoder": "1",
    }
    assert launch_args([]) == {}


def test_highlight_marks_shared_words_safely():
    from ui.components import highlight

    out = highlight("Sort <b>lists</b> & the Lists", ["lists", "the", "sort"])
    assert out == "<mark>Sort</mark> &lt;b&gt;<mark>lists</mark>&lt;/b&gt; &amp; the <mark>Lists</mark>"


def test_pages_never_compute_metrics():
    """Pages read like a description of the UI: no numpy maths, no scoring calls."""
    for path in sorted((ROOT / "pages").glob("*.py")):
        text = path.read_text(encoding="utf-8")
        for forbidden in (
            "import numpy",
            "score_collection",
            "np.mean",
            ".mean(",
            "from eci_core.metrics.eci",
        ):
            assert forbidden not in text, f"{path.name} contains {forbidden!r}"


@pytest.mark.slow
def test_cross_encoder_checkbox_adds_the_cross_encoder_flag(monkeypatch, expected):
    """With the bundled cross-encoder on, the flag table counts the cross_encoder rule as
    score_collection does (real ONNX model, ~3 s)."""
    from eci_core.models.registry import load_cross_encoder

    coll, _ = expected
    want = score_collection(coll, HashingEncoder(), ECIConfig(), cross_encoder=load_cross_encoder(None))
    monkeypatch.setenv("ECI_CROSS_ENCODER", "1")
    at = open_page("margins")
    shown = at.dataframe[1].value
    counts = margins.flag_counts(want, list(want.sources["name"]))
    assert list(shown["cross_encoder"]) == list(counts["cross_encoder"])
    assert list(shown["flagged"]) == list(counts["flagged"])
    assert counts["cross_encoder"].sum() > 0  # the fixture has negatives the cross-encoder rates as relevant


# ----------------------------------------------------------------------------- false negatives
def _html(at) -> str:
    return "\n".join(str(e.proto.body) for e in at.get("html"))


def test_every_page_that_shows_the_score_shows_it(expected):
    _, res = expected
    assert res.pairs["fn_score"].between(0, 1).all()
    # drill-down: each negative card carries its band and score
    at = open_page("drilldown", query_params={"q": "q1"})
    part = res.pairs[res.pairs["query_id"] == "q1"]
    body = _html(at)
    for _, r in part.head(3).iterrows():
        assert f"false negative: {r['fn_band']} ({r['fn_score']:.2f})" in body
    # margins: the band table equals the library's
    at = open_page("margins")
    want = margins.fn_band_counts(res, list(res.sources["name"]))
    shown = next(d.value for d in at.dataframe if "likely_share" in d.value.columns)
    assert list(shown["likely"]) == list(want["likely"]) and list(shown["unsafe_unlikely"]) == list(
        want["unsafe_unlikely"]
    )
    # review queue: the first item is the highest score over all sources
    at = open_page("review")
    q = review.review_queue(res)
    assert f"fn_score <b>{q['fn_score'].iloc[0]:.2f}</b>" in _html(at)
    assert _metrics(at)["Negatives in the queue"] == f"{len(q):,}"
    # export: the score rule with its threshold
    at = open_page("export")
    at.radio(key="ex_rule").set_value("drop_fn_score").run()
    _no_exception(at)
    at.slider(key="ex_fn_t").set_value(0.1).run()
    best = res.sources.iloc[0]["name"]
    p = res.pairs[res.pairs["source"] == best]
    n, hit = len(p), int((p["fn_score"] >= 0.1).sum())
    assert _metrics(at)["Dropped"] == f"{hit:,}" and _metrics(at)["Negatives kept"] == f"{n - hit:,} / {n:,}"


def test_review_queue_marks_every_source_of_a_pair_and_they_survive_a_reload(expected):
    _, res = expected
    q = review.review_queue(res)
    top = q.iloc[0]
    at = open_page("review")
    key = f"rv|{top['query_id']}|{top['passage_id']}"
    at.segmented_control(key=key).set_value("false_negative").run()
    _no_exception(at)
    holders = res.pairs[
        (res.pairs["query_id"] == top["query_id"]) & (res.pairs["passage_id"] == top["passage_id"])
    ]
    want = {(s, top["query_id"], top["passage_id"]): "false_negative" for s in holders["source"]}
    assert at.session_state["eci_marks"] == want
    assert _metrics(at)["Marked false negative"] == "1"
    # a reload is a new session: the marks come back from the cache folder
    at2 = open_page("review")
    assert at2.session_state["eci_marks"] == want
    assert _metrics(at2)["Marked false negative"] == "1"
    # the control shows the mark; "unmarked" clears it (an option of its own, never an empty control)
    at2.segmented_control(key="rv_show").set_value("All").run()
    assert at2.segmented_control(key=key).value == "false_negative"
    assert at2.segmented_control(key=key).options == ["unmarked", "fine", "false negative"]
    at2.segmented_control(key=key).set_value("unmarked").run()
    _no_exception(at2)
    assert at2.session_state["eci_marks"] == {} and _metrics(at2)["Marked false negative"] == "0"
    at2.segmented_control(key=key).set_value("false_negative").run()
    assert at2.session_state["eci_marks"] == want
    # ... and "Clear all marks" forgets them, also on disk
    at2.button(key="rv_clear").click().run()
    _no_exception(at2)
    assert at2.session_state["eci_marks"] == {}
    assert open_page("review").session_state["eci_marks"] == {}


def test_review_queue_refit_after_ten_marks_of_each_kind(expected):
    _, res = expected
    q = review.review_queue(res)
    assert len(q) >= 20
    at = open_page("review")
    # contradict the shipped score: its top 10 are fine, its bottom 10 false negatives
    marks = {}
    for _, r in q.head(10).iterrows():
        for s in res.pairs.loc[
            (res.pairs["query_id"] == r["query_id"]) & (res.pairs["passage_id"] == r["passage_id"]), "source"
        ]:
            marks[(s, r["query_id"], r["passage_id"])] = "fine"
    for _, r in q.tail(10).iterrows():
        for s in res.pairs.loc[
            (res.pairs["query_id"] == r["query_id"]) & (res.pairs["passage_id"] == r["passage_id"]), "source"
        ]:
            marks[(s, r["query_id"], r["passage_id"])] = "false_negative"
    at.session_state["eci_marks"] = marks
    at.run()
    at.button(key="rv_refit").click().run()
    _no_exception(at)
    rep = at.session_state["eci_fn_refit"]
    assert rep["n_false_negative"] > 0 and rep["ap_before"] < 0.5
    assert rep["ap_after"] > rep["ap_before"]
    assert any("average precision" in m.value for m in at.markdown)


def _holders(res, q, p) -> list[str]:
    return list(res.pairs.loc[(res.pairs["query_id"] == q) & (res.pairs["passage_id"] == p), "source"])


def test_review_queue_labels_upload_sets_marks_and_a_bad_file_loses_none(expected):
    """Upload a labels file (qrels/false_negatives.tsv format) on the Review queue: every source
    holding a labelled pair gets its mark, the counters and the queue's mark buttons show them;
    then a malformed file gives one error line naming file, line and field, and every mark stays."""
    _, res = expected
    q = review.review_queue(res)
    fn1, fn2, fine = q.iloc[0], q.iloc[1], q.iloc[2]
    body = (
        "query-id\tcorpus-id\tscore\n"
        f"{fn1['query_id']}\t{fn1['passage_id']}\t1\n{fn2['query_id']}\t{fn2['passage_id']}\t1\n"
        f"{fine['query_id']}\t{fine['passage_id']}\t0\nnot-a-query\tnot-a-passage\t1\n"
    ).encode()
    at = open_page("review")
    assert at.session_state["eci_marks"] == {}
    at.file_uploader(key="rv_up_labels").set_value(
        ("false_negatives.tsv", body, "text/tab-separated-values")
    ).run()
    _no_exception(at)
    want = {
        (s, r["query_id"], r["passage_id"]): m
        for r, m in ((fn1, "false_negative"), (fn2, "false_negative"), (fine, "fine"))
        for s in _holders(res, r["query_id"], r["passage_id"])
    }
    assert len(want) >= 3 and at.session_state["eci_marks"] == want
    assert _metrics(at)["Marked false negative"] == "2" and _metrics(at)["Marked fine"] == "1"
    assert [e.value.replace("\\", "") for e in at.success] == [
        f"false_negatives.tsv: {len(want)} mark(s) set from 3 of its 4 label(s); "
        "1 name no scored negative of this data."
    ]
    assert not at.error
    # the queue shows the marks: "Marked" lists exactly these pairs, each with its mark selected
    at.segmented_control(key="rv_show").set_value("Marked").run()
    _no_exception(at)
    shown = {
        tuple(w.key.split("|")[1:]): w.value for w in at.segmented_control if (w.key or "").startswith("rv|")
    }
    assert shown == {
        (r["query_id"], r["passage_id"]): m
        for r, m in ((fn1, "false_negative"), (fn2, "false_negative"), (fine, "fine"))
    }
    # a bad file: one line naming the file, the line and the field; no mark lost or added
    bad = b"query-id\tcorpus-id\tscore\nq1\tp1\t1\nq2\tp2\tyes\n"
    at.file_uploader(key="rv_up_labels").set_value(("bad.tsv", bad, "text/tab-separated-values")).run()
    _no_exception(at)
    assert [e.value.replace("\\", "") for e in at.error] == ["bad.tsv:3: field 'score': expected a number"]
    assert at.session_state["eci_marks"] == want and not at.success
    assert _metrics(at)["Marked false negative"] == "2" and _metrics(at)["Marked fine"] == "1"
    # ... and the saved copy is the same: a reload restores exactly these marks
    assert open_page("review").session_state["eci_marks"] == want
