"""Records that flow through the collector pipeline.

decode -> ``RawSpan`` (OTLP as it arrived, ids as lowercase hex, attribute values as
Python values) -> normalise -> ``Span`` (the columns of the ``spans`` view) -> redact ->
``Span`` with text replaced -> writer.

All records are frozen; a stage returns new records (``dataclasses.replace``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any


@dataclass(frozen=True, slots=True)
class SpanEvent:
    """An OTLP span event (exceptions, ``gen_ai.*.message`` events)."""

    name: str
    time_unix_nano: int
    attributes: dict[str, Any]


@dataclass(frozen=True, slots=True)
class RawSpan:
    """A span decoded from OTLP, before normalisation.

    Attribute values: str, bool, int, float, list (arrays) or dict (kvlist); bytes values
    become lowercase hex strings.
    """

    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    otel_kind: int  # OTLP SpanKind enum value (0 unspecified .. 5 consumer)
    start_time_unix_nano: int
    end_time_unix_nano: int
    status_code: int  # OTLP StatusCode: 0 unset, 1 ok, 2 error
    status_message: str
    attributes: dict[str, Any]
    resource_attributes: dict[str, Any]
    scope_name: str
    events: tuple[SpanEvent, ...] = ()


class SpanKind(str, Enum):
    """OpenInference span kinds, upper case as in the ``spans`` view."""

    LLM = "LLM"
    CHAIN = "CHAIN"
    RETRIEVER = "RETRIEVER"
    TOOL = "TOOL"
    AGENT = "AGENT"
    EMBEDDING = "EMBEDDING"
    RERANKER = "RERANKER"
    GUARDRAIL = "GUARDRAIL"
    EVALUATOR = "EVALUATOR"
    UNKNOWN = "UNKNOWN"

    @classmethod
    def _missing_(cls, value: object) -> SpanKind:
        if isinstance(value, str):
            upper = value.strip().upper()
            for member in cls:
                if member.value == upper:
                    return member
        return cls.UNKNOWN


@dataclass(frozen=True, slots=True)
class RetrievedDocument:
    """One document returned by a retriever span (``retrievals`` view)."""

    position: int
    document_id: str | None
    score: float | None
    content: str | None


@dataclass(frozen=True, slots=True)
class SpanEvaluation:
    """An evaluation carried by the span itself (``eval.*`` attributes, evaluator spans)."""

    name: str
    score: float | None
    label: str | None
    explanation: str | None


# Not frozen, unlike the other records: a frozen dataclass of 31 fields costs ~6 us to
# build (object.__setattr__ per field) against 0.7 us, and the collector builds one per span
# at 20,000 spans/s.  Treat it as immutable all the same: stages use dataclasses.replace.
@dataclass(slots=True)
class Span:
    """A normalised span: the columns of the ``spans`` table.

    ``cost_usd_reported`` is the span's own ``llm.cost.total``; the ``spans`` view prices
    the rest.  ``fallback_marked`` is an explicit fallback marker on the span; the view adds
    fallbacks inferred from earlier failed LLM calls of the same trace.
    """

    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    span_kind: SpanKind
    service_name: str | None
    start_time_unix_nano: int
    end_time_unix_nano: int
    status_code: str  # 'OK' | 'ERROR' | 'UNSET'
    status_message: str | None = None
    model_name: str | None = None
    provider: str | None = None
    prompt_version: str | None = None
    prompt_template: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_prompt_tokens: int | None = None
    total_tokens: int | None = None
    cost_usd_reported: float | None = None
    fallback_marked: bool = False
    fallback_from: str | None = None
    session_id: str | None = None
    user_id: str | None = None
    input_text: str | None = None
    output_text: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    retrievals: tuple[RetrievedDocument, ...] = ()
    evaluations: tuple[SpanEvaluation, ...] = ()
    redacted_count: int = 0
    text_withheld: bool = False  # redaction failed: every free-text field was dropped


@dataclass(frozen=True, slots=True)
class RejectedSpan:
    """A span that could not be accepted, with the reason (ids only, never span text)."""

    trace_id: str
    span_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class SpanBatch:
    """Spans of one export request (or one file chunk) moving through the pipeline."""

    spans: tuple[Span, ...]
    rejected: tuple[RejectedSpan, ...] = ()
