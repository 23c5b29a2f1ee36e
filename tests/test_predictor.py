"""The training-free predictor (eci_core/validation/predictor.py): the ridge fit by hand, the
resolved-pair count, leave-one-dataset-out, and that the shipped model is what its script fits."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from eci_core.validation import predictor as P

ROOT = Path(__file__).resolve().parents[1]


def _two_datasets(flip_b: bool = False) -> pd.DataFrame:
    # A: x = 0, 1, 2 → gain 0, .1, .2; B: x = 5, 6, 7 → gain 1.0, 1.1, 1.2 (or reversed)
    gb = [1.2, 1.1, 1.0] if flip_b else [1.0, 1.1, 1.2]
    return pd.DataFrame(
        {
            "dataset": ["A"] * 3 + ["B"] * 3,
            "source": list("abcdef"),
            "x": [0, 1, 2, 5, 6, 7],
            "gain": [0.0, 0.1, 0.2] + gb,
        }
    )


def test_fit_by_hand():
    """Centred per dataset, x is (-1, 0, 1) twice and the gains (-.1, 0, .1) twice; the pooled
    standard deviation is sqrt(2/3), so z = ±sqrt(3/2) and z'z = 6, z'y = 2·2·sqrt(3/2)·0.1.
    alpha = 0: b = z'y / z'z = 0.1·sqrt(2/3) (0.1 gain per unit of x); alpha = 1: z'y / 7.
    The level: mean gain over datasets 0.6 at the mean feature 3.5."""
    t = _two_datasets()
    m0 = P.fit(t, features=["x"], alpha=0.0)
    assert m0.scale[0] == pytest.approx(math.sqrt(2 / 3), rel=1e-12)
    assert m0.coef[0] == pytest.approx(0.1 * math.sqrt(2 / 3), rel=1e-12)
    assert m0.intercept == pytest.approx(0.6, rel=1e-12) and m0.mean[0] == pytest.approx(3.5, rel=1e-12)
    pred = m0.predict(pd.DataFrame({"x": [3.5, 4.5]}))
    assert pred == pytest.approx([0.6, 0.7], rel=1e-12)
    m1 = P.fit(t, features=["x"], alpha=1.0)
    assert m1.coef[0] == pytest.approx(4 * math.sqrt(1.5) * 0.1 / 7, rel=1e-12)


def test_fit_names_what_is_missing():
    t = _two_datasets().drop(columns="gain")
    with pytest.raises(ValueError, match="gain"):
        P.fit(t, features=["x"])
    with pytest.raises(ValueError, match="feature_table"):
        P.fit(_two_datasets(), features=["x"]).predict(pd.DataFrame({"y": [1.0]}))
    with pytest.raises(ValueError, match="alpha"):
        P.fit(_two_datasets(), features=["x"], alpha=-1)


def test_decided_pairs_counts_only_resolved_pairs():
    names = ["a", "b", "c"]
    # P(row better than column): a>b resolved (0.97), a vs c unresolved (0.6), b<c resolved (0.02)
    beats = pd.DataFrame(
        [[np.nan, 0.97, 0.6], [0.03, np.nan, 0.02], [0.4, 0.98, np.nan]], index=names, columns=names
    )
    pred = pd.Series({"a": 3.0, "b": 1.0, "c": 0.5})  # a>b right, b>c wrong
    assert P.decided_pairs(pred, beats) == (2, 1.0)
    tied = pd.Series({"a": 1.0, "b": 1.0, "c": 2.0})  # a=b half, c>b right
    assert P.decided_pairs(tied, beats) == (2, 1.5)


def test_leave_one_dataset_out_scores_the_held_out_dataset():
    names_a, names_b = list("abc"), list("def")

    def beats_for(names, order):  # every pair resolved in the order given
        p = pd.DataFrame(np.nan, index=names, columns=names)
        for i, x in enumerate(order):
            for y in order[i + 1 :]:
                p.loc[x, y], p.loc[y, x] = 1.0, 0.0
        return p

    beats = {"A": beats_for(names_a, ["c", "b", "a"]), "B": beats_for(names_b, ["f", "e", "d"])}
    rows = P.leave_one_dataset_out(_two_datasets(), beats, features=["x"])
    assert [r["dataset"] for r in rows] == ["A", "B"]
    for r in rows:
        assert r["spearman"] == pytest.approx(1.0) and (r["resolved_pairs"], r["decided_right"]) == (3, 3.0)
        assert r["top1_regret"] == 0.0
    # B's gains fall with x: fitted on A, the predictor orders every B pair the wrong way
    flipped = {"A": beats["A"], "B": beats_for(names_b, ["d", "e", "f"])}
    rows = {
        r["dataset"]: r for r in P.leave_one_dataset_out(_two_datasets(flip_b=True), flipped, features=["x"])
    }
    assert rows["B"]["spearman"] == pytest.approx(-1.0) and rows["B"]["decided_right"] == 0.0
    assert rows["B"]["top1_regret"] == pytest.approx(0.2)


def test_feature_table_from_a_score_result():
    """Every feature is a per-source number of an ``eci score`` result (the sample, shipped
    embeddings): S, Δ, C and the unsafe rate are the sources table's; the two means are the
    pairs table's."""
    from eci_core.io.load import load_paths
    from eci_core.models.cache import EmbeddingCache
    from eci_core.models.registry import load_encoder
    from eci_core.scoring import score_collection
    from eci_core.config import ECIConfig

    d = ROOT / "sample_data" / "pyfaq"
    coll, _ = load_paths([str(d)])
    res = score_collection(
        coll,
        load_encoder(None),
        ECIConfig(n_bootstrap=10),
        cache=EmbeddingCache(readonly_dirs=[d / "embeddings"]),
        sources=["bm25", "random"],
    )
    ft = P.feature_table(res).set_index("source")
    assert list(ft.columns) == list(P.FEATURES)
    src = res.sources.set_index("name")
    assert ft.loc["bm25", "signal"] == src.loc["bm25", "signal"]
    bm = res.pairs[res.pairs["source"] == "bm25"]
    assert ft.loc["bm25", "fn_mean"] == pytest.approx(bm["fn_score"].mean(), rel=1e-12)
    assert ft.loc["random", "signal"] < ft.loc["bm25", "signal"]


