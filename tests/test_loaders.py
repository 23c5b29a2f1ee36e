"""Loaders: every accepted format, exact counts, alignment, and every bad-input message.

Expected numbers are computed by hand from the fixtures in ``tests/fixtures/formats/``.
"""

from __future__ import annotations

import gzip
import json
import math
import shutil
from pathlib import Path

import pytest

from eci_core.io.collection import Collection
from eci_core.io.records import LoadError
from eci_core.io.formats import FORMATS, detect_format, normalise_format
from eci_core.io.formats.beir import load_beir
from eci_core.io.formats.msmarco_hn import load_msmarco_hn
from eci_core.io.load import load_path, load_paths

F = Path(__file__).parent / "fixtures" / "formats"

CAT, PY, FR, HAMLET = "what is a cat", "what is python", "capital of france", "who wrote hamlet"
P_CAT = "A cat is a small domesticated feline."
P_PY1, P_PY2 = "Python is a programming language.", "Python is a large snake."
P_FR = "Paris is the capital of France."
N_DOG, N_CAR = "Dogs are loyal animals that bark.", "Cars have four wheels."
N_JAVA, N_RUST = "Java is a programming language.", "Rust is a systems language."
N_BERLIN, N_LYON = "Berlin is the capital of Germany.", "Lyon is a city in France."

NO_POS = "query with no positive (skipped)"
DUP = "duplicate negative within a query"
SAME = "negative identical to a positive (kept, flagged)"
K0 = "query with no negatives (K = 0)"


@pytest.fixture(autouse=True, params=["fast", "per-line"])
def reader(request, monkeypatch):
    """Every test runs twice: with the vectorised readers (the default) and with the per-line
    parsers (``ECI_LOADER_FAST=0``): same collections, same errors, same line numbers."""
    monkeypatch.setenv("ECI_LOADER_FAST", "1" if request.param == "fast" else "0")
    return request.param


# ---------------------------------------------------------------------------- helpers
def negs(c: Collection, source: str) -> dict[str, list[str]]:
    """query text -> negative texts in rank order."""
    s = c.sources[source]
    out: dict[str, list[str]] = {}
    for q, p in zip(s.q_idx, s.p_idx):
        out.setdefault(c.query_texts[q], []).append(c.passage_texts[p])
    return out


def neg_ids(c: Collection, source: str) -> dict[str, list[str]]:
    s = c.sources[source]
    out: dict[str, list[str]] = {}
    for q, p in zip(s.q_idx, s.p_idx):
        out.setdefault(c.query_ids[q], []).append(c.passage_ids[p])
    return out


def scores(c: Collection, source: str) -> dict[str, list[float]]:
    s = c.sources[source]
    out: dict[str, list[float]] = {}
    for q, sc in zip(s.q_idx, s.score):
        out.setdefault(c.query_texts[q], []).append(float(sc))
    return out


def pos_texts(c: Collection, query: str) -> list[str]:
    qi = c.query_texts.index(query)
    return [c.passage_texts[p] for p in c.positives.get(qi, [])]


def covered(c: Collection, source: str) -> list[str]:
    return sorted(c.query_texts[q] for q in c.sources[source].queries)


def one(report):
    assert report.errors == []
    assert len(report.sources) == 1
    return report.sources[0]


def snapshot(c: Collection):
    return (
        c.fingerprint(),
        list(c.passage_ids),
        list(c.passage_texts),
        list(c.query_ids),
        list(c.query_texts),
        {k: list(v) for k, v in c.positives.items()},
        sorted(c.sources),
        dict(c._pid_index),
        dict(c._qid_index),
        dict(c._qtext_index),
    )


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def jl(*rows) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


# ---------------------------------------------------------------------------- detection
@pytest.mark.parametrize(
    "rel, fmt",
    [
        ("st_triplet.jsonl", "st-triplet"),
        ("st_ntuple.jsonl", "st-ntuple"),
        ("st_labeled_pair.tsv", "st-labeled-pair"),
        ("st_labeled_list.jsonl", "st-labeled-list"),
        ("bge.jsonl", "bge"),
        ("tevatron.jsonl", "tevatron"),
        ("msmarco/hn.jsonl", "msmarco-hn"),
        ("beir", "beir"),
        ("beir/negatives/bm25.trec", "trec-run"),
        ("beir/negatives/dense.jsonl", "negative-ids"),
    ],
)
def test_detect_format(rel, fmt):
    assert detect_format(F / rel) == fmt


def test_format_names_and_aliases():
    assert set(FORMATS) == {
        "st-triplet",
        "st-ntuple",
        "st-labeled-pair",
        "st-labeled-list",
        "bge",
        "tevatron",
        "msmarco-hn",
        "beir",
        "trec-run",
        "negative-ids",
    }
    assert normalise_format("n-tuple-scores") == "st-ntuple"
    assert normalise_format("triplet") == "st-triplet"
    assert normalise_format("TREC") == "trec-run"
    with pytest.raises(ValueError, match=r"format='nope' is not a known format; use one of: st-triplet"):
        normalise_format("nope")


# ---------------------------------------------------------------------------- sentence-transformers
def test_st_triplet_counts_grouping_and_add_source_rules():
    c = Collection()
    r = one(load_path(F / "st_triplet.jsonl", c))
    assert (r.source, r.format, r.rows_read, r.queries, r.negatives_kept) == (
        "st_triplet",
        "st-triplet",
        9,
        3,
        6,
    )
    assert r.drops == {DUP: 1}  # Berlin twice for the same positive
    assert r.notes == {SAME: 1}  # the France positive listed as a negative
    # repeated anchor = several positives; the miner's per-positive repeats are merged, not "duplicates"
    assert pos_texts(c, PY) == [P_PY1, P_PY2]
    assert negs(c, "st_triplet") == {CAT: [N_DOG, N_CAR], PY: [N_JAVA, N_RUST], FR: [N_BERLIN, P_FR]}
    assert c.n_queries == 3 and c.n_passages == 4 + 6 - 1  # P_FR is one passage in both roles
    s = c.sources["st_triplet"]
    assert s.rank.tolist() == [1, 2, 1, 2, 1, 2]
    assert all(math.isnan(x) for x in s.score)
    # id-less texts get text ids
    assert c.passage_ids[c.passage_texts.index(P_CAT)].startswith("h")


def test_st_ntuple_with_scores():
    c = Collection()
    r = one(load_path(F / "st_ntuple.jsonl", c))
    assert (r.format, r.rows_read, r.queries, r.negatives_kept, r.drops, r.notes) == (
        "st-ntuple",
        3,
        2,
        4,
        {},
        {},
    )
    assert negs(c, "st_ntuple") == {CAT: [N_DOG, N_CAR], PY: [N_JAVA, N_RUST]}
    assert scores(c, "st_ntuple") == {CAT: [0.5, 0.4], PY: [0.6, 0.3]}
    assert pos_texts(c, PY) == [P_PY1, P_PY2]


def test_st_labeled_pair_tsv():
    c = Collection()
    r = one(load_path(F / "st_labeled_pair.tsv", c))
    assert (r.format, r.rows_read, r.queries, r.negatives_kept) == ("st-labeled-pair", 7, 2, 3)
    assert r.drops == {NO_POS: 1}  # "who wrote hamlet" has only a label-0 row
    assert pos_texts(c, PY) == [P_PY1, P_PY2]
    assert negs(c, "st_labeled_pair") == {CAT: [N_DOG, N_CAR], PY: [N_JAVA]}


def test_st_labeled_list_with_scores():
    c = Collection()
    r = one(load_path(F / "st_labeled_list.jsonl", c))
    assert (r.format, r.rows_read, r.queries, r.negatives_kept, r.drops) == ("st-labeled-list", 3, 2, 4, {})
    assert negs(c, "st_labeled_list") == {CAT: [N_DOG, N_CAR], PY: [N_JAVA, N_RUST]}
    assert scores(c, "st_labeled_list") == {CAT: [0.5, 0.4], PY: [0.6, 0.3]}
    assert pos_texts(c, PY) == [P_PY1, P_PY2]


