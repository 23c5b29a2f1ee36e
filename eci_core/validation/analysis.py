"""Tables of a validation: downstream quality per source, and how well each pre-training number
ranked the sources the way training did.

Downstream (per variant = source or baseline): per test query, nDCG@10 (R@10, MRR@10) is
averaged over seeds; the source's value is the mean over test queries (pooled over splits), with
a 95 % bootstrap interval over test queries (``eci_core.metrics.bootstrap``, same resamples for every
variant, so differences are paired). ``gain`` = mean paired difference to the in-batch-only
baseline with its interval; ``seed_sd`` = standard deviation over seeds of the per-seed mean
(the training noise). ``P(A > B)`` = share of bootstrap resamples of the shared test queries in
which A's mean nDCG@10 exceeds B's (ties count ½).

Agreement (across sources; baselines excluded): for each pre-training number x (sign chosen so
that higher should be better) and the downstream nDCG@10 y: Spearman ρ and Kendall τ (scipy,
tie-corrected τ-b); pairwise decision accuracy = share of source pairs with y_a ≠ y_b that x
orders the same way (x ties count ½); top-1 regret = max y − y[argmax x]. Their 95 % percentile
intervals come from the joint bootstrap over test queries and seeds (:func:`joint_bootstrap`:
every resample re-measures each source's mean nDCG@10 and re-ranks the sources; B resamples,
fixed seed); the sources-only intervals (resampling the sources with replacement, each y taken
as exact) are kept next to them.

Effect size (:func:`effect_size`): the spread of the sources' nDCG@10, each source against the
baselines, the source pairs resolved by the same joint paired bootstrap (P ≥ 0.95 either way),
each source's rank range (tied sources share one), and the power line (:func:`queries_needed`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from eci_core.metrics.bootstrap import resampled_means
from eci_core.validation.protocol import BASELINES, IN_BATCH, UNTRAINED

#: (label, column of the pre-training table, sign): the numbers the agreement table checks.
PRETRAINING_NUMBERS = (
    ("ECI", "eci", 1),
    ("ECI_arith", "eci_arith", 1),
    ("I_NCE", "infonce_bound", 1),
    ("ECI_sem", "eci_sem", 1),
    ("S", "signal", 1),
    ("Δ", "safety", 1),
    ("DE", "de", 1),
    ("−unsafe_query_rate", "unsafe_query_rate", -1),
    ("−unsafe_negative_rate", "unsafe_negative_rate", -1),
    ("mean s_qn", "mean_s_qn", 1),
    ("mean K", "mean_k", 1),
)
MEASURE_COLS = ("ndcg@10", "recall@10", "mrr@10")


def per_query_matrix(per_query: pd.DataFrame, col: str = "ndcg@10") -> pd.DataFrame:
    """(test query × variant) values of ``col`` averaged over seeds; rows keyed by (split, query_id)."""
    m = per_query.groupby(["split", "query_id", "variant"], sort=False)[col].mean().unstack("variant")
    return m.dropna(axis=0, how="any")


def downstream_table(
    per_query: pd.DataFrame, variants: list[str], n_bootstrap: int = 1000, seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(downstream table, P(row trains better than column) matrix) over ``variants``."""
    mats = {c: per_query_matrix(per_query, c) for c in MEASURE_COLS}
    nd = mats["ndcg@10"][variants]
    boot = resampled_means(nd.to_numpy(), n_resamples=n_bootstrap, seed=seed)  # (B, V)
    lo, hi = np.quantile(boot, [0.025, 0.975], axis=0)
    ref = variants.index(IN_BATCH) if IN_BATCH in variants else None
    per_seed = per_query.groupby(["variant", "seed"])["ndcg@10"].mean().unstack("seed")
    rows = []
    for v_i, v in enumerate(variants):
        r = {
            "variant": v,
            "kind": "baseline" if v in BASELINES else "source",
            "ndcg@10": float(nd[v].mean()),
            "ndcg@10_low": float(lo[v_i]),
            "ndcg@10_high": float(hi[v_i]),
            "recall@10": float(mats["recall@10"][v].mean()),
            "mrr@10": float(mats["mrr@10"][v].mean()),
            "seed_sd": float(per_seed.loc[v].std(ddof=1)) if per_seed.shape[1] > 1 else float("nan"),
            "n_test_queries": int(nd.shape[0]),
            "n_seeds": int(per_seed.shape[1]),
        }
        if ref is not None:
            d = boot[:, v_i] - boot[:, ref]
            r["gain"] = float(nd[v].mean() - nd[IN_BATCH].mean())
            r["gain_low"], r["gain_high"] = (float(x) for x in np.quantile(d, [0.025, 0.975]))
        rows.append(r)
    table = pd.DataFrame(rows)
    diff = boot[:, :, None] - boot[:, None, :]
    p = (diff > 0).mean(axis=0) + 0.5 * (diff == 0).mean(axis=0)
    np.fill_diagonal(p, np.nan)
    beats = pd.DataFrame(p, index=pd.Index(variants, name="a"), columns=pd.Index(variants, name="b"))
    # half-width of the paired 95 % interval, per pair of sources: the validator's resolution
    src = [i for i, v in enumerate(variants) if v not in BASELINES]
    widths = [
        float(np.subtract(*np.quantile(boot[:, a] - boot[:, b], [0.975, 0.025])) / 2)
        for ai, a in enumerate(src)
        for b in src[ai + 1 :]
    ]
    table.attrs["resolution"] = float(np.median(widths)) if widths else float("nan")
    return table.sort_values(["kind", "ndcg@10"], ascending=[False, False], kind="stable").reset_index(
        drop=True
    ), beats


