"""The false-negative score (eci_core.metrics.false_negatives), marks on disk and labels files
(eci_core.io.marks)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import eci_core  # noqa: F401
from eci_core.metrics import false_negatives as FN
from eci_core.io.formats import fn_labels
from eci_core.io import marks as MK


def synthetic_pairs(n=400, seed=0, with_ce=False):
    """A pairs table with the columns the score reads; label 1 where s_pn and lex_overlap are high."""
    rng = np.random.default_rng(seed)
    s_pn = rng.uniform(0.2, 0.97, n)
    lex = np.clip(s_pn * 0.6 + rng.normal(0, 0.1, n), 0, 1)
    s_qn = rng.uniform(0.1, 0.8, n)
    s_qp = rng.uniform(0.4, 0.8, n)
    df = pd.DataFrame(
        {
            "source": "a",
            "query_id": [f"q{i // 10}" for i in range(n)],
            "passage_id": [f"p{i}" for i in range(n)],
            "rank": np.tile(np.arange(1, 11), n // 10),
            "s_qn": s_qn,
            "s_qp": s_qp,
            "margin": s_qp - s_qn,
            "s_pn": s_pn,
            "lex_overlap": lex,
            "ce_margin": rng.normal(0, 2, n) if with_ce else np.nan,
            "near_duplicate": s_pn >= 0.95,
        }
    )
    df["unsafe"] = df["margin"] <= 0
    df["cross_encoder"] = df["ce_margin"] <= 0
    logit = -6 + 6 * s_pn + 4 * lex
    y = (rng.uniform(size=n) < 1 / (1 + np.exp(-logit))).astype(int)
    return df, y


# ----------------------------------------------------------------------------- the score


def test_shipped_model_loads_and_scores_in_0_1():
    models = FN.shipped_models()
    assert set(models) == {"base", "with_ce"}
    assert models["base"].features == FN.BASE_FEATURES and models["with_ce"].features == FN.FEATURES
    df, _ = synthetic_pairs()
    s = FN.fn_scores(df)
    assert s.shape == (len(df),) and np.all((s > 0) & (s < 1))
    info = FN.shipped_info()
    assert "held_out" in info and info["held_out"]["folds"] >= 2


@pytest.mark.parametrize("which", ["base", "with_ce"])
def test_a_copy_scores_above_any_non_copy_with_the_same_other_features(which):
    df, _ = synthetic_pairs(with_ce=which == "with_ce")
    model = FN.shipped_models()[which]
    copy = df.assign(near_duplicate=True)
    plain = df.assign(near_duplicate=False)
    assert np.all(model.predict(copy) > model.predict(plain))
    # and through fn_scores, which picks the model per row
    assert np.all(FN.fn_scores(copy) > FN.fn_scores(plain))


def test_sign_constraints_hold_even_when_the_data_says_otherwise():
    df, y = synthetic_pairs()
    # labels that reward *low* s_pn and non-copies: the fit must not learn negative weights there
    y_bad = (df["s_pn"] < 0.4).astype(int).to_numpy().copy()
    y_bad[df["near_duplicate"].to_numpy()] = 0
    m = FN.fit(FN.features(df, FN.BASE_FEATURES), y_bad, FN.BASE_FEATURES)
    w = dict(zip(m.features, m.coef))
    assert w["s_pn"] >= 0 and w["lex_overlap"] >= 0 and w["margin"] <= 0
    assert w["copy"] >= FN.COPY_MIN_LOGIT
    # the good labels: s_pn and lex_overlap get positive weights
    good = dict(zip(FN.BASE_FEATURES, FN.fit(FN.features(df, FN.BASE_FEATURES), y, FN.BASE_FEATURES).coef))
    assert good["s_pn"] > 0 and good["lex_overlap"] > 0


def test_bands_follow_the_documented_thresholds():
    got = FN.fn_bands([0.0, 0.09999, 0.1, 0.49, 0.5, 1.0]).tolist()
    assert got == ["unlikely", "unlikely", "possible", "possible", "likely", "likely"]


def test_refit_on_marks_that_contradict_the_prior_changes_the_order():
    df, _ = synthetic_pairs(n=600, seed=3)
    df["lex_overlap"] = np.random.default_rng(9).uniform(0, 1, len(df))  # independent of s_pn here
    prior = {"base": FN.FNModel(FN.BASE_FEATURES, (8.0, 0.0, 0.0, 0.0, 0.0, 1.0), -6.0)}
    prior["with_ce"] = FN.FNModel(FN.FEATURES, (8.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0), -6.0)
    before = FN.fn_scores(df, prior)
    # the reviewer says: what decides is the lexical overlap, not s_pn; 12 of each kind. False
    # negatives: high overlap, low prior score; fine: high prior score, low overlap
    lex = df["lex_overlap"].to_numpy()
    low_prior = before < np.quantile(before, 0.5)
    fn_rows = np.flatnonzero(low_prior & (lex > 0.8))[:12]
    fine_rows = np.flatnonzero(~low_prior & (lex < 0.3))[:12]
    assert len(fn_rows) == len(fine_rows) == 12
    marked = np.concatenate([fn_rows, fine_rows])
    labels = np.concatenate([np.ones(12, int), np.zeros(12, int)])
    models = FN.refit(df, marked, labels, prior=prior)
    after = FN.fn_scores(df, models)
    rest = np.setdiff1d(np.arange(len(df)), marked)
    top_before = set(rest[np.argsort(-before[rest])][:30])
    top_after = set(rest[np.argsort(-after[rest])][:30])
    assert len(top_before & top_after) < 20  # the next negatives shown are not the same
    w = dict(zip(models["base"].features, models["base"].coef))
    assert w["lex_overlap"] > 0
    # the refitted order puts the reviewer's false negatives above their fine ones
    assert after[fn_rows].mean() > after[fine_rows].mean()
    assert before[fn_rows].mean() < before[fine_rows].mean()


def test_add_scores_sets_the_columns():
    df, _ = synthetic_pairs()
    FN.add_scores(df)
    assert df["fn_score"].between(0, 1).all()
    assert set(df["fn_band"].astype(str)) <= set(FN.BANDS)
    assert (df.loc[df["fn_score"] >= FN.LIKELY, "fn_band"] == "likely").all()


# ----------------------------------------------------------------------------- measuring


def test_precision_at_k_counts_ties_in_proportion():
    s, y = [1, 1, 0, 0], [1, 0, 1, 0]
    assert FN.precision_at_k(s, y, 1) == 0.5
    assert FN.precision_at_k(s, y, 2) == 0.5
    assert FN.precision_at_k(s, y, 3) == pytest.approx((1 + 0.5) / 3)
    assert FN.precision_at_k([3, 2, 1], [1, 0, 0], 1) == 1.0


def test_evaluate_perfect_and_random_scores():
    rng = np.random.default_rng(0)
    y = (rng.uniform(size=300) < 0.1).astype(int)
    groups = np.repeat(np.arange(30), 10)
    ev = FN.evaluate(
        {"fn_score": y + 0.0, "noise": rng.uniform(size=300)}, y, groups, ks=(10,), n_bootstrap=200
    )
    r = ev.set_index("score")
    assert (
        r.loc["fn_score", "ap"] == 1.0
        and r.loc["fn_score", "roc_auc"] == 1.0
        and r.loc["fn_score", "p@10"] == 1.0
    )
    assert r.loc["noise", "ap_low"] <= r.loc["noise", "ap"] <= r.loc["noise", "ap_high"]
    assert 0.3 < r.loc["noise", "roc_auc"] < 0.7
    assert ev.attrs["best_rule"] == "noise" and ev.attrs["ap_gain_low"] > 0
    pr = FN.pr_curves({"fn_score": y + 0.0}, y)
    assert pr["precision"].max() == 1.0 and pr["recall"].max() == 1.0


# ----------------------------------------------------------------------------- labels and marks


def test_marks_round_trip_through_the_labels_file(tmp_path):
    marks = {
        ("bm25", "q1", "p1"): "false_negative",
        ("bm25", "q1", "p2"): "fine",
        ("dense", "q2", "p9"): "fine",
        ("dense", "q1", "p1"): "false_negative",
    }
    data = fn_labels.labels_bytes(MK.marks_to_labels(marks))
    assert data.decode().splitlines() == ["query-id\tcorpus-id\tscore", "q1\tp1\t1", "q1\tp2\t0", "q2\tp9\t0"]
    (tmp_path / "false_negatives.tsv").write_bytes(data)
    labels = fn_labels.read_labels(tmp_path / "false_negatives.tsv")
    back = MK.labels_to_marks(labels, marks.keys())
    assert back == marks
    # a label is about the (query, passage): another source holding the pair gets the mark too
    assert MK.labels_to_marks(labels, [("bm25+ce", "q1", "p1")]) == {
        ("bm25+ce", "q1", "p1"): "false_negative"
    }
    # conflicting marks of one pair in two sources: false negative wins
    assert MK.marks_to_labels({("a", "q", "p"): "fine", ("b", "q", "p"): "false_negative"}) == [("q", "p", 1)]


def test_read_labels_errors_name_the_line():
    with pytest.raises(ValueError, match=r"labels:3: field 'score'"):
        fn_labels.read_labels(b"query-id\tcorpus-id\tscore\nq\tp\t1\nq\tp2\tyes\n")
    with pytest.raises(ValueError, match=r"labels:2: expected 3 fields"):
        fn_labels.read_labels(b"query-id\tcorpus-id\tscore\nq p\n")


def test_marks_are_saved_restored_and_cleared(tmp_path):
    fp = "abc123"
    assert MK.load_marks(fp, tmp_path) == {}
    marks = {("s", "q\twith tab", "p"): "fine", ("s", "q", "p,2"): "false_negative"}
    path = MK.save_marks(fp, marks, tmp_path)
    assert path == tmp_path / "marks" / "abc123.tsv" and path.is_file()
    assert MK.load_marks(fp, tmp_path) == marks
    assert MK.load_marks("other", tmp_path) == {}
    MK.clear_marks(fp, tmp_path)
    assert not path.exists() and MK.load_marks(fp, tmp_path) == {}
    with pytest.raises(ValueError, match="fingerprint"):
        MK.marks_path("../etc", tmp_path)


def test_labels_file_is_found_next_to_beir_data(tmp_path):
    from types import SimpleNamespace

    (tmp_path / "qrels").mkdir()
    (tmp_path / "negatives").mkdir()
    (tmp_path / "corpus.jsonl").write_text('{"_id": "d1", "text": "x"}\n')  # a BEIR directory
    (tmp_path / "qrels" / "false_negatives.tsv").write_text("query-id\tcorpus-id\tscore\n")
    coll = SimpleNamespace(sources={"bm25": SimpleNamespace(path=str(tmp_path / "negatives" / "bm25.trec"))})
    assert fn_labels.find_labels_file(coll) == tmp_path / "qrels" / "false_negatives.tsv"
    assert fn_labels.find_labels_file(SimpleNamespace(sources={})) is None


def test_detector_quality_per_source_and_flag_points():
    from types import SimpleNamespace

    from eci_core.explore import review

    df, y = synthetic_pairs(n=400, seed=5)
    df.loc[200:, "source"] = "b"
    df["flag_reasons"] = ""
    FN.add_scores(df)
    labels = {(q, p): 1 for q, p, v in zip(df["query_id"], df["passage_id"], y) if v}
    dq = review.detector_quality(SimpleNamespace(pairs=df), labels)
    s = dq["summary"].set_index(["source", "ranking"])
    assert set(s.index.get_level_values(0)) == {"all sources", "a", "b"}
    assert s.loc[("all sources", "fn_score"), "labelled"] == int(y.sum())
    from sklearn.metrics import average_precision_score

    assert s.loc[("a", "s_pn"), "average_precision"] == pytest.approx(
        average_precision_score(y[:200], df["s_pn"].to_numpy()[:200])
    )
    c = dq["curves"]
    # a yes/no flag is one operating point: the recall and precision of what it flags
    u = c[(c["source"] == "all sources") & (c["score"] == "unsafe")]
    on = df["unsafe"].to_numpy()
    assert len(u) == 1 and u["precision"].iloc[0] == pytest.approx(y[on].mean())
    assert u["recall"].iloc[0] == pytest.approx(y[on].sum() / y.sum())
    assert len(c[(c["score"] == "s_pn") & (c["source"] == "a")]) > 2
    review.pr_figure(c, "a")  # draws


def test_marked_rows_are_the_marked_negatives_in_table_order():
    import pandas as pd

    from eci_core.io.marks import marked_rows

    pairs = pd.DataFrame(
        {
            "source": ["a", "a", "b", "b"],
            "query_id": ["q1", "q1", "q1", "q2"],
            "passage_id": ["p1", "p2", "p1", "p9"],
        }
    )
    rows, labels = marked_rows(
        pairs, {("b", "q1", "p1"): "fine", ("a", "q1", "p2"): "false_negative", ("a", "q9", "p1"): "fine"}
    )
    assert rows.tolist() == [1, 2] and labels.tolist() == [1, 0]


def test_an_uploaded_labels_file_marks_each_source_holding_a_labelled_pair():
    import gzip

    pairs = pd.DataFrame(
        {
            "source": ["a", "a", "b", "b"],
            "query_id": ["q1", "q1", "q1", "q2"],
            "passage_id": ["p1", "p2", "p1", "p9"],
        }
    )
    data = b"query-id\tcorpus-id\tscore\nq1\tp1\t1\nq2\tp9\t0\nq7\tp7\t1\n"
    want = {
        ("a", "q1", "p1"): "false_negative",
        ("b", "q1", "p1"): "false_negative",
        ("b", "q2", "p9"): "fine",
    }
    # three labels, two of them name scored negatives (one held by two sources: three marks)
    assert MK.marks_from_labels_file(data, "mine.tsv", pairs) == (want, 3)
    # gzip, TREC qrels with 4 columns, a BOM and no header read the same
    trec = "\ufeffq1 0 p1 1\nq2 0 p9 0\nq7 0 p7 2\n".encode()
    assert MK.marks_from_labels_file(gzip.compress(trec), "mine.qrels.gz", pairs) == (want, 3)


@pytest.mark.parametrize(
    "body, line",
    [
        (
            b"query-id\tcorpus-id\tscore\nq1\tp1\t1\nq2\tp9\tyes\n",
            "mine.tsv:3: field 'score': expected a number",
        ),
        (
            b"query-id\tcorpus-id\tscore\nq1\tp1\n",
            "mine.tsv:2: expected 3 fields 'query-id corpus-id score', found 2",
        ),
        (b"q1\tp1\t1\nq2\tp9\tnan\n", "mine.tsv:2: field 'score': must be a finite number"),
        (
            b"q1\tp1\t1\n\tp9\t1\n",
            "mine.tsv:2: field 'query-id': empty; every row needs a query id and a passage id",
        ),
        (
            b"q1\tp1\t1\nq\xff2\tp9\t1\n",
            "mine.tsv:2: not valid UTF-8 (expected UTF-8 text); re-save the file as UTF-8",
        ),
        (
            b"\x1f\x8b\x08\x00broken",
            "mine.tsv: broken gzip data (the file ends in the middle of the compressed stream); "
            "re-compress the file",
        ),
    ],
)
def test_a_bad_labels_file_is_one_line_naming_file_and_line(body, line):
    pairs = pd.DataFrame({"source": ["a"], "query_id": ["q1"], "passage_id": ["p1"]})
    with pytest.raises(ValueError) as err:
        MK.marks_from_labels_file(body, "mine.tsv", pairs)
    assert str(err.value) == line  # no value from the file is echoed


def test_a_gzip_bomb_labels_file_is_refused_early():
    import gzip

    bomb = gzip.compress(b"q\tp\t1\n" * 3_000_000)  # 18 MB of rows in ~40 KB
    pairs = pd.DataFrame({"source": ["a"], "query_id": ["q"], "passage_id": ["p"]})
    with pytest.raises(ValueError, match=r"^bomb.gz: the gzip expands more than 100x"):
        MK.marks_from_labels_file(bomb, "bomb.gz", pairs)


def test_scores_do_not_depend_on_the_chunking():
    df, _ = synthetic_pairs()
    df = df.assign(ce_margin=np.where(np.arange(len(df)) % 3 == 0, 0.5, np.nan))
    whole = FN.fn_scores(df, chunk=10**9)
    assert np.array_equal(FN.fn_scores(df, chunk=7), whole)
    assert np.isfinite(whole).all() and len(whole) == len(df)
    assert FN.band_categorical(whole).astype(str).tolist() == FN.fn_bands(whole).tolist()
