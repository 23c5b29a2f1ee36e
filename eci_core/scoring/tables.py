"""The tables of a scoring run: their columns, a source's row of the ``sources`` table
(:func:`source_summary`, bootstrap intervals), the ``beats`` matrix, and the pairs table's columns
allocated once for all sources (:class:`PairColumns`, categorical ids)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np

from eci_core.metrics import eci as M
from eci_core.metrics.bootstrap import beats_matrix, interval, resampled_means
from eci_core.config import ECIConfig
from eci_core.scoring.arrays import ArrayScores

if TYPE_CHECKING:
    import pandas as pd

PAIR_COLUMNS = [
    "source",
    "query_id",
    "passage_id",
    "rank",
    "miner_score",
    "s_qn",
    "s_qp",
    "margin",
    "s_pn",
    "lex_overlap",
    "ce_margin",
    "unsafe",
    "near_duplicate",
    "cross_encoder",
    "percpos",
    "flagged",
    "flag_reasons",
    "fn_score",
    "fn_band",
]
QUERY_COLUMNS = [
    "source",
    "query_id",
    "K",
    "C",
    "S",
    "delta",
    "DE",
    "eci",
    "eci_arith",
    "infonce",
    "eci_sem",
    "unsafe",
    "s_qp",
    "positive_id",
]
#: a source's summary: its counts, ECI with its interval and every component's point value
#: (``eci score --json`` fields, the Overview's components table)
SUMMARY_COLUMNS = (
    "name",
    "n_queries",
    "n_negatives",
    "eci",
    "eci_low",
    "eci_high",
    "signal",
    "safety",
    "capacity",
    "de",
    "eci_arith",
    "infonce_bound",
    "eci_sem",
    "unsafe_query_rate",
    "unsafe_negative_rate",
    "mean_k",
)
SOURCE_COLUMNS = [
    *SUMMARY_COLUMNS,
    "signal_low",
    "signal_high",
    "safety_low",
    "safety_high",
    "capacity_low",
    "capacity_high",
    "de_low",
    "de_high",
    "infonce_bound_low",
    "infonce_bound_high",
]


#: per-query columns resampled together for the sources table (one draw serves all of them)
BOOTSTRAP_COLUMNS = ("eci", "S", "delta", "DE", "C", "infonce", "K")


def source_summary(name: str, scores: ArrayScores, config: ECIConfig = ECIConfig()) -> dict:
    """One row of the ``sources`` table from a source's :class:`ArrayScores`.

    ``aggregate="query"``: each statistic is the mean over queries with a bootstrap percentile
    interval. ``aggregate="set"``: capacity = ln(mean K + 1), de and eci from the averaged S and
    Δ (bootstrapped the same way, from the same resamples).
    """
    qm = scores.metrics
    n_q = int(scores.queries.shape[0])
    values = np.stack([np.asarray(qm[c], dtype=np.float64) for c in BOOTSTRAP_COLUMNS], axis=1)
    samples = resampled_means(values, config.n_bootstrap, config.seed)
    col = {c: i for i, c in enumerate(BOOTSTRAP_COLUMNS)}
    mean = values.mean(axis=0) if n_q else np.full(len(BOOTSTRAP_COLUMNS), np.nan)
    stat = {c: (mean[i], samples[:, i]) for c, i in col.items()}
    if config.aggregate == "set":
        agg = M.set_aggregate(qm["K"], qm["S"], qm["delta"])
        kb, sb, db = samples[:, col["K"]], samples[:, col["S"]], samples[:, col["delta"]]
        cb = np.log1p(kb)
        deb = M.discriminative_efficiency(sb, db)
        stat["C"] = (agg["capacity"], cb)
        stat["DE"] = (agg["de"], deb)
        stat["eci"] = (agg["eci"], cb * deb)
        eci_arith = agg["eci_arith"]
    else:
        eci_arith = float(np.mean(qm["eci_arith"])) if n_q else np.nan
    row = {"name": name, "n_queries": n_q, "n_negatives": int(scores.q_idx.shape[0])}
    out_names = {
        "eci": "eci",
        "S": "signal",
        "delta": "safety",
        "C": "capacity",
        "DE": "de",
        "infonce": "infonce_bound",
    }
    for c, out in out_names.items():
        point, boot = stat[c]
        lo, hi = interval(boot[:, None], config.confidence)
        row[out] = float(point)
        row[f"{out}_low"] = float(lo[0])
        row[f"{out}_high"] = float(hi[0])
    n_neg = scores.q_idx.shape[0]
    row["eci_arith"] = float(eci_arith)
    row["eci_sem"] = float(np.mean(scores.eci_sem)) if n_q else np.nan
    row["unsafe_query_rate"] = float(np.mean(qm["unsafe"])) if n_q else np.nan
    row["unsafe_negative_rate"] = float(np.mean(scores.flags["unsafe"])) if n_neg else np.nan
    row["mean_k"] = float(np.mean(qm["K"])) if n_q else np.nan
    return {c: row[c] for c in SOURCE_COLUMNS}


def eci_statistic(config: ECIConfig):
    """``(columns, statistic)`` used by :func:`beats`: per-query value columns and the map from
    resampled column means to ECI under ``config.aggregate``."""
    if config.aggregate == "set":
        return ("K", "S", "delta"), M.set_eci_from_means
    return ("eci",), None


def beats(scored: dict[str, ArrayScores], config: ECIConfig = ECIConfig(), query_keys: dict | None = None):
    """``beats.loc[a, b]`` = bootstrap P(ECI(a) > ECI(b)) on the queries both cover (same
    resample of the shared queries for both; see :func:`eci_core.metrics.bootstrap.beats_matrix`)."""
    cols, stat = eci_statistic(config)
    per = {}
    for name, sc in scored.items():
        keys = sc.queries if query_keys is None else query_keys[name]
        per[name] = (keys, np.stack([np.asarray(sc.metrics[c], dtype=np.float64) for c in cols], axis=1))
    return beats_matrix(per, config.n_bootstrap, config.seed, statistic=stat)


def id_categorical_dtype(ids: Sequence[str]) -> tuple["pd.CategoricalDtype", np.ndarray]:
    """``(dtype, code_of)``: a categorical dtype over the (unique) ``ids`` with the categories in
    sorted order, so that sorting a column of it sorts the ids as strings, and ``code_of[i]`` the
    code of ``ids[i]`` (int32 when it fits)."""
    import pandas as pd

    cats = pd.Index(np.asarray(ids, dtype=object) if not isinstance(ids, np.ndarray) else ids, dtype="str")
    order = np.asarray(cats.argsort(), dtype=np.int64)
    code_of = np.empty(len(cats), dtype=np.int32 if len(cats) < 2**31 else np.int64)
    code_of[order] = np.arange(len(cats), dtype=code_of.dtype)
    return pd.CategoricalDtype(cats.take(order)), code_of


class PairColumns:
    """The columns of the pairs table (``PAIR_COLUMNS``), each allocated once for ``n`` rows.

    ``source``, ``query_id``, ``passage_id``, ``flag_reasons`` and ``fn_band`` are categorical
    (the ids' categories are every id of the collection, sorted; codes int32), so a pair costs
    about 90 bytes whatever the lengths of its ids."""

    _FLOAT = ("miner_score", "s_qn", "s_qp", "margin", "s_pn", "lex_overlap", "ce_margin", "fn_score")
    _BOOL = ("unsafe", "near_duplicate", "cross_encoder", "percpos", "flagged")

    def __init__(self, n: int, collection, names: Sequence[str]):
        self.n = n
        self.names = list(names)
        self.qdtype, self.q_code = id_categorical_dtype(collection.query_ids)
        self.pdtype, self.p_code = id_categorical_dtype(collection.passage_ids)
        self.a: dict[str, np.ndarray] = {
            "source": np.empty(n, dtype=np.int8 if len(self.names) < 128 else np.int32),
            "query_id": np.empty(n, dtype=self.q_code.dtype),
            "passage_id": np.empty(n, dtype=self.p_code.dtype),
            "rank": None,  # the loader's dtype, set by the first fill
            "flag_reasons": np.empty(n, dtype=np.int8),
        }
        for c in self._FLOAT:
            self.a[c] = np.empty(n, dtype=np.float64)
        for c in self._BOOL:
            self.a[c] = np.empty(n, dtype=bool)
        self.a["fn_score"][:] = np.nan

    def fill(self, at: slice, source: int, q_idx, p_idx, rank, miner_score, sc: ArrayScores) -> None:
        a = self.a
        if a["rank"] is None:
            a["rank"] = np.empty(self.n, dtype=np.asarray(rank).dtype)
        a["source"][at] = source
        a["query_id"][at] = self.q_code[q_idx]
        a["passage_id"][at] = self.p_code[p_idx]
        a["rank"][at] = rank
        a["miner_score"][at] = miner_score
        for c in ("s_qn", "s_qp", "margin", "s_pn", "lex_overlap", "ce_margin"):
            a[c][at] = getattr(sc, c)
        fl = sc.flags
        for c in self._BOOL:
            a[c][at] = fl[c]
        a["flag_reasons"][at] = (
            np.asarray(fl["unsafe"], dtype=np.int8)
            + 2 * np.asarray(fl["near_duplicate"], dtype=np.int8)
            + 4 * np.asarray(fl["cross_encoder"], dtype=np.int8)
        )

    def frame(self) -> "pd.DataFrame":
        """The pairs table; the arrays become its columns without a copy where pandas allows."""
        import pandas as pd

        a = self.a
        if a["rank"] is None:
            a["rank"] = np.empty(0, dtype=np.int64)
        cat = pd.Categorical.from_codes
        data = {
            "source": cat(a.pop("source"), dtype=pd.CategoricalDtype(pd.Index(self.names, dtype="str"))),
            "query_id": cat(a.pop("query_id"), dtype=self.qdtype),
            "passage_id": cat(a.pop("passage_id"), dtype=self.pdtype),
            "flag_reasons": cat(
                a.pop("flag_reasons"), dtype=pd.CategoricalDtype(pd.Index(list(M.FLAG_REASONS), dtype="str"))
            ),
            "fn_band": cat(np.full(self.n, -1, dtype=np.int8), dtype=_band_dtype()),
        }
        data.update(a)
        self.a = {}
        return pd.DataFrame({c: data[c] for c in PAIR_COLUMNS}, copy=False)


def _band_dtype():
    import pandas as pd

    from eci_core.metrics.false_negatives import BANDS

    return pd.CategoricalDtype(pd.Index(list(BANDS), dtype="str"))
