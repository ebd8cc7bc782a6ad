"""The gRPC receiver in this process, so that what a finished call leaves behind can be
inspected (the end-to-end tests run the collector as a subprocess)."""

from __future__ import annotations

import asyncio
import gc
import types
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

from collector.config import CollectorConfig
from collector.export import ExportService
from collector.otlp_grpc import SERVICE_NAME, build_grpc_server
from collector.spool import Spool
from collector.telemetry import CollectorTelemetry
from tests.otlp_senders import genai_chat_spans, openinference_rag_spans


def test_refused_request_is_not_kept_alive(tmp_path: Path) -> None:
    """A refused export (spool full -> UNAVAILABLE) must not leave its body in a reference
    cycle: the collector collects cycles rarely, so each one kept a 2.6 MB request."""
    body = encode_spans(openinference_rag_spans("Where is my refund?")).SerializeToString()
    spool = Spool(tmp_path / "spool", max_bytes=len(body) + 1)  # room for one request
    service = ExportService(spool, CollectorTelemetry(), "", max_concurrent_requests=2)
    config = CollectorConfig(data_dir=tmp_path).run_config()

    async def scenario() -> tuple[list[grpc.StatusCode], int]:
        server = build_grpc_server(config, service)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        codes: list[grpc.StatusCode] = []
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            call = channel.unary_unary(f"/{SERVICE_NAME}/Export")
            for _ in range(3):
                try:
                    await call(body, timeout=10)
                    codes.append(grpc.StatusCode.OK)
                except grpc.aio.AioRpcError as exc:
                    codes.append(exc.code())
        await server.stop(None)
        gc.disable()  # what is still referenced now, before any collection
        try:
            return codes, len([f for f in gc.get_objects()
                               if isinstance(f, types.FrameType)
                               and any(value is not body and isinstance(value, bytes)
                                       and len(value) == len(body)
                                       for value in f.f_locals.values())])
        finally:
            gc.enable()

    codes, frames_with_request = asyncio.run(scenario())
    assert codes == [grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNAVAILABLE]
    assert frames_with_request == 0


def test_a_request_is_read_only_once_it_has_a_slot(tmp_path: Path) -> None:
    """With one request slot, a call whose message never comes holds the slot until the
    body timeout (UNAVAILABLE), then frees it; a call that waited for the slot meanwhile
    is read only then and is accepted."""
    body = encode_spans(openinference_rag_spans("Where is my refund?")).SerializeToString()
    spool = Spool(tmp_path / "spool", max_bytes=64 * 1024 * 1024)
    service = ExportService(spool, CollectorTelemetry(), "", max_concurrent_requests=1)
    config = CollectorConfig(data_dir=tmp_path, body_timeout_s=1.0).run_config()

    async def scenario() -> tuple[grpc.StatusCode, bool, int, int]:
        server = build_grpc_server(config, service)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        never = asyncio.Event()

        async def no_message() -> AsyncIterator[bytes]:
            await never.wait()
            yield body

        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stalled = asyncio.ensure_future(
                channel.stream_unary(f"/{SERVICE_NAME}/Export")(no_message(), timeout=20))
            await asyncio.sleep(0.3)  # the stalled call takes the only slot
            waiting = asyncio.ensure_future(channel.unary_unary(f"/{SERVICE_NAME}/Export")(body, timeout=20))
            done, _ = await asyncio.wait({stalled, waiting}, return_when=asyncio.FIRST_COMPLETED)
            stalled_first = stalled in done
            try:
                await stalled
                stalled_code = grpc.StatusCode.OK
            except grpc.aio.AioRpcError as exc:
                stalled_code = exc.code()
            await waiting
        await server.stop(None)
        return stalled_code, stalled_first, spool.num_entries, spool.num_spans

    stalled_code, stalled_first, num_entries, num_spans = asyncio.run(scenario())
    assert stalled_code is grpc.StatusCode.UNAVAILABLE
    assert stalled_first  # the waiting call was read only once the slot was free
    assert num_entries == 1
    assert num_spans == len(openinference_rag_spans("Where is my refund?"))


def test_a_call_without_a_message_or_over_the_limit_is_refused(tmp_path: Path) -> None:
    """No request message: INVALID_ARGUMENT.  A message over max_request_bytes: gRPC's own
    RESOURCE_EXHAUSTED.  Neither reaches the spool, and the next export goes through."""
    large = encode_spans(openinference_rag_spans("Where is my refund? " * 200)).SerializeToString()
    small = encode_spans(genai_chat_spans("hi")).SerializeToString()
    assert len(small) < 2_000 < len(large)
    spool = Spool(tmp_path / "spool", max_bytes=64 * 1024 * 1024)
    service = ExportService(spool, CollectorTelemetry(), "", max_concurrent_requests=2)
    config = CollectorConfig(data_dir=tmp_path, max_request_bytes=2_000).run_config()

    async def scenario() -> list[grpc.StatusCode]:
        server = build_grpc_server(config, service)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()

        async def nothing() -> AsyncIterator[bytes]:
            return
            yield b""  # an async generator that sends no message

        codes = []
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            calls = [lambda: channel.stream_unary(f"/{SERVICE_NAME}/Export")(nothing(), timeout=10),
                     lambda: channel.unary_unary(f"/{SERVICE_NAME}/Export")(large, timeout=10),
                     lambda: channel.unary_unary(f"/{SERVICE_NAME}/Export")(small, timeout=10)]
            for call in calls:
                try:
                    await call()
                    codes.append(grpc.StatusCode.OK)
                except grpc.aio.AioRpcError as exc:
                    codes.append(exc.code())
        await server.stop(None)
        return codes

    assert asyncio.run(scenario()) == [grpc.StatusCode.INVALID_ARGUMENT,
                                       grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.OK]
    assert spool.num_entries == 1
