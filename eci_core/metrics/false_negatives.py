"""False-negative score: how likely a mined negative is an unlabelled positive.

The flag rules of :func:`eci_core.metrics.eci.flags` each measure one thing (``unsafe``: the target
encoder ranks the negative at or above the positive; ``near_duplicate``: it nearly copies a
positive; ``cross_encoder``: a reranker rates it about as relevant). None of them is a
false-negative detector: on the labelled pyfaq sample ``unsafe`` is right about one time in ten.
This module combines the signals scoring already computes into one number per negative.

**The score** (``fn_score``, 0..1) is a logistic model with shipped coefficients
(``fn_model.json``, fitted by ``sample_data/fit_false_negatives.py`` on the labelled pyfaq
sample, ``qrels/false_negatives.tsv``)::

    fn_score = 1 / (1 + exp(-(b + Σ_f w_f · x_f)))

over the features ``x`` of a row of the pairs table (:func:`features`): ``s_pn``,
``lex_overlap`` (NaN → 0), ``margin``, ``s_qn``, ``log_rank = ln(rank)``, ``copy`` (1 when
``near_duplicate``: an exact copy of a positive or s_pn ≥ the threshold) and, when a
cross-encoder ran, ``ce_margin`` (rows without one use the model fitted without it).
Monotone where it must be: the fit keeps ``w ≥ 0`` for ``s_pn``, ``lex_overlap`` and ``copy``
and ``w ≤ 0`` for ``margin`` and ``ce_margin`` (a feature whose fitted sign is wrong is left
out and the rest refitted), and ``w_copy ≥ COPY_MIN_LOGIT`` (1.0), so a copy always scores
above a non-copy with the same other features.

**Bands** (``fn_band``): ``likely`` when ``fn_score ≥ LIKELY`` (0.5: the model says more
likely a false negative than not), ``possible`` when ``≥ POSSIBLE`` (0.1), else ``unlikely``.

**Teaching it** (:func:`refit`): a reviewer's marks (fine / false negative) plus the shipped
prior, as ``PRIOR_WEIGHT`` pseudo-marks drawn from the prior's own predictions, refit the same
constrained model in a few milliseconds. Nothing is refitted unless the user asks.

Labels files (:func:`read_labels`, :func:`labels_bytes`) use the BEIR qrels layout
``query-id\\tcorpus-id\\tscore`` (header line); score 1 = false negative, 0 = reviewed fine.
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

__all__ = [
    "FEATURES",
    "BASE_FEATURES",
    "LIKELY",
    "POSSIBLE",
    "BANDS",
    "LABELS_FILE",
    "FNModel",
    "features",
    "shipped_models",
    "fn_scores",
    "fn_bands",
    "add_scores",
    "fit",
    "refit",
    "refit_report",
    "read_labels",
    "labels_bytes",
    "find_labels_file",
    "label_vector",
    "RULE_SCORES",
    "rule_scores",
    "precision_at_k",
    "ap_auc",
    "evaluate",
    "pr_curves",
]

BASE_FEATURES = ("s_pn", "lex_overlap", "margin", "s_qn", "log_rank", "copy")
FEATURES = BASE_FEATURES + ("ce_margin",)
NONNEG = frozenset({"s_pn", "lex_overlap", "copy"})
NONPOS = frozenset({"margin", "ce_margin"})
COPY_MIN_LOGIT = 1.0
LIKELY = 0.5
POSSIBLE = 0.1
BANDS = ("likely", "possible", "unlikely")
PRIOR_WEIGHT = 20.0
LABELS_FILE = "false_negatives.tsv"  # in a BEIR directory's qrels/
MODEL_PATH = Path(__file__).with_name("fn_model.json")


# ----------------------------------------------------------------------------- features


def features(pairs: pd.DataFrame, names: Sequence[str] = FEATURES) -> np.ndarray:
    """(n, len(names)) float64 feature matrix of a pairs table (see the module docstring)."""
    n = len(pairs)
    cols = []
    for f in names:
        if f == "log_rank":
            r = (
                pd.to_numeric(pairs["rank"], errors="coerce").to_numpy(dtype=np.float64)
                if "rank" in pairs
                else np.ones(n)
            )
            cols.append(np.log(np.clip(np.nan_to_num(r, nan=1.0), 1.0, None)))
        elif f == "copy":
            cols.append(pairs["near_duplicate"].fillna(False).to_numpy(dtype=bool).astype(np.float64))
        elif f == "lex_overlap":
            cols.append(np.nan_to_num(pairs[f].to_numpy(dtype=np.float64), nan=0.0))
        else:
            cols.append(pairs[f].to_numpy(dtype=np.float64))
    return np.stack(cols, axis=1) if cols else np.zeros((n, 0))


# ----------------------------------------------------------------------------- the model


@dataclass(frozen=True)
class FNModel:
    """``p = σ(intercept + coef · x)`` over ``features`` (raw, unscaled feature values)."""

    features: tuple[str, ...]
    coef: tuple[float, ...]
    intercept: float

    def decision(self, X: np.ndarray) -> np.ndarray:
        return self.intercept + X @ np.asarray(self.coef, dtype=np.float64)

    def predict(self, pairs: pd.DataFrame) -> np.ndarray:
        """fn_score of every row of ``pairs``."""
        return _sigmoid(self.decision(features(pairs, self.features)))

    def to_dict(self) -> dict:
        return {
            "features": list(self.features),
            "coef": [float(c) for c in self.coef],
            "intercept": float(self.intercept),
        }

    @classmethod
    def from_dict(cls, d: Mapping) -> "FNModel":
        feats = tuple(d["features"])
        unknown = [f for f in feats if f not in FEATURES]
        if unknown or len(d["coef"]) != len(feats):
            raise ValueError(
                f"false-negative model: features {unknown or feats} do not match coef; "
                f"known features: {', '.join(FEATURES)}"
            )
        return cls(feats, tuple(float(c) for c in d["coef"]), float(d["intercept"]))


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -500, 500)))


@lru_cache(maxsize=1)
def _shipped_raw() -> str:
    return MODEL_PATH.read_text(encoding="utf-8")


def shipped_models() -> dict[str, FNModel]:
    """The shipped models: ``"base"`` (no cross-encoder) and ``"with_ce"``."""
    d = json.loads(_shipped_raw())
    return {k: FNModel.from_dict(d["models"][k]) for k in ("base", "with_ce")}


def shipped_info() -> dict:
    """Everything ``fn_model.json`` records besides the coefficients (data, fit, held-out numbers)."""
    d = json.loads(_shipped_raw())
    return {k: v for k, v in d.items() if k != "models"}


def fn_scores(
    pairs: pd.DataFrame, models: Mapping[str, FNModel] | None = None, chunk: int = 1_000_000
) -> np.ndarray:
    """fn_score per row: the ``with_ce`` model where ``ce_margin`` is a number, else ``base``.

    Rows are scored ``chunk`` at a time (the feature matrix of one chunk at a time: memory stays
    bounded at tens of millions of pairs; each row's score does not depend on the chunking)."""
    models = shipped_models() if models is None else models
    n = len(pairs)
    out = np.zeros(n)
    with_ce = "ce_margin" in pairs and "with_ce" in models
    for a in range(0, n, chunk):
        part = pairs.iloc[a : a + chunk]
        res = models["base"].predict(part)
        if with_ce:
            has = np.isfinite(part["ce_margin"].to_numpy(dtype=np.float64))
            if has.any():
                res[has] = models["with_ce"].predict(part[has])
        out[a : a + len(part)] = res
    return out


def band_codes(scores) -> np.ndarray:
    """int8 position in :data:`BANDS` of each score's band (0 likely, 1 possible, 2 unlikely)."""
    s = np.asarray(scores, dtype=np.float64)
    return np.where(s >= LIKELY, 0, np.where(s >= POSSIBLE, 1, 2)).astype(np.int8)


def fn_bands(scores) -> np.ndarray:
    """``likely`` (≥ LIKELY), ``possible`` (≥ POSSIBLE) or ``unlikely``, per score (object array)."""
    return np.asarray(BANDS, dtype=object)[band_codes(scores)]


def band_categorical(scores) -> pd.Categorical:
    """The ``fn_band`` column: :func:`fn_bands` as a categorical over :data:`BANDS` (1 byte per row)."""
    return pd.Categorical.from_codes(
        band_codes(scores), dtype=pd.CategoricalDtype(pd.Index(list(BANDS), dtype="str"))
    )


def add_scores(pairs: pd.DataFrame, models: Mapping[str, FNModel] | None = None) -> pd.DataFrame:
    """``pairs`` with ``fn_score`` and ``fn_band`` set (in place; also returned)."""
    s = fn_scores(pairs, models)
    pairs["fn_score"] = s
    pairs["fn_band"] = band_categorical(s)
    return pairs


# ----------------------------------------------------------------------------- fitting


def fit(X: np.ndarray, y: np.ndarray, names: Sequence[str], sample_weight=None, C: float = 1.0) -> FNModel:
    """Logistic regression (scikit-learn, L2, ``C`` on standardised features) with the sign
    constraints of the module docstring; returns raw-scale coefficients.

    A constrained feature whose coefficient comes out with the wrong sign gets 0 and the rest is
    refitted, until every sign is allowed; then ``w_copy`` is raised to ``COPY_MIN_LOGIT``.
    """
    from sklearn.linear_model import LogisticRegression

    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    names = list(names)
    w = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    mu = np.average(X, axis=0, weights=w) if len(X) else np.zeros(X.shape[1])
    sd = np.sqrt(np.average((X - mu) ** 2, axis=0, weights=w)) if len(X) else np.ones(X.shape[1])
    sd = np.where(sd > 1e-12, sd, 1.0)
    Z = (X - mu) / sd
    active = [i for i in range(len(names)) if np.ptp(X[:, i]) > 0] if len(X) else []
    coef = np.zeros(len(names))
    b = 0.0
    if len(np.unique(y)) < 2:
        p = float(np.clip(np.average(y, weights=w) if len(y) else 0.5, 1e-4, 1 - 1e-4))
        b = math.log(p / (1 - p))
    else:
        while True:
            coef[:] = 0.0
            if active:
                lr = LogisticRegression(C=C, max_iter=1000)
                lr.fit(Z[:, active], y, sample_weight=w)
                coef[active] = lr.coef_[0]
                b = float(lr.intercept_[0])
            else:
                p = float(np.clip(np.average(y, weights=w), 1e-4, 1 - 1e-4))
                b = math.log(p / (1 - p))
            bad = [
                i
                for i in active
                if (names[i] in NONNEG and coef[i] < 0) or (names[i] in NONPOS and coef[i] > 0)
            ]
            if not bad:
                break
            active = [i for i in active if i not in bad]
    raw = coef / sd
    intercept = b - float(np.sum(coef * mu / sd))
    if "copy" in names:
        i = names.index("copy")
        if raw[i] < COPY_MIN_LOGIT:
            raw[i] = COPY_MIN_LOGIT
    return FNModel(tuple(names), tuple(float(c) for c in raw), float(intercept))


def refit(
    pairs: pd.DataFrame,
    marked: np.ndarray,
    labels: np.ndarray,
    prior: Mapping[str, FNModel] | None = None,
    prior_weight: float = PRIOR_WEIGHT,
    max_prior_rows: int = 2000,
    seed: int = 0,
) -> dict[str, FNModel]:
    """Refit on a reviewer's marks plus the prior.

    ``marked``: row positions of ``pairs`` that carry a mark; ``labels``: 1 (false negative) or
    0 (fine) for them. The prior enters as pseudo-marks: up to ``max_prior_rows`` unmarked rows
    (seeded sample), each counted once as a false negative with weight ``p`` and once as fine
    with weight ``1 − p`` (``p`` its prior score), scaled so all of them together weigh
    ``prior_weight`` marks. Returns ``{"base", "with_ce"}`` models (``with_ce`` only fitted on
    rows with a cross-encoder margin, else the prior's).
    """
    prior = shipped_models() if prior is None else prior
    marked = np.asarray(marked, dtype=np.int64)
    labels = np.asarray(labels, dtype=np.int64)
    rest = np.setdiff1d(np.arange(len(pairs)), marked)
    if rest.shape[0] > max_prior_rows:
        rest = np.sort(np.random.default_rng(seed).choice(rest, max_prior_rows, replace=False))
    p_prior = fn_scores(pairs.iloc[rest], prior) if rest.shape[0] else np.zeros(0)
    out: dict[str, FNModel] = {}
    has_ce = (
        np.isfinite(pairs["ce_margin"].to_numpy(dtype=np.float64))
        if "ce_margin" in pairs
        else np.zeros(len(pairs), bool)
    )
    for name, feats, keep in (("base", BASE_FEATURES, None), ("with_ce", FEATURES, has_ce)):
        m_rows, m_y = marked, labels
        r_rows, r_p = rest, p_prior
        if keep is not None:
            mk = keep[m_rows]
            m_rows, m_y = m_rows[mk], m_y[mk]
            rk = keep[r_rows]
            r_rows, r_p = r_rows[rk], r_p[rk]
            if m_rows.shape[0] == 0:
                out[name] = prior[name]
                continue
        Xm = features(pairs.iloc[m_rows], feats)
        Xr = features(pairs.iloc[r_rows], feats)
        wr = prior_weight / max(1, r_rows.shape[0])
        X = np.concatenate([Xm, Xr, Xr])
        y = np.concatenate([m_y, np.ones(r_rows.shape[0], np.int64), np.zeros(r_rows.shape[0], np.int64)])
        w = np.concatenate([np.ones(m_rows.shape[0]), wr * r_p, wr * (1 - r_p)])
        out[name] = fit(X, y, feats, sample_weight=w)
    return out


def refit_report(
    pairs: pd.DataFrame,
    marked: np.ndarray,
    labels: np.ndarray,
    prior: Mapping[str, FNModel] | None = None,
    folds: int = 5,
    seed: int = 0,
) -> dict:
    """How the ranking's precision on the marks moves with a refit.

    ``ap_before``: average precision of the prior's scores on the marked rows; ``ap_after``: the
    same for the refitted model, measured honestly: each marked (query, passage) is scored by a
    model refitted without it (``folds``-fold, stratified, rows of one pair kept together);
    ``precision_before`` / ``precision_after``: precision of the top ``n_false_negative`` marked
    rows under each ranking (R-precision)."""
    from sklearn.model_selection import StratifiedGroupKFold

    prior = shipped_models() if prior is None else prior
    marked = np.asarray(marked, dtype=np.int64)
    labels = np.asarray(labels, dtype=np.int64)
    before = fn_scores(pairs.iloc[marked], prior)
    n_pos = int(labels.sum())
    out = {
        "n_marked": int(marked.shape[0]),
        "n_false_negative": n_pos,
        "n_fine": int(marked.shape[0] - n_pos),
    }
    ap_b, _ = ap_auc(before, labels)
    out["ap_before"] = ap_b
    out["precision_before"] = precision_at_k(before, labels, n_pos) if n_pos else math.nan
    k = min(folds, n_pos, marked.shape[0] - n_pos)
    if k < 2:
        out["ap_after"] = out["precision_after"] = math.nan
        return out
    grp = pd.factorize(
        pd.Series(
            list(
                zip(pairs["query_id"].iloc[marked].astype(str), pairs["passage_id"].iloc[marked].astype(str))
            )
        )
    )[0]
    after = np.full(marked.shape[0], np.nan)
    for tr, te in StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed).split(
        marked, labels, grp
    ):
        models = refit(pairs, marked[tr], labels[tr], prior=prior, seed=seed)
        after[te] = fn_scores(pairs.iloc[marked[te]], models)
    ap_a, _ = ap_auc(after, labels)
    out["ap_after"] = ap_a
    out["precision_after"] = precision_at_k(after, labels, n_pos)
    return out


