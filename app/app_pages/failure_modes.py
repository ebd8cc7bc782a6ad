"""Failure modes: the clusters of the last ``tracewatch clusters`` run, with names, sizes,
trends and example traces."""

from __future__ import annotations

import polars as pl
import streamlit as st

from app import data
from app.widgets import current, fmt_rate, require_traces, trace_url

key, view = current()
st.title("Failure modes")

clusters = data.clusters(key)
if require_traces(key):
    if clusters.is_empty():
        st.info("No failure modes computed yet. Run `tracewatch clusters` (the alerts "
                "evaluator also runs it) to group failing and low-quality traces.",
                icon=":material/bug_report:")
    else:
        first = clusters.row(0, named=True)
        st.caption(f"Run `{first['run_id']}` over {first['since']} → {first['until']} UTC, "
                   f"computed {first['computed_at']} UTC. The sidebar filters do not apply "
                   "here: clusters are computed over all traffic of the run's window.")
        table = clusters.sort("num_traces", descending=True).with_columns(
            pl.col("trend").list.eval(pl.element().struct.field("num_traces")).alias("per_day"),
            pl.col("reasons").list.head(3).list.join(", ").alias("reasons"),
            pl.col("top_terms").list.head(6).list.join(", ").alias("top_terms"),
        )
        st.dataframe(
            table.select("name", "num_traces", "share_of_traffic", "share_of_failures",
                         "per_day", "growth_ratio", "is_new", "reasons", "top_terms"),
            hide_index=True, width="stretch",
            column_config={
                "num_traces": "traces",
                "share_of_traffic": st.column_config.NumberColumn("% of traffic",
                                                                  format="percent"),
                "share_of_failures": st.column_config.NumberColumn("% of failures",
                                                                   format="percent"),
                "per_day": st.column_config.LineChartColumn("trend (traces/day)"),
                "growth_ratio": st.column_config.NumberColumn("growth", format="%.1f×"),
                "is_new": "new",
            },
        )
        members = data.cluster_members(key)
        for row in table.head(20).iter_rows(named=True):
            with st.expander(f"{row['name']} — {row['num_traces']:,} traces "
                             f"({fmt_rate(row['share_of_traffic'])} of traffic)"):
                st.markdown(f"Representative trace: [{row['representative_trace_id']}]"
                            f"({trace_url(row['representative_trace_id'])})")
                examples = members.filter(pl.col("cluster_id") == row["cluster_id"]).head(5)
                for trace_id in examples["trace_id"].to_list():
                    st.markdown(f"- [{trace_id}]({trace_url(trace_id)})")
                slices = pl.DataFrame(row["slices"] or [], schema={
                    "dimension": pl.String, "value": pl.String, "cluster_share": pl.Float64,
                    "traffic_share": pl.Float64, "lift": pl.Float64})
                if not slices.is_empty():
                    st.caption("Where it concentrates (share of the cluster vs of traffic):")
                    st.dataframe(slices.sort("lift", descending=True).head(8),
                                 hide_index=True, width="stretch")
