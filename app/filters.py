"""Sidebar filters kept in the URL, so a link opens the same view.

Query parameters (the contract of links from Slack alerts and colleagues):

- ``from``, ``to``: ISO-8601 times (UTC when no offset), ``now`` or a duration ago (``24h``);
  ``to`` is exclusive.  Without them the view is the last 7 days of data (ending at the
  latest trace, so a store of past sample data is not empty).
- ``service``, ``model``, ``provider``, ``prompt_version``: accepted values; repeat a key
  for several values (``?model=a&model=b``).
- ``trace_id``: opens that trace's drill-down (on the Traces page).
- ``page``: the page's url path (``overview``, ``traces``, ``prompt_versions``,
  ``failure_modes``, ``alerts``, ``cost``); the app writes it so a copied URL names its page.

The URL is read into the widgets once per browser session (a fresh link); after that the
widgets are the truth and the URL is rewritten from them on every run.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import streamlit as st

from analytics.errors import AnalyticsError
from analytics.filters import parse_time
from app.data import FILTER_DIMENSIONS, StoreKey, View, dimension_values, time_bounds

# URL key -> analytics dimension.
PARAM_DIMENSIONS: dict[str, str] = {
    "service": "service_name",
    "model": "model_name",
    "provider": "provider",
    "prompt_version": "prompt_version",
}
DIMENSION_LABELS: dict[str, str] = {
    "service_name": "Service",
    "model_name": "Model",
    "provider": "Provider",
    "prompt_version": "Prompt version",
}
PRESETS: dict[str, timedelta | None] = {
    "Last hour": timedelta(hours=1),
    "Last 24 hours": timedelta(hours=24),
    "Last 7 days": timedelta(days=7),
    "Last 30 days": timedelta(days=30),
    "All time": None,
    "Custom": None,
}
DEFAULT_PRESET = "Last 7 days"
_INITIALISED = "_tw_filters_from_url"


def _anchor(key: StoreKey) -> datetime | None:
    """The end of the "last N" presets: just after the latest trace, on a whole minute."""
    _, latest = time_bounds(key)
    if latest is None:
        return None
    return latest.replace(second=0, microsecond=0) + timedelta(minutes=1)


def _format_time(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds" if moment.microsecond == 0 else "microseconds")


def _init_from_url() -> None:
    """Copy the URL's filters into the widgets' state, once per session."""
    if st.session_state.get(_INITIALISED):
        return
    st.session_state[_INITIALISED] = True
    params = st.query_params
    for param, dim in PARAM_DIMENSIONS.items():
        values = [v for v in params.get_all(param) if v]
        st.session_state[f"flt_{dim}"] = values
    since, until = params.get("from"), params.get("to")
    if since or until:
        st.session_state["flt_preset"] = "Custom"
        st.session_state["flt_from"] = since or ""
        st.session_state["flt_to"] = until or ""


def _resolve_range(key: StoreKey) -> tuple[datetime | None, datetime | None]:
    preset = st.session_state.get("flt_preset", DEFAULT_PRESET)
    anchor = _anchor(key)
    if preset == "Custom":
        since = _parse(st.session_state.get("flt_from", ""), "From", anchor)
        until = _parse(st.session_state.get("flt_to", ""), "To", anchor)
        if since is not None and until is not None and since >= until:
            st.sidebar.error("“From” must be before “To”: showing all time instead.")
            return None, None
        return since, until
    length = PRESETS.get(preset)
    if length is None or anchor is None:
        return None, None
    return anchor - length, anchor


def _parse(text: str, label: str, now: datetime | None) -> datetime | None:
    if not text.strip():
        return None
    try:
        return parse_time(text, now)
    except AnalyticsError as error:
        st.sidebar.error(f"{label}: {error}")
        return None


def render_filters(key: StoreKey) -> View:
    """Draw the sidebar filters, sync them to the URL and return the selected view."""
    _init_from_url()
    sidebar = st.sidebar
    sidebar.header("Filters")
    if "flt_preset" not in st.session_state:
        st.session_state["flt_preset"] = DEFAULT_PRESET
    sidebar.selectbox("Time range", list(PRESETS), key="flt_preset",
                      help="“Last …” ends at the latest trace in the store.")
    if st.session_state["flt_preset"] == "Custom":
        sidebar.text_input("From (UTC)", key="flt_from",
                           placeholder="2025-01-31T14:00 or 24h (ago)")
        sidebar.text_input("To (UTC, exclusive)", key="flt_to", placeholder="now")
    since, until = _resolve_range(key)
    if since is not None or until is not None:
        sidebar.caption(f"{_format_time(since) if since else '…'} → "
                        f"{_format_time(until) if until else '…'} UTC")

    options = dimension_values(key)
    chosen: list[tuple[str, tuple[str, ...]]] = []
    for dim in FILTER_DIMENSIONS:
        state_key = f"flt_{dim}"
        selected = list(st.session_state.get(state_key, []))
        # A value from a link that the store does not (yet) hold stays selectable.
        dim_options = sorted(set(options.get(dim, [])) | set(selected))
        st.session_state[state_key] = selected
        sidebar.multiselect(DIMENSION_LABELS[dim], dim_options, key=state_key,
                            placeholder="All")
        values = tuple(st.session_state.get(state_key, []))
        if values:
            chosen.append((dim, values))
    view = View(since, until, tuple(chosen))
    _write_url(view)
    return view


def _write_url(view: View) -> None:
    params = st.query_params
    preset = st.session_state.get("flt_preset", DEFAULT_PRESET)
    for name, moment in (("from", view.since), ("to", view.until)):
        if moment is not None and preset != "All time":
            text = _format_time(moment)
            if params.get(name) != text:
                params[name] = text
        elif name in params:
            del params[name]
    selected = dict(view.filters)
    for param, dim in PARAM_DIMENSIONS.items():
        values = list(selected.get(dim, ()))
        if values:
            if params.get_all(param) != values:
                params[param] = values
        elif param in params:
            del params[param]


def view_params(view: View) -> dict[str, str | list[str]]:
    """The query parameters that reproduce ``view`` (for links)."""
    out: dict[str, str | list[str]] = {}
    if view.since is not None:
        out["from"] = _format_time(view.since)
    if view.until is not None:
        out["to"] = _format_time(view.until)
    by_dim = {dim: param for param, dim in PARAM_DIMENSIONS.items()}
    for dim, values in view.filters:
        out[by_dim[dim]] = list(values)
    return out