def test_predicted_values_only_under_the_encoder_and_settings_it_was_fitted_for(monkeypatch):
    """A prediction needs features that mean what they meant in the fit: other encoder or other
    ECI settings → no numbers and a line saying why; otherwise one number per source."""
    from eci_core.config import ECIConfig

    feats = pd.DataFrame({"source": ["a", "b"], **{f: [0.1, 0.3] for f in P.FEATURES}})
    res = SimpleNamespace(encoder="enc-A", config=ECIConfig(), sources=None, pairs=None)
    held_out = [
        {"dataset": "x", "resolved_pairs": 10, "decided_right": 9.0, "spearman": 0.8},
        {"dataset": "y", "resolved_pairs": 10, "decided_right": 8.0, "spearman": 0.9},
    ]
    model = P.Predictor(
        features=list(P.FEATURES),
        coef=[0.01] * 6,
        mean=[0.2] * 6,
        scale=[0.1] * 6,
        intercept=0.02,
        alpha=1.0,
        datasets=["x", "y"],
        encoder="enc-A",
        settings=P.settings_of(ECIConfig()),
        reliability=held_out,
    )
    monkeypatch.setattr(P, "feature_table", lambda r: feats)
    pred, line = P.predicted_values(res, model)
    # z = (0.1 - 0.2) / 0.1 = -1 and +1 for every feature: 0.02 ∓ 6 · 0.01
    assert pred["predicted_gain"].tolist() == pytest.approx([-0.04, 0.08], rel=1e-12)
    assert (
        "it ordered 85% of 20 source pairs that fine-tuning resolved the same way (mean Spearman ρ +0.85)"
        in line
    )
    # below the bar on held-out datasets (80 % of resolved pairs, ρ ≥ 0.7): no numbers, and why
    for right, rho in ((7.0, 0.9), (9.0, 0.5)):
        model.reliability = [dict(r, decided_right=right, spearman=rho) for r in held_out]
        none, why = P.predicted_values(res, model)
        assert none is None and "below the 80% of resolved pairs and ρ ≥ 0.7" in why
    model.reliability = []
    none, why = P.predicted_values(res, model)
    assert none is None and "not validated" in why
    model.reliability = held_out
    other = SimpleNamespace(encoder="enc-B", config=ECIConfig(), sources=None, pairs=None)
    none, why = P.predicted_values(other, model)
    assert none is None and "enc-B" in why
    mean_pos = SimpleNamespace(encoder="enc-A", config=ECIConfig(positive="mean"), sources=None, pairs=None)
    none, why = P.predicted_values(mean_pos, model)
    assert none is None and "positive" in why


def test_the_shipped_predictor_is_what_its_script_fits(tmp_path):
    """bench/fit_predictor.py fit, run on the shipped tables, writes the shipped model (floats to
    1e-9 relative: a 6×6 ridge solve in float64, summation order only)."""
    shipped = P.load()
    if shipped is None:
        pytest.fail("eci_core/validation/predictor.json is missing: run `python bench/fit_predictor.py fit`")
    out = tmp_path / "p.json"
    subprocess.run(
        [sys.executable, str(ROOT / "bench" / "fit_predictor.py"), "fit", "--out", str(out)],
        check=True,
        capture_output=True,
        cwd=ROOT,
    )
    got, want = json.loads(out.read_text()), json.loads(P.SHIPPED.read_text())
    assert got["features"] == want["features"] and got["datasets"] == want["datasets"]
    for k in ("coef", "mean", "scale"):
        np.testing.assert_allclose(got[k], want[k], rtol=1e-9, atol=1e-15, err_msg=k)
    assert [r["dataset"] for r in got["reliability"]] == [r["dataset"] for r in want["reliability"]]
    for a, b in zip(got["reliability"], want["reliability"]):
        assert (a["resolved_pairs"], a["decided_right"], a["top1"]) == (
            b["resolved_pairs"],
            b["decided_right"],
            b["top1"],
        )
    assert (
        got["encoder"] == want["encoder"] == "all-MiniLM-L6-v2 (bundled)"
        and got["settings"] == want["settings"]
    )
