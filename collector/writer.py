"""The one writer of the span store: atomic Delta commits, dedup, compaction, retention.

Contract:
- ``write(batch, spool_seqs)`` appends the batch's new spans in ONE Delta commit (spans,
  their retrieved documents and their evaluations together) whose metadata records the
  spool entries it made durable.  Spans already stored (same trace_id, span_id) are skipped.
- Only one process writes spans: ``writer.lock`` (flock) is held for the writer's life and
  a second writer fails fast with a clear message.
- ``next_compaction()`` plans the compaction of a day partition that collected many files;
  the caller has the files rewritten (collector.compaction, in a pipeline worker) and
  ``commit_compaction`` swaps them in, beside the appends, which never conflict with it.
  ``maintain()`` checkpoints the Delta log and vacuums files removed long enough ago that
  no reader snapshot still needs them.
"""

from __future__ import annotations

import fcntl
import logging
import math
import os
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import IO

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
from deltalake import CommitProperties, DeltaTable, write_deltalake
from deltalake.exceptions import TableNotFoundError
from deltalake.transaction import AddAction, RemoveAction

from collector.compaction import (
    COMPACTION_METADATA_KEY,
    COMPACTION_OPERATION,
    ROW_GROUP_ROWS,
    SMALL_FILE_BYTES,
    CompactedFile,
    CompactionInput,
    CompactionPlan,
    CompactionResult,
    rewrite_files,
)
from collector.dedup import Keys, SpanKeyIndex
from collector.errors import StoreError
from collector.records import Span, SpanBatch
from collector.schema import (
    COMMIT_SPOOL_SEQ_KEY,
    PARTITION_COLUMN,
    SPANS_SCHEMA,
    SPANS_TABLE,
    table_path,
    writer_lock_path,
)
from collector.spool import format_seq_ranges, parse_seq_ranges
from collector.staging import StagedFile, copy_rows, stage_spans

logger = logging.getLogger(__name__)

_CHECKPOINT_EVERY_COMMITS = 100
_VACUUM_EVERY_S = 300.0
COMPACT_BEHIND_FACTOR = 8


@dataclass(frozen=True, slots=True)
class WriterSettings:
    """Developer-facing knobs (users set them through CollectorConfig)."""

    compact_min_files: int = 64
    vacuum_retention_s: int = 600
    target_file_bytes: int = 128 * 1024 * 1024


def ensure_table(path: Path, schema: pa.Schema, partitioned: bool) -> DeltaTable:
    """Open a Delta table, creating it empty with ``schema`` when missing."""
    try:
        return DeltaTable(str(path))
    except TableNotFoundError:
        path.mkdir(parents=True, exist_ok=True)
        write_deltalake(
            str(path),
            schema.empty_table(),
            mode="append",
            partition_by=[PARTITION_COLUMN] if partitioned else None,
        )
        return DeltaTable(str(path))


