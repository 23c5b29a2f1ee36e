"""The split policy of ``eci validate`` and what each source trains on (issue 15, item 5).

* ``official``: the qrels test (else dev) queries are the test set even when no source mined
  negatives for them (the normal case); ``kfold``: k-fold over the labelled queries; ``auto``:
  official when the data has train + test/dev qrels, else kfold; ``official`` without such a
  split is an error.
* Each source trains on its negatives as given: a negative that is its own query's positive is
  kept (and counted), so a source containing them trains differently from its clean twin.

The fixtures are tiny BEIR directories written here; the trainer is the linear one on hashing
embeddings, so the tests take seconds.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from eci_core.io.collection import Collection
from eci_core.io.records import PassageRef, QueryRecord
from eci_core.models.hashing import HashingEncoder
from eci_core.validation import ValidationConfig, load_results, validate
from eci_core.validation.loading import load_for_validation
from eci_core.validation.protocol import run_protocol
from eci_core.validation.splits import make_splits, training_lists

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "app_small"  # qrels/test.tsv only: no official split


def write_beir(
    d: Path, n_train: int = 12, n_eval: int = 6, eval_split: str = "test", extra_eval: str | None = None
) -> dict:
    """A BEIR directory: query i has the positive p{i}-a ("topic i ..."); every query has three
    more passages on its topic. Negatives (one TREC run) exist for the training queries only.
    Returns the query ids per split."""
    d.mkdir(parents=True, exist_ok=True)
    (d / "qrels").mkdir(exist_ok=True)
    (d / "negatives").mkdir(exist_ok=True)
    names = ["train"] * n_train + [eval_split] * n_eval + ([extra_eval] * 3 if extra_eval else [])
    qids = [f"q{i}" for i in range(len(names))]
    with open(d / "corpus.jsonl", "w") as f:
        for i in range(len(names)):
            for k, w in enumerate("abcd"):
                f.write(
                    json.dumps(
                        {"_id": f"p{i}-{w}", "title": f"topic{i}", "text": f"topic{i} passage {w} words{k}"}
                    )
                    + "\n"
                )
    with open(d / "queries.jsonl", "w") as f:
        for i, q in enumerate(qids):
            f.write(json.dumps({"_id": q, "text": f"question about topic{i}"}) + "\n")
    by_split: dict[str, list[str]] = {}
    for q, s in zip(qids, names):
        by_split.setdefault(s, []).append(q)
    for s, qs in by_split.items():
        with open(d / "qrels" / f"{s}.tsv", "w") as f:
            f.write("query-id\tcorpus-id\tscore\n")
            for q in qs:
                f.write(f"{q}\tp{q[1:]}-a\t1\n")
    with open(d / "negatives" / "dense.trec", "w") as f:
        for q in by_split["train"]:
            i = int(q[1:])
            for r, w in enumerate("bcd"):
                f.write(f"{q} Q0 p{i}-{w} {r + 1} {1 - r / 10:.2f} dense\n")
    return by_split


# ----------------------------------------------------------------------------- the split policy
def test_official_split_tests_on_the_test_queries_without_negatives(tmp_path):
    from eci_core.validation.splits import resolve_policy

    ids = write_beir(tmp_path / "b")
    coll, report = load_for_validation([str(tmp_path / "b")])
    assert not report.errors
    # the loader alone (what `eci score` sees) knows only the queries with negatives
    from eci_core.io.load import load_paths

    plain, _ = load_paths([str(tmp_path / "b")])
    assert sorted(plain.query_ids) == sorted(ids["train"])
    # the validation's copy holds the test queries too, labelled with their split and positive
    for q in ids["test"]:
        qi = coll.query_index(q)
        assert coll.query_splits[qi] == "test"
        assert [coll.passage_ids[p] for p in coll.positives[qi]] == [f"p{q[1:]}-a"]
    assert resolve_policy(coll, "auto") == "official"
    (split,) = make_splits(coll, folds=5, policy="auto")
    assert split.name == "train/test"
    assert sorted(coll.query_ids[int(q)] for q in split.test) == sorted(ids["test"])
    assert sorted(coll.query_ids[int(q)] for q in split.train) == sorted(ids["train"])
    assert make_splits(coll, folds=5, policy="official")[0].test.tolist() == split.test.tolist()


def test_dev_is_the_test_set_when_there_is_no_test_split(tmp_path):
    from eci_core.validation.loading import eval_split_name

    ids = write_beir(tmp_path / "b", eval_split="dev")
    assert eval_split_name(tmp_path / "b") == "dev"
    coll, _ = load_for_validation([str(tmp_path / "b")])
    (split,) = make_splits(coll, policy="official")
    assert split.name == "train/dev"
    assert sorted(coll.query_ids[int(q)] for q in split.test) == sorted(ids["dev"])
    # with both, test wins and the dev queries are neither trained nor tested on
    ids = write_beir(tmp_path / "c", extra_eval="dev")
    coll, _ = load_for_validation([str(tmp_path / "c")])
    (split,) = make_splits(coll, policy="auto")
    assert sorted(coll.query_ids[int(q)] for q in split.test) == sorted(ids["test"])
    assert not {coll.query_ids[int(q)] for q in np.concatenate([split.train, split.test])} & set(ids["dev"])


def test_kfold_forced_on_data_with_an_official_split(tmp_path):
    ids = write_beir(tmp_path / "b")
    coll, _ = load_for_validation([str(tmp_path / "b")], split_policy="kfold")
    assert sorted(coll.query_ids) == sorted(ids["train"])  # kfold: the data as loaded, no query added
    splits = make_splits(coll, folds=3, seed=0, policy="kfold")
    assert [s.name for s in splits] == ["fold 1/3", "fold 2/3", "fold 3/3"]
    assert sorted(np.concatenate([s.test for s in splits]).tolist()) == sorted(coll.positives)
    # kfold even when the test queries are loaded
    full, _ = load_for_validation([str(tmp_path / "b")])
    assert len(make_splits(full, folds=3, policy="kfold")) == 3


def test_auto_falls_back_to_kfold_and_official_without_a_split_is_an_error(tmp_path):
    from eci_core.validation.loading import add_eval_queries, eval_split_name
    from eci_core.validation.splits import resolve_policy

    coll, _ = load_for_validation([str(FIXTURE)])  # qrels/test.tsv only
    assert eval_split_name(FIXTURE) is None and add_eval_queries(coll, FIXTURE) == 0
    assert resolve_policy(coll, "auto") == "kfold"
    assert len(make_splits(coll, folds=2, policy="auto")) == 2
    with pytest.raises(ValueError, match="split_policy='official': the data has no official split"):
        make_splits(coll, folds=2, policy="official")
    with pytest.raises(ValueError, match="split_policy='both'"):
        make_splits(coll, policy="both")
    with pytest.raises(ValueError, match="split_policy='both'"):
        ValidationConfig(split_policy="both")


def test_cli_validate_on_beir_uses_the_official_test_queries(tmp_path, capsys):
    from eci_core.cli import main

    ids = write_beir(tmp_path / "b")
    out = tmp_path / "v"
    rc = main(
        [
            "validate",
            str(tmp_path / "b"),
            "--encoder",
            "hashing",
            "--seeds",
            "1",
            "--steps",
            "3",
            "--batch-size",
            "4",
            "--bootstrap",
            "50",
            "--no-progress",
            "--out",
            str(out),
        ]
    )
    text = capsys.readouterr().out
    assert rc == 0
    assert "Split policy: official" in text and "train/test: 12 of 12 training queries used" in text
    res = load_results(out)
    assert res.meta["split_policy"] == "official"
    assert "the official split" in res.summary()
    assert [s["split"] for s in res.meta["splits"]] == ["train/test"]
    assert set(res.per_query["query_id"]) == set(ids["test"])
    # forced k-fold: the official test queries are not loaded, folds over the training queries
    rc = main(
        [
            "validate",
            str(tmp_path / "b"),
            "--encoder",
            "hashing",
            "--seeds",
            "1",
            "--steps",
            "3",
            "--batch-size",
            "2",
            "--bootstrap",
            "50",
            "--no-progress",
            "--split-policy",
            "kfold",
            "--folds",
            "3",
            "--out",
            str(tmp_path / "k"),
        ]
    )
    assert rc == 0 and "Split policy: kfold" in capsys.readouterr().out
    assert set(load_results(tmp_path / "k").per_query["query_id"]) == set(ids["train"])
    # official on data without that split: exit 2, one line naming the parameter and the fix
    rc = main(
        [
            "validate",
            str(FIXTURE),
            "--encoder",
            "hashing",
            "--seeds",
            "1",
            "--steps",
            "2",
            "--batch-size",
            "2",
            "--no-progress",
            "--split-policy",
            "official",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2 and "split_policy='official'" in err and "--split-policy kfold" in err


# ----------------------------------------------------------------------------- trained as given
def twins(n: int = 12) -> Collection:
    """``clean``: three true negatives per query; ``dirty``: the same plus the query's own
    positive (same id) as its first negative."""
    c = Collection()
    clean, dirty = [], []
    for i in range(n):
        pos = PassageRef(f"p{i}", f"topic{i} the answer")
        negs = [PassageRef(f"n{i}-{k}", f"topic{i} other text {k}") for k in range(3)]
        clean.append(QueryRecord(f"q{i}", f"question topic{i}", [pos], negs))
        dirty.append(QueryRecord(f"q{i}", f"question topic{i}", [pos], [pos, *negs]))
    c.add_source("clean", clean)
    c.add_source("dirty", dirty)
    return c


def test_own_positives_are_kept_and_counted():
    c = twins()
    splits = make_splits(c, folds=3, seed=0, policy="kfold")
    for split in splits:
        tl = training_lists(c, split, ["clean", "dirty"])
        assert tl.own_positive == {
            "clean": 0,
            "dirty": split.train.size,
        }  # one own positive per training query
        for q in tl.queries:
            clean, dirty = tl.negatives["clean"][int(q)], tl.negatives["dirty"][int(q)]
            assert clean.tolist() != dirty.tolist()
            assert dirty.tolist() == [c.positives[int(q)][0], *clean.tolist()]
    # the same numbers through validate(): per source, summed over the 3 folds (each query trains in 2)
    cfg = ValidationConfig(
        folds=3, seeds=1, steps=4, batch_size=4, negatives_per_example=4, n_bootstrap=50, split_policy="kfold"
    )
    res = validate(c, ["clean", "dirty"], cfg, encoder=HashingEncoder(64))
    d = res.downstream.set_index("variant")
    assert d.loc["dirty", "own_positive"] == 12 * 2 and d.loc["clean", "own_positive"] == 0
    assert np.isnan(d.loc["in-batch only", "own_positive"])
    assert res.own_positive() == {"clean": 0, "dirty": 24}
    assert any("dirty 24" in n for n in res.notes())


class _Recorder:
    """The linear trainer on hashing embeddings, recording each run's batches and embeddings."""

    name = "recorder"
    default_lr = 1e-2

    def __init__(self):
        from eci_core.validation import make_trainer

        self.inner = make_trainer("linear", HashingEncoder(64))
        self.runs = []

    def setup(self, collection, eval_passages, cache=None, progress=None):
        self.inner.setup(collection, eval_passages, cache, progress)

    def run(self, batches, seed, lr, test_queries, progress=None):
        out = self.inner.run(batches, seed, lr, test_queries)
        if batches is not None:
            self.runs.append((batches, out[0]))
        return out


