"""Runs the collector process: store writer first, then the receivers; reverse on shutdown.

Start: open the store (writer lock, key index), replay the spool, start the writer thread,
then bind HTTP and gRPC (port 0 picks a free port; the bound addresses are printed and
written to ``<data>/collector.json``).  Stop (SIGINT/SIGTERM): stop the receivers, drain the
spool for a while, close the writer.  If gRPC fails to bind, HTTP is not left running alone
(the operator asked for both).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import time
from collections.abc import Callable
from typing import Any

import grpc
import orjson
import uvicorn

from collector.run_config import RunConfig
from collector.errors import ConfigError
from collector.export import ExportService
from collector.otlp_grpc import build_grpc_server
from collector.otlp_http import HttpReceiver
from collector.pipeline import build_writer
from collector.schema import spool_path
from collector.spool import Spool
from collector.telemetry import CollectorTelemetry
from collector.runtime import tune_receiver_malloc, tune_runtime
from collector.workers import PipelineExecutor
from collector.writer_loop import WriterLoop

logger = logging.getLogger(__name__)


def split_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


def bind_socket(address: str) -> socket.socket:
    host, port = split_address(address)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {address}: {exc.strerror}") from None
    sock.listen(1024)
    sock.setblocking(False)
    return sock


def run_collector(config: RunConfig, on_ready: Callable[[dict[str, str]], None] | None = None) -> None:
    """Run until SIGINT/SIGTERM."""
    asyncio.run(_serve(config, on_ready))


async def _serve(config: RunConfig, on_ready: Callable[[dict[str, str]], None] | None) -> None:
    config.data_dir.mkdir(parents=True, exist_ok=True)
    tune_runtime()
    tune_receiver_malloc()
    telemetry = CollectorTelemetry()
    writer = build_writer(config)
    spool = Spool(spool_path(config.data_dir), config.max_spool_bytes, config.spool_fsync)
    telemetry.bind_queue(lambda: spool.num_spans, lambda: spool.num_bytes)
    executor = PipelineExecutor(config, config.workers)
    executor.warm_up()
    loop_thread = WriterLoop(config, spool, executor, writer, telemetry)
    loop_thread.start()
    started_at = time.time()
    service = ExportService(spool, telemetry, config.auth_token,
                            config.max_concurrent_requests)

    def health() -> dict[str, Any]:
        return {
            "status": "ok",
            "uptime_s": round(time.time() - started_at, 1),
            "queue_spans": spool.num_spans,
            "spans_written": writer.num_spans_written,
            "store_version": writer.version,
        }

    http_socket = bind_socket(config.http)
    grpc_server: grpc.aio.Server | None = None
    endpoints: dict[str, str] = {}
    try:
        http_host, http_port = http_socket.getsockname()[:2]
        endpoints["http"] = _format(http_host, http_port)
        if config.grpc:
            grpc_server = build_grpc_server(config, service)
            try:
                grpc_port = grpc_server.add_insecure_port(config.grpc)
            except RuntimeError:
                raise ConfigError(f"cannot listen on {config.grpc}") from None
            endpoints["grpc"] = _format(split_address(config.grpc)[0], grpc_port)
            await grpc_server.start()
        server = uvicorn.Server(
            uvicorn.Config(
                HttpReceiver(config, service, health),
                log_level="warning",
                access_log=False,
                lifespan="off",
                timeout_keep_alive=30,
                http="httptools",  # C parser: h11 cost ~10 us per span of a 2.6 MB body

            )
        )
        server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        stop = asyncio.Event()
        running = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            running.add_signal_handler(signum, stop.set)
        serve_task = asyncio.create_task(server.serve(sockets=[http_socket]))
        while not server.started and not serve_task.done():
            await asyncio.sleep(0.01)
        endpoints["data_dir"] = str(config.data_dir.resolve())
        endpoints["pid"] = str(os.getpid())
        (config.data_dir / "collector.json").write_bytes(orjson.dumps(endpoints))
        logger.info(
            "collector listening: http=%s grpc=%s data=%s redaction=%s",
            endpoints.get("http"), endpoints.get("grpc", "off"), endpoints["data_dir"],
            "on" if config.redaction_enabled else "off",
        )
        if on_ready:
            on_ready(endpoints)
        stop_wait = asyncio.create_task(stop.wait())
        await asyncio.wait({serve_task, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
        logger.info("collector stopping: receivers first, then the writer")
        server.should_exit = True
        if grpc_server is not None:
            await grpc_server.stop(grace=2.0)
        await serve_task
    finally:
        if grpc_server is not None:
            await grpc_server.stop(grace=None)
        http_socket.close()
        await asyncio.to_thread(loop_thread.stop)
        executor.close()
        writer.close()
        (config.data_dir / "collector.json").unlink(missing_ok=True)
        logger.info("collector stopped: %d spans written", writer.num_spans_written)


def _format(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
