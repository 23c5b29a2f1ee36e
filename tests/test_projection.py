"""PCA / UMAP projections, stratified sampling and the projection point table."""

import numpy as np
import pandas as pd
import pytest

from eci_core.explore import projection as pj
from eci_core.config import ECIConfig
from eci_core.io.collection import Collection
from eci_core.io.records import PassageRef as P
from eci_core.io.records import QueryRecord as R


def test_pca_matches_covariance_eigenvectors():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 5)) * np.array([5.0, 2.0, 0.5, 0.1, 0.1]) + 3.0
    xy = pj.pca_2d(x)
    assert xy.shape == (50, 2) and xy.dtype == np.float32
    xc = x - x.mean(0)
    w, v = np.linalg.eigh(np.cov(xc.T))
    top = v[:, ::-1][:, :2]
    ref = xc @ top
    for k in range(2):  # same axes up to sign
        assert abs(np.corrcoef(ref[:, k], xy[:, k])[0, 1]) == pytest.approx(1.0, abs=1e-5)
    # variances are the two largest eigenvalues (ddof = 1)
    assert np.var(xy, axis=0, ddof=1) == pytest.approx(w[::-1][:2], rel=1e-4)
    # sign convention makes the result deterministic under a sign flip of the input's loading
    assert np.allclose(pj.pca_2d(x), xy)


def test_pca_small_inputs():
    assert pj.pca_2d(np.zeros((0, 4))).shape == (0, 2)
    assert pj.pca_2d(np.ones((1, 4))).tolist() == [[0.0, 0.0]]
    two = pj.pca_2d(np.array([[0.0, 0.0], [2.0, 0.0]]))
    assert two[:, 1].tolist() == [0.0, 0.0] and sorted(two[:, 0].tolist()) == [-1.0, 1.0]
    assert pj.project(np.eye(3), method="umap").shape == (3, 2)  # < 4 points: PCA, no UMAP


def test_project_validates_parameters():
    with pytest.raises(ValueError, match="method='tsne'"):
        pj.project(np.eye(5), method="tsne")
    with pytest.raises(ValueError, match="n_neighbors=1"):
        pj.project(np.eye(5), n_neighbors=1)
    with pytest.raises(ValueError, match="min_dist=2"):
        pj.project(np.eye(5), min_dist=2)
    with pytest.raises(ValueError, match="2-D"):
        pj.project(np.zeros(5), method="pca")


def test_stratified_sample_keeps_every_stratum_proportionally():
    labels = np.array(["a"] * 900 + ["b"] * 90 + ["c"] * 9 + ["d"])
    idx = pj.stratified_sample(labels, max_points=100, seed=1)
    assert len(idx) == 100 and np.all(np.diff(idx) > 0)
    counts = pd.Series(labels[idx]).value_counts()
    # quotas 90, 9, 0.9, 0.1 → floors with at least one: 90, 9, 1, 1 = 101 → one taken back from a
    assert counts.to_dict() == {"a": 89, "b": 9, "c": 1, "d": 1}
    assert np.array_equal(idx, pj.stratified_sample(labels, 100, seed=1))
    assert not np.array_equal(idx, pj.stratified_sample(labels, 100, seed=2))
    assert np.array_equal(pj.stratified_sample(labels[:50], 100), np.arange(50))
    # remainders: 3 strata of 10 into 20 → 6.67 each → 6, 6, 6 then +1 +1
    eq = pj.stratified_sample(np.repeat(["x", "y", "z"], 10), 20)
    assert sorted(pd.Series(np.repeat(["x", "y", "z"], 10)[eq]).value_counts().tolist()) == [6, 7, 7]
    with pytest.raises(ValueError, match="max_points=2 is smaller than the number of strata"):
        pj.stratified_sample(np.arange(10), 2)


def test_umap_tiny_and_cached(tmp_path):
    """The single UMAP test: tiny input, result cached as .npy and read back."""
    pytest.importorskip("umap")
    rng = np.random.default_rng(0)
    centers = np.eye(8)[:2] * 4
    x = np.concatenate(
        [centers[0] + rng.normal(size=(15, 8)) * 0.1, centers[1] + rng.normal(size=(15, 8)) * 0.1]
    )
    xy = pj.project(x, "umap", n_neighbors=5, metric="euclidean", seed=3, cache=tmp_path)
    assert xy.shape == (30, 2) and np.isfinite(xy).all()
    # the two clusters stay apart: between-cluster distance ≫ within-cluster spread
    c0, c1 = xy[:15].mean(0), xy[15:].mean(0)
    spread = max(np.linalg.norm(xy[:15] - c0, axis=1).max(), np.linalg.norm(xy[15:] - c1, axis=1).max())
    assert np.linalg.norm(c0 - c1) > spread
    files = list((tmp_path / "projections").glob("*.npy"))
    assert len(files) == 1
    key = pj.projection_key(x, method="umap", n_neighbors=5, min_dist=0.1, metric="euclidean", seed=3, v=1)
    assert files[0].name == f"{key}.npy"
    # prove the second call reads the cache: overwrite the file with a marker
    np.save(files[0], np.full((30, 2), 7.0, dtype=np.float32), allow_pickle=False)
    again = pj.project(x, "umap", n_neighbors=5, metric="euclidean", seed=3, cache=tmp_path)
    assert (again == 7.0).all()
    # another parameter → another key (not computed here: only the key differs)
    assert pj.projection_key(x, n_neighbors=6) != pj.projection_key(x, n_neighbors=5)


