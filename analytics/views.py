"""The SQL views of DESIGN.md over a consistent snapshot of the store.

``open_store(data_dir)`` returns a DuckDB connection with the views ``spans``, ``traces``,
``retrievals``, ``evaluations`` and ``alerts``.  Each table's snapshot is the file list of
its current Delta version, read by DuckDB directly (``read_parquet([...])``): a reader never
sees a half-written batch, never blocks the writer, and sees a span once.  Files removed by
compaction stay on disk for ``vacuum_retention_s`` so a snapshot remains readable.

Derived columns (the metric definitions of DESIGN.md live here so every screen agrees):
- ``spans.cost_usd``: the span's reported cost, else priced from ``model_prices`` (built by
  analytics.costs from genai-prices and the prices file); NULL when unpriced.
- ``spans.is_fallback``: marked on the span, or an LLM span that follows, in the same trace,
  an LLM span with status ERROR on another model or provider.
- ``traces``: one row per trace; root = the span without parent.  When the root never
  arrived, times are the envelope of the spans and status/root_name are NULL.
"""

from __future__ import annotations

import math
import re
import tempfile
import threading
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa
from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError

from collector.schema import (
    ALERTS_SCHEMA,
    ALERTS_TABLE,
    EVALUATIONS_SCHEMA,
    EVALUATIONS_TABLE,
    SPANS_SCHEMA,
    SPANS_TABLE,
    table_path,
)

VIEW_NAMES = ("spans", "traces", "retrievals", "evaluations", "alerts")

# Source order for a trace's groundedness: the first source that has a score wins.
GROUNDEDNESS_SOURCE_RANK = "CASE source WHEN 'human' THEN 0 WHEN 'llm_judge' THEN 1 WHEN 'span' THEN 2 ELSE 3 END"


def snapshot_files(data_dir: Path, table: str) -> tuple[list[str], int | None]:
    """Parquet files of a table's current version, and the version (None if no table)."""
    try:
        delta = DeltaTable(str(table_path(data_dir, table)))
    except TableNotFoundError:
        return [], None
    return delta.file_uris(), delta.version()


def _register_table(
    con: duckdb.DuckDBPyConnection, data_dir: Path, table: str, schema: pa.Schema
) -> list[str]:
    files, _version = snapshot_files(data_dir, table)
    name = f"_{table}_raw"
    if files:
        con.execute(
            f"CREATE OR REPLACE VIEW {name} AS SELECT * FROM read_parquet($files, "
            "hive_partitioning = true, union_by_name = true)".replace("$files", _sql_list(files))
        )
    else:
        # A real (empty) table, not a registered Arrow object: registrations are per
        # connection, and analytics queries run on cursors of this connection.
        con.register(f"{name}_arrow", schema.empty_table())
        con.execute(f"CREATE OR REPLACE TABLE {name}_empty AS SELECT * FROM {name}_arrow")
        con.unregister(f"{name}_arrow")
        con.execute(f"CREATE OR REPLACE VIEW {name} AS SELECT * FROM {name}_empty")
    return files


_DAY_IN_PATH = re.compile(r"(?:^|/)day=(\d{4}-\d{2}-\d{2})(?:/|$)")


def _register_span_files(con: duckdb.DuckDBPyConnection, files: list[str]) -> None:
    """``_span_files(path, day)``: the snapshot's span files and their day partition.

    ``day`` is NULL when the path has no ``day=`` partition (such a file is always read).
    """
    days: list[date | None] = []
    for path in files:
        match = _DAY_IN_PATH.search(path)
        days.append(date.fromisoformat(match.group(1)) if match else None)
    table = pa.table({"path": pa.array(files, pa.string()), "day": pa.array(days, pa.date32())})
    con.register("_span_files_arrow", table)
    con.execute("CREATE OR REPLACE TABLE _span_files AS SELECT * FROM _span_files_arrow")
    con.unregister("_span_files_arrow")


def _sql_list(files: list[str]) -> str:
    return "[" + ", ".join("'" + path.replace("'", "''") + "'" for path in files) + "]"


