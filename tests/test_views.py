"""Data shaping and figure builders of the eci_core.explore page modules (numbers checked by hand)."""

import math

import numpy as np
import pandas as pd
import pytest

from eci_core.explore import (
    cleaning,
    common,
    compare,
    drilldown,
    margins,
    memo,
    overview,
    projection,
    review,
    signal_safety,
    warm,
)
from eci_core.config import ECIConfig
from eci_core.io.collection import Collection
from eci_core.io.records import PassageRef as P
from eci_core.io.records import QueryRecord


# --------------------------------------------------------------------------- hand-made tables
def _pairs():
    # source a: q1 (s_qp .8; s_qn .6 .5 .3), q2 (s_qp .5; s_qn .55)
    # source b: q1 (s_qp .8; s_qn .2)
    rows = [
        ("a", "q1", "n1", 1, 0.60, 0.80, False, False, False, True, ""),
        ("a", "q1", "n2", 2, 0.50, 0.80, False, False, False, False, ""),
        ("a", "q1", "n3", 3, 0.30, 0.80, False, True, False, False, "near_duplicate"),
        ("a", "q2", "n4", 1, 0.55, 0.50, True, True, False, True, "unsafe,near_duplicate"),
        ("b", "q1", "n5", 1, 0.20, 0.80, False, False, True, False, "cross_encoder"),
    ]
    df = pd.DataFrame(
        rows,
        columns=[
            "source",
            "query_id",
            "passage_id",
            "rank",
            "s_qn",
            "s_qp",
            "unsafe",
            "near_duplicate",
            "cross_encoder",
            "percpos",
            "flag_reasons",
        ],
    )
    df["margin"] = df["s_qp"] - df["s_qn"]
    df["flagged"] = df["unsafe"] | df["near_duplicate"] | df["cross_encoder"]
    df["s_pn"] = [0.5, 0.4, 0.96, 0.97, 0.1]
    df["lex_overlap"] = [0.5, 0.2, 0.9, 1.0, 0.0]
    df["ce_margin"] = np.nan
    return df


def _sources():
    return pd.DataFrame(
        {
            "name": ["b", "a"],
            "eci": [0.40, 0.388162],
            "eci_low": [0.30, 0.35],
            "eci_high": [0.45, 0.42],
            "unsafe_query_rate": [0.0, 0.5],
            "signal": [0.2, 0.4],
            "safety": [0.6, 0.1],
        }
    )


def _queries():
    return pd.DataFrame(
        {
            "source": ["a", "a", "b", "b"],
            "query_id": ["q1", "q2", "q1", "q3"],
            "K": [3, 1, 1, 2],
            "S": [0.466667, 0.55, 0.2, 0.1],
            "delta": [0.2, 0.0, 0.6, 0.3],
            "eci": [0.388162, 0.0, 0.2, 0.25],
        }
    )


class _Result:
    def __init__(self):
        self.pairs, self.queries, self.sources = _pairs(), _queries(), _sources()
        self.beats = pd.DataFrame([[0.0, 0.7], [0.3, 0.0]], index=["b", "a"], columns=["b", "a"])
        self.encoder = "hashing-256"
        self.config = ECIConfig()


# --------------------------------------------------------------------------- summary
def test_score_summary_matches_sentence_transformers_table():
    t = overview.score_summary(_pairs(), "a")
    assert list(t.index) == list(common.SUMMARY_STATS)
    # Positive: one s_qp per query: [0.8, 0.5]
    assert t.loc["count", "Positive"] == 2
    assert t.loc["mean", "Positive"] == pytest.approx(0.65)
    assert t.loc["median", "Positive"] == pytest.approx(0.5)  # torch.median: lower middle value
    assert t.loc["50%", "Positive"] == pytest.approx(0.65)  # torch.quantile: interpolated
    assert t.loc["std", "Positive"] == pytest.approx(np.std([0.8, 0.5], ddof=1))
    # Negative: [0.6, 0.5, 0.3, 0.55]
    assert t.loc["count", "Negative"] == 4
    assert t.loc["mean", "Negative"] == pytest.approx(0.4875)
    assert t.loc["median", "Negative"] == pytest.approx(0.5)
    assert t.loc["25%", "Negative"] == pytest.approx(0.45)
    assert t.loc["min", "Negative"] == pytest.approx(0.3)
    assert t.loc["max", "Negative"] == pytest.approx(0.6)
    # Difference: margins [0.2, 0.3, 0.5, -0.05], count left blank as the miner prints it
    assert math.isnan(t.loc["count", "Difference"])
    assert t.loc["mean", "Difference"] == pytest.approx(0.2375)
    assert t.loc["min", "Difference"] == pytest.approx(-0.05)


