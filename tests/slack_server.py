"""A stand-in for Slack's incoming webhooks: a real HTTP server on 127.0.0.1, ephemeral port.

It records every request (path, headers, JSON body) and answers from a script of responses
(``(status, headers)``; the last one repeats), as slack-sdk's own
``tests/mock_web_api_server`` does, but on a port chosen by the OS.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class RecordedRequest:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class SlackServer:
    responses: list[tuple[int, dict[str, str]]] = field(default_factory=lambda: [(200, {})])
    requests: list[RecordedRequest] = field(default_factory=list)
    url: str = ""

    def answer(self, *responses: tuple[int, dict[str, str]]) -> None:
        """Script the next answers (the last one repeats)."""
        self.responses = list(responses)

    def next_response(self) -> tuple[int, dict[str, str]]:
        return self.responses.pop(0) if len(self.responses) > 1 else self.responses[0]


@contextmanager
def run_slack_server() -> Iterator[SlackServer]:
    state = SlackServer()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server naming)
            length = int(self.headers.get("Content-Length", "0"))
            raw = self.rfile.read(length)
            with lock:
                state.requests.append(RecordedRequest(
                    self.path, dict(self.headers.items()), json.loads(raw or b"{}")))
                status, headers = state.next_response()
            body = b"ok" if status == 200 else b"error"
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/services/T000/B000/secret"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
