"""The collector's own process: the validated configuration it runs with (RunConfig) and
what that process keeps out of memory (collector.serve)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import psutil
from pydantic import SecretStr
from opentelemetry.sdk.trace.export import SpanExportResult

from collector.config import CollectorConfig, RedactionConfig
from collector.run_config import RunConfig
from tests.collector_process import run_tracewatch, start_collector, wait_for_count
from tests.otlp_senders import export, genai_chat_spans, make_exporter


def test_run_config_has_every_collector_option() -> None:
    """A field added to CollectorConfig must reach the running collector too."""
    options = set(CollectorConfig.model_fields) - {"redaction"}
    carried = {field.name for field in dataclasses.fields(RunConfig)} - {"redaction_json"}
    assert carried == options


def test_run_config_round_trip_keeps_values_and_hides_the_token(tmp_path: Path) -> None:
    config = CollectorConfig(data_dir=tmp_path, auth_token=SecretStr("tw-secret-7f3a"), workers=3,
                             redaction=RedactionConfig(score_threshold=0.5, workers=4))
    run = config.run_config()
    assert RunConfig.from_json(run.to_json()) == run
    assert (run.data_dir, run.workers, run.auth_token, run.redaction_enabled) == (tmp_path, 3, "tw-secret-7f3a", True)
    redaction = RedactionConfig.model_validate_json(run.redaction_json)
    assert (redaction.score_threshold, redaction.workers) == (0.5, 0)  # no pool inside a worker
    assert "tw-secret-7f3a" not in repr(run)


def test_invalid_log_level_is_one_line(tmp_path: Path) -> None:
    result = run_tracewatch("collector", "--data-dir", str(tmp_path), env={"TRACEWATCH_LOG_LEVEL": "LOUD"})
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "tracewatch: error: invalid configuration: log_level: Value error, "
        "expected DEBUG, INFO, WARNING, ERROR or CRITICAL, got 'LOUD'"]


def test_collector_process_carries_neither_pydantic_nor_the_command_line(tmp_path: Path) -> None:
    """`tracewatch collector` becomes `python -P -m collector.serve` (same pid): neither it nor
    its pipeline workers load pydantic (~8 MB a process), and it still serves."""
    process = start_collector(tmp_path / "store", "--no-redaction")
    try:
        spans = genai_chat_spans("hello")
        assert export(make_exporter("http", process.http), spans) is SpanExportResult.SUCCESS
        assert wait_for_count(process.data_dir, "SELECT count(*) FROM spans", len(spans)) == len(spans)
        collector = psutil.Process(process.process.pid)
        assert collector.cmdline()[1:4] == ["-P", "-m", "collector.serve"]
        tree = [collector, *collector.children(recursive=True)]
        workers = [p for p in tree if "spawn_main" in " ".join(p.cmdline())]
        assert len(workers) == 2
        for member in (collector, *workers):
            maps = Path(f"/proc/{member.pid}/maps").read_text()
            assert "/pyarrow/" in maps  # the check below looks at the right maps
            assert "/pydantic_core/" not in maps, f"{member.cmdline()[:4]} loaded pydantic"
    finally:
        assert process.stop() == 0
