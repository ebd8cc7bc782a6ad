"""Select the traces worth grouping into failure modes, with the redacted fields that describe them.

Contract:
- ``select_failing_traces(con, since, until, filters, settings)`` reads the views of DESIGN.md
  (``spans``, ``traces``, ``retrievals``, ``evaluations``) and returns one row per selected
  trace.  A trace is selected when at least one reason holds:
  * ``error``: any span of the trace has status ERROR (the root or a child);
  * ``fallback``: ``traces.has_fallback``;
  * ``low_groundedness``: the trace's groundedness evaluation (same source order as the
    ``traces`` view: human, llm_judge, span, builtin) is below ``settings.low_groundedness``;
  * ``refusal``: an LLM or root output reads as a refusal (``REFUSAL_PATTERN``);
  * ``schema_invalid``: a span says ``schema.valid = false``;
  * ``negative_feedback``: an evaluation labelled negative (``NEGATIVE_LABELS``), or one whose
    name mentions feedback/rating/thumbs with a score below 0.5;
  * ``empty_retrieval``: a RETRIEVER span returned no document;
  * ``low_retrieval_score``: the best retrieved document scored below
    ``settings.low_retrieval_score``;
  * ``tool_loop``: one tool span name repeated ``settings.tool_loop_calls`` times or more.
  Only traces starting in ``[since, until)`` are read.  ``filters`` restricts further by
  equality on ``service_name``, ``model_name``, ``prompt_version`` or ``root_name``; an unknown
  filter column raises ``AnalyticsError``.
- Groundedness is read from the ``evaluations`` view, not from ``traces.groundedness``, so a
  trace without a score is never "low".
- Only redacted columns are read (status messages, span names and kinds, output text, the
  ``error.type`` / finish-reason attributes), never raw payloads.
- An empty selection is an empty frame with the same columns, not an error.

Columns of the returned frame: trace_id, start_time, day (date), service_name, model_name,
prompt_version, reasons (list[str]), leaf_errors (list[str]: "kind|name|error type|message" of
the ERROR spans that have no ERROR child), root_error (str | None), tool_names (list[str]),
finish_reasons (list[str]), output_snippet (str | None), top_retrieval_score (float | None),
num_documents (int | None), uncited_reference (bool).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

import duckdb
import polars as pl

from analytics.errors import AnalyticsError
from analytics.views import GROUNDEDNESS_SOURCE_RANK

FILTER_COLUMNS = ("service_name", "model_name", "prompt_version", "root_name")

# A refusal apologises and declines, or says it cannot / will not help; case-insensitive.
REFUSAL_PATTERN = (
    r"(?i)(i['’]?m sorry,? but|i (can['’]?t|cannot|won['’]?t be able to|am not able to)"
    r" (help|assist|do|share|provide)|i['’]?m (not able|unable) to (help|assist|do|share|provide)"
    r"|not something i['’]?m able to do|unfortunately,? i can['’]?t)"
)
NEGATIVE_LABELS = ("negative", "thumbs_down", "thumbs-down", "thumbsdown", "bad", "unhelpful",
                   "incorrect", "dislike", "down")
OUTPUT_SNIPPET_CHARS = 240
# A retrieved document id shape: letters, a separator, digits (kb-1015, doc_42).
_DOC_ID_SHAPE = re.compile(r"^([A-Za-z]{1,12}[-_])\d{2,}$")


@dataclass(frozen=True, slots=True)
class SelectionSettings:
    """Thresholds of the selection (set by developers; see the module docstring)."""

    low_groundedness: float = 0.5
    low_retrieval_score: float = 0.5
    tool_loop_calls: int = 5


SELECTED_SCHEMA: dict[str, pl.DataType | type[pl.DataType]] = {
    "trace_id": pl.String, "start_time": pl.Datetime("us"), "day": pl.Date,
    "service_name": pl.String, "model_name": pl.String, "prompt_version": pl.String,
    "reasons": pl.List(pl.String), "leaf_errors": pl.List(pl.String), "root_error": pl.String,
    "tool_names": pl.List(pl.String), "finish_reasons": pl.List(pl.String),
    "output_snippet": pl.String, "top_retrieval_score": pl.Float64, "num_documents": pl.Int64,
    "uncited_reference": pl.Boolean,
}


def _filter_sql(filters: Mapping[str, str] | None) -> tuple[str, list[object]]:
    if not filters:
        return "", []
    clauses: list[str] = []
    params: list[object] = []
    for column, value in filters.items():
        if column not in FILTER_COLUMNS:
            raise AnalyticsError(
                f"unknown cluster filter {column!r}; use one of {', '.join(FILTER_COLUMNS)}")
        clauses.append(f"t.{column} = ?")
        params.append(value)
    return " AND " + " AND ".join(clauses), params


def _sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _selection_sql(settings: SelectionSettings, extra_where: str) -> str:
    neg_labels = ", ".join(_sql_string(label) for label in NEGATIVE_LABELS)
    finish = ("coalesce(json_extract_string(s.attributes, '$.\"gen_ai.response.finish_reasons\"[0]'), "
              "json_extract_string(s.attributes, '$.\"llm.response.finish_reason\"'))")
    return f"""
