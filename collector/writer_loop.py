"""The collector's writer thread: spool -> pipeline workers -> one commit per interval.

- Spool entries are handed to the pipeline workers as they arrive (up to
  ``MAX_INFLIGHT_BYTES`` of payload in flight, which bounds memory), so decoding and
  redaction of the next batch overlap with the commit of this one.
- Finished entries are committed together at most about once per ``commit_interval_s``
  (sooner when ``MAX_COMMIT_BYTES`` of payload is ready), in one Delta commit whose metadata
  names their spool entries; only then are the entries deleted from the spool.
- Any failure leaves the entries in the spool, to be retried: a worker that died restarts
  the pool; an entry that no longer decodes (only a corrupted file can) is dropped and
  counted.  ``except Exception`` appears only at this loop boundary.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from concurrent.futures import Future, wait
from concurrent.futures.process import BrokenProcessPool

from collector.config import CollectorConfig
from collector.errors import PermanentError
from collector.spool import Spool, SpoolEntry
from collector.telemetry import CollectorTelemetry
from collector.workers import PipelineExecutor, ProcessedPayload
from collector.writer import StagedFile, StoreWriter

logger = logging.getLogger(__name__)

MAX_INFLIGHT_BYTES = 48 * 1024 * 1024
MAX_COMMIT_BYTES = 64 * 1024 * 1024
_ERROR_BACKOFF_S = 2.0
_POLL_S = 0.05


class WriterLoop:
    def __init__(
        self,
        config: CollectorConfig,
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
        self._inflight: deque[tuple[SpoolEntry, Future[ProcessedPayload]]] = deque()
        self._inflight_bytes = 0
        self.num_batch_errors = 0

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
                ready_bytes = sum(entry.num_bytes for entry, _ in ready)
                due = time.monotonic() - last_commit >= self.config.commit_interval_s
                if ready and (due or ready_bytes >= MAX_COMMIT_BYTES):
                    self._commit(ready)
                    last_commit = time.monotonic()
                    self._maintain()
                elif not self._inflight:
                    self._maintain()
                elif ready:
                    self._stop.wait(_POLL_S)  # the next commit is not due yet
                else:
                    wait([self._inflight[0][1]], timeout=_POLL_S)
            except BrokenProcessPool:
                self._recover("a pipeline worker died")
            except Exception:  # loop boundary: keep serving; entries stay in the spool
                self._recover("writer batch failed")

    def _submit_new(self) -> None:
        room = MAX_INFLIGHT_BYTES - self._inflight_bytes
        if room <= 0:
            return
        wait_s = 0.0 if self._inflight else self.config.commit_interval_s
        entries = self.spool.take(self.config.max_batch_spans, wait_s, max_bytes=room)
        for entry in entries:
            self._inflight.append((entry, self.executor.submit_path(entry.fmt, entry.path)))
            self._inflight_bytes += entry.num_bytes

    def _ready_prefix(self) -> list[tuple[SpoolEntry, Future[ProcessedPayload]]]:
        """The oldest in-flight entries whose processing finished (in spool order)."""
        ready = []
        for entry, future in self._inflight:
            if not future.done():
                break
            ready.append((entry, future))
        return ready

    def _commit(self, ready: list[tuple[SpoolEntry, Future[ProcessedPayload]]]) -> None:
        files: list[StagedFile] = []
        committed: list[SpoolEntry] = []
        dropped: list[SpoolEntry] = []
        num_redacted = num_withheld = num_spans = 0
        for entry, future in ready:
            try:
                result = future.result()
            except PermanentError:
                # Checked before it was acknowledged; only a corrupted file lands here.
                logger.error("writer: spool entry %d no longer decodes; dropped", entry.seq)
                dropped.append(entry)
                continue
            files.extend(result.files)
            committed.append(entry)
            num_spans += result.num_spans
            num_redacted += result.num_entities_redacted
            num_withheld += result.num_spans_withheld
        started = time.perf_counter()
        written = self.writer.commit_files(files, [entry.seq for entry in committed]) if files else 0
        self.telemetry.write_seconds.observe(time.perf_counter() - started)
        for _ in ready:
            entry, _future = self._inflight.popleft()
            self._inflight_bytes -= entry.num_bytes
        self.spool.remove(committed + dropped)
        self.telemetry.spans_written.inc(written)
        self.telemetry.spans_duplicate.inc(num_spans - written)
        self.telemetry.entities_redacted.inc(num_redacted)
        self.telemetry.spans_withheld.inc(num_withheld)

    def _recover(self, what: str) -> None:
        self.num_batch_errors += 1
        self.telemetry.batch_errors.inc()
        logger.exception("writer: %s; %d spool entries will be retried", what, len(self._inflight))
        entries = [entry for entry, _ in self._inflight]
        for _, future in self._inflight:
            future.cancel()
        self._inflight.clear()
        self._inflight_bytes = 0
        self.spool.release(entries)
        try:
            self.executor.restart()
        except Exception:  # loop boundary
            logger.exception("writer: pipeline workers could not restart")
        self._stop.wait(_ERROR_BACKOFF_S)

    def _maintain(self) -> None:
        try:
            self.writer.maintain()
        except Exception:  # loop boundary
            self.telemetry.batch_errors.inc()
            logger.exception("writer: store maintenance failed")