def _pairwise_accuracy(x: np.ndarray, y: np.ndarray) -> float:
    i, j = np.triu_indices(x.size, 1)
    dy = np.sign(y[i] - y[j])
    dx = np.sign(x[i] - x[j])
    ok = dy != 0
    if not ok.any():
        return float("nan")
    return float(np.mean(np.where(dx[ok] == 0, 0.5, (dx[ok] == dy[ok]).astype(float))))


def rank_agreement(x, y, n_bootstrap: int = 1000, seed: int = 0) -> dict:
    """Spearman ρ, Kendall τ (scipy) of x and y with bootstrap intervals over the items,
    pairwise decision accuracy and top-1 regret (module docstring)."""
    from scipy import stats

    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    out = {"n": int(x.size)}
    if x.size < 3:
        return {
            **out,
            "spearman": np.nan,
            "spearman_low": np.nan,
            "spearman_high": np.nan,
            "kendall": np.nan,
            "kendall_low": np.nan,
            "kendall_high": np.nan,
            "pairwise_accuracy": np.nan,
            "top1_regret": np.nan,
        }
    constant = np.ptp(x) == 0 or np.ptp(y) == 0  # a correlation is undefined: say NaN, not a warning
    out["spearman"] = float("nan") if constant else float(stats.spearmanr(x, y).statistic)
    out["kendall"] = float("nan") if constant else float(stats.kendalltau(x, y).statistic)
    idx = np.random.default_rng(seed).integers(
        0, x.size, (n_bootstrap, x.size)
    )  # = one integers(0, n, n) call per resample
    sp, kt = row_correlations(x[idx], y[idx])
    for name, vals in (("spearman", sp), ("kendall", kt)):
        out[f"{name}_low"], out[f"{name}_high"] = _percentiles(vals)
    out["pairwise_accuracy"] = _pairwise_accuracy(x, y)
    out["top1_regret"] = float(y.max() - y[int(np.argmax(x))])
    out["pick"] = int(np.argmax(x))
    return out


def agreement_table(
    pretraining: pd.DataFrame,
    downstream: pd.DataFrame,
    n_bootstrap: int = 1000,
    seed: int = 0,
    per_query: pd.DataFrame | None = None,
    level: float = 0.95,
) -> pd.DataFrame:
    """One row per pre-training number: ρ, τ with intervals, pairwise accuracy, top-1 regret, pick.

    With ``per_query`` (the validation's per-query table) every interval ``*_low/_high`` comes
    from the joint bootstrap over test queries and seeds (:func:`joint_bootstrap`: the sources
    are fixed, re-measured and re-ranked in every resample, :func:`joint_rank_agreement`), and the
    sources-only intervals stay available as ``spearman_src_low/_high``, ``kendall_src_low/_high``;
    ``resolved_accuracy`` / ``n_resolved``: the share of the source pairs that the joint paired
    bootstrap resolves (P ≥ ``level``) that the number orders as training did. Without
    ``per_query``, the intervals resample the sources and take each source's nDCG@10 as exact."""
    d = downstream[downstream["kind"] == "source"].set_index("variant")["ndcg@10"]
    pre = pretraining.set_index("name").reindex(d.index)
    names = [str(v) for v in d.index]
    jb = resolved = None
    if per_query is not None and len(per_query) and len(names) >= 3:
        jb = joint_bootstrap(per_query, names, "ndcg@10", n_bootstrap, seed)
        resolved = resolved_pairs(beats_from_means(jb.means, names), level)
    y = d.to_numpy(dtype=np.float64)
    rows = []
    for label, col, sign in PRETRAINING_NUMBERS:
        if col not in pre.columns:
            continue
        x = sign * pre[col].to_numpy(dtype=np.float64)
        r = rank_agreement(x, y, n_bootstrap=n_bootstrap, seed=seed)
        pick = r.pop("pick", None)
        ok = np.isfinite(x) & np.isfinite(y)
        row = {"number": label, **r}
        if jb is not None:
            src = {f"{k}_src_{e}": r[f"{k}_{e}"] for k in ("spearman", "kendall") for e in ("low", "high")}
            joint = (
                joint_rank_agreement(x[ok], jb.means[:, ok])
                if ok.sum() >= 3
                else {
                    f"{k}_{e}": np.nan
                    for k in ("spearman", "kendall", "pairwise_accuracy", "top1_regret")
                    for e in ("low", "high")
                }
            )
            acc, n_res = resolved_accuracy(x[ok], resolved[np.ix_(ok, ok)])
            row = {"number": label, "n": r["n"]}
            for k in ("spearman", "kendall", "pairwise_accuracy", "top1_regret"):
                row[k] = r[k]
                row[f"{k}_low"], row[f"{k}_high"] = joint[f"{k}_low"], joint[f"{k}_high"]
            row.update(resolved_accuracy=acc, n_resolved=n_res, **src)
        rows.append({**row, "pick": np.array(names)[ok][pick] if pick is not None else None})
    return pd.DataFrame(rows)


