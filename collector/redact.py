"""Redaction stage: ``Redactor.redact(batch) -> SpanBatch`` with personal data and secrets
replaced by ``<ENTITY_TYPE>`` placeholders (``<EMAIL_ADDRESS>``, ``<API_KEY>``).

Contract:

- Fields redacted on each span: ``input_text``, ``output_text``, ``status_message``,
  ``prompt_template``, every string in ``attributes`` under a key that is not allow-listed
  (``config.allow_keys``: exact keys, or prefixes written ``prefix*``), recursively through
  lists and dicts (keys of nested dicts included), ``retrievals[].content`` and
  ``evaluations[].explanation``.
- A string that holds a JSON object or array (an OpenInference ``input.value`` message
  list, a tool call's arguments) is parsed, its string leaves and keys are redacted, and it
  is written back as compact JSON, so it stays valid JSON.  Other strings are redacted as
  text.  Numbers, booleans and ids outside strings are left as they are.
- ``redacted_count`` is the number of entities replaced in the span (the same document
  inlined in the prompt and listed in ``retrievals`` counts in both places).
- Fail closed: if anything goes wrong for a span, the span is kept with every free-text
  field set to None, every redactable attribute string set to ``"<WITHHELD>"`` and
  ``text_withheld=True``; ``num_spans_withheld`` counts it.  One failing span does not
  withhold the others of its batch.
- ``config.enabled=False``: the batch is returned unchanged.
- ``config.workers``: 0 = redact in the calling process; N >= 1 = N worker processes
  (``python -c`` children over pipes, not a multiprocessing pool: a spawned pool
  re-imports the host's ``__main__`` and broke with BrokenProcessPool when that was
  stdin or an unguarded script).  A batch is sharded by a stable hash of the trace id
  (``shard_of``), so a trace's spans and its repeated question/answer hit one worker's
  warm cache; output order and results equal the in-process ones.  Workers get
  ``TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS=""`` and ``TLDEXTRACT_CACHE``/``XDG_CACHE_HOME``
  under ``cache_dir``.  If the workers cannot start (no interpreter, a worker failing to
  build its engine, a 180 s timeout), a warning is logged and spans are redacted in the
  calling process.  A worker found dead before a send is replaced and the shard resent;
  one that fails during a batch withholds its shard (fail closed) and is replaced.
  ``close()`` stops the workers (EOF on their pipe; killed after 10 s).
  Measured (bench/redaction_speed.py, load average 9): 2 workers 103-150 spans/s wall vs
  59-81 in-process; 255 vs 327 spans per CPU-second (pickling, two caches to warm).
- Nothing here logs or raises with span text: only ids and counts.

Counters (read by the collector's metrics): ``num_entities_redacted``,
``num_spans_withheld`` and ``entity_counts`` (entity type -> replacements).
"""

from __future__ import annotations

import logging
import os
import pickle
import subprocess
import sys
import threading
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import orjson

from collector.redaction_config import RedactionConfig
from collector.records import RetrievedDocument, Span, SpanBatch, SpanEvaluation
from collector.redact_engine import TextRedactionEngine

logger = logging.getLogger(__name__)

WITHHELD = "<WITHHELD>"

TextFn = Callable[[str], str]


def is_allowed_key(key: str, allow_keys: list[str]) -> bool:
    """True when ``key`` equals an allow-list entry or starts with a ``prefix*`` entry."""
    for pattern in allow_keys:
        if pattern.endswith("*"):
            if key.startswith(pattern[:-1]):
                return True
        elif key == pattern:
            return True
    return False


def _looks_like_json(text: str) -> bool:
    stripped = text.strip()
    return len(stripped) >= 2 and (
        (stripped[0] == "{" and stripped[-1] == "}") or (stripped[0] == "[" and stripped[-1] == "]")
    )


def _map_value(value: Any, fn: TextFn) -> Any:
    """Apply ``fn`` to every string leaf (and dict key) of a nested value."""
    if isinstance(value, str):
        return _map_text(value, fn)
    if isinstance(value, list | tuple):
        return [_map_value(item, fn) for item in value]
    if isinstance(value, dict):
        return {_map_text(str(k), fn): _map_value(v, fn) for k, v in value.items()}
    return value


def _map_text(text: str, fn: TextFn) -> str:
    """Apply ``fn`` to a string, or to the string leaves of the JSON it holds."""
    if _looks_like_json(text):
        try:
            parsed = orjson.loads(text)
        except orjson.JSONDecodeError:
            return fn(text)
        if isinstance(parsed, dict | list):
            return orjson.dumps(_map_value(parsed, fn)).decode()
    return fn(text)


def _map_optional(text: str | None, fn: TextFn) -> str | None:
    return None if text is None else _map_text(text, fn)


