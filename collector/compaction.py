"""Compaction of a day partition's small Parquet files, in bounded memory.

The collector writes one file per worker task (a few thousand spans); readers want few,
large files.  delta-rs's ``optimize.compact`` did this but held 200-320 MB more than
before for 100 input files, whatever its settings (target size, one task, spill size,
row-group size; measured on a 204,000-span store), which doubled the collector's memory
while it ran.  Here rows stream through: read in batches, written in row groups of
``ROW_GROUP_ROWS`` (~10 MB of LLM text), so memory stays near one row group: +100 MB for
a 204,000-span partition at 2,048 rows (4,096: +123 MB; 16,384: +180 MB).

The new files replace the old ones in one Delta transaction (remove + add actions,
``dataChange`` false: the rows are the same).  It commits beside the collector's appends,
which only add files and never touch the ones compacted, so Delta's conflict check lets
both through; a retention delete of the same files makes the compaction fail instead.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from deltalake import CommitProperties, DeltaTable
from deltalake.transaction import AddAction, RemoveAction

from collector.schema import PARTITION_COLUMN

logger = logging.getLogger(__name__)

ROW_GROUP_ROWS = 2048
READ_BATCH_ROWS = 1024
SMALL_FILE_BYTES = 32 * 1024 * 1024  # files at least this large are left as they are
COMPACTION_OPERATION = "tracewatch-compact"


@dataclass(frozen=True, slots=True)
class CompactionResult:
    day: str
    files_removed: int
    files_added: int
    rows: int
    seconds: float


@dataclass(frozen=True, slots=True)
class _Input:
    path: str  # relative to the table folder
    size: int
    rows: int


def compact_partition(table: DeltaTable, table_dir: Path, day: str, file_schema: pa.Schema,
                      target_file_bytes: int) -> CompactionResult:
    """Merge the partition's files smaller than ``SMALL_FILE_BYTES`` into files of about
    ``target_file_bytes``; nothing happens when fewer than two such files exist."""
    started = time.perf_counter()
    inputs = _small_files(table, day)
    if len(inputs) < 2:
        return CompactionResult(day, 0, 0, 0, time.perf_counter() - started)
    bytes_per_row = sum(i.size for i in inputs) / max(sum(i.rows for i in inputs), 1)
    rows_per_file = max(int(target_file_bytes / max(bytes_per_row, 1.0)), ROW_GROUP_ROWS)
    outputs = _rewrite(table_dir, day, inputs, file_schema, rows_per_file)
    now_ms = int(time.time() * 1000)
    actions: list[AddAction | RemoveAction] = [
        RemoveAction(i.path, False, now_ms, i.size, {PARTITION_COLUMN: day}) for i in inputs
    ]
    actions += [
        AddAction(relative, size, {PARTITION_COLUMN: day}, now_ms, False,
                  orjson.dumps({"numRecords": rows}).decode())
        for relative, size, rows in outputs
    ]
    try:
        table.create_write_transaction(
            actions, mode="append", schema=table.schema(), partition_by=[PARTITION_COLUMN],
            commit_properties=CommitProperties(
                custom_metadata={"tracewatch.operation": COMPACTION_OPERATION}),
        )
    except Exception:
        for relative, _, _ in outputs:  # never committed: nobody can see them
            (table_dir / relative).unlink(missing_ok=True)
        raise
    return CompactionResult(day, len(inputs), len(outputs), sum(r for _, _, r in outputs),
                            time.perf_counter() - started)


def _small_files(table: DeltaTable, day: str) -> list[_Input]:
    adds = pa.table(table.get_add_actions(flatten=True))
    if adds.num_rows == 0:
        return []
    days = adds.column(f"partition.{PARTITION_COLUMN}").cast(pa.string())
    mask = pc.and_(pc.equal(days, day), pc.less(adds.column("size_bytes"), SMALL_FILE_BYTES))
    chosen = adds.filter(mask).sort_by("modification_time")  # keeps arrival order
    return [
        _Input(path, size, rows or 0)
        for path, size, rows in zip(chosen.column("path").to_pylist(),
                                    chosen.column("size_bytes").to_pylist(),
                                    chosen.column("num_records").to_pylist())
    ]


def _rewrite(table_dir: Path, day: str, inputs: list[_Input], file_schema: pa.Schema,
             rows_per_file: int) -> list[tuple[str, int, int]]:
    """Stream the inputs into new files; returns (relative path, bytes, rows) of each."""
    outputs: list[tuple[str, int, int]] = []
    writer: pq.ParquetWriter | None = None
    relative = ""
    file_rows = 0
    pending: list[pa.RecordBatch] = []
    pending_rows = 0

    def flush() -> None:
        nonlocal writer, relative, file_rows, pending_rows
        if not pending:
            return
        if writer is None:
            relative = f"{PARTITION_COLUMN}={day}/part-{uuid.uuid4().hex}-c000.zstd.parquet"
            writer = pq.ParquetWriter(table_dir / relative, file_schema, compression="zstd")
        writer.write_table(pa.Table.from_batches(pending, schema=file_schema),
                           row_group_size=ROW_GROUP_ROWS)
        file_rows += pending_rows
        pending.clear()
        pending_rows = 0
        if file_rows >= rows_per_file:
            close()

    def close() -> None:
        nonlocal writer, file_rows
        if writer is not None:
            writer.close()
            outputs.append((relative, (table_dir / relative).stat().st_size, file_rows))
            writer = None
            file_rows = 0

    try:
        for item in inputs:
            with pq.ParquetFile(table_dir / item.path) as source:
                for batch in source.iter_batches(batch_size=READ_BATCH_ROWS, use_threads=False):
                    pending.append(_conform(batch, file_schema))
                    pending_rows += batch.num_rows
                    if pending_rows >= ROW_GROUP_ROWS:
                        flush()
        flush()
        close()
    except BaseException:
        if writer is not None:
            writer.close()
            outputs.append((relative, 0, 0))
        for path, _, _ in outputs:
            (table_dir / path).unlink(missing_ok=True)
        raise
    return outputs


def _conform(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """The batch with the table's columns, in order (nulls for a column an older file
    lacks), so files written before a schema change merge with newer ones."""
    if batch.schema.equals(schema):
        return batch
    columns = []
    for field in schema:
        index = batch.schema.get_field_index(field.name)
        columns.append(batch.column(index).cast(field.type) if index >= 0
                       else pa.nulls(batch.num_rows, field.type))
    return pa.RecordBatch.from_arrays(columns, schema=schema)
