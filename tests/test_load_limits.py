"""LoadLimits on every reader path (issue 16, item 2) and extra run files beside a BEIR directory
(item 8).

Parquet, whole-document JSON and multi-line CSV records obey the same limits as a JSONL line or a
``.gz``: a bad file gives one ``PATH[:LINE]: [field 'F': ]message`` line that echoes nothing from
the file (each bad file holds ``SECRET``), the good file beside it is kept, and the memory of the
realistic-size bombs is measured as a child process's own peak RSS (VmHWM), as in
tests/test_hostile_inputs.py.
"""

from __future__ import annotations

import gzip
import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from eci_core.io.records import LoadError
from eci_core.io.load import LoadStep, load_batch, load_path, load_paths, plan_extra_runs
from eci_core.io.read.limits import LoadLimits
from eci_core.io.read.parquet import ParquetDecodedLimits, arrow_value_bytes
from eci_core.io.read.text import longest_json_string_over

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

ROOT = Path(__file__).resolve().parents[1]
BEIR = ROOT / "tests" / "fixtures" / "formats" / "beir"
PYFAQ = ROOT / "sample_data" / "pyfaq"
SECRET = "SECRET"
MIB = 2**20
LINE = "(LoadLimits.max_line_bytes, env ECI_MAX_LINE_BYTES"
GOOD_ROW = {
    "query": "what is a cat",
    "pos": ["A cat is a small feline."],
    "neg": ["Dogs bark.", "Cars drive."],
}
# peak RSS of a child that imports the loaders and pyarrow and refuses one bomb (measured: ~125
# MiB); the budget of tests/test_hostile_inputs.py. Loading the same files without the limits
# took 6.9 GB and 83 s (Parquet) / 250 MiB (JSON, then ~1 GB when scored)
MEMORY_BUDGET_MIB = 300