# ----------------------------------------------------------------------------- labels files


def _labels_text(raw: bytes, name: str) -> str:
    """A labels file's bytes as text: gzip (by its magic bytes) decompressed with the loaders'
    size and ratio limits (:class:`eci_core.io.loaders.LoadLimits`), UTF-8 with an optional BOM.
    Raises ``LoadError`` (a ValueError) in one line naming ``name`` (and the line of bad UTF-8)."""
    from eci_core.io.records import LoadError

    if raw[:2] == b"\x1f\x8b":
        from eci_core.io.loaders import GzipRaw, current_limits  # the loaders' bounded gzip reader

        raw = io.BufferedReader(GzipRaw(io.BytesIO(raw), name, current_limits())).read()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise LoadError(
            name,
            raw.count(b"\n", 0, e.start) + 1,
            "not valid UTF-8 (expected UTF-8 text); re-save the file as UTF-8",
        ) from None


def read_labels(path_or_bytes, name: str | None = None, roots=None) -> dict[tuple[str, str], int]:
    """``{(query_id, passage_id): score}`` of a labels file (``query-id corpus-id score``, tab
    or space separated, header optional; gzip read transparently, within the loaders' limits).
    Raises ``ValueError`` in one line naming the file and line for a malformed one
    (``NAME:LINE: ...``, no value echoed); ``name`` is what the errors call the file (default: the
    path, or ``"labels"`` for bytes, e.g. pass an uploaded file's name). ``roots``: a path is
    read only when it resolves inside one of them (:func:`eci_core.io.trust.open_within`)."""
    if isinstance(path_or_bytes, (bytes, bytearray)):
        name = name or "labels"
        text = _labels_text(bytes(path_or_bytes), name)
    else:
        p = Path(path_or_bytes)
        name = name or str(p)
        from eci_core.io.trust import open_within

        with open_within(p, roots) as f:
            text = _labels_text(f.read(), name)
    out: dict[tuple[str, str], int] = {}
    for no, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split("\t") if "\t" in line else line.split()
        if len(parts) == 4:  # TREC qrels: qid 0 docid rel
            parts = [parts[0], parts[2], parts[3]]
        if len(parts) != 3:
            raise ValueError(f"{name}:{no}: expected 3 fields 'query-id corpus-id score', found {len(parts)}")
        try:
            score = float(parts[2])
        except ValueError:
            if no == 1:
                continue  # header
            raise ValueError(f"{name}:{no}: field 'score': expected a number") from None
        if not math.isfinite(score):
            raise ValueError(f"{name}:{no}: field 'score': must be a finite number")
        q, pid = parts[0].strip(), parts[1].strip()
        for field, value in (("query-id", q), ("corpus-id", pid)):
            if not value:
                raise ValueError(
                    f"{name}:{no}: field '{field}': empty; every row needs a query id and a passage id"
                )
        out[(q, pid)] = 1 if score > 0 else 0
    return out


