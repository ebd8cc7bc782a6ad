"""Throughput of ``collector.normalise.normalise_span`` on synthetic spans of each dialect.

Run: ``.venv/bin/python bench/normalise_speed.py [--seconds 2]``.  Prints spans/s and
microseconds per span for each dialect and for a mix (one process, one core).  The
collector's budget is 20,000 spans/s on 2 cores for every stage together, so normalisation
should stay well under 20 us per span.
"""

from __future__ import annotations

import argparse
import json
import time

from collector.normalise import normalise_span, normalise_spans
from collector.records import RawSpan, SpanEvent

_RESOURCE = {"service.name": "checkout", "telemetry.sdk.language": "python"}


def _span(index: int, attributes: dict[str, object], events: tuple[SpanEvent, ...] = (),
          status: int = 1) -> RawSpan:
    return RawSpan(
        trace_id=f"{index:032x}", span_id=f"{index + 1:016x}", parent_span_id=f"{index:016x}",
        name="llm call", otel_kind=3, start_time_unix_nano=1_700_000_000_000_000_000,
        end_time_unix_nano=1_700_000_000_500_000_000, status_code=status, status_message="",
        attributes=attributes, resource_attributes=_RESOURCE, scope_name="bench", events=events,
    )


def make_openinference(index: int) -> RawSpan:
    return _span(index, {
        "openinference.span.kind": "LLM",
        "llm.model_name": "gpt-4o-mini-2024-07-18",
        "llm.provider": "openai",
        "llm.system": "openai",
        "llm.invocation_parameters": '{"temperature": 0.2}',
        "llm.prompt_template.template": "Answer {question} from {context}",
        "llm.prompt_template.version": "v3",
        "llm.token_count.prompt": 812,
        "llm.token_count.completion": 96,
        "llm.token_count.total": 908,
        "llm.token_count.prompt_details.cache_read": 512,
        "input.value": "What is the refund policy for damaged items?",
        "input.mime_type": "text/plain",
        "output.value": "Damaged items can be refunded within 30 days.",
        "output.mime_type": "text/plain",
        "llm.input_messages.0.message.role": "system",
        "llm.input_messages.0.message.content": "You answer from the context.",
        "llm.input_messages.1.message.role": "user",
        "llm.input_messages.1.message.content": "What is the refund policy?",
        "llm.output_messages.0.message.role": "assistant",
        "llm.output_messages.0.message.content": "Damaged items can be refunded.",
        "session.id": f"sess-{index % 100}",
        "user.id": f"user-{index % 1000}",
        "metadata": '{"feature": "support"}',
    })


def make_genai(index: int) -> RawSpan:
    return _span(index, {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "anthropic",
        "gen_ai.request.model": "claude-sonnet-4",
        "gen_ai.response.model": "claude-sonnet-4-20250514",
        "gen_ai.request.temperature": 0.3,
        "gen_ai.request.max_tokens": 1024,
        "gen_ai.response.id": f"msg_{index}",
        "gen_ai.response.finish_reasons": ["end_turn"],
        "gen_ai.usage.input_tokens": 1200,
        "gen_ai.usage.output_tokens": 150,
        "gen_ai.usage.cache_read.input_tokens": 1000,
        "gen_ai.conversation.id": f"conv-{index % 100}",
        "gen_ai.input.messages": json.dumps([
            {"role": "user", "parts": [{"type": "text", "content": "Summarise my order"}]}]),
        "gen_ai.output.messages": json.dumps([
            {"role": "assistant", "parts": [{"type": "text", "content": "Two items."}],
             "finish_reason": "stop"}]),
        "server.address": "api.anthropic.com",
        "server.port": 443,
    })


def make_openllmetry(index: int) -> RawSpan:
    return _span(index, {
        "traceloop.workflow.name": "support_bot",
        "traceloop.entity.path": "answer",
        "llm.request.type": "chat",
        "gen_ai.system": "openai",
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.response.model": "gpt-4o-2024-08-06",
        "gen_ai.usage.prompt_tokens": 300,
        "gen_ai.usage.completion_tokens": 40,
        "llm.usage.total_tokens": 340,
        "gen_ai.prompt.0.role": "system",
        "gen_ai.prompt.0.content": "Be brief.",
        "gen_ai.prompt.1.role": "user",
        "gen_ai.prompt.1.content": "Where is my parcel?",
        "gen_ai.completion.0.role": "assistant",
        "gen_ai.completion.0.content": "It ships tomorrow.",
        "gen_ai.completion.0.finish_reason": "stop",
        "traceloop.association.properties.session_id": f"s-{index % 100}",
        "traceloop.association.properties.user_id": f"u-{index % 1000}",
        "llm.is_streaming": False,
    })


def make_genai_events(index: int) -> RawSpan:
    events = (
        SpanEvent("gen_ai.system.message", 1, {"content": "Be brief."}),
        SpanEvent("gen_ai.user.message", 2, {"content": "Hello"}),
        SpanEvent("gen_ai.choice", 3, {"body": '{"index": 0, "message": {"role": "assistant", '
                                               '"content": "Hi!"}, "finish_reason": "stop"}'}),
    )
    return _span(index, {
        "gen_ai.operation.name": "chat",
        "gen_ai.system": "gcp.vertex_ai",
        "gen_ai.request.model": "gemini-2.0-flash",
        "gen_ai.usage.input_tokens": 20,
        "gen_ai.usage.output_tokens": 5,
    }, events)


DIALECTS = {
    "openinference": make_openinference,
    "genai": make_genai,
    "openllmetry": make_openllmetry,
    "genai-events": make_genai_events,
}


def measure(spans: list[RawSpan], seconds: float) -> float:
    """Spans per second of normalise_span over ``spans``, repeated for ``seconds``."""
    for span in spans[:100]:
        normalise_span(span)  # warm the key-route cache, as a running collector would be
    done = 0
    start = time.perf_counter()
    while True:
        normalise_spans(spans)
        done += len(spans)
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return done / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="time per dialect")
    parser.add_argument("--spans", type=int, default=5000, help="distinct spans per dialect")
    args = parser.parse_args()
    mixed: list[RawSpan] = []
    for name, make in DIALECTS.items():
        spans = [make(i) for i in range(args.spans)]
        mixed.extend(spans[: args.spans // len(DIALECTS)])
        rate = measure(spans, args.seconds)
        print(f"{name:14s} {rate:10,.0f} spans/s  {1e6 / rate:6.1f} us/span  "
              f"({len(spans[0].attributes)} attributes)")
    rate = measure(mixed, args.seconds)
    print(f"{'mixed':14s} {rate:10,.0f} spans/s  {1e6 / rate:6.1f} us/span")


if __name__ == "__main__":
    main()