def test_st_triplet_parquet_and_gz_and_json_give_the_same_source(tmp_path):
    import pandas as pd

    rows = [json.loads(x) for x in (F / "st_triplet.jsonl").read_text().splitlines()]
    df = pd.DataFrame(rows)
    df.to_parquet(tmp_path / "t.parquet")
    with gzip.open(tmp_path / "t.jsonl.gz", "wt", encoding="utf-8") as f:
        f.write((F / "st_triplet.jsonl").read_text())
    write(tmp_path / "arr.json", json.dumps(rows, indent=2))
    write(tmp_path / "cols.json", json.dumps({k: [r[k] for r in rows] for k in rows[0]}))
    df.to_csv(tmp_path / "t.csv", index=False)
    base = Collection()
    load_path(F / "st_triplet.jsonl", base)
    for name, stem in [
        ("t.parquet", "t"),
        ("t.jsonl.gz", "t"),
        ("arr.json", "arr"),
        ("cols.json", "cols"),
        ("t.csv", "t"),
    ]:
        c = Collection()
        r = one(load_path(tmp_path / name, c))
        assert r.source == stem
        assert (r.format, r.rows_read, r.queries, r.negatives_kept, r.drops, r.notes) == (
            "st-triplet",
            9,
            3,
            6,
            {DUP: 1},
            {SAME: 1},
        ), name
        assert negs(c, stem) == negs(base, "st_triplet"), name


def test_st_triplet_with_scores_and_custom_column_names(tmp_path):
    p = write(
        tmp_path / "mined.jsonl",
        jl(
            {"question": CAT, "pos": P_CAT, "negative": N_DOG, "scores": [0.9, 0.5]},
            {"question": CAT, "pos": P_CAT, "negative": N_CAR, "scores": [0.9, 0.4]},
        ),
    )
    c = Collection()
    r = one(load_path(p, c))
    assert (r.queries, r.negatives_kept) == (1, 2)
    assert scores(c, "mined") == {CAT: [0.5, 0.4]}
    assert pos_texts(c, CAT) == [P_CAT]


def test_st_unknown_column_names_use_the_miners_positional_rule(tmp_path):
    # sentence-transformers takes the first column as anchor and the second as positive
    p = write(tmp_path / "x.jsonl", jl({"frage": CAT, "antwort": P_CAT, "negative": N_DOG}))
    c = Collection()
    one(load_path(p, c))
    assert c.query_texts == [CAT] and pos_texts(c, CAT) == [P_CAT] and negs(c, "x") == {CAT: [N_DOG]}


def test_st_ntuple_csv_with_list_cells_as_written_by_pandas(tmp_path):
    import pandas as pd

    df = pd.DataFrame(
        {
            "query": [CAT, PY],
            "positive": [P_CAT, P_PY1],
            "negative_1": [N_DOG, N_JAVA],
            "negative_2": [N_CAR, N_RUST],
            "negative_3": [N_LYON, N_LYON],
            "scores": [[0.9, 0.5, 0.4, 0.1], [0.8, 0.6, 0.3, 0.2]],
        }
    )
    df.to_csv(tmp_path / "nt.csv", index=False)  # lists become "[0.9, 0.5, 0.4, 0.1]"
    c = Collection()
    r = one(load_path(tmp_path / "nt.csv", c))
    assert (r.format, r.rows_read, r.queries, r.negatives_kept) == ("st-ntuple", 2, 2, 6)
    assert negs(c, "nt")[CAT] == [N_DOG, N_CAR, N_LYON]
    assert scores(c, "nt")[PY] == [0.6, 0.3, 0.2]


def test_st_labeled_list_parquet_with_labels(tmp_path):
    import pandas as pd

    df = pd.DataFrame(
        {
            "anchor": [PY, CAT],
            "docs": [[N_JAVA, P_PY1, P_PY2, N_RUST], [P_CAT, N_DOG]],
            "labels": [[0, 1, 1, 0], [1, 0]],
        }
    )
    df.to_parquet(tmp_path / "ll.parquet")
    c = Collection()
    r = one(load_path(tmp_path / "ll.parquet", c))
    assert (r.format, r.rows_read, r.queries, r.negatives_kept) == ("st-labeled-list", 2, 2, 3)
    assert pos_texts(c, PY) == [P_PY1, P_PY2]
    assert negs(c, "ll") == {PY: [N_JAVA, N_RUST], CAT: [N_DOG]}


def test_st_labeled_pair_with_score_column_first_row_is_positive(tmp_path):
    import pandas as pd

    df = pd.DataFrame(
        {
            "anchor": [CAT, CAT, CAT, PY, PY],
            "positive": [P_CAT, N_DOG, N_CAR, P_PY1, N_JAVA],
            "score": [0.9, 0.5, 0.4, 0.8, 0.6],
        }
    )
    df.to_csv(tmp_path / "lp.csv", index=False)
    c = Collection()
    r = one(load_path(tmp_path / "lp.csv", c))
    assert (r.format, r.queries, r.negatives_kept) == ("st-labeled-pair", 2, 3)
    assert r.notes == {"labeled-pair without 'label': first row of each query taken as its only positive": 2}
    assert pos_texts(c, CAT) == [P_CAT] and pos_texts(c, PY) == [P_PY1]
    assert scores(c, "lp") == {CAT: [0.5, 0.4], PY: [0.6]}


# ---------------------------------------------------------------------------- BGE, Tevatron
def test_bge():
    c = Collection()
    r = one(load_path(F / "bge.jsonl", c))
    assert (r.format, r.rows_read, r.queries, r.negatives_kept) == ("bge", 4, 3, 3)  # blank line not counted
    assert r.drops == {DUP: 1, NO_POS: 1}
    assert r.notes == {K0: 1}  # "capital of france" has neg: []
    assert negs(c, "bge") == {CAT: [N_DOG, N_CAR], PY: [N_JAVA]}
    assert scores(c, "bge")[CAT] == [0.5, 0.4]
    assert covered(c, "bge") == sorted([CAT, PY, FR])
    assert pos_texts(c, PY) == [P_PY1, P_PY2]


def test_tevatron_title_plus_text():
    c = Collection()
    r = one(load_path(F / "tevatron.jsonl", c))
    assert (r.format, r.rows_read, r.queries, r.negatives_kept, r.drops) == ("tevatron", 2, 2, 3, {})
    assert c.query_ids == ["q1", "q2"]
    text = dict(zip(c.passage_ids, c.passage_texts))
    assert text["d1"] == "Cat " + P_CAT
    assert text["d5"] == N_DOG  # empty title: text alone
    assert text["d6"] == "Car " + N_CAR
    assert neg_ids(c, "tevatron") == {"q1": ["d5", "d6"], "q2": ["d7"]}


# ---------------------------------------------------------------------------- msmarco-hn
def test_msmarco_hn_one_source_per_system_with_tsvs_beside():
    c = Collection()
    rep = load_path(F / "msmarco" / "hn.jsonl", c)
    assert rep.errors == []
    by = {s.source: s for s in rep.sources}
    assert list(by) == ["hn:bm25", "hn:dense"]
    b, d = by["hn:bm25"], by["hn:dense"]
    assert (b.rows_read, b.queries, b.negatives_kept, b.drops) == (3, 2, 5, {NO_POS: 1})
    assert (d.rows_read, d.queries, d.negatives_kept, d.drops) == (3, 2, 3, {DUP: 1, NO_POS: 1})
    assert neg_ids(c, "hn:bm25") == {"1": ["11", "12", "13"], "2": ["22", "11"]}
    assert neg_ids(c, "hn:dense") == {"1": ["13", "14"], "2": ["22"]}
    assert pos_texts(c, PY) == [P_PY1, P_PY2]
    assert c.n_passages == 8  # only referenced passages: "99" is not loaded
    assert "99" not in c.passage_ids and "4" not in c.query_ids


