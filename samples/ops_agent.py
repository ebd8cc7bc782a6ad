"""The tool-calling operations agent, traced with OpenLLMetry (Traceloop) attributes.

Trace shape: ``ops_assistant.workflow`` (workflow, root) -> ``triage.task`` (task) with an LLM
call on the private ``acme-llm-7b`` (provider ``internal``, unpriced) -> ``planner.agent`` (agent)
with LLM calls (``openai.chat`` / ``anthropic.chat``) and tool spans (``<tool>.tool``), then a final
LLM call that writes the reply. LLM spans use ``llm.request.type=chat``, ``gen_ai.system``,
``gen_ai.request.model``, ``gen_ai.prompt.N.*`` / ``gen_ai.completion.N.*``,
``gen_ai.usage.input_tokens``/``output_tokens``, ``llm.usage.total_tokens`` and (planner) the
managed prompt as ``traceloop.prompt.key``/``.version``; streamed calls set
``llm.is_streaming`` and a ``llm.content.completion.chunk`` event at the first token. Workflow
and tool spans carry ``traceloop.entity.input``/``output`` (JSON); user and session ids are
``traceloop.association.properties.user_id``/``session_id`` on the root.

Failure modes: tool_call_error, rate_limited, refusal, context_length_exceeded (a huge pasted log
on the 32k-context private model), model_fallback (implicit only: an ERROR call, then another
provider), provider_timeout, retry_loop (incident INC-2). Incident INC-3 (OpenAI outage) applies.
"""

from __future__ import annotations

import random

from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as ga
from opentelemetry.semconv_ai import (
    LLMRequestTypeValues,
    TraceloopSpanKindValues,
)
from opentelemetry.semconv_ai import (
    SpanAttributes as TL,
)

from samples import failures
from samples.agent_content import (
    OUT_OF_POLICY,
    PII_REQUESTS,
    REPLIES,
    REQUESTS,
    RESULTS,
    TOOL_FAIL_REPLIES,
)
from samples.incidents import PROVIDER_OUTAGE, RETRY_LOOP
from samples.llm_calls import Attempt, plan_attempts
from samples.models import (
    ACME_7B,
    CLAUDE_SONNET,
    GPT_4O,
    Model,
    estimate_tokens,
    sample_call_timing_ms,
)
from samples.otlp_json import (
    SPAN_KIND_CLIENT,
    SPAN_KIND_INTERNAL,
    STATUS_ERROR,
    Attributes,
    dumps_compact,
    encode_event,
)
from samples.pii import CONFIG_PASTES, PiiPool, render_pii_text
from samples.prompts import AGENT_SYSTEM_PROMPTS
from samples.trace_builder import TraceBuilder, TraceLabel
from samples.traffic import AGENT, Arrival

SCOPE = ("opentelemetry.instrumentation.openai", "0.47.3")
AGENT_PROMPT_KEY = "ops-agent-system"
AGENT_PROMPT_VERSION = "v2"
_LOOKUP_REQUESTS = tuple(r for r in REQUESTS + PII_REQUESTS if r[1] == "lookup_order")
_CUSTOMER_KEYS = ("EMAIL_ADDRESS", "PHONE_NUMBER", "PERSON")
_MODES = (
    (failures.TOOL_CALL_ERROR, 0.05),
    (failures.RATE_LIMITED, 0.02),
    (failures.REFUSAL, 0.015),
    (failures.CONTEXT_LENGTH_EXCEEDED, 0.008),
    (failures.MODEL_FALLBACK, 0.01),
    (failures.PROVIDER_TIMEOUT, 0.007),
    (failures.RETRY_LOOP, 0.003),
)