class WriterLock:
    """An exclusive flock on ``writer.lock``; released when the process dies."""

    def __init__(self, data_dir: Path) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self._file: IO[str] | None = open(writer_lock_path(data_dir), "a+")  # noqa: SIM115
        try:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._file.close()
            self._file = None
            raise StoreError(
                f"another tracewatch process (collector or ingest) is writing to {data_dir}; "
                "stop it first or send the data to its collector"
            ) from None
        self._file.seek(0)
        self._file.truncate()
        self._file.write(str(os.getpid()))
        self._file.flush()

    def release(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            self._file.close()
            self._file = None


class StoreWriter:
    def __init__(self, data_dir: Path, settings: WriterSettings | None = None) -> None:
        self.data_dir = data_dir
        self.settings = settings or WriterSettings()
        self._lock = WriterLock(data_dir)
        try:
            self._table = ensure_table(table_path(data_dir, SPANS_TABLE), SPANS_SCHEMA, True)
        except Exception as exc:
            self._lock.release()
            raise StoreError(f"cannot open the store in {data_dir}: {type(exc).__name__}") from None
        self._index = SpanKeyIndex(self._load_keys())
        self._files_since_compaction: Counter[date] = Counter()
        self._commits_since_checkpoint = 0
        self._last_vacuum = time.monotonic()
        self.num_spans_written = 0
        self.num_duplicates = 0
        self.num_commits = 0
        self.last_commit_s = 0.0
        logger.info("store writer open: %s (%d spans indexed)", data_dir, len(self._index))

    def _load_keys(self) -> np.ndarray:
        files = self._table.file_uris()
        if not files:
            return np.empty(0, dtype=np.int64)
        # ParquetFile, not read_table: that goes through pyarrow.dataset, which loads
        # pyarrow.compute (~5 MB) into this long-running process for good.
        columns = []
        for path in files:
            with pq.ParquetFile(path) as source:
                columns.append(source.read(columns=["span_key"]).column(0).to_numpy())
        return np.concatenate(columns).astype(np.int64, copy=False)

    def committed_spool_seqs(self) -> set[int]:
        """Spool entries made durable by the most recent commit that recorded any."""
        for commit in self._table.history(50):
            value = commit.get(COMMIT_SPOOL_SEQ_KEY)
            if isinstance(value, str):
                return parse_seq_ranges(value)
        return set()

    def write(self, batch: SpanBatch, spool_seqs: list[int]) -> int:
        """Append the batch's new spans in one commit; returns how many were new.

        The same path as the collector's workers: stage Parquet files, then commit them.
        """
        return self.commit_files(stage_spans(self.table_dir, batch.spans), spool_seqs)

    @property
    def table_dir(self) -> Path:
        return table_path(self.data_dir, SPANS_TABLE)

    def commit_files(self, files: list[StagedFile], spool_seqs: list[int]) -> int:
        """Commit staged files in one transaction, after removing rows already stored.

        A file whose rows are all new is committed as it is; one holding duplicates is
        rewritten without them (rare: client retries, replays); one with nothing new is
        deleted.  Returns the number of new rows.
        """
        actions: list[AddAction] = []
        new_keys: list[Keys] = []
        now_ms = int(time.time() * 1000)
        # One lookup for all files, so duplicates across files of this commit count too.
        keys = np.concatenate([np.frombuffer(staged.keys, dtype=np.int64) for staged in files]
                              or [np.empty(0, dtype=np.int64)])
        flags = self._index.select_new(keys)
        offset = 0
        for staged in files:
            is_new = flags[offset : offset + staged.num_rows]
            file_keys = keys[offset : offset + staged.num_rows]
            offset += staged.num_rows
            num_new = int(is_new.sum())
            self.num_duplicates += staged.num_rows - num_new
            path = self.table_dir / staged.relative_path
            if num_new == 0:
                path.unlink(missing_ok=True)
                continue
            relative, size = staged.relative_path, staged.num_bytes
            if num_new < staged.num_rows:
                relative = f"{PARTITION_COLUMN}={staged.day}/part-{uuid.uuid4().hex}-c000.snappy.parquet"
                size = copy_rows(path, self.table_dir / relative, is_new.tolist())
                path.unlink(missing_ok=True)
            actions.append(AddAction(relative, size, {PARTITION_COLUMN: staged.day}, now_ms, True,
                                     orjson.dumps({"numRecords": num_new}).decode()))
            new_keys.append(file_keys[is_new])
        if not actions:
            return 0
        metadata = {COMMIT_SPOOL_SEQ_KEY: format_seq_ranges(spool_seqs)} if spool_seqs else {}
        started = time.perf_counter()
        self._table.create_write_transaction(
            actions, mode="append", schema=self._table.schema(), partition_by=[PARTITION_COLUMN],
            commit_properties=CommitProperties(custom_metadata=metadata),
        )
        # A write transaction does not move this object's snapshot (write_deltalake does);
        # without this, compaction and the store version would see the table as it was.
        self._table.update_incremental()
        self.last_commit_s = time.perf_counter() - started
        added = np.concatenate(new_keys)
        self._index.add(added)  # only once committed: a failed commit is retried
        self.num_spans_written += len(added)
        self.num_commits += 1
        self._commits_since_checkpoint += 1
        for action in actions:
            self._files_since_compaction[date.fromisoformat(action.partition_values[PARTITION_COLUMN] or "")] += 1
        return len(added)

    def maintain(self) -> None:
        """Checkpoint the log and vacuum old files (compaction: ``next_compaction``)."""
        if self._commits_since_checkpoint >= _CHECKPOINT_EVERY_COMMITS:
            self._table.create_checkpoint()
            self._table.cleanup_metadata()
            self._commits_since_checkpoint = 0
        if time.monotonic() - self._last_vacuum >= _VACUUM_EVERY_S:
            self.vacuum()

    def next_compaction(self, behind: bool = False) -> CompactionPlan | None:
        """The compaction of one day partition that collected enough new files, if any.

        Compaction rewrites every row once (a third of the CPU of ingesting it), so while
        the collector is ``behind`` (requests wait in the spool) it waits until a partition
        has ``COMPACT_BEHIND_FACTOR`` times ``compact_min_files`` new files; bursts are
        compacted once they are absorbed.  The caller rewrites the plan's files (in a
        pipeline worker: ``compaction.rewrite_files``) and hands the result to
        ``commit_compaction``.
        """
        threshold = self.settings.compact_min_files * (COMPACT_BEHIND_FACTOR if behind else 1)
        for day, num_files in list(self._files_since_compaction.items()):
            if num_files >= threshold:
                del self._files_since_compaction[day]
                plan = self.plan_compaction(day)
                if plan is not None:
                    return plan
        return None

    def plan_compaction(self, day: date) -> CompactionPlan | None:
        """The partition's files under ``SMALL_FILE_BYTES`` (None if fewer than two)."""
        actions = pa.table(self._table.get_add_actions(flatten=True))
        if actions.num_rows == 0:
            return None
        # A few hundred files at most: filtered here, so that this process need not load
        # pyarrow.compute (3.4 MB) for it.
        files = actions.select(["path", "size_bytes", "num_records", "modification_time",
                                f"partition.{PARTITION_COLUMN}"]).to_pylist()
        chosen = sorted(  # by modification time: keeps arrival order
            (row for row in files
             if str(row[f"partition.{PARTITION_COLUMN}"]) == day.isoformat()
             and row["size_bytes"] < SMALL_FILE_BYTES),
            key=lambda row: row["modification_time"])
        if len(chosen) < 2:
            return None
        inputs = [CompactionInput(row["path"], row["size_bytes"], row["num_records"] or 0)
                  for row in chosen]
        bytes_per_row = sum(i.size for i in inputs) / max(sum(i.rows for i in inputs), 1)
        rows_per_file = max(int(self.settings.target_file_bytes / max(bytes_per_row, 1.0)),
                            ROW_GROUP_ROWS)
        return CompactionPlan(day.isoformat(), inputs, rows_per_file)

    def commit_compaction(self, plan: CompactionPlan, outputs: list[CompactedFile],
                          started: float) -> CompactionResult:
        """Replace the plan's files by the rewritten ones in one transaction; on failure
        the new files are deleted (nobody can see them) and the old ones stay."""
        now_ms = int(time.time() * 1000)
        partition: dict[str, str | None] = {PARTITION_COLUMN: plan.day}
        actions: list[AddAction | RemoveAction] = [
            RemoveAction(i.path, False, now_ms, i.size, partition) for i in plan.inputs
        ]
        actions += [
            AddAction(o.relative_path, o.size, partition, now_ms, False,
                      orjson.dumps({"numRecords": o.rows}).decode())
            for o in outputs
        ]
        try:
            self._table.create_write_transaction(
                actions, mode="append", schema=self._table.schema(),
                partition_by=[PARTITION_COLUMN],
                commit_properties=CommitProperties(
                    custom_metadata={COMPACTION_METADATA_KEY: COMPACTION_OPERATION}),
            )
        except Exception:
            self._discard_compaction(outputs)
            raise
        self._table.update_incremental()
        result = CompactionResult(plan.day, len(plan.inputs), len(outputs),
                                  sum(o.rows for o in outputs), time.perf_counter() - started)
        logger.info("compacted %s: %d files -> %d (%d rows) in %.1f s", result.day,
                    result.files_removed, result.files_added, result.rows, result.seconds)
        return result

    def retry_compaction_later(self, plan: CompactionPlan) -> None:
        """A compaction that failed is planned again after half the usual new files."""
        day = date.fromisoformat(plan.day)
        self._files_since_compaction[day] += max(self.settings.compact_min_files // 2, 1)

    def _discard_compaction(self, outputs: list[CompactedFile]) -> None:
        for output in outputs:
            (self.table_dir / output.relative_path).unlink(missing_ok=True)

    def compact(self, day: date | None = None) -> list[CompactionResult]:
        """Merge small files of one day partition (every partition if None), here and now."""
        self._table.update_incremental()
        results = []
        for each in [day] if day else self._partition_days():
            self._files_since_compaction.pop(each, None)
            plan = self.plan_compaction(each)
            if plan is not None:
                results.append(self._compact_here(plan))
        return results

    def compact_due(self) -> None:
        """Compact, here and now, the partitions that collected enough new files."""
        while (plan := self.next_compaction()) is not None:
            self._compact_here(plan)

    def _compact_here(self, plan: CompactionPlan) -> CompactionResult:
        started = time.perf_counter()
        return self.commit_compaction(plan, rewrite_files(self.table_dir, plan), started)

    def _partition_days(self) -> list[date]:
        actions = pa.table(self._table.get_add_actions(flatten=True))
        if actions.num_rows == 0:
            return []
        return sorted(set(actions.column(f"partition.{PARTITION_COLUMN}").to_pylist()))

    def vacuum(self) -> int:
        """Delete files no snapshot younger than ``vacuum_retention_s`` refers to (rounded
        up to whole hours: delta-rs counts in hours, and rounding down made it 0)."""
        hours = math.ceil(self.settings.vacuum_retention_s / 3600)
        removed = self._table.vacuum(
            retention_hours=hours, dry_run=False, enforce_retention_duration=False
        )
        self._last_vacuum = time.monotonic()
        return len(removed)

    @property
    def version(self) -> int:
        return self._table.version()

    def close(self) -> None:
        self._lock.release()
