"""Data shaping and figures for the dashboard pages and the HTML report.

The pages compute nothing themselves: every table, number and figure they show comes from a
function here (or from :mod:`eci_core.scoring` / :mod:`eci_core.metrics.eci`). Inputs are the
:class:`~eci_core.scoring.ScoreResult` tables (column names in ``docs/ARCHITECTURE.md``):

* ``pairs``: ``source, query_id, passage_id, rank, miner_score, s_qn, s_qp, margin, s_pn,
  lex_overlap, ce_margin, unsafe, near_duplicate, cross_encoder, percpos, flagged, flag_reasons``
* ``queries``: ``source, query_id, K, C, S, delta, DE, eci, eci_arith, infonce, eci_sem, unsafe``
* ``sources``: ``name, n_queries, n_negatives, eci, eci_low, eci_high, signal, safety, …``
* ``beats``: square frame, ``beats.loc[a, b]`` = P(ECI(a) > ECI(b))

Functions accept either a ``ScoreResult`` or the relevant DataFrame where noted. Plotly is
imported inside the figure builders so that importing this module stays cheap. Every scatter
figure carries a row id as the first ``custom_data`` element (see :mod:`eci_core.explore.selection`).

Scale (1M pairs and more): the tables of a ScoreResult are large, the figures are not.

* Derived tables (rows of each source or query, per-source summaries, the Signal-vs-Safety
  frame, comparisons) are computed once per table object and kept while the table lives
  (:func:`_memo`; the dashboard keeps one ScoreResult per (data, settings)), so a page switch
  or a widget change never recomputes them.
* Histograms, ECDFs and contours are binned on the server with numpy: a figure carries
  ``nbins`` counts per source, not one value per pair (:func:`binned_histogram`, :func:`ecdf_points`).
* Scatter plots draw at most :data:`SCATTER_MAX_POINTS` points with WebGL (``Scattergl``): above
  it a seeded random sample stratified by source (proportional, every source kept; see
  :func:`scatter_sample`) and :func:`sampling_note` says what was drawn.
* Queries are found by id or words (:func:`search_queries`), never listed all at once.
"""

from __future__ import annotations

import hashlib
import threading
import weakref
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import pandas as pd

__all__ = [
    "OKABE_ITO",
    "CONTINUOUS_SCALE",
    "FLAG_RULES",
    "SUMMARY_STATS",
    "source_colors",
    "summary_table",
    "score_summary",
    "flag_counts",
    "flag_funnel",
    "de_grid",
    "ecdf",
    "ecdf_frame",
    "percpos_band",
    "verdict",
    "eci_ranking_line",
    "eci_validity",
    "validated_ranking",
    "validated_figure",
    "validated_effect",
    "validation_verdict",
    "RESOLVED_P",
    "components_table",
    "signal_safety_frame",
    "Comparison",
    "compare_sources",
    "DrillDown",
    "query_drilldown",
    "shared_words",
    "highlight_html",
    "worst_query",
    "worst_queries",
    "overview_figure",
    "margin_histogram",
    "flag_funnel_figure",
    "signal_safety_figure",
    "beats_heatmap",
    "projection_figure",
    "compare_scatter",
    "SCATTER_MAX_POINTS",
    "ECDF_MAX_POINTS",
    "TABLE_MAX_ROWS",
    "binned_histogram",
    "ecdf_points",
    "scatter_sample",
    "sampling_note",
    "signal_safety_sample",
    "search_queries",
    "compare_sample",
    "query_choices",
    "cleaned_set",
    "cleaned_summary",
    "warm_up",
    "ReviewView",
    "review_view",
]

#: Okabe–Ito palette (colour-blind safe) for categorical colours (sources, kinds, flags).
OKABE_ITO = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"]
#: Colour-blind-safe continuous scale (perceptually uniform, readable with deuteranopia).
CONTINUOUS_SCALE = "Cividis"
#: The flag rules of the spec, in funnel order (``percpos`` is a risk marker, not a flag).
FLAG_RULES = ("unsafe", "near_duplicate", "cross_encoder")
#: Rows of the sentence-transformers Positive / Negative / Difference table.
SUMMARY_STATS = ("count", "mean", "median", "std", "min", "25%", "50%", "75%", "max")
#: Most points one scatter plot sends to the browser. Above it, a seeded random sample stratified
#: by source (each source in proportion to its size, every source kept) is drawn with WebGL and
#: the page says so; histograms, contours and tables still use every point.
SCATTER_MAX_POINTS = 20_000
#: Most points one ECDF line sends: the exact ECDF at evenly spaced ranks (step error ≤ 1/1000).
ECDF_MAX_POINTS = 1_000
#: Most rows a page's table sends to the browser (sorted so the interesting rows come first; the
#: full tables are downloads on the Export page).
TABLE_MAX_ROWS = 1_000


# --------------------------------------------------------------------------- helpers
def _table(obj: Any, name: str) -> pd.DataFrame:
    """``obj.<name>`` for a ScoreResult, ``obj`` itself for a DataFrame."""
    if isinstance(obj, pd.DataFrame):
        return obj
    t = getattr(obj, name, None)
    if not isinstance(t, pd.DataFrame):
        raise TypeError(f"expected a ScoreResult or the '{name}' DataFrame, got {type(obj).__name__}")
    return t


def _require(df: pd.DataFrame, cols: Iterable[str], what: str) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise ValueError(
            f"the {what} table lacks column(s) {', '.join(missing)} (has: {', '.join(map(str, df.columns))})"
        )


def _source_order(df: pd.DataFrame, sources: Sequence[str] | None, col: str = "source") -> list[str]:
    present = list(_groups(df, col).names) if len(df) else []
    if sources is None:
        return present
    unknown = [s for s in sources if s not in present]
    if unknown and len(df):
        raise ValueError(f"unknown source(s) {', '.join(unknown)}; known: {', '.join(present)}")
    return [s for s in sources if s in present]


# --------------------------------------------------------------------------- compute once
_MEMO: dict[int, dict] = {}
_MEMO_LOCK = threading.Lock()
_INFLIGHT: dict[tuple, threading.Event] = {}


def _once(store: dict, flight_key: tuple, key: Any, fn: Callable[[], Any], on_store: Callable[[], None] | None = None):
    """``store[key]``, computing it with ``fn()`` when missing; a second thread asking for the
    same key while it is being computed waits for that result instead of computing it again."""
    while True:
        with _MEMO_LOCK:
            if key in store:
                return store[key]
            ev = _INFLIGHT.get(flight_key)
            if ev is None:
                ev = _INFLIGHT[flight_key] = threading.Event()
                break
        ev.wait()
        with _MEMO_LOCK:
            if key in store:
                return store[key]
        # the other thread failed: compute here
    try:
        val = fn()
        with _MEMO_LOCK:
            store[key] = val
            if on_store:
                on_store()
        return val
    finally:
        with _MEMO_LOCK:
            _INFLIGHT.pop(flight_key, None)
        ev.set()


def _memo(obj: Any, key: tuple, fn: Callable[[], Any]) -> Any:
    """``fn()`` computed once per (``obj``, ``key``) while ``obj`` is alive.

    ``obj`` is a table of a ScoreResult, the ScoreResult or a Collection: the dashboard keeps
    one ScoreResult per (data, settings) in its score store, so everything derived from it here is
    computed once per (data, settings) and shared by every page and session (a session asking
    while another computes it waits for that result). For a DataFrame the key includes its
    length and columns (a table grown in place is a new entry). Objects that cannot be weakly
    referenced are not memoised."""
    if isinstance(obj, pd.DataFrame):
        key = key + (len(obj), tuple(map(str, obj.columns)))
    oid = id(obj)
    with _MEMO_LOCK:
        entry = _MEMO.get(oid)
        if entry is None:
            try:
                weakref.finalize(obj, _MEMO.pop, oid, None)
            except TypeError:
                entry = None
            else:
                entry = _MEMO[oid] = {}
    if entry is None:
        return fn()
    return _once(entry, (oid, key), key, fn)


def _memo_recent(obj: Any, slot: str, key: tuple, fn: Callable[[], Any], size: int = 2) -> Any:
    """Like :func:`_memo`, but only the ``size`` most recent keys of ``slot`` are kept (for
    large results whose key changes with user input, e.g. a cleaned set per set of marks)."""
    box = _memo(obj, ("recent", slot), dict)

    def trim() -> None:  # called under the lock
        while len(box) > size:
            box.pop(next(iter(box)))

    with _MEMO_LOCK:
        if key in box:
            box[key] = box.pop(key)  # most recent last
            return box[key]
    return _once(box, (id(box), key), key, fn, on_store=trim)


@dataclass(frozen=True)
class _Groups:
    """Row positions of each value of one column: ``rows(v)`` in table order."""

    names: list[str]  # values in order of first appearance
    index: pd.Index
    order: np.ndarray
    starts: np.ndarray

    def rows(self, value: Any) -> np.ndarray:
        k = self.index.get_indexer([str(value)])[0]
        if k < 0:
            return np.zeros(0, dtype=np.int64)
        return self.order[self.starts[k]: self.starts[k + 1]]


def _groups(df: pd.DataFrame, col: str) -> _Groups:
    """Positions of the rows of each value of ``df[col]`` (computed once per table)."""

    def build() -> _Groups:
        s = df[col]
        # a categorical column is factorized on its integer codes (no string per row)
        plain = s.dtype == object or isinstance(s.dtype, pd.CategoricalDtype)
        codes, uniques = pd.factorize(s if plain else s.astype(str), sort=False)
        names = [str(u) for u in uniques]
        order = np.argsort(codes, kind="stable").astype(np.int64)
        counts = np.bincount(codes[codes >= 0], minlength=len(names))
        starts = np.r_[0, np.cumsum(counts)].astype(np.int64)
        return _Groups(names, pd.Index(names), order, starts)

    return _memo(df, ("groups", col), build)


def _rows(df: pd.DataFrame, col: str, value: Any) -> pd.DataFrame:
    """``df[df[col] == value]`` (same rows, same order) from the memoised grouping."""
    return df.iloc[_groups(df, col).rows(value)]


def _values(df: pd.DataFrame, col: str, value: Any, column: str) -> np.ndarray:
    """``df.loc[df[col] == value, column]`` as float64 numpy."""
    arr = _memo(df, ("f64", column), lambda: df[column].to_numpy(dtype=np.float64))
    return arr[_groups(df, col).rows(value)]


def source_colors(names: Sequence[str]) -> dict[str, str]:
    """A stable colour per source name (Okabe–Ito, in the order given, cycling after 8)."""
    return {n: OKABE_ITO[i % len(OKABE_ITO)] for i, n in enumerate(names)}


def _bool(s: pd.Series) -> np.ndarray:
    return s.fillna(False).to_numpy(dtype=bool)


