"""One protocol for every trainer: per source × split × seed, train on the training queries with
that source's negatives, rank the whole evaluation corpus for the held-out queries, evaluate.

Equal budget for every compared source (and the in-batch-only baseline), per split and seed:

* the same splits, chosen by ``split_policy`` (``splits.make_splits``): the data's official
  train/test (or train/dev) split, or k-fold over the labelled queries;
* the same training queries: those of the split's training part that every compared source
  covers with at least one negative after the leakage filter (``splits.training_lists``); the
  others are dropped for every source and counted per source that left them uncovered;
* each source's negatives as given (a negative that is its own query's positive is kept and
  counted, ``own_positive``), less the positives of test queries (``leaked``);
* the same batches: ``steps`` batches of ``batch_size`` anchors, drawn as consecutive epochs of
  seeded permutations of the training queries, each anchor with one of its positives (seeded),
  identical for every source;
* the same number of negatives per example, ``negatives_per_example`` = m, drawn per example
  from that query's list with a generator seeded by (seed, split): without replacement when the
  list has at least m, otherwise with replacement (a query with 3 negatives and m = 5 repeats
  some), so every loss sees B·m hard negatives;
* the same learning rate and seeds (``first_seed`` … ``first_seed`` + n − 1; 0 … n − 1 by default).

The untrained encoder is the first baseline (no training); training with in-batch negatives only
(the same batches, no hard negatives) is the second.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from typing import Callable, Sequence

import numpy as np

from eci_core.validation.splits import SPLIT_POLICIES, make_splits, resolve_policy, training_lists
from eci_core.validation.trainers import Batch, make_trainer

UNTRAINED = "untrained"
IN_BATCH = "in-batch only"
BASELINES = (UNTRAINED, IN_BATCH)
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class ValidationConfig:
    """Options of :func:`validate` (defaults are the CLI's).

    ``split_policy``: ``auto`` (the official split when the data has one, else k-fold),
    ``official`` or ``kfold`` (``splits.make_splits``).
    ``first_seed``: the training seeds are ``first_seed … first_seed + seeds − 1`` (a long run
    split into one call per seed, each saved on its own; merged tables equal one call's).
    ``splits_limit``: evaluate only the first N splits (e.g. 1 for a CPU fine-tune); ``None`` = all.
    ``lr``: None = the trainer's default (1e-3 linear, 5e-5 finetune).
    ``eval_pool``: None ranks the whole evaluation corpus. K > 0 is a CPU approximation for
    expensive trainers: per split, the evaluation corpus is the union of the target encoder's
    top-K passages for the split's test queries (frozen embeddings, from the cache) plus their
    positives (pooled evaluation, as in TREC pooling); every variant re-ranks that same pool. Scores on a pool
    are higher than over the whole corpus (fewer competitors); sources are compared on the same pool."""

    trainer: str = "linear"
    folds: int = 5
    seeds: int = 3
    steps: int | None = None
    batch_size: int = 16
    negatives_per_example: int = 3
    lr: float | None = None
    exclude_prefixes: tuple[str, ...] = ()
    split_seed: int = 0
    splits_limit: int | None = None
    depth: int = 100
    n_bootstrap: int = 1000
    max_seq_length: int | None = None
    eval_pool: int | None = None
    threads: int | None = None
    split_policy: str = "auto"
    first_seed: int = 0

    def __post_init__(self) -> None:
        if (
            isinstance(self.first_seed, bool)
            or not isinstance(self.first_seed, (int, np.integer))
            or self.first_seed < 0
        ):
            raise ValueError(f"first_seed={self.first_seed!r}: must be an integer >= 0")
        if self.split_policy not in SPLIT_POLICIES:
            raise ValueError(f"split_policy={self.split_policy!r}: use one of {', '.join(SPLIT_POLICIES)}")
        for name in ("seeds", "steps", "batch_size", "negatives_per_example", "depth", "n_bootstrap"):
            v = getattr(self, name)
            if name == "steps" and v is None:  # one epoch of the training queries (epoch_steps)
                continue
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{name}={v!r}: must be an integer >= 1")
        if self.batch_size < 2:
            raise ValueError(
                f"batch_size={self.batch_size}: must be >= 2 (in-batch negatives need a second query)"
            )
        if self.depth < 10:
            raise ValueError(f"depth={self.depth}: must be >= 10 (the measures are @10)")
        if self.eval_pool is not None and (isinstance(self.eval_pool, bool) or self.eval_pool < 10):
            raise ValueError(f"eval_pool={self.eval_pool!r}: must be None (whole corpus) or >= 10")
        if self.lr is not None and not self.lr > 0:
            raise ValueError(f"lr={self.lr!r}: must be > 0 (e.g. 1e-3)")


def batch_plan(
    collection, queries: np.ndarray, steps: int, batch_size: int, seed: int, split_no: int
) -> tuple[np.ndarray, np.ndarray]:
    """(steps, B) anchor query indices and (steps, B) positive passage indices (module docstring)."""
    rng = np.random.default_rng([int(seed), int(split_no), 0])
    need = steps * batch_size
    b = min(batch_size, queries.size)
    need = steps * b
    stream = np.concatenate([rng.permutation(queries) for _ in range(-(-need // max(queries.size, 1)))])[
        :need
    ]
    anchors = stream.reshape(steps, b)
    pos = np.empty_like(anchors)
    for (i, j), q in np.ndenumerate(anchors):
        ps = collection.positives[int(q)]
        pos[i, j] = ps[int(rng.integers(len(ps)))] if len(ps) > 1 else ps[0]
    return anchors, pos


def sample_negatives(
    lists: dict[int, np.ndarray], anchors: np.ndarray, m: int, seed: int, split_no: int
) -> np.ndarray:
    """(steps, B, m) negatives drawn per example from each anchor's list (module docstring)."""
    rng = np.random.default_rng([int(seed), int(split_no), 1])
    out = np.empty(anchors.shape + (m,), dtype=np.int64)
    for idx, q in np.ndenumerate(anchors):
        lst = lists[int(q)]
        out[idx] = lst[rng.permutation(lst.size)[:m]] if lst.size >= m else lst[rng.integers(0, lst.size, m)]
    return out


@dataclass
class RawRuns:
    """What the protocol produced before aggregation."""

    per_query: "object"  # DataFrame: variant, split, seed, query_id, ndcg@10, recall@10, mrr@10
    meta: dict = field(default_factory=dict)


def eval_passages(collection, exclude_prefixes: Sequence[str]) -> np.ndarray:
    """Indices of the passages of the evaluation corpus (ids not starting with an excluded prefix)."""
    prefixes = tuple(p for p in exclude_prefixes if p)
    if not prefixes:
        return np.arange(collection.n_passages, dtype=np.int64)
    return np.array(
        [i for i, pid in enumerate(collection.passage_ids) if not pid.startswith(prefixes)], dtype=np.int64
    )


def _pool_embeddings(collection, ev, encoder, cache, progress):
    """Frozen embeddings of all queries and of the evaluation passages under the target encoder
    (``encoder``, None = bundled MiniLM, read from the embedding cache): they choose the pool."""
    from eci_core.models.encoding import embed
    from eci_core.models.registry import load_encoder

    enc = load_encoder(encoder)
    q = np.asarray(
        embed(enc, list(collection.query_texts), "query", cache=cache, progress=progress), np.float32
    )
    p = np.asarray(
        embed(enc, [collection.passage_texts[int(i)] for i in ev], "passage", cache=cache, progress=progress),
        np.float32,
    )
    return q, p


def epoch_steps(splits, batch_size: int) -> int:
    """The default training budget: one epoch of the largest training split,
    ``ceil(max |train| / batch_size)`` steps (at least 1), for every trainer.

    Why one epoch: it is the fine-tuning reference's budget, and the cheap trainers agree with
    that reference only near it. Against real fine-tuning (BENCHMARKS.md, "Validation"), ``linear``
    at one epoch decided 0.88 of NFCorpus's 24 resolved source pairs and 14 of 14 on pyfaq, where
    the earlier fixed 100 steps × 32 (28 epochs of pyfaq's ~115 training queries) decided 0.50,
    chance. The rule was chosen after those runs, on those two datasets: a third is needed to
    confirm it."""
    largest = max((int(np.asarray(s.train).size) for s in splits), default=0)
    return max(1, -(-largest // int(batch_size)))


def run_protocol(
    collection,
    sources: Sequence[str],
    config: ValidationConfig,
    encoder=None,
    cache=None,
    progress: Progress | None = None,
    trainer=None,
) -> RawRuns:
    """Train and evaluate every variant (baselines + ``sources``) on every split and seed."""
    import pandas as pd

    from eci_core.validation.evaluation import evaluate_embeddings

    sources = list(sources)
    missing = [s for s in sources if s not in collection.sources]
    if missing:
        raise ValueError(f"sources: {missing[0]!r} is not loaded (loaded: {', '.join(collection.sources)})")
    if not sources:
        raise ValueError("sources: nothing to validate; load at least one negative source")
    t0 = time.perf_counter()
    policy = resolve_policy(collection, config.split_policy)
    all_splits = make_splits(collection, config.folds, config.split_seed, policy)
    if config.steps is None:  # recorded resolved, so a saved result says what ran
        config = replace(config, steps=epoch_steps(all_splits, config.batch_size))
    splits = all_splits[: config.splits_limit] if config.splits_limit else all_splits
    trainer = trainer or make_trainer(
        config.trainer,
        encoder,
        **(
            {"max_seq_length": config.max_seq_length, "threads": config.threads}
            if config.trainer in ("finetune", "top-layers")
            else {}
        ),
    )
    lr = config.lr if config.lr is not None else trainer.default_lr
    ev = eval_passages(collection, config.exclude_prefixes)
    ev_ids = [collection.passage_ids[int(i)] for i in ev]
    trainer.setup(collection, ev, cache=cache, progress=progress)
    seeds = list(range(config.first_seed, config.first_seed + config.seeds))
    total = len(splits) * (1 + len(seeds) * (1 + len(sources)))
    done = 0
    rows = []
    split_meta = []
    pool_emb = None
    for s_no, split in enumerate(splits):
        tl = training_lists(collection, split, sources)
        if tl.queries.size < 2:
            raise ValueError(
                f"{split.name}: only {tl.queries.size} training queries are covered by every source; "
                "compare fewer sources (--sources) or use fewer folds"
            )
        test_ids = [collection.query_ids[int(q)] for q in split.test]
        qrels = {
            collection.query_ids[int(q)]: {
                collection.passage_ids[int(p)]: 1 for p in collection.positives[int(q)]
            }
            for q in split.test
        }
        split_meta.append(
            {
                "split": split.name,
                "n_train": int(split.train.size),
                "n_test": int(split.test.size),
                "n_train_used": int(tl.queries.size),
                "leaked": tl.leaked,
                "own_positive": tl.own_positive,
                "not_covered": tl.not_covered,
            }
        )

        trainer.eval_passages = ev
        split_ids = ev_ids
        if config.eval_pool:
            from eci_core.metrics.retrieval import top_k

            if pool_emb is None:
                pool_emb = _pool_embeddings(collection, ev, encoder, cache, progress)
            top, _ = top_k(pool_emb[0][split.test], pool_emb[1], config.eval_pool)
            pos = np.array([p for q in split.test for p in collection.positives[int(q)]], dtype=np.int64)
            pool = np.union1d(ev[np.unique(top)], pos[np.isin(pos, ev)])
            keep = np.isin(ev, pool)
            trainer.eval_passages = ev[keep]
            split_ids = [collection.passage_ids[int(i)] for i in ev[keep]]
            split_meta[-1]["n_eval_passages"] = int(keep.sum())
        qe, pe = trainer.run(None, 0, lr, split.test, progress=progress)

        def record(variant, seed, q_emb, p_emb):
            res = evaluate_embeddings(q_emb, test_ids, p_emb, split_ids, qrels, depth=config.depth)
            for qid in test_ids:
                rows.append(
                    {"variant": variant, "split": split.name, "seed": seed, "query_id": qid, **res[qid]}
                )

        for seed in seeds:
            record(UNTRAINED, seed, qe, pe)
        done += 1
        if progress:
            progress("Training and evaluating", done, total)
        for seed in seeds:
            anchors, pos = batch_plan(collection, tl.queries, config.steps, config.batch_size, seed, s_no)
            plans = {IN_BATCH: [Batch(anchors[i], pos[i], None) for i in range(anchors.shape[0])]}
            for variant in sources:
                lists = {int(q): tl.negatives[variant][int(q)] for q in tl.queries}
                negs = sample_negatives(lists, anchors, config.negatives_per_example, seed, s_no)
                plans[variant] = [Batch(anchors[i], pos[i], negs[i]) for i in range(anchors.shape[0])]
            groups = [[IN_BATCH], list(sources)] if hasattr(trainer, "run_many") else [[v] for v in plans]
            for group in groups:
                if hasattr(trainer, "run_many"):
                    embs = trainer.run_many([plans[v] for v in group], seed, lr, split.test)
                else:
                    embs = [trainer.run(plans[group[0]], seed, lr, split.test, progress=progress)]
                for variant, (qe, pe) in zip(group, embs):
                    record(variant, seed, qe, pe)
                    done += 1
                    if progress:
                        progress("Training and evaluating", done, total)
    meta = {
        "trainer": trainer.name,
        "encoder": getattr(getattr(trainer, "encoder", None), "name", None)
        or getattr(trainer, "model_path", None),
        "device": getattr(trainer, "device", "cpu"),
        "lr": lr,
        "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(config).items()},
        "sources": sources,
        "split_policy": policy,
        "n_eval_passages": int(ev.size),
        "n_queries": int(sum(1 for ps in collection.positives.values() if ps)),
        "splits": split_meta,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    return RawRuns(pd.DataFrame(rows), meta)
