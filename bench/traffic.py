"""Realistic RAG traffic as pre-built OTLP export requests (protobuf and OTLP/JSON bytes).

Used by ``bench/ingest.py``.  One trace = 3 spans, as the OpenInference LangChain/OpenAI
instrumentations emit them:

- ``CHAIN`` root ``rag.query``: ``input.value`` = the user question, ``output.value`` = the
  answer, ``session.id``, ``user.id``, ``metadata`` (JSON), ``tag.tags``;
- ``RETRIEVER`` ``retrieve``: ``input.value`` = the question and 3-5
  ``retrieval.documents.N.document.{id,score,content,metadata}`` drawn Zipf-like (popular
  documents come back often) from a corpus of 400 help-centre articles of ~1.1-1.5 KB;
- ``LLM`` ``ChatOpenAI``: ``llm.input_messages.0`` = one of three shared system prompts,
  ``llm.input_messages.1`` = the retrieved documents inlined + the question,
  ``llm.output_messages.0`` / ``output.value`` = the answer (new for every trace), model,
  provider, token counts (with cached tokens), invocation parameters, prompt template
  version.  5-9 KB of text per LLM span, with the repetition real traffic has (shared
  system prompts, popular documents).  ~2 % of LLM spans have status ERROR.

About 15 % of the questions carry personal data (Faker: names, emails, phone numbers,
card numbers).  Ids: every trace id is ``gen (8 bytes) + local (8 bytes)``; the request
keeps the byte offsets of the ``gen`` part so a sender stamps a fresh ``gen`` into a copy of
the template before each send (``stamp``): every request it sends holds new traces, so
nothing is deduplicated away, without rebuilding requests during the timed run.
One request holds 170 traces = 510 spans (~ the SDK BatchSpanProcessor's 512).
"""

from __future__ import annotations

import base64
import os
import random
import sys
import time
from dataclasses import dataclass

