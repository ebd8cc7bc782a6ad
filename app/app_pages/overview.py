"""Overview: firing alerts, KPI tiles vs the previous period, time series, breakdowns."""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go
import polars as pl
import streamlit as st
from plotly.subplots import make_subplots

from app import data
from app.widgets import (
    alert_params, current, fmt_count, fmt_ms, fmt_rate, fmt_score, fmt_usd, is_missing, require_traces,
    slice_url,
)

# (label, KPI column, formatter, comparison metric or None, higher is better)
TILES: tuple[tuple[str, str, Any, str | None, bool], ...] = (
    ("Requests", "num_requests", fmt_count, None, True),
    ("Cost", "cost_usd_total", fmt_usd, "cost_usd_per_request", False),
    ("p95 latency", "latency_p95_ms", fmt_ms, "latency_p95_ms", False),
    ("Groundedness", "groundedness_mean", fmt_score, "groundedness_mean", True),
    ("Fallback rate", "fallback_rate", fmt_rate, "fallback_rate", False),
    ("Error rate", "error_rate", fmt_rate, "error_rate", False),
)
SERIES = (
    ("Requests", "num_requests"), ("Cost (USD)", "cost_usd_total"),
    ("p95 latency (ms)", "latency_p95_ms"), ("Groundedness", "groundedness_mean"),
    ("Fallback rate", "fallback_rate"), ("Error rate", "error_rate"),
)
BREAKDOWN_COLUMNS = ("num_requests", "error_rate", "fallback_rate", "latency_p95_ms",
                     "groundedness_mean", "cost_usd_total", "num_unpriced_llm_calls")

key, view = current()
st.title("Overview")


def render_firing_alerts() -> None:
    firing = data.alerts(key, "firing")
    if firing.is_empty():
        return
    st.subheader(f":material/notifications_active: {firing.height} firing alert(s)")
    for row in firing.head(10).iter_rows(named=True):
        change = ""
        if not is_missing(row.get("value")):
            change = f" — {row.get('metric') or 'value'} {row['value']:.4g}"
            if not is_missing(row.get("baseline")):
                change += f" vs baseline {row['baseline']:.4g}"
        st.error(f"**{row.get('rule') or 'alert'}** ({row.get('severity') or 'unknown'}) on "
                 f"`{row.get('group_key') or 'all traffic'}`{change}, since "
                 f"{row.get('started_at')} UTC · [open the slice]({alert_slice_url(row)})",
                 icon=":material/warning:")


def alert_slice_url(row: dict[str, Any]) -> str:
    """Link to the Overview filtered to an alert's group, around its start."""
    return slice_url("overview", alert_params(row))


def render_tiles() -> list[Any]:
    """KPI tiles with the change vs the previous period; returns one placeholder per tile
    for the significance, filled last (the bootstrap is the slowest part of the page)."""
    current_kpis = data.kpis(key, view).row(0, named=True)
    previous = view.previous()
    before = data.kpis(key, previous).row(0, named=True) if previous else None
    columns = st.columns(len(TILES))
    placeholders = []
    for column, (label, kpi, fmt, _metric, higher_better) in zip(columns, TILES):
        value = current_kpis.get(kpi)
        delta = None
        old = before.get(kpi) if before else None
        if not is_missing(value) and not is_missing(old):
            delta = _delta_text(kpi, float(value), float(old))
        column.metric(label, fmt(value), delta,
                      delta_color="normal" if higher_better else "inverse", border=True)
        placeholders.append(column.empty())
    if previous is None:
        st.caption("Pick a bounded time range to compare with the previous period.")
    else:
        st.caption(f"Change vs the previous period of the same length "
                   f"({previous.since:%Y-%m-%d %H:%M} → {previous.until:%Y-%m-%d %H:%M} UTC); "
                   "significance at 95% (analytics.compare; hover for the interval).")
    unpriced = current_kpis.get("num_unpriced_llm_calls") or 0
    if unpriced:
        st.caption(f":material/info: {unpriced:,} LLM call(s) have no known price: cost is a "
                   "lower bound (see Cost).")
    return placeholders