def labels_bytes(labels: Iterable[tuple[str, str, int]]) -> bytes:
    """A labels file: header then ``query-id\\tcorpus-id\\tscore`` rows (1 = false negative,
    0 = fine), sorted by query id then passage id."""
    buf = io.StringIO()
    buf.write("query-id\tcorpus-id\tscore\n")
    for q, p, s in sorted(set((str(q), str(p), int(s)) for q, p, s in labels)):
        buf.write(f"{q}\t{p}\t{s}\n")
    return buf.getvalue().encode("utf-8")


def find_labels_file(collection, roots=None) -> Path | None:
    """``qrels/false_negatives.tsv`` in the dataset folder a loaded source came from (the BEIR
    directory of ``DIR/negatives/x``, else the folder holding the file), if any. Only where
    :func:`eci_core.io.trust.neighbour_dirs` allows: never a parent folder, the temporary folder
    or an upload folder. With ``roots`` (the dashboard's data roots) only a file that resolves
    inside a root."""
    from eci_core.io.trust import neighbour_file

    paths = [getattr(src, "path", None) for src in getattr(collection, "sources", {}).values()]
    return neighbour_file([p for p in paths if p], Path("qrels") / LABELS_FILE, roots=roots)


def label_vector(pairs: pd.DataFrame, labels: Mapping[tuple[str, str], int]) -> np.ndarray:
    """Per row of ``pairs``: 1 (labelled false negative), 0 (labelled fine, or unlabelled)."""
    if not len(pairs):
        return np.zeros(0, dtype=np.int64)
    fn = pd.MultiIndex.from_tuples([k for k, v in labels.items() if v > 0] or [("", "")])
    key = pd.MultiIndex.from_arrays([pairs["query_id"].astype(str), pairs["passage_id"].astype(str)])
    return key.isin(fn).astype(np.int64)