def test_summary_table_stacks_sources_in_ranking_order():
    st = overview.summary_table(_Result())
    assert st["source"].drop_duplicates().tolist() == ["b", "a"]
    assert len(st) == 18
    b = st[st["source"] == "b"].set_index("metric")
    assert b.loc["count", "Negative"] == 1 and math.isnan(b.loc["std", "Negative"])


def test_components_table_keeps_values_and_ranks():
    t = overview.components_table(_Result())
    assert t["rank"].tolist() == [1, 2] and t["name"].tolist() == ["b", "a"]
    assert t.loc[1, "eci"] == 0.388162


# --------------------------------------------------------------------------- flags
def test_flag_counts_and_union():
    f = margins.flag_counts(_pairs()).set_index("source")
    assert f.loc["a", "n_negatives"] == 4
    assert (
        f.loc["a", "unsafe"] == 1 and f.loc["a", "near_duplicate"] == 2 and f.loc["a", "cross_encoder"] == 0
    )
    assert f.loc["a", "flagged"] == 2  # n3 and n4 (n4 caught by two rules)
    assert f.loc["a", "percpos"] == 2 and f.loc["a", "kept"] == 2
    assert f.loc["b", "flagged"] == 1 and f.loc["b", "flagged_share"] == 1.0


def test_flag_funnel_steps_sum_to_union():
    f = margins.flag_funnel(_pairs(), "a").set_index("stage")
    assert f.loc["all negatives", "caught"] == 4
    assert (
        f.loc["unsafe", "caught"] == 1 and f.loc["unsafe", "new"] == 1 and f.loc["unsafe", "remaining"] == 3
    )
    assert f.loc["near_duplicate", "caught"] == 2 and f.loc["near_duplicate", "new"] == 1
    assert f.loc["cross_encoder", "new"] == 0
    assert f.loc[list(common.FLAG_RULES), "new"].sum() == f.loc["flagged (any rule)", "caught"] == 2
    assert f.loc["kept", "caught"] == 2
    with pytest.raises(ValueError, match="unknown source 'zz'"):
        margins.flag_funnel(_pairs(), "zz")


# --------------------------------------------------------------------------- grids, ECDF, band
def test_de_grid_is_the_harmonic_mean():
    s, d, z = signal_safety.de_grid(1.0, 0.5, n=11)
    assert z.shape == (11, 11)
    # z[i, j] = DE(s[j], d[i]); reference: S = 0.466667 is not on the grid, use S=0.4, Δ=0.2
    j, i = 4, 4  # s[4] = 0.4, d[4] = 0.2
    assert s[j] == pytest.approx(0.4) and d[i] == pytest.approx(0.2)
    assert z[i, j] == pytest.approx(2 * 0.4 * 0.2 / 0.6)
    assert z[0, 0] == 0.0  # S + Δ = 0
    with pytest.raises(ValueError, match="n=1"):
        signal_safety.de_grid(n=1)


def test_ecdf_and_frame():
    x, y = common.ecdf([0.3, np.nan, -0.1, 0.2])
    assert x.tolist() == [-0.1, 0.2, 0.3]
    assert y.tolist() == pytest.approx([1 / 3, 2 / 3, 1.0])
    f = margins.ecdf_frame(_pairs(), "margin", ["b"])
    assert f["source"].tolist() == ["b"] and f["y"].tolist() == [1.0]


def test_percpos_band():
    b = margins.percpos_band(_pairs(), 0.95).set_index("source")
    # source a: median s_qp over pairs [.8,.8,.8,.5] = 0.8 → high = 0.05 * 0.8
    assert b.loc["a", "high"] == pytest.approx(0.04)
    # band 0 < margin < 0.05·s_qp: margins .2,.3,.5,-.05 → none inside
    assert b.loc["a", "share"] == 0.0
    with pytest.raises(ValueError, match="percpos=1.5"):
        margins.percpos_band(_pairs(), 1.5)


