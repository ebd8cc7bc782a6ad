"""The document-extraction service, traced with the OpenTelemetry GenAI semantic conventions.

Trace shape: ``POST /v1/extract`` (SERVER, root) -> ``chat <model>`` (CLIENT, one or more calls,
``gen_ai.operation.name=chat``) -> ``validate_output`` (INTERNAL, JSON-schema validation). The chat
span records provider, request/response model, usage (input, output, cache-read tokens),
``gen_ai.input.messages`` / ``gen_ai.output.messages`` as JSON, finish reasons and, for
streamed calls, ``gen_ai.response.time_to_first_chunk`` (seconds). The prompt is identified by
``gen_ai.prompt.name`` plus ``gen_ai.prompt.version`` (v7, then v8 from 2026-11-11 12:00 UTC).

Documents (invoices, receipts, purchase orders) are generated text; about 30% carry a private
customer's name, address, email or phone, and some a card number.
Failure modes: json_schema_invalid (half repaired by a second call), context_length_exceeded,
provider_timeout, rate_limited (more often during the nightly batch), model_fallback.
"""

from __future__ import annotations

import random
from typing import Any

from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as ga
from opentelemetry.semconv._incubating.attributes.user_attributes import USER_ID
from opentelemetry.semconv.attributes import http_attributes as http

from samples import failures
from samples.incidents import at, to_ns
from samples.llm_calls import FALLBACK_FROM, plan_attempts
from samples.models import (
    CLAUDE_HAIKU,
    CLAUDE_SONNET,
    GEMINI_FLASH,
    GPT_4O,
    estimate_tokens,
    sample_call_timing_ms,
)
from samples.otlp_json import (
    SPAN_KIND_CLIENT,
    SPAN_KIND_INTERNAL,
    SPAN_KIND_SERVER,
    STATUS_ERROR,
    Attributes,
    dumps_compact,
)
from samples.pii import PiiPool, render_pii_text
from samples.prompts import EXTRACTION_TEMPLATES
from samples.trace_builder import TraceBuilder, TraceLabel
from samples.traffic import EXTRACTION, Arrival

SCOPE = ("opentelemetry.instrumentation.genai", "0.3b0")
PROMPT_VERSION_KEY = "gen_ai.prompt.version"
V8_RELEASE_NS = to_ns(at(2, 12, 0))
_VENDORS = (
    "Brightline Logistics GmbH",
    "Quarry & Finch Ltd",
    "Northwind Office Supply",
    "Helios Cloud BV",
    "Tamarind Catering SARL",
    "Ostrava Steelworks a.s.",
    "Bluefin Print Co.",
    "Meridian Legal LLP",
)
_ITEMS = (
    "Pallet transport Hamburg-Rotterdam",
    "Consulting hours (senior)",
    "A4 paper, 80g, 5 boxes",
    "Cloud compute credits",
    "Catering for 24 guests",
    "Steel brackets M12",
    "Business cards x500",
    "Contract review",
    "Monthly SaaS subscription",
    "Express courier",
    "Laptop stand",
    "Onsite support",
)
_CURRENCIES = (("EUR", "€"), ("USD", "$"), ("GBP", "£"))
_CUSTOMER_BLOCKS = (
    "Bill to: {PERSON}, {LOCATION}\nContact: {EMAIL_ADDRESS}",
    "Customer: {PERSON}\nPhone: {PHONE_NUMBER}\nDeliver to: {LOCATION}",
    "Ordered by {PERSON} <{EMAIL_ADDRESS}>",
    "Paid by card {CREDIT_CARD} (cardholder {PERSON})",
)
_MODES = (
    (failures.JSON_SCHEMA_INVALID, 0.06),
    (failures.CONTEXT_LENGTH_EXCEEDED, 0.015),
    (failures.PROVIDER_TIMEOUT, 0.01),
    (failures.RATE_LIMITED, 0.025),
    (failures.MODEL_FALLBACK, 0.01),
)
_BATCH_MODES = ((failures.RATE_LIMITED, 0.12),) + _MODES[:3]