def map_span_text(span: Span, fn: TextFn, allow_keys: list[str]) -> Span:
    """Return ``span`` with ``fn`` applied to every redactable string."""
    attributes = {
        key: value if is_allowed_key(key, allow_keys) else _map_value(value, fn)
        for key, value in span.attributes.items()
    }
    return replace(
        span,
        input_text=_map_optional(span.input_text, fn),
        output_text=_map_optional(span.output_text, fn),
        status_message=_map_optional(span.status_message, fn),
        prompt_template=_map_optional(span.prompt_template, fn),
        attributes=attributes,
        retrievals=tuple(
            replace(doc, content=_map_optional(doc.content, fn)) for doc in span.retrievals
        ),
        evaluations=tuple(
            replace(ev, explanation=_map_optional(ev.explanation, fn)) for ev in span.evaluations
        ),
    )


def _withhold_value(value: Any) -> Any:
    if isinstance(value, str):
        return WITHHELD
    if isinstance(value, list | tuple):
        return [_withhold_value(item) for item in value]
    if isinstance(value, dict):
        return {WITHHELD: WITHHELD} if value else {}
    return value


def withhold_span(span: Span, allow_keys: list[str]) -> Span:
    """Drop every free-text field of ``span`` (redaction failed: fail closed)."""
    return replace(
        span,
        input_text=None,
        output_text=None,
        status_message=None,
        prompt_template=None,
        attributes={
            key: value if is_allowed_key(key, allow_keys) else _withhold_value(value)
            for key, value in span.attributes.items()
        },
        retrievals=tuple(RetrievedDocument(d.position, d.document_id, d.score, None) for d in span.retrievals),
        evaluations=tuple(SpanEvaluation(e.name, e.score, e.label, None) for e in span.evaluations),
        redacted_count=0,
        text_withheld=True,
    )