def has_joint_intervals(agreement: pd.DataFrame) -> bool:
    """True when the agreement table's intervals come from the joint bootstrap over test queries
    and seeds (:func:`agreement_table` with ``per_query``), False when they resample sources."""
    return "spearman_src_low" in agreement.columns


# ----------------------------------------------------------------------------- joint bootstrap
@dataclass
class JointBootstrap:
    """Mean nDCG@10 (or another measure) per variant over B joint resamples of test queries and
    seeds (:func:`joint_bootstrap`). ``point``: the means over all test queries (each query's
    value averaged over its split's seeds); ``means``: (B, V) resampled means; ``n_seeds``: seeds
    per split; ``seeds_resampled``: False when every split has one seed (the seed noise is then
    not in the intervals)."""

    variants: list[str]
    point: np.ndarray
    means: np.ndarray
    n_queries: int
    n_seeds: dict[str, int]
    cubes: list[np.ndarray] = field(repr=False, default_factory=list)

    @property
    def seeds_resampled(self) -> bool:
        return any(s > 1 for s in self.n_seeds.values())

    def index(self, names) -> list[int]:
        pos = {v: i for i, v in enumerate(self.variants)}
        return [pos[n] for n in names]


def query_seed_cubes(
    per_query: pd.DataFrame, variants: list[str], col: str = "ndcg@10"
) -> dict[str, np.ndarray]:
    """Per split: the (test query × seed × variant) array of ``col`` from the per-query table.
    Queries missing a (seed, variant) cell are dropped, so every source is compared on the same
    queries and runs (as :func:`per_query_matrix` does after averaging over seeds)."""
    missing = [c for c in ("variant", "split", "seed", "query_id", col) if c not in per_query.columns]
    if missing:
        raise ValueError(
            f"per_query: no column {', '.join(map(repr, missing))} (a validation's per_query.csv has "
            "variant, split, seed, query_id and the measures)"
        )
    pq = per_query[per_query["variant"].isin(variants)]
    out = {}
    for split, sub in pq.groupby("split", sort=False):
        seeds = sorted(sub["seed"].unique().tolist())
        wide = (
            sub.groupby(["query_id", "seed", "variant"], sort=False)[col].mean().unstack(["seed", "variant"])
        )
        wide = wide.reindex(
            columns=pd.MultiIndex.from_product([seeds, variants], names=["seed", "variant"])
        ).dropna(how="any")
        if len(wide):
            out[str(split)] = wide.to_numpy(dtype=np.float64).reshape(len(wide), len(seeds), len(variants))
    return out


def _seed_counts(n: int, n_resamples: int, seed: int, split_no: int) -> np.ndarray:
    """(B × n) draw counts of n seeds resampled with replacement (own stream per split)."""
    if n == 1:
        return np.ones((n_resamples, 1))
    rng = np.random.default_rng([int(seed), 7919, int(split_no)])
    idx = rng.integers(0, n, size=(n_resamples, n))
    return (idx[:, :, None] == np.arange(n)).sum(axis=1).astype(np.float64)


