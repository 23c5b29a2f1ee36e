"""Navigation: the pages, where each view lives in the URL, and the routing fix for Streamlit's
legacy ``pages/`` folder.

Where things live in the URL (``st.query_params``) so that a copied link reopens the same view:
the page is the URL path (``st.navigation``, files in :data:`PAGE_FILES`); ``q`` is the query
shown in the drill-down; ``a`` / ``b`` the two compared sources; ``src`` the sources shown on the
Margins page.
"""

from __future__ import annotations

import streamlit as st

from ui.state.keys import K_QUERY


PAGE_FILES = {
    "overview": "pages/overview.py",
    "margins": "pages/margins.py",
    "signal_safety": "pages/signal_vs_safety.py",
    "projection": "pages/projection.py",
    "drilldown": "pages/query.py",
    "compare": "pages/compare.py",
    "export": "pages/export.py",
    "review": "pages/review.py",
    "validation": "pages/validation.py",
}


def qp_get(name: str, default: str | None = None) -> str | None:
    """The URL parameter ``name`` (``default`` when it is missing or empty)."""
    val = st.query_params.get(name)
    return default if val in (None, "") else val


def qp_set(**values: str | None) -> None:
    """Write values into the URL (``None`` removes the parameter); unchanged values are skipped."""
    for k, v in values.items():
        if v is None or v == "":
            if k in st.query_params:
                del st.query_params[k]
        elif st.query_params.get(k) != str(v):
            st.query_params[k] = str(v)


def open_in_drilldown(query_id: str) -> None:
    """Show ``query_id`` in the Query drill-down page (switches page, keeps it in the URL)."""
    st.session_state[K_QUERY] = str(query_id)
    st.switch_page(PAGE_FILES["drilldown"], query_params={"q": str(query_id)})


def use_navigation_only() -> bool:
    """Turn off Streamlit's legacy ``pages/`` folder routing; True when it was on.

    Streamlit still emulates its first multipage API when a ``pages/`` folder sits next to the
    main script: a URL such as ``/overview`` then runs ``pages/overview.py`` on its own, without
    ``app.py`` (no sidebar, no navigation, no state). ``app.py`` calls this on every run; a
    page that finds the emulation still on runs ``app.py`` in its place, in the same run (see
    :func:`ui.components.require_result`), so every run goes through ``app.py``'s
    ``st.navigation``.
    """
    try:
        from streamlit.runtime.pages_manager import PagesManager
    except ImportError:  # a Streamlit without the emulation
        return False
    was_on = bool(getattr(PagesManager, "uses_pages_directory", False))
    if was_on:
        PagesManager.uses_pages_directory = False
    return was_on
