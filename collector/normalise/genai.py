"""The OpenTelemetry GenAI semantic-conventions dialect.

Keys come from ``opentelemetry.semconv._incubating.attributes.gen_ai_attributes``.  This
module holds the operation-name mapping and the converters for the three ways GenAI
instrumentations record content:

1. ``gen_ai.input.messages`` / ``gen_ai.output.messages`` (JSON text, or an already
   decoded list) of ``{"role", "parts": [{"type": "text", "content"}, {"type":
   "tool_call", ...}, ...]}``, with ``gen_ai.system_instructions`` (parts) rendered as a
   leading ``system`` message;
2. the older flattened ``gen_ai.prompt.N.{role,content,tool_calls...}`` and
   ``gen_ai.completion.N.*`` (also OpenLLMetry's), and the deprecated single
   ``gen_ai.prompt`` / ``gen_ai.completion`` strings;
3. span events: ``gen_ai.{system,user,assistant,tool}.message`` and ``gen_ai.choice``
   (content in a ``content`` attribute or in a ``body`` attribute, a dict or JSON text),
   ``gen_ai.content.prompt`` / ``gen_ai.content.completion`` (``gen_ai.prompt`` /
   ``gen_ai.completion`` attributes), ``gen_ai.client.inference.operation.details``
   (the message attributes of 1.) and ``gen_ai.evaluation.result``.

Edge cases: bad JSON or unexpected shapes give no messages (never an error); parts other
than text and tool calls become placeholders such as ``[image]``; a legacy message field
no column holds (``finish_reason``) is a leftover and stays in ``attributes``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as ga
from opentelemetry.semconv_ai import GenAICustomOperationName

from collector.normalise.coerce import load_json, to_label, to_score, to_text
from collector.normalise.messages import (
    Fields,
    Message,
    describe_part,
    group_indexed,
    join_parts,
    make_message,
    make_tool_call,
    render_value,
)
from collector.records import RetrievedDocument, SpanEvaluation, SpanEvent, SpanKind

OPERATION_NAME = ga.GEN_AI_OPERATION_NAME
PROVIDER_NAME = ga.GEN_AI_PROVIDER_NAME
SYSTEM = ga.GEN_AI_SYSTEM
REQUEST_MODEL = ga.GEN_AI_REQUEST_MODEL
RESPONSE_MODEL = ga.GEN_AI_RESPONSE_MODEL
INPUT_TOKENS = ga.GEN_AI_USAGE_INPUT_TOKENS
OUTPUT_TOKENS = ga.GEN_AI_USAGE_OUTPUT_TOKENS
PROMPT_TOKENS = ga.GEN_AI_USAGE_PROMPT_TOKENS  # deprecated name, still sent
COMPLETION_TOKENS = ga.GEN_AI_USAGE_COMPLETION_TOKENS  # deprecated name, still sent
CACHE_READ_TOKENS = ga.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS
INPUT_MESSAGES = ga.GEN_AI_INPUT_MESSAGES
OUTPUT_MESSAGES = ga.GEN_AI_OUTPUT_MESSAGES
SYSTEM_INSTRUCTIONS = ga.GEN_AI_SYSTEM_INSTRUCTIONS
PROMPT = ga.GEN_AI_PROMPT
COMPLETION = ga.GEN_AI_COMPLETION
CONVERSATION_ID = ga.GEN_AI_CONVERSATION_ID
RETRIEVAL_DOCUMENTS = ga.GEN_AI_RETRIEVAL_DOCUMENTS
PROMPT_PREFIX = PROMPT + "."  # gen_ai.prompt.N.<field>
COMPLETION_PREFIX = COMPLETION + "."  # gen_ai.completion.N.<field>
# Not in the GenAI conventions; some SDKs send the template under this name.
PROMPT_TEMPLATE = PROMPT + ".template"

# Event names of the GenAI conventions (not in the Python semconv package).
EVENT_SYSTEM_MESSAGE = "gen_ai.system.message"
EVENT_USER_MESSAGE = "gen_ai.user.message"
EVENT_ASSISTANT_MESSAGE = "gen_ai.assistant.message"
EVENT_TOOL_MESSAGE = "gen_ai.tool.message"
EVENT_CHOICE = "gen_ai.choice"
EVENT_CONTENT_PROMPT = "gen_ai.content.prompt"
EVENT_CONTENT_COMPLETION = "gen_ai.content.completion"
EVENT_OPERATION_DETAILS = "gen_ai.client.inference.operation.details"
EVENT_EVALUATION_RESULT = "gen_ai.evaluation.result"
EVENT_PREFIX = "gen_ai."
_ROLE_BY_EVENT = {
    EVENT_SYSTEM_MESSAGE: "system",
    EVENT_USER_MESSAGE: "user",
    EVENT_ASSISTANT_MESSAGE: "assistant",
    EVENT_TOOL_MESSAGE: "tool",
    EVENT_CHOICE: "assistant",
}

_OPS = ga.GenAiOperationNameValues
_CUSTOM_OPS = GenAICustomOperationName
_KIND_BY_OPERATION: dict[str, SpanKind] = {
    _OPS.CHAT.value: SpanKind.LLM,
    _OPS.TEXT_COMPLETION.value: SpanKind.LLM,
    _OPS.GENERATE_CONTENT.value: SpanKind.LLM,
    _OPS.EMBEDDINGS.value: SpanKind.EMBEDDING,
    _OPS.RETRIEVAL.value: SpanKind.RETRIEVER,
    _OPS.EXECUTE_TOOL.value: SpanKind.TOOL,
    _OPS.INVOKE_AGENT.value: SpanKind.AGENT,
    _OPS.CREATE_AGENT.value: SpanKind.AGENT,
    _OPS.INVOKE_WORKFLOW.value: SpanKind.CHAIN,
    _CUSTOM_OPS.LLM_REQUEST.value: SpanKind.LLM,
    _CUSTOM_OPS.EXECUTE_TASK.value: SpanKind.CHAIN,
    _CUSTOM_OPS.VECTOR_DB_RETRIEVE.value: SpanKind.RETRIEVER,
}

_LEGACY_FIELDS = frozenset({"role", "content", "name", "tool_call_id"})
_TOOL_CALLS_PREFIX = "tool_calls."


def map_operation(value: Any) -> SpanKind | None:
    """``gen_ai.operation.name`` -> SpanKind, or None for an unknown operation."""
    if type(value) is not str:
        return None
    return _KIND_BY_OPERATION.get(value) or _KIND_BY_OPERATION.get(value.strip().lower())


# ---------------------------------------------------------------- structured messages


def convert_structured(value: Any, system_instructions: Any = None) -> list[Message]:
    """``gen_ai.input.messages`` / ``gen_ai.output.messages`` -> messages."""
    messages: list[Message] = []
    if system_instructions is not None:
        instructions = load_json(system_instructions)
        if isinstance(instructions, list):
            content = _join_parts(instructions)
        else:
            content = to_text(instructions)
        message = make_message("system", content)
        if message is not None:
            messages.append(message)
    items = load_json(value)
    if isinstance(items, dict):
        items = [items]
    if not isinstance(items, list):
        return messages
    for item in items:
        if not isinstance(item, dict):
            continue
        parts = item.get("parts")
        if isinstance(parts, list):
            content, tool_calls, call_id = _convert_parts(parts)
        else:
            content = render_value(item.get("content"))
            tool_calls, call_id = [], item.get("tool_call_id")
        message = make_message(
            item.get("role"), content, name=item.get("name"),
            tool_call_id=call_id, tool_calls=tool_calls,
        )
        if message is not None:
            messages.append(message)
    return messages


def _convert_parts(parts: list[Any]) -> tuple[str | None, list[dict[str, Any]], Any]:
    """Message parts -> (joined content, tool calls, id of a tool-call response)."""
    texts: list[str] = []
    tool_calls: list[dict[str, Any]] = []
    call_id: Any = None
    for part in parts:
        if not isinstance(part, dict):
            text = to_text(part)
            if text is not None:
                texts.append(text)
            continue
        kind = part.get("type")
        if kind == "text":
            text = to_text(part.get("content"))
        elif kind == "tool_call":
            tool_calls.append(make_tool_call(
                part.get("id"), part.get("name"), render_value(part.get("arguments"))))
            continue
        elif kind == "tool_call_response":
            call_id = part.get("id")
            text = render_value(part.get("response", part.get("result")))
        else:
            text = to_text(part.get("content"))
            if text is None and kind != "reasoning":
                text = describe_part(part.get("modality") or kind)
        if text is not None:
            texts.append(text)
    return join_parts(texts), tool_calls, call_id


def _join_parts(parts: list[Any]) -> str | None:
    return _convert_parts(parts)[0]


# ---------------------------------------------------------------- legacy flattened


def convert_legacy(grouped: dict[int, Fields]) -> tuple[list[Message], list[tuple[int, str]]]:
    """``gen_ai.prompt.N.*`` / ``gen_ai.completion.N.*`` -> (messages, leftovers)."""
    messages: list[Message] = []
    leftovers: list[tuple[int, str]] = []
    for index in sorted(grouped):
        fields = grouped[index]
        calls: dict[str, Any] | None = None
        for name in fields:
            if name in _LEGACY_FIELDS:
                continue
            if name.startswith(_TOOL_CALLS_PREFIX):
                if calls is None:
                    calls = {}
                calls[name] = fields[name]
            elif fields[name] is not None:
                leftovers.append((index, name))
        tool_calls = [
            make_tool_call(call.get("id"), call.get("name"), call.get("arguments"))
            for _, call in sorted(group_indexed(calls, _TOOL_CALLS_PREFIX).items())
        ] if calls else []
        message = make_message(
            fields.get("role"), fields.get("content"), name=fields.get("name"),
            tool_call_id=fields.get("tool_call_id"), tool_calls=tool_calls,
        )
        if message is not None:
            messages.append(message)
    return messages, leftovers


def convert_documents(value: Any) -> tuple[RetrievedDocument, ...]:
    """``gen_ai.retrieval.documents`` (JSON list of ``{id, score, content}``)."""
    items = load_json(value)
    if not isinstance(items, list):
        return ()
    documents: list[RetrievedDocument] = []
    for position, item in enumerate(items):
        if isinstance(item, dict):
            documents.append(
                RetrievedDocument(
                    position,
                    to_label(item.get("id")),
                    to_score(item.get("score")),
                    to_text(item.get("content")),
                )
            )
    return tuple(documents)


# ---------------------------------------------------------------- events


@dataclass(slots=True)
class EventContent:
    """What a span's GenAI events say: messages in, messages out, evaluations."""

    input_messages: list[Message] = field(default_factory=list)
    output_messages: list[Message] = field(default_factory=list)
    evaluations: list[SpanEvaluation] = field(default_factory=list)