def joint_bootstrap(
    per_query: pd.DataFrame, variants: list[str], col: str = "ndcg@10", n_bootstrap: int = 1000, seed: int = 0
) -> JointBootstrap:
    """Resample test queries and training seeds together and recompute every variant's mean.

    One resample b draws the pooled test queries with replacement (counts ``W[b, q]``, the same
    :func:`eci_core.metrics.bootstrap.resample_counts` streams as the downstream intervals) and,
    independently per split, that split's seeds with replacement (counts ``C_k[b, s]``: a
    training run is one (split, seed), so seeds of different folds are different runs). The mean
    of variant v is ``Σ_k Σ_{q∈k} W[b,q] Σ_s C_k[b,s] Y_k[q,s,v] / (n_seeds_k · n_queries)``:
    per split one matrix product ``W_k (B × Q_k) @ Y_k (Q_k × S_k·V)`` and a contraction with
    ``C_k``. The same resample is applied to every variant, so differences are paired."""
    from eci_core.metrics.bootstrap import resample_counts

    if n_bootstrap < 1:
        raise ValueError(f"n_bootstrap={n_bootstrap}: must be >= 1 (e.g. 1000)")
    cubes = query_seed_cubes(per_query, variants, col)
    n_q = sum(c.shape[0] for c in cubes.values())
    v = len(variants)
    if n_q == 0:
        raise ValueError(
            "per_query: no test query has a value for every variant and seed; nothing to resample"
        )
    w = resample_counts(n_q, n_bootstrap, seed)
    means = np.zeros((n_bootstrap, v))
    point = np.zeros(v)
    start = 0
    for k, (name, y) in enumerate(cubes.items()):
        q, s, _ = y.shape
        a = (w[:, start : start + q] @ y.reshape(q, s * v)).reshape(n_bootstrap, s, v)
        means += np.einsum("bsv,bs->bv", a, _seed_counts(s, n_bootstrap, seed, k)) / s
        point += y.mean(axis=1).sum(axis=0)
        start += q
    return JointBootstrap(
        list(variants),
        point / n_q,
        means / n_q,
        int(n_q),
        {k: int(c.shape[1]) for k, c in cubes.items()},
        list(cubes.values()),
    )


def beats_from_means(means: np.ndarray, names: list[str]) -> pd.DataFrame:
    """P(row > column) over resamples of paired means (B × V); ties count ½, diagonal NaN."""
    diff = means[:, :, None] - means[:, None, :]
    p = (diff > 0).mean(axis=0) + 0.5 * (diff == 0).mean(axis=0)
    np.fill_diagonal(p, np.nan)
    return pd.DataFrame(p, index=pd.Index(names, name="a"), columns=pd.Index(names, name="b"))


def resolved_pairs(beats: pd.DataFrame, level: float = 0.95) -> np.ndarray:
    """Boolean matrix ``r[a, b]``: a trains better than b with P(a > b) ≥ ``level`` (paired
    bootstrap). With level 0.95 this is the 5th percentile of the paired difference above 0,
    i.e. the two-sided 90 % interval of the difference excluding 0."""
    p = beats.to_numpy(dtype=np.float64)
    return np.nan_to_num(p, nan=0.0) >= level


def rank_ranges(beats: pd.DataFrame, order: list[str], level: float = 0.95) -> pd.DataFrame:
    """Ranks that the resolved pairs allow, per source: best rank = 1 + number of sources that
    resolvably train better; worst rank = n − number it resolvably beats; ``tied_with``: the
    sources it is not resolved against (shown as tied, not ranked)."""
    b = beats.loc[order, order]
    r = resolved_pairs(b, level)
    n = len(order)
    rows = []
    for i, name in enumerate(order):
        tied = [order[j] for j in range(n) if j != i and not r[i, j] and not r[j, i]]
        best, worst = 1 + int(r[:, i].sum()), n - int(r[i, :].sum())
        rows.append(
            {
                "variant": name,
                "rank_best": best,
                "rank_worst": worst,
                "rank": str(best) if best == worst else f"{best}–{worst}",
                "n_tied": len(tied),
                "tied_with": ", ".join(tied),
            }
        )
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- power
#: two-sided α and power of the power line
POWER_ALPHA, POWER = 0.05, 0.8


