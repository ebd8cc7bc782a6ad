"""The per-trace frame the evaluator works on, loaded once per evaluation or replay.

``load_trace_frame(con, since, until)`` returns one row per trace that started in
``[since, until)``, with the values of ``analytics.metrics.list_trace_metrics`` (so an alert's
figure is the figure of ``tracewatch metrics``) plus what alerts need besides:

- ``requested_model`` / ``requested_provider``: the model and provider of the trace's
  *first* LLM call.  ``model_name`` / ``provider`` (analytics' dimensions) name the last
  successful call, i.e. the fallback target after a fallback; the cause of a fallback
  spike is the provider that was asked first, so causes use the requested ones.
- ``failed_provider``: the provider of the trace's first failed LLM call (NULL if none).
- ``prompt_length_chars``: length of the trace's input text (input drift, PSI).

Columns: trace_id, start_time, service_name, model_name, provider, prompt_version,
requested_model, requested_provider, failed_provider, duration_ms, is_error, has_llm, has_fallback,
is_scored, is_grounded, cost_usd, prompt_tokens, completion_tokens, total_tokens,
prompt_length_chars, start_ns (Int64, for fast windowing).
"""

from __future__ import annotations

from datetime import datetime

import duckdb
import polars as pl

from analytics.metrics import GROUNDED_THRESHOLD, list_trace_metrics

DIMENSIONS = ("service_name", "model_name", "provider", "prompt_version")
CAUSE_DIMENSIONS = ("service_name", "prompt_version", "requested_model", "requested_provider")

_EXTRA_SQL = """
SELECT trace_id,
       arg_min(model_name, start_time) FILTER (WHERE span_kind = 'LLM') AS requested_model,
       arg_min(provider, start_time) FILTER (WHERE span_kind = 'LLM') AS requested_provider,
       arg_min(provider, start_time)
           FILTER (WHERE span_kind = 'LLM' AND status_code = 'ERROR') AS failed_provider,
       length(arg_min(input_text, start_time) FILTER (WHERE parent_span_id IS NULL))::DOUBLE
           AS prompt_length_chars
FROM spans
WHERE trace_id IN (SELECT trace_id FROM traces WHERE start_time >= ? AND start_time < ?)
GROUP BY trace_id
"""


def load_trace_frame(con: duckdb.DuckDBPyConnection, since: datetime,
                     until: datetime) -> pl.DataFrame:
    """One row per trace started in ``[since, until)`` (naive UTC); columns: see module."""
    metrics = list_trace_metrics(con, since, until, by=list(DIMENSIONS))
    cursor = con.cursor()
    try:
        extra = cursor.sql(_EXTRA_SQL, params=[since, until]).pl()
    finally:
        cursor.close()
    if extra.is_empty():
        extra = pl.DataFrame(schema={"trace_id": pl.String, "requested_model": pl.String,
                                     "requested_provider": pl.String,
                                     "failed_provider": pl.String,
                                     "prompt_length_chars": pl.Float64})
    frame = metrics.join(extra, on="trace_id", how="left")
    return frame.select(
        "trace_id",
        pl.col("start_time").cast(pl.Datetime("us")),
        *DIMENSIONS,
        "requested_model",
        "requested_provider",
        "failed_provider",
        pl.col("duration_ms").cast(pl.Float64),
        pl.col("is_error").cast(pl.Boolean),
        (pl.col("llm_calls").fill_null(0) > 0).alias("has_llm"),
        pl.col("has_fallback").fill_null(False),
        pl.col("groundedness").is_not_null().alias("is_scored"),
        (pl.col("groundedness") >= GROUNDED_THRESHOLD).fill_null(False).alias("is_grounded"),
        pl.col("cost_usd").cast(pl.Float64),
        *(pl.col(c).cast(pl.Float64) for c in
          ("prompt_tokens", "completion_tokens", "total_tokens", "prompt_length_chars")),
        pl.col("start_time").cast(pl.Datetime("ns")).dt.epoch("ns").alias("start_ns"),
    ).sort("start_ns")