def test_msmarco_hn_explicit_api_gz_and_missing_tsvs(tmp_path):
    src = F / "msmarco"
    with gzip.open(tmp_path / "train-hn.jsonl.gz", "wb") as f:
        f.write((src / "hn.jsonl").read_bytes())
    shutil.copy(src / "collection.tsv", tmp_path / "passages.tsv")
    shutil.copy(src / "queries.tsv", tmp_path / "q.tsv")
    # not named collection.tsv/queries.tsv: load_path cannot find them
    with pytest.raises(LoadError) as e:
        load_path(tmp_path / "train-hn.jsonl.gz", Collection())
    assert str(e.value).startswith(
        f"{tmp_path / 'train-hn.jsonl.gz'}: a msmarco-hard-negatives file needs its texts"
    )
    c = Collection()
    rep = load_msmarco_hn(tmp_path / "train-hn.jsonl.gz", tmp_path / "passages.tsv", tmp_path / "q.tsv", c)
    assert [(s.source, s.negatives_kept) for s in rep.sources] == [
        ("train-hn:bm25", 5),
        ("train-hn:dense", 3),
    ]


def test_msmarco_hn_unknown_ids_named_and_collection_unchanged(tmp_path):
    d = tmp_path / "mm"
    shutil.copytree(F / "msmarco", d)
    write(
        d / "hn.jsonl",
        jl(
            {"qid": 1, "pos": [10], "neg": {"bm25": [11]}},
            {"qid": 2, "pos": [20], "neg": {"bm25": [11, 77, 78], "dense": [79]}},
        ),
    )
    c = Collection()
    load_path(F / "st_triplet.jsonl", c)
    before = snapshot(c)
    with pytest.raises(LoadError) as e:
        load_path(d / "hn.jsonl", c)
    assert (
        str(e.value) == f"{d / 'hn.jsonl'}:2: field 'neg.bm25': 2 negative ids not in collection.tsv "
        "(the first on this line)"
    )
    assert snapshot(c) == before


# ---------------------------------------------------------------------------- BEIR, TREC, negative ids
def test_beir_directory():
    c = Collection()
    rep = load_path(F / "beir", c)
    assert rep.errors == []
    by = {s.source: s for s in rep.sources}
    assert list(by) == ["bm25", "dense"]
    b, d = by["bm25"], by["dense"]
    assert (b.format, b.rows_read, b.queries, b.negatives_kept) == ("trec-run", 6, 2, 5)
    assert b.drops == {NO_POS: 1}  # q4 is in no qrels/test.tsv
    assert b.notes == {SAME: 1}  # the run retrieved q1's positive d1
    assert (d.format, d.rows_read, d.queries, d.negatives_kept, d.drops) == (
        "negative-ids",
        2,
        2,
        4,
        {DUP: 1},
    )
    # TREC negatives ordered by rank with the score kept
    assert neg_ids(c, "bm25") == {"q1": ["d1", "d5", "d6"], "q2": ["d3", "d7"]}
    assert c.sources["bm25"].score.tolist() == [12.0, 10.5, 9.0, 8.0, 7.5]
    assert neg_ids(c, "dense") == {"q1": ["d6", "d5"], "q3": ["d7", "d8"]}
    assert c.sources["dense"].score[:2].tolist() == [0.8, 0.7]
    # q3 is labelled in test.tsv and train.tsv (an id that does not exist): test wins; score 0 is not relevant
    pos = {c.query_ids[q]: [c.passage_ids[p] for p in ps] for q, ps in c.positives.items()}
    assert pos == {"q1": ["d1"], "q2": ["d2"], "q3": ["d4"]}
    text = dict(zip(c.passage_ids, c.passage_texts))
    assert text["d1"] == "Cat " + P_CAT and text["d2"] == P_PY1
    assert "d99" not in text  # unreferenced (and empty) passages are not loaded


def test_beir_qrels_union_when_no_test_split(tmp_path):
    d = tmp_path / "b"
    shutil.copytree(F / "beir", d)
    (d / "qrels" / "test.tsv").unlink()
    write(d / "qrels" / "train.tsv", "query-id\tcorpus-id\tscore\nq1\td1\t1\nq4\td8\t1\n")
    write(d / "qrels" / "dev.tsv", "query-id\tcorpus-id\tscore\nq2\td2\t1\n")
    c = Collection()
    rep = load_path(d, c)
    by = {s.source: s for s in rep.sources}
    assert (by["bm25"].queries, by["bm25"].drops) == (3, {})  # q4 now has a positive
    # q3 lost its positive: skipped (so its duplicate d7 is never counted)
    assert (by["dense"].queries, by["dense"].drops) == (1, {NO_POS: 1})


def _split_dir(tmp_path: Path) -> Path:
    """A BEIR directory whose negatives belong to train queries (q1, q2) and one test query (q3)."""
    d = tmp_path / "s"
    shutil.copytree(F / "beir", d)
    (d / "qrels" / "test.tsv").unlink()
    write(d / "qrels" / "train.tsv", "query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t1\n")
    write(d / "qrels" / "test.tsv", "query-id\tcorpus-id\tscore\nq3\td4\t1\n")
    write(
        d / "negatives" / "dense.jsonl",
        jl(
            {"query_id": "q1", "negative_ids": ["d6", "d5"]},
            {"query_id": "q2", "negative_ids": ["d7"]},
            {"query_id": "q3", "negative_ids": ["d8"]},
        ),
    )
    (d / "negatives" / "bm25.trec").unlink()
    return d


def test_beir_reads_every_qrels_split_and_keeps_each_querys_split(tmp_path):
    d = _split_dir(tmp_path)
    c, rep = load_paths([d])
    assert rep.errors == []
    r = rep.sources[0]
    assert (r.source, r.queries, r.negatives_kept, r.drops) == ("dense", 3, 4, {})
    pos = {c.query_ids[q]: [c.passage_ids[p] for p in ps] for q, ps in c.positives.items()}
    assert pos == {"q1": ["d1"], "q2": ["d2"], "q3": ["d4"]}
    assert {c.query_ids[q]: s for q, s in c.query_splits.items()} == {
        "q1": "train",
        "q2": "train",
        "q3": "test",
    }


@pytest.mark.parametrize("split, kept, dropped", [("train", ["q1", "q2"], 1), ("test", ["q3"], 2)])
def test_beir_split_option_chooses_one_qrels_file(tmp_path, split, kept, dropped):
    d = _split_dir(tmp_path)
    c, rep = load_paths([d], split=split)
    assert rep.errors == []
    r = rep.sources[0]
    assert (r.queries, r.drops) == (len(kept), {NO_POS: dropped})
    assert sorted(c.query_ids[q] for q in c.sources["dense"].queries) == kept
    assert set(c.query_splits.values()) == {split}
    # a negatives file given on its own honours the split too
    c2, rep2 = load_paths([d / "negatives" / "dense.jsonl"], split=split)
    assert rep2.sources[0].queries == len(kept)


def test_beir_unknown_split_names_the_splits_there(tmp_path):
    d = _split_dir(tmp_path)
    c, rep = load_paths([d], split="dev")
    assert rep.errors == [f"{d / 'qrels'}: split='dev': no qrels/dev.tsv; splits here: test, train"]
    assert c.sources == {} and c.query_splits == {}


def test_beir_query_in_two_splits_takes_test_and_is_noted(tmp_path):
    # the shipped fixture labels q3 in test.tsv (d4) and in train.tsv (dXX, not in the corpus)
    c = Collection()
    rep = load_path(F / "beir", c)
    assert rep.errors == []
    dense = {s.source: s for s in rep.sources}["dense"]
    assert dense.notes == {"query labelled in several qrels splits (positives from its test split)": 1}
    assert c.query_splits[c.query_index("q3")] == "test"


