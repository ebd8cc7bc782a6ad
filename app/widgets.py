"""Small pieces the pages share: number formats, links and the empty-state messages."""

from __future__ import annotations

import json
import math
import re
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import streamlit as st

from app.data import StoreKey, View, count_traces, data_dir

CONTEXT_KEY = "_tw_context"


def current() -> tuple[StoreKey, View]:
    """The store key and the sidebar's view of this run (set by streamlit_app.py)."""
    key, view = st.session_state[CONTEXT_KEY]
    return key, view


def require_traces(key: StoreKey, frame_empty: bool | None = None) -> bool:
    """Show why there is nothing to see; True when the page can go on."""
    if count_traces(key) == 0:
        st.info(
            f"No traces in the store yet ({data_dir()}). Ingest some with "
            "`tracewatch ingest sample_traces` (or run `tracewatch demo`), or point an "
            "OpenTelemetry exporter at the collector (OTLP/HTTP 127.0.0.1:4318, "
            "gRPC 127.0.0.1:4317).",
            icon=":material/inbox:",
        )
        return False
    if frame_empty:
        st.info("No traces match the filters: widen the time range or clear a filter in "
                "the sidebar.", icon=":material/filter_alt_off:")
        return False
    return True


def is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def fmt_count(value: Any) -> str:
    return "—" if is_missing(value) else f"{int(value):,}"


def fmt_usd(value: Any) -> str:
    if is_missing(value):
        return "—"
    value = float(value)
    if abs(value) >= 100:
        return f"${value:,.0f}"
    if abs(value) >= 1:
        return f"${value:,.2f}"
    return f"${value:.4f}"


def fmt_ms(value: Any) -> str:
    if is_missing(value):
        return "—"
    value = float(value)
    return f"{value / 1000:.2f} s" if value >= 1000 else f"{value:.0f} ms"


def fmt_rate(value: Any) -> str:
    return "—" if is_missing(value) else f"{float(value) * 100:.1f}%"


def fmt_score(value: Any) -> str:
    return "—" if is_missing(value) else f"{float(value):.2f}"


def trace_url(trace_id: str) -> str:
    """Relative link that opens a trace's drill-down (works from every page)."""
    return "traces?" + urlencode({"trace_id": trace_id})


def slice_url(page: str, params: dict[str, str | list[str]]) -> str:
    """Relative link to a page with filter query parameters.

    The Overview is the default page, served at the app's root (not at ``overview``), so
    its links are ``./?...&page=overview``."""
    if page == "overview":
        return "./?" + urlencode({**params, "page": "overview"}, doseq=True)
    return page + ("?" + urlencode(params, doseq=True) if params else "")


# Names an alert's group key may use for the filter dimensions -> URL parameter.
_GROUP_KEY_PARAMS = {
    "service_name": "service", "service": "service", "model_name": "model", "model": "model",
    "provider": "provider", "prompt_version": "prompt_version",
}


def alert_params(row: dict[str, Any], margin: timedelta = timedelta(hours=6)) -> dict[str, Any]:
    """Filter parameters of an alert's slice: its group and the time around it.

    The group key may be a JSON object or ``dim=value`` pairs separated by ``,``, ``;``,
    ``&`` or ``|``; unknown dimensions are ignored.
    """
    params: dict[str, Any] = {}
    group: dict[str, Any] = {}
    text = row.get("group_key") or ""
    try:
        parsed = json.loads(text) if text.strip().startswith("{") else None
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        group = parsed
    else:
        for part in re.split(r"[,;&|]", text):
            name, sep, value = part.partition("=")
            if sep:
                group[name.strip()] = value.strip()
    for name, value in group.items():
        param = _GROUP_KEY_PARAMS.get(str(name))
        if param and value not in (None, ""):
            params[param] = str(value)
    started, resolved = row.get("started_at"), row.get("resolved_at")
    if isinstance(started, datetime):
        params["from"] = (started - margin).isoformat(timespec="seconds")
        end = resolved if isinstance(resolved, datetime) else started
        params["to"] = (end + margin).isoformat(timespec="seconds")
    return params
