"""The OpenInference dialect (Arize Phoenix, openinference-instrumentation-*).

Keys come from ``openinference.semconv.trace``.  This module holds the dialect's key names,
its span-kind mapping and the converters for its flattened lists:

- ``llm.input_messages.N.message.*`` / ``llm.output_messages.N.message.*`` -> messages
  (role, content or ``message.contents.M.message_content.text`` parts, name,
  ``tool_call_id``, ``message.tool_calls.M.tool_call.*``);
- ``llm.prompts.N.prompt.text`` / ``llm.choices.N.completion.text`` -> plain texts;
- ``retrieval.documents.N.document.{id,score,content}`` -> ``RetrievedDocument`` with
  ``position = N``.

Edge cases: a span kind OpenInference has but tracewatch does not (PROMPT, DECISION, or any
unknown string) maps to None so that the other dialects get a say; the caller then keeps
the key in ``attributes``.  Message and document fields that no column holds (document
metadata, message images' URLs ...) are returned as leftovers and stay in ``attributes``.
Un-flattened lists (an exporter that sent ``llm.input_messages`` as an array of kvlists)
are accepted too.
"""

from __future__ import annotations

from typing import Any

from openinference.semconv.trace import (
    ChoiceAttributes,
    DocumentAttributes,
    EvaluationAttributes,
    MessageAttributes,
    MessageContentAttributes,
    OpenInferenceSpanKindValues,
    PromptAttributes,
    SpanAttributes,
    ToolCallAttributes,
)

from collector.normalise.coerce import to_label, to_score, to_text
from collector.normalise.messages import (
    Fields,
    Message,
    describe_part,
    group_indexed,
    join_parts,
    make_message,
    make_tool_call,
)
from collector.records import RetrievedDocument, SpanKind

SPAN_KIND = SpanAttributes.OPENINFERENCE_SPAN_KIND
INPUT_VALUE = SpanAttributes.INPUT_VALUE
OUTPUT_VALUE = SpanAttributes.OUTPUT_VALUE
INPUT_MESSAGES = SpanAttributes.LLM_INPUT_MESSAGES
OUTPUT_MESSAGES = SpanAttributes.LLM_OUTPUT_MESSAGES
MODEL_NAME = SpanAttributes.LLM_MODEL_NAME
REQUEST_MODEL_NAME = SpanAttributes.LLM_REQUEST_MODEL_NAME
RESPONSE_MODEL_NAME = SpanAttributes.LLM_RESPONSE_MODEL_NAME
EMBEDDING_MODEL_NAME = SpanAttributes.EMBEDDING_MODEL_NAME
PROVIDER = SpanAttributes.LLM_PROVIDER
SYSTEM = SpanAttributes.LLM_SYSTEM
PROMPT_TEMPLATE = SpanAttributes.LLM_PROMPT_TEMPLATE
PROMPT_TEMPLATE_VERSION = SpanAttributes.LLM_PROMPT_TEMPLATE_VERSION
TOKENS_PROMPT = SpanAttributes.LLM_TOKEN_COUNT_PROMPT
TOKENS_COMPLETION = SpanAttributes.LLM_TOKEN_COUNT_COMPLETION
TOKENS_CACHE_READ = SpanAttributes.LLM_TOKEN_COUNT_PROMPT_DETAILS_CACHE_READ
TOKENS_TOTAL = SpanAttributes.LLM_TOKEN_COUNT_TOTAL
COST_TOTAL = SpanAttributes.LLM_COST_TOTAL
SESSION_ID = SpanAttributes.SESSION_ID
USER_ID = SpanAttributes.USER_ID
EVALUATION_NAME = EvaluationAttributes.EVALUATION_NAME
EVALUATION_SCORE = EvaluationAttributes.EVALUATION_SCORE
EVALUATION_LABEL = EvaluationAttributes.EVALUATION_LABEL
EVALUATION_EXPLANATION = EvaluationAttributes.EVALUATION_EXPLANATION

# Flattened-list prefixes, each followed by "<N>.<field>".
INPUT_MESSAGES_PREFIX = INPUT_MESSAGES + "."
OUTPUT_MESSAGES_PREFIX = OUTPUT_MESSAGES + "."
PROMPTS_PREFIX = SpanAttributes.LLM_PROMPTS + "."
CHOICES_PREFIX = SpanAttributes.LLM_CHOICES + "."
DOCUMENTS_PREFIX = SpanAttributes.RETRIEVAL_DOCUMENTS + "."

_ROLE = MessageAttributes.MESSAGE_ROLE
_CONTENT = MessageAttributes.MESSAGE_CONTENT
_NAME = MessageAttributes.MESSAGE_NAME
_TOOL_CALL_ID = MessageAttributes.MESSAGE_TOOL_CALL_ID
_FUNCTION_NAME = MessageAttributes.MESSAGE_FUNCTION_CALL_NAME
_FUNCTION_ARGUMENTS = MessageAttributes.MESSAGE_FUNCTION_CALL_ARGUMENTS_JSON
_CONTENTS_PREFIX = MessageAttributes.MESSAGE_CONTENTS + "."
_TOOL_CALLS_PREFIX = MessageAttributes.MESSAGE_TOOL_CALLS + "."
_PART_TYPE = MessageContentAttributes.MESSAGE_CONTENT_TYPE
_PART_TEXT = MessageContentAttributes.MESSAGE_CONTENT_TEXT
_CALL_ID = ToolCallAttributes.TOOL_CALL_ID
_CALL_NAME = ToolCallAttributes.TOOL_CALL_FUNCTION_NAME
_CALL_ARGUMENTS = ToolCallAttributes.TOOL_CALL_FUNCTION_ARGUMENTS_JSON
_MESSAGE_FIELDS = frozenset({_ROLE, _CONTENT, _NAME, _TOOL_CALL_ID, _FUNCTION_NAME,
                             _FUNCTION_ARGUMENTS})