# --------------------------------------------------------------------------- verdict
def test_verdict_names_best_source_ci_and_unsafe_rate():
    v = overview.eci_ranking_line(_Result())
    # ECI alone never says "Train on": it states the ranking and points to the Validation page
    assert v.startswith("ECI ranks b first (0.400, 95 % CI 0.300–0.450), 0.0 % unsafe queries.")
    assert "Train on" not in v
    # intervals overlap, so the pairwise probability is added
    assert "P(beats a) = 0.70" in v
    # b wins with the lowest Signal: the verdict says its negatives are the easiest
    assert (
        "Note: its negatives are the easiest here (Signal 0.200, lowest of 2 sources); "
        "it leads on Safety (Δ 0.600)."
    ) in v
    assert v.endswith("check on the Validation page which source actually trains best on this data.")
    assert overview.eci_ranking_line(_sources().iloc[[1]]).startswith(
        "One source: a, ECI 0.388, 95 % CI 0.350–0.420, 50.0 % unsafe queries."
    )
    assert "No source" in overview.eci_ranking_line(_sources().iloc[0:0])
    assert "No source" in overview.verdict(_sources().iloc[0:0])
    # the Overview's headline without a validation: no ECI leader, no recommendation
    h = overview.verdict(_Result())
    assert h.startswith("No validated ranking exists for this data.") and "ECI ranks" not in h


# --------------------------------------------------------------------------- compare, worst
def test_compare_sources_on_shared_queries():
    c = compare.compare_sources(_queries(), "a", "b", n_top=1)
    assert c.n_shared == 1 and c.only_a == 1 and c.only_b == 1
    assert c.per_query["query_id"].tolist() == ["q1"]
    assert c.per_query["diff"].iloc[0] == pytest.approx(0.388162 - 0.2)
    assert c.a_wins == 1 and c.b_wins == 0
    assert "1 shared queries: a − b = +0.188" in c.summary()
    with pytest.raises(ValueError, match="b='zz'"):
        compare.compare_sources(_queries(), "a", "zz")


def test_compare_sorts_by_absolute_difference():
    q = pd.DataFrame(
        {
            "source": ["a"] * 3 + ["b"] * 3,
            "query_id": ["x", "y", "z"] * 2,
            "eci": [0.1, 0.5, 0.2, 0.15, 0.1, 0.9],
        }
    )
    c = compare.compare_sources(q, "a", "b", n_top=2)
    assert c.per_query["query_id"].tolist() == ["z", "y", "x"]
    assert c.top["query_id"].tolist() == ["z", "y"]
    assert (c.a_wins, c.b_wins, c.ties) == (1, 2, 0)


def test_worst_query():
    assert drilldown.worst_query(_queries(), "a") == "q2"
    assert drilldown.worst_query(_queries(), "b") == "q1"
    w = drilldown.worst_queries(_queries())
    # mean ECI per query: q1 (0.388162+0.2)/2, q2 0.0, q3 0.25
    assert w["query_id"].tolist() == ["q2", "q3", "q1"]
    assert w.loc[2, "eci"] == pytest.approx(0.294081)


# --------------------------------------------------------------------------- drill-down
def _collection():
    c = Collection()
    recs = [
        QueryRecord(
            "q1",
            "how to sort a list",
            [P("p1", "Use sorted() to sort a list in Python")],
            [P("n1", "sort the list with list.sort"), P("n2", "unrelated words here")],
        )
    ]
    c.add_source("a", recs)
    return c


def test_shared_words_uses_lexical_tokenizer():
    assert drilldown.shared_words("Sort the LIST, then sort again", "use sorted() to sort a list") == [
        "sort",
        "list",
    ]
    assert drilldown.shared_words("abc", ["x abc", "y"]) == ["abc"]


def test_highlight_html_marks_shared_words_and_escapes():
    h = drilldown.highlight_html("Sort <the> LIST & sort", ["sort", "list"])
    assert h == "<mark>Sort</mark> &lt;the&gt; <mark>LIST</mark> &amp; <mark>sort</mark>"
    assert drilldown.highlight_html("abc", []) == "abc"


def test_signal_safety_frame_with_query_texts():
    c = _collection()
    q = pd.DataFrame({"source": ["a"], "query_id": ["q1"], "S": [0.1], "delta": [0.2]})
    f = signal_safety.signal_safety_frame(q, collection=c)
    assert f[["row_id", "query"]].values.tolist() == [[0, "how to sort a list"]]