def _llm_attrs(
    model: Model,
    messages: list[tuple[str, str]],
    completion: str | None,
    prompt_tokens: int,
    completion_tokens: int,
) -> Attributes:
    attrs: Attributes = {
        TL.LLM_REQUEST_TYPE: LLMRequestTypeValues.CHAT.value,
        TL.LLM_SYSTEM: model.genai_provider,
        TL.LLM_REQUEST_MODEL: model.name,
        TL.LLM_IS_STREAMING: model is not ACME_7B,
    }
    if model is not ACME_7B:  # the planner's managed system prompt
        attrs[TL.TRACELOOP_PROMPT_KEY] = AGENT_PROMPT_KEY
        attrs[TL.TRACELOOP_PROMPT_VERSION] = AGENT_PROMPT_VERSION
    for i, (role, content) in enumerate(messages):
        attrs[f"{TL.LLM_PROMPTS}.{i}.role"] = role
        attrs[f"{TL.LLM_PROMPTS}.{i}.content"] = content
    if completion is not None:
        attrs[TL.LLM_RESPONSE_MODEL] = model.name
        attrs[f"{TL.LLM_COMPLETIONS}.0.role"] = "assistant"
        attrs[f"{TL.LLM_COMPLETIONS}.0.content"] = completion
        attrs[ga.GEN_AI_USAGE_INPUT_TOKENS] = prompt_tokens
        attrs[ga.GEN_AI_USAGE_OUTPUT_TOKENS] = completion_tokens
        attrs[TL.LLM_USAGE_TOTAL_TOKENS] = prompt_tokens + completion_tokens
    return attrs


class _AgentRun:
    """Writes the spans of one agent run in time order."""

    def __init__(self, tb: TraceBuilder, t: int) -> None:
        self.tb, self.t, self.ok = tb, t, True

    def llm(
        self, parent: str, attempts: list[Attempt], messages: list[tuple[str, str]], completion: str
    ) -> None:
        rng = self.tb.rng
        prompt_tokens = sum(estimate_tokens(c) for _, c in messages) + 6 * len(messages)
        completion_tokens = estimate_tokens(completion)
        for attempt in attempts:
            self.t += int(attempt.gap_before_ms * 1e6)
            model = attempt.model
            name = f"{model.genai_provider}.chat"
            span_id = self.tb.new_span_id()
            if attempt.error is not None:
                end = self.t + int(attempt.error_duration_ms * 1e6)
                self.tb.add_span(
                    span_id,
                    parent,
                    name,
                    SPAN_KIND_CLIENT,
                    self.t,
                    end,
                    _llm_attrs(model, messages, None, 0, 0),
                    [failures.exception_event(end, attempt.error)],
                    STATUS_ERROR,
                    attempt.error.message,
                )
                self.t = end
                continue
            ttft, total = sample_call_timing_ms(rng, model, prompt_tokens, completion_tokens)
            end = self.t + int(total * 1e6)
            attrs = _llm_attrs(model, messages, completion, prompt_tokens, completion_tokens)
            events = (
                [encode_event(TL.LLM_CONTENT_COMPLETION_CHUNK, self.t + int(ttft * 1e6))]
                if model is not ACME_7B
                else []
            )
            self.tb.add_span(span_id, parent, name, SPAN_KIND_CLIENT, self.t, end, attrs, events)
            self.tb.label.fallback = self.tb.label.fallback or attempt.is_fallback
            self.t = end

    def tool(
        self,
        parent: str,
        tool: str,
        args: dict[str, str],
        result: str | None,
        error: failures.ErrorText | None,
    ) -> None:
        span_id = self.tb.new_span_id()
        end = self.t + int(self.tb.rng.uniform(30, 900) * 1e6)
        attrs: Attributes = {
            TL.TRACELOOP_SPAN_KIND: TraceloopSpanKindValues.TOOL.value,
            TL.TRACELOOP_ENTITY_NAME: tool,
            TL.TRACELOOP_ENTITY_INPUT: dumps_compact({"args": [], "kwargs": args}),
        }
        if error is None:
            attrs[TL.TRACELOOP_ENTITY_OUTPUT] = result
            self.tb.add_span(
                span_id, parent, f"{tool}.tool", SPAN_KIND_INTERNAL, self.t, end, attrs
            )
        else:
            self.tb.add_span(
                span_id,
                parent,
                f"{tool}.tool",
                SPAN_KIND_INTERNAL,
                self.t,
                end,
                attrs,
                [failures.exception_event(end, error)],
                STATUS_ERROR,
                error.message,
            )
        self.t = end + int(self.tb.rng.uniform(1, 8) * 1e6)