def test_a_source_with_own_positives_trains_differently_from_its_clean_twin():
    c = twins()
    rec = _Recorder()
    cfg = ValidationConfig(
        folds=3, seeds=1, steps=6, batch_size=4, negatives_per_example=4, split_policy="kfold"
    )
    run_protocol(c, ["clean", "dirty"], cfg, trainer=rec)
    assert len(rec.runs) == 3 * 3  # per fold: in-batch only, clean, dirty
    for f in range(3):
        (_, _), (clean_b, clean_q), (dirty_b, dirty_q) = rec.runs[3 * f : 3 * f + 3]
        own = [sum(int(c.positives[int(a)][0] in n) for a, n in zip(b.anchors, b.negatives)) for b in dirty_b]
        assert sum(own) > 0  # the dirty source's own positives reach the loss as negatives ...
        assert all(c.positives[int(a)][0] not in n for b in clean_b for a, n in zip(b.anchors, b.negatives))
        # ... so it trains another map: the test queries' embeddings differ (float32 noise is ~1e-7)
        assert np.abs(clean_q - dirty_q).max() > 1e-3


def test_first_seed_runs_the_same_seed_as_one_call_with_all_seeds():
    c = twins()
    base = dict(folds=3, steps=4, batch_size=4, split_policy="kfold")
    both = run_protocol(
        c, ["clean", "dirty"], ValidationConfig(seeds=2, **base), encoder=HashingEncoder(64)
    ).per_query
    one = run_protocol(
        c, ["clean", "dirty"], ValidationConfig(seeds=1, first_seed=1, **base), encoder=HashingEncoder(64)
    ).per_query
    assert set(one["seed"]) == {1}
    pd.testing.assert_frame_equal(both[both["seed"] == 1].reset_index(drop=True), one.reset_index(drop=True))
    with pytest.raises(ValueError, match="first_seed=-1"):
        ValidationConfig(first_seed=-1)


def test_default_budget_is_one_epoch_of_the_largest_training_split():
    """``ValidationConfig()`` trains one epoch at batch 16 (steps None, resolved by
    ``epoch_steps``): ceil(max |train| / batch), by hand: ceil(127 / 16) = 8, ceil(127 / 32) = 4,
    ceil(32 / 16) = 2; at least one step."""
    from types import SimpleNamespace

    from eci_core.validation.protocol import epoch_steps

    cfg = ValidationConfig()
    assert (cfg.steps, cfg.batch_size) == (None, 16)
    splits = [SimpleNamespace(train=np.arange(n)) for n in (126, 127, 115)]
    assert epoch_steps(splits, 16) == 8
    assert epoch_steps(splits, 32) == 4
    assert epoch_steps([SimpleNamespace(train=np.arange(32))], 16) == 2
    assert epoch_steps([SimpleNamespace(train=np.arange(0))], 16) == 1
    with pytest.raises(ValueError, match="steps=0"):
        ValidationConfig(steps=0)
