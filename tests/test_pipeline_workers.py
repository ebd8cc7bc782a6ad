"""Pipeline worker processes (collector.workers) as the collector starts them."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import psutil
import pytest
import pyarrow.parquet as pq
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

from collector.compaction import CompactionInput, CompactionPlan
from collector.config import CollectorConfig, RedactionConfig
from collector.decode import PayloadFormat
from collector.schema import SPANS_TABLE, table_path
from collector.workers import PipelineExecutor
from tests.otlp_senders import genai_chat_spans, openinference_rag_spans, openllmetry_agent_spans


def _request(question: str) -> tuple[bytes, int]:
    spans = (openinference_rag_spans(question) + genai_chat_spans(question)
             + openllmetry_agent_spans(question))
    return encode_spans(spans).SerializeToString(), len(spans)


def _worker_libraries() -> str:
    """The memory maps of this process's pipeline workers (not the resource tracker)."""
    workers = [child for child in psutil.Process().children(recursive=True)
               if "spawn_main" in " ".join(child.cmdline())]
    assert workers, "no pipeline worker process is running"
    return "".join(Path(f"/proc/{worker.pid}/maps").read_text() for worker in workers)


def test_worker_without_redaction_stages_and_compacts_without_numpy_or_pydantic(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """numpy and pydantic cost a worker ~17 MB and it needs neither when it does not redact."""
    # A spawned worker re-runs the parent's __main__ script; after Streamlit's AppTest in this
    # process that is the dashboard script.  The collector's own is collector.serve.
    monkeypatch.setitem(sys.modules, "__main__", types.ModuleType("__main__"))
    config = CollectorConfig(data_dir=tmp_path, redaction=RedactionConfig(enabled=False)).run_config()
    executor = PipelineExecutor(config, num_workers=1)
    try:
        requests = [_request(f"question {i}") for i in range(3)]
        staged = [executor.submit_body(PayloadFormat.PROTOBUF, body).result(timeout=120)
                  for body, _ in requests]
        files = [file for payload in staged for file in payload.files]
        assert [payload.num_spans for payload in staged] == [count for _, count in requests]
        table_dir = table_path(tmp_path, SPANS_TABLE)
        plan = CompactionPlan(
            day=files[0].day,
            inputs=[CompactionInput(file.relative_path, file.num_bytes, file.num_rows) for file in files],
            rows_per_file=1_000,
        )
        compacted = executor.submit_compaction(plan).result(timeout=120)
        assert [file.rows for file in compacted] == [sum(count for _, count in requests)]
        rewritten = pq.read_table(table_dir / compacted[0].relative_path)
        models = rewritten.column("model_name").drop_null().to_pylist()
        assert {model: models.count(model) for model in set(models)} == {
            "gpt-4o-mini": 3, "claude-3-5-haiku": 3, "gpt-4o": 3}
        libraries = _worker_libraries()
        assert "pyarrow/libparquet" in libraries  # the check below looks at the right maps
        for package in ("numpy", "pydantic_core", "pandas"):
            assert f"/{package}/" not in libraries, f"a pipeline worker loaded {package}"
    finally:
        executor.close()