def convert_events(events: list[SpanEvent]) -> EventContent:
    """GenAI span events (names starting ``gen_ai.``) -> EventContent."""
    content = EventContent()
    for event in events:
        name = event.name
        attributes = event.attributes
        if name in _ROLE_BY_EVENT:
            message = _event_message(name, attributes)
            if message is not None:
                target = content.output_messages if name == EVENT_CHOICE else content.input_messages
                target.append(message)
        elif name == EVENT_CONTENT_PROMPT:
            content.input_messages.extend(_loose_messages(attributes.get(PROMPT), "user"))
        elif name == EVENT_CONTENT_COMPLETION:
            content.output_messages.extend(_loose_messages(attributes.get(COMPLETION), "assistant"))
        elif name == EVENT_OPERATION_DETAILS:
            content.input_messages.extend(
                convert_structured(
                    attributes.get(INPUT_MESSAGES), attributes.get(SYSTEM_INSTRUCTIONS)
                )
            )
            content.output_messages.extend(convert_structured(attributes.get(OUTPUT_MESSAGES)))
        elif name == EVENT_EVALUATION_RESULT:
            evaluation = _event_evaluation(attributes)
            if evaluation is not None:
                content.evaluations.append(evaluation)
    return content


def _event_message(name: str, attributes: dict[str, Any]) -> Message | None:
    role: Any = attributes.get("role") or _ROLE_BY_EVENT[name]
    text: Any = attributes.get("content")
    tool_calls: list[dict[str, Any]] = []
    call_id: Any = attributes.get("id") if name == EVENT_TOOL_MESSAGE else None
    body = load_json(attributes.get("body"))
    if isinstance(body, dict):
        inner = body.get("message")
        source = inner if isinstance(inner, dict) else body
        role = source.get("role") or role
        if text is None:
            text = render_value(source.get("content"))
        raw_calls = source.get("tool_calls")
        if isinstance(raw_calls, list):
            for call in raw_calls:
                if isinstance(call, dict):
                    function = call.get("function")
                    function = function if isinstance(function, dict) else call
                    tool_calls.append(make_tool_call(
                        call.get("id"), function.get("name"),
                        render_value(function.get("arguments")),
                    ))
        call_id = body.get("id", call_id) if name == EVENT_TOOL_MESSAGE else None
    elif body is not None and text is None:
        text = render_value(body)
    return make_message(role, render_value(text), tool_call_id=call_id, tool_calls=tool_calls)


def _loose_messages(value: Any, role: str) -> list[Message]:
    """A ``gen_ai.prompt`` / ``gen_ai.completion`` value: JSON messages or plain text."""
    parsed = load_json(value) if isinstance(value, str) and value[:1] in ("[", "{") else None
    if isinstance(parsed, (list, dict)):
        messages = convert_structured(parsed)
        if messages:
            return messages
    message = make_message(role, value)
    return [message] if message is not None else []


def convert_loose(value: Any, role: str) -> list[Message]:
    """The deprecated single ``gen_ai.prompt`` / ``gen_ai.completion`` attribute."""
    return _loose_messages(value, role)


def _event_evaluation(attributes: dict[str, Any]) -> SpanEvaluation | None:
    name = to_label(attributes.get(ga.GEN_AI_EVALUATION_NAME))
    if name is None:
        return None
    return SpanEvaluation(
        name,
        to_score(attributes.get(ga.GEN_AI_EVALUATION_SCORE_VALUE)),
        to_label(attributes.get(ga.GEN_AI_EVALUATION_SCORE_LABEL)),
        to_text(attributes.get(ga.GEN_AI_EVALUATION_EXPLANATION)),
    )
