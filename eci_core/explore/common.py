"""What every page's data shares: source order and colours, the table helpers (row positions per
source or query, computed once per table), sampling and binning for figures at scale.

Scale (1M pairs and more): the tables of a ScoreResult are large, the figures are not.

* Histograms, ECDFs and contours are binned on the server with numpy: a figure carries
  ``nbins`` counts per source, not one value per pair (:func:`binned_histogram`, :func:`ecdf_points`).
* Scatter plots draw at most :data:`SCATTER_MAX_POINTS` points with WebGL (``Scattergl``): above
  it a seeded random sample stratified by source (proportional, every source kept; see
  :func:`scatter_sample`) and :func:`sampling_note` says what was drawn. Modules read
  ``common.SCATTER_MAX_POINTS`` when called (so changing it here changes every chart).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from eci_core.explore.memo import memo

__all__ = [
    "OKABE_ITO",
    "CONTINUOUS_SCALE",
    "FLAG_RULES",
    "SUMMARY_STATS",
    "SCATTER_MAX_POINTS",
    "ECDF_MAX_POINTS",
    "TABLE_MAX_ROWS",
    "BUILT_ONCE_NOTE",
    "result_table",
    "require_columns",
    "source_order",
    "RowGroups",
    "row_groups",
    "rows_of",
    "values_of",
    "source_colors",
    "ranked_names",
    "as_bool",
    "finite_range",
    "scatter_sample",
    "sampling_note",
    "binned_histogram",
    "ecdf",
    "ecdf_points",
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


#: Appended to the docstring of each figure builder that is built once per (table, arguments).
BUILT_ONCE_NOTE = (
    "\n\n    Built once per (table, arguments): a page rerun gets the same figure; callers may "
    "restyle it (axes margins, height) but not change its data."
)


def result_table(obj: Any, name: str) -> pd.DataFrame:
    """``obj.<name>`` for a ScoreResult, ``obj`` itself for a DataFrame."""
    if isinstance(obj, pd.DataFrame):
        return obj
    t = getattr(obj, name, None)
    if not isinstance(t, pd.DataFrame):
        raise TypeError(f"expected a ScoreResult or the '{name}' DataFrame, got {type(obj).__name__}")
    return t


def require_columns(df: pd.DataFrame, cols: Iterable[str], what: str) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise ValueError(
            f"the {what} table lacks column(s) {', '.join(missing)} (has: {', '.join(map(str, df.columns))})"
        )


def source_order(df: pd.DataFrame, sources: Sequence[str] | None, col: str = "source") -> list[str]:
    present = list(row_groups(df, col).names) if len(df) else []
    if sources is None:
        return present
    unknown = [s for s in sources if s not in present]
    if unknown and len(df):
        raise ValueError(f"unknown source(s) {', '.join(unknown)}; known: {', '.join(present)}")
    return [s for s in sources if s in present]


@dataclass(frozen=True)
class RowGroups:
    """Row positions of each value of one column: ``rows(v)`` in table order."""

    names: list[str]  # values in order of first appearance
    index: pd.Index
    order: np.ndarray
    starts: np.ndarray

    def rows(self, value: Any) -> np.ndarray:
        k = self.index.get_indexer([str(value)])[0]
        if k < 0:
            return np.zeros(0, dtype=np.int64)
        return self.order[self.starts[k] : self.starts[k + 1]]


def row_groups(df: pd.DataFrame, col: str) -> RowGroups:
    """Positions of the rows of each value of ``df[col]`` (computed once per table)."""

    def build() -> RowGroups:
        s = df[col]
        # a categorical column is factorized on its integer codes (no string per row)
        plain = s.dtype == object or isinstance(s.dtype, pd.CategoricalDtype)
        codes, uniques = pd.factorize(s if plain else s.astype(str), sort=False)
        names = [str(u) for u in uniques]
        order = np.argsort(codes, kind="stable").astype(np.int64)
        counts = np.bincount(codes[codes >= 0], minlength=len(names))
        starts = np.r_[0, np.cumsum(counts)].astype(np.int64)
        return RowGroups(names, pd.Index(names), order, starts)

    return memo(df, ("groups", col), build)


def rows_of(df: pd.DataFrame, col: str, value: Any) -> pd.DataFrame:
    """``df[df[col] == value]`` (same rows, same order) from the memoised grouping."""
    return df.iloc[row_groups(df, col).rows(value)]


def values_of(df: pd.DataFrame, col: str, value: Any, column: str) -> np.ndarray:
    """``df.loc[df[col] == value, column]`` as float64 numpy."""
    arr = memo(df, ("f64", column), lambda: df[column].to_numpy(dtype=np.float64))
    return arr[row_groups(df, col).rows(value)]


def source_colors(names: Sequence[str]) -> dict[str, str]:
    """A stable colour per source name (Okabe–Ito, in the order given, cycling after 8)."""
    return {n: OKABE_ITO[i % len(OKABE_ITO)] for i, n in enumerate(names)}


def ranked_names(result: Any, order: Sequence[str]) -> list[str]:
    """Source names in ranking order (so a source keeps its colour across figures)."""
    if (
        not isinstance(result, pd.DataFrame)
        and hasattr(result, "sources")
        and isinstance(result.sources, pd.DataFrame)
    ):
        ranked = [str(n) for n in result.sources["name"]]
        return ranked + [s for s in order if s not in ranked]
    return list(order)


def as_bool(s: pd.Series) -> np.ndarray:
    return s.fillna(False).to_numpy(dtype=bool)


def finite_range(x: np.ndarray) -> tuple[float, float]:
    x = x[np.isfinite(x)]
    return (float(x.min()), float(x.max())) if x.size else (-1.0, 1.0)


def scatter_sample(
    frame: pd.DataFrame,
    by: str | None = "source",
    max_points: int | None = None,
    seed: int = 0,
    keep: np.ndarray | None = None,
) -> pd.DataFrame:
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
    keep_key = (
        None
        if keep is None
        else hashlib.sha1(np.packbits(np.asarray(keep, dtype=bool)).tobytes()).hexdigest()
    )

    def build() -> pd.DataFrame:
        if n <= max_points:
            return frame
        forced = np.zeros(n, dtype=bool) if keep is None else np.asarray(keep, dtype=bool).copy()
        forced[np.flatnonzero(forced)[max_points:]] = False
        rest = np.flatnonzero(~forced)
        room = max_points - int(forced.sum())
        labels = (
            frame[by].astype(str).to_numpy(dtype=object)[rest] if by else np.zeros(len(rest), dtype=object)
        )
        picked = rest[stratified_sample(labels, room, seed)] if room > 0 and len(rest) else rest[:0]
        idx = np.sort(np.concatenate([np.flatnonzero(forced), picked]))
        return frame.iloc[idx]

    return memo(frame, ("scatter_sample", by, int(max_points), int(seed), keep_key), build)


def sampling_note(
    n_shown: int,
    n_total: int,
    by: str | None = "source",
    what: str = "points",
    uses_all: str = "histograms and summary numbers",
) -> str:
    """What a scatter plot drew, in one sentence ("" when it drew every point)."""
    if n_shown >= n_total:
        return ""
    cap = f"{SCATTER_MAX_POINTS:,}"
    strat = f", stratified by {by} (each {by} in proportion to its size)" if by else ""
    return (
        f"The chart draws a seeded random sample of {n_shown:,} of {n_total:,} {what}{strat}, at most "
        f"{cap}; the {uses_all} count all {n_total:,}, a box or lasso selects among the "
        "points drawn."
    )


def binned_histogram(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts of ``values`` (NaN dropped) in the bins ``[edges[i], edges[i+1])``, the last bin
    closed (``numpy.histogram``): what a histogram figure sends instead of the raw values."""
    v = np.asarray(values, dtype=np.float64)
    counts, _ = np.histogram(v[np.isfinite(v)], bins=np.asarray(edges, dtype=np.float64))
    return counts


def ecdf(values: Sequence[float] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Empirical CDF points: ``x`` sorted values (NaN dropped), ``y[i] = (i + 1) / n``."""
    x = np.asarray(values, dtype=np.float64)
    x = np.sort(x[~np.isnan(x)])
    n = x.size
    return x, (np.arange(1, n + 1, dtype=np.float64) / n if n else np.zeros(0))


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
