"""A standalone HTML report of a scored collection (works offline: plotly.js is inlined once).

Contents: title and date, the ECI ranking sentence (overview.eci_ranking_line), the encoder and the ECIConfig,
the components table (ECI with its 95 % interval, Signal, Safety, Capacity, DE, unsafe rates, …), the flag
counts per source, the Positive / Negative / Difference summary per source, and the ECI ranking, margin
histogram and Signal-vs-Safety charts (the same figure builders as the dashboard's pages, from
:mod:`eci_core.explore`). The score tables ``eci score --out`` writes are
:func:`eci_core.io.tables.write_tables`.
"""

from __future__ import annotations

import datetime as _dt
import html
from typing import Any

import pandas as pd

from eci_core.explore.margins import flag_counts, margin_histogram
from eci_core.explore.overview import (
    beats_heatmap,
    components_table,
    eci_ranking_line,
    overview_figure,
    summary_table,
)
from eci_core.explore.signal_safety import signal_safety_figure

__all__ = ["html_report", "format_components", "REPORT_DECIMALS"]

#: Decimals used for metric values in the report's tables (the dashboard table uses the same).
REPORT_DECIMALS = 3

_CSS = (
    "\n"
    "body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem "
    "auto;max-width:1100px;color:#222}\n"
    "h1{font-size:1.6rem;margin-bottom:.2rem} "
    "h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #ddd}\n"
    ".meta{color:#666;font-size:.9rem} "
    ".verdict{font-size:1.1rem;background:#eef5fb;padding:.7rem 1rem;border-left:4px solid #0072B2}\n"
    "table{border-collapse:collapse;font-size:.85rem;margin:.5rem 0} "
    "th,td{border:1px solid #ddd;padding:.25rem .5rem;text-align:right}\n"
    "th{background:#f4f4f4} td{white-space:nowrap} .scroll{overflow-x:auto} "
    "td:first-child,th:first-child{text-align:left} code{font-size:.85rem}\n"
)

_PCT_COLS = ("unsafe_query_rate", "unsafe_negative_rate")
_INT_COLS = ("rank", "n_queries", "n_negatives", "count")


def format_components(result: Any, decimals: int = REPORT_DECIMALS) -> pd.DataFrame:
    """The components table with values formatted as strings, as the report shows them:
    metrics with ``decimals`` decimals, ``eci`` shown with its interval as ``"0.388 [0.350, 0.410]"``
    in column ``ECI (95 % CI)``, rates as percentages with one decimal, counts as integers."""
    t = components_table(result)
    out = pd.DataFrame(index=t.index)
    for c in t.columns:
        col = t[c]
        if c == "eci":
            if "eci_low" in t.columns and "eci_high" in t.columns:
                out["ECI (95 % CI)"] = [
                    f"{v:.{decimals}f} [{lo:.{decimals}f}, {hi:.{decimals}f}]"
                    for v, lo, hi in zip(t["eci"], t["eci_low"], t["eci_high"])
                ]
            else:
                out["ECI"] = [f"{v:.{decimals}f}" for v in col]
        elif c in ("eci_low", "eci_high"):
            continue
        elif c in _PCT_COLS:
            out[c] = [f"{100 * float(v):.1f} %" if pd.notna(v) else "" for v in col]
        elif c in _INT_COLS:
            out[c] = [f"{int(v):,}" if pd.notna(v) else "" for v in col]
        elif pd.api.types.is_numeric_dtype(col):
            out[c] = [f"{float(v):.{decimals}f}" if pd.notna(v) else "" for v in col]
        else:
            out[c] = col.astype(str)
    return out


def _table_html(df: pd.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>"
        for row in df.itertuples(index=False)
    )
    return f"<div class=\"scroll\"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>"


def _summary_html(result: Any, decimals: int) -> str:
    parts = []
    st = summary_table(result)
    for s in dict.fromkeys(st["source"]):
        t = st[st["source"] == s].drop(columns="source")
        shown = pd.DataFrame({"Metric": [m.capitalize() for m in t["metric"]]})
        for c in ("Positive", "Negative", "Difference"):
            shown[c] = [
                "" if pd.isna(v) else (f"{int(v):,}" if m == "count" else f"{v:.4f}")
                for m, v in zip(t["metric"], t[c])
            ]
        parts.append(f"<h3>{html.escape(str(s))}</h3>" + _table_html(shown))
    return "".join(parts)


def _flags_html(result: Any) -> str:
    f = flag_counts(result)
    f["flagged_share"] = [f"{100 * v:.1f} %" for v in f["flagged_share"]]
    return (
        "<p>Negatives each rule catches (a negative caught by several rules counts in each), the "
        "union (<code>flagged</code>), the <code>percpos</code> risk marker and what is kept.</p>"
        + _table_html(f)
    )


def _config_html(result: Any) -> str:
    cfg = getattr(result, "config", None)
    if cfg is None:
        return "<p>(no configuration recorded)</p>"
    d = cfg.as_dict() if hasattr(cfg, "as_dict") else dict(vars(cfg))
    return _table_html(pd.DataFrame({"option": list(d), "value": [str(v) for v in d.values()]}))


def html_report(
    result: Any,
    collection: Any = None,
    title: str = "ECI Explorer report",
    decimals: int = REPORT_DECIMALS,
    include_plotlyjs: bool | str = True,
) -> str:
    """The report as one HTML string (UTF-8; save as ``.html``).

    ``include_plotlyjs=True`` inlines plotly.js once (about 4.5 MB, works offline); ``"cdn"``
    links it instead (small file, needs internet). ``collection``, when given, adds the number of
    queries and passages loaded. Every number comes from ``result`` (a ScoreResult).
    """
    import plotly.io as pio

    figs = [("ECI ranking", overview_figure(result))]
    if len(result.pairs):
        figs.append(("Margins", margin_histogram(result)))
    if len(result.queries):
        figs.append(("Signal vs Safety", signal_safety_figure(result)))
    if isinstance(getattr(result, "beats", None), pd.DataFrame) and len(result.beats) > 1:
        figs.append(("P(row beats column)", beats_heatmap(result)))
    chart_html = []
    for i, (name, fig) in enumerate(figs):
        fig_html = pio.to_html(
            fig,
            full_html=False,
            include_plotlyjs=include_plotlyjs if i == 0 else False,
            config={"displaylogo": False, "responsive": True},
        )
        chart_html.append(f"<h2>{html.escape(name)}</h2>{fig_html}")
    meta = [
        f"Encoder: <code>{html.escape(str(getattr(result, 'encoder', '?')))}</code>",
        f"generated {_dt.datetime.now(_dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
    ]
    if collection is not None:
        meta.append(
            f"{collection.n_queries:,} queries, {collection.n_passages:,} passages, "
            f"{len(collection.sources)} source(s) loaded"
        )
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{html.escape(title)}</h1><p class=\"meta\">{' · '.join(meta)}</p>"
        f"<p class=\"verdict\">{html.escape(eci_ranking_line(result))}</p>"
        f"<h2>Components</h2>{_table_html(format_components(result, decimals))}"
        + chart_html[0]
        + "<h2>Flags (unsafe: ranked at or above the positive; near duplicate; cross-encoder)</h2>"
        + _flags_html(result)
        + f"<h2>Positive / Negative / Difference</h2>{_summary_html(result, decimals)}"
        + "".join(chart_html[1:])
        + f"<h2>Configuration</h2>{_config_html(result)}"
        "<p class=\"meta\">ECI as reconstructed from the published description "
        "(arXiv 2603.20990); every open choice is an option.</p>"
        "</body></html>\n"
    )