def variance_components(cubes, pairs: list[tuple[int, int]] | None = None) -> dict:
    """Variance components of the paired difference d[q, s] = Y[q, s, a] − Y[q, s, b] of two
    variants, by the two-way random-effects model d = μ + query effect + run effect + residual
    (method of moments, pooled over splits; a run is one split's seed). For each pair:
    ``SS_q = Σ_k S_k Σ_q (d̄_q· − d̄_k)²``, ``SS_s = Σ_k Q_k Σ_s (d̄_·s − d̄_k)²``, ``SS_e`` the
    residual sum of squares; σ_e² = SS_e / Σ(Q_k−1)(S_k−1); σ_q² = (SS_q − Σ(Q_k−1)·σ_e²) /
    Σ(Q_k−1)S_k; σ_s² = (SS_s − Σ(S_k−1)·σ_e²) / Σ(S_k−1)Q_k, clipped at 0. All pairs at once
    from V × V Gram matrices (``‖x_a − x_b‖² = g_aa + g_bb − 2 g_ab``). Returns arrays over
    ``pairs`` (default: all pairs of variants): ``query``, ``seed`` (NaN with one seed per
    split: not measured), ``residual`` (0 then, folded into ``query``)."""
    cubes = list(cubes.values()) if isinstance(cubes, dict) else list(cubes)
    v = cubes[0].shape[2]
    if pairs is None:
        pairs = list(zip(*np.triu_indices(v, 1)))
    ia = np.array([p[0] for p in pairs], dtype=np.int64)
    ib = np.array([p[1] for p in pairs], dtype=np.int64)

    def pair_ss(x):  # x (n, V) -> Σ_n (x_a − x_b)² per pair
        g = x.T @ x
        return g[ia, ia] + g[ib, ib] - 2 * g[ia, ib]

    ss_q = ss_s = ss_e = 0.0
    df_q = df_s = df_e = 0
    coef_q = coef_s = 0
    for y in cubes:
        q, s, _ = y.shape
        grand = y.mean(axis=(0, 1))
        rows = y.mean(axis=1) - grand
        cols = y.mean(axis=0) - grand
        resid = (y - y.mean(axis=1, keepdims=True) - y.mean(axis=0, keepdims=True) + grand).reshape(q * s, v)
        ss_q = ss_q + s * pair_ss(rows)
        ss_s = ss_s + q * pair_ss(cols)
        ss_e = ss_e + pair_ss(resid)
        df_q += q - 1
        df_s += s - 1
        df_e += (q - 1) * (s - 1)
        coef_q += (q - 1) * s
        coef_s += (s - 1) * q
    nan = np.full(len(pairs), np.nan)
    sigma_e = ss_e / df_e if df_e else np.zeros(len(pairs))
    sigma_q = np.maximum((ss_q - df_q * sigma_e) / coef_q, 0.0) if coef_q else nan
    sigma_s = np.maximum((ss_s - df_s * sigma_e) / coef_s, 0.0) if coef_s else nan
    return {
        "query": np.asarray(sigma_q, dtype=np.float64),
        "seed": np.asarray(sigma_s, dtype=np.float64),
        "residual": np.asarray(sigma_e, dtype=np.float64),
    }


def queries_needed(
    sigma_query: float,
    sigma_seed: float,
    sigma_residual: float,
    n_seeds: int,
    delta: float = 0.01,
    n_splits: int = 1,
    alpha: float = POWER_ALPHA,
    power: float = POWER,
) -> float:
    """Test queries needed to resolve a true paired difference ``delta`` between two sources
    (two-sided test at ``alpha`` with the given ``power``).

    With n test queries spread over ``n_splits`` splits and ``n_seeds`` seeds per split, the
    variance of the difference of two sources' mean nDCG@10 is
    ``Var = σ_q²/n + σ_s²/(n_splits·n_seeds) + σ_e²/(n·n_seeds)`` (σ_q²: per-query variance of
    the paired difference, σ_s²: variance of a training run's mean difference (seed noise), σ_e²:
    their interaction; :func:`variance_components`). The test resolves ``delta`` when
    ``(z_{1−α/2} + z_{power})² · Var ≤ δ²``, so

        n = (z_{1−α/2} + z_{power})² · (σ_q² + σ_e²/n_seeds)
            / (δ² − (z_{1−α/2} + z_{power})² · σ_s²/(n_splits·n_seeds)),

    which with no seed noise is the textbook ``n ≈ (z_{0.975} + z_{0.8})² · σ²/δ²`` (≈ 7.85 σ²/δ²).
    Returns ``inf`` when the seed term alone exceeds the budget (more seeds are needed, whatever
    the number of queries; :func:`seeds_needed`), NaN when a component is NaN. Not rounded."""
    from scipy.stats import norm

    if not delta > 0:
        raise ValueError(f"delta={delta!r}: must be > 0 (e.g. 0.01 nDCG@10)")
    if n_seeds < 1 or n_splits < 1:
        raise ValueError(f"n_seeds={n_seeds}, n_splits={n_splits}: both must be >= 1")
    k = (norm.ppf(1 - alpha / 2) + norm.ppf(power)) ** 2
    seed_term = 0.0 if sigma_seed is None or not np.isfinite(sigma_seed) else sigma_seed
    if not (np.isfinite(sigma_query) and np.isfinite(sigma_residual)):
        return float("nan")
    budget = delta**2 - k * seed_term / (n_splits * n_seeds)
    if budget <= 0:
        return float("inf")
    return float(k * (sigma_query + sigma_residual / n_seeds) / budget)