def open_store(data_dir: Path, prices_file: Path | None = None) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with the views of DESIGN.md over the store's current snapshot."""
    from analytics.costs import register_model_prices  # local: costs imports views' helpers

    con = duckdb.connect(":memory:")
    con.execute("SET TimeZone = 'UTC'")
    span_files = _register_table(con, data_dir, SPANS_TABLE, SPANS_SCHEMA)
    _register_span_files(con, span_files)
    _register_table(con, data_dir, EVALUATIONS_TABLE, EVALUATIONS_SCHEMA)
    _register_table(con, data_dir, ALERTS_TABLE, ALERTS_SCHEMA)
    register_model_prices(con, prices_file)
    con.execute(SPANS_VIEW)
    con.execute(RETRIEVALS_VIEW)
    con.execute(EVALUATIONS_VIEW)
    con.execute(TRACES_VIEW)
    con.execute("CREATE OR REPLACE VIEW alerts AS SELECT * FROM _alerts_raw")
    return con


# (trace_id, span_id) of the LLM spans that follow, in the same trace, an LLM span with status
# ERROR on another model or provider (DESIGN "fallback").  Reads lean columns of the raw spans.
INFERRED_FALLBACK_SQL = """
    SELECT DISTINCT later.trace_id, later.span_id
    FROM (SELECT trace_id, span_id, start_time, model_name, provider FROM _spans_raw
          WHERE span_kind = 'LLM' AND status_code = 'ERROR') AS failed
    JOIN (SELECT trace_id, span_id, start_time, model_name, provider FROM _spans_raw
          WHERE span_kind = 'LLM') AS later
      ON later.trace_id = failed.trace_id
     AND later.span_id <> failed.span_id
     AND later.start_time >= failed.start_time
     AND (later.model_name IS DISTINCT FROM failed.model_name
          OR later.provider IS DISTINCT FROM failed.provider)"""

# DESIGN "cost_usd" from tokens: uncached input, cached input and output tokens at the
# model's prices (``p`` = model_prices, ``s`` = the span); NULL when the model is unpriced.
# The one definition, used by the spans view and by the per-trace metrics table.
PRICED_COST_SQL = """CASE WHEN p.input_usd_per_token IS NOT NULL THEN
                   (coalesce(s.prompt_tokens, 0) - coalesce(s.cached_prompt_tokens, 0))
                       * p.input_usd_per_token
                   + coalesce(s.cached_prompt_tokens, 0)
                       * coalesce(p.cached_input_usd_per_token, p.input_usd_per_token)
                   + coalesce(s.completion_tokens, 0) * p.output_usd_per_token
               END"""

SPANS_VIEW = f"""
CREATE OR REPLACE VIEW spans AS
WITH base AS (
    SELECT s.* EXCLUDE (retrievals, evaluations, span_key, ingested_at, day),
           coalesce(
               s.cost_usd_reported,
               CASE WHEN s.span_kind = 'LLM' THEN {PRICED_COST_SQL} END
           ) AS cost_usd
    FROM _spans_raw s
    LEFT JOIN model_prices p
      ON p.model_name = s.model_name AND p.provider IS NOT DISTINCT FROM s.provider
),
inferred_fallback AS (
    SELECT DISTINCT later.trace_id, later.span_id
    FROM base AS failed
    JOIN base AS later
      ON later.trace_id = failed.trace_id
     AND later.span_kind = 'LLM'
     AND later.span_id <> failed.span_id
     AND later.start_time >= failed.start_time
     AND (later.model_name IS DISTINCT FROM failed.model_name
          OR later.provider IS DISTINCT FROM failed.provider)
    WHERE failed.span_kind = 'LLM' AND failed.status_code = 'ERROR'
)
SELECT b.trace_id, b.span_id, b.parent_span_id, b.name, b.span_kind, b.service_name,
       b.start_time, b.end_time, b.duration_ms, b.status_code, b.status_message,
       b.model_name, b.provider, b.prompt_version, b.prompt_template,
       b.prompt_tokens, b.completion_tokens, b.cached_prompt_tokens, b.total_tokens,
       b.cost_usd,
       (coalesce(b.fallback_marked, false) OR f.span_id IS NOT NULL) AS is_fallback,
       b.session_id, b.user_id, b.input_text, b.output_text, b.attributes,
       b.redacted_count
FROM base b
LEFT JOIN inferred_fallback f ON f.trace_id = b.trace_id AND f.span_id = b.span_id
"""

RETRIEVALS_VIEW = """
CREATE OR REPLACE VIEW retrievals AS
SELECT trace_id, span_id, doc.position AS position, doc.document_id AS document_id,
       doc.score AS score, doc.content AS content
FROM (SELECT trace_id, span_id, unnest(retrievals) AS doc
      FROM _spans_raw WHERE retrievals IS NOT NULL)
"""

