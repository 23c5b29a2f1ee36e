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
from eci_core.models.encoders import EmbeddingCache, HashingEncoder
from eci_core.io.loaders import load_paths

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
    for x, y in ((a.pairs, b.pairs), (a.queries, b.queries), (a.sources, b.sources)):
        assert list(x.columns) == list(y.columns) and len(x) == len(y)
        for c in x.columns:
            if pd.api.types.is_float_dtype(x[c]):
                np.testing.assert_allclose(x[c].to_numpy(float), y[c].to_numpy(float), rtol=0, atol=1e-12,
                                           equal_nan=True, err_msg=c)
            else:
                assert x[c].astype(str).tolist() == y[c].astype(str).tolist(), c
    pd.testing.assert_frame_equal(a.beats, b.beats, rtol=0, atol=1e-12)
    assert a.encoder == b.encoder and a.notes == b.notes


def test_ray_engine_equals_local_engine_on_the_sample(local_ray, pyfaq, tmp_path):
    from eci_core import engines

    local = engines.score(pyfaq, HashingEncoder(), CFG, engine="local", sources=SOURCES)
    # small batches: each source is scored in several Ray Data batches, on 2 workers
    from eci_core.engines.ray_engine import score_ray

    on_ray = score_ray(pyfaq, HashingEncoder(), CFG, sources=SOURCES, score_batch=40,
                      cache=EmbeddingCache(tmp_path / "cache"))
    _equal(on_ray, local)
    assert len(local.pairs) > 2000 and set(local.sources["name"]) == set(SOURCES)
    # the vectors encoded on Ray went to the driver's embedding cache
    n_texts = len(set(pyfaq.passage_texts[i] for s in SOURCES for i in pyfaq.sources[s].p_idx))
    assert EmbeddingCache(tmp_path / "cache").count(HashingEncoder().fingerprint, "passage") >= n_texts


def test_ray_engine_refuses_a_cross_encoder_in_one_line(local_ray, pyfaq):
    from eci_core import engines

    with pytest.raises(ValueError, match="does not run a cross-encoder yet"):  # before any work
        engines.score(pyfaq, HashingEncoder(), CFG, engine="ray", sources=SOURCES[:1], cross_encoder=object())
    with pytest.raises(ValueError, match="engine='spark'"):
        engines.score(pyfaq, HashingEncoder(), CFG, engine="spark")