def test_cache_dir_defaults(monkeypatch, tmp_path):
    monkeypatch.setenv("ECI_CACHE_DIR", str(tmp_path))
    assert pj.projection_cache_dir() == tmp_path / "projections"
    cache = type("C", (), {"directory": tmp_path / "emb"})()
    assert pj.projection_cache_dir(cache) == tmp_path / "emb" / "projections"


def _scored():
    from eci_core.models.hashing import HashingEncoder
    from eci_core.scoring import score_collection

    c = Collection()
    c.add_source(
        "bm25",
        [
            R(
                "q1",
                "how to sort a list",
                [P("p1", "use sorted to sort a list")],
                [P("n1", "sort a list"), P("n2", "cats")],
            ),
            R(
                "q2",
                "what is a tuple",
                [P("p2", "a tuple is immutable")],
                [P("n3", "a tuple"), P("n2", "cats")],
            ),
        ],
    )
    c.add_source(
        "dense",
        [R("q1", "how to sort a list", [P("p1", "use sorted to sort a list")], [P("n4", "ordering")])],
    )
    enc = HashingEncoder()
    return c, score_collection(c, enc, ECIConfig(n_bootstrap=20)), enc


def test_projection_frame_points_and_embeddings():
    c, r, enc = _scored()
    qe, pe = pj.collection_embeddings(c, enc)
    d = pj.projection_frame(c, r, qe, pe)
    f = d.frame
    assert f["kind"].value_counts().to_dict() == {"negative": 5, "query": 2, "positive": 2}
    assert d.n_total == 9 and not d.sampled and d.note == ""
    assert f["row_id"].tolist() == list(range(9))
    neg = f[f.kind == "negative"]
    assert neg["source"].tolist() == ["bm25"] * 4 + ["dense"]
    assert set(neg["flag"]) <= {"flagged", "risky (percpos)", "clean"}
    # embedding rows line up with the table
    n4 = f.index[(f.passage_id == "n4")][0]
    assert np.allclose(d.embeddings[n4], pe[c.passage_index("n4")])
    assert np.isnan(f.loc[f.kind == "query", "margin"]).all()
    # only dense: its query, its positive, its negative
    dd = pj.projection_frame(c, r, qe, pe, sources=["dense"])
    assert dd.frame["kind"].tolist() == ["query", "positive", "negative"]
    out = pj.project_points(dd, method="pca")
    assert {"x", "y"} <= set(out.columns) and len(out) == 3


def test_projection_frame_samples_above_max_points():
    c, r, enc = _scored()
    qe, pe = pj.collection_embeddings(c, enc)
    d = pj.projection_frame(c, r, qe, pe, max_points=6, color_by="flag")
    assert len(d.frame) == 6 and d.n_total == 9 and d.sampled
    assert "6 of 9 points" in d.note
    assert set(d.frame["kind"]) == {"query", "positive", "negative"}
    assert len(d.embeddings) == 6
    with pytest.raises(ValueError, match="color_by='size'"):
        pj.projection_frame(c, r, qe, pe, color_by="size")
    with pytest.raises(ValueError, match="query_embeddings has 1 rows"):
        pj.projection_frame(c, r, qe[:1], pe)
    with pytest.raises(ValueError, match="unknown source"):
        pj.projection_frame(c, r, qe, pe, sources=["zz"])


def test_projection_frame_embeds_only_the_sampled_points_with_an_encoder():
    c, r, enc = _scored()
    qe, pe = pj.collection_embeddings(c, enc)
    full = pj.projection_frame(c, r, qe, pe, max_points=6, color_by="flag")
    calls = []

    class Counting:
        dim = enc.dim

        def encode_queries(self, texts):
            calls.append(len(texts))
            return enc.encode_queries(texts)

        def encode_passages(self, texts):
            calls.append(len(texts))
            return enc.encode_passages(texts)

        fingerprint = enc.fingerprint
        name = enc.name

    lazy = pj.projection_frame(c, r, max_points=6, color_by="flag", encoder=Counting())
    assert lazy.frame["row_id"].tolist() == full.frame["row_id"].tolist()
    np.testing.assert_allclose(lazy.embeddings, full.embeddings, atol=1e-6)
    assert sum(calls) <= 6  # the 6 kept points, not the 9 of the collection
    with pytest.raises(ValueError, match="or an encoder"):
        pj.projection_frame(c, r)
