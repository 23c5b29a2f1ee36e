"""Bring your own embeddings (``eci_core/models/user_embeddings.py``, ``eci score --embeddings``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import eci_core  # noqa: F401
from eci_core.config import ECIConfig
from eci_core.models.encoding import embed, export_embeddings
from eci_core.models.hashing import HashingEncoder
from eci_core.scoring import score_collection
from eci_core.models.user_embeddings import NormalisedRows, open_embeddings, write_embeddings

from test_scoring import collection  # a 3-source collection (tests/ is on sys.path)

ROOT = Path(__file__).resolve().parent.parent
import rounding  # noqa: E402  (tests/ is on sys.path under pytest)

CFG = ECIConfig(n_bootstrap=100)
ENC = HashingEncoder()


@pytest.fixture(scope="module")
def coll():
    return collection()


@pytest.fixture(scope="module")
def encoded(coll):
    return score_collection(coll, ENC, CFG)


def _write(
    coll, folder, fmt, scale=1.0, dtype=np.float32, extra=0, perm_seed=1, drop_query=None, pdim=None, base=ENC
):
    """The hashing vectors of every query and passage of ``coll``, keyed by id, rows shuffled, plus
    ``extra`` unrelated rows (the file holds more than the data needs)."""
    rng = np.random.default_rng(perm_seed)
    for kind, ids, texts in (
        ("query", coll.query_ids, coll.query_texts),
        ("passage", coll.passage_ids, coll.passage_texts),
    ):
        enc = HashingEncoder(pdim) if (pdim and kind == "passage") else base
        vecs = embed(enc, list(texts), kind) * scale
        ids = list(ids)
        if kind == "query" and drop_query is not None:
            keep = [i for i, x in enumerate(ids) if x not in drop_query]
            ids, vecs = [ids[i] for i in keep], vecs[keep]
        if extra:
            more = rng.normal(size=(extra, vecs.shape[1]))
            vecs = np.vstack([vecs, scale * more / np.linalg.norm(more, axis=1, keepdims=True)])
            ids = ids + [f"extra-{kind}-{i}" for i in range(extra)]
        order = rng.permutation(len(ids))
        write_embeddings(folder, kind, [ids[i] for i in order], vecs[order].astype(dtype), fmt=fmt)
    return folder


def _assert_within_rounding(a, b, eps: float) -> None:
    """``a`` scored from rounded copies of ``b``'s vectors: the same rows, every similarity within
    ``eps`` and every number derived from them within ``rounding.metric_bounds`` of it."""
    from eci_core.metrics.eci import TIE_TOLERANCE

    bound = rounding.metric_bounds(eps, TIE_TOLERANCE, CFG.temperature, float(b.queries["C"].max()))
    keys = ["source", "query_id", "passage_id"]
    assert a.pairs[keys].astype(str).equals(b.pairs[keys].astype(str))
    for col in ("s_qn", "s_qp", "s_pn", "margin"):
        assert np.abs(a.pairs[col].to_numpy(float) - b.pairs[col].to_numpy(float)).max() <= bound[col], col
    assert (
        a.queries[["source", "query_id", "K"]]
        .astype(str)
        .equals(b.queries[["source", "query_id", "K"]].astype(str))
    )
    for col in ("S", "delta", "DE", "infonce", "eci", "eci_arith"):
        assert np.abs(a.queries[col].to_numpy(float) - b.queries[col].to_numpy(float)).max() <= bound[col], (
            col
        )
    for col, key in (
        ("eci", "eci"),
        ("eci_low", "eci"),
        ("eci_high", "eci"),
        ("signal", "S"),
        ("safety", "delta"),
        ("infonce_bound", "infonce"),
    ):
        assert np.abs(a.sources[col].to_numpy(float) - b.sources[col].to_numpy(float)).max() <= bound[key], (
            col
        )


def _assert_same(a, b, atol=1e-6):
    for table, keys in ((a.pairs, b.pairs), (a.queries, b.queries)):
        num = [c for c in table.columns if pd.api.types.is_float_dtype(table[c])]
        other = [c for c in table.columns if c not in num]
        np.testing.assert_allclose(
            table[num].to_numpy(float), keys[num].to_numpy(float), atol=atol, equal_nan=True
        )
        assert table[other].astype(str).equals(keys[other].astype(str))
    num = [c for c in a.sources.columns if c != "name"]
    assert list(a.sources["name"]) == list(b.sources["name"])
    np.testing.assert_allclose(
        a.sources[num].to_numpy(float), b.sources[num].to_numpy(float), atol=atol, equal_nan=True
    )


def _as_list_column_parquet(folder):
    """Rewrites each Parquet file with a variable-length ``list<float>`` column named ``vector``
    and the id column named ``_id`` (the other accepted spelling)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    for f in folder.glob("*.parquet"):
        t = pq.read_table(f)
        vecs = t.column("embedding").combine_chunks()
        lst = pa.ListArray.from_arrays(
            pa.array(np.arange(len(vecs) + 1, dtype=np.int32) * vecs.type.list_size), vecs.flatten()
        )
        pq.write_table(pa.table({"_id": t.column("id"), "vector": lst}), f)


