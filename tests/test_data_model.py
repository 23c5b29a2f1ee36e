"""The collection's text columns (texts in Arrow buffers behind a read-only sequence of str)."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pyarrow as pa
import pytest

from eci_core.io.collection import Collection
from eci_core.io.records import PassageRef, QueryRecord
from eci_core.io.texts import ArrowTextMap, KeyedTexts, TextColumn, take_texts


def arrow_map(items: dict[str, str], block: int = 2) -> ArrowTextMap:
    """id -> text in Arrow blocks of ``block`` rows (several blocks, as the reader makes them)."""
    ids, texts = list(items), list(items.values())
    blocks = [pa.array(texts[i : i + block], pa.string()) for i in range(0, len(texts), block)]
    return ArrowTextMap(pa.array(ids, pa.string()), blocks)


def mixed_column() -> tuple[TextColumn, list[str]]:
    """A column of Python strings, then Arrow rows, then Python strings again."""
    m = arrow_map({f"d{i}": f"text {i} é" for i in range(7)}, block=3)
    c = TextColumn(["a", "b"])
    c.extend_rows(m, m.rows(["d5", "d0", "d3", "d6"]))
    c.append("z")
    c.extend(["y", ""])
    return c, ["a", "b", "text 5 é", "text 0 é", "text 3 é", "text 6 é", "z", "y", ""]


def test_text_column_reads_like_a_list():
    c, want = mixed_column()
    assert len(c) == len(want) and list(c) == want and c == want and want == list(c)
    assert [c[i] for i in range(len(want))] == want
    assert c[-1] == "" and c[-3] == "z" and c[2] == "text 5 é"
    assert c[1:5] == want[1:5] and c[::-2] == want[::-2] and c[:] == want
    assert c.take([8, 0, 3, 3, -4]) == [want[8], want[0], want[3], want[3], want[-4]]
    assert c.take(np.array([], dtype=np.int64)) == []
    assert "text 3 é" in c and c.index("z") == 6
    arr = np.asarray(c, dtype=object)
    assert arr.dtype == object and arr.tolist() == want
    assert c + ["q"] == want + ["q"] and ["q"] + c == ["q"] + want
    with pytest.raises(IndexError):
        c[len(want)]
    with pytest.raises(IndexError):
        c.take([len(want)])
    assert c.to_arrow().to_pylist() == want


def test_take_texts_on_lists_columns_and_arrays():
    c, want = mixed_column()
    idx = np.array([4, 1, 7])
    expect = [want[4], want[1], want[7]]
    assert take_texts(c, idx) == expect
    assert take_texts(want, idx) == expect
    assert take_texts(np.asarray(want, dtype=object), idx) == expect
    assert take_texts(want, [4, 1, 7]) == expect


def test_iteration_crosses_blocks_in_row_order():
    items = {f"p{i}": f"passage {i}" for i in range(50)}
    m = arrow_map(items, block=7)
    order = np.random.default_rng(0).permutation(50)
    c = TextColumn()
    c.extend_rows(m, order)
    assert list(c) == [f"passage {i}" for i in order]
    assert c.take(np.arange(49, -1, -1)) == [f"passage {i}" for i in order[::-1]]


def test_truncate_copy_and_pickle():
    c, want = mixed_column()
    d = copy.deepcopy(c)
    c.truncate(7)
    assert list(c) == want[:7] and list(d) == want  # the copy is independent
    c.truncate(3)
    assert list(c) == want[:3]
    c.append("new")
    assert list(c) == want[:3] + ["new"] and list(d) == want
    e = pickle.loads(pickle.dumps(d))
    assert list(e) == want and e == d


def collection_by_ids(passages) -> tuple[Collection, object]:
    """The same three queries added with add_id_source, passage texts from ``passages``."""
    c = Collection()
    rep = c.add_id_source(
        "s",
        ["q1", "q2", "q3"],
        KeyedTexts({"q1": "one", "q2": "two", "q3": "three"}, ["q1", "q2", "q3"]),
        [["d1"], ["d2"], ["d3"]],
        np.array([0, 0, 1, 1, 2]),
        np.array([0, 1, 2, 3, 1]),
        np.full(5, np.nan),
        ["d4", "d5", "d1", "d6"],
        passages,
    )
    return c, rep


def test_add_id_source_same_result_from_arrow_texts_and_a_dict():
    # d5 has the text of q1's positive d1 (another passage, the same text); d6 that of d2
    texts = {"d1": "alpha", "d2": "beta", "d3": "gamma", "d4": "delta", "d5": "alpha", "d6": "beta"}
    a, rep_a = collection_by_ids(arrow_map(texts))
    b, rep_b = collection_by_ids(dict(texts))
    assert rep_a.as_row() == rep_b.as_row()
    assert rep_a.notes["negative identical to a positive (kept, flagged)"] == 2  # q1: d5, q2: d6
    assert a.fingerprint() == b.fingerprint()
    assert list(a.passage_texts) == list(b.passage_texts) and list(a.query_texts) == ["one", "two", "three"]
    assert isinstance(a.passage_texts, TextColumn) and len(a.passage_texts._tail) == 0  # kept in Arrow


def test_rollback_truncates_arrow_rows():
    texts = {"d1": "alpha", "d2": "beta", "d3": "gamma", "d4": "delta", "d5": "alpha", "d6": "beta"}
    c, _ = collection_by_ids(arrow_map(texts))
    before = (
        list(c.passage_ids),
        list(c.passage_texts),
        list(c.query_ids),
        list(c.query_texts),
        c.fingerprint(),
    )

    def bad():
        yield QueryRecord("q9", "nine", [PassageRef("d9", "nine pos")], [PassageRef("d10", "ten")])
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        c.add_source("x", bad())
    assert (
        list(c.passage_ids),
        list(c.passage_texts),
        list(c.query_ids),
        list(c.query_texts),
        c.fingerprint(),
    ) == before
    assert c.find_query("nine") is None and c.find_query("one") == 0  # the lazy text index agrees


def test_arrow_text_map_lookups():
    m = arrow_map({"a": "x", "b": "y", "c": "z"})
    assert m.rows(["c", "a"]).tolist() == [2, 0] and m.missing(["a", "q", "c", "r"]) == ["q", "r"]
    with pytest.raises(KeyError, match="q"):
        m.rows(["a", "q"])
    assert m["b"] == "y" and "b" in m and "q" not in m and list(m) == ["a", "b", "c"] and len(m) == 3


def test_text_hashes_equal_exactly_for_equal_texts():
    c, want = mixed_column()
    c.append("text 5 é")  # the same text as row 2, once in Arrow and once as a Python string
    h = c.hashes(np.arange(len(c)))
    assert h[2] == h[len(c) - 1] and len(set(h.tolist())) == len(set(want))
    assert c.hashes([3, 2]).tolist() == [h[3], h[2]]  # cached rows give the same values
    d = copy.copy(c)
    d.truncate(2)
    d.extend(["other"])
    assert d.hashes([2])[0] == hash("other".encode()) and c.hashes([2])[0] == h[2]


def test_arrow_conversions_without_pandas():
    from eci_core.io.texts import bool_arrow, ints_arrow, np_of, str_arrow

    words = ["a", "", "é", "日本", "plain"]
    assert (
        str_arrow(words).to_pylist() == words and str_arrow(["x", "y"], large=True).type == pa.large_string()
    )
    assert str_arrow([]).to_pylist() == []
    assert ints_arrow(np.array([3, -1], np.int32)).to_pylist() == [3, -1]
    assert bool_arrow(np.array([True, False, True] * 5)).to_pylist() == [True, False, True] * 5
    ints = pa.array([1, None, 3]).slice(1)
    assert np.isnan(np_of(ints)[0]) and np_of(ints)[1] == 3
    assert np_of(pa.array([False, True, True]).slice(1)).tolist() == [True, True]
    assert np_of(pa.chunked_array([pa.array([1.5]), pa.array([2.5])])).tolist() == [1.5, 2.5]


def test_a_fast_load_does_not_import_pandas(tmp_path):
    """pyarrow imports pandas (~40 MiB) on its first Python-object conversion; the loaders avoid those."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    d = tmp_path / "beir"
    (d / "negatives").mkdir(parents=True)
    (d / "qrels").mkdir()
    (d / "corpus.jsonl").write_text(
        "".join(
            json.dumps({"_id": f"d{i}", "title": "T" if i % 2 else "", "text": f"passage {i}"}) + "\n"
            for i in range(40)
        )
    )
    (d / "queries.jsonl").write_text(
        "".join(json.dumps({"_id": f"q{i}", "text": f"query {i}"}) + "\n" for i in range(10))
    )
    (d / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"q{i}\td{i}\t1\n" for i in range(10))
    )
    (d / "negatives" / "bm25.trec").write_text(
        "".join(f"q{i} Q0 d{10 + i + k} {k + 1} {9 - k}.5 bm25\n" for i in range(10) for k in range(5))
    )
    (d / "negatives" / "dense.jsonl").write_text(
        "".join(json.dumps({"query_id": f"q{i}", "negative_ids": [f"d{30 + i}"]}) + "\n" for i in range(10))
    )
    code = (
        "import sys\nfrom eci_core.io.load import load_paths\nc, r = load_paths([sys.argv[1]])\n"
        "assert not r.errors and c.n_queries == 10, r.errors\n"
        "print('pandas' in sys.modules, sum(map(len, c.sources.values())))"
    )
    root = str(Path(__file__).resolve().parents[1])
    out = subprocess.run(
        [sys.executable, "-c", code, str(d)],
        capture_output=True,
        text=True,
        cwd=root,
        env={"PYTHONPATH": root, "ECI_LOADER_FAST": "1", "PATH": "/usr/bin:/bin"},
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "60"]