# --------------------------------------------------------------------------- summary tables
def _st_stats(x: np.ndarray, with_count: bool = True) -> list[float]:
    """count, mean, median, std, min, 25 %, 50 %, 75 %, max as sentence-transformers prints them.

    ``median`` is torch.median's lower middle value (``sorted[(n-1)//2]``), ``std`` the sample
    standard deviation (ddof = 1), quantiles linear interpolation (torch.quantile); NaN for an
    empty array.
    """
    x = np.asarray(x, dtype=np.float64)
    x = x[~np.isnan(x)]
    n = x.size
    if n == 0:
        return [0 if with_count else np.nan] + [np.nan] * 8
    xs = np.sort(x)
    q25, q50, q75 = np.quantile(xs, [0.25, 0.5, 0.75])
    std = float(np.std(xs, ddof=1)) if n > 1 else np.nan
    return [n if with_count else np.nan, float(xs.mean()), float(xs[(n - 1) // 2]), std,
            float(xs[0]), float(q25), float(q50), float(q75), float(xs[-1])]


def score_summary(pairs: Any, source: str | None = None) -> pd.DataFrame:
    """The sentence-transformers Positive / Negative / Difference table for one source.

    Index: ``count, mean, median, std, min, 25%, 50%, 75%, max``; columns ``Positive``,
    ``Negative``, ``Difference``.

    * Positive: ``s_qp`` once per query of the source that has at least one negative (the
      similarity to the positive chosen by the ``positive`` rule; sentence-transformers counts one
      per (anchor, positive) row);
    * Negative: ``s_qn`` per negative;
    * Difference: ``margin = s_qp − s_qn`` per negative (``count`` left empty, as the miner prints).

    ``pairs`` is the pairs table (or a ScoreResult); ``source=None`` uses every row (one source
    expected). The CLI prints the same table from this function (one implementation).
    """
    pairs = _table(pairs, "pairs")
    _require(pairs, ("source", "query_id", "s_qn", "s_qp", "margin"), "pairs")

    def build() -> pd.DataFrame:
        p = _rows(pairs, "source", source) if source is not None else pairs
        pos = p.drop_duplicates(["source", "query_id"])["s_qp"].to_numpy(dtype=np.float64)
        neg = p["s_qn"].to_numpy(dtype=np.float64)
        diff = p["margin"].to_numpy(dtype=np.float64)
        out = pd.DataFrame(
            {"Positive": _st_stats(pos), "Negative": _st_stats(neg), "Difference": _st_stats(diff, with_count=False)},
            index=list(SUMMARY_STATS),
        )
        out.index.name = "metric"
        return out

    return _memo(pairs, ("score_summary", None if source is None else str(source)), build).copy()


def summary_table(result: Any, sources: Sequence[str] | None = None) -> pd.DataFrame:
    """:func:`score_summary` for every source, stacked: columns ``source, metric, Positive,
    Negative, Difference`` (9 rows per source, sources in ranking order when a ScoreResult is
    given, else in order of appearance)."""
    pairs = _table(result, "pairs")
    order = _source_order(pairs, sources)
    if sources is None and not isinstance(result, pd.DataFrame) and hasattr(result, "sources"):
        ranked = [str(s) for s in result.sources["name"]]
        order = [s for s in ranked if s in order] + [s for s in order if s not in ranked]
    frames = []
    for s in order:
        t = score_summary(pairs, s).reset_index()
        t.insert(0, "source", s)
        frames.append(t)
    if not frames:
        return pd.DataFrame(columns=["source", "metric", "Positive", "Negative", "Difference"])
    return pd.concat(frames, ignore_index=True)


def components_table(result: Any) -> pd.DataFrame:
    """The sources table as the Overview shows it: one row per source in ranking order with
    ``rank, name, eci, eci_low, eci_high, signal, safety, capacity, de, eci_arith, infonce_bound,
    eci_sem, unsafe_query_rate, unsafe_negative_rate, mean_k, n_queries, n_negatives`` (the
    columns present in the table, in that order). No value is recomputed."""
    src = _table(result, "sources")
    cols = ["name", "eci", "eci_low", "eci_high", "signal", "safety", "capacity", "de", "eci_arith",
            "infonce_bound", "eci_sem", "unsafe_query_rate", "unsafe_negative_rate", "mean_k",
            "n_queries", "n_negatives"]
    out = src[[c for c in cols if c in src.columns]].copy().reset_index(drop=True)
    out.insert(0, "rank", np.arange(1, len(out) + 1))
    return out


# --------------------------------------------------------------------------- flags
def flag_counts(result: Any, sources: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per source: ``n_negatives``, the number of negatives each rule catches
    (``unsafe``, ``near_duplicate``, ``cross_encoder``; a rule caught by several rules counts in
    each), ``flagged`` (the union: any rule), ``percpos`` (the risk marker, not a flag),
    ``kept`` = n_negatives − flagged and ``flagged_share`` = flagged / n_negatives."""
    pairs = _table(result, "pairs")
    _require(pairs, ("source", "flagged"), "pairs")

    def count(s: str) -> dict:
        p = _rows(pairs, "source", s)
        n = len(p)
        row = {"source": s, "n_negatives": n}
        for rule in FLAG_RULES:
            row[rule] = int(_bool(p[rule]).sum()) if rule in p.columns else 0
        row["flagged"] = int(_bool(p["flagged"]).sum())
        row["percpos"] = int(_bool(p["percpos"]).sum()) if "percpos" in p.columns else 0
        row["kept"] = n - row["flagged"]
        row["flagged_share"] = row["flagged"] / n if n else 0.0
        return row

    rows = [_memo(pairs, ("flag_counts", s), lambda s=s: count(s)) for s in _source_order(pairs, sources)]
    cols = ["source", "n_negatives", *FLAG_RULES, "flagged", "percpos", "kept", "flagged_share"]
    return pd.DataFrame(rows, columns=cols)


def flag_funnel(result: Any, source: str) -> pd.DataFrame:
    """The flag funnel of one source: rows ``all negatives``, then each rule in
    :data:`FLAG_RULES` order, then ``flagged (any rule)``, and ``kept``.

    Columns: ``stage``, ``caught`` (negatives the rule catches on its own; for ``all negatives``
    the total, for ``flagged`` the union, for ``kept`` the rest), ``new`` (negatives this rule
    catches that no earlier rule caught: the funnel step) and ``remaining`` (negatives not caught
    by this or any earlier rule). The ``new`` column sums to the union.
    """
    pairs = _table(result, "pairs")
    if str(source) not in _source_order(pairs, None):
        raise ValueError(f"unknown source {source!r}; known: {', '.join(_source_order(pairs, None))}")
    return _memo(pairs, ("flag_funnel", str(source)), lambda: _flag_funnel(_rows(pairs, "source", source))).copy()


def _flag_funnel(p: pd.DataFrame) -> pd.DataFrame:
    n = len(p)
    caught_so_far = np.zeros(n, dtype=bool)
    rows = [{"stage": "all negatives", "caught": n, "new": 0, "remaining": n}]
    for rule in FLAG_RULES:
        m = _bool(p[rule]) if rule in p.columns else np.zeros(n, dtype=bool)
        new = int((m & ~caught_so_far).sum())
        caught_so_far |= m
        rows.append({"stage": rule, "caught": int(m.sum()), "new": new, "remaining": int(n - caught_so_far.sum())})
    flagged = _bool(p["flagged"]) if "flagged" in p.columns else caught_so_far
    nf = int(flagged.sum())
    rows.append({"stage": "flagged (any rule)", "caught": nf, "new": 0, "remaining": n - nf})
    rows.append({"stage": "kept", "caught": n - nf, "new": 0, "remaining": n - nf})
    return pd.DataFrame(rows, columns=["stage", "caught", "new", "remaining"])


# --------------------------------------------------------------------------- grids & curves
def _de(s: np.ndarray, d: np.ndarray) -> np.ndarray:
    """The engine's Discriminative Efficiency DE(S, Δ) = 2·S·Δ / (S + Δ) (0 when S + Δ = 0)."""
    from eci_core.metrics import eci as metrics

    return np.asarray(metrics.discriminative_efficiency(s, d), dtype=np.float64)


def de_grid(s_max: float = 1.0, delta_max: float = 1.0, n: int = 101) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Iso-DE contour grid: ``(s, delta, z)`` with ``s`` (n,), ``delta`` (n,) from 0 to the maxima
    and ``z[i, j] = DE(s[j], delta[i]) = 2·s·Δ / (s + Δ)`` (row = Δ, column = S: plotly's
    ``go.Contour(x=s, y=delta, z=z)`` layout). DE comes from ``eci_core.metrics.eci``."""
    if n < 2:
        raise ValueError(f"n={n}: the grid needs at least 2 points per axis (e.g. 101)")
    if not (s_max > 0 and delta_max > 0):
        raise ValueError(f"s_max={s_max}, delta_max={delta_max}: both must be > 0 (e.g. 1.0)")
    s = np.linspace(0.0, float(s_max), n)
    d = np.linspace(0.0, float(delta_max), n)
    S, D = np.meshgrid(s, d)
    z = _de(S.ravel(), D.ravel()).reshape(S.shape)
    return s, d, z


def ecdf(values: Sequence[float] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Empirical CDF points: ``x`` sorted values (NaN dropped), ``y[i] = (i + 1) / n``."""
    x = np.asarray(values, dtype=np.float64)
    x = np.sort(x[~np.isnan(x)])
    n = x.size
    return x, (np.arange(1, n + 1, dtype=np.float64) / n if n else np.zeros(0))


def ecdf_frame(result: Any, column: str = "margin", sources: Sequence[str] | None = None) -> pd.DataFrame:
    """ECDF of a pairs column per source: columns ``source, x, y`` (see :func:`ecdf`)."""
    pairs = _table(result, "pairs")
    _require(pairs, ("source", column), "pairs")
    frames = []
    for s in _source_order(pairs, sources):
        x, y = ecdf(_values(pairs, "source", s, column))
        frames.append(pd.DataFrame({"source": s, "x": x, "y": y}))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["source", "x", "y"])


def percpos_band(result: Any, percpos: float | None = None, sources: Sequence[str] | None = None) -> pd.DataFrame:
    """Where the 95 %-of-positive (TopK-PercPos) band lies on the margin axis, per source.

    A negative is in the band when ``s_qn > p·s_qp``, i.e. ``margin < (1 − p)·s_qp``: its upper
    edge depends on the query's ``s_qp``. The band drawn on a margin histogram goes from 0 to
    ``(1 − p)·median(s_qp)`` of the source. Columns: ``source, low, high, share`` where ``share``
    is the fraction of the source's negatives inside the exact per-pair band
    ``0 < margin < (1 − p)·s_qp``. ``p`` defaults to the result's ``config.percpos`` (else 0.95).
    """
    pairs = _table(result, "pairs")
    if percpos is None:
        cfg = getattr(result, "config", None)
        percpos = float(getattr(cfg, "percpos", 0.95))
    if not 0 < percpos <= 1:
        raise ValueError(f"percpos={percpos}: must be in (0, 1] (e.g. 0.95)")

    def band(s: str) -> dict:
        sqp = _values(pairs, "source", s, "s_qp")
        m = _values(pairs, "source", s, "margin")
        hi = (1 - percpos) * float(np.nanmedian(sqp)) if len(m) else np.nan
        inside = (m > 0) & (m < (1 - percpos) * sqp)
        return {"source": s, "low": 0.0, "high": hi, "share": float(inside.mean()) if len(m) else 0.0}

    rows = [_memo(pairs, ("percpos_band", s, float(percpos)), lambda s=s: band(s)) for s in _source_order(pairs, sources)]
    return pd.DataFrame(rows, columns=["source", "low", "high", "share"])


# --------------------------------------------------------------------------- verdict
#: P(trains better) at or above which a validation counts a difference between two sources as
#: resolved (the same threshold as ``ValidationResult.notes``); below it they are shown as tied.
RESOLVED_P = 0.95


def verdict(result: Any, validation: Any = None, why_not: str | None = None) -> str:
    """The Overview's headline. It leads with evidence and never recommends a source on ECI
    alone: ECI is measured before training, and whether its ranking predicts training is an
    empirical question.

    * With ``validation`` (an ``eci_core.validation.ValidationResult`` of the loaded data, made
      under the encoder and settings of these scores): what training measured
      (:func:`validation_verdict`).
    * Without: that no validated ranking exists for this data, why (``why_not``, e.g. "a
      validation of the loaded sources exists … but was made under encoder X"), and where to
      measure one. The ECI ranking is :func:`eci_ranking_line`, shown one click away.

    Takes a ScoreResult or the sources table."""
    src = _table(result, "sources")
    if src is None or len(src) == 0:
        return "No source scored yet: load a file with negatives and score it."
    _require(src, ("name", "eci"), "sources")
    ranked = src.sort_values("eci", ascending=False, kind="stable").reset_index(drop=True)
    if validation is not None:
        return validation_verdict(ranked, validation)
    reason = why_not or "no saved validation covers the loaded sources with the same negatives"
    reason = reason[0].upper() + reason[1:]
    if not reason.endswith("."):
        reason += "."
    return (f"No validated ranking exists for this data. {reason} Which source trains best has not been "
            "measured here: run a validation on the Validation page. The ECI ranking is a pre-training "
            "estimate, not a recommendation.")


def eci_ranking_line(result: Any) -> str:
    """The ECI ranking in one line: the leader with its 95 % interval and unsafe-query rate,
    P(leader beats runner-up) when the intervals overlap, a note when the leader has the easiest
    negatives (lowest Signal), and that ECI is a pre-training estimate, e.g. ``"ECI ranks bm25
    first (0.412, 95 % CI 0.390–0.431), 3.1 % unsafe queries. ECI is a pre-training estimate:
    check on the Validation page which source actually trains best on this data."``

    Takes a ScoreResult or the sources table (ranked)."""
    src = _table(result, "sources")
    if src is None or len(src) == 0:
        return "No source scored yet: load a file with negatives and score it."
    _require(src, ("name", "eci"), "sources")
    ranked = src.sort_values("eci", ascending=False, kind="stable").reset_index(drop=True)
    best = ranked.iloc[0]
    name = str(best["name"])
    ci = ""
    if "eci_low" in ranked.columns and "eci_high" in ranked.columns and pd.notna(best.get("eci_low")):
        ci = f", 95 % CI {best['eci_low']:.3f}–{best['eci_high']:.3f}"
    unsafe = ""
    if "unsafe_query_rate" in ranked.columns and pd.notna(best.get("unsafe_query_rate")):
        unsafe = f", {100 * float(best['unsafe_query_rate']):.1f} % unsafe queries"
    if len(ranked) > 1:
        text = f"ECI ranks {name} first ({best['eci']:.3f}{ci}){unsafe}."
    else:
        text = f"One source: {name}, ECI {best['eci']:.3f}{ci}{unsafe}."
    if len(ranked) > 1:
        second = ranked.iloc[1]
        beats = getattr(result, "beats", None) if not isinstance(result, pd.DataFrame) else None
        overlap = ("eci_low" in ranked.columns and pd.notna(best.get("eci_low"))
                   and float(best["eci_low"]) <= float(second.get("eci_high", np.nan)))
        if isinstance(beats, pd.DataFrame) and name in beats.index and str(second["name"]) in beats.columns:
            pb = float(beats.loc[name, str(second["name"])])
            if overlap or pb < 0.95:
                text += f" P(beats {second['name']}) = {pb:.2f}."
        elif overlap:
            text += f" Its interval overlaps {second['name']}'s: the lead is not certain."
        if {"signal", "safety"} <= set(ranked.columns) and float(best["signal"]) <= float(ranked["signal"].min()):
            # easy-but-safe sets (random negatives) can top ECI: say so next to the verdict
            text += (f" Note: its negatives are the easiest here (Signal {float(best['signal']):.3f}, lowest of "
                     f"{len(ranked)} sources); it leads on Safety (Δ {float(best['safety']):.3f}).")
    text += (" ECI is a pre-training estimate: check on the Validation page which source actually trains best "
             "on this data.")
    return text


def _eci_agreement_sentence(validation: Any) -> str | None:
    """"ECI's ranking agreed with / went against / did not reliably agree with training:
    Spearman ρ = … (95 % CI …) over n validated sources" from the validation's agreement table."""
    agree = getattr(validation, "agreement", None)
    if not isinstance(agree, pd.DataFrame) or agree.empty or "number" not in agree.columns:
        return None
    rows = agree[agree["number"] == "ECI"]
    if rows.empty:
        return None
    e = rows.iloc[0]
    rho, lo, hi = float(e["spearman"]), float(e["spearman_low"]), float(e["spearman_high"])
    if lo > 0:
        how = "ECI's ranking agreed with training"
    elif hi < 0:
        how = "ECI's ranking went against training"
    else:
        how = "ECI's ranking did not reliably agree with training"
    return f"{how}: Spearman ρ = {rho:.2f} (95 % CI {lo:.2f} to {hi:.2f}) over {int(e['n'])} validated sources"


def eci_validity(validation: Any = None, why_not: str | None = None) -> str:
    """The validity line shown next to the ECI ranking: what the validation of the loaded data
    (same encoder and settings) measured of ECI, else that ECI is not validated on this data and
    why (``why_not``)."""
    if validation is None:
        reason = why_not or "no saved validation covers the loaded sources with the same negatives"
        return f"Not validated on this data: {reason.rstrip('.')}."
    meta = getattr(validation, "meta", {}) or {}
    sentence = _eci_agreement_sentence(validation)
    if sentence is None:
        return f"The validation of this data ({meta.get('trainer', '?')} trainer) did not measure ECI's agreement."
    return f"Validity on this data ({meta.get('trainer', '?')} trainer): {sentence}."


def predicted_ranking(result: Any) -> tuple[pd.DataFrame | None, str]:
    """The shipped training-free predictor applied to ``result`` (a ScoreResult):
    (``rank, source, predicted_gain`` best first, or None; the predictor's held-out reliability
    line, or why there is no prediction). See ``eci_core.validation.predictor``."""
    def build():
        from eci_core.validation.predictor import predicted_values

        pred, line = predicted_values(result)
        if pred is not None:
            pred = pred.sort_values("predicted_gain", ascending=False, kind="stable").reset_index(drop=True)
            pred.insert(0, "rank", np.arange(1, len(pred) + 1))
        return pred, line

    return _memo(result.sources, ("predicted_ranking",), build)


def _trains_better(validation: Any) -> pd.DataFrame | None:
    """P(row trains better than column): the joint bootstrap over test queries and seeds
    (``validation.effect.beats``) when the per-query table allows it, else the saved one (test
    queries resampled, seeds averaged)."""
    effect = getattr(validation, "effect", None)
    beats = getattr(effect, "beats", None)
    if isinstance(beats, pd.DataFrame) and not beats.empty:
        return beats
    return getattr(validation, "beats", None)


def validated_ranking(validation: Any, sources: Sequence[str] | None = None) -> pd.DataFrame:
    """The loaded sources ranked by what training measured: one row per source of
    ``validation.downstream`` (only those in ``sources`` when given), best nDCG@10 first, with
    ``rank, tied, source, ndcg@10, ndcg@10_low, ndcg@10_high, gain, gain_low, gain_high``.

    ``rank`` is 1 + the number of other listed sources that train better with P ≥
    :data:`RESOLVED_P` (:func:`_trains_better`: joint over test queries and seeds when the
    per-query table is there): sources whose differences are unresolved share a
    rank, and ``tied`` is True when a source shares its rank. Without ``beats`` for every listed
    source the rank is the position and ``tied`` is NaN (attrs ``"ties_known"`` False): only
    the intervals tell the sources apart then."""
    d = validation.downstream
    src = d[d["kind"] == "source"]
    if sources is not None:
        wanted = [str(n) for n in sources]
        src = src[src["variant"].astype(str).isin(wanted)]
    src = src.sort_values("ndcg@10", ascending=False, kind="stable").reset_index(drop=True)
    names = src["variant"].astype(str).tolist()
    out = pd.DataFrame({"source": names})
    for c in ("ndcg@10", "ndcg@10_low", "ndcg@10_high", "gain", "gain_low", "gain_high"):
        out[c] = src[c].to_numpy(dtype=float) if c in src.columns else np.nan
    beats = _trains_better(validation)
    known = (isinstance(beats, pd.DataFrame) and len(names) > 0
             and all(n in beats.index and n in beats.columns for n in names))
    if known:
        b = beats.loc[names, names].to_numpy(dtype=float, copy=True)
        np.fill_diagonal(b, np.nan)
        better = b >= RESOLVED_P  # better[i, j]: i trains better than j (NaN: False)
        rank = 1 + better.sum(axis=0)
        counts = pd.Series(rank).map(pd.Series(rank).value_counts())
        out.insert(0, "tied", (counts > 1).to_numpy())
        out.insert(0, "rank", rank.astype(int))
    else:
        out.insert(0, "tied", np.nan)
        out.insert(0, "rank", np.arange(1, len(names) + 1))
    out.attrs["ties_known"] = bool(known)
    return out


def validated_effect(validation: Any, sources: Sequence[str] | None = None) -> str:
    """How much the choice among the listed sources mattered in the validation: the span of
    their measured nDCG@10 (in points, 1 point = 0.01), the baselines (in-batch negatives only,
    untrained), and how many source pairs training resolved (P ≥ :data:`RESOLVED_P` either way)."""
    r = validated_ranking(validation, sources)
    if r.empty:
        return "No loaded source was validated."
    lo, hi = float(r["ndcg@10"].min()), float(r["ndcg@10"].max())
    text = (f"The {len(r)} loaded source(s) trained to {lo:.3f}–{hi:.3f} nDCG@10 "
            f"(a spread of {100 * (hi - lo):.1f} points)")
    d = validation.downstream.set_index(validation.downstream["variant"].astype(str))
    base = [f"{name} {float(d.loc[name, 'ndcg@10']):.3f}" for name in ("in-batch only", "untrained")
            if name in d.index and pd.notna(d.loc[name, "ndcg@10"])]
    if base:
        text += "; baselines: " + ", ".join(base)
    text += "."
    names = r["source"].tolist()
    beats = _trains_better(validation)
    if len(names) > 1 and r.attrs.get("ties_known"):
        b = beats.loc[names, names].to_numpy(dtype=float, copy=True)
        iu = np.triu_indices(len(names), 1)
        p = b[iu]
        resolved = int(np.sum((p >= RESOLVED_P) | (p <= 1 - RESOLVED_P)))
        text += f" Training resolved {resolved} of {p.size} source pairs (P ≥ {RESOLVED_P:.2f} either way)."
    res = getattr(validation, "resolution", None)
    if isinstance(res, float) and np.isfinite(res):
        text += f" Differences below about {res:.3f} nDCG@10 are within noise."
    return text


def validated_figure(validation: Any, sources: Sequence[str] | None = None):
    """Horizontal dot chart of measured downstream nDCG@10 per source (:func:`validated_ranking`),
    best on top, with the 95 % interval over test queries as error bars; each label carries the
    resolved rank ("=1" for a tie), and the baselines (in-batch negatives only, untrained) are
    vertical lines. Colours: :func:`source_colors` in the order of ``sources`` (so a source keeps
    the colour the ECI charts give it). custom_data = [source, low, high, rank]."""
    import plotly.graph_objects as go

    r = validated_ranking(validation, sources)
    ties = r.attrs.get("ties_known", False)
    s = r.iloc[::-1]
    labels = [(f"{'=' if ties and bool(t) else ''}{int(k)}. {n}") for k, t, n in zip(s["rank"], s["tied"], s["source"])]
    # colours follow ``sources`` (the pages pass them in ECI order, as every other chart colours them)
    colors = source_colors([str(n) for n in sources] if sources is not None else r["source"].tolist())
    err = dict(type="data", symmetric=False,
               array=(s["ndcg@10_high"] - s["ndcg@10"]).clip(lower=0).to_numpy(dtype=float),
               arrayminus=(s["ndcg@10"] - s["ndcg@10_low"]).clip(lower=0).to_numpy(dtype=float), thickness=1.5, width=6)
    custom = np.column_stack([s["source"].to_numpy(dtype=object), s["ndcg@10_low"].to_numpy(dtype=float),
                              s["ndcg@10_high"].to_numpy(dtype=float), s["rank"].to_numpy()]) if len(s) else None
    fig = go.Figure(go.Scatter(
        x=s["ndcg@10"].to_numpy(dtype=float), y=labels, mode="markers", error_x=err,
        marker=dict(size=12, color=[colors[n] for n in s["source"]]), customdata=custom, name="nDCG@10",
        hovertemplate="<b>%{customdata[0]}</b><br>nDCG@10 %{x:.3f}<br>95 % CI %{customdata[1]:.3f}–%{customdata[2]:.3f}"
                      "<extra></extra>"))
    d = validation.downstream.set_index(validation.downstream["variant"].astype(str))
    # the two baselines are usually close: label the lower one on its left, the higher on its right
    base = sorted(((float(d.loc[n, "ndcg@10"]), n) for n in ("in-batch only", "untrained")
                   if n in d.index and pd.notna(d.loc[n, "ndcg@10"])))
    for i, (x, name) in enumerate(base):
        fig.add_vline(x=x, line=dict(dash="dot" if name == "in-batch only" else "dash", color="#777777", width=1),
                      annotation_text=name, annotation_position="top left" if i == 0 and len(base) > 1 else "top right",
                      annotation_font_size=11)
    meta = getattr(validation, "meta", {}) or {}
    fig.update_layout(title=f"Sources ranked by measured nDCG@10 ({meta.get('trainer', '?')} trainer)",
                      xaxis_title="downstream nDCG@10 (95 % CI over test queries)", yaxis_title=None, showlegend=False,
                      height=max(260, 50 * len(labels) + 140), margin=dict(l=10, r=10, t=70, b=40))
    return fig


def validation_verdict(ranked: pd.DataFrame, validation: Any) -> str:
    """What a validation of the loaded sources measured: which loaded source trained best (mean
    nDCG@10 with its 95 % interval, gain over in-batch negatives only), which sources it is tied
    with (differences not resolved, :func:`validated_ranking`), ECI's pick among the loaded
    sources, and ECI's Spearman ρ with training (95 % interval) over the validated sources."""
    d = validation.downstream
    loaded = [str(n) for n in ranked["name"]]
    src = d[(d["kind"] == "source") & d["variant"].astype(str).isin(loaded)]
    if src.empty:
        src = d[d["kind"] == "source"]
    src = src.sort_values("ndcg@10", ascending=False, kind="stable")
    top = src.iloc[0]
    best = str(top["variant"])
    meta = getattr(validation, "meta", {}) or {}
    seeds = int(top.get("n_seeds", 1)) if pd.notna(top.get("n_seeds", np.nan)) else 1
    how = f"{meta.get('trainer', '?')} trainer, {meta.get('n_splits', '?')} split(s) × {seeds} seed(s)"
    text = (f"Validation ({how}): {best} trained best of the loaded sources (nDCG@10 {top['ndcg@10']:.3f}, "
            f"95 % CI {top['ndcg@10_low']:.3f}–{top['ndcg@10_high']:.3f}")
    if pd.notna(top.get("gain", np.nan)):
        text += f", {float(top['gain']):+.3f} over in-batch negatives only"
    text += ")."
    table = validated_ranking(validation, src["variant"].astype(str).tolist())
    if table.attrs.get("ties_known"):
        tied = [n for n, k in zip(table["source"], table["rank"]) if k == 1 and n != best]
        if tied:
            shown = ", ".join(tied[:5]) + (f" and {len(tied) - 5} more" if len(tied) > 5 else "")
            text += (f" Not resolvably: training did not tell it apart from {shown} (P(trains better) < "
                     f"{RESOLVED_P:.2f}), so {'they share' if len(tied) > 1 else 'both share'} first place.")
    elif len(src) > 1:
        text += " No pairwise probabilities were saved: compare the intervals."
    eci_pick = loaded[0]
    same = eci_pick == best
    text += f" ECI ranks {eci_pick} first{' too' if same else ''}"
    sentence = _eci_agreement_sentence(validation)
    text += f"; {sentence}." if sentence else "."
    return text


# --------------------------------------------------------------------------- Signal vs Safety
def signal_safety_frame(result: Any, sources: Sequence[str] | None = None, collection: Any = None) -> pd.DataFrame:
    """The per-(query, source) points of the Signal-vs-Safety chart: the queries table (rows of
    the chosen sources, in source order) with a ``row_id`` column (0…n−1) that the figure carries
    as custom data, so ``selection.rows_for_ids(frame, selected_ids(event), "row_id")`` gives the
    selected rows (the linked table). With ``collection`` a ``query`` column holds the query text."""
    q = _table(result, "queries")
    _require(q, ("source", "query_id", "S", "delta"), "queries")
    order = _source_order(q, sources)

    def build() -> pd.DataFrame:
        parts = [_rows(q, "source", s) for s in order]
        out = pd.concat(parts, ignore_index=True) if parts else q.iloc[0:0].copy()
        out.insert(0, "row_id", np.arange(len(out), dtype=np.int64))
        return out

    out = _memo(q, ("signal_safety_frame", tuple(order)), build)
    if collection is not None:
        out = out.copy()
        texts = [collection.query_texts[collection.query_index(str(x))] if collection.has_query(str(x)) else ""
                 for x in out["query_id"]]
        out.insert(3, "query", texts)
    return out


# --------------------------------------------------------------------------- sampling & binning
def scatter_sample(frame: pd.DataFrame, by: str | None = "source", max_points: int | None = None,
                   seed: int = 0, keep: np.ndarray | None = None) -> pd.DataFrame:
    """The rows of ``frame`` a scatter plot draws: all of them when there are at most
    ``max_points``, else a seeded uniform random sample stratified by ``by`` (each value's share
    proportional to its size, every value kept: :func:`eci_core.explore.projection.stratified_sample`),
    in table order. ``keep`` (a boolean mask) marks rows that are always drawn (e.g. highlighted
    ones); they count towards ``max_points`` (the first ``max_points`` of them when there are
    more). ``max_points`` defaults to :data:`SCATTER_MAX_POINTS`. Memoised per (frame, arguments)."""
    from eci_core.explore.projection import stratified_sample

    max_points = SCATTER_MAX_POINTS if max_points is None else int(max_points)
    if max_points < 1:
        raise ValueError(f"max_points={max_points}: must be >= 1 (e.g. {SCATTER_MAX_POINTS})")
    n = len(frame)
    keep_key = None if keep is None else hashlib.sha1(np.packbits(np.asarray(keep, dtype=bool)).tobytes()).hexdigest()

    def build() -> pd.DataFrame:
        if n <= max_points:
            return frame
        forced = np.zeros(n, dtype=bool) if keep is None else np.asarray(keep, dtype=bool).copy()
        forced[np.flatnonzero(forced)[max_points:]] = False
        rest = np.flatnonzero(~forced)
        room = max_points - int(forced.sum())
        labels = (frame[by].astype(str).to_numpy(dtype=object)[rest] if by else np.zeros(len(rest), dtype=object))
        picked = rest[stratified_sample(labels, room, seed)] if room > 0 and len(rest) else rest[:0]
        idx = np.sort(np.concatenate([np.flatnonzero(forced), picked]))
        return frame.iloc[idx]

    return _memo(frame, ("scatter_sample", by, int(max_points), int(seed), keep_key), build)


def sampling_note(n_shown: int, n_total: int, by: str | None = "source", what: str = "points",
                  uses_all: str = "histograms and summary numbers") -> str:
    """What a scatter plot drew, in one sentence ("" when it drew every point)."""
    if n_shown >= n_total:
        return ""
    cap = f"{SCATTER_MAX_POINTS:,}"
    strat = f", stratified by {by} (each {by} in proportion to its size)" if by else ""
    return (f"The chart draws a seeded random sample of {n_shown:,} of {n_total:,} {what}{strat}, at most "
            f"{cap}; the {uses_all} count all {n_total:,}, a box or lasso selects among the "
            "points drawn.")


def signal_safety_sample(frame: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """The points of :func:`signal_safety_frame` the scatter draws and the sentence saying so."""
    shown = scatter_sample(frame, "source")
    return shown, sampling_note(len(shown), len(frame), "source", "(query, source) points")


def binned_histogram(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts of ``values`` (NaN dropped) in the bins ``[edges[i], edges[i+1])``, the last bin
    closed (``numpy.histogram``): what a histogram figure sends instead of the raw values."""
    v = np.asarray(values, dtype=np.float64)
    counts, _ = np.histogram(v[np.isfinite(v)], bins=np.asarray(edges, dtype=np.float64))
    return counts


def ecdf_points(values: np.ndarray, max_points: int = ECDF_MAX_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """At most ``max_points + 1`` points of the empirical CDF of ``values`` (NaN dropped):
    ``x`` = the sorted values at evenly spaced ranks (always the smallest and largest),
    ``y`` = F(x) = share of values ≤ x, exact at each returned point (ties included). Drawn as a
    step line it differs from the full ECDF by at most 1 / max_points."""
    x = np.asarray(values, dtype=np.float64)
    x = np.sort(x[~np.isnan(x)])
    n = x.size
    if n == 0:
        return x, np.zeros(0)
    if n <= max_points:
        idx = np.arange(n)
    else:
        idx = np.unique(np.linspace(0, n - 1, max_points + 1).round().astype(np.int64))
    xs = x[idx]
    xs = xs[np.r_[True, xs[1:] != xs[:-1]]]  # one point per distinct value
    return xs, np.searchsorted(x, xs, side="right") / n


# --------------------------------------------------------------------------- compare
@dataclass
class Comparison:
    """Two sources on the queries both cover.

    ``per_query``: ``query_id, eci_a, eci_b, diff`` (= eci_a − eci_b), plus ``S_a, S_b,
    delta_a, delta_b, K_a, K_b`` when present, sorted by |diff| descending; ``top``: its first
    ``n_top`` rows (the most-disagreeing queries). ``mean_diff`` = mean of diff,
    ``a_wins`` / ``b_wins`` / ``ties`` count queries where a > b, a < b, a == b.
    """

    a: str
    b: str
    per_query: pd.DataFrame
    top: pd.DataFrame
    n_shared: int
    mean_diff: float
    a_wins: int
    b_wins: int
    ties: int
    only_a: int = 0
    only_b: int = 0

    def summary(self) -> str:
        """One line, e.g. ``"120 shared queries: bm25 − dense = +0.031 ECI per query; bm25
        higher on 70, dense higher on 45, equal on 5."``"""
        if not self.n_shared:
            return f"{self.a} and {self.b} share no query: nothing to compare."
        return (f"{self.n_shared} shared queries: {self.a} − {self.b} = {self.mean_diff:+.3f} ECI per query; "
                f"{self.a} higher on {self.a_wins}, {self.b} higher on {self.b_wins}, equal on {self.ties}.")


def compare_sources(result: Any, a: str, b: str, n_top: int = 10) -> Comparison:
    """Per-query ECI difference between sources ``a`` and ``b`` on their shared queries."""
    q = _table(result, "queries")
    _require(q, ("source", "query_id", "eci"), "queries")
    known = _source_order(q, None)
    for name, val in (("a", a), ("b", b)):
        if val not in known:
            raise ValueError(f"{name}={val!r} is not a scored source; known: {', '.join(known)}")
    if a == b:
        raise ValueError(f"a and b are both {a!r}: choose two different sources")
    return _memo(q, ("compare", str(a), str(b), int(n_top)), lambda: _compare(q, a, b, n_top))


def _compare(q: pd.DataFrame, a: str, b: str, n_top: int) -> Comparison:
    extra = [c for c in ("S", "delta", "K") if c in q.columns]
    qa = _rows(q, "source", a).set_index("query_id")[["eci", *extra]]
    qb = _rows(q, "source", b).set_index("query_id")[["eci", *extra]]
    j = qa.add_suffix("_a").join(qb.add_suffix("_b"), how="inner").reset_index()
    j["diff"] = j["eci_a"] - j["eci_b"]
    cols = ["query_id", "eci_a", "eci_b", "diff"] + [f"{c}_{s}" for c in extra for s in ("a", "b")]
    j = j[cols]
    order = np.argsort(-np.abs(j["diff"].to_numpy(dtype=np.float64)), kind="stable")
    j = j.iloc[order].reset_index(drop=True)
    d = j["diff"].to_numpy(dtype=np.float64)
    return Comparison(
        a=a, b=b, per_query=j, top=j.head(n_top).copy(), n_shared=len(j),
        mean_diff=float(d.mean()) if len(d) else float("nan"),
        a_wins=int((d > 0).sum()), b_wins=int((d < 0).sum()), ties=int((d == 0).sum()),
        only_a=int(len(qa.index.difference(qb.index))), only_b=int(len(qb.index.difference(qa.index))),
    )


# --------------------------------------------------------------------------- drill-down
def _tokenize(text: str) -> list[str]:
    try:
        from eci_core.metrics.lexical import tokenize
    except ImportError:  # pragma: no cover - lexical is part of the package
        import re

        return re.findall(r"\w+", text.lower())
    return tokenize(text)


def shared_words(text: str, reference: str | Sequence[str]) -> list[str]:
    """Distinct tokens of ``text`` (``eci_core.metrics.lexical.tokenize``: lowercase ``\\w+``) that also
    occur in ``reference`` (one text or several, e.g. all positives), in order of first
    appearance in ``text``: the words to highlight."""
    refs = [reference] if isinstance(reference, str) else list(reference)
    ref_tokens: set[str] = set()
    for r in refs:
        ref_tokens.update(_tokenize(r))
    return [t for t in dict.fromkeys(_tokenize(text)) if t in ref_tokens]


def highlight_html(text: str, words: Iterable[str], tag: str = "mark") -> str:
    """``text`` HTML-escaped, with every token (``\\w+``, compared lowercase as
    ``eci_core.metrics.lexical.tokenize`` does) that is in ``words`` wrapped in ``<mark>…</mark>``: the
    drill-down's highlighting of words shared with the positive."""
    import html
    import re

    wanted = {w.lower() for w in words}
    out, last = [], 0
    for m in re.finditer(r"\w+", text):
        if m.group().lower() in wanted:
            out.append(html.escape(text[last:m.start()]))
            out.append(f"<{tag}>{html.escape(m.group())}</{tag}>")
            last = m.end()
    out.append(html.escape(text[last:]))
    return "".join(out)


@dataclass
class DrillDown:
    """Everything the Query drill-down shows for one query.

    ``negatives`` has one row per (source, negative), ranked by ``s_qn`` descending within each
    source: ``source, rank_by_sim, rank, passage_id, text, s_qn, margin, s_pn, lex_overlap,
    ce_margin, flagged, flag_reasons, percpos, fn_score, fn_band, shared_words``; ``metrics``: the query's rows of
    the queries table (one per source).
    """

    query_id: str
    query: str
    positive_ids: list[str]
    positives: list[str]
    negatives: pd.DataFrame
    metrics: pd.DataFrame = field(default_factory=pd.DataFrame)


def query_drilldown(collection: Any, result: Any, query_id: str, sources: Sequence[str] | None = None) -> DrillDown:
    """Rows of one query for the drill-down page (see :class:`DrillDown`). ``collection`` gives
    the texts; ``result`` the pairs and queries tables."""
    qid = str(query_id)
    try:
        qi = collection.query_index(qid)
    except KeyError:
        raise ValueError(f"query_id={qid!r} is not in the collection ({collection.n_queries} queries loaded)") from None
    pos_idx = list(collection.positives.get(qi, []))
    pos_texts = [collection.passage_texts[i] for i in pos_idx]
    pairs = _table(result, "pairs")
    p = _rows(pairs, "query_id", qid)
    if sources is not None:
        p = p[p["source"].astype(str).isin([str(s) for s in sources])]
    order = _source_order(p, None)
    frames = []
    for s in order:
        ps = p[p["source"].astype(str).to_numpy() == s].sort_values("s_qn", ascending=False, kind="stable").copy()
        ps.insert(1, "rank_by_sim", np.arange(1, len(ps) + 1))
        frames.append(ps)
    neg = pd.concat(frames, ignore_index=True) if frames else p.iloc[0:0].copy()
    texts = [collection.passage_texts[collection.passage_index(str(pid))] for pid in neg["passage_id"]] if len(neg) else []
    neg["text"] = texts
    neg["shared_words"] = [shared_words(t, pos_texts) for t in texts]
    cols = ["source", "rank_by_sim", "rank", "passage_id", "text", "s_qn", "margin", "s_pn", "lex_overlap",
            "ce_margin", "flagged", "flag_reasons", "percpos", "fn_score", "fn_band", "shared_words"]
    neg = neg[[c for c in cols if c in neg.columns]].reset_index(drop=True)
    qt = _table(result, "queries")
    met = _rows(qt, "query_id", qid)
    if sources is not None:
        met = met[met["source"].astype(str).isin([str(s) for s in sources])]
    return DrillDown(
        query_id=qid, query=collection.query_texts[qi],
        positive_ids=[collection.passage_ids[i] for i in pos_idx], positives=pos_texts,
        negatives=neg, metrics=met.reset_index(drop=True),
    )


def _scored_query_mask(collection: Any, result: Any) -> np.ndarray:
    """Boolean mask over the collection's query indices: queries with a row in ``result.queries``."""
    q = _table(result, "queries")

    def build() -> np.ndarray:
        ids = pd.Index(list(collection.query_ids))
        pos = ids.get_indexer(pd.unique(q["query_id"].astype(str)))
        mask = np.zeros(collection.n_queries, dtype=bool)
        mask[pos[pos >= 0]] = True
        return mask

    return _memo(q, ("scored_mask", id(collection), collection.n_queries), build)


def search_queries(collection: Any, text: str, result: Any = None, limit: int = 20) -> tuple[list[str], int]:
    """Query ids matching ``text`` and how many match in all, for a search box.

    Case-insensitive. Order: the query whose id equals ``text``; then ids containing it; then
    queries whose text contains every word of ``text`` (in collection order). With ``result``
    only queries scored in it are searched. At most ``limit`` ids are returned; vectorised over
    the query texts (lowercased once per collection), so it stays fast with a million queries."""
    needle = str(text or "").strip().lower()
    if not needle:
        return [], 0
    if limit < 1:
        raise ValueError(f"limit={limit}: must be >= 1 (e.g. 20)")
    ids = _memo(collection, ("ids_lower", collection.n_queries),
                lambda: pd.Series(list(collection.query_ids), dtype=object).str.lower())
    texts = _memo(collection, ("texts_lower", collection.n_queries),
                  lambda: pd.Series(list(collection.query_texts), dtype=object).str.lower())
    allowed = _scored_query_mask(collection, result) if result is not None else np.ones(len(ids), dtype=bool)
    exact = (ids == needle).to_numpy() & allowed
    in_id = ids.str.contains(needle, regex=False).to_numpy() & allowed & ~exact
    in_text = allowed & ~exact & ~in_id
    for w in needle.split():
        in_text &= texts.str.contains(w, regex=False).to_numpy()
    order = np.concatenate([np.flatnonzero(exact), np.flatnonzero(in_id), np.flatnonzero(in_text)])
    qids = collection.query_ids
    return [str(qids[i]) for i in order[:limit]], int(order.size)


def cleaned_set(collection: Any, result: Any, **options: Any):
    """:func:`eci_core.io.export.clean_collection` ``(collection, result, **options)``, computed once
    per (data, settings, options) and kept for the two most recent option sets (the Export page
    reruns on every widget change; cleaning a million negatives takes seconds)."""
    from eci_core.io import export

    def freeze(v: Any) -> Any:
        if isinstance(v, dict):
            return tuple(sorted((freeze(k), freeze(x)) for k, x in v.items()))
        if isinstance(v, (list, tuple, set, frozenset)):
            return tuple(freeze(x) for x in v)
        return v

    key = (id(collection),) + tuple(sorted((k, freeze(v)) for k, v in options.items()))
    return _memo_recent(result, "cleaned_set", key, lambda: export.clean_collection(collection, result, **options))


def cleaned_summary(cleaned: Any) -> pd.DataFrame:
    """``cleaned.summary()`` (see :class:`eci_core.io.export.CleanedSet`), once per cleaned set."""
    return _memo(cleaned, ("summary",), cleaned.summary).copy()


def warm_up(collection: Any, result: Any, n_top: int = 15,
            progress: Callable[[str, int, int], None] | None = None,
            then: Sequence[tuple[str, Callable[[], Any]]] = ()) -> None:
    """Compute, once, what the dashboard's pages derive from a new ScoreResult (in page order:
    per-source summaries, margin histograms, flag counts, the Signal-vs-Safety frame and its
    figure, the drill-down's query index and lowest-ECI list, the Review queue's default view,
    the comparison of the two best sources, the default cleaned set of the best source), so that
    the first visit of a page finds it ready. ``then``: more ``(label, step)`` pairs run after
    these (the dashboard adds its default projection, which it caches itself); ``progress(stage,
    done, total)`` is called before each step. The dashboard runs this right after scoring, before
    the first chart, so no page switch competes with it; a page asking for a table while another
    session computes it waits for it instead of computing it twice."""
    names = [str(n) for n in result.sources["name"]] if len(result.sources) else []
    if not names:
        return
    steps: list[tuple[str, Callable[[], Any]]] = [
        ("summaries", lambda: score_summary(result.pairs, names[0])),
        ("flag counts", lambda: flag_counts(result, names)),
        ("risk bands", lambda: percpos_band(result, sources=names))]
    try:
        import plotly  # noqa: F401

        # the figures too, with the pages' default arguments (a page rerun gets the same object)
        steps.append(("margin histograms", lambda: margin_histogram(result, names)))
        steps.append(("signal vs safety", lambda: signal_safety_figure(
            result, names, frame=signal_safety_frame(result, names))))
    except ImportError:  # pragma: no cover - plotly is a dependency of the dashboard
        pass
    steps += [("lowest-ECI queries", lambda: worst_queries(result, n=20)),
              ("query index", lambda: _groups(result.pairs, "query_id")),
              ("scored queries", lambda: _scored_query_mask(collection, result))]
    if "fn_score" in result.pairs.columns:  # the Review page's default: every source, the shipped score
        steps.append(("review queue", lambda: review_view(result, result.pairs["fn_score"].to_numpy(), names, {},
                                                          "Unreviewed")))
    if len(names) > 1:
        steps.append(("comparison", lambda: compare_scatter(compare_sources(result, names[0], names[1], n_top=n_top))))
    # the Export page's defaults: best source, "drop flagged", no marks, t = 0.5
    steps.append(("cleaned set", lambda: cleaned_summary(cleaned_set(collection, result, rule="drop_flagged", marks={},
                                                                     sources=[names[0]], fn_threshold=0.5))))
    steps += [(f"summary of {s}", lambda s=s: score_summary(result.pairs, s)) for s in names[1:]]
    steps += list(then)
    for i, (label, step) in enumerate(steps):
        if progress:
            progress(label, i, len(steps))
        step()
    if progress:
        progress("done", len(steps), len(steps))


def query_choices(collection: Any, result: Any, search: str = "", current: str | None = None,
                  limit: int = 20) -> tuple[list[str], str]:
    """The options of the drill-down's query picker and a caption for them.

    With ``search``: the first ``limit`` scored queries :func:`search_queries` finds. Without:
    ``current`` (when it is a scored query) followed by the ``limit`` queries with the lowest ECI
    (:func:`worst_queries`). The picker never lists every query (a million options would be sent
    to the browser on every run)."""
    n_scored = int(_scored_query_mask(collection, result).sum())
    if str(search or "").strip():
        ids, n = search_queries(collection, search, result=result, limit=limit)
        more = f"; refine the search to see the other {n - len(ids):,}" if n > len(ids) else ""
        return ids, f"{n:,} of {n_scored:,} queries match{more}"
    ids = worst_queries(result, n=limit)["query_id"].astype(str).tolist()
    if current and str(current) not in ids and collection.has_query(str(current)):
        if _scored_query_mask(collection, result)[collection.query_index(str(current))]:
            ids.insert(0, str(current))
    return ids, f"the {min(limit, n_scored):,} lowest-ECI of {n_scored:,} queries; search to find any other"


def worst_queries(result: Any, source: str | None = None, n: int = 10) -> pd.DataFrame:
    """The ``n`` queries with the lowest ECI_q (ties: lower Δ, then lower S, then query id).

    With ``source=None`` queries are ranked by their mean ECI_q over the sources that cover them
    (columns ``query_id, eci, delta, S, n_sources``); with a source, that source's queries rows."""
    q = _table(result, "queries")
    _require(q, ("source", "query_id", "eci"), "queries")
    if source is not None and str(source) not in _source_order(q, None):
        raise ValueError(f"unknown source {source!r}; known: {', '.join(_source_order(q, None))}")
    ranked = _memo(q, ("worst_queries", None if source is None else str(source)), lambda: _rank_worst(q, source))
    return ranked.head(n).reset_index(drop=True)


def _rank_worst(q: pd.DataFrame, source: str | None) -> pd.DataFrame:
    if source is not None:
        t = _rows(q, "source", source)
    else:
        agg = {"eci": ("eci", "mean"), "n_sources": ("source", "nunique")}
        if "delta" in q.columns:
            agg["delta"] = ("delta", "mean")
        if "S" in q.columns:
            agg["S"] = ("S", "mean")
        t = q.groupby("query_id", sort=False).agg(**agg).reset_index()
    keys = [c for c in ("eci", "delta", "S", "query_id") if c in t.columns]
    return t.sort_values(keys, kind="stable").reset_index(drop=True)


def worst_query(result: Any, source: str | None = None) -> str | None:
    """The id of the query with the lowest ECI (see :func:`worst_queries`); None when no query."""
    t = worst_queries(result, source, n=1)
    return None if t.empty else str(t["query_id"].iloc[0])


# --------------------------------------------------------------------------- figures
def overview_figure(result: Any, title: str = "Sources ranked by ECI"):
    """Horizontal dot chart of ECI per source, best on top, with 95 % bootstrap error bars
    (``eci_low`` … ``eci_high``). custom_data = [name]."""
    import plotly.graph_objects as go

    src = _table(result, "sources")
    _require(src, ("name", "eci"), "sources")
    s = src.sort_values("eci", ascending=True, kind="stable")
    names = s["name"].astype(str).tolist()
    colors = source_colors(src.sort_values("eci", ascending=False, kind="stable")["name"].astype(str).tolist())
    err = None
    if "eci_low" in s.columns and "eci_high" in s.columns:
        err = dict(type="data", symmetric=False,
                   array=(s["eci_high"] - s["eci"]).clip(lower=0).to_numpy(dtype=float),
                   arrayminus=(s["eci"] - s["eci_low"]).clip(lower=0).to_numpy(dtype=float), thickness=1.5, width=6)
    hover = "<b>%{y}</b><br>ECI %{x:.3f}"
    if err is not None:
        hover += "<br>95 % CI %{customdata[1]:.3f}–%{customdata[2]:.3f}"
    custom = np.column_stack([names, s.get("eci_low", s["eci"]).to_numpy(dtype=float),
                              s.get("eci_high", s["eci"]).to_numpy(dtype=float)]) if len(s) else None
    fig = go.Figure(go.Scatter(
        x=s["eci"].to_numpy(dtype=float), y=names, mode="markers", error_x=err,
        marker=dict(size=12, color=[colors[n] for n in names]), customdata=custom,
        hovertemplate=hover + "<extra></extra>", name="ECI"))
    fig.update_layout(title=title, xaxis_title="ECI (nats · DE)", yaxis_title=None, showlegend=False,
                      height=max(260, 60 * len(names) + 120), margin=dict(l=10, r=10, t=50, b=40))
    return fig


def _margin_histogram(result: Any, sources: Sequence[str] | None = None, mode: str = "overlay",
                     ecdf_view: bool = False, percpos: float | None = None, nbins: int = 60):
    """Histogram (or ECDF with ``ecdf_view=True``) of ``margin = s_qp − s_qn`` per source.

    ``mode``: ``"overlay"`` (one axis, translucent bars / lines) or ``"facets"`` (small
    multiples, one row per source, shared x). A solid line marks margin = 0 (left of it: unsafe)
    and a shaded band marks the 95 %-of-positive band 0 … (1 − p)·median(s_qp) (see
    :func:`percpos_band`)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    if mode not in ("overlay", "facets"):
        raise ValueError(f"mode={mode!r}: use 'overlay' or 'facets'")
    pairs = _table(result, "pairs")
    _require(pairs, ("source", "margin"), "pairs")
    order = _source_order(pairs, sources)
    colors = source_colors(_ranked_names(result, order))
    band = percpos_band(result, percpos, order) if "s_qp" in pairs.columns else pd.DataFrame()
    rows = len(order) if mode == "facets" and order else 1
    fig = make_subplots(rows=rows, cols=1, shared_xaxes=True, vertical_spacing=0.04 if rows > 1 else 0.0,
                        subplot_titles=order if mode == "facets" else None)
    lo, hi = _memo(pairs, ("margin_range",), lambda: _finite_range(pairs["margin"].to_numpy(dtype=np.float64)))
    size = (hi - lo) / nbins if hi > lo else 0.01
    edges = lo + size * np.arange(nbins + 1 if hi > lo else 2)
    centers = (edges[:-1] + edges[1:]) / 2
    for i, s in enumerate(order):
        r = i + 1 if mode == "facets" else 1
        if ecdf_view:  # the exact ECDF at <= ECDF_MAX_POINTS ranks, not one point per negative
            x, y = _memo(pairs, ("ecdf_points", s, "margin"), lambda s=s: ecdf_points(_values(pairs, "source", s, "margin")))
            fig.add_trace(go.Scatter(x=x, y=y, mode="lines", line=dict(color=colors[s], shape="hv"), name=s,
                                     legendgroup=s, hovertemplate=f"{s}<br>margin %{{x:.3f}}<br>F %{{y:.3f}}<extra></extra>"),
                          row=r, col=1)
        else:  # binned here with numpy: the figure carries nbins counts, not every margin
            counts = _memo(pairs, ("margin_hist", s, lo, hi, int(nbins)),
                           lambda s=s: binned_histogram(_values(pairs, "source", s, "margin"), edges))
            fig.add_trace(go.Bar(x=centers, y=counts, width=size, name=s, legendgroup=s, marker_color=colors[s],
                                 marker_line_width=0, opacity=0.55 if mode == "overlay" else 0.85,
                                 customdata=np.column_stack([edges[:-1], edges[1:]]),
                                 hovertemplate=f"{s}<br>margin %{{customdata[0]:.3f}} to %{{customdata[1]:.3f}}"
                                               f"<br>%{{y}} negatives<extra></extra>"),
                          row=r, col=1)
    for r in range(1, rows + 1):
        fig.add_vline(x=0, line=dict(color="#D55E00", width=2), row=r, col=1)
    if len(band):
        for i, b in band.iterrows():
            if not np.isfinite(b["high"]):
                continue
            r = i + 1 if mode == "facets" else 1
            fig.add_vrect(x0=0, x1=float(b["high"]), fillcolor=colors.get(b["source"], "#999999") if mode == "overlay"
                          else "#F0E442", opacity=0.15, line_width=0, row=r, col=1)
    fig.update_layout(barmode="overlay", bargap=0, title="Margin s_qp − s_qn per negative",
                      height=max(320, 170 * rows + 80), legend_title_text="source",
                      margin=dict(l=10, r=10, t=60, b=40))
    fig.update_xaxes(title_text="margin", row=rows, col=1)
    fig.update_yaxes(title_text="share ≤ x" if ecdf_view else "negatives")
    return fig


def _finite_range(x: np.ndarray) -> tuple[float, float]:
    x = x[np.isfinite(x)]
    return (float(x.min()), float(x.max())) if x.size else (-1.0, 1.0)


def _ranked_names(result: Any, order: Sequence[str]) -> list[str]:
    """Source names in ranking order (so a source keeps its colour across figures)."""
    if not isinstance(result, pd.DataFrame) and hasattr(result, "sources") and isinstance(result.sources, pd.DataFrame):
        ranked = [str(n) for n in result.sources["name"]]
        return ranked + [s for s in order if s not in ranked]
    return list(order)


def flag_funnel_figure(result: Any, source: str):
    """Funnel chart of :func:`flag_funnel` for one source (negatives caught per rule, new
    catches per step, then kept)."""
    import plotly.graph_objects as go

    f = flag_funnel(result, source)
    steps = f[f["stage"].isin(FLAG_RULES)]
    fig = go.Figure()
    fig.add_trace(go.Bar(y=f["stage"], x=f["caught"], orientation="h", name="caught by the rule",
                         marker_color="#56B4E9", text=f["caught"], textposition="outside",
                         hovertemplate="%{y}: %{x}<extra></extra>"))
    fig.add_trace(go.Bar(y=steps["stage"], x=steps["new"], orientation="h", name="new (not caught before)",
                         marker_color="#0072B2", text=steps["new"], textposition="outside",
                         hovertemplate="%{y}: %{x} new<extra></extra>"))
    fig.update_layout(barmode="group", title=f"Flags of {source}", yaxis=dict(autorange="reversed"),
                      height=300, margin=dict(l=10, r=10, t=50, b=30), xaxis_title="negatives")
    return fig


def _signal_safety_figure(result: Any, sources: Sequence[str] | None = None, marginals: bool = True,
                         contours: bool = True, frame: pd.DataFrame | None = None):
    """Signal S (x) vs Safety Δ (y), one point per (query, source), coloured by source, with
    iso-DE contour lines of DE = 2·S·Δ / (S + Δ) and marginal histograms of S (top) and Δ
    (right). Every scatter point carries ``custom_data = [row_id, query_id, source]`` where
    ``row_id`` indexes ``frame`` (default :func:`signal_safety_frame`), so the page maps a box /
    lasso selection to rows with ``selection.selected_ids`` + ``selection.rows_for_ids``.

    At scale: the scatter draws :func:`signal_safety_sample` (at most :data:`SCATTER_MAX_POINTS`,
    stratified by source); the marginal histograms are binned with numpy over every point."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    df = signal_safety_frame(result, sources) if frame is None else frame
    order = _source_order(df, sources)
    colors = source_colors(_ranked_names(result, order))
    if marginals:
        fig = make_subplots(rows=2, cols=2, column_widths=[0.82, 0.18], row_heights=[0.18, 0.82],
                            shared_xaxes="columns", shared_yaxes="rows", horizontal_spacing=0.01, vertical_spacing=0.01)
        main = dict(row=2, col=1)
    else:
        fig = make_subplots(rows=1, cols=1)
        main = dict(row=1, col=1)
    smax = float(np.nanmax(df["S"])) if len(df) else 1.0
    dmax = float(np.nanmax(df["delta"])) if len(df) else 1.0
    smax = max(smax * 1.05, 0.05)
    dmax = max(dmax * 1.05, 0.05)
    shown, _ = signal_safety_sample(df)
    s_edges, d_edges = np.linspace(0.0, smax, 41), np.linspace(0.0, dmax, 41)
    if contours:
        s, d, z = de_grid(smax, dmax, 81)
        fig.add_trace(go.Contour(x=s, y=d, z=z, showscale=False, contours=dict(coloring="none", showlabels=True,
                                 labelfont=dict(size=10, color="#777777")), line=dict(color="#BBBBBB", width=1),
                                 ncontours=8, hoverinfo="skip", name="iso-DE", showlegend=False), **main)
    for s_name in order:
        part = _rows(shown, "source", s_name)
        custom = np.column_stack([part["row_id"].to_numpy(), part["query_id"].astype(str).to_numpy(),
                                  part["source"].astype(str).to_numpy()]).astype(object) if len(part) else None
        eci_txt = "<br>ECI_q %{customdata[3]:.3f}" if "eci" in part.columns else ""
        if "eci" in part.columns and custom is not None:
            custom = np.column_stack([custom, part["eci"].to_numpy(dtype=float)]).astype(object)
        fig.add_trace(go.Scattergl(
            x=part["S"].to_numpy(dtype=float), y=part["delta"].to_numpy(dtype=float), mode="markers",
            name=s_name, legendgroup=s_name, marker=dict(color=colors[s_name], size=6, opacity=0.75),
            customdata=custom,
            hovertemplate=f"<b>{s_name}</b><br>query %{{customdata[1]}}<br>S %{{x:.3f}}<br>Δ %{{y:.3f}}{eci_txt}<extra></extra>",
        ), **main)
        if marginals:  # every point of the source, binned here
            sc = binned_histogram(_values(df, "source", s_name, "S"), s_edges)
            dc = binned_histogram(_values(df, "source", s_name, "delta"), d_edges)
            fig.add_trace(go.Bar(x=(s_edges[:-1] + s_edges[1:]) / 2, y=sc, width=s_edges[1] - s_edges[0],
                                 marker_color=colors[s_name], marker_line_width=0, opacity=0.55, legendgroup=s_name,
                                 showlegend=False, hoverinfo="skip"), row=1, col=1)
            fig.add_trace(go.Bar(y=(d_edges[:-1] + d_edges[1:]) / 2, x=dc, width=d_edges[1] - d_edges[0],
                                 orientation="h", marker_color=colors[s_name], marker_line_width=0, opacity=0.55,
                                 legendgroup=s_name, showlegend=False, hoverinfo="skip"), row=2, col=2)
    fig.update_xaxes(title_text="Signal S = mean s_qn (clipped at 0)", range=[0, smax], **main)
    fig.update_yaxes(title_text="Safety Δ = s_qp − max s_qn (clipped at 0)", range=[0, dmax], **main)
    fig.update_layout(barmode="overlay", bargap=0, title="Signal vs Safety (lines: iso-DE)", height=620,
                      dragmode="lasso", legend_title_text="source", margin=dict(l=10, r=10, t=60, b=40))
    return fig


def beats_heatmap(result: Any):
    """Heatmap of ``beats.loc[row, col]`` = P(ECI(row) > ECI(col)) on shared queries (diagonal
    blank), rows and columns in ranking order, cell text with two decimals."""
    import plotly.graph_objects as go

    b = _table(result, "beats")
    names = [str(n) for n in b.index]
    z = b.to_numpy(dtype=float).copy()
    np.fill_diagonal(z, np.nan)
    text = [["" if np.isnan(v) else f"{v:.2f}" for v in row] for row in z]
    fig = go.Figure(go.Heatmap(z=z, x=[str(c) for c in b.columns], y=names, zmin=0, zmax=1,
                               colorscale=CONTINUOUS_SCALE, text=text, texttemplate="%{text}",
                               colorbar=dict(title="P"), hovertemplate="P(%{y} beats %{x}) = %{z:.3f}<extra></extra>"))
    fig.update_layout(title="P(row beats column)", yaxis=dict(autorange="reversed"),
                      height=max(260, 50 * len(names) + 140), margin=dict(l=10, r=10, t=50, b=40))
    return fig


def _projection_figure(points: pd.DataFrame, color_by: str = "source", selected: Iterable[Any] | None = None,
                      note: str | None = None, title: str = "Projection"):
    """Scatter of a projection point table (from ``projection.project_points``: ``row_id, x, y,
    kind, source, flag, margin, text``).

    ``color_by``: ``"source"``, ``"kind"``, ``"flag"`` (categorical, Okabe–Ito) or ``"margin"``
    (negatives on the continuous colour-blind-safe Cividis scale, queries and positives grey).
    When ``selected`` (row ids) is given, the other points are drawn dimmed (opacity 0.12) in
    separate traces named ``"… (not selected)"``. Hover shows the kind, source and the first 200
    characters of ``text``; custom_data = [row_id, kind, source]. ``note`` (e.g. the sampling
    note) is appended to the title."""
    import plotly.graph_objects as go

    _require(points, ("row_id", "x", "y", "kind", "source"), "projection points")
    if color_by not in ("source", "kind", "flag", "margin"):
        raise ValueError(f"color_by={color_by!r}: use 'source', 'kind', 'flag' or 'margin'")
    sel = None if selected is None else set(_plain_ids(selected))
    text = points["text"].astype(str).str.slice(0, 200) if "text" in points.columns else points["kind"].astype(str)
    fig = go.Figure()
    margin_range = None
    if color_by == "margin":
        m_all = points.loc[points["kind"] == "negative", "margin"].to_numpy(dtype=float)
        m_all = m_all[np.isfinite(m_all)]
        margin_range = (float(m_all.min()), float(m_all.max())) if m_all.size else (0.0, 1.0)

    def add(part, name, color, scale=False):
        # selected and unselected points go to separate traces: a per-point opacity array is
        # mis-rendered by some WebGL back-ends
        if sel is None:
            groups = [(part, name, 0.8, True)]
        else:
            chosen = part["row_id"].isin(sel).to_numpy()
            groups = [(part[~chosen], f"{name} (not selected)", 0.12, False), (part[chosen], name, 0.9, True)]
        for g, gname, op, main in groups:
            if not len(g):
                continue
            custom = np.column_stack([g["row_id"].to_numpy(), g["kind"].astype(str).to_numpy(),
                                      g["source"].astype(str).to_numpy()]).astype(object)
            marker = dict(size=5, opacity=op)
            if scale:
                marker.update(color=g["margin"].to_numpy(dtype=float), colorscale=CONTINUOUS_SCALE,
                              cmin=margin_range[0], cmax=margin_range[1], showscale=main,
                              colorbar=dict(title="margin", x=1.02, len=0.75, y=0.4))
            else:
                marker.update(color=color)
            fig.add_trace(go.Scattergl(x=g["x"].to_numpy(dtype=float), y=g["y"].to_numpy(dtype=float),
                                       mode="markers", name=gname, customdata=custom,
                                       text=text.loc[g.index].to_numpy(), marker=marker,
                                       hovertemplate="<b>%{customdata[1]}</b> %{customdata[2]}<br>%{text}<extra></extra>"))

    if color_by == "margin":
        add(points[points["kind"] != "negative"], "query / positive", "#999999")
        add(points[points["kind"] == "negative"], "negatives (margin)", None, scale=True)
    else:
        col = color_by
        if col not in points.columns:
            raise ValueError(f"color_by={color_by!r} needs a '{col}' column in the point table")
        cats = list(dict.fromkeys(points[col].astype(str).tolist()))
        pal = source_colors(cats)
        for c in cats:
            add(points[points[col].astype(str) == c], c, pal[c])
    fig.update_layout(title=title + (f" — {note}" if note else ""), height=620, dragmode="lasso",
                      legend=dict(title=color_by, orientation="h", y=-0.05, x=0),
                      margin=dict(l=10, r=10, t=60, b=30),
                      xaxis=dict(showticklabels=False, title=None), yaxis=dict(showticklabels=False, title=None))
    return fig


def _plain_ids(ids: Iterable[Any]) -> list:
    return [v.item() if isinstance(v, np.generic) else v for v in ids]


def compare_sample(comparison: Comparison) -> tuple[pd.DataFrame, str]:
    """The shared queries :func:`compare_scatter` draws (all, or a seeded random sample of at
    most :data:`SCATTER_MAX_POINTS` that always holds ``comparison.top``) and the note saying so.
    ``per_query`` is sorted by |diff|, so the top rows are its first ``len(top)`` rows."""
    pq = comparison.per_query
    keep = np.zeros(len(pq), dtype=bool)
    keep[: len(comparison.top)] = True
    shown = scatter_sample(pq, None, keep=keep)
    return shown, sampling_note(len(shown), len(pq), None, "shared queries", "summary numbers and tables")


def _compare_scatter(comparison: Comparison, highlight_top: bool = True):
    """ECI_q of source a (x) vs source b (y) on shared queries, with the diagonal y = x; the most
    disagreeing queries (``comparison.top``) are drawn larger. custom_data = [query_id, diff].
    Above :data:`SCATTER_MAX_POINTS` shared queries a seeded random sample is drawn (the most
    disagreeing always among them; :func:`compare_sample` gives it and its note)."""
    import plotly.graph_objects as go

    pq, _ = compare_sample(comparison)
    top_ids = set(comparison.top["query_id"].astype(str)) if highlight_top else set()
    is_top = pq["query_id"].astype(str).isin(top_ids).to_numpy()
    fig = go.Figure()
    hi = float(np.nanmax(np.r_[pq["eci_a"].to_numpy(dtype=float), pq["eci_b"].to_numpy(dtype=float), 0.01])) * 1.05
    fig.add_trace(go.Scatter(x=[0, hi], y=[0, hi], mode="lines", line=dict(color="#999999", dash="dash"),
                             hoverinfo="skip", name="equal"))
    for mask, name, size, color in ((~is_top, "shared queries", 6, "#56B4E9"), (is_top, "most disagreeing", 10, "#D55E00")):
        part = pq[mask]
        if not len(part):
            continue
        fig.add_trace(go.Scattergl(
            x=part["eci_a"].to_numpy(dtype=float), y=part["eci_b"].to_numpy(dtype=float), mode="markers", name=name,
            marker=dict(size=size, color=color, opacity=0.8),
            customdata=np.column_stack([part["query_id"].astype(str).to_numpy(), part["diff"].to_numpy(dtype=float)]).astype(object),
            hovertemplate="query %{customdata[0]}<br>" + f"{comparison.a} %{{x:.3f}}<br>{comparison.b} %{{y:.3f}}"
                          + "<br>diff %{customdata[1]:+.3f}<extra></extra>"))
    fig.update_layout(title=f"ECI per query: {comparison.a} vs {comparison.b}", height=520,
                      xaxis_title=f"ECI_q {comparison.a}", yaxis_title=f"ECI_q {comparison.b}",
                      margin=dict(l=10, r=10, t=50, b=40), dragmode="lasso")
    return fig


# ----------------------------------------------------------------------------- false negatives


def fn_band_counts(result: Any, sources: Sequence[str] | None = None) -> pd.DataFrame:
    """Per source: how the false-negative score splits its negatives, next to the flags.

    Columns: ``source, n_negatives, likely, possible, unlikely, likely_share`` (share of the
    source's negatives in band ``likely``), ``unsafe``, ``unsafe_likely`` (unsafe and likely a
    false negative) and ``unsafe_unlikely`` (unsafe but unlikely a false negative: usually a
    true hard negative the encoder gets wrong, the most useful kind)."""
    pairs = _table(result, "pairs")
    _require(pairs, ("source", "fn_band", "unsafe"), "pairs")

    def count(s: str) -> dict:
        p = _rows(pairs, "source", s)
        band = p["fn_band"].astype(str).to_numpy()
        uns = _bool(p["unsafe"])
        n = len(p)
        return {
            "source": s, "n_negatives": n,
            "likely": int((band == "likely").sum()), "possible": int((band == "possible").sum()),
            "unlikely": int((band == "unlikely").sum()),
            "likely_share": float((band == "likely").mean()) if n else 0.0,
            "unsafe": int(uns.sum()), "unsafe_likely": int((uns & (band == "likely")).sum()),
            "unsafe_unlikely": int((uns & (band == "unlikely")).sum()),
        }

    rows = [_memo(pairs, ("fn_band_counts", s), lambda s=s: count(s)) for s in _source_order(pairs, sources)]
    return pd.DataFrame(rows, columns=["source", "n_negatives", "likely", "possible", "unlikely", "likely_share",
                                       "unsafe", "unsafe_likely", "unsafe_unlikely"])


def review_queue(result: Any, scores: np.ndarray | None = None, sources: Sequence[str] | None = None) -> pd.DataFrame:
    """Every distinct (query, negative) across the chosen sources, most likely false negative
    first: ``query_id, passage_id, fn_score`` (the highest over the sources that mined it; the
    ``scores`` array per row of ``result.pairs`` replaces the shipped ``fn_score`` after a refit),
    ``fn_band, sources`` (comma-joined), ``n_sources, s_pn, lex_overlap, margin, unsafe,
    flag_reasons`` (of the best-scoring row)."""
    pairs = _table(result, "pairs")
    _require(pairs, ("source", "query_id", "passage_id", "fn_score"), "pairs")
    skey = None if scores is None else hashlib.sha1(np.ascontiguousarray(scores, dtype=np.float64).tobytes()).hexdigest()
    key = ("review_queue", None if sources is None else tuple(map(str, sources)), skey)
    # computed once per (pairs, sources, scores); the caller gets its own copy to add columns to
    return _memo(pairs, key, lambda: _review_queue(pairs, scores, sources)).copy()


@dataclass
class ReviewView:
    """What the Review page shows of the queue: ``n_queue`` pairs in the queue, ``bands`` (count per
    fn_band), ``n_view`` pairs passing the "show" filter, and :meth:`page` for one page of them
    (queue rows with a ``mark`` column). Only the page's rows are copied, never the whole queue."""

    n_queue: int
    bands: dict
    n_view: int
    _base: pd.DataFrame
    _positions: np.ndarray
    _marks: np.ndarray

    def page(self, number: int, size: int) -> pd.DataFrame:
        """Rows ``(number − 1)·size … number·size − 1`` of the filtered queue (1-based pages)."""
        pos = self._positions[(number - 1) * size: number * size]
        out = self._base.iloc[pos].copy()
        out["mark"] = self._marks[pos]
        return out.reset_index(drop=True)


def review_view(result: Any, scores: np.ndarray | None, sources: Sequence[str] | None,
                pair_marks: dict, show: str = "Unreviewed") -> ReviewView:
    """The Review page's queue (:func:`review_queue`, computed once) with the user's marks per
    (query_id, passage_id) joined in (cost proportional to the number of marks) and filtered by
    ``show``: ``"Unreviewed"`` (no mark), ``"Marked"`` or ``"All"``."""
    if show not in ("Unreviewed", "Marked", "All"):
        raise ValueError(f"show={show!r}: use 'Unreviewed', 'Marked' or 'All'")
    pairs = _table(result, "pairs")
    _require(pairs, ("source", "query_id", "passage_id", "fn_score"), "pairs")
    skey = None if scores is None else hashlib.sha1(np.ascontiguousarray(scores, dtype=np.float64).tobytes()).hexdigest()
    key = ("review_queue", None if sources is None else tuple(map(str, sources)), skey)
    base = _memo(pairs, key, lambda: _review_queue(pairs, scores, sources))
    bands = _memo(base, ("bands",), lambda: base["fn_band"].astype(str).value_counts().to_dict())
    marks = np.full(len(base), None, dtype=object)
    marked = np.zeros(len(base), dtype=bool)
    if pair_marks:
        groups = _groups(base, "query_id")
        pids = _memo(base, ("pids",), lambda: base["passage_id"].astype(str).to_numpy(dtype=object))
        for (q, p), m in pair_marks.items():
            rows = groups.rows(str(q))
            hit = rows[pids[rows] == str(p)] if len(rows) else rows
            if m is not None and len(hit):
                marks[hit] = m
                marked[hit] = True
    if show == "Unreviewed":
        positions = np.flatnonzero(~marked)
    elif show == "Marked":
        positions = np.flatnonzero(marked)
    else:
        positions = np.arange(len(base))
    return ReviewView(n_queue=len(base), bands=bands, n_view=len(positions), _base=base, _positions=positions,
                      _marks=marks)


def _review_queue(pairs: pd.DataFrame, scores: np.ndarray | None, sources: Sequence[str] | None) -> pd.DataFrame:
    from eci_core.metrics.false_negatives import fn_bands

    p = pairs.assign(fn_score=np.asarray(scores, dtype=np.float64)) if scores is not None else pairs
    if sources is not None:
        p = p[_isin(p["source"], sources)]
    cols = ["query_id", "passage_id", "fn_score", "fn_band", "sources", "n_sources", "s_pn", "lex_overlap",
            "margin", "unsafe", "flag_reasons"]
    if not len(p):
        return pd.DataFrame(columns=cols)
    key = ["query_id", "passage_id"]
    g = p.groupby(key, sort=False).ngroup().to_numpy()
    p = p.assign(_g=g)
    best = p.sort_values("fn_score", ascending=False, kind="stable").drop_duplicates(key)
    # the sources of each (query, passage), comma-joined in order of appearance: vectorised for
    # the (usual) pairs one source mined, a Python join only for pairs several sources share
    # (on integer codes of the source names: no string per row)
    s_codes, s_names = pd.factorize(p["source"], sort=False)
    u = pd.DataFrame({"g": g, "s": s_codes}).drop_duplicates()
    ug, us = u["g"].to_numpy(), np.asarray([str(x) for x in s_names], dtype=object)[u["s"].to_numpy()]
    n_src = np.bincount(ug, minlength=int(g.max()) + 1)
    joined = np.empty(len(n_src), dtype=object)
    one = n_src[ug] == 1
    joined[ug[one]] = us[one]
    if (~one).any():
        for gi, names in pd.Series(us[~one]).groupby(ug[~one], sort=False):
            joined[gi] = ",".join(names)
    out = best.assign(sources=joined[best["_g"].to_numpy()], n_sources=n_src[best["_g"].to_numpy()])
    out["fn_band"] = fn_bands(out["fn_score"].to_numpy())
    out = out.sort_values(["fn_score", "query_id", "passage_id"], ascending=[False, True, True], kind="stable",
                          key=_lexical)
    return out[cols].reset_index(drop=True)


def _isin(col: pd.Series, values: Sequence[Any]) -> np.ndarray:
    """``col.astype(str).isin(map(str, values))``; a categorical column is tested per category."""
    want = [str(v) for v in values]
    if isinstance(col.dtype, pd.CategoricalDtype):
        per_cat = np.r_[col.cat.categories.astype(str).isin(want), False]
        return per_cat[col.cat.codes.to_numpy()]  # code −1 (missing) picks the trailing False
    return col.astype(str).isin(want).to_numpy()


def _lexical(col: pd.Series) -> pd.Series:
    """A sort key that orders a categorical column by its values' text (as a string column sorts),
    not by the order of its categories; other columns unchanged."""
    if isinstance(col.dtype, pd.CategoricalDtype):
        cats = col.cat.categories
        if cats.is_monotonic_increasing:  # scoring's categories are sorted already
            return col
        return col.cat.reorder_categories(cats[np.argsort(cats.astype(str).to_numpy(dtype=object), kind="stable")])
    return col


def detector_quality(result: Any, labels: Any, scores: np.ndarray | None = None) -> dict[str, pd.DataFrame]:
    """How well each flag rule and the false-negative score find labelled false negatives.

    ``labels``: ``{(query_id, passage_id): 1 or 0}`` (a labels file or the reviewer's marks; 0 and
    unlabelled rows count as not false negatives). Returns ``{"summary", "curves"}``: per source
    (and ``all sources``) and per ranking (``fn_score``, ``unsafe``, ``near_duplicate``,
    ``cross_encoder`` when a cross-encoder ran, ``s_pn``, ``lex_overlap``, ``margin``) the
    average precision, ROC AUC, labelled count and the share of the source's negatives in band
    ``likely``; and the precision-recall curve points (``source, score, recall, precision``).
    """
    from eci_core.metrics.false_negatives import LIKELY, _ap_auc, label_vector, pr_curves, rule_scores

    pairs = _table(result, "pairs")
    p = pairs.assign(fn_score=np.asarray(scores, dtype=np.float64)) if scores is not None else pairs
    rows, curves = [], []
    groups = [("all sources", p)] + [(s, p[p["source"].astype(str) == s]) for s in _source_order(p, None)]
    for name, part in groups:
        y = label_vector(part, labels)
        sc = rule_scores(part)
        share = float((part["fn_score"].to_numpy(dtype=np.float64) >= LIKELY).mean()) if len(part) else 0.0
        for rule, v in sc.items():
            ap, auc = _ap_auc(v, y)
            rows.append({"source": name, "ranking": rule, "average_precision": ap, "roc_auc": auc,
                         "labelled": int(y.sum()), "negatives": len(part), "likely_share": share})
        if y.sum():
            c = pr_curves(sc, y)
            c.insert(0, "source", name)
            curves.append(c)
    summary = pd.DataFrame(rows, columns=["source", "ranking", "average_precision", "roc_auc", "labelled",
                                          "negatives", "likely_share"])
    curves_df = pd.concat(curves, ignore_index=True) if curves else pd.DataFrame(
        columns=["source", "score", "recall", "precision", "threshold"])
    return {"summary": summary, "curves": curves_df}


def pr_figure(curves: pd.DataFrame, source: str = "all sources"):
    """Precision-recall curves of :func:`detector_quality` for one source: one line per ranking,
    one marker per yes/no flag rule (its operating point)."""
    import plotly.graph_objects as go

    c = curves[curves["source"] == source]
    fig = go.Figure()
    for i, (name, part) in enumerate(c.groupby("score", sort=False)):
        point = len(part) == 1  # a yes/no rule: one operating point
        fig.add_trace(go.Scatter(x=part["recall"], y=part["precision"], mode="markers" if point else "lines",
                                 name=str(name) + (" (flag)" if point else ""),
                                 marker=dict(size=11, color=OKABE_ITO[i % len(OKABE_ITO)], symbol="diamond"),
                                 line=dict(color=OKABE_ITO[i % len(OKABE_ITO)], width=3 if name == "fn_score" else 1.5),
                                 hovertemplate=f"{name}: recall %{{x:.2f}}, precision %{{y:.2f}}<extra></extra>"))
    fig.update_layout(title=f"Precision–recall against the labels: {source}", xaxis_title="recall",
                      yaxis_title="precision", xaxis=dict(range=[0, 1]), yaxis=dict(range=[0, 1.02]),
                      height=380, margin=dict(l=10, r=10, t=50, b=30))
    return fig
# --------------------------------------------------------------------------- figures, once per table
# Building a figure of 20,000 WebGL points costs about as much as sending it; a page rerun (a
# page switch, a widget elsewhere on the page) gets the figure built for the same table and
# arguments. Callers may restyle the returned figure (axes margins, height) but not its data.
def margin_histogram(result: Any, sources: Sequence[str] | None = None, mode: str = "overlay",
                     ecdf_view: bool = False, percpos: float | None = None, nbins: int = 60):
    pairs = _table(result, "pairs")
    key = ("fig_margin", id(result), None if sources is None else tuple(map(str, sources)), mode, bool(ecdf_view),
           percpos, int(nbins))
    return _memo(pairs, key, lambda: _margin_histogram(result, sources, mode, ecdf_view, percpos, nbins))


def signal_safety_figure(result: Any, sources: Sequence[str] | None = None, marginals: bool = True,
                         contours: bool = True, frame: pd.DataFrame | None = None):
    df = signal_safety_frame(result, sources) if frame is None else frame
    key = ("fig_signal_safety", id(result), None if sources is None else tuple(map(str, sources)), bool(marginals),
           bool(contours), SCATTER_MAX_POINTS)
    return _memo(df, key, lambda: _signal_safety_figure(result, sources, marginals, contours, df))


def projection_figure(points: pd.DataFrame, color_by: str = "source", selected: Iterable[Any] | None = None,
                      note: str | None = None, title: str = "Projection"):
    if selected is not None:
        return _projection_figure(points, color_by, selected, note, title)
    return _memo(points, ("fig_projection", color_by, note, title),
                 lambda: _projection_figure(points, color_by, None, note, title))


def compare_scatter(comparison: Comparison, highlight_top: bool = True):
    return _memo(comparison, ("fig_compare", bool(highlight_top), SCATTER_MAX_POINTS),
                 lambda: _compare_scatter(comparison, highlight_top))


for _f, _g in ((margin_histogram, _margin_histogram), (signal_safety_figure, _signal_safety_figure),
               (projection_figure, _projection_figure), (compare_scatter, _compare_scatter)):
    _f.__doc__ = (_g.__doc__ or "") + "\n\n    Built once per (table, arguments); see the note above these wrappers."
del _f, _g
