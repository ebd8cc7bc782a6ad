"""Spans made with the OpenTelemetry SDK and sent with the official OTLP exporters."""

from __future__ import annotations

import json
from collections.abc import Sequence

from openinference.semconv.trace import (
    DocumentAttributes,
    MessageAttributes,
    OpenInferenceSpanKindValues,
    SpanAttributes,
)
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
    OTLPSpanExporter as GrpcSpanExporter,
)
from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
    OTLPSpanExporter as HttpSpanExporter,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as genai
from opentelemetry.trace import Status, StatusCode

# Personal data and secrets planted in the spans; none may reach the store.
PII_EMAIL = "maria.gonzalez@example.org"
PII_PHONE = "+1 415-555-0142"
PII_CARD = "4111 1111 1111 1111"
PII_SSN = "078-05-1120"
SECRET_KEY = "sk-proj-4fJ8kQ2mX9vB7nR1tY6uW3zA5cD0eH8gL2pS"
PII_VALUES = (PII_EMAIL, PII_PHONE, PII_CARD, PII_SSN, SECRET_KEY)


def make_exporter(transport: str, endpoint: str, token: str | None = None) -> SpanExporter:
    headers = {"authorization": f"Bearer {token}"} if token else None
    if transport == "http":
        return HttpSpanExporter(endpoint=f"http://{endpoint}/v1/traces", headers=headers, timeout=30)
    return GrpcSpanExporter(endpoint=endpoint, insecure=True, headers=headers, timeout=30)


def record_spans(service_name: str, build: object) -> list[ReadableSpan]:
    """Run ``build(tracer)`` and return the finished spans."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("tracewatch-tests")
    build(tracer)  # type: ignore[operator]
    provider.shutdown()
    return list(memory.get_finished_spans())


def openinference_rag_spans(question: str) -> list[ReadableSpan]:
    def build(tracer: object) -> None:
        with tracer.start_as_current_span("rag-query") as root:  # type: ignore[attr-defined]
            root.set_attribute(SpanAttributes.OPENINFERENCE_SPAN_KIND, OpenInferenceSpanKindValues.CHAIN.value)
            root.set_attribute(SpanAttributes.INPUT_VALUE, question)
            root.set_attribute(SpanAttributes.SESSION_ID, "sess-42")
            root.set_attribute(SpanAttributes.USER_ID, "user-7")
            with tracer.start_as_current_span("retrieve") as retriever:  # type: ignore[attr-defined]
                retriever.set_attribute(SpanAttributes.OPENINFERENCE_SPAN_KIND, OpenInferenceSpanKindValues.RETRIEVER.value)
                prefix = SpanAttributes.RETRIEVAL_DOCUMENTS
                retriever.set_attribute(f"{prefix}.0.{DocumentAttributes.DOCUMENT_ID}", "kb-1")
                retriever.set_attribute(f"{prefix}.0.{DocumentAttributes.DOCUMENT_SCORE}", 0.91)
                retriever.set_attribute(
                    f"{prefix}.0.{DocumentAttributes.DOCUMENT_CONTENT}",
                    f"Refunds are processed within 5 days. Contact {PII_EMAIL} for help.",
                )
            with tracer.start_as_current_span("llm") as llm:  # type: ignore[attr-defined]
                llm.set_attribute(SpanAttributes.OPENINFERENCE_SPAN_KIND, OpenInferenceSpanKindValues.LLM.value)
                llm.set_attribute(SpanAttributes.LLM_MODEL_NAME, "gpt-4o-mini")
                llm.set_attribute(SpanAttributes.LLM_PROVIDER, "openai")
                llm.set_attribute(SpanAttributes.LLM_TOKEN_COUNT_PROMPT, 1200)
                llm.set_attribute(SpanAttributes.LLM_TOKEN_COUNT_COMPLETION, 80)
                llm.set_attribute(SpanAttributes.LLM_TOKEN_COUNT_TOTAL, 1280)
                llm.set_attribute(SpanAttributes.LLM_TOKEN_COUNT_PROMPT_DETAILS_CACHE_READ, 1000)
                llm.set_attribute(SpanAttributes.LLM_PROMPT_TEMPLATE_VERSION, "v3")
                msg = f"{SpanAttributes.LLM_INPUT_MESSAGES}.0"
                llm.set_attribute(f"{msg}.{MessageAttributes.MESSAGE_ROLE}", "user")
                llm.set_attribute(f"{msg}.{MessageAttributes.MESSAGE_CONTENT}", question)
                llm.set_attribute(SpanAttributes.OUTPUT_VALUE, "Refunds take 5 days.")
                llm.set_attribute("app.feature", "refunds")

    return record_spans("support-copilot", build)


def genai_chat_spans(question: str) -> list[ReadableSpan]:
    def build(tracer: object) -> None:
        with tracer.start_as_current_span("chat gpt-4o") as span:  # type: ignore[attr-defined]
            span.set_attribute(genai.GEN_AI_OPERATION_NAME, "chat")
            span.set_attribute(genai.GEN_AI_PROVIDER_NAME, "anthropic")
            span.set_attribute(genai.GEN_AI_REQUEST_MODEL, "claude-3-5-haiku")
            span.set_attribute(genai.GEN_AI_RESPONSE_MODEL, "claude-3-5-haiku")
            span.set_attribute(genai.GEN_AI_USAGE_INPUT_TOKENS, 300)
            span.set_attribute(genai.GEN_AI_USAGE_OUTPUT_TOKENS, 40)
            span.set_attribute(
                genai.GEN_AI_INPUT_MESSAGES,
                json.dumps([{"role": "user", "parts": [{"type": "text", "content": question}]}]),
            )
            span.set_attribute(
                genai.GEN_AI_OUTPUT_MESSAGES,
                json.dumps([{"role": "assistant", "parts": [{"type": "text", "content": '{"total": 12}'}]}]),
            )

    return record_spans("doc-extraction", build)


def openllmetry_agent_spans(question: str) -> list[ReadableSpan]:
    def build(tracer: object) -> None:
        with tracer.start_as_current_span("agent.workflow") as workflow:  # type: ignore[attr-defined]
            workflow.set_attribute("traceloop.span.kind", "workflow")
            workflow.set_attribute("traceloop.entity.input", json.dumps({"question": question}))
            with tracer.start_as_current_span("openai.chat") as llm:  # type: ignore[attr-defined]
                llm.set_attribute("llm.request.type", "chat")
                llm.set_attribute(genai.GEN_AI_SYSTEM, "openai")
                llm.set_attribute(genai.GEN_AI_REQUEST_MODEL, "gpt-4o")
                llm.set_attribute("gen_ai.prompt.0.role", "user")
                llm.set_attribute("gen_ai.prompt.0.content", question)
                llm.set_attribute("gen_ai.completion.0.content", "Calling the lookup tool.")
                llm.set_attribute("llm.usage.total_tokens", 150)
                llm.set_attribute(genai.GEN_AI_USAGE_INPUT_TOKENS, 120)
                llm.set_attribute(genai.GEN_AI_USAGE_OUTPUT_TOKENS, 30)
            with tracer.start_as_current_span("lookup.tool") as tool:  # type: ignore[attr-defined]
                tool.set_attribute("traceloop.span.kind", "tool")
                try:
                    raise TimeoutError(f"lookup for {PII_PHONE} timed out")
                except TimeoutError as exc:
                    tool.record_exception(exc)
                    tool.set_status(Status(StatusCode.ERROR))

    return record_spans("agent", build)


def export(exporter: SpanExporter, spans: Sequence[ReadableSpan]) -> SpanExportResult:
    return exporter.export(list(spans))