def test_non_beir_formats_have_no_splits():
    c, rep = load_paths([F / "bge.jsonl"])
    assert rep.errors == [] and c.query_splits == {}


def test_cli_split_option(tmp_path, capsys):
    from eci_core.cli import main

    d = _split_dir(tmp_path)
    assert main(["inspect", str(d), "--split", "train"]) == 0
    out = capsys.readouterr().out
    assert "2 queries" in out


def test_beir_bad_negatives_file_reported_others_load(tmp_path):
    d = tmp_path / "b"
    shutil.copytree(F / "beir", d)
    bad = write(
        d / "negatives" / "broken.trec",
        "q1 Q0 d5 1 3.0 x\nq1 Q0 d9 2 2.0 x\nq2 Q0 d10 1 1.0 x\nq2 Q0 d11 2 0.5 x\n",
    )
    worse = write(
        d / "negatives" / "garbled.jsonl", '{"query_id": "q1", "negative_ids": ["d5"]}\n{"query_id": \n'
    )
    c = Collection()
    rep = load_path(d, c)
    assert sorted(s.source for s in rep.sources) == ["bm25", "dense"]
    # parse errors are found first, unknown ids after the corpus is read
    assert rep.errors == [
        f"{worse}:2: invalid JSON: Expecting value at column 14",
        f"{bad}:2: field 'docid': 3 negative ids not in corpus.jsonl (the first on this line)",
    ]
    assert sorted(c.sources) == ["bm25", "dense"]


def test_beir_unknown_query_and_qrels_ids(tmp_path):
    d = tmp_path / "b"
    shutil.copytree(F / "beir", d)
    nf = write(
        d / "negatives" / "dense.jsonl",
        jl({"query_id": "q1", "negative_ids": ["d5"]}, {"query_id": "q77", "negative_ids": ["d5"]}),
    )
    rep = load_beir(d, Collection())
    assert rep.errors == [f"{nf}:2: field 'query_id': 1 query id not in queries.jsonl"]
    write(d / "qrels" / "test.tsv", "query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\tdX\t1\n")
    c = Collection()
    with pytest.raises(LoadError) as e:
        load_path(d, c)
    assert (
        str(e.value) == f"{d / 'qrels' / 'test.tsv'}:3: field 'corpus-id': 1 positive id not in corpus.jsonl"
    )
    assert c.n_queries == 0 and c.sources == {}


def test_negatives_file_alone_uses_its_beir_directory():
    c = Collection()
    r = one(load_path(F / "beir" / "negatives" / "dense.jsonl", c))
    assert (r.source, r.queries, r.negatives_kept) == ("dense", 2, 4)
    assert list(c.sources) == ["dense"]


def test_negatives_file_outside_beir_resolves_against_loaded_collection(tmp_path):
    c = Collection()
    load_path(F / "beir", c)
    run = write(
        tmp_path / "other.trec",
        "q1 Q0 d8 1 5 sysA\nq1 Q0 d7 2 4 sysA\nq1 Q0 d6 1 9 sysB\nq3 Q0 d5 1 8 sysB\n",
    )
    rep = load_path(run, c)
    assert [(s.source, s.queries, s.negatives_kept) for s in rep.sources] == [
        ("other:sysA", 1, 2),
        ("other:sysB", 2, 2),
    ]
    assert neg_ids(c, "other:sysA") == {"q1": ["d8", "d7"]}
    # without the corpus loaded: a clear message
    with pytest.raises(LoadError) as e:
        load_path(run, Collection())
    assert str(e.value).startswith(
        f"{run}:1: field 'qid': 2 query ids not in the loaded queries (load the BEIR"
    )


# ---------------------------------------------------------------------------- alignment, naming
def test_alignment_by_id_tevatron_and_beir():
    c = Collection()
    load_paths([F / "tevatron.jsonl", F / "beir"], c)
    assert sorted(c.query_ids) == ["q1", "q2", "q3"]  # each id once; q4 has no positive: skipped, not added
    q1 = c.query_index("q1")
    assert q1 in c.sources["tevatron"].queries and q1 in c.sources["bm25"].queries
    # the same passage id with the same text (title + " " + text) is one passage
    assert c.passage_ids.count("d1") == 1 and c.passage_texts[c.passage_index("d1")] == "Cat " + P_CAT
    assert c.positives[q1] == [c.passage_index("d1")]


def test_alignment_by_text_for_id_less_formats():
    c, rep = load_paths([F / "st_triplet.jsonl", F / "bge.jsonl", F / "st_labeled_list.jsonl"])
    assert rep.errors == []
    cat = c.query_texts.index(CAT)
    assert c.query_texts.count(CAT) == 1
    for s in ("st_triplet", "bge", "st_labeled_list"):
        assert cat in c.sources[s].queries
    assert pos_texts(c, CAT) == [P_CAT]  # one positive passage shared by all three
    # same negative text from two files is one passage
    assert c.passage_texts.count(N_DOG) == 1


def test_same_stem_twice_gets_unique_names_and_name_override(tmp_path):
    c = Collection()
    assert one(load_path(F / "st_ntuple.jsonl", c)).source == "st_ntuple"
    assert one(load_path(F / "st_ntuple.jsonl", c)).source == "st_ntuple-2"
    assert one(load_path(F / "st_ntuple.jsonl", c, name="mine")).source == "mine"


def test_format_override(tmp_path):
    c = Collection()
    assert one(load_path(F / "st_ntuple.jsonl", c, format="n-tuple-scores")).format == "st-ntuple"
    with pytest.raises(LoadError) as e:
        load_path(F / "st_triplet.jsonl", c, format="bge")
    assert str(e.value) == (
        f"{F / 'st_triplet.jsonl'}:1: field 'pos': missing required field "
        "(fields found: query, answer, negative)"
    )


def test_conflicting_text_for_a_known_id_is_noted(tmp_path):
    c = Collection()
    load_path(F / "tevatron.jsonl", c)
    p = write(
        tmp_path / "tev2.jsonl",
        jl(
            {
                "query_id": "q1",
                "query": CAT,
                "positive_passages": [{"docid": "d1", "text": "Something else."}],
                "negative_passages": [{"docid": "d5", "text": N_DOG}],
            }
        ),
    )
    r = one(load_path(p, c))
    assert r.notes == {"passage id given with a different text (first text kept)": 1}


# ---------------------------------------------------------------------------- bad input
def test_invalid_json_names_file_line_and_json_reason(tmp_path):
    p = write(
        tmp_path / "b.jsonl",
        jl({"query": CAT, "pos": [P_CAT], "neg": [N_DOG]}) + '{"query": "x" "pos": ["a"], "neg": []}\n',
    )
    with pytest.raises(LoadError) as e:
        load_path(p, Collection())
    assert str(e.value) == f"{p}:2: invalid JSON: Expecting ',' delimiter at column 15"
    assert e.value.line == 2


def test_invalid_json_array_reports_the_real_line(tmp_path):
    p = write(
        tmp_path / "a.json",
        '[\n  {"query": "q", "pos": ["p"], "neg": ["n"]},\n'
        '  {"query": "q2", "pos": ["p"]\n   "neg": []}\n]\n',
    )
    with pytest.raises(LoadError) as e:
        load_path(p, Collection())
    assert str(e.value) == f"{p}:4: invalid JSON: Expecting ',' delimiter at column 4"


def test_json_array_field_error_reports_the_elements_line(tmp_path):
    p = write(
        tmp_path / "a.json",
        '[\n  {"query": "q", "pos": ["p"], "neg": ["n"]},\n\n  {"query": "q2", "pos": ["p"]}\n]\n',
    )
    with pytest.raises(LoadError) as e:
        load_path(p, Collection())
    assert str(e.value) == f"{p}:4: field 'neg': missing required field (fields found: query, pos)"


