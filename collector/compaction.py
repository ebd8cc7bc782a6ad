"""Compaction of a day partition's small Parquet files, in bounded memory.

The collector writes one file per worker task (a few thousand spans); readers want few,
large files.  delta-rs's ``optimize.compact`` did this but held 200-320 MB more than
before for 100 input files, whatever its settings (target size, one task, spill size,
row-group size; measured on a 204,000-span store).  Here rows stream through: read in
batches, written in row groups of ``ROW_GROUP_ROWS`` (~10 MB of LLM text), so memory stays
near one row group: +85-100 MB for 100-300 input files at 2,048 rows (4,096: +123 MB;
16,384: +180 MB).

This module is the rewrite only (pyarrow), so it can run in a pipeline worker: run inside
the receiving process, beside its HTTP, gRPC and writer threads, the same rewrite grew that
process by 200-450 MB.  collector.writer plans it (which files) and commits the result:
one Delta transaction that removes the small files and adds the new ones (``dataChange``
false: the rows are the same), beside the collector's appends, which only add files and
never touch the ones compacted, so Delta's conflict check lets both through; a retention
delete of the same files makes the compaction fail instead.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from collector.schema import PARTITION_COLUMN
from collector.staging import FILE_SCHEMA

ROW_GROUP_ROWS = 2048
READ_BATCH_ROWS = 1024
SMALL_FILE_BYTES = 32 * 1024 * 1024  # files at least this large are left as they are
COMPACTION_METADATA_KEY = "tracewatch.operation"  # in the Delta commit's metadata
COMPACTION_OPERATION = "tracewatch-compact"


@dataclass(frozen=True, slots=True)
class CompactionInput:
    path: str  # relative to the table folder
    size: int
    rows: int


@dataclass(frozen=True, slots=True)
class CompactionPlan:
    day: str
    inputs: list[CompactionInput]
    rows_per_file: int


@dataclass(frozen=True, slots=True)
class CompactedFile:
    relative_path: str
    size: int
    rows: int


@dataclass(frozen=True, slots=True)
class CompactionResult:
    day: str
    files_removed: int
    files_added: int
    rows: int
    seconds: float


def rewrite_files(table_dir: Path, plan: CompactionPlan) -> list[CompactedFile]:
    """Stream the plan's inputs into new, uncommitted files of about ``rows_per_file`` rows."""
    outputs: list[CompactedFile] = []
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
            relative = f"{PARTITION_COLUMN}={plan.day}/part-{uuid.uuid4().hex}-c000.zstd.parquet"
            writer = pq.ParquetWriter(table_dir / relative, FILE_SCHEMA, compression="zstd")
        writer.write_table(pa.Table.from_batches(pending, schema=FILE_SCHEMA),
                           row_group_size=ROW_GROUP_ROWS)
        file_rows += pending_rows
        pending.clear()
        pending_rows = 0
        if file_rows >= plan.rows_per_file:
            close()

    def close() -> None:
        nonlocal writer, file_rows
        if writer is not None:
            writer.close()
            outputs.append(CompactedFile(relative, (table_dir / relative).stat().st_size, file_rows))
            writer = None
            file_rows = 0

    try:
        for item in plan.inputs:
            with pq.ParquetFile(table_dir / item.path) as source:
                for batch in source.iter_batches(batch_size=READ_BATCH_ROWS, use_threads=False):
                    pending.append(_conform(batch, FILE_SCHEMA))
                    pending_rows += batch.num_rows
                    if pending_rows >= ROW_GROUP_ROWS:
                        flush()
        flush()
        close()
    except BaseException:
        if writer is not None:
            writer.close()
            outputs.append(CompactedFile(relative, 0, 0))
        for output in outputs:
            (table_dir / output.relative_path).unlink(missing_ok=True)
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