def render_significance(placeholders: list[Any]) -> None:
    previous = view.previous()
    comparisons: dict[str, dict[str, Any]] = {}
    if previous is not None and data.kpis(key, previous)["num_requests"][0]:
        frame = data.compare_views(key, previous, view)
        comparisons = {row["metric"]: row for row in frame.iter_rows(named=True)}
    for placeholder, (_label, _kpi, _fmt, metric, _better) in zip(placeholders, TILES):
        placeholder.caption(_significance_caption(metric, comparisons, previous is not None),
                            help=_significance_help(metric, comparisons))


def _delta_text(kpi: str, value: float, old: float) -> str:
    if kpi.endswith("_rate"):
        return f"{(value - old) * 100:+.1f} pp"
    if kpi == "groundedness_mean":
        return f"{value - old:+.2f}"
    if old == 0:
        return "new"
    return f"{(value - old) / old * 100:+.1f}%"


def _significance_caption(metric: str | None, comparisons: dict[str, dict[str, Any]],
                          bounded: bool) -> str:
    if metric is None or not bounded:
        return " "
    row = comparisons.get(metric)
    if row is None or row["status"] != "ok":
        return "not enough data to test"
    if row["significant"]:
        return f":red-badge[significant] p={row['p_value']:.3g}"
    return f"not significant (p={row['p_value']:.2g})"


def _significance_help(metric: str | None, comparisons: dict[str, dict[str, Any]]) -> str:
    row = comparisons.get(metric or "")
    if row is None:
        return "Change vs the previous period (no significance test for this figure)."
    if row["status"] != "ok":
        return f"{row['test']}: not enough traces in one of the periods."
    return (f"{row['test']}: difference {row['difference']:.4g}, 95% CI "
            f"[{row['ci_low']:.4g}, {row['ci_high']:.4g}], p = {row['p_value']:.3g}")


def render_timeseries() -> None:
    window = data.pick_window(view.since, view.until)
    frame = data.timeseries(key, view, window)
    st.subheader(f"Over time (per {window})")
    if frame.is_empty():
        st.info("No traces in this range.")
        return
    figure = make_subplots(rows=2, cols=3, subplot_titles=[label for label, _ in SERIES],
                           shared_xaxes=True, vertical_spacing=0.12)
    for index, (label, column) in enumerate(SERIES):
        figure.add_trace(
            go.Scatter(x=frame["window_start"].to_list(), y=frame[column].to_list(), name=label,
                       mode="lines", connectgaps=False),
            row=index // 3 + 1, col=index % 3 + 1)
    figure.update_layout(height=460, showlegend=False, margin=dict(l=10, r=10, t=40, b=10))
    st.plotly_chart(figure, width="stretch")


def render_breakdowns() -> None:
    st.subheader("Breakdowns")
    labels = {"service_name": "Service", "model_name": "Model", "provider": "Provider",
              "prompt_version": "Prompt version"}
    tabs = st.tabs(list(labels.values()))
    for tab, dim in zip(tabs, labels):
        with tab:
            frame = data.kpis(key, view, (dim,))
            if frame.is_empty():
                st.info("No traces in this range.")
                continue
            st.dataframe(
                frame.select(dim, *BREAKDOWN_COLUMNS).with_columns(
                    pl.col(dim).fill_null("(none)")),
                hide_index=True, width="stretch",
                column_config={
                    dim: labels[dim], "num_requests": "Requests",
                    "error_rate": st.column_config.NumberColumn("Error rate", format="percent"),
                    "fallback_rate": st.column_config.NumberColumn("Fallback rate",
                                                                   format="percent"),
                    "latency_p95_ms": st.column_config.NumberColumn("p95 latency (ms)",
                                                                    format="%.0f"),
                    "groundedness_mean": st.column_config.NumberColumn("Groundedness",
                                                                       format="%.2f"),
                    "cost_usd_total": st.column_config.NumberColumn("Cost", format="dollar"),
                    "num_unpriced_llm_calls": "Unpriced calls",
                },
            )


render_firing_alerts()
if require_traces(key, data.kpis(key, view)["num_requests"][0] == 0):
    tile_notes = render_tiles()
    render_timeseries()
    render_breakdowns()
    render_significance(tile_notes)
