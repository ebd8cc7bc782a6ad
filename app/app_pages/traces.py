"""Traces: a filterable, sortable table and the drill-down of one trace (``?trace_id=``)."""

from __future__ import annotations

import json
from typing import Any

import plotly.graph_objects as go
import polars as pl
import streamlit as st

from app import data
from app.widgets import (
    current, fmt_count, fmt_ms, fmt_score, fmt_usd, is_missing, require_traces, trace_url,
)

key, view = current()
KIND_COLOURS = {"LLM": "#7c3aed", "RETRIEVER": "#0891b2", "CHAIN": "#64748b", "TOOL": "#d97706",
                "AGENT": "#2563eb", "EMBEDDING": "#0d9488", "RERANKER": "#0284c7",
                "GUARDRAIL": "#be123c", "EVALUATOR": "#4d7c0f", "UNKNOWN": "#9ca3af"}


def span_depths(spans: pl.DataFrame) -> dict[str, int]:
    """Depth of each span in the tree (orphans, whose parent never arrived, are roots)."""
    parents = dict(zip(spans["span_id"].to_list(), spans["parent_span_id"].to_list()))
    depths: dict[str, int] = {}
    for span_id in parents:
        depth, node, seen = 0, span_id, set()
        while parents.get(node) in parents and node not in seen:
            seen.add(node)
            node = parents[node]
            depth += 1
        depths[span_id] = depth
    return depths


def tree_order(spans: pl.DataFrame) -> list[str]:
    """Span ids depth-first (children by start time): the order of the tree and waterfall."""
    ids = spans["span_id"].to_list()
    known = set(ids)
    children: dict[str | None, list[str]] = {}
    for span_id, parent in zip(ids, spans["parent_span_id"].to_list()):
        children.setdefault(parent if parent in known else None, []).append(span_id)
    order: list[str] = []
    stack = list(reversed(children.get(None, [])))
    while stack:
        node = stack.pop()
        if node in order:
            continue
        order.append(node)
        stack.extend(reversed(children.get(node, [])))
    return order + [s for s in ids if s not in order]


def render_drilldown(trace_id: str) -> None:
    if st.button("← All traces", key="back_to_list"):
        del st.query_params["trace_id"]
        st.rerun()
    detail = data.trace_detail(key, trace_id)
    if detail is None:
        st.warning(f"Trace `{trace_id}` is not in the store (it may be older than the "
                   "retention, or not ingested yet).", icon=":material/search_off:")
        return
    trace = detail.trace
    st.title(trace.get("root_name") or "Trace")
    st.caption(f"`{trace['trace_id']}` · {trace.get('service_name') or 'unknown service'} · "
               f"started {trace.get('start_time')} UTC")
    cols = st.columns(6)
    cols[0].metric("Latency", fmt_ms(trace.get("duration_ms")))
    cols[1].metric("Status", trace.get("status_code") or "no root span")
    cols[2].metric("Cost", fmt_usd(trace.get("cost_usd")))
    cols[3].metric("Tokens", fmt_count(trace.get("total_tokens")))
    cols[4].metric("Groundedness", fmt_score(trace.get("groundedness")))
    cols[5].metric("Fallback", "yes" if trace.get("has_fallback") else "no")
    facts = [f"model **{trace.get('model_name') or '—'}**",
             f"prompt version **{trace.get('prompt_version') or '—'}**",
             f"{trace.get('span_count')} spans, {trace.get('llm_calls')} LLM calls"]
    if trace.get("user_id"):
        facts.append(f"user `{trace['user_id']}`")
    if trace.get("session_id"):
        facts.append(f"session `{trace['session_id']}`")
    st.markdown(" · ".join(facts))
    if detail.cluster:
        cluster = detail.cluster
        st.warning(f"Failure mode: **{cluster.get('name') or cluster['cluster_id']}** "
                   f"({cluster.get('num_traces', '?')} traces) — see Failure modes.",
                   icon=":material/bug_report:")

    spans = detail.spans
    order = tree_order(spans)
    depths = span_depths(spans)
    by_id = {row["span_id"]: row for row in spans.iter_rows(named=True)}
    st.subheader("Waterfall")
    render_waterfall([by_id[s] for s in order], depths)

    left, right = st.columns([2, 3])
    with left:
        st.subheader("Span tree")
        labels = {s: _span_label(by_id[s], depths[s]) for s in order}
        selected = st.radio("Span", order, format_func=lambda s: labels[s],
                            key=f"span_{trace_id}", label_visibility="collapsed")
        st.subheader("Cost and tokens per span")
        llm = spans.filter(pl.col("span_kind") == "LLM")
        if llm.is_empty():
            st.caption("No LLM calls in this trace.")
        else:
            st.dataframe(llm.select("name", "model_name", "provider", "status_code",
                                    "prompt_tokens", "completion_tokens",
                                    "cached_prompt_tokens", "cost_usd", "is_fallback"),
                         hide_index=True, width="stretch",
                         column_config={"cost_usd": st.column_config.NumberColumn(
                             "cost_usd", format="$%.5f")})
    with right:
        render_span(by_id[selected or order[0]], detail)
    st.subheader("Evaluations")
    if detail.evaluations.is_empty():
        st.caption("No evaluations for this trace.")
    else:
        st.dataframe(detail.evaluations, hide_index=True, width="stretch")


