"""The collector's stages wired together, once: decode -> normalise -> redact -> write.

``Pipeline.process`` turns one export request body into a redacted ``SpanBatch``; the OTLP
receivers (through the spool) and ``tracewatch ingest`` (straight from files) both use it.
``WriterLoop`` drains the spool: it commits at most about once per ``commit_interval_s``,
deletes spool entries only after their commit, and survives any error of a batch (the
entries stay in the spool and are retried).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import replace

from collector.config import CollectorConfig
from collector.decode import PayloadFormat, decode_export_request
from collector.errors import PermanentError
from collector.normalise import normalise_spans
from collector.records import Span, SpanBatch
from collector.redact import Redactor
from collector.spool import Spool, SpoolEntry
from collector.telemetry import CollectorTelemetry
from collector.writer import StoreWriter, WriterSettings

logger = logging.getLogger(__name__)

_ERROR_BACKOFF_S = 2.0


class Pipeline:
    """decode -> normalise -> redact for one request body."""

    def __init__(self, redactor: Redactor | None) -> None:
        self.redactor = redactor

    def process(self, fmt: PayloadFormat, body: bytes) -> SpanBatch:
        raw_spans, rejected = decode_export_request(fmt, body)
        batch = normalise_spans(raw_spans)
        if rejected:
            batch = replace(batch, rejected=batch.rejected + tuple(rejected))
        if self.redactor is not None:
            batch = self.redactor.redact(batch)
        return batch


def build_redactor(config: CollectorConfig) -> Redactor | None:
    if not config.redaction.enabled:
        return None
    cache_dir = config.data_dir / "cache"
    cache_dir.mkdir(parents=True, exist_ok=True)
    return Redactor(config.redaction, cache_dir)


def build_writer(config: CollectorConfig) -> StoreWriter:
    return StoreWriter(
        config.data_dir,
        WriterSettings(
            compact_min_files=config.compact_min_files,
            vacuum_retention_s=config.vacuum_retention_s,
        ),
    )


class WriterLoop:
    """Background thread: spool -> pipeline -> one commit per interval -> delete entries."""

    def __init__(
        self,
        config: CollectorConfig,
        spool: Spool,
        pipeline: Pipeline,
        writer: StoreWriter,
        telemetry: CollectorTelemetry,
    ) -> None:
        self.config = config
        self.spool = spool
        self.pipeline = pipeline
        self.writer = writer
        self.telemetry = telemetry
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tracewatch-writer", daemon=True)
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
        self._thread.join(timeout=max(deadline - time.monotonic(), 0) + 30)

    def _run(self) -> None:
        last_commit = 0.0
        while not self._stop.is_set():
            wait_s = self.config.commit_interval_s - (time.monotonic() - last_commit)
            if wait_s > 0 and self.spool.num_bytes < self.spool.max_bytes // 2:
                # Commit at most about once per interval; a spool filling up goes faster.
                self._stop.wait(wait_s)
            entries = self.spool.take(self.config.max_batch_spans, self.config.commit_interval_s)
            if not entries:
                self._maintain()
                continue
            try:
                self._commit(entries)
                last_commit = time.monotonic()
            except Exception:  # loop boundary: keep serving, entries stay in the spool
                self.num_batch_errors += 1
                self.telemetry.batch_errors.inc()
                logger.exception("writer: batch of %d spool entries failed", len(entries))
                self._stop.wait(_ERROR_BACKOFF_S)
            self._maintain()

    def _commit(self, entries: list[SpoolEntry]) -> None:
        spans: list[Span] = []
        num_rejected = 0
        num_redacted = 0
        for entry in entries:
            try:
                batch = self.pipeline.process(entry.fmt, entry.read())
            except PermanentError:
                # Checked before it was acknowledged; only a corrupted file lands here.
                logger.error("writer: spool entry %d no longer decodes; dropped", entry.seq)
                continue
            spans.extend(batch.spans)
            num_rejected += len(batch.rejected)
            num_redacted += sum(span.redacted_count for span in batch.spans)
        started = time.perf_counter()
        written = self.writer.write(SpanBatch(tuple(spans)), [entry.seq for entry in entries])
        self.telemetry.write_seconds.observe(time.perf_counter() - started)
        self.spool.remove(entries)
        self.telemetry.spans_written.inc(written)
        self.telemetry.spans_duplicate.inc(len(spans) - written)
        self.telemetry.entities_redacted.inc(num_redacted)
        self.telemetry.spans_withheld.inc(sum(1 for span in spans if span.text_withheld))

    def _maintain(self) -> None:
        try:
            self.writer.maintain()
        except Exception:  # loop boundary
            self.telemetry.batch_errors.inc()
            logger.exception("writer: store maintenance failed")
