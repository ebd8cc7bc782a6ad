"""Plotly figures of the weekly review, built from a ``WeeklyReview`` (no store access).

Daily charts span both weeks with the reviewed week shaded, so a change reads against its
baseline.  Figures share one look (``plotly_white``, 380 px high, UTC dates) and carry no
JavaScript of their own: the notebook shows them through its renderer, and ``tracewatch
report`` embeds plotly.js once for the whole page.
"""

from __future__ import annotations

import plotly.graph_objects as go  # type: ignore[import-untyped]
import polars as pl
from plotly.subplots import make_subplots  # type: ignore[import-untyped]

from analytics.weekly import WeeklyReview

HEIGHT = 380
_LAYOUT = {"template": "plotly_white", "height": HEIGHT,
           "margin": {"l": 60, "r": 20, "t": 50, "b": 40},
           "legend": {"orientation": "h", "y": -0.15}}


def _shade_week(fig: go.Figure, review: WeeklyReview) -> None:
    fig.add_vrect(x0=review.since, x1=review.until, fillcolor="#1f77b4", opacity=0.07,
                  line_width=0, layer="below")


def plot_cost_by_model(review: WeeklyReview) -> go.Figure:
    """Cost per model (provider), this week vs the previous one."""
    frame = review.cost_by_model.filter(
        (pl.col("cost_usd_total").fill_null(0) > 0)
        | (pl.col("cost_usd_total_previous").fill_null(0) > 0))
    labels = [f"{m or 'no model'} ({p or '?'})" for m, p in
              frame.select("model_name", "provider").iter_rows()]
    fig = go.Figure([
        go.Bar(name=review.previous_week, y=labels, x=frame["cost_usd_total_previous"],
               orientation="h", marker_color="#aec7e8"),
        go.Bar(name=review.week, y=labels, x=frame["cost_usd_total"], orientation="h",
               marker_color="#1f77b4"),
    ])
    fig.update_layout(title="Cost by model (USD)", barmode="group", **_LAYOUT)
    fig.update_yaxes(autorange="reversed")
    fig.update_xaxes(tickprefix="$")
    return fig


def plot_daily_cost_by_service(review: WeeklyReview) -> go.Figure:
    """Daily cost, stacked by service, over both weeks."""
    fig = go.Figure()
    frame = review.daily_by_service
    for service in frame["service_name"].unique(maintain_order=True).to_list():
        rows = frame.filter(pl.col("service_name").eq_missing(service))
        fig.add_bar(name=service or "no service", x=rows["window_start"],
                    y=rows["cost_usd_total"])
    _shade_week(fig, review)
    fig.update_layout(title="Daily cost by service (USD)", barmode="stack", **_LAYOUT)
    fig.update_yaxes(tickprefix="$")
    return fig


def plot_latency(review: WeeklyReview) -> go.Figure:
    """Daily p50 / p95 / p99 latency over both weeks (log scale: p99 is often 10x p50)."""
    fig = go.Figure()
    for column, label in (("latency_p50_ms", "p50"), ("latency_p95_ms", "p95"),
                          ("latency_p99_ms", "p99")):
        fig.add_scatter(name=label, x=review.daily["window_start"], y=review.daily[column],
                        mode="lines+markers")
    _shade_week(fig, review)
    fig.update_layout(title="Daily latency percentiles (ms)", **_LAYOUT)
    fig.update_yaxes(type="log", ticksuffix=" ms")
    return fig


def plot_quality_trends(review: WeeklyReview) -> go.Figure:
    """Daily grounded rate and fallback rate per service over both weeks."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("Grounded rate", "Fallback rate"),
                        horizontal_spacing=0.1)
    frame = review.daily_by_service
    colors = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"]
    for i, service in enumerate(frame["service_name"].unique(maintain_order=True).to_list()):
        rows = frame.filter(pl.col("service_name").eq_missing(service))
        shown = False  # one legend entry per service, whichever panel it appears in first
        for col, metric in ((1, "grounded_rate"), (2, "fallback_rate")):
            if rows[metric].drop_nulls().is_empty():
                continue
            fig.add_scatter(name=service or "no service", x=rows["window_start"],
                            y=rows[metric], mode="lines+markers",
                            line_color=colors[i % len(colors)], legendgroup=service,
                            showlegend=not shown, row=1, col=col)
            shown = True
    for col in (1, 2):
        fig.add_vrect(x0=review.since, x1=review.until, fillcolor="#1f77b4", opacity=0.07,
                      line_width=0, layer="below", row=1, col=col)
    fig.update_layout(title="Groundedness and fallback by day", **_LAYOUT)
    fig.update_yaxes(tickformat=".0%")
    return fig


def plot_failure_modes(review: WeeklyReview) -> go.Figure:
    """Share of requests per failure mode, previous week vs this week."""
    frame = review.failure_modes
    labels = [f"{cid} {name[:40]}" for cid, name in frame.select("cluster_id", "name").iter_rows()]
    fig = go.Figure([
        go.Bar(name=review.previous_week, y=labels, x=frame["share_previous"], orientation="h",
               marker_color="#ffbb78"),
        go.Bar(name=review.week, y=labels, x=frame["share"], orientation="h",
               marker_color="#d62728", text=frame["movement"], textposition="outside"),
    ])
    fig.update_layout(title="Failure modes: share of requests", barmode="group",
                      **{**_LAYOUT, "height": max(HEIGHT, 60 + 45 * frame.height)})
    fig.update_yaxes(autorange="reversed")
    fig.update_xaxes(tickformat=".1%")
    return fig
