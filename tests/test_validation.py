"""``eci_core.validation``: splits, leakage filter, trainers, evaluation, tables, CLI, verdict.

The known-answer set: queries ``subj<s> qa<a> <2 filler words>`` whose one positive is the
passage ``subj<s> pa<a> <3 filler words>`` (queries and passages name the aspect with different
words, so the encoder has to learn the link). The ``clean`` source's negatives are true
negatives: passages of the same subject with another aspect. The ``poisoned`` source plants
copies of each positive as its negatives (same subject and aspect words, other filler words:
passages that answer the query, i.e. false negatives). Training on it must come out measurably
worse with every trainer. (An *exact* copy of the positive, same text, gives the same gradient as
in-batch negatives only — the copy's logit equals the positive's — which is why the copies here
differ in their filler.)
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import eci_core  # noqa: F401
from eci_core.explore import overview
from eci_core.io.collection import Collection
from eci_core.io.records import PassageRef, QueryRecord
from eci_core.models.hashing import HashingEncoder
from eci_core.validation import (
    IN_BATCH,
    UNTRAINED,
    ValidationConfig,
    load_results,
    make_trainer,
    trainer_agreement,
    validate,
)
from eci_core.validation.analysis import downstream_table, rank_agreement
from eci_core.metrics.retrieval import evaluate_run
from eci_core.validation.evaluation import evaluate_embeddings
from eci_core.validation.protocol import run_protocol
from eci_core.validation.splits import make_splits, training_lists

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "fixtures" / "app_small"


def known_answer_set(n_subj: int = 8, n_asp: int = 6, n_neg: int = 3, seed: int = 0) -> Collection:
    rng = np.random.default_rng(seed)
    fill = [f"w{i}" for i in range(40)]

    def f(k):
        return " ".join(rng.choice(fill, k, replace=False))

    ptext = {(s, a): f"subj{s} pa{a} {f(3)}" for s in range(n_subj) for a in range(n_asp)}
    clean, poisoned = [], []
    for s in range(n_subj):
        for a in range(n_asp):
            q = f"subj{s} qa{a} {f(2)}"
            pos = PassageRef(f"p-{s}-{a}", ptext[(s, a)])
            negs = [
                PassageRef(f"p-{s}-{(a + 1 + k) % n_asp}", ptext[(s, (a + 1 + k) % n_asp)])
                for k in range(n_neg)
            ]
            copies = [PassageRef(f"copy-{s}-{a}-{k}", f"subj{s} pa{a} {f(3)}") for k in range(n_neg)]
            clean.append(QueryRecord(f"q{s}-{a}", q, [pos], negs))
            poisoned.append(QueryRecord(f"q{s}-{a}", q, [pos], copies))
    c = Collection()
    c.add_source("clean", clean)
    c.add_source("poisoned", poisoned)
    return c


@pytest.fixture(scope="module")
def kas():
    return known_answer_set()


# ----------------------------------------------------------------------------- splits and leakage
def test_kfold_splits_partition_the_queries_and_are_fixed_by_seed(kas):
    splits = make_splits(kas, folds=3, seed=0)
    labelled = sorted(kas.positives)
    tests = np.concatenate([s.test for s in splits])
    assert sorted(tests.tolist()) == labelled  # every query is tested exactly once
    for s in splits:
        assert not set(s.train) & set(s.test)
        assert sorted(np.concatenate([s.train, s.test]).tolist()) == labelled
    again = make_splits(kas, folds=3, seed=0)
    assert all((a.test == b.test).all() for a, b in zip(splits, again))
    assert any((a.test != b.test).any() for a, b in zip(splits, make_splits(kas, folds=3, seed=1)))
    with pytest.raises(ValueError, match="folds=1"):
        make_splits(kas, folds=1)


def test_beir_train_test_labels_give_one_split(kas):
    c = known_answer_set()
    q = sorted(c.positives)
    c.query_splits = {i: ("train" if i < 30 else "test") for i in q}
    (split,) = make_splits(c, folds=5)
    assert split.name == "train/test"
    assert split.train.tolist() == q[:30] and split.test.tolist() == q[30:]


def test_a_negative_that_is_a_test_positive_is_dropped_and_counted():
    # q0's negatives include the positive of q1 and of q2; fold assignment decides what leaks
    c = Collection()
    texts = {f"d{i}": f"passage number {i}" for i in range(8)}
    pos = {"q0": "d0", "q1": "d1", "q2": "d2", "q3": "d3"}
    negs = {"q0": ["d1", "d2", "d5"], "q1": ["d0", "d6"], "q2": ["d7", "d3"], "q3": ["d4", "d5"]}
    c.add_source(
        "s",
        [
            QueryRecord(
                q,
                f"question {q}",
                [PassageRef(pos[q], texts[pos[q]])],
                [PassageRef(n, texts[n]) for n in negs[q]],
            )
            for q in pos
        ],
    )
    splits = make_splits(c, folds=2, seed=0)
    for split in splits:
        tl = training_lists(c, split, ["s"])
        held = {p for q in split.test for p in c.positives[int(q)]}
        expected = sum(
            1 for q in split.train for n in negs[c.query_ids[int(q)]] if c.passage_index(n) in held
        )
        assert tl.leaked["s"] == expected
        for q, lst in tl.negatives["s"].items():
            assert q in set(split.train.tolist())
            assert not set(lst.tolist()) & held


class _SpyTrainer:
    """Records every batch; returns the frozen hashing embeddings."""

    name = "spy"
    default_lr = 0.1

    def __init__(self):
        self.inner = make_trainer("linear", HashingEncoder(64))
        self.seen = []

    def setup(self, collection, eval_passages, cache=None, progress=None):
        self.inner.setup(collection, eval_passages, cache, progress)

    def run(self, batches, seed, lr, test_queries, progress=None):
        if batches is not None:
            self.seen.append((set(int(q) for q in test_queries), batches))
        return self.inner.run(None, seed, lr, test_queries)


def test_no_test_query_is_trained_on_and_no_test_positive_is_a_training_negative(kas):
    spy = _SpyTrainer()
    cfg = ValidationConfig(folds=3, seeds=2, steps=5, batch_size=4)
    run_protocol(kas, ["clean", "poisoned"], cfg, trainer=spy)
    assert len(spy.seen) == 3 * 2 * 3  # splits × seeds × (in-batch + 2 sources)
    for test_q, batches in spy.seen:
        held = {p for q in test_q for p in kas.positives[q]}
        for b in batches:
            assert not set(b.anchors.tolist()) & test_q
            if b.negatives is not None:
                assert not set(b.negatives.ravel().tolist()) & held
                assert b.negatives.shape == (4, 3)


def test_every_source_gets_the_same_anchors_and_positives(kas):
    spy = _SpyTrainer()
    run_protocol(
        kas, ["clean", "poisoned"], ValidationConfig(folds=3, seeds=1, steps=4, batch_size=4), trainer=spy
    )
    first = spy.seen[:3]  # split 1: in-batch, clean, poisoned
    for _, batches in first[1:]:
        for b0, b in zip(first[0][1], batches):
            assert (b0.anchors == b.anchors).all() and (b0.positives == b.positives).all()


# ----------------------------------------------------------------------------- evaluation, statistics
def test_evaluation_equals_ir_measures_on_a_hand_checked_run():
    import ir_measures

    # q1: its positive ranks 1st; q2: its positive ranks 3rd of 4 passages
    q = np.array([[1, 0, 0], [0, 1, 0]], dtype=np.float32)
    p = np.array(
        [[0.9, 0.1, 0], [0.5, 0.4, 0], [0.2, 0.6, 0], [0.1, 0.3, 0], [0.1, 0.5, 0]], dtype=np.float32
    )
    ids = ["a", "b", "c", "d", "e"]
    qrels = {"q1": {"a": 1}, "q2": {"d": 1}}
    res = evaluate_embeddings(q, ["q1", "q2"], p, ids, qrels)
    # by hand: nDCG@10 = 1/log2(1+rank) with one relevant passage; RR@10 = 1/rank
    assert res["q1"] == pytest.approx({"ndcg@10": 1.0, "recall@10": 1.0, "mrr@10": 1.0})
    # q2 scores: c .6, e .5, b .4, d .3, a .1 -> d ranks 4th
    assert res["q2"] == pytest.approx({"ndcg@10": 1 / math.log2(5), "recall@10": 1.0, "mrr@10": 0.25})
    run = {"q1": {"a": 0.9, "b": 0.5}, "q2": {"c": 0.6, "e": 0.5, "b": 0.4, "d": 0.3}}
    agg = ir_measures.calc_aggregate([ir_measures.nDCG @ 10, ir_measures.RR @ 10], qrels, run)
    ours = evaluate_run(run, qrels)
    assert np.mean([v["ndcg@10"] for v in ours.values()]) == pytest.approx(agg[ir_measures.nDCG @ 10])
    assert np.mean([v["mrr@10"] for v in ours.values()]) == pytest.approx(agg[ir_measures.RR @ 10])
    # a query the run misses scores 0
    assert evaluate_run({"q1": {"a": 1.0}}, qrels)["q2"] == {"ndcg@10": 0.0, "recall@10": 0.0, "mrr@10": 0.0}


def test_correlations_equal_scipy_and_decision_numbers_are_hand_checked():
    from scipy import stats

    x = np.array([0.1, 0.4, 0.35, 0.8, 0.6])
    y = np.array([0.70, 0.72, 0.75, 0.71, 0.74])
    r = rank_agreement(x, y, n_bootstrap=200, seed=0)
    assert r["spearman"] == pytest.approx(stats.spearmanr(x, y).statistic)
    assert r["kendall"] == pytest.approx(stats.kendalltau(x, y).statistic)
    assert r["spearman_low"] <= r["spearman"] <= r["spearman_high"]
    # 10 pairs; concordant by hand: (0,1)(0,2)(0,3)(0,4)(1,4) = 5 -> 0.5 (and Kendall τ = (5 − 5)/10 = 0)
    assert r["pairwise_accuracy"] == pytest.approx(0.5)
    assert r["kendall"] == pytest.approx(0.0)
    # x picks index 3 (y 0.71); the best y is 0.75
    assert r["top1_regret"] == pytest.approx(0.04)


def test_downstream_table_means_intervals_and_paired_probabilities():
    rows = []
    vals = {
        "untrained": [0.2, 0.4, 0.6, 0.8],
        IN_BATCH: [0.3, 0.5, 0.7, 0.9],
        "a": [0.5, 0.7, 0.9, 1.0],
        "b": [0.3, 0.5, 0.7, 0.9],
    }
    for seed in (0, 1):
        for v, ys in vals.items():
            for i, y in enumerate(ys):
                rows.append(
                    {
                        "variant": v,
                        "split": "fold 1/1",
                        "seed": seed,
                        "query_id": f"q{i}",
                        "ndcg@10": y,
                        "recall@10": 1.0,
                        "mrr@10": y,
                    }
                )
    table, beats = downstream_table(pd.DataFrame(rows), [UNTRAINED, IN_BATCH, "a", "b"], n_bootstrap=500)
    t = table.set_index("variant")
    assert t.loc["a", "ndcg@10"] == pytest.approx(0.775)
    assert t.loc["a", "gain"] == pytest.approx(0.775 - 0.6)
    assert t.loc["b", "gain"] == pytest.approx(0.0)
    assert t.loc["a", "ndcg@10_low"] <= 0.775 <= t.loc["a", "ndcg@10_high"]
    assert t.loc["a", "seed_sd"] == pytest.approx(0.0)
    assert beats.loc["a", "b"] == pytest.approx(1.0)  # a beats b on every query
    assert beats.loc["b", IN_BATCH] == pytest.approx(0.5)  # identical: ties count 1/2
    assert list(table["kind"]) == ["source", "source", "baseline", "baseline"]


def test_trainer_agreement_is_kendall_tau_and_top1():
    from scipy import stats

    a = pd.DataFrame(
        {
            "variant": ["x", "y", "z", IN_BATCH],
            "kind": ["source"] * 3 + ["baseline"],
            "ndcg@10": [0.5, 0.6, 0.7, 0.1],
        }
    )
    b = pd.DataFrame({"variant": ["x", "y", "z"], "kind": ["source"] * 3, "ndcg@10": [0.4, 0.8, 0.6]})
    t = trainer_agreement(a, b)
    assert t["kendall"] == pytest.approx(stats.kendalltau([0.5, 0.6, 0.7], [0.4, 0.8, 0.6]).statistic)
    assert t["top1_agree"] is False and t["best_a"] == "z" and t["best_b"] == "y"


# ----------------------------------------------------------------------------- trainers
def test_stacked_linear_training_equals_separate_runs(kas):
    from eci_core.validation.protocol import batch_plan, sample_negatives
    from eci_core.validation.trainers import Batch

    tr = make_trainer("linear-both", HashingEncoder(64))
    tr.setup(kas, np.arange(kas.n_passages))
    split = make_splits(kas, 3)[0]
    tl = training_lists(kas, split, ["clean", "poisoned"])
    anchors, pos = batch_plan(kas, tl.queries, 6, 4, seed=0, split_no=0)
    plans = []
    for s in ("clean", "poisoned"):
        negs = sample_negatives({int(q): tl.negatives[s][int(q)] for q in tl.queries}, anchors, 3, 0, 0)
        plans.append([Batch(anchors[i], pos[i], negs[i]) for i in range(6)])
    together = tr.run_many(plans, 0, 1e-2, split.test)
    for plan, (qe, pe) in zip(plans, together):
        q1, p1 = tr.run(plan, 0, 1e-2, split.test)
        np.testing.assert_allclose(qe, q1, atol=1e-5)
        np.testing.assert_allclose(pe, p1, atol=1e-5)


@pytest.mark.parametrize("trainer", ["linear", "linear-both"])
def test_poisoned_source_trains_worse_cheap_trainers(kas, trainer):
    cfg = ValidationConfig(
        trainer=trainer,
        folds=3,
        seeds=3,
        steps=30,
        batch_size=8,
        lr=1e-2,
        exclude_prefixes=("copy-",),
        n_bootstrap=500,
    )
    res = validate(kas, ["clean", "poisoned"], cfg, encoder=HashingEncoder(512))
    d = res.downstream.set_index("variant")
    assert d.loc["clean", "ndcg@10"] - d.loc["poisoned", "ndcg@10"] > 0.05
    assert res.beats.loc["clean", "poisoned"] >= 0.95
    assert d.loc["clean", "ndcg@10"] > d.loc[UNTRAINED, "ndcg@10"]
    # the copies are not part of the evaluation corpus
    assert res.meta["n_eval_passages"] == sum(1 for p in kas.passage_ids if not p.startswith("copy-"))


def test_poisoned_source_trains_worse_finetune(kas, tmp_path):
    """Full fine-tuning through sentence-transformers on a tiny model (a static-embedding model
    over the bundled MiniLM tokenizer, random initialisation) so the test takes seconds."""
    import torch
    from sentence_transformers import SentenceTransformer
    from tokenizers import Tokenizer

    try:
        from sentence_transformers.sentence_transformer.modules import StaticEmbedding
    except ImportError:
        from sentence_transformers.models import StaticEmbedding
    from eci_core.models.st_encoder import bundled_minilm_path
    from eci_core.validation.trainers import FinetuneTrainer

    torch.manual_seed(0)
    tok = Tokenizer.from_file(str(bundled_minilm_path() / "tokenizer.json"))
    SentenceTransformer(modules=[StaticEmbedding(tok, embedding_dim=32)], device="cpu").save(
        str(tmp_path / "tiny")
    )
    cfg = ValidationConfig(
        trainer="finetune",
        folds=3,
        seeds=1,
        steps=30,
        batch_size=8,
        lr=0.1,
        exclude_prefixes=("copy-",),
        n_bootstrap=500,
    )
    tr = FinetuneTrainer(tmp_path / "tiny", device="cpu")
    raw = run_protocol(kas, ["clean", "poisoned"], cfg, trainer=tr)
    down, beats = downstream_table(raw.per_query, [UNTRAINED, IN_BATCH, "clean", "poisoned"], n_bootstrap=500)
    d = down.set_index("variant")
    assert d.loc["clean", "ndcg@10"] - d.loc["poisoned", "ndcg@10"] > 0.05
    assert beats.loc["clean", "poisoned"] >= 0.95
    assert raw.meta["trainer"] == "finetune" and raw.meta["device"] == "cpu"
    assert raw.meta["encoder"] == "tiny"  # the model's name, not a path of this machine


def test_finetune_records_a_portable_encoder_name_and_shipped_results_do_too():
    from eci_core.models.base import BUNDLED_ENCODER_NAME
    from eci_core.validation.trainers import FinetuneTrainer

    assert FinetuneTrainer(device="cpu").encoder.name == BUNDLED_ENCODER_NAME  # the model is loaded lazily
    shipped = sorted((ROOT / "sample_data").rglob("results.json"))
    assert len(shipped) >= 3
    for f in shipped:
        meta = json.loads(f.read_text(encoding="utf-8"))["meta"]
        for key in ("encoder", "pretraining_encoder"):
            assert "/" not in str(meta.get(key)) and "\\" not in str(meta.get(key)), (f, key)


def test_training_device_is_one_checked_device():
    from eci_core.models.device import detect_device
    from eci_core.validation.trainers import training_device

    assert training_device(None) == training_device("auto") == detect_device()
    assert training_device(" CPU ") == "cpu"
    with pytest.raises(ValueError, match="device='cuda:0,cuda:1': a fine-tune trains on one device"):
        training_device("cuda:0,cuda:1")
    with pytest.raises(ValueError, match="device='tpu'"):
        training_device("tpu")


def test_cli_validate_device_reaches_the_finetune_trainer(monkeypatch, capsys):
    from eci_core.cli import main
    from eci_core.validation import trainers

    seen = {}

    def init(self, model_path=None, max_seq_length=None, device=None, **kw):
        seen.update(device=device, max_seq_length=max_seq_length)
        raise ValueError("stopped before training")

    monkeypatch.setattr(trainers.FinetuneTrainer, "__init__", init)
    rc = main(
        [
            "validate",
            str(FIXTURE),
            "--trainer",
            "finetune",
            "--device",
            "cpu",
            "--max-seq-length",
            "32",
            "--folds",
            "2",
            "--seeds",
            "1",
            "--no-progress",
        ]
    )
    assert rc == 2 and seen == {"device": "cpu", "max_seq_length": 32}
    assert capsys.readouterr().err.strip() == "error: stopped before training"
    seen.clear()
    rc = main(["validate", str(FIXTURE), "--trainer", "finetune", "--device", "tpu:0", "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert (
        rc == 2
        and not seen
        and err
        == ("error: device='tpu:0': use 'auto', 'cpu', 'cuda', 'cuda:N', 'mps' or a comma-separated list")
    )


def test_cli_validate_markdown_without_show_and_finetune_options_warn_on_linear(capsys):
    from eci_core.cli import main

    rc = main(
        [
            "validate",
            str(FIXTURE),
            "--encoder",
            "hashing",
            "--folds",
            "2",
            "--seeds",
            "1",
            "--steps",
            "3",
            "--batch-size",
            "2",
            "--bootstrap",
            "50",
            "--no-progress",
            "--markdown",
            "--threads",
            "2",
            "--max-seq-length",
            "32",
        ]
    )
    cap = capsys.readouterr()
    assert rc == 0
    assert "| source | nDCG@10 [95 % CI] |" in cap.out and "| pre-training number |" in cap.out
    assert cap.err.strip().splitlines() == [
        "warning: --threads applies to --trainer finetune and top-layers only; --trainer linear ignores it",
        "warning: --max-seq-length applies to --trainer finetune and top-layers "
        "only; --trainer linear ignores it",
    ]


def test_same_seed_same_numbers(kas):
    cfg = ValidationConfig(folds=3, seeds=1, steps=10, batch_size=8, exclude_prefixes=("copy-",))
    a = run_protocol(kas, ["clean", "poisoned"], cfg, encoder=HashingEncoder(128)).per_query
    b = run_protocol(kas, ["clean", "poisoned"], cfg, encoder=HashingEncoder(128)).per_query
    pd.testing.assert_frame_equal(a, b)


# ----------------------------------------------------------------------------- saving, CLI
@pytest.fixture(scope="module")
def fixture_results(tmp_path_factory):
    from eci_core.validation.loading import load_for_validation

    coll, _ = load_for_validation([str(FIXTURE)])
    cfg = ValidationConfig(folds=2, seeds=2, steps=5, batch_size=2, n_bootstrap=200)
    res = validate(coll, None, cfg, encoder="hashing", agreement_encoders=["hashing:64"])
    out = tmp_path_factory.mktemp("val") / "linear"
    res.save(out)
    return coll, res, out


def test_results_reopen_without_recomputing(fixture_results):
    coll, res, out = fixture_results
    back = load_results(out)
    pd.testing.assert_frame_equal(
        back.downstream.reset_index(drop=True), res.downstream.reset_index(drop=True), check_dtype=False
    )
    pd.testing.assert_frame_equal(back.agreement, res.agreement, check_dtype=False)
    np.testing.assert_allclose(back.beats.to_numpy(float), res.beats.to_numpy(float))
    assert back.summary() == res.summary()
    from eci_core.config import ECIConfig

    assert back.matches(coll, "hashing", ECIConfig()) and res.matches(coll, HashingEncoder(), ECIConfig())
    # precomputed signatures (the dashboard computes them once per data): the same answer
    from eci_core.validation import source_signatures

    sig = source_signatures(coll)
    assert back.matches(coll, "hashing", ECIConfig(), signatures=sig)
    assert not back.matches(
        coll, "hashing", ECIConfig(), signatures=dict(sig, **{next(iter(sig)): "0" * 16})
    )  # other negatives
    assert back.validated_names(coll.sources) and not back.validated_names(list(coll.sources) + ["unseen"])
    assert not back.validated_names([])
    assert not back.encoder_agreement().empty
    doc = json.loads((out / "results.json").read_text())
    assert doc["summary"] == res.summary()
    assert (out / "downstream.csv").is_file() and (out / "agreement.csv").is_file()
    # the evaluation ranks the whole corpus (24 passages), not only those the sources mention
    assert res.meta["n_eval_passages"] == 24


def test_saved_csvs_escape_formula_cells_and_per_query_reads_back(fixture_results, tmp_path):
    """A source or query id a spreadsheet would run as a formula (=, +, -, @) is written to the
    CSV copies with a leading ' ; load_results gives per_query's ids back exactly;
    ``escape_formulas=False`` writes them as they are."""
    import csv
    import dataclasses

    from eci_core.io.tables import FORMULA_STARTS

    _, res, _ = fixture_results
    src = next(v for v, k in zip(res.downstream["variant"], res.downstream["kind"]) if k != "baseline")
    evil = "=cmd|' /C calc'!A0"
    ren = {src: evil}
    pq = res.per_query.assign(
        variant=res.per_query["variant"].replace(ren),
        query_id=["@" + q if i % 2 else "-" + q for i, q in enumerate(res.per_query["query_id"])],
    )
    bad = dataclasses.replace(
        res,
        downstream=res.downstream.assign(variant=res.downstream["variant"].replace(ren)),
        per_query=pq,
        beats=res.beats.rename(index=ren, columns=ren),
        pretraining=res.pretraining.replace(ren),
        agreement=res.agreement.replace(ren),
    )
    out = bad.save(tmp_path / "safe")
    for f in sorted(out.glob("*.csv")):
        for row in csv.reader(open(f, newline="", encoding="utf-8")):
            for cell in row:
                if cell.startswith(FORMULA_STARTS):
                    float(cell)  # only numbers (e.g. -0.25) may start with - or +
    assert "'" + evil in (out / "downstream.csv").read_text(encoding="utf-8")
    back = load_results(out)
    assert back.per_query["query_id"].tolist() == pq["query_id"].tolist()
    assert back.per_query["variant"].tolist() == pq["variant"].tolist()
    raw = bad.save(tmp_path / "raw", escape_formulas=False)
    assert "\n" + evil + "," in (raw / "downstream.csv").read_text(encoding="utf-8").replace('"', "")


def test_cli_validate_and_show(tmp_path, capsys):
    from eci_core.cli import main

    out = tmp_path / "v"
    rc = main(
        [
            "validate",
            str(FIXTURE),
            "--encoder",
            "hashing",
            "--folds",
            "2",
            "--seeds",
            "1",
            "--steps",
            "3",
            "--batch-size",
            "2",
            "--bootstrap",
            "100",
            "--no-progress",
            "--out",
            str(out),
        ]
    )
    text = capsys.readouterr().out
    assert rc == 0
    assert "Downstream" in text and "Agreement" in text and "in-batch only *" in text
    assert (out / "results.json").is_file()
    rc = main(["validate", "--show", str(out)])
    shown = capsys.readouterr().out
    assert rc == 0 and load_results(out).summary() in shown
    assert main(["validate", "--show", str(tmp_path / "nothing")]) == 2
    assert "no saved validation" in capsys.readouterr().err
    assert main(["validate", str(FIXTURE), "--encoder", "hashing", "--seeds", "0", "--no-progress"]) == 2
    assert "seeds=0" in capsys.readouterr().err


# ----------------------------------------------------------------------------- the Overview verdict
def _sources():
    return pd.DataFrame(
        {
            "name": ["random", "dense"],
            "eci": [0.35, 0.20],
            "eci_low": [0.32, 0.17],
            "eci_high": [0.37, 0.23],
            "signal": [0.1, 0.5],
            "safety": [0.3, 0.05],
            "unsafe_query_rate": [0.05, 0.5],
        }
    )


class _Val:
    def __init__(self, best: str, rho: tuple[float, float, float]):
        other = "dense" if best == "random" else "random"
        self.downstream = pd.DataFrame(
            {
                "variant": [best, other, IN_BATCH, UNTRAINED],
                "kind": ["source", "source", "baseline", "baseline"],
                "ndcg@10": [0.75, 0.70, 0.68, 0.66],
                "ndcg@10_low": [0.70, 0.65, 0.62, 0.60],
                "ndcg@10_high": [0.80, 0.75, 0.73, 0.71],
                "gain": [0.07, 0.02, 0.0, -0.02],
                "n_seeds": [3, 3, 3, 3],
            }
        )
        self.beats = pd.DataFrame(
            [[np.nan, 0.99], [0.01, np.nan]], index=[best, other], columns=[best, other]
        )
        self.agreement = pd.DataFrame(
            {
                "number": ["ECI"],
                "spearman": [rho[0]],
                "spearman_low": [rho[1]],
                "spearman_high": [rho[2]],
                "n": [25],
            }
        )
        self.meta = {"trainer": "linear", "n_splits": 5}


def test_verdict_without_validation_states_the_ranking_and_points_to_validation():
    v = overview.eci_ranking_line(_sources())
    assert v.startswith("ECI ranks random first (0.350, 95 % CI 0.320–0.370), 5.0 % unsafe queries.")
    assert "Train on" not in v and "Validation page" in v
    assert "easiest here" in v
    # the Overview's headline leads with the absence of evidence, not with ECI's leader
    h = overview.verdict(_sources())
    assert h.startswith("No validated ranking exists for this data.") and "Validation page" in h
    assert "random" not in h and "Train on" not in h


def test_verdict_with_validation_that_agrees():
    v = overview.verdict(_sources(), _Val("random", (0.62, 0.21, 0.85)))
    assert "Train on" not in v
    assert (
        "random trained best of the loaded sources (nDCG@10 0.750, 95 % CI 0.700–0.800, +0.070 over in-batch"
        in v
    )
    assert (
        "ECI ranks random first too; ECI's ranking agreed with training: Spearman "
        "ρ = 0.62 (95 % CI 0.21 to 0.85)" in v
    )


def test_verdict_with_validation_that_disagrees():
    v = overview.verdict(_sources(), _Val("dense", (-0.40, -0.75, 0.05)))
    assert "Train on" not in v
    assert v.startswith("Validation (linear trainer, 5 split(s) × 3 seed(s)): dense trained best")
    assert "ECI ranks random first;" in v
    assert "did not reliably agree with training: Spearman ρ = -0.40 (95 % CI -0.75 to 0.05) over 25" in v
    v2 = overview.verdict(_sources(), _Val("dense", (-0.60, -0.90, -0.20)))
    assert "went against training" in v2


def test_pooled_evaluation_reranks_the_target_encoders_top_k_plus_positives(kas):
    cfg = ValidationConfig(folds=3, seeds=1, steps=3, batch_size=4, eval_pool=10, exclude_prefixes=("copy-",))
    raw = run_protocol(kas, ["clean"], cfg, encoder=HashingEncoder(128))
    for s in raw.meta["splits"]:
        # at most 10 per test query plus each test query's positive, never the whole corpus
        assert s["n_eval_passages"] <= 10 * s["n_test"] + s["n_test"]
        assert s["n_eval_passages"] < raw.meta["n_eval_passages"]
    with pytest.raises(ValueError, match="eval_pool=5"):
        ValidationConfig(eval_pool=5)


def test_mine_sweep_writes_each_source_with_its_window(tmp_path):
    from eci_core.mining import SWEEP, mine_sweep, read_beir, read_negative_ids

    data = read_beir(FIXTURE)
    out = mine_sweep(
        data, tmp_path, encoder="hashing", only=["dense-11-30", "bm25-11-30", "dense-percpos-0", "random+llm"]
    )
    names = [n for n, *_ in out]
    assert names == [
        "dense-11-30",
        "dense-percpos-0",
        "bm25-11-30",
    ]  # random+llm needs --add-negatives: skipped
    for name, res, path, n in out:
        assert path == tmp_path / f"{name}.trec" and path.read_text().split("\n")[0].endswith(name)
        assert n == res.n_negatives
    enc = HashingEncoder()
    qe, pe = enc.encode_queries(data.query_texts), enc.encode_passages(data.passage_texts)
    ranked = {}
    for qi, pos in data.positives.items():
        sc = pe @ qe[qi]
        order = [int(i) for i in np.lexsort((np.arange(sc.size), -sc)) if int(i) not in pos]
        ranked[data.query_ids[qi]] = [data.passage_ids[i] for i in order]
    got = read_negative_ids(tmp_path / "dense-11-30.trec")
    for q, pids in got.items():
        assert all(10 <= ranked[q].index(p) < 30 for p in pids)  # ranks 11-30 of the dense ranking
    assert len({n for n, _, _ in SWEEP}) >= 16
    with pytest.raises(ValueError, match="unknown"):
        mine_sweep(data, tmp_path, only=["nope"])