EVALUATIONS_VIEW = """
CREATE OR REPLACE VIEW evaluations AS
SELECT trace_id, span_id, ev.name AS name, ev.score AS score, ev.label AS label,
       ev.explanation AS explanation, 'span' AS source, ingested_at AS created_at
FROM (SELECT trace_id, span_id, ingested_at, unnest(evaluations) AS ev
      FROM _spans_raw WHERE evaluations IS NOT NULL)
UNION ALL
SELECT trace_id, span_id, name, score, label, explanation, source, created_at
FROM _evaluations_raw
"""

TRACES_VIEW = f"""
CREATE OR REPLACE VIEW traces AS
WITH per_trace AS (
    SELECT
        trace_id,
        arg_min(service_name, start_time) FILTER (WHERE parent_span_id IS NULL) AS root_service,
        arg_min(service_name, start_time) AS any_service,
        arg_min(name, start_time) FILTER (WHERE parent_span_id IS NULL) AS root_name,
        min(start_time) FILTER (WHERE parent_span_id IS NULL) AS root_start,
        max(end_time) FILTER (WHERE parent_span_id IS NULL) AS root_end,
        max(duration_ms) FILTER (WHERE parent_span_id IS NULL) AS root_duration_ms,
        min(start_time) AS first_start,
        max(end_time) AS last_end,
        arg_min(status_code, start_time) FILTER (WHERE parent_span_id IS NULL) AS status_code,
        count(*) AS span_count,
        count(*) FILTER (WHERE span_kind = 'LLM') AS llm_calls,
        sum(prompt_tokens) FILTER (WHERE span_kind = 'LLM') AS prompt_tokens,
        sum(completion_tokens) FILTER (WHERE span_kind = 'LLM') AS completion_tokens,
        sum(total_tokens) FILTER (WHERE span_kind = 'LLM') AS total_tokens,
        sum(cost_usd) FILTER (WHERE span_kind = 'LLM') AS cost_usd,
        arg_max(model_name, end_time)
            FILTER (WHERE span_kind = 'LLM' AND status_code <> 'ERROR' AND model_name IS NOT NULL)
            AS model_name,
        arg_max(prompt_version, start_time) FILTER (WHERE prompt_version IS NOT NULL)
            AS prompt_version,
        bool_or(is_fallback) AS has_fallback,
        arg_min(session_id, start_time) FILTER (WHERE session_id IS NOT NULL) AS session_id,
        arg_min(user_id, start_time) FILTER (WHERE user_id IS NOT NULL) AS user_id,
        arg_min(input_text, start_time) FILTER (WHERE parent_span_id IS NULL) AS root_input,
        arg_max(output_text, end_time) FILTER (WHERE parent_span_id IS NULL) AS root_output,
        arg_min(input_text, start_time) FILTER (WHERE input_text IS NOT NULL) AS first_input,
        arg_max(output_text, end_time) FILTER (WHERE output_text IS NOT NULL) AS last_output
    FROM spans
    GROUP BY trace_id
),
grounded AS (
    SELECT trace_id, arg_min(score, ({GROUNDEDNESS_SOURCE_RANK}) * 1e12 - epoch(created_at))
           AS groundedness
    FROM evaluations
    WHERE name = 'groundedness' AND score IS NOT NULL
    GROUP BY trace_id
)
SELECT p.trace_id,
       coalesce(p.root_service, p.any_service) AS service_name,
       p.root_name,
       coalesce(p.root_start, p.first_start) AS start_time,
       coalesce(p.root_end, p.last_end) AS end_time,
       coalesce(p.root_duration_ms,
                epoch_ms(p.last_end) - epoch_ms(p.first_start))::DOUBLE AS duration_ms,
       p.status_code,
       p.span_count,
       p.llm_calls,
       p.prompt_tokens,
       p.completion_tokens,
       p.total_tokens,
       p.cost_usd,
       p.model_name,
       p.prompt_version,
       coalesce(p.has_fallback, false) AS has_fallback,
       -- greatest/least skip NULLs in DuckDB: keep an unscored trace NULL, not 0.
       CASE WHEN g.groundedness IS NOT NULL
            THEN least(greatest(g.groundedness, 0.0), 1.0) END AS groundedness,
       p.session_id,
       p.user_id,
       coalesce(p.root_input, p.first_input) AS input_text,
       coalesce(p.root_output, p.last_output) AS output_text
FROM per_trace p
LEFT JOIN grounded g USING (trace_id)
"""

