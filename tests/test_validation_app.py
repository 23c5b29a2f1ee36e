"""The Validation page and the Overview verdict with saved validation results, in Streamlit's
AppTest harness and in headless Chromium (port 8620-8629 range of this page's tests).

The fixture (``tests/fixtures/app_small``) is copied to a temporary folder with a saved
validation in ``validation/linear`` (hashing encoder, tiny budget); the page must show that
result's numbers, as ``results.json`` holds them, and the Overview must quote it.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

import eci_core  # noqa: F401

streamlit_testing = pytest.importorskip("streamlit.testing.v1")
AppTest = streamlit_testing.AppTest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
APP = str(ROOT / "app.py")
FIXTURE = ROOT / "tests" / "fixtures" / "app_small"


def plain(text) -> str:
    """``text`` as the pages show text from files: Markdown escaped (``ui.components.plain``)."""
    from ui.components import plain as _plain

    return _plain(text)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    from eci_core.validation import ValidationConfig, validate
    from eci_core.validation.loading import load_for_validation

    d = tmp_path_factory.mktemp("data") / "app_small"
    shutil.copytree(FIXTURE, d)
    coll, _ = load_for_validation([str(d)])
    res = validate(
        coll,
        None,
        ValidationConfig(folds=2, seeds=2, steps=20, batch_size=3, n_bootstrap=200),
        encoder="hashing",
    )
    res.save(d / "validation" / "linear")
    return d


@pytest.fixture(autouse=True)
def _env(monkeypatch, data_dir, tmp_path_factory):
    monkeypatch.setenv("ECI_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.setenv("ECI_DATA", str(data_dir))
    monkeypatch.setenv("ECI_ENCODER", "hashing")
    monkeypatch.delenv("ECI_CROSS_ENCODER", raising=False)


def _doc(data_dir):
    return json.loads((data_dir / "validation" / "linear" / "results.json").read_text())


def _label(data_dir):
    return _label_of(data_dir / "validation" / "linear")


def _label_of(path):
    from ui.state.loading import dataset_label

    return dataset_label(path)


def test_validation_page_shows_the_saved_numbers(data_dir):
    doc = _doc(data_dir)
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.switch_page("pages/validation.py")
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    assert [t.value for t in at.title] == ["Validation"]
    at.selectbox(key="val_choice").set_value(_label(data_dir)).run()
    assert not at.exception
    assert plain(doc["summary"]) in [s.value for s in at.success]  # plain text, Markdown escaped
    frames = [df.value for df in at.dataframe]
    agree = next(f for f in frames if "number" in f.columns)
    down = next(f for f in frames if "variant" in f.columns)
    want = {r["variant"]: r for r in doc["downstream"]}
    assert set(down["variant"]) == set(want) and {"untrained", "in-batch only"} <= set(down["variant"])
    for r in down.to_dict("records"):
        assert r["ndcg@10"] == pytest.approx(want[r["variant"]]["ndcg@10"])
        assert r["ndcg@10_low"] == pytest.approx(want[r["variant"]]["ndcg@10_low"])
    wa = {r["number"]: r for r in doc["agreement"]}
    for r in agree.to_dict("records"):
        w = wa[r["number"]]["spearman"]
        assert (np.isnan(r["spearman"]) and w is None) or r["spearman"] == pytest.approx(w)
    assert len(at.get("plotly_chart")) >= 2  # the effect figure and the scatter
    _assert_effect_first(at, doc)


def _assert_effect_first(at, doc):
    """Effect size and resolved pairs come first, as saved in ``doc``; then the agreement table
    with the joint intervals (sources-only kept); tied sources shown with a rank range."""
    heads = [h.value for h in at.subheader]
    assert heads.index("How far apart the sources train") < heads.index("Agreement with training")
    eff = doc["effect"]["summary"]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Resolved source pairs"] == f"{eff['n_resolved']} of {eff['n_pairs']}"
    assert metrics["Spread (best − worst)"] == f"{100 * eff['spread']:.1f} points"
    assert metrics["May be best"].startswith(f"{len(eff['tied_first'])} source")
    frames = [df.value for df in at.dataframe]
    table = next(f for f in frames if "tied_with" in f.columns)
    assert list(table["source"]) == [r["variant"] for r in doc["effect"]["table"]]
    assert list(table["rank"]) == [r["rank"] for r in doc["effect"]["table"]]
    agree = next(f for f in frames if "number" in f.columns)
    assert {"spearman_src_low", "spearman_src_high", "resolved_accuracy"} <= set(agree.columns)
    wa = {r["number"]: r for r in doc["agreement"]}
    for r in agree.to_dict("records"):
        w = wa[r["number"]]["spearman_low"]
        assert (np.isnan(r["spearman_low"]) and w is None) or r["spearman_low"] == pytest.approx(w)
    captions = [c.value for c in at.caption]
    assert {plain(n) for n in doc["notes"]} <= set(captions) and any(
        c.startswith(plain("Power: ")) for c in captions
    )
    assert any(c.startswith("Intervals: test queries and seeds resampled together") for c in captions)


def test_validation_page_shows_results_saved_before_the_joint_bootstrap(data_dir, tmp_path):
    """A validation saved before the joint bootstrap (sources-only intervals, no effect section in
    its JSON: the sample's linear-both as shipped until 2026-12-07, kept as a fixture) is shown
    with the effect section and joint intervals computed from its per-query table."""
    from eci_core.validation import load_results

    saved = ROOT / "tests" / "fixtures" / "validation_before_joint"
    old = json.loads((saved / "results.json").read_text())
    assert "effect" not in old
    res = load_results(saved)
    out = res.save(tmp_path / "now")  # what the page must show: the reopened result, saved anew
    doc = json.loads((out / "results.json").read_text())
    at = AppTest.from_file(APP, default_timeout=120)
    at.session_state["eci_validations"] = {"saved before the joint bootstrap": res}  # as if opened
    at.run()
    at.switch_page("pages/validation.py")
    at.run()
    at.selectbox(key="val_choice").set_value("saved before the joint bootstrap").run()
    assert not at.exception, [e.message for e in at.exception]
    assert plain(doc["summary"]) in [s.value for s in at.success]
    _assert_effect_first(at, doc)
    assert any(
        c.value.startswith(plain("Power: resolving a true difference of 0.01 nDCG@10")) for c in at.caption
    )
    agree = next(f for f in (df.value for df in at.dataframe) if "number" in f.columns)
    was = {r["number"]: r for r in old["agreement"]}
    for r in agree.to_dict("records"):  # the saved sources-only interval, next to the joint one
        assert r["spearman_src_low"] == pytest.approx(was[r["number"]]["spearman_low"])


def test_overview_quotes_the_validation_of_the_loaded_data(data_dir):
    from eci_core.explore import overview
    from eci_core.validation import load_results

    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    assert not at.exception
    texts = [i.value for i in at.info]
    verdict = next(t for t in texts if t.startswith("Validation \\("))
    assert "Train on" not in verdict and "trained best of the loaded sources" in verdict
    from eci_core.config import ECIConfig
    from eci_core.models.hashing import HashingEncoder
    from eci_core.io.load import load_paths
    from eci_core.scoring import score_collection

    coll, _ = load_paths([str(data_dir)])
    res = score_collection(coll, HashingEncoder(), ECIConfig())
    assert verdict == plain(overview.verdict(res, load_results(data_dir / "validation" / "linear")))


@pytest.mark.browser
@pytest.mark.timeout(600)
def test_validation_page_in_the_browser(data_dir, tmp_path):
    import app_server as A

    if A.chromium_path() is None:
        pytest.skip("Debian chromium is not installed (/usr/bin/chromium)")
    pytest.importorskip("playwright.sync_api")
    doc = _doc(data_dir)
    art = ROOT / "tests" / "artifacts"
    free = A.free_port
    A.free_port = lambda: 8623  # this helper's port range
    try:
        srv = A.start_server(
            data_dir,
            encoder="hashing",
            log_dir=art,
            timeout=120,
            log_name="server-validation.log",
            extra_env={"ECI_CACHE_DIR": str(tmp_path)},
        )
    finally:
        A.free_port = free
    try:
        with A.chromium(viewport=(1400, 4000)) as page:
            page.goto(f"{srv.url}/validation")
            A.wait_until_idle(page, timeout_ms=180_000, min_charts=1, title="Validation")
            assert not A.error_texts(page)
            body = page.inner_text("body")
            label = _label(data_dir)
            if doc["summary"] not in body:  # the sample's shipped results come first: choose ours
                page.locator('[data-testid="stSelectbox"]').filter(has_text="Results").click()
                page.get_by_role("option", name=label).click()
                A.wait_until_idle(page, timeout_ms=180_000, min_charts=1, title="Validation")
                body = page.inner_text("body")
            assert doc["summary"] in body
            page.screenshot(path=str(art / "page-validation.png"), full_page=True)
    finally:
        srv.stop()


def test_validation_page_choices_are_in_the_url(data_dir):
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params["number"] = "S"
    at.run()
    at.switch_page("pages/validation.py")
    at.run()
    assert not at.exception
    assert at.selectbox(key="val_number").value == "S"
    assert at.query_params["number"] == ["S"] or at.query_params["number"] == "S"
