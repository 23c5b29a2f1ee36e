"""The standalone HTML report (eci_core.explore.report) and the score tables (eci_core.io.tables)."""

from html.parser import HTMLParser

import pytest

from eci_core.explore import overview, report
from eci_core.io import tables
from eci_core.config import ECIConfig
from eci_core.io.collection import Collection
from eci_core.io.records import PassageRef as P
from eci_core.io.records import QueryRecord as R

pytest.importorskip("plotly")


class _Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.text, self.open = [], [], []
        self.scripts = 0
        self.cells = []
        self._in_td = False

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag == "script":
            self.scripts += 1
        self._in_td = tag == "td"

    def handle_endtag(self, tag):
        if tag == "td":
            self._in_td = False

    def handle_data(self, data):
        self.text.append(data)
        if self._in_td:
            self.cells.append(data)


@pytest.fixture(scope="module")
def scored():
    from eci_core.models.hashing import HashingEncoder
    from eci_core.scoring import score_collection

    c = Collection()
    qs = [
        ("q1", "how to sort a list in python", "use sorted to sort a python list"),
        ("q2", "what is a tuple", "a tuple is an immutable sequence"),
        ("q3", "how to read a file", "open the file and call read"),
    ]
    negs = {
        "bm25<x>": {
            "q1": ["sort a list in python", "python list append"],
            "q2": ["what is a set", "tuples"],
            "q3": ["read a csv file", "file modes"],
        },
        "dense": {
            "q1": ["cats and dogs", "sorting algorithms"],
            "q2": ["strings are immutable", "a set"],
            "q3": ["write a file", "the file system"],
        },
    }
    for name, d in negs.items():
        c.add_source(name, [R(q, t, [P(f"p{q}", pos)], [P(None, x) for x in d[q]]) for q, t, pos in qs])
    return c, score_collection(c, HashingEncoder(), ECIConfig(n_bootstrap=50, seed=3))


def test_report_is_standalone_html_with_sources_and_values(scored):
    c, r = scored
    doc = report.html_report(r, c, title="Test report")
    assert doc.startswith("<!DOCTYPE html>")
    p = _Collect()
    p.feed(doc)
    p.close()
    text = "".join(p.text)
    assert "Test report" in text
    # the source names, HTML-escaped where needed (a name with < and > stays text, not markup)
    assert "bm25&lt;x&gt;" in doc and "bm25<x>" in text and "dense" in text
    # ECI values formatted as the table shows them: "0.123 [0.100, 0.140]"
    for _, row in r.sources.iterrows():
        cell = f"{row['eci']:.3f} [{row['eci_low']:.3f}, {row['eci_high']:.3f}]"
        assert cell in p.cells
    assert report.format_components(r)["ECI (95 % CI)"].tolist() == [
        f"{a:.3f} [{b:.3f}, {c_:.3f}]"
        for a, b, c_ in zip(r.sources.eci, r.sources.eci_low, r.sources.eci_high)
    ]
    # verdict, encoder, configuration
    assert overview.eci_ranking_line(r) in text
    assert r.encoder in text
    assert "n_bootstrap" in p.cells and "50" in p.cells
    # flag counts: the union per source as a cell
    for s_name in ("bm25<x>", "dense"):
        assert str(int(r.pairs.loc[r.pairs.source == s_name, "flagged"].sum())) in p.cells
    # the Positive / Negative / Difference table (one per source)
    assert text.count("Difference") >= 2
    # plotly.js inlined exactly once (works offline); four charts (ranking, margins, S vs Δ, beats)
    assert doc.count("Plotly.newPlot") == 4
    assert doc.count("plotly.js v") == 1 and "<script src=" not in doc
    assert len(doc) > 1_000_000


def test_report_cdn_variant_is_small(scored):
    _, r = scored
    doc = report.html_report(r, include_plotlyjs="cdn")
    assert len(doc) < 1_000_000 and doc.count("Plotly.newPlot") == 4


def test_format_components_units(scored):
    _, r = scored
    f = report.format_components(r)
    rate = r.sources["unsafe_query_rate"].iloc[0]
    assert f["unsafe_query_rate"].iloc[0] == f"{100 * rate:.1f} %"
    assert f["n_queries"].tolist() == ["3", "3"]
    assert f["rank"].tolist() == ["1", "2"]


def test_tables_are_written_in_row_groups_and_read_back_equal(scored, tmp_path):
    import pandas as pd
    import pyarrow.parquet as pq

    _, result = scored
    pairs = result.pairs
    assert len(pairs) > 5
    tables.write_parquet(pairs, tmp_path / "p.parquet", rows_per_group=5)
    f = pq.ParquetFile(tmp_path / "p.parquet")
    assert f.metadata.num_row_groups == -(-len(pairs) // 5)
    back = pd.read_parquet(tmp_path / "p.parquet")
    ids = {c: "str" for c in ("source", "query_id", "passage_id", "flag_reasons")}
    pd.testing.assert_frame_equal(back, pairs.astype(ids))
    assert tables.write_tables(result, tmp_path / "out") == [
        "pairs.parquet",
        "queries.parquet",
        "sources.csv",
        "beats.csv",
    ]
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "out" / "queries.parquet"), result.queries)
    empty = pairs.iloc[:0]
    tables.write_parquet(empty, tmp_path / "e.parquet")
    assert list(pd.read_parquet(tmp_path / "e.parquet").columns) == list(pairs.columns)


def test_write_tables_escapes_formula_cells_unless_asked_not_to(scored, tmp_path):
    """sources.csv / beats.csv: a source name starting with =, +, -, @ gets a leading ' (the
    spreadsheet shows it as text); ``escape_formulas=False`` writes it as it is."""
    import csv
    import dataclasses

    _, result = scored
    names = {"bm25<x>": "=cmd|' /C calc'!A0", "dense": "@SUM(1+1)"}
    evil = dataclasses.replace(
        result,
        sources=result.sources.assign(name=result.sources["name"].map(names)),
        beats=result.beats.rename(index=names, columns=names),
    )
    tables.write_tables(evil, tmp_path / "safe")
    tables.write_tables(evil, tmp_path / "raw", escape_formulas=False)
    for name in ("sources.csv", "beats.csv"):
        safe = [c for row in csv.reader(open(tmp_path / "safe" / name, newline="")) for c in row]
        raw = [c for row in csv.reader(open(tmp_path / "raw" / name, newline="")) for c in row]
        for v in names.values():
            assert "'" + v in safe and v not in safe, name
            assert v in raw and "'" + v not in raw, name