# --- The lean per-trace metrics relation (internal; used by analytics.metrics) -------------
#
# ``_trace_metrics`` holds, per trace, exactly the values of ``traces`` that the metrics
# aggregate (same definitions as TRACES_VIEW/SPANS_VIEW), plus the trace's provider, cached
# prompt tokens and unpriced LLM calls.  It reads only id/time/numeric columns of the raw
# spans (no text, no nested columns except the evaluations' scores), prices LLM spans with
# ``model_prices``, and infers fallbacks only in traces that have a failed LLM span.  It is
# materialised once per connection (a connection is bound to one snapshot, so the table
# never goes stale), sorted by start_time so time filters skip row groups.

# The table lives in an attached in-memory database with compression (checkpointed after
# each build): several times smaller than a plain in-memory table, and as fast to scan.
TRACE_METRICS_DB = "_tracewatch_cache"
TRACE_METRICS_TABLE = f"{TRACE_METRICS_DB}._trace_metrics"
_TRACE_METRICS_RANGE = f"{TRACE_METRICS_DB}._trace_metrics_range"

TRACE_METRICS_SQL_TEMPLATE = f"""
WITH s AS (
    SELECT s.trace_id, s.parent_span_id, s.span_kind, s.service_name, s.start_time,
           s.end_time, s.duration_ms, s.status_code, s.model_name, s.provider,
           s.prompt_version, s.prompt_tokens, s.completion_tokens, s.cached_prompt_tokens,
           s.total_tokens, s.fallback_marked,
           CASE WHEN s.span_kind = 'LLM' THEN coalesce(
               s.cost_usd_reported, {PRICED_COST_SQL}) END AS llm_cost_usd
    FROM {{src}} s
    LEFT JOIN model_prices p
      ON s.span_kind = 'LLM' AND p.model_name = s.model_name
     AND p.provider IS NOT DISTINCT FROM s.provider
),
per_trace AS (
    SELECT
        trace_id,
        arg_min(service_name, start_time) FILTER (WHERE parent_span_id IS NULL) AS root_service,
        arg_min(service_name, start_time) AS any_service,
        min(start_time) FILTER (WHERE parent_span_id IS NULL) AS root_start,
        max(duration_ms) FILTER (WHERE parent_span_id IS NULL) AS root_duration_ms,
        min(start_time) AS first_start,
        max(end_time) AS last_end,
        arg_min(status_code, start_time) FILTER (WHERE parent_span_id IS NULL) AS status_code,
        count(*) FILTER (WHERE span_kind = 'LLM') AS llm_calls,
        sum(prompt_tokens) FILTER (WHERE span_kind = 'LLM') AS prompt_tokens,
        sum(completion_tokens) FILTER (WHERE span_kind = 'LLM') AS completion_tokens,
        sum(cached_prompt_tokens) FILTER (WHERE span_kind = 'LLM') AS cached_prompt_tokens,
        sum(total_tokens) FILTER (WHERE span_kind = 'LLM') AS total_tokens,
        sum(llm_cost_usd) AS cost_usd,
        count(*) FILTER (WHERE span_kind = 'LLM' AND llm_cost_usd IS NULL)
            AS num_unpriced_llm_calls,
        arg_max(model_name, end_time)
            FILTER (WHERE span_kind = 'LLM' AND status_code <> 'ERROR' AND model_name IS NOT NULL)
            AS model_name,
        arg_max(provider, end_time)
            FILTER (WHERE span_kind = 'LLM' AND status_code <> 'ERROR' AND model_name IS NOT NULL)
            AS provider,
        arg_max(prompt_version, start_time) FILTER (WHERE prompt_version IS NOT NULL)
            AS prompt_version,
        coalesce(bool_or(fallback_marked), false) AS fallback_marked
    FROM s
    GROUP BY trace_id
),
inferred AS (
    SELECT DISTINCT trace_id FROM ({INFERRED_FALLBACK_SQL.replace('_spans_raw', '{src}')})
),
evaluations_ AS (
    -- EVALUATIONS_VIEW over the same files (evaluations carried by spans) and the
    -- evaluations table (small: one row per scored trace and source).
    SELECT trace_id, ev.name AS name, ev.score AS score, 'span' AS source,
           ingested_at AS created_at
    FROM (SELECT trace_id, ingested_at, unnest(evaluations) AS ev
          FROM {{src}} WHERE evaluations IS NOT NULL)
    UNION ALL
    SELECT trace_id, name, score, source, created_at FROM _evaluations_raw
),
grounded AS (
    SELECT trace_id, arg_min(score, ({GROUNDEDNESS_SOURCE_RANK}) * 1e12 - epoch(created_at))
           AS groundedness
    FROM evaluations_
    WHERE name = 'groundedness' AND score IS NOT NULL
    GROUP BY trace_id
)
SELECT p.trace_id,
       coalesce(p.root_service, p.any_service) AS service_name,
       coalesce(p.root_start, p.first_start) AS start_time,
       coalesce(p.root_duration_ms,
                epoch_ms(p.last_end) - epoch_ms(p.first_start))::DOUBLE AS duration_ms,
       p.status_code,
       p.llm_calls,
       p.prompt_tokens::BIGINT AS prompt_tokens,
       p.completion_tokens::BIGINT AS completion_tokens,
       p.cached_prompt_tokens::BIGINT AS cached_prompt_tokens,
       p.total_tokens::BIGINT AS total_tokens,
       p.cost_usd,
       p.num_unpriced_llm_calls,
       p.model_name,
       p.provider,
       p.prompt_version,
       (p.fallback_marked OR i.trace_id IS NOT NULL) AS has_fallback,
       CASE WHEN g.groundedness IS NOT NULL
            THEN least(greatest(g.groundedness, 0.0), 1.0) END AS groundedness
FROM per_trace p
LEFT JOIN inferred i USING (trace_id)
LEFT JOIN grounded g USING (trace_id)
"""

