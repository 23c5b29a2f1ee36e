"""The columnar load path (issue 17): ids stay Arrow arrays from the readers to
``Collection.add_id_source``, qrels and needed ids in Arrow, TREC runs grouped without a sort when
they already are. Each case checks the columnar result against the per-line one."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest

from eci_core.io.collection import content_hash
from eci_core.io.formats.beir import read_beir_jsonl
from eci_core.io.formats.beir_qrels import read_qrels, read_qrels_arrow
from eci_core.io.formats.run_files import parse_negatives_arrays, parse_negatives_file
from eci_core.io.load import load_paths


def _beir(d: Path, trec: str, qrels: dict[str, str], corpus_extra: list[dict] = ()) -> Path:
    (d / "negatives").mkdir(parents=True)
    (d / "qrels").mkdir()
    rows = [{"_id": f"d{i}", "title": "t" if i % 3 else "", "text": f"passage {i % 7}"} for i in range(12)]
    rows += list(corpus_extra)
    (d / "corpus.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (d / "queries.jsonl").write_text(
        "".join(json.dumps({"_id": f"q{i}", "text": f"query {i}"}) + "\n" for i in range(5))
    )
    for name, text in qrels.items():
        (d / "qrels" / f"{name}.tsv").write_text(text)
    (d / "negatives" / "run.trec").write_text(trec)
    return d


# interleaved queries, ranks out of order, a repeated pair, two tags (two systems)
TREC = """q1 Q0 d3 2 0.5 a
q0 Q0 d4 1 0.9 a
q1 Q0 d5 1 0.7 a
q0 Q0 d4 3 0.1 a
q2 Q0 d6 1 0.3 b
q0 Q0 d7 2 0.2 a
q1 Q0 d8 1 0.6 b
"""
GROUPED = "".join(f"q{q} Q0 d{(q * 5 + r) % 12} {r} {1 / r} s\n" for q in range(5) for r in range(1, 5))
QRELS = {
    "test": "query-id\tcorpus-id\tscore\nq0\td0\t1\nq1\td1\t1\nq1\td1\t2\nq1\td2\t0\nq2\td2\t1\n",
    "train": "q2\td9\t1\nq3\td3\t1\nq0\td10\t1\nq4\td11\t1\nq3\td0\t1\n",
}


def _load(d: Path, mode: str, monkeypatch):
    monkeypatch.setenv("ECI_LOADER_FAST", mode)
    c, r = load_paths([d])
    return c, r


@pytest.mark.parametrize("trec", [TREC, GROUPED], ids=["interleaved", "grouped"])
def test_columnar_load_equals_the_per_line_one(tmp_path, monkeypatch, trec):
    d = _beir(tmp_path / "b", trec, QRELS)
    fast, rf = _load(d, "1", monkeypatch)
    slow, rs = _load(d, "0", monkeypatch)
    assert rf.errors == rs.errors == []
    assert content_hash(fast) == content_hash(slow)
    assert fast.fingerprint() == slow.fingerprint()
    assert [(s.source, s.queries, s.negatives_kept, s.notes, s.drops) for s in rf.sources] == [
        (s.source, s.queries, s.negatives_kept, s.notes, s.drops) for s in rs.sources
    ]
    assert fast.query_splits == slow.query_splits
    # q0 is labelled in test and train: its positives come from test, and the report says so
    assert any("from its test split" in k for s in rf.sources for k in s.notes)


@pytest.mark.parametrize("trec", [TREC, GROUPED], ids=["interleaved", "grouped"])
def test_trec_ids_stay_arrow_and_match_the_per_line_reader(tmp_path, monkeypatch, trec):
    monkeypatch.setenv("ECI_LOADER_FAST", "1")
    f = tmp_path / "run.trec"
    f.write_text(trec)
    runs = parse_negatives_arrays(f)
    per_line = parse_negatives_file(f)
    assert len(runs) == len(per_line)
    for run, ref in zip(runs, per_line):
        assert isinstance(run.qids, pa.Array) and isinstance(run.pids, pa.Array)  # no Python str per id
        qids, pids = run.qids.to_pylist(), run.pids.to_pylist()
        assert qids == list(ref.negs)
        got: dict[str, list] = {}
        for q, p, s in zip(run.q.tolist(), run.p.tolist(), run.score.tolist()):
            got.setdefault(qids[q], []).append((pids[p], s))
        assert got == ref.negs
        assert dict(zip(qids, run.qline.tolist())) == ref.qline
        assert dict(zip(pids, run.pline.tolist())) == ref.pline


def test_arrow_qrels_equal_the_dict_qrels(tmp_path):
    d = _beir(tmp_path / "b", TREC, QRELS)
    ref = read_qrels(d)
    qr = read_qrels_arrow(d)
    ids = qr.q
    assert ids.to_pylist() == list(ref.pos)  # same queries, same order
    lists = qr.lists_for(ids)
    flat, at = lists.ids.to_pylist(), 0
    for q, n in zip(ids.to_pylist(), lists.lengths.tolist()):
        assert flat[at : at + n] == ref.pos[q]
        at += n
    assert dict(zip(ids.to_pylist(), qr.splits_for(ids))) == ref.split
    assert set(qr.several.to_pylist()) == ref.several == {"q0", "q2"}
    assert qr.where_of(list(ref.where)) == ref.where
    unknown = pa.array(["q9", "q1"])
    assert qr.lists_for(unknown).lengths.tolist() == [0, 1] and qr.splits_for(unknown) == [None, "test"]


def test_corpus_reader_with_arrow_needed_ids_keeps_the_first_of_a_repeated_id(tmp_path, monkeypatch):
    monkeypatch.setenv("ECI_LOADER_FAST", "1")
    extra = [{"_id": "d4", "title": "", "text": "a second d4"}, {"_id": "d99", "title": "", "text": "x"}]
    d = _beir(tmp_path / "b", TREC, QRELS, extra)
    needed = ["d4", "d0", "d11", "d99"]
    by_set = read_beir_jsonl(d / "corpus.jsonl", set(needed), True)
    by_arrow = read_beir_jsonl(d / "corpus.jsonl", pa.array(needed), True)
    assert dict(by_arrow.items()) == dict(by_set.items())
    assert by_arrow["d4"] == "t passage 4"  # the first line of a repeated id wins


def test_a_json_line_longer_than_a_parse_piece_is_still_read_by_pyarrow(tmp_path, monkeypatch):
    monkeypatch.setenv("ECI_LOADER_FAST", "1")
    long = {"_id": "d0", "title": "", "text": "word " * 300_000}  # 1.5 MB: longer than a 1 MiB piece
    d = _beir(tmp_path / "b", TREC, QRELS, [])
    lines = (d / "corpus.jsonl").read_text().splitlines()
    (d / "corpus.jsonl").write_text("\n".join([json.dumps(long)] + lines[1:]) + "\n")
    m = read_beir_jsonl(d / "corpus.jsonl", None, True)
    assert type(m).__name__ == "ArrowTextMap"  # the vectorised reader, not the per-line fallback
    assert m["d0"] == long["text"] and m["d5"] == "t passage 5"
