"""Cost: spend by model, provider, service, prompt version and user; unpriced calls."""

from __future__ import annotations

import plotly.express as px
import polars as pl
import streamlit as st

from app import data
from app.widgets import current, fmt_count, fmt_usd, require_traces, trace_url

key, view = current()
st.title("Cost")

totals = data.kpis(key, view)
if require_traces(key, totals["num_requests"][0] == 0):
    row = totals.row(0, named=True)
    cols = st.columns(4)
    cols[0].metric("Spend", fmt_usd(row["cost_usd_total"]), border=True)
    cols[1].metric("Per request", fmt_usd(row["cost_usd_per_request"]), border=True)
    cols[2].metric("Per successful request", fmt_usd(row["cost_usd_per_successful_request"]),
                   border=True)
    cols[3].metric("Unpriced LLM calls", fmt_count(row["num_unpriced_llm_calls"]), border=True)
    if row["num_unpriced_llm_calls"]:
        st.caption("Unpriced calls (models without a known price) are not in the spend: the "
                   "figures are lower bounds. Add their prices with `--prices prices.yaml`.")

    window = data.pick_window(view.since, view.until)
    series = data.timeseries(key, view, window)
    if not series.is_empty():
        figure = px.bar(series.to_pandas(), x="window_start", y="cost_usd_total",
                        labels={"window_start": "", "cost_usd_total": "USD"},
                        title=f"Spend per {window}")
        figure.update_layout(height=280, margin=dict(l=10, r=10, t=40, b=10))
        st.plotly_chart(figure, width="stretch")

    labels = {"model_name": "Model", "provider": "Provider", "service_name": "Service",
              "prompt_version": "Prompt version"}
    tabs = st.tabs([*labels.values(), "User"])
    for tab, dim in zip(tabs, labels):
        with tab:
            frame = data.kpis(key, view, (dim,)).with_columns(pl.col(dim).fill_null("(none)"))
            frame = frame.select(dim, "cost_usd_total", "num_requests", "cost_usd_per_request",
                                 "total_tokens", "num_unpriced_llm_calls").sort(
                "cost_usd_total", descending=True, nulls_last=True)
            left, right = st.columns([3, 2])
            left.dataframe(frame, hide_index=True, width="stretch", column_config={
                dim: labels[dim], "num_requests": "requests",
                "cost_usd_total": st.column_config.NumberColumn("spend", format="$%.4f"),
                "cost_usd_per_request": st.column_config.NumberColumn("per request",
                                                                      format="$%.5f"),
                "num_unpriced_llm_calls": "unpriced calls"})
            priced = frame.filter(pl.col("cost_usd_total").is_not_null())
            if not priced.is_empty():
                pie = px.pie(priced.to_pandas(), names=dim, values="cost_usd_total", hole=0.5)
                pie.update_layout(height=260, margin=dict(l=0, r=0, t=10, b=10))
                right.plotly_chart(pie, width="stretch")
    with tabs[-1]:
        users = data.cost_by_user(key, view)
        st.dataframe(users.with_columns(pl.col("user_id").fill_null("(anonymous)")),
                     hide_index=True, width="stretch", column_config={
                         "user_id": "user", "num_requests": "requests",
                         "cost_usd_total": st.column_config.NumberColumn("spend",
                                                                         format="$%.4f"),
                         "cost_usd_per_request": st.column_config.NumberColumn(
                             "per request", format="$%.5f")})
        st.caption("The 50 users with the largest spend.")

    st.subheader("Unpriced calls")
    unpriced = data.unpriced_calls(key, view)
    if unpriced.is_empty():
        st.success("Every LLM call in this view has a price.", icon=":material/check_circle:")
    else:
        st.dataframe(unpriced.with_columns(pl.col("example_trace_id").map_elements(
            trace_url, return_dtype=pl.String).alias("example")).drop("example_trace_id"),
            hide_index=True, width="stretch", column_config={
                "example": st.column_config.LinkColumn("example", display_text="open")})