def noise(n: int, seed: int = 0) -> str:
    """``n`` characters that zstd/gzip cannot shrink much (hex of random bytes: ~2x at best)."""
    return random.Random(seed).randbytes((n + 1) // 2).hex()[:n]


@pytest.fixture
def good(tmp_path: Path) -> Path:
    d = tmp_path / "good"
    d.mkdir()
    p = d / "good.jsonl"
    p.write_text(json.dumps(GOOD_ROW) + "\n")
    return p


def _dict_bomb(path: Path, entry: str, rows: int, **write) -> Path:
    """An st-triplet Parquet file whose ``negative`` is one dictionary entry named by every row
    (written without the Arrow schema, as another writer would)."""
    t = pa.table(
        {
            "anchor": [f"{SECRET} query {i}" for i in range(rows)],
            "positive": [f"positive {i}" for i in range(rows)],
            "negative": pa.DictionaryArray.from_arrays(pa.array([0] * rows, pa.int32()), pa.array([entry])),
        }
    )
    pq.write_table(t, path, store_schema=False, dictionary_pagesize_limit=2**31 - 1, **write)
    return path


def _only_good(coll, report, bad: Path) -> str:
    assert sorted(coll.sources) == ["good"] and coll.n_queries == 1, report.errors
    assert len(report.errors) == 1 and report.errors[0].startswith(f"{bad}:")
    err = report.errors[0]
    assert "\n" not in err and SECRET not in err and "Traceback" not in err
    return err


CHILD = r"""
import sys
from eci_core.io.load import load_paths
coll, report = load_paths(sys.argv[1:])
hwm = next(l for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(json.dumps([report.errors, sorted(coll.sources), int(hwm.split()[1]) // 1024]))
"""


def _child(*paths: Path) -> tuple[list[str], list[str], int]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run(
        [sys.executable, "-c", "import json\n" + CHILD, *map(str, paths)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=True,
    )
    errors, sources, mib = json.loads(out.stdout)
    return errors, sources, mib


# ---------------------------------------------------------------------------- Parquet
def test_parquet_dictionary_bomb_of_the_issue_is_refused_from_its_footer_in_bounded_memory(tmp_path, good):
    """3.4 KB of zstd Parquet, 40 rows whose ``negative`` is one 70 MiB dictionary entry: the
    row group expands ~20,000x (footer sizes), refused before any page is decompressed."""
    bomb = _dict_bomb(tmp_path / "bomb.parquet", SECRET + "x" * (70 * MIB), 40, compression="zstd")
    assert os.path.getsize(bomb) < 8000
    errors, sources, mib = _child(good, bomb)
    assert sources == ["good"]
    assert errors == [
        f"{bomb}: field 'negative': a row group expands more than 100x when decompressed (its largest "
        "column is this one; a compression bomb?); LoadLimits.max_compression_ratio, env "
        "ECI_MAX_COMPRESSION_RATIO"
    ]
    assert mib < MEMORY_BUDGET_MIB, f"peak RSS {mib} MiB"


def test_parquet_triplets_repeating_each_positive_200_times_load(tmp_path):
    """No false alarm: st-triplet rows repeat each query's anchor and positive once per negative;
    with the dictionary overflowed to plain pages and zstd, that column compresses > 100x. The
    ratio is taken over the row group (as over a whole ``.gz``), which the negatives keep low."""
    rnd = random.Random(5)
    words = [f"w{i}" for i in range(3000)]
    k, nq = 200, 100
    pos = [" ".join(rnd.choices(words, k=100)) for _ in range(nq)]
    t = pa.table(
        {
            "anchor": [f"query {i // k}" for i in range(k * nq)],
            "positive": [pos[i // k] for i in range(k * nq)],
            "negative": [" ".join(rnd.choices(words, k=10)) for _ in range(k * nq)],
        }
    )
    p = tmp_path / "triplets.parquet"
    pq.write_table(t, p, compression="zstd", dictionary_pagesize_limit=16 * 1024)
    col = pq.ParquetFile(p).metadata.row_group(0).column(1)
    assert col.total_uncompressed_size > 100 * col.total_compressed_size  # the positive column alone: > 100x
    coll, report = load_paths([p])
    assert report.errors == [] and coll.n_queries == nq and len(coll.sources["triplets"]) == k * nq


def test_parquet_cell_over_the_line_limit_is_refused_before_it_is_decoded(tmp_path, good):
    """An incompressible 2 MiB dictionary entry named by 40 rows (80 MiB decoded): the footer
    cannot tell, the first batch's decoded sizes can (from the dictionary, decoded 0 times)."""
    bomb = _dict_bomb(tmp_path / "cell.parquet", SECRET + noise(2 * MIB), 40, compression="zstd")
    coll, report = load_paths([good, bomb], limits=LoadLimits(max_line_bytes=MIB))
    err = _only_good(coll, report, bomb)
    assert err == (
        f"{bomb}:1: field 'negative': a cell longer than 1,048,576 bytes once decoded {LINE}: the "
        "longest line, or Parquet row)"
    )
    with pytest.raises(LoadError):  # on its own too
        load_path(bomb, coll, limits=LoadLimits(max_line_bytes=MIB))
    assert sorted(coll.sources) == ["good"]
    # the default line limit (64 MiB) lets the same file load: the limit, not the file, decided
    c, rep = load_paths([bomb])
    assert rep.errors == [] and len(c.sources["cell"]) == 40


def test_parquet_row_limit_names_its_largest_cell_and_hides_unknown_column_names(tmp_path, good):
    p = tmp_path / "row.parquet"
    pq.write_table(
        pa.table({"anchor": ["q"], "positive": [noise(600_000, 1)], f"{SECRET}col": [noise(700_000, 2)]}), p
    )
    coll, report = load_paths([good, p], limits=LoadLimits(max_line_bytes=MIB))
    err = _only_good(coll, report, p)
    assert (
        err == f"{p}:1: a row (its largest cell here) (column 3) longer than 1,048,576 bytes once decoded "
        f"{LINE}: "
        "the longest line, or Parquet row)"
    )


def test_parquet_dictionary_expansion_is_held_to_the_compression_ratio(tmp_path, good):
    """An incompressible 64 KiB entry named by 2,000 rows: 128 MiB decoded from a ~70 KB file.
    The footer looks ordinary (64 KiB of dictionary); the decoded size / file size (> 100x once
    past 1 MiB) refuses it at the row where it goes over, before the batch is decoded."""
    bomb = _dict_bomb(tmp_path / "ratio.parquet", noise(64 * 1024, 3), 2000)
    coll, report = load_paths([good, bomb])
    err = _only_good(coll, report, bomb)
    size = os.path.getsize(bomb)
    row = int(100 * size // (64 * 1024 + 20)) + 1  # each row decodes to 64 KiB + its two short cells
    assert err.endswith(
        ": the Parquet data expands more than 100x its file size once decoded (a compression "
        "bomb?); LoadLimits.max_compression_ratio, env ECI_MAX_COMPRESSION_RATIO"
    )
    assert abs(int(err.split(":")[1]) - row) <= 1, (err, row)


def test_parquet_total_decoded_size_and_column_chunk_size(tmp_path, good):
    bomb = _dict_bomb(tmp_path / "total.parquet", noise(64 * 1024, 4), 100)  # 6.4 MiB decoded, ratio ~90
    coll, report = load_paths([good, bomb], limits=LoadLimits(max_decompressed_bytes=4 * MIB))
    err = _only_good(coll, report, bomb)
    assert err.endswith(
        ": the Parquet data decodes to more than 4,194,304 bytes (LoadLimits.max_decompressed_bytes, "
        "env ECI_MAX_DECOMPRESSED_BYTES)"
    )
    assert int(err.split(":")[1]) == 4 * MIB // (64 * 1024 + 20) + 1  # the first row past 4 MiB
    plain = tmp_path / "plain.parquet"
    pq.write_table(
        pa.table({"anchor": ["q"], "positive": ["p"], "negative": [noise(2 * MIB, 5)]}),
        plain,
        use_dictionary=False,
    )
    coll, report = load_paths([good, plain], limits=LoadLimits(max_decompressed_bytes=MIB))
    assert _only_good(coll, report, plain) == (
        f"{plain}: field 'negative': a column chunk decompresses to more than 1,048,576 bytes "
        "(LoadLimits.max_decompressed_bytes, env ECI_MAX_DECOMPRESSED_BYTES)"
    )


def test_arrow_value_bytes_matches_the_decoded_values():
    """Exact: the UTF-8 bytes of every string of each row (lists, structs, dictionaries, nulls,
    slices), 8 bytes per int64, 1 per bool."""
    strs = ["", "é", "abc", None, "x" * 50]
    t = pa.table(
        {
            "s": pa.array(strs),
            "d": pa.DictionaryArray.from_arrays(
                pa.array([0, 1, None, 1, 0], pa.int32()), pa.array(["aa", "ééé"])
            ),
            "l": pa.array([["a", "bb"], [], None, ["ccc", None], ["é"]]),
            "ld": pa.array([["a", "a"], ["b"], [], None, ["a"]]).cast(
                pa.list_(pa.dictionary(pa.int32(), pa.string()))
            ),
            "st": pa.array(
                [
                    {"docid": "1", "text": "t"},
                    None,
                    {"docid": "22", "text": None},
                    {"docid": "", "text": "é"},
                    {"docid": "x", "text": "yy"},
                ]
            ),
            "m": pa.array(
                [[("a", "xx")], None, [("bbb", "y"), ("c", "")], [], [("é", None)]],
                pa.map_(pa.string(), pa.string()),
            ),
            "f": pa.array([["a", "bb"], None, ["ccc", "d"], ["", "é"], None], pa.list_(pa.string(), 2)),
            "sv": pa.array(["ab", None, "c", "", "é"], pa.string_view()),
            "n": pa.array([1, 2, None, 4, 5], pa.int64()),
            "b": pa.array([True, False, True, None, True]),
        }
    )

    def py_bytes(v) -> int:
        if v is None:
            return 0
        if isinstance(v, str):
            return len(v.encode())
        if isinstance(v, bool):
            return 1
        if isinstance(v, int):
            return 8
        if isinstance(v, (list, tuple)):  # a map's items are (key, value) tuples
            return sum(map(py_bytes, v))
        return sum(map(py_bytes, v.values()))

    for tab in (t, t.slice(1, 3)):
        for name in tab.column_names:
            col = tab.column(name).combine_chunks()
            assert arrow_value_bytes(col).tolist() == [py_bytes(v) for v in col.to_pylist()], name


def test_parquet_files_with_nested_and_dictionary_columns_still_load(tmp_path):
    """BGE rows with list columns, dictionary-encoded (read as Arrow dictionaries now): the same
    source as the JSONL file."""
    rows = [dict(GOOD_ROW, query=f"query {i}", neg=[f"neg {i} {j}" for j in range(3)]) for i in range(30)]
    (tmp_path / "b.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "b.parquet")
    a, ra = load_paths([tmp_path / "b.jsonl"])
    b, rb = load_paths([tmp_path / "b.parquet"])
    assert ra.errors == rb.errors == []
    assert list(b.passage_ids) == list(a.passage_ids) and list(b.query_ids) == list(a.query_ids)
    sa, sb = a.sources["b"], b.sources["b"]
    assert len(sa) == len(sb) == 90
    assert (sa.q_idx.tolist(), sa.p_idx.tolist(), sa.rank.tolist()) == (
        sb.q_idx.tolist(),
        sb.p_idx.tolist(),
        sb.rank.tolist(),
    )


def test_parquet_decoded_limits_count_across_batches():
    lim = LoadLimits(max_decompressed_bytes=100, ratio_grace_bytes=10**9)
    check = ParquetDecodedLimits("x.parquet", 10**6, lim)
    batch = pa.record_batch({"anchor": ["a" * 30, "b" * 30]})
    check.check(batch, 1)
    with pytest.raises(LoadError, match=r"^x\.parquet:4: the Parquet data decodes to more than 100 bytes"):
        check.check(batch, 3)


# ---------------------------------------------------------------------------- whole-document JSON
def test_json_string_over_the_line_limit_is_refused_before_decoding(tmp_path, good):
    p = tmp_path / "big.json"
    text = json.dumps(
        [GOOD_ROW, dict(GOOD_ROW, query="q2", neg=["short", SECRET + "x" * (2 * MIB)])], indent=1
    )
    p.write_text(text)
    line = text[: text.index(SECRET)].count("\n") + 1
    assert line > 10
    coll, report = load_paths([good, p], limits=LoadLimits(max_line_bytes=MIB))
    assert _only_good(coll, report, p) == (
        f"{p}:{line}: field 'neg': a string longer than 1,048,576 bytes {LINE}: the "
        "longest line of a text file, or string of a JSON file)"
    )
    cols = tmp_path / "cols.json"  # an object of lists; a key that is not a known field is not named
    cols.write_text(
        json.dumps(
            {
                "anchor": ["a", "b"],
                "positive": ["p", "q"],
                f"{SECRET}": ["n", "m" * (2 * MIB)],
                "negative": ["x", "y"],
            }
        )
    )
    coll, report = load_paths([good, cols], limits=LoadLimits(max_line_bytes=MIB))
    assert _only_good(coll, report, cols) == (
        f"{cols}:1: a string longer than 1,048,576 bytes {LINE}: the longest "
        "line of a text file, or string of a JSON file)"
    )


def test_json_file_larger_than_the_decompressed_limit_is_refused_unread(tmp_path, good):
    p = tmp_path / "large.json"
    p.write_text(json.dumps([dict(GOOD_ROW, query=f"{SECRET} {i}") for i in range(50)]))
    coll, report = load_paths([good, p], limits=LoadLimits(max_decompressed_bytes=4096))
    assert _only_good(coll, report, p) == (
        f"{p}: the file holds more than 4,096 bytes, too many to read whole "
        "(LoadLimits.max_decompressed_bytes, env "
        "ECI_MAX_DECOMPRESSED_BYTES); save it as JSONL (one record per line), which is read line by line"
    )
    gz = tmp_path / "large.json.gz"  # compressed below the limit, over it once decompressed
    gz.write_bytes(gzip.compress(p.read_bytes()))
    assert os.path.getsize(gz) < 4096
    coll, report = load_paths([good, gz], limits=LoadLimits(max_decompressed_bytes=4096))
    assert _only_good(coll, report, gz).endswith(
        "the gzip decompresses to more than 4,096 bytes "
        "(LoadLimits.max_decompressed_bytes, env ECI_MAX_DECOMPRESSED_BYTES)"
    )


def test_memory_of_a_70_mib_json_string_is_bounded(tmp_path, good):
    """The issue's case: a 70 MB whole-document JSON holding one 70 MiB string (default limits)."""
    p = tmp_path / "big70.json"
    with open(p, "w") as f:
        f.write('[{"query": "q", "pos": ["p"], "neg": ["' + SECRET + "x" * (70 * MIB) + '"]}]')
    errors, sources, mib = _child(good, p)
    assert sources == ["good"]
    assert errors == [
        f"{p}:1: field 'neg': a string longer than 67,108,864 bytes {LINE}: the longest line of a "
        "text file, or string of a JSON file)"
    ]
    assert mib < MEMORY_BUDGET_MIB, f"peak RSS {mib} MiB"


def _reference_longest(data: bytes, limit: int) -> int | None:
    """A byte-by-byte scan: the opening quote of the first string literal longer than ``limit``."""
    i, n, start = 0, len(data), -1
    while i < n:
        c = data[i]
        if start >= 0:
            if c == 92:
                i += 2
                continue
            if c == 34:
                if i - start - 1 > limit:
                    return start
                start = -1
        elif c == 34:
            start = i
        i += 1
    return start if start >= 0 and n - start - 1 > limit else None


def test_longest_json_string_matches_a_byte_scan_across_piece_boundaries():
    rnd = random.Random(7)
    alphabet = 'ab\\"\n é{}[],:'
    for _ in range(150):
        doc = [
            {
                f"k{j}": "".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 30)))
                for j in range(rnd.randint(0, 4))
            }
            for _ in range(rnd.randint(0, 5))
        ]
        data = json.dumps(doc, ensure_ascii=rnd.random() < 0.5).encode()
        for limit in (0, 3, 10, 25):
            for piece in (1, 2, 3, 7, 1 << 22):
                assert longest_json_string_over(data, limit, piece) == _reference_longest(data, limit), (
                    data,
                    limit,
                )
    runs = b'["' + b"\\\\" * 20 + b'\\"' + b'x"]'  # even and odd backslash runs across boundaries
    for piece in range(1, 30):
        for limit in range(0, 50):
            assert longest_json_string_over(runs, limit, piece) == _reference_longest(runs, limit)


# ---------------------------------------------------------------------------- CSV / TSV
@pytest.mark.parametrize("ext,sep", [("csv", ","), ("tsv", "\t")])
def test_csv_record_spanning_lines_is_held_to_the_line_limit(tmp_path, good, ext, sep):
    cell = "\n".join(f"line {i} of a long quoted {SECRET} negative" for i in range(5000))  # each line short
    p = tmp_path / f"multi.{ext}"
    p.write_text(
        sep.join(["anchor", "positive", "negative"])
        + "\n"
        + sep.join(["q1", "p1", "n1"])
        + "\n"
        + sep.join(["q2", "p2", '"' + cell + '"'])
        + "\n"
    )
    coll, report = load_paths([good, p], limits=LoadLimits(max_line_bytes=65536))
    assert _only_good(coll, report, p) == (
        f"{p}:3: record longer than 65,536 bytes (a quoted cell spans its lines; "
        "LoadLimits.max_line_bytes, env ECI_MAX_LINE_BYTES)"
    )
    c, rep = load_paths([p])  # the default limit reads it
    assert rep.errors == [] and c.n_queries == 2


# ---------------------------------------------------------------------------- Arrow fast paths
@pytest.mark.parametrize("fast", ["1", "0"])
def test_id_files_corpus_and_qrels_obey_the_limits_on_both_readers(tmp_path, monkeypatch, fast):
    """pyarrow's block readers (ECI_LOADER_FAST=1) and the per-line readers give the same error."""
    monkeypatch.setenv("ECI_LOADER_FAST", fast)
    d = tmp_path / "b"
    shutil.copytree(BEIR, d)
    neg = d / "negatives"
    long_trec = neg / "long.trec"
    long_trec.write_text("q1 Q0 d5 1 2.0 x\n" + f"q1 Q0 {SECRET}{'d' * 300} 2 1.0 x\n")
    long_ids = neg / "long.jsonl"
    long_ids.write_text(json.dumps({"query_id": "q1", "negative_ids": ["d5", SECRET + "d" * 300]}) + "\n")
    big_gz = neg / "big.trec.gz"
    big_gz.write_bytes(
        gzip.compress("".join(f"q1 Q0 {SECRET}{noise(20, i)} {i + 1} 1.0 x\n" for i in range(400)).encode())
    )
    lim = LoadLimits(max_line_bytes=200, max_decompressed_bytes=8192)
    coll, report = load_paths([d], limits=lim)
    assert sorted(coll.sources) == ["bm25", "dense"]
    gz_err = next(e for e in report.errors if e.startswith(f"{big_gz}:"))
    assert sorted(report.errors) == sorted(
        [
            f"{long_ids}:1: line longer than 200 bytes {LINE})",
            f"{long_trec}:2: line longer than 200 bytes {LINE})",
            gz_err,
        ]
    )
    assert gz_err.endswith(
        ": the gzip decompresses to more than 8,192 bytes (LoadLimits.max_decompressed_bytes, "
        "env ECI_MAX_DECOMPRESSED_BYTES)"
    ) and SECRET not in "".join(report.errors)
    for name in ("corpus.jsonl", "qrels/test.tsv"):
        e = tmp_path / f"e{name[:3]}"
        shutil.copytree(BEIR, e)
        f = e / name
        f.write_text(
            f.read_text()
            + ("d9\t" if "qrels" in name else '{"_id": "d9", "text": "')
            + SECRET
            + "y" * 300
            + ("\t1\n" if "qrels" in name else '"}\n')
        )
        n_lines = len(f.read_text().splitlines())
        _, report = load_paths([e], limits=lim)
        assert report.errors == [f"{f}:{n_lines}: line longer than 200 bytes {LINE})"]


# ---------------------------------------------------------------------------- extra run files
def _beir_with_extras(tmp_path: Path) -> tuple[Path, Path, Path]:
    """The fixture BEIR directory, a TREC run in its ``sweep/`` and a negative-ids file outside it;
    both name query q2 and passages d2, d3 that only corpus.jsonl/queries.jsonl hold (q2 has no
    negatives in negatives/...; d2 and d3 are in none of its files)."""
    d = tmp_path / "b"
    shutil.copytree(BEIR, d)
    corpus = d / "corpus.jsonl"  # without the fixture's empty passage (eci validate reads every passage)
    corpus.write_text("".join(ln for ln in corpus.read_text().splitlines(True) if '"d99"' not in ln))
    (d / "negatives" / "bm25.trec").write_text("q1 Q0 d5 2 10.5 bm25\nq1 Q0 d6 3 9.0 bm25\n")
    (d / "sweep").mkdir()
    trec = d / "sweep" / "extra.trec"
    trec.write_text("q2 Q0 d3 1 8.0 extra\nq2 Q0 d8 2 7.0 extra\nq1 Q0 d2 1 3.0 extra\n")
    other = tmp_path / "elsewhere"
    other.mkdir()
    ids = other / "ids.jsonl"
    ids.write_text(json.dumps({"query_id": "q2", "negative_ids": ["d6", "d3"]}) + "\n")
    return d, trec, ids


@pytest.mark.parametrize("fast", ["1", "0"])
def test_extra_run_files_resolve_against_the_whole_corpus(tmp_path, monkeypatch, fast):
    monkeypatch.setenv("ECI_LOADER_FAST", fast)
    d, trec, ids = _beir_with_extras(tmp_path)
    for paths in ([d, trec, ids], [trec, d, ids]):  # named before or after the directory
        coll, report = load_paths(paths)
        assert report.errors == []
        assert sorted(coll.sources) == ["bm25", "dense", "extra", "ids"]
        assert coll.passage_ids.index("d3") >= 0 and "q2" in coll.query_ids
        q2 = coll.query_ids.index("q2")
        assert [coll.passage_ids[i] for i in coll.positives[q2]] == ["d2"]  # from qrels/test.tsv
    assert plan_extra_runs([d, trec, ids]) == [LoadStep(d, [trec, ids], True)]


def test_extra_run_files_go_to_the_directory_they_lie_in_and_bad_ones_are_reported(tmp_path):
    d, trec, ids = _beir_with_extras(tmp_path)
    d2 = tmp_path / "b2"
    shutil.copytree(BEIR, d2)
    # two directories: the file inside b/ goes to b/, the one outside both is loaded on its own
    assert plan_extra_runs([d2, d, trec, ids]) == [LoadStep(d2, []), LoadStep(d, [trec]), LoadStep(ids, [])]
    bad = d / "sweep" / "bad.trec"
    bad.write_text("q2 Q0 d3 1 8.0 bad\nq2 Q0 nowhere 2 7.0 bad\n")
    coll, report = load_paths([d, trec, bad])
    assert sorted(coll.sources) == ["bm25", "dense", "extra"]
    assert report.errors == [f"{bad}:2: field 'docid': 1 negative id not in corpus.jsonl"]
    assert plan_extra_runs([d, trec], format="trec-run") == [LoadStep(d, []), LoadStep(trec, [])]


def test_runs_added_to_a_loaded_dataset_resolve_through_corpus_dirs(tmp_path):
    """The dashboard's "add a file" to a dataset opened before: ``corpus_dirs`` resolves the
    run against that dataset's corpus without loading its negatives/ again."""
    d, trec, ids = _beir_with_extras(tmp_path)
    base, report = load_paths([d])
    assert report.errors == [] and sorted(base.sources) == ["bm25", "dense"]
    _, report, errors = load_batch([trec], base)  # as before: only the loaded passages
    assert len(errors) == 1 and "not in the loaded" in errors[0]
    assert plan_extra_runs([trec, ids], corpus_dirs=[d]) == [LoadStep(d, [trec, ids], False)]
    coll, report, errors = load_batch([trec, ids], base, corpus_dirs=[d])
    assert errors == [] and sorted(coll.sources) == ["bm25", "dense", "extra", "ids"]
    assert [s.source for s in report.sources] == ["extra", "ids"]
    assert sorted(base.sources) == ["bm25", "dense"]  # the caller's collection is untouched
    bad = d / "sweep" / "bad.trec"
    bad.write_text("q2 Q0 nowhere 1 8.0 bad\n")
    coll, report, errors = load_batch([bad, trec], base, corpus_dirs=[d])
    assert errors == [f"{bad}:1: field 'docid': 1 negative id not in corpus.jsonl"]
    assert sorted(coll.sources) == ["bm25", "dense", "extra"]


def test_cli_score_and_validate_loading_with_extra_run_files(tmp_path, capsys):
    from eci_core.cli import main
    from eci_core.validation.loading import load_for_validation

    d, trec, ids = _beir_with_extras(tmp_path)
    code = main(
        [
            "score",
            str(d),
            str(trec),
            str(ids),
            "--encoder",
            "hashing",
            "--json",
            "--bootstrap",
            "20",
            "--no-cache",
            "--no-progress",
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    assert sorted(s["name"] for s in json.loads(out)["sources"]) == ["bm25", "dense", "extra", "ids"]
    coll, report = load_for_validation([str(d), str(trec), str(ids)])
    assert report.errors == [] and sorted(coll.sources) == ["bm25", "dense", "extra", "ids"]
    # a command that exits 2 says why on stdout too (stderr: one line per bad file)
    bad = d / "sweep" / "bad.trec"
    bad.write_text("q2 Q0 nowhere 1 8.0 bad\n")
    code = main(["score", str(d), str(bad), "--encoder", "hashing", "--no-cache", "--no-progress"])
    out, err = capsys.readouterr()
    assert code == 2 and err.strip().splitlines() == [
        f"{bad}:1: field 'docid': 1 negative id not in corpus.jsonl"
    ]
    assert out.startswith("Nothing scored: 1 file could not be loaded (one line each on stderr)")


@pytest.mark.skipif(not (PYFAQ / "sweep").is_dir(), reason="sample_data/pyfaq/sweep is not in this checkout")
def test_cli_score_of_the_sample_with_its_sweep(capsys):
    """The sample README's own pattern: 8 negatives files + 17 sweep runs, all scored."""
    from eci_core.cli import main

    sweep = sorted(str(p) for p in (PYFAQ / "sweep").glob("*.trec"))
    code = main(
        [
            "score",
            str(PYFAQ),
            *sweep,
            "--encoder",
            "hashing",
            "--json",
            "--bootstrap",
            "20",
            "--no-cache",
            "--no-progress",
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    names = {s["name"] for s in json.loads(out)["sources"]}
    assert len(names) == 8 + len(sweep) and {Path(p).stem for p in sweep} <= names


def test_dashboard_upload_of_a_run_naming_corpus_only_passages(tmp_path, monkeypatch):
    """The dashboard's "Add uploaded files" on an opened BEIR folder: the run's passages need only
    be in that folder's corpus.jsonl (before: 'not in the loaded passages')."""
    testing = pytest.importorskip("streamlit.testing.v1")
    d = tmp_path / "data"
    shutil.copytree(ROOT / "tests" / "fixtures" / "app_small", d)
    with open(d / "corpus.jsonl", "a") as f:
        f.write(
            json.dumps({"_id": "dX", "title": "", "text": "A passage no negatives file names yet."}) + "\n"
        )
    monkeypatch.setenv("ECI_DATA", str(d))
    monkeypatch.setenv("ECI_ENCODER", "hashing")
    monkeypatch.setenv("ECI_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("ECI_CROSS_ENCODER", raising=False)
    at = testing.AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.run()
    assert not at.exception
    assert at.session_state["eci_data_dirs"] == [str(d)]
    at.sidebar.file_uploader[0].set_value(
        ("extra.trec", b"q1 Q0 dX 1 1.0 extra\nq2 Q0 dX 1 1.0 extra\n", "text/plain")
    )
    at.sidebar.button[0].click().run()  # "Add uploaded files"
    assert not at.exception
    assert at.session_state["eci_load_errors"] == []
    coll = at.session_state["eci_collection"]
    assert list(coll.sources) == ["bm25", "dense", "random", "extra"] and len(coll.sources["extra"]) == 2
