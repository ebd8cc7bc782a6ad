"""Normalise decoded spans (``RawSpan``) into ``Span`` records: the ``spans`` columns.

Three attribute dialects map to the same columns (DESIGN.md, "Normalisation"):
OpenInference (``openinference.py``), OpenTelemetry GenAI (``genai.py``) and OpenLLMetry
(``openllmetry.py``); tracewatch's own markers live in ``conventions.py``.  A span may mix
dialects; each column takes the first usable source in the order below.

- span_kind: ``openinference.span.kind``; ``traceloop.span.kind``; ``llm.request.type``;
  ``gen_ai.operation.name``; a model name with a token count -> LLM; else UNKNOWN.
- model_name: the response model before the request model (``llm.response.model_name``,
  ``gen_ai.response.model``, ``llm.model_name``, ``llm.request.model_name``,
  ``gen_ai.request.model``, ``embedding.model_name``).
- provider: ``llm.provider``, ``gen_ai.provider.name``, ``gen_ai.system``, ``llm.system``;
  lower case and mapped to genai-prices ids (``gcp.vertex_ai`` -> ``google``,
  ``az.ai.openai`` -> ``azure``, ``aws.bedrock`` -> ``aws``, ``mistral_ai`` -> ``mistral``).
- tokens: ints or None, never an invented 0; total falls back to prompt + completion only
  when both are known.
- input_text / output_text: ``input.value`` / ``output.value``; else messages (rendered
  as a JSON array of ``{"role", "content"}``, see ``messages.py``) from
  ``llm.*_messages.N``, ``llm.prompts`` / ``llm.choices`` (plain text),
  ``gen_ai.*.messages``, ``gen_ai.prompt.N`` / ``gen_ai.completion.N``, the single
  ``gen_ai.prompt`` / ``gen_ai.completion``; else ``traceloop.entity.input/output`` (as
  sent); else ``gen_ai.*`` message events.
- status_message: the OTLP message; for an ERROR span without one, its exception events as
  ``exception.type: exception.message`` lines.

``attributes`` keeps every attribute whose value no column holds, keys as they came.  A key
is removed when its value is in a column (or equals the chosen value: duplicates across
dialects).  Exceptions, on purpose: every text source of input/output and all message
keys are removed once one of them is chosen (they repeat the same content and would be
redacted and stored twice); ``traceloop.span.kind``, ``llm.request.type`` and
``gen_ai.operation.name`` stay, because the kind mapping loses their detail (workflow vs
task, chat vs embeddings) and users cut metrics by them.  Garbage values (a token count
``"abc"``) give None and stay in ``attributes``.

Speed: the attributes are scanned once; each distinct key is routed once per process
(``_ROUTES`` caches exact-key hits and parsed ``prefix.N.field`` keys).  Nothing here
raises on bad values: a span always normalises (``normalise_spans`` still guards each span
and falls back to a minimal record, counted in ``num_fallback_records``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from opentelemetry.semconv.attributes.exception_attributes import (
    EXCEPTION_MESSAGE,
    EXCEPTION_TYPE,
)
from opentelemetry.semconv.attributes.service_attributes import SERVICE_NAME

from collector.normalise import conventions as tw
from collector.normalise import genai, openllmetry as ol, openinference as oi
from collector.normalise.coerce import to_label, to_text
from collector.normalise.columns import (
    C_CACHED_TOKENS, C_COMPLETION_TOKENS, C_COST, C_FALLBACK_FROM, C_MODEL,
    C_PROMPT_TEMPLATE, C_PROMPT_TOKENS, C_PROVIDER, C_PROMPT_VERSION, C_SESSION,
    C_TOTAL_TOKENS, C_USER, COLUMN_KEYS, resolve_columns,
)
from collector.normalise.messages import Message, render_messages, render_texts, split_index
from collector.records import RawSpan, Span, SpanBatch, SpanEvaluation, SpanEvent, SpanKind

logger = logging.getLogger(__name__)

__all__ = ["normalise_span", "normalise_spans"]

_STATUS_NAMES = ("UNSET", "OK", "ERROR")
_EXCEPTION_EVENT = "exception"

_REQUEST_MODEL_KEYS = (genai.REQUEST_MODEL, oi.REQUEST_MODEL_NAME)
_FLAG_KEYS = (tw.LLM_FALLBACK, tw.FALLBACK)
_EVALUATION_KEYS = (oi.EVALUATION_NAME, oi.EVALUATION_SCORE, oi.EVALUATION_LABEL,
                    oi.EVALUATION_EXPLANATION)
_TEXT_KEYS = (oi.INPUT_VALUE, oi.OUTPUT_VALUE, oi.INPUT_MESSAGES, oi.OUTPUT_MESSAGES,
              genai.INPUT_MESSAGES, genai.OUTPUT_MESSAGES, genai.SYSTEM_INSTRUCTIONS,
              genai.PROMPT, genai.COMPLETION, ol.ENTITY_INPUT, ol.ENTITY_OUTPUT)
_KIND_KEYS = (oi.SPAN_KIND, ol.SPAN_KIND, ol.REQUEST_TYPE, genai.OPERATION_NAME)
_OTHER_KEYS = (genai.RETRIEVAL_DOCUMENTS,)

# Flattened list groups: key = prefix + "<N>.<field>".
_G_OI_IN, _G_OI_OUT, _G_OI_PROMPTS, _G_OI_CHOICES, _G_OI_DOCS, _G_GA_IN, _G_GA_OUT, _G_EVAL = (
    range(8)
)
_GROUP_PREFIXES = (
    oi.INPUT_MESSAGES_PREFIX, oi.OUTPUT_MESSAGES_PREFIX, oi.PROMPTS_PREFIX, oi.CHOICES_PREFIX,
    oi.DOCUMENTS_PREFIX, genai.PROMPT_PREFIX, genai.COMPLETION_PREFIX, tw.EVAL_PREFIX,
)
_ANY_GROUP_PREFIX = tuple(_GROUP_PREFIXES)

_ROUTE_KEEP = 0
_ROUTE_FOUND = 1
_MAX_ROUTES = 100_000  # distinct keys remembered; beyond that, keys are routed each time
_ROUTES: dict[str, Any] = {
    key: _ROUTE_FOUND
    for keys in (*COLUMN_KEYS.values(), _FLAG_KEYS, _EVALUATION_KEYS, _TEXT_KEYS,
                 _KIND_KEYS, _OTHER_KEYS)
    for key in keys
}

num_fallback_records = 0  # spans that hit an unexpected error and were kept minimally


def normalise_spans(raw: Sequence[RawSpan]) -> SpanBatch:
    """Normalise a batch; every input span yields exactly one Span."""
    global num_fallback_records
    spans: list[Span] = []
    for raw_span in raw:
        try:
            spans.append(normalise_span(raw_span))
        except Exception as exc:  # loop boundary: one bad span must not sink the batch
            num_fallback_records += 1
            if num_fallback_records % 1000 == 1:  # the first, then one in a thousand
                logger.warning("normalise failed for span %s/%s (%s); kept unmapped "
                               "(%d so far)", raw_span.trace_id, raw_span.span_id,
                               type(exc).__name__, num_fallback_records)
            spans.append(_minimal_span(raw_span))
    return SpanBatch(tuple(spans))


def normalise_span(raw: RawSpan) -> Span:
    """Map one RawSpan to a Span (see the module docstring for the rules)."""
    found: dict[str, Any] = {}
    rest: dict[str, Any] = {}
    groups: dict[int, dict[Any, dict[str, Any]]] = {}
    routes = _ROUTES
    for key, value in raw.attributes.items():
        route = routes.get(key)
        if route is None:
            route = _route_key(key)
        if route is _ROUTE_KEEP:
            rest[key] = value
        elif route is _ROUTE_FOUND:
            found[key] = value
        else:
            group_id, index, field = route
            group = groups.get(group_id)
            if group is None:
                group = groups[group_id] = {}
            entry = group.get(index)
            if entry is None:
                entry = group[index] = {}
            entry[field] = value

    genai_events: list[SpanEvent] = []
    exceptions: list[SpanEvent] = []
    for event in raw.events:
        if event.name == _EXCEPTION_EVENT:
            exceptions.append(event)
        elif event.name.startswith(genai.EVENT_PREFIX):
            genai_events.append(event)
    event_content = genai.convert_events(genai_events) if genai_events else None

    columns = resolve_columns(found, rest)
    model_name = columns.get(C_MODEL)
    prompt_tokens = columns.get(C_PROMPT_TOKENS)
    completion_tokens = columns.get(C_COMPLETION_TOKENS)
    total_tokens = columns.get(C_TOTAL_TOKENS)
    if total_tokens is None and prompt_tokens is not None and completion_tokens is not None:
        total_tokens = prompt_tokens + completion_tokens
    fallback_from = columns.get(C_FALLBACK_FROM)
    input_text, output_text = _resolve_texts(found, groups, event_content, rest)
    span_kind = _resolve_kind(found, rest)
    if span_kind is None:
        llm_like = model_name is not None and (
            prompt_tokens is not None or completion_tokens is not None)
        span_kind = SpanKind.LLM if llm_like else SpanKind.UNKNOWN

    return Span(
        trace_id=raw.trace_id,
        span_id=raw.span_id,
        parent_span_id=raw.parent_span_id,
        name=raw.name,
        span_kind=span_kind,
        service_name=to_label(raw.resource_attributes.get(SERVICE_NAME)),
        start_time_unix_nano=raw.start_time_unix_nano,
        end_time_unix_nano=raw.end_time_unix_nano,
        status_code=_status_name(raw.status_code),
        status_message=_status_message(raw, exceptions),
        model_name=model_name,
        provider=columns.get(C_PROVIDER),
        prompt_version=columns.get(C_PROMPT_VERSION),
        prompt_template=columns.get(C_PROMPT_TEMPLATE),
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        cached_prompt_tokens=columns.get(C_CACHED_TOKENS),
        total_tokens=total_tokens,
        cost_usd_reported=columns.get(C_COST),
        fallback_marked=_resolve_fallback(found, fallback_from, model_name, rest),
        fallback_from=fallback_from,
        session_id=columns.get(C_SESSION),
        user_id=columns.get(C_USER),
        input_text=input_text,
        output_text=output_text,
        attributes=rest,
        retrievals=_resolve_retrievals(found, groups, rest),
        evaluations=_resolve_evaluations(raw, span_kind, found, groups, event_content,
                                         output_text, rest),
    )


# ---------------------------------------------------------------- routing


def _route_key(key: str) -> Any:
    """Route a key not seen before: keep, or (group, index, field) for list keys."""
    route: Any = _ROUTE_KEEP
    if key.startswith(_ANY_GROUP_PREFIX):
        for group_id, prefix in enumerate(_GROUP_PREFIXES):
            if not key.startswith(prefix):
                continue
            if group_id == _G_EVAL:
                split = tw.split_eval_key(key)
                if split is not None:
                    route = (group_id, split[0], split[1])
            else:
                parsed = split_index(key[len(prefix):])
                if parsed is not None:
                    route = (group_id, parsed[0], parsed[1])
            break
    if len(_ROUTES) < _MAX_ROUTES:
        _ROUTES[key] = route
    return route


def _restore(group_id: int, leftovers: Sequence[tuple[Any, str]],
             groups: dict[int, dict[Any, dict[str, Any]]], rest: dict[str, Any]) -> None:
    """Put list fields no column holds back into ``attributes`` under their keys."""
    entries = groups[group_id]
    prefix = _GROUP_PREFIXES[group_id]
    for index, field in leftovers:
        rest[f"{prefix}{index}.{field}"] = entries[index][field]


# ---------------------------------------------------------------- columns


def _resolve_kind(found: dict[str, Any], rest: dict[str, Any]) -> SpanKind | None:
    if oi.SPAN_KIND in found:
        value = found[oi.SPAN_KIND]
        kind = oi.map_span_kind(value)
        if kind is not None:
            _keep_lossy_kind_keys(found, rest)
            return kind
        rest[oi.SPAN_KIND] = value
    _keep_lossy_kind_keys(found, rest)
    kind = ol.map_span_kind(found.get(ol.SPAN_KIND))
    if kind is None:
        kind = ol.map_request_type(found.get(ol.REQUEST_TYPE))
    if kind is None:
        kind = genai.map_operation(found.get(genai.OPERATION_NAME))
    return kind


def _keep_lossy_kind_keys(found: dict[str, Any], rest: dict[str, Any]) -> None:
    for key in (ol.SPAN_KIND, ol.REQUEST_TYPE, genai.OPERATION_NAME):
        if key in found:
            rest[key] = found[key]


def _resolve_texts(
    found: dict[str, Any],
    groups: dict[int, dict[Any, dict[str, Any]]],
    events: genai.EventContent | None,
    rest: dict[str, Any],
) -> tuple[str | None, str | None]:
    input_text = to_text(found.get(oi.INPUT_VALUE))
    if input_text is None:
        input_text = _messages_text(
            groups, _G_OI_IN, found.get(oi.INPUT_MESSAGES), _G_OI_PROMPTS,
            found.get(genai.INPUT_MESSAGES), found.get(genai.SYSTEM_INSTRUCTIONS),
            _G_GA_IN, found.get(genai.PROMPT), "user", rest)
    if input_text is None:
        input_text = to_text(found.get(ol.ENTITY_INPUT))
    if input_text is None and events is not None:
        input_text = render_messages(events.input_messages)

    output_text = to_text(found.get(oi.OUTPUT_VALUE))
    if output_text is None:
        output_text = _messages_text(
            groups, _G_OI_OUT, found.get(oi.OUTPUT_MESSAGES), _G_OI_CHOICES,
            found.get(genai.OUTPUT_MESSAGES), None,
            _G_GA_OUT, found.get(genai.COMPLETION), "assistant", rest)
    if output_text is None:
        output_text = to_text(found.get(ol.ENTITY_OUTPUT))
    if output_text is None and events is not None:
        output_text = render_messages(events.output_messages)
    return input_text, output_text


def _messages_text(
    groups: dict[int, dict[Any, dict[str, Any]]],
    oi_group: int, oi_list: Any, oi_texts_group: int,
    structured: Any, system_instructions: Any,
    legacy_group: int, loose: Any, loose_role: str,
    rest: dict[str, Any],
) -> str | None:
    """Messages of one side, from the first dialect that has any."""
    messages: list[Message] = []
    if oi_group in groups:
        messages, leftovers = oi.convert_messages(groups[oi_group])
        _restore(oi_group, leftovers, groups, rest)
    elif oi_list is not None:
        messages = oi.convert_message_list(oi_list)
    if messages:
        return render_messages(messages)
    if oi_texts_group in groups:
        converter = oi.convert_prompts if oi_texts_group == _G_OI_PROMPTS else oi.convert_choices
        texts, text_leftovers = converter(groups[oi_texts_group])
        _restore(oi_texts_group, text_leftovers, groups, rest)
        if texts:
            return render_texts(texts)
    if structured is not None or system_instructions is not None:
        messages = genai.convert_structured(structured, system_instructions)
    if not messages and legacy_group in groups:
        messages, leftovers = genai.convert_legacy(groups[legacy_group])
        _restore(legacy_group, leftovers, groups, rest)
    if not messages and loose is not None:
        messages = genai.convert_loose(loose, loose_role)
    return render_messages(messages)


def _resolve_fallback(found: dict[str, Any], fallback_from: str | None,
                      model_name: str | None, rest: dict[str, Any]) -> bool:
    marked = False
    for key in _FLAG_KEYS:
        if key in found:
            flag = tw.parse_flag(found[key])
            if flag is None:
                rest[key] = found[key]
            elif flag:
                marked = True
    if not marked and fallback_from is not None:
        requested = None
        for key in _REQUEST_MODEL_KEYS:
            requested = to_label(found.get(key))
            if requested is not None:
                break
        marked = fallback_from != (requested or model_name)
    return marked


def _resolve_retrievals(found: dict[str, Any], groups: dict[int, dict[Any, dict[str, Any]]],
                        rest: dict[str, Any]) -> tuple[Any, ...]:
    if _G_OI_DOCS in groups:
        documents, leftovers = oi.convert_documents(groups[_G_OI_DOCS])
        _restore(_G_OI_DOCS, leftovers, groups, rest)
        if documents:
            return documents
    value = found.get(genai.RETRIEVAL_DOCUMENTS)
    if value is not None:
        documents = genai.convert_documents(value)
        if documents:
            return documents
        rest[genai.RETRIEVAL_DOCUMENTS] = value
    return ()


def _resolve_evaluations(
    raw: RawSpan, span_kind: SpanKind, found: dict[str, Any],
    groups: dict[int, dict[Any, dict[str, Any]]], events: genai.EventContent | None,
    output_text: str | None, rest: dict[str, Any],
) -> tuple[SpanEvaluation, ...]:
    evaluations: list[SpanEvaluation] = []
    if _G_EVAL in groups:
        evaluations, leftovers = tw.convert_eval_fields(groups[_G_EVAL])
        _restore(_G_EVAL, leftovers, groups, rest)
    if oi.EVALUATION_NAME in found or oi.EVALUATION_SCORE in found or (
            oi.EVALUATION_LABEL in found):
        evaluation = tw.make_evaluation(
            found.get(oi.EVALUATION_NAME) or raw.name, found.get(oi.EVALUATION_SCORE),
            found.get(oi.EVALUATION_LABEL), found.get(oi.EVALUATION_EXPLANATION))
        if evaluation is not None:
            evaluations.append(evaluation)
        else:
            rest.update({key: found[key] for key in _EVALUATION_KEYS if key in found})
    elif oi.EVALUATION_EXPLANATION in found:
        rest[oi.EVALUATION_EXPLANATION] = found[oi.EVALUATION_EXPLANATION]
    if span_kind is SpanKind.EVALUATOR and not evaluations and output_text is not None:
        evaluation = tw.convert_evaluator_output(raw.name, output_text)
        if evaluation is not None:
            evaluations.append(evaluation)
    if events is not None:
        evaluations.extend(events.evaluations)
    return tuple(evaluations)


def _status_name(code: int) -> str:
    return _STATUS_NAMES[code] if type(code) is int and 0 <= code <= 2 else "UNSET"


def _status_message(raw: RawSpan, exceptions: list[SpanEvent]) -> str | None:
    if raw.status_message:
        return raw.status_message
    if raw.status_code != 2 or not exceptions:
        return None
    lines: list[str] = []
    for event in exceptions:
        exc_type = to_label(event.attributes.get(EXCEPTION_TYPE))
        exc_message = to_text(event.attributes.get(EXCEPTION_MESSAGE))
        if exc_type and exc_message:
            lines.append(f"{exc_type}: {exc_message}")
        elif exc_type or exc_message:
            lines.append(exc_type or exc_message or "")
    return "\n".join(lines) or None


def _minimal_span(raw: RawSpan) -> Span:
    """The record kept when normalisation failed unexpectedly: ids, times, attributes."""
    return Span(
        trace_id=raw.trace_id,
        span_id=raw.span_id,
        parent_span_id=raw.parent_span_id,
        name=raw.name,
        span_kind=SpanKind.UNKNOWN,
        service_name=to_label(raw.resource_attributes.get(SERVICE_NAME)),
        start_time_unix_nano=raw.start_time_unix_nano,
        end_time_unix_nano=raw.end_time_unix_nano,
        status_code=_status_name(raw.status_code),
        status_message=raw.status_message or None,
        attributes=dict(raw.attributes),
    )
