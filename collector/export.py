"""What both OTLP receivers do with an export request, and how errors map to statuses.

``ExportService.accept`` checks the payload (cheap), spools it durably and returns the
outcome; the response is an ``ExportTraceServiceResponse`` whose ``partial_success`` lists
how many spans were rejected and why.  Errors map in one place (``status_for``):
PermanentError -> 400 / INVALID_ARGUMENT, PayloadTooLargeError -> 413 / RESOURCE_EXHAUSTED,
RetryableError (spool full) -> 503 / UNAVAILABLE with Retry-After.
"""

from __future__ import annotations

import asyncio
import hmac
from dataclasses import dataclass

import grpc
from google.rpc import code_pb2, status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTracePartialSuccess,
    ExportTraceServiceResponse,
)

from collector.decode import PayloadFormat, check_export_request
from collector.errors import PayloadTooLargeError, PermanentError, RetryableError
from collector.records import RejectedSpan
from collector.spool import Spool
from collector.telemetry import CollectorTelemetry

_MAX_REASONS_IN_MESSAGE = 3


@dataclass(frozen=True, slots=True)
class ExportOutcome:
    num_spans: int
    rejected: list[RejectedSpan]

    def response(self) -> ExportTraceServiceResponse:
        response = ExportTraceServiceResponse()
        if self.rejected:
            reasons = sorted({item.reason for item in self.rejected})
            message = "; ".join(reasons[:_MAX_REASONS_IN_MESSAGE])
            example = self.rejected[0]
            response.partial_success.CopyFrom(
                ExportTracePartialSuccess(
                    rejected_spans=len(self.rejected),
                    error_message=(
                        f"{len(self.rejected)} span(s) rejected: {message} "
                        f"(e.g. trace_id={example.trace_id} span_id={example.span_id})"
                    ),
                )
            )
        return response


class ExportService:
    """Shared by the HTTP handler and the gRPC servicer."""

    def __init__(self, spool: Spool, telemetry: CollectorTelemetry, auth_token: str,
                 max_concurrent_requests: int) -> None:
        self.spool = spool
        self.telemetry = telemetry
        self._token = auth_token.encode()
        # Held by a receiver from reading a request (HTTP) or checking it (gRPC) until it is
        # spooled: each in flight costs its body plus ~1.3 times that while it is parsed.
        self.admission = asyncio.Semaphore(max_concurrent_requests)

    @property
    def auth_required(self) -> bool:
        return bool(self._token)

    def is_authorised(self, authorization: str | None) -> bool:
        """Constant-time check of an ``Authorization: Bearer <token>`` value."""
        if not self._token:
            return True
        if not authorization:
            return False
        scheme, _, credentials = authorization.partition(" ")
        if scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(credentials.strip().encode(), self._token)

    def accept(self, fmt: PayloadFormat, body: bytes | bytearray, transport: str) -> ExportOutcome:
        """Check and spool one request; raises PermanentError or RetryableError."""
        num_spans, rejected = check_export_request(fmt, body)
        self.telemetry.spans_received.labels(transport).inc(num_spans)
        if num_spans > len(rejected):
            self.spool.append(fmt, body, num_spans - len(rejected))
        self.telemetry.spans_accepted.inc(num_spans - len(rejected))
        self.telemetry.spans_rejected.inc(len(rejected))
        return ExportOutcome(num_spans, rejected)


def status_for(exc: Exception) -> tuple[int, grpc.StatusCode]:
    """The HTTP status and gRPC code for an error of a request."""
    if isinstance(exc, PayloadTooLargeError):
        return 413, grpc.StatusCode.RESOURCE_EXHAUSTED
    if isinstance(exc, PermanentError):
        return 400, grpc.StatusCode.INVALID_ARGUMENT
    if isinstance(exc, RetryableError):
        return 503, grpc.StatusCode.UNAVAILABLE
    return 500, grpc.StatusCode.INTERNAL


def rpc_status(http_status: int, message: str) -> status_pb2.Status:
    code = {
        400: code_pb2.INVALID_ARGUMENT,
        401: code_pb2.UNAUTHENTICATED,
        404: code_pb2.NOT_FOUND,
        405: code_pb2.UNIMPLEMENTED,
        413: code_pb2.RESOURCE_EXHAUSTED,
        415: code_pb2.INVALID_ARGUMENT,
        429: code_pb2.RESOURCE_EXHAUSTED,
        503: code_pb2.UNAVAILABLE,
    }.get(http_status, code_pb2.INTERNAL)
    return status_pb2.Status(code=code, message=message)
