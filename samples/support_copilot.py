"""The support copilot: a RAG service traced with OpenInference attributes.

Trace shape: ``rag_answer`` (CHAIN, root) -> ``retrieve_articles`` (RETRIEVER, 0-5 documents)
-> one or more ``ChatOpenAI``/``ChatAnthropic`` (LLM) calls. The LLM span inlines the system
prompt (template version v3/v4/v5 with the retrieved articles) in ``llm.input_messages``, and
records the template, its version and variables, token counts (with cached prompt tokens), the
time to first token as a ``First Token Stream Event`` event, session and user ids.

Failure modes: empty_retrieval, irrelevant_retrieval, unsupported_claim, hallucinated_citation,
provider_timeout, rate_limited, model_fallback, refusal, context_length_exceeded.
Incidents: INC-1 (prompt v4), INC-3 (OpenAI outage), INC-4 (index degradation), INC-5 (drift).
"""

from __future__ import annotations

import random

from openinference.semconv.trace import (
    DocumentAttributes,
    MessageAttributes,
    OpenInferenceSpanKindValues,
    SpanAttributes,
)

from samples import failures
from samples import knowledge_base as kb
from samples.incidents import (
    ANSWER_LENGTH_DRIFT,
    INDEX_DEGRADATION,
    PROMPT_ROLLOUT,
    PROVIDER_OUTAGE,
    at,
    drift_progress,
    to_ns,
)
from samples.llm_calls import FALLBACK_FLAG, plan_attempts
from samples.models import (
    CLAUDE_HAIKU,
    GPT_4O,
    GPT_4O_MINI,
    Model,
    estimate_tokens,
    sample_call_timing_ms,
)
from samples.otlp_json import (
    SPAN_KIND_INTERNAL,
    STATUS_ERROR,
    STATUS_OK,
    Attributes,
    dumps_compact,
    encode_event,
)
from samples.pii import (
    CONFIG_PASTES,
    SUPPORT_PII_PREFIXES,
    SUPPORT_PII_SUFFIXES,
    PiiPool,
    PiiValue,
    render_pii_text,
)
from samples.prompts import SUPPORT_TEMPLATES
from samples.trace_builder import TraceBuilder, TraceLabel
from samples.traffic import SUPPORT, Arrival

SCOPE = ("openinference.instrumentation.langchain", "0.1.29")
FIRST_TOKEN_EVENT = "First Token Stream Event"
V5_RELEASE_NS = to_ns(at(10, 10, 0))

_MSG_IN = SpanAttributes.LLM_INPUT_MESSAGES
_MSG_OUT = SpanAttributes.LLM_OUTPUT_MESSAGES
_ROLE = MessageAttributes.MESSAGE_ROLE
_CONTENT = MessageAttributes.MESSAGE_CONTENT
_DOCS = SpanAttributes.RETRIEVAL_DOCUMENTS
_DOC_KEYS = tuple(
    (
        f"{_DOCS}.{i}.{DocumentAttributes.DOCUMENT_ID}",
        f"{_DOCS}.{i}.{DocumentAttributes.DOCUMENT_SCORE}",
        f"{_DOCS}.{i}.{DocumentAttributes.DOCUMENT_CONTENT}",
    )
    for i in range(8)
)
_BASE_MODES = (
    (failures.EMPTY_RETRIEVAL, 0.03),
    (failures.IRRELEVANT_RETRIEVAL, 0.025),
    (failures.UNSUPPORTED_CLAIM, 0.06),
    (failures.HALLUCINATED_CITATION, 0.025),
    (failures.PROVIDER_TIMEOUT, 0.01),
    (failures.RATE_LIMITED, 0.02),
    (failures.MODEL_FALLBACK, 0.015),
    (failures.REFUSAL, 0.02),
    (failures.CONTEXT_LENGTH_EXCEEDED, 0.004),
)
_ROOT_ERRORS = (
    "answer generation failed",
    "upstream model call failed",
    "LLM request failed after retries",
    "could not produce an answer",
    "model provider error",
)


def _question(
    rng: random.Random, pii: PiiPool, label_pii: list[PiiValue], mode: str | None
) -> tuple[str, str]:
    if mode == failures.REFUSAL:
        return rng.choice(kb.OUT_OF_SCOPE_QUESTIONS), rng.choice(kb.TOPIC_NAMES)
    topic = rng.choice(kb.TOPIC_NAMES)
    text = rng.choice(kb.TOPIC_QUESTIONS[topic])
    roll = rng.random()
    if roll < 0.13:
        template = (
            rng.choice(SUPPORT_PII_PREFIXES) + "{Q}"
            if rng.random() < 0.6
            else "{Q}" + rng.choice(SUPPORT_PII_SUFFIXES)
        )
        filled, inserted = render_pii_text(template.replace("{Q}", "\x00"), pii, rng)
        text = filled.replace("\x00", text)
        label_pii.extend(inserted)
    elif roll < 0.15:
        filled, inserted = render_pii_text(rng.choice(CONFIG_PASTES), pii, rng)
        text = text + filled
        label_pii.extend(inserted)
    return text, topic


