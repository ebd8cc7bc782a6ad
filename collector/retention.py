"""Retention: delete spans and evaluations older than a cutoff, files included.

Runs beside a live collector: it opens the Delta tables without the writer lock (a delete
of old day partitions does not conflict with the collector's appends to today's; a commit
conflict is retried).  Whole day partitions before the cutoff's day are dropped, rows of
the cutoff's own day before the cutoff are deleted, and the files no longer referenced in
the dropped partitions are removed from disk at once, so the data is gone for real.  Files
of recent partitions are left to the collector's vacuum, so readers' snapshots stay valid.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from deltalake import DeltaTable
from deltalake.exceptions import CommitFailedError, TableNotFoundError

from collector.errors import TracewatchError
from collector.schema import EVALUATIONS_TABLE, PARTITION_COLUMN, SPANS_TABLE, table_path

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_RETRIES = 5


def parse_duration_s(text: str) -> float:
    """'30d' -> 2592000.0; units s, m, h, d, w."""
    match = _DURATION.match(text)
    if not match:
        raise TracewatchError(f"invalid duration {text!r}: use a number and s, m, h, d or w (e.g. 30d)")
    return float(match.group(1)) * _UNIT_S[match.group(2)]


@dataclass(frozen=True, slots=True)
class RetentionResult:
    num_rows_deleted: int
    num_files_removed: int


def delete_older_than(data_dir: Path, cutoff: datetime) -> RetentionResult:
    """Delete rows with start_time (or created_at) before ``cutoff`` (naive UTC)."""
    rows = 0
    files = 0
    for table, time_column in ((SPANS_TABLE, "start_time"), (EVALUATIONS_TABLE, "created_at")):
        try:
            delta = DeltaTable(str(table_path(data_dir, table)))
        except TableNotFoundError:
            continue
        rows += _delete_with_retry(delta, cutoff, time_column)
        files += _remove_dropped_partition_files(delta, cutoff)
    return RetentionResult(rows, files)


def _delete_with_retry(delta: DeltaTable, cutoff: datetime, time_column: str) -> int:
    day = cutoff.date().isoformat()
    stamp = cutoff.replace(tzinfo=None).isoformat(sep=" ")
    predicates = (
        f"{PARTITION_COLUMN} < '{day}'",
        f"{PARTITION_COLUMN} = '{day}' AND {time_column} < '{stamp}'",
    )
    deleted = 0
    for predicate in predicates:
        for attempt in range(_RETRIES):
            try:
                metrics = delta.delete(predicate)
                deleted += int(metrics.get("num_deleted_rows") or 0)
                break
            except CommitFailedError:
                if attempt == _RETRIES - 1:
                    raise TracewatchError("retention: the store kept changing; try again") from None
                time.sleep(0.2 * (attempt + 1))
                delta.update_incremental()
    return deleted


def _remove_dropped_partition_files(delta: DeltaTable, cutoff: datetime) -> int:
    day = cutoff.date()
    unreferenced = delta.vacuum(retention_hours=0, dry_run=True, enforce_retention_duration=False)
    removed = 0
    root = Path(delta.table_uri.removeprefix("file://"))
    for relative in unreferenced:
        match = re.search(rf"{PARTITION_COLUMN}=(\d{{4}}-\d{{2}}-\d{{2}})", relative)
        if match and datetime.fromisoformat(match.group(1)).date() < day:
            path = Path(relative) if os.path.isabs(relative) else root / relative
            try:
                path.unlink()
                removed += 1
            except FileNotFoundError:
                pass
    return removed


def cutoff_before(now: datetime, older_than_s: float) -> datetime:
    return now - timedelta(seconds=older_than_s)