def test_missing_required_field_lists_fields_found(tmp_path):
    p = write(
        tmp_path / "tev.jsonl",
        jl(
            {"query_id": "1", "query": CAT, "positive_passages": [{"text": P_CAT}], "negative_passages": []},
            {"query_id": "2", "query": PY, "negative_passages": []},
        ),
    )
    with pytest.raises(LoadError) as e:
        load_path(p, Collection())
    assert str(e.value) == (
        f"{p}:2: field 'positive_passages': missing required field "
        "(fields found: query_id, query, negative_passages)"
    )
    assert (e.value.line, e.value.field) == (2, "positive_passages")


def test_missing_text_inside_a_tevatron_passage(tmp_path):
    p = write(
        tmp_path / "tev.jsonl",
        jl(
            {
                "query_id": "1",
                "query": CAT,
                "positive_passages": [{"text": P_CAT}],
                "negative_passages": [{"docid": "a", "text": N_DOG}, {"docid": "b"}],
            }
        ),
    )
    with pytest.raises(LoadError) as e:
        load_path(p, Collection())
    assert (
        str(e.value)
        == f"{p}:1: field 'negative_passages[1].text': missing required field (fields found: docid)"
    )


def test_null_and_empty_text(tmp_path):
    p = write(
        tmp_path / "t.jsonl",
        jl(
            {"query": CAT, "positive": P_CAT, "negative": N_DOG},
            {"query": None, "positive": P_CAT, "negative": N_DOG},
        ),
    )
    with pytest.raises(LoadError) as e:
        load_path(p, Collection())
    assert str(e.value) == f"{p}:2: field 'query': is null; expected text"
    p = write(tmp_path / "t.jsonl", jl({"query": CAT, "positive": P_CAT, "negative": "   "}))
    with pytest.raises(LoadError) as e:
        load_path(p, Collection())
    assert str(e.value) == f"{p}:1: field 'negative': empty text (every query and passage needs text)"
    p = write(tmp_path / "b.jsonl", jl({"query": CAT, "pos": [P_CAT], "neg": [N_DOG, ""]}))
    with pytest.raises(LoadError) as e:
        load_path(p, Collection())
    assert str(e.value) == f"{p}:1: field 'neg[1]': empty text (every query and passage needs text)"


def test_empty_text_in_csv_names_the_csv_line(tmp_path):
    p = write(tmp_path / "t.csv", f"anchor,positive,negative\n{CAT},{P_CAT},{N_DOG}\n{PY},{P_PY1},\n")
    with pytest.raises(LoadError) as e:
        load_path(p, Collection())
    assert str(e.value) == f"{p}:3: field 'negative': empty text (every query and passage needs text)"


def test_undecodable_bytes(tmp_path):
    good = (json.dumps({"query": CAT, "pos": [P_CAT], "neg": [N_DOG]}) + "\n").encode()
    bad = b'{"query": "caf\xe9", "pos": ["p"], "neg": ["n"]}\n'
    p = tmp_path / "latin1.jsonl"
    p.write_bytes(good + bad)
    with pytest.raises(LoadError) as e:
        load_path(p, Collection())
    offset = len(good) + bad.index(b"\xe9")
    assert str(e.value) == (
        f"{p}:2: not valid UTF-8 (expected UTF-8 text) at byte {offset} of the file; "
        "re-save the file as UTF-8"
    )


def test_empty_file_and_blank_file(tmp_path):
    p = tmp_path / "empty.jsonl"
    p.write_bytes(b"")
    with pytest.raises(LoadError) as e:
        load_path(p, Collection())
    assert str(e.value) == f"{p}: file is empty"
    p2 = write(tmp_path / "blank.jsonl", "\n\n  \n")
    with pytest.raises(LoadError) as e:
        load_path(p2, Collection())
    assert str(e.value) == f"{p2}: file has no data (only blank lines)"
    p3 = write(tmp_path / "header.csv", "anchor,positive,negative\n")
    with pytest.raises(LoadError) as e:
        load_path(p3, Collection())
    assert str(e.value) == f"{p3}: file has a header but no data rows"


def test_undetectable_format_lists_accepted_formats(tmp_path):
    p = write(tmp_path / "what.jsonl", jl({"foo": "a", "bar": "b"}))
    with pytest.raises(LoadError) as e:
        detect_format(p)
    msg = str(e.value)
    assert msg.startswith(
        f"{p}:1: cannot detect the format from the fields 2 unrecognised fields; accepted formats: "
    )
    assert "foo" not in msg and "bar" not in msg  # never echo what may be content (a headerless CSV)
    for name in FORMATS:
        assert name in msg
    assert "\n" not in msg


def test_wrong_types(tmp_path):
    p = write(tmp_path / "t.jsonl", jl({"query": CAT, "positive": P_CAT, "negative": [N_DOG, N_CAR]}))
    with pytest.raises(LoadError) as e:
        load_path(p, Collection())
    assert str(e.value) == f"{p}:1: field 'negative': expected a string, got a list"
    p = write(tmp_path / "b.jsonl", jl({"query": CAT, "pos": P_CAT, "neg": [N_DOG]}))
    with pytest.raises(LoadError) as e:
        load_path(p, Collection())
    assert str(e.value) == f"{p}:1: field 'pos': expected a list of strings, got a string"
    p = write(tmp_path / "b2.jsonl", jl({"query": CAT, "pos": [P_CAT], "neg": [N_DOG, 3]}))
    with pytest.raises(LoadError) as e:
        load_path(p, Collection())
    assert str(e.value) == f"{p}:1: field 'neg[1]': expected a string, got a number"
    p = write(tmp_path / "b3.jsonl", jl({"query": CAT, "pos": [P_CAT], "neg": [N_DOG], "neg_scores": [1, 2]}))
    with pytest.raises(LoadError) as e:
        load_path(p, Collection())
    assert str(e.value) == f"{p}:1: field 'neg_scores': has 2 values, expected 1 (one per item of 'neg')"


def test_bad_trec_lines(tmp_path):
    d = tmp_path / "b"
    shutil.copytree(F / "beir", d)
    p = write(d / "negatives" / "bm25.trec", "q1 Q0 d5 1 3.0 x\nq1 Q0 d6 two 2.0 x\n")
    with pytest.raises(LoadError) as e:
        load_path(p, Collection())
    assert str(e.value) == f"{p}:2: field 'rank': expected an integer rank"
    p = write(d / "negatives" / "bm25.trec", "q1 Q0 d5 1 3.0 x\nq1 Q0 d6 2\n")
    with pytest.raises(LoadError) as e:
        load_path(p, Collection())
    assert (
        str(e.value)
        == f"{p}:2: expected 6 whitespace-separated fields 'qid Q0 docid rank score tag', found 4"
    )


def test_csv_row_with_wrong_field_count(tmp_path):
    p = write(tmp_path / "t.tsv", f"anchor\tpositive\tlabel\n{CAT}\t{P_CAT}\t1\n{CAT}\t{N_DOG}\n")
    with pytest.raises(LoadError) as e:
        load_path(p, Collection())
    assert str(e.value).startswith(f"{p}:3: row has 2 fields but the header has 3")


def test_missing_path_and_unknown_directory(tmp_path):
    with pytest.raises(LoadError, match="no such file or directory"):
        load_path(tmp_path / "nope.jsonl", Collection())
    with pytest.raises(LoadError, match="must be a BEIR directory"):
        load_path(tmp_path, Collection())


def test_error_on_last_line_leaves_collection_exactly_as_it_was(tmp_path):
    c = Collection()
    load_path(F / "beir", c)
    load_path(F / "st_triplet.jsonl", c)
    before = snapshot(c)
    rows = [
        {"query": f"new query {i}", "pos": [f"new positive {i}"], "neg": [f"new negative {i}"]}
        for i in range(50)
    ]
    rows.append({"query": "last", "pos": ["p"], "neg": None})
    p = write(tmp_path / "late.jsonl", jl(*rows))
    with pytest.raises(LoadError) as e:
        load_path(p, c)
    assert str(e.value) == f"{p}:51: field 'neg': is null; expected a list of strings"
    assert snapshot(c) == before


