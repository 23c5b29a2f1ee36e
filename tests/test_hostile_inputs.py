"""Hostile inputs (issue 10): every bad file ends in one clear line or a load, never a traceback.

Each case is generated in ``tmp_path`` and loaded beside a good file: the good file is always
kept, the bad one gives exactly one ``PATH[:LINE]: [field 'F': ]message`` line that names no
value from the file (each bad file holds the marker ``SECRET``), and memory stays inside the
documented budget (README, "Limits"), measured as a child process's own peak RSS (VmHWM).
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from eci_core.io.collection import Collection
from eci_core.io.records import LoadError, PassageRef, QueryRecord
from eci_core.io.load import load_batch, load_path, load_paths
from eci_core.io.read.limits import LoadLimits

ROOT = Path(__file__).resolve().parents[1]
SECRET = "SECRET"
GOOD_ROW = {
    "query": "what is a cat",
    "pos": ["A cat is a small feline."],
    "neg": ["Dogs bark.", "Cars drive."],
}
DEEP = 5000  # nesting levels: well past Python's recursion limit (1,000)
BIG_INT = "9" * 5000  # past Python's 4,300-digit limit for int <-> str
MEMORY_BUDGET_MIB = 300  # peak RSS of a child that imports eci_core.io.load and loads one hostile file


def jl(*rows: dict) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


def bge(**over) -> dict:
    row = dict(GOOD_ROW, query=f"{SECRET} query")
    row.update(over)
    return row


def _write(path: Path, data: str | bytes) -> Path:
    path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
    return path


# Each case: (file name, content builder, expected message end (after "PATH:LINE: "))
def _deep_json(tmp: Path) -> Path:
    return _write(
        tmp / "deep.jsonl",
        jl(GOOD_ROW) + '{"query": "q", "pos": ["p"], "neg": ' + "[" * DEEP + "]" * DEEP + "}\n",
    )


def _deep_csv(tmp: Path) -> Path:
    cell = '"' + "[" * DEEP + "]" * DEEP + '"'
    return _write(tmp / "deep.csv", f"anchor,positive,labels\n{SECRET} q,{cell},\"[1, 0]\"\n")


def _big_int_json(tmp: Path) -> Path:
    return _write(
        tmp / "bigint.jsonl",
        jl(GOOD_ROW) + '{"query": "q", "qid": ' + BIG_INT + ', "pos": ["p"], "neg": ["n"]}\n',
    )


def _big_int_csv_cell(tmp: Path) -> Path:
    return _write(
        tmp / "bigint.csv", f'anchor,positive,scores\n{SECRET} q,"[""p"", ""n""]","[1, {BIG_INT}]"\n'
    )


def _surrogate(tmp: Path) -> Path:
    return _write(
        tmp / "surrogate.jsonl",
        jl(GOOD_ROW) + '{"query": "' + SECRET + ' \\ud800", "pos": ["p"], "neg": ["n"]}\n',
    )


def _surrogate_in_list(tmp: Path) -> Path:
    return _write(
        tmp / "surrogate_list.jsonl",
        jl(GOOD_ROW) + '{"query": "q", "pos": ["p"], "neg": ["ok", "' + SECRET + '\\udfff"]}\n',
    )


def _neg_dict(tmp: Path) -> Path:
    return _write(tmp / "negdict.jsonl", jl(bge(neg={"bm25": [SECRET]})))


def _nan_label(tmp: Path) -> Path:
    return _write(
        tmp / "nanlabel.csv", f"anchor,passage,label\n{SECRET} q,a passage,1\n{SECRET} q,other,nan\n"
    )


def _nan_score(tmp: Path) -> Path:
    return _write(
        tmp / "nanscore.jsonl",
        jl(GOOD_ROW) + '{"query": "q", "pos": ["p"], "neg": ["' + SECRET + '"], "neg_scores": [NaN]}\n',
    )


def _inf_score_trec(tmp: Path) -> Path:
    return _write(tmp / "inf.trec", f"q1 Q0 {SECRET} 1 inf run\n")


def _symlink_loop(tmp: Path) -> Path:
    a, b = tmp / "loop_a.jsonl", tmp / "loop_b.jsonl"
    os.symlink(b, a)
    os.symlink(a, b)
    return a


def _gzip_bomb(tmp: Path) -> Path:
    return _write(tmp / "bomb.jsonl.gz", gzip.compress(b"\n" * 50_000_000, 9))


def _not_utf8(tmp: Path) -> Path:
    return _write(
        tmp / "latin1.jsonl", jl(GOOD_ROW).encode() + f'{{"query": "{SECRET} caf'.encode() + b'\xe9"}\n'
    )


CASES = {
    # name: (builder, expected line, expected message (after "PATH:LINE: "))
    "deeply nested JSON list": (_deep_json, 2, "JSON nested too deeply to read"),
    "deeply nested CSV cell": (_deep_csv, 2, "field 'positive': list nested too deeply to read"),
    "5,000-digit integer (JSON)": (
        _big_int_json,
        2,
        "an integer with more than 4,300 digits (Python's limit for numbers read from text)",
    ),
    "5,000-digit integer (CSV list cell)": (
        _big_int_csv_cell,
        2,
        "field 'scores': an integer with more than 4,300 digits (Python's limit for numbers read from text)",
    ),
    "lone surrogate in a text": (
        _surrogate,
        2,
        "field 'query': text holds a lone UTF-16 surrogate (a \\ud800-\\udfff "
        "escape without its pair), which is not valid Unicode",
    ),
    "lone surrogate in a list": (
        _surrogate_in_list,
        2,
        "field 'neg[1]': text holds a lone UTF-16 surrogate (a "
        "\\ud800-\\udfff escape without its pair), which is not valid Unicode",
    ),
    "BGE row whose neg is a dict": (_neg_dict, 1, "field 'neg': expected a list of strings, got an object"),
    "NaN label": (_nan_label, 3, "field 'label': expected a finite number, got NaN"),
    "NaN score": (_nan_score, 2, "field 'neg_scores[0]': expected a finite number, got NaN"),
    "infinite TREC score": (_inf_score_trec, 1, "field 'score': expected a finite number, got infinity"),
    "symbolic link loop": (
        _symlink_loop,
        None,
        "symbolic link loop (too many levels of symbolic links); point the link at a real file",
    ),
    "gzip bomb": (
        _gzip_bomb,
        1048577,
        "the gzip expands more than 100x (a compression bomb?); "
        "LoadLimits.max_compression_ratio, env ECI_MAX_COMPRESSION_RATIO",
    ),
    "not UTF-8": (_not_utf8, 2, None),
}


@pytest.fixture
def good(tmp_path: Path) -> Path:
    d = tmp_path / "good"
    d.mkdir()
    return _write(d / "good.jsonl", jl(GOOD_ROW))


@pytest.mark.parametrize("case", list(CASES))
def test_bad_file_is_one_line_and_the_good_file_is_kept(tmp_path, good, case):
    build, line, message = CASES[case]
    bad = build(tmp_path)
    coll, report = load_paths([good, bad])  # never raises
    assert [s.source for s in report.sources] == ["good"]
    assert sorted(coll.sources) == ["good"] and coll.n_queries == 1 and len(coll.sources["good"]) == 2
    assert len(report.errors) == 1
    err = report.errors[0]
    where = str(bad) if line is None else f"{bad}:{line}"
    assert err.startswith(where + ": ")
    if message is not None:
        assert err == f"{where}: {message}"
    assert "\n" not in err and SECRET not in err and "Traceback" not in err
    # and the same file alone, into a loaded collection: a LoadError, the collection untouched
    c = Collection()
    load_path(good, c)
    before = (
        list(c.passage_ids),
        list(c.query_ids),
        {k: list(v) for k, v in c.positives.items()},
        list(c.sources),
    )
    with pytest.raises(LoadError):
        load_path(bad, c)
    assert (c.passage_ids, c.query_ids, c.positives, list(c.sources)) == before


def test_bad_file_loaded_first_does_not_stop_the_good_one(tmp_path, good):
    bad = _deep_json(tmp_path)
    coll, report = load_paths([bad, good])
    assert list(coll.sources) == ["good"] and len(report.errors) == 1


def test_load_batch_never_changes_the_callers_collection(tmp_path, good):
    base = Collection()
    load_path(good, base)
    bad = _surrogate(tmp_path)
    other = _write(tmp_path / "other.jsonl", jl(dict(GOOD_ROW, query="what is a dog")))
    coll, report, errors = load_batch([bad, other], base)
    assert sorted(coll.sources) == ["good", "other"] and [s.source for s in report.sources] == ["other"]
    assert errors == report.errors and len(errors) == 1 and errors[0].startswith(f"{bad}:2: ")
    assert list(base.sources) == ["good"] and base.n_queries == 1  # the caller's collection is untouched
    coll2, _, errors2 = load_batch([good], format="no-such-format")
    assert coll2.sources == {} and errors2[0].startswith(
        "format: format='no-such-format' is not a known format"
    )


def test_line_length_and_negatives_per_query_limits(tmp_path, good):
    long = _write(tmp_path / "long.jsonl", jl(GOOD_ROW) + jl(bge(neg=["x" * 5000])))
    _, report = load_paths([good, long], limits=LoadLimits(max_line_bytes=4096))
    assert report.errors == [
        f"{long}:2: line longer than 4,096 bytes (LoadLimits.max_line_bytes, env ECI_MAX_LINE_BYTES)"
    ]
    many = _write(tmp_path / "many.jsonl", jl(bge(neg=[f"negative {i}" for i in range(50)])))
    c, report = load_paths([good, many], limits=LoadLimits(max_negatives_per_query=20))
    assert report.errors == [
        f"{many}:1: field 'negatives': 50 negatives for one query, more than 20 "
        "(LoadLimits.max_negatives_per_query, env ECI_MAX_NEGATIVES_PER_QUERY)"
    ]
    assert list(c.sources) == ["good"]
    c, report = load_paths([many])  # the default (100,000) lets it load
    assert report.errors == [] and len(c.sources["many"]) == 50


def test_limits_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("ECI_MAX_LINE_BYTES", "100")
    assert LoadLimits.from_env().max_line_bytes == 100
    p = _write(tmp_path / "x.jsonl", jl(bge(neg=["y" * 200])))
    _, report = load_paths([p])
    assert report.errors == [
        f"{p}:1: line longer than 100 bytes (LoadLimits.max_line_bytes, env ECI_MAX_LINE_BYTES)"
    ]
    monkeypatch.setenv("ECI_MAX_LINE_BYTES", "lots")
    with pytest.raises(ValueError, match="ECI_MAX_LINE_BYTES='lots' is not a number"):
        LoadLimits.from_env()


def test_ordinary_gzip_with_several_members_loads(tmp_path):
    p = _write(
        tmp_path / "mm.jsonl.gz",
        gzip.compress(jl(GOOD_ROW).encode())
        + gzip.compress(jl(dict(GOOD_ROW, query="what is a dog")).encode()),
    )
    c, report = load_paths([p])
    assert report.errors == [] and c.n_queries == 2


def test_symlink_loop_inside_a_beir_negatives_folder_is_reported(tmp_path):
    import shutil

    d = tmp_path / "b"
    shutil.copytree(ROOT / "tests" / "fixtures" / "formats" / "beir", d)
    a, b = d / "negatives" / "x.trec", d / "negatives" / "y.trec"
    os.symlink(b, a)
    os.symlink(a, b)
    c, report = load_paths([d])
    assert sorted(c.sources) == ["bm25", "dense"]
    assert sorted(report.errors) == [
        f"{a}: symbolic link loop (too many levels of symbolic links); point the link at a real file",
        f"{b}: symbolic link loop (too many levels of symbolic links); point the link at a real file",
    ]


def test_add_source_is_all_or_nothing():
    c = Collection()
    c.add_source("a", [QueryRecord("q1", "query", [PassageRef("p1", "pos")], [PassageRef("n1", "neg")])])
    before = (list(c.passage_ids), list(c.query_ids), {k: list(v) for k, v in c.positives.items()})
    bad = [
        QueryRecord("q1", "query", [PassageRef("p2", "another pos")], [PassageRef("n2", "fine")]),
        QueryRecord(None, "new \ud800 query", [PassageRef(None, "x")], [PassageRef(None, "y")]),
    ]
    with pytest.raises(UnicodeEncodeError):  # text_id() of the id-less query fails half-way
        c.add_source("b", bad)
    assert (c.passage_ids, c.query_ids, c.positives) == before and list(c.sources) == ["a"]
    assert c.add_passage("another pos", "p2") == 2  # indices stayed consistent


def test_add_id_source_is_all_or_nothing_with_positives_and_splits():
    import numpy as np

    class FailsOnThird(list):  # the split of the third query cannot be read: fails half-way
        def __getitem__(self, j):
            if j == 2:
                raise RuntimeError("boom")
            return list.__getitem__(self, j)

    texts = {
        "p1": "pos one",
        "n1": "neg one",
        "p2": "pos two",
        "p3": "pos three",
        "n2": "neg two",
        "n3": "neg three",
        "p4": "pos four",
        "n4": "neg four",
    }
    c = Collection()
    c.add_id_source(
        "a",
        ["q1"],
        ["query one"],
        [["p1"]],
        np.array([0]),
        np.array([0]),
        np.array([np.nan]),
        ["n1"],
        texts,
        splits=["test"],
    )
    before = (
        list(c.passage_ids),
        list(c.query_ids),
        {k: list(v) for k, v in c.positives.items()},
        dict(c.query_splits),
    )
    assert before == (["p1", "n1"], ["q1"], {0: [0]}, {0: "test"})
    with pytest.raises(
        RuntimeError
    ):  # q1 gains positive p2, q3 (split train) and q4 are added before it fails
        c.add_id_source(
            "b",
            ["q1", "q3", "q4"],
            ["query one", "query three", "query four"],
            [["p2"], ["p3"], ["p4"]],
            np.array([0, 1, 2], np.int32),
            np.array([0, 1, 2], np.int32),
            np.full(3, np.nan),
            ["n2", "n3", "n4"],
            texts,
            splits=FailsOnThird(["train", "train", "train"]),
        )
    after = (c.passage_ids, c.query_ids, c.positives, c.query_splits)
    assert after == before and list(c.sources) == ["a"]
    assert c.add_passage("pos two", "p2") == 2 and c.add_query("query three", "q3") == 1  # indices consistent


# ---------------------------------------------------------------------------- the CLI
def test_cli_reports_good_file_and_one_line_per_bad_file(tmp_path, good):
    bads = [build(tmp_path) for build, _, _ in CASES.values()]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run(
        [sys.executable, "-m", "eci_core.cli", "inspect", str(good), *map(str, bads)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == len(bads), out.stderr
    assert [ln.split(":")[0] for ln in lines] == [str(b) for b in bads]
    assert "Traceback" not in out.stderr and SECRET not in out.stderr
    assert "good" in out.stdout and "1 queries, 3 passages, 1 sources" in out.stdout


# ---------------------------------------------------------------------------- memory
CHILD = r"""
import sys
from eci_core.io.load import load_paths
coll, report = load_paths([sys.argv[1]])
hwm = next(l for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(len(report.errors), sum(len(s) for s in coll.sources.values()), int(hwm.split()[1]) // 1024)
"""


def _child_peak(path: Path) -> tuple[int, int, int]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=True,
    )
    errors, pairs, mib = map(int, out.stdout.split())
    return errors, pairs, mib


def test_memory_of_a_gzip_bomb_is_bounded(tmp_path):
    errors, pairs, mib = _child_peak(_gzip_bomb(tmp_path))
    assert (errors, pairs) == (1, 0)
    assert mib < MEMORY_BUDGET_MIB, f"peak RSS {mib} MiB"


def test_memory_of_a_20000_negative_row_is_bounded(tmp_path):
    p = _write(
        tmp_path / "wide.jsonl",
        jl(
            {
                "query": "q",
                "pos": ["p"],
                "neg": [f"negative passage number {i} with a few words" for i in range(20000)],
            }
        ),
    )
    errors, pairs, mib = _child_peak(p)
    assert (errors, pairs) == (0, 20000)
    assert mib < MEMORY_BUDGET_MIB, f"peak RSS {mib} MiB"


@pytest.mark.parametrize("fast", ["1", "0"])
def test_hostile_negatives_files_in_a_beir_directory(tmp_path, monkeypatch, fast):
    """The vectorised readers give up on hostile files; the per-line parser names the line."""
    import shutil

    monkeypatch.setenv("ECI_LOADER_FAST", fast)
    d = tmp_path / "b"
    shutil.copytree(ROOT / "tests" / "fixtures" / "formats" / "beir", d)
    neg = d / "negatives"
    bomb = _write(neg / "bomb.trec.gz", gzip.compress(b"q1 Q0 d5 1 1 x\n" + b"\n" * 50_000_000, 9))
    deep = _write(neg / "deep.jsonl", '{"query_id": "q1", "negative_ids": ' + "[" * DEEP + "]" * DEEP + "}\n")
    nan = _write(neg / "nan.jsonl", '{"query_id": "q1", "negative_ids": ["d5"], "scores": [NaN]}\n')
    big = _write(neg / "big.jsonl", '{"query_id": ' + BIG_INT + ', "negative_ids": ["d5"]}\n')
    c, report = load_paths([d])
    assert sorted(c.sources) == ["bm25", "dense"]
    bomb_err = report.errors[1]
    assert bomb_err.startswith(f"{bomb}:") and bomb_err.endswith(
        ": the gzip expands more than 100x (a compression bomb?); LoadLimits.max_compression_ratio, "
        "env ECI_MAX_COMPRESSION_RATIO"
    )
    assert report.errors == [
        f"{big}:1: {_DIGITS}",
        bomb_err,
        f"{deep}:1: JSON nested too deeply to read",
        f"{nan}:1: field 'scores[0]': expected a finite number, got NaN",
    ]


_DIGITS = "an integer with more than 4,300 digits (Python's limit for numbers read from text)"
