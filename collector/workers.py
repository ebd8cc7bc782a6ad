"""Pipeline workers: decode -> normalise -> redact -> Arrow, in processes of their own.

Why processes: one Python process holds one interpreter lock, and decoding, normalising
and redacting are pure-Python CPU work (redaction milliseconds per span).  Measured on the
2-core machine with one process, the collector reached ~5,000 spans/s with redaction off and
kept the HTTP event loop waiting; with the stages in worker processes the receiving process
only checks, spools and commits.

``PipelineExecutor.submit_paths`` (a group of spool entries: the worker reads the files
itself, so the raw payload never crosses a pipe, and writes one Parquet file per day for
the whole group, so files stay few and large) and ``submit_body`` (``tracewatch ingest``) return futures
of ``ProcessedPayload``: the spans written as uncommitted Parquet files into the table
folder (``StagedFile``, with their span keys, so Parquet encoding runs in the workers too
and rows never cross a pipe) plus counters; the writer commits them.  ``workers=0`` runs the same code in the calling process (tests, debugging).
Each worker builds its own Redactor (in-process, so its segment cache stays warm).
``submit_compaction`` has a worker rewrite a partition's small files (collector.compaction):
single-threaded processes keep that rewrite near its 100 MB, the receiving process did not.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, TypeVar
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from collector.compaction import CompactedFile, CompactionPlan, rewrite_files
from collector.decode import PayloadFormat
from collector.errors import PermanentError
from collector.pipeline import Pipeline, build_redactor
from collector.runtime import tune_runtime
from collector.schema import SPANS_TABLE, table_path
from collector.staging import StagedFile, StagingFiles
from collector.worker_start import start_worker

if TYPE_CHECKING:
    from collector.run_config import RunConfig

logger = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(slots=True)
class ProcessedPayload:
    files: list[StagedFile]
    num_spans: int
    num_rejected: int = 0
    num_entities_redacted: int = 0
    num_spans_withheld: int = 0
    undecodable: list[str] = field(default_factory=list)  # spool paths that no longer decode


_pipeline: Pipeline | None = None
_table_dir: Path | None = None


def init_worker(data_dir: str, redaction_json: str | None) -> None:
    """Set up this worker process (collector.worker_start chose what it may load).

    ``redaction_json``: a RedactionConfig as JSON, None when redaction is off."""
    global _pipeline, _table_dir
    os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")
    for noisy in ("presidio-analyzer", "presidio-anonymizer"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    _pipeline = Pipeline(build_redactor(redaction_json, Path(data_dir)))
    _table_dir = table_path(Path(data_dir), SPANS_TABLE)
    tune_runtime()


BodyReader = Callable[[], bytes]


def _process(pipeline: Pipeline, table_dir: Path, bodies: Iterable[tuple[PayloadFormat, BodyReader]],
             names: list[str] | None = None) -> ProcessedPayload:
    """Process request bodies into one set of staged files (one per day partition).

    With ``names``, a body that does not decode is listed in ``undecodable`` instead of
    failing the others; without, the PermanentError propagates.
    """
    staging = StagingFiles(table_dir)
    undecodable: list[str] = []
    num_spans = num_rejected = num_redacted = num_withheld = 0
    try:
        for i, (fmt, read_body) in enumerate(bodies):
            try:
                batch = pipeline.process(fmt, read_body)
            except PermanentError:
                if names is None:
                    raise
                undecodable.append(names[i])
                continue
            # Written request by request: one request's objects and rows live at a time.
            staging.add(batch.spans)
            num_spans += len(batch.spans)
            num_rejected += len(batch.rejected)
            num_redacted += sum(span.redacted_count for span in batch.spans)
            num_withheld += sum(1 for span in batch.spans if span.text_withheld)
            del batch
        files = staging.close()
    except BaseException:
        staging.abort()
        raise
    return ProcessedPayload(
        files=files,
        num_spans=num_spans,
        num_rejected=num_rejected,
        num_entities_redacted=num_redacted,
        num_spans_withheld=num_withheld,
        undecodable=undecodable,
    )


def _read_paths(paths: list[tuple[str, str]]) -> tuple[Iterator[tuple[PayloadFormat, BodyReader]], list[str]]:
    """Bodies read one at a time, as they are processed."""
    return ((PayloadFormat(fmt), Path(path).read_bytes) for fmt, path in paths), [p for _, p in paths]


def _process_paths_in_worker(paths: list[tuple[str, str]]) -> ProcessedPayload:
    assert _pipeline is not None and _table_dir is not None, "worker not initialised"
    bodies, names = _read_paths(paths)
    return _process(_pipeline, _table_dir, bodies, names)


def _compact_in_worker(plan: CompactionPlan) -> list[CompactedFile]:
    assert _table_dir is not None, "worker not initialised"
    return rewrite_files(_table_dir, plan)


def _process_body_in_worker(fmt_value: str, body: bytes) -> ProcessedPayload:
    assert _pipeline is not None and _table_dir is not None, "worker not initialised"
    return _process(_pipeline, _table_dir, [(PayloadFormat(fmt_value), lambda: body)])


def _ready_in_worker() -> int:
    return os.getpid()


class PipelineExecutor:
    """Runs the pipeline on payloads, in ``num_workers`` processes (0: in this one)."""

    def __init__(self, config: RunConfig, num_workers: int) -> None:
        self._data_dir = config.data_dir.resolve()
        self._redaction_json = config.redaction_json
        self.num_workers = num_workers
        self._local: Pipeline | None = None
        self._pool: ProcessPoolExecutor | None = None
        if num_workers == 0:
            self._local = Pipeline(build_redactor(self._redaction_json, self._data_dir))
        else:
            self._pool = self._start_pool()

    def _start_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=self.num_workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=start_worker,
            initargs=(str(self._data_dir), self._redaction_json),
        )

    def restart(self) -> None:
        """Replace a broken pool (a worker died); callers resubmit what was in flight."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = self._start_pool()
            logger.warning("pipeline workers restarted")

    def warm_up(self) -> None:
        """Start every worker process now (imports take seconds), not on the first request."""
        if self._pool is not None:
            for future in [self._pool.submit(_ready_in_worker) for _ in range(self.num_workers)]:
                future.result()

    def submit_paths(self, paths: list[tuple[PayloadFormat, Path]]) -> Future[ProcessedPayload]:
        """Spool files, processed together into one staged file per day partition."""
        items = [(fmt.value, str(path)) for fmt, path in paths]
        if self._pool is not None:
            return self._pool.submit(_process_paths_in_worker, items)
        local = self._local
        assert local is not None
        return _called_here(lambda: _process(local, self._table_dir, *_read_paths(items)))

    def submit_compaction(self, plan: CompactionPlan) -> Future[list[CompactedFile]]:
        """Rewrite a compaction plan's files in a worker (the caller commits them)."""
        if self._pool is not None:
            return self._pool.submit(_compact_in_worker, plan)
        return _called_here(lambda: rewrite_files(self._table_dir, plan))

    def submit_body(self, fmt: PayloadFormat, body: bytes) -> Future[ProcessedPayload]:
        if self._pool is not None:
            return self._pool.submit(_process_body_in_worker, fmt.value, body)
        local = self._local
        assert local is not None
        return _called_here(lambda: _process(local, self._table_dir, [(fmt, lambda: body)]))

    @property
    def _table_dir(self) -> Path:
        return table_path(self._data_dir, SPANS_TABLE)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def _called_here(call: Callable[[], T]) -> Future[T]:
    """``call``'s result or exception in a future, as the pool would deliver it."""
    future: Future[T] = Future()
    try:
        future.set_result(call())
    except BaseException as exc:  # delivered through the future, like the pool does
        future.set_exception(exc)
    return future
