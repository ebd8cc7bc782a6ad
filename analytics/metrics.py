"""KPIs and time series of DESIGN.md "Metric definitions", computed in DuckDB, returned as Polars.

Used by ``tracewatch metrics``, the app, the alerts and the notebook, so one figure never
differs between two screens.  Every metric is computed per trace, with the definitions of
the ``traces`` and ``spans`` views, then aggregated per group.  The per-trace values come
from ``analytics.views.trace_metrics_table``: a table of the connection built on first use
from the id/time/numeric columns of the day partitions the slice needs (no text), so later
queries aggregate one row per trace instead of re-reading the spans.  A trace belongs to a
time window by its ``start_time`` and to a group by its dimensions (see
``analytics.filters``).

Definitions (per group of traces; "rate" columns are NULL when their denominator is 0):

- ``num_requests``: traces.
- ``error_rate`` = ``num_errors / num_requests``; an error is a trace whose root span has
  status ERROR.  A trace whose root never arrived has no status: it is not an error.
- ``fallback_rate`` = ``num_fallback_requests / num_llm_requests``: among traces with at
  least one LLM call, the share with ``has_fallback``.
- ``groundedness_mean``: mean of ``traces.groundedness`` over scored traces (``num_scored``);
  ``grounded_rate``: share of scored traces with groundedness >= 0.5.
- ``cost_usd_total``: sum of ``traces.cost_usd`` (priced LLM spans only; NULL when nothing in
  the group is priced, never 0 for unknown models); ``cost_usd_per_request`` = total /
  num_requests; ``cost_usd_per_successful_request`` = total / (num_requests - num_errors),
  i.e. what failed requests cost is carried by the successful ones.
  ``num_unpriced_llm_calls``: LLM spans with NULL ``cost_usd`` (unknown model) — when it is
  not 0 the cost figures are lower bounds.
- tokens: sums of the LLM spans' prompt, completion, cached prompt and total tokens (unknown
  counts are skipped, not taken as 0; NULL when none is known) and the same divided by
  ``num_requests`` (``*_per_request``; every request counts, with or without LLM calls).
- latency: ``traces.duration_ms`` (the root span's duration; the span envelope when the root
  never arrived), exact ``quantile_cont`` p50 / p95 / p99 in ms.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime, timedelta

import duckdb
import polars as pl

from analytics.filters import (
    NO_FILTERS,
    Filters,
    column_name,
    dimension_sql,
    parse_window,
    attribute_keys,
    attribute_value_sql,
    quote_identifier,
    to_utc_naive,
    where_sql,
)
from analytics.views import spans_source_sql, trace_metrics_table

GROUNDED_THRESHOLD = 0.5

# Column lists of the frames below (after the window/dimension columns).
KPI_COLUMNS: tuple[str, ...] = (
    "num_requests", "num_errors", "error_rate",
    "num_llm_requests", "num_fallback_requests", "fallback_rate",
    "num_scored", "groundedness_mean", "grounded_rate",
    "cost_usd_total", "cost_usd_per_request", "cost_usd_per_successful_request",
    "num_unpriced_llm_calls",
    "prompt_tokens", "completion_tokens", "cached_prompt_tokens", "total_tokens",
    "prompt_tokens_per_request", "completion_tokens_per_request",
    "cached_prompt_tokens_per_request", "total_tokens_per_request",
    "latency_p50_ms", "latency_p95_ms", "latency_p99_ms",
)

TRACE_METRIC_COLUMNS: tuple[str, ...] = (
    "trace_id", "start_time", "duration_ms", "status_code", "is_error", "llm_calls",
    "has_fallback", "groundedness", "cost_usd", "num_unpriced_llm_calls",
    "prompt_tokens", "completion_tokens", "cached_prompt_tokens", "total_tokens",
)

_AGGREGATES = f"""
    count(*) AS num_requests,
    count(*) FILTER (WHERE status_code = 'ERROR') AS num_errors,
    count(*) FILTER (WHERE status_code = 'ERROR') / nullif(count(*), 0) AS error_rate,
    count(*) FILTER (WHERE llm_calls > 0) AS num_llm_requests,
    count(*) FILTER (WHERE llm_calls > 0 AND has_fallback) AS num_fallback_requests,
    count(*) FILTER (WHERE llm_calls > 0 AND has_fallback)
        / nullif(count(*) FILTER (WHERE llm_calls > 0), 0) AS fallback_rate,
    count(groundedness) AS num_scored,
    avg(groundedness) AS groundedness_mean,
    count(*) FILTER (WHERE groundedness >= {GROUNDED_THRESHOLD})
        / nullif(count(groundedness), 0) AS grounded_rate,
    sum(cost_usd) AS cost_usd_total,
    sum(cost_usd) / nullif(count(*), 0) AS cost_usd_per_request,
    sum(cost_usd) / nullif(count(*) FILTER (WHERE status_code IS DISTINCT FROM 'ERROR'), 0)
        AS cost_usd_per_successful_request,
    coalesce(sum(num_unpriced_llm_calls), 0)::BIGINT AS num_unpriced_llm_calls,
    sum(prompt_tokens)::BIGINT AS prompt_tokens,
    sum(completion_tokens)::BIGINT AS completion_tokens,
    sum(cached_prompt_tokens)::BIGINT AS cached_prompt_tokens,
    sum(total_tokens)::BIGINT AS total_tokens,
    sum(prompt_tokens) / nullif(count(*), 0) AS prompt_tokens_per_request,
    sum(completion_tokens) / nullif(count(*), 0) AS completion_tokens_per_request,
    sum(cached_prompt_tokens) / nullif(count(*), 0) AS cached_prompt_tokens_per_request,
    sum(total_tokens) / nullif(count(*), 0) AS total_tokens_per_request,
    quantile_cont(duration_ms, [0.5, 0.95, 0.99]) AS _latency_ms
