"""Dialect -> expected columns, for ``collector.normalise``.

Each case is a RawSpan built from attributes (and events) as an instrumentation sends them,
and the exact column values the normalised Span must carry.  Columns not named in a case
are not checked by that case.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest

from collector.normalise import normalise_span, normalise_spans
from collector.records import RawSpan, RetrievedDocument, SpanEvaluation, SpanEvent, SpanKind

TRACE = "0af7651916cd43dd8448eb211c80319c"


def make_raw(
    attributes: dict[str, Any],
    *,
    events: tuple[SpanEvent, ...] = (),
    status_code: int = 1,
    status_message: str = "",
    name: str = "span",
    resource: dict[str, Any] | None = None,
) -> RawSpan:
    return RawSpan(
        trace_id=TRACE,
        span_id="b7ad6b7169203331",
        parent_span_id="00f067aa0ba902b7",
        name=name,
        otel_kind=1,
        start_time_unix_nano=1_700_000_000_000_000_000,
        end_time_unix_nano=1_700_000_001_000_000_000,
        status_code=status_code,
        status_message=status_message,
        attributes=attributes,
        resource_attributes={"service.name": "support-bot"} if resource is None else resource,
        scope_name="test",
        events=events,
    )


def messages(*pairs: tuple[str, str]) -> str:
    return json.dumps([{"role": r, "content": c} for r, c in pairs], separators=(",", ":"))


@dataclass
class Case:
    id: str
    raw: RawSpan
    expected: dict[str, Any]
    attributes: dict[str, Any] | None = None  # exact expected ``attributes`` when given


CASES = [
    # ------------------------------------------------------------ OpenInference RAG trace
    Case(
        "openinference-llm",
        make_raw({
            "openinference.span.kind": "LLM",
            "llm.model_name": "gpt-4o-mini-2024-07-18",
            "llm.provider": "OpenAI",
            "llm.system": "openai",
            "llm.prompt_template.template": "Answer {q} using {ctx}",
            "llm.prompt_template.version": "v3",
            "llm.token_count.prompt": 812,
            "llm.token_count.completion": 96,
            "llm.token_count.total": 908,
            "llm.token_count.prompt_details.cache_read": 512,
            "llm.cost.total": 0.00042,
            "llm.input_messages.0.message.role": "system",
            "llm.input_messages.0.message.content": "Use the context.",
            "llm.input_messages.1.message.role": "user",
            "llm.input_messages.1.message.content": "Refund policy?",
            "llm.output_messages.0.message.role": "assistant",
            "llm.output_messages.0.message.content": "30 days.",
            "llm.invocation_parameters": '{"temperature": 0.1}',
            "session.id": "sess-1",
            "user.id": "user-7",
        }),
        {
            "span_kind": SpanKind.LLM, "service_name": "support-bot", "status_code": "OK",
            "model_name": "gpt-4o-mini-2024-07-18", "provider": "openai",
            "prompt_template": "Answer {q} using {ctx}", "prompt_version": "v3",
            "prompt_tokens": 812, "completion_tokens": 96, "total_tokens": 908,
            "cached_prompt_tokens": 512, "cost_usd_reported": 0.00042,
            "session_id": "sess-1", "user_id": "user-7",
            "input_text": messages(("system", "Use the context."), ("user", "Refund policy?")),
            "output_text": messages(("assistant", "30 days.")),
            "fallback_marked": False,
        },
        attributes={"llm.invocation_parameters": '{"temperature": 0.1}'},
    ),
    Case(
        "openinference-retriever",
        make_raw({
            "openinference.span.kind": "RETRIEVER",
            "input.value": "refund policy",
            "retrieval.documents.0.document.id": "doc-12",
            "retrieval.documents.0.document.score": 0.91,
            "retrieval.documents.0.document.content": "Refunds within 30 days.",
            "retrieval.documents.0.document.metadata": '{"source": "faq.md"}',
            "retrieval.documents.1.document.id": "doc-40",
            "retrieval.documents.1.document.score": "0.5",
            "retrieval.documents.1.document.content": "Shipping is free.",
        }),
        {
            "span_kind": SpanKind.RETRIEVER, "input_text": "refund policy",
            "output_text": None, "model_name": None, "prompt_tokens": None,
            "total_tokens": None,
            "retrievals": (
                RetrievedDocument(0, "doc-12", 0.91, "Refunds within 30 days."),
                RetrievedDocument(1, "doc-40", 0.5, "Shipping is free."),
            ),
        },
        attributes={"retrieval.documents.0.document.metadata": '{"source": "faq.md"}'},
    ),
    Case(
        "openinference-chain",
        make_raw({
            "openinference.span.kind": "CHAIN",
            "input.value": '{"question": "refund?"}',
            "input.mime_type": "application/json",
            "output.value": "30 days.",
            "metadata": '{"feature": "faq"}',
        }, name="rag_pipeline"),
        {
            "span_kind": SpanKind.CHAIN, "input_text": '{"question": "refund?"}',
            "output_text": "30 days.", "model_name": None, "provider": None,
            "prompt_tokens": None, "completion_tokens": None, "total_tokens": None,
            "cached_prompt_tokens": None, "cost_usd_reported": None,
        },
        attributes={"input.mime_type": "application/json", "metadata": '{"feature": "faq"}'},
    ),
    Case(
        "openinference-input-value-wins-over-messages",
        make_raw({
            "openinference.span.kind": "llm",
            "input.value": "raw request",
            "llm.input_messages.0.message.role": "user",
            "llm.input_messages.0.message.content": "hi",
            "llm.output_messages.0.message.role": "assistant",
            "llm.output_messages.0.message.contents.0.message_content.type": "text",
            "llm.output_messages.0.message.contents.0.message_content.text": "hello",
            "llm.output_messages.0.message.tool_calls.0.tool_call.id": "call_1",
            "llm.output_messages.0.message.tool_calls.0.tool_call.function.name": "lookup",
            "llm.output_messages.0.message.tool_calls.0.tool_call.function.arguments": "{}",
        }),
        {
            "span_kind": SpanKind.LLM, "input_text": "raw request",
            "output_text": json.dumps([{
                "role": "assistant", "content": "hello",
                "tool_calls": [{"id": "call_1", "name": "lookup", "arguments": "{}"}],
            }], separators=(",", ":")),
        },
        attributes={},
    ),
    Case(
        "openinference-evaluator-span",
        make_raw({
            "openinference.span.kind": "EVALUATOR",
            "output.value": '{"score": 0.8, "label": "grounded", "explanation": "cited"}',
        }, name="groundedness"),
        {
            "span_kind": SpanKind.EVALUATOR,
            "evaluations": (SpanEvaluation("groundedness", 0.8, "grounded", "cited"),),
        },
    ),
    Case(
        "eval-attributes",
        make_raw({
            "openinference.span.kind": "LLM",
            "eval.hallucination.score": 0.1,
            "eval.hallucination.label": "factual",
            "eval.hallucination.explanation": "matches context",
            "eval.tone.label": "polite",
            "eval.tone.weight": 2,
        }),
        {
            "evaluations": (
                SpanEvaluation("hallucination", 0.1, "factual", "matches context"),
                SpanEvaluation("tone", None, "polite", None),
            ),
        },
        attributes={"eval.tone.weight": 2},
    ),
    # ------------------------------------------------------------ GenAI conventions
    Case(
        "genai-chat-structured-messages",
        make_raw({
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "gcp.vertex_ai",
            "gen_ai.request.model": "gemini-2.0-flash",
            "gen_ai.response.model": "gemini-2.0-flash-001",
            "gen_ai.usage.input_tokens": 100,
            "gen_ai.usage.output_tokens": 20,
            "gen_ai.usage.cache_read.input_tokens": 64,
            "gen_ai.conversation.id": "conv-9",
            "gen_ai.system_instructions": json.dumps([{"type": "text", "content": "Be brief."}]),
            "gen_ai.input.messages": json.dumps([
                {"role": "user", "parts": [{"type": "text", "content": "Weather?"}]},
            ]),
            "gen_ai.output.messages": json.dumps([
                {"role": "assistant", "finish_reason": "tool_call", "parts": [
                    {"type": "tool_call", "id": "c1", "name": "weather",
                     "arguments": {"city": "Paris"}},
                ]},
            ]),
            "server.address": "vertex.googleapis.com",
        }),
        {
            "span_kind": SpanKind.LLM, "model_name": "gemini-2.0-flash-001",
            "provider": "google", "prompt_tokens": 100, "completion_tokens": 20,
            "cached_prompt_tokens": 64, "total_tokens": 120, "session_id": "conv-9",
            "input_text": messages(("system", "Be brief."), ("user", "Weather?")),
            "output_text": json.dumps([{
                "role": "assistant", "content": None,
                "tool_calls": [{"id": "c1", "name": "weather",
                                "arguments": '{"city":"Paris"}'}],
            }], separators=(",", ":")),
        },
        attributes={
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "gemini-2.0-flash",  # differs from the chosen response model
            "server.address": "vertex.googleapis.com",
        },
    ),
    Case(
        "genai-legacy-prompt-completion",
        make_raw({
            "gen_ai.system": "Anthropic",
            "gen_ai.request.model": "claude-3-5-sonnet",
            "gen_ai.usage.prompt_tokens": 50,
            "gen_ai.usage.completion_tokens": 7,
            "gen_ai.prompt.0.role": "user",
            "gen_ai.prompt.0.content": "Hi",
            "gen_ai.completion.0.role": "assistant",
            "gen_ai.completion.0.content": "Hello!",
            "gen_ai.completion.0.finish_reason": "end_turn",
        }),
        {
            # no operation name: a model with token counts is an LLM call
            "span_kind": SpanKind.LLM, "provider": "anthropic",
            "model_name": "claude-3-5-sonnet", "prompt_tokens": 50, "completion_tokens": 7,
            "total_tokens": 57, "input_text": messages(("user", "Hi")),
            "output_text": messages(("assistant", "Hello!")),
        },
        attributes={"gen_ai.completion.0.finish_reason": "end_turn"},
    ),
    Case(
        "genai-events",
        make_raw({
            "gen_ai.operation.name": "chat",
            "gen_ai.system": "openai",
            "gen_ai.request.model": "gpt-4o",
        }, events=(
            SpanEvent("gen_ai.system.message", 1, {"content": "Be brief."}),
            SpanEvent("gen_ai.user.message", 2, {"content": "Hello"}),
            SpanEvent("gen_ai.choice", 3, {"body": json.dumps({
                "index": 0, "finish_reason": "stop",
                "message": {"role": "assistant", "content": "Hi!"}})}),
            SpanEvent("gen_ai.evaluation.result", 4, {
                "gen_ai.evaluation.name": "relevance",
                "gen_ai.evaluation.score.value": 0.75,
                "gen_ai.evaluation.score.label": "relevant"}),
        )),
        {
            "span_kind": SpanKind.LLM, "model_name": "gpt-4o", "provider": "openai",
            "prompt_tokens": None, "completion_tokens": None, "total_tokens": None,
            "input_text": messages(("system", "Be brief."), ("user", "Hello")),
            "output_text": messages(("assistant", "Hi!")),
            "evaluations": (SpanEvaluation("relevance", 0.75, "relevant", None),),
        },
    ),
    Case(
        "genai-operations",
        make_raw({"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search"}),
        {"span_kind": SpanKind.TOOL},
        attributes={"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search"},
    ),
    Case(
        "genai-embeddings",
        make_raw({"gen_ai.operation.name": "embeddings", "gen_ai.request.model": "text-3"}),
        {"span_kind": SpanKind.EMBEDDING, "model_name": "text-3"},
    ),
    Case(
        "genai-invoke-agent",
        make_raw({"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "planner"}),
        {"span_kind": SpanKind.AGENT},
    ),
    # ------------------------------------------------------------ OpenLLMetry
    Case(
        "openllmetry-workflow",
        make_raw({
            "traceloop.span.kind": "workflow",
            "traceloop.workflow.name": "support",
            "traceloop.entity.input": '{"args": ["refund?"], "kwargs": {}}',
            "traceloop.entity.output": '"30 days"',
            "traceloop.association.properties.session_id": "s-1",
            "traceloop.association.properties.user_id": "u-1",
            "traceloop.association.properties.prompt_version": "v7",
            "traceloop.association.properties.tenant": "acme",
        }, name="support.workflow"),
        {
            "span_kind": SpanKind.CHAIN, "session_id": "s-1", "user_id": "u-1",
            "prompt_version": "v7",
            "input_text": '{"args": ["refund?"], "kwargs": {}}', "output_text": '"30 days"',
        },
        attributes={
            "traceloop.span.kind": "workflow",
            "traceloop.workflow.name": "support",
            "traceloop.association.properties.tenant": "acme",
        },
    ),
    Case(
        "openllmetry-task",
        make_raw({"traceloop.span.kind": "task", "traceloop.entity.name": "retrieve"}),
        {"span_kind": SpanKind.CHAIN},
    ),
    Case(
        "openllmetry-llm",
        make_raw({
            "llm.request.type": "chat",
            "gen_ai.system": "openai",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.response.model": "gpt-4o-2024-08-06",
            "gen_ai.usage.prompt_tokens": 300,
            "gen_ai.usage.completion_tokens": 40,
            "llm.usage.total_tokens": 340,
            "gen_ai.usage.cache_read_input_tokens": 128,
            "gen_ai.prompt.0.role": "user",
            "gen_ai.prompt.0.content": "Where is my parcel?",
            "gen_ai.completion.0.role": "assistant",
            "gen_ai.completion.0.content": "Tomorrow.",
        }),
        {
            "span_kind": SpanKind.LLM, "model_name": "gpt-4o-2024-08-06",
            "provider": "openai", "prompt_tokens": 300, "completion_tokens": 40,
            "total_tokens": 340, "cached_prompt_tokens": 128,
            "input_text": messages(("user", "Where is my parcel?")),
            "output_text": messages(("assistant", "Tomorrow.")),
        },
        attributes={"llm.request.type": "chat", "gen_ai.request.model": "gpt-4o"},
    ),
    # ------------------------------------------------------------ fallback markers
    Case(
        "fallback-flag",
        make_raw({"openinference.span.kind": "LLM", "llm.model_name": "m2",
                  "llm.fallback": True}),
        {"fallback_marked": True, "fallback_from": None},
        attributes={},
    ),
    Case(
        "fallback-string-flag",
        make_raw({"openinference.span.kind": "LLM", "fallback": "true"}),
        {"fallback_marked": True},
    ),
    Case(
        "fallback-from-differs",
        make_raw({"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o-mini",
                  "fallback_from": "gpt-4o"}),
        {"fallback_marked": True, "fallback_from": "gpt-4o", "model_name": "gpt-4o-mini"},
    ),
    Case(
        "fallback-from-same-model",
        make_raw({"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o",
                  "fallback_from": "gpt-4o"}),
        {"fallback_marked": False, "fallback_from": "gpt-4o"},
    ),
    Case(
        "fallback-flag-false",
        make_raw({"openinference.span.kind": "LLM", "llm.fallback": False}),
        {"fallback_marked": False},
        attributes={},
    ),
    # ------------------------------------------------------------ status
    Case(
        "exception-events-to-status-message",
        make_raw({"openinference.span.kind": "LLM"}, status_code=2, events=(
            SpanEvent("exception", 5, {"exception.type": "openai.RateLimitError",
                                       "exception.message": "429 Too Many Requests",
                                       "exception.stacktrace": "Traceback ..."}),
            SpanEvent("exception", 6, {"exception.type": "TimeoutError"}),
        )),
        {"status_code": "ERROR",
         "status_message": "openai.RateLimitError: 429 Too Many Requests\nTimeoutError"},
    ),
    Case(
        "status-message-wins",
        make_raw({}, status_code=2, status_message="upstream failed", events=(
            SpanEvent("exception", 5, {"exception.type": "ValueError"}),)),
        {"status_code": "ERROR", "status_message": "upstream failed",
         "span_kind": SpanKind.UNKNOWN},
    ),
    Case(
        "exception-on-ok-span-ignored",
        make_raw({}, status_code=0, events=(
            SpanEvent("exception", 5, {"exception.type": "ValueError"}),)),
        {"status_code": "UNSET", "status_message": None},
    ),
    Case(
        "bad-status-code",
        make_raw({}, status_code=7),
        {"status_code": "UNSET"},
    ),
    # ------------------------------------------------------------ missing and garbage
    Case(
        "missing-tokens-stay-null",
        make_raw({"openinference.span.kind": "LLM", "llm.token_count.prompt": 10},
                 resource={}),
        {"prompt_tokens": 10, "completion_tokens": None, "total_tokens": None,
         "cached_prompt_tokens": None, "service_name": None, "cost_usd_reported": None},
    ),
    Case(
        "garbage-values",
        make_raw({
            "openinference.span.kind": "NOT_A_KIND",
            "llm.token_count.prompt": "12",
            "llm.token_count.completion": "abc",
            "llm.token_count.total": -5,
            "llm.cost.total": "NaN",
            "llm.model_name": ["not", "a", "name"],
            "llm.provider": 42,
            "session.id": None,
            "llm.fallback": "maybe",
            "input.value": {"q": "structured"},
            "retrieval.documents.x.document.id": "bad-index",
        }),
        {
            "span_kind": SpanKind.UNKNOWN, "prompt_tokens": 12, "completion_tokens": None,
            "total_tokens": None, "cost_usd_reported": None, "model_name": None,
            "provider": None, "session_id": None, "fallback_marked": False,
            "input_text": '{"q":"structured"}', "retrievals": (),
        },
        attributes={
            "openinference.span.kind": "NOT_A_KIND",
            "llm.token_count.completion": "abc",
            "llm.token_count.total": -5,
            "llm.cost.total": "NaN",
            "llm.model_name": ["not", "a", "name"],
            "llm.provider": 42,
            "llm.fallback": "maybe",
            "retrieval.documents.x.document.id": "bad-index",
        },
    ),
    Case(
        "mixed-dialects-duplicates-dropped",
        make_raw({
            "openinference.span.kind": "LLM",
            "llm.provider": "azure",
            "gen_ai.system": "az.ai.openai",
            "llm.system": "openai",
            "llm.token_count.prompt": 5,
            "gen_ai.usage.input_tokens": 5,
        }),
        {"provider": "azure", "prompt_tokens": 5},
        attributes={"llm.system": "openai"},
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_dialect_to_columns(case: Case) -> None:
    span = normalise_span(case.raw)
    actual = {name: getattr(span, name) for name in case.expected}
    assert actual == case.expected
    if case.attributes is not None:
        assert span.attributes == case.attributes
    assert (span.trace_id, span.span_id, span.parent_span_id) == (
        TRACE, "b7ad6b7169203331", "00f067aa0ba902b7")


def test_batch_keeps_every_span_in_order() -> None:
    raws = [case.raw for case in CASES]
    batch = normalise_spans(raws)
    assert [span.span_kind for span in batch.spans] == [
        normalise_span(raw).span_kind for raw in raws]
    assert batch.rejected == ()


def test_input_attributes_are_not_mutated() -> None:
    attributes = {"openinference.span.kind": "LLM", "llm.token_count.prompt": 3, "x": 1}
    normalise_span(make_raw(attributes))
    assert attributes == {"openinference.span.kind": "LLM", "llm.token_count.prompt": 3,
                          "x": 1}


@pytest.mark.parametrize("value", [
    object(), float("inf"), b"bytes", {"nested": [1, {"deep": None}]}, [None], "", True,
])
def test_any_value_in_any_mapped_key_normalises(value: Any) -> None:
    from collector.normalise import _ROUTES  # every exact key the scan knows

    keys = [key for key, route in list(_ROUTES.items()) if route == 1]
    span = normalise_span(make_raw(dict.fromkeys(keys, value), events=(
        SpanEvent("gen_ai.choice", 1, {"body": value}),
        SpanEvent("exception", 2, {"exception.type": value}),
    ), status_code=2))
    assert span.trace_id == TRACE
    assert span.prompt_tokens is None or isinstance(span.prompt_tokens, int)
