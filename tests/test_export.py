"""Cleaned-set export (eci_core.io.cleaning, the writers in eci_core.io.formats, eci_core.io.export): rules,
reviewer marks, writers and round trips."""

import copy
import io
import json

import numpy as np
import pandas as pd
import pytest

from eci_core.io.formats import bge as bge_format
from eci_core.io import cleaning
from eci_core.io import export
from eci_core.io.formats import sentence_transformers as st_format
from eci_core.io import tables
from eci_core.io.formats import tevatron as tevatron_format
from eci_core.config import ECIConfig
from eci_core.io.collection import Collection
from eci_core.io.records import PassageRef as P
from eci_core.io.records import QueryRecord as R
from eci_core.io.load import load_paths


def _collection():
    c = Collection()
    c.add_source(
        "a",
        [
            R(
                "q1",
                "query one",
                [P("p1", "positive one")],
                [P("n1", "neg one"), P("n2", "neg two"), P("n3", "neg three")],
            ),
            R("q2", "query two", [P("p2", "positive two")], [P("n4", "neg four"), P("n5", "neg five")]),
            R("q3", "query three", [P("p3", "positive three")], [P("n6", "neg six")]),
        ],
    )
    c.add_source(
        "b", [R("q1", "query one", [P("p1", "positive one")], [P("n2", "neg two"), P("n7", "neg seven")])]
    )
    return c


class _Result:
    """Only what clean_collection reads: the pairs table with hand-set flags."""

    def __init__(self):
        rows = [  # source, query, passage, unsafe, near_duplicate, reasons
            ("a", "q1", "n1", True, False, "unsafe"),
            ("a", "q1", "n2", False, False, ""),
            ("a", "q1", "n3", False, True, "near_duplicate"),
            ("a", "q2", "n4", False, False, ""),
            ("a", "q2", "n5", False, False, ""),
            ("a", "q3", "n6", True, False, "unsafe"),
            ("b", "q1", "n2", False, False, ""),
            ("b", "q1", "n7", False, False, ""),
        ]
        self.pairs = pd.DataFrame(
            rows, columns=["source", "query_id", "passage_id", "unsafe", "near_duplicate", "flag_reasons"]
        )
        self.pairs["flagged"] = self.pairs["unsafe"] | self.pairs["near_duplicate"]


def _neg_ids(cs, source):
    return {r.query_id: [n.id for n in r.negatives] for r in cs.get(source)}


def _pos_ids(cs, source):
    return {r.query_id: [p.id for p in r.positives] for r in cs.get(source)}


# --------------------------------------------------------------------------- rules
def test_drop_flagged():
    cs = cleaning.clean_collection(_collection(), _Result(), "drop_flagged")
    assert _neg_ids(cs, "a") == {"q1": ["n2"], "q2": ["n4", "n5"]}  # q3 lost its only negative
    assert _neg_ids(cs, "b") == {"q1": ["n2", "n7"]}
    s = cs.summary().set_index("source")
    assert s.loc["a", "negatives_in"] == 6 and s.loc["a", "negatives_out"] == 3
    assert s.loc["a", "dropped"] == 3 and s.loc["a", "queries_in"] == 3 and s.loc["a", "queries_out"] == 2
    a = cs.actions[(cs.actions.source == "a")]
    assert a.loc[a.passage_id == "n3", "reason"].item() == "near_duplicate"
    assert a.loc[a.action == "query dropped", "reason"].item() == "no negative left"


def test_marks_override_drop_rule():
    marks = {("a", "q1", "n1"): "fine", ("a", "q2", "n5"): "false_negative", ("b", "q1", "zz"): "fine"}
    cs = cleaning.clean_collection(_collection(), _Result(), "drop_flagged", marks=marks)
    assert _neg_ids(cs, "a") == {"q1": ["n1", "n2"], "q2": ["n4"]}
    a = cs.actions.set_index(["source", "query_id", "passage_id"])
    assert a.loc[("a", "q1", "n1"), "reason"] == "marked fine (kept despite: unsafe)"
    assert a.loc[("a", "q2", "n5"), "reason"] == "marked false negative"
    assert cs.unmatched_marks == [("b", "q1", "zz")]


def test_relabel_flagged_moves_flagged_negatives_to_positives():
    marks = {("a", "q2", "n4"): "false_negative", ("a", "q1", "n3"): "fine"}
    cs = cleaning.clean_collection(_collection(), _Result(), "relabel_flagged", marks=marks)
    assert _neg_ids(cs, "a") == {"q1": ["n2", "n3"], "q2": ["n5"]}
    assert _pos_ids(cs, "a") == {"q1": ["p1", "n1"], "q2": ["p2", "n4"]}
    assert cs.summary().set_index("source").loc["a", "relabelled"] == 3  # n1, n4, n6
    # relabelling in source a does not touch source b
    assert _pos_ids(cs, "b") == {"q1": ["p1"]}