"""
# One sort for the three exact quantiles (three scalar quantile_cont sort three times).
_LATENCY_COLUMNS = ("_latency_ms[1] AS latency_p50_ms, _latency_ms[2] AS latency_p95_ms, "
                    "_latency_ms[3] AS latency_p99_ms")


def _retarget(sql: str) -> str:
    """Dimension SQL of ``analytics.filters`` over the per-trace metrics table ``t``.

    ``filters`` names the trace's provider ``l.provider`` (alias of its LLM-spans
    aggregate); here it is a column of the per-trace table itself.
    """
    return re.sub(r"\bl\.provider\b", "t.provider", sql)


def _base_sql(
    con: duckdb.DuckDBPyConnection,
    since: datetime | None,
    until: datetime | None,
    filters: Filters,
    by: Sequence[str],
    window: timedelta | None = None,
) -> tuple[str, list[object], list[str]]:
    """``WITH ... base AS (...)``: one row per trace of the slice, with its dimensions.

    Returns the SQL, its parameters and the quoted output names of the group columns.
    """
    dims = list(dict.fromkeys(by))
    filter_dims = [dim for dim, _ in filters.dimensions]
    attr_dims = attribute_keys([*dims, *filter_dims])
    where, params = where_sql(since, until, filters)
    where = _retarget(where)
    group_cols: list[str] = []
    select_dims: list[str] = []
    if window is not None:
        seconds = int(window.total_seconds())
        select_dims.append(
            f"time_bucket(INTERVAL '{seconds} seconds', t.start_time) AS window_start"
        )
        group_cols.append("window_start")
    for dim in dims:
        name = quote_identifier(column_name(dim))
        select_dims.append(f"{_retarget(dimension_sql(dim))} AS {name}")
        group_cols.append(name)
    since = to_utc_naive(since) if since is not None else None
    until = to_utc_naive(until) if until is not None else None
    table = trace_metrics_table(con, since, until)
    ctes = joins = ""
    if attr_dims:
        # Attribute dimensions read the raw spans' attributes (root span first, else the
        # latest LLM span that carries the key), of the slice's day partitions only.
        source = spans_source_sql(con, since, until)
        llm_values = ", ".join(
            f"arg_max({attribute_value_sql(d)}, end_time) AS {quote_identifier(d)}"
            for d in attr_dims
        )
        root_values = ", ".join(
            f"arg_min({attribute_value_sql(d)}, start_time) AS {quote_identifier(d)}"
            for d in attr_dims
        )
        ctes = (f"llm AS (SELECT trace_id, {llm_values} FROM {source} "
                "WHERE span_kind = 'LLM' GROUP BY trace_id),\n"
                f"root AS (SELECT trace_id, {root_values} FROM {source} "
                "WHERE parent_span_id IS NULL GROUP BY trace_id),\n")
        joins = ("LEFT JOIN llm l ON l.trace_id = t.trace_id "
                 "LEFT JOIN root r ON r.trace_id = t.trace_id")
    sql = f"""