def test_query_drilldown_ranks_by_similarity_and_highlights():
    c = _collection()
    pairs = pd.DataFrame(
        {
            "source": ["a", "a"],
            "query_id": ["q1", "q1"],
            "passage_id": ["n1", "n2"],
            "rank": [1, 2],
            "s_qn": [0.3, 0.7],
            "s_qp": [0.8, 0.8],
            "margin": [0.5, 0.1],
            "s_pn": [0.6, 0.1],
            "lex_overlap": [0.7, 0.0],
            "ce_margin": [np.nan, np.nan],
            "flagged": [False, False],
            "flag_reasons": ["", ""],
            "percpos": [False, False],
        }
    )
    queries = pd.DataFrame({"source": ["a"], "query_id": ["q1"], "eci": [0.1]})
    r = type("R", (), {"pairs": pairs, "queries": queries})()
    d = drilldown.query_drilldown(c, r, "q1")
    assert d.query == "how to sort a list" and d.positive_ids == ["p1"]
    assert d.negatives["passage_id"].tolist() == ["n2", "n1"]  # by s_qn descending
    assert d.negatives["rank_by_sim"].tolist() == [1, 2]
    assert d.negatives.loc[1, "shared_words"] == ["sort", "list"]
    assert d.negatives.loc[0, "shared_words"] == []
    assert len(d.metrics) == 1
    with pytest.raises(ValueError, match="query_id='nope'"):
        drilldown.query_drilldown(c, r, "nope")


# --------------------------------------------------------------------------- figures
def test_figures_build_and_carry_row_ids():
    pytest.importorskip("plotly")
    r = _Result()
    fig = overview.overview_figure(r)
    assert list(fig.data[0].y) == ["a", "b"]  # best on top of a horizontal chart
    assert list(fig.data[0].error_x.array) == pytest.approx([0.42 - 0.388162, 0.05])
    h = margins.margin_histogram(r, mode="facets", ecdf_view=True)
    assert len([t for t in h.data if t.type == "scatter"]) == 2
    margins.margin_histogram(r)
    ss = signal_safety.signal_safety_figure(r)
    frame = signal_safety.signal_safety_frame(r)
    scat = [t for t in ss.data if t.type == "scattergl"]
    ids = [int(v[0]) for t in scat for v in t.customdata]
    assert sorted(ids) == frame["row_id"].tolist()
    assert any(t.type == "contour" for t in ss.data)
    bars = [t for t in ss.data if t.type == "bar"]  # S and Δ marginals per source, binned on the server
    assert len(bars) == 4
    assert sum(sum(t.y) for t in bars if t.orientation != "h") == len(frame)
    assert sum(sum(t.x) for t in bars if t.orientation == "h") == len(frame)
    hm = overview.beats_heatmap(r)
    assert np.isnan(hm.data[0].z[0][0]) and hm.data[0].z[0][1] == 0.7
    margins.flag_funnel_figure(r, "a")
    cmp = compare.compare_scatter(compare.compare_sources(_queries(), "a", "b"))
    assert any(t.name == "most disagreeing" for t in cmp.data)


def test_projection_figure_dims_unselected_points():
    pytest.importorskip("plotly")
    pts = pd.DataFrame(
        {
            "row_id": [0, 1, 2],
            "x": [0.0, 1.0, 2.0],
            "y": [0.0, 1.0, 0.5],
            "kind": ["query", "negative", "negative"],
            "source": ["(query)", "a", "a"],
            "flag": ["query", "clean", "flagged"],
            "margin": [np.nan, 0.2, -0.1],
            "text": ["q", "n", "m"],
        }
    )
    f = projection.projection_figure(pts, "margin", selected=[1])
    neg = {t.name: t for t in f.data}
    assert [int(v[0]) for v in neg["negatives (margin)"].customdata] == [1]
    assert neg["negatives (margin)"].marker.opacity == 0.9 and neg["negatives (margin)"].marker.showscale
    dim = neg["negatives (margin) (not selected)"]
    assert [int(v[0]) for v in dim.customdata] == [2] and dim.marker.opacity == 0.12
    assert (dim.marker.cmin, dim.marker.cmax) == (-0.1, 0.2)  # one colour scale for both traces
    assert neg["query / positive (not selected)"].marker.color == "#999999"
    f2 = projection.projection_figure(pts, "flag")
    assert {t.name for t in f2.data} == {"query", "clean", "flagged"}
    with pytest.raises(ValueError, match="color_by='size'"):
        projection.projection_figure(pts, "size")


