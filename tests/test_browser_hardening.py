"""End-to-end hardening checks (issue 10) in headless Chromium against the real server (marker
``browser``): a typed ``/overview`` opens the Overview without Streamlit's "Page not found" pop-up,
with the Overview marked in the top bar; every
export downloaded in the browser, for every cleaning rule, reads back with the counts the Export
page shows; the "Add or open data" panel stays open while a file is chosen; an error naming a
file with Markdown in its name is shown as text (no link).

The server runs on a port of 8640-8649 with the bundled sample (or the small fixture) and the
model-free ``hashing`` encoder. Screenshots go to ``tests/artifacts/``.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import app_server as A  # noqa: E402

pytestmark = [pytest.mark.browser, pytest.mark.timeout(900)]

ARTIFACTS = A.ROOT / "tests" / "artifacts"
LOAD_MS = 180_000
PORTS = range(8640, 8650)
RULE_LABELS = {  # the Export page's radio labels
    "drop_flagged": "Drop flagged negatives",
    "relabel_flagged": "Move flagged negatives to the positives",
    "drop_unsafe_queries": "Drop queries that still have an unsafe negative",
}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    reason = A.browser_skip_reason()
    if reason:
        pytest.skip(reason)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    cache = tmp_path_factory.mktemp("eci-cache")
    srv = A.start_server(
        A.sample_or_fixture(),
        encoder="hashing",
        log_dir=ARTIFACTS,
        timeout=120,
        extra_env={"ECI_CACHE_DIR": str(cache)},
        log_name="server-hardening.log",
        port=A.free_port_in(PORTS),
    )
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture()
def page(server):
    with A.chromium(viewport=(1400, 3000)) as p:
        yield p


def _assert_clean(page, what: str) -> None:
    errs = A.error_texts(page)
    assert not errs, f"{what}: the page shows an error: {errs}"


def _int(text: str) -> int:
    return int(text.split("/")[0].strip().replace(",", ""))


def _metric(page, label: str) -> str:
    m = page.locator('[data-testid="stMetric"]', has_text=label).first
    return m.locator('[data-testid="stMetricValue"]').inner_text().strip()


def test_typed_overview_url_opens_without_page_not_found(server, page):
    """First test on the fresh server (the legacy pages/ routing is still on for its first run)."""
    for attempt in ("fresh server", "warm server"):
        page.goto(f"{server.url}/overview")
        A.wait_until_idle(page, timeout_ms=LOAD_MS, min_charts=1, title="Overview")
        assert page.locator('[data-testid="stDialog"]').count() == 0, attempt
        assert "Page not found" not in page.locator("body").inner_text(), attempt
        _assert_clean(page, f"/overview on a {attempt}")
        assert page.locator("h1", has_text="Overview").count() == 1
        # the alias switches to the Overview at "/": the top bar marks it as the current page
        nav = page.locator('[data-testid="stTopNavLink"]')
        current = [
            nav.nth(i).inner_text().split()[-1]
            for i in range(nav.count())
            if nav.nth(i).get_attribute("aria-current") == "page"
        ]
        assert current == ["Overview"] and page.url.rstrip("/") == server.url, (attempt, current, page.url)
    page.goto(f"{server.url}/overview?sources=bm25")  # query parameters survive the switch
    A.wait_until_idle(page, timeout_ms=LOAD_MS, min_charts=1, title="Overview")
    assert page.url == f"{server.url}/?sources=bm25", page.url
    page.screenshot(path=str(ARTIFACTS / "overview-typed-url.png"), full_page=True)


def test_every_export_read_back_matches_the_export_page(server, page, tmp_path):
    from eci_core.io.load import load_paths

    page.goto(f"{server.url}/export")
    A.wait_until_idle(page, timeout_ms=LOAD_MS, title="Export")
    _assert_clean(page, "Export")
    checked = 0
    for rule, label in RULE_LABELS.items():
        page.locator('[data-testid="stRadio"] label', has_text=label).first.click()
        A.wait_until_idle(page, timeout_ms=LOAD_MS, title="Export")
        _assert_clean(page, f"Export, {rule}")
        kept_q, kept_n = _int(_metric(page, "Queries kept")), _int(_metric(page, "Negatives kept"))
        plan = page.get_by_text(re.compile(r"^n-tuple: [\d,]+ rows × \d+ negatives?")).first.inner_text()
        m = re.search(r"— ([\d,]+) queries, ([\d,]+) of ([\d,]+) negatives", plan)
        assert m and (_int(m.group(1)), _int(m.group(2)), _int(m.group(3))) == (kept_q, kept_n, kept_n), plan
        for fmt in ("n-tuple", "triplet", "BGE", "Tevatron"):
            with page.expect_download(timeout=120_000) as dl:
                page.locator('[data-testid="stDownloadButton"]', has_text=fmt).first.click()
            target = tmp_path / f"{rule}.{dl.value.suggested_filename}"
            dl.value.save_as(target)
            coll, report = load_paths([str(target)])
            assert report.errors == [], (rule, fmt, report.errors)
            (src,) = report.sources
            assert (src.queries, src.negatives_kept) == (kept_q, kept_n), (rule, fmt)
            checked += 1
        page.screenshot(path=str(ARTIFACTS / f"export-{rule}.png"), full_page=True)
    assert checked == 12


def _data_panel(page):
    return page.locator(
        '[data-testid="stSidebar"] [data-testid="stExpander"]', has_text="Add or open data"
    ).first


def test_data_panel_stays_open_and_markdown_in_errors_is_text(server, page):
    page.goto(f"{server.url}/")
    A.wait_until_idle(page, timeout_ms=LOAD_MS, min_charts=1, title="Overview")
    panel = _data_panel(page)
    panel.locator("summary").click()
    A.wait_until_idle(page, timeout_ms=LOAD_MS, min_charts=1, title="Overview")
    assert panel.locator("details").get_attribute("open") is not None
    name = "[click](https:evil.example) _x_.jsonl"
    page.locator('[data-testid="stSidebar"] input[type=file]').first.set_input_files(
        files=[{"name": name, "mimeType": "application/jsonl", "buffer": b'{"query": \n'}]
    )
    # the uploader lists the file (name cut in the middle, size) once it has arrived
    page.locator(
        '[data-testid="stSidebar"] [data-testid="stFileUploader"]', has_text="_x_.jsonl"
    ).first.wait_for(timeout=60_000)
    A.wait_until_idle(page, timeout_ms=LOAD_MS, min_charts=1, title="Overview")
    assert _data_panel(page).locator("details").get_attribute("open") is not None, "the panel folded shut"
    page.locator('[data-testid="stSidebar"] button', has_text="Add uploaded files").click()
    alert = page.locator('[data-testid="stSidebar"] [data-testid="stAlert"]').first
    alert.wait_for(timeout=60_000)
    A.wait_until_idle(page, timeout_ms=LOAD_MS, min_charts=1, title="Overview")
    text = alert.inner_text()
    assert name in text, text  # shown exactly as written
    assert alert.locator("a").count() == 0 and alert.locator("em").count() == 0
    assert _data_panel(page).locator("details").get_attribute("open") is not None
    page.locator('[data-testid="stSidebar"]').screenshot(path=str(ARTIFACTS / "sidebar-upload-error.png"))
