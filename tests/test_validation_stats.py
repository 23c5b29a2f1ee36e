"""Effect size first, honest statistics (issue 15, item 4): the joint bootstrap over test
queries and seeds, resolved pairs and tied sources, the power line, and results saved before
the joint bootstrap.

Float tolerances: the vectorised correlations are sums of at most a few hundred ranks or signs
in float64, so they match scipy to a few ulps (bound 1e-12); bootstrap probabilities estimated
from B resamples have a standard error ≤ √(0.25 / B) (0.011 at B = 2000), so hand-computed
probabilities are checked within 0.05 (> 4 standard errors); the power formula uses
z_0.975 = 1.959964 and z_0.8 = 0.841621 as printed to 6 decimals, i.e. (z + z)² = 7.848878 to
a relative 1e-6.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import eci_core  # noqa: F401
from eci_core.validation import IN_BATCH, UNTRAINED, load_results
from eci_core.validation.analysis import (
    agreement_table,
    effect_size,
    has_joint_intervals,
    joint_bootstrap,
    queries_needed,
    rank_agreement,
    row_correlations,
    seeds_needed,
    variance_components,
)

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "sample_data" / "pyfaq" / "validation"
#: the sample's linear-both validation as shipped until 2026-12-07, saved before the joint bootstrap
BEFORE_JOINT = ROOT / "tests" / "fixtures" / "validation_before_joint"
K = (1.959964 + 0.841621) ** 2  # (z_0.975 + z_0.8)², by hand: 2.801585² = 7.848878


def _table(values: dict[str, np.ndarray], split: str = "fold 1/1") -> pd.DataFrame:
    """per_query rows from {variant: (queries × seeds) nDCG@10}."""
    rows = []
    for v, m in values.items():
        m = np.asarray(m, dtype=float)
        for q in range(m.shape[0]):
            for s in range(m.shape[1]):
                rows.append(
                    {
                        "variant": v,
                        "split": split,
                        "seed": s,
                        "query_id": f"q{q}",
                        "ndcg@10": m[q, s],
                        "recall@10": m[q, s],
                        "mrr@10": m[q, s],
                    }
                )
    return pd.DataFrame(rows)


def _downstream(per_query: pd.DataFrame, sources: list[str]) -> pd.DataFrame:
    means = per_query.groupby("variant")["ndcg@10"].mean()
    return pd.DataFrame({"variant": sources, "kind": "source", "ndcg@10": [means[s] for s in sources]})


# ----------------------------------------------------------------------------- joint bootstrap
def test_joint_bootstrap_means_are_query_and_seed_weighted_means():
    """One resample by hand: the counts W (queries) and C (seeds) give Σ W_q Σ C_s Y / (S·Q)."""
    from eci_core.metrics.bootstrap import resample_counts

    rng = np.random.default_rng(1)
    vals = {v: rng.random((5, 3)) for v in ("a", "b")}
    jb = joint_bootstrap(_table(vals), ["a", "b"], n_bootstrap=40, seed=3)
    w = resample_counts(5, 40, 3)
    assert jb.point == pytest.approx([vals["a"].mean(), vals["b"].mean()], abs=1e-12)
    # every resampled mean is a convex combination of the per-(query, seed) values
    for v_i, v in enumerate(("a", "b")):
        assert np.all(jb.means[:, v_i] >= vals[v].min() - 1e-12) and np.all(
            jb.means[:, v_i] <= vals[v].max() + 1e-12
        )
    # with one seed per split the seed draw is trivial: the query resample alone
    one = {v: m[:, :1] for v, m in vals.items()}
    jb1 = joint_bootstrap(_table(one), ["a", "b"], n_bootstrap=40, seed=3)
    np.testing.assert_allclose(jb1.means, w @ np.hstack([one["a"], one["b"]]) / 5, atol=1e-12)
    assert not jb1.seeds_resampled and jb.seeds_resampled and jb.n_seeds == {"fold 1/1": 3}


def test_row_correlations_equal_scipy_with_ties():
    from scipy import stats

    rng = np.random.default_rng(0)
    xs = rng.integers(0, 4, (30, 9)).astype(float)  # many ties in both
    ys = rng.integers(0, 4, (30, 9)).astype(float)
    sp, kt = row_correlations(xs, ys)
    for r in range(30):
        if np.ptp(xs[r]) == 0 or np.ptp(ys[r]) == 0:
            assert np.isnan(sp[r]) and np.isnan(kt[r])
            continue
        assert sp[r] == pytest.approx(stats.spearmanr(xs[r], ys[r]).statistic, abs=1e-12)
        assert kt[r] == pytest.approx(stats.kendalltau(xs[r], ys[r]).statistic, abs=1e-12)


def test_joint_interval_is_wider_than_sources_only_when_ndcgs_overlap():
    """Twelve sources, a pre-training number x that orders their observed means perfectly, and
    per-query noise (sd 0.15, independent per source) far above the spacing of the means (0.002):
    resampling sources treats the means as exact and gives ρ = 1 in every resample; re-measuring
    the sources on resampled test queries and seeds re-ranks them and ρ spreads widely."""
    rng = np.random.default_rng(0)
    n_src, n_q, n_s = 12, 40, 3
    sources = [f"s{i}" for i in range(n_src)]
    vals = {}
    for i, s in enumerate(sources):
        noise = rng.normal(0, 0.15, (n_q, n_s))
        vals[s] = 0.5 + 0.002 * i + noise - noise.mean()  # observed mean exactly 0.5 + 0.002 i
    vals[UNTRAINED] = np.full((n_q, n_s), 0.4)
    vals[IN_BATCH] = np.full((n_q, n_s), 0.45)
    pq = _table(vals)
    down = _downstream(pq, sources)
    pre = pd.DataFrame({"name": sources, "eci": np.arange(n_src, dtype=float)})
    a = agreement_table(pre, down, n_bootstrap=500, seed=0, per_query=pq).set_index("number").loc["ECI"]
    assert a["spearman"] == pytest.approx(1.0)
    assert (a["spearman_src_low"], a["spearman_src_high"]) == (pytest.approx(1.0), pytest.approx(1.0))
    assert a["spearman_high"] - a["spearman_low"] > 0.5  # the joint interval spreads
    assert a["spearman_low"] < 0.5 and a["kendall_low"] < a["kendall_src_low"]
    assert has_joint_intervals(pd.DataFrame([a]))
    # the same sources with negligible noise: the joint interval collapses to ρ = 1 too
    quiet = {s: 0.5 + 0.01 * i + rng.normal(0, 1e-5, (n_q, n_s)) for i, s in enumerate(sources)}
    pq2 = _table(quiet)
    b = agreement_table(pre, _downstream(pq2, sources), n_bootstrap=200, seed=0, per_query=pq2).iloc[0]
    assert b["spearman_low"] == pytest.approx(1.0) and b["spearman_high"] == pytest.approx(1.0)
    # without the per-query table: the sources-only interval, as before
    c = agreement_table(pre, down, n_bootstrap=500, seed=0).iloc[0]
    assert not has_joint_intervals(agreement_table(pre, down, n_bootstrap=50, seed=0))
    assert c["spearman_low"] == pytest.approx(a["spearman_src_low"]) and c["spearman_high"] == pytest.approx(
        a["spearman_src_high"]
    )


def test_sources_only_intervals_are_the_draws_of_the_loop_they_replace():
    """The vectorised sources-only bootstrap draws the same resamples as one
    ``rng.integers(0, n, n)`` per resample and gives scipy's ρ, τ on each."""
    from scipy import stats

    x = np.array([0.1, 0.4, 0.35, 0.8, 0.6, 0.2, 0.5])
    y = np.array([0.70, 0.72, 0.75, 0.71, 0.74, 0.69, 0.73])
    rng = np.random.default_rng(5)
    sp, kt = [], []
    for _ in range(300):
        idx = rng.integers(0, x.size, x.size)
        if np.ptp(x[idx]) and np.ptp(y[idx]):
            sp.append(stats.spearmanr(x[idx], y[idx]).statistic)
            kt.append(stats.kendalltau(x[idx], y[idx]).statistic)
    r = rank_agreement(x, y, n_bootstrap=300, seed=5)
    assert (r["spearman_low"], r["spearman_high"]) == pytest.approx(
        tuple(np.quantile(sp, [0.025, 0.975])), abs=1e-12
    )
    assert (r["kendall_low"], r["kendall_high"]) == pytest.approx(
        tuple(np.quantile(kt, [0.025, 0.975])), abs=1e-12
    )