class Redactor:
    """Replaces personal data and secrets in spans; see the module docstring."""

    def __init__(
        self,
        config: RedactionConfig,
        cache_dir: Path,
        *,
        engine_options: dict[str, Any] | None = None,
    ) -> None:
        self._config = config
        self._cache_dir = Path(cache_dir)
        self._allow_keys = list(config.allow_keys)
        self._engine_options = dict(engine_options or {})
        self.num_entities_redacted = 0
        self.num_spans_withheld = 0
        self.entity_counts: Counter[str] = Counter()
        self._engine: TextRedactionEngine | None = None
        self._workers: list[_Worker | None] = []
        self._pool_lock = threading.Lock()
        if not config.enabled:
            return
        self._cache_dir.mkdir(parents=True, exist_ok=True)
        if config.workers >= 1:
            self._workers = self._start_workers(config.workers)
        if not self._workers:
            self._engine = self._build_engine()

    # -- public -----------------------------------------------------------------------

    @property
    def num_workers(self) -> int:
        """Worker processes alive (0: spans are redacted in this process)."""
        return sum(1 for worker in self._workers if worker is not None)

    def redact(self, batch: SpanBatch) -> SpanBatch:
        """Return the batch with every redactable string replaced (or withheld)."""
        if not self._config.enabled or not batch.spans:
            return batch
        if self._workers:
            spans = self._redact_in_workers(list(batch.spans))
        else:
            spans, counts, withheld = self._redact_spans(list(batch.spans))
            self._add_counts(counts, withheld)
        return replace(batch, spans=tuple(spans))

    def redact_text(self, text: str) -> tuple[str, int]:
        """Redact one free text (in this process); return it and the entities replaced."""
        if not self._config.enabled:
            return text, 0
        result = self.engine.redact_texts([text])[0]
        return result.text, len(result.findings)

    @property
    def engine(self) -> TextRedactionEngine:
        """The in-process engine (built on first use when spans go to workers)."""
        if self._engine is None:
            self._engine = self._build_engine()
        return self._engine

    def close(self) -> None:
        """Stop the worker processes, if any (idempotent)."""
        with self._pool_lock:
            workers, self._workers = self._workers, []
        for worker in workers:
            if worker is not None:
                worker.stop()

    def __enter__(self) -> Redactor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass

    # -- in process -------------------------------------------------------------------

    def _build_engine(self) -> TextRedactionEngine:
        return TextRedactionEngine(self._config, self._cache_dir, **self._engine_options)

    def _redact_spans(self, spans: list[Span]) -> tuple[list[Span], Counter[str], int]:
        """Redact spans together (one pass over the engine); fall back span by span."""
        try:
            texts: dict[str, None] = {}

            def collect(text: str) -> str:
                texts[text] = None
                return text

            for span in spans:
                map_span_text(span, collect, self._allow_keys)
            results = dict(zip(texts, self.engine.redact_texts(list(texts))))
        except Exception:  # noqa: BLE001 - a batch-level failure is retried span by span
            logger.warning("batch redaction failed for %d spans; retrying one by one", len(spans))
            return self._redact_spans_one_by_one(spans)
        out: list[Span] = []
        counts: Counter[str] = Counter()
        withheld = 0
        for span in spans:
            span_counts: Counter[str] = Counter()

            def apply(text: str) -> str:
                result = results[text]
                span_counts.update(f.entity_type for f in result.findings)
                return result.text

            try:
                redacted = map_span_text(span, apply, self._allow_keys)
                out.append(replace(redacted, redacted_count=sum(span_counts.values())))
                counts.update(span_counts)
            except Exception:  # noqa: BLE001 - fail closed for this span only
                logger.warning("redaction failed for span %s/%s; text withheld", span.trace_id, span.span_id)
                out.append(withhold_span(span, self._allow_keys))
                withheld += 1
        return out, counts, withheld

    def _redact_spans_one_by_one(self, spans: list[Span]) -> tuple[list[Span], Counter[str], int]:
        out: list[Span] = []
        counts: Counter[str] = Counter()
        withheld = 0
        for span in spans:
            span_counts: Counter[str] = Counter()

            def apply(text: str) -> str:
                result = self.engine.redact_texts([text])[0]
                span_counts.update(f.entity_type for f in result.findings)
                return result.text

            try:
                redacted = map_span_text(span, apply, self._allow_keys)
                out.append(replace(redacted, redacted_count=sum(span_counts.values())))
                counts.update(span_counts)
            except Exception:  # noqa: BLE001 - fail closed for this span only
                logger.warning("redaction failed for span %s/%s; text withheld", span.trace_id, span.span_id)
                out.append(withhold_span(span, self._allow_keys))
                withheld += 1
        return out, counts, withheld

    def _add_counts(self, counts: Counter[str], withheld: int) -> None:
        self.entity_counts.update(counts)
        self.num_entities_redacted += sum(counts.values())
        self.num_spans_withheld += withheld

    # -- worker processes -------------------------------------------------------------

    def _start_workers(self, count: int) -> list[_Worker | None]:
        """Start ``count`` workers; on any failure stop them and return [] (in-process)."""
        workers: list[_Worker] = []
        try:
            for _ in range(count):
                workers.append(_Worker(self._config, self._cache_dir, self._engine_options))
            for worker in workers:
                worker.wait_ready(_WORKER_START_TIMEOUT_S)
        except Exception as exc:  # noqa: BLE001 - any start failure: fall back, never crash
            logger.warning(
                "redaction: could not start %d worker process(es) (%s); redacting in the "
                "calling process instead", count, type(exc).__name__,
            )
            for worker in workers:
                worker.stop()
            return []
        return list(workers)

    def _redact_in_workers(self, spans: list[Span]) -> list[Span]:
        """Shard by trace id (stable hash), one shard per worker, results in input order."""
        with self._pool_lock:
            num = len(self._workers)
            shards: list[list[int]] = [[] for _ in range(num)]
            for index, span in enumerate(spans):
                shards[shard_of(span.trace_id, num)].append(index)
            sent: list[tuple[int, _Worker | None]] = []
            for number, indices in enumerate(shards):
                if not indices:
                    continue
                worker = self._workers[number]
                if worker is not None:
                    try:
                        worker.send([spans[i] for i in indices])
                    except Exception:  # noqa: BLE001 - a dead worker: restarted below
                        logger.warning("redaction worker %d did not take its shard", number)
                        worker = self._replace_worker(number)
                        if worker is not None:
                            try:
                                worker.send([spans[i] for i in indices])
                            except Exception:  # noqa: BLE001
                                worker = self._replace_worker(number, start_new=False)
                sent.append((number, worker))
            out: list[Span | None] = [None] * len(spans)
            for number, worker in sent:
                indices = shards[number]
                shard = [spans[i] for i in indices]
                if worker is None:
                    redacted, counts, withheld = self._redact_spans(shard)
                else:
                    try:
                        redacted, counts, withheld = worker.receive(_WORKER_BATCH_TIMEOUT_S)
                    except Exception:  # noqa: BLE001 - a dead worker withholds its shard (fail closed)
                        logger.warning("redaction worker %d failed; withholding %d spans", number, len(shard))
                        redacted = [withhold_span(span, self._allow_keys) for span in shard]
                        counts, withheld = Counter(), len(shard)
                        self._replace_worker(number)
                for index, span in zip(indices, redacted):
                    out[index] = span
                self._add_counts(counts, withheld)
        assert all(span is not None for span in out)
        return out  # type: ignore[return-value]

    def _replace_worker(self, number: int, *, start_new: bool = True) -> _Worker | None:
        """Stop worker ``number`` and start a new one; None (in-process) if that fails."""
        old = self._workers[number]
        if old is not None:
            old.stop()
        self._workers[number] = None
        if not start_new:
            return None
        started = self._start_workers(1)
        self._workers[number] = started[0] if started else None
        return self._workers[number]