# --------------------------------------------------------------------------- with the real engine
def test_views_on_a_real_score_result():
    from eci_core.models.hashing import HashingEncoder
    from eci_core.scoring import score_collection

    c = Collection()

    def recs(negs):
        return [
            QueryRecord(q, t, [P(f"p{q}", pos)], [P(None, x) for x in negs[q]])
            for q, t, pos in [
                ("q1", "how to sort a list in python", "use sorted to sort a python list"),
                ("q2", "what is a tuple", "a tuple is an immutable sequence"),
                ("q3", "how to read a file", "open the file and call read"),
            ]
            if q in negs
        ]

    c.add_source(
        "bm25",
        recs(
            {
                "q1": ["sort a list in python", "python list append"],
                "q2": ["a tuple is an immutable sequence", "what is a set"],
                "q3": ["read a csv file", "file modes"],
            }
        ),
    )
    c.add_source(
        "dense",
        recs({"q1": ["cats and dogs", "sorting algorithms"], "q2": ["strings are immutable", "a set"]}),
    )
    r = score_collection(c, HashingEncoder(), ECIConfig(n_bootstrap=50))
    st = overview.summary_table(r)
    # the Negative mean of each source is the mean of its s_qn
    for s in ("bm25", "dense"):
        row = st[(st["source"] == s) & (st["metric"] == "mean")]
        assert row["Negative"].iloc[0] == pytest.approx(r.pairs.loc[r.pairs["source"] == s, "s_qn"].mean())
    fc = margins.flag_counts(r).set_index("source")
    assert fc.loc["bm25", "flagged"] == int(r.pairs.loc[r.pairs["source"] == "bm25", "flagged"].sum())
    best = r.sources["name"].iloc[0]
    assert overview.eci_ranking_line(r).startswith(f"ECI ranks {best} first")
    d = drilldown.query_drilldown(c, r, "q2")
    nd = d.negatives[d.negatives["source"] == "bm25"]
    copy = nd[nd["text"] == "a tuple is an immutable sequence"].iloc[0]  # the positive's text as a negative
    assert copy["flagged"] and "near_duplicate" in copy["flag_reasons"]
    assert copy["shared_words"] == ["a", "tuple", "is", "an", "immutable", "sequence"]
    assert nd["s_qn"].is_monotonic_decreasing
    comp = compare.compare_sources(r, "bm25", "dense")
    assert comp.n_shared == 2 and comp.only_a == 1
    pytest.importorskip("plotly")
    signal_safety.signal_safety_figure(r)
    margins.margin_histogram(r, mode="facets")
    overview.overview_figure(r)
    overview.beats_heatmap(r)


# --------------------------------------------------------------------------- scale: binning, sampling, search
def _big_pairs(n_per_source=(3000, 1000, 10), seed=0):
    rng = np.random.default_rng(seed)
    parts = []
    for name, n in zip(("a", "b", "c"), n_per_source):
        s_qp = rng.uniform(0.3, 0.9, n)
        s_qn = rng.uniform(0.0, 0.9, n).round(2)  # ties on purpose
        parts.append(
            pd.DataFrame(
                {"source": name, "query_id": [f"q{i // 10}" for i in range(n)], "s_qp": s_qp, "s_qn": s_qn}
            )
        )
    df = pd.concat(parts, ignore_index=True)
    df["margin"] = df["s_qp"] - df["s_qn"]
    return df


def test_binned_histogram_counts_like_a_plain_loop():
    assert common.binned_histogram(
        np.array([0.0, 0.1, 0.5, 1.0, np.nan]), np.array([0.0, 0.5, 1.0])
    ).tolist() == [2, 2]
    pytest.importorskip("plotly")
    pairs = _big_pairs()
    fig = margins.margin_histogram(pairs, nbins=30)
    bars = {t.name: t for t in fig.data if t.type == "bar"}
    assert set(bars) == {"a", "b", "c"}
    lo, hi = pairs["margin"].min(), pairs["margin"].max()
    width = (hi - lo) / 30
    for name, t in bars.items():
        m = pairs.loc[pairs["source"] == name, "margin"].tolist()
        # plain counting: bin i holds lo + i·w <= m < lo + (i+1)·w, the maximum in the last bin
        plain = [0] * 30
        for v in m:
            plain[min(int((v - lo) / width), 29)] += 1
        assert sum(t.y) == len(m)
        assert list(t.y) == pytest.approx(plain, abs=1)  # a value on a bin edge may round either way
        assert len(t.x) == 30  # the figure carries 30 counts, not one value per negative


def test_ecdf_points_are_exact_and_capped():
    x = np.array([3.0, 1.0, 2.0, 2.0, np.nan])
    xs, ys = common.ecdf_points(x)
    assert xs.tolist() == [1.0, 2.0, 3.0] and ys.tolist() == [0.25, 0.75, 1.0]
    big = np.random.default_rng(1).integers(0, 500, 20000).astype(float)
    xs, ys = common.ecdf_points(big, max_points=100)
    assert len(xs) <= 101 and xs[0] == big.min() and xs[-1] == big.max()
    for xv, yv in zip(xs, ys):
        assert yv == pytest.approx(np.mean(big <= xv))  # F(x) = share of values <= x, ties included
    fig = margins.margin_histogram(_big_pairs(), ecdf_view=True)
    assert all(len(t.x) <= common.ECDF_MAX_POINTS + 1 for t in fig.data if t.type == "scatter")