def test_drop_unsafe_queries():
    cs = cleaning.clean_collection(_collection(), _Result(), "drop_unsafe_queries")
    assert _neg_ids(cs, "a") == {"q2": ["n4", "n5"]}
    s = cs.summary().set_index("source")
    assert s.loc["a", "queries_dropped"] == 2 and s.loc["a", "dropped"] == 4
    # a reviewer who says n1 is a real negative keeps q1 (near-duplicate n3 stays: not this rule's business)
    cs = cleaning.clean_collection(
        _collection(), _Result(), "drop_unsafe_queries", marks={("a", "q1", "n1"): "fine"}
    )
    assert _neg_ids(cs, "a") == {"q1": ["n1", "n2", "n3"], "q2": ["n4", "n5"]}
    # removing the false negative that made q3 unsafe leaves q3 with no negative: dropped as empty
    cs = cleaning.clean_collection(
        _collection(),
        _Result(),
        "drop_unsafe_queries",
        marks={("a", "q3", "n6"): "false_negative"},
        sources=["a"],
    )
    assert set(_neg_ids(cs, "a")) == {"q2"} and cs.sources == ["a"]
    got = cs.actions.set_index(["query_id", "passage_id"])
    assert got.loc[("q3", "n6"), "reason"] == "marked false negative"


def test_bad_arguments_name_the_parameter():
    c, r = _collection(), _Result()
    with pytest.raises(ValueError, match="rule='drop'"):
        cleaning.clean_collection(c, r, "drop")
    with pytest.raises(ValueError, match="mark 'bad'"):
        cleaning.clean_collection(c, r, marks={("a", "q1", "n1"): "bad"})
    with pytest.raises(ValueError, match="mark key"):
        cleaning.clean_collection(c, r, marks={"n1": "fine"})
    with pytest.raises(ValueError, match="source 'zz'"):
        cleaning.clean_collection(c, r, sources=["zz"])
    cs = cleaning.clean_collection(c, r)
    with pytest.raises(ValueError, match="pass source="):
        bge_format.to_bge_jsonl(cs)


def test_negative_missing_from_pairs_is_an_error():
    r = _Result()
    r.pairs = r.pairs[r.pairs.passage_id != "n5"]
    with pytest.raises(ValueError, match="passage 'n5'.*score the collection again"):
        cleaning.clean_collection(_collection(), r)


def _arrow_backed(c: Collection) -> Collection:
    """The same collection with its ids and texts as Arrow rows (as the loaders make them for
    large files), not Python strings."""
    import pyarrow as pa

    from eci_core.io.texts import ArrowTextMap, TextColumn

    for attr in ("passage_ids", "passage_texts", "query_ids", "query_texts"):
        values = list(getattr(c, attr))
        m = ArrowTextMap(
            pa.array([f"k{i}" for i in range(len(values))], pa.string()),
            [pa.array(values[:3], pa.string()), pa.array(values[3:], pa.string())],
        )
        col = TextColumn()
        col.extend_rows(m, m.rows([f"k{i}" for i in range(len(values))]))
        assert len(col._tail) == 0 and list(col) == values
        setattr(c, attr, col)
    return c


def _categorical(r: "_Result") -> "_Result":
    """The pairs table with categorical ids, source and reasons, as scoring makes it; categories
    in an order other than the rows' and one category no row uses."""
    for col in ("source", "query_id", "passage_id", "flag_reasons"):
        r.pairs[col] = r.pairs[col].astype("category")
    r.pairs["source"] = r.pairs["source"].cat.set_categories(["zz", "c", "b", "a"])
    return r


@pytest.mark.parametrize("rule", list(cleaning.RULES))
def test_arrow_texts_and_categorical_pairs_clean_like_lists_and_strings(rule):
    c = _collection()
    c.add_source(
        "c",
        [
            R("q1", "query one", [P("p1", "positive one")], [P("n2", "neg two")]),
            R("q2", "query two", [P("p2", "positive two")], [P("n2", "neg two"), P("n4", "neg four")]),
        ],
    )
    r = _Result()
    extra = pd.DataFrame(
        [
            ("c", "q1", "n2", False, False, ""),
            ("c", "q2", "n2", False, False, ""),
            ("c", "q2", "n4", True, False, "unsafe"),
        ],
        columns=r.pairs.columns[:6],
    )
    r.pairs = pd.concat([r.pairs[r.pairs.columns[:6]], extra], ignore_index=True)
    r.pairs["flagged"] = r.pairs["unsafe"] | r.pairs["near_duplicate"]
    r.pairs["fn_score"] = np.linspace(0.0, 1.0, len(r.pairs))
    marks = {("a", "q1", "n1"): "fine", ("c", "q2", "n2"): "false_negative"}
    want = cleaning.clean_collection(c, r, rule, marks=marks)
    got = cleaning.clean_collection(
        _arrow_backed(copy.deepcopy(c)), _categorical(copy.deepcopy(r)), rule, marks=marks
    )
    assert got.sources == want.sources == ["a", "b", "c"]  # order of appearance, not of the categories
    assert got.records == want.records
    pd.testing.assert_frame_equal(got.actions, want.actions)
    assert got.unmatched_marks == want.unmatched_marks


