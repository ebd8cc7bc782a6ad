"""Pipeline workers: decode -> normalise -> redact -> Arrow, in processes of their own.

Why processes: one Python process holds one interpreter lock, and decoding, normalising
and redacting are pure-Python CPU work (redaction milliseconds per span).  Measured on the
2-core machine with one process, the collector reached ~5,000 spans/s with redaction off and
kept the HTTP event loop waiting; with the stages in worker processes the receiving process
only checks, spools and commits.

``PipelineExecutor.submit_path`` (spool entries: the worker reads the file itself, so the
raw payload never crosses a pipe) and ``submit_body`` (``tracewatch ingest``) return futures
of ``ProcessedPayload``: the spans written as uncommitted Parquet files into the table
folder (``StagedFile``, with their span keys, so Parquet encoding runs in the workers too
and rows never cross a pipe) plus counters; the writer commits them.  ``workers=0`` runs the same code in the calling process (tests, debugging).
Each worker builds its own Redactor (in-process, so its segment cache stays warm).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from collector.config import CollectorConfig
from collector.decode import PayloadFormat
from collector.pipeline import Pipeline, build_redactor
from collector.schema import SPANS_TABLE, table_path
from collector.writer import StagedFile, spans_to_arrow, stage_spans

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class ProcessedPayload:
    files: list[StagedFile]
    num_spans: int
    num_rejected: int = 0
    num_entities_redacted: int = 0
    num_spans_withheld: int = 0


_pipeline: Pipeline | None = None
_table_dir: Path | None = None


def _worker_config(config: CollectorConfig) -> CollectorConfig:
    # Inside a worker, redaction runs in that worker: no nested pool.
    return config.model_copy(
        update={
            "data_dir": config.data_dir.resolve(),
            "redaction": config.redaction.model_copy(update={"workers": 0}),
        }
    )


def _init_worker(config_json: str) -> None:
    global _pipeline, _table_dir
    os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")
    for noisy in ("presidio-analyzer", "presidio-anonymizer"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    config = CollectorConfig.model_validate_json(config_json)
    _pipeline = Pipeline(build_redactor(config))
    _table_dir = table_path(config.data_dir, SPANS_TABLE)


def _process(pipeline: Pipeline, table_dir: Path, fmt: PayloadFormat, body: bytes) -> ProcessedPayload:
    batch = pipeline.process(fmt, body)
    return ProcessedPayload(
        files=stage_spans(table_dir, spans_to_arrow(list(batch.spans))),
        num_spans=len(batch.spans),
        num_rejected=len(batch.rejected),
        num_entities_redacted=sum(span.redacted_count for span in batch.spans),
        num_spans_withheld=sum(1 for span in batch.spans if span.text_withheld),
    )


def _process_path_in_worker(fmt_value: str, path: str) -> ProcessedPayload:
    assert _pipeline is not None and _table_dir is not None, "worker not initialised"
    return _process(_pipeline, _table_dir, PayloadFormat(fmt_value), Path(path).read_bytes())


def _process_body_in_worker(fmt_value: str, body: bytes) -> ProcessedPayload:
    assert _pipeline is not None and _table_dir is not None, "worker not initialised"
    return _process(_pipeline, _table_dir, PayloadFormat(fmt_value), body)


class PipelineExecutor:
    """Runs the pipeline on payloads, in ``num_workers`` processes (0: in this one)."""

    def __init__(self, config: CollectorConfig, num_workers: int) -> None:
        self._config = _worker_config(config)
        self.num_workers = num_workers
        self._local: Pipeline | None = None
        self._pool: ProcessPoolExecutor | None = None
        if num_workers == 0:
            self._local = Pipeline(build_redactor(self._config))
        else:
            self._pool = self._start_pool()

    def _start_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=self.num_workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(self._config.model_dump_json(),),
        )

    def restart(self) -> None:
        """Replace a broken pool (a worker died); callers resubmit what was in flight."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = self._start_pool()
            logger.warning("pipeline workers restarted")

    def submit_path(self, fmt: PayloadFormat, path: Path) -> Future[ProcessedPayload]:
        if self._pool is not None:
            return self._pool.submit(_process_path_in_worker, fmt.value, str(path))
        return self._run_local(fmt, path.read_bytes())

    def submit_body(self, fmt: PayloadFormat, body: bytes) -> Future[ProcessedPayload]:
        if self._pool is not None:
            return self._pool.submit(_process_body_in_worker, fmt.value, body)
        return self._run_local(fmt, body)

    def _run_local(self, fmt: PayloadFormat, body: bytes) -> Future[ProcessedPayload]:
        assert self._local is not None
        future: Future[ProcessedPayload] = Future()
        try:
            table_dir = table_path(self._config.data_dir, SPANS_TABLE)
            future.set_result(_process(self._local, table_dir, fmt, body))
        except BaseException as exc:  # delivered through the future, like the pool does
            future.set_exception(exc)
        return future

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
