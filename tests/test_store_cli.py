"""`tracewatch ingest`, `sql`, `retention` and their errors, through the real command."""

from __future__ import annotations

import csv
import gzip
import io
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.collector_process import run_tracewatch, sql_rows


def _request_dict(trace_id: str, start: datetime, num_spans: int = 3, service: str = "svc") -> dict:
    start_ns = int(start.timestamp() * 1e9)
    spans = []
    for j in range(num_spans):
        span = {
            "traceId": trace_id, "spanId": f"{j + 1:016x}", "name": f"op-{j}", "kind": 1,
            "startTimeUnixNano": str(start_ns + j * 1_000_000),
            "endTimeUnixNano": str(start_ns + (j + 1) * 1_000_000 + 250_000_000),
            "attributes": [{"key": "openinference.span.kind", "value": {"stringValue": "LLM" if j else "CHAIN"}}],
            "status": {"code": 1},
        }
        if j:
            span["parentSpanId"] = "0000000000000001"
        spans.append(span)
    return {"resourceSpans": [{"resource": {"attributes": [
        {"key": "service.name", "value": {"stringValue": service}}]},
        "scopeSpans": [{"scope": {"name": "s"}, "spans": spans}]}]}


def _to_protobuf(request: dict) -> bytes:
    # The protobuf JSON parser wants base64 ids; the OTLP/JSON mapping has hex.
    import base64

    copy = json.loads(json.dumps(request))
    for resource in copy["resourceSpans"]:
        for scope in resource["scopeSpans"]:
            for span in scope["spans"]:
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in span:
                        span[key] = base64.b64encode(bytes.fromhex(span[key])).decode()
    return json_format.Parse(json.dumps(copy), ExportTraceServiceRequest()).SerializeToString()


NOW = datetime.now(timezone.utc).replace(microsecond=0)


@pytest.fixture()
def ingested(tmp_path: Path) -> Path:
    data_dir = tmp_path / "store"
    files = tmp_path / "in"
    files.mkdir()
    lines = [json.dumps(_request_dict(f"{i:032x}", NOW - timedelta(hours=i))) for i in range(1, 5)]
    (files / "a.jsonl").write_text("\n".join(lines) + "\n")
    (files / "b.jsonl.gz").write_bytes(gzip.compress(
        (json.dumps(_request_dict("e" * 32, NOW - timedelta(days=40))) + "\n").encode()))
    (files / "c.pb").write_bytes(_to_protobuf(_request_dict("f" * 32, NOW - timedelta(days=45))))
    result = run_tracewatch("ingest", str(files), "--data-dir", str(data_dir), "--no-redaction")
    assert result.returncode == 0, result.stderr
    assert "ingested 18 spans from 3 file(s): 18 new" in result.stdout
    return data_dir


def test_ingest_jsonl_gzip_and_protobuf(ingested: Path) -> None:
    rows = sql_rows(ingested, "SELECT trace_id, span_count, llm_calls, root_name, status_code FROM traces ORDER BY trace_id")
    assert len(rows) == 6
    assert all(r["span_count"] == 3 and r["llm_calls"] == 2 and r["root_name"] == "op-0" for r in rows)
    assert all(r["status_code"] == "OK" for r in rows)


def test_ingest_again_stores_nothing_twice(ingested: Path, tmp_path: Path) -> None:
    result = run_tracewatch("ingest", str(tmp_path / "in"), "--data-dir", str(ingested), "--no-redaction")
    assert result.returncode == 0
    assert "0 new, 18 already stored" in result.stdout
    assert sql_rows(ingested, "SELECT count(*) AS n FROM spans") == [{"n": 18}]


def test_sql_formats(ingested: Path) -> None:
    query = "SELECT trace_id, duration_ms FROM traces WHERE trace_id = '" + "e" * 32 + "'"
    as_json = json.loads(run_tracewatch("sql", query, "--format", "json", "--data-dir", str(ingested)).stdout)
    assert as_json == [{"trace_id": "e" * 32, "duration_ms": 251.0}]
    as_csv = list(csv.reader(io.StringIO(run_tracewatch("sql", query, "--format", "csv", "--data-dir", str(ingested)).stdout)))
    assert as_csv == [["trace_id", "duration_ms"], ["e" * 32, "251.0"]]
    table = run_tracewatch("sql", query, "--data-dir", str(ingested)).stdout
    assert "e" * 32 in table and "(1 row)" in table


def test_sql_types_follow_the_contract(ingested: Path) -> None:
    rows = sql_rows(ingested, "SELECT column_name, column_type AS data_type FROM (DESCRIBE SELECT * FROM spans)")
    types = {r["column_name"]: r["data_type"] for r in rows}
    assert types["start_time"] == "TIMESTAMP"
    assert types["duration_ms"] == "DOUBLE"
    assert types["prompt_tokens"] == "BIGINT"
    assert types["is_fallback"] == "BOOLEAN"
    assert types["redacted_count"] == "INTEGER"
    expected = ("trace_id span_id parent_span_id name span_kind service_name start_time end_time "
                "duration_ms status_code status_message model_name provider prompt_version "
                "prompt_template prompt_tokens completion_tokens cached_prompt_tokens total_tokens "
                "cost_usd is_fallback session_id user_id input_text output_text attributes "
                "redacted_count").split()
    assert list(types) == expected


def test_retention_deletes_old_data_for_real(ingested: Path) -> None:
    old_files_before = list(ingested.glob("spans/day=*/*.parquet"))
    result = run_tracewatch("retention", "--older-than", "30d", "--data-dir", str(ingested))
    assert result.returncode == 0, result.stderr
    assert "deleted 6 rows" in result.stdout
    assert sql_rows(ingested, "SELECT count(*) AS n FROM traces") == [{"n": 4}]
    cutoff_day = (NOW - timedelta(days=30)).date()
    remaining_old = [
        p for p in ingested.glob("spans/day=*/*.parquet")
        if datetime.fromisoformat(p.parent.name.split("=")[1]).date() < cutoff_day
    ]
    assert old_files_before and remaining_old == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["sql", "SELECT nope FROM spans"], "SQL:"),
        (["retention", "--older-than", "soon"], "invalid duration"),
        (["ingest", "/nonexistent/file.jsonl"], "no such file"),
    ],
)
def test_bad_input_is_one_line_without_traceback(tmp_path: Path, args: list[str], message: str) -> None:
    result = run_tracewatch(*args, "--data-dir", str(tmp_path / "store"))
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0]
    assert "Traceback" not in result.stderr


def test_bad_lines_are_reported_and_the_rest_ingested(tmp_path: Path) -> None:
    path = tmp_path / "mixed.jsonl"
    path.write_text(json.dumps(_request_dict("9" * 32, NOW)) + "\n{broken\n")
    result = run_tracewatch("ingest", str(path), "--data-dir", str(tmp_path / "store"), "--no-redaction")
    assert result.returncode == 1
    assert "mixed.jsonl:2" in result.stderr and "Traceback" not in result.stderr
    assert sql_rows(tmp_path / "store", "SELECT count(*) AS n FROM spans") == [{"n": 3}]