WITH window_traces AS (
    SELECT t.* FROM traces t
    WHERE t.start_time >= ? AND t.start_time < ? {extra_where}
),
span_facts AS (
    SELECT s.trace_id,
           bool_or(s.status_code = 'ERROR') AS any_error,
           bool_or(json_extract_string(s.attributes, '$."schema.valid"') = 'false') AS schema_invalid,
           bool_or(s.output_text IS NOT NULL AND (s.span_kind = 'LLM' OR s.parent_span_id IS NULL)
                   AND regexp_matches(left(s.output_text, 400), {_sql_string(REFUSAL_PATTERN)})) AS refusal,
           bool_or(s.span_kind = 'RETRIEVER') AS has_retriever,
           arg_min(s.model_name, s.start_time) FILTER (WHERE s.model_name IS NOT NULL) AS first_model,
           max(s.status_message) FILTER (WHERE s.parent_span_id IS NULL AND s.status_code = 'ERROR')
               AS root_error,
           list(DISTINCT s.name) FILTER (WHERE s.span_kind = 'TOOL') AS tool_names,
           list(DISTINCT {finish}) FILTER (WHERE s.span_kind = 'LLM' AND {finish} IS NOT NULL)
               AS finish_reasons
    FROM spans s JOIN window_traces w USING (trace_id)
    GROUP BY s.trace_id
),
tool_loops AS (
    SELECT trace_id FROM (
        SELECT s.trace_id, s.name, count(*) AS n FROM spans s JOIN window_traces w USING (trace_id)
        WHERE s.span_kind = 'TOOL' GROUP BY ALL)
    GROUP BY trace_id HAVING max(n) >= {int(settings.tool_loop_calls)}
),
leaf_errors AS (
    SELECT e.trace_id,
           list(e.span_kind || '|' || e.name || '|'
                || coalesce(json_extract_string(e.attributes, '$."error.type"'), '')
                || '|' || coalesce(e.status_message, '') ORDER BY e.start_time) AS leaf_errors
    FROM spans e JOIN window_traces w USING (trace_id)
    WHERE e.status_code = 'ERROR'
      AND NOT EXISTS (SELECT 1 FROM spans c WHERE c.trace_id = e.trace_id
                      AND c.parent_span_id = e.span_id AND c.status_code = 'ERROR')
    GROUP BY e.trace_id
),
docs AS (
    SELECT r.trace_id, max(r.score) AS top_score, count(r.document_id) AS num_documents,
           list(r.document_id) AS document_ids
    FROM retrievals r JOIN window_traces w USING (trace_id) GROUP BY r.trace_id
),
grounded AS (
    SELECT trace_id,
           arg_min(score, ({GROUNDEDNESS_SOURCE_RANK}) * 1e12 - epoch(created_at)) AS groundedness
    FROM evaluations WHERE name = 'groundedness' AND score IS NOT NULL GROUP BY trace_id
),
feedback AS (
    SELECT DISTINCT trace_id FROM evaluations
    WHERE name <> 'groundedness'
      AND (lower(coalesce(label, '')) IN ({neg_labels})
           OR (regexp_matches(lower(name), 'feedback|rating|thumbs') AND score < 0.5))
)
SELECT w.trace_id, w.start_time, CAST(w.start_time AS DATE) AS day, w.service_name,
       coalesce(w.model_name, f.first_model) AS model_name, w.prompt_version,
       list_filter([
           CASE WHEN coalesce(f.any_error, false) THEN 'error' END,
           CASE WHEN w.has_fallback THEN 'fallback' END,
           CASE WHEN g.groundedness < {float(settings.low_groundedness)} THEN 'low_groundedness' END,
           CASE WHEN coalesce(f.refusal, false) THEN 'refusal' END,
           CASE WHEN coalesce(f.schema_invalid, false) THEN 'schema_invalid' END,
           CASE WHEN fb.trace_id IS NOT NULL THEN 'negative_feedback' END,
           CASE WHEN f.has_retriever AND coalesce(d.num_documents, 0) = 0 THEN 'empty_retrieval' END,
           CASE WHEN d.top_score < {float(settings.low_retrieval_score)} THEN 'low_retrieval_score' END,
           CASE WHEN tl.trace_id IS NOT NULL THEN 'tool_loop' END
       ], lambda x: x IS NOT NULL) AS reasons,
       coalesce(le.leaf_errors, []) AS leaf_errors,
       f.root_error,
       coalesce(f.tool_names, []) AS tool_names,
       coalesce(f.finish_reasons, []) AS finish_reasons,
       left(w.output_text, {OUTPUT_SNIPPET_CHARS}) AS output_snippet,
       d.top_score AS top_retrieval_score,
       CASE WHEN f.has_retriever THEN coalesce(d.num_documents, 0) END AS num_documents,
       d.document_ids,
       w.output_text AS full_output
