"""The OpenLLMetry (Traceloop SDK) dialect.

Keys come from ``opentelemetry.semconv_ai`` (package ``opentelemetry-semantic-conventions-ai``,
Traceloop's extension of the GenAI conventions).  OpenLLMetry LLM spans otherwise speak the
GenAI dialect (``gen_ai.system``, ``gen_ai.prompt.N.*``, ``gen_ai.usage.prompt_tokens``),
which ``genai.py`` handles.

Mapping:
- ``traceloop.span.kind``: workflow -> CHAIN, task -> CHAIN, agent -> AGENT, tool -> TOOL;
  ``llm.request.type`` (set on LLM spans): chat / completion / unknown -> LLM,
  embedding -> EMBEDDING, rerank -> RERANKER;
- ``traceloop.entity.input`` / ``traceloop.entity.output``: JSON text of the decorated
  function's arguments / result, kept as they are (free text, not the messages shape);
- ``traceloop.association.properties.{session_id,user_id,prompt_version}`` -> session,
  user, prompt version; ``traceloop.prompt.version`` / ``.template`` (managed prompts);
- ``llm.usage.total_tokens``, ``gen_ai.usage.cache_read_input_tokens`` (the value OpenLLMetry
  used before v0.5.0 of the conventions) and ``llm.usage.cache_read_input_tokens``.

Edge cases: an unknown ``traceloop.span.kind`` maps to None so other sources decide.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.semconv_ai import (
    LLMRequestTypeValues,
    SpanAttributes,
    TraceloopSpanKindValues,
)

from collector.records import SpanKind

SPAN_KIND = SpanAttributes.TRACELOOP_SPAN_KIND
REQUEST_TYPE = SpanAttributes.LLM_REQUEST_TYPE
ENTITY_INPUT = SpanAttributes.TRACELOOP_ENTITY_INPUT
ENTITY_OUTPUT = SpanAttributes.TRACELOOP_ENTITY_OUTPUT
TOTAL_TOKENS = SpanAttributes.LLM_USAGE_TOTAL_TOKENS
GEN_AI_TOTAL_TOKENS = SpanAttributes.GEN_AI_USAGE_TOTAL_TOKENS
CACHE_READ_TOKENS = SpanAttributes.LLM_USAGE_CACHE_READ_INPUT_TOKENS
# Named in the OpenLLMetry docs for the llm.usage.* family; not in the package.
LLM_CACHE_READ_TOKENS = "llm.usage.cache_read_input_tokens"
PROMPT_VERSION = SpanAttributes.TRACELOOP_PROMPT_VERSION
PROMPT_TEMPLATE = SpanAttributes.TRACELOOP_PROMPT_TEMPLATE
USER = SpanAttributes.LLM_USER
GEN_AI_USER = SpanAttributes.GEN_AI_USER

_ASSOCIATION = SpanAttributes.TRACELOOP_ASSOCIATION_PROPERTIES + "."
ASSOCIATION_SESSION_ID = _ASSOCIATION + "session_id"
ASSOCIATION_USER_ID = _ASSOCIATION + "user_id"
ASSOCIATION_PROMPT_VERSION = _ASSOCIATION + "prompt_version"

_KIND_BY_SPAN_KIND: dict[str, SpanKind] = {
    TraceloopSpanKindValues.WORKFLOW.value: SpanKind.CHAIN,
    TraceloopSpanKindValues.TASK.value: SpanKind.CHAIN,
    TraceloopSpanKindValues.AGENT.value: SpanKind.AGENT,
    TraceloopSpanKindValues.TOOL.value: SpanKind.TOOL,
}
_KIND_BY_REQUEST_TYPE: dict[str, SpanKind] = {
    LLMRequestTypeValues.CHAT.value: SpanKind.LLM,
    LLMRequestTypeValues.COMPLETION.value: SpanKind.LLM,
    LLMRequestTypeValues.UNKNOWN.value: SpanKind.LLM,
    LLMRequestTypeValues.EMBEDDING.value: SpanKind.EMBEDDING,
    LLMRequestTypeValues.RERANK.value: SpanKind.RERANKER,
}


def map_span_kind(value: Any) -> SpanKind | None:
    """``traceloop.span.kind`` -> SpanKind, or None."""
    if type(value) is not str:
        return None
    return _KIND_BY_SPAN_KIND.get(value) or _KIND_BY_SPAN_KIND.get(value.strip().lower())


def map_request_type(value: Any) -> SpanKind | None:
    """``llm.request.type`` -> SpanKind, or None."""
    if type(value) is not str:
        return None
    return _KIND_BY_REQUEST_TYPE.get(value) or _KIND_BY_REQUEST_TYPE.get(value.strip().lower())