def shard_of(trace_id: str, num_shards: int) -> int:
    """The worker a trace goes to: stable across runs and processes (not ``hash()``)."""
    return zlib.crc32(trace_id.encode()) % num_shards if num_shards > 1 else 0


_WORKER_START_TIMEOUT_S = 180.0
_WORKER_BATCH_TIMEOUT_S = 600.0


def worker_environment(cache_dir: Path) -> dict[str, str]:
    """Environment of a worker process: offline, private caches, ``collector`` importable."""
    env = dict(os.environ)
    env["TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS"] = ""
    env["TLDEXTRACT_CACHE"] = str(cache_dir / "tldextract")
    env["XDG_CACHE_HOME"] = str(cache_dir / "xdg")
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    package_root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH", "")) if p)
    return env


class _Worker:
    """One worker process: ``python -c`` running ``_worker_main`` over two pipes.

    Not multiprocessing: a spawned pool re-imports the parent's ``__main__``, which breaks
    (BrokenProcessPool) when the host runs from stdin, an unguarded script or an embedded
    interpreter.  Messages are pickles framed by ``multiprocessing.connection``.
    """

    def __init__(self, config: RedactionConfig, cache_dir: Path, engine_options: dict[str, Any]) -> None:
        if not sys.executable:
            raise RuntimeError("no Python executable to start a worker with")
        parent_read, child_write = os.pipe()
        child_read, parent_write = os.pipe()
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-c", f"from collector.redact import _worker_main; _worker_main({child_read}, {child_write})"],
                env=worker_environment(cache_dir),
                stdin=subprocess.DEVNULL,
                pass_fds=(child_read, child_write),
                close_fds=True,
            )
        finally:
            os.close(child_read)
            os.close(child_write)
        self._to_worker = Connection(parent_write, readable=False)
        self._from_worker = Connection(parent_read, writable=False)
        self._to_worker.send_bytes(pickle.dumps((config.model_dump(), str(cache_dir), engine_options)))

    def wait_ready(self, timeout_s: float) -> None:
        if not self._from_worker.poll(timeout_s):
            raise TimeoutError("worker did not start in time")
        if pickle.loads(self._from_worker.recv_bytes()) != "ready":
            raise RuntimeError("worker failed to start")

    def send(self, spans: list[Span]) -> None:
        self._to_worker.send_bytes(pickle.dumps(spans, protocol=pickle.HIGHEST_PROTOCOL))

    def receive(self, timeout_s: float) -> tuple[list[Span], Counter[str], int]:
        if not self._from_worker.poll(timeout_s):
            raise TimeoutError("worker did not answer in time")
        answer = pickle.loads(self._from_worker.recv_bytes())
        if not isinstance(answer, tuple):
            raise RuntimeError("worker failed on a batch")
        return answer  # type: ignore[no-any-return]

    def stop(self) -> None:
        for conn in (self._to_worker, self._from_worker):
            try:
                conn.close()
            except OSError:
                pass
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(timeout=10)


def _worker_main(read_fd: int, write_fd: int) -> None:
    """Entry point of a worker process: build a Redactor, then redact batches until EOF."""
    os.dup2(2, 1)  # stray prints of libraries go to stderr, never into the pipe
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s redaction-worker: %(message)s")
    logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)  # "recognizer not added" noise
    receive = Connection(read_fd, writable=False)
    reply = Connection(write_fd, readable=False)
    try:
        config_data, cache_dir, engine_options = pickle.loads(receive.recv_bytes())
        config = RedactionConfig.model_validate({**config_data, "workers": 0})
        redactor = Redactor(config, Path(cache_dir), engine_options=engine_options)
    except Exception:  # noqa: BLE001 - reported to the parent, which falls back
        logger.exception("redaction worker could not start")
        reply.send_bytes(pickle.dumps("failed"))
        return
    reply.send_bytes(pickle.dumps("ready"))
    while True:
        try:
            spans = pickle.loads(receive.recv_bytes())
        except EOFError:
            return
        try:
            answer: object = redactor._redact_spans(spans)
        except Exception:  # noqa: BLE001 - the parent withholds the shard
            logger.error("redaction worker: batch of %d spans failed", len(spans))
            answer = "failed"
        reply.send_bytes(pickle.dumps(answer, protocol=pickle.HIGHEST_PROTOCOL))