def _span_label(span: dict[str, Any], depth: int) -> str:
    flag = " ⚠" if span.get("status_code") == "ERROR" else ""
    return f"{'  ' * depth}{'└ ' if depth else ''}{span['name']} [{span['span_kind']}] " \
           f"{fmt_ms(span.get('duration_ms'))}{flag}"


def render_waterfall(spans: list[dict[str, Any]], depths: dict[str, int]) -> None:
    if not spans:
        st.info("This trace has no spans.")
        return
    t0 = min(s["start_time"] for s in spans)
    figure = go.Figure()
    names = [f"{'· ' * depths[s['span_id']]}{s['name']} ({s['span_id'][:6]})" for s in spans]
    for span, name in zip(spans, names):
        offset_ms = (span["start_time"] - t0).total_seconds() * 1000
        colour = "#dc2626" if span.get("status_code") == "ERROR" else \
            KIND_COLOURS.get(span.get("span_kind") or "UNKNOWN", "#9ca3af")
        figure.add_trace(go.Bar(
            y=[name], x=[max(span.get("duration_ms") or 0.0, 0.5)], base=[offset_ms],
            orientation="h", marker_color=colour, showlegend=False,
            hovertemplate=(f"{span['name']}<br>{span.get('span_kind')} · "
                           f"{span.get('status_code')}<br>start +%{{base:.0f}} ms<br>"
                           "duration %{x:.0f} ms<extra></extra>"),
        ))
    figure.update_yaxes(autorange="reversed", categoryorder="array", categoryarray=names)
    figure.update_xaxes(title="ms since the trace started")
    figure.update_layout(height=max(180, 28 * len(spans) + 60), barmode="overlay",
                         margin=dict(l=10, r=10, t=10, b=10))
    st.plotly_chart(figure, width="stretch")


