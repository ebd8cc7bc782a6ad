"""The collector's stages wired together, once: decode -> normalise -> redact -> write.

``Pipeline.process`` turns one export request body into a redacted ``SpanBatch``; the OTLP
receivers (through the spool) and ``tracewatch ingest`` (straight from files) both use it,
in worker processes (collector.workers).  collector.writer_loop drains the spool into the
store.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from collector.decode import PayloadFormat, decode_export_request
from collector.normalise import normalise_spans
from collector.records import SpanBatch

if TYPE_CHECKING:
    from collector.run_config import RunConfig
    from collector.redact import Redactor  # spaCy and Presidio, ~200 MB: only to redact
    from collector.writer import StoreWriter  # deltalake: not needed in pipeline workers

class Pipeline:
    """decode -> normalise -> redact for one request body."""

    def __init__(self, redactor: Redactor | None) -> None:
        self.redactor = redactor

    def process(self, fmt: PayloadFormat, read_body: Callable[[], bytes]) -> SpanBatch:
        """``read_body`` returns the request body: a body passed in would be held by the
        caller until this returns, 2.6 MB a request beside the stages that follow the
        decoding, which no longer need it."""
        raw_spans, rejected = decode_export_request(fmt, read_body())
        batch = normalise_spans(raw_spans)
        if rejected:
            batch = replace(batch, rejected=batch.rejected + tuple(rejected))
        if self.redactor is not None:
            batch = self.redactor.redact(batch)
        return batch


def build_redactor(redaction_json: str | None, data_dir: Path) -> Redactor | None:
    """The Redactor for a RedactionConfig given as JSON (RunConfig.redaction_json); None
    when redaction is off.  pydantic is imported only here, to redact."""
    if redaction_json is None:
        return None
    from collector.redaction_config import RedactionConfig

    redaction = RedactionConfig.model_validate_json(redaction_json)
    if not redaction.enabled:
        return None
    from collector.redact import Redactor

    cache_dir = data_dir / "cache"
    cache_dir.mkdir(parents=True, exist_ok=True)
    return Redactor(redaction, cache_dir)


def build_writer(config: RunConfig) -> StoreWriter:
    from collector.writer import StoreWriter, WriterSettings

    return StoreWriter(
        config.data_dir,
        WriterSettings(
            compact_min_files=config.compact_min_files,
            vacuum_retention_s=config.vacuum_retention_s,
        ),
    )
