"""The LLM-as-judge evaluator against a real OpenAI-compatible HTTP server on 127.0.0.1.

The server answers /v1/chat/completions deterministically: ``unfaithful`` when the answer
section of the prompt contains the marker word, ``faithful`` otherwise, with fixed usage
numbers; it records every request (path, headers, body).
"""

from __future__ import annotations

import argparse
import json
import logging
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("phoenix.evals")
pytest.importorskip("openai")

from analytics.errors import AnalyticsError  # noqa: E402
from analytics.groundedness import score_store  # noqa: E402
from analytics.llm_judge import JudgeConfig, judge_store, sample_key  # noqa: E402
from analytics.views import open_store  # noqa: E402
from collector.records import RetrievedDocument, Span, SpanBatch, SpanKind  # noqa: E402
from collector.writer import StoreWriter  # noqa: E402
from tracewatch.judge_command import add_judge_parser  # noqa: E402

MARKER = "definitely"
API_KEY = "sk-test-S3CRET-judge-key-0123456789"
PROMPT_TOKENS, COMPLETION_TOKENS = 1234, 56
DOCS = ["Annual plans can be refunded within 14 days of purchase.",
        "SAML single sign-on is available on the Enterprise plan."]


class JudgeServer:
    def __init__(self, with_usage: bool = True) -> None:
        self.requests: list[dict[str, Any]] = []
        self.with_usage = with_usage
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()},
                                        "body": body})
                if self.path != "/v1/chat/completions":
                    self.send_error(404)
                    return
                payload = json.dumps(server.reply(body)).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def reply(self, body: dict[str, Any]) -> dict[str, Any]:
        prompt = "\n".join(str(m.get("content")) for m in body["messages"])
        answer = prompt.split("<response>")[-1].split("</response>")[0]
        label = "unfaithful" if MARKER in answer else "faithful"
        verdict = json.dumps({"explanation": f"judged {label}", "label": label})
        message: dict[str, Any] = {"role": "assistant", "content": verdict}
        if "response_format" not in body and body.get("tools"):
            message = {"role": "assistant", "content": None, "tool_calls": [{
                "id": "call_1", "type": "function",
                "function": {"name": "extract_structured_data", "arguments": verdict}}]}
        reply: dict[str, Any] = {
            "id": "chatcmpl-1", "object": "chat.completion", "created": 0,
            "model": body["model"],
            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        }
        if self.with_usage:
            reply["usage"] = {"prompt_tokens": PROMPT_TOKENS,
                              "completion_tokens": COMPLETION_TOKENS,
                              "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS}
        return reply


@pytest.fixture()
def judge_server() -> Iterator[JudgeServer]:
    server = JudgeServer()
    server.thread.start()
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()


def _ns(moment: datetime) -> int:
    return int((moment - datetime(1970, 1, 1)).total_seconds() * 1e6) * 1000


def _trace(trace_id: str, start: datetime, answer: str | None, docs: list[str]) -> list[Span]:
    root = Span(
        trace_id=trace_id, span_id="1" * 16, parent_span_id=None, name="rag",
        span_kind=SpanKind.CHAIN, service_name="copilot", start_time_unix_nano=_ns(start),
        end_time_unix_nano=_ns(start + timedelta(seconds=2)), status_code="OK",
        input_text="Can I get a refund on my annual plan?", output_text=answer,
    )
    retriever = Span(
        trace_id=trace_id, span_id="2" * 16, parent_span_id="1" * 16, name="retrieve",
        span_kind=SpanKind.RETRIEVER, service_name="copilot",
        start_time_unix_nano=_ns(start), end_time_unix_nano=_ns(start + timedelta(seconds=1)),
        status_code="OK",
        retrievals=tuple(RetrievedDocument(i, f"kb-{i + 1}", 0.5, d) for i, d in enumerate(docs)),
    )
    return [root, retriever]


def _write(data_dir: Path, spans: list[Span]) -> None:
    writer = StoreWriter(data_dir)
    try:
        writer.write(SpanBatch(tuple(spans)), [])
    finally:
        writer.close()


START = datetime(2025, 3, 3, 9, 0)


def _rag_store(data_dir: Path) -> None:
    _write(data_dir, [
        # builtin says grounded (1.0); the judge sees the marker and says unfaithful (0.0)
        *_trace("a" * 32, START,
                f"Annual plans can {MARKER} be refunded within 14 days of purchase.", DOCS),
        # builtin says ungrounded (wrong number, 0.0); the judge says faithful (1.0)
        *_trace("b" * 32, START, "Annual plans can be refunded within 60 days of purchase.", DOCS),
        *_trace("c" * 32, START + timedelta(days=1),
                "SAML single sign-on is available on the Enterprise plan.", DOCS),
        *_trace("d" * 32, START, None, DOCS),  # no answer: not judged
        *_trace("e" * 32, START, "Refunds within 14 days.", []),  # no context: not judged
    ])


def _config(server: JudgeServer, **extra: Any) -> JudgeConfig:
    values: dict[str, Any] = {"base_url": server.base_url, "model": "judge-1",
                              "api_key": API_KEY, "input_price_per_1m": 2.5,
                              "output_price_per_1m": 10.0}
    values.update(extra)
    return JudgeConfig(**values)


def test_judge_store_writes_llm_judge_verdicts_with_precedence_and_cost(
        tmp_path: Path, judge_server: JudgeServer, caplog: pytest.LogCaptureFixture) -> None:
    data_dir = tmp_path / "store"
    _rag_store(data_dir)
    score_store(data_dir)  # builtin scores exist first
    caplog.set_level(logging.DEBUG)

    report = judge_store(data_dir, _config(judge_server))

    assert (report.num_candidates, report.num_sampled, report.num_judged, report.num_failed) \
        == (3, 3, 3, 0)
    # cost from the server's usage numbers, not estimated
    assert report.prompt_tokens == 3 * PROMPT_TOKENS
    assert report.completion_tokens == 3 * COMPLETION_TOKENS
    assert not report.tokens_estimated
    assert report.cost_usd == pytest.approx(
        3 * (PROMPT_TOKENS * 2.5 + COMPLETION_TOKENS * 10.0) / 1e6)

    # the key went only as the bearer token, and never into logs or reprs
    assert len(judge_server.requests) == 3
    for request in judge_server.requests:
        assert request["path"] == "/v1/chat/completions"
        assert request["headers"]["authorization"] == f"Bearer {API_KEY}"
        assert API_KEY not in json.dumps(request["body"])
        assert request["body"]["model"] == "judge-1"
    assert API_KEY not in caplog.text
    assert API_KEY not in repr(_config(judge_server)) + str(_config(judge_server))
    prompts = " ".join(json.dumps(r["body"]["messages"]) for r in judge_server.requests)
    assert "Enterprise plan" in prompts and "Can I get a refund" in prompts  # context + input

    con = open_store(data_dir)
    try:
        judged = con.execute(
            "SELECT trace_id, span_id, name, score, label, explanation FROM evaluations "
            "WHERE source = 'llm_judge' ORDER BY trace_id").fetchall()
        grounded = dict(con.execute("SELECT trace_id, groundedness FROM traces").fetchall())
    finally:
        con.close()
    assert judged == [
        ("a" * 32, "1" * 16, "groundedness", 0.0, "unfaithful", "judged unfaithful"),
        ("b" * 32, "1" * 16, "groundedness", 1.0, "faithful", "judged faithful"),
        ("c" * 32, "1" * 16, "groundedness", 1.0, "faithful", "judged faithful"),
    ]
    # llm_judge outranks builtin (which said 1.0 for a and 0.0 for b)
    assert grounded == {"a" * 32: 0.0, "b" * 32: 1.0, "c" * 32: 1.0, "d" * 32: None,
                        "e" * 32: None}

    # already judged traces are skipped: no second call
    again = judge_store(data_dir, _config(judge_server))
    assert (again.num_candidates, again.num_judged, again.cost_usd) == (0, 0, 0.0)
    assert len(judge_server.requests) == 3


def test_since_until_limit_the_candidates(tmp_path: Path, judge_server: JudgeServer) -> None:
    data_dir = tmp_path / "store"
    _rag_store(data_dir)
    report = judge_store(data_dir, _config(judge_server), since=START + timedelta(hours=12),
                         until=START + timedelta(days=2))
    assert (report.num_candidates, report.num_judged) == (1, 1)  # only trace c


def test_sampling_respects_sample_rate_and_max_traces(tmp_path: Path,
                                                      judge_server: JudgeServer) -> None:
    data_dir = tmp_path / "store"
    ids = [f"{i + 1:032x}" for i in range(60)]
    _write(data_dir, [span for tid in ids for span in _trace(
        tid, START, "Annual plans can be refunded within 14 days of purchase.", DOCS)])

    none = judge_store(data_dir, _config(judge_server, sample_rate=0.0))
    assert (none.num_candidates, none.num_sampled, none.num_judged) == (60, 0, 0)
    assert judge_server.requests == []

    expected = sorted((sample_key(tid, 7), tid) for tid in ids if sample_key(tid, 7) < 0.25)
    assert 5 <= len(expected) <= 30
    capped = judge_store(data_dir, _config(judge_server, sample_rate=0.25, seed=7, max_traces=3))
    assert (capped.num_sampled, capped.num_judged) == (3, 3)
    assert len(judge_server.requests) == 3

    rest = judge_store(data_dir, _config(judge_server, sample_rate=0.25, seed=7))
    assert rest.num_judged == len(expected) - 3
    con = open_store(data_dir)
    try:
        judged = {row[0] for row in con.execute(
            "SELECT trace_id FROM evaluations WHERE source = 'llm_judge'").fetchall()}
    finally:
        con.close()
    assert judged == {tid for _, tid in expected}  # consistent sampling: the same 25%
    assert len(judge_server.requests) == len(expected)


def test_tokens_are_estimated_without_usage(tmp_path: Path) -> None:
    server = JudgeServer(with_usage=False)
    server.thread.start()
    try:
        data_dir = tmp_path / "store"
        _rag_store(data_dir)
        report = judge_store(data_dir, _config(server, max_traces=1))
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()
    assert report.num_judged == 1 and report.tokens_estimated
    assert report.prompt_tokens > 100 and report.completion_tokens > 0
    assert report.cost_usd == pytest.approx(
        (report.prompt_tokens * 2.5 + report.completion_tokens * 10.0) / 1e6)


def test_unreachable_endpoint_is_an_error(tmp_path: Path) -> None:
    data_dir = tmp_path / "store"
    _rag_store(data_dir)
    server = JudgeServer()  # bound but never serving, then closed: connection refused
    url = server.base_url
    server.httpd.server_close()
    with pytest.raises(AnalyticsError, match="LLM judge"):
        judge_store(data_dir, JudgeConfig(base_url=url, model="m", api_key=API_KEY,
                                          timeout_s=5))


def test_cli_reads_key_from_env(tmp_path: Path, judge_server: JudgeServer,
                                monkeypatch: pytest.MonkeyPatch,
                                capsys: pytest.CaptureFixture[str]) -> None:
    data_dir = tmp_path / "store"
    _rag_store(data_dir)
    monkeypatch.setenv("TRACEWATCH_JUDGE_API_KEY", API_KEY)
    parser = argparse.ArgumentParser(prog="tracewatch")
    add_judge_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args([
        "evals", "judge", "--base-url", judge_server.base_url, "--model", "judge-1",
        "--sample", "1", "--max-traces", "2", "--input-price", "1", "--data-dir", str(data_dir),
    ])
    assert args.handler(args) == 0
    out = capsys.readouterr()
    assert "judged 2 of 2 sampled traces" in out.out
    assert API_KEY not in out.out + out.err
    assert all(r["headers"]["authorization"] == f"Bearer {API_KEY}"
               for r in judge_server.requests)
    assert len(judge_server.requests) == 2