FROM window_traces w
LEFT JOIN span_facts f USING (trace_id)
LEFT JOIN leaf_errors le USING (trace_id)
LEFT JOIN docs d USING (trace_id)
LEFT JOIN grounded g USING (trace_id)
LEFT JOIN feedback fb USING (trace_id)
LEFT JOIN tool_loops tl USING (trace_id)
"""


def _to_polars(relation: duckdb.DuckDBPyRelation) -> pl.DataFrame:
    frame = pl.from_arrow(relation.to_arrow_table())
    assert isinstance(frame, pl.DataFrame)
    return frame


def _uncited_reference(output: str | None, document_ids: list[str] | None) -> bool:
    """True when the answer names a document id shaped like the retrieved ones but not retrieved."""
    if not output or not document_ids:
        return False
    prefixes = {m.group(1) for d in document_ids if d and (m := _DOC_ID_SHAPE.match(d))}
    if not prefixes:
        return False
    pattern = re.compile(r"\b(?:" + "|".join(re.escape(p) for p in sorted(prefixes)) + r")\d{2,}\b")
    retrieved = set(document_ids)
    return any(found not in retrieved for found in pattern.findall(output))


def select_failing_traces(
    con: duckdb.DuckDBPyConnection,
    since: datetime,
    until: datetime,
    filters: Mapping[str, str] | None = None,
    settings: SelectionSettings | None = None,
) -> pl.DataFrame:
    """Traces in ``[since, until)`` worth grouping, one row each (columns in the module docstring)."""
    settings = settings or SelectionSettings()
    extra_where, params = _filter_sql(filters)
    sql = (f"SELECT * FROM ({_selection_sql(settings, extra_where)}) WHERE len(reasons) > 0 "
           "ORDER BY start_time, trace_id")
    frame = _to_polars(con.sql(sql, params=[since, until, *params]))
    if frame.height == 0:
        return pl.DataFrame(schema=SELECTED_SCHEMA)
    uncited = [_uncited_reference(out, ids) for out, ids in
               zip(frame["full_output"].to_list(), frame["document_ids"].to_list())]
    frame = frame.with_columns(pl.Series("uncited_reference", uncited, dtype=pl.Boolean))
    return frame.select([pl.col(name).cast(dtype) for name, dtype in SELECTED_SCHEMA.items()])


def count_traffic(con: duckdb.DuckDBPyConnection, since: datetime, until: datetime,
                  filters: Mapping[str, str] | None = None) -> pl.DataFrame:
    """All traces of the window, counted by day and slice: what a cluster's share is measured against.

    Columns: day (date), service_name, model_name, prompt_version, num_traces.
    """
    extra_where, params = _filter_sql(filters)
    return _to_polars(con.sql(
        f"""SELECT CAST(t.start_time AS DATE) AS day, t.service_name, t.model_name, t.prompt_version,
                   count(*) AS num_traces
            FROM traces t WHERE t.start_time >= ? AND t.start_time < ? {extra_where}
            GROUP BY ALL""",
        params=[since, until, *params],
    ))
