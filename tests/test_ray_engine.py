"""The Ray engine (``eci_core/engines/ray_engine.py``) gives the local engine's numbers.

Starts a local Ray with 2 CPUs (dashboard off) once for the module. Skipped when Ray Data is not
installed (it is an optional extra: ``pip install "eci-explorer[ray]"``; ``make test`` installs it).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import eci_core  # noqa: F401
from eci_core.config import ECIConfig
from eci_core.models.cache import EmbeddingCache
from eci_core.models.hashing import HashingEncoder
from eci_core.io.load import load_paths

ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ["bm25", "dense"]
CFG = ECIConfig(n_bootstrap=200)


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def pyfaq():
    coll, report = load_paths([str(ROOT / "sample_data" / "pyfaq")])
    assert not report.errors
    return coll


def _equal(a, b):
    """Bit-for-bit equal tables. The tolerance is 0 because the arithmetic is the same: Ray's
    actors run ``score_arrays`` on the same float32 vectors (encoded by the same model, or
    taken from the same cache), and every similarity is one row of a batched matmul whose matrix
    shape depends only on the query's (K, |P|), not on which queries share its batch (numpy
    calls the same kernel per matrix of the stack, and BLAS gemm does not split the inner
    dimension across threads); per-query metrics, the per-source means and the seeded bootstrap
    then run on the driver in the same order. (Batches of >= 200,000 pairs would take the numba
    pass in one engine and not the other: then the numba/numpy bound of test_scoring applies.
    Workers on CPUs of another SIMD width could also sum in another order: |Δs| <= 2·gamma_d, see
    tests/rounding.py.)

    One exception, ``eci_sem`` = 2·Σ_k ln L_kk (Cholesky diagonal of I + G/λ): numpy orders that
    K-term float64 sum by the shape of the batch it sits in. Each L_kk >= 1 (I + G/λ >= I), so
    every term is >= 0 and each evaluation is within gamma_{K-1}·eci_sem of the exact sum (u =
    2^-53): the two engines differ by at most 2·gamma_{K-1}·eci_sem, relative, per query and
    (a mean of non-negative values) per source."""
    import rounding

    k_max = int(max(a.queries["K"].max(), b.queries["K"].max()))
    sem_rtol = 2 * rounding.gamma(max(k_max - 1, 1), 2.0**-53)
    for x, y in ((a.pairs, b.pairs), (a.queries, b.queries), (a.sources, b.sources)):
        assert list(x.columns) == list(y.columns) and len(x) == len(y)
        for c in x.columns:
            if c == "eci_sem":
                np.testing.assert_allclose(
                    x[c].to_numpy(float),
                    y[c].to_numpy(float),
                    rtol=sem_rtol,
                    atol=0,
                    equal_nan=True,
                    err_msg=c,
                )
            elif pd.api.types.is_float_dtype(x[c]):
                np.testing.assert_array_equal(x[c].to_numpy(float), y[c].to_numpy(float), err_msg=c)
            else:
                assert x[c].astype(str).tolist() == y[c].astype(str).tolist(), c
    pd.testing.assert_frame_equal(a.beats, b.beats, check_exact=True)
    assert a.encoder == b.encoder and a.notes == b.notes


def test_ray_engine_equals_local_engine_on_the_sample(local_ray, pyfaq, tmp_path):
    from eci_core import engines

    local = engines.score(pyfaq, HashingEncoder(), CFG, engine="local", sources=SOURCES)
    # small batches: each source is scored in several Ray Data batches, on 2 workers
    from eci_core.engines.ray_engine import score_ray

    on_ray = score_ray(
        pyfaq,
        HashingEncoder(),
        CFG,
        sources=SOURCES,
        score_batch=40,
        cache=EmbeddingCache(tmp_path / "cache"),
    )
    _equal(on_ray, local)
    assert len(local.pairs) > 2000 and set(local.sources["name"]) == set(SOURCES)
    # the vectors encoded on Ray went to the driver's embedding cache
    n_texts = len(set(pyfaq.passage_texts[i] for s in SOURCES for i in pyfaq.sources[s].p_idx))
    assert EmbeddingCache(tmp_path / "cache").count(HashingEncoder().fingerprint, "passage") >= n_texts


def _few_queries(coll, n: int):
    """``coll`` with every source cut to the first ``n`` queries of the first source (the same
    queries in each source, so a (query, negative) pair can repeat across sources)."""
    import dataclasses

    keep = np.unique(coll.sources[SOURCES[0]].q_idx)[:n]
    out = coll.copy()
    for name, src in coll.sources.items():
        m = np.isin(src.q_idx, keep)
        out.sources[name] = dataclasses.replace(
            src,
            q_idx=src.q_idx[m],
            p_idx=src.p_idx[m],
            rank=src.rank[m],
            score=src.score[m],
            queries=np.intersect1d(src.query_indices, keep),
        )
    return out


def test_ray_engine_cross_encoder_equals_local_engine(local_ray, pyfaq, tmp_path):
    """The bundled ONNX cross-encoder on Ray actors gives the local engine's ce_margin and
    cross_encoder flags, scores each unique (query, passage) text pair once, and fills the cache."""
    from eci_core import engines
    from eci_core.engines.ray_engine import RayCrossEncoder, score_ray
    from eci_core.models.registry import load_cross_encoder

    few = _few_queries(pyfaq, 3)
    cfg = ECIConfig(n_bootstrap=50, cross_encoder_margin=0.5)
    local = engines.score(
        few,
        HashingEncoder(),
        cfg,
        engine="local",
        sources=SOURCES,
        cross_encoder=load_cross_encoder("bundled"),
    )
    ce = RayCrossEncoder("bundled", batch_size=8)
    on_ray = score_ray(
        few,
        HashingEncoder(),
        cfg,
        sources=SOURCES,
        score_batch=2,
        cross_encoder=ce,
        cache=EmbeddingCache(tmp_path / "cache"),
    )
    _equal(on_ray, local)
    pairs = local.pairs
    assert pairs["ce_margin"].notna().all() and len(pairs) >= 50
    # ce_margin = ce(q, p*) - ce(q, n), by hand for one pair, with the model run here
    model = load_cross_encoder("bundled")
    row = pairs.iloc[0]
    q = few.query_texts[few.query_index(row.query_id)]
    pos = local.queries.set_index(["source", "query_id"]).loc[(row.source, row.query_id), "positive_id"]
    want = (
        model.predict([(q, few.passage_texts[few.passage_index(pos)])])[0]
        - model.predict([(q, few.passage_texts[few.passage_index(row.passage_id)])])[0]
    )
    assert abs(on_ray.pairs["ce_margin"].iloc[0] - float(want)) < 1e-6
    # the flag follows ce_margin <= 0.5, and some pairs fire it, some do not
    assert (on_ray.pairs["cross_encoder"] == (on_ray.pairs["ce_margin"] <= 0.5)).all()
    assert 0 < on_ray.pairs["cross_encoder"].sum() < len(pairs)
    assert (on_ray.pairs.loc[on_ray.pairs["cross_encoder"], "flagged"]).all()
    # each unique (query text, passage text) pair went to Ray once, across both sources
    qt = [few.query_texts[few.query_index(x)] for x in pairs["query_id"]]
    pt = [few.passage_texts[few.passage_index(x)] for x in pairs["passage_id"]]
    pos_t = [
        (few.query_texts[few.query_index(r.query_id)], few.passage_texts[few.passage_index(r.positive_id)])
        for r in local.queries.itertuples()
    ]
    unique = {(a, " ".join(b.split())) for a, b in zip(qt, pt)} | {(a, " ".join(b.split())) for a, b in pos_t}
    assert len(set(zip(qt, pt))) < len(pairs)  # some pair is in both sources
    assert ce.n_scored == len(unique)
    # a second run takes every score from the cache: nothing goes to Ray, same numbers
    again = score_ray(
        few,
        HashingEncoder(),
        cfg,
        sources=SOURCES,
        cross_encoder=ce,
        cache=EmbeddingCache(tmp_path / "cache"),
    )
    assert ce.n_scored == len(unique)
    _equal(again, local)


def test_ray_engine_unknown_engine_in_one_line(pyfaq):
    from eci_core import engines

    with pytest.raises(ValueError, match="engine='spark'"):
        engines.score(pyfaq, HashingEncoder(), CFG, engine="spark")
