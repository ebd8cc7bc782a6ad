"""Tests for the sample-trace generator (samples/): determinism, OTLP conformance, ground truth."""

from __future__ import annotations

import base64
import gzip
import hashlib
import re
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from genai_prices import Usage, calc_price
from google.protobuf import json_format  # type: ignore[import-untyped]
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from samples.failures import FAILURE_MODES
from samples.generate import generate_samples
from samples.ground_truth import load_ground_truth
from samples.models import ALL_MODELS
from samples.pii import ENTITY_TYPES

HEX32 = re.compile(r"^[0-9a-f]{32}$")
HEX16 = re.compile(r"^[0-9a-f]{16}$")


@pytest.fixture(scope="module")
def two_days(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("two_days")
    generate_samples(out, days=2, seed=7, scale=0.5)
    return out


@pytest.fixture(scope="module")
def small_fortnight(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The full calendar (all incidents) at a fraction of the traffic."""
    out = tmp_path_factory.mktemp("fortnight")
    generate_samples(out, days=14, seed=7, scale=0.25)
    return out


def iter_requests(out: Path) -> Iterator[dict[str, Any]]:
    for path in sorted(out.glob("traces-*.jsonl.gz")):
        with gzip.open(path) as f:
            for line in f:
                yield orjson.loads(line)


def iter_spans(out: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    for request in iter_requests(out):
        for resource_spans in request["resourceSpans"]:
            service = resource_spans["resource"]["attributes"][0]["value"]["stringValue"]
            for scope_spans in resource_spans["scopeSpans"]:
                for span in scope_spans["spans"]:
                    yield service, span


def attribute_values(span: dict[str, Any]) -> dict[str, Any]:
    return {a["key"]: next(iter(a["value"].values())) for a in span["attributes"]}


def hex_ids_to_base64(request: dict[str, Any]) -> dict[str, Any]:
    """The OTLP/JSON mapping uses hex ids; protobuf's generic JSON parser expects base64 bytes."""
    for resource_spans in request["resourceSpans"]:
        for scope_spans in resource_spans["scopeSpans"]:
            for span in scope_spans["spans"]:
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in span:
                        span[key] = base64.b64encode(bytes.fromhex(span[key])).decode()
    return request


def digest_dir(out: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.iterdir())}


def test_same_seed_gives_identical_bytes_serial_or_parallel(tmp_path: Path) -> None:
    generate_samples(tmp_path / "a", days=2, seed=11, scale=0.2, workers=1)
    generate_samples(tmp_path / "b", days=2, seed=11, scale=0.2, workers=2)
    generate_samples(tmp_path / "c", days=2, seed=12, scale=0.2, workers=1)
    a, b, c = (digest_dir(tmp_path / n) for n in "abc")
    assert a == b
    assert set(a) == set(c)
    assert all(a[name] != c[name] for name in a if name.startswith("traces-"))


def test_every_line_is_valid_otlp_json(two_days: Path) -> None:
    num_lines = 0
    num_spans = 0
    for request in iter_requests(two_days):
        for span in request["resourceSpans"][0]["scopeSpans"][0]["spans"]:
            assert HEX32.match(span["traceId"])
            assert HEX16.match(span["spanId"])
            assert "parentSpanId" not in span or HEX16.match(span["parentSpanId"])
            assert isinstance(span["kind"], int)
            assert isinstance(span["startTimeUnixNano"], str)
            assert int(span["endTimeUnixNano"]) >= int(span["startTimeUnixNano"])
            for attr in span["attributes"]:
                if "intValue" in attr["value"]:
                    assert isinstance(attr["value"]["intValue"], str)
        message = json_format.ParseDict(hex_ids_to_base64(request), ExportTraceServiceRequest())
        num_spans += sum(len(ss.spans) for rs in message.resource_spans for ss in rs.scope_spans)
        num_lines += 1
    summary = load_ground_truth(two_days)
    assert num_lines > 50
    assert num_spans == summary["num_spans"]


def test_lines_parse_from_text_with_json_format_parse(two_days: Path) -> None:
    """The raw text (not only dicts) goes through protobuf's JSON parser."""
    path = next(iter(sorted(two_days.glob("traces-*.jsonl.gz"))))
    with gzip.open(path) as f:
        lines = f.read().splitlines()
    for line in lines[::7]:
        text = orjson.dumps(hex_ids_to_base64(orjson.loads(line))).decode()
        message = json_format.Parse(text, ExportTraceServiceRequest())
        assert message.resource_spans[0].scope_spans[0].spans


def test_ground_truth_trace_ids_match_files(two_days: Path) -> None:
    truth = load_ground_truth(two_days)
    file_trace_ids: set[str] = set()
    services: dict[str, str] = {}
    span_ids: set[tuple[str, str]] = set()
    for service, span in iter_spans(two_days):
        file_trace_ids.add(span["traceId"])
        services[span["traceId"]] = service
        key = (span["traceId"], span["spanId"])
        assert key not in span_ids
        span_ids.add(key)
    assert set(truth["traces"]) == file_trace_ids
    assert len(truth["traces"]) == truth["num_traces"]
    assert all(services[t] == label["service"] for t, label in truth["traces"].items())


def test_every_trace_has_one_root(two_days: Path) -> None:
    roots: Counter[str] = Counter()
    for _, span in iter_spans(two_days):
        if "parentSpanId" not in span:
            roots[span["traceId"]] += 1
    assert set(roots.values()) == {1}


def test_pii_positions_point_at_the_pii_text(two_days: Path) -> None:
    truth = load_ground_truth(two_days)
    spans = {(span["traceId"], span["spanId"]): span for _, span in iter_spans(two_days)}
    assert truth["pii"], "expected personal data in the samples"
    for entity in truth["pii"]:
        span = spans[(entity["trace_id"], entity["span_id"])]
        field = entity["field"]
        if field == "status.message":
            value = span["status"]["message"]
        elif field.startswith("events["):
            index, key = re.match(r"events\[(\d+)\]\.(.+)", field).groups()  # type: ignore[union-attr]
            value = attribute_values(span["events"][int(index)])[key]
        else:
            value = attribute_values(span)[field]
        assert value[entity["start"] : entity["end"]] == entity["text"]
        assert entity["entity_type"] in ENTITY_TYPES
    types = Counter(e["entity_type"] for e in truth["pii"])
    assert set(types) == set(ENTITY_TYPES)


def test_about_fifteen_percent_of_support_inputs_carry_personal_data(two_days: Path) -> None:
    truth = load_ground_truth(two_days)
    support = {t for t, label in truth["traces"].items() if label["service"] == "support-copilot"}
    with_pii = {e["trace_id"] for e in truth["pii"] if e["trace_id"] in support}
    assert 0.10 <= len(with_pii) / len(support) <= 0.20


def test_failure_modes_are_present_and_labelled(two_days: Path) -> None:
    truth = load_ground_truth(two_days)
    modes = Counter(
        label["failure_mode"] for label in truth["traces"].values() if label["failure_mode"]
    )
    assert set(modes) <= set(FAILURE_MODES)
    assert len([m for m, n in modes.items() if n >= 10]) >= 8


def test_error_spans_carry_exception_events_with_varied_wording(two_days: Path) -> None:
    messages: dict[str, set[str]] = defaultdict(set)
    for _, span in iter_spans(two_days):
        if span["status"].get("code") == 2 and span.get("events"):
            event = span["events"][0]
            assert event["name"] == "exception"
            attrs = attribute_values(event)
            assert {"exception.type", "exception.message", "exception.stacktrace"} <= set(attrs)
            messages[attrs["exception.type"].split(".")[0]].add(attrs["exception.message"])
    assert len(messages["openai"]) >= 10
    assert len(messages["anthropic"]) >= 5


def test_fallbacks_are_explicit_on_some_and_implicit_on_others(two_days: Path) -> None:
    truth = load_ground_truth(two_days)
    fallback_traces = {t for t, label in truth["traces"].items() if label["fallback"]}
    explicit: set[str] = set()
    for _, span in iter_spans(two_days):
        attrs = attribute_values(span)
        if attrs.get("llm.fallback") is True or "fallback_from" in attrs:
            explicit.add(span["traceId"])
    assert explicit and explicit < fallback_traces


def test_grounded_and_ungrounded_answers_have_similar_length(two_days: Path) -> None:
    truth = load_ground_truth(two_days)
    lengths: dict[bool, list[int]] = {True: [], False: []}
    for _, span in iter_spans(two_days):
        label = truth["traces"][span["traceId"]]
        if "parentSpanId" not in span and label["grounded"] is not None:
            lengths[label["grounded"]].append(len(attribute_values(span)["output.value"]))
    ratio = statistics.mean(lengths[False]) / statistics.mean(lengths[True])
    assert 0.85 <= ratio <= 1.15


def test_incidents_fall_in_range_and_label_traces_in_their_window(small_fortnight: Path) -> None:
    truth = load_ground_truth(small_fortnight)
    start = datetime.fromisoformat(truth["time_range"]["start"])
    end = datetime.fromisoformat(truth["time_range"]["end"])
    incidents = {i["incident_id"]: i for i in truth["incidents"]}
    assert {i["kind"] for i in incidents.values()} == {
        "prompt_rollout",
        "retry_loop",
        "provider_outage",
        "retrieval_degradation",
        "gradual_drift",
    }
    for inc in incidents.values():
        assert (
            start
            <= datetime.fromisoformat(inc["onset"])
            < datetime.fromisoformat(inc["end"])
            <= end
        )
        assert inc["affected_slice"] and inc["expected_effect"]
    roots = {
        span["traceId"]: int(span["startTimeUnixNano"])
        for _, span in iter_spans(small_fortnight)
        if "parentSpanId" not in span
    }
    labelled: Counter[str] = Counter()
    for trace_id, label in truth["traces"].items():
        for incident_id in label["incidents"]:
            inc = incidents[incident_id]
            t = roots[trace_id] / 1e9
            assert (
                datetime.fromisoformat(inc["onset"]).timestamp()
                <= t
                < datetime.fromisoformat(inc["end"]).timestamp()
            )
            labelled[incident_id] += 1
    assert set(labelled) == set(incidents)
    clean = set(truth["clean_days"])
    assert len(clean) >= 3
    for trace_id, label in truth["traces"].items():
        day = datetime.fromtimestamp(roots[trace_id] / 1e9, tz=UTC).strftime("%Y-%m-%d")
        assert not (label["incidents"] and day in clean)


def test_provider_outage_raises_the_fallback_rate(small_fortnight: Path) -> None:
    truth = load_ground_truth(small_fortnight)
    inside = [
        label["fallback"] for label in truth["traces"].values() if "INC-3" in label["incidents"]
    ]
    outside = [
        label["fallback"]
        for label in truth["traces"].values()
        if label["service"] in ("support-copilot", "agent") and not label["incidents"]
    ]
    assert statistics.mean(inside) > 0.4 > 0.05 > statistics.mean(outside)


def test_days_extend_the_fixed_calendar(small_fortnight: Path) -> None:
    truth = load_ground_truth(small_fortnight)
    assert truth["time_range"] == {"start": "2026-11-09T00:00:00Z", "end": "2026-11-23T00:00:00Z"}
    names = sorted(p.name for p in small_fortnight.glob("traces-*.jsonl.gz"))
    assert names[0] == "traces-2026-11-09.jsonl.gz" and names[-1] == "traces-2026-11-22.jsonl.gz"


@pytest.mark.parametrize("model", ALL_MODELS, ids=lambda m: m.name)
def test_genai_prices_knows_every_public_model_and_not_the_private_one(model: Any) -> None:
    usage = Usage(input_tokens=1000, cache_read_tokens=200, output_tokens=100)
    if model.priced:
        assert (
            calc_price(usage, model_ref=model.name, provider_id=model.provider_id).total_price > 0
        )
    else:
        with pytest.raises(LookupError):
            calc_price(usage, model_ref=model.name, provider_id=model.provider_id)


def test_each_service_speaks_its_own_dialect(two_days: Path) -> None:
    keys: dict[str, set[str]] = defaultdict(set)
    for service, span in iter_spans(two_days):
        keys[service].update(attribute_values(span))
    assert {
        "openinference.span.kind",
        "llm.prompt_template.version",
        "llm.token_count.prompt",
        "llm.token_count.prompt_details.cache_read",
        "retrieval.documents.0.document.score",
        "session.id",
        "user.id",
    } <= keys["support-copilot"]
    assert {
        "gen_ai.operation.name",
        "gen_ai.provider.name",
        "gen_ai.usage.input_tokens",
        "gen_ai.input.messages",
        "gen_ai.output.messages",
        "gen_ai.response.time_to_first_chunk",
    } <= keys["doc-extraction"]
    assert {
        "traceloop.span.kind",
        "traceloop.entity.input",
        "llm.usage.total_tokens",
        "llm.request.type",
        "gen_ai.prompt.0.content",
        "gen_ai.completion.0.content",
    } <= keys["agent"]
    assert not any(k.startswith(("openinference.", "traceloop.")) for k in keys["doc-extraction"])


def test_days_beyond_the_calendar_keep_the_open_ended_drift(tmp_path: Path) -> None:
    summary = generate_samples(tmp_path, days=16, seed=7, scale=0.02)
    assert summary["time_range"]["end"] == "2026-11-25T00:00:00Z"
    assert len(summary["files"]["traces"]) == 16
    drift = next(i for i in summary["incidents"] if i["kind"] == "gradual_drift")
    assert drift["end"] == "2026-11-25T00:00:00Z"
    assert summary["clean_days"] == ["2026-11-09", "2026-11-10", "2026-11-11", "2026-11-15"]


def test_the_samples_ingest_cleanly_and_match_their_ground_truth(two_days: Path, tmp_path: Path) -> None:
    """Through the real `tracewatch ingest`: nothing rejected, and the store agrees with the truth."""
    from tests.collector_process import run_tracewatch, sql_rows

    data_dir = tmp_path / "store"
    result = run_tracewatch("ingest", str(two_days), "--data-dir", str(data_dir), "--no-redaction")
    assert result.returncode == 0, result.stderr
    truth = load_ground_truth(two_days)
    num_spans = sum(1 for _ in iter_spans(two_days))
    assert f"ingested {num_spans} spans" in result.stdout and " 0 rejected" in result.stdout
    rows = sql_rows(data_dir, "SELECT trace_id, service_name, has_fallback, prompt_version FROM traces")
    assert len(rows) == len(truth["traces"])
    by_id = {row["trace_id"]: row for row in rows}
    mismatched_service = [t for t, label in truth["traces"].items() if by_id[t]["service_name"] != label["service"]]
    assert mismatched_service == []
    fallback_truth = {t for t, label in truth["traces"].items() if label["fallback"]}
    fallback_store = {t for t, row in by_id.items() if row["has_fallback"]}
    assert fallback_store == fallback_truth
    versions = [(t, by_id[t]["prompt_version"], label["prompt_version"]) for t, label in truth["traces"].items()
                if label.get("prompt_version") and by_id[t]["prompt_version"] != label["prompt_version"]]
    assert versions == []