@pytest.mark.parametrize("fmt", ["npy", "parquet", "parquet-list"])
def test_your_vectors_score_like_encoding_the_texts(coll, encoded, tmp_path, fmt, monkeypatch):
    monkeypatch.setenv("ECI_CACHE_DIR", str(tmp_path / "cache"))
    folder = _write(coll, tmp_path / "emb", fmt.split("-")[0], extra=7)
    if fmt == "parquet-list":
        _as_list_column_parquet(folder)
    emb = open_embeddings(folder, model="hashing-by-hand")
    if fmt == "npy":
        assert isinstance(emb.passages, np.memmap)  # memory-mapped, not copied
    got = score_collection(coll, None, CFG, embeddings=emb)
    _assert_same(got, encoded)
    assert got.encoder.startswith("hashing-by-hand (your embeddings: ")
    assert not got.notes.get("your embeddings were not unit length (normalised on read)")


def test_ids_file_variants_float16_and_unnormalised_vectors(coll, encoded, tmp_path):
    folder = _write(coll, tmp_path / "emb", "npy", scale=3.0)
    # ids as JSON lines (objects) for queries, a JSON list for passages
    q_ids = (folder / "queries.ids.txt").read_text().split()
    (folder / "queries.ids.txt").unlink()
    (folder / "queries.ids.jsonl").write_text("".join(f'{{"id": "{i}"}}\n' for i in q_ids))
    p_ids = (folder / "passages.ids.txt").read_text().split("\n")[:-1]
    (folder / "passages.ids.txt").unlink()
    import json

    (folder / "passages.ids.json").write_text(json.dumps(p_ids))
    emb = open_embeddings(folder, model="m")
    assert isinstance(emb.passages, NormalisedRows)
    got = score_collection(coll, None, CFG, embeddings=emb)
    _assert_same(got, encoded, atol=1e-5)
    assert set(got.notes["your embeddings were not unit length (normalised on read)"]) == {"query", "passage"}
    half = _write(coll, tmp_path / "half", "npy", dtype=np.float16)
    got16 = score_collection(coll, None, CFG, embeddings=open_embeddings(half, model="m"))
    # both sides stored as float16, used as read (unit length within the float16 tolerance)
    _assert_within_rounding(got16, encoded, rounding.float16_similarity_bound(ENC.dim))


def test_the_products_own_cache_as_embeddings(coll, encoded, tmp_path):
    folder = tmp_path / "shipped"
    export_embeddings(ENC, list(coll.query_texts), "query", folder)
    export_embeddings(ENC, list(coll.passage_texts), "passage", folder, dtype="float32")
    emb = open_embeddings(folder)
    assert emb.by_text and emb.model == ENC.fingerprint
    got = score_collection(coll, None, CFG, embeddings=emb)
    # queries stored as float16 (the export default), both sides renormalised by the cache on read
    _assert_within_rounding(
        got, encoded, rounding.float16_similarity_bound(ENC.dim, sides=1, renormalised=True)
    )


def test_a_users_own_cache_folder_as_embeddings(coll, encoded, tmp_path):
    """The cache folder ``embed`` fills (Arrow IPC files, float32) is found and read as is."""
    from eci_core.models.cache import EmbeddingCache

    folder = tmp_path / "my-cache"
    embed(ENC, list(coll.query_texts), "query", cache=EmbeddingCache(folder))
    embed(ENC, list(coll.passage_texts), "passage", cache=EmbeddingCache(folder))
    assert list(folder.rglob("*.arrow")) and not list(folder.rglob("*.npz"))
    emb = open_embeddings(folder)
    assert emb.by_text and emb.model == ENC.fingerprint
    got = score_collection(coll, None, CFG, embeddings=emb)
    _assert_within_rounding(got, encoded, 0.0)  # float32 storage: the encoder's own vectors


