"""Encode spans as OTLP/JSON, the way the OpenTelemetry file exporter writes them.

Contract:
- One output line is one ``ExportTraceServiceRequest`` in the OTLP/JSON mapping
  (https://opentelemetry.io/docs/specs/otlp/#json-protobuf-encoding): camelCase field names,
  trace and span ids as lowercase hex (not base64), enums as integers, 64-bit integers
  (timestamps, ``intValue``) as decimal strings.
- Attribute values are typed from the Python value: ``bool`` -> ``boolValue``, ``int`` ->
  ``intValue`` (string), ``float`` -> ``doubleValue``, ``str`` -> ``stringValue``, a list of
  ``str`` -> ``arrayValue``. ``None`` values are dropped.
- Timestamps are written with microsecond resolution (floored), which keeps the gzip'd sample
  files small; ordering is preserved.
- Span dicts are built directly (no protobuf objects) and serialised with orjson, which is what
  keeps generation above 50k spans/s.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson

AttributeValue = str | bool | int | float | Sequence[str]
Attributes = dict[str, AttributeValue | None]

# OTLP enum values (opentelemetry/proto/trace/v1/trace.proto).
SPAN_KIND_INTERNAL = 1
SPAN_KIND_SERVER = 2
SPAN_KIND_CLIENT = 3
STATUS_UNSET = 0
STATUS_OK = 1
STATUS_ERROR = 2


def encode_value(value: AttributeValue) -> dict[str, Any]:
    """Return the OTLP/JSON ``AnyValue`` for a Python attribute value."""
    kind = type(value)
    # Exact type checks: bool is a subclass of int and must not become intValue.
    if kind is str:
        return {"stringValue": value}
    if kind is bool:
        return {"boolValue": value}
    if kind is int:
        return {"intValue": str(value)}
    if kind is float:
        return {"doubleValue": value}
    return {"arrayValue": {"values": [{"stringValue": str(v)} for v in value]}}  # type: ignore[union-attr]


def encode_attributes(attributes: Mapping[str, AttributeValue | None]) -> list[dict[str, Any]]:
    """Return the OTLP/JSON ``KeyValue`` list for a mapping, skipping ``None`` values."""
    # The str case is inlined: it is most attributes and this is the generator's hot loop.
    return [
        {"key": k, "value": {"stringValue": v} if type(v) is str else encode_value(v)}
        for k, v in attributes.items()
        if v is not None
    ]


def encode_event(
    name: str, time_ns: int, attributes: Mapping[str, AttributeValue | None] | None = None
) -> dict[str, Any]:
    """Return one OTLP/JSON span event."""
    event: dict[str, Any] = {"timeUnixNano": str(time_ns - time_ns % 1000), "name": name}
    if attributes:
        event["attributes"] = encode_attributes(attributes)
    return event


def encode_span(
    *,
    trace_id: str,
    span_id: str,
    parent_span_id: str | None,
    name: str,
    kind: int,
    start_ns: int,
    end_ns: int,
    attributes: Mapping[str, AttributeValue | None],
    events: Sequence[dict[str, Any]] = (),
    status_code: int = STATUS_UNSET,
    status_message: str | None = None,
) -> dict[str, Any]:
    """Return one OTLP/JSON span; ``parentSpanId`` is omitted for root spans."""
    span: dict[str, Any] = {"traceId": trace_id, "spanId": span_id}
    if parent_span_id:
        span["parentSpanId"] = parent_span_id
    span["name"] = name
    span["kind"] = kind
    span["startTimeUnixNano"] = str(start_ns - start_ns % 1000)
    span["endTimeUnixNano"] = str(end_ns - end_ns % 1000)
    span["attributes"] = encode_attributes(attributes)
    if events:
        span["events"] = list(events)
    status: dict[str, Any] = {}
    if status_message:
        status["message"] = status_message
    if status_code != STATUS_UNSET:
        status["code"] = status_code
    span["status"] = status
    return span


def encode_export_request(
    service_name: str,
    scope_name: str,
    scope_version: str,
    spans: Iterable[dict[str, Any]],
    resource_attributes: Mapping[str, AttributeValue] | None = None,
) -> bytes:
    """Return one JSON line (without newline): an ExportTraceServiceRequest for one service."""
    resource = {"service.name": service_name, **(resource_attributes or {})}
    request = {
        "resourceSpans": [
            {
                "resource": {"attributes": encode_attributes(resource)},
                "scopeSpans": [
                    {
                        "scope": {"name": scope_name, "version": scope_version},
                        "spans": list(spans),
                    }
                ],
            }
        ]
    }
    return orjson.dumps(request)


def dumps_compact(value: Any) -> str:
    """Serialise a JSON attribute payload (messages, variables) to a compact str."""
    return orjson.dumps(value).decode()
