"""Start the real ``tracewatch collector`` as a subprocess on loopback, for tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TRACEWATCH = [sys.executable, "-m", "tracewatch.cli"]


def tracewatch_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRACEWATCH_")}
    env["TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS"] = ""
    env["HF_HUB_OFFLINE"] = "1"
    env.update(extra or {})
    return env


@dataclass
class CollectorProcess:
    data_dir: Path
    process: subprocess.Popen[str]
    http: str = ""
    grpc: str = ""
    log_lines: list[str] = field(default_factory=list)

    @property
    def http_url(self) -> str:
        return f"http://{self.http}"

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.process.returncode

    @property
    def log_text(self) -> str:
        return "\n".join(self.log_lines)


def start_collector(
    data_dir: Path,
    *extra_args: str,
    env: dict[str, str] | None = None,
    timeout_s: float = 120.0,
) -> CollectorProcess:
    """Start the collector on free loopback ports and wait until it is ready."""
    command = [
        *TRACEWATCH, "collector", "--data-dir", str(data_dir),
        "--http", "127.0.0.1:0", "--grpc", "127.0.0.1:0", *extra_args,
    ]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=tracewatch_env(env), stdin=subprocess.DEVNULL,
    )
    collector = CollectorProcess(data_dir, process)
    ready = threading.Event()

    def pump(stream: Any) -> None:
        for line in stream:
            collector.log_lines.append(line.rstrip("\n"))
            if line.startswith("tracewatch collector ready"):
                ready.set()

    threading.Thread(target=pump, args=(process.stdout,), daemon=True).start()
    threading.Thread(target=pump, args=(process.stderr,), daemon=True).start()
    deadline = time.monotonic() + timeout_s
    while not ready.is_set():
        if process.poll() is not None or time.monotonic() > deadline:
            collector.kill()
            raise RuntimeError("collector did not start:\n" + collector.log_text[-4000:])
        ready.wait(0.1)
    info = json.loads((data_dir / "collector.json").read_text())
    collector.http = info["http"]
    collector.grpc = info.get("grpc", "")
    return collector


def run_tracewatch(*args: str, env: dict[str, str] | None = None, timeout_s: float = 300
                   ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*TRACEWATCH, *args], capture_output=True, text=True, env=tracewatch_env(env),
        timeout=timeout_s, stdin=subprocess.DEVNULL,
    )


def sql_rows(data_dir: Path, query: str) -> list[dict[str, Any]]:
    """Rows of a query, read back through ``tracewatch sql --format json``."""
    result = run_tracewatch("sql", query, "--format", "json", "--data-dir", str(data_dir))
    if result.returncode != 0:
        raise AssertionError(f"tracewatch sql failed: {result.stderr}")
    rows: list[dict[str, Any]] = json.loads(result.stdout)
    return rows


def wait_for_count(data_dir: Path, query: str, expected: int, timeout_s: float = 60) -> int:
    """Poll ``SELECT count(*) ...`` until it reaches ``expected``; returns the last count."""
    from analytics.views import open_store

    deadline = time.monotonic() + timeout_s
    count = -1
    while time.monotonic() < deadline:
        row = open_store(data_dir).execute(query).fetchone()
        count = int(row[0]) if row else 0
        if count >= expected:
            return count
        time.sleep(0.25)
    return count
