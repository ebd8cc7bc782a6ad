"""The collector's own metrics, served as Prometheus text on ``GET /metrics``.

Counters, never log lines per span (the Collector's guideline).  Each collector instance has
its own registry so tests can run several in one process.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class CollectorTelemetry:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "tracewatch_requests", "Export requests by transport and outcome",
            ["transport", "outcome"], registry=r,
        )
        self.spans_received = Counter(
            "tracewatch_spans_received", "Spans in export requests", ["transport"], registry=r
        )
        self.spans_accepted = Counter(
            "tracewatch_spans_accepted", "Spans acknowledged (spooled durably)", registry=r
        )
        self.spans_rejected = Counter(
            "tracewatch_spans_rejected", "Spans refused (bad ids, bad payload, refused request)",
            registry=r,
        )
        self.spans_written = Counter(
            "tracewatch_spans_written", "Spans committed to the store", registry=r
        )
        self.spans_duplicate = Counter(
            "tracewatch_spans_duplicate", "Spans already stored, skipped", registry=r
        )
        self.entities_redacted = Counter(
            "tracewatch_redacted_entities", "Personal data and secrets replaced", registry=r
        )
        self.spans_withheld = Counter(
            "tracewatch_spans_withheld",
            "Spans stored with text withheld because redaction failed", registry=r,
        )
        self.batch_errors = Counter(
            "tracewatch_writer_errors", "Writer batches or maintenance runs that failed",
            registry=r,
        )
        self.write_seconds = Histogram(
            "tracewatch_write_latency_seconds", "Time to commit one batch to the store",
            registry=r, buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.queue_spans = Gauge(
            "tracewatch_queue_spans", "Spans acknowledged and waiting to be written", registry=r
        )
        self.queue_bytes = Gauge(
            "tracewatch_queue_bytes", "Bytes in the spool waiting to be written", registry=r
        )

    def bind_queue(self, spans: Callable[[], float], num_bytes: Callable[[], float]) -> None:
        self.queue_spans.set_function(spans)
        self.queue_bytes.set_function(num_bytes)

    def render(self) -> bytes:
        return generate_latest(self.registry)
