"""OTLP/HTTP receiver: ``POST /v1/traces``, ``GET /healthz``, ``GET /metrics`` (ASGI).

Answers as the OTLP specification says:
- 200 with an ``ExportTraceServiceResponse`` (``partial_success`` when spans were dropped),
  in the request's encoding (protobuf or JSON);
- 400 with a ``google.rpc.Status`` body when the payload does not decode;
- 401 without the configured bearer token; 415 for another content type or encoding;
- 413 when the body, or the body after gzip decompression, is over its limit (the gzip
  stream is inflated incrementally and abandoned at the limit: a bomb is never inflated);
- 503 with ``Retry-After`` when the spool is full (backpressure).
The blocking spool write (fsync) runs in a worker thread so the event loop keeps serving.
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson
from google.protobuf import json_format
from google.protobuf.message import Message

from collector.run_config import RunConfig
from collector.decode import PayloadFormat
from collector.errors import PayloadTooLargeError, PermanentError, RetryableError
from collector.export import ExportService, rpc_status, status_for

logger = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

_CONTENT_TYPES = {
    "application/x-protobuf": PayloadFormat.PROTOBUF,
    "application/protobuf": PayloadFormat.PROTOBUF,
    "application/json": PayloadFormat.JSON,
}
_MEDIA_TYPE = {PayloadFormat.PROTOBUF: b"application/x-protobuf", PayloadFormat.JSON: b"application/json"}


class HttpReceiver:
    """The ASGI application."""

    def __init__(
        self,
        config: RunConfig,
        service: ExportService,
        health: Callable[[], dict[str, Any]],
    ) -> None:
        self.config = config
        self.service = service
        self.health = health

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _serve_lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path, method = scope["path"], scope["method"]
        if path == "/v1/traces":
            if method != "POST":
                await _respond(send, 405, b"text/plain", b"use POST", [(b"allow", b"POST")])
                return
            await self._export(scope, receive, send)
        elif path == "/healthz" and method in ("GET", "HEAD"):
            await _respond(send, 200, b"application/json", orjson.dumps(self.health()))
        elif path == "/metrics" and method == "GET":
            body = self.service.telemetry.render()
            await _respond(send, 200, b"text/plain; version=0.0.4; charset=utf-8", body)
        else:
            await _respond(send, 404, b"text/plain", b"not found")

    async def _export(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = _headers(scope)
        content_type = headers.get("content-type", "").split(";")[0].strip().lower()
        fmt = _CONTENT_TYPES.get(content_type, PayloadFormat.PROTOBUF)
        telemetry = self.service.telemetry

        async def fail(status: int, message: str, extra: list[tuple[bytes, bytes]] | None = None) -> None:
            telemetry.requests.labels("http", str(status)).inc()
            await _respond_status(send, status, fmt, message, extra)

        if not self.service.is_authorised(headers.get("authorization")):
            await _drain(receive, self.config.max_request_bytes)
            await fail(401, "missing or invalid bearer token", [(b"www-authenticate", b"Bearer")])
            return
        if content_type not in _CONTENT_TYPES:
            await _drain(receive, self.config.max_request_bytes)
            await fail(415, "content type must be application/x-protobuf or application/json")
            return
        encoding = headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("identity", "gzip", ""):
            await _drain(receive, self.config.max_request_bytes)
            await fail(415, "content encoding must be gzip or identity")
            return
        declared = headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > self.config.max_request_bytes:
            await fail(413, f"request body over {self.config.max_request_bytes} bytes")
            return
        try:
            async with self.service.admission:  # until then the body waits in the socket
                body: bytes | bytearray = await _read_body(
                    receive, self.config.max_request_bytes, self.config.body_timeout_s)
                if encoding == "gzip":
                    body = gunzip_limited(body, self.config.max_decompressed_bytes)
                outcome = await asyncio.to_thread(self.service.accept, fmt, body, "http")
                del body
        except (PermanentError, RetryableError) as exc:
            status, _ = status_for(exc)
            extra = [(b"retry-after", str(self.config.retry_after_s).encode())] if status == 503 else None
            await fail(status, str(exc), extra)
            return
        except OSError:
            logger.exception("http: spool write failed")
            await fail(503, "store temporarily unavailable", [(b"retry-after", str(self.config.retry_after_s).encode())])
            return
        telemetry.requests.labels("http", "200").inc()
        await _respond(send, 200, _MEDIA_TYPE[fmt], _encode(outcome.response(), fmt))


def gunzip_limited(body: bytes | bytearray, max_bytes: int) -> bytes:
    """Inflate a gzip body, refusing (413) as soon as the output passes max_bytes."""
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(body, max_bytes + 1)
        if len(out) > max_bytes:
            raise PayloadTooLargeError(f"decompressed body over {max_bytes} bytes")
        if not inflater.eof:
            raise PermanentError("gzip body is truncated")
        return out
    except zlib.error:
        raise PermanentError("body is not valid gzip") from None


async def _read_body(receive: Receive, max_bytes: int, timeout_s: float) -> bytearray:
    """The request body, in one buffer that grows as chunks arrive (a list of chunks and
    then their join held each body twice).  RetryableError (503) if the whole body has not
    arrived within ``timeout_s``."""
    body = bytearray()
    try:
        async with asyncio.timeout(timeout_s):
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise PermanentError("client disconnected before the body was complete")
                chunk = message.get("body", b"")
                if len(body) + len(chunk) > max_bytes:
                    raise PayloadTooLargeError(f"request body over {max_bytes} bytes")
                body += chunk
                if not message.get("more_body", False):
                    return body
    except TimeoutError:
        raise RetryableError(f"request body not received within {timeout_s:g} s") from None


async def _drain(receive: Receive, max_bytes: int) -> None:
    """Read (and drop) a refused request's body so the connection can be reused."""
    size = 0
    while size <= max_bytes:
        message = await receive()
        if message["type"] != "http.request":
            return
        size += len(message.get("body", b""))
        if not message.get("more_body", False):
            return


def _headers(scope: Scope) -> dict[str, str]:
    return {key.decode("latin-1").lower(): value.decode("latin-1") for key, value in scope["headers"]}


def _encode(message: Message, fmt: PayloadFormat) -> bytes:
    if fmt is PayloadFormat.JSON:
        return json_format.MessageToJson(message, indent=None).encode()
    return message.SerializeToString()


async def _respond_status(
    send: Send, status: int, fmt: PayloadFormat, message: str,
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    await _respond(send, status, _MEDIA_TYPE[fmt], _encode(rpc_status(status, message), fmt), extra)


async def _respond(
    send: Send, status: int, content_type: bytes, body: bytes,
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    headers.extend(extra or [])
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _serve_lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
