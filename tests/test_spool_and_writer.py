"""Spool and writer invariants that the end-to-end tests cannot time precisely."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest

from collector.dedup import SpanKeyIndex
from collector.decode import PayloadFormat
from collector.errors import StoreError
from collector.records import Span, SpanBatch, SpanKind
from collector.spool import Spool, SpoolFullError, format_seq_ranges, parse_seq_ranges
from collector.writer import StoreWriter


def _span(i: int) -> Span:
    return Span(
        trace_id=f"{i:032x}", span_id=f"{i:016x}", parent_span_id=None, name="op",
        span_kind=SpanKind.CHAIN, service_name="svc",
        start_time_unix_nano=1_763_000_000_000_000_000 + i, end_time_unix_nano=1_763_000_000_000_000_000 + i + 10,
        status_code="OK",
    )


@pytest.mark.parametrize(
    ("seqs", "text"), [([], ""), ([5], "5"), ([1, 2, 3, 7], "1-3,7"), ([9, 4, 5, 10], "4-5,9-10")]
)
def test_seq_ranges_round_trip(seqs: list[int], text: str) -> None:
    assert format_seq_ranges(seqs) == text
    assert parse_seq_ranges(text) == set(seqs)


def test_spool_is_private_bounded_and_ordered(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", max_bytes=100, fsync=True)
    assert stat.S_IMODE(os.stat(tmp_path / "spool").st_mode) == 0o700
    first = spool.append(PayloadFormat.JSON, b"x" * 60, 3)
    assert stat.S_IMODE(os.stat(first.path).st_mode) == 0o600
    with pytest.raises(SpoolFullError):
        spool.append(PayloadFormat.JSON, b"y" * 60, 3)
    second = spool.append(PayloadFormat.PROTOBUF, b"z" * 30, 2)
    taken = spool.take(max_spans=100, timeout_s=0)
    assert [e.seq for e in taken] == [first.seq, second.seq]
    assert spool.take(max_spans=100, timeout_s=0) == []  # in flight
    spool.release(taken)
    assert [e.seq for e in spool.take(max_spans=3, timeout_s=0)] == [first.seq]
    spool.remove([first])
    assert spool.num_bytes == 30 and not first.path.exists()


def test_restart_drops_entries_a_commit_already_made_durable(tmp_path: Path) -> None:
    """Crash between commit and spool delete: the entries must not be written twice."""
    spool = Spool(tmp_path / "spool", max_bytes=10_000)
    entries = [spool.append(PayloadFormat.JSON, b"{}", 1) for _ in range(3)]
    writer = StoreWriter(tmp_path / "data")
    assert writer.write(SpanBatch((_span(1), _span(2))), [entries[0].seq, entries[1].seq]) == 2
    writer.close()  # "crash": the spool entries were not removed

    reopened_spool = Spool(tmp_path / "spool", max_bytes=10_000)
    reopened = StoreWriter(tmp_path / "data")
    assert reopened.committed_spool_seqs() == {entries[0].seq, entries[1].seq}
    assert reopened_spool.remove_committed(reopened.committed_spool_seqs()) == 2
    assert [e.seq for e in reopened_spool.take(10, 0)] == [entries[2].seq]
    # The index was rebuilt from the store: the same spans are not written again.
    assert reopened.write(SpanBatch((_span(1), _span(2), _span(3))), [entries[2].seq]) == 1
    new = reopened_spool.append(PayloadFormat.JSON, b"{}", 1)
    assert new.seq > entries[2].seq
    reopened.close()


def test_only_one_writer_per_store(tmp_path: Path) -> None:
    writer = StoreWriter(tmp_path / "data")
    with pytest.raises(StoreError, match="another tracewatch process"):
        StoreWriter(tmp_path / "data")
    writer.close()
    StoreWriter(tmp_path / "data").close()


def test_compaction_keeps_rows_and_reduces_files(tmp_path: Path) -> None:
    from analytics.views import open_store

    writer = StoreWriter(tmp_path / "data")
    for i in range(20):
        writer.write(SpanBatch((_span(i + 1),)), [])
    files_before = len(list((tmp_path / "data" / "spans").rglob("*.parquet")))
    writer.compact()
    con = open_store(tmp_path / "data")
    assert con.execute("SELECT count(*), count(DISTINCT span_id) FROM spans").fetchone() == (20, 20)
    from deltalake import DeltaTable

    assert len(DeltaTable(str(tmp_path / "data" / "spans")).file_uris()) < files_before
    writer.close()


def test_compaction_commits_beside_appends(tmp_path: Path) -> None:
    """The collector's way: plan, rewrite the files elsewhere while the writer keeps
    appending, then commit: every row is there once, the compacted files left the
    snapshot, the files appended meanwhile stayed."""
    from deltalake import DeltaTable

    from analytics.views import open_store
    from collector.compaction import rewrite_files
    from collector.writer import WriterSettings

    writer = StoreWriter(tmp_path / "data", WriterSettings(compact_min_files=8))
    for i in range(8):
        writer.write(SpanBatch(tuple(_span(i * 50 + k + 1) for k in range(50))), [])
    plan = writer.next_compaction()
    assert plan is not None and len(plan.inputs) == 8
    assert writer.next_compaction() is None  # one plan per batch of new files
    outputs = rewrite_files(writer.table_dir, plan)
    for i in range(8, 20):  # appends between the plan and its commit
        writer.write(SpanBatch(tuple(_span(i * 50 + k + 1) for k in range(50))), [])
    result = writer.commit_compaction(plan, outputs, 0.0)
    assert (result.files_removed, result.files_added, result.rows) == (8, 1, 400)
    table = DeltaTable(str(tmp_path / "data" / "spans"))
    assert "tracewatch-compact" in [c.get("tracewatch.operation") for c in table.history()]
    assert len(table.file_uris()) == 1 + 12
    con = open_store(tmp_path / "data")
    assert con.execute("SELECT count(*), count(DISTINCT span_id) FROM spans").fetchone() == (1000, 1000)
    writer.close()


def test_failed_compaction_is_planned_again_after_half_the_files(tmp_path: Path) -> None:
    from collector.writer import WriterSettings

    writer = StoreWriter(tmp_path / "data", WriterSettings(compact_min_files=8))
    for i in range(8):
        writer.write(SpanBatch((_span(i + 1),)), [])
    plan = writer.next_compaction()
    assert plan is not None
    writer.retry_compaction_later(plan)  # e.g. its worker died
    assert writer.next_compaction() is None
    for i in range(8, 12):
        writer.write(SpanBatch((_span(i + 1),)), [])
    again = writer.next_compaction()
    assert again is not None and len(again.inputs) == 12
    writer.close()


def test_key_index_finds_stored_and_repeated_keys_across_runs() -> None:
    rng = np.random.default_rng(5)
    stored = rng.choice(1 << 40, size=5_000, replace=False).astype(np.int64)
    index = SpanKeyIndex(stored.copy(), run_cap=1_000)
    assert len(index) == 5_000 and index.num_runs == 5
    known = set(stored.tolist())
    for _ in range(60):  # commits: new keys, repeats within a batch, keys already stored
        fresh = rng.integers(1 << 41, 1 << 42, size=70).tolist()
        batch = fresh + fresh[:5] + rng.choice(list(known), size=10).tolist()
        flags = index.select_new(batch)
        expected, seen = [], set()
        for key in batch:
            expected.append(key not in known and key not in seen)
            seen.add(key)
        assert flags.tolist() == expected
        index.add(key for key, new in zip(batch, flags) if new)
        known.update(fresh)
    assert len(index) == len(known)
    # Runs stay few (merged by size, capped), and every stored key is found.
    assert index.num_runs <= len(known) // 500 + 8
    assert not any(index.select_new(list(known)))


def test_a_file_holding_some_stored_spans_is_rewritten_without_them(tmp_path: Path) -> None:
    """A retried request mixes spans already stored with new ones, across request row
    groups: only the new rows are committed, each once."""
    from analytics.views import open_store
    from collector.staging import StagingFiles

    writer = StoreWriter(tmp_path / "data")
    assert writer.write(SpanBatch(tuple(_span(i) for i in (1, 2, 5))), [1]) == 3
    staging = StagingFiles(writer.table_dir)
    staging.add([_span(i) for i in (1, 3, 4, 2)])  # one row group: stored, new, new, stored
    staging.add([_span(i) for i in (5, 6, 7)])  # another: stored, new, new
    assert writer.commit_files(staging.close(), [2]) == 4
    assert writer.num_duplicates == 3
    rows = open_store(tmp_path / "data").execute(
        "SELECT span_id FROM spans ORDER BY span_id").fetchall()
    assert [int(row[0], 16) for row in rows] == [1, 2, 3, 4, 5, 6, 7]
    assert len(list(writer.table_dir.rglob("*.parquet"))) == 2  # the partial file replaced
    writer.close()
