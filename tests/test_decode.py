"""OTLP/JSON mapping details decoded exactly (table-driven)."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from collector.decode import PayloadFormat, check_export_request, decode_export_request
from collector.errors import PermanentError


def _request(value: dict[str, Any], **span_fields: Any) -> bytes:
    span = {"traceId": "5B8EFFF798038103D269B633813FC60C", "spanId": "EEE19B7EC3C1B174",
            "name": "x", "attributes": [{"key": "k", "value": value}], **span_fields}
    return json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}).encode()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"stringValue": "hi"}, "hi"),
        ({"intValue": "9007199254740993"}, 9007199254740993),  # 64-bit ints come as strings
        ({"intValue": 12}, 12),
        ({"doubleValue": 0.5}, 0.5),
        ({"doubleValue": "Infinity"}, math.inf),
        ({"boolValue": True}, True),
        ({"bytesValue": "AQID"}, "010203"),
        ({"arrayValue": {"values": [{"stringValue": "a"}, {"intValue": "2"}]}}, ["a", 2]),
        ({"kvlistValue": {"values": [{"key": "n", "value": {"boolValue": False}}]}}, {"n": False}),
        ({"string_value": "snake"}, "snake"),
        ({}, None),
    ],
)
def test_any_value_mapping(value: dict[str, Any], expected: Any) -> None:
    spans, rejected = decode_export_request(PayloadFormat.JSON, _request(value))
    assert rejected == [] and spans[0].attributes["k"] == expected


def test_ids_are_lowercased_and_enums_may_be_names() -> None:
    body = _request({"stringValue": "v"}, kind="SPAN_KIND_CLIENT", status={"code": "STATUS_CODE_ERROR"},
                    startTimeUnixNano="1763000000000000000", parentSpanId="")
    (span,), _ = decode_export_request(PayloadFormat.JSON, body)
    assert (span.trace_id, span.span_id, span.parent_span_id) == (
        "5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174", None)
    assert (span.otel_kind, span.status_code, span.start_time_unix_nano) == (3, 2, 1763000000000000000)


@pytest.mark.parametrize("body", [b"", b"[]", b'{"resourceSpans": {}}', b"\xff\xfe"])
def test_undecodable_json_is_a_permanent_error(body: bytes) -> None:
    with pytest.raises(PermanentError):
        check_export_request(PayloadFormat.JSON, body)