# ----------------------------------------------------------------------------- resolved pairs, ties
def test_resolved_pairs_and_rank_ranges_are_hand_checked():
    """Four test queries, two seeds (identical, so only queries matter), four sources:
    a = base + 0.2; b = c = base; d = base + [−0.1, 0.4, 0.4, 0.4] (mean base + 0.275).
    With k = draws of query 1 among 4 (Binomial(4, ¼): P(k=0..4) = 81, 108, 54, 12, 1 / 256),
    and no resample exactly tied:
    * a − b = 0.2 on every query: P(a > b) = 1, resolved; likewise a − c;
    * b, c identical: every resample ties, P = ½, unresolved;
    * a − d = [0.3, −0.2, −0.2, −0.2]: the resampled sum 0.5k − 0.8 > 0 iff k ≥ 2:
      P(a > d) = (54 + 12 + 1) / 256 = 0.2617, unresolved;
    * d − b = [−0.1, 0.4, 0.4, 0.4]: 1.6 − 0.5k > 0 unless k = 4: P(d > b) = 255/256 = 0.9961,
      resolved; d − c too.
    So 4 of 6 pairs are resolved; d and a may be best (ranks 1–2), b and c rank 3–4, tied."""
    base = np.array([0.3, 0.5, 0.6, 0.4])
    a = base + 0.2
    d = base + np.array([-0.1, 0.4, 0.4, 0.4])
    vals = {UNTRAINED: base - 0.1, IN_BATCH: base, "a": a, "b": base, "c": base.copy(), "d": d}
    pq = _table({k: np.column_stack([v, v]) for k, v in vals.items()})
    e = effect_size(pq, ["a", "b", "c", "d"], n_bootstrap=2000, seed=0)
    p = e.beats
    assert p.loc["a", "b"] == 1.0 and p.loc["a", "c"] == 1.0
    assert p.loc["b", "c"] == 0.5
    assert p.loc["a", "d"] == pytest.approx(0.2617, abs=0.05)
    assert p.loc["d", "b"] == pytest.approx(0.9961, abs=0.01) and p.loc["d", "b"] >= 0.95
    s = e.summary
    assert (s["n_resolved"], s["n_pairs"]) == (4, 6)
    assert set(s["tied_first"]) == {"a", "d"}
    t = e.table.set_index("variant")
    assert t.loc["a", "rank"] == t.loc["d", "rank"] == "1–2"
    assert t.loc["b", "rank"] == t.loc["c", "rank"] == "3–4"
    assert t.loc["b", "tied_with"] == "c" and t.loc["a", "tied_with"] == "d" and t.loc["a", "n_tied"] == 1
    # effect sizes: a − in-batch = +0.2 exactly on every query; in-batch − untrained = +0.1
    assert t.loc["a", "vs_in_batch"] == pytest.approx(0.2) and t.loc["a", "vs_in_batch_low"] == pytest.approx(
        0.2
    )
    assert t.loc["b", "vs_untrained"] == pytest.approx(0.1)
    assert s["in_batch_vs_untrained"] == pytest.approx(0.1)
    assert (
        s["spread"] == pytest.approx(0.275)
        and s["best"] == "d"
        and s["best_ndcg@10"] == pytest.approx(d.mean())
    )


