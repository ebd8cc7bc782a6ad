"""Span rows as Arrow and as uncommitted Parquet files: the part of writing that the
pipeline workers do (collector.writer commits what they stage).

Kept apart from collector.writer so that worker processes load pyarrow only, not
deltalake and DuckDB (~50 MB a process); spans are split by day in Python, so workers do
not load pyarrow.compute either (3.4 MB a process).
"""

from __future__ import annotations

import uuid
from array import array
from dataclasses import dataclass, field
from collections.abc import Sequence
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from collector.records import Span
from collector.schema import PARTITION_COLUMN, SPANS_DICTIONARY_COLUMNS, SPANS_SCHEMA, span_key

_US_PER_DAY = 86_400_000_000
_EPOCH = date(1970, 1, 1)
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
    # span_key of each row, as 64-bit integers: 8 bytes a span through the pipe and in the
    # writer (a list of Python ints took ~40, unpickled ~20,000 times a second).
    keys: array[int]


SpanTimes = tuple[int, int, float]  # start_us, end_us, duration_ms


def spans_to_arrow(spans: Sequence[Span], keys: Sequence[int], times: Sequence[SpanTimes],
                   now_us: int) -> pa.Table:
    """The FILE_SCHEMA columns (SPANS_SCHEMA but the day partition) of ``spans``.

    ``keys`` and ``times``: their ``span_key`` values and ``span_times``.  Each column's
    Python values are built just before they become an Arrow array and dropped after, so
    only one column of them lives at a time (attributes JSON, retrieved documents: new
    objects per span)."""
    arrays = []
    for schema_field in FILE_SCHEMA:
        arrays.append(pa.array(_column(schema_field.name, spans, keys, times, now_us),
                               type=schema_field.type))
    return pa.Table.from_arrays(arrays, schema=FILE_SCHEMA)


def span_times(span: Span, now_us: int) -> SpanTimes:
    """(start_us, end_us, duration_ms): a span without a start time starts at its end, or
    when it was ingested; an end before the start is the start."""
    start = span.start_time_unix_nano // 1000 or (span.end_time_unix_nano // 1000) or now_us
    end = max(span.end_time_unix_nano // 1000, start)
    duration_ms = ((max(span.end_time_unix_nano - span.start_time_unix_nano, 0)) / 1e6
                   if span.start_time_unix_nano else 0.0)
    return start, end, duration_ms


def _column(name: str, spans: Sequence[Span], keys: Sequence[int],
            times: Sequence[SpanTimes], now_us: int) -> list[Any]:
    if name == "span_key":
        return list(keys)
    if name == "span_kind":
        return [span.span_kind.value for span in spans]
    if name in _TIME_COLUMNS:
        position = _TIME_COLUMNS[name]
        return [each[position] for each in times]
    if name == "attributes":
        return [orjson.dumps(span.attributes, default=str).decode() if span.attributes else None
                for span in spans]
    if name == "retrievals":
        return [[{"position": doc.position, "document_id": doc.document_id, "score": doc.score,
                  "content": doc.content} for doc in span.retrievals] or None
                for span in spans]
    if name == "evaluations":
        return [[{"name": ev.name, "score": ev.score, "label": ev.label,
                  "explanation": ev.explanation} for ev in span.evaluations] or None
                for span in spans]
    if name == "ingested_at":
        return [now_us] * len(spans)
    return [getattr(span, name) for span in spans]


_TIME_COLUMNS = {"start_time": 0, "end_time": 1, "duration_ms": 2}


def group_spans_by_day(spans: Sequence[Span], now_us: int
                       ) -> dict[str, tuple[list[Span], list[SpanTimes]]]:
    """The spans of each day partition (UTC day of the start time, ISO text), in order,
    with their ``span_times``."""
    days: dict[int, tuple[list[Span], list[SpanTimes]]] = {}
    for span in spans:
        times = span_times(span, now_us)
        day = times[0] // _US_PER_DAY
        group = days.get(day)
        if group is None:
            group = days[day] = ([], [])
        group[0].append(span)
        group[1].append(times)
    return {(_EPOCH + timedelta(days=day)).isoformat(): group for day, group in days.items()}


def now_us() -> int:
    return int(datetime.now(timezone.utc).timestamp() * 1_000_000)


def stage_spans(table_dir: Path, spans: Sequence[Span]) -> list[StagedFile]:
    """Write ``spans`` as one Parquet file per day partition, uncommitted."""
    staging = StagingFiles(table_dir)
    try:
        staging.add(spans)
    except BaseException:
        staging.abort()
        raise
    return staging.close()


def copy_rows(source: Path, target: Path, keep: Sequence[bool]) -> int:
    """Write the rows of the staged file ``source`` whose ``keep`` flag is set to a new
    staged file ``target``; returns its size in bytes.

    For files that hold spans already stored (client retries): row group by row group, so
    memory stays near one request's rows, and with slices rather than a filter, which
    would load pyarrow.compute into the writer's process for good."""
    with pq.ParquetFile(source) as reader, pq.ParquetWriter(
            target, FILE_SCHEMA, compression="snappy",
            use_dictionary=SPANS_DICTIONARY_COLUMNS) as writer:
        offset = 0
        for index in range(reader.num_row_groups):
            group = reader.read_row_group(index, use_threads=False)
            flags = keep[offset : offset + group.num_rows]
            offset += group.num_rows
            parts = [group.slice(start, length) for start, length in _runs(flags)]
            if parts:
                writer.write_table(pa.concat_tables(parts))
    return target.stat().st_size


def _runs(flags: Sequence[bool]) -> list[tuple[int, int]]:
    """(start, length) of each run of true flags."""
    runs: list[tuple[int, int]] = []
    start = -1
    for position, flag in enumerate(flags):
        if flag and start < 0:
            start = position
        elif not flag and start >= 0:
            runs.append((start, position - start))
            start = -1
    if start >= 0:
        runs.append((start, len(flags) - start))
    return runs


@dataclass(slots=True)
class _OpenFile:
    relative_path: str
    writer: pq.ParquetWriter
    num_rows: int = 0
    keys: array[int] = field(default_factory=lambda: array("q"))


class StagingFiles:
    """Uncommitted Parquet files being written, one per day partition; each ``add`` becomes
    a row group, so a worker holds one request's rows at a time, not a whole group's."""

    def __init__(self, table_dir: Path) -> None:
        self.table_dir = table_dir
        self._open: dict[str, _OpenFile] = {}

    def add(self, spans: Sequence[Span]) -> None:
        """Append ``spans`` (one request's) as a row group of each day's file."""
        ingested_us = now_us()
        for day_text, (day_spans, times) in group_spans_by_day(spans, ingested_us).items():
            keys = [span_key(span.trace_id, span.span_id) for span in day_spans]
            staged = self._file(day_text)
            staged.writer.write_table(spans_to_arrow(day_spans, keys, times, ingested_us))
            staged.num_rows += len(day_spans)
            staged.keys.extend(keys)

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