def test_scatter_sample_is_stratified_capped_and_deterministic():
    frame = pd.DataFrame({"row_id": np.arange(40010), "source": ["a"] * 30000 + ["b"] * 10000 + ["c"] * 10})
    small = frame.head(100)
    assert common.scatter_sample(small, max_points=1000) is small  # under the cap: every point
    s = common.scatter_sample(frame, max_points=2000, seed=3)
    assert len(s) == 2000
    counts = s["source"].value_counts().to_dict()
    # proportional: 2000 · 30000/40010 = 1499.6, 499.9, 0.5 -> every source kept
    assert abs(counts["a"] - 1500) <= 1 and abs(counts["b"] - 500) <= 1 and counts["c"] >= 1
    assert s["row_id"].is_unique and s["row_id"].is_monotonic_increasing
    assert s["row_id"].tolist() == common.scatter_sample(frame, max_points=2000, seed=3)["row_id"].tolist()
    keep = np.zeros(len(frame), dtype=bool)
    keep[[5, 39999]] = True
    k = common.scatter_sample(frame, by=None, max_points=50, keep=keep)
    assert len(k) == 50 and {5, 39999} <= set(k["row_id"])
    assert common.sampling_note(50, 50) == ""
    assert "2,000 of 40,010" in common.sampling_note(2000, 40010)


def test_signal_safety_scatter_sends_at_most_the_cap(monkeypatch):
    pytest.importorskip("plotly")
    rng = np.random.default_rng(0)
    n = 900
    q = pd.DataFrame(
        {
            "source": ["a"] * 600 + ["b"] * 300,
            "query_id": [f"q{i}" for i in range(n)],
            "S": rng.uniform(0, 1, n),
            "delta": rng.uniform(0, 1, n),
            "eci": rng.uniform(0, 1, n),
        }
    )
    monkeypatch.setattr(common, "SCATTER_MAX_POINTS", 90)
    frame = signal_safety.signal_safety_frame(q)
    fig = signal_safety.signal_safety_figure(q, frame=frame)
    scat = [t for t in fig.data if t.type == "scattergl"]
    assert sum(len(t.x) for t in scat) == 90
    assert {t.name: len(t.x) for t in scat} == {"a": 60, "b": 30}  # in proportion to the sources
    ids = [int(v[0]) for t in scat for v in t.customdata]
    shown = frame.set_index("row_id").loc[ids]
    np.testing.assert_allclose(shown["S"].to_numpy(), np.concatenate([t.x for t in scat]))
    bars = [t for t in fig.data if t.type == "bar" and t.orientation != "h"]
    assert sum(sum(t.y) for t in bars) == n  # the marginals count every point
    _, note = signal_safety.signal_safety_sample(frame)
    assert "90 of 900" in note
    cmp = compare.compare_sources(
        pd.DataFrame(
            {
                "source": ["a"] * 300 + ["b"] * 300,
                "query_id": [f"q{i}" for i in range(300)] * 2,
                "eci": rng.uniform(0, 1, 600),
            }
        ),
        "a",
        "b",
        n_top=10,
    )
    cfig = compare.compare_scatter(cmp)
    pts = [t for t in cfig.data if t.type == "scattergl"]
    assert sum(len(t.x) for t in pts) == 90
    top = next(t for t in pts if t.name == "most disagreeing")
    assert sorted(v[0] for v in top.customdata) == sorted(cmp.top["query_id"])


def test_derived_tables_are_computed_once_per_table():
    r = _Result()
    assert signal_safety.signal_safety_frame(r, ["a", "b"]) is signal_safety.signal_safety_frame(
        r, ["a", "b"]
    )
    t = overview.score_summary(r.pairs, "a")
    t.loc["mean", "Negative"] = -1.0  # a caller changing its copy never changes the memo
    assert overview.score_summary(r.pairs, "a").loc["mean", "Negative"] == pytest.approx(0.4875)
    r.pairs["extra"] = 1  # a table grown in place is a new entry, not a stale one
    assert margins.flag_counts(r).set_index("source").loc["a", "flagged"] == 2