def build_agent_trace(rng: random.Random, arrival: Arrival, pii: PiiPool) -> TraceBuilder:
    """Generate one agent trace."""
    t0 = arrival.start_ns
    mode = failures.pick_failure_mode(rng, _MODES)
    label = TraceLabel(AGENT, prompt_version=AGENT_PROMPT_VERSION)
    if RETRY_LOOP.is_active(t0):
        label.incidents.append(RETRY_LOOP.incident_id)
        if mode is None and rng.random() < 0.35:
            mode = failures.RETRY_LOOP
    planner_model = GPT_4O
    if PROVIDER_OUTAGE.is_active(t0):
        label.incidents.append(PROVIDER_OUTAGE.incident_id)
        if mode in (None, failures.RATE_LIMITED) and rng.random() < 0.7:
            mode = failures.MODEL_FALLBACK if rng.random() < 0.85 else failures.PROVIDER_TIMEOUT
    label.failure_mode = mode
    tb = TraceBuilder(rng, label)
    order = f"#{rng.randint(100000, 999999)}"
    if mode == failures.REFUSAL:
        request, tool = rng.choice(OUT_OF_POLICY), "search_tickets"
    else:
        if mode == failures.RETRY_LOOP:  # the looping bug is in the lookup_order tool
            template, tool = rng.choice(_LOOKUP_REQUESTS)
        else:
            template, tool = rng.choice(PII_REQUESTS if rng.random() < 0.12 else REQUESTS)
        request, inserted = render_pii_text(template.replace("{order}", order), pii, rng)
        tb.pii.extend(inserted)
        if rng.random() < 0.04:
            paste, inserted = render_pii_text(rng.choice(CONFIG_PASTES), pii, rng)
            request += " Also the integration broke, here is our config:" + paste
            tb.pii.extend(inserted)
    if mode == failures.CONTEXT_LENGTH_EXCEEDED:
        request += "\n\n[attached: courier-sync.log, 41,882 lines]"
    system = AGENT_SYSTEM_PROMPTS[AGENT_PROMPT_VERSION]
    run = _AgentRun(tb, t0 + rng.randint(1, 5) * 1_000_000)
    root_id, triage_id, planner_id = tb.new_span_id(), tb.new_span_id(), tb.new_span_id()

    # 1. Triage on the private model.
    triage_start = run.t
    triage_attempts, ok = plan_attempts(
        rng,
        mode if mode == failures.CONTEXT_LENGTH_EXCEEDED else None,
        ACME_7B,
        ACME_7B,
        "agent/triage",
        requested_tokens=0,
    )
    run.llm(
        triage_id,
        triage_attempts,
        [("system", "Classify the request into one intent."), ("user", request)],
        "refuse" if mode == failures.REFUSAL else tool,
    )
    tb.add_span(
        triage_id,
        root_id,
        "triage.task",
        SPAN_KIND_INTERNAL,
        triage_start,
        run.t,
        {
            TL.TRACELOOP_SPAN_KIND: TraceloopSpanKindValues.TASK.value,
            TL.TRACELOOP_ENTITY_NAME: "triage",
        },
        None,
        0 if ok else STATUS_ERROR,
        None if ok else "triage failed",
    )
    reply = ""
    if not ok:
        label.prompt_version = None  # the versioned prompt is the planner's, never called
    if ok:
        planner_start = run.t
        history: list[tuple[str, str]] = [("system", system), ("user", request)]
        if mode == failures.REFUSAL:
            reply = rng.choice(failures.REFUSAL_ANSWERS[:2] + failures.REFUSAL_ANSWERS[3:])
            run.llm(planner_id, [Attempt(planner_model)], history, reply)
        else:
            call = f'call {tool}(order_id="{order}")'
            llm_mode = (
                mode
                if mode
                in (failures.RATE_LIMITED, failures.MODEL_FALLBACK, failures.PROVIDER_TIMEOUT)
                else None
            )
            attempts, ok = plan_attempts(
                rng, llm_mode, planner_model, CLAUDE_SONNET, "agent/planner"
            )
            for a in attempts:  # the agent's fallback is never marked explicitly
                if a.is_fallback:
                    attempts[attempts.index(a)] = Attempt(
                        a.model, gap_before_ms=a.gap_before_ms, is_fallback=True
                    )
            run.llm(planner_id, attempts, history, call)
            final_model = attempts[-1].model
            if ok:
                loops = rng.randint(6, 14) if mode == failures.RETRY_LOOP else 1
                for i in range(loops):
                    history.append(("assistant", call))
                    if mode == failures.TOOL_CALL_ERROR:
                        # A customer identifier in the request ends up in the tool arguments and,
                        # for some errors, in the exception message (which must be redacted too).
                        customer = next(
                            (v.text for v in tb.pii if v.entity_type in _CUSTOMER_KEYS), None
                        )
                        args = {"order_id": order} if customer is None else {"customer": customer}
                        error = failures.make_tool_error(rng, tool, customer or order)
                        run.tool(planner_id, tool, args, None, error)
                        history.append(("tool", f"error: {error.exception_type}: {error.message}"))
                        reply = rng.choice(TOOL_FAIL_REPLIES).format(tool=tool)
                        ok = rng.random() < 0.5
                    elif mode == failures.RETRY_LOOP and i < loops - 1:
                        run.tool(
                            planner_id,
                            tool,
                            {"order_id": order},
                            '{"status": "pending", "retry": true}',
                            None,
                        )
                        history.append(("tool", '{"status": "pending", "retry": true}'))
                        run.llm(planner_id, [Attempt(final_model)], history, call)
                        continue
                    else:
                        result = rng.choice(RESULTS[tool])
                        run.tool(
                            planner_id,
                            tool,
                            {"order_id": order},
                            dumps_compact({"ok": True, "summary": result}),
                            None,
                        )
                        history.append(("tool", result))
                        reply = rng.choice(REPLIES).format(order=order, result=result)
                    run.llm(planner_id, [Attempt(final_model)], history, reply)
        tb.add_span(
            planner_id,
            root_id,
            "planner.agent",
            SPAN_KIND_INTERNAL,
            planner_start,
            run.t,
            {
                TL.TRACELOOP_SPAN_KIND: TraceloopSpanKindValues.AGENT.value,
                TL.TRACELOOP_ENTITY_NAME: "planner",
            },
            None,
            0 if ok else STATUS_ERROR,
            None if ok else "planner failed",
        )
    root_attrs: Attributes = {
        TL.TRACELOOP_SPAN_KIND: TraceloopSpanKindValues.WORKFLOW.value,
        TL.TRACELOOP_WORKFLOW_NAME: "ops_assistant",
        TL.TRACELOOP_ENTITY_NAME: "ops_assistant",
        TL.TRACELOOP_ENTITY_INPUT: dumps_compact({"args": [request], "kwargs": {}}),
        TL.TRACELOOP_ASSOCIATION_PROPERTIES + ".user_id": arrival.user_id,
        TL.TRACELOOP_ASSOCIATION_PROPERTIES + ".session_id": arrival.session_id,
    }
    if ok:
        root_attrs[TL.TRACELOOP_ENTITY_OUTPUT] = dumps_compact({"reply": reply})
    end = run.t + rng.randint(1, 4) * 1_000_000
    tb.add_span(
        root_id,
        None,
        "ops_assistant.workflow",
        SPAN_KIND_INTERNAL,
        t0,
        end,
        root_attrs,
        None,
        0 if ok else STATUS_ERROR,
        None
        if ok
        else rng.choice(("workflow failed", "agent run failed", "request could not be completed")),
    )
    return tb
