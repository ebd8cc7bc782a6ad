"""Alerts: firing and resolved alerts, their cause, and a link to the affected slice."""

from __future__ import annotations

import json

import polars as pl
import streamlit as st

from app import data
from app.widgets import alert_params, current, slice_url

key, view = current()
st.title("Alerts")

history = data.alerts(key)
if history.is_empty():
    st.info("No alerts yet. Rules live in `alerts/rules.yaml`; run `tracewatch alerts check` "
            "(or `tracewatch alerts watch --every 60s`) to evaluate them.",
            icon=":material/notifications_off:")
else:
    table = history.with_columns(
        pl.Series("slice", [slice_url("overview", alert_params(row))
                            for row in history.iter_rows(named=True)], dtype=pl.String),
    )
    config = {
        "slice": st.column_config.LinkColumn("slice", display_text="open"),
        "value": st.column_config.NumberColumn("value", format="%.4g"),
        "baseline": st.column_config.NumberColumn("baseline", format="%.4g"),
    }
    columns = ["started_at", "rule", "severity", "metric", "group_key", "value", "baseline",
               "slice"]
    firing = table.filter(pl.col("state") == "firing")
    st.subheader(f"Firing ({firing.height})")
    if firing.is_empty():
        st.success("Nothing is firing.", icon=":material/check_circle:")
    else:
        st.dataframe(firing.select(columns), hide_index=True, width="stretch",
                     column_config=config)
    resolved = table.filter(pl.col("state") != "firing")
    if view.since is not None:
        resolved = resolved.filter(pl.col("started_at") >= view.since)
    if view.until is not None:
        resolved = resolved.filter(pl.col("started_at") < view.until)
    st.subheader(f"Resolved in the time range ({resolved.height})")
    if resolved.is_empty():
        st.caption("No resolved alerts in the selected time range.")
    else:
        st.dataframe(resolved.select([*columns[:-1], "resolved_at", "slice"]),
                     hide_index=True, width="stretch", column_config=config)
    st.subheader("Cause")
    labels = {row["alert_id"]: f"{row['state']} · {row['rule']} · {row['group_key'] or 'all'}"
                               f" · {row['started_at']}" for row in table.iter_rows(named=True)}
    chosen = st.selectbox("Alert", list(labels), format_func=lambda a: labels[a],
                          key="alert_pick")
    row = table.filter(pl.col("alert_id") == chosen).row(0, named=True)
    try:
        detail = json.loads(row["detail"]) if row["detail"] else {}
    except ValueError:
        detail = {"detail": row["detail"]}
    st.markdown(f"**{row['rule']}** on `{row['group_key'] or 'all traffic'}`: "
                f"{row['metric']} = {row['value']} (baseline {row['baseline']}) · "
                f"[open the slice]({row['slice']})")
    if detail:
        st.json(detail, expanded=True)
