"""Small UI building blocks shared by the pages (no metric is computed here)."""

from __future__ import annotations

import time
from typing import Callable

import streamlit as st

from ui.state.derived import prepare_pages
from ui.state.keys import K_COLLECTION
from ui.state.launch import ROOT
from ui.state.loading import one_line
from ui.state.navigation import open_in_drilldown, qp_get, qp_set, use_navigation_only
from ui.state.scores import Current, ScoringBudgetExceeded, cached_result, compute_result, current
from ui.state.settings import settings


def progress_callback(bar, verb: str = "Computing") -> Callable[[str, int, int], None]:
    """A ``progress(stage, done, total)`` that moves ``bar`` (at most ~10 updates a second),
    its text ``"{verb}: {stage} (done / total)"``."""
    last = {"t": 0.0, "stage": None}

    def progress(stage: str, done: int, total: int) -> None:
        now = time.monotonic()
        final = total and done >= total
        if stage == last["stage"] and not final and now - last["t"] < 0.1:
            return
        last["t"], last["stage"] = now, stage
        frac = min(max(done / total, 0.0), 1.0) if total else 0.0
        text = f"{verb}: {stage}" + (f" ({done:,} / {total:,})" if total > 1 else "")
        bar.progress(frac, text=text)

    return progress


def ensure_scores() -> None:
    """Compute the scores for the current data and settings once, then what the pages derive from
    them, with a progress bar.

    A bad setting (e.g. an encoder folder that does not exist) is shown as one line and the
    pages show nothing until it is fixed.
    """
    import logging

    ss = st.session_state
    if ss.get(K_COLLECTION) is None:
        return
    try:
        s = settings()
    except ValueError as err:
        show_error(str(err), prefix="Settings: ")
        return
    if s.encoder == "":
        st.warning(
            "Type the path of a local sentence-transformers folder in the sidebar, or choose another encoder."
        )
        return
    if cached_result(s) is not None:
        return
    holder = st.empty()
    bar = holder.progress(0.0, text="Computing: starting")
    try:
        result = compute_result(s, progress=progress_callback(bar))
    except ScoringBudgetExceeded as err:
        holder.empty()
        show_error(str(err), prefix="Could not score the data: ")
        return
    except Exception as err:  # shown in one line; the sidebar stays usable
        holder.empty()
        show_error(one_line(err), prefix="Could not score the data: ")
        return
    try:
        prepare_pages(s, result, progress=progress_callback(bar, verb="Preparing the pages"))
    except Exception:  # a page computing the same table reports any error itself
        logging.getLogger(__name__).exception("preparing the dashboard's pages failed")
    holder.empty()


def require_result(title: str, caption: str | None = None) -> Current:
    """Page header, then the current data; stops the page with a hint when nothing is scored."""
    if use_navigation_only():
        # Streamlit's legacy pages/ routing ran this file on its own (first run of a deep link
        # on a fresh server): run the entry point instead, in this same run (so nothing the
        # user clicked is lost); it draws the sidebar and this page through st.navigation.
        import runpy

        runpy.run_path(str(ROOT / "app.py"), run_name="__main__")
        st.stop()
    st.title(title)
    if caption:
        st.caption(caption)
    cur = current()
    if cur.collection is None:
        st.info(
            "Load a dataset in the sidebar (“Data and settings”) to start.", icon=":material/upload_file:"
        )
        st.stop()
    if cur.result is None:
        st.info("Scores are not available for these settings: see the message above or the sidebar.")
        st.stop()
    return cur


def source_names(cur: Current) -> list[str]:
    """Sources in ranking order (highest ECI first)."""
    return [str(n) for n in cur.result.sources["name"].tolist()]


def query_label(cur: Current, query_id: str, width: int = 90) -> str:
    """``"text  ·  id"`` for select boxes, the text cut to ``width`` characters."""
    coll = cur.collection
    try:
        text = coll.query_texts[coll.query_index(query_id)]
    except KeyError:
        return str(query_id)
    text = text if len(text) <= width else text[: width - 1] + "…"
    return f"{text}  ·  {query_id}"


def sources_multiselect(names: list[str], key: str, default: list[str] | None = None, where=st) -> list[str]:
    """The "Sources" multiselect of a chart, its value kept in the URL parameter ``src``
    (``default``: every source)."""
    url_value(key, "src", names, names if default is None else default, multi=True)
    return where.multiselect("Sources", names, key=key, on_change=to_url, args=(key, "src", True))


def plotly(fig, key: str, select: bool = False, height: int | None = None):
    """``st.plotly_chart`` with the app's defaults; returns the selection event when ``select``."""
    config = {"displaylogo": False, "scrollZoom": False}
    kwargs = {"key": key, "config": config, "width": "stretch"}
    fig.update_xaxes(automargin=True)
    fig.update_yaxes(automargin=True)
    if height:
        fig.update_layout(height=height)
    if select:
        return st.plotly_chart(fig, on_select="rerun", selection_mode=("box", "lasso"), **kwargs)
    st.plotly_chart(fig, **kwargs)
    return None


