"""Train/test splits over queries and the training lists of every source.

The split policy (``policy``):

* ``official``: the data's own split. The test set is every query labelled in the qrels "test"
  split (``Collection.query_splits``), or in "dev" when no query is labelled "test"; the training
  queries are those labelled "train". Test queries need no mined negatives (people mine
  negatives for their training queries only). Data without labelled train and test/dev queries
  has no official split: ``ValueError``.
* ``kfold``: k-fold cross-validation over the queries that have a positive: the queries are
  permuted once with ``numpy.random.default_rng(seed)`` and cut into ``folds`` near-equal parts;
  fold f is the test set of split f and the other folds are its training queries.
* ``auto`` (default): ``official`` when the data has one, else ``kfold``.

A test query is never a training query. Every source trains on its negatives as given, as the
user's own trainer would: only what evaluation integrity needs is dropped. A training negative
that is a labelled positive of a test query of the same split would teach the model to push that
test positive down (it leaks the test labels in reverse), so it is dropped from training and
counted (``leaked``). A training negative that is a labelled positive of its own query (a false
negative the source should not contain) is kept and counted (``own_positive``): a source with
such negatives trains differently from its clean twin, which is what the validation must see.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

SPLIT_POLICIES = ("auto", "official", "kfold")


@dataclass(frozen=True)
class Split:
    """One train/test split: query indices of the collection (sorted int64 arrays)."""

    name: str
    train: np.ndarray
    test: np.ndarray


def official_test_split(collection) -> str | None:
    """The qrels split that is the official test set: "test" when a labelled query carries it,
    else "dev", provided some labelled query is "train"; None when the data has no official split."""
    qsplits = getattr(collection, "query_splits", None) or {}
    found = {qsplits.get(q) for q, ps in collection.positives.items() if ps}
    if "train" not in found:
        return None
    return "test" if "test" in found else ("dev" if "dev" in found else None)


def resolve_policy(collection, policy: str = "auto") -> str:
    """``"official"`` or ``"kfold"``: the policy ``make_splits`` applies to ``collection``."""
    if policy not in SPLIT_POLICIES:
        raise ValueError(f"split_policy={policy!r}: use one of {', '.join(SPLIT_POLICIES)}")
    if policy == "auto":
        return "official" if official_test_split(collection) else "kfold"
    if policy == "official" and not official_test_split(collection):
        raise ValueError(
            "split_policy='official': the data has no official split (it needs queries labelled in "
            "qrels/train.tsv and in qrels/test.tsv or qrels/dev.tsv of a BEIR directory); "
            "use split_policy 'kfold' (--split-policy kfold) or 'auto'"
        )
    return policy


def make_splits(collection, folds: int = 5, seed: int = 0, policy: str = "auto") -> list[Split]:
    """The splits of ``collection`` under ``policy`` (module docstring): the official train/test
    split, or ``folds``-fold cross-validation over queries with a positive, assignment fixed by ``seed``."""
    if isinstance(folds, bool) or not isinstance(folds, (int, np.integer)) or folds < 2:
        raise ValueError(f"folds={folds!r}: must be an integer >= 2 (e.g. 5)")
    policy = resolve_policy(collection, policy)
    labelled = np.array(sorted(q for q, ps in collection.positives.items() if ps), dtype=np.int64)
    if policy == "official":
        qsplits = collection.query_splits
        test_name = official_test_split(collection)
        train = np.array([q for q in labelled if qsplits.get(int(q)) == "train"], dtype=np.int64)
        test = np.array([q for q in labelled if qsplits.get(int(q)) == test_name], dtype=np.int64)
        return [Split(f"train/{test_name}", train, test)]
    if labelled.size < folds:
        raise ValueError(f"folds={folds}: only {labelled.size} queries have a positive; use fewer folds")
    perm = np.random.default_rng(seed).permutation(labelled)
    parts = np.array_split(perm, folds)
    out = []
    for f, test in enumerate(parts):
        train = np.concatenate([p for g, p in enumerate(parts) if g != f])
        out.append(Split(f"fold {f + 1}/{folds}", np.sort(train), np.sort(test)))
    return out


@dataclass
class TrainingLists:
    """Per split, the negatives each source may train with.

    ``negatives[source][q]`` = the source's negatives (passage indices, in rank order) of training
    query ``q`` less the positives of test queries; ``queries`` = the training queries every
    compared source covers (≥ 1 negative left), sorted; ``leaked[source]`` = negatives dropped
    because they are a positive of a test query; ``own_positive[source]`` = negatives kept that
    are a labelled positive of their own query; ``not_covered[source]`` = training queries with a
    positive that this source leaves without a negative (they are dropped for every source, equal
    budget).
    """

    queries: np.ndarray
    negatives: dict[str, dict[int, np.ndarray]]
    leaked: dict[str, int] = field(default_factory=dict)
    not_covered: dict[str, int] = field(default_factory=dict)
    n_train_candidates: int = 0
    own_positive: dict[str, int] = field(default_factory=dict)


def training_lists(collection, split: Split, sources: list[str]) -> TrainingLists:
    """The training negatives of ``sources`` for ``split`` (see :class:`TrainingLists`)."""
    held_out = np.array(
        sorted({p for q in split.test for p in collection.positives.get(int(q), [])}), dtype=np.int64
    )
    train_set = set(int(q) for q in split.train)
    negatives: dict[str, dict[int, np.ndarray]] = {}
    leaked: dict[str, int] = {}
    own_positive: dict[str, int] = {}
    covered_all: set[int] | None = None
    not_covered: dict[str, int] = {}
    for name in sources:
        src = collection.sources[name]
        q = np.asarray(src.q_idx, dtype=np.int64)
        p = np.asarray(src.p_idx, dtype=np.int64)
        in_train = np.isin(q, split.train)
        leak = in_train & np.isin(p, held_out)
        leaked[name] = int(leak.sum())
        keep = in_train & ~leak
        per: dict[int, np.ndarray] = {}
        n_own = 0
        qk, pk = q[keep], p[keep]
        if qk.size:
            bounds = np.flatnonzero(np.diff(qk)) + 1  # rows are sorted by (q_idx, rank)
            for grp_q, grp_p in zip(np.split(qk, bounds), np.split(pk, bounds)):
                own = collection.positives.get(int(grp_q[0]), [])
                if own:
                    n_own += int(np.isin(grp_p, own).sum())
                per[int(grp_q[0])] = grp_p
        negatives[name] = per
        own_positive[name] = n_own
        cov = set(per) & train_set
        not_covered[name] = len(train_set - cov)
        covered_all = cov if covered_all is None else covered_all & cov
    queries = np.array(sorted(covered_all if covered_all is not None else train_set), dtype=np.int64)
    return TrainingLists(queries, negatives, leaked, not_covered, len(train_set), own_positive)
