"""OTLP/gRPC receiver: ``opentelemetry.proto.collector.trace.v1.TraceService/Export``.

The method is registered with a raw-bytes handler so that a payload which does not decode
gets INVALID_ARGUMENT from us (not INTERNAL from the framework).  Status codes follow the
OTLP specification: OK with ``partial_success``, INVALID_ARGUMENT, UNAUTHENTICATED,
RESOURCE_EXHAUSTED (message over ``max_request_bytes``, enforced by gRPC itself) and
UNAVAILABLE when the spool is full (retryable).  gzip-compressed requests are handled by
gRPC.
"""

from __future__ import annotations

import asyncio
import logging

import grpc

from collector.config import CollectorConfig
from collector.decode import PayloadFormat
from collector.errors import PermanentError, RetryableError
from collector.export import ExportService, status_for

logger = logging.getLogger(__name__)

SERVICE_NAME = "opentelemetry.proto.collector.trace.v1.TraceService"


def build_grpc_server(config: CollectorConfig, service: ExportService) -> grpc.aio.Server:
    """A grpc.aio server with the TraceService registered (not yet bound or started)."""

    async def export(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        telemetry = service.telemetry
        metadata = {key.lower(): value for key, value in context.invocation_metadata() or ()}
        authorization = metadata.get("authorization")
        failure: tuple[grpc.StatusCode, str] | None = None
        if not service.is_authorised(authorization if isinstance(authorization, str) else None):
            failure = grpc.StatusCode.UNAUTHENTICATED, "missing or invalid bearer token"
        else:
            try:
                async with service.admission:
                    outcome = await asyncio.to_thread(service.accept, PayloadFormat.PROTOBUF, request, "grpc")
            except (PermanentError, RetryableError) as exc:
                failure = status_for(exc)[1], str(exc)
            except OSError:
                logger.exception("grpc: spool write failed")
                failure = grpc.StatusCode.UNAVAILABLE, "store temporarily unavailable"
        if failure is not None:
            # ``abort`` raises; its traceback keeps this frame in a reference cycle that
            # only the garbage collector frees (rarely: collector.runtime), so the frame
            # must not hold the request: with it, each refused request kept 2.6 MB alive.
            del request
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
            "Export": grpc.unary_unary_rpc_method_handler(
                export, request_deserializer=None, response_serializer=None
            )
        },
    )
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", config.max_request_bytes),
            ("grpc.max_send_message_length", 4 * 1024 * 1024),
        ]
    )
    server.add_generic_rpc_handlers((handler,))
    return server