def test_more_seeds_are_resampled_per_split():
    """Seeds are runs of one split: two splits, each with 2 seeds whose source difference flips
    sign between seeds (+0.1 / −0.1, the same on every query). The query bootstrap alone
    would see a difference of exactly 0 on every query; the seed draw makes it vary."""
    rows = []
    for split in ("fold 1/2", "fold 2/2"):
        pq = _table(
            {"a": np.tile([0.6, 0.4], (3, 1)), "b": np.full((3, 2), 0.5), IN_BATCH: np.full((3, 2), 0.5)},
            split,
        )
        pq["query_id"] = split[5] + pq["query_id"]
        rows.append(pq)
    pq = pd.concat(rows, ignore_index=True)
    jb = joint_bootstrap(pq, ["a", "b"], n_bootstrap=400, seed=0)
    diff = jb.means[:, 0] - jb.means[:, 1]
    assert jb.point[0] - jb.point[1] == pytest.approx(0.0, abs=1e-12)
    # a split whose two seed draws are both the +0.1 seed (probability ¼ each split, both
    # splits 1/16) gives +0.1 overall, both −0.1 gives −0.1: over 400 resamples the range is 0.2
    assert np.ptp(diff) > 0.15 and np.all(np.abs(diff) <= 0.1 + 1e-12)
    comp = variance_components(jb.cubes, [(0, 1)])
    # d = ±0.1 by seed, the same on every query: all variance is the run (seed) effect:
    # per split SS_s = Q Σ_s (±0.1)² = 3 · 0.02 = 0.06; pooled 0.12 over Σ(S−1)Q = 6 -> σ_s² = 0.02
    # (the ddof-1 variance of ±0.1)
    assert comp["seed"][0] == pytest.approx(0.02) and comp["query"][0] == pytest.approx(0.0)
    assert comp["residual"][0] == pytest.approx(0.0, abs=1e-15)


