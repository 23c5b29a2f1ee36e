"""A training-free predictor of a source's training value, fitted on fine-tuning references.

The target is what a user wants to know before training: a source's **gain over in-batch-only
training**, in nDCG@10, under the fine-tuning reference (``eci validate --trainer finetune``) of
a dataset. The inputs are numbers known before training, per source (:data:`FEATURES`, each
computed from one ``eci score`` result by :func:`feature_table`).

Model: ridge regression on standardised features,

    gain_hat(source) = a + Σ_f b_f · (x_f − μ_f) / σ_f

fitted by :func:`fit` on the reference tables of several datasets. The slopes ``b`` come from the
sources' differences *within* each dataset (features and gains are centred per dataset, so a
dataset that gains more overall does not masquerade as a feature effect); ``σ_f`` is the pooled
within-dataset standard deviation; ``a`` and ``μ`` give the level (the mean gain and mean
features over the training datasets). The penalty ``alpha`` (default 1.0, on standardised
features, fixed and not tuned: with a handful of datasets there is nothing to tune it on) keeps
the few coefficients small.

Reliability is measured, never assumed: :func:`leave_one_dataset_out` fits on every dataset but
one and scores the held-out one: Spearman ρ between predicted and reference gains, and the share
of the source pairs the reference *resolves* (P(A trains better than B) ≥ 0.95 or ≤ 0.05 in its
paired bootstrap) that the predictor orders the same way. The shipped model
(``predictor.json`` beside this file) records those numbers; ``bench/fit_predictor.py``
rebuilds it from the tables in ``bench/results/predictor/`` (a test checks it does).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

#: name → (what it is). Every feature is a per-source number from an ``eci score`` result.
FEATURES: dict[str, str] = {
    "signal": "S, mean over queries of max(0, mean s_qn): how hard the negatives are",
    "safety": "Δ, mean over queries of max(0, s_qp − max s_qn): margin to the hardest negative",
    "capacity": "C, mean ln(K + 1): how many negatives a query has",
    "unsafe_negative_rate": "share of negatives scored at or above the positive",
    "fn_mean": "mean false-negative score of the negatives",
    "lex_overlap": "mean lexical overlap between a negative and its query's positive",
}
DEFAULT_FEATURES = tuple(FEATURES)
#: P(A trains better than B) at or beyond which the reference is said to resolve the pair.
RESOLVED_P = 0.95
#: What the predictor must reach on datasets it was not fitted on before the product ranks
#: sources by it (issue 15's target): this share of the pairs fine-tuning resolved, ordered the
#: same way, and this mean Spearman ρ. Below either, its numbers are not shown as a ranking.
MIN_HELD_OUT_ACCURACY = 0.8
MIN_HELD_OUT_SPEARMAN = 0.7
SHIPPED = Path(__file__).with_name("predictor.json")


def feature_table(score_result) -> pd.DataFrame:
    """One row per source of ``score_result`` (an ``eci_core.scoring.ScoreResult``) with the
    columns ``source`` and every name in :data:`FEATURES`."""
    src = score_result.sources.set_index("name")
    pairs = score_result.pairs
    by = pairs.groupby("source", observed=True)
    out = pd.DataFrame(index=src.index)
    for col in ("signal", "safety", "capacity", "unsafe_negative_rate"):
        out[col] = src[col].astype(float)
    out["fn_mean"] = by["fn_score"].mean().reindex(src.index).astype(float)
    out["lex_overlap"] = by["lex_overlap"].mean().reindex(src.index).astype(float)
    out.index.name = "source"
    return out.reset_index()


@dataclass
class Predictor:
    """A fitted model (module docstring); ``reliability`` holds the leave-one-dataset-out rows."""

    features: list[str]
    coef: list[float]
    mean: list[float]
    scale: list[float]
    intercept: float
    alpha: float
    datasets: list[str]
    reliability: list[dict] = field(default_factory=list)
    #: the encoder and ECI settings the features were computed under; predictions for scores
    #: made under anything else are refused (the features would not mean the same).
    encoder: str = ""
    settings: dict = field(default_factory=dict)

    def predict(self, table: pd.DataFrame) -> np.ndarray:
        """Predicted gain over in-batch-only training (nDCG@10) per row of ``table``."""
        missing = [f for f in self.features if f not in table.columns]
        if missing:
            raise ValueError(
                f"table: missing feature column(s) {missing}; compute them with feature_table(score_result)"
            )
        x = table[self.features].to_numpy(dtype=np.float64)
        z = (x - np.asarray(self.mean)) / np.asarray(self.scale)
        return self.intercept + z @ np.asarray(self.coef)

    def held_out(self) -> dict:
        """Summary of the leave-one-dataset-out rows: pooled decided pairs and mean ρ."""
        rows = self.reliability
        n_pairs = sum(r["resolved_pairs"] for r in rows)
        n_right = sum(r["decided_right"] for r in rows)
        rhos = [r["spearman"] for r in rows if r.get("spearman") is not None and math.isfinite(r["spearman"])]
        return {
            "datasets": len(rows),
            "resolved_pairs": n_pairs,
            "pairwise_accuracy": n_right / n_pairs if n_pairs else float("nan"),
            "spearman_mean": float(np.mean(rhos)) if rhos else float("nan"),
        }

    def trusted(self) -> bool:
        """Whether the held-out numbers reach :data:`MIN_HELD_OUT_ACCURACY` and
        :data:`MIN_HELD_OUT_SPEARMAN` (at least one held-out dataset)."""
        h = self.held_out()
        return bool(
            h["datasets"]
            and h["resolved_pairs"]
            and h["pairwise_accuracy"] >= MIN_HELD_OUT_ACCURACY
            and h["spearman_mean"] >= MIN_HELD_OUT_SPEARMAN
        )

    def reliability_line(self) -> str:
        """One sentence a user reads next to a predicted value."""
        h = self.held_out()
        if not h["datasets"]:
            return "Predicted training value: not validated (no held-out dataset)."
        acc = h["pairwise_accuracy"]
        acc_s = f"{acc:.0%}" if math.isfinite(acc) else "n/a"
        return (
            f"Predicted training value, checked on datasets it was not fitted on ({h['datasets']}): it "
            f"ordered {acc_s} of {h['resolved_pairs']} source pairs that fine-tuning resolved the same way "
            f"(mean Spearman ρ {h['spearman_mean']:+.2f}); chance is 50 %."
        )

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(asdict(self), indent=1, sort_keys=True) + "\n", encoding="utf-8")
        return path


#: ECI options that change the features (ECIConfig field names).
FEATURE_SETTINGS = ("positive", "aggregate")


def settings_of(config) -> dict:
    """The options of an ``ECIConfig`` that the features depend on."""
    return {k: getattr(config, k) for k in FEATURE_SETTINGS}


def predicted_values(score_result, model: "Predictor | None" = None) -> tuple[pd.DataFrame | None, str]:
    """(``source, predicted_gain`` per source, or None; one line saying what the numbers are
    worth, or why there are none). ``model`` None = the shipped predictor. None when there is
    no model, when it was fitted under another encoder or ECI settings, or when its held-out
    reliability is below :data:`MIN_HELD_OUT_ACCURACY` / :data:`MIN_HELD_OUT_SPEARMAN`."""
    model = model if model is not None else load()
    if model is None:
        return None, "No predicted training value: no fitted predictor is installed."
    if model.encoder and str(score_result.encoder) != model.encoder:
        return None, (
            f"No predicted training value: the predictor was fitted on features under {model.encoder}; "
            f"these scores use {score_result.encoder}."
        )
    now = settings_of(score_result.config)
    if model.settings and any(now.get(k) != v for k, v in model.settings.items()):
        return None, (
            f"No predicted training value: the predictor was fitted under {model.settings}; "
            f"these scores use {now}."
        )
    if not model.trusted():
        return None, (
            model.reliability_line().replace(
                "Predicted training value, checked", "The training-free predictor, checked", 1
            )
            + f" That is below the {MIN_HELD_OUT_ACCURACY:.0%} of resolved pairs and "
            f"ρ ≥ {MIN_HELD_OUT_SPEARMAN} it needs before the product ranks sources by it: no predicted "
            "training value is shown; validate on your data instead (eci validate)."
        )
    feats = feature_table(score_result)
    ok = feats[model.features].notna().all(axis=1)
    out = pd.DataFrame({"source": feats["source"], "predicted_gain": np.nan})
    out.loc[ok, "predicted_gain"] = model.predict(feats[ok])
    return out, model.reliability_line()


def load(path: str | Path | None = None) -> Predictor | None:
    """The predictor saved at ``path`` (default: the shipped one, :data:`SHIPPED`), or None when
    there is none."""
    path = Path(SHIPPED if path is None else path)
    if not path.is_file():
        return None
    d = json.loads(path.read_text(encoding="utf-8"))
    return Predictor(**d)


def _check_table(table: pd.DataFrame, features) -> None:
    need = {"dataset", "source", "gain", *features}
    missing = sorted(need - set(table.columns))
    if missing:
        raise ValueError(f"table: missing column(s) {missing} (one row per dataset × source)")
    if table[list(features) + ["gain"]].isna().any().any():
        raise ValueError("table: a feature or the gain is missing (NaN); drop that source or recompute it")


def fit(table: pd.DataFrame, features=DEFAULT_FEATURES, alpha: float = 1.0) -> Predictor:
    """Ridge fit of ``gain`` on ``features`` (module docstring). ``table``: one row per
    (dataset, source) with the feature columns and ``gain`` (reference nDCG@10 minus in-batch only)."""
    features = list(features)
    if not alpha >= 0:
        raise ValueError(f"alpha={alpha!r}: must be >= 0 (e.g. 1.0)")
    _check_table(table, features)
    x = table[features].to_numpy(dtype=np.float64)
    y = table["gain"].to_numpy(dtype=np.float64)
    groups = table["dataset"].to_numpy()
    xc, yc = x.copy(), y.copy()
    for g in np.unique(groups):
        m = groups == g
        xc[m] -= x[m].mean(axis=0)
        yc[m] -= y[m].mean()
    scale = xc.std(axis=0)
    scale[scale == 0] = 1.0  # a constant feature gets coefficient 0 from the penalty
    z = xc / scale
    n_f = len(features)
    coef = np.linalg.solve(z.T @ z + alpha * np.eye(n_f), z.T @ yc)
    # the level: per dataset mean gain and mean features, averaged over datasets
    ds = np.unique(groups)
    mean_x = np.mean([x[groups == g].mean(axis=0) for g in ds], axis=0)
    mean_y = float(np.mean([y[groups == g].mean() for g in ds]))
    return Predictor(
        features=features,
        coef=coef.tolist(),
        mean=mean_x.tolist(),
        scale=scale.tolist(),
        intercept=mean_y,
        alpha=float(alpha),
        datasets=[str(g) for g in ds],
    )


def decided_pairs(pred: pd.Series, beats: pd.DataFrame, threshold: float = RESOLVED_P) -> tuple[int, int]:
    """(pairs the reference resolves, of those the ones ``pred`` orders the same way).

    ``beats``: P(row trains better than column) (a validation's ``beats`` table, indexed by
    variant); a pair is resolved when P ≥ ``threshold`` or P ≤ 1 − ``threshold``. A tie in
    ``pred`` counts as half right."""
    names = [s for s in pred.index if s in beats.index and s in beats.columns]
    n = right = 0.0
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            p = float(beats.loc[a, b])
            if not (p >= threshold or p <= 1 - threshold):
                continue
            n += 1
            d = float(pred[a] - pred[b])
            right += 0.5 if d == 0 else float((d > 0) == (p >= threshold))
    return int(n), right


def leave_one_dataset_out(
    table: pd.DataFrame, beats: dict[str, pd.DataFrame], features=DEFAULT_FEATURES, alpha: float = 1.0
) -> list[dict]:
    """One row per dataset: fit on all the others, predict this one; Spearman ρ (scipy) with
    the reference gains and the resolved pairs decided right (:func:`decided_pairs`)."""
    from scipy import stats

    rows = []
    for d in sorted(table["dataset"].unique()):
        train, test = table[table["dataset"] != d], table[table["dataset"] == d]
        if train["dataset"].nunique() == 0:
            continue
        model = fit(train, features, alpha)
        pred = pd.Series(model.predict(test), index=test["source"].to_numpy())
        truth = test["gain"].to_numpy(dtype=np.float64)
        rho = (
            float(stats.spearmanr(pred.to_numpy(), truth).statistic)
            if len(test) > 2 and np.ptp(pred.to_numpy()) > 0
            else float("nan")
        )
        n, right = decided_pairs(pred, beats[d]) if d in beats else (0, 0.0)
        top = str(pred.idxmax())
        regret = float(truth.max() - test.set_index("source").loc[top, "gain"])
        rows.append(
            {
                "dataset": str(d),
                "n_sources": int(len(test)),
                "spearman": rho,
                "resolved_pairs": n,
                "decided_right": right,
                "pairwise_accuracy": right / n if n else float("nan"),
                "top1": top,
                "top1_regret": regret,
                "fitted_on": sorted(map(str, train["dataset"].unique())),
            }
        )
    return rows