# The whole store, or the day partitions of a time range plus this margin on each side: a
# trace is complete when its spans started within a day of its root (a trace that lasts
# longer than a day may be cut at the edge of a pruned range).
TRACE_DAY_MARGIN = timedelta(days=1)

TRACE_METRICS_SQL = TRACE_METRICS_SQL_TEMPLATE.replace("{src}", "_spans_raw")

# Spans aggregated at once when building the per-trace table, and DuckDB's memory limit
# while a larger store's table is built in chunks (see _build_trace_metrics).
TRACE_METRICS_CHUNK_SPANS = 2_000_000
TRACE_METRICS_BUILD_MEMORY = "700MB"

_TRACE_METRICS_LOCK = threading.Lock()


def trace_metrics_table(
    con: duckdb.DuckDBPyConnection,
    since: datetime | None = None,
    until: datetime | None = None,
) -> str:
    """Name of the per-trace metrics table of ``con``, complete for traces in ``[since, until)``.

    Built on first use from the day partitions of the range (with ``TRACE_DAY_MARGIN``);
    a later call for a range it does not cover rebuilds it for the union of both ranges.
    The table may hold traces outside the range: filter on ``start_time``.  Thread-safe:
    threads sharing a connection (the app) build it once.
    """
    lo = since.date() if since is not None else date.min
    hi = until.date() if until is not None else date.max
    with _TRACE_METRICS_LOCK:
        cursor = con.cursor()
        try:
            cursor.execute(f"ATTACH IF NOT EXISTS ':memory:' AS {TRACE_METRICS_DB} (COMPRESS)")
            covered = None
            if cursor.execute(
                "SELECT count(*) FROM duckdb_tables() WHERE database_name = ? "
                "AND table_name = '_trace_metrics_range'", [TRACE_METRICS_DB]
            ).fetchone()[0]:  # type: ignore[index]
                covered = cursor.execute(f"SELECT lo, hi FROM {_TRACE_METRICS_RANGE}").fetchone()
            if covered is not None:
                if covered[0] <= lo and hi <= covered[1]:
                    return TRACE_METRICS_TABLE
                lo, hi = min(lo, covered[0]), max(hi, covered[1])
            _build_trace_metrics(cursor, _pruned_spans(cursor, lo, hi))
            cursor.execute(f"CREATE OR REPLACE TABLE {_TRACE_METRICS_RANGE} AS "
                           "SELECT ?::DATE AS lo, ?::DATE AS hi", [lo, hi])
        finally:
            cursor.close()
    return TRACE_METRICS_TABLE