# --------------------------------------------------------------------------- URL-bound widgets
def url_value(key: str, param: str, options: list, default, multi: bool = False) -> None:
    """Before a widget with ``key`` is drawn: take its value from the URL parameter ``param``
    when that names valid option(s), else keep the widget's value, else ``default``.

    Pair it with ``on_change=to_url, args=(key, param, multi)`` so the URL follows the widget.
    """
    ss = st.session_state
    raw = qp_get(param)
    if multi:
        val = [x for x in (raw or "").split(",") if x in options] if raw else None
        if val is None:
            cur = ss.get(key)
            val = [x for x in cur if x in options] if isinstance(cur, list) else None
        ss[key] = val if val else list(default)
    else:
        if raw in options:
            ss[key] = raw
        elif ss.get(key) not in options:
            ss[key] = default


def to_url(key: str, param: str, multi: bool = False) -> None:
    """``on_change`` callback: write the widget's value into the URL."""
    val = st.session_state.get(key)
    if multi:
        qp_set(**{param: ",".join(val) if val else None})
    else:
        qp_set(**{param: val})


# --------------------------------------------------------------------------- formatting
def with_query_text(df, collection, col: str = "query_id", width: int = 120):
    """``df`` with a ``query`` column (the query's text, cut to ``width`` characters) after ``col``."""
    out = df.copy()
    texts = []
    for q in out[col].astype(str):
        try:
            t = collection.query_texts[collection.query_index(q)]
        except KeyError:
            t = ""
        texts.append(t if len(t) <= width else t[: width - 1] + "…")
    out.insert(list(out.columns).index(col) + 1, "query", texts)
    return out


#: Function words left unhighlighted in the drill-down (they carry almost no IDF weight in
#: ``lex_overlap`` either, so marking them would only add noise).
COMMON_WORDS = frozenset(
    "a an and are as at be but by can do does for from has have how i if in into is it its of on or "
    "so than that the their then there these this to was we what when where which who why will with "
    "you your not no all also any each more most other some such only one very just use used using "
    "may might must should would could been being were".split()
)


def highlight(text: str, words: list[str]) -> str:
    """``text`` as safe HTML with every whole-word occurrence of ``words`` in ``<mark>``
    (single characters and :data:`COMMON_WORDS` are left plain)."""
    import html
    import re

    safe = html.escape(text)
    words = [w for w in words if len(w) > 1 and w.lower() not in COMMON_WORDS]
    if words:
        pattern = re.compile(
            r"(?<!\w)("
            + "|".join(re.escape(html.escape(w)) for w in sorted(words, key=len, reverse=True))
            + r")(?!\w)",
            re.IGNORECASE,
        )
        safe = pattern.sub(r"<mark>\1</mark>", safe)
    return safe.replace("\n", "<br>")


def fmt(v, spec: str = ".3f", empty: str = "—") -> str:
    """A number for display; ``empty`` for missing values."""
    try:
        import math

        if v is None or (isinstance(v, float) and math.isnan(v)):
            return empty
        if isinstance(v, float):
            v = v + 0.0  # -0.0 -> 0.0 (no "-0.000" for an exact zero)
        return format(v, spec)
    except (TypeError, ValueError):
        return str(v)


def open_query_on_select(event, frame, key_col: str = "query_id") -> None:
    """When a single-row ``st.dataframe`` selection picks a row, open its query in the drill-down."""
    rows = list(getattr(getattr(event, "selection", None), "rows", []) or [])
    if rows and 0 <= rows[0] < len(frame):
        open_in_drilldown(str(frame.iloc[rows[0]][key_col]))


def summary_display(df):
    """The Positive / Negative / Difference table as text: counts as integers, the rest with
    four decimals (the way sentence-transformers prints it)."""
    import pandas as pd

    out = pd.DataFrame(index=[str(i).capitalize() for i in df.index])
    for c in df.columns:
        out[c] = [
            "" if pd.isna(v) else (f"{int(v):,}" if str(i) == "count" else f"{float(v):.4f}")
            for i, v in zip(df.index, df[c])
        ]
    return out


def html_escape(text: str) -> str:
    import html

    return html.escape(str(text))


#: Characters that can start Markdown, HTML, LaTeX or an autolink inside one line of text.
_MD_SPECIALS = frozenset(r"""\`*_[](){}<>#!|~$&:@.""")


def plain(text) -> str:
    """``text`` for a Markdown-rendering element (``st.error``, ``st.caption``…) shown exactly as
    written: the characters that could start a construct are backslash-escaped (CommonMark
    allows that for every ASCII punctuation character), so no link, autolink (``http://…``,
    ``www.…``, ``a@b.c``), emphasis, code span, HTML, entity or LaTeX can form. Newlines become
    spaces (one line)."""
    out = []
    for ch in " ".join(str(text).splitlines()):
        out.append("\\" + ch if ch in _MD_SPECIALS else ch)
    return "".join(out)


def show_error(message: str, prefix: str = "") -> None:
    """``st.error`` with ``message`` (user data may be in it: file names, paths) rendered as text."""
    st.error(prefix + plain(message), icon=":material/error:")


def md_escape(text: str) -> str:
    """``text`` with Markdown and LaTeX specials escaped, for headings built from user data."""
    import re

    return re.sub(r"([\\`*_{}\[\]()#+\-.!|$<>~])", r"\\\1", str(text))