def test_load_paths_keeps_good_files_and_collects_errors(tmp_path):
    bad = write(tmp_path / "bad.jsonl", jl({"query": CAT, "pos": [P_CAT], "neg": [N_DOG]}) + "{oops\n")
    c, rep = load_paths([F / "st_ntuple.jsonl", bad, F / "tevatron.jsonl"])
    assert [s.source for s in rep.sources] == ["st_ntuple", "tevatron"]
    assert sorted(c.sources) == ["st_ntuple", "tevatron"]
    assert rep.errors == [
        f"{bad}:2: invalid JSON: Expecting property name enclosed in double quotes at column 2"
    ]
    t = rep.table()
    assert t["source"].tolist() == ["st_ntuple", "tevatron"]
    assert t["negatives_kept"].tolist() == [4, 3]


def test_progress_is_called(tmp_path):
    calls = []
    load_path(
        F / "bge.jsonl", Collection(), progress=lambda stage, done, total: calls.append((stage, done, total))
    )
    assert calls and calls[-1][1] == calls[-1][2] > 0


def test_larger_file_counts(tmp_path):
    # 3 000 queries × 4 negatives, every 10th query with a duplicated negative and no positive every 100th
    rows = []
    for i in range(3000):
        neg = [f"n{i}-{k}" for k in range(4)] + ([f"n{i}-0"] if i % 10 == 0 else [])
        rows.append({"query": f"q{i}", "pos": [] if i % 100 == 0 else [f"p{i}"], "neg": neg})
    p = write(tmp_path / "big.jsonl", jl(*rows))
    c = Collection()
    r = one(load_path(p, c))
    assert (r.rows_read, r.queries, r.negatives_kept) == (3000, 2970, 2970 * 4)
    assert r.drops == {NO_POS: 30, DUP: 300 - 30}


def test_bge_without_query_is_still_bge_and_names_the_missing_field(tmp_path):
    p = write(tmp_path / "b.jsonl", jl({"pos": [P_CAT], "neg": [N_DOG]}))
    assert detect_format(p) == "bge"
    with pytest.raises(LoadError) as e:
        load_path(p, Collection())
    assert str(e.value) == f"{p}:1: field 'query': missing required field (fields found: pos, neg)"


def test_repeated_anchor_positive_row_counts_as_duplicates(tmp_path):
    row = {"anchor": CAT, "positive": P_CAT, "negative_1": N_DOG, "negative_2": N_CAR}
    p = write(tmp_path / "nt.jsonl", jl(row, row))
    r = one(load_path(p, Collection()))
    assert (r.queries, r.negatives_kept, r.drops) == (1, 2, {DUP: 2})


def test_gzipped_tsv(tmp_path):
    p = tmp_path / "pairs.tsv.gz"
    with gzip.open(p, "wb") as f:
        f.write((F / "st_labeled_pair.tsv").read_bytes())
    c = Collection()
    r = one(load_path(p, c))
    assert (r.source, r.format, r.rows_read, r.queries, r.negatives_kept, r.drops) == (
        "pairs",
        "st-labeled-pair",
        7,
        2,
        3,
        {NO_POS: 1},
    )


def test_trec_run_comments_and_name_override_with_several_tags(tmp_path):
    d = tmp_path / "b"
    shutil.copytree(F / "beir", d)
    run = write(
        d / "negatives" / "mixed.run", "# a comment\nq1 Q0 d5 1 3 A\n\nq1 Q0 d6 1 3 B\nq2 Q0 d7 1 1 B\n"
    )
    c = Collection()
    rep = load_path(run, c, name="exp")
    assert [(s.source, s.rows_read, s.queries, s.negatives_kept) for s in rep.sources] == [
        ("exp:A", 3, 1, 1),
        ("exp:B", 3, 2, 2),
    ]