_PROMPT_TEXT = PromptAttributes.PROMPT_TEXT
_COMPLETION_TEXT = ChoiceAttributes.COMPLETION_TEXT
_DOC_ID = DocumentAttributes.DOCUMENT_ID
_DOC_SCORE = DocumentAttributes.DOCUMENT_SCORE
_DOC_CONTENT = DocumentAttributes.DOCUMENT_CONTENT

_KIND_BY_VALUE: dict[str, SpanKind] = {}
for _value in OpenInferenceSpanKindValues:
    _kind = SpanKind(_value.value)
    if _kind is not SpanKind.UNKNOWN:
        _KIND_BY_VALUE[_value.value] = _kind
        _KIND_BY_VALUE[_value.value.lower()] = _kind


def map_span_kind(value: Any) -> SpanKind | None:
    """``openinference.span.kind`` -> SpanKind, or None when it says nothing usable."""
    if type(value) is not str:
        return None
    kind = _KIND_BY_VALUE.get(value)
    if kind is None:
        kind = SpanKind(value.strip().upper())  # tolerant: unknown -> UNKNOWN
    return None if kind is SpanKind.UNKNOWN else kind


def convert_messages(grouped: dict[int, Fields]) -> tuple[list[Message], list[tuple[int, str]]]:
    """Flattened messages -> (messages in index order, leftover (index, field) pairs)."""
    messages: list[Message] = []
    leftovers: list[tuple[int, str]] = []
    for index in sorted(grouped):
        fields = grouped[index]
        content = fields.get(_CONTENT)
        parts_fields: dict[str, Any] = {}
        calls_fields: dict[str, Any] = {}
        for field in fields:
            if field in _MESSAGE_FIELDS:
                continue
            if field.startswith(_CONTENTS_PREFIX):
                parts_fields[field] = fields[field]
            elif field.startswith(_TOOL_CALLS_PREFIX):
                calls_fields[field] = fields[field]
            else:
                leftovers.append((index, field))
        if content is None and parts_fields:
            content = _join_content_parts(group_indexed(parts_fields, _CONTENTS_PREFIX))
        tool_calls = [
            make_tool_call(call.get(_CALL_ID), call.get(_CALL_NAME), call.get(_CALL_ARGUMENTS))
            for _, call in sorted(group_indexed(calls_fields, _TOOL_CALLS_PREFIX).items())
        ]
        if fields.get(_FUNCTION_NAME) is not None:
            tool_calls.append(
                make_tool_call(None, fields.get(_FUNCTION_NAME), fields.get(_FUNCTION_ARGUMENTS))
            )
        message = make_message(
            fields.get(_ROLE),
            content,
            name=fields.get(_NAME),
            tool_call_id=fields.get(_TOOL_CALL_ID),
            tool_calls=tool_calls,
        )
        if message is not None:
            messages.append(message)
    return messages, leftovers


def _join_content_parts(parts: dict[int, Fields]) -> str | None:
    texts: list[str] = []
    for index in sorted(parts):
        part = parts[index]
        text = to_text(part.get(_PART_TEXT))
        if text is not None:
            texts.append(text)
        elif part:
            texts.append(describe_part(part.get(_PART_TYPE)))
    return join_parts(texts)


def convert_message_list(value: Any) -> list[Message]:
    """An un-flattened ``llm.input_messages`` value: a list of dicts (kvlists)."""
    if not isinstance(value, list):
        return []
    grouped: dict[int, Fields] = {}
    for index, item in enumerate(value):
        if isinstance(item, dict):
            nested = item.get("message")
            fields = nested if isinstance(nested, dict) else item
            grouped[index] = {
                (key if key.startswith("message") else f"message.{key}"): field_value
                for key, field_value in fields.items()
            }
    return convert_messages(grouped)[0]


def convert_texts(grouped: dict[int, Fields], field: str) -> tuple[list[str], list[tuple[int, str]]]:
    """``llm.prompts.N.prompt.text`` / ``llm.choices.N.completion.text`` -> texts."""
    texts: list[str] = []
    leftovers: list[tuple[int, str]] = []
    for index in sorted(grouped):
        for name, value in grouped[index].items():
            text = to_text(value) if name == field else None
            if text is not None:
                texts.append(text)
            else:
                leftovers.append((index, name))
    return texts, leftovers


def convert_prompts(grouped: dict[int, Fields]) -> tuple[list[str], list[tuple[int, str]]]:
    return convert_texts(grouped, _PROMPT_TEXT)


def convert_choices(grouped: dict[int, Fields]) -> tuple[list[str], list[tuple[int, str]]]:
    return convert_texts(grouped, _COMPLETION_TEXT)


def convert_documents(
    grouped: dict[int, Fields],
) -> tuple[tuple[RetrievedDocument, ...], list[tuple[int, str]]]:
    """Flattened retrieval documents -> (documents by position, leftover fields)."""
    documents: list[RetrievedDocument] = []
    leftovers: list[tuple[int, str]] = []
    for index in sorted(grouped):
        fields = grouped[index]
        document_id = to_label(fields.get(_DOC_ID))
        score = to_score(fields.get(_DOC_SCORE))
        content = to_text(fields.get(_DOC_CONTENT))
        for name, value in fields.items():
            kept = (
                (name == _DOC_ID and document_id is not None)
                or (name == _DOC_SCORE and score is not None)
                or (name == _DOC_CONTENT and content is not None)
            )
            if not kept and value is not None:
                leftovers.append((index, name))
        if document_id is not None or score is not None or content is not None:
            documents.append(RetrievedDocument(index, document_id, score, content))
    return tuple(documents), leftovers

