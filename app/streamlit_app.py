"""tracewatch dashboard: navigation, sidebar filters, and the page of the URL.

Run with ``tracewatch app`` (or ``streamlit run app/streamlit_app.py``); the store is
``$TRACEWATCH_DATA_DIR`` (default ``./data``).  The app only reads the store.

Deep links: ``?trace_id=<id>`` opens that trace on the Traces page from any page, and
``?page=<url path>`` selects a page (see ``app.filters`` for the filter parameters).
"""

from __future__ import annotations

import logging

import streamlit as st

from app.data import store_key
from app.filters import render_filters
from app.widgets import CONTEXT_KEY

logger = logging.getLogger(__name__)

st.set_page_config(page_title="tracewatch", page_icon=":material/monitoring:", layout="wide")

PAGES = {
    "overview": st.Page("app_pages/overview.py", title="Overview",
                        icon=":material/dashboard:", url_path="overview", default=True),
    "traces": st.Page("app_pages/traces.py", title="Traces", icon=":material/timeline:",
                      url_path="traces"),
    "prompt_versions": st.Page("app_pages/prompt_versions.py", title="Prompt versions",
                               icon=":material/difference:", url_path="prompt_versions"),
    "failure_modes": st.Page("app_pages/failure_modes.py", title="Failure modes",
                             icon=":material/bug_report:", url_path="failure_modes"),
    "alerts": st.Page("app_pages/alerts.py", title="Alerts", icon=":material/notifications:",
                      url_path="alerts"),
    "cost": st.Page("app_pages/cost.py", title="Cost", icon=":material/payments:",
                    url_path="cost"),
}

page = st.navigation(list(PAGES.values()))

# A fresh link: ``page`` or ``trace_id`` in the URL pick the page (once per session, so the
# navigation menu is not overridden afterwards).
if not st.session_state.get("_tw_deep_link_done"):
    st.session_state["_tw_deep_link_done"] = True
    wanted = st.query_params.get("page")
    if st.query_params.get("trace_id"):
        wanted = "traces"
    if wanted in PAGES and PAGES[wanted].title != page.title:
        st.switch_page(PAGES[wanted],
                       query_params={k: st.query_params.get_all(k) for k in st.query_params})

key = store_key()
view = render_filters(key)
st.session_state[CONTEXT_KEY] = (key, view)
current_path = next(name for name, p in PAGES.items() if p.title == page.title)
if st.query_params.get("page") != current_path:
    st.query_params["page"] = current_path
if current_path != "traces" and "trace_id" in st.query_params:
    del st.query_params["trace_id"]

try:
    page.run()
except Exception:  # the page boundary: one failed page must not show a traceback
    logger.exception("page %s failed", current_path)
    st.error("This page could not be drawn (the error is in the dashboard's log). "
             "Try another time range or filter.", icon=":material/error:")
