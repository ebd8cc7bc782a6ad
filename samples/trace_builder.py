"""Assemble one trace's spans and its ground-truth label.

Contract:
- A ``TraceBuilder`` draws its trace id and span ids from the chunk's seeded ``random.Random``,
  so ids are deterministic and unique in practice (128/64 random bits).
- Spans are collected as plain records and encoded by ``finish()``. When the trace received
  personal data, ``finish()`` scans every string attribute of every span, and every string
  attribute of every span event, for each inserted value and records each occurrence as
  ``{trace_id, span_id, field, start, end, entity_type, text}``; for event attributes ``field``
  is ``events[<index>].<key>``, for the span's status description it is ``status.message``.
- ``TraceLabel`` is the per-trace ground truth: service, failure mode (or None), grounded
  (True/False, None when not applicable: no retrieved context, no answer, or a refusal),
  fallback, prompt version and incident ids.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from samples.otlp_json import Attributes, encode_span
from samples.pii import PiiValue, locate_pii


@dataclass(slots=True)
class TraceLabel:
    """Ground truth for one trace."""

    service: str
    failure_mode: str | None = None
    grounded: bool | None = None
    fallback: bool = False
    prompt_version: str | None = None
    incidents: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "failure_mode": self.failure_mode,
            "grounded": self.grounded,
            "fallback": self.fallback,
            "prompt_version": self.prompt_version,
            "incidents": self.incidents,
        }


@dataclass(slots=True)
class _SpanRecord:
    span_id: str
    parent_span_id: str | None
    name: str
    kind: int
    start_ns: int
    end_ns: int
    attributes: Attributes
    events: list[dict[str, Any]]
    status_code: int
    status_message: str | None


class TraceBuilder:
    """Collects the spans of one trace."""

    def __init__(self, rng: random.Random, label: TraceLabel) -> None:
        self.rng = rng
        self.trace_id = f"{rng.getrandbits(128):032x}"
        self.label = label
        self.pii: list[PiiValue] = []
        self._spans: list[_SpanRecord] = []

    def new_span_id(self) -> str:
        """A fresh 16-hex-digit span id."""
        return f"{self.rng.getrandbits(64) | 1:016x}"

    def add_span(
        self,
        span_id: str,
        parent_span_id: str | None,
        name: str,
        kind: int,
        start_ns: int,
        end_ns: int,
        attributes: Attributes,
        events: list[dict[str, Any]] | None = None,
        status_code: int = 0,
        status_message: str | None = None,
    ) -> None:
        """Record one span (encoded later by ``finish``)."""
        self._spans.append(
            _SpanRecord(
                span_id,
                parent_span_id,
                name,
                kind,
                start_ns,
                end_ns,
                attributes,
                events or [],
                status_code,
                status_message,
            )
        )

    @property
    def num_spans(self) -> int:
        return len(self._spans)

    def finish(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Return the encoded spans and the located personal data of this trace."""
        located: list[dict[str, Any]] = []
        if self.pii:
            for rec in self._spans:
                for key, value in rec.attributes.items():
                    if isinstance(value, str):
                        located.extend(self._located(rec.span_id, key, value))
                for i, event in enumerate(rec.events):
                    for kv in event.get("attributes", ()):
                        text = kv["value"].get("stringValue")
                        if text:
                            located.extend(
                                self._located(rec.span_id, f"events[{i}].{kv['key']}", text)
                            )
                if rec.status_message:
                    located.extend(self._located(rec.span_id, "status.message", rec.status_message))
        spans = [
            encode_span(
                trace_id=self.trace_id,
                span_id=r.span_id,
                parent_span_id=r.parent_span_id,
                name=r.name,
                kind=r.kind,
                start_ns=r.start_ns,
                end_ns=r.end_ns,
                attributes=r.attributes,
                events=r.events,
                status_code=r.status_code,
                status_message=r.status_message,
            )
            for r in self._spans
        ]
        return spans, located

    def _located(self, span_id: str, field_name: str, text: str) -> list[dict[str, Any]]:
        return [
            {
                "trace_id": self.trace_id,
                "span_id": span_id,
                "field": field_name,
                "start": start,
                "end": end,
                "entity_type": etype,
                "text": value,
            }
            for start, end, etype, value in locate_pii(text, self.pii)
        ]