def _document(
    rng: random.Random, pii: PiiPool, tb: TraceBuilder
) -> tuple[str, str, dict[str, Any]]:
    doc_type = rng.choices(("invoice", "receipt", "purchase_order"), weights=(60, 25, 15))[0]
    code, symbol = rng.choice(_CURRENCIES)
    items = [
        (rng.choice(_ITEMS), rng.randint(1, 12), round(rng.uniform(4, 900), 2))
        for _ in range(rng.randint(1, 4))
    ]
    total = round(sum(q * p for _, q, p in items), 2)
    number = f"{rng.choice(('INV', 'R', 'PO'))}-{rng.randint(2026000, 2026999)}"
    date = f"2026-{rng.randint(9, 11):02d}-{rng.randint(1, 28):02d}"
    vendor = rng.choice(_VENDORS)
    customer: str | None = None
    lines = [f"{doc_type.replace('_', ' ').upper()} {number}", f"Date: {date}", f"From: {vendor}"]
    if rng.random() < 0.3:
        block, inserted = render_pii_text(rng.choice(_CUSTOMER_BLOCKS), pii, rng)
        tb.pii.extend(inserted)
        lines.append(block)
        customer = next((v.text for v in inserted if v.entity_type == "PERSON"), None)
    lines += [f"- {d} x{q} @ {symbol}{p:,.2f}" for d, q, p in items]
    lines.append(f"Total due: {symbol}{total:,.2f}")
    fields = {
        "document_number": number,
        "issue_date": date,
        "vendor": vendor,
        "customer_name": customer,
        "currency": code,
        "total": total,
        "line_items": [{"description": d, "quantity": q, "unit_price": p} for d, q, p in items],
    }
    return doc_type, "\n".join(lines), fields