def test_a_passage_several_queries_hold_is_one_string():
    # with Arrow-backed texts every read makes a new str: the cleaned set must not hold one copy
    # per negative (a million negatives of a few hundred passages each)
    c = Collection()
    c.add_source(
        "a",
        [
            R(f"q{i}", f"query {i}", [P(f"p{i}", f"positive {i}")], [P("n", "shared negative")])
            for i in range(3)
        ],
    )
    r = _Result()
    r.pairs = pd.DataFrame(
        {
            "source": "a",
            "query_id": [f"q{i}" for i in range(3)],
            "passage_id": "n",
            "unsafe": False,
            "near_duplicate": False,
            "flag_reasons": "",
            "flagged": False,
        }
    )
    cs = cleaning.clean_collection(_arrow_backed(c), r)
    texts = [rec.negatives[0].text for rec in cs.get("a")]
    assert texts == ["shared negative"] * 3 and texts[0] is texts[1] is texts[2]


# --------------------------------------------------------------------------- writers
def _lines(b):
    return [json.loads(x) for x in b.decode("utf-8").splitlines()]


def test_writers_shapes():
    cs = cleaning.clean_collection(_collection(), _Result(), "relabel_flagged", sources=["a"])
    # a: q1 pos [p1, n1, n3] neg [n2]; q2 pos [p2] neg [n4, n5]
    trip = _lines(st_format.to_st_triplet(cs))
    assert len(trip) == 3 * 1 + 1 * 2
    assert trip[0] == {"query": "query one", "positive": "positive one", "negative": "neg two"}
    nt = _lines(st_format.to_st_ntuple(cs))  # n = min K = 1: every query and every negative, one row each
    assert st_format.ntuple_size(cs) == 1
    assert [set(r) for r in nt] == [{"query", "positive", "negative_1"}] * 5
    assert nt[3:] == [
        {"query": "query two", "positive": "positive two", "negative_1": "neg four"},
        {"query": "query two", "positive": "positive two", "negative_1": "neg five"},
    ]
    nt2 = _lines(st_format.to_st_ntuple(cs, n=2))  # explicit n: q1 (K = 1) left out, like the miner
    assert nt2 == [
        {"query": "query two", "positive": "positive two", "negative_1": "neg four", "negative_2": "neg five"}
    ]
    with pytest.raises(ValueError, match="n=0"):
        st_format.to_st_ntuple(cs, n=0)
    bge = _lines(bge_format.to_bge_jsonl(cs))
    assert bge[0] == {
        "query_id": "q1",
        "query": "query one",
        "pos": ["positive one", "neg one", "neg three"],
        "neg": ["neg two"],
    }
    tev = _lines(tevatron_format.to_tevatron_jsonl(cs))
    assert tev[1]["query_id"] == "q2"
    assert tev[1]["negative_passages"] == [
        {"docid": "n4", "title": "", "text": "neg four"},
        {"docid": "n5", "title": "", "text": "neg five"},
    ]
    csv = st_format.to_st_triplet(cs, fmt="csv").decode()
    assert csv.splitlines()[0] == "query,positive,negative" and len(csv.splitlines()) == 6
    pq = pd.read_parquet(io.BytesIO(st_format.to_st_ntuple(cs, fmt="parquet")))
    assert list(pq.columns) == ["query", "positive", "negative_1"] and len(pq) == 5
    data, name = export.export_bytes(cs, "BGE / FlagEmbedding (JSONL)")
    assert name == "a.bge.jsonl" and data == bge_format.to_bge_jsonl(cs)


def test_table_bytes_csv_and_parquet():
    df = pd.DataFrame({"a": [1, 2], "words": [["x", "y"], []], "v": [0.5, np.nan]})
    back = pd.read_csv(io.BytesIO(tables.table_bytes(df, "csv")))
    assert back["a"].tolist() == [1, 2] and json.loads(back["words"][0]) == ["x", "y"]
    back = pd.read_parquet(io.BytesIO(tables.table_bytes(df, "parquet")))
    assert back["words"].tolist() == ['["x", "y"]', "[]"] and np.isnan(back["v"][1])
    with pytest.raises(ValueError, match="fmt='xlsx'"):
        tables.table_bytes(df, "xlsx")


