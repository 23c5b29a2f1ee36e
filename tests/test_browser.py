"""End-to-end: the real Streamlit server in headless Chromium (marker ``browser``).

The server runs ``app.py`` on the bundled sample (``sample_data/pyfaq``; the small fixture while
the sample has no negatives yet) with the model-free ``hashing`` encoder so the run takes
seconds; ``ECI_BROWSER_ENCODER=minilm`` runs it with the bundled model instead. Chromium is
Debian's ``/usr/bin/chromium`` driven by Playwright (Playwright's own browser download is never
used); without it
the tests skip and say why. Screenshots of every page go to ``tests/artifacts/`` (git-ignored).
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import app_server as A  # noqa: E402

pytestmark = [pytest.mark.browser, pytest.mark.timeout(600)]

ARTIFACTS = A.ROOT / "tests" / "artifacts"
LOAD_MS = 180_000


def pages(n_sources: int) -> list[tuple[str, str, str, int]]:
    """(link text in the top navigation, URL path, page title, plotly charts drawn at least).
    The P(beats) heatmap and the Compare page need two sources."""
    two = n_sources > 1
    return [
        ("Overview", "", "Overview", 2 if two else 1),
        ("Margins", "margins", "Margins", 2),
        ("Signal vs Safety", "signal_vs_safety", "Signal vs Safety", 1),
        ("Projection", "projection", "Projection", 1),
        ("Query drill-down", "query", "Query drill-down", 0),
        ("Review queue", "review", "Review queue", 0),
        ("Compare", "compare", "Compare", 1 if two else 0),
        ("Export", "export", "Export", 0),
    ]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    reason = A.browser_skip_reason()
    if reason:
        pytest.skip(reason)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    encoder = os.environ.get("ECI_BROWSER_ENCODER", "hashing")
    cache = tmp_path_factory.mktemp("eci-cache")  # never the user's ~/.cache
    srv = A.start_server(
        A.sample_or_fixture(),
        encoder=encoder,
        log_dir=ARTIFACTS,
        timeout=120,
        extra_env={"ECI_CACHE_DIR": str(cache)},
    )
    try:
        yield srv
    finally:
        srv.stop()
        assert srv.proc.poll() is not None, "the server is still running after teardown"


@pytest.fixture(scope="module")
def collection():
    from eci_core.io.load import load_paths

    coll, _ = load_paths([str(A.sample_or_fixture())])
    return coll


@pytest.fixture()
def page(server):
    with A.chromium(viewport=(1400, 4000)) as p:
        yield p


def _assert_clean(page, what: str) -> None:
    errs = A.error_texts(page)
    assert not errs, f"{what}: the page shows an error: {errs}"


def _goto(page, server, path: str, title: str, charts: int) -> None:
    page.goto(f"{server.url}/{path}")
    A.wait_until_idle(page, timeout_ms=LOAD_MS, min_charts=charts, title=title)
    _assert_clean(page, title)


def test_query_url_reopens_the_query(server, page, collection):
    """First test on the fresh server: a deep link must open its page directly (no "Page not
    found" dialog from Streamlit's legacy pages/ routing, see ui.state.use_navigation_only)."""
    coll = collection
    qid = coll.query_ids[-1]
    _goto(page, server, f"query?q={qid}", "Query drill-down", 0)
    text = coll.query_texts[-1]
    assert page.locator("h3", has_text=text[:40]).count() >= 1
    assert f"q={qid}" in page.url
    page.screenshot(path=str(ARTIFACTS / "query-from-url.png"), full_page=True)


def test_every_page_renders_without_error(server, page, collection):
    plan = pages(len(collection.sources))
    _goto(page, server, "", "Overview", plan[0][3])
    for link, path, title, charts in plan:
        page.locator('[data-testid="stTopNavLink"]', has_text=link).click()
        A.wait_until_idle(page, timeout_ms=LOAD_MS, min_charts=charts, title=title)
        _assert_clean(page, title)
        assert urlparse(page.url).path.strip("/") == path
        assert page.locator("h1", has_text=title).count() == 1
        if charts:
            assert page.locator(".js-plotly-plot").count() >= charts
        page.screenshot(path=str(ARTIFACTS / f"page-{path or 'overview'}.png"), full_page=True)
    # the sidebar with the shared settings is on every page
    assert page.locator('[data-testid="stSidebar"]').get_by_text("Data and settings").count() == 1


def _main_plot_box(page):
    """The largest drag area of the first chart: the scatter's plotting area."""
    boxes = [el.bounding_box() for el in page.locator(".js-plotly-plot").first.locator(".nsewdrag").all()]
    boxes = [b for b in boxes if b]
    return max(boxes, key=lambda b: b["width"] * b["height"])


def test_lasso_on_signal_vs_safety_fills_the_table(server, page, collection):
    _goto(page, server, "signal_vs_safety", "Signal vs Safety", 1)
    assert page.get_by_text(re.compile(r"^Selected queries \(\d+\)")).count() == 0
    chart = page.locator(".js-plotly-plot").first
    chart.hover()
    page.locator('.modebar-btn[data-title="Lasso Select"]').first.click()
    box = _main_plot_box(page)
    x0, y0 = box["x"] + 4, box["y"] + 4
    x1, y1 = box["x"] + box["width"] - 4, box["y"] + box["height"] - 4
    page.mouse.move(x0, y0)
    page.mouse.down()
    for x, y in ((x1, y0), (x1, y1), (x0, y1), (x0, y0 + 2)):
        page.mouse.move(x, y, steps=12)
    page.mouse.up()
    heading = page.get_by_text(re.compile(r"^Selected queries \((\d+)\)"))
    heading.wait_for(timeout=60_000)
    A.wait_until_idle(page, timeout_ms=LOAD_MS, min_charts=1, title="Signal vs Safety")
    n = int(re.search(r"\((\d+)\)", heading.inner_text()).group(1))
    assert n > 0
    assert page.locator('[data-testid="stMain"] [data-testid="stDataFrame"]').count() >= 1
    _assert_clean(page, "Signal vs Safety after a lasso")
    page.screenshot(path=str(ARTIFACTS / "signal_vs_safety-lasso.png"), full_page=True)
    # choosing the first row (its selection box, left of the first data row) opens the drill-down
    grid = page.locator('[data-testid="stMain"] [data-testid="stDataFrame"]').first.bounding_box()
    page.mouse.click(grid["x"] + 16, grid["y"] + 35 + 17)
    page.wait_for_url(re.compile(r"/query\?(.*&)?q="), timeout=60_000)
    A.wait_until_idle(page, timeout_ms=LOAD_MS, title="Query drill-down")
    _assert_clean(page, "drill-down opened from a table row")
    qid = unquote(re.search(r"[?&]q=([^&]+)", page.url).group(1))
    text = collection.query_texts[collection.query_index(qid)]
    assert page.locator("h3", has_text=text[:40]).count() >= 1


def _metric(page, label: str) -> str:
    m = page.locator('[data-testid="stMetric"]', has_text=label).first
    return m.locator('[data-testid="stMetricValue"]').inner_text().strip()


def test_export_downloads_a_file_the_loaders_read_back(server, page, tmp_path):
    from eci_core.io.load import load_paths

    _goto(page, server, "export", "Export", 0)
    kept_q = int(_metric(page, "Queries kept").split("/")[0].replace(",", ""))
    kept_n = int(_metric(page, "Negatives kept").split("/")[0].replace(",", ""))
    # Tevatron keeps query ids, so the file's queries are exactly the kept ones
    with page.expect_download(timeout=60_000) as dl:
        page.locator('[data-testid="stDownloadButton"]', has_text="Tevatron").first.click()
    target = tmp_path / dl.value.suggested_filename
    dl.value.save_as(target)
    assert target.name.endswith(".tevatron.jsonl")
    coll, report = load_paths([str(target)])
    assert report.errors == []
    (src,) = report.sources
    assert src.format == "tevatron"
    assert (src.rows_read, src.queries, src.negatives_kept) == (kept_q, kept_q, kept_n)
    # BGE has no ids: one line per kept query
    with page.expect_download(timeout=60_000) as dl_bge:
        page.locator('[data-testid="stDownloadButton"]', has_text="BGE").first.click()
    lines = Path(dl_bge.value.path()).read_text(encoding="utf-8").splitlines()
    assert len(lines) == kept_q
    with page.expect_download(timeout=120_000) as dl2:
        page.locator('[data-testid="stDownloadButton"]', has_text="HTML report").first.click()
    html = Path(dl2.value.path()).read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>") and "ECI ranks" in html
    page.screenshot(path=str(ARTIFACTS / "export.png"), full_page=True)


def test_a_drilldown_mark_reaches_export(server, page):
    _goto(page, server, "export", "Export", 0)
    kept_before = int(_metric(page, "Negatives kept").split("/")[0].replace(",", ""))
    page.locator('[data-testid="stTopNavLink"]', has_text="Query drill-down").click()
    A.wait_until_idle(page, timeout_ms=LOAD_MS, title="Query drill-down")
    # the first tab is the best-ranked source, the one Export shows first; mark its top negative
    card = page.locator(".eci-card:not(.pos)").first
    already_dropped = "flagged" in (card.get_attribute("class") or "")
    page.locator('[data-testid="stMain"] button', has_text="false negative").first.click()
    page.get_by_text(re.compile(r"\d+ negative\(s\) marked \(saved with this data\)")).wait_for(
        timeout=60_000
    )
    A.wait_until_idle(page, timeout_ms=LOAD_MS, title="Query drill-down")
    assert page.locator(".eci-chip.mark", has_text="you: false negative").count() == 1
    page.screenshot(path=str(ARTIFACTS / "query-marked.png"), full_page=True)
    page.locator('[data-testid="stTopNavLink"]', has_text="Export").click()
    A.wait_until_idle(page, timeout_ms=LOAD_MS, title="Export")
    _assert_clean(page, "Export after a mark")
    assert page.get_by_text(re.compile(r"Your marks on .*: 1 false negative\(s\), 0 fine")).count() == 1
    kept_after = int(_metric(page, "Negatives kept").split("/")[0].replace(",", ""))
    # a negative marked false is removed; one the rule had already dropped (flagged) stays out
    assert kept_after == (kept_before if already_dropped else kept_before - 1)


def test_review_queue_mark_to_relabelled_export(server, page, tmp_path):
    """One sitting: open the review queue, mark its first negative a false negative with a real
    click, reload (the mark survives), download the marks as a labels file, and export the source
    with "move negatives with false-negative score >= t to the positives": the marked negative
    comes back as a positive of its query in the file, read back by the loaders."""
    import json

    from eci_core.io.formats.fn_labels import read_labels
    from eci_core.io.load import load_paths

    _goto(page, server, "review", "Review queue", 0)
    before = int(_metric(page, "Marked false negative").replace(",", ""))
    head = page.locator(".rv-head").first.inner_text()
    qid, pid = [x.strip() for x in head.rsplit("·", 1)[1].split(" / ")]
    sources = re.search(r"· in (\S+) ·", head).group(1).split(",")
    page.locator('[data-testid="stMain"] button', has_text="false negative").first.click()
    page.wait_for_function(
        "([n]) => [...document.querySelectorAll('[data-testid=\"stMetric\"]')].some(m => "
        "m.innerText.includes('Marked false negative') && m.innerText.includes(String(n)))",
        arg=[before + 1],
        timeout=60_000,
    )
    A.wait_until_idle(page, timeout_ms=LOAD_MS, title="Review queue")
    _assert_clean(page, "Review queue after a mark")
    page.screenshot(path=str(ARTIFACTS / "review-marked.png"), full_page=True)
    # a reload is a new session: the mark comes back from the cache folder
    page.reload()
    A.wait_until_idle(page, timeout_ms=LOAD_MS, title="Review queue")
    assert _metric(page, "Marked false negative") == str(before + 1)
    # the marks as a labels file, in the format of qrels/false_negatives.tsv
    with page.expect_download(timeout=60_000) as dl:
        page.locator('[data-testid="stDownloadButton"]', has_text="Download labels").first.click()
    labels = read_labels(Path(dl.value.path()))
    assert labels[(qid, pid)] == 1
    # Export: the source that mined it, rule "relabel by false-negative score"
    _goto(page, server, f"export?src={sources[0]}", "Export", 0)
    page.get_by_text("Move negatives with false-negative score ≥ t to the positives").click()
    A.wait_until_idle(page, timeout_ms=LOAD_MS, title="Export")
    _assert_clean(page, "Export with the score rule")
    assert page.get_by_text(re.compile(r"Your marks on .*: \d+ false negative\(s\)")).count() == 1
    relabelled = int(_metric(page, "Relabelled as positives").replace(",", ""))
    assert relabelled >= 1
    page.screenshot(path=str(ARTIFACTS / "export-fn-rule.png"), full_page=True)
    with page.expect_download(timeout=60_000) as dl2:
        page.locator('[data-testid="stDownloadButton"]', has_text="Tevatron").first.click()
    target = tmp_path / dl2.value.suggested_filename
    dl2.value.save_as(target)
    assert "relabel_fn_score" in target.name
    rows = [json.loads(line) for line in target.read_text(encoding="utf-8").splitlines()]
    mine = [r for r in rows if r["query_id"] == qid]
    assert len(mine) == 1
    assert pid in [p["docid"] for p in mine[0]["positive_passages"]]
    assert pid not in [p["docid"] for p in mine[0]["negative_passages"]]
    coll, report = load_paths([str(target)])
    assert report.errors == []
    qi = coll.query_index(qid)
    assert pid in [coll.passage_ids[p] for p in coll.positives[qi]]


#: Click the "unmarked" pill of the row showing passage ``pid`` (null when no such row is on screen).
CLEAR_ROW_JS = """([pid]) => {
  const ids = [...document.querySelectorAll('[data-testid=stMain] .eci-id')];
  const id = ids.find(e => e.innerText.split(' · ')[0] === pid);
  if (!id) return null;
  const row = id.closest('[data-testid=stHorizontalBlock]');
  const btn = [...row.querySelectorAll('button')].find(b => b.innerText.trim() === 'unmarked');
  btn.click();
  return document.querySelector('[data-testid=stApp]').getAttribute('data-test-script-state');
}"""


def _pick_query(page, option: int) -> None:
    page.locator('[data-testid="stMain"] [data-testid="stSelectbox"]').first.click()
    page.locator('[role="option"]').nth(option).click()


def _first_row(page) -> tuple[str, str]:
    """(passage id, card text) of the first negative shown (the first source tab)."""
    card = page.locator('.eci-card:not(.pos)').first
    return card.locator('.eci-id').inner_text().split(" · ")[0], card.inner_text()


def test_a_mark_changed_right_after_the_query_picker_is_kept(server, page):
    """Clicks made while a newly picked query loads are kept and saved: the previous query's rows
    stay on screen (faded) for a fraction of a second and can be clicked. A cleared mark there
    used to be dropped (the control went back to empty, which Streamlit did not see as a change
    for a row no longer drawn); a new mark on the new query's row, clicked once it shows, counts."""
    _goto(page, server, "query", "Query drill-down", 0)
    _pick_query(page, 7)
    A.wait_until_idle(page, timeout_ms=LOAD_MS, title="Query drill-down")
    qx = re.search(r"[?&]q=([^&]+)", page.url).group(1)
    px, _ = _first_row(page)
    page.locator('[data-testid="stMain"] button', has_text="false negative").first.click()
    A.wait_until_idle(page, timeout_ms=LOAD_MS, title="Query drill-down")
    assert "you: false negative" in _first_row(page)[1]
    # pick another query and, at once, clear the mark on the previous query's row still shown: the
    # option and the clear are clicked in one script turn, so the clear always lands while the new
    # query loads (two Playwright calls left a round trip in which a fast rerun could redraw first)
    page.locator('[data-testid="stMain"] [data-testid="stSelectbox"]').first.click()
    page.locator('[role="option"]').nth(8).wait_for()
    state = page.evaluate(
        f"([n, pid]) => {{ document.querySelectorAll('[role=option]')[n].click(); "
        f"return ({CLEAR_ROW_JS})([pid]); }}",
        [8, px],
    )
    assert state is not None, "the previous query's row was already gone"
    A.wait_until_idle(page, timeout_ms=LOAD_MS, title="Query drill-down")
    qy = re.search(r"[?&]q=([^&]+)", page.url).group(1)
    assert qy != qx
    # the new query: mark its first negative as soon as it is on screen
    py, text = _first_row(page)
    assert "you:" not in text
    page.locator('[data-testid="stMain"] button', has_text="false negative").first.click()
    A.wait_until_idle(page, timeout_ms=LOAD_MS, title="Query drill-down")
    assert "you: false negative" in _first_row(page)[1]
    # both were saved: a reload is a new session that reads the marks back from the cache folder
    _goto(page, server, f"query?q={qy}", "Query drill-down", 0)
    assert _first_row(page)[0] == py and "you: false negative" in _first_row(page)[1]
    _goto(page, server, f"query?q={qx}", "Query drill-down", 0)
    pid, text = _first_row(page)
    assert pid == px and "you:" not in text, f"the cleared mark of {qx} / {px} came back: {text[:200]}"
    page.screenshot(path=str(ARTIFACTS / "query-mark-after-picker.png"), full_page=True)
