"""Bootstrap intervals over queries and the pairwise P(ECI(A) > ECI(B)) matrix.

A bootstrap resample draws n queries with replacement from the n queries a source covers
(``shared/spec/ECI.md``: "resample queries, B = 1000, fixed seed"). The mean of a per-query
quantity over resample b is ``Σ_i c_bi v_i / n`` with ``c_bi`` the number of times query i was
drawn, so all B means of all columns are one matrix product ``counts (B × n) @ values (n × m)``.

Reproducibility: resamples are drawn in blocks of :data:`BLOCK` from
``PCG64DXSM(SeedSequence([seed, block]))``; the draws depend only on (seed, n, block), never on
the number of threads, and two sets of n queries are resampled with the same positions (this is
what makes "the same resample of the shared queries for A and B" hold).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Mapping

import numpy as np

BLOCK = 50


def _block_counts(n: int, seed: int, block: int, rows: int) -> np.ndarray:
    """Counts matrix (rows × n, float64) of ``rows`` resamples of n items for one block."""
    rng = np.random.Generator(np.random.PCG64DXSM(np.random.SeedSequence([int(seed), int(block)])))
    dtype = np.int32 if n < 2**31 else np.int64
    idx = rng.integers(0, n, size=(rows, n), dtype=dtype)
    counts = np.empty((rows, n), dtype=np.float64)
    for r in range(rows):  # per row: the bincount target stays in cache
        counts[r] = np.bincount(idx[r], minlength=n)
    return counts


def resample_counts(n: int, n_resamples: int = 1000, seed: int = 0) -> np.ndarray:
    """The (B × n) matrix of how often each of n items is drawn in each resample: exactly the
    resamples :func:`resampled_means` uses for the same (n, B, seed)."""
    blocks = [
        _block_counts(n, seed, b, min(BLOCK, n_resamples - b * BLOCK))
        for b in range((n_resamples + BLOCK - 1) // BLOCK)
    ]
    return np.concatenate(blocks, axis=0) if blocks else np.zeros((0, n))


def resampled_means(values, n_resamples: int = 1000, seed: int = 0, n_threads: int = 2) -> np.ndarray:
    """Means of every column of ``values`` (n,) or (n, m) over ``n_resamples`` bootstrap resamples.

    Returns a (B, m) float64 array (B × 1 for a 1-d input); all NaN when n = 0.
    """
    v = np.asarray(values, dtype=np.float64)
    if v.ndim == 1:
        v = v[:, None]
    if v.ndim != 2:
        raise ValueError(f"values must be 1-d or 2-d, got shape {v.shape}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples={n_resamples}: must be >= 1 (e.g. 1000)")
    n, m = v.shape
    if n == 0:
        return np.full((n_resamples, m), np.nan)
    out = np.empty((n_resamples, m), dtype=np.float64)
    blocks = [(b, min(BLOCK, n_resamples - b * BLOCK)) for b in range((n_resamples + BLOCK - 1) // BLOCK)]

    def work(item):
        b, rows = item
        out[b * BLOCK : b * BLOCK + rows] = (_block_counts(n, seed, b, rows) @ v) / n

    if n_threads > 1 and len(blocks) > 1 and n * n_resamples > 2_000_000:
        with ThreadPoolExecutor(n_threads) as ex:
            list(ex.map(work, blocks))
    else:
        for item in blocks:
            work(item)
    return out


def interval(samples: np.ndarray, confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval: the (1−c)/2 and (1+c)/2 quantiles of the samples along axis 0."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence={confidence!r}: must be between 0 and 1 (e.g. 0.95)")
    samples = np.asarray(samples, dtype=np.float64)
    if np.isnan(samples).all():
        nan = np.full(samples.shape[1:], np.nan)
        return nan, nan.copy()
    lo, hi = np.quantile(samples, [(1 - confidence) / 2, (1 + confidence) / 2], axis=0)
    return lo, hi


def bootstrap_mean(values, n_resamples: int = 1000, seed: int = 0, confidence: float = 0.95):
    """``(mean, low, high)`` of each column of ``values``: the mean over queries and its
    bootstrap percentile interval. 1-d input gives scalars."""
    v = np.asarray(values, dtype=np.float64)
    samples = resampled_means(v, n_resamples, seed)
    lo, hi = interval(samples, confidence)
    mean = v.mean(axis=0) if v.shape[0] else np.full(v.shape[1:], np.nan)
    if v.ndim == 1:
        return float(mean), float(lo[0]), float(hi[0])
    return mean, lo, hi


def _column0(means: np.ndarray) -> np.ndarray:
    return means[:, 0]


def beats_matrix(
    per_source: Mapping[str, tuple[np.ndarray, np.ndarray]],
    n_resamples: int = 1000,
    seed: int = 0,
    statistic: Callable[[np.ndarray], np.ndarray] | None = None,
):
    """Square DataFrame ``beats.loc[a, b]`` = bootstrap P(stat(a) > stat(b)) on shared queries.

    ``per_source[name] = (query_keys, values)``: sorted unique query keys (int) and the (n, m)
    per-query values the statistic is computed from. ``statistic`` maps a (B, m) array of
    resampled column means to (B,) statistics (default: the mean of column 0, i.e. ECI with
    ``values = eci_q``). For a pair (a, b) the shared queries are resampled once and the same
    resample is applied to both sources; ties count for neither side, so
    ``beats[a, b] + beats[b, a] <= 1`` and the diagonal is 0. NaN when a and b share no query.
    """
    import pandas as pd

    stat = statistic or _column0
    names = list(per_source)
    k = len(names)
    res = np.zeros((k, k), dtype=np.float64)
    prepared = {}
    for name in names:
        keys, vals = per_source[name]
        keys = np.asarray(keys, dtype=np.int64)
        vals = np.asarray(vals, dtype=np.float64)
        if vals.ndim == 1:
            vals = vals[:, None]
        if keys.shape[0] != vals.shape[0]:
            raise ValueError(f"source {name!r}: {keys.shape[0]} query keys but {vals.shape[0]} value rows")
        if keys.shape[0] > 1 and not np.all(np.diff(keys) > 0):
            raise ValueError(f"source {name!r}: query keys must be sorted and unique")
        prepared[name] = (keys, vals)

    # Sources covering exactly the same queries share one resample for all of their pairs.
    groups: dict[bytes, list[int]] = {}
    for i, name in enumerate(names):
        groups.setdefault(prepared[name][0].tobytes(), []).append(i)
    done = np.zeros((k, k), dtype=bool)
    np.fill_diagonal(done, True)
    for members in groups.values():
        if len(members) < 2:
            continue
        m = prepared[names[members[0]]][1].shape[1]
        stacked = np.concatenate([prepared[names[i]][1] for i in members], axis=1)
        means = resampled_means(stacked, n_resamples, seed)
        stats = np.stack([stat(means[:, j * m : (j + 1) * m]) for j in range(len(members))], axis=1)
        for a_pos, a in enumerate(members):
            for b_pos, b in enumerate(members):
                if a != b:
                    res[a, b] = np.mean(stats[:, a_pos] > stats[:, b_pos])
                    done[a, b] = True
    for a in range(k):
        for b in range(a + 1, k):
            if done[a, b]:
                continue
            ka, va = prepared[names[a]]
            kb, vb = prepared[names[b]]
            _, ia, ib = np.intersect1d(ka, kb, assume_unique=True, return_indices=True)
            if ia.shape[0] == 0:
                res[a, b] = res[b, a] = np.nan
                continue
            m = va.shape[1]
            means = resampled_means(np.concatenate([va[ia], vb[ib]], axis=1), n_resamples, seed)
            sa, sb = stat(means[:, :m]), stat(means[:, m:])
            res[a, b] = np.mean(sa > sb)
            res[b, a] = np.mean(sb > sa)
    return pd.DataFrame(res, index=pd.Index(names, name="a"), columns=pd.Index(names, name="b"))
