"""Train/test splits over queries and the leakage-safe training lists of every source.

* A BEIR directory labelled with both ``qrels/train.tsv`` and ``qrels/test.tsv``
  (``Collection.query_splits``) gives one split: train on the "train" queries, test on the
  "test" queries.
* Otherwise k-fold cross-validation over the queries that have a positive: the queries are
  permuted once with ``numpy.random.default_rng(seed)`` and cut into ``folds`` near-equal parts;
  fold f is the test set of split f and the other folds are its training queries.

A test query is never a training query. A training negative that is a labelled positive of a
test query of the same split would teach the model to push that test positive down (it leaks
the test labels in reverse), so it is dropped from training and counted (``leaked``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Split:
    """One train/test split: query indices of the collection (sorted int64 arrays)."""

    name: str
    train: np.ndarray
    test: np.ndarray


def make_splits(collection, folds: int = 5, seed: int = 0) -> list[Split]:
    """The splits of ``collection`` (module docstring): BEIR train/test when both are labelled,
    else ``folds``-fold cross-validation over queries with a positive, assignment fixed by ``seed``."""
    if isinstance(folds, bool) or not isinstance(folds, (int, np.integer)) or folds < 2:
        raise ValueError(f"folds={folds!r}: must be an integer >= 2 (e.g. 5)")
    labelled = np.array(sorted(q for q, ps in collection.positives.items() if ps), dtype=np.int64)
    qsplits = getattr(collection, "query_splits", None) or {}
    if qsplits:
        train = np.array([q for q in labelled if qsplits.get(int(q)) == "train"], dtype=np.int64)
        test = np.array([q for q in labelled if qsplits.get(int(q)) == "test"], dtype=np.int64)
        if train.size and test.size:
            return [Split("train/test", train, test)]
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
    query ``q`` with held-out positives removed; ``queries`` = the training queries every compared
    source covers (≥ 1 negative left), sorted; ``leaked[source]`` = negatives dropped because they
    are a positive of a test query; ``not_covered[source]`` = training queries with a positive that
    this source leaves without a negative (they are dropped for every source, equal budget).
    """

    queries: np.ndarray
    negatives: dict[str, dict[int, np.ndarray]]
    leaked: dict[str, int] = field(default_factory=dict)
    not_covered: dict[str, int] = field(default_factory=dict)
    n_train_candidates: int = 0


def training_lists(collection, split: Split, sources: list[str]) -> TrainingLists:
    """Leakage-safe training negatives of ``sources`` for ``split`` (see :class:`TrainingLists`)."""
    held_out = np.array(sorted({p for q in split.test for p in collection.positives.get(int(q), [])}), dtype=np.int64)
    train_set = set(int(q) for q in split.train)
    negatives: dict[str, dict[int, np.ndarray]] = {}
    leaked: dict[str, int] = {}
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
        qk, pk = q[keep], p[keep]
        if qk.size:
            bounds = np.flatnonzero(np.diff(qk)) + 1  # rows are sorted by (q_idx, rank)
            for grp_q, grp_p in zip(np.split(qk, bounds), np.split(pk, bounds)):
                own = collection.positives.get(int(grp_q[0]), [])
                grp_p = grp_p[~np.isin(grp_p, own)] if own else grp_p
                if grp_p.size:
                    per[int(grp_q[0])] = grp_p
        negatives[name] = per
        cov = set(per) & train_set
        not_covered[name] = len(train_set - cov)
        covered_all = cov if covered_all is None else covered_all & cov
    queries = np.array(sorted(covered_all if covered_all is not None else train_set), dtype=np.int64)
    return TrainingLists(queries, negatives, leaked, not_covered, len(train_set))
