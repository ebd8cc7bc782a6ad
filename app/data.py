"""Cached, read-only calls from the dashboard into analytics.

Contract:
- The store is ``$TRACEWATCH_DATA_DIR`` (default ``./data``), read once per process
  (``data_dir()``); pages never read the environment.
- Every cached function takes a ``StoreKey`` (data dir + Delta versions of the spans,
  evaluations and alerts tables, + the last clusters run) as its first argument, so a new
  commit to the store gives a new key and fresh results; an unchanged store is served from
  the cache.  ``store_key()`` costs a directory listing per table, not a Delta log replay.
- Figures come from ``analytics.metrics`` / ``analytics.compare`` (the definitions of
  DESIGN.md), so the app agrees with ``tracewatch metrics``.  What the analytics API does not
  offer (trace lists with text search, a trace's spans, prompt templates, cost per user,
  unpriced calls) is plain SQL over the views of DESIGN.md, restricted to the traces of the
  same slice (``list_trace_metrics``).  Store-wide facts (trace count, time bounds, sidebar
  values) read the per-trace table of ``analytics.views.trace_metrics_table`` (built once per
  connection) instead of the heavy ``traces`` view; per-trace text and user columns of a
  slice are aggregated from the slice's day partitions (``spans_source_sql``) with the
  ``traces`` view's definitions.
- One DuckDB connection per store version (``st.cache_resource``), shared by the sessions'
  threads; every query runs on its own cursor.  (Copying ``traces``/``spans`` into memory
  per version was measured and rejected: 2.9 s and 210 MB per version at 200k spans, paid
  again on every commit of a live collector.)
- The store's version is looked up at most every ``STORE_CHECK_INTERVAL_S`` seconds, so a
  collector committing every second does not empty the caches on every click.
- An empty or missing store gives empty frames, never an error.
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import streamlit as st

from analytics.cluster_identity import latest_run_id
from analytics.clusters import CLUSTERS_SCHEMA, MEMBERS_SCHEMA, load_cluster_members, load_clusters
from analytics.compare import Slice, compare_all
from analytics.filters import Filters, to_utc_naive
from analytics.metrics import compute_kpis, compute_timeseries, list_trace_metrics
from analytics.views import open_store, spans_source_sql, trace_metrics_table
from collector.schema import ALERTS_TABLE, EVALUATIONS_TABLE, SPANS_TABLE, table_path

DEFAULT_DATA_DIR = "./data"
# The dimensions of the sidebar filters, in the order they are shown.
FILTER_DIMENSIONS = ("service_name", "model_name", "provider", "prompt_version")
# The KPI comparisons of the Overview (baseline: the previous period of the same length).
OVERVIEW_COMPARISONS = ("error_rate", "fallback_rate", "latency_p95_ms",
                        "cost_usd_per_request", "groundedness_mean")
TRACE_DIMENSIONS = list(FILTER_DIMENSIONS)
# How stale the dashboard may be: the store's version is re-read at most this often.
STORE_CHECK_INTERVAL_S = 10


@functools.cache
def data_dir() -> Path:
    """The store directory: ``$TRACEWATCH_DATA_DIR`` or ``./data`` (read once)."""
    return Path(os.environ.get("TRACEWATCH_DATA_DIR") or DEFAULT_DATA_DIR).resolve()


@dataclass(frozen=True, slots=True)
class StoreKey:
    """What a cached result depends on: the store and the versions of its tables."""

    path: str
    spans_version: int
    evaluations_version: int
    alerts_version: int
    clusters_run: str


@dataclass(frozen=True, slots=True)
class View:
    """The slice the sidebar selects: traces started in ``[since, until)`` matching filters.

    ``filters`` is ``((dimension, (values...)), ...)``, hashable for the caches.
    """

    since: datetime | None
    until: datetime | None
    filters: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def to_filters(self) -> Filters:
        return Filters.from_mapping(dict(self.filters))

    def previous(self) -> View | None:
        """The period of the same length just before this one (None if unbounded)."""
        if self.since is None or self.until is None:
            return None
        return View(self.since - (self.until - self.since), self.since, self.filters)


def _table_version(path: Path) -> int:
    """Latest commit number in a Delta log (-1 when the table does not exist)."""
    try:
        names = os.listdir(path / "_delta_log")
    except OSError:
        return -1
    versions = [int(name[:20]) for name in names
                if name.endswith(".json") and len(name) == 25 and name[:20].isdigit()]
    return max(versions, default=-1)


@st.cache_data(ttl=STORE_CHECK_INTERVAL_S, show_spinner=False)
def store_key(path: Path | None = None) -> StoreKey:
    """The current ``StoreKey`` of the store (cheap: a few directory listings)."""
    root = path or data_dir()
    return StoreKey(
        str(root),
        _table_version(table_path(root, SPANS_TABLE)),
        _table_version(table_path(root, EVALUATIONS_TABLE)),
        _table_version(table_path(root, ALERTS_TABLE)),
        latest_run_id(root) or "",
    )


@st.cache_resource(max_entries=2, show_spinner="Reading the store…")
def _connection(key: StoreKey) -> duckdb.DuckDBPyConnection:
    # One connection per store version: the views are bound to that version's file list.
    return open_store(Path(key.path))


def _query(key: StoreKey, sql: str, params: list[Any] | None = None) -> pl.DataFrame:
    cursor = _connection(key).cursor()
    try:
        return cursor.sql(sql, params=params or None).pl()
    finally:
        cursor.close()


# --------------------------------------------------------------------------- store facts


def _all_traces(key: StoreKey) -> str:
    """The per-trace table of the whole store (one row per trace of ``traces``, same
    trace_id, start_time, service_name, model_name and prompt_version)."""
    return trace_metrics_table(_connection(key))


@st.cache_data(show_spinner=False, max_entries=16)
def count_traces(key: StoreKey) -> int:
    return int(_query(key, f"SELECT count(*) AS n FROM {_all_traces(key)}")["n"][0])


@st.cache_data(show_spinner=False, max_entries=16)
def time_bounds(key: StoreKey) -> tuple[datetime | None, datetime | None]:
    """First and last trace start time in the store (None, None when empty)."""
    row = _query(key, "SELECT min(start_time) AS lo, max(start_time) AS hi "
                      f"FROM {_all_traces(key)}").row(0)
    return row[0], row[1]


@st.cache_data(show_spinner=False, max_entries=16)
def dimension_values(key: StoreKey) -> dict[str, list[str]]:
    """Distinct non-NULL values of each filter dimension, sorted (for the sidebar).

    ``provider`` is any LLM span's (as ``spans``), the others the traces' (as ``traces``).
    """
    values: dict[str, list[str]] = {}
    for dim in FILTER_DIMENSIONS:
        if dim == "provider":
            table = f"{spans_source_sql(_connection(key))} WHERE span_kind = 'LLM' AND"
        else:
            table = f"{_all_traces(key)} WHERE"
        frame = _query(key, f"SELECT DISTINCT {dim} AS v FROM {table} {dim} IS NOT NULL "
                            "ORDER BY v")
        values[dim] = [str(v) for v in frame["v"].to_list()]
    return values


# --------------------------------------------------------------------------- metrics


@st.cache_data(show_spinner=False, max_entries=64)
def kpis(key: StoreKey, view: View, by: tuple[str, ...] = ()) -> pl.DataFrame:
    """``analytics.metrics.compute_kpis`` of the view (columns: ``by`` + KPI_COLUMNS)."""
    return compute_kpis(_connection(key), view.since, view.until, view.to_filters(), by)


@st.cache_data(show_spinner=False, max_entries=32)
def timeseries(key: StoreKey, view: View, window: str, by: tuple[str, ...] = ()) -> pl.DataFrame:
    """``analytics.metrics.compute_timeseries`` (window_start + ``by`` + KPI_COLUMNS)."""
    return compute_timeseries(_connection(key), view.since, view.until, window,
                              view.to_filters(), by)


@st.cache_data(show_spinner=False, max_entries=32)
def compare_views(key: StoreKey, baseline: View, candidate: View,
                  metrics: tuple[str, ...] = OVERVIEW_COMPARISONS) -> pl.DataFrame:
    """``analytics.compare.compare_all`` (b = candidate, a = baseline), one row per metric."""
    return compare_all(
        _connection(key),
        Slice(baseline.since, baseline.until, baseline.to_filters()),
        Slice(candidate.since, candidate.until, candidate.to_filters()),
        metrics=metrics,
    )


def pick_window(since: datetime | None, until: datetime | None) -> str:
    """A time-series window that gives roughly 24-200 points over the range."""
    if since is None or until is None:
        return "1h"
    span = until - since
    if span <= timedelta(hours=6):
        return "5m"
    if span <= timedelta(days=2):
        return "15m"
    if span <= timedelta(days=15):
        return "1h"
    if span <= timedelta(days=90):
        return "1d"
    return "1w"


# --------------------------------------------------------------------------- traces


@st.cache_data(show_spinner=False, max_entries=32)
def trace_metrics(key: StoreKey, view: View) -> pl.DataFrame:
    """``list_trace_metrics`` of the view with the filter dimensions as columns."""
    return list_trace_metrics(_connection(key), view.since, view.until, view.to_filters(),
                              by=TRACE_DIMENSIONS)


@st.cache_data(show_spinner=False, max_entries=32)
def list_traces(key: StoreKey, view: View, search: str = "", limit: int = 500) -> pl.DataFrame:
    """The view's traces, newest first, optionally those whose redacted input or output
    contains ``search`` (case-insensitive).

    Columns: start_time, trace_id, service_name, model_name, provider, prompt_version,
    status_code, has_fallback, cost_usd, duration_ms, groundedness, root_name, input_text.
    """
    frame = trace_metrics(key, view)
    if frame.is_empty():
        return _empty_trace_list()
    if not search.strip():
        # Only the newest ``limit`` traces need their texts.
        newest = frame.sort("start_time", descending=True).head(limit)
        return _trace_list(newest, _trace_texts(key, newest), limit)
    cursor = _connection(key).cursor()
    try:
        cursor.register("slice_traces", frame.select("trace_id").to_arrow())
        needle = "%" + search.strip().replace("%", r"\%").replace("_", r"\_") + "%"
        texts = cursor.sql(
            "SELECT t.trace_id, t.root_name, left(t.input_text, 300) AS input_text "
            "FROM traces t SEMI JOIN slice_traces s ON s.trace_id = t.trace_id "
            "WHERE t.input_text ILIKE ? OR t.output_text ILIKE ?",
            params=[needle, needle],
        ).pl()
    finally:
        cursor.close()
    return _trace_list(frame, texts, limit)


def _trace_texts(key: StoreKey, frame: pl.DataFrame) -> pl.DataFrame:
    """root_name and the first 300 characters of input_text (as ``traces``) of the traces
    of ``frame``, aggregated from the day partitions of their start times only."""
    lo: datetime = frame["start_time"].min()  # type: ignore[assignment]
    hi: datetime = frame["start_time"].max()  # type: ignore[assignment]
    source = spans_source_sql(_connection(key), lo, hi + timedelta(microseconds=1))
    cursor = _connection(key).cursor()
    try:
        cursor.register("slice_traces", frame.select("trace_id").to_arrow())
        return cursor.sql(
            "SELECT trace_id, "
            "arg_min(name, start_time) FILTER (WHERE parent_span_id IS NULL) AS root_name, "
            "left(coalesce(arg_min(input_text, start_time) FILTER (WHERE parent_span_id IS NULL), "
            "arg_min(input_text, start_time) FILTER (WHERE input_text IS NOT NULL)), 300) "
            f"AS input_text FROM {source} SEMI JOIN slice_traces USING (trace_id) "
            "GROUP BY trace_id",
        ).pl()
    finally:
        cursor.close()


def _trace_list(frame: pl.DataFrame, texts: pl.DataFrame, limit: int) -> pl.DataFrame:
    joined = frame.join(texts, on="trace_id", how="inner")
    return joined.select(
        "start_time", "trace_id", "service_name", "model_name", "provider", "prompt_version",
        "status_code", "has_fallback", "cost_usd", "duration_ms", "groundedness", "root_name",
        "input_text",
    ).sort("start_time", descending=True).head(limit)


def _empty_trace_list() -> pl.DataFrame:
    return pl.DataFrame(schema={
        "start_time": pl.Datetime("us"), "trace_id": pl.String, "service_name": pl.String,
        "model_name": pl.String, "provider": pl.String, "prompt_version": pl.String,
        "status_code": pl.String, "has_fallback": pl.Boolean, "cost_usd": pl.Float64,
        "duration_ms": pl.Float64, "groundedness": pl.Float64, "root_name": pl.String,
        "input_text": pl.String,
    })


@dataclass(frozen=True, slots=True)
class TraceDetail:
    """Everything the drill-down shows about one trace."""

    trace: dict[str, Any]
    spans: pl.DataFrame
    retrievals: pl.DataFrame
    evaluations: pl.DataFrame
    cluster: dict[str, Any] | None


@st.cache_data(show_spinner=False, max_entries=64)
def trace_detail(key: StoreKey, trace_id: str) -> TraceDetail | None:
    """A trace's row of ``traces``, its spans (by start time), retrieved documents,
    evaluations and failure cluster (last clusters run); None if the trace is unknown."""
    trace_id = trace_id.strip().lower()
    trace = _query(key, "SELECT * FROM traces WHERE trace_id = ?", [trace_id])
    if trace.is_empty():
        return None
    spans = _query(key, "SELECT * FROM spans WHERE trace_id = ? ORDER BY start_time, span_id",
                   [trace_id])
    retrievals = _query(key, "SELECT span_id, position, document_id, score, content "
                             "FROM retrievals WHERE trace_id = ? ORDER BY span_id, position",
                        [trace_id])
    evaluations = _query(key, "SELECT span_id, name, score, label, explanation, source, "
                              "created_at FROM evaluations WHERE trace_id = ? "
                              "ORDER BY name, created_at", [trace_id])
    cluster = None
    members = cluster_members(key)
    hit = members.filter(pl.col("trace_id") == trace_id)
    if not hit.is_empty():
        cluster_id = hit["cluster_id"][0]
        found = clusters(key).filter(pl.col("cluster_id") == cluster_id)
        cluster = found.row(0, named=True) if not found.is_empty() else {"cluster_id": cluster_id}
    return TraceDetail(trace.row(0, named=True), spans, retrievals, evaluations, cluster)


def parse_messages(text: str | None) -> list[dict[str, str]] | None:
    """A JSON array of ``{"role", "content"}`` as chat messages; None for plain text."""
    if not text or not text.lstrip().startswith("["):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if not isinstance(value, list) or not value:
        return None
    messages = []
    for item in value:
        if not isinstance(item, dict) or "content" not in item and "role" not in item:
            return None
        content = item.get("content")
        if not isinstance(content, str):
            content = json.dumps(content, ensure_ascii=False) if content is not None else ""
        messages.append({"role": str(item.get("role") or "assistant"), "content": content})
    return messages


# --------------------------------------------------------------------------- prompt versions


@st.cache_data(show_spinner=False, max_entries=16)
def prompt_versions(key: StoreKey, view: View) -> pl.DataFrame:
    """Prompt versions of the view's traces.

    Columns: prompt_version, services (list), first_seen, last_seen, num_traces.
    """
    frame = trace_metrics(key, view).filter(pl.col("prompt_version").is_not_null())
    if frame.is_empty():
        return pl.DataFrame(schema={"prompt_version": pl.String, "services": pl.List(pl.String),
                                    "first_seen": pl.Datetime("us"),
                                    "last_seen": pl.Datetime("us"), "num_traces": pl.UInt32})
    return (frame.group_by("prompt_version")
            .agg(pl.col("service_name").drop_nulls().unique().sort().alias("services"),
                 pl.col("start_time").min().alias("first_seen"),
                 pl.col("start_time").max().alias("last_seen"),
                 pl.len().alias("num_traces"))
            .sort("first_seen"))


@st.cache_data(show_spinner=False, max_entries=64)
def prompt_template(key: StoreKey, version: str) -> str | None:
    """The template of a prompt version (its most recent non-empty one), or None."""
    frame = _query(key, "SELECT arg_max(prompt_template, start_time) AS t FROM spans "
                        "WHERE prompt_version = ? AND prompt_template IS NOT NULL "
                        "AND prompt_template <> ''", [version])
    return frame["t"][0] if not frame.is_empty() else None


def with_filter(view: View, dim: str, value: str) -> View:
    """The view with ``dim`` restricted to ``value`` (replacing a sidebar filter on it)."""
    kept = tuple((d, v) for d, v in view.filters if d != dim)
    return View(view.since, view.until, tuple(sorted((*kept, (dim, (value,))))))


# --------------------------------------------------------------------------- failure modes


@st.cache_data(show_spinner=False, max_entries=4)
def clusters(key: StoreKey) -> pl.DataFrame:
    """``analytics.clusters.load_clusters`` of the last run (empty frame if none)."""
    if not key.clusters_run:
        return pl.DataFrame(schema=CLUSTERS_SCHEMA)
    return load_clusters(Path(key.path))


@st.cache_data(show_spinner=False, max_entries=4)
def cluster_members(key: StoreKey) -> pl.DataFrame:
    """``analytics.clusters.load_cluster_members`` of the last run (empty frame if none)."""
    if not key.clusters_run:
        return pl.DataFrame(schema=MEMBERS_SCHEMA)
    return load_cluster_members(Path(key.path))


# --------------------------------------------------------------------------- alerts


@st.cache_data(show_spinner=False, max_entries=16)
def alerts(key: StoreKey, state: str | None = None) -> pl.DataFrame:
    """Rows of the ``alerts`` view, latest first (optionally one state)."""
    where, params = ("WHERE state = ?", [state]) if state else ("", [])
    return _query(key, f"SELECT * FROM alerts {where} ORDER BY started_at DESC NULLS LAST", params)


# --------------------------------------------------------------------------- cost


@st.cache_data(show_spinner=False, max_entries=16)
def cost_by_user(key: StoreKey, view: View, limit: int = 50) -> pl.DataFrame:
    """Spend per user of the view's traces (``traces.user_id``), largest first.

    Columns: user_id, num_requests, cost_usd_total, cost_usd_per_request.
    """
    frame = trace_metrics(key, view)
    if frame.is_empty():
        return pl.DataFrame(schema={"user_id": pl.String, "num_requests": pl.UInt32,
                                    "cost_usd_total": pl.Float64,
                                    "cost_usd_per_request": pl.Float64})
    # traces.user_id (the first span's that has one), from the slice's day partitions only.
    source = spans_source_sql(
        _connection(key), *(to_utc_naive(t) if t is not None else None
                             for t in (view.since, view.until)))
    cursor = _connection(key).cursor()
    try:
        cursor.register("slice_traces", frame.select("trace_id", "cost_usd").to_arrow())
        return cursor.sql(
            "WITH u AS (SELECT trace_id, arg_min(user_id, start_time) AS user_id "
            f"FROM {source} SEMI JOIN slice_traces USING (trace_id) "
            "WHERE user_id IS NOT NULL GROUP BY trace_id) "
            "SELECT u.user_id, count(*) AS num_requests, sum(s.cost_usd) AS cost_usd_total, "
            "sum(s.cost_usd) / count(*) AS cost_usd_per_request "
            "FROM slice_traces s LEFT JOIN u USING (trace_id) "
            "GROUP BY u.user_id ORDER BY cost_usd_total DESC NULLS LAST LIMIT ?", params=[limit],
        ).pl()
    finally:
        cursor.close()


@st.cache_data(show_spinner=False, max_entries=16)
def unpriced_calls(key: StoreKey, view: View) -> pl.DataFrame:
    """LLM calls without a price (unknown model) in the view's traces, per model.

    Columns: model_name, provider, num_calls, prompt_tokens, completion_tokens,
    example_trace_id.
    """
    frame = trace_metrics(key, view).filter(pl.col("num_unpriced_llm_calls") > 0)
    if frame.is_empty():
        return pl.DataFrame(schema={"model_name": pl.String, "provider": pl.String,
                                    "num_calls": pl.Int64, "prompt_tokens": pl.Int64,
                                    "completion_tokens": pl.Int64,
                                    "example_trace_id": pl.String})
    cursor = _connection(key).cursor()
    try:
        cursor.register("slice_traces", frame.select("trace_id").to_arrow())
        return cursor.sql(
            "SELECT model_name, provider, count(*) AS num_calls, "
            "sum(prompt_tokens)::BIGINT AS prompt_tokens, "
            "sum(completion_tokens)::BIGINT AS completion_tokens, "
            "min(trace_id) AS example_trace_id "
            "FROM spans SEMI JOIN slice_traces USING (trace_id) "
            "WHERE span_kind = 'LLM' AND cost_usd IS NULL "
            "GROUP BY ALL ORDER BY num_calls DESC",
        ).pl()
    finally:
        cursor.close()