def seeds_needed(
    sigma_seed: float,
    delta: float = 0.01,
    n_splits: int = 1,
    alpha: float = POWER_ALPHA,
    power: float = POWER,
) -> int:
    """Smallest number of seeds per split for which some finite number of test queries resolves
    ``delta`` (:func:`queries_needed` is finite): the least integer above
    ``(z_{1−α/2} + z_{power})² · σ_s² / (n_splits · δ²)``; 1 when σ_s² is 0 or not measured."""
    from scipy.stats import norm

    if sigma_seed is None or not np.isfinite(sigma_seed) or sigma_seed <= 0:
        return 1
    k = (norm.ppf(1 - alpha / 2) + norm.ppf(power)) ** 2
    return max(1, int(np.floor(k * sigma_seed / (n_splits * delta**2))) + 1)


def power_line(jb: JointBootstrap, sources: list[str], delta: float = 0.01, seeds_grid=(1, 3, 5, 10)) -> dict:
    """How many test queries (and seeds) would resolve ``delta`` nDCG@10 between two typical
    sources of this validation: the median over source pairs of each variance component
    (:func:`variance_components`), then :func:`queries_needed` at the current design (its
    splits and seeds) and at each seed count of ``seeds_grid``."""
    idx = jb.index(sources)
    pairs = [(idx[i], idx[j]) for i in range(len(idx)) for j in range(i + 1, len(idx))]
    if not pairs:
        return {}
    comp = variance_components(jb.cubes, pairs)
    sq, ss, se = (
        float(np.median(comp[k])) if np.isfinite(comp[k]).any() else float("nan")
        for k in ("query", "seed", "residual")
    )
    n_splits = len(jb.n_seeds)
    n_seeds = int(min(jb.n_seeds.values()))
    return {
        "delta": float(delta),
        "alpha": POWER_ALPHA,
        "power": POWER,
        "sigma2_query": sq,
        "sigma2_seed": ss,
        "sigma2_residual": se,
        "n_splits": n_splits,
        "n_seeds": n_seeds,
        "n_queries": jb.n_queries,
        "queries_needed": queries_needed(sq, ss, se, n_seeds, delta, n_splits),
        "queries_needed_by_seeds": {
            int(s): queries_needed(sq, ss, se, int(s), delta, n_splits) for s in seeds_grid
        },
        "seeds_needed": seeds_needed(ss, delta, n_splits),
    }


# ----------------------------------------------------------------------------- effect size
@dataclass
class EffectSize:
    """How far apart the sources train, and which differences the validation resolves.

    ``table``: one row per source, best first: ``variant, ndcg@10(_low/_high), vs_in_batch(_low/
    _high), vs_untrained(_low/_high), rank, rank_best, rank_worst, n_tied, tied_with``;
    ``beats``: joint P(row trains better than column) over sources and baselines; ``summary``:
    ``spread(_low/_high), best, worst, n_pairs, n_resolved, tied_first, in_batch_vs_untrained
    (_low/_high), n_queries, n_seeds, seeds_resampled, level``; ``power``: :func:`power_line`."""

    table: pd.DataFrame
    beats: pd.DataFrame
    summary: dict
    power: dict

    def to_json(self) -> dict:
        return {"summary": self.summary, "power": self.power, "table": self.table.to_dict("records")}