# --------------------------------------------------------------------------- round trips
@pytest.mark.parametrize(
    "writer,fname",
    [
        (lambda cs: bge_format.to_bge_jsonl(cs, "a"), "a.jsonl"),
        (lambda cs: tevatron_format.to_tevatron_jsonl(cs, "a"), "a.jsonl"),
        (lambda cs: st_format.to_st_triplet(cs, "a"), "a.jsonl"),
        (lambda cs: st_format.to_st_triplet(cs, "a", fmt="csv"), "a.csv"),
        (lambda cs: st_format.to_st_ntuple(cs, "a", n=1, fmt="parquet"), "a.parquet"),
    ],
)
def test_round_trip_through_loaders(tmp_path, writer, fname):
    cs = cleaning.clean_collection(_collection(), _Result(), "relabel_flagged")
    path = tmp_path / fname
    path.write_bytes(writer(cs))
    coll, rep = load_paths(path)
    assert rep.errors == []
    src = coll.sources["a"]
    assert len(src.query_indices) == 2
    assert len(src) == 3  # every kept negative (n-tuple with n = 1: one row per negative)
    q1 = coll.query_texts.index("query one")
    assert sorted(coll.passage_texts[p] for p in coll.positives[q1]) == [
        "neg one",
        "neg three",
        "positive one",
    ]


def test_real_scoring_then_drop_flagged_leaves_nothing_flagged(tmp_path):
    """Export → reload → rescore with the same encoder: no negative is flagged any more."""
    from eci_core.models.hashing import HashingEncoder
    from eci_core.scoring import score_collection

    c = Collection()
    c.add_source(
        "bm25",
        [
            R(
                None,
                "how to sort a list in python",
                [P(None, "use sorted to sort a python list")],
                [
                    P(None, "sort a list in python"),
                    P(None, "python list append"),
                    P(None, "use sorted to sort a python list"),
                ],
            ),
            R(
                None,
                "what is a tuple",
                [P(None, "a tuple is an immutable sequence")],
                [P(None, "what is a set"), P(None, "tuples and lists differ"), P(None, "strings")],
            ),
            R(
                None,
                "how to read a file",
                [P(None, "open the file and call read")],
                [P(None, "read a csv file"), P("m1", "file modes"), P("m2", "file modes")],
            ),  # same text, two ids
        ],
    )
    cfg = ECIConfig(n_bootstrap=20)
    r = score_collection(c, HashingEncoder(), cfg)
    n_flagged = int(r.pairs["flagged"].sum())
    assert n_flagged >= 2  # the copy of the positive and at least one unsafe negative
    cs = cleaning.clean_collection(c, r, "drop_flagged")
    s = cs.summary().set_index("source").loc["bm25"]
    assert len(r.pairs) == 8  # scoring keeps one "file modes" per query
    assert s["dropped"] == n_flagged + 1  # the flagged ones and the unscored copy
    why = cs.actions.set_index("passage_id").loc["m2", "reason"]
    assert why == "duplicate text within the query (not scored)"
    path = tmp_path / "clean.jsonl"
    path.write_bytes(bge_format.to_bge_jsonl(cs))
    c2, rep = load_paths(path)
    assert rep.errors == []
    r2 = score_collection(c2, HashingEncoder(), cfg)
    assert int(r2.pairs["flagged"].sum()) == 0
    assert float(r2.sources["unsafe_query_rate"].iloc[0]) == 0.0
    assert len(r2.pairs) == int(s["negatives_out"])


def test_escape_formula_cells_is_reversible_and_covers_index_and_headers():
    cells = ["=1+1", "+x", "-cmd", "@A1", "\tx", "\rx", "'=x", "''-y", "'plain", "plain", "", "a=b"]
    df = pd.DataFrame(
        {"t": cells, "n": range(len(cells)), "=h": ["x"] * len(cells)}, index=pd.Index(cells, name="@i")
    )
    esc = tables.escape_formula_cells(df)
    assert list(esc.columns) == ["t", "n", "'=h"] and esc.index.name == "'@i"
    assert esc["t"].tolist() == [
        "'=1+1",
        "'+x",
        "'-cmd",
        "'@A1",
        "'\tx",
        "'\rx",
        "''=x",
        "'''-y",
        "'plain",
        "plain",
        "",
        "a=b",
    ]
    assert esc.index.tolist() == esc["t"].tolist() and esc["n"].tolist() == list(range(len(cells)))
    assert df["t"].tolist() == cells  # the input is not modified
    back = tables.unescape_formula_cells(esc)
    assert back["t"].tolist() == cells and list(back.columns) == ["t", "n", "=h"]
