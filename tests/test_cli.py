"""The ``eci`` command run in-process (``main(argv)``) with the model-free hashing encoder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import eci_core  # noqa: F401
from eci_core.cli import main
from eci_core.scoring.tables import SUMMARY_COLUMNS as JSON_FIELDS
from eci_core.config import ECIConfig
from eci_core.models.hashing import HashingEncoder
from eci_core.io.load import load_paths
from eci_core.scoring import score_collection

FIX = Path(__file__).parent / "fixtures"
APP = str(FIX / "app_small")


@pytest.fixture(scope="module")
def expected():
    coll, report = load_paths([APP])
    assert not report.errors
    return score_collection(coll, HashingEncoder(), ECIConfig(n_bootstrap=200, seed=3))


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_help_is_fast_and_lists_commands(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for cmd in ("inspect", "score", "mine"):
        assert cmd in out


def test_score_json_matches_score_collection(capsys, tmp_path, expected):
    code, out, err = run(
        capsys,
        "score",
        APP,
        "--encoder",
        "hashing",
        "--json",
        "--bootstrap",
        "200",
        "--seed",
        "3",
        "--cache-dir",
        str(tmp_path / "cache"),
        "--no-progress",
    )
    assert code == 0, err
    doc = json.loads(out)
    assert set(doc) == {"encoder", "sources", "predictor"} and doc["encoder"] == "hashing (dim 256)"
    # the training-free predictor applies only to the encoder and settings it was fitted under
    assert doc["predictor"]["available"] is False and doc["predictor"]["line"].startswith(
        "No predicted training value"
    )
    want = expected.sources
    assert [s["name"] for s in doc["sources"]] == list(want["name"])
    for s, (_, row) in zip(doc["sources"], want.iterrows()):
        assert tuple(s) == JSON_FIELDS
        for k in JSON_FIELDS[1:]:
            assert isinstance(s[k], float), k
            assert s[k] == pytest.approx(row[k], abs=1e-9), k
        assert s["n_queries"] == row["n_queries"] and s["n_negatives"] == row["n_negatives"]
        assert s["eci_low"] <= s["eci"] <= s["eci_high"]
    # the second run reads the embedding cache and gives the same numbers
    code2, out2, _ = run(
        capsys,
        "score",
        APP,
        "--encoder",
        "hashing",
        "--json",
        "--bootstrap",
        "200",
        "--seed",
        "3",
        "--cache-dir",
        str(tmp_path / "cache"),
        "--no-progress",
    )
    assert code2 == 0 and json.loads(out2) == doc


def test_score_tables_and_out_dir(capsys, tmp_path, expected):
    out_dir = tmp_path / "out"
    code, out, err = run(
        capsys,
        "score",
        APP,
        "--encoder",
        "hashing",
        "--bootstrap",
        "200",
        "--seed",
        "3",
        "--no-cache",
        "--no-progress",
        "--out",
        str(out_dir),
    )
    assert code == 0, err
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if "ECI [95% CI]" in line)
    for rank, (_, row) in enumerate(expected.sources.iterrows(), start=1):
        line = lines[header + rank].split()
        assert line[0] == str(rank) and line[1] == row["name"]
        assert line[2] == f"{row['eci']:.4f}"
        assert f"[{row['eci_low']:.4f}," in lines[header + rank]
        pairs = expected.pairs[expected.pairs["source"] == row["name"]]
        block = out[out.index(f"== {row['name']} ==") :]
        # sentence-transformers' table: Positive once per query, Negative/Difference per negative
        per_query = pairs.drop_duplicates("query_id")
        count = next(b for b in block.splitlines() if b.startswith("Count")).split()
        assert count[1:] == [f"{len(per_query):,}", f"{len(pairs):,}"]
        mean = next(b for b in block.splitlines() if b.startswith("Mean")).split()
        assert mean[1:] == [f"{per_query['s_qp'].mean():.4f}"] + [
            f"{pairs[c].mean():.4f}" for c in ("s_qn", "margin")
        ]
    got_pairs = pd.read_parquet(out_dir / "pairs.parquet")
    # the file holds the ids, source and flag_reasons as strings (categorical codes in memory)
    as_str = {c: "str" for c in ("source", "query_id", "passage_id", "flag_reasons")}
    assert all(got_pairs[c].dtype == "str" for c in as_str)
    pd.testing.assert_frame_equal(got_pairs, expected.pairs.astype(as_str), check_dtype=False)
    got_q = pd.read_parquet(out_dir / "queries.parquet")
    np.testing.assert_allclose(got_q["eci"], expected.queries["eci"])
    src = pd.read_csv(out_dir / "sources.csv")
    assert list(src["name"]) == list(expected.sources["name"])
    assert (out_dir / "beats.csv").is_file()


def test_score_options_reach_the_config(capsys):
    code, out, _ = run(
        capsys,
        "score",
        APP,
        "--encoder",
        "hashing",
        "--json",
        "--bootstrap",
        "50",
        "--aggregate",
        "set",
        "--positive",
        "max",
        "--temperature",
        "0.1",
        "--no-cache",
        "--no-progress",
    )
    assert code == 0
    coll, _ = load_paths([APP])
    want = score_collection(
        coll, HashingEncoder(), ECIConfig(n_bootstrap=50, aggregate="set", positive="max", temperature=0.1)
    )
    doc = json.loads(out)
    for s in doc["sources"]:
        row = want.sources.set_index("name").loc[s["name"]]
        assert s["eci"] == pytest.approx(row["eci"]) and s["infonce_bound"] == pytest.approx(
            row["infonce_bound"]
        )


def test_inspect_prints_the_load_report(capsys):
    code, out, err = run(
        capsys, "inspect", str(FIX / "formats" / "st_triplet.jsonl"), str(FIX / "formats" / "bge.jsonl")
    )
    assert code == 0 and err == ""
    assert "st_triplet" in out and "bge" in out and "negatives_kept" in out


def test_bad_input_exits_2_with_one_line(capsys, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"query": "a", "pos": ["x"], "neg": ["y"]}\n{"query": "b", "pos": 3, "neg": ["z"]}\n')
    for cmd in ("inspect", "score"):
        code, out, err = (
            run(capsys, cmd, str(bad), "--format", "bge")
            if cmd == "inspect"
            else run(capsys, cmd, str(bad), "--encoder", "hashing", "--no-cache", "--no-progress")
        )
        assert code == 2
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"{bad}:2: ")
        assert "Traceback" not in err
    code, _, err = run(capsys, "score", APP, "--encoder", "hashing", "--bootstrap", "0", "--no-cache")
    assert code == 2 and "n_bootstrap=0" in err and len(err.strip().splitlines()) == 1
    code, _, err = run(capsys, "score", str(tmp_path / "missing.jsonl"), "--encoder", "hashing", "--no-cache")
    assert code == 2 and "no such file" in err


@pytest.mark.slow
def test_score_with_the_bundled_minilm(capsys, tmp_path):
    """The default encoder end to end (model load ~3 s; 30 short texts)."""
    code, out, err = run(
        capsys, "score", APP, "--json", "--bootstrap", "100", "--cache-dir", str(tmp_path), "--no-progress"
    )
    assert code == 0, err
    doc = json.loads(out)
    assert "MiniLM" in doc["encoder"]
    assert len(doc["sources"]) == 3
    ecis = [s["eci"] for s in doc["sources"]]
    assert ecis == sorted(ecis, reverse=True) and all(0 <= e <= np.log(51) for e in ecis)
    for s in doc["sources"]:
        assert 0 <= s["unsafe_query_rate"] <= 1 and s["eci_low"] <= s["eci"] <= s["eci_high"]


def test_score_eci_sem_cap_and_device_options(capsys, tmp_path):
    coll, _ = load_paths([APP])
    want = score_collection(coll, HashingEncoder(), ECIConfig(n_bootstrap=50, eci_sem_max_k=1))
    code, out, err = run(
        capsys,
        "score",
        APP,
        "--encoder",
        "hashing",
        "--eci-sem-max-k",
        "1",
        "--bootstrap",
        "50",
        "--json",
        "--no-progress",
        "--cache-dir",
        str(tmp_path),
    )
    assert code == 0, err
    got = {s["name"]: s["eci_sem"] for s in json.loads(out)["sources"]}
    for r in want.sources.itertuples():
        assert got[r.name] == pytest.approx(r.eci_sem)
    code, out, err = run(
        capsys, "score", APP, "--encoder", "hashing", "--eci-sem-max-k", "-1", "--no-progress"
    )
    assert code == 2 and "eci_sem_max_k=-1" in err and len(err.strip().splitlines()) == 1
    code, out, err = run(capsys, "score", APP, "--encoder", "minilm", "--device", "tpu:0", "--no-progress")
    assert code == 2 and err.strip() == (
        "error: device='tpu:0': use 'auto', 'cpu', 'cuda', 'cuda:N', 'mps' or a comma-separated list"
    )


def test_score_embedding_dtype_float16_is_close_to_float32(capsys, tmp_path, expected):
    """--embedding-dtype float16 reaches score_collection: the CLI gives the library's float16
    numbers exactly (the same computation), and they differ from float32 by half-float rounding
    only: per-source ECI within C_max·2(2·eps + tie), eps = ``rounding.float16_similarity_bound(d)``
    (derived in tests/rounding.py)."""
    import rounding
    from eci_core.metrics.eci import TIE_TOLERANCE

    coll, _ = load_paths([APP])
    half = score_collection(
        coll, HashingEncoder(), ECIConfig(n_bootstrap=200, seed=3), embedding_dtype="float16"
    )
    code, out, err = run(
        capsys,
        "score",
        APP,
        "--encoder",
        "hashing",
        "--json",
        "--bootstrap",
        "200",
        "--seed",
        "3",
        "--embedding-dtype",
        "float16",
        "--no-cache",
        "--no-progress",
    )
    assert code == 0, err
    got = {s["name"]: s for s in json.loads(out)["sources"]}
    for r in half.sources.itertuples():
        assert got[r.name]["eci"] == r.eci
    eps = rounding.float16_similarity_bound(HashingEncoder().dim)
    bound = rounding.metric_bounds(
        eps, TIE_TOLERANCE, ECIConfig().temperature, float(expected.queries["C"].max())
    )
    assert any(got[r.name]["eci"] != r.eci for r in expected.sources.itertuples())  # float16 was used
    for r in expected.sources.itertuples():
        assert got[r.name]["eci"] == pytest.approx(r.eci, abs=bound["eci"])
        assert got[r.name]["n_negatives"] == r.n_negatives
    with pytest.raises(SystemExit) as exc:
        main(["score", APP, "--encoder", "hashing", "--embedding-dtype", "int8", "--no-progress"])
    assert (
        exc.value.code == 2
        and "argument --embedding-dtype: invalid choice: 'int8'" in capsys.readouterr().err
    )


def _formula_cells(path: Path) -> list[str]:
    """Cells of the CSV file ``path`` that a spreadsheet would run as a formula (a text cell
    starting with =, +, -, @, tab or CR; a number such as -0.5 is a number, not a formula)."""
    import csv

    from eci_core.io.tables import FORMULA_STARTS

    bad = []
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.reader(f):
            for cell in row:
                if cell.startswith(FORMULA_STARTS):
                    try:
                        float(cell)
                    except ValueError:
                        bad.append(cell)
    return bad


def test_score_out_csvs_escape_formula_cells(capsys, tmp_path):
    """`eci score --out`: a source named like a spreadsheet formula (from its file name) is written
    to sources.csv and beats.csv with a leading ' (shown as text, never run)."""
    import shutil

    data = tmp_path / "data"
    shutil.copytree(FIX / "app_small", data)
    evil = "=cmd|' -C calc'!A0"  # a file name: no "/"
    (data / "negatives" / "bm25.trec").rename(data / "negatives" / f"{evil}.trec")
    out_dir = tmp_path / "out"
    code, _, err = run(
        capsys,
        "score",
        str(data),
        "--encoder",
        "hashing",
        "--bootstrap",
        "50",
        "--no-cache",
        "--no-progress",
        "--out",
        str(out_dir),
    )
    assert code == 0, err
    assert pd.read_parquet(out_dir / "pairs.parquet")["source"].astype(str).eq(evil).any()  # Parquet exact
    for name in ("sources.csv", "beats.csv"):
        text = (out_dir / name).read_text(encoding="utf-8")
        assert "'" + evil in text, name
        assert _formula_cells(out_dir / name) == [], name
