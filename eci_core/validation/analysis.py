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
tie-corrected τ-b) with 95 % percentile intervals from resampling the sources with replacement
(B resamples, fixed seed); pairwise decision accuracy = share of source pairs with y_a ≠ y_b
that x orders the same way (x ties count ½); top-1 regret = max y − y[argmax x].
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from eci_core.metrics.bootstrap import resampled_means
from eci_core.validation.protocol import BASELINES, IN_BATCH

#: (label, column of the pre-training table, sign): the numbers the agreement table checks.
PRETRAINING_NUMBERS = (
    ("ECI", "eci", 1), ("ECI_arith", "eci_arith", 1), ("I_NCE", "infonce_bound", 1), ("ECI_sem", "eci_sem", 1),
    ("S", "signal", 1), ("Δ", "safety", 1), ("DE", "de", 1), ("−unsafe_query_rate", "unsafe_query_rate", -1),
    ("−unsafe_negative_rate", "unsafe_negative_rate", -1), ("mean s_qn", "mean_s_qn", 1), ("mean K", "mean_k", 1),
)
MEASURE_COLS = ("ndcg@10", "recall@10", "mrr@10")


def per_query_matrix(per_query: pd.DataFrame, col: str = "ndcg@10") -> pd.DataFrame:
    """(test query × variant) values of ``col`` averaged over seeds; rows keyed by (split, query_id)."""
    m = per_query.groupby(["split", "query_id", "variant"], sort=False)[col].mean().unstack("variant")
    return m.dropna(axis=0, how="any")


def downstream_table(per_query: pd.DataFrame, variants: list[str], n_bootstrap: int = 1000, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(downstream table, P(row trains better than column) matrix) over ``variants``."""
    mats = {c: per_query_matrix(per_query, c) for c in MEASURE_COLS}
    nd = mats["ndcg@10"][variants]
    boot = resampled_means(nd.to_numpy(), n_resamples=n_bootstrap, seed=seed)  # (B, V)
    lo, hi = np.quantile(boot, [0.025, 0.975], axis=0)
    ref = variants.index(IN_BATCH) if IN_BATCH in variants else None
    per_seed = per_query.groupby(["variant", "seed"])["ndcg@10"].mean().unstack("seed")
    rows = []
    for v_i, v in enumerate(variants):
        r = {"variant": v, "kind": "baseline" if v in BASELINES else "source",
             "ndcg@10": float(nd[v].mean()), "ndcg@10_low": float(lo[v_i]), "ndcg@10_high": float(hi[v_i]),
             "recall@10": float(mats["recall@10"][v].mean()), "mrr@10": float(mats["mrr@10"][v].mean()),
             "seed_sd": float(per_seed.loc[v].std(ddof=1)) if per_seed.shape[1] > 1 else float("nan"),
             "n_test_queries": int(nd.shape[0]), "n_seeds": int(per_seed.shape[1])}
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
    widths = [float(np.subtract(*np.quantile(boot[:, a] - boot[:, b], [0.975, 0.025])) / 2)
              for ai, a in enumerate(src) for b in src[ai + 1 :]]
    table.attrs["resolution"] = float(np.median(widths)) if widths else float("nan")
    return table.sort_values(["kind", "ndcg@10"], ascending=[False, False], kind="stable").reset_index(drop=True), beats


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
        return {**out, "spearman": np.nan, "spearman_low": np.nan, "spearman_high": np.nan, "kendall": np.nan,
                "kendall_low": np.nan, "kendall_high": np.nan, "pairwise_accuracy": np.nan, "top1_regret": np.nan}
    constant = np.ptp(x) == 0 or np.ptp(y) == 0  # a correlation is undefined: say NaN, not a warning
    out["spearman"] = float("nan") if constant else float(stats.spearmanr(x, y).statistic)
    out["kendall"] = float("nan") if constant else float(stats.kendalltau(x, y).statistic)
    rng = np.random.default_rng(seed)
    sp, kt = [], []
    for _ in range(n_bootstrap):
        idx = rng.integers(0, x.size, x.size)
        xs, ys = x[idx], y[idx]
        if np.ptp(xs) == 0 or np.ptp(ys) == 0:
            continue
        sp.append(stats.spearmanr(xs, ys).statistic)
        kt.append(stats.kendalltau(xs, ys).statistic)
    for name, vals in (("spearman", sp), ("kendall", kt)):
        v = np.asarray(vals, dtype=np.float64)
        v = v[np.isfinite(v)]
        out[f"{name}_low"], out[f"{name}_high"] = (float(q) for q in np.quantile(v, [0.025, 0.975])) if v.size else (np.nan, np.nan)
    out["pairwise_accuracy"] = _pairwise_accuracy(x, y)
    out["top1_regret"] = float(y.max() - y[int(np.argmax(x))])
    out["pick"] = int(np.argmax(x))
    return out


def agreement_table(pretraining: pd.DataFrame, downstream: pd.DataFrame, n_bootstrap: int = 1000, seed: int = 0) -> pd.DataFrame:
    """One row per pre-training number: ρ, τ with intervals, pairwise accuracy, top-1 regret, pick."""
    d = downstream[downstream["kind"] == "source"].set_index("variant")["ndcg@10"]
    pre = pretraining.set_index("name").reindex(d.index)
    rows = []
    for label, col, sign in PRETRAINING_NUMBERS:
        if col not in pre.columns:
            continue
        x = sign * pre[col].to_numpy(dtype=np.float64)
        r = rank_agreement(x, d.to_numpy(), n_bootstrap=n_bootstrap, seed=seed)
        pick = r.pop("pick", None)
        ok = np.isfinite(x)
        names = d.index[ok].tolist()
        rows.append({"number": label, **r, "pick": names[pick] if pick is not None else None})
    return pd.DataFrame(rows)


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
        return {"n_sources": len(shared), "kendall": float("nan"), "top1_agree": None, "best_a": None, "best_b": None}
    x, y = sa[shared].to_numpy(), sb[shared].to_numpy()
    best_a, best_b = shared[int(np.argmax(x))], shared[int(np.argmax(y))]
    constant = np.ptp(x) == 0 or np.ptp(y) == 0
    return {"n_sources": len(shared), "kendall": float("nan") if constant else float(stats.kendalltau(x, y).statistic),
            "spearman": float("nan") if constant else float(stats.spearmanr(x, y).statistic), "top1_agree": best_a == best_b,
            "best_a": best_a, "best_b": best_b, "sources": shared}


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
                out.loc[a, b] = float(stats.kendalltau(sa[shared].to_numpy(), sb[shared].to_numpy()).statistic)
    return out
