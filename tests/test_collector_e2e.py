"""End to end: official OTLP exporters -> real collector on loopback -> `tracewatch sql`."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
import requests
from opentelemetry.sdk.trace.export import SpanExportResult

from analytics.views import open_store
from tests.collector_process import CollectorProcess, sql_rows, start_collector, wait_for_count
from tests.otlp_senders import (
    PII_CARD,
    PII_EMAIL,
    PII_PHONE,
    PII_SSN,
    PII_VALUES,
    SECRET_KEY,
    export,
    genai_chat_spans,
    make_exporter,
    openinference_rag_spans,
    openllmetry_agent_spans,
)


@pytest.fixture(scope="module")
def collector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CollectorProcess]:
    process = start_collector(tmp_path_factory.mktemp("store"))
    yield process
    process.stop()


@pytest.mark.parametrize("transport", ["http", "grpc"])
def test_three_conventions_arrive_with_their_columns(collector: CollectorProcess, transport: str) -> None:
    question = f"My card {PII_CARD} was charged twice, email me at {PII_EMAIL} ({transport})"
    endpoint = collector.http if transport == "http" else collector.grpc
    exporter = make_exporter(transport, endpoint)
    rag = openinference_rag_spans(question)
    chat = genai_chat_spans(f"Extract the invoice of SSN {PII_SSN}; key {SECRET_KEY}")
    agent = openllmetry_agent_spans(f"Call me on {PII_PHONE}")
    for spans in (rag, chat, agent):
        assert export(exporter, spans) is SpanExportResult.SUCCESS
    exporter.shutdown()
    trace_ids = {format(s.context.trace_id, "032x") for s in (*rag, *chat, *agent)}
    in_list = ", ".join(f"'{t}'" for t in trace_ids)
    assert wait_for_count(collector.data_dir, f"SELECT count(*) FROM spans WHERE trace_id IN ({in_list})", 7) == 7

    rows = {r["name"]: r for r in sql_rows(collector.data_dir, f"SELECT * FROM spans WHERE trace_id IN ({in_list})")}
    llm = rows["llm"]
    assert llm["span_kind"] == "LLM"
    assert llm["service_name"] == "support-copilot"
    assert (llm["model_name"], llm["provider"], llm["prompt_version"]) == ("gpt-4o-mini", "openai", "v3")
    assert (llm["prompt_tokens"], llm["completion_tokens"], llm["cached_prompt_tokens"], llm["total_tokens"]) == (1200, 80, 1000, 1280)
    # Priced by genai-prices: 200 input + 1000 cached input + 80 output tokens of gpt-4o-mini.
    assert llm["cost_usd"] == pytest.approx(200 * 0.15e-6 + 1000 * 0.075e-6 + 80 * 0.6e-6)
    assert rows["rag-query"]["span_kind"] == "CHAIN"
    assert rows["rag-query"]["parent_span_id"] is None
    assert rows["rag-query"]["session_id"] == "sess-42" and rows["rag-query"]["user_id"] == "user-7"
    assert rows["retrieve"]["span_kind"] == "RETRIEVER"
    assert json.loads(llm["attributes"])["app.feature"] == "refunds"

    chat_row = rows["chat gpt-4o"]
    assert (chat_row["span_kind"], chat_row["provider"], chat_row["model_name"]) == ("LLM", "anthropic", "claude-3-5-haiku")
    assert (chat_row["prompt_tokens"], chat_row["completion_tokens"]) == (300, 40)
    assert chat_row["service_name"] == "doc-extraction"

    assert rows["agent.workflow"]["span_kind"] == "CHAIN"
    assert rows["openai.chat"]["span_kind"] == "LLM"
    assert rows["openai.chat"]["total_tokens"] == 150
    assert rows["lookup.tool"]["span_kind"] == "TOOL"
    assert rows["lookup.tool"]["status_code"] == "ERROR"
    assert "TimeoutError" in rows["lookup.tool"]["status_message"]

    docs = sql_rows(collector.data_dir, f"SELECT * FROM retrievals WHERE trace_id IN ({in_list})")
    assert [(d["document_id"], d["score"]) for d in docs] == [("kb-1", 0.91)]
    assert "<EMAIL_ADDRESS>" in docs[0]["content"]

    # Redaction: placeholders in place of the personal data, nothing left in clear.
    assert "<CREDIT_CARD>" in rows["rag-query"]["input_text"]
    assert "<EMAIL_ADDRESS>" in rows["rag-query"]["input_text"]
    assert rows["rag-query"]["redacted_count"] >= 2
    everything = json.dumps(sql_rows(collector.data_dir, f"SELECT * FROM spans WHERE trace_id IN ({in_list})"))
    for value in PII_VALUES:
        assert value not in everything
    traces = sql_rows(collector.data_dir, f"SELECT * FROM traces WHERE trace_id IN ({in_list})")
    assert len(traces) == 3


def test_no_personal_data_in_any_file_or_log(collector: CollectorProcess) -> None:
    exporter = make_exporter("http", collector.http)
    spans = openinference_rag_spans(f"I am at {PII_EMAIL}, card {PII_CARD}, SSN {PII_SSN}, key {SECRET_KEY}")
    assert export(exporter, spans) is SpanExportResult.SUCCESS
    trace_id = format(spans[0].context.trace_id, "032x")
    assert wait_for_count(collector.data_dir, f"SELECT count(*) FROM spans WHERE trace_id = '{trace_id}'", 3) == 3
    needles = [value.encode() for value in PII_VALUES]
    for path in collector.data_dir.rglob("*"):
        if not path.is_file():
            continue
        if path.suffix == ".parquet":
            # Parquet pages are compressed: read every string value back instead.
            text = json.dumps(duckdb.sql(f"SELECT * FROM read_parquet('{path}')").fetchall(), default=str).encode()
        else:
            text = path.read_bytes()
        for needle in needles:
            assert needle not in text, f"personal data found in {path}"
    for needle in PII_VALUES:
        assert needle not in collector.log_text


def _post(collector: CollectorProcess, body: bytes, content_type: str = "application/x-protobuf", **headers: str) -> requests.Response:
    return requests.post(f"{collector.http_url}/v1/traces", data=body,
                         headers={"content-type": content_type, **headers}, timeout=30)


def _otlp_json(trace_id: str, span_ids: list[str], name: str = "op", start_ns: int = 1_763_000_000_000_000_000) -> bytes:
    spans = [
        {"traceId": trace_id, "spanId": span_id, "name": name, "kind": 1,
         "startTimeUnixNano": str(start_ns), "endTimeUnixNano": str(start_ns + 5_000_000),
         "attributes": [{"key": "openinference.span.kind", "value": {"stringValue": "CHAIN"}},
                        {"key": "llm.token_count.prompt", "value": {"intValue": "12"}}],
         "status": {"code": 1}}
        for span_id in span_ids
    ]
    return json.dumps({"resourceSpans": [{"resource": {"attributes": [
        {"key": "service.name", "value": {"stringValue": "json-client"}}]},
        "scopeSpans": [{"scope": {"name": "t"}, "spans": spans}]}]}).encode()


@pytest.mark.parametrize(
    ("body", "content_type", "headers", "status"),
    [
        (b"\x0a\xff\xff\xff\xff\x0f garbage", "application/x-protobuf", {}, 400),
        (b"\x0a\x10\x0a\x0e\x12\x0c\x0a", "application/x-protobuf", {}, 400),  # truncated
        (b"{not json", "application/json", {}, 400),
        (b'{"resourceSpans": "nope"}', "application/json", {}, 400),
        (b'{"resourceSpans": [{"scopeSpans": [{"spans": [1, 2]}]}]}', "application/json", {}, 400),
        (b'{"resourceSpans": [], "x": "\xff\xfe"}', "application/json", {}, 400),  # invalid UTF-8
        (b'{"x": ' + b"[" * 5000 + b"]" * 5000 + b"}", "application/json", {}, 400),
        (b"<xml/>", "text/xml", {}, 415),
        (b"\x1f\x8b\x08\x00garbage", "application/x-protobuf", {"content-encoding": "gzip"}, 400),
        (b"abc", "application/x-protobuf", {"content-encoding": "br"}, 415),
    ],
)
def test_malformed_requests_get_the_otlp_status(
    collector: CollectorProcess, body: bytes, content_type: str, headers: dict[str, str], status: int
) -> None:
    from google.rpc import status_pb2

    response = _post(collector, body, content_type, **headers)
    assert response.status_code == status
    if status == 400 and content_type == "application/x-protobuf":
        parsed = status_pb2.Status.FromString(response.content)
        assert parsed.message
    # ... and the collector keeps serving.
    assert requests.get(f"{collector.http_url}/healthz", timeout=10).json()["status"] == "ok"


def test_oversized_and_gzip_bomb_are_refused(collector: CollectorProcess) -> None:
    too_big = b"\x00" * (16 * 1024 * 1024 + 10)
    assert _post(collector, too_big).status_code == 413
    bomb = gzip.compress(b"\x00" * (80 * 1024 * 1024))  # 80 MB inflates past the 64 MB limit
    assert len(bomb) < 1024 * 1024
    assert _post(collector, bomb, **{"content-encoding": "gzip"}).status_code == 413
    assert _post(collector, _otlp_json("ab" * 16, ["cd" * 8]), "application/json").status_code == 200


def test_json_bad_span_ids_get_partial_success(collector: CollectorProcess) -> None:
    trace_id = "0af7651916cd43dd8448eb211c80319c"
    body = json.loads(_otlp_json(trace_id, ["b7ad6b7169203331", "00000000000000zz", "0000000000000000"]))
    response = _post(collector, json.dumps(body).encode(), "application/json")
    assert response.status_code == 200
    payload = response.json()
    assert payload["partialSuccess"]["rejectedSpans"] == "2"
    assert "span_id" in payload["partialSuccess"]["errorMessage"]
    assert wait_for_count(collector.data_dir, f"SELECT count(*) FROM spans WHERE trace_id = '{trace_id}'", 1) == 1
    row = sql_rows(collector.data_dir, f"SELECT * FROM spans WHERE trace_id = '{trace_id}'")[0]
    assert (row["service_name"], row["prompt_tokens"], row["duration_ms"]) == ("json-client", 12, 5.0)


def test_gzip_json_and_duplicates_are_stored_once(collector: CollectorProcess) -> None:
    trace_id = "5b8efff798038103d269b633813fc60c"
    body = _otlp_json(trace_id, ["eee19b7ec3c1b174", "eee19b7ec3c1b175"])
    for _ in range(3):
        response = _post(collector, gzip.compress(body), "application/json", **{"content-encoding": "gzip"})
        assert response.status_code == 200
    assert wait_for_count(collector.data_dir, f"SELECT count(*) FROM spans WHERE trace_id = '{trace_id}'", 2) == 2
    # Wait for the later copies to be processed, then check there are still two.
    metrics_deadline = 0
    while metrics_deadline < 40:
        health = requests.get(f"{collector.http_url}/healthz", timeout=10).json()
        if health["queue_spans"] == 0:
            break
        metrics_deadline += 1
        import time

        time.sleep(0.25)
    rows = sql_rows(collector.data_dir, f"SELECT span_id FROM spans WHERE trace_id = '{trace_id}'")
    assert sorted(r["span_id"] for r in rows) == ["eee19b7ec3c1b174", "eee19b7ec3c1b175"]


def test_metrics_endpoint_counts(collector: CollectorProcess) -> None:
    text = requests.get(f"{collector.http_url}/metrics", timeout=10).text
    for name in ("tracewatch_spans_received_total", "tracewatch_spans_accepted_total",
                 "tracewatch_spans_rejected_total", "tracewatch_redacted_entities_total",
                 "tracewatch_queue_spans", "tracewatch_write_latency_seconds_bucket"):
        assert name in text
    accepted = [line for line in text.splitlines() if line.startswith("tracewatch_spans_accepted_total")]
    assert float(accepted[0].split()[-1]) > 0


def test_grpc_malformed_payload_is_invalid_argument(collector: CollectorProcess) -> None:
    import grpc

    channel = grpc.insecure_channel(collector.grpc)
    export_raw = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export")
    with pytest.raises(grpc.RpcError) as caught:
        export_raw(b"\x0a\xff\xff\xff\xff\x0f garbage", timeout=10)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    channel.close()
    assert requests.get(f"{collector.http_url}/healthz", timeout=10).status_code == 200


def test_reader_never_sees_a_partial_batch(collector: CollectorProcess) -> None:
    """Each request holds 10 spans of one trace; a reader must see all 10 or none."""
    import threading

    trace_ids = [f"{i:08x}" + "a1" * 12 for i in range(1, 31)]
    seen_counts: list[list[int]] = []
    stop = threading.Event()

    def read() -> None:
        in_list = ", ".join(f"'{t}'" for t in trace_ids)
        while not stop.is_set():
            con = open_store(collector.data_dir)
            counts = [c for (c,) in con.execute(
                f"SELECT count(*) FROM spans WHERE trace_id IN ({in_list}) GROUP BY trace_id").fetchall()]
            seen_counts.append(counts)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for trace_id in trace_ids:
            body = _otlp_json(trace_id, [f"{j:016x}" for j in range(1, 11)])
            assert _post(collector, body, "application/json").status_code == 200
        in_list = ", ".join(f"'{t}'" for t in trace_ids)
        assert wait_for_count(collector.data_dir, f"SELECT count(*) FROM spans WHERE trace_id IN ({in_list})", 300) == 300
    finally:
        stop.set()
        reader.join()
    assert len(seen_counts) > 2
    assert all(count == 10 for counts in seen_counts for count in counts)


def test_auth_token_required_and_never_logged(tmp_path: Path) -> None:
    import grpc

    token = "tw-test-token-8c1f2e"
    process = start_collector(tmp_path / "store", "--no-redaction", env={"TRACEWATCH_AUTH_TOKEN": token})
    try:
        body = _otlp_json("1" * 32, ["2" * 16])
        assert _post(process, body, "application/json").status_code == 401
        assert _post(process, body, "application/json", authorization="Bearer wrong").status_code == 401
        assert _post(process, body, "application/json", authorization=f"Bearer {token}").status_code == 200
        spans = genai_chat_spans("hello")
        assert export(make_exporter("grpc", process.grpc), spans) is SpanExportResult.FAILURE
        assert export(make_exporter("grpc", process.grpc, token), spans) is SpanExportResult.SUCCESS
        assert export(make_exporter("http", process.http, token), spans) is SpanExportResult.SUCCESS
        channel = grpc.insecure_channel(process.grpc)
        with pytest.raises(grpc.RpcError) as caught:
            channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export")(b"", timeout=10)
        assert caught.value.code() is grpc.StatusCode.UNAUTHENTICATED
        channel.close()
    finally:
        process.stop()
    assert token not in process.log_text


def test_collector_compacts_in_a_worker_and_keeps_every_span(tmp_path: Path) -> None:
    """With compaction due after 4 files, requests sent one by one (a file each) end up
    in fewer files through a compaction commit, and every span is there exactly once."""
    import time

    from deltalake import DeltaTable

    process = start_collector(tmp_path / "store", "--no-redaction",
                              env={"TRACEWATCH_COMPACT_MIN_FILES": "4"})
    try:
        trace_ids = [f"{i + 1:032x}" for i in range(10)]
        for trace_id in trace_ids:
            span_ids = [f"{trace_id[-8:]}{k:08x}" for k in range(1, 4)]
            assert _post(process, _otlp_json(trace_id, span_ids), "application/json").status_code == 200
            time.sleep(1.2)  # one commit, one file, per request
        table_dir = str(tmp_path / "store" / "spans")
        deadline = time.monotonic() + 60
        compactions: list[object] = []
        while time.monotonic() < deadline and not compactions:
            compactions = [c for c in DeltaTable(table_dir).history()
                           if c.get("tracewatch.operation") == "tracewatch-compact"]
            time.sleep(0.5)
        assert compactions, "no compaction commit within 60 s"
        assert wait_for_count(process.data_dir, "SELECT count(*) FROM spans", 30) == 30
        rows = sql_rows(process.data_dir, "SELECT count(*) AS n, count(DISTINCT trace_id || span_id) AS d FROM spans")
        assert (rows[0]["n"], rows[0]["d"]) == (30, 30)
        assert len(DeltaTable(table_dir).file_uris()) < 10
        assert "compaction of" not in process.log_text  # no failure logged
    finally:
        process.stop()


def test_a_stalled_body_gets_503_and_frees_its_request_slot(tmp_path: Path) -> None:
    """With one request slot, a client that stops sending its body mid-way gets 503 with
    Retry-After once the body timeout passes, and the next export goes through."""
    import socket
    import time

    process = start_collector(tmp_path / "store", "--no-redaction", env={
        "TRACEWATCH_MAX_CONCURRENT_REQUESTS": "1", "TRACEWATCH_BODY_TIMEOUT_S": "1.5"})
    try:
        host, port = process.http.rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=30) as stalled:
            stalled.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n"
                            b"Content-Length: 1000\r\n\r\n" + b"\x0a" * 10)
            started = time.monotonic()
            reply = stalled.recv(65536)
            waited = time.monotonic() - started
        assert reply.startswith(b"HTTP/1.1 503"), reply[:80]
        assert b"retry-after: 2" in reply.lower()
        assert 1.0 < waited < 20
        body = _otlp_json("3" * 32, ["4" * 16])
        assert _post(process, body, "application/json").status_code == 200
        assert wait_for_count(process.data_dir, "SELECT count(*) FROM spans", 1) == 1
    finally:
        process.stop()