def test_search_queries_by_id_and_words():
    c = Collection()
    c.add_source(
        "s",
        [
            QueryRecord(qid, text, [P(f"p{qid}", "x")], [P("n", "y")])
            for qid, text in [
                ("q1", "How do I sort a list?"),
                ("q10", "Sort a dict by value"),
                ("q2", "merge two dicts"),
                ("abc", "What is q1 in statistics?"),
            ]
        ],
    )

    class R:
        queries = pd.DataFrame({"source": "s", "query_id": ["q1", "q10", "q2"], "eci": [0.1, 0.2, 0.3]})

    assert drilldown.search_queries(c, "Q1") == (["q1", "q10", "abc"], 3)  # exact id, id contains, text
    assert drilldown.search_queries(c, "q1", result=R()) == (["q1", "q10"], 2)  # only scored queries
    assert drilldown.search_queries(c, "sort A") == (["q1", "q10"], 2)  # every word, any order, any case
    assert drilldown.search_queries(c, "dict sort") == (["q10"], 1)
    assert drilldown.search_queries(c, "sort", limit=1) == (["q1"], 2)
    assert drilldown.search_queries(c, "  ") == ([], 0)
    assert drilldown.search_queries(c, "nothing like this") == ([], 0)


def test_memo_computes_once_across_threads():
    import threading
    import time

    calls = []

    def slow():
        calls.append(1)
        time.sleep(0.2)
        return object()

    owner = _pairs()
    out = []
    threads = [threading.Thread(target=lambda: out.append(memo.memo(owner, ("t",), slow))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len({id(o) for o in out}) == 1
    box_vals = [memo.memo(owner, (i,), lambda i=i: i, slot="r", size=2) for i in range(3)]
    assert box_vals == [0, 1, 2]
    assert memo.memo(owner, (0,), lambda: "recomputed", slot="r", size=2) == "recomputed"  # evicted
    assert memo.memo(owner, (2,), lambda: "again", slot="r", size=2) == 2  # still kept


def test_warm_up_fills_what_the_pages_read():
    from eci_core.models.hashing import HashingEncoder
    from eci_core.scoring import score_collection

    c = Collection()

    def recs(negs):
        return [
            QueryRecord(q, t, [P(f"p{q}", pos)], [P(None, x) for x in negs[q]])
            for q, t, pos in [
                ("q1", "how to sort a list in python", "use sorted to sort a python list"),
                ("q2", "what is a tuple", "a tuple is an immutable sequence"),
            ]
            if q in negs
        ]

    c.add_source(
        "bm25", recs({"q1": ["sort a list in python", "python list append"], "q2": ["what is a set"]})
    )
    c.add_source("dense", recs({"q1": ["cats and dogs"], "q2": ["strings are immutable", "a set"]}))
    r = score_collection(c, HashingEncoder(), ECIConfig(n_bootstrap=20))
    seen, extra = [], []
    warm.warm_up(
        c,
        r,
        progress=lambda stage, done, total: seen.append((stage, done, total)),
        then=[("extra step", lambda: extra.append(1))],
    )
    assert extra == [1]  # the caller's steps run too, after the views' own
    n = seen[-1][2]
    assert [d for _, d, _ in seen] == list(range(n + 1)) and all(t == n for _, _, t in seen)
    assert seen[-2][0] == "extra step" and seen[-1][0] == "done"
    best = r.sources["name"].iloc[0]
    entries = memo._MEMO[id(r.pairs)]
    assert any(k[0] == "score_summary" and k[1] == best for k in entries)
    assert any(k[:2] == ("groups", "query_id") for k in entries)
    # the Signal-vs-Safety figure the page asks for (its default: every source) is the one built
    names = list(r.sources["name"])
    frame = signal_safety.signal_safety_frame(r, names)
    assert any(k[0] == "fig_signal_safety" for k in memo._MEMO[id(frame)])
    # the Export page's default cleaned set is ready before the page asks for it
    assert len(memo._MEMO[id(r)][("recent", "cleaned_set")]) == 1
    first = cleaning.cleaned_set(c, r, rule="drop_flagged", marks={}, sources=[best], fn_threshold=0.5)
    assert (
        cleaning.cleaned_set(c, r, rule="drop_flagged", marks={}, sources=[best], fn_threshold=0.5) is first
    )
    assert len(memo._MEMO[id(r)][("recent", "cleaned_set")]) == 1  # the page's key is the warm-up's


def test_review_queue_joins_the_sources_of_each_pair():
    pairs = pd.DataFrame(
        {
            "source": ["b", "a", "a", "c", "b"],
            "query_id": ["q1", "q1", "q2", "q1", "q2"],
            "passage_id": ["d1", "d1", "d2", "d1", "d3"],
            "fn_score": [0.2, 0.9, 0.5, 0.1, 0.7],
            "s_pn": 0.1,
            "lex_overlap": 0.0,
            "margin": 0.3,
            "unsafe": False,
            "flag_reasons": "",
        }
    )
    q = review.review_queue(pairs)
    # (q1, d1) is mined by b, a and c (in that order of rows), best score 0.9; then q2's d3, d2
    assert q[["query_id", "passage_id"]].values.tolist() == [["q1", "d1"], ["q2", "d3"], ["q2", "d2"]]
    assert q["sources"].tolist() == ["b,a,c", "b", "a"] and q["n_sources"].tolist() == [3, 1, 1]
    assert q["fn_score"].tolist() == [0.9, 0.7, 0.5]
    q["mark"] = None  # the caller's copy: the memoised table is unchanged
    assert "mark" not in review.review_queue(pairs).columns


def test_review_view_joins_marks_and_filters_without_copying_the_queue():
    pairs = pd.DataFrame(
        {
            "source": ["b", "a", "a", "c", "b"],
            "query_id": ["q1", "q1", "q2", "q1", "q2"],
            "passage_id": ["d1", "d1", "d2", "d1", "d3"],
            "fn_score": [0.2, 0.9, 0.5, 0.1, 0.7],
            "s_pn": 0.1,
            "lex_overlap": 0.0,
            "margin": 0.3,
            "unsafe": False,
            "flag_reasons": "",
        }
    )
    marks = {("q2", "d2"): "fine", ("q9", "d1"): "fine"}  # the second matches no queued pair
    un = review.review_view(pairs, None, None, marks, "Unreviewed")
    assert (un.n_queue, un.n_view) == (3, 2)
    assert un.page(1, 10)["passage_id"].tolist() == ["d1", "d3"] and un.page(1, 10)["mark"].isna().all()
    assert un.page(2, 1)["passage_id"].tolist() == ["d3"]
    mk = review.review_view(pairs, None, None, marks, "Marked")
    assert mk.n_view == 1 and mk.page(1, 10)[["passage_id", "mark"]].values.tolist() == [["d2", "fine"]]
    al = review.review_view(pairs, None, None, marks, "All")
    assert [m if isinstance(m, str) else None for m in al.page(1, 10)["mark"]] == [None, None, "fine"]
    assert al.bands == review.review_queue(pairs)["fn_band"].astype(str).value_counts().to_dict()
    with pytest.raises(ValueError, match="show='x'"):
        review.review_view(pairs, None, None, {}, "x")


def _categorical(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with categorical id/source/reason columns, as scoring makes the pairs table:
    categories in an order other than the rows' or the alphabet's, and one category unused."""
    out = df.copy()
    for col in ("source", "query_id", "passage_id", "flag_reasons", "fn_band"):
        if col in out.columns:
            cats = list(dict.fromkeys(out[col].astype(str).tolist()))[::-1] + ["zz-unused"]
            out[col] = pd.Categorical(out[col].astype(str), categories=cats)
    return out


def test_views_read_categorical_pairs_like_strings():
    plain = _pairs()
    plain["fn_score"] = [0.5, 0.9, 0.5, 0.5, 0.2]  # ties: the Review queue orders them by query, passage id
    plain["fn_band"] = ["possible", "likely", "possible", "possible", "possible"]
    cat = _categorical(plain)
    assert common.source_order(cat, None) == common.source_order(plain, None) == ["a", "b"]
    pd.testing.assert_frame_equal(margins.flag_counts(cat), margins.flag_counts(plain))
    pd.testing.assert_frame_equal(margins.fn_band_counts(cat), margins.fn_band_counts(plain))
    for s in ("a", "b"):
        pd.testing.assert_frame_equal(overview.score_summary(cat, s), overview.score_summary(plain, s))
        pd.testing.assert_frame_equal(margins.flag_funnel(cat, s), margins.flag_funnel(plain, s))
    q_plain, q_cat = review.review_queue(plain), review.review_queue(cat)
    assert (
        q_cat[["query_id", "passage_id"]].astype(str).values.tolist()
        == q_plain[["query_id", "passage_id"]].values.tolist()
        == [["q1", "n2"], ["q1", "n1"], ["q1", "n3"], ["q2", "n4"], ["q1", "n5"]]
    )
    assert q_cat["sources"].tolist() == q_plain["sources"].tolist()
    for sources in (["b"], ["a", "b"], ["zz-unused"]):
        pd.testing.assert_frame_equal(
            review.review_queue(cat, sources=sources).astype(str),
            review.review_queue(plain, sources=sources).astype(str),
        )