import orjson
from faker import Faker
from google.protobuf import json_format
from openinference.semconv.trace import (
    DocumentAttributes,
    MessageAttributes,
    OpenInferenceSpanKindValues,
    SpanAttributes,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as PbSpan
from opentelemetry.proto.trace.v1.trace_pb2 import Status as PbStatus

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from redaction_speed import QUESTIONS, SYSTEM_PROMPTS, TOPICS, make_question  # noqa: E402

TRACES_PER_REQUEST = 170
SPANS_PER_TRACE = 3
SPANS_PER_REQUEST = TRACES_PER_REQUEST * SPANS_PER_TRACE
GEN_BYTES = 8

MODELS = [("gpt-4o-mini", "openai", 0.6), ("gpt-4o", "openai", 0.25), ("claude-3-5-haiku-latest", "anthropic", 0.15)]
SERVICES = ["support-copilot", "docs-assistant", "billing-helper"]

_ = (QUESTIONS, TOPICS)  # same vocabulary as the redaction benchmark


@dataclass(frozen=True, slots=True)
class Template:
    """One pre-built export request and where its trace-id ``gen`` bytes sit."""

    body: bytes
    offsets: tuple[int, ...]
    num_spans: int
    text_bytes_llm: tuple[int, ...] = ()

    def stamp(self, gen: int, json_format_ids: bool) -> bytes:
        """A copy of the body whose trace ids all start with ``gen``."""
        return bytes(Stamper(self, json_format_ids).stamp(gen))


class Stamper:
    """Stamps ``gen`` into one reusable buffer of a template (numpy, ~10 us a request)."""

    def __init__(self, template: Template, json_format_ids: bool) -> None:
        import numpy as np

        self.template = template
        self.json = json_format_ids
        self.buffer = bytearray(template.body)
        self._array = np.frombuffer(self.buffer, dtype=np.uint8)
        width = 2 * GEN_BYTES if json_format_ids else GEN_BYTES
        self._index = (np.asarray(template.offsets, dtype=np.int64)[:, None] + np.arange(width)).ravel()
        self._count = len(template.offsets)
        self._np = np

    def stamp(self, gen: int) -> bytearray:
        raw = gen.to_bytes(GEN_BYTES, "big")
        value = raw.hex().encode() if self.json else raw
        self._array[self._index] = self._np.tile(self._np.frombuffer(value, dtype=self._np.uint8), self._count)
        return self.buffer


def make_corpus(fake: Faker, size: int) -> list[str]:
    """Help-centre articles of ~1.1-1.5 KB, a few mentioning people and places."""
    docs = []
    for i in range(size):
        topic = TOPICS[i % len(TOPICS)]
        sentences = [f"{topic.capitalize()} guide, revision {fake.random_int(1, 9)}."]
        target = fake.random_int(1100, 1500)
        while sum(len(s) + 1 for s in sentences) < target:
            roll = fake.random.random()
            if roll < 0.03:
                sentences.append(f"This page is maintained by {fake.name()} from the {fake.city()} office.")
            elif roll < 0.1:
                sentences.append(f"Run `acme {topic.split()[0].lower()} describe --project {fake.slug()}` to check the state.")
            else:
                sentences.append(fake.sentence(nb_words=fake.random_int(10, 22)))
        docs.append(" ".join(sentences))
    return docs


def _kv(key: str, value: object) -> KeyValue:
    if isinstance(value, bool):
        return KeyValue(key=key, value=AnyValue(bool_value=value))
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    if isinstance(value, float):
        return KeyValue(key=key, value=AnyValue(double_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=str(value)))


def _attrs(span: PbSpan, items: dict[str, object]) -> None:
    span.attributes.extend(_kv(k, v) for k, v in items.items())


class TrafficGenerator:
    """Builds templates; deterministic for a seed."""

    def __init__(self, seed: int = 11) -> None:
        self.fake = Faker("en_US")
        self.fake.seed_instance(seed)
        self.rng = random.Random(seed)
        self.corpus = make_corpus(self.fake, 400)
        self.weights = [1.0 / (rank + 1) ** 0.9 for rank in range(len(self.corpus))]
        self.now_ns = time.time_ns() - 600 * 1_000_000_000

    def build_request(self, index: int) -> tuple[ExportTraceServiceRequest, list[int]]:
        """One request (protobuf message) and the text bytes of its LLM spans."""
        rng, fake = self.rng, self.fake
        marker = rng.randbytes(GEN_BYTES)
        request = ExportTraceServiceRequest()
        llm_sizes: list[int] = []
        per_service: dict[str, object] = {}
        for t in range(TRACES_PER_REQUEST):
            service = SERVICES[(index + t) % len(SERVICES)]
            if service not in per_service:
                rs = request.resource_spans.add()
                rs.resource.attributes.extend([
                    _kv("service.name", service), _kv("service.version", "1.8.2"),
                    _kv("deployment.environment", "production"), _kv("telemetry.sdk.language", "python"),
                    _kv("telemetry.sdk.name", "opentelemetry"), _kv("telemetry.sdk.version", "1.45.2"),
                ])
                ss = rs.scope_spans.add()
                ss.scope.name = "openinference.instrumentation.langchain"
                ss.scope.version = "0.1.50"
                per_service[service] = ss
            scope_spans = per_service[service]
            trace_id = marker + index.to_bytes(2, "big") + t.to_bytes(2, "big") + rng.randbytes(4)
            root_id, retr_id, llm_id = (rng.randbytes(8) for _ in range(3))
            start = self.now_ns + rng.randrange(0, 300 * 1_000_000_000)
            retr_ms = rng.uniform(20, 180)
            llm_ms = rng.lognormvariate(6.8, 0.5)  # ~900 ms median
            end = start + int((retr_ms + llm_ms + rng.uniform(5, 40)) * 1e6)
            system_index = rng.randrange(len(SYSTEM_PROMPTS))
            system = SYSTEM_PROMPTS[system_index]
            picked = list(dict.fromkeys(rng.choices(range(len(self.corpus)), weights=self.weights, k=rng.randint(3, 5))))
            question = make_question(fake)
            answer = " ".join(fake.sentence(nb_words=rng.randint(8, 20)) for _ in range(rng.randint(2, 5)))
            context = "\n\n".join(f"[doc {n + 1}]\n{self.corpus[d]}" for n, d in enumerate(picked))
            user_message = f"Context:\n{context}\n\nQuestion: {question}"
            model, provider, _w = rng.choices(MODELS, weights=[m[2] for m in MODELS])[0]
            failed = rng.random() < 0.02

            root = scope_spans.spans.add()  # type: ignore[attr-defined]
            root.trace_id, root.span_id, root.name = trace_id, root_id, "rag.query"
            root.kind = PbSpan.SPAN_KIND_INTERNAL
            root.start_time_unix_nano, root.end_time_unix_nano = start, end
            root.status.code = PbStatus.STATUS_CODE_ERROR if failed else PbStatus.STATUS_CODE_OK
            _attrs(root, {
                SpanAttributes.OPENINFERENCE_SPAN_KIND: OpenInferenceSpanKindValues.CHAIN.value,
                SpanAttributes.INPUT_VALUE: question,
                SpanAttributes.INPUT_MIME_TYPE: "text/plain",
                SpanAttributes.OUTPUT_VALUE: "" if failed else answer,
                SpanAttributes.OUTPUT_MIME_TYPE: "text/plain",
                SpanAttributes.SESSION_ID: f"sess-{rng.randrange(10**9):09d}",
                SpanAttributes.USER_ID: f"user-{rng.randrange(50_000)}",
                SpanAttributes.METADATA: orjson.dumps({"feature": "help-center", "ab_bucket": rng.choice("AB")}).decode(),
                SpanAttributes.TAG_TAGS: '["rag", "prod"]',
            })

            retr = scope_spans.spans.add()  # type: ignore[attr-defined]
            retr.trace_id, retr.span_id, retr.parent_span_id, retr.name = trace_id, retr_id, root_id, "retrieve"
            retr.kind = PbSpan.SPAN_KIND_INTERNAL
            retr.start_time_unix_nano = start + 2_000_000
            retr.end_time_unix_nano = retr.start_time_unix_nano + int(retr_ms * 1e6)
            retr.status.code = PbStatus.STATUS_CODE_OK
            docs: dict[str, object] = {
                SpanAttributes.OPENINFERENCE_SPAN_KIND: OpenInferenceSpanKindValues.RETRIEVER.value,
                SpanAttributes.INPUT_VALUE: question,
            }
            prefix = SpanAttributes.RETRIEVAL_DOCUMENTS
            for n, d in enumerate(picked):
                docs[f"{prefix}.{n}.{DocumentAttributes.DOCUMENT_ID}"] = f"kb-{d:04d}"
                docs[f"{prefix}.{n}.{DocumentAttributes.DOCUMENT_SCORE}"] = round(0.92 - 0.07 * n - rng.random() * 0.03, 4)
                docs[f"{prefix}.{n}.{DocumentAttributes.DOCUMENT_CONTENT}"] = self.corpus[d]
                docs[f"{prefix}.{n}.{DocumentAttributes.DOCUMENT_METADATA}"] = f'{{"source": "help-center", "article": {d}}}'
            _attrs(retr, docs)

            llm = scope_spans.spans.add()  # type: ignore[attr-defined]
            llm.trace_id, llm.span_id, llm.parent_span_id, llm.name = trace_id, llm_id, root_id, "ChatOpenAI"
            llm.kind = PbSpan.SPAN_KIND_CLIENT
            llm.start_time_unix_nano = retr.end_time_unix_nano + 1_000_000
            llm.end_time_unix_nano = llm.start_time_unix_nano + int(llm_ms * 1e6)
            prompt_tokens = (len(system) + len(user_message)) // 4
            completion_tokens = len(answer) // 4
            im = SpanAttributes.LLM_INPUT_MESSAGES
            om = SpanAttributes.LLM_OUTPUT_MESSAGES
            role, content = MessageAttributes.MESSAGE_ROLE, MessageAttributes.MESSAGE_CONTENT
            llm_attrs: dict[str, object] = {
                SpanAttributes.OPENINFERENCE_SPAN_KIND: OpenInferenceSpanKindValues.LLM.value,
                SpanAttributes.LLM_MODEL_NAME: model,
                SpanAttributes.LLM_PROVIDER: provider,
                SpanAttributes.LLM_SYSTEM: provider,
                SpanAttributes.LLM_INVOCATION_PARAMETERS: orjson.dumps({"model": model, "temperature": 0.2, "max_tokens": 512}).decode(),
                SpanAttributes.LLM_PROMPT_TEMPLATE_VERSION: f"v{system_index + 1}",
                f"{im}.0.{role}": "system",
                f"{im}.0.{content}": system,
                f"{im}.1.{role}": "user",
                f"{im}.1.{content}": user_message,
            }
            if failed:
                llm.status.code = PbStatus.STATUS_CODE_ERROR
                llm.status.message = "RateLimitError: upstream returned 429"
                event = llm.events.add()
                event.name = "exception"
                event.time_unix_nano = llm.end_time_unix_nano
                event.attributes.extend([_kv("exception.type", "openai.RateLimitError"),
                                         _kv("exception.message", "Error code: 429 - rate limit reached")])
                text_bytes = len(system) + len(user_message)
            else:
                llm.status.code = PbStatus.STATUS_CODE_OK
                llm_attrs.update({
                    f"{om}.0.{role}": "assistant",
                    f"{om}.0.{content}": answer,
                    SpanAttributes.OUTPUT_VALUE: answer,
                    SpanAttributes.LLM_TOKEN_COUNT_PROMPT: prompt_tokens,
                    SpanAttributes.LLM_TOKEN_COUNT_COMPLETION: completion_tokens,
                    SpanAttributes.LLM_TOKEN_COUNT_TOTAL: prompt_tokens + completion_tokens,
                    SpanAttributes.LLM_TOKEN_COUNT_PROMPT_DETAILS_CACHE_READ: (len(system) // 4) // 128 * 128,
                })
                text_bytes = len(system) + len(user_message) + 2 * len(answer)
            _attrs(llm, llm_attrs)
            llm_sizes.append(text_bytes)
        return request, llm_sizes

    def build(self, index: int) -> tuple[Template, Template]:
        """The protobuf and OTLP/JSON templates of request ``index``."""
        request, llm_sizes = self.build_request(index)
        marker = request.resource_spans[0].scope_spans[0].spans[0].trace_id[:GEN_BYTES]
        pb_body = request.SerializeToString()
        pb_offsets = _find_all(pb_body, marker)
        json_body = to_otlp_json(request)
        json_offsets = _find_all(json_body, marker.hex().encode())
        num_spans = sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
        assert len(pb_offsets) == num_spans == len(json_offsets), (len(pb_offsets), num_spans, len(json_offsets))
        sizes = tuple(llm_sizes)
        return (Template(pb_body, tuple(pb_offsets), num_spans, sizes),
                Template(json_body, tuple(json_offsets), num_spans, sizes))


def to_otlp_json(request: ExportTraceServiceRequest) -> bytes:
    """The OTLP/JSON mapping: hex ids, enums as integers, 64-bit integers as strings."""
    document = json_format.MessageToDict(request, use_integers_for_enums=True)
    for rs in document.get("resourceSpans", []):
        for ss in rs.get("scopeSpans", []):
            for span in ss.get("spans", []):
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in span:
                        span[key] = base64.b64decode(span[key]).hex()
    return orjson.dumps(document)


def _find_all(haystack: bytes, needle: bytes) -> list[int]:
    found = []
    start = haystack.find(needle)
    while start >= 0:
        found.append(start)
        start = haystack.find(needle, start + 1)
    return found
