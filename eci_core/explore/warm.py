"""Prepare every page's defaults right after scoring (:func:`warm_up`), so the first visit of a page
finds its tables and figures ready."""

from __future__ import annotations

from typing import Any, Callable, Sequence

from eci_core.explore.cleaning import cleaned_set, cleaned_summary
from eci_core.explore.common import row_groups
from eci_core.explore.compare import compare_scatter, compare_sources
from eci_core.explore.drilldown import scored_query_mask, worst_queries
from eci_core.explore.margins import flag_counts, margin_histogram, percpos_band
from eci_core.explore.overview import score_summary
from eci_core.explore.review import review_view
from eci_core.explore.signal_safety import signal_safety_figure, signal_safety_frame

__all__ = ["warm_up"]


def warm_up(
    collection: Any,
    result: Any,
    n_top: int = 15,
    progress: Callable[[str, int, int], None] | None = None,
    then: Sequence[tuple[str, Callable[[], Any]]] = (),
) -> None:
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
        ("risk bands", lambda: percpos_band(result, sources=names)),
    ]
    try:
        import plotly  # noqa: F401

        # the figures too, with the pages' default arguments (a page rerun gets the same object)
        steps.append(("margin histograms", lambda: margin_histogram(result, names)))
        steps.append(
            (
                "signal vs safety",
                lambda: signal_safety_figure(result, names, frame=signal_safety_frame(result, names)),
            )
        )
    except ImportError:  # pragma: no cover - plotly is a dependency of the dashboard
        pass
    steps += [
        ("lowest-ECI queries", lambda: worst_queries(result, n=20)),
        ("query index", lambda: row_groups(result.pairs, "query_id")),
        ("scored queries", lambda: scored_query_mask(collection, result)),
    ]
    if "fn_score" in result.pairs.columns:  # the Review page's default: every source, the shipped score
        steps.append(
            (
                "review queue",
                lambda: review_view(result, result.pairs["fn_score"].to_numpy(), names, {}, "Unreviewed"),
            )
        )
    if len(names) > 1:
        steps.append(
            ("comparison", lambda: compare_scatter(compare_sources(result, names[0], names[1], n_top=n_top)))
        )
    # the Export page's defaults: best source, "drop flagged", no marks, t = 0.5
    steps.append(
        (
            "cleaned set",
            lambda: cleaned_summary(
                cleaned_set(
                    collection, result, rule="drop_flagged", marks={}, sources=[names[0]], fn_threshold=0.5
                )
            ),
        )
    )
    steps += [(f"summary of {s}", lambda s=s: score_summary(result.pairs, s)) for s in names[1:]]
    steps += list(then)
    for i, (label, step) in enumerate(steps):
        if progress:
            progress(label, i, len(steps))
        step()
    if progress:
        progress("done", len(steps), len(steps))