WITH {ctes}base AS (
    SELECT {''.join(d + ', ' for d in select_dims)}
           t.trace_id, t.start_time, t.duration_ms, t.status_code, t.llm_calls,
           t.has_fallback, t.groundedness, t.cost_usd, t.num_unpriced_llm_calls,
           t.prompt_tokens, t.completion_tokens, t.cached_prompt_tokens, t.total_tokens
    FROM {table} t
    {joins}
    WHERE {where}
)"""
    return sql, params, group_cols


def _to_polars(con: duckdb.DuckDBPyConnection, sql: str, params: list[object]) -> pl.DataFrame:
    # A cursor of its own: a caller's unfinished result on ``con`` does not block us, and
    # threads (the app) may share one connection.
    cursor = con.cursor()
    try:
        frame: pl.DataFrame = cursor.sql(sql, params=params).pl()
    finally:
        cursor.close()
    return frame


def _aggregate(con: duckdb.DuckDBPyConnection, base: str, params: list[object],
               group_cols: list[str]) -> pl.DataFrame:
    group = ", ".join(group_cols)
    inner = f"SELECT {group + ', ' if group else ''}{_AGGREGATES}\nFROM base"
    if group_cols:
        inner += f"\nGROUP BY {group}"
    sql = f"{base}\nSELECT * EXCLUDE (_latency_ms), {_LATENCY_COLUMNS}\nFROM ({inner}) AS agg"
    if group_cols:
        sql += f"\nORDER BY {', '.join(c + ' NULLS LAST' for c in group_cols)}"
    return _to_polars(con, sql, params)


def compute_kpis(
    con: duckdb.DuckDBPyConnection,
    since: datetime | None = None,
    until: datetime | None = None,
    filters: Filters = NO_FILTERS,
    by: Sequence[str] = (),
) -> pl.DataFrame:
    """The KPIs of the traces that started in ``[since, until)`` and match ``filters``.

    Columns: one per dimension of ``by`` (named as given, e.g. ``prompt_version``,
    ``attr:tenant``), then ``KPI_COLUMNS``: num_requests, num_errors, error_rate,
    num_llm_requests, num_fallback_requests, fallback_rate, num_scored, groundedness_mean,
    grounded_rate, cost_usd_total, cost_usd_per_request, cost_usd_per_successful_request,
    num_unpriced_llm_calls, prompt_tokens, completion_tokens, cached_prompt_tokens,
    total_tokens, {prompt,completion,cached_prompt,total}_tokens_per_request,
    latency_p50_ms, latency_p95_ms, latency_p99_ms.

    Without ``by`` there is exactly one row (num_requests 0 and NULL rates on an empty
    slice); with ``by``, one row per group that has traces, sorted, NULL groups last.

    >>> from analytics.views import open_store
    >>> import pathlib, tempfile
    >>> con = open_store(pathlib.Path(tempfile.mkdtemp()))
    >>> compute_kpis(con).select("num_requests", "error_rate").row(0)
    (0, None)
    """
    base, params, group_cols = _base_sql(con, since, until, filters, by)
    return _aggregate(con, base, params, group_cols)


def compute_timeseries(
    con: duckdb.DuckDBPyConnection,
    since: datetime | None = None,
    until: datetime | None = None,
    window: str | timedelta = "1h",
    filters: Filters = NO_FILTERS,
    by: Sequence[str] = (),
) -> pl.DataFrame:
    """The KPIs per time window (``1m`` .. ``1w``) and group.

    Columns: ``window_start`` (UTC datetime; windows are aligned by ``time_bucket``, weeks
    start on Monday), one per dimension of ``by``, then ``KPI_COLUMNS`` (see
    ``compute_kpis``).  Windows without traces are absent.  Sorted by window then groups.
    """
    width = parse_window(window) if isinstance(window, str) else window
    if not isinstance(window, str):
        parse_window(f"{int(width.total_seconds())}s")  # same range check
    base, params, group_cols = _base_sql(con, since, until, filters, by, window=width)
    return _aggregate(con, base, params, group_cols)


def list_trace_metrics(
    con: duckdb.DuckDBPyConnection,
    since: datetime | None = None,
    until: datetime | None = None,
    filters: Filters = NO_FILTERS,
    by: Sequence[str] = (),
) -> pl.DataFrame:
    """The per-trace values the KPIs aggregate (for comparisons and drill-downs).

    Columns: one per dimension of ``by``, then trace_id, start_time, duration_ms,
    status_code, is_error (root status ERROR), llm_calls, has_fallback, groundedness,
    cost_usd, num_unpriced_llm_calls, prompt_tokens, completion_tokens,
    cached_prompt_tokens, total_tokens.  Sorted by start_time, trace_id.
    """
    base, params, group_cols = _base_sql(con, since, until, filters, by)
    cols = [*group_cols, "trace_id", "start_time", "duration_ms", "status_code",
            "coalesce(status_code = 'ERROR', false) AS is_error", "llm_calls", "has_fallback",
            "groundedness", "cost_usd", "num_unpriced_llm_calls",
            "prompt_tokens::BIGINT AS prompt_tokens",
            "completion_tokens::BIGINT AS completion_tokens",
            "cached_prompt_tokens::BIGINT AS cached_prompt_tokens",
            "total_tokens::BIGINT AS total_tokens"]
    sql = f"{base}\nSELECT {', '.join(cols)} FROM base ORDER BY start_time, trace_id"
    return _to_polars(con, sql, params)