def effect_size(
    per_query: pd.DataFrame,
    sources: list[str],
    n_bootstrap: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    delta: float = 0.01,
) -> EffectSize:
    """Effect sizes from one joint bootstrap over test queries and seeds (:func:`joint_bootstrap`).

    * spread: max − min of the sources' mean nDCG@10, with the percentile interval of the
      resampled max − min (biased upward: even identical sources show a positive spread, so read
      it with the resolved pairs);
    * per source the paired difference to in-batch-only and to untrained training, with intervals;
    * resolved pairs: P(A trains better than B) ≥ ``level`` either way (:func:`resolved_pairs`);
      unresolved sources are tied: each source's rank is the range its resolved pairs allow
      (:func:`rank_ranges`), and ``tied_first`` lists the sources that may be best;
    * the power line (:func:`power_line`) for a difference of ``delta``."""
    if not 0.5 < level < 1:
        raise ValueError(f"level={level!r}: must be between 0.5 and 1 (e.g. 0.95)")
    baselines = [b for b in (UNTRAINED, IN_BATCH) if b in set(per_query["variant"])]
    variants = [*baselines, *sources]
    jb = joint_bootstrap(per_query, variants, "ndcg@10", n_bootstrap, seed)
    si = jb.index(sources)
    src_point, src_means = jb.point[si], jb.means[:, si]
    beats = beats_from_means(jb.means, variants)
    order = [sources[i] for i in np.argsort(-src_point, kind="stable")]
    ranks = rank_ranges(beats, order, level).set_index("variant")

    def diff(a: int, b: int) -> tuple[float, float, float]:
        lo, hi = np.quantile(jb.means[:, a] - jb.means[:, b], [0.025, 0.975])
        return float(jb.point[a] - jb.point[b]), float(lo), float(hi)

    rows = []
    for name in order:
        i = jb.index([name])[0]
        lo, hi = np.quantile(jb.means[:, i], [0.025, 0.975])
        r = {
            "variant": name,
            "ndcg@10": float(jb.point[i]),
            "ndcg@10_low": float(lo),
            "ndcg@10_high": float(hi),
        }
        for base, key in ((IN_BATCH, "vs_in_batch"), (UNTRAINED, "vs_untrained")):
            d = diff(i, jb.index([base])[0]) if base in baselines else (np.nan, np.nan, np.nan)
            r[key], r[f"{key}_low"], r[f"{key}_high"] = d
        rows.append({**r, **ranks.loc[name].to_dict()})
    table = pd.DataFrame(rows)
    spread_b = src_means.max(axis=1) - src_means.min(axis=1)
    n = len(sources)
    res = resolved_pairs(beats.loc[sources, sources], level)
    summary = {
        "spread": float(np.ptp(src_point)) if n else float("nan"),
        "spread_low": float(np.quantile(spread_b, 0.025)),
        "spread_high": float(np.quantile(spread_b, 0.975)),
        "best": order[0] if n else None,
        "worst": order[-1] if n else None,
        "best_ndcg@10": float(src_point.max()) if n else float("nan"),
        "worst_ndcg@10": float(src_point.min()) if n else float("nan"),
        "n_pairs": n * (n - 1) // 2,
        "n_resolved": int(res.sum()),
        "tied_first": [s for s in order if int(ranks.loc[s, "rank_best"]) == 1],
        "n_queries": jb.n_queries,
        "n_seeds": int(min(jb.n_seeds.values())),
        "n_splits": len(jb.n_seeds),
        "seeds_resampled": jb.seeds_resampled,
        "level": float(level),
        "n_bootstrap": int(n_bootstrap),
    }
    if IN_BATCH in baselines and UNTRAINED in baselines:
        d = diff(jb.index([IN_BATCH])[0], jb.index([UNTRAINED])[0])
        (
            summary["in_batch_vs_untrained"],
            summary["in_batch_vs_untrained_low"],
            summary["in_batch_vs_untrained_high"],
        ) = d
    return EffectSize(table, beats, summary, power_line(jb, sources, delta))