@pytest.mark.parametrize("n_keys", [0, 1, 3, 9, 30])
def test_arrow_text_map_rows_and_missing_with_few_or_many_keys(n_keys):
    # 20 ids; fewer than 10 keys hash the keys and probe the ids, more hash the ids: same answers,
    # repeated keys included, the order of the keys kept, KeyError naming the first missing key
    m = arrow_map({f"d{i}": f"text {i}" for i in range(0, 40, 2)}, block=3)
    keys = [f"d{(7 * j) % 44}" for j in range(n_keys)]
    keys += keys[:2]
    want_missing = [k for k in keys if int(k[1:]) % 2 or int(k[1:]) >= 40]
    assert m.missing(keys) == want_missing
    present = [k for k in keys if k not in want_missing]
    assert m.rows(present).tolist() == [int(k[1:]) // 2 for k in present]
    assert [m.text_at(r) for r in m.rows(present).tolist()] == [f"text {k[1:]}" for k in present]
    if want_missing:
        with pytest.raises(KeyError) as e:
            m.rows(keys)
        assert e.value.args[0] == want_missing[0]


def test_text_column_rows_in_finds_the_reader_row_of_shared_texts():
    # texts added as rows of a reader's blocks are found at that row; texts added as strings,
    # or rows of another reader, are -1
    m = arrow_map({f"d{i}": f"text {i}" for i in range(10)}, block=3)  # blocks of 3, 3, 3, 1
    other = arrow_map({"x": "text 1"}, block=3)
    col = TextColumn()
    col.extend_rows(m, np.array([7, 0, 9, 4]))
    col.extend(["text 2"])
    col.extend_rows(other, np.array([0]))
    col.extend_rows(m, np.array([5]))
    assert list(col) == ["text 7", "text 0", "text 9", "text 4", "text 2", "text 1", "text 5"]
    assert col.rows_in(m, np.arange(7)).tolist() == [7, 0, 9, 4, -1, -1, 5]
    assert col.rows_in(other, np.array([5, 0, 6])).tolist() == [0, -1, -1]
    assert col.rows_in(m, np.array([6, 3, 99])).tolist() == [5, 4, -1]


# ---------------------------------------------------------------- Arrow-native data model (issue 17)
FIXTURES = __import__("pathlib").Path(__file__).parent / "fixtures"


def _qrels_by_hand(coll: Collection, d) -> dict[int, list[int]]:
    """Positives read straight from qrels/*.tsv (score > 0, file order, each pair once), as the
    dict of lists the collection used to hold, for the queries the collection has."""
    qi = {q: i for i, q in enumerate(coll.query_ids)}
    pi = {p: i for i, p in enumerate(coll.passage_ids)}
    want: dict[int, list[int]] = {}
    for f in sorted((d / "qrels").glob("*.tsv")):
        for line in f.read_text().splitlines()[1:]:
            q, p, s = line.split("\t")[:3]
            if int(s) > 0 and q in qi and p in pi and pi[p] not in want.setdefault(qi[q], []):
                want[qi[q]].append(pi[p])
    return want


@pytest.mark.parametrize("fast", ["1", "0"])
def test_csr_positives_equal_the_dict_of_lists_on_a_fixture(monkeypatch, fast):
    from eci_core.io.load import load_paths

    monkeypatch.setenv("ECI_LOADER_FAST", fast)
    d = FIXTURES / "formats" / "beir"
    coll, rep = load_paths([str(d)])
    assert not rep.errors and coll.n_queries
    want = _qrels_by_hand(coll, d)
    assert coll.positives == want and dict(coll.positives.items()) == want
    assert list(coll.positives) == sorted(want)  # keys ascending
    indptr, indices = coll.positives.csr(coll.n_queries)
    assert indptr.dtype == np.int64 and indices.dtype == np.int32  # int32 where the indices fit
    got = {
        q: indices[indptr[q] : indptr[q + 1]].tolist()
        for q in range(coll.n_queries)
        if indptr[q + 1] > indptr[q]
    }
    assert got == want
    q, p = coll.positive_pairs()
    assert [(a, b) for a, b in zip(q.tolist(), p.tolist())] == [(k, x) for k in sorted(want) for x in want[k]]


def test_a_fast_load_builds_no_id_dict(monkeypatch):
    """The vectorised path looks ids up in Arrow: no ``{id: index}`` dict is made until a single
    id is asked for (then it is made once and kept up to date)."""
    from eci_core.io.load import load_paths

    monkeypatch.setenv("ECI_LOADER_FAST", "1")
    coll, rep = load_paths([str(FIXTURES / "formats" / "beir")])
    assert not rep.errors and coll.n_passages and coll.n_queries
    assert coll._pid_index._dict is None and coll._qid_index._dict is None
    pid = coll.passage_ids[-1]
    assert coll.passage_index(pid) == coll.n_passages - 1 and coll._pid_index._dict is not None
    assert coll.add_passage("a new text", "new-id") == coll.n_passages - 1
    assert coll.passage_index("new-id") == coll.n_passages - 1  # the dict follows the additions
    for other in (coll.copy(), pickle.loads(pickle.dumps(coll))):  # the index follows its own ids
        assert other._pid_index.ids is other.passage_ids and other.fingerprint() == coll.fingerprint()
        other.add_passage("only in the copy", "copy-id")
        assert other.passage_ids[-1] == "copy-id" and other.passage_index("copy-id") == other.n_passages - 1
        assert not coll.has_passage("copy-id") and other._pid_index.lookup(["copy-id"]).tolist() == [
            other.n_passages - 1
        ]


def test_positives_mapping_edits_and_rollback():
    from eci_core.io.positives import Positives

    pos = Positives({3: [5, 1], 0: [2]})
    assert pos == {0: [2], 3: [5, 1]} and list(pos) == [0, 3] and len(pos) == 2
    pos.setdefault(3, []).append(7)  # changes through the list setdefault returns are kept
    pos.setdefault(1, []).extend([4, 4])  # a repeated index is kept, as in a list
    pos[2] = [9]
    del pos[0]
    assert pos == {1: [4, 4], 2: [9], 3: [5, 1, 7]} and 0 not in pos and pos.get(0) is None
    state = pos.state()
    pos.add_pairs(np.array([3, 5, 5, 1]), np.array([1, 8, 8, 6]))  # (3, 1) is there, (5, 8) twice
    assert pos == {1: [4, 4, 6], 2: [9], 3: [5, 1, 7], 5: [8]}
    indptr, indices = pos.csr(6)
    assert indptr.tolist() == [0, 0, 3, 4, 7, 7, 8] and indices.tolist() == [4, 4, 6, 9, 5, 1, 7, 8]
    pos.truncate_to(state)
    assert pos == {1: [4, 4], 2: [9], 3: [5, 1, 7]}
    pos[4] = []  # an empty list is a key, as in a dict
    assert 4 in pos and pos[4] == [] and list(pos) == [1, 2, 3, 4]
    assert copy.deepcopy(pos) == pos and pickle.loads(pickle.dumps(pos)) == pos


def test_a_failed_add_restores_csr_positives_and_ids():
    c = Collection()
    c.add_source("a", [QueryRecord("q1", "query one", [PassageRef("p1", "one")], [PassageRef("n1", "neg")])])
    before = (dict(c.positives.items()), list(c.passage_ids), list(c.query_ids))

    class Boom(Exception):
        pass

    def records():
        yield QueryRecord("q1", "query one", [PassageRef("p2", "two")], [])
        yield QueryRecord("q2", "query two", [PassageRef("p3", "three")], [])
        raise Boom

    with pytest.raises(Boom):
        c.add_source("b", records())
    assert (dict(c.positives.items()), list(c.passage_ids), list(c.query_ids)) == before
    assert c._pid_index.lookup(["p1", "p2", "n1"]).tolist() == [0, -1, 1]
    assert not c.has_passage("p3") and c.has_query("q1") and not c.has_query("q2")


def test_id_index_lookup_in_arrow():
    from eci_core.io.texts import IdIndex

    ids = ["a", "b", "c"]
    ix = IdIndex(ids)
    assert ix.lookup(["c", "x", "a", "c"]).tolist() == [2, -1, 0, 2]
    ix.extend(["d", "e"], pa.array(["d", "e"]))
    ix.append("f")  # one by one (add_passage): added to the Arrow copy on the next lookup
    assert ix.lookup(pa.array(["f", "e", "z"])).tolist() == [5, 4, -1] and ix._dict is None
    ix.truncate(2)
    assert ids == ["a", "b"] and ix.lookup(["a", "c", "f"]).tolist() == [0, -1, -1]
    assert dict(ix) == {"a": 0, "b": 1} and ix.get("b") == 1 and "c" not in ix


@pytest.mark.parametrize("n_pos", [1, 10])
@pytest.mark.parametrize("same_length", [False, True])
def test_negatives_identical_to_a_positive_counted_exactly(same_length, n_pos):
    """The count of negatives whose text equals one of their query's positives (same passage or a
    copy under another id) matches a count by hand, when texts differ in length (compared as
    strings after a length filter) and when they all have one length (compared by hash codes),
    with one positive a query (lengths compared through the CSR) and ten (by binary search)."""
    rng = np.random.default_rng(0)
    n_q, n_p, k = 600, 900, 10

    def text(i: int) -> str:
        return f"t{i:05d}" if same_length else f"t{i}" + "x" * (i % 50)

    texts = {f"p{i}": text(i) for i in range(n_p)}
    texts.update({f"dup{j}": text(j) for j in range(n_q)})  # another id, the positive's text
    neg_ids = list(texts)
    code = {pid: c for c, pid in enumerate(neg_ids)}
    neg_q, neg_p = [], []
    for j in range(n_q):
        picks = [f"p{i}" for i in rng.choice(n_p, size=k, replace=False)]
        if j % 3 == 0:
            picks[rng.integers(k)] = f"dup{j}"
        neg_q += [j] * k
        neg_p += [code[x] for x in picks]
    pos = [[f"p{(j + t) % n_p}" for t in range(n_pos)] for j in range(n_q)]
    want = sum(texts[neg_ids[p]] in {texts[x] for x in pos[q]} for q, p in zip(neg_q, neg_p))
    assert want >= n_q // 3
    c = Collection()
    rep = c.add_id_source(
        "s",
        [f"q{j}" for j in range(n_q)],
        [f"query {j}" for j in range(n_q)],
        pos,
        np.asarray(neg_q),
        np.asarray(neg_p),
        np.full(len(neg_q), np.nan),
        neg_ids,
        texts,
    )
    assert rep.notes.get("negative identical to a positive (kept, flagged)", 0) == want
