"""OTLP/gRPC receiver: ``opentelemetry.proto.collector.trace.v1.TraceService/Export``.

The method is registered with a raw-bytes handler so that a payload which does not decode
gets INVALID_ARGUMENT from us (not INTERNAL from the framework).  Status codes follow the
OTLP specification: OK with ``partial_success``, INVALID_ARGUMENT, UNAUTHENTICATED,
RESOURCE_EXHAUSTED (message over ``max_request_bytes``, enforced by gRPC itself) and
UNAVAILABLE when the spool is full or the message does not arrive within
``body_timeout_s`` (retryable).  gzip-compressed requests are handled by gRPC.

The handler is registered as client-streaming although the method is unary (the wire format
is the same: one length-prefixed message, then the end of the stream), so that it reads the
message itself, once it holds one of ``max_concurrent_requests`` admission slots, as the
HTTP receiver does.  With a unary handler gRPC receives every request in full before the
handler runs: under load each waiting export held its whole body (2.6 MB in the benchmark)
in the receiving process.  Now a waiting request stays in HTTP/2 flow control, at the
client.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import grpc

from collector.run_config import RunConfig
from collector.decode import PayloadFormat
from collector.errors import PermanentError, RetryableError
from collector.export import ExportOutcome, ExportService, status_for

logger = logging.getLogger(__name__)

SERVICE_NAME = "opentelemetry.proto.collector.trace.v1.TraceService"
_STREAM_WINDOW_BYTES = 64 * 1024


def build_grpc_server(config: RunConfig, service: ExportService) -> grpc.aio.Server:
    """A grpc.aio server with the TraceService registered (not yet bound or started)."""

    async def export(requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext) -> bytes:
        telemetry = service.telemetry
        metadata = {key.lower(): value for key, value in context.invocation_metadata() or ()}
        authorization = metadata.get("authorization")
        failure: tuple[grpc.StatusCode, str] | None = None
        if not service.is_authorised(authorization if isinstance(authorization, str) else None):
            failure = grpc.StatusCode.UNAUTHENTICATED, "missing or invalid bearer token"
        else:
            try:
                async with service.admission:
                    outcome = await _accept(service, context, config.body_timeout_s)
            except (PermanentError, RetryableError) as exc:
                failure = status_for(exc)[1], str(exc)
            except OSError:
                logger.exception("grpc: spool write failed")
                failure = grpc.StatusCode.UNAVAILABLE, "store temporarily unavailable"
        if failure is not None:
            code, message = failure
            telemetry.requests.labels("grpc", code.name).inc()
            if code is grpc.StatusCode.UNAVAILABLE:
                await context.send_initial_metadata((("retry-after", str(config.retry_after_s)),))
            await context.abort(code, message)
        telemetry.requests.labels("grpc", "OK").inc()
        return outcome.response().SerializeToString()

    handler = grpc.method_handlers_generic_handler(
        SERVICE_NAME,
        {
            "Export": grpc.stream_unary_rpc_method_handler(
                export, request_deserializer=None, response_serializer=None
            )
        },
    )
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", config.max_request_bytes),
            ("grpc.max_send_message_length", 4 * 1024 * 1024),
            # A fixed 64 KB window per stream, so a request the handler has not started
            # reading waits at the client.  With bandwidth-delay probing gRPC widened the
            # window to whole requests and held every waiting one (bench/ingest.py, gRPC
            # phase: receiving process 98 -> 80 MB anonymous, throughput unchanged).
            ("grpc.http2.bdp_probe", 0),
            ("grpc.http2.lookahead_bytes", _STREAM_WINDOW_BYTES),
        ]
    )
    server.add_generic_rpc_handlers((handler,))
    return server


async def _accept(service: ExportService, context: grpc.aio.ServicerContext,
                  timeout_s: float) -> ExportOutcome:
    """Read the call's one request message and spool it.

    The request lives only in this frame: ``abort`` (on a failure, in the caller) raises,
    and its traceback keeps the caller's frame in a reference cycle that only the garbage
    collector frees (rarely: collector.runtime); a request held there was kept alive, 2.6 MB
    per refused export."""
    try:
        async with asyncio.timeout(timeout_s):
            request = await context.read()
    except TimeoutError:
        raise RetryableError(f"request message not received within {timeout_s:g} s") from None
    if not isinstance(request, bytes):
        # grpc.aio.EOF: the client sent no message, or one over max_request_bytes (gRPC
        # itself has then answered RESOURCE_EXHAUSTED); both count as INVALID_ARGUMENT in
        # /metrics, since the handler cannot tell them apart.
        raise PermanentError("the call carried no ExportTraceServiceRequest")
    return await asyncio.to_thread(service.accept, PayloadFormat.PROTOBUF, request, "grpc")