def _retrieve(
    rng: random.Random, topic: str, mode: str | None, degraded: bool
) -> list[tuple[kb.Document, float]]:
    if mode == failures.EMPTY_RETRIEVAL:
        return []
    others = [d for d in kb.KB_DOCUMENTS if d.topic != topic]
    k = rng.randint(3, 4)
    if mode == failures.IRRELEVANT_RETRIEVAL:
        lo, hi = (0.58, 0.79) if degraded else (0.21, 0.47)
        docs = rng.sample(others, k)
        return sorted(((d, round(rng.uniform(lo, hi), 4)) for d in docs), key=lambda x: -x[1])
    relevant = list(kb.DOCS_BY_TOPIC[topic])
    rng.shuffle(relevant)
    scored = [(d, round(rng.uniform(0.76, 0.94), 4)) for d in relevant[: min(3, k)]]
    scored += [(d, round(rng.uniform(0.45, 0.7), 4)) for d in rng.sample(others, k - len(scored))]
    return sorted(scored, key=lambda x: -x[1])


def build_support_trace(rng: random.Random, arrival: Arrival, pii: PiiPool) -> TraceBuilder:
    """Generate one support-copilot trace."""
    t0 = arrival.start_ns
    label = TraceLabel(SUPPORT)
    version = "v5" if t0 >= V5_RELEASE_NS else "v3"
    if PROMPT_ROLLOUT.is_active(t0) and rng.random() < 0.6:
        version = "v4"
        label.incidents.append(PROMPT_ROLLOUT.incident_id)
    label.prompt_version = version
    primary: Model = GPT_4O if rng.random() < 0.15 else GPT_4O_MINI
    degraded = INDEX_DEGRADATION.is_active(t0)
    outage = PROVIDER_OUTAGE.is_active(t0)
    mode = failures.pick_failure_mode(rng, _BASE_MODES)
    if degraded:
        label.incidents.append(INDEX_DEGRADATION.incident_id)
        if mode is None and rng.random() < 0.65:
            mode = failures.IRRELEVANT_RETRIEVAL
    if outage:
        label.incidents.append(PROVIDER_OUTAGE.incident_id)
        if mode in (None, failures.RATE_LIMITED) and rng.random() < 0.7:
            mode = failures.MODEL_FALLBACK if rng.random() < 0.88 else failures.PROVIDER_TIMEOUT
    drift = drift_progress(t0)
    if drift > 0:
        label.incidents.append(ANSWER_LENGTH_DRIFT.incident_id)
    label.failure_mode = mode
    tb = TraceBuilder(rng, label)

    question, topic = _question(rng, pii, tb.pii, mode)
    retrieved = _retrieve(rng, topic, mode, degraded)
    docs = [d for d, _ in retrieved]
    context = "\n".join(f"[{d.doc_id}] {d.content}" for d in docs) or "(no articles found)"
    template = SUPPORT_TEMPLATES[version]
    system_prompt = template.replace("{context}", context)

    # The answer, if the model gets to write one.
    extra = (1 if rng.random() < drift * 0.75 else 0) + (4 if version == "v4" else 0)
    grounded: bool | None = True
    if mode == failures.REFUSAL:
        answer, grounded = rng.choice(failures.REFUSAL_ANSWERS), None
    elif mode == failures.EMPTY_RETRIEVAL:
        answer, grounded = rng.choice(kb.NO_CONTEXT_ANSWERS), None
    else:
        num_wrong, cite = 0, None
        if mode == failures.UNSUPPORTED_CLAIM:
            num_wrong = rng.choice((1, 1, 2))
        elif mode == failures.HALLUCINATED_CITATION:
            num_wrong, cite = 1, kb.pick_fake_doc_id(rng)
        elif mode == failures.IRRELEVANT_RETRIEVAL:
            num_wrong = rng.choice((0, 1, 1, 2))
        if cite is None and (version != "v3" or rng.random() < 0.35):
            cite = next((d.doc_id for d in docs if d.topic == topic), None)
        answer = kb.write_answer(
            rng, topic, docs, num_wrong=num_wrong, cite_id=cite, extra_sentences=extra
        )
        grounded = mode not in (
            failures.UNSUPPORTED_CLAIM,
            failures.HALLUCINATED_CITATION,
            failures.IRRELEVANT_RETRIEVAL,
        )

    session_attrs: Attributes = {
        SpanAttributes.SESSION_ID: arrival.session_id,
        SpanAttributes.USER_ID: arrival.user_id,
    }
    root_id, retr_id = tb.new_span_id(), tb.new_span_id()
    t = t0 + rng.randint(1, 4) * 1_000_000
    retr_end = t + int(rng.uniform(35, 160) * 1e6)
    retr_attrs: Attributes = {
        SpanAttributes.OPENINFERENCE_SPAN_KIND: OpenInferenceSpanKindValues.RETRIEVER.value,
        SpanAttributes.INPUT_VALUE: question,
    }
    for (doc, score), (id_key, score_key, content_key) in zip(retrieved, _DOC_KEYS, strict=False):
        retr_attrs[id_key] = doc.doc_id
        retr_attrs[score_key] = score
        retr_attrs[content_key] = doc.content
    tb.add_span(retr_id, root_id, "retrieve_articles", SPAN_KIND_INTERNAL, t, retr_end, retr_attrs)

    prompt_tokens = estimate_tokens(system_prompt) + estimate_tokens(question) + 8
    completion_tokens = estimate_tokens(answer)
    static_prefix = template.split("{context}")[0]
    cacheable = (estimate_tokens(static_prefix) // 16) * 16 if static_prefix else 0
    attempts, ok = plan_attempts(
        rng,
        mode,
        primary,
        CLAUDE_HAIKU,
        "support/rag_chain",
        requested_tokens=prompt_tokens + 129_000,
    )
    t = retr_end + rng.randint(1, 3) * 1_000_000
    llm_base: Attributes = {
        SpanAttributes.OPENINFERENCE_SPAN_KIND: OpenInferenceSpanKindValues.LLM.value,
        SpanAttributes.LLM_PROMPT_TEMPLATE: template,
        SpanAttributes.LLM_PROMPT_TEMPLATE_VERSION: version,
        SpanAttributes.LLM_PROMPT_TEMPLATE_VARIABLES: dumps_compact({"context": context}),
        f"{_MSG_IN}.0.{_ROLE}": "system",
        f"{_MSG_IN}.0.{_CONTENT}": system_prompt,
        f"{_MSG_IN}.1.{_ROLE}": "user",
        f"{_MSG_IN}.1.{_CONTENT}": question,
        **session_attrs,
    }
    for attempt in attempts:
        t += int(attempt.gap_before_ms * 1e6)
        model = attempt.model
        attrs = dict(llm_base)
        attrs[SpanAttributes.LLM_MODEL_NAME] = model.name
        attrs[SpanAttributes.LLM_PROVIDER] = model.provider_id
        attrs[SpanAttributes.LLM_INVOCATION_PARAMETERS] = (
            '{"temperature": 0.2, "max_tokens": 700, "stream": true}'
        )
        if attempt.explicit_marker:
            attrs[FALLBACK_FLAG] = True
        span_id = tb.new_span_id()
        name = "ChatOpenAI" if model.provider_id == "openai" else "ChatAnthropic"
        if attempt.error is not None:
            end = t + int(attempt.error_duration_ms * 1e6)
            tb.add_span(
                span_id,
                root_id,
                name,
                SPAN_KIND_INTERNAL,
                t,
                end,
                attrs,
                [failures.exception_event(end, attempt.error)],
                STATUS_ERROR,
                attempt.error.message,
            )
            t = end
            continue
        cached = (
            cacheable if (cacheable and model.provider_id == "openai" and rng.random() < 0.7) else 0
        )
        ttft, total = sample_call_timing_ms(rng, model, prompt_tokens, completion_tokens)
        end = t + int(total * 1e6)
        attrs.update(
            {
                f"{_MSG_OUT}.0.{_ROLE}": "assistant",
                f"{_MSG_OUT}.0.{_CONTENT}": answer,
                SpanAttributes.OUTPUT_VALUE: answer,
                SpanAttributes.LLM_TOKEN_COUNT_PROMPT: prompt_tokens,
                SpanAttributes.LLM_TOKEN_COUNT_COMPLETION: completion_tokens,
                SpanAttributes.LLM_TOKEN_COUNT_TOTAL: prompt_tokens + completion_tokens,
                SpanAttributes.LLM_TOKEN_COUNT_PROMPT_DETAILS_CACHE_READ: cached,
            }
        )
        tb.add_span(
            span_id,
            root_id,
            name,
            SPAN_KIND_INTERNAL,
            t,
            end,
            attrs,
            [encode_event(FIRST_TOKEN_EVENT, t + int(ttft * 1e6))],
            STATUS_OK,
        )
        t = end
        label.fallback = label.fallback or attempt.is_fallback
    root_attrs: Attributes = {
        SpanAttributes.OPENINFERENCE_SPAN_KIND: OpenInferenceSpanKindValues.CHAIN.value,
        SpanAttributes.INPUT_VALUE: question,
        **session_attrs,
    }
    end = t + rng.randint(2, 9) * 1_000_000
    if ok:
        root_attrs[SpanAttributes.OUTPUT_VALUE] = answer
        tb.add_span(
            root_id, None, "rag_answer", SPAN_KIND_INTERNAL, t0, end, root_attrs, None, STATUS_OK
        )
        label.grounded = grounded
    else:
        tb.add_span(
            root_id,
            None,
            "rag_answer",
            SPAN_KIND_INTERNAL,
            t0,
            end,
            root_attrs,
            None,
            STATUS_ERROR,
            rng.choice(_ROOT_ERRORS),
        )
        label.grounded = None
    return tb