def test_broken_gzip(tmp_path):
    p = tmp_path / "x.jsonl.gz"
    full = gzip.compress((F / "bge.jsonl").read_bytes())
    p.write_bytes(full[: len(full) // 2])
    with pytest.raises(LoadError) as e:
        load_path(p, Collection())
    assert "broken gzip data" in str(e.value) and str(e.value).startswith(str(p))


def test_corrupt_parquet_and_ragged_columns_json(tmp_path):
    p = tmp_path / "x.parquet"
    p.write_bytes(b"PAR1 this is not really parquet")
    with pytest.raises(LoadError) as e:
        load_path(p, Collection())
    assert str(e.value).startswith(f"{p}: not a valid Parquet file")
    q = write(
        tmp_path / "cols.json",
        json.dumps({"query": [CAT, PY], "positive": [P_CAT], "negative": [N_DOG, N_CAR]}),
    )
    with pytest.raises(LoadError) as e:
        load_path(q, Collection())
    assert (
        str(e.value)
        == f"{q}: an object of lists needs lists of equal length, got query: 2, positive: 1, negative: 2"
    )


MINED = F / "st_mined"  # written by sentence-transformers 6.2.0 mine_hard_negatives (MiniLM, num_negatives=3)


@pytest.mark.parametrize(
    "variant",
    [
        "triplet",
        "triplet-scores",
        "n-tuple",
        "n-tuple-scores",
        "labeled-pair",
        "labeled-list",
        "labeled-list-scores",
    ],
)
def test_real_miner_outputs_agree(variant):
    """5 queries ("what is python" has 2 positives) × 3 negatives, in every output format."""
    ref, c = Collection(), Collection()
    load_path(MINED / "triplet.jsonl", ref)
    r = one(load_path(MINED / f"{variant}.jsonl", c))
    assert r.format == "st-" + variant.replace("-scores", "").replace("n-tuple", "ntuple")
    assert (r.queries, r.negatives_kept, r.drops, r.notes) == (5, 15, {}, {})
    assert pos_texts(c, PY) == [P_PY1, P_PY2]
    assert negs(c, r.source) == negs(ref, "triplet")
    sc = c.sources[r.source].score
    assert all(math.isnan(x) for x in sc) != variant.endswith("-scores")


def test_real_miner_labeled_pair_scores_limit_is_reported():
    c = Collection()
    r = one(load_path(MINED / "labeled-pair-scores.jsonl", c))
    # without labels the second positive of "what is python" is read as a negative, and the report says so
    assert (r.queries, r.negatives_kept) == (5, 16)
    assert r.notes == {"labeled-pair without 'label': first row of each query taken as its only positive": 5}
    assert P_PY2 in negs(c, r.source)[PY]


def test_beir_corpus_errors_on_referenced_passages(tmp_path):
    d = tmp_path / "b"
    shutil.copytree(F / "beir", d)
    corpus = d / "corpus.jsonl"
    lines = corpus.read_text().splitlines()
    lines[5] = '{"_id": "d6", "title": "", "text": ""}'  # d6 is a negative in both files
    write(corpus, "\n".join(lines) + "\n")
    c = Collection()
    with pytest.raises(LoadError) as e:
        load_path(d, c)
    assert str(e.value) == f"{corpus}:6: field 'text': empty text (every query and passage needs text)"
    assert c.n_passages == 0 and c.sources == {}
    lines[5] = '{"_id": "d6", "title": "", "text": "Cars have four wheels.",}'
    write(corpus, "\n".join(lines) + "\n")
    with pytest.raises(LoadError) as e:
        load_path(d, c)
    assert (
        str(e.value)
        == f"{corpus}:6: invalid JSON: Expecting property name enclosed in double quotes at column 61"
    )


def test_query_id_column_in_st_file_aligns_and_conflicts_are_noted(tmp_path):
    c = Collection()
    load_path(F / "tevatron.jsonl", c)
    p = write(
        tmp_path / "t.jsonl",
        jl(
            {"query_id": "q1", "query": CAT, "positive": P_CAT, "negative": N_LYON},
            {"query_id": "q2", "query": "a different text", "positive": P_PY1, "negative": N_LYON},
        ),
    )
    r = one(load_path(p, c))
    assert r.notes == {"query id given with a different text (first text kept)": 1}
    assert sorted(c.query_ids) == ["q1", "q2"]  # aligned by id


def test_row_id_column_is_not_a_query_id(tmp_path):
    p = write(
        tmp_path / "t.jsonl",
        jl(
            {"id": 1, "anchor": CAT, "positive": P_CAT, "negative": N_DOG},
            {"id": 2, "anchor": CAT, "positive": P_CAT, "negative": N_CAR},
        ),
    )
    c = Collection()
    r = one(load_path(p, c))
    assert (r.queries, r.negatives_kept) == (1, 2) and c.query_texts == [CAT]


def test_index_columns_are_not_taken_by_position(tmp_path):
    import pandas as pd

    df = pd.DataFrame({"frage": [CAT, CAT], "antwort": [P_CAT, P_CAT], "negative": [N_DOG, N_CAR]})
    df.to_csv(tmp_path / "x.csv")  # index=True: an unnamed first column of row numbers
    df.set_index(pd.Index([5, 6])).to_parquet(tmp_path / "x.parquet")  # __index_level_0__
    for name in ("x.csv", "x.parquet"):
        c = Collection()
        r = one(load_path(tmp_path / name, c))
        assert (r.queries, r.negatives_kept) == (1, 2), name
        assert c.query_texts == [CAT] and pos_texts(c, CAT) == [P_CAT], name


def test_labeled_list_row_without_labels_and_length_mismatch(tmp_path):
    p = write(
        tmp_path / "ll.jsonl",
        jl(
            {"anchor": CAT, "docs": [P_CAT, N_DOG], "labels": [1, 0]}, {"anchor": PY, "docs": [P_PY1, N_JAVA]}
        ),
    )
    with pytest.raises(LoadError) as e:
        load_path(p, Collection())
    assert str(e.value) == f"{p}:2: field 'labels': missing required field (fields found: anchor, docs)"
    p = write(tmp_path / "ll.jsonl", jl({"anchor": CAT, "docs": [P_CAT, N_DOG], "labels": [1, 0, 0]}))
    with pytest.raises(LoadError) as e:
        load_path(p, Collection())
    assert str(e.value) == f"{p}:1: field 'labels': has 3 values, expected 2 (one per item of 'docs')"


# ---------------------------------------------------------------------------- vectorised vs per-line readers
ROOT = Path(__file__).resolve().parents[1]


def _state(c: Collection, report) -> tuple:
    """Everything a load produces, in comparable form (NaN scores compared as NaN)."""
    srcs = {
        n: (
            s.q_idx.tolist(),
            s.p_idx.tolist(),
            s.rank.tolist(),
            [None if x != x else x for x in s.score.tolist()],
            s.queries.tolist(),
            s.path,
            s.format,
        )
        for n, s in c.sources.items()
    }
    return (
        c.passage_ids,
        c.passage_texts,
        c.query_ids,
        c.query_texts,
        c.positives,
        c.query_splits,
        list(c.sources),
        srcs,
        [r.as_row() for r in report.sources],
        report.errors,
    )


def _beir_variant(tmp_path: Path, neg_name: str, text: str | bytes, gz: bool = False) -> Path:
    d = tmp_path / "v"
    shutil.copytree(F / "beir", d)
    data = text.encode() if isinstance(text, str) else text
    target = d / "negatives" / (neg_name + (".gz" if gz else ""))
    target.write_bytes(gzip.compress(data) if gz else data)
    return d


RUN = "q1 Q0 d5 2 10.5 bm25\nq1 Q0 d1 1 12.0 bm25\nq2 Q0 d3 1 8.0 bm25\nq4 Q0 d5 1 5.0 bm25\n"
VARIANTS = {
    "crlf": ("x.trec", RUN.replace("\n", "\r\n")),
    "bom": ("x.trec", "\ufeff" + RUN),
    "tabs": ("x.trec", RUN.replace(" ", "\t")),
    "no final newline": ("x.trec", RUN.rstrip("\n")),
    "gz": ("x.trec", RUN, True),
    "blank line": ("x.trec", RUN.replace("\nq2", "\n\nq2")),
    "comment": ("x.trec", "# a run\n" + RUN),
    "double space": ("x.trec", RUN.replace("Q0 d3", "Q0  d3")),
    "nan score": ("x.trec", RUN.replace("8.0", "nan")),
    "bad rank": ("x.trec", RUN.replace("d3 1", "d3 one")),
    "two tags, ranks tie": (
        "x.trec",
        RUN + "q1 Q0 d6 1 3.0 other\nq1 Q0 d7 1 2.0 other\nq3 Q0 d8 1 1 other\n",
    ),
    "unknown ids": ("x.trec", RUN + "q9 Q0 d77 1 1 bm25\nq1 Q0 d78 3 1 bm25\n"),
    "lone CR": ("x.trec", RUN.replace("bm25\nq2", "bm25\rq2")),
    "nbsp": ("x.trec", RUN.replace("d3 1", "d3\u00a01")),
    "ids jsonl": (
        "y.jsonl",
        jl(
            {"query_id": "q1", "negative_ids": ["d6", "d5", "d6"], "scores": [3, 2, 1]},
            {"query_id": "q3", "negative_ids": []},
            {"query_id": "q1", "negative_ids": ["d7"], "scores": None},
            {"query_id": "q4", "negative_ids": ["d5"]},
        ),
    ),
    "int ids": ("y.jsonl", jl({"query_id": "q1", "negative_ids": [5, 6]}).replace('"q1"', '"q1"')),
    "padded id": ("y.jsonl", jl({"query_id": " q1", "negative_ids": ["d5 "]})),
    "scores length": ("y.jsonl", jl({"query_id": "q1", "negative_ids": ["d5", "d6"], "scores": [1.0]})),
    "null score": ("y.jsonl", jl({"query_id": "q1", "negative_ids": ["d5"], "scores": [None]})),
    "blank jsonl line": (
        "y.jsonl",
        jl({"query_id": "q1", "negative_ids": ["d5"]})
        + "\n"
        + jl({"query_id": "q9", "negative_ids": ["d5"]}),
    ),
    "surrogate": ("y.jsonl", '{"query_id": "q1", "negative_ids": ["d5", "\\ud800"]}\n'),
    "late bad utf-8": ("x.trec", RUN.encode() + b"q2 Q0 d\xe9 3 1.0 bm25\n"),
    "bom, late bad utf-8": ("x.trec", b"\xef\xbb\xbf" + RUN.encode() + b"q2 Q0 d\xe9 3 1.0 bm25\n"),
    "gz, late bad rank": ("x.trec", RUN + "q2 Q0 d7 x 1.0 bm25\n", True),
    "late bad json": (
        "y.jsonl",
        jl({"query_id": "q1", "negative_ids": ["d5"]}) * 3 + '{"query_id": "q2", \n',
    ),
    "late wrong type": (
        "y.jsonl",
        jl({"query_id": "q1", "negative_ids": ["d5"]}) * 3 + jl({"query_id": "q2", "negative_ids": "d7"}),
    ),
}


def _fixture_paths() -> list:
    out = [
        pytest.param([p], id=str(p.relative_to(F)))
        for p in sorted(F.rglob("*"))
        if p.is_file() and "beir" not in p.parts and "msmarco" not in p.parts
    ]
    out += [
        pytest.param([F / "beir"], id="beir"),
        pytest.param([F / "msmarco" / "hn.jsonl"], id="msmarco"),
        pytest.param([F / "beir" / "negatives" / "bm25.trec"], id="beir/negatives/bm25.trec"),
        pytest.param([F / "tevatron.jsonl", F / "beir", F / "bge.jsonl"], id="tevatron+beir+bge"),
        pytest.param([ROOT / "tests" / "fixtures" / "app_small"], id="app_small"),
        pytest.param([ROOT / "sample_data" / "pyfaq"], id="pyfaq"),
    ]
    return out


def _both(monkeypatch, paths, **kw):
    out = []
    for mode in ("1", "0"):
        monkeypatch.setenv("ECI_LOADER_FAST", mode)
        c, rep = load_paths(paths, **kw)
        out.append(_state(c, rep))
    return out


@pytest.mark.parametrize("paths", _fixture_paths())
def test_vectorised_and_per_line_readers_agree_on_every_fixture(monkeypatch, reader, paths):
    if reader != "fast":
        pytest.skip("compares both modes itself")
    fast, slow = _both(monkeypatch, paths)
    assert fast == slow


@pytest.mark.parametrize("case", list(VARIANTS))
def test_vectorised_and_per_line_readers_agree_on_odd_and_bad_runs(tmp_path, monkeypatch, reader, case):
    if reader != "fast":
        pytest.skip("compares both modes itself")
    d = _beir_variant(tmp_path, *VARIANTS[case])
    fast, slow = _both(monkeypatch, [d])
    assert fast == slow
    fast, slow = _both(monkeypatch, [d], split="test")
    assert fast == slow
    # the file given on its own, and resolved against an already loaded collection
    f = next(p for p in (d / "negatives").iterdir() if p.name.startswith(("x.", "y.")))
    fast, slow = _both(monkeypatch, [f])
    assert fast == slow
    loose = tmp_path / "loose" / f.name
    loose.parent.mkdir()
    shutil.copy(f, loose)
    fast, slow = _both(monkeypatch, [F / "beir", loose])
    assert fast == slow


QRELS = {
    "header and tabs": "query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t1\nq2\td3\t0\nq3\td4\t2\n",
    "no header": "q1\td1\t1\nq3\td4\t1\n",
    "spaces": "query-id corpus-id score\nq1 d1 1\nq3 d4 1\n",
    "padded": "q1 \td1\t1\nq3\td4\t1\n",
    "four columns": "q1\t0\td1\t1\nq3\t0\td4\t1\n",
    "bad score": "query-id\tcorpus-id\tscore\nq1\td1\tone\n",
    "nan score": "q1\td1\tnan\n",
    "negative and repeated": "q1\td1\t1\nq1\td1\t2\nq1\td5\t-1\nq3\td4\t1\nq2\td2\t1\n",
    "unknown positive": "q1\td1\t1\nq1\tdX\t1\nq3\tdY\t1\n",
}


@pytest.mark.parametrize("case", list(QRELS))
def test_vectorised_and_per_line_qrels_agree(tmp_path, monkeypatch, reader, case):
    if reader != "fast":
        pytest.skip("compares both modes itself")
    d = tmp_path / "q"
    shutil.copytree(F / "beir", d)
    write(d / "qrels" / "test.tsv", QRELS[case])
    write(d / "qrels" / "dev.tsv", "q2\td2\t1\nq1\td5\t1\n")
    for split in (None, "test"):
        fast, slow = _both(monkeypatch, [d], split=split)
        assert fast == slow


@pytest.mark.parametrize("case", ["beir", "app_small", "pyfaq", *VARIANTS])
def test_vectorised_readers_agree_across_block_boundaries(tmp_path, monkeypatch, reader, case):
    """Blocks of a few lines (the readers cut files in ~16 MiB blocks of whole lines)."""
    if reader != "fast":
        pytest.skip("compares both modes itself")
    import eci_core.io.read.blocks as B

    monkeypatch.setattr(B, "BLOCK_BYTES", 40)
    d = {
        "beir": F / "beir",
        "app_small": ROOT / "tests" / "fixtures" / "app_small",
        "pyfaq": ROOT / "sample_data" / "pyfaq",
    }.get(case) or _beir_variant(tmp_path, *VARIANTS[case])
    fast, slow = _both(monkeypatch, [d])
    assert fast == slow


def test_vectorised_and_per_line_readers_agree_on_ids_known_with_other_texts(tmp_path, monkeypatch, reader):
    if reader != "fast":
        pytest.skip("compares both modes itself")
    tev = write(
        tmp_path / "tev.jsonl",
        jl(
            {
                "query_id": "q1",
                "query": "another text for q1",
                "positive_passages": [{"docid": "d1", "text": "other d1"}],
                "negative_passages": [
                    {"docid": "d5", "text": "other d5"},
                    {"docid": "d6", "title": "Car", "text": "Cars have four wheels."},
                ],
            }
        ),
    )
    fast, slow = _both(monkeypatch, [tev, F / "beir"])
    assert fast == slow
    notes = {r["source"]: r["notes"] for r in fast[8]}
    assert "passage id given with a different text (first text kept): " in notes["bm25"]
    assert "query id given with a different text (first text kept): 1" in notes["bm25"]


@pytest.mark.parametrize("mode", ["0", "1"])
def test_read_beir_texts_reads_every_passage(tmp_path, monkeypatch, mode):
    """The whole-corpus reader (used by validation) keeps every id, builds title + text as
    load_beir does, keeps the first of a repeated id, and names the line of a bad record."""
    from eci_core.io.formats.beir import read_beir_texts

    monkeypatch.setenv("ECI_LOADER_FAST", mode)
    f = tmp_path / "corpus.jsonl"
    f.write_text(
        '{"_id": "d1", "title": " T ", "text": "body one"}\n'
        '{"_id": "d2", "title": "", "text": "body two"}\n'
        "\n"
        '{"_id": "d1", "title": "", "text": "a repeat"}\n'
        '{"_id": "d3", "text": "three"}\n',
        encoding="utf-8",
    )
    assert read_beir_texts(f) == {"d1": "T body one", "d2": "body two", "d3": "three"}
    assert read_beir_texts(f, with_title=False)["d1"] == "body one"
    f.write_text('{"_id": "d1", "text": "ok"}\n{"_id": "d2", "text": 5}\n', encoding="utf-8")
    with pytest.raises(LoadError) as err:
        read_beir_texts(f)
    assert err.value.line == 2 and err.value.field == "text"


def test_corpus_read_in_many_blocks_keeps_the_needed_rows_and_reports_progress(tmp_path, monkeypatch, reader):
    # 64-byte blocks: the corpus (9 lines, d99 unreferenced, a repeated d5 added) is read one
    # or two lines a block, so the filter on the needed ids runs per block; same collection both modes
    import eci_core.io.read.blocks as B

    if reader != "fast":
        pytest.skip("compares both modes itself")
    d = tmp_path / "beir"
    shutil.copytree(F / "beir", d)
    with open(d / "corpus.jsonl", "a", encoding="utf-8") as f:
        f.write('{"_id": "d5", "title": "", "text": "a second d5: the first line wins"}\n')
    monkeypatch.setattr(B, "BLOCK_BYTES", 64)
    fast, slow = _both(monkeypatch, [d])
    assert fast == slow
    monkeypatch.setenv("ECI_LOADER_FAST", "1")
    calls = []
    c, _ = load_paths([d], progress=lambda stage, done, total: calls.append((stage, done, total)))
    size = (d / "corpus.jsonl").stat().st_size
    corpus = [(done, total) for stage, done, total in calls if stage == "reading corpus.jsonl"]
    assert len(corpus) >= 9 and corpus[-1] == (size, size)
    assert [x for x, _ in corpus] == sorted(x for x, _ in corpus)
    assert sorted(c.passage_ids) == ["d1", "d2", "d3", "d4", "d5", "d6", "d7", "d8"]
    assert c.passage_texts[list(c.passage_ids).index("d5")].startswith("Dogs are loyal")