def row_correlations(xs, ys) -> tuple[np.ndarray, np.ndarray]:
    """Spearman ρ and Kendall τ-b of every row pair of ``xs`` and ``ys`` (B × n each, or x of
    shape (n,) for all rows), vectorised and equal to ``scipy.stats.spearmanr`` (Pearson
    correlation of average ranks) and ``kendalltau`` (``(C − D) / √((P − t_x)(P − t_y))`` over
    the P pairs, t = tied pairs). NaN where a row is constant."""
    from scipy.stats import rankdata

    ys = np.atleast_2d(np.asarray(ys, dtype=np.float64))
    xs = np.broadcast_to(np.asarray(xs, dtype=np.float64), ys.shape)
    n = ys.shape[1]
    i, j = np.triu_indices(n, 1)
    dx, dy = np.sign(xs[:, i] - xs[:, j]), np.sign(ys[:, i] - ys[:, j])
    p = float(i.size)
    rx, ry = rankdata(xs, axis=1), rankdata(ys, axis=1)
    rx, ry = rx - rx.mean(axis=1, keepdims=True), ry - ry.mean(axis=1, keepdims=True)
    constant = (np.ptp(xs, axis=1) == 0) | (np.ptp(ys, axis=1) == 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        kendall = (dx * dy).sum(axis=1) / np.sqrt((p - (dx == 0).sum(axis=1)) * (p - (dy == 0).sum(axis=1)))
        spearman = (rx * ry).sum(axis=1) / np.sqrt((rx**2).sum(axis=1) * (ry**2).sum(axis=1))
    return np.where(constant, np.nan, spearman), np.where(constant, np.nan, kendall)


def _percentiles(vals: np.ndarray) -> tuple[float, float]:
    v = vals[np.isfinite(vals)]
    return tuple(float(q) for q in np.quantile(v, [0.025, 0.975])) if v.size else (np.nan, np.nan)


def joint_rank_agreement(x, means) -> dict:
    """Intervals of the agreement numbers when the downstream values are re-measured: ``means``
    is (B × n) resampled mean nDCG@10 of the n items (a :class:`JointBootstrap`'s columns), x the
    pre-training number (fixed). In every resample the items are re-ranked and Spearman ρ,
    Kendall τ-b (:func:`row_correlations`), pairwise accuracy and top-1 regret are recomputed;
    returns their 2.5 / 97.5 % percentiles (resamples where y is constant are left out of ρ, τ)."""
    x = np.asarray(x, dtype=np.float64)
    m = np.asarray(means, dtype=np.float64)
    spearman, kendall = row_correlations(x, m)
    i, j = np.triu_indices(x.size, 1)
    dx, dy = np.sign(x[i] - x[j]), np.sign(m[:, i] - m[:, j])
    ok = dy != 0
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy = (ok * np.where(dx == 0, 0.5, (dx == dy).astype(np.float64))).sum(axis=1) / ok.sum(axis=1)
    regret = m.max(axis=1) - m[:, int(np.argmax(x))]
    out = {}
    for name, vals in (
        ("spearman", spearman),
        ("kendall", kendall),
        ("pairwise_accuracy", accuracy),
        ("top1_regret", regret),
    ):
        out[f"{name}_low"], out[f"{name}_high"] = _percentiles(vals)
    return out


def resolved_accuracy(x, resolved: np.ndarray) -> tuple[float, int]:
    """Share of the resolved pairs (``resolved[a, b]``: a resolvably trains better than b) that x
    orders the same way (x ties count ½), and their number."""
    x = np.asarray(x, dtype=np.float64)
    a, b = np.nonzero(resolved)
    if a.size == 0:
        return float("nan"), 0
    dx = np.sign(x[a] - x[b])
    return float(np.mean(np.where(dx == 0, 0.5, (dx > 0).astype(np.float64)))), int(a.size)


def pretraining_table(score_result) -> pd.DataFrame:
    """The pre-training numbers per source: the ScoreResult's sources table plus mean s_qn."""
    src = score_result.sources.copy()
    mean_sqn = score_result.pairs.groupby("source", observed=True)["s_qn"].mean()
    src["mean_s_qn"] = src["name"].map(mean_sqn).astype(float)
    keep = ["name"] + [c for _, c, _ in PRETRAINING_NUMBERS if c in src.columns]
    return src[keep].reset_index(drop=True)


def trainer_agreement(a: pd.DataFrame, b: pd.DataFrame) -> dict:
    """How two trainers' downstream tables rank the sources they share: Kendall τ (scipy) of mean
    nDCG@10, whether their best source is the same, and the two picks."""
    from scipy import stats

    sa = a[a["kind"] == "source"].set_index("variant")["ndcg@10"]
    sb = b[b["kind"] == "source"].set_index("variant")["ndcg@10"]
    shared = [s for s in sa.index if s in sb.index]
    if len(shared) < 2:
        return {
            "n_sources": len(shared),
            "kendall": float("nan"),
            "top1_agree": None,
            "best_a": None,
            "best_b": None,
        }
    x, y = sa[shared].to_numpy(), sb[shared].to_numpy()
    best_a, best_b = shared[int(np.argmax(x))], shared[int(np.argmax(y))]
    constant = np.ptp(x) == 0 or np.ptp(y) == 0
    return {
        "n_sources": len(shared),
        "kendall": float("nan") if constant else float(stats.kendalltau(x, y).statistic),
        "spearman": float("nan") if constant else float(stats.spearmanr(x, y).statistic),
        "top1_agree": best_a == best_b,
        "best_a": best_a,
        "best_b": best_b,
        "sources": shared,
    }


def encoder_agreement(eci_by_encoder: dict[str, pd.Series]) -> pd.DataFrame:
    """Kendall τ (scipy) between the ECI rankings of every pair of encoders on shared sources."""
    from scipy import stats

    names = list(eci_by_encoder)
    out = pd.DataFrame(np.nan, index=names, columns=names)
    for a in names:
        for b in names:
            sa, sb = eci_by_encoder[a], eci_by_encoder[b]
            shared = [s for s in sa.index if s in sb.index]
            if len(shared) >= 2:
                out.loc[a, b] = float(
                    stats.kendalltau(sa[shared].to_numpy(), sb[shared].to_numpy()).statistic
                )
    return out