# ----------------------------------------------------------------------------- evaluation

#: single rules compared with the score: name -> (description, how to rank negatives)
RULE_SCORES = {
    "fn_score": "the false-negative score",
    "unsafe": "flag: margin ≤ 0",
    "near_duplicate": "flag: copy of a positive or s_pn ≥ 0.95",
    "cross_encoder": "flag: ce_margin ≤ 0 (cross-encoder on)",
    "s_pn": "similarity to the positive (higher first)",
    "lex_overlap": "lexical overlap with the positive (higher first)",
    "margin": "margin (lower first)",
}


def rule_scores(pairs: pd.DataFrame, with_score: bool = True) -> dict[str, np.ndarray]:
    """Per rule, a number per row that ranks the rows (higher = more likely a false negative).
    ``cross_encoder`` only when a cross-encoder ran."""
    out: dict[str, np.ndarray] = {}
    if with_score:
        out["fn_score"] = (
            pairs["fn_score"].to_numpy(dtype=np.float64) if "fn_score" in pairs else fn_scores(pairs)
        )
    out["unsafe"] = pairs["unsafe"].to_numpy(dtype=np.float64)
    out["near_duplicate"] = pairs["near_duplicate"].to_numpy(dtype=np.float64)
    if "ce_margin" in pairs and np.isfinite(pairs["ce_margin"].to_numpy(dtype=np.float64)).any():
        out["cross_encoder"] = pairs["cross_encoder"].to_numpy(dtype=np.float64)
    out["s_pn"] = pairs["s_pn"].to_numpy(dtype=np.float64)
    out["lex_overlap"] = np.nan_to_num(pairs["lex_overlap"].to_numpy(dtype=np.float64), nan=0.0)
    out["margin"] = -pairs["margin"].to_numpy(dtype=np.float64)
    return out


