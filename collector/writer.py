"""The one writer of the span store: atomic Delta commits, dedup, compaction, retention.

Contract:
- ``write(batch, spool_seqs)`` appends the batch's new spans in ONE Delta commit (spans,
  their retrieved documents and their evaluations together) whose metadata records the
  spool entries it made durable.  Spans already stored (same trace_id, span_id) are skipped.
- Only one process writes spans: ``writer.lock`` (flock) is held for the writer's life and
  a second writer fails fast with a clear message.
- ``maintain()`` starts compaction of day partitions that collected many files
  (collector.compaction), checkpoints the Delta log and vacuums files removed long enough
  ago that no reader snapshot still needs them.  Compaction runs in a thread of its own,
  on its own table handle (it takes seconds at high ingest rates and must not hold up
  commits); Delta's optimistic concurrency lets it commit beside the appends, which never
  conflict with it.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
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
import pyarrow.compute  # noqa: F401  (pa.compute)
import pyarrow.parquet as pq
from deltalake import CommitProperties, DeltaTable, write_deltalake
from deltalake.exceptions import TableNotFoundError
from deltalake.transaction import AddAction

from collector.compaction import CompactionResult, compact_partition
from collector.dedup import SpanKeyIndex
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
from collector.staging import FILE_SCHEMA, StagedFile, spans_to_arrow, stage_spans

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
        self._compactor: threading.Thread | None = None
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
        columns = [pq.read_table(path, columns=["span_key"]).column(0).to_numpy() for path in files]
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
        return self.commit_files(stage_spans(self.table_dir, spans_to_arrow(list(batch.spans))),
                                 spool_seqs)

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
        new_keys: list[int] = []
        now_ms = int(time.time() * 1000)
        # One lookup for all files, so duplicates across files of this commit count too.
        flags = self._index.select_new([key for staged in files for key in staged.keys])
        offset = 0
        for staged in files:
            is_new = flags[offset : offset + staged.num_rows]
            offset += staged.num_rows
            num_new = sum(is_new)
            self.num_duplicates += staged.num_rows - num_new
            path = self.table_dir / staged.relative_path
            if num_new == 0:
                path.unlink(missing_ok=True)
                continue
            relative, size = staged.relative_path, staged.num_bytes
            if num_new < staged.num_rows:
                kept = pq.read_table(path).filter(pa.array(is_new))
                relative = f"{PARTITION_COLUMN}={staged.day}/part-{uuid.uuid4().hex}-c000.snappy.parquet"
                pq.write_table(kept, self.table_dir / relative, compression="snappy")
                path.unlink(missing_ok=True)
                size = (self.table_dir / relative).stat().st_size
            actions.append(AddAction(relative, size, {PARTITION_COLUMN: staged.day}, now_ms, True,
                                     orjson.dumps({"numRecords": num_new}).decode()))
            new_keys.extend(key for key, new in zip(staged.keys, is_new) if new)
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
        self._index.add(new_keys)  # only once committed: a failed commit is retried
        self.num_spans_written += len(new_keys)
        self.num_commits += 1
        self._commits_since_checkpoint += 1
        for action in actions:
            self._files_since_compaction[date.fromisoformat(action.partition_values[PARTITION_COLUMN] or "")] += 1
        return len(new_keys)

    def maintain(self, behind: bool = False) -> None:
        """Start compaction of busy partitions, checkpoint the log, vacuum old files.

        Compaction rewrites every row once (a third of the CPU of ingesting it), so while
        the collector is ``behind`` (requests wait in the spool) it waits until a partition
        has ``COMPACT_BEHIND_FACTOR`` times ``compact_min_files`` new files; bursts are
        compacted once they are absorbed.
        """
        threshold = self.settings.compact_min_files * (COMPACT_BEHIND_FACTOR if behind else 1)
        busy = [day for day, n in self._files_since_compaction.items() if n >= threshold]
        if busy and not self.compacting:
            for day in busy:
                del self._files_since_compaction[day]
            self._compactor = threading.Thread(
                target=self._compact_in_background, args=(busy,), name="tracewatch-compact",
                daemon=True)
            self._compactor.start()
        if self._commits_since_checkpoint >= _CHECKPOINT_EVERY_COMMITS:
            self._table.create_checkpoint()
            self._table.cleanup_metadata()
            self._commits_since_checkpoint = 0
        if time.monotonic() - self._last_vacuum >= _VACUUM_EVERY_S:
            self.vacuum()

    @property
    def compacting(self) -> bool:
        return self._compactor is not None and self._compactor.is_alive()

    def _compact_in_background(self, days: list[date]) -> None:
        table = DeltaTable(str(self.table_dir))
        for day in days:
            try:
                self._compact(table, day)
            except Exception:  # thread boundary: the files stay as they are, readable
                logger.exception("compaction of %s failed; will retry when more files arrive", day)
                self._files_since_compaction[day] += self.settings.compact_min_files // 2

    def compact(self, day: date | None = None) -> list[CompactionResult]:
        """Merge small files of one day partition (every partition if day is None), now."""
        self.wait_for_compaction()
        self._table.update_incremental()
        days = [day] if day else self._partition_days()
        results = [self._compact(self._table, d) for d in days]
        self._table.update_incremental()
        for d in days:
            self._files_since_compaction.pop(d, None)
        return results

    def _partition_days(self) -> list[date]:
        actions = pa.table(self._table.get_add_actions(flatten=True))
        if actions.num_rows == 0:
            return []
        return sorted(set(actions.column(f"partition.{PARTITION_COLUMN}").to_pylist()))

    def wait_for_compaction(self) -> None:
        if self._compactor is not None:
            self._compactor.join()
            self._compactor = None

    def _compact(self, table: DeltaTable, day: date) -> CompactionResult:
        table.update_incremental()
        result = compact_partition(table, self.table_dir, day.isoformat(), FILE_SCHEMA,
                                   self.settings.target_file_bytes)
        if result.files_removed:
            logger.info("compacted %s: %d files -> %d (%d rows) in %.1f s", result.day,
                        result.files_removed, result.files_added, result.rows, result.seconds)
        return result

    def vacuum(self) -> int:
        """Delete files no snapshot younger than ``vacuum_retention_s`` refers to."""
        hours = self.settings.vacuum_retention_s // 3600
        removed = self._table.vacuum(
            retention_hours=hours, dry_run=False, enforce_retention_duration=False
        )
        self._last_vacuum = time.monotonic()
        return len(removed)

    @property
    def version(self) -> int:
        return self._table.version()

    def close(self) -> None:
        self.wait_for_compaction()
        self._lock.release()
