"""Acknowledged spans survive kill -9 of the collector, and are stored exactly once."""

from __future__ import annotations

import json
from pathlib import Path

import psutil
import pytest
import requests

from tests.collector_process import sql_rows, start_collector, wait_for_count


def _request(trace_index: int, num_spans: int) -> bytes:
    trace_id = f"{trace_index:016x}" + "d" * 16
    start = 1_763_000_000_000_000_000 + trace_index * 1_000_000_000
    spans = [
        {"traceId": trace_id, "spanId": f"{j + 1:016x}", "name": f"step-{j}", "kind": 1,
         "startTimeUnixNano": str(start + j), "endTimeUnixNano": str(start + j + 1000),
         "attributes": [{"key": "input.value", "value": {"stringValue": f"question {trace_index}"}}]}
        for j in range(num_spans)
    ]
    return json.dumps({"resourceSpans": [{"resource": {}, "scopeSpans": [{"spans": spans}]}]}).encode()


@pytest.mark.parametrize("redaction", ["on", "off"])
def test_kill_minus_nine_loses_no_acknowledged_span(tmp_path: Path, redaction: str) -> None:
    data_dir = tmp_path / "store"
    extra = ("--no-redaction",) if redaction == "off" else ()
    # A long commit interval keeps acknowledged requests in the spool when the kill comes.
    slow_commits = {"TRACEWATCH_COMMIT_INTERVAL_S": "5"}
    first = start_collector(data_dir, *extra, env=slow_commits)
    acknowledged = 0
    workers = psutil.Process(first.process.pid).children(recursive=True)
    try:
        with requests.Session() as session:
            for index in range(1, 61):
                response = session.post(
                    f"{first.http_url}/v1/traces", data=_request(index, 5),
                    headers={"content-type": "application/json"}, timeout=30,
                )
                assert response.status_code == 200
                acknowledged += 5
    finally:
        first.kill()  # SIGKILL straight after the last acknowledgement
    assert first.process.returncode == -9
    assert list((data_dir / "spool").glob("*.json")), "nothing was left to replay"
    # ... and its pipeline workers do not outlive it.
    _, alive = psutil.wait_procs(workers, timeout=15)
    assert [p for p in alive if "spawn_main" in " ".join(p.cmdline())] == []

    second = start_collector(data_dir, *extra)
    try:
        count = wait_for_count(data_dir, "SELECT count(*) FROM spans", acknowledged, timeout_s=180)
        assert count == acknowledged
        duplicates = sql_rows(
            data_dir,
            "SELECT trace_id, span_id, count(*) AS n FROM spans GROUP BY ALL HAVING n > 1",
        )
        assert duplicates == []
    finally:
        assert second.stop() == 0
    assert list((data_dir / "spool").iterdir()) == []