# ----------------------------------------------------------------------------- power
def test_variance_components_are_hand_checked():
    """d = a − b on 2 queries × 2 seeds (one split).
    [[0, .02], [.04, .06]]: row means .01, .05, column means .02, .04, grand .03, additive (no
    residual): SS_q = 2(.02² + .02²) = .0016 over (Q−1)S = 2 -> σ_q² = .0008;
    SS_s = 2(.01² + .01²) = .0004 over (S−1)Q = 2 -> σ_s² = .0002; σ_e² = 0.
    [[0, .04], [.04, 0]]: equal margins, residuals ±.02: σ_e² = 4 · .02² / 1 = .0016, and
    σ_q², σ_s² = (0 − .0016)/2 < 0, clipped to 0."""
    b = np.zeros((2, 2))
    for d, want in (
        ([[0, 0.02], [0.04, 0.06]], (0.0008, 0.0002, 0.0)),
        ([[0, 0.04], [0.04, 0]], (0.0, 0.0, 0.0016)),
    ):
        cube = np.stack([b + np.asarray(d), b], axis=2)  # (Q, S, V=2): a, b
        c = variance_components({"fold 1/1": cube})
        assert (c["query"][0], c["seed"][0], c["residual"][0]) == pytest.approx(want, abs=1e-15)
    one_seed = variance_components(
        {"fold 1/1": np.stack([np.array([[0.0], [0.04]]), np.zeros((2, 1))], axis=2)}
    )
    assert one_seed["query"][0] == pytest.approx(0.0008) and np.isnan(one_seed["seed"][0])


def test_power_formula_is_hand_checked():
    # textbook case: no seed noise, n = (z + z)² σ² / δ² = 7.848878 · 0.01 / 0.0001 = 784.89 -> 785 queries
    assert queries_needed(0.01, 0.0, 0.0, n_seeds=1, delta=0.01) == pytest.approx(784.8878, rel=1e-6)
    # the interaction term shrinks with seeds: σ² = 0.001 + 0.004 / 4 = 0.002 -> 7.848878 · 20 = 156.98
    assert queries_needed(0.001, 0.0, 0.004, n_seeds=4, delta=0.01) == pytest.approx(156.9776, rel=1e-6)
    # seed noise σ_s² = 0.0002 eats the budget δ² = 0.0001 below 16 seeds: 7.848878 · 0.0002 / 0.0001 = 15.70
    assert math.isinf(queries_needed(0.0008, 0.0002, 0.0, n_seeds=2, delta=0.01))
    assert seeds_needed(0.0002, delta=0.01) == 16 and seeds_needed(0.0, delta=0.01) == 1
    # at 100 seeds: 7.848878 · 0.0008 / (0.0001 − 7.848878 · 0.0002 / 100) = 0.0062791 / 0.0000843022 = 74.484
    assert queries_needed(0.0008, 0.0002, 0.0, n_seeds=100, delta=0.01) == pytest.approx(74.484, rel=1e-4)
    # k-fold: 5 splits of 20 seeds each average 100 runs: the same seed term
    assert queries_needed(0.0008, 0.0002, 0.0, n_seeds=20, n_splits=5, delta=0.01) == pytest.approx(
        74.484, rel=1e-4
    )
    with pytest.raises(ValueError, match="delta"):
        queries_needed(0.01, 0.0, 0.0, 1, delta=0.0)


