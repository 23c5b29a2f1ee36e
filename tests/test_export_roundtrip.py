"""Exports round-trip (issue 10): every file the Export page offers, read back with ECI Explorer's
own loader, holds exactly the queries, negatives and positives the page reports, for every format
and cleaning rule; n-tuple keeps every negative; two queries with one text stay two; CSV cells
cannot run as spreadsheet formulas."""

from __future__ import annotations

import io
import json
import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest

import eci_core  # noqa: F401
from eci_core.io.formats import bge as bge_format
from eci_core.io import cleaning
from eci_core.io.formats import sentence_transformers as st_format
from eci_core.io import tables
from eci_core.io.formats import tevatron as tevatron_format
from eci_core.config import ECIConfig
from eci_core.io.collection import Collection
from eci_core.io.records import PassageRef as P
from eci_core.io.records import QueryRecord as R
from eci_core.models.hashing import HashingEncoder
from eci_core.io.load import load_paths
from eci_core.scoring import score_collection

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "fixtures" / "app_small"


def _read_back(tmp_path: Path, name: str, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    coll, rep = load_paths([str(path)])
    assert rep.errors == [], rep.errors
    (src,) = coll.sources.values()
    queries = [int(q) for q in src.query_indices]
    return {
        "queries": len(queries),
        "negatives": len(src),
        "positives": sum(len(coll.positives.get(q, [])) for q in queries),
    }


def _page_counts(cleaned: cleaning.CleanedSet, source: str) -> dict:
    row = cleaned.summary().set_index("source").loc[source]
    return {
        "queries": int(row["queries_out"]),
        "negatives": int(row["negatives_out"]),
        "positives": int(row["positives_out"]),
    }


# --------------------------------------------------------------------------- n-tuple width rule
def test_ntuple_chunks_keep_every_negative_without_padding(tmp_path):
    c = Collection()
    c.add_source(
        "s",
        [
            R("q1", "query one", [P("p1", "positive one")], [P(f"n{i}", f"neg {i}") for i in range(1, 6)]),
            R("q2", "query two", [P("p2", "positive two")], [P("m1", "other 1"), P("m2", "other 2")]),
        ],
    )
    pairs = pd.DataFrame(
        {
            "source": "s",
            "query_id": ["q1"] * 5 + ["q2"] * 2,
            "passage_id": [f"n{i}" for i in range(1, 6)] + ["m1", "m2"],
            "flagged": False,
            "unsafe": False,
            "flag_reasons": "",
        }
    )
    cs = cleaning.clean_collection(c, pairs, "drop_flagged")
    assert st_format.ntuple_size(cs) == 2
    rows = [json.loads(x) for x in st_format.to_st_ntuple(cs).decode().splitlines()]
    # K = 5 in rows of 2: [1, 2], [3, 4], then the last two [4, 5] (overlap, no padding); K = 2: one row
    assert [(r["negative_1"], r["negative_2"]) for r in rows] == [
        ("neg 1", "neg 2"),
        ("neg 3", "neg 4"),
        ("neg 4", "neg 5"),
        ("other 1", "other 2"),
    ]
    assert all(r["negative_1"] != r["negative_2"] for r in rows)
    plan = cleaning.ntuple_plan(cs)
    assert (plan.n, plan.rows, plan.queries, plan.negatives, plan.repeated_cells, plan.queries_left_out) == (
        2,
        4,
        2,
        7,
        1,
        0,
    )
    assert _read_back(tmp_path, "nt.jsonl", st_format.to_st_ntuple(cs)) == {
        "queries": 2,
        "negatives": 7,
        "positives": 2,
    }
    # a larger n leaves out the query with fewer negatives, and the plan says so
    plan3 = cleaning.ntuple_plan(cs, n=3)
    assert (plan3.rows, plan3.queries, plan3.negatives, plan3.queries_left_out, plan3.negatives_left_out) == (
        2,
        1,
        5,
        1,
        2,
    )
    assert _read_back(tmp_path, "nt3.jsonl", st_format.to_st_ntuple(cs, n=3)) == {
        "queries": 1,
        "negatives": 5,
        "positives": 1,
    }


def test_two_queries_with_one_text_stay_two(tmp_path):
    c = Collection()
    c.add_source(
        "s",
        [
            R("q1", "What is Python?", [P("p1", "A language.")], [P("n1", "A snake."), P("n2", "A film.")]),
            R("q2", "What is Python?", [P("p2", "A programming language.")], [P("n3", "A comedy troupe.")]),
        ],
    )
    pairs = pd.DataFrame(
        {
            "source": "s",
            "query_id": ["q1", "q1", "q2"],
            "passage_id": ["n1", "n2", "n3"],
            "flagged": False,
            "unsafe": False,
            "flag_reasons": "",
        }
    )
    cs = cleaning.clean_collection(c, pairs)
    assert st_format.shared_query_texts(cs.get("s")) == 2
    want = {"queries": 2, "negatives": 3, "positives": 2}
    for name, data in [
        ("t.jsonl", st_format.to_st_triplet(cs)),
        ("n.jsonl", st_format.to_st_ntuple(cs)),
        ("b.jsonl", bge_format.to_bge_jsonl(cs)),
        ("v.jsonl", tevatron_format.to_tevatron_jsonl(cs)),
        ("t.csv", st_format.to_st_triplet(cs, fmt="csv")),
        ("n.parquet", st_format.to_st_ntuple(cs, fmt="parquet")),
    ]:
        assert _read_back(tmp_path, name, data) == want, name
    assert json.loads(st_format.to_st_triplet(cs).decode().splitlines()[0])["query_id"] == "q1"
    # distinct texts: no query_id column, the files are plain sentence-transformers columns
    c2 = Collection()
    c2.add_source("s", [R("q1", "What is Python?", [P("p1", "A language.")], [P("n1", "A snake.")])])
    cs2 = cleaning.clean_collection(c2, pairs.iloc[:1])
    assert set(json.loads(st_format.to_st_triplet(cs2).decode())) == {"query", "positive", "negative"}
    assert set(json.loads(st_format.to_st_triplet(cs2, ids=True).decode())) == {
        "query_id",
        "query",
        "positive",
        "negative",
    }


# --------------------------------------------------------------------------- CSV formula injection
def test_csv_cells_cannot_start_a_formula():
    df = pd.DataFrame(
        {
            "=HYPERLINK(\"x\")": ["=1+1", "+SUM(A1)", "-2+3", "@cmd", "\tx", "\rx", "ok", "a=b"],
            "n": [-1.5, 2, 3, 4, 5, 6, 7, 8],
        }
    )
    back = pd.read_csv(io.BytesIO(tables.table_bytes(df, "csv")), keep_default_na=False)
    assert list(back.columns) == ["'=HYPERLINK(\"x\")", "n"]
    col = back.iloc[:, 0].tolist()
    assert col[:6] == ["'=1+1", "'+SUM(A1)", "'-2+3", "'@cmd", "'\tx", "'\rx"] and col[6:] == ["ok", "a=b"]
    assert back["n"].tolist()[0] == -1.5  # numbers stay numbers
    raw = tables.table_bytes(df, "csv", escape_formulas=False).decode()
    assert "\r\n=1+1," in raw
    # training sets in CSV too; Parquet and JSONL keep the text exact
    c = Collection()
    c.add_source("=src", [R("=q", "=cmd|' /C calc'!A0", [P("p", "+positive")], [P("n", "@negative")])])
    pairs = pd.DataFrame(
        {
            "source": "=src",
            "query_id": ["=q"],
            "passage_id": ["n"],
            "flagged": False,
            "unsafe": False,
            "flag_reasons": "",
        }
    )
    cs = cleaning.clean_collection(c, pairs)
    trip = pd.read_csv(io.BytesIO(st_format.to_st_triplet(cs, fmt="csv")))
    assert trip.iloc[0].tolist() == ["'=cmd|' /C calc'!A0", "'+positive", "'@negative"]
    assert json.loads(st_format.to_st_triplet(cs))["query"] == "=cmd|' /C calc'!A0"
    assert (
        pd.read_parquet(io.BytesIO(st_format.to_st_triplet(cs, fmt="parquet")))["query"][0]
        == "=cmd|' /C calc'!A0"
    )
    acts = pd.read_csv(io.BytesIO(tables.table_bytes(cs.actions)))
    assert acts["source"][0] == "'=src" and acts["query_id"][0] == "'=q"


# --------------------------------------------------------------------------- the page's numbers
def _dataset(tmp_path: Path) -> Path:
    """The app fixture plus a query that repeats q1's text with its own positive and negatives,
    and texts that start like spreadsheet formulas."""
    d = tmp_path / "data"
    shutil.copytree(FIXTURE, d)
    with open(d / "queries.jsonl", "a") as f:
        f.write(json.dumps({"_id": "q7", "text": "How do I sort a list in Python?"}) + "\n")
    with open(d / "corpus.jsonl", "a") as f:
        f.write(
            json.dumps({"_id": "d90", "title": "", "text": "sorted(iterable) returns a new sorted list."})
            + "\n"
        )
        f.write(
            json.dumps({"_id": "d91", "title": "", "text": "=cmd|' /C calc'!A0 is not a sorting function."})
            + "\n"
        )
        f.write(
            json.dumps({"_id": "d92", "title": "", "text": "-1 is what list.index never returns."}) + "\n"
        )
    with open(d / "qrels" / "test.tsv", "a") as f:
        f.write("q7\td90\t1\n")
    with open(d / "negatives" / "bm25.trec", "a") as f:
        for rank, doc in enumerate(["d91", "d92", "d1", "d2", "d3"], start=1):
            f.write(f"q7 Q0 {doc} {rank} {10 - rank}.0 bm25\n")
    return d


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    d = _dataset(tmp_path_factory.mktemp("rt"))
    coll, rep = load_paths([str(d)])
    assert not rep.errors
    return d, coll, score_collection(coll, HashingEncoder(), ECIConfig(n_bootstrap=20))


@pytest.mark.parametrize("rule", cleaning.RULES)
def test_every_export_reads_back_with_the_counts_the_library_reports(tmp_path, scored, rule):
    _, coll, res = scored
    for source in coll.sources:
        cs = cleaning.clean_collection(coll, res, rule, sources=[source])
        if not cs.get(source):
            continue
        want = _page_counts(cs, source)
        files = {
            "ntuple.jsonl": st_format.to_st_ntuple(cs, source),
            "triplet.jsonl": st_format.to_st_triplet(cs, source),
            "triplet.csv": st_format.to_st_triplet(cs, source, fmt="csv"),
            "ntuple.parquet": st_format.to_st_ntuple(cs, source, fmt="parquet"),
            "bge.jsonl": bge_format.to_bge_jsonl(cs, source),
            "tevatron.jsonl": tevatron_format.to_tevatron_jsonl(cs, source),
        }
        for name, data in files.items():
            assert _read_back(tmp_path, f"{source}.{rule}.{name}", data) == want, (source, rule, name)
        plan = cleaning.ntuple_plan(cs, source)
        assert (plan.queries, plan.negatives, plan.queries_left_out) == (
            want["queries"],
            want["negatives"],
            0,
        )


@pytest.mark.parametrize("rule", cleaning.RULES)
def test_export_page_counts_match_the_files(monkeypatch, tmp_path, scored, rule):
    """The Export page (AppTest) for each rule: its "Queries kept" / "Negatives kept" and its
    per-format line are what the written files hold when read back."""
    streamlit_testing = pytest.importorskip("streamlit.testing.v1")
    sys.path.insert(0, str(ROOT))
    d, _, _ = scored
    monkeypatch.setenv("ECI_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("ECI_DATA", str(d))
    monkeypatch.setenv("ECI_ENCODER", "hashing")
    monkeypatch.delenv("ECI_CROSS_ENCODER", raising=False)
    at = streamlit_testing.AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.run()
    at.switch_page("pages/export.py")
    at.run()
    at.radio(key="ex_rule").set_value(rule).run()
    assert not at.exception, [e.message for e in at.exception]
    metrics = {m.label: m.value for m in at.metric}
    kept_q = int(metrics["Queries kept"].split("/")[0].replace(",", ""))
    kept_n = int(metrics["Negatives kept"].split("/")[0].replace(",", ""))
    source = at.selectbox(key="ex_source").value
    # the files the page's buttons write, from the same scored data the page used
    from ui.state.scores import stored_results

    res = next(r for r in stored_results() if source in set(r.sources["name"]) and r.config == ECIConfig())
    cs = cleaning.clean_collection(at.session_state["eci_collection"], res, rule, sources=[source])
    text = " ".join(m.value for m in at.markdown)
    plan = cleaning.ntuple_plan(cs, source)
    per_row = f"{plan.n} negative" + ("s" if plan.n != 1 else "")
    assert f"{plan.rows:,} rows × {per_row} — {kept_q:,} queries, {kept_n:,} of {kept_n:,} negatives" in text
    for name, data in [
        ("nt.jsonl", st_format.to_st_ntuple(cs, source, n=plan.n)),
        ("tr.jsonl", st_format.to_st_triplet(cs, source)),
        ("bge.jsonl", bge_format.to_bge_jsonl(cs, source)),
        ("tev.jsonl", tevatron_format.to_tevatron_jsonl(cs, source)),
    ]:
        back = _read_back(tmp_path, name, data)
        assert (back["queries"], back["negatives"]) == (kept_q, kept_n), (rule, name)
