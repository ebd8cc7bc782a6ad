"""Span rows as Arrow and as uncommitted Parquet files: the part of writing that the
pipeline workers do (collector.writer commits what they stage).

Kept apart from collector.writer so that worker processes load pyarrow only, not
deltalake and DuckDB (~50 MB a process).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute  # noqa: F401  (pa.compute)
import pyarrow.parquet as pq

from collector.records import Span
from collector.schema import PARTITION_COLUMN, SPANS_DICTIONARY_COLUMNS, SPANS_SCHEMA, span_key

_US_PER_DAY = 86_400_000_000
FILE_SCHEMA = SPANS_SCHEMA.remove(SPANS_SCHEMA.get_field_index(PARTITION_COLUMN))


@dataclass(frozen=True, slots=True)
class StagedFile:
    """A Parquet data file written into the table folder but not yet committed.

    Pipeline workers write these so that Parquet encoding runs in parallel and the rows never
    cross a pipe; the writer commits them (or drops the duplicates they hold).  A staged
    file that is never committed is invisible to readers and removed by vacuum.
    """

    relative_path: str  # e.g. "day=2026-11-12/part-<uuid>.parquet"
    day: str
    num_bytes: int
    num_rows: int
    keys: list[int]


def spans_to_arrow(spans: list[Span]) -> pa.Table:
    """Columns of SPANS_SCHEMA for the given spans, ``span_key`` computed from the ids."""
    keys = [span_key(span.trace_id, span.span_id) for span in spans]
    now_us = int(datetime.now(timezone.utc).timestamp() * 1_000_000)
    start_us: list[int] = []
    end_us: list[int] = []
    duration_ms: list[float] = []
    days: list[int] = []
    for span in spans:
        start = span.start_time_unix_nano // 1000 or (span.end_time_unix_nano // 1000) or now_us
        end = max(span.end_time_unix_nano // 1000, start)
        start_us.append(start)
        end_us.append(end)
        duration_ms.append((max(span.end_time_unix_nano - span.start_time_unix_nano, 0)) / 1e6
                           if span.start_time_unix_nano else 0.0)
        days.append(start // _US_PER_DAY)

    def column(name: str) -> list[Any]:
        return [getattr(span, name) for span in spans]

    columns: dict[str, Any] = {
        "trace_id": column("trace_id"),
        "span_id": column("span_id"),
        "span_key": keys,
        "parent_span_id": column("parent_span_id"),
        "name": column("name"),
        "span_kind": [span.span_kind.value for span in spans],
        "service_name": column("service_name"),
        "start_time": start_us,
        "end_time": end_us,
        "duration_ms": duration_ms,
        "status_code": column("status_code"),
        "status_message": column("status_message"),
        "model_name": column("model_name"),
        "provider": column("provider"),
        "prompt_version": column("prompt_version"),
        "prompt_template": column("prompt_template"),
        "prompt_tokens": column("prompt_tokens"),
        "completion_tokens": column("completion_tokens"),
        "cached_prompt_tokens": column("cached_prompt_tokens"),
        "total_tokens": column("total_tokens"),
        "cost_usd_reported": column("cost_usd_reported"),
        "fallback_marked": column("fallback_marked"),
        "fallback_from": column("fallback_from"),
        "session_id": column("session_id"),
        "user_id": column("user_id"),
        "input_text": column("input_text"),
        "output_text": column("output_text"),
        "attributes": [
            orjson.dumps(span.attributes, default=str).decode() if span.attributes else None
            for span in spans
        ],
        "retrievals": [
            [
                {
                    "position": doc.position,
                    "document_id": doc.document_id,
                    "score": doc.score,
                    "content": doc.content,
                }
                for doc in span.retrievals
            ]
            or None
            for span in spans
        ],
        "evaluations": [
            [
                {
                    "name": ev.name,
                    "score": ev.score,
                    "label": ev.label,
                    "explanation": ev.explanation,
                }
                for ev in span.evaluations
            ]
            or None
            for span in spans
        ],
        "redacted_count": column("redacted_count"),
        "text_withheld": column("text_withheld"),
        "ingested_at": [now_us] * len(spans),
        PARTITION_COLUMN: days,
    }
    arrays = [pa.array(columns[field.name], type=field.type) for field in SPANS_SCHEMA]
    return pa.Table.from_arrays(arrays, schema=SPANS_SCHEMA)


def stage_spans(table_dir: Path, table: pa.Table) -> list[StagedFile]:
    """Write ``table`` (SPANS_SCHEMA) as one Parquet file per day partition, uncommitted."""
    staging = StagingFiles(table_dir)
    try:
        staging.add(table)
    except BaseException:
        staging.abort()
        raise
    return staging.close()


@dataclass(slots=True)
class _OpenFile:
    relative_path: str
    writer: pq.ParquetWriter
    num_rows: int = 0
    keys: list[int] = field(default_factory=list)


class StagingFiles:
    """Uncommitted Parquet files being written, one per day partition; each ``add`` becomes
    a row group, so a worker holds one request's rows at a time, not a whole group's."""

    def __init__(self, table_dir: Path) -> None:
        self.table_dir = table_dir
        self._open: dict[str, _OpenFile] = {}

    def add(self, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        days = table.column(PARTITION_COLUMN)
        distinct_days = sorted(set(days.to_pylist()))
        for day in distinct_days:
            part = table if len(distinct_days) == 1 else table.filter(
                pa.compute.equal(days, pa.scalar(day, pa.date32())))
            staged = self._file(day.isoformat())
            staged.writer.write_table(part.drop_columns([PARTITION_COLUMN]))
            staged.num_rows += part.num_rows
            staged.keys.extend(part.column("span_key").to_pylist())

    def _file(self, day_text: str) -> _OpenFile:
        staged = self._open.get(day_text)
        if staged is None:
            relative = f"{PARTITION_COLUMN}={day_text}/part-{uuid.uuid4().hex}-c000.snappy.parquet"
            path = self.table_dir / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            staged = self._open[day_text] = _OpenFile(
                relative, pq.ParquetWriter(path, FILE_SCHEMA, compression="snappy",
                                           use_dictionary=SPANS_DICTIONARY_COLUMNS))
        return staged

    def close(self) -> list[StagedFile]:
        files = []
        for day_text, staged in sorted(self._open.items()):
            staged.writer.close()
            size = (self.table_dir / staged.relative_path).stat().st_size
            files.append(StagedFile(staged.relative_path, day_text, size, staged.num_rows,
                                    staged.keys))
        self._open.clear()
        return files

    def abort(self) -> None:
        """Close and delete the files (nothing refers to them)."""
        for staged in self._open.values():
            staged.writer.close()
            (self.table_dir / staged.relative_path).unlink(missing_ok=True)
        self._open.clear()