# ----------------------------------------------------------------------------- saved results
def test_results_saved_before_the_joint_bootstrap_load_with_joint_intervals():
    """Validations saved with sources-only intervals (the shipped one-fold fine-tune and the old
    linear-both fixture) reopen with the joint intervals recomputed from their per-query tables;
    the saved intervals come back exactly as the sources-only columns (same draws)."""
    for name, d in (("linear-both", BEFORE_JOINT), ("finetune", SHIPPED / "finetune")):
        doc = json.loads((d / "results.json").read_text())
        assert "spearman_src_low" not in doc["agreement"][0]  # saved before this change
        res = load_results(d)
        assert has_joint_intervals(res.agreement)
        saved = pd.DataFrame(doc["agreement"]).set_index("number")
        a = res.agreement.set_index("number")
        for col in ("spearman", "kendall", "pairwise_accuracy", "top1_regret"):
            np.testing.assert_allclose(
                a[col].to_numpy(float), saved.loc[a.index, col].to_numpy(float), atol=1e-12
            )
        for col in ("spearman", "kendall"):
            for end in ("low", "high"):
                np.testing.assert_allclose(
                    a[f"{col}_src_{end}"].to_numpy(float),
                    saved.loc[a.index, f"{col}_{end}"].to_numpy(float),
                    atol=1e-12,
                )
        e = res.effect
        assert e is not None and e.summary["n_pairs"] == len(res.sources) * (len(res.sources) - 1) // 2
        assert 0 <= e.summary["n_resolved"] <= e.summary["n_pairs"] and e.summary["tied_first"]
        assert (
            res.summary().startswith(f"Validation ({name} trainer")
            and "source pairs are resolved" in res.summary()
        )
        notes = res.notes()
        assert notes[0].startswith("How far apart the sources train") and any(
            n.startswith("Power:") for n in notes
        )
    # one seed: the power line says its seed variance is not measured
    assert any(
        "not measured and this is a lower bound" in n for n in load_results(SHIPPED / "finetune").notes()
    )


def test_results_without_a_per_query_table_still_load(tmp_path):
    d = tmp_path / "linear-both"
    d.mkdir()
    shutil.copy(BEFORE_JOINT / "results.json", d / "results.json")
    res = load_results(d)
    assert res.effect is None and not has_joint_intervals(res.agreement)
    doc = json.loads((d / "results.json").read_text())
    assert res.agreement["spearman_low"].tolist() == pytest.approx(
        [r["spearman_low"] for r in doc["agreement"]]
    )
    assert "sources resampled" in res.summary() and res.notes()
    # a per-query table without the needed columns: the saved numbers are kept
    pd.DataFrame({"variant": ["a"], "query_id": ["q"]}).to_csv(d / "per_query.csv", index=False)
    res = load_results(d)
    assert res.effect is None and not has_joint_intervals(res.agreement)


def test_effect_is_saved_and_reopened(tmp_path):
    res = load_results(SHIPPED / "linear-both")
    out = res.save(tmp_path / "lb")
    doc = json.loads((out / "results.json").read_text())
    assert doc["effect"]["summary"]["n_resolved"] == res.effect.summary["n_resolved"]
    assert doc["summary"] == res.summary()
    back = load_results(out)
    pd.testing.assert_frame_equal(back.effect.table, res.effect.table)
    pd.testing.assert_frame_equal(back.agreement, res.agreement, check_dtype=False)
    assert (out / "effect.csv").is_file()
