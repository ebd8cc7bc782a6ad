"""The collector's writer thread: spool -> pipeline workers -> one commit per interval.

- Spool entries are handed to the pipeline workers in groups (one group running per
  worker and one queued; a worker holds one group's payload at a time, which bounds
  memory; a processed group is only a list of staged files until it is committed), so
  decoding and redaction of the next batch overlap with the commit of this one.
- Finished entries are committed together at most about once per ``commit_interval_s``
  (sooner when ``MAX_COMMIT_BYTES`` of payload is ready), in one Delta commit whose metadata
  names their spool entries; only then are the entries deleted from the spool.
- Any failure leaves the entries in the spool, to be retried: a worker that died restarts
  the pool; an entry that no longer decodes (only a corrupted file can) is dropped and
  counted.  ``except Exception`` appears only at this loop boundary.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from concurrent.futures import Future, wait
from concurrent.futures.process import BrokenProcessPool

from collector.compaction import CompactedFile, CompactionPlan
from collector.run_config import RunConfig
from collector.runtime import release_free_memory
from collector.spool import Spool, SpoolEntry
from collector.telemetry import CollectorTelemetry
from collector.workers import PipelineExecutor, ProcessedPayload
from collector.staging import StagedFile
from collector.writer import StoreWriter

logger = logging.getLogger(__name__)

MAX_COMMIT_BYTES = 256 * 1024 * 1024
GROUP_BYTES = 32 * 1024 * 1024  # payload per worker task (one Parquet file per day per task)
BEHIND_HOLD_S = 10.0
_ERROR_BACKOFF_S = 2.0
_POLL_S = 0.05


class WriterLoop:
    def __init__(
        self,
        config: RunConfig,
        spool: Spool,
        executor: PipelineExecutor,
        writer: StoreWriter,
        telemetry: CollectorTelemetry,
    ) -> None:
        self.config = config
        self.spool = spool
        self.executor = executor
        self.writer = writer
        self.telemetry = telemetry
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tracewatch-writer", daemon=True)
        # Groups of spool entries, each processed by one worker into one file per day.
        self._inflight: deque[tuple[list[SpoolEntry], Future[ProcessedPayload]]] = deque()
        self.num_batch_errors = 0
        self._last_behind = float("-inf")
        self._released = True  # free memory handed back to the OS since the last commit
        # (plan, rewrite in a worker, start time): at most one compaction at a time
        self._compaction: tuple[CompactionPlan, Future[list[CompactedFile]], float] | None = None

    def start(self) -> None:
        replayed = self.spool.remove_committed(self.writer.committed_spool_seqs())
        if replayed:
            logger.info("spool: %d entries were already committed; removed", replayed)
        if self.spool.num_entries:
            logger.info("spool: %d entries to replay", self.spool.num_entries)
        self._thread.start()

    def stop(self, drain_timeout_s: float = 10.0) -> None:
        """Finish the spool (up to drain_timeout_s), then stop the thread."""
        deadline = time.monotonic() + drain_timeout_s
        while self.spool.num_entries and time.monotonic() < deadline and self._thread.is_alive():
            time.sleep(0.05)
        self._stop.set()
        self.spool.wake()
        self._thread.join(timeout=max(deadline - time.monotonic(), 0) + 60)

    def _run(self) -> None:
        last_commit = time.monotonic()
        while not self._stop.is_set():
            try:
                self._submit_new()
                ready = self._ready_prefix()
                ready_bytes = sum(entry.num_bytes for group, _ in ready for entry in group)
                due = time.monotonic() - last_commit >= self.config.commit_interval_s
                if ready and (due or ready_bytes >= MAX_COMMIT_BYTES):
                    self._commit(ready)
                    last_commit = time.monotonic()
                    self._released = False
                    self._maintain(behind=self._behind())
                elif not self._inflight:
                    if not self._released:  # the requests stopped: before any compaction
                        release_free_memory()
                        self._released = True
                    self._maintain(behind=False)
                    if self._compaction is not None:
                        wait([self._compaction[1]], timeout=_POLL_S)
                elif ready:
                    self._stop.wait(_POLL_S)  # the next commit is not due yet
                else:
                    wait([self._inflight[0][1]], timeout=_POLL_S)
            except BrokenProcessPool:
                self._recover("a pipeline worker died")
            except Exception:  # loop boundary: keep serving; entries stay in the spool
                self._recover("writer batch failed")

    def _submit_new(self) -> None:
        """Hand spool entries to the workers: one group running per worker, one queued.

        Under load, entries pile up in the spool while the workers are busy and the next
        take groups them, up to ``GROUP_BYTES`` (larger files, fewer of them); when the
        workers are idle, entries go at once, spread over the idle workers.
        """
        workers = max(self.executor.num_workers, 1)
        pending = sum(1 for _, future in self._inflight if not future.done())
        free = workers + 1 - pending
        if free <= 0:
            return
        wait_s = 0.0 if self._inflight else self.config.commit_interval_s
        entries = self.spool.take(self.config.max_batch_spans, wait_s, max_bytes=free * GROUP_BYTES)
        groups = _split(entries, max(workers - pending, 1), free)
        for group in groups:
            paths = [(entry.fmt, entry.path) for entry in group]
            self._inflight.append((group, self.executor.submit_paths(paths)))
        if groups:
            logger.debug("writer: %d spool entries submitted as %d groups (%d pending before)",
                         len(entries), len(groups), pending)

    def _behind(self) -> bool:
        """More than a worker task's worth of requests waited in the spool at some point
        in the last ``BEHIND_HOLD_S`` (under saturation it dips below now and then)."""
        now = time.monotonic()
        if self.spool.pending_bytes > GROUP_BYTES:
            self._last_behind = now
        return now - self._last_behind < BEHIND_HOLD_S

    def _ready_prefix(self) -> list[tuple[list[SpoolEntry], Future[ProcessedPayload]]]:
        """The oldest in-flight groups whose processing finished (in spool order)."""
        ready = []
        for group, future in self._inflight:
            if not future.done():
                break
            ready.append((group, future))
        return ready

    def _commit(self, ready: list[tuple[list[SpoolEntry], Future[ProcessedPayload]]]) -> None:
        files: list[StagedFile] = []
        committed: list[SpoolEntry] = []
        dropped: list[SpoolEntry] = []
        num_redacted = num_withheld = num_spans = 0
        for group, future in ready:
            result = future.result()
            undecodable = set(result.undecodable)
            for entry in group:
                if str(entry.path) in undecodable:
                    # Checked before it was acknowledged; only a corrupted file lands here.
                    logger.error("writer: spool entry %d no longer decodes; dropped", entry.seq)
                    dropped.append(entry)
                else:
                    committed.append(entry)
            files.extend(result.files)
            num_spans += result.num_spans
            num_redacted += result.num_entities_redacted
            num_withheld += result.num_spans_withheld
        started = time.perf_counter()
        written = self.writer.commit_files(files, [entry.seq for entry in committed]) if files else 0
        elapsed = time.perf_counter() - started
        self.telemetry.write_seconds.observe(elapsed)
        logger.debug("writer: committed %d spans in %d files from %d spool entries in %.3f s",
                     written, len(files), len(committed), elapsed)
        for _ in ready:
            self._inflight.popleft()
        self.spool.remove(committed + dropped)
        self.telemetry.spans_written.inc(written)
        self.telemetry.spans_duplicate.inc(num_spans - written)
        self.telemetry.entities_redacted.inc(num_redacted)
        self.telemetry.spans_withheld.inc(num_withheld)

    def _recover(self, what: str) -> None:
        self.num_batch_errors += 1
        self.telemetry.batch_errors.inc()
        logger.exception("writer: %s; %d spool entries will be retried", what, len(self._inflight))
        entries = [entry for group, _ in self._inflight for entry in group]
        for _, future in self._inflight:
            future.cancel()
        self._inflight.clear()
        if self._compaction is not None:  # its worker may be gone
            self.writer.retry_compaction_later(self._compaction[0])
            self._compaction = None
        self.spool.release(entries)
        try:
            self.executor.restart()
        except Exception:  # loop boundary
            logger.exception("writer: pipeline workers could not restart")
        self._stop.wait(_ERROR_BACKOFF_S)

    def _maintain(self, behind: bool) -> None:
        """Finish or start a compaction (rewritten by a worker), checkpoint, vacuum."""
        try:
            self._finish_compaction()
            if self._compaction is None:
                plan = self.writer.next_compaction(behind)
                if plan is not None:
                    self._compaction = (plan, self.executor.submit_compaction(plan),
                                        time.perf_counter())
            self.writer.maintain()
        except Exception:  # loop boundary
            self.telemetry.batch_errors.inc()
            logger.exception("writer: store maintenance failed")

    def _finish_compaction(self) -> None:
        if self._compaction is None or not self._compaction[1].done():
            return
        plan, future, started = self._compaction
        self._compaction = None
        try:
            self.writer.commit_compaction(plan, future.result(), started)
        except Exception:  # a worker's or a commit's failure: the small files stay, readable
            logger.exception("writer: compaction of %s failed; its files stay as they are",
                             plan.day)
            self.writer.retry_compaction_later(plan)


def _split(entries: list[SpoolEntry], min_groups: int, max_groups: int) -> list[list[SpoolEntry]]:
    """Consecutive groups of about equal payload: as few as ``GROUP_BYTES`` allows, but at
    least ``min_groups`` (idle workers) and at most ``max_groups`` when entries allow."""
    if not entries:
        return []
    total = sum(entry.num_bytes for entry in entries)
    wanted = max(math.ceil(total / GROUP_BYTES), min_groups)
    wanted = max(min(wanted, max_groups, len(entries)), 1)
    limit = math.ceil(total / wanted)
    groups: list[list[SpoolEntry]] = [[]]
    size = 0
    for entry in entries:
        if groups[-1] and size + entry.num_bytes > limit:
            groups.append([])
            size = 0
        groups[-1].append(entry)
        size += entry.num_bytes
    return groups
