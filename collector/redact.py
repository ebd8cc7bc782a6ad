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
- ``config.workers > 1``: spans are redacted in a pool of that many processes (spawn
  context; each builds its own engine and cache).  A worker that dies withholds its
  shard and the pool is rebuilt.
- Nothing here logs or raises with span text: only ids and counts.

Counters (read by the collector's metrics): ``num_entities_redacted``,
``num_spans_withheld`` and ``entity_counts`` (entity type -> replacements).
"""

from __future__ import annotations

import logging
import multiprocessing
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson

from collector.config import RedactionConfig
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

    def __init__(self, config: RedactionConfig, cache_dir: Path) -> None:
        self._config = config
        self._cache_dir = Path(cache_dir)
        self._allow_keys = list(config.allow_keys)
        self.num_entities_redacted = 0
        self.num_spans_withheld = 0
        self.entity_counts: Counter[str] = Counter()
        self._engine: TextRedactionEngine | None = None
        self._pool: ProcessPoolExecutor | None = None
        if not config.enabled:
            return
        self._cache_dir.mkdir(parents=True, exist_ok=True)
        if config.workers > 1:
            self._pool = self._start_pool()
        else:
            self._engine = TextRedactionEngine(config, self._cache_dir)

    # -- public -----------------------------------------------------------------------

    def redact(self, batch: SpanBatch) -> SpanBatch:
        """Return the batch with every redactable string replaced (or withheld)."""
        if not self._config.enabled or not batch.spans:
            return batch
        if self._pool is not None and len(batch.spans) > 1:
            spans = self._redact_in_pool(list(batch.spans))
        else:
            spans, counts, withheld = self._redact_spans(list(batch.spans))
            self._add_counts(counts, withheld)
        return replace(batch, spans=tuple(spans))

    def redact_text(self, text: str) -> tuple[str, int]:
        """Redact one free text; return it and the number of entities replaced."""
        if not self._config.enabled:
            return text, 0
        result = self.engine.redact_texts([text])[0]
        return result.text, len(result.findings)

    @property
    def engine(self) -> TextRedactionEngine:
        """The in-process engine (built on first use when spans go to workers)."""
        if self._engine is None:
            self._engine = TextRedactionEngine(self._config, self._cache_dir)
        return self._engine

    def close(self) -> None:
        """Stop the worker processes, if any."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __enter__(self) -> Redactor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- in process -------------------------------------------------------------------

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

    def _start_pool(self) -> ProcessPoolExecutor:
        pool = ProcessPoolExecutor(
            max_workers=self._config.workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(self._config.model_dump(), str(self._cache_dir)),
        )
        # Load the model in every worker now, not on the first batch.
        for future in [pool.submit(_worker_ready) for _ in range(self._config.workers)]:
            future.result()
        return pool

    def _redact_in_pool(self, spans: list[Span]) -> list[Span]:
        assert self._pool is not None
        num_shards = min(self._config.workers, len(spans))
        size = -(-len(spans) // num_shards)
        shards = [spans[i : i + size] for i in range(0, len(spans), size)]
        futures: list[Future[tuple[list[Span], Counter[str], int]]] = [
            self._pool.submit(_redact_in_worker, shard) for shard in shards
        ]
        out: list[Span] = []
        broken = False
        for shard, future in zip(shards, futures):
            try:
                redacted, counts, withheld = future.result()
            except Exception:  # noqa: BLE001 - a dead worker withholds its shard (fail closed)
                logger.exception("redaction worker failed; withholding %d spans", len(shard))
                redacted = [withhold_span(span, self._allow_keys) for span in shard]
                counts, withheld, broken = Counter(), len(shard), True
            out.extend(redacted)
            self._add_counts(counts, withheld)
        if broken:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = self._start_pool()
        return out


_worker_redactor: Redactor | None = None


def _init_worker(config_data: dict[str, Any], cache_dir: str) -> None:
    global _worker_redactor
    config = RedactionConfig.model_validate({**config_data, "workers": 0})
    _worker_redactor = Redactor(config, Path(cache_dir))


def _worker_ready() -> bool:
    return _worker_redactor is not None


def _redact_in_worker(spans: list[Span]) -> tuple[list[Span], Counter[str], int]:
    assert _worker_redactor is not None
    return _worker_redactor._redact_spans(spans)
