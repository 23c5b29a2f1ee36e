"""The miners' parameters (sentence-transformers' names), their checks and shared constants."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

METHODS = ("bm25", "dense", "cross-encoder", "bm25+ce", "random")
#: Candidates per retriever before cross-encoder rescoring.
DEFAULT_POOL_SIZE = {"cross-encoder": 50, "bm25+ce": 100}
#: Default ``absolute_margin`` (cross-encoder logits) of the ``bm25+ce`` method.
BM25CE_DEFAULT_MARGIN = 1.0
#: Filters in the order they are applied (and reported).
FILTERS = ("absolute_margin", "relative_margin", "max_score", "min_score")
#: Upper bound on the floats held by one block of query × passage scores (16 MB of float32).
BLOCK_FLOATS = 1 << 22

#: ``progress(stage, done, total)``
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class Params:
    """Checked selection parameters of one mining run (``range_max`` resolved)."""

    num_negatives: int
    range_min: int
    range_max: int
    absolute_margin: float | None
    relative_margin: float | None
    max_score: float | None
    min_score: float | None
    sampling_strategy: str
    seed: int


def check_params(
    method,
    num_negatives,
    range_min,
    range_max,
    absolute_margin,
    relative_margin,
    max_score,
    min_score,
    sampling_strategy,
    seed,
    pool_size,
) -> Params:
    """Check every parameter (a ``ValueError`` names the first bad one and suggests a fix) and
    resolve ``range_max``'s default (module docstring of :mod:`eci_core.mining`)."""
    if method not in METHODS:
        raise ValueError(f"method={method!r}: use one of {', '.join(METHODS)}")
    for name, v in (("num_negatives", num_negatives), ("range_min", range_min), ("seed", seed)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise ValueError(f"{name}={v!r}: must be an integer")
    if num_negatives < 1:
        raise ValueError(f"num_negatives={num_negatives}: must be >= 1 (e.g. 10)")
    if range_min < 0:
        raise ValueError(f"range_min={range_min}: must be >= 0 (0 keeps the best candidates)")
    scores = (
        ("absolute_margin", absolute_margin),
        ("relative_margin", relative_margin),
        ("max_score", max_score),
        ("min_score", min_score),
    )
    for name, v in scores:
        if v is not None and (
            not isinstance(v, (int, float, np.floating, np.integer)) or not math.isfinite(v)
        ):
            raise ValueError(f"{name}={v!r}: must be a finite number or None")
    if absolute_margin is not None and absolute_margin < 0:
        raise ValueError(
            f"absolute_margin={absolute_margin}: must be >= 0 (a candidate is dropped if its "
            "score + margin > the positive's)"
        )
    if relative_margin is not None and not 0 <= relative_margin < 1:
        raise ValueError(
            f"relative_margin={relative_margin}: must be in [0, 1) (e.g. 0.05 keeps negatives below "
            "95 % of the positive score)"
        )
    if max_score is not None and min_score is not None and min_score > max_score:
        raise ValueError(f"min_score={min_score} must be <= max_score={max_score}")
    if sampling_strategy not in ("top", "random"):
        raise ValueError(f"sampling_strategy={sampling_strategy!r}: use 'top' or 'random'")
    if method == "random":
        given = [(n, v) for n, v in scores if v is not None]
        if given:
            raise ValueError(
                f"{given[0][0]}={given[0][1]}: the random miner has no relevance score to filter on; "
                "remove it or use method 'bm25' or 'dense'"
            )
        if range_min or range_max is not None or sampling_strategy != "top":
            raise ValueError(
                "range_min/range_max/sampling_strategy do not apply to method 'random' (it already "
                "samples uniformly); leave them at their defaults"
            )
    if pool_size is not None and range_min + num_negatives > pool_capacity(method, pool_size):
        raise ValueError(
            f"pool_size={pool_size}: too small for range_min + num_negatives = "
            f"{range_min + num_negatives}; increase it"
        )
    if method == "bm25+ce" and absolute_margin is None:
        absolute_margin = BM25CE_DEFAULT_MARGIN
    filtered = any(v is not None for v in (absolute_margin, relative_margin, max_score, min_score))
    if range_max is None:
        if pool_size is not None:  # cross-encoder methods: every reranked candidate is in the window
            range_max = pool_capacity(method, pool_size)
        else:
            range_max = range_min + num_negatives * (10 if filtered else 1)
    if isinstance(range_max, bool) or not isinstance(range_max, (int, np.integer)):
        raise ValueError(f"range_max={range_max!r}: must be an integer or None")
    if range_max <= range_min:
        raise ValueError(f"range_max={range_max} must be > range_min={range_min}")
    if num_negatives > range_max - range_min:
        raise ValueError(
            f"num_negatives={num_negatives}: only range_max - range_min = {range_max - range_min} "
            f"candidates remain after skipping range_min={range_min} of range_max={range_max}; "
            "decrease num_negatives or range_min, or increase range_max"
        )
    return Params(
        int(num_negatives),
        int(range_min),
        int(range_max),
        absolute_margin,
        relative_margin,
        max_score,
        min_score,
        sampling_strategy,
        int(seed),
    )


def pool_capacity(method: str, pool_size: int) -> int:
    """Candidates a cross-encoder method reranks: the union of two pools for ``cross-encoder``."""
    return 2 * pool_size if method == "cross-encoder" else pool_size


def chunk_size(n_passages: int, cap: int = 1024) -> int:
    """Queries per block so that a block of query × passage scores holds at most
    :data:`BLOCK_FLOATS` floats (at most ``cap`` queries)."""
    return max(1, min(cap, BLOCK_FLOATS // max(n_passages, 1)))