def precision_at_k(score, y, k: int) -> float:
    """Expected precision of the top ``k`` rows by ``score``, ties in random order: rows above
    the k-th score count fully, the tied block at the cut in proportion."""
    s = np.asarray(score, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    n = s.shape[0]
    if n == 0:
        return math.nan
    k = min(int(k), n)
    thr = np.sort(s)[::-1][k - 1]
    above = s > thr
    tie = s == thr
    need = k - int(above.sum())
    hits = float(y[above].sum()) + (need * float(y[tie].mean()) if need > 0 else 0.0)
    return hits / k


def ap_auc(score, y) -> tuple[float, float]:
    """Average precision and ROC AUC of ``score`` against the 0/1 labels ``y`` (scikit-learn's
    ``average_precision_score`` and ``roc_auc_score``); ``(nan, nan)`` when ``y`` holds one class only."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    if y.sum() == 0 or y.sum() == y.shape[0]:
        return math.nan, math.nan
    return float(average_precision_score(y, score)), float(roc_auc_score(y, score))


def evaluate(
    scores: Mapping[str, np.ndarray],
    y,
    groups,
    ks: Sequence[int] = (20, 100),
    n_bootstrap: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """AP, ROC AUC and precision@k of each score against labels ``y``, with bootstrap percentile
    intervals from resampling ``groups`` (queries) with replacement (the same resamples for
    every score). When ``fn_score`` is among them, ``attrs["gains"][metric]`` holds its
    difference to the best other score on that metric, with an interval from the same
    resamples (``attrs["ap_gain"]`` etc. for AP). One row per score."""
    y = np.asarray(y, dtype=np.int64)
    g_codes, g_uniq = pd.factorize(pd.Series(np.asarray(groups, dtype=object)))
    n_g = len(g_uniq)
    members = [np.flatnonzero(g_codes == i) for i in range(n_g)]
    rng = np.random.default_rng(seed)
    names = list(scores)
    point = {}
    for nme in names:
        s = np.asarray(scores[nme], dtype=np.float64)
        ap, auc = ap_auc(s, y)
        point[nme] = {"ap": ap, "roc_auc": auc, **{f"p@{k}": precision_at_k(s, y, k) for k in ks}}
    boots = {nme: {m: [] for m in point[nme]} for nme in names}
    for _ in range(n_bootstrap):
        pick = rng.integers(0, n_g, n_g)
        idx = np.concatenate([members[i] for i in pick]) if n_g else np.zeros(0, np.int64)
        yb = y[idx]
        for nme in names:
            sb = np.asarray(scores[nme], dtype=np.float64)[idx]
            ap, auc = ap_auc(sb, yb)
            boots[nme]["ap"].append(ap)
            boots[nme]["roc_auc"].append(auc)
            for k in ks:
                boots[nme][f"p@{k}"].append(precision_at_k(sb, yb, k))
    a = (1 - confidence) / 2
    rows = []
    rules = [n for n in names if n != "fn_score"]
    for nme in names:
        row = {"score": nme, "positives": int(y.sum()), "rows": int(y.shape[0])}
        for m, v in point[nme].items():
            b = np.asarray(boots[nme][m], dtype=np.float64)
            row[m] = v
            row[f"{m}_low"] = float(np.nanquantile(b, a)) if np.isfinite(b).any() else math.nan
            row[f"{m}_high"] = float(np.nanquantile(b, 1 - a)) if np.isfinite(b).any() else math.nan
        rows.append(row)
    out = pd.DataFrame(rows)
    if "fn_score" in names and rules:
        gains = {}
        for m in point["fn_score"]:
            best = max(rules, key=lambda r: -np.inf if math.isnan(point[r][m]) else point[r][m])
            d = np.asarray(boots["fn_score"][m]) - np.asarray(boots[best][m])
            gains[m] = {
                "best_rule": best,
                "gain": point["fn_score"][m] - point[best][m],
                "low": float(np.nanquantile(d, a)),
                "high": float(np.nanquantile(d, 1 - a)),
            }
        out.attrs["gains"] = gains
        out.attrs["best_rule"] = gains["ap"]["best_rule"]
        out.attrs["ap_gain"] = gains["ap"]["gain"]
        out.attrs["ap_gain_low"] = gains["ap"]["low"]
        out.attrs["ap_gain_high"] = gains["ap"]["high"]
    return out


def pr_curves(scores: Mapping[str, np.ndarray], y, max_points: int = 200) -> pd.DataFrame:
    """Precision-recall curve points of each score: ``score, recall, precision, threshold``
    (sklearn's ``precision_recall_curve``, thinned to at most ``max_points`` per score). A yes/no
    rule (scores 0/1) gives its one operating point (recall and precision of what it flags), or
    nothing when it flags nothing."""
    from sklearn.metrics import precision_recall_curve

    y = np.asarray(y, dtype=np.int64)
    frames = []
    if y.sum() == 0:
        return pd.DataFrame(columns=["score", "recall", "precision", "threshold"])
    for nme, s in scores.items():
        s = np.asarray(s, dtype=np.float64)
        if np.unique(s).shape[0] <= 2 and set(np.unique(s)) <= {0.0, 1.0}:
            # a yes/no rule has one operating point (its flagged set), not a curve
            on = s == 1.0
            if on.any():
                frames.append(
                    pd.DataFrame(
                        {
                            "score": [nme],
                            "recall": [float(y[on].sum() / y.sum())],
                            "precision": [float(y[on].mean())],
                            "threshold": [1.0],
                        }
                    )
                )
            continue
        p, r, t = precision_recall_curve(y, s)
        t = np.append(t, np.nan)
        if p.shape[0] > max_points:
            keep = np.unique(np.linspace(0, p.shape[0] - 1, max_points).astype(int))
            p, r, t = p[keep], r[keep], t[keep]
        frames.append(pd.DataFrame({"score": nme, "recall": r, "precision": p, "threshold": t}))
    return (
        pd.concat(frames, ignore_index=True)
        if frames
        else pd.DataFrame(columns=["score", "recall", "precision", "threshold"])
    )