def render_span(span: dict[str, Any], detail: data.TraceDetail) -> None:
    st.subheader(f"{span['name']}")
    st.caption(f"{span.get('span_kind')} · {span.get('status_code')} · "
               f"{fmt_ms(span.get('duration_ms'))} · span `{span['span_id']}`")
    if span.get("status_message"):
        st.error(span["status_message"])
    if span.get("span_kind") == "LLM":
        st.markdown(f"model **{span.get('model_name') or '—'}** ({span.get('provider') or '—'})"
                    f" · tokens {fmt_count(span.get('prompt_tokens'))} in / "
                    f"{fmt_count(span.get('completion_tokens'))} out · "
                    f"cost {fmt_usd(span.get('cost_usd'))}"
                    + (" · **fallback**" if span.get("is_fallback") else ""))
    tabs = st.tabs(["Messages", "Retrieved documents", "Attributes"])
    with tabs[0]:
        render_text("Input", span.get("input_text"))
        render_text("Output", span.get("output_text"))
        if span.get("redacted_count"):
            st.caption(f"{span['redacted_count']} personal-data entities were redacted.")
    with tabs[1]:
        docs = detail.retrievals.filter(pl.col("span_id") == span["span_id"])
        if docs.is_empty():
            docs = detail.retrievals
            if not docs.is_empty():
                st.caption("Documents retrieved in this trace (by other spans):")
        if docs.is_empty():
            st.caption("No retrieved documents in this trace.")
        else:
            st.dataframe(docs.select("position", "document_id", "score", "content"),
                         hide_index=True, width="stretch",
                         column_config={"score": st.column_config.ProgressColumn(
                             "score", min_value=0.0, max_value=1.0, format="%.3f")})
    with tabs[2]:
        try:
            attributes = json.loads(span.get("attributes") or "{}")
        except ValueError:
            attributes = {"(unparsed)": span.get("attributes")}
        if attributes:
            st.json(attributes, expanded=True)
        else:
            st.caption("No attributes.")


def render_text(label: str, text: str | None) -> None:
    st.markdown(f"**{label}**")
    if not text:
        st.caption("—")
        return
    messages = data.parse_messages(text)
    if messages is None:
        st.text(text[:20_000])
        return
    for message in messages:
        role = message["role"]
        avatar = "user" if role == "user" else "assistant"
        with st.chat_message(avatar):
            if role not in ("user", "assistant"):
                st.caption(role)
            st.markdown(message["content"][:20_000])


def render_list() -> None:
    st.title("Traces")
    top = st.columns([3, 1, 1, 1])
    search = top[0].text_input("Search the redacted input and output", key="trace_search",
                               placeholder="e.g. refund, timeout, invoice")
    status = top[1].selectbox("Status", ["Any", "ERROR", "OK", "UNSET"], key="trace_status")
    fallback_only = top[2].toggle("Fallbacks only", key="trace_fallback")
    limit = top[3].selectbox("Show", [100, 500, 2000], index=1, key="trace_limit")
    frame = data.list_traces(key, view, search, limit=10_000 if status != "Any" or fallback_only
                             else int(limit))
    if status != "Any":
        frame = frame.filter(pl.col("status_code") == status)
    if fallback_only:
        frame = frame.filter(pl.col("has_fallback"))
    frame = frame.head(int(limit))
    if frame.is_empty():
        st.info("No traces match: clear the search or widen the filters in the sidebar.",
                icon=":material/filter_alt_off:")
        return
    st.caption(f"{frame.height:,} most recent traces (click a column to sort, a row to open it).")
    table = frame.with_columns(
        pl.col("trace_id").map_elements(trace_url, return_dtype=pl.String).alias("link"))
    event = st.dataframe(
        table.select("start_time", "service_name", "model_name", "prompt_version",
                     "status_code", "has_fallback", "cost_usd", "duration_ms", "groundedness",
                     "input_text", "link"),
        hide_index=True, width="stretch", on_select="rerun", selection_mode="single-row",
        key="trace_table",
        column_config={
            "start_time": st.column_config.DatetimeColumn("time (UTC)"),
            "service_name": "service", "model_name": "model", "prompt_version": "prompt",
            "status_code": "status", "has_fallback": "fallback",
            "cost_usd": st.column_config.NumberColumn("cost", format="$%.5f"),
            "duration_ms": st.column_config.NumberColumn("latency (ms)", format="%.0f"),
            "groundedness": st.column_config.NumberColumn("grounded", format="%.2f"),
            "input_text": st.column_config.TextColumn("input", width="large"),
            "link": st.column_config.LinkColumn("trace", display_text="open"),
        },
    )
    rows = event.selection.rows if event is not None else []
    if rows:
        st.query_params["trace_id"] = frame["trace_id"][rows[0]]
        st.rerun()


trace_id = st.query_params.get("trace_id")
if trace_id:
    render_drilldown(trace_id)
elif require_traces(key, data.kpis(key, view)["num_requests"][0] == 0):
    render_list()
