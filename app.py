"""ECI Explorer: the Streamlit dashboard.

Run ``make run`` (or ``streamlit run app.py --server.address 127.0.0.1 -- --data DIR
[--encoder hashing] [--data-root DIRS] [--readonly-cache DIRS] [--score-budget SECONDS]``; the
``ECI_DATA`` / ``ECI_ENCODER`` / ``ECI_DATA_ROOT`` / ``ECI_READONLY_CACHE`` /
``ECI_SCORE_BUDGET_S`` environment variables do the same; see the README's "Serving safely";
``ECI_ALLOW_REMOTE=1`` / ``-- --allow-remote`` silence the warning shown when the server listens
beyond this machine, see ``ui/serving.py``). The sidebar "Data and
settings" is shared by every page; the scores for the loaded data and the chosen settings are
computed once (with a progress bar) and reused by all pages.
"""

from __future__ import annotations

import streamlit as st

import eci_core  # noqa: F401  (offline model environment first)
from ui import components, serving, sidebar
from ui.state.navigation import PAGE_FILES, use_navigation_only
from ui.state.settings import init_state

st.set_page_config(layout="wide", page_title="ECI Explorer", page_icon=":material/insights:")
# error details hidden unless set on purpose; a warning on every page when the server is reachable
# beyond this machine (the repo's .streamlit/config.toml applies only when started from the repo)
SERVING = serving.apply()
use_navigation_only()  # every later run goes through this file's st.navigation

# URL paths equal the file stems: Streamlit's legacy pages/ routing resolves a deep link on the
# first run of a new server by file stem (see ui.state.navigation.use_navigation_only).
# The default page is served at "/" whatever its url_path, so a typed "/overview" would match no
# page ("Page not found" pop-up): a hidden second entry catches it and switches to the Overview
# (URL "/", query parameters kept), so the top bar highlights the Overview.
PAGES = [
    st.Page(
        PAGE_FILES["overview"],
        title="Overview",
        icon=":material/leaderboard:",
        url_path="home",
        default=True,
    ),
    st.Page(
        PAGE_FILES["overview"],
        title="Overview",
        icon=":material/leaderboard:",
        url_path="overview",
        visibility="hidden",
    ),
    st.Page(PAGE_FILES["margins"], title="Margins", icon=":material/bar_chart:", url_path="margins"),
    st.Page(
        PAGE_FILES["signal_safety"],
        title="Signal vs Safety",
        icon=":material/scatter_plot:",
        url_path="signal_vs_safety",
    ),
    st.Page(
        PAGE_FILES["projection"],
        title="Projection",
        icon=":material/bubble_chart:",
        url_path="projection",
    ),
    st.Page(
        PAGE_FILES["drilldown"],
        title="Query drill-down",
        icon=":material/manage_search:",
        url_path="query",
    ),
    st.Page(PAGE_FILES["review"], title="Review queue", icon=":material/fact_check:", url_path="review"),
    st.Page(PAGE_FILES["compare"], title="Compare", icon=":material/compare_arrows:", url_path="compare"),
    st.Page(PAGE_FILES["export"], title="Export", icon=":material/download:", url_path="export"),
    st.Page(
        PAGE_FILES["validation"],
        title="Validation",
        icon=":material/model_training:",
        url_path="validation",
    ),
]

init_state()
page = st.navigation(PAGES, position="top")
if page.url_path == PAGES[1].url_path:  # the hidden alias: serve the Overview at "/" so the top bar marks it
    st.switch_page(PAGES[0], query_params=st.query_params.to_dict())
serving.render(SERVING)
sidebar.render()
components.ensure_scores()
page.run()