def _broken_json(rng: random.Random, fields: dict[str, Any]) -> tuple[str, str, str, str]:
    """An output that fails validation: (text, problem, field, bad value or column)."""
    bad = dict(fields)
    kind = rng.randrange(3)
    if kind == 0:
        key = rng.choice(("total", "document_number", "issue_date"))
        bad.pop(key)
        return dumps_compact(bad), "missing", key, ""
    if kind == 1:
        value = f"{fields['total']} {fields['currency']}"
        bad["total"] = value
        return dumps_compact(bad), "type", "total", value
    text = dumps_compact(bad)
    text = text[: rng.randint(len(text) // 3, len(text) - 5)]
    return text, "truncated", "line_items", str(len(text) + 1)


def build_extraction_trace(rng: random.Random, arrival: Arrival, pii: PiiPool) -> TraceBuilder:
    """Generate one doc-extraction trace."""
    t0 = arrival.start_ns
    version = "v8" if t0 >= V8_RELEASE_NS else "v7"
    in_batch = (t0 // 1_000_000_000 // 60) % 1440 in range(120, 165)
    mode = failures.pick_failure_mode(rng, _BATCH_MODES if in_batch else _MODES)
    label = TraceLabel(EXTRACTION, failure_mode=mode, prompt_version=version)
    tb = TraceBuilder(rng, label)
    doc_type, document, fields = _document(rng, pii, tb)
    primary = GEMINI_FLASH if doc_type == "receipt" else CLAUDE_SONNET
    fallback = CLAUDE_HAIKU if primary is GEMINI_FLASH else GPT_4O
    system = (
        EXTRACTION_TEMPLATES[version]
        .split("\n\nDocument:")[0]
        .format(doc_type=doc_type.replace("_", " "), schema_name=f"{doc_type}.v2")
    )
    user_text = "Document:\n" + document
    input_messages = dumps_compact(
        [
            {"role": "system", "parts": [{"type": "text", "content": system}]},
            {"role": "user", "parts": [{"type": "text", "content": user_text}]},
        ]
    )
    prompt_tokens = estimate_tokens(system) + estimate_tokens(user_text) + 12
    attempts, ok = plan_attempts(
        rng, mode, primary, fallback, "extract/service", requested_tokens=0
    )
    root_id = tb.new_span_id()
    t = t0 + rng.randint(2, 12) * 1_000_000
    good_output = dumps_compact(fields)
    schema_failed = mode == failures.JSON_SCHEMA_INVALID
    repaired = schema_failed and rng.random() < 0.5
    calls = list(attempts)
    if repaired:
        calls.append(calls[-1])
    http_status = 200
    for i, attempt in enumerate(calls):
        t += int(attempt.gap_before_ms * 1e6)
        model = attempt.model
        streaming = model is not GEMINI_FLASH
        attrs: Attributes = {
            ga.GEN_AI_OPERATION_NAME: "chat",
            ga.GEN_AI_PROVIDER_NAME: model.genai_provider,
            ga.GEN_AI_REQUEST_MODEL: model.name,
            ga.GEN_AI_REQUEST_TEMPERATURE: 0.0,
            ga.GEN_AI_REQUEST_MAX_TOKENS: 2048,
            ga.GEN_AI_OUTPUT_TYPE: "json",
            ga.GEN_AI_REQUEST_STREAM: streaming,
            ga.GEN_AI_PROMPT_NAME: "extract-fields",
            PROMPT_VERSION_KEY: version,
            ga.GEN_AI_INPUT_MESSAGES: input_messages,
        }
        if attempt.fallback_from:
            attrs[FALLBACK_FROM] = attempt.fallback_from
        span_id = tb.new_span_id()
        name = f"chat {model.name}"
        if attempt.error is not None:
            end = t + int(attempt.error_duration_ms * 1e6)
            attrs["error.type"] = attempt.error.exception_type
            tb.add_span(
                span_id,
                root_id,
                name,
                SPAN_KIND_CLIENT,
                t,
                end,
                attrs,
                [failures.exception_event(end, attempt.error)],
                STATUS_ERROR,
                attempt.error.message,
            )
            t = end
            http_status = 504 if "imeout" in attempt.error.exception_type else 502
            continue
        is_broken_call = schema_failed and (
            i == len(calls) - 2 if repaired else i == len(calls) - 1
        )
        if is_broken_call:
            output, problem, bad_field, bad_value = _broken_json(rng, fields)
        else:
            output, problem, bad_field, bad_value = good_output, "", "", ""
        finish = "length" if problem == "truncated" else "stop"
        completion_tokens = estimate_tokens(output)
        cached = (estimate_tokens(system) // 8) * 8 if rng.random() < 0.5 else 0
        ttft, total = sample_call_timing_ms(rng, model, prompt_tokens, completion_tokens)
        end = t + int(total * 1e6)
        attrs.update(
            {
                ga.GEN_AI_RESPONSE_MODEL: model.name,
                ga.GEN_AI_RESPONSE_ID: f"msg_{rng.getrandbits(80):020x}",
                ga.GEN_AI_RESPONSE_FINISH_REASONS: [finish],
                ga.GEN_AI_USAGE_INPUT_TOKENS: prompt_tokens,
                ga.GEN_AI_USAGE_OUTPUT_TOKENS: completion_tokens,
                ga.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: cached,
                ga.GEN_AI_OUTPUT_MESSAGES: dumps_compact(
                    [
                        {
                            "role": "assistant",
                            "parts": [{"type": "text", "content": output}],
                            "finish_reason": finish,
                        }
                    ]
                ),
            }
        )
        if streaming:
            attrs[ga.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] = round(ttft / 1000.0, 4)
        tb.add_span(span_id, root_id, name, SPAN_KIND_CLIENT, t, end, attrs)
        label.fallback = label.fallback or attempt.is_fallback
        val_id = tb.new_span_id()
        v_start, v_end = end + 200_000, end + int(rng.uniform(0.4, 3.0) * 1e6)
        v_attrs: Attributes = {"schema.name": f"{doc_type}.v2", "schema.valid": not is_broken_call}
        if is_broken_call:
            error = failures.make_schema_error(rng, problem, bad_field, bad_value)
            tb.add_span(
                val_id,
                root_id,
                "validate_output",
                SPAN_KIND_INTERNAL,
                v_start,
                v_end,
                v_attrs,
                [failures.exception_event(v_end, error)],
                STATUS_ERROR,
                error.message,
            )
            if not repaired:
                ok, http_status = False, 422
        else:
            tb.add_span(
                val_id, root_id, "validate_output", SPAN_KIND_INTERNAL, v_start, v_end, v_attrs
            )
            http_status = 200
        t = v_end
    if not ok and http_status == 200:
        http_status = 400 if mode == failures.CONTEXT_LENGTH_EXCEEDED else 502
    root_attrs: Attributes = {
        http.HTTP_REQUEST_METHOD: "POST",
        http.HTTP_ROUTE: "/v1/extract",
        http.HTTP_RESPONSE_STATUS_CODE: http_status if not ok else 200,
        USER_ID: arrival.user_id,
        "extraction.document_type": doc_type,
    }
    end = t + rng.randint(1, 6) * 1_000_000
    if ok:
        tb.add_span(root_id, None, "POST /v1/extract", SPAN_KIND_SERVER, t0, end, root_attrs)
    else:
        tb.add_span(
            root_id,
            None,
            "POST /v1/extract",
            SPAN_KIND_SERVER,
            t0,
            end,
            root_attrs,
            None,
            STATUS_ERROR,
            f"extraction failed with HTTP {http_status}",
        )
    return tb