def test_missing_ids_and_wrong_dimension_give_one_clear_line(coll, tmp_path):
    gone = sorted(coll.query_ids)[:2]
    folder = _write(coll, tmp_path / "miss", "npy", drop_query=set(gone))
    emb = open_embeddings(folder, model="m")
    with pytest.raises(ValueError) as err:
        score_collection(coll, None, CFG, embeddings=emb)
    msg = str(err.value)
    assert "\n" not in msg
    assert f"2 of {len(coll.query_ids)} query ids the scored sources need have no vector" in msg
    assert all(repr(g) in msg for g in gone) and "queries.npy" in msg
    folder = _write(coll, tmp_path / "dim", "npy", pdim=128)
    with pytest.raises(
        ValueError,
        match=r"passage vectors have dimension 128 but the query vectors in queries.npy "
        r"have 256",
    ) as err:
        open_embeddings(folder, model="m")
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match=r"--embeddings-model NAME"):
        open_embeddings(tmp_path / "miss")
    np.save(tmp_path / "miss" / "queries.npy", np.zeros((3, 256), np.int8))
    with pytest.raises(ValueError, match="dtype int8 is not supported"):
        open_embeddings(tmp_path / "miss", model="m")
    np.save(tmp_path / "miss" / "queries.npy", np.ones((3, 256), np.float32))
    with pytest.raises(ValueError, match=r"queries.ids.txt: \d+ ids but queries.npy has 3 rows"):
        open_embeddings(tmp_path / "miss", model="m")


def test_cli_scores_with_your_embeddings(tmp_path):
    data = ROOT / "tests" / "fixtures"
    from eci_core.io.load import load_paths

    beir = ROOT / "sample_data" / "pyfaq"
    coll, _ = load_paths([str(beir)])
    folder = _write(coll, tmp_path / "emb", "npy")
    env = {
        "PYTHONPATH": str(ROOT),
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "ECI_CACHE_DIR": str(tmp_path / "c"),
    }
    base = [
        sys.executable,
        "-m",
        "eci_core.cli",
        "score",
        str(beir),
        "--source",
        "bm25",
        "--bootstrap",
        "50",
        "--no-progress",
        "--json",
    ]
    mine = subprocess.run(
        base + ["--embeddings", str(folder), "--embeddings-model", "hashing-by-hand"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    ref = subprocess.run(
        base + ["--encoder", "hashing"], capture_output=True, text=True, env=env, timeout=300
    )
    assert mine.returncode == 0 and ref.returncode == 0, mine.stderr[-1500:] + ref.stderr[-1500:]
    import json

    a, b = json.loads(mine.stdout), json.loads(ref.stdout)
    assert a["encoder"].startswith("hashing-by-hand (your embeddings:")
    assert a["sources"][0]["eci"] == pytest.approx(b["sources"][0]["eci"], abs=1e-9)
    (folder / "queries.ids.txt").write_text("".join(f"x{i}\n" for i in range(len(coll.query_ids))))
    bad = subprocess.run(
        base + ["--embeddings", str(folder), "--embeddings-model", "m"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1, bad.stderr
    assert "query ids the scored sources need have no vector" in bad.stderr
    assert data.is_dir()


def test_sidebar_scores_with_your_embeddings(tmp_path, monkeypatch):
    """The sidebar's "Your embeddings (folder)…" choice: the Overview shows the numbers the
    library gives for those vectors (the hashing encoder's, written to .npy + ids)."""
    streamlit_testing = pytest.importorskip("streamlit.testing.v1")
    from eci_core.io.load import load_paths

    fixture = ROOT / "tests" / "fixtures" / "app_small"
    monkeypatch.setenv("ECI_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("ECI_DATA", str(fixture))
    monkeypatch.setenv("ECI_ENCODER", "hashing")
    monkeypatch.setenv("ECI_DATA_ROOT", os.pathsep.join([str(fixture), str(tmp_path)]))
    coll, _ = load_paths([str(fixture)])
    folder = _write(coll, tmp_path / "emb", "npy", base=HashingEncoder(16))  # not the app's hashing (dim 256)
    want = score_collection(coll, None, ECIConfig(), embeddings=open_embeddings(folder, model="mine"))
    default = score_collection(coll, ENC, ECIConfig())
    assert f"{want.sources.iloc[0]['eci']:.3f}" != f"{default.sources.iloc[0]['eci']:.3f}"
    sys.path.insert(0, str(ROOT))
    at = streamlit_testing.AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.run()
    at.selectbox(key="set_encoder").set_value("Your embeddings (folder)…")
    at.run()
    at.text_input(key="set_embeddings").set_value(str(folder))
    at.text_input(key="set_embeddings_model").set_value("mine")
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Highest ECI"] == f"{want.sources.iloc[0]['eci']:.3f}"
    at.text_input(key="set_embeddings").set_value(str(tmp_path / "nowhere"))
    at.run()
    shown = " ".join(str(e.value) for e in at.error) + " ".join(str(e.value) for e in at.code)
    assert "no such folder" in shown, shown
    at.text_input(key="set_embeddings").set_value(str(ROOT.parent))  # outside the data roots
    at.run()
    shown = " ".join(str(e.value) for e in at.error) + " ".join(str(e.value) for e in at.code)
    assert "outside the folders this dashboard may read" in shown, shown