def _build_trace_metrics(cursor: duckdb.DuckDBPyConnection, source: str) -> None:
    """(Re)create the per-trace table from the spans of ``source``.

    Large stores are aggregated in chunks of traces (ranges of trace_id, so every trace is
    whole in one chunk) under a memory limit, which keeps the process within its memory
    budget at 10M spans.
    """
    found = cursor.execute(f"SELECT count(*) FROM {source}").fetchone()
    num_spans = int(found[0]) if found else 0
    chunks = max(1, math.ceil(num_spans / TRACE_METRICS_CHUNK_SPANS))
    if chunks == 1:
        _create_trace_metrics(cursor, source, chunks)
        return
    # A large build runs under a memory limit (DuckDB spills what does not fit to a private
    # temporary directory), so the process stays within its budget at 10M spans.
    settings = cursor.execute(
        "SELECT current_setting('memory_limit'), current_setting('temp_directory')").fetchone()
    limit, temp_dir = settings if settings is not None else ("", "")
    if temp_dir in ("", ".tmp"):  # DuckDB's default spills into the working directory
        cursor.execute("SET temp_directory = ?", [_spill_directory()])
    cursor.execute(f"SET memory_limit = '{TRACE_METRICS_BUILD_MEMORY}'")
    try:
        _create_trace_metrics(cursor, source, chunks)
    finally:
        if limit:
            cursor.execute(f"SET memory_limit = '{limit}'")
        else:
            cursor.execute("RESET memory_limit")


_SPILL_DIRECTORY: list[str] = []


def _spill_directory() -> str:
    """One private temporary directory per process for DuckDB to spill to."""
    if not _SPILL_DIRECTORY:
        _SPILL_DIRECTORY.append(tempfile.mkdtemp(prefix="tracewatch-duckdb-"))
    return _SPILL_DIRECTORY[0]


def _create_trace_metrics(cursor: duckdb.DuckDBPyConnection, source: str, chunks: int) -> None:
    if chunks == 1:
        cursor.execute(f"CREATE OR REPLACE TABLE {TRACE_METRICS_TABLE} AS "
                       f"{TRACE_METRICS_SQL_TEMPLATE.replace('{src}', source)} "
                       "ORDER BY start_time")
    else:
        # Ranges of trace_id (ids are random hex): a constant range filter is pushed into
        # the Parquet scan, so a chunk decodes the other columns of its own rows only.  The
        # ranges cover every string, so each trace is in exactly one chunk.
        bounds = [None, *(f"{i * 256 // chunks:02x}" for i in range(1, chunks)), None]
        for chunk in range(chunks):
            lo, hi = bounds[chunk], bounds[chunk + 1]
            conditions = [f"trace_id >= '{lo}'" if lo else "", f"trace_id < '{hi}'" if hi else ""]
            where = " AND ".join(c for c in conditions if c)
            part = f"(SELECT * FROM {source} WHERE {where})"
            sql = TRACE_METRICS_SQL_TEMPLATE.replace("{src}", part)
            if chunk == 0:
                cursor.execute(f"CREATE OR REPLACE TABLE {TRACE_METRICS_TABLE} AS {sql}")
            else:
                cursor.execute(f"INSERT INTO {TRACE_METRICS_TABLE} {sql}")
            cursor.execute(f"CHECKPOINT {TRACE_METRICS_DB}")  # compress what is built
    cursor.execute(f"CHECKPOINT {TRACE_METRICS_DB}")


def spans_source_sql(
    con: duckdb.DuckDBPyConnection,
    since: datetime | None = None,
    until: datetime | None = None,
) -> str:
    """A FROM item with the raw span rows (``_spans_raw`` columns) of the traces that
    started in ``[since, until)``: the day partitions of the range plus ``TRACE_DAY_MARGIN``.
    """
    cursor = con.cursor()
    try:
        return _pruned_spans(cursor, since.date() if since is not None else date.min,
                             until.date() if until is not None else date.max)
    finally:
        cursor.close()


def _pruned_spans(cursor: duckdb.DuckDBPyConnection, lo: date, hi: date) -> str:
    """A FROM item with the raw spans of the day partitions ``[lo - margin, hi + margin]``."""
    if lo == date.min and hi == date.max:
        return "_spans_raw"
    first = lo - TRACE_DAY_MARGIN if lo > date.min + TRACE_DAY_MARGIN else date.min
    last = hi + TRACE_DAY_MARGIN if hi < date.max - TRACE_DAY_MARGIN else date.max
    rows = cursor.execute(
        "SELECT path, day FROM _span_files ORDER BY path").fetchall()
    files = [path for path, day in rows if day is None or first <= day <= last]
    if len(files) == len(rows):
        return "_spans_raw"
    if not files:
        return "(SELECT * FROM _spans_raw WHERE false)"
    return ("read_parquet(" + _sql_list(files)
            + ", hive_partitioning = true, union_by_name = true)")
